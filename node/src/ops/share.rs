//! The mesh's products as Delta Sharing tables (the protocol is
//! `ports/delta_sharing`; this is what it serves, with no HTTP in it).
//!
//! A table is a product. Its history is every version of the product this
//! node's catalog knows, oldest first, numbered from 0: table version `n` is
//! the product's `n`th published version, and its timestamp is when that
//! version was published. A table version's data is one Parquet file: the
//! product's first schema object with data (as `mesh query` reads
//! `domain.product`), read with the types its contract declares and written by
//! the engine, so CSV (with its null markers), JSON lines and Parquet products
//! all arrive as Parquet of the declared types. Each is made once per version,
//! keyed by the manifest hash (`sharing/<hash>.parquet`), and the cache is kept
//! under its configured size, the least recently served file going first.
//!
//! The product's files come as a query's do (`query::prepare_source`): fetched
//! through the mesh if this node does not hold them, verified, with the rules
//! and grants of the reader's domain (and this node's) checked on every call, so
//! a cached file is never served after a revocation.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use datafusion::arrow::datatypes::SchemaRef;
use mesh_contract::engine;
use mesh_contract::tables::product_tables;
use mesh_protocol::{ManifestHash, ProductId, ProductRef};

use super::fetch::Fetcher;
use super::query::{prepare_source, readable_version, QueryError, Reader, QUERY_DEADLINE};
use crate::home::HomeError;
use crate::state::catalog::Catalog;
use crate::state::StateError;

/// One version of a product, as a table version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableVersion {
    /// Its number in the table's history (0 for the first version known).
    pub(crate) number: u64,
    /// The product version.
    pub(crate) version: semver::Version,
    /// Its manifest.
    pub(crate) manifest: ManifestHash,
    /// When it was published (Unix ms): the manifest's time if this node has
    /// the manifest, else when it was announced.
    pub(crate) timestamp_ms: u64,
}

/// The history of product `id`: every version the catalog knows, oldest first.
/// Blocking (the catalog's store).
pub(crate) fn history(catalog: &Catalog, id: &ProductId) -> Result<Vec<TableVersion>, StateError> {
    let mut announcements = catalog.versions_of(id)?;
    announcements.sort_by(|a, b| a.version.cmp(&b.version));
    let mut out = Vec::with_capacity(announcements.len());
    for (number, a) in (0u64..).zip(announcements) {
        let timestamp_ms = match catalog.manifest(&a.manifest)? {
            Some((_, m)) => m.created_at.saturating_mul(1000),
            None => a.issued_at_ms,
        };
        out.push(TableVersion {
            number,
            version: a.version,
            manifest: a.manifest,
            timestamp_ms,
        });
    }
    Ok(out)
}

/// The history of product `id` for `reader`, if `reader` may read its newest
/// version (the rules and grants of the reader's domain, and this node's): a
/// denied product fails with the rule, an unknown one as not found.
pub(crate) async fn table(
    fetcher: &Fetcher,
    id: &ProductId,
    reader: &Reader,
) -> Result<Vec<TableVersion>, QueryError> {
    let product = ProductRef {
        id: id.clone(),
        version: None,
    };
    readable_version(fetcher, &product, reader).await?;
    let (catalog, owned) = (fetcher.catalog.clone(), id.clone());
    crate::task::blocking(move || {
        history(&catalog, &owned).map_err(|e| QueryError::Product {
            product: owned.to_string(),
            source: Box::new(e.into()),
        })
    })
    .await
}

/// A table version's data, as one Parquet file on this node.
#[derive(Debug, Clone)]
pub(crate) struct SharedFile {
    /// Where it is (`sharing/<manifest hash>.parquet`).
    pub(crate) path: PathBuf,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its rows.
    pub(crate) rows: u64,
    /// Its columns.
    pub(crate) schema: SchemaRef,
    /// The product version's title and description.
    pub(crate) title: String,
    /// See `title`.
    pub(crate) description: String,
}

