//! Runs scenarios: a fresh stack each, steps in order, a printed line per step, the first
//! failure with expected vs actual, then the snapshot comparison of the redacted transcript.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use url::Url;

use super::checks::{IdTokenContext, Problems};
use super::model::{
    Action, Combo, ExtauthAction, GatewayBackend, IdpAdminExpect, IdpAdminSpec, IdpBackend,
    IdpLogoutExpect, IdpLogoutSpec, LAST_LOCATION, LoginExpect, LoginResult, LoginSpec,
    RedisAction, RedisBackend, RejectionExpect, RequestExpect, RequestSpec, Scenario, Step,
};
use super::snapshot;
use super::transcript::{
    CookieRecord, FrameRecord, IdpLogoutRecord, LoginRecord, Node, Redactor, RequestRecord,
    ResponseRecord, StepKind, StepRecord, Transcript, UpstreamRecord, clip, header_map,
};
use super::{ScenarioError, expand_paths};
use crate::extauth::ExtauthMode;
use crate::idp::IdpMode;
use crate::login::{self, Credentials, LoginError, LoginOutcome};
use crate::stack::{
    ExternalTarget, GatewayMode, RedisMode, RunningStack, Stack, StackOptions,
    default_scenarios_dir,
};

/// Response headers left out of transcripts: they change every run and say nothing.
const VOLATILE_HEADERS: &[&str] = &["date", "content-length"];

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where snapshots live (absolute).
    pub snapshots_dir: PathBuf,
    /// Print progress to stdout.
    pub print: bool,
    /// Bound on one login when the step does not say.
    pub login_timeout: Duration,
    /// Run every backend combination the scenario declares (`stack:` lists), not only the
    /// first of each.
    pub matrix: bool,
    /// Run against this deployment instead of a fresh stack: steps that need the stack's
    /// insides (the upstream's records, Redis) are not checkable and say so.
    pub target: Option<ExternalTarget>,
    /// Credentials for every login step instead of the scenario's.
    pub credentials: Option<(String, String)>,
    /// How many rows (scenario × backends) run at once. Each row has its own stack (ports,
    /// Redis, IdP, gateway address), so rows are independent; above 1, a row's output is
    /// printed as one block when it ends.
    pub jobs: usize,
    /// The extauth binary for scenarios with `stack.replicas` (default: see
    /// [`crate::extauth::find_binary`]).
    pub extauth_bin: Option<PathBuf>,
    /// The agentgateway binary for `gateway: agentgateway` rows (`--agentgateway`); default:
    /// `PATH`, then `../shared/bin/agentgateway`.
    pub agentgateway: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            snapshots_dir: default_scenarios_dir().join("snapshots"),
            print: true,
            login_timeout: login::DEFAULT_TIMEOUT,
            matrix: false,
            target: None,
            credentials: None,
            jobs: 1,
            extauth_bin: None,
            agentgateway: None,
        }
    }
}

/// How one scenario went.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    /// The scenario's name (the file name when it did not load).
    pub name: String,
    /// The backends it ran on (`idp=mock gateway=sim redis=process`, or `url target`).
    pub backends: String,
    /// Why it did not run here (e.g. Keycloak's image is absent): neither pass nor fail.
    pub skipped: Option<String>,
    /// Its file.
    pub path: PathBuf,
    /// Steps that passed.
    pub passed_steps: usize,
    /// The failure, if any: the step's name and the problems.
    pub failure: Option<(String, Vec<String>)>,
    /// Wall time.
    pub duration: Duration,
}

impl ScenarioReport {
    /// Whether everything passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    fn failed(path: &Path, name: String, step: &str, problem: String, started: Instant) -> Self {
        Self {
            name,
            backends: String::new(),
            skipped: None,
            path: path.to_owned(),
            passed_steps: 0,
            failure: Some((step.to_owned(), vec![problem])),
            duration: started.elapsed(),
        }
    }
}

/// Runs every scenario file under `paths` (files, or folders of `*.yaml`), each row on its
/// own stack, [`RunOptions::jobs`] at a time; reports in file and combination order.
pub async fn run_paths(
    paths: &[PathBuf],
    options: &RunOptions,
) -> Result<Vec<ScenarioReport>, ScenarioError> {
    let files = expand_paths(paths)?;
    let rows = files
        .iter()
        .flat_map(|file| rows_of(file, options))
        .collect();
    Ok(run_rows(rows, options).await)
}

/// One row to run: a loaded scenario on one combination, or a file that did not load.
enum Row {
    Run(std::sync::Arc<Scenario>, Combo),
    Unloadable(ScenarioReport),
}

/// The rows of one file: every declared combination with [`RunOptions::matrix`] (and no
/// URL target), else the default one.
fn rows_of(path: &Path, options: &RunOptions) -> Vec<Row> {
    let started = Instant::now();
    match Scenario::from_file(path) {
        Ok(scenario) => {
            let scenario = std::sync::Arc::new(scenario);
            let combos = if options.matrix && options.target.is_none() {
                scenario.stack.combos()
            } else {
                vec![scenario.stack.default_combo()]
            };
            combos
                .into_iter()
                .map(|combo| Row::Run(std::sync::Arc::clone(&scenario), combo))
                .collect()
        }
        Err(e) => {
            let name = path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            );
            if options.print {
                println!("scenario {name} ({})\n  ✗ load: {e}", path.display());
            }
            vec![Row::Unloadable(ScenarioReport::failed(
                path,
                name,
                "load",
                e.to_string(),
                started,
            ))]
        }
    }
}

