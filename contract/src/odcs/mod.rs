//! Open Data Contract Standard (ODCS) v3 contracts in and out, losslessly.
//!
//! [`import`] reads a contract (v3.0.x or v3.1.0) and makes two things of it:
//! - the whole document, kept as the manifest's [`Contract`] so it travels signed
//!   with the version and every node exports the same contract;
//! - a [`ManifestDraft`] of what mesh itself checks and shows: the product id
//!   (`domain`, or the publishing node's domain, and `dataProduct`, `name` or `id`),
//!   title, version, status, description, owner, tags, the first schema object's
//!   columns and the SLA properties mesh understands.
//!
//! What mesh keeps but does not check is listed in [`Imported::notes`], never
//! dropped. [`export`] writes the kept document back with `version` set and
//! `apiVersion` as declared (only a missing `domain` is added), or, for a product
//! published from `product.toml`, a v3.1.0 contract made from the manifest.
//!
//! [`lint`] lists a contract's problems with their field paths, against the
//! official schema of its version ([`standard`]); [`to_v3_1`] converts a v3.0.x
//! contract to v3.1.0 when asked.
//!
//! Files: `import.rs` (contract to draft), `export.rs` (manifest to contract),
//! `lint.rs` (problems before publish), `document.rs` (the contract as the JSON
//! document ODCS defines, its constants and shared readers), `standard.rs` (the official JSON
//! Schemas, in `schemas/`), `convert.rs` (v3.0.x to v3.1.0).

mod convert;
mod document;
mod export;
mod import;
mod lint;
mod standard;

pub use convert::{to_v3_1, Converted};
pub(crate) use document::classification;
pub use document::{
    document, Imported, OdcsError, API_VERSIONS, CUSTOM_CLASSIFICATION, CUSTOM_CONSUMERS,
    CUSTOM_LINEAGE, EXPORT_API_VERSION,
};
pub use export::{export, export_value};
pub use import::import;
pub use lint::{lint, Lint};
pub use mesh_protocol::manifest::{Contract, MAX_CONTRACT_BYTES};
