//! Server-side state of one realm: pending logins (rendered forms), SSO sessions,
//! authorization codes and current refresh tokens.
//!
//! Owns lifetimes and single use: a code or refresh token is removed the moment it is
//! presented, whatever the outcome, so a replay always fails. It does not authenticate
//! anyone and never reads the clock itself (callers pass `now`). Held behind a std `Mutex`
//! that is never held across an `.await`.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::ids;
use crate::realm::Lifetimes;
use crate::tokens::Scope;

/// How often, at most, expired entries are swept (seconds).
const PURGE_INTERVAL: u64 = 30;
/// How long an expired login form is remembered, so its page can still offer a restart link.
const EXPIRED_LOGIN_GRACE: u64 = 3600;

/// A PKCE code-challenge method (RFC 7636 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PkceMethod {
    Plain,
    S256,
}

impl PkceMethod {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "plain" => Some(Self::Plain),
            "S256" => Some(Self::S256),
            _ => None,
        }
    }
}

/// Why a `code_verifier` was refused; the descriptions are Keycloak's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PkceFailure {
    Missing,
    Malformed,
    Mismatch,
}

impl PkceFailure {
    pub(crate) fn description(self) -> &'static str {
        match self {
            Self::Missing => "PKCE code verifier not specified",
            Self::Malformed => "PKCE verification failed: Invalid code verifier",
            Self::Mismatch => "PKCE verification failed: Code mismatch",
        }
    }
}

/// A code challenge sent with the authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pkce {
    pub challenge: String,
    pub method: PkceMethod,
}

/// RFC 7636 4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
/// The same grammar holds for a challenge (4.2).
pub(crate) fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Pkce {
    /// Checks a `code_verifier` against the challenge.
    pub(crate) fn verify(&self, verifier: Option<&str>) -> Result<(), PkceFailure> {
        let verifier = verifier.ok_or(PkceFailure::Missing)?;
        if !is_pkce_value(verifier) {
            return Err(PkceFailure::Malformed);
        }
        let computed = match self.method {
            PkceMethod::Plain => verifier.to_owned(),
            PkceMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        };
        if bool::from(computed.as_bytes().ct_eq(self.challenge.as_bytes())) {
            Ok(())
        } else {
            Err(PkceFailure::Mismatch)
        }
    }
}

/// A validated authorization request, waiting for the user to log in.
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    /// Where the code goes (the request's `redirect_uri`, or the client's only one).
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it).
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scope: Scope,
    pub pkce: Option<Pkce>,
    /// The authorization request's query string, to restart an expired login.
    pub restart_query: String,
}

/// A rendered login form.
#[derive(Debug, Clone)]
pub(crate) struct PendingLogin {
    pub session_code: String,
    pub request: AuthRequest,
    pub expires_at: u64,
}

/// Why a login form post was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PendingLookup {
    /// No such form (or the parameters do not belong together).
    Unknown,
    /// The form is too old; carries the authorization query to start again.
    Expired { restart_query: String },
}

/// A browser's logged-in session at the IdP (what `KEYCLOAK_SESSION` names).
#[derive(Debug, Clone)]
pub(crate) struct SsoSession {
    pub user_id: String,
    pub auth_time: u64,
    pub started: u64,
    pub last_used: u64,
    /// The clients that received a code in this session (Keycloak's client sessions), in
    /// first-use order: the ones a logout notifies.
    pub clients: Vec<String>,
}

/// A session that a logout ended: whom to notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndedSession {
    pub sid: String,
    pub user_id: String,
    pub clients: Vec<String>,
}

impl SsoSession {
    fn expires_at(&self, l: &Lifetimes) -> u64 {
        (self.last_used + l.sso_idle).min(self.started + l.sso_max)
    }
}

/// An issued authorization code.
#[derive(Clone)]
pub(crate) struct CodeGrant {
    pub request: AuthRequest,
    pub sid: String,
    pub user_id: String,
    pub auth_time: u64,
    /// `"1"` after a password login, `"0"` from an existing SSO session.
    pub acr: &'static str,
    pub expires_at: u64,
}

