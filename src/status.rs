//! The one place where errors become gRPC status codes.
//!
//! The daemon's own trouble (a backend it cannot reach, its own identity lacking
//! access) is never UNAUTHENTICATED, which would blame the caller. Internal errors are
//! logged and answered without internals.

use crate::access::AccessError;
use crate::admin::AdminError;
use crate::http::HttpRequestError;
use crate::jira::JiraError;
use crate::resolver::ResolveError;
use tonic::{Code, Status};
use vaultbridge_backend_core::ErrorKind;

/// Errors of the gRPC layer itself.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("a batch may hold at most {max} names; this one has {size}")]
    BatchTooLarge { size: usize, max: usize },
    #[error("set `name` or `all` to say what to invalidate")]
    NoInvalidateTarget,
    #[error("`all` must be true to invalidate everything")]
    InvalidateAllFalse,
    #[error("set `names` or `items` in a batch, not both")]
    NamesAndItems,
    #[error("`max_age` cannot be negative")]
    NegativeMaxAge,
    #[error("name at least one definition to watch")]
    NothingToWatch,
}

pub(crate) fn code_of(err: &ResolveError) -> Code {
    match err {
        ResolveError::InvalidName(_) => Code::InvalidArgument,
        ResolveError::UnknownDefinition { .. } => Code::NotFound,
        ResolveError::Backend { source, .. } => match source.kind() {
            ErrorKind::NotFound | ErrorKind::KeyNotFound => Code::NotFound,
            ErrorKind::PermissionDenied => Code::PermissionDenied,
            ErrorKind::InvalidConfig | ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            ErrorKind::Unavailable => Code::Unavailable,
            // `ErrorKind` is non-exhaustive: a kind added later is internal until it
            // is mapped here.
            _ => Code::Internal,
        },
    }
}

/// The code and the message a caller sees for `err`.
pub(crate) fn code_and_message(err: &ResolveError) -> (Code, String) {
    let code = code_of(err);
    if code == Code::Internal {
        tracing::error!(error = %err, "internal error while resolving");
        return (
            code,
            "internal error; the daemon's log has the details".to_owned(),
        );
    }
    (code, err.to_string())
}

impl From<ResolveError> for Status {
    fn from(err: ResolveError) -> Self {
        let (code, message) = code_and_message(&err);
        Status::new(code, message)
    }
}

impl From<JiraError> for Status {
    fn from(err: JiraError) -> Self {
        match &err {
            JiraError::UnknownConnection { .. } => Status::not_found(err.to_string()),
            JiraError::Resolve { connection, source } => {
                let (code, message) = code_and_message(source);
                Status::new(code, format!("Jira connection `{connection}`: {message}"))
            }
            JiraError::NotText { .. } => Status::failed_precondition(err.to_string()),
            JiraError::CloudId { .. } => Status::unavailable(err.to_string()),
            JiraError::HttpClient { .. } => Status::failed_precondition(err.to_string()),
        }
    }
}

impl From<RequestError> for Status {
    fn from(err: RequestError) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

impl From<AccessError> for Status {
    fn from(err: AccessError) -> Self {
        match err {
            AccessError::NoToken | AccessError::UnknownToken => {
                Status::unauthenticated(err.to_string())
            }
            AccessError::Denied { .. } => Status::permission_denied(err.to_string()),
            AccessError::RateLimited { .. } => Status::resource_exhausted(err.to_string()),
        }
    }
}

/// Every refusal of an admin call is the caller's lack of standing.
impl From<AdminError> for Status {
    fn from(err: AdminError) -> Self {
        Status::permission_denied(err.to_string())
    }
}

/// A request that is not valid protobuf for its method (see `crate::codec`). prost's
/// message names the field and the wire problem, never the bytes.
pub(crate) fn undecodable(err: prost::DecodeError) -> Status {
    Status::invalid_argument(format!("the request is not a valid message: {err}"))
}

/// Answers tonic's OUT_OF_RANGE, which it gives a request over `server.max_request_size`
/// (`max_decoding_message_size`), as RESOURCE_EXHAUSTED, the code grpc's own servers
/// give an oversized message and the one the README documents. tonic decides the code
/// before any handler runs, so the only place to change it is the response: a unary
/// call's error travels in the response headers (trailers-only). Nothing else in the
/// daemon answers OUT_OF_RANGE, so the code alone identifies the case.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OversizeLayer;

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversize(inner)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Oversize<S>(S);

type Response<B> = tonic::codegen::http::Response<B>;

impl<S, R, B> tower::Service<R> for Oversize<S>
where
    S: tower::Service<R, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = futures_util::future::MapOk<S::Future, fn(Response<B>) -> Response<B>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        use futures_util::TryFutureExt;
        self.0.call(request).map_ok(oversize_is_resource_exhausted)
    }
}

fn oversize_is_resource_exhausted<B>(mut response: Response<B>) -> Response<B> {
    let out_of_range = Code::OutOfRange as i32;
    let headers = response.headers_mut();
    if headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == out_of_range.to_string().as_bytes())
    {
        let exhausted = (Code::ResourceExhausted as i32).to_string();
        if let Ok(value) = tonic::codegen::http::HeaderValue::from_str(&exhausted) {
            headers.insert("grpc-status", value);
        }
    }
    response
}

