//! Form and query parameters, parsed leniently: `application/x-www-form-urlencoded`, first
//! occurrence wins, no extractor rejections (a malformed request gets an OAuth error, never
//! a framework 415/422).

use std::collections::HashMap;

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
