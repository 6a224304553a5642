//! `mesh query` on a real 3-node mesh: finance's node, which holds neither, joins
//! a product of sales (CSV) with one of logistics (JSON lines), fetching both
//! through the mesh first; through the real CLI the rows come out as CSV and
//! Parquet; a query touching a pii product the rules keep from finance fails with
//! the rule, and runs once the owner grants access.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::collections::BTreeMap;

use common::{adopt_sample_rules, testnet, DEADLINE};
use mesh_node::api::AccessDecideBody;
use mesh_testnet::{sample, wait_until};

pub(crate) const ORDERS_TOML: &str = r#"id = "sales/orders"
version = "1.0.0"
status = "active"
title = "Orders"
description = "One order per line."
classification = "internal"

[owner]
team = "sales-data"
contact = "sales@example.com"

[[schema]]
name = "order_id"
type = "integer"
required = true
unique = true
description = "Order number"

[[schema]]
name = "amount"
type = "number"
required = true
description = "EUR"
"#;

const SHIPMENTS_TOML: &str = r#"id = "logistics/shipments"
version = "1.0.0"
status = "active"
title = "Shipments"
description = "One parcel per line."
classification = "public"

[owner]
team = "logistics-ops"
contact = "ops@example.com"

[[schema]]
name = "order_id"
type = "integer"
required = true
description = "The order shipped"

[[schema]]
name = "carrier"
type = "string"
required = true
description = "Who carries it"
"#;

/// `sql`'s rows on the node of `client`, as a text table.
fn table(client: &mesh_node::ApiClient, sql: &str) -> String {
    let answer = client.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    datafusion::arrow::util::pretty::pretty_format_batches(&answer.batches)
        .unwrap()
        .to_string()
}

/// The rows of `sales/orders` as written: order id -> amount in cents.
fn amounts(csv: &str) -> BTreeMap<u64, u64> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let (eur, cents) = f[1].split_once('.').unwrap();
            (
                f[0].parse().unwrap(),
                eur.parse::<u64>().unwrap() * 100 + cents.parse::<u64>().unwrap(),
            )
        })
        .collect()
}

/// Publishes sales/orders (CSV, 300 rows) on node 0, logistics/shipments (JSON
/// lines, 100 rows) on node 2 and, under the sample rules, sales/customers (pii,
/// open to logistics only), and waits until node 1 (finance) knows all three.
/// Returns the orders file.
pub(crate) fn three_products(net: &mesh_testnet::Testnet) -> std::path::PathBuf {
    let root = net.root().to_owned();
    let orders = root.join("orders");
    std::fs::create_dir_all(&orders).unwrap();
    let mut csv = String::from("order_id,amount\n");
    for i in 0..300u64 {
        csv.push_str(&format!("{i},{}.{:02}\n", i * 37 % 1000, i % 100));
    }
    let orders = orders.join("orders.csv");
    std::fs::write(&orders, csv).unwrap();
    net.publish(0, orders.parent().unwrap(), ORDERS_TOML)
        .unwrap();
    let shipments = root.join("shipments");
    std::fs::create_dir_all(&shipments).unwrap();
    let mut lines = String::new();
    for i in (0..300).step_by(3) {
        let carrier = ["dhl", "ups"][i % 2];
        lines.push_str(&format!(
            "{{\"order_id\": {i}, \"carrier\": \"{carrier}\"}}\n"
        ));
    }
    std::fs::write(shipments.join("shipments.jsonl"), lines).unwrap();
    net.publish(2, &shipments, SHIPMENTS_TOML).unwrap();
    adopt_sample_rules(net);
    let customers = root.join("customers");
    sample::write_orders(&customers, 50, 9).unwrap();
    net.publish(
        0,
        &customers,
        &sample::restricted_manifest_toml("sales/customers", "1.0.0", &["logistics"]),
    )
    .unwrap();
    for (p, v) in [
        ("sales/orders", "1.0.0"),
        ("logistics/shipments", "1.0.0"),
        ("sales/customers", "1.0.0"),
    ] {
        net.wait_product(1, p, v, DEADLINE).unwrap();
    }
    orders
}

/// Has node 0 (sales) grant finance access to sales/customers.
pub(crate) fn grant_customers_to_finance(net: &mesh_testnet::Testnet) {
    net.nodes[0]
        .client()
        .unwrap()
        .access_decide(&AccessDecideBody {
            product: "sales/customers".into(),
            consumer: "finance".into(),
            decision: "grant".into(),
            until_ms: None,
            purpose: "reconciliation".into(),
            terms: String::new(),
            reason: String::new(),
        })
        .unwrap();
}

