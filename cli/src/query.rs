//! `mesh query`: SQL over the mesh's products, run by the daemon; the rows come
//! back as Arrow and are written here as a terminal table, CSV, JSON lines or
//! Parquet.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use mesh_contract::engine::Answer;

use crate::args::{QueryArgs, QueryFormat};
use crate::output::say;

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
    let answer = crate::client(home)?.query(&sql)?;
    match &a.out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            write(&answer, a.format, file)
                .with_context(|| format!("writing {}", path.display()))?;
            if json {
                say!(
                    "{}",
                    serde_json::json!({ "rows": answer.rows(), "out": path })
                );
            } else {
                say!("{} rows written to {}", answer.rows(), path.display());
            }
        }
        None if json => {
            let mut out = Vec::new();
            write(&answer, QueryFormat::Jsonl, &mut out)?;
            let rows: Vec<serde_json::Value> = out
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(serde_json::from_slice)
                .collect::<Result<_, _>>()?;
            let columns: Vec<&String> = answer.schema.fields().iter().map(|f| f.name()).collect();
            say!(
                "{}",
                serde_json::json!({ "columns": columns, "rows": rows })
            );
        }
        None => {
            write(&answer, a.format, std::io::stdout())?;
        }
    }
    Ok(())
}

/// Writes the rows in `format` to `w`.
fn write<W: Write + Send>(answer: &Answer, format: QueryFormat, mut w: W) -> anyhow::Result<()> {
    match format {
        QueryFormat::Table => {
            let table = pretty_format_batches(&answer.batches)?;
            writeln!(w, "{table}")?;
            writeln!(w, "{} rows", answer.rows())?;
        }
        QueryFormat::Csv => {
            let mut csv = CsvWriterBuilder::new().with_header(true).build(w);
            if answer.batches.is_empty() {
                let header: Vec<&str> = answer
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                let mut inner = csv.into_inner();
                writeln!(inner, "{}", header.join(","))?;
                return Ok(());
            }
            for b in &answer.batches {
                csv.write(b)?;
            }
        }
        QueryFormat::Jsonl => {
            let mut lines = LineDelimitedWriter::new(w);
            for b in &answer.batches {
                lines.write(b)?;
            }
            lines.finish()?;
        }
        QueryFormat::Parquet => {
            let mut pq = parquet::arrow::ArrowWriter::try_new(w, answer.schema.clone(), None)?;
            for b in &answer.batches {
                pq.write(b)?;
            }
            pq.close()?;
        }
    }
    Ok(())
}
