//! One request: its route, the checks every route shares (GET only, no body), the
//! native routes, and the answers, values and errors alike.

use super::{ConnPeer, Face, HttpRequestError, query, rpc};
use crate::access::{Guard, Peer, Target};
use crate::reload::{Live, Runtime};
use crate::resolver::{CacheOutcome, CachedSecret, Freshness, Hit, Resolved};
use crate::status::{code_name, http_status, http_status_of};
use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, Either};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::cell::{Ref, RefCell};
use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::{Code, Status};
use vaultbridge_backend_core::BackendError;
use zeroize::Zeroizing;

pub(super) use super::body::Body;

const NATIVE_PREFIX: &str = "/v1/secrets/";
const HEALTH: &str = "/v1/health";

/// A secret's bytes on their way out: wiped when hyper drops the body after writing it.
struct Wiped(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A body holding secret material.
pub(super) fn secret_body(bytes: Zeroizing<Vec<u8>>) -> Body {
    Body::bytes(Bytes::from_owner(Wiped(bytes)))
}

enum Route<'a> {
    Secret(&'a str),
    Health,
    AgentQuery,
    AgentPath,
    AgentPing,
}

fn route<'a>(face: &Face, path: &'a str) -> Option<Route<'a>> {
    if let Some(name) = path.strip_prefix(NATIVE_PREFIX) {
        return Some(Route::Secret(name));
    }
    if path == HEALTH {
        return Some(Route::Health);
    }
    face.aws.as_ref()?;
    match path {
        "/secretsmanager/get" => Some(Route::AgentQuery),
        "/ping" => Some(Route::AgentPing),
        _ => path.starts_with("/v1/").then_some(Route::AgentPath),
    }
}

/// What hyper awaits for one request: an answer made at once, or one still to come.
pub(super) type Answer = Either<Ready<Result<Response<Body>, Infallible>>, Later>;
type Later = BoxFuture<'static, Result<Response<Body>, Infallible>>;

fn now(response: Response<Body>) -> Answer {
    Either::Left(std::future::ready(Ok(response)))
}

/// Answers one request, called by hyper's service directly. Whatever needs no backend
/// (a cache hit, every error, health) is answered here, before hyper reads on: the
/// request's head is a slice of the connection's read buffer, and a request still
/// held when hyper next reads makes it allocate a new buffer, every request.
pub(super) fn answer(face: &Arc<Face>, caller: &Caller, request: Request<Incoming>) -> Answer {
    let peer = caller.peer;
    let path = request.uri().path();
    let Some(route) = route(face, path) else {
        return now(request_error(
            &HttpRequestError::NoRoute {
                path: path.to_owned(),
            },
            false,
        ));
    };
    let agent = matches!(route, Route::AgentQuery | Route::AgentPath);
    if request.method() != Method::GET {
        let mut response = request_error(
            &HttpRequestError::MethodNotAllowed {
                method: request.method().to_string(),
            },
            agent,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return now(response);
    }
    if !request.body().is_end_stream() {
        return now(request_error(&HttpRequestError::Body, agent));
    }
    match route {
        Route::Secret(name) => {
            let query = request.uri().query();
            let runtime = caller.runtime(&face.live);
            match get_secret(face, &runtime, peer, request.headers(), name, query) {
                Ok(Step::Fetch(fetch)) => Either::Right(Box::pin(fetch.run(Arc::clone(face)))),
                Ok(Step::Hit(response)) => {
                    count(face, rpc::GET_SECRET, Code::Ok);
                    now(response)
                }
                Err(status) => {
                    count(face, rpc::GET_SECRET, status.code());
                    now(error(&status, false))
                }
            }
        }
        Route::Health => {
            count(face, rpc::HEALTH, Code::Ok);
            now(health(face))
        }
        Route::AgentPing => now(plain(StatusCode::OK, "healthy")),
        Route::AgentQuery | Route::AgentPath => {
            let by_path = matches!(route, Route::AgentPath);
            Either::Right(Box::pin(agent_get_secret(
                Arc::clone(face),
                peer,
                request,
                by_path,
            )))
        }
    }
}

/// What one connection keeps from request to request: its peer, and the runtime its
/// last request was answered with. Seeing that no reload came since is one plain read
/// of the reload counter; loading the live runtime through arc-swap for each request
/// cost two atomic read-modify-writes (taking a debt slot and paying it back) and
/// about 56 instructions more. A connection picks up a reload at its next request;
/// an idle one is closed within `header_read_timeout`, which also bounds how long it
/// keeps an old runtime alive.
pub(super) struct Caller {
    peer: ConnPeer,
    held: RefCell<Held>,
}

struct Held {
    generations: watch::Receiver<u64>,
    runtime: Arc<Runtime>,
}

impl Caller {
    pub(super) fn new(peer: ConnPeer, live: &Live) -> Self {
        // Subscribed before the load: a reload in between is seen at the first request.
        let generations = live.subscribe();
        Self {
            peer,
            held: RefCell::new(Held {
                generations,
                runtime: live.load(),
            }),
        }
    }

    /// The runtime to answer a request with: the held one, unless a reload swapped it.
    fn runtime(&self, live: &Live) -> Ref<'_, Arc<Runtime>> {
        {
            let mut held = self.held.borrow_mut();
            // An error means the daemon is going away: keep answering with what it had.
            if held.generations.has_changed().unwrap_or(false) {
                held.generations.mark_unchanged();
                held.runtime = live.load();
            }
        }
        Ref::map(self.held.borrow(), |held| &held.runtime)
    }
}

