//! A Key Vault fake and a Microsoft Entra token endpoint, served over TLS, for tests of
//! this crate and of the daemon. No Key Vault emulator can be installed here, so the
//! fake checks what the real service checks, for the calls vaultbridge makes: HTTPS
//! only, `api-version` required, the bearer challenge (401 with `WWW-Authenticate`
//! naming the authority and resource) before any token is accepted, tokens issued by
//! its token endpoint only for the right client secret or federated assertion, JSON
//! bodies shaped like the service's, `nextLink` paging, and injected faults.
//!
//! It answers as `<name>.vault.localhost` and `login.localhost`; the client reaches it
//! through the backend's `resolve` setting and trusts it through `ca_file`, so the
//! production code path is the one under test, challenge-resource check included.

use crate::{AzureConfig, CredentialConfig};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;

mod responses;
use responses::*;

pub const VAULT_HOST: &str = "fakevault.vault.localhost";
pub const LOGIN_HOST: &str = "login.localhost";
/// The resource the challenge names; the vault host must end with `.vault.localhost`.
pub const RESOURCE: &str = "https://vault.localhost";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "0c0dcb8a-3c4e-4ebb-8c2a-9f0c5d1e3a41";
pub const CLIENT_SECRET: &str = "fake-entra-client-secret";
/// The service account token a workload identity presents as its assertion.
pub const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.fake-federated-token.sig";
/// A token the vault accepts without a trip to the token endpoint, for seeding.
pub const STATIC_TOKEN: &str = "static-test-token";
const PAGE_SIZE: usize = 2;

/// A fault the vault answers with, once, for a named secret.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 403 as an RBAC vault answers it (its message has escaped CR LF).
    Forbidden,
    /// 429 with `Retry-After`.
    Throttled { retry_after_seconds: u64 },
    /// 500.
    ServerError,
    /// Answers normally after a delay.
    Slow(Duration),
    /// 401 with a fresh challenge although a valid token was sent (a revoked grant).
    Unauthorized,
}

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: String,
    content_type: Option<String>,
    enabled: bool,
    created: u64,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub host: String,
    pub method: String,
    pub path: String,
    pub authorized: bool,
}

#[derive(Debug, Default)]
struct State {
    secrets: BTreeMap<String, Vec<Version>>,
    tokens: HashSet<String>,
    faults: HashMap<String, VecDeque<Fault>>,
    seen: Vec<Seen>,
    token_requests: Vec<HashMap<String, String>>,
    next_version: u64,
}

pub struct FakeVault {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeVault")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeVault {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A CA made for this run, and a server certificate it signed for the fake's names.
fn certificates() -> (String, rustls::ServerConfig) {
    certificates_for(&[VAULT_HOST, LOGIN_HOST])
}

/// A CA made for this run (PEM), and a TLS server config whose certificate that CA
/// signed for `hosts`, offering HTTP/2 and HTTP/1.1. Other fakes behind a private CA
/// (the e2e tests' Jira) use it too.
pub fn certificates_for(hosts: &[&str]) -> (String, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vaultbridge test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let names = hosts
        .iter()
        .map(|host| (*host).to_owned())
        .collect::<Vec<_>>();
    let server_params = rcgen::CertificateParams::new(names).expect("server params");
    let server = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
        .expect("server key DER");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![server.der().clone()], key)
        .expect("server TLS config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca.pem(), config)
}

impl FakeVault {
    pub async fn start() -> Self {
        let (ca_pem, tls) = certificates();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ca_pem).expect("write CA");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let address = listener.local_addr().expect("address");
        let mut state = State::default();
        state.tokens.insert(STATIC_TOKEN.to_owned());
        let state = Arc::new(Mutex::new(state));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let shared = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    // A client that rejects our certificate ends here, as it should.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(&state, address, request).await,
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Self {
            address,
            state,
            dir,
            server,
        }
    }

    pub fn vault_url(&self) -> String {
        format!("https://{VAULT_HOST}:{}", self.address.port())
    }

