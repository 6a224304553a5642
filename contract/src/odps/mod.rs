//! Open Data Product Standard (ODPS, bitol-io/open-data-product-standard) data
//! products in and out, their values kept.
//!
//! [`import`] reads an ODPS document (v0.9.0 to v1.1.0, checked against the
//! official v1.1.0 JSON Schema, shipped in `schemas/`) and drafts a
//! `product.toml` of what mesh itself checks and shows (id, version, status,
//! title, description, owner, tags) that names the document (`odps_file`); at
//! publish the whole document travels signed in the manifest
//! (`Manifest::odps`). [`export`] writes it back as ODPS v1.1.0 with what mesh
//! knows set where the document says nothing, and the ports mesh serves added:
//! the verified file snapshot, Delta Sharing and Flight SQL (where served), each
//! linked to the product's ODCS contract, and an input port per upstream in the
//! lineage. Every value of the imported document is kept: nothing of it is
//! removed or changed but `apiVersion` (the export's) and ports mesh itself
//! wrote at an earlier export.
//!
//! Files: `document.rs` (reading and checking a document against the standard),
//! `import.rs` (document to draft), `export.rs` (manifest to document).

mod document;
mod export;
mod import;

pub use document::{document, problems, to_yaml, OdpsError, EXPORT_API_VERSION};
pub use export::{export, InputLink, Served};
pub use import::{import, ImportedProduct};
