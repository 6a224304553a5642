//! A contract's quality rules (ODCS `quality`): what each measures and the bounds
//! the measurement must keep.
//!
//! Library metrics are measured in the same pass that checks the values:
//! `nullValues`, `missingValues`, `invalidValues` (`validValues`, `pattern`),
//! `duplicateValues` (of a property, or of several at object level) and `rowCount`,
//! in `rows` (the default) or `percent` of the object's rows. The v3.0 names
//! (`rule: duplicateCount`, `validValues`, `nullCheck`) are read as their v3.1
//! metrics. `sql` rules run in the SQL engine, DataFusion ([`super::sql`]); `custom`
//! and `text` rules are kept and listed as not evaluated.
//! Their bounds are in `bounds.rs`.

use std::collections::HashSet;

use regex::Regex;
use serde_json::{Map, Value};

use mesh_protocol::manifest::{RuleOutcome, RuleState};

pub(crate) use super::bounds::num;
pub use super::bounds::OPERATORS;
use super::bounds::{bounds, Bound};

/// The longest `sql` rule query accepted, in bytes.
pub(crate) const MAX_QUERY_BYTES: usize = 64 * 1024;

/// What a rule counts, per row of its object.
#[derive(Debug, Clone)]
pub(crate) enum Metric {
    /// Null values of the property.
    Nulls,
    /// Values in the list (`null` in the list counts nulls too).
    Missing { values: Vec<String>, null: bool },
    /// Non-null values outside `valid` or not matching `pattern`.
    Invalid {
        valid: Option<ValidValues>,
        pattern: Option<Regex>,
    },
    /// Rows whose value (or combination of the object's `columns`) repeats an
    /// earlier row's.
    Duplicates { columns: Vec<String> },
    /// Rows of the object.
    RowCount,
    /// The value a SQL query returns over the object's rows.
    Sql { query: String },
}

impl Metric {
    fn name(&self) -> &'static str {
        match self {
            Metric::Nulls => "nullValues",
            Metric::Missing { .. } => "missingValues",
            Metric::Invalid { .. } => "invalidValues",
            Metric::Duplicates { .. } => "duplicateValues",
            Metric::RowCount => "rowCount",
            Metric::Sql { .. } => "sql",
        }
    }
}

/// The values of a `validValues` list, looked up in constant time: a value is
/// valid when it equals one as text, or as a number (`1` and `1.0`).
#[derive(Debug, Clone)]
pub(crate) struct ValidValues {
    texts: HashSet<String>,
    /// The listed values that read as numbers, by their bits (`-0` as `0`; NaN,
    /// equal to no number, left out).
    numbers: HashSet<u64>,
}

impl ValidValues {
    pub(crate) fn new(listed: Vec<String>) -> Self {
        let numbers = listed
            .iter()
            .filter_map(|v| v.parse::<f64>().ok())
            .filter_map(number_key)
            .collect();
        ValidValues {
            texts: listed.into_iter().collect(),
            numbers,
        }
    }

    /// Whether `v` is one of the list's values.
    pub(crate) fn contains(&self, v: &str) -> bool {
        self.texts.contains(v)
            || (!self.numbers.is_empty()
                && v.parse::<f64>()
                    .ok()
                    .and_then(number_key)
                    .is_some_and(|k| self.numbers.contains(&k)))
    }

    /// How many values are listed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }
}

/// A number as a set key: equal numbers give equal keys.
fn number_key(n: f64) -> Option<u64> {
    if n.is_nan() {
        None
    } else if n == 0.0 {
        Some(0)
    } else {
        Some(n.to_bits())
    }
}

/// Rows or percent of the object's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Rows,
    Percent,
}

/// One rule of the contract.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// `schema[1].properties[0].quality[2]`.
    pub(crate) path: String,
    /// `id`, else `name`, else the metric.
    pub(crate) label: String,
    /// What is measured and its bounds, or why it is not run.
    pub(crate) check: Result<(Metric, Vec<Bound>, Unit), String>,
}

