//! A short chaos soak in CI: ten real nodes, a seeded schedule of work and faults
//! (kill -9, SIGSTOP, partitions, corrupted chunks), and the checker's verdict.
//! `scripts/chaos MINUTES SEED` runs long ones.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use mesh_testnet::chaos::{markdown, run, ChaosOptions};
use mesh_testnet::MeshBin;

#[test]
fn a_short_chaos_soak_keeps_every_promise() {
    let report = run(ChaosOptions {
        nodes: 10,
        duration: Duration::from_secs(25),
        seed: 7,
        mesh: MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet")),
        dir: None,
        say: |line| eprintln!("{line}"),
    })
    .unwrap();
    eprintln!("{}", markdown(&report));
    assert!(report.violations.is_empty(), "{}", markdown(&report));
    let acked = |op: &str| report.operations.get(op).map_or(0, |(_, a)| *a);
    assert!(acked("publish") >= 3, "{}", markdown(&report));
    assert!(acked("fetch") >= 1, "{}", markdown(&report));
    assert!(!report.faults.is_empty(), "{}", markdown(&report));
    assert!(report.checked["acknowledged publish held and verifies"] >= 3);
}
