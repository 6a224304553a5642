//! The measurements of one schema object over its files: each value checked
//! against its property (type, required, `logicalTypeOptions`, unique), and the
//! counts its quality rules compare (nulls, missing, invalid, duplicates, rows).

use std::borrow::Cow;
use std::hash::{Hash as _, Hasher};

use mesh_protocol::manifest::{FieldQuality, LogicalType, RuleOutcome, RuleState};

use super::plan::{ColumnPlan, ObjectPlan};
use super::report::{Sink, DISTINCT_CAP, UNIQUE_CAP};
use super::rules::{unmeasured, Metric};
use super::sql::SqlTable;
use super::values::{json_fits, shown, text_fits, type_name};

/// One value as a reader found it.
#[derive(Debug)]
pub(crate) enum Cell<'a> {
    /// The column is not in this file.
    Absent,
    /// A null in the file's own terms (a JSON `null` or missing key, a Parquet null).
    Null,
    /// Text to read as the property's type (a CSV cell, a JSON string); a null
    /// marker is a null.
    Text(&'a str),
    /// A JSON string: a null marker is a null; else it must be a string, date,
    /// timestamp or time.
    JsonString(&'a str),
    /// A JSON value that is not a string.
    Json(&'a serde_json::Value),
    /// A value whose type the reader already checked (Parquet), as text.
    Typed(String),
}

struct Column {
    nulls: u64,
    /// Rows where the column was in the file.
    present: u64,
    seen: Hashes,
    /// More values than the set keeps: the distinct count is unknown.
    distinct_overflow: bool,
    /// Repeats found before the set filled.
    duplicates: u64,
    /// Duplicates were counted only on the first values.
    duplicates_capped: bool,
    /// Per property rule, the rows it counted.
    counts: Vec<u64>,
    /// Per property rule, the first value it counted and where.
    firsts: Vec<Option<String>>,
    /// Whether repeats matter (unique, or a duplicateValues rule).
    track_repeats: bool,
}

/// A cell's value as the file has it (`None` inside: a null in the file's own
/// terms); `None`: the column is not in this file.
fn raw_text<'c>(cell: &'c Cell<'_>) -> Option<Option<Cow<'c, str>>> {
    match cell {
        Cell::Absent => None,
        Cell::Null => Some(None),
        Cell::Text(s) | Cell::JsonString(s) => Some(Some(Cow::Borrowed(*s))),
        Cell::Json(v) => Some(Some(Cow::Owned(v.to_string()))),
        Cell::Typed(s) => Some(Some(Cow::Borrowed(s))),
    }
}

/// A non-null cell's value as text of the property's type, or what is wrong
/// with it.
fn typed_text<'c>(plan: &ColumnPlan, cell: &'c Cell<'_>) -> Result<Cow<'c, str>, String> {
    match cell {
        Cell::Text(s) | Cell::JsonString(s) => {
            let json = matches!(cell, Cell::JsonString(_));
            let fits = match &plan.options.format {
                Some((re, _)) if is_temporal(plan.logical_type) => re.is_match(s),
                _ if json
                    && !matches!(plan.logical_type, LogicalType::String)
                    && !is_temporal(plan.logical_type) =>
                {
                    false
                }
                _ => text_fits(plan.logical_type, s),
            };
            if fits {
                return Ok(Cow::Borrowed(*s));
            }
            let want = match &plan.options.format {
                Some((_, f)) if is_temporal(plan.logical_type) => {
                    let kind = match plan.logical_type {
                        LogicalType::Date => "a date",
                        LogicalType::Time => "a time",
                        _ => "a timestamp",
                    };
                    format!("{kind} in the format {f:?}")
                }
                _ => type_name(plan.logical_type).to_owned(),
            };
            Err(format!("{} is not {want}{}", shown(s), marker_hint(s)))
        }
        Cell::Json(v) => json_fits(plan.logical_type, v).map(Cow::Owned),
        Cell::Typed(s) => Ok(Cow::Borrowed(s)),
        // Nulls and absent columns never reach the type check.
        Cell::Absent | Cell::Null => Err("has no value".into()),
    }
}

impl Column {
    /// `missingValues` rules count a value, or a null they list.
    fn count_missing(&mut self, plan: &ColumnPlan, raw: Option<&str>, null: bool) {
        for (r, rule) in plan.rules.iter().enumerate() {
            let hit = match rule.metric() {
                Some(Metric::Missing { values, null: n }) => match raw {
                    None => *n,
                    Some(t) => values.iter().any(|v| v == t) || (*n && null),
                },
                _ => false,
            };
            if hit {
                self.counts[r] += 1;
            }
        }
    }

    /// `invalidValues` rules count a value outside their list or pattern, the
    /// first one named with its row.
    fn count_invalid(&mut self, plan: &ColumnPlan, text: &str, file: &str, row: u64) {
        for (r, rule) in plan.rules.iter().enumerate() {
            if let Some(Metric::Invalid { valid, pattern }) = rule.metric() {
                let in_list = valid.as_ref().is_none_or(|v| v.contains(text));
                let matches = pattern.as_ref().is_none_or(|re| re.is_match(text));
                if !(in_list && matches) {
                    self.counts[r] += 1;
                    if self.firsts[r].is_none() {
                        self.firsts[r] = Some(format!("{} at {file} row {row}", shown(text)));
                    }
                }
            }
        }
    }

    /// Distinct values, and repeats (a violation of `unique`), within the caps.
    fn count_repeat(
        &mut self,
        object: &ObjectPlan,
        plan: &ColumnPlan,
        sink: &mut Sink,
        file: &str,
        row: u64,
        text: &str,
    ) {
        let cap = if self.track_repeats {
            UNIQUE_CAP
        } else {
            DISTINCT_CAP
        };
        if self.seen.len() < cap {
            if !self.seen.insert(hash_of(text)) {
                self.duplicates += 1;
                if plan.unique {
                    sink.violate(
                        file,
                        row,
                        &plan.name,
                        format!(
                            "{} repeats an earlier value but must be unique",
                            shown(text)
                        ),
                    );
                }
            }
            return;
        }
        if self.track_repeats && !self.duplicates_capped {
            sink.note(format!(
                "{}: repeats of `{}` checked on the first {UNIQUE_CAP} values only",
                object_label(object),
                plan.name
            ));
            self.duplicates_capped = true;
        }
        self.distinct_overflow = true;
    }
}

/// Rows whose combination of columns repeats (a composite primary key, an
/// object-level duplicateValues rule).
struct Combination {
    columns: Vec<usize>,
    seen: Hashes,
    duplicates: u64,
    capped: bool,
}

/// The state of one object while its files are read.
pub(crate) struct ObjectState<'p> {
    pub(crate) plan: &'p ObjectPlan,
    pub(crate) rows: u64,
    pub(crate) files: u32,
    columns: Vec<Column>,
    /// The primary key first (when it has two or more columns... or one), then
    /// one per object-level duplicateValues rule, in rule order.
    combos: Vec<Combination>,
    key_index: Option<usize>,
    /// The rows for the SQL engine, when a `sql` rule needs them (or why they are not).
    sql: Option<Result<SqlTable, String>>,
}

/// Values seen, as their 64-bit hashes (already hashes: the set does not hash
/// them again).
type Hashes = std::collections::HashSet<u64, nohash_hasher::BuildNoHashHasher<u64>>;

/// A value's 64-bit hash (XXH3: a few bytes a cycle; SipHash was a tenth of the
/// checker's time).
fn hash_of(v: &str) -> u64 {
    twox_hash::XxHash3_64::oneshot(v.as_bytes())
}

impl<'p> ObjectState<'p> {
    pub(crate) fn new(plan: &'p ObjectPlan) -> Self {
        let columns = plan
            .columns
            .iter()
            .map(|c| Column {
                nulls: 0,
                present: 0,
                seen: Hashes::default(),
                distinct_overflow: false,
                duplicates: 0,
                duplicates_capped: false,
                counts: vec![0; c.rules.len()],
                firsts: vec![None; c.rules.len()],
                track_repeats: c.unique
                    || c.rules
                        .iter()
                        .any(|r| matches!(r.metric(), Some(Metric::Duplicates { .. }))),
            })
            .collect();
        let mut combos = Vec::new();
        let mut key_index = None;
        if !plan.primary_key.is_empty() {
            key_index = Some(0);
            combos.push(Combination {
                columns: plan.primary_key.clone(),
                seen: Hashes::default(),
                duplicates: 0,
                capped: false,
            });
        }
        for r in &plan.rules {
            if let Some(Metric::Duplicates { columns }) = r.metric() {
                let idx = columns
                    .iter()
                    .filter_map(|c| plan.columns.iter().position(|p| &p.name == c))
                    .collect();
                combos.push(Combination {
                    columns: idx,
                    seen: Hashes::default(),
                    duplicates: 0,
                    capped: false,
                });
            }
        }
        let wants_sql = plan
            .rules
            .iter()
            .chain(plan.columns.iter().flat_map(|c| &c.rules))
            .any(|r| matches!(r.metric(), Some(Metric::Sql { .. })));
        ObjectState {
            plan,
            rows: 0,
            files: 0,
            columns,
            combos,
            key_index,
            sql: wants_sql.then(|| SqlTable::new(plan)),
        }
    }

    /// Checks one row; `cells` are in the plan's column order, `markers` the
    /// file's null markers.
    pub(crate) fn row(
        &mut self,
        sink: &mut Sink,
        file: &str,
        row: u64,
        cells: &[Cell<'_>],
        markers: &[String],
    ) {
        self.rows += 1;
        let mut texts: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(cells.len());
        for (i, cell) in cells.iter().enumerate() {
            texts.push(self.value(sink, file, row, i, cell, markers));
        }
        if let Some(Ok(table)) = &mut self.sql {
            table.row(&texts);
        }
        let key_index = self.key_index;
        for (k, combo) in self.combos.iter_mut().enumerate() {
            let mut h = twox_hash::XxHash3_64::default();
            for &c in &combo.columns {
                match texts.get(c).and_then(Option::as_ref) {
                    Some(t) => (1u8, t).hash(&mut h),
                    None => 0u8.hash(&mut h),
                }
            }
            let h = h.finish();
            if combo.seen.len() >= UNIQUE_CAP {
                combo.capped = true;
                continue;
            }
            if !combo.seen.insert(h) {
                combo.duplicates += 1;
                if Some(k) == key_index {
                    let names: Vec<&str> = combo
                        .columns
                        .iter()
                        .map(|&c| self.plan.columns[c].name.as_str())
                        .collect();
                    let values: Vec<String> = combo
                        .columns
                        .iter()
                        .map(|&c| {
                            texts
                                .get(c)
                                .and_then(Option::as_deref)
                                .map_or("null".into(), shown)
                        })
                        .collect();
                    sink.violate(
                        file,
                        row,
                        &names.join("+"),
                        format!("primary key ({}) repeats an earlier row", values.join(", ")),
                    );
                }
            }
        }
    }

    /// Checks one value; its text when it is a non-null value of the right type.
    fn value<'c>(
        &mut self,
        sink: &mut Sink,
        file: &str,
        row: u64,
        i: usize,
        cell: &'c Cell<'_>,
        markers: &[String],
    ) -> Option<Cow<'c, str>> {
        let object: &'p ObjectPlan = self.plan;
        let plan: &ColumnPlan = &object.columns[i];
        let st = &mut self.columns[i];
        // The value as the file has it, before any marker is read as null.
        let raw = raw_text(cell)?;
        st.present += 1;
        let null = match cell {
            Cell::Null => true,
            Cell::Text(s) | Cell::JsonString(s) => {
                markers.iter().any(|m| m == s) || plan.missing.iter().any(|m| m == s)
            }
            _ => false,
        };
        st.count_missing(plan, raw.as_deref(), null);
        if null {
            st.nulls += 1;
            if plan.required {
                let why = if object.primary_key.contains(&i) {
                    "is part of the primary key but empty"
                } else {
                    "is required but empty"
                };
                sink.violate(file, row, &plan.name, why.into());
            }
            return None;
        }
        // The type, then the options.
        let text = match typed_text(plan, cell) {
            Ok(text) => text,
            Err(problem) => {
                sink.violate(file, row, &plan.name, problem);
                return None;
            }
        };
        if !plan.options.is_empty() {
            if let Some(problem) = plan.options.problem(&text) {
                sink.violate(file, row, &plan.name, problem);
            }
        }
        st.count_invalid(plan, &text, file, row);
        st.count_repeat(object, plan, sink, file, row, &text);
        Some(text)
    }

    /// The metrics of each column, for the manifest.
    pub(crate) fn fields(&self) -> Vec<FieldQuality> {
        self.plan
            .columns
            .iter()
            .zip(&self.columns)
            .map(|(p, st)| FieldQuality {
                name: p.name.clone(),
                nulls: st.nulls,
                distinct: (!st.distinct_overflow).then_some(st.seen.len() as u64),
            })
            .collect()
    }

    /// Every rule of the object and its properties, measured.
    pub(crate) fn outcomes(&mut self) -> Vec<RuleOutcome> {
        let object = object_label(self.plan);
        let mut out = Vec::new();
        if self.files == 0 {
            let why = format!(
                "no data file maps to object `{object}` (files are matched by name or physicalName)"
            );
            for r in &self.plan.rules {
                out.push(unmeasured(r, &object, "", &why));
            }
            for c in &self.plan.columns {
                for r in &c.rules {
                    out.push(unmeasured(r, &object, &c.name, &why));
                }
            }
            return out;
        }
        let mut combo = self.key_index.map_or(0, |_| 1);
        let plan = self.plan;
        for r in &plan.rules {
            if let Some(Metric::Sql { query }) = r.metric() {
                let v = self.sql_value(query, None);
                out.push(r.outcome_value(&object, "", v));
                continue;
            }
            let measured = match r.metric() {
                Some(Metric::RowCount) => Ok(self.rows),
                Some(Metric::Duplicates { .. }) => {
                    let c = &self.combos[combo];
                    combo += 1;
                    if c.capped {
                        Err(format!(
                            "more than {UNIQUE_CAP} rows: repeats counted on the first ones only"
                        ))
                    } else {
                        Ok(c.duplicates)
                    }
                }
                _ => Err(String::new()),
            };
            out.push(r.outcome(&object, "", measured, self.rows));
        }
        for (ci, c) in plan.columns.iter().enumerate() {
            for (i, r) in c.rules.iter().enumerate() {
                if let Some(Metric::Sql { query }) = r.metric() {
                    let v = self.sql_value(query, Some(&c.name));
                    out.push(r.outcome_value(&object, &c.name, v));
                    continue;
                }
                let st = &self.columns[ci];
                let measured = if st.present == 0 {
                    Err(format!(
                        "column `{}` is in none of the object's files",
                        c.column
                    ))
                } else {
                    match r.metric() {
                        Some(Metric::Nulls) => Ok(st.nulls),
                        Some(Metric::Missing { .. } | Metric::Invalid { .. }) => Ok(st.counts[i]),
                        Some(Metric::Duplicates { .. }) if st.duplicates_capped => Err(format!(
                            "more than {UNIQUE_CAP} values: repeats counted on the first ones only"
                        )),
                        Some(Metric::Duplicates { .. }) => Ok(st.duplicates),
                        Some(Metric::RowCount) => Ok(self.rows),
                        Some(Metric::Sql { .. }) | None => Err(String::new()),
                    }
                };
                let mut outcome = r.outcome(&object, &c.name, measured, self.rows);
                // A failure names the first value it counted.
                if let (RuleState::Failed, Some(first)) = (outcome.state, &st.firsts[i]) {
                    if outcome.note.is_empty() {
                        outcome.note = format!("first: {first}");
                    }
                }
                out.push(outcome);
            }
        }
        out
    }
}

