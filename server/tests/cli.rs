//! `extauth validate` as a user runs it: the binary, the guide's manifests, environment
//! variables set or not.

use std::process::Command;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/seed-step2.yaml"
);
const HARNESS_MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scenarios/manifests/seed-authorization-code.yaml"
);

fn validate(files: &[&str], vars: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_extauth"));
    cmd.arg("validate").env_clear();
    for f in files {
        cmd.args(["--config", f]);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("run extauth");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

const GUIDE_VARS: [(&str, &str); 4] = [
    ("KEYCLOAK_SECRET", "s3cr3t"),
    ("KEYCLOAK_CLIENT", "a3417aca-4214-4296-8664-482f159b2fac"),
    ("KEYCLOAK_URL", "http://172.18.0.16:8080"),
    ("INGRESS_GW_ADDRESS", "172.18.0.4"),
];

#[test]
fn the_guides_manifests_are_accepted() {
    let (ok, out) = validate(&[FIXTURE], &GUIDE_VARS);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "AuthConfig agentgateway-system/oauth-authorization-code: ACCEPTED"
    );
}

#[test]
fn the_harness_manifests_are_accepted_and_the_policy_is_skipped() {
    let mut vars = GUIDE_VARS.to_vec();
    vars.extend([("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", "6379")]);
    let (ok, out) = validate(&[HARNESS_MANIFEST], &vars);
    assert!(ok, "{out}");
    assert!(
        out.contains("AuthConfig agentgateway-system/oauth-authorization-code: ACCEPTED"),
        "{out}"
    );
    assert!(
        out.contains(
            "skipped EnterpriseAgentgatewayPolicy agentgateway-system/oauth-authorization-code"
        ),
        "{out}"
    );
}

#[test]
fn an_unset_secret_variable_is_rejected_by_name() {
    let (ok, out) = validate(&[FIXTURE], &GUIDE_VARS[1..]);
    assert!(!ok, "{out}");
    assert!(
        out.starts_with("AuthConfig agentgateway-system/oauth-authorization-code: REJECTED: "),
        "{out}"
    );
    assert!(
        out.contains("`${KEYCLOAK_SECRET}` was not substituted"),
        "{out}"
    );
}

#[test]
fn a_missing_file_and_a_leftover_placeholder_are_rejected() {
    let (ok, out) = validate(&["/nonexistent/seed.yaml"], &GUIDE_VARS);
    assert!(!ok);
    assert!(
        out.starts_with("REJECTED: cannot read /nonexistent/seed.yaml"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.yaml");
    let text = std::fs::read_to_string(FIXTURE).unwrap().replace(
        "namespace: agentgateway-system\ntype",
        "namespace: {{< reuse \"docs/snippets/namespace.md\" >}}\ntype",
    );
    std::fs::write(&path, text).unwrap();
    let (ok, out) = validate(&[path.to_str().unwrap()], &GUIDE_VARS);
    assert!(!ok);
    assert!(out.contains("is a placeholder from the guide"), "{out}");
}

#[test]
fn secret_and_auth_config_may_come_from_separate_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let mut parts = text.split("\n---\n");
    let (secret, auth) = (parts.next().unwrap(), parts.next().unwrap());
    let (a, b) = (
        dir.path().join("secret.yaml"),
        dir.path().join("authconfig.yaml"),
    );
    std::fs::write(&a, secret).unwrap();
    std::fs::write(&b, auth).unwrap();
    let (ok, out) = validate(&[b.to_str().unwrap(), a.to_str().unwrap()], &GUIDE_VARS);
    assert!(ok, "{out}");
}

const EVERY_FIELD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/every-field.yaml"
);
const SOLO_CURRENT_FORM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/solo-current-form.yaml"
);

#[test]
fn the_every_field_fixture_is_accepted_whole() {
    let (ok, out) = validate(
        &[EVERY_FIELD],
        &[("SIGNING_KEY", "an-every-field-signing-key-of-32-bytes")],
    );
    assert!(ok, "{out}");
    let accepted: Vec<&str> = out.lines().filter(|l| l.ends_with(": ACCEPTED")).collect();
    assert_eq!(
        accepted,
        [
            "AuthConfig agentgateway-system/every-field: ACCEPTED",
            "AuthConfig agentgateway-system/every-field-client-secret: ACCEPTED",
            "AuthConfig agentgateway-system/every-field-public-client: ACCEPTED",
            "AuthConfig agentgateway-system/every-field-deprecated: ACCEPTED",
            "AuthConfig agentgateway-system/every-field-deprecated-public: ACCEPTED",
        ],
        "{out}"
    );
}

#[test]
fn solos_current_form_of_the_guides_manifests_is_accepted() {
    let (ok, out) = validate(&[SOLO_CURRENT_FORM], &GUIDE_VARS);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "AuthConfig agentgateway-system/oauth-authorization-code: ACCEPTED"
    );
}
