//! What to check, per schema object: from the signed ODCS contract when the
//! product has one (every object, its properties, `physicalName`s, primary key,
//! `logicalTypeOptions` and quality rules), else from `product.toml`'s schema (one
//! object that every data file is read as).

use serde_json::{Map, Value};

use mesh_protocol::manifest::{Contract, Field, LogicalType, NullValues};

use super::options::{unknown_keys, ValueOptions};
use super::rules::{self, scalar_text, Level, Metric, Rule};
use super::shape::{Shape, MAX_DEPTH};

/// The custom property (contract, or schema object) that gives null markers, e.g.
/// `{property: meshNullValues, value: ["NA", ""]}`.
pub const CUSTOM_NULL_VALUES: &str = "meshNullValues";

/// The custom property (contract, or schema object) that declares the CSV
/// delimiter, e.g. `{property: meshDelimiter, value: ";"}` (`tab` for a tab).
pub const CUSTOM_DELIMITER: &str = "meshDelimiter";

/// What the data files are checked against.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) objects: Vec<ObjectPlan>,
    /// Null markers per file (the product's, or the contract's `meshNullValues`).
    pub(crate) nulls: NullValues,
    /// The CSV delimiter the contract declares (its `meshDelimiter`, or a
    /// `format: csv` server's `delimiter`); else each file's header tells.
    pub(crate) delimiter: Option<char>,
    /// Problems of the contract found while reading it (field path first); the
    /// checks they concern are left out or listed as not evaluated.
    pub lint: Vec<String>,
}

/// One schema object: a table, read from the files named after it.
#[derive(Debug, Clone)]
pub(crate) struct ObjectPlan {
    /// `name` (empty for `product.toml`'s schema, which every file is read as).
    pub(crate) name: String,
    pub(crate) physical_name: Option<String>,
    pub(crate) columns: Vec<ColumnPlan>,
    /// Object-level rules.
    pub(crate) rules: Vec<Rule>,
    /// The object's own null markers (`meshNullValues`), replacing the product's.
    pub(crate) nulls: Option<Vec<String>>,
    /// The object's own CSV delimiter (`meshDelimiter`), replacing the contract's.
    pub(crate) delimiter: Option<char>,
    /// Indexes of the primary-key columns, by `primaryKeyPosition`.
    pub(crate) primary_key: Vec<usize>,
}

/// One property: a column of a CSV or Parquet file, a key of a JSON line.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    /// The property's `name`.
    pub(crate) name: String,
    /// The name in the files: `physicalName` where given, else `name`.
    pub(crate) column: String,
    pub(crate) logical_type: LogicalType,
    pub(crate) required: bool,
    pub(crate) unique: bool,
    pub(crate) options: ValueOptions,
    pub(crate) rules: Vec<Rule>,
    /// Values the property's `missingValues` rules call missing: nulls, not type
    /// errors.
    pub(crate) missing: Vec<String>,
    /// The keys from the record to the value: `[column]`, or for a nested
    /// property (an object's field) its parents' columns first.
    pub(crate) path: Vec<String>,
    /// What the property holds, nested fields and items included (checked
    /// against a Parquet column's type).
    pub(crate) shape: Shape,
}

impl ColumnPlan {
    /// Whether this is a nested property (a field of an object property).
    pub(crate) fn nested(&self) -> bool {
        self.path.len() > 1
    }
}

/// Adds the nested properties of `p` (an object property) under `parent`.
fn nested(
    p: &Map<String, Value>,
    parent: &ColumnPlan,
    at: &str,
    depth: usize,
    out: &mut Vec<ColumnPlan>,
    lint: &mut Vec<String>,
) {
    let Some(props) = p.get("properties").and_then(Value::as_array) else {
        return;
    };
    if depth >= MAX_DEPTH {
        lint.push(format!(
            "{at}.properties: nested more than {MAX_DEPTH} deep; the deeper ones are not checked"
        ));
        return;
    }
    for (i, child) in props.iter().enumerate() {
        let cat = format!("{at}.properties[{i}]");
        let Some(child) = child.as_object() else {
            continue;
        };
        let Some(mut c) = column(child, &cat, lint) else {
            continue;
        };
        c.name = format!("{}.{}", parent.name, c.name);
        let mut path = parent.path.clone();
        path.push(c.column.clone());
        c.column = path.join(".");
        c.path = path;
        let parent = c.clone();
        out.push(c);
        nested(child, &parent, &cat, depth + 1, out, lint);
    }
}

impl Plan {
    /// The plan of a product: its contract's objects, or `schema` as one object.
    pub fn new(schema: &[Field], nulls: &NullValues, contract: Option<&Contract>) -> Plan {
        match contract.and_then(|c| serde_json::from_str::<Value>(&c.document).ok()) {
            Some(Value::Object(doc)) => Plan::from_contract(&doc, nulls),
            _ => Plan::from_schema(schema, nulls),
        }
    }

