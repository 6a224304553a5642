//! Derived products on a real 3-node mesh, through the real CLI: finance derives
//! parcels per carrier from logistics' shipments joined with sales' orders. The
//! first version is published with its inputs pinned and the query's hash; a
//! forced recomputation gives the same bytes and publishes nothing; when
//! shipments publish a version that does not change the result nothing is
//! published either; one that does is recomputed by the daemon into the next
//! version, pinned to it; one whose result breaks the derived product's contract
//! publishes nothing, and `mesh derived` and `mesh show` say why.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;

use crate::common::{testnet, DEADLINE};
use mesh_node::{DeriveState, DerivedProduct};
use mesh_protocol::{Hash, ProductRef};
use mesh_testnet::{wait_until, Testnet};

const ORDERS_TOML: &str = r#"id = "sales/orders"
version = "1.0.0"
title = "Orders"
description = "One order per line."
classification = "internal"
owner = { team = "sales-data", contact = "sales@example.com" }
schema = [
  { name = "order_id", type = "integer", required = true, unique = true },
  { name = "amount", type = "number", required = true },
]
"#;

fn shipments_toml(version: &str) -> String {
    format!(
        r#"id = "logistics/shipments"
version = "{version}"
title = "Shipments"
description = "One parcel per line."
classification = "internal"
owner = {{ team = "logistics-ops", contact = "ops@example.com" }}
schema = [
  {{ name = "order_id", type = "integer", required = true }},
  {{ name = "carrier", type = "string", required = true }},
]
"#
    )
}

/// The derived product: `parcels` is declared unique, so a result where two
/// carriers carry as many parcels breaks its contract.
const PARCELS_TOML: &str = r#"id = "finance/parcels"
version = "1.0.0"
title = "Parcels per carrier"
description = "Shipped orders and their value, per carrier."
classification = "internal"
owner = { team = "finance-bi", contact = "bi@example.com" }
schema = [
  { name = "carrier", type = "string", required = true, unique = true },
  { name = "parcels", type = "integer", required = true, unique = true },
  { name = "amount", type = "number", required = true },
]

[derive]
sql_file = "parcels.sql"
"#;

const PARCELS_SQL: &str = "SELECT s.carrier, COUNT(*) AS parcels, SUM(o.amount) AS amount\n\
FROM logistics.shipments s JOIN sales.orders o ON o.order_id = s.order_id\n\
GROUP BY s.carrier";

