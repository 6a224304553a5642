//! Reading chunks back, from a pack or from the referenced file a chunk is a range
//! of. Every read is checked: against the chunk's BLAKE3 hash
//! ([`ChunkStore::get_verified`]), or, for reads whose bytes are verified again by
//! whoever uses them (a peer that fetches them), against the CRC-32 recorded when
//! they were written ([`ChunkStore::get_checked`]), which catches damage on this
//! disk at about a third of BLAKE3's cost.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_protocol::Hash;

use super::{io_err, lock, ChunkError, ChunkStore, State};
use crate::pack::{self, Loc};

impl ChunkStore {
    /// Reads a chunk of at most `limit` bytes and verifies it against its name.
    pub fn get_verified(&self, hash: &Hash, limit: u64) -> Result<Vec<u8>, ChunkError> {
        self.get(hash, limit, Check::Hash)
    }

    /// Reads a chunk of at most `limit` bytes and checks it against the CRC-32
    /// recorded when it was written (against its name when none was): for bytes
    /// that are verified against their name again where they are used, such as
    /// chunks served to peers (every consumer verifies what it receives), or a check
    /// that the store still holds a chunk intact. A damaged copy fails like a
    /// corrupt one; a changed referenced file like a changed one.
    pub fn get_checked(&self, hash: &Hash, limit: u64) -> Result<Vec<u8>, ChunkError> {
        self.get(hash, limit, Check::Crc)
    }

    fn get(&self, hash: &Hash, limit: u64, check: Check) -> Result<Vec<u8>, ChunkError> {
        let loc = lock(&self.state)
            .index
            .get(hash)
            .copied()
            .ok_or(ChunkError::Missing(*hash))?;
        if u64::from(loc.len) > limit {
            return Err(ChunkError::TooLarge {
                hash: *hash,
                len: u64::from(loc.len),
                limit,
            });
        }
        let path = self
            .data_path(&lock(&self.state), loc)
            .ok_or(ChunkError::Missing(*hash))?;
        self.read_at(hash, loc, path, check)
    }

    /// Reads `loc`'s bytes in the file at `path` and checks them as `check` says.
    /// Takes no state lock (compaction calls it holding one).
    pub(super) fn read_at(
        &self,
        hash: &Hash,
        loc: Loc,
        path: PathBuf,
        check: Check,
    ) -> Result<Vec<u8>, ChunkError> {
        // A remote source is its URL, then its ETag on a line: the URL is shown.
        let shown = || match path.to_str().and_then(|p| p.split_once('\n')) {
            Some((url, _)) => PathBuf::from(url),
            None => path.clone(),
        };
        let changed = || ChunkError::SourceChanged {
            hash: *hash,
            path: shown(),
        };
        let data = if super::is_remote(&path) {
            self.read_remote(&path, loc).map_err(|e| match e {
                super::RemoteError::Changed(_) => changed(),
                super::RemoteError::Failed(why) => io_err(&shown())(io::Error::other(why)),
            })?
        } else {
            self.read_local(loc, &path).map_err(|e| match e {
                e if loc.is_ref() && e.kind() == io::ErrorKind::NotFound => changed(),
                e => io_err(&path)(e),
            })?
        };
        // A CRC match stands in for the hash; anything else is hashed (intact bytes
        // failing their CRC would be a bug, not damage, and read as intact).
        let intact = match (check, loc.crc) {
            (Check::Crc, Some(crc)) => {
                data.len() == loc.len as usize && crc32fast::hash(&data) == crc
            }
            _ => false,
        };
        let actual = if intact { *hash } else { Hash::of(&data) };
        if actual != *hash {
            // A referenced file that changed is not corruption of the store.
            if loc.is_ref() {
                lock(&self.readers).remove(&loc.pack);
                return Err(changed());
            }
            return Err(ChunkError::Corrupt {
                expected: *hash,
                actual,
            });
        }
        Ok(data)
    }

    /// `loc`'s bytes from its pack or referenced file (fewer when it was
    /// truncated under us: the bytes are gone, like corrupt ones).
    fn read_local(&self, loc: Loc, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.reader(loc.pack, path)?;
        match crate::sys::read_exact_at(&file, loc.len as usize, loc.offset) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Vec::new()),
            other => other,
        }
    }

    /// `loc`'s bytes from the remote object `source` names.
    fn read_remote(&self, source: &Path, loc: Loc) -> Result<Vec<u8>, super::RemoteError> {
        let remote = self.remote.get().ok_or_else(|| {
            super::RemoteError::Failed(
                "no object storage is set up in this process to read it from".into(),
            )
        })?;
        let text = source.to_string_lossy();
        remote.read_at(&text, loc.offset, loc.len)
    }

    /// The file holding `loc`'s bytes: its pack, or the referenced file.
    pub(super) fn data_path(&self, st: &State, loc: Loc) -> Option<PathBuf> {
        if loc.is_ref() {
            st.ref_paths.get(&loc.pack).cloned()
        } else if let Some(r) = st.remote_packs.get(&loc.pack) {
            Some(PathBuf::from(&r.source))
        } else {
            Some(pack::pack_path(&self.packs, loc.pack, "pack"))
        }
    }

    /// An open read handle of pack (or referenced file) `n` at `path`, cached.
    /// Referenced files can be many: their handles are dropped when too many are
    /// open. A referenced file replaced at its path (an editor saves by writing a
    /// new file and renaming it over the old one) is reopened, so reads see what the
    /// path holds now, not the old file kept alive by the cached handle.
    fn reader(&self, n: u32, path: &Path) -> io::Result<Arc<File>> {
        use std::os::unix::fs::MetadataExt;
        /// Open handles of referenced files kept at most.
        const MAX_REF_READERS: usize = 64;
        let mut readers = lock(&self.readers);
        if let Some(f) = readers.get(&n) {
            if !pack::is_ref_id(n) {
                return Ok(f.clone());
            }
            let (held, now) = (f.metadata()?, std::fs::metadata(path)?);
            if (held.dev(), held.ino()) == (now.dev(), now.ino()) {
                return Ok(f.clone());
            }
            readers.remove(&n);
        }
        let f = Arc::new(File::open(path)?);
        if pack::is_ref_id(n)
            && readers.keys().filter(|k| pack::is_ref_id(**k)).count() >= MAX_REF_READERS
        {
            readers.retain(|k, _| !pack::is_ref_id(*k));
        }
        readers.insert(n, f.clone());
        Ok(f)
    }
}

/// How a read is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Against the chunk's BLAKE3 hash, always.
    Hash,
    /// Against the CRC-32 recorded at write, or the hash where none was.
    Crc,
}
