//! `harness sim`: a deterministic simulation of the whole authorization-code flow in one
//! process, reproducible from one number.
//!
//! - The real code: extauth's `Flow` behind its forward-auth HTTP router (called through
//!   `tower::Service`, as a gateway would over HTTP), its real `RedisStore` down to the RESP
//!   bytes, and mock-idp's real router with its fault switches, key ring and clock.
//! - Simulated around it ([`world`]): the network ([`net`]: delays, resets, reordering), Redis
//!   ([`redis`]: TTLs, `NX`, replication lag, down, slow, failover, data loss), time
//!   ([`clock`]: a counter only the simulation moves; a run spans simulated hours in wall
//!   seconds) and
//!   randomness: one seed drives the schedule, the network, and the ids that extauth and
//!   mock-idp draw (their per-thread seeding hooks).
//! - Virtual users ([`users`]): browsers with cookie jars (sometimes two tabs at once) and
//!   API clients with bearer ID tokens; they log in through the IdP's form, call the LLM
//!   route, idle until tokens expire, replay callbacks, send garbage, log out.
//! - Invariants ([`oracle`]) after every message and step; the first broken one stops the
//!   run with the seed, the steps that led to it and the command that replays it.
//!
//! Everything runs on one thread (a current-thread runtime on Tokio's paused clock; the
//! world's time is [`clock::SimTime`]), so the same seed gives the same [`trace`] and the
//! same hash.

pub mod clock;
pub mod net;
pub mod oracle;
pub mod redis;
pub mod regressions;
pub mod trace;
pub mod users;
pub mod world;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};

pub use oracle::Violation;

/// The app's host as browsers see it (`appUrl` is `http://127.0.0.1:80`).
pub const APP_HOST: &str = "127.0.0.1";

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    /// Virtual users (browsers; each also acts as an API client with its ID token).
    pub users: usize,
    /// Steps: each is a fault event, time passing, or 1-3 users acting at once.
    pub steps: usize,
    /// extauth replicas behind the gateway.
    pub replicas: usize,
    /// Whether faults are drawn (shrinking turns them off to see if the users alone fail).
    pub faults: bool,
}

impl Options {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            users: 8,
            steps: 300,
            replicas: 2,
            faults: true,
        }
    }

    /// The command that replays this run.
    pub fn command(&self) -> String {
        let mut cmd = format!(
            "cargo run -p harness -- sim --seed {} --users {} --steps {} --replicas {}",
            self.seed, self.users, self.steps, self.replicas
        );
        if !self.faults {
            cmd.push_str(" --no-faults");
        }
        cmd
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub options: Options,
    pub trace_hash: u64,
    pub trace_lines: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Invariant checks made.
    pub checks: u64,
    /// Messages on the simulated network (browser, gateway, extauth → IdP).
    pub requests: u64,
    /// Logins completed (callbacks that set a session).
    pub logins: u64,
    /// Refresh grants the IdP honoured.
    pub refreshes: u64,
    /// Redis commands served.
    pub redis_commands: u64,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Virtual time Tokio's paused clock jumped while every task waited on a timer
    /// (extauth's refresh wait, timeouts): what would have been slept in wall time.
    pub timer_waits: Duration,
    /// Wall time taken.
    pub wall: Duration,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
}

