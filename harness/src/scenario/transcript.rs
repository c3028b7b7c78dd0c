//! The transcript of a run (requests, responses, what the upstream saw, login outcomes) and
//! the redaction pass that makes it safe to print and stable to snapshot.
//!
//! Every string goes through [`Redactor::text`] when it is recorded: secrets the run learned
//! (session cookies, ID tokens, the client secret) become `[secret]`; `code`, `state` and
//! Keycloak's form parameters become `[code]`, `[state]`, ...; JWTs become `[jwt]`; the
//! stack's URLs become `[GATEWAY_URL]`, `[IDP_URL]`, ...; cookie values, expiry times and
//! loopback ports are masked. JSON bodies are recorded with sorted keys, so the output does
//! not depend on serde_json's map order.

use std::collections::BTreeMap;

use regex::{Captures, Regex};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// Query parameters whose values change every run.
const VOLATILE_PARAMS: &str =
    "code|state|session_state|session_code|tab_id|execution|nonce|code_challenge|client_data";

/// Stack variables replaced by their name, longest value first.
const STACK_VARS: &[&str] = &[
    "APP_URL",
    "GATEWAY_URL",
    "IDP_URL",
    "UPSTREAM_URL",
    "REDIS_URL",
    "EXTAUTH_GRPC",
    "EXTAUTH_HTTP",
    "EXTAUTH_ADMIN",
    "INGRESS_GW_ADDRESS",
];

/// Masks what must not be printed or must not make snapshots flaky.
#[derive(Debug)]
pub struct Redactor {
    secrets: Vec<String>,
    literals: Vec<(String, String)>,
    params: Regex,
    jwt: Regex,
    expires: Regex,
    port: Regex,
    uid: Regex,
}

