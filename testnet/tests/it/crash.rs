//! Crash consistency in CI: ten SIGKILL-and-restart iterations of the harness
//! (`mesh-testnet crash`; `scripts/crash` runs a hundred). Each iteration kills a
//! real node process during a publish, a fetch or a policy submission and checks its
//! promises after the restart; the harness fails with the seed and step otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use mesh_testnet::crash::{self, CrashOptions, Op};
use mesh_testnet::MeshBin;

#[test]
fn ten_kills_during_publish_fetch_and_policy_keep_every_promise() {
    let mut lines = Vec::new();
    let report = crash::run(CrashOptions {
        iterations: 10,
        // A seed whose ten draws include every operation.
        seed: 3,
        rows: 100_000,
        mesh: MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet")),
        power_loss: false,
        say: |line: &str| lines.push(line.to_owned()),
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.iterations.len(), 10);
    for op in [Op::Publish, Op::Fetch, Op::Policy] {
        assert!(
            report.iterations.iter().any(|i| i.op == op),
            "seed 3 exercises {op:?}:\n{}",
            lines.join("\n")
        );
    }
}
