//! Content-defined chunking (FastCDC 2020) of product files into the chunk store.
//!
//! Boundaries depend on content, not offsets, so an edit in one place of a file
//! changes only the chunks around it and a new version shares the rest.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;

use mesh_protocol::manifest::ChunkRef;

use crate::chunks::{ChunkError, ChunkStore, RefId};

/// Smallest chunk, bytes.
pub const MIN_CHUNK: u32 = 32 * 1024;
/// Target average chunk, bytes.
pub const AVG_CHUNK: u32 = 128 * 1024;
/// Largest chunk, bytes.
pub const MAX_CHUNK: u32 = 512 * 1024;

/// The outcome of chunking one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedFile {
    /// Total bytes.
    pub size: u64,
    /// Chunks in order.
    pub chunks: Vec<ChunkRef>,
    /// Bytes of chunks the store did not already hold.
    pub new_bytes: u64,
    /// In place: chunks of an earlier in-place publish of the same path that are not
    /// in the file any more, dropped from the store (see
    /// [`ChunkStore::forget_replaced`]).
    pub replaced: Vec<mesh_protocol::Hash>,
}

/// Chunks cut but not yet stored, at most: bounds the memory of the pipeline to
/// this many times [`MAX_CHUNK`].
const PIPELINE_DEPTH: usize = 16;

/// Splits the file at `path` into chunks and stores each. Two stages run in
/// parallel: one thread reads and cuts chunks (FastCDC), the caller's thread hashes
/// and stores them; a bounded queue between them keeps memory to a few chunks.
pub fn chunk_file(path: &Path, store: &ChunkStore) -> Result<ChunkedFile, ChunkError> {
    chunk_file_tracked(path, store, &mut Vec::new())
}

/// Like [`chunk_file`], adding to `written` the hash of every chunk it stores that
/// the store did not hold before, also when it fails part way: a caller that gives
/// up removes them again ([`ChunkStore::remove`] gives their space back).
pub fn chunk_file_tracked(
    path: &Path,
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
) -> Result<ChunkedFile, ChunkError> {
    chunk_with(path, store, written, false).map(|(out, _)| out)
}

/// Like [`chunk_file_tracked`], but in place: the chunks are recorded as ranges of
/// the file ([`ChunkStore::reference`]) instead of copied into the store, so the
/// node serves them from the file for as long as it keeps those bytes. Fails if the
/// file changes while it is being chunked.
pub fn chunk_file_in_place(
    path: &Path,
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
) -> Result<ChunkedFile, ChunkError> {
    let io = |source| ChunkError::Io {
        path: path.to_owned(),
        source,
    };
    let before = stamp(&fs::metadata(path).map_err(io)?);
    let (mut out, id) = chunk_with(path, store, written, true)?;
    let after = fs::metadata(path).map_err(io)?;
    if stamp(&after) != before || after.len() != out.size {
        return Err(io(std::io::Error::other(
            "the file changed while it was being published in place; publish it again once nothing writes to it",
        )));
    }
    if let Some(id) = id {
        out.replaced = store.forget_replaced(id)?;
    }
    Ok(out)
}

/// What tells a changed file from the same one without reading it (as the node's
/// records of written outputs do): device, inode, size, modification and change
/// times (a write that restores the mtime still moves the ctime).
fn stamp(m: &fs::Metadata) -> [i64; 7] {
    use std::os::unix::fs::MetadataExt;
    [
        m.dev() as i64,
        m.ino() as i64,
        m.size() as i64,
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ]
}

fn chunk_with(
    path: &Path,
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
    in_place: bool,
) -> Result<(ChunkedFile, Option<RefId>), ChunkError> {
    let io = |source| ChunkError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let referenced = if in_place {
        Some(store.reference(path)?)
    } else {
        None
    };
    let reader = BufReader::with_capacity(1024 * 1024, file);
    let mut out = ChunkedFile {
        size: 0,
        chunks: Vec::new(),
        new_bytes: 0,
        replaced: Vec::new(),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<(u64, Vec<u8>)>>(PIPELINE_DEPTH);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for chunk in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
                let item = chunk
                    .map(|c| (c.offset, c.data))
                    .map_err(|e| std::io::Error::other(format!("reading for chunking: {e}")));
                let failed = item.is_err();
                // A closed channel means the storing side failed; stop cutting.
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        });
        // Returning early drops `rx`, which stops the cutting thread at its next send.
        for data in rx {
            let (offset, data) = data.map_err(io)?;
            let len = data.len() as u32;
            let (hash, new) = match referenced {
                Some(id) => {
                    let hash = mesh_protocol::Hash::of(&data);
                    (hash, store.put_ref(&hash, id, offset, len)?)
                }
                None => store.put(&data)?,
            };
            out.size += u64::from(len);
            if new {
                out.new_bytes += u64::from(len);
                written.push(hash);
            }
            out.chunks.push(ChunkRef { hash, len });
        }
        Ok((out, referenced))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        mesh_testkit::SeededRng::new(seed).bytes(n)
    }

    #[test]
    fn local_edit_shares_most_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("chunks")).unwrap();
        let mut data = pseudo_random(8 * 1024 * 1024, 42);
        let f = dir.path().join("a.bin");
        std::fs::write(&f, &data).unwrap();
        let v1 = chunk_file(&f, &store).unwrap();
        assert_eq!(v1.size, data.len() as u64);
        assert_eq!(v1.new_bytes, v1.size);
        for b in &mut data[4_000_000..4_000_100] {
            *b = b.wrapping_add(1);
        }
        std::fs::write(&f, &data).unwrap();
        let v2 = chunk_file(&f, &store).unwrap();
        assert!(
            v2.new_bytes < v2.size / 4,
            "new {} of {}",
            v2.new_bytes,
            v2.size
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(chunk_file(&empty, &store).unwrap().chunks.len(), 0);
    }

    #[test]
    fn in_place_chunks_match_copied_ones_and_are_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = pseudo_random(3 * 1024 * 1024, 7);
        let f = dir.path().join("a.bin");
        std::fs::write(&f, &data).unwrap();
        let copied = {
            let other = ChunkStore::open(&dir.path().join("copied")).unwrap();
            chunk_file(&f, &other).unwrap()
        };
        let store = ChunkStore::open(&dir.path().join("chunks")).unwrap();
        let mut written = Vec::new();
        let placed = chunk_file_in_place(&f, &store, &mut written).unwrap();
        assert_eq!(placed, copied);
        assert_eq!(written.len(), placed.chunks.len());
        let mut back = Vec::new();
        for c in &placed.chunks {
            assert!(store.is_referenced(&c.hash));
            back.extend(store.get_verified(&c.hash, u64::from(MAX_CHUNK)).unwrap());
        }
        assert_eq!(back, data);
        // A directory is not a file to publish in place: a clear error, nothing held.
        let before = store.len();
        assert!(chunk_file_in_place(dir.path(), &store, &mut Vec::new()).is_err());
        assert_eq!(store.len(), before);
    }
}
