//! Writing chunks: appending their bytes to the active pack and logging the add,
//! with the CRC-32 that checked reads compare (see [`super::read`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use mesh_protocol::Hash;

use super::{io_err, lock, Active, ChunkError, ChunkStore, State};
use crate::pack::{self, Loc, Record};

impl ChunkStore {
    /// Stores `data` if it hashes to `hash`; returns whether it was newly written.
    pub fn put_verified(&self, hash: &Hash, data: &[u8]) -> Result<bool, ChunkError> {
        let actual = Hash::of(data);
        if actual != *hash {
            return Err(ChunkError::Corrupt {
                expected: *hash,
                actual,
            });
        }
        self.put_hashed(hash, crc32fast::hash(data), data)
    }

    /// Stores `data`, which must hash to `hash`, in a pack when the store holds the
    /// chunk only as a range of a referenced file (or not at all), so that it has
    /// a copy of its own whatever becomes of that file; returns whether it wrote.
    pub fn keep_copy(&self, hash: &Hash, data: &[u8]) -> Result<bool, ChunkError> {
        let actual = Hash::of(data);
        if actual != *hash {
            return Err(ChunkError::Corrupt {
                expected: *hash,
                actual,
            });
        }
        let mut st = lock(&self.state);
        let old = st.index.get(hash).copied();
        match old {
            Some(loc) if !loc.is_ref() => return Ok(false),
            Some(loc) => {
                if let Err(e) = self.log(&mut st, Record::Remove(*hash, loc)) {
                    st.active = None;
                    return Err(e);
                }
                st.index.remove(hash);
                if let Some(l) = st.live.get_mut(&loc.pack) {
                    *l = l.saturating_sub(u64::from(loc.len));
                }
            }
            None => {}
        }
        self.append(&mut st, hash, crc32fast::hash(data), data)?;
        Ok(true)
    }

    /// Hashes and stores `data`; returns its hash and whether it was newly written.
    pub fn put(&self, data: &[u8]) -> Result<(Hash, bool), ChunkError> {
        let hash = Hash::of(data);
        Ok((hash, self.put_hashed(&hash, crc32fast::hash(data), data)?))
    }

    /// Stores `data` under `hash` with its CRC-32 `crc`, both of which the caller
    /// computed from exactly these bytes (the chunker does as it cuts); returns
    /// whether it was new.
    pub(crate) fn put_hashed(
        &self,
        hash: &Hash,
        crc: u32,
        data: &[u8],
    ) -> Result<bool, ChunkError> {
        let mut st = lock(&self.state);
        if st.index.contains_key(hash) {
            return Ok(false);
        }
        self.append(&mut st, hash, crc, data)?;
        Ok(true)
    }

    /// Appends `data` (whose CRC-32 is `crc`) to the active pack and records it as
    /// the live copy of `hash`.
    pub(super) fn append(
        &self,
        st: &mut State,
        hash: &Hash,
        crc: u32,
        data: &[u8],
    ) -> Result<(), ChunkError> {
        let len = u32::try_from(data.len()).map_err(|_| ChunkError::TooLarge {
            hash: *hash,
            len: data.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let active = self.active(st)?;
        let loc = Loc {
            pack: active.n,
            offset: active.size,
            len,
            crc: Some(crc),
        };
        let result = self
            .faults
            .before_write(data.len())
            .and_then(|()| active.data.write_all_at(data, loc.offset))
            .map_err(io_err(&pack::pack_path(&self.packs, loc.pack, "pack")))
            .and_then(|()| self.log(st, Record::Add(*hash, loc)));
        if let Err(e) = result {
            // The log may now end in a torn record: never append behind it.
            st.active = None;
            return Err(e);
        }
        if let Some(active) = st.active.as_mut() {
            active.size += u64::from(len);
        }
        st.index.insert(*hash, loc);
        *st.live.entry(loc.pack).or_default() += u64::from(len);
        Ok(())
    }

    /// Appends `record` to the active pack's index log; the pack is then unsynced.
    pub(super) fn log(&self, st: &mut State, record: Record) -> Result<(), ChunkError> {
        let bytes = record.encode();
        let active = self.active(st)?;
        let n = active.n;
        self.faults
            .before_write(bytes.len())
            .and_then(|()| active.log.write_all(&bytes))
            .map_err(io_err(&pack::pack_path(&self.packs, n, "idx")))?;
        st.unsynced.insert(n);
        Ok(())
    }

    /// The pack to append to, starting a new one when there is none or it is full.
    fn active<'s>(&self, st: &'s mut State) -> Result<&'s mut Active, ChunkError> {
        if !self.writable {
            return Err(ChunkError::ReadOnly(self.root.clone()));
        }
        let target = self.pack_target.load(std::sync::atomic::Ordering::Relaxed);
        if st.active.as_ref().is_some_and(|a| a.size >= target) {
            st.active = None;
        }
        if st.active.is_none() {
            let n = st.next_pack;
            // The log first: a pack without a log is never read.
            let log_path = pack::pack_path(&self.packs, n, "idx");
            let log = OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(&log_path)
                .map_err(io_err(&log_path))?;
            let data_path = pack::pack_path(&self.packs, n, "pack");
            let data = OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&data_path)
                .map_err(io_err(&data_path))?;
            st.next_pack = n + 1;
            st.live.insert(n, 0);
            st.unsynced.insert(n);
            st.names_unsynced = true;
            st.active = Some(Active {
                n,
                data,
                log,
                size: 0,
            });
        }
        st.active
            .as_mut()
            .ok_or_else(|| ChunkError::ReadOnly(self.root.clone()))
    }
}
