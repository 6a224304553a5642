//! Shared setup of the testnet integration tests.

use std::time::Duration;

use mesh_protocol::policy::QualityEnforcement;
use mesh_protocol::policy_change::{PolicyChange, SettingsChange};
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

/// Has the council (signing on nodes 0 and 1) set the policy's quality mode.
#[allow(dead_code)] // not every test binary changes it
pub(crate) fn set_quality(net: &Testnet, mode: QualityEnforcement) {
    let change = PolicyChange {
        settings: SettingsChange {
            quality: Some(mode),
            ..Default::default()
        },
        ..Default::default()
    };
    let signed = net
        .draft_policy(0, &change, &[0, 1])
        .expect("draft the policy");
    net.submit_policy(0, &signed).expect("submit the policy");
}

/// Has the council (signing on nodes 0 and 1) adopt the sample fetch rules
/// (`examples/governance/rules.cedar`: confidential and pii products for their
/// owner, listed consumers and granted domains), and waits until every node
/// enforces that policy (version 2).
#[allow(dead_code)] // not every test binary needs the rules
pub(crate) fn adopt_sample_rules(net: &Testnet) {
    let rules = PolicyChange {
        rules: Some(mesh_testnet::sample::RULES.to_string()),
        ..PolicyChange::default()
    };
    let signed = net
        .draft_policy(0, &rules, &[0, 1])
        .expect("draft the policy");
    net.submit_policy(0, &signed).expect("submit the policy");
    for i in 0..net.nodes.len() {
        net.wait_policy(i, 2, DEADLINE)
            .expect("every node enforces the rules");
    }
}
