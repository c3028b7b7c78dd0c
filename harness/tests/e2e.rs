//! End to end: every `scenarios/*.yaml` through the runner on its own fresh stack (real
//! Redis, real Chromium, the gRPC gateway simulator by default and every gateway a scenario
//! declares in the matrix tests, in-process extauth and mock IdP; two `extauth serve`
//! processes where a scenario sets `stack.replicas`, which needs the binary:
//! `cargo build -p harness -p extauth`, done by `just test-e2e` and `cargo test --workspace`).
//! `just test-e2e` runs this file. Each known scenario has its own test; any other file in
//! the folder is run by `other_scenario_files_pass`, so a new file is never skipped.

use std::path::{Path, PathBuf};

use harness::scenario::{RunOptions, run_file};
use harness::watchdog::{Watchdog, arm};

/// Far above what a test takes (the whole file runs in about six minutes here): past it, the
/// process reports what is in flight and exits instead of holding CI until its limit.
fn watchdog(test: &str) -> Watchdog {
    arm(
        std::time::Duration::from_secs(20 * 60),
        &format!("e2e test {test}"),
    )
}

/// Scenario files that have their own test below.
const OWN_TESTS: &[&str] = &[
    "seed-authorization-code.yaml",
    "seed-authorization-code-http-driver.yaml",
    "wrong-password.yaml",
];

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(
        || PathBuf::from("../scenarios"),
        |root| root.join("scenarios"),
    )
}

async fn passes(file: &Path) {
    let report = run_file(file, &RunOptions::default()).await;
    if let Some((step, problems)) = &report.failure {
        panic!(
            "scenario {} failed at step {step:?}:\n  {}",
            file.display(),
            problems.join("\n  ")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_authorization_code_with_the_browser() {
    let _watchdog = watchdog("seed_authorization_code_with_the_browser");
    passes(&scenarios_dir().join("seed-authorization-code.yaml")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_authorization_code_with_the_http_driver() {
    let _watchdog = watchdog("seed_authorization_code_with_the_http_driver");
    passes(&scenarios_dir().join("seed-authorization-code-http-driver.yaml")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password() {
    let _watchdog = watchdog("wrong_password");
    passes(&scenarios_dir().join("wrong-password.yaml")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_scenario_files_pass() {
    let _watchdog = watchdog("other_scenario_files_pass");
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !OWN_TESTS.contains(&n))
        })
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for file in &files {
        let report = run_file(file, &RunOptions::default()).await;
        if let Some((step, problems)) = report.failure {
            failed.push(format!(
                "{} at {step:?}: {}",
                file.display(),
                problems.join("; ")
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n")
    );
}

/// The OpenID RP-certification faults, one file each in `scenarios/conformance/`, driven
/// through the mock IdP's admin API (`idp_admin` steps), on every backend each declares:
/// the simulator and agentgateway itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_scenarios_pass() {
    let _watchdog = watchdog("conformance_scenarios_pass");
    let dir = scenarios_dir().join("conformance");
    // One row at a time: the matrix test runs two beside it.
    let options = RunOptions {
        matrix: true,
        ..RunOptions::default()
    };
    let reports = harness::scenario::run_paths(std::slice::from_ref(&dir), &options)
        .await
        .expect("scenarios/conformance/ is readable");
    assert!(!reports.is_empty(), "no scenarios in {}", dir.display());
    println!("{}", harness::cli::results_table(&reports));
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let (step, problems) = r.failure.clone().unwrap_or_default();
            format!(
                "{} [{}] at {step:?}: {}",
                r.name,
                r.backends,
                problems.join("; ")
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "failed conformance rows:\n{}",
        failed.join("\n")
    );
    assert!(
        reports
            .iter()
            .any(|r| r.backends.contains("gateway=agentgateway") && r.skipped.is_none()),
        "no conformance row ran on agentgateway"
    );
}

/// `idp_admin` steps on the mock IdP's container (`mock-container`): with host networking
/// the harness is a loopback peer, so the admin API answers it as the in-process mock does.
/// Needs a Docker engine with `mock-idp:latest` (`just docker-up images`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_admin_steps_work_on_the_mock_idp_container() {
    let _watchdog = watchdog("idp_admin_steps_work_on_the_mock_idp_container");
    let file = scenarios_dir().join("conformance/signing-key-rotated.yaml");
    let options = RunOptions {
        matrix: true,
        ..RunOptions::default()
    };
    let reports = harness::scenario::run_file_all(&file, &options).await;
    let row = reports
        .iter()
        .find(|r| r.backends.contains("idp=mock-container"))
        .expect("the scenario declares idp: mock-container");
    assert_eq!(row.skipped, None, "skipped");
    assert_eq!(row.failure, None, "failed");
}

/// Every scenario on every backend combination it declares (`harness run --matrix`): the
/// mock IdP (in-process and as the `mock-idp:latest` container) and oidc-provider; the
/// simulator, agentgateway (whose transcripts must equal the simulator's), Caddy and nginx;
/// Redis as a process, as a testcontainers container, TLS-only, Sentinel (failovers, master
/// kills) and Cluster; one extauth in process and two `extauth serve` replicas. Keycloak rows
/// are skipped with their reason in one line when the image is absent. Needs a Docker engine
/// with `redis:7` and `mock-idp:latest` (`just docker-up images`), nginx, and the
/// agentgateway binary (`../shared/bin/agentgateway` or on PATH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_on_every_declared_backend() {
    let _watchdog = watchdog("every_scenario_passes_on_every_declared_backend");
    // Two rows at a time, as `harness run --matrix` does on two CPUs: rows share nothing.
    let options = RunOptions {
        matrix: true,
        jobs: 2,
        ..RunOptions::default()
    };
    let reports = harness::scenario::run_paths(&[scenarios_dir()], &options)
        .await
        .expect("scenarios/ is readable");
    println!("{}", harness::cli::results_table(&reports));
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            let (step, problems) = r.failure.clone().unwrap_or_default();
            format!(
                "{} [{}] at {step:?}: {}",
                r.name,
                r.backends,
                problems.join("; ")
            )
        })
        .collect();
    assert!(failed.is_empty(), "failed rows:\n{}", failed.join("\n"));
    for backend in [
        "idp=mock-container",
        "idp=oidc-provider",
        "gateway=caddy",
        "gateway=nginx",
        "gateway=agentgateway",
        "redis=container",
        "redis=process",
        "extauth=2",
        "redis=tls",
        "redis=sentinel",
        "redis=cluster",
    ] {
        assert!(
            reports
                .iter()
                .any(|r| r.backends.contains(backend) && r.skipped.is_none()),
            "no row ran with {backend}"
        );
    }
}

#[test]
fn every_named_scenario_file_exists() {
    for name in OWN_TESTS {
        assert!(
            scenarios_dir().join(name).is_file(),
            "scenarios/{name} is missing"
        );
    }
}
