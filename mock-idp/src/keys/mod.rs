//! Keys: the signing keys (RS256 by default, PS256 or ES256; published as a JWKS) and the HMAC
//! key that signs refresh tokens.
//!
//! A `KeyRing` holds the active signing key, keys retired by a rotation (still published,
//! so tokens they signed verify, until the overlap ends on the IdP clock) and extra published
//! keys; handlers take a `Keys` snapshot of it per request.
//!
//! RSA-2048 generation takes up to a second in a debug build, so [`SigningKey::shared`]
//! generates one RS256 key per process and hands out clones of it; a test suite that starts many
//! IdPs pays for one key. Key material never prints (`Debug` shows the `kid` only).

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::ids;

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// RSA key generation failed (e.g. the OS RNG is unavailable).
    #[error("RSA key generation failed: {0}")]
    Generate(#[source] rsa::Error),
    /// The generated key could not be encoded for the JWT library.
    #[error("RSA key encoding failed: {0}")]
    Encode(#[source] rsa::pkcs1::Error),
    /// The key-generation task did not finish.
    #[error("key generation task failed: {0}")]
    Task(String),
}

/// The RSA modulus size Keycloak uses for its default `rsa-generated` key.
pub const RSA_BITS: usize = 2048;

/// The signature algorithms a signing key can have (RS256 is Keycloak's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA-2048).
    #[default]
    RS256,
    /// RSASSA-PSS with SHA-256 (RSA-2048).
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl SigningAlg {
    /// The JOSE name (`RS256`, `PS256`, `ES256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(Self::RS256),
            "PS256" => Ok(Self::PS256),
            "ES256" => Ok(Self::ES256),
            other => Err(format!(
                "unknown algorithm {other:?}: expected RS256, PS256 or ES256"
            )),
        }
    }
}

/// A signing key (RS256, PS256 or ES256) with its `kid` and public JWK.
#[derive(Clone)]
pub struct SigningKey {
    alg: SigningAlg,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
    /// RS256 and ES256 keys: the same private key parsed once for ring, which signs.
    ring: Option<RingKey>,
}

/// A private key parsed once for ring. jsonwebtoken re-parses its key on every signature
/// (for ES256 it even re-derives the public point from the scalar, half of the cost);
/// ring signs from the parsed key.
#[derive(Clone)]
enum RingKey {
    Rs256(Arc<ring::signature::RsaKeyPair>),
    Es256(Arc<ring::signature::EcdsaKeyPair>),
}

static SHARED: Mutex<Option<Arc<SigningKey>>> = Mutex::new(None);

