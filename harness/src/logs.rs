//! Log tails for failure reports: the last lines of a text, a file or a container's stdout.

use testcontainers::{ContainerAsync, GenericImage};

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read).
pub(crate) fn file_tail(path: &std::path::Path, lines: usize) -> String {
    tail(&std::fs::read_to_string(path).unwrap_or_default(), lines)
}

/// The last `lines` lines of a container's stdout (empty without a container).
pub(crate) async fn stdout_tail(
    container: Option<&ContainerAsync<GenericImage>>,
    lines: usize,
) -> String {
    let Some(c) = container else {
        return String::new();
    };
    let out = c.stdout_to_vec().await.unwrap_or_default();
    tail(&String::from_utf8_lossy(&out), lines)
}
