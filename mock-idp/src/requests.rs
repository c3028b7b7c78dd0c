//! The request log: every request the IdP served (outside the admin API), and every
//! back-channel logout call it made, for assertions such as "the relying party sent a
//! `code_verifier`", "it never called userinfo" or "the client was told of the logout".
//!
//! Secrets never enter the log: values of secret parameters (passwords, client secrets, codes,
//! verifiers, tokens) are replaced by [`REDACTED`], so their presence stays observable, and
//! only header names are kept. The log is bounded ([`MAX_ENTRIES`], oldest dropped first).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use crate::faults::Endpoint;

/// What a secret parameter's value reads as in the log.
pub const REDACTED: &str = "[redacted]";

/// The most entries kept.
pub const MAX_ENTRIES: usize = 10_000;

/// Parameters whose values are secrets.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "client_secret",
    "client_assertion",
    "code",
    "code_verifier",
    "refresh_token",
    "access_token",
    "id_token_hint",
    "token",
    "session_code",
    "logout_token",
];

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// Position in the log since start (never reused, survives clears).
    pub seq: u64,
    /// The IdP clock at arrival (Unix seconds).
    pub time: u64,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The realm the path addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// The endpoint the path addresses.
    pub endpoint: Endpoint,
    /// The client, from `client_id` (query or form) or HTTP Basic credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Query parameters (secret values redacted; first occurrence wins).
    pub query: BTreeMap<String, String>,
    /// Form parameters of an `application/x-www-form-urlencoded` body (secrets redacted).
    pub form: BTreeMap<String, String>,
    /// Header names, lowercase, in arrival order.
    pub headers: Vec<String>,
    /// The response status (absent when the connection was dropped by a fault, or when a
    /// back-channel logout call got no answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The full target URL of a call the IdP made (`backchannel_logout`); absent for the
    /// requests it served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Why a call the IdP made got no answer (timeout, connection failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Parameters with secret values redacted.
pub(crate) fn redacted_params(input: &[u8]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(input) {
        let value = if SECRET_PARAMS.contains(&k.as_ref()) {
            REDACTED.to_owned()
        } else {
            v.into_owned()
        };
        map.entry(k.into_owned()).or_insert(value);
    }
    map
}

/// Filters for [`RequestLog::query`]; absent fields match everything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFilter {
    /// Only this endpoint.
    pub endpoint: Option<Endpoint>,
    /// Only this realm.
    pub realm: Option<String>,
    /// Only this method (case-insensitive).
    pub method: Option<String>,
    /// Only this client.
    pub client_id: Option<String>,
}

impl RequestFilter {
    fn matches(&self, r: &LoggedRequest) -> bool {
        self.endpoint.is_none_or(|e| e == r.endpoint)
            && self
                .realm
                .as_ref()
                .is_none_or(|x| r.realm.as_ref() == Some(x))
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&r.method))
            && self
                .client_id
                .as_ref()
                .is_none_or(|c| r.client_id.as_ref() == Some(c))
    }
}

/// The log, shared by the recording middleware, the admin API and [`RunningIdp`](crate::RunningIdp).
#[derive(Debug, Default)]
pub struct RequestLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an entry, assigning its `seq`; returns the `seq`.
    pub(crate) fn push(&self, mut entry: LoggedRequest) -> u64 {
        let mut inner = self.lock();
        inner.next_seq += 1;
        let seq = inner.next_seq;
        entry.seq = seq;
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.pop_front();
        }
        inner.entries.push_back(entry);
        seq
    }

    /// Records the response status of entry `seq` (if still held).
    pub(crate) fn set_status(&self, seq: u64, status: u16) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.iter_mut().rev().find(|e| e.seq == seq) {
            e.status = Some(status);
        }
    }

    /// Every entry, oldest first.
    pub fn all(&self) -> Vec<LoggedRequest> {
        self.lock().entries.iter().cloned().collect()
    }

    /// The entries that match `filter`, oldest first.
    pub fn query(&self, filter: &RequestFilter) -> Vec<LoggedRequest> {
        self.lock()
            .entries
            .iter()
            .filter(|e| filter.matches(e))
            .cloned()
            .collect()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_parameters_are_recorded_as_present_but_redacted() {
        let p = redacted_params(
            b"grant_type=authorization_code&code=abc&code_verifier=xyz&client_secret=s&client_id=c",
        );
        assert_eq!(p["grant_type"], "authorization_code");
        assert_eq!(p["client_id"], "c");
        for secret in ["code", "code_verifier", "client_secret"] {
            assert_eq!(p[secret], REDACTED, "{secret}");
        }
    }

    fn entry(endpoint: Endpoint, method: &str) -> LoggedRequest {
        LoggedRequest {
            seq: 0,
            time: 1,
            method: method.to_owned(),
            path: "/".to_owned(),
            realm: Some("master".to_owned()),
            endpoint,
            client_id: None,
            query: BTreeMap::new(),
            form: BTreeMap::new(),
            headers: Vec::new(),
            status: None,
            url: None,
            error: None,
        }
    }

    #[test]
    fn the_log_filters_by_endpoint_and_method_and_clears() {
        let log = RequestLog::default();
        let a = log.push(entry(Endpoint::Token, "POST"));
        log.push(entry(Endpoint::Jwks, "GET"));
        log.set_status(a, 200);
        let tokens = log.query(&RequestFilter {
            endpoint: Some(Endpoint::Token),
            ..RequestFilter::default()
        });
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].status, Some(200));
        let gets = log.query(&RequestFilter {
            method: Some("get".to_owned()),
            ..RequestFilter::default()
        });
        assert_eq!(gets[0].endpoint, Endpoint::Jwks);
        log.clear();
        assert!(log.all().is_empty());
        assert_eq!(
            log.push(entry(Endpoint::Other, "GET")),
            3,
            "seq is never reused"
        );
    }
}
