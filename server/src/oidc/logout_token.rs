//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0, sections 2.4 and 2.6):
//! the signature against the IdP's JWKS (an unknown `kid` refetches it under the
//! `jwksCacheRefreshPolicy`, as for ID tokens), `iss`, `aud`, `iat`, `exp` when present,
//! `jti`, the `events` member, no `nonce`, and a `sid` and/or `sub`. Replay of a `jti` is the
//! flow's to refuse (it owns the store that remembers them).

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{Discovered, IAT_SKEW_SECS, OidcError, Provider};

/// The `events` member a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Logout tokens issued longer ago than this are refused (the spec lets the RP choose; the
/// `jti` of an accepted token is remembered this long, plus the clock skew).
pub const LOGOUT_TOKEN_MAX_AGE_SECS: i64 = 300;
/// Longest `sid` / `sub` read.
const MAX_ID_LEN: usize = 512;

/// The algorithms a logout token may be signed with: asymmetric only (never `none`, never
/// an HMAC keyed with something a client could know).
const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What a verified logout token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    /// `jti`: refuse it a second time.
    pub jti: String,
    /// `sid`: the IdP session to end.
    pub sid: Option<String>,
    /// `sub`: the user whose sessions end (when there is no `sid`).
    pub sub: Option<String>,
    /// `iat`.
    pub iat: i64,
}

enum Failure {
    UnknownKey,
    Invalid(String),
}

fn invalid(reason: impl Into<String>) -> OidcError {
    OidcError::LogoutTokenInvalid(reason.into())
}

