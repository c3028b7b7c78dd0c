use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::realm::{Authenticator, KeySource, Realm};

const NOW: i64 = 1_000_000;
const ISSUER: &str = "http://localhost:8080/realms/master";
const TOKEN_URL: &str = "http://localhost:8080/realms/master/protocol/openid-connect/token";
const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/client-jwt/rsa-private.pem");
const RSA_CERT: &str = include_str!("../../tests/fixtures/client-jwt/rsa-certificate.b64");
const EC_PRIVATE: &str = include_str!("../../tests/fixtures/client-jwt/ec-private.pem");
const EC_PUBLIC: &str = include_str!("../../tests/fixtures/client-jwt/ec-public-key.b64");

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap()
}

/// The keys of a `client-jwt` client with these attributes.
fn keys_of(attributes: serde_json::Value) -> KeySource {
    let realm = Realm::from_json_str(
        &json!({"realm": "r", "clients": [{
            "clientId": "c", "clientAuthenticatorType": "client-jwt", "attributes": attributes
        }]})
        .to_string(),
    )
    .unwrap();
    match realm.client("c").unwrap().authenticator() {
        Authenticator::Jwt(cred) => cred.keys().clone(),
        Authenticator::Secret => panic!("not a client-jwt client"),
    }
}

fn certificate_key() -> ClientKey {
    match keys_of(json!({"jwt.credential.certificate": RSA_CERT})) {
        KeySource::Certificate(key) => key,
        other => panic!("{other:?}"),
    }
}

fn ec_key() -> ClientKey {
    match keys_of(json!({"jwt.credential.public.key": EC_PUBLIC})) {
        KeySource::PublicKey(key) => key,
        other => panic!("{other:?}"),
    }
}

/// Claims that pass every check at [`NOW`].
fn good_claims() -> serde_json::Value {
    json!({
        "iss": "c", "sub": "c", "aud": TOKEN_URL,
        "iat": NOW, "exp": NOW + 5, "jti": "jti-1",
    })
}

fn sign_with(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rs256(claims: &Value) -> Assertion {
    Assertion::parse(&sign_with(Algorithm::RS256, &rsa(), None, claims)).unwrap()
}

/// `claims` with `changes` applied (`null` removes a claim).
fn with(changes: Value) -> Value {
    let mut claims = good_claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn allowed() -> Vec<String> {
    vec![ISSUER.to_owned(), TOKEN_URL.to_owned()]
}

/// Every check, in Keycloak's order, as the HTTP layer runs them.
fn validate(
    assertion: &Assertion,
    keys: KeyChoice<'_>,
    jtis: &mut UsedJtis,
) -> Result<(), AssertionError> {
    check_identity(assertion, None)?;
    let alg = check_algorithm(assertion, None)?;
    check_signature(assertion, alg, keys)?;
    check_audience(assertion, &allowed())?;
    let lifespan = check_times(assertion, NOW, 60)?;
    jtis.check_and_record(assertion, NOW, lifespan)
}

#[test]
fn a_good_assertion_passes_every_check() {
    let key = certificate_key();
    let a = rs256(&good_claims());
    assert_eq!(check_identity(&a, None), Ok("c"));
    assert_eq!(
        validate(&a, KeyChoice::Single(&key), &mut UsedJtis::default()),
        Ok(())
    );
}

#[test]
fn parameters_are_checked_before_anything_else() {
    let cases = [
        ("no type", None, Some("x"), AssertionError::TypeMissing),
        (
            "another type",
            Some("urn:other"),
            Some("x"),
            AssertionError::TypeUnexpected("urn:other".into()),
        ),
        (
            "no assertion",
            Some(ASSERTION_TYPE),
            None,
            AssertionError::AssertionMissing,
        ),
    ];
    for (label, kind, assertion, want) in cases {
        assert_eq!(check_parameters(kind, assertion), Err(want), "{label}");
    }
    assert_eq!(check_parameters(Some(ASSERTION_TYPE), Some("x")), Ok(()));
    assert_eq!(
        AssertionError::TypeUnexpected("urn:other".into()).to_string(),
        "Parameter client_assertion_type has value 'urn:other' but expected is \
         'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'"
    );
}

#[test]
fn an_assertion_that_is_not_a_jws_is_malformed() {
    for raw in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "e30.bm90IGpzb24.x",
        "WyJhIl0.e30.x",
    ] {
        assert_eq!(
            Assertion::parse(raw).unwrap_err(),
            AssertionError::Malformed,
            "{raw:?}"
        );
    }
}

#[test]
fn identity_cases() {
    let cases = [
        (
            "no sub",
            with(json!({"sub": null})),
            None,
            Err(AssertionError::SubjectMissing),
        ),
        (
            "client_id names another client",
            good_claims(),
            Some("d"),
            Err(AssertionError::ClientIdMismatch),
        ),
        (
            "iss is not sub",
            with(json!({"iss": ISSUER})),
            None,
            Err(AssertionError::IssuerNotSubject),
        ),
        ("client_id agrees", good_claims(), Some("c"), Ok("c")),
    ];
    for (label, claims, named, want) in cases {
        let a = rs256(&claims);
        assert_eq!(check_identity(&a, named), want, "{label}");
    }
    assert!(AssertionError::IssuerNotSubject.is_generic());
    assert!(!AssertionError::Signature.is_generic());
}

#[test]
fn only_asymmetric_algorithms_and_the_configured_one_are_accepted() {
    let hs = Assertion::parse(&sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"secret"),
        None,
        &good_claims(),
    ))
    .unwrap();
    let none = Assertion::parse(&format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    ));
    // Two parts and an empty signature still parse: `alg` decides.
    let none = none.unwrap();
    let es = Assertion::parse(&sign_with(Algorithm::ES256, &ec(), None, &good_claims())).unwrap();
    let cases = [
        ("HS256", &hs, None, Err(AssertionError::Algorithm)),
        ("none", &none, None, Err(AssertionError::Algorithm)),
        ("ES256, any allowed", &es, None, Ok(Algorithm::ES256)),
        (
            "ES256, RS256 configured",
            &es,
            Some(Algorithm::RS256),
            Err(AssertionError::Algorithm),
        ),
        (
            "ES256 configured",
            &es,
            Some(Algorithm::ES256),
            Ok(Algorithm::ES256),
        ),
    ];
    for (label, a, expected, want) in cases {
        assert_eq!(check_algorithm(a, expected), want, "{label}");
    }
}

