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

use crate::common::{answer_error as error, answer_rows as rows, python_client, testnet, DEADLINE};
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

const ROUTES_TOML: &str = r#"id = "logistics/routes"
version = "1.0.0"
status = "active"
title = "Routes"
description = "One delivery route per row."
classification = "internal"

[sla]
freshness = "24h"

[owner]
team = "logistics-ops"
contact = "ops@example.com"

[[schema]]
name = "route_id"
type = "integer"
required = true

[[schema]]
name = "km"
type = "number"

[[schema]]
name = "depot"
type = "string"
"#;

/// Writes a Parquet file of three routes (a null `km`, a null `depot`).
fn write_routes(path: &Path) {
    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = RecordBatch::try_from_iter([
        (
            "route_id",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        ),
        (
            "km",
            Arc::new(Float64Array::from(vec![Some(12.5), None, Some(3.0)])) as ArrayRef,
        ),
        (
            "depot",
            Arc::new(StringArray::from(vec![Some("north"), Some("south"), None])) as ArrayRef,
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

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
    let routes = net.root().join("routes");
    write_routes(&routes.join("routes.parquet"));
    net.publish(2, &routes, ROUTES_TOML).unwrap();
    // Large enough (over 10 MiB) that the engine would read it in two halves.
    let ledger = net.root().join("ledger");
    std::fs::create_dir_all(&ledger).unwrap();
    let mut rows_text = String::from("entry,amount\n");
    for i in 0..800_000u64 {
        rows_text.push_str(&format!(
            "{},{}.{:02}\n",
            (i * 7919) % 1_000_003,
            i % 997,
            i % 100
        ));
    }
    std::fs::write(ledger.join("ledger.csv"), rows_text).unwrap();
    let ledger_toml = REFUNDS_TOML
        .replace("sales/refunds", "sales/ledger")
        .replace("refund_id", "entry")
        .replace("[[schema]]\nname = \"reason\"\ntype = \"string\"\n", "");
    net.publish(0, &ledger, &ledger_toml).unwrap();
    for (p, v) in [
        ("sales/refunds", "1.0.0"),
        ("logistics/routes", "1.0.0"),
        ("sales/ledger", "1.0.0"),
    ] {
        net.wait_product(1, p, v, DEADLINE).unwrap();
    }

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
    let want = json!([
        "logistics.routes",
        "logistics.shipments",
        "sales.ledger",
        "sales.orders",
        "sales.refunds"
    ]);
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
    // Equal to pandas reading the original files: CSV (NA as null), Parquet.
    let csv = refunds.join("refunds.csv");
    let same = ask("equal", "finance.sales.refunds", csv.to_str().unwrap());
    assert_eq!(same["equal"], true, "{same}");
    let parquet = routes.join("routes.parquet");
    let same = ask(
        "equal",
        "finance.logistics.routes",
        parquet.to_str().unwrap(),
    );
    assert_eq!(same["equal"], true, "{same}");
    // A large file keeps its row order.
    let csv = ledger.join("ledger.csv");
    let same = ask("equal", "finance.sales.ledger", csv.to_str().unwrap());
    assert_eq!(same["equal"], true, "{same}");
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
    let listed = ask("tables", "", "");
    assert!(
        listed["tables"]
            .as_array()
            .unwrap()
            .contains(&json!("sales.customers")),
        "granted, it is listed: {listed}"
    );

    // Two more versions: table versions 1 and 2; version 0, and the time
    // before it, still read the first; the change feed has all three, as inserts.
    let mut csv = std::fs::read_to_string(&orders).unwrap();
    for (extra, version) in [("300,1.00\n", "1.1.0"), ("301,2.00\n", "1.2.0")] {
        csv.push_str(extra);
        std::fs::write(&orders, &csv).unwrap();
        let toml = crate::query::ORDERS_TOML
            .replace("1.0.0", version)
            .replace("[owner]", "[sla]\nfreshness = \"24h\"\n\n[owner]");
        net.publish(0, orders.parent().unwrap(), &toml).unwrap();
        net.wait_product(1, "sales/orders", version, DEADLINE)
            .unwrap();
    }
    assert_eq!(ask("version", "finance.sales.orders", "")["version"], 2);
    assert_eq!(rows(&ask("load", "finance.sales.orders", "")).len(), 302);
    assert_eq!(rows(&ask("load", "finance.sales.orders", "0")).len(), 300);
    assert_eq!(rows(&ask("load", "finance.sales.orders", "1")).len(), 301);
    let changes = ask("changes", "finance.sales.orders", "0");
    let per_version = |v: u64| {
        rows(&changes)
            .iter()
            .filter(|r| r["_commit_version"] == v && r["_change_type"] == "insert")
            .count()
    };
    assert_eq!(
        (per_version(0), per_version(1), per_version(2)),
        (300, 301, 302),
        "{changes}"
    );
    let err = error(&ask("load", "finance.sales.orders", "7"));
    assert!(err.contains("versions 0 to 2"), "{err}");
    let now = ask("asof", "finance.sales.orders", "2999-01-01T00:00:00Z");
    assert_eq!(rows(&now).len(), 302);
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
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&sharing)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let count = || names().len();
    let catalog: Vec<String> = net.nodes[1]
        .client()
        .unwrap()
        .products(&Default::default())
        .unwrap()
        .iter()
        .map(|e| {
            let a = &e.announcement;
            format!("{}@{} {}", a.product, a.version, a.manifest)
        })
        .collect();
    assert_eq!(
        count(),
        8,
        "orders 1.0.0, 1.1.0 and 1.2.0, refunds, routes, ledger, shipments, customers: {:?} of {catalog:#?}",
        names()
    );
    let gc = net.nodes[1]
        .client()
        .unwrap()
        .gc(&mesh_node::api::GcRequest {
            keep: None,
            dry_run: false,
        })
        .unwrap();
    assert_eq!(gc.sharing_files_removed, 2, "{gc:?}");
    assert_eq!(count(), 6);
    net.stop_all().unwrap();
}

/// One raw HTTP/1.1 request to `addr` (as written, so no client normalises a
/// path or trims a body): the status and the body, as text and its bytes.
fn raw_bytes(addr: &str, request: &[u8]) -> (u16, String, usize) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // A server may answer (413) and close before reading all of a huge body.
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    let start = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |i| i + 4);
    (status, body, answer.len() - start)
}

