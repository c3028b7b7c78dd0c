//! Faults: misbehaviour on demand, switched per realm and per client, once or sticky.
//!
//! This module owns the registry only: what is switched on, for whom, and whether it is
//! spent. The endpoints ask it at the moment a fault would act (the token endpoint for ID
//! token faults, the authorization redirect for flow faults, a middleware for operational
//! faults) and apply the effect themselves. A `once` fault is removed the first time it
//! acts; a `sticky` one stays until deleted.
//!
//! JSON shape (admin API `POST /admin/mock/faults`, scenario files, [`Fault`]'s serde form):
//!
//! ```json
//! {"kind": "id_token_issuer", "realm": "master", "client": "agentgateway", "mode": "once"}
//! {"kind": "latency", "endpoint": "token", "ms": 200, "max_ms": 400, "mode": "sticky"}
//! ```
//!
//! `realm` and `client` are optional filters (absent = any); `mode` defaults to `once`.

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// The longest a `timeout` fault hangs, whatever it asks for (seconds).
pub const MAX_HANG_SECONDS: u64 = 120;

/// The IdP endpoints, as the request log and operational faults name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// `/protocol/openid-connect/certs`.
    Jwks,
    /// `/protocol/openid-connect/auth`.
    Authorize,
    /// `/login-actions/authenticate`.
    Login,
    /// `/protocol/openid-connect/token`.
    Token,
    /// `/protocol/openid-connect/userinfo`.
    Userinfo,
    /// `/protocol/openid-connect/logout`.
    Logout,
    /// `/protocol/openid-connect/token/introspect`.
    Introspect,
    /// `/protocol/openid-connect/revoke`.
    Revoke,
    /// A back-channel logout call the IdP made to a client (request log only: no fault acts
    /// on it).
    BackchannelLogout,
    /// Anything else (health, unknown paths).
    Other,
}

