//! Shared setup of the testnet integration tests.

use std::time::Duration;

use mesh_testnet::{MeshBin, Testnet, TestnetConfig};

/// How long any single condition may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// A testnet of `nodes` processes over the domains sales, finance, logistics
/// (round-robin), run by this package's `mesh-testnet` binary.
pub(crate) fn testnet(nodes: usize) -> Testnet {
    let mesh = MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet"));
    Testnet::create(TestnetConfig::new(
        mesh,
        nodes,
        &["sales", "finance", "logistics"],
    ))
    .expect("create testnet")
}
