//! Object storage on real node processes and a real S3 server (SeaweedFS on
//! loopback): a consumer node delivers fetched versions into a bucket
//! (`mesh fetch ID -o s3://...`), each version under its own prefix with
//! `current` switched last; an unchanged file is copied inside the store; the
//! errors name the endpoint and the bucket; a store that answers 503, stalls or
//! dies in the middle of an upload leaves nothing half-visible, and the delivery
//! resumes once it is back (the upload the failure left open aborted). A
//! domain publishes in place from a bucket (`mesh publish s3://... --in-place`):
//! no copy in its store, consumers on local disk get the objects' exact bytes,
//! and an object replaced behind the node's back is never served.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use common::{packed_bytes, testnet, DEADLINE};
use mesh_node::api::{FetchEvent, FetchOutcome, Published, SubscriptionView, VerifyReport};
use mesh_node::NodeHome;
use mesh_storage::objects::object_store::path::Path as ObjectPath;
use mesh_storage::objects::object_store::ObjectStoreExt;
use mesh_storage::objects::{Bucket, ObjectSettings, ObjectUrl};
use mesh_testkit::seaweed::Seaweed;
use mesh_testnet::proxy::{Fault, FaultProxy};
use mesh_testnet::{last_fetch_event, sample, wait_until, Testnet};

/// The bucket of `url` on `s`, and the key it names.
fn object_at(s: &Seaweed, url: &str) -> (Bucket, ObjectPath) {
    let url: ObjectUrl = url.parse().unwrap();
    let root = ObjectUrl {
        bucket: url.bucket.clone(),
        prefix: String::new(),
    };
    let bucket = Bucket::open_with_env(&root, &ObjectSettings::default(), &s.lookup()).unwrap();
    let key = bucket.key(&url.prefix).unwrap();
    (bucket, key)
}

/// Reads `s3://bucket/key` from `s` (`None` if it cannot).
fn read_object(s: &Seaweed, url: &str) -> Option<Vec<u8>> {
    let (bucket, key) = object_at(s, url);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let got = bucket.store().get(&key).await.ok()?;
        Some(got.bytes().await.ok()?.to_vec())
    })
}

/// Writes `bytes` to `s3://bucket/key` on `s`.
fn write_object(s: &Seaweed, url: &str, bytes: Vec<u8>) {
    let (bucket, key) = object_at(s, url);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(bucket.store().put(&key, bytes.into()))
        .unwrap();
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
    let toml = if dir.join("big.bin").exists() {
        sample::binary_manifest_toml(product, version)
    } else {
        sample::manifest_toml(product, version)
    };
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
    net.nodes[1].env = s3.env();
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

    // A subscriber delivers each new version into another bucket, keeping one.
    s3.make_bucket("subscribed").unwrap();
    let followed = "s3://subscribed/orders";
    let view: SubscriptionView = net.nodes[1]
        .cli_json(
            net.mesh_bin(),
            &[
                "subscribe",
                "sales/orders",
                "-o",
                followed,
                "--keep",
                "1",
                "--wait",
            ],
        )
        .unwrap();
    assert_eq!(view.state, "up to date", "{view:?}");
    assert_eq!(view.current.as_deref(), Some("1.1.0"));
    std::fs::write(&notes, "third version\n").unwrap();
    publish(&net, &dir, "sales/orders", "1.2.0");
    wait_until("the subscription to deliver 1.2.0", DEADLINE, || {
        let current = read_object(&s3, &format!("{followed}/current"));
        Ok(current.is_some_and(|c| {
            serde_json::from_slice::<serde_json::Value>(&c).unwrap()["version"] == "1.2.0"
        }))
    })
    .unwrap();
    assert_eq!(
        read_object(&s3, &format!("{followed}/1.2.0/notes.txt")).unwrap(),
        b"third version\n"
    );
    assert!(
        read_object(&s3, &format!("{followed}/1.1.0/notes.txt")).is_none(),
        "the version beyond --keep 1 is removed"
    );

    // Another product into the same prefix is refused, naming what is there.
    std::fs::write(&notes, "other\n").unwrap();
    publish(&net, &dir, "sales/other", "1.0.0");
    let e = deliver(&net, 1, "sales/other", prefix).unwrap_err();
    assert!(e.contains("sales/orders") && e.contains(prefix), "{e}");
    let e = net.nodes[1]
        .cli_json::<SubscriptionView>(
            net.mesh_bin(),
            &["subscribe", "sales/other", "-o", followed],
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sales/orders"),
        "a prefix of another product: {e}"
    );

    // A bucket that does not exist, named with the endpoint.
    let e = deliver(&net, 1, "sales/orders", "s3://no-such-bucket/x").unwrap_err();
    assert!(
        e.contains("no-such-bucket") && e.contains(&s3.endpoint),
        "{e}"
    );
}

