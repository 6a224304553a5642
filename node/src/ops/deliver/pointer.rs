//! The `current` object of a delivery prefix: which version is complete and whole,
//! and what each of its files is, so that the next version copies unchanged files
//! server-side instead of uploading them again.
//!
//! ```text
//! s3://bucket/prefix/
//!   1.4.0/...           a version's files, under its own prefix
//!   1.5.0/...
//!   current             {"product": ..., "version": "1.5.0", "files": [...], ...}
//! ```
//!
//! A reader reads `current` first, then the files under `prefix/VERSION/`: the
//! object names a version only once every file of it is in place, and it is
//! replaced by a conditional put (`If-Match` the ETag read before the version was
//! delivered; `If-None-Match: *` for the first), so two deliveries racing into one
//! prefix never silently overwrite each other.

use serde::{Deserialize, Serialize};

/// The key of the pointer under a delivery prefix.
pub(crate) const CURRENT: &str = "current";
/// The largest pointer read (a manifest of many files is large, but bounded).
pub(crate) const MAX_POINTER: u64 = 64 << 20;

/// The document `current` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pointer {
    /// `domain/name`: the product this prefix follows.
    pub(crate) product: String,
    /// The complete version, also the prefix of its files.
    pub(crate) version: String,
    /// Its manifest hash.
    pub(crate) manifest: String,
    /// When it became current (unix ms).
    pub(crate) delivered_at_ms: u64,
    /// The versions delivered here, oldest first (the newest is `version`).
    pub(crate) versions: Vec<String>,
    /// The version's files.
    pub(crate) files: Vec<PointerFile>,
}

/// One file of the current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PointerFile {
    /// Its path in the product (and under `prefix/VERSION/`).
    pub(crate) path: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// What its bytes are: BLAKE3 over its size and chunk hashes.
    pub(crate) digest: String,
}
