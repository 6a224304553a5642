//! Round trips of every wire and disk encoding (property tests) and golden vectors
//! that pin the canonical bytes. Regenerate the vectors deliberately with
//! `MESH_BLESS=1 cargo test -p mesh-protocol --test it encoding` after a format change,
//! and bump the format version when you do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};

use mesh_protocol::announcement::{Announcement, Summary, ANNOUNCEMENT_FORMAT};
use mesh_protocol::manifest::*;
use mesh_protocol::policy::{Council, DomainEntry, Settings, POLICY_FORMAT};
use mesh_protocol::wire::{self, Request, Response};
use mesh_protocol::*;
use proptest::prelude::*;

fn key(n: u8) -> KeyPair {
    KeyPair::from_secret([n; 32])
}

fn sample_manifest() -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        id: "sales/orders".parse().unwrap(),
        version: semver::Version::new(1, 2, 0),
        status: Status::Active,
        title: "Orders".into(),
        description: "Every order, one row each".into(),
        owner: Owner {
            team: "sales-data".into(),
            contact: "sales-data@example.com".into(),
        },
        tags: vec!["orders".into(), "daily".into()],
        classification: Classification::Internal,
        consumers: vec![DomainName::new("finance").unwrap()],
        schema: vec![Field {
            name: "order_id".into(),
            logical_type: LogicalType::String,
            required: true,
            description: "Order key".into(),
            classification: Classification::Internal,
            unique: true,
        }],
        null_values: mesh_protocol::manifest::NullValues {
            default: vec!["NA".into(), String::new()],
            files: vec![("orders.csv".into(), vec!["-".into()])],
        },
        sla: Sla {
            freshness_secs: Some(86_400),
            update_frequency_secs: Some(86_400),
            availability_bp: Some(9990),
            retention_secs: None,
        },
        lineage: vec![Upstream {
            id: "crm/customers".parse().unwrap(),
            manifest: Some(Hash::of(b"up")),
        }],
        files: vec![FileEntry {
            path: "orders.csv".into(),
            size: 3,
            chunks: vec![ChunkRef {
                hash: Hash::of(b"abc"),
                len: 3,
            }],
        }],
        quality: Some(Quality {
            rows: 1,
            files_checked: 1,
            fields: vec![FieldQuality {
                name: "order_id".into(),
                nulls: 0,
                distinct: Some(1),
            }],
            violations: vec![mesh_protocol::manifest::QualityIssue {
                file: "orders.csv".into(),
                field: "amount".into(),
                count: 2,
                first_rows: vec![3, 9],
                problem: "\"lots\" is not a number".into(),
            }],
            objects: vec![mesh_protocol::manifest::ObjectQuality {
                name: "orders".into(),
                files: 1,
                rows: 1,
            }],
            rules: vec![mesh_protocol::manifest::RuleOutcome {
                path: "schema[0].quality[0]".into(),
                rule: "orders_row_count".into(),
                object: "orders".into(),
                property: String::new(),
                measured: "1 row".into(),
                expected: "rowCount >= 1".into(),
                state: mesh_protocol::manifest::RuleState::Passed,
                note: String::new(),
            }],
        }),
        created_at: 1_790_000_000,
        publisher: key(2).public(),
        contract: Some(mesh_protocol::manifest::Contract {
            api_version: "v3.1.0".into(),
            document: r#"{"apiVersion":"v3.1.0","kind":"DataContract","id":"orders"}"#.into(),
        }),
        derivation: Some(mesh_protocol::manifest::Derivation::of(
            "SELECT order_id, amount FROM sales.raw_orders",
        )),
        odps: Some(mesh_protocol::manifest::Contract {
            api_version: "v1.1.0".into(),
            document: r#"{"apiVersion":"v1.1.0","kind":"DataProduct","id":"orders"}"#.into(),
        }),
    }
}

fn sample_announcement() -> Announcement {
    Announcement {
        format: ANNOUNCEMENT_FORMAT,
        product: "sales/orders".parse().unwrap(),
        version: semver::Version::new(1, 2, 0),
        manifest: Hash::of(b"manifest"),
        summary: Summary {
            title: "Orders".into(),
            status: Status::Active,
            classification: Classification::Internal,
            tags: vec!["orders".into()],
            owner_team: "sales-data".into(),
            size: 3,
            files: 1,
        },
        providers: vec!["12D3KooWExample".into()],
        issued_at_ms: 1_790_000_000_000,
        publisher: key(2).public(),
    }
}

