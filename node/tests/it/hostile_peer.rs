//! A real node (in-process, on loopback) against a rogue libp2p peer that speaks the
//! mesh protocols with hostile intent: garbage, forged and oversized gossip, malformed
//! and oversized transfer frames, and a catalog page full of forgeries that claims
//! there is always more. The node must reject every forgery, stay responsive, and
//! keep accepting honest data. Every wait has a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peer_cannot_forge_crash_or_stall_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let stranger = KeyPair::generate();
    let running = start_node(dir.path(), "node", "finance", &finance, &genesis, vec![]).await;
    let node = running.node.clone();
    let status = node.status().await.unwrap();
    let target: Multiaddr = status.listen[0].parse().unwrap();
    let probe = node.probe();
    let knows = |p: &str| probe.knows(p);

    // Catalog sync: a page of garbage, a forgery by an unregistered key, an
    // impersonation of the sales key, and one honest entry; it claims more pages
    // forever without advancing.
    let page = wire::encode_response(&Response::Catalog {
        entries: vec![
            vec![0xFF; 300],
            announcement("sales/forged-sync", &stranger, &stranger),
            announcement("sales/impersonated-sync", &stranger, &sales),
            announcement("sales/honest-sync", &sales, &sales),
        ],
        more: true,
    });
    // Policy sync: a v2 signed only by a stranger (not the council), claiming more.
    let mut forged_policy = genesis.value().unwrap();
    forged_policy.version = 2;
    forged_policy
        .domains
        .get_mut(&"sales".parse().unwrap())
        .unwrap()
        .publisher_keys
        .insert(stranger.public());
    let forged_policy = Signed::sign(&forged_policy, &stranger);
    let policy_page = wire::encode_response(&Response::Policies {
        entries: vec![vec![0xAA; 100], forged_policy.to_bytes()],
        more: true,
    });
    let seen = Arc::new(Seen::default());
    let (catalog_page, policy_page) = (framed(&page), framed(&policy_page));
    let respond: Responder = Arc::new(move |r| match r {
        Request::Policies { .. } => policy_page.clone(),
        Request::Catalog { .. } => catalog_page.clone(),
        _ => framed(&wire::encode_response(&Response::NotFound)),
    });
    let rogue = spawn_rogue(target, respond, seen.clone());
    wait_for("catalog sync to deliver the honest entry", || {
        knows("sales/honest-sync")
    })
    .await;
    assert_eq!(
        node.status().await.unwrap().policy_version,
        1,
        "a forged policy is never accepted"
    );
    assert!(!knows("sales/forged-sync"));
    assert!(!knows("sales/impersonated-sync"));

    // Gossip: garbage, forgery, impersonation, then an honest canary. Messages from
    // one peer arrive in order, so once the canary is in, the rest were judged.
    wait_for("the node's gossip subscription", || {
        seen.subscribed.load(Ordering::SeqCst)
    })
    .await;
    let publish = |data: Vec<u8>| {
        let rogue = rogue.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            rogue.send(Cmd::Publish(data, tx)).await.unwrap();
            rx.await.unwrap()
        }
    };
    // A forged policy on the policy topic is rejected too.
    {
        let (tx, rx) = oneshot::channel();
        rogue
            .send(Cmd::PublishPolicy(forged_policy.to_bytes(), tx))
            .await
            .unwrap();
        rx.await.unwrap().unwrap();
    }
    for data in [
        vec![0x00; 50],
        announcement("sales/forged-gossip", &stranger, &stranger),
        announcement("sales/impersonated-gossip", &stranger, &sales),
        announcement("sales/canary-gossip", &sales, &sales),
    ] {
        publish(data).await.unwrap();
    }
    wait_for("the honest gossip canary", || knows("sales/canary-gossip")).await;
    assert!(!knows("sales/forged-gossip"));
    assert!(!knows("sales/impersonated-gossip"));

    // A replay: a newer announcement of a version, then an older one of the same
    // version (validly signed, captured earlier). The older one is ignored.
    let issued = |p: &str| {
        probe
            .entries()
            .into_iter()
            .find(|e| e.announcement.product.to_string() == p)
            .map(|e| e.announcement.issued_at_ms)
    };
    let now = unix_now_ms();
    publish(announcement_at("sales/replayed", &sales, &sales, now))
        .await
        .unwrap();
    wait_for("the newer announcement", || {
        issued("sales/replayed").is_some()
    })
    .await;
    publish(announcement_at(
        "sales/replayed",
        &sales,
        &sales,
        now - 60_000,
    ))
    .await
    .unwrap();
    publish(announcement("sales/after-replay", &sales, &sales))
        .await
        .unwrap();
    wait_for("the canary after the replay", || {
        knows("sales/after-replay")
    })
    .await;
    assert_eq!(
        issued("sales/replayed"),
        Some(now),
        "the replayed older announcement did not replace the newer one"
    );
    // Usage reports: a forged and an impersonated one are rejected, an honest one is
    // kept (it arrives last from the same peer, so the others were judged first).
    let report = |consumer: &str, claimed: &KeyPair, signer: &KeyPair| {
        let r = mesh_protocol::usage::UsageReport {
            format: mesh_protocol::usage::USAGE_FORMAT,
            domain: "sales".parse().unwrap(),
            provider: format!("provider-{consumer}"),
            issued_at_ms: 1,
            counts: vec![mesh_protocol::usage::UsageCount {
                // A product the catalog knows: usage of unknown products is an error.
                product: "sales/after-replay".parse().unwrap(),
                version: semver::Version::new(1, 0, 0),
                consumer: consumer.into(),
                fetches: 999,
                grant: String::new(),
            }],
            publisher: claimed.public(),
        };
        Signed::sign(&r, signer).to_bytes()
    };
    for data in [
        report("forged", &stranger, &stranger),
        report("impersonated", &sales, &stranger),
        report("finance", &sales, &sales),
    ] {
        let (tx, rx) = oneshot::channel();
        rogue.send(Cmd::PublishUsage(data, tx)).await.unwrap();
        rx.await.unwrap().unwrap();
    }
    let product: mesh_protocol::ProductRef = "sales/after-replay".parse().unwrap();
    wait_for_async("the honest usage report", || {
        let (node, product) = (node.clone(), product.clone());
        async move { node.usage(product).await.is_ok_and(|u| u.total > 0) }
    })
    .await;
    let usage = node.usage(product).await.unwrap();
    assert_eq!(
        usage.by_consumer.keys().collect::<Vec<_>>(),
        ["finance"],
        "{usage:?}"
    );

    // An oversized gossip message (200 KiB, over the 64 KiB cap) is dropped.
    publish(vec![7u8; 200 * 1024]).await.unwrap();

    // Transfer: garbage body, an oversized length prefix, a truncated frame.
    let peer = node.peer_id();
    let raw = |bytes: Vec<u8>| {
        let rogue = rogue.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            rogue.send(Cmd::Raw(peer, bytes, tx)).await.unwrap();
            rx.await.unwrap()
        }
    };
    assert!(
        raw(framed(&[0xEE; 64])).await.is_err(),
        "garbage request gets no answer"
    );
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.extend_from_slice(&[0u8; 1024]);
    assert!(raw(huge).await.is_err(), "oversized frame is refused");
    assert!(
        raw(vec![0, 0, 0, 100, 1, 2, 3]).await.is_err(),
        "truncated frame is refused"
    );
    // Too many chunks at once: 65 names fit a request frame but not a batch; 200
    // names do not even fit a frame.
    let names = |n: usize| {
        framed(&wire::encode_request(&Request::Chunks {
            manifest: Hash::of(b"m"),
            chunks: (0..n).map(|i| Hash::of(&i.to_le_bytes())).collect(),
            start: false,
        }))
    };
    let body = raw(names(65)).await.expect("answered");
    assert!(
        matches!(wire::decode_response(&body).unwrap(), Response::Invalid(_)),
        "65 chunks at once are refused"
    );
    assert!(
        raw(names(200)).await.is_err(),
        "an oversized request is dropped"
    );
    let too_many = wire::encode_request(&Request::Catalog {
        after: None,
        limit: u16::MAX,
    });
    let body = raw(framed(&too_many)).await.expect("the node still serves");
    let Response::Catalog { entries, .. } = wire::decode_response(&body).unwrap() else {
        panic!("expected a catalog page")
    };
    assert_eq!(entries.len(), 4, "only the four honest entries are served");

    // The node is still responsive, and the endless catalog was not followed forever.
    assert_eq!(node.status().await.unwrap().catalog, 4);
    assert!(
        seen.catalog_requests.load(Ordering::SeqCst) <= 2,
        "a non-advancing cursor stops the sync"
    );
    assert_eq!(
        seen.policy_requests.load(Ordering::SeqCst),
        2,
        "a policy page whose versions do not advance is not followed"
    );
    assert_eq!(node.status().await.unwrap().policy_version, 1);

    // Connection exhaustion: the rogue dials 20 more times. The node keeps at most
    // MAX_CONNECTIONS_PER_PEER connections to it and goes on answering.
    for _ in 0..20 {
        rogue.send(Cmd::DialAgain).await.unwrap();
    }
    let open = || seen.opened.load(Ordering::SeqCst) - seen.closed.load(Ordering::SeqCst);
    wait_for("every extra dial to be settled", || {
        seen.opened.load(Ordering::SeqCst) + seen.refused.load(Ordering::SeqCst) >= 21
            && open() <= mesh_node::MAX_CONNECTIONS_PER_PEER as usize
    })
    .await;
    assert!(
        seen.opened.load(Ordering::SeqCst) > 1,
        "the rogue did dial again"
    );
    assert!(
        open() <= mesh_node::MAX_CONNECTIONS_PER_PEER as usize,
        "{} open",
        open()
    );
    node.status().await.unwrap();
    running.shutdown().await.unwrap();
}

