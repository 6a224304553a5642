//! Chunk store upkeep: compacting packs that are mostly removed chunks, and importing
//! a store written in the older file-per-chunk layout.

use std::collections::HashSet;
use std::fs;

use mesh_protocol::Hash;

use super::{io_err, lock, ChunkError, ChunkStore};
use crate::pack::{self, Loc, Record};

impl ChunkStore {
    /// Moves chunks from the file-per-chunk layout (`ab/<hash>`) into packs.
    pub(super) fn import_legacy(&self) -> Result<(), ChunkError> {
        let _ = fs::remove_dir_all(self.root.join("tmp"));
        let mut imported = 0usize;
        for dir in fs::read_dir(&self.root)
            .map_err(io_err(&self.root))?
            .flatten()
        {
            let name = dir.file_name();
            let is_shard = name.len() == 2
                && name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
            if !is_shard || !dir.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(dir.path())
                .map_err(io_err(&dir.path()))?
                .flatten()
            {
                let path = f.path();
                if let Some(h) = f.file_name().to_str().and_then(|n| n.parse::<Hash>().ok()) {
                    let data = fs::read(&path).map_err(io_err(&path))?;
                    // A corrupt legacy chunk is dropped: it would never have been served.
                    if Hash::of(&data) == h {
                        self.put_hashed(&h, crc32fast::hash(&data), &data)?;
                        imported += 1;
                    }
                }
            }
            self.sync()?;
            fs::remove_dir_all(dir.path()).map_err(io_err(&dir.path()))?;
        }
        if imported > 0 {
            tracing::info!(
                "chunk store: imported {imported} chunk(s) from the file-per-chunk layout"
            );
        }
        Ok(())
    }

    /// Rewrites every sealed pack that is at least half dead: its live chunks (each
    /// verified; corrupt ones are dropped) are appended to the active pack, its
    /// removal records that still matter and its records of live referenced chunks
    /// are carried over, and once that is durable
    /// the old pack and its log are deleted. Returns the bytes of disk reclaimed.
    /// Blocks other store users while it runs.
    pub fn compact(&self) -> Result<u64, ChunkError> {
        // No pack is offloaded while compaction may delete it.
        let _no_offload = lock(&self.offloading);
        let reclaimed = self.compact_packs()?;
        self.reclaim_orphans_locked()?;
        Ok(reclaimed)
    }