fn sample_policy() -> Policy {
    let mut domains = BTreeMap::new();
    domains.insert(
        DomainName::new("sales").unwrap(),
        DomainEntry {
            publisher_keys: BTreeSet::from([key(2).public()]),
            nodes: BTreeSet::from(["12D3KooWExample".to_string()]),
            contact: "sales@example.com".into(),
        },
    );
    Policy {
        format: POLICY_FORMAT,
        version: 1,
        issued_at: 1_790_000_000,
        expires_at: 1_800_000_000,
        council: Council {
            members: BTreeSet::from([key(10).public(), key(11).public(), key(12).public()]),
            threshold: 2,
        },
        domains,
        rules: String::new(),
        settings: Settings {
            domain_limits: mesh_protocol::policy::DomainLimits {
                max_versions: 20_000,
                max_versions_per_hour: 1_000,
            },
            ..Settings::default()
        },
    }
}

fn golden(name: &str, bytes: &[u8]) {
    let path = format!("{}/tests/golden/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let hex = hex::encode(bytes);
    if std::env::var_os("MESH_BLESS").is_some() {
        std::fs::write(&path, format!("{hex}\n")).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden vector {path}; run with MESH_BLESS=1"));
    assert_eq!(
        want.trim(),
        hex,
        "canonical encoding of {name} changed: bump its format version and re-bless"
    );
}

/// A policy of format 2 (before domain limits) still decodes, with no limits, to
/// the very bytes its council signed.
#[test]
fn a_format_2_policy_still_decodes_to_the_bytes_it_was_signed_as() {
    let path = format!("{}/tests/golden/policy-v2.hex", env!("CARGO_MANIFEST_DIR"));
    let bytes = hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
    let signed = Signed::<Policy>::from_bytes(&bytes).unwrap();
    let p = signed.value().unwrap();
    assert_eq!(p.format, 2);
    assert_eq!(p.settings.domain_limits, Default::default());
    assert_eq!(signed.valid_signers().len(), 2);
    assert_eq!(mesh_protocol::encode(&p), signed.payload());
    p.check_shape().unwrap();
}

#[test]
fn golden_vectors() {
    let m = Signed::sign(&sample_manifest(), &key(2));
    golden("manifest", &m.to_bytes());
    let a = Signed::sign(&sample_announcement(), &key(2));
    golden("announcement", &a.to_bytes());
    let mut p = Signed::sign(&sample_policy(), &key(10));
    p.add_signature(&key(11));
    golden("policy", &p.to_bytes());
    golden("request-digest", &wire::encode_request(&Request::Digest));
    golden(
        "response-digest",
        &wire::encode_response(&Response::Digest {
            versions: 4012,
            digest: mesh_protocol::Hash::of(b"catalog"),
        }),
    );
    golden(
        "request-catalog",
        &wire::encode_request(&Request::Catalog {
            after: Some((
                "sales/orders".parse().unwrap(),
                semver::Version::new(1, 0, 0),
            )),
            limit: 64,
        }),
    );
    golden(
        "response-chunk",
        &wire::encode_response(&Response::Chunk(b"abc".to_vec())),
    );
    golden(
        "request-chunks",
        &wire::encode_request(&Request::Chunks {
            manifest: mesh_protocol::Hash::of(b"manifest"),
            chunks: vec![mesh_protocol::Hash::of(b"a"), mesh_protocol::Hash::of(b"b")],
            start: true,
        }),
    );
    golden(
        "response-chunks",
        &wire::encode_response(&Response::Chunks(vec![
            wire::ChunkData(b"ab".to_vec()),
            wire::ChunkData(Vec::new()),
        ])),
    );
    // Decoding the committed bytes gives back the same values and valid signatures.
    let back: Signed<Manifest> = Signed::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(back.value().unwrap(), sample_manifest());
    assert!(back.is_signed_by(&key(2).public()));
}

#[test]
fn manifest_signature_replayed_as_announcement_fails() {
    let m = Signed::sign(&sample_manifest(), &key(2));
    let as_ann: Result<Signed<Announcement>, _> = Signed::from_bytes(&m.to_bytes());
    // Either the payload does not decode as an announcement or its signature fails.
    if let Ok(a) = as_ann {
        assert!(a.valid_signers().is_empty());
    }
}

#[test]
fn genesis_verification() {
    let now = 1_795_000_000;
    let mut p = Signed::sign(&sample_policy(), &key(10));
    let err = policy::verify_genesis(&p, now).unwrap_err().to_string();
    assert!(err.contains("1 of 2 required"), "{err}");
    assert!(err.contains(&key(11).public().to_string()), "{err}");
    p.add_signature(&key(10));
    assert!(
        policy::verify_genesis(&p, now).is_err(),
        "a key counts once"
    );
    p.add_signature(&key(11));
    let accepted = policy::verify_genesis(&p, now).unwrap();
    assert!(accepted.is_publisher(&"sales".parse().unwrap(), &key(2).public()));
    assert!(!accepted.is_publisher(&"sales".parse().unwrap(), &key(3).public()));
    assert!(matches!(
        policy::verify_genesis(&p, 1_800_000_000),
        Err(PolicyError::Expired { .. })
    ));
    // A non-member signature does not count.
    let mut q = Signed::sign(&sample_policy(), &key(10));
    q.add_signature(&key(99));
    assert!(policy::verify_genesis(&q, now).is_err());
}

fn arb_label() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,20}"
}

