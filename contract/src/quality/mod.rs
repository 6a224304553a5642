//! Data quality at publish: every CSV (`.csv`), JSON-lines (`.jsonl`, `.ndjson`),
//! JSON (`.json`: an array of records, or one) and Parquet (`.parquet`) file is read against the schema object it maps to
//! ([`Plan`]: the contract's objects, matched to files by `name` or
//! `physicalName`, or `product.toml`'s one schema). A declared property must be
//! present, each value must be of its logical type and keep its
//! `logicalTypeOptions`, a `required` one (or a primary-key column) must never be
//! null, a `unique` one (or the primary key) must never repeat. The same pass
//! measures what the contract's quality rules compare ([`rules`]) and what goes
//! into the manifest: rows, nulls per field and, where cheap, distinct values.
//!
//! Reading is streaming and bounded: one record at a time (at most
//! [`MAX_RECORD_BYTES`]; Parquet a batch of [`parquet::BATCH_ROWS`] rows),
//! distinct values tracked as 64-bit hashes up to [`DISTINCT_CAP`] per field
//! (repeats up to [`UNIQUE_CAP`]), and at most [`MAX_LISTED`] violations listed
//! (all are counted).
//!
//! Files: `plan.rs` (contract to checks), `rules.rs` (quality rules and their
//! outcomes; `bounds.rs` their operators), `options.rs` (`logicalTypeOptions`),
//! `object.rs` (one object's measurements), `text.rs`, `csv.rs` and `json.rs`
//! (CSV, JSON lines and JSON), `parquet/` (Parquet, its page headers checked
//! first), `shape.rs` (nested fields and items against Parquet types), `sql.rs` (`sql` rules in an embedded SQLite), `values.rs`
//! (types of text values).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use mesh_protocol::manifest::{Field, FieldQuality, ObjectQuality, Quality, QualityIssue};

mod bounds;
pub(crate) mod csv;
pub(crate) mod json;
mod object;
mod options;
pub mod parquet;
mod plan;
pub mod rules;
mod shape;
pub mod sql;
mod text;
pub(crate) mod values;

pub use mesh_protocol::manifest::{RuleOutcome, RuleState};
pub use plan::{Plan, CUSTOM_DELIMITER, CUSTOM_NULL_VALUES};

/// The longest CSV record or JSON line accepted.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Distinct values counted per field before the count is given up.
pub const DISTINCT_CAP: usize = 100_000;
/// Values per `unique` field checked for repeats; beyond this a warning says so.
pub const UNIQUE_CAP: usize = 5_000_000;
/// Violations listed (all are counted).
pub const MAX_LISTED: usize = 50;
/// Rows named per file and field in the summary.
pub const FIRST_ROWS: usize = 5;

/// One way the data breaks its contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// File, relative to the product directory.
    pub file: String,
    /// 1-based data row (the CSV header is row 0).
    pub row: u64,
    /// Schema field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.row == 0 {
            return write!(
                f,
                "{} {}, field `{}`: {}",
                self.file,
                head_of(&self.file),
                self.field,
                self.problem
            );
        }
        write!(
            f,
            "{} row {}, field `{}`: {}",
            self.file, self.row, self.field, self.problem
        )
    }
}

/// The outcome of checking a product's files.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Metrics for the manifest (`None` when no file was CSV, JSON lines or
    /// Parquet).
    pub quality: Option<Quality>,
    /// Every quality rule of the contract, measured (also in `quality`).
    pub rules: Vec<RuleOutcome>,
    /// The first [`MAX_LISTED`] violations.
    pub violations: Vec<Violation>,
    /// Every violation counted per file and field, with its first rows.
    pub summary: Vec<QualityIssue>,
    /// All violations, listed or not.
    pub total_violations: u64,
    /// Limits reached (e.g. uniqueness checked only on the first values).
    pub notes: Vec<String>,
    /// Schema objects that no data file maps to: the contract describes data
    /// that is not there, which breaks it.
    pub missing: Vec<String>,
}

impl Report {
    /// The rules that failed.
    pub fn failed_rules(&self) -> usize {
        self.rules
            .iter()
            .filter(|r| r.state == RuleState::Failed)
            .count()
    }

    /// Whether the data keeps its contract: every schema object has data, no
    /// violation, no failed rule.
    pub fn kept(&self) -> bool {
        self.missing.is_empty() && self.total_violations == 0 && self.failed_rules() == 0
    }