impl Rule {
    /// The outcome for `count` over `rows` (`None`: not measured, with the reason).
    pub(crate) fn outcome(
        &self,
        object: &str,
        property: &str,
        measured: Result<u64, String>,
        rows: u64,
    ) -> RuleOutcome {
        let mut out = RuleOutcome {
            path: self.path.clone(),
            rule: self.label.clone(),
            object: object.to_owned(),
            property: property.to_owned(),
            ..RuleOutcome::default()
        };
        let (metric, bounds, unit) = match &self.check {
            Ok(c) => c,
            Err(why) => {
                out.note = why.clone();
                return out;
            }
        };
        let unit_name = if *unit == Unit::Percent {
            " percent"
        } else {
            ""
        };
        out.expected = bounds
            .iter()
            .map(|b| format!("{} {}{unit_name}", metric.name(), b.describe()))
            .collect::<Vec<_>>()
            .join(" and ");
        let count = match measured {
            Ok(c) => c,
            Err(why) => {
                out.note = why;
                return out;
            }
        };
        let pct = if rows == 0 {
            0.0
        } else {
            count as f64 * 100.0 / rows as f64
        };
        let x = if *unit == Unit::Percent {
            pct
        } else {
            count as f64
        };
        let noun = if count == 1 { "row" } else { "rows" };
        out.measured = if matches!(metric, Metric::RowCount) {
            format!("{count} {noun}")
        } else {
            format!("{count} {noun} ({})", percent(count, pct))
        };
        out.state = if bounds.iter().all(|b| b.holds(x)) {
            RuleState::Passed
        } else {
            RuleState::Failed
        };
        out
    }

    /// The outcome of a rule whose measurement is a value (a SQL query's). A query
    /// that could not run fails its rule: a rule nobody could evaluate must not
    /// pass silently.
    pub(crate) fn outcome_value(
        &self,
        object: &str,
        property: &str,
        measured: Result<f64, String>,
    ) -> RuleOutcome {
        let mut out = self.outcome(object, property, Err(String::new()), 0);
        match measured {
            Err(why) => {
                out.state = RuleState::Failed;
                out.note = format!("could not run: {why}");
            }
            Ok(v) => {
                out.measured = num(v);
                let holds = self
                    .check
                    .as_ref()
                    .is_ok_and(|(_, bounds, _)| bounds.iter().all(|b| b.holds(v)));
                out.state = if holds {
                    RuleState::Passed
                } else {
                    RuleState::Failed
                };
            }
        }
        out
    }

    /// Whether the metric is counted per property value.
    pub(crate) fn metric(&self) -> Option<&Metric> {
        self.check.as_ref().ok().map(|(m, _, _)| m)
    }
}

/// A share for people: two decimals, but never `0%` for something that is there
/// (1 of 336,776 rows is `<0.01%`) nor `100%` for something short of all.
fn percent(count: u64, pct: f64) -> String {
    if count > 0 && pct < 0.005 {
        return "<0.01%".to_string();
    }
    if pct < 100.0 && pct > 99.995 {
        return ">99.99%".to_string();
    }
    format!("{}%", round2(pct))
}

fn round2(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    num(r)
}

/// The level a rule is written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Object,
    Property,
}

/// Reads the rules of a `quality` list at `path`; problems that make a rule
/// unusable are the rule's reason not to run, and are also pushed to `lint`.
pub(crate) fn read(
    v: Option<&Value>,
    path: &str,
    level: Level,
    lint: &mut Vec<String>,
) -> Vec<Rule> {
    let Some(list) = v else { return Vec::new() };
    let Some(list) = list.as_array() else {
        lint.push(format!("{path}.quality: must be a list of rules"));
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let at = format!("{path}.quality[{i}]");
            let rule = match r.as_object() {
                Some(r) => one(r, &at, level),
                None => Rule {
                    path: at.clone(),
                    label: "-".into(),
                    check: Err("not a mapping".into()),
                },
            };
            if let Err(why) = &rule.check {
                if !why.starts_with(NOT_RUN) {
                    lint.push(format!("{at}: {why}"));
                }
            }
            rule
        })
        .collect()
}

