//! A v3.0.x contract rewritten as v3.1.0, on request only (`mesh contract
//! convert`, `mesh show --format odcs --to v3.1.0`): export keeps the version
//! the author declared.
//!
//! Every form v3.1.0 changed is converted ([`to_v3_1`]): `team` as a list becomes
//! `{members: [...]}`; a library quality rule's `rule` becomes its `metric`
//! (`nullCheck` -> `nullValues`, `duplicateCount` -> `duplicateValues`,
//! `validValues` -> `invalidValues` with its list under `arguments`; a rule already
//! named as a v3.1 metric keeps its name);
//! `exclusiveMinimum: true` beside `minimum: 5` becomes `exclusiveMinimum: 5`
//! (and the same for maximum). A field v3.1.0 does not define where it stands
//! (it closed most sections) moves, with its value, into the `customProperties`
//! of the nearest element that takes them, named by its key, so nothing is
//! lost. Each change is a note; what is still not valid under v3.1.0 afterwards
//! is listed in [`Converted::problems`].

use serde_json::{json, Map, Value};

use super::document::{OdcsError, EXPORT_API_VERSION};
use super::standard::{self, Step};

/// A converted contract.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The v3.1.0 document.
    pub document: Map<String, Value>,
    /// Each change made, by path.
    pub notes: Vec<String>,
    /// What the official v3.1.0 schema still finds (empty: valid).
    pub problems: Vec<String>,
}

impl Converted {
    /// The converted document as YAML.
    pub fn yaml(&self) -> Result<String, OdcsError> {
        serde_yaml::to_string(&self.document).map_err(|e| OdcsError(vec![e.to_string()]))
    }
}

/// The v3.0 library rules and their v3.1 metrics (a v3.0 rule may already
/// carry a v3.1 metric's name).
const METRICS: [(&str, &str); 8] = [
    ("nullCheck", "nullValues"),
    ("duplicateCount", "duplicateValues"),
    ("validValues", "invalidValues"),
    ("nullValues", "nullValues"),
    ("missingValues", "missingValues"),
    ("invalidValues", "invalidValues"),
    ("duplicateValues", "duplicateValues"),
    ("rowCount", "rowCount"),
];

/// Rewrites a v3.0.x contract as v3.1.0 (a v3.1.0 one comes back unchanged).
pub fn to_v3_1(mut doc: Map<String, Value>) -> Result<Converted, OdcsError> {
    let from = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut notes = Vec::new();
    if from != EXPORT_API_VERSION {
        if !["v3.0.0", "v3.0.1", "v3.0.2"].contains(&from.as_str()) {
            return Err(OdcsError(vec![format!(
                "apiVersion: {from:?} is not v3.0.0, v3.0.1 or v3.0.2, the versions mesh converts to {EXPORT_API_VERSION}"
            )]));
        }
        doc.insert("apiVersion".into(), json!(EXPORT_API_VERSION));
        notes.push(format!("apiVersion: {from} -> {EXPORT_API_VERSION}"));
        team(&mut doc, &mut notes);
        if let Some(Value::Array(objects)) = doc.get_mut("schema") {
            for (i, o) in objects.iter_mut().enumerate() {
                element(o, &format!("schema[{i}]"), &mut notes);
            }
        }
    }
    let mut document = Value::Object(doc);
    move_extras(&mut document, &mut notes);
    let problems = standard::problems(&document, EXPORT_API_VERSION).unwrap_or_default();
    let Value::Object(document) = document else {
        return Err(OdcsError(vec!["(top): not a mapping".into()]));
    };
    Ok(Converted {
        document,
        notes,
        problems,
    })
}

fn team(doc: &mut Map<String, Value>, notes: &mut Vec<String>) {
    if let Some(list @ Value::Array(_)) = doc.get_mut("team") {
        let members = list.take();
        *list = json!({ "members": members });
        notes.push("team: the v3.0 list of members -> {members: [...]}".into());
    }
}

/// A schema object or property, its quality rules and options, and the
/// properties under it.
fn element(v: &mut Value, at: &str, notes: &mut Vec<String>) {
    let Some(m) = v.as_object_mut() else { return };
    if let Some(Value::Array(rules)) = m.get_mut("quality") {
        for (i, r) in rules.iter_mut().enumerate() {
            rule(r, &format!("{at}.quality[{i}]"), notes);
        }
    }
    if let Some(Value::Object(o)) = m.get_mut("logicalTypeOptions") {
        for (flag, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            exclusive(o, flag, bound, &format!("{at}.logicalTypeOptions"), notes);
        }
    }
    if let Some(Value::Array(props)) = m.get_mut("properties") {
        for (j, p) in props.iter_mut().enumerate() {
            element(p, &format!("{at}.properties[{j}]"), notes);
        }
    }
    if let Some(items) = m.get_mut("items") {
        element(items, &format!("{at}.items"), notes);
    }
}