impl Endpoint {
    /// The realm and endpoint a request path addresses (`None` realm outside `/realms/`).
    pub fn classify(path: &str) -> (Option<String>, Self) {
        let Some(rest) = path.strip_prefix("/realms/") else {
            return (None, Self::Other);
        };
        let (realm, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let realm = percent_decode(realm);
        let endpoint = match tail {
            ".well-known/openid-configuration" => Self::Discovery,
            "protocol/openid-connect/certs" => Self::Jwks,
            "protocol/openid-connect/auth" => Self::Authorize,
            "login-actions/authenticate" => Self::Login,
            "protocol/openid-connect/token" => Self::Token,
            "protocol/openid-connect/userinfo" => Self::Userinfo,
            "protocol/openid-connect/logout" => Self::Logout,
            "protocol/openid-connect/token/introspect" => Self::Introspect,
            "protocol/openid-connect/revoke" => Self::Revoke,
            _ => Self::Other,
        };
        (Some(realm), endpoint)
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// Once (spent the first time it acts) or sticky (until deleted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Acts once, then disappears (the default).
    #[default]
    Once,
    /// Acts every time until deleted.
    Sticky,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    // --- ID token faults (OpenID RP certification), on the `authorization_code` grant ---
    /// `iss` is another issuer (`rp-id_token-issuer-mismatch`).
    IdTokenIssuer,
    /// `aud` is another client (`rp-id_token-aud`).
    IdTokenAudience,
    /// `nonce` differs from the request's (`rp-nonce-invalid`).
    IdTokenNonce,
    /// No `sub` (`rp-id_token-sub`).
    IdTokenMissingSub,
    /// No `aud`.
    IdTokenMissingAud,
    /// No `iat` (`rp-id_token-iat`).
    IdTokenMissingIat,
    /// The signature does not verify (`rp-id_token-bad-sig-rs256`).
    IdTokenBadSignature,
    /// `alg: none`, no signature (`rp-id_token-sig-none`).
    IdTokenAlgNone,
    /// No `kid` in the header while the JWKS holds one key (`rp-id_token-kid-absent-single-jwks`).
    IdTokenNoKid,
    /// No `kid` while the JWKS holds several keys (`rp-id_token-kid-absent-multiple-jwks`):
    /// adding it publishes an extra, unused key.
    IdTokenNoKidMultipleKeys,
    /// `exp` an hour in the past.
    IdTokenExpired,
    /// `iat` an hour in the future.
    IdTokenIatFuture,
    /// `aud` is a list with an extra, untrusted audience (OIDC Core 3.1.3.7 step 3).
    IdTokenExtraAudience,
    /// The signing key is rotated when the fault is added (`rp-key-rotation-op-sign-key`):
    /// tokens carry a `kid` the relying party has not cached yet; the old key stays published
    /// for the overlap. Not kept in the registry.
    SigningKeyRotated,
    /// The signing key is rotated at the moment the next code-grant ID token is signed
    /// (`rp-key-rotation-op-sign-key`, the late variant): its `kid` was not published
    /// however recently the relying party fetched the JWKS. The key is generated when the
    /// fault is added and staged unpublished; a sticky fault stages the next one after each
    /// use (off the request path).
    SigningKeyRotatedAtSigning,
    /// The discovery document's `issuer` differs from the URL it was fetched from
    /// (`rp-discovery-issuer-not-matching-config`).
    DiscoveryIssuerMismatch,
    /// Userinfo returns another `sub` than the ID token's (`rp-userinfo-bad-sub-claim`).
    UserinfoSubMismatch,
    /// The ID token of a `refresh_token` grant response has another `iss` (OIDC Core 12.2).
    RefreshChangedIssuer,
    /// ... another `sub`.
    RefreshChangedSubject,
    /// ... another `aud`.
    RefreshChangedAudience,

    // --- Flow faults, on the redirect back to the client ---
    /// `state` is changed.
    StateAltered,
    /// `state` is left out.
    StateDropped,
    /// The RFC 9207 `iss` parameter names another issuer.
    AuthorizationIssuerWrong,
    /// The code is bound to another client, so the exchange fails (`invalid_grant`).
    CodeForOtherClient,

    // --- Operational faults, per endpoint ---
    /// Delay the response: `ms`, or uniform in `ms..=max_ms`.
    Latency {
        /// Which endpoint.
        endpoint: Endpoint,
        /// The delay, or the lower bound of the range.
        ms: u64,
        /// Upper bound of a uniform range.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_ms: Option<u64>,
    },
    /// Answer with this HTTP status (e.g. 503) and a JSON error body.
    Status {
        /// Which endpoint.
        endpoint: Endpoint,
        /// The status code (400..=599).
        status: u16,
    },
    /// Drop the connection without a complete response.
    ConnectionReset {
        /// Which endpoint.
        endpoint: Endpoint,
    },
    /// Hang for `seconds` (at most [`MAX_HANG_SECONDS`]), then drop the connection.
    Timeout {
        /// Which endpoint.
        endpoint: Endpoint,
        /// How long to hang.
        seconds: u64,
    },
}

impl FaultKind {
    /// The endpoint of an operational fault.
    pub fn operational_endpoint(&self) -> Option<Endpoint> {
        match self {
            Self::Latency { endpoint, .. }
            | Self::Status { endpoint, .. }
            | Self::ConnectionReset { endpoint }
            | Self::Timeout { endpoint, .. } => Some(*endpoint),
            _ => None,
        }
    }

    /// Acts on the ID token of an `authorization_code` grant response.
    pub(crate) fn is_id_token_fault(&self) -> bool {
        matches!(
            self,
            Self::IdTokenIssuer
                | Self::IdTokenAudience
                | Self::IdTokenNonce
                | Self::IdTokenMissingSub
                | Self::IdTokenMissingAud
                | Self::IdTokenMissingIat
                | Self::IdTokenBadSignature
                | Self::IdTokenAlgNone
                | Self::IdTokenNoKid
                | Self::IdTokenNoKidMultipleKeys
                | Self::IdTokenExpired
                | Self::IdTokenIatFuture
                | Self::IdTokenExtraAudience
                | Self::SigningKeyRotatedAtSigning
        )
    }

    /// Acts on the ID token of a `refresh_token` grant response.
    pub(crate) fn is_refresh_fault(&self) -> bool {
        matches!(
            self,
            Self::RefreshChangedIssuer | Self::RefreshChangedSubject | Self::RefreshChangedAudience
        )
    }

    /// Acts on the redirect back to the client.
    pub(crate) fn is_flow_fault(&self) -> bool {
        matches!(
            self,
            Self::StateAltered
                | Self::StateDropped
                | Self::AuthorizationIssuerWrong
                | Self::CodeForOtherClient
        )
    }

    /// Whether the values are usable.
    fn validate(&self) -> Result<(), FaultError> {
        if self.operational_endpoint() == Some(Endpoint::BackchannelLogout) {
            return Err(FaultError::OutgoingEndpoint);
        }
        match self {
            Self::Status { status, .. } if !(400..=599).contains(status) => {
                Err(FaultError::Status(*status))
            }
            Self::Latency {
                ms,
                max_ms: Some(max),
                ..
            } if max < ms => Err(FaultError::Range {
                min: *ms,
                max: *max,
            }),
            _ => Ok(()),
        }
    }
}

/// A fault and whom it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What goes wrong.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only in this realm (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Only for this client (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Once (default) or sticky.
    #[serde(default)]
    pub mode: FaultMode,
}

impl Fault {
    /// A `once` fault for any realm and client.
    pub fn once(kind: FaultKind) -> Self {
        Self {
            kind,
            realm: None,
            client: None,
            mode: FaultMode::Once,
        }
    }

