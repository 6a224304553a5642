//! The power-loss disk keeps exactly what was synced, and the crash harness run on
//! it: node homes on a disk that forgets every unsynced write when the power goes.
//!
//! Needs `/dev/fuse` and root (CI has both). Elsewhere the tests say so and return;
//! with `CI` set they fail instead of skipping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::fs::{self, File, OpenOptions};
use std::io::Write;

use mesh_testnet::crash::{self, CrashOptions, Op};
use mesh_testnet::powerloss::{self, Disk};
use mesh_testnet::MeshBin;

/// Whether the machine can mount the disk; in CI it must.
fn can_mount(test: &str) -> bool {
    match powerloss::unavailable() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("{test} needs a FUSE mount and CI must run it: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

#[test]
fn a_power_loss_forgets_unsynced_writes_and_keeps_synced_ones() {
    if !can_mount("a_power_loss_forgets_unsynced_writes_and_keeps_synced_ones") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::mount(&tmp.path().join("disk")).unwrap();
    let root = disk.path().to_owned();

    // Synced, then appended to without a sync.
    let mut kept = File::create(root.join("kept")).unwrap();
    kept.write_all(b"durable").unwrap();
    kept.sync_all().unwrap();
    kept.write_all(b" and lost").unwrap();
    drop(kept);
    // Written and closed, never synced.
    fs::write(root.join("lost"), b"never synced").unwrap();
    // The classic: written to a temporary name and renamed into place, no fsync.
    fs::write(root.join("tmp"), b"renamed unsynced").unwrap();
    fs::rename(root.join("tmp"), root.join("renamed")).unwrap();
    // Synced through one descriptor, written through another.
    let a = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(root.join("two"))
        .unwrap();
    (&a).write_all(b"one").unwrap();
    let b = File::open(root.join("two")).unwrap();
    b.sync_all().unwrap(); // fsync saves the file, whichever descriptor asks
    drop((a, b));
    fs::create_dir(root.join("dir")).unwrap();

    assert_eq!(fs::read(root.join("kept")).unwrap(), b"durable and lost");
    let stats = disk.power_loss();

    assert_eq!(fs::read(root.join("kept")).unwrap(), b"durable");
    assert_eq!(fs::read(root.join("lost")).unwrap(), b"", "unsynced: empty");
    assert_eq!(
        fs::read(root.join("renamed")).unwrap(),
        b"",
        "renamed unsynced"
    );
    assert!(!root.join("tmp").exists(), "names are durable at once");
    assert_eq!(fs::read(root.join("two")).unwrap(), b"one");
    assert!(root.join("dir").is_dir());
    assert_eq!(stats.power_losses, 1);
    assert_eq!(stats.files_reverted, 3, "kept, lost and renamed: {stats:?}");
    assert_eq!(
        stats.bytes_forgotten,
        (b" and lost".len() + b"never synced".len() + b"renamed unsynced".len()) as u64
    );
    disk.unmount().unwrap();
}

#[test]
fn power_losses_during_publish_fetch_and_policy_keep_every_acknowledged_promise() {
    if !can_mount("power_losses_during_publish_fetch_and_policy_keep_every_acknowledged_promise") {
        return;
    }
    let mut lines = Vec::new();
    let report = crash::run(CrashOptions {
        iterations: 8,
        // A seed whose eight draws lose power right after an ack of each operation.
        seed: 12,
        rows: 20_000,
        mesh: MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet")),
        power_loss: true,
        say: |line: &str| lines.push(line.to_owned()),
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lines.join("\n")));
    assert_eq!(report.iterations.len(), 8);
    for op in [Op::Publish, Op::Fetch, Op::Policy] {
        assert!(
            report.iterations.iter().any(|i| i.op == op && i.at_ack),
            "seed 12 loses power right after acknowledging some {op:?}:\n{}",
            lines.join("\n")
        );
    }
    let disk = report.disk.expect("the report has the disk's figures");
    assert!(
        disk.power_losses == 8 && disk.bytes_forgotten > 0,
        "each iteration lost power and some unsynced bytes were forgotten: {disk:?}"
    );
}
