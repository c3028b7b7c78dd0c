//! `POST /realms/{realm}/login-actions/authenticate`: the login form's target.
//!
//! Looks up the pending authorization request named by the form's `tab_id`/`session_code`,
//! checks the username (or e-mail) and password, and on success starts an SSO session
//! (`KEYCLOAK_SESSION` cookie) and redirects to the client with a code. A wrong password
//! re-renders the form with Keycloak's "Invalid username or password."; an unknown or stale
//! form gets the "Page has expired" page.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::authorize::{FlowFaults, code_redirect};
use super::error::no_store_html;
use super::params::Params;
use super::{AppState, HttpError, RealmState, pages};
use crate::store::PendingLookup;

/// The IdP's SSO session cookie (Keycloak's name). Its value is the session id.
pub(crate) const SESSION_COOKIE: &str = "KEYCLOAK_SESSION";

/// The login form's `action`: absolute, under the public issuer URL, with Keycloak's query
/// parameters.
pub(crate) fn form_action(
    rs: &RealmState,
    session_code: &str,
    client_id: &str,
    tab_id: &str,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("session_code", session_code)
        .append_pair("execution", &rs.execution)
        .append_pair("client_id", client_id)
        .append_pair("tab_id", tab_id)
        .finish();
    format!("{}/login-actions/authenticate?{query}", rs.issuer)
}

pub(crate) async fn authenticate(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, HttpError> {
    let rs = state.realm(&realm)?;
    let title = rs.realm.display_name();
    let q = Params::from_query(query.as_deref());
    let tab_id = q.get("tab_id").unwrap_or_default();
    let session_code = q.get("session_code").unwrap_or_default();
    let client_id = q.get("client_id").unwrap_or_default();
    let form = Params::parse(&body);
    let username = form.get("username").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let now = state.now();

    let mut store = rs.store();
    let pending = match store.pending(tab_id, session_code, client_id, now) {
        Ok(p) => p.clone(),
        Err(lookup) => {
            drop(store);
            let restart = match lookup {
                PendingLookup::Expired { restart_query } => {
                    Some(format!("{}?{restart_query}", rs.endpoint("auth")))
                }
                PendingLookup::Unknown => None,
            };
            tracing::info!(realm = %rs.realm.name(), "login form expired or unknown");
            return Ok(no_store_html(
                StatusCode::OK,
                pages::expired_page(title, restart.as_deref()),
            ));
        }
    };

    // The form's "Cancel" button: back to the client with `error=access_denied`.
    if form.get("cancel").is_some() {
        store.finish_login(tab_id);
        drop(store);
        let request = pending.request;
        tracing::info!(realm = %rs.realm.name(), client_id, "login cancelled");
        let mut pairs = vec![("error", "access_denied")];
        if let Some(s) = request.state.as_deref() {
            pairs.push(("state", s));
        }
        pairs.push(("iss", rs.issuer.as_str()));
        let location = super::params::append_query(&request.redirect_uri, &pairs);
        let value = HeaderValue::from_str(&location)
            .map_err(|e| HttpError::Internal(format!("unusable Location header: {e}")))?;
        let mut resp = Response::new(axum::body::Body::empty());
        *resp.status_mut() = StatusCode::FOUND;
        resp.headers_mut().insert(header::LOCATION, value);
        return Ok(resp);
    }

    let Some(user) = rs
        .realm
        .user_for_login(username)
        .filter(|u| u.check_password(password))
    else {
        drop(store);
        tracing::info!(realm = %rs.realm.name(), username, "login failed: invalid credentials");
        let action = form_action(&rs, session_code, client_id, tab_id);
        return Ok(no_store_html(
            StatusCode::OK,
            pages::login_page(title, &action, username, Some(pages::INVALID_CREDENTIALS)),
        ));
    };

    store.finish_login(tab_id);
    let (sid, session) = store.create_session(user.id(), now);
    let request = pending.request;
    let flow = FlowFaults::take(&state, &rs, &request.client_id);
    let code = store.issue_code(flow.bind(request.clone()), &sid, &session, "1", now);
    drop(store);
    tracing::info!(realm = %rs.realm.name(), user = %user.username(), client_id, "login succeeded");

    let mut resp = code_redirect(
        &rs,
        &request.redirect_uri,
        request.state.as_deref(),
        &sid,
        &code,
        &flow,
    )?;
    let cookie = Cookie::build((SESSION_COOKIE, sid))
        .path(rs.cookie_path.clone())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(rs.secure)
        .build();
    let value = HeaderValue::from_str(&cookie.to_string())
        .map_err(|e| HttpError::Internal(format!("unusable cookie: {e}")))?;
    resp.headers_mut().append(header::SET_COOKIE, value);
    Ok(resp)
}
