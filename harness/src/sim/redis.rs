//! A simulated Redis: the commands extauth's store sends (`GET`, `SET` with `EX`/`PX`/`NX`,
//! `DEL`, `SADD`/`SREM`/`SMEMBERS`, `EXPIRE`, `TTL`, `WAIT`, `PING`, `CLIENT`), spoken in RESP
//! over an in-memory stream (`tokio::io::duplex`), so the real `RedisStore` talks to it
//! through the redis crate's `MultiplexedConnection` down to the bytes.
//!
//! Faults: down (connections refused, open ones cut), slow (every answer delayed), data loss
//! (a restart without persistence) and failover (the replica, which applies writes after a
//! lag, becomes the master: the writes it had not received are lost). Every key that
//! disappears is logged with why, so the invariants can tell a loss the faults explain from
//! one extauth caused.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

use super::clock::SimTime;

/// Why a key went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A `DEL` (extauth asked).
    Del,
    /// Its TTL ran out.
    Expired,
    /// The data-loss fault (restart without persistence).
    DataLoss,
    /// A failover to a replica that had not received it.
    Failover,
}

#[derive(Debug, Clone)]
enum Value {
    Str(Vec<u8>),
    Set(BTreeSet<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    /// Expiry, in simulated milliseconds.
    expires_ms: Option<u64>,
}

type Db = BTreeMap<Vec<u8>, Entry>;

/// The server's state; one per simulation.
#[derive(Debug)]
struct State {
    master: Db,
    replica: Db,
    /// Writes not yet applied to the replica: (when they will be, the key, its new state).
    pending: VecDeque<(u64, Vec<u8>, Option<Entry>)>,
    /// How long the replica trails the master.
    lag_ms: u64,
    down: bool,
    slow_ms: u64,
    /// Bumped when open connections must die (down, failover, data loss).
    generation: u64,
    /// Removed keys, in order, with why: drained by the invariants.
    removals: Vec<(Vec<u8>, Removal)>,
    /// `SET`s per key since the start (to see what a request wrote).
    sets: BTreeMap<Vec<u8>, u64>,
    /// Commands served.
    commands: u64,
    /// Calls a fault acted on (refused, cut, slowed).
    touched: u64,
}

/// The simulated server; clones share it.
#[derive(Debug, Clone)]
pub struct SimRedis {
    state: Arc<Mutex<State>>,
    time: SimTime,
    timeout_ms: u64,
}

impl SimRedis {
    /// `timeout`: the store's command timeout; a slower answer is never given (the
    /// connection fails instead, as the client would give up).
    pub fn new(time: SimTime, lag_ms: u64, timeout: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                master: Db::new(),
                replica: Db::new(),
                pending: VecDeque::new(),
                lag_ms,
                down: false,
                slow_ms: 0,
                generation: 0,
                removals: Vec::new(),
                sets: BTreeMap::new(),
                commands: 0,
                touched: 0,
            })),
            time,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection for the store: a duplex stream served by this server, or "connection
    /// refused" while it is down.
    pub async fn connect(self) -> redis::RedisResult<MultiplexedConnection> {
        let generation = {
            let mut state = self.lock();
            if state.down {
                state.touched += 1;
                return Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into());
            }
            state.generation
        };
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(self.clone().serve(server, generation));
        let info = redis::RedisConnectionInfo::default();
        let (conn, driver) = MultiplexedConnection::new_with_config(
            &info,
            client,
            redis::AsyncConnectionConfig::new(),
        )
        .await?;
        tokio::spawn(driver);
        Ok(conn)
    }

    /// Serves one connection until the client leaves or a fault cuts it.
    async fn serve(self, mut stream: DuplexStream, generation: u64) {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            // Answer every complete command in the buffer.
            loop {
                let parsed = match parse(&buf) {
                    Parsed::Command(args, used) => {
                        buf.drain(..used);
                        args
                    }
                    Parsed::Incomplete => break,
                    Parsed::Invalid => return,
                };
                let slow = {
                    let mut state = self.lock();
                    if state.generation != generation || state.down {
                        state.touched += 1;
                        return;
                    }
                    if state.slow_ms > 0 {
                        state.touched += 1;
                    }
                    state.slow_ms
                };
                if slow >= self.timeout_ms {
                    // Slower than the client waits: it gives up; modelled as the
                    // connection failing (no wall-clock timeouts in the simulation).
                    self.time
                        .pause(Duration::from_millis(self.timeout_ms), 1)
                        .await;
                    return;
                }
                if slow > 0 {
                    self.time.pause(Duration::from_millis(slow), 1).await;
                }
                let reply = {
                    let mut state = self.lock();
                    if state.generation != generation || state.down {
                        state.touched += 1;
                        return;
                    }
                    let now = self.time.now_ms();
                    state.execute(&parsed, now)
                };
                if stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Down: new connections refused, open ones cut. Up: serves again with its data.
    pub fn set_down(&self, down: bool) {
        let mut state = self.lock();
        state.down = down;
        if down {
            state.generation += 1;
        }
    }

    /// Delays every answer by `ms` (0: none).
    pub fn set_slow(&self, ms: u64) {
        self.lock().slow_ms = ms;
    }

    /// A restart without persistence: every key is gone.
    pub fn lose_data(&self) {
        let mut state = self.lock();
        let keys: Vec<Vec<u8>> = state.master.keys().cloned().collect();
        for key in keys {
            state.removals.push((key, Removal::DataLoss));
        }
        state.master.clear();
        state.replica.clear();
        state.pending.clear();
        state.generation += 1;
    }

    /// The replica takes over: writes it had not received are lost.
    pub fn failover(&self) {
        let mut state = self.lock();
        state.pending.clear();
        let promoted = state.replica.clone();
        let lost: Vec<Vec<u8>> = state
            .master
            .keys()
            .filter(|k| !promoted.contains_key(*k))
            .cloned()
            .collect();
        for key in lost {
            state.removals.push((key, Removal::Failover));
        }
        state.master = promoted;
        state.generation += 1;
    }

    /// Whether `key` holds a live value now.
    pub fn contains(&self, key: &str) -> bool {
        let now = self.time.now_ms();
        let mut state = self.lock();
        state.expire(key.as_bytes(), now);
        state.master.contains_key(key.as_bytes())
    }

    /// How many times `key` was `SET` since the start.
    pub fn sets_of(&self, key: &str) -> u64 {
        self.lock().sets.get(key.as_bytes()).copied().unwrap_or(0)
    }

    /// Removals since the last call.
    pub fn take_removals(&self) -> Vec<(String, Removal)> {
        std::mem::take(&mut self.lock().removals)
            .into_iter()
            .map(|(k, why)| (String::from_utf8_lossy(&k).into_owned(), why))
            .collect()
    }

    /// Calls a fault acted on since the start.
    pub fn touched(&self) -> u64 {
        self.lock().touched
    }

    /// Commands served since the start.
    pub fn commands(&self) -> u64 {
        self.lock().commands
    }
}

impl State {
    /// Drops `key` if its TTL ran out.
    fn expire(&mut self, key: &[u8], now: u64) {
        if self
            .master
            .get(key)
            .is_some_and(|e| e.expires_ms.is_some_and(|at| at <= now))
        {
            self.master.remove(key);
            self.removals.push((key.to_vec(), Removal::Expired));
        }
    }

    /// Applies the replication stream up to `now`.
    fn replicate(&mut self, now: u64) {
        while let Some((at, _, _)) = self.pending.front() {
            if *at > now {
                break;
            }
            if let Some((_, key, entry)) = self.pending.pop_front() {
                match entry {
                    Some(e) => self.replica.insert(key, e),
                    None => self.replica.remove(&key),
                };
            }
        }
    }

    /// Records a write for the replica.
    fn written(&mut self, key: &[u8], now: u64) {
        let entry = self.master.get(key).cloned();
        let at = now + self.lag_ms;
        self.pending.push_back((at, key.to_vec(), entry));
    }

    fn execute(&mut self, args: &[Vec<u8>], now: u64) -> Vec<u8> {
        self.commands += 1;
        self.replicate(now);
        let Some(name) = args.first() else {
            return error("ERR empty command");
        };
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        if let Some(key) = args.get(1) {
            self.expire(key, now);
        }
        match (name.as_str(), args.len()) {
            ("PING", _) => b"+PONG\r\n".to_vec(),
            ("CLIENT" | "SELECT" | "AUTH", _) => b"+OK\r\n".to_vec(),
            ("GET", 2) => match self.master.get(&args[1]) {
                Some(Entry {
                    value: Value::Str(v),
                    ..
                }) => bulk(v),
                Some(_) => wrong_type(),
                None => b"$-1\r\n".to_vec(),
            },
            ("SET", n) if n >= 3 => self.set(args, now),
            ("DEL", n) if n >= 2 => {
                let mut removed = 0;
                for key in &args[1..] {
                    self.expire(key, now);
                    if self.master.remove(key).is_some() {
                        removed += 1;
                        self.removals.push((key.clone(), Removal::Del));
                        self.written(key, now);
                    }
                }
                integer(removed)
            }
            ("EXISTS", 2) => integer(i64::from(self.master.contains_key(&args[1]))),
            ("SADD" | "SREM", n) if n >= 3 => {
                let adding = name == "SADD";
                let entry = self.master.entry(args[1].clone()).or_insert(Entry {
                    value: Value::Set(BTreeSet::new()),
                    expires_ms: None,
                });
                let Value::Set(set) = &mut entry.value else {
                    return wrong_type();
                };
                let mut changed = 0;
                for member in &args[2..] {
                    let did = if adding {
                        set.insert(member.clone())
                    } else {
                        set.remove(member)
                    };
                    changed += i64::from(did);
                }
                if set.is_empty() {
                    self.master.remove(&args[1]);
                }
                self.written(&args[1], now);
                integer(changed)
            }
            ("SMEMBERS", 2) => match self.master.get(&args[1]) {
                Some(Entry {
                    value: Value::Set(set),
                    ..
                }) => {
                    let mut out = format!("*{}\r\n", set.len()).into_bytes();
                    for m in set {
                        out.extend(bulk(m));
                    }
                    out
                }
                Some(_) => wrong_type(),
                None => b"*0\r\n".to_vec(),
            },
            ("EXPIRE" | "PEXPIRE", 3) => {
                let Some(n) = number(&args[2]) else {
                    return error("ERR value is not an integer or out of range");
                };
                let ms = if name == "EXPIRE" { n * 1000 } else { n };
                match self.master.get_mut(&args[1]) {
                    Some(e) => {
                        e.expires_ms = Some(now + ms);
                        self.written(&args[1], now);
                        integer(1)
                    }
                    None => integer(0),
                }
            }
            ("TTL" | "PTTL", 2) => match self.master.get(&args[1]) {
                None => integer(-2),
                Some(Entry {
                    expires_ms: None, ..
                }) => integer(-1),
                Some(Entry {
                    expires_ms: Some(at),
                    ..
                }) => {
                    let ms = at.saturating_sub(now);
                    let n = if name == "TTL" { ms.div_ceil(1000) } else { ms };
                    integer(i64::try_from(n).unwrap_or(i64::MAX))
                }
            },
            // One replica; it has everything once the lag has passed.
            ("WAIT", 3) => integer(i64::from(self.pending.is_empty())),
            _ => error(&format!(
                "ERR unknown command '{name}' in the simulated Redis"
            )),
        }
    }

    /// `SET key value [NX] [EX s | PX ms]`.
    fn set(&mut self, args: &[Vec<u8>], now: u64) -> Vec<u8> {
        let mut nx = false;
        let mut expires_ms = None;
        let mut i = 3;
        while i < args.len() {
            let opt = String::from_utf8_lossy(&args[i]).to_ascii_uppercase();
            match opt.as_str() {
                "NX" => nx = true,
                "EX" | "PX" => {
                    let Some(n) = args.get(i + 1).and_then(|a| number(a)).filter(|n| *n > 0) else {
                        return error("ERR invalid expire time in 'set' command");
                    };
                    expires_ms = Some(now + if opt == "EX" { n * 1000 } else { n });
                    i += 1;
                }
                _ => return error("ERR syntax error"),
            }
            i += 1;
        }
        if nx && self.master.contains_key(&args[1]) {
            return b"$-1\r\n".to_vec();
        }
        self.master.insert(
            args[1].clone(),
            Entry {
                value: Value::Str(args[2].clone()),
                expires_ms,
            },
        );
        *self.sets.entry(args[1].clone()).or_default() += 1;
        self.written(&args[1], now);
        b"+OK\r\n".to_vec()
    }
}

fn number(arg: &[u8]) -> Option<u64> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

fn bulk(v: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", v.len()).into_bytes();
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
    out
}

fn integer(n: i64) -> Vec<u8> {
    format!(":{n}\r\n").into_bytes()
}

fn error(message: &str) -> Vec<u8> {
    format!("-{message}\r\n").into_bytes()
}

fn wrong_type() -> Vec<u8> {
    error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

enum Parsed {
    Command(Vec<Vec<u8>>, usize),
    Incomplete,
    Invalid,
}

/// One RESP array of bulk strings from the front of `buf`.
fn parse(buf: &[u8]) -> Parsed {
    fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(from..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..end], from + end + 2))
    }
    fn count(text: &[u8]) -> Option<usize> {
        std::str::from_utf8(text).ok()?.parse().ok()
    }
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] != b'*' {
        return Parsed::Invalid;
    }
    let Some((head, mut at)) = line(buf, 0) else {
        return Parsed::Incomplete;
    };
    let Some(n) = count(&head[1..]) else {
        return Parsed::Invalid;
    };
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let Some((head, next)) = line(buf, at) else {
            return Parsed::Incomplete;
        };
        if head.first() != Some(&b'$') {
            return Parsed::Invalid;
        }
        let Some(len) = count(&head[1..]) else {
            return Parsed::Invalid;
        };
        if buf.len() < next + len + 2 {
            return Parsed::Incomplete;
        }
        args.push(buf[next..next + len].to_vec());
        at = next + len + 2;
    }
    Parsed::Command(args, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipelined_buffer_parses_one_command_at_a_time() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
        let Parsed::Command(args, used) = parse(buf) else {
            panic!("a command")
        };
        assert_eq!(args, vec![b"GET".to_vec(), b"k".to_vec()]);
        let Parsed::Command(args, _) = parse(&buf[used..]) else {
            panic!("a second command")
        };
        assert_eq!(args, vec![b"PING".to_vec()]);
        assert!(matches!(parse(&buf[..7]), Parsed::Incomplete));
    }
}
