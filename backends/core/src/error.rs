use std::error::Error as StdError;
use std::fmt;

/// What went wrong, in terms every backend shares. The daemon maps kinds to gRPC codes
/// in one place; nothing parses error strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The secret does not exist in the backend.
    NotFound,
    /// The secret exists but has no such key; the message lists the keys that do exist.
    KeyNotFound,
    /// The daemon's identity may not read the secret.
    PermissionDenied,
    /// The backend or definition is configured in a way the backend rejects.
    InvalidConfig,
    /// The secret exists but cannot be served as asked (not a key/value map, disabled,
    /// undecryptable).
    FailedPrecondition,
    /// The backend cannot be reached or is overloaded right now.
    Unavailable,
    /// A bug or an answer the backend should never give.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::KeyNotFound => "key not found",
            Self::PermissionDenied => "permission denied",
            Self::InvalidConfig => "invalid config",
            Self::FailedPrecondition => "failed precondition",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        })
    }
}

/// The one error type every backend returns.
///
/// The message must never contain a secret value: it names secrets, keys, files and
/// backends, and says what to do. `temporary` tells retries and serve-stale logic
/// whether trying again later can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    kind: ErrorKind,
    temporary: bool,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl BackendError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            temporary: matches!(kind, ErrorKind::Unavailable),
            message: message.into(),
            source: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// A missing key, with the keys that do exist (names only, sorted).
    pub fn key_not_found<I, S>(secret: &str, key: &str, available: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = available
            .into_iter()
            .map(|name| format!("`{}`", name.as_ref()))
            .collect();
        names.sort();
        let listing = if names.is_empty() {
            "it has no keys".to_owned()
        } else {
            format!("keys present: {}", names.join(", "))
        };
        Self::new(
            ErrorKind::KeyNotFound,
            format!("{secret} has no key `{key}`; {listing}"),
        )
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, message)
    }

    /// Temporary by default: an unreachable backend may come back.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    #[must_use]
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Keeps the underlying error for logs. Only attach sources whose Display cannot
    /// contain a secret value (I/O errors, SDK transport errors), never a parser's.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// An error and its causes on one line, each said once (wrappers often repeat their
/// cause's text). Only for errors whose text cannot hold a secret value: transport,
/// I/O and credential-provider errors.
pub fn describe_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The first error of type `T` in `err`'s chain, looking inside `io::Error`s (whose
/// `source` skips the error they wrap), so backends find SDK and TLS errors by type
/// rather than by their text.
pub fn find_cause<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(cause) = current {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        current = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => cause.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_temporary_and_not_found_is_not() {
        assert!(BackendError::unavailable("down").is_temporary());
        assert!(!BackendError::not_found("gone").is_temporary());
        assert!(
            !BackendError::unavailable("down")
                .temporary(false)
                .is_temporary()
        );
    }

    #[test]
    fn describe_chain_says_each_cause_once() {
        let io = std::io::Error::other("connection refused");
        let wrapped = BackendError::unavailable("transport error").with_source(io);
        assert_eq!(
            describe_chain(&wrapped),
            "transport error: connection refused"
        );
        let repeating = BackendError::unavailable("refused: connection refused")
            .with_source(std::io::Error::other("connection refused"));
        assert_eq!(describe_chain(&repeating), "refused: connection refused");
    }

    #[test]
    fn find_cause_looks_inside_io_errors() {
        #[derive(Debug)]
        struct Marker;
        impl std::fmt::Display for Marker {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("marker")
            }
        }
        impl StdError for Marker {}
        let wrapped = BackendError::unavailable("outer").with_source(std::io::Error::other(Marker));
        assert!(find_cause::<Marker>(&wrapped).is_some());
        assert!(find_cause::<std::fmt::Error>(&wrapped).is_none());
    }

    #[test]
    fn key_not_found_lists_sorted_key_names() {
        let err = BackendError::key_not_found("entry `jira`", "tokn", ["user", "token"]);
        assert_eq!(err.kind(), ErrorKind::KeyNotFound);
        assert_eq!(
            err.to_string(),
            "entry `jira` has no key `tokn`; keys present: `token`, `user`"
        );
    }
}
