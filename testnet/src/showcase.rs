//! A small catalog worth browsing, on a running 3-domain testnet (sales, finance,
//! logistics): several products and versions, lineage with a pinned upstream,
//! tags and classifications, and usage from fetches by the other domains. The
//! demo's `--serve` and the web catalog's browser test both build on it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::{sample, Testnet};

/// How long each node may take to learn of a product.
const DEADLINE: Duration = Duration::from_secs(60);

/// What the showcase published.
#[derive(Debug, Clone)]
pub struct Showcase {
    /// The manifest hash `finance/revenue` pins `sales/orders` 1.0.0 to.
    pub pinned_orders: String,
    /// Every `domain/name@version` published, in order.
    pub published: Vec<String>,
}

fn revenue_toml(pinned: &str) -> String {
    format!(
        r#"id = "finance/revenue"
version = "1.0.0"
status = "active"
title = "Daily revenue"
description = "Revenue per day in EUR, summed from sales orders.\n\nBuilt from sales/orders 1.0.0 exactly (pinned), so a new orders version does not change it."
classification = "confidential"
tags = ["finance", "Daily", "kpi"]

[owner]
team = "finance-analytics"
contact = "fin-analytics@example.com"

[[schema]]
name = "day"
type = "date"
required = true
unique = true
description = "Calendar day (UTC)"

[[schema]]
name = "revenue_eur"
type = "number"
required = true
description = "Sum of order amounts that day"

[sla]
freshness = "48h"
update_frequency = "1d"
availability = 99.9

[[lineage]]
id = "sales/orders"
manifest = "{pinned}"
"#
    )
}

const SHIPMENTS_TOML: &str = r##"id = "logistics/shipments"
version = "2.0.0"
status = "active"
title = "Shipments"
description = "One row per parcel shipped for an order, with its carrier."
classification = "public"
tags = ["logistics", "daily"]

[owner]
team = "logistics-ops"
contact = "#logistics-data"

[[schema]]
name = "shipment_id"
type = "string"
required = true
unique = true
description = "Carrier tracking number"

[[schema]]
name = "order_id"
type = "integer"
required = true
description = "The order shipped (sales/orders)"

[[schema]]
name = "carrier"
type = "string"
required = true
description = "Who carries it"

[sla]
freshness = "24h"

[[lineage]]
id = "sales/orders"
"##;

/// Publishes the showcase on `net` (nodes 0, 1, 2 of domains sales, finance,
/// logistics, running), writing data under `dir`: `sales/orders` 1.0.0 fetched by
/// the other two domains, then [`extend`].
pub fn publish(net: &Testnet, dir: &Path, rows: usize) -> anyhow::Result<Showcase> {
    let orders_dir = dir.join("orders");
    sample::write_orders(&orders_dir, rows, 7)?;
    let orders = net
        .publish(
            0,
            &orders_dir,
            &sample::manifest_toml("sales/orders", "1.0.0"),
        )
        .context("publishing sales/orders 1.0.0")?;
    for i in 1..3 {
        net.wait_product(i, "sales/orders", "1.0.0", DEADLINE)?;
        net.fetch(i, "sales/orders@1.0.0", &dir.join(format!("fetched-{i}")))
            .with_context(|| format!("node {i} fetching sales/orders"))?;
    }
    extend(net, dir, rows, &orders.manifest)
}

/// On a mesh where `sales/orders` 1.0.0 (manifest `orders_manifest`) is published
/// and was fetched by finance and logistics: publishes `finance/revenue` pinned to
/// it, `logistics/shipments` built from it, and `sales/orders` 1.1.0; waits until
/// every node knows every version and node 0 counts both consumers' fetches.
pub fn extend(
    net: &Testnet,
    dir: &Path,
    rows: usize,
    orders_manifest: &str,
) -> anyhow::Result<Showcase> {
    let mut published = vec!["sales/orders@1.0.0".to_string()];
    let orders_dir = dir.join("orders");
    let revenue_dir = dir.join("revenue");
    std::fs::create_dir_all(&revenue_dir)?;
    let mut csv = String::from("day,revenue_eur\n");
    for d in 1..=28 {
        csv.push_str(&format!("2026-11-{d:02},{}.50\n", 1000 + d * 37));
    }
    std::fs::write(revenue_dir.join("revenue.csv"), csv)?;
    net.publish(1, &revenue_dir, &revenue_toml(orders_manifest))
        .context("publishing finance/revenue")?;
    published.push("finance/revenue@1.0.0".to_string());

    let shipments_dir = dir.join("shipments");
    std::fs::create_dir_all(&shipments_dir)?;
    let mut csv = String::from("shipment_id,order_id,carrier\n");
    for i in 1..=200 {
        let carrier = ["dhl", "ups", "postnl"][i % 3];
        csv.push_str(&format!("TRK{i:06},{i},{carrier}\n"));
    }
    std::fs::write(shipments_dir.join("shipments.csv"), csv)?;
    net.publish(2, &shipments_dir, SHIPMENTS_TOML)
        .context("publishing logistics/shipments")?;
    published.push("logistics/shipments@2.0.0".to_string());

    // A newer orders version: finance/revenue stays pinned to 1.0.0.
    sample::write_orders(&orders_dir, rows, 8)?;
    net.publish(
        0,
        &orders_dir,
        &sample::manifest_toml("sales/orders", "1.1.0"),
    )
    .context("publishing sales/orders 1.1.0")?;
    published.push("sales/orders@1.1.0".to_string());

    for i in 0..3 {
        for p in &published {
            let (id, version) = p.split_once('@').unwrap_or((p, ""));
            net.wait_product(i, id, version, DEADLINE)?;
        }
    }
    let sales = net.nodes[0].client()?;
    let orders_ref = "sales/orders".parse()?;
    crate::wait_until("usage of sales/orders to reach node 0", DEADLINE, || {
        Ok(sales.usage(&orders_ref)?.by_consumer.len() >= 2)
    })?;
    Ok(Showcase {
        pinned_orders: orders_manifest.to_string(),
        published,
    })
}
