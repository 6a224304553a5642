//! The swarm event loop: the only code that touches the `Swarm`. Its
//! connectivity work (addresses, reachability, relays, hole punching) is in
//! `connectivity`.
//!
//! The rest of the node talks to it through `NetworkHandle` (a bounded command
//! channel whose commands carry `oneshot` reply senders). Outbound requests wait in
//! a map keyed by request id. Gossip goes to the `Validator` (`net::gossip`),
//! connect-time pulls to `net::sync`, inbound requests through `Admission` to the
//! `Provider` (`net::transfer`); reads run on the blocking pool and hand their
//! responses back through a bounded channel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::gossipsub::{self, PublishError};
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{kad, Multiaddr, PeerId, Swarm};
use mesh_protocol::wire::{Request, Response};
use mesh_protocol::Announcement;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::behaviour::{
    access_decisions_topic, access_requests_topic, announce_topic, policy_topic, providers_topic,
    usage_topic, MeshBehaviour, MeshBehaviourEvent,
};
use super::entropy::AntiEntropy;
use super::error::NetError;
use super::gossip::{FollowUp, Validator};
use super::handle::{Command, NetworkHandle};
use super::handles::StateHandles;
use super::peers::{Conn, Departed, PeerTable, Resends};
use super::reach::Reach;
use super::scoring::CORRUPT_DATA_PENALTY;
use super::sync::offers::{Offered, PageOffers};
use super::sync::{self, Advance, SyncState};
use super::transfer::admission::{Admission, MAX_INBOUND_READS};
use super::transfer::serve::Provider;
use crate::home::config::NodeConfig;
use crate::state::governance::Governance;

mod connectivity;

/// A read finished on the blocking pool: the request it answers, where to send the
/// answer, and the answer.
type Answer = (InboundRequestId, ResponseChannel<Response>, Response);

/// Capacity of the command channel.
const COMMAND_CAPACITY: usize = 256;
/// Gossip messages (announcements, policies) kept for retry while no peer is
/// subscribed or every peer's send queue is full; the oldest go first past this.
const MAX_PENDING_GOSSIP: usize = 1024;
/// Ticks between anti-entropy syncs with one connected peer (about 30 s).
const ANTI_ENTROPY_TICKS: u64 = 15;
/// How often bootstrap peers are redialled and pending announcements retried.
const TICK: Duration = Duration::from_secs(2);

/// Sends a sync step's request and keeps the step until its answer comes.
fn send_step(
    swarm: &mut Swarm<MeshBehaviour>,
    syncing: &mut HashMap<OutboundRequestId, SyncState>,
    state: SyncState,
) {
    let id = swarm
        .behaviour_mut()
        .transfer
        .send_request(&state.peer(), state.request());
    syncing.insert(id, state);
}

