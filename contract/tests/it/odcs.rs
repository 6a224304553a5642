//! ODCS v3 contracts: the whole document kept and exported leaf for leaf, the
//! parts mesh checks mapped, notes for what it keeps without checking, round trips
//! through `export`, and clear errors for malformed or wrong contracts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{leaves, manifest, yaml_as_json};
use mesh_contract::odcs::{export, export_value, import, Imported};
use mesh_contract::ManifestDraft;
use mesh_protocol::manifest::{Classification, LogicalType, Status};
use serde_json::Value;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/odcs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn notes(i: &Imported) -> String {
    i.notes.join("\n")
}

#[test]
fn a_full_3_1_contract_maps_what_mesh_checks_and_notes_the_rest() {
    let imported = import(&fixture("full-3.1.odcs.yaml"), None).unwrap();
    let m = manifest(imported.draft.clone());
    assert_eq!(m.id.to_string(), "logistics/shipments");
    assert_eq!(m.version.to_string(), "3.2.1");
    assert_eq!(m.status, Status::Active, "production means active");
    assert_eq!(m.title, "Shipments");
    assert!(m.description.starts_with("Every parcel shipped"));
    assert_eq!(
        (m.owner.team.as_str(), m.owner.contact.as_str()),
        ("logistics-data", "carol@example.com")
    );
    assert_eq!(m.tags, vec!["shipping", "daily"]);
    let names: Vec<_> = m.schema.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "shipment_id",
            "receiver_id",
            "day",
            "pickup_time",
            "weight_kg",
            "address",
            "events"
        ]
    );
    assert_eq!(m.schema[3].logical_type, LogicalType::Time);
    assert_eq!(m.schema[1].classification, Classification::Confidential);
    assert_eq!(
        m.schema[5].classification,
        Classification::Internal,
        "an unknown classification string is read as internal"
    );
    assert_eq!(m.classification, Classification::Confidential);
    assert_eq!(m.sla.freshness_secs, Some(4 * 3600));
    assert_eq!(m.sla.update_frequency_secs, Some(86_400));
    assert_eq!(m.sla.retention_secs, Some(5 * 365 * 86_400));
    assert_eq!(m.sla.availability_bp, Some(9950));
    let contract = m
        .contract
        .as_ref()
        .expect("the document travels with the manifest");
    assert_eq!(contract.api_version, "v3.1.0");
    let n = notes(&imported);
    for part in [
        "servers: kept",
        "roles: kept",
        "support: kept",
        "price: kept",
        "tenant: kept",
        "customProperties: kept",
        "authoritativeDefinitions: kept",
        "slaDefaultElement: kept",
        "description.authoritativeDefinitions: kept",
        "slaProperties[4] (timeOfAvailability): kept",
        "classification \"gdpr-special\" is kept as written",
    ] {
        assert!(n.contains(part), "{part:?} not noted in:\n{n}");
    }
    assert!(!n.contains("status"), "production is a known status:\n{n}");
    // Every schema object and its quality rules are checked at publish now.
    assert!(
        !n.contains("quality: kept") && !n.contains("(receivers)"),
        "schema objects and rules are checked, not only kept:\n{n}"
    );
}

#[test]
fn export_keeps_every_value_of_the_input_in_its_order() {
    for name in [
        "full-3.1.odcs.yaml",
        "minimal-3.0.odcs.yaml",
        "orders.odcs.yaml",
    ] {
        let yaml = fixture(name);
        let m = manifest(import(&yaml, Some("logistics")).unwrap().draft);
        let input = yaml_as_json(&yaml);
        let out = export_value(&m).unwrap();
        let (want, got) = (leaves(&input), leaves(&out));
        if name.starts_with("full") {
            assert!(
                want.len() > 150,
                "the full fixture has {} leaves",
                want.len()
            );
        }
        for (path, value) in &want {
            assert_eq!(got.get(path), Some(value), "{name}: {path} lost or changed");
        }
        assert_eq!(
            out["apiVersion"], input["apiVersion"],
            "{name}: as declared"
        );
        // Only the domain (which names the product) may be added.
        for path in got.keys().filter(|p| !want.contains_key(*p)) {
            assert_eq!(path, "domain", "{name}: export added {path}");
        }
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let order: Vec<_> = keys(&out)
            .into_iter()
            .filter(|k| input.get(k).is_some())
            .collect();
        assert_eq!(order, keys(&input), "{name}: key order");
        // The YAML text says the same.
        assert_eq!(yaml_as_json(&export(&m).unwrap()), out);
    }
}

