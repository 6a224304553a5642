//! Per-peer and overall limits on inbound requests, against a real node on loopback:
//! a peer over its request rate is answered `Busy` while others are served; a peer
//! that asks for chunks and never reads holds only its own few slots, which time out;
//! a node over its memory limit refuses new connections. Every wait has a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::sync::atomic::Ordering as AtomicOrdering;

use common::*;

fn busy_or_served(body: &Result<Vec<u8>, String>) -> Option<bool> {
    match wire::decode_response(body.as_ref().ok()?).ok()? {
        Response::Busy => Some(true),
        _ => Some(false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_request_rate_is_answered_busy_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    // One request a second, seven at once: forty requests in a burst cannot all pass
    // unless the burst takes over half a minute. Seven is what another node needs
    // when it connects (six sync pulls: policies, catalog, provider records, usage,
    // access requests, access decisions) plus the one request below.
    let a = start_node_with(dir.path(), "a", "sales", &sales, &genesis, vec![], |c| {
        c.limits.requests_per_second = 1;
        c.limits.request_burst = 7;
    })
    .await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let (rogue, seen) = spawn_idle_rogue(&a_addr, false);
    wait_for("the rogue to connect", || {
        seen.opened.load(AtomicOrdering::SeqCst) > 0
    })
    .await;

    let request = framed(&wire::encode_request(&Request::Catalog {
        after: None,
        limit: 10,
    }));
    let mut answers = Vec::new();
    for _ in 0..40 {
        let (tx, rx) = oneshot::channel();
        rogue
            .send(Cmd::Raw(a.node.peer_id(), request.clone(), tx))
            .await
            .unwrap();
        answers.push(rx);
    }
    let (mut busy, mut served) = (0, 0);
    for rx in answers {
        match busy_or_served(&rx.await.unwrap()) {
            Some(true) => busy += 1,
            Some(false) => served += 1,
            None => {}
        }
    }
    assert!(
        served >= 5,
        "the burst is served ({served} served, {busy} busy)"
    );
    assert!(
        busy >= 10,
        "past the burst, Busy ({served} served, {busy} busy)"
    );
    assert!(a.node.probe().refused_requests() >= busy as u64);

    // Another peer has its own bucket.
    let b = start_node(dir.path(), "b", "finance", &finance, &genesis, vec![a_addr]).await;
    let answer = b
        .node
        .probe()
        .request(
            a.node.peer_id(),
            Request::Catalog {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(matches!(answer, Response::Catalog { .. }), "{answer:?}");
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_holds_only_its_own_slots_until_they_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node_with(dir.path(), "a", "sales", &sales, &genesis, vec![], |c| {
        c.limits.transfers_per_peer = 4;
    })
    .await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let data = data_dir(dir.path(), "big.bin", &random_bytes(8_000_000, 7));
    let published = a.node.publish(data, BIG_TOML.into()).await.unwrap();
    let hash: Hash = published.manifest.parse().unwrap();
    let (_, manifest) = a.node.probe().manifest(&hash).unwrap();
    let chunks: Vec<Hash> = manifest.files[0].chunks.iter().map(|c| c.hash).collect();

    // The deaf rogue asks for 1 MiB-ish batches, twenty times, and reads nothing.
    let (rogue, seen) = spawn_idle_rogue(&a_addr, true);
    wait_for("the rogue to connect", || {
        seen.opened.load(AtomicOrdering::SeqCst) > 0
    })
    .await;
    let batch = framed(&wire::encode_request(&Request::Chunks {
        manifest: hash,
        chunks: chunks.iter().take(8).copied().collect(),
        start: false,
    }));
    let mut pending = Vec::new();
    for _ in 0..20 {
        let (tx, rx) = oneshot::channel();
        rogue
            .send(Cmd::Raw(a.node.peer_id(), batch.clone(), tx))
            .await
            .unwrap();
        pending.push(rx);
    }
    let probe = a.node.probe();
    wait_for(
        "the rogue's requests past its four slots to be refused",
        || probe.refused_requests() >= 16,
    )
    .await;
    assert_eq!(
        probe.reads_in_flight(),
        4,
        "the rogue holds exactly its own slots"
    );

    // Meanwhile an honest peer fetches the whole product from the same node.
    let b = start_node(dir.path(), "b", "finance", &finance, &genesis, vec![a_addr]).await;
    let bn = b.node.clone();
    wait_for("B to learn the product", || bn.probe().catalog_len() == 1).await;
    let target: mesh_protocol::ProductRef = "sales/big".parse().unwrap();
    let out = dir.path().join("out");
    b.node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(out.join("big.bin")).unwrap().len(),
        8_000_000
    );

    // The stuck responses time out and release their slots.
    wait_for_async_within(
        "the stuck responses to time out",
        Duration::from_secs(90),
        || std::future::ready(probe.reads_in_flight() == 0),
    )
    .await;
    drop(pending);
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_its_memory_limit_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let Keys { sales, genesis, .. } = Keys::new();
    // Any running process uses more than 1 MiB.
    let a = start_node_with(dir.path(), "a", "sales", &sales, &genesis, vec![], |c| {
        c.limits.max_memory_mib = 1;
    })
    .await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let (_rogue, seen) = spawn_idle_rogue(&a_addr, false);
    wait_for("the connection to be refused", || {
        seen.refused.load(AtomicOrdering::SeqCst) > 0
            || seen.closed.load(AtomicOrdering::SeqCst) > 0
    })
    .await;
    assert!(a.node.peers().await.unwrap().is_empty());
    a.shutdown().await.unwrap();
}