/// [`raw_bytes`] without the byte count.
fn raw(addr: &str, request: &[u8]) -> (u16, String) {
    let (status, body, _) = raw_bytes(addr, request);
    (status, body)
}

/// A Delta Sharing port of a node, spoken to over raw HTTP with a token.
struct Port {
    addr: String,
    token: String,
}

impl Port {
    /// The port of node `i`, with a new token of `domain`.
    fn of(net: &mesh_testnet::Testnet, i: usize, domain: &str) -> Port {
        let made = mesh_json(
            net,
            &net.nodes[i].home,
            &["token", "create", "--domain", domain],
        );
        let endpoint = net.nodes[i]
            .client()
            .unwrap()
            .status()
            .unwrap()
            .delta_sharing
            .unwrap();
        Port {
            addr: endpoint
                .trim_start_matches("http://")
                .trim_end_matches("/delta-sharing")
                .to_string(),
            token: made["token"].as_str().unwrap().to_string(),
        }
    }

    /// `GET path` with `extra` headers, and the token if `auth`.
    fn get(&self, path: &str, auth: bool, extra: &str) -> (u16, String) {
        let bearer = if auth {
            format!("Authorization: Bearer {}\r\n", self.token)
        } else {
            String::new()
        };
        let addr = &self.addr;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{bearer}{extra}Connection: close\r\n\r\n"
        );
        raw(addr, req.as_bytes())
    }

    /// `POST path` with the token and `body`.
    fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let addr = &self.addr;
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.token,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        raw(addr, &req)
    }

    /// The path of the file link a snapshot query of `table` gives, and the size.
    fn link(&self, table: &str) -> (String, u64) {
        let (status, body) = self.post(&format!("{table}/query"), b"{}");
        assert_eq!(status, 200, "{body}");
        let file: Value = serde_json::from_str(body.lines().nth(2).unwrap()).unwrap();
        let url = file["file"]["url"].as_str().unwrap();
        let path = url.split(&self.addr).nth(1).unwrap().to_string();
        (path, file["file"]["size"].as_u64().unwrap())
    }
}

