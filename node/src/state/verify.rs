//! `mesh verify`: every stored chunk read and checked against its BLAKE3 hash (like
//! `ipfs repo verify`). A corrupt chunk is removed, and every product that needed it
//! is marked incomplete, so it is neither served nor listed as held until it is
//! fetched again (which `ops` does when asked to repair).

use mesh_protocol::manifest::MAX_CHUNK_LEN;
use mesh_protocol::ManifestHash;
use mesh_storage::{ChunkError, ChunkStore};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::catalog::Catalog;
use super::StateError;

/// What a verification found and did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Chunks read and checked.
    pub chunks_checked: usize,
    /// Bytes of the chunks found intact.
    pub bytes_checked: u64,
    /// Chunks found intact.
    #[serde(default)]
    pub chunks_intact: usize,
    /// Chunks of in-place files that changed since (see `changed_files`), dropped.
    #[serde(default)]
    pub chunks_changed: usize,
    /// Chunks whose bytes did not match their hash, removed (hex hashes).
    pub corrupt_removed: Vec<String>,
    /// Files published or fetched in place that no longer hold their chunks' bytes (changed,
    /// moved or gone); their chunks were dropped like corrupt ones.
    #[serde(default)]
    pub changed_files: Vec<String>,
    /// Products no longer held completely, as `domain/name@version`.
    pub unmarked: Vec<String>,
    /// Of those, the ones fetched again from peers and whole now.
    #[serde(default)]
    pub repaired: Vec<String>,
    /// Of those, the ones that could not be fetched again, with the reason.
    #[serde(default)]
    pub not_repaired: Vec<String>,
}

/// Checks every stored chunk; removes corrupt ones and unmarks the products that
/// lose a chunk. Returns the report and the unmarked manifests. Blocking.
pub(crate) fn verify_store(
    catalog: &Catalog,
    chunks: &ChunkStore,
) -> Result<(VerifyReport, Vec<ManifestHash>), StateError> {
    let mut report = VerifyReport::default();
    for hash in chunks.list()? {
        report.chunks_checked += 1;
        match chunks.get_verified(&hash, u64::from(MAX_CHUNK_LEN)) {
            Ok(data) => {
                report.chunks_intact += 1;
                report.bytes_checked += data.len() as u64;
            }
            Err(e) if e.is_bad_copy() => {
                warn!(chunk = %hash, "verify: {e}; removing the chunk");
                chunks.remove(&hash)?;
                match e {
                    ChunkError::SourceChanged { path, .. } => {
                        report.chunks_changed += 1;
                        let path = path.display().to_string();
                        if !report.changed_files.contains(&path) {
                            report.changed_files.push(path);
                        }
                    }
                    _ => report.corrupt_removed.push(hash.to_string()),
                }
            }
            // Removed meanwhile (GC is excluded by the work lock, so rare): not
            // checked after all.
            Err(ChunkError::Missing(_)) if !chunks.has(&hash) => report.chunks_checked -= 1,
            // Indexed, but its data file is unknown: as unreadable as a corrupt one.
            Err(ChunkError::Missing(_)) => {
                warn!(chunk = %hash, "verify: indexed but its data file is unknown; removing the chunk");
                chunks.remove(&hash)?;
                report.corrupt_removed.push(hash.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    chunks.sync()?;
    let unmarked = catalog.recheck_complete(chunks)?;
    for hash in &unmarked {
        if let Some((_, m)) = catalog.manifest(hash)? {
            report.unmarked.push(format!("{}@{}", m.id, m.version));
        }
    }
    catalog.flush()?;
    Ok((report, unmarked))
}