/// The loop that owns the swarm.
pub(crate) struct EventLoop {
    swarm: Swarm<MeshBehaviour>,
    commands: mpsc::Receiver<Command>,
    /// Judges gossip and synced entries.
    validator: Validator,
    governance: Governance,
    provider: Arc<Provider>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, NetError>>>,
    /// Sync requests in flight (policy pull, then catalog pages), by request id.
    syncing: HashMap<OutboundRequestId, SyncState>,
    /// The worker that offers synced catalog pages off this loop.
    offers: PageOffers,
    /// Whether a catalog sync is under way, as the handles see it.
    catalog_syncing: watch::Sender<bool>,
    /// Digest asks of anti-entropy.
    entropy: AntiEntropy,
    /// Sync steps sent again after their connection closed, per peer.
    sync_resends: Resends,
    /// Peers disconnected for a gossip score below the graylist, and until when
    /// they are kept out.
    banned: HashMap<PeerId, std::time::Instant>,
    /// Reads done on the blocking pool, back to be sent.
    responses_tx: mpsc::Sender<Answer>,
    responses_rx: mpsc::Receiver<Answer>,
    /// Per-peer rates and slots, overall read permits.
    admission: Admission,
    /// Application-specific gossip scores of connected peers (penalties only).
    app_scores: HashMap<PeerId, f64>,
    /// Gossip messages waiting for a subscribed peer (or room in a full send
    /// queue): topic and payload, retried every tick and on a subscription.
    pending_gossip: VecDeque<(IdentTopic, Vec<u8>)>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    /// Configured peers whose last dial from the listen port failed because the
    /// kernel refused that port (see `redial_configured`).
    fresh_port: HashSet<PeerId>,
    /// Whether peers are found through kademlia and identify, or only configured.
    discovery: bool,
    connections: PeerTable,
    /// Peers that left, until their addresses leave the DHT.
    departed: Departed,
    /// Reachability, relay slots and hole punching.
    reach: Reach,
    /// Signalled when listen or external addresses change (the provider record is
    /// due).
    addrs_changed: Arc<Notify>,
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
    ///
    /// New announcements are handed to `prefetch` so their manifests are fetched in
    /// the background (by `ops`, which this layer does not know).
    pub(crate) fn new(
        mut swarm: Swarm<MeshBehaviour>,
        state: StateHandles,
        bootstrap: Vec<(PeerId, Multiaddr)>,
        config: &NodeConfig,
        prefetch: mpsc::Sender<Announcement>,
        shutdown: CancellationToken,
    ) -> (Self, NetworkHandle) {
        let (tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (responses_tx, responses_rx) = mpsc::channel(MAX_INBOUND_READS);
        let addrs_changed = Arc::new(Notify::new());
        let (catalog_syncing, syncing_rx) = watch::channel(false);
        let handle = NetworkHandle::new(
            tx,
            *swarm.local_peer_id(),
            addrs_changed.clone(),
            syncing_rx,
        );
        // Parsed and checked by `NodeConfig::validate` before the node starts.
        let external = config.external_addrs().unwrap_or_default();
        let relays = config.relay_addrs().unwrap_or_default();
        for a in &external {
            swarm.add_external_address(a.clone());
        }
        let mut bootstrap = bootstrap;
        for r in &relays {
            if !bootstrap.contains(r) {
                bootstrap.push(r.clone());
            }
        }
        let reach = Reach::new(
            config.network.reachability,
            config.network.relay_server,
            relays,
            external,
        );
        let provider = Provider::new(state.clone());
        let StateHandles {
            catalog,
            governance,
            usage,
            providers,
            access,
            metrics,
            ..
        } = state;
        let validator = Validator {
            catalog,
            governance: governance.clone(),
            usage,
            providers,
            access,
            prefetch,
            metrics: metrics.clone(),
        };
        let this = EventLoop {
            swarm,
            commands,
            offers: PageOffers::start(validator.clone()),
            catalog_syncing,
            validator,
            governance,
            provider: Arc::new(provider),
            pending: HashMap::new(),
            syncing: HashMap::new(),
            entropy: AntiEntropy::default(),
            banned: HashMap::new(),
            responses_tx,
            responses_rx,
            admission: Admission::new(config.limits.clone(), metrics),
            app_scores: HashMap::new(),
            pending_gossip: VecDeque::new(),
            bootstrap,
            fresh_port: HashSet::new(),
            discovery: config.discovery,
            connections: PeerTable::default(),
            departed: Departed::default(),
            sync_resends: Resends::default(),
            reach,
            addrs_changed,
            ticks: 0,
            shutdown,
        };
        (this, handle)
    }

    /// Dials a configured peer (bootstrap or added), telling kademlia about it when
    /// discovery is on.
    fn connect_to(&mut self, peer: PeerId, addr: Multiaddr) {
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = self.swarm.dial(addr.clone()) {
            warn!(%peer, %addr, "dialing a configured peer: {e}");
        }
    }

    /// Runs until shutdown is requested or every handle is dropped.
    pub(crate) async fn run(mut self) {
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
                Some(offered) = self.offers.offered() => self.on_page_offered(offered),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
            }
            let syncing = self.catalog_syncing();
            self.catalog_syncing
                .send_if_modified(|busy| std::mem::replace(busy, syncing) != syncing);
        }
        self.offers.stop().await;
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
            Command::GossipProviders { envelope } => self.gossip(providers_topic(), envelope),
            Command::GossipAccess { decision, envelope } => {
                let topic = if decision {
                    access_decisions_topic()
                } else {
                    access_requests_topic()
                };
                self.gossip(topic, envelope);
            }
            Command::LearnAddrs { peer, addrs } => {
                if self.discovery && peer != *self.swarm.local_peer_id() {
                    for addr in addrs.into_iter().take(super::peers::MAX_LISTEN_ADDRS) {
                        self.swarm.add_peer_address(peer, addr);
                    }
                }
            }
            Command::Penalize { peer } => {
                let score = self.app_scores.entry(peer).or_default();
                *score -= CORRUPT_DATA_PENALTY;
                let score = *score;
                warn!(%peer, score, "peer penalized for sending corrupt chunks");
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, score);
            }
            Command::Peers { reply } => {
                let gossipsub = &self.swarm.behaviour().gossipsub;
                let peers = self
                    .connections
                    .infos(&self.governance.policy(), |p| gossipsub.peer_score(p));
                let _ = reply.send(peers);
            }
            Command::Connected { reply } => {
                let _ = reply.send(self.connections.kinds());
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Reachability { reply } => {
                let (direct, relayed) = self.connections.direct_and_relayed();
                let _ = reply.send(self.reach.view(direct, relayed));
            }
            Command::AdvertisedAddrs { reply } => {
                let addrs = super::addr::advertised(
                    self.swarm
                        .external_addresses()
                        .chain(self.swarm.listeners()),
                );
                let _ = reply.send(addrs);
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
                debug!("no subscribed peer, or every send queue full; gossip kept for retry");
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
        self.redial_configured();
        let retry: Vec<_> = self.pending_gossip.drain(..).collect();
        for (topic, envelope) in retry {
            if !self.publish(topic.clone(), envelope.clone()) {
                self.pending_gossip.push_back((topic, envelope));
            }
        }
        if self.ticks % 15 == 1 && !self.connections.is_empty() {
            self.kad_bootstrap();
        }
        self.reserve_relays();
        self.drop_redundant();
        if self.ticks % 15 == 3 {
            self.expire_departed();
        }
        if self.ticks % 5 == 2 {
            self.dial_replicas();
        }
        if self.sync_idle() {
            self.ask_digest();
        }
        if self.ticks.is_multiple_of(ANTI_ENTROPY_TICKS) && self.sync_idle() {
            // Anti-entropy: gossip a node missed while it was stalled (SIGSTOP, a
            // long GC pause) is not sent again, and a connection that survived the
            // stall brings no connect-time sync; so every so often pull the policy
            // chain and catalog of one connected peer, in turn.
            let peers: Vec<PeerId> = self.connections.ids();
            if !peers.is_empty() {
                let peer = peers[(self.ticks / ANTI_ENTROPY_TICKS) as usize % peers.len()];
                debug!(%peer, "anti-entropy sync");
                self.start_sync(peer, true);
            }
        }
    }

    /// Starts a kademlia bootstrap (a walk that finds more peers), when discovery is
    /// on.
    fn kad_bootstrap(&mut self) {
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
            let _ = kad.bootstrap();
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<MeshBehaviourEvent>) {
        let Some(event) = self.on_connectivity_event(event) else {
            return;
        };
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if self.keep_out(peer_id) {
                    return;
                }
                let first = self
                    .connections
                    .connected(peer_id, connection_id, Conn::of(&endpoint));
                self.departed.returned(&peer_id);
                if first {
                    debug!(peer = %peer_id, "connected; starting policy, catalog and record sync");
                    self.start_sync(peer_id, true);
                    if self.connections.len() == 1 {
                        self.kad_bootstrap();
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } if self.connections.closed(&peer_id, connection_id) => {
                // The peer's last connection.
                self.admission.forget(&peer_id);
                self.app_scores.remove(&peer_id);
                self.reach.disconnected(&peer_id);
                self.departed.left(peer_id, self.ticks);
                self.sync_resends.forget(&peer_id);
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

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let (acceptance, follow_up) =
                    self.validator
                        .judge(&message.topic, &propagation_source, &message.data);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                if acceptance == gossipsub::MessageAcceptance::Reject {
                    // Its score drops now, and climbs back within seconds.
                    self.disconnect_if_graylisted(propagation_source);
                }
                if follow_up == FollowUp::PullPolicies {
                    self.start_sync(propagation_source, false);
                }
            }
            gossipsub::Event::Subscribed { .. } if !self.pending_gossip.is_empty() => {
                self.on_tick();
            }
            _ => {}
        }
    }

    /// Asks the next connected peer in turn for its catalog digest.
    fn ask_digest(&mut self) {
        let peers = self.connections.ids();
        if let Some(peer) = self.entropy.next_peer(&peers) {
            let id = self
                .swarm
                .behaviour_mut()
                .transfer
                .send_request(&peer, Request::Digest);
            self.entropy.sent(id, peer);
        }
    }

    /// A peer's digest (or its failure): pulls its catalog if it holds versions
    /// this node lacks.
    fn on_digest(&mut self, peer: PeerId, response: &Response) {
        let ours = self.validator.catalog.digest_if_built();
        if self.entropy.should_pull(peer, response, ours) && self.sync_idle() {
            debug!(%peer, "anti-entropy: the peer's catalog differs; pulling it");
            self.start_sync(peer, true);
        }
    }

    /// Starts a policy pull from `peer`, then (with `then_catalog`) a catalog pull.
    fn start_sync(&mut self, peer: PeerId, then_catalog: bool) {
        let state = SyncState::start(peer, self.governance.version(), then_catalog);
        self.send_sync(state);
    }

    fn send_sync(&mut self, state: SyncState) {
        send_step(&mut self.swarm, &mut self.syncing, state);
    }

    /// Whether no sync is under way: no step asked, no page waiting to be offered.
    fn sync_idle(&self) -> bool {
        self.syncing.is_empty() && self.offers.idle()
    }

    /// Whether a catalog page is asked for or waiting to be offered.
    fn catalog_syncing(&self) -> bool {
        !self.offers.idle()
            || self
                .syncing
                .values()
                .any(|s| matches!(s, SyncState::Catalog { .. }))
    }

    /// Takes a sync step's answer: asks the next step, or hands a catalog page to
    /// the worker (asking for the next page meanwhile while few are waiting).
    fn on_sync_response(&mut self, state: SyncState, response: Option<Response>) {
        match sync::advance(state, response, &self.validator) {
            Advance::Ask(next) => {
                if let Some(next) = next {
                    self.send_sync(next);
                }
            }
            Advance::Offer { page, then, early } => {
                let then = match then {
                    Some(next) if early => {
                        self.offers.defer(next);
                        None
                    }
                    then => then,
                };
                match self.offers.submit(*page, then) {
                    None => self.ask_deferred(),
                    Some(offered) => self.on_page_offered(offered),
                }
            }
        }
    }

    /// Asks for the next pages the sync worker has room for.
    fn ask_deferred(&mut self) {
        while let Some(next) = self.offers.ready() {
            self.send_sync(next);
        }
    }

    /// Gossips on what a page taught this node that was announced recently, and
    /// asks its sync's next step.
    fn on_page_offered(&mut self, offered: Offered) {
        // Best effort: with no subscribed peer there is nobody to tell.
        for envelope in offered.spread {
            let _ = self.publish(announce_topic(), envelope);
        }
        if let Some(next) = offered.then {
            self.send_sync(next);
        }
        self.ask_deferred();
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self
            .swarm
            .behaviour_mut()
            .transfer
            .send_response(channel, response);
    }

    /// Sends a finished read; if the peer has gone, releases it now.
    fn on_answer(&mut self, (request_id, channel, response): Answer) {
        let sent = self
            .swarm
            .behaviour_mut()
            .transfer
            .send_response(channel, response);
        if sent.is_err() {
            self.admission.finish(request_id);
        }
    }

    fn on_inbound(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        if !self.admission.admit(peer) {
            self.respond(channel, Response::Busy);
            return;
        }
        match request {
            Request::Catalog { after, limit } => {
                let response = self.provider.catalog_page(after.as_ref(), limit);
                self.respond(channel, response);
            }
            Request::Policies { after, limit } => {
                let response = self.provider.policies_page(after, limit);
                self.respond(channel, response);
            }
            Request::Records { kind, after, limit } => {
                let response = self.provider.records_page(kind, after.as_deref(), limit);
                self.respond(channel, response);
            }
            Request::Digest => {
                let response = self.provider.digest();
                self.respond(channel, response);
            }
            Request::Manifest(_) | Request::Chunk { .. } | Request::Chunks { .. } => {
                if !self.admission.begin_read(peer, request_id) {
                    self.respond(channel, Response::Busy);
                    return;
                }
                let provider = self.provider.clone();
                let tx = self.responses_tx.clone();
                tokio::spawn(async move {
                    let response =
                        tokio::task::spawn_blocking(move || provider.read(&peer, request))
                            .await
                            .unwrap_or(Response::Busy);
                    let _ = tx.send((request_id, channel, response)).await;
                });
            }
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
                    } else if let Some(peer) = self.entropy.answered(request_id) {
                        self.on_digest(peer, &response);
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
                    let unreachable = matches!(
                        error,
                        request_response::OutboundFailure::DialFailure
                            | request_response::OutboundFailure::ConnectionClosed
                    );
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                        unreachable,
                    }));
                } else if let Some(state) = self.syncing.remove(&request_id) {
                    debug!(%peer, "sync request failed: {error}");
                    // A redundant connection closed under the request while the
                    // peer stays connected: the same step is asked again.
                    let closed =
                        matches!(error, request_response::OutboundFailure::ConnectionClosed);
                    if closed && self.swarm.is_connected(&peer) && self.sync_resends.allow(peer) {
                        self.send_sync(state);
                    } else {
                        self.on_sync_response(state, None);
                    }
                } else if self.entropy.answered(request_id).is_some() {
                    debug!(%peer, "digest request failed: {error}");
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                debug!(%peer, "inbound transfer failed: {error}");
                self.admission.finish(request_id);
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.admission.finish(request_id);
            }
        }
    }
}
