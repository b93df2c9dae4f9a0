//! Connecting to a running daemon, for `vaultbridge get` and for tests.

use crate::proto::v1::secrets_client::SecretsClient;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::path::PathBuf;
use tonic::transport::{Channel, Endpoint, Uri};
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

pub async fn connect(address: &Address) -> Result<SecretsClient<Channel>, tonic::transport::Error> {
    Ok(SecretsClient::new(channel(address).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
