//! How the provider's requests reach the IdP: reqwest over the network, or a transport
//! injected in-process ([`Provider::with_transport`](super::Provider::with_transport)), which
//! is how `harness sim` runs the real flow against the real mock-idp router without sockets.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The answer of an IdP call: status and body.
pub type IdpAnswer = Result<(http::StatusCode, Vec<u8>), String>;

/// An in-process way to the IdP. An `Err` is a network failure (reset, timeout): the provider
/// treats it as it treats reqwest's errors.
pub trait IdpTransport: Send + Sync + fmt::Debug {
    /// Sends `request` (absolute URL, headers and body as reqwest would send them).
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Pin<Box<dyn Future<Output = IdpAnswer> + Send>>;
}

/// reqwest, or the injected transport when there is one.
#[derive(Debug, Clone)]
pub(super) struct IdpHttp {
    pub(super) client: openidconnect::reqwest::Client,
    pub(super) transport: Option<Arc<dyn IdpTransport>>,
}

impl IdpHttp {
    pub(super) fn get(&self, url: &str) -> openidconnect::reqwest::RequestBuilder {
        self.client.get(url)
    }

    pub(super) fn post(&self, url: &str) -> openidconnect::reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` and reads the answer, at most `limit` bytes of body.
    pub(super) async fn send(
        &self,
        request: openidconnect::reqwest::RequestBuilder,
        limit: usize,
        too_large: &str,
    ) -> IdpAnswer {
        let Some(transport) = &self.transport else {
            let response = request
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = http::StatusCode::from_u16(response.status().as_u16())
                .unwrap_or(http::StatusCode::BAD_GATEWAY);
            if response.content_length().is_some_and(|l| l > limit as u64) {
                return Err(too_large.to_owned());
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("reading the response: {e}"))?;
            if body.len() > limit {
                return Err(too_large.to_owned());
            }
            return Ok((status, body.to_vec()));
        };
        let request = request
            .build()
            .map_err(|e| format!("request failed: {e}"))?;
        let mut builder = http::Request::builder()
            .method(request.method().clone())
            .uri(request.url().as_str());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let request = builder
            .body(body)
            .map_err(|e| format!("request failed: {e}"))?;
        let (status, body) = transport.send(request).await?;
        if body.len() > limit {
            return Err(too_large.to_owned());
        }
        Ok((status, body))
    }
}