    pub fn authority_host(&self) -> String {
        format!("https://{LOGIN_HOST}:{}", self.address.port())
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A federated token file holding [`FEDERATED_TOKEN`], as AKS mounts one.
    pub fn federated_token_file(&self) -> PathBuf {
        let path = self.dir.path().join("azure-identity-token");
        std::fs::write(&path, FEDERATED_TOKEN).expect("write federated token");
        path
    }

    /// Settings that reach this fake through TLS with its CA trusted.
    pub fn config(&self, credential: CredentialConfig) -> AzureConfig {
        let mut config = AzureConfig::new(self.vault_url(), credential);
        config.authority_host = Some(self.authority_host());
        config.ca_file = Some(self.ca_file());
        config.resolve = vec![
            (VAULT_HOST.to_owned(), self.address),
            (LOGIN_HOST.to_owned(), self.address),
        ];
        config.request_timeout = Duration::from_secs(2);
        config
    }

    /// The client-secret credential for the fake's service principal.
    pub fn client_secret_credential(secret_env: &str) -> CredentialConfig {
        CredentialConfig::ClientSecret {
            tenant_id: TENANT.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            secret: crate::SecretSource::Env(secret_env.to_owned()),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The official client with a static token: seeds and rotates through the fake's
    /// `PUT /secrets/{name}`.
    pub fn seeding_client(&self) -> azure_security_keyvault_secrets::SecretClient {
        let config = self.config(CredentialConfig::AzureCli);
        let options = azure_security_keyvault_secrets::SecretClientOptions {
            client_options: azure_core::http::ClientOptions {
                transport: Some(crate::AzureBackend::transport(&config).expect("transport")),
                ..Default::default()
            },
            ..Default::default()
        };
        azure_security_keyvault_secrets::SecretClient::new(
            &self.vault_url(),
            Arc::new(StaticToken),
            Some(options),
        )
        .expect("seeding client")
    }

    /// Sets a new version of `name` through the API and returns its version id.
    pub async fn put(&self, name: &str, value: &str, content_type: Option<&str>) -> String {
        let parameters = azure_security_keyvault_secrets::models::SetSecretParameters {
            value: Some(value.to_owned()),
            content_type: content_type.map(str::to_owned),
            ..Default::default()
        };
        let secret = self
            .seeding_client()
            .set_secret(name, parameters.try_into().expect("request body"), None)
            .await
            .expect("set secret")
            .into_model()
            .expect("secret bundle");
        let id = secret.id.expect("secret id");
        id.rsplit('/').next().expect("version").to_owned()
    }

    /// Queues a fault for the next request about `secret`.
    pub fn inject(&self, secret: &str, fault: Fault) {
        lock(&self.state)
            .faults
            .entry(secret.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Disables a secret's latest version, as `az keyvault secret set-attributes
    /// --enabled false` does.
    pub fn disable(&self, secret: &str) {
        if let Some(latest) = lock(&self.state)
            .secrets
            .get_mut(secret)
            .and_then(|versions| versions.last_mut())
        {
            latest.enabled = false;
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// The form fields of every token request (secrets included: test data only).
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        lock(&self.state).token_requests.clone()
    }
}

/// A credential with a token the fake accepts, for seeding through the official client.
#[derive(Debug)]
pub struct StaticToken;

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            azure_core::credentials::Secret::new(STATIC_TOKEN),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

type Answer = Response<Full<Bytes>>;

fn json(status: StatusCode, body: serde_json::Value) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn vault_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Answer {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = serde_json::json!({ "code": inner });
    }
    json(status, serde_json::json!({ "error": error }))
}

async fn handle(
    state: &Mutex<State>,
    address: SocketAddr,
    request: Request<hyper::body::Incoming>,
) -> Answer {
    let host = request
        .uri()
        .host()
        .map(str::to_owned)
        .or_else(|| {
            request
                .headers()
                .get("host")
                .and_then(|host| host.to_str().ok())
                .map(|host| host.split(':').next().unwrap_or(host).to_owned())
        })
        .unwrap_or_default();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect()
        })
        .unwrap_or_default();
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();

    if host == LOGIN_HOST {
        return token_endpoint(state, &method, &path, &body);
    }
    let authorized = bearer.is_some_and(|token| lock(state).tokens.contains(&token));
    lock(state).seen.push(Seen {
        host: host.clone(),
        method: method.to_string(),
        path: path.clone(),
        authorized,
    });
    if host != VAULT_HOST {
        return vault_error(StatusCode::NOT_FOUND, "NotFound", "unknown host", None);
    }
    if !authorized {
        return challenge();
    }
    let Some(api_version) = query.get("api-version") else {
        return vault_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI contains an invalid or missing api-version parameter.",
            None,
        );
    };
    let origin = format!("https://{VAULT_HOST}:{}", address.port());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let secret_name = match segments.as_slice() {
        ["secrets", name, ..] if !name.is_empty() => Some((*name).to_owned()),
        _ => None,
    };
    if let Some(name) = &secret_name {
        let fault = lock(state)
            .faults
            .get_mut(name)
            .and_then(VecDeque::pop_front);
        match fault {
            Some(Fault::Forbidden) => {
                return vault_error(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=test;oid=test\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'",
                    Some("ForbiddenByRbac"),
                );
            }
            Some(Fault::Throttled {
                retry_after_seconds,
            }) => {
                return Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header("retry-after", retry_after_seconds.to_string())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}"#,
                    )))
                    .expect("response");
            }
            Some(Fault::ServerError) => {
                return vault_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "An unexpected error occurred.",
                    None,
                );
            }
            Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
            Some(Fault::Unauthorized) => return challenge(),
            None => {}
        }
    }
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut state = lock(state);
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["secrets"]) | ("GET", ["secrets", ""]) => {
            let items: Vec<serde_json::Value> = state
                .secrets
                .iter()
                .filter_map(|(name, versions)| {
                    versions
                        .last()
                        .map(|latest| item(&origin, name, None, latest))
                })
                .collect();
            page(&origin, "secrets", api_version, items, skip)
        }
        ("GET", ["secrets", name, "versions"]) => match state.secrets.get(*name) {
            Some(versions) => {
                let items = versions
                    .iter()
                    .map(|version| item(&origin, name, Some(&version.id), version))
                    .collect();
                page(
                    &origin,
                    &format!("secrets/{name}/versions"),
                    api_version,
                    items,
                    skip,
                )
            }
            None => not_found(name),
        },
        ("GET", ["secrets", name]) | ("GET", ["secrets", name, ""]) => {
            match state.secrets.get(*name).and_then(|v| v.last()) {
                Some(latest) => bundle(&origin, name, latest),
                None => not_found(name),
            }
        }
        ("GET", ["secrets", name, version]) => {
            match state
                .secrets
                .get(*name)
                .and_then(|versions| versions.iter().find(|v| v.id == *version))
            {
                Some(found) => bundle(&origin, name, found),
                None => not_found(name),
            }
        }
        ("PUT", ["secrets", name]) => {
            let Ok(parameters) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return vault_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The request body is not valid JSON.",
                    None,
                );
            };
            let Some(value) = parameters["value"].as_str() else {
                return vault_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "Property value is required.",
                    None,
                );
            };
            if crate::config::validate_secret_name(name).is_err() {
                return vault_error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The secret name is invalid.",
                    None,
                );
            }
            state.next_version += 1;
            let version = Version {
                id: format!("{:032x}", 0x5eed_0000_u64 + state.next_version),
                value: value.to_owned(),
                content_type: parameters["contentType"].as_str().map(str::to_owned),
                enabled: parameters["attributes"]["enabled"]
                    .as_bool()
                    .unwrap_or(true),
                created: 1_760_000_000 + state.next_version,
            };
            let answer = bundle(&origin, name, &version);
            state
                .secrets
                .entry((*name).to_owned())
                .or_default()
                .push(version);
            answer
        }
        _ => vault_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested resource was not found.",
            None,
        ),
    }
}