impl fmt::Debug for CodeGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeGrant")
            .field("client_id", &self.request.client_id)
            .field("sid", &self.sid)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What the current refresh token of a client session stands for.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub client_id: String,
    pub sid: String,
    pub user_id: String,
    pub nonce: Option<String>,
    pub scope: Scope,
    pub auth_time: u64,
    pub acr: &'static str,
}

/// The state of one realm.
pub(crate) struct Store {
    lifetimes: Lifetimes,
    pending: HashMap<String, PendingLogin>,
    sessions: HashMap<String, SsoSession>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    last_purge: u64,
    /// Whether expired entries are dropped (Keycloak's periodic cleanup); see
    /// [`crate::MockIdpBuilder::keep_expired_sessions`].
    purge: bool,
}

impl fmt::Debug for Store {
    // Codes and session ids are bearer secrets: show counts only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("pending", &self.pending.len())
            .field("sessions", &self.sessions.len())
            .field("codes", &self.codes.len())
            .field("refresh", &self.refresh.len())
            .finish()
    }
}

impl Store {
    pub(crate) fn new(lifetimes: Lifetimes) -> Self {
        Self {
            lifetimes,
            pending: HashMap::new(),
            sessions: HashMap::new(),
            codes: HashMap::new(),
            refresh: HashMap::new(),
            last_purge: 0,
            purge: true,
        }
    }

    /// Never drops expired sessions, codes or refresh tokens: they stay unusable while
    /// expired, and usable again if the clock is set back before their expiry.
    pub(crate) fn keep_expired(mut self) -> Self {
        self.purge = false;
        self
    }

    /// Remembers a request whose login form is being rendered; returns `(tab_id,
    /// session_code)` for the form's action URL.
    pub(crate) fn begin_login(&mut self, request: AuthRequest, now: u64) -> (String, String) {
        self.maybe_purge(now);
        let tab_id = ids::random_token(8);
        let session_code = ids::random_token(32);
        self.pending.insert(
            tab_id.clone(),
            PendingLogin {
                session_code: session_code.clone(),
                request,
                expires_at: now + self.lifetimes.login,
            },
        );
        (tab_id, session_code)
    }

    /// The pending login a form post names, if its parameters belong together and it is
    /// still fresh.
    pub(crate) fn pending(
        &self,
        tab_id: &str,
        session_code: &str,
        client_id: &str,
        now: u64,
    ) -> Result<&PendingLogin, PendingLookup> {
        let p = self.pending.get(tab_id).ok_or(PendingLookup::Unknown)?;
        let code_ok: bool = p
            .session_code
            .as_bytes()
            .ct_eq(session_code.as_bytes())
            .into();
        if !code_ok || p.request.client_id != client_id {
            return Err(PendingLookup::Unknown);
        }
        if now >= p.expires_at {
            return Err(PendingLookup::Expired {
                restart_query: p.request.restart_query.clone(),
            });
        }
        Ok(p)
    }

    /// Removes a pending login once it has succeeded.
    pub(crate) fn finish_login(&mut self, tab_id: &str) -> Option<PendingLogin> {
        self.pending.remove(tab_id)
    }

    /// Starts an SSO session for a user who just proved their password; returns its id
    /// (`sid`, `session_state`, and the `KEYCLOAK_SESSION` cookie value).
    pub(crate) fn create_session(&mut self, user_id: &str, now: u64) -> (String, SsoSession) {
        self.maybe_purge(now);
        let sid = ids::random_uuid();
        let session = SsoSession {
            user_id: user_id.to_owned(),
            auth_time: now,
            started: now,
            last_used: now,
            clients: Vec::new(),
        };
        self.sessions.insert(sid.clone(), session.clone());
        (sid, session)
    }

    /// The session, if it exists and has neither idled out nor reached its maximum age.
    pub(crate) fn live_session(&self, sid: &str, now: u64) -> Option<&SsoSession> {
        self.sessions
            .get(sid)
            .filter(|s| now < s.expires_at(&self.lifetimes))
    }

