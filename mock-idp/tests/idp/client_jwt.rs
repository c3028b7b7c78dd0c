//! `private_key_jwt` client authentication (Keycloak's "Signed JWT", `client-jwt`) at the
//! token, introspection and revocation endpoints, and every refusal with Keycloak's status
//! and body.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mock_idp::{Clock as _, Endpoint, RequestFilter};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    CLIENT_ID, CLIENT_SECRET, Fixture, PUBLIC_CLIENT, start_realm, test_realm_with,
};
use crate::receiver::Receiver;

const JWT_CLIENT: &str = "jwt-client";
const JWKS_CLIENT: &str = "jwt-jwks-url";
const REDIRECT: &str = "http://127.0.0.1:18080/jwt";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const RSA_PRIVATE: &str = include_str!("../fixtures/client-jwt/rsa-private.pem");
const RSA_CERT: &str = include_str!("../fixtures/client-jwt/rsa-certificate.b64");
const EC_PRIVATE: &str = include_str!("../fixtures/client-jwt/ec-private.pem");

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()
}

/// The RSA test key's public half as a JWK, with `kid`.
fn rsa_jwk(kid: &str) -> Value {
    let key = jsonwebtoken::jwk::Jwk::from_encoding_key(&rsa(), Algorithm::RS256).unwrap();
    let mut jwk = serde_json::to_value(key).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk
}

/// The test realm plus a `client-jwt` client with a certificate (secret kept in the file, as
/// Keycloak's exports keep it) and one whose keys are at the receiver's `/jwks`.
async fn start_jwt(receiver: &Receiver) -> Fixture {
    let realm = test_realm_with(vec![
        json!({"clientId": JWT_CLIENT, "clientAuthenticatorType": "client-jwt",
               "secret": "kept-but-never-accepted", "serviceAccountsEnabled": true,
               "redirectUris": [REDIRECT],
               "attributes": {"jwt.credential.certificate": RSA_CERT}}),
        json!({"clientId": JWKS_CLIENT, "clientAuthenticatorType": "client-jwt",
               "redirectUris": [REDIRECT],
               "attributes": {"use.jwks.url": "true", "jwks.url": receiver.url("/jwks"),
                              "token.endpoint.auth.signing.alg": "RS256"}}),
    ]);
    start_realm(realm, |b| b).await
}

impl Fixture {
    fn now(&self) -> i64 {
        i64::try_from(self.idp.clock().unix_seconds()).unwrap()
    }

    /// Claims that pass every check, from `client` to this realm's token endpoint.
    fn assertion_claims(&self, client: &str) -> Value {
        json!({
            "iss": client, "sub": client, "aud": self.endpoint("token"),
            "iat": self.now(), "exp": self.now() + 30,
            "jti": format!("jti-{}", rand_suffix()),
        })
    }