    /// A line per failed rule, then per file and field that breaks the contract
    /// (count, first rows, first problem), then every listed violation, then a
    /// count of those not listed.
    pub fn lines(&self) -> Vec<String> {
        let mut out = self.missing.clone();
        out.extend(
            self.rules
                .iter()
                .filter(|r| r.state == RuleState::Failed)
                .map(rule_line),
        );
        out.extend(self.summary.iter().map(summary_line));
        out.extend(self.violations.iter().map(|v| v.to_string()));
        let more = self
            .total_violations
            .saturating_sub(self.violations.len() as u64);
        if more > 0 {
            out.push(format!("... and {more} more violation(s)"));
        }
        out
    }
}

/// One rule's outcome as a line: `FAIL schema[0].quality[0] orders_rows (orders):
/// rowCount between 100 and 120, measured 3 rows`.
pub fn rule_line(r: &RuleOutcome) -> String {
    let state = match r.state {
        RuleState::Passed => "pass",
        RuleState::Failed => "FAIL",
        RuleState::NotEvaluated => "not evaluated",
    };
    let at = if r.property.is_empty() {
        r.object.clone()
    } else {
        format!("{}.{}", r.object, r.property)
    };
    let mut line = format!("{state} {} ({at})", r.rule);
    if !r.expected.is_empty() {
        line.push_str(&format!(": {}", r.expected));
    }
    if !r.measured.is_empty() {
        line.push_str(&format!(", measured {}", r.measured));
    }
    if !r.note.is_empty() {
        line.push_str(&format!(" [{}]", r.note));
    }
    line.push_str(&format!(" at {}", r.path));
    line
}

/// What "row 0" of a file is: a Parquet file's schema, a CSV file's header.
fn head_of(file: &str) -> &'static str {
    if file.to_ascii_lowercase().ends_with(".parquet") {
        "schema"
    } else {
        "header"
    }
}

/// One file-and-field summary as a line.
pub fn summary_line(i: &QualityIssue) -> String {
    // Row 0 is the header (a CSV file's; a Parquet file's schema), no data row.
    let head = head_of(&i.file);
    if i.first_rows == [0] {
        return format!(
            "{}, field `{}`: in the {head}: {}",
            i.file, i.field, i.problem
        );
    }
    let rows: Vec<String> = i
        .first_rows
        .iter()
        .map(|r| {
            if *r == 0 {
                head.to_string()
            } else {
                r.to_string()
            }
        })
        .collect();
    format!(
        "{}, field `{}`: {} violation(s), first at row(s) {}: {}",
        i.file,
        i.field,
        i.count,
        rows.join(", "),
        i.problem
    )
}

/// Where violations and notes go while files are read.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    report: Report,
    /// Violations per (file, field).
    issues: BTreeMap<(String, String), QualityIssue>,
}

impl Sink {
    pub(crate) fn violate(&mut self, file: &str, row: u64, field: &str, problem: String) {
        self.report.total_violations += 1;
        let issue = self
            .issues
            .entry((file.to_owned(), field.to_owned()))
            .or_insert_with(|| QualityIssue {
                file: file.into(),
                field: field.into(),
                count: 0,
                first_rows: Vec::new(),
                problem: problem.clone(),
            });
        issue.count += 1;
        if issue.first_rows.len() < FIRST_ROWS {
            issue.first_rows.push(row);
        }
        if self.report.violations.len() < MAX_LISTED {
            self.report.violations.push(Violation {
                file: file.into(),
                row,
                field: field.into(),
                problem,
            });
        }
    }

    pub(crate) fn note(&mut self, note: String) {
        self.report.notes.push(note);
    }
}

/// The data formats read, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
    Json,
    Parquet,
}

fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv),
        "jsonl" | "ndjson" => Some(Format::JsonLines),
        "json" => Some(Format::Json),
        "parquet" => Some(Format::Parquet),
        _ => None,
    }
}

