//! The AWS Secrets Manager Agent's routes (`server.http.aws_agent_compat`), so code
//! written against the agent works unchanged: `GET /secretsmanager/get?secretId=…` and
//! `GET /v1/{secretId}`, the `X-Aws-Parameters-Secrets-Token` header checked against the
//! token the agent would read, `X-Forwarded-For` refused, and the agent's JSON answer.
//!
//! A `secretId` is answered from a definition of an `aws_secrets_manager` backend: one
//! whose `secret` is that name or ARN and which serves the whole secret (no `key`), or
//! the definition of that name. The daemon's cache, access rules and audit trail apply
//! as on every other route.

use super::query::{self, AgentQuery};
use super::routes::{self, Body};
use super::{ConnPeer, Face, HttpRequestError, rpc};
use crate::access::Target;
use crate::config::Vars;
use crate::resolver::{Definition, Freshness, Resolved, Resolver};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tonic::Status;
use vaultbridge_backend_core::VersionSelector;
use zeroize::Zeroizing;

/// Where the agent looks for its token, in this order (its `ssrf_env_variables`).
const TOKEN_VARIABLES: [&str; 3] = [
    "AWS_TOKEN",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];
/// The headers the agent accepts the token in (its default `ssrf_headers`).
const TOKEN_HEADERS: [&str; 2] = ["x-aws-parameters-secrets-token", "x-vault-token"];
const BACKEND_KIND: &str = "aws_secrets_manager";
/// The metadata the AWS backend returns with a value (`vaultbridge_backend_aws`).
const ARN: &str = "arn";
const NAME: &str = "name";
const CREATED_DATE: &str = "created_date";
const VERSION_STAGES: &str = "version_stages";
const BINARY: &str = "secret_binary";

