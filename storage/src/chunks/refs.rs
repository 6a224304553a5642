//! Referenced files: chunks whose bytes stay in a file outside the store (a product
//! published in place, like kubo's filestore), recorded but not copied.
//!
//! A referenced file gets an id and a record `refs/NNNNNNNN.ref` holding its path;
//! its chunks are index records like any other, whose location names the file.
//! Nothing vouches for the file afterwards except its bytes: every read is verified,
//! and a file that changed, moved or went reads as [`ChunkError::SourceChanged`],
//! which callers treat like a corrupt copy (dropped, the product marked incomplete).
//! The store never writes, punches or deletes a referenced file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use mesh_protocol::Hash;

use super::{io_err, lock, ChunkError, ChunkStore, RefId};
use crate::pack::{self, Loc, Record};

impl ChunkStore {
    /// Registers the file at `path` (made absolute) so that chunks can be recorded
    /// as ranges of it instead of copies. The record is durable at the next
    /// [`ChunkStore::sync`].
    pub fn reference(&self, path: &Path) -> Result<RefId, ChunkError> {
        let path = fs::canonicalize(path).map_err(io_err(path))?;
        self.reference_at(path)
    }

    /// Registers a remote object as the home of chunks, like
    /// [`ChunkStore::reference`] does a file: `source` (starting with
    /// [`super::REMOTE_PREFIX`]) is recorded as given and handed to the
    /// [`super::RemoteSource`] on every read.
    pub fn reference_remote(&self, source: &str) -> Result<RefId, ChunkError> {
        if !source.starts_with(super::REMOTE_PREFIX) {
            return Err(io_err(Path::new(source))(io::Error::other(
                "not a remote source",
            )));
        }
        self.reference_at(PathBuf::from(source))
    }

