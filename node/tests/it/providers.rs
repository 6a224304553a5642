//! Providers as a consumer meets them: one that corrupts every chunk is banned while
//! the fetch completes from the others, a busy one is retried, one that does not hold
//! the manifest yet is asked again, a slow one gets less work; a version one node
//! holds whose gossip its peer lost reaches the peer by anti-entropy. Real nodes in-process on loopback plus a scripted peer; every wait has a
//! deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_serving_corrupt_chunks_is_banned_and_the_fetch_completes_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    // A publishes; B fetches it and so becomes a second honest provider.
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(
        dir.path(),
        "b",
        "finance",
        &finance,
        &genesis,
        vec![a_addr.clone()],
    )
    .await;
    let bytes = random_bytes(8_000_000, 0x9E37_79B9_7F4A_7C15);
    let data = data_dir(dir.path(), "big.bin", &bytes);
    let published = a.node.publish(data, BIG_TOML.into()).await.unwrap();
    let target: mesh_protocol::ProductRef = "sales/big".parse().unwrap();
    let bn = b.node.clone();
    wait_for("B to learn the product", || bn.probe().catalog_len() == 1).await;
    b.node.fetch(&target, None, None).await.unwrap();

    // The rogue serves the genuine manifest, but every chunk it sends is garbage of
    // the right length.
    let hash: Hash = published.manifest.parse().unwrap();
    let (signed, manifest) = a.node.probe().manifest(&hash).unwrap();
    let lens: std::collections::HashMap<Hash, u32> = manifest
        .files
        .iter()
        .flat_map(|f| f.chunks.iter().map(|c| (c.hash, c.len)))
        .collect();
    let manifest_bytes = signed.to_bytes();
    let rogue_lens = lens.clone();
    let respond: Responder = Arc::new(move |r| {
        provider_answer(r, &manifest_bytes, &[], |c| {
            vec![0x5A; rogue_lens.get(c).copied().unwrap_or(1) as usize]
        })
    });

    // C knows A and B; the rogue dials C.
    let b_addr = b.node.status().await.unwrap().listen[0].clone();
    let (c, _rogue) = start_consumer(
        dir.path(),
        &finance,
        &genesis,
        vec![a_addr, b_addr],
        respond,
        3,
    )
    .await;

    let out = dir.path().join("out");
    let outcome = c
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        bytes,
        "byte-identical despite the rogue"
    );
    let honest = [a.node.peer_id().to_string(), b.node.peer_id().to_string()];
    assert_eq!(
        outcome.banned.len(),
        1,
        "the corrupting provider is banned: {outcome:?}"
    );
    assert!(!honest.contains(&outcome.banned[0]));
    // Sending corrupt chunks also costs the rogue its gossip standing.
    let peers = c.node.peers().await.unwrap();
    let rogue = peers
        .iter()
        .find(|p| p.peer_id == outcome.banned[0])
        .expect("the rogue is still connected");
    assert!(rogue.graylisted, "{rogue:?}");
    assert!(
        outcome.providers.iter().all(|p| honest.contains(p)),
        "{outcome:?}"
    );
    let unique: u64 = lens.values().map(|l| u64::from(*l)).sum();
    assert_eq!(
        outcome.transferred_bytes, unique,
        "only verified bytes count"
    );
    for n in [c, b, a] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_provider_is_retried_not_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let bytes: Vec<u8> = (0..3_000_000u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9) >> 7) as u8 ^ (i >> 12) as u8)
        .collect();
    std::fs::write(data.join("f.bin"), &bytes).unwrap();
    let toml = "id = \"sales/f\"\nversion = \"1.0.0\"\ntitle = \"F\"\n[owner]\nteam = \"t\"\n";
    let published = a.node.publish(data, toml.into()).await.unwrap();

    // The only provider C can reach: answers Busy to the first request for each chunk,
    // then serves the genuine bytes (read from A's store).
    let genuine = genuine_answers(&a, &published.manifest);
    let asked = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let busy_answers = Arc::new(AtomicUsize::new(0));
    let busy = busy_answers.clone();
    let respond: Responder = Arc::new(move |r| {
        let first = match &r {
            Request::Chunk { chunk, .. } => Some(*chunk),
            Request::Chunks { chunks, .. } => chunks.first().copied(),
            _ => None,
        };
        if first.is_some_and(|c| asked.lock().unwrap().insert(c)) {
            busy.fetch_add(1, Ordering::SeqCst);
            return framed(&wire::encode_response(&Response::Busy));
        }
        genuine(r)
    });
    let (c, _rogue) = start_consumer(dir.path(), &finance, &genesis, vec![], respond, 1).await;

    let out = dir.path().join("out");
    let target: mesh_protocol::ProductRef = "sales/f".parse().unwrap();
    let outcome = c
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(out.join("f.bin")).unwrap(), bytes);
    assert!(
        busy_answers.load(Ordering::SeqCst) >= published.chunks.min(2),
        "the provider was busy"
    );
    assert_eq!(outcome.banned.len(), 0, "busy is not misbehaviour");
    for n in [c, a] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_the_manifest_yet_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let bytes = random_bytes(300_000, 0x9E37_79B9_7F4A_7C15);
    let data = data_dir(dir.path(), "f.bin", &bytes);
    let toml = "id = \"sales/f\"\nversion = \"1.0.0\"\ntitle = \"F\"\n[owner]\nteam = \"t\"\n";
    let published = a.node.publish(data, toml.into()).await.unwrap();

    // The only provider C can reach is a neighbour fetching the same new version:
    // its first two answers for the manifest (C's background prefetch, then C's
    // fetch) are "not found", later ones the genuine manifest. A, the publisher, is
    // not reachable from C.
    let genuine = genuine_answers(&a, &published.manifest);
    let manifest_asks = Arc::new(AtomicUsize::new(0));
    let asks = manifest_asks.clone();
    let respond: Responder = Arc::new(move |r| {
        if matches!(r, Request::Manifest(_)) && asks.fetch_add(1, Ordering::SeqCst) < 2 {
            return framed(&wire::encode_response(&Response::NotFound));
        }
        genuine(r)
    });
    let (c, _rogue) = start_consumer(dir.path(), &finance, &genesis, vec![], respond, 1).await;

    let out = dir.path().join("out");
    let target: mesh_protocol::ProductRef = "sales/f".parse().unwrap();
    let outcome = c.node.fetch(&target, Some(out.clone()), None).await;
    let asked = manifest_asks.load(Ordering::SeqCst);
    assert!(outcome.is_ok(), "{outcome:?} after {asked} manifest asks");
    assert_eq!(std::fs::read(out.join("f.bin")).unwrap(), bytes);
    assert!(asked >= 3, "asked for the manifest {asked} times");
    for n in [c, a] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_gets_less_work() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let bytes = random_bytes(40_000_000, 0x2545_F491_4F6C_DD1D);
    let data = data_dir(dir.path(), "f.bin", &bytes);
    let toml = "id = \"sales/f\"\nversion = \"1.0.0\"\ntitle = \"F\"\n[owner]\nteam = \"t\"\n";
    let published = a.node.publish(data, toml.into()).await.unwrap();

    // A second provider with the genuine chunks, but 40 ms slow on every chunk.
    let hash: Hash = published.manifest.parse().unwrap();
    let (signed, _) = a.node.probe().manifest(&hash).unwrap();
    let chunks = a.node.probe().chunks();
    let manifest_bytes = signed.to_bytes();
    let respond: Responder = Arc::new(move |r| {
        if matches!(r, Request::Chunk { .. } | Request::Chunks { .. }) {
            std::thread::sleep(Duration::from_millis(40)); // the provider's slowness
        }
        provider_answer(r, &manifest_bytes, &[], |c| {
            chunks.get_verified(c, 4 << 20).unwrap()
        })
    });
    let (c, _slow) = start_consumer(dir.path(), &finance, &genesis, vec![a_addr], respond, 2).await;

    let target: mesh_protocol::ProductRef = "sales/f".parse().unwrap();
    let outcome = c
        .node
        .fetch(&target, Some(dir.path().join("out")), None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("out/f.bin")).unwrap(), bytes);
    let fast = outcome
        .served
        .get(&a.node.peer_id().to_string())
        .copied()
        .unwrap_or(0);
    let slow: u64 = outcome.served.values().sum::<u64>() - fast;
    assert!(
        fast > 2 * slow,
        "the fast provider served more: fast {fast}, slow {slow}"
    );
    for n in [c, a] {
        n.shutdown().await.unwrap();
    }
}