#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error(
        "server.http.aws_agent_compat needs the token callers send in X-Aws-Parameters-Secrets-Token, read as the AWS agent reads it: set AWS_TOKEN (the token, or file:///path/to/token), AWS_SESSION_TOKEN or AWS_CONTAINER_AUTHORIZATION_TOKEN"
    )]
    NoToken,
    #[error("server.http.aws_agent_compat: the token in `{variable}` is empty")]
    EmptyToken { variable: &'static str },
    #[error(
        "server.http.aws_agent_compat: cannot read the token file `{path}` named by `{variable}`: {source}"
    )]
    TokenFile {
        variable: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub(super) struct Compat {
    /// Only the digest is kept, compared in constant time.
    token: [u8; 32],
    /// The definitions the agent's routes may answer for, made for the resolver of the
    /// config being served and made anew after a reload swaps it.
    index: std::sync::Mutex<(Arc<Resolver>, Arc<AgentIndex>)>,
}

/// The definitions of `aws_secrets_manager` backends, as the agent's routes find them.
#[derive(Debug)]
struct AgentIndex {
    /// Those that serve a whole secret.
    definitions: Vec<Arc<Definition>>,
    /// Every one, for a `secretId` that names one.
    by_name: Vec<Arc<Definition>>,
}

impl AgentIndex {
    /// Definitions with several sources are left out: the agent's answer describes
    /// one Secrets Manager secret, and a fallback may be served from another vault.
    fn of(resolver: &Resolver) -> Self {
        let by_name: Vec<Arc<Definition>> = resolver
            .definitions()
            .into_iter()
            .filter(|definition| {
                !definition.sources.several()
                    && definition.sources.first().backend.kind() == BACKEND_KIND
            })
            .collect();
        Self {
            definitions: by_name
                .iter()
                .filter(|definition| definition.sources.first().secret.key.is_none())
                .cloned()
                .collect(),
            by_name,
        }
    }
}

impl Compat {
    pub(super) fn new(resolver: &Arc<Resolver>, vars: &dyn Vars) -> Result<Self, SetupError> {
        let (variable, value) = TOKEN_VARIABLES
            .iter()
            .find_map(|name| vars.var(name).map(|value| (*name, Zeroizing::new(value))))
            .ok_or(SetupError::NoToken)?;
        let token = match value.strip_prefix("file://") {
            Some(path) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|source| SetupError::TokenFile {
                        variable,
                        path: path.to_owned(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => value,
        };
        if token.is_empty() {
            return Err(SetupError::EmptyToken { variable });
        }
        let index = AgentIndex::of(resolver);
        tracing::info!(
            token_from = variable,
            definitions = index.by_name.len(),
            "AWS agent compatibility on"
        );
        Ok(Self {
            token: Sha256::digest(token.as_bytes()).into(),
            index: std::sync::Mutex::new((resolver.clone(), Arc::new(index))),
        })
    }

    /// The index for `resolver`, made anew when a reload brought another one.
    fn index(&self, resolver: &Arc<Resolver>) -> Arc<AgentIndex> {
        let mut slot = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&slot.0, resolver) {
            *slot = (resolver.clone(), Arc::new(AgentIndex::of(resolver)));
        }
        slot.1.clone()
    }

    /// The agent's checks, in its order: no forwarding, then the token.
    fn check(&self, headers: &HeaderMap) -> Result<String, HttpRequestError> {
        if headers.contains_key("x-forwarded-for") {
            return Err(HttpRequestError::Forwarded);
        }
        TOKEN_HEADERS
            .iter()
            .filter_map(|name| headers.get(*name))
            .find(|value| {
                let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
                bool::from(digest.ct_eq(&self.token))
            })
            .and_then(|value| value.to_str().ok().map(str::to_owned))
            .ok_or(HttpRequestError::AgentToken)
    }
}

impl AgentIndex {
    /// The definition that answers `query`: one named `secretId`, else one of the
    /// secret serving the version asked for, else one serving its current version
    /// (which [`served`] checks once resolved).
    fn select(&self, query: &AgentQuery) -> Result<&Arc<Definition>, HttpRequestError> {
        let id = query.secret_id.as_str();
        if let Some(named) = self.by_name.iter().find(|d| &*d.name == id) {
            return Ok(named);
        }
        let candidates: Vec<&Arc<Definition>> = self
            .definitions
            .iter()
            .filter(|definition| same_secret(&definition.sources.first().secret.id, id))
            .collect();
        let pinned =
            candidates.iter().find(
                |definition| match &definition.sources.first().secret.version {
                    VersionSelector::Id(version) => query.version_id.as_ref() == Some(version),
                    VersionSelector::Stage(stage) => {
                        query.version_id.is_none() && query.version_stage.as_ref() == Some(stage)
                    }
                    _ => false,
                },
            );
        let current = || {
            candidates.iter().find(|definition| {
                definition.sources.first().secret.version == VersionSelector::Latest
            })
        };
        pinned
            .or_else(current)
            .copied()
            .ok_or_else(|| not_served(query))
    }
}

fn not_served(query: &AgentQuery) -> HttpRequestError {
    let version = match (&query.version_id, &query.version_stage) {
        (Some(id), _) => format!(" at version `{id}`"),
        (None, Some(stage)) => format!(" at stage `{stage}`"),
        (None, None) => String::new(),
    };
    HttpRequestError::NoAwsDefinition {
        secret_id: query.secret_id.clone(),
        version,
    }
}

/// Whether a definition's `secret` and a caller's `secretId` name the same secret:
/// equal, or one an ARN of the other's name (AWS appends `-` and six characters to a
/// name in an ARN; a partial ARN leaves them off).
fn same_secret(configured: &str, asked: &str) -> bool {
    let names = |arn: &str, other: &str| {
        arn.starts_with("arn:")
            && (arn_name(arn) == Some(other)
                || arn.split(":secret:").nth(1) == Some(other)
                || (other.starts_with("arn:") && arn.starts_with(other)))
    };
    configured == asked || names(configured, asked) || names(asked, configured)
}

fn arn_name(arn: &str) -> Option<&str> {
    let part = arn.split(":secret:").nth(1)?;
    let cut = part.len().checked_sub(7)?;
    (part.as_bytes().get(cut) == Some(&b'-')).then(|| part.get(..cut))?
}

/// Whether what was resolved is the version the caller asked for.
fn served(resolved: &Resolved, query: &AgentQuery) -> bool {
    let secret = &resolved.secret;
    let id_ok = query
        .version_id
        .as_ref()
        .is_none_or(|id| secret.version.as_ref() == Some(id));
    let stage_ok = query.version_stage.as_ref().is_none_or(|stage| {
        secret
            .metadata
            .get(VERSION_STAGES)
            .is_some_and(|stages| stages.split(',').any(|s| s == stage))
    });
    id_ok && stage_ok
}

/// `GET /secretsmanager/get?secretId=…` (`path_id: None`) or `GET /v1/{secretId}`.
pub(super) async fn get_secret_value(
    face: &Face,
    peer: ConnPeer,
    headers: &HeaderMap,
    path_id: Option<&str>,
    query_text: Option<&str>,
) -> Result<Response<Body>, Status> {
    let Some(compat) = &face.aws else {
        return Err(HttpRequestError::NoRoute {
            path: path_id.unwrap_or("/secretsmanager/get").to_owned(),
        }
        .into());
    };
    let token = compat.check(headers)?;
    let rpc = rpc::AUDIT_AWS_GET_SECRET;
    let runtime = face.live.load();
    let guard = routes::guard(&runtime, peer, headers, Some(&token), rpc)?;
    let path_id = path_id
        .map(|id| query::decode(id, false, "path").map(std::borrow::Cow::into_owned))
        .transpose()?;
    let query = query::agent(path_id, query_text)?;
    let index = compat.index(&runtime.resolver);
    let definition = index.select(&query)?;
    if let Some(guard) = &guard {
        guard.check(rpc, Target::Definition(&definition.name))?;
    }
    let freshness = Freshness {
        max_age: None,
        refresh: query.refresh_now,
    };
    let result = runtime
        .resolver
        .resolve_with(&definition.name, freshness)
        .await;
    if let Some(guard) = &guard {
        guard.resolved(rpc, &definition.name, result.as_ref());
    }
    let resolved = result?;
    if !served(&resolved, &query) {
        return Err(not_served(&query).into());
    }
    let mut response = Response::new(routes::secret_body(agent_json(&resolved)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The agent's answer, `GetSecretValue`'s shape: `ARN`, `Name`, `VersionId`, then
/// `SecretString` or `SecretBinary` (base64), `VersionStages`, and `CreatedDate` as
/// seconds since the epoch in a string. Written straight into a buffer that is wiped
/// when the response is dropped; sized first so that it never reallocates (which would
/// leave a copy of the value behind).
fn agent_json(resolved: &Resolved) -> Zeroizing<Vec<u8>> {
    use base64::Engine as _;
    let secret = &resolved.secret;
    let value = secret.value.expose();
    let metadata = &secret.metadata;
    let binary = metadata.get(BINARY).is_some_and(|flag| flag == "true")
        || secret.value.expose_str().is_none();
    // Escaping writes at most 6 bytes per byte (`\u00XX`); base64 4 per 3.
    let mut buffer = Zeroizing::new(Vec::with_capacity(value.len() * 6 + 1024));
    let out: &mut Vec<u8> = &mut buffer;
    let text = |out: &mut Vec<u8>, value: Option<&str>| match value {
        // Writing JSON into a Vec cannot fail.
        Some(value) => {
            let _ = serde_json::to_writer(&mut *out, value);
        }
        None => out.extend_from_slice(b"null"),
    };
    out.extend_from_slice(b"{\"ARN\":");
    text(out, metadata.get(ARN).map(String::as_str));
    out.extend_from_slice(b",\"Name\":");
    text(out, metadata.get(NAME).map(String::as_str));
    out.extend_from_slice(b",\"VersionId\":");
    text(out, secret.version.as_deref());
    match secret.value.expose_str() {
        Some(string) if !binary => {
            out.extend_from_slice(b",\"SecretString\":");
            text(out, Some(string));
        }
        _ => {
            out.extend_from_slice(b",\"SecretBinary\":\"");
            let start = out.len();
            out.resize(start + value.len().div_ceil(3) * 4, 0);
            let written = out
                .get_mut(start..)
                .map(|tail| base64::engine::general_purpose::STANDARD.encode_slice(value, tail));
            if let Some(Ok(written)) = written {
                out.truncate(start + written);
            }
            out.push(b'"');
        }
    }
    if let Some(stages) = metadata.get(VERSION_STAGES) {
        out.extend_from_slice(b",\"VersionStages\":");
        let stages: Vec<&str> = stages.split(',').filter(|s| !s.is_empty()).collect();
        let _ = serde_json::to_writer(&mut *out, &stages);
    }
    out.extend_from_slice(b",\"CreatedDate\":");
    text(out, metadata.get(CREATED_DATE).map(String::as_str));
    out.push(b'}');
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_the_same_by_name_full_arn_and_partial_arn() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pipeline/db-AbC123";
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pipeline/db";
        for (configured, asked) in [
            ("pipeline/db", "pipeline/db"),
            (arn, "pipeline/db"),
            ("pipeline/db", arn),
            (arn, partial),
            (partial, "pipeline/db"),
            (arn, arn),
        ] {
            assert!(same_secret(configured, asked), "{configured} / {asked}");
        }
        for (configured, asked) in [
            ("pipeline/db", "pipeline/db2"),
            (arn, "pipeline"),
            (
                "pipeline/db",
                "arn:aws:secretsmanager:us-east-1:1:secret:other-AbC123",
            ),
        ] {
            assert!(!same_secret(configured, asked), "{configured} / {asked}");
        }
    }

    struct Map(Vec<(&'static str, String)>);

    impl Vars for Map {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn resolver() -> Arc<Resolver> {
        Arc::new(Resolver::from_definitions([], 10))
    }

    #[test]
    fn the_token_is_read_as_the_agent_reads_it() {
        let compat = |vars: Vec<(&'static str, String)>| Compat::new(&resolver(), &Map(vars));
        assert!(matches!(compat(vec![]), Err(SetupError::NoToken)));
        assert!(matches!(
            compat(vec![("AWS_SESSION_TOKEN", String::new())]),
            Err(SetupError::EmptyToken {
                variable: "AWS_SESSION_TOKEN"
            })
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        // AWS_TOKEN comes first, and may name a file.
        let from_file = compat(vec![
            ("AWS_SESSION_TOKEN", "session".into()),
            ("AWS_TOKEN", format!("file://{}", file.display())),
        ])
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-aws-parameters-secrets-token",
            HeaderValue::from_static("from-file"),
        );
        assert_eq!(from_file.check(&headers).unwrap(), "from-file");
        headers.insert(
            "x-aws-parameters-secrets-token",
            HeaderValue::from_static("session"),
        );
        assert!(matches!(
            from_file.check(&headers),
            Err(HttpRequestError::AgentToken)
        ));
        let session = compat(vec![("AWS_SESSION_TOKEN", "session".into())]).unwrap();
        assert!(session.check(&headers).is_ok());
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        assert!(matches!(
            session.check(&headers),
            Err(HttpRequestError::Forwarded)
        ));
        let missing = compat(vec![("AWS_TOKEN", "file:///nonexistent/vb-token".into())]);
        assert!(matches!(missing, Err(SetupError::TokenFile { .. })));
    }
}