/// The start of every reason for a rule mesh does not run by design (not a
/// problem of the contract).
const NOT_RUN: &str = "not evaluated:";

fn label(r: &Map<String, Value>, fallback: &str) -> String {
    ["id", "name"]
        .iter()
        .find_map(|k| r.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or(fallback)
        .to_owned()
}

fn one(r: &Map<String, Value>, at: &str, level: Level) -> Rule {
    let kind = r.get("type").and_then(Value::as_str).unwrap_or("library");
    let metric_name = r
        .get("metric")
        .or_else(|| r.get("rule"))
        .and_then(Value::as_str);
    let fallback = metric_name.unwrap_or(kind);
    let mut rule = Rule {
        path: at.to_owned(),
        label: label(r, fallback),
        check: Err(String::new()),
    };
    rule.check = match kind {
        "sql" => match r.get("query").and_then(Value::as_str) {
            None => Err("a sql rule needs `query`".into()),
            Some(q) if q.len() > MAX_QUERY_BYTES => {
                Err(format!("query is longer than {MAX_QUERY_BYTES} bytes"))
            }
            Some(q) => bounds(r).map(|b| {
                (
                    Metric::Sql {
                        query: q.to_owned(),
                    },
                    b,
                    Unit::Rows,
                )
            }),
        },
        "custom" => {
            let engine = r.get("engine").and_then(Value::as_str).unwrap_or("?");
            Err(format!("{NOT_RUN} a `custom` rule for engine {engine}"))
        }
        "text" => Err(format!("{NOT_RUN} a `text` rule (for people)")),
        "library" => match metric_name {
            None => Err("a library rule needs `metric` (nullValues, missingValues, invalidValues, duplicateValues, rowCount)".into()),
            Some(m) => library(r, m, level),
        },
        other => Err(format!(
            "type {other:?} is not one of library, sql, custom, text"
        )),
    };
    rule
}

/// An argument, in `arguments` (v3.1) or beside the operator (v3.0).
fn argument<'a>(r: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    r.get("arguments")
        .and_then(Value::as_object)
        .and_then(|a| a.get(key))
        .or_else(|| r.get(key))
}

