//! Starting a new version's output file from a file already on disk that holds an
//! earlier version (its *base*), so unchanged bytes are not written again: the
//! whole base is cloned copy-on-write where the file system can (XFS, btrfs), and
//! otherwise the base's chunks that the new version also has are copied inside the
//! kernel (`copy_file_range`), with no read, hash or write in this process. Chunks
//! the base does not have are left for the caller to write.
//!
//! The caller vouches for the base: its bytes must be exactly its [`FileEntry`]'s
//! chunks (the node records what it wrote and checks the file is untouched since).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;

use mesh_protocol::manifest::FileEntry;
use mesh_protocol::Hash;

use crate::sys::{clone_file, copy_range};

/// A file on disk whose bytes are known to be exactly `entry`'s chunks.
#[derive(Debug, Clone)]
pub struct Base {
    /// Where it is.
    pub path: PathBuf,
    /// What it holds.
    pub entry: FileEntry,
}

/// What starting from bases saved, summed over an output's files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// Files cloned copy-on-write from their base.
    pub cloned_files: u64,
    /// Bytes already in place in a clone (same chunk at the same offset).
    pub shared_bytes: u64,
    /// Bytes copied inside the kernel from a base.
    pub copied_bytes: u64,
}

impl Reuse {
    /// Bytes of the output that came from bases.
    pub fn bytes(&self) -> u64 {
        self.shared_bytes + self.copied_bytes
    }

    pub(crate) fn add(&mut self, other: Reuse) {
        self.cloned_files += other.cloned_files;
        self.shared_bytes += other.shared_bytes;
        self.copied_bytes += other.copied_bytes;
    }
}

/// A run of consecutive chunks to copy: base offset, new offset, length, and the
/// new file's chunk indices it covers.
struct Run {
    from: u64,
    to: u64,
    len: u64,
    chunks: std::ops::Range<usize>,
}

/// Fills `tmp` (the new file, open for writing) from `base` as far as it can, and
/// sizes it to `entry.size`. Returns, per chunk of `entry`, whether its bytes are
/// now in place. A base that is not the size its entry says is not used; copying
/// stops at the first failure (the chunks not copied are left to the caller).
pub(crate) fn seed(base: &Base, tmp: &File, entry: &FileEntry) -> io::Result<(Vec<bool>, Reuse)> {
    let mut done = vec![false; entry.chunks.len()];
    let mut reuse = Reuse::default();
    let src = match File::open(&base.path) {
        Ok(f) if f.metadata()?.len() == base.entry.size => f,
        _ => {
            tmp.set_len(entry.size)?;
            return Ok((done, reuse));
        }
    };
    let cloned = clone_file(tmp, &src).is_ok();
    tmp.set_len(entry.size)?;
    let mut at_offset: HashMap<u64, Hash> = HashMap::new();
    let mut offset_of: HashMap<Hash, u64> = HashMap::new();
    let mut offset = 0u64;
    for c in &base.entry.chunks {
        at_offset.insert(offset, c.hash);
        offset_of.entry(c.hash).or_insert(offset);
        offset += u64::from(c.len);
    }
    if cloned {
        reuse.cloned_files = 1;
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut offset = 0u64;
    for (i, c) in entry.chunks.iter().enumerate() {
        let len = u64::from(c.len);
        if cloned && at_offset.get(&offset) == Some(&c.hash) {
            done[i] = true;
            reuse.shared_bytes += len;
        } else if let Some(&from) = offset_of.get(&c.hash) {
            match runs.last_mut() {
                Some(r) if r.from + r.len == from && r.to + r.len == offset => {
                    r.len += len;
                    r.chunks.end = i + 1;
                }
                _ => runs.push(Run {
                    from,
                    to: offset,
                    len,
                    chunks: i..i + 1,
                }),
            }
        }
        offset += len;
    }
    for r in runs {
        if copy_range(&src, r.from, tmp, r.to, r.len).is_err() {
            break;
        }
        reuse.copied_bytes += r.len;
        for d in &mut done[r.chunks] {
            *d = true;
        }
    }
    Ok((done, reuse))
}
