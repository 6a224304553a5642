//! The mesh node: a libp2p swarm that gossips signed product announcements, keeps a
//! catalog of the mesh, serves manifests and chunks to peers and fetches them with
//! BLAKE3 verification, under the council-signed governance policy.
//!
//! Map: [`home`] and [`config`] locate and configure a node; [`node::start`] opens
//! the stores and spawns the [`network`] event loop (which owns the swarm built in
//! [`behaviour`], speaks [`codec`] on the transfer protocol, and feeds the
//! [`catalog`] under [`governance`]) and the control [`api`]. [`publish`] and
//! [`fetch`] are the two data paths; [`client`] is the API's blocking client.

#![deny(missing_docs)]

pub mod api;
mod behaviour;
pub mod catalog;
pub mod client;
pub mod codec;
pub mod config;
pub mod fetch;
pub mod fuzzing;
pub mod gc;
pub mod governance;
pub mod health;
pub mod home;
pub mod keyfile;
pub mod limits;
pub mod network;
pub mod node;
pub mod policy_file;
pub mod publish;
pub mod quality;
pub mod scoring;
pub mod seal;
mod serve;
mod sync;
pub mod usage;

use std::path::Path;

pub use behaviour::{
    ANNOUNCE_TOPIC, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, MAX_GOSSIP_BYTES,
    MAX_PENDING_CONNECTIONS, POLICY_TOPIC, USAGE_TOPIC,
};
pub use client::ApiClient;
pub use home::NodeHome;
pub use libp2p::PeerId;
pub use node::{start, Node, RunOptions, RunningNode};

/// Any failure of a node operation, phrased for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The request or the setup is wrong; the message says how to fix it.
    #[error("{0}")]
    Usage(String),
    /// A manifest draft has missing or invalid fields.
    #[error("invalid manifest: {}", .0.join("; "))]
    InvalidManifest(Vec<String>),
    /// The data breaks the contract its manifest declares (and the policy refuses
    /// such publishes).
    #[error("the data breaks its contract:\n  {}", .0.join("\n  "))]
    Quality(Vec<String>),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The policy refuses it.
    #[error("{0}")]
    Rejected(String),
    /// No peer could provide it.
    #[error("{0}")]
    Unavailable(String),
    /// No genesis policy is installed in the home.
    #[error("no genesis policy installed: run `mesh init --home HOME --genesis FILE`")]
    NoGenesis,
    /// Local data failed verification.
    #[error("corrupt local data: {0}")]
    Corrupt(String),
    /// The network layer failed.
    #[error("network: {0}")]
    Network(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: std::path::PathBuf,
        /// What.
        source: std::io::Error,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] mesh_storage::StoreError),
    /// The chunk store failed.
    #[error(transparent)]
    Chunk(#[from] mesh_storage::ChunkError),
}

impl NodeError {
    /// An I/O error mapper for `path`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
        move |source| NodeError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
