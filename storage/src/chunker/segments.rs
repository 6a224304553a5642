//! Cutting and hashing a file on several threads, with exactly the chunk boundaries
//! of cutting it as one stream.
//!
//! FastCDC's next cut depends only on where the chunk starts and on the bytes after
//! it. The file is split into segments of [`SEGMENT`] bytes and workers cut and hash
//! each segment as if a chunk started at its first byte. The true chain of cuts
//! (the one from offset 0) enters a segment at some offset `t`; from the first cut it
//! shares with the worker's chain on, the two are the same. Until then the merging
//! thread cuts and hashes from `t` itself: usually one or two chunks, every chunk of
//! the segment for data that never lines up (a long run of zeros cut at the maximum
//! size from an offset the segment's start is not a multiple of away), which is only
//! slower, never different.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use mesh_protocol::Hash;

/// Smallest chunk, bytes.
pub const MIN_CHUNK: u32 = 32 * 1024;
/// Target average chunk, bytes.
pub const AVG_CHUNK: u32 = 128 * 1024;
/// Largest chunk, bytes.
pub const MAX_CHUNK: u32 = 512 * 1024;

/// Bytes per segment (small in tests, so that they cut many). Every worker holds
/// about three segment buffers at most.
pub(super) const SEGMENT: usize = if cfg!(test) { 1 << 20 } else { 8 << 20 };

/// Workers at most, whatever the machine has (each holds a few segment buffers).
const MAX_WORKERS: usize = 4;

/// One chunk of the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    /// Where the chunk starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u32,
    /// Its BLAKE3 hash.
    pub hash: Hash,
    /// Its CRC-32, when asked for: what the store records to check its copy cheaply.
    pub crc: Option<u32>,
}

/// A worker's queue of cut segments, and the way its buffers go back to it.
type Lane = (Receiver<io::Result<Segment>>, SyncSender<Vec<u8>>);

/// A segment as a worker cut it.
struct Segment {
    /// The file offset of `data[0]`, the segment's first byte.
    start: u64,
    /// The segment's bytes and up to [`MAX_CHUNK`] after them, so every chunk that
    /// starts inside the segment is whole.
    data: Vec<u8>,
    /// The chain of chunks cut from `start`, each starting inside the segment.
    cuts: Vec<Cut>,
    /// Whether chunks get their CRC-32.
    with_crc: bool,
}

/// Cuts the first `size` bytes of `file` into chunks and hashes them (and takes
/// their CRC-32 if `with_crc`), calling `take` with each chunk's bytes, in file
/// order; returns how many chunks the merging thread had to cut itself. Stops at
/// the first error, of reading (given to `io`; the file shorter than `size` is one)
/// or from `take`.
pub(super) fn cut_file<E>(
    file: &File,
    size: u64,
    with_crc: bool,
    io: impl Fn(io::Error) -> E,
    mut take: impl FnMut(&[u8], &Cut) -> Result<(), E>,
) -> Result<u64, E> {
    let segments = size.div_ceil(SEGMENT as u64);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
        .min(segments.max(1) as usize);
    std::thread::scope(|scope| {
        let mut lanes = Vec::with_capacity(workers);
        for first in 0..workers {
            let (tx, rx) = sync_channel::<io::Result<Segment>>(1);
            let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(2);
            scope.spawn(move || {
                let mut index = first as u64;
                while index < segments {
                    let buf = spare_rx.try_recv().unwrap_or_default();
                    let segment = cut_segment(file, size, index, buf, with_crc);
                    let stop = segment.is_err();
                    if tx.send(segment).is_err() || stop {
                        return;
                    }
                    index += workers as u64;
                }
            });
            lanes.push((rx, spare_tx));
        }
        // Returning drops the lanes, which stops every worker at its next send.
        merge(&lanes, segments, size, &io, &mut take)
    })
}

/// Follows the true chain of cuts through the segments, in order.
fn merge<E>(
    lanes: &[Lane],
    segments: u64,
    size: u64,
    io: &impl Fn(io::Error) -> E,
    take: &mut impl FnMut(&[u8], &Cut) -> Result<(), E>,
) -> Result<u64, E> {
    let mut t = 0u64;
    let mut own = 0;
    for index in 0..segments {
        let (rx, spare) = &lanes[(index % lanes.len() as u64) as usize];
        let segment = rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("a chunking thread stopped")))
            .map_err(io)?;
        let end = (segment.start + SEGMENT as u64).min(size);
        let mut i = segment.cuts.partition_point(|c| c.offset < t);
        while t < end {
            if segment.cuts.get(i).is_some_and(|c| c.offset == t) {
                for c in &segment.cuts[i..] {
                    take(segment.bytes(c), c)?;
                    t = c.offset + u64::from(c.len);
                }
                break;
            }
            let c = segment.cut_at(t);
            own += 1;
            take(segment.bytes(&c), &c)?;
            t += u64::from(c.len);
            while segment.cuts.get(i).is_some_and(|c| c.offset < t) {
                i += 1;
            }
        }
        // Full means the worker has buffers enough; this one is dropped.
        let _ = spare.try_send(segment.data);
    }
    Ok(own)
}

