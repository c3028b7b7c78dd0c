use super::*;

#[test]
fn shared_key_is_generated_once_per_process() {
    let a = SigningKey::shared().unwrap();
    let b = SigningKey::shared().unwrap();
    assert!(Arc::ptr_eq(&a, &b));
}

#[test]
fn public_jwk_is_an_rs256_signing_key_with_a_2048_bit_modulus() {
    let key = SigningKey::shared().unwrap();
    let jwk = key.public_jwk();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["e"], "AQAB");
    assert_eq!(jwk["kid"], key.kid());
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len() * 8, RSA_BITS);
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    // RFC 7638 section 3.1's example key and thumbprint.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    assert_eq!(
        jwk_thumbprint(n, "AQAB"),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn debug_output_shows_the_kid_but_no_key_material() {
    let key = SigningKey::shared().unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains(key.kid()));
    assert!(!shown.contains(key.public_jwk()["n"].as_str().unwrap()));
    let hmac = format!("{:?}", HmacKey::generate());
    assert!(hmac.starts_with("HmacKey { kid: "));
}

#[test]
fn trimming_drops_only_leading_zero_bytes() {
    assert_eq!(be_bytes_trimmed(&[0, 0, 1, 0, 1]), vec![1, 0, 1]);
    assert_eq!(be_bytes_trimmed(&[0, 0]), Vec::<u8>::new());
}

#[test]
fn an_es256_key_signs_and_verifies_and_publishes_an_ec_jwk() {
    let key = SigningKey::generate_for(SigningAlg::ES256).unwrap();
    let jwk = key.public_jwk();
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["kid"], key.kid());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    let token = jsonwebtoken::encode(&header, &json!({"a": 1}), key.encoding_key()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(&token, key.decoding_key(), &v).unwrap();
    assert_eq!(data.claims["a"], 1);
}

#[test]
fn algorithms_parse_from_their_jose_names_only() {
    assert_eq!("PS256".parse::<SigningAlg>(), Ok(SigningAlg::PS256));
    assert_eq!("ES256".parse::<SigningAlg>(), Ok(SigningAlg::ES256));
    assert!("rs256".parse::<SigningAlg>().is_err());
}

#[test]
fn an_rs256_token_signed_through_ring_is_the_one_jsonwebtoken_would_make() {
    let key = SigningKey::shared().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid().to_owned());
    let claims = json!({"sub": "user1", "n": 7});
    let ours = key.sign(&header, &claims).unwrap();
    // RSA PKCS#1 v1.5 signatures are deterministic: the same bytes as jsonwebtoken's.
    let theirs = jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap();
    assert_eq!(ours, theirs);
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(&ours, key.decoding_key(), &v).unwrap();
    assert_eq!(data.claims, claims);
    // A token with a tampered payload does not verify.
    let parts: Vec<&str> = ours.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","n":7}"#),
        parts[2]
    );
    assert!(jsonwebtoken::decode::<Value>(&forged, key.decoding_key(), &v).is_err());
}

#[test]
fn an_es256_token_signed_through_ring_verifies_as_jsonwebtoken_would_check_it() {
    let key = SigningKey::generate_for(SigningAlg::ES256).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.kid().to_owned());
    let claims = json!({"sub": "user1", "n": 7});
    let ours = key.sign(&header, &claims).unwrap();
    // ECDSA signatures are randomized: the header and payload segments are jsonwebtoken's,
    // the signature is a fixed-size `r || s` (RFC 7518 section 3.4) that verifies.
    let theirs = jsonwebtoken::encode(&header, &claims, key.encoding_key()).unwrap();
    let (ours_parts, theirs_parts): (Vec<&str>, Vec<&str>) =
        (ours.split('.').collect(), theirs.split('.').collect());
    assert_eq!(ours_parts.len(), 3);
    assert_eq!(ours_parts[..2], theirs_parts[..2]);
    assert_eq!(URL_SAFE_NO_PAD.decode(ours_parts[2]).unwrap().len(), 64);
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(&ours, key.decoding_key(), &v).unwrap();
    assert_eq!(data.claims, claims);
    // A tampered payload, or another key's signature, does not verify.
    let forged = format!(
        "{}.{}.{}",
        ours_parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","n":7}"#),
        ours_parts[2]
    );
    assert!(jsonwebtoken::decode::<Value>(&forged, key.decoding_key(), &v).is_err());
    let other = SigningKey::generate_for(SigningAlg::ES256).unwrap();
    assert!(jsonwebtoken::decode::<Value>(&ours, other.decoding_key(), &v).is_err());
}
