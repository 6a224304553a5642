//! The on-disk layout of the chunk store: append-only pack files and their index logs.
//!
//! `packs/NNNNNNNN.pack` holds chunk bytes back to back. `packs/NNNNNNNN.idx` is an
//! append-only log of fixed-size [`Record`]s: "chunk H is at (pack, offset, len)" or
//! "the copy of H at (pack, offset) is removed". Each record carries a checksum, so a
//! record torn by a crash is recognised and the log is cut there. Logs are replayed in
//! pack order; a removal names the exact copy it removes, so replay is unambiguous.
//!
//! A location may instead name a *referenced file* (its pack number has
//! [`REF_BIT`] set): a file outside the store, published in place, whose path is in
//! `refs/NNNNNNNN.ref`. Its records live in the pack logs like any other, so the
//! order of every add and removal is still the order of the logs.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mesh_protocol::Hash;

/// Bytes of one index record.
pub(crate) const RECORD_LEN: usize = 56;
/// A pack is sealed, and a new one started, once it reaches this size.
pub(crate) const PACK_TARGET: u64 = 1 << 30;

/// Pack numbers with this bit set name a referenced file, not a pack.
pub(crate) const REF_BIT: u32 = 1 << 31;

/// Where one stored copy of a chunk lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub pack: u32,
    pub offset: u64,
    pub len: u32,
    /// CRC-32 (IEEE) of the bytes as written, where recorded: a cheap check against
    /// damage on this disk for reads whose bytes are verified by BLAKE3 again
    /// elsewhere ([`crate::ChunkStore::get_checked`]). Records written before it
    /// existed have none.
    pub crc: Option<u32>,
}

/// Whether pack number `n` names a referenced file rather than a pack.
pub(crate) fn is_ref_id(n: u32) -> bool {
    n & REF_BIT != 0
}

impl Loc {
    /// Whether the bytes are in a referenced file rather than a pack.
    pub(crate) fn is_ref(&self) -> bool {
        is_ref_id(self.pack)
    }

    /// Whether `other` names the same bytes (its checksum aside: removals carry none).
    pub(crate) fn same_place(&self, other: &Loc) -> bool {
        (self.pack, self.offset, self.len) == (other.pack, other.offset, other.len)
    }
}

/// Offsets below this fit the checksummed add record's 48 bits.
const CRC_OFFSET_LIMIT: u64 = 1 << 48;

/// The path of referenced file `id`'s record (`id` has [`REF_BIT`] set).
pub(crate) fn ref_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{:08}.ref", id & !REF_BIT))
}

/// The referenced files recorded under `dir`: id (with [`REF_BIT`]) to the path it
/// names. A record that cannot be read is left out (its chunks read as missing).
pub(crate) fn read_refs(dir: &Path) -> io::Result<BTreeMap<u32, PathBuf>> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = BTreeMap::new();
    for e in entries(dir)? {
        let Some(n) = e
            .file_name()
            .to_str()
            .and_then(|name| name.strip_suffix(".ref")?.parse::<u32>().ok())
            .filter(|n| n & REF_BIT == 0)
        else {
            continue;
        };
        match fs::read(e.path()) {
            Ok(bytes) if !bytes.is_empty() => {
                out.insert(
                    n | REF_BIT,
                    PathBuf::from(std::ffi::OsString::from_vec(bytes)),
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!("chunk store: cannot read {}: {err}", e.path().display()),
        }
    }
    Ok(out)
}

/// One index log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// The chunk's bytes were appended at this location.
    Add(Hash, Loc),
    /// This copy of the chunk is no longer part of the store.
    Remove(Hash, Loc),
}

impl Record {
    // Layout: kind u8, 3 zero bytes, hash [32], pack u32, len u32, offset u64, then
    // the first 4 bytes of BLAKE3 over everything before them. Integers little-endian.
    // Kind 1 is an add, 2 a removal (no checksum), 3 an add with the bytes' CRC: its
    // bytes 0-2 in place of the zero bytes, byte 3 in the offset's seventh byte (the
    // offset then has 48 bits, the eighth byte zero).
    pub(crate) fn encode(&self) -> [u8; RECORD_LEN] {
        let (kind, hash, loc) = match self {
            Record::Add(h, l) if l.crc.is_some() && l.offset < CRC_OFFSET_LIMIT => (3u8, h, l),
            Record::Add(h, l) => (1u8, h, l),
            Record::Remove(h, l) => (2u8, h, l),
        };
        let mut b = [0u8; RECORD_LEN];
        b[0] = kind;
        b[4..36].copy_from_slice(hash.as_bytes());
        b[36..40].copy_from_slice(&loc.pack.to_le_bytes());
        b[40..44].copy_from_slice(&loc.len.to_le_bytes());
        b[44..52].copy_from_slice(&loc.offset.to_le_bytes());
        if let (3, Some(crc)) = (kind, loc.crc) {
            let crc = crc.to_le_bytes();
            b[1..4].copy_from_slice(&crc[..3]);
            b[50] = crc[3];
        }
        let check = checksum(&b[..52]);
        b[52..].copy_from_slice(&check);
        b
    }

