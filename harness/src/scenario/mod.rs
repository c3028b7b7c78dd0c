//! Scenarios: YAML files that describe a regression run against the stack, and their runner.
//!
//! A scenario names a stack (login driver, session store, ...), then steps: `request` steps
//! to the gateway with expectations on the status, the redirect `location` and its `state`
//! JWT, the body and what the upstream LLM received (down to verifying the ID token against
//! the IdP's JWKS); `login` steps that fill the IdP's form with a browser or plain HTTP;
//! `redis` steps that stop or restart the session store; and `extauth` steps that kill or
//! restart one of the stack's extauth replicas (`stack.replicas`). See [`model`] for the
//! format.
//!
//! The runner builds a fresh stack per scenario, prints each step as it goes, stops at the
//! first failing step with the expected and actual values, and compares the redacted
//! transcript with an insta snapshot in `scenarios/snapshots/`. Nothing it prints carries a
//! secret: see [`transcript`] for the redaction.

use std::path::{Path, PathBuf};

pub mod checks;
pub mod model;
pub mod runner;
pub mod snapshot;
pub mod transcript;

pub use model::{Action, Scenario, Step};
pub use runner::{
    RunOptions, ScenarioReport, run_file, run_file_all, run_paths, run_scenario, run_scenario_on,
    snapshot_name,
};

use model::{IdpAdminExpect, IdpLogoutExpect, LoginExpect, RawScenario, RequestExpect};

/// The longest `pause_ms` step: scenarios stay bounded.
pub const MAX_PAUSE_MS: u64 = 60_000;

/// Why a scenario file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid YAML or not the format.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A step is not well formed.
    #[error("{path}: step {index} ({step:?}): {reason}")]
    Step {
        /// The file.
        path: PathBuf,
        /// 1-based step number.
        index: usize,
        /// The step's name.
        step: String,
        /// What is wrong.
        reason: String,
    },
    /// A folder could not be listed.
    #[error("cannot list {path}: {source}")]
    List {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str(path, &text)
    }

    /// Validates scenario text; `path` names it in messages and anchors relative paths.
    pub fn from_str(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario = yaml_serde::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        check_stack(&raw.stack).map_err(|message| ScenarioError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let mut steps = Vec::with_capacity(raw.steps.len());
        for (i, step) in raw.steps.into_iter().enumerate() {
            let fail = |reason: String| ScenarioError::Step {
                path: path.to_owned(),
                index: i + 1,
                step: step.name.clone(),
                reason,
            };
            let action = match (step.request.clone(), step.login.clone(), step.redis) {
                _ if step.pause_ms.is_some() => {
                    let others = step.request.is_some()
                        || step.login.is_some()
                        || step.redis.is_some()
                        || step.extauth.is_some()
                        || step.idp_admin.is_some()
                        || step.idp_logout.is_some();
                    if others || step.expect.is_some() {
                        return Err(fail(
                            "a `pause_ms` step takes nothing else (no action, no expect)".into(),
                        ));
                    }
                    match step.pause_ms {
                        Some(ms @ 1..=MAX_PAUSE_MS) => {
                            Action::Pause(std::time::Duration::from_millis(ms))
                        }
                        other => {
                            return Err(fail(format!(
                                "pause_ms: expected 1 to {MAX_PAUSE_MS}, got {}",
                                other.unwrap_or_default()
                            )));
                        }
                    }
                }
                _ if step.idp_logout.is_some() => {
                    let (Some(logout), None, None, None, None, None) = (
                        step.idp_logout.clone(),
                        &step.request,
                        &step.login,
                        step.redis,
                        step.extauth,
                        &step.idp_admin,
                    ) else {
                        return Err(fail(ONE_ACTION.into()));
                    };
                    let expect: IdpLogoutExpect = typed_expect(step.expect.clone())
                        .map_err(|e| fail(format!("expect: {e}")))?;
                    Action::IdpLogout(logout, expect)
                }
                _ if step.idp_admin.is_some() => {
                    let (Some(admin), None, None, None, None) = (
                        step.idp_admin.clone(),
                        &step.request,
                        &step.login,
                        step.redis,
                        step.extauth,
                    ) else {
                        return Err(fail(ONE_ACTION.into()));
                    };
                    let expect: IdpAdminExpect = typed_expect(step.expect.clone())
                        .map_err(|e| fail(format!("expect: {e}")))?;
                    Action::IdpAdmin(admin, expect)
                }
                (None, None, None) if step.extauth.is_some() => {
                    let action = step
                        .extauth
                        .ok_or_else(|| fail(ONE_ACTION.into()))?
                        .action()
                        .map_err(fail)?;
                    if step.expect.is_some() {
                        return Err(fail("an extauth step takes no expect".into()));
                    }
                    check_replica(action, raw.stack.replicas).map_err(fail)?;
                    Action::Extauth(action)
                }
                _ if step.extauth.is_some() => return Err(fail(ONE_ACTION.into())),
                (Some(request), None, None) => {
                    let expect: RequestExpect = typed_expect(step.expect.clone())
                        .map_err(|e| fail(format!("expect: {e}")))?;
                    Action::Request(request, Box::new(expect))
                }
                (None, Some(login), None) => {
                    let expect = login_expect(step.expect.clone())
                        .map_err(|e| fail(format!("expect: {e}")))?;
                    Action::Login(login, expect)
                }
                (None, None, Some(redis)) => {
                    if step.expect.is_some() {
                        return Err(fail("a redis step takes no expect".into()));
                    }
                    Action::Redis(redis)
                }
                _ => return Err(fail(ONE_ACTION.into())),
            };
            steps.push(Step {
                name: step.name,
                action,
            });
        }
        if steps.is_empty() {
            return Err(ScenarioError::Parse {
                path: path.to_owned(),
                message: "no steps".into(),
            });
        }
        Ok(Self {
            name: raw.name,
            description: raw.description,
            stack: raw.stack,
            snapshot: raw.snapshot,
            steps,
            path: path.to_owned(),
        })
    }
}

