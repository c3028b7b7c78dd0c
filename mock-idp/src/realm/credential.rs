//! How a confidential client proves who it is at the token, introspection and revocation
//! endpoints: Keycloak's `clientAuthenticatorType`, `client-secret` ("Client Id and Secret",
//! `client_secret_basic`/`_post`) or `client-jwt` ("Signed JWT", `private_key_jwt`,
//! RFC 7523), and where a `client-jwt` client's public keys come from, under the attribute
//! names Keycloak's `OIDCConfigAttributes` and `JWTClientAuthenticator` use:
//!
//! | attribute | meaning |
//! | --- | --- |
//! | `jwt.credential.certificate` | base64 DER (or PEM) X.509 certificate holding the public key |
//! | `jwt.credential.public.key` | base64 DER (or PEM) `SubjectPublicKeyInfo` |
//! | `use.jwks.url` = `"true"`, `jwks.url` | a JWKS fetched when an assertion is checked |
//! | `use.jwks.string` = `"true"`, `jwks.string` | a JWKS written in the realm file |
//! | `token.endpoint.auth.signing.alg` | the only algorithm accepted (any asymmetric one when absent) |
//! | `token.endpoint.auth.signing.max.exp` | how long an assertion may be used after `iat`, seconds (60) |
//!
//! Keys are parsed once, at load: a certificate, public key or JWKS that cannot be used is
//! rejected with the attribute's path. The X.509 certificate is read for its public key only
//! (its signature and validity are not checked, as in Keycloak).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};

use super::attributes::Attributes;
use super::{RealmError, invalid};

/// Keycloak's default for `token.endpoint.auth.signing.max.exp` (seconds).
pub const DEFAULT_MAX_EXP: u64 = 60;

/// How a confidential client authenticates.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// `client-secret`: the secret, by HTTP Basic or in the form.
    Secret,
    /// `client-jwt`: a `client_assertion` signed with the client's private key.
    Jwt(JwtCredential),
}

impl Authenticator {
    /// Reads `clientAuthenticatorType` and, for `client-jwt`, the key attributes of
    /// `clients[index]`.
    pub(super) fn compile(
        kind: Option<&str>,
        attributes: &Attributes<'_>,
        index: usize,
    ) -> Result<Self, RealmError> {
        match kind.map(str::trim).filter(|k| !k.is_empty()) {
            None | Some("client-secret") => Ok(Self::Secret),
            Some("client-jwt") => Ok(Self::Jwt(JwtCredential::compile(attributes, index)?)),
            Some(other) => Err(invalid(
                format!("clients[{index}].clientAuthenticatorType"),
                format!("{other:?} is not supported: expected client-secret or client-jwt"),
            )),
        }
    }
}

/// A `client-jwt` client's verification settings.
#[derive(Debug, Clone)]
pub struct JwtCredential {
    keys: KeySource,
    signing_alg: Option<jsonwebtoken::Algorithm>,
    max_exp: u64,
}

impl JwtCredential {
    fn compile(attributes: &Attributes<'_>, index: usize) -> Result<Self, RealmError> {
        let certificate = attributes.string("jwt.credential.certificate")?;
        let public_key = attributes.string("jwt.credential.public.key")?;
        let keys = if attributes.flag("use.jwks.url", false)? {
            let url = attributes.url("jwks.url")?.ok_or_else(|| {
                invalid(
                    attributes.path("jwks.url"),
                    "use.jwks.url is \"true\" but jwks.url is missing",
                )
            })?;
            KeySource::JwksUrl(url)
        } else if attributes.flag("use.jwks.string", false)? {
            let text = attributes.string("jwks.string")?.ok_or_else(|| {
                invalid(
                    attributes.path("jwks.string"),
                    "use.jwks.string is \"true\" but jwks.string is missing",
                )
            })?;
            let keys = ClientKey::from_jwks_json(text)
                .map_err(|reason| invalid(attributes.path("jwks.string"), reason))?;
            KeySource::JwksString(keys)
        } else {
            match (certificate, public_key) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        attributes.path("jwt.credential.public.key"),
                        "a client has a certificate or a public key, not both (Keycloak refuses both)",
                    ));
                }
                (Some(cert), None) => {
                    KeySource::Certificate(ClientKey::from_certificate(cert).map_err(|reason| {
                        invalid(attributes.path("jwt.credential.certificate"), reason)
                    })?)
                }
                (None, Some(spki)) => {
                    KeySource::PublicKey(ClientKey::from_public_key(spki).map_err(|reason| {
                        invalid(attributes.path("jwt.credential.public.key"), reason)
                    })?)
                }
                (None, None) => {
                    return Err(invalid(
                        format!("clients[{index}].attributes"),
                        "a client-jwt client needs its public key: jwt.credential.certificate, \
                         jwt.credential.public.key, use.jwks.url + jwks.url, or use.jwks.string + \
                         jwks.string",
                    ));
                }
            }
        };
        let signing_alg = attributes
            .string("token.endpoint.auth.signing.alg")?
            .map(|alg| {
                alg.parse::<jsonwebtoken::Algorithm>()
                    .ok()
                    .filter(|a| KeyFamily::for_algorithm(*a).is_some())
                    .ok_or_else(|| {
                        invalid(
                            attributes.path("token.endpoint.auth.signing.alg"),
                            "expected an asymmetric JWS algorithm (RS256, RS384, RS512, PS256, \
                             PS384, PS512, ES256, ES384 or EdDSA)",
                        )
                    })
            })
            .transpose()?;
        // Keycloak falls back to 60 for anything that is not a positive integer; a typo is
        // better caught here.
        let max_exp = match attributes.string("token.endpoint.auth.signing.max.exp")? {
            None => DEFAULT_MAX_EXP,
            Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                invalid(
                    attributes.path("token.endpoint.auth.signing.max.exp"),
                    "expected a positive number of seconds",
                )
            })?,
        };
        Ok(Self {
            keys,
            signing_alg,
            max_exp,
        })
    }

    /// Where the public keys come from.
    pub fn keys(&self) -> &KeySource {
        &self.keys
    }

    /// The one algorithm assertions must use (`token.endpoint.auth.signing.alg`), if set.
    pub fn signing_alg(&self) -> Option<jsonwebtoken::Algorithm> {
        self.signing_alg
    }

    /// How long after `iat` an assertion may be used (`token.endpoint.auth.signing.max.exp`).
    pub fn max_exp(&self) -> u64 {
        self.max_exp
    }
}

