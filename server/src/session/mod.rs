//! Sessions: the id in the cookie, the data behind it, and where that data lives.
//!
//! [`SessionStore`] is the only interface the flow uses; [`memory`] and [`redis`] implement
//! it. A store never decides what an error means for the request: the flow does
//! (`failOnFetchFailure`), and no store method deletes anything on a read error.

mod codec;
pub mod id;
pub mod index;
pub mod memory;
mod opened;
pub mod redis;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use id::SessionId;

/// What a session holds.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionData {
    /// The raw ID token, forwarded upstream.
    pub id_token: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token, when the IdP issued one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the tokens expire (seconds since the epoch): the ID token's `exp`, or the
    /// access token's expiry when that comes first.
    pub expires_at: i64,
    /// `sub` of the ID token.
    pub subject: String,
    /// When the session was created (seconds since the epoch).
    pub created_at: i64,
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionData")
            .field("id_token", &"[redacted]")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A store failure. Both kinds are transient from the flow's point of view: the session is
/// kept, and `failOnFetchFailure` decides between a 503 and a fresh login.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded.
    #[error("stored session could not be decoded: {0}")]
    Corrupt(String),
}

/// Where sessions live.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// The session for `id`, or `None` when there is none (or it expired).
    async fn load(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError>;
    /// [`SessionStore::load`] from the store itself, past any cache: for the reads that
    /// decide what to send to the IdP (a refresh token spent by another replica must be
    /// seen). Stores without a cache read the same way.
    async fn load_fresh(&self, id: &SessionId) -> Result<Option<SessionData>, StoreError> {
        self.load(id).await
    }
    /// Stores `data` under `id` for `ttl`.
    async fn save(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Removes the session.
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError>;
    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Checks, once at start, that the store can be found at all (`extauth serve` fails
    /// when it cannot: e.g. no sentinel answers). Stores with nothing to find succeed.
    async fn check_at_start(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Takes the short cross-replica refresh lock of `id` (`SET NX PX`): `true` when taken.
    /// In-process stores have nothing to coordinate and always succeed.
    async fn try_lock(&self, _id: &SessionId, _ttl: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Releases the refresh lock.
    async fn unlock(&self, _id: &SessionId) -> Result<(), StoreError> {
        Ok(())
    }
    /// The index of sessions by IdP session and user (front- and back-channel logout), when
    /// this store keeps one.
    fn index(&self) -> Option<&dyn index::SessionIndex> {
        None
    }
}

/// Session data at rest, as the stores write it: [`codec`]'s version 2 (compact, sealed with
/// AES-256-GCM under a key derived with HKDF-SHA256 from the secret half of the session id,
/// which the store never sees). The pair is remembered in [`opened`].
fn encode(id: &SessionId, data: &SessionData) -> Result<Vec<u8>, StoreError> {
    let sealed = codec::seal(id, data)?;
    opened::put(id, &sealed, data);
    Ok(sealed)
}

/// Opens a stored value (either version), through [`opened`].
fn decode(id: &SessionId, bytes: &[u8]) -> Result<SessionData, StoreError> {
    if let Some(data) = opened::get(id, bytes) {
        return Ok(data);
    }
    let data = codec::open(id, bytes)?;
    opened::put(id, bytes, &data);
    Ok(data)
}

/// A session deleted: its opened data is not kept.
fn forget(id: &SessionId) {
    opened::forget(id);
}

/// The value a key-value store keeps for `data` under `id` (at the key
/// [`SessionId::storage_key`]), exactly as the stores write it: for tools that write many
/// sessions at once without a store, such as the load generator's pre-created sessions.
pub fn sealed_value(id: &SessionId, data: &SessionData) -> Result<Vec<u8>, StoreError> {
    codec::seal(id, data)
}

/// Opens a value written by a store (or [`sealed_value`], or an older extauth) with the id it
/// belongs to: always in full, never from [`opened`].
pub fn open_value(id: &SessionId, bytes: &[u8]) -> Result<SessionData, StoreError> {
    codec::open(id, bytes)
}

pub use codec::seal_v1;
pub use opened::{CAPACITY as OPEN_CACHE_CAPACITY, set_enabled as set_open_cache};

#[cfg(test)]
pub(crate) mod tests;
