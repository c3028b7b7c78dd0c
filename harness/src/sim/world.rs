//! The simulated deployment: mock-idp in process on simulated time, a simulated Redis,
//! extauth replicas (the real `Flow` behind the real forward-auth router, with the real
//! `RedisStore` over in-memory streams and an IdP transport through the simulated network).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use extauth::clock::SharedClock;
use extauth::config::{Loaded, OidcConfig};
use extauth::env::MapEnv;
use extauth::flow::{Flow, Route};
use extauth::oidc::Provider;
use extauth::secret::Secret;
use extauth::session::SessionStore;
use extauth::session::redis::RedisStore;
use extauth::state::StateCodec;
use extauth::transport::proxy::TrustedProxies;

use super::clock::SimTime;
use super::net::{IdpLink, Net};
use super::redis::SimRedis;

/// The IdP's public base URL: only ever routed in process, never dialled.
pub const IDP_BASE: &str = "http://localhost:8180/";
/// The signing key of every replica (replicas share it, as they must).
const SIGNING_KEY: &str = "a-simulation-signing-key-of-32-bytes-at-least";
/// The realm's users' password.
pub const PASSWORD: &str = "password";

/// The seed's AuthConfig with a logout path: the simulation logs users out too.
const MANIFEST: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: oauth-keycloak
  namespace: agentgateway-system
type: extauth.solo.io/oauth
stringData:
  client-secret: agentgateway-client-secret
---
apiVersion: extauth.solo.io/v1
kind: AuthConfig
metadata:
  name: oauth-authorization-code
  namespace: agentgateway-system
spec:
  configs:
  - oauth2:
      oidcAuthorizationCode:
        appUrl: "http://127.0.0.1:80"
        callbackPath: /openai
        logoutPath: /logout
        clientId: agentgateway
        clientSecretRef:
          name: oauth-keycloak
          namespace: agentgateway-system
        issuerUrl: "http://localhost:8180/realms/master/"
        scopes:
        - email
        session:
          failOnFetchFailure: true
          redis:
            cookieName: keycloak-session
            options:
              host: sim-redis:6379
        headers:
          idTokenHeader: jwt
"#;

/// The realm: users `sim-0` .. `sim-N` (password [`PASSWORD`]) and the seed's client.
fn realm_json(users: usize) -> String {
    let users: Vec<serde_json::Value> = (0..users)
        .map(|i| {
            serde_json::json!({
                "username": username(i),
                "enabled": true,
                "email": format!("{}@example.com", username(i)),
                "emailVerified": true,
                "credentials": [{"type": "password", "value": PASSWORD, "temporary": false}],
                "requiredActions": []
            })
        })
        .collect();
    serde_json::json!({
        "realm": "master",
        "enabled": true,
        "sslRequired": "none",
        "accessTokenLifespan": 300,
        "accessCodeLifespan": 60,
        "accessCodeLifespanLogin": 1800,
        "ssoSessionIdleTimeout": 1800,
        "ssoSessionMaxLifespan": 36000,
        "users": users,
        "clients": [{
            "clientId": "agentgateway",
            "name": "agentgateway",
            "enabled": true,
            "protocol": "openid-connect",
            "publicClient": false,
            "clientAuthenticatorType": "client-secret",
            "secret": "agentgateway-client-secret",
            "standardFlowEnabled": true,
            "directAccessGrantsEnabled": false,
            "redirectUris": ["http://127.0.0.1*"],
            "webOrigins": ["+"],
            "attributes": {"post.logout.redirect.uris": "+"}
        }]
    })
    .to_string()
}

/// User `i`'s name in the realm.
pub fn username(i: usize) -> String {
    format!("sim-{i}")
}

/// Everything the simulation runs against.
pub struct World {
    pub time: SimTime,
    pub net: Net,
    pub redis: SimRedis,
    pub idp: mock_idp::RunningIdp,
    pub config: Arc<OidcConfig>,
    pub store: Arc<dyn SessionStore>,
    pub prefix: String,
}

impl World {
    /// Builds it; `replicas` extauth instances share the store and the key.
    pub async fn build(seed: u64, users: usize, replicas: usize) -> anyhow::Result<Self> {
        let time = SimTime::new();
        let realm = mock_idp::Realm::from_json_str(&realm_json(users)).context("the sim realm")?;
        let (idp, idp_router) = mock_idp::MockIdp::builder()
            .realm(realm)
            .public_url(url::Url::parse(IDP_BASE).context("the IdP URL")?)
            .clock(Arc::new(time.clone()))
            // ES256: a key rotation costs microseconds, not an RSA key generation.
            .signing_alg(mock_idp::SigningAlg::ES256)
            .in_process()
            .await
            .context("mock-idp in process")?;
        let loaded: Loaded =
            extauth::config::load_str("sim.yaml", MANIFEST, &MapEnv::default().with("X", "x"))
                .context("the sim manifest")?;
        let config = Arc::clone(
            loaded
                .auth_configs
                .first()
                .context("the manifest has an AuthConfig")?,
        );
        let redis_config = config
            .session
            .store
            .redis()
            .context("the sim manifest uses Redis")?;
        let prefix = redis_config.key_prefix.clone();
        let redis = SimRedis::new(time.clone(), seed % 300, redis_config.command_timeout);
        let connect_to = redis.clone();
        let connector: extauth::session::redis::Connector =
            Arc::new(move || Box::pin(connect_to.clone().connect()));
        let store: Arc<dyn SessionStore> = Arc::new(RedisStore::with_connector(
            connector,
            prefix.clone(),
            redis_config.command_timeout,
        ));
        let net = Net::new(idp_router, time.clone(), seed);
        let world = Self {
            time,
            net,
            redis,
            idp,
            config,
            store,
            prefix,
        };
        for _ in 0..replicas.max(1) {
            world.net.add_replica(world.replica()?);
        }
        Ok(world)
    }

    /// A fresh extauth replica: new provider (empty discovery cache), new in-process state,
    /// the same store and signing key.
    pub fn replica(&self) -> anyhow::Result<Router> {
        let clock: SharedClock = Arc::new(self.time.clone());
        let provider = Provider::new(Arc::clone(&self.config), Arc::clone(&clock))
            .context("a provider")?
            .with_transport(Arc::new(IdpLink(self.net.clone())));
        let key = Secret::new(SIGNING_KEY);
        let flow = Flow::new(
            vec![Route::new(
                Arc::clone(&self.config),
                provider,
                Arc::clone(&self.store),
                &key,
            )],
            StateCodec::new(&key),
            clock,
        );
        Ok(extauth::transport::http::router(
            Arc::new(flow),
            TrustedProxies::default(),
        ))
    }

    /// The Redis key of session cookie `value` (`None` when it is not a session id).
    pub fn storage_key(&self, value: &str) -> Option<String> {
        extauth::session::SessionId::parse(value).map(|id| id.storage_key(&self.prefix))
    }

    /// Lets simulated time pass (and the other tasks run).
    pub async fn sleep(&self, d: Duration) {
        self.time.pause(d, 2).await;
    }
}
