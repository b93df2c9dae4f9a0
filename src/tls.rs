//! TLS on the TCP listener: the server's certificate and key re-read when they change
//! (so a cert-manager renewal needs no restart), client certificates checked against a
//! configured CA, and the names a client certificate proves, which are its identity.

use crate::config::TlsConfig;
use crate::listen;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How often the certificate and key files are looked at for a change.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a new connection may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read {what} `{path}`: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the server certificate `{cert}` and key `{key}` do not go together: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot use the client CA file `{path}`: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| error(err.to_string()))?;
    if certificates.is_empty() {
        return Err(error("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

/// The certificate chain and key, checked to belong together. Messages name the files,
/// never their contents.
fn load_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates("the server certificate", cert)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|err| TlsError::Read {
        what: "the server key",
        path: key.to_path_buf(),
        reason: err.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, private, &provider()).map_err(|err| TlsError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: err.to_string(),
        })?;
    Ok(certified)
}

/// What identifies a file's contents without reading them.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// The server's certificate, swapped when its files change; a handshake takes whichever
/// is current when it starts.
#[derive(Debug)]
pub(crate) struct ServerKey {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: Mutex<(Stamp, Stamp)>,
}

impl ResolvesServerCert for ServerKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|key| key.clone())
    }
}

impl ServerKey {
    fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let stamps = (stamp(&config.cert_file), stamp(&config.key_file));
        Ok(Self {
            current: RwLock::new(Arc::new(load_key(&config.cert_file, &config.key_file)?)),
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            stamps: Mutex::new(stamps),
        })
    }

    /// Takes the files' new contents when they changed and load; otherwise keeps the
    /// current certificate and says why. Both files are written separately during a
    /// renewal, so a pair that does not match yet is retried on the next look.
    pub(crate) fn reload_changed(&self) {
        let now = (stamp(&self.cert_file), stamp(&self.key_file));
        let Ok(mut stamps) = self.stamps.lock() else {
            return;
        };
        if *stamps == now {
            return;
        }
        match load_key(&self.cert_file, &self.key_file) {
            Ok(key) => {
                *stamps = now;
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(key);
                }
                tracing::info!(cert = %self.cert_file.display(), "server certificate changed; new connections use the new one");
            }
            Err(err) => {
                *stamps = now;
                tracing::warn!(error = %err, "keeping the previous server certificate");
            }
        }
    }

    pub(crate) async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                _ = tick.tick() => self.reload_changed(),
            }
        }
    }
}

/// The acceptor for the TCP listener, and the key it serves (for reloading).
pub(crate) fn acceptor(config: &TlsConfig) -> Result<(TlsAcceptor, Arc<ServerKey>), TlsError> {
    let key = Arc::new(ServerKey::load(config)?);
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Setup(err.to_string()))?;
    let builder = match &config.client_ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in read_certificates("the client CA file", path)? {
                roots.add(certificate).map_err(|err| TlsError::ClientCa {
                    path: path.clone(),
                    reason: err.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|err| TlsError::ClientCa {
                    path: path.clone(),
                    reason: err.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_cert_resolver(key.clone());
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(server)), key))
}

/// Connections from `listener` once their handshake is done. Each handshake runs in its
/// own task with a deadline, so a slow or silent client holds up no other.
///
/// The listener's connection caps hold as on a plain one: at most
/// `limits.max_connections` open (handshakes under way included; at the cap, accepting
/// waits for one to close or time out), and at most `limits.max_connections_per_peer`
/// of them from one IP address, whose further connections are closed at once.
pub(crate) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: listen::Limits,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<Result<Held<TlsStream<TcpStream>>, std::io::Error>> {
    let (ready, accepted) = tokio::sync::mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let peers = listen::Peers::new(limits.max_connections_per_peer, "tls");
    tokio::spawn(async move {
        let mut full = false;
        loop {
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    full = false;
                    slot
                }
                Err(_) => {
                    if !full {
                        tracing::warn!(
                            listener = "tls",
                            max_connections = limits.max_connections,
                            "connection limit reached; holding new connections until one closes"
                        );
                        full = true;
                    }
                    tokio::select! {
                        _ = stop.wait_for(|stop| *stop) => return,
                        // The semaphore is never closed.
                        slot = slots.clone().acquire_owned() => match slot {
                            Ok(slot) => slot,
                            Err(_) => return,
                        },
                    }
                }
            };
            // A refused connection gives nothing back: the slot waits for the next.
            let (stream, address, peer) = loop {
                let (stream, address) = tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
                    result = listener.accept() => match result {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot accept a TCP connection");
                            continue;
                        }
                    },
                };
                if let Ok(peer) = peers.admit(listen::Peer::ip(address.ip())) {
                    break (stream, address, peer);
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let held = Held {
                            inner: stream,
                            _slot: slot,
                            _peer: peer,
                        };
                        let _ = ready.send(Ok(held)).await;
                    }
                    Ok(Err(err)) => {
                        tracing::info!(peer = %address, error = %err, "TLS handshake refused");
                    }
                    Err(_) => {
                        tracing::info!(peer = %address, "TLS handshake not finished in time; closed");
                    }
                }
            });
        }
    });
    ReceiverStream::new(accepted)
}

/// A TLS connection with its places in the listener's caps, given back when it closes.
#[derive(Debug)]
pub(crate) struct Held<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
    _peer: listen::PeerSlot,
}

/// The access rules read the client certificate from the TLS stream's connect info,
/// so the wrapper hands on exactly that type.
impl<S: Connected> Connected for Held<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The identities a client certificate proves: its SAN URIs (SPIFFE IDs among them),
/// then its SAN DNS names. The handshake already checked it against the client CA.
pub(crate) fn certificate_names(certificate: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(certificate) {
        Ok(parsed) => parsed
            .valid_uri_names()
            .chain(parsed.valid_dns_names())
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, certificate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn refused(config: &TlsConfig) -> String {
        match acceptor(config) {
            Ok(_) => panic!("accepted"),
            Err(err) => err.to_string(),
        }
    }

    fn config(cert_file: PathBuf, key_file: PathBuf) -> TlsConfig {
        TlsConfig {
            cert_file,
            key_file,
            client_ca_file: None,
        }
    }

    #[test]
    fn unreadable_or_mismatched_files_are_named_and_their_contents_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a");
        let (_, other_key) = self_signed(dir.path(), "b");
        let missing = refused(&config(dir.path().join("none.pem"), key.clone()));
        assert!(
            missing.starts_with("cannot read the server certificate `"),
            "{missing}"
        );
        let mismatch = refused(&config(cert.clone(), other_key));
        assert!(mismatch.contains("do not go together"), "{mismatch}");
        std::fs::write(&key, "not a key").unwrap();
        let garbage = refused(&config(cert, key));
        assert!(
            garbage.starts_with("cannot read the server key `"),
            "{garbage}"
        );
        assert!(!garbage.contains("not a key"), "{garbage}");
    }

    #[test]
    fn a_broken_renewal_keeps_the_certificate_being_served() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a");
        let (_, server_key) = acceptor(&config(cert.clone(), key.clone())).unwrap();
        let before = server_key.current.read().unwrap().cert.clone();
        std::fs::write(&cert, "half-written").unwrap();
        server_key.reload_changed();
        assert_eq!(server_key.current.read().unwrap().cert, before);
        let (new_cert, new_key) = self_signed(dir.path(), "c");
        std::fs::rename(new_key, &key).unwrap();
        std::fs::rename(new_cert, &cert).unwrap();
        server_key.reload_changed();
        assert_ne!(server_key.current.read().unwrap().cert, before);
    }
}
