//! Chunk buffers handed back after use, so that the next chunk batch is read into
//! memory that holds earlier bytes instead of freshly zeroed memory: the futures
//! `AsyncRead` the codec reads through writes only into initialized buffers, and
//! zeroing one per chunk was 6% of a fetching node's CPU.
//!
//! A buffer's contents before it is read into are unspecified (earlier chunks'
//! bytes): the codec always fills every byte it hands on (`read_exact`), or fails.

use std::sync::{Mutex, MutexGuard};

/// Buffers kept at most (about two batches of average chunks).
const KEEP: usize = 64;

/// Buffers with more capacity than this are not kept (the chunker's largest chunk is
/// 512 KiB; a peer may send larger ones, up to the protocol's limit).
const MAX_KEPT_CAPACITY: usize = 1 << 20;

/// The free buffers, shared by every transfer of the process.
pub(crate) static CHUNK_BUFFERS: ChunkBuffers = ChunkBuffers {
    free: Mutex::new(Vec::new()),
};

/// A bounded pool of byte buffers.
#[derive(Debug)]
pub(crate) struct ChunkBuffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl ChunkBuffers {
    /// A buffer of exactly `len` bytes whose contents are unspecified: the shortest
    /// kept buffer at least that long, cut to length (nothing to zero), else the
    /// longest, grown (only the growth is zeroed), else a new one.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut buf = {
            let mut free = self.lock();
            let fit = (0..free.len())
                .filter(|&i| free[i].len() >= len)
                .min_by_key(|&i| free[i].len());
            let pick = fit.or_else(|| (0..free.len()).max_by_key(|&i| free[i].len()));
            pick.map(|i| free.swap_remove(i)).unwrap_or_default()
        };
        if buf.len() >= len {
            buf.truncate(len);
        } else {
            buf.resize(len, 0);
        }
        buf
    }

    /// Keeps `buf` for a later [`ChunkBuffers::take`], unless enough are kept or it
    /// is too large to keep.
    pub(crate) fn give(&self, buf: Vec<u8>) {
        if buf.capacity() > MAX_KEPT_CAPACITY || buf.is_empty() {
            return;
        }
        let mut free = self.lock();
        if free.len() < KEEP {
            free.push(buf);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // The list stays consistent whatever a panicking holder did.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> ChunkBuffers {
        ChunkBuffers {
            free: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn buffers_come_back_cut_to_length_best_fit_first_and_the_pool_is_bounded() {
        let p = pool();
        assert_eq!(p.take(10), vec![0; 10], "a new buffer");
        p.give(vec![1; 100]);
        p.give(vec![2; 300]);
        p.give(vec![3; 200]);
        // The shortest that fits, cut to length: no zeroing, earlier bytes.
        assert_eq!(p.take(150), vec![3; 150]);
        assert_eq!(p.take(50), vec![1; 50]);
        // None fits: the longest, grown with zeros.
        let grown = p.take(400);
        assert_eq!(&grown[..300], &[2; 300][..]);
        assert_eq!(&grown[300..], &[0; 100][..]);
        assert!(p.lock().is_empty());
        // Bounded: no huge or empty buffer, never more than KEEP.
        p.give(vec![0; MAX_KEPT_CAPACITY + 1]);
        p.give(Vec::new());
        assert!(p.lock().is_empty());
        for _ in 0..KEEP + 10 {
            p.give(vec![7; 16]);
        }
        assert_eq!(p.lock().len(), KEEP);
        assert!(p.lock().iter().all(|b| b.len() == 16));
    }
}
