use std::path::{Path, PathBuf};

use super::*;

fn realm_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/realms/master.json")
}

fn setup(dir: &Path) -> IdpSetup {
    IdpSetup {
        realm_file: realm_file(),
        client_id: "gateway".to_owned(),
        redirect_uris: Vec::new(),
        dir: dir.to_path_buf(),
    }
}

#[test]
fn a_missing_mock_idp_image_is_one_line_naming_the_fix() {
    let err = IdpError::from(DockerError::NoImage {
        image: format!("{MOCK_IDP_IMAGE}:{MOCK_IDP_TAG}"),
        hint: "build it with `just images`".to_owned(),
    });
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.starts_with("mock-container: image mock-idp:latest is not present"));
    assert!(text.ends_with("build it with `just images`"), "{text}");
}

#[test]
fn no_docker_engine_is_one_line_naming_just_docker_up() {
    let err = IdpError::from(DockerError::NoEngine {
        socket: "/nonexistent/docker.sock".to_owned(),
        reason: "No such file or directory".to_owned(),
    });
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.starts_with("mock-container: no Docker engine answers"));
    assert!(text.contains("just docker-up"), "{text}");
}

#[tokio::test]
async fn the_mock_idp_container_serves_discovery_and_admin_and_is_gone_after_stop() {
    // Needs a Docker engine and the local image: `just test` starts and builds them
    // (`just docker-up images` by hand); without them this fails and says which is missing.
    if let Err(e) = docker::image(&format!("{MOCK_IDP_IMAGE}:{MOCK_IDP_TAG}"), "just images") {
        panic!("this test runs the mock-idp container: {e}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let realm = mock_idp::Realm::from_file(realm_file()).expect("realm file");
    let idp = RunningIdp::start(&IdpMode::MockContainer, realm, &setup(dir.path()))
        .await
        .expect("the container starts");
    assert_eq!(idp.name(), "mock-container");
    let base = idp.base_url();
    assert!(base.starts_with("http://localhost:"), "{base}");
    let id = idp.container_id().expect("a container id");
    assert!(crate::cleanup::recorded_containers().contains(&id));

    let client = reqwest::Client::new();
    let discovery: serde_json::Value = client
        .get(format!(
            "{base}/realms/master/.well-known/openid-configuration"
        ))
        .send()
        .await
        .expect("discovery answers")
        .json()
        .await
        .expect("discovery is JSON");
    assert_eq!(
        discovery["issuer"].as_str(),
        Some(format!("{base}/realms/master").as_str())
    );
    // Host networking: the harness is a loopback peer, so the admin API answers it.
    let admin = client
        .get(format!("{base}/admin/mock/faults"))
        .send()
        .await
        .expect("admin answers");
    assert_eq!(admin.status().as_u16(), 200, "the admin API refused us");

    idp.stop().await;
    assert_eq!(docker::container_exists(&id), Ok(false));
}
