//! An ODPS document as the standard defines it: read from YAML or JSON, checked
//! against the official v1.1.0 JSON Schema (`schemas/`, unchanged, compiled
//! once with boon), and the error every step reports.

use std::sync::OnceLock;

use boon::{Compiler, SchemaIndex, Schemas, ValidationError};
use mesh_protocol::manifest::{Contract, MAX_CONTRACT_BYTES};
use serde_json::Value;

/// The version of the standard mesh exports.
pub const EXPORT_API_VERSION: &str = "v1.1.0";

/// The official JSON Schema of [`EXPORT_API_VERSION`] (unchanged).
const SCHEMA: &str = include_str!("schemas/odps-json-schema-v1.1.0.json");

/// Why a document could not be read or written; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ODPS data product: {}", .0.join("; "))]
pub struct OdpsError(pub Vec<String>);

fn compiled() -> Result<&'static (Schemas, SchemaIndex), &'static str> {
    static ONCE: OnceLock<Result<(Schemas, SchemaIndex), String>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let json: Value = serde_json::from_str(SCHEMA)
            .map_err(|e| format!("the shipped ODPS schema is not JSON: {e}"))?;
        let url = "https://mesh.invalid/odps/v1.1.0.json";
        let mut compiler = Compiler::new();
        let mut schemas = Schemas::new();
        compiler
            .add_resource(url, json)
            .map_err(|e| format!("the shipped ODPS schema: {e}"))?;
        let index = compiler
            .compile(url, &mut schemas)
            .map_err(|e| format!("the shipped ODPS schema does not compile: {e}"))?;
        Ok((schemas, index))
    })
    .as_ref()
    .map_err(String::as_str)
}

/// The problems of `doc` against the official ODPS v1.1.0 schema, as
/// `/json/pointer: problem` lines (empty when it is valid).
pub fn problems(doc: &Value) -> Vec<String> {
    let (schemas, index) = match compiled() {
        Ok(c) => c,
        Err(e) => return vec![format!("(top): {e} (a bug in mesh; please report it)")],
    };
    let Err(e) = schemas.validate(doc, *index) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    leaves(&e, &mut out);
    out.dedup();
    out
}

fn leaves(e: &ValidationError, out: &mut Vec<String>) {
    if e.causes.is_empty() {
        let at = e.instance_location.to_string();
        let at = if at.is_empty() { "(top)".into() } else { at };
        out.push(format!("{at}: {}", e.kind));
    } else {
        e.causes.iter().for_each(|c| leaves(c, out));
    }
}

/// An ODPS document (YAML or JSON), checked against the official schema, as the
/// manifest keeps it: its `apiVersion` and the whole document as compact JSON.
pub fn document(yaml: &str) -> Result<Contract, OdpsError> {
    if yaml.len() > MAX_CONTRACT_BYTES {
        return Err(OdpsError(vec![format!(
            "the document is {} bytes, over the limit of {MAX_CONTRACT_BYTES}",
            yaml.len()
        )]));
    }
    let doc: serde_yaml::Value =
        serde_yaml::from_str(yaml).map_err(|e| OdpsError(vec![format!("not valid YAML: {e}")]))?;
    let doc: Value = serde_json::to_value(&doc).map_err(|e| {
        OdpsError(vec![format!(
            "not a JSON-compatible document ({e}); every key must be a string"
        )])
    })?;
    if !doc.is_object() {
        return Err(OdpsError(vec![
            "the document must be a YAML mapping (apiVersion, kind, id, ...)".into(),
        ]));
    }
    let found = problems(&doc);
    if !found.is_empty() {
        return Err(OdpsError(found));
    }
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or(EXPORT_API_VERSION)
        .to_string();
    Ok(Contract {
        api_version,
        document: doc.to_string(),
    })
}

/// `doc` as YAML.
pub fn to_yaml(doc: &Value) -> Result<String, OdpsError> {
    serde_yaml::to_string(doc).map_err(|e| OdpsError(vec![e.to_string()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_examples_read_and_a_broken_one_is_named() {
        for example in [
            include_str!("../../tests/odps/customer-data-product.odps.yaml"),
            include_str!("../../tests/odps/simple-data-product.odps.yaml"),
            include_str!("../../tests/odps/deprecated-data-product.odps.yaml"),
        ] {
            let c = document(example).expect("the standard's example reads");
            assert!(c.api_version.starts_with('v'));
        }
        let err =
            document("apiVersion: v1.1.0\nkind: DataProduct\nid: x\noutputPorts:\n- type: files\n")
                .unwrap_err();
        assert!(
            err.0
                .iter()
                .any(|p| p.starts_with("/outputPorts/0") && p.contains("name")),
            "{err}"
        );
        assert!(document("- a list").is_err());
        assert!(document("apiVersion: v9\nkind: DataProduct\nid: x\n").is_err());
    }
}