prop_compose! {
    fn arb_manifest()(
        domain in arb_label(), name in arb_label(),
        major in 0u64..100, minor in 0u64..100,
        title in ".{0,40}", description in ".{0,200}",
        tags in proptest::collection::vec(".{0,10}", 0..4),
        fields in proptest::collection::vec((".{1,12}", any::<bool>()), 0..6),
        chunks in proptest::collection::vec((any::<[u8; 32]>(), 1u32..1_000_000), 0..20),
        freshness in proptest::option::of(any::<u64>()),
        created_at in any::<u64>(),
    ) -> Manifest {
        let mut m = sample_manifest();
        m.id = format!("{domain}/{name}").parse().unwrap();
        m.version = semver::Version::new(major, minor, 0);
        m.title = title;
        m.description = description;
        m.tags = tags;
        m.schema = fields.into_iter().map(|(n, r)| Field {
            name: n, logical_type: LogicalType::Number, required: r,
            description: String::new(), classification: Classification::Pii, unique: !r,
        }).collect();
        m.sla.freshness_secs = freshness;
        m.files[0].chunks = chunks.iter().map(|(h, l)| ChunkRef { hash: Hash::from_bytes(*h), len: *l }).collect();
        m.files[0].size = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
        m.created_at = created_at;
        m
    }
}

proptest! {
    #[test]
    fn manifest_round_trips(m in arb_manifest()) {
        let s = Signed::sign(&m, &key(2));
        let back: Signed<Manifest> = Signed::from_bytes(&s.to_bytes()).unwrap();
        prop_assert_eq!(back.value().unwrap(), m);
        prop_assert_eq!(back.hash(), s.hash());
        prop_assert!(back.is_signed_by(&key(2).public()));
    }

    #[test]
    fn announcement_round_trips(title in ".{0,60}", size in any::<u64>(), ms in any::<u64>()) {
        let mut a = sample_announcement();
        a.summary.title = title;
        a.summary.size = size;
        a.issued_at_ms = ms;
        let s = Signed::sign(&a, &key(2));
        let back: Signed<Announcement> = Signed::from_bytes(&s.to_bytes()).unwrap();
        prop_assert_eq!(back.value().unwrap(), a);
    }

    #[test]
    fn policy_round_trips(version in 1u64.., expires in any::<u64>(), rules in ".{0,200}") {
        let mut p = sample_policy();
        p.version = version;
        p.expires_at = expires;
        p.rules = rules;
        let s = Signed::sign(&p, &key(10));
        let back: Signed<Policy> = Signed::from_bytes(&s.to_bytes()).unwrap();
        prop_assert_eq!(back.value().unwrap(), p);
    }

    #[test]
    fn wire_round_trips(h in any::<[u8; 32]>(), data in proptest::collection::vec(any::<u8>(), 0..4096), more in any::<bool>()) {
        for r in [Request::Manifest(Hash::from_bytes(h)), Request::Chunk { manifest: Hash::from_bytes(h), chunk: Hash::of(&h) }, Request::Catalog { after: None, limit: 7 }, Request::Policies { after: 3, limit: 16 }] {
            prop_assert_eq!(wire::decode_request(&wire::encode_request(&r)).unwrap(), r);
        }
        for r in [Response::Chunk(data.clone()), Response::Catalog { entries: vec![data.clone()], more }, Response::NotFound, Response::Denied { rule: "r".into(), reason: "x".into() }] {
            prop_assert_eq!(wire::decode_response(&wire::encode_response(&r)).unwrap(), r);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Signed::<Manifest>::from_bytes(&bytes).map(|s| s.value());
        let _ = Signed::<Announcement>::from_bytes(&bytes).map(|s| s.value());
        let _ = Signed::<Policy>::from_bytes(&bytes).map(|s| s.value());
        let _ = wire::decode_request(&bytes);
        let _ = wire::decode_response(&bytes);
    }
}
