//! A TCP proxy in the path between the daemon and an emulator: faults are injected here,
//! outside the code under test. It passes, resets, delays or black-holes connections on
//! command, and counts the connections it accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Every byte through, both ways.
    Pass,
    /// Accept, then close at once: the client's call fails as on a dead service.
    Reset,
    /// Hold each chunk the client sends (in practice, each request) this long before
    /// passing it on: a slow service, whether the connection is new or kept alive.
    Delay(Duration),
    /// Accept and never answer: the client's call times out.
    BlackHole,
    /// Every byte through, but what the client sends waits while the proxy is held
    /// ([`FaultProxy::hold`]) and goes on when it is released: connections stay open,
    /// so a call is held, not failed.
    Gated,
}

/// What a relayed chunk waits for before it goes upstream.
#[derive(Debug, Clone, Copy)]
enum Pause {
    Delay(Duration),
    Gate,
}

struct Shared {
    fault: Mutex<Fault>,
    accepted: AtomicUsize,
    /// Connections being served, so that a new fault also cuts the open ones (a client
    /// keeping a connection alive must not slip past an outage).
    connections: Mutex<JoinSet<()>>,
    /// Open (true) unless held; read by [`Fault::Gated`] connections.
    gate: tokio::sync::watch::Sender<bool>,
}

pub(crate) struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy to `upstream` on a loopback port of its own, passing everything.
    pub(crate) async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::Pass),
            accepted: AtomicUsize::new(0),
            connections: Mutex::new(JoinSet::new()),
            gate: tokio::sync::watch::Sender::new(true),
        });
        let accept_loop = tokio::spawn({
            let shared = shared.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let fault = *shared.fault.lock().unwrap();
                    shared.connections.lock().unwrap().spawn(serve(
                        client,
                        upstream,
                        fault,
                        shared.gate.subscribe(),
                    ));
                }
            }
        });
        Self {
            address,
            shared,
            accept_loop,
        }
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Applies to new connections and cuts the ones open now.
    pub(crate) fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
        self.shared.connections.lock().unwrap().abort_all();
    }

    /// Holds what [`Fault::Gated`] connections send, new and open ones alike.
    pub(crate) fn hold(&self) {
        self.shared.gate.send_replace(false);
    }

    /// Lets held and later chunks through; cuts nothing.
    pub(crate) fn release(&self) {
        self.shared.gate.send_replace(true);
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.shared.connections.lock().unwrap().abort_all();
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: Fault,
    gate: tokio::sync::watch::Receiver<bool>,
) {
    match fault {
        Fault::Reset => drop(client),
        Fault::BlackHole => {
            // Held open, never read from or answered, until the proxy cuts it.
            std::future::pending::<()>().await;
        }
        Fault::Pass => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Fault::Delay(delay) => relay(client, upstream, Pause::Delay(delay), gate).await,
        Fault::Gated => relay(client, upstream, Pause::Gate, gate).await,
    }
}

/// Relays chunk by chunk, each one client to server first pausing as told.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    pause: Pause,
    mut gate: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream_bound = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let Ok(read) = client_read.read(&mut buffer).await else {
                return;
            };
            if read == 0 {
                let _ = server_write.shutdown().await;
                return;
            }
            match pause {
                // The delay is the fault under test, not a wait for an event.
                Pause::Delay(delay) => tokio::time::sleep(delay).await,
                Pause::Gate => {
                    if gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                }
            }
            if server_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    let _ = tokio::join!(upstream_bound, downstream);
}
