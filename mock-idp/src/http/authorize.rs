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
use crate::store::{AuthRequest, Pkce, PkceMethod, is_pkce_value};
use crate::tokens::Scope;

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
        let session = store.live_session(&sid, now).cloned();
        if let Some(session) = session
            && rs
                .realm
                .user_by_id(&session.user_id)
                .is_some_and(|u| u.enabled())
        {
            store.touch_session(&sid, now);
            let code = store.issue_code(request, &sid, &session, "0", now);
            drop(store);
            tracing::debug!(realm = %rs.realm.name(), client_id, "silent SSO: code issued");
            return code_redirect(&rs, redirect_uri, client_state, &sid, &code);
        }
    }
    if prompt.split_whitespace().any(|p| p == "none") {
        return back("login_required", "Login required");
    }

    let (tab_id, session_code) = rs.store().begin_login(request, now);
    let action = form_action(&rs, &session_code, client_id, &tab_id);
    Ok(no_store_html(
        StatusCode::OK,
        pages::login_page(title, &action, "", None),
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

/// The successful authorization response, with Keycloak's parameter order: `state`,
/// `session_state`, `iss` (RFC 9207), `code`.
pub(crate) fn code_redirect(
    rs: &RealmState,
    redirect_uri: &str,
    state: Option<&str>,
    sid: &str,
    code: &str,
) -> Result<Response, HttpError> {
    let mut pairs = Vec::with_capacity(4);
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("session_state", sid));
    pairs.push(("iss", rs.issuer.as_str()));
    pairs.push(("code", code));
    found(&append_query(redirect_uri, &pairs))
}
