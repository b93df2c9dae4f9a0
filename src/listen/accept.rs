//! The accept loop every plain listener shares (the gRPC socket and TCP port, the
//! HTTP/1.1 face): the connection cap, the cap per peer, and the handshake deadline.

use super::peers::{AtLimit, Peer, PeerSlot, Peers};
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_stream::Stream;
use tonic::transport::server::Connected;

/// The per-connection limits every listener applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_peer: usize,
    pub(crate) handshake_timeout: Duration,
}

/// A listener tonic can accept from.
pub(crate) trait Accept: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static;
    /// The next connection and who it comes from.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Peer)>> + Send;
}

impl Accept for UnixListener {
    type Stream = UnixStream;
    async fn accept(&self) -> io::Result<(UnixStream, Peer)> {
        let (stream, _) = UnixListener::accept(self).await?;
        // The same `SO_PEERCRED` answer tonic hands the access rules.
        let peer = stream
            .peer_cred()
            .map_or(Peer::Unknown, |cred| Peer::Uid(cred.uid()));
        Ok((stream, peer))
    }
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    async fn accept(&self) -> io::Result<(TcpStream, Peer)> {
        let (stream, address) = TcpListener::accept(self).await?;
        // Small answers must not wait for Nagle's algorithm.
        stream.set_nodelay(true)?;
        Ok((stream, Peer::ip(address.ip())))
    }
}

/// How long the accept loop pauses after running out of file descriptors or memory:
/// long enough not to spin, short enough that a freed slot is used soon.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

const WAITING: u8 = 0;
const STARTED: u8 = 1;
const EVICTED: u8 = 2;

/// One connection's HTTP/2 handshake as the accept loop sees it, to close it early.
/// Its state moves once, from waiting to started or to evicted, so a connection that
/// starts HTTP/2 just as it is chosen to make room is either closed or kept, never
/// both kept and counted as gone.
#[derive(Debug)]
struct Handshake {
    state: AtomicU8,
    waker: AtomicWaker,
    peer: Peer,
    /// The connection's place in its peer's count, given back as soon as it is
    /// evicted.
    slot: Option<Arc<PeerSlot>>,
}

impl Handshake {
    fn new(peer: Peer) -> Self {
        Self {
            state: AtomicU8::new(WAITING),
            waker: AtomicWaker::new(),
            peer,
            slot: None,
        }
    }

    fn evicted(&self) -> bool {
        self.state.load(Ordering::Acquire) == EVICTED
    }