/// Publishes shipments `version` on node 2: orders `0..n` (orders 0..30
/// exist), the first `dhl` of them by dhl, the rest by ups.
fn ship(net: &Testnet, version: &str, n: u64, dhl: u64) -> Hash {
    let dir = net.root().join(format!("shipments-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let lines: String = (0..n)
        .map(|i| {
            let carrier = if i < dhl { "dhl" } else { "ups" };
            format!("{{\"order_id\": {i}, \"carrier\": \"{carrier}\"}}\n")
        })
        .collect();
    std::fs::write(dir.join("shipments.jsonl"), lines).unwrap();
    let published = net.publish(2, &dir, &shipments_toml(version)).unwrap();
    net.wait_product(1, "logistics/shipments", version, DEADLINE)
        .unwrap();
    published.manifest.parse().unwrap()
}

/// `mesh ARGS --json` on finance's node: its JSON and whether it succeeded.
fn mesh_json(net: &Testnet, args: &[&str]) -> (serde_json::Value, bool) {
    let out = net
        .mesh_bin()
        .command(&net.nodes[1].home)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    // A failure prints the record, then the error, one JSON document per line.
    let first = out.stdout.split(|b| *b == b'\n').next().unwrap_or_default();
    let value = serde_json::from_slice(first).unwrap_or_else(|e| {
        panic!(
            "mesh {args:?}: no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (value, out.status.success())
}

/// The record of finance/parcels once it read `shipments` (a manifest hash).
fn derived_after(net: &Testnet, shipments: Hash) -> DerivedProduct {
    let client = net.nodes[1].client().unwrap();
    let mut found = None;
    wait_until(
        "the daemon to compute finance/parcels again",
        DEADLINE,
        || {
            let all = client.derived()?;
            found = all.into_iter().find(|d| {
                d.inputs.iter().any(|u| u.manifest == Some(shipments))
                    && !matches!(d.state, DeriveState::Waiting)
            });
            Ok(found.is_some())
        },
    )
    .unwrap();
    found.unwrap()
}

/// finance/parcels' rows, as CSV, from `mesh query` on finance's node.
fn parcels(net: &Testnet, version: &str) -> String {
    let out = net
        .mesh_bin()
        .command(&net.nodes[1].home)
        .args(["query", "--format", "csv"])
        .arg(format!(
            "SELECT carrier, parcels FROM \"finance\".\"parcels@{version}\" ORDER BY carrier"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_derived_product_is_published_pinned_and_recomputed_when_its_inputs_change() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    let orders = net.root().join("orders");
    std::fs::create_dir_all(&orders).unwrap();
    let csv: String = std::iter::once("order_id,amount\n".to_string())
        .chain((0..30).map(|i| format!("{i},{}.50\n", 10 + i)))
        .collect();
    std::fs::write(orders.join("orders.csv"), csv).unwrap();
    let orders_hash: Hash = net
        .publish(0, &orders, ORDERS_TOML)
        .unwrap()
        .manifest
        .parse()
        .unwrap();
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let v1 = ship(&net, "1.0.0", 30, 20);

    // The first version, through the CLI, with the query read from its file.
    let dir = net.root().join("parcels");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("product.toml"), PARCELS_TOML).unwrap();
    std::fs::write(dir.join("parcels.sql"), PARCELS_SQL).unwrap();
    let toml = dir.join("product.toml");
    let (made, ok) = mesh_json(&net, &["derive", toml.to_str().unwrap()]);
    assert!(ok, "{made}");
    assert_eq!(made["state"], "published", "{made}");
    assert_eq!(made["version"], "1.0.0", "{made}");
    assert_eq!(parcels(&net, "1.0.0"), "carrier,parcels\ndhl,20\nups,10\n");
    let shown = net.nodes[1]
        .client()
        .unwrap()
        .show(
            &"finance/parcels@1.0.0".parse::<ProductRef>().unwrap(),
            None,
        )
        .unwrap();
    let m = shown.manifest.unwrap();
    let d = m.derivation.as_ref().unwrap();
    assert_eq!(d.sql, PARCELS_SQL);
    assert_eq!(d.query_hash, Hash::of(PARCELS_SQL.as_bytes()));
    let mut pins: Vec<(String, Option<Hash>)> = m
        .lineage
        .iter()
        .map(|u| (u.id.to_string(), u.manifest))
        .collect();
    pins.sort();
    assert_eq!(
        pins,
        vec![
            ("logistics/shipments".to_string(), Some(v1)),
            ("sales/orders".to_string(), Some(orders_hash)),
        ]
    );

    // The same inputs give the same bytes: a forced computation publishes nothing.
    let (again, ok) = mesh_json(&net, &["derive", "finance/parcels", "--force"]);
    assert!(ok, "{again}");
    assert_eq!(again["state"], "unchanged", "{again}");

    // New shipments that change nothing in the result: nothing published.
    let v2 = ship(&net, "1.1.0", 36, 20); // orders 30..36 do not exist
    let d = derived_after(&net, v2);
    assert!(matches!(d.state, DeriveState::Unchanged { .. }), "{d:?}");

    // New shipments that change it: the daemon publishes 1.0.1, pinned to them.
    let v3 = ship(&net, "1.2.0", 30, 25);
    let d = derived_after(&net, v3);
    assert_eq!(
        d.state,
        DeriveState::Published {
            version: "1.0.1".into()
        },
        "{d:?}"
    );
    net.wait_product(1, "finance/parcels", "1.0.1", DEADLINE)
        .unwrap();
    assert_eq!(parcels(&net, "1.0.1"), "carrier,parcels\ndhl,25\nups,5\n");

    // New shipments whose result breaks the contract (15 and 15 parcels, declared
    // unique): nothing is published, and the reason is shown.
    let v4 = ship(&net, "1.3.0", 30, 15);
    let d = derived_after(&net, v4);
    let DeriveState::Failed { reason, .. } = &d.state else {
        panic!("expected a failure: {d:?}");
    };
    assert!(
        reason.contains("parcels") && reason.contains("contract"),
        "{reason}"
    );
    let newest = net.nodes[1]
        .client()
        .unwrap()
        .show(&"finance/parcels".parse::<ProductRef>().unwrap(), None)
        .unwrap();
    assert_eq!(newest.entry.announcement.version.to_string(), "1.0.1");
    let (listed, _) = mesh_json(&net, &["derived"]);
    assert_eq!(listed[0]["state"], "failed", "{listed}");
    let out = net
        .mesh_bin()
        .command(&net.nodes[1].home)
        .args(["show", "finance/parcels"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LAST COMPUTATION FAILED") && text.contains("derived by query"),
        "{text}"
    );
    let page_url = net.nodes[1]
        .client()
        .unwrap()
        .catalog_url(Some(&"finance/parcels".parse().unwrap()));
    let page = ureq::get(&page_url).call().unwrap().into_string().unwrap();
    assert!(
        page.contains("Derived by SQL") && page.contains("published nothing"),
        "the catalog page shows the query and the failure"
    );
    assert!(
        Path::new(&net.nodes[1].home)
            .join("derived")
            .read_dir()
            .map_or(true, |mut d| d.next().is_none()),
        "no computation left behind"
    );

    // `mesh gc` removes the query copies of versions that are no longer the
    // newest (shipments 1.0.0 to 1.2.0, parcels 1.0.0) and unfinished ones.
    let query = net.nodes[1].home.join("query");
    std::fs::create_dir_all(query.join(".partial-0123456789abcdef")).unwrap();
    let gc = net.nodes[1]
        .client()
        .unwrap()
        .gc(&mesh_node::api::GcRequest {
            keep: None,
            dry_run: false,
        })
        .unwrap();
    assert_eq!(gc.query_copies_removed, 5, "{gc:?}");
    let mut left: Vec<String> = std::fs::read_dir(&query)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let parcels_now = newest.entry.announcement.manifest.to_string();
    let mut want = vec![orders_hash.to_string(), v4.to_string(), parcels_now];
    want.sort();
    assert_eq!(left, want);
    net.stop_all().unwrap();
}
