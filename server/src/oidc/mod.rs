//! The relying party's side of OIDC: discovery (cached), the code exchange and ID-token
//! verification, through the `openidconnect` crate.
//!
//! One [`Provider`] per AuthConfig. It owns every network call to the IdP and nothing about
//! requests, cookies or sessions.

mod discovery;

use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{
    CoreClient, CoreErrorResponseType, CoreIdTokenVerifier, CoreJsonWebKey, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, Nonce, OAuth2TokenResponse as _, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, TokenResponse as _,
};
use tokio::sync::Mutex;

use crate::clock::SharedClock;
use crate::config::OidcConfig;
use crate::secret::Secret;

pub use discovery::discovery_url;

/// How long discovery and JWKS are cached (Solo's `discoveryPollInterval` default).
pub const DISCOVERY_TTL: Duration = Duration::from_secs(30 * 60);
/// Connect timeout for IdP calls.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Whole-request timeout for IdP calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Allowed clock skew for `iat` in the future.
pub const IAT_SKEW_SECS: i64 = 60;

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
    /// The ID token failed verification.
    #[error("the ID token failed validation: {0}")]
    IdTokenInvalid(String),
}

impl OidcError {
    /// Whether the IdP (or the network to it) is at fault rather than the request.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            OidcError::Discovery { .. }
                | OidcError::IssuerMismatch { .. }
                | OidcError::TokenEndpoint(_)
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
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("subject", &self.subject)
            .field("id_token_expires_at", &self.id_token_expires_at)
            .finish_non_exhaustive()
    }
}

/// The IdP of one AuthConfig.
#[derive(Debug)]
pub struct Provider {
    config: Arc<OidcConfig>,
    http: openidconnect::reqwest::Client,
    clock: SharedClock,
    cached: Mutex<Option<Arc<Discovered>>>,
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
            http,
            clock,
            cached: Mutex::new(None),
        })
    }

    /// Discovery and JWKS, fetched at most once per [`DISCOVERY_TTL`]. Concurrent callers wait
    /// for one fetch. When a refetch fails, the previous document keeps serving.
    pub async fn discovered(&self) -> Result<Arc<Discovered>, OidcError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        let ttl = i64::try_from(DISCOVERY_TTL.as_secs()).unwrap_or(i64::MAX);
        if let Some(d) = cached.as_ref().filter(|d| now - d.fetched_at < ttl) {
            return Ok(Arc::clone(d));
        }
        match self.fetch().await {
            Ok(d) => {
                let d = Arc::new(d);
                *cached = Some(Arc::clone(&d));
                Ok(d)
            }
            Err(e) => match cached.as_ref() {
                Some(stale) => {
                    tracing::warn!(config = %self.config.id, error = %e, "discovery refresh failed; keeping the previous document");
                    Ok(Arc::clone(stale))
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<Discovered, OidcError> {
        let metadata = discovery::fetch(&self.http, &self.config.issuer_url).await?;
        let authorization_endpoint = metadata.authorization_endpoint().to_string();
        let issuer = metadata.issuer().to_string();
        let mut client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
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
            client,
            fetched_at: self.clock.now(),
        })
    }

    /// Exchanges `code` (with the PKCE verifier) and verifies the ID token against `nonce`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &Secret,
        nonce: &str,
    ) -> Result<Tokens, OidcError> {
        let discovered = self.discovered().await?;
        let request = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::TokenEndpoint(format!("discovery has no token_endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()));
        let response: CoreTokenResponse =
            request
                .request_async(&self.http)
                .await
                .map_err(|e| match e {
                    RequestTokenError::ServerResponse(r) => OidcError::CodeRejected {
                        error: error_code(r.error()),
                        description: r.error_description().cloned(),
                    },
                    RequestTokenError::Request(e) => OidcError::TokenEndpoint(e.to_string()),
                    RequestTokenError::Parse(e, _) => {
                        OidcError::TokenEndpoint(format!("unparseable response: {e}"))
                    }
                    RequestTokenError::Other(e) => OidcError::TokenEndpoint(e),
                })?;
        self.verify(&discovered, &response, nonce)
    }

    fn verify(
        &self,
        discovered: &Discovered,
        response: &CoreTokenResponse,
        nonce: &str,
    ) -> Result<Tokens, OidcError> {
        let id_token = response.id_token().ok_or(OidcError::NoIdToken)?;
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
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| OidcError::IdTokenInvalid(e.to_string()))?;
        // `at_hash` is optional in the code flow; when present it must match (OIDC Core 3.1.3.8).
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| OidcError::IdTokenInvalid(e.to_string()))?;
            let key: &CoreJsonWebKey = id_token
                .signing_key(&verifier)
                .map_err(|e| OidcError::IdTokenInvalid(e.to_string()))?;
            let actual = AccessTokenHash::from_token(response.access_token(), alg, key)
                .map_err(|e| OidcError::IdTokenInvalid(e.to_string()))?;
            if actual != *expected {
                return Err(OidcError::IdTokenInvalid(
                    "at_hash does not match the access token".into(),
                ));
            }
        }
        Ok(Tokens {
            id_token: id_token.to_string(),
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            id_token_expires_at: claims.expiration().timestamp(),
            subject: claims.subject().to_string(),
        })
    }

    /// The AuthConfig this provider serves.
    pub fn config(&self) -> &Arc<OidcConfig> {
        &self.config
    }
}

fn error_code(e: &CoreErrorResponseType) -> String {
    match e {
        CoreErrorResponseType::InvalidClient => "invalid_client".into(),
        CoreErrorResponseType::InvalidGrant => "invalid_grant".into(),
        CoreErrorResponseType::InvalidRequest => "invalid_request".into(),
        CoreErrorResponseType::InvalidScope => "invalid_scope".into(),
        CoreErrorResponseType::UnauthorizedClient => "unauthorized_client".into(),
        CoreErrorResponseType::UnsupportedGrantType => "unsupported_grant_type".into(),
        CoreErrorResponseType::Extension(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests;
