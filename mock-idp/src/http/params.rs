//! Form and query parameters, parsed leniently: `application/x-www-form-urlencoded`, first
//! occurrence wins, no extractor rejections (a malformed request gets an OAuth error, never
//! a framework 415/422).

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Parameters of a query string or form body.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn parse(input: &[u8]) -> Self {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(input) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Self(map)
    }

    pub(crate) fn from_query(query: Option<&str>) -> Self {
        Self::parse(query.unwrap_or_default().as_bytes())
    }

    /// The value of `name`, if present and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The credentials of an `Authorization: <scheme> <credentials>` header (scheme matched
/// case-insensitively), trimmed.
pub(crate) fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The client id and secret of `Basic` credentials (RFC 6749 2.3.1: each is form-urlencoded
/// before base64).
pub(crate) fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space).
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Appends query parameters to a redirect URI without re-serializing it, so the URI the
/// client registered comes back exactly as written (an explicit `:80` stays).
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let encoded = ser.finish();
    let sep = if uri.contains('?') {
        if uri.ends_with('?') || uri.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    format!("{uri}{sep}{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        // RFC 6749 2.3.1: "a b:c" and "p%w+d" are encoded before base64.
        let encoded = STANDARD.encode("a+b%3Ac:p%25w%2Bd");
        assert_eq!(
            decode_basic(&encoded),
            Some(("a b:c".to_owned(), "p%w+d".to_owned()))
        );
    }

    #[test]
    fn basic_credentials_without_a_colon_are_rejected() {
        assert_eq!(decode_basic(&STANDARD.encode("nocolon")), None);
        assert_eq!(decode_basic("%%%"), None);
    }

    #[test]
    fn first_occurrence_wins_and_empty_values_count_as_absent() {
        let p = Params::parse(b"a=1&a=2&b=&c=x+y%21");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y!"));
    }

    #[test]
    fn query_is_appended_to_a_redirect_uri_as_written() {
        let cases = [
            ("no query", "http://h:80/cb", "http://h:80/cb?a=1&b=x+y"),
            ("with query", "http://h/cb?x=1", "http://h/cb?x=1&a=1&b=x+y"),
            (
                "bare question mark",
                "http://h/cb?",
                "http://h/cb?a=1&b=x+y",
            ),
        ];
        for (label, uri, want) in cases {
            assert_eq!(
                append_query(uri, &[("a", "1"), ("b", "x y")]),
                want,
                "{label}"
            );
        }
    }
}
