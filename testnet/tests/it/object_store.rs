//! Object storage on real node processes and a real S3 server (SeaweedFS on
//! loopback): a consumer node delivers fetched versions into a bucket
//! (`mesh fetch ID -o s3://...`), each version under its own prefix with
//! `current` switched last; an unchanged file is copied inside the store; the
//! errors name the endpoint and the bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::path::Path;

use common::{testnet, DEADLINE};
use mesh_node::api::{FetchEvent, FetchOutcome};
use mesh_storage::objects::object_store::ObjectStoreExt;
use mesh_storage::objects::{Bucket, ObjectSettings, ObjectUrl};
use mesh_testkit::seaweed::Seaweed;
use mesh_testnet::{last_fetch_event, sample, Testnet};

/// Reads `s3://bucket/key` from `s`.
fn read_object(s: &Seaweed, url: &str) -> Option<Vec<u8>> {
    let url: ObjectUrl = url.parse().unwrap();
    let env = s.env();
    let lookup = move |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let bucket = Bucket::open_with_env(
        &ObjectUrl {
            bucket: url.bucket.clone(),
            prefix: String::new(),
        },
        &ObjectSettings::default(),
        &lookup,
    )
    .unwrap();
    let key = bucket.key(&url.prefix).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let got = bucket.store().get(&key).await.ok()?;
        Some(got.bytes().await.unwrap().to_vec())
    })
}

/// `mesh fetch PRODUCT -o URL --json` on node `i`: the outcome, or the error.
fn deliver(net: &Testnet, i: usize, product: &str, url: &str) -> Result<FetchOutcome, String> {
    let out = net.nodes[i]
        .mesh(net.mesh_bin(), &["--json", "fetch", product, "-o", url])
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    match last_fetch_event(&stdout) {
        Some(FetchEvent::Done(o)) if out.status.success() => Ok(o),
        Some(FetchEvent::Error { message, .. }) => Err(message),
        _ => Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))),
    }
}

fn publish(net: &Testnet, dir: &Path, product: &str, version: &str) {
    let toml = sample::manifest_toml(product, version);
    net.publish(0, dir, &toml).unwrap();
    net.wait_product(1, product, version, DEADLINE).unwrap();
}

#[test]
fn fetched_versions_are_delivered_into_a_bucket_with_current_switched_last() {
    let mut net = testnet(2);
    let Some(s3) = common::seaweed(&net.root().join("seaweed"), "object_store delivery") else {
        return;
    };
    s3.make_bucket("deliveries").unwrap();
    net.nodes[1].env = s3
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    net.start_all().unwrap();

    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, 300_000, 7).unwrap();
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "first version\n").unwrap();
    publish(&net, &dir, "sales/orders", "1.0.0");

    let prefix = "s3://deliveries/sales/orders";
    let first = deliver(&net, 1, "sales/orders", prefix).unwrap();
    let d = first.delivered.expect("a delivery report");
    assert_eq!((d.uploaded_files, d.copied_files), (2, 0), "{d:?}");
    assert!(d.uploaded_bytes > 8 << 20, "a multipart upload: {d:?}");
    let csv_name = csv.file_name().unwrap().to_str().unwrap();
    let uploaded = read_object(&s3, &format!("{prefix}/1.0.0/{csv_name}")).unwrap();
    assert!(uploaded == std::fs::read(&csv).unwrap(), "byte-identical");
    let current: serde_json::Value =
        serde_json::from_slice(&read_object(&s3, &format!("{prefix}/current")).unwrap()).unwrap();
    assert_eq!(current["version"], "1.0.0");
    assert_eq!(current["product"], "sales/orders");

    // The next version: the unchanged CSV is copied inside the store, the notes
    // uploaded; the old version stays whole beside it.
    std::fs::write(&notes, "second version\n").unwrap();
    publish(&net, &dir, "sales/orders", "1.1.0");
    let second = deliver(&net, 1, "sales/orders", prefix).unwrap();
    let d = second.delivered.unwrap();
    assert_eq!((d.uploaded_files, d.copied_files), (1, 1), "{d:?}");
    assert_eq!(d.uploaded_bytes, "second version\n".len() as u64);
    let copied = read_object(&s3, &format!("{prefix}/1.1.0/{csv_name}")).unwrap();
    assert!(copied == std::fs::read(&csv).unwrap(), "the copy is whole");
    assert_eq!(
        read_object(&s3, &format!("{prefix}/1.0.0/notes.txt")).unwrap(),
        b"first version\n"
    );
    let current: serde_json::Value =
        serde_json::from_slice(&read_object(&s3, &format!("{prefix}/current")).unwrap()).unwrap();
    assert_eq!(current["version"], "1.1.0");
    assert_eq!(current["versions"], serde_json::json!(["1.0.0", "1.1.0"]));

    // Again: nothing to do.
    let again = deliver(&net, 1, "sales/orders", prefix).unwrap();
    assert!(again.delivered.unwrap().already_current);

    // Another product into the same prefix is refused, naming what is there.
    std::fs::write(&notes, "other\n").unwrap();
    publish(&net, &dir, "sales/other", "1.0.0");
    let e = deliver(&net, 1, "sales/other", prefix).unwrap_err();
    assert!(e.contains("sales/orders") && e.contains(prefix), "{e}");

    // A bucket that does not exist, named with the endpoint.
    let e = deliver(&net, 1, "sales/orders", "s3://no-such-bucket/x").unwrap_err();
    assert!(
        e.contains("no-such-bucket") && e.contains(&s3.endpoint),
        "{e}"
    );
}
