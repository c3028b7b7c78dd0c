//! The transport-independent view of the request being authorized.

use std::collections::BTreeMap;

/// One request to authorize, as a gateway describes it.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The original authority (`Host`), e.g. `172.18.0.4` or `localhost:8080`.
    pub host: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (without `?`), if any.
    pub query: Option<String>,
    /// Headers with lowercase names, in the order received. Repeated headers appear once per
    /// value.
    pub headers: Vec<(String, String)>,
    /// Gateway-supplied context (gRPC `context_extensions`).
    pub context: BTreeMap<String, String>,
    /// Gateway-supplied filter metadata (gRPC `metadata_context.filter_metadata`), by
    /// namespace, each a JSON object.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The request body, when the gateway sends it (Envoy `with_request_body`; the HTTP
    /// listener's own body). At most [`MAX_CHECK_BODY`] bytes are kept.
    pub body: Option<Vec<u8>>,
}

/// The most body bytes a check keeps (a back-channel `logout_token` is far smaller).
pub const MAX_CHECK_BODY: usize = 64 * 1024;

impl CheckRequest {
    /// A request from its parts; `target` is the path with an optional `?query`.
    pub fn new(method: &str, scheme: &str, host: &str, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        Self {
            method: method.to_owned(),
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            path,
            query,
            ..Self::default()
        }
    }

    /// Adds a header (name lowercased).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Every value of header `name` (lowercase).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name`, from any `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header_values("cookie")
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    }

    /// `scheme://host/path?query`: the URL the client asked for.
    pub fn original_url(&self) -> String {
        let mut url = format!("{}://{}{}", self.scheme, self.host, self.path);
        if let Some(q) = &self.query {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splits_into_path_and_query() {
        let r = CheckRequest::new("GET", "http", "gw", "/openai?code=1&state=2");
        assert_eq!(r.path, "/openai");
        assert_eq!(r.query.as_deref(), Some("code=1&state=2"));
        assert_eq!(r.original_url(), "http://gw/openai?code=1&state=2");
        assert_eq!(CheckRequest::new("GET", "http", "gw", "/").query, None);
    }

    #[test]
    fn cookies_are_found_across_headers() {
        let r = CheckRequest::new("GET", "http", "gw", "/")
            .with_header("Cookie", "a=1; keycloak-session=XYZ")
            .with_header("cookie", "b=2");
        assert_eq!(r.cookie("keycloak-session").as_deref(), Some("XYZ"));
        assert_eq!(r.cookie("b").as_deref(), Some("2"));
        assert_eq!(r.cookie("c"), None);
    }
}
