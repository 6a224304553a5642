//! What can go wrong fetching a product, said so that the user knows whose fault it
//! is: the request, the mesh policy, the providers, or this node's own disk.

use mesh_protocol::ProductRef;

use crate::net::NetError;
use crate::state::{Invalid, StateError};
use crate::task::TaskError;

/// A fetch that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The product (or version) is not in this node's catalog.
    #[error("{0} is not in this node's catalog; list products with `mesh products` (a product announced moments ago may still be on its way)")]
    NotInCatalog(ProductRef),
    /// An in-place fetch was asked for without an output directory.
    #[error(
        "an in-place fetch keeps the product only in its written files: give an output directory"
    )]
    InPlaceNeedsOut,
    /// The mesh policy does not allow this node to fetch it.
    #[error("the mesh policy does not allow this node to fetch it: {0}")]
    Denied(String),
    /// No provider could serve a manifest or chunk; the message lists each one's
    /// answer.
    #[error("{0}")]
    Unavailable(String),
    /// A manifest held locally no longer passes governance.
    #[error("manifest rejected: {0}")]
    Rejected(Invalid),
    /// Writing the output files failed (a full disk, a path that is a directory,
    /// permissions): this node's fault, not the request's.
    #[error("writing the fetched files: {0}")]
    Output(#[from] mesh_storage::assemble::AssembleError),
    /// This node's own state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The network loop failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}

impl From<mesh_storage::ChunkError> for FetchError {
    fn from(e: mesh_storage::ChunkError) -> Self {
        FetchError::State(e.into())
    }
}

impl From<mesh_storage::StoreError> for FetchError {
    fn from(e: mesh_storage::StoreError) -> Self {
        FetchError::State(e.into())
    }
}