/// The Parquet file of version `v` of product `id`, as `reader` may read it:
/// the product's files brought here first if missing (fetched and verified,
/// the rules checked for `reader`), converted once, then kept in `root/sharing/`
/// whose size is held under `cache_bytes`.
pub(crate) async fn version_file(
    fetcher: &Fetcher,
    root: &Path,
    id: &ProductId,
    v: &TableVersion,
    reader: &Reader,
    cache_bytes: u64,
) -> Result<SharedFile, QueryError> {
    let product = ProductRef {
        id: id.clone(),
        version: Some(v.version.clone()),
    };
    let objects = [None].into_iter().collect();
    // Also the rule check of every call, a cached file or not.
    let source = prepare_source(fetcher, root, &product, &objects, reader).await?;
    let dir = root.join("sharing");
    let out = dir.join(format!("{}.parquet", source.hash));
    let title = source.manifest.title.clone();
    let description = source.manifest.description.clone();
    crate::task::blocking(move || {
        if !out.is_file() {
            convert(&source, &dir, &out)?;
            trim(&dir, cache_bytes, &out)?;
        }
        // Served now: the last to go when the cache is trimmed.
        if let Ok(f) = std::fs::File::options().append(true).open(&out) {
            let _ = f.set_modified(SystemTime::now());
        }
        let size = std::fs::metadata(&out).map_err(HomeError::io(&out))?.len();
        let (schema, rows) = engine::parquet_facts(&out)?;
        Ok::<_, QueryError>(SharedFile {
            path: out,
            size,
            rows,
            schema,
            title,
            description,
        })
    })
    .await
}

/// Writes the first object of `source` with data, with its contract's types and
/// its rows in file order, to the Parquet file `out` (through a temporary file in `dir`, renamed when whole).
fn convert(source: &super::query::Source, dir: &Path, out: &Path) -> Result<(), QueryError> {
    std::fs::create_dir_all(dir).map_err(HomeError::io(dir))?;
    let tmp = dir.join(format!(
        ".partial-{}.parquet",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let m = &source.manifest;
    let plan = mesh_contract::quality::Plan::new(&m.schema, &m.null_values, m.contract.as_ref());
    let files: Vec<(String, PathBuf)> = source
        .files
        .iter()
        .map(|rel| (rel.clone(), source.dir.join(rel)))
        .collect();
    let (product, target) = (m.id.to_string(), tmp.clone());
    let written = engine::run(QUERY_DEADLINE, move || async move {
        // One partition: the rows keep the order of the product's files (two
        // would interleave the halves of a large file).
        let ctx = engine::deterministic_session()?;
        let table = product_tables(&ctx, &plan, &files)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                engine::QueryError::Failed(format!(
                    "{product} has no data files of its schema objects to share"
                ))
            })?;
        engine::write_frame_parquet(table.frame, &target).await
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    std::fs::rename(&tmp, out).map_err(HomeError::io(out))?;
    Ok(())
}

/// Removes the least recently served Parquet files of `dir` until the rest fit
/// in `limit` bytes; `keep` (just made) stays even if it alone is larger.
fn trim(dir: &Path, limit: u64, keep: &Path) -> Result<(), QueryError> {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(HomeError::io(dir))? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() && path != keep {
            let when = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            files.push((when, meta.len(), path));
        }
    }
    let kept = std::fs::metadata(keep).map_or(0, |m| m.len());
    let mut total: u64 = kept + files.iter().map(|(_, len, _)| len).sum::<u64>();
    files.sort();
    for (_, len, path) in files {
        if total <= limit {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_drops_the_least_recently_served_files_first() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, secs: u64, len: usize| {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; len]).unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
            p
        };
        let old = at("a.parquet", 100, 400);
        let recent = at("b.parquet", 300, 400);
        let new = at("c.parquet", 50, 400);
        trim(dir.path(), 900, &new).unwrap();
        assert!(!old.exists(), "the least recently served goes");
        assert!(recent.exists() && new.exists());
        // The file just made stays even when it alone is over the limit.
        trim(dir.path(), 10, &new).unwrap();
        assert!(!recent.exists() && new.exists());
    }
}
