use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::http::{form_action, iframe_sources, parse_set_cookie, unescape};
use super::*;

fn realm_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/realms/master.json")
}

/// A stand-in for the gateway: `/cb?code&state` sets a session cookie and 302s to `/done`,
/// which answers 200 only with that cookie.
async fn fake_app() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    async fn callback(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
        if q.contains_key("code") && q.contains_key("state") {
            (
                [(
                    axum::http::header::SET_COOKIE,
                    "app-session=ABC234; Path=/; HttpOnly",
                )],
                Redirect::to("/done"),
            )
                .into_response()
        } else {
            (axum::http::StatusCode::BAD_REQUEST, "no code").into_response()
        }
    }
    async fn done(headers: HeaderMap) -> Response {
        let cookie = headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if cookie.contains("app-session=ABC234") {
            "welcome to the app".into_response()
        } else {
            (axum::http::StatusCode::UNAUTHORIZED, "no session").into_response()
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    async fn reject() -> Response {
        (
            axum::http::StatusCode::BAD_REQUEST,
            "invalid ID token: audience",
        )
            .into_response()
    }
    async fn reject_with_cookie() -> Response {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            [(
                axum::http::header::SET_COOKIE,
                "app-session=LEAKED; Path=/; HttpOnly",
            )],
            "rejected, but a session anyway",
        )
            .into_response()
    }
    let app = axum::Router::new()
        .route("/cb", get(callback))
        .route("/reject", get(reject))
        .route("/reject-with-cookie", get(reject_with_cookie))
        .route("/done", get(done));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

struct Fixture {
    idp: mock_idp::RunningIdp,
    app: SocketAddr,
    _app_task: tokio::task::JoinHandle<()>,
}

impl Fixture {
    async fn start() -> Self {
        let realm = mock_idp::Realm::from_file(realm_file()).expect("realm");
        let idp = mock_idp::MockIdp::builder()
            .realm(realm)
            .listen("127.0.0.1:0".parse().expect("addr"))
            .public_host("localhost")
            .start()
            .await
            .expect("idp starts");
        let (app, task) = fake_app().await;
        Self {
            idp,
            app,
            _app_task: task,
        }
    }

    fn auth_url(&self) -> Url {
        self.auth_url_to("/cb")
    }

    fn auth_url_to(&self, callback_path: &str) -> Url {
        let mut url = Url::parse(&format!(
            "{}/protocol/openid-connect/auth",
            self.idp.issuer("master")
        ))
        .expect("url");
        url.query_pairs_mut()
            .append_pair("client_id", "agentgateway")
            .append_pair(
                "redirect_uri",
                &format!("http://{}{callback_path}", self.app),
            )
            .append_pair("response_type", "code")
            .append_pair("scope", "email openid")
            .append_pair("state", "s1");
        url
    }
}

async fn logs_in_and_lands_on_the_app(driver: Driver) {
    let f = Fixture::start().await;
    let outcome = login(
        driver,
        &f.auth_url(),
        &Credentials::new("user1", "password"),
        DEFAULT_TIMEOUT,
    )
    .await
    .expect("login succeeds");
    assert_eq!(outcome.final_url.as_str(), format!("http://{}/done", f.app));
    assert!(
        outcome.page_text.contains("welcome to the app"),
        "{}",
        outcome.page_text
    );
    let cookie = outcome.cookie("app-session").expect("session cookie");
    assert_eq!(cookie.value.expose(), "ABC234");
    assert!(cookie.http_only);
}

async fn wrong_password_is_invalid_credentials(driver: Driver) {
    let f = Fixture::start().await;
    let err = login(
        driver,
        &f.auth_url(),
        &Credentials::new("user1", "not-the-password"),
        DEFAULT_TIMEOUT,
    )
    .await
    .expect_err("login refused");
    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
}

async fn rejected_callback_is_callback_rejected(driver: Driver) {
    let f = Fixture::start().await;
    let err = login(
        driver,
        &f.auth_url_to("/reject"),
        &Credentials::new("user1", "password"),
        DEFAULT_TIMEOUT,
    )
    .await
    .expect_err("the app rejects the callback");
    match err {
        LoginError::CallbackRejected {
            status,
            body_excerpt,
            set_cookie,
            cookie_names,
        } => {
            assert_eq!(status, 400, "{driver}");
            assert!(
                body_excerpt.contains("invalid ID token"),
                "{driver}: {body_excerpt}"
            );
            assert!(!set_cookie, "{driver}: {cookie_names:?}");
        }
        other => panic!("{driver}: expected CallbackRejected, got {other:?}"),
    }
}

async fn rejected_callback_reports_its_cookie(driver: Driver) {
    let f = Fixture::start().await;
    let err = login(
        driver,
        &f.auth_url_to("/reject-with-cookie"),
        &Credentials::new("user1", "password"),
        DEFAULT_TIMEOUT,
    )
    .await
    .expect_err("the app rejects the callback");
    assert!(
        matches!(
            &err,
            LoginError::CallbackRejected { status: 401, set_cookie: true, cookie_names, .. }
                if cookie_names == &["app-session".to_owned()]
        ),
        "{driver}: {err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("LEAKED"), "{err:?}");
}

#[tokio::test]
async fn http_driver_reports_a_rejected_callback_with_its_status_and_no_cookie() {
    rejected_callback_is_callback_rejected(Driver::Http).await;
}

#[tokio::test]
async fn http_driver_reports_a_cookie_set_by_a_rejected_callback() {
    rejected_callback_reports_its_cookie(Driver::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_driver_reports_a_rejected_callback_with_its_status_and_no_cookie() {
    rejected_callback_is_callback_rejected(Driver::Browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_driver_reports_a_cookie_set_by_a_rejected_callback() {
    rejected_callback_reports_its_cookie(Driver::Browser).await;
}

#[tokio::test]
async fn http_driver_logs_in_and_lands_on_the_app_with_its_cookie() {
    logs_in_and_lands_on_the_app(Driver::Http).await;
}

#[tokio::test]
async fn http_driver_reports_a_wrong_password_as_invalid_credentials() {
    wrong_password_is_invalid_credentials(Driver::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_driver_logs_in_and_lands_on_the_app_with_its_cookie() {
    logs_in_and_lands_on_the_app(Driver::Browser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_driver_reports_a_wrong_password_as_invalid_credentials() {
    wrong_password_is_invalid_credentials(Driver::Browser).await;
}

#[tokio::test]
async fn http_driver_reports_the_idp_error_page_for_an_unknown_client() {
    let f = Fixture::start().await;
    let mut url = f.auth_url();
    url.set_query(Some(
        "client_id=nobody&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb",
    ));
    let err = login(
        Driver::Http,
        &url,
        &Credentials::new("user1", "password"),
        DEFAULT_TIMEOUT,
    )
    .await
    .expect_err("no such client");
    assert!(
        matches!(&err, LoginError::IdpError { message, .. } if message.contains("Client not found")),
        "{err:?}"
    );
}

#[test]
fn form_action_is_found_and_unescaped() {
    let html = r#"<div><form id="kc-form-login" onsubmit="x" action="http://localhost:1/realms/master/login-actions/authenticate?session_code=a&amp;tab_id=b" method="post"></form>"#;
    assert_eq!(
        form_action(html).as_deref(),
        Some("http://localhost:1/realms/master/login-actions/authenticate?session_code=a&tab_id=b")
    );
    assert_eq!(form_action("<form id=\"other\" action=\"/x\">"), None);
}

#[test]
fn iframe_sources_are_found_in_page_order_and_unescaped() {
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "the mock's logout page",
            r#"<ul><li>App<iframe src="http://a/fc?iss=i&amp;sid=s" style="display:none;"></iframe></li><li>B<iframe style="x" src="http://b/fc"></iframe></li></ul>"#,
            &["http://a/fc?iss=i&sid=s", "http://b/fc"],
        ),
        ("no frames", "<p>You are logged out</p>", &[]),
        ("a frame without src", "<iframe srcdoc=\"x\"></iframe>", &[]),
        ("an unclosed tag", "<iframe src=\"http://a/", &[]),
    ];
    for (label, html, want) in cases {
        assert_eq!(iframe_sources(html), want, "{label}");
    }
}

#[test]
fn unescape_decodes_named_and_numeric_entities_and_keeps_stray_ampersands() {
    let cases = [
        ("named", "a&amp;b&lt;&gt;&quot;&apos;", "a&b<>\"'"),
        ("decimal", "&#39;x&#39;", "'x'"),
        ("hex", "&#x3D;&#X41;", "=A"),
        ("stray", "a & b &unknown; c", "a & b &unknown; c"),
    ];
    for (label, input, want) in cases {
        assert_eq!(unescape(input), want, "{label}");
    }
}

#[test]
fn set_cookie_parsing_keeps_flags_and_drops_deletions() {
    let cookie =
        parse_set_cookie("keycloak-session=ABC=; Path=/; HttpOnly; Secure; Max-Age=2592000")
            .expect("cookie");
    assert_eq!(cookie.name, "keycloak-session");
    assert_eq!(cookie.value.expose(), "ABC=");
    assert!(cookie.http_only && cookie.secure);
    assert_eq!(
        parse_set_cookie("keycloak-session=; Path=/; Max-Age=0"),
        None
    );
}

#[test]
fn secrets_do_not_print_in_debug() {
    let creds = Credentials::new("user1", "hunter2");
    assert!(!format!("{creds:?}").contains("hunter2"));
    let value = CookieValue::new("SESSIONID");
    assert!(!format!("{value:?}").contains("SESSIONID"));
}

#[test]
fn the_oidc_provider_form_and_its_consent_page_are_recognised() {
    use super::http::{FormKind, LoginForm, consent_action};
    let login = r#"<form autocomplete="off" action="/realms/master/interaction/abc/login" method="post">
      <input type="hidden" name="prompt" value="login"/><input required type="text" name="login">
      <input required type="password" name="password"><button type="submit" class="login login-submit">Sign-in</button></form>"#;
    let form = LoginForm::find(login).expect("a login form");
    assert_eq!(form.kind, FormKind::OidcProvider);
    assert_eq!(form.action, "/realms/master/interaction/abc/login");
    assert_eq!(consent_action(login), None);
    let consent = r#"<form action="/realms/master/interaction/def/confirm" method="post">
      <input type="hidden" name="prompt" value="consent"/><button class="login login-submit">Continue</button></form>"#;
    assert_eq!(
        consent_action(consent).as_deref(),
        Some("/realms/master/interaction/def/confirm")
    );
    assert_eq!(LoginForm::find(consent), None);
}

#[test]
fn keycloak_form_wins_when_the_page_is_keycloak_s() {
    use super::http::{FormKind, LoginForm};
    let page = r#"<form id="kc-form-login" action="/realms/master/login-actions/authenticate?session_code=a&amp;b=c" method="post">
      <input id="username" name="username"><input id="password" name="password"></form>"#;
    let form = LoginForm::find(page).expect("a login form");
    assert_eq!(form.kind, FormKind::Keycloak);
    assert_eq!(
        form.action,
        "/realms/master/login-actions/authenticate?session_code=a&b=c"
    );
}
