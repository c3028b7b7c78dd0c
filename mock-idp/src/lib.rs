//! `mock-idp`: a Keycloak-compatible OpenID Connect provider for tests.
//!
//! It serves Keycloak's URL layout (`/realms/{realm}/...`), reads Keycloak realm-export JSON,
//! renders Keycloak's login form (`form#kc-form-login`, `#username`, `#password`, `#kc-login`)
//! and issues tokens with Keycloak's claims, so that the same browser driver, the same realm
//! file and the same relying party work against this mock and against a real Keycloak.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mock_idp::Error> {
//! let realm = mock_idp::Realm::from_file("scenarios/realms/master.json")?;
//! let idp = mock_idp::MockIdp::builder()
//!     .realm(realm)
//!     .public_host("localhost")
//!     .start()
//!     .await?;
//! println!("issuer: {}", idp.issuer("master"));
//! idp.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout (one module per concern):
//! - [`realm`]: the realm-export input, parsed and validated once.
//! - [`clock`]: the only source of "now"; every `iat`/`exp`/`auth_time` and lifetime uses it.
//! - [`keys`]: the signing keys (RS256, PS256 or ES256; rotation with an overlap; the JWKS)
//!   and the refresh-token HMAC key.
//! - `tokens`: claim sets and token minting/verification (access, ID, refresh, logout).
//! - `client_jwt`: the checks of a `private_key_jwt` client assertion, in Keycloak's order.
//! - `store`: server-side state (pending logins, SSO sessions, codes, refresh tokens).
//! - `http`: the axum router, one file per endpoint, and the one place mapping errors to
//!   responses.
//! - [`faults`]: the registry of misbehaviour switched on (per realm/client, once/sticky).
//! - [`requests`]: the request log (secrets redacted).
//! - [`server`]: the builder and the running server handle.
//!
//! The admin API (`/admin/mock/{clock,requests,faults,keys,logout}`, loopback peers only) is
//! documented in the crate README and in `http/admin.rs`.

mod client_jwt;
pub mod clock;
mod error;
pub mod faults;
mod http;
mod ids;
pub mod keys;
pub mod realm;
pub mod requests;
pub mod server;
mod store;
mod tokens;

pub use clock::{Clock, MockClock, SystemClock};
pub use error::Error;
pub use faults::{ActiveFault, Endpoint, Fault, FaultError, FaultKind, FaultMode, Faults};
pub use http::{LogoutError, LogoutReport, LogoutTarget, Notification};
pub use ids::{SeededGuard, seed_this_thread};
pub use keys::{KeyError, SigningAlg, SigningKey};
pub use realm::{Realm, RealmError};
pub use requests::{LoggedRequest, RequestFilter, RequestLog};
pub use server::{MockIdp, MockIdpBuilder, RunningIdp};
