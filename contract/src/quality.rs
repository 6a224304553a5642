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

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::hash::{Hash as _, Hasher};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use mesh_protocol::manifest::{Field, FieldQuality, LogicalType, Quality};

/// The longest CSV record or JSON line accepted.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Distinct values counted per field before the count is given up.
pub const DISTINCT_CAP: usize = 100_000;
/// Values per `unique` field checked for repeats; beyond this a warning says so.
pub const UNIQUE_CAP: usize = 5_000_000;
/// Violations listed (all are counted).
pub const MAX_LISTED: usize = 50;

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
    /// All violations, listed or not.
    pub total_violations: u64,
    /// Limits reached (e.g. uniqueness checked only on the first values).
    pub notes: Vec<String>,
}

impl Report {
    /// Every violation as a line, plus a count of those not listed.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.violations.iter().map(|v| v.to_string()).collect();
        let more = self
            .total_violations
            .saturating_sub(self.violations.len() as u64);
        if more > 0 {
            out.push(format!("... and {more} more violation(s)"));
        }
        out
    }
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
}

fn value_hash(v: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    matches!(
        (num(0..4), num(5..7), num(8..10)),
        (Some(_), Some(m @ 1..=12), Some(d @ 1..=31)) if d <= days_in(m)
    )
}

fn days_in(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn is_timestamp(s: &str) -> bool {
    // `get`, not indexing: a multi-byte character at byte 10 must not panic.
    if s.len() < 16 || !s.get(..10).is_some_and(is_date) {
        return false;
    }
    let rest = &s.as_bytes()[10..];
    (rest[0] == b'T' || rest[0] == b' ')
        && rest[1..3].iter().all(u8::is_ascii_digit)
        && rest[3] == b':'
        && rest[4..6].iter().all(u8::is_ascii_digit)
}

/// A time of day: `HH:MM:SS`, optionally with fractional seconds and a `Z` or
/// `±HH:MM` offset.
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    let two = |i: usize, max: u8| {
        b.get(i..i + 2).is_some_and(|d| {
            d.iter().all(u8::is_ascii_digit) && (d[0] - b'0') * 10 + (d[1] - b'0') <= max
        })
    };
    if !(two(0, 23)
        && b.get(2) == Some(&b':')
        && two(3, 59)
        && b.get(5) == Some(&b':')
        && two(6, 60))
    {
        return false;
    }
    let mut rest = &b[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &frac[digits..];
    }
    match rest {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Whether text `v` (a CSV cell, or a JSON string) is a valid `t`.
fn text_fits(t: LogicalType, v: &str) -> bool {
    match t {
        LogicalType::String => true,
        LogicalType::Integer => v.parse::<i64>().is_ok() || v.parse::<u64>().is_ok(),
        LogicalType::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
        LogicalType::Boolean => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        LogicalType::Date => is_date(v),
        LogicalType::Timestamp => is_timestamp(v),
        LogicalType::Time => is_time(v),
        LogicalType::Object => v.trim_start().starts_with('{'),
        LogicalType::Array => v.trim_start().starts_with('['),
    }
}

fn type_name(t: LogicalType) -> &'static str {
    match t {
        LogicalType::String => "a string",
        LogicalType::Integer => "an integer",
        LogicalType::Number => "a number",
        LogicalType::Boolean => "a boolean (true or false)",
        LogicalType::Date => "a date (YYYY-MM-DD)",
        LogicalType::Timestamp => "a timestamp (YYYY-MM-DDTHH:MM...)",
        LogicalType::Time => "a time of day (HH:MM:SS)",
        LogicalType::Object => "an object",
        LogicalType::Array => "an array",
    }
}

fn shown(v: &str) -> String {
    let short: String = v.chars().take(40).collect();
    if short.len() < v.len() {
        format!("{short:?}...")
    } else {
        format!("{short:?}")
    }
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
        }
    }

    fn violate(&mut self, file: &str, row: u64, field: &str, problem: String) {
        self.report.total_violations += 1;
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

    fn csv(&mut self, rel: &str, path: &Path) -> io::Result<()> {
        let mut reader = CsvReader::new(BufReader::new(File::open(path)?));
        let Some(header) = reader.next_record()? else {
            return Ok(());
        };
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
                let v = if cell.is_empty() {
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

    fn jsonl(&mut self, rel: &str, path: &Path) -> io::Result<()> {
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
                    Some(v) => Some(json_fits(t, v)),
                };
                self.value(rel, row, i, v);
            }
        }
    }

    fn finish(mut self, files_checked: u32) -> Report {
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
            });
        }
        self.report
    }
}