#[test]
fn a_node_joins_two_domains_products_it_does_not_hold_and_rules_decide_what_it_reads() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    let root = net.root().to_owned();
    let orders = three_products(&net);

    // The join, on finance's node, which holds neither product.
    let client = net.nodes[1].client().unwrap();
    let text = table(
        &client,
        "SELECT s.carrier, COUNT(*) AS n, SUM(o.amount) AS total \
         FROM sales.orders o JOIN logistics.shipments s ON s.order_id = o.order_id \
         GROUP BY s.carrier ORDER BY s.carrier",
    );
    let by_id = amounts(&std::fs::read_to_string(&orders).unwrap());
    for (carrier, parity) in [("dhl", 0), ("ups", 1)] {
        let ids: Vec<u64> = (0..300u64)
            .step_by(3)
            .filter(|i| (i % 2) as usize == parity)
            .collect();
        let cents: u64 = ids.iter().map(|i| by_id[i]).sum();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("| {carrier} ")))
            .unwrap_or_else(|| panic!("no {carrier} row in\n{text}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells[2], ids.len().to_string(), "{text}");
        let total: f64 = cells[3].parse().unwrap();
        assert!(
            (total * 100.0 - cents as f64).abs() < 0.5,
            "{carrier}: {total} != {cents} cents\n{text}"
        );
    }

    // EXPLAIN shows the plan; a bare table name says how to name a product.
    let plan = table(&client, "EXPLAIN SELECT carrier FROM logistics.shipments");
    assert!(plan.contains("physical_plan"), "{plan}");
    let err = client.query("SELECT * FROM shipments").unwrap_err();
    assert!(err.to_string().contains("domain.product"), "{err}");

    // The real CLI: CSV to the terminal, Parquet to a file.
    let mesh = net.mesh_bin();
    let out = mesh
        .command(&net.nodes[1].home)
        .args([
            "query",
            "--format",
            "csv",
            "SELECT carrier, COUNT(*) AS n FROM logistics.shipments GROUP BY carrier ORDER BY carrier",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "carrier,n\ndhl,50\nups,50\n"
    );
    let parquet = root.join("result.parquet");
    let out = mesh
        .command(&net.nodes[1].home)
        .args(["query", "--format", "parquet", "-o"])
        .arg(&parquet)
        .arg("SELECT order_id FROM \"sales\".\"orders@1.0.0\" WHERE order_id < 10")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&parquet).unwrap())
            .map(|r| {
                parquet::file::reader::FileReader::metadata(&r)
                    .file_metadata()
                    .num_rows()
            })
            .unwrap();
    assert_eq!(rows, 10);

    // A product the rules keep from finance: the query fails with the rule.
    let err = client
        .query("SELECT COUNT(*) FROM sales.customers")
        .unwrap_err();
    assert_eq!(
        match &err {
            mesh_node::ClientError::Api { kind, .. } => kind.as_str(),
            _ => "",
        },
        "rejected",
        "{err}"
    );
    assert!(err.to_string().contains("sales/customers"), "{err}");
    // Granted: the same query runs.
    grant_customers_to_finance(&net);
    wait_until("finance to run the granted query", DEADLINE, || {
        Ok(client
            .query("SELECT COUNT(*) AS n FROM sales.customers")
            .is_ok())
    })
    .unwrap();
    let text = table(&client, "SELECT COUNT(*) AS n FROM sales.customers");
    assert!(text.contains("| 50 |"), "{text}");
    // Revoked: the copy finance's node keeps for queries is not read either.
    net.nodes[0]
        .client()
        .unwrap()
        .access_decide(&AccessDecideBody {
            product: "sales/customers".into(),
            consumer: "finance".into(),
            decision: "revoke".into(),
            until_ms: None,
            purpose: String::new(),
            terms: String::new(),
            reason: "audit".into(),
        })
        .unwrap();
    wait_until("finance's query to be refused again", DEADLINE, || {
        Ok(client
            .query("SELECT COUNT(*) AS n FROM sales.customers")
            .is_err())
    })
    .unwrap();
    net.stop_all().unwrap();
}

/// A contract of two schema objects: a large `orders` table and a small
/// `regions` one, each in its own file.
const BOOK_CONTRACT: &str = r#"apiVersion: v3.1.0
kind: DataContract
id: sales-book
domain: sales
dataProduct: book
version: 1.0.0
status: active
description:
  purpose: Orders and the regions they ship to.
team:
  name: sales-data
schema:
  - name: orders
    properties:
      - {name: order_id, logicalType: integer, required: true}
      - {name: region, logicalType: string}
      - {name: note, logicalType: string}
  - name: regions
    properties:
      - {name: region, logicalType: string, required: true}
      - {name: name, logicalType: string}
"#;

