//! What a fetch reports: [`FetchEvent`]s while it runs (streamed to the CLI as JSON
//! lines) and the [`FetchOutcome`] at the end.

use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::state::governance::Violation;

/// Progress of a fetch, streamed to the CLI as JSON lines.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FetchEvent {
    /// The manifest is verified; chunk download starts.
    Resolved {
        /// `domain/name@version`.
        product: String,
        /// Manifest hash.
        manifest: String,
        /// Total product bytes.
        total_bytes: u64,
        /// Bytes this node must download.
        missing_bytes: u64,
        /// Providers that will be asked.
        providers: usize,
    },
    /// Chunks arrived.
    Progress {
        /// Product bytes held so far.
        done_bytes: u64,
        /// Total product bytes.
        total_bytes: u64,
    },
    /// The version's files are going into object storage.
    Delivering {
        /// Bytes in place there so far.
        done_bytes: u64,
        /// Total product bytes.
        total_bytes: u64,
    },
    /// The fetch finished.
    Done(FetchOutcome),
    /// The fetch failed.
    Error {
        /// What went wrong and what to do.
        message: String,
        /// Whose fault it is (`ErrorClass::kind`: `not_found`, `rejected`,
        /// `unavailable`, `internal`, ...).
        #[serde(default)]
        kind: String,
    },
}

/// The result of a completed fetch.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FetchOutcome {
    /// `domain/name`.
    pub product: String,
    /// Version.
    pub version: String,
    /// Manifest hash.
    pub manifest: String,
    /// Number of files.
    pub files: usize,
    /// Total product bytes.
    pub size: u64,
    /// Bytes downloaded from peers in this fetch.
    pub transferred_bytes: u64,
    /// Bytes of the written files that came from an earlier version this node had
    /// written out (cloned or copied in the kernel, not written again).
    #[serde(default)]
    pub reused_bytes: u64,
    /// Files cloned copy-on-write from an earlier version (XFS, btrfs).
    #[serde(default)]
    pub cloned_files: u64,
    /// Every chunk verified against its BLAKE3 hash.
    pub verified: bool,
    /// The store records the chunks as ranges of the written files instead of
    /// holding a second copy (an in-place fetch of at most 256 files).
    #[serde(default)]
    pub in_place: bool,
    /// Where the files were written, if anywhere.
    pub out: Option<PathBuf>,
    /// What was delivered into object storage (`-o s3://...`).
    #[serde(default)]
    pub delivered: Option<Box<crate::ops::deliver::report::DeliveryReport>>,
    /// Peers that served chunks.
    pub providers: Vec<String>,
    /// Bytes each provider served in this fetch.
    #[serde(default)]
    pub served: std::collections::BTreeMap<String, u64>,
    /// Peers dropped from this fetch after sending chunks that failed verification.
    #[serde(default)]
    pub banned: Vec<String>,
    /// Rules of the current policy this version violates (a warning, not a failure).
    #[serde(default)]
    pub flags: Vec<Violation>,
    /// Lifecycle warnings: the version is deprecated (or retired but still served).
    #[serde(default)]
    pub warnings: Vec<String>,
}

pub(super) async fn send(progress: &Option<mpsc::Sender<FetchEvent>>, e: FetchEvent) {
    if let Some(tx) = progress {
        let _ = tx.send(e).await;
    }
}