/// Gives node `i` the credentials of `s3`, with its endpoint `endpoint`, and
/// object storage settings that fail fast (one retry, 3 s per request).
fn reach_store(net: &mut Testnet, i: usize, s3: &Seaweed, endpoint: &str) {
    net.nodes[i].env = s3
        .env()
        .into_iter()
        .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
        .collect();
    let home = NodeHome::new(&net.nodes[i].home);
    let mut config = home.load_config().unwrap();
    config.object_store.endpoint = Some(endpoint.to_string());
    config.object_store.retries = Some(1);
    config.object_store.timeout_secs = Some(3);
    std::fs::write(home.config_path(), config.to_toml().unwrap()).unwrap();
}

/// Runs a delivery on node `i` in the background and returns once it has put
/// some but not all bytes in place (the first file delivered, the second under
/// way), with the child still running.
fn deliver_until_midway(net: &Testnet, i: usize, product: &str, url: &str) -> std::process::Child {
    let mut child = net
        .mesh_bin()
        .command(&net.nodes[i].home)
        .args(["--json", "fetch", product, "-o", url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Ok(FetchEvent::Delivering {
            done_bytes,
            total_bytes,
        }) = serde_json::from_str(&line)
        {
            if done_bytes > 0 && done_bytes < total_bytes {
                return child;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the delivery ended before it was midway");
}

#[test]
fn a_delivery_survives_503s_a_stall_and_the_store_dying_midway() {
    let mut net = testnet(2);
    let Some(mut s3) = common::seaweed(&net.root().join("seaweed"), "object_store faults") else {
        return;
    };
    s3.make_bucket("lake").unwrap();
    let proxy = FaultProxy::new().unwrap();
    let endpoint = format!("http://{}", proxy.link(1, 99, s3.s3_addr()).unwrap());
    reach_store(&mut net, 1, &s3, &endpoint);
    net.start_all().unwrap();
    let dir = net.root().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a-notes.txt"), "a small file, delivered first\n").unwrap();
    let mut rng = mesh_testkit::SeededRng::new(5);
    let big: Vec<u8> = (0..48 << 20).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    publish(&net, &dir, "sales/big", "1.0.0");
    net.fetch(1, "sales/big", &net.root().join("held")).unwrap();
    let url = "s3://lake/big";

    // Every request answered 503: a clear error, nothing current.
    proxy.set(
        1,
        99,
        Fault {
            http_status: 503,
            ..Fault::default()
        },
    );
    let e = deliver(&net, 1, "sales/big", url).unwrap_err();
    assert!(e.contains(&endpoint) && e.contains("lake"), "{e}");
    assert!(e.contains("503"), "{e}");
    // A stalled connection: the request times out, named the same way.
    proxy.set(
        1,
        99,
        Fault {
            delay: Duration::from_secs(3600),
            ..Fault::default()
        },
    );
    let e = deliver(&net, 1, "sales/big", url).unwrap_err();
    assert!(e.contains(&endpoint), "{e}");

    // The store killed in the middle of the big file's upload.
    proxy.set(
        1,
        99,
        Fault {
            rate: 8 << 20,
            ..Fault::default()
        },
    );
    let mut child = deliver_until_midway(&net, 1, "sales/big", url);
    s3.kill();
    assert!(!child.wait().unwrap().success(), "the delivery fails");
    s3.restart().unwrap();
    proxy.heal();
    // Its volumes serve reads a moment after S3 answers: the first file, delivered
    // before the kill, is there.
    wait_until("the restarted store to serve reads", DEADLINE, || {
        Ok(read_object(&s3, &format!("{url}/1.0.0/a-notes.txt")).is_some())
    })
    .unwrap();
    assert!(
        read_object(&s3, &format!("{url}/current")).is_none(),
        "nothing current"
    );

    // The node restarts and aborts the upload the failure left open.
    net.nodes[1].terminate().unwrap();
    net.start(1).unwrap();
    wait_until("the open upload to be aborted", common::DEADLINE, || {
        Ok(net.nodes[1]
            .log()
            .contains("aborted an upload a crash left open"))
    })
    .unwrap();
    if let Some(aws) = Seaweed::binary().and_then(|w| Some(w.parent()?.join("aws"))) {
        let listed = std::process::Command::new(aws)
            .args([
                "--endpoint-url",
                &s3.endpoint,
                "s3api",
                "list-multipart-uploads",
                "--bucket",
                "lake",
            ])
            .envs(s3.env())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.status.success() && !text.contains("UploadId"),
            "{text}"
        );
    }

    // Run again: the first file is resumed, the second uploaded whole.
    let done = deliver(&net, 1, "sales/big", url).unwrap();
    let d = done.delivered.unwrap();
    assert_eq!((d.resumed_files, d.uploaded_files), (1, 1), "{d:?}");
    assert!(read_object(&s3, &format!("{url}/1.0.0/big.bin")).unwrap() == big);
    let current: serde_json::Value =
        serde_json::from_slice(&read_object(&s3, &format!("{url}/current")).unwrap()).unwrap();
    assert_eq!(current["version"], "1.0.0");
}

#[test]
fn a_product_published_in_place_from_a_bucket_is_served_by_ranged_reads() {
    let mut net = testnet(3);
    let Some(s3) = common::seaweed(&net.root().join("seaweed"), "object_store in place") else {
        return;
    };
    s3.make_bucket("lake").unwrap();
    net.nodes[0].env = s3.env();
    net.start_all().unwrap();
    let local = net.root().join("orders");
    let csv = sample::write_orders(&local, 200_000, 3).unwrap();
    let csv_bytes = std::fs::read(&csv).unwrap();
    write_object(&s3, "s3://lake/sales/orders/orders.csv", csv_bytes.clone());
    write_object(
        &s3,
        "s3://lake/sales/orders/docs/notes.txt",
        b"read me\n".to_vec(),
    );
    // The data's place in product.toml: no path on the command line.
    let manifest = net.root().join("orders.toml");
    let toml = sample::manifest_toml("sales/orders", "1.0.0")
        + "\n[source]\nurl = \"s3://lake/sales/orders\"\nin_place = true\n";
    std::fs::write(&manifest, toml).unwrap();

    let home_before = walk_bytes(&net.nodes[0].home);
    let published: Published = net.nodes[0]
        .cli_json(
            net.mesh_bin(),
            &["publish", "--manifest", manifest.to_str().unwrap()],
        )
        .unwrap();
    assert!(published.in_place && published.files == 2, "{published:?}");
    // Checked and chunked as GETs streamed it: no copy anywhere in the home.
    let grown = walk_bytes(&net.nodes[0].home).saturating_sub(home_before);
    eprintln!("home grew {grown} bytes publishing {}", published.size);
    assert!(
        grown < published.size / 4,
        "the home grew {grown} bytes publishing {} in place",
        published.size
    );
    assert!(
        packed_bytes(&net.nodes[0].home) < published.size / 20,
        "no copy in the store: {} bytes packed",
        packed_bytes(&net.nodes[0].home)
    );

    // A consumer on local disk gets the objects' exact bytes.
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let fetched = net
        .fetch(1, "sales/orders", &net.root().join("o1"))
        .unwrap();
    assert_eq!(fetched.transferred_bytes, fetched.size);
    assert!(std::fs::read(net.root().join("o1/orders.csv")).unwrap() == csv_bytes);
    assert_eq!(
        std::fs::read(net.root().join("o1/docs/notes.txt")).unwrap(),
        b"read me\n"
    );

    // The object replaced behind the node's back (same size): with the only other
    // holder gone, a new consumer cannot get the version, never other bytes.
    let mut changed = csv_bytes.clone();
    changed[100] ^= 1;
    write_object(&s3, "s3://lake/sales/orders/orders.csv", changed);
    net.nodes[1].kill();
    net.wait_product(2, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let err = net
        .fetch(2, "sales/orders@1.0.0", &net.root().join("o2"))
        .unwrap_err();
    assert!(!net.root().join("o2/orders.csv").exists(), "{err:#}");
    let report: VerifyReport = net.nodes[0]
        .cli_json(net.mesh_bin(), &["verify", "--no-repair"])
        .unwrap();
    assert_eq!(
        report.changed_files,
        vec!["s3://lake/sales/orders/orders.csv".to_string()],
        "{report:?}"
    );
    assert!(net.knows(0, "sales/orders", "1.0.0").unwrap());
    assert!(
        !net.holds(0, "sales/orders", "1.0.0").unwrap(),
        "no longer held: {report:?}"
    );
}

#[test]
fn a_node_keeps_its_sealed_packs_in_a_bucket() {
    let mut net = testnet(3);
    let Some(s3) = common::seaweed(&net.root().join("seaweed"), "object_store packs") else {
        return;
    };
    s3.make_bucket("packs").unwrap();
    net.nodes[0].env = s3.env();
    let home = NodeHome::new(&net.nodes[0].home);
    let mut config = home.load_config().unwrap();
    config.storage.url = Some("s3://packs/node0".into());
    config.storage.pack_mib = Some(1);
    std::fs::write(home.config_path(), config.to_toml().unwrap()).unwrap();
    net.start_all().unwrap();

    let dir = net.root().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = mesh_testkit::SeededRng::new(9);
    let big: Vec<u8> = (0..8 << 20).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    publish(&net, &dir, "sales/big", "1.0.0");
    // The sealed packs go to the bucket; only the active one stays on disk.
    wait_until("the sealed packs to be offloaded", DEADLINE, || {
        Ok(common::pack_sizes(&net.nodes[0].home).len() <= 1)
    })
    .unwrap();
    assert!(read_object(&s3, "s3://packs/node0/packs/00000001.pack").is_some());

    // Served from the bucket, byte-identical; verify reads every chunk back.
    let got = net.fetch(1, "sales/big", &net.root().join("o1")).unwrap();
    assert_eq!(got.transferred_bytes, got.size);
    assert!(std::fs::read(net.root().join("o1/big.bin")).unwrap() == big);
    let report: VerifyReport = net.nodes[0]
        .cli_json(net.mesh_bin(), &["verify", "--no-repair"])
        .unwrap();
    assert_eq!(report.chunks_checked, report.chunks_intact, "{report:?}");
    assert!(report.chunks_checked > 0);

    // A crash, then another consumer: still served from the bucket.
    net.nodes[0].kill();
    net.nodes[1].kill();
    net.start(0).unwrap();
    net.wait_product(2, "sales/big", "1.0.0", DEADLINE).unwrap();
    let got = net.fetch(2, "sales/big", &net.root().join("o2")).unwrap();
    assert!(std::fs::read(net.root().join("o2/big.bin")).unwrap() == big);
    assert!(got.transferred_bytes > 0);

    // GC reclaims a pack object no marker names (what a crash between an upload
    // and its marker leaves).
    write_object(
        &s3,
        "s3://packs/node0/packs/00009999.pack",
        b"orphan".to_vec(),
    );
    let _: serde_json::Value = net.nodes[0].cli_json(net.mesh_bin(), &["gc"]).unwrap();
    assert!(read_object(&s3, "s3://packs/node0/packs/00009999.pack").is_none());
    assert!(read_object(&s3, "s3://packs/node0/packs/00000001.pack").is_some());
}

#[test]
fn a_publish_from_a_bucket_fails_cleanly_when_the_store_dies_midway() {
    let mut net = testnet(2);
    let Some(mut s3) = common::seaweed(&net.root().join("seaweed"), "object_store publish fault")
    else {
        return;
    };
    s3.make_bucket("lake").unwrap();
    let proxy = FaultProxy::new().unwrap();
    let endpoint = format!("http://{}", proxy.link(0, 99, s3.s3_addr()).unwrap());
    reach_store(&mut net, 0, &s3, &endpoint);
    // Node 1 holds a wrong secret for the same store.
    net.nodes[1].env = s3
        .env()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "AWS_SECRET_ACCESS_KEY" => (k, "not-the-secret".to_string()),
            _ => (k, v),
        })
        .collect();
    net.start_all().unwrap();
    let mut rng = mesh_testkit::SeededRng::new(11);
    let big: Vec<u8> = (0..24 << 20).map(|_| rng.next_u64() as u8).collect();
    write_object(&s3, "s3://lake/big/big.bin", big.clone());
    let manifest = net.root().join("big.toml");
    std::fs::write(
        &manifest,
        sample::binary_manifest_toml("sales/big", "1.0.0"),
    )
    .unwrap();
    let args = [
        "publish",
        "s3://lake/big",
        "--manifest",
        manifest.to_str().unwrap(),
        "--in-place",
    ];

    // The store dies while the node reads the object: a clear error, nothing
    // published, and no copy of it left anywhere in the node's home.
    proxy.set(
        0,
        99,
        Fault {
            rate: 4 << 20,
            ..Fault::default()
        },
    );
    let child = net
        .mesh_bin()
        .command(&net.nodes[0].home)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let home_before = walk_bytes(&net.nodes[0].home);
    let midway = wait_until("the publish to be reading the object", DEADLINE, || {
        Ok(proxy.carried(0, 99) > 2 << 20)
    });
    s3.kill();
    let out = child.wait_with_output().unwrap();
    midway.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the publish fails");
    assert!(err.contains(&endpoint) && err.contains("lake"), "{err}");
    let grown = walk_bytes(&net.nodes[0].home).saturating_sub(home_before);
    eprintln!("home grew {grown} bytes in the failed publish");
    assert!(
        grown < 2 << 20,
        "the home grew {grown} bytes: a copy of what it read?"
    );
    assert!(
        !net.knows(0, "sales/big", "1.0.0").unwrap(),
        "nothing published"
    );

    // Back up (its volumes serve reads a moment after S3 answers): the same
    // publish succeeds.
    s3.restart().unwrap();
    proxy.heal();
    wait_until("the restarted store to serve the object", DEADLINE, || {
        Ok(read_object(&s3, "s3://lake/big/big.bin").is_some())
    })
    .unwrap();
    let published: Published = net.nodes[0].cli_json(net.mesh_bin(), &args).unwrap();
    assert_eq!(published.size, big.len() as u64);
    net.wait_product(1, "sales/big", "1.0.0", DEADLINE).unwrap();
    let got = net.fetch(1, "sales/big", &net.root().join("o1")).unwrap();
    assert_eq!(got.size, big.len() as u64);
    assert!(std::fs::read(net.root().join("o1/big.bin")).unwrap() == big);

    // A URL naming one object publishes that object (copied into the store).
    std::fs::write(
        &manifest,
        sample::binary_manifest_toml("sales/one", "1.0.0"),
    )
    .unwrap();
    let one: Published = net.nodes[0]
        .cli_json(
            net.mesh_bin(),
            &[
                "publish",
                "s3://lake/big/big.bin",
                "--manifest",
                manifest.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert_eq!(
        (one.files, one.size, one.in_place),
        (1, big.len() as u64, false)
    );

    // Wrong credentials: refused, naming the endpoint, the bucket and the key,
    // never the secret.
    let e = deliver(&net, 1, "sales/big", "s3://lake/out").unwrap_err();
    assert!(e.contains(&s3.endpoint) && e.contains("lake"), "{e}");
    assert!(e.contains(mesh_testkit::seaweed::KEY_ID), "{e}");
    assert!(!e.contains("not-the-secret"), "{e}");
}

/// Bytes of every file under `dir` (0 when it is absent).
fn walk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
