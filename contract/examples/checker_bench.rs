//! The contract checker against DataFusion on the same file (issue 35, item 4):
//! `stream` runs mesh's streaming checker (`quality::check`: types, nulls,
//! required, unique, distinct counts, row count, in one pass); `datafusion`
//! reads the file as a table with the contract's types (as `mesh query` does; a
//! value that does not parse fails the cast) and computes the same counts in SQL
//! (rows, non-null values and an estimate of distinct ones per column:
//! `COUNT(DISTINCT)` of a 27-million-row column does not fit the engine's
//! 512 MiB pool, and the checker too counts distinct values only up to a bound). Prints the wall time in
//! seconds and the rows. Run each mode as its own process to compare peak RSS.
//!
//! Usage: `checker_bench stream|datafusion CONTRACT.yaml DATA_FILE`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mesh_contract::engine::{self, QueryError};
use mesh_contract::odcs;
use mesh_contract::quality::{self, Plan};
use mesh_contract::tables::product_tables;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, contract, data] = args.as_slice() else {
        return Err("usage: checker_bench stream|datafusion CONTRACT.yaml DATA_FILE".into());
    };
    let yaml = std::fs::read_to_string(contract)?;
    let draft = odcs::import(&yaml, Some("bench"))?.draft;
    let fields = draft.fields();
    let nulls = draft.nulls();
    let plan = Plan::new(&fields, &nulls, draft.contract.as_ref());
    let path = PathBuf::from(data);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = vec![(name, path)];
    let start = Instant::now();
    let rows = match mode.as_str() {
        "stream" => {
            let report = quality::check(&plan, &fields, &files)?;
            report.quality.map(|q| q.rows).unwrap_or(0)
        }
        "datafusion" => {
            // approx_distinct takes no floats: a number column is counted as text.
            let columns: Vec<String> = fields
                .iter()
                .map(|f| match f.logical_type {
                    mesh_protocol::manifest::LogicalType::Number => {
                        format!("CAST(\"{}\" AS VARCHAR)", f.name)
                    }
                    _ => format!("\"{}\"", f.name),
                })
                .collect();
            engine::run(Duration::from_secs(3600), move || async move {
                let ctx = engine::session()?;
                let table = product_tables(&ctx, &plan, &files)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| QueryError::Failed("no table".into()))?;
                ctx.register_table("t", table.frame.into_view())
                    .map_err(|e| QueryError::Failed(e.to_string()))?;
                let counts: Vec<String> = columns
                    .iter()
                    .map(|c| format!("COUNT({c}), APPROX_DISTINCT({c})"))
                    .collect();
                let sql = format!("SELECT COUNT(*), {} FROM t", counts.join(", "));
                let answer = engine::collect(&ctx, &sql).await?;
                let rows = answer
                    .batches
                    .first()
                    .and_then(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<arrow_array::Int64Array>()
                            .map(|a| a.value(0) as u64)
                    })
                    .unwrap_or(0);
                Ok(rows)
            })?
        }
        other => return Err(format!("mode {other:?}: stream or datafusion").into()),
    };
    println!("{:.3} {rows}", start.elapsed().as_secs_f64());
    Ok(())
}