impl Provider {
    /// Verifies a `logout_token` and returns what it names.
    pub async fn verify_logout_token(&self, raw: &str) -> Result<LogoutClaims, OidcError> {
        if raw.len() > 16 * 1024 || raw.split('.').count() != 3 {
            return Err(invalid("not a signed JWT"));
        }
        let header = jsonwebtoken::decode_header(raw)
            .map_err(|e| invalid(format!("unreadable header: {e}")))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(invalid(format!("alg {:?} is not allowed", header.alg)));
        }
        let discovered = self.discovered().await?;
        let payload = match self.check_logout_signature(&discovered, raw, &header) {
            Err(Failure::UnknownKey) if self.may_refetch_jwks() => {
                let fresh = match self.discovered_inner(true).await {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        self.refetch_failed(true);
                        return Err(e);
                    }
                };
                self.check_logout_signature(&fresh, raw, &header)
            }
            other => other,
        }
        .map_err(|f| match f {
            Failure::UnknownKey => invalid("signed with a key (kid) that is not in the IdP's JWKS"),
            Failure::Invalid(reason) => invalid(reason),
        })?;
        check_claims(&payload, self.clock.now())
    }

    /// The verified payload (signature, `iss`, `aud`) of `raw`.
    fn check_logout_signature(
        &self,
        discovered: &Discovered,
        raw: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<serde_json::Value, Failure> {
        let candidates: Vec<&Jwk> = discovered
            .jwks
            .iter()
            .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter(|k| match &header.kid {
                Some(kid) => k.common.key_id.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(Failure::UnknownKey);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[discovered.issuer.as_str()]);
        validation.set_audience(&[self.config.client_id.as_str()]);
        validation.set_required_spec_claims(&["iss", "aud"]);
        // Times are checked against the injected clock in `check_claims`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut last = String::from("no key of the JWKS verifies the signature");
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<serde_json::Value>(raw, &key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(Failure::Invalid(last))
    }
}

/// The claim checks of section 2.6 on a payload whose signature, `iss` and `aud` passed.
fn check_claims(c: &serde_json::Value, now: i64) -> Result<LogoutClaims, OidcError> {
    let int = |name: &str| c.get(name).and_then(serde_json::Value::as_i64);
    let text = |name: &str| -> Result<Option<String>, OidcError> {
        match c.get(name) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(invalid(format!("`{name}` must be a non-empty string"))),
        }
    };
    let iat = int("iat").ok_or_else(|| invalid("`iat` is missing"))?;
    if iat > now + IAT_SKEW_SECS {
        return Err(invalid(format!("iat {iat} is in the future")));
    }
    if iat < now - LOGOUT_TOKEN_MAX_AGE_SECS {
        return Err(invalid(format!(
            "iat {iat} is older than {LOGOUT_TOKEN_MAX_AGE_SECS} s"
        )));
    }
    match c.get("exp") {
        None => {}
        Some(exp) => match exp.as_i64() {
            Some(exp) if exp + IAT_SKEW_SECS >= now => {}
            Some(exp) => return Err(invalid(format!("exp {exp} has passed"))),
            None => return Err(invalid("`exp` must be a number")),
        },
    }
    let jti = text("jti")?.ok_or_else(|| invalid("`jti` is missing"))?;
    let has_event = c
        .get("events")
        .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(serde_json::Value::is_object);
    if !has_event {
        return Err(invalid(format!(
            "`events` must hold a `{BACKCHANNEL_LOGOUT_EVENT}` object"
        )));
    }
    if c.get("nonce").is_some() {
        return Err(invalid("a logout token must not carry `nonce`"));
    }
    let sid = text("sid")?;
    let sub = text("sub")?;
    if sid.is_none() && sub.is_none() {
        return Err(invalid("neither `sid` nor `sub` is present"));
    }
    Ok(LogoutClaims { jti, sid, sub, iat })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_768_504_473;

    /// A change to the valid claims.
    type Edit = fn(&mut serde_json::Value);

    fn base() -> serde_json::Value {
        serde_json::json!({
            "iat": NOW,
            "jti": "j1",
            "sid": "s1",
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        })
    }

    #[test]
    fn a_complete_logout_token_names_its_session() {
        let claims = check_claims(&base(), NOW).unwrap();
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        assert_eq!(claims.jti, "j1");
    }

    #[test]
    fn each_claim_rule_of_section_2_6_refuses_the_token() {
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "no iat",
                |c| {
                    c.as_object_mut().unwrap().remove("iat");
                },
                "`iat` is missing",
            ),
            (
                "iat ahead",
                |c| c["iat"] = (NOW + 3600).into(),
                "in the future",
            ),
            ("iat old", |c| c["iat"] = (NOW - 3600).into(), "older than"),
            (
                "exp passed",
                |c| c["exp"] = (NOW - 3600).into(),
                "has passed",
            ),
            (
                "no jti",
                |c| {
                    c.as_object_mut().unwrap().remove("jti");
                },
                "`jti` is missing",
            ),
            (
                "no events",
                |c| {
                    c.as_object_mut().unwrap().remove("events");
                },
                "`events`",
            ),
            (
                "wrong event",
                |c| c["events"] = serde_json::json!({"x": {}}),
                "`events`",
            ),
            ("nonce", |c| c["nonce"] = "n".into(), "`nonce`"),
            (
                "no sid nor sub",
                |c| {
                    c.as_object_mut().unwrap().remove("sid");
                },
                "neither",
            ),
            ("sid not text", |c| c["sid"] = 5.into(), "`sid` must be"),
        ];
        for (label, edit, want) in cases {
            let mut c = base();
            edit(&mut c);
            let err = check_claims(&c, NOW).expect_err(label);
            assert!(err.to_string().contains(want), "{label}: {err}");
            assert!(matches!(err, OidcError::LogoutTokenInvalid(_)), "{label}");
        }
    }

    #[test]
    fn sub_alone_is_enough() {
        let mut c = base();
        c.as_object_mut().unwrap().remove("sid");
        c["sub"] = "u1".into();
        let claims = check_claims(&c, NOW).unwrap();
        assert_eq!((claims.sid, claims.sub.as_deref()), (None, Some("u1")));
    }
}
