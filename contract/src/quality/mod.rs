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
//! first; `blocks.rs` reads a remote one by ranges), `input.rs` (a file here, or
//! one kept elsewhere read without a copy: [`Remote`]), `shape.rs` (nested fields and items against Parquet types), `sql.rs` (`sql` rules in DataFusion), `values.rs`
//! (types of text values).

use std::io;
use std::path::{Path, PathBuf};

use mesh_protocol::manifest::{Contract, Field, FieldQuality, NullValues, ObjectQuality, Quality};

mod bounds;
pub(crate) mod csv;
mod input;
pub(crate) mod json;
mod object;
mod options;
pub mod parquet;
mod plan;
mod report;
pub mod rules;
pub(crate) mod shape;
pub mod sql;
mod text;
pub(crate) mod values;

pub use input::{Place, Remote};
pub use mesh_protocol::manifest::{RuleOutcome, RuleState};
pub use plan::{Plan, CUSTOM_DELIMITER, CUSTOM_NULL_VALUES};
pub use report::{
    rule_line, summary_line, Report, Violation, DISTINCT_CAP, FIRST_ROWS, MAX_LISTED,
    MAX_RECORD_BYTES, UNIQUE_CAP,
};

use report::Sink;

/// The data formats read, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Format {
    Csv,
    JsonLines,
    Json,
    Parquet,
}

pub(crate) fn format_of(path: &Path) -> Option<Format> {
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

/// A data file as it is read: its object, format, null markers and declared CSV
/// delimiter.
#[derive(Debug, Clone)]
pub(crate) struct DataFile {
    /// The path relative to the product, and on disk.
    pub(crate) rel: String,
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    /// The file's own markers, else its object's, else the product's.
    pub(crate) markers: Vec<String>,
    /// The object's declared delimiter, else the contract's (else the header tells).
    pub(crate) delimiter: Option<char>,
}

/// The data files of each object of `plan` (in plan order), as they are read;
/// files of no known format or no object are left out.
pub(crate) fn files_by_object(plan: &Plan, files: &[(String, PathBuf)]) -> Vec<Vec<DataFile>> {
    let mut out = vec![Vec::new(); plan.objects.len()];
    for (rel, full) in files {
        let (Some(format), Some(o)) = (format_of(full), object_for(plan, rel)) else {
            continue;
        };
        let object = &plan.objects[o];
        let own = plan.nulls.files.iter().any(|(f, _)| f == rel);
        let markers = match &object.nulls {
            Some(m) if !own => m.clone(),
            _ => plan.nulls.for_file(rel).to_vec(),
        };
        out[o].push(DataFile {
            rel: rel.clone(),
            path: full.clone(),
            format,
            markers,
            delimiter: object.delimiter.or(plan.delimiter),
        });
    }
    out
}

/// Checks a product's files (`(relative path, full path)`) against what it
/// declares: its contract's objects and rules, else `schema` as one object, with
/// its null markers. The one "plan, then check" of publish, `mesh contract test`
/// and `mesh policy check --data`.
pub fn check_product(
    schema: &[Field],
    nulls: &NullValues,
    contract: Option<&Contract>,
    files: &[(String, PathBuf)],
) -> io::Result<Report> {
    check(&Plan::new(schema, nulls, contract), schema, files)
}

/// [`check_product`] of files wherever they are (`(relative path, place)`).
pub fn check_product_at(
    schema: &[Field],
    nulls: &NullValues,
    contract: Option<&Contract>,
    files: &[(String, Place)],
) -> io::Result<Report> {
    check_at(&Plan::new(schema, nulls, contract), schema, files)
}

/// Checks the files (`(relative path, full path)`) against `plan`. `schema` is
/// the manifest's schema: the recorded field metrics follow it (the first
/// object's properties).
pub fn check(plan: &Plan, schema: &[Field], files: &[(String, PathBuf)]) -> io::Result<Report> {
    let places: Vec<(String, Place)> = files
        .iter()
        .map(|(rel, full)| (rel.clone(), Place::Local(full.clone())))
        .collect();
    check_at(plan, schema, &places)
}

/// [`check`] of files wherever they are (`(relative path, place)`); a file's
/// format is its relative path's extension.
pub fn check_at(plan: &Plan, schema: &[Field], files: &[(String, Place)]) -> io::Result<Report> {
    if plan.is_empty() {
        return Ok(Report::default());
    }
    let mut sink = Sink::default();
    let mut states: Vec<object::ObjectState<'_>> =
        plan.objects.iter().map(object::ObjectState::new).collect();
    let mut checked = 0u32;
    let mut rows = 0u64;
    for (rel, place) in files {
        let Some(format) = format_of(Path::new(rel)) else {
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
        let read = match (format, place) {
            (Format::Csv, _) => {
                let declared = object.delimiter.or(plan.delimiter);
                place
                    .open()
                    .and_then(|input| text::csv(state, &mut sink, rel, input, markers, declared))
            }
            (Format::JsonLines, _) => place
                .open()
                .and_then(|input| text::jsonl(state, &mut sink, rel, input, markers)),
            (Format::Json, _) => place
                .open()
                .and_then(|input| text::json(state, &mut sink, rel, input, markers)),
            (Format::Parquet, Place::Local(path)) => std::fs::File::open(path)
                .and_then(|file| parquet::read(state, &mut sink, rel, file)),
            (Format::Parquet, Place::Remote(remote)) => {
                let blocks = parquet::blocks::Blocks::new(remote.clone());
                parquet::read(state, &mut sink, rel, blocks)
            }
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
