//! The one place where the plugin's gRPC codes become the core's error kinds; the table
//! is documented in `proto/vaultbridge/plugin/v1/backend.proto` and the README.

use tonic::Code;
use vaultbridge_backend_core::{BackendError, ErrorKind, find_cause};

/// The trailing-metadata key (and `Error.kind` value) by which a plugin tells a missing
/// key from a missing secret.
pub(crate) const KIND_METADATA: &str = "vaultbridge-kind";
pub(crate) const KEY_NOT_FOUND: &str = "key-not-found";

/// The kind, and whether trying again later can help, for a plugin's code.
pub(crate) fn kind_of(code: Code, kind_hint: &str) -> (ErrorKind, bool) {
    match code {
        Code::NotFound if kind_hint == KEY_NOT_FOUND => (ErrorKind::KeyNotFound, false),
        Code::NotFound => (ErrorKind::NotFound, false),
        Code::FailedPrecondition => (ErrorKind::FailedPrecondition, false),
        Code::PermissionDenied | Code::Unauthenticated => (ErrorKind::PermissionDenied, false),
        Code::InvalidArgument | Code::OutOfRange => (ErrorKind::InvalidConfig, false),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            (ErrorKind::Unavailable, true)
        }
        _ => (ErrorKind::Internal, false),
    }
}

/// An error for `secret` from the plugin's answer. The plugin's message is kept (the
/// contract forbids values in it); the secret and the plugin are named around it.
pub(crate) fn from_code(
    code: Code,
    kind_hint: &str,
    message: &str,
    secret: &str,
    plugin: &str,
) -> BackendError {
    let (kind, temporary) = kind_of(code, kind_hint);
    let text = match kind {
        ErrorKind::Unavailable if message.is_empty() => {
            format!("plugin {plugin} is unavailable (secret `{secret}`)")
        }
        ErrorKind::Internal => {
            format!("plugin {plugin} answered {code:?} for secret `{secret}`: {message}")
        }
        _ => format!("secret `{secret}` (plugin {plugin}): {message}"),
    };
    BackendError::new(kind, text).temporary(temporary)
}

pub(crate) fn from_status(status: &tonic::Status, secret: &str, plugin: &str) -> BackendError {
    let hint = status
        .metadata()
        .get(KIND_METADATA)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    from_code(status.code(), hint, status.message(), secret, plugin)
}

/// Whether the call failed in this process, before the plugin could answer (the
/// socket refused, the connection broke): tonic then makes the status itself from the
/// transport error and keeps that error as its source, which a status received from the
/// plugin never has. Told by type, not by the message's text.
pub(crate) fn failed_here(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(|source| {
        find_cause::<tonic::transport::Error>(source).is_some()
            || find_cause::<std::io::Error>(source).is_some()
    })
}

/// The plugin could not be reached or did not answer in time: temporary, so that the
/// daemon retries and may serve a stale value, never a crash or a not-found.
pub(crate) fn unreachable(secret: &str, plugin: &str, why: &str) -> BackendError {
    BackendError::unavailable(format!(
        "plugin {plugin} cannot be reached for secret `{secret}`: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_status_made_here_from_a_transport_error_is_a_failure_to_reach_the_plugin() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let local = tonic::Status::from_error(Box::new(refused));
        assert_eq!(local.code(), Code::Unknown);
        assert!(failed_here(&local));
        // The same code and words from the plugin itself are the plugin's answer.
        let answered = tonic::Status::new(Code::Unknown, "transport error: refused");
        assert!(!failed_here(&answered));
        assert!(!failed_here(&tonic::Status::unavailable("vault down")));
    }

    #[test]
    fn throttling_timeouts_and_unavailable_are_temporary_and_the_rest_permanent() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
        ] {
            assert_eq!(
                kind_of(code, ""),
                (ErrorKind::Unavailable, true),
                "{code:?}"
            );
        }
        for (code, kind) in [
            (Code::NotFound, ErrorKind::NotFound),
            (Code::FailedPrecondition, ErrorKind::FailedPrecondition),
            (Code::PermissionDenied, ErrorKind::PermissionDenied),
            (Code::Unauthenticated, ErrorKind::PermissionDenied),
            (Code::InvalidArgument, ErrorKind::InvalidConfig),
            (Code::Internal, ErrorKind::Internal),
            (Code::Unknown, ErrorKind::Internal),
        ] {
            assert_eq!(kind_of(code, ""), (kind, false), "{code:?}");
        }
        assert_eq!(
            kind_of(Code::NotFound, KEY_NOT_FOUND),
            (ErrorKind::KeyNotFound, false)
        );
    }

    #[test]
    fn the_error_names_the_secret_and_keeps_the_plugins_message() {
        let err = from_code(Code::NotFound, "", "no such entry", "db/token", "`pass`");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!err.is_temporary());
        assert_eq!(
            err.to_string(),
            "secret `db/token` (plugin `pass`): no such entry"
        );
    }
}