    /// Marks the handshake started, unless the connection was evicted first.
    fn start(&self) -> bool {
        self.state
            .compare_exchange(WAITING, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn evict(&self) -> bool {
        let evicted = self
            .state
            .compare_exchange(WAITING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if evicted {
            if let Some(slot) = &self.slot {
                slot.release();
            }
            self.waker.wake();
        }
        evicted
    }
}

/// Whether the connection of this queue entry is still open and waiting.
fn still_waiting(entry: &Arc<Handshake>) -> bool {
    Arc::strong_count(entry) > 1 && entry.state.load(Ordering::Acquire) == WAITING
}

/// The connections of one listener still waiting for their handshake, oldest first.
/// Entries of closed or handshaken connections are dropped as they are met.
#[derive(Debug, Default)]
struct Waiting(Mutex<VecDeque<Arc<Handshake>>>);

impl Waiting {
    fn push(&self, handshake: Arc<Handshake>, max: usize) {
        let mut queue = self.lock();
        if queue.len() >= 2 * max {
            queue.retain(still_waiting);
        }
        queue.push_back(handshake);
    }

    /// Closes the oldest connection (of `peer`, if given) that has not started its
    /// handshake, if there is one.
    fn evict_oldest(&self, peer: Option<Peer>) -> bool {
        let mut queue = self.lock();
        let mut index = 0;
        while let Some(entry) = queue.get(index) {
            if !still_waiting(entry) {
                queue.remove(index);
            } else if peer.is_none_or(|peer| entry.peer == peer) {
                let evicted = entry.evict();
                queue.remove(index);
                if evicted {
                    return true;
                }
            } else {
                index += 1;
            }
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Handshake>>> {
        // The queue holds no invariant a panicking holder could break.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The accepted connections of `listener`, each holding one of `limits.max_connections`
/// slots until it closes. At the cap, the oldest connection that has not yet started
/// HTTP/2 is closed to make room: a flood of silent connections then costs a
/// well-behaved caller (whose preface arrives with its connection) nothing but its
/// turn in the backlog. When every slot holds a working connection, accepting waits
/// for one to close.
///
/// A peer holds at most `limits.max_connections_per_peer` of the slots. The same rule
/// applies to it alone: a connection over its limit closes the peer's oldest one that
/// has not started HTTP/2, or, when all of them work, is closed at once without
/// taking a slot, and the loop goes on to the next caller.
pub(crate) fn incoming<L: Accept>(
    listener: L,
    limits: Limits,
    what: &'static str,
) -> impl Stream<Item = io::Result<Guarded<L::Stream>>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let state = Loop {
        waiting: Waiting::default(),
        peers: Peers::new(limits.max_connections_per_peer, what),
        what,
    };
    futures_util::stream::unfold(
        (listener, slots, state, false),
        move |(listener, slots, state, mut full)| async move {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    full = false;
                    permit
                }
                Err(_) => {
                    let evicted = state.waiting.evict_oldest(None);
                    if !full {
                        tracing::warn!(
                            listener = what,
                            max_connections = limits.max_connections,
                            "connection limit reached; closing connections that have not started HTTP/2, and holding new ones until one closes"
                        );
                        full = true;
                    }
                    tracing::debug!(listener = what, evicted, "at the connection limit");
                    // The semaphore is never closed, so this waits for a slot.
                    slots.clone().acquire_owned().await.ok()?
                }
            };
            // A refused connection gives nothing back: the slot waits for the next.
            let (stream, handshake, peer_slot) = loop {
                let (stream, peer) = accept(&listener, what).await;
                if let Some(admitted) = state.admit(peer) {
                    break (stream, admitted.0, admitted.1);
                }
            };
            state
                .waiting
                .push(handshake.clone(), limits.max_connections);
            let guarded = Guarded {
                inner: stream,
                handshake: Some((
                    Box::pin(tokio::time::sleep(limits.handshake_timeout)),
                    handshake,
                )),
                received: 0,
                _slot: permit,
                _peer: peer_slot,
            };
            Some((Ok(guarded), (listener, slots, state, full)))
        },
    )
}

/// What the accept loop of one listener keeps between connections.
struct Loop {
    waiting: Waiting,
    peers: Arc<Peers>,
    what: &'static str,
}

impl Loop {
    /// Counts a connection of `peer`, or says why not; `None` closes it.
    fn admit(&self, peer: Peer) -> Option<(Arc<Handshake>, PeerHold)> {
        let slot = match self.peers.admit(peer) {
            Ok(slot) => slot,
            Err(AtLimit { .. }) => {
                if !self.waiting.evict_oldest(Some(peer)) {
                    tracing::debug!(listener = self.what, %peer, "refused a connection: all of the peer's connections work");
                    return None;
                }
                tracing::debug!(listener = self.what, %peer, "closed the peer's oldest connection without HTTP/2 to make room");
                self.peers.admit_replacing(peer)
            }
        };
        let slot = Arc::new(slot);
        let handshake = Handshake {
            slot: Some(slot.clone()),
            ..Handshake::new(peer)
        };
        Some((Arc::new(handshake), PeerHold(slot)))
    }
}

/// The next connection; failures to accept are logged and waited out.
async fn accept<L: Accept>(listener: &L, what: &'static str) -> (L::Stream, Peer) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(err) if exhausted(&err) => {
                tracing::warn!(listener = what, error = %err, "cannot accept a connection; pausing");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
            // A connection reset before it was accepted: nothing to do.
            Err(err) => tracing::debug!(listener = what, error = %err, "accept failed"),
        }
    }
}

fn exhausted(err: &io::Error) -> bool {
    use rustix::io::Errno;
    err.raw_os_error().is_some_and(|code| {
        let errno = Errno::from_raw_os_error(code);
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&errno)
    })
}

/// The 24-byte HTTP/2 client preface and the 9-byte header of the SETTINGS frame that
/// must follow it: once that much has arrived, the client has started its handshake
/// and hyper's own timers take over.
const HANDSHAKE_BYTES: usize = 24 + 9;

const EVICTED_REASON: &str = "closed to make room: no HTTP/2 handshake yet at the connection limit";

/// An accepted connection: its slot, its place in its peer's count, and the deadline
/// for its HTTP/2 handshake.
#[derive(Debug)]
pub(crate) struct Guarded<S> {
    inner: S,
    handshake: Option<(Pin<Box<Sleep>>, Arc<Handshake>)>,
    received: usize,
    _slot: OwnedSemaphorePermit,
    _peer: PeerHold,
}

/// A connection's place in its peer's count, given back when the connection closes
/// (the handshake queue may hold the slot longer).
#[derive(Debug)]
pub(crate) struct PeerHold(Arc<PeerSlot>);

impl Drop for PeerHold {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The caller's identity code reads the inner stream's connect info (the peer's
/// credentials on the socket, its address on TCP) from request extensions, so the
/// wrapper hands on exactly that type.
impl<S: Connected> Connected for Guarded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((deadline, handshake)) = &mut this.handshake {
            handshake.waker.register(cx.waker());
            let reason = if handshake.evicted() {
                Some(EVICTED_REASON)
            } else if deadline.as_mut().poll(cx).is_ready() {
                Some("no HTTP/2 handshake within server.handshake_timeout")
            } else {
                None
            };
            if let Some(reason) = reason {
                tracing::debug!(reason, "closing a connection");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reason)));
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.received += buf.filled().len() - before;
        if this.received >= HANDSHAKE_BYTES
            && let Some((_, handshake)) = this.handshake.take()
            && !handshake.start()
        {
            // Chosen to make room just as its preface arrived; the room is taken.
            tracing::debug!(reason = EVICTED_REASON, "closing a connection");
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, EVICTED_REASON)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
