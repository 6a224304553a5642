//! The handle to the network event loop: the commands it accepts and the
//! cloneable [`NetworkHandle`] that sends them over a bounded channel.

use libp2p::{Multiaddr, PeerId};
use mesh_protocol::wire::{Request, Response};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::error::NetError;

/// A connected peer, as reported by `mesh peers`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PeerInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// The address of one open connection.
    pub address: String,
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
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    AddPeer {
        peer: PeerId,
        addr: Multiaddr,
    },
    GossipUsage {
        envelope: Vec<u8>,
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
}

impl NetworkHandle {
    /// A handle that sends to `tx`, for the node `peer_id`.
    pub(crate) fn new(tx: mpsc::Sender<Command>, peer_id: PeerId) -> Self {
        NetworkHandle { tx, peer_id }
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

    /// Gossips an encoded signed policy on the policy topic.
    pub(crate) async fn publish_policy(&self, envelope: Vec<u8>) -> Result<(), NetError> {
        self.send(Command::PublishPolicy { envelope }).await
    }

    /// Connected peers.
    pub(crate) async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Adds a peer to keep connected to, like a bootstrap peer: dialled now and
    /// redialled whenever the connection is lost.
    pub(crate) async fn add_peer(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NetError> {
        self.send(Command::AddPeer { peer, addr }).await
    }

    /// The addresses the swarm listens on.
    pub(crate) async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }
}