/// A scalar as the text a data file would hold.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn library(
    r: &Map<String, Value>,
    metric: &str,
    level: Level,
) -> Result<(Metric, Vec<Bound>, Unit), String> {
    let metric = match (metric, level) {
        ("nullValues" | "nullCheck", Level::Property) => Metric::Nulls,
        ("missingValues", Level::Property) => {
            let list = argument(r, "missingValues")
                .and_then(Value::as_array)
                .ok_or("missingValues needs `arguments.missingValues`, the list of values that mean missing (e.g. [null, '', 'NA'])")?;
            let mut values = Vec::new();
            let mut null = false;
            for v in list {
                match v {
                    Value::Null => null = true,
                    v => values.push(scalar_text(v).ok_or("missingValues: each entry must be a scalar or null")?),
                }
            }
            Metric::Missing { values, null }
        }
        ("invalidValues" | "validValues", Level::Property) => {
            let valid = match argument(r, "validValues") {
                None => None,
                // A null in the list is allowed (nulls are never counted invalid).
                Some(Value::Array(a)) => Some(ValidValues::new(
                    a.iter()
                        .filter(|v| !v.is_null())
                        .map(|v| scalar_text(v).ok_or("validValues: each entry must be a scalar or null"))
                        .collect::<Result<Vec<_>, _>>()?,
                )),
                Some(_) => return Err("validValues must be a list".into()),
            };
            let pattern = match argument(r, "pattern") {
                None => None,
                Some(Value::String(p)) => Some(compile(p)?),
                Some(_) => return Err("pattern must be a string (a regular expression)".into()),
            };
            if valid.is_none() && pattern.is_none() {
                return Err("invalidValues needs `arguments.validValues` or `arguments.pattern`".into());
            }
            Metric::Invalid { valid, pattern }
        }
        ("duplicateValues" | "duplicateCount", Level::Property) => Metric::Duplicates {
            columns: Vec::new(),
        },
        ("duplicateValues" | "duplicateCount", Level::Object) => {
            let cols = argument(r, "properties")
                .and_then(Value::as_array)
                .ok_or("an object-level duplicateValues needs `arguments.properties`, the properties whose combination must not repeat")?;
            let columns = cols
                .iter()
                .map(|c| c.as_str().map(str::to_owned).ok_or("properties: each entry must be a property name"))
                .collect::<Result<Vec<_>, _>>()?;
            if columns.is_empty() {
                return Err("duplicateValues: `arguments.properties` is empty".into());
            }
            Metric::Duplicates { columns }
        }
        ("rowCount", Level::Object) => Metric::RowCount,
        ("rowCount", Level::Property) => {
            return Err("rowCount is an object-level metric: move it to the schema object's `quality`".into())
        }
        ("nullValues" | "missingValues" | "invalidValues", Level::Object) => {
            return Err(format!("{metric} is a property-level metric: move it to a property's `quality`"))
        }
        (other, _) => {
            return Err(format!(
                "metric {other:?} is not one of nullValues, missingValues, invalidValues, duplicateValues, rowCount"
            ))
        }
    };
    let bounds = bounds(r)?;
    let unit = match r.get("unit").and_then(Value::as_str) {
        None | Some("rows") => Unit::Rows,
        Some("percent" | "%") => Unit::Percent,
        Some(u) => return Err(format!("unit {u:?}: mesh measures `rows` or `percent`")),
    };
    if unit == Unit::Percent && matches!(metric, Metric::RowCount) {
        return Err("rowCount is counted in rows, not percent".into());
    }
    Ok((metric, bounds, unit))
}

/// The longest pattern compiled, and the compiled program's size limit: a
/// contract cannot make a node build an unbounded automaton.
const MAX_PATTERN_BYTES: usize = 4096;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A contract's regular expression (ECMA-262 in ODCS; the common subset compiles
/// here, look-around and back-references do not).
pub(crate) fn compile(p: &str) -> Result<Regex, String> {
    if p.len() > MAX_PATTERN_BYTES {
        return Err(format!("pattern is longer than {MAX_PATTERN_BYTES} bytes"));
    }
    regex::RegexBuilder::new(p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
            format!("pattern {p:?} does not compile ({first}); look-around and back-references are not supported")
        })
}

