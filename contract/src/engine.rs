//! The one SQL engine of mesh: Apache DataFusion, set up the same way wherever a
//! query runs (a contract's `sql` quality rules today; products as tables next).
//!
//! A session here only reads: DDL (`CREATE EXTERNAL TABLE`, which would open any
//! file), DML (`COPY ... TO`, which would write one) and statements (`SET`) are
//! refused; its memory is capped by a pool ([`MEMORY_LIMIT`]), past which a query
//! fails instead of taking the machine; and every query runs on a thread and
//! runtime of its own with a deadline, so a caller on a tokio runtime (the node) or
//! none (the CLI) is served alike. Identifiers are case-sensitive as written
//! (`"OrderId"` and `OrderId` name the same column), as contract authors expect.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use mesh_protocol::manifest::LogicalType;

/// The most memory one session's queries may hold at once.
pub const MEMORY_LIMIT: usize = 512 * 1024 * 1024;

/// Why a query gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The engine could not be set up (no thread, no runtime).
    #[error("the SQL engine could not start: {0}")]
    Start(String),
    /// The query does not plan (syntax, an unknown table or column, a write) or
    /// failed while running (a memory limit, a value that does not parse).
    #[error("the query failed: {0}")]
    Failed(String),
    /// It ran longer than its deadline and was stopped.
    #[error("the query ran longer than {} s and was stopped", .0.as_secs())]
    TimedOut(Duration),
}

/// The column type a scalar logical type is read as (objects and arrays as
/// text; `tables` reads them nested where the format allows).
pub fn arrow_type(t: LogicalType) -> DataType {
    match t {
        LogicalType::Integer => DataType::Int64,
        LogicalType::Number => DataType::Float64,
        LogicalType::Boolean => DataType::Boolean,
        LogicalType::Date => DataType::Date32,
        LogicalType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        LogicalType::Time => DataType::Time64(TimeUnit::Microsecond),
        LogicalType::String | LogicalType::Object | LogicalType::Array => DataType::Utf8,
    }
}