fn rule(r: &mut Value, at: &str, notes: &mut Vec<String>) {
    let Some(r) = r.as_object_mut() else { return };
    if r.contains_key("metric") {
        return;
    }
    let Some(name) = r.get("rule").and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    let Some((_, metric)) = METRICS.iter().find(|(old, _)| *old == name) else {
        return;
    };
    r.remove("rule");
    r.insert("metric".into(), json!(metric));
    notes.push(format!("{at}: rule {name} -> metric {metric}"));
    if let Some(valid) = r.remove("validValues") {
        let args = r.entry("arguments").or_insert_with(|| json!({}));
        if let Some(args) = args.as_object_mut() {
            args.insert("validValues".into(), valid);
            notes.push(format!("{at}.validValues -> {at}.arguments.validValues"));
        }
    }
}

/// v3.0's `exclusiveMinimum: true` beside `minimum: x` is v3.1's
/// `exclusiveMinimum: x`; `false` is the absence of the flag.
fn exclusive(
    o: &mut Map<String, Value>,
    flag: &str,
    bound: &str,
    at: &str,
    notes: &mut Vec<String>,
) {
    match o.get(flag) {
        Some(Value::Bool(true)) => match o.remove(bound) {
            Some(x) => {
                notes.push(format!(
                    "{at}: {bound}: {x} with {flag}: true -> {flag}: {x}"
                ));
                o.insert(flag.to_owned(), x);
            }
            None => {
                o.remove(flag);
                notes.push(format!(
                    "{at}.{flag}: true without {bound} bounds nothing; removed"
                ));
            }
        },
        Some(Value::Bool(false)) => {
            o.remove(flag);
            notes.push(format!("{at}.{flag}: false is the default; removed"));
        }
        _ => {}
    }
}

/// Moves every field v3.1.0 does not define where it stands into the
/// `customProperties` of the nearest element that takes them.
fn move_extras(doc: &mut Value, notes: &mut Vec<String>) {
    // Each pass moves one field; a contract has at most as many as it has fields.
    for _ in 0..10_000 {
        let Some(problems) = standard::check(doc, EXPORT_API_VERSION) else {
            return;
        };
        let Some(extra) = problems.into_iter().find(|p| p.extra) else {
            return;
        };
        let Some((Step::Key(key), parent)) = extra.at.split_last() else {
            return;
        };
        let Some(value) = object_at(doc, parent).and_then(|m| m.remove(key)) else {
            return;
        };
        if let Err(value) = place(doc, parent, key, value, notes) {
            // Nowhere takes it: it stays where it was, and is listed as a problem.
            if let Some(m) = object_at(doc, parent) {
                m.insert(key.clone(), value);
            }
            return;
        }
    }
}

/// Puts `value` into the customProperties of the nearest ancestor (from
/// `parent` up) where the schema accepts it; gives it back if none does.
fn place(
    doc: &mut Value,
    parent: &[Step],
    key: &str,
    value: Value,
    notes: &mut Vec<String>,
) -> Result<(), Value> {
    for depth in (0..=parent.len()).rev() {
        let at = &parent[..depth];
        if !matches!(at.last(), None | Some(Step::Index(_))) {
            continue;
        }
        let name = relative(&parent[depth..], key);
        let Some(m) = object_at(doc, at) else {
            continue;
        };
        let list = m.entry("customProperties").or_insert_with(|| json!([]));
        let Some(list) = list.as_array_mut() else {
            continue;
        };
        list.push(json!({ "property": name, "value": value.clone() }));
        let index = list.len() - 1;
        let mut cp = at.to_vec();
        cp.push(Step::Key("customProperties".into()));
        let refused = standard::check_all(doc, EXPORT_API_VERSION)
            .unwrap_or_default()
            .iter()
            .any(|p| p.at.starts_with(&cp));
        if !refused {
            notes.push(format!(
                "{}: not a field of {EXPORT_API_VERSION} here; moved to {}customProperties as {name:?}",
                standard::dotted(&[parent, &[Step::Key(key.to_owned())]].concat()),
                prefix(at)
            ));
            return Ok(());
        }
        // Undo, and try the next element up.
        let Some(m) = object_at(doc, at) else {
            return Err(value);
        };
        if let Some(Value::Array(list)) = m.get_mut("customProperties") {
            list.remove(index);
            if list.is_empty() {
                m.remove("customProperties");
            }
        }
    }
    Err(value)
}

fn object_at<'a>(doc: &'a mut Value, at: &[Step]) -> Option<&'a mut Map<String, Value>> {
    let mut v = doc;
    for s in at {
        v = match s {
            Step::Key(k) => v.as_object_mut()?.get_mut(k)?,
            Step::Index(i) => v.as_array_mut()?.get_mut(*i)?,
        };
    }
    v.as_object_mut()
}

/// The name a moved field gets: its key, with the path from the element that
/// holds it (`logicalTypeOptions.exclusive`).
fn relative(below: &[Step], key: &str) -> String {
    let mut out = standard::dotted(below);
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
    out
}

fn prefix(at: &[Step]) -> String {
    let t = standard::dotted(at);
    if t.is_empty() {
        t
    } else {
        format!("{t}.")
    }
}