/// Runs `rows`, [`RunOptions::jobs`] at a time (at least one); reports in `rows` order.
async fn run_rows(rows: Vec<Row>, options: &RunOptions) -> Vec<ScenarioReport> {
    use futures::StreamExt as _;
    futures::stream::iter(rows)
        .map(|row| async move {
            match row {
                Row::Run(scenario, combo) => run_scenario_on(&scenario, combo, options).await,
                Row::Unloadable(report) => report,
            }
        })
        .buffered(options.jobs.max(1))
        .collect()
        .await
}

/// Loads and runs one file on its default backends (on all of them with
/// [`RunOptions::matrix`], the first report then being the default's).
pub async fn run_file(path: &Path, options: &RunOptions) -> ScenarioReport {
    let mut reports = run_file_all(path, options).await;
    let first = reports.remove(0);
    match reports.into_iter().find(|r| !r.passed()) {
        Some(failed) => failed,
        None => first,
    }
}

/// Loads and runs one file: one report per backend combination (one without `matrix`).
pub async fn run_file_all(path: &Path, options: &RunOptions) -> Vec<ScenarioReport> {
    run_rows(rows_of(path, options), options).await
}

/// Runs a loaded scenario on a fresh stack with its default backends (or against
/// [`RunOptions::target`]).
pub async fn run_scenario(scenario: &Scenario, options: &RunOptions) -> ScenarioReport {
    run_scenario_on(scenario, scenario.stack.default_combo(), options).await
}

/// Runs a loaded scenario on a fresh stack with these backends.
pub async fn run_scenario_on(
    scenario: &Scenario,
    combo: Combo,
    options: &RunOptions,
) -> ScenarioReport {
    let out = Printer::new(options.print, options.jobs > 1);
    let report = run_row(scenario, combo, options, &out).await;
    out.flush();
    report
}

async fn run_row(
    scenario: &Scenario,
    combo: Combo,
    options: &RunOptions,
    out: &Printer,
) -> ScenarioReport {
    let started = Instant::now();
    let backends = match (&options.target, scenario.stack.replicas) {
        (Some(_), _) => "url target".to_owned(),
        (None, Some(n)) => format!("{combo} extauth={n}"),
        (None, None) => combo.to_string(),
    };
    out.line(&format!(
        "scenario {} [{backends}] ({})",
        scenario.name,
        scenario.path.display()
    ));
    let skip = |reason: String| {
        if first_time_skipped_for(&reason) {
            out.line(&format!("SKIP {} [{backends}]: {reason}", scenario.name));
        } else {
            out.line(&format!(
                "SKIP {} [{backends}]: the same reason as above",
                scenario.name
            ));
        }
        ScenarioReport {
            name: scenario.name.clone(),
            backends: backends.clone(),
            skipped: Some(reason),
            path: scenario.path.clone(),
            passed_steps: 0,
            failure: None,
            duration: started.elapsed(),
        }
    };
    let fail_at = |step: &str, problem: String| {
        out.line(&format!("  ✗ {step}: {problem}"));
        let mut report = ScenarioReport::failed(
            &scenario.path,
            scenario.name.clone(),
            step,
            problem,
            started,
        );
        report.backends = backends.clone();
        report
    };
    if options.target.is_some()
        && let Some(step) = scenario
            .steps
            .iter()
            .find(|s| matches!(s.action, Action::Redis(_)))
    {
        return skip(format!(
            "step {:?} acts on Redis (stop, start, failover, kill-master): not checkable against a URL target",
            step.name
        ));
    }
    if options.target.is_some()
        && let Some(step) = scenario
            .steps
            .iter()
            .find(|s| matches!(s.action, Action::Extauth(_)))
    {
        return skip(format!(
            "step {:?} kills or restarts an extauth replica: not checkable against a URL target",
            step.name
        ));
    }
    if let Some(target) = &options.target
        && let Some(step) = scenario
            .steps
            .iter()
            .find(|s| matches!(s.action, Action::IdpAdmin(..)))
        && !serves_mock_admin(&target.idp_url).await
    {
        return skip(format!(
            "step {:?} uses the mock IdP's admin API, which {} does not serve (not mock-idp, or not on loopback)",
            step.name, target.idp_url
        ));
    }
    let activity = crate::watchdog::activity(format!("{} [{backends}]", scenario.name));
    activity.at("stack up");
    let up = Stack::up(stack_options(scenario, combo, options));
    let stack = match tokio::time::timeout(STACK_UP_LIMIT, up).await {
        Ok(Ok(stack)) => stack,
        Ok(Err(e)) => {
            return match e.skip_reason() {
                Some(reason) => skip(reason),
                None => fail_at("stack", e.to_string()),
            };
        }
        Err(_) => {
            return fail_at(
                "stack",
                format!(
                    "the stack did not come up within {} s (every part has its own, shorter bound: a hang)",
                    STACK_UP_LIMIT.as_secs()
                ),
            );
        }
    };
    out.line(&format!(
        "  stack: gateway {} | IdP {} | redis {} | login {}",
        stack.gateway_url(),
        stack.idp_url(),
        stack.redis_url(),
        scenario.stack.login
    ));
    let mut run = match Run::new(scenario, combo, stack, options) {
        Ok(run) => run,
        Err(e) => return fail_at("setup", e),
    };

    let mut passed_steps = 0;
    let mut failure = None;
    for step in &scenario.steps {
        let step_started = Instant::now();
        activity.at(&format!("step {:?}", step.name));
        let limit = step_limit(step, options.login_timeout);
        let problems = match tokio::time::timeout(limit, run.step(step)).await {
            Ok(problems) => problems,
            Err(_) => vec![format!(
                "the step did not finish within {} s (its own waits are shorter: a hang)",
                limit.as_secs()
            )],
        };
        let took = step_started.elapsed();
        let notes = std::mem::take(&mut run.notes);
        if problems.is_empty() {
            passed_steps += 1;
            out.line(&format!("  ✓ {} ({} ms)", step.name, took.as_millis()));
            for note in &notes {
                out.line(&format!("      - {note}"));
            }
        } else {
            out.line(&format!("  ✗ {} ({} ms)", step.name, took.as_millis()));
            for problem in &problems {
                out.line(&format!("      {problem}"));
            }
            failure = Some((step.name.clone(), problems));
            break;
        }
    }

    if failure.is_none() && scenario.snapshot && run.stack.is_external() {
        out.line(
            "  - snapshot not compared: the transcript of a URL target depends on its backends",
        );
    } else if failure.is_none() && scenario.snapshot {
        let name = "transcript matches its snapshot";
        let dir = &options.snapshots_dir;
        let snapshot_name = snapshot_name(&scenario.name, combo);
        match snapshot::compare(
            dir,
            &snapshot_name,
            &scenario.description,
            &scenario.path,
            &run.transcript,
        ) {
            Ok(()) => out.line(&format!(
                "  ✓ {name} ({})",
                dir.join(format!("{snapshot_name}.snap")).display()
            )),
            Err(message) => {
                out.line(&format!("  ✗ {name}"));
                out.line(&indent(&message, 6));
                failure = Some((name.to_owned(), vec![message]));
            }
        }
    }
    if failure.is_some() {
        out.line("  transcript (redacted):");
        out.line(&indent(
            &yaml_serde::to_string(&run.transcript).unwrap_or_default(),
            4,
        ));
        for (part, tail) in run.stack.log_tails(LOG_TAIL_LINES).await {
            out.line(&format!("  log tail of {part}:"));
            out.line(&indent(&run.redactor.text(&tail), 4));
        }
    }
    activity.at("stack stop");
    if tokio::time::timeout(STOP_LIMIT, run.stack.stop())
        .await
        .is_err()
    {
        // Dropping what is left stops each part by its PID or container id.
        out.line(&format!(
            "  ! stopping the stack took over {} s; its parts were killed",
            STOP_LIMIT.as_secs()
        ));
    }
    let report = ScenarioReport {
        name: scenario.name.clone(),
        backends: backends.clone(),
        skipped: None,
        path: scenario.path.clone(),
        passed_steps,
        failure,
        duration: started.elapsed(),
    };
    out.line(&format!(
        "{} {} [{backends}] ({}/{} steps, {:.1} s)",
        if report.passed() { "PASS" } else { "FAIL" },
        report.name,
        report.passed_steps,
        scenario.steps.len(),
        report.duration.as_secs_f64()
    ));
    report
}