    fn reference_at(&self, path: PathBuf) -> Result<RefId, ChunkError> {
        if !self.writable {
            return Err(ChunkError::ReadOnly(self.root.clone()));
        }
        let mut st = lock(&self.state);
        if st.next_ref == u32::MAX {
            return Err(io_err(&self.refs)(io::Error::other(
                "no referenced-file ids left; run `mesh gc`",
            )));
        }
        let id = st.next_ref;
        fs::create_dir_all(&self.refs).map_err(io_err(&self.refs))?;
        let record = pack::ref_path(&self.refs, id);
        // A record file with an id past every known one is a leftover the store
        // could not read at open (created just before a power loss, its bytes
        // lost): nothing points into it, so it is written over.
        let open = |fresh: bool| {
            OpenOptions::new()
                .create_new(fresh)
                .create(!fresh)
                .truncate(!fresh)
                .write(true)
                .mode(0o600)
                .open(&record)
        };
        let file = match open(true) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                tracing::debug!("{}: a leftover record; written over", record.display());
                open(false)
            }
            other => other,
        };
        file.and_then(|mut f| f.write_all(path.as_os_str().as_bytes()))
            .map_err(io_err(&record))?;
        st.next_ref = id + 1;
        st.ref_paths.insert(id, path);
        st.live.insert(id, 0);
        st.refs_unsynced.insert(id);
        st.names_unsynced = true;
        Ok(RefId(id))
    }

    /// Records that the chunk `hash` is the `len` bytes at `offset` of the
    /// referenced file `file`; returns whether it was new. A chunk the store holds
    /// in a pack keeps that copy; one it holds as a range of a referenced file moves
    /// to this range, which was just read (the older file may since have changed:
    /// the same file published again with bytes inserted before the chunk). The
    /// caller has hashed exactly those bytes (and taken their CRC-32, `crc`, if it
    /// has it: see [`ChunkStore::get_checked`]): this records, it does not read.
    pub fn put_ref(
        &self,
        hash: &Hash,
        file: RefId,
        offset: u64,
        len: u32,
        crc: Option<u32>,
    ) -> Result<bool, ChunkError> {
        let mut st = lock(&self.state);
        let loc = Loc {
            pack: file.0,
            offset,
            len,
            crc,
        };
        let held = st.index.get(hash).copied();
        match held {
            Some(old) if !old.is_ref() || old.same_place(&loc) => return Ok(false),
            _ => {}
        }
        if !st.ref_paths.contains_key(&file.0) {
            return Err(ChunkError::Missing(*hash));
        }
        let mut records = Vec::with_capacity(2);
        if let Some(old) = held {
            records.push(Record::Remove(*hash, old));
        }
        records.push(Record::Add(*hash, loc));
        for r in records {
            if let Err(e) = self.log(&mut st, r) {
                st.active = None;
                return Err(e);
            }
        }
        if let Some(old) = held {
            if let Some(l) = st.live.get_mut(&old.pack) {
                *l = l.saturating_sub(u64::from(old.len));
            }
        }
        st.index.insert(*hash, loc);
        *st.live.entry(file.0).or_default() += u64::from(len);
        st.refs_unsynced.insert(file.0);
        Ok(held.is_none())
    }

    /// References the file at `path` and records `chunks` as its consecutive ranges
    /// from offset 0 (a product file written out whole, each chunk already
    /// verified). As with [`ChunkStore::put_ref`], chunks held in packs keep that
    /// copy. Returns the chunks of an earlier reference to the same path that the
    /// file no longer has, now dropped (see [`ChunkStore::forget_replaced`]).
    pub fn reference_file(
        &self,
        path: &Path,
        chunks: &[mesh_protocol::manifest::ChunkRef],
    ) -> Result<Vec<Hash>, ChunkError> {
        let id = self.reference(path)?;
        let mut offset = 0u64;
        for c in chunks {
            self.put_ref(&c.hash, id, offset, c.len, None)?;
            offset += u64::from(c.len);
        }
        self.forget_replaced(id)
    }

    /// Drops the chunks still recorded as ranges of an *earlier* reference to
    /// `current`'s path: the file there now is the one `current` describes (a new
    /// version written over it, or the same path published again), so an older
    /// range holds other bytes, or will. Chunks the new file also has were moved to
    /// it by [`ChunkStore::put_ref`] first. Returns the chunks dropped: a product
    /// that needs them is no longer whole here.
    pub fn forget_replaced(&self, current: RefId) -> Result<Vec<Hash>, ChunkError> {
        let stale: Vec<Hash> = {
            let st = lock(&self.state);
            let Some(path) = st.ref_paths.get(&current.0) else {
                return Ok(Vec::new());
            };
            let older: std::collections::HashSet<u32> = st
                .ref_paths
                .iter()
                .filter(|(id, p)| **id != current.0 && *p == path)
                .map(|(id, _)| *id)
                .collect();
            if older.is_empty() {
                return Ok(Vec::new());
            }
            st.index
                .iter()
                .filter(|(_, loc)| older.contains(&loc.pack))
                .map(|(h, _)| *h)
                .collect()
        };
        for h in &stale {
            self.remove(h)?;
        }
        Ok(stale)
    }

    /// The chunks recorded as ranges of the file at `path` (absolute, as
    /// [`ChunkStore::reference`] registers it), under any reference to it:
    /// (hash, offset, length), in no order. Empty, and cheap, when nothing was
    /// ever referenced at that path.
    pub fn referenced_ranges(&self, path: &Path) -> Vec<(Hash, u64, u32)> {
        let st = lock(&self.state);
        let ids: std::collections::HashSet<u32> = st
            .ref_paths
            .iter()
            .filter(|(_, p)| *p == path)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        st.index
            .iter()
            .filter(|(_, loc)| ids.contains(&loc.pack))
            .map(|(h, loc)| (*h, loc.offset, loc.len))
            .collect()
    }

    /// Drops what referenced files no longer hold: every chunk recorded in a file
    /// that is gone (an output deleted, a published file moved), and, of the file
    /// at `changed` (one a read found changed), every chunk whose bytes no longer
    /// verify. Returns the chunks dropped; a product that needs one is no longer
    /// whole here. The files themselves are never touched; remote objects are not
    /// looked at.
    pub fn drop_changed(&self, changed: Option<&Path>) -> Result<Vec<Hash>, ChunkError> {
        let paths: Vec<(u32, PathBuf)> = lock(&self.state)
            .ref_paths
            .iter()
            .map(|(id, p)| (*id, p.clone()))
            .collect();
        // Looked at without the lock: a stat per referenced file.
        let gone: std::collections::HashSet<u32> = paths
            .into_iter()
            .filter(|(_, p)| !super::is_remote(p) && !p.exists())
            .map(|(id, _)| id)
            .collect();
        let mut stale: std::collections::HashSet<Hash> = lock(&self.state)
            .index
            .iter()
            .filter(|(_, loc)| gone.contains(&loc.pack))
            .map(|(h, _)| *h)
            .collect();
        if let Some(path) = changed.filter(|p| !super::is_remote(p)) {
            for (hash, _, _) in self.referenced_ranges(path) {
                let limit = u64::from(mesh_protocol::manifest::MAX_CHUNK_LEN);
                if matches!(self.get_verified(&hash, limit), Err(e) if e.is_bad_copy()) {
                    stale.insert(hash);
                }
            }
        }
        for h in &stale {
            self.remove(h)?;
        }
        Ok(stale.into_iter().collect())
    }

    /// Whether the chunk is stored as a range of a referenced file.
    pub fn is_referenced(&self, hash: &Hash) -> bool {
        lock(&self.state).index.get(hash).is_some_and(Loc::is_ref)
    }

    /// `fsync`s referenced files (their bytes are what the records vouch for) and
    /// their records.
    pub(super) fn sync_referenced(&self, refs: &[(u32, PathBuf)]) -> Result<(), ChunkError> {
        for (id, path) in refs {
            for p in [path.clone(), pack::ref_path(&self.refs, *id)] {
                match File::open(&p) {
                    Ok(f) => f.sync_all().map_err(io_err(&p))?,
                    // Gone since: its chunks read as changed; nothing to save.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&p)(e)),
                }
            }
        }
        Ok(())
    }

    /// Deletes the records of referenced files no live chunk points into (left by
    /// removals or by a publish that stopped), at open.
    pub(super) fn forget_dead_refs(&self) {
        let mut st = lock(&self.state);
        let dead: Vec<u32> = st
            .ref_paths
            .keys()
            .copied()
            .chain(st.live.keys().copied().filter(|n| pack::is_ref_id(*n)))
            .filter(|id| st.live.get(id).copied().unwrap_or(0) == 0)
            .collect();
        for id in dead {
            st.live.remove(&id);
            if st.ref_paths.remove(&id).is_some() {
                let record = pack::ref_path(&self.refs, id);
                if let Err(e) = fs::remove_file(&record) {
                    tracing::debug!("removing {}: {e}", record.display());
                }
                st.names_unsynced = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referenced(dir: &Path, data: &[u8]) -> (ChunkStore, PathBuf, Hash) {
        let file = dir.join("data.bin");
        fs::write(&file, data).unwrap();
        let store = ChunkStore::open(&dir.join("store")).unwrap();
        let id = store.reference(&file).unwrap();
        let h = Hash::of(&data[10..60]);
        assert!(store.put_ref(&h, id, 10, 50, None).unwrap());
        assert!(
            !store.put_ref(&h, id, 10, 50, None).unwrap(),
            "already held"
        );
        store.sync().unwrap();
        (store, file, h)
    }

    #[test]
    fn a_referenced_chunk_is_read_from_its_file_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        let (store, file, h) = referenced(dir.path(), &data);
        assert!(store.is_referenced(&h));
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[10..60]);
        assert_eq!(
            store.locate(&h).unwrap().path,
            fs::canonicalize(&file).unwrap()
        );
        // No copy of the bytes went into a pack.
        let packed: u64 = fs::read_dir(dir.path().join("store/packs"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(packed, 0);
        drop(store);
        let store = ChunkStore::open(&dir.path().join("store")).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[10..60]);
        // Later packs are numbered apart from referenced files.
        let (p, _) = store.put(b"packed after").unwrap();
        assert!(!store.is_referenced(&p));
        assert_eq!(store.locate(&p).unwrap().path.extension().unwrap(), "pack");
    }

    #[test]
    fn a_changed_or_missing_file_reads_as_changed_and_is_never_punched() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 100];
        let (store, file, h) = referenced(dir.path(), &data);
        let mut edited = data.clone();
        edited[20] = 8;
        fs::write(&file, &edited).unwrap();
        let err = store.get_verified(&h, 100).unwrap_err();
        assert!(matches!(err, ChunkError::SourceChanged { .. }), "{err}");
        // Saved the way editors and `sed -i` do (a new file renamed over the old
        // one, which the store's cached handle still reads): changed just the same.
        fs::write(&file, &data).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[10..60]);
        let new = dir.path().join("data.bin.new");
        fs::write(&new, &edited).unwrap();
        fs::rename(&new, &file).unwrap();
        let err = store.get_verified(&h, 100).unwrap_err();
        assert!(matches!(err, ChunkError::SourceChanged { .. }), "{err}");
        assert!(err.is_bad_copy());
        assert!(err.to_string().contains("data.bin"), "{err}");
        // Removing the chunk leaves the publisher's file alone.
        store.remove(&h).unwrap();
        assert_eq!(fs::read(&file).unwrap(), edited);
        assert!(!store.has(&h));
        drop(store);
        // Its record is forgotten once nothing points into the file.
        let store = ChunkStore::open(&dir.path().join("store")).unwrap();
        assert!(!store.has(&h));
        assert_eq!(
            fs::read_dir(dir.path().join("store/refs")).unwrap().count(),
            0
        );

        let id = store.reference(&file).unwrap();
        let h2 = Hash::of(&edited[..50]);
        store.put_ref(&h2, id, 0, 50, None).unwrap();
        fs::remove_file(&file).unwrap();
        assert!(matches!(
            store.get_verified(&h2, 100),
            Err(ChunkError::SourceChanged { .. })
        ));
    }

    #[test]
    fn a_file_published_again_with_bytes_inserted_moves_its_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        let (store, file, h) = referenced(dir.path(), &data);
        // The same chunk, now 5 bytes further on in the rewritten file.
        let mut shifted = vec![0xEE; 5];
        shifted.extend_from_slice(&data);
        fs::write(&file, &shifted).unwrap();
        let id = store.reference(&file).unwrap();
        assert!(!store.put_ref(&h, id, 15, 50, None).unwrap(), "held before");
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[10..60]);
        store.sync().unwrap();
        drop(store);
        let store = ChunkStore::open(&dir.path().join("store")).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[10..60]);
        // The first reference has no live chunk left: its record is gone.
        assert_eq!(
            fs::read_dir(dir.path().join("store/refs")).unwrap().count(),
            1
        );
        // A packed copy stays where it is.
        let (p, _) = store.put(b"a packed chunk").unwrap();
        fs::write(&file, b"xx a packed chunk").unwrap();
        let id = store.reference(&file).unwrap();
        assert!(!store.put_ref(&p, id, 3, 14, None).unwrap());
        assert!(!store.is_referenced(&p));
    }

    #[test]
    fn a_file_written_again_drops_the_chunks_it_no_longer_has() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        let (store, file, kept) = referenced(dir.path(), &data);
        let gone = Hash::of(&data[60..100]);
        let first = store.reference(&file).unwrap();
        store.put_ref(&gone, first, 60, 40, None).unwrap();
        // An unrelated file's chunks are not touched.
        let other = dir.path().join("other.bin");
        fs::write(&other, &data).unwrap();
        let o = store.reference(&other).unwrap();
        let elsewhere = Hash::of(&data[0..10]);
        store.put_ref(&elsewhere, o, 0, 10, None).unwrap();

        // The file replaced by a version that keeps one chunk, elsewhere.
        let mut next = vec![0xAB; 30];
        next.extend_from_slice(&data[10..60]);
        let tmp = dir.path().join("next.tmp");
        fs::write(&tmp, &next).unwrap();
        fs::rename(&tmp, &file).unwrap();
        let chunks = [
            mesh_protocol::manifest::ChunkRef {
                hash: Hash::of(&next[..30]),
                len: 30,
            },
            mesh_protocol::manifest::ChunkRef {
                hash: kept,
                len: 50,
            },
        ];
        let dropped = store.reference_file(&file, &chunks).unwrap();
        assert_eq!(dropped, vec![gone]);
        assert!(!store.has(&gone));
        assert_eq!(store.get_verified(&kept, 100).unwrap(), &data[10..60]);
        assert_eq!(
            store.get_verified(&chunks[0].hash, 100).unwrap(),
            &next[..30]
        );
        assert_eq!(store.get_verified(&elsewhere, 100).unwrap(), &data[..10]);
        // Durably so.
        store.sync().unwrap();
        drop(store);
        let store = ChunkStore::open(&dir.path().join("store")).unwrap();
        assert!(!store.has(&gone));
        assert!(store.has(&kept) && store.has(&elsewhere));
    }

    #[test]
    fn a_referenced_chunk_copied_into_a_pack_outlives_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        let (store, file, h) = referenced(dir.path(), &data);
        let bytes = store.get_verified(&h, 100).unwrap();
        assert!(store.keep_copy(&h, &bytes).unwrap());
        assert!(!store.keep_copy(&h, &bytes).unwrap(), "packed already");
        assert!(store.keep_copy(&h, b"other bytes").is_err());
        assert!(!store.is_referenced(&h));
        store.sync().unwrap();
        drop(store);
        fs::remove_file(&file).unwrap();
        let store = ChunkStore::open(&dir.path().join("store")).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[10..60]);
        assert!(store.drop_changed(None).unwrap().is_empty());
    }

    #[test]
    fn a_leftover_empty_record_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let file = dir.path().join("data.bin");
        fs::write(&file, b"0123456789").unwrap();
        let store = ChunkStore::open(&root).unwrap();
        let first = store.reference(&file).unwrap();
        store.sync().unwrap();
        drop(store);
        // The next id's record was created, its bytes lost to a power loss.
        fs::write(pack::ref_path(&root.join("refs"), first.0 + 1), b"").unwrap();
        let store = ChunkStore::open(&root).unwrap();
        let id = store.reference(&file).unwrap();
        assert_eq!(id.0, first.0 + 1, "the leftover's id");
        let h = Hash::of(b"0123456789");
        store.put_ref(&h, id, 0, 10, None).unwrap();
        store.sync().unwrap();
        drop(store);
        let store = ChunkStore::open(&root).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), b"0123456789");
    }

    #[test]
    fn chunks_of_deleted_and_changed_files_are_dropped_together() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        let (store, file, h) = referenced(dir.path(), &data);
        let other = dir.path().join("other.bin");
        fs::write(&other, &data).unwrap();
        let id = store.reference(&other).unwrap();
        let (first, second) = (Hash::of(&data[..10]), Hash::of(&data[10..20]));
        store.put_ref(&first, id, 0, 10, None).unwrap();
        store.put_ref(&second, id, 10, 10, None).unwrap();
        let (packed, _) = store.put(b"a packed chunk").unwrap();
        assert!(
            store.drop_changed(None).unwrap().is_empty(),
            "nothing changed"
        );
        // One file deleted, the other edited in its first chunk.
        fs::remove_file(&file).unwrap();
        let mut edited = data.clone();
        edited[0] = 0xFF;
        fs::write(&other, &edited).unwrap();
        let mut dropped = store
            .drop_changed(Some(&fs::canonicalize(&other).unwrap()))
            .unwrap();
        dropped.sort();
        let mut want = vec![h, first];
        want.sort();
        assert_eq!(dropped, want);
        assert!(!store.has(&h) && !store.has(&first));
        assert!(store.has(&second) && store.has(&packed));
        assert_eq!(fs::read(&other).unwrap(), edited, "the file is left alone");
    }

    #[test]
    fn a_truncated_file_keeps_its_records_and_reads_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![3u8; 100];
        let (store, file, h) = referenced(dir.path(), &data);
        drop(store);
        fs::write(&file, b"short").unwrap();
        // Replay does not cut the log at a record past the end of a referenced file.
        let store = ChunkStore::open(&dir.path().join("store")).unwrap();
        assert!(store.has(&h));
        assert!(matches!(
            store.get_verified(&h, 100),
            Err(ChunkError::SourceChanged { .. })
        ));
        fs::write(&file, &data).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[10..60]);
    }

    #[test]
    fn compaction_keeps_referenced_chunks_recorded_in_a_dead_pack() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200u8).collect();
        let file = dir.path().join("data.bin");
        fs::write(&file, &data).unwrap();
        let root = dir.path().join("store");
        let h = Hash::of(&data[..100]);
        {
            // Pack 1 holds the referenced chunk's record and a big chunk.
            let store = ChunkStore::open(&root).unwrap();
            let id = store.reference(&file).unwrap();
            store.put_ref(&h, id, 0, 100, None).unwrap();
            let big = store.put(&vec![1u8; 100_000]).unwrap().0;
            store.remove(&big).unwrap();
            store.sync().unwrap();
        }
        let store = ChunkStore::open(&root).unwrap();
        store.put(b"start pack 2").unwrap();
        assert!(store.compact().unwrap() >= 100_000);
        assert!(!pack::pack_path(&root.join("packs"), 1, "idx").exists());
        drop(store);
        let store = ChunkStore::open(&root).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), &data[..100]);
        assert_eq!(fs::read(&file).unwrap(), data, "the file is untouched");
    }
}
