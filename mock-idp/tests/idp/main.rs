//! End-to-end tests of the IdP over real sockets on port 0: a reqwest client with redirects
//! off (every 302 is seen) and, where a browser would have one, a cookie store.
//!
//! Test helpers (outside `#[test]` functions) panic on anything unexpected, as tests do.
#![allow(clippy::unwrap_used)]

mod admin;
mod backchannel;
mod client_jwt;
mod common;
mod discovery;
mod faults;
mod login;
mod logout;
mod protocol;
mod receiver;
mod relying_party;
mod token;
