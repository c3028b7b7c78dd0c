//! What every transport does after a decision: count it, time it, and write one log line.
//!
//! The log line (target `extauth::decision`, fields `transport`, `method`, `host`, `path`,
//! `outcome`, `status`, `config`, `latency_ms`) is built from an allow-list of fields: the
//! query (which carries `code` and `state` on a callback), headers (cookies, `Authorization`)
//! and every token stay out of it by construction.

use std::time::Instant;

use crate::flow::{CheckRequest, Decision};
use crate::metrics::{self, Transport};

/// Longest path written to the log; the rest is cut (paths are client-controlled).
const MAX_LOGGED_PATH: usize = 256;

/// Records and logs one decided check that started at `started`; `config` is the label
/// from [`Flow::decide_labelled`](crate::flow::Flow::decide_labelled).
pub fn decided(
    transport: Transport,
    config: &str,
    check: &CheckRequest,
    decision: &Decision,
    started: Instant,
) {
    let elapsed = started.elapsed();
    let outcome = metrics::outcome(decision);
    let status = match decision {
        Decision::Allow(_) => 200,
        Decision::Deny(deny) => deny.status.as_u16(),
    };
    metrics::record_decision(transport, config, outcome, elapsed);
    let path = truncate(&check.path, MAX_LOGGED_PATH);
    let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    tracing::info!(
        target: "extauth::decision",
        transport = transport.as_str(),
        method = %check.method,
        host = %check.host,
        path,
        outcome,
        status,
        config,
        latency_ms,
        "decision"
    );
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("/openai", 256), "/openai");
        assert_eq!(truncate("/ééé", 4), "/é");
        assert_eq!(truncate("/ééé", 5), "/éé");
    }
}