    /// A client assertion for `client`, signed RS256 with the test key, with `changes`
    /// applied to the good claims (`null` removes a claim).
    fn assertion(&self, client: &str, changes: Value) -> String {
        let mut claims = self.assertion_claims(client);
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &rsa()).unwrap()
    }

    /// A code for `client` (user1 logs in).
    async fn code_for(&self, client: &str) -> String {
        self.login(&[("client_id", client), ("redirect_uri", REDIRECT)])
            .await
            .code()
            .to_owned()
    }

    async fn post_form(&self, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.rp
            .post(self.endpoint(endpoint))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

async fn status_and_body(resp: reqwest::Response) -> (StatusCode, Value) {
    (resp.status(), resp.json().await.unwrap())
}

fn invalid_client(description: &str) -> Value {
    json!({"error": "invalid_client", "error_description": description})
}

fn generic_invalid_client() -> Value {
    invalid_client("Invalid client or Invalid client credentials")
}

#[tokio::test]
async fn a_code_is_exchanged_with_a_signed_jwt_instead_of_a_secret() {
    let receiver = Receiver::start().await;
    let f = start_jwt(&receiver).await;
    let code = f.code_for(JWT_CLIENT).await;
    let assertion = f.assertion(JWT_CLIENT, json!({}));
    let resp = f
        .post_form(
            "token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    let (status, tokens) = status_and_body(resp).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = f
        .verify(tokens["id_token"].as_str().unwrap(), JWT_CLIENT)
        .await;
    assert_eq!(claims["azp"], JWT_CLIENT);

    // The request log names the client (from the assertion) and never shows the assertion.
    let logged = f.idp.request_log().query(&RequestFilter {
        endpoint: Some(Endpoint::Token),
        ..RequestFilter::default()
    });
    assert_eq!(logged[0].client_id.as_deref(), Some(JWT_CLIENT));
    assert_eq!(logged[0].form["client_assertion"], "[redacted]");

    // The refresh grant authenticates the same way.
    let resp = f
        .post_form(
            "token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", JWT_CLIENT),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &f.assertion(JWT_CLIENT, json!({}))),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn client_credentials_introspection_and_revocation_take_a_signed_jwt() {
    let receiver = Receiver::start().await;
    let f = start_jwt(&receiver).await;
    let resp = f
        .post_form(
            "token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &f.assertion(JWT_CLIENT, json!({}))),
            ],
        )
        .await;
    let (status, body) = status_and_body(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();

    // Keycloak accepts the introspection endpoint as audience too.
    let aud = json!({"aud": f.endpoint("token/introspect")});
    let resp = f
        .post_form(
            "token/introspect",
            &[
                ("token", &token),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &f.assertion(JWT_CLIENT, aud)),
            ],
        )
        .await;
    let (status, body) = status_and_body(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true, "{body}");

    let aud = json!({"aud": f.issuer()});
    let resp = f
        .post_form(
            "revoke",
            &[
                ("token", &token),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &f.assertion(JWT_CLIENT, aud)),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = f
        .post_form(
            "token/introspect",
            &[
                ("token", &token),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(status_and_body(resp).await.1["active"], false);
}

/// A refusal case: label, the credentials of the request, the status and body expected.
type Case = (&'static str, Vec<(&'static str, String)>, StatusCode, Value);

#[tokio::test]
async fn refused_assertions_get_keycloaks_status_and_description() {
    let receiver = Receiver::start().await;
    let f = start_jwt(&receiver).await;
    let by_other_key = {
        let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
        jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &f.assertion_claims(JWT_CLIENT),
            &key,
        )
        .unwrap()
    };
    let forged = {
        // A valid RS256 header and claims with the signature of other claims.
        let a = f.assertion(JWT_CLIENT, json!({}));
        let b = f.assertion(JWT_CLIENT, json!({"jti": "other"}));
        let (signed, _) = a.rsplit_once('.').unwrap();
        format!("{signed}.{}", b.rsplit_once('.').unwrap().1)
    };
    let unsigned = {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none"})),
            b64(&f.assertion_claims(JWT_CLIENT))
        )
    };
    let now = f.now();
    let expired = f.assertion(JWT_CLIENT, json!({"iat": now - 50, "exp": now - 20}));
    let cases: Vec<Case> = vec![
        (
            "bad signature",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", forged),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client(
                "Client authentication with signed JWT failed: Signature on JWT token failed validation",
            ),
        ),
        (
            "signed by another key",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", by_other_key),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client(
                "Client authentication with signed JWT failed: Signature on JWT token failed validation",
            ),
        ),
        (
            "alg none",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", unsigned),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Invalid signature algorithm"),
        ),
        (
            "wrong aud",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(JWT_CLIENT, json!({"aud": "http://127.0.0.1:18080/"})),
                ),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Invalid token audience"),
        ),
        (
            "two audiences",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(
                        JWT_CLIENT,
                        json!({"aud": [f.issuer(), f.endpoint("token")]}),
                    ),
                ),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Multiple audiences not allowed"),
        ),
        (
            "expired",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", expired),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Token is not active"),
        ),
        (
            "issued too long ago",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(JWT_CLIENT, json!({"iat": now - 120})),
                ),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Token was issued too far in the past to be used now"),
        ),
        (
            "issued in the future",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(JWT_CLIENT, json!({"iat": now + 60, "exp": now + 90})),
                ),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Token was issued in the future"),
        ),
        (
            "no exp",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(JWT_CLIENT, json!({"exp": null})),
                ),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Token exp claim is required"),
        ),
        (
            "no jti",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(JWT_CLIENT, json!({"jti": null})),
                ),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Token jti claim is required"),
        ),
        (
            "no sub",
            vec![
                ("client_id", JWT_CLIENT.into()),
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(JWT_CLIENT, json!({"sub": null})),
                ),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Token sub claim is required"),
        ),
        (
            "client_id names another client than sub",
            vec![
                ("client_id", JWT_CLIENT.into()),
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", f.assertion(JWKS_CLIENT, json!({}))),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("client_id parameter does not match sub claim"),
        ),
        (
            "iss is not the client",
            vec![
                ("client_id", JWT_CLIENT.into()),
                ("client_assertion_type", ASSERTION_TYPE.into()),
                (
                    "client_assertion",
                    f.assertion(JWT_CLIENT, json!({"iss": f.issuer()})),
                ),
            ],
            StatusCode::UNAUTHORIZED,
            generic_invalid_client(),
        ),
        (
            "an assertion for an unknown client",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", f.assertion("nobody", json!({}))),
            ],
            StatusCode::UNAUTHORIZED,
            generic_invalid_client(),
        ),
        (
            "no client_assertion_type",
            vec![("client_assertion", f.assertion(JWT_CLIENT, json!({})))],
            StatusCode::BAD_REQUEST,
            invalid_client("Parameter client_assertion_type is missing"),
        ),
        (
            "another client_assertion_type",
            vec![
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into(),
                ),
                ("client_assertion", f.assertion(JWT_CLIENT, json!({}))),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client(
                "Parameter client_assertion_type has value \
                 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' but expected is \
                 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'",
            ),
        ),
        (
            "no client_assertion",
            vec![
                ("client_id", JWT_CLIENT.into()),
                ("client_assertion_type", ASSERTION_TYPE.into()),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("client_assertion parameter missing"),
        ),
        (
            "not a JWT",
            vec![
                ("client_id", JWT_CLIENT.into()),
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", "not-a-jwt".into()),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client(
                "Client authentication with signed JWT failed: Could not parse the client assertion",
            ),
        ),
        (
            "a secret from a client-jwt client",
            vec![
                ("client_id", JWT_CLIENT.into()),
                ("client_secret", "kept-but-never-accepted".into()),
            ],
            StatusCode::BAD_REQUEST,
            invalid_client("Parameter client_assertion_type is missing"),
        ),
        (
            "an assertion naming a public client, without client_id",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", f.assertion(PUBLIC_CLIENT, json!({}))),
            ],
            StatusCode::UNAUTHORIZED,
            generic_invalid_client(),
        ),
        (
            "an assertion from a client-secret client",
            vec![
                ("client_id", CLIENT_ID.into()),
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", f.assertion(CLIENT_ID, json!({}))),
            ],
            StatusCode::UNAUTHORIZED,
            generic_invalid_client(),
        ),
        (
            "an assertion alone from a client-secret client",
            vec![
                ("client_assertion_type", ASSERTION_TYPE.into()),
                ("client_assertion", f.assertion(CLIENT_ID, json!({}))),
                ("client_secret", CLIENT_SECRET.into()),
            ],
            StatusCode::UNAUTHORIZED,
            generic_invalid_client(),
        ),
    ];
    for (label, credentials, want_status, want_body) in cases {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        form.extend(credentials);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = f.post_form("token", &form).await;
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{label}"
        );
        let (status, body) = status_and_body(resp).await;
        assert_eq!((status, &body), (want_status, &want_body), "{label}");
    }
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let receiver = Receiver::start().await;
    let f = start_jwt(&receiver).await;
    let assertion = f.assertion(JWT_CLIENT, json!({}));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(f.post_form("token", &form).await.status(), StatusCode::OK);
    let (status, body) = status_and_body(f.post_form("token", &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, invalid_client("Token reuse detected"));
}

