//! The relying party's side of OIDC: discovery (cached), the code exchange and ID-token
//! verification, through the `openidconnect` crate.
//!
//! One [`Provider`] per AuthConfig. It owns every network call to the IdP and nothing about
//! requests, cookies or sessions.

mod discovery;
mod logout_token;
mod token;
mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKey};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, ClaimsVerificationError, ClientId, ClientSecret,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce, RedirectUrl, SignatureVerificationError,
};
use tokio::sync::Mutex;

use crate::clock::SharedClock;
use crate::config::{JwksRefreshPolicy, OidcConfig};
use crate::secret::Secret;

pub use discovery::discovery_url;
pub use logout_token::{BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_MAX_AGE_SECS, LogoutClaims};
pub use transport::{IdpAnswer, IdpTransport};

use transport::IdpHttp;

/// How long discovery and JWKS are cached by default (Solo's `discoveryPollInterval`);
/// each AuthConfig may set its own.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(30 * 60);
/// Connect timeout for IdP calls.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request timeout for IdP calls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Allowed clock skew for `iat` in the future.
pub const IAT_SKEW_SECS: i64 = 60;
/// After a JWKS refetch failed, how long until the next may be tried (seconds; Envoy's
/// `failed_refetch_duration` default). A failed refetch does not use up the
/// `jwksCacheRefreshPolicy` budget, so the IdP's recovery is seen within this delay.
pub const FAILED_REFETCH_RETRY_SECS: i64 = 1;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A failure talking to or believing the IdP.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery or JWKS could not be fetched or parsed.
    #[error("OIDC discovery at {url} failed: {reason}")]
    Discovery {
        /// The URL that was fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The discovery document names another issuer.
    #[error(
        "discovery at {url} says issuer {found:?}, but issuerUrl is {configured:?} (they must match, up to a trailing slash)"
    )]
    IssuerMismatch {
        /// Discovery URL.
        url: String,
        /// `issuerUrl`.
        configured: String,
        /// Discovery's `issuer`.
        found: String,
    },
    /// The token endpoint could not be reached or answered with something unusable.
    #[error("token endpoint unavailable: {0}")]
    TokenEndpoint(String),
    /// The token endpoint refused the code (e.g. `invalid_grant`).
    #[error("the identity provider rejected the authorization code: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    CodeRejected {
        /// OAuth error code.
        error: String,
        /// `error_description`.
        description: Option<String>,
    },
    /// The token response had no `id_token`.
    #[error("the token response has no id_token (is `openid` in the scopes?)")]
    NoIdToken,
    /// The ID token failed verification (signature, `alg`, `kid`, a claim, or its form):
    /// every such failure is this one variant, answered alike.
    #[error("the ID token failed validation: {0}")]
    IdTokenInvalid(String),
    /// A back-channel `logout_token` failed verification.
    #[error("the logout token failed validation: {0}")]
    LogoutTokenInvalid(String),
    /// The refresh token was refused (`invalid_grant`): the IdP session is over.
    #[error("the identity provider rejected the refresh token: {error}")]
    RefreshRejected {
        /// OAuth error code.
        error: String,
    },
    /// The IdP granted a refresh, but its new tokens could not be checked for a reason on
    /// the IdP's side (`source`: its JWKS unreachable while it rotates keys). The tokens are
    /// not used; the new refresh token is handed back because the one presented is spent.
    #[error("{source}")]
    RefreshUnverified {
        /// The refresh token the grant returned.
        refresh_token: crate::secret::Secret,
        /// Why the new tokens could not be checked (an unavailable IdP).
        source: Box<OidcError>,
    },
}

impl OidcError {
    /// Whether the IdP (or the network to it) is at fault rather than the request.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            OidcError::Discovery { .. }
                | OidcError::IssuerMismatch { .. }
                | OidcError::TokenEndpoint(_)
                | OidcError::RefreshUnverified { .. }
        )
    }
}

