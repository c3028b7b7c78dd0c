use super::*;
use crate::keys::SigningKey;
use crate::realm::Realm;

const ISS: &str = "http://localhost:1/realms/master";

fn keys() -> Keys {
    Keys::new(SigningKey::shared().unwrap())
}

/// When the tests' tokens are minted.
const NOW: u64 = 10_000;

/// Mints user1's tokens at `agentgateway` at [`NOW`], for a requested `scope`.
fn mint_for(keys: &Keys, scope: &str, nonce: Option<&str>) -> Minted {
    let realm =
        Realm::from_json_str(include_str!("../../../scenarios/realms/master.json")).unwrap();
    let user = realm.user_for_login("user1").unwrap();
    mint(
        keys,
        &Grant {
            issuer: ISS,
            user,
            client_id: "agentgateway",
            sid: "sid-1",
            nonce,
            scope: &Scope::granted_for(Some(scope)),
            auth_time: NOW - 5,
            acr: "1",
            now: NOW,
            access_lifetime: 300,
            refresh_expires_at: NOW + 1800,
        },
    )
    .unwrap()
}

#[test]
fn scope_always_carries_keycloak_default_scopes() {
    let cases = [
        (
            "openid asked",
            Some("email openid"),
            "openid email profile",
            true,
        ),
        ("no openid", Some("email"), "email profile", false),
        ("no scope", None, "email profile", false),
    ];
    for (label, requested, want, openid) in cases {
        let s = Scope::granted_for(requested);
        assert_eq!(s.to_string(), want, "{label}");
        assert_eq!(s.openid(), openid, "{label}");
    }
}

#[test]
fn at_hash_is_the_left_half_of_sha256_base64url() {
    // Hand computed: SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223 b00361a3...
    assert_eq!(at_hash("abc"), "ungWv48Bz-pBQUDeXa4iIw");
}

#[test]
fn minted_access_token_verifies_and_carries_keycloak_claims() {
    let keys = keys();
    let m = mint_for(&keys, "openid", Some("n"));
    let claims = verify_access(&keys, ISS, 10_000, &m.access_token).unwrap();
    assert_eq!(claims.typ, "Bearer");
    assert_eq!(claims.aud, "account");
    assert_eq!(claims.azp, "agentgateway");
    assert_eq!(claims.exp, 10_300);
    assert_eq!(claims.nonce.as_deref(), Some("n"));
    assert_eq!(claims.profile.preferred_username, "user1");
    assert_eq!(m.expires_in, 300);
    assert_eq!(m.refresh_expires_in, 1800);
}

#[test]
fn id_token_is_issued_only_for_openid_and_binds_the_access_token() {
    let keys = keys();
    let m = mint_for(&keys, "email", None);
    assert!(m.id_token.is_none());
    let m = mint_for(&keys, "openid", None);
    let id = verify_id_token_hint(&keys, ISS, m.id_token.as_deref().unwrap()).unwrap();
    assert_eq!(id.at_hash, at_hash(&m.access_token));
    assert_eq!(id.aud, "agentgateway");
    assert_eq!(id.nonce, None);
}

#[test]
fn access_token_verification_rejections() {
    let keys = keys();
    let m = mint_for(&keys, "openid", None);
    let id_token = m.id_token.clone().unwrap();
    let mut tampered = m.access_token.clone();
    tampered.push('x');
    let cases = [
        (
            "expired",
            m.access_token.as_str(),
            ISS,
            10_300,
            TokenInvalid::Expired,
        ),
        (
            "other issuer",
            m.access_token.as_str(),
            "http://other",
            10_000,
            TokenInvalid::Issuer,
        ),
        (
            "id token as access token",
            id_token.as_str(),
            ISS,
            10_000,
            TokenInvalid::Type,
        ),
        (
            "refresh token as access token",
            m.refresh_token.as_str(),
            ISS,
            10_000,
            TokenInvalid::Malformed,
        ),
        (
            "bad signature",
            tampered.as_str(),
            ISS,
            10_000,
            TokenInvalid::Malformed,
        ),
        ("garbage", "not.a.jwt", ISS, 10_000, TokenInvalid::Malformed),
    ];
    for (label, token, iss, now, want) in cases {
        assert_eq!(
            verify_access(&keys, iss, now, token).unwrap_err(),
            want,
            "{label}"
        );
    }
}

#[test]
fn refresh_token_is_hs512_and_verifies_with_its_jti() {
    let keys = keys();
    let m = mint_for(&keys, "openid", None);
    let header = jsonwebtoken::decode_header(&m.refresh_token).unwrap();
    assert_eq!(header.alg, Algorithm::HS512);
    let claims = verify_refresh(&keys, ISS, 10_000, &m.refresh_token).unwrap();
    assert_eq!(claims.jti, m.refresh_jti);
    assert_eq!(claims.typ, "Refresh");
    assert_eq!(
        verify_refresh(&keys, ISS, 11_800, &m.refresh_token).unwrap_err(),
        TokenInvalid::Expired
    );
    // Another IdP's refresh key does not verify it.
    let other = Keys::new(SigningKey::shared().unwrap());
    assert_eq!(
        verify_refresh(&other, ISS, 10_000, &m.refresh_token).unwrap_err(),
        TokenInvalid::Malformed
    );
}

#[test]
fn signed_tokens_carry_kid_and_jwt_type() {
    let keys = keys();
    let m = mint_for(&keys, "openid", None);
    for token in [&m.access_token, m.id_token.as_ref().unwrap()] {
        let h = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(h.alg, Algorithm::RS256);
        assert_eq!(h.kid.as_deref(), Some(keys.signing.kid()));
        assert_eq!(h.typ.as_deref(), Some("JWT"));
    }
}

#[test]
fn a_logout_token_follows_back_channel_logout_1_0_and_keycloak() {
    let keys = keys();
    let token = mint_logout(
        &keys,
        &LogoutGrant {
            issuer: ISS,
            client_id: "agentgateway",
            sub: "user-id",
            sid: Some("session-id"),
            revoke_offline_tokens: false,
            now: 10_000,
        },
    )
    .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(keys.signing.kid()));
    let claims: LogoutClaims = decode_signed(&keys, &token).unwrap();
    assert_eq!(claims.iss, ISS);
    assert_eq!(claims.aud, "agentgateway");
    assert_eq!(claims.sub, "user-id");
    assert_eq!(claims.sid.as_deref(), Some("session-id"));
    assert_eq!(claims.typ, "Logout");
    assert_eq!((claims.iat, claims.exp), (10_000, 10_120));
    assert_eq!(
        claims.events,
        json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    let raw: Value = decode_signed(&keys, &token).unwrap();
    assert!(raw.get("nonce").is_none(), "a logout token has no nonce");
    assert!(!claims.jti.is_empty());
}

#[test]
fn a_logout_token_without_session_has_no_sid_and_may_revoke_offline_access() {
    let keys = keys();
    let grant = LogoutGrant {
        issuer: ISS,
        client_id: "c",
        sub: "u",
        sid: None,
        revoke_offline_tokens: true,
        now: 1,
    };
    let a: LogoutClaims = decode_signed(&keys, &mint_logout(&keys, &grant).unwrap()).unwrap();
    let b: LogoutClaims = decode_signed(&keys, &mint_logout(&keys, &grant).unwrap()).unwrap();
    assert_eq!(a.sid, None);
    assert_eq!(a.events["revoke_offline_access"], json!(true));
    assert_ne!(a.jti, b.jti, "a new jti each time");
}
