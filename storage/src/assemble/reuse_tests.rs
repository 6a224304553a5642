//! Outputs started from an earlier version on disk: the bytes come out right, and
//! the unchanged ones come from the base (cloned or copied by the kernel).

use std::fs;
use std::path::Path;

use mesh_protocol::manifest::FileEntry;

use super::{Base, Output, OutputOptions};
use crate::chunker::chunk_file;
use crate::ChunkStore;

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    mesh_testkit::SeededRng::new(seed).fill(&mut v);
    v
}

/// Chunks `data` into `store` as file `name` of a product.
fn entry(store: &ChunkStore, dir: &Path, name: &str, data: &[u8]) -> FileEntry {
    let src = dir.join(format!("src-{name}"));
    fs::write(&src, data).unwrap();
    let c = chunk_file(&src, store).unwrap();
    FileEntry {
        path: name.into(),
        size: c.size,
        chunks: c.chunks,
    }
}

/// Version 1 written to `out_dir`; version 2 (scattered edits and an append)
/// written from it as base. Returns what reuse reported.
fn new_version_from_base(out_dir: &Path, work: &Path) -> super::Reuse {
    let store = ChunkStore::open(&work.join("chunks")).unwrap();
    let v1 = random(4 << 20, 1);
    let mut v2 = v1.clone();
    for at in [300_000, 2_000_000, 3_500_000] {
        v2[at] ^= 0xff;
    }
    v2.extend_from_slice(&random(100_000, 2));
    let e1 = entry(&store, work, "data.bin", &v1);
    let options = OutputOptions::default();
    super::write_files(std::slice::from_ref(&e1), &store, out_dir, options, &[]).unwrap();
    let e2 = entry(&store, work, "data.bin", &v2);
    let shared: Vec<_> = e1
        .chunks
        .iter()
        .filter(|c| e2.chunks.contains(c))
        .copied()
        .collect();
    assert!(shared.len() >= e1.chunks.len() / 2, "most chunks unchanged");
    let base = Base {
        path: out_dir.join("data.bin"),
        entry: e1,
    };
    // The destination is the base itself: no --force needed, it is our own file.
    let out =
        Output::create_from(std::slice::from_ref(&e2), out_dir, options, &[Some(base)]).unwrap();
    let all: Vec<_> = e2.chunks.iter().map(|c| c.hash).collect();
    out.fill_from_store(&store, &all).unwrap();
    out.commit().unwrap();
    assert_eq!(fs::read(out_dir.join("data.bin")).unwrap(), v2);
    let reuse = out.reuse();
    let shared_bytes: u64 = shared.iter().map(|c| u64::from(c.len)).sum();
    assert_eq!(reuse.bytes(), shared_bytes, "every unchanged chunk reused");
    reuse
}

#[test]
fn a_new_version_copies_unchanged_bytes_from_the_previous_output() {
    let dir = tempfile::tempdir().unwrap();
    let reuse = new_version_from_base(&dir.path().join("out"), dir.path());
    // Whatever the file system, the bytes came from the base; how depends on it.
    assert_eq!(reuse.shared_bytes > 0, reuse.cloned_files == 1, "{reuse:?}");
}

/// On a file system with reflinks the new file shares the old one's blocks. Set
/// `MESH_TEST_REFLINK_DIR` to a directory on XFS (`mkfs.xfs -m reflink=1`) or
/// btrfs; `.ci/run` mounts one. In CI its absence is a failure, not a skip.
#[test]
fn on_a_reflink_file_system_the_new_version_is_a_clone() {
    let Some(root) = std::env::var_os("MESH_TEST_REFLINK_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set MESH_TEST_REFLINK_DIR (a directory on XFS or btrfs)"
        );
        eprintln!(
            "SKIPPED: set MESH_TEST_REFLINK_DIR to a directory on XFS or btrfs to test cloning"
        );
        return;
    };
    let dir = tempfile::tempdir_in(root).unwrap();
    let reuse = new_version_from_base(&dir.path().join("out"), dir.path());
    assert_eq!(reuse.cloned_files, 1, "{reuse:?}");
    assert!(
        reuse.shared_bytes > reuse.copied_bytes,
        "unchanged chunks at unchanged offsets are shared, not copied: {reuse:?}"
    );
}

#[test]
fn a_base_that_changed_size_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChunkStore::open(&dir.path().join("chunks")).unwrap();
    let v1 = random(1 << 20, 3);
    let e1 = entry(&store, dir.path(), "a.bin", &v1);
    let out_dir = dir.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    fs::write(out_dir.join("a.bin"), &v1[..1000]).unwrap();
    let base = Base {
        path: out_dir.join("a.bin"),
        entry: e1.clone(),
    };
    let files = std::slice::from_ref(&e1);
    let out = super::write_files(
        files,
        &store,
        &out_dir,
        OutputOptions::default(),
        &[Some(base)],
    )
    .unwrap();
    assert_eq!(out.reuse().bytes(), 0);
    assert_eq!(fs::read(out_dir.join("a.bin")).unwrap(), v1);
}
