//! Our answers never carry text an attacker put in a link: one test per parameter a callback
//! (or a request) brings, each with a script payload, asserting the exact status and body.

use http::StatusCode;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use super::{NOW, fixture};
use crate::flow::{CheckRequest, Decision, Deny};

const SCRIPT: &str = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";

async fn answer(target: &str, headers: &[(&str, &str)]) -> (Deny, super::Fixture) {
    let f = fixture().await;
    let mut check = CheckRequest::new("GET", "http", "172.18.0.4", target);
    for (k, v) in headers {
        check = check.with_header(k, v);
    }
    let d = match f.flow.decide(&check).await {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!("expected a refusal, got {a:?}"),
    };
    (d, f)
}

fn assert_answer(d: &Deny, status: StatusCode, body: &str) {
    assert_eq!(d.status, status, "{}", d.body);
    assert_eq!(d.body, body);
    assert!(!d.body.contains('<'));
    assert!(
        d.headers
            .iter()
            .any(|(n, v)| n == "x-content-type-options" && v == "nosniff"),
        "{:?}",
        d.headers
    );
}

fn state_for(f: &super::Fixture) -> String {
    f.flow
        .state()
        .issue("http://172.18.0.4/openai", NOW)
        .unwrap()
        .token
}

#[tokio::test]
async fn an_unregistered_error_is_not_repeated() {
    let (d, _f) = answer(&format!("/openai?error={SCRIPT}&state=s"), &[]).await;
    assert_answer(
        &d,
        StatusCode::UNAUTHORIZED,
        "The identity provider did not complete the login: unknown error.\n",
    );
}

#[tokio::test]
async fn an_overlong_error_is_not_repeated() {
    let long = "access_denied".repeat(100);
    let (d, _f) = answer(&format!("/openai?error={long}&state=s"), &[]).await;
    assert_answer(
        &d,
        StatusCode::UNAUTHORIZED,
        "The identity provider did not complete the login: unknown error.\n",
    );
}

#[tokio::test]
async fn error_description_is_never_repeated() {
    let (d, _f) = answer(
        &format!("/openai?error=access_denied&error_description={SCRIPT}&state=s"),
        &[],
    )
    .await;
    assert_answer(
        &d,
        StatusCode::UNAUTHORIZED,
        "The identity provider did not complete the login: access_denied.\n",
    );
}

#[tokio::test]
async fn error_uri_is_never_repeated() {
    let (d, _f) = answer(
        &format!("/openai?error=login_required&error_uri=javascript:{SCRIPT}&state=s"),
        &[],
    )
    .await;
    assert_answer(
        &d,
        StatusCode::UNAUTHORIZED,
        "The identity provider did not complete the login: login_required.\n",
    );
}

#[tokio::test]
async fn a_forged_state_is_not_repeated() {
    let (d, _f) = answer(&format!("/openai?code=c&state={SCRIPT}"), &[]).await;
    assert_answer(
        &d,
        StatusCode::BAD_REQUEST,
        "Bad login callback: the `state` parameter is not valid (state is invalid or was tampered with). Start the login again.\n",
    );
}

#[tokio::test]
async fn a_forged_iss_is_not_repeated() {
    let f = fixture().await;
    let state = state_for(&f);
    let check = CheckRequest::new(
        "GET",
        "http",
        "172.18.0.4",
        &format!("/openai?code=c&state={state}&iss={SCRIPT}"),
    );
    let Decision::Deny(d) = f.flow.decide(&check).await else {
        panic!("a callback is never allowed")
    };
    assert_answer(
        &d,
        StatusCode::BAD_REQUEST,
        "Bad login callback: the `iss` parameter names another issuer.\n",
    );
}

/// A `code` reaches the token endpoint, never the page: what the IdP says about it is
/// repeated only as a registered error code.
#[tokio::test]
async fn a_forged_code_and_the_idps_description_of_it_are_not_repeated() {
    for (error, shown) in [
        ("invalid_grant", "invalid_grant"),
        ("<script>", "unknown error"),
    ] {
        let f = fixture().await;
        Mock::given(method("POST"))
            .and(path("/realms/master/protocol/openid-connect/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": error,
                "error_description": "<script>alert(1)</script>",
            })))
            .mount(&f._idp)
            .await;
        // A login already started again once: its refused code is final (a first refusal
        // restarts the login, with nothing in the answer but a 302 to the IdP).
        let state = f
            .flow
            .state()
            .issue_restart("http://172.18.0.4/openai", NOW, 1)
            .unwrap()
            .token;
        let check = CheckRequest::new(
            "GET",
            "http",
            "172.18.0.4",
            &format!("/openai?code={SCRIPT}&state={state}"),
        );
        let Decision::Deny(d) = f.flow.decide(&check).await else {
            panic!("a callback is never allowed")
        };
        assert_answer(
            &d,
            StatusCode::UNAUTHORIZED,
            &format!(
                "Login failed: the identity provider rejected the authorization code ({shown}). Start the login again.\n"
            ),
        );
    }
}

#[tokio::test]
async fn a_forged_auth_config_name_is_not_repeated() {
    let (d, _f) = answer("/openai", &[("x-extauth-config", "<script>/x")]).await;
    assert_answer(
        &d,
        StatusCode::FORBIDDEN,
        "The AuthConfig this request names is not loaded.\n",
    );
    let (d, _f) = answer("/openai", &[("x-extauth-config", "ns/missing")]).await;
    assert_answer(
        &d,
        StatusCode::FORBIDDEN,
        "No AuthConfig ns/missing is loaded.\n",
    );
}

#[tokio::test]
async fn a_duplicated_parameter_is_named_but_its_value_is_not_repeated() {
    let (d, _f) = answer(&format!("/openai?code={SCRIPT}&code=2&state=s"), &[]).await;
    assert_answer(
        &d,
        StatusCode::BAD_REQUEST,
        "Bad login callback: parameter `code` appears more than once.\n",
    );
}
