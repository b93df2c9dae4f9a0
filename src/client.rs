//! Connecting to a running daemon, for `vaultbridge get` and for tests.

use crate::proto::v1::secrets_client::SecretsClient;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::path::{Path, PathBuf};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};
use vaultbridge_backend_core::config::{ProcessVars, Vars};

/// Where a daemon listens: `unix:/path`, a path starting with `/` or `.`, or a TCP
/// `host:port` / `http://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

impl Address {
    pub fn parse(text: &str) -> Self {
        if let Some(path) = text
            .strip_prefix("unix://")
            .or_else(|| text.strip_prefix("unix:"))
        {
            Self::Unix(PathBuf::from(path))
        } else if text.starts_with('/') || text.starts_with('.') {
            Self::Unix(PathBuf::from(text))
        } else if text.starts_with("http://") || text.starts_with("https://") {
            Self::Tcp(text.to_owned())
        } else {
            Self::Tcp(format!("http://{text}"))
        }
    }

    /// The address `vaultbridge get` uses when none is given: the socket of the
    /// example config, which honours the same `VAULTBRIDGE_SOCKET` variable.
    pub fn default_local() -> Self {
        let path = ProcessVars
            .var("VAULTBRIDGE_SOCKET")
            .filter(|path| !path.is_empty())
            .unwrap_or_else(|| "/tmp/vaultbridge.sock".to_owned());
        Self::Unix(PathBuf::from(path))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(uri) => f.write_str(uri),
        }
    }
}

pub async fn channel(address: &Address) -> Result<Channel, tonic::transport::Error> {
    match address {
        Address::Unix(path) => {
            let path = path.clone();
            // The URI is required by the API but unused: the connector dials the socket.
            Endpoint::from_static("http://localhost")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
        Address::Tcp(uri) => Endpoint::from_shared(uri.clone())?.connect().await,
    }
}

/// How the command line proves itself to a daemon that asks callers to: a bearer
/// token (TCP listeners with `clients.*.tokens`) and TLS, with a client certificate
/// for mutual TLS. A Unix-socket caller needs none of it: the kernel names it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Credentials {
    /// A file holding a bearer token of one of the daemon's `clients` (whitespace
    /// around it is ignored), sent as `authorization: Bearer <token>`.
    #[arg(
        long,
        global = true,
        env = "VAULTBRIDGE_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s), PEM, that signed the daemon's TLS certificate. Turns TLS on
    /// for a TCP address; an `https://` address needs it.
    #[arg(long, global = true, env = "VAULTBRIDGE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate chain, PEM, for a daemon with `server.tls.client_ca_file`.
    #[arg(
        long,
        global = true,
        env = "VAULTBRIDGE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(
        long,
        global = true,
        env = "VAULTBRIDGE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// The name the daemon's certificate must carry; default: the address's host.
    #[arg(
        long,
        global = true,
        env = "VAULTBRIDGE_TLS_SERVER_NAME",
        value_name = "NAME"
    )]
    pub tls_server_name: Option<String>,
}

/// Why the credentials could not be used; never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the token file `{path}`: {source}")]
    ReadToken {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file `{0}` is empty")]
    EmptyToken(PathBuf),
    #[error(
        "the token in `{0}` holds characters an HTTP header cannot carry (a token is printable ASCII)"
    )]
    BadToken(PathBuf),
    #[error("cannot read `{path}` (`--{option}`): {source}")]
    ReadTls {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("an `https://` address needs `--tls-ca` (the CA that signed the daemon's certificate)")]
    HttpsWithoutCa,
    #[error(
        "TLS applies to a TCP address; `{0}` is a Unix socket, where the kernel names the caller"
    )]
    NotForUnix(String),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Adds the bearer token, when there is one, to every call.
#[derive(Debug, Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel to the daemon that sends the caller's credentials.
pub type DaemonChannel = InterceptedService<Channel, Bearer>;

impl Credentials {
    fn uses_tls(&self) -> bool {
        self.tls_ca.is_some() || self.tls_cert.is_some()
    }

