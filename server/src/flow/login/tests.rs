//! Properties of the redirect to the IdP, for arbitrary configs (appUrl with paths, ports and
//! IPv6 hosts, scopes, `authEndpointQueryParams`, client ids) loaded through the real
//! manifest parser, and arbitrary original URLs: the authorization URL parses, carries each
//! parameter once, in alphabetical order, each value encoded so that decoding gives it back
//! exactly; `redirect_uri` is `appUrl` + `callbackPath`; `state` verifies back to the
//! original URL, or to `appUrl` + `/` when the return-URL check refuses it.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::super::testkit::{self, Observed, location, rt, wiremock_idp as idp};
use super::super::{CheckRequest, Decision};
use crate::clock::ManualClock;
use crate::env::MapEnv;

const NOW: i64 = 1_768_504_473;

/// The parameters the flow sets itself (config keys with these names are refused).
const FLOW_PARAMS: [&str; 8] = [
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
];
const RESERVED: [&str; 12] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "code",
    "code_verifier",
    "grant_type",
    "refresh_token",
];

/// An `appUrl` as written, in parts.
#[derive(Debug, Clone)]
struct App {
    scheme: &'static str,
    /// As written (IPv6 in brackets, any case).
    host: &'static str,
    /// `:port` as written, if any.
    port: Option<u16>,
    /// Path as written (`""`, or starting with `/`), possibly with a trailing `/`.
    path: String,
}

impl App {
    fn url(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}://{}{port}{}", self.scheme, self.host, self.path)
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }

    /// The spellings of this origin's authority a `Host` header may carry.
    fn authorities(&self) -> Vec<String> {
        let port = self.port.unwrap_or(self.default_port());
        let mut out = vec![format!("{}:{port}", self.host)];
        if port == self.default_port() {
            out.push(self.host.to_owned());
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Config {
    app: App,
    callback_path: String,
    client_id: String,
    scopes: Vec<String>,
    params: BTreeMap<String, String>,
}

impl Config {
    /// The seed's manifests with these fields (every value a JSON string: valid YAML).
    fn manifest(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: oauth-keycloak, namespace: ns}}\n\
             type: extauth.solo.io/oauth\nstringData: {{client-secret: s3cr3t}}\n---\n\
             apiVersion: extauth.solo.io/v1\nkind: AuthConfig\n\
             metadata: {{name: props, namespace: ns}}\nspec:\n  configs:\n  - oauth2:\n      \
             oidcAuthorizationCode:\n        appUrl: {}\n        callbackPath: {}\n        \
             clientId: {}\n        clientSecretRef: {{name: oauth-keycloak, namespace: ns}}\n        \
             issuerUrl: \"${{KEYCLOAK_URL}}/realms/master/\"\n        \
             session: {{redis: {{cookieName: s, options: {{host: \"127.0.0.1:1\"}}}}}}\n        \
             scopes: [{}]\n",
            q(&self.app.url()),
            q(&self.callback_path),
            q(&self.client_id),
            self.scopes
                .iter()
                .map(|s| q(s))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if !self.params.is_empty() {
            text.push_str("        authEndpointQueryParams:\n");
            for (k, v) in &self.params {
                text.push_str(&format!("          {}: {}\n", q(k), q(v)));
            }
        }
        text
    }

    /// What `scope` must say: the configured scopes once each, in order, then `openid`.
    fn expected_scope(&self) -> String {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.scopes {
            if !out.contains(&s.as_str()) {
                out.push(s);
            }
        }
        if !out.contains(&"openid") {
            out.push("openid");
        }
        out.join(" ")
    }
}

fn app() -> impl Strategy<Value = App> {
    (
        prop::sample::select(vec!["http", "https"]),
        prop::sample::select(vec![
            "172.18.0.4",
            "gw.example.com",
            "GW.Example.com",
            "localhost",
            "[::1]",
            "[2001:db8::7]",
            "[2001:DB8:0:0:0:0:0:7]",
        ]),
        prop_oneof![
            Just(None),
            Just(Some(80)),
            Just(Some(443)),
            Just(Some(8080)),
            (1u16..).prop_map(Some),
        ],
        prop_oneof![
            Just(String::new()),
            Just("/".to_owned()),
            "(/[a-zA-Z0-9._~%-]{1,8}){1,3}/?",
        ],
    )
        .prop_map(|(scheme, host, port, path)| App {
            scheme,
            host,
            port,
            path,
        })
}

