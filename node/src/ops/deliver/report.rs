//! What a delivery into object storage did (in a fetch's outcome).

use serde::{Deserialize, Serialize};

/// What a delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// `s3://bucket/prefix`.
    pub url: String,
    /// Where the version's files are (`s3://bucket/prefix/VERSION`).
    pub version_url: String,
    /// Files of the version.
    pub files: usize,
    /// Files uploaded, and their bytes.
    pub uploaded_files: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Files copied server-side from the previous version, and their bytes.
    pub copied_files: usize,
    /// Bytes copied server-side.
    pub copied_bytes: u64,
    /// Files already delivered by an interrupted run, left as they were.
    pub resumed_files: usize,
    /// The version was already current there: nothing was written.
    pub already_current: bool,
    /// Older versions removed (beyond the versions kept).
    pub pruned: Vec<String>,
}
