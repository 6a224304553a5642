//! The standard's own word on a contract: the official ODCS JSON Schema of each
//! version mesh reads (`schemas/`, shipped in the binary, unchanged), and a
//! contract's problems against the one its `apiVersion` names, each as
//! `path: problem` in lint's path notation (`schema[0].properties[2].name`).
//!
//! The schemas are compiled once, on first use ([`boon`], a JSON Schema draft
//! 2019-09 validator; format assertions off, as the standard's own tooling runs
//! them). Where a value fits none of the forms a `oneOf`/`anyOf` allows, the
//! problems of the form it came closest to are reported (the deepest path), not
//! every form's.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use boon::{Compiler, ErrorKind, InstanceToken, SchemaIndex, Schemas, ValidationError};
use serde_json::Value;

/// Each version read, with its official schema.
const SCHEMAS: [(&str, &str); 4] = [
    (
        "v3.0.0",
        include_str!("schemas/odcs-json-schema-v3.0.0.json"),
    ),
    (
        "v3.0.1",
        include_str!("schemas/odcs-json-schema-v3.0.1.json"),
    ),
    (
        "v3.0.2",
        include_str!("schemas/odcs-json-schema-v3.0.2.json"),
    ),
    (
        "v3.1.0",
        include_str!("schemas/odcs-json-schema-v3.1.0.json"),
    ),
];

struct Compiled {
    schemas: Schemas,
    index: Vec<(&'static str, SchemaIndex)>,
    /// Every field name any shipped schema defines somewhere.
    fields: BTreeSet<String>,
}

fn compiled() -> Result<&'static Compiled, &'static str> {
    static ONCE: OnceLock<Result<Compiled, String>> = OnceLock::new();
    ONCE.get_or_init(compile).as_ref().map_err(String::as_str)
}

fn compile() -> Result<Compiled, String> {
    let mut compiler = Compiler::new();
    let mut schemas = Schemas::new();
    let mut index = Vec::new();
    let mut fields = BTreeSet::new();
    for (version, text) in SCHEMAS {
        let url = format!("https://mesh.invalid/odcs/{version}.json");
        let json: Value = serde_json::from_str(text)
            .map_err(|e| format!("the shipped ODCS {version} schema is not JSON: {e}"))?;
        field_names(&json, &mut fields);
        compiler
            .add_resource(&url, json)
            .map_err(|e| format!("the shipped ODCS {version} schema: {e}"))?;
        let i = compiler
            .compile(&url, &mut schemas)
            .map_err(|e| format!("the shipped ODCS {version} schema does not compile: {e}"))?;
        index.push((version, i));
    }
    Ok(Compiled {
        schemas,
        index,
        fields,
    })
}

fn field_names(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            m.values().for_each(|v| field_names(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| field_names(v, out)),
        _ => {}
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// A field of an object.
    Key(String),
    /// An item of a list.
    Index(usize),
}

/// One problem the official schema finds.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    /// Where, from the top of the document.
    pub at: Vec<Step>,
    /// A field the standard does not define there (`at` ends with its key).
    pub extra: bool,
    /// `path: problem`.
    pub text: String,
}

/// The problems of `doc` against the official schema of `api_version`, as
/// `path: problem` lines, or `None` when mesh ships no schema for that version.
pub(super) fn problems(doc: &Value, api_version: &str) -> Option<Vec<String>> {
    check(doc, api_version).map(|p| p.into_iter().map(|p| p.text).collect())
}

/// The problems of `doc` against the official schema of `api_version`, or
/// `None` when mesh ships no schema for that version.
pub(super) fn check(doc: &Value, api_version: &str) -> Option<Vec<Problem>> {
    validate(doc, api_version, true)
}

/// [`check`] with the echoes of `unevaluatedProperties` kept (see [`cascade`]).
pub(super) fn check_all(doc: &Value, api_version: &str) -> Option<Vec<Problem>> {
    validate(doc, api_version, false)
}

fn validate(doc: &Value, api_version: &str, drop_echoes: bool) -> Option<Vec<Problem>> {
    let c = match compiled() {
        Ok(c) => c,
        Err(e) => {
            return Some(vec![Problem {
                at: Vec::new(),
                extra: false,
                text: format!("(top): {e} (a bug in mesh; please report it)"),
            }])
        }
    };
    let (_, i) = c.index.iter().find(|(v, _)| *v == api_version)?;
    let Err(e) = c.schemas.validate(doc, *i) else {
        return Some(Vec::new());
    };
    let leaves = closest_leaves(&e);
    let failing: Vec<String> = leaves
        .iter()
        .filter(|l| !matches!(l.kind, ErrorKind::FalseSchema))
        .map(|l| path(l))
        .collect();
    let mut out: Vec<Problem> = Vec::new();
    for leaf in leaves {
        if drop_echoes && cascade(leaf, &failing, &c.fields) {
            continue;
        }
        for p in describe(leaf, doc, api_version) {
            if !out.iter().any(|o| o.text == p.text) {
                out.push(p);
            }
        }
    }
    Some(out)
}

/// The leaf errors under `e`; of a `oneOf`/`anyOf`, only the branch that got
/// deepest into the document.
fn closest_leaves<'a, 's, 'v>(e: &'a ValidationError<'s, 'v>) -> Vec<&'a ValidationError<'s, 'v>> {
    match e.kind {
        ErrorKind::AnyOf | ErrorKind::OneOf(None) if !e.causes.is_empty() => {
            let branches: Vec<_> = e.causes.iter().map(closest_leaves).collect();
            let depth = |b: &Vec<&ValidationError>| {
                b.iter()
                    .map(|l| l.instance_location.tokens.len())
                    .max()
                    .unwrap_or(0)
            };
            let best = branches.iter().map(depth).max().unwrap_or(0);
            branches
                .into_iter()
                .filter(|b| depth(b) == best)
                .min_by_key(Vec::len)
                .unwrap_or_default()
        }
        _ if e.causes.is_empty() => vec![e],
        _ => e.causes.iter().flat_map(closest_leaves).collect(),
    }
}

