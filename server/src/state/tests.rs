use base64::Engine as _;
use proptest::prelude::*;

use super::*;

fn codec() -> StateCodec {
    StateCodec::new(&Secret::new("k".repeat(32)))
}

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn state_has_the_seeds_claims() {
    let issued = codec()
        .issue("http://localhost/openai", 1_768_504_473)
        .unwrap();
    let header = issued.token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    let claims = payload(&issued.token);
    assert_eq!(claims["exp"], 1_768_506_273);
    assert_eq!(claims["iat"], 1_768_504_473);
    assert_eq!(claims["nbf"], 1_768_504_473);
    assert_eq!(claims["state"], "http://localhost/openai");
    let keys: Vec<_> = claims.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["exp", "iat", "lid", "nbf", "state"]);
}

#[test]
fn verified_state_gives_back_the_url_and_the_same_login_secrets() {
    let c = codec();
    let issued = c.issue("http://gw/openai?x=1", 100).unwrap();
    let verified = c.verify(&issued.token, 101).unwrap();
    assert_eq!(verified.claims.state, "http://gw/openai?x=1");
    assert_eq!(verified.login.nonce, issued.login.nonce);
    assert_eq!(verified.login.pkce_verifier, issued.login.pkce_verifier);
    assert_eq!(verified.login.pkce_challenge, issued.login.pkce_challenge);
}

#[test]
fn pkce_challenge_is_s256_of_the_verifier() {
    let issued = codec().issue("http://gw/", 0).unwrap();
    let v = issued.login.pkce_verifier.expose();
    assert!((43..=128).contains(&v.len()));
    assert_eq!(
        issued.login.pkce_challenge,
        URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
    );
    assert!(
        !issued.token.contains(v),
        "the verifier must not travel in the state"
    );
}

#[test]
fn every_login_gets_its_own_secrets() {
    let c = codec();
    let (a, b) = (
        c.issue("http://gw/", 0).unwrap(),
        c.issue("http://gw/", 0).unwrap(),
    );
    assert_ne!(a.login.nonce, b.login.nonce);
    assert_ne!(a.login.pkce_verifier, b.login.pkce_verifier);
}

#[test]
fn expiry_and_not_before_follow_the_given_clock() {
    let c = codec();
    let t = c.issue("http://gw/", 1_000).unwrap().token;
    assert_eq!(c.verify(&t, 999).unwrap_err(), StateError::NotYetValid);
    assert!(c.verify(&t, 1_000 + STATE_TTL_SECS - 1).is_ok());
    assert_eq!(
        c.verify(&t, 1_000 + STATE_TTL_SECS).unwrap_err(),
        StateError::Expired
    );
}

#[test]
fn another_servers_key_is_rejected() {
    let t = codec().issue("http://gw/", 0).unwrap().token;
    let other = StateCodec::new(&Secret::new("o".repeat(32)));
    assert_eq!(other.verify(&t, 1).unwrap_err(), StateError::Invalid);
}

#[test]
fn alg_none_and_other_algorithms_are_rejected() {
    let c = codec();
    let t = c.issue("http://gw/", 0).unwrap().token;
    let body = t.split('.').nth(1).unwrap();
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"HS512","typ":"JWT"}"#,
    ] {
        let forged = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(header));
        assert_eq!(
            c.verify(&forged, 1).unwrap_err(),
            StateError::Invalid,
            "{header}"
        );
    }
}

#[test]
fn oversized_state_is_rejected_before_parsing() {
    assert_eq!(
        codec()
            .verify(&"a".repeat(MAX_STATE_LEN + 1), 0)
            .unwrap_err(),
        StateError::TooLarge
    );
}

proptest! {
    #[test]
    fn state_round_trips_any_url(url in "\\PC{0,300}", now in 0i64..4_000_000_000) {
        let c = codec();
        let t = c.issue(&url, now).unwrap().token;
        prop_assert_eq!(c.verify(&t, now).unwrap().claims.state, url);
    }

    #[test]
    fn any_single_byte_change_is_rejected(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let c = codec();
        let t = c.issue("http://gw/openai", 100).unwrap().token;
        let mut bytes = t.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        // Some changes only flip unused low bits of the last base64 character; those decode to
        // the same bytes and are not tampering.
        let changed = String::from_utf8(bytes).ok();
        if let Some(changed) = changed {
            let same_bytes = |a: &str, b: &str| {
                a.split('.').zip(b.split('.')).all(|(x, y)| URL_SAFE_NO_PAD.decode(x).ok() == URL_SAFE_NO_PAD.decode(y).ok() && URL_SAFE_NO_PAD.decode(x).is_ok())
                    && a.split('.').count() == b.split('.').count()
            };
            if !same_bytes(&t, &changed) {
                prop_assert!(c.verify(&changed, 101).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,600}") {
        let _ = codec().verify(&s, 0);
    }
}