impl Redactor {
    /// A redactor for a stack with these variables and secrets. (The patterns are
    /// constants; the error cannot happen in practice but is not hidden.)
    pub fn new(vars: &BTreeMap<String, String>, secrets: &[String]) -> Result<Self, regex::Error> {
        // (value, placeholder, rank on equal values).
        let mut ranked = Vec::new();
        for name in STACK_VARS {
            let Some(value) = vars.get(*name).filter(|v| v.len() >= 4) else {
                continue;
            };
            let placeholder = format!("[{name}]");
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            // When the gateway is not on port 80, `appUrl` drops `:80` and equals the gateway
            // URL: an encoded one is then the `redirect_uri` (appUrl), a plain one the URL
            // of a request to the gateway, as on a port-80 stack where they differ.
            let rank = |gateway_first: bool| match (*name, gateway_first) {
                ("GATEWAY_URL", true) | ("APP_URL", false) => 0,
                _ => 1,
            };
            if encoded != *value {
                ranked.push((encoded, placeholder.clone(), rank(false)));
            }
            ranked.push((value.clone(), placeholder, rank(true)));
        }
        // Longest first, so `http://127.0.0.2:80` wins over `http://127.0.0.2`; on equal
        // values the rank above, then the first name in STACK_VARS (stable sort).
        ranked.sort_by_key(|l| (std::cmp::Reverse(l.0.len()), l.2));
        let literals = ranked.into_iter().map(|(v, p, _)| (v, p)).collect();
        let mut redactor = Self {
            secrets: Vec::new(),
            literals,
            params: Regex::new(&format!(r#"([?&#])({VOLATILE_PARAMS})=[^&#\s"'<>]+"#))?,
            jwt: Regex::new(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")?,
            expires: Regex::new(r"(?i)(expires=)[^;]+")?,
            port: Regex::new(r"(127\.0\.0\.\d{1,3}|localhost|\[::1\]):\d{2,5}")?,
            // oidc-provider's interaction ids in its paths (`/interaction/<uid>`,
            // `/protocol/openid-connect/auth/<uid>`): new every run.
            uid: Regex::new(r"(/interaction/|/openid-connect/auth/)[A-Za-z0-9_-]{16,}")?,
        };
        for secret in secrets {
            redactor.add_secret(secret);
        }
        Ok(redactor)
    }

    /// Remembers a value learned during the run (a session id, a token) as secret.
    pub fn add_secret(&mut self, secret: &str) {
        // Very short values would mask ordinary text.
        if secret.len() >= 8 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Whether `value` is exactly one JWT (which [`Redactor::text`] masks as `[jwt]`).
    pub fn is_jwt(&self, value: &str) -> bool {
        self.jwt
            .find(value)
            .is_some_and(|m| m.start() == 0 && m.end() == value.len())
    }

    /// One string, redacted.
    pub fn text(&self, input: &str) -> String {
        let mut out = input.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[secret]");
            }
        }
        out = self
            .params
            .replace_all(&out, |c: &Captures<'_>| {
                format!("{}{}=[{}]", &c[1], &c[2], &c[2])
            })
            .into_owned();
        out = self.jwt.replace_all(&out, "[jwt]").into_owned();
        for (literal, placeholder) in &self.literals {
            if out.contains(literal.as_str()) {
                out = out.replace(literal.as_str(), placeholder);
            }
        }
        out = self.expires.replace_all(&out, "${1}[time]").into_owned();
        out = self.uid.replace_all(&out, "${1}[uid]").into_owned();
        self.port.replace_all(&out, "${1}:[port]").into_owned()
    }

    /// A header value, redacted; cookie values are masked whatever they are.
    pub fn header(&self, name: &str, value: &str) -> String {
        match name.to_ascii_lowercase().as_str() {
            "cookie" => value
                .split(';')
                .map(|pair| mask_cookie_pair(pair.trim()))
                .collect::<Vec<_>>()
                .join("; "),
            "set-cookie" => {
                let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
                let masked = mask_cookie_pair(pair.trim());
                if attributes.is_empty() {
                    masked
                } else {
                    self.text(&format!("{masked};{attributes}"))
                }
            }
            _ => self.text(value),
        }
    }

    /// A JSON value as a [`Node`] with sorted keys and redacted strings.
    pub fn json(&self, value: &serde_json::Value) -> Node {
        match value {
            serde_json::Value::Null => Node::Null,
            serde_json::Value::Bool(b) => Node::Bool(*b),
            serde_json::Value::Number(n) => Node::Number(n.to_string()),
            serde_json::Value::String(s) => Node::Text(self.text(s)),
            serde_json::Value::Array(items) => {
                Node::List(items.iter().map(|v| self.json(v)).collect())
            }
            serde_json::Value::Object(map) => Node::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.json(v)))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
            ),
        }
    }
}

/// `name=value` → `name=[redacted]` (an empty value, a deletion, stays empty).
fn mask_cookie_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((name, "")) => format!("{name}="),
        Some((name, _)) => format!("{name}=[redacted]"),
        None => pair.to_owned(),
    }
}

/// A redacted JSON-like value with a fixed key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, as JSON wrote it.
    Number(String),
    /// A string.
    Text(String),
    /// A list.
    List(Vec<Node>),
    /// A map, in this order.
    Map(Vec<(String, Node)>),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => {
                if let Ok(i) = n.parse::<i64>() {
                    serializer.serialize_i64(i)
                } else if let Ok(f) = n.parse::<f64>() {
                    serializer.serialize_f64(f)
                } else {
                    serializer.serialize_str(n)
                }
            }
            Self::Text(s) => serializer.serialize_str(s),
            Self::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    /// Scenario name.
    pub scenario: String,
    /// The stack as built (backends, not addresses).
    pub stack: BTreeMap<String, String>,
    /// One record per step, in order.
    pub steps: Vec<StepRecord>,
}

/// One step's record.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// The step's name.
    pub step: String,
    /// What happened.
    #[serde(flatten)]
    pub what: StepKind,
}

