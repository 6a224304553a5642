//! The Delta Sharing port with the real connector (`delta-sharing` from PyPI,
//! driven by `tests/clients/sharing_client.py`). On a 3-node mesh, finance's node
//! serves over TLS (a self-signed certificate the client trusts) products it
//! does not hold: a CSV product with `NA` markers and a JSON-lines one arrive as
//! Parquet of their contract's types; listing pages; a pii product is refused
//! with the rule until its owner grants it; a second version makes table
//! version 1, version 0 and a timestamp still read the first, and the change
//! feed gives both versions as inserts; a revoked token opens nothing, its file
//! links neither.
//!
//! Needs the venv `scripts/py-clients outputs` makes (`MESH_PY_OUTPUTS` names
//! its python; `.ci/run` sets it). Without one, and with no way to make it, the
//! test says so loudly and passes; with `CI` set it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{python_client, testnet, DEADLINE};
use crate::query::{grant_customers_to_finance, three_products};
use mesh_testnet::wait_until;
use serde_json::{json, Value};

/// Has the node at `home` serve Delta Sharing over TLS with a new self-signed
/// certificate for 127.0.0.1, written next to it; returns the certificate.
fn serve_tls(home: &Path) -> PathBuf {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (home.join("sharing.crt"), home.join("sharing.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let node = mesh_node::NodeHome::new(home);
    let mut config = node.load_config().unwrap();
    config.delta_sharing.tls_cert = Some(cert.clone());
    config.delta_sharing.tls_key = Some(key);
    std::fs::write(node.config_path(), config.to_toml().unwrap()).unwrap();
    cert
}

/// The connector's answer to `mode` on `table` (`arg` after it).
fn client(python: &Path, root: &Path, profile: &Path, mode: &str, table: &str, arg: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/sharing_client.py");
    let mut cmd = Command::new(python);
    cmd.env("REQUESTS_CA_BUNDLE", root)
        .env("SSL_CERT_FILE", root)
        .arg(script)
        .arg(profile)
        .args([mode, table]);
    if !arg.is_empty() {
        cmd.arg(arg);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("").trim()).unwrap_or_else(|e| {
        panic!(
            "the client printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The rows of an answer, or a panic with its error.
fn rows(answer: &Value) -> &Vec<Value> {
    answer["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {answer}"))
}

/// The error of an answer, or a panic with its rows.
fn error(answer: &Value) -> String {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {answer}"))
        .to_string()
}

const REFUNDS_TOML: &str = r#"id = "sales/refunds"
version = "1.0.0"
status = "active"
title = "Refunds"
description = "One refund per line; NA where unknown."
classification = "internal"
null_values = ["NA"]

[owner]
team = "sales-data"
contact = "sales@example.com"

[sla]
freshness = "24h"

[[schema]]
name = "refund_id"
type = "integer"
required = true

[[schema]]
name = "amount"
type = "number"

[[schema]]
name = "reason"
type = "string"
"#;

/// `mesh ARGS --json` on `home`, parsed; panics with the output on failure.
fn mesh_json(net: &mesh_testnet::Testnet, home: &Path, args: &[&str]) -> Value {
    let out = net
        .mesh_bin()
        .command(home)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mesh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_real_delta_sharing_connector_reads_the_mesh_through_one_node() {
    let Some(python) = python_client(
        "MESH_PY_OUTPUTS",
        "outputs",
        "the Delta Sharing client test",
    ) else {
        return;
    };
    let mut net = testnet(3);
    let finance = net.nodes[1].home.clone();
    let tls_root = serve_tls(&finance);
    net.start_all().unwrap();
    let orders = three_products(&net);
    let refunds = net.root().join("refunds");
    std::fs::create_dir_all(&refunds).unwrap();
    std::fs::write(
        refunds.join("refunds.csv"),
        "refund_id,amount,reason\n1,9.5,damaged\n2,NA,late\n3,4.25,NA\n",
    )
    .unwrap();
    net.publish(0, &refunds, REFUNDS_TOML).unwrap();
    net.wait_product(1, "sales/refunds", "1.0.0", DEADLINE)
        .unwrap();

    // The profile: the node's endpoint and a new finance token, private.
    let profile = net.root().join("finance.share");
    let made = mesh_json(
        &net,
        &finance,
        &[
            "share",
            "profile",
            "--domain",
            "finance",
            "--out",
            profile.to_str().unwrap(),
        ],
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    assert_eq!(written["shareCredentialsVersion"], 1);
    assert!(written["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
    assert!(written["bearerToken"]
        .as_str()
        .unwrap()
        .starts_with("mesh_"));
    assert!(written["expirationTime"].is_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&profile).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token_id = made["token"]["id"].as_str().unwrap().to_string();
    let ask =
        |mode: &str, table: &str, arg: &str| client(&python, &tls_root, &profile, mode, table, arg);

    // What finance may read is listed, whole and page by page; pii is not.
    let listed = ask("tables", "", "");
    let want = json!(["logistics.shipments", "sales.orders", "sales.refunds"]);
    assert_eq!(listed["tables"], want, "{listed}");
    assert_eq!(listed["paged"], want, "{listed}");

    // CSV with NA markers and JSON lines, as Parquet of the declared types.
    let got = ask("load", "finance.sales.refunds", "");
    assert_eq!(
        rows(&got),
        &vec![
            json!({"refund_id": 1, "amount": 9.5, "reason": "damaged"}),
            json!({"refund_id": 2, "amount": null, "reason": "late"}),
            json!({"refund_id": 3, "amount": 4.25, "reason": null}),
        ],
        "{got}"
    );
    assert_eq!(got["dtypes"]["refund_id"], "int64");
    assert_eq!(got["dtypes"]["amount"], "float64");
    let shipments = ask("load", "finance.logistics.shipments", "");
    assert_eq!(rows(&shipments).len(), 100);
    assert_eq!(shipments["dtypes"]["order_id"], "int64");
    let first = ask("load", "finance.sales.orders", "");
    assert_eq!(rows(&first).len(), 300);
    assert_eq!(ask("version", "finance.sales.orders", "")["version"], 0);

    // The rules decide as for a fetch by finance: refused, then granted.
    let err = error(&ask("load", "finance.sales.customers", ""));
    assert!(
        err.contains("403") && err.contains("denied by rule"),
        "{err}"
    );
    grant_customers_to_finance(&net);
    wait_until("the grant to reach finance's node", DEADLINE, || {
        Ok(ask("load", "finance.sales.customers", "")["rows"]
            .as_array()
            .is_some_and(|r| r.len() == 50))
    })
    .unwrap();

    // A second version: table version 1; version 0, and the time before it,
    // still read the first; the change feed has both, as inserts.
    let mut csv = std::fs::read_to_string(&orders).unwrap();
    csv.push_str("300,1.00\n");
    std::fs::write(&orders, csv).unwrap();
    let toml = crate::query::ORDERS_TOML
        .replace("1.0.0", "1.1.0")
        .replace("[owner]", "[sla]\nfreshness = \"24h\"\n\n[owner]");
    net.publish(0, orders.parent().unwrap(), &toml).unwrap();
    net.wait_product(1, "sales/orders", "1.1.0", DEADLINE)
        .unwrap();
    assert_eq!(ask("version", "finance.sales.orders", "")["version"], 1);
    assert_eq!(rows(&ask("load", "finance.sales.orders", "")).len(), 301);
    assert_eq!(rows(&ask("load", "finance.sales.orders", "0")).len(), 300);
    let changes = ask("changes", "finance.sales.orders", "0");
    let per_version = |v: u64| {
        rows(&changes)
            .iter()
            .filter(|r| r["_commit_version"] == v && r["_change_type"] == "insert")
            .count()
    };
    assert_eq!((per_version(0), per_version(1)), (300, 301), "{changes}");
    let err = error(&ask("load", "finance.sales.orders", "7"));
    assert!(err.contains("versions 0 to 1"), "{err}");
    let now = ask("asof", "finance.sales.orders", "2999-01-01T00:00:00Z");
    assert_eq!(rows(&now).len(), 301);
    let err = error(&ask("asof", "finance.sales.orders", "2000-01-01T00:00:00Z"));
    assert!(err.contains("before the table's first version"), "{err}");

    // File links are signed and short-lived, and never name a path.
    let links = ask("links", "finance.sales.orders", "");
    let url = links["urls"][0].as_str().unwrap().to_string();
    assert!(
        url.contains("/delta-sharing/files/") && !url.contains(finance.to_str().unwrap()),
        "{url}"
    );
    assert!(links["expiration"].as_u64().unwrap() > mesh_node::unix_now_ms());
    assert_eq!(ask("get", &url, "")["status"], 200);
    assert_eq!(ask("get", &format!("{url}x"), "")["status"], 403, "altered");

    // Revoked: nothing more, through the API or a file link made before.
    mesh_json(&net, &finance, &["token", "revoke", &token_id]);
    let err = error(&ask("tables", "", ""));
    assert!(err.contains("401") && err.contains("revoked"), "{err}");
    assert_eq!(ask("get", &url, "")["status"], 403);

    // `mesh gc` removes the file made for the older orders version only.
    let sharing = finance.join("sharing");
    let count = || std::fs::read_dir(&sharing).unwrap().count();
    assert_eq!(
        count(),
        5,
        "orders 1.0.0 and 1.1.0, refunds, shipments, customers"
    );
    let gc = net.nodes[1]
        .client()
        .unwrap()
        .gc(&mesh_node::api::GcRequest {
            keep: None,
            dry_run: false,
        })
        .unwrap();
    assert_eq!(gc.sharing_files_removed, 1, "{gc:?}");
    assert_eq!(count(), 4);
    net.stop_all().unwrap();
}
