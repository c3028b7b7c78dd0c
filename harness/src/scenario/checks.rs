//! The expectations: pure functions from what was seen to a list of problems, each written
//! as `what: expected X, actual Y` (actual values pass through the redactor first).

use std::collections::BTreeMap;

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use regex::Regex;
use serde_json::Value;
use url::Url;

use super::model::{HeaderExpect, LocationExpect, StateClaimsExpect};
use super::transcript::Redactor;

/// `${VAR}` from the stack's variables; an unknown name is an error listing the known ones.
pub fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
        let name = &after[..end];
        let value = vars.get(name).ok_or_else(|| {
            format!(
                "unknown variable ${{{name}}} (known: {})",
                vars.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Collects problems for one step.
pub struct Problems<'a> {
    vars: &'a BTreeMap<String, String>,
    redactor: &'a Redactor,
    /// The problems so far.
    pub list: Vec<String>,
}

impl<'a> Problems<'a> {
    /// An empty list checking against `vars`, printing through `redactor`.
    pub fn new(vars: &'a BTreeMap<String, String>, redactor: &'a Redactor) -> Self {
        Self {
            vars,
            redactor,
            list: Vec::new(),
        }
    }

    /// The expected text with variables filled in, or a problem and `None`.
    pub fn want(&mut self, what: &str, template: &str) -> Option<String> {
        match interpolate(template, self.vars) {
            Ok(v) => Some(v),
            Err(e) => {
                self.list.push(format!("{what}: {e}"));
                None
            }
        }
    }

    /// Records `expected X, actual Y` (both redacted) when they differ.
    pub fn equal(&mut self, what: &str, expected: &str, actual: &str) {
        if expected != actual {
            self.list.push(format!(
                "{what}: expected {:?}, actual {:?}",
                self.redactor.text(expected),
                self.redactor.text(actual)
            ));
        }
    }

    /// Records a free-form problem (redacted).
    pub fn push(&mut self, problem: impl AsRef<str>) {
        self.list.push(self.redactor.text(problem.as_ref()));
    }

    /// The response status.
    pub fn status(&mut self, expected: u16, actual: u16) {
        if expected != actual {
            self.list
                .push(format!("status: expected {expected}, actual {actual}"));
        }
    }

    /// A `location` header against [`LocationExpect`].
    pub fn location(&mut self, expect: &LocationExpect, location: Option<&str>) {
        let Some(location) = location else {
            self.list
                .push("location: expected a location header, actual none".into());
            return;
        };
        if let Some(want) = expect
            .equals
            .as_deref()
            .and_then(|t| self.want("location", t))
        {
            self.equal("location", &want, location);
        }
        let url = match Url::parse(location) {
            Ok(url) => url,
            Err(e) => {
                self.push(format!("location: not an absolute URL ({e}): {location}"));
                return;
            }
        };
        if let Some(want) = expect
            .endpoint
            .as_deref()
            .and_then(|t| self.want("location endpoint", t))
        {
            let actual = format!("{}{}", url.origin().ascii_serialization(), url.path());
            self.equal("location endpoint", &want, &actual);
        }
        let raw = raw_params(&url);
        if let Some(names) = &expect.params {
            let actual: Vec<&str> = raw.iter().map(|(k, _)| k.as_str()).collect();
            if actual != names.iter().map(String::as_str).collect::<Vec<_>>() {
                self.list.push(format!(
                    "location params: expected {names:?} (in this order), actual {actual:?}"
                ));
            }
        }
        let decoded: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        for (name, template) in &expect.values {
            let Some(want) = self.want(&format!("location param {name}"), template) else {
                continue;
            };
            match decoded.iter().find(|(k, _)| k == name) {
                Some((_, actual)) => self.equal(&format!("location param {name}"), &want, actual),
                None => self.list.push(format!(
                    "location param {name}: expected {want:?}, actual absent"
                )),
            }
        }
        for (name, template) in &expect.raw_values {
            let Some(want) = self.want(&format!("location param {name} (raw)"), template) else {
                continue;
            };
            match raw.iter().find(|(k, _)| k == name) {
                Some((_, actual)) => {
                    self.equal(&format!("location param {name} (raw)"), &want, actual);
                }
                None => self.list.push(format!(
                    "location param {name} (raw): expected {want:?}, actual absent"
                )),
            }
        }
    }

    /// The claims of the location's `state` JWT.
    pub fn state_claims(&mut self, expect: &StateClaimsExpect, location: Option<&str>) {
        let state = location.and_then(|l| Url::parse(l).ok()).and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        });
        let Some(state) = state else {
            self.list.push(
                "state claims: expected a state parameter in the location, actual none".into(),
            );
            return;
        };
        let claims = match jwt_payload(&state) {
            Ok(claims) => claims,
            Err(e) => {
                self.list.push(format!("state claims: {e}"));
                return;
            }
        };
        let names: Vec<&str> = claims.keys().map(String::as_str).collect();
        for name in &expect.names {
            if !claims.contains_key(name) {
                self.list.push(format!(
                    "state claims: expected claim {name:?}, actual claims {names:?}"
                ));
            }
        }
        if expect.only {
            let extra: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| !expect.names.iter().any(|e| e == n))
                .collect();
            if !extra.is_empty() {
                self.list.push(format!(
                    "state claims: expected only {:?}, actual extra {extra:?}",
                    expect.names
                ));
            }
        }
        let int = |name: &str| claims.get(name).and_then(Value::as_i64);
        if let Some(lifetime) = expect.lifetime_seconds {
            match (int("exp"), int("iat")) {
                (Some(exp), Some(iat)) => {
                    if exp - iat != lifetime {
                        self.list.push(format!(
                            "state claims: expected exp - iat == {lifetime}, actual {}",
                            exp - iat
                        ));
                    }
                }
                _ => self
                    .list
                    .push("state claims: expected numeric exp and iat, actual missing".into()),
            }
        }
        if expect.nbf_equals_iat && (int("nbf").is_none() || int("nbf") != int("iat")) {
            self.list.push(format!(
                "state claims: expected nbf == iat, actual nbf {:?}, iat {:?}",
                int("nbf"),
                int("iat")
            ));
        }
        for (name, template) in &expect.values {
            let what = format!("state claim {name}");
            let Some(want) = self.want(&what, template) else {
                continue;
            };
            match claims.get(name) {
                Some(actual) => self.equal(&what, &want, &scalar(actual)),
                None => self
                    .list
                    .push(format!("{what}: expected {want:?}, actual absent")),
            }
        }
    }

    /// One header (response or upstream) against [`HeaderExpect`]. `id_token` needs `jwks`.
    pub fn header(
        &mut self,
        what: &str,
        expect: &HeaderExpect,
        values: &[String],
        id_token: Option<&IdTokenContext<'_>>,
    ) {
        if let Some(present) = expect.present
            && present == values.is_empty()
        {
            self.list.push(format!(
                "{what}: expected {}, actual {}",
                if present { "present" } else { "absent" },
                if values.is_empty() {
                    "absent".to_owned()
                } else {
                    format!("{} value(s)", values.len())
                }
            ));
        }
        if let Some(count) = expect.count
            && count != values.len()
        {
            self.list.push(format!(
                "{what}: expected {count} value(s), actual {}",
                values.len()
            ));
        }
        let first = values.first().map(String::as_str);
        if let Some(want) = expect.equals.as_deref().and_then(|t| self.want(what, t)) {
            match first {
                Some(actual) => self.equal(what, &want, actual),
                None => self.list.push(format!(
                    "{what}: expected {:?}, actual absent",
                    self.redactor.text(&want)
                )),
            }
        }
        if let Some(unwanted) = expect
            .not_equals
            .as_deref()
            .and_then(|t| self.want(what, t))
            && values.contains(&unwanted)
        {
            self.list.push(format!(
                "{what}: expected any value but {:?}, actual that value",
                self.redactor.text(&unwanted)
            ));
        }
        if let Some(pattern) = expect.matches.as_deref().and_then(|t| self.want(what, t)) {
            match Regex::new(&pattern) {
                Ok(re) => {
                    if !first.is_some_and(|v| re.is_match(v)) {
                        self.list.push(format!(
                            "{what}: expected a value matching {pattern:?}, actual {:?}",
                            first.map(|v| self.redactor.text(v))
                        ));
                    }
                }
                Err(e) => self
                    .list
                    .push(format!("{what}: bad pattern {pattern:?}: {e}")),
            }
        }
        if let Some(claims) = &expect.id_token {
            match (first, id_token) {
                (None, _) => self
                    .list
                    .push(format!("{what}: expected an ID token, actual absent")),
                (Some(_), None) => self
                    .list
                    .push(format!("{what}: cannot verify an ID token: no JWKS")),
                (Some(token), Some(ctx)) => self.id_token(what, token, claims, ctx),
            }
        }
    }

    fn id_token(
        &mut self,
        what: &str,
        token: &str,
        claims: &BTreeMap<String, String>,
        ctx: &IdTokenContext<'_>,
    ) {
        let verified = match verify_id_token(token, ctx) {
            Ok(v) => v,
            Err(e) => {
                self.list
                    .push(format!("{what}: expected a valid ID token, actual: {e}"));
                return;
            }
        };
        for (name, template) in claims {
            let label = format!("{what} claim {name}");
            let Some(want) = self.want(&label, template) else {
                continue;
            };
            match verified.get(name) {
                // `aud` may be a list; containing the value is enough.
                Some(Value::Array(items)) => {
                    if !items.iter().any(|i| scalar(i) == want) {
                        self.list.push(format!(
                            "{label}: expected to contain {want:?}, actual {}",
                            self.redactor.text(&Value::Array(items.clone()).to_string())
                        ));
                    }
                }
                Some(actual) => self.equal(&label, &want, &scalar(actual)),
                None => self
                    .list
                    .push(format!("{label}: expected {want:?}, actual absent")),
            }
        }
    }

    /// JSON body fields by dotted path.
    pub fn body_json(&mut self, expect: &BTreeMap<String, String>, body: &str) {
        if expect.is_empty() {
            return;
        }
        let json: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                self.list
                    .push(format!("body: expected JSON, actual not JSON ({e})"));
                return;
            }
        };
        for (path, template) in expect {
            let what = format!("body {path}");
            let Some(want) = self.want(&what, template) else {
                continue;
            };
            match lookup(&json, path) {
                Some(actual) => self.equal(&what, &want, &scalar(actual)),
                None => self
                    .list
                    .push(format!("{what}: expected {want:?}, actual absent")),
            }
        }
    }
}

