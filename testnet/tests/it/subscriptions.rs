//! Subscriptions on real node processes: a subscription to a restricted product is
//! denied with the rule, resumes after a grant, and stops on a revocation without a
//! new version (and misses the next one); the owner lists its subscribers; a
//! subscriber killed while materializing a version shows nothing half-written and
//! finishes after its restart, and a directory moved away and replaced by a link
//! stops the subscription without a byte written or removed there. (The lag over 20 versions, a partition and a
//! publisher restart are the `subscription` scenario, in `scenarios.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{adopt_sample_rules, testnet, DEADLINE};
use mesh_node::api::{AccessDecideBody, SubscriberView, SubscriptionView};
use mesh_testnet::{file_hash, sample, wait_until, wait_until_every, MeshBin, Testnet};

fn mesh() -> MeshBin {
    MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet"))
}

/// Node `i`'s subscription of `product`.
fn followed(net: &Testnet, i: usize, product: &str) -> Option<SubscriptionView> {
    net.nodes[i]
        .client()
        .ok()?
        .subscriptions()
        .ok()?
        .into_iter()
        .find(|s| s.product == product)
}

fn wait_state(net: &Testnet, i: usize, product: &str, state: &str, current: Option<&str>) {
    wait_until(
        &format!("node {i}'s subscription to be {state} on {current:?}"),
        DEADLINE,
        || {
            Ok(followed(net, i, product)
                .is_some_and(|s| s.state == state && s.current.as_deref() == current))
        },
    )
    .unwrap();
}

fn decide(net: &Testnet, decision: &str, product: &str) {
    net.nodes[0]
        .client()
        .unwrap()
        .access_decide(&AccessDecideBody {
            product: product.into(),
            consumer: "logistics".into(),
            decision: decision.into(),
            until_ms: None,
            purpose: "dispatch".into(),
            terms: String::new(),
            reason: if decision == "revoke" {
                "dispatch moved to finance".into()
            } else {
                String::new()
            },
        })
        .unwrap();
}

fn subscribe(
    net: &Testnet,
    i: usize,
    product: &str,
    out: &Path,
) -> anyhow::Result<SubscriptionView> {
    net.nodes[i].cli_json(
        &mesh(),
        &[
            "subscribe",
            product,
            "-o",
            &out.to_string_lossy(),
            "--keep",
            "2",
        ],
    )
}

