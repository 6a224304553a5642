//! Data quality at publish: every CSV (`.csv`) and JSON-lines (`.jsonl`, `.ndjson`)
//! file is read against the manifest's schema. A declared field must be present, each
//! value must parse as its logical type, a `required` field must never be null, and a
//! `unique` one must never repeat. The same pass measures rows, nulls per field and,
//! where cheap, distinct values, which go into the manifest.
//!
//! Reading is streaming and bounded: one record at a time (at most
//! [`MAX_RECORD_BYTES`]), distinct values tracked as 64-bit hashes up to
//! [`DISTINCT_CAP`] per field (uniqueness up to [`UNIQUE_CAP`]), and at most
//! [`MAX_LISTED`] violations listed (all are counted).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::hash::{Hash as _, Hasher};
use std::io::{self, BufReader};
use std::path::Path;

use mesh_protocol::manifest::{Field, FieldQuality, NullValues, Quality, QualityIssue};

mod csv;
mod values;

use csv::{read_line_capped, CsvReader};
use values::{json_fits, shown, text_fits, type_name};

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
    /// Metrics for the manifest (`None` when no file was CSV or JSON lines).
    pub quality: Option<Quality>,
    /// The first [`MAX_LISTED`] violations.
    pub violations: Vec<Violation>,
    /// Every violation counted per file and field, with its first rows.
    pub summary: Vec<QualityIssue>,
    /// All violations, listed or not.
    pub total_violations: u64,
    /// Limits reached (e.g. uniqueness checked only on the first values).
    pub notes: Vec<String>,
}

impl Report {
    /// A line per file and field that breaks the contract (count, first rows,
    /// first problem), then every listed violation, then a count of those not
    /// listed.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.summary.iter().map(summary_line).collect();
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

/// One file-and-field summary as a line.
pub fn summary_line(i: &QualityIssue) -> String {
    let rows: Vec<String> = i.first_rows.iter().map(u64::to_string).collect();
    format!(
        "{}, field `{}`: {} violation(s), first at row(s) {}: {}",
        i.file,
        i.field,
        i.count,
        rows.join(", "),
        i.problem
    )
}

struct FieldState {
    nulls: u64,
    seen: HashSet<u64>,
    distinct_overflow: bool,
    unique_overflow: bool,
}

struct Checker<'a> {
    schema: &'a [Field],
    state: Vec<FieldState>,
    rows: u64,
    report: Report,
    /// Violations per (file, field).
    issues: BTreeMap<(String, String), QualityIssue>,
}

