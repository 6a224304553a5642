//! What can go wrong listing or judging the catalog.

use mesh_protocol::ProductId;

use crate::net::NetError;
use crate::state::StateError;
use crate::task::TaskError;

/// Listing or judging the catalog failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The product asked about is not in the catalog.
    #[error("{0} is not in the catalog; see `mesh products`")]
    NotInCatalog(ProductId),
    /// This node's state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The network loop failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}
