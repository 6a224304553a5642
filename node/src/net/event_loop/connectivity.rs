//! The event loop's connectivity work: listen and external addresses, AutoNAT
//! verdicts, relay reservations, hole punching, and dialling the replicas that
//! provider records name (see `net::reach`).

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{autonat, dcutr, identify, relay, Multiaddr, PeerId};
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::clock::unix_now_ms;
use crate::net::addr::{is_relayed, transport_of};
use crate::net::behaviour::{MeshBehaviourEvent, KAD_PROTOCOL};
use crate::net::scoring::GRAYLIST_THRESHOLD;

/// Unconnected replicas dialled per tick, at most.
const REPLICA_DIALS_PER_TICK: usize = 4;
/// With discovery, connect to replicas while fewer peers than this are connected.
const MAX_AUTO_CONNECTIONS: usize = 64;

/// How long a graylisted peer is kept out after it is disconnected.
const BAN: std::time::Duration = std::time::Duration::from_secs(600);
/// Peers kept out at once, at most.
const MAX_BANNED: usize = 1024;

impl EventLoop {
    /// Handles the swarm events about addresses, reachability, relays and hole
    /// punching; gives back the events it does not handle.
    pub(super) fn on_connectivity_event(
        &mut self,
        event: SwarmEvent<MeshBehaviourEvent>,
    ) -> Option<SwarmEvent<MeshBehaviourEvent>> {
        let event = self.on_address_event(event)?;
        let event = self.on_reachability_event(event)?;
        match event {
            SwarmEvent::Behaviour(MeshBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identified(peer_id, info),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if port_refused(&error) => {
                debug!(%peer, "the listen port cannot dial this peer now; next dial from a fresh port");
                self.fresh_port.insert(peer);
            }
            other => {
                if let SwarmEvent::ConnectionEstablished { peer_id, .. } = &other {
                    self.fresh_port.remove(peer_id);
                }
                return Some(other);
            }
        }
        None
    }

    /// Listen and external addresses coming and going.
    fn on_address_event(
        &mut self,
        event: SwarmEvent<MeshBehaviourEvent>,
    ) -> Option<SwarmEvent<MeshBehaviourEvent>> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.reach.listening(&address);
                // Configured public: what it listens on is what others dial (and a
                // relay server takes reservations only with an external address).
                if self.reach.is_configured_public() && !is_relayed(&address) {
                    self.swarm.add_external_address(address);
                }
                self.addrs_changed.notify_one();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.reach.not_listening(&address);
                self.addrs_changed.notify_one();
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                addresses,
            } => {
                if self.reach.listener_closed(listener_id) {
                    warn!(?addresses, "relay slot lost: {reason:?}; asking again");
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                debug!(?listener_id, "listener error: {error}");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                if !is_relayed(&address) {
                    info!(%address, "reachable at this address (confirmed by a peer's dial-back)");
                }
                self.reach.confirmed(address);
                self.addrs_changed.notify_one();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.reach.expired(&address);
                self.addrs_changed.notify_one();
            }
            other => return Some(other),
        }
        None
    }

    /// AutoNAT probes, relay slots and circuits, hole punching.
    fn on_reachability_event(
        &mut self,
        event: SwarmEvent<MeshBehaviourEvent>,
    ) -> Option<SwarmEvent<MeshBehaviourEvent>> {
        match event {
            SwarmEvent::Behaviour(MeshBehaviourEvent::Autonat(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            })) => match result {
                Ok(()) => debug!(%tested_addr, %server, "AutoNAT: reachable"),
                Err(e) => {
                    debug!(%tested_addr, %server, "AutoNAT: not reachable: {e}");
                    self.reach.probe_failed();
                }
            },
            SwarmEvent::Behaviour(MeshBehaviourEvent::RelayClient(e)) => match e {
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                } => {
                    if !renewal {
                        info!(relay = %relay_peer_id, "reserved a relay slot; reachable through it");
                    }
                    self.reach.accepted(&relay_peer_id);
                }
                other => debug!("relay client: {other:?}"),
            },
            SwarmEvent::Behaviour(MeshBehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => {
                match &result {
                    Ok(_) => info!(peer = %remote_peer_id, "hole punched: direct connection"),
                    Err(e) => debug!(peer = %remote_peer_id, "hole punching failed: {e}"),
                }
                self.reach.hole_punched(result.is_ok());
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Relay(e)) => match e {
                // A refusal is what an operator needs to see: a relay at its limits
                // leaves NATed peers unreachable to each other.
                relay::Event::CircuitReqDenied {
                    src_peer_id,
                    dst_peer_id,
                    status,
                } => {
                    info!(src = %src_peer_id, dst = %dst_peer_id, "relay server: circuit refused ({status:?}); see [network] relay_max_circuits")
                }
                relay::Event::ReservationReqDenied {
                    src_peer_id,
                    status,
                } => {
                    info!(src = %src_peer_id, "relay server: reservation refused ({status:?}); see [network] relay_max_reservations")
                }
                other => debug!("relay server: {other:?}"),
            },
            SwarmEvent::Behaviour(MeshBehaviourEvent::AutonatServer(_)) => {}
            other => return Some(other),
        }
        None
    }

    /// Redials the configured peers (bootstrap and added) that are not connected.
    ///
    /// A dial goes out from the listen port (libp2p's port reuse), so the peer sees
    /// the address it can dial back and a NAT keeps one mapping. The kernel can
    /// refuse that port for a destination, with `EADDRINUSE`, while an earlier
    /// connection on the same address pair lingers in TIME_WAIT (about 60 s); every
    /// redial in that window would fail the same way, so a peer that got this
    /// answer is dialled from a fresh port until it connects.
    /// What identify reports of a peer: its listen addresses, agent and relay
    /// role; only peers that speak the mesh's DHT go into its routing table (a
    /// foreign client's addresses were handed out to every peer that asked, long
    /// after it left).
    fn on_identified(&mut self, peer_id: PeerId, info: identify::Info) {
        self.connections
            .identified(&peer_id, &info.listen_addrs, &info.agent_version);
        // One side (the smaller peer id) adds a TCP connection beside a QUIC one.
        if self.swarm.local_peer_id() < &peer_id {
            let tcp = self.connections.tcp_to_add(&peer_id);
            if !tcp.is_empty() {
                debug!(%peer_id, "connected over QUIC; adding TCP for bulk transfer");
                let opts = DialOpts::peer_id(peer_id)
                    .condition(PeerCondition::Always)
                    .addresses(tcp)
                    .build();
                let _ = self.swarm.dial(opts);
            }
        }
        let offers_hop = info.protocols.contains(&relay::HOP_PROTOCOL_NAME);
        self.reach
            .identified(peer_id, offers_hop, &info.listen_addrs);
        let dht_peer = info.protocols.contains(&KAD_PROTOCOL);
        if self.discovery && dht_peer {
            for addr in info.listen_addrs.into_iter().take(16) {
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.add_address(&peer_id, addr);
                }
            }
        }
    }

    /// Removes from the DHT the peers gone for `DHT_ADDRESS_TTL_TICKS`.
    pub(super) fn expire_departed(&mut self) {
        for peer in self.departed.expired(self.ticks) {
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                if kad.remove_peer(&peer).is_some() {
                    debug!(%peer, "gone for 10 minutes; its addresses leave the DHT");
                }
            }
        }
    }

    /// Disconnects `peer` if its gossip score is below the graylist (checked as
    /// its invalid messages are rejected: a flooder's score climbs back within
    /// seconds, which let a steady flood try again every few seconds) and keeps it
    /// out for [`BAN`].
    pub(super) fn disconnect_if_graylisted(&mut self, peer: PeerId) {
        let low = self
            .swarm
            .behaviour()
            .gossipsub
            .peer_score(&peer)
            .is_some_and(|s| s < GRAYLIST_THRESHOLD);
        if !low {
            return;
        }
        let now = std::time::Instant::now();
        self.banned.retain(|_, until| *until > now);
        if self.banned.len() < MAX_BANNED {
            self.banned.insert(peer, now + BAN);
        }
        warn!(%peer, "disconnecting a graylisted peer; kept out for {} s", BAN.as_secs());
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// Whether `peer` is kept out (recently graylisted): its new connection is
    /// closed at once.
    pub(super) fn keep_out(&mut self, peer: PeerId) -> bool {
        let banned = self
            .banned
            .get(&peer)
            .is_some_and(|until| *until > std::time::Instant::now());
        if banned {
            debug!(%peer, "closing a connection from a peer kept out");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        banned
    }

    pub(super) fn redial_configured(&mut self) {
        for (peer, addr) in self.bootstrap.clone() {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            let opts = DialOpts::unknown_peer_id().address(addr);
            let opts = if self.fresh_port.contains(&peer) {
                opts.allocate_new_port().build()
            } else {
                opts.build()
            };
            let _ = self.swarm.dial(opts);
        }
    }

    /// Closes relayed connections to peers that now have a direct one (after a hole
    /// punch): requests are spread over all of a peer's connections, and bulk
    /// transfer should not go through the relay. And keeps one direct connection
    /// per peer (simultaneous dials, redials and other stacks open more; see
    /// `PeerTable::redundant_direct`).
    pub(super) fn drop_redundant(&mut self) {
        for (peer, id) in self.connections.redundant_relayed() {
            debug!(%peer, "direct connection open; closing the relayed one");
            self.swarm.close_connection(id);
        }
        let local = *self.swarm.local_peer_id();
        for (peer, id) in self.connections.redundant_direct(&local, self.ticks) {
            debug!(%peer, "a second direct connection; closing all but the oldest");
            self.swarm.close_connection(id);
        }
    }

    /// Reserves relay slots when this node is not reachable (see `net::reach`).
    pub(super) fn reserve_relays(&mut self) {
        let swarm = &self.swarm;
        for (relay, addr) in self.reach.wanted(|p| swarm.is_connected(p)) {
            match self.swarm.listen_on(addr.clone()) {
                Ok(listener) => {
                    debug!(%relay, %addr, "asking for a relay slot");
                    self.reach.reserving(relay, listener);
                }
                Err(e) => warn!(%relay, %addr, "cannot listen through the relay: {e}"),
            }
        }
    }

    /// With discovery, connects to replicas whose fresh provider records name
    /// addresses, a few per tick, like kademlia's small-mesh dialling: a node behind
    /// a NAT is reached through the relayed address its record gives, and hole
    /// punching may then make the connection direct.
    pub(super) fn dial_replicas(&mut self) {
        if !self.discovery || self.connections.len() >= MAX_AUTO_CONNECTIONS {
            return;
        }
        let me = self.swarm.local_peer_id().to_string();
        let mut dialled = 0;
        for (peer, addrs) in self.validator.providers.fresh_nodes(unix_now_ms()) {
            if dialled == REPLICA_DIALS_PER_TICK {
                break;
            }
            let Ok(peer_id) = peer.parse::<PeerId>() else {
                continue;
            };
            if peer == me || self.swarm.is_connected(&peer_id) || addrs.is_empty() {
                continue;
            }
            // Direct addresses first, one at a time, then the relayed ones: a peer
            // on this node's own network is reached straight, not through the relay.
            // QUIC before TCP where a peer has both.
            let mut addrs: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
            addrs.sort_by_key(|a| (is_relayed(a), transport_of(a) != "quic"));
            let opts = DialOpts::peer_id(peer_id)
                .addresses(addrs)
                .override_dial_concurrency_factor(std::num::NonZeroU8::MIN)
                .build();
            if self.swarm.dial(opts).is_ok() {
                dialled += 1;
            }
        }
    }
}

/// Whether a dial failed because the kernel refused the local (listen) port.
///
/// libp2p wraps the OS error in transport, relay and DNS layers whose `source()`
/// chains skip levels, so the error's debug form is what names the OS error kind.
fn port_refused(error: &DialError) -> bool {
    match error {
        DialError::Transport(errors) => errors
            .iter()
            .any(|(_, e)| format!("{e:?}").contains("AddrInUse")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_listen_port_is_told_apart_from_other_dial_failures() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1"
            .parse()
            .unwrap_or_else(|_| Multiaddr::empty());
        let failed = |kind: std::io::ErrorKind| {
            DialError::Transport(vec![(
                addr.clone(),
                libp2p::TransportError::Other(std::io::Error::other(std::io::Error::from(kind))),
            )])
        };
        assert!(port_refused(&failed(std::io::ErrorKind::AddrInUse)));
        assert!(!port_refused(&failed(
            std::io::ErrorKind::ConnectionRefused
        )));
        assert!(!port_refused(&DialError::Aborted));
    }
}