impl Segment {
    fn bytes(&self, c: &Cut) -> &[u8] {
        let from = (c.offset - self.start) as usize;
        &self.data[from..from + c.len as usize]
    }

    /// The chunk that starts at `t`, which lies inside this segment.
    fn cut_at(&self, t: u64) -> Cut {
        let from = (t - self.start) as usize;
        let rest = &self.data[from..];
        let len = fastcdc::v2020::FastCDC::new(rest, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            .next()
            .map_or(rest.len(), |c| c.length);
        Cut {
            offset: t,
            len: len as u32,
            hash: Hash::of(&rest[..len]),
            crc: self.with_crc.then(|| crc32fast::hash(&rest[..len])),
        }
    }
}

/// Reads segment `index` into `buf` and cuts and hashes its chain.
fn cut_segment(
    file: &File,
    size: u64,
    index: u64,
    mut buf: Vec<u8>,
    with_crc: bool,
) -> io::Result<Segment> {
    let start = index * SEGMENT as u64;
    let own = (size - start).min(SEGMENT as u64) as usize;
    let len = (size - start).min((SEGMENT + MAX_CHUNK as usize) as u64) as usize;
    // A reused buffer is only overwritten; the first use zeroes it once.
    buf.resize(len, 0);
    file.read_exact_at(&mut buf, start).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                e.kind(),
                "the file got shorter while it was being read; publish it again once nothing writes to it",
            )
        } else {
            e
        }
    })?;
    let mut cuts = Vec::with_capacity(own / AVG_CHUNK as usize + 2);
    for c in fastcdc::v2020::FastCDC::new(&buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        if c.offset >= own {
            break;
        }
        cuts.push(Cut {
            offset: start + c.offset as u64,
            len: c.length as u32,
            hash: Hash::of(&buf[c.offset..c.offset + c.length]),
            crc: with_crc.then(|| crc32fast::hash(&buf[c.offset..c.offset + c.length])),
        });
    }
    Ok(Segment {
        start,
        data: buf,
        cuts,
        with_crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(data: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    fn cut_all(file: &File, size: u64) -> io::Result<(Vec<(u64, u32)>, u64)> {
        let mut got = Vec::new();
        let own = cut_file(
            file,
            size,
            true,
            |e| e,
            |data, c| {
                assert_eq!(data.len(), c.len as usize);
                assert_eq!(Hash::of(data), c.hash);
                assert_eq!(c.crc, Some(crc32fast::hash(data)));
                got.push((c.offset, c.len));
                Ok(())
            },
        )?;
        Ok((got, own))
    }

    /// `(offset, len)` of every chunk of `data` cut as one stream.
    fn one_stream(data: &[u8]) -> Vec<(u64, u32)> {
        fastcdc::v2020::FastCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            .map(|c| (c.offset as u64, c.length as u32))
            .collect()
    }

    /// On data whose chains line up (random bytes) the workers' cuts are used and
    /// the merging thread cuts only where a segment's chain has not joined the true
    /// one yet: a few chunks per segment, not the segment.
    #[test]
    fn the_merging_thread_cuts_only_until_the_chains_join() {
        let data = mesh_testkit::SeededRng::new(11).bytes(12 * SEGMENT + 1234);
        let (_dir, file) = file_of(&data);
        let (got, own) = cut_all(&file, data.len() as u64).unwrap();
        let whole = one_stream(&data);
        assert_eq!(got, whole);
        assert!(
            own <= 3 * 12,
            "the merging thread cut {own} of {} chunks",
            got.len()
        );
        // Zeros from an offset that is not a multiple of the maximum chunk away from
        // any segment start never line up: every chunk after is the merger's.
        let mut zeros = mesh_testkit::SeededRng::new(12).bytes(4 * SEGMENT);
        zeros[300_000..].fill(0);
        let (_dir, file) = file_of(&zeros);
        let (got, own) = cut_all(&file, zeros.len() as u64).unwrap();
        let whole = one_stream(&zeros);
        assert_eq!(got, whole);
        let misaligned = whole
            .iter()
            .filter(|c| c.0 >= SEGMENT as u64 && c.0 % u64::from(MAX_CHUNK) != 0)
            .count();
        assert!(misaligned > whole.len() / 2, "the test's zeros line up");
        assert!(own as usize >= misaligned, "{own} of {}", whole.len());
    }

    /// A file shorter than it was when its size was taken is a clear error.
    #[test]
    fn a_file_that_shrank_is_an_error() {
        let data = mesh_testkit::SeededRng::new(13).bytes(3 * SEGMENT);
        let (_dir, file) = file_of(&data);
        let err = cut_all(&file, 4 * SEGMENT as u64).unwrap_err();
        assert!(err.to_string().contains("got shorter"), "{err}");
        assert!(cut_all(&file, 0).unwrap().0.is_empty());
    }
}
