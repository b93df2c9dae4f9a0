//! The one place where AWS errors become [`BackendError`]s.
//!
//! Kinds follow what the caller can do about it: a missing secret or key is
//! NOT_FOUND; the daemon's identity lacking a permission is PERMISSION_DENIED, naming
//! the IAM action; the daemon's own missing or rejected credentials, throttling,
//! timeouts and connection failures are UNAVAILABLE (never the caller's fault).
//! AWS error messages describe requests and identities, never secret values.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use std::error::Error as StdError;
use std::sync::Arc;
use vaultbridge_backend_core::{BackendError, VersionSelector, describe_chain, find_cause};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Get,
    Batch,
}

impl Operation {
    fn action(self) -> &'static str {
        match self {
            Self::Get => "secretsmanager:GetSecretValue",
            Self::Batch => "secretsmanager:BatchGetSecretValue",
        }
    }
}

/// What the failing call was about, for messages.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub secret: &'a str,
    pub version: &'a VersionSelector,
    pub region: &'a str,
}

impl Context<'_> {
    fn version_phrase(&self) -> String {
        match self.version {
            VersionSelector::Latest => String::new(),
            VersionSelector::Id(id) => format!(" (version id `{id}`)"),
            VersionSelector::Stage(stage) => format!(" (version stage `{stage}`)"),
        }
    }
}

/// Maps an error code and message from Secrets Manager (a call's service error, or
/// one entry of a batch's `Errors`).
pub(crate) fn from_code(
    code: Option<&str>,
    message: Option<&str>,
    operation: Operation,
    context: &Context<'_>,
) -> BackendError {
    from_answer(code, None, message, operation, context)
}

/// As [`from_code`], with the HTTP status for answers whose code is missing or unknown.
fn from_answer(
    code: Option<&str>,
    status: Option<u16>,
    message: Option<&str>,
    operation: Operation,
    context: &Context<'_>,
) -> BackendError {
    let code = match (code.filter(|code| !code.is_empty()), status) {
        (Some(code), _) => Some(code),
        (None, Some(403)) => Some("AccessDeniedException"),
        (None, Some(401)) => Some("UnrecognizedClientException"),
        (None, Some(404)) => Some("ResourceNotFoundException"),
        (None, Some(429)) => Some("ThrottlingException"),
        (None, Some(500..=599)) => Some("InternalServiceError"),
        (None, _) => None,
    };
    let aws_says = message
        .filter(|message| !message.is_empty())
        .map(|message| format!(" (AWS: {message})"))
        .unwrap_or_default();
    let secret = context.secret;
    let region = context.region;
    let version = context.version_phrase();
    match code.unwrap_or_default() {
        "ResourceNotFoundException" => BackendError::not_found(format!(
            "secret `{secret}`{version} does not exist in region {region}; check the name or ARN and that the daemon uses the secret's region"
        )),
        "AccessDeniedException" | "AccessDenied" => BackendError::permission_denied(format!(
            "the daemon's AWS identity may not call {} on secret `{secret}` in {region}; grant it that action{aws_says}",
            operation.action()
        )),
        "DecryptionFailure" => BackendError::failed_precondition(format!(
            "Secrets Manager could not decrypt secret `{secret}` in {region} with its KMS key: the daemon's identity needs kms:Decrypt on that key, and the key must be enabled{aws_says}"
        )),
        "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "Throttling" => BackendError::unavailable(format!(
            "Secrets Manager in {region} is throttling the daemon's calls (retried with backoff); try again shortly"
        )),
        "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => {
            BackendError::unavailable(format!(
                "Secrets Manager in {region} failed to answer for secret `{secret}` (retried){aws_says}"
            ))
        }
        "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => BackendError::unavailable(format!(
            "AWS rejected the daemon's own credentials ({}): refresh or fix the daemon's AWS identity",
            code.unwrap_or_default()
        )),
        "InvalidRequestException" => BackendError::failed_precondition(format!(
            "secret `{secret}` in {region} cannot be read now{aws_says}"
        )),
        "InvalidParameterException" | "ValidationException" => BackendError::invalid_config(
            format!("Secrets Manager refused the request for secret `{secret}`{version}{aws_says}"),
        ),
        other => BackendError::internal(format!(
            "Secrets Manager answered `{other}` for secret `{secret}` in {region}{aws_says}"
        )),
    }
}

