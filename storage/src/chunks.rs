//! The content-addressed chunk store: chunk bytes appended to large pack files, with
//! an append-only index log per pack (see [`crate::pack`]) replayed into memory when
//! the store opens. Creating one file per chunk cost 3 to 4 s per GiB on this
//! machine's ext4; appending to a pack costs what copying the bytes costs.
//!
//! Every read is checked, against the chunk's hash or the CRC-32 recorded when it
//! was written (see [`read`]); writes are in [`write`]. A crash can leave a torn index
//! record or bytes past the last record; both are recognised when the store opens and
//! never served. Durability is batched: writers call [`ChunkStore::sync`] (one
//! `fsync` per pack written) before they acknowledge anything. Removed chunks are tombstoned;
//! [`ChunkStore::compact`] rewrites packs that are mostly dead and deletes them.
//!
//! A chunk may also be *referenced* instead of copied ([`ChunkStore::reference`]):
//! its bytes stay in a file outside the store (a product published in place), and
//! every read verifies them like any other, so a referenced file that changed reads
//! as [`ChunkError::SourceChanged`] and is never served.
//!
//! One process opens a store for writing at a time (a lock file enforces it); others
//! may open it read-only, for inspection and tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use mesh_protocol::Hash;

use crate::faults::Faults;
use crate::pack::{self, Loc, Record};

mod maintenance;
mod offload;
mod read;
mod refs;
mod write;

pub(crate) use crate::seam::is_remote;
pub use crate::seam::{RemoteError, RemoteSource, DIR_PREFIX, REMOTE_PREFIX};

/// A file registered with [`ChunkStore::reference`], whose chunks
/// [`ChunkStore::put_ref`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefId(u32);

use crate::sys::punch_hole;

/// A chunk store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The chunk is not in the store.
    #[error("chunk {0} is not in the store")]
    Missing(Hash),
    /// Bytes do not hash to the name they were given.
    #[error("chunk {expected} failed verification: its bytes hash to {actual}")]
    Corrupt {
        /// The hash the chunk should have.
        expected: Hash,
        /// The hash its bytes have.
        actual: Hash,
    },
    /// The chunk is larger than the caller allows.
    #[error("chunk {hash} is {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Which chunk.
        hash: Hash,
        /// Its length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A referenced chunk's file (published in place) is gone or no longer holds
    /// the chunk's bytes.
    #[error("chunk {hash} was published in place from {path}, which has changed, moved or gone since; restore the file, or publish the data again as a new version")]
    SourceChanged {
        /// Which chunk.
        hash: Hash,
        /// The referenced file.
        path: PathBuf,
    },
    /// Another process has the store open for writing.
    #[error("the chunk store {0} is in use by another process; is a node already running on this home? Stop it first")]
    Locked(PathBuf),
    /// The store was opened read-only.
    #[error("the chunk store {0} was opened read-only")]
    ReadOnly(PathBuf),
    /// The disk failed.
    #[error("chunk store I/O on {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        source: io::Error,
    },
}

