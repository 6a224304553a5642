//! The event loop's connectivity work: listen and external addresses, AutoNAT
//! verdicts, relay reservations, hole punching, and dialling the replicas that
//! provider records name (see `net::reach`).

use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{autonat, dcutr, identify, relay, Multiaddr, PeerId};
use tracing::{debug, info, warn};

use super::EventLoop;
use crate::clock::unix_now_ms;
use crate::net::addr::{is_relayed, transport_of};
use crate::net::behaviour::MeshBehaviourEvent;

/// Unconnected replicas dialled per tick, at most.
const REPLICA_DIALS_PER_TICK: usize = 4;
/// With discovery, connect to replicas while fewer peers than this are connected.
const MAX_AUTO_CONNECTIONS: usize = 64;

impl EventLoop {
    /// Handles the swarm events about addresses, reachability, relays and hole
    /// punching; gives back the events it does not handle.
    pub(super) fn on_connectivity_event(
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
            SwarmEvent::Behaviour(MeshBehaviourEvent::Relay(e)) => debug!("relay server: {e:?}"),
            SwarmEvent::Behaviour(MeshBehaviourEvent::AutonatServer(_)) => {}
            SwarmEvent::Behaviour(MeshBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                self.connections
                    .identified(&peer_id, &info.listen_addrs, &info.agent_version);
                let offers_hop = info.protocols.contains(&relay::HOP_PROTOCOL_NAME);
                self.reach
                    .identified(peer_id, offers_hop, &info.listen_addrs);
                if self.discovery {
                    for addr in info.listen_addrs.into_iter().take(16) {
                        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                            kad.add_address(&peer_id, addr);
                        }
                    }
                }
            }
            other => return Some(other),
        }
        None
    }

    /// Closes relayed connections to peers that now have a direct one (after a hole
    /// punch): requests are spread over all of a peer's connections, and bulk
    /// transfer should not go through the relay.
    pub(super) fn drop_redundant_relayed(&mut self) {
        for (peer, id) in self.connections.redundant_relayed() {
            debug!(%peer, "direct connection open; closing the relayed one");
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
