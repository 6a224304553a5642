//! The content-addressed chunk store: one file per chunk under `chunks/ab/<hash>`,
//! written temp + rename so a killed process never leaves a partial chunk under its
//! final name, and verified against its hash whenever it is read.
//!
//! Durability is batched: writers call [`ChunkStore::sync`] (one `syncfs`) before they
//! acknowledge anything, instead of two fsyncs per chunk. A chunk torn by a power loss
//! before that sync fails verification on read and is treated as corrupt, never served.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mesh_protocol::Hash;

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
    /// The disk failed.
    #[error("chunk store I/O on {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ChunkError + '_ {
    move |source| ChunkError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Content-addressed chunk files under one directory.
#[derive(Debug)]
pub struct ChunkStore {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
}

impl ChunkStore {
    /// Opens (or creates) the store at `root`, clearing temp files a crash left.
    pub fn open(root: &Path) -> Result<Self, ChunkError> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        if let Ok(entries) = fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(ChunkStore {
            root: root.to_owned(),
            tmp,
            counter: AtomicU64::new(0),
        })
    }

    /// Where the chunk named `hash` lives.
    pub fn path_of(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Whether the chunk is present (not verified).
    pub fn has(&self, hash: &Hash) -> bool {
        self.path_of(hash).is_file()
    }

    /// Stores `data` if it hashes to `hash`; returns whether it was newly written.
    pub fn put_verified(&self, hash: &Hash, data: &[u8]) -> Result<bool, ChunkError> {
        let actual = Hash::of(data);
        if actual != *hash {
            return Err(ChunkError::Corrupt {
                expected: *hash,
                actual,
            });
        }
        self.write(hash, data)
    }

    /// Hashes and stores `data`; returns its hash and whether it was newly written.
    pub fn put(&self, data: &[u8]) -> Result<(Hash, bool), ChunkError> {
        let hash = Hash::of(data);
        Ok((hash, self.write(&hash, data)?))
    }

    fn write(&self, hash: &Hash, data: &[u8]) -> Result<bool, ChunkError> {
        let dest = self.path_of(hash);
        if dest.is_file() {
            return Ok(false);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .tmp
            .join(format!("{}.{}.{n}", hash.short(), std::process::id()));
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(data).map_err(io_err(&tmp))?;
        }
        let dir = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        Ok(true)
    }

    /// Every chunk hash in the store (files with a valid name; others are ignored).
    pub fn list(&self) -> Result<Vec<Hash>, ChunkError> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.root)
            .map_err(io_err(&self.root))?
            .flatten()
        {
            let name = dir.file_name();
            if name == "tmp" || !dir.path().is_dir() {
                continue;
            }
            for f in fs::read_dir(dir.path())
                .map_err(io_err(&dir.path()))?
                .flatten()
            {
                if let Some(h) = f.file_name().to_str().and_then(|n| n.parse::<Hash>().ok()) {
                    out.push(h);
                }
            }
        }
        Ok(out)
    }

    /// Removes a chunk; returns the bytes freed (0 if it was absent).
    pub fn remove(&self, hash: &Hash) -> Result<u64, ChunkError> {
        let path = self.path_of(hash);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&path)(e)),
        };
        fs::remove_file(&path).map_err(io_err(&path))?;
        Ok(len)
    }

    /// Makes every chunk written so far durable (one `syncfs` of the store's file
    /// system). Call before acknowledging a publish or marking a fetch complete.
    pub fn sync(&self) -> Result<(), ChunkError> {
        let dir = File::open(&self.root).map_err(io_err(&self.root))?;
        syncfs(&dir).map_err(io_err(&self.root))
    }

    /// Reads a chunk of at most `limit` bytes and verifies it against its name.
    pub fn get_verified(&self, hash: &Hash, limit: u64) -> Result<Vec<u8>, ChunkError> {
        let path = self.path_of(hash);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ChunkError::Missing(*hash))
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = f.metadata().map_err(io_err(&path))?.len();
        if len > limit {
            return Err(ChunkError::TooLarge {
                hash: *hash,
                len,
                limit,
            });
        }
        let mut data = Vec::with_capacity(len as usize);
        f.take(limit)
            .read_to_end(&mut data)
            .map_err(io_err(&path))?;
        let actual = Hash::of(&data);
        if actual != *hash {
            return Err(ChunkError::Corrupt {
                expected: *hash,
                actual,
            });
        }
        Ok(data)
    }
}

/// `syncfs(2)`: flushes the whole file system holding `file`.
#[allow(unsafe_code)]
fn syncfs(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `file` is an open file owned by the caller for the whole call, so its
    // descriptor is valid; syncfs reads no memory of ours.
    let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        let (h, new) = store.put(b"hello chunk").unwrap();
        assert!(new);
        assert!(!store.put(b"hello chunk").unwrap().1);
        assert_eq!(store.get_verified(&h, 1024).unwrap(), b"hello chunk");
        store.sync().unwrap();
        assert!(matches!(
            store.put_verified(&h, b"other bytes"),
            Err(ChunkError::Corrupt { .. })
        ));
        fs::write(store.path_of(&h), b"hellO chunk").unwrap();
        assert!(matches!(
            store.get_verified(&h, 1024),
            Err(ChunkError::Corrupt { .. })
        ));
        assert!(matches!(
            store.get_verified(&Hash::of(b"nope"), 1024),
            Err(ChunkError::Missing(_))
        ));
        assert!(matches!(
            store.get_verified(&h, 3),
            Err(ChunkError::TooLarge { .. })
        ));
    }
}
