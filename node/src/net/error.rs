//! What can go wrong in the network layer.

use libp2p::{Multiaddr, PeerId};

/// A network operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The event loop has ended: the node is shutting down.
    #[error("the node's network loop has stopped (is the node shutting down?)")]
    Stopped,
    /// A request to a peer failed (timeout, refused stream, dropped connection).
    #[error("peer {peer}: {reason}")]
    Request {
        /// The peer asked.
        peer: PeerId,
        /// What libp2p reported.
        reason: String,
        /// The peer could not be reached at all (the dial failed or the connection
        /// closed before the answer): worth asking again after a pause, unlike a
        /// timeout or a refused protocol.
        unreachable: bool,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The swarm reported no listen address in time.
    #[error("the swarm reported no listen address within 10 s; check --listen")]
    NoListenAddress,
    /// The swarm could not be built (transport or behaviour setup).
    #[error("setting up the network: {0}")]
    Setup(String),
}

impl NetError {
    /// Whether the request failed because the peer could not be reached (see
    /// [`NetError::Request`]'s `unreachable`).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(
            self,
            NetError::Request {
                unreachable: true,
                ..
            }
        )
    }
}
