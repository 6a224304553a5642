//! Multi-node integration tests: real `mesh` processes on loopback, driven through the
//! testnet library. Every wait has a deadline; no test sleeps for luck.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{testnet, DEADLINE};

use std::path::Path;

use mesh_testnet::{file_hash, sample, wait_until, Testnet};

fn publish_orders(
    net: &Testnet,
    node: usize,
    product: &str,
    version: &str,
    rows: usize,
    seed: u64,
) -> std::path::PathBuf {
    let dir = net
        .root()
        .join(format!("src-{}-{version}", product.replace('/', "-")));
    let csv = sample::write_orders(&dir, rows, seed).unwrap();
    net.publish(node, &dir, &sample::manifest_toml(product, version))
        .expect("publish");
    csv
}

fn chunk_locations(net: &Testnet, node: usize, product: &str) -> Vec<mesh_storage::ChunkLocation> {
    let show = net.nodes[node]
        .client()
        .unwrap()
        .show(&product.parse().unwrap(), None)
        .unwrap();
    let manifest = show.manifest.expect("manifest available");
    let home = mesh_node::NodeHome::new(&net.nodes[node].home);
    let store = mesh_storage::ChunkStore::open_read_only(&home.chunks_path()).unwrap();
    manifest.files[0]
        .chunks
        .iter()
        .map(|c| store.locate(&c.hash).expect("chunk stored"))
        .collect()
}

/// Overwrites a stored chunk's bytes with `byte`, behind the running node's back.
fn corrupt(at: &mesh_storage::ChunkLocation, byte: u8) {
    use std::os::unix::fs::FileExt;
    let pack = std::fs::OpenOptions::new()
        .write(true)
        .open(&at.path)
        .unwrap();
    pack.write_all_at(&vec![byte; at.len as usize], at.offset)
        .unwrap();
}

fn no_partial_files(dir: &Path) -> bool {
    !dir.exists()
        || std::fs::read_dir(dir).unwrap().flatten().all(|e| {
            !e.file_name().to_string_lossy().contains("mesh-partial")
                && e.file_name() != "orders.csv"
        })
}

