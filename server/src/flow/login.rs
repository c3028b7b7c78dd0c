//! No session: the 302 to the IdP's authorization endpoint.
//!
//! Query parameters are in alphabetical order, as the seed shows them: `client_id`,
//! `code_challenge`, `code_challenge_method`, `nonce`, `redirect_uri`, `response_type`,
//! `scope`, `state`.

use super::{CheckRequest, Decision, Deny, Flow, FlowError, Route};

/// The redirect that starts a login for `check`.
pub async fn redirect(
    flow: &Flow,
    route: &Route,
    check: &CheckRequest,
) -> Result<Decision, FlowError> {
    let discovered = route.provider.discovered().await.map_err(FlowError::Idp)?;
    let issued = flow
        .state()
        .issue(&check.original_url(), flow.now())
        .map_err(FlowError::State)?;
    let cfg = &route.config;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &cfg.client_id)
        .append_pair("code_challenge", &issued.login.pkce_challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("nonce", &issued.login.nonce)
        .append_pair("redirect_uri", &cfg.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &cfg.scope)
        .append_pair("state", &issued.token)
        .finish();
    let endpoint = &discovered.authorization_endpoint;
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Ok(Decision::Deny(Deny::redirect(format!(
        "{endpoint}{sep}{query}"
    ))))
}
