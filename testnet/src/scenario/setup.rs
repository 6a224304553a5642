//! The steps scenarios share: start a proxied mesh, publish, wait for and time
//! what the nodes learned, read their memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::report::{Options, Report};
use crate::observe::{self};
use crate::proxy::FaultProxy;
use crate::{sample, Testnet, TestnetConfig};

const DOMAINS: [&str; 8] = [
    "sales",
    "finance",
    "logistics",
    "marketing",
    "support",
    "risk",
    "supply",
    "people",
];

/// A started mesh whose links all run through the returned proxy.
pub(super) fn mesh(opts: &Options) -> anyhow::Result<(Testnet, FaultProxy)> {
    if opts.nodes < 2 {
        bail!("a scenario needs at least 2 nodes");
    }
    let domains: Vec<String> = (0..opts.domains.max(1))
        .map(|i| match DOMAINS.get(i) {
            Some(d) => d.to_string(),
            None => format!("domain{i}"),
        })
        .collect();
    let names: Vec<&str> = domains.iter().map(String::as_str).collect();
    let mut config = TestnetConfig::new(opts.mesh.clone(), opts.nodes, &names);
    config.dir = opts.dir.clone();
    let mut net = Testnet::create(config)?;
    let proxy = FaultProxy::new()?;
    net.start_all_proxied(&proxy, opts.chords, 0x5EED)?;
    Ok((net, proxy))
}

/// Publishes a tiny product `<node's domain>/<name>@1.0.0` on node `i`; returns its
/// `product@version` label.
pub(super) fn publish_tiny(net: &Testnet, i: usize, name: &str) -> anyhow::Result<String> {
    let product = format!("{}/{name}", net.nodes[i].domain);
    let dir = net.root().join("data").join(name);
    sample::write_orders(&dir, 20, name.len() as u64)?;
    net.publish(i, &dir, &sample::manifest_toml(&product, "1.0.0"))
        .with_context(|| format!("publishing {product} on node {i}"))?;
    Ok(format!("{product}@1.0.0"))
}

/// Waits until every node in `nodes` has learned every label (or the deadline
/// passes); returns each node's learned-times.
pub(super) fn wait_learned(
    net: &Testnet,
    nodes: &[usize],
    labels: &[String],
    deadline: Duration,
) -> Vec<HashMap<String, f64>> {
    let until = Instant::now() + deadline;
    loop {
        let all = observe::learned_all(net);
        let done = nodes
            .iter()
            .all(|i| labels.iter().all(|l| all[*i].contains_key(l)));
        if done || Instant::now() > until {
            return all;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Delays (s) from each label's publisher to every other node in `nodes`, and how
/// many (node, label) pairs never arrived.
pub(super) fn delays(
    times: &[HashMap<String, f64>],
    published: &[(String, usize)],
    nodes: &[usize],
) -> (Vec<f64>, usize) {
    let mut out = Vec::new();
    let mut missing = 0;
    for (label, from) in published {
        let Some(t0) = times[*from].get(label) else {
            missing += nodes.len();
            continue;
        };
        for i in nodes.iter().filter(|i| **i != *from) {
            match times[*i].get(label) {
                Some(t) => out.push((t - t0).max(0.0)),
                None => missing += 1,
            }
        }
    }
    (out, missing)
}

/// The latest time (no earlier than `since`) any node in `nodes` learned any label,
/// and how many (node, label) pairs never arrived.
pub(super) fn last_learned(
    times: &[HashMap<String, f64>],
    nodes: &[usize],
    labels: &[String],
    since: f64,
) -> (f64, usize) {
    let mut last = since;
    let mut missing = 0;
    for i in nodes {
        for l in labels {
            match times[*i].get(l) {
                Some(t) => last = last.max(*t),
                None => missing += 1,
            }
        }
    }
    (last, missing)
}

pub(super) fn rss_row(net: &Testnet, report: &mut Report) {
    let rss: Vec<f64> = net.nodes.iter().filter_map(|n| n.rss_mib()).collect();
    let Some((mean, max)) = mean_max(&rss) else {
        return;
    };
    report.row("node RSS (mean / max)", format!("{mean:.0} / {max:.0} MiB"));
    report.data["rss_mib"] = json!({ "mean": mean, "max": max, "per_node": rss });
    // Most of an idle node's RSS is the binary's pages, shared by every node.
    let private: Vec<f64> = net.nodes.iter().filter_map(|n| n.private_mib()).collect();
    if let Some((mean, max)) = mean_max(&private) {
        report.row(
            "node private memory, RssAnon (mean / max; the rest is the shared binary)",
            format!("{mean:.0} / {max:.0} MiB"),
        );
        report.data["private_mib"] = json!({ "mean": mean, "max": max });
    }
}

/// The mean and the largest of `values`, if there are any.
fn mean_max(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let max = values.iter().cloned().fold(0.0, f64::max);
    Some((values.iter().sum::<f64>() / values.len() as f64, max))
}
