//! `mesh contract lint`: the problems of a contract, each with its field path,
//! before anything is published.
//!
//! Three sources: the standard's structural rules (the required fields of the
//! ODCS v3.1.0 JSON Schema, its enums, and for v3.1.0 its closed key sets at the
//! top level, in schema objects and in properties); mesh's own (a semver
//! `version`, object and property names unique, what [`super::import`] refuses);
//! and every check the data will get ([`crate::quality::Plan`]: quality rules
//! and `logicalTypeOptions` that cannot run). This is a hand-written subset of
//! the JSON Schema, not a validator of it: `scripts/odcs-examples` runs the
//! official schema over mesh's exports.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{import, API_VERSIONS};
use crate::quality::Plan;

/// What lint found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Lint {
    /// Problems to fix: `path: problem`.
    pub errors: Vec<String>,
    /// What mesh will do with values it maps loosely, and defaults it fills.
    pub notes: Vec<String>,
}

const TOP_REQUIRED: [&str; 5] = ["version", "apiVersion", "kind", "id", "status"];
const TOP_KEYS: [&str; 22] = [
    "version",
    "kind",
    "apiVersion",
    "id",
    "name",
    "tenant",
    "tags",
    "status",
    "servers",
    "dataProduct",
    "description",
    "domain",
    "schema",
    "support",
    "price",
    "team",
    "roles",
    "slaDefaultElement",
    "slaProperties",
    "authoritativeDefinitions",
    "customProperties",
    "contractCreatedTs",
];
const OBJECT_KEYS: [&str; 14] = [
    "authoritativeDefinitions",
    "businessName",
    "customProperties",
    "dataGranularityDescription",
    "description",
    "id",
    "logicalType",
    "name",
    "physicalName",
    "physicalType",
    "properties",
    "quality",
    "relationships",
    "tags",
];
const PROPERTY_KEYS: [&str; 28] = [
    "authoritativeDefinitions",
    "businessName",
    "classification",
    "criticalDataElement",
    "customProperties",
    "description",
    "encryptedName",
    "examples",
    "id",
    "items",
    "logicalType",
    "logicalTypeOptions",
    "name",
    "partitionKeyPosition",
    "partitioned",
    "physicalName",
    "physicalType",
    "primaryKey",
    "primaryKeyPosition",
    "properties",
    "quality",
    "relationships",
    "required",
    "tags",
    "transformDescription",
    "transformLogic",
    "transformSourceObjects",
    "unique",
];
const DIMENSIONS: [&str; 14] = [
    "accuracy",
    "completeness",
    "conformity",
    "consistency",
    "coverage",
    "timeliness",
    "uniqueness",
    "ac",
    "cp",
    "cf",
    "cs",
    "cv",
    "tm",
    "uq",
];

/// Lints a contract (YAML or JSON). `default_domain` is the domain a contract
/// without one is published for, if known.
pub fn lint(yaml: &str, default_domain: Option<&str>) -> Lint {
    let mut l = Lint::default();
    let doc = match super::document(yaml) {
        Ok(m) => m,
        Err(e) => {
            l.errors
                .extend(e.0.into_iter().map(|p| format!("(top): {p}")));
            return l;
        }
    };
    let strict = doc.get("apiVersion").and_then(Value::as_str) == Some("v3.1.0");
    for k in TOP_REQUIRED {
        if !doc.contains_key(k) {
            l.errors.push(format!("{k}: required by ODCS"));
        }
    }
    if let Some(v) = doc.get("apiVersion").and_then(Value::as_str) {
        if !API_VERSIONS.contains(&v) {
            l.errors.push(format!(
                "apiVersion: {v:?} is not one of {}",
                API_VERSIONS.join(", ")
            ));
        }
    }
    if let Some(k) = doc
        .get("kind")
        .filter(|k| k.as_str() != Some("DataContract"))
    {
        l.errors.push(format!("kind: {k} must be DataContract"));
    }
    if strict {
        unknown(&mut l, &doc, "", &TOP_KEYS);
    }
    if let Some(v) = doc.get("version") {
        let text = super::text(v).unwrap_or_default();
        if semver::Version::parse(&text).is_err() {
            l.errors.push(format!(
                "version: {v} is not a semantic version (MAJOR.MINOR.PATCH); mesh orders versions by it"
            ));
        }
    }
    required_in_list(&mut l, &doc, "servers", &["server", "type"]);
    required_in_list(&mut l, &doc, "support", &["channel"]);
    required_in_list(&mut l, &doc, "roles", &["role"]);
    required_in_list(&mut l, &doc, "slaProperties", &["property", "value"]);
    match doc.get("team") {
        Some(Value::Array(_)) => {
            required_in_list(&mut l, &doc, "team", &["username"]);
            if strict {
                l.notes.push(
                    "team: a list of members is deprecated in v3.1.0; use {name, members}".into(),
                );
            }
        }
        Some(Value::Object(t)) => required_in_list(&mut l, t, "members", &["username"]),
        Some(other) => l.errors.push(format!(
            "team: {other} must be a mapping (v3.1) or a list (v3.0)"
        )),
        None => {}
    }
    walk_custom(&mut l, &Value::Object(doc.clone()), String::new());
    schema(&mut l, &doc, strict);
    // What import refuses (domain, product name), and its notes.
    match import(yaml, default_domain) {
        Ok(i) => l.notes.extend(i.notes),
        Err(e) => {
            for p in e.0 {
                if !l.errors.iter().any(|x| x.contains(&p)) {
                    l.errors.push(p);
                }
            }
        }
    }
    if doc.get("domain").is_none() && default_domain.is_some() {
        l.notes.push(format!(
            "domain: none given; published as domain {}",
            default_domain.unwrap_or_default()
        ));
    }
    let plan = Plan::from_contract(&doc, &Default::default());
    for p in plan.lint {
        if !l.errors.contains(&p) {
            l.errors.push(p);
        }
    }
    l
}

