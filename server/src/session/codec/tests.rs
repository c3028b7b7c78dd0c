use proptest::prelude::*;

use super::*;

/// A JWS-shaped token: three canonical base64url segments.
fn jws(header: &[u8], payload: &[u8], sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        BASE64URL_NOPAD.encode(header),
        BASE64URL_NOPAD.encode(payload),
        BASE64URL_NOPAD.encode(sig)
    )
}

fn realistic() -> SessionData {
    let claims = br#"{"exp":1764553200,"iat":1764549600,"iss":"http://localhost:8080/realms/master","aud":"agentgateway","sub":"f:2c1b9a4e:user1","typ":"ID","sid":"5f0d3f6e-8d4b-4f6e-9a7c-2b8e1d3c4a5f","email":"user1@example.com","preferred_username":"user1","name":"User One"}"#;
    SessionData {
        id_token: jws(
            br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#,
            claims,
            &[7u8; 256],
        ),
        access_token: jws(
            br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#,
            claims,
            &[9u8; 256],
        ),
        refresh_token: Some(jws(br#"{"alg":"HS256"}"#, claims, &[3u8; 32])),
        expires_at: 1_764_553_200,
        subject: "f:2c1b9a4e:user1".into(),
        created_at: 1_764_549_600,
    }
}

#[test]
fn a_session_round_trips_and_is_smaller_than_version_1() {
    let id = SessionId::generate();
    let data = realistic();
    let v2 = seal(&id, &data).unwrap();
    assert_eq!(v2[0], V2);
    assert_eq!(open(&id, &v2).unwrap(), data);
    let v1 = seal_v1(&id, &data).unwrap();
    assert!(
        v2.len() * 2 < v1.len(),
        "v2 {} bytes, v1 {}",
        v2.len(),
        v1.len()
    );
}

#[test]
fn version_1_values_still_open() {
    let id = SessionId::generate();
    let data = realistic();
    // Whatever the first byte of the random nonce, including 0xE5 (then the version-2 open
    // fails and version 1 is tried).
    for _ in 0..64 {
        let v1 = seal_v1(&id, &data).unwrap();
        assert_eq!(open(&id, &v1).unwrap(), data);
    }
    let mut v1 = seal_v1(&id, &data).unwrap();
    v1[0] = V2;
    // The nonce byte changed: the value no longer authenticates as either version.
    assert!(matches!(open(&id, &v1), Err(StoreError::Corrupt(_))));
}

#[test]
fn tokens_that_are_not_canonical_jws_are_kept_as_they_came() {
    let id = SessionId::generate();
    for (label, token) in [
        ("opaque", "2YotnFZFEjr1zCsicMWpAA".to_owned()),
        ("empty", String::new()),
        ("two segments", "eyJhIjoxfQ.eyJiIjoyfQ".to_owned()),
        ("five segments (JWE)", "a.b.c.d.e".to_owned()),
        (
            "non-canonical trailing bits",
            "header.payload.signature".to_owned(),
        ),
        ("padded", "eyJhIjoxfQ==.eyJiIjoyfQ.c2ln".to_owned()),
        ("standard alphabet", "ab+/.cd.ef".to_owned()),
        (
            "empty signature",
            "eyJhbGciOiJub25lIn0.eyJiIjoyfQ.".to_owned(),
        ),
        ("not ASCII", "héllo.wörld.x".to_owned()),
    ] {
        let data = SessionData {
            id_token: token.clone(),
            access_token: token.clone(),
            refresh_token: None,
            ..realistic()
        };
        let sealed = seal(&id, &data).unwrap();
        assert_eq!(open(&id, &sealed).unwrap(), data, "{label}");
    }
}

#[test]
fn a_value_opens_only_under_its_id_and_unchanged() {
    let id = SessionId::generate();
    let sealed = seal(&id, &realistic()).unwrap();
    assert!(matches!(
        open(&SessionId::generate(), &sealed),
        Err(StoreError::Corrupt(_))
    ));
    for i in [0, 1, 12, 13, sealed.len() / 2, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[i] ^= 0x01;
        assert!(
            matches!(open(&id, &tampered), Err(StoreError::Corrupt(_))),
            "byte {i}"
        );
    }
    for len in [0, 1, 13, 28, sealed.len() - 1] {
        assert!(
            matches!(open(&id, &sealed[..len]), Err(StoreError::Corrupt(_))),
            "first {len} bytes"
        );
    }
}

#[test]
fn an_authentic_body_that_does_not_parse_is_corrupt_not_a_panic() {
    let id = SessionId::generate();
    let key = crypto::session_key(&id);
    for (label, body) in [
        ("empty", vec![]),
        ("flags only", vec![0]),
        ("truncated times", vec![0, 1, 2, 3]),
        ("bad deflate", vec![DEFLATED, 0xff, 0xff, 0xff]),
        (
            "endless length",
            [vec![0], vec![0; 16], vec![0xff; 8]].concat(),
        ),
        (
            "unknown token kind",
            [vec![0], vec![0; 16], vec![1, b'u', 9]].concat(),
        ),
    ] {
        let mut sealed = vec![V2];
        crypto::seal_with_aad(&key, &body, &[V2], &mut sealed).unwrap();
        assert!(
            matches!(open(&id, &sealed), Err(StoreError::Corrupt(_))),
            "{label}"
        );
    }
}

proptest! {
    #[test]
    fn any_session_round_trips(
        id_token in ".{0,40}",
        segments in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 3),
        refresh in proptest::option::of(".{0,40}"),
        subject in ".{0,20}",
        expires_at in any::<i64>(),
        created_at in any::<i64>(),
    ) {
        let id = SessionId::generate();
        let data = SessionData {
            id_token,
            access_token: jws(&segments[0], &segments[1], &segments[2]),
            refresh_token: refresh,
            expires_at,
            subject,
            created_at,
        };
        let sealed = seal(&id, &data).unwrap();
        prop_assert_eq!(open(&id, &sealed).unwrap(), data);
    }

    #[test]
    fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let id = SessionId::generate();
        prop_assert!(open(&id, &bytes).is_err());
    }
}
