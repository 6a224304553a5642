//! A manifest to an ODPS v1.1.0 document: the kept document (if any) with what
//! mesh knows filled in where it is silent, and the ports mesh serves added.

use mesh_protocol::Manifest;
use serde_json::{json, Map, Value};

use super::document::{problems, OdpsError, EXPORT_API_VERSION};

/// The output ports this node serves, as the export names them.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The Delta Sharing endpoint URL, if the port is on.
    pub delta_sharing: Option<String>,
    /// The Flight SQL address (`host:port`), if the port is on.
    pub flight_sql: Option<String>,
    /// Whether the Flight SQL port uses TLS.
    pub flight_sql_tls: bool,
}

/// An upstream of the product, as an input port: its product id, the version
/// read (if known) and its ODCS contract's id (if known).
#[derive(Debug, Clone)]
pub struct InputLink {
    /// `domain/name`.
    pub product: String,
    /// The version read.
    pub version: Option<String>,
    /// The id of the upstream's ODCS contract (`mesh show ID --format odcs`).
    pub contract_id: Option<String>,
    /// The upstream version's manifest hash, when the lineage pins it.
    pub manifest: Option<String>,
}

/// The names of the ports mesh writes; on export they replace ports of the same
/// name (an earlier export, imported again), nothing else.
const MESH_PORTS: [&str; 3] = ["mesh-files", "mesh-delta-sharing", "mesh-flight-sql"];

fn custom(pairs: &[(&str, String)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(k, v)| json!({"property": k, "value": v}))
            .collect(),
    )
}

/// The output ports mesh serves for `m` (manifest `hash`), each linked to the
/// product's ODCS contract `contract_id`.
fn output_ports(m: &Manifest, hash: &str, contract_id: &str, served: &Served) -> Vec<Value> {
    let version = m.version.to_string();
    let mut ports = vec![json!({
        "name": "mesh-files",
        "description": "The product's files, content-verified (BLAKE3) against its signed manifest: `mesh fetch` on any node of the mesh.",
        "type": "files",
        "version": version,
        "contractId": contract_id,
        "customProperties": custom(&[
            ("fetch", format!("mesh fetch {}@{}", m.id, m.version)),
            ("manifest", hash.to_string()),
        ]),
    })];
    if let Some(endpoint) = &served.delta_sharing {
        ports.push(json!({
            "name": "mesh-delta-sharing",
            "description": "A Delta Sharing table (parquet format): share = your consumer domain, schema = the product's domain, table = the product. A profile comes from `mesh share profile`.",
            "type": "deltaSharing",
            "version": version,
            "contractId": contract_id,
            "customProperties": custom(&[
                ("endpoint", endpoint.clone()),
                ("table", format!("<consumer domain>.{}.{}", m.id.domain(), m.id.name())),
            ]),
        }));
    }
    if let Some(addr) = &served.flight_sql {
        let scheme = if served.flight_sql_tls {
            "grpc+tls"
        } else {
            "grpc"
        };
        ports.push(json!({
            "name": "mesh-flight-sql",
            "description": "Arrow Flight SQL: SQL over the product with a consumer token (`mesh token create`).",
            "type": "flightSql",
            "version": version,
            "contractId": contract_id,
            "customProperties": custom(&[
                ("endpoint", format!("{scheme}://{addr}")),
                ("table", format!("{}.{}", m.id.domain(), m.id.name())),
            ]),
        }));
    }
    ports
}

/// `list` (an array, or nothing) without items named in `names`, then `added`.
fn merged(list: Option<Value>, names: &[String], added: Vec<Value>) -> Value {
    let mut out: Vec<Value> = match list {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter(|p| {
                !p.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| names.iter().any(|m| m == n))
            })
            .collect(),
        _ => Vec::new(),
    };
    out.extend(added);
    Value::Array(out)
}

