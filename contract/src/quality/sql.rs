//! `sql` quality rules, run by the SQL engine ([`crate::engine`], DataFusion) over
//! an object's rows.
//!
//! An object with a `sql` rule (at object or property level) gets a table of its
//! own: named after the object (`physicalName`, else `name`; a view carries the
//! other name), one column per property (named as in the files), typed by logical
//! type (integer `BIGINT`, number `DOUBLE`, boolean, date, timestamp in UTC, time;
//! text for the rest). The rows are the ones the checker reads, null markers
//! applied; a value that is not of its type is null here (the checker reports it).
//! They are written to a temporary Parquet file in batches of [`BATCH`] rows as
//! the files are read, so memory stays bounded; after the last file each query
//! runs with `{object}` / `{table}` and `{property}` / `{column}` (also `${...}`)
//! replaced by the quoted names; the first column of its first row is the
//! measurement the bounds compare.
//!
//! Queries may only read (see [`crate::engine`]) and are stopped after
//! [`QUERY_SECONDS`]. A query that cannot run fails its rule, with the reason.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::ParquetReadOptions;
use parquet::arrow::ArrowWriter;

use super::plan::ObjectPlan;
use crate::engine::{self, arrow_type, QueryError};

/// Rows per batch written to the table's file.
pub(crate) const BATCH: usize = 8192;
/// The longest a query may run.
pub const QUERY_SECONDS: u64 = 60;

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An object's rows, on their way into the SQL engine.
pub(crate) struct SqlTable {
    /// The table's name (quoted) and the view's, if the object has two names.
    table: String,
    view: Option<String>,
    schema: SchemaRef,
    builders: Vec<StringBuilder>,
    pending: usize,
    dir: tempfile::TempDir,
    writer: Option<ArrowWriter<File>>,
    /// Why the table could not be built or loaded, if it could not.
    pub(crate) broken: Option<String>,
    /// How long a query may run.
    limit: Duration,
}

impl std::fmt::Debug for SqlTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTable")
            .field("table", &self.table)
            .finish()
    }
}

impl SqlTable {
    pub(crate) fn new(o: &ObjectPlan) -> Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| format!("the SQL engine could not start: {e}");
        let name = o.physical_name.clone().unwrap_or_else(|| o.name.clone());
        let view = (!o.name.is_empty() && o.name != name).then(|| quoted(&o.name));
        let schema = Arc::new(Schema::new(
            o.columns
                .iter()
                .map(|c| Field::new(&c.column, arrow_type(c.logical_type), true))
                .collect::<Vec<_>>(),
        ));
        let dir = tempfile::tempdir().map_err(|e| fail(&e))?;
        let file = File::create(dir.path().join("rows.parquet")).map_err(|e| fail(&e))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), None).map_err(|e| fail(&e))?;
        Ok(SqlTable {
            table: quoted(&name),
            view,
            builders: o.columns.iter().map(|_| StringBuilder::new()).collect(),
            schema,
            pending: 0,
            dir,
            writer: Some(writer),
            broken: None,
            limit: Duration::from_secs(QUERY_SECONDS),
        })
    }

    /// Adds a row (values as text, `None` for null), in the plan's column order.
    pub(crate) fn row(&mut self, values: &[Option<std::borrow::Cow<'_, str>>]) {
        if self.broken.is_some() {
            return;
        }
        for (i, b) in self.builders.iter_mut().enumerate() {
            b.append_option(values.get(i).and_then(Option::as_deref));
        }
        self.pending += 1;
        if self.pending >= BATCH {
            self.flush();
        }
    }

    /// Writes the pending rows as one batch, each column cast to its type (a
    /// value that does not parse becomes null).
    fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        self.pending = 0;
        let columns: Result<Vec<ArrayRef>, String> = self
            .builders
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(b, f)| {
                let text: ArrayRef = Arc::new(b.finish());
                let options = arrow_cast::CastOptions {
                    safe: true,
                    ..Default::default()
                };
                arrow_cast::cast_with_options(&text, f.data_type(), &options)
                    .map_err(|e| e.to_string())
            })
            .collect();
        let written = columns
            .and_then(|c| RecordBatch::try_new(self.schema.clone(), c).map_err(|e| e.to_string()))
            .and_then(|batch| match &mut self.writer {
                Some(w) => w.write(&batch).map_err(|e| e.to_string()),
                None => Err("the table was already closed".into()),
            });
        if let Err(e) = written {
            self.broken = Some(format!("loading the rows into the SQL engine failed: {e}"));
        }
    }

    /// Writes what is pending and closes the table's file (once).
    fn close(&mut self) {
        self.flush();
        if let Some(w) = self.writer.take() {
            if let Err(e) = w.close() {
                self.broken = Some(format!("loading the rows into the SQL engine failed: {e}"));
            }
        }
    }

    /// `query` with its placeholders replaced by the quoted names.
    fn expand(&self, query: &str, object: &ObjectPlan, property: Option<&str>) -> String {
        let column = property
            .and_then(|p| object.columns.iter().find(|c| c.name == p))
            .map(|c| quoted(&c.column));
        let mut q = query.to_owned();
        for key in ["object", "table"] {
            q = q
                .replace(&format!("${{{key}}}"), &self.table)
                .replace(&format!("{{{key}}}"), &self.table);
        }
        if let Some(c) = &column {
            for key in ["property", "column"] {
                q = q
                    .replace(&format!("${{{key}}}"), c)
                    .replace(&format!("{{{key}}}"), c);
            }
        }
        q
    }

    /// The first column of the first row `query` returns, as a number.
    pub(crate) fn query(
        &mut self,
        query: &str,
        object: &ObjectPlan,
        property: Option<&str>,
    ) -> Result<f64, String> {
        self.close();
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let q = self.expand(query, object, property);
        let path = self.dir.path().join("rows.parquet");
        let (table, view) = (self.table.clone(), self.view.clone());
        let batches = engine::run(self.limit, move || async move {
            let ctx = engine::session()?;
            let path = path.to_string_lossy().into_owned();
            ctx.register_parquet(&table, &path, ParquetReadOptions::default())
                .await
                .map_err(|e| QueryError::Start(e.to_string()))?;
            if let Some(view) = view {
                ctx.register_parquet(&view, &path, ParquetReadOptions::default())
                    .await
                    .map_err(|e| QueryError::Start(e.to_string()))?;
            }
            engine::collect(&ctx, &q).await
        })
        .map_err(|e| e.to_string())?;
        first_number(&batches.batches)
    }
}