impl Report {
    /// Simulated network messages per second of wall time.
    pub fn requests_per_wall_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The table `harness sim` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let o = &self.options;
        let _ = writeln!(
            out,
            "seed {}  users {}  steps {}  replicas {}{}",
            o.seed,
            o.users,
            o.steps,
            o.replicas,
            if o.faults { "" } else { "  (no faults)" }
        );
        let _ = writeln!(
            out,
            "trace hash {:016x} ({} lines)",
            self.trace_hash, self.trace_lines
        );
        let _ = writeln!(out, "{:<34} {:>10}", "faults injected", "count");
        for (kind, n) in &self.faults {
            let _ = writeln!(out, "  {kind:<32} {n:>10}");
        }
        let rows = [
            ("invariants checked", self.checks.to_string()),
            ("requests simulated", self.requests.to_string()),
            ("logins completed", self.logins.to_string()),
            ("refresh grants", self.refreshes.to_string()),
            ("redis commands", self.redis_commands.to_string()),
            (
                "simulated time",
                format!("{:.1} h", self.simulated.as_secs_f64() / 3600.0),
            ),
            (
                "extauth timer waits (virtual)",
                format!("{:.1} s", self.timer_waits.as_secs_f64()),
            ),
            ("wall time", format!("{:.2} s", self.wall.as_secs_f64())),
            (
                "simulated requests / wall s",
                format!("{:.0}", self.requests_per_wall_second()),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(out, "{name:<34} {value:>10}");
        }
        match &self.violation {
            None => {
                let _ = writeln!(out, "invariants: all held");
            }
            Some(v) => {
                let _ = write!(out, "{}", v.render(&self.options));
            }
        }
        out
    }
}

/// Runs one simulation on this thread (its own current-thread runtime, simulated clock).
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    // Tokio's clock paused: extauth's own timers (the cross-replica refresh wait, the Redis
    // command timeout) run on virtual time, which jumps to the next timer whenever every
    // task waits (see `clock`); no wall time is slept and the jumps are deterministic.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    // The ids extauth and mock-idp draw come from the seed too.
    let _extauth_ids = extauth::random::seed_this_thread(options.seed ^ 0x6578_7461_7574_6800);
    let _idp_ids = mock_idp::seed_this_thread(options.seed ^ 0x6d6f_636b_6964_7000);
    let mut report = runtime.block_on(simulate(options))?;
    report.wall = started.elapsed();
    // Tasks still parked (connection drivers) end with the runtime.
    runtime.shutdown_background();
    Ok(report)
}

/// Runs `options`; when it fails, tries smaller variants (fewer users, then no faults,
/// then fewer steps) and returns the smallest that still fails, with the original.
pub fn run_and_shrink(options: &Options) -> anyhow::Result<(Report, Option<Report>)> {
    let first = run(options)?;
    if first.violation.is_none() {
        return Ok((first, None));
    }
    let mut best: Option<Report> = None;
    let mut current = options.clone();
    let candidates = |o: &Options| {
        let mut out = Vec::new();
        if o.users > 1 {
            out.push(Options {
                users: o.users / 2,
                ..o.clone()
            });
        }
        if o.faults {
            out.push(Options {
                faults: false,
                ..o.clone()
            });
        }
        if o.replicas > 1 {
            out.push(Options {
                replicas: 1,
                ..o.clone()
            });
        }
        if o.steps > 10 {
            out.push(Options {
                steps: o.steps / 2,
                ..o.clone()
            });
        }
        out
    };
    // Bounded: each round shrinks one dimension or stops.
    for _ in 0..24 {
        let mut shrunk = false;
        for candidate in candidates(&current) {
            let report = run(&candidate)?;
            if report.violation.is_some() {
                current = candidate;
                best = Some(report);
                shrunk = true;
                break;
            }
        }
        if !shrunk {
            break;
        }
    }
    Ok((first, best))
}

/// The kinds of fault the schedule draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FaultKind {
    IdpSlow,
    IdpReset,
    Idp5xx,
    IdpResetAtIdp,
    KeyRotation,
    ClockSkew,
    RedisDown,
    RedisSlow,
    RedisFailover,
    RedisDataLoss,
    ReplicaRestart,
    Reordering,
}

impl FaultKind {
    const ALL: [FaultKind; 12] = [
        FaultKind::IdpSlow,
        FaultKind::IdpReset,
        FaultKind::Idp5xx,
        FaultKind::IdpResetAtIdp,
        FaultKind::KeyRotation,
        FaultKind::ClockSkew,
        FaultKind::RedisDown,
        FaultKind::RedisSlow,
        FaultKind::RedisFailover,
        FaultKind::RedisDataLoss,
        FaultKind::ReplicaRestart,
        FaultKind::Reordering,
    ];