impl ChunkError {
    /// Whether this copy of the chunk is bad (corrupt bytes, or a referenced file
    /// that changed): the caller drops the copy and fetches the chunk again rather
    /// than failing.
    pub fn is_bad_copy(&self) -> bool {
        matches!(
            self,
            ChunkError::Corrupt { .. } | ChunkError::SourceChanged { .. }
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ChunkError + '_ {
    move |source| ChunkError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a stored chunk's bytes are: `len` bytes at `offset` in the file at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocation {
    /// The pack file.
    pub path: PathBuf,
    /// Byte offset in it.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
}

/// Content-addressed chunks in pack files under one directory.
#[derive(Debug)]
pub struct ChunkStore {
    root: PathBuf,
    packs: PathBuf,
    /// Records of referenced files (`NNNNNNNN.ref`, each holding a path).
    refs: PathBuf,
    state: Mutex<State>,
    /// Read handles of packs and referenced files, opened on first read.
    readers: Mutex<HashMap<u32, Arc<File>>>,
    /// Held for the whole of a sync: a writer whose packs another sync took waits
    /// for that sync to finish before it may acknowledge.
    syncing: Mutex<()>,
    writable: bool,
    /// Held (locked) while the store is open for writing.
    _lock: Option<File>,
    /// Injected faults (off unless a test turns them on).
    faults: Faults,
    /// Corrupt index records skipped when the store was opened.
    corrupt: usize,
    /// Where remote references are read from, once the node sets it.
    remote: std::sync::OnceLock<Arc<dyn RemoteSource>>,
    /// Held while packs are offloaded or orphans reclaimed (before the state lock).
    offloading: Mutex<()>,
    /// Bytes at which a pack is sealed ([`pack::PACK_TARGET`] unless set).
    pack_target: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct State {
    index: HashMap<Hash, Loc>,
    /// Live bytes per pack.
    live: BTreeMap<u32, u64>,
    active: Option<Active>,
    next_pack: u32,
    /// Packs written (data or log) since the last [`ChunkStore::sync`].
    unsynced: BTreeSet<u32>,
    /// Packs were created or deleted since the last sync: the directory needs one.
    names_unsynced: bool,
    /// Referenced files by id (with [`pack::REF_BIT`]).
    ref_paths: BTreeMap<u32, PathBuf>,
    /// The id the next referenced file gets.
    next_ref: u32,
    /// Sealed packs kept remotely (`packs/NNNNNNNN.remote` markers): their source
    /// and size.
    remote_packs: BTreeMap<u32, pack::RemotePack>,
    /// Referenced files whose chunks were recorded since the last sync: their
    /// bytes are made durable with the records.
    refs_unsynced: BTreeSet<u32>,
}

impl State {
    /// What the next sync must save, cleared.
    fn take_unsynced(&mut self) -> (BTreeSet<u32>, bool) {
        (
            std::mem::take(&mut self.unsynced),
            std::mem::replace(&mut self.names_unsynced, false),
        )
    }

    /// Puts back what a failed sync did not save.
    fn restore_unsynced(&mut self, packs: BTreeSet<u32>, names: bool) {
        self.unsynced.extend(packs);
        self.names_unsynced |= names;
    }
}

/// The pack being appended to.
#[derive(Debug)]
struct Active {
    n: u32,
    data: File,
    log: File,
    size: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChunkStore {
    /// Opens (or creates) the store at `root` for writing: takes its lock, cuts index
    /// logs torn by a crash, and imports chunks left in the older file-per-chunk
    /// layout.
    pub fn open(root: &Path) -> Result<Self, ChunkError> {
        let packs = root.join("packs");
        fs::create_dir_all(&packs).map_err(io_err(&packs))?;
        let lock_path = root.join("LOCK");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(ChunkError::Locked(root.to_owned())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let replayed = pack::replay(&packs).map_err(io_err(&packs))?;
        for (n, valid) in &replayed.torn {
            let log = pack::pack_path(&packs, *n, "idx");
            let f = OpenOptions::new()
                .write(true)
                .open(&log)
                .map_err(io_err(&log))?;
            f.set_len(*valid).map_err(io_err(&log))?;
            tracing::warn!(
                "chunk store: cut a torn index log {} at byte {valid}",
                log.display()
            );
        }
        let store = Self::with(root, packs, replayed, true, Some(lock_file))?;
        store.forget_dead_refs();
        store.import_legacy()?;
        Ok(store)
    }

    /// Opens an existing store without writing anything, for inspection while its
    /// owner runs. Records torn or in flight are skipped.
    pub fn open_read_only(root: &Path) -> Result<Self, ChunkError> {
        let packs = root.join("packs");
        let replayed = match pack::replay(&packs) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => pack::Replayed::default(),
            Err(e) => return Err(io_err(&packs)(e)),
        };
        Self::with(root, packs, replayed, false, None)
    }

    fn with(
        root: &Path,
        packs: PathBuf,
        replayed: pack::Replayed,
        writable: bool,
        lock_file: Option<File>,
    ) -> Result<Self, ChunkError> {
        let refs = root.join("refs");
        let ref_paths = pack::read_refs(&refs).map_err(io_err(&refs))?;
        let remote_packs = pack::read_markers(&packs, writable).map_err(io_err(&packs))?;
        let next_pack = replayed
            .live
            .keys()
            .rfind(|n| !pack::is_ref_id(**n))
            .map_or(1, |n| n + 1);
        let next_ref = replayed
            .live
            .keys()
            .chain(ref_paths.keys())
            .filter(|n| pack::is_ref_id(**n))
            .max()
            .map_or(pack::REF_BIT, |n| n + 1);
        if replayed.corrupt > 0 {
            tracing::warn!(
                "chunk store {}: skipped {} corrupt index records; the chunks they named are treated as missing",
                root.display(),
                replayed.corrupt
            );
        }
        Ok(ChunkStore {
            root: root.to_owned(),
            packs,
            refs,
            state: Mutex::new(State {
                index: replayed.index,
                live: replayed.live,
                active: None,
                next_pack,
                unsynced: BTreeSet::new(),
                names_unsynced: false,
                ref_paths,
                next_ref,
                refs_unsynced: BTreeSet::new(),
                remote_packs,
            }),
            syncing: Mutex::new(()),
            readers: Mutex::new(HashMap::new()),
            writable,
            _lock: lock_file,
            faults: Faults::off(),
            corrupt: replayed.corrupt,
            remote: std::sync::OnceLock::new(),
            offloading: Mutex::new(()),
            pack_target: std::sync::atomic::AtomicU64::new(pack::PACK_TARGET),
        })
    }

    /// Sets where remote references are read from (once; later calls are
    /// ignored). Without it, reading one fails with an I/O error that says so.
    pub fn set_remote(&self, source: Arc<dyn RemoteSource>) {
        let _ = self.remote.set(source);
    }

    /// Corrupt index records skipped when the store was opened: their chunks are
    /// treated as missing (see the node's check of complete products at start).
    pub fn corrupt_records(&self) -> usize {
        self.corrupt
    }

    /// The faults injected into this store's I/O, for tests of error paths.
    #[cfg(feature = "faults")]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Whether the chunk is present (not verified).
    pub fn has(&self, hash: &Hash) -> bool {
        lock(&self.state).index.contains_key(hash)
    }

    /// How many chunks the store holds.
    pub fn len(&self) -> usize {
        lock(&self.state).index.len()
    }

    /// Whether the store holds no chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored length of a chunk, if present.
    pub fn len_of(&self, hash: &Hash) -> Option<u64> {
        lock(&self.state).index.get(hash).map(|l| u64::from(l.len))
    }

    /// Where a chunk's bytes are stored (for diagnostics and fault-injection tests).
    pub fn locate(&self, hash: &Hash) -> Option<ChunkLocation> {
        let st = lock(&self.state);
        let loc = *st.index.get(hash)?;
        Some(ChunkLocation {
            path: self.data_path(&st, loc)?,
            offset: loc.offset,
            len: loc.len,
        })
    }

    /// Every chunk hash in the store.
    pub fn list(&self) -> Result<Vec<Hash>, ChunkError> {
        Ok(lock(&self.state).index.keys().copied().collect())
    }

    /// Removes a chunk; returns the bytes freed (0 if it was absent). The space is
    /// reclaimed by [`ChunkStore::compact`].
    ///
    /// The chunk's bytes are punched out of its pack first (a hole: the file system
    /// frees those blocks at once), then the removal is logged. So removing works on
    /// a full disk, which is exactly when a failed publish or `mesh gc` must give
    /// space back. If the log write fails after the hole, the index record points
    /// at zeros, which every read detects as corrupt.
    pub fn remove(&self, hash: &Hash) -> Result<u64, ChunkError> {
        let mut st = lock(&self.state);
        let Some(loc) = st.index.get(hash).copied() else {
            return Ok(0);
        };
        // A referenced file is the publisher's own: never punched.
        if self.writable && !loc.is_ref() {
            self.punch(&st, loc);
            st.unsynced.insert(loc.pack);
        }
        if let Err(e) = self.log(&mut st, Record::Remove(*hash, loc)) {
            st.active = None;
            return Err(e);
        }
        st.index.remove(hash);
        if let Some(l) = st.live.get_mut(&loc.pack) {
            *l = l.saturating_sub(u64::from(loc.len));
        }
        Ok(u64::from(loc.len))
    }

    /// Makes every chunk written so far durable: an `fsync` of each pack and index
    /// log written since the last sync, and of the packs directory if packs came or
    /// went. Call before acknowledging a publish or marking a fetch complete.
    ///
    /// (It was one `syncfs` of the whole file system, which also flushed every other
    /// program's writes, and which a FUSE or network file system never sees: the
    /// power-loss harness lost acknowledged publishes to it.)
    pub fn sync(&self) -> Result<(), ChunkError> {
        let _one_at_a_time = lock(&self.syncing);
        let (packs, names, refs) = {
            let mut st = lock(&self.state);
            let (packs, names) = st.take_unsynced();
            let refs: Vec<(u32, PathBuf)> = std::mem::take(&mut st.refs_unsynced)
                .into_iter()
                .filter_map(|id| Some((id, st.ref_paths.get(&id)?.clone())))
                .collect();
            (packs, names, refs)
        };
        // A referenced file's bytes first, then the records that point into it.
        let result = self
            .sync_referenced(&refs)
            .and_then(|()| self.sync_packs(&packs, names));
        if result.is_err() {
            // Not durable: the next sync tries these again.
            let mut st = lock(&self.state);
            st.restore_unsynced(packs, names);
            st.refs_unsynced.extend(refs.iter().map(|(id, _)| *id));
        }
        result
    }

    /// Starts writing back the packs written since the last sync, without waiting
    /// and without making anything durable (the next [`ChunkStore::sync`] still
    /// does): called while a large write goes on, so that sync is short.
    pub fn start_writeback(&self) -> Result<(), ChunkError> {
        let packs: Vec<u32> = lock(&self.state).unsynced.iter().copied().collect();
        for n in packs {
            let path = pack::pack_path(&self.packs, n, "pack");
            match File::open(&path) {
                Ok(f) => self
                    .faults
                    .before_writeback()
                    .and_then(|()| crate::sys::start_writeback(&f))
                    .map_err(io_err(&path))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(())
    }

    /// Syncs what is unsynced while the caller holds the state lock (compaction).
    fn sync_locked(&self, st: &mut State) -> Result<(), ChunkError> {
        let (packs, names) = st.take_unsynced();
        let result = self.sync_packs(&packs, names);
        if result.is_err() {
            st.restore_unsynced(packs, names);
        }
        result
    }

    /// `fsync`s the packs `packs` (data and log) and, if `names`, the packs directory.
    /// Takes no lock.
    fn sync_packs(&self, packs: &BTreeSet<u32>, names: bool) -> Result<(), ChunkError> {
        self.faults.before_sync().map_err(io_err(&self.root))?;
        for n in packs {
            for ext in ["pack", "idx"] {
                let path = pack::pack_path(&self.packs, *n, ext);
                match File::open(&path) {
                    Ok(f) => f.sync_all().map_err(io_err(&path))?,
                    // Compacted away since it was written: nothing left to save.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
        }
        if names {
            for dir in [&self.packs, &self.refs] {
                match File::open(dir) {
                    Ok(d) => d.sync_all().map_err(io_err(dir))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(dir)(e)),
                }
            }
        }
        Ok(())
    }
}

impl ChunkStore {
    /// Frees the disk blocks of `loc`'s bytes; best effort (a file system without
    /// hole punching keeps them until compaction).
    fn punch(&self, st: &State, loc: Loc) {
        let path = pack::pack_path(&self.packs, loc.pack, "pack");
        let result = match st.active.as_ref().filter(|a| a.n == loc.pack) {
            Some(active) => punch_hole(&active.data, loc.offset, u64::from(loc.len)),
            None => OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| punch_hole(&f, loc.offset, u64::from(loc.len))),
        };
        if let Err(e) = result {
            tracing::debug!("cannot punch a hole in {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests;
