//! What changed between two versions of an ODCS contract, over every schema
//! object and property, and which changes are breaking, from a [`Perspective`]
//! (after datacontract-cli's rules, and mesh's [`crate::schema_diff`]). For both
//! sides: an object or property removed, a type, `physicalName` or `physicalType`
//! changed, a classification loosened. For consumers (who read the data):
//! `required` or `unique` loosened (nulls or repeats may now appear). For
//! producers (who write it): `required` or `unique` tightened, a property added
//! as required. [`Perspective::Both`] (the default) breaks on either. Everything
//! else (an optional property added, descriptions, quality rules, SLA, team) is
//! listed as compatible.

use serde::Serialize;
use serde_json::{Map, Value};

use mesh_protocol::policy::SchemaCompatibility;

/// How much a change matters to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Existing consumers keep working.
    Compatible,
    /// Existing consumers may break.
    Breaking,
}

/// Whose code a change may break.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Perspective {
    /// Those who read the data: a guarantee withdrawn breaks them.
    Consumer,
    /// Those who write the data: a new demand breaks them.
    Producer,
    /// Breaking for either.
    #[default]
    Both,
}

impl Perspective {
    /// Whether a guarantee flag (`required`, `unique`) going from `was` to `now`
    /// breaks this side.
    fn flag_breaks(self, was: bool, now: bool) -> bool {
        let (loosened, tightened) = (was && !now, !was && now);
        match self {
            Perspective::Consumer => loosened,
            Perspective::Producer => tightened,
            Perspective::Both => loosened || tightened,
        }
    }

    /// Whether a property added as required breaks this side.
    fn added_required_breaks(self) -> bool {
        self != Perspective::Consumer
    }
}

/// One change, with the path where it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `schema[orders].properties[amount].logicalType`: objects and properties
    /// by name, so a reordering is not a change.
    pub path: String,
    /// What changed, e.g. `number -> string`.
    pub change: String,
    /// Breaking or compatible.
    pub severity: Severity,
}

/// The changes from `old` to `new`, breaking first.
#[derive(Debug, Clone, Serialize)]
pub struct Changelog {
    /// `version` of each contract.
    pub versions: (String, String),
    /// Every change.
    pub changes: Vec<Change>,
}

impl Changelog {
    /// The breaking changes.
    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.severity == Severity::Breaking)
    }

    /// Why `mode` refuses these changes, if it does: `frozen` refuses any breaking
    /// change, `backward` one without a new major version.
    pub fn refused_by(&self, mode: SchemaCompatibility) -> Option<String> {
        let n = self.breaking().count();
        if n == 0 {
            return None;
        }
        let major = |v: &str| semver::Version::parse(v).ok().map(|v| v.major);
        match mode {
            SchemaCompatibility::None => None,
            SchemaCompatibility::Frozen => Some(format!(
                "{n} breaking change(s), and schema compatibility is frozen"
            )),
            SchemaCompatibility::Backward => match (major(&self.versions.0), major(&self.versions.1)) {
                (Some(a), Some(b)) if b > a => None,
                _ => Some(format!(
                    "{n} breaking change(s) without a new major version ({} -> {}); schema compatibility is backward",
                    self.versions.0, self.versions.1
                )),
            },
        }
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn named(v: Option<&Value>) -> Vec<(String, &Map<String, Value>)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|o| (text(o.get("name")), o))
        .collect()
}

fn flag(o: &Map<String, Value>, key: &str) -> bool {
    o.get(key).and_then(Value::as_bool) == Some(true)
}

struct Diff {
    changes: Vec<Change>,
    perspective: Perspective,
}

impl Diff {
    fn push(&mut self, path: String, change: String, severity: Severity) {
        self.changes.push(Change {
            path,
            change,
            severity,
        });
    }

    /// A value that changed at `path`, with `severity`.
    fn value(
        &mut self,
        path: &str,
        key: &str,
        a: &Map<String, Value>,
        b: &Map<String, Value>,
        severity: Severity,
    ) {
        if a.get(key) != b.get(key) {
            self.push(
                format!("{path}.{key}"),
                format!("{} -> {}", text(a.get(key)), text(b.get(key))),
                severity,
            );
        }
    }