    fn name(self) -> &'static str {
        match self {
            FaultKind::IdpSlow => "idp slow",
            FaultKind::IdpReset => "idp connection reset (network)",
            FaultKind::Idp5xx => "idp token endpoint 503",
            FaultKind::IdpResetAtIdp => "idp token endpoint reset",
            FaultKind::KeyRotation => "idp key rotation",
            FaultKind::ClockSkew => "idp clock skew",
            FaultKind::RedisDown => "redis down",
            FaultKind::RedisSlow => "redis slow",
            FaultKind::RedisFailover => "redis failover",
            FaultKind::RedisDataLoss => "redis data loss",
            FaultKind::ReplicaRestart => "extauth replica restart",
            FaultKind::Reordering => "messages delayed/reordered",
        }
    }
}

/// Faults switched on, with the step at which each heals.
#[derive(Debug, Default)]
struct Active {
    until: BTreeMap<FaultKind, usize>,
    /// mock-idp fault ids to remove on heal.
    idp_faults: BTreeMap<FaultKind, u64>,
}

async fn simulate(options: &Options) -> anyhow::Result<Report> {
    let tokio_started = tokio::time::Instant::now();
    let world = world::World::build(options.seed, options.users, options.replicas).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let sim = users::Sim::new(&world, options);
    let mut active = Active::default();
    let mut injected: BTreeMap<&'static str, u64> = BTreeMap::new();

    for step in 0..options.steps {
        sim.begin_step(step);
        // Heal what is due.
        let due: Vec<FaultKind> = active
            .until
            .iter()
            .filter(|(_, until)| **until <= step)
            .map(|(k, _)| *k)
            .collect();
        for kind in due {
            heal(&world, &mut active, kind).await;
            sim.note(format!("step {step} heal {}", kind.name()));
        }
        let roll = rng.random_range(0..100u32);
        if options.faults && roll < 8 {
            let kind = FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())];
            if !active.until.contains_key(&kind) {
                let lasts = rng.random_range(1..=25usize);
                inject(&world, &mut active, kind, step + lasts, &mut rng).await?;
                *injected.entry(kind.name()).or_default() += 1;
                sim.note(format!("step {step} fault {}", kind.name()));
                if matches!(kind, FaultKind::RedisFailover | FaultKind::RedisDataLoss) {
                    sim.redis_lost();
                }
            }
        } else if roll < 13 {
            // Time passes: up to two hours (tokens expire, IdP sessions idle out).
            let secs = rng.random_range(1..=7200u64);
            world.sleep(Duration::from_secs(secs)).await;
            sim.note(format!("step {step} idle {secs}s"));
        } else {
            let n = rng.random_range(1..=options.users.clamp(1, 3));
            let mut chosen: Vec<usize> = Vec::with_capacity(n);
            while chosen.len() < n {
                let u = rng.random_range(0..options.users);
                if !chosen.contains(&u) {
                    chosen.push(u);
                }
            }
            let actions: Vec<(usize, users::Action, u64)> = chosen
                .into_iter()
                .map(|u| {
                    let action = users::Action::draw(&mut rng);
                    let think_ms = rng.random_range(0..=120_000u64);
                    (u, action, think_ms)
                })
                .collect();
            let futures = actions
                .into_iter()
                .map(|(u, action, think)| sim.act(u, action, think));
            futures::future::join_all(futures).await;
        }
        sim.end_step();
        if sim.violated() {
            break;
        }
    }

    // Heal everything; every user must get a 200 again.
    if !sim.violated() {
        let kinds: Vec<FaultKind> = active.until.keys().copied().collect();
        for kind in kinds {
            heal(&world, &mut active, kind).await;
        }
        sim.note("heal all".to_owned());
        world.sleep(Duration::from_secs(60)).await;
        sim.all_recover().await;
    }

    let (trace_hash, trace_lines, checks, logins, violation) = sim.finish();
    Ok(Report {
        options: options.clone(),
        trace_hash,
        trace_lines,
        faults: injected,
        checks,
        requests: world.net.messages(),
        logins,
        refreshes: world.net.refresh_grants(),
        redis_commands: world.redis.commands(),
        simulated: world.time.elapsed(),
        timer_waits: tokio_started.elapsed(),
        wall: Duration::ZERO,
        violation,
    })
}

