//! Catalog sync through the real event loop: pages offered off the loop, in
//! batches, with the next pages asked for meanwhile.

use crate::common::{announcement_at, data_dir, start_node, wait_for, Keys, BIG_TOML};
use mesh_node::unix_now_ms;

/// Versions on the first node: six pages of 256 and a part page, so the joiner's
/// worker has pages waiting, batches them and defers asking for more.
const VERSIONS: usize = 1_500;

/// A joiner pulls a catalog of several pages whole (every version, the same
/// digest), and its manifest prefetch, which waits while a catalog sync is under
/// way, runs once the sync is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_pulls_a_catalog_of_many_pages_then_prefetches_its_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    a.node
        .publish(data_dir(dir.path(), "big", b"bytes"), BIG_TOML.into())
        .await
        .unwrap();
    let probe_a = a.node.probe();
    let now = unix_now_ms();
    for i in 0..VERSIONS {
        let product = format!("sales/p{i:05}");
        probe_a
            .keep(&announcement_at(&product, &sales, &sales, now))
            .unwrap();
    }
    assert_eq!(probe_a.catalog_len(), VERSIONS + 1);

    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(dir.path(), "b", "finance", &finance, &genesis, vec![a_addr]).await;
    let probe_b = b.node.probe();
    wait_for("B to pull every version", || {
        probe_b.catalog_len() == VERSIONS + 1
    })
    .await;
    let versions = |p: &mesh_node::testing::Probe| {
        let mut v: Vec<_> = p
            .entries()
            .into_iter()
            .map(|e| {
                (
                    e.announcement.product,
                    e.announcement.version,
                    e.announcement.manifest,
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(versions(&probe_b), versions(&probe_a));

    // The one real product's manifest is prefetched once the sync is over.
    let big = probe_b
        .entry(
            &"sales/big".parse().unwrap(),
            &semver::Version::new(1, 0, 0),
        )
        .unwrap();
    wait_for("B to prefetch the manifest of sales/big", || {
        probe_b.manifest(&big.announcement.manifest).is_some()
    })
    .await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
