//! One request: its route, the checks every route shares (GET only, no body), the
//! native routes, and the answers, values and errors alike.

use super::{ConnPeer, Face, HttpRequestError, query, rpc};
use crate::access::{Guard, Peer, Target};
use crate::resolver::{CacheOutcome, Resolved};
use crate::status::{code_name, http_status, http_status_of};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tonic::{Code, Status};
use zeroize::Zeroizing;

pub(super) type Body = Full<Bytes>;

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
    Full::new(Bytes::from_owner(Wiped(bytes)))
}

enum Route<'a> {
    Secret(&'a str),
    Health,
    AgentQuery,
    AgentPath(&'a str),
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
        _ => path.strip_prefix("/v1/").map(Route::AgentPath),
    }
}

pub(super) async fn answer(
    face: &Face,
    peer: ConnPeer,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path();
    let Some(route) = route(face, path) else {
        return request_error(
            &HttpRequestError::NoRoute {
                path: path.to_owned(),
            },
            false,
        );
    };
    let agent = matches!(route, Route::AgentQuery | Route::AgentPath(_));
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
        return response;
    }
    if !request.body().is_end_stream() {
        return request_error(&HttpRequestError::Body, agent);
    }
    let query = request.uri().query();
    let headers = request.headers();
    match route {
        Route::Secret(name) => {
            let call = get_secret(face, peer, headers, name, query);
            face.meter
                .observe(rpc::GET_SECRET, call)
                .await
                .unwrap_or_else(|status| error(&status, false))
        }
        Route::Health => face
            .meter
            .observe(rpc::HEALTH, async { Ok(health(face)) })
            .await
            .unwrap_or_else(|status| error(&status, false)),
        Route::AgentPing => plain(StatusCode::OK, "healthy"),
        Route::AgentQuery | Route::AgentPath(_) => {
            let secret_id = match route {
                Route::AgentPath(id) => Some(id),
                _ => None,
            };
            let call = super::aws::get_secret_value(face, peer, headers, secret_id, query);
            face.meter
                .observe(rpc::AWS_GET_SECRET, call)
                .await
                .unwrap_or_else(|status| error(&status, true))
        }
    }
}

/// The caller under the access rules, from the connection and the request's headers.
/// `agent_token`: the AWS agent's token, which over TCP identifies a client that lists
/// it among its tokens when no `Authorization` header is sent.
pub(super) fn guard(
    face: &Face,
    peer: ConnPeer,
    headers: &HeaderMap,
    agent_token: Option<&str>,
    rpc: &'static str,
) -> Result<Option<Guard>, Status> {
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
    Guard::of_peer(face.access.as_ref(), &peer, rpc)
}

/// `GET /v1/secrets/{name}`: the value as the body, what is known about it in headers.
async fn get_secret(
    face: &Face,
    peer: ConnPeer,
    headers: &HeaderMap,
    name: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Status> {
    let guard = guard(face, peer, headers, None, rpc::AUDIT_GET_SECRET)?;
    let name = query::decode(name, false, "path")?;
    let freshness = query::freshness(query)?;
    if let Some(guard) = &guard {
        guard.check(rpc::AUDIT_GET_SECRET, Target::Definition(&name))?;
    }
    let result = face.resolver.resolve_with(&name, freshness).await;
    if let Some(guard) = &guard {
        guard.resolved(rpc::AUDIT_GET_SECRET, &name, &result);
    }
    Ok(value_response(&result?))
}

fn value_response(resolved: &Resolved) -> Response<Body> {
    let secret = &resolved.secret;
    let content_type = if secret.value.expose_str().is_some() {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let mut response = Response::new(secret_body(Zeroizing::new(secret.value.expose().to_vec())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let cache = match resolved.cache {
        CacheOutcome::Hit => "hit",
        CacheOutcome::Miss => "miss",
        CacheOutcome::Stale => "stale",
    };
    headers.insert(
        HeaderName::from_static("x-vaultbridge-cache"),
        HeaderValue::from_static(cache),
    );
    let flag = |on: bool| HeaderValue::from_static(if on { "true" } else { "false" });
    headers.insert(
        HeaderName::from_static("x-vaultbridge-stale"),
        flag(resolved.cache == CacheOutcome::Stale),
    );
    headers.insert(
        HeaderName::from_static("x-vaultbridge-trimmed"),
        flag(secret.trimmed),
    );
    insert_text(
        headers,
        "x-vaultbridge-age",
        &format!("{:.3}", resolved.age.as_secs_f64()),
    );
    if let Ok(fetched) = time::OffsetDateTime::from(secret.fetched_at)
        .format(&time::format_description::well_known::Rfc3339)
    {
        insert_text(headers, "x-vaultbridge-fetched-at", &fetched);
    }
    insert_text(
        headers,
        "x-vaultbridge-backend",
        &resolved.definition.backend_name,
    );
    if let Some(version) = &secret.version {
        insert_text(headers, "x-vaultbridge-version", version);
    }
    if let Some(reason) = &resolved.stale_reason {
        insert_text(headers, "x-vaultbridge-stale-reason", &reason.to_string());
    }
    response
}

/// A header whose text may hold characters a header cannot: those become `?`.
fn insert_text(headers: &mut HeaderMap, name: &'static str, text: &str) {
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
    headers.insert(HeaderName::from_static(name), value);
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
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
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
