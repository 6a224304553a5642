//! The TCP transport's security as another libp2p peer sees it: a bare peer that
//! speaks only libp2p's TLS (`/tls/1.0.0`) reaches a node, and is reached by it, so
//! nodes offer TLS both ways (AES-GCM first when dialling: `net/tls.rs`; a peer
//! that speaks only noise, like the rogue of `hostile_peer`, still gets noise).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::*;

/// A swarm with only libp2p-tls on TCP and no protocols, listening on loopback;
/// its address (with `/p2p/`).
async fn tls_only_peer() -> (libp2p::Swarm<libp2p::swarm::dummy::Behaviour>, Multiaddr) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            libp2p::tls::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::swarm::dummy::Behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let id = *swarm.local_peer_id();
    (swarm, addr.with(libp2p::multiaddr::Protocol::P2p(id)))
}

/// Waits until `swarm` has a connection to `peer` that it `dialled` (or
/// accepted); fails on an outgoing connection error or after the deadline.
async fn connected(
    swarm: &mut libp2p::Swarm<libp2p::swarm::dummy::Behaviour>,
    peer: PeerId,
    dialled: bool,
) {
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished {
                    peer_id, endpoint, ..
                } if peer_id == peer && endpoint.is_dialer() == dialled => return,
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("dialling the node failed: {error}")
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("no TLS connection with the node before the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_peer_reaches_a_node_and_is_reached_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        finance, genesis, ..
    } = Keys::new();
    let running = start_node(dir.path(), "node", "finance", &finance, &genesis, vec![]).await;
    let node = running.node.clone();
    let target: Multiaddr = node.status().await.unwrap().listen[0].parse().unwrap();

    // The peer dials the node: the node answers TLS.
    let (mut peer, _) = tls_only_peer().await;
    peer.dial(target).unwrap();
    connected(&mut peer, node.peer_id(), true).await;

    // The node dials the peer: the node offers TLS.
    let (mut peer, addr) = tls_only_peer().await;
    node.add_peer(&addr.to_string()).await.unwrap();
    connected(&mut peer, node.peer_id(), false).await;

    running.shutdown().await.unwrap();
}
