//! The swarm event loop and its handle.
//!
//! [`EventLoop`] owns the `Swarm` and is the only code that touches it; the rest of the
//! node talks to it through [`NetworkHandle`], a cloneable wrapper around a bounded
//! command channel whose commands carry `oneshot` reply senders. Outbound requests
//! wait in a map keyed by request id. Inbound chunk reads run on blocking threads
//! under a semaphore and hand their responses back through a bounded channel.
//!
//! Gossip: every announcement is validated by [`Catalog::offer`] before gossipsub may
//! forward it (Accept / Ignore / Reject feeds peer scoring). Catalog sync: on every
//! new connection the node pages through the peer's catalog, so a node that joins
//! late still learns every product.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, PublishError};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, kad, Multiaddr, PeerId, Swarm};
use mesh_protocol::wire::{Request, Response, MAX_CATALOG_PAGE};
use mesh_protocol::{Announcement, Signed};
use mesh_storage::{ChunkError, Tree};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::behaviour::{announce_topic, MeshBehaviour, MeshBehaviourEvent};
use crate::catalog::Offer;
use crate::node::Shared;

/// Capacity of the command channel.
const COMMAND_CAPACITY: usize = 256;
/// Inbound chunk reads in flight at once, across all peers.
const MAX_INBOUND_READS: usize = 32;
/// Announcements kept for retry while no peer is subscribed.
const MAX_PENDING_ANNOUNCEMENTS: usize = 1024;
/// How often bootstrap peers are redialled and pending announcements retried.
const TICK: Duration = Duration::from_secs(2);

type CatalogCursor = (mesh_protocol::ProductId, semver::Version);

/// Catalog pages fetched from one peer per connection, at most (256 entries each).
const MAX_SYNC_PAGES: u32 = 4096;

/// A connected peer, as reported by `mesh peers`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PeerInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// The address of one open connection.
    pub address: String,
    /// The peer's domain per the policy's registry, if registered.
    pub domain: Option<String>,
}

enum Command {
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, String>>,
    },
    Announce {
        envelope: Vec<u8>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
}

/// A cloneable handle to the event loop.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
}

const STOPPED: &str = "the node's network loop has stopped (is the node shutting down?)";

impl NetworkHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Sends a transfer request and waits for the response.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Request {
                peer,
                request,
                reply,
            })
            .await
            .map_err(|_| STOPPED.to_string())?;
        rx.await.map_err(|_| STOPPED.to_string())?
    }

    /// Gossips an encoded signed announcement (retried until a peer is subscribed).
    pub async fn announce(&self, envelope: Vec<u8>) -> Result<(), String> {
        self.tx
            .send(Command::Announce { envelope })
            .await
            .map_err(|_| STOPPED.to_string())
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Peers { reply })
            .await
            .map_err(|_| STOPPED.to_string())?;
        rx.await.map_err(|_| STOPPED.to_string())
    }

    /// The addresses the swarm listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::ListenAddrs { reply })
            .await
            .map_err(|_| STOPPED.to_string())?;
        rx.await.map_err(|_| STOPPED.to_string())
    }
}