/// What ID-token verification needs from the stack.
pub struct IdTokenContext<'a> {
    /// The IdP's keys.
    pub jwks: &'a JwkSet,
    /// The expected `iss`.
    pub issuer: &'a str,
    /// The expected `aud` (the client id).
    pub audience: &'a str,
}

/// Verifies signature (JWKS, asymmetric algorithms only), `iss`, `aud`, `exp`; returns the
/// claims.
pub fn verify_id_token(
    token: &str,
    ctx: &IdTokenContext<'_>,
) -> Result<serde_json::Map<String, Value>, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT ({e})"))?;
    let allowed = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
    ];
    if !allowed.contains(&header.alg) {
        return Err(format!(
            "algorithm {:?} is not an IdP signing algorithm",
            header.alg
        ));
    }
    let jwk = match header.kid.as_deref() {
        Some(kid) => ctx
            .jwks
            .find(kid)
            .ok_or_else(|| format!("no key {kid:?} in the IdP's JWKS"))?,
        None if ctx.jwks.keys.len() == 1 => &ctx.jwks.keys[0],
        None => return Err("no kid and several keys in the JWKS".into()),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable JWK ({e})"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[ctx.audience]);
    validation.set_issuer(&[ctx.issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
        .map_err(|e| format!("verification failed ({e})"))?;
    Ok(data.claims)
}

/// The payload of a JWT, decoded without verification.
pub fn jwt_payload(token: &str) -> Result<serde_json::Map<String, Value>, String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT (expected three dot-separated parts)".into());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("payload is not base64url ({e})"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("payload is not a JSON object ({e})"))
}

/// Query parameters as sent (not decoded), in order.
pub fn raw_params(url: &Url) -> Vec<(String, String)> {
    url.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// `a.0.b` into a JSON value.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        Value::Object(map) => map.get(key),
        _ => None,
    })
}

/// A JSON scalar as text (strings without quotes).
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
