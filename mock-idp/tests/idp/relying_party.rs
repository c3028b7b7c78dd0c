//! A real relying party, the `openidconnect` crate (what extauth builds on), runs the whole
//! flow against the mock: discovery, authorization URL with PKCE and nonce, code exchange,
//! ID-token verification through the JWKS (signature, `iss`, `aud`, `exp`, `nonce`,
//! `at_hash`) and userinfo.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse as _,
};

use crate::common::{CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, callback_of, start};

#[tokio::test]
async fn openidconnect_crate_completes_the_code_flow_with_pkce_and_nonce() {
    let f = start().await;
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(f.issuer()).unwrap(), &http)
        .await
        .unwrap();
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(CLIENT_ID.to_owned()),
        Some(ClientSecret::new(CLIENT_SECRET.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .set_pkce_challenge(challenge)
        .url();

    let html = f
        .browser
        .get(auth_url.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cb = callback_of(&f.submit(&f.browser, &html, "user1", "password").await);
    assert_eq!(cb.get("state"), Some(csrf.secret().as_str()));

    let token = client
        .exchange_code(AuthorizationCode::new(cb.code().to_owned()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = token.id_token().expect("an ID token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token.claims(&id_verifier, &nonce).unwrap();
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("user1")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("user1@example.com")
    );
    let expected_hash = AccessTokenHash::from_token(
        token.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));

    let info: CoreUserInfoClaims = client
        .user_info(token.access_token().to_owned(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject(), claims.subject());
}
