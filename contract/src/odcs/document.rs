//! The contract as the JSON document ODCS defines ([`document`]), the versions and
//! custom properties mesh knows, and the small readers the other files share.

use serde_json::{Map, Value};

use mesh_protocol::manifest::{Classification, Status, MAX_CONTRACT_BYTES};

use crate::draft::ManifestDraft;

/// The ODCS versions read, as `apiVersion` spells them.
pub const API_VERSIONS: [&str; 4] = ["v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0"];

/// The version written for products published from `product.toml`.
pub const EXPORT_API_VERSION: &str = "v3.1.0";

/// The custom property that carries a product's own classification (ODCS has
/// classifications per column only).
pub const CUSTOM_CLASSIFICATION: &str = "meshClassification";
/// The custom property that carries a product's consumer domains.
pub const CUSTOM_CONSUMERS: &str = "meshConsumers";
/// The custom property that carries a product's upstream products.
pub const CUSTOM_LINEAGE: &str = "meshLineage";

/// A contract mapped to a manifest draft.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The draft to publish; its `contract` holds the whole document.
    pub draft: ManifestDraft,
    /// What mesh keeps in the contract without checking it, and how it read values
    /// it maps loosely (a status or classification it does not know), by path.
    pub notes: Vec<String>,
}

/// Why a contract could not be read; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ODCS contract: {}", .0.join("; "))]
pub struct OdcsError(pub Vec<String>);

/// A contract (YAML or JSON) as the JSON document ODCS defines (its data model is
/// JSON Schema's), at most [`MAX_CONTRACT_BYTES`].
pub fn document(yaml: &str) -> Result<Map<String, Value>, OdcsError> {
    if yaml.len() > MAX_CONTRACT_BYTES {
        return Err(OdcsError(vec![format!(
            "the contract is {} bytes, over the limit of {MAX_CONTRACT_BYTES}",
            yaml.len()
        )]));
    }
    let doc: serde_yaml::Value =
        serde_yaml::from_str(yaml).map_err(|e| OdcsError(vec![format!("not valid YAML: {e}")]))?;
    let doc: Value = serde_json::to_value(&doc).map_err(|e| {
        OdcsError(vec![format!(
            "not a JSON-compatible document ({e}); every key must be a string"
        )])
    })?;
    match doc {
        Value::Object(top) => Ok(top),
        _ => Err(OdcsError(vec![
            "the contract must be a YAML mapping (apiVersion, kind, id, version, ...)".into(),
        ])),
    }
}

/// A scalar as text (numbers and booleans too).
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-empty scalar at `key`.
pub(super) fn field(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(text).filter(|s| !s.trim().is_empty())
}

/// Lower-case letters, digits and dashes, as product ids need.
pub(super) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(63).collect()
}

/// A contract status on mesh's lifecycle. ODCS leaves status free; the second
/// value is `false` when mesh had to guess.
pub(super) fn status(s: &str) -> (Status, bool) {
    match s.trim().to_ascii_lowercase().as_str() {
        "proposed" | "draft" | "development" | "dev" | "test" | "testing" | "staging" => {
            (Status::Draft, true)
        }
        "active" | "production" | "prod" | "released" | "live" => (Status::Active, true),
        "deprecated" | "sunset" => (Status::Deprecated, true),
        "retired" | "decommissioned" | "archived" | "inactive" => (Status::Retired, true),
        _ => (Status::Active, false),
    }
}

/// A classification string on mesh's levels; `None` when it names none of them
/// (the string is kept in the contract either way).
pub(crate) fn classification(s: &str) -> Option<Classification> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "public" => Classification::Public,
        "internal" => Classification::Internal,
        "confidential" | "restricted" => Classification::Confidential,
        "pii" | "personal" | "sensitive" | "spi" => Classification::Pii,
        _ => return None,
    })
}
