//! `harness load --target idp`: complete logins per second at mock-idp against panva's
//! oidc-provider, in the same run, same realm, same client, same virtual users.
//!
//! A *complete login* is what a user and a relying party make an IdP do, without the gateway
//! or extauth (their cost is the same whichever IdP is behind them):
//! 1. `GET` the authorization endpoint (`response_type=code`, `scope=openid`, a fresh
//!    `state` and `nonce`), following the IdP's redirects to its login form;
//! 2. `POST` the form (user and password), following the IdP's redirects (and
//!    oidc-provider's consent page) until one leaves the IdP: the `redirect_uri` with the
//!    `code`;
//! 3. `POST` the token endpoint (`authorization_code`, `client_secret_post`): `200` with an
//!    ID token.
//!
//! Each virtual user keeps one HTTP client (keep-alive connections, no cookie jar: the IdP's
//! cookies are carried by hand for one login and dropped after it, so that every login starts
//! without an IdP session and meets the form). The two IdPs take turns in slices (1 s), in
//! alternating order, after one unrecorded warm-up slice each, as the check load does
//! ([`super::check`]): both see the same noise of a shared machine.
//!
//! mock-idp runs inside the harness (as the stacks run it); oidc-provider under node, as
//! its own process.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use url::Url;

use super::Series;
use super::check::Ratio;
use crate::idp::{IdpMode, IdpSetup, RunningIdp};
use crate::login::Credentials;
use crate::login::http::{LoginForm, consent_action};

/// The redirect URI the logins ask for (nothing listens there: the code is read from the
/// IdP's redirect, never followed).
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// Redirects followed at the IdP in one login, at most.
const MAX_HOPS: usize = 12;
/// The most virtual users.
pub const MAX_USERS: usize = 256;

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct IdpLoadOptions {
    /// Virtual users per IdP.
    pub users: usize,
    /// Recorded time per IdP.
    pub duration: Duration,
    /// One slice.
    pub slice: Duration,
    /// The unrecorded first turn of each IdP.
    pub warmup: Duration,
    /// Bound on one login.
    pub timeout: Duration,
    /// The user.
    pub credentials: Credentials,
    /// Print each round on stderr.
    pub progress: bool,
}

/// The outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdpLoadReport {
    /// Virtual users per IdP.
    pub users: usize,
    /// Recorded seconds per IdP.
    pub duration_seconds: f64,
    /// Rounds run.
    pub rounds: u32,
    /// mock-idp's logins, then oidc-provider's.
    pub series: Vec<Series>,
    /// Failed logins per IdP and kind.
    pub errors: BTreeMap<String, u64>,
    /// mock-idp over oidc-provider.
    pub ratios: Vec<Ratio>,
}

/// One IdP under load: where its endpoints are.
#[derive(Debug, Clone)]
struct Target {
    name: &'static str,
    authorize: Url,
    token: Url,
    client_id: String,
    client_secret: String,
}

