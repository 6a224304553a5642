//! `mesh contract init`: a first ODCS v3.1.0 contract drafted from the data
//! files, for a team to edit: one schema object per CSV, JSON-lines, JSON or
//! Parquet file (files in one folder are one object, named after the folder), each
//! column's logical type inferred from up to [`SAMPLE_ROWS`] rows (Parquet: from
//! its schema), `required` where no null was seen in those rows (Parquet: a
//! non-nullable column, or no null in them), and `NA` declared as a null marker
//! when the data uses it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use mesh_protocol::manifest::LogicalType;

use crate::quality::csv::{read_line_capped, CsvReader};
use crate::quality::json::JsonRecords;
use crate::quality::values::{is_date, is_time, is_timestamp};

/// Rows read per file to infer types.
pub const SAMPLE_ROWS: usize = 10_000;

/// What one column's sample says.
#[derive(Debug, Default, Clone)]
struct Column {
    nulls: u64,
    /// Candidate types still consistent with every value, most specific first.
    candidates: Option<Vec<LogicalType>>,
    na: bool,
}

const ORDER: [LogicalType; 7] = [
    LogicalType::Integer,
    LogicalType::Number,
    LogicalType::Boolean,
    LogicalType::Date,
    LogicalType::Timestamp,
    LogicalType::Time,
    LogicalType::String,
];

fn text_kinds(v: &str) -> Vec<LogicalType> {
    ORDER
        .iter()
        .copied()
        .filter(|t| match t {
            LogicalType::Integer => v.parse::<i64>().is_ok(),
            LogicalType::Number => v.parse::<f64>().is_ok_and(f64::is_finite),
            LogicalType::Boolean => {
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            LogicalType::Date => is_date(v),
            LogicalType::Timestamp => is_timestamp(v),
            LogicalType::Time => is_time(v),
            _ => true,
        })
        .collect()
}

fn json_kinds(v: &Value) -> Vec<LogicalType> {
    match v {
        Value::String(s) => text_kinds(s)
            .into_iter()
            .filter(|t| {
                matches!(
                    t,
                    LogicalType::Date
                        | LogicalType::Timestamp
                        | LogicalType::Time
                        | LogicalType::String
                )
            })
            .collect(),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            vec![LogicalType::Integer, LogicalType::Number]
        }
        Value::Number(_) => vec![LogicalType::Number],
        Value::Bool(_) => vec![LogicalType::Boolean],
        Value::Object(_) => vec![LogicalType::Object],
        Value::Array(_) => vec![LogicalType::Array],
        Value::Null => Vec::new(),
    }
}

impl Column {
    fn value(&mut self, kinds: Vec<LogicalType>) {
        self.candidates = Some(match self.candidates.take() {
            None => kinds,
            Some(c) => c.into_iter().filter(|t| kinds.contains(t)).collect(),
        });
    }

    fn logical_type(&self) -> LogicalType {
        self.candidates
            .as_ref()
            .and_then(|c| c.first().copied())
            .unwrap_or(LogicalType::String)
    }
}

/// One object: its columns in file order.
#[derive(Debug, Default)]
struct Object {
    columns: Vec<(String, Column)>,
    /// Parquet columns: type and nullability from the schema.
    typed: Vec<(String, LogicalType, bool)>,
    files: Vec<String>,
}

