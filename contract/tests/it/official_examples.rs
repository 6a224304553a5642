//! The standard's own published examples, read from a checkout of
//! github.com/bitol-io/open-data-contract-standard (they are not ours to commit):
//! each must import as published, build a manifest, and export with every value
//! kept (`apiVersion` is written as v3.1.0). Set `MESH_ODCS_REPO` to the checkout; `MESH_ODCS_OUT` to a directory to
//! write each export as JSON (`scripts/odcs-examples` validates those against the
//! standard's JSON Schema). Without `MESH_ODCS_REPO` the test says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::path::{Path, PathBuf};

use common::{leaves, manifest, yaml_as_json};
use mesh_contract::odcs::{export_value, import};

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
        // `manifest` panics on a draft it cannot build: that too is a failure here.
        let result = import(&yaml, Some("examples"))
            .map_err(|e| e.to_string())
            .and_then(|i| export_value(&manifest(i.draft)).map_err(|e| e.to_string()));
        let exported = match result {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let (want, got) = (leaves(&yaml_as_json(&yaml)), leaves(&exported));
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
        // Every object and rule must be readable as checks: what mesh cannot run
        // is listed, not a problem of the contract.
        let plan = mesh_contract::quality::Plan::from_contract(
            yaml_as_json(&yaml).as_object().unwrap(),
            &Default::default(),
        );
        for problem in &plan.lint {
            failures.push(format!("{name}: plan: {problem}"));
        }
        // The standard's own examples lint clean (notes aside).
        for problem in mesh_contract::odcs::lint(&yaml, Some("examples")).errors {
            failures.push(format!("{name}: lint: {problem}"));
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
        let m = manifest(toml::from_str(common::PRODUCT_TOML).unwrap());
        std::fs::write(
            dir.join("product-toml.json"),
            serde_json::to_vec_pretty(&export_value(&m).unwrap()).unwrap(),
        )
        .unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