/// `m` as an ODPS v1.1.0 document: its kept document (from `odps_file` at
/// publish) with every value as given, what mesh knows set where the document
/// is silent, mesh's output ports (see [`Served`]) linked to `contract_id` (the
/// id of the product's ODCS contract), and an input port per `inputs`.
pub fn export(
    m: &Manifest,
    hash: &str,
    contract_id: &str,
    served: &Served,
    inputs: &[InputLink],
) -> Result<Value, OdpsError> {
    let mut doc: Map<String, Value> = match &m.odps {
        Some(c) => serde_json::from_str(&c.document).map_err(|e| {
            OdpsError(vec![format!(
                "the ODPS document stored with {}@{} does not parse: {e}",
                m.id, m.version
            )])
        })?,
        None => Map::new(),
    };
    doc.insert("apiVersion".into(), json!(EXPORT_API_VERSION));
    let mut fill = |k: &str, v: Value| {
        doc.entry(k.to_owned()).or_insert(v);
    };
    fill("kind", json!("DataProduct"));
    fill("id", json!(m.id.to_string()));
    fill("name", json!(m.title));
    fill("version", json!(m.version.to_string()));
    fill("status", json!(m.status.to_string()));
    fill("domain", json!(m.id.domain().to_string()));
    if !m.description.is_empty() {
        fill("description", json!({"purpose": m.description}));
    }
    if !m.tags.is_empty() {
        fill("tags", json!(m.tags));
    }
    let mut team = json!({"name": m.owner.team});
    if !m.owner.contact.is_empty() {
        team["members"] = json!([{"username": m.owner.contact, "role": "owner"}]);
    }
    fill("team", team);
    if let Some(ts) = rfc3339(m.created_at) {
        fill("productCreatedTs", json!(ts));
    }
    let outputs = output_ports(m, hash, contract_id, served);
    let names: Vec<String> = MESH_PORTS.iter().map(|s| s.to_string()).collect();
    let merged_outputs = merged(doc.remove("outputPorts"), &names, outputs);
    doc.insert("outputPorts".into(), merged_outputs);
    let upstreams: Vec<Value> = inputs.iter().map(input_port).collect();
    if !upstreams.is_empty() {
        let names: Vec<String> = inputs.iter().map(|i| i.product.clone()).collect();
        let merged_inputs = merged(doc.remove("inputPorts"), &names, upstreams);
        doc.insert("inputPorts".into(), merged_inputs);
    }
    let doc = Value::Object(doc);
    let found = problems(&doc);
    if found.is_empty() {
        Ok(doc)
    } else {
        Err(OdpsError(found))
    }
}

fn input_port(i: &InputLink) -> Value {
    let mut port = json!({"name": i.product});
    if let Some(v) = &i.version {
        port["version"] = json!(v);
    }
    if let Some(c) = &i.contract_id {
        port["contractId"] = json!(c);
    }
    if let Some(h) = &i.manifest {
        port["customProperties"] = custom(&[("manifest", h.clone())]);
    }
    port
}

fn rfc3339(secs: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::PublishFacts;

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

    fn published(yaml: &str) -> Manifest {
        let mut draft = super::super::import::import(yaml, "p.odps.yaml", Some("sales"))
            .unwrap()
            .draft;
        draft.odps = Some(super::super::document::document(yaml).unwrap());
        draft.schema = toml::from_str::<crate::draft::ManifestDraft>(
            "id = \"a/b\"\nversion = \"1.0.0\"\n[[schema]]\nname = \"id\"\ntype = \"integer\"\n",
        )
        .unwrap()
        .schema;
        draft
            .into_manifest(PublishFacts {
                files: Vec::new(),
                created_at: 1_790_000_000,
                publisher: mesh_protocol::KeyPair::generate().public(),
                quality: None,
            })
            .unwrap()
    }

    #[test]
    fn every_value_of_the_standards_examples_survives_the_export() {
        let served = Served {
            delta_sharing: Some("https://node.example:8443/delta-sharing".into()),
            flight_sql: Some("127.0.0.1:4910".into()),
            flight_sql_tls: false,
        };
        for yaml in [
            include_str!("../../tests/odps/customer-data-product.odps.yaml"),
            include_str!("../../tests/odps/simple-data-product.odps.yaml"),
            include_str!("../../tests/odps/deprecated-data-product.odps.yaml"),
        ] {
            let m = published(yaml);
            let up = InputLink {
                product: "sales/raw".into(),
                version: Some("2.0.0".into()),
                contract_id: Some("raw-contract".into()),
                manifest: None,
            };
            let out = export(&m, "abc", "contract-1", &served, &[up]).unwrap();
            assert!(problems(&out).is_empty());
            let original: Value =
                serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(yaml).unwrap())
                    .unwrap();
            let (mut was, mut now) = (Vec::new(), Vec::new());
            leaves(&original, String::new(), &mut was);
            leaves(&out, String::new(), &mut now);
            for kept in was.iter().filter(|(p, _)| p != "/apiVersion") {
                assert!(now.contains(kept), "{kept:?} lost in {out}");
            }
            assert_eq!(out["apiVersion"], "v1.1.0");
            let ports = out["outputPorts"].as_array().unwrap();
            let mesh: Vec<&str> = ports
                .iter()
                .filter_map(|p| p["name"].as_str())
                .filter(|n| n.starts_with("mesh-"))
                .collect();
            assert_eq!(
                mesh,
                ["mesh-files", "mesh-delta-sharing", "mesh-flight-sql"]
            );
            assert!(ports
                .iter()
                .filter(|p| p["name"].as_str().unwrap().starts_with("mesh-"))
                .all(|p| p["contractId"] == "contract-1"));
            let inputs = out["inputPorts"].as_array().unwrap();
            assert_eq!(inputs.last().unwrap()["contractId"], "raw-contract");
        }
    }
}
