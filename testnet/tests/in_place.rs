//! Publishing in place (`mesh publish --in-place`) across real node processes: the
//! publisher keeps no second copy, serves the version from the published files, and
//! stops serving it, without touching the files, once one of them changes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::{testnet, DEADLINE};

use mesh_node::api::{Published, VerifyReport};
use mesh_testnet::{file_hash, sample};

/// Bytes of the chunk store's pack files under a node's home.
fn packed_bytes(home: &std::path::Path) -> u64 {
    std::fs::read_dir(home.join("chunks/packs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Overwrites one byte of `path` at `offset` in place (same file, same size).
fn poke(path: &std::path::Path, offset: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"#", offset).unwrap();
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
    let client = net.nodes[0].client().unwrap();
    let held = client.products(&Default::default()).unwrap();
    let listed = held
        .iter()
        .find(|e| {
            e.announcement.product.to_string() == "sales/orders"
                && e.announcement.version.to_string() == "1.0.0"
        })
        .unwrap();
    assert!(!listed.local, "no longer held: {report:?}");
    assert_eq!(std::fs::read(&csv).unwrap(), edited);
}
