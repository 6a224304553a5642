//! What a check found ([`Report`]: rule outcomes, violations listed and
//! summarised per file and field, metrics for the manifest), how it reads to
//! people ([`rule_line`], [`summary_line`]), the [`Sink`] the readers report into,
//! and the limits that bound them.

use std::collections::BTreeMap;
use std::fmt;

use mesh_protocol::manifest::{Quality, QualityIssue, RuleOutcome, RuleState};

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
    pub(super) report: Report,
    /// Violations per (file, field).
    pub(super) issues: BTreeMap<(String, String), QualityIssue>,
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
