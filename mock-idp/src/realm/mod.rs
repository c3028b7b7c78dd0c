//! Realms: Keycloak realm-export JSON in, a validated [`Realm`] out.
//!
//! Two layers, as everywhere in this workspace: `raw` mirrors the file, and
//! [`Realm::from_json_str`] compiles it into the runtime types below, rejecting bad input with
//! the JSON path of the offending field. This module owns users, clients, credentials and
//! redirect-URI matching; it knows nothing about HTTP or tokens.

mod attributes;
mod credential;
mod logout;
mod raw;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq as _;

use crate::ids;
use attributes::Attributes;
pub use credential::{
    Authenticator, ClientKey, DEFAULT_MAX_EXP, JwtCredential, KeyFamily, KeySource,
};
pub use logout::{BackChannelLogout, FrontChannelLogout};
use raw::{RawClient, RawRealm, RawUser};

/// Why a realm file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum RealmError {
    /// The file could not be read.
    #[error("cannot read realm file {}: {source}", file.display())]
    Read {
        /// The file that was asked for.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not JSON of the expected shape.
    #[error("{}invalid realm JSON at `{path}`: {source}", in_file(file.as_deref()))]
    Json {
        /// The file, when read from one.
        file: Option<PathBuf>,
        /// JSON path of the bad field, e.g. `users[0].credentials[0].value`.
        path: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The JSON parsed but a value is not acceptable.
    #[error("{}invalid realm at `{path}`: {reason}", in_file(file.as_deref()))]
    Invalid {
        /// The file, when read from one.
        file: Option<PathBuf>,
        /// JSON path of the bad field.
        path: String,
        /// What was expected.
        reason: String,
    },
}

fn in_file(file: Option<&Path>) -> String {
    file.map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

impl RealmError {
    /// The JSON path of the rejected field, when the error is about one.
    pub fn json_path(&self) -> Option<&str> {
        match self {
            RealmError::Read { .. } => None,
            RealmError::Json { path, .. } | RealmError::Invalid { path, .. } => Some(path),
        }
    }

    fn with_file(self, f: &Path) -> Self {
        match self {
            RealmError::Json { path, source, .. } => RealmError::Json {
                file: Some(f.to_path_buf()),
                path,
                source,
            },
            RealmError::Invalid { path, reason, .. } => RealmError::Invalid {
                file: Some(f.to_path_buf()),
                path,
                reason,
            },
            other => other,
        }
    }
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> RealmError {
    RealmError::Invalid {
        file: None,
        path: path.into(),
        reason: reason.into(),
    }
}

/// Token and session lifetimes, in seconds (Keycloak's realm defaults unless the file sets
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access and ID token lifetime (`accessTokenLifespan`, 300).
    pub access_token: u64,
    /// Authorization code lifetime (`accessCodeLifespan`, 60).
    pub access_code: u64,
    /// Lifetime of a rendered login form (`accessCodeLifespanLogin`, 1800).
    pub login: u64,
    /// SSO session idle timeout and refresh-token lifetime (`ssoSessionIdleTimeout`, 1800).
    pub sso_idle: u64,
    /// SSO session maximum lifetime (`ssoSessionMaxLifespan`, 36000).
    pub sso_max: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            access_token: 300,
            access_code: 60,
            login: 1800,
            sso_idle: 1800,
            sso_max: 36000,
        }
    }
}

/// A validated realm.
#[derive(Debug, Clone)]
pub struct Realm {
    name: String,
    display_name: Option<String>,
    enabled: bool,
    lifetimes: Lifetimes,
    users: Vec<User>,
    clients: Vec<Client>,
}

