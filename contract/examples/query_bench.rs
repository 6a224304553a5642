//! One query of `bench/query`: reads a product's files as tables with their
//! contract's types (`mesh_contract::tables`, as `mesh query` does on a node) and
//! runs SQL over them once, printing the wall time in seconds (of mapping the files
//! and running the query, the session made before) and the row count.
//!
//! Usage: `query_bench CONTRACT.yaml DATA_DIR SQL` (every `.csv`, `.jsonl`,
//! `.json` or `.parquet` file under DATA_DIR is mapped to the contract's objects
//! by name, as at publish). With `MESH_BENCH_SHOW=1` the answer is printed too
//! (`EXPLAIN ...` shows the plan).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_contract::engine::{self, QueryError};
use mesh_contract::odcs;
use mesh_contract::quality::Plan;
use mesh_contract::tables::product_tables;
use mesh_protocol::manifest::NullValues;

fn files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push((rel.to_string_lossy().replace('\\', "/"), path.clone()));
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, contract, data, sql] = args.as_slice() else {
        return Err("usage: query_bench CONTRACT.yaml DATA_DIR SQL".into());
    };
    let doc = odcs::document(&std::fs::read_to_string(contract)?)?;
    let plan = Plan::from_contract(&doc, &NullValues::default());
    if !plan.lint.is_empty() {
        return Err(format!("the contract: {:?}", plan.lint).into());
    }
    let root = PathBuf::from(data);
    let mut list = Vec::new();
    files(&root, &root, &mut list)?;
    let sql = sql.clone();
    // `MESH_BENCH_RUNS=N`: the whole (a new session, the files mapped, the
    // query) N times in this process, each time printed: the first is a cold
    // process, the rest a warm one, as the daemon is after its first query.
    let runs: usize = std::env::var("MESH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let (answer, took) = engine::run(Duration::from_secs(3600), move || async move {
        let mut last = None;
        let mut took = Vec::new();
        for _ in 0..runs.max(1) {
            let ctx = engine::session()?;
            // Timed as DuckDB is in `bench/query`: mapping the files, then the query.
            let start = Instant::now();
            for t in product_tables(&ctx, &plan, &list).await? {
                let name = t.physical_name.clone().unwrap_or(t.name.clone());
                ctx.register_table(name.as_str(), t.frame.into_view())
                    .map_err(|e| QueryError::Failed(e.to_string()))?;
            }
            last = Some(engine::collect(&ctx, &sql).await?);
            took.push(start.elapsed());
        }
        let answer = last.ok_or_else(|| QueryError::Failed("no run".into()))?;
        Ok((answer, took))
    })?;
    let took: Vec<String> = took
        .iter()
        .map(|t| format!("{:.4}", t.as_secs_f64()))
        .collect();
    println!("{} {}", took.join(" "), answer.rows());
    // `MESH_BENCH_SHOW=1`: the answer too (e.g. of `EXPLAIN ...`).
    if std::env::var_os("MESH_BENCH_SHOW").is_some() {
        let shown = datafusion::arrow::util::pretty::pretty_format_batches(&answer.batches)?;
        println!("{shown}");
    }
    Ok(())
}
