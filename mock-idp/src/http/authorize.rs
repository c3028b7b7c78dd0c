//! `GET /realms/{realm}/protocol/openid-connect/auth`: the authorization endpoint.
//!
//! Validates the request in Keycloak's order: client and redirect URI first (failures are an
//! HTML error page, since there is nowhere safe to redirect to), then everything else (failures
//! go back to the client as `error=...`). A browser with a live `KEYCLOAK_SESSION` gets a code
//! at once (silent SSO); otherwise the login form is rendered and the request is kept server
//! side under the form's `tab_id`/`session_code`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

use super::error::no_store_html;
use super::login::{SESSION_COOKIE, form_action};
use super::params::{Params, append_query};
use super::{AppState, HttpError, RealmState, pages};
use crate::faults::FaultKind;
use crate::store::{AuthRequest, Pkce, PkceMethod, is_pkce_value};
use crate::tokens::{FOREIGN_ISSUER, Scope};

pub(crate) async fn authorize(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    jar: CookieJar,
) -> Result<Response, HttpError> {
    let rs = state.realm(&realm)?;
    let params = Params::from_query(query.as_deref());
    let title = rs.realm.display_name();

    let client_id = params
        .get("client_id")
        .ok_or_else(|| HttpError::page(title, "Missing parameter: client_id"))?;
    let client = rs
        .realm
        .client(client_id)
        .ok_or_else(|| HttpError::page(title, "Client not found."))?;
    if !client.enabled() {
        return Err(HttpError::page(title, "Client disabled."));
    }
    let invalid_redirect = || HttpError::page(title, "Invalid parameter: redirect_uri");
    let (redirect_uri, redirect_uri_sent) = match params.get("redirect_uri") {
        Some(uri) if is_redirectable(uri) && client.allows_redirect(uri) => (uri, true),
        Some(_) => return Err(invalid_redirect()),
        None => (
            client.default_redirect().ok_or_else(invalid_redirect)?,
            false,
        ),
    };

    let client_state = params.get("state");
    let back = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = client_state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", &rs.issuer));
        found(&append_query(redirect_uri, &pairs))
    };

    match params.get("response_type") {
        None => return back("invalid_request", "Missing parameter: response_type"),
        Some("code") => {}
        Some(_) => return back("unsupported_response_type", "Unsupported response_type"),
    }
    if !client.standard_flow_enabled() {
        return back(
            "unauthorized_client",
            "Client is not allowed to initiate browser login with given response_type. \
             Standard flow is disabled for the client.",
        );
    }
    let pkce = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, None) => None,
        (None, Some(_)) => return back("invalid_request", "Missing parameter: code_challenge"),
        (Some(challenge), method) => {
            // RFC 7636 4.3: the method defaults to `plain`.
            let Some(method) = method.map_or(Some(PkceMethod::Plain), PkceMethod::parse) else {
                return back(
                    "invalid_request",
                    "Invalid parameter: code_challenge_method",
                );
            };
            if !is_pkce_value(challenge) {
                return back("invalid_request", "Invalid parameter: code_challenge");
            }
            Some(Pkce {
                challenge: challenge.to_owned(),
                method,
            })
        }
    };
    // `pkce.code.challenge.method` makes PKCE mandatory, with that method (Keycloak).
    if let Some(required) = client.required_pkce_method() {
        match &pkce {
            None => {
                return back(
                    "invalid_request",
                    "Missing parameter: code_challenge_method",
                );
            }
            Some(p) if PkceMethod::parse(required) != Some(p.method) => {
                return back(
                    "invalid_request",
                    "Invalid parameter: code challenge method is not configured one",
                );
            }
            Some(_) => {}
        }
    }
    // OIDC Core 3.1.2.1: an SSO session older than `max_age` seconds needs a fresh login.
    let max_age = match params.get("max_age").map(str::parse::<u64>) {
        None => None,
        Some(Ok(age)) => Some(age),
        Some(Err(_)) => return back("invalid_request", "Invalid parameter: max_age"),
    };

    let request = AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        redirect_uri_sent,
        state: client_state.map(str::to_owned),
        nonce: params.get("nonce").map(str::to_owned),
        scope: Scope::granted_for(params.get("scope")),
        pkce,
        restart_query: query.clone().unwrap_or_default(),
    };
    let prompt = params.get("prompt").unwrap_or_default();
    let now = state.now();

    if !prompt.split_whitespace().any(|p| p == "login")
        && let Some(sid) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned())
    {
        let mut store = rs.store();
        let session = store
            .live_session(&sid, now)
            .filter(|s| max_age.is_none_or(|age| now.saturating_sub(s.auth_time) <= age))
            .cloned();
        if let Some(session) = session
            && rs
                .realm
                .user_by_id(&session.user_id)
                .is_some_and(|u| u.enabled())
        {
            store.touch_session(&sid, now);
            let flow = FlowFaults::take(&state, &rs, client_id);
            let code = store.issue_code(flow.bind(request), &sid, &session, "0", now);
            drop(store);
            tracing::debug!(realm = %rs.realm.name(), client_id, "silent SSO: code issued");
            return code_redirect(&rs, redirect_uri, client_state, &sid, &code, &flow);
        }
    }
    if prompt.split_whitespace().any(|p| p == "none") {
        return back("login_required", "Login required");
    }

    let (tab_id, session_code) = rs.store().begin_login(request, now);
    let action = form_action(&rs, &session_code, client_id, &tab_id);
    // `login_hint` pre-fills the username, as Keycloak does.
    let hint = params.get("login_hint").unwrap_or_default();
    Ok(no_store_html(
        StatusCode::OK,
        pages::login_page(title, &action, hint, None),
    ))
}

