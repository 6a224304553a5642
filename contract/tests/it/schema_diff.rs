//! Schema evolution: which changes from one version's schema to the next break
//! consumers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use mesh_contract::schema_diff::breaking_changes;
use mesh_contract::{ManifestDraft, PublishFacts};
use mesh_protocol::manifest::*;
use mesh_protocol::KeyPair;

const NOW: u64 = 1_800_000_000;

fn key(n: u8) -> KeyPair {
    KeyPair::from_secret([n; 32])
}

/// The product every case starts from, written as a team would write its draft.
fn manifest() -> Manifest {
    let draft: ManifestDraft = draft_from_json(
        r#"{
            "id": "sales/orders", "version": "1.0.0", "title": "Orders",
            "owner": {"team": "sales-data", "contact": "x@example.com"},
            "classification": "internal",
            "schema": [
                {"name": "id", "type": "integer", "required": true, "classification": "internal"},
                {"name": "note", "type": "string", "classification": "internal"}
            ],
            "sla": {"freshness": "1d"}
        }"#,
    );
    draft
        .into_manifest(PublishFacts {
            files: Vec::new(),
            created_at: NOW,
            publisher: key(50).public(),
            quality: None,
        })
        .unwrap()
}

/// A draft from its JSON form (the same fields as `product.toml`).
fn draft_from_json(json: &str) -> ManifestDraft {
    serde_json::from_str(json).unwrap()
}

#[test]
fn schema_breaking_changes_are_detected() {
    let old = manifest();
    let mut new = manifest();
    assert!(breaking_changes(&old, &new).is_empty());
    new.schema.push(Field {
        name: "extra".into(),
        logical_type: LogicalType::Number,
        required: false,
        description: String::new(),
        classification: Classification::Public,
        unique: false,
    });
    new.schema[1].required = false;
    assert!(
        breaking_changes(&old, &new).is_empty(),
        "adding an optional field is compatible"
    );

    type Change = Box<dyn Fn(&mut Manifest)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|m| {
                m.schema.remove(1);
            }),
            "was removed",
        ),
        (Box::new(|m| m.schema[1].required = true), "became required"),
        (
            Box::new(|m| m.schema[0].logical_type = LogicalType::String),
            "changed type",
        ),
        (
            Box::new(|m| m.schema[0].classification = Classification::Public),
            "loosened its classification",
        ),
        (
            Box::new(|m| {
                m.schema.push(Field {
                    name: "new".into(),
                    logical_type: LogicalType::Date,
                    required: true,
                    description: String::new(),
                    classification: Classification::Internal,
                    unique: false,
                })
            }),
            "added as required",
        ),
    ];
    for (change, expect) in cases {
        let mut m = manifest();
        change(&mut m);
        let found = breaking_changes(&old, &m);
        assert_eq!(found.len(), 1, "{expect}: {found:?}");
        assert!(found[0].to_string().contains(expect), "{}", found[0]);
    }
}

#[test]
fn contract_products_are_compared_over_every_schema_object() {
    let contract = |second_object_type: &str| Contract {
        api_version: "v3.1.0".into(),
        document: format!(
            r#"{{"apiVersion":"v3.1.0","kind":"DataContract","id":"c","version":"1.0.0","status":"active","schema":[{{"name":"orders","properties":[{{"name":"id","logicalType":"integer"}}]}},{{"name":"refunds","properties":[{{"name":"amount","logicalType":"{second_object_type}"}}]}}]}}"#
        ),
    };
    let mut old = manifest();
    old.contract = Some(contract("number"));
    let mut new = manifest();
    new.contract = Some(contract("string"));
    let breaking: Vec<String> = breaking_changes(&old, &new)
        .iter()
        .map(|b| b.to_string())
        .collect();
    assert_eq!(
        breaking,
        ["field `schema[refunds].properties[amount].logicalType` number -> string"],
        "the second object's change is seen (Manifest::schema holds only the first)"
    );
    new.contract = Some(contract("number"));
    assert!(breaking_changes(&old, &new).is_empty());
}