    /// Each object's name (its `physicalName` after a slash when it has one).
    pub fn object_names(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|o| match &o.physical_name {
                Some(p) if p != &o.name => format!("{}/{p}", o.name),
                _ => o.name.clone(),
            })
            .collect()
    }

    /// `product.toml`'s schema as one object.
    pub fn from_schema(schema: &[Field], nulls: &NullValues) -> Plan {
        let columns: Vec<ColumnPlan> = schema
            .iter()
            .map(|f| ColumnPlan {
                name: f.name.clone(),
                column: f.name.clone(),
                logical_type: f.logical_type,
                required: f.required,
                unique: f.unique,
                options: ValueOptions::default(),
                rules: Vec::new(),
                missing: Vec::new(),
                path: vec![f.name.clone()],
                shape: Shape::flat(f.logical_type),
            })
            .collect();
        let objects = if columns.is_empty() {
            Vec::new()
        } else {
            vec![ObjectPlan {
                name: String::new(),
                physical_name: None,
                columns,
                rules: Vec::new(),
                nulls: None,
                delimiter: None,
                primary_key: Vec::new(),
            }]
        };
        Plan {
            objects,
            nulls: nulls.clone(),
            delimiter: None,
            lint: Vec::new(),
        }
    }

    /// Every schema object of an ODCS contract (as JSON). `nulls` are the
    /// product's markers; the contract's `meshNullValues` replaces their default.
    pub fn from_contract(doc: &Map<String, Value>, nulls: &NullValues) -> Plan {
        let mut lint = Vec::new();
        let mut nulls = nulls.clone();
        if let Some(markers) =
            custom_nulls(doc.get("customProperties"), "customProperties", &mut lint)
        {
            nulls.default = markers;
        }
        let mut objects = Vec::new();
        match doc.get("schema") {
            None => {}
            Some(Value::Array(list)) => {
                for (i, o) in list.iter().enumerate() {
                    let at = format!("schema[{i}]");
                    match o.as_object() {
                        Some(o) => objects.push(object(o, &at, &mut lint)),
                        None => lint.push(format!("{at}: must be a mapping")),
                    }
                }
            }
            Some(_) => lint.push("schema: must be a list of schema objects".into()),
        }
        let delimiter = contract_delimiter(doc, &mut lint);
        Plan {
            objects,
            nulls,
            delimiter,
            lint,
        }
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

fn custom_nulls(v: Option<&Value>, at: &str, lint: &mut Vec<String>) -> Option<Vec<String>> {
    let list = v?.as_array()?;
    let (i, p) = list
        .iter()
        .enumerate()
        .find(|(_, p)| p.get("property").and_then(Value::as_str) == Some(CUSTOM_NULL_VALUES))?;
    let values = p.get("value").and_then(Value::as_array);
    let markers: Option<Vec<String>> = values.map(|a| a.iter().filter_map(scalar_text).collect());
    if markers.is_none() {
        lint.push(format!(
            "{at}[{i}] ({CUSTOM_NULL_VALUES}): value must be a list of markers, e.g. [\"NA\", \"\"]"
        ));
    }
    markers
}

/// The contract's CSV delimiter: its `meshDelimiter`, else the one delimiter
/// its `format: csv` servers declare.
fn contract_delimiter(doc: &Map<String, Value>, lint: &mut Vec<String>) -> Option<char> {
    if let Some(d) = custom_delimiter(doc.get("customProperties"), "customProperties", lint) {
        return Some(d);
    }
    let mut found: Option<(char, String)> = None;
    for (i, server) in doc
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let csv = server
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(|f| f.eq_ignore_ascii_case("csv"));
        let Some(d) = server.get("delimiter").filter(|_| csv) else {
            continue;
        };
        let at = format!("servers[{i}].delimiter");
        let Some(d) = delimiter_of(d, &at, lint) else {
            continue;
        };
        match &found {
            Some((other, first)) if *other != d => lint.push(format!(
                "{at}: {d:?} differs from {first}'s {other:?}; the CSV files are read with the first"
            )),
            Some(_) => {}
            None => found = Some((d, at)),
        }
    }
    found.map(|(d, _)| d)
}

fn custom_delimiter(v: Option<&Value>, at: &str, lint: &mut Vec<String>) -> Option<char> {
    let list = v?.as_array()?;
    let (i, p) = list
        .iter()
        .enumerate()
        .find(|(_, p)| p.get("property").and_then(Value::as_str) == Some(CUSTOM_DELIMITER))?;
    delimiter_of(
        p.get("value")?,
        &format!("{at}[{i}] ({CUSTOM_DELIMITER})"),
        lint,
    )
}

