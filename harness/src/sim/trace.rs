//! The trace: one line per thing that happened (no secrets: statuses, paths without query
//! values, user numbers), hashed as it grows. Equal seeds must give equal hashes; the last
//! lines are what a failure report shows.

use std::collections::VecDeque;

/// FNV-1a, 64 bits: stable across runs and platforms (std's hasher is not promised to be).
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// How many lines a failure report shows.
const KEEP: usize = 40;

#[derive(Debug)]
pub struct Trace {
    hash: u64,
    lines: u64,
    recent: VecDeque<String>,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            lines: 0,
            recent: VecDeque::new(),
        }
    }
}

impl Trace {
    pub fn push(&mut self, line: String) {
        for b in line.as_bytes().iter().chain(b"\n") {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.lines += 1;
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn recent(&self) -> impl Iterator<Item = &String> {
        self.recent.iter()
    }
}