/// Counts a call answered at once in the metrics, by its code: the answer itself is
/// not passed through, so that a hit's response is not moved once more.
fn count(face: &Face, rpc: usize, code: Code) {
    if let Some(mut meter) = face.meter.start(rpc) {
        meter.ended_with(code);
    }
}

/// The agent's routes, which keep the request: they are off by default, and their
/// answer is JSON made per request anyway.
async fn agent_get_secret(
    face: Arc<Face>,
    peer: ConnPeer,
    request: Request<Incoming>,
    by_path: bool,
) -> Result<Response<Body>, Infallible> {
    let face = &*face;
    let secret_id = if by_path {
        request.uri().path().strip_prefix("/v1/")
    } else {
        None
    };
    let call = super::aws::get_secret_value(
        face,
        peer,
        request.headers(),
        secret_id,
        request.uri().query(),
    );
    Ok(face
        .meter
        .observe(rpc::AWS_GET_SECRET, call)
        .await
        .unwrap_or_else(|status| error(&status, true)))
}

/// The caller under the access rules, from the connection and the request's headers.
/// `agent_token`: the AWS agent's token, which over TCP identifies a client that lists
/// it among its tokens when no `Authorization` header is sent.
pub(super) fn guard(
    runtime: &Runtime,
    peer: ConnPeer,
    headers: &HeaderMap,
    agent_token: Option<&str>,
    rpc: &'static str,
) -> Result<Option<Guard>, Status> {
    // Without access rules there is nobody to identify: skip the header lookups.
    if runtime.access.is_none() {
        return Ok(None);
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().ok());
    let peer = Peer {
        unix: peer.unix,
        certificate: None,
        authorization,
        agent_token: if peer.unix.is_none() {
            agent_token
        } else {
            None
        },
        address: peer.address,
    };
    Guard::of_peer(runtime.access.as_ref(), &peer, rpc)
}

/// How far [`get_secret`] got without waiting.
enum Step {
    Hit(Response<Body>),
    Fetch(Fetch),
}

/// A `GET /v1/secrets/{name}` that needs a backend call: what it was checked with, the
/// name owned so that the request can go.
struct Fetch {
    runtime: Arc<Runtime>,
    guard: Option<Guard>,
    name: String,
    freshness: Freshness,
}