/// Runs the load: both IdPs started from `realm_file` (client `client_id`), loaded in turns,
/// then stopped. `dir` holds oidc-provider's log.
pub async fn run(
    realm_file: &Path,
    client_id: &str,
    dir: &Path,
    options: &IdpLoadOptions,
) -> Result<IdpLoadReport, String> {
    if !(1..=MAX_USERS).contains(&options.users) {
        return Err(format!(
            "--users: expected 1 to {MAX_USERS}, got {}",
            options.users
        ));
    }
    if options.duration.is_zero() || options.duration > super::check::MAX_DURATION {
        return Err("--duration: expected more than 0 and at most 3600 s".into());
    }
    let realm = mock_idp::Realm::from_file(realm_file)
        .map_err(|e| format!("{}: {e}", realm_file.display()))?;
    let client_secret = realm
        .client(client_id)
        .and_then(|c| c.secret())
        .map(|s| s.expose().to_owned())
        .ok_or_else(|| {
            format!(
                "{}: no confidential client {client_id}",
                realm_file.display()
            )
        })?;
    let realm_name = realm.name().to_owned();
    let setup = IdpSetup {
        realm_file: realm_file.to_owned(),
        client_id: client_id.to_owned(),
        redirect_uris: vec![REDIRECT_URI.to_owned()],
        dir: dir.to_owned(),
    };
    let mock = RunningIdp::start(&IdpMode::Mock, realm.clone(), &setup)
        .await
        .map_err(|e| e.to_string())?;
    let node = match RunningIdp::start(&IdpMode::OidcProvider, realm, &setup).await {
        Ok(node) => node,
        Err(e) => {
            mock.stop().await;
            return Err(e.to_string());
        }
    };
    let result = async {
        let mut targets = Vec::new();
        for (name, idp) in [("mock-idp", &mock), ("oidc-provider", &node)] {
            targets.push(
                discover(
                    name,
                    &idp.base_url(),
                    &realm_name,
                    client_id,
                    &client_secret,
                )
                .await?,
            );
        }
        if options.progress {
            eprintln!(
                "load: logins at {} (in-process) and {} (node pid {})",
                targets[0].authorize.origin().ascii_serialization(),
                targets[1].authorize.origin().ascii_serialization(),
                node.pid().map_or("?".to_owned(), |p| p.to_string())
            );
        }
        measure(&targets, options).await
    }
    .await;
    node.stop().await;
    mock.stop().await;
    result
}

