//! Front-channel logout (Solo's `frontChannelLogout`) and back-channel logout (the extauth
//! extension `backChannelLogout`), against the memory store and a real Redis: the sessions of
//! the named IdP session (or user) end, others stay, and bad requests get the spec's answers.

use http::StatusCode;

use super::signed::{CLIENT_ID, NOW, SignedIdp, flow_for, log_in, with_fields};
use crate::flow::{CheckRequest, Decision, Deny, Flow};
use crate::oidc::BACKCHANNEL_LOGOUT_EVENT;
use crate::server::StoreChoice;
use crate::testing::RedisProcess;

const CHANNELS: &str = "        frontChannelLogout: {path: /fc-logout}\n        backChannelLogout: {path: /bc-logout}\n";

#[derive(Clone, Copy, Debug)]
enum Store {
    Memory,
    Redis,
}

struct Stack {
    flow: Flow,
    idp: SignedIdp,
    redis: Option<RedisProcess>,
}

async fn stack(store: Store) -> Stack {
    let idp = SignedIdp::start().await;
    let redis = match store {
        Store::Memory => None,
        Store::Redis => Some(RedisProcess::start().expect("redis-server must be installed")),
    };
    let (choice, host) = match &redis {
        None => (StoreChoice::Memory, "127.0.0.1:1".to_owned()),
        Some(r) => (StoreChoice::FromConfig, format!("127.0.0.1:{}", r.port())),
    };
    let (flow, _clock) = flow_for(&idp, with_fields(CHANNELS), choice, &host, &[]);
    Stack { flow, idp, redis }
}

async fn decide(flow: &Flow, check: CheckRequest) -> Decision {
    flow.decide(&check).await
}

fn deny(d: Decision) -> Deny {
    match d {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!("expected an answer of ours, got {a:?}"),
    }
}

async fn logged_in(s: &Stack, cookie: &str) -> bool {
    let check =
        CheckRequest::new("GET", "http", "172.18.0.4", "/openai").with_header("cookie", cookie);
    matches!(decide(&s.flow, check).await, Decision::Allow(_))
}

fn header<'a>(d: &'a Deny, name: &str) -> Option<&'a str> {
    d.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn front(query: &str) -> CheckRequest {
    CheckRequest::new("GET", "http", "172.18.0.4", &format!("/fc-logout?{query}"))
}

fn back(body: &str) -> CheckRequest {
    let mut check = CheckRequest::new("POST", "http", "172.18.0.4", "/bc-logout")
        .with_header("content-type", "application/x-www-form-urlencoded");
    check.body = Some(body.as_bytes().to_vec());
    check
}

fn logout_token(idp: &SignedIdp, edit: impl Fn(&mut serde_json::Value)) -> String {
    let mut claims = serde_json::json!({
        "iss": idp.issuer,
        "aud": CLIENT_ID,
        "iat": NOW,
        "exp": NOW + 120,
        "jti": "logout-1",
        "sid": "idp-session-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    });
    edit(&mut claims);
    idp.sign(&claims)
}

fn form(token: &str) -> String {
    format!(
        "logout_token={}",
        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    )
}

fn invalid_request(d: &Deny, description: &str) {
    assert_eq!(d.status, StatusCode::BAD_REQUEST, "{}", d.body);
    let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_request", "error_description": description})
    );
    assert_eq!(header(d, "content-type"), Some("application/json"));
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(super::Store::Memory).await })*
        }
        mod redis {
            $(#[tokio::test] async fn $name() { super::$name(super::Store::Redis).await })*
        }
    };
}

both_stores!(
    front_channel_logout_ends_every_session_of_the_named_idp_session,
    front_channel_logout_ends_the_browsers_own_session_and_removes_its_cookie,
    back_channel_logout_ends_the_sessions_of_the_sid_once,
    back_channel_logout_by_sub_ends_every_session_of_the_user,
);

async fn front_channel_logout_ends_every_session_of_the_named_idp_session(store: Store) {
    let s = stack(store).await;
    let a = log_in(&s.flow, &s.idp, |_| {}).await;
    let b = log_in(&s.flow, &s.idp, |_| {}).await;
    let other = log_in(&s.flow, &s.idp, |c| c["sid"] = "idp-session-2".into()).await;
    let issuer = form_urlencoded::byte_serialize(s.idp.issuer.as_bytes()).collect::<String>();
    let d = deny(decide(&s.flow, front(&format!("iss={issuer}&sid=idp-session-1"))).await);
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(header(&d, "cache-control"), Some("no-cache, no-store"));
    assert_eq!(header(&d, "pragma"), Some("no-cache"));
    assert!(!logged_in(&s, &a).await);
    assert!(!logged_in(&s, &b).await);
    assert!(logged_in(&s, &other).await, "another IdP session stays");
    if let Some(redis) = &s.redis {
        no_stored_value_is_a_cookie(redis, &[&a, &b, &other]).await;
    }
}

/// A Redis dump holds index entries, never a value usable as a session cookie.
async fn no_stored_value_is_a_cookie(redis: &RedisProcess, cookies: &[&str]) {
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut stored: Vec<String> = keys.clone();
    for key in keys.iter().filter(|k| k.starts_with("idx:")) {
        let members: Vec<String> = ::redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let ttl: i64 = ::redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "index {key} expires");
        stored.extend(members);
    }
    assert!(
        stored.iter().any(|k| k.starts_with("idx:sub:")),
        "{stored:?}"
    );
    for cookie in cookies {
        let value = cookie.split_once('=').unwrap().1;
        for s in &stored {
            assert!(!s.contains(value), "a stored value holds a session id");
            assert!(crate::session::SessionId::parse(s).is_none(), "{s}");
        }
    }
}

