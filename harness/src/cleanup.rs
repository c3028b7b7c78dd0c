//! A process-wide record of what the harness started: child PIDs (redis-server, caddy,
//! node, chromium) and container ids. Each part still stops its own children (by PID, on
//! stop or drop); this record is what tests read to prove that nothing survived a run,
//! including a failed one.

use std::sync::Mutex;

static PIDS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
static CONTAINERS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records a child process the harness started.
pub fn record_pid(what: &str, pid: u32) {
    if let Ok(mut pids) = PIDS.lock() {
        pids.push((what.to_owned(), pid));
    }
}

/// Records a container the harness started.
pub fn record_container(id: &str) {
    if let Ok(mut ids) = CONTAINERS.lock() {
        ids.push(id.to_owned());
    }
}

/// Every child process started so far in this process: (what, PID).
pub fn recorded_pids() -> Vec<(String, u32)> {
    PIDS.lock().map(|p| p.clone()).unwrap_or_default()
}

/// Every container started so far in this process.
pub fn recorded_containers() -> Vec<String> {
    CONTAINERS.lock().map(|c| c.clone()).unwrap_or_default()
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The safety net after an interruption: kills every recorded child still alive (by its
/// PID, SIGKILL) and removes every recorded container still present. Returns what it had
/// to stop, as `what PID` / `container ID` lines.
pub fn stop_leftovers() -> Vec<String> {
    let mut stopped = Vec::new();
    for (what, pid) in recorded_pids() {
        if process_alive(pid) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            stopped.push(format!("{what} {pid}"));
        }
    }
    for id in recorded_containers() {
        if crate::docker::container_exists(&id).unwrap_or(false) {
            let _ = crate::docker::remove_container(&id);
            stopped.push(format!("container {id}"));
        }
    }
    stopped
}
