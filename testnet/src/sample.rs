//! Sample data products for demos and tests: deterministic CSV data and a complete
//! `product.toml`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A complete manifest for `domain/name@version`, with schema, SLA and lineage.
pub fn manifest_toml(product: &str, version: &str) -> String {
    format!(
        r#"id = "{product}"
version = "{version}"
status = "active"
title = "Orders"
description = "Every customer order, one row per order, refreshed daily."
classification = "internal"
tags = ["orders", "daily"]

[owner]
team = "sales-data"
contact = "sales-data@example.com"

[[schema]]
name = "order_id"
type = "integer"
required = true
unique = true
description = "Unique order number"

[[schema]]
name = "customer_email"
type = "string"
required = true
classification = "pii"
description = "Who ordered"

[[schema]]
name = "amount"
type = "number"
required = true
description = "Order total in EUR"

[sla]
freshness = "24h"
update_frequency = "1d"
availability = 99.5
retention = "365d"

[[lineage]]
id = "crm/customers"
"#
    )
}

/// A manifest like [`manifest_toml`] without a schema: for products of files
/// that are not tables (the benchmarks' random bytes), which a schema would
/// describe as missing data.
pub fn binary_manifest_toml(product: &str, version: &str) -> String {
    let text = manifest_toml(product, version);
    let start = text.find("[[schema]]").unwrap_or(text.len());
    let end = text.find("[sla]").unwrap_or(text.len());
    format!("{}{}", &text[..start], &text[end..])
}

/// [`binary_manifest_toml`] titled for the benchmarks' products of random bytes.
pub fn bench_manifest_toml(product: &str, version: &str) -> String {
    binary_manifest_toml(product, version).replace("Orders", "Bench data")
}

/// The sample Cedar rules (`examples/governance/rules.cedar`).
pub const RULES: &str = include_str!("../../examples/governance/rules.cedar");

/// A manifest that complies with the sample rules for a product holding personal
/// data: classified `pii`, with a retention SLA, readable by `consumers`.
pub fn restricted_manifest_toml(product: &str, version: &str, consumers: &[&str]) -> String {
    let list = consumers
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    manifest_toml(product, version).replace(
        "classification = \"internal\"\ntags",
        &format!("classification = \"pii\"\nconsumers = [{list}]\ntags"),
    )
}

/// Writes `rows` rows of deterministic order data to `dir/orders.csv`.
pub fn write_orders(dir: &Path, rows: usize, seed: u64) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut s = String::with_capacity(rows * 48);
    s.push_str("order_id,customer_email,amount\n");
    let mut rng = mesh_testkit::SeededRng::new(seed);
    for i in 0..rows {
        let x = rng.next_u64();
        let _ = writeln!(
            s,
            "{i},customer{}@example.com,{}.{:02}",
            x % 10_000,
            x % 1000,
            x % 100
        );
    }
    let path = dir.join("orders.csv");
    std::fs::write(&path, s)?;
    Ok(path)
}
