//! RP-initiated logout.

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
