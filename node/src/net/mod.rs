//! The network layer: one event loop that owns the libp2p swarm, and the cloneable
//! handle the rest of the node talks to it through.
//!
//! Map: [`behaviour`] builds the swarm (transports, identify, kademlia, gossipsub with
//! [`scoring`], the transfer protocol); `event_loop` runs it, handing gossip to
//! `gossip` (validation against the catalog, governance and usage ledger), new
//! connections to `sync` (policy, then catalog pull), and inbound requests to
//! [`transfer`] (admission under [`limits`], then `serve`). Commands arrive through
//! [`handle`]. This layer receives the state handles it needs (`state::*`) and never
//! names the operations or the API above it.

pub(crate) mod addr;
pub(crate) mod behaviour;
mod entropy;
mod error;
mod event_loop;
mod gossip;
pub(crate) mod handle;
mod handles;
pub(crate) mod limits;
pub(crate) mod peers;
pub(crate) mod reach;
pub(crate) mod scoring;
mod sync;
mod tls;
pub(crate) mod transfer;

pub use error::NetError;
pub(crate) use event_loop::EventLoop;
pub use handle::PeerInfo;
pub(crate) use handle::{ConnectionKind, NetworkHandle};
pub(crate) use handles::StateHandles;
pub use reach::ReachabilityView;
