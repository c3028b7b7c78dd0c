use super::*;

fn any(_: &FaultKind) -> bool {
    true
}

#[test]
fn a_once_fault_acts_once_and_a_sticky_fault_keeps_acting() {
    let faults = Faults::default();
    faults.add(Fault::once(FaultKind::IdTokenNonce)).unwrap();
    faults.add(Fault::sticky(FaultKind::IdTokenIssuer)).unwrap();
    assert_eq!(
        faults.take("master", None, any),
        vec![FaultKind::IdTokenNonce, FaultKind::IdTokenIssuer]
    );
    assert_eq!(
        faults.take("master", None, any),
        vec![FaultKind::IdTokenIssuer]
    );
    assert_eq!(faults.list()[0].hits, 2);
}

#[test]
fn realm_and_client_filters_restrict_where_a_fault_acts() {
    let cases = [
        (
            "any realm, any client",
            Fault::sticky(FaultKind::StateAltered),
            "r",
            Some("c"),
            true,
        ),
        (
            "same realm",
            Fault::sticky(FaultKind::StateAltered).in_realm("r"),
            "r",
            None,
            true,
        ),
        (
            "other realm",
            Fault::sticky(FaultKind::StateAltered).in_realm("x"),
            "r",
            None,
            false,
        ),
        (
            "same client",
            Fault::sticky(FaultKind::StateAltered).for_client("c"),
            "r",
            Some("c"),
            true,
        ),
        (
            "other client",
            Fault::sticky(FaultKind::StateAltered).for_client("c"),
            "r",
            Some("d"),
            false,
        ),
        (
            "client filter, client unknown",
            Fault::sticky(FaultKind::StateAltered).for_client("c"),
            "r",
            None,
            false,
        ),
    ];
    for (label, fault, realm, client, acts) in cases {
        let faults = Faults::default();
        faults.add(fault).unwrap();
        assert_eq!(!faults.take(realm, client, any).is_empty(), acts, "{label}");
    }
}

#[test]
fn faults_that_do_not_match_the_predicate_are_left_alone() {
    let faults = Faults::default();
    faults
        .add(Fault::once(FaultKind::UserinfoSubMismatch))
        .unwrap();
    assert!(
        faults
            .take("r", None, FaultKind::is_id_token_fault)
            .is_empty()
    );
    assert_eq!(faults.list().len(), 1);
}

#[test]
fn faults_parse_from_their_flat_json_form() {
    let cases = [
        (
            r#"{"kind":"id_token_issuer"}"#,
            Fault::once(FaultKind::IdTokenIssuer),
        ),
        (
            r#"{"kind":"latency","endpoint":"token","ms":5,"max_ms":9,"mode":"sticky","realm":"m"}"#,
            Fault::sticky(FaultKind::Latency {
                endpoint: Endpoint::Token,
                ms: 5,
                max_ms: Some(9),
            })
            .in_realm("m"),
        ),
        (
            r#"{"kind":"status","endpoint":"jwks","status":503,"client":"c"}"#,
            Fault::once(FaultKind::Status {
                endpoint: Endpoint::Jwks,
                status: 503,
            })
            .for_client("c"),
        ),
    ];
    for (json, want) in cases {
        let got: Fault = serde_json::from_str(json).unwrap();
        assert_eq!(got, want, "{json}");
        let back: Fault = serde_json::from_value(serde_json::to_value(&got).unwrap()).unwrap();
        assert_eq!(back, want, "round trip of {json}");
    }
}

#[test]
fn unusable_fault_values_are_refused() {
    let faults = Faults::default();
    let status = Fault::once(FaultKind::Status {
        endpoint: Endpoint::Token,
        status: 200,
    });
    assert_eq!(faults.add(status), Err(FaultError::Status(200)));
    let range = Fault::once(FaultKind::Latency {
        endpoint: Endpoint::Token,
        ms: 10,
        max_ms: Some(5),
    });
    assert!(matches!(faults.add(range), Err(FaultError::Range { .. })));
}

#[test]
fn paths_are_classified_by_realm_and_endpoint() {
    let cases = [
        (
            "/realms/master/.well-known/openid-configuration",
            Some("master"),
            Endpoint::Discovery,
        ),
        (
            "/realms/master/protocol/openid-connect/certs",
            Some("master"),
            Endpoint::Jwks,
        ),
        (
            "/realms/a%20b/protocol/openid-connect/token",
            Some("a b"),
            Endpoint::Token,
        ),
        (
            "/realms/m/protocol/openid-connect/token/introspect",
            Some("m"),
            Endpoint::Introspect,
        ),
        (
            "/realms/m/login-actions/authenticate",
            Some("m"),
            Endpoint::Login,
        ),
        ("/health/ready", None, Endpoint::Other),
    ];
    for (path, realm, endpoint) in cases {
        let (r, e) = Endpoint::classify(path);
        assert_eq!((r.as_deref(), e), (realm, endpoint), "{path}");
    }
}

#[test]
fn no_operational_fault_acts_on_the_outgoing_backchannel_logout_calls() {
    let faults = Faults::default();
    let fault = Fault::once(FaultKind::Status {
        endpoint: Endpoint::BackchannelLogout,
        status: 503,
    });
    assert_eq!(faults.add(fault), Err(FaultError::OutgoingEndpoint));
    assert!(faults.list().is_empty());
}
