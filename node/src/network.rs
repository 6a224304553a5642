//! The swarm event loop and its handle.
//!
//! [`EventLoop`] owns the `Swarm` and is the only code that touches it; the rest of the
//! node talks to it through [`NetworkHandle`], a cloneable wrapper around a bounded
//! command channel whose commands carry `oneshot` reply senders. Outbound requests
//! wait in a map keyed by request id. Inbound chunk reads run on blocking threads
//! under a semaphore and hand their responses back through a bounded channel.
//!
//! Gossip: every announcement is validated by `Catalog::offer` and every policy by
//! `Governance::offer` before gossipsub may forward it (Accept / Ignore / Reject feeds
//! peer scoring). On every new connection the node pulls the peer's newer policies,
//! then pages through its catalog ([`crate::sync`]), so a node that was offline or
//! joins late catches up. Requests from peers are answered by [`crate::serve`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::gossipsub::{self, MessageAcceptance, PublishError};
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, kad, Multiaddr, PeerId, Swarm};
use mesh_protocol::wire::{Request, Response};
use mesh_protocol::{Announcement, Policy, PolicyError, Signed};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::behaviour::{
    announce_topic, policy_topic, usage_topic, MeshBehaviour, MeshBehaviourEvent,
};
use crate::catalog::Offer;
use crate::config::NodeConfig;
use crate::governance::unix_now;
use crate::limits::PeerLimiter;
use crate::node::Shared;
use crate::serve::Provider;
use crate::sync::SyncState;

mod handle;
mod inbound;

use handle::Command;
pub use handle::{NetworkHandle, PeerInfo};

/// Capacity of the command channel.
const COMMAND_CAPACITY: usize = 256;
/// Inbound chunk reads in flight at once, across all peers.
const MAX_INBOUND_READS: usize = 64;
/// Gossip messages (announcements, policies) kept for retry while no peer is subscribed.
const MAX_PENDING_GOSSIP: usize = 1024;
/// How often bootstrap peers are redialled and pending announcements retried.
const TICK: Duration = Duration::from_secs(2);

/// The loop that owns the swarm.
pub struct EventLoop {
    pub(crate) swarm: Swarm<MeshBehaviour>,
    commands: mpsc::Receiver<Command>,
    pub(crate) shared: Arc<Shared>,
    provider: Arc<Provider>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, String>>>,
    /// Sync requests in flight (policy pull, then catalog pages), by request id.
    pub(crate) syncing: HashMap<OutboundRequestId, SyncState>,
    /// Chunk reads done on the blocking pool, back to be sent.
    responses_tx: mpsc::Sender<inbound::Answer>,
    responses_rx: mpsc::Receiver<inbound::Answer>,
    /// Chunk reads in flight across all peers, from admission until the response is
    /// written or fails.
    inbound_reads: Arc<Semaphore>,
    /// Per-peer request rates and reads in flight.
    limiter: PeerLimiter,
    /// Application-specific gossip scores of connected peers (penalties only).
    app_scores: HashMap<PeerId, f64>,
    /// Chunk reads admitted and not yet sent: who asked, and the overall permit.
    serving: HashMap<InboundRequestId, (PeerId, OwnedSemaphorePermit)>,
    /// Gossip messages waiting for a subscribed peer: topic and payload.
    pending_gossip: VecDeque<(IdentTopic, Vec<u8>)>,
    /// Announcements whose manifests should be fetched and checked in the background.
    pub(crate) prefetch: mpsc::Sender<Announcement>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    /// Whether peers are found through kademlia and identify, or only configured.
    discovery: bool,
    connections: HashMap<PeerId, Multiaddr>,
    ticks: u64,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .finish()
    }
}