#[test]
fn a_subscription_is_denied_resumed_by_a_grant_and_stopped_by_a_revocation() {
    const PRODUCT: &str = "sales/customers";
    // sales, finance, logistics
    let mut net = testnet(3);
    net.start_all().unwrap();
    adopt_sample_rules(&net);
    let publish = |version: &str, seed: u64| {
        let dir = net.root().join(format!("customers-{version}"));
        let file = sample::write_orders(&dir, 500, seed).unwrap();
        net.publish(
            0,
            &dir,
            &sample::restricted_manifest_toml(PRODUCT, version, &["finance"]),
        )
        .unwrap();
        for i in 0..3 {
            net.wait_product(i, PRODUCT, version, DEADLINE).unwrap();
        }
        file_hash(&file).unwrap()
    };
    let v1 = publish("1.0.0", 1);

    // Bad input first: a product nobody announced, a directory of other things.
    let busy = net.root().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let err = subscribe(&net, 2, PRODUCT, &busy).unwrap_err().to_string();
    assert!(
        err.contains("is not empty") && err.contains("notes.txt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(busy.join("notes.txt")).unwrap(),
        "mine"
    );
    let err = subscribe(&net, 2, "sales/nothing", &net.root().join("n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in this node's catalog"), "{err}");

    // Finance is a listed consumer and follows it; logistics is not: denied, with
    // the rule, and nothing is materialized.
    let fin = net.root().join("finance-copy");
    subscribe(&net, 1, PRODUCT, &fin).unwrap();
    let out = net.root().join("logistics-copy");
    subscribe(&net, 2, PRODUCT, &out).unwrap();
    wait_state(&net, 1, PRODUCT, "up to date", Some("1.0.0"));
    wait_state(&net, 2, PRODUCT, "denied", None);
    let denied = followed(&net, 2, PRODUCT).unwrap();
    assert!(
        denied
            .reason
            .as_deref()
            .unwrap()
            .contains("restricted-to-consumers"),
        "{denied:?}"
    );
    assert!(!out.join("current").exists());

    // The owner grants; `mesh subscribe` again resumes it, and the copy is exact.
    decide(&net, "grant", PRODUCT);
    wait_until("logistics to learn the grant", DEADLINE, || {
        let resumed = subscribe(&net, 2, PRODUCT, &out)?;
        Ok(resumed.state != "denied")
    })
    .unwrap();
    wait_state(&net, 2, PRODUCT, "up to date", Some("1.0.0"));
    assert_eq!(file_hash(&out.join("current/orders.csv")).unwrap(), v1);

    // The owner sees both subscribers, by domain, with the version each holds.
    wait_until("the owner to list both subscribers", DEADLINE, || {
        let list: Vec<SubscriberView> =
            net.nodes[0].cli_json(&mesh(), &["subscribers", PRODUCT])?;
        let mut domains: Vec<String> = list
            .iter()
            .filter(|s| s.versions == ["1.0.0"])
            .filter_map(|s| s.domain.clone())
            .collect();
        domains.sort();
        Ok(domains == ["finance", "logistics"])
    })
    .unwrap();

    // The product page shows them too.
    let url = net.nodes[0]
        .client()
        .unwrap()
        .catalog_url(Some(&PRODUCT.parse().unwrap()));
    let page = ureq::get(&url).call().unwrap().into_string().unwrap();
    let section = &page[page
        .find("<h2>Subscribers</h2>")
        .expect("a Subscribers section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(
        section.contains("finance") && section.contains("logistics") && section.contains("1.0.0"),
        "{section}"
    );

    // A revocation stops the subscription without a new version, saying why...
    let revoked = Instant::now();
    decide(&net, "revoke", PRODUCT);
    wait_state(&net, 2, PRODUCT, "denied", Some("1.0.0"));
    let stopped = revoked.elapsed();
    let s = followed(&net, 2, PRODUCT).unwrap();
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("restricted-to-consumers"),
        "{s:?}"
    );
    // ...and the next version reaches finance but not logistics.
    publish("1.1.0", 2);
    wait_state(&net, 1, PRODUCT, "up to date", Some("1.1.0"));
    let s = followed(&net, 2, PRODUCT).unwrap();
    assert_eq!(
        (s.state.as_str(), s.current.as_deref()),
        ("denied", Some("1.0.0"))
    );
    assert!(!out.join("1.1.0").exists());
    let text = String::from_utf8(
        net.nodes[2]
            .mesh(&mesh(), &["subscriptions"])
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("denied") && text.contains("restricted-to-consumers"),
        "{text}"
    );
    println!(
        "a revocation stopped the subscription {} ms after the owner's command",
        stopped.as_millis()
    );
}

#[test]
fn a_subscriber_killed_while_materializing_shows_nothing_half_written_and_finishes_after_restart() {
    const PRODUCT: &str = "sales/ledger";
    let mut net = testnet(2);
    net.start_all().unwrap();
    let publish = |version: &str, seed: u64| {
        let dir = net.root().join(format!("ledger-{version}"));
        let file = sample::write_orders(&dir, 400_000, seed).unwrap();
        net.publish(0, &dir, &sample::manifest_toml(PRODUCT, version))
            .unwrap();
        net.wait_product(1, PRODUCT, version, DEADLINE).unwrap();
        file_hash(&file).unwrap()
    };
    let v1 = publish("1.0.0", 1);
    let out = net.root().join("ledger-copy");
    subscribe(&net, 1, PRODUCT, &out).unwrap();
    wait_state(&net, 1, PRODUCT, "up to date", Some("1.0.0"));

    // Each new version is all new bytes; the subscriber is killed as soon as the
    // hidden folder of the version appears (a version that slipped through whole
    // is followed by the next).
    let mut caught = None;
    let mut last = v1;
    let mut last_version = "1.0.0".to_string();
    for k in 1..=5u64 {
        let version = format!("1.{k}.0");
        let partial = out.join(format!(".partial-{version}"));
        let hash = publish(&version, 10 + k);
        // Until the hidden folder appears or the version is already current.
        wait_until_every(
            &format!("node 1 to materialize {version}"),
            DEADLINE,
            Duration::from_millis(1),
            || {
                Ok(partial.exists()
                    || followed(&net, 1, PRODUCT).and_then(|s| s.current) == Some(version.clone()))
            },
        )
        .unwrap();
        if partial.exists() {
            net.nodes[1].kill();
            caught = Some((version, hash));
            break;
        }
        last = hash;
        last_version = version;
    }
    let (version, hash) = caught.expect("the subscriber was never caught materializing");

    // Killed: `current` still names the previous version, whole; the new version
    // is at most a hidden folder (or, killed after its rename, a whole folder).
    assert_eq!(
        std::fs::read_link(out.join("current")).unwrap(),
        Path::new(&last_version)
    );
    assert_eq!(file_hash(&out.join("current/orders.csv")).unwrap(), last);
    if out.join(&version).exists() {
        assert_eq!(
            file_hash(&out.join(&version).join("orders.csv")).unwrap(),
            hash
        );
    }

    // Restarted, it cleans up and finishes the version.
    net.start(1).unwrap();
    wait_state(&net, 1, PRODUCT, "up to date", Some(version.as_str()));
    assert_eq!(file_hash(&out.join("current/orders.csv")).unwrap(), hash);
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(".partial-") || n.starts_with(".current-")),
        "{names:?}"
    );
    let versions = names
        .iter()
        .filter(|n| !n.starts_with('.') && *n != "current")
        .count();
    assert_eq!(versions, 2, "keep 2: {names:?}");

    // The directory is moved away and a link to somebody's folder put at its path
    // (with a copy of the marker): the next version writes nothing there and
    // deletes nothing of theirs; the subscription stops as `moved`.
    let theirs = net.root().join("theirs");
    std::fs::create_dir_all(theirs.join(&last_version)).unwrap();
    std::fs::write(theirs.join(&last_version).join("precious.txt"), "mine").unwrap();
    std::fs::copy(
        out.join(".mesh-subscription"),
        theirs.join(".mesh-subscription"),
    )
    .unwrap();
    let before = listing(&theirs);
    std::fs::rename(&out, net.root().join("ledger-moved")).unwrap();
    std::os::unix::fs::symlink(&theirs, &out).unwrap();
    let dir = net.root().join("ledger-2.0.0");
    sample::write_orders(&dir, 1000, 99).unwrap();
    net.publish(0, &dir, &sample::manifest_toml(PRODUCT, "2.0.0"))
        .unwrap();
    net.wait_product(1, PRODUCT, "2.0.0", DEADLINE).unwrap();
    wait_until("the subscription to stop as moved", DEADLINE, || {
        Ok(followed(&net, 1, PRODUCT).is_some_and(|s| s.state == "moved"))
    })
    .unwrap();
    let s = followed(&net, 1, PRODUCT).unwrap();
    assert!(
        s.reason.as_deref().unwrap().contains("symbolic link"),
        "{s:?}"
    );
    assert_eq!(listing(&theirs), before, "nothing written or removed there");
    assert_eq!(
        std::fs::read_to_string(theirs.join(&last_version).join("precious.txt")).unwrap(),
        "mine"
    );
    assert!(!net.root().join("ledger-moved/2.0.0").exists());
    let err = subscribe(&net, 1, PRODUCT, &out).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

/// Every path under `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            all.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    all.sort();
    all
}
