//! `harness run --gateway-url … --idp-url …` against a stack it did not start: `harness up`
//! runs in another process (its URLs read from `--env-file`), the seed scenario runs against
//! it as a URL target, and what needs the stack's insides (what the LLM received) is reported
//! as not checkable instead of failing. `harness up` is then stopped with SIGINT, by PID.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(
        || PathBuf::from("../scenarios"),
        |root| root.join("scenarios"),
    )
}

/// Stops `harness up` on drop (SIGINT by PID, then SIGKILL), so a failed assertion leaks
/// nothing.
struct Up(std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `harness run` of `scenario` (under `scenarios/`) against a URL target: (success, stdout).
fn run_against(gateway_url: &str, idp_url: &str, scenario: &str) -> (bool, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "--gateway-url", gateway_url, "--idp-url", idp_url])
        .args(["--user", "user1", "--password", "password"])
        .arg(scenarios_dir().join(scenario))
        .output()
        .expect("harness run runs");
    (
        run.status.success(),
        String::from_utf8_lossy(&run.stdout).into_owned(),
    )
}

#[test]
fn the_seed_scenario_passes_against_a_stack_started_separately_by_harness_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("up.env");
    let up = Up(Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["up", "--redis", "process", "--env-file"])
        .arg(&env_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("harness up starts"));
    let started = Instant::now();
    let vars = loop {
        let text = std::fs::read_to_string(&env_file).unwrap_or_default();
        if text.contains("GATEWAY_URL=") && text.contains("IDP_URL=") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "harness up wrote no env file"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let var = |name: &str| {
        vars.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    };

    let (ok, stdout) = run_against(
        &var("GATEWAY_URL"),
        &var("IDP_URL"),
        "seed-authorization-code.yaml",
    );
    assert!(ok, "harness run failed:\n{stdout}");
    for seen in [
        "✓ 3.1 an unauthenticated POST is redirected to Keycloak",
        "✓ 3.2 log in to Keycloak in the browser as user1",
        "✓ 3.5 the POST with the cookie reaches the LLM",
        "what the LLM received: not checkable against a URL target (skipped)",
        "PASS   seed-authorization-code  url target",
    ] {
        assert!(stdout.contains(seen), "missing {seen:?} in:\n{stdout}");
    }

    // A scenario that drives the mock IdP's admin API is skipped, with the reason, when the
    // target's IdP is not mock-idp (here: the upstream stands in for someone's Keycloak).
    let (ok, stdout) = run_against(
        &var("GATEWAY_URL"),
        &var("UPSTREAM_URL"),
        "conformance/id-token-nonce.yaml",
    );
    assert!(ok, "a skip is not a failure:\n{stdout}");
    assert!(
        stdout.contains("uses the mock IdP's admin API, which")
            && stdout.contains("scenarios: 0 passed, 0 failed, 1 skipped"),
        "{stdout}"
    );
    drop(up);
}
