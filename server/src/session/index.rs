//! Which sessions belong to an IdP session (`sid`) or to a user (`sub`), so that front- and
//! back-channel logout can end them; and which logout tokens (`jti`) were already used.
//!
//! Layout in a key-value store (under the store's `keyPrefix`):
//! - `idx:sid:<hex SHA-256 of issuer NUL sid>` and `idx:sub:<... sub>`: the set of the
//!   *lookup keys* of the sessions that IdP session or user has (an id's first half, the
//!   suffix of the session's own key). A lookup key finds and deletes a session, but it is not
//!   a cookie and decrypts nothing: that takes the id's second half, which never reaches the
//!   store. So a dump of the store reveals no usable session id.
//! - the set's TTL is reset to the session TTL at every login it gains (every session of a
//!   route has that TTL), so a set lives as long as its newest session and no longer: it
//!   cannot grow forever. A session deleted by an ordinary logout is taken off its sets.
//! - `jti:<hex SHA-256 of issuer NUL jti>`: a used logout token, kept while it could still
//!   be accepted (`SET NX EX`).

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{SessionId, StoreError};

/// The most sessions one index set is read for (a user with more live sessions than this
/// has the rest end with their TTL).
pub const MAX_INDEXED: usize = 10_000;

/// What an index set is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKey {
    /// An IdP session (`sid` of the ID token).
    Sid(String),
    /// A user (`sub`).
    Sub(String),
}

fn digest(issuer: &str, value: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(issuer.as_bytes());
    hash.update([0]);
    hash.update(value.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl IndexKey {
    /// The store key (without the store's prefix) of this set, for sessions of `issuer`.
    pub fn storage_key(&self, issuer: &str) -> String {
        match self {
            IndexKey::Sid(sid) => format!("idx:sid:{}", digest(issuer, sid)),
            IndexKey::Sub(sub) => format!("idx:sub:{}", digest(issuer, sub)),
        }
    }
}

/// The store key (without the store's prefix) remembering logout token `jti` of `issuer`.
pub fn jti_key(issuer: &str, jti: &str) -> String {
    format!("jti:{}", digest(issuer, jti))
}

/// The sets a session is listed in: its `sid` (when the ID token has one) and its `sub`.
pub fn keys_of(sid: Option<String>, sub: &str) -> Vec<IndexKey> {
    let mut keys: Vec<IndexKey> = sid.into_iter().map(IndexKey::Sid).collect();
    if !sub.is_empty() {
        keys.push(IndexKey::Sub(sub.to_owned()));
    }
    keys
}

/// A store that can list sessions by IdP session and user. Keys are given without the
/// store's prefix (from [`IndexKey::storage_key`], [`jti_key`]).
#[async_trait]
pub trait SessionIndex: Send + Sync {
    /// Lists session `id` under each of `keys`, the sets living `ttl` from now.
    async fn add(&self, id: &SessionId, keys: &[String], ttl: Duration) -> Result<(), StoreError>;
    /// Takes session `id` off `keys` (it was deleted otherwise).
    async fn remove(&self, id: &SessionId, keys: &[String]) -> Result<(), StoreError>;
    /// Deletes every session listed under `key`, then the set; returns how many were listed.
    async fn end_all(&self, key: &str) -> Result<usize, StoreError>;
    /// Records `key` for `ttl`: `true` the first time, `false` while it is remembered.
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Forgets `key` (its logout failed, and the IdP may retry the same token).
    async fn forget_use(&self, key: &str) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_hide_the_values_and_separate_issuers() {
        let a = IndexKey::Sid("sid-1".into()).storage_key("https://idp/a");
        let b = IndexKey::Sid("sid-1".into()).storage_key("https://idp/b");
        let sub = IndexKey::Sub("sid-1".into()).storage_key("https://idp/a");
        assert!(a.starts_with("idx:sid:") && !a.contains("sid-1"), "{a}");
        assert_ne!(a, b);
        assert!(sub.starts_with("idx:sub:"));
        assert_ne!(jti_key("i", "j"), jti_key("i", "k"));
    }

    #[test]
    fn a_session_is_listed_by_sid_when_it_has_one_and_by_sub() {
        assert_eq!(
            keys_of(Some("s".into()), "u"),
            [IndexKey::Sid("s".into()), IndexKey::Sub("u".into())]
        );
        assert_eq!(keys_of(None, "u"), [IndexKey::Sub("u".into())]);
        assert!(keys_of(None, "").is_empty());
    }
}