impl Fetch {
    async fn run(self, face: Arc<Face>) -> Result<Response<Body>, Infallible> {
        let face = &*face;
        let mut meter = face.meter.start(rpc::GET_SECRET);
        let result = self
            .runtime
            .resolver
            .resolve_with(&self.name, self.freshness)
            .await;
        if let Some(guard) = &self.guard {
            guard.resolved(rpc::AUDIT_GET_SECRET, &self.name, result.as_ref());
        }
        let result = result
            .map(|resolved| value_response(face, Served::resolved(&resolved)))
            .map_err(Status::from);
        if let Some(meter) = &mut meter {
            meter.ended(&result);
        }
        Ok(result.unwrap_or_else(|status| error(&status, false)))
    }
}

/// `GET /v1/secrets/{name}`: the value as the body, what is known about it in headers.
fn get_secret(
    face: &Face,
    runtime: &Arc<Runtime>,
    peer: ConnPeer,
    headers: &HeaderMap,
    name: &str,
    query: Option<&str>,
) -> Result<Step, Status> {
    let guard = guard(runtime, peer, headers, None, rpc::AUDIT_GET_SECRET)?;
    let name = query::decode(name, false, "path")?;
    let freshness = query::freshness(query)?;
    if let Some(guard) = &guard {
        guard.check(rpc::AUDIT_GET_SECRET, Target::Definition(&name))?;
    }
    let Some(hit) = runtime.resolver.cache_hit(&name, freshness) else {
        return Ok(Step::Fetch(Fetch {
            name: name.into_owned(),
            runtime: Arc::clone(runtime),
            guard,
            freshness,
        }));
    };
    if let Some(guard) = &guard {
        guard.record(
            rpc::AUDIT_GET_SECRET,
            Target::Definition(&name),
            Code::Ok,
            Some(CacheOutcome::Hit.name()),
        );
    }
    Ok(Step::Hit(value_response(face, Served::hit(hit))))
}

/// Header names made once: `from_static` looks a name up each time it runs.
const X_CACHE: HeaderName = HeaderName::from_static("x-vaultbridge-cache");
const X_STALE: HeaderName = HeaderName::from_static("x-vaultbridge-stale");
const X_TRIMMED: HeaderName = HeaderName::from_static("x-vaultbridge-trimmed");
const X_AGE: HeaderName = HeaderName::from_static("x-vaultbridge-age");
const X_FETCHED_AT: HeaderName = HeaderName::from_static("x-vaultbridge-fetched-at");
const X_BACKEND: HeaderName = HeaderName::from_static("x-vaultbridge-backend");
const X_VERSION: HeaderName = HeaderName::from_static("x-vaultbridge-version");
const X_STALE_REASON: HeaderName = HeaderName::from_static("x-vaultbridge-stale-reason");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const BINARY: HeaderValue = HeaderValue::from_static("application/octet-stream");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const FALSE: HeaderValue = HeaderValue::from_static("false");
/// The most headers a value's answer has.
const VALUE_HEADERS: usize = 10;

/// What an answer with a value tells: a hit's or a resolve's.
struct Served<'a> {
    backend_name: &'a Arc<str>,
    secret: Arc<CachedSecret>,
    cache: CacheOutcome,
    age: Duration,
    stale_reason: Option<&'a BackendError>,
}

impl<'a> Served<'a> {
    /// A hit's answer, taking over its reference to the value.
    fn hit(hit: Hit<'a>) -> Self {
        Self {
            backend_name: &hit.source().backend_name,
            secret: hit.secret,
            cache: CacheOutcome::Hit,
            age: hit.age,
            stale_reason: None,
        }
    }

    /// A resolve's answer (a miss or a stale value, off the hit path).
    fn resolved(resolved: &'a Resolved) -> Self {
        Self {
            backend_name: &resolved.source().backend_name,
            secret: Arc::clone(&resolved.secret),
            cache: resolved.cache,
            age: resolved.age,
            stale_reason: resolved.stale_reason.as_deref(),
        }
    }
}