/// What discovery found, with a ready client.
#[derive(Debug)]
pub struct Discovered {
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// Discovery's `issuer` (what ID tokens are checked against).
    pub issuer: String,
    /// `end_session_endpoint` (RP-initiated logout), if any.
    pub end_session_endpoint: Option<String>,
    /// `revocation_endpoint` (RFC 7009), if any.
    pub revocation_endpoint: Option<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207): callbacks must then
    /// carry `iss`.
    pub iss_parameter_supported: bool,
    /// `token_endpoint`, if any.
    pub token_endpoint: Option<String>,
    /// The JWKS keys that `jsonwebtoken` reads (for logout tokens); unusable keys skipped.
    jwks: Vec<jsonwebtoken::jwk::Jwk>,
    client: Client,
    fetched_at: i64,
}

/// Tokens from a successful code exchange, the ID token verified.
pub struct Tokens {
    /// The raw ID token.
    pub id_token: String,
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any.
    pub refresh_token: Option<String>,
    /// `exp` of the ID token.
    pub id_token_expires_at: i64,
    /// `sub`.
    pub subject: String,
    /// When the access token expires (`expires_in`), if said.
    pub access_expires_at: Option<i64>,
}

impl Tokens {
    /// When these tokens stop being usable: the ID token's `exp`, or the access token's
    /// expiry when that comes first.
    pub fn expires_at(&self) -> i64 {
        self.access_expires_at
            .map_or(self.id_token_expires_at, |a| {
                a.min(self.id_token_expires_at)
            })
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("subject", &self.subject)
            .field("id_token_expires_at", &self.id_token_expires_at)
            .finish_non_exhaustive()
    }
}

/// Verified claims of an ID token presented as a bearer credential.
#[derive(Debug, Clone)]
pub struct BearerIdentity {
    /// `sub`.
    pub subject: String,
    /// `exp`.
    pub expires_at: i64,
}

/// The IdP of one AuthConfig.
#[derive(Debug)]
pub struct Provider {
    config: Arc<OidcConfig>,
    http: IdpHttp,
    clock: SharedClock,
    cached: Mutex<Option<Arc<Discovered>>>,
    /// JWKS refetches for unknown `kid`s.
    jwks_refetches: std::sync::Mutex<RefetchBudget>,
}

impl Provider {
    /// A provider for `config`; nothing is fetched until first use.
    pub fn new(config: Arc<OidcConfig>, clock: SharedClock) -> Result<Self, OidcError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects from the IdP would be an SSRF vector (openidconnect docs).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| OidcError::Discovery {
                url: discovery_url(&config.issuer_url),
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(Self {
            config,
            http: IdpHttp {
                client: http,
                transport: None,
            },
            clock,
            cached: Mutex::new(None),
            jwks_refetches: std::sync::Mutex::new(RefetchBudget::default()),
        })
    }

    /// Sends every IdP call through `transport` instead of the network (`harness sim`).
    pub fn with_transport(mut self, transport: Arc<dyn IdpTransport>) -> Self {
        self.http.transport = Some(transport);
        self
    }

    /// Discovery and JWKS, fetched at most once per [`DISCOVERY_TTL`]. Concurrent callers wait
    /// for one fetch. When a refetch fails, the previous document keeps serving.
    pub async fn discovered(&self) -> Result<Arc<Discovered>, OidcError> {
        self.discovered_inner(false).await
    }