/// The IdP's authorization and token endpoints, from its discovery document.
async fn discover(
    name: &'static str,
    base: &str,
    realm: &str,
    client_id: &str,
    client_secret: &str,
) -> Result<Target, String> {
    let url = format!("{base}/realms/{realm}/.well-known/openid-configuration");
    let document: serde_json::Value = reqwest::get(&url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{name} discovery {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{name} discovery {url}: {e}"))?;
    let endpoint = |field: &str| {
        document
            .get(field)
            .and_then(serde_json::Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| format!("{name} discovery: no `{field}` URL"))
    };
    Ok(Target {
        name,
        authorize: endpoint("authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
        client_id: client_id.to_owned(),
        client_secret: client_secret.to_owned(),
    })
}

async fn measure(targets: &[Target], options: &IdpLoadOptions) -> Result<IdpLoadReport, String> {
    let empty = Histogram::<u64>::new(3).map_err(|e| format!("histogram: {e}"))?;
    let mut clients: Vec<Vec<Client>> = Vec::new();
    for _ in targets {
        let mut users = Vec::new();
        for _ in 0..options.users {
            users.push(
                Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(options.timeout)
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?,
            );
        }
        clients.push(users);
    }
    let mut histograms: Vec<Histogram<u64>> = targets.iter().map(|_| empty.clone()).collect();
    let mut active = vec![Duration::ZERO; targets.len()];
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        let mut scratch = empty.clone();
        let mut ignored = BTreeMap::new();
        slice(
            target,
            &clients[i],
            options,
            options.warmup,
            &mut scratch,
            &mut ignored,
        )
        .await;
    }
    let rounds = u32::try_from(
        options
            .duration
            .as_nanos()
            .div_ceil(options.slice.as_nanos().max(1)),
    )
    .unwrap_or(u32::MAX)
    .max(1);
    let per_slice = options.duration / rounds;
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..targets.len()).collect()
        } else {
            (0..targets.len()).rev().collect()
        };
        for i in order {
            active[i] += slice(
                &targets[i],
                &clients[i],
                options,
                per_slice,
                &mut histograms[i],
                &mut errors,
            )
            .await;
        }
        if options.progress {
            eprintln!(
                "load: round {}/{rounds}  {}",
                round + 1,
                targets
                    .iter()
                    .zip(&histograms)
                    .map(|(t, h)| format!("{}: {} logins", t.name, h.len()))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
    let series: Vec<Series> = targets
        .iter()
        .zip(&histograms)
        .zip(&active)
        .map(|((t, h), a)| Series::of(&format!("login at {}", t.name), h, *a))
        .collect();
    let value = (series[0].count > 0 && series[1].count > 0 && series[1].per_second > 0.0)
        .then(|| series[0].per_second / series[1].per_second);
    let ratios = vec![
        Ratio {
            name: "mock-idp logins/s / oidc-provider logins/s".into(),
            value,
            target: Some(">= 10x".into()),
            met: value.map(|v| v >= 10.0),
        },
        Ratio {
            name: "mock-idp login p50 / oidc-provider login p50".into(),
            value: (series[0].count > 0 && series[1].count > 0 && series[1].p50_ms > 0.0)
                .then(|| series[0].p50_ms / series[1].p50_ms),
            target: None,
            met: None,
        },
    ];
    Ok(IdpLoadReport {
        users: options.users,
        duration_seconds: options.duration.as_secs_f64(),
        rounds,
        series,
        errors,
        ratios,
    })
}

/// One turn of one IdP: every user logs in again and again until `length` is over. Returns
/// the time it took.
async fn slice(
    target: &Target,
    clients: &[Client],
    options: &IdpLoadOptions,
    length: Duration,
    histogram: &mut Histogram<u64>,
    errors: &mut BTreeMap<String, u64>,
) -> Duration {
    let started = Instant::now();
    let until = started + length;
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let client = client.clone();
        let target = target.clone();
        let credentials = options.credentials.clone();
        let mut mine = histogram.clone();
        mine.reset();
        let timeout = options.timeout;
        tasks.spawn(async move {
            let mut failed: BTreeMap<String, u64> = BTreeMap::new();
            while Instant::now() < until {
                let begun = Instant::now();
                match tokio::time::timeout(timeout, login(&client, &target, &credentials)).await {
                    Ok(Ok(())) => {
                        let us = u64::try_from(begun.elapsed().as_micros())
                            .unwrap_or(u64::MAX / 4)
                            .max(1);
                        let _ = mine.record(us);
                    }
                    Ok(Err(kind)) => *failed.entry(kind).or_default() += 1,
                    Err(_) => *failed.entry("timeout".into()).or_default() += 1,
                }
            }
            (mine, failed)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((mine, failed)) => {
                let _ = histogram.add(&mine);
                for (kind, n) in failed {
                    *errors
                        .entry(format!("{}: {kind}", target.name))
                        .or_default() += n;
                }
            }
            Err(e) => {
                *errors
                    .entry(format!("{}: task: {e}", target.name))
                    .or_default() += 1;
            }
        }
    }
    started.elapsed()
}

/// The IdP's cookies of one login, by name.
#[derive(Default)]
struct Cookies(Vec<(String, String)>);

impl Cookies {
    fn take_from(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) else {
                continue;
            };
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            self.0.retain(|(n, _)| *n != name);
            if !value.is_empty() {
                self.0.push((name, value));
            }
        }
    }

    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// One complete login (see the module docs); `Err` names the failure's kind.
async fn login(client: &Client, target: &Target, credentials: &Credentials) -> Result<(), String> {
    let state = random_hex();
    let nonce = random_hex();
    let mut url = target.authorize.clone();
    url.query_pairs_mut()
        .append_pair("client_id", &target.client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce);
    let origin = target.authorize.origin();
    let mut cookies = Cookies::default();
    let send = |request: reqwest::RequestBuilder, cookies: &Cookies| {
        let request = match cookies.header() {
            Some(h) => request.header(COOKIE, h),
            None => request,
        };
        request.send()
    };
    let http = |e: reqwest::Error| {
        if e.is_timeout() {
            "timeout".to_owned()
        } else if e.is_connect() {
            "connect".to_owned()
        } else {
            "http error".to_owned()
        }
    };

    // 1. The login form.
    let mut hops = 0;
    let (page_url, html) = loop {
        let answer = send(client.get(url.clone()), &cookies)
            .await
            .map_err(http)?;
        cookies.take_from(&answer);
        if answer.status().is_redirection() {
            url = next_url(&answer, &url)?;
            hops += 1;
            if hops > MAX_HOPS {
                return Err("too many redirects before the form".into());
            }
            continue;
        }
        let status = answer.status();
        let html = answer.text().await.map_err(http)?;
        if status != StatusCode::OK {
            return Err(format!("form page: status {}", status.as_u16()));
        }
        break (url, html);
    };
    let form = LoginForm::find(&html).ok_or("no login form")?;
    let action = page_url
        .join(&form.action)
        .map_err(|_| "form action is not a URL")?;
    let fields = form.fields(credentials);

    // 2. The form, then the IdP's redirects to the redirect URI.
    let mut answer = send(client.post(action.clone()).form(&fields), &cookies)
        .await
        .map_err(http)?;
    let mut current = action;
    let mut consented = false;
    let callback = loop {
        cookies.take_from(&answer);
        if answer.status().is_redirection() {
            let next = next_url(&answer, &current)?;
            hops += 1;
            if next.origin() != origin || hops > MAX_HOPS {
                break next;
            }
            answer = send(client.get(next.clone()), &cookies)
                .await
                .map_err(http)?;
            current = next;
            continue;
        }
        let status = answer.status();
        let html = answer.text().await.map_err(http)?;
        match consent_action(&html) {
            Some(consent) if status == StatusCode::OK && !consented => {
                consented = true;
                let target = current
                    .join(&consent)
                    .map_err(|_| "consent action is not a URL")?;
                answer = send(
                    client.post(target.clone()).form(&[("prompt", "consent")]),
                    &cookies,
                )
                .await
                .map_err(http)?;
                current = target;
            }
            _ => return Err(format!("after the form: status {}", status.as_u16())),
        }
    };
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(state.as_str()) {
        return Err("redirect without our state".into());
    }
    let code = param("code").ok_or("redirect without a code")?;

    // 3. The code exchange.
    let answer = client
        .post(target.token.clone())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", target.client_id.as_str()),
            ("client_secret", target.client_secret.as_str()),
        ])
        .send()
        .await
        .map_err(http)?;
    let status = answer.status();
    let body: serde_json::Value = answer
        .json()
        .await
        .map_err(|_| format!("token: status {} without JSON", status.as_u16()))?;
    if status != StatusCode::OK {
        return Err(format!(
            "token: status {} ({})",
            status.as_u16(),
            body.get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
        ));
    }
    if body
        .get("id_token")
        .and_then(serde_json::Value::as_str)
        .is_none()
    {
        return Err("token: no id_token".into());
    }
    Ok(())
}

fn next_url(answer: &reqwest::Response, base: &Url) -> Result<Url, String> {
    let location = answer
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("status {} without a location", answer.status().as_u16()))?;
    base.join(location)
        .map_err(|_| "location is not a URL".to_owned())
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl IdpLoadReport {
    /// The failures, both IdPs.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The report as a text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "harness load --target idp: {} user(s) per IdP, closed loop, {:.0} s per IdP in {} rounds; a login = authorize, form, POST, code exchange",
            self.users, self.duration_seconds, self.rounds
        );
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "series", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for s in &self.series {
            let _ = writeln!(
                out,
                "{:<28} {:>8} {:>9.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                s.name, s.count, s.per_second, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        }
        super::check::write_ratios(&mut out, &self.ratios, 50);
        crate::load::write_errors(&mut out, &self.errors);
        out
    }

    /// The latency distributions as an SVG.
    pub fn svg(&self) -> String {
        let title = format!(
            "harness load --target idp: {} user(s), complete logins",
            self.users
        );
        let series: Vec<&Series> = self.series.iter().collect();
        super::standalone_plot(&title, &series)
    }
}
