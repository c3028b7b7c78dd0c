//! The crate's top-level error: everything that can stop an IdP from starting.

use std::net::SocketAddr;

use crate::keys::KeyError;
use crate::realm::RealmError;

/// Why the IdP could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A realm file was rejected.
    #[error(transparent)]
    Realm(#[from] RealmError),
    /// The builder was started without any realm.
    #[error("no realm configured: call MockIdpBuilder::realm")]
    NoRealm,
    /// Two realms with the same name.
    #[error("realm {0:?} is configured twice")]
    DuplicateRealm(String),
    /// The public URL cannot serve as the base of issuer URLs.
    #[error("invalid public URL {url:?}: {reason}")]
    PublicUrl {
        /// The URL (or host) given.
        url: String,
        /// What was expected.
        reason: &'static str,
    },
    /// The signing key could not be made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The HTTP client for back-channel calls could not be built (no TLS backend).
    #[error("cannot build the HTTP client for back-channel calls: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}
