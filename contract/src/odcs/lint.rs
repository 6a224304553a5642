//! `mesh contract lint`: the problems of a contract, each with its field path,
//! before anything is published.
//!
//! Three sources: the standard's own JSON Schema of the contract's `apiVersion`
//! (v3.0.0 to v3.1.0, shipped with the binary: [`super::standard`]); mesh's own
//! rules (a semver `version`, object and property names unique, what
//! [`super::import`] refuses); and every check the data will get
//! ([`crate::quality::Plan`]: quality rules and `logicalTypeOptions` that cannot
//! run).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::document::{self, API_VERSIONS};
use super::import::import;
use crate::quality::Plan;

/// What lint found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Lint {
    /// Problems to fix: `path: problem`.
    pub errors: Vec<String>,
    /// What mesh will do with values it maps loosely, and defaults it fills.
    pub notes: Vec<String>,
}

/// Lints a contract (YAML or JSON). `default_domain` is the domain a contract
/// without one is published for, if known.
pub fn lint(yaml: &str, default_domain: Option<&str>) -> Lint {
    let mut l = Lint::default();
    let doc = match document::document(yaml) {
        Ok(m) => m,
        Err(e) => {
            l.errors
                .extend(e.0.into_iter().map(|p| format!("(top): {p}")));
            return l;
        }
    };
    standard(&mut l, &doc);
    if let Some(v) = doc.get("version") {
        let text = document::text(v).unwrap_or_default();
        if semver::Version::parse(&text).is_err() {
            l.errors.push(format!(
                "version: {v} is not a semantic version (MAJOR.MINOR.PATCH); mesh orders versions by it"
            ));
        }
    }
    if doc.get("apiVersion").and_then(Value::as_str) == Some("v3.1.0")
        && doc.get("team").is_some_and(Value::is_array)
    {
        l.notes
            .push("team: a list of members is deprecated in v3.1.0; use {name, members}".into());
    }
    unique_names(&mut l, &doc);
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

/// The official schema of the contract's `apiVersion`.
fn standard(l: &mut Lint, doc: &Map<String, Value>) {
    let versions = API_VERSIONS.join(", ");
    let Some(version) = doc.get("apiVersion") else {
        l.errors
            .push(format!("apiVersion: required by ODCS; one of {versions}"));
        return;
    };
    let name = version.as_str().unwrap_or_default();
    match super::standard::problems(&Value::Object(doc.clone()), name) {
        Some(p) => l.errors.extend(p),
        None => l.errors.push(format!(
            "apiVersion: {version} is not one of {versions}, the versions whose official schema mesh checks against"
        )),
    }
}

/// Schema objects, and the properties of each, are matched by name: a name
/// used twice is an error.
fn unique_names(l: &mut Lint, doc: &Map<String, Value>) {
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
        unique_properties(l, o.get("properties"), &at);
    }
}

fn unique_properties(l: &mut Lint, v: Option<&Value>, at: &str) {
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
        unique_properties(l, p.get("properties"), &pat);
        if let Some(items) = p.get("items").and_then(Value::as_object) {
            unique_properties(l, items.get("properties"), &format!("{pat}.items"));
        }
    }
}
