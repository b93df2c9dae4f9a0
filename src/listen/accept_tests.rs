//! The accept loop's limits on real loopback connections: two callers are two
//! addresses (Linux routes all of 127/8 to the loopback interface).

use super::*;
use futures_util::StreamExt;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: Limits = Limits {
    max_connections: 4,
    max_connections_per_peer: 2,
    handshake_timeout: Duration::from_secs(60),
};

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// A client that starts HTTP/2 (as far as the accept loop can tell), and the daemon's
/// side of it once that start has been read.
async fn started(
    incoming: &mut (impl Stream<Item = io::Result<Guarded<TcpStream>>> + Unpin),
    source: &str,
    to: SocketAddr,
) -> (TcpStream, Guarded<TcpStream>) {
    let mut client = connect_from(source, to).await;
    client.write_all(&[0; HANDSHAKE_BYTES]).await.unwrap();
    let mut server = incoming.next().await.unwrap().unwrap();
    server.read_exact(&mut [0; HANDSHAKE_BYTES]).await.unwrap();
    (client, server)
}

fn peer_of(guarded: &Guarded<TcpStream>) -> SocketAddr {
    guarded.connect_info().remote_addr().unwrap()
}

async fn closed_without_a_byte(client: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(client.read(&mut byte).await, Ok(0) | Err(_))
}

#[tokio::test]
async fn a_peer_over_its_limit_is_closed_at_once_while_another_peer_is_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut incoming = std::pin::pin!(incoming(listener, LIMITS, "test"));
    let (_c1, g1) = started(&mut incoming, "127.0.0.1", address).await;
    let (_c2, _g2) = started(&mut incoming, "127.0.0.1", address).await;

    // The greedy peer's third connection comes first in the backlog; the loop closes
    // it and goes on to the other caller.
    let mut greedy = connect_from("127.0.0.1", address).await;
    let (_other, other) = started(&mut incoming, "127.0.0.2", address).await;
    assert_eq!(peer_of(&other).ip().to_string(), "127.0.0.2");
    assert!(closed_without_a_byte(&mut greedy).await);

    // A closed connection gives the peer its place back.
    drop(g1);
    let (_c3, g3) = started(&mut incoming, "127.0.0.1", address).await;
    assert_eq!(peer_of(&g3).ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn at_its_limit_a_peer_s_silent_connection_makes_room_for_its_next_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut incoming = std::pin::pin!(incoming(listener, LIMITS, "test"));
    // Another peer's silent connection, older than all of the greedy peer's.
    let quiet_client = connect_from("127.0.0.3", address).await;
    let mut quiet = incoming.next().await.unwrap().unwrap();
    let _silent = connect_from("127.0.0.1", address).await;
    let mut silent = incoming.next().await.unwrap().unwrap();
    let (_c2, _g2) = started(&mut incoming, "127.0.0.1", address).await;

    let (_c3, _g3) = started(&mut incoming, "127.0.0.1", address).await;
    let err = silent.read(&mut [0; 1]).await.unwrap_err();
    assert!(err.to_string().contains("closed to make room"), "{err}");
    // Only the peer's own connection made room (the choice is made before the new
    // connection is handed on, so it has been made by now).
    let (_, handshake) = quiet.handshake.as_ref().unwrap();
    assert!(!handshake.evicted(), "another peer's connection was chosen");
    drop(quiet_client);
    assert_eq!(quiet.read(&mut [0; 1]).await.unwrap(), 0);
}

#[test]
fn a_connection_is_either_evicted_or_started_never_both() {
    let handshake = Handshake::new(Peer::Uid(1));
    assert!(handshake.start());
    assert!(!handshake.evict());
    let handshake = Handshake::new(Peer::Uid(1));
    assert!(handshake.evict());
    assert!(!handshake.start());
    assert!(handshake.evicted());
}

/// A connection chosen to make room gives its place in its peer's count back at once,
/// not when its task gets round to closing it: under a flood the loop evicts faster
/// than evicted connections close, and a place held by a closing connection must not
/// refuse the next caller of that peer.
#[tokio::test]
async fn an_evicted_connection_no_longer_counts_against_its_peer() {
    const TIGHT: Limits = Limits {
        max_connections: 3,
        ..LIMITS
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut incoming = std::pin::pin!(incoming(listener, TIGHT, "test"));
    let mut silent = Vec::new();
    for _ in 0..3 {
        // The third is over the peer's limit: the first makes room.
        let client = connect_from("127.0.0.1", address).await;
        silent.push((client, incoming.next().await.unwrap().unwrap()));
    }
    // Every slot is held (the evicted first one has not closed yet): the fourth
    // connection closes the oldest waiting one (the second) and waits for a slot,
    // which the first's close frees.
    let _fourth_client = connect_from("127.0.0.1", address).await;
    let mut fourth = std::pin::pin!(incoming.next());
    assert!(futures_util::poll!(&mut fourth).is_pending());
    let (_, first) = silent.remove(0);
    drop(first);
    let fourth = fourth.await.unwrap().unwrap();
    // Again: the fifth closes the oldest waiting one and gets the second's slot. The
    // peer's open connections other than the fourth have all been evicted, so they
    // count for nothing and the fifth is admitted (counted, they would leave the peer
    // at its limit with none of its connections left to evict, and it would be
    // refused); the sixth, from another address, is what the loop would hand on then.
    let _fifth_client = connect_from("127.0.0.1", address).await;
    let mut fifth = std::pin::pin!(incoming.next());
    assert!(futures_util::poll!(&mut fifth).is_pending());
    let (_, second) = silent.remove(0);
    drop(second);
    let _sixth_client = connect_from("127.0.0.2", address).await;
    let fifth = fifth.await.unwrap().unwrap();
    assert_eq!(peer_of(&fifth).ip().to_string(), "127.0.0.1");
    drop((silent, fourth));
}
