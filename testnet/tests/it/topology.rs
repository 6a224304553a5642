//! A proxied testnet has exactly the links its topology gives it: with discovery off
//! (`--no-discovery`), a node connects only to the peers it was told to dial and
//! those that dial it, even after gossip and manifest prefetches made it want to
//! reach a publisher it has no link to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{testnet, DEADLINE};
use mesh_testnet::proxy::FaultProxy;
use mesh_testnet::{sample, wait_until};

#[test]
fn a_proxied_testnet_keeps_exactly_its_topology() {
    let n = 8;
    let mut net = testnet(n);
    let proxy = FaultProxy::new().unwrap();
    net.start_all_proxied(&proxy, 1, 0x5EED).unwrap();

    // Each node's neighbours: the links it dials and the nodes that dial it.
    let id_of: BTreeMap<String, usize> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.peer_id.clone(), i))
        .collect();
    let mut expected: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, node) in net.nodes.iter().enumerate() {
        for link in node.links() {
            let peer = link.rsplit('/').next().unwrap();
            let j = id_of[peer];
            expected[i].insert(j);
            expected[j].insert(i);
        }
    }
    assert!(
        expected.iter().any(|e| e.len() < n - 1),
        "the topology is not a full mesh: {expected:?}"
    );

    // A publish makes every node prefetch the manifest from the publisher, which
    // most of them have no link to.
    let dir = net.root().join("data");
    sample::write_orders(&dir, 20, 1).unwrap();
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    for i in 0..n {
        wait_until(&format!("node {i} to hold the manifest"), DEADLINE, || {
            let show = net.nodes[i]
                .client()?
                .show(&"sales/orders".parse()?, None)?;
            Ok(show.manifest.is_some())
        })
        .unwrap();
    }
    // Links may be redialling (every 2 s) at any moment, so wait for each node's
    // peers to be exactly its links; with the leak, extra peers stay for good.
    let peers_of = |i: usize| -> anyhow::Result<BTreeSet<usize>> {
        Ok(net.nodes[i]
            .client()?
            .peers()?
            .iter()
            .filter_map(|p| id_of.get(&p.peer_id).copied())
            .collect())
    };
    for (i, want) in expected.iter().enumerate() {
        let exact = wait_until(
            &format!("node {i}'s peers to be its links"),
            DEADLINE,
            || Ok(peers_of(i)? == *want),
        );
        assert!(
            exact.is_ok(),
            "node {i} is connected to {:?}, its links are {want:?}",
            peers_of(i).ok()
        );
    }
}
