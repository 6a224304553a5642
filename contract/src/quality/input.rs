//! Where the checker reads a data file: a file on this machine, or one kept
//! elsewhere (an object in a bucket, published in place without a local copy)
//! that it reads through [`Remote`]: the text formats as one stream, Parquet by
//! ranges (`parquet/blocks.rs`).

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

/// A data file kept elsewhere, read without copying it here. Every read must
/// return the bytes the file had when it was listed (an object's reads are
/// conditional on its ETag), or fail.
pub trait Remote: Send + Sync {
    /// Its size in bytes.
    fn len(&self) -> u64;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Its bytes from the first to the last, as they arrive.
    fn stream(&self) -> io::Result<Box<dyn Read + Send>>;
    /// The `len` bytes at `offset` (fewer only at the end of the file).
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// Where a data file's bytes are.
#[derive(Clone)]
pub enum Place {
    /// A file on this machine.
    Local(PathBuf),
    /// A file kept elsewhere.
    Remote(Arc<dyn Remote>),
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Local(p) => f.debug_tuple("Local").field(p).finish(),
            Place::Remote(r) => f.debug_tuple("Remote").field(&r.len()).finish(),
        }
    }
}

impl Place {
    /// A reader of the whole file, from its first byte.
    pub(crate) fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        match self {
            Place::Local(p) => Ok(Box::new(File::open(p)?)),
            Place::Remote(r) => r.stream(),
        }
    }
}
