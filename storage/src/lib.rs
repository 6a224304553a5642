//! Persistence for a mesh node: a metadata store behind our own [`MetaStore`]
//! interface (sled today), a content-addressed [`ChunkStore`], content-defined
//! chunking of product files ([`chunker`]) and their verified reassembly
//! ([`assemble`]).
//!
//! Writes that the node acknowledges are durable: chunks are appended to pack files
//! and synced, and callers flush the metadata store before they reply.

#![deny(missing_docs)]

pub mod assemble;
pub mod chunker;
pub mod chunks;
pub mod dir_packs;
mod faults;
pub mod meta;
pub mod objects;
mod pack;
pub mod seam;
mod sys;

pub use chunks::{ChunkError, ChunkLocation, ChunkStore};
pub use dir_packs::DirPacks;
#[cfg(feature = "faults")]
pub use faults::Faults;
pub use meta::{MemStore, MetaStore, SledStore, StoreError, StoreErrorKind, Tree};
pub use seam::{RemoteError, RemoteSource};
