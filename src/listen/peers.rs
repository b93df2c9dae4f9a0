//! Connections per peer (`server.max_connections_per_peer`), the way nginx's
//! `limit_conn` counts them per address: without it, one process that may connect can
//! hold every slot of a listener by keeping its connections alive, and everyone else
//! waits in the kernel's backlog.
//!
//! A peer is what the kernel vouches for: the uid of a Unix-socket caller
//! (`SO_PEERCRED`), the IP address of a TCP caller (all its ports are one peer). The
//! count is taken once per connection, at accept and at close, never per request.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Who a connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    Uid(u32),
    Ip(IpAddr),
    /// The kernel did not say (the connection was reset before it was asked). Such
    /// connections share one count: an unknown caller gets no more than a known one.
    Unknown,
}

impl Peer {
    /// A TCP peer. An IPv4 caller of a dual-stack listener arrives as `::ffff:a.b.c.d`;
    /// it is the same peer as `a.b.c.d`.
    pub(crate) fn ip(address: IpAddr) -> Self {
        Self::Ip(address.to_canonical())
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uid(uid) => write!(f, "uid {uid}"),
            Self::Ip(address) => write!(f, "{address}"),
            Self::Unknown => f.write_str("an unknown peer"),
        }
    }
}

/// One listener's live connections per peer. Peers without a connection have no
/// entry, so the map holds at most one entry per open connection.
#[derive(Debug)]
pub(crate) struct Peers {
    limit: usize,
    /// The listener, for the log.
    what: &'static str,
    live: Mutex<HashMap<Peer, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    count: usize,
    /// Whether the peer is at its limit since it was last admitted under it: the
    /// warning is logged when this turns true, not for every connection refused.
    at_limit: bool,
}

/// A peer at its limit. `first` is true the first time since it was last under it
/// (and the warning was logged).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AtLimit {
    pub(crate) first: bool,
}

impl Peers {
    pub(crate) fn new(limit: usize, what: &'static str) -> Arc<Self> {
        Arc::new(Self {
            limit,
            what,
            live: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection of `peer` if it is under its limit. A peer that reaches
    /// it is logged once, not for every connection refused: a flood must not flood
    /// the log.
    pub(crate) fn admit(self: &Arc<Self>, peer: Peer) -> Result<PeerSlot, AtLimit> {
        let mut live = self.lock();
        let entry = live.entry(peer).or_default();
        if entry.count >= self.limit {
            let first = !entry.at_limit;
            entry.at_limit = true;
            drop(live);
            if first {
                tracing::warn!(
                    listener = self.what,
                    %peer,
                    max_connections_per_peer = self.limit,
                    "a peer reached its connection limit (server.max_connections_per_peer); its new connections are closed while it holds that many"
                );
            }
            tracing::debug!(listener = self.what, %peer, "a connection over the peer's limit");
            return Err(AtLimit { first });
        }
        entry.count += 1;
        entry.at_limit = false;
        Ok(PeerSlot {
            peers: self.clone(),
            peer,
            released: AtomicBool::new(false),
        })
    }

    /// Counts a connection of `peer` that replaces one of its connections just chosen
    /// to make room (whose place is given back already), leaving the warning state as
    /// it is: the peer is still at its limit.
    pub(crate) fn admit_replacing(self: &Arc<Self>, peer: Peer) -> PeerSlot {
        let mut live = self.lock();
        let entry = live.entry(peer).or_default();
        entry.count += 1;
        PeerSlot {
            peers: self.clone(),
            peer,
            released: AtomicBool::new(false),
        }
    }

    fn release(&self, peer: Peer) {
        let mut live = self.lock();
        if let Some(entry) = live.get_mut(&peer) {
            entry.count = entry.count.saturating_sub(1);
            if entry.count == 0 {
                live.remove(&peer);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn count(&self, peer: Peer) -> Option<usize> {
        self.lock().get(&peer).map(|entry| entry.count)
    }

    #[cfg(test)]
    pub(crate) fn peers(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Peer, Entry>> {
        // Every change under the lock is a single step; a panicking holder leaves
        // nothing half-done.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in its peer's count, given back when the connection closes
/// or, earlier, when it is chosen to make room (it is going away, and a place held by
/// a closing connection must not refuse the caller it made room for).
#[derive(Debug)]
pub(crate) struct PeerSlot {
    peers: Arc<Peers>,
    peer: Peer,
    released: AtomicBool,
}

impl PeerSlot {
    /// Gives the place back; only the first call counts.
    pub(crate) fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.peers.release(self.peer);
        }
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const ALICE: Peer = Peer::Uid(1000);
    const BOB: Peer = Peer::Uid(1001);

    #[test]
    fn a_peer_gets_its_limit_and_no_more_while_others_are_unaffected() {
        let peers = Peers::new(2, "test");
        let held = [peers.admit(ALICE).unwrap(), peers.admit(ALICE).unwrap()];
        assert_eq!(peers.admit(ALICE).unwrap_err(), AtLimit { first: true });
        assert_eq!(peers.admit(ALICE).unwrap_err(), AtLimit { first: false });
        let bob = [peers.admit(BOB).unwrap(), peers.admit(BOB).unwrap()];
        assert_eq!(peers.count(ALICE), Some(2));
        assert_eq!(peers.count(BOB), Some(2));
        drop((held, bob));
    }

    #[test]
    fn a_closed_connection_gives_its_place_back_and_the_warning_comes_again() {
        let peers = Peers::new(2, "test");
        let first = peers.admit(ALICE).unwrap();
        let _second = peers.admit(ALICE).unwrap();
        assert!(peers.admit(ALICE).unwrap_err().first);
        drop(first);
        assert_eq!(peers.count(ALICE), Some(1));
        let _again = peers.admit(ALICE).expect("room again after a close");
        // Under the limit once more, so reaching it again is news.
        assert_eq!(peers.admit(ALICE).unwrap_err(), AtLimit { first: true });
    }

    #[test]
    fn a_peer_whose_connections_all_closed_leaves_no_entry() {
        let peers = Peers::new(3, "test");
        let slots: Vec<_> = (0..3).map(|_| peers.admit(ALICE).unwrap()).collect();
        let replacing = peers.admit_replacing(ALICE);
        assert_eq!(peers.count(ALICE), Some(4));
        let _ = peers.admit(ALICE).unwrap_err();
        assert_eq!(peers.peers(), 1);
        drop(slots);
        drop(replacing);
        assert_eq!(peers.count(ALICE), None);
        assert_eq!(peers.peers(), 0, "an idle peer must not stay in the map");
        // A refusal counts nothing: the one connection held is the one to give back.
        let tight = Peers::new(1, "test");
        let held = tight.admit(BOB).unwrap();
        let _ = tight.admit(BOB).unwrap_err();
        assert_eq!(tight.count(BOB), Some(1));
        drop(held);
        assert_eq!(tight.peers(), 0);
    }

    #[test]
    fn every_port_of_an_address_and_its_ipv6_mapped_form_are_one_peer() {
        let v4 = Peer::ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mapped = Peer::ip(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()));
        assert_eq!(v4, mapped);
        assert_eq!(mapped.to_string(), "127.0.0.1");
        assert_ne!(v4, Peer::ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
        assert_eq!(Peer::Uid(0).to_string(), "uid 0");
    }
}