fn value_response(face: &Face, resolved: Served<'_>) -> Response<Body> {
    let secret = &resolved.secret;
    // Room for every header at once: growing the map mid-answer rehashes it.
    let mut headers = HeaderMap::with_capacity(VALUE_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        if secret.is_text { TEXT } else { BINARY },
    );
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(X_CACHE, HeaderValue::from_static(resolved.cache.name()));
    let flag = |on: bool| if on { TRUE } else { FALSE };
    headers.insert(X_STALE, flag(resolved.cache == CacheOutcome::Stale));
    headers.insert(X_TRIMMED, flag(secret.trimmed));
    let age = resolved.age;
    let mut digits = [0u8; 32];
    let age = decimal(&mut digits, age.as_secs(), age.subsec_millis());
    headers.insert(X_AGE, pooled_header_value(age));
    let fetched_at = secret.fetched_at_header.get_or_init(|| {
        let mut at = [0u8; 32];
        rfc3339(&mut at, secret.fetched_at).map(|text| Box::new(header_value(text)))
    });
    if let Some(fetched_at) = fetched_at {
        headers.insert(X_FETCHED_AT, HeaderValue::clone(fetched_at));
    }
    let backend_name = resolved.backend_name;
    match face.backend_header(backend_name) {
        Some(backend) => {
            headers.insert(X_BACKEND, backend.clone());
        }
        None => insert_text(&mut headers, X_BACKEND, backend_name),
    }
    if let Some(version) = &secret.version {
        insert_text(&mut headers, X_VERSION, version);
    }
    if let Some(reason) = resolved.stale_reason {
        insert_text(&mut headers, X_STALE_REASON, &reason.to_string());
    }
    // The entry itself is the body: no second reference to take, no copy.
    let mut response = Response::new(Body::cached(resolved.secret));
    *response.headers_mut() = headers;
    response
}

