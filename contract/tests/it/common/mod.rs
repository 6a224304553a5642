//! Helpers shared by the contract tests.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses some of them

use std::collections::BTreeMap;

use mesh_contract::{ManifestDraft, PublishFacts};
use mesh_protocol::manifest::Manifest;
use mesh_protocol::KeyPair;
use serde_json::Value;

/// Writes `files` (`(relative path, text)`) under `dir`; returns them as the
/// checks take them, `(relative path, full path)`.
pub(crate) fn write_files(
    dir: &std::path::Path,
    files: &[(&str, &str)],
) -> Vec<(String, std::path::PathBuf)> {
    let mut list = Vec::new();
    for (rel, text) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        list.push((rel.to_string(), p));
    }
    list
}

/// The manifest a draft makes, with fixed facts.
pub(crate) fn manifest(draft: ManifestDraft) -> Manifest {
    draft
        .into_manifest(PublishFacts {
            files: Vec::new(),
            created_at: 1_800_000_000,
            publisher: KeyPair::from_secret([7; 32]).public(),
            quality: None,
        })
        .unwrap()
}

/// Every leaf of a JSON value by its path (`schema[0].properties[1].name`).
pub(crate) fn leaves(v: &Value) -> BTreeMap<String, Value> {
    fn walk(v: &Value, at: String, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let p = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    walk(v, p, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, format!("{at}[{i}]"), out);
                }
            }
            leaf => {
                out.insert(at, leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(v, String::new(), &mut out);
    out
}

/// A YAML document as JSON.
pub(crate) fn yaml_as_json(yaml: &str) -> Value {
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(yaml).unwrap()).unwrap()
}

/// A `product.toml` using every field.
pub(crate) const PRODUCT_TOML: &str = r#"
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
