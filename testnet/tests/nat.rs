//! A mesh across networks, behind real NATs in network namespaces (see
//! `mesh_testnet::nat`): relay slots reserved by every NATed node, the catalog on
//! every node, a hole punched between the two cone-NAT sites, the symmetric-NAT site
//! served through the relay, DNS bootstrap (`/dnsaddr`, `/dns4`), and a fetch over
//! the punched link after the relay is gone. Needs root: in CI it runs (`.ci/run`
//! installs iproute2, nftables and dnsmasq); elsewhere without root it says so and
//! stops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use mesh_testnet::nat::{self, NatLab};
use mesh_testnet::MeshBin;

#[test]
fn a_mesh_across_nats_punches_holes_relays_what_it_cannot_and_survives_the_relay() {
    if let Some(why) = nat::unavailable() {
        if std::env::var_os("CI").is_some() {
            panic!("the NAT lab must run in CI, but it {why}");
        }
        eprintln!("SKIPPED: the NAT lab {why}; run as root to test behind NATs");
        return;
    }
    let mesh = MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet"));
    let mut lab = NatLab::start(mesh, 2).expect("start the lab");
    let report = match nat::scenario(&mut lab, 40_000, Duration::from_secs(90)) {
        Ok(r) => r,
        Err(e) => panic!("the scenario: {e:#}\n{}", lab.logs()),
    };
    println!("{}", report.markdown());
    assert!(report.hole_punches >= 1, "{report:?}");
    assert!(report.first_hole_punch_ms.is_some(), "{report:?}");
    assert!(
        report.relayed_links >= 1,
        "the symmetric site stays relayed: {report:?}"
    );
    assert!(report.direct_links >= 1, "{report:?}");
    // One dial opens a circuit per relayed address it tries: a node advertises one
    // per relay, and the relay's per-peer limit leaves room for a consumer that
    // dials several NATed providers at once.
    // A refusal names its status (no reservation, or a limit) in the relay's log.
    let refusals: Vec<String> = lab.net.nodes[0]
        .log()
        .lines()
        .filter(|l| l.contains("circuit refused"))
        .map(str::to_owned)
        .collect();
    assert_eq!(report.relay_refusals, 0, "{report:?}\n{refusals:#?}");
    assert!(report.direct_mbps > 0.0 && report.relayed_mbps > 0.0 && report.lan_mbps > 0.0);
}
