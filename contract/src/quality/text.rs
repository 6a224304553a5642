//! The text formats: CSV (a header row, then records) and JSON lines (one object
//! per line), read one record at a time into an object's checks.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use super::csv::{read_line_capped, CsvReader};
use super::object::{Cell, ObjectState};
use super::Sink;

/// Reads a CSV file as the object: its header names the columns (a property's
/// `physicalName`, else its `name`).
pub(crate) fn csv(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    path: &Path,
    markers: &[String],
) -> io::Result<()> {
    let mut reader = CsvReader::new(BufReader::new(File::open(path)?));
    let Some(header) = reader.next_record()? else {
        sink.violate(
            rel,
            0,
            "-",
            "the file is empty: a CSV file needs a header row naming its columns".into(),
        );
        return Ok(());
    };
    // With one column a blank line is a row whose value is empty; with more it is
    // skipped, as R and pandas read it.
    reader.blank_is_row = header.len() == 1;
    let columns: Vec<Option<usize>> = state
        .plan
        .columns
        .iter()
        .map(|c| header.iter().position(|h| h.trim() == c.column))
        .collect();
    for (c, found) in state.plan.columns.iter().zip(&columns) {
        // Nested properties have no column of their own in a CSV file.
        if found.is_none() && !c.nested() {
            let problem = if c.column == c.name {
                "no such column in the header".to_owned()
            } else {
                format!("no column `{}` (its physicalName) in the header", c.column)
            };
            sink.violate(rel, 0, &c.name, problem);
        }
    }
    let mut row = 0u64;
    while let Some(record) = reader.next_record()? {
        row += 1;
        let cells: Vec<Cell<'_>> = columns
            .iter()
            .map(|c| match c {
                None => Cell::Absent,
                Some(c) => Cell::Text(record.get(*c).map(String::as_str).unwrap_or("")),
            })
            .collect();
        state.row(sink, rel, row, &cells, markers);
    }
    Ok(())
}

/// Reads a JSON-lines file as the object: each line's keys are its columns; a
/// missing key or `null` is a null, a string equal to a marker too.
pub(crate) fn jsonl(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    path: &Path,
    markers: &[String],
) -> io::Result<()> {
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
        let object = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(_) => {
                state.rows += 1;
                sink.violate(rel, row, "-", "the line is not a JSON object".into());
                continue;
            }
            Err(e) => {
                state.rows += 1;
                sink.violate(rel, row, "-", format!("the line is not JSON: {e}"));
                continue;
            }
        };
        let cells: Vec<Cell<'_>> = state
            .plan
            .columns
            .iter()
            .map(|c| match lookup(&object, &c.path) {
                Lookup::NoParent => Cell::Absent,
                Lookup::Found(None | Some(serde_json::Value::Null)) => Cell::Null,
                Lookup::Found(Some(serde_json::Value::String(s))) => Cell::JsonString(s),
                Lookup::Found(Some(v)) => Cell::Json(v),
            })
            .collect();
        state.row(sink, rel, row, &cells, markers);
    }
}

/// A value found by its key path.
enum Lookup<'a> {
    /// A parent object is missing or null: the nested value is not there to check.
    NoParent,
    /// The value (`None`: its key is missing).
    Found(Option<&'a serde_json::Value>),
}

fn lookup<'a>(
    record: &'a serde_json::Map<String, serde_json::Value>,
    path: &[String],
) -> Lookup<'a> {
    let mut current = record;
    for (i, key) in path.iter().enumerate() {
        let v = current.get(key);
        if i + 1 == path.len() {
            return Lookup::Found(v);
        }
        match v {
            Some(serde_json::Value::Object(o)) => current = o,
            _ => return Lookup::NoParent,
        }
    }
    Lookup::Found(None)
}