    /// Decodes a record; `None` if it is torn or garbage.
    pub(crate) fn decode(b: &[u8]) -> Option<Record> {
        let b: &[u8; RECORD_LEN] = b.try_into().ok()?;
        if checksum(&b[..52]) != b[52..] {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[4..36]);
        let mut loc = Loc {
            pack: u32::from_le_bytes(b[36..40].try_into().ok()?),
            len: u32::from_le_bytes(b[40..44].try_into().ok()?),
            offset: u64::from_le_bytes(b[44..52].try_into().ok()?),
            crc: None,
        };
        if b[0] == 3 {
            if b[51] != 0 {
                return None;
            }
            loc.crc = Some(u32::from_le_bytes([b[1], b[2], b[3], b[50]]));
            loc.offset &= CRC_OFFSET_LIMIT - 1;
        } else if b[1..4] != [0; 3] {
            return None;
        }
        match b[0] {
            1 | 3 => Some(Record::Add(Hash::from_bytes(hash), loc)),
            2 => Some(Record::Remove(Hash::from_bytes(hash), loc)),
            _ => None,
        }
    }
}

fn checksum(body: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(&blake3::hash(body).as_bytes()[..4]);
    out
}
/// The path of pack `n`'s data (`ext` = "pack") or index log (`ext` = "idx").
pub(crate) fn pack_path(dir: &Path, n: u32, ext: &str) -> PathBuf {
    dir.join(format!("{n:08}.{ext}"))
}

/// The pack numbers present in `dir` (those with an index log), ascending.
pub(crate) fn pack_numbers(dir: &Path) -> io::Result<Vec<u32>> {
    let mut out: Vec<u32> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".idx")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// The size an offloaded pack's marker (`NNNNNNNN.remote`, its last line)
/// records, if it has one.
fn remote_size(dir: &Path, n: u32) -> Option<u64> {
    let text = fs::read_to_string(pack_path(dir, n, "remote")).ok()?;
    parse_marker(&text).map(|(_, size)| size)
}

/// A marker's source (every line but the last) and size (the last line).
fn parse_marker(text: &str) -> Option<(&str, u64)> {
    let (source, size) = text.rsplit_once('\n')?;
    Some((source, size.trim().parse().ok()?))
}

/// The entries of `dir`; none when it does not exist.
fn entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(e) => Ok(e.flatten().collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// A pack kept remotely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemotePack {
    /// Its source (what reads hand back to the remote).
    pub(crate) source: String,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// The markers of packs kept remotely under `dir`. Opened for writing, a local
/// pack that a marker says was offloaded is deleted (a crash stopped the offload
/// just before).
pub(crate) fn read_markers(dir: &Path, writable: bool) -> io::Result<BTreeMap<u32, RemotePack>> {
    let mut out = BTreeMap::new();
    for e in entries(dir)? {
        let name = e.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".remote"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let text = fs::read_to_string(e.path())?;
        let Some((source, size)) = parse_marker(&text) else {
            continue;
        };
        let local = pack_path(dir, n, "pack");
        if writable && local.exists() {
            fs::remove_file(&local)?;
        }
        out.insert(
            n,
            RemotePack {
                source: source.to_string(),
                size,
            },
        );
    }
    Ok(out)
}

/// What replaying the index logs yields.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// The live copy of each chunk.
    pub index: HashMap<Hash, Loc>,
    /// Live bytes per pack.
    pub live: BTreeMap<u32, u64>,
    /// Per pack: the length of its log's valid prefix, where it is shorter than the
    /// file (the rest is torn or garbage).
    pub torn: Vec<(u32, u64)>,
    /// Invalid records skipped in the middle of a log (corruption, not a crash).
    pub corrupt: usize,
}

