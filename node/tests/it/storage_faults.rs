//! Storage faults injected under a real node (in-process, on loopback): a full disk,
//! failed writes and failed syncs during publish, fetch and policy application. Each
//! error must reach the caller with its cause, leave nothing partial visible, and
//! the same operation must succeed once the fault clears. Corrupt chunk index
//! records are detected when the store is loaded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::*;
use mesh_storage::Faults;

/// Switches one fault on.
type Inject = dyn Fn(&Faults);

/// Disk blocks allocated to the files in `dir`, in bytes (holes do not count).
fn allocated_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

fn lists(node: &mesh_node::Node, product: &str) -> Option<bool> {
    node.probe()
        .entries()
        .into_iter()
        .find(|e| e.announcement.product.to_string() == product)
        .map(|e| e.local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fetch_and_policy_errors_reach_the_caller_and_corrupt_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        council,
        sales,
        finance,
        genesis,
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let bytes = random_bytes(4_000_000, 11);
    let data = data_dir(dir.path(), "big.bin", &bytes);
    let probe = a.node.probe();
    let chunk_faults = probe.chunk_faults();
    let meta_faults = probe.meta_faults().expect("sled has faults");

    // Publish: disk full, failed sync, failed metadata write. Each is refused with
    // its cause and leaves no product behind.
    // Which store, how to break it, and the cause the caller must be told.
    let faults: [(&Faults, &Inject, &str); 3] = [
        (
            chunk_faults,
            &|f| f.disk_full_after(1_000_000),
            "No space left on device",
        ),
        (
            chunk_faults,
            &|f| f.fail_sync(true),
            "injected sync failure",
        ),
        (
            meta_faults,
            &|f| f.fail_writes(true),
            "injected write failure",
        ),
    ];
    for (target, inject, cause) in faults {
        inject(target);
        let err = a
            .node
            .publish(data.clone(), BIG_TOML.into())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(cause), "{err}");
        target.clear();
        // The failed publish gave back what it stored: no chunk is left, and the
        // pack files hold (almost) no disk blocks, so a full disk is usable again.
        assert_eq!(probe.chunks().len(), 0, "{cause}: chunks left behind");
        let allocated = allocated_bytes(&dir.path().join("a/chunks/packs"));
        assert!(
            allocated < 256 * 1024,
            "{cause}: {allocated} bytes still allocated in pack files"
        );
    }
    assert_eq!(
        lists(&a.node, "sales/big"),
        None,
        "no partial product is visible"
    );
    a.node.publish(data.clone(), BIG_TOML.into()).await.unwrap();
    assert_eq!(lists(&a.node, "sales/big"), Some(true));

    // Fetch on a consumer whose disk fills half way: refused with the cause, no
    // output under its final name; once space is back the fetch completes.
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(dir.path(), "b", "finance", &finance, &genesis, vec![a_addr]).await;
    let bn = b.node.clone();
    wait_for("B to learn the product", || {
        lists(&bn, "sales/big").is_some()
    })
    .await;
    let b_probe = b.node.probe();
    b_probe.chunk_faults().disk_full_after(2_000_000);
    let target: mesh_protocol::ProductRef = "sales/big".parse().unwrap();
    let out = dir.path().join("out");
    let err = b
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(
        err.class(),
        mesh_node::ErrorClass::Internal,
        "a full disk is this node's fault (HTTP 5xx), not a bad request: {err:?}"
    );
    assert!(
        !out.join("big.bin").exists(),
        "no partial file under its final name"
    );
    assert_eq!(lists(&b.node, "sales/big"), Some(false));
    b_probe.chunk_faults().clear();
    let outcome = b
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert!(
        outcome.transferred_bytes < outcome.size,
        "the fetch resumed"
    );
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), bytes);

    // Policy: a failed metadata write refuses the new version and keeps the old one
    // in force; once writes work it is accepted.
    let mut v2 = genesis.value().unwrap();
    v2.version = 2;
    v2.issued_at = unix_now();
    let v2 = Signed::sign(&v2, &council);
    let b_meta = b_probe.meta_faults().unwrap();
    b_meta.fail_writes(true);
    let err = b.node.submit_policy(v2.clone()).await.unwrap_err();
    assert!(err.to_string().contains("injected write failure"), "{err}");
    assert_eq!(b.node.status().await.unwrap().policy_version, 1);
    b_meta.clear();
    b.node.submit_policy(v2).await.unwrap();
    assert_eq!(b.node.status().await.unwrap().policy_version, 2);
    b.shutdown().await.unwrap();
    drop((bn, b_probe)); // the last handles on B's stores

    // The policy chain and the fetched product survive a restart intact.
    let b = restart_node(dir.path().join("b")).await.unwrap();
    assert_eq!(b.node.status().await.unwrap().policy_version, 2);
    assert_eq!(lists(&b.node, "sales/big"), Some(true));
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_chunk_index_is_detected_at_start_and_the_product_unmarked() {
    let dir = tempfile::tempdir().unwrap();
    let Keys { sales, genesis, .. } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let data = data_dir(dir.path(), "big.bin", &random_bytes(2_000_000, 3));
    a.node.publish(data, BIG_TOML.into()).await.unwrap();
    a.shutdown().await.unwrap();

    // Flip a byte in the first record of the first index log.
    let home = NodeHome::new(dir.path().join("a"));
    let log = home.chunks_path().join("packs").join("00000001.idx");
    let log = if log.exists() {
        log
    } else {
        std::fs::read_dir(home.chunks_path().join("packs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .expect("an index log")
    };
    let mut raw = std::fs::read(&log).unwrap();
    raw[10] ^= 0xFF;
    std::fs::write(&log, raw).unwrap();

    let a = mesh_node::start(
        home,
        RunOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(a.node.probe().chunks().corrupt_records(), 1);
    assert_eq!(
        lists(&a.node, "sales/big"),
        Some(false),
        "a product missing a chunk is no longer offered as held"
    );
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_rolled_back_metadata_database_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        council,
        sales,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    a.shutdown().await.unwrap();
    let home = NodeHome::new(dir.path().join("a"));
    let old_db = dir.path().join("db-at-v1");
    copy_dir(&home.db_path(), &old_db);
    let start = || {
        mesh_node::start(
            NodeHome::new(dir.path().join("a")),
            RunOptions {
                listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
                ..Default::default()
            },
        )
    };
    let a = start().await.unwrap();
    let mut v2 = genesis.value().unwrap();
    v2.version = 2;
    v2.issued_at = unix_now();
    a.node
        .submit_policy(Signed::sign(&v2, &council))
        .await
        .unwrap();
    a.shutdown().await.unwrap();

    // Restored from the copy taken at v1: a rollback the database cannot see.
    let at_v2 = dir.path().join("db-at-v2");
    std::fs::rename(home.db_path(), &at_v2).unwrap();
    copy_dir(&old_db, &home.db_path());
    let err = start().await.unwrap_err().to_string();
    assert!(
        err.contains("holds policy v1") && err.contains("accepted policy v2"),
        "{err}"
    );

    // Damaged bytes: refused as corrupt, by sled itself or by the seal.
    std::fs::remove_dir_all(home.db_path()).unwrap();
    std::fs::rename(&at_v2, home.db_path()).unwrap();
    let db = home.db_path().join("db");
    let mut raw = std::fs::read(&db).unwrap();
    for i in (100..raw.len()).step_by(97) {
        raw[i] ^= 0x5A;
    }
    std::fs::write(&db, raw).unwrap();
    let err = start().await.unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Regression: a local store failure while keeping a peer's valid gossip used to be
/// answered `Reject`, so the honest sender lost peer score for our disk's fault.
/// Now it is `Ignore`d: the sender's score stays non-negative and its later
/// gossip still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_while_an_honest_peer_gossips_costs_the_peer_no_score() {
    let dir = tempfile::tempdir().unwrap();
    let Keys {
        sales,
        finance,
        genesis,
        ..
    } = Keys::new();
    let a = start_node(dir.path(), "a", "finance", &finance, &genesis, vec![]).await;
    let a_addr = a.node.status().await.unwrap().listen[0].clone();
    let b = start_node(dir.path(), "b", "sales", &sales, &genesis, vec![a_addr]).await;
    let b_id = b.node.peer_id().to_string();
    let b_at_a = || {
        let (node, b_id) = (a.node.clone(), b_id.clone());
        async move {
            node.peers()
                .await
                .unwrap()
                .into_iter()
                .find(|p| p.peer_id == b_id)
        }
    };
    wait_for_async("A to score B on gossip", || async {
        b_at_a().await.is_some_and(|p| p.score.is_some())
    })
    .await;

    // A's metadata writes fail while B gossips five valid announcements: A cannot
    // keep them, which is A's problem, not B's.
    let a_probe = a.node.probe();
    a_probe.meta_faults().unwrap().fail_writes(true);
    let b_probe = b.node.probe();
    for i in 0..5 {
        let envelope = announcement(&format!("sales/while-a-is-broken-{i}"), &sales, &sales);
        b_probe.announce(envelope).await.unwrap();
    }
    wait_for("A to have failed to keep all five", || {
        a_probe.not_kept() >= 5
    })
    .await;
    a_probe.meta_faults().unwrap().clear();
    b_probe
        .announce(announcement("sales/canary", &sales, &sales))
        .await
        .unwrap();
    wait_for("A to keep the canary", || a_probe.knows("sales/canary")).await;
    assert!(
        !a_probe.knows("sales/while-a-is-broken-0"),
        "the announcements were not kept while writes failed"
    );
    let b_info = b_at_a().await.expect("B is still connected");
    assert!(
        b_info.score.unwrap() >= 0.0 && !b_info.graylisted,
        "B was penalized for A's disk: {b_info:?}"
    );
    drop((a_probe, b_probe));
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// Regression: a file name that is not UTF-8 used to be renamed to U+FFFD silently
/// (and two such names collided as a "duplicate path").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_name_that_is_not_utf8_is_refused_by_name_and_nothing_is_stored() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let Keys { sales, genesis, .. } = Keys::new();
    let a = start_node(dir.path(), "a", "sales", &sales, &genesis, vec![]).await;
    let data = data_dir(dir.path(), "good.bin", b"fine");
    for name in [&b"bad\xffone.bin"[..], &b"bad\xfetwo.bin"[..]] {
        std::fs::write(data.join(std::ffi::OsStr::from_bytes(name)), b"x").unwrap();
    }
    let err = a.node.publish(data, BIG_TOML.into()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not valid UTF-8"), "{text}");
    assert_eq!(err.class(), mesh_node::ErrorClass::Usage, "{err:?}");
    assert_eq!(a.node.probe().catalog_len(), 0);
    assert_eq!(a.node.probe().chunks().len(), 0, "no chunk stored");
    a.shutdown().await.unwrap();
}

/// Regression: a fetch silently replaced files already in the output directory
/// (the publisher picks the names), and a fetch that failed half-way left part of
/// the product behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_never_replaces_someone_elses_file_and_lands_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path(), "big.bin", &random_bytes(300_000, 5));
    std::fs::write(data.join("notes.txt"), b"second file").unwrap();
    let (a, b) = publisher_and_consumer(dir.path(), data, BIG_TOML).await;
    let target: mesh_protocol::ProductRef = "sales/big".parse().unwrap();

    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), b"my own notes").unwrap();
    let err = b
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(err.class(), mesh_node::ErrorClass::Usage, "{err:?}");
    assert_eq!(
        std::fs::read(out.join("notes.txt")).unwrap(),
        b"my own notes"
    );
    assert!(
        !out.join("big.bin").exists(),
        "nothing of the product was written"
    );

    // A directory where a product file goes: refused before anything is written.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(blocked.join("notes.txt")).unwrap();
    let err = b
        .node
        .fetch_replacing(&target, Some(blocked.clone()), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("in the way"), "{err}");
    assert!(!blocked.join("big.bin").exists());

    // Asked to replace: done; fetching again over its own identical files is fine.
    b.node
        .fetch_replacing(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out.join("notes.txt")).unwrap(),
        b"second file"
    );
    b.node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// Regression: homes, pack files and fetched files followed the umask (022), so
/// another local user could read product data, pii included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homes_chunks_and_fetched_personal_data_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path(), "people.csv", b"email\nx@example.com\n");
    let pii = BIG_TOML.replace(
        "title = \"Big\"\n",
        "title = \"Big\"\nclassification = \"pii\"\n",
    );
    let (a, b) = publisher_and_consumer(dir.path(), data, &pii).await;
    let out = dir.path().join("out");
    b.node
        .fetch(&"sales/big".parse().unwrap(), Some(out.clone()), None)
        .await
        .unwrap();
    for home in ["a", "b"] {
        let root = dir.path().join(home);
        assert_eq!(mode(&root) & 0o077, 0, "home {home}: {:o}", mode(&root));
        let config = root.join("config.toml");
        assert_eq!(
            mode(&config) & 0o077,
            0,
            "{}: {:o}",
            config.display(),
            mode(&config)
        );
        for e in std::fs::read_dir(root.join("chunks/packs")).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p) & 0o077, 0, "{}: {:o}", p.display(), mode(&p));
        }
    }
    let fetched = out.join("people.csv");
    assert_eq!(
        mode(&fetched) & 0o077,
        0,
        "pii output: {:o}",
        mode(&fetched)
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// A sync that fails while a fetch is still downloading (the background one, every
/// 2 MiB under `test-support`) fails the fetch, even though the final sync would
/// succeed: after an I/O error, a later fsync may report success for lost pages.
/// It leaves no file under its final name, and succeeds once the fault has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_failing_mid_fetch_fails_the_fetch() {
    fails_mid_fetch(&|f| f.fail_next_syncs(1), "injected sync failure").await;
}

/// So does a failure to start writeback (every 512 KiB under `test-support`,
/// between those syncs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writeback_failing_mid_fetch_fails_the_fetch() {
    fails_mid_fetch(&|f| f.fail_writeback(true), "injected writeback failure").await;
}

/// A fetch of 6 MB with `inject` on the consumer's chunk store fails with `cause`,
/// leaves no file under its final name and the version not held; with the fault
/// cleared, it then succeeds.
async fn fails_mid_fetch(inject: &Inject, cause: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(6_000_000, 12);
    let data = data_dir(dir.path(), "big.bin", &bytes);
    let (a, b) = publisher_and_consumer(dir.path(), data, BIG_TOML).await;
    let probe = b.node.probe();
    let faults = probe.chunk_faults();
    let target: mesh_protocol::ProductRef = "sales/big".parse().unwrap();
    let out = dir.path().join("out");
    inject(faults);
    let err = b
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(cause), "{err}");
    assert!(!out.join("big.bin").exists());
    assert_eq!(lists(&b.node, "sales/big"), Some(false));
    faults.clear();
    let outcome = b
        .node
        .fetch(&target, Some(out.clone()), None)
        .await
        .unwrap();
    assert!(!outcome.in_place);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), bytes);
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