/// Config text never holds `$` (the manifest loader substitutes `${VAR}`), `{` (it refuses
/// the guide's `{{< ... >}}` placeholders) nor control characters (YAML refuses some raw).
fn config() -> impl Strategy<Value = Config> {
    (
        app(),
        "/[a-zA-Z0-9._~%!&'()*+,;=:@/é-]{0,16}",
        "[!-#%-z|-~][ -#%-z|-~]{0,15}",
        prop::collection::vec(
            prop_oneof![Just("openid".to_owned()), "[a-zA-Z0-9:_./-]{1,10}"],
            0..4,
        ),
        prop::collection::btree_map(
            prop_oneof![
                prop::sample::select(vec!["prompt", "kc_idp_hint", "login_hint", "acr_values"])
                    .prop_map(str::to_owned),
                "[!-#%-z|-~][ -#%-z|-~]{0,8}",
            ],
            "[^${\\pC\\p{Zl}\\p{Zp}]{0,12}",
            0..4,
        ),
    )
        .prop_map(|(app, callback_path, client_id, scopes, mut params)| {
            params.retain(|k, _| !RESERVED.contains(&k.as_str()));
            Config {
                app,
                callback_path,
                client_id,
                scopes,
                params,
            }
        })
}

/// The request that starts the login: its URL on the app's origin (kept by the return-URL
/// check), or elsewhere (replaced by `appUrl` + `/`), or anything at all.
#[derive(Debug, Clone)]
enum Original {
    /// One of the origin's authority spellings (by index), a plain path and query.
    SameOrigin {
        authority: usize,
        path: String,
        query: Option<String>,
    },
    /// Another host, port or scheme.
    Elsewhere {
        scheme: &'static str,
        host: String,
        path: String,
    },
    /// Arbitrary host and path.
    Noise {
        scheme: &'static str,
        host: String,
        path: String,
    },
}

fn original() -> impl Strategy<Value = Original> {
    prop_oneof![
        3 => (
            0usize..2,
            "/[a-zA-Z0-9._~%/-]{0,40}",
            prop::option::of("[a-zA-Z0-9=&%._~+/-]{0,40}"),
        )
            .prop_map(|(authority, path, query)| Original::SameOrigin {
                authority,
                path,
                query
            }),
        1 => (
            prop::sample::select(vec!["http", "https"]),
            prop::sample::select(vec![
                "evil.example".to_owned(),
                "172.18.0.4:81".to_owned(),
                "[::2]".to_owned(),
                "gw.example.com.evil.example".to_owned(),
                "172.18.0.4@evil.example".to_owned(),
            ]),
            "/[a-z]{0,8}",
        )
            .prop_map(|(scheme, host, path)| Original::Elsewhere { scheme, host, path }),
        1 => (
            prop::sample::select(vec!["http", "https"]),
            "\\PC{0,20}",
            "\\PC{0,40}",
        )
            .prop_map(|(scheme, host, path)| Original::Noise { scheme, host, path }),
    ]
}

/// The check for `original` against `app`, and the `state` URL expected for it (`None`:
/// either the URL itself or the fallback, as the return-URL check decides).
fn request(app: &App, original: &Original) -> (CheckRequest, Option<String>) {
    let fallback = format!("{}/", app.url().trim_end_matches('/'));
    let (scheme, host, target, expected) = match original {
        Original::SameOrigin {
            authority,
            path,
            query,
        } => {
            let spellings = app.authorities();
            let host = spellings[authority % spellings.len()].clone();
            let target = match query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let url = format!("{}://{host}{target}", app.scheme);
            (app.scheme, host, target, Some(url))
        }
        Original::Elsewhere { scheme, host, path } => {
            let other_origin = *scheme != app.scheme
                || !app
                    .authorities()
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(host));
            let expected = other_origin.then(|| fallback.clone());
            (*scheme, host.clone(), path.clone(), expected)
        }
        Original::Noise { scheme, host, path } => (*scheme, host.clone(), path.clone(), None),
    };
    let check = CheckRequest::new("POST", scheme, &host, &target)
        .with_header("content-type", "application/json")
        .with_header("accept", "*/*");
    (check, expected)
}

/// Characters that `application/x-www-form-urlencoded` leaves unescaped, plus its `%` and `+`.
fn is_form_encoded_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"*-._%+".contains(&b)
}

