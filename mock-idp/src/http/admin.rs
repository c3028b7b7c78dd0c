//! The admin API under `/admin/mock`: the test-control surface. Bound to loopback: a peer
//! that is not a loopback address gets `403` (and so does a request whose peer is unknown).
//!
//! | method | path | body / query | does |
//! | --- | --- | --- | --- |
//! | GET | `/admin/mock/clock` | | `{"now": unix_secs, "offset_seconds": n}` |
//! | POST | `/admin/mock/clock` | `{"now": unix_secs}` | sets the IdP clock |
//! | POST | `/admin/mock/clock/advance` | `{"seconds": n}` (may be negative) | moves it |
//! | DELETE | `/admin/mock/clock` | | back to the real time |
//! | GET | `/admin/mock/requests` | `?endpoint=token&realm=..&method=..&client_id=..` | `{"count", "requests": [...]}` |
//! | DELETE | `/admin/mock/requests` | | clears the log |
//! | GET | `/admin/mock/faults` | | `{"faults": [{id, kind, ..., hits}]}` |
//! | POST | `/admin/mock/faults` | a [`Fault`] (`{"kind": ..., "realm"?, "client"?, "mode"?}`) | `{"id": n}` |
//! | DELETE | `/admin/mock/faults` | | switches every fault off |
//! | DELETE | `/admin/mock/faults/{id}` | | switches one off (`404` if unknown) |
//! | GET | `/admin/mock/keys` | | `{"signing_kid", "published": [kid...]}` |
//! | POST | `/admin/mock/keys/rotate` | optional `{"alg": "RS256" \| "PS256" \| "ES256"}` | new signing key; the old stays published for the overlap |
//! | POST | `/admin/mock/logout` | `{"username": ..}` or `{"sid": ..}`, optional `"realm"` | ends the sessions, back-channel logout to their clients: `{"ended_sessions", "backchannel": [...]}` |
//!
//! Bad input is `400 {"error": "...", "path": "<field>"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backchannel::{LogoutError, LogoutTarget};
use super::error::no_store_json;
use super::{AppState, RealmState};
use crate::clock::Clock as _;
use crate::faults::{Fault, FaultKind};
use crate::keys::{SigningAlg, SigningKey};
use crate::requests::RequestFilter;

/// The admin routes, behind the loopback check.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/admin/mock/clock",
            get(clock_get).post(clock_set).delete(clock_reset),
        )
        .route("/admin/mock/clock/advance", post(clock_advance))
        .route(
            "/admin/mock/requests",
            get(requests_get).delete(requests_clear),
        )
        .route(
            "/admin/mock/faults",
            get(faults_list).post(faults_add).delete(faults_clear),
        )
        .route("/admin/mock/faults/{id}", delete(faults_remove))
        .route("/admin/mock/keys", get(keys_get))
        .route("/admin/mock/keys/rotate", post(keys_rotate))
        .route("/admin/mock/logout", post(logout))
        .layer(axum::middleware::from_fn_with_state(state, loopback_only))
}

/// Refuses peers that are not on loopback.
async fn loopback_only(State(_): State<AppState>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match peer {
        Some(ip) if ip.is_loopback() || is_mapped_loopback(ip) => next.run(req).await,
        _ => {
            tracing::warn!(?peer, "admin API refused a non-loopback peer");
            admin_error(
                StatusCode::FORBIDDEN,
                "the admin API is for loopback peers only",
                None,
            )
        }
    }
}

fn is_mapped_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

fn admin_error(status: StatusCode, message: &str, path: Option<String>) -> Response {
    let mut body = json!({ "error": message });
    if let Some(p) = path {
        body["path"] = json!(p);
    }
    no_store_json(status, body)
}

/// A JSON body that did not parse: what was wrong and where.
#[derive(Debug)]
struct BadInput {
    message: String,
    path: String,
}

impl IntoResponse for BadInput {
    fn into_response(self) -> Response {
        admin_error(StatusCode::BAD_REQUEST, &self.message, Some(self.path))
    }
}

/// Parses a JSON body, naming the bad field on failure.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BadInput> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| BadInput {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

fn clock_json(state: &AppState) -> Json<Value> {
    Json(json!({
        "now": state.clock.unix_seconds(),
        "offset_seconds": state.clock.offset_seconds(),
    }))
}

