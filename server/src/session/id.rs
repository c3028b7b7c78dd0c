//! The session id: 64 random bytes, base32 (RFC 4648, padded) in the cookie: 104 characters,
//! the shape of the seed's `keycloak-session` example.

use std::fmt;

use data_encoding::BASE32;

/// Random bytes in a session id.
pub const SESSION_ID_BYTES: usize = 64;
/// Length of the encoded id.
pub const SESSION_ID_LEN: usize = 104;

/// A session id. The inner value is private and `Debug` is redacted: the id is a bearer
/// credential. The decoded bytes are kept beside the text: the storage key and the data key
/// are both derived from them on every request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId {
    text: String,
    bytes: [u8; SESSION_ID_BYTES],
}

impl SessionId {
    /// A fresh random id (OS randomness through `rand`'s thread RNG, a CSPRNG).
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        crate::random::fill(&mut bytes);
        Self {
            text: BASE32.encode(&bytes),
            bytes,
        }
    }

    /// Parses a cookie value; anything that is not exactly a padded base32 encoding of 64
    /// bytes is `None` (and never reaches the store).
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != SESSION_ID_LEN {
            return None;
        }
        // 104 padded characters decode to at most 65 bytes; exactly 64 is an id.
        let mut decoded = [0u8; SESSION_ID_BYTES + 8];
        let room = BASE32.decode_len(value.len()).ok()?;
        let written = BASE32
            .decode_mut(value.as_bytes(), decoded.get_mut(..room)?)
            .ok()?;
        let bytes: [u8; SESSION_ID_BYTES] = decoded.get(..written)?.try_into().ok()?;
        Some(Self {
            text: value.to_owned(),
            bytes,
        })
    }

    /// The cookie value.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The key in a key-value store: `prefix` + base32 of the id's first half (the lookup
    /// part). The second half (the secret part) never reaches the store: it keys the
    /// encryption of the session data, so a dump of the store alone decrypts nothing.
    pub fn storage_key(&self, prefix: &str) -> String {
        let half = &self.bytes[..SESSION_ID_BYTES / 2];
        let mut key = String::with_capacity(
            prefix.len() + data_encoding::BASE32_NOPAD.encode_len(half.len()),
        );
        key.push_str(prefix);
        data_encoding::BASE32_NOPAD.encode_append(half, &mut key);
        key
    }

    /// The key of the short refresh lock for this session.
    pub fn lock_key(&self, prefix: &str) -> String {
        format!("{}:refresh-lock", self.storage_key(prefix))
    }

    /// The secret half of the id, the input of the data-encryption key.
    pub(crate) fn secret_part(&self) -> &[u8] {
        &self.bytes[SESSION_ID_BYTES / 2..]
    }

    /// The lookup half of the id (what the storage key encodes).
    pub(crate) fn lookup_part(&self) -> &[u8; SESSION_ID_BYTES / 2] {
        self.bytes
            .first_chunk()
            .unwrap_or_else(|| unreachable!("an id is 64 bytes"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.text[..4])
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