#[test]
fn three_nodes_publish_gossip_and_fetch_byte_identical() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    let csv = publish_orders(&net, 0, "sales/orders", "1.0.0", 150_000, 1);
    for i in [1, 2] {
        net.wait_product(i, "sales/orders", "1.0.0", DEADLINE)
            .unwrap();
    }
    let source = file_hash(&csv).unwrap();
    for i in [1, 2] {
        let out = net.root().join(format!("out{i}"));
        let o = net.fetch(i, "sales/orders@1.0.0", &out).unwrap();
        assert!(o.verified);
        assert_eq!(o.size, std::fs::metadata(&csv).unwrap().len());
        assert_eq!(file_hash(&out.join("orders.csv")).unwrap(), source);
        let entry = net.products(i).unwrap().into_iter().next().unwrap();
        assert!(entry.local, "node {i} holds the product after fetching it");
    }
    let err = net
        .fetch(1, "sales/unknown", &net.root().join("x"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in this node's catalog"), "{err}");
    // A second fetch of a product already held moves no bytes.
    let again = net
        .fetch(1, "sales/orders", &net.root().join("again"))
        .unwrap();
    assert_eq!(again.transferred_bytes, 0);
    net.stop_all().unwrap();
}

#[test]
fn late_joiner_learns_catalog_by_sync_and_fetches() {
    let mut net = testnet(3);
    net.start(0).unwrap();
    net.start(1).unwrap();
    net.wait_peers(1, 1, DEADLINE).unwrap();
    let csv = publish_orders(&net, 0, "sales/orders", "2.1.0", 20_000, 2);
    net.wait_product(1, "sales/orders", "2.1.0", DEADLINE)
        .unwrap();
    // Node 2 did not exist when the announcement was gossiped: only catalog sync
    // on connect can tell it about the product.
    net.start(2).unwrap();
    net.wait_product(2, "sales/orders", "2.1.0", DEADLINE)
        .unwrap();
    let out = net.root().join("late");
    net.fetch(2, "sales/orders@2.1.0", &out).unwrap();
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
}

#[test]
fn corrupted_chunk_on_provider_never_reaches_a_consumer() {
    let mut net = testnet(3);
    net.start_all().unwrap();

    // Only node 0 holds the product: the fetch fails cleanly, writing nothing.
    publish_orders(&net, 0, "sales/orders", "1.0.0", 60_000, 3);
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    corrupt(&chunk_locations(&net, 0, "sales/orders")[1], 0xAB);
    let out = net.root().join("bad");
    let err = net
        .fetch(1, "sales/orders@1.0.0", &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no provider reachable for chunk"), "{err}");
    assert!(
        no_partial_files(&out),
        "no file may appear under {}",
        out.display()
    );

    // Node 2 holds a healthy copy of another product: node 1 gets the chunk there.
    let csv = publish_orders(&net, 0, "sales/returns", "1.0.0", 60_000, 4);
    net.wait_product(2, "sales/returns", "1.0.0", DEADLINE)
        .unwrap();
    net.fetch(2, "sales/returns", &net.root().join("healthy"))
        .unwrap();
    for victim in chunk_locations(&net, 0, "sales/returns") {
        corrupt(&victim, 0xCD);
    }
    net.wait_product(1, "sales/returns", "1.0.0", DEADLINE)
        .unwrap();
    let out = net.root().join("failover");
    let o = net.fetch(1, "sales/returns", &out).unwrap();
    assert_eq!(o.providers, vec![net.nodes[2].peer_id.clone()]);
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
}

#[test]
fn invalid_manifest_is_refused_naming_the_field_and_changes_nothing() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let dir = net.root().join("src");
    sample::write_orders(&dir, 1000, 5).unwrap();
    let good = sample::manifest_toml("sales/orders", "1.0.0");
    let cases = [
        (
            good.replace("[owner]\nteam = \"sales-data\"\n", "[owner]\n"),
            "owner.team",
        ),
        (
            good.replace("version = \"1.0.0\"", "version = \"one\""),
            "version",
        ),
        (
            good.replace("freshness = \"24h\"", "freshness = \"soon\""),
            "sla.freshness",
        ),
        (good.replace("title = \"Orders\"\n", ""), "title"),
        (
            good.replace("id = \"sales/orders\"", "id = \"Sales Orders\""),
            "id",
        ),
        (format!("{good}\nunknown_field = 1\n"), "unknown_field"),
        (good.replace("sales/orders", "finance/orders"), "domain"),
    ];
    for (toml, field) in cases {
        let err = net.publish(0, &dir, &toml).unwrap_err().to_string();
        assert!(err.contains(field), "error for {field} must name it: {err}");
    }
    // Through the CLI too: non-zero exit, the field named on stderr.
    let manifest = net.root().join("bad.toml");
    std::fs::write(&manifest, good.replace("title = \"Orders\"\n", "")).unwrap();
    let out = net.nodes[0]
        .mesh(
            net.mesh_bin(),
            &[
                "publish",
                dir.to_str().unwrap(),
                "--manifest",
                manifest.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`title`"));
    // Nothing changed: empty catalog, no chunk written.
    assert!(net.products(0).unwrap().is_empty());
    assert_eq!(
        net.nodes[0].chunk_count(),
        0,
        "an invalid publish must not store chunks"
    );
    // Mutating calls need the home's token.
    let addr =
        std::fs::read_to_string(mesh_node::NodeHome::new(&net.nodes[0].home).api_addr_path())
            .unwrap();
    let peer = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let gc = mesh_node::api::GcRequest {
        keep: Some(1),
        dry_run: false,
    };
    for token in [None, Some("wrong".to_string())] {
        let client = mesh_node::ApiClient::new(addr.trim(), token);
        // Every mutating endpoint refuses a missing or wrong token.
        let refused = [
            client.publish(&dir, &good).map(|_| ()),
            client.submit_envelope("00").map(|_| ()),
            client.add_peer(peer).map(|_| ()),
            client.gc(&gc).map(|_| ()),
            client
                .fetch(
                    &mesh_node::api::FetchRequest {
                        product: "sales/orders".into(),
                        out: None,
                        force: false,
                        in_place: false,
                        to_objects: None,
                    },
                    |_| {},
                )
                .map(|_| ()),
            client.query("SELECT 1").map(|_| ()),
            client
                .token_create(&mesh_node::api::TokenCreateBody {
                    domain: "finance".into(),
                    expires_ms: u64::MAX,
                    label: None,
                })
                .map(|_| ()),
            client.tokens().map(|_| ()),
            client
                .token_revoke(&mesh_node::api::TokenRevokeBody {
                    id: None,
                    purge: true,
                })
                .map(|_| ()),
            client
                .derive(&mesh_node::api::DeriveBody {
                    draft: None,
                    product: Some("sales/orders".into()),
                    force: false,
                })
                .map(|_| ()),
            client
                .underive(&"sales/orders".parse().unwrap())
                .map(|_| ()),
        ];
        for r in refused {
            let err = r.unwrap_err();
            assert_eq!(err.kind(), Some("unauthorized"), "{err}");
            assert!(err.to_string().contains("API token"), "{err}");
        }
    }
    assert_eq!(net.policy_version(0).unwrap(), 1);
    assert!(net.products(0).unwrap().is_empty());
    // And a valid one still works.
    net.publish(0, &dir, &good).unwrap();
}

#[test]
fn unregistered_domain_key_cannot_publish_and_nothing_spreads() {
    let mut net = testnet(2);
    let rogue = net.add_unregistered_node("rogue").unwrap();
    net.start_all().unwrap();
    let dir = net.root().join("src");
    sample::write_orders(&dir, 500, 6).unwrap();
    let err = net
        .publish(rogue, &dir, &sample::manifest_toml("rogue/orders", "1.0.0"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not registered for domain rogue"), "{err}");
    // A registered product published afterwards arrives; the rogue one never does.
    publish_orders(&net, 0, "sales/orders", "1.0.0", 500, 7);
    for i in [1, rogue] {
        net.wait_product(i, "sales/orders", "1.0.0", DEADLINE)
            .unwrap();
        assert!(!net.knows(i, "rogue/orders", "1.0.0").unwrap());
    }
}

#[test]
fn killed_node_leaves_the_others_serving_and_fetching() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    let csv = publish_orders(&net, 0, "sales/orders", "1.0.0", 40_000, 8);
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    net.fetch(1, "sales/orders", &net.root().join("one"))
        .unwrap();
    net.wait_product(2, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();

    publish_orders(&net, 0, "sales/only-here", "1.0.0", 100, 10);
    net.wait_product(2, "sales/only-here", "1.0.0", DEADLINE)
        .unwrap();

    net.nodes[0].kill();
    let err = net
        .fetch(2, "sales/only-here", &net.root().join("gone"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no provider reachable"), "{err}");
    // Node 2 fetches from node 1, the only live holder.
    let out = net.root().join("two");
    let o = net.fetch(2, "sales/orders", &out).unwrap();
    assert_eq!(o.providers, vec![net.nodes[1].peer_id.clone()]);
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    // Publishing and gossip still work without node 0.
    publish_orders(&net, 1, "finance/ledger", "1.0.0", 1000, 9);
    net.wait_product(2, "finance/ledger", "1.0.0", DEADLINE)
        .unwrap();
    // The killed node restarts from its home and catches up by catalog sync.
    net.start(0).unwrap();
    net.wait_product(0, "finance/ledger", "1.0.0", DEADLINE)
        .unwrap();
    assert!(
        net.knows(0, "sales/orders", "1.0.0").unwrap(),
        "acknowledged publish survives kill -9"
    );
    // A product published right after the restart reaches the others by gossip,
    // or at worst within a round of digest asks (2 s per connected peer); it once
    // took a minute, until the next full anti-entropy pass.
    let published = std::time::Instant::now();
    publish_orders(&net, 0, "sales/after-restart", "1.0.0", 100, 11);
    for i in [1, 2] {
        net.wait_product(
            i,
            "sales/after-restart",
            "1.0.0",
            std::time::Duration::from_secs(20),
        )
        .unwrap();
    }
    println!(
        "published after a restart: on every node after {} ms",
        published.elapsed().as_millis()
    );
}

/// Regression: a node whose own stored chunk was corrupted could never fetch that
/// product again (every fetch failed verification, with a good provider online) and
/// kept listing it as held; a provider that dropped a corrupt chunk while serving
/// also kept listing it. Now both mark the product incomplete, a fetch repairs the
/// chunk from a peer, and `mesh verify` finds and repairs damage on its own.
#[test]
fn a_node_repairs_its_own_corrupt_chunks_from_peers() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let csv = publish_orders(&net, 0, "sales/orders", "1.0.0", 60_000, 5);
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    net.fetch(1, "sales/orders", &net.root().join("first"))
        .unwrap();
    let local = |node: usize| {
        net.products(node)
            .unwrap()
            .iter()
            .any(|e| e.announcement.product.to_string() == "sales/orders" && e.local)
    };
    assert!(local(1));

    // Damage on the consumer: the next fetch drops the bad chunk, gets it again
    // from node 0, and writes the right bytes.
    let locations = chunk_locations(&net, 1, "sales/orders");
    corrupt(&locations[1], 0xEE);
    let out = net.root().join("again");
    let o = net.fetch(1, "sales/orders", &out).unwrap();
    assert_eq!(
        u64::from(locations[1].len),
        o.transferred_bytes,
        "only the bad chunk moved"
    );
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert!(local(1));

    // `mesh verify` finds damage nobody asked for yet, and repairs it.
    corrupt(&chunk_locations(&net, 1, "sales/orders")[0], 0x11);
    let report = net.nodes[1]
        .client()
        .unwrap()
        .verify(&mesh_node::api::VerifyRequest::default())
        .unwrap();
    assert_eq!(report.corrupt_removed.len(), 1, "{report:?}");
    assert_eq!(report.unmarked, vec!["sales/orders@1.0.0"], "{report:?}");
    assert_eq!(report.repaired, vec!["sales/orders@1.0.0"], "{report:?}");
    assert!(local(1));
    let clean = net.nodes[1]
        .client()
        .unwrap()
        .verify(&mesh_node::api::VerifyRequest::default())
        .unwrap();
    assert!(
        clean.corrupt_removed.is_empty() && clean.chunks_checked > 0,
        "{clean:?}"
    );

    // Damage on a provider found while serving: node 1 needs the chunk again, node
    // 0's copy is bad; node 0 drops it and stops listing the product as held, so it
    // no longer offers it as whole.
    corrupt(&chunk_locations(&net, 0, "sales/orders")[2], 0x22);
    corrupt(&chunk_locations(&net, 1, "sales/orders")[2], 0x33);
    let err = net
        .fetch(1, "sales/orders", &net.root().join("third"))
        .unwrap_err();
    assert!(err.to_string().contains("no provider"), "{err}");
    wait_until(
        "node 0 to stop listing its damaged copy as held",
        DEADLINE,
        || Ok(!local(0)),
    )
    .unwrap();
}
