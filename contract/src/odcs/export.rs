//! Manifest to contract: the kept document with mesh's own fields set, or a v3.1.0
//! contract made from a `product.toml` manifest.

use serde_json::{json, Map, Value};

use super::document::{
    OdcsError, CUSTOM_CLASSIFICATION, CUSTOM_CONSUMERS, CUSTOM_LINEAGE, EXPORT_API_VERSION,
};
use mesh_protocol::duration::format_duration;
use mesh_protocol::manifest::Manifest;

/// Writes the contract of a manifest as YAML (see [`export_value`]).
pub fn export(m: &Manifest) -> Result<String, OdcsError> {
    serde_yaml::to_string(&export_value(m)?).map_err(|e| OdcsError(vec![e.to_string()]))
}

/// The contract of a manifest. A product published with a contract gets that
/// document back, every value as its author wrote it, `apiVersion` as declared
/// (a document valid under v3.0.2 stays valid: relabelled v3.1.0 it was not), with
/// `version` set to the product version and `domain` where the author left it
/// out (it names the product; import took it from the publishing node). Nothing
/// else is added: a value the standard requires and the author left out stays
/// out (publish refuses such a contract; older ones come back as they were). A
/// product published from `product.toml` gets a v3.1.0 contract made from the
/// manifest.
pub fn export_value(m: &Manifest) -> Result<Value, OdcsError> {
    let Some(c) = &m.contract else {
        return Ok(from_manifest(m));
    };
    let mut doc: Map<String, Value> = serde_json::from_str(&c.document).map_err(|e| {
        OdcsError(vec![format!(
            "the contract stored with {}@{} does not parse: {e}",
            m.id, m.version
        )])
    })?;
    doc.insert("version".into(), Value::String(m.version.to_string()));
    if !doc.contains_key("apiVersion") && !c.api_version.is_empty() {
        doc.insert("apiVersion".into(), Value::String(c.api_version.clone()));
    }
    doc.entry("domain".to_owned())
        .or_insert_with(|| Value::String(m.id.domain().to_string()));
    Ok(Value::Object(doc))
}

/// A v3.1.0 contract of everything a `product.toml` manifest says.
fn from_manifest(m: &Manifest) -> Value {
    let mut doc = Map::new();
    let mut put = |k: &str, v: Value| {
        doc.insert(k.to_owned(), v);
    };
    put("apiVersion", json!(EXPORT_API_VERSION));
    put("kind", json!("DataContract"));
    put("id", json!(m.id.to_string()));
    put("name", json!(m.title));
    put("version", json!(m.version.to_string()));
    put("status", json!(m.status.to_string()));
    put("domain", json!(m.id.domain().to_string()));
    put("dataProduct", json!(m.id.name().to_string()));
    if !m.description.is_empty() {
        put("description", json!({ "purpose": m.description }));
    }
    let mut team = Map::new();
    team.insert("name".into(), json!(m.owner.team));
    if !m.owner.contact.is_empty() {
        team.insert(
            "members".into(),
            json!([{ "username": m.owner.contact, "role": "owner" }]),
        );
    }
    put("team", Value::Object(team));
    if !m.tags.is_empty() {
        put("tags", json!(m.tags));
    }
    let properties: Vec<Value> = m
        .schema
        .iter()
        .map(|f| {
            let mut p = Map::new();
            p.insert("name".into(), json!(f.name));
            p.insert("logicalType".into(), json!(f.logical_type.name()));
            p.insert("required".into(), json!(f.required));
            p.insert("unique".into(), json!(f.unique));
            p.insert("classification".into(), json!(f.classification.to_string()));
            if !f.description.is_empty() {
                p.insert("description".into(), json!(f.description));
            }
            Value::Object(p)
        })
        .collect();
    put(
        "schema",
        json!([{
            "name": m.id.name().to_string(),
            "logicalType": "object",
            "properties": properties,
        }]),
    );
    let mut sla = Vec::new();
    for (property, secs) in [
        ("latency", m.sla.freshness_secs),
        ("frequency", m.sla.update_frequency_secs),
        ("retention", m.sla.retention_secs),
    ] {
        if let Some(secs) = secs {
            sla.push(sla_duration(property, secs));
        }
    }
    if let Some(bp) = m.sla.availability_bp {
        sla.push(json!({
            "property": "availability",
            "value": f64::from(bp) / 100.0,
            "unit": "%",
        }));
    }
    if !sla.is_empty() {
        put("slaProperties", Value::Array(sla));
    }
    // What ODCS has no field for, as custom properties `import` reads back.
    let mut custom = vec![json!({
        "property": CUSTOM_CLASSIFICATION,
        "value": m.classification.to_string(),
    })];
    if !m.consumers.is_empty() {
        custom.push(json!({
            "property": CUSTOM_CONSUMERS,
            "value": m.consumers.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        }));
    }
    if !m.lineage.is_empty() {
        custom.push(json!({
            "property": CUSTOM_LINEAGE,
            "value": m.lineage.iter().map(|u| match &u.manifest {
                Some(h) => json!({ "id": u.id.to_string(), "manifest": h.to_string() }),
                None => json!({ "id": u.id.to_string() }),
            }).collect::<Vec<_>>(),
        }));
    }
    put("customProperties", Value::Array(custom));
    Value::Object(doc)
}

/// An SLA duration as a value and a unit (`4h` -> 4, `h`).
fn sla_duration(property: &str, secs: u64) -> Value {
    let text = format_duration(secs);
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    json!({
        "property": property,
        "value": n.parse::<u64>().unwrap_or(secs),
        "unit": if unit.is_empty() { "s" } else { unit },
    })
}