impl ObjectState<'_> {
    fn sql_value(&mut self, query: &str, property: Option<&str>) -> Result<f64, String> {
        let plan = self.plan;
        match &mut self.sql {
            Some(Ok(t)) => t.query(query, plan, property),
            Some(Err(why)) => Err(why.clone()),
            None => Err("no SQL table was built".into()),
        }
    }
}

fn is_temporal(t: LogicalType) -> bool {
    matches!(
        t,
        LogicalType::Date | LogicalType::Timestamp | LogicalType::Time
    )
}

/// Values that usually mark a missing value; one that is not declared as a null
/// marker gets a hint saying how to declare it.
const USUAL_MARKERS: [&str; 9] = [
    "NA", "N/A", "n/a", "NULL", "null", "None", "NaN", "nan", "-",
];

/// The hint for a value of the wrong type that looks like a null marker.
fn marker_hint(value: &str) -> String {
    if USUAL_MARKERS.contains(&value) {
        format!(
            " (if {value:?} marks a missing value, declare it: `null_values = [{value:?}]` in product.toml, or the contract's customProperty meshNullValues)"
        )
    } else {
        String::new()
    }
}

/// The object's name as messages show it.
pub(crate) fn object_label(o: &ObjectPlan) -> String {
    if o.name.is_empty() {
        "schema".into()
    } else {
        o.name.clone()
    }
}