    /// Marks a live session as used now; returns when it will expire (also the new refresh
    /// token's expiry), or `None` if it is no longer live.
    pub(crate) fn touch_session(&mut self, sid: &str, now: u64) -> Option<u64> {
        let lifetimes = self.lifetimes;
        let s = self.sessions.get_mut(sid)?;
        if now >= s.expires_at(&lifetimes) {
            return None;
        }
        s.last_used = now;
        Some(s.expires_at(&lifetimes))
    }

    /// Ends a session: its codes and refresh tokens stop working with it. Returns what the
    /// logout must notify, or `None` for an unknown (or already ended) session.
    pub(crate) fn end_session(&mut self, sid: &str) -> Option<EndedSession> {
        self.codes.retain(|_, c| c.sid != sid);
        self.refresh.retain(|_, r| r.sid != sid);
        self.sessions.remove(sid).map(|s| EndedSession {
            sid: sid.to_owned(),
            user_id: s.user_id,
            clients: s.clients,
        })
    }

    /// The ids of a user's live sessions, oldest first.
    pub(crate) fn sessions_of_user(&self, user_id: &str, now: u64) -> Vec<String> {
        let mut found: Vec<(&String, &SsoSession)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user_id == user_id && now < s.expires_at(&self.lifetimes))
            .collect();
        found.sort_by_key(|(sid, s)| (s.started, *sid));
        found.into_iter().map(|(sid, _)| sid.clone()).collect()
    }

    /// Issues a single-use authorization code, shaped like Keycloak's
    /// (`<uuid>.<session id>.<uuid>`).
    pub(crate) fn issue_code(
        &mut self,
        request: AuthRequest,
        sid: &str,
        session: &SsoSession,
        acr: &'static str,
        now: u64,
    ) -> String {
        self.maybe_purge(now);
        if let Some(s) = self.sessions.get_mut(sid)
            && !s.clients.contains(&request.client_id)
        {
            s.clients.push(request.client_id.clone());
        }
        let code = format!("{}.{}.{}", ids::random_uuid(), sid, ids::random_uuid());
        self.codes.insert(
            code.clone(),
            CodeGrant {
                request,
                sid: sid.to_owned(),
                user_id: session.user_id.clone(),
                auth_time: session.auth_time,
                acr,
                expires_at: now + self.lifetimes.access_code,
            },
        );
        code
    }

    /// Takes a code out of the store (it can never be presented again) and returns its grant
    /// if it had not expired.
    pub(crate) fn redeem_code(&mut self, code: &str, now: u64) -> Option<CodeGrant> {
        self.codes.remove(code).filter(|c| now < c.expires_at)
    }

    /// Records the refresh token with id `jti` as the current one of its client session.
    pub(crate) fn remember_refresh(&mut self, jti: String, grant: RefreshGrant) {
        self.refresh.insert(jti, grant);
    }

    /// The grant of a current refresh token, without consuming it.
    pub(crate) fn peek_refresh(&self, jti: &str) -> Option<&RefreshGrant> {
        self.refresh.get(jti)
    }

    /// Takes a refresh token out of the store (rotation: it can never be used again).
    pub(crate) fn take_refresh(&mut self, jti: &str) -> Option<RefreshGrant> {
        self.refresh.remove(jti)
    }

    fn maybe_purge(&mut self, now: u64) {
        if !self.purge || now < self.last_purge + PURGE_INTERVAL {
            return;
        }
        self.last_purge = now;
        let l = self.lifetimes;
        self.pending
            .retain(|_, p| now < p.expires_at + EXPIRED_LOGIN_GRACE);
        self.codes.retain(|_, c| now < c.expires_at);
        self.sessions.retain(|_, s| now < s.expires_at(&l));
        let sessions = &self.sessions;
        self.refresh.retain(|_, r| sessions.contains_key(&r.sid));
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.pending.len(),
            self.sessions.len(),
            self.codes.len(),
            self.refresh.len(),
        )
    }
}
