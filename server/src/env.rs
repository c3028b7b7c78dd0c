//! Where `${VAR}` values and `SIGNING_KEY` come from.
//!
//! The process environment is read through [`EnvSource`] so that tests pass a map instead of
//! mutating the environment of the whole test binary.

use std::collections::HashMap;

/// A read-only view of environment variables.
pub trait EnvSource: Send + Sync {
    /// The value of `name`, or `None` when it is not set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables, for tests and for the harness (which renders manifests for an
/// in-process server).
#[derive(Debug, Default, Clone)]
pub struct MapEnv(HashMap<String, String>);

impl MapEnv {
    /// Variables from a map.
    pub fn new(vars: HashMap<String, String>) -> Self {
        Self(vars)
    }

    /// Sets one variable (builder style).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}
