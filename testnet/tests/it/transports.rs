//! Transports on real node processes: a mesh whose nodes listen on QUIC only, one of
//! them bootstrapped through a `/dns4/localhost/...` name (resolved from the hosts
//! file when dialled), gossips, publishes and fetches over QUIC; `mesh peers` names
//! the transport, the connection type, the listen addresses identify reported, and
//! the mesh agent. Without the QUIC transport the nodes could not listen; without
//! DNS resolution the bootstrap could not be dialled.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::net::Ipv4Addr;

use common::{testnet, DEADLINE};
use mesh_testnet::{file_hash, sample, wait_until, Transport};

#[test]
fn a_quic_only_mesh_bootstrapped_by_dns_name_publishes_and_fetches() {
    let mut net = testnet(2);
    for n in &mut net.nodes {
        n.transport = Transport::Quic;
    }
    // `localhost` resolves to 127.0.0.1, so the bootstrap node listens there.
    net.nodes[0].ip = Ipv4Addr::LOCALHOST;
    net.start_with(0, &[]).unwrap();
    let first = net.nodes[0].status().unwrap();
    assert!(
        first
            .listen
            .iter()
            .all(|a| a.contains("/udp/") && a.contains("/quic-v1")),
        "{:?}",
        first.listen
    );
    let port = net.nodes[0].socket_addr().unwrap().port();
    let by_name = format!(
        "/dns4/localhost/udp/{port}/quic-v1/p2p/{}",
        net.nodes[0].peer_id
    );
    net.start_with(1, &[by_name]).unwrap();
    net.wait_peers(1, 1, DEADLINE).unwrap();

    let peers = net.nodes[1].client().unwrap().peers().unwrap();
    let p = peers
        .iter()
        .find(|p| p.peer_id == net.nodes[0].peer_id)
        .expect("connected to the bootstrap node");
    assert_eq!(p.transport, "quic", "{p:?}");
    assert_eq!(p.connection, "direct", "{p:?}");
    assert!(
        p.address.contains("/udp/") && p.address.contains("/quic-v1"),
        "{p:?}"
    );
    wait_until(
        "identify to report the peer's listen address",
        DEADLINE,
        || {
            let peers = net.nodes[1].client()?.peers()?;
            Ok(peers.iter().any(|p| {
                p.listen_addrs
                    .iter()
                    .any(|a| a == &format!("/ip4/127.0.0.1/udp/{port}/quic-v1"))
                    && p.agent.as_deref() == Some(&*mesh_node::agent_version())
            }))
        },
    )
    .unwrap();

    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, 2_000, 9).unwrap();
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let out = net.root().join("out");
    let fetched = net.fetch(1, "sales/orders", &out).unwrap();
    assert!(fetched.verified);
    assert_eq!(
        file_hash(&out.join(csv.file_name().unwrap())).unwrap(),
        file_hash(&csv).unwrap()
    );
}

/// Two nodes keep one connection (#33.15): node 1 dials node 0 again and again
/// (as simultaneous dials, redials and foreign stacks did, growing a pair's
/// connections to the cap of 4); within seconds each side has one again, and the
/// pair still gossips.
#[test]
fn two_nodes_close_redundant_connections_to_one() {
    let mut net = testnet(2);
    net.start_with(0, &[]).unwrap();
    let at = net.nodes[0].socket_addr().unwrap();
    let addr = format!(
        "/ip4/{}/tcp/{}/p2p/{}",
        at.ip(),
        at.port(),
        net.nodes[0].peer_id
    );
    net.start_with(1, std::slice::from_ref(&addr)).unwrap();
    net.wait_peers(1, 1, DEADLINE).unwrap();
    let connections = |i: usize, j: usize| -> anyhow::Result<usize> {
        let peers = net.nodes[i].client()?.peers()?;
        Ok(peers
            .iter()
            .find(|p| p.peer_id == net.nodes[j].peer_id)
            .map_or(0, |p| p.connections))
    };
    let mut most = 0;
    for _ in 0..3 {
        net.nodes[1].client().unwrap().add_peer(&addr).unwrap();
        most = most.max(connections(1, 0).unwrap());
    }
    println!("connections seen while redialling: up to {most}");
    wait_until("one connection on each side", DEADLINE, || {
        Ok(connections(0, 1)? == 1 && connections(1, 0)? == 1)
    })
    .unwrap();
    let dir = net.root().join("orders");
    sample::write_orders(&dir, 100, 3).unwrap();
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
}

/// Bulk transfer prefers TCP (#38): nodes that listen on both transports and meet
/// over QUIC (node 1 bootstraps by node 0's QUIC address, which wins a dial race
/// anyway: one round trip less) end up on one TCP connection, and fetch over it.
#[test]
fn nodes_that_meet_over_quic_move_to_tcp_when_both_listen_on_it() {
    let mut net = testnet(2);
    for n in &mut net.nodes {
        n.transport = Transport::Quic;
        n.listen = vec![
            format!("/ip4/{}/udp/0/quic-v1", n.ip),
            format!("/ip4/{}/tcp/0", n.ip),
        ];
    }
    net.start_with(0, &[]).unwrap();
    let quic = net.nodes[0].addr().unwrap();
    assert!(quic.contains("/quic-v1/"), "{quic}");
    net.start_with(1, &[quic]).unwrap();
    net.wait_peers(1, 1, DEADLINE).unwrap();
    let on_tcp = |i: usize, j: usize| -> anyhow::Result<bool> {
        let peers = net.nodes[i].client()?.peers()?;
        Ok(peers.iter().any(|p| {
            p.peer_id == net.nodes[j].peer_id && p.transport == "tcp" && p.connections == 1
        }))
    };
    wait_until("one TCP connection on each side", DEADLINE, || {
        Ok(on_tcp(0, 1)? && on_tcp(1, 0)?)
    })
    .unwrap();
    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, 20_000, 5).unwrap();
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let out = net.root().join("out");
    net.fetch(1, "sales/orders", &out).unwrap();
    assert_eq!(
        file_hash(&out.join(csv.file_name().unwrap())).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert!(on_tcp(1, 0).unwrap(), "still on TCP after the fetch");
}