impl Object {
    fn column(&mut self, name: &str) -> &mut Column {
        let i = match self.columns.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.columns.push((name.to_owned(), Column::default()));
                self.columns.len() - 1
            }
        };
        &mut self.columns[i].1
    }

    fn csv(&mut self, path: &std::path::Path) -> io::Result<()> {
        let mut r = CsvReader::new(BufReader::new(File::open(path)?));
        let Some(header) = r.next_record()? else {
            return Ok(());
        };
        r.blank_is_row = header.len() == 1;
        for h in &header {
            self.column(h.trim());
        }
        for _ in 0..SAMPLE_ROWS {
            let Some(rec) = r.next_record()? else { break };
            for (h, v) in header
                .iter()
                .zip(rec.iter().chain(std::iter::repeat(&String::new())))
            {
                let c = self.column(h.trim());
                match v.as_str() {
                    "" => c.nulls += 1,
                    "NA" => {
                        c.nulls += 1;
                        c.na = true;
                    }
                    v => c.value(text_kinds(v)),
                }
            }
        }
        Ok(())
    }

    fn jsonl(&mut self, path: &std::path::Path) -> io::Result<()> {
        let mut r = BufReader::new(File::open(path)?);
        let mut line = String::new();
        let mut rows = 0;
        while rows < SAMPLE_ROWS {
            line.clear();
            if read_line_capped(&mut r, &mut line)? == 0 {
                break;
            }
            let text = line.strip_prefix('\u{feff}').unwrap_or(&line);
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            rows += 1;
            self.json_record(&o);
        }
        Ok(())
    }

    /// One JSON record's keys and values.
    fn json_record(&mut self, o: &Map<String, Value>) {
        for (k, v) in o {
            let c = self.column(k);
            if v.is_null() {
                c.nulls += 1;
            } else {
                c.value(json_kinds(v));
            }
        }
        // A key missing from a record is a null there.
        for (k, c) in &mut self.columns {
            if !o.contains_key(k) {
                c.nulls += 1;
            }
        }
    }

    fn parquet(&mut self, path: &std::path::Path) -> io::Result<()> {
        let invalid = |e: parquet::errors::ParquetError| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a readable Parquet file: {e}"),
            )
        };
        let file = File::open(path)?;
        crate::quality::parquet::pages::check_footer(&file)?;
        let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            file.try_clone()?,
        )
        .map_err(invalid)?;
        let fields = b.schema().fields().clone();
        // Nulls in the first rows, as for CSV: `required` where none was seen.
        let leaves: Vec<usize> = (0..b.parquet_schema().num_columns()).collect();
        crate::quality::parquet::pages::check_pages(&file, b.metadata(), &leaves)?;
        let mut nulls = vec![0usize; fields.len()];
        let mut rows = 0usize;
        for batch in b.with_batch_size(1024).build().map_err(invalid)? {
            let batch = batch.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            for (n, column) in nulls.iter_mut().zip(batch.columns()) {
                *n += column.null_count();
            }
            rows += batch.num_rows();
            if rows >= SAMPLE_ROWS {
                break;
            }
        }
        for (f, n) in fields.iter().zip(nulls) {
            let t = ORDER
                .iter()
                .chain(&[LogicalType::Object, LogicalType::Array])
                .copied()
                .find(|t| crate::quality::shape::fits(*t, f.data_type()))
                .unwrap_or(LogicalType::String);
            let required = !f.is_nullable() || (rows > 0 && n == 0);
            if !self.typed.iter().any(|(name, _, _)| name == f.name()) {
                self.typed.push((f.name().clone(), t, !required));
            }
        }
        Ok(())
    }

    /// A `.json` file: an array of records, or one (see `quality::json`).
    fn json(&mut self, path: &std::path::Path) -> io::Result<()> {
        let mut records = JsonRecords::new(BufReader::new(File::open(path)?));
        let mut rows = 0;
        while rows < SAMPLE_ROWS {
            let Some(value) = records.next_record()? else {
                break;
            };
            if let Value::Object(o) = value {
                rows += 1;
                self.json_record(&o);
            }
        }
        Ok(())
    }

    fn properties(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for (name, t, nullable) in &self.typed {
            let mut p = Map::new();
            p.insert("name".into(), json!(name));
            p.insert("logicalType".into(), json!(t.name()));
            if !nullable {
                p.insert("required".into(), json!(true));
            }
            out.push(Value::Object(p));
        }
        for (name, c) in &self.columns {
            let mut p = Map::new();
            p.insert("name".into(), json!(name));
            p.insert("logicalType".into(), json!(c.logical_type().name()));
            if c.nulls == 0 && c.candidates.is_some() {
                p.insert("required".into(), json!(true));
            }
            out.push(Value::Object(p));
        }
        out
    }
}

/// A drafted contract and what the draft assumed.
#[derive(Debug)]
pub struct Drafted {
    /// The contract as YAML.
    pub yaml: String,
    /// What the draft assumed, for the team to check.
    pub notes: Vec<String>,
}

