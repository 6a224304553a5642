//! `mesh query`: SQL over the mesh's products, run by the daemon; the rows come
//! back as Arrow and are written here as a terminal table, CSV, JSON lines or
//! Parquet.
//!
//! CSV, JSON lines, Parquet and `--json` are written a batch at a time as the node
//! streams them, so an answer of any size passes through in bounded memory; only
//! the terminal table, whose columns are as wide as their widest value, holds the
//! whole answer. A file given with `-o` is written beside its place and renamed
//! into it when the answer ended whole: a query that fails half way leaves no
//! half-written file (and no earlier file lost). It is the user's alone (0600, as
//! the temporary file is made), since an answer may hold restricted products' rows.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use mesh_node::api::AnswerRows;

use crate::args::{QueryArgs, QueryFormat};
use crate::output::{printable, say};

/// `mesh query`.
pub(crate) fn query(home: &Path, a: QueryArgs, json: bool) -> anyhow::Result<()> {
    let sql = match (&a.sql, &a.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(f)) => {
            crate::input::read_text(f, "the query file", crate::input::MAX_SMALL_FILE)?
        }
        (None, None) => bail!("give the query, or --file FILE"),
    };
    if a.format == QueryFormat::Parquet && a.out.is_none() {
        bail!("--format parquet writes a file: give -o FILE");
    }
    let rows = crate::client(home)?.query_rows(&sql)?;
    match &a.out {
        Some(path) => {
            let n = write_file(rows, a.format, path)?;
            if json {
                say!("{}", serde_json::json!({ "rows": n, "out": path }));
            } else {
                say!("{n} rows written to {}", path.display());
            }
        }
        None if json => {
            write_json(rows, BufWriter::new(std::io::stdout()))?;
        }
        None => {
            write(rows, a.format, BufWriter::new(std::io::stdout()))?;
        }
    }
    Ok(())
}

/// Writes the rows to a temporary file beside `path`, renamed into place once
/// the answer ended whole. Returns the rows written.
fn write_file(rows: AnswerRows, format: QueryFormat, path: &Path) -> anyhow::Result<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".mesh-query-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let n = write(rows, format, BufWriter::new(tmp.as_file()))
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("moving the answer into {}", path.display()))?;
    Ok(n)
}

/// Writes the rows in `format` to `w`, each batch as it comes. Returns the rows.
fn write<W: Write + Send>(
    mut rows: AnswerRows,
    format: QueryFormat,
    mut w: W,
) -> anyhow::Result<u64> {
    let schema = rows.schema();
    let mut n = 0u64;
    let mut count = |b: &RecordBatch| n += b.num_rows() as u64;
    match format {
        QueryFormat::Table => {
            let batches = rows.by_ref().collect::<Result<Vec<_>, _>>()?;
            batches.iter().for_each(&mut count);
            let table = if batches.is_empty() {
                pretty_format_batches(&[RecordBatch::new_empty(schema)])?
            } else {
                pretty_format_batches(&batches)?
            };
            // Values are others' text: shown, not obeyed by the terminal.
            writeln!(w, "{}", printable(&table.to_string()))?;
            writeln!(w, "{n} rows")?;
        }
        QueryFormat::Csv => {
            let mut csv = CsvWriterBuilder::new().with_header(true).build(&mut w);
            let mut any = false;
            for b in rows {
                let b = b?;
                count(&b);
                csv.write(&b)?;
                any = true;
            }
            drop(csv);
            if !any {
                writeln!(w, "{}", header(&schema))?;
            }
        }
        QueryFormat::Jsonl => {
            let mut lines = LineDelimitedWriter::new(&mut w);
            for b in rows {
                let b = b?;
                count(&b);
                lines.write(&b)?;
            }
            lines.finish()?;
        }
        QueryFormat::Parquet => {
            let mut pq = parquet::arrow::ArrowWriter::try_new(&mut w, schema, None)?;
            for b in rows {
                let b = b?;
                count(&b);
                pq.write(&b)?;
            }
            pq.close()?;
        }
    }
    w.flush()?;
    Ok(n)
}

/// The CSV header of an answer with no rows.
fn header(schema: &SchemaRef) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(",")
}

/// `--json`: `{"columns": [...], "rows": [{...}, ...]}`, each row written as it
/// comes.
fn write_json<W: Write>(rows: AnswerRows, mut w: W) -> anyhow::Result<()> {
    let schema = rows.schema();
    let columns: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    write!(
        w,
        "{{\"columns\":{},\"rows\":[",
        serde_json::to_string(&columns)?
    )?;
    let mut first = true;
    let mut line = Vec::new();
    for b in rows {
        line.clear();
        let mut lines = LineDelimitedWriter::new(&mut line);
        lines.write(&b?)?;
        lines.finish()?;
        for row in line.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            w.write_all(row)?;
        }
    }
    writeln!(w, "]}}")?;
    w.flush()?;
    Ok(())
}