#[tokio::test]
async fn a_failed_assertion_does_not_spend_the_code() {
    let receiver = Receiver::start().await;
    let f = start_jwt(&receiver).await;
    let code = f.code_for(JWT_CLIENT).await;
    let exchange = |assertion: String| {
        let code = code.clone();
        let f = &f;
        async move {
            f.post_form(
                "token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ],
            )
            .await
            .status()
        }
    };
    let bad = f.assertion(JWT_CLIENT, json!({"aud": "http://elsewhere/"}));
    assert_eq!(exchange(bad).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        exchange(f.assertion(JWT_CLIENT, json!({}))).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn keys_come_from_the_clients_jwks_url_by_kid() {
    let receiver = Receiver::start().await;
    receiver.serve_jwks(json!({"keys": [rsa_jwk("client-key-1")]}));
    let f = start_jwt(&receiver).await;
    let sign = |kid: &str, alg: Algorithm, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &f.assertion_claims(JWKS_CLIENT), key).unwrap()
    };
    let token = |assertion: String| {
        let f = &f;
        async move {
            status_and_body(
                f.post_form(
                    "token",
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", "no-such-code"),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", &assertion),
                    ],
                )
                .await,
            )
            .await
        }
    };
    // Authenticated: the code is what fails.
    let (status, body) = token(sign("client-key-1", Algorithm::RS256, &rsa())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let (status, body) = token(sign("unknown-kid", Algorithm::RS256, &rsa())).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            invalid_client("Unable to load public key")
        )
    );

    // `token.endpoint.auth.signing.alg` is RS256: PS256 with the same key is refused.
    let (status, body) = token(sign("client-key-1", Algorithm::PS256, &rsa())).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            invalid_client("Invalid signature algorithm")
        )
    );

    // The JWKS URL failing is the same answer as an unknown key.
    receiver.answer(503);
    receiver.stop_jwks();
    let (status, body) = token(sign("client-key-1", Algorithm::RS256, &rsa())).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            invalid_client("Unable to load public key")
        )
    );
    assert!(
        !receiver.received_at("/jwks").is_empty(),
        "the JWKS URL was asked"
    );
}

#[tokio::test]
async fn discovery_advertises_private_key_jwt() {
    let receiver = Receiver::start().await;
    let f = start_jwt(&receiver).await;
    let doc: Value =
        f.rp.get(format!("{}/.well-known/openid-configuration", f.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    for field in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        let methods = doc[field].as_array().unwrap();
        assert!(
            methods.contains(&json!("private_key_jwt")),
            "{field}: {methods:?}"
        );
        assert!(methods.contains(&json!("client_secret_basic")), "{field}");
    }
    let algs = doc["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(
        algs.contains(&json!("RS256")) && !algs.contains(&json!("HS256")),
        "{algs:?}"
    );
    // The secret client of the realm still works as before.
    let cb = f.login(&[]).await;
    assert_eq!(f.exchange(cb.code(), &[]).await.status(), StatusCode::OK);
}