impl Realm {
    /// Reads and validates a realm-export file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, RealmError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RealmError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text).map_err(|e| e.with_file(path))
    }

    /// Parses and validates realm-export JSON.
    pub fn from_json_str(json: &str) -> Result<Self, RealmError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let raw: RawRealm = serde_path_to_error::deserialize(de).map_err(|e| RealmError::Json {
            file: None,
            path: e.path().to_string(),
            source: e.into_inner(),
        })?;
        Self::compile(raw)
    }

    fn compile(raw: RawRealm) -> Result<Self, RealmError> {
        if raw.realm.trim().is_empty() {
            return Err(invalid("realm", "the realm name must not be empty"));
        }
        if raw.realm.contains('/') {
            return Err(invalid("realm", "the realm name must not contain `/`"));
        }
        let defaults = Lifetimes::default();
        let lifetimes = Lifetimes {
            access_token: positive(raw.access_token_lifespan, "accessTokenLifespan")?
                .unwrap_or(defaults.access_token),
            access_code: positive(raw.access_code_lifespan, "accessCodeLifespan")?
                .unwrap_or(defaults.access_code),
            login: positive(raw.access_code_lifespan_login, "accessCodeLifespanLogin")?
                .unwrap_or(defaults.login),
            sso_idle: positive(raw.sso_session_idle_timeout, "ssoSessionIdleTimeout")?
                .unwrap_or(defaults.sso_idle),
            sso_max: positive(raw.sso_session_max_lifespan, "ssoSessionMaxLifespan")?
                .unwrap_or(defaults.sso_max),
        };

        let mut seen = HashSet::new();
        let mut users = Vec::with_capacity(raw.users.len());
        for (i, u) in raw.users.into_iter().enumerate() {
            let user = User::compile(&raw.realm, i, u)?;
            if !seen.insert(user.username.clone()) {
                return Err(invalid(
                    format!("users[{i}].username"),
                    format!("duplicate username {:?}", user.username),
                ));
            }
            users.push(user);
        }

        let mut seen = HashSet::new();
        let mut clients = Vec::with_capacity(raw.clients.len());
        for (i, c) in raw.clients.into_iter().enumerate() {
            let client = Client::compile(i, c)?;
            if !seen.insert(client.client_id.clone()) {
                return Err(invalid(
                    format!("clients[{i}].clientId"),
                    format!("duplicate clientId {:?}", client.client_id),
                ));
            }
            clients.push(client);
        }

        Ok(Self {
            name: raw.realm,
            display_name: raw.display_name.filter(|d| !d.trim().is_empty()),
            enabled: raw.enabled.unwrap_or(true),
            lifetimes,
            users,
            clients,
        })
    }

    /// The realm name (`realm` in the file), as used in `/realms/{realm}`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name shown to people (`displayName`, else the realm name).
    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// Whether the realm serves requests (`enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The realm's token and session lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// All users, in file order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// All clients, in file order.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The client with this `clientId`.
    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    /// The user a login form's "Username or email" designates: usernames match
    /// case-insensitively (Keycloak stores them lowercased), and so do e-mail addresses.
    pub fn user_for_login(&self, username_or_email: &str) -> Option<&User> {
        let wanted = username_or_email.trim().to_lowercase();
        self.users
            .iter()
            .find(|u| u.username == wanted)
            .or_else(|| {
                self.users
                    .iter()
                    .find(|u| u.email.as_deref().map(str::to_lowercase) == Some(wanted.clone()))
            })
    }

    /// The user with this id (`sub`).
    pub fn user_by_id(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
}

fn positive(value: Option<u64>, field: &str) -> Result<Option<u64>, RealmError> {
    match value {
        Some(0) => Err(invalid(field, "must be a positive number of seconds")),
        other => Ok(other),
    }
}

/// A password, compared in constant time and never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Whether `candidate` is this password.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A user of the realm.
#[derive(Debug, Clone)]
pub struct User {
    id: String,
    username: String,
    enabled: bool,
    email: Option<String>,
    email_verified: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    password: Option<Password>,
    attributes: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Claims a user attribute may not replace (the protocol's own and the profile's).
const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "auth_time",
    "nonce",
    "jti",
    "typ",
    "azp",
    "session_state",
    "sid",
    "at_hash",
    "c_hash",
    "acr",
    "amr",
    "scope",
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "given_name",
    "family_name",
];

