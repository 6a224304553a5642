//! ODPS through the real CLI on real nodes: the standard's own example is
//! imported into a product.toml (`mesh odps import`), published with an
//! upstream in its lineage, and exported by another node (`mesh show --format
//! odps`) as an ODPS v1.1.0 document that the official schema accepts, with
//! every value of the example kept, output ports for the file snapshot, Delta
//! Sharing and Flight SQL linked to the product's ODCS contract, and an input
//! port for the upstream, pinned, with its contract's id.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use serde_json::Value;

use crate::common::{testnet, DEADLINE};

const EXAMPLE: &str = include_str!("../../../contract/tests/odps/simple-data-product.odps.yaml");

/// Every `(path, scalar)` of `v`.
fn leaves(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| leaves(v, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(v, format!("{at}/{i}"), out)),
        _ => out.push((at, v.clone())),
    }
}

fn yaml(text: &str) -> Value {
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(text).unwrap()).unwrap()
}

#[test]
fn the_standards_example_goes_in_and_comes_out_with_the_meshs_ports() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let root = net.root().to_owned();
    let orders = root.join("orders");
    std::fs::create_dir_all(&orders).unwrap();
    std::fs::write(orders.join("orders.csv"), "order_id,amount\n1,2.5\n").unwrap();
    let upstream = net.publish(0, &orders, crate::query::ORDERS_TOML).unwrap();

    // Import: a product.toml naming the document.
    let dir = root.join("simple");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("simple.odps.yaml"), EXAMPLE).unwrap();
    std::fs::write(dir.join("data/rows.csv"), "id\n1\n2\n").unwrap();
    let home = &net.nodes[0].home;
    let out = net
        .mesh_bin()
        .command(home)
        .args(["odps", "import"])
        .arg(dir.join("simple.odps.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml_path = dir.join("product.toml");
    let mut toml = std::fs::read_to_string(&toml_path).unwrap();
    assert!(toml.contains("odps_file = \"simple.odps.yaml\""), "{toml}");
    assert!(
        toml.contains("id = \"sales/simple-data-product\""),
        "{toml}"
    );
    toml.push_str(&format!(
        "\n[[schema]]\nname = \"id\"\ntype = \"integer\"\n\n[[lineage]]\nid = \"sales/orders\"\nmanifest = \"{}\"\n",
        upstream.manifest
    ));
    std::fs::write(&toml_path, toml).unwrap();
    let out = net
        .mesh_bin()
        .command(home)
        .arg("publish")
        .arg(dir.join("data"))
        .arg("--manifest")
        .arg(&toml_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Export on the other node: the same document, the standard's schema.
    net.wait_product(1, "sales/simple-data-product", "1.0.0", DEADLINE)
        .unwrap();
    let out = net
        .mesh_bin()
        .command(&net.nodes[1].home)
        .args(["show", "sales/simple-data-product", "--format", "odps"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = yaml(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        mesh_contract::odps::problems(&exported),
        Vec::<String>::new()
    );
    assert_eq!(exported["apiVersion"], "v1.1.0");
    let (mut was, mut now) = (Vec::new(), Vec::new());
    leaves(&yaml(EXAMPLE), String::new(), &mut was);
    leaves(&exported, String::new(), &mut now);
    for kept in was.iter().filter(|(p, _)| p != "/apiVersion") {
        assert!(now.contains(kept), "{kept:?} lost in {exported}");
    }
    let ports = exported["outputPorts"].as_array().unwrap();
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} port in {exported}"))
    };
    let status = net.nodes[1].client().unwrap().status().unwrap();
    for name in ["mesh-files", "mesh-delta-sharing", "mesh-flight-sql"] {
        assert_eq!(
            port(name)["contractId"],
            "sales/simple-data-product",
            "{name}"
        );
        assert_eq!(port(name)["version"], "1.0.0");
    }
    let endpoint = |p: &Value| {
        p["customProperties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["property"] == "endpoint")
            .map(|c| c["value"].as_str().unwrap().to_string())
    };
    assert_eq!(endpoint(port("mesh-delta-sharing")), status.delta_sharing);
    assert_eq!(
        endpoint(port("mesh-flight-sql")),
        status.flight_sql.map(|a| format!("grpc://{a}"))
    );
    let inputs = exported["inputPorts"].as_array().unwrap();
    let up = inputs.iter().find(|p| p["name"] == "sales/orders").unwrap();
    assert_eq!(up["version"], "1.0.0");
    assert_eq!(up["contractId"], "sales/orders");
    assert_eq!(
        up["customProperties"][0]["value"],
        upstream.manifest.as_str()
    );
    net.stop_all().unwrap();
}
