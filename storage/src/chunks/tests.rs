//! Unit tests of the chunk store: round trips, pack layout, torn and corrupt
//! index logs, removal, compaction, faults.

use super::*;
use crate::dir_packs::DirPacks;
use std::io::Write;
use std::os::unix::fs::FileExt;

fn corrupt(store: &ChunkStore, h: &Hash) {
    let at = store.locate(h).unwrap();
    let f = OpenOptions::new().write(true).open(&at.path).unwrap();
    f.write_all_at(&vec![0xAB; at.len as usize], at.offset)
        .unwrap();
}

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
    corrupt(&store, &h);
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

#[test]
fn one_writer_at_a_time_and_readers_see_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let (h, _) = store.put(b"shared").unwrap();
    assert!(matches!(
        ChunkStore::open(dir.path()),
        Err(ChunkError::Locked(_))
    ));
    let reader = ChunkStore::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.get_verified(&h, 100).unwrap(), b"shared");
    assert!(matches!(reader.put(b"x"), Err(ChunkError::ReadOnly(_))));
    drop(store);
    ChunkStore::open(dir.path()).unwrap();
}

#[test]
fn reopening_replays_adds_and_removals_and_cuts_torn_records() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c);
    {
        let store = ChunkStore::open(dir.path()).unwrap();
        a = store.put(b"alpha").unwrap().0;
        b = store.put(b"bravo").unwrap().0;
        assert_eq!(store.remove(&a).unwrap(), 5);
        assert_eq!(store.remove(&a).unwrap(), 0);
    }
    // A crash mid-append: half a record at the end of the log.
    let log = pack::pack_path(&dir.path().join("packs"), 1, "idx");
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[1, 0, 0]).unwrap();
    drop(f);
    {
        let store = ChunkStore::open(dir.path()).unwrap();
        assert!(!store.has(&a));
        assert_eq!(store.get_verified(&b, 100).unwrap(), b"bravo");
        c = store.put(b"charlie").unwrap().0;
        // Re-adding a removed chunk makes it live again.
        store.put(b"alpha").unwrap();
    }
    let store = ChunkStore::open(dir.path()).unwrap();
    let mut held = store.list().unwrap();
    held.sort();
    let mut want = vec![a, b, c];
    want.sort();
    assert_eq!(held, want);
    assert_eq!(store.get_verified(&c, 100).unwrap(), b"charlie");
}

#[test]
fn a_corrupt_record_mid_log_is_skipped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let hashes: Vec<Hash> = {
        let store = ChunkStore::open(dir.path()).unwrap();
        ["one", "two", "three"]
            .iter()
            .map(|s| store.put(s.as_bytes()).unwrap().0)
            .collect()
    };
    let log = pack::pack_path(&dir.path().join("packs"), 1, "idx");
    let len = fs::metadata(&log).unwrap().len();
    let f = OpenOptions::new().write(true).open(&log).unwrap();
    f.write_all_at(&[0xEE], 10).unwrap(); // inside the first record's hash
    drop(f);
    let store = ChunkStore::open(dir.path()).unwrap();
    assert_eq!(store.corrupt_records(), 1);
    assert!(
        !store.has(&hashes[0]),
        "the corrupt record's chunk is missing"
    );
    assert_eq!(store.get_verified(&hashes[1], 100).unwrap(), b"two");
    assert_eq!(store.get_verified(&hashes[2], 100).unwrap(), b"three");
    assert_eq!(
        fs::metadata(&log).unwrap().len(),
        len,
        "records after the corruption are not cut"
    );
}

#[test]
fn injected_faults_reach_the_caller_and_leave_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let (kept, _) = store.put(b"kept").unwrap();
    store.faults().disk_full_after(3);
    let err = store.put(b"does not fit").unwrap_err().to_string();
    assert!(err.contains("No space left on device"), "{err}");
    store.faults().fail_sync(true);
    assert!(store
        .sync()
        .unwrap_err()
        .to_string()
        .contains("injected sync failure"));
    store.faults().clear();
    store.faults().fail_writes(true);
    assert!(store.put(b"io error").is_err());
    store.faults().clear();
    let (later, _) = store.put(b"after the faults").unwrap();
    store.sync().unwrap();
    drop(store);
    let store = ChunkStore::open(dir.path()).unwrap();
    assert_eq!(store.corrupt_records(), 0);
    assert_eq!(store.len(), 2, "only the successful writes are held");
    assert_eq!(store.get_verified(&kept, 100).unwrap(), b"kept");
    assert_eq!(
        store.get_verified(&later, 100).unwrap(),
        b"after the faults"
    );
}

/// Flips one byte of `h`'s stored copy.
fn flip_one_byte(store: &ChunkStore, h: &Hash, at: u64) {
    let loc = store.locate(h).unwrap();
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&loc.path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, loc.offset + at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], loc.offset + at).unwrap();
}

