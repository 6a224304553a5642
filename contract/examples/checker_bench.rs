//! mesh's streaming contract checker on one file, as at publish
//! (`quality::check`: every value against its type and options, required, unique,
//! distinct counts, row count and the contract's quality rules, in one pass).
//! Prints the wall time in seconds and the rows. `bench/checker` runs it beside
//! DataFusion (`query_bench`) on the same file.
//!
//! Usage: `checker_bench stream CONTRACT.yaml DATA_FILE`

use std::path::PathBuf;
use std::time::Instant;

use mesh_contract::odcs;
use mesh_contract::quality::{self, Plan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, contract, data] = args.as_slice() else {
        return Err("usage: checker_bench stream CONTRACT.yaml DATA_FILE".into());
    };
    if mode != "stream" {
        return Err(format!("mode {mode:?}: stream (DataFusion is `query_bench`)").into());
    }
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
    let report = quality::check(&plan, &fields, &files)?;
    let rows = report.quality.map(|q| q.rows).unwrap_or(0);
    println!("{:.3} {rows}", start.elapsed().as_secs_f64());
    Ok(())
}
