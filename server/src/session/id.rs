//! The session id: 64 random bytes, base32 (RFC 4648, padded) in the cookie: 104 characters,
//! the shape of the seed's `keycloak-session` example.

use std::fmt;

use data_encoding::BASE32;
use rand::RngCore as _;

/// Random bytes in a session id.
pub const SESSION_ID_BYTES: usize = 64;
/// Length of the encoded id.
pub const SESSION_ID_LEN: usize = 104;

/// A session id. The inner value is private and `Debug` is redacted: the id is a bearer
/// credential.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id (OS randomness through `rand`'s thread RNG, a CSPRNG).
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(BASE32.encode(&bytes))
    }

    /// Parses a cookie value; anything that is not exactly a padded base32 encoding of 64
    /// bytes is `None` (and never reaches the store).
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != SESSION_ID_LEN {
            return None;
        }
        let decoded = BASE32.decode(value.as_bytes()).ok()?;
        (decoded.len() == SESSION_ID_BYTES).then(|| Self(value.to_owned()))
    }

    /// The cookie value.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key in a key-value store: `prefix` + base32 of the id's first half (the lookup
    /// part). The second half (the secret part) never reaches the store: it keys the
    /// encryption of the session data, so a dump of the store alone decrypts nothing.
    pub fn storage_key(&self, prefix: &str) -> String {
        let bytes = self.bytes();
        format!(
            "{prefix}{}",
            data_encoding::BASE32_NOPAD.encode(&bytes[..SESSION_ID_BYTES / 2])
        )
    }

    /// The key of the short refresh lock for this session.
    pub fn lock_key(&self, prefix: &str) -> String {
        format!("{}:refresh-lock", self.storage_key(prefix))
    }

    /// The secret half of the id, the input of the data-encryption key.
    pub(crate) fn secret_part(&self) -> Vec<u8> {
        self.bytes()[SESSION_ID_BYTES / 2..].to_vec()
    }

    fn bytes(&self) -> Vec<u8> {
        // `parse` and `generate` guarantee 64 decodable bytes.
        BASE32
            .decode(self.0.as_bytes())
            .unwrap_or_else(|_| vec![0; SESSION_ID_BYTES])
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.0[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_seeds_shape() {
        let id = SessionId::generate();
        assert_eq!(id.expose().len(), 104);
        assert!(id.expose().ends_with('='));
        assert!(
            id.expose()[..103]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(id, SessionId::generate());
    }

    #[test]
    fn the_seeds_example_cookie_parses() {
        let seed = "ZLYHZ4XOGE6XDHY6YT256O45PB3KTPNCDHJRZOY6QGZUHPTM3TO5JTEYB7EUPMG7X7TRI34ZKY2EA3ZBZV7XZLMOKLRYWXPBDD3BRHI=";
        assert!(SessionId::parse(seed).is_some());
    }

    #[test]
    fn malformed_values_are_not_ids() {
        let good = SessionId::generate().expose().to_owned();
        for bad in [
            String::new(),
            good[..103].to_owned(),
            format!("{good}A"),
            good.to_lowercase(),
            good.replace('=', "A"),
            "1".repeat(104),
        ] {
            assert!(SessionId::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn debug_does_not_print_the_id() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(&id.expose()[4..20]));
    }
}