    /// A `sticky` fault for any realm and client.
    pub fn sticky(kind: FaultKind) -> Self {
        Self {
            mode: FaultMode::Sticky,
            ..Self::once(kind)
        }
    }

    /// Restricted to one realm.
    #[must_use]
    pub fn in_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Restricted to one client.
    #[must_use]
    pub fn for_client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    fn applies(&self, realm: &str, client: Option<&str>) -> bool {
        self.realm.as_deref().is_none_or(|r| r == realm)
            && match (&self.client, client) {
                (None, _) => true,
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
            }
    }
}

/// Why a fault was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// An operational fault on `backchannel_logout`, a call the IdP makes rather than serves.
    #[error(
        "backchannel_logout is a call the IdP makes: no operational fault acts on it \
         (make the client's endpoint slow or failing instead)"
    )]
    OutgoingEndpoint,
    /// A `status` fault outside 400..=599.
    #[error("status {0} is not an error status (expected 400..=599)")]
    Status(u16),
    /// A latency range upside down.
    #[error("latency max_ms {max} is below ms {min}")]
    Range {
        /// `ms`.
        min: u64,
        /// `max_ms`.
        max: u64,
    },
}

/// A registered fault, as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveFault {
    /// Its id (for `DELETE /admin/mock/faults/{id}`).
    pub id: u64,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
    /// How many times it has acted.
    pub hits: u64,
}

/// The registry of switched-on faults, shared by the endpoints and the admin API.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    active: Vec<ActiveFault>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Every operation leaves the list consistent, so a poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switches a fault on; returns its id.
    pub fn add(&self, fault: Fault) -> Result<u64, FaultError> {
        fault.kind.validate()?;
        let mut reg = self.lock();
        reg.next_id += 1;
        let id = reg.next_id;
        reg.active.push(ActiveFault { id, fault, hits: 0 });
        Ok(id)
    }

    /// Every switched-on fault, oldest first.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.lock().active.clone()
    }

    /// Switches one fault off; whether it was there.
    pub fn remove(&self, id: u64) -> bool {
        let mut reg = self.lock();
        let before = reg.active.len();
        reg.active.retain(|a| a.id != id);
        reg.active.len() != before
    }

    /// Switches every fault off.
    pub fn clear(&self) {
        self.lock().active.clear();
    }

    /// The faults that act now on this realm and client and satisfy `wanted`, oldest first;
    /// `once` faults among them are spent.
    pub(crate) fn take(
        &self,
        realm: &str,
        client: Option<&str>,
        wanted: impl Fn(&FaultKind) -> bool,
    ) -> Vec<FaultKind> {
        let mut reg = self.lock();
        let mut taken = Vec::new();
        reg.active.retain_mut(|a| {
            if a.fault.applies(realm, client) && wanted(&a.fault.kind) {
                a.hits += 1;
                taken.push(a.fault.kind.clone());
                a.fault.mode == FaultMode::Sticky
            } else {
                true
            }
        });
        taken
    }
}
