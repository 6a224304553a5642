//! Reachability: whether others can dial this node, and what it does when they
//! cannot.
//!
//! AutoNAT v2 asks peers to dial each candidate address (what identify saw this node
//! dial from) back on a new connection; a success confirms the address as external
//! and the node is *public*. A node that is configured private, or whose probes
//! failed with nothing confirmed (or nothing could be tested for a while), is
//! *private*: it reserves a slot on up to [`MAX_RESERVATIONS`] relays (the
//! configured ones first, then connected peers that offer the relay hop protocol)
//! and listens on the relayed address `/…/p2p/RELAY/p2p-circuit`, which identify
//! and its provider record advertise. A peer that dials that address reaches it
//! through the relay; DCUtR then tries to punch a hole for a direct connection.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use super::addr::is_relayed;
use crate::home::config::Reachability as Configured;

/// Relay slots held at once, at most.
pub(super) const MAX_RESERVATIONS: usize = 2;

/// How long a node in `auto` waits for a first AutoNAT verdict before it reserves a
/// relay slot anyway (it may be behind a NAT that nothing could test).
const UNKNOWN_GRACE: Duration = Duration::from_secs(10);

/// How this node is reached, as `mesh status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReachabilityView {
    /// `public`, `local` (reachable in its own private network only), `private`
    /// or `unknown`.
    pub status: String,
    /// `auto`, `public` or `private`, as configured.
    pub configured: String,
    /// Addresses confirmed reachable by AutoNAT, or configured as external.
    pub external: Vec<String>,
    /// Relays holding a slot for this node (peer ids).
    pub relays: Vec<String>,
    /// The relayed addresses this node listens on.
    pub relayed_addrs: Vec<String>,
    /// Whether this node serves as a relay for others.
    pub relay_server: bool,
    /// Peers with a direct connection.
    pub direct_peers: usize,
    /// Peers reached only through a relay.
    pub relayed_peers: usize,
    /// Relayed connections upgraded to direct ones by hole punching.
    pub hole_punches: u64,
    /// Hole punching attempts that failed.
    pub hole_punch_failures: u64,
    /// AutoNAT probes of this node's addresses that failed.
    pub failed_probes: u64,
    /// Milliseconds from start to the first hole punch that succeeded.
    #[serde(default)]
    pub first_hole_punch_ms: Option<u64>,
}

/// Whether `addr` is on a public IP: not loopback, link-local, or a private or
/// shared (carrier-grade NAT) range, where only the peers of that network reach it.
fn is_public(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || (a == 100 && (64..128).contains(&b)))
        }
        Protocol::Ip6(ip) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
        Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) => true,
        _ => false,
    })
}

#[derive(Debug)]
struct Reservation {
    listener: ListenerId,
    accepted: bool,
}

/// The reachability state of one node.
#[derive(Debug)]
pub(super) struct Reach {
    configured: Configured,
    relay_server: bool,
    configured_relays: Vec<(PeerId, Multiaddr)>,
    /// Connected peers that offer the relay hop protocol, with an address of theirs.
    relay_capable: HashMap<PeerId, Multiaddr>,
    reservations: HashMap<PeerId, Reservation>,
    /// Configured external addresses and those AutoNAT confirmed.
    external: Vec<Multiaddr>,
    relayed_addrs: HashSet<Multiaddr>,
    failed_probes: u64,
    hole_punches: u64,
    hole_punch_failures: u64,
    first_hole_punch: Option<Duration>,
    started: Instant,
}

impl Reach {
    pub(super) fn new(
        configured: Configured,
        relay_server: bool,
        configured_relays: Vec<(PeerId, Multiaddr)>,
        external: Vec<Multiaddr>,
    ) -> Self {
        Reach {
            configured,
            relay_server,
            configured_relays,
            relay_capable: HashMap::new(),
            reservations: HashMap::new(),
            external,
            relayed_addrs: HashSet::new(),
            failed_probes: 0,
            hole_punches: 0,
            hole_punch_failures: 0,
            first_hole_punch: None,
            started: Instant::now(),
        }
    }

    /// Whether this node is configured as publicly reachable.
    pub(super) fn is_configured_public(&self) -> bool {
        self.configured == Configured::Public
    }