thread_local! {
    /// Where this thread writes per-answer header values: each value is a slice of one
    /// shared block, so one allocation serves hundreds of answers where a value of its
    /// own cost one per answer. A block is freed once its last slice is dropped.
    static HEADER_TEXT: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The size of one block of [`HEADER_TEXT`].
const HEADER_BLOCK: usize = 4096;

/// `ascii` as a header value, in this thread's shared block.
fn pooled_header_value(ascii: &[u8]) -> HeaderValue {
    let bytes = HEADER_TEXT.with_borrow_mut(|block| {
        if block.capacity() - block.len() < ascii.len() {
            *block = BytesMut::with_capacity(HEADER_BLOCK.max(ascii.len()));
        }
        block.extend_from_slice(ascii);
        block.split().freeze()
    });
    HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

/// ASCII digits, dots, dashes, colons and `T`/`Z` always make a header value.
fn header_value(ascii: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(ascii).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

/// `secs.mmm` into `buffer`, without the formatting machinery.
fn decimal(buffer: &mut [u8; 32], secs: u64, millis: u32) -> &[u8] {
    let mut end = buffer.len();
    let mut push = |buffer: &mut [u8; 32], byte: u8| {
        end -= 1;
        if let Some(slot) = buffer.get_mut(end) {
            *slot = byte;
        }
    };
    let mut fraction = millis;
    for _ in 0..3 {
        push(buffer, b'0' + (fraction % 10) as u8);
        fraction /= 10;
    }
    push(buffer, b'.');
    let mut whole = secs;
    loop {
        push(buffer, b'0' + (whole % 10) as u8);
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    buffer.get(end..).unwrap_or_default()
}

/// `time` as RFC 3339 in UTC with microseconds (`2026-11-30T08:00:00.123456Z`), written
/// by hand: the `time` crate's formatter costs more than the rest of the answer.
fn rfc3339(buffer: &mut [u8; 32], time: std::time::SystemTime) -> Option<&[u8]> {
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).ok()?;
    let of_day = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let fields = [
        (year as u64, 4, b'-'),
        (month as u64, 2, b'-'),
        (day as u64, 2, b'T'),
        (of_day / 3600, 2, b':'),
        (of_day / 60 % 60, 2, b':'),
        (of_day % 60, 2, b'.'),
        (u64::from(since.subsec_micros()), 6, b'Z'),
    ];
    let mut at = 0;
    for (value, width, after) in fields {
        let mut rest = value;
        for position in (0..width).rev() {
            *buffer.get_mut(at + position)? = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        *buffer.get_mut(at + width)? = after;
        at += width + 1;
    }
    buffer.get(..at)
}

/// A header whose text may hold characters a header cannot: those become `?`.
fn insert_text(headers: &mut HeaderMap, name: HeaderName, text: &str) {
    let value = HeaderValue::from_str(text).unwrap_or_else(|_| {
        let cleaned: String = text
            .chars()
            .map(|c| {
                if c == '\t' || (' '..='~').contains(&c) {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&cleaned).unwrap_or_else(|_| HeaderValue::from_static("?"))
    });
    headers.insert(name, value);
}

/// `GET /v1/health`: 200 while the daemon serves, 503 once it is shutting down.
fn health(face: &Face) -> Response<Body> {
    let (status, text) = if *face.stopping.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING")
    } else {
        (StatusCode::OK, "SERVING")
    };
    json(status, &serde_json::json!({ "status": text }))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::bytes(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::bytes(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error as JSON: `{"code": "NOT_FOUND", "message": …}`, with the message gRPC
/// callers get. On the agent's routes it also carries the agent's `__type`.
pub(super) fn error(status: &Status, agent: bool) -> Response<Body> {
    answer_error(
        status.code(),
        http_status(status.code()),
        status.message(),
        agent,
    )
}

fn request_error(err: &HttpRequestError, agent: bool) -> Response<Body> {
    let (code, http) = http_status_of(err);
    answer_error(code, http, &err.to_string(), agent)
}

fn answer_error(code: Code, http: u16, message: &str, agent: bool) -> Response<Body> {
    let status = StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::json!({ "code": code_name(code), "message": message });
    if agent {
        body["__type"] = serde_json::Value::from(crate::status::aws_error_type(code));
    }
    json(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn pooled_header_values_keep_their_own_text_across_blocks() {
        // Enough values to fill several blocks; each must keep its own bytes while the
        // block goes on being written after it.
        let values: Vec<(String, HeaderValue)> = (0..3 * HEADER_BLOCK / 4)
            .map(|i| {
                let text = format!("{i}.{:03}", i % 1000);
                let value = pooled_header_value(text.as_bytes());
                (text, value)
            })
            .collect();
        for (text, value) in &values {
            assert_eq!(value.as_bytes(), text.as_bytes());
        }
        assert_eq!(pooled_header_value(b"bad\nvalue"), "?");
        let long = "9".repeat(HEADER_BLOCK + 1);
        assert_eq!(
            pooled_header_value(long.as_bytes()).as_bytes(),
            long.as_bytes()
        );
    }

    #[test]
    fn timestamps_and_ages_are_written_as_the_time_crate_would() {
        for secs in [
            0,
            951_782_400,
            1_764_490_441,
            4_102_444_799,
            253_402_300_799,
        ] {
            let at = UNIX_EPOCH + Duration::new(secs, 123_456_789);
            let mut buffer = [0u8; 32];
            let ours = std::str::from_utf8(rfc3339(&mut buffer, at).unwrap())
                .unwrap()
                .to_owned();
            let theirs = time::OffsetDateTime::from(at)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            // The time crate writes nanoseconds; the header stops at microseconds.
            assert_eq!(ours, format!("{}Z", &theirs[..theirs.len() - 4]), "{secs}");
        }
        let mut buffer = [0u8; 32];
        assert_eq!(decimal(&mut buffer, 12, 345), b"12.345");
        assert_eq!(decimal(&mut buffer, 0, 7), b"0.007");
        assert_eq!(
            decimal(&mut buffer, u64::MAX, 999),
            format!("{}.999", u64::MAX).as_bytes()
        );
    }
}
