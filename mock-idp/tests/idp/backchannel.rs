//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the logout token POSTed to
//! each client of an ended session, by a browser logout or by the admin API, and what a slow
//! or absent client does (nothing to the logout).

use std::time::Duration;

use mock_idp::{Endpoint, LogoutTarget, RequestFilter};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Fixture, start_realm, test_realm_with};
use crate::receiver::Receiver;

const APP: &str = "bc-app";
const NO_SID: &str = "bc-no-sid";
const OTHER: &str = "bc-other";
const DOWN: &str = "bc-down";
const SECRET: &str = "bc-secret";
const REDIRECT: &str = "http://127.0.0.1:18080/bc-app";

/// Clients with back-channel URLs at `receiver` (`DOWN`'s URL is a closed port).
async fn start_bc(receiver: &Receiver, timeout: Duration) -> Fixture {
    let client = |id: &str, attributes: Value| {
        json!({"clientId": id, "secret": SECRET, "redirectUris": [REDIRECT],
               "attributes": attributes})
    };
    let realm = test_realm_with(vec![
        client(
            APP,
            json!({"backchannel.logout.url": receiver.url("/bc"),
                   "backchannel.logout.session.required": "true"}),
        ),
        client(
            NO_SID,
            json!({"backchannel.logout.url": receiver.url("/no-sid"),
                   "backchannel.logout.revoke.offline.tokens": "true"}),
        ),
        client(
            OTHER,
            json!({"backchannel.logout.url": receiver.url("/other")}),
        ),
        client(
            DOWN,
            json!({"backchannel.logout.url": "http://127.0.0.1:1/bc"}),
        ),
    ]);
    start_realm(realm, |b| b.backchannel_logout_timeout(timeout)).await
}

