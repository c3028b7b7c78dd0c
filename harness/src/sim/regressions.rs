//! The regressions folder (`harness/sim-regressions/*.yaml`): each file is a seed and its
//! options, with what it found and the commit that fixed it; `cargo test` replays them all
//! and every one must now hold its invariants.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use super::Options;

/// One regression case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub seed: u64,
    #[serde(default = "default_users")]
    pub users: usize,
    #[serde(default = "default_steps")]
    pub steps: usize,
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    #[serde(default = "default_faults")]
    pub faults: bool,
    /// What the seed found (the invariant, and how).
    pub found: String,
    /// The commit that fixed it, if the finding was a bug.
    #[serde(default)]
    pub fixed_by: Option<String>,
}

fn default_users() -> usize {
    8
}
fn default_steps() -> usize {
    300
}
fn default_replicas() -> usize {
    2
}
fn default_faults() -> bool {
    true
}

impl Case {
    pub fn options(&self) -> Options {
        Options {
            seed: self.seed,
            users: self.users,
            steps: self.steps,
            replicas: self.replicas,
            faults: self.faults,
        }
    }
}

/// The folder, beside the crate's manifest.
pub fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-regressions")
}

/// Every case in `dir`, sorted by file name.
pub fn load(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Case)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let case: Case = yaml_serde::from_str(&text)
                .with_context(|| format!("{}: expected seed, found and options", path.display()))?;
            Ok((path, case))
        })
        .collect()
}
