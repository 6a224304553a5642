//! The handle to the network event loop: the commands it accepts and the
//! cloneable [`NetworkHandle`] that sends them over a bounded channel.

use libp2p::{Multiaddr, PeerId};
use mesh_protocol::wire::{Request, Response};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// A connected peer, as reported by `mesh peers`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PeerInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// The address of one open connection.
    pub address: String,
    /// The peer's domain per the policy's registry, if registered.
    pub domain: Option<String>,
    /// The peer's gossipsub score (see [`crate::scoring`]); absent for a peer that has
    /// not spoken gossipsub yet.
    #[serde(default)]
    pub score: Option<f64>,
    /// Whether the score is below the graylist threshold: everything the peer gossips
    /// is dropped unread.
    #[serde(default)]
    pub graylisted: bool,
}

pub(super) enum Command {
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, String>>,
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
pub struct NetworkHandle {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) peer_id: PeerId,
}

const STOPPED: &str = "the node's network loop has stopped (is the node shutting down?)";

impl NetworkHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Hands `command` to the event loop.
    async fn send(&self, command: Command) -> Result<(), String> {
        self.tx.send(command).await.map_err(|_| STOPPED.to_string())
    }

    /// Sends the command `make` builds around a reply channel and waits for the reply.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, String> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| STOPPED.to_string())
    }

    /// Sends a transfer request and waits for the response.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, String> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Gossips an encoded signed announcement (retried until a peer is subscribed).
    pub async fn announce(&self, envelope: Vec<u8>) -> Result<(), String> {
        self.send(Command::Announce { envelope }).await
    }

    /// Lowers `peer`'s gossip score by [`crate::scoring::CORRUPT_DATA_PENALTY`]: it
    /// sent chunks that fail verification.
    pub async fn penalize_corrupt_data(&self, peer: PeerId) -> Result<(), String> {
        self.send(Command::Penalize { peer }).await
    }

    /// Gossips an encoded signed usage report.
    pub async fn gossip_usage(&self, envelope: Vec<u8>) -> Result<(), String> {
        self.send(Command::GossipUsage { envelope }).await
    }

    /// Gossips an encoded signed policy on the policy topic.
    pub async fn publish_policy(&self, envelope: Vec<u8>) -> Result<(), String> {
        self.send(Command::PublishPolicy { envelope }).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, String> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Adds a peer to keep connected to, like a bootstrap peer: dialled now and
    /// redialled whenever the connection is lost.
    pub async fn add_peer(&self, peer: PeerId, addr: Multiaddr) -> Result<(), String> {
        self.send(Command::AddPeer { peer, addr }).await
    }

    /// The addresses the swarm listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, String> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }
}
