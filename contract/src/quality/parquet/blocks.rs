//! A Parquet file kept elsewhere ([`Remote`]), as the Parquet reader wants it:
//! random access. It is read in blocks of [`BLOCK`] bytes, of which the last
//! [`KEPT`] used stay in memory: the reader's small reads (a page header, then
//! its page, column after column) fall in the same few blocks again and again,
//! so each block is fetched about once.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use crate::quality::input::Remote;

/// Bytes per block read.
pub(crate) const BLOCK: u64 = 2 << 20;
/// Blocks kept in memory.
const KEPT: usize = 32;

/// A remote file read in kept blocks; clones share the blocks.
#[derive(Clone)]
pub(crate) struct Blocks {
    inner: Arc<Inner>,
}

struct Inner {
    remote: Arc<dyn Remote>,
    len: u64,
    /// `(block index, bytes)`, the most recently used last.
    kept: Mutex<VecDeque<(u64, Bytes)>>,
}

impl Blocks {
    /// The blocks of `remote`.
    pub(crate) fn new(remote: Arc<dyn Remote>) -> Self {
        let len = remote.len();
        Blocks {
            inner: Arc::new(Inner {
                remote,
                len,
                kept: Mutex::new(VecDeque::with_capacity(KEPT + 1)),
            }),
        }
    }

    /// Block `index`, kept or fetched.
    fn block(&self, index: u64) -> io::Result<Bytes> {
        let inner = &self.inner;
        {
            let mut kept = inner.kept.lock().unwrap_or_else(|p| p.into_inner());
            let at = kept.iter().position(|(i, _)| *i == index);
            if let Some(hit) = at.and_then(|at| kept.remove(at)) {
                let bytes = hit.1.clone();
                kept.push_back(hit);
                return Ok(bytes);
            }
        }
        let start = index * BLOCK;
        let want = BLOCK.min(inner.len.saturating_sub(start));
        let data = inner.remote.read_at(start, want as usize)?;
        if data.len() as u64 != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended at byte {} of the {} it was listed with",
                    start + data.len() as u64,
                    inner.len
                ),
            ));
        }
        let bytes = Bytes::from(data);
        let mut kept = inner.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_back((index, bytes.clone()));
        if kept.len() > KEPT {
            kept.pop_front();
        }
        Ok(bytes)
    }

    /// The bytes from `at` to the end of its block (empty at the end of the file).
    fn tail_of_block(&self, at: u64) -> io::Result<Bytes> {
        if at >= self.inner.len {
            return Ok(Bytes::new());
        }
        let block = self.block(at / BLOCK)?;
        Ok(block.slice((at % BLOCK) as usize..))
    }
}

impl Length for Blocks {
    fn len(&self) -> u64 {
        self.inner.len
    }
}

impl ChunkReader for Blocks {
    type T = BlockReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<BlockReader> {
        Ok(BlockReader {
            blocks: self.clone(),
            at: start,
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start.checked_add(length as u64);
        if end.is_none_or(|end| end > self.inner.len) {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at {start} run past the file's end ({})",
                self.inner.len
            )));
        }
        let first = self.tail_of_block(start)?;
        if first.len() >= length {
            return Ok(first.slice(..length));
        }
        let mut out = Vec::with_capacity(length);
        let mut reader = self.get_read(start)?;
        reader.by_ref().take(length as u64).read_to_end(&mut out)?;
        Ok(Bytes::from(out))
    }
}

/// Reads a [`Blocks`] file on from an offset.
pub(crate) struct BlockReader {
    blocks: Blocks,
    at: u64,
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let tail = self.blocks.tail_of_block(self.at)?;
        let n = tail.len().min(buf.len());
        buf[..n].copy_from_slice(&tail[..n]);
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Bytes in memory, counting the reads.
    struct Counted {
        data: Vec<u8>,
        reads: AtomicUsize,
    }

    impl Remote for Counted {
        fn len(&self) -> u64 {
            self.data.len() as u64
        }
        fn stream(&self) -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(self.data.clone())))
        }
        fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let start = (offset as usize).min(self.data.len());
            let end = (start + len).min(self.data.len());
            Ok(self.data[start..end].to_vec())
        }
    }

    #[test]
    fn reads_across_blocks_and_fetches_each_block_once() {
        let data: Vec<u8> = (0..(2 * BLOCK + 1000)).map(|i| (i % 251) as u8).collect();
        let remote = Arc::new(Counted {
            data: data.clone(),
            reads: AtomicUsize::new(0),
        });
        let blocks = Blocks::new(remote.clone());
        let at = BLOCK - 10;
        let got = blocks.get_bytes(at, 20).unwrap();
        assert_eq!(&got[..], &data[at as usize..at as usize + 20]);
        let mut all = Vec::new();
        blocks.get_read(0).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        assert_eq!(remote.reads.load(Ordering::Relaxed), 3);
        assert!(blocks.get_bytes(data.len() as u64 - 5, 6).is_err());
    }

    #[test]
    fn a_file_shorter_than_listed_is_an_error() {
        struct Short;
        impl Remote for Short {
            fn len(&self) -> u64 {
                100
            }
            fn stream(&self) -> io::Result<Box<dyn Read + Send>> {
                Ok(Box::new(io::empty()))
            }
            fn read_at(&self, _: u64, _: usize) -> io::Result<Vec<u8>> {
                Ok(vec![0; 10])
            }
        }
        let err = Blocks::new(Arc::new(Short)).get_bytes(0, 50).unwrap_err();
        assert!(err.to_string().contains("ended at byte 10"), "{err}");
    }
}
