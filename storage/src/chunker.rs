//! Content-defined chunking (FastCDC 2020) of product files into the chunk store.
//!
//! Boundaries depend on content, not offsets, so an edit in one place of a file
//! changes only the chunks around it and a new version shares the rest.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use mesh_protocol::manifest::ChunkRef;

use crate::chunks::{ChunkError, ChunkStore, RefId};

pub use segments::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};

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

mod segments;
mod stream;

/// Splits the file at `path` into chunks and stores each. Worker threads (one per
/// core, up to four) read segments of the file and cut (FastCDC) and hash them; the
/// caller's thread follows the chain of cuts from the file's start through them, so
/// the boundaries are exactly those of cutting the file as one stream, and stores the
/// chunks. Bounded queues keep memory to a few segments per worker.
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
    chunk_with(path, store, written, None).map(|(out, _)| out)
}

/// Chunks the remote object `source` (see [`ChunkStore::reference_remote`]:
/// `s3://bucket/key` and its ETag) as `reader` streams it, and records every chunk
/// as a range of the object: nothing is copied, and the node serves the chunks by
/// ranged reads of the object. `reader` must give the object as it is at that
/// ETag (a GET conditional on it).
pub fn chunk_object_in_place(
    reader: impl Read,
    source: &str,
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
) -> Result<ChunkedFile, ChunkError> {
    let id = store.reference_remote(source)?;
    let mut out = chunk_stream_with(reader, &label_of(source), store, written, Some(id))?;
    out.replaced = store.forget_replaced(id)?;
    Ok(out)
}

/// Like [`chunk_file_tracked`], of the bytes `reader` streams (`name` says where
/// they come from in errors): copied into the store, cut on this thread.
pub fn chunk_stream_tracked(
    reader: impl Read,
    name: &str,
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
) -> Result<ChunkedFile, ChunkError> {
    chunk_stream_with(reader, Path::new(name), store, written, None)
}

/// A remote source's first line (`s3://bucket/key`), what errors call it.
fn label_of(source: &str) -> PathBuf {
    PathBuf::from(source.lines().next().unwrap_or(source))
}

fn chunk_stream_with(
    reader: impl Read,
    name: &Path,
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
    referenced: Option<RefId>,
) -> Result<ChunkedFile, ChunkError> {
    let io = |source| ChunkError::Io {
        path: name.to_owned(),
        source,
    };
    store_cuts(store, written, referenced, io, |with_crc, take| {
        stream::cut_stream(reader, with_crc, io, take).map(|_| ())
    })
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
    let id = store.reference(path)?;
    let (mut out, id) = chunk_with(path, store, written, Some(id))?;
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

/// Chunks the file at `path` into `store`: copied, or recorded as ranges of the
/// reference `referenced` (whose bytes are the file's).
fn chunk_with(
    path: &Path,
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
    referenced: Option<RefId>,
) -> Result<(ChunkedFile, Option<RefId>), ChunkError> {
    let io = |source| ChunkError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let out = store_cuts(store, written, referenced, io, |with_crc, take| {
        segments::cut_file(&file, size, with_crc, io, take).map(|_| ())
    })?;
    Ok((out, referenced))
}

/// Gives `cut` the chunk store's side of chunking: whether chunks need their
/// CRC-32 (copies do), and what to call with each chunk's bytes and cut (stores
/// it, or records it as a range of `referenced`); returns the chunks stored.
fn store_cuts(
    store: &ChunkStore,
    written: &mut Vec<mesh_protocol::Hash>,
    referenced: Option<RefId>,
    io: impl Fn(std::io::Error) -> ChunkError,
    cut: impl FnOnce(
        bool,
        &mut dyn FnMut(&[u8], &segments::Cut) -> Result<(), ChunkError>,
    ) -> Result<(), ChunkError>,
) -> Result<ChunkedFile, ChunkError> {
    let mut out = ChunkedFile {
        size: 0,
        chunks: Vec::new(),
        new_bytes: 0,
        replaced: Vec::new(),
    };
    use std::sync::mpsc::sync_channel;
    let (sync_tx, sync_rx) = sync_channel::<()>(1);
    std::thread::scope(|scope| {
        // Copies into packs start their writeback while chunking goes on, so the
        // caller's final sync finds little left. A failed writeback fails the
        // chunking: after an I/O error a later fsync may report success for pages
        // already lost.
        let syncer = referenced.is_none().then(|| {
            scope.spawn(move || -> Result<(), ChunkError> {
                for () in sync_rx {
                    store.start_writeback()?;
                }
                Ok(())
            })
        });
        let mut unsynced = 0u64;
        // Chunks copied into packs get a CRC-32 (see `ChunkStore::get_checked`); chunks
        // referenced in place do without (their reads are hashed), as it would cost
        // in-place publishing about a tenth of its time.
        let with_crc = referenced.is_none();
        let stored = cut(with_crc, &mut |data, c| {
            let new = match referenced {
                Some(id) => store.put_ref(&c.hash, id, c.offset, c.len, c.crc)?,
                None => {
                    let crc = c.crc.unwrap_or_else(|| crc32fast::hash(data));
                    store.put_hashed(&c.hash, crc, data)?
                }
            };
            out.size += u64::from(c.len);
            if new {
                out.new_bytes += u64::from(c.len);
                written.push(c.hash);
                unsynced += u64::from(c.len);
            }
            out.chunks.push(ChunkRef {
                hash: c.hash,
                len: c.len,
            });
            if unsynced >= WRITEBACK_EVERY {
                unsynced = 0;
                // Busy or absent: the next one, or the caller's, will do.
                let _ = sync_tx.try_send(());
            }
            Ok(())
        });
        drop(sync_tx);
        let synced = match syncer.map(|s| s.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io(std::io::Error::other("the writeback thread panicked"))),
        };
        stored.and(synced)?;
        Ok(out)
    })
}

