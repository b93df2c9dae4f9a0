//! What a backend's tests provide to the suite: how to seed, change and lose a backend.

use crate::Backend;
use async_trait::async_trait;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// A value to seed into a backend.
#[derive(Debug, Clone)]
pub enum Seed {
    /// A plain value (bytes; text backends only receive UTF-8).
    Value(Vec<u8>),
    /// A key/value secret: a native map where the backend has one, else a JSON object
    /// string.
    Map(Vec<(String, String)>),
}

impl Seed {
    pub fn text(text: &str) -> Self {
        Self::Value(text.as_bytes().to_vec())
    }

    pub fn map(pairs: &[(&str, &str)]) -> Self {
        Self::Map(
            pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        )
    }

    /// The JSON object text a backend without native maps stores for [`Seed::Map`].
    pub fn map_as_json(pairs: &[(String, String)]) -> String {
        let object: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect();
        serde_json::Value::Object(object).to_string()
    }
}

/// Whether a fixture changed a secret; see [`Fixture::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Applied,
    /// This fixture cannot change data once the backend is made.
    Unsupported,
}

/// The stage labels a backend with [`Capabilities::version_stages`] moves when a secret
/// gets a new value.
///
/// [`Capabilities::version_stages`]: crate::Capabilities::version_stages
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stages {
    /// On the version served when no version is pinned (AWS: `AWSCURRENT`).
    pub current: &'static str,
    /// On the version the newest one replaced (AWS: `AWSPREVIOUS`).
    pub previous: &'static str,
}

/// How to make an instance of the backend under test that holds given secrets, and how
/// to change them afterwards.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A backend holding exactly `secrets` (id, value), and nothing else the suite asks
    /// for.
    async fn backend(&self, secrets: &[(&str, Seed)]) -> Arc<dyn Backend>;

    /// Gives secret `id`, seeded by the last call to [`Fixture::backend`], the value
    /// `seed`, the way an operator would (an edit of the file, a new version through the
    /// service's API), while that backend keeps running. Where the backend has versions
    /// the old value must stay readable as the previous version.
    ///
    /// The default cannot, and says so. Then the revision case only checks that a
    /// backend without a revision keeps returning `None`, and the cases that need a
    /// second version or a change fail, asking for this method, when the backend
    /// declares versions or reports a revision: those cannot be checked without one.
    async fn update(&self, id: &str, seed: Seed) -> Update {
        let _ = (id, seed);
        Update::Unsupported
    }

    /// For backends with version stages: the labels a [`Fixture::update`] moves. The
    /// default, `None`, fails the stage case for such a backend.
    fn stages(&self) -> Option<Stages> {
        None
    }

    /// For backends with a remote service: another instance of the backend, configured
    /// as the one from the last [`Fixture::backend`] call but unable to reach its
    /// service (its endpoint refuses connections, see [`RefusingAddress`], or answers
    /// only with server errors), with retries and timeouts short enough for a test.
    /// The suite checks that every fetch then fails with a temporary
    /// [`ErrorKind::Unavailable`] error, so that the resolver may retry or serve a
    /// stale value, instead of a permanent one (or a not-found) that would drop it.
    ///
    /// The default, `None`, means "this backend has no service to lose", and is right
    /// only for backends that read local state: `env` (the process environment) and
    /// `file` (a file on disk; its temporary errors, for a file half-way through an
    /// edit, are not the loss of a service). Nothing
    /// in the suite can tell a remote backend from a local one, so a backend with a
    /// service that leaves this at `None` skips the case silently: every backend that
    /// talks to a service (AWS Secrets Manager, Azure Key Vault, ...) must implement it.
    async fn unreachable(&self) -> Option<Unreachable> {
        None
    }
}

/// An instance of a backend whose service cannot be reached; see
/// [`Fixture::unreachable`].
#[derive(Debug)]
pub struct Unreachable {
    pub backend: Arc<dyn Backend>,
    /// How the backend's error messages name the service it could not reach (AWS:
    /// `Secrets Manager`; Azure: the vault URL). A message must name the secret or
    /// the service, so that an operator knows what failed.
    pub service: String,
}

/// A loopback address that refuses connections, for [`Fixture::unreachable`]: a socket
/// bound to a port the kernel picked, held but never listening. Connecting to it fails
/// at once with `ECONNREFUSED`, and while it is held no other process can bind the
/// port (the socket does not set `SO_REUSEADDR`, without which Linux refuses a second
/// bind). The alternatives are racy or slow: a port picked by binding and dropping a
/// listener is free for any process to take, and a listener that never accepts lets
/// connections queue until a timeout ends them.
#[derive(Debug)]
pub struct RefusingAddress {
    /// Only held: dropping it frees the port.
    _socket: tokio::net::TcpSocket,
    address: SocketAddr,
}

impl RefusingAddress {
    pub fn bind() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind a loopback port");
        let address = socket.local_addr().expect("the bound address");
        Self {
            _socket: socket,
            address,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

#[cfg(test)]
mod tests {
    use super::RefusingAddress;

    #[test]
    fn a_refusing_address_refuses_and_keeps_its_port() {
        let refusing = RefusingAddress::bind();
        let err = std::net::TcpStream::connect(refusing.address())
            .expect_err("nothing listens on a refusing address");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        // std's listener sets SO_REUSEADDR, as most servers do: still refused.
        assert!(
            std::net::TcpListener::bind(refusing.address()).is_err(),
            "another socket took the held port"
        );
    }
}