/// A JSON value checked against `t`: its canonical text, or why it does not fit.
fn json_fits(t: LogicalType, v: &serde_json::Value) -> Result<String, String> {
    use serde_json::Value as V;
    let ok = match (t, v) {
        (LogicalType::String, V::String(_)) => true,
        (LogicalType::Integer, V::Number(n)) => n.is_i64() || n.is_u64(),
        (LogicalType::Number, V::Number(_)) => true,
        (LogicalType::Boolean, V::Bool(_)) => true,
        (LogicalType::Date, V::String(s)) => is_date(s),
        (LogicalType::Timestamp, V::String(s)) => is_timestamp(s),
        (LogicalType::Time, V::String(s)) => is_time(s),
        (LogicalType::Object, V::Object(_)) => true,
        (LogicalType::Array, V::Array(_)) => true,
        _ => false,
    };
    let text = match v {
        V::String(s) => s.clone(),
        other => other.to_string(),
    };
    if ok {
        Ok(text)
    } else {
        Err(format!("{} is not {}", shown(&text), type_name(t)))
    }
}

/// Reads one line of at most [`MAX_RECORD_BYTES`].
fn read_line_capped<R: BufRead>(r: &mut R, line: &mut String) -> io::Result<usize> {
    let n = io::Read::take(&mut *r, MAX_RECORD_BYTES as u64 + 1).read_line(line)?;
    if n > MAX_RECORD_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line is longer than {MAX_RECORD_BYTES} bytes"),
        ));
    }
    Ok(n)
}

/// An RFC 4180 CSV reader: quoted fields may hold commas, doubled quotes and line
/// breaks; records are capped at [`MAX_RECORD_BYTES`].
struct CsvReader<R> {
    inner: R,
    line: String,
}

impl<R: BufRead> CsvReader<R> {
    fn new(inner: R) -> Self {
        CsvReader {
            inner,
            line: String::new(),
        }
    }

    fn next_record(&mut self) -> io::Result<Option<Vec<String>>> {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_quotes = false;
        let mut total = 0usize;
        loop {
            self.line.clear();
            let n = read_line_capped(&mut self.inner, &mut self.line)?;
            if n == 0 {
                if in_quotes {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a quoted CSV field is never closed",
                    ));
                }
                if fields.is_empty() && field.is_empty() {
                    return Ok(None);
                }
                fields.push(std::mem::take(&mut field));
                return Ok(Some(fields));
            }
            total += n;
            if total > MAX_RECORD_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a CSV record is longer than {MAX_RECORD_BYTES} bytes"),
                ));
            }
            let mut chars = self.line.chars().peekable();
            while let Some(c) = chars.next() {
                match (in_quotes, c) {
                    (true, '"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    (true, '"') => in_quotes = false,
                    (true, c) => field.push(c),
                    (false, '"') if field.is_empty() => in_quotes = true,
                    (false, ',') => fields.push(std::mem::take(&mut field)),
                    (false, '\n') => {}
                    (false, '\r') if chars.peek() == Some(&'\n') => {}
                    (false, c) => field.push(c),
                }
            }
            if !in_quotes {
                if fields.is_empty() && field.is_empty() {
                    continue; // a blank line
                }
                fields.push(std::mem::take(&mut field));
                return Ok(Some(fields));
            }
        }
    }
}

