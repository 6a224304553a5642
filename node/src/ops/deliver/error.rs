//! Why a delivery into object storage failed.

use mesh_storage::objects::ObjectError;
use mesh_storage::ChunkError;

use crate::state::StateError;
use crate::task::TaskError;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The store refused or failed (the message names endpoint and bucket).
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The prefix holds another product's deliveries.
    #[error("{url} already holds deliveries of {other} (its `current` says so); deliver {product} to another prefix")]
    NotOurs {
        /// The prefix.
        url: String,
        /// The product found there.
        other: String,
        /// The product being delivered.
        product: String,
    },
    /// `current` is not a pointer this node wrote.
    #[error("{url}/current is not a mesh delivery pointer ({why}); deliver to an empty prefix, or remove that object")]
    BadPointer {
        /// The prefix.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A chunk of the version could not be read from the store.
    #[error("reading the version from the chunk store: {0}; run `mesh verify` and fetch again")]
    Chunk(#[from] ChunkError),
    /// The journal failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A part of an upload was lost (a bug).
    #[error("a multipart upload finished with a part missing; run the delivery again")]
    Incomplete,
    /// A blocking task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}
