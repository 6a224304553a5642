//! Partial files kept for resume: an output written in place (see
//! [`super::Output::create_referenced`]) registers each temporary file with the
//! chunk store, which records every chunk as a range of it as it lands. A fetch that
//! is killed or fails leaves the file and those records; the next fetch into the
//! same directory finds them, reads each range back and keeps the ones that still
//! hold their chunk where the file needs it, so only the rest is downloaded.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use mesh_protocol::manifest::FileEntry;
use mesh_protocol::Hash;

use crate::chunks::{ChunkError, ChunkStore};
use crate::sys::read_exact_at;

/// What a partial file still holds for its entry.
#[derive(Debug, Default)]
pub(super) struct Reclaimed {
    /// Per chunk of the entry: whether its bytes are in place in the file.
    pub(super) done: Vec<bool>,
    /// The bytes in place.
    pub(super) bytes: u64,
}

/// Which chunks of `entry` the partial file `file` (registered at `path`) holds
/// from an earlier attempt, as `store` recorded them, each read back and verified
/// against its hash (a power loss may have kept a record and lost its bytes).
/// Every other range recorded at `path` is dropped from the store: the file is
/// about to be written over there. With `keep` false every range is dropped (the
/// file is started afresh).
pub(super) fn reclaim(
    store: &ChunkStore,
    path: &Path,
    file: &File,
    entry: &FileEntry,
    keep: bool,
) -> Result<Reclaimed, ChunkError> {
    let mut out = Reclaimed {
        done: vec![false; entry.chunks.len()],
        bytes: 0,
    };
    let ranges = store.referenced_ranges(path);
    if ranges.is_empty() {
        return Ok(out);
    }
    let mut at: HashMap<u64, usize> = HashMap::with_capacity(entry.chunks.len());
    let mut offset = 0u64;
    for (j, c) in entry.chunks.iter().enumerate() {
        at.insert(offset, j);
        offset += u64::from(c.len);
    }
    for (hash, offset, len) in ranges {
        let wanted = at
            .get(&offset)
            .copied()
            .filter(|&j| keep && entry.chunks[j].hash == hash && entry.chunks[j].len == len);
        let intact = wanted.is_some()
            && read_exact_at(file, len as usize, offset).is_ok_and(|b| Hash::of(&b) == hash);
        match wanted {
            Some(j) if intact => {
                out.done[j] = true;
                out.bytes += u64::from(len);
            }
            _ => {
                store.remove(&hash)?;
            }
        }
    }
    Ok(out)
}