/// What a step that is none or several of the kinds is told.
const ONE_ACTION: &str = "expected exactly one of `request`, `login`, `redis`, `extauth`, `idp_admin`, `idp_logout`, `pause_ms`";

/// `stack:` fields that only make sense together.
fn check_stack(stack: &model::StackSpec) -> Result<(), String> {
    let Some(replicas) = stack.replicas else {
        return Ok(());
    };
    if !(1..=crate::extauth::MAX_REPLICAS).contains(&replicas) {
        return Err(format!(
            "stack.replicas: expected 1 to {}, got {replicas}",
            crate::extauth::MAX_REPLICAS
        ));
    }
    if replicas > 1 && stack.redis.0.contains(&model::RedisBackend::Memory) {
        return Err(format!(
            "stack.replicas: {replicas} replicas share sessions through Redis; `redis: memory` keeps them per process"
        ));
    }
    Ok(())
}

/// An `extauth` step names a replica the stack runs.
fn check_replica(action: model::ExtauthAction, replicas: Option<u16>) -> Result<(), String> {
    let index = action.replica();
    match replicas {
        None => Err(format!(
            "extauth: replica {index}: extauth steps need `stack.replicas: N` (without it extauth runs inside the harness and cannot be killed)"
        )),
        Some(n) if index >= usize::from(n) => Err(format!(
            "extauth: replica {index} does not exist: stack.replicas is {n} (replicas 0 to {})",
            n - 1
        )),
        Some(_) => Ok(()),
    }
}

/// A login step's `expect`: `expect: invalid_credentials` is short for
/// `{outcome: invalid_credentials}`, and `{callback_rejected: {status: N}}` implies
/// `outcome: callback_rejected`.
fn login_expect(value: Option<yaml_serde::Value>) -> Result<LoginExpect, String> {
    let value = match value {
        Some(yaml_serde::Value::String(outcome)) => {
            let mut map = yaml_serde::Mapping::new();
            map.insert("outcome".into(), yaml_serde::Value::String(outcome));
            Some(yaml_serde::Value::Mapping(map))
        }
        Some(yaml_serde::Value::Mapping(mut map)) if map.contains_key("callback_rejected") => {
            match map.get("outcome").and_then(yaml_serde::Value::as_str) {
                None if !map.contains_key("outcome") => {
                    map.insert("outcome".into(), "callback_rejected".into());
                }
                Some("callback_rejected") => {}
                _ => {
                    return Err(
                        "`callback_rejected` goes with `outcome: callback_rejected` (or no outcome)"
                            .into(),
                    );
                }
            }
            Some(yaml_serde::Value::Mapping(map))
        }
        other => other,
    };
    typed_expect(value)
}

fn typed_expect<T: serde::de::DeserializeOwned + Default>(
    value: Option<yaml_serde::Value>,
) -> Result<T, String> {
    match value {
        None | Some(yaml_serde::Value::Null) => Ok(T::default()),
        Some(v) => yaml_serde::from_value(v).map_err(|e| e.to_string()),
    }
}

/// The scenario files at `paths`: files as given, folders as their `*.yaml` (sorted, not
/// recursive).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| ScenarioError::List {
                path: path.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
