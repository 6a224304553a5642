//! The handle to the network event loop: the commands it accepts and the
//! cloneable [`NetworkHandle`] that sends them over a bounded channel.

use libp2p::{Multiaddr, PeerId};
use mesh_protocol::wire::{Request, Response};
use serde::Serialize;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::error::NetError;
use super::reach::ReachabilityView;

/// How a connected peer is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionKind {
    /// At least one connection goes straight to the peer.
    Direct,
    /// Every connection goes through a relay.
    Relayed,
}

impl ConnectionKind {
    /// As `mesh peers` names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ConnectionKind::Direct => "direct",
            ConnectionKind::Relayed => "relayed",
        }
    }
}

/// A connected peer, as reported by `mesh peers`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PeerInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// The remote address of its best open connection (direct before relayed, QUIC
    /// before TCP); for an inbound connection this is the peer's ephemeral port.
    pub address: String,
    /// `direct`, or `relayed` when every connection goes through a relay.
    #[serde(default)]
    pub connection: String,
    /// `quic` or `tcp`: the transport of that connection.
    #[serde(default)]
    pub transport: String,
    /// Open connections to the peer.
    #[serde(default)]
    pub connections: usize,
    /// The addresses the peer says it listens on (from identify): the ones to dial.
    #[serde(default)]
    pub listen_addrs: Vec<String>,
    /// The peer's agent (e.g. `mesh/0.1.0`), from identify.
    #[serde(default)]
    pub agent: Option<String>,
    /// The peer's domain per the policy's registry, if registered.
    pub domain: Option<String>,
    /// The peer's gossipsub score (see `net::scoring`); absent for a peer that has
    /// not spoken gossipsub yet.
    #[serde(default)]
    pub score: Option<f64>,
    /// Whether the score is below the graylist threshold: everything the peer gossips
    /// is dropped unread.
    #[serde(default)]
    pub graylisted: bool,
}

pub(crate) enum Command {
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, NetError>>,
    },
    Announce {
        envelope: Vec<u8>,
    },
    PublishPolicy {
        envelope: Vec<u8>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Connected {
        reply: oneshot::Sender<Vec<(PeerId, ConnectionKind)>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    AdvertisedAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Reachability {
        reply: oneshot::Sender<ReachabilityView>,
    },
    AddPeer {
        peer: PeerId,
        addr: Multiaddr,
    },
    GossipUsage {
        envelope: Vec<u8>,
    },
    /// An access request (`decision` false) or decision.
    GossipAccess {
        decision: bool,
        envelope: Vec<u8>,
    },
    GossipProviders {
        envelope: Vec<u8>,
    },
    LearnAddrs {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    Penalize {
        peer: PeerId,
    },
}

/// A cloneable handle to the event loop.
#[derive(Debug, Clone)]
pub(crate) struct NetworkHandle {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    /// Signalled when this node's listen or external addresses change.
    addrs_changed: Arc<Notify>,
    /// Whether a catalog sync is under way (pages asked for or being offered).
    catalog_syncing: watch::Receiver<bool>,
}

impl NetworkHandle {
    /// A handle that sends to `tx`, for the node `peer_id`.
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        peer_id: PeerId,
        addrs_changed: Arc<Notify>,
        catalog_syncing: watch::Receiver<bool>,
    ) -> Self {
        NetworkHandle {
            tx,
            peer_id,
            addrs_changed,
            catalog_syncing,
        }
    }

    /// Waits until no catalog sync is under way (at once when none is): work that
    /// can wait, such as prefetching manifests, yields the cores to a catch-up.
    pub(crate) async fn catalog_synced(&self) {
        let mut syncing = self.catalog_syncing.clone();
        // An error: the loop is gone, and nothing syncs any more.
        let _ = syncing.wait_for(|busy| !busy).await;
    }

    /// Waits until this node's listen or external addresses change.
    pub(crate) async fn addrs_changed(&self) {
        self.addrs_changed.notified().await;
    }

    /// How this node is reached: AutoNAT's verdict, relay slots, hole punches.
    pub(crate) async fn reachability(&self) -> Result<ReachabilityView, NetError> {
        self.ask(|reply| Command::Reachability { reply }).await
    }

    /// This node's peer id.
    pub(crate) fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Hands `command` to the event loop.
    async fn send(&self, command: Command) -> Result<(), NetError> {
        self.tx.send(command).await.map_err(|_| NetError::Stopped)
    }

    /// Sends the command `make` builds around a reply channel and waits for the reply.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Sends a transfer request and waits for the response.
    pub(crate) async fn request(
        &self,
        peer: PeerId,
        request: Request,
    ) -> Result<Response, NetError> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Gossips an encoded signed announcement (retried until a peer is subscribed).
    pub(crate) async fn announce(&self, envelope: Vec<u8>) -> Result<(), NetError> {
        self.send(Command::Announce { envelope }).await
    }

    /// Lowers `peer`'s gossip score by [`super::scoring::CORRUPT_DATA_PENALTY`]: it
    /// sent chunks that fail verification.
    pub(crate) async fn penalize_corrupt_data(&self, peer: PeerId) -> Result<(), NetError> {
        self.send(Command::Penalize { peer }).await
    }

    /// Gossips an encoded signed usage report.
    pub(crate) async fn gossip_usage(&self, envelope: Vec<u8>) -> Result<(), NetError> {
        self.send(Command::GossipUsage { envelope }).await
    }

    /// Gossips an encoded signed access request, or with `decision` an access
    /// decision.
    pub(crate) async fn gossip_access(
        &self,
        decision: bool,
        envelope: Vec<u8>,
    ) -> Result<(), NetError> {
        self.send(Command::GossipAccess { decision, envelope })
            .await
    }

    /// Gossips an encoded signed provider record.
    pub(crate) async fn gossip_providers(&self, envelope: Vec<u8>) -> Result<(), NetError> {
        self.send(Command::GossipProviders { envelope }).await
    }

    /// Tells the swarm where `peer` says it can be dialled (from its provider
    /// record), so a request to it can connect. Ignored without discovery: a node
    /// told to keep to its configured links dials nothing it learns from others.
    pub(crate) async fn learn_addrs(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    ) -> Result<(), NetError> {
        self.send(Command::LearnAddrs { peer, addrs }).await
    }

    /// Gossips an encoded signed policy on the policy topic.
    pub(crate) async fn publish_policy(&self, envelope: Vec<u8>) -> Result<(), NetError> {
        self.send(Command::PublishPolicy { envelope }).await
    }

    /// Connected peers, as `mesh peers` shows them.
    pub(crate) async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Connected peers, and how each is reached.
    pub(crate) async fn connected(&self) -> Result<Vec<(PeerId, ConnectionKind)>, NetError> {
        self.ask(|reply| Command::Connected { reply }).await
    }

    /// Adds a peer to keep connected to, like a bootstrap peer: dialled now and
    /// redialled whenever the connection is lost.
    pub(crate) async fn add_peer(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.send(Command::AddPeer { peer, addr }).await
    }

    /// The addresses others can dial this node at: external addresses (configured, or
    /// confirmed by peers), then listen addresses that name an interface.
    pub(crate) async fn advertised_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::AdvertisedAddrs { reply }).await
    }

    /// The addresses the swarm listens on.
    pub(crate) async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }
}