async fn clock_get(State(state): State<AppState>) -> Json<Value> {
    clock_json(&state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetClock {
    now: u64,
}

async fn clock_set(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    match parse::<SetClock>(&body) {
        Ok(set) => {
            state.clock.set(set.now);
            clock_json(&state).into_response()
        }
        Err(bad) => bad.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

async fn clock_advance(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    match parse::<Advance>(&body) {
        Ok(a) => {
            state.clock.advance(a.seconds);
            clock_json(&state).into_response()
        }
        Err(bad) => bad.into_response(),
    }
}

async fn clock_reset(State(state): State<AppState>) -> Json<Value> {
    state.clock.reset();
    clock_json(&state)
}

async fn requests_get(
    State(state): State<AppState>,
    filter: Result<Query<RequestFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = match known_query(
        filter,
        "unknown filter: expected endpoint, realm, method or client_id",
    ) {
        Ok(filter) => filter,
        Err(bad) => return bad.into_response(),
    };
    let requests = state.log.query(&filter);
    Json(json!({ "count": requests.len(), "requests": requests })).into_response()
}

async fn requests_clear(State(state): State<AppState>) -> StatusCode {
    state.log.clear();
    StatusCode::NO_CONTENT
}

async fn faults_list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "faults": state.faults.list() }))
}

async fn faults_add(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let fault = match parse::<Fault>(&body) {
        Ok(f) => f,
        Err(bad) => return bad.into_response(),
    };
    if let Some(realm) = &fault.realm
        && !state.realms.contains_key(realm)
    {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "no such realm",
            Some("realm".into()),
        );
    }
    match add_fault(&state, fault).await {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, &e, None),
    }
}

/// Registers a fault, doing first what some faults need at once, in the fault's realm or in
/// every realm (a rotation, a staged key, an extra published key).
pub(crate) async fn add_fault(state: &AppState, fault: Fault) -> Result<u64, String> {
    // Only the key faults need the realms: any other fault is registered as before.
    let realms = || state.realms_or_all(fault.realm.as_deref());
    match fault.kind {
        FaultKind::SigningKeyRotated => {
            rotate(state, &realms()?, None).await?;
            // Not kept: it acted. Listed ids stay unique all the same.
            let id = state.faults.add(fault).map_err(|e| e.to_string())?;
            state.faults.remove(id);
            return Ok(id);
        }
        FaultKind::SigningKeyRotatedAtSigning => {
            for rs in &realms()? {
                rs.key_ring.stage(new_key(state, rs, None).await?);
            }
        }
        FaultKind::IdTokenNoKidMultipleKeys => {
            for rs in &realms()? {
                rs.key_ring.publish_extra(new_key(state, rs, None).await?);
            }
        }
        _ => {}
    }
    state.faults.add(fault).map_err(|e| e.to_string())
}

/// A new key for `rs`: of `alg`, else of its signing key's algorithm.
async fn new_key(
    state: &AppState,
    rs: &RealmState,
    alg: Option<SigningAlg>,
) -> Result<Arc<SigningKey>, String> {
    let alg = alg.unwrap_or_else(|| state.keys(rs).signing.alg());
    SigningKey::generate_off_thread(alg)
        .await
        .map_err(|e| e.to_string())
}

/// A new signing key (of `alg`, else of the current key's algorithm) for each of `realms`;
/// the old one stays published for the ring's overlap.
pub(crate) async fn rotate(
    state: &AppState,
    realms: &[Arc<RealmState>],
    alg: Option<SigningAlg>,
) -> Result<(), String> {
    for rs in realms {
        let key = new_key(state, rs, alg).await?;
        tracing::info!(kid = %key.kid(), realm = rs.realm.name(), "signing key rotated");
        rs.key_ring.rotate(key, state.now());
    }
    Ok(())
}

async fn faults_clear(State(state): State<AppState>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

async fn faults_remove(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(id) if state.faults.remove(id) => StatusCode::NO_CONTENT.into_response(),
        _ => admin_error(StatusCode::NOT_FOUND, "no such fault", None),
    }
}

