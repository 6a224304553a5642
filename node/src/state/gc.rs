//! Garbage collection of the chunk store, and of the files queries and derived
//! products left in the node home ([`collect_work_files`]).
//!
//! Retained: for each product, the newest `keep` versions this node holds completely,
//! and every known manifest that is not complete (a fetch in progress keeps the chunks
//! it has verified, so it can resume). Older complete versions stop being held (the
//! node no longer provides them; their manifests stay known) and every chunk no
//! retained manifest references is deleted. GC runs under the node's exclusive work lock, so no
//! publish or fetch runs while it decides.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use mesh_protocol::Hash;
use serde::{Deserialize, Serialize};
use tracing::info;

use mesh_storage::ChunkStore;

use super::catalog::Catalog;
use super::StateError;
use crate::home::HomeError;

/// What a GC run did (or would do, with `dry_run`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcReport {
    /// Product versions no longer held, as `domain/name@version`.
    pub dropped_versions: Vec<String>,
    /// Chunks deleted.
    pub freed_chunks: usize,
    /// Bytes deleted.
    pub freed_bytes: u64,
    /// Chunks kept.
    pub kept_chunks: usize,
    /// Disk space returned by compacting pack files that were mostly freed chunks.
    #[serde(default)]
    pub reclaimed_bytes: u64,
    /// Copies of product versions kept for queries (`query/`) that were removed:
    /// every version but each product's newest, and unfinished ones.
    #[serde(default)]
    pub query_copies_removed: usize,
    /// Their bytes, with what unfinished derived-product computations left and
    /// the Delta Sharing files removed.
    #[serde(default)]
    pub query_bytes_freed: u64,
    /// Parquet files made for Delta Sharing (`sharing/`) that were removed: of
    /// every version but each product's newest, and unfinished ones (a
    /// recipient asking for an older version has it made again).
    #[serde(default)]
    pub sharing_files_removed: usize,
    /// Whether nothing was actually changed.
    pub dry_run: bool,
}

/// Runs GC over `catalog` and `chunks`, keeping `keep` complete versions per
/// product (at least 1). Blocking; the caller holds the node's exclusive work lock.
pub(crate) fn collect(
    catalog: &Catalog,
    chunks: &ChunkStore,
    keep: usize,
    dry_run: bool,
) -> Result<GcReport, StateError> {
    let keep = keep.max(1);
    // Complete versions per product, newest first.
    let mut held: BTreeMap<String, Vec<(semver::Version, Hash)>> = BTreeMap::new();
    for e in catalog.list(&Default::default())? {
        if e.local {
            let a = e.announcement;
            held.entry(a.product.to_string())
                .or_default()
                .push((a.version, a.manifest));
        }
    }
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let mut dropped = Vec::new();
    for (product, mut versions) in held {
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        for (version, hash) in versions.into_iter().skip(keep) {
            report.dropped_versions.push(format!("{product}@{version}"));
            dropped.push(hash);
        }
    }
    let dropped_set: HashSet<Hash> = dropped.iter().copied().collect();
    let mut referenced = HashSet::new();
    for hash in catalog.known_manifests()? {
        if dropped_set.contains(&hash) {
            continue;
        }
        if let Some((_, m)) = catalog.manifest(&hash)? {
            referenced.extend(m.files.iter().flat_map(|f| f.chunks.iter().map(|c| c.hash)));
        }
    }
    if !dry_run {
        for hash in &dropped {
            catalog.unmark_complete(hash)?;
        }
        catalog.flush()?;
    }
    for chunk in chunks.list()? {
        if referenced.contains(&chunk) {
            report.kept_chunks += 1;
            continue;
        }
        report.freed_chunks += 1;
        report.freed_bytes += if dry_run {
            chunks.len_of(&chunk).unwrap_or(0)
        } else {
            chunks.remove(&chunk)?
        };
    }
    if !dry_run {
        report.reclaimed_bytes = chunks.compact()?;
    }
    info!(
        dropped = report.dropped_versions.len(),
        freed_chunks = report.freed_chunks,
        freed_bytes = report.freed_bytes,
        dry_run,
        "gc"
    );
    Ok(report)
}

/// Removes what queries and derived products left in the node home at `root`:
/// `query/` copies and `sharing/` Parquet files of versions that are not their
/// product's newest (and unknown or unfinished ones), and `derived/` computations (none runs under the
/// exclusive work lock, which the caller holds). Adds the counts to `report`.
pub(crate) fn collect_work_files(
    root: &Path,
    catalog: &Catalog,
    report: &mut GcReport,
) -> Result<(), StateError> {
    let mut newest: BTreeMap<String, (semver::Version, Hash)> = BTreeMap::new();
    for e in catalog.list(&Default::default())? {
        let a = e.announcement;
        let slot = newest
            .entry(a.product.to_string())
            .or_insert((a.version.clone(), a.manifest));
        if a.version > slot.0 {
            *slot = (a.version, a.manifest);
        }
    }
    let current: HashSet<String> = newest.values().map(|(_, h)| h.to_string()).collect();
    // A disk failure, not corrupt data: the home's I/O error, naming the path.
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| StateError::from(HomeError::io(&p)(e))
    };
    let dirs = [
        (root.join("query"), Kind::Query),
        (root.join("derived"), Kind::Derived),
        (root.join("sharing"), Kind::Sharing),
    ];
    for (dir, kind) in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            // Every file in a query copy is whole (each appears by a rename), and
            // a sharing file is renamed into place when written.
            let version = match kind {
                Kind::Query if path.is_dir() => name,
                Kind::Sharing => name.and_then(|n| n.strip_suffix(".parquet").map(String::from)),
                _ => None,
            };
            if version.is_some_and(|v| current.contains(&v)) {
                continue;
            }
            let bytes = dir_bytes(&path);
            if !report.dry_run {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(io(&path))?;
            }
            match kind {
                Kind::Query => report.query_copies_removed += 1,
                Kind::Sharing => report.sharing_files_removed += 1,
                Kind::Derived => {}
            }
            report.query_bytes_freed += bytes;
        }
    }
    Ok(())
}

/// The work directories GC clears.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `query/<manifest hash>/`: copies for queries; each product's newest stays.
    Query,
    /// `derived/`: computations of derived products; nothing stays.
    Derived,
    /// `sharing/<manifest hash>.parquet`: Delta Sharing files; the newest stay.
    Sharing,
}

/// The bytes of the files under `path` (a file's own size), as far as readable.
fn dir_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| dir_bytes(&e.path())).sum())
        .unwrap_or(0)
}