/// Label, assertion, algorithm, keys, expected outcome.
type SignatureCase<'a> = (
    &'static str,
    &'a Assertion,
    Algorithm,
    KeyChoice<'a>,
    Result<(), AssertionError>,
);

#[test]
fn signature_cases() {
    let cert = certificate_key();
    let ec_key = ec_key();
    let other_rsa = crate::keys::SigningKey::shared().unwrap();
    let signed_by_other = Assertion::parse(
        &jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &good_claims(),
            other_rsa.encoding_key(),
        )
        .unwrap(),
    )
    .unwrap();
    let jwks = vec![
        ClientKey::from_jwks_json(&json!({"keys": [other_rsa.public_jwk()]}).to_string())
            .unwrap()
            .remove(0),
    ];
    let kid = other_rsa.kid();
    let with_kid = |kid: &str| {
        Assertion::parse(&sign_with(
            Algorithm::RS256,
            &rsa(),
            Some(kid),
            &good_claims(),
        ))
        .unwrap()
    };
    let by_other_with_kid = {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.to_owned());
        Assertion::parse(
            &jsonwebtoken::encode(&h, &good_claims(), other_rsa.encoding_key()).unwrap(),
        )
        .unwrap()
    };
    let es = Assertion::parse(&sign_with(
        Algorithm::ES256,
        &ec(),
        Some("any"),
        &good_claims(),
    ))
    .unwrap();
    let kid_whatever = with_kid("whatever");
    let kid_unknown = with_kid("unknown");
    let cases: Vec<SignatureCase<'_>> = vec![
        (
            "certificate key, kid ignored",
            &kid_whatever,
            Algorithm::RS256,
            KeyChoice::Single(&cert),
            Ok(()),
        ),
        (
            "signed by another key",
            &signed_by_other,
            Algorithm::RS256,
            KeyChoice::Single(&cert),
            Err(AssertionError::Signature),
        ),
        (
            "JWKS key by kid",
            &by_other_with_kid,
            Algorithm::RS256,
            KeyChoice::Set(&jwks),
            Ok(()),
        ),
        (
            "JWKS without kid: first key of the family",
            &signed_by_other,
            Algorithm::RS256,
            KeyChoice::Set(&jwks),
            Ok(()),
        ),
        (
            "JWKS, unknown kid",
            &kid_unknown,
            Algorithm::RS256,
            KeyChoice::Set(&jwks),
            Err(AssertionError::KeyUnavailable),
        ),
        (
            "JWKS unreachable",
            &signed_by_other,
            Algorithm::RS256,
            KeyChoice::Unavailable,
            Err(AssertionError::KeyUnavailable),
        ),
        (
            "EC public key",
            &es,
            Algorithm::ES256,
            KeyChoice::Single(&ec_key),
            Ok(()),
        ),
        (
            "EC assertion against an RSA key",
            &es,
            Algorithm::ES256,
            KeyChoice::Single(&cert),
            Err(AssertionError::Signature),
        ),
    ];
    for (label, a, alg, keys, want) in cases {
        assert_eq!(check_signature(a, alg, keys), want, "{label}");
    }
}

