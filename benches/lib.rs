//! Criterion benchmarks live in `benches/`; this library holds what several of them share.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use extauth::session::SessionData;

/// A session shaped like one mock-idp issues (Keycloak's claims, the same sizes): an RS256 ID
/// token and access token sharing most claims, an HS512 refresh token, signatures of
/// incompressible bytes. About 3.4 KB of tokens, as in `harness load`'s sessions.
pub fn mock_idp_like_session() -> SessionData {
    let issuer = "http://localhost:8080/realms/master";
    let sub = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let sid = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let profile = r#""email_verified":true,"name":"User One","preferred_username":"user1","given_name":"User","family_name":"One","email":"user1@example.com""#;
    let header =
        r#"{"alg":"RS256","typ":"JWT","kid":"Xm0xP5Q8c1sS2nRr3k-gR0bE5v7Yt9Lw1HqA6DzU4fI"}"#;
    let access = format!(
        r#"{{"exp":1764553200,"iat":1764549600,"auth_time":1764549600,"jti":"a3bb189e-8bf9-3888-9912-ace4e6543002","iss":"{issuer}","aud":"account","sub":"{sub}","typ":"Bearer","azp":"agentgateway","nonce":"n-0S6_WzA2Mj","session_state":"{sid}","acr":"1","realm_access":{{"roles":["offline_access","uma_authorization"]}},"resource_access":{{"account":{{"roles":["manage-account","manage-account-links","view-profile"]}}}},"scope":"openid email profile","sid":"{sid}",{profile}}}"#
    );
    let id = format!(
        r#"{{"exp":1764553200,"iat":1764549600,"auth_time":1764549600,"jti":"e2a8c7b1-5d3f-4a6e-8b9c-1f2d3e4a5b6c","iss":"{issuer}","aud":"agentgateway","sub":"{sub}","typ":"ID","azp":"agentgateway","nonce":"n-0S6_WzA2Mj","session_state":"{sid}","at_hash":"77QmUPtjPfzWtF2AnpK9RQ","acr":"1","sid":"{sid}",{profile}}}"#
    );
    let refresh = format!(
        r#"{{"exp":1764556800,"iat":1764549600,"jti":"9b2f7c4e-1a3d-4e5f-8a7b-6c5d4e3f2a1b","iss":"{issuer}","aud":"{issuer}","sub":"{sub}","typ":"Refresh","azp":"agentgateway","nonce":"n-0S6_WzA2Mj","session_state":"{sid}","scope":"openid email profile","sid":"{sid}"}}"#
    );
    let jwt = |header: &str, claims: &str, sig: Vec<u8>| {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(sig)
        )
    };
    SessionData {
        id_token: jwt(header, &id, noise(1, 256)),
        access_token: jwt(header, &access, noise(2, 256)),
        refresh_token: Some(jwt(
            r#"{"alg":"HS512","typ":"JWT","kid":"0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"}"#,
            &refresh,
            noise(3, 64),
        )),
        expires_at: i64::MAX,
        subject: sub.into(),
        created_at: 0,
    }
}

/// `n` bytes that look random (a signature): xorshift64 from `seed`.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}