async fn front_channel_logout_ends_the_browsers_own_session_and_removes_its_cookie(store: Store) {
    let s = stack(store).await;
    let issuer = form_urlencoded::byte_serialize(s.idp.issuer.as_bytes()).collect::<String>();
    for query in [String::new(), format!("iss={issuer}&sid=idp-session-1")] {
        let a = log_in(&s.flow, &s.idp, |_| {}).await;
        let d = deny(decide(&s.flow, front(&query).with_header("cookie", &a)).await);
        assert_eq!(d.status, StatusCode::OK, "{query}: {}", d.body);
        let removal = header(&d, "set-cookie")
            .unwrap_or_else(|| panic!("{query}: the cookie is removed: {:?}", d.headers));
        assert!(
            removal.starts_with("keycloak-session=;"),
            "{query}: {removal}"
        );
        assert!(!logged_in(&s, &a).await, "{query}");
    }
    // The cookie of another IdP session stays when a `sid` is named.
    let other = log_in(&s.flow, &s.idp, |c| c["sid"] = "idp-session-2".into()).await;
    let d = deny(
        decide(
            &s.flow,
            front(&format!("iss={issuer}&sid=idp-session-1")).with_header("cookie", &other),
        )
        .await,
    );
    assert_eq!(header(&d, "set-cookie"), None);
    assert!(logged_in(&s, &other).await);
}

async fn back_channel_logout_ends_the_sessions_of_the_sid_once(store: Store) {
    let s = stack(store).await;
    let a = log_in(&s.flow, &s.idp, |_| {}).await;
    let other = log_in(&s.flow, &s.idp, |c| c["sid"] = "idp-session-2".into()).await;
    let token = logout_token(&s.idp, |_| {});
    let d = deny(decide(&s.flow, back(&form(&token))).await);
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(header(&d, "cache-control"), Some("no-cache, no-store"));
    assert!(!logged_in(&s, &a).await);
    assert!(logged_in(&s, &other).await);
    let replay = deny(decide(&s.flow, back(&form(&token))).await);
    invalid_request(&replay, "this logout token was already used");
}

async fn back_channel_logout_by_sub_ends_every_session_of_the_user(store: Store) {
    let s = stack(store).await;
    let a = log_in(&s.flow, &s.idp, |_| {}).await;
    let b = log_in(&s.flow, &s.idp, |c| c["sid"] = "idp-session-2".into()).await;
    let other_user = log_in(&s.flow, &s.idp, |c| c["sub"] = "user-2".into()).await;
    let token = logout_token(&s.idp, |c| {
        c.as_object_mut().unwrap().remove("sid");
        c["sub"] = "user-1".into();
    });
    let d = deny(decide(&s.flow, back(&form(&token))).await);
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert!(!logged_in(&s, &a).await);
    assert!(!logged_in(&s, &b).await);
    assert!(logged_in(&s, &other_user).await);
}

#[tokio::test]
async fn front_channel_logout_refuses_another_issuer_and_a_sid_without_iss() {
    let s = stack(Store::Memory).await;
    let a = log_in(&s.flow, &s.idp, |_| {}).await;
    let d = deny(
        decide(
            &s.flow,
            front("iss=https%3A%2F%2Fevil.example&sid=idp-session-1"),
        )
        .await,
    );
    invalid_request(&d, "`iss` names another issuer");
    let d = deny(decide(&s.flow, front("sid=idp-session-1")).await);
    invalid_request(&d, "`sid` was sent without `iss`");
    assert!(logged_in(&s, &a).await, "nothing ended");
    let mut post = front("");
    post.method = "POST".into();
    let d = deny(decide(&s.flow, post).await);
    assert_eq!(d.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&d, "allow"), Some("GET"));
}

#[tokio::test]
async fn back_channel_logout_refuses_invalid_tokens_with_400_invalid_request() {
    let s = stack(Store::Memory).await;
    let a = log_in(&s.flow, &s.idp, |_| {}).await;
    let bad: Vec<(&str, String)> = vec![
        (
            "no events",
            logout_token(&s.idp, |c| {
                c.as_object_mut().unwrap().remove("events");
            }),
        ),
        ("a nonce", logout_token(&s.idp, |c| c["nonce"] = "n".into())),
        (
            "another audience",
            logout_token(&s.idp, |c| c["aud"] = "other".into()),
        ),
        (
            "another issuer",
            logout_token(&s.idp, |c| c["iss"] = "https://evil.example".into()),
        ),
        (
            "too old",
            logout_token(&s.idp, |c| c["iat"] = (NOW - 3600).into()),
        ),
        (
            "no jti",
            logout_token(&s.idp, |c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("not a jwt", "abc".into()),
        ("bad signature", {
            let t = logout_token(&s.idp, |_| {});
            format!("{}x", &t[..t.len() - 1])
        }),
    ];
    for (label, token) in bad {
        let d = deny(decide(&s.flow, back(&form(&token))).await);
        assert_eq!(d.status, StatusCode::BAD_REQUEST, "{label}: {}", d.body);
        invalid_request(&d, "the logout token is not valid");
    }
    assert!(logged_in(&s, &a).await, "nothing ended");
    let d = deny(decide(&s.flow, back("other=1")).await);
    invalid_request(
        &d,
        "expected a form with `logout_token` (application/x-www-form-urlencoded)",
    );
    let mut no_body = back("");
    no_body.body = None;
    let d = deny(decide(&s.flow, no_body).await);
    invalid_request(
        &d,
        "no request body reached extauth: the gateway must forward it (Envoy: with_request_body)",
    );
    let d = deny(
        decide(
            &s.flow,
            CheckRequest::new("GET", "http", "172.18.0.4", "/bc-logout"),
        )
        .await,
    );
    assert_eq!(d.status, StatusCode::METHOD_NOT_ALLOWED);
}
