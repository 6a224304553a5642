//! The standard's own published examples, read from a checkout of
//! github.com/bitol-io/open-data-contract-standard (they are not ours to commit):
//! each must import as published, build a manifest, and export with every value
//! kept (`apiVersion` is written as v3.1.0). Set `MESH_ODCS_REPO` to the checkout; `MESH_ODCS_OUT` to a directory to
//! write each export as JSON (`scripts/odcs-examples` validates those against the
//! standard's JSON Schema). Without `MESH_ODCS_REPO` the test says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_contract::odcs::{export_value, import};
use mesh_contract::PublishFacts;
use mesh_protocol::KeyPair;
use serde_json::Value;

fn leaves(v: &Value, at: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                leaves(v, p, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{at}[{i}]"), out);
            }
        }
        leaf => {
            out.insert(at, leaf.clone());
        }
    }
}

fn examples(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            examples(&p, out);
        } else if p.to_string_lossy().ends_with(".odcs.yaml") {
            out.push(p);
        }
    }
}

#[test]
fn every_official_example_imports_and_exports_every_value() {
    let Some(repo) = std::env::var_os("MESH_ODCS_REPO") else {
        eprintln!(
            "SKIPPED: set MESH_ODCS_REPO to a checkout of bitol-io/open-data-contract-standard"
        );
        return;
    };
    let out_dir = std::env::var_os("MESH_ODCS_OUT").map(PathBuf::from);
    let mut files = Vec::new();
    examples(&Path::new(&repo).join("docs/examples"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no *.odcs.yaml under docs/examples");
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let yaml = std::fs::read_to_string(f).unwrap();
        let result = import(&yaml, Some("examples"))
            .map_err(|e| e.to_string())
            .and_then(|i| {
                i.draft
                    .into_manifest(PublishFacts {
                        files: Vec::new(),
                        created_at: 1_800_000_000,
                        publisher: KeyPair::from_secret([7; 32]).public(),
                        quality: None,
                    })
                    .map_err(|e| format!("{e:?}"))
            })
            .and_then(|m| export_value(&m).map_err(|e| e.to_string()));
        let exported = match result {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let input = serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&yaml).unwrap())
            .unwrap();
        let (mut want, mut got) = (BTreeMap::new(), BTreeMap::new());
        leaves(&input, String::new(), &mut want);
        leaves(&exported, String::new(), &mut got);
        let lost: Vec<_> = want
            .iter()
            .filter(|(p, v)| *p != "apiVersion" && got.get(*p) != Some(v))
            .map(|(p, _)| p.clone())
            .collect();
        eprintln!(
            "{name}: imported; {} of {} values kept{}",
            want.len() - lost.len(),
            want.len(),
            if lost.is_empty() {
                String::new()
            } else {
                format!(", lost {lost:?}")
            }
        );
        if !lost.is_empty() {
            failures.push(format!("{name}: lost {lost:?}"));
        }
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(
                dir.join(name.replace(".odcs.yaml", ".json")),
                serde_json::to_vec_pretty(&exported).unwrap(),
            )
            .unwrap();
        }
    }
    // And a product published from `product.toml`, for the schema check.
    if let Some(dir) = &out_dir {
        let draft: mesh_contract::ManifestDraft = toml::from_str(PRODUCT_TOML).unwrap();
        let m = draft
            .into_manifest(PublishFacts {
                files: Vec::new(),
                created_at: 1_800_000_000,
                publisher: KeyPair::from_secret([7; 32]).public(),
                quality: None,
            })
            .unwrap();
        std::fs::write(
            dir.join("product-toml.json"),
            serde_json::to_vec_pretty(&export_value(&m).unwrap()).unwrap(),
        )
        .unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A `product.toml` using every field.
const PRODUCT_TOML: &str = r#"
id = "web/clicks"
version = "1.4.0"
status = "deprecated"
title = "Clicks"
description = "One row per click."
classification = "public"
tags = ["web"]
consumers = ["sales"]
[owner]
team = "web-analytics"
contact = "web@example.com"
[[schema]]
name = "at"
type = "timestamp"
required = true
unique = true
description = "When"
classification = "pii"
[[schema]]
name = "local_time"
type = "time"
[sla]
freshness = "2h"
update_frequency = "1d"
retention = "30d"
availability = 99.9
[[lineage]]
id = "web/raw-events"
"#;
