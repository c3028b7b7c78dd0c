//! Back-channel logout, the IdP's side (OpenID Connect Back-Channel Logout 1.0): when an SSO
//! session ends by a logout (the browser's, or the admin API's), every client of the session
//! with a `backchannel.logout.url` receives a `POST` of `logout_token=<JWT>` as
//! `application/x-www-form-urlencoded`. The token is signed with the realm's key, header
//! `typ: logout+jwt`, claims `iss`, `aud` (the client), `iat`, `exp` (+120 s), `jti`, `sub`,
//! `sid` when the client asks for it, `events` (see `tokens::mint_logout`).
//!
//! The calls run concurrently, each bounded by the IdP's back-channel timeout, and each one is
//! recorded in the request log as endpoint `backchannel_logout` (the token's value redacted)
//! with the client's answer status or the error that stopped it. A failed call does not stop
//! the logout (Keycloak logs it and goes on).

use serde::Serialize;

use super::{AppState, RealmState};
use crate::faults::Endpoint;
use crate::requests::{LoggedRequest, REDACTED, redacted_params};
use crate::store::EndedSession;
use crate::tokens::{self, LogoutGrant};

/// Which sessions a logout ends (admin API `POST /admin/mock/logout`,
/// [`RunningIdp::logout`](crate::RunningIdp::logout)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutTarget {
    /// One SSO session, by its id (the ID token's `sid`, the `session_state`), in `realm`
    /// or, without one, in whichever realm has it.
    Session {
        /// The realm, or any.
        realm: Option<String>,
        /// The session id.
        sid: String,
    },
    /// Every live session of a user (by username or e-mail, as the login form takes it), in
    /// `realm` or, without one, in every realm.
    User {
        /// The realm, or every realm.
        realm: Option<String>,
        /// The username or e-mail.
        username: String,
    },
}

/// What a logout did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogoutReport {
    /// How many SSO sessions ended.
    pub ended_sessions: usize,
    /// One entry per back-channel logout call, in the order the sessions and their clients
    /// were found.
    pub backchannel: Vec<Notification>,
}

/// One back-channel logout call and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The client notified.
    pub client_id: String,
    /// Its `backchannel.logout.url`.
    pub url: String,
    /// The client's answer status (Keycloak counts any 2xx as done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why no answer came (connection refused, timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a logout target cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    /// The realm is not served.
    #[error("no such realm: {0}")]
    UnknownRealm(String),
    /// No such user in the realm(s) searched.
    #[error("no such user: {0}")]
    UnknownUser(String),
    /// No live session with this id.
    #[error("no such session")]
    UnknownSession,
}

/// Ends the sessions `target` names and notifies their clients by back-channel.
pub(crate) async fn logout(
    state: &AppState,
    target: &LogoutTarget,
) -> Result<LogoutReport, LogoutError> {
    let (realm, wanted) = match target {
        LogoutTarget::Session { realm, sid } => (realm, Wanted::Session(sid)),
        LogoutTarget::User { realm, username } => (realm, Wanted::User(username)),
    };
    let realms = state
        .realms_or_all(realm.as_deref())
        .map_err(|_| LogoutError::UnknownRealm(realm.clone().unwrap_or_default()))?;
    let now = state.now();
    let mut report = LogoutReport::default();
    let mut user_found = false;
    for rs in &realms {
        let sids = match wanted {
            Wanted::Session(sid) => {
                if rs.store().live_session(sid, now).is_none() {
                    continue;
                }
                vec![sid.clone()]
            }
            Wanted::User(username) => {
                let Some(user) = rs.realm.user_for_login(username) else {
                    continue;
                };
                user_found = true;
                rs.store().sessions_of_user(user.id(), now)
            }
        };
        let ended = end_sessions(rs, &sids);
        report.ended_sessions += ended.len();
        report.backchannel.extend(notify(state, rs, &ended).await);
    }
    match wanted {
        Wanted::Session(_) if report.ended_sessions == 0 => Err(LogoutError::UnknownSession),
        Wanted::User(username) if !user_found => Err(LogoutError::UnknownUser(username.clone())),
        _ => Ok(report),
    }
}

enum Wanted<'a> {
    Session(&'a String),
    User(&'a String),
}

/// Ends these sessions of a realm (their codes and refresh tokens die with them); the ones
/// that were live, with whom to notify.
pub(crate) fn end_sessions(rs: &RealmState, sids: &[String]) -> Vec<EndedSession> {
    let mut store = rs.store();
    let ended: Vec<EndedSession> = sids
        .iter()
        .filter_map(|sid| store.end_session(sid))
        .collect();
    drop(store);
    if !ended.is_empty() {
        tracing::info!(realm = %rs.realm.name(), sessions = ended.len(), "sessions ended");
    }
    ended
}

/// POSTs a logout token to every client of `ended` that has a back-channel logout URL,
/// concurrently; how each call went.
pub(crate) async fn notify(
    state: &AppState,
    rs: &RealmState,
    ended: &[EndedSession],
) -> Vec<Notification> {
    let calls = ended.iter().flat_map(|session| {
        session.clients.iter().filter_map(move |client_id| {
            let client = rs.realm.client(client_id)?;
            let settings = client.backchannel_logout()?;
            Some(call(state, rs, session, client_id, settings))
        })
    });
    futures::future::join_all(calls).await
}

/// One back-channel logout call, logged.
async fn call(
    state: &AppState,
    rs: &RealmState,
    session: &EndedSession,
    client_id: &str,
    settings: &crate::realm::BackChannelLogout,
) -> Notification {
    let now = state.now();
    let url = settings.url().clone();
    let minted = tokens::mint_logout(
        &state.keys(rs),
        &LogoutGrant {
            issuer: &rs.issuer,
            client_id,
            sub: &session.user_id,
            sid: settings.session_required().then_some(session.sid.as_str()),
            revoke_offline_tokens: settings.revoke_offline_tokens(),
            now,
        },
    );
    let (status, error) = match minted {
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a logout token");
            (
                None,
                Some("the logout token could not be signed".to_owned()),
            )
        }
        Ok(token) => {
            let sent = state
                .http
                .post(url.clone())
                .timeout(state.backchannel_timeout)
                .form(&[("logout_token", token)])
                .send()
                .await;
            match sent {
                Ok(resp) => (Some(resp.status().as_u16()), None),
                Err(e) if e.is_timeout() => (
                    None,
                    Some(format!(
                        "no answer within {} ms",
                        state.backchannel_timeout.as_millis()
                    )),
                ),
                Err(e) if e.is_connect() => (None, Some("connection failed".to_owned())),
                Err(e) => (None, Some(format!("request failed: {e}"))),
            }
        }
    };
    match (status, &error) {
        (Some(s), _) if (200..300).contains(&s) => {
            tracing::info!(client_id, %url, status = s, "back-channel logout delivered");
        }
        _ => tracing::warn!(client_id, %url, ?status, ?error, "back-channel logout failed"),
    }
    state.log.push(LoggedRequest {
        seq: 0,
        time: now,
        method: "POST".to_owned(),
        path: url.path().to_owned(),
        realm: Some(rs.realm.name().to_owned()),
        endpoint: Endpoint::BackchannelLogout,
        client_id: Some(client_id.to_owned()),
        query: redacted_params(url.query().unwrap_or_default().as_bytes()),
        form: [("logout_token".to_owned(), REDACTED.to_owned())].into(),
        headers: vec!["content-type".to_owned()],
        status,
        url: Some(url.to_string()),
        error: error.clone(),
    });
    Notification {
        client_id: client_id.to_owned(),
        url: url.into(),
        status,
        error,
    }
}