/// The first column of the first row, as a number (a boolean is 1 or 0; text
/// that reads as a number counts).
fn first_number(batches: &[RecordBatch]) -> Result<f64, String> {
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err("the query returned no row".into());
    };
    if batch.num_columns() == 0 {
        return Err("the query returned no column".into());
    }
    let cell = batch.column(0).slice(0, 1);
    if cell.logical_null_count() > 0 {
        return Err("the query returned NULL".into());
    }
    let options = arrow_cast::CastOptions {
        safe: true,
        ..Default::default()
    };
    let number = arrow_cast::cast_with_options(&cell, &DataType::Float64, &options)
        .map_err(|_| format!("the query returned {}, not a number", cell.data_type()))?;
    let number = number
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .filter(|a| !a.is_null(0))
        .ok_or_else(|| {
            if engine::is_text(cell.data_type()) {
                "the query returned text, not a number".to_string()
            } else {
                format!("the query returned {}, not a number", cell.data_type())
            }
        })?;
    Ok(number.value(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::Plan;
    use mesh_protocol::manifest::NullValues;

    fn table() -> (Plan, SqlTable) {
        let doc = crate::odcs::document(
            "schema:\n  - name: t\n    physicalName: t_raw\n    properties:\n      - {name: n, logicalType: integer}\n      - {name: s, physicalName: s_col}\n",
        )
        .expect("doc");
        let plan = Plan::from_contract(&doc, &NullValues::default());
        let mut t = SqlTable::new(&plan.objects[0]).expect("table");
        for i in 0..1000 {
            t.row(&[Some(i.to_string().into()), (i % 2 == 0).then(|| "x".into())]);
        }
        (plan, t)
    }

    #[test]
    fn queries_see_every_row_by_either_name() {
        let (plan, mut t) = table();
        let o = &plan.objects[0];
        assert_eq!(
            t.query("SELECT SUM(n) FROM {object}", o, None),
            Ok(499_500.0)
        );
        assert_eq!(
            t.query(
                "SELECT COUNT(*) FROM t WHERE {column} IS NULL",
                o,
                Some("s")
            ),
            Ok(500.0)
        );
        assert_eq!(
            t.query("SELECT COUNT(*) FROM ${table} WHERE s_col = 'x'", o, None),
            Ok(500.0)
        );
        assert_eq!(t.query("SELECT MAX(n) > 10 FROM t_raw", o, None), Ok(1.0));
    }

    #[test]
    fn queries_only_read_and_are_stopped_in_time() {
        let (plan, mut t) = table();
        let o = &plan.objects[0];
        for hostile in [
            "ATTACH DATABASE '/etc/passwd' AS p",
            "DELETE FROM t",
            "PRAGMA writable_schema = 1",
            "CREATE TABLE x (a)",
            "SELECT load_extension('/tmp/x')",
        ] {
            let err = t.query(hostile, o, None).expect_err(hostile);
            assert!(err.contains("the query failed"), "{hostile}: {err}");
        }
        assert_eq!(
            t.query("SELECT COUNT(*) FROM t", o, None),
            Ok(1000.0),
            "nothing changed"
        );
        for (q, why) in [
            ("SELECT NULL", "NULL"),
            ("SELECT 'many'", "text"),
            ("SELECT n FROM t WHERE n < 0", "no row"),
            ("SELEC 1", "failed"),
        ] {
            let err = t.query(q, o, None).expect_err(q);
            assert!(err.contains(why), "{q}: {err}");
        }
        t.limit = Duration::from_millis(300);
        let err = t
            .query(
                "SELECT COUNT(*) FROM generate_series(1, 100000000000) a",
                o,
                None,
            )
            .expect_err("endless");
        assert!(err.contains("was stopped"), "{err}");
    }
}
