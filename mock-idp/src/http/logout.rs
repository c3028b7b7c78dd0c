//! `GET|POST /realms/{realm}/protocol/openid-connect/logout`: RP-initiated logout.
//!
//! Ends the SSO session named by the `KEYCLOAK_SESSION` cookie and by the `id_token_hint`'s
//! `sid` (its codes and refresh tokens die with it), tells the session's clients by
//! back-channel (`backchannel.logout.url`, see `backchannel`), clears the cookie, then:
//!
//! - when a client of the session has front-channel logout (`frontchannelLogout` and
//!   `frontchannel.logout.url`), renders Keycloak's "Logging out" page, which loads each such
//!   URL (with `sid` and `iss`) in a hidden iframe and, once they have loaded, continues to
//!   the post-logout redirect;
//! - otherwise redirects to `post_logout_redirect_uri` (which must be allowed by the client's
//!   `post.logout.redirect.uris`, and needs `id_token_hint` or `client_id` to name the
//!   client, as in Keycloak) with `state`, or shows "You are logged out".

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::backchannel::{end_sessions, notify};
use super::error::no_store_html;
use super::login::SESSION_COOKIE;
use super::params::{Params, append_query};
use super::{AppState, HttpError, pages};
use crate::tokens;

pub(crate) async fn logout(
    State(state): State<AppState>,
    Path(realm): Path<String>,
    RawQuery(query): RawQuery,
    jar: CookieJar,
    body: Bytes,
) -> Result<Response, HttpError> {
    let rs = state.realm(&realm)?;
    let title = rs.realm.display_name();
    // Query first, then a POSTed form; the first occurrence of a name wins.
    let mut all = query.unwrap_or_default().into_bytes();
    all.push(b'&');
    all.extend_from_slice(&body);
    let params = Params::parse(&all);

    let hint = match params.get("id_token_hint") {
        Some(t) => Some(
            tokens::verify_id_token_hint(&state.keys(&rs), &rs.issuer, t)
                .map_err(|_| HttpError::page(title, "Invalid IDToken"))?,
        ),
        None => None,
    };
    let client_id = params
        .get("client_id")
        .or(hint.as_ref().map(|h| h.aud.as_str()));
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client_id = client_id.ok_or_else(|| {
                HttpError::page(
                    title,
                    "Either the parameter client_id or the parameter id_token_hint is required \
                     when post_logout_redirect_uri is used.",
                )
            })?;
            let allowed = rs
                .realm
                .client(client_id)
                .is_some_and(|c| c.allows_post_logout_redirect(uri))
                && !uri.contains('#')
                && !uri.chars().any(char::is_control);
            if !allowed {
                return Err(HttpError::page(title, "Invalid redirect uri"));
            }
            Some(uri)
        }
    };

    let mut sids: Vec<String> = jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .into_iter()
        .collect();
    if let Some(h) = &hint
        && !sids.contains(&h.sid)
    {
        sids.push(h.sid.clone());
    }
    let ended = end_sessions(&rs, &sids);
    notify(&state, &rs, &ended).await;
    // Each front-channel client of each ended session, once per session.
    let frontchannel: Vec<(String, String)> = ended
        .iter()
        .flat_map(|session| {
            session.clients.iter().filter_map(|client_id| {
                let client = rs.realm.client(client_id)?;
                let fc = client.frontchannel_logout()?;
                Some((
                    client.display_name().to_owned(),
                    fc.url_for(&session.sid, &rs.issuer),
                ))
            })
        })
        .collect();
    tracing::info!(realm = %rs.realm.name(), frontchannel = frontchannel.len(), "logged out");

    let clear = Cookie::build((SESSION_COOKIE, ""))
        .path(rs.cookie_path.clone())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(rs.secure)
        .removal()
        .build();
    let clear = HeaderValue::from_str(&clear.to_string())
        .map_err(|e| HttpError::Internal(format!("unusable cookie: {e}")))?;

    let location = redirect.map(|uri| match params.get("state") {
        Some(s) => append_query(uri, &[("state", s)]),
        None => uri.to_owned(),
    });
    let mut resp = match location {
        _ if !frontchannel.is_empty() => no_store_html(
            StatusCode::OK,
            pages::frontchannel_logout_page(title, &frontchannel, location.as_deref()),
        ),
        Some(location) => {
            let location = HeaderValue::from_str(&location)
                .map_err(|e| HttpError::Internal(format!("unusable Location header: {e}")))?;
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        None => no_store_html(StatusCode::OK, pages::logged_out_page(title)),
    };
    resp.headers_mut().append(header::SET_COOKIE, clear);
    Ok(resp)
}