/// A redirect URI we can put in a `Location` header: no fragment (RFC 6749 3.1.2), no control
/// characters.
fn is_redirectable(uri: &str) -> bool {
    !uri.contains('#') && !uri.chars().any(char::is_control)
}

fn found(location: &str) -> Result<Response, HttpError> {
    let value = header::HeaderValue::from_str(location)
        .map_err(|e| HttpError::Internal(format!("unusable Location header: {e}")))?;
    Ok((StatusCode::FOUND, [(header::LOCATION, value)]).into_response())
}

/// The flow faults acting on one authorization response.
#[derive(Debug, Default)]
pub(crate) struct FlowFaults {
    alter_state: bool,
    drop_state: bool,
    wrong_issuer: bool,
    other_client: bool,
}

/// The client a code is bound to under `code_for_other_client`.
pub(crate) const OTHER_CLIENT: &str = "some-other-client";

impl FlowFaults {
    pub(crate) fn take(state: &AppState, rs: &RealmState, client_id: &str) -> Self {
        let mut f = Self::default();
        for kind in state.take_faults(rs.realm.name(), Some(client_id), FaultKind::is_flow_fault) {
            tracing::info!(?kind, "flow fault");
            match kind {
                FaultKind::StateAltered => f.alter_state = true,
                FaultKind::StateDropped => f.drop_state = true,
                FaultKind::AuthorizationIssuerWrong => f.wrong_issuer = true,
                FaultKind::CodeForOtherClient => f.other_client = true,
                _ => {}
            }
        }
        f
    }

    /// The request the code is bound to (another client's under `code_for_other_client`).
    pub(crate) fn bind(&self, mut request: AuthRequest) -> AuthRequest {
        if self.other_client {
            request.client_id = OTHER_CLIENT.to_owned();
        }
        request
    }
}

/// The successful authorization response, with Keycloak's parameter order: `state`,
/// `session_state`, `iss` (RFC 9207), `code`.
pub(crate) fn code_redirect(
    rs: &RealmState,
    redirect_uri: &str,
    state: Option<&str>,
    sid: &str,
    code: &str,
    flow: &FlowFaults,
) -> Result<Response, HttpError> {
    let altered;
    let state = match state {
        _ if flow.drop_state => None,
        Some(s) if flow.alter_state => {
            altered = alter(s);
            Some(altered.as_str())
        }
        s => s,
    };
    let issuer = if flow.wrong_issuer {
        FOREIGN_ISSUER
    } else {
        rs.issuer.as_str()
    };
    let mut pairs = Vec::with_capacity(4);
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("session_state", sid));
    pairs.push(("iss", issuer));
    pairs.push(("code", code));
    found(&append_query(redirect_uri, &pairs))
}

/// A different value of the same shape: the last character changed (a JWT state no longer
/// verifies, an opaque one no longer matches).
fn alter(state: &str) -> String {
    let mut chars: Vec<char> = state.chars().collect();
    if let Some(last) = chars.last_mut() {
        *last = if *last == 'A' { 'B' } else { 'A' };
    }
    let mut out: String = chars.into_iter().collect();
    out.push('x');
    out
}
