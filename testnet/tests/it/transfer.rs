//! Transfer across real node processes: only new chunks move for a new version (and
//! its files start from the previous version's output, if untouched), GC
//! frees exactly what no retained version references, and a fetch killed with -9
//! resumes without downloading again what it had verified.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{testnet, DEADLINE};

use std::collections::HashSet;

use mesh_protocol::manifest::ChunkRef;
use mesh_testnet::{file_hash, sample, wait_until, Testnet};

fn chunks_of(net: &Testnet, node: usize, product: &str) -> Vec<ChunkRef> {
    let show = net.nodes[node]
        .client()
        .unwrap()
        .show(&product.parse().unwrap(), None)
        .unwrap();
    show.manifest
        .unwrap()
        .files
        .iter()
        .flat_map(|f| f.chunks.clone())
        .collect()
}

#[test]
fn a_new_version_transfers_only_the_chunks_the_consumer_lacks() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, 300_000, 11).unwrap();
    let v1 = net
        .publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    assert_eq!(v1.new_bytes, v1.size);
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let f1 = net
        .fetch(1, "sales/orders@1.0.0", &net.root().join("o1"))
        .unwrap();
    assert_eq!(f1.transferred_bytes, f1.size);

    // About 1% changed: one edited row in the middle and appended rows.
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let mid = text.len() / 2;
    let line_start = text[..mid].rfind('\n').unwrap() + 1;
    text.replace_range(line_start..line_start + 6, "999999");
    for i in 0..2_000 {
        text.push_str(&format!("{},late{i}@example.com,1.00\n", 300_000 + i));
    }
    std::fs::write(&csv, &text).unwrap();
    let v2 = net
        .publish(0, &dir, &sample::manifest_toml("sales/orders", "1.1.0"))
        .unwrap();
    assert!(
        v2.new_bytes * 10 < v2.size,
        "publish stored only new chunks: {} of {}",
        v2.new_bytes,
        v2.size
    );
    net.wait_product(1, "sales/orders", "1.1.0", DEADLINE)
        .unwrap();
    let f2 = net
        .fetch(1, "sales/orders@1.1.0", &net.root().join("o2"))
        .unwrap();

    // Exactly the bytes of v2's chunks that v1 did not have were transferred.
    let old: HashSet<_> = chunks_of(&net, 0, "sales/orders@1.0.0")
        .iter()
        .map(|c| c.hash)
        .collect();
    let mut seen = HashSet::new();
    let expected: u64 = chunks_of(&net, 0, "sales/orders@1.1.0")
        .iter()
        .filter(|c| !old.contains(&c.hash) && seen.insert(c.hash))
        .map(|c| u64::from(c.len))
        .sum();
    assert_eq!(f2.transferred_bytes, expected);
    assert!(
        f2.transferred_bytes * 10 < f2.size,
        "{} of {}",
        f2.transferred_bytes,
        f2.size
    );
    assert_eq!(
        file_hash(&net.root().join("o2/orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    // The unchanged bytes came from the 1.0.0 file written to o1 (copied by the
    // kernel or cloned), not written again: exactly the places of old chunks.
    let reusable: u64 = chunks_of(&net, 0, "sales/orders@1.1.0")
        .iter()
        .filter(|c| old.contains(&c.hash))
        .map(|c| u64::from(c.len))
        .sum();
    assert_eq!(f2.reused_bytes, reusable, "{f2:?}");
    assert!(reusable * 10 > f2.size * 9, "{reusable} of {}", f2.size);
}

/// A file the node wrote is a base for later versions only while untouched, and
/// fetching over the node's own earlier version needs no --force.
#[test]
fn a_written_file_is_reused_only_while_untouched() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, 100_000, 12).unwrap();
    let toml = |v| sample::manifest_toml("sales/orders", v);
    net.publish(0, &dir, &toml("1.0.0")).unwrap();
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let (o1, o2) = (net.root().join("o1"), net.root().join("o2"));
    net.fetch(1, "sales/orders@1.0.0", &o1).unwrap();
    net.fetch(1, "sales/orders@1.0.0", &o2).unwrap();
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("100001,late@example.com,1.00\n");
    std::fs::write(&csv, &text).unwrap();
    net.publish(0, &dir, &toml("1.1.0")).unwrap();
    net.wait_product(1, "sales/orders", "1.1.0", DEADLINE)
        .unwrap();

    // Someone edits o2's copy in place, keeping its size.
    let edited = o2.join("orders.csv");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&edited)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"#", 10).unwrap();
    drop(f);
    // o2 is someone's file now: not replaced without --force...
    let err = net.fetch(1, "sales/orders@1.1.0", &o2).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err:#}");
    // ...and not a base: o3 gets the right bytes (from o1's untouched copy).
    let f3 = net
        .fetch(1, "sales/orders@1.1.0", &net.root().join("o3"))
        .unwrap();
    assert!(f3.reused_bytes > f3.size / 2, "{f3:?}");
    assert_eq!(
        file_hash(&net.root().join("o3/orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    // o1 holds 1.0.0 as this node wrote it: 1.1.0 replaces it in place, no --force.
    let f1 = net.fetch(1, "sales/orders@1.1.0", &o1).unwrap();
    assert!(f1.reused_bytes > f1.size / 2, "{f1:?}");
    assert_eq!(
        file_hash(&o1.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
}

#[test]
fn gc_keeps_every_chunk_a_retained_version_references_and_frees_the_rest() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    for (i, version) in ["1.0.0", "2.0.0", "3.0.0"].iter().enumerate() {
        let dir = net.root().join(format!("v{i}"));
        sample::write_orders(&dir, 40_000, 1000 * (i as u64 + 1)).unwrap();
        net.publish(0, &dir, &sample::manifest_toml("sales/orders", version))
            .unwrap();
    }
    let all: Vec<Vec<ChunkRef>> = ["1.0.0", "2.0.0", "3.0.0"]
        .iter()
        .map(|v| chunks_of(&net, 0, &format!("sales/orders@{v}")))
        .collect();
    let before = net.nodes[0].chunk_count();
    let report = net.nodes[0]
        .client()
        .unwrap()
        .gc(&mesh_node::api::GcRequest {
            keep: Some(2),
            dry_run: false,
        })
        .unwrap();
    assert_eq!(
        report.dropped_versions,
        vec!["sales/orders@1.0.0".to_string()]
    );
    let kept: HashSet<_> = all[1].iter().chain(&all[2]).map(|c| c.hash).collect();
    let freed: HashSet<_> = all[0]
        .iter()
        .map(|c| c.hash)
        .filter(|h| !kept.contains(h))
        .collect();
    assert_eq!(report.freed_chunks, freed.len());
    assert_eq!(net.nodes[0].chunk_count(), before - freed.len());
    let store = mesh_storage::ChunkStore::open_read_only(
        &mesh_node::NodeHome::new(&net.nodes[0].home).chunks_path(),
    )
    .unwrap();
    for h in &kept {
        store
            .get_verified(h, 4 << 20)
            .expect("a retained chunk is intact");
    }
    // The retained versions are still served; the dropped one is not.
    net.wait_product(1, "sales/orders", "3.0.0", DEADLINE)
        .unwrap();
    net.fetch(1, "sales/orders@2.0.0", &net.root().join("o2"))
        .unwrap();
    net.fetch(1, "sales/orders@3.0.0", &net.root().join("o3"))
        .unwrap();
    let err = net
        .fetch(1, "sales/orders@1.0.0", &net.root().join("o1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no provider reachable"), "{err}");
    assert!(!net
        .products(0)
        .unwrap()
        .iter()
        .any(|e| e.local && e.announcement.version.to_string() == "1.0.0"));
}

#[test]
fn a_fetch_killed_with_sigkill_resumes_without_downloading_again() {
    killed_fetch_resumes(false);
}

/// In place (`mesh fetch`'s default), the chunks verified before the kill are in
/// the output's partial file, which stays for the next fetch; every byte is still
/// written once.
#[test]
fn a_fetch_in_place_killed_with_sigkill_resumes_from_its_partial_file() {
    killed_fetch_resumes(true);
}

/// Fetches a ~110 MB product on node 1 (in place or into the store), kills node 1
/// with -9 midway, restarts it and fetches again: what was verified before the
/// kill is not downloaded again.
fn killed_fetch_resumes(in_place: bool) {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let dir = net.root().join("big");
    let csv = sample::write_orders(&dir, 2_500_000, 7).unwrap(); // ~110 MB
    let published = net
        .publish(0, &dir, &sample::manifest_toml("sales/big", "1.0.0"))
        .unwrap();
    net.wait_product(1, "sales/big", "1.0.0", DEADLINE).unwrap();
    let total_chunks = published.chunks;

    // Start the fetch; once node 1 holds some chunks, freeze the provider (the fetch
    // stalls there), kill -9 the fetching node, then let the provider go on.
    let client = net.nodes[1].client().unwrap();
    let out = net.root().join("out");
    let request = mesh_node::api::FetchRequest {
        product: "sales/big".into(),
        out: Some(out.clone()),
        force: false,
        in_place,
        to_objects: None,
    };
    let fetch = std::thread::spawn(move || client.fetch(&request, |_| {}));
    wait_until("node 1 to hold some chunks", DEADLINE, || {
        Ok(net.nodes[1].chunk_count() >= 8)
    })
    .unwrap();
    net.nodes[0].signal("STOP").unwrap();
    let held_at_kill = net.nodes[1].chunk_count();
    net.nodes[1].kill();
    net.nodes[0].signal("CONT").unwrap();
    let _ = fetch.join();
    assert!(
        held_at_kill < total_chunks,
        "the fetch was interrupted ({held_at_kill} of {total_chunks} chunks)"
    );
    assert!(
        !out.join("orders.csv").exists(),
        "no partial file under its final name"
    );
    assert!(
        !in_place || out.join(".mesh-partial-0").exists(),
        "in place, the partial file stays for the next fetch"
    );

    // Restart and fetch again: the chunks verified before the kill are not re-sent.
    net.start(1).unwrap();
    let survived = net.nodes[1].chunk_count();
    assert!(
        survived >= held_at_kill.saturating_sub(1),
        "verified chunks survive kill -9"
    );
    // A catalog entry learned moments before the kill may not have reached the
    // disk (sled flushes every 500 ms); the connect-time sync brings it back.
    net.wait_product(1, "sales/big", "1.0.0", DEADLINE).unwrap();
    let o = if in_place {
        net.fetch_in_place(1, "sales/big", &out).unwrap()
    } else {
        net.fetch(1, "sales/big", &out).unwrap()
    };
    assert!(
        o.transferred_bytes < o.size,
        "resumed: {} of {}",
        o.transferred_bytes,
        o.size
    );
    assert_eq!(o.in_place, in_place);
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert!(!out.join(".mesh-partial-0").exists());
    if in_place {
        let packed = common::packed_bytes(&net.nodes[1].home);
        assert!(
            packed < o.size / 20,
            "every byte written once: {packed} bytes packed for a {}-byte product",
            o.size
        );
        // The node holds the version, served from the output.
        let report: mesh_node::api::VerifyReport = net.nodes[1]
            .cli_json(net.mesh_bin(), &["verify", "--no-repair"])
            .unwrap();
        assert!(
            report.changed_files.is_empty() && report.corrupt_removed.is_empty(),
            "{report:?}"
        );
        assert!(net.holds(1, "sales/big", "1.0.0").unwrap());
    }
}
