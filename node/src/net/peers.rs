//! What the event loop knows of each connected peer: its open connections (each
//! direct or through a relay, over TCP or QUIC) and what identify told about it
//! (the addresses it listens on, its agent), so `mesh peers` can show addresses
//! that can be dialled instead of a connection's ephemeral port.

use std::collections::HashMap;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use mesh_protocol::Policy;

use super::addr::{is_relayed, is_unspecified, transport_of};
use super::handle::{ConnectionKind, PeerInfo};
use super::scoring::GRAYLIST_THRESHOLD;

/// Listen addresses kept per peer from identify, at most.
pub(super) const MAX_LISTEN_ADDRS: usize = 16;

/// One open connection.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    /// The remote address (for an inbound relayed connection, just `/p2p/<peer>`).
    pub(super) addr: Multiaddr,
    /// Through a relay (libp2p's `ConnectedPoint::is_relayed`).
    pub(super) relayed: bool,
    /// `quic`, `tcp` or `other`: of the hop this node speaks.
    pub(super) transport: &'static str,
}

impl Conn {
    /// The connection `endpoint` describes.
    pub(super) fn of(endpoint: &libp2p::core::ConnectedPoint) -> Self {
        use libp2p::core::ConnectedPoint;
        let hop = match endpoint {
            ConnectedPoint::Dialer { address, .. } => address,
            ConnectedPoint::Listener { local_addr, .. } => local_addr,
        };
        Conn {
            addr: endpoint.get_remote_address().clone(),
            relayed: endpoint.is_relayed(),
            transport: transport_of(hop),
        }
    }
}

#[derive(Debug, Default)]
struct Peer {
    connections: HashMap<ConnectionId, Conn>,
    listen: Vec<Multiaddr>,
    agent: Option<String>,
    /// The tick since which the peer has had more than one direct connection.
    redundant_since: Option<u64>,
    /// A TCP connection was dialled beside a QUIC one (see `PeerTable::tcp_to_add`).
    tcp_dialled: bool,
}

/// Ticks the node with the larger peer id waits for the other to close a
/// redundant connection before it closes it itself (a peer that never does, such
/// as another stack).
pub(super) const REDUNDANT_GRACE_TICKS: u64 = 3;

/// Ticks a departed peer's addresses stay in the DHT routing table (10 minutes
/// at the event loop's 2 s tick) unless it connects again.
pub(super) const DHT_ADDRESS_TTL_TICKS: u64 = 300;
/// Departed peers remembered at most (the oldest are forgotten first).
const MAX_DEPARTED: usize = 4096;

/// Peers whose last connection closed, and the tick it closed at: kademlia keeps
/// a disconnected peer in its routing table and hands its addresses to whoever
/// asks, long after it left; these are removed [`DHT_ADDRESS_TTL_TICKS`] after.
#[derive(Debug, Default)]
pub(super) struct Departed {
    since: HashMap<PeerId, u64>,
}

impl Departed {
    /// `peer`'s last connection closed at `tick`.
    pub(super) fn left(&mut self, peer: PeerId, tick: u64) {
        if self.since.len() >= MAX_DEPARTED {
            if let Some(oldest) = self.since.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p) {
                self.since.remove(&oldest);
            }
        }
        self.since.insert(peer, tick);
    }

    /// `peer` connected again.
    pub(super) fn returned(&mut self, peer: &PeerId) {
        self.since.remove(peer);
    }

    /// The peers gone for [`DHT_ADDRESS_TTL_TICKS`] at `tick`, forgotten here.
    pub(super) fn expired(&mut self, tick: u64) -> Vec<PeerId> {
        let gone: Vec<PeerId> = self
            .since
            .iter()
            .filter(|(_, t)| tick.saturating_sub(**t) >= DHT_ADDRESS_TTL_TICKS)
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            self.since.remove(p);
        }
        gone
    }
}

/// Sync steps sent again to one peer after their connection closed, at most,
/// while it stays connected.
const MAX_RESENDS: u8 = 8;

/// Counts the sync steps sent again per connected peer (see
/// `PeerTable::redundant_direct`: closing a redundant connection fails what was
/// in flight on it), so a peer that keeps closing connections cannot keep a
/// sync going forever.
#[derive(Debug, Default)]
pub(super) struct Resends {
    count: HashMap<PeerId, u8>,
}

