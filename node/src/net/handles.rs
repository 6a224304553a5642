//! The state handles the network layer receives from the daemon: what it judges
//! gossip against and serves from.

use std::sync::Arc;

use mesh_storage::ChunkStore;

use crate::metrics::Metrics;
use crate::state::access::AccessBook;
use crate::state::catalog::Catalog;
use crate::state::governance::{Governance, OwnNode};
use crate::state::providers::Providers;
use crate::state::usage::UsageLedger;

/// The state the network layer judges gossip against and serves from.
#[derive(Debug, Clone)]
pub(crate) struct StateHandles {
    pub(crate) catalog: Catalog,
    pub(crate) governance: Governance,
    pub(crate) usage: UsageLedger,
    pub(crate) providers: Providers,
    pub(crate) access: AccessBook,
    pub(crate) chunks: Arc<ChunkStore>,
    pub(crate) metrics: Metrics,
    /// This node, as the rules see it: it serves only copies it may read itself.
    pub(crate) own: OwnNode,
}