fn unknown(l: &mut Lint, m: &Map<String, Value>, at: &str, known: &[&str]) {
    for k in m.keys().filter(|k| !known.contains(&k.as_str())) {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        l.errors.push(format!(
            "{path}: not a field of ODCS v3.1.0 here (custom data goes in customProperties)"
        ));
    }
}

fn required_in_list(l: &mut Lint, m: &Map<String, Value>, key: &str, required: &[&str]) {
    let Some(v) = m.get(key) else { return };
    let Some(list) = v.as_array() else {
        l.errors.push(format!("{key}: must be a list"));
        return;
    };
    for (i, item) in list.iter().enumerate() {
        match item.as_object() {
            None => l.errors.push(format!("{key}[{i}]: must be a mapping")),
            Some(o) => {
                for r in required {
                    if !o.contains_key(*r) {
                        l.errors.push(format!("{key}[{i}].{r}: required by ODCS"));
                    }
                }
            }
        }
    }
}

/// `customProperties` anywhere: each needs `property` and `value`.
fn walk_custom(l: &mut Lint, v: &Value, at: String) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                if k == "customProperties" {
                    if let Some(list) = v.as_array() {
                        for (i, p) in list.iter().enumerate() {
                            for r in ["property", "value"] {
                                if p.get(r).is_none() {
                                    l.errors.push(format!("{path}[{i}].{r}: required by ODCS"));
                                }
                            }
                        }
                    }
                } else {
                    walk_custom(l, v, path);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk_custom(l, v, format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

fn schema(l: &mut Lint, doc: &Map<String, Value>, strict: bool) {
    let Some(objects) = doc.get("schema").and_then(Value::as_array) else {
        return;
    };
    let mut names = BTreeSet::new();
    for (i, o) in objects.iter().enumerate() {
        let at = format!("schema[{i}]");
        let Some(o) = o.as_object() else { continue };
        if let Some(n) = o.get("name").and_then(Value::as_str) {
            if !names.insert(n.to_owned()) {
                l.errors.push(format!("{at}.name: {n:?} names two schema objects; files are matched to objects by name"));
            }
        }
        if strict {
            unknown(l, o, &at, &OBJECT_KEYS);
        }
        quality_fields(l, o, &at);
        properties(l, o.get("properties"), &at, strict);
    }
}

fn properties(l: &mut Lint, v: Option<&Value>, at: &str, strict: bool) {
    let Some(props) = v.and_then(Value::as_array) else {
        return;
    };
    let mut names = BTreeSet::new();
    for (j, p) in props.iter().enumerate() {
        let pat = format!("{at}.properties[{j}]");
        let Some(p) = p.as_object() else { continue };
        if let Some(n) = p.get("name").and_then(Value::as_str) {
            if !names.insert(n.to_owned()) {
                l.errors.push(format!(
                    "{pat}.name: {n:?} names two properties of the same object"
                ));
            }
        }
        if strict {
            unknown(l, p, &pat, &PROPERTY_KEYS);
        }
        quality_fields(l, p, &pat);
        // Nested properties (an object's fields) follow the same rules.
        properties(l, p.get("properties"), &pat, strict);
        if let Some(items) = p.get("items").and_then(Value::as_object) {
            properties(l, items.get("properties"), &format!("{pat}.items"), strict);
        }
    }
}

fn quality_fields(l: &mut Lint, m: &Map<String, Value>, at: &str) {
    for (i, r) in m
        .get("quality")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(r) = r.as_object() else { continue };
        if let Some(d) = r.get("dimension").and_then(Value::as_str) {
            if !DIMENSIONS.contains(&d) {
                l.errors.push(format!(
                    "{at}.quality[{i}].dimension: {d:?} is not one of accuracy, completeness, conformity, consistency, coverage, timeliness, uniqueness"
                ));
            }
        }
        match r.get("type").and_then(Value::as_str) {
            Some("sql") if !r.contains_key("query") => {
                l.errors
                    .push(format!("{at}.quality[{i}].query: required for a sql rule"));
            }
            Some("custom") => {
                for k in ["engine", "implementation"] {
                    if !r.contains_key(k) {
                        l.errors
                            .push(format!("{at}.quality[{i}].{k}: required for a custom rule"));
                    }
                }
            }
            _ => {}
        }
    }
}
