//! The simulation's own tests: determinism (a seed twice, the same trace hash), the
//! regressions folder, and a bounded sweep of seeds.

use super::*;

fn small(seed: u64) -> Options {
    Options {
        seed,
        users: 4,
        steps: 60,
        replicas: 2,
        faults: true,
    }
}

fn assert_holds(report: &Report) {
    if let Some(v) = &report.violation {
        panic!("{}", v.render(&report.options));
    }
}

#[test]
fn one_seed_run_twice_gives_the_same_trace_hash() {
    let options = small(7);
    let first = run(&options).expect("the simulation runs");
    let second = run(&options).expect("the simulation runs");
    assert_holds(&first);
    assert!(first.requests > 100, "the run did something: {first:?}");
    assert!(first.logins > 0, "users logged in: {first:?}");
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.trace_lines, second.trace_lines);
    assert_eq!(first.requests, second.requests);
    let other = run(&small(8)).expect("the simulation runs");
    assert_ne!(
        first.trace_hash, other.trace_hash,
        "another seed, another trace"
    );
}

#[test]
fn every_regression_case_now_holds() {
    let cases = regressions::load(&regressions::folder()).expect("the regressions folder");
    assert!(!cases.is_empty(), "the folder has cases");
    for (path, case) in cases {
        let report = run(&case.options()).expect("the simulation runs");
        if let Some(v) = &report.violation {
            panic!("{}: {}", path.display(), v.render(&report.options));
        }
    }
}

/// Short runs over many seeds: every seed must hold every invariant. 200 by default: on
/// Tokio's paused clock, with mock-idp signing through ring, a short run costs about 0.1 s
/// of CPU in the dev build and sleeps no wall time, so the sweep stays under a minute on a
/// loaded machine (README, "Simulation"); `SIM_SWEEP_SEEDS=N` runs more or fewer.
#[test]
fn a_bounded_sweep_of_seeds_holds_every_invariant() {
    let seeds: u64 = std::env::var("SIM_SWEEP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut requests = 0;
    for seed in 1000..1000 + seeds {
        let report = run(&Options {
            seed,
            users: 3,
            steps: 25,
            replicas: 2,
            faults: true,
        })
        .expect("the simulation runs");
        assert_holds(&report);
        requests += report.requests;
    }
    assert!(
        requests > seeds * 20,
        "the sweep simulated requests: {requests}"
    );
}