#[test]
fn audience_cases() {
    let cases = [
        ("token endpoint", json!(TOKEN_URL), Ok(())),
        ("issuer", json!(ISSUER), Ok(())),
        ("issuer in a one-element list", json!([ISSUER]), Ok(())),
        (
            "another URL",
            json!("http://other/"),
            Err(AssertionError::Audience),
        ),
        ("none", Value::Null, Err(AssertionError::Audience)),
        (
            "issuer and token endpoint",
            json!([ISSUER, TOKEN_URL]),
            Err(AssertionError::MultipleAudiences),
        ),
    ];
    for (label, aud, want) in cases {
        let a = rs256(&with(json!({ "aud": aud })));
        assert_eq!(check_audience(&a, &allowed()), want, "{label}");
    }
}

#[test]
fn time_cases() {
    let cases = [
        ("fresh", json!({}), Ok(5)),
        (
            "no exp",
            json!({"exp": null}),
            Err(AssertionError::ExpMissing),
        ),
        (
            "expired beyond the skew",
            json!({"exp": NOW - 16}),
            Err(AssertionError::NotActive),
        ),
        (
            "expired within the skew, with iat",
            json!({"exp": NOW - 1, "iat": NOW - 5}),
            Err(AssertionError::NotActive),
        ),
        (
            "nbf beyond the skew",
            json!({"nbf": NOW + 16}),
            Err(AssertionError::NotActive),
        ),
        ("nbf within the skew", json!({"nbf": NOW + 15}), Ok(5)),
        (
            "iat in the future",
            json!({"iat": NOW + 16, "exp": NOW + 30}),
            Err(AssertionError::IssuedInFuture),
        ),
        (
            "iat older than max.exp",
            json!({"iat": NOW - 61, "exp": NOW + 30}),
            Err(AssertionError::IssuedTooLongAgo),
        ),
        (
            "long exp with iat: remembered for max.exp",
            json!({"exp": NOW + 3600}),
            Ok(60),
        ),
        (
            "no iat, exp too far",
            json!({"iat": null, "exp": NOW + 61}),
            Err(AssertionError::ExpTooFarWithoutIat),
        ),
        (
            "no iat, exp near",
            json!({"iat": null, "exp": NOW + 60}),
            Ok(60),
        ),
        (
            "absurdly large numbers do not overflow",
            json!({"iat": 1e300, "exp": 1e300, "nbf": -1e300}),
            Err(AssertionError::IssuedInFuture),
        ),
        (
            "absurdly small numbers do not overflow",
            json!({"iat": -1e300, "exp": 1e300}),
            Err(AssertionError::IssuedTooLongAgo),
        ),
    ];
    for (label, changes, want) in cases {
        let a = rs256(&with(changes));
        assert_eq!(check_times(&a, NOW, 60), want, "{label}");
    }
}

#[test]
fn an_assertion_never_prints_its_token() {
    let raw = sign_with(Algorithm::RS256, &rsa(), None, &good_claims());
    let shown = format!("{:?}", Assertion::parse(&raw).unwrap());
    assert!(!shown.contains(&raw[..20]), "{shown}");
    assert!(shown.contains("jti-1"), "{shown}");
}

#[test]
fn a_jti_is_single_use_while_its_assertion_could_be_used() {
    let mut jtis = UsedJtis::default();
    let a = rs256(&good_claims());
    assert_eq!(jtis.check_and_record(&a, NOW, 30), Ok(()));
    assert_eq!(
        jtis.check_and_record(&a, NOW + 1, 30),
        Err(AssertionError::Replayed)
    );
    assert_eq!(
        jtis.check_and_record(&a, NOW + 30, 30),
        Err(AssertionError::Replayed)
    );
    assert_eq!(jtis.check_and_record(&a, NOW + 31, 30), Ok(()), "forgotten");
    let other = rs256(&with(json!({"jti": "jti-2"})));
    assert_eq!(jtis.check_and_record(&other, NOW + 31, 30), Ok(()));
    let none = rs256(&with(json!({"jti": null})));
    assert_eq!(
        jtis.check_and_record(&none, NOW, 30),
        Err(AssertionError::JtiMissing)
    );
}
