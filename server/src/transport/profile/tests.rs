use axum::http::StatusCode;

use super::*;
use crate::flow::{Allow, Deny};

fn check() -> CheckRequest {
    CheckRequest::new("POST", "http", "172.18.0.4", "/openai?model=x")
}

fn login() -> Decision {
    Decision::Deny(
        Deny::redirect("http://idp/auth?state=s".into())
            .with_header(http::header::SET_COOKIE, "s-login=b; Path=/".into()),
    )
}

fn store_down() -> Decision {
    Decision::Deny(Deny::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "The session store is unavailable. Try again later.\n",
    ))
}

fn allowed_with_cookies(n: usize) -> Decision {
    Decision::Allow(Allow {
        upstream_headers: vec![(HeaderName::from_static("jwt"), "eyJ.a.b".into())],
        remove_headers: vec!["jwt".into()],
        response_headers: (1..=n)
            .map(|i| (http::header::SET_COOKIE, format!("s.{i}=v{i}; Path=/")))
            .collect(),
        dynamic_metadata: serde_json::Map::new(),
    })
}

fn values<'a>(response: &'a Response<Body>, name: &str) -> Vec<&'a str> {
    response
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

async fn body(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A listener as parsed, or a part of the error message.
type Parsed = Result<(Profile, &'static str), &'static str>;

#[test]
fn profiles_and_listeners_parse_as_the_command_line_writes_them() {
    let cases: [(&str, Parsed); 7] = [
        (
            "nginx=127.0.0.1:8085",
            Ok((Profile::Nginx, "127.0.0.1:8085")),
        ),
        ("envoy=[::1]:0", Ok((Profile::Envoy, "[::1]:0"))),
        (
            "forward-auth=0.0.0.0:80",
            Ok((Profile::ForwardAuth, "0.0.0.0:80")),
        ),
        ("NGINX = 127.0.0.1:1", Ok((Profile::Nginx, "127.0.0.1:1"))),
        (
            "traefik=127.0.0.1:1",
            Err("unknown HTTP profile \"traefik\""),
        ),
        ("nginx", Err("is not PROFILE=ADDR")),
        (
            "nginx=localhost:80",
            Err("is not an IP address with a port"),
        ),
    ];
    for (input, want) in cases {
        match (input.parse::<HttpListener>(), want) {
            (Ok(got), Ok((profile, addr))) => {
                assert_eq!(got.profile, profile, "{input}");
                assert_eq!(got.addr, addr.parse::<SocketAddr>().unwrap(), "{input}");
                assert_eq!(got.to_string().parse::<HttpListener>(), Ok(got));
            }
            (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{input}: {e}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }
}

#[tokio::test]
async fn forward_auth_passes_every_denial_through_as_it_is() {
    let redirect = forward_auth(login());
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert_eq!(values(&redirect, "location"), ["http://idp/auth?state=s"]);
    assert_eq!(values(&redirect, "set-cookie"), ["s-login=b; Path=/"]);
    let down = forward_auth(store_down());
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body(down).await,
        "The session store is unavailable. Try again later.\n"
    );
}

#[test]
fn envoy_allows_with_exactly_200_and_every_upstream_header() {
    let ok = envoy(allowed_with_cookies(2));
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(values(&ok, "jwt"), ["eyJ.a.b"]);
    assert_eq!(values(&ok, HEADERS_TO_REMOVE), ["jwt"]);
    // `allowed_client_headers_on_success: [set-cookie]` copies each of them.
    assert_eq!(values(&ok, "set-cookie").len(), 2);
}

/// Envoy's HTTP client takes any 5xx as the auth server failing and answers
/// `status_on_error` (403, no body): the client would never read why.
#[tokio::test]
async fn envoy_sends_a_5xx_of_ours_as_403_with_its_body_and_the_real_status() {
    let down = envoy(store_down());
    assert_eq!(down.status(), StatusCode::FORBIDDEN);
    assert_eq!(values(&down, REAL_STATUS), ["503"]);
    assert_eq!(
        body(down).await,
        "The session store is unavailable. Try again later.\n"
    );
}

#[test]
fn envoy_passes_redirects_and_client_errors_through() {
    let redirect = envoy(login());
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert_eq!(values(&redirect, "set-cookie"), ["s-login=b; Path=/"]);
    assert!(values(&redirect, REAL_STATUS).is_empty());
    let bad = envoy(Decision::Deny(Deny::text(StatusCode::BAD_REQUEST, "bad\n")));
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// nginx `auth_request` turns every status but 2xx, 401 and 403 into a 500.
#[test]
fn nginx_answers_every_denial_with_401_and_a_sign_in_url() {
    for (label, decision, real) in [
        ("login", login(), "302"),
        ("store down", store_down(), "503"),
        (
            "our page",
            Decision::Deny(Deny::text(StatusCode::OK, "<form>")),
            "200",
        ),
    ] {
        let answer = nginx(decision, &check());
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(values(&answer, REAL_STATUS), [real], "{label}");
        assert_eq!(
            values(&answer, SIGN_IN_HEADER),
            ["/extauth/sign_in?rd=http%3A%2F%2F172.18.0.4%2Fopenai%3Fmodel%3Dx"],
            "{label}"
        );
        assert!(values(&answer, "location").is_empty(), "{label}");
        assert!(values(&answer, "set-cookie").is_empty(), "{label}");
    }
}

/// nginx copies only the first of repeated headers (`$upstream_http_set_cookie`): each
/// cookie comes in its own header for `auth_request_set` + `add_header Set-Cookie`.
#[test]
fn nginx_allows_with_200_and_one_numbered_header_per_cookie() {
    let ok = nginx(allowed_with_cookies(NGINX_COOKIE_SLOTS), &check());
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(values(&ok, "jwt"), ["eyJ.a.b"]);
    assert!(values(&ok, "set-cookie").is_empty());
    for i in 1..=NGINX_COOKIE_SLOTS {
        assert_eq!(
            values(&ok, &format!("x-extauth-set-cookie-{i}")),
            [format!("s.{i}=v{i}; Path=/").as_str()]
        );
    }
}
