//! The mesh node: a libp2p swarm that gossips signed product announcements, keeps a
//! catalog of the mesh, serves manifests and chunks to peers and fetches them with
//! BLAKE3 verification, under the council-signed governance policy.
//!
//! Map (each folder's `mod.rs` says more):
//! - `home/`: where a node keeps its identity, keys, config and policy seal;
//! - `state/`: local state with no network: catalog, governance, usage, GC;
//! - `net/`: the swarm event loop and its handle, gossip validation, sync, the
//!   transfer protocol (codec, admission, serving);
//! - `ops/`: what users ask for: publish, fetch and its scheduler, discovery,
//!   policy submission, background prefetch and usage reports;
//! - `api/`: the control API's types, server and typed client;
//! - `ports/`: the output ports consumers' tools speak (Flight SQL), behind
//!   consumer tokens;
//! - `node.rs`: the [`Node`] handle over the operations; `daemon.rs`: [`start`]
//!   and ordered shutdown, the one file that wires every part.
//!
//! Dependencies point down: `daemon -> api | ports -> node -> ops -> net -> state
//! -> home`; `net` never names `ops`, `api` or `Node`, and `api` and `ports` never
//! name each other.

#![deny(missing_docs)]

pub mod api;
mod clock;
mod daemon;
mod error;
pub mod fuzzing;
pub mod home;
mod memory;
mod metrics;
mod net;
mod node;
mod ops;
mod ports;
mod state;
mod task;
#[cfg(feature = "test-support")]
pub mod testing;

pub use api::{ApiClient, ClientError};
pub use clock::{unix_now, unix_now_ms};
pub use daemon::{start, RunOptions, RunningNode};
pub use error::{ErrorClass, NodeError};
pub use home::{HomeError, NodeHome};
pub use libp2p::PeerId;
pub use memory::limit_arenas;
pub use net::behaviour::{
    agent_version, ANNOUNCE_TOPIC, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, MAX_GOSSIP_BYTES,
    MAX_PENDING_CONNECTIONS, POLICY_TOPIC, PROVIDERS_TOPIC, USAGE_TOPIC,
};
pub use net::scoring::GRAYLIST_THRESHOLD;
pub use net::NetError;
pub use node::Node;
pub use ops::access::AccessError;
pub use ops::derive::DeriveError;
pub use ops::discover::DiscoverError;
pub use ops::fetch::{FetchError, FetchOptions};
pub use ops::publish::{collect_files, PublishError};
pub use ops::query::{QueryError, QueryRows, Reader};
pub use ops::submit::SubmitError;
pub use ops::subscribe::SubscribeError;
pub use state::derived::{DeriveState, DerivedProduct};
pub use state::governance::{install_genesis, GenesisError};
pub use state::tokens::{ConsumerToken, TokenError, TokenRefused};
pub use state::{Invalid, OfferError, StateError};
pub use task::TaskError;