/// Checks the files (`(relative path, full path)`) against `schema`.
pub fn check(schema: &[Field], files: &[(String, std::path::PathBuf)]) -> io::Result<Report> {
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
            Some("csv") => checker.csv(rel, full),
            Some("jsonl" | "ndjson") => checker.jsonl(rel, full),
            _ => continue,
        };
        read.map_err(|e| io::Error::new(e.kind(), format!("{rel}: {e}")))?;
        checked += 1;
    }
    Ok(checker.finish(checked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::manifest::Classification;

    fn field(name: &str, t: LogicalType, required: bool, unique: bool) -> Field {
        Field {
            name: name.into(),
            logical_type: t,
            required,
            description: String::new(),
            classification: Classification::Internal,
            unique,
        }
    }

    #[test]
    fn times_and_timestamps_are_recognised_without_panicking_on_any_text() {
        for ok in [
            "00:00:00",
            "23:59:60",
            "12:30:05.125",
            "08:00:00Z",
            "08:00:00+02:00",
        ] {
            assert!(is_time(ok), "{ok}");
        }
        for bad in [
            "24:00:00",
            "12:60:00",
            "1:00:00",
            "12:00",
            "12:00:00.",
            "12:00:00+2",
            "é",
        ] {
            assert!(!is_time(bad), "{bad}");
        }
        assert!(is_timestamp("2024-02-29T10:00:00Z"));
        // Byte 10 falls inside a multi-byte character: no panic, just "no".
        assert!(!is_timestamp("2024-02-2éT10:00:00"));
        assert!(!is_timestamp("ééééééééééééééé"));
    }

    fn schema() -> Vec<Field> {
        vec![
            field("id", LogicalType::Integer, true, true),
            field("email", LogicalType::String, true, false),
            field("amount", LogicalType::Number, false, false),
            field("day", LogicalType::Date, false, false),
        ]
    }

    fn run(name: &str, text: &str) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        check(&schema(), &[(name.to_string(), path)]).unwrap()
    }

    #[test]
    fn csv_violations_name_the_field_and_row() {
        let r = run(
            "orders.csv",
            "id,email,amount,day\n\
             1,a@x.io,3.5,2026-01-02\n\
             2,,abc,2026-02-30\n\
             1,\"b, \"\"quoted\"\"\n@x.io\",,\n",
        );
        let lines = r.lines();
        assert_eq!(
            lines,
            vec![
                "orders.csv row 2, field `email`: is required but empty",
                "orders.csv row 2, field `amount`: \"abc\" is not a number",
                "orders.csv row 2, field `day`: \"2026-02-30\" is not a date (YYYY-MM-DD)",
                "orders.csv row 3, field `id`: \"1\" repeats an earlier value but must be unique",
            ],
            "{lines:#?}"
        );
        let q = r.quality.unwrap();
        assert_eq!(q.rows, 3);
        assert_eq!(q.fields[2].nulls, 1, "amount is empty in row 3");
        assert_eq!(q.fields[1].distinct, Some(2));
    }

    #[test]
    fn jsonl_violations_name_the_field_and_row() {
        let r = run(
            "orders.jsonl",
            "{\"id\": 1, \"email\": \"a@x.io\", \"amount\": 2}\n\
             \n\
             {\"id\": \"2\", \"email\": \"b@x.io\"}\n\
             [1, 2]\n\
             {\"id\": 3, \"amount\": null}\n",
        );
        assert_eq!(
            r.lines(),
            vec![
                "orders.jsonl row 2, field `id`: \"2\" is not an integer",
                "orders.jsonl row 3, field `-`: the line is not a JSON object",
                "orders.jsonl row 4, field `email`: is required but empty",
            ]
        );
        assert_eq!(r.quality.unwrap().rows, 4);
    }

    #[test]
    fn a_missing_column_and_other_files_and_limits() {
        let r = run("a.csv", "id,email\n1,x\n");
        assert_eq!(
            r.violations[0].to_string(),
            "a.csv row 0, field `amount`: no such column in the header"
        );
        let r = run("notes.txt", "anything");
        assert!(r.quality.is_none() && r.violations.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        std::fs::write(&path, "x".repeat(MAX_RECORD_BYTES + 10)).unwrap();
        let err = check(&schema(), &[("big.jsonl".into(), path)]).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
