//! The Flight SQL port with a real client: the ADBC Flight SQL driver from PyPI
//! (`adbc-driver-flightsql`, `pyarrow`), driven by `tests/clients/flight_sql.py`.
//! On a 3-node mesh, finance's node serves (over TLS, with a self-signed
//! certificate the client trusts) a join of two domains' products to a finance
//! token, and logistics' node serves without TLS on loopback; a prepared statement runs, a parameter is refused; what a token
//! reads is what its domain may fetch (a pii product refused to finance until the
//! owner grants it, and to a domain with no grant even on a node that holds it);
//! a revoked token and a made-up one are refused.
//!
//! Needs the venv `scripts/py-clients` makes (`MESH_PY_CLIENTS` names its python;
//! `.ci/run` sets it). Without one, and with no way to make it, the test says so
//! loudly and passes; with `CI` set it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{answer_error as error, answer_rows as rows, python_client, testnet, DEADLINE};
use crate::query::{grant_customers_to_finance, three_products};
use mesh_testnet::wait_until;
use serde_json::Value;

/// The certificate finance's port serves, for the client to trust.
static TLS_ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Has the node at `home` serve Flight SQL over TLS with a new self-signed
/// certificate for 127.0.0.1, written next to it; returns the certificate.
fn serve_tls(home: &Path) -> PathBuf {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (home.join("flight.crt"), home.join("flight.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let node = mesh_node::NodeHome::new(home);
    let mut config = node.load_config().unwrap();
    config.flight_sql.tls_cert = Some(cert.clone());
    config.flight_sql.tls_key = Some(key);
    std::fs::write(node.config_path(), config.to_toml().unwrap()).unwrap();
    cert
}

/// What the ADBC client got for `sql` in `mode`, with `token`; a `grpc+tls://`
/// URI trusts the certificate `MESH_TLS_ROOT` names.
fn adbc(python: &Path, uri: &str, token: &str, mode: &str, sql: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/flight_sql.py");
    let out = Command::new(python)
        .env(
            "MESH_TLS_ROOT",
            TLS_ROOT
                .get()
                .map(PathBuf::as_path)
                .unwrap_or(Path::new("")),
        )
        .arg(script)
        .args([uri, token, mode, sql])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "the client printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `mesh token ARGS --json` on `home`, parsed.
fn token_cli(net: &mesh_testnet::Testnet, home: &Path, args: &[&str]) -> Value {
    let out = net
        .mesh_bin()
        .command(home)
        .arg("--json")
        .arg("token")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mesh token {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_real_flight_sql_client_reads_what_its_tokens_domain_may_fetch() {
    let Some(python) = python_client("MESH_PY_CLIENTS", "flight", "the Flight SQL client test")
    else {
        return;
    };
    let mut net = testnet(3);
    let finance = net.nodes[1].home.clone();
    TLS_ROOT.get_or_init(|| serve_tls(&finance));
    net.start_all().unwrap();
    three_products(&net);
    let addr = std::fs::read_to_string(finance.join("flight_sql.addr")).unwrap();
    let uri = format!("grpc+tls://{}", addr.trim());
    let status = net.nodes[1].client().unwrap().status().unwrap();
    assert_eq!(status.flight_sql.as_deref(), Some(addr.trim()));
    let made = token_cli(
        &net,
        &finance,
        &["create", "--domain", "finance", "--label", "bi"],
    );
    let token = made["token"].as_str().unwrap().to_string();
    let token_id = made["view"]["id"].as_str().unwrap().to_string();

    // A join of two domains' products, neither held by finance's node.
    let join = "SELECT s.carrier, COUNT(*) AS n FROM sales.orders o \
                JOIN logistics.shipments s ON s.order_id = o.order_id \
                GROUP BY s.carrier ORDER BY s.carrier";
    let answer = adbc(&python, &uri, &token, "execute", join);
    assert_eq!(
        answer["columns"],
        serde_json::json!(["carrier", "n"]),
        "{answer}"
    );
    assert_eq!(
        rows(&answer),
        &vec![
            serde_json::json!(["dhl", 50]),
            serde_json::json!(["ups", 50])
        ]
    );

    // Without TLS the finance port is not spoken to; logistics' port (loopback,
    // no TLS) serves its own domain's token.
    let plain = format!("grpc://{}", addr.trim());
    assert!(adbc(&python, &plain, &token, "execute", join)["error"].is_string());
    let logistics = net.nodes[2].home.clone();
    let own = token_cli(&net, &logistics, &["create", "--domain", "logistics"]);
    let own = own["token"].as_str().unwrap();
    let addr2 = std::fs::read_to_string(logistics.join("flight_sql.addr")).unwrap();
    let answer = adbc(
        &python,
        &format!("grpc://{}", addr2.trim()),
        own,
        "execute",
        "SELECT COUNT(*) AS n FROM logistics.shipments",
    );
    assert_eq!(rows(&answer), &vec![serde_json::json!([100])], "{answer}");

    // Browsing lists a schema per domain and a table per product the token may
    // read: not the pii product, not yet.
    let listed = adbc(&python, &uri, &token, "tables", "");
    assert_eq!(
        rows(&listed),
        &vec![
            serde_json::json!(["logistics", "shipments"]),
            serde_json::json!(["sales", "orders"])
        ],
        "{listed}"
    );

    // A prepared statement runs; binding a parameter is refused with a message.
    let one = "SELECT order_id, amount FROM sales.orders WHERE order_id = 7";
    let answer = adbc(&python, &uri, &token, "prepare", one);
    assert_eq!(
        rows(&answer),
        &vec![serde_json::json!([7, 259.07])],
        "{answer}"
    );
    let err = error(&adbc(
        &python,
        &uri,
        &token,
        "bind",
        "SELECT $1 AS x FROM sales.orders",
    ));
    assert!(err.contains("take no parameters"), "{err}");

    // The rules decide as for a fetch by the token's domain.
    let pii = "SELECT COUNT(*) AS n FROM sales.customers";
    let err = error(&adbc(&python, &uri, &token, "execute", pii));
    assert!(
        err.contains("denied by rule") && err.contains("sales/customers"),
        "{err}"
    );
    grant_customers_to_finance(&net);
    wait_until("the grant to reach finance's node", DEADLINE, || {
        Ok(adbc(&python, &uri, &token, "execute", pii)["rows"] == serde_json::json!([[50]]))
    })
    .unwrap();
    let listed = adbc(&python, &uri, &token, "tables", "");
    assert!(
        rows(&listed).contains(&serde_json::json!(["sales", "customers"])),
        "granted, it is listed: {listed}"
    );
    // The node holds the product now; a token of a domain with no grant still
    // reads nothing of it.
    let other = token_cli(&net, &finance, &["create", "--domain", "marketing"]);
    let other = other["token"].as_str().unwrap();
    let err = error(&adbc(&python, &uri, other, "execute", pii));
    assert!(
        err.contains("denied by rule") && err.contains("marketing"),
        "{err}"
    );
    assert_eq!(
        rows(&adbc(
            &python,
            &uri,
            other,
            "execute",
            "SELECT COUNT(*) AS n FROM sales.orders"
        )),
        &vec![serde_json::json!([300])]
    );

    // A revoked token, and one the node never made, open nothing.
    token_cli(&net, &finance, &["revoke", &token_id]);
    let err = error(&adbc(&python, &uri, &token, "execute", join));
    assert!(err.contains("revoked"), "{err}");
    let listed = token_cli(&net, &finance, &["list"]);
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["domain"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![("finance", "revoked"), ("marketing", "active")]
    );
    let forged = format!("mesh_{token_id}_{}", "0".repeat(64));
    let err = error(&adbc(&python, &uri, &forged, "execute", join));
    assert!(err.contains("unknown token"), "{err}");
    net.stop_all().unwrap();
}