/// The HTTP face's column of the table (`crate::http`): the HTTP status a code is
/// answered with. google.rpc's mapping, except FAILED_PRECONDITION, which is 412
/// there rather than 400: the request was fine, the definition or its backend is not.
pub(crate) fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::FailedPrecondition => 412,
        Code::ResourceExhausted => 429,
        // nginx's "client closed request", as google.rpc maps CANCELLED.
        Code::Cancelled => 499,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
    }
}

/// The AWS Secrets Manager Agent compatibility routes' column: the exception name
/// (`__type`) the agent's callers see for a code, as Secrets Manager names it.
pub(crate) fn aws_error_type(code: Code) -> &'static str {
    match code {
        Code::NotFound => "ResourceNotFoundException",
        Code::PermissionDenied | Code::Unauthenticated => "AccessDeniedException",
        Code::InvalidArgument | Code::OutOfRange => "InvalidParameterException",
        Code::FailedPrecondition => "InvalidRequestException",
        Code::ResourceExhausted => "ThrottlingException",
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => "ServiceUnavailable",
        _ => "InternalFailure",
    }
}

impl From<HttpRequestError> for Status {
    fn from(err: HttpRequestError) -> Self {
        match err {
            HttpRequestError::NoRoute { .. } | HttpRequestError::NoAwsDefinition { .. } => {
                Status::not_found(err.to_string())
            }
            HttpRequestError::MethodNotAllowed { .. } => Status::unimplemented(err.to_string()),
            HttpRequestError::AgentToken => Status::permission_denied(err.to_string()),
            _ => Status::invalid_argument(err.to_string()),
        }
    }
}

/// The HTTP status of an error of the HTTP layer itself: its code's, except a method
/// other than GET, which HTTP has a status of its own for.
pub(crate) fn http_status_of(err: &HttpRequestError) -> (Code, u16) {
    match err {
        HttpRequestError::MethodNotAllowed { .. } => (Code::Unimplemented, 405),
        _ => {
            let code = Status::from(err.clone()).code();
            (code, http_status(code))
        }
    }
}

/// A code's name as gRPC's specification spells it, for the audit trail and metrics.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::NameError;
    use std::sync::Arc;
    use vaultbridge_backend_core::BackendError;

    fn backend(err: BackendError) -> ResolveError {
        ResolveError::Backend {
            definition: "d".into(),
            backend: "b".into(),
            source: Arc::new(err),
        }
    }

    #[test]
    fn every_error_maps_to_its_code() {
        let cases = [
            (
                ResolveError::InvalidName(NameError::Empty),
                Code::InvalidArgument,
            ),
            (
                ResolveError::UnknownDefinition { name: "x".into() },
                Code::NotFound,
            ),
            (backend(BackendError::not_found("m")), Code::NotFound),
            (
                backend(BackendError::key_not_found("s", "k", ["a"])),
                Code::NotFound,
            ),
            (
                backend(BackendError::permission_denied("m")),
                Code::PermissionDenied,
            ),
            (
                backend(BackendError::invalid_config("m")),
                Code::FailedPrecondition,
            ),
            (
                backend(BackendError::failed_precondition("m")),
                Code::FailedPrecondition,
            ),
            (backend(BackendError::unavailable("m")), Code::Unavailable),
            (backend(BackendError::internal("m")), Code::Internal),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err.clone()).code(), code, "{err}");
            assert_ne!(code_of(&err), Code::Unauthenticated);
        }
    }

    #[test]
    fn access_errors_blame_the_caller() {
        assert_eq!(
            Status::from(AccessError::NoToken).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            Status::from(AccessError::UnknownToken).code(),
            Code::Unauthenticated
        );
        let denied = AccessError::Denied {
            caller: "client `etl`".into(),
            what: "definition",
            name: "db".into(),
        };
        assert_eq!(Status::from(denied).code(), Code::PermissionDenied);
    }

    #[test]
    fn internal_errors_hide_their_details() {
        let status = Status::from(backend(BackendError::internal("stack details")));
        assert!(!status.message().contains("stack details"));
    }

    #[test]
    fn every_code_has_an_http_status_and_the_documented_ones_hold() {
        for (code, status) in [
            (Code::NotFound, 404),
            (Code::PermissionDenied, 403),
            (Code::FailedPrecondition, 412),
            (Code::Unavailable, 503),
            (Code::InvalidArgument, 400),
            (Code::Internal, 500),
            (Code::Unauthenticated, 401),
            (Code::ResourceExhausted, 429),
        ] {
            assert_eq!(http_status(code), status, "{code:?}");
        }
        for code in 0..17 {
            let status = http_status(Code::from_i32(code));
            assert!((200..600).contains(&status), "{code}: {status}");
            assert_eq!(status == 200, code == 0);
        }
    }

    #[test]
    fn http_layer_errors_have_their_statuses() {
        let method = HttpRequestError::MethodNotAllowed {
            method: "POST".into(),
        };
        assert_eq!(http_status_of(&method), (Code::Unimplemented, 405));
        let body = HttpRequestError::Body;
        assert_eq!(http_status_of(&body), (Code::InvalidArgument, 400));
        let route = HttpRequestError::NoRoute { path: "/x".into() };
        assert_eq!(http_status_of(&route), (Code::NotFound, 404));
        assert_eq!(
            http_status_of(&HttpRequestError::AgentToken),
            (Code::PermissionDenied, 403)
        );
        assert_eq!(aws_error_type(Code::NotFound), "ResourceNotFoundException");
    }

    #[test]
    fn request_errors_are_invalid_arguments() {
        let status = Status::from(RequestError::BatchTooLarge {
            size: 300,
            max: 256,
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("300"));
    }
}
