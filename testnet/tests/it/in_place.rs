//! Publishing in place (`mesh publish --in-place`) across real node processes: the
//! publisher keeps no second copy, serves the version from the published files, and
//! stops serving it, without touching the files, once one of them changes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{packed_bytes, testnet, DEADLINE};

use mesh_node::api::{Published, VerifyReport};
use mesh_testnet::{file_hash, sample};

/// Overwrites one byte of `path` at `offset` in place (same file, same size).
fn poke(path: &std::path::Path, offset: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"#", offset).unwrap();
}

/// An `n`-node mesh where node 0 published `sales/orders@1.0.0` (`rows` sample
/// orders, `seed`) and node 1 has learned of it; the data's directory and CSV.
fn orders_published(
    n: usize,
    rows: usize,
    seed: u64,
) -> (
    mesh_testnet::Testnet,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let mut net = testnet(n);
    net.start_all().unwrap();
    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, rows, seed).unwrap();
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    (net, dir, csv)
}

#[test]
fn a_product_published_in_place_is_served_from_its_files_until_they_change() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, 200_000, 21).unwrap();
    let notes = dir.join("notes.txt");
    let text: String = (0..20_000).map(|i| format!("note {i}\n")).collect();
    std::fs::write(&notes, text).unwrap();
    let manifest = net.root().join("orders.toml");
    std::fs::write(&manifest, sample::manifest_toml("sales/orders", "1.0.0")).unwrap();

    // Through the real CLI, as a domain team would.
    let published: Published = net.nodes[0]
        .cli_json(
            net.mesh_bin(),
            &[
                "publish",
                dir.to_str().unwrap(),
                "--manifest",
                manifest.to_str().unwrap(),
                "--in-place",
            ],
        )
        .unwrap();
    assert!(published.in_place);
    assert_eq!(published.new_bytes, published.size);
    assert!(
        packed_bytes(&net.nodes[0].home) < published.size / 20,
        "no second copy: {} bytes packed for a {}-byte product",
        packed_bytes(&net.nodes[0].home),
        published.size
    );

    // Served from the file: a consumer gets exactly its bytes.
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let fetched = net
        .fetch(1, "sales/orders@1.0.0", &net.root().join("o1"))
        .unwrap();
    assert_eq!(fetched.transferred_bytes, fetched.size);
    assert_eq!(
        file_hash(&net.root().join("o1/orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert_eq!(
        file_hash(&net.root().join("o1/notes.txt")).unwrap(),
        file_hash(&notes).unwrap()
    );

    // The publisher edits its file (same size). With the only other holder gone, a
    // new consumer cannot get the version: the publisher refuses the changed bytes.
    poke(&csv, 200);
    let edited = std::fs::read(&csv).unwrap();
    net.nodes[1].kill();
    net.wait_product(2, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let err = net
        .fetch(2, "sales/orders@1.0.0", &net.root().join("o2"))
        .unwrap_err();
    assert!(!net.root().join("o2/orders.csv").exists(), "{err:#}");

    // The publisher's own check names the file that changed (the CSV's changed chunk
    // was already dropped when it was asked for), and left the files alone.
    poke(&notes, 10);
    let report: VerifyReport = net.nodes[0]
        .cli_json(net.mesh_bin(), &["verify", "--no-repair"])
        .unwrap();
    assert_eq!(
        report.changed_files,
        vec![std::fs::canonicalize(&notes).unwrap().display().to_string()],
        "{report:?}"
    );
    // The counts add up: what was checked is intact, changed or corrupt.
    assert!(report.chunks_changed >= 1, "{report:?}");
    assert_eq!(
        report.chunks_checked,
        report.chunks_intact + report.chunks_changed + report.corrupt_removed.len(),
        "{report:?}"
    );
    assert!(net.knows(0, "sales/orders", "1.0.0").unwrap());
    assert!(
        !net.holds(0, "sales/orders", "1.0.0").unwrap(),
        "no longer held: {report:?}"
    );
    assert_eq!(std::fs::read(&csv).unwrap(), edited);
}

/// `mesh --json fetch ... --in-place` on node `i`: the outcome.
fn fetch_in_place(
    net: &mesh_testnet::Testnet,
    i: usize,
    product: &str,
    out: &std::path::Path,
) -> mesh_node::api::FetchOutcome {
    let o = net
        .mesh_bin()
        .command(&net.nodes[i].home)
        .args(["--json", "fetch", product, "--in-place", "-o"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    match mesh_testnet::last_fetch_event(&stdout) {
        Some(mesh_node::api::FetchEvent::Done(outcome)) if o.status.success() => outcome,
        _ => panic!("{stdout}{}", String::from_utf8_lossy(&o.stderr)),
    }
}

/// Whether node `i` lists `product@version` as held.
fn holds(net: &mesh_testnet::Testnet, i: usize, product: &str, version: &str) -> bool {
    let client = net.nodes[i].client().unwrap();
    client
        .products(&Default::default())
        .unwrap()
        .iter()
        .any(|e| {
            e.announcement.product.to_string() == product
                && e.announcement.version.to_string() == version
                && e.local
        })
}

#[test]
fn a_product_fetched_in_place_lands_once_and_its_next_version_replaces_it() {
    let (mut net, dir, csv) = orders_published(3, 200_000, 22);

    // Verified and written into the output only: the consumer's store keeps no copy.
    let out = net.root().join("consumer");
    let v1 = fetch_in_place(&net, 1, "sales/orders@1.0.0", &out);
    assert!(v1.in_place && v1.verified);
    assert_eq!(v1.transferred_bytes, v1.size);
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert!(
        packed_bytes(&net.nodes[1].home) < v1.size / 20,
        "no second copy: {} bytes packed for a {}-byte product",
        packed_bytes(&net.nodes[1].home),
        v1.size
    );

    // A small change: the next version moves little and lands over the same file.
    poke(&csv, 4_000_000);
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.1.0"))
        .unwrap();
    net.wait_product(1, "sales/orders", "1.1.0", DEADLINE)
        .unwrap();
    let v2 = fetch_in_place(&net, 1, "sales/orders@1.1.0", &out);
    assert!(v2.in_place);
    assert!(
        v2.transferred_bytes < v2.size / 10,
        "{} of {} bytes moved",
        v2.transferred_bytes,
        v2.size
    );
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert!(packed_bytes(&net.nodes[1].home) < v2.size / 20);
    // The file holds 1.1.0 now: 1.0.0's other bytes are gone, and the node says so
    // instead of finding them changed later.
    assert!(holds(&net, 1, "sales/orders", "1.1.0"));
    assert!(!holds(&net, 1, "sales/orders", "1.0.0"));
    let report: VerifyReport = net.nodes[1]
        .cli_json(net.mesh_bin(), &["verify", "--no-repair"])
        .unwrap();
    assert!(
        report.changed_files.is_empty() && report.corrupt_removed.is_empty(),
        "{report:?}"
    );

    // Served from the consumer's output: with the publisher gone, a third node
    // gets 1.1.0 whole from it.
    net.nodes[0].kill();
    net.wait_product(2, "sales/orders", "1.1.0", DEADLINE)
        .unwrap();
    let third = net
        .fetch(2, "sales/orders@1.1.0", &net.root().join("third"))
        .unwrap();
    assert_eq!(third.providers, vec![net.nodes[1].peer_id.clone()]);
    assert_eq!(
        file_hash(&net.root().join("third/orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );

    // Editing the output is noticed, and the edit is left alone.
    poke(&out.join("orders.csv"), 10);
    let edited = std::fs::read(out.join("orders.csv")).unwrap();
    let report: VerifyReport = net.nodes[1]
        .cli_json(net.mesh_bin(), &["verify", "--no-repair"])
        .unwrap();
    assert_eq!(
        report.changed_files,
        vec![std::fs::canonicalize(out.join("orders.csv"))
            .unwrap()
            .display()
            .to_string()],
        "{report:?}"
    );
    assert!(!holds(&net, 1, "sales/orders", "1.1.0"));
    assert_eq!(std::fs::read(out.join("orders.csv")).unwrap(), edited);
}

/// A consumer deletes what it fetched in place and later fetches the next
/// version elsewhere: the chunks the node thought it held (ranges of the deleted
/// file) are found gone in one round, whatever their number, dropped and fetched
/// again; the new version lands whole and the old one is no longer listed as held.
#[test]
fn a_deleted_output_is_noticed_and_its_chunks_fetched_again() {
    let (net, dir, csv) = orders_published(2, 1_000_000, 23); // ~45 MB
    let first = net.root().join("first");
    let v1 = fetch_in_place(&net, 1, "sales/orders@1.0.0", &first);
    assert!(v1.in_place);
    let chunks = net.nodes[1].chunk_count();
    assert!(
        chunks > 16,
        "more chunks than a fetch's repair rounds: {chunks}"
    );
    std::fs::remove_dir_all(&first).unwrap();

    // One more order at the end: every chunk but the last is unchanged.
    let mut f = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
    std::io::Write::write_all(&mut f, b"1000000,late@example.com,1.00\n").unwrap();
    drop(f);
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.1.0"))
        .unwrap();
    net.wait_product(1, "sales/orders", "1.1.0", DEADLINE)
        .unwrap();
    let second = net.root().join("second");
    let v2 = fetch_in_place(&net, 1, "sales/orders@1.1.0", &second);
    assert!(
        v2.transferred_bytes > v2.size / 2,
        "what the deleted file held came again: {} of {}",
        v2.transferred_bytes,
        v2.size
    );
    assert_eq!(
        file_hash(&second.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert!(holds(&net, 1, "sales/orders", "1.1.0"));
    assert!(!holds(&net, 1, "sales/orders", "1.0.0"));
}

/// `--copy` after an in-place fetch of the same version: the node copies into
/// its store what it kept only in the earlier output (nothing is transferred),
/// so deleting that output takes nothing from it.
#[test]
fn a_copy_fetch_keeps_what_an_in_place_fetch_left_in_its_output() {
    let (net, _, csv) = orders_published(2, 200_000, 24);
    let kept = net.root().join("kept");
    let v1 = fetch_in_place(&net, 1, "sales/orders@1.0.0", &kept);
    assert!(packed_bytes(&net.nodes[1].home) < v1.size / 20);

    let o = net
        .mesh_bin()
        .command(&net.nodes[1].home)
        .args(["--json", "fetch", "sales/orders@1.0.0", "--copy", "-o"])
        .arg(net.root().join("copy"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let copied = match mesh_testnet::last_fetch_event(&String::from_utf8_lossy(&o.stdout)) {
        Some(mesh_node::api::FetchEvent::Done(outcome)) => outcome,
        other => panic!("{other:?}"),
    };
    assert!(!copied.in_place);
    assert_eq!(copied.transferred_bytes, 0, "held already");
    assert!(
        packed_bytes(&net.nodes[1].home) >= v1.size,
        "a copy of its own"
    );

    std::fs::remove_dir_all(&kept).unwrap();
    let report: VerifyReport = net.nodes[1]
        .cli_json(net.mesh_bin(), &["verify", "--no-repair"])
        .unwrap();
    assert!(
        report.changed_files.is_empty() && report.unmarked.is_empty(),
        "{report:?}"
    );
    assert!(holds(&net, 1, "sales/orders", "1.0.0"));
    assert_eq!(
        file_hash(&net.root().join("copy/orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
}