/// The object a data file is read as: the one whose `physicalName` or `name` is
/// the file's name without its extension or one of its folders (nearest first;
/// exact, then ignoring case). With a single object, every file is read as it.
fn object_for(plan: &Plan, rel: &str) -> Option<usize> {
    let objects = &plan.objects;
    if objects.len() == 1 && objects[0].name.is_empty() {
        return Some(0);
    }
    let mut parts: Vec<&str> = rel.split('/').collect();
    let file = parts.pop().unwrap_or(rel);
    let stem = file.split_once('.').map_or(file, |(s, _)| s);
    let mut candidates = vec![stem];
    candidates.extend(parts.iter().rev());
    let names = |o: &plan::ObjectPlan| [o.physical_name.clone(), Some(o.name.clone())];
    for c in &candidates {
        if let Some(i) = objects
            .iter()
            .position(|o| names(o).iter().flatten().any(|n| n == c))
        {
            return Some(i);
        }
    }
    for c in &candidates {
        if let Some(i) = objects
            .iter()
            .position(|o| names(o).iter().flatten().any(|n| n.eq_ignore_ascii_case(c)))
        {
            return Some(i);
        }
    }
    (objects.len() == 1).then_some(0)
}

/// Checks the files (`(relative path, full path)`) against `plan`. `schema` is
/// the manifest's schema: the recorded field metrics follow it (the first
/// object's properties).
pub fn check(plan: &Plan, schema: &[Field], files: &[(String, PathBuf)]) -> io::Result<Report> {
    if plan.is_empty() {
        return Ok(Report::default());
    }
    let mut sink = Sink::default();
    let mut states: Vec<object::ObjectState<'_>> =
        plan.objects.iter().map(object::ObjectState::new).collect();
    let mut checked = 0u32;
    let mut rows = 0u64;
    for (rel, full) in files {
        let Some(format) = format_of(full) else {
            continue;
        };
        let Some(o) = object_for(plan, rel) else {
            sink.note(format!(
                "{rel}: not checked; it matches no schema object (name or physicalName: {})",
                plan.objects
                    .iter()
                    .map(object::object_label)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        let state = &mut states[o];
        let before = state.rows;
        // The file's own markers, else its object's, else the product's.
        let object = state.plan;
        let own = plan.nulls.files.iter().any(|(f, _)| f == rel);
        let markers: &[String] = match &object.nulls {
            Some(m) if !own => m,
            _ => plan.nulls.for_file(rel),
        };
        let read = match format {
            Format::Csv => {
                let declared = object.delimiter.or(plan.delimiter);
                text::csv(state, &mut sink, rel, full, markers, declared)
            }
            Format::JsonLines => text::jsonl(state, &mut sink, rel, full, markers),
            Format::Json => text::json(state, &mut sink, rel, full, markers),
            Format::Parquet => parquet::read(state, &mut sink, rel, full),
        };
        read.map_err(|e| io::Error::new(e.kind(), format!("{rel}: {e}")))?;
        state.files += 1;
        rows += state.rows - before;
        checked += 1;
    }
    let mut report = std::mem::take(&mut sink.report);
    report.missing = missing_objects(plan, &states);
    report.summary = std::mem::take(&mut sink.issues).into_values().collect();
    report.rules = states.iter_mut().flat_map(|s| s.outcomes()).collect();
    report.notes.extend(plan.lint.iter().cloned());
    if checked > 0 {
        let first = states
            .first()
            .map(object::ObjectState::fields)
            .unwrap_or_default();
        report.quality = Some(Quality {
            rows,
            files_checked: checked,
            fields: schema
                .iter()
                .map(|f| {
                    first
                        .iter()
                        .find(|q| q.name == f.name)
                        .cloned()
                        .unwrap_or_else(|| FieldQuality {
                            name: f.name.clone(),
                            nulls: 0,
                            distinct: None,
                        })
                })
                .collect(),
            violations: report.summary.clone(),
            objects: states
                .iter()
                .map(|s| ObjectQuality {
                    name: s.plan.name.clone(),
                    files: s.files,
                    rows: s.rows,
                })
                .collect(),
            rules: report.rules.clone(),
        });
    }
    Ok(report)
}

/// A line for each schema object that no data file maps to.
fn missing_objects(plan: &Plan, states: &[object::ObjectState<'_>]) -> Vec<String> {
    states
        .iter()
        .filter(|s| s.files == 0)
        .map(|s| {
            let o = s.plan;
            if o.name.is_empty() {
                return "no data to check: no CSV, JSON lines, JSON or Parquet file holds the schema's columns".to_string();
            }
            let names: Vec<&str> = [o.physical_name.as_deref(), Some(o.name.as_str())]
                .into_iter()
                .flatten()
                .collect();
            let others = if plan.objects.len() > 1 {
                " (with several objects, a file is matched by its name or a folder's)"
            } else {
                ""
            };
            format!(
                "object `{}` has no data: no CSV, JSON lines, JSON or Parquet file is named {}{others}",
                object::object_label(o),
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