impl User {
    fn compile(realm: &str, i: usize, raw: RawUser) -> Result<Self, RealmError> {
        let username = raw.username.trim().to_lowercase();
        if username.is_empty() {
            return Err(invalid(
                format!("users[{i}].username"),
                "the username must not be empty",
            ));
        }
        let mut password = None;
        for (j, c) in raw.credentials.into_iter().enumerate() {
            match c.kind.as_deref() {
                Some("password") | None => {}
                Some(_) => continue,
            }
            match c.value {
                Some(v) if v.is_empty() => {
                    return Err(invalid(
                        format!("users[{i}].credentials[{j}].value"),
                        "the password must not be empty",
                    ));
                }
                Some(v) => password = Some(Password(v)),
                // A hashed credential (`secretData`) from a real export: unusable here.
                None => {}
            }
        }
        if raw.enabled.is_none() {
            tracing::warn!(
                user = %username,
                "user has no `enabled`; like Keycloak's import, it is disabled"
            );
        }
        let id = match raw.id {
            Some(id) if !id.trim().is_empty() => id,
            _ => ids::derived_uuid(&format!("{realm}/{username}")),
        };
        let mut attributes = std::collections::BTreeMap::new();
        for (name, mut values) in raw.attributes {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                return Err(invalid(
                    format!("users[{i}].attributes.{name}"),
                    "this attribute would replace a standard claim; use another name",
                ));
            }
            let claim = match values.len() {
                0 => continue,
                1 => serde_json::Value::String(values.remove(0)),
                _ => serde_json::Value::from(values),
            };
            attributes.insert(name, claim);
        }
        Ok(Self {
            id,
            username,
            enabled: raw.enabled.unwrap_or(false),
            email: raw.email.filter(|e| !e.is_empty()),
            email_verified: raw.email_verified.unwrap_or(false),
            first_name: raw.first_name.filter(|e| !e.is_empty()),
            last_name: raw.last_name.filter(|e| !e.is_empty()),
            password,
            attributes,
        })
    }

    /// The user id, used as the `sub` claim.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The (lowercased) username, the `preferred_username` claim.
    pub fn username(&self) -> &str {
        &self.username
    }
    /// Whether the user may log in.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// The `email` claim.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    /// The `email_verified` claim.
    pub fn email_verified(&self) -> bool {
        self.email_verified
    }
    /// The `given_name` claim.
    pub fn first_name(&self) -> Option<&str> {
        self.first_name.as_deref()
    }
    /// The `family_name` claim.
    pub fn last_name(&self) -> Option<&str> {
        self.last_name.as_deref()
    }
    /// The `name` claim: first and last name, as Keycloak joins them.
    pub fn full_name(&self) -> Option<String> {
        match (self.first_name(), self.last_name()) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
            (None, None) => None,
        }
    }
    /// Extra claims from the user's `attributes` (as a Keycloak "User Attribute" mapper with
    /// "add to ID token" and "add to userinfo" would add them): one value is a string claim,
    /// several an array.
    pub fn attributes(&self) -> &std::collections::BTreeMap<String, serde_json::Value> {
        &self.attributes
    }
    /// Whether the user is enabled and `password` is theirs.
    pub fn check_password(&self, password: &str) -> bool {
        self.enabled && self.password.as_ref().is_some_and(|p| p.matches(password))
    }
}

/// A client secret, compared in constant time and never printed.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Whether `candidate` is this secret.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
    /// The secret itself, for a test that must present it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// One allowed redirect URI, with Keycloak's rule: a trailing `*` matches any URI starting
/// with what precedes it, anything else must match exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectUriPattern {
    /// Must equal the requested URI.
    Exact(String),
    /// The requested URI must start with this.
    Prefix(String),
}

impl RedirectUriPattern {
    fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("a redirect URI must not be empty");
        }
        match s.strip_suffix('*') {
            Some(prefix) if prefix.contains('*') => {
                Err("`*` is only allowed at the end of a redirect URI")
            }
            Some(prefix) => Ok(Self::Prefix(prefix.to_owned())),
            None if s.contains('*') => Err("`*` is only allowed at the end of a redirect URI"),
            None => Ok(Self::Exact(s.to_owned())),
        }
    }

    /// Whether `uri` is allowed by this pattern.
    pub fn matches(&self, uri: &str) -> bool {
        match self {
            Self::Exact(e) => e == uri,
            Self::Prefix(p) => uri.starts_with(p.as_str()),
        }
    }
}

/// A client of the realm.
#[derive(Debug, Clone)]
pub struct Client {
    client_id: String,
    name: Option<String>,
    secret: Option<ClientSecret>,
    public: bool,
    authenticator: Authenticator,
    enabled: bool,
    standard_flow_enabled: bool,
    redirect_uris: Vec<RedirectUriPattern>,
    service_accounts_enabled: bool,
    pkce_method: Option<String>,
    /// `None`: the redirect URIs (`+`).
    post_logout_redirect_uris: Option<Vec<RedirectUriPattern>>,
    frontchannel_logout: Option<FrontChannelLogout>,
    backchannel_logout: Option<BackChannelLogout>,
}

