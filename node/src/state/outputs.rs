//! Files this node wrote out for products (`mesh fetch -o`, subscriptions): where,
//! which version, and the file's identity on disk then (device, inode, size, change
//! times). A later version of the product starts from such a file instead of
//! writing every byte again (see `mesh_storage::assemble::Base`), but only while
//! the identity still matches: a file edited, replaced or moved since is not
//! trusted, and the record is dropped. Like git's index, this trusts the file
//! system's change time, which no program can set back.
//!
//! Records are hints: losing one costs a full write, never a wrong byte in a
//! fetched file (every other byte is verified against its hash as it is written).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_protocol::manifest::FileEntry;
use mesh_protocol::{Manifest, ManifestHash, ProductId};
use mesh_storage::assemble::Base;
use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::StateError;

/// Records kept per product file (the newest; older ones are dropped).
pub(crate) const MAX_PER_FILE: usize = 8;

/// A written file as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Written {
    /// The manifest of the version written.
    manifest: String,
    /// The file's path in the product.
    file: String,
    /// Where it was written (absolute).
    dest: PathBuf,
    /// Its identity on disk right after it was written.
    id: Identity,
    /// When (unix ms).
    at_ms: u64,
}

/// What identifies a file's bytes without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    fn of(path: &Path) -> Option<Identity> {
        let m = std::fs::symlink_metadata(path)
            .ok()
            .filter(|m| m.is_file())?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The book of written files, over the metadata store.
#[derive(Debug, Clone)]
pub(crate) struct OutputBook {
    store: Arc<dyn MetaStore>,
}

/// The key prefix of every record of `product`.
fn product_prefix(product: &ProductId) -> Vec<u8> {
    let mut k = product.to_string().into_bytes();
    k.push(0);
    k
}

/// The key prefix of the records of one product file.
fn prefix(product: &ProductId, file: &str) -> Vec<u8> {
    let mut k = product_prefix(product);
    k.extend_from_slice(file.as_bytes());
    k.push(0);
    k
}

fn key(product: &ProductId, file: &str, dest: &Path) -> Vec<u8> {
    let mut k = prefix(product, file);
    k.extend_from_slice(dest.as_os_str().as_bytes());
    k
}

impl OutputBook {
    /// The book over `store`.
    pub(crate) fn new(store: Arc<dyn MetaStore>) -> Self {
        OutputBook { store }
    }

    /// Records that `files` of `manifest` were just written at `dests` (same order).
    pub(crate) fn record(
        &self,
        product: &ProductId,
        manifest: &ManifestHash,
        files: &[FileEntry],
        dests: &[PathBuf],
        now_ms: u64,
    ) -> Result<(), StateError> {
        for (f, dest) in files.iter().zip(dests) {
            let Some(id) = Identity::of(dest) else {
                continue;
            };
            self.put(
                product,
                &Written {
                    manifest: manifest.to_string(),
                    file: f.path.clone(),
                    dest: dest.clone(),
                    id,
                    at_ms: now_ms,
                },
            )?;
            let mut all = self.of_file(product, &f.path)?;
            if all.len() > MAX_PER_FILE {
                all.sort_by_key(|(_, w)| std::cmp::Reverse(w.at_ms));
                for (k, _) in all.drain(MAX_PER_FILE..) {
                    self.store.remove(Tree::Outputs, &k)?;
                }
            }
        }
        Ok(())
    }

    /// The records of one product file, with their keys. Undecodable ones are
    /// removed (they are only hints).
    fn of_file(
        &self,
        product: &ProductId,
        file: &str,
    ) -> Result<Vec<(Vec<u8>, Written)>, StateError> {
        let p = prefix(product, file);
        let rows = self.store.scan(Tree::Outputs, Some(&p), 4 * MAX_PER_FILE)?;
        let mut out = Vec::new();
        for (k, v) in rows.into_iter().take_while(|(k, _)| k.starts_with(&p)) {
            match serde_json::from_slice::<Written>(&v) {
                Ok(w) => out.push((k, w)),
                Err(_) => self.store.remove(Tree::Outputs, &k)?,
            }
        }
        Ok(out)
    }

    /// For each of `files` (a version of `product` about to be written under
    /// `out_dir`), an earlier version of it this node wrote that is still untouched
    /// on disk, if any: the one at the same destination first, else the newest.
    /// Records of files changed or gone since are dropped.
    pub(crate) fn bases(
        &self,
        catalog: &Catalog,
        product: &ProductId,
        files: &[FileEntry],
        out_dir: &Path,
    ) -> Result<Vec<Option<Base>>, StateError> {
        let mut manifests: HashMap<String, Option<Manifest>> = HashMap::new();
        let mut bases = Vec::with_capacity(files.len());
        for f in files {
            let dest = out_dir.join(&f.path);
            let mut found = self.of_file(product, &f.path)?;
            found.sort_by_key(|(_, w)| (w.dest != dest, std::cmp::Reverse(w.at_ms)));
            let mut base = None;
            for (k, w) in found {
                if Identity::of(&w.dest) != Some(w.id) {
                    self.store.remove(Tree::Outputs, &k)?;
                    continue;
                }
                if !manifests.contains_key(&w.manifest) {
                    let m = match w.manifest.parse::<ManifestHash>() {
                        Ok(h) => catalog.manifest(&h)?.map(|(_, m)| m),
                        Err(_) => None,
                    };
                    manifests.insert(w.manifest.clone(), m);
                }
                let entry = manifests
                    .get(&w.manifest)
                    .and_then(Option::as_ref)
                    .and_then(|m| m.files.iter().find(|e| e.path == f.path));
                if let Some(entry) = entry.filter(|e| e.size == w.id.size) {
                    base = Some(Base {
                        path: w.dest,
                        entry: entry.clone(),
                    });
                    break;
                }
            }
            bases.push(base);
        }
        Ok(bases)
    }

    /// Follows a directory rename: records of `product` under `from` now name the
    /// same files under `to` (a subscription renames a finished version's folder).
    pub(crate) fn relocate(
        &self,
        product: &ProductId,
        from: &Path,
        to: &Path,
    ) -> Result<(), StateError> {
        const PAGE: usize = 256;
        let p = product_prefix(product);
        // Collected first and rewritten after, so no rewritten record is met again.
        let mut moved = Vec::new();
        let mut after = p.clone();
        loop {
            let rows = self.store.scan(Tree::Outputs, Some(&after), PAGE)?;
            let full_page = rows.len() == PAGE;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = last.clone();
            let mine: Vec<_> = rows
                .into_iter()
                .take_while(|(k, _)| k.starts_with(&p))
                .collect();
            let ended = !full_page || mine.len() < PAGE;
            for (k, v) in mine {
                if let Ok(w) = serde_json::from_slice::<Written>(&v) {
                    if let Ok(rest) = w.dest.strip_prefix(from) {
                        let dest = to.join(rest);
                        moved.push((k, Written { dest, ..w }));
                    }
                }
            }
            if ended {
                break;
            }
        }
        for (k, w) in moved {
            self.store.remove(Tree::Outputs, &k)?;
            self.put(product, &w)?;
        }
        Ok(())
    }

    fn put(&self, product: &ProductId, w: &Written) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(w)
            .map_err(|e| StateError::corrupt(format!("output record {}", w.file), e))?;
        Ok(self
            .store
            .put(Tree::Outputs, &key(product, &w.file, &w.dest), &bytes)?)
    }
}