    fn compact_packs(&self) -> Result<u64, ChunkError> {
        let mut st = lock(&self.state);
        if !self.writable {
            return Err(ChunkError::ReadOnly(self.root.clone()));
        }
        let active_n = st.active.as_ref().map(|a| a.n);
        let mut victims = Vec::new();
        for (&n, &live) in &st.live {
            if pack::is_ref_id(n) {
                continue;
            }
            let size = self.pack_size(&st, n);
            if Some(n) != active_n && live * 2 <= size {
                victims.push((n, size));
            }
        }
        if victims.is_empty() {
            return Ok(0);
        }
        let doomed: HashSet<u32> = victims.iter().map(|(n, _)| *n).collect();
        for &(n, _) in &victims {
            let moving: Vec<(Hash, Loc)> = st
                .index
                .iter()
                .filter(|(_, l)| l.pack == n)
                .map(|(h, l)| (*h, *l))
                .collect();
            for (hash, loc) in moving {
                st.index.remove(&hash);
                let Some(path) = self.data_path(&st, loc) else {
                    continue;
                };
                match self.read_at(&hash, loc, path, super::read::Check::Hash) {
                    Ok(data) => self.append(&mut st, &hash, crc32fast::hash(&data), &data)?,
                    Err(e) if e.is_bad_copy() => {
                        tracing::warn!(
                            "chunk store: dropping corrupt chunk {hash} while compacting"
                        );
                    }
                    Err(e) => {
                        st.index.insert(hash, loc);
                        return Err(e);
                    }
                }
            }
            let log_path = pack::pack_path(&self.packs, n, "idx");
            let log = fs::read(&log_path).map_err(io_err(&log_path))?;
            for raw in log.chunks(pack::RECORD_LEN) {
                let Some(r) = Record::decode(raw) else { break };
                let keep = match r {
                    Record::Remove(_, loc) => {
                        !doomed.contains(&loc.pack) && st.live.contains_key(&loc.pack)
                    }
                    // A referenced chunk's bytes are not in the pack: its record moves.
                    Record::Add(h, loc) => {
                        loc.is_ref() && st.index.get(&h).is_some_and(|l| l.same_place(&loc))
                    }
                };
                if keep {
                    if let Err(e) = self.log(&mut st, r) {
                        st.active = None;
                        return Err(e);
                    }
                }
            }
        }
        self.sync_locked(&mut st)?;
        let mut reclaimed = 0;
        for (n, size) in victims {
            lock(&self.readers).remove(&n);
            st.live.remove(&n);
            let remote = st.remote_packs.contains_key(&n);
            let local = if remote {
                vec!["idx"]
            } else {
                vec!["pack", "idx"]
            };
            for ext in local {
                let path = pack::pack_path(&self.packs, n, ext);
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
            if remote {
                self.drop_remote_pack(&mut st, n)?;
            }
            st.unsynced.remove(&n);
            st.names_unsynced = true;
            reclaimed += size;
        }
        Ok(reclaimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack;

    #[test]
    fn compaction_reclaims_dead_packs_and_keeps_live_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let big = |seed: u8| vec![seed; 100_000];
        let (keep, gone);
        {
            let store = ChunkStore::open(dir.path()).unwrap();
            keep = store.put(&big(1)).unwrap().0;
            gone = (2..6)
                .map(|s| store.put(&big(s)).unwrap().0)
                .collect::<Vec<_>>();
        }
        // Second session: remove most of pack 1, then compact it away.
        let store = ChunkStore::open(dir.path()).unwrap();
        for h in &gone {
            store.remove(h).unwrap();
        }
        let reclaimed = store.compact().unwrap();
        assert_eq!(reclaimed, 500_000);
        assert!(!pack::pack_path(&dir.path().join("packs"), 1, "pack").exists());
        assert_eq!(store.get_verified(&keep, 1 << 20).unwrap(), big(1));
        drop(store);
        // The removals survive a reopen even though pack 1's log is gone.
        let store = ChunkStore::open(dir.path()).unwrap();
        assert_eq!(store.list().unwrap(), vec![keep]);
    }

    #[test]
    fn compacting_a_pack_keeps_its_removals_of_older_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (small, big) = (vec![1u8; 1000], vec![2u8; 50_000]);
        {
            // Pack 1: a small chunk that will be removed, and a big one that stays.
            let store = ChunkStore::open(dir.path()).unwrap();
            store.put(&small).unwrap();
            store.put(&big).unwrap();
        }
        {
            // Pack 2: holds the removal of the small chunk, and is itself mostly dead.
            let store = ChunkStore::open(dir.path()).unwrap();
            store.remove(&Hash::of(&small)).unwrap();
            for s in 3..6u8 {
                let h = store.put(&vec![s; 20_000]).unwrap().0;
                store.remove(&h).unwrap();
            }
        }
        {
            let store = ChunkStore::open(dir.path()).unwrap();
            assert!(store.compact().unwrap() >= 60_000, "pack 2 reclaimed");
            assert!(!pack::pack_path(&dir.path().join("packs"), 2, "idx").exists());
            assert!(pack::pack_path(&dir.path().join("packs"), 1, "pack").exists());
        }
        // Pack 2's log is gone, but the small chunk stays removed.
        let store = ChunkStore::open(dir.path()).unwrap();
        assert_eq!(store.list().unwrap(), vec![Hash::of(&big)]);
    }

    #[test]
    fn legacy_chunk_files_are_imported() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hash::of(b"old layout");
        let hex = h.to_hex();
        fs::create_dir_all(dir.path().join(&hex[..2])).unwrap();
        fs::write(dir.path().join(&hex[..2]).join(&hex), b"old layout").unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        assert_eq!(store.get_verified(&h, 100).unwrap(), b"old layout");
        assert!(!dir.path().join(&hex[..2]).exists());
    }
}