/// Whether an Arrow type holds text (plain strings, large ones or string views).
pub fn is_text(d: &DataType) -> bool {
    matches!(d, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// A new read-only session with the memory pool.
pub fn session() -> Result<SessionContext, QueryError> {
    session_of(2)
}

/// A read-only session that runs each query on one partition, so the same
/// inputs give the same rows in the same order (a derived product's bytes).
pub fn deterministic_session() -> Result<SessionContext, QueryError> {
    session_of(1)
}

fn session_of(partitions: usize) -> Result<SessionContext, QueryError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(MEMORY_LIMIT, 1.0)
        .build_arc()
        .map_err(|e| QueryError::Start(e.to_string()))?;
    let mut config = SessionConfig::new().with_target_partitions(partitions);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    // Filters evaluated inside the Parquet reader, cheapest first, where a
    // table's files are large enough for it to pay (`tables::PUSHDOWN_MIN_BYTES`;
    // each table says so itself).
    config.options_mut().execution.parquet.pushdown_filters = false;
    config.options_mut().execution.parquet.reorder_filters = true;
    // A table's files split into byte ranges, one per core, only from this size
    // on: a smaller Parquet file is most often one row group, which one range
    // reads whole while the other has nothing, so the join or aggregation after
    // the scan ran on one core; read as one stream, its batches are dealt out
    // to every core instead (`bench/query`: a join over nycflights13's 5 MB
    // Parquet 13.5 ms warm with ranges, 9 ms without; CSV the same either way).
    config.options_mut().optimizer.repartition_file_min_size = 64 << 20;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// What a session may run: queries only.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Runs `work` (which sets up tables in a session and queries them) on a thread
/// and runtime of its own, stopping it after `deadline`.
pub fn run<T, F, Fut>(deadline: Duration, work: F) -> Result<T, QueryError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, QueryError>>,
{
    let thread = std::thread::Builder::new()
        .name("mesh-sql".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_time()
                .build()
                .map_err(|e| QueryError::Start(e.to_string()))?;
            rt.block_on(async move {
                tokio::time::timeout(deadline, work())
                    .await
                    .map_err(|_| QueryError::TimedOut(deadline))?
            })
        })
        .map_err(|e| QueryError::Start(e.to_string()))?;
    thread
        .join()
        .map_err(|_| QueryError::Start("the query thread panicked".into()))?
}

/// What a query returned: its columns (also when no row came back) and rows.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The result's columns.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

impl Answer {
    /// How many rows it holds.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Plans `sql` as a read-only query in `ctx` and collects its rows.
pub async fn collect(ctx: &SessionContext, sql: &str) -> Result<Answer, QueryError> {
    let fail = |e: datafusion::error::DataFusionError| QueryError::Failed(e.to_string());
    let frame = ctx.sql_with_options(sql, read_only()).await.map_err(fail)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(fail)?;
    Ok(Answer { schema, batches })
}

/// Plans `sql` as a read-only query in `ctx` and returns its columns, running
/// nothing.
pub async fn plan_schema(ctx: &SessionContext, sql: &str) -> Result<SchemaRef, QueryError> {
    let frame = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(|e| QueryError::Failed(e.to_string()))?;
    Ok(Arc::new(frame.schema().as_arrow().clone()))
}

/// Runs `sql` in `ctx` (a [`deterministic_session`]) and writes its rows to a
/// Parquet file at `path`, byte for byte the same for the same inputs: one
/// partition, rows ordered by every orderable column unless the query orders them
/// itself, fixed writer settings (zstd, no writer version string). Returns the rows.
pub async fn write_parquet(
    ctx: &SessionContext,
    sql: &str,
    path: &std::path::Path,
) -> Result<u64, QueryError> {
    use datafusion::logical_expr::{col, LogicalPlan};
    let fail = |e: datafusion::error::DataFusionError| QueryError::Failed(e.to_string());
    let mut frame = ctx.sql_with_options(sql, read_only()).await.map_err(fail)?;
    let ordered = matches!(frame.logical_plan(), LogicalPlan::Sort(_))
        || matches!(frame.logical_plan(), LogicalPlan::Projection(p) if matches!(p.input.as_ref(), LogicalPlan::Sort(_)));
    if !ordered {
        let keys: Vec<_> = frame
            .schema()
            .fields()
            .iter()
            .filter(|f| {
                f.data_type().is_primitive()
                    || is_text(f.data_type())
                    || matches!(f.data_type(), DataType::Boolean)
            })
            .map(|f| col(datafusion::common::Column::from_name(f.name())).sort(true, true))
            .collect();
        if !keys.is_empty() {
            frame = frame.sort(keys).map_err(fail)?;
        }
    }
    write_frame_parquet(frame, path).await
}

/// Writes `frame`'s rows, in the order they come, to a Parquet file at `path`
/// with the fixed writer settings of [`write_parquet`], synced. Returns the rows.
pub async fn write_frame_parquet(
    frame: datafusion::dataframe::DataFrame,
    path: &std::path::Path,
) -> Result<u64, QueryError> {
    use futures::StreamExt;
    let fail = |e: datafusion::error::DataFusionError| QueryError::Failed(e.to_string());
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(3).map_err(|e| QueryError::Failed(e.to_string()))?,
        ))
        .set_created_by("mesh".into())
        .build();
    let file = std::fs::File::create(path)
        .map_err(|e| QueryError::Failed(format!("creating {}: {e}", path.display())))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))
        .map_err(|e| QueryError::Failed(e.to_string()))?;
    let mut stream = frame.execute_stream().await.map_err(fail)?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(fail)?;
        rows += batch.num_rows() as u64;
        writer
            .write(&batch)
            .map_err(|e| QueryError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| QueryError::Failed(format!("writing {}: {e}", path.display())))?;
    file.sync_all()
        .map_err(|e| QueryError::Failed(format!("syncing {}: {e}", path.display())))?;
    Ok(rows)
}

/// The columns and the row count of the Parquet file at `path`, from its footer.
pub fn parquet_facts(path: &std::path::Path) -> Result<(SchemaRef, u64), QueryError> {
    let failed = |e: &dyn std::fmt::Display| QueryError::Failed(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| failed(&e))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| failed(&e))?;
    let rows = builder.metadata().file_metadata().num_rows();
    Ok((builder.schema().clone(), u64::try_from(rows).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_only_and_stops_in_time() {
        let rows = run(Duration::from_secs(30), || async {
            let ctx = session()?;
            collect(&ctx, "SELECT 1 + 1 AS two").await
        })
        .expect("a query runs");
        assert_eq!(rows.rows(), 1);
        assert_eq!(rows.schema.field(0).name(), "two");
        for write in [
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
            "COPY (SELECT 1) TO '/tmp/mesh-should-not-exist.csv'",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let err = run(Duration::from_secs(30), move || async move {
                let ctx = session()?;
                collect(&ctx, write).await
            })
            .expect_err(write);
            assert!(matches!(err, QueryError::Failed(_)), "{write}: {err}");
        }
        assert!(!std::path::Path::new("/tmp/mesh-should-not-exist.csv").exists());
        let err = run(Duration::from_millis(300), || async {
            let ctx = session()?;
            collect(
                &ctx,
                "SELECT COUNT(*) FROM generate_series(1, 100000000000) a",
            )
            .await
        })
        .expect_err("endless");
        assert!(matches!(err, QueryError::TimedOut(_)), "{err}");
    }
}
