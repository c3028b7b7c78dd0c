//! Multi-document Kubernetes YAML in, typed documents out: placeholder detection, YAML
//! parsing, `${VAR}` substitution and the split by `kind`. Knows nothing of OIDC.

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use super::error::{ConfigError, DocLabel};
use crate::env::EnvSource;

/// One parsed document with its `${VAR}`s substituted.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from.
    pub label: DocLabel,
    /// `apiVersion`.
    pub api_version: String,
    /// The substituted YAML value.
    pub value: Value,
    /// `${VAR}`s that were left in because the variable is not set: (field path, name).
    pub unset: Vec<(String, String)>,
}

impl Document {
    /// Deserializes the whole document into `T`, naming the field path on failure.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(self.value.clone()).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                "(document)".into()
            } else {
                path
            };
            ConfigError::Field {
                doc: self.label.clone(),
                path,
                message: e.into_inner().to_string(),
            }
        })
    }

    /// The first unsubstituted variable under `prefix` (a field path), as an error.
    pub fn unset_under(&self, prefix: &str) -> Option<ConfigError> {
        self.unset
            .iter()
            .find(|(path, _)| path.starts_with(prefix))
            .map(|(path, var)| ConfigError::UnsetVariable {
                doc: self.label.clone(),
                path: path.clone(),
                var: var.clone(),
            })
    }
}

/// Splits `text` into documents. Empty documents (a stray `---`) are skipped.
pub fn parse_documents(
    source_name: &str,
    text: &str,
    env: &dyn EnvSource,
) -> Result<Vec<Document>, ConfigError> {
    if let Some((line, placeholder)) = find_placeholder(text) {
        return Err(ConfigError::Placeholder {
            source_name: source_name.to_owned(),
            line,
            text: placeholder,
        });
    }
    let mut docs = Vec::new();
    for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value: Value = serde::Deserialize::deserialize(de).map_err(|e| ConfigError::Yaml {
            source_name: source_name.to_owned(),
            index,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(Value::as_str);
        let api_version = value.get("apiVersion").and_then(Value::as_str);
        let (Some(kind), Some(api_version)) = (kind, api_version) else {
            return Err(ConfigError::NotAnObject {
                source_name: source_name.to_owned(),
                index,
            });
        };
        let kind = kind.to_owned();
        let api_version = api_version.to_owned();
        let mut unset = Vec::new();
        let value = substitute(value, &mut String::new(), env, &mut unset);
        let meta = value.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        docs.push(Document {
            label: DocLabel {
                kind,
                id: name.map(|n| format!("{namespace}/{n}")),
                source: source_name.to_owned(),
                index,
            },
            api_version,
            value,
            unset,
        });
    }
    Ok(docs)
}

/// The guide's Hugo shortcodes (`{{< reuse "..." >}}`, `{{% ... %}}`) are not YAML; finding
/// them first gives a far better message than the YAML parser's "did not find expected key".
fn find_placeholder(text: &str) -> Option<(usize, String)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let line = strip_comment(line);
        let start = line.find("{{<").or_else(|| line.find("{{%"))?;
        let rest = &line[start..];
        let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
        Some((i + 1, rest[..end].to_owned()))
    })
}

/// The line without a trailing YAML comment (`#` at the start or after whitespace). A `#`
/// inside a quoted scalar is rare enough in these manifests to accept the approximation.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let cut = (0..bytes.len())
        .find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()));
    cut.map_or(line, |i| &line[..i])
}

/// Replaces `${NAME}` in every string scalar. Substituting after parsing (unlike a shell
/// heredoc) means a value can never change the YAML structure. Unset variables are left as
/// written and recorded with their field path.
fn substitute(
    value: Value,
    path: &mut String,
    env: &dyn EnvSource,
    unset: &mut Vec<(String, String)>,
) -> Value {
    match value {
        Value::String(s) => Value::String(substitute_str(&s, path, env, unset)),
        Value::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let v = substitute(v, path, env, unset);
                    path.truncate(len);
                    v
                })
                .collect(),
        ),
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .map(|(k, v)| {
                    let len = path.len();
                    if let Some(key) = k.as_str() {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(key);
                    }
                    let v = substitute(v, path, env, unset);
                    path.truncate(len);
                    (k, v)
                })
                .collect(),
        ),
        Value::Tagged(mut tagged) => {
            tagged.value = substitute(tagged.value, path, env, unset);
            Value::Tagged(tagged)
        }
        other => other,
    }
}