/// Where a `client-jwt` client's public keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `jwt.credential.certificate`: one key, used whatever the assertion's `kid`.
    Certificate(ClientKey),
    /// `jwt.credential.public.key`: one key, used whatever the assertion's `kid`.
    PublicKey(ClientKey),
    /// `jwks.string`: the signature keys of a JWKS.
    JwksString(Vec<ClientKey>),
    /// `jwks.url`: fetched when an assertion is checked.
    JwksUrl(url::Url),
}

/// The kind of a public key, to match it with a JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// RSA (RS*, PS*).
    Rsa,
    /// P-256 (ES256).
    P256,
    /// P-384 (ES384).
    P384,
    /// Ed25519 (EdDSA).
    Ed25519,
}

impl KeyFamily {
    /// The key family an asymmetric algorithm needs; `None` for symmetric algorithms.
    pub fn for_algorithm(alg: jsonwebtoken::Algorithm) -> Option<Self> {
        use jsonwebtoken::Algorithm as A;
        match alg {
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => Some(Self::Rsa),
            A::ES256 => Some(Self::P256),
            A::ES384 => Some(Self::P384),
            A::EdDSA => Some(Self::Ed25519),
            _ => None,
        }
    }
}

/// One public key of a client.
#[derive(Debug, Clone)]
pub struct ClientKey {
    kid: Option<String>,
    alg: Option<jsonwebtoken::Algorithm>,
    family: KeyFamily,
    decoding: DecodingKey,
}

impl ClientKey {
    /// The key's `kid` (JWKS keys only).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's `alg` (JWKS keys that name one).
    pub fn alg(&self) -> Option<jsonwebtoken::Algorithm> {
        self.alg
    }

    /// The key's family.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The signature keys of a JWKS document (keys marked `"use": "enc"` and symmetric keys
    /// are left out, as Keycloak does).
    pub(crate) fn from_jwks_json(text: &str) -> Result<Vec<Self>, String> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let keys = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("expected a JWKS: {\"keys\": [...]}")?;
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let jwk: Jwk = serde_json::from_value(key.clone())
                .map_err(|e| format!("keys[{i}] is not a usable JWK: {e}"))?;
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => KeyFamily::P256,
                    EllipticCurve::P384 => KeyFamily::P384,
                    _ => {
                        return Err(format!(
                            "keys[{i}]: only P-256 and P-384 EC keys are supported"
                        ));
                    }
                },
                AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed25519,
                // Symmetric and unknown key types verify no client-jwt assertion.
                _ => continue,
            };
            let decoding = DecodingKey::from_jwk(&jwk)
                .map_err(|e| format!("keys[{i}] is not a usable public key: {e}"))?;
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| format!("{a:?}").parse::<jsonwebtoken::Algorithm>().ok());
            out.push(Self {
                kid: jwk.common.key_id.clone(),
                alg,
                family,
                decoding,
            });
        }
        Ok(out)
    }

    /// The public key of a base64 DER (or PEM) X.509 certificate.
    fn from_certificate(text: &str) -> Result<Self, String> {
        let der = decode_base64_or_pem(text).ok_or("not base64 DER or PEM")?;
        let spki = der::certificate_spki(&der).ok_or("not a DER X.509 certificate")?;
        Self::from_spki(spki)
    }

    /// A base64 DER (or PEM) `SubjectPublicKeyInfo`.
    fn from_public_key(text: &str) -> Result<Self, String> {
        let der = decode_base64_or_pem(text).ok_or("not base64 DER or PEM")?;
        Self::from_spki(&der)
    }

    fn from_spki(spki: &[u8]) -> Result<Self, String> {
        let key = der::public_key(spki).ok_or("not a DER SubjectPublicKeyInfo")?;
        let (family, decoding) = match key {
            der::PublicKey::Rsa { n, e } => {
                (KeyFamily::Rsa, DecodingKey::from_rsa_raw_components(n, e))
            }
            der::PublicKey::Ec { family, x, y } => (
                family,
                DecodingKey::from_ec_components(
                    &URL_SAFE_NO_PAD.encode(x),
                    &URL_SAFE_NO_PAD.encode(y),
                )
                .map_err(|e| format!("not a usable EC public key: {e}"))?,
            ),
            der::PublicKey::Unsupported => {
                return Err("only RSA, P-256 and P-384 public keys are supported".to_owned());
            }
        };
        Ok(Self {
            kid: None,
            alg: None,
            family,
            decoding,
        })
    }
}