#[test]
fn hostile_requests_get_clear_refusals_and_file_links_expire() {
    let mut net = testnet(2);
    // Sales' node hands out links that live one second.
    let home = mesh_node::NodeHome::new(&net.nodes[0].home);
    let mut config = home.load_config().unwrap();
    config.delta_sharing.link_ttl_secs = 1;
    std::fs::write(home.config_path(), config.to_toml().unwrap()).unwrap();
    net.start_all().unwrap();
    let refunds = net.root().join("refunds");
    std::fs::create_dir_all(&refunds).unwrap();
    std::fs::write(
        refunds.join("refunds.csv"),
        "refund_id,amount,reason\n1,9.5,x\n",
    )
    .unwrap();
    net.publish(0, &refunds, REFUNDS_TOML).unwrap();
    net.wait_product(1, "sales/refunds", "1.0.0", DEADLINE)
        .unwrap();
    let sales = Port::of(&net, 0, "sales");
    let table = "/delta-sharing/shares/sales/schemas/sales/tables/refunds";
    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "no token",
            sales.get("/delta-sharing/shares", false, ""),
            401,
            "UNAUTHENTICATED",
        ),
        (
            "another share",
            sales.get("/delta-sharing/shares/finance", true, ""),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "a bad page size",
            sales.get("/delta-sharing/shares?maxResults=abc", true, ""),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "a negative page size",
            sales.get("/delta-sharing/shares?maxResults=-1", true, ""),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "a made-up page token",
            sales.get(
                "/delta-sharing/shares/sales/all-tables?pageToken=zz",
                true,
                "",
            ),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "a path out of the tree",
            sales.get("/delta-sharing/../../etc/passwd", true, ""),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "an encoded path in a schema",
            sales.get(
                "/delta-sharing/shares/sales/schemas/..%2F..%2Fetc/tables/passwd/metadata",
                true,
                "",
            ),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "an encoded path as a file link",
            sales.get("/delta-sharing/files/..%2F..%2Fetc%2Fpasswd", false, ""),
            403,
            "PERMISSION_DENIED",
        ),
        (
            "a negative version",
            sales.get(&format!("{table}/metadata?version=-1"), true, ""),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "a version and a timestamp",
            sales.get(
                &format!("{table}/metadata?version=0&timestamp=2026-01-01T00:00:00Z"),
                true,
                "",
            ),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "a timestamp that is none",
            sales.get(
                &format!("{table}/changes?startingTimestamp=yesterday"),
                true,
                "",
            ),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "changes from nowhere",
            sales.get(&format!("{table}/changes"), true, ""),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "bad JSON",
            sales.post(&format!("{table}/query"), b"{not json"),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (
            "a huge body",
            sales.post(&format!("{table}/query"), &vec![b' '; 80 * 1024]),
            413,
            "INVALID_PARAMETER_VALUE",
        ),
    ];
    for (what, (status, body), want, code) in cases {
        assert_eq!(status, want, "{what}: {body}");
        let parsed: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: not the JSON error form ({e}): {body:?}"));
        assert_eq!(parsed["errorCode"], code, "{what}: {body}");
        assert!(
            !parsed["message"].as_str().unwrap_or("").is_empty(),
            "{what}"
        );
    }

    // On finance's node (links of an hour): whole, a range, a range past the end.
    let finance = Port::of(&net, 1, "finance");
    let (path, size) = finance.link(table.replace("shares/sales", "shares/finance").as_str());
    let whole = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        finance.addr
    );
    let (status, _, bytes) = raw_bytes(&finance.addr, whole.as_bytes());
    assert_eq!((status, bytes as u64), (200, size));
    assert_eq!(finance.get(&path, false, "Range: bytes=0-3\r\n").0, 206);
    let past = format!("Range: bytes={size}-\r\n");
    assert_eq!(finance.get(&path, false, &past).0, 416);

    // On sales' node a link stops working after its second.
    let (path, _) = sales.link(table);
    wait_until("the file link to expire", DEADLINE, || {
        Ok(sales.get(&path, false, "").0 == 403)
    })
    .unwrap();
    let (_, body) = sales.get(&path, false, "");
    assert!(body.contains("expired"), "{body}");
    net.stop_all().unwrap();
}