/// Maps any error the SDK returns for a call.
pub(crate) fn from_sdk<E>(
    err: SdkError<E, HttpResponse>,
    operation: Operation,
    context: &Context<'_>,
) -> BackendError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if let Some(credentials) = find_cause::<CredentialsError>(&err) {
        return BackendError::unavailable(format!(
            "the daemon has no usable AWS credentials: {}; it looks in the environment, the shared profile, web identity (IRSA), EKS Pod Identity, ECS and instance metadata",
            describe_chain(credentials)
        ));
    }
    let region = context.region;
    match &err {
        SdkError::ServiceError(service) => from_answer(
            service.err().code(),
            Some(service.raw().status().as_u16()),
            service.err().message(),
            operation,
            context,
        ),
        SdkError::TimeoutError(_) => BackendError::unavailable(format!(
            "Secrets Manager in {region} did not answer in time for secret `{}`",
            context.secret
        )),
        SdkError::DispatchFailure(failure) => {
            let what = if failure.is_timeout() {
                "the connection timed out"
            } else if failure.is_io() {
                "the connection failed"
            } else {
                "the request could not be sent"
            };
            BackendError::unavailable(format!(
                "cannot reach Secrets Manager in {region}: {what} ({})",
                describe_chain(&err)
            ))
        }
        SdkError::ResponseError(_) => BackendError::unavailable(format!(
            "Secrets Manager in {region} sent an answer that could not be read"
        )),
        _ => BackendError::internal(format!(
            "the call for secret `{}` could not be built: {}",
            context.secret,
            describe_chain(&err)
        )),
    }
}

/// A copy of `err` for each secret it answers: one failed call can fail several
/// secrets, and a [`BackendError`] cannot be cloned. The copy's source is the shared
/// original, so its cause (an SDK or credentials error) stays reachable.
pub(crate) fn shared(err: &Arc<BackendError>) -> BackendError {
    BackendError::new(err.kind(), err.message())
        .temporary(err.is_temporary())
        .with_source(Arc::clone(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vaultbridge_backend_core::ErrorKind;

    fn map(code: &str) -> BackendError {
        let version = VersionSelector::Latest;
        let context = Context {
            secret: "prod/jira",
            version: &version,
            region: "eu-west-1",
        };
        from_code(Some(code), Some("aws text"), Operation::Get, &context)
    }

    #[test]
    fn codes_map_to_kinds_and_temporariness() {
        let cases = [
            ("ResourceNotFoundException", ErrorKind::NotFound, false),
            ("AccessDeniedException", ErrorKind::PermissionDenied, false),
            ("DecryptionFailure", ErrorKind::FailedPrecondition, false),
            ("ThrottlingException", ErrorKind::Unavailable, true),
            ("InternalServiceError", ErrorKind::Unavailable, true),
            ("ExpiredTokenException", ErrorKind::Unavailable, true),
            ("UnrecognizedClientException", ErrorKind::Unavailable, true),
            (
                "InvalidRequestException",
                ErrorKind::FailedPrecondition,
                false,
            ),
            ("InvalidParameterException", ErrorKind::InvalidConfig, false),
            ("SomethingNew", ErrorKind::Internal, false),
        ];
        for (code, kind, temporary) in cases {
            let err = map(code);
            assert_eq!(err.kind(), kind, "{code}");
            assert_eq!(err.is_temporary(), temporary, "{code}");
        }
    }

    #[test]
    fn messages_name_the_secret_region_and_action() {
        let not_found = map("ResourceNotFoundException").to_string();
        assert!(
            not_found.contains("`prod/jira`") && not_found.contains("eu-west-1"),
            "{not_found}"
        );
        let denied = map("AccessDeniedException").to_string();
        assert!(denied.contains("secretsmanager:GetSecretValue"), "{denied}");
        let kms = map("DecryptionFailure").to_string();
        assert!(kms.contains("kms:Decrypt"), "{kms}");
        let expired = map("ExpiredTokenException").to_string();
        assert!(expired.contains("daemon's own credentials"), "{expired}");
    }

    #[test]
    fn an_answer_without_a_code_maps_by_http_status() {
        let version = VersionSelector::Latest;
        let context = Context {
            secret: "s",
            version: &version,
            region: "r",
        };
        let kind =
            |status| from_answer(None, Some(status), None, Operation::Batch, &context).kind();
        assert_eq!(kind(403), ErrorKind::PermissionDenied);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(429), ErrorKind::Unavailable);
        assert_eq!(kind(503), ErrorKind::Unavailable);
        assert_eq!(kind(401), ErrorKind::Unavailable);
        assert_eq!(kind(418), ErrorKind::Internal);
    }

    #[test]
    fn a_shared_error_keeps_the_original_and_its_cause() {
        let original = Arc::new(
            BackendError::unavailable("cannot reach Secrets Manager")
                .temporary(false)
                .with_source(std::io::Error::other("connection refused")),
        );
        let copy = shared(&original);
        assert_eq!(copy.kind(), ErrorKind::Unavailable);
        assert!(!copy.is_temporary());
        assert_eq!(copy.to_string(), original.to_string());
        assert!(find_cause::<std::io::Error>(&copy).is_some());
        assert_eq!(
            describe_chain(&copy),
            "cannot reach Secrets Manager: connection refused"
        );
    }

    #[test]
    fn a_pinned_version_is_named_when_missing() {
        let version = VersionSelector::Stage("AWSPREVIOUS".into());
        let context = Context {
            secret: "s",
            version: &version,
            region: "r",
        };
        let err = from_code(
            Some("ResourceNotFoundException"),
            None,
            Operation::Get,
            &context,
        );
        assert!(
            err.to_string().contains("version stage `AWSPREVIOUS`"),
            "{err}"
        );
    }
}