fn substitute_str(
    s: &str,
    path: &str,
    env: &dyn EnvSource,
    unset: &mut Vec<(String, String)>,
) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        match (valid, valid.then(|| env.var(name)).flatten()) {
            (true, Some(v)) => out.push_str(&v),
            (true, None) => {
                unset.push((path.to_owned(), name.to_owned()));
                out.push_str(&rest[start..start + 3 + end]);
            }
            (false, _) => out.push_str(&rest[start..start + 3 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn variables_are_substituted_inside_values() {
        let env = MapEnv::default()
            .with("HOST", "gw.example")
            .with("PORT", "80");
        let docs = parse_documents(
            "t.yaml",
            "apiVersion: v1\nkind: X\nspec:\n  url: \"http://${HOST}:${PORT}/x\"\n",
            &env,
        )
        .unwrap();
        assert_eq!(
            docs[0].value["spec"]["url"].as_str(),
            Some("http://gw.example:80/x")
        );
        assert!(docs[0].unset.is_empty());
    }

    #[test]
    fn unset_variables_are_kept_and_reported_with_their_path() {
        let docs = parse_documents(
            "t.yaml",
            "apiVersion: v1\nkind: Secret\nstringData:\n  client-secret: ${KEYCLOAK_SECRET}\n",
            &MapEnv::default(),
        )
        .unwrap();
        assert_eq!(
            docs[0].unset,
            vec![(
                "stringData.client-secret".to_owned(),
                "KEYCLOAK_SECRET".to_owned()
            )]
        );
        assert_eq!(
            docs[0].value["stringData"]["client-secret"].as_str(),
            Some("${KEYCLOAK_SECRET}")
        );
    }

    #[test]
    fn a_value_cannot_change_the_yaml_structure() {
        let env = MapEnv::default().with("V", "a\nkind: Evil\n");
        let docs = parse_documents("t.yaml", "apiVersion: v1\nkind: X\nk: ${V}\n", &env).unwrap();
        assert_eq!(docs[0].label.kind, "X");
        assert_eq!(docs[0].value["k"].as_str(), Some("a\nkind: Evil\n"));
    }

    #[test]
    fn guide_placeholders_are_named_with_their_line() {
        let err = parse_documents(
            "seed.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  namespace: {{< reuse \"docs/snippets/namespace.md\" >}}\n",
            &MapEnv::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConfigError::Placeholder { line: 4, .. }),
            "{msg}"
        );
        assert!(
            msg.contains("{{< reuse \"docs/snippets/namespace.md\" >}}"),
            "{msg}"
        );
    }

    #[test]
    fn placeholders_in_comments_are_ignored() {
        let docs = parse_documents(
            "t.yaml",
            "# filled {{< reuse >}} placeholders\napiVersion: v1 # {{< x >}}\nkind: X\n",
            &MapEnv::default(),
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn documents_without_kind_are_rejected_and_empty_ones_skipped() {
        let docs = parse_documents(
            "t.yaml",
            "---\n---\napiVersion: v1\nkind: X\n",
            &MapEnv::default(),
        )
        .unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].label.index, 2);
        let err = parse_documents("t.yaml", "foo: bar\n", &MapEnv::default()).unwrap_err();
        assert!(matches!(err, ConfigError::NotAnObject { index: 1, .. }));
    }

    #[test]
    fn broken_yaml_reports_document_and_position() {
        let err =
            parse_documents("t.yaml", "apiVersion: v1\nkind: [\n", &MapEnv::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Yaml { index: 1, .. }), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }
}