    /// Discovery and JWKS fetched now. On failure the previous document stays cached (and
    /// keeps serving [`Provider::discovered`]) but this returns the error.
    async fn discovered_inner(&self, force: bool) -> Result<Arc<Discovered>, OidcError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        let ttl = self.poll_interval_secs();
        if let Some(d) = cached
            .as_ref()
            .filter(|d| !force && now - d.fetched_at < ttl)
        {
            return Ok(Arc::clone(d));
        }
        match self.fetch().await {
            Ok(d) => {
                let d = Arc::new(d);
                *cached = Some(Arc::clone(&d));
                Ok(d)
            }
            Err(e) => match cached.as_ref() {
                Some(_) if force => Err(e),
                Some(stale) => {
                    tracing::warn!(config = %self.config.id, error = %e, "discovery refresh failed; keeping the previous document");
                    Ok(Arc::clone(stale))
                }
                None => Err(e),
            },
        }
    }

    fn poll_interval_secs(&self) -> i64 {
        i64::try_from(self.config.discovery_poll_interval.as_secs())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// Whether `jwksCacheRefreshPolicy` allows one more refetch now (and counts it).
    fn may_refetch_jwks(&self) -> bool {
        let limit = match self.config.jwks_refresh {
            JwksRefreshPolicy::Never => return false,
            JwksRefreshPolicy::Always => u32::MAX,
            JwksRefreshPolicy::MaxPerInterval(n) => n,
        };
        let now = self.clock.now();
        let mut budget = self
            .jwks_refetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now < budget.retry_at {
            return false;
        }
        if budget.window_start == i64::MIN || now - budget.window_start >= self.poll_interval_secs()
        {
            budget.window_start = now;
            budget.used = 0;
        }
        if budget.used >= limit {
            return false;
        }
        budget.used += 1;
        true
    }

    /// Whether an ID token that the token endpoint just returned may have the JWKS refetched
    /// for its unknown `kid`. The `jwksCacheRefreshPolicy` budget guards against tokens that
    /// clients present (anyone can put any `kid` in a bearer token); this one comes from the
    /// IdP itself, over the connection extauth opened, right after the IdP rotated its key.
    /// Counting it would let one bearer token, or an earlier rotation, use up the budget and
    /// fail every login and refresh until the poll interval ends (found by `harness sim`).
    /// Only `never` and the retry delay after a failed refetch hold it back; it uses no
    /// budget.
    fn may_refetch_jwks_for_token_endpoint(&self) -> bool {
        if matches!(self.config.jwks_refresh, JwksRefreshPolicy::Never) {
            return false;
        }
        let budget = self
            .jwks_refetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.clock.now() >= budget.retry_at
    }

    /// A refetch failed: give back its budget when it was `counted` by
    /// [`Provider::may_refetch_jwks`], and hold the next one for
    /// [`FAILED_REFETCH_RETRY_SECS`].
    fn refetch_failed(&self, counted: bool) {
        let mut budget = self
            .jwks_refetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counted {
            budget.used = budget.used.saturating_sub(1);
        }
        budget.retry_at = self.clock.now() + FAILED_REFETCH_RETRY_SECS;
    }

    async fn fetch(&self) -> Result<Discovered, OidcError> {
        let (metadata, extra) = discovery::fetch(
            &self.http,
            &self.config.issuer_url,
            &self.config.discovery_override,
        )
        .await?;
        let authorization_endpoint = metadata.authorization_endpoint().to_string();
        let issuer = metadata.issuer().to_string();
        let token_endpoint = metadata.token_endpoint().map(ToString::to_string);
        // The client serves ID-token verification only (token requests are ours, see
        // `token`); with a secret it can also check HS256 tokens, as the IdP may sign them.
        let mut client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_auth_type(AuthType::BasicAuth);
        let redirect = RedirectUrl::new(self.config.redirect_uri.clone()).map_err(|e| {
            OidcError::Discovery {
                url: self.config.redirect_uri.clone(),
                reason: format!("redirect_uri: {e}"),
            }
        })?;
        client = client.set_redirect_uri(redirect);
        Ok(Discovered {
            authorization_endpoint,
            issuer,
            end_session_endpoint: extra.end_session_endpoint,
            revocation_endpoint: extra.revocation_endpoint,
            iss_parameter_supported: extra.iss_parameter_supported,
            token_endpoint,
            jwks: extra.jwks,
            client,
            fetched_at: self.clock.now(),
        })
    }

    /// Exchanges `code` (with the PKCE verifier) and verifies the ID token against `nonce`.
    /// `redirect_uri` overrides the configured one (regex callback paths); `extra` adds
    /// token request parameters (`autoMapFromMetadata`) after `tokenEndpointQueryParams`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &Secret,
        nonce: &str,
        redirect_uri: Option<&str>,
        extra: &BTreeMap<String, String>,
    ) -> Result<Tokens, OidcError> {
        let discovered = self.discovered().await?;
        let form = vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            (
                "redirect_uri".to_owned(),
                redirect_uri.unwrap_or(&self.config.redirect_uri).to_owned(),
            ),
            (
                "code_verifier".to_owned(),
                pkce_verifier.expose().to_owned(),
            ),
        ];
        let response = self
            .token_call(&discovered, form, extra, "token")
            .await
            .map_err(|e| match e {
                token::TokenCallError::Refused { error, description } => {
                    OidcError::CodeRejected { error, description }
                }
                token::TokenCallError::Unavailable(e) => OidcError::TokenEndpoint(e),
            })?;
        self.tokens(&discovered, &response, Some(nonce), None).await
    }

    /// The `refresh_token` grant. A refused refresh token is [`OidcError::RefreshRejected`];
    /// anything else is transient.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        previous_id_token: &str,
    ) -> Result<Tokens, OidcError> {
        let discovered = self.discovered().await?;
        let form = vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), refresh_token.to_owned()),
        ];
        let response = self
            .token_call(&discovered, form, &BTreeMap::new(), "refresh")
            .await
            .map_err(|e| match e {
                token::TokenCallError::Refused { error, .. } if error == "invalid_grant" => {
                    OidcError::RefreshRejected { error }
                }
                token::TokenCallError::Refused { error, .. } => {
                    OidcError::TokenEndpoint(format!("refresh refused: {error}"))
                }
                token::TokenCallError::Unavailable(e) => OidcError::TokenEndpoint(e),
            })?;
        self.tokens(&discovered, &response, None, Some(previous_id_token))
            .await
            // Granted but not checkable now: the presented refresh token is spent at the
            // IdP, so the new one must not be dropped with the unchecked tokens.
            .map_err(|e| match &response.refresh_token {
                Some(refresh_token) if e.is_unavailable() => OidcError::RefreshUnverified {
                    refresh_token: crate::secret::Secret::new(refresh_token.as_str()),
                    source: Box::new(e),
                },
                _ => e,
            })
    }

    /// Revokes `token` (RFC 7009) when the IdP has a `revocation_endpoint`; best effort.
    pub async fn revoke(&self, token: &str, hint: &str) -> Result<bool, OidcError> {
        let discovered = self.discovered().await?;
        let Some(endpoint) = discovered.revocation_endpoint.clone() else {
            return Ok(false);
        };
        let form = vec![
            ("token".to_owned(), token.to_owned()),
            ("token_type_hint".to_owned(), hint.to_owned()),
        ];
        self.revocation_call(&discovered, &endpoint, form).await?;
        Ok(true)
    }

    /// Verifies an ID token presented as `Authorization: Bearer` (signature, `iss`, `aud`,
    /// `exp`, `iat`; no nonce: it was checked at login).
    pub async fn verify_bearer_id_token(&self, raw: &str) -> Result<BearerIdentity, OidcError> {
        let id_token = parse_id_token(raw)?;
        let discovered = self.discovered().await?;
        let (exp, sub) = self
            .verify_with_refetch(discovered, &id_token, None, None, false)
            .await?;
        Ok(BearerIdentity {
            subject: sub,
            expires_at: exp,
        })
    }

    async fn tokens(
        &self,
        discovered: &Arc<Discovered>,
        response: &token::TokenResponse,
        nonce: Option<&str>,
        previous_id_token: Option<&str>,
    ) -> Result<Tokens, OidcError> {
        let now = self.clock.now();
        let access_expires_at = response
            .expires_in()
            .map(|secs| now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)));
        let access_token = AccessToken::new(response.access_token.clone());
        let (id_token, exp, sub) = match (response.id_token.as_deref(), previous_id_token) {
            (Some(raw), _) => {
                let id_token = parse_id_token(raw)?;
                let (exp, sub) = self
                    .verify_with_refetch(
                        Arc::clone(discovered),
                        &id_token,
                        nonce,
                        Some(&access_token),
                        true,
                    )
                    .await?;
                if let Some(previous) = previous_id_token {
                    check_same_identity(previous, raw)?;
                }
                (raw.to_owned(), exp, sub)
            }
            (None, None) => return Err(OidcError::NoIdToken),
            // A refresh response without an ID token keeps the previous one; the session then
            // lives as long as the new access token.
            (None, Some(previous)) => {
                let exp = access_expires_at.ok_or(OidcError::NoIdToken)?;
                let sub = unverified_claim(previous, "sub").unwrap_or_default();
                (previous.to_owned(), exp, sub)
            }
        };
        Ok(Tokens {
            id_token,
            access_token: response.access_token.clone(),
            refresh_token: response.refresh_token.clone(),
            id_token_expires_at: exp,
            subject: sub,
            access_expires_at,
        })
    }

    /// Verifies `id_token`; on an unknown `kid`, refetches the JWKS once if the
    /// `jwksCacheRefreshPolicy` allows it, then tries again. `from_token_endpoint`: the
    /// token endpoint just returned it (a login or a refresh), see
    /// [`Provider::may_refetch_jwks_for_token_endpoint`].
    async fn verify_with_refetch(
        &self,
        discovered: Arc<Discovered>,
        id_token: &CoreIdToken,
        nonce: Option<&str>,
        access_token: Option<&AccessToken>,
        from_token_endpoint: bool,
    ) -> Result<(i64, String), OidcError> {
        let may_refetch = || {
            if from_token_endpoint {
                self.may_refetch_jwks_for_token_endpoint()
            } else {
                self.may_refetch_jwks()
            }
        };
        match self.verify(&discovered, id_token, nonce, access_token) {
            Err(VerifyError::UnknownKey) if may_refetch() => {
                tracing::info!(config = %self.config.id, "ID token signed with an unknown key; refetching the JWKS");
                let fresh = match self.discovered_inner(true).await {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        self.refetch_failed(!from_token_endpoint);
                        tracing::warn!(config = %self.config.id, error = %e, "JWKS refetch failed; the next may be tried in {FAILED_REFETCH_RETRY_SECS} s");
                        return Err(e);
                    }
                };
                self.verify(&fresh, id_token, nonce, access_token)
                    .map_err(VerifyError::into_oidc)
            }
            other => other.map_err(VerifyError::into_oidc),
        }
    }

    fn verify(
        &self,
        discovered: &Discovered,
        id_token: &CoreIdToken,
        nonce: Option<&str>,
        access_token: Option<&AccessToken>,
    ) -> Result<(i64, String), VerifyError> {
        let now = self.clock.now();
        let verifier: CoreIdTokenVerifier<'_> = discovered
            .client
            .id_token_verifier()
            .set_time_fn(move || chrono::DateTime::from_timestamp(now, 0).unwrap_or_default())
            .set_issue_time_verifier_fn(move |iat| {
                if iat.timestamp() > now + IAT_SKEW_SECS {
                    Err(format!("iat {} is in the future", iat.timestamp()))
                } else {
                    Ok(())
                }
            });
        let result = match nonce {
            Some(n) => id_token.claims(&verifier, &Nonce::new(n.to_owned())),
            None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
        };
        let claims = result.map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ) => VerifyError::UnknownKey,
            other => VerifyError::Invalid(other.to_string()),
        })?;
        // OIDC Core 3.1.3.7 step 5, which `openidconnect` leaves to its users: an `azp` must
        // name this client (Keycloak always sends it, as the client id).
        if let Some(azp) = claims.authorized_party()
            && azp.as_str() != self.config.client_id
        {
            return Err(VerifyError::Invalid(format!(
                "azp {:?} is not this client",
                azp.as_str()
            )));
        }
        // `nbf` is optional in an ID token and `openidconnect` does not read it; when present
        // it must have passed (JWT 4.1.5), with the same skew as `iat`.
        let nbf = unverified_claims(&id_token.to_string()).and_then(|c| c.get("nbf").cloned());
        match nbf {
            None => {}
            Some(serde_json::Value::Number(n))
                if n.as_i64().is_some_and(|nbf| nbf <= now + IAT_SKEW_SECS) => {}
            Some(serde_json::Value::Number(n)) if n.as_i64().is_some() => {
                return Err(VerifyError::Invalid(format!("nbf {n} is in the future")));
            }
            Some(other) => {
                return Err(VerifyError::Invalid(format!(
                    "nbf must be a number of seconds, got {other}"
                )));
            }
        }
        // `at_hash` is optional in the code flow; when present it must match (OIDC Core 3.1.3.8).
        if let (Some(expected), Some(access_token)) = (claims.access_token_hash(), access_token) {
            let invalid = |e: String| VerifyError::Invalid(e);
            let alg = id_token.signing_alg().map_err(|e| invalid(e.to_string()))?;
            let key: &CoreJsonWebKey = id_token
                .signing_key(&verifier)
                .map_err(|e| invalid(e.to_string()))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|e| invalid(e.to_string()))?;
            if actual != *expected {
                return Err(invalid("at_hash does not match the access token".into()));
            }
        }
        Ok((
            claims.expiration().timestamp(),
            claims.subject().to_string(),
        ))
    }

    /// The AuthConfig this provider serves.
    pub fn config(&self) -> &Arc<OidcConfig> {
        &self.config
    }
}

