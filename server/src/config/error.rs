//! Why a manifest was REJECTED. Every message names the document, the field path and what
//! was expected, because that is all a user applying YAML can act on.

use std::fmt;
use std::path::PathBuf;

/// Which document a problem is in: kind, `namespace/name` when known, file and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocLabel {
    /// `AuthConfig`, `Secret`, ...
    pub kind: String,
    /// `namespace/name`, when the document got that far.
    pub id: Option<String>,
    /// File name (or the name given to [`super::load_str`]).
    pub source: String,
    /// 1-based position of the document in its file.
    pub index: usize,
}

impl fmt::Display for DocLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(
                f,
                "{} {id} ({}, document {})",
                self.kind, self.source, self.index
            ),
            None => write!(
                f,
                "{} ({}, document {})",
                self.kind, self.source, self.index
            ),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A Hugo `{{< reuse >}}` placeholder copied from the guide was left in.
    #[error(
        "{source_name}, line {line}: `{text}` is a placeholder from the guide, not a value: replace it with what it stands for (for example the namespace, or the Redis service name)"
    )]
    Placeholder {
        /// File name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// The placeholder text.
        text: String,
    },
    /// The text is not YAML.
    #[error("{source_name}, document {index}: not valid YAML: {message}")]
    Yaml {
        /// File name.
        source_name: String,
        /// 1-based document index.
        index: usize,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document without `kind` or `apiVersion`.
    #[error(
        "{source_name}, document {index}: expected a Kubernetes object with `apiVersion` and `kind`"
    )]
    NotAnObject {
        /// File name.
        source_name: String,
        /// 1-based document index.
        index: usize,
    },
    /// `${VAR}` left in a value because `VAR` is not set.
    #[error(
        "{doc}: {path}: `${{{var}}}` was not substituted: the environment variable {var} is not set (the guide's shell heredoc substitutes it; export {var} or write the value in the manifest)"
    )]
    UnsetVariable {
        /// The document.
        doc: DocLabel,
        /// Field path, e.g. `stringData.client-secret`.
        path: String,
        /// The variable name.
        var: String,
    },
    /// A field is missing, unknown or holds an invalid value.
    #[error("{doc}: {path}: {message}")]
    Field {
        /// The document.
        doc: DocLabel,
        /// Field path, e.g. `spec.configs[0].oauth2.oidcAuthorizationCode.appUrl`.
        path: String,
        /// What was wrong and what was expected.
        message: String,
    },
    /// `clientSecretRef` names a Secret that was not loaded.
    #[error(
        "{doc}: {path}: Secret {secret} was not found: apply it in the same --config files (kind: Secret, type: extauth.solo.io/oauth, stringData.client-secret)"
    )]
    MissingSecret {
        /// The AuthConfig.
        doc: DocLabel,
        /// Field path of the reference.
        path: String,
        /// `namespace/name` of the missing Secret.
        secret: String,
    },
    /// A referenced Secret was itself rejected.
    #[error("{doc}: {path}: the referenced Secret is invalid: {cause}")]
    BadSecret {
        /// The AuthConfig.
        doc: DocLabel,
        /// Field path of the reference.
        path: String,
        /// Why the Secret was rejected.
        cause: std::sync::Arc<ConfigError>,
    },
    /// Two AuthConfigs with the same `namespace/name`.
    #[error("{doc}: an AuthConfig with the same namespace/name was already loaded from {first}")]
    Duplicate {
        /// The second one.
        doc: DocLabel,
        /// Where the first one came from.
        first: String,
    },
    /// Nothing to serve.
    #[error("no AuthConfig (apiVersion: extauth.solo.io/v1, kind: AuthConfig) found in {sources}")]
    NoAuthConfig {
        /// The files that were read.
        sources: String,
    },
    /// `SIGNING_KEY` or the `extauth-signing-key` Secret is unusable.
    #[error("signing key from {origin}: {message}")]
    SigningKey {
        /// `env SIGNING_KEY` or the Secret's label.
        origin: String,
        /// What is wrong.
        message: String,
    },
}