impl SigningKey {
    /// Generates a fresh RS256 key (RSA-2048). Slow in debug builds: prefer
    /// [`SigningKey::shared`].
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_for(SigningAlg::RS256)
    }

    /// [`SigningKey::generate_for`] on Tokio's blocking pool, so RSA does not stall a
    /// worker thread.
    pub(crate) async fn generate_off_thread(alg: SigningAlg) -> Result<Arc<Self>, KeyError> {
        let key = tokio::task::spawn_blocking(move || Self::generate_for(alg))
            .await
            .map_err(|e| KeyError::Task(e.to_string()))??;
        Ok(Arc::new(key))
    }

    /// Generates a fresh key for `alg` (RSA keys are slow in debug builds).
    pub fn generate_for(alg: SigningAlg) -> Result<Self, KeyError> {
        match alg {
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let private = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS)
                    .map_err(KeyError::Generate)?;
                let der = private.to_pkcs1_der().map_err(KeyError::Encode)?;
                let n = be_bytes_trimmed(&private.n().to_be_bytes());
                let e = be_bytes_trimmed(&private.e().to_be_bytes());
                let mut key =
                    Self::from_parts(alg, EncodingKey::from_rsa_der(der.as_bytes()), &n, &e);
                if alg == SigningAlg::RS256 {
                    key.ring = Some(RingKey::Rs256(Arc::new(
                        ring::signature::RsaKeyPair::from_der(der.as_bytes())
                            .map_err(|e| KeyError::Task(format!("ring refused the key: {e}")))?,
                    )));
                }
                Ok(key)
            }
            SigningAlg::ES256 => Self::generate_es256(),
        }
    }

    /// A P-256 key: 32 random bytes as the private scalar, wrapped in a minimal PKCS#8
    /// document (RFC 5915 `ECPrivateKey` without the optional fields); a value outside the
    /// curve order (probability about 2^-32) is drawn again.
    fn generate_es256() -> Result<Self, KeyError> {
        // SEQUENCE { version 0, AlgorithmIdentifier { id-ecPublicKey, prime256v1 },
        // OCTET STRING { ECPrivateKey { version 1, OCTET STRING (32 bytes) } } }.
        const PKCS8_P256_PREFIX: [u8; 35] = [
            0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
            0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27,
            0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20,
        ];
        for _ in 0..8 {
            let scalar = ids::random_bytes(32);
            let mut der = PKCS8_P256_PREFIX.to_vec();
            der.extend_from_slice(&scalar);
            let encoding = EncodingKey::from_ec_der(&der);
            let Ok(jwk) = jsonwebtoken::jwk::Jwk::from_encoding_key(
                &encoding,
                jsonwebtoken::Algorithm::ES256,
            ) else {
                continue;
            };
            let jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
                continue;
            };
            let Ok(decoding) = DecodingKey::from_ec_components(&ec.x, &ec.y) else {
                continue;
            };
            // ring wants the public point beside the scalar (uncompressed: 04 || x || y).
            let (Ok(x), Ok(y)) = (URL_SAFE_NO_PAD.decode(&ec.x), URL_SAFE_NO_PAD.decode(&ec.y))
            else {
                continue;
            };
            let point = [&[0x04][..], &x, &y].concat();
            let Ok(pair) = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &scalar,
                &point,
                &ring::rand::SystemRandom::new(),
            ) else {
                continue;
            };
            let canonical = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                ec.x, ec.y
            );
            let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
            let public = json!({
                "kid": kid,
                "kty": "EC",
                "alg": "ES256",
                "use": "sig",
                "crv": "P-256",
                "x": ec.x,
                "y": ec.y,
            });
            return Ok(Self {
                alg: SigningAlg::ES256,
                kid,
                encoding,
                decoding,
                jwk: public,
                ring: Some(RingKey::Es256(Arc::new(pair))),
            });
        }
        Err(KeyError::Task("no valid P-256 key in 8 draws".into()))
    }

    /// The process-wide key, generated on first use (blocking; call it off the async runtime
    /// or through `spawn_blocking`). Every later call returns the same key.
    pub fn shared() -> Result<Arc<Self>, KeyError> {
        // A poisoned lock only means another thread panicked while generating; the slot is
        // still either empty or a complete key.
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = slot.as_ref() {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(Self::generate()?);
        *slot = Some(Arc::clone(&key));
        Ok(key)
    }

    fn from_parts(alg: SigningAlg, encoding: EncodingKey, n: &[u8], e: &[u8]) -> Self {
        let n64 = URL_SAFE_NO_PAD.encode(n);
        let e64 = URL_SAFE_NO_PAD.encode(e);
        let kid = jwk_thumbprint(&n64, &e64);
        let jwk = json!({
            "kid": kid,
            "kty": "RSA",
            "alg": alg.name(),
            "use": "sig",
            "n": n64,
            "e": e64,
        });
        Self {
            alg,
            kid,
            encoding,
            decoding: DecodingKey::from_rsa_raw_components(n, e),
            jwk,
            ring: None,
        }
    }

    /// A JWT of `header` and `claims` signed with this key: RS256 and ES256 through ring,
    /// PS256 through jsonwebtoken. The same compact form either way
    /// (`base64url(JSON header) . base64url(JSON claims) . base64url(signature)`; an ES256
    /// signature is `r || s`, 64 bytes, as RFC 7518 section 3.4 asks and ring's `FIXED`
    /// encoding gives).
    pub(crate) fn sign<T: serde::Serialize>(
        &self,
        header: &jsonwebtoken::Header,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        use jsonwebtoken::Algorithm as A;
        let ring_key = match (&self.ring, header.alg) {
            (Some(k @ RingKey::Rs256(_)), A::RS256) | (Some(k @ RingKey::Es256(_)), A::ES256) => k,
            _ => return jsonwebtoken::encode(header, claims, &self.encoding),
        };
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let rng = ring::rand::SystemRandom::new();
        let signature = match ring_key {
            RingKey::Rs256(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    token.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| {
                    jsonwebtoken::errors::ErrorKind::InvalidRsaKey("ring: signing failed".into())
                })?;
                signature
            }
            RingKey::Es256(pair) => pair
                .sign(&rng, token.as_bytes())
                .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey)?
                .as_ref()
                .to_vec(),
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(&signature));
        Ok(token)
    }

    /// Its signature algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id, the RFC 7638 thumbprint of the public key (stable for a given key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kid`, `kty`, `alg`, `use`, `n`, `e`), as Keycloak lists it.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    #[cfg(test)]
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key.
fn jwk_thumbprint(n64: &str, e64: &str) -> String {
    // Members in lexicographic order, no whitespace, as RFC 7638 section 3.2 requires.
    let canonical = format!(r#"{{"e":"{e64}","kty":"RSA","n":"{n64}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Big-endian bytes without leading zeros (JWK `n` and `e` are minimal, RFC 7518 6.3.1).
fn be_bytes_trimmed(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

/// The HS512 key that signs refresh tokens (Keycloak signs them with the realm's HMAC key).
#[derive(Clone)]
pub(crate) struct HmacKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl HmacKey {
    pub(crate) fn generate() -> Self {
        let secret = ids::random_bytes(64);
        Self {
            kid: ids::random_uuid(),
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
        }
    }
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The keys one request signs and verifies with: a snapshot of the [`KeyRing`].
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) signing: Arc<SigningKey>,
    /// Every published key, the signing key first.
    pub(crate) published: Vec<Arc<SigningKey>>,
    pub(crate) refresh: HmacKey,
}

impl Keys {
    /// A single signing key and a fresh refresh-token key.
    #[cfg(test)]
    pub(crate) fn new(signing: Arc<SigningKey>) -> Self {
        Self {
            published: vec![Arc::clone(&signing)],
            signing,
            refresh: HmacKey::generate(),
        }
    }

    /// The JWKS document served at `/protocol/openid-connect/certs`.
    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<&Value> = self.published.iter().map(|k| k.public_jwk()).collect();
        json!({ "keys": keys })
    }

    /// The published key with this `kid`; the signing key when no `kid` is given.
    pub(crate) fn verifying(&self, kid: Option<&str>) -> Option<&SigningKey> {
        match kid {
            None => Some(&self.signing),
            Some(kid) => self
                .published
                .iter()
                .find(|k| k.kid() == kid)
                .map(AsRef::as_ref),
        }
    }
}

/// The IdP's keys over time: rotation keeps the old key published for `overlap` seconds.
#[derive(Debug)]
pub(crate) struct KeyRing {
    state: RwLock<RingState>,
    overlap: u64,
    schedule: Mutex<Option<Schedule>>,
    /// Keys generated ahead, unpublished, for the `signing_key_rotated_at_signing` fault.
    staged: Mutex<Vec<Arc<SigningKey>>>,
}

/// Scheduled rotation: every `every` seconds of the IdP clock, the `spare` key (generated
/// ahead of time, off the request path) becomes the signing key.
#[derive(Debug)]
struct Schedule {
    every: u64,
    next_at: u64,
    spare: Option<Arc<SigningKey>>,
}

#[derive(Debug, Clone)]
struct RingState {
    active: Arc<SigningKey>,
    /// Retired keys and when they stop being published (IdP clock, Unix seconds).
    retired: Vec<(Arc<SigningKey>, u64)>,
    /// Published but never used for signing (e.g. for the "several keys, no kid" fault).
    extra: Vec<Arc<SigningKey>>,
    refresh: HmacKey,
}

impl KeyRing {
    pub(crate) fn new(signing: Arc<SigningKey>, overlap: u64) -> Self {
        Self {
            state: RwLock::new(RingState {
                active: signing,
                retired: Vec::new(),
                extra: Vec::new(),
                refresh: HmacKey::generate(),
            }),
            overlap,
            schedule: Mutex::new(None),
            staged: Mutex::new(Vec::new()),
        }
    }

    /// Rotates every `every` seconds from `now`, starting with `spare`.
    pub(crate) fn schedule(&self, every: u64, now: u64, spare: Arc<SigningKey>) {
        *self.schedule.lock().unwrap_or_else(|p| p.into_inner()) = Some(Schedule {
            every: every.max(1),
            next_at: now.saturating_add(every.max(1)),
            spare: Some(spare),
        });
    }

    /// Rotates if a scheduled rotation is due and its key is ready; true when it did (the
    /// caller then makes the next spare with [`replenish`](Self::replenish)).
    pub(crate) fn rotate_if_due(&self, now: u64) -> bool {
        let mut schedule = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = schedule.as_mut() else {
            return false;
        };
        if now < s.next_at {
            return false;
        }
        let Some(spare) = s.spare.take() else {
            return false;
        };
        // Catch up in whole periods if the clock jumped past several.
        let periods = (now - s.next_at) / s.every + 1;
        s.next_at = s.next_at.saturating_add(periods.saturating_mul(s.every));
        drop(schedule);
        tracing::info!(kid = %spare.kid(), "scheduled signing key rotation");
        self.rotate(spare, now);
        true
    }

    /// The key for the next scheduled rotation.
    pub(crate) fn replenish(&self, spare: Arc<SigningKey>) {
        if let Some(s) = self
            .schedule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            s.spare = Some(spare);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RingState> {
        // Writers replace whole fields, so a poisoned lock still holds a consistent ring.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RingState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys in force at `now`.
    pub(crate) fn snapshot(&self, now: u64) -> Keys {
        let st = self.read();
        let mut published = vec![Arc::clone(&st.active)];
        published.extend(
            st.retired
                .iter()
                .filter(|(_, until)| *until > now)
                .map(|(k, _)| Arc::clone(k)),
        );
        published.extend(st.extra.iter().cloned());
        Keys {
            signing: Arc::clone(&st.active),
            published,
            refresh: st.refresh.clone(),
        }
    }

    /// Makes `key` the signing key; the old one stays published until `now + overlap`.
    pub(crate) fn rotate(&self, key: Arc<SigningKey>, now: u64) {
        let mut st = self.write();
        let old = std::mem::replace(&mut st.active, key);
        st.retired.retain(|(_, until)| *until > now);
        st.retired.push((old, now.saturating_add(self.overlap)));
    }

    /// Keeps `key` unpublished until [`KeyRing::rotate_to_staged`].
    pub(crate) fn stage(&self, key: Arc<SigningKey>) {
        self.staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key);
    }

    /// How many keys are staged.
    pub(crate) fn staged_count(&self) -> usize {
        self.staged.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Makes the oldest staged key the signing key now; its `kid`, or `None` when no key is
    /// staged.
    pub(crate) fn rotate_to_staged(&self, now: u64) -> Option<String> {
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        if staged.is_empty() {
            return None;
        }
        let key = staged.remove(0);
        drop(staged);
        let kid = key.kid().to_owned();
        self.rotate(key, now);
        Some(kid)
    }

    /// Publishes `key` without signing with it.
    pub(crate) fn publish_extra(&self, key: Arc<SigningKey>) {
        self.write().extra.push(key);
    }

    /// The `kid`s published at `now` (signing key first).
    pub(crate) fn kids(&self, now: u64) -> Vec<String> {
        self.snapshot(now)
            .published
            .iter()
            .map(|k| k.kid().to_owned())
            .collect()
    }
}