impl Replayed {
    pub(crate) fn apply(&mut self, r: Record) {
        match r {
            Record::Add(h, loc) => {
                if let Some(old) = self.index.insert(h, loc) {
                    self.sub_live(old);
                }
                *self.live.entry(loc.pack).or_default() += u64::from(loc.len);
            }
            Record::Remove(h, loc) => {
                if self.index.get(&h).is_some_and(|l| l.same_place(&loc)) {
                    self.index.remove(&h);
                    self.sub_live(loc);
                }
            }
        }
    }

    fn sub_live(&mut self, loc: Loc) {
        if let Some(l) = self.live.get_mut(&loc.pack) {
            *l = l.saturating_sub(u64::from(loc.len));
        }
    }
}

/// Replays every index log under `dir`.
///
/// A crash can only tear a log's tail: invalid records with no valid one after them
/// (a half-written record, or an add whose bytes lie beyond the end of its pack)
/// are cut. An invalid record *followed* by valid ones is corruption, not a crash:
/// it is skipped and counted in [`Replayed::corrupt`], and the records after it are
/// kept. A skipped add loses that chunk (fetched again when needed); a skipped
/// removal leaves a dead chunk live until the next compaction.
pub(crate) fn replay(dir: &Path) -> io::Result<Replayed> {
    let mut out = Replayed::default();
    let mut pack_lens = HashMap::new();
    for n in pack_numbers(dir)? {
        out.live.entry(n).or_default();
        let log = match fs::read(pack_path(dir, n, "idx")) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // The end of the last valid record, and invalid records seen since it.
        let (mut valid, mut invalid_since) = (0usize, 0usize);
        for (i, raw) in log.chunks(RECORD_LEN).enumerate() {
            let record = Record::decode(raw).filter(|r| match r {
                // A referenced file is not ours to cut by: reads verify its bytes.
                Record::Add(_, loc) if loc.is_ref() => true,
                Record::Add(_, loc) => {
                    let len = *pack_lens.entry(loc.pack).or_insert_with(|| {
                        // An offloaded pack's marker is written only once it is
                        // stored whole: its size wins over a local copy's.
                        remote_size(dir, loc.pack)
                            .or_else(|| {
                                fs::metadata(pack_path(dir, loc.pack, "pack"))
                                    .map(|m| m.len())
                                    .ok()
                            })
                            .unwrap_or(0)
                    });
                    loc.offset
                        .checked_add(u64::from(loc.len))
                        .is_some_and(|end| end <= len)
                }
                Record::Remove(..) => true,
            });
            match record {
                Some(r) => {
                    out.apply(r);
                    out.corrupt += invalid_since;
                    invalid_since = 0;
                    valid = (i + 1) * RECORD_LEN;
                }
                None => invalid_since += 1,
            }
        }
        if valid < log.len() {
            out.torn.push((n, valid as u64));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_torn_ones_are_rejected() {
        let loc = Loc {
            pack: 7,
            offset: (1 << 32) + 5,
            len: 262_144,
            crc: None,
        };
        let checked = Loc {
            crc: Some(0xdead_beef),
            ..loc
        };
        let far = Loc {
            offset: (1 << 48) - 1,
            ..checked
        };
        for r in [
            Record::Add(Hash::of(b"a"), loc),
            Record::Add(Hash::of(b"c"), checked),
            Record::Add(Hash::of(b"d"), far),
            Record::Remove(Hash::of(b"b"), loc),
        ] {
            let b = r.encode();
            assert_eq!(Record::decode(&b), Some(r));
            for i in 0..RECORD_LEN {
                let mut bad = b;
                bad[i] ^= 0x40;
                assert_eq!(Record::decode(&bad), None, "byte {i} flipped");
            }
            assert_eq!(Record::decode(&b[..RECORD_LEN - 1]), None);
        }
        // An offset past 48 bits is recorded without its checksum, never cut short.
        let beyond = Loc {
            offset: 1 << 48,
            ..checked
        };
        let b = Record::Add(Hash::of(b"e"), beyond).encode();
        assert_eq!(b[0], 1, "falls back to the plain add");
        assert_eq!(
            Record::decode(&b),
            Some(Record::Add(
                Hash::of(b"e"),
                Loc {
                    crc: None,
                    ..beyond
                }
            ))
        );
    }
}