async fn inject(
    world: &world::World,
    active: &mut Active,
    kind: FaultKind,
    until: usize,
    rng: &mut rand::rngs::StdRng,
) -> anyhow::Result<()> {
    use mock_idp::{Endpoint, Fault, FaultKind as Idp};
    let mut faults = world.net.faults();
    match kind {
        FaultKind::IdpSlow => {
            let max = rng.random_range(500..=25_000u64);
            faults.idp_slow = Some((max / 4, max));
        }
        FaultKind::IdpReset => faults.idp_reset_permille = rng.random_range(100..=900),
        FaultKind::Reordering => faults.jitter = Some((0, rng.random_range(100..=5_000))),
        FaultKind::Idp5xx => {
            let id = world
                .idp
                .add_fault(Fault::sticky(Idp::Status {
                    endpoint: Endpoint::Token,
                    status: 503,
                }))
                .await
                .map_err(anyhow::Error::msg)?;
            active.idp_faults.insert(kind, id);
        }
        FaultKind::IdpResetAtIdp => {
            let id = world
                .idp
                .add_fault(Fault::sticky(Idp::ConnectionReset {
                    endpoint: Endpoint::Token,
                }))
                .await
                .map_err(anyhow::Error::msg)?;
            active.idp_faults.insert(kind, id);
        }
        FaultKind::KeyRotation => {
            world.idp.rotate_keys().await.map_err(anyhow::Error::msg)?;
            return Ok(());
        }
        FaultKind::ClockSkew => {
            // Within extauth's leeway for `iat` (60 s): a skew it must absorb.
            let secs = rng.random_range(5..=45i64) * if rng.random_bool(0.5) { 1 } else { -1 };
            world.idp.clock().advance(secs);
        }
        FaultKind::RedisDown => world.redis.set_down(true),
        FaultKind::RedisSlow => world.redis.set_slow(rng.random_range(50..=3_000)),
        FaultKind::RedisFailover => {
            world.redis.failover();
            return Ok(());
        }
        FaultKind::RedisDataLoss => {
            world.redis.lose_data();
            return Ok(());
        }
        FaultKind::ReplicaRestart => {
            let i = rng.random_range(0..world.net.replica_count());
            world.net.replace_replica(i, world.replica()?);
            return Ok(());
        }
    }
    world.net.set_faults(faults);
    active.until.insert(kind, until);
    Ok(())
}

async fn heal(world: &world::World, active: &mut Active, kind: FaultKind) {
    active.until.remove(&kind);
    let mut faults = world.net.faults();
    match kind {
        FaultKind::IdpSlow => faults.idp_slow = None,
        FaultKind::IdpReset => faults.idp_reset_permille = 0,
        FaultKind::Reordering => faults.jitter = None,
        FaultKind::Idp5xx | FaultKind::IdpResetAtIdp => {
            if let Some(id) = active.idp_faults.remove(&kind) {
                world.idp.faults().remove(id);
            }
        }
        FaultKind::ClockSkew => world.idp.clock().reset(),
        FaultKind::RedisDown => world.redis.set_down(false),
        FaultKind::RedisSlow => world.redis.set_slow(0),
        FaultKind::KeyRotation
        | FaultKind::RedisFailover
        | FaultKind::RedisDataLoss
        | FaultKind::ReplicaRestart => {}
    }
    world.net.set_faults(faults);
}