impl Client {
    fn compile(i: usize, raw: RawClient) -> Result<Self, RealmError> {
        if raw.client_id.is_empty() {
            return Err(invalid(
                format!("clients[{i}].clientId"),
                "the clientId must not be empty",
            ));
        }
        let public = raw.public_client.unwrap_or(false);
        let attributes = Attributes::new(&raw.attributes, i);
        // Keycloak ignores `clientAuthenticatorType` for a public client.
        let authenticator = if public {
            Authenticator::Secret
        } else {
            Authenticator::compile(raw.client_authenticator_type.as_deref(), &attributes, i)?
        };
        let secret = raw
            .secret
            .clone()
            .filter(|s| !s.is_empty())
            .map(ClientSecret);
        if !public && secret.is_none() && matches!(authenticator, Authenticator::Secret) {
            return Err(invalid(
                format!("clients[{i}].secret"),
                "a confidential client (publicClient: false) needs a secret",
            ));
        }
        let frontchannel_logout = FrontChannelLogout::compile(
            raw.frontchannel_logout.unwrap_or(false),
            raw.base_url.as_deref(),
            &attributes,
            i,
        )?;
        let backchannel_logout = BackChannelLogout::compile(&attributes)?;
        let redirect_uris = raw
            .redirect_uris
            .iter()
            .enumerate()
            .map(|(j, u)| {
                RedirectUriPattern::parse(u)
                    .map_err(|reason| invalid(format!("clients[{i}].redirectUris[{j}]"), reason))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pkce_method = match attributes.string("pkce.code.challenge.method")? {
            None => None,
            Some(m @ ("S256" | "plain")) => Some(m.to_owned()),
            Some(_) => {
                return Err(invalid(
                    format!("clients[{i}].attributes.pkce.code.challenge.method"),
                    "expected S256, plain or empty",
                ));
            }
        };
        let post_logout_redirect_uris = match attributes.raw_string("post.logout.redirect.uris")? {
            None => None,
            Some(list) => {
                let mut patterns = Vec::new();
                let mut plus = false;
                for (j, u) in list.split("##").filter(|u| !u.is_empty()).enumerate() {
                    if u == "+" {
                        plus = true;
                        continue;
                    }
                    patterns.push(RedirectUriPattern::parse(u).map_err(|reason| {
                        invalid(
                            format!("clients[{i}].attributes.post.logout.redirect.uris[{j}]"),
                            reason,
                        )
                    })?);
                }
                if plus {
                    patterns.extend(redirect_uris.iter().cloned());
                }
                Some(patterns)
            }
        };
        Ok(Self {
            name: raw.name.filter(|n| !n.trim().is_empty()),
            client_id: raw.client_id,
            secret,
            public,
            authenticator,
            enabled: raw.enabled.unwrap_or(true),
            standard_flow_enabled: raw.standard_flow_enabled.unwrap_or(true),
            redirect_uris,
            service_accounts_enabled: raw.service_accounts_enabled.unwrap_or(false),
            pkce_method,
            post_logout_redirect_uris,
            frontchannel_logout,
            backchannel_logout,
        })
    }

    /// How the client authenticates (`clientAuthenticatorType`); `Secret` for a public
    /// client, which needs no credential at all.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    /// The name shown to people (`name`, else the `clientId`).
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.client_id)
    }

    /// Its front-channel logout, when `frontchannelLogout` is on and a URL is known.
    pub fn frontchannel_logout(&self) -> Option<&FrontChannelLogout> {
        self.frontchannel_logout.as_ref()
    }

    /// Its back-channel logout, when `backchannel.logout.url` is set.
    pub fn backchannel_logout(&self) -> Option<&BackChannelLogout> {
        self.backchannel_logout.as_ref()
    }

    /// Whether the `client_credentials` grant is allowed (`serviceAccountsEnabled`).
    pub fn service_accounts_enabled(&self) -> bool {
        self.service_accounts_enabled
    }

    /// The PKCE method this client must use (`pkce.code.challenge.method`), if any.
    pub fn required_pkce_method(&self) -> Option<&str> {
        self.pkce_method.as_deref()
    }

    /// Whether `uri` is an allowed `post_logout_redirect_uri` (`post.logout.redirect.uris`).
    pub fn allows_post_logout_redirect(&self, uri: &str) -> bool {
        match &self.post_logout_redirect_uris {
            None => self.allows_redirect(uri),
            Some(patterns) => patterns.iter().any(|p| p.matches(uri)),
        }
    }

    /// The OAuth `client_id`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The secret written in the realm file. A `client-jwt` client may keep one (Keycloak's
    /// exports do), but it is never accepted as a credential.
    pub fn secret(&self) -> Option<&ClientSecret> {
        self.secret.as_ref()
    }
    /// Whether the client is public (no secret).
    pub fn is_public(&self) -> bool {
        self.public
    }
    /// Whether the client may be used.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// Whether the authorization-code flow is allowed.
    pub fn standard_flow_enabled(&self) -> bool {
        self.standard_flow_enabled
    }
    /// The allowed redirect URIs.
    pub fn redirect_uris(&self) -> &[RedirectUriPattern] {
        &self.redirect_uris
    }
    /// Whether `uri` is an allowed redirect URI for this client.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|p| p.matches(uri))
    }
    /// The redirect URI used when a request names none: Keycloak takes the only registered
    /// URI when there is exactly one and it has no wildcard.
    pub fn default_redirect(&self) -> Option<&str> {
        match self.redirect_uris.as_slice() {
            [RedirectUriPattern::Exact(u)] => Some(u),
            _ => None,
        }
    }
}