/// The loop that owns the swarm.
pub struct EventLoop {
    swarm: Swarm<MeshBehaviour>,
    commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, String>>>,
    /// Catalog sync requests in flight: peer, pages so far, and the cursor sent.
    syncing: HashMap<OutboundRequestId, (PeerId, u32, Option<CatalogCursor>)>,
    responses_tx: mpsc::Sender<(ResponseChannel<Response>, Response)>,
    responses_rx: mpsc::Receiver<(ResponseChannel<Response>, Response)>,
    inbound_reads: Arc<Semaphore>,
    pending_announcements: VecDeque<Vec<u8>>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
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
            shared,
            pending: HashMap::new(),
            syncing: HashMap::new(),
            responses_tx,
            responses_rx,
            inbound_reads: Arc::new(Semaphore::new(MAX_INBOUND_READS)),
            pending_announcements: VecDeque::new(),
            bootstrap,
            connections: HashMap::new(),
            ticks: 0,
            shutdown,
        };
        (this, handle)
    }

    /// Runs until shutdown is requested or every handle is dropped.
    pub async fn run(mut self) {
        for (peer, addr) in self.bootstrap.clone() {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
            if let Err(e) = self.swarm.dial(addr.clone()) {
                warn!(%peer, %addr, "dialing bootstrap peer: {e}");
            }
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
                Some((channel, response)) = self.responses_rx.recv() => {
                    let _ = self.swarm.behaviour_mut().transfer.send_response(channel, response);
                }
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
            Command::Announce { envelope } => {
                if !self.publish(envelope.clone()) {
                    if self.pending_announcements.len() >= MAX_PENDING_ANNOUNCEMENTS {
                        self.pending_announcements.pop_front();
                    }
                    self.pending_announcements.push_back(envelope);
                }
            }
            Command::Peers { reply } => {
                let policy = self.shared.governance.policy();
                let peers = self
                    .connections
                    .iter()
                    .map(|(peer, addr)| PeerInfo {
                        peer_id: peer.to_string(),
                        address: addr.to_string(),
                        domain: policy
                            .domain_of_node(&peer.to_string())
                            .map(|d| d.to_string()),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
        }
    }

    /// Publishes on gossip; false when it should be retried later.
    fn publish(&mut self, envelope: Vec<u8>) -> bool {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(announce_topic(), envelope)
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
        let retry: Vec<_> = self.pending_announcements.drain(..).collect();
        for envelope in retry {
            if !self.publish(envelope.clone()) {
                self.pending_announcements.push_back(envelope);
            }
        }
        if self.ticks % 15 == 1 && !self.connections.is_empty() {
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
                    debug!(peer = %peer_id, "connected; starting catalog sync");
                    self.request_catalog_page(peer_id, 0, None);
                    if self.connections.len() == 1 {
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
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs.into_iter().take(16) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(MeshBehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Transfer(event)) => self.on_transfer(event),
            SwarmEvent::Behaviour(MeshBehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer,
                ..
            })) if !self.swarm.is_connected(&peer) && self.connections.len() < 64 => {
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
                let acceptance = if message.topic != announce_topic().hash() {
                    MessageAcceptance::Ignore
                } else {
                    match self.shared.catalog.offer(&message.data) {
                        Ok(Offer::New) => {
                            info!(peer = %propagation_source, "new product version from gossip");
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
            gossipsub::Event::Subscribed { .. } if !self.pending_announcements.is_empty() => {
                self.on_tick();
            }
            _ => {}
        }
    }

    fn on_transfer(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_inbound(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    } else if let Some((peer, pages, cursor)) = self.syncing.remove(&request_id) {
                        self.on_catalog_page(peer, pages, cursor, response);
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
                } else if self.syncing.remove(&request_id).is_some() {
                    debug!(%peer, "catalog sync failed: {error}");
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, "inbound transfer failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self
            .swarm
            .behaviour_mut()
            .transfer
            .send_response(channel, response);
    }

    fn on_inbound(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        match request {
            Request::Catalog { after, limit } => {
                let limit = usize::from(limit.clamp(1, MAX_CATALOG_PAGE));
                let response = match self.shared.catalog.page(after.as_ref(), limit) {
                    Ok((entries, more)) => Response::Catalog { entries, more },
                    Err(e) => {
                        warn!("serving catalog page: {e}");
                        Response::Busy
                    }
                };
                self.respond(channel, response);
            }
            Request::Manifest(hash) => {
                let response = match self.shared.store.get(Tree::Manifests, hash.as_bytes()) {
                    Ok(Some(bytes)) => Response::Manifest(bytes),
                    Ok(None) => Response::NotFound,
                    Err(e) => {
                        warn!("serving manifest: {e}");
                        Response::Busy
                    }
                };
                self.respond(channel, response);
            }
            Request::Chunk(hash) => {
                let Ok(permit) = self.inbound_reads.clone().try_acquire_owned() else {
                    self.respond(channel, Response::Busy);
                    return;
                };
                let shared = self.shared.clone();
                let tx = self.responses_tx.clone();
                tokio::spawn(async move {
                    let read = tokio::task::spawn_blocking(move || {
                        let r = shared.chunks.get_verified(
                            &hash,
                            u64::from(mesh_protocol::manifest::MAX_CHUNK_LEN),
                        );
                        if let Err(ChunkError::Corrupt { .. }) = &r {
                            warn!(%peer, chunk = %hash, "stored chunk is corrupt; removing it and not serving it");
                            let _ = std::fs::remove_file(shared.chunks.path_of(&hash));
                        }
                        r
                    })
                    .await;
                    let response = match read {
                        Ok(Ok(data)) => Response::Chunk(data),
                        Ok(Err(ChunkError::Missing(_) | ChunkError::Corrupt { .. })) => {
                            Response::NotFound
                        }
                        _ => Response::Busy,
                    };
                    let _ = tx.send((channel, response)).await;
                    drop(permit);
                });
            }
        }
    }

    fn request_catalog_page(&mut self, peer: PeerId, pages: u32, after: Option<CatalogCursor>) {
        let id = self.swarm.behaviour_mut().transfer.send_request(
            &peer,
            Request::Catalog {
                after: after.clone(),
                limit: MAX_CATALOG_PAGE,
            },
        );
        self.syncing.insert(id, (peer, pages, after));
    }

    fn on_catalog_page(
        &mut self,
        peer: PeerId,
        pages: u32,
        cursor: Option<CatalogCursor>,
        response: Response,
    ) {
        let Response::Catalog { entries, more } = response else {
            debug!(%peer, "catalog sync: unexpected response");
            return;
        };
        let mut new = 0usize;
        let mut rejected = 0usize;
        let mut last = None;
        let mut seen = HashSet::new();
        for bytes in entries.iter().take(usize::from(MAX_CATALOG_PAGE)) {
            if !seen.insert(blake3::hash(bytes)) {
                continue;
            }
            match self.shared.catalog.offer(bytes) {
                Ok(Offer::New) => new += 1,
                Ok(_) => {}
                Err(rejection) => {
                    rejected += 1;
                    debug!(%peer, "catalog sync: rejected entry: {rejection}");
                }
            }
            if let Ok(a) = Signed::<Announcement>::from_bytes(bytes).and_then(|s| s.value()) {
                last = Some((a.product, a.version));
            }
        }
        if rejected > 0 {
            warn!(%peer, rejected, "catalog sync: peer sent entries that failed verification");
        }
        if new > 0 {
            info!(%peer, new, "catalog sync: learned product versions");
        }
        // Continue only while the peer's cursor moves forward and within the page
        // budget, so a hostile peer cannot keep us paging forever.
        let progressed = match (&last, &cursor) {
            (Some(l), Some(c)) => l > c,
            (Some(_), None) => true,
            _ => false,
        };
        if more && progressed && pages + 1 < MAX_SYNC_PAGES {
            self.request_catalog_page(peer, pages + 1, last);
        }
    }
}
