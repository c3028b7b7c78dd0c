//! Nothing the harness starts survives a failed run: a scenario on oidc-provider (node),
//! Caddy, a Redis container and a real browser fails at a step, and afterwards every PID and
//! container id the harness recorded is gone. Its own test binary, so the process-wide
//! record holds only this run's children.

use std::path::{Path, PathBuf};

use harness::cleanup::{process_alive, recorded_containers, recorded_pids};
use harness::scenario::{RunOptions, run_file};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(
        || PathBuf::from("../scenarios"),
        |root| root.join("scenarios"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_leaves_no_process_or_container_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenarios = scenarios_dir();
    let file = dir.path().join("fails-after-login.yaml");
    let scenario = format!(
        r#"name: fails-after-login
snapshot: false
stack:
  login: browser
  idp: oidc-provider
  gateway: caddy
  redis: container
  realm: {realm}
  manifest: {manifest}
steps:
  - name: redirected
    request: {{method: POST, path: /openai, headers: {{content-type: application/json}}, body: "{{}}"}}
    expect: {{status: 302}}
  - name: log in
    login: {{user: user1, password: password}}
  - name: a step that fails
    request: {{method: POST, path: /openai, use_cookie: true, headers: {{content-type: application/json}}, body: "{{}}"}}
    expect: {{status: 418}}
"#,
        realm = scenarios.join("realms/master.json").display(),
        manifest = scenarios
            .join("manifests/seed-authorization-code.yaml")
            .display(),
    );
    std::fs::write(&file, scenario).expect("scenario written");

    let report = run_file(&file, &RunOptions::default()).await;
    let (step, problems) = report.failure.expect("the scenario fails");
    assert_eq!(step, "a step that fails", "{problems:?}");

    let pids = recorded_pids();
    // Redis is a container here: checked below.
    for what in ["caddy", "node oidc-provider", "chromium"] {
        assert!(
            pids.iter().any(|(w, _)| w == what),
            "no {what} PID recorded: {pids:?}"
        );
    }
    let alive: Vec<_> = pids.iter().filter(|(_, pid)| process_alive(*pid)).collect();
    assert!(alive.is_empty(), "still running after the run: {alive:?}");

    let containers = recorded_containers();
    assert!(!containers.is_empty(), "no container recorded");
    for id in &containers {
        assert!(
            !harness::docker::container_exists(id).expect("the engine answers"),
            "container {id} survived the run"
        );
    }
}