fn check_redirect(cfg: &Config, original: &Original) -> Result<(), TestCaseError> {
    let text = cfg.manifest();
    let env = MapEnv::default().with("KEYCLOAK_URL", idp().uri());
    let loaded = testkit::load(&text, &env);
    let clock = ManualClock::new(NOW);
    let flow = testkit::flow_with_store(&loaded, Observed::memory(&clock), &clock);
    let (check, expected_state) = request(&cfg.app, original);
    let decision = rt().block_on(flow.decide(&check));
    let Decision::Deny(deny) = decision else {
        return Err(TestCaseError::fail(
            "a request without a session was allowed",
        ));
    };
    prop_assert_eq!(deny.status.as_u16(), 302, "{}", deny.body);
    let location = location(&deny).unwrap_or_default().to_owned();

    // The authorization URL parses, on the discovered endpoint.
    let url = url::Url::parse(&location)
        .map_err(|e| TestCaseError::fail(format!("Location {location:?}: {e}")))?;
    let (endpoint, raw_query) = location
        .split_once('?')
        .ok_or_else(|| TestCaseError::fail("no query"))?;
    prop_assert_eq!(
        endpoint,
        format!("{}/realms/master/protocol/openid-connect/auth", idp().uri())
    );

    // Encoded so that decoding is unambiguous: only form-urlencoded bytes between `&`/`=`.
    for pair in raw_query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        prop_assert!(
            k.bytes().chain(v.bytes()).all(is_form_encoded_byte),
            "pair {:?} is not form-urlencoded",
            pair
        );
    }

    // Each parameter once, in alphabetical order.
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    prop_assert_eq!(&names, &sorted, "names in order, once each");
    let mut expected_names: Vec<&str> = FLOW_PARAMS.to_vec();
    expected_names.extend(cfg.params.keys().map(String::as_str));
    expected_names.sort_unstable();
    prop_assert_eq!(&names, &expected_names);

    // Decoding gives back exactly each value.
    let q: BTreeMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    prop_assert_eq!(q["client_id"], cfg.client_id.as_str());
    prop_assert_eq!(q["response_type"], "code");
    prop_assert_eq!(q["code_challenge_method"], "S256");
    prop_assert_eq!(q["scope"], cfg.expected_scope());
    for (k, v) in &cfg.params {
        prop_assert_eq!(q[k.as_str()], v.as_str(), "authEndpointQueryParams.{}", k);
    }
    let app_url = cfg.app.url();
    prop_assert_eq!(
        q["redirect_uri"].to_owned(),
        format!("{}{}", app_url.trim_end_matches('/'), cfg.callback_path)
    );

    // `state` verifies back to the original URL, or to `appUrl` + `/`.
    let verified = flow
        .state()
        .verify(q["state"], NOW)
        .map_err(|e| TestCaseError::fail(format!("state does not verify: {e}")))?;
    prop_assert_eq!(q["nonce"], verified.login.nonce.as_str());
    prop_assert_eq!(q["code_challenge"], verified.login.pkce_challenge.as_str());
    let fallback = format!("{}/", app_url.trim_end_matches('/'));
    match expected_state {
        Some(want) => prop_assert_eq!(&verified.claims.state, &want),
        None => {
            let kept = verified.claims.state == check.original_url()
                && url::Url::parse(&verified.claims.state)
                    .is_ok_and(|u| u.origin() == loaded.auth_configs[0].app_origin.origin());
            prop_assert!(
                kept || verified.claims.state == fallback,
                "state {:?} is neither the original URL on the app's origin nor {:?}",
                verified.claims.state,
                fallback
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::testing::proptest_cases(256)))]

    #[test]
    fn the_authorization_url_carries_each_parameter_once_sorted_and_exactly_encoded(
        cfg in config(),
        original in original(),
    ) {
        check_redirect(&cfg, &original)?;
    }
}

/// Found by the property above: `authEndpointQueryParams` came after the flow's own
/// parameters instead of in alphabetical order among them.
#[test]
fn auth_endpoint_query_params_sort_among_the_flows_parameters() {
    let cfg = Config {
        app: App {
            scheme: "http",
            host: "172.18.0.4",
            port: Some(80),
            path: String::new(),
        },
        callback_path: "/openai".into(),
        client_id: "agentgateway".into(),
        scopes: vec!["email".into()],
        params: BTreeMap::from([("prompt".to_owned(), "login".to_owned())]),
    };
    let original = Original::SameOrigin {
        authority: 0,
        path: "/openai".into(),
        query: None,
    };
    if let Err(e) = check_redirect(&cfg, &original) {
        panic!("{e}");
    }
}

#[test]
fn the_manifest_of_a_generated_config_is_the_config() {
    let cfg = Config {
        app: App {
            scheme: "https",
            host: "[::1]",
            port: Some(8443),
            path: "/app/".into(),
        },
        callback_path: "/cb;x=é".into(),
        client_id: "a \"quoted\" client".into(),
        scopes: vec!["email".into(), "email".into()],
        params: BTreeMap::from([("a&b=c".to_owned(), "ü \"x\" \\ y".to_owned())]),
    };
    let env = MapEnv::default().with("KEYCLOAK_URL", "http://127.0.0.1:1");
    let loaded = testkit::load(&cfg.manifest(), &env);
    let c: &Arc<crate::config::OidcConfig> = &loaded.auth_configs[0];
    assert_eq!(c.app_url, "https://[::1]:8443/app");
    assert_eq!(c.redirect_uri, "https://[::1]:8443/app/cb;x=é");
    assert_eq!(c.client_id, "a \"quoted\" client");
    assert_eq!(c.scope, "email openid");
    assert_eq!(c.auth_endpoint_query_params["a&b=c"], "ü \"x\" \\ y");
}