    fn property(&mut self, path: &str, a: &Map<String, Value>, b: &Map<String, Value>) {
        use Severity::*;
        for key in ["logicalType", "physicalType", "physicalName"] {
            self.value(path, key, a, b, Breaking);
        }
        for key in ["required", "unique", "primaryKey"] {
            let (was, now) = (flag(a, key), flag(b, key));
            if was != now {
                let breaks = key != "primaryKey" && self.perspective.flag_breaks(was, now);
                self.push(
                    format!("{path}.{key}"),
                    format!("{was} -> {now}"),
                    if breaks { Breaking } else { Compatible },
                );
            }
        }
        let level = |o: &Map<String, Value>| {
            o.get("classification")
                .and_then(Value::as_str)
                .and_then(crate::odcs::classification)
        };
        if a.get("classification") != b.get("classification") {
            let loosened = matches!((level(a), level(b)), (Some(x), Some(y)) if y < x);
            self.push(
                format!("{path}.classification"),
                format!(
                    "{} -> {}",
                    text(a.get("classification")),
                    text(b.get("classification"))
                ),
                if loosened { Breaking } else { Compatible },
            );
        }
        for key in [
            "logicalTypeOptions",
            "quality",
            "description",
            "businessName",
            "examples",
            "tags",
        ] {
            self.value(path, key, a, b, Compatible);
        }
        self.children(path, a.get("properties"), b.get("properties"));
    }

    /// Properties (or nested properties) by name.
    fn children(&mut self, path: &str, a: Option<&Value>, b: Option<&Value>) {
        let (old, new) = (named(a), named(b));
        for (name, o) in &old {
            let at = format!("{path}.properties[{name}]");
            match new.iter().find(|(n, _)| n == name) {
                None => self.push(at, "removed".into(), Severity::Breaking),
                Some((_, n)) => self.property(&at, o, n),
            }
        }
        for (name, n) in &new {
            if !old.iter().any(|(o, _)| o == name) {
                let required = flag(n, "required") || flag(n, "primaryKey");
                self.push(
                    format!("{path}.properties[{name}]"),
                    if required {
                        "added as required".into()
                    } else {
                        "added".into()
                    },
                    if required && self.perspective.added_required_breaks() {
                        Severity::Breaking
                    } else {
                        Severity::Compatible
                    },
                );
            }
        }
    }
}

/// The changes from contract `old` to `new` (both ODCS, as JSON), breaking for
/// either side.
pub fn changelog(old: &Map<String, Value>, new: &Map<String, Value>) -> Changelog {
    changelog_for(old, new, Perspective::Both)
}