/// The `jwksCacheRefreshPolicy` budget of refetches for unknown `kid`s.
#[derive(Debug)]
struct RefetchBudget {
    /// Start of the current poll interval (`i64::MIN` before the first refetch).
    window_start: i64,
    /// Refetches counted in it.
    used: u32,
    /// No refetch before this time (set after a failed one).
    retry_at: i64,
}

impl Default for RefetchBudget {
    fn default() -> Self {
        Self {
            window_start: i64::MIN,
            used: 0,
            retry_at: i64::MIN,
        }
    }
}

enum VerifyError {
    UnknownKey,
    Invalid(String),
}

impl VerifyError {
    fn into_oidc(self) -> OidcError {
        match self {
            VerifyError::UnknownKey => OidcError::IdTokenInvalid(
                "signed with a key (kid) that is not in the IdP's JWKS".into(),
            ),
            VerifyError::Invalid(e) => OidcError::IdTokenInvalid(e),
        }
    }
}

/// An ID token from its compact form; a malformed one (not a JWT, or without a required
/// claim such as `sub`, `iat`, `aud`) is [`OidcError::IdTokenInvalid`] like any other.
fn parse_id_token(raw: &str) -> Result<CoreIdToken, OidcError> {
    raw.parse().map_err(|e: serde_json::Error| {
        OidcError::IdTokenInvalid(format!("not a well-formed ID token: {e}"))
    })
}

/// OIDC Core 12.2: a refreshed ID token names the same `iss`, `sub` and `aud` as the one it
/// replaces (and it was verified before this is called).
fn check_same_identity(previous: &str, fresh: &str) -> Result<(), OidcError> {
    let (Some(old), Some(new)) = (unverified_claims(previous), unverified_claims(fresh)) else {
        return Err(OidcError::IdTokenInvalid(
            "the refreshed ID token cannot be compared with the previous one".into(),
        ));
    };
    for claim in ["iss", "sub", "aud"] {
        if old.get(claim) != new.get(claim) {
            return Err(OidcError::IdTokenInvalid(format!(
                "the refreshed ID token has another `{claim}` than the session's"
            )));
        }
    }
    Ok(())
}

/// A top-level string claim of a JWT, without verification (for a token verified earlier).
pub fn unverified_claim(jwt: &str, claim: &str) -> Option<String> {
    unverified_claims(jwt)?
        .get(claim)
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// The payload of a JWT as JSON, without verification (for tokens verified earlier, or an
/// access token whose claims are only copied to headers).
pub fn unverified_claims(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests;
