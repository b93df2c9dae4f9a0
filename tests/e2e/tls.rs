//! TLS on the TCP listener: mutual TLS with the client certificate as the caller's
//! identity, certificates from another CA refused, and the server certificate re-read
//! when its files change.

use crate::harness::{Daemon, Setup, poll_until};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};
use vaultbridge::proto::v1::secrets_client::SecretsClient;

struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let certificate = params.self_signed(&key).unwrap();
    Authority {
        pem: certificate.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate and its key, PEM.
fn leaf(ca: &Authority, sans: Vec<SanType>, client: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let certificate = params.signed_by(&key, &ca.issuer).unwrap();
    (certificate.pem(), key.serialize_pem())
}

fn server_leaf(ca: &Authority) -> (String, String) {
    leaf(
        ca,
        vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ],
        false,
    )
}

fn spiffe(ca: &Authority, id: &str) -> (String, String) {
    leaf(ca, vec![SanType::URI(id.try_into().unwrap())], true)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(ca_pem: &str, identity: Option<&(String, String)>) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

fn tcp_port(daemon: &Daemon) -> String {
    match daemon.tcp_address() {
        vaultbridge::client::Address::Tcp(uri) => uri.trim_start_matches("http://").to_owned(),
        other => panic!("{other:?}"),
    }
}

/// A gRPC client over TLS to the daemon's TCP listener.
async fn connect(
    daemon: &Daemon,
    config: rustls::ClientConfig,
) -> Result<SecretsClient<Channel>, tonic::transport::Error> {
    connect_from("127.0.0.1", daemon, config).await
}

/// [`connect`] from the loopback address `source` (all of 127/8 is on `lo`).
async fn connect_from(
    source: &'static str,
    daemon: &Daemon,
    config: rustls::ClientConfig,
) -> Result<SecretsClient<Channel>, tonic::transport::Error> {
    let address: std::net::SocketAddr = tcp_port(daemon).parse().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(format!("{source}:0").parse().unwrap())?;
                let tcp = socket.connect(address).await?;
                let name = ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await?;
    Ok(SecretsClient::new(channel))
}

async fn resolve(
    client: &mut SecretsClient<Channel>,
    name: &str,
) -> Result<Vec<u8>, tonic::Status> {
    crate::harness::resolve(client, name)
        .await
        .map(|mut secret| std::mem::take(&mut secret.value))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn start(ca: &Authority, server: &(String, String), clients: &str) -> Daemon {
    start_with(ca, server, clients, "")
}

/// [`start`] with more `server` settings (`  key: value\n` lines).
fn start_with(ca: &Authority, server: &(String, String), clients: &str, more: &str) -> Daemon {
    let mut setup = Setup::new();
    setup.tcp = true;
    let dir = setup.dir.path().to_path_buf();
    write(&dir, "ca.pem", &ca.pem);
    write(&dir, "server.pem", &server.0);
    write(&dir, "server.key", &server.1);
    setup.extra_config = format!("{clients}audit:\n  file: audit.log\n");
    let config = setup.config_text().replace(
        "  tcp: 127.0.0.1:0\n",
        &format!("  tcp: 127.0.0.1:0\n{more}  tls:\n    cert_file: server.pem\n    key_file: server.key\n    client_ca_file: ca.pem\n"),
    );
    setup.start_with_config(&config)
}

#[tokio::test]
async fn a_client_certificate_is_the_callers_identity_and_another_cas_is_refused() {
    let ca = authority("vaultbridge e2e CA");
    let server = server_leaf(&ca);
    let daemon = start(
        &ca,
        &server,
        "clients:\n  etl:\n    certificates: [\"spiffe://e2e.example/ns/etl/sa/runner\"]\n    definitions: [plain]\n",
    );
    let etl = spiffe(&ca, "spiffe://e2e.example/ns/etl/sa/runner");
    let mut client = connect(&daemon, client_config(&ca.pem, Some(&etl)))
        .await
        .unwrap();
    assert_eq!(
        resolve(&mut client, "plain").await.unwrap(),
        b"plain-e2e-value"
    );
    let denied = resolve(&mut client, "pem").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        denied.message(),
        "the client certificate of `spiffe://e2e.example/ns/etl/sa/runner` may not read definition `pem`"
    );

    // A certificate of the right CA that no client names reads nothing.
    let stranger = spiffe(&ca, "spiffe://e2e.example/ns/other/sa/x");
    let mut client = connect(&daemon, client_config(&ca.pem, Some(&stranger)))
        .await
        .unwrap();
    assert_eq!(
        resolve(&mut client, "plain").await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // The same identity signed by another CA never gets past the handshake; nor does a
    // caller with no certificate at all.
    let rogue_ca = authority("rogue CA");
    let forged = spiffe(&rogue_ca, "spiffe://e2e.example/ns/etl/sa/runner");
    for identity in [Some(&forged), None] {
        let refused = match connect(&daemon, client_config(&ca.pem, identity)).await {
            Err(_) => true,
            // TLS 1.3 reports a refused client certificate after the client's side of
            // the handshake is done: on the first call.
            Ok(mut client) => resolve(&mut client, "plain").await.is_err(),
        };
        assert!(
            refused,
            "a caller without a valid client certificate was served"
        );
    }
    daemon.wait_for_output("TLS handshake refused");

    let mut lines = Vec::new();
    assert!(poll_until(Duration::from_secs(10), || {
        let text =
            std::fs::read_to_string(daemon.setup_dir().join("audit.log")).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        lines.len() >= 3
    }));
    assert!(
        lines[0].contains(
            r#""caller":{"kind":"certificate","names":["spiffe://e2e.example/ns/etl/sa/runner"]}"#
        ) && lines[0].contains(r#""code":"OK""#),
        "{lines:#?}"
    );
    assert_eq!(
        lines.len(),
        3,
        "a refused handshake reaches no service: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_at_its_connection_limit_is_refused_while_another_address_is_served() {
    let ca = authority("vaultbridge e2e CA");
    let daemon = start_with(
        &ca,
        &server_leaf(&ca),
        "",
        "  max_connections: 4\n  max_connections_per_peer: 2\n",
    );
    let identity = spiffe(&ca, "spiffe://e2e.example/ns/etl/sa/runner");
    let config = || client_config(&ca.pem, Some(&identity));
    // The greedy peer's connections finished TLS and HTTP/2 and stay open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = connect(&daemon, config()).await.unwrap();
        assert_eq!(
            resolve(&mut client, "plain").await.unwrap(),
            b"plain-e2e-value"
        );
        held.push(client);
    }
    // Its next one is closed before the daemon says a word of TLS: a client that
    // starts a handshake gets no answer but the close, so neither TLS nor a call
    // succeeds (without the limit, both would).
    let refused = match connect(&daemon, config()).await {
        Err(_) => true,
        Ok(mut client) => resolve(&mut client, "plain").await.is_err(),
    };
    assert!(refused, "a connection over the peer's limit was served");

    let mut other = connect_from("127.0.0.2", &daemon, config()).await.unwrap();
    assert_eq!(
        resolve(&mut other, "plain").await.unwrap(),
        b"plain-e2e-value"
    );
    assert_eq!(
        resolve(&mut held[1], "plain").await.unwrap(),
        b"plain-e2e-value"
    );
    daemon.wait_for_output("a peer reached its connection limit");
    let warnings = daemon
        .output()
        .lines()
        .filter(|line| {
            line.contains("a peer reached its connection limit")
                && line.contains("listener=\"tls\" peer=127.0.0.1 max_connections_per_peer=2")
        })
        .count();
    assert_eq!(warnings, 1, "{}", daemon.output());
}

/// The certificate the daemon presents to a new connection.
async fn served_certificate(daemon: &Daemon, ca: &Authority) -> Vec<u8> {
    let identity = spiffe(ca, "spiffe://e2e.example/probe");
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client_config(&ca.pem, Some(&identity))));
    let tcp = tokio::net::TcpStream::connect(tcp_port(daemon))
        .await
        .unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_renewed_server_certificate_is_served_without_a_restart() {
    let ca = authority("vaultbridge e2e CA");
    let first = server_leaf(&ca);
    let daemon = start(
        &ca,
        &first,
        "clients:\n  probe:\n    certificates: [\"spiffe://e2e.example/probe\"]\n    definitions: [plain]\n",
    );
    assert_eq!(served_certificate(&daemon, &ca).await, der(&first.0));

    // A renewal as cert-manager writes it: both files replaced.
    let second = server_leaf(&ca);
    let dir = daemon.setup_dir();
    write(dir, "server.key.new", &second.1);
    write(dir, "server.pem.new", &second.0);
    std::fs::rename(dir.join("server.key.new"), dir.join("server.key")).unwrap();
    std::fs::rename(dir.join("server.pem.new"), dir.join("server.pem")).unwrap();
    daemon.wait_for_output("server certificate changed");
    assert_eq!(served_certificate(&daemon, &ca).await, der(&second.0));
    let output = daemon.output();
    assert!(!output.contains("PRIVATE KEY"), "{output}");
}

/// `vaultbridge get` and `health` over mutual TLS, with the CA, certificate and key
/// from the command line; the same call without a client certificate is refused.
#[test]
fn the_cli_speaks_mutual_tls() {
    let ca = authority("vaultbridge e2e CA");
    let server = server_leaf(&ca);
    let daemon = start(
        &ca,
        &server,
        "clients:\n  etl:\n    certificates: [\"spiffe://e2e.example/ns/etl/sa/runner\"]\n    definitions: [plain]\n",
    );
    let dir = daemon.setup_dir().to_path_buf();
    let (cert, key) = spiffe(&ca, "spiffe://e2e.example/ns/etl/sa/runner");
    write(&dir, "etl.pem", &cert);
    write(&dir, "etl.key", &key);
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let addr = tcp_port(&daemon);
    let tls = [
        "--tls-ca".to_owned(),
        path("ca.pem"),
        "--tls-cert".to_owned(),
        path("etl.pem"),
        "--tls-key".to_owned(),
        path("etl.key"),
    ];
    let args = |command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--addr".to_owned(), addr.clone()]);
        args.extend(tls.iter().cloned());
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::harness::run_cli(&args, &[])
    };

    let (code, stdout, stderr) = run(args(&["get", "plain"]));
    assert_eq!(
        (code, stdout.as_slice()),
        (0, &b"plain-e2e-value"[..]),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(args(&["health"]));
    assert_eq!(
        (code, stdout.as_slice()),
        (0, &b"SERVING\n"[..]),
        "{stderr}"
    );
    // The server's certificate names `localhost` too.
    let mut named = args(&["get", "plain"]);
    named.extend(["--tls-server-name".to_owned(), "localhost".to_owned()]);
    let (code, _, stderr) = run(named);
    assert_eq!(code, 0, "{stderr}");

    // Without a client certificate the daemon refuses the handshake.
    let (code, stdout, stderr) = run(vec![
        "get".into(),
        "plain".into(),
        "--addr".into(),
        addr.clone(),
        "--tls-ca".into(),
        path("ca.pem"),
    ]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    // A key without its certificate is bad usage, caught by the argument parser.
    let (code, _, stderr) = run(vec![
        "get".into(),
        "plain".into(),
        "--addr".into(),
        addr.clone(),
        "--tls-key".into(),
        path("etl.key"),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}