/// `unevaluatedProperties: false` also reports the fields of an object that one
/// of its subschemas rejected for another reason (annotations of a failed
/// subschema do not count): a field the standard defines, in an object with
/// another problem, is that echo, not a problem of its own.
fn cascade(e: &ValidationError, failing: &[String], fields: &BTreeSet<String>) -> bool {
    let Some(InstanceToken::Prop(key)) = e.instance_location.tokens.last() else {
        return false;
    };
    if !matches!(e.kind, ErrorKind::FalseSchema) || !fields.contains(key.as_ref()) {
        return false;
    }
    let at = path(e);
    let parent = &at[..at.len() - key.len()].trim_end_matches('.');
    failing.iter().any(|f| f.starts_with(parent))
}

fn describe(e: &ValidationError, doc: &Value, api_version: &str) -> Vec<Problem> {
    let at = path(e);
    let steps = steps(e);
    let child = |key: &str| {
        let text = if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        };
        let mut s = steps.clone();
        s.push(Step::Key(key.to_owned()));
        (s, text)
    };
    let extra = |(at, path): (Vec<Step>, String)| {
        Problem {
        at,
        extra: true,
        text: format!(
            "{path}: not a field of ODCS {api_version} here (a misspelling? custom data goes in customProperties)"
        ),
    }
    };
    let one = |text: String| {
        vec![Problem {
            at: steps.clone(),
            extra: false,
            text,
        }]
    };
    match &e.kind {
        ErrorKind::Required { want } => want
            .iter()
            .map(|k| {
                let (at, path) = child(k);
                Problem {
                    at,
                    extra: false,
                    text: format!("{path}: required by ODCS {api_version}"),
                }
            })
            .collect(),
        ErrorKind::AdditionalProperties { got } => got.iter().map(|k| extra(child(k))).collect(),
        // `unevaluatedProperties: false` reports each extra key at its own path.
        ErrorKind::FalseSchema => vec![extra((steps.clone(), top(&at).to_owned()))],
        ErrorKind::Type { got, want } => {
            let want: Vec<String> = want.iter().map(|t| t.to_string()).collect();
            one(format!(
                "{}: must be {} in ODCS {api_version}, not {got}",
                top(&at),
                want.join(" or ")
            ))
        }
        ErrorKind::OneOf(Some(_)) => one(format!(
            "{}: fits more than one of the forms ODCS {api_version} allows here",
            top(&at)
        )),
        ErrorKind::Enum { want } => {
            let got = doc
                .pointer(&e.instance_location.to_string())
                .map(Value::to_string)
                .unwrap_or_default();
            let want: Vec<String> = want.iter().map(Value::to_string).collect();
            one(format!(
                "{}: {got} is not one of {} (ODCS {api_version})",
                top(&at),
                want.join(", ")
            ))
        }
        other => one(format!("{}: {other} (ODCS {api_version})", top(&at))),
    }
}

fn top(at: &str) -> &str {
    if at.is_empty() {
        "(top)"
    } else {
        at
    }
}

/// `/schema/0/properties/2` as `schema[0].properties[2]`.
fn path(e: &ValidationError) -> String {
    dotted(&steps(e))
}

/// Where an error is, as steps.
fn steps(e: &ValidationError) -> Vec<Step> {
    e.instance_location
        .tokens
        .iter()
        .map(|t| match t {
            InstanceToken::Prop(p) => Step::Key(p.to_string()),
            InstanceToken::Item(i) => Step::Index(*i),
        })
        .collect()
}

/// Steps in lint's path notation (`schema[0].properties[2]`).
pub(super) fn dotted(at: &[Step]) -> String {
    let mut out = String::new();
    for s in at {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_shipped_schema_compiles() {
        let c = compiled().unwrap();
        assert_eq!(c.index.len(), SCHEMAS.len());
    }

    #[test]
    fn a_misspelt_key_in_a_3_0_contract_is_named_with_its_path() {
        let doc = serde_json::json!({
            "apiVersion": "v3.0.0", "kind": "DataContract", "id": "x", "version": "1.0.0",
            "status": "active",
            "schema": [{"name": "t", "properties": [{"name": "a", "requird": true}]}]
        });
        let p = problems(&doc, "v3.0.0").unwrap();
        assert!(
            p.iter()
                .any(|l| l.starts_with("schema[0].properties[0].requird: not a field")),
            "{p:?}"
        );
        assert_eq!(problems(&doc, "v9.9.9"), None);
    }
}