#[test]
fn checked_reads_use_the_crc_recorded_at_write_and_still_catch_one_flipped_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let (h, _) = {
        let store = ChunkStore::open(dir.path()).unwrap();
        let put = store.put(&data).unwrap();
        store.sync().unwrap();
        put
    };
    // The checksum survives a reopen (the add record carries it).
    let store = ChunkStore::open(dir.path()).unwrap();
    let loc = lock(&store.state).index[&h];
    assert_eq!(loc.crc, Some(crc32fast::hash(&data)));
    assert_eq!(store.get_checked(&h, 1 << 20).unwrap(), data);

    // A recorded checksum that does not match bytes that are intact (a bug, never
    // damage) costs a hash, not the chunk.
    lock(&store.state).index.get_mut(&h).unwrap().crc = Some(!crc32fast::hash(&data));
    assert_eq!(store.get_checked(&h, 1 << 20).unwrap(), data);
    lock(&store.state).index.get_mut(&h).unwrap().crc = Some(crc32fast::hash(&data));

    flip_one_byte(&store, &h, 4321);
    for read in [ChunkStore::get_checked, ChunkStore::get_verified] {
        match read(&store, &h, 1 << 20) {
            Err(ChunkError::Corrupt { expected, actual }) => {
                assert_eq!(expected, h);
                assert_ne!(actual, h);
            }
            other => panic!("a flipped bit must read as corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_record_without_a_crc_is_checked_by_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(dir.path()).unwrap();
    let (h, _) = store
        .put(b"written before checksums were recorded")
        .unwrap();
    lock(&store.state).index.get_mut(&h).unwrap().crc = None;
    assert_eq!(
        store.get_checked(&h, 100).unwrap(),
        b"written before checksums were recorded"
    );
    flip_one_byte(&store, &h, 3);
    assert!(matches!(
        store.get_checked(&h, 100),
        Err(ChunkError::Corrupt { .. })
    ));
}

/// Chunks of `n` pseudo-random bytes each, stored.
fn fill(store: &ChunkStore, count: usize, n: usize, seed: u64) -> Vec<(Hash, Vec<u8>)> {
    let mut rng = mesh_testkit::SeededRng::new(seed);
    (0..count)
        .map(|_| {
            let data = rng.bytes(n);
            let (h, _) = store.put(&data).unwrap();
            (h, data)
        })
        .collect()
}

fn local_packs(root: &Path) -> usize {
    fs::read_dir(root.join("packs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .count()
}

/// Sealed packs go to the remote (a directory here, S3 on a node) and are read
/// back from it, across a reopen; compaction moves a mostly dead one's live chunks
/// home and deletes its object; an object no marker names (a crash between an
/// upload and its marker) is reclaimed; a local pack a crash left beside its
/// marker is deleted at open.
#[test]
fn sealed_packs_are_offloaded_read_back_compacted_and_orphans_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let (root, far) = (dir.path().join("store"), dir.path().join("far"));
    let remote = Arc::new(DirPacks::new(&far).unwrap());
    let store = ChunkStore::open(&root).unwrap();
    store.set_remote(remote.clone());
    store.set_pack_target(100_000);
    let chunks = fill(&store, 40, 20_000, 1);
    store.sync().unwrap();
    let offloaded = store.offload_packs().unwrap();
    assert!(offloaded >= 6, "{offloaded} packs offloaded");
    assert_eq!(local_packs(&root), 1, "only the active pack stays local");
    for (h, data) in &chunks {
        assert_eq!(&store.get_verified(h, 1 << 20).unwrap(), data);
    }
    drop(store);

    let store = ChunkStore::open(&root).unwrap();
    store.set_remote(remote.clone());
    store.set_pack_target(100_000);
    for (h, data) in &chunks {
        assert_eq!(
            &store.get_verified(h, 1 << 20).unwrap(),
            data,
            "after reopen"
        );
    }
    // Most of the first pack's chunks removed: compaction brings the rest home.
    for (h, _) in &chunks[..4] {
        store.remove(h).unwrap();
    }
    store.sync().unwrap();
    let before = remote.list_packs().unwrap().len();
    fs::write(far.join("00009999.pack"), b"left by a crash").unwrap();
    assert!(store.compact().unwrap() > 0);
    let after = remote.list_packs().unwrap();
    assert!(after.len() < before, "{after:?}");
    assert!(
        !after.contains(&"00009999.pack".to_string()),
        "the orphan is reclaimed"
    );
    for (h, data) in &chunks[4..] {
        assert_eq!(
            &store.get_verified(h, 1 << 20).unwrap(),
            data,
            "after compaction"
        );
    }
    // A crash after a marker, before the local pack's deletion: both exist.
    let marked = fs::read_dir(root.join("packs"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "remote"))
        .unwrap()
        .path();
    fs::write(marked.with_extension("pack"), b"stale local copy").unwrap();
    drop(store);
    let store = ChunkStore::open(&root).unwrap();
    store.set_remote(remote);
    assert!(!marked.with_extension("pack").exists());
    for (h, data) in &chunks[4..] {
        assert_eq!(
            &store.get_verified(h, 1 << 20).unwrap(),
            data,
            "after the crash"
        );
    }
}
