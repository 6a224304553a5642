//! Every fault scenario at a small size (8 nodes, every link through the fault
//! proxy), as CI runs them: each must deliver everything to every node and converge
//! within generous deadlines. Exact times are printed, never asserted. The full sizes
//! run from `scripts/scenarios`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use mesh_testnet::scenario::{self, Options};
use mesh_testnet::MeshBin;

fn run(name: &str) -> scenario::Report {
    let mut opts = Options::new(MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet")), 8);
    opts.announcements = 10;
    opts.products = 50;
    opts.rounds = 2;
    opts.deadline = Duration::from_secs(90);
    opts.idle = Duration::from_secs(3);
    let report = scenario::run(name, &opts).unwrap();
    println!("{}", report.table());
    assert!(report.passed, "{name}: {:?}", report.problems);
    report
}

#[test]
fn propagation_reaches_every_node() {
    let report = run("propagation");
    // The traffic the model in docs/design.md is checked against is measured.
    let d = &report.data;
    assert!(d["per_announcement"]["bytes_in"].as_f64().unwrap() > 0.0);
    assert!(d["per_announcement"]["gossip_copies"].as_f64().unwrap() >= 1.0);
    let a = d["announcement_bytes"].as_u64().unwrap();
    assert!((200..4096).contains(&a), "an announcement of {a} bytes");
}

#[test]
fn a_policy_reaches_every_node() {
    run("policy-convergence");
}

#[test]
fn a_healed_partition_converges_with_nothing_lost_or_doubled() {
    run("partition");
}

#[test]
fn churn_leaves_every_node_with_every_product() {
    run("churn");
}

#[test]
fn a_late_joiner_gets_the_whole_catalog() {
    let report = run("late-join");
    // The joiner pulled the catalog: at least one announcement's worth per product.
    let joined = report.data["joiner_traffic"]["bytes_in"].as_u64().unwrap();
    assert!(joined > 50 * 200, "the joiner received {joined} bytes");
    assert!(report.data["idle_per_node_per_minute"]["bytes_in"].is_u64());
}

#[test]
fn announcements_and_fetches_survive_the_degradation_ladder() {
    run("degrade");
}

#[test]
fn subscribers_materialize_every_version_across_a_partition_and_a_publisher_restart() {
    run("subscription");
}