impl Fixture {
    /// user1 logs in (or is silently signed in) at `client` in the fixture's browser; the
    /// token response.
    async fn tokens_at(&self, client: &str) -> Value {
        let cb = self
            .login_or_sso(&[("client_id", client), ("redirect_uri", REDIRECT)])
            .await;
        let resp = self
            .rp
            .post(self.endpoint("token"))
            .basic_auth(client, Some(SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", cb.get("code").unwrap()),
                ("redirect_uri", REDIRECT),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// The callback of a login, or of silent SSO when the browser has a session.
    async fn login_or_sso(&self, extra: &[(&str, &str)]) -> crate::common::Callback {
        let resp = self
            .browser
            .get(self.authorize_url(extra))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::FOUND {
            return crate::common::callback_of(&resp);
        }
        let html = resp.text().await.unwrap();
        crate::common::callback_of(&self.submit(&self.browser, &html, "user1", "password").await)
    }

    async fn refresh_status(&self, client: &str, tokens: &Value) -> StatusCode {
        self.rp
            .post(self.endpoint("token"))
            .basic_auth(client, Some(SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
            .status()
    }

    fn backchannel_log(&self) -> Vec<mock_idp::LoggedRequest> {
        self.idp.request_log().query(&RequestFilter {
            endpoint: Some(Endpoint::BackchannelLogout),
            ..RequestFilter::default()
        })
    }
}

#[tokio::test]
async fn a_browser_logout_posts_a_signed_logout_token_to_each_client_of_the_session() {
    let receiver = Receiver::start().await;
    let f = start_bc(&receiver, Duration::from_secs(5)).await;
    let tokens = f.tokens_at(APP).await;
    f.tokens_at(NO_SID).await; // same browser: same SSO session
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = f.decode(id_token)["sid"].as_str().unwrap().to_owned();
    let resp = f
        .browser
        .get(f.endpoint("logout"))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);

    let at_app = receiver.received_at("/bc");
    assert_eq!(at_app.len(), 1, "{:?}", receiver.received());
    let call = &at_app[0];
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let token = call.param("logout_token").unwrap();
    let header = crate::admin::decode_part(token, 0);
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(header["kid"], json!(f.idp.published_kids()[0]));
    // Signed by the realm (JWKS), for this client, about this session and user.
    let claims = f.verify(token, APP).await;
    assert_eq!(claims["iss"], f.issuer());
    assert_eq!(claims["sid"], sid.as_str());
    assert_eq!(claims["sub"], f.decode(id_token)["sub"]);
    assert_eq!(
        claims["events"],
        json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    assert_eq!(claims["typ"], "Logout");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 120);
    assert!(claims.get("nonce").is_none() && claims["jti"].is_string());

    // Without `backchannel.logout.session.required`, no `sid`; Keycloak's offline event.
    let no_sid = receiver.received_at("/no-sid");
    let claims = f
        .verify(no_sid[0].param("logout_token").unwrap(), NO_SID)
        .await;
    assert!(claims.get("sid").is_none(), "{claims}");
    assert_eq!(claims["events"]["revoke_offline_access"], true);
    assert!(
        receiver.received_at("/other").is_empty(),
        "a client outside the session is not told"
    );

    // The request log shows each call, its target and answer, never the token.
    let log = f.backchannel_log();
    assert_eq!(log.len(), 2);
    let app = log
        .iter()
        .find(|r| r.client_id.as_deref() == Some(APP))
        .unwrap();
    assert_eq!(app.method, "POST");
    assert_eq!(app.path, "/bc");
    assert_eq!(app.url.as_deref(), Some(receiver.url("/bc").as_str()));
    assert_eq!(app.status, Some(200));
    assert_eq!(app.form["logout_token"], "[redacted]");
    assert_eq!(app.realm.as_deref(), Some("master"));
    // The session is over.
    assert_eq!(
        f.refresh_status(APP, &tokens).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_admin_api_logs_a_user_out_without_a_browser() {
    let receiver = Receiver::start().await;
    let f = start_bc(&receiver, Duration::from_secs(5)).await;
    let tokens = f.tokens_at(APP).await;
    let resp = f.admin_post("logout", json!({"username": "user1"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(
        report,
        json!({"ended_sessions": 1, "backchannel": [
            {"client_id": APP, "url": receiver.url("/bc"), "status": 200}
        ]})
    );
    assert_eq!(receiver.received_at("/bc").len(), 1);
    assert_eq!(
        f.refresh_status(APP, &tokens).await,
        StatusCode::BAD_REQUEST
    );

    // Nothing left to end: the user exists, no session.
    let resp = f
        .admin_post("logout", json!({"username": "user1", "realm": "master"}))
        .await;
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report, json!({"ended_sessions": 0, "backchannel": []}));

    // By session id (the ID token's `sid`), through the library handle.
    let browser = crate::common::browser();
    let cb = {
        let html = f
            .login_page(&browser, &[("client_id", APP), ("redirect_uri", REDIRECT)])
            .await;
        crate::common::callback_of(&f.submit(&browser, &html, "user1", "password").await)
    };
    let sid = cb.get("session_state").unwrap().to_owned();
    let report = f
        .idp
        .logout(&LogoutTarget::Session {
            realm: None,
            sid: sid.clone(),
        })
        .await
        .unwrap();
    assert_eq!(report.ended_sessions, 1);
    assert_eq!(report.backchannel[0].status, Some(200));
    let claims = f
        .verify(
            receiver.received_at("/bc")[1]
                .param("logout_token")
                .unwrap(),
            APP,
        )
        .await;
    assert_eq!(claims["sid"], sid.as_str());
}

#[tokio::test]
async fn the_admin_logout_refuses_bad_input_with_the_field() {
    let receiver = Receiver::start().await;
    let f = start_bc(&receiver, Duration::from_secs(5)).await;
    let cases = [
        (
            "unknown session",
            json!({"sid": "no-such-session"}),
            StatusCode::NOT_FOUND,
            json!({"error": "no such session", "path": "sid"}),
        ),
        (
            "unknown user",
            json!({"username": "nobody"}),
            StatusCode::BAD_REQUEST,
            json!({"error": "no such user: nobody", "path": "username"}),
        ),
        (
            "unknown realm",
            json!({"username": "user1", "realm": "nope"}),
            StatusCode::BAD_REQUEST,
            json!({"error": "no such realm: nope", "path": "realm"}),
        ),
        (
            "both sid and username",
            json!({"username": "user1", "sid": "x"}),
            StatusCode::BAD_REQUEST,
            json!({"error": "expected exactly one of sid and username"}),
        ),
        (
            "neither",
            json!({}),
            StatusCode::BAD_REQUEST,
            json!({"error": "expected exactly one of sid and username"}),
        ),
        (
            "unknown field",
            json!({"user": "user1"}),
            StatusCode::BAD_REQUEST,
            json!({"error": "unknown field `user`, expected one of `realm`, `sid`, `username` at line 1 column 7", "path": "user"}),
        ),
    ];
    for (label, body, status, want) in cases {
        let resp = f.admin_post("logout", body).await;
        assert_eq!(resp.status(), status, "{label}");
        assert_eq!(resp.json::<Value>().await.unwrap(), want, "{label}");
    }
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn a_slow_or_absent_client_does_not_stop_the_logout() {
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_secs(5));
    let f = start_bc(&receiver, Duration::from_millis(300)).await;
    let tokens = f.tokens_at(APP).await;
    f.tokens_at(DOWN).await;
    let started = std::time::Instant::now();
    let report = f
        .idp
        .logout(&LogoutTarget::User {
            realm: None,
            username: "user1".into(),
        })
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded by the timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(report.ended_sessions, 1);
    let by_client = |id: &str| {
        report
            .backchannel
            .iter()
            .find(|n| n.client_id == id)
            .unwrap()
    };
    assert_eq!(by_client(APP).status, None);
    assert_eq!(
        by_client(APP).error.as_deref(),
        Some("no answer within 300 ms")
    );
    assert_eq!(by_client(DOWN).error.as_deref(), Some("connection failed"));
    let log = f.backchannel_log();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter().all(|r| r.status.is_none() && r.error.is_some()),
        "{log:?}"
    );
    // The session ended all the same.
    assert_eq!(
        f.refresh_status(APP, &tokens).await,
        StatusCode::BAD_REQUEST
    );

    // A client answering an error is recorded with its status.
    receiver.delay(Duration::ZERO);
    receiver.answer(400);
    f.tokens_at(APP).await;
    let report = f
        .idp
        .logout(&LogoutTarget::User {
            realm: None,
            username: "user1".into(),
        })
        .await
        .unwrap();
    assert_eq!(by_status(&report, APP), Some(400));
}

fn by_status(report: &mock_idp::LogoutReport, client: &str) -> Option<u16> {
    report
        .backchannel
        .iter()
        .find(|n| n.client_id == client)
        .and_then(|n| n.status)
}
