//! Schema evolution: which changes from one version's schema to the next break
//! consumers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use mesh_contract::schema_diff::breaking_changes;
use mesh_protocol::manifest::*;
use mesh_protocol::KeyPair;

const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

fn key(n: u8) -> KeyPair {
    KeyPair::from_secret([n; 32])
}

fn manifest() -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        id: "sales/orders".parse().unwrap(),
        version: semver::Version::new(1, 0, 0),
        status: Status::Active,
        title: "Orders".into(),
        description: "All orders".into(),
        owner: Owner {
            team: "sales-data".into(),
            contact: "x@example.com".into(),
        },
        tags: vec![],
        classification: Classification::Internal,
        consumers: vec![],
        schema: vec![
            Field {
                name: "id".into(),
                logical_type: LogicalType::Integer,
                required: true,
                description: String::new(),
                classification: Classification::Internal,
                unique: false,
            },
            Field {
                name: "note".into(),
                logical_type: LogicalType::String,
                required: false,
                description: String::new(),
                classification: Classification::Internal,
                unique: false,
            },
        ],
        sla: Sla {
            freshness_secs: Some(DAY),
            ..Default::default()
        },
        lineage: vec![],
        files: vec![],
        quality: None,
        created_at: NOW,
        publisher: key(50).public(),
    }
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