impl EventLoop {
    /// Creates the loop and its handle; `run` must then be spawned.
    pub(crate) fn new(
        swarm: Swarm<MeshBehaviour>,
        shared: Arc<Shared>,
        bootstrap: Vec<(PeerId, Multiaddr)>,
        config: &NodeConfig,
        prefetch: mpsc::Sender<Announcement>,
        shutdown: CancellationToken,
    ) -> (Self, NetworkHandle) {
        let (tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (responses_tx, responses_rx) = mpsc::channel(MAX_INBOUND_READS);
        let handle = NetworkHandle {
            tx,
            peer_id: *swarm.local_peer_id(),
        };
        let this = EventLoop {
            swarm,
            commands,
            provider: Arc::new(Provider::new(shared.clone())),
            shared,
            pending: HashMap::new(),
            syncing: HashMap::new(),
            responses_tx,
            responses_rx,
            inbound_reads: Arc::new(Semaphore::new(MAX_INBOUND_READS)),
            limiter: PeerLimiter::new(config.limits.clone()),
            serving: HashMap::new(),
            app_scores: HashMap::new(),
            pending_gossip: VecDeque::new(),
            prefetch,
            bootstrap,
            discovery: config.discovery,
            connections: HashMap::new(),
            ticks: 0,
            shutdown,
        };
        (this, handle)
    }

    /// Dials a configured peer (bootstrap or added), telling kademlia about it when
    /// discovery is on.
    fn connect_to(&mut self, peer: PeerId, addr: Multiaddr) {
        if self.discovery {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
        }
        if let Err(e) = self.swarm.dial(addr.clone()) {
            warn!(%peer, %addr, "dialing a configured peer: {e}");
        }
    }

    /// Runs until shutdown is requested or every handle is dropped.
    pub async fn run(mut self) {
        for (peer, addr) in self.bootstrap.clone() {
            self.connect_to(peer, addr);
        }
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                Some(answer) = self.responses_rx.recv() => self.on_answer(answer),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
            }
        }
        debug!("network loop stopped");
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .transfer
                    .send_request(&peer, request);
                self.pending.insert(id, reply);
            }
            Command::AddPeer { peer, addr } => {
                if !self.bootstrap.iter().any(|(p, a)| *p == peer && *a == addr) {
                    self.bootstrap.push((peer, addr.clone()));
                }
                self.connect_to(peer, addr);
            }
            Command::Announce { envelope } => self.gossip(announce_topic(), envelope),
            Command::PublishPolicy { envelope } => self.gossip(policy_topic(), envelope),
            Command::GossipUsage { envelope } => self.gossip(usage_topic(), envelope),
            Command::Penalize { peer } => {
                let score = self.app_scores.entry(peer).or_default();
                *score -= crate::scoring::CORRUPT_DATA_PENALTY;
                let score = *score;
                warn!(%peer, score, "peer penalized for sending corrupt chunks");
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, score);
            }
            Command::Peers { reply } => {
                let policy = self.shared.governance.policy();
                let peers = self
                    .connections
                    .iter()
                    .map(|(peer, addr)| {
                        let score = self.swarm.behaviour().gossipsub.peer_score(peer);
                        PeerInfo {
                            peer_id: peer.to_string(),
                            address: addr.to_string(),
                            domain: policy
                                .domain_of_node(&peer.to_string())
                                .map(|d| d.to_string()),
                            score,
                            graylisted: score
                                .is_some_and(|s| s < crate::scoring::GRAYLIST_THRESHOLD),
                        }
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
        }
    }

    fn gossip(&mut self, topic: IdentTopic, envelope: Vec<u8>) {
        if !self.publish(topic.clone(), envelope.clone()) {
            if self.pending_gossip.len() >= MAX_PENDING_GOSSIP {
                self.pending_gossip.pop_front();
            }
            self.pending_gossip.push_back((topic, envelope));
        }
    }

    /// Publishes on gossip; false when it should be retried later.
    fn publish(&mut self, topic: IdentTopic, envelope: Vec<u8>) -> bool {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, envelope)
        {
            Ok(_) | Err(PublishError::Duplicate) => true,
            Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::AllQueuesFull(_)) => {
                debug!("no subscribed peer yet; announcement kept for retry");
                false
            }
            Err(e) => {
                warn!("gossip publish failed: {e}");
                true
            }
        }
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        for (peer, addr) in &self.bootstrap {
            if !self.swarm.is_connected(peer) {
                let _ = self.swarm.dial(addr.clone());
            }
        }
        let retry: Vec<_> = self.pending_gossip.drain(..).collect();
        for (topic, envelope) in retry {
            if !self.publish(topic.clone(), envelope.clone()) {
                self.pending_gossip.push_back((topic, envelope));
            }
        }
        if self.discovery && self.ticks % 15 == 1 && !self.connections.is_empty() {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<MeshBehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.connections
                    .insert(peer_id, endpoint.get_remote_address().clone());
                if num_established.get() == 1 {
                    debug!(peer = %peer_id, "connected; starting policy and catalog sync");
                    self.start_sync(peer_id);
                    if self.discovery && self.connections.len() == 1 {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connections.remove(&peer_id);
                self.limiter.forget(&peer_id);
                self.app_scores.remove(&peer_id);
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if self.discovery => {
                for addr in info.listen_addrs.into_iter().take(16) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Transfer(event)) => self.on_transfer(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                ..
            })) if self.discovery
                && !self.swarm.is_connected(&peer)
                && self.connections.len() < 64 =>
            {
                // Small meshes: connect to every peer kademlia finds.
                let _ = self.swarm.dial(peer);
            }
            _ => {}
        }
    }

    /// Queues a background fetch of an announced product's manifest, so the catalog
    /// can show its contract and flag rule violations. Dropped when the queue is full.
    pub(crate) fn queue_prefetch(&self, envelope: &[u8]) {
        if let Ok(a) = Signed::<Announcement>::from_bytes(envelope).and_then(|s| s.value()) {
            let _ = self.prefetch.try_send(a);
        }
    }

    /// Offers policies to governance; after an acceptance, re-evaluates the catalog in
    /// the background. Returns what was offered.
    pub(crate) fn offer_policies(
        &mut self,
        updates: &[Signed<Policy>],
    ) -> Option<mesh_protocol::chain::Offered> {
        match self.shared.governance.offer(updates, unix_now()) {
            Ok(offered) => {
                if !offered.accepted.is_empty() {
                    let catalog = self.shared.catalog.clone();
                    tokio::task::spawn_blocking(move || match catalog.reevaluate() {
                        Ok(n) => info!(flagged = n, "catalog re-evaluated under the new policy"),
                        Err(e) => warn!("re-evaluating the catalog: {e}"),
                    });
                }
                Some(offered)
            }
            Err(e) => {
                warn!("storing policies: {e}");
                None
            }
        }
    }

    fn on_gossip_policy(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let signed = match Signed::<Policy>::from_bytes(data) {
            Ok(s) => s,
            Err(e) => {
                warn!(peer = %source, "rejected policy gossip: {e}");
                return MessageAcceptance::Reject;
            }
        };
        let Some(offered) = self.offer_policies(&[signed]) else {
            return MessageAcceptance::Ignore;
        };
        match offered.error {
            None if !offered.accepted.is_empty() => MessageAcceptance::Accept,
            None => MessageAcceptance::Ignore,
            Some(PolicyError::WrongVersion { found, expected }) if found > expected => {
                // We missed versions: pull them from the sender, in order.
                info!(peer = %source, found, expected, "policy gossip ahead of us; pulling the missing versions");
                self.start_policy_sync(source, false);
                MessageAcceptance::Ignore
            }
            Some(e) => {
                warn!(peer = %source, "rejected policy gossip: {e}");
                MessageAcceptance::Reject
            }
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let acceptance = if message.topic == policy_topic().hash() {
                    self.on_gossip_policy(propagation_source, &message.data)
                } else if message.topic == usage_topic().hash() {
                    match crate::usage::accept(&self.shared, &message.data) {
                        Ok(true) => MessageAcceptance::Accept,
                        Ok(false) => MessageAcceptance::Ignore,
                        Err(e) => {
                            warn!(peer = %propagation_source, "rejected usage report: {e}");
                            MessageAcceptance::Reject
                        }
                    }
                } else if message.topic != announce_topic().hash() {
                    MessageAcceptance::Ignore
                } else {
                    match self.shared.catalog.offer(&message.data) {
                        Ok(Offer::New) => {
                            debug!(peer = %propagation_source, "new product version from gossip");
                            self.queue_prefetch(&message.data);
                            MessageAcceptance::Accept
                        }
                        Ok(Offer::Refreshed) => MessageAcceptance::Accept,
                        Ok(Offer::Known) => MessageAcceptance::Ignore,
                        Err(rejection) => {
                            warn!(peer = %propagation_source, "rejected announcement: {rejection}");
                            MessageAcceptance::Reject
                        }
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            gossipsub::Event::Subscribed { .. } if !self.pending_gossip.is_empty() => {
                self.on_tick();
            }
            _ => {}
        }
    }

    fn on_transfer(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request_id,
                    request,
                    channel,
                } => self.on_inbound(peer, request_id, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    } else if let Some(state) = self.syncing.remove(&request_id) {
                        self.on_sync_response(state, Some(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            } => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(format!("peer {peer}: {error}")));
                } else if let Some(state) = self.syncing.remove(&request_id) {
                    debug!(%peer, "sync request failed: {error}");
                    self.on_sync_response(state, None);
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                debug!(%peer, "inbound transfer failed: {error}");
                self.finish_inbound(request_id);
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.finish_inbound(request_id);
            }
        }
    }
}
