//! Scenarios of dissemination on a healthy mesh: announcement propagation and
//! policy convergence.

use std::time::{Duration, Instant};

use serde_json::json;

use super::report::{Options, Report};
use super::setup::*;
use crate::observe::{self, now_secs, Delays, Traffic};

/// M announcements from rotating publishers: % of live nodes reached, delay
/// percentiles, gossip duplicates per node, the bytes each node received and sent
/// per announcement (from the first publish until every node learned the last:
/// gossip, manifest prefetches, provider records and all), the announcement's size,
/// idle RSS.
pub fn propagation(opts: &Options) -> anyhow::Result<Report> {
    let (net, _proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("propagation", n);
    rss_row(&net, &mut report);
    let before = observe::traffic_all(&net);
    let mut published = Vec::new();
    for k in 0..opts.announcements {
        let from = k % n;
        published.push((publish_tiny(&net, from, &format!("prop-{k}"))?, from));
    }
    let labels: Vec<String> = published.iter().map(|(l, _)| l.clone()).collect();
    let all: Vec<usize> = (0..n).collect();
    let times = wait_learned(&net, &all, &labels, opts.deadline);
    let traffic = Traffic::mean_since(&before, &observe::traffic_all(&net));
    let (d, missing) = delays(&times, &published, &all);
    let pairs = published.len() * (n - 1);
    let reached = 100.0 * d.len() as f64 / pairs.max(1) as f64;
    let stats = Delays::of(d);
    let counts: Vec<(u64, u64)> = (0..n)
        .filter_map(|i| observe::announce_counts(&net, i))
        .collect();
    let dupes = counts.iter().map(|c| c.1).sum::<u64>() as f64 / counts.len().max(1) as f64;
    report.row("announcements", published.len().to_string());
    report.row("live nodes reached", format!("{reached:.1}%"));
    report.row("delay p50 / p95 / p99 / max", stats.show());
    report.row(
        "gossip duplicates per node",
        format!(
            "{dupes:.1} ({:.2} per announcement)",
            dupes / published.len().max(1) as f64
        ),
    );
    let per = |bytes: u64| bytes as f64 / published.len().max(1) as f64;
    report.row(
        "traffic per node per announcement (in / out, every transport and protocol)",
        format!(
            "{:.0} / {:.0} bytes; {:.1} gossip copies received",
            per(traffic.bytes_in),
            per(traffic.bytes_out),
            per(traffic.announce_copies)
        ),
    );
    let size = traffic.announcement_size();
    report.row(
        "announcement size A (signed envelope, mean)",
        size.map_or("none arrived".into(), |a| format!("{a} bytes")),
    );
    report.check(missing == 0, || {
        format!("{missing} of {pairs} (node, announcement) pairs never arrived")
    });
    report.data = json!({
        "announcements": published.len(),
        "reached_pct": reached,
        "delay": stats,
        "duplicates_per_node": dupes,
        "per_announcement": {
            "bytes_in": per(traffic.bytes_in),
            "bytes_out": per(traffic.bytes_out),
            "gossip_copies": per(traffic.announce_copies),
        },
        "announcement_bytes": size,
        "rss_mib": report.data["rss_mib"].clone(),
    });
    Ok(report)
}

/// A policy submitted at one node: time until every node enforces it.
pub fn policy_convergence(opts: &Options) -> anyhow::Result<Report> {
    let (net, _proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("policy-convergence", n);
    let change = mesh_protocol::policy_change::PolicyChange {
        expires_in: Some("200d".into()),
        ..Default::default()
    };
    let signed = net.draft_policy(0, &change, &[0, 1])?;
    let version = signed.value()?.version;
    let submitted = now_secs();
    net.submit_policy(0, &signed)?;
    let until = Instant::now() + opts.deadline;
    let times = loop {
        let t: Vec<Option<f64>> = net
            .nodes
            .iter()
            .map(|node| observe::policies(&node.log()).get(&version).copied())
            .collect();
        if t.iter().all(Option::is_some) || Instant::now() > until {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let enforced = times.iter().flatten().count();
    let last = times.iter().flatten().cloned().fold(f64::NAN, f64::max);
    let first = times[0].unwrap_or(submitted);
    let secs: Vec<f64> = times
        .iter()
        .flatten()
        .map(|t| (t - first).max(0.0))
        .collect();
    let stats = Delays::of(secs);
    report.row("policy version", version.to_string());
    report.row("nodes enforcing it", format!("{enforced} of {n}"));
    report.row(
        "time until all enforce it",
        format!("{:.0} ms", (last - first) * 1000.0),
    );
    report.row("per-node delay p50 / p95 / p99 / max", stats.show());
    report.check(enforced == n, || {
        format!("{} node(s) never accepted policy v{version}", n - enforced)
    });
    report.data = json!({
        "version": version,
        "enforced": enforced,
        "all_ms": (last - first) * 1000.0,
        "delay": stats,
    });
    Ok(report)
}
