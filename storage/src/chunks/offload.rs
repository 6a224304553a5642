//! Sealed packs kept remotely: a store whose [`super::RemoteSource`] stores packs
//! (`[storage] url` on the node: S3; or a [`super::DirPacks`] directory) keeps only
//! its active pack, its index logs and its index on local disk, so it can hold
//! more than the disk.
//!
//! A pack is offloaded once it is sealed (a newer one is active) and synced:
//! uploaded whole, then a marker `packs/NNNNNNNN.remote` (its source and size) is
//! written and synced, then the local pack deleted. Reads of its chunks go to the
//! source (ranged, verified as any read). A crash leaves one of: the upload done
//! but no marker (the local pack is offloaded again; the object, named by no
//! marker, is an orphan), or marker and local pack both (the local pack is deleted
//! when the store opens). [`ChunkStore::reclaim_orphans`] deletes pack objects no
//! marker names, so nothing a crash leaves is out of GC's reach.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::{io_err, lock, ChunkError, ChunkStore, RemoteError};
use crate::pack::{self, RemotePack};

/// Turns a remote failure about `what` into a chunk store error.
fn failed(what: &Path) -> impl Fn(RemoteError) -> ChunkError + '_ {
    move |e| io_err(what)(io::Error::other(e.to_string()))
}

impl ChunkStore {
    /// Sets the size at which a pack is sealed (tests and small stores; the
    /// default is 1 GiB).
    pub fn set_pack_target(&self, bytes: u64) {
        self.pack_target
            .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Offloads every sealed, synced pack not yet offloaded, when the remote
    /// stores packs; returns how many. A failure leaves the pack local (tried
    /// again next time).
    pub fn offload_packs(&self) -> Result<usize, ChunkError> {
        let Some(remote) = self.remote.get().filter(|r| r.stores_packs()).cloned() else {
            return Ok(0);
        };
        if !self.writable {
            return Err(ChunkError::ReadOnly(self.root.clone()));
        }
        let _one_at_a_time = lock(&self.offloading);
        let sealed: Vec<u32> = {
            let st = lock(&self.state);
            let active = st.active.as_ref().map(|a| a.n);
            st.live
                .keys()
                .copied()
                .filter(|n| !pack::is_ref_id(*n) && Some(*n) != active)
                .filter(|n| !st.unsynced.contains(n) && !st.remote_packs.contains_key(n))
                .collect()
        };
        let mut done = 0;
        for n in sealed {
            let local = pack::pack_path(&self.packs, n, "pack");
            let Ok(meta) = fs::metadata(&local) else {
                continue;
            };
            let source = remote
                .upload_pack(&local, &format!("{n:08}.pack"))
                .map_err(failed(&local))?;
            let marker = pack::pack_path(&self.packs, n, "remote");
            write_synced(&marker, &format!("{source}\n{}", meta.len())).map_err(io_err(&marker))?;
            self.sync_dir().map_err(io_err(&self.packs))?;
            {
                let mut st = lock(&self.state);
                st.remote_packs.insert(
                    n,
                    RemotePack {
                        source,
                        size: meta.len(),
                    },
                );
                lock(&self.readers).remove(&n);
            }
            fs::remove_file(&local).map_err(io_err(&local))?;
            done += 1;
        }
        if done > 0 {
            self.sync_dir().map_err(io_err(&self.packs))?;
        }
        Ok(done)
    }

    /// Deletes the pack objects no marker names: left by a crash between an
    /// upload and its marker, or between a compaction's local deletions and the
    /// object's. Returns how many.
    pub fn reclaim_orphans(&self) -> Result<usize, ChunkError> {
        let _one_at_a_time = lock(&self.offloading);
        self.reclaim_orphans_locked()
    }

    /// [`ChunkStore::reclaim_orphans`], the caller holding `offloading`.
    pub(super) fn reclaim_orphans_locked(&self) -> Result<usize, ChunkError> {
        let Some(remote) = self.remote.get().filter(|r| r.stores_packs()).cloned() else {
            return Ok(0);
        };
        let listed = remote.list_packs().map_err(failed(&self.packs))?;
        let known: BTreeSet<String> = lock(&self.state)
            .remote_packs
            .keys()
            .map(|n| format!("{n:08}.pack"))
            .collect();
        let mut gone = 0;
        for name in listed.into_iter().filter(|n| !known.contains(n)) {
            remote.delete_pack(&name).map_err(failed(&self.packs))?;
            tracing::info!("chunk store: deleted the orphan pack object {name}");
            gone += 1;
        }
        Ok(gone)
    }

    /// Forgets the remote pack `n` (compaction moved its live chunks): its marker
    /// first, then its object (a failure there leaves an orphan for
    /// [`ChunkStore::reclaim_orphans`]). Called with the state lock held.
    pub(super) fn drop_remote_pack(
        &self,
        st: &mut super::State,
        n: u32,
    ) -> Result<u64, ChunkError> {
        let Some(r) = st.remote_packs.remove(&n) else {
            return Ok(0);
        };
        let marker = pack::pack_path(&self.packs, n, "remote");
        fs::remove_file(&marker).map_err(io_err(&marker))?;
        if let Some(remote) = self.remote.get() {
            if let Err(e) = remote.delete_pack(&format!("{n:08}.pack")) {
                tracing::warn!(
                    "chunk store: deleting pack object {n:08}: {e}; left for the next GC"
                );
            }
        }
        Ok(r.size)
    }

    /// The size of pack `n`: local, or as its marker says.
    pub(super) fn pack_size(&self, st: &super::State, n: u32) -> u64 {
        if let Some(r) = st.remote_packs.get(&n) {
            return r.size;
        }
        fs::metadata(pack::pack_path(&self.packs, n, "pack"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    fn sync_dir(&self) -> io::Result<()> {
        fs::File::open(&self.packs)?.sync_all()
    }
}

/// Writes `text` to `path` whole (a temporary file renamed over it), synced.
fn write_synced(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("remote-tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}
