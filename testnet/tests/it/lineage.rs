//! OpenLineage events on real node processes: sales' node writes its publishes'
//! events to a JSON-lines file, finance's node POSTs its derived product's to an
//! HTTP endpoint (a collector in this test, on loopback). Each is checked by
//! `tests/clients/lineage_check.py` against the OpenLineage JSON Schemas and
//! rebuilt with the `openlineage-python` client's spec models: the product as
//! output with its schema, documentation, ownership and version (the manifest
//! hash) facets, the derived product's input pinned to the version read and its
//! query in the job's `sql` facet.
//!
//! Needs the venv `scripts/py-clients outputs` makes (`MESH_PY_OUTPUTS`); without
//! one the test says so loudly and passes, and with `CI` set it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::common::{python_client, testnet, DEADLINE};
use mesh_testnet::wait_until;
use serde_json::Value;

/// Collects the JSON bodies POSTed to it, answering 201; returns its URL.
fn collector(bodies: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                bodies
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = stream.write_all(
                b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    url
}

/// Sets `[lineage]` in the config of the node at `home`.
fn configure(home: &Path, file: Option<&str>, url: Option<String>) {
    let node = mesh_node::NodeHome::new(home);
    let mut config = node.load_config().unwrap();
    config.lineage.file = file.map(Into::into);
    config.lineage.url = url;
    std::fs::write(node.config_path(), config.to_toml().unwrap()).unwrap();
}

/// What `lineage_check.py` found in the events file `events`.
fn check(python: &Path, events: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/lineage_check.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(events)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the checker printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

const TOTALS_TOML: &str = r#"id = "finance/totals"
version = "1.0.0"
title = "Order totals"
description = "How many orders, and their sum."
classification = "internal"
owner = { team = "finance-bi", contact = "bi@example.com" }
schema = [
  { name = "n", type = "integer", required = true, description = "Orders" },
  { name = "total", type = "number", required = true },
]

[derive]
sql = "SELECT COUNT(*) AS n, SUM(amount) AS total FROM sales.orders"
"#;

#[test]
fn publishes_and_derivations_emit_openlineage_events_the_client_accepts() {
    let Some(python) = python_client("MESH_PY_OUTPUTS", "outputs", "the OpenLineage test") else {
        return;
    };
    let mut net = testnet(2);
    let bodies = Arc::new(Mutex::new(Vec::new()));
    configure(&net.nodes[0].home, Some("lineage/events.jsonl"), None);
    configure(&net.nodes[1].home, None, Some(collector(bodies.clone())));
    net.start_all().unwrap();

    let dir = net.root().join("orders");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("orders.csv"), "order_id,amount\n1,10.5\n2,4.5\n").unwrap();
    let orders = net.publish(0, &dir, crate::query::ORDERS_TOML).unwrap();
    let file = net.nodes[0].home.join("lineage/events.jsonl");
    wait_until("sales' node to write the event", DEADLINE, || {
        Ok(std::fs::read_to_string(&file).is_ok_and(|t| t.lines().count() == 1))
    })
    .unwrap();
    let found = check(&python, &file);
    assert_eq!(found["errors"], serde_json::json!([]), "{found}");
    let event = &found["events"][0];
    assert_eq!(event["job"], "publish sales/orders");
    assert_eq!(event["outputs"], serde_json::json!(["sales/orders"]));
    assert_eq!(
        event["facets"],
        serde_json::json!(["documentation", "ownership", "schema", "version"])
    );
    assert_eq!(event["versions"][0], orders.manifest.as_str());

    // The derived product, on finance's node: its input pinned, its query.
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    let draft = net.root().join("totals.toml");
    std::fs::write(&draft, TOTALS_TOML).unwrap();
    let out = net
        .mesh_bin()
        .command(&net.nodes[1].home)
        .arg("derive")
        .arg(&draft)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("finance's node to POST the event", DEADLINE, || {
        Ok(bodies.lock().unwrap().len() == 1)
    })
    .unwrap();
    let posted = net.root().join("posted.jsonl");
    std::fs::write(&posted, bodies.lock().unwrap().join("\n")).unwrap();
    let found = check(&python, &posted);
    assert_eq!(found["errors"], serde_json::json!([]), "{found}");
    let event = &found["events"][0];
    assert_eq!(event["job"], "derive finance/totals");
    assert_eq!(event["inputs"], serde_json::json!(["sales/orders"]));
    assert_eq!(event["versions"][0], orders.manifest.as_str(), "pinned");
    assert!(event["sql"].as_str().unwrap().contains("FROM sales.orders"));
    net.stop_all().unwrap();
}