impl Resends {
    /// Whether another step may be sent again to `peer`; counts it.
    pub(super) fn allow(&mut self, peer: PeerId) -> bool {
        let n = self.count.entry(peer).or_default();
        *n = n.saturating_add(1);
        *n <= MAX_RESENDS
    }

    /// `peer` left: its count goes.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.count.remove(peer);
    }
}

/// The connected peers.
#[derive(Debug, Default)]
pub(super) struct PeerTable {
    peers: HashMap<PeerId, Peer>,
}

impl PeerTable {
    /// Records an established connection; true if it is the peer's first.
    pub(super) fn connected(&mut self, peer: PeerId, id: ConnectionId, conn: Conn) -> bool {
        let p = self.peers.entry(peer).or_default();
        p.connections.insert(id, conn);
        p.connections.len() == 1
    }

    /// Records a closed connection; true if it was the peer's last.
    pub(super) fn closed(&mut self, peer: &PeerId, id: ConnectionId) -> bool {
        let Some(p) = self.peers.get_mut(peer) else {
            return false;
        };
        p.connections.remove(&id);
        if p.connections.is_empty() {
            self.peers.remove(peer);
            return true;
        }
        false
    }

    /// Keeps what identify reported of a connected peer.
    pub(super) fn identified(&mut self, peer: &PeerId, listen: &[Multiaddr], agent: &str) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.listen = listen.iter().take(MAX_LISTEN_ADDRS).cloned().collect();
            p.agent = Some(agent.chars().take(128).collect());
        }
    }

    /// The TCP addresses to dial `peer` on as well, once while it stays connected:
    /// it is connected directly over QUIC only and identify reported direct TCP
    /// listen addresses. Bulk transfer runs at about twice the speed over TCP here
    /// (the QUIC profile of #38: quinn's per-packet encryption and copies cost
    /// the consumer twice the CPU per GiB), and [`PeerTable::redundant_direct`]
    /// keeps the TCP connection once both are open.
    pub(super) fn tcp_to_add(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        let Some(p) = self.peers.get_mut(peer) else {
            return Vec::new();
        };
        let direct: Vec<&Conn> = p.connections.values().filter(|c| !c.relayed).collect();
        if p.tcp_dialled || direct.is_empty() || direct.iter().any(|c| c.transport != "quic") {
            return Vec::new();
        }
        let tcp: Vec<Multiaddr> = p
            .listen
            .iter()
            .filter(|a| transport_of(a) == "tcp" && !is_relayed(a) && !is_unspecified(a))
            .take(4)
            .cloned()
            .collect();
        p.tcp_dialled = !tcp.is_empty();
        tcp
    }

    /// Number of connected peers.
    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is connected.
    pub(super) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The connected peers' ids.
    pub(super) fn ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Whether `peer` has a direct (not relayed) connection.
    pub(super) fn is_direct(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|p| p.connections.values().any(|c| !c.relayed))
    }

    /// How `peer` is reached (direct if any of its connections is).
    pub(super) fn kind(&self, peer: &PeerId) -> ConnectionKind {
        if self.is_direct(peer) {
            ConnectionKind::Direct
        } else {
            ConnectionKind::Relayed
        }
    }

    /// Every connected peer and how it is reached.
    pub(super) fn kinds(&self) -> Vec<(PeerId, ConnectionKind)> {
        self.peers.keys().map(|p| (*p, self.kind(p))).collect()
    }

    /// Relayed connections to peers that also have a direct one: once a hole is
    /// punched, traffic should not keep going through the relay.
    pub(super) fn redundant_relayed(&self) -> Vec<(PeerId, ConnectionId)> {
        self.peers
            .iter()
            .filter(|(peer, _)| self.is_direct(peer))
            .flat_map(|(peer, p)| {
                p.connections
                    .iter()
                    .filter(|(_, c)| c.relayed)
                    .map(|(id, _)| (*peer, *id))
            })
            .collect()
    }

    /// Direct connections beyond one per peer, to close: two nodes keep one
    /// connection. Both ends see the same connections, so one decides first, the
    /// one with the smaller peer id, a tick after the redundancy appears; the
    /// other closes them only if they are still open [`REDUNDANT_GRACE_TICKS`]
    /// later. A TCP connection is kept over QUIC ones (see
    /// [`PeerTable::tcp_to_add`]), then the oldest (the smallest id); a
    /// connection closed while a request is in flight on it fails that request,
    /// which the fetch retries and a sync sends again.
    pub(super) fn redundant_direct(
        &mut self,
        local: &PeerId,
        tick: u64,
    ) -> Vec<(PeerId, ConnectionId)> {
        let mut close = Vec::new();
        for (peer, p) in &mut self.peers {
            let mut direct: Vec<(bool, ConnectionId)> = p
                .connections
                .iter()
                .filter(|(_, c)| !c.relayed)
                .map(|(id, c)| (c.transport != "tcp", *id))
                .collect();
            if direct.len() < 2 {
                p.redundant_since = None;
                continue;
            }
            let since = *p.redundant_since.get_or_insert(tick);
            let waited = tick.saturating_sub(since);
            let grace = if local < peer {
                1
            } else {
                REDUNDANT_GRACE_TICKS
            };
            if waited >= grace {
                // TCP first, then the oldest: its streams (gossip, sync) are the
                // ones in use. A tick's wait first lets a connection whose peer
                // restarted be seen closed, and a dial race settle.
                direct.sort_unstable();
                close.extend(direct[1..].iter().map(|(_, id)| (*peer, *id)));
            }
        }
        close
    }

    /// Peers with at least one direct connection, and peers reached only through a
    /// relay.
    pub(super) fn direct_and_relayed(&self) -> (usize, usize) {
        let direct = self.peers.keys().filter(|p| self.is_direct(p)).count();
        (direct, self.peers.len() - direct)
    }

    /// `mesh peers`: each peer with its best connection (direct before relayed, QUIC
    /// before TCP), the addresses it listens on, and its standing.
    pub(super) fn infos(
        &self,
        policy: &Policy,
        score: impl Fn(&PeerId) -> Option<f64>,
    ) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .filter_map(|(peer, p)| {
                let best = p
                    .connections
                    .values()
                    .min_by_key(|c| (c.relayed, c.transport != "quic", c.addr.to_string()))?;
                let s = score(peer);
                Some(PeerInfo {
                    peer_id: peer.to_string(),
                    address: best.addr.to_string(),
                    connection: self.kind(peer).name().into(),
                    transport: best.transport.into(),
                    connections: p.connections.len(),
                    listen_addrs: p.listen.iter().map(|a| a.to_string()).collect(),
                    agent: p.agent.clone(),
                    domain: policy
                        .domain_of_node(&peer.to_string())
                        .map(|d| d.to_string()),
                    score: s,
                    graylisted: s.is_some_and(|s| s < GRAYLIST_THRESHOLD),
                })
            })
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_listed_by_its_best_connection_and_leaves_with_its_last() {
        let mut t = PeerTable::default();
        let peer = PeerId::random();
        let relayed = Conn {
            addr: format!("/p2p/{peer}").parse().unwrap(),
            relayed: true,
            transport: "quic",
        };
        let tcp: Multiaddr = "/ip4/10.0.0.1/tcp/40000".parse().unwrap();
        let direct = Conn {
            addr: tcp.clone(),
            relayed: false,
            transport: "tcp",
        };
        let (a, b) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        assert!(t.connected(peer, a, relayed));
        assert!(!t.is_direct(&peer));
        assert!(!t.connected(peer, b, direct));
        assert!(t.is_direct(&peer));
        t.identified(
            &peer,
            &["/ip4/10.0.0.1/tcp/4801".parse().unwrap()],
            "mesh/0.1.0",
        );
        let policy = crate::state::fixtures::test_governance().1.policy();
        let info = &t.infos(&policy, |_| None)[0];
        assert_eq!(info.address, tcp.to_string());
        assert_eq!(info.connection, "direct");
        assert_eq!(info.transport, "tcp");
        assert_eq!(info.listen_addrs, vec!["/ip4/10.0.0.1/tcp/4801"]);
        assert_eq!(info.agent.as_deref(), Some("mesh/0.1.0"));
        assert_eq!(t.direct_and_relayed(), (1, 0));
        assert_eq!(t.redundant_relayed(), vec![(peer, a)]);
        assert!(!t.closed(&peer, b));
        assert_eq!(t.direct_and_relayed(), (0, 1));
        assert!(t.closed(&peer, a));
        assert!(t.is_empty());
    }

    #[test]
    fn two_nodes_keep_one_direct_connection_the_smaller_id_deciding_first() {
        let direct = |port: u16| Conn {
            addr: format!("/ip4/10.0.0.1/tcp/{port}").parse().unwrap(),
            relayed: false,
            transport: "tcp",
        };
        let (a, b, c) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        let mut ids = [PeerId::random(), PeerId::random()];
        ids.sort();
        let [small, large] = ids;
        // This node has the smaller id: it closes the newer connections at once.
        let mut t = PeerTable::default();
        t.connected(large, a, direct(1));
        assert!(t.redundant_direct(&small, 0).is_empty());
        t.connected(large, c, direct(3));
        t.connected(large, b, direct(2));
        assert!(
            t.redundant_direct(&small, 1).is_empty(),
            "a tick's wait first"
        );
        let mut close = t.redundant_direct(&small, 2);
        close.sort();
        assert_eq!(close, vec![(large, b), (large, c)]);
        // This node has the larger id: it waits for the other end, then acts.
        let mut t = PeerTable::default();
        t.connected(small, a, direct(1));
        t.connected(small, b, direct(2));
        assert!(t.redundant_direct(&large, 10).is_empty());
        assert!(t
            .redundant_direct(&large, 10 + REDUNDANT_GRACE_TICKS - 1)
            .is_empty());
        assert_eq!(
            t.redundant_direct(&large, 10 + REDUNDANT_GRACE_TICKS),
            vec![(small, b)]
        );
        // Once back to one, the clock starts again.
        t.closed(&small, b);
        assert!(t.redundant_direct(&large, 20).is_empty());
        t.connected(small, c, direct(3));
        assert!(t.redundant_direct(&large, 21).is_empty());
    }

    #[test]
    fn a_peer_on_quic_that_listens_on_tcp_gets_a_tcp_connection_which_is_kept() {
        let conn = |addr: &str, transport| Conn {
            addr: addr.parse().unwrap(),
            relayed: false,
            transport,
        };
        let (quic, tcp) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let mut ids = [PeerId::random(), PeerId::random()];
        ids.sort();
        let [small, large] = ids;
        let mut t = PeerTable::default();
        t.connected(large, quic, conn("/ip4/10.0.0.1/udp/4801/quic-v1", "quic"));
        assert!(t.tcp_to_add(&large).is_empty(), "no TCP address known yet");
        t.identified(
            &large,
            &[
                "/ip4/10.0.0.1/udp/4801/quic-v1".parse().unwrap(),
                "/ip4/0.0.0.0/tcp/4801".parse().unwrap(),
                "/ip4/10.0.0.1/tcp/4801".parse().unwrap(),
            ],
            "mesh/0.1.0",
        );
        let want: Vec<Multiaddr> = vec!["/ip4/10.0.0.1/tcp/4801".parse().unwrap()];
        assert_eq!(t.tcp_to_add(&large), want);
        assert!(t.tcp_to_add(&large).is_empty(), "dialled once");
        // Both open: the TCP one is kept, though younger.
        t.connected(large, tcp, conn("/ip4/10.0.0.1/tcp/4801", "tcp"));
        assert!(t.redundant_direct(&small, 0).is_empty());
        assert_eq!(t.redundant_direct(&small, 1), vec![(large, quic)]);
        // A peer already on TCP gets nothing more.
        let mut t = PeerTable::default();
        t.connected(large, tcp, conn("/ip4/10.0.0.1/tcp/4801", "tcp"));
        t.identified(&large, &want, "mesh/0.1.0");
        assert!(t.tcp_to_add(&large).is_empty());
    }

    #[test]
    fn a_departed_peer_expires_from_the_dht_unless_it_returns() {
        let mut d = Departed::default();
        let (gone, back) = (PeerId::random(), PeerId::random());
        d.left(gone, 10);
        d.left(back, 10);
        d.returned(&back);
        assert!(d.expired(10 + DHT_ADDRESS_TTL_TICKS - 1).is_empty());
        assert_eq!(d.expired(10 + DHT_ADDRESS_TTL_TICKS), vec![gone]);
        assert!(d.expired(10_000).is_empty(), "forgotten once expired");
        for i in 0..(MAX_DEPARTED as u64 + 10) {
            d.left(PeerId::random(), i);
        }
        assert_eq!(d.since.len(), MAX_DEPARTED);
    }
}
