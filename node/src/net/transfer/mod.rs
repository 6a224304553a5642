//! The `/mesh/transfer/1` protocol: manifests, chunk batches and catalog and policy
//! pages, one request and one response per stream.
//!
//! Map: [`codec`] frames and caps every message; [`admission`] decides whether a
//! peer's request may run now (rate, slots); [`serve`] answers it under the fetch
//! rules, reading and re-verifying chunks from the store.

pub(crate) mod admission;
pub(crate) mod codec;
pub(crate) mod serve;