/// Bytes node `i` downloaded by completed fetches, from its `/metrics`.
fn fetched_bytes(net: &mesh_testnet::Testnet, i: usize) -> u64 {
    let text = net.nodes[i].client().unwrap().metrics().unwrap();
    text.lines()
        .filter(|l| l.starts_with("mesh_fetched_bytes"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The files under `dir`, relative, sorted.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn a_query_fetches_only_the_files_of_the_objects_it_reads() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let root = net.root().to_owned();
    let data = root.join("book");
    std::fs::create_dir_all(&data).unwrap();
    let mut orders = String::from("order_id,region,note\n");
    for i in 0..20_000u64 {
        orders.push_str(&format!("{i},r{},{:064x}\n", i % 4, i * 7919));
    }
    std::fs::write(data.join("orders.csv"), &orders).unwrap();
    std::fs::write(
        data.join("regions.csv"),
        "region,name\nr0,North\nr1,East\nr2,South\nr3,West\n",
    )
    .unwrap();
    let contract = root.join("book.odcs.yaml");
    std::fs::write(&contract, BOOK_CONTRACT).unwrap();
    let out = net.nodes[0]
        .mesh(
            net.mesh_bin(),
            &[
                "publish",
                data.to_str().unwrap(),
                "--contract",
                contract.to_str().unwrap(),
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    net.wait_product(1, "sales/book", "1.0.0", DEADLINE)
        .unwrap();
    let client = net.nodes[1].client().unwrap();
    let before = fetched_bytes(&net, 1);

    // The small object alone: only its file crosses the network.
    let text = table(&client, "SELECT COUNT(*) AS n FROM sales.book.regions");
    assert!(text.contains("| 4 |"), "{text}");
    let copies = net.nodes[1].home.join("query");
    let copy: Vec<String> = files_in(&copies)
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(copy.len(), 1, "{copy:?}");
    let copy = copies.join(&copy[0]);
    assert_eq!(files_in(&copy), ["regions.csv"]);
    let regions_bytes = fetched_bytes(&net, 1) - before;
    assert!(
        regions_bytes < 1024 && regions_bytes > 0,
        "{regions_bytes} bytes fetched for a 48-byte object"
    );
    // The version is not recorded as held: only some of its files are here.
    let list = client.products(&Default::default()).unwrap();
    let book = list
        .iter()
        .find(|e| e.announcement.product.to_string() == "sales/book")
        .unwrap();
    assert!(!book.local, "{book:?}");

    // A join of both objects fetches the other file, once; the first object
    // with data is what `sales.book` names.
    let text = table(
        &client,
        "SELECT r.name, COUNT(*) AS n FROM sales.book.orders o \
         JOIN sales.book.regions r ON o.region = r.region GROUP BY r.name ORDER BY r.name",
    );
    assert!(text.contains("| East  | 5000 |"), "{text}");
    assert_eq!(files_in(&copy), ["orders.csv", "regions.csv"]);
    let all = fetched_bytes(&net, 1) - before;
    assert!(
        all >= orders.len() as u64 && all < orders.len() as u64 + 4096,
        "{all} bytes for {} + 48",
        orders.len()
    );
    let text = table(&client, "SELECT COUNT(*) AS n FROM sales.book");
    assert!(text.contains("| 20000 |"), "{text}");
    assert_eq!(
        fetched_bytes(&net, 1) - before,
        all,
        "nothing fetched again"
    );

    // The CLI writes an answer of many batches as it streams; one that fails
    // part way leaves the earlier file whole and no half-written one.
    let mesh = net.mesh_bin();
    let out_file = root.join("orders.jsonl");
    let run = |args: &[&str]| {
        mesh.command(&net.nodes[1].home)
            .args(args)
            .output()
            .unwrap()
    };
    let path = out_file.to_str().unwrap();
    let all_rows = "SELECT order_id, region FROM sales.book.orders ORDER BY order_id";
    let out = run(&["query", "--format", "jsonl", "-o", path, all_rows]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(written.lines().count(), 20_000);
    assert_eq!(
        written.lines().nth(19_999),
        Some(r#"{"order_id":19999,"region":"r3"}"#)
    );
    let failing = "SELECT order_id, 100 / (order_id - 19999) AS x FROM sales.book.orders";
    let out = run(&["query", "--format", "jsonl", "-o", path, failing]);
    assert!(!out.status.success(), "a division by zero ran");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("cut off") || said.contains("Divide by zero"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), written);
    let left: Vec<String> = files_in(&root)
        .into_iter()
        .filter(|n| n.starts_with(".mesh-query-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // --json: every row, in one document.
    let out = run(&["query", "--json", all_rows]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["columns"], serde_json::json!(["order_id", "region"]));
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(20_000));
    assert_eq!(
        doc["rows"][7],
        serde_json::json!({"order_id": 7, "region": "r3"})
    );
    net.stop_all().unwrap();
}