/// Drafts a contract for the data files `files` (`(relative path, full path)`).
pub fn draft(files: &[(String, PathBuf)], domain: &str, name: &str) -> io::Result<Drafted> {
    let mut objects: BTreeMap<String, Object> = BTreeMap::new();
    let mut notes = Vec::new();
    for (rel, full) in files {
        let ext = full
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let Some(ext) =
            ext.filter(|e| ["csv", "jsonl", "ndjson", "json", "parquet"].contains(&e.as_str()))
        else {
            continue;
        };
        // A file in a folder belongs to the folder's object.
        let object = match rel.rsplit_once('/') {
            Some((dir, _)) => dir.rsplit('/').next().unwrap_or(dir).to_owned(),
            None => rel
                .split_once('.')
                .map_or(rel.as_str(), |(s, _)| s)
                .to_owned(),
        };
        let o = objects.entry(object).or_default();
        o.files.push(rel.clone());
        let read = match ext.as_str() {
            "csv" => o.csv(full),
            "parquet" => o.parquet(full),
            "json" => o.json(full),
            _ => o.jsonl(full),
        };
        read.map_err(|e| io::Error::new(e.kind(), format!("{rel}: {e}")))?;
    }
    if objects.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no CSV, JSON-lines, JSON or Parquet file to draft a contract from",
        ));
    }
    let mut na = false;
    let schema: Vec<Value> = objects
        .iter()
        .map(|(n, o)| {
            na |= o.columns.iter().any(|(_, c)| c.na);
            notes.push(format!("schema object {n}: from {}", o.files.join(", ")));
            json!({"name": n, "physicalType": "file", "properties": o.properties()})
        })
        .collect();
    let mut doc = json!({
        "apiVersion": crate::odcs::EXPORT_API_VERSION,
        "kind": "DataContract",
        "id": format!("{domain}-{name}"),
        "name": name,
        "version": "0.1.0",
        "status": "draft",
        "domain": domain,
        "dataProduct": name,
        "description": {"purpose": "TODO: what the data is and what it is for"},
        "schema": schema,
    });
    if na {
        notes.push(
            "NA is used for missing values: declared as a null marker (meshNullValues)".into(),
        );
        if let Some(m) = doc.as_object_mut() {
            m.insert(
                "customProperties".into(),
                json!([{"property": crate::quality::CUSTOM_NULL_VALUES, "value": ["NA", ""]}]),
            );
        }
    }
    notes.push(format!(
        "types inferred from up to {SAMPLE_ROWS} rows per file; `required` where no null was seen"
    ));
    let yaml = serde_yaml::to_string(&doc)
        .map_err(|e| io::Error::other(format!("writing the contract: {e}")))?;
    Ok(Drafted { yaml, notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn drafted(files: &[(&str, &[u8])]) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let list: Vec<(String, PathBuf)> = files
            .iter()
            .map(|(rel, bytes)| {
                let p = dir.path().join(rel);
                std::fs::write(&p, bytes).unwrap();
                (rel.to_string(), p)
            })
            .collect();
        let d = draft(&list, "aviation", "flights").unwrap();
        serde_yaml::from_str(&d.yaml).unwrap()
    }

    fn property<'a>(doc: &'a Value, object: &str, name: &str) -> &'a Value {
        doc["schema"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == object)
            .and_then(|o| o["properties"].as_array())
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("no property {object}.{name} in {doc:#}"))
    }

    #[test]
    fn a_bom_semicolons_and_json_arrays_draft_clean_names_and_types() {
        let doc = drafted(&[
            ("airlines.csv", "\u{feff}carrier;name\nUA;United\n".as_bytes()),
            (
                "planes.json",
                b"[{\"tailnum\": \"N10156\", \"seats\": 55}, {\"tailnum\": \"N102UW\", \"seats\": null}]",
            ),
        ]);
        assert_eq!(property(&doc, "airlines", "carrier")["required"], true);
        assert_eq!(property(&doc, "airlines", "name")["logicalType"], "string");
        assert_eq!(property(&doc, "planes", "seats")["logicalType"], "integer");
        assert!(property(&doc, "planes", "seats").get("required").is_none());
        assert_eq!(property(&doc, "planes", "tailnum")["required"], true);
    }

    #[test]
    fn parquet_columns_without_nulls_are_required_as_the_note_says() {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch};
        let batch = RecordBatch::try_from_iter([
            (
                "full",
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])) as ArrayRef,
            ),
            (
                "gappy",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut bytes = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let doc = drafted(&[("t.parquet", &bytes)]);
        assert_eq!(property(&doc, "t", "full")["required"], true);
        assert!(property(&doc, "t", "gappy").get("required").is_none());
    }
}