/// A peer that floods invalid announcements loses its gossip score and is
/// disconnected once graylisted (and kept out), while announcements from an
/// honest peer go on arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_invalid_announcements_graylists_the_flooder() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let stranger = KeyPair::generate();
    let a = start_node(dir.path(), "a", "finance", &finance, &genesis, vec![]).await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(
        dir.path(),
        "b",
        "sales",
        &sales,
        &genesis,
        vec![a_addr.clone()],
    )
    .await;
    let (rogue, seen) = spawn_idle_rogue(&a_addr, false);
    wait_for("the node's gossip subscription", || {
        seen.subscribed.load(Ordering::SeqCst)
    })
    .await;
    let (net, b_id) = (a.node.clone(), b.node.peer_id().to_string());
    let rogue_info = || {
        let (net, b_id) = (net.clone(), b_id.clone());
        async move {
            net.peers()
                .await
                .unwrap()
                .into_iter()
                .find(|p| p.peer_id != b_id)
        }
    };
    wait_for_async("the rogue to be connected", || async {
        rogue_info().await.is_some()
    })
    .await;

    for i in 0..40 {
        let forged = announcement(&format!("sales/flood-{i}"), &stranger, &stranger);
        let (tx, rx) = oneshot::channel();
        rogue.send(Cmd::Publish(forged, tx)).await.unwrap();
        // Once graylisted it is disconnected: the rest of the flood has nowhere to go.
        if rx.await.unwrap().is_err() {
            break;
        }
    }
    // Graylisted as its invalid messages are rejected, and disconnected then (its
    // score would climb back within seconds), and kept out.
    wait_for_async("the flooder to be disconnected", || async {
        rogue_info().await.is_none()
    })
    .await;

    // The honest peer keeps its standing and its announcements still arrive.
    b.node
        .probe()
        .announce(announcement("sales/honest-after-flood", &sales, &sales))
        .await
        .unwrap();
    let probe = a.node.probe();
    wait_for("the honest announcement", || {
        probe.knows("sales/honest-after-flood")
    })
    .await;
    let honest = net.peers().await.unwrap();
    let honest = honest.iter().find(|p| p.peer_id == b_id).unwrap();
    assert!(!honest.graylisted, "{honest:?}");
    assert!(honest.score.unwrap_or(0.0) >= 0.0, "{honest:?}");
    assert_eq!(
        a.node.probe().catalog_len(),
        1,
        "none of the flood was kept"
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// Regression: an unsigned document bearing an accepted version number was reported
/// as equivocation (any peer could raise the alarm), and the record was lost on
/// restart. Now only a document validly signed by the council counts, and its
/// evidence survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_council_signed_conflict_is_equivocation_and_its_evidence_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        council,
        sales,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let mut conflicting = genesis.value().unwrap();
    conflicting.rules = "// a different genesis".into();
    let unsigned = Signed::unsigned(&conflicting);
    let err = a.node.submit_policy(unsigned).await.unwrap_err();
    assert!(!err.to_string().contains("equivocation"), "{err}");
    assert_eq!(a.node.status().await.unwrap().equivocations, 0);

    let signed = Signed::sign(&conflicting, &council);
    let err = a.node.submit_policy(signed).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("equivocation"),
        "{err}"
    );
    let status = a.node.status().await.unwrap();
    assert_eq!(
        (status.equivocations, status.equivocated_versions),
        (1, vec![1])
    );
    assert_eq!(status.policy_version, 1, "the accepted genesis stays");
    a.shutdown().await.unwrap();

    let a = restart_node(dir.path().join("a")).await.unwrap();
    assert_eq!(
        a.node.status().await.unwrap().equivocations,
        1,
        "the evidence survives a restart"
    );
    a.shutdown().await.unwrap();
}