/// Whether `idp_url` answers the mock IdP's admin API (`GET /admin/mock/clock`).
async fn serves_mock_admin(idp_url: &str) -> bool {
    let url = format!("{}/admin/mock/clock", idp_url.trim_end_matches('/'));
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return false;
    };
    match client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => resp
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v.get("now").is_some()),
        _ => false,
    }
}

/// Whether this process has not printed `reason` for a skipped row yet (a reason such as
/// "the Keycloak image is not present" is said once, not once per row).
fn first_time_skipped_for(reason: &str) -> bool {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if said.iter().any(|r| r == reason) {
        false
    } else {
        said.push(reason.to_owned());
        true
    }
}

/// How long a request step waits for the gateway's log line (agentgateway).
const GATEWAY_LOG_WAIT: Duration = Duration::from_secs(2);

/// Lines of each backend's log printed with a failure.
const LOG_TAIL_LINES: usize = 15;

/// Backstops for waits that each have their own, shorter bounds: starting a stack (Keycloak
/// may take its 180 s), one step, stopping a stack.
const STACK_UP_LIMIT: Duration = Duration::from_secs(240);
const STEP_LIMIT: Duration = Duration::from_secs(120);
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A step's backstop: [`STEP_LIMIT`], or a login's own bound plus a minute when longer.
fn step_limit(step: &Step, login_timeout: Duration) -> Duration {
    match &step.action {
        Action::Login(spec, _) => {
            let own = spec
                .timeout_seconds
                .map_or(login_timeout, Duration::from_secs);
            STEP_LIMIT.max(own + Duration::from_secs(60))
        }
        _ => STEP_LIMIT,
    }
}

/// The snapshot for a combination: the scenario's name on the mock IdP behind the simulator,
/// `name.<idp>.<gateway>` elsewhere (responses legitimately differ: Caddy's `server` header,
/// another IdP's pages). The session store changes nothing in the transcript, nor does
/// running the mock in a container ([`IdpBackend::snapshot_idp`]); agentgateway shares the
/// simulator's ([`GatewayBackend::snapshot_gateway`]).
pub fn snapshot_name(scenario: &str, combo: Combo) -> String {
    let idp = combo.idp.snapshot_idp();
    let gateway = combo.gateway.snapshot_gateway();
    if idp == IdpBackend::Mock && gateway == GatewayBackend::Simulator {
        scenario.to_owned()
    } else {
        format!("{scenario}.{}.{}", idp.name(), gateway.name())
    }
}

