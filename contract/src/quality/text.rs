//! The text formats: CSV (a header row, then records), JSON lines (one object per
//! line) and JSON (an array of objects, or one), read one record at a time into an
//! object's checks.

use std::io::{self, BufReader, Read};
use std::sync::mpsc;

use super::csv::{read_line_capped, CsvReader};
use super::json::JsonRecords;
use super::object::{Cell, ObjectState};
use super::report::Sink;

/// Reads a CSV file as the object: its header names the columns (a property's
/// `physicalName`, else its `name`); fields split by the declared delimiter, else
/// by the one the header uses.
pub(crate) fn csv(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    input: impl Read + Send,
    markers: &[String],
    delimiter: Option<char>,
) -> io::Result<()> {
    let mut reader = CsvReader::new(BufReader::new(input));
    reader.declare_delimiter(delimiter);
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
    // A header of one column where several are expected is most often a
    // delimiter that is none of the recognised ones.
    let hint = if header.len() == 1 && state.plan.columns.len() > 1 {
        match delimiter {
            Some(d) => format!(
                "; the header is one column ({:?}) split by the declared delimiter {d:?}: is that the file's?",
                header[0]
            ),
            None => format!(
                "; the header is one column ({:?}): the file's delimiter is none of `,` `;` tab `|`; declare it with the contract's `meshDelimiter` custom property",
                header[0]
            ),
        }
    } else {
        String::new()
    };
    for (c, found) in state.plan.columns.iter().zip(&columns) {
        // Nested properties have no column of their own in a CSV file.
        if found.is_none() && !c.nested() {
            let problem = if c.column == c.name {
                format!("no such column in the header{hint}")
            } else {
                format!(
                    "no column `{}` (its physicalName) in the header{hint}",
                    c.column
                )
            };
            sink.violate(rel, 0, &c.name, problem);
        }
    }
    // Records are split on a thread of their own while this one checks them
    // (about 40% and 60% of the work), in batches of bounded size.
    std::thread::scope(|scope| {
        let (full, batches) = mpsc::sync_channel(2);
        let (spent, empties) = mpsc::sync_channel(3);
        scope.spawn(move || split_records(reader, &full, &empties));
        let mut row = 0u64;
        for batch in batches {
            let batch: Records = batch?;
            for record in &batch.records[..batch.len] {
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
            // The splitter may reuse its strings (or make new ones if it is ahead).
            let _ = spent.try_send(batch);
        }
        Ok(())
    })
}

/// A batch of CSV records; the first `len` are this batch's (the rest are
/// strings kept for reuse).
#[derive(Default)]
struct Records {
    records: Vec<Vec<String>>,
    len: usize,
}

/// The most records, and bytes of records, a batch holds (so the batches in
/// flight stay within a few MiB whatever the records' size).
const BATCH_RECORDS: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;

/// Reads `reader`'s records into batches sent to `full` until the input ends
/// (or fails: the records before the failure are sent, then the error), taking
/// spent batches back from `empties` to reuse their strings.
fn split_records<R: io::BufRead>(
    mut reader: CsvReader<R>,
    full: &mpsc::SyncSender<io::Result<Records>>,
    empties: &mpsc::Receiver<Records>,
) {
    loop {
        let mut batch = empties.try_recv().unwrap_or_default();
        batch.len = 0;
        let mut bytes = 0;
        let (mut ended, mut failed) = (false, None);
        while batch.len < BATCH_RECORDS && bytes < BATCH_BYTES {
            if batch.records.len() == batch.len {
                batch.records.push(Vec::new());
            }
            match reader.read_record(&mut batch.records[batch.len]) {
                Ok(true) => {
                    bytes += batch.records[batch.len]
                        .iter()
                        .map(String::len)
                        .sum::<usize>();
                    batch.len += 1;
                }
                Ok(false) => {
                    ended = true;
                    break;
                }
                Err(e) => {
                    (ended, failed) = (true, Some(e));
                    break;
                }
            }
        }
        // A closed channel: the checker stopped (it returned an error); so do we.
        if batch.len > 0 && full.send(Ok(batch)).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = full.send(Err(e));
        }
        if ended {
            return;
        }
    }
}

/// Reads a JSON-lines file as the object: each line's keys are its columns; a
/// missing key or `null` is a null, a string equal to a marker too.
pub(crate) fn jsonl(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    input: impl Read,
    markers: &[String],
) -> io::Result<()> {
    let mut reader = BufReader::new(input);
    let mut line = String::new();
    let mut row = 0u64;
    loop {
        line.clear();
        if read_line_capped(&mut reader, &mut line)? == 0 {
            return Ok(());
        }
        // A byte order mark before the first line is not part of it.
        let text = line.strip_prefix('\u{feff}').unwrap_or(&line);
        if text.trim().is_empty() {
            continue;
        }
        row += 1;
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => record(state, sink, rel, row, &value, markers),
            Err(e) => {
                state.rows += 1;
                sink.violate(rel, row, "-", format!("the line is not JSON: {e}"));
            }
        }
    }
}

/// Reads a `.json` file as the object: an array of records, or one record (see
/// [`JsonRecords`]); each record's keys are its columns, as in JSON lines.
pub(crate) fn json(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    input: impl Read,
    markers: &[String],
) -> io::Result<()> {
    let mut records = JsonRecords::new(BufReader::new(input));
    let mut row = 0u64;
    while let Some(value) = records.next_record()? {
        row += 1;
        record(state, sink, rel, row, &value, markers);
    }
    Ok(())
}

/// One JSON record (a line, an array element) as a row of the object.
fn record(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    row: u64,
    value: &serde_json::Value,
    markers: &[String],
) {
    let serde_json::Value::Object(object) = value else {
        state.rows += 1;
        sink.violate(rel, row, "-", "the record is not a JSON object".into());
        return;
    };
    let cells: Vec<Cell<'_>> = state
        .plan
        .columns
        .iter()
        .map(|c| match lookup(object, &c.path) {
            Lookup::NoParent => Cell::Absent,
            Lookup::Found(None | Some(serde_json::Value::Null)) => Cell::Null,
            Lookup::Found(Some(serde_json::Value::String(s))) => Cell::JsonString(s),
            Lookup::Found(Some(v)) => Cell::Json(v),
        })
        .collect();
    state.row(sink, rel, row, &cells, markers);
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