fn value_hash(v: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

impl<'a> Checker<'a> {
    fn new(schema: &'a [Field]) -> Self {
        Checker {
            schema,
            state: schema
                .iter()
                .map(|_| FieldState {
                    nulls: 0,
                    seen: HashSet::new(),
                    distinct_overflow: false,
                    unique_overflow: false,
                })
                .collect(),
            rows: 0,
            report: Report::default(),
            issues: BTreeMap::new(),
        }
    }

    fn violate(&mut self, file: &str, row: u64, field: &str, problem: String) {
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

    /// Records field `i`'s value in row `row`: `None` is null; `Some(Ok(text))` a
    /// value given as text; `Some(Err(problem))` a value of the wrong type.
    fn value(&mut self, file: &str, row: u64, i: usize, v: Option<Result<String, String>>) {
        let field = &self.schema[i];
        let (name, required, unique) = (field.name.clone(), field.required, field.unique);
        match v {
            None => {
                self.state[i].nulls += 1;
                if required {
                    self.violate(file, row, &name, "is required but empty".into());
                }
            }
            Some(Err(problem)) => self.violate(file, row, &name, problem),
            Some(Ok(text)) => {
                let st = &mut self.state[i];
                let cap = if unique { UNIQUE_CAP } else { DISTINCT_CAP };
                if st.seen.len() < cap {
                    if !st.seen.insert(value_hash(&text)) && unique {
                        self.violate(
                            file,
                            row,
                            &name,
                            format!(
                                "{} repeats an earlier value but must be unique",
                                shown(&text)
                            ),
                        );
                    }
                } else if unique && !st.unique_overflow {
                    st.unique_overflow = true;
                    self.report.notes.push(format!(
                        "field `{name}`: uniqueness checked on the first {UNIQUE_CAP} values only"
                    ));
                } else {
                    st.distinct_overflow = true;
                }
            }
        }
    }

    fn csv(&mut self, rel: &str, path: &Path, nulls: &[String]) -> io::Result<()> {
        let mut reader = CsvReader::new(BufReader::new(File::open(path)?));
        let Some(header) = reader.next_record()? else {
            return Ok(());
        };
        // With one column a blank line is a row whose value is empty; with more it
        // is skipped, as R and pandas read it.
        reader.blank_is_row = header.len() == 1;
        let columns: Vec<Option<usize>> = self
            .schema
            .iter()
            .map(|f| header.iter().position(|h| h.trim() == f.name))
            .collect();
        for (i, c) in columns.iter().enumerate() {
            if c.is_none() {
                let name = self.schema[i].name.clone();
                self.violate(rel, 0, &name, "no such column in the header".into());
            }
        }
        let mut row = 0u64;
        while let Some(record) = reader.next_record()? {
            row += 1;
            self.rows += 1;
            for (i, col) in columns.iter().enumerate() {
                let Some(col) = col else { continue };
                let cell = record.get(*col).map(String::as_str).unwrap_or("");
                let t = self.schema[i].logical_type;
                let v = if nulls.iter().any(|n| n == cell) {
                    None
                } else if text_fits(t, cell) {
                    Some(Ok(cell.to_owned()))
                } else {
                    Some(Err(format!("{} is not {}", shown(cell), type_name(t))))
                };
                self.value(rel, row, i, v);
            }
        }
        Ok(())
    }

    fn jsonl(&mut self, rel: &str, path: &Path, nulls: &[String]) -> io::Result<()> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut line = String::new();
        let mut row = 0u64;
        loop {
            line.clear();
            if read_line_capped(&mut reader, &mut line)? == 0 {
                return Ok(());
            }
            if line.trim().is_empty() {
                continue;
            }
            row += 1;
            self.rows += 1;
            let object = match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(serde_json::Value::Object(o)) => o,
                Ok(_) => {
                    self.violate(rel, row, "-", "the line is not a JSON object".into());
                    continue;
                }
                Err(e) => {
                    self.violate(rel, row, "-", format!("the line is not JSON: {e}"));
                    continue;
                }
            };
            for i in 0..self.schema.len() {
                let t = self.schema[i].logical_type;
                let v = match object.get(&self.schema[i].name) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) if nulls.iter().any(|n| n == s) => None,
                    Some(v) => Some(json_fits(t, v)),
                };
                self.value(rel, row, i, v);
            }
        }
    }

    fn finish(mut self, files_checked: u32) -> Report {
        self.report.summary = std::mem::take(&mut self.issues).into_values().collect();
        if files_checked > 0 {
            self.report.quality = Some(Quality {
                rows: self.rows,
                files_checked,
                fields: self
                    .schema
                    .iter()
                    .zip(&self.state)
                    .map(|(f, st)| FieldQuality {
                        name: f.name.clone(),
                        nulls: st.nulls,
                        distinct: (!st.distinct_overflow && !st.unique_overflow)
                            .then_some(st.seen.len() as u64),
                    })
                    .collect(),
                violations: self.report.summary.clone(),
            });
        }
        self.report
    }
}

/// Checks the files (`(relative path, full path)`) against `schema`; a cell equal
/// to one of the file's `nulls` markers is a null.
pub fn check(
    schema: &[Field],
    files: &[(String, std::path::PathBuf)],
    nulls: &NullValues,
) -> io::Result<Report> {
    if schema.is_empty() {
        return Ok(Report::default());
    }
    let mut checker = Checker::new(schema);
    let mut checked = 0u32;
    for (rel, full) in files {
        let ext = full
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let read = match ext.as_deref() {
            Some("csv") => checker.csv(rel, full, nulls.for_file(rel)),
            Some("jsonl" | "ndjson") => checker.jsonl(rel, full, nulls.for_file(rel)),
            _ => continue,
        };
        read.map_err(|e| io::Error::new(e.kind(), format!("{rel}: {e}")))?;
        checked += 1;
    }
    Ok(checker.finish(checked))
}

#[cfg(test)]
mod tests;