fn stack_options(scenario: &Scenario, combo: Combo, run: &RunOptions) -> StackOptions {
    let base = scenario
        .path
        .parent()
        .map_or_else(default_scenarios_dir, Path::to_path_buf);
    let mut options = StackOptions::from_scenarios_dir(&base);
    if let Some(realm) = &scenario.stack.realm {
        options.realm_file = base.join(realm);
    }
    if let Some(manifest) = &scenario.stack.manifest {
        options.manifest_file = base.join(manifest);
    }
    options.redis = match combo.redis {
        RedisBackend::Auto => RedisMode::Auto,
        RedisBackend::Process => RedisMode::Process,
        RedisBackend::Container => RedisMode::Container,
        RedisBackend::Memory => RedisMode::Memory,
        RedisBackend::Tls => RedisMode::Tls,
        RedisBackend::Sentinel => RedisMode::Sentinel,
        RedisBackend::Cluster => RedisMode::Cluster,
    };
    options.idp = match combo.idp {
        IdpBackend::Mock => IdpMode::Mock,
        IdpBackend::MockContainer => IdpMode::MockContainer,
        IdpBackend::OidcProvider => IdpMode::OidcProvider,
        IdpBackend::Keycloak => IdpMode::Keycloak,
    };
    options.gateway = match combo.gateway {
        GatewayBackend::Simulator => GatewayMode::Simulator,
        GatewayBackend::Caddy => GatewayMode::Caddy,
        GatewayBackend::Nginx => GatewayMode::Nginx,
        GatewayBackend::Agentgateway => GatewayMode::Agentgateway,
    };
    options.agentgateway.clone_from(&run.agentgateway);
    options.external.clone_from(&run.target);
    options.extauth = match scenario.stack.replicas {
        Some(replicas) => ExtauthMode::Processes { replicas },
        None => ExtauthMode::InProcess,
    };
    options.extauth_bin.clone_from(&run.extauth_bin);
    options
}

/// Where a row's progress goes: stdout line by line, or (rows running in parallel) held
/// and printed as one block when the row ends, so rows do not interleave.
struct Printer {
    print: bool,
    held: Option<std::sync::Mutex<String>>,
}

impl Printer {
    fn new(print: bool, hold: bool) -> Self {
        Self {
            print,
            held: hold.then(|| std::sync::Mutex::new(String::new())),
        }
    }

    fn line(&self, text: &str) {
        if !self.print {
            return;
        }
        match &self.held {
            Some(held) => {
                let mut held = held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                held.push_str(text);
                held.push('\n');
            }
            None => println!("{text}"),
        }
    }

    /// Prints what was held, as one block (one `print!`, so a test harness that captures
    /// output captures it, as it does the line-by-line `println!`).
    fn flush(&self) {
        if let Some(held) = &self.held {
            let block = std::mem::take(
                &mut *held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            print!("{block}");
        }
    }
}

/// A step's HTTP method, case-insensitively.
fn http_method(name: &str) -> Result<reqwest::Method, String> {
    reqwest::Method::from_bytes(name.to_ascii_uppercase().as_bytes())
        .map_err(|e| format!("method {name:?}: {e}"))
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().fold(String::new(), |mut out, line| {
        let _ = writeln!(out, "{pad}{line}");
        out
    })
}

/// State carried from step to step.
struct Run<'s> {
    scenario: &'s Scenario,
    stack: RunningStack,
    vars: BTreeMap<String, String>,
    redactor: Redactor,
    client: reqwest::Client,
    login_timeout: Duration,
    last_location: Option<Url>,
    last_login: Option<LoginOutcome>,
    jwks: Option<JwkSet>,
    transcript: Transcript,
    /// Things the last step could not check (printed under it, not failures).
    notes: Vec<String>,
    credentials: Option<(String, String)>,
}