/// One character that can separate CSV fields (`tab` names a tab).
fn delimiter_of(v: &Value, at: &str, lint: &mut Vec<String>) -> Option<char> {
    let text = v.as_str().unwrap_or_default();
    let d = match text {
        "tab" | "\\t" => Some('\t'),
        _ => {
            let mut chars = text.chars();
            chars.next().filter(|_| chars.next().is_none())
        }
    };
    match d {
        Some(c) if !matches!(c, '"' | '\n' | '\r') => Some(c),
        _ => {
            lint.push(format!(
                "{at}: {v} is not a CSV delimiter; give one character such as \",\", \";\", \"|\" or `tab`"
            ));
            None
        }
    }
}

fn text_at(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn object(o: &Map<String, Value>, at: &str, lint: &mut Vec<String>) -> ObjectPlan {
    let name = text_at(o, "name").unwrap_or_else(|| {
        lint.push(format!(
            "{at}.name: missing (files are matched to objects by name)"
        ));
        String::new()
    });
    let mut columns = Vec::new();
    let mut keyed = Vec::new();
    match o.get("properties") {
        None => {}
        Some(Value::Array(props)) => {
            for (i, p) in props.iter().enumerate() {
                let pat = format!("{at}.properties[{i}]");
                let Some(p) = p.as_object() else {
                    lint.push(format!("{pat}: must be a mapping"));
                    continue;
                };
                let Some(c) = column(p, &pat, lint) else {
                    continue;
                };
                let mut children = Vec::new();
                nested(p, &c, &pat, 1, &mut children, lint);
                if p.get("primaryKey").and_then(Value::as_bool) == Some(true) {
                    let pos = p
                        .get("primaryKeyPosition")
                        .and_then(Value::as_i64)
                        .unwrap_or(-1);
                    keyed.push((pos, columns.len()));
                }
                columns.push(c);
                columns.extend(children);
            }
        }
        Some(_) => lint.push(format!("{at}.properties: must be a list")),
    }
    // Positions first, in order; keys without one after them, as listed.
    keyed.sort_by_key(|(pos, i)| (*pos < 1, *pos, *i));
    let mut rules = rules::read(o.get("quality"), at, Level::Object, lint);
    for r in &mut rules {
        if let Ok((Metric::Duplicates { columns: cols }, _, _)) = &r.check {
            let missing: Vec<&String> = cols
                .iter()
                .filter(|c| !columns.iter().any(|p| &p.name == *c))
                .collect();
            if !missing.is_empty() {
                let why = format!(
                    "arguments.properties names {} not in the object's properties",
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                lint.push(format!("{}: {why}", r.path));
                r.check = Err(why);
            }
        }
    }
    ObjectPlan {
        physical_name: text_at(o, "physicalName"),
        nulls: custom_nulls(
            o.get("customProperties"),
            &format!("{at}.customProperties"),
            lint,
        ),
        delimiter: custom_delimiter(
            o.get("customProperties"),
            &format!("{at}.customProperties"),
            lint,
        ),
        name,
        columns,
        rules,
        primary_key: keyed.into_iter().map(|(_, i)| i).collect(),
    }
}

fn column(p: &Map<String, Value>, at: &str, lint: &mut Vec<String>) -> Option<ColumnPlan> {
    let Some(name) = text_at(p, "name") else {
        lint.push(format!("{at}.name: missing"));
        return None;
    };
    let logical_type = match text_at(p, "logicalType") {
        None => LogicalType::String,
        Some(t) => match LogicalType::from_name(&t) {
            Some(t) => t,
            None => {
                lint.push(format!(
                    "{at}.logicalType: {t:?} is not one of {}",
                    LogicalType::names()
                ));
                return None;
            }
        },
    };
    if let Some(m) = p.get("logicalTypeOptions").and_then(Value::as_object) {
        for k in unknown_keys(m, logical_type) {
            lint.push(format!(
                "{at}.logicalTypeOptions.{k}: not an option of logicalType {}",
                logical_type.name()
            ));
        }
    }
    let options = ValueOptions::read(p.get("logicalTypeOptions"), logical_type, at, lint);
    let rules = rules::read(p.get("quality"), at, Level::Property, lint);
    let missing = rules
        .iter()
        .filter_map(|r| match r.metric() {
            Some(Metric::Missing { values, .. }) => Some(values.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let primary = p.get("primaryKey").and_then(Value::as_bool) == Some(true);
    let column = text_at(p, "physicalName").unwrap_or_else(|| name.clone());
    Some(ColumnPlan {
        path: vec![column.clone()],
        column,
        name,
        logical_type,
        required: p.get("required").and_then(Value::as_bool) == Some(true) || primary,
        unique: p.get("unique").and_then(Value::as_bool) == Some(true),
        options,
        rules,
        missing,
        shape: Shape::of(p, 0),
    })
}
