//! Comparing a redacted transcript with its insta snapshot, from library code at run time.
//!
//! insta asserts by panicking; the panic is caught here and becomes a failed step. Set
//! `INSTA_UPDATE=always` once to write missing snapshots, review them, keep them (with
//! `CI=true` a missing snapshot fails).

use std::panic::AssertUnwindSafe;
use std::path::Path;

use super::transcript::Transcript;

/// Compares `transcript` with `dir/<name>.snap`; `Err` carries insta's message.
pub fn compare(
    dir: &Path,
    name: &str,
    description: &str,
    input_file: &Path,
    transcript: &Transcript,
) -> Result<(), String> {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(input_file);
    if !description.is_empty() {
        settings.set_description(description.trim());
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_yaml_snapshot!(name, transcript));
    }));
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "snapshot assertion failed".to_owned())
    })
}
