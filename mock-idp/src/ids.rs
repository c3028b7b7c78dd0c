//! Random and derived identifiers: UUIDs, opaque handles, URL-safe random strings.
//!
//! Owns only formatting and randomness; it never decides what an id is used for.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

thread_local! {
    static SEEDED: std::cell::RefCell<Option<rand::rngs::StdRng>> =
        const { std::cell::RefCell::new(None) };
}

/// Fills `buf` from this thread's seeded RNG when [`seed_this_thread`] set one, else from
/// the thread-local CSPRNG.
fn fill(buf: &mut [u8]) {
    let seeded = SEEDED.with(|cell| cell.borrow_mut().as_mut().map(|rng| rng.fill_bytes(buf)));
    if seeded.is_none() {
        rand::rng().fill_bytes(buf);
    }
}

/// Makes the IdP's ids, codes and opaque tokens on this thread deterministic (from `seed`)
/// until the guard is dropped: `harness sim` replays a run from one number this way. Only
/// for simulations: seeded ids are guessable. Keys are not covered (they come from the OS).
#[must_use = "the seeding ends when the guard is dropped"]
pub fn seed_this_thread(seed: u64) -> SeededGuard {
    use rand::SeedableRng as _;
    SEEDED.with(|cell| *cell.borrow_mut() = Some(rand::rngs::StdRng::seed_from_u64(seed)));
    SeededGuard(std::marker::PhantomData)
}

/// Ends [`seed_this_thread`]'s seeding when dropped.
#[derive(Debug)]
pub struct SeededGuard(std::marker::PhantomData<*const ()>);

impl Drop for SeededGuard {
    fn drop(&mut self) {
        SEEDED.with(|cell| *cell.borrow_mut() = None);
    }
}

/// `n` random bytes from the thread-local CSPRNG.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    fill(&mut buf);
    buf
}

/// A random URL-safe string carrying `n` bytes of entropy (base64url, no padding).
pub(crate) fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

/// A random version-4 UUID in its hyphenated lowercase form (Keycloak's ids look like this).
pub(crate) fn random_uuid() -> String {
    let mut b = [0u8; 16];
    fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_uuid(&b)
}

/// A stable UUID derived from `input` (RFC 9562 version 8, "custom": the first 16 bytes of
/// SHA-256), so the same realm file always gives a user the same `sub`.
pub(crate) fn derived_uuid(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_uuid(&b)
}

fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_uuid(s: &str) -> bool {
        let parts: Vec<&str> = s.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
    }

    #[test]
    fn random_uuids_are_version_4_and_distinct() {
        let a = random_uuid();
        let b = random_uuid();
        assert!(is_uuid(&a), "{a}");
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, b);
    }

    #[test]
    fn derived_uuids_are_stable_per_input() {
        assert_eq!(derived_uuid("master/user1"), derived_uuid("master/user1"));
        assert_ne!(derived_uuid("master/user1"), derived_uuid("master/user2"));
        assert!(is_uuid(&derived_uuid("x")));
    }

    #[test]
    fn random_tokens_are_url_safe() {
        let t = random_token(32);
        assert_eq!(t.len(), 43);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