/// The keys of `realms`: one realm's object alone, several as `{"realms": [...]}`.
fn keys_json(state: &AppState, realms: &[Arc<RealmState>]) -> Response {
    let mut objects: Vec<Value> = realms
        .iter()
        .map(|rs| {
            let kids = rs.key_ring.kids(state.now());
            json!({
                "realm": rs.realm.name(),
                "signing_kid": kids.first(),
                "published": kids,
                "staged": rs.key_ring.staged_count(),
            })
        })
        .collect();
    let body = if objects.len() == 1 {
        objects.remove(0)
    } else {
        json!({ "realms": objects })
    };
    Json(body).into_response()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RealmQuery {
    realm: Option<String>,
}

async fn keys_get(
    State(state): State<AppState>,
    query: Result<Query<RealmQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match known_query(query, "unknown query parameter: expected realm") {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    match realms_named(&state, q.realm.as_deref()) {
        Ok(realms) => keys_json(&state, &realms),
        Err(bad) => bad.into_response(),
    }
}

/// [`AppState::realms_or_all`], an unknown realm being a 400 that names the `realm` field.
fn realms_named(
    state: &AppState,
    realm: Option<&str>,
) -> Result<Vec<Arc<RealmState>>, UnknownRealm> {
    state.realms_or_all(realm).map_err(UnknownRealm)
}

/// A `realm` the IdP does not serve.
struct UnknownRealm(String);

impl IntoResponse for UnknownRealm {
    fn into_response(self) -> Response {
        admin_error(StatusCode::BAD_REQUEST, &self.0, Some("realm".into()))
    }
}

/// A query string of known parameters, or the 400 that says which are known.
fn known_query<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
    expected: &'static str,
) -> Result<T, UnknownQuery> {
    query.map(|Query(q)| q).map_err(|_| UnknownQuery(expected))
}

/// A query string with a parameter the endpoint does not know; says which it knows.
struct UnknownQuery(&'static str);

impl IntoResponse for UnknownQuery {
    fn into_response(self) -> Response {
        admin_error(StatusCode::BAD_REQUEST, self.0, None)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    alg: Option<SigningAlg>,
    realm: Option<String>,
}

async fn keys_rotate(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let rotate_to = if body.iter().all(u8::is_ascii_whitespace) {
        Rotate::default()
    } else {
        match parse::<Rotate>(&body) {
            Ok(r) => r,
            Err(bad) => return bad.into_response(),
        }
    };
    let realms = match realms_named(&state, rotate_to.realm.as_deref()) {
        Ok(realms) => realms,
        Err(bad) => return bad.into_response(),
    };
    match rotate(&state, &realms, rotate_to.alg).await {
        Ok(()) => keys_json(&state, &realms),
        Err(e) => {
            tracing::error!(error = %e, "key rotation failed");
            admin_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "key rotation failed",
                None,
            )
        }
    }
}

/// `POST /admin/mock/logout`: a session, or every session of a user.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Logout {
    realm: Option<String>,
    sid: Option<String>,
    username: Option<String>,
}

async fn logout(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let req = match parse::<Logout>(&body) {
        Ok(r) => r,
        Err(bad) => return bad.into_response(),
    };
    let target = match (req.sid, req.username) {
        (Some(sid), None) => LogoutTarget::Session {
            realm: req.realm,
            sid,
        },
        (None, Some(username)) => LogoutTarget::User {
            realm: req.realm,
            username,
        },
        _ => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                "expected exactly one of sid and username",
                None,
            );
        }
    };
    match super::logout(&state, &target).await {
        Ok(report) => Json(report).into_response(),
        Err(e @ LogoutError::UnknownRealm(_)) => admin_error(
            StatusCode::BAD_REQUEST,
            &e.to_string(),
            Some("realm".into()),
        ),
        Err(e @ LogoutError::UnknownUser(_)) => admin_error(
            StatusCode::BAD_REQUEST,
            &e.to_string(),
            Some("username".into()),
        ),
        Err(e @ LogoutError::UnknownSession) => {
            admin_error(StatusCode::NOT_FOUND, &e.to_string(), Some("sid".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use tower::ServiceExt as _;

    use super::*;
    use crate::clock::{MockClock, SystemClock};
    use crate::faults::Faults;
    use crate::requests::RequestLog;

    fn state() -> AppState {
        AppState {
            realms: Arc::new(HashMap::new()),
            clock: Arc::new(MockClock::new(Arc::new(SystemClock))),
            faults: Arc::new(Faults::default()),
            log: Arc::new(RequestLog::default()),
            http: crate::http::outgoing_client().unwrap(),
            backchannel_timeout: std::time::Duration::from_secs(1),
        }
    }

    async fn status_from(peer: Option<&str>) -> StatusCode {
        let mut req = HttpRequest::get("/admin/mock/clock")
            .body(Body::empty())
            .unwrap();
        if let Some(p) = peer {
            req.extensions_mut()
                .insert(ConnectInfo(p.parse::<SocketAddr>().unwrap()));
        }
        let app = router(state()).with_state(state());
        app.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn the_admin_api_answers_loopback_peers_only() {
        let cases = [
            ("IPv4 loopback", Some("127.0.0.1:5000"), StatusCode::OK),
            (
                "another 127/8 address",
                Some("127.0.0.3:5000"),
                StatusCode::OK,
            ),
            ("IPv6 loopback", Some("[::1]:5000"), StatusCode::OK),
            (
                "IPv4-mapped loopback",
                Some("[::ffff:127.0.0.1]:5000"),
                StatusCode::OK,
            ),
            (
                "a LAN peer",
                Some("192.168.1.20:5000"),
                StatusCode::FORBIDDEN,
            ),
            (
                "a public IPv6 peer",
                Some("[2001:db8::1]:5000"),
                StatusCode::FORBIDDEN,
            ),
            ("an unknown peer", None, StatusCode::FORBIDDEN),
        ];
        for (label, peer, want) in cases {
            assert_eq!(status_from(peer).await, want, "{label}");
        }
    }
}