/// The outcome of a rule with no file to measure.
pub(crate) fn unmeasured(rule: &Rule, object: &str, property: &str, why: &str) -> RuleOutcome {
    rule.outcome(object, property, Err(why.to_owned()), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str, level: Level) -> Rule {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        let mut lint = Vec::new();
        read(Some(&Value::Array(vec![v])), "schema[0]", level, &mut lint).remove(0)
    }

    #[test]
    fn every_operator_bounds_the_measurement() {
        let cases = [
            ("mustBe: 3", 3.0, 2.0),
            ("mustNotBe: 3", 2.0, 3.0),
            ("mustBeGreaterThan: 3", 4.0, 3.0),
            ("mustBeGreaterOrEqualTo: 3", 3.0, 2.0),
            ("mustBeLessThan: 3", 2.0, 3.0),
            ("mustBeLessOrEqualTo: 3", 3.0, 4.0),
            ("mustBeBetween: [2, 4]", 2.0, 5.0),
            ("mustNotBeBetween: [2, 4]", 5.0, 4.0),
        ];
        for (op, pass, fail) in cases {
            let r = rule(&format!("metric: rowCount\n{op}"), Level::Object);
            let (_, bounds, _) = r.check.as_ref().expect(op);
            assert!(
                bounds.iter().all(|b| b.holds(pass)),
                "{op} holds for {pass}"
            );
            assert!(
                !bounds.iter().all(|b| b.holds(fail)),
                "{op} fails for {fail}"
            );
        }
    }

    #[test]
    fn a_tiny_share_is_not_shown_as_none() {
        assert_eq!(percent(1, 100.0 / 336_776.0), "<0.01%");
        assert_eq!(percent(0, 0.0), "0%");
        assert_eq!(percent(9, 9.0), "9%");
        assert_eq!(percent(336_775, 100.0 * 336_775.0 / 336_776.0), ">99.99%");
        assert_eq!(percent(1, 100.0), "100%");
    }

    #[test]
    fn percent_is_of_the_objects_rows() {
        let r = rule(
            "metric: nullValues\nmustBeLessThan: 10\nunit: percent",
            Level::Property,
        );
        let pass = r.outcome("o", "p", Ok(9), 100);
        assert_eq!(pass.state, RuleState::Passed, "{pass:?}");
        assert_eq!(pass.measured, "9 rows (9%)");
        assert_eq!(pass.expected, "nullValues < 10 percent");
        let fail = r.outcome("o", "p", Ok(10), 100);
        assert_eq!(fail.state, RuleState::Failed);
    }

    #[test]
    fn rules_mesh_does_not_run_say_why_and_are_not_lint() {
        let mut lint = Vec::new();
        let v: Value = serde_yaml::from_str(
            "- {type: custom, engine: soda, implementation: x}\n- {type: text, description: fine}",
        )
        .expect("yaml");
        let rules = read(Some(&v), "schema[0]", Level::Object, &mut lint);
        assert!(lint.is_empty(), "{lint:?}");
        for r in &rules {
            let why = r.check.as_ref().expect_err("not run");
            assert!(why.starts_with(NOT_RUN), "{why}");
        }
    }

    #[test]
    fn broken_rules_are_lint_with_their_path() {
        let mut lint = Vec::new();
        let v: Value = serde_yaml::from_str(
            "- {metric: nullValues}\n- {metric: invalidValues, mustBe: 0}\n- {metric: invalidValues, mustBe: 0, arguments: {pattern: '(?<=a)b'}}\n- {metric: rowCount, mustBeBetween: [5, 1]}\n- {metric: sizeOf, mustBe: 1}",
        )
        .expect("yaml");
        let rules = read(
            Some(&v),
            "schema[2].properties[1]",
            Level::Property,
            &mut lint,
        );
        assert_eq!(rules.len(), 5);
        assert_eq!(lint.len(), 5, "{lint:#?}");
        assert!(lint[0].starts_with("schema[2].properties[1].quality[0]: the rule has no operator"));
        assert!(lint[2].contains("look-around"), "{}", lint[2]);
        assert!(
            lint[3].contains("rowCount is an object-level metric"),
            "{}",
            lint[3]
        );
        assert!(lint[4].contains("sizeOf"), "{}", lint[4]);
    }

    #[test]
    fn v3_0_rule_names_are_read() {
        let r = rule("rule: duplicateCount\nmustBe: 0", Level::Property);
        assert!(matches!(r.metric(), Some(Metric::Duplicates { .. })));
        let r = rule(
            "rule: validValues\nvalidValues: [a, b]\nmustBe: 0",
            Level::Property,
        );
        assert!(matches!(r.metric(), Some(Metric::Invalid { valid: Some(v), .. }) if v.len() == 2));
    }

    #[test]
    fn a_valid_value_is_equal_as_text_or_as_a_number() {
        let v = ValidValues::new(vec!["a".into(), "1".into(), "2.50".into(), "-0".into()]);
        for ok in ["a", "1", "1.0", "2.5", "2.50", "0", "-0.0", "1e0"] {
            assert!(v.contains(ok), "{ok}");
        }
        for bad in ["A", "b", "2", "NaN", "", " 1"] {
            assert!(!v.contains(bad), "{bad}");
        }
        let nan = ValidValues::new(vec!["NaN".into()]);
        assert!(nan.contains("NaN"), "listed as text");
        assert!(!nan.contains("nan"), "NaN equals no number");
    }
}
