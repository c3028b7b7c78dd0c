//! The invariants, and what the simulation knows to check them: which browser each session
//! cookie was issued to, when each was last used, and which losses the faults explain.
//!
//! 1. No request allowed without a valid session (issued to this browser, in the store) or
//!    an unexpired bearer ID token; the identity passed upstream is the browser's own user.
//! 2. No session lost except by Redis data loss (or a failover, or an IdP answer lost after
//!    the IdP acted): a browser whose session should still be valid is not sent to log in.
//! 3. At most one refresh-token grant per rotation: extauth never presents a refresh token
//!    the IdP already honoured.
//! 4. A completed login sets exactly one session (one `Set-Cookie`, a new id, in the store);
//!    a replayed callback sets none.
//! 5. No 5xx for a client's fault: a 5xx only when a fault touched some message meanwhile.
//! 6. After the faults heal, every user gets a 200 again.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;

use super::Options;
use super::redis::Removal;

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which invariant (its short name).
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// The step it broke at.
    pub step: usize,
    /// The trace lines that led to it.
    pub recent: Vec<String>,
}

impl Violation {
    /// The failure report: seed, invariant, steps, replay command.
    pub fn render(&self, options: &Options) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "INVARIANT BROKEN (seed {}, step {}): {}",
            options.seed, self.step, self.invariant
        );
        let _ = writeln!(out, "  {}", self.detail);
        let _ = writeln!(out, "  the steps that led to it (latest last):");
        for line in &self.recent {
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(out, "  replay: {}", options.command());
        out
    }
}

/// The claims of an ID token the simulation reads (unverified: extauth verified it).
#[derive(Debug, Default)]
pub struct Claims {
    pub username: Option<String>,
    pub exp: Option<i64>,
}

/// Reads `preferred_username` and `exp` from a JWT's payload.
pub fn claims(jwt: &str) -> Claims {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(p) = payload else {
        return Claims::default();
    };
    Claims {
        username: p
            .get("preferred_username")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        exp: p.get("exp").and_then(serde_json::Value::as_i64),
    }
}

/// What the simulation knows of one session it saw issued.
#[derive(Debug, Clone)]
pub struct Session {
    /// The browser it was issued to.
    pub owner: usize,
    /// When the login completed (simulated Unix seconds).
    pub born_at: i64,
    /// The loss events count then.
    pub born_losses: u64,
    /// When a request with it was last let through.
    pub last_allowed_at: i64,
    /// Its owner logged out with it.
    pub ended: bool,
}

/// The bookkeeping.
#[derive(Debug, Default)]
pub struct Oracle {
    /// Session cookie → what is known of it.
    pub sessions: BTreeMap<String, Session>,
    /// Why each store key last went away.
    pub removed: BTreeMap<String, Removal>,
    /// Events that may lose sessions (Redis data loss, failover, lost IdP answers).
    pub loss_events: u64,
    pub checks: u64,
    pub logins: u64,
    pub violation: Option<Violation>,
}

impl Oracle {
    /// Counts a check; records the first failure.
    pub fn check(
        &mut self,
        ok: bool,
        invariant: &'static str,
        detail: impl FnOnce() -> String,
        step: usize,
        recent: impl FnOnce() -> Vec<String>,
    ) {
        self.checks += 1;
        if !ok && self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                detail: detail(),
                step,
                recent: recent(),
            });
        }
    }

    /// Takes in the store's removals.
    pub fn removals(&mut self, removals: Vec<(String, Removal)>) {
        for (key, why) in removals {
            self.removed.insert(key, why);
        }
    }
}
