//! One caller cannot hold every connection slot (`server.max_connections_per_peer`):
//! a greedy peer keeps its connections alive (they finished HTTP/2 and answer pings),
//! its next one is closed at once, and another peer is served meanwhile.
//!
//! Over TCP the two peers are two loopback addresses (Linux routes all of 127/8 to
//! `lo`): the greedy one connects from 127.0.0.1, the well-behaved one binds 127.0.0.2
//! first. On the Unix socket they are two uids: the test (root) is greedy and
//! `nobody`, reached with `setpriv`, is well-behaved; that test fails loudly when not
//! run as root rather than skip.

use crate::harness::{BINARY, Daemon, Setup, resolve, set_mode, wait_until_async};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};
use vaultbridge::client::{self, Address};
use vaultbridge::proto::v1::secrets_client::SecretsClient;

const LIMITS: &str = "  max_connections: 4\n  max_connections_per_peer: 2\n";
const WARNING: &str = "a peer reached its connection limit";

fn start(setup: Setup) -> Daemon {
    let config = setup.config_text().replace(
        "  shutdown_grace: 5s\n",
        &format!("  shutdown_grace: 5s\n{LIMITS}"),
    );
    setup.start_with_config(&config)
}

/// A connection that finished HTTP/2 and stays open: a client whose call was answered.
/// A connection the daemon still counts (the harness's health check, say, whose close
/// it has not seen yet) may refuse the first tries; the next is made once one fails.
async fn live_connection(address: &Address) -> SecretsClient<Channel> {
    wait_until_async(
        Duration::from_secs(20),
        async || {
            let mut client = SecretsClient::new(client::channel(address).await.ok()?);
            resolve(&mut client, "plain").await.ok()?;
            Some(client)
        },
        || format!("no live connection to {address}"),
    )
    .await
}

/// A new caller at `address` is refused: the connection is closed before HTTP/2, so
/// the client either cannot connect or its call fails in the transport (tonic says
/// `UNAVAILABLE`, `UNKNOWN` "transport error" for the broken pipe, or `CANCELLED` when
/// hyper saw the connection close first), never with an answer from the daemon.
async fn refused(address: &Address) {
    if let Ok(channel) = client::channel(address).await {
        let status = resolve(&mut SecretsClient::new(channel), "plain")
            .await
            .expect_err("a connection over the peer's limit must not be served");
        let transport = status.code() == Code::Unavailable
            || (status.code() == Code::Unknown && status.message() == "transport error")
            || (status.code() == Code::Cancelled && status.message() == "operation was canceled");
        assert!(transport, "{status:?}");
    }
}

/// The daemon closes the connection without a byte: not even HTTP/2's SETTINGS.
async fn closed_at_once(mut stream: impl tokio::io::AsyncRead + Unpin) {
    let mut buffer = [0u8; 64];
    let read = stream.read(&mut buffer).await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the daemon answered a connection over the peer's limit: {read:?}"
    );
}

/// The daemon's warnings that `peer` reached its limit on `listener`.
fn warnings(daemon: &Daemon, listener: &str, peer: &str) -> usize {
    daemon
        .output()
        .lines()
        .filter(|line| {
            line.contains(WARNING)
                && line.contains(&format!("listener=\"{listener}\""))
                && line.contains(&format!("peer={peer} "))
                && line.contains("max_connections_per_peer=2")
        })
        .count()
}

/// A Secrets client whose connection comes from `source`.
async fn client_from(source: &'static str, to: SocketAddr) -> SecretsClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{to}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(format!("{source}:0").parse().unwrap())?;
            let stream = socket.connect(to).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }))
        .await
        .expect("connect from 127.0.0.2");
    SecretsClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_peer_at_its_limit_is_refused_while_another_address_is_served() {
    let mut setup = Setup::new();
    setup.tcp = true;
    let daemon = start(setup);
    let address = daemon.tcp_address();
    let Address::Tcp(uri) = &address else {
        unreachable!()
    };
    let to: SocketAddr = uri.trim_start_matches("http://").parse().unwrap();

    let first = live_connection(&address).await;
    let mut second = live_connection(&address).await;

    let raw = tokio::net::TcpStream::connect(to).await.unwrap();
    closed_at_once(raw).await;
    refused(&address).await;

    let mut other = client_from("127.0.0.2", to).await;
    let secret = resolve(&mut other, "plain")
        .await
        .expect("another peer is served");
    assert_eq!(secret.value, b"plain-e2e-value");
    // The greedy peer's own connections keep working.
    resolve(&mut second, "plain").await.unwrap();

    daemon.wait_for_output(WARNING);
    assert_eq!(
        warnings(&daemon, "tcp", "127.0.0.1"),
        1,
        "one warning when the peer reached its limit, none per refused connection:\n{}",
        daemon.output()
    );

    // A closed connection gives the peer its place back.
    drop(first);
    let _again = live_connection(&address).await;
}

fn require_root() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test connects as another user through setpriv, which needs root"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_at_its_limit_is_refused_while_another_uid_is_served() {
    require_root();
    let setup = Setup::new();
    // `nobody` must reach the socket: through its directory, and as its owner.
    set_mode(setup.dir.path(), 0o755);
    let config = setup.config_text().replace(
        "  shutdown_grace: 5s\n",
        &format!("  shutdown_grace: 5s\n  unix_socket_owner: nobody\n{LIMITS}"),
    );
    let daemon = setup.start_with_config(&config);
    let address = daemon.unix_address();

    let _first = live_connection(&address).await;
    let mut second = live_connection(&address).await;
    let raw = tokio::net::UnixStream::connect(daemon.socket())
        .await
        .unwrap();
    closed_at_once(raw).await;
    refused(&address).await;

    let socket = daemon.socket();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(BINARY)
            .args(["get", "plain", "--timeout", "20s", "--addr"])
            .arg(socket)
            .env_remove("VAULTBRIDGE_ADDR")
            .output()
            .expect("setpriv (util-linux) runs the CLI as another user")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "nobody was not served: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, b"plain-e2e-value");
    resolve(&mut second, "plain").await.unwrap();

    daemon.wait_for_output(WARNING);
    assert_eq!(warnings(&daemon, "unix", "uid 0"), 1, "{}", daemon.output());
}