impl<'s> Run<'s> {
    fn new(
        scenario: &'s Scenario,
        combo: Combo,
        stack: RunningStack,
        options: &RunOptions,
    ) -> Result<Self, String> {
        let vars = stack.vars().clone();
        let redactor = Redactor::new(&vars, stack.secrets()).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        // Backends only: no addresses, and nothing that differs between machines (the
        // session store is printed in the stack line, not snapshotted; so is whether the
        // mock runs in a container, whose snapshots are the in-process mock's).
        let mut stack_record: BTreeMap<String, String> = [
            ("idp", combo.idp.snapshot_idp().name().to_owned()),
            (
                "gateway",
                format!("{:?}", combo.gateway.snapshot_gateway()).to_lowercase(),
            ),
            ("login", scenario.stack.login.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(replicas) = scenario.stack.replicas {
            stack_record.insert("extauth".to_owned(), format!("{replicas} replicas"));
        }
        Ok(Self {
            scenario,
            stack,
            vars,
            redactor,
            client,
            login_timeout: options.login_timeout,
            last_location: None,
            last_login: None,
            jwks: None,
            notes: Vec::new(),
            credentials: options.credentials.clone(),
            transcript: Transcript {
                scenario: scenario.name.clone(),
                stack: stack_record,
                steps: Vec::new(),
            },
        })
    }

    /// Runs one step; the problems found (empty = passed).
    async fn step(&mut self, step: &Step) -> Vec<String> {
        match &step.action {
            Action::Request(spec, expect) => self.request(&step.name, spec, expect).await,
            Action::Login(spec, expect) => self.login(&step.name, spec, expect).await,
            Action::Redis(action) => self.redis(&step.name, *action).await,
            Action::Extauth(action) => self.extauth(&step.name, *action).await,
            Action::IdpAdmin(spec, expect) => self.idp_admin(&step.name, spec, expect).await,
            Action::IdpLogout(spec, expect) => self.idp_logout(&step.name, spec, expect).await,
            Action::Pause(duration) => {
                tokio::time::sleep(*duration).await;
                Vec::new()
            }
        }
    }

    async fn request(
        &mut self,
        name: &str,
        spec: &RequestSpec,
        expect: &RequestExpect,
    ) -> Vec<String> {
        let vars = self.vars.clone();
        let fill = |text: &str| super::checks::interpolate(text, &vars);
        let prepared = (|| -> Result<_, String> {
            let path = fill(&spec.path)?;
            let url = format!("{}{}", self.stack.gateway_url(), path);
            let method = http_method(&spec.method)?;
            let mut headers = BTreeMap::new();
            for (k, v) in &spec.headers {
                headers.insert(k.to_ascii_lowercase(), fill(v)?);
            }
            let body = spec.body.as_deref().map(fill).transpose()?;
            Ok((url, method, headers, body))
        })();
        let (url, method, mut headers, body) = match prepared {
            Ok(p) => p,
            Err(e) => return vec![e],
        };
        if spec.use_cookie
            && let Some(cookie) = self
                .last_login
                .as_ref()
                .and_then(LoginOutcome::cookie_header)
        {
            let joined = match headers.remove("cookie") {
                Some(existing) => format!("{existing}; {cookie}"),
                None => cookie,
            };
            headers.insert("cookie".to_owned(), joined);
        }

        let seen_before = self.stack.upstream_requests().await.len();
        let metadata_before = self.stack.gateway_dynamic_metadata_count();
        let logged_before = self.stack.gateway_requests_logged();
        let mut builder = self.client.request(method.clone(), &url);
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return vec![self.redactor.text(&format!("request to {url} failed: {e}"))],
        };
        let status = response.status().as_u16();
        let response_headers: Vec<(String, String)> = crate::header_pairs(response.headers());
        let text = response.text().await.unwrap_or_default();
        if let Some(before) = logged_before {
            self.wait_for_gateway_log(before + 1).await;
        }
        let upstream: Vec<_> = self
            .stack
            .upstream_requests()
            .await
            .into_iter()
            .skip(seen_before)
            .collect();
        let values_of = |name: &str| -> Vec<String> {
            response_headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect()
        };
        let location = values_of("location").into_iter().next();
        self.last_location = location
            .as_deref()
            .and_then(|l| Url::parse(&url).ok().and_then(|base| base.join(l).ok()));

        // ID tokens the upstream saw are secrets from now on; fetch the JWKS if needed.
        let wants_id_token = expect
            .upstream_received
            .as_ref()
            .is_some_and(|u| u.headers.values().any(|h| h.id_token.is_some()))
            || expect.headers.values().any(|h| h.id_token.is_some());
        let mut problems = Vec::new();
        if wants_id_token && self.jwks.is_none() {
            match self.fetch_jwks().await {
                Ok(jwks) => self.jwks = Some(jwks),
                Err(e) => problems.push(format!("cannot fetch the IdP's JWKS: {e}")),
            }
        }

        let issuer = self.stack.issuer().to_owned();
        let client_id = self.stack.client_id().to_owned();
        let id_ctx = self.jwks.as_ref().map(|jwks| IdTokenContext {
            jwks,
            issuer: &issuer,
            audience: &client_id,
        });
        let mut p = Problems::new(&self.vars, &self.redactor);
        p.list = problems;
        if let Some(want) = expect.status {
            p.status(want, status);
        }
        if let Some(l) = &expect.location {
            p.location(l, location.as_deref());
        }
        if let Some(s) = &expect.state_claims {
            p.state_claims(s, location.as_deref());
        }
        for (header, check) in &expect.headers {
            p.header(
                &format!("response header {header}"),
                check,
                &values_of(header),
                id_ctx.as_ref(),
            );
        }
        if let Some(want) = expect
            .body_contains
            .as_deref()
            .and_then(|t| p.want("body", t))
            && !text.contains(&want)
        {
            p.push(format!(
                "body: expected to contain {want:?}, actual {:?}",
                clip(&text, 200)
            ));
        }
        p.body_json(&expect.body_json, &text);
        if expect.upstream_received.is_some() && self.stack.is_external() {
            self.notes.push(
                "what the LLM received: not checkable against a URL target (skipped)".to_owned(),
            );
        } else if let Some(u) = &expect.upstream_received {
            if let Some(reached) = u.reached
                && reached == upstream.is_empty()
            {
                p.push(format!(
                    "upstream: expected the request {} the LLM, actual {} request(s) received",
                    if reached { "to reach" } else { "not to reach" },
                    upstream.len()
                ));
            }
            if !u.headers.is_empty() {
                match upstream.last() {
                    Some(seen) => {
                        for (header, check) in &u.headers {
                            let values: Vec<String> = seen
                                .header_values(header)
                                .into_iter()
                                .map(str::to_owned)
                                .collect();
                            p.header(
                                &format!("upstream header {header}"),
                                check,
                                &values,
                                id_ctx.as_ref(),
                            );
                        }
                    }
                    None => p.push("upstream headers: expected a request at the LLM, actual none"),
                }
            }
        }
        let problems = p.list;

        // Identity headers are secrets from now on (JWTs print as `[jwt]` anyway).
        for seen in &upstream {
            for (k, v) in &seen.headers {
                if (k == "jwt" || k == "authorization") && !self.redactor.is_jwt(v) {
                    self.redactor.add_secret(v);
                }
            }
        }
        let r = &self.redactor;
        let request = RequestRecord {
            method: method.as_str().to_owned(),
            url: r.text(&url),
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), r.header(k, v)))
                .collect(),
            body_bytes: body.as_ref().map(String::len),
        };
        let response = ResponseRecord {
            status,
            headers: header_map(
                r,
                response_headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
                VOLATILE_HEADERS,
            ),
            body: body_node(r, &text),
        };
        let gateway_dynamic_metadata = self
            .stack
            .gateway_dynamic_metadata_since(metadata_before)
            .iter()
            .map(|m| r.json(m))
            .collect();
        let upstream_received = upstream
            .iter()
            .map(|seen| UpstreamRecord {
                method: seen.method.clone(),
                path: seen.path.clone(),
                headers: header_map(
                    r,
                    seen.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    &["content-length"],
                ),
            })
            .collect();
        self.record(
            name,
            StepKind::Request {
                request,
                response,
                upstream_received,
                gateway_dynamic_metadata,
            },
        );
        problems
    }

    async fn login(&mut self, name: &str, spec: &LoginSpec, expect: &LoginExpect) -> Vec<String> {
        let driver = spec.driver.unwrap_or(self.scenario.stack.login);
        let start = if spec.start_from == LAST_LOCATION {
            match &self.last_location {
                Some(url) => url.clone(),
                None => {
                    return vec![
                        "start_from: last_location, but no earlier response had a location".into(),
                    ];
                }
            }
        } else {
            match super::checks::interpolate(&spec.start_from, &self.vars)
                .and_then(|s| Url::parse(&s).map_err(|e| format!("start_from: {e}")))
            {
                Ok(url) => url,
                Err(e) => return vec![e],
            }
        };
        let timeout = spec
            .timeout_seconds
            .map_or(self.login_timeout, Duration::from_secs);
        let credentials = match &self.credentials {
            Some((user, password)) => Credentials::new(user.clone(), password.clone()),
            None => Credentials::new(spec.user.clone(), spec.password.clone()),
        };
        self.redactor.add_secret(credentials.password());
        let result = login::login(driver, &start, &credentials, timeout).await;

        let (outcome_text, mut problems) = login_outcome(&result, expect.outcome);
        problems.extend(rejection_problems(
            &result,
            expect.callback_rejected.as_ref(),
        ));
        let rejected_status = match &result {
            Err(LoginError::CallbackRejected { status, .. }) => Some(*status),
            _ => None,
        };
        let outcome = result.ok();
        if let Some(outcome) = &outcome {
            for cookie in &outcome.cookies {
                self.redactor.add_secret(cookie.value.expose());
            }
        }
        let mut p = Problems::new(&self.vars, &self.redactor);
        p.list = problems
            .into_iter()
            .map(|m| self.redactor.text(&m))
            .collect();
        if let Some(outcome) = &outcome {
            if let Some(want) = &expect.cookie {
                match outcome.cookie(&want.name) {
                    None => p.push(format!(
                        "cookie {}: expected present, actual cookies {:?}",
                        want.name,
                        outcome
                            .cookies
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                    )),
                    Some(cookie) => {
                        if let Some(pattern) = &want.value_pattern {
                            match regex::Regex::new(pattern) {
                                Ok(re) if re.is_match(cookie.value.expose()) => {}
                                Ok(_) => p.push(format!(
                                    "cookie {}: expected a value matching {pattern:?}, actual {}",
                                    want.name,
                                    shape(cookie.value.expose())
                                )),
                                Err(e) => p.push(format!("cookie pattern {pattern:?}: {e}")),
                            }
                        }
                        if let Some(http_only) = want.http_only
                            && http_only != cookie.http_only
                        {
                            p.push(format!(
                                "cookie {}: expected HttpOnly {http_only}, actual {}",
                                want.name, cookie.http_only
                            ));
                        }
                    }
                }
            }
            if let Some(want) = expect
                .final_url
                .as_deref()
                .and_then(|t| p.want("final URL", t))
            {
                p.equal("final URL", &want, outcome.final_url.as_str());
            }
            if let Some(want) = expect.final_status {
                match outcome.final_status {
                    Some(actual) if actual == want => {}
                    actual => p.push(format!("final status: expected {want}, actual {actual:?}")),
                }
            }
            if let Some(want) = expect
                .page_contains
                .as_deref()
                .and_then(|t| p.want("page", t))
                && !outcome.page_text.contains(&want)
            {
                p.push(format!(
                    "page: expected to contain {want:?}, actual {:?}",
                    clip(&outcome.page_text, 200)
                ));
            }
        }
        let problems = p.list;

        let r = &self.redactor;
        let record = LoginRecord {
            driver: driver.to_string(),
            user: spec.user.clone(),
            start: if spec.start_from == LAST_LOCATION {
                format!("last_location: {}", r.text(start.as_str()))
            } else {
                r.text(start.as_str())
            },
            outcome: r.text(&outcome_text),
            final_url: outcome.as_ref().map(|o| r.text(o.final_url.as_str())),
            final_status: outcome
                .as_ref()
                .and_then(|o| o.final_status)
                .or(rejected_status),
            cookies: outcome
                .as_ref()
                .map(|o| {
                    o.cookies
                        .iter()
                        .map(|c| CookieRecord {
                            name: c.name.clone(),
                            value: shape(c.value.expose()),
                            path: c.path.clone(),
                            http_only: c.http_only,
                            secure: c.secure,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            hops: outcome
                .as_ref()
                .map(|o| o.hops.iter().map(|h| r.text(h)).collect())
                .unwrap_or_default(),
            page: outcome.as_ref().map(|o| r.text(&clip(&o.page_text, 300))),
        };
        self.record(name, StepKind::Login { login: record });
        self.last_login = outcome;
        problems
    }

    /// A call to the mock IdP's admin API, recorded like a request step.
    async fn idp_admin(
        &mut self,
        name: &str,
        spec: &IdpAdminSpec,
        expect: &IdpAdminExpect,
    ) -> Vec<String> {
        let vars = self.vars.clone();
        let fill = |text: &str| super::checks::interpolate(text, &vars);
        let prepared = (|| -> Result<_, String> {
            let url = format!("{}{}", self.stack.idp_url(), fill(&spec.path)?);
            let method = http_method(&spec.method)?;
            let body = match &spec.body {
                Some(yaml) => {
                    let json = serde_json::to_string(yaml).map_err(|e| format!("body: {e}"))?;
                    Some(fill(&json)?)
                }
                None => None,
            };
            Ok((url, method, body))
        })();
        let (url, method, body) = match prepared {
            Ok(p) => p,
            Err(e) => return vec![e],
        };
        let mut request = self.client.request(method.clone(), &url);
        if let Some(body) = &body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let (status, text) = match request.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap_or_default())
            }
            Err(e) => return vec![format!("idp_admin {method} {url}: {e}")],
        };
        let mut p = Problems::new(&self.vars, &self.redactor);
        match expect.status {
            Some(want) => p.status(want, status),
            None if !(200..300).contains(&status) => p.push(format!(
                "status: expected 2xx, actual {status}: {}",
                clip(&text, 200)
            )),
            None => {}
        }
        p.body_json(&expect.body_json, &text);
        let problems = p.list;
        let r = &self.redactor;
        let request = RequestRecord {
            method: method.as_str().to_owned(),
            url: r.text(&url),
            headers: BTreeMap::new(),
            body_bytes: body.as_ref().map(String::len),
        };
        let response = ResponseRecord {
            status,
            headers: BTreeMap::new(),
            body: body_node(r, &text),
        };
        self.record(
            name,
            StepKind::Request {
                request,
                response,
                upstream_received: Vec::new(),
                gateway_dynamic_metadata: Vec::new(),
            },
        );
        problems
    }

    /// The last login's user logs out at the IdP: a `GET` of its `end_session_endpoint`
    /// with the IdP's cookies the http driver kept, then a `GET` of every frame of the page
    /// (without the gateway's cookies unless `frame_cookies`: see [`IdpLogoutSpec`]).
    async fn idp_logout(
        &mut self,
        name: &str,
        spec: &IdpLogoutSpec,
        expect: &IdpLogoutExpect,
    ) -> Vec<String> {
        let Some(jar) = self
            .last_login
            .as_ref()
            .and_then(|l| l.idp_cookies.as_ref())
            .map(login::IdpCookies::jar)
        else {
            return vec![
                "idp_logout: needs an earlier successful login with the http driver (whose IdP cookies it sends)"
                    .into(),
            ];
        };
        let endpoint = match self.discovery().await.and_then(|doc| {
            doc.get("end_session_endpoint")
                .and_then(serde_json::Value::as_str)
                .and_then(|e| Url::parse(e).ok())
                .ok_or_else(|| "discovery: no end_session_endpoint URL".to_owned())
        }) {
            Ok(url) => url,
            Err(e) => return vec![format!("idp_logout: {e}")],
        };
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .cookie_provider(jar)
            .build()
        {
            Ok(c) => c,
            Err(e) => return vec![format!("idp_logout: {e}")],
        };
        let (status, html) = match client.get(endpoint.clone()).send().await {
            Ok(resp) => (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            ),
            Err(e) => return vec![format!("idp_logout: GET {endpoint}: {e}")],
        };
        let frame_cookie = if spec.frame_cookies {
            self.last_login
                .as_ref()
                .and_then(LoginOutcome::cookie_header)
        } else {
            None
        };
        let mut frames = Vec::new();
        let mut problems = Vec::new();
        for src in login::http::iframe_sources(&html) {
            let url = match endpoint.join(&src) {
                Ok(url) => url,
                Err(e) => {
                    problems.push(format!("frame {src:?} is not a URL: {e}"));
                    continue;
                }
            };
            // The IdP session id travels in the frame's URL: a secret from now on.
            for (key, value) in url.query_pairs() {
                if key == "sid" {
                    self.redactor.add_secret(&value);
                }
            }
            let mut request = self.client.get(url.clone());
            if let Some(cookie) = &frame_cookie {
                request = request.header(reqwest::header::COOKIE, cookie);
            }
            match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers: Vec<(String, String)> = crate::header_pairs(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    frames.push((url, status, headers, text));
                }
                Err(e) => problems.push(format!("frame {url}: {e}")),
            }
        }
        let mut p = Problems::new(&self.vars, &self.redactor);
        p.list = problems
            .into_iter()
            .map(|m| self.redactor.text(&m))
            .collect();
        match expect.status {
            Some(want) => p.status(want, status),
            None if !(200..300).contains(&status) => p.push(format!(
                "status: expected 2xx, actual {status}: {}",
                clip(&html, 200)
            )),
            None => {}
        }
        if let Some(want) = expect.frames
            && want != frames.len()
        {
            p.push(format!(
                "frames: expected {want}, actual {} ({:?})",
                frames.len(),
                frames
                    .iter()
                    .map(|(url, ..)| self.redactor.text(url.as_str()))
                    .collect::<Vec<_>>()
            ));
        }
        if let Some(want) = expect.frame_status {
            for (url, status, _, text) in &frames {
                if *status != want {
                    p.push(format!(
                        "frame {}: expected status {want}, actual {status}: {}",
                        self.redactor.text(url.as_str()),
                        self.redactor.text(&clip(text, 200))
                    ));
                }
            }
        }
        let problems = p.list;
        let r = &self.redactor;
        let record = IdpLogoutRecord {
            url: r.text(endpoint.as_str()),
            status,
            frames: frames
                .iter()
                .map(|(url, status, headers, text)| FrameRecord {
                    url: r.text(url.as_str()),
                    response: ResponseRecord {
                        status: *status,
                        headers: header_map(
                            r,
                            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                            VOLATILE_HEADERS,
                        ),
                        body: body_node(r, text),
                    },
                })
                .collect(),
        };
        self.record(name, StepKind::IdpLogout { idp_logout: record });
        problems
    }

    async fn redis(&mut self, name: &str, action: RedisAction) -> Vec<String> {
        let (label, result) = match action {
            RedisAction::Stop => ("stopped", self.stack.redis_stop().await),
            RedisAction::Start => ("started again", self.stack.redis_start().await),
            RedisAction::Failover => ("failed over", self.failover(false).await),
            RedisAction::KillMaster => ("master killed", self.failover(true).await),
        };
        self.record(
            name,
            StepKind::Redis {
                redis: label.to_owned(),
            },
        );
        match result {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("redis: {e}")],
        }
    }

    async fn extauth(&mut self, name: &str, action: ExtauthAction) -> Vec<String> {
        let (label, result) = match action {
            ExtauthAction::Kill(i) => (format!("replica {i} killed"), self.stack.extauth_kill(i)),
            ExtauthAction::Restart(i) => (
                format!("replica {i} restarted"),
                self.stack.extauth_restart(i).await,
            ),
        };
        self.record(name, StepKind::Extauth { extauth: label });
        match result {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("extauth: {e}")],
        }
    }

    /// A failover (or a master kill); the time Redis took goes in the step's notes (not in
    /// the transcript: it varies from run to run).
    async fn failover(&mut self, kill: bool) -> Result<(), String> {
        let took = if kill {
            self.stack.redis_kill_master().await?
        } else {
            self.stack.redis_failover().await?
        };
        self.notes.push(format!(
            "Redis reported the new master after {} ms",
            took.as_millis()
        ));
        Ok(())
    }

    fn record(&mut self, name: &str, what: StepKind) {
        self.transcript.steps.push(StepRecord {
            step: name.to_owned(),
            what,
        });
    }

    /// Waits (at most [`GATEWAY_LOG_WAIT`]) until the gateway has logged `requests`
    /// requests: what it observed (ext_authz's `dynamic_metadata`) is read from that log.
    async fn wait_for_gateway_log(&mut self, requests: usize) {
        let started = Instant::now();
        while self
            .stack
            .gateway_requests_logged()
            .is_some_and(|n| n < requests)
        {
            if started.elapsed() > GATEWAY_LOG_WAIT {
                self.notes.push(format!(
                    "the gateway had not logged the request after {} ms",
                    GATEWAY_LOG_WAIT.as_millis()
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The IdP's discovery document.
    async fn discovery(&self) -> Result<serde_json::Value, String> {
        let discovery = format!("{}/.well-known/openid-configuration", self.stack.issuer());
        self.client
            .get(&discovery)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("{discovery}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{discovery}: {e}"))
    }

    async fn fetch_jwks(&self) -> Result<JwkSet, String> {
        let doc = self.discovery().await?;
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| "discovery: no jwks_uri".to_owned())?
            .to_owned();
        self.client
            .get(&jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("{jwks_uri}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{jwks_uri}: {e}"))
    }
}

/// A body as JSON when it parses, else clipped text; `None` when empty.
fn body_node(redactor: &Redactor, text: &str) -> Option<Node> {
    if text.trim().is_empty() {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => Some(redactor.json(&json)),
        Err(_) => Some(Node::Text(redactor.text(&clip(text, 300)))),
    }
}

/// A secret's shape: its length and alphabet, never its characters.
pub(crate) fn shape(value: &str) -> String {
    let alphabet = if value
        .chars()
        .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c) || c == '=')
    {
        "base32"
    } else if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '=')
    {
        "base64url"
    } else {
        "text"
    };
    format!("[redacted: {} chars, {alphabet}]", value.len())
}