    fn bearer(&self) -> Result<Bearer, CredentialsError> {
        let Some(path) = &self.token_file else {
            return Ok(Bearer::default());
        };
        let text = std::fs::read(path).map_err(|source| CredentialsError::ReadToken {
            path: path.clone(),
            source,
        })?;
        let text = zeroize::Zeroizing::new(text);
        let token = text.trim_ascii();
        if token.is_empty() {
            return Err(CredentialsError::EmptyToken(path.clone()));
        }
        let header = zeroize::Zeroizing::new([b"Bearer ", token].concat());
        let mut value = MetadataValue::try_from(header.as_slice())
            .map_err(|_| CredentialsError::BadToken(path.clone()))?;
        // Debug prints of the request then show `Sensitive`, not the token.
        value.set_sensitive(true);
        Ok(Bearer(Some(value)))
    }

    fn tls(&self, host: Option<&str>) -> Result<ClientTlsConfig, CredentialsError> {
        let Some(ca) = &self.tls_ca else {
            return Err(CredentialsError::HttpsWithoutCa);
        };
        let mut config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_tls("tls-ca", ca)?));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config = config.identity(Identity::from_pem(
                read_tls("tls-cert", cert)?,
                read_tls("tls-key", key)?,
            ));
        }
        if let Some(name) = self.tls_server_name.as_deref().or(host) {
            config = config.domain_name(name);
        }
        Ok(config)
    }
}

fn read_tls(option: &'static str, path: &Path) -> Result<Vec<u8>, CredentialsError> {
    std::fs::read(path).map_err(|source| CredentialsError::ReadTls {
        option,
        path: path.to_path_buf(),
        source,
    })
}

/// A channel to the daemon at `address` that sends `credentials` with every call.
pub async fn authenticated_channel(
    address: &Address,
    credentials: &Credentials,
) -> Result<DaemonChannel, CredentialsError> {
    let bearer = credentials.bearer()?;
    let channel = match address {
        Address::Unix(_) if credentials.uses_tls() => {
            return Err(CredentialsError::NotForUnix(address.to_string()));
        }
        Address::Tcp(uri) if credentials.uses_tls() || uri.starts_with("https://") => {
            let uri = match uri.strip_prefix("http://") {
                Some(rest) => format!("https://{rest}"),
                None => uri.clone(),
            };
            let endpoint = Endpoint::from_shared(uri)?;
            let host = endpoint.uri().host().map(str::to_owned);
            endpoint
                .tls_config(credentials.tls(host.as_deref())?)?
                .connect()
                .await?
        }
        _ => channel(address).await?,
    };
    Ok(InterceptedService::new(channel, bearer))
}

pub async fn connect(address: &Address) -> Result<SecretsClient<Channel>, tonic::transport::Error> {
    Ok(SecretsClient::new(channel(address).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_sent_but_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  unit-bearer-token\n").unwrap();
        let credentials = Credentials {
            token_file: Some(path.clone()),
            ..Credentials::default()
        };
        let mut bearer = credentials.bearer().unwrap();
        assert!(!format!("{bearer:?}").contains("unit-bearer-token"));
        let request = bearer.call(tonic::Request::new(())).unwrap();
        assert!(!format!("{request:?}").contains("unit-bearer-token"));
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer unit-bearer-token"
        );

        std::fs::write(&path, "bad\u{7}token").unwrap();
        let err = credentials.bearer().unwrap_err().to_string();
        assert!(
            err.contains("characters an HTTP header cannot carry"),
            "{err}"
        );
        assert!(!err.contains("bad"), "{err}");
    }

    #[test]
    fn addresses_parse_as_documented() {
        assert_eq!(
            Address::parse("unix:/run/vb.sock"),
            Address::Unix("/run/vb.sock".into())
        );
        assert_eq!(
            Address::parse("unix:///run/vb.sock"),
            Address::Unix("/run/vb.sock".into())
        );
        assert_eq!(
            Address::parse("/run/vb.sock"),
            Address::Unix("/run/vb.sock".into())
        );
        assert_eq!(
            Address::parse("127.0.0.1:50051"),
            Address::Tcp("http://127.0.0.1:50051".into())
        );
        assert_eq!(
            Address::parse("http://[::1]:1"),
            Address::Tcp("http://[::1]:1".into())
        );
    }
}