/// What a step did (its fields sit beside `step:` in the transcript).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StepKind {
    /// A request to the gateway.
    Request {
        /// What was sent.
        request: RequestRecord,
        /// What came back.
        response: ResponseRecord,
        /// What the upstream received during the step.
        upstream_received: Vec<UpstreamRecord>,
        /// The `dynamic_metadata` the gateway received from ext_authz during the step
        /// (`dynamicMetadataFromClaims`): the simulator's, or agentgateway's from its log.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        gateway_dynamic_metadata: Vec<Node>,
    },
    /// A login.
    Login {
        /// How it went.
        login: LoginRecord,
    },
    /// A Redis action.
    Redis {
        /// `stopped` or `started again`.
        redis: String,
    },
    /// An extauth replica killed or restarted.
    Extauth {
        /// `replica N killed` or `replica N restarted`.
        extauth: String,
    },
    /// A logout at the IdP and the frames its page loaded.
    IdpLogout {
        /// How it went.
        idp_logout: IdpLogoutRecord,
    },
}

/// An `idp_logout` step's record.
#[derive(Debug, Clone, Serialize)]
pub struct IdpLogoutRecord {
    /// The IdP's logout URL (redacted).
    pub url: String,
    /// Its status.
    pub status: u16,
    /// Each frame the page loaded, in page order.
    pub frames: Vec<FrameRecord>,
}

/// One frame of the IdP's logout page, as loaded.
#[derive(Debug, Clone, Serialize)]
pub struct FrameRecord {
    /// Its URL (redacted; the `sid` is a secret).
    pub url: String,
    /// What it answered.
    pub response: ResponseRecord,
}

/// A request as sent.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// Method.
    pub method: String,
    /// URL (redacted).
    pub url: String,
    /// Headers sent (redacted), sorted.
    pub headers: BTreeMap<String, String>,
    /// Body size, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<usize>,
}

/// A response as received.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseRecord {
    /// Status code.
    pub status: u16,
    /// Headers (redacted; `date` and `content-length` left out), repeated ones as lists.
    pub headers: BTreeMap<String, Node>,
    /// The body: JSON when it parses, else text (clipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Node>,
}

/// One request the upstream received.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamRecord {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Headers (redacted), repeated ones as lists.
    pub headers: BTreeMap<String, Node>,
}

/// A login's record.
#[derive(Debug, Clone, Serialize)]
pub struct LoginRecord {
    /// The driver.
    pub driver: String,
    /// User name.
    pub user: String,
    /// Where it started (redacted).
    pub start: String,
    /// `success`, `invalid_credentials` or `error: ...`.
    pub outcome: String,
    /// Where it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    /// Last status (http driver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_status: Option<u16>,
    /// Cookies held for the gateway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<CookieRecord>,
    /// The hops, redacted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<String>,
    /// The last page's text (clipped, redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
}

/// A cookie without its value.
#[derive(Debug, Clone, Serialize)]
pub struct CookieRecord {
    /// Name.
    pub name: String,
    /// The value's shape, never the value.
    pub value: String,
    /// Path.
    pub path: String,
    /// HttpOnly.
    pub http_only: bool,
    /// Secure.
    pub secure: bool,
}

/// Headers as a sorted map; repeated headers become lists.
pub fn header_map<'a>(
    redactor: &Redactor,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    skip: &[&str],
) -> BTreeMap<String, Node> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if skip.contains(&name.as_str()) {
            continue;
        }
        let value = redactor.header(&name, value);
        map.entry(name).or_default().push(value);
    }
    map.into_iter()
        .map(|(k, mut v)| {
            let node = if v.len() == 1 {
                Node::Text(v.remove(0))
            } else {
                Node::List(v.into_iter().map(Node::Text).collect())
            };
            (k, node)
        })
        .collect()
}

/// At most `max` characters, whitespace collapsed.
pub fn clip(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}