/// Base64 DER, with or without PEM armour and line breaks.
fn decode_base64_or_pem(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

/// The few DER structures a public key is read from: a certificate's
/// `SubjectPublicKeyInfo`, and the RSA or EC key inside it. Nothing else of the
/// certificate is interpreted.
mod der {
    use super::KeyFamily;

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const OID: u8 = 0x06;
    const VERSION_TAG: u8 = 0xa0;

    /// rsaEncryption, 1.2.840.113549.1.1.1.
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// id-ecPublicKey, 1.2.840.10045.2.1.
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1, 1.2.840.10045.3.1.7.
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1, 1.3.132.0.34.
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

    /// One element: its tag, its contents, and what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }

    /// The contents of an element with tag `want`, and what follows.
    fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
        let (tag, body, rest) = element(input)?;
        (tag == want).then_some((body, rest))
    }

    /// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    /// serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }`:
    /// the whole `subjectPublicKeyInfo` element.
    pub(super) fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
        let (cert, _) = expect(der, SEQUENCE)?;
        let (tbs, _) = expect(cert, SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&VERSION_TAG) {
            rest = element(rest)?.2;
        }
        // serialNumber, signature, issuer, validity, subject.
        for _ in 0..5 {
            rest = element(rest)?.2;
        }
        let (tag, _, after) = element(rest)?;
        (tag == SEQUENCE).then(|| &rest[..rest.len() - after.len()])
    }

    /// A public key, as read from a `SubjectPublicKeyInfo`.
    pub(super) enum PublicKey<'a> {
        /// Modulus and exponent, big-endian, leading zeros trimmed.
        Rsa { n: &'a [u8], e: &'a [u8] },
        /// An uncompressed point.
        Ec {
            family: KeyFamily,
            x: &'a [u8],
            y: &'a [u8],
        },
        /// Another algorithm or curve.
        Unsupported,
    }

    /// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm SEQUENCE { OID, parameters },
    /// subjectPublicKey BIT STRING }`.
    pub(super) fn public_key(spki: &[u8]) -> Option<PublicKey<'_>> {
        let (body, _) = expect(spki, SEQUENCE)?;
        let (algorithm, rest) = expect(body, SEQUENCE)?;
        let (bits, _) = expect(rest, BIT_STRING)?;
        let (&unused, key) = bits.split_first()?;
        if unused != 0 {
            return None;
        }
        let (oid, params) = expect(algorithm, OID)?;
        if oid == RSA_ENCRYPTION {
            // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }.
            let (seq, _) = expect(key, SEQUENCE)?;
            let (n, rest) = expect(seq, INTEGER)?;
            let (e, _) = expect(rest, INTEGER)?;
            let n = trim_zeros(n);
            let e = trim_zeros(e);
            return (!n.is_empty() && !e.is_empty()).then_some(PublicKey::Rsa { n, e });
        }
        if oid == EC_PUBLIC_KEY {
            let (curve, _) = expect(params, OID)?;
            let (family, size) = if curve == P256 {
                (KeyFamily::P256, 32)
            } else if curve == P384 {
                (KeyFamily::P384, 48)
            } else {
                return Some(PublicKey::Unsupported);
            };
            let point = key.strip_prefix(&[0x04])?;
            if point.len() != 2 * size {
                return None;
            }
            let (x, y) = point.split_at(size);
            return Some(PublicKey::Ec { family, x, y });
        }
        Some(PublicKey::Unsupported)
    }

    fn trim_zeros(bytes: &[u8]) -> &[u8] {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        &bytes[first..]
    }
}