/// The problems with a rejected callback's answer against `want`
/// (`expect: {callback_rejected: {status, body_contains}}`): its exact status, its body.
/// Nothing when the login was not a rejection (`login_outcome` reports that).
pub(crate) fn rejection_problems(
    result: &Result<LoginOutcome, LoginError>,
    want: Option<&RejectionExpect>,
) -> Vec<String> {
    let (
        Some(want),
        Err(LoginError::CallbackRejected {
            status,
            body_excerpt,
            ..
        }),
    ) = (want, result)
    else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if *status != want.status {
        problems.push(format!(
            "callback_rejected: expected status {}, actual {status} (body {body_excerpt:?})",
            want.status
        ));
    }
    if let Some(text) = &want.body_contains
        && !body_excerpt.contains(text.as_str())
    {
        problems.push(format!(
            "callback_rejected: expected a body containing {text:?}, actual {body_excerpt:?}"
        ));
    }
    problems
}

/// The outcome text recorded for a login, and the problems with it against `want`: the
/// variant must match, and a `callback_rejected` answer must have set no cookie.
pub(crate) fn login_outcome(
    result: &Result<LoginOutcome, LoginError>,
    want: LoginResult,
) -> (String, Vec<String>) {
    let outcome_text = match result {
        Ok(_) => "success".to_owned(),
        Err(LoginError::InvalidCredentials) => "invalid_credentials".to_owned(),
        Err(LoginError::CallbackRejected { .. }) => "callback_rejected".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let mut problems = Vec::new();
    match (result, want) {
        (Ok(_), LoginResult::Success)
        | (Err(LoginError::InvalidCredentials), LoginResult::InvalidCredentials) => {}
        (
            Err(LoginError::CallbackRejected {
                status,
                set_cookie,
                cookie_names,
                ..
            }),
            LoginResult::CallbackRejected,
        ) => {
            if *set_cookie {
                problems.push(format!(
                    "callback_rejected: the rejecting response (status {status}) must set no \
                     session cookie, actual cookies {cookie_names:?}"
                ));
            }
        }
        (actual, want) => problems.push(format!(
            "login outcome: expected {}, actual {}",
            match want {
                LoginResult::Success => "success",
                LoginResult::InvalidCredentials => "invalid_credentials",
                LoginResult::CallbackRejected => "callback_rejected",
            },
            match actual {
                // The status and body say why the gateway refused it.
                Err(e @ LoginError::CallbackRejected { .. }) => format!("callback_rejected ({e})"),
                _ => outcome_text.clone(),
            }
        )),
    }
    (outcome_text, problems)
}
