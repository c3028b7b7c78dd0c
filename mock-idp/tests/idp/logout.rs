//! RP-initiated logout, and its front-channel page.

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;

use crate::common::{CLIENT_ID, REDIRECT_URI, callback_of, start};

#[tokio::test]
async fn logout_with_id_token_hint_redirects_and_ends_the_session() {
    let f = start().await;
    let tokens = f.tokens(&[]).await;
    let resp = f
        .browser
        .get(f.endpoint("logout"))
        .query(&[
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", REDIRECT_URI),
            ("state", "bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("KEYCLOAK_SESSION=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    let cb = callback_of(&resp);
    assert_eq!(cb.location, format!("{REDIRECT_URI}?state=bye"));

    // Userinfo, refresh and silent SSO all stop working.
    let userinfo = f.userinfo(&tokens).await;
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    let refresh =
        f.rp.post(f.endpoint("token"))
            .basic_auth(CLIENT_ID, Some(crate::common::CLIENT_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
    assert_eq!(refresh.status(), StatusCode::BAD_REQUEST);
    let html = f.login_page(&f.browser, &[]).await;
    assert!(html.contains("kc-form-login"));
}

#[tokio::test]
async fn logout_without_redirect_shows_a_page_and_clears_the_cookie() {
    let f = start().await;
    f.login(&[]).await;
    let resp = f.browser.get(f.endpoint("logout")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("You are logged out"));
    let html = f.login_page(&f.browser, &[]).await;
    assert!(html.contains("kc-form-login"), "no silent SSO after logout");
}

#[tokio::test]
async fn logout_refuses_an_unregistered_redirect() {
    let f = start().await;
    let cases = [
        (
            "unregistered",
            vec![
                ("client_id", CLIENT_ID),
                ("post_logout_redirect_uri", "http://evil.example/"),
            ],
        ),
        (
            "no client named",
            vec![("post_logout_redirect_uri", REDIRECT_URI)],
        ),
        ("bad hint", vec![("id_token_hint", "x.y.z")]),
    ];
    for (label, query) in cases {
        let resp = f
            .browser
            .get(f.endpoint("logout"))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{label}");
    }
}

const FC_APP: &str = "fc-app";
const FC_NO_SID: &str = "fc-no-sid";
const FC_REDIRECT: &str = "http://127.0.0.1:18080/fc-app";

/// Clients with front-channel logout: one wanting `sid` and `iss` (the default), one not.
async fn start_fc() -> crate::common::Fixture {
    let client = |id: &str, name: &str, attributes: serde_json::Value| {
        serde_json::json!({"clientId": id, "name": name, "publicClient": true,
                           "frontchannelLogout": true, "redirectUris": [FC_REDIRECT],
                           "attributes": attributes})
    };
    let realm = crate::common::test_realm_with(vec![
        client(
            FC_APP,
            "FC <App>",
            serde_json::json!({"frontchannel.logout.url": "http://127.0.0.1:18080/fc?x=1"}),
        ),
        client(
            FC_NO_SID,
            "",
            serde_json::json!({"frontchannel.logout.url": "http://127.0.0.1:18080/plain",
                               "frontchannel.logout.session.required": "false"}),
        ),
    ]);
    crate::common::start_realm(realm, |b| b).await
}

#[tokio::test]
async fn logout_renders_the_frontchannel_page_for_the_clients_of_the_session() {
    let f = start_fc().await;
    let cb = f
        .login(&[("client_id", FC_APP), ("redirect_uri", FC_REDIRECT)])
        .await;
    let sid = cb.get("session_state").unwrap().to_owned();
    // The second client joins the session by silent SSO.
    let sso = f
        .browser
        .get(f.authorize_url(&[("client_id", FC_NO_SID), ("redirect_uri", FC_REDIRECT)]))
        .send()
        .await
        .unwrap();
    assert_eq!(sso.status(), StatusCode::FOUND);

    let resp = f
        .browser
        .get(f.endpoint("logout"))
        .query(&[
            ("client_id", FC_APP),
            ("post_logout_redirect_uri", FC_REDIRECT),
            ("state", "bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("KEYCLOAK_SESSION=;"), "{cookie}");
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(r#"<h1 id="kc-page-title">Logging out</h1>"#),
        "{html}"
    );
    let iss = url::form_urlencoded::byte_serialize(f.issuer().as_bytes()).collect::<String>();
    let framed = format!(
        r#"<li>FC &lt;App&gt;<iframe src="http://127.0.0.1:18080/fc?x=1&amp;sid={sid}&amp;iss={iss}" style="display:none;"></iframe></li>"#
    );
    assert!(html.contains(&framed), "{html}");
    assert!(
        html.contains(r#"<li>fc-no-sid<iframe src="http://127.0.0.1:18080/plain" style="display:none;"></iframe></li>"#),
        "no sid or iss when not required; the clientId when the name is blank: {html}"
    );
    assert!(html.contains(&format!(
        r#"<a id="continue" class="pf-c-button pf-m-primary" href="{FC_REDIRECT}?state=bye">Continue</a>"#
    )));
    assert!(html.contains("window.location.replace(document.getElementById('continue').href)"));
    // The session is over.
    let again = f.login_page(&f.browser, &[]).await;
    assert!(again.contains("kc-form-login"));
}

#[tokio::test]
async fn the_frontchannel_page_without_redirect_does_not_navigate_and_other_sessions_add_nothing() {
    let f = start_fc().await;
    f.login(&[("client_id", FC_APP), ("redirect_uri", FC_REDIRECT)])
        .await;
    let resp = f.browser.get(f.endpoint("logout")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert_eq!(
        html.matches("<iframe").count(),
        1,
        "only the client that was used: {html}"
    );
    assert!(!html.contains("<script>") && !html.contains(r#"id="continue""#));

    // A session that used no front-channel client logs out as before.
    let f = start_fc().await;
    f.login(&[]).await;
    let resp = f
        .browser
        .get(f.endpoint("logout"))
        .query(&[
            ("client_id", CLIENT_ID),
            ("post_logout_redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
}