/// The changes from contract `old` to `new`, breaking as `perspective` sees them.
pub fn changelog_for(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    perspective: Perspective,
) -> Changelog {
    let mut d = Diff {
        changes: Vec::new(),
        perspective,
    };
    let (a, b) = (named(old.get("schema")), named(new.get("schema")));
    for (name, o) in &a {
        let at = format!("schema[{name}]");
        match b.iter().find(|(n, _)| n == name) {
            None => d.push(at, "removed".into(), Severity::Breaking),
            Some((_, n)) => {
                d.value(&at, "physicalName", o, n, Severity::Breaking);
                for key in [
                    "physicalType",
                    "description",
                    "quality",
                    "dataGranularityDescription",
                ] {
                    d.value(&at, key, o, n, Severity::Compatible);
                }
                d.children(&at, o.get("properties"), n.get("properties"));
            }
        }
    }
    for (name, _) in &b {
        if !a.iter().any(|(o, _)| o == name) {
            d.push(
                format!("schema[{name}]"),
                "added".into(),
                Severity::Compatible,
            );
        }
    }
    let keys: Vec<&String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| *k != "schema")
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for k in keys {
        if seen.insert(k) && old.get(k) != new.get(k) {
            d.push(
                k.clone(),
                match (old.get(k), new.get(k)) {
                    (None, Some(_)) => "added".into(),
                    (Some(_), None) => "removed".into(),
                    (Some(a @ Value::String(_)), Some(b @ Value::String(_))) => {
                        format!("{} -> {}", text(Some(a)), text(Some(b)))
                    }
                    _ => "changed".into(),
                },
                Severity::Compatible,
            );
        }
    }
    d.changes.sort_by_key(|c| std::cmp::Reverse(c.severity));
    Changelog {
        versions: (text(old.get("version")), text(new.get("version"))),
        changes: d.changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Map<String, Value> {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
        match serde_json::to_value(v).expect("json") {
            Value::Object(m) => m,
            _ => panic!("not a mapping"),
        }
    }

    const OLD: &str = "version: 1.0.0\nschema:\n  - name: orders\n    properties:\n      - {name: id, logicalType: integer, required: true}\n      - {name: amount, logicalType: number}\n      - {name: note, logicalType: string, required: true}\n  - name: refunds\n    properties: [{name: id}]\n";

    #[test]
    fn removals_type_changes_and_new_required_properties_break() {
        let new = "version: 1.1.0\nschema:\n  - name: orders\n    properties:\n      - {name: amount, logicalType: string}\n      - {name: id, logicalType: integer, required: true}\n      - {name: note, logicalType: string}\n      - {name: region, logicalType: string, required: true}\n      - {name: channel, logicalType: string}\n";
        let log = changelog_for(&doc(OLD), &doc(new), Perspective::Producer);
        let breaking: Vec<String> = log
            .breaking()
            .map(|c| format!("{}: {}", c.path, c.change))
            .collect();
        assert_eq!(
            breaking,
            [
                "schema[orders].properties[amount].logicalType: number -> string",
                "schema[orders].properties[region]: added as required",
                "schema[refunds]: removed",
            ]
        );
        let compatible: Vec<String> = log
            .changes
            .iter()
            .filter(|c| c.severity == Severity::Compatible)
            .map(|c| format!("{}: {}", c.path, c.change))
            .collect();
        assert!(compatible
            .contains(&"schema[orders].properties[note].required: true -> false".to_string()));
        assert!(compatible.contains(&"schema[orders].properties[channel]: added".to_string()));
        // A consumer is broken by the guarantee withdrawn (nulls may now appear in
        // `note`), not by a new required column it does not read.
        let consumer = changelog_for(&doc(OLD), &doc(new), Perspective::Consumer);
        let breaking: Vec<String> = consumer.breaking().map(|c| c.path.clone()).collect();
        assert!(breaking.contains(&"schema[orders].properties[note].required".to_string()));
        assert!(!breaking.contains(&"schema[orders].properties[region]".to_string()));
        // Both sides (the default): either.
        let both = changelog(&doc(OLD), &doc(new));
        assert_eq!(both.breaking().count(), 4);
        assert!(compatible.contains(&"version: 1.0.0 -> 1.1.0".to_string()));
        assert!(log.refused_by(SchemaCompatibility::Backward).is_some());
        assert!(log.refused_by(SchemaCompatibility::Frozen).is_some());
        assert!(log.refused_by(SchemaCompatibility::None).is_none());
    }

    #[test]
    fn a_new_major_version_may_break_under_backward_but_not_frozen() {
        let new = OLD
            .replace("version: 1.0.0", "version: 2.0.0")
            .replace("  - name: refunds\n    properties: [{name: id}]\n", "");
        let log = changelog(&doc(OLD), &doc(&new));
        assert_eq!(log.breaking().count(), 1);
        assert!(log.refused_by(SchemaCompatibility::Backward).is_none());
        assert!(log.refused_by(SchemaCompatibility::Frozen).is_some());
    }

    #[test]
    fn reordering_is_not_a_change() {
        let new = "version: 1.0.0\nschema:\n  - name: refunds\n    properties: [{name: id}]\n  - name: orders\n    properties:\n      - {name: note, logicalType: string, required: true}\n      - {name: amount, logicalType: number}\n      - {name: id, logicalType: integer, required: true}\n";
        assert!(changelog(&doc(OLD), &doc(new)).changes.is_empty());
    }
}