#[test]
fn export_then_import_gives_the_same_manifest() {
    for name in [
        "full-3.1.odcs.yaml",
        "minimal-3.0.odcs.yaml",
        "orders.odcs.yaml",
    ] {
        let m = manifest(import(&fixture(name), Some("logistics")).unwrap().draft);
        let yaml = export(&m).unwrap();
        let back = manifest(import(&yaml, None).unwrap().draft);
        assert_eq!(back.id, m.id, "{name}");
        let mut m2 = m.clone();
        m2.contract = None;
        let mut b2 = back.clone();
        b2.contract = None;
        assert_eq!(b2, m2, "{name}: the mapped parts\n{yaml}");
        assert_eq!(
            leaves(&export_value(&back).unwrap()),
            leaves(&export_value(&m).unwrap()),
            "{name}: a second round trip changes nothing"
        );
    }
}

#[test]
fn the_least_contract_the_standard_accepts_imports() {
    let yaml = fixture("minimal-3.0.odcs.yaml");
    let err = import(&yaml, None).unwrap_err().to_string();
    assert!(err.contains("domain is missing"), "{err}");
    let imported = import(&yaml, Some("logistics")).unwrap();
    let m = manifest(imported.draft);
    assert_eq!(m.id.to_string(), "logistics/parcels", "named by its id");
    assert_eq!(m.title, "parcels");
    assert_eq!(m.status, Status::Draft, "development");
    assert_eq!(m.owner.contact, "erin@example.com");
    let out = export_value(&m).unwrap();
    assert_eq!(
        out["apiVersion"], "v3.0.2",
        "the declared version: the document is valid under it"
    );
    assert_eq!(
        m.contract.as_ref().unwrap().api_version,
        "v3.0.2",
        "the declared version is kept with the manifest"
    );
    assert_eq!(out["domain"], "logistics");
    assert!(out.get("name").is_none(), "not made up");
    let odd = yaml.replace("status: development", "status: in-review");
    let imported = import(&odd, Some("logistics")).unwrap();
    assert!(notes(&imported).contains("status \"in-review\" is kept as written"));
    let m = manifest(imported.draft);
    assert_eq!(export_value(&m).unwrap()["status"], "in-review");
}

#[test]
fn a_product_toml_product_exports_a_3_1_contract_that_reads_back_the_same() {
    let draft: ManifestDraft = toml::from_str(common::PRODUCT_TOML).unwrap();
    let m = manifest(draft);
    let out = export_value(&m).unwrap();
    assert_eq!(out["apiVersion"], "v3.1.0");
    assert_eq!(out["id"], "web/clicks");
    assert_eq!(out["schema"][0]["properties"][1]["logicalType"], "time");
    let back = manifest(import(&export(&m).unwrap(), None).unwrap().draft);
    assert_eq!(
        back.classification,
        Classification::Public,
        "a public product stays public"
    );
    assert_eq!(back.consumers, m.consumers);
    assert_eq!(back.lineage, m.lineage);
    let mut b2 = back;
    b2.contract = None;
    assert_eq!(b2, m);
}

