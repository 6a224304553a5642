//! ODCS v3 contracts: every mapped field of a fixture, unsupported parts listed, a
//! round trip through `export`, and clear errors for malformed or wrong contracts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use mesh_contract::odcs::{export, import};
use mesh_contract::PublishFacts;
use mesh_protocol::manifest::{Classification, LogicalType, Manifest, Status};
use mesh_protocol::KeyPair;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/odcs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn manifest(draft: mesh_contract::ManifestDraft) -> Manifest {
    draft
        .into_manifest(PublishFacts {
            files: Vec::new(),
            created_at: 1_800_000_000,
            publisher: KeyPair::from_secret([7; 32]).public(),
            quality: None,
        })
        .unwrap()
}

#[test]
fn every_mapped_field_is_imported_and_the_rest_is_listed() {
    let imported = import(&fixture("orders.odcs.yaml")).unwrap();
    let m = manifest(imported.draft.clone());
    assert_eq!(m.id.to_string(), "sales/orders");
    assert_eq!(m.version.to_string(), "2.1.0");
    assert_eq!(m.status, Status::Active);
    assert_eq!(m.title, "Customer orders");
    assert_eq!(
        m.description,
        "Every customer order, one row per order.\n\nUsage: Join with crm/customers on customer_id.\n\nLimitations: Amounts before 2020 are estimates."
    );
    assert_eq!(
        (m.owner.team.as_str(), m.owner.contact.as_str()),
        ("sales-data", "alice@example.com")
    );
    assert_eq!(m.tags, vec!["orders", "daily"]);
    assert_eq!(
        m.classification,
        Classification::Pii,
        "the most sensitive field"
    );
    let f = &m.schema;
    assert_eq!(f.len(), 4);
    assert_eq!(
        (
            f[0].name.as_str(),
            f[0].logical_type,
            f[0].required,
            f[0].unique
        ),
        ("order_id", LogicalType::Integer, true, true)
    );
    assert_eq!(f[0].description, "Unique order number");
    assert_eq!(f[1].classification, Classification::Pii);
    assert_eq!(
        f[2].classification,
        Classification::Confidential,
        "restricted"
    );
    assert_eq!(f[3].logical_type, LogicalType::Timestamp);
    assert_eq!(m.sla.freshness_secs, Some(4 * 3600));
    assert_eq!(m.sla.update_frequency_secs, Some(86_400));
    assert_eq!(m.sla.retention_secs, Some(3 * 365 * 86_400));
    assert_eq!(m.sla.availability_bp, Some(9990));
    let u = imported.unsupported.join("\n");
    for part in [
        "id (the contract's own id",
        "tenant",
        "team members other than the owner (1 more)",
        "schema[0].properties[1].examples",
        "schema[1] (order_lines)",
        "slaProperties[4] (timeOfAvailability)",
        "servers",
        "price",
    ] {
        assert!(u.contains(part), "{part:?} not listed in:\n{u}");
    }
}

#[test]
fn export_then_import_gives_the_same_manifest() {
    let m = manifest(import(&fixture("orders.odcs.yaml")).unwrap().draft);
    let yaml = export(&m).unwrap();
    let back = import(&yaml).unwrap();
    assert!(back.unsupported.is_empty(), "{:?}", back.unsupported);
    assert_eq!(manifest(back.draft), m, "{yaml}");
}

#[test]
fn malformed_and_wrong_contracts_get_clear_errors() {
    let err = import(&fixture("malformed.odcs.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid YAML"), "{err}");
    let err = import("apiVersion: v2.2.0\nkind: DataContract\nname: x\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("only ODCS v3"), "{err}");
    assert!(err.contains("domain is missing"), "{err}");
    assert!(err.contains("version is missing"), "{err}");
    let err = import("apiVersion: v3.0.0\nname: x\ndomain: d\nversion: 1.0.0\nschema:\n  - properties:\n      - name: a\n        logicalType: decimal\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("logicalType \"decimal\""), "{err}");
    assert!(import("- just\n- a list\n").is_err());
    assert!(import(&"x".repeat(2 << 20))
        .unwrap_err()
        .to_string()
        .contains("over the limit"));
}
