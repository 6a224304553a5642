//! The product layer of mesh: what makes files a data product, judged the same way
//! on every node, with no network and no runtime.
//!
//! Map: a domain team writes a [`draft`] (`product.toml`) or imports an [`odcs`]
//! contract into one ([`infer`] drafts a contract from the data); [`quality`] reads the data files against the draft's schema
//! and measures them; a node turns draft, files and measurements into the signed
//! wire `Manifest` of `mesh-protocol`. [`schema_diff`] judges a new version against
//! the previous one ([`changelog`] two contracts, over every schema object), and
//! [`health`] judges a published product's SLA and lineage. [`engine`] is the one
//! SQL engine (DataFusion) that `sql` quality rules run in; it starts a runtime of
//! its own for each query, so nothing else here needs one. [`tables`] reads a
//! product's schema objects as the engine's tables, with the contract's types.
//! `mesh-node` calls all of these; nothing here calls back.

#![deny(missing_docs)]

pub mod changelog;
pub mod draft;
pub mod engine;
pub mod health;
pub mod infer;
pub mod odcs;
pub mod odps;
pub mod quality;
pub mod schema_diff;
pub mod tables;

pub use draft::{ManifestDraft, PublishFacts};
