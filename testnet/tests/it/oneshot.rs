//! The one-shot consumer fetch: `mesh fetch PRODUCT -o DIR --genesis FILE
//! --bootstrap ADDR` with no home and no daemon starts an ephemeral node, catches up
//! the policy chain (here: a v2 with the sample rules) and the catalog, fetches and
//! verifies, and exits. Anonymous, the rules decide what it may read: a product
//! restricted to finance is denied, until it fetches with a finance node's key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{testnet, DEADLINE};
use mesh_node::api::FetchEvent;
use mesh_protocol::policy_change::PolicyChange;
use mesh_testnet::{file_hash, sample, Testnet};

fn one_shot(
    net: &Testnet,
    product: &str,
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    // A home that does not exist: the one-shot fetch needs none.
    let mut cmd = net.mesh_bin().command(&net.root().join("no-such-home"));
    cmd.args(["--json", "fetch", product, "-o"])
        .arg(out)
        .arg("--genesis")
        .arg(&net.genesis)
        .arg("--bootstrap")
        .arg(net.nodes[0].addr().unwrap())
        .args(extra);
    cmd.output().unwrap()
}

#[test]
fn a_one_shot_fetch_needs_only_the_genesis_and_one_address() {
    let mut net = testnet(3); // sales, finance, logistics
    net.start_all().unwrap();
    // Public, and published under the genesis, which has no rules.
    let open = net.root().join("open");
    let csv = sample::write_orders(&open, 3_000, 4).unwrap();
    let public = sample::manifest_toml("sales/orders", "1.0.0")
        .replace(
            "classification = \"internal\"",
            "classification = \"public\"",
        )
        .replace("classification = \"pii\"", "classification = \"public\"");
    net.publish(0, &open, &public).unwrap();
    let mut change = PolicyChange::from_toml("").unwrap();
    change.rules = Some(sample::RULES.to_string());
    net.submit_policy(0, &net.draft_policy(0, &change, &[0, 1]).unwrap())
        .unwrap();
    net.wait_policy(0, 2, DEADLINE).unwrap();
    let secret = net.root().join("secret");
    sample::write_orders(&secret, 300, 5).unwrap();
    net.publish(
        0,
        &secret,
        &sample::restricted_manifest_toml("sales/customers", "1.0.0", &["finance"]),
    )
    .unwrap();

    // The product page offers the one-shot command where it works, and only there.
    let page = |product: &str| {
        let url = net.nodes[0]
            .client()
            .unwrap()
            .catalog_url(Some(&product.parse().unwrap()));
        ureq::get(&url).call().unwrap().into_string().unwrap()
    };
    assert!(page("sales/orders").contains("--genesis genesis.json"));
    assert!(!page("sales/customers").contains("--genesis genesis.json"));

    let out = net.root().join("fetched");
    let o = one_shot(&net, "sales/orders", &out, &[]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    let last = mesh_testnet::last_fetch_event(&String::from_utf8_lossy(&o.stdout));
    let Some(FetchEvent::Done(outcome)) = last else {
        panic!("no outcome: {}", String::from_utf8_lossy(&o.stdout));
    };
    assert!(outcome.verified);
    assert!(outcome.in_place, "a one-shot fetch writes each byte once");
    assert_eq!(outcome.version, "1.0.0");
    assert_eq!(
        file_hash(&out.join("orders.csv")).unwrap(),
        file_hash(&csv).unwrap()
    );
    assert!(
        !net.root().join("no-such-home").exists(),
        "left nothing behind"
    );
    // The ephemeral node never shows up as a replica.
    let r: mesh_protocol::ProductRef = "sales/orders".parse().unwrap();
    let shown = net.nodes[1].client().unwrap().show(&r, None).unwrap();
    assert!(
        shown
            .entry
            .providers
            .iter()
            .all(|p| p.announced || p.this_node),
        "{:?}",
        shown.entry.providers
    );

    // Anonymous, the sample rules (policy v2, caught up from the genesis) deny the
    // restricted product, naming the rule that decided.
    let denied = net.root().join("denied");
    let o = one_shot(&net, "sales/customers", &denied, &[]);
    assert!(!o.status.success());
    // With --json the error is a JSON line on stdout.
    let err = String::from_utf8_lossy(&o.stdout);
    assert!(
        err.contains("denied by rule internal-needs-a-domain"),
        "{err}"
    );
    assert!(!denied.join("orders.csv").exists());

    // With the finance node's key (that node stopped), it is that node: allowed.
    net.nodes[1].terminate().unwrap();
    let key = mesh_node::NodeHome::new(&net.nodes[1].home).node_key_path();
    let o = one_shot(
        &net,
        "sales/customers",
        &denied,
        &["--identity", key.to_str().unwrap()],
    );
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(denied.join("orders.csv").exists());

    // No bootstrap, or a bad one: clear errors.
    let mut cmd = net.mesh_bin().command(&net.root().join("no-such-home"));
    let o = cmd
        .args(["fetch", "sales/orders", "-o", "x", "--genesis"])
        .arg(&net.genesis)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --bootstrap"));
}
