//! The authorization endpoint and the login form.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use url::Url;

use crate::common::{
    CLIENT_ID, PUBLIC_CLIENT, REDIRECT_URI, browser, callback_of, form_action, input_error,
    redact_base, start,
};

#[tokio::test]
async fn login_page_is_keycloaks_form() {
    let f = start().await;
    let html = f.login_page(&f.browser, &[]).await;
    let action = Url::parse(&form_action(&html)).unwrap();
    assert_eq!(
        action.path(),
        "/realms/master/login-actions/authenticate",
        "form posts to Keycloak's path"
    );
    let names: Vec<String> = action.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(names, ["session_code", "execution", "client_id", "tab_id"]);
    let mut redacted = redact_base(&html, &f.idp);
    for (k, v) in action.query_pairs() {
        if k != "client_id" {
            redacted = redacted.replace(v.as_ref(), &format!("[{k}]"));
        }
    }
    insta::assert_snapshot!("login_page", redacted);
}

#[tokio::test]
async fn login_page_is_html_that_is_not_cached() {
    let f = start().await;
    let resp = f.browser.get(f.authorize_url(&[])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()[CONTENT_TYPE].to_str().unwrap();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
}

#[tokio::test]
async fn wrong_password_rerenders_the_form_with_keycloaks_message() {
    let f = start().await;
    let html = f.login_page(&f.browser, &[]).await;
    let resp = f.submit(&f.browser, &html, "user1", "wrong").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let again = resp.text().await.unwrap();
    assert_eq!(input_error(&again), Some("Invalid username or password."));
    assert!(again.contains(r#"value="user1""#), "username is kept");
    // The re-rendered form still works.
    let resp = f.submit(&f.browser, &again, "user1", "password").await;
    assert!(callback_of(&resp).get("code").is_some());
}

#[tokio::test]
async fn unknown_user_and_disabled_user_get_the_same_message() {
    let f = start().await;
    for (label, user) in [("unknown", "nobody"), ("disabled", "disabled1")] {
        let html = f.login_page(&f.browser, &[]).await;
        let resp = f.submit(&f.browser, &html, user, "password").await;
        assert_eq!(resp.status(), StatusCode::OK, "{label}");
        let page = resp.text().await.unwrap();
        assert_eq!(
            input_error(&page),
            Some("Invalid username or password."),
            "{label}"
        );
    }
}

#[tokio::test]
async fn successful_login_redirects_with_keycloaks_parameters_in_order() {
    let f = start().await;
    let html = f.login_page(&f.browser, &[]).await;
    let resp = f.submit(&f.browser, &html, "user1", "password").await;
    let cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cb = callback_of(&resp);
    assert!(
        cb.location.starts_with(&format!("{REDIRECT_URI}?")),
        "{}",
        cb.location
    );
    assert_eq!(cb.names(), ["state", "session_state", "iss", "code"]);
    assert_eq!(cb.get("state"), Some("st4te"));
    assert_eq!(cb.get("iss"), Some(f.issuer().as_str()));
    assert!(cookie.starts_with("KEYCLOAK_SESSION="), "{cookie}");
    assert!(cookie.contains("Path=/realms/master/"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn login_by_email_works() {
    let f = start().await;
    let html = f.login_page(&f.browser, &[]).await;
    let resp = f
        .submit(&f.browser, &html, "user1@example.com", "password")
        .await;
    assert!(callback_of(&resp).get("code").is_some());
}

#[tokio::test]
async fn without_state_the_callback_has_no_state() {
    let f = start().await;
    let cb = f.login(&[("state", "")]).await;
    assert_eq!(cb.names(), ["session_state", "iss", "code"]);
}

#[tokio::test]
async fn second_authorize_with_the_session_cookie_skips_the_form() {
    let f = start().await;
    let first = f.login(&[]).await;
    let resp = f
        .browser
        .get(f.authorize_url(&[("state", "again")]))
        .send()
        .await
        .unwrap();
    let second = callback_of(&resp);
    assert_eq!(second.get("state"), Some("again"));
    assert_eq!(second.get("session_state"), first.get("session_state"));
    assert_ne!(second.code(), first.code());
    // The silent code is as good as the first one.
    let resp = f.exchange(second.code(), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn another_browser_without_the_cookie_sees_the_form() {
    let f = start().await;
    f.login(&[]).await;
    let html = f.login_page(&browser(), &[]).await;
    assert!(html.contains("kc-form-login"));
}

#[tokio::test]
async fn prompt_login_forces_the_form_despite_a_session() {
    let f = start().await;
    f.login(&[]).await;
    let html = f.login_page(&f.browser, &[("prompt", "login")]).await;
    assert!(html.contains("kc-form-login"));
}

#[tokio::test]
async fn prompt_none_without_a_session_returns_login_required() {
    let f = start().await;
    let resp = f
        .browser
        .get(f.authorize_url(&[("prompt", "none")]))
        .send()
        .await
        .unwrap();
    let cb = callback_of(&resp);
    assert_eq!(cb.get("error"), Some("login_required"));
    assert_eq!(cb.get("state"), Some("st4te"));
}

#[tokio::test]
async fn an_idle_sso_session_no_longer_logs_in_silently() {
    let f = start().await;
    f.login(&[]).await;
    f.clock.advance(Duration::from_secs(1801));
    let html = f.login_page(&f.browser, &[]).await;
    assert!(html.contains("kc-form-login"));
}

#[tokio::test]
async fn unknown_client_gets_keycloaks_error_page() {
    let f = start().await;
    let resp = f
        .browser
        .get(f.authorize_url(&[("client_id", "nope")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Client not found."), "{html}");
    assert!(html.contains("We are sorry..."));
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_keycloaks_error_page() {
    let f = start().await;
    let cases = [
        ("other scheme", "https://127.0.0.1/cb"),
        ("other host", "http://evil.example/cb"),
        ("fragment", "http://127.0.0.1:1/cb#x"),
    ];
    for (label, uri) in cases {
        let resp = f
            .browser
            .get(f.authorize_url(&[("redirect_uri", uri)]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{label}");
        let html = resp.text().await.unwrap();
        assert!(html.contains("Invalid parameter: redirect_uri"), "{label}");
    }
}

#[tokio::test]
async fn exact_redirect_uri_must_match_exactly() {
    let f = start().await;
    let ok = f
        .browser
        .get(f.authorize_url(&[
            ("client_id", PUBLIC_CLIENT),
            ("redirect_uri", "http://127.0.0.1:18080/spa"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let bad = f
        .browser
        .get(f.authorize_url(&[
            ("client_id", PUBLIC_CLIENT),
            ("redirect_uri", "http://127.0.0.1:18080/spa/x"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_client_with_one_exact_redirect_uri_may_omit_it() {
    let f = start().await;
    let resp = f
        .browser
        .get(f.authorize_url(&[("client_id", PUBLIC_CLIENT), ("redirect_uri", "")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_are_sent_back_to_the_client() {
    let f = start().await;
    let long = "a".repeat(43);
    let cases = [
        (
            "token response type",
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            "missing response type",
            vec![("response_type", "")],
            "invalid_request",
        ),
        (
            "bad challenge method",
            vec![
                ("code_challenge", long.as_str()),
                ("code_challenge_method", "S512"),
            ],
            "invalid_request",
        ),
        (
            "short challenge",
            vec![("code_challenge", "short")],
            "invalid_request",
        ),
    ];
    for (label, params, error) in cases {
        let resp = f
            .browser
            .get(f.authorize_url(&params))
            .send()
            .await
            .unwrap();
        let cb = callback_of(&resp);
        assert!(cb.location.starts_with(REDIRECT_URI), "{label}");
        assert_eq!(cb.get("error"), Some(error), "{label}");
        assert_eq!(cb.get("state"), Some("st4te"), "{label}");
        assert_eq!(cb.get("iss"), Some(f.issuer().as_str()), "{label}");
        assert!(cb.get("code").is_none(), "{label}");
    }
}

#[tokio::test]
async fn an_expired_login_form_offers_a_restart() {
    let f = start().await;
    let html = f.login_page(&f.browser, &[]).await;
    f.clock.advance(Duration::from_secs(1800));
    let resp = f.submit(&f.browser, &html, "user1", "password").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Page has expired"), "{page}");
    assert!(page.contains(r#"id="loginRestartLink""#), "{page}");
    assert!(
        page.contains(&f.endpoint("auth")),
        "restart goes to the authorization endpoint"
    );
}

#[tokio::test]
async fn an_unknown_or_reused_login_form_is_expired() {
    let f = start().await;
    let html = f.login_page(&f.browser, &[]).await;
    let first = f.submit(&f.browser, &html, "user1", "password").await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let again = f.submit(&browser(), &html, "user1", "password").await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.unwrap().contains("Page has expired"));

    let url = format!(
        "{}/login-actions/authenticate?session_code=x&tab_id=y&client_id={CLIENT_ID}",
        f.issuer()
    );
    let resp = f
        .browser
        .post(url)
        .form(&[("username", "user1"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("Page has expired"));
}

#[tokio::test]
async fn a_realm_display_name_titles_the_page() {
    let realm = mock_idp::Realm::from_json_str(
        r#"{"realm":"r","displayName":"Acme <SSO>","clients":[{"clientId":"c","publicClient":true,"redirectUris":["http://a/*"]}]}"#,
    )
    .unwrap();
    let idp = mock_idp::MockIdp::builder()
        .realm(realm)
        .start()
        .await
        .unwrap();
    let url = format!(
        "{}/protocol/openid-connect/auth?client_id=c&redirect_uri=http://a/cb&response_type=code",
        idp.issuer("r")
    );
    let html = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(
        html.contains("<title>Sign in to Acme &lt;SSO&gt;</title>"),
        "{html}"
    );
}