#[test]
fn malformed_and_wrong_contracts_get_clear_errors() {
    let err = import(&fixture("malformed.odcs.yaml"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid YAML"), "{err}");
    let err = import("apiVersion: v2.2.0\nkind: DataContract\nname: x\n", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("only ODCS v3"), "{err}");
    assert!(err.contains("domain is missing"), "{err}");
    assert!(err.contains("version is missing"), "{err}");
    let err = import(
        "apiVersion: v3.0.0\nid: x\ndomain: d\nversion: 1.0.0\nschema:\n  - properties:\n      - name: a\n        logicalType: decimal\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("logicalType \"decimal\""), "{err}");
    let err = import(
        "apiVersion: v3.1.0\nversion: 1.0.0\n? [a, b]\n: c\n",
        Some("d"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("every key must be a string"), "{err}");
    assert!(import("- just\n- a list\n", Some("d")).is_err());
    assert!(import(&"x".repeat(2 << 20), Some("d"))
        .unwrap_err()
        .to_string()
        .contains("over the limit"));
}

/// `mesh contract convert` (#33.9): every v3.0 form becomes its v3.1.0 form, a
/// field v3.1.0 does not define moves into customProperties, nothing is lost,
/// and the result is valid under the official v3.1.0 schema, where the same
/// document merely relabelled is not.
#[test]
fn a_3_0_2_contract_converts_to_a_valid_3_1_0_one() {
    let yaml = r#"
apiVersion: v3.0.2
kind: DataContract
id: parcels
version: 1.0.0
status: active
team:
  - username: erin
    role: owner
schema:
  - name: parcels
    quality:
      - rule: rowCount
        mustBeGreaterThan: 10
    properties:
      - name: weight
        logicalType: number
        isUnique: true
        logicalTypeOptions:
          minimum: 0
          exclusiveMinimum: true
        quality:
          - type: library
            rule: validValues
            validValues: [1, 2]
            mustBe: 0
          - rule: duplicateCount
            mustBeLessThan: 5
"#;
    let doc = mesh_contract::odcs::document(yaml).unwrap();
    let mut relabelled = doc.clone();
    relabelled.insert("apiVersion".into(), "v3.1.0".into());
    let y = serde_yaml::to_string(&relabelled).unwrap();
    let relabelled_errors = mesh_contract::odcs::lint(&y, Some("logistics")).errors;
    assert!(
        !relabelled_errors.is_empty(),
        "relabelling alone is not converting"
    );

    let c = mesh_contract::odcs::to_v3_1(doc).unwrap();
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    let l = mesh_contract::odcs::lint(&c.yaml().unwrap(), Some("logistics"));
    assert!(l.errors.is_empty(), "{:#?}", l.errors);
    let d = Value::Object(c.document);
    assert_eq!(d["apiVersion"], "v3.1.0");
    assert_eq!(d["team"]["members"][0]["username"], "erin");
    assert_eq!(d["schema"][0]["quality"][0]["metric"], "rowCount");
    let weight = &d["schema"][0]["properties"][0];
    assert_eq!(
        weight["logicalTypeOptions"],
        serde_json::json!({"exclusiveMinimum": 0})
    );
    assert_eq!(weight["quality"][0]["metric"], "invalidValues");
    assert_eq!(
        weight["quality"][0]["arguments"]["validValues"],
        serde_json::json!([1, 2])
    );
    assert_eq!(weight["quality"][1]["metric"], "duplicateValues");
    assert_eq!(
        weight["customProperties"],
        serde_json::json!([{"property": "isUnique", "value": true}])
    );
    let notes = c.notes.join("\n");
    for n in [
        "apiVersion: v3.0.2 -> v3.1.0",
        "team: the v3.0 list",
        "schema[0].properties[0].quality[0]: rule validValues -> metric invalidValues",
        "schema[0].properties[0].isUnique: not a field of v3.1.0 here; moved to schema[0].properties[0].customProperties",
    ] {
        assert!(notes.contains(n), "missing {n:?} in\n{notes}");
    }
    // Converting again changes nothing.
    let again = mesh_contract::odcs::to_v3_1(d.as_object().unwrap().clone()).unwrap();
    assert!(again.notes.is_empty(), "{:?}", again.notes);
}
