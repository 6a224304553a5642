//! The `/mesh/transfer/1` protocol: manifests, chunk batches and catalog and policy
//! pages, one request and one response per stream.
//!
//! Map: [`codec`] frames and caps every message, reading chunks into [`buffers`]
//! handed back after use; [`admission`] decides whether a peer's request may run
//! now (rate, slots); [`serve`] answers it under the fetch rules, reading chunks
//! from the store and checking them against their recorded CRC-32.

pub(crate) mod admission;
pub(crate) mod buffers;
pub(crate) mod codec;
pub(crate) mod serve;