    /// `public` (an external address on a public IP is confirmed, or so
    /// configured), `local` (only addresses of a private network are confirmed: peers
    /// in that network reach it, others need a relay), `private` (probes failed, or
    /// so configured) or `unknown`.
    pub(super) fn status(&self) -> &'static str {
        match self.configured {
            Configured::Public => "public",
            Configured::Private => "private",
            Configured::Auto if self.external.iter().any(is_public) => "public",
            Configured::Auto if !self.external.is_empty() => "local",
            Configured::Auto if self.failed_probes > 0 => "private",
            Configured::Auto => "unknown",
        }
    }

    /// Whether this node should hold relay slots now: unless it is public (a node
    /// reachable only in its own network holds them for the peers outside it).
    fn needs_relay(&self) -> bool {
        match self.status() {
            "public" => false,
            "unknown" => self.started.elapsed() >= UNKNOWN_GRACE,
            _ => true,
        }
    }

    /// AutoNAT confirmed `addr` (or the swarm did otherwise).
    pub(super) fn confirmed(&mut self, addr: Multiaddr) {
        if !is_relayed(&addr) && !self.external.contains(&addr) {
            self.external.push(addr);
        }
    }

    /// An external address expired.
    pub(super) fn expired(&mut self, addr: &Multiaddr) {
        self.external.retain(|a| a != addr);
    }

    /// An AutoNAT probe of one of this node's addresses failed.
    pub(super) fn probe_failed(&mut self) {
        self.failed_probes += 1;
    }

    /// A hole punch finished.
    pub(super) fn hole_punched(&mut self, ok: bool) {
        if ok {
            self.hole_punches += 1;
            self.first_hole_punch.get_or_insert(self.started.elapsed());
        } else {
            self.hole_punch_failures += 1;
        }
    }

    /// What identify said about a connected peer: whether it offers the relay hop
    /// protocol, and at which (direct) address.
    pub(super) fn identified(&mut self, peer: PeerId, offers_hop: bool, listen: &[Multiaddr]) {
        let direct = listen
            .iter()
            .find(|a| !is_relayed(a) && !super::addr::is_unspecified(a));
        match (offers_hop, direct) {
            (true, Some(a)) => {
                self.relay_capable.insert(peer, a.clone());
            }
            _ => {
                self.relay_capable.remove(&peer);
            }
        }
    }

    /// A peer disconnected: it can no longer relay for us through that connection.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.relay_capable.remove(peer);
    }

    /// The relays to reserve a slot on now: (relay, `/…/p2p/RELAY/p2p-circuit`).
    pub(super) fn wanted(&self, connected: impl Fn(&PeerId) -> bool) -> Vec<(PeerId, Multiaddr)> {
        if !self.needs_relay() || self.reservations.len() >= MAX_RESERVATIONS {
            return Vec::new();
        }
        let room = MAX_RESERVATIONS - self.reservations.len();
        let configured = self
            .configured_relays
            .iter()
            .filter(|(p, _)| connected(p))
            .map(|(p, a)| (*p, a.clone()));
        let learned = self
            .relay_capable
            .iter()
            .map(|(p, a)| (*p, a.clone().with(Protocol::P2p(*p))));
        let mut out: Vec<(PeerId, Multiaddr)> = Vec::new();
        for (peer, addr) in configured.chain(learned) {
            if self.reservations.contains_key(&peer) || out.iter().any(|(p, _)| *p == peer) {
                continue;
            }
            out.push((peer, addr.with(Protocol::P2pCircuit)));
            if out.len() == room {
                break;
            }
        }
        out
    }

    /// A reservation was asked for through `listener`.
    pub(super) fn reserving(&mut self, relay: PeerId, listener: ListenerId) {
        self.reservations.insert(
            relay,
            Reservation {
                listener,
                accepted: false,
            },
        );
    }

    /// The relay accepted (or renewed) the reservation.
    pub(super) fn accepted(&mut self, relay: &PeerId) {
        if let Some(r) = self.reservations.get_mut(relay) {
            r.accepted = true;
        }
    }

    /// A listener closed: if it was a reservation, it is gone (retried later);
    /// returns whether it was one.
    pub(super) fn listener_closed(&mut self, listener: ListenerId) -> bool {
        let before = self.reservations.len();
        self.reservations.retain(|_, r| r.listener != listener);
        self.reservations.len() < before
    }

    /// A new listen address; relayed ones are kept to show.
    pub(super) fn listening(&mut self, addr: &Multiaddr) {
        if is_relayed(addr) {
            self.relayed_addrs.insert(addr.clone());
        }
    }

    /// A listen address went away.
    pub(super) fn not_listening(&mut self, addr: &Multiaddr) {
        self.relayed_addrs.remove(addr);
    }

    /// The view `mesh status` shows; peers counted by the caller.
    pub(super) fn view(&self, direct_peers: usize, relayed_peers: usize) -> ReachabilityView {
        let mut relays: Vec<String> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.accepted)
            .map(|(p, _)| p.to_string())
            .collect();
        relays.sort();
        let mut relayed_addrs: Vec<String> =
            self.relayed_addrs.iter().map(|a| a.to_string()).collect();
        relayed_addrs.sort();
        ReachabilityView {
            status: self.status().into(),
            configured: match self.configured {
                Configured::Auto => "auto",
                Configured::Public => "public",
                Configured::Private => "private",
            }
            .into(),
            external: self.external.iter().map(|a| a.to_string()).collect(),
            relays,
            relayed_addrs,
            relay_server: self.relay_server,
            direct_peers,
            relayed_peers,
            hole_punches: self.hole_punches,
            hole_punch_failures: self.hole_punch_failures,
            failed_probes: self.failed_probes,
            first_hole_punch_ms: self.first_hole_punch.map(|d| d.as_millis() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> (PeerId, Multiaddr) {
        let p = PeerId::random();
        let a: Multiaddr = format!("/ip4/198.51.100.1/udp/4801/quic-v1/p2p/{p}")
            .parse()
            .unwrap();
        (p, a)
    }

    #[test]
    fn a_private_node_reserves_on_configured_relays_then_learned_ones() {
        let (r1, a1) = relay();
        let mut reach = Reach::new(Configured::Private, false, vec![(r1, a1.clone())], vec![]);
        assert_eq!(reach.status(), "private");
        // Not connected to the configured relay yet: only learned relays count.
        assert!(reach.wanted(|_| false).is_empty());
        let want = reach.wanted(|_| true);
        assert_eq!(want, vec![(r1, a1.with(Protocol::P2pCircuit))]);
        let r2 = PeerId::random();
        reach.identified(r2, true, &["/ip4/198.51.100.2/tcp/4801".parse().unwrap()]);
        let want = reach.wanted(|_| true);
        assert_eq!(want.len(), 2);
        assert_eq!(
            want[1].1.to_string(),
            format!("/ip4/198.51.100.2/tcp/4801/p2p/{r2}/p2p-circuit")
        );
        reach.reserving(r1, ListenerId::next());
        reach.reserving(r2, ListenerId::next());
        assert!(
            reach.wanted(|_| true).is_empty(),
            "at most {MAX_RESERVATIONS}"
        );
        reach.accepted(&r1);
        assert_eq!(reach.view(0, 0).relays, vec![r1.to_string()]);
    }

    #[test]
    fn auto_follows_autonat() {
        let (r1, a1) = relay();
        let mut reach = Reach::new(Configured::Auto, false, vec![(r1, a1)], vec![]);
        assert_eq!(reach.status(), "unknown");
        assert!(
            reach.wanted(|_| true).is_empty(),
            "waits for a verdict first"
        );
        reach.probe_failed();
        assert_eq!(reach.status(), "private");
        assert_eq!(reach.wanted(|_| true).len(), 1);
        let addr: Multiaddr = "/ip4/198.51.100.7/udp/4801/quic-v1".parse().unwrap();
        reach.confirmed(addr.clone());
        assert_eq!(reach.status(), "public");
        assert!(reach.wanted(|_| true).is_empty());
        reach.expired(&addr);
        assert_eq!(reach.status(), "private");
        // Confirmed by a peer of its own network only: local, and it keeps relaying.
        reach.confirmed("/ip4/10.2.0.12/udp/4802/quic-v1".parse().unwrap());
        assert_eq!(reach.status(), "local");
        assert_eq!(reach.wanted(|_| true).len(), 1);
        let public = Reach::new(Configured::Public, true, vec![], vec![]);
        assert_eq!(public.status(), "public");
        assert!(public.view(3, 1).relay_server);
    }
}