/// Bytes copied into packs between two writeback starts while chunking (small in
/// tests, so that they run the writeback thread).
const WRITEBACK_EVERY: u64 = if cfg!(test) { 1 << 20 } else { 128 << 20 };

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        mesh_testkit::SeededRng::new(seed).bytes(n)
    }

    /// Cutting in segments on several threads gives exactly the boundaries of
    /// cutting the file as one stream (what every earlier version was chunked with,
    /// and what an object streamed from a bucket is chunked with),
    /// so versions chunked before and after still share their chunks: random data,
    /// runs of zeros (cut at the maximum size, so the chains of two segments never
    /// line up), and sizes around the segment and chunk limits.
    #[test]
    fn segments_cut_exactly_where_one_stream_does() {
        const BLOCK: usize = segments::SEGMENT;
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("chunks")).unwrap();
        let mut mixed = pseudo_random(3 * BLOCK, 7);
        mixed[BLOCK - 100_000..BLOCK + 2_000_000].fill(0);
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            pseudo_random(1, 1),
            pseudo_random(MIN_CHUNK as usize - 1, 2),
            pseudo_random(MAX_CHUNK as usize + 3, 3),
            pseudo_random(BLOCK, 4),
            pseudo_random(BLOCK + 1, 5),
            pseudo_random(2 * BLOCK + 1, 8),
            pseudo_random(BLOCK + MAX_CHUNK as usize + 5, 9),
            pseudo_random(7 * BLOCK + 77, 10),
            pseudo_random(2 * BLOCK + MAX_CHUNK as usize / 2, 6),
            vec![0u8; BLOCK + 12_345],
            mixed,
        ];
        for (i, data) in cases.iter().enumerate() {
            let f = dir.path().join(format!("case{i}.bin"));
            std::fs::write(&f, data).unwrap();
            let stream: Vec<u32> = fastcdc::v2020::StreamCDC::new(
                File::open(&f).unwrap(),
                MIN_CHUNK,
                AVG_CHUNK,
                MAX_CHUNK,
            )
            .map(|c| c.unwrap().length as u32)
            .collect();
            let streamed =
                chunk_stream_tracked(File::open(&f).unwrap(), "case", &store, &mut Vec::new())
                    .unwrap();
            for in_place in [false, true] {
                let referenced = in_place.then(|| store.reference(&f).unwrap());
                let (got, _) = chunk_with(&f, &store, &mut Vec::new(), referenced).unwrap();
                assert_eq!(got.chunks, streamed.chunks, "case {i}: streamed");
                let lens: Vec<u32> = got.chunks.iter().map(|c| c.len).collect();
                assert_eq!(lens, stream, "case {i} ({} bytes)", data.len());
                assert_eq!(got.size, data.len() as u64);
                let mut at = 0usize;
                for c in &got.chunks {
                    let bytes = &data[at..at + c.len as usize];
                    assert_eq!(c.hash, mesh_protocol::Hash::of(bytes), "case {i}");
                    assert_eq!(
                        store.get_verified(&c.hash, u64::from(MAX_CHUNK)).unwrap(),
                        bytes
                    );
                    at += c.len as usize;
                }
            }
        }
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

    /// A writeback that fails while chunking fails the chunking with its cause (after
    /// an I/O error a later fsync may report success for pages already lost), and a
    /// chunking without writebacks is not stopped by the switch.
    #[test]
    fn a_failed_writeback_fails_the_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(&dir.path().join("chunks")).unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, pseudo_random(4 * WRITEBACK_EVERY as usize, 9)).unwrap();
        store.faults().fail_writeback(true);
        let err = chunk_file(&f, &store).unwrap_err();
        assert!(
            err.to_string().contains("injected writeback failure"),
            "{err}"
        );
        let small = dir.path().join("small.bin");
        std::fs::write(&small, pseudo_random(WRITEBACK_EVERY as usize / 2, 10)).unwrap();
        chunk_file(&small, &store).unwrap();
        store.faults().clear();
        chunk_file(&f, &store).unwrap();
    }
}