/// Answers as an honest provider of the version with `manifest` would: its manifest, A's catalog
/// page and the chunks, all read from A's store.
fn genuine_answers(
    a: &mesh_node::RunningNode,
    manifest: &str,
) -> impl Fn(Request) -> Vec<u8> + Send + Sync + 'static {
    let hash: Hash = manifest.parse().unwrap();
    let (signed, _) = a.node.probe().manifest(&hash).unwrap();
    let catalog_page = a.node.probe().catalog_page(16);
    let chunks = a.node.probe().chunks();
    let manifest_bytes = signed.to_bytes();
    move |r| {
        provider_answer(r, &manifest_bytes, &catalog_page, |c| {
            chunks.get_verified(c, 4 << 20).unwrap()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_gossip_was_lost_is_repaired_by_the_digest_anti_entropy() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(dir.path(), "b", "finance", &finance, &genesis, vec![a_addr]).await;
    let b_probe = b.node.probe();
    wait_for_async("B to connect to A", || {
        let net = b.node.clone();
        async move { net.peers().await.is_ok_and(|p| !p.is_empty()) }
    })
    .await;
    // A holds versions B never heard of (kept without gossip, as if lost): B pulls
    // them within a round of digest asks (one peer: a tick or two), long before the
    // 30 s full anti-entropy pass, and without any new connection.
    let started = std::time::Instant::now();
    let probe = a.node.probe();
    for n in 1..=3 {
        probe
            .keep(&announcement(&format!("sales/lost-{n}"), &sales, &sales))
            .unwrap();
    }
    wait_for_async_within(
        "B to learn the versions A holds",
        std::time::Duration::from_secs(20),
        || {
            let p = b_probe.clone();
            async move { p.catalog_len() == 3 }
        },
    )
    .await;
    println!("repaired in {} ms", started.elapsed().as_millis());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
