//! Scenarios: a mesh of real node processes whose links all run through a
//! [`FaultProxy`], broken in one way, measured, and judged. Each returns a
//! [`Report`]: a table for people, JSON for scripts, and whether every node got
//! everything within the deadline.
//!
//! Times come from the nodes' own logs (see [`crate::observe`]), never from polling,
//! so they do not depend on how fast the harness looks.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;

use crate::observe::{self, now_secs, Delays};
use crate::proxy::FaultProxy;
use crate::{sample, wait_until, MeshBin, Testnet, TestnetConfig};

/// The scenarios, by name.
pub const NAMES: [&str; 6] = [
    "propagation",
    "policy-convergence",
    "partition",
    "churn",
    "late-join",
    "degrade",
];

/// Scenario settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Distinct domains, assigned round-robin.
    pub domains: usize,
    /// Announcements to measure (propagation, degrade).
    pub announcements: usize,
    /// Products the mesh holds before a node joins (late-join).
    pub products: usize,
    /// Kill-and-restart rounds (churn).
    pub rounds: usize,
    /// Extra random links per node besides the ring.
    pub chords: usize,
    /// How long anything may take before the scenario fails.
    pub deadline: Duration,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Keep homes and logs here.
    pub dir: Option<PathBuf>,
}

impl Options {
    /// Defaults for `nodes` nodes.
    pub fn new(mesh: MeshBin, nodes: usize) -> Self {
        Options {
            nodes,
            domains: 4.min(nodes).max(1),
            announcements: 20,
            products: 100,
            rounds: 3,
            chords: 3,
            deadline: Duration::from_secs(120),
            mesh,
            dir: None,
        }
    }
}

/// What a scenario measured and whether it passed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Every check held.
    pub passed: bool,
    /// Checks that did not hold.
    pub problems: Vec<String>,
    /// Measurements for people, in order.
    pub rows: Vec<(String, String)>,
    /// The same and more, for scripts.
    pub data: serde_json::Value,
}

impl Report {
    fn new(scenario: &str, nodes: usize) -> Self {
        Report {
            scenario: scenario.into(),
            nodes,
            passed: true,
            problems: Vec::new(),
            rows: Vec::new(),
            data: json!({}),
        }
    }

    fn row(&mut self, what: &str, value: String) {
        self.rows.push((what.into(), value));
    }

    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.passed = false;
            self.problems.push(problem());
        }
    }

    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "### {} ({} nodes): {}\n\n| measurement | value |\n|---|---|\n",
            self.scenario,
            self.nodes,
            if self.passed { "passed" } else { "FAILED" }
        );
        for (k, v) in &self.rows {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
        for p in &self.problems {
            s.push_str(&format!("\nproblem: {p}\n"));
        }
        s
    }
}

/// Runs the named scenario.
pub fn run(name: &str, opts: &Options) -> anyhow::Result<Report> {
    match name {
        "propagation" => propagation(opts),
        "policy-convergence" => policy_convergence(opts),
        "partition" => partition(opts),
        "churn" => churn(opts),
        "late-join" => late_join(opts),
        "degrade" => degrade(opts),
        other => bail!("no scenario {other:?}; choose one of: {}", NAMES.join(", ")),
    }
}

mod degrade;
pub use degrade::degrade;

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
fn mesh(opts: &Options) -> anyhow::Result<(Testnet, FaultProxy)> {
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
fn publish_tiny(net: &Testnet, i: usize, name: &str) -> anyhow::Result<String> {
    let product = format!("{}/{name}", net.nodes[i].domain);
    let dir = net.root().join("data").join(name);
    sample::write_orders(&dir, 20, name.len() as u64)?;
    net.publish(i, &dir, &sample::manifest_toml(&product, "1.0.0"))
        .with_context(|| format!("publishing {product} on node {i}"))?;
    Ok(format!("{product}@1.0.0"))
}

/// Waits until every node in `nodes` has learned every label (or the deadline
/// passes); returns each node's learned-times.
fn wait_learned(
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
fn delays(
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
fn last_learned(
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

fn rss_row(net: &Testnet, report: &mut Report) {
    let rss: Vec<f64> = net.nodes.iter().filter_map(|n| n.rss_mib()).collect();
    if rss.is_empty() {
        return;
    }
    let max = rss.iter().cloned().fold(0.0, f64::max);
    let mean = rss.iter().sum::<f64>() / rss.len() as f64;
    report.row("node RSS (mean / max)", format!("{mean:.0} / {max:.0} MiB"));
    report.data["rss_mib"] = json!({ "mean": mean, "max": max, "per_node": rss });
}

/// M announcements from rotating publishers: % of live nodes reached, delay
/// percentiles, gossip duplicates per node, idle RSS.
pub fn propagation(opts: &Options) -> anyhow::Result<Report> {
    let (net, _proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("propagation", n);
    rss_row(&net, &mut report);
    let mut published = Vec::new();
    for k in 0..opts.announcements {
        let from = k % n;
        published.push((publish_tiny(&net, from, &format!("prop-{k}"))?, from));
    }
    let labels: Vec<String> = published.iter().map(|(l, _)| l.clone()).collect();
    let all: Vec<usize> = (0..n).collect();
    let times = wait_learned(&net, &all, &labels, opts.deadline);
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
    report.check(missing == 0, || {
        format!("{missing} of {pairs} (node, announcement) pairs never arrived")
    });
    report.data = json!({
        "announcements": published.len(),
        "reached_pct": reached,
        "delay": stats,
        "duplicates_per_node": dupes,
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

/// Catalog contents of every node: `product@version` entries, and whether any
/// entry appears twice.
fn catalogs(net: &Testnet) -> anyhow::Result<Vec<(BTreeSet<String>, bool)>> {
    net.nodes
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let list = net.products(i)?;
            let labels: Vec<String> = list
                .iter()
                .map(|e| format!("{}@{}", e.announcement.product, e.announcement.version))
                .collect();
            let set: BTreeSet<String> = labels.iter().cloned().collect();
            let doubled = set.len() != labels.len();
            Ok((set, doubled))
        })
        .collect()
}

/// Two halves cut apart publish separately, then the cut heals: time until every
/// catalog holds everything, exactly once.
pub fn partition(opts: &Options) -> anyhow::Result<Report> {
    let (net, proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("partition", n);
    let half_a: Vec<usize> = (0..n / 2).collect();
    let half_b: Vec<usize> = (n / 2..n).collect();
    proxy.partition(&half_a);
    // The cut is in place once no node of A has a peer in B.
    wait_until("the partition to take effect", opts.deadline, || {
        Ok(half_a.iter().all(|i| {
            net.nodes[*i]
                .client()
                .and_then(|c| Ok(c.peers()?))
                .map(|peers| {
                    peers
                        .iter()
                        .all(|p| !half_b.iter().any(|j| net.nodes[*j].peer_id == p.peer_id))
                })
                .unwrap_or(false)
        }))
    })?;
    let per_side = opts.announcements.max(2) / 2;
    let mut labels_a = Vec::new();
    let mut labels_b = Vec::new();
    for k in 0..per_side {
        labels_a.push(publish_tiny(
            &net,
            half_a[k % half_a.len()],
            &format!("left-{k}"),
        )?);
        labels_b.push(publish_tiny(
            &net,
            half_b[k % half_b.len()],
            &format!("right-{k}"),
        )?);
    }
    // Each side converges on its own and learns nothing of the other.
    let t_a = wait_learned(&net, &half_a, &labels_a, opts.deadline);
    let t_b = wait_learned(&net, &half_b, &labels_b, opts.deadline);
    let leaked = half_a
        .iter()
        .any(|i| labels_b.iter().any(|l| t_a[*i].contains_key(l)))
        || half_b
            .iter()
            .any(|i| labels_a.iter().any(|l| t_b[*i].contains_key(l)));
    report.check(!leaked, || "a product crossed the partition".into());
    let healed = now_secs();
    proxy.heal();
    let all: Vec<usize> = (0..n).collect();
    let labels: Vec<String> = labels_a.iter().chain(&labels_b).cloned().collect();
    let times = wait_learned(&net, &all, &labels, opts.deadline);
    let (last, missing) = last_learned(&times, &all, &labels, healed);
    let expected: BTreeSet<String> = labels.iter().cloned().collect();
    let cats = catalogs(&net)?;
    let exact = cats
        .iter()
        .filter(|(set, doubled)| *set == expected && !doubled)
        .count();
    report.row("products per side", per_side.to_string());
    report.row(
        "full convergence after heal",
        format!("{:.0} ms", (last - healed) * 1000.0),
    );
    report.row("catalogs exactly complete", format!("{exact} of {n}"));
    report.check(missing == 0, || {
        format!("{missing} (node, product) pairs missing after heal")
    });
    report.check(exact == n, || {
        format!("{} catalog(s) missing or doubling entries", n - exact)
    });
    report.data = json!({
        "per_side": per_side,
        "convergence_ms": (last - healed) * 1000.0,
        "exact_catalogs": exact,
    });
    Ok(report)
}

/// Nodes are killed (`kill -9`) and restarted, and one frozen (SIGSTOP / SIGCONT),
/// while others publish: every node ends with every product.
pub fn churn(opts: &Options) -> anyhow::Result<Report> {
    let (mut net, _proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("churn", n);
    let mut labels = Vec::new();
    let mut killed_total = 0;
    let mut frozen_total = 0;
    let mut restarted = now_secs();
    for round in 0..opts.rounds {
        // Kill up to a quarter of the nodes (never node 0, the steady publisher).
        let victims: Vec<usize> = (0..(n / 4).max(1))
            .map(|k| 1 + (round * 7 + k * 3) % (n - 1))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for v in &victims {
            net.nodes[*v].kill();
        }
        killed_total += victims.len();
        // One more node is frozen (SIGSTOP) while the others publish, then thawed.
        let frozen = (1..n).rev().find(|i| !victims.contains(i));
        if let Some(f) = frozen {
            net.nodes[f].signal("STOP")?;
        }
        for k in 0..2 {
            labels.push(publish_tiny(&net, 0, &format!("churn-{round}-{k}"))?);
        }
        let live = (1..n).find(|i| !victims.contains(i));
        if let Some(p) = live {
            labels.push(publish_tiny(&net, p, &format!("churn-{round}-x"))?);
        }
        if let Some(f) = frozen {
            net.nodes[f].signal("CONT")?;
            frozen_total += 1;
        }
        restarted = now_secs();
        for v in &victims {
            net.start(*v)?;
        }
    }
    let started = restarted;
    let all: Vec<usize> = (0..n).collect();
    let times = wait_learned(&net, &all, &labels, opts.deadline);
    let (last, missing) = last_learned(&times, &all, &labels, started);
    report.row("rounds", opts.rounds.to_string());
    report.row("kills (kill -9, then restart)", killed_total.to_string());
    report.row("freezes (SIGSTOP, then SIGCONT)", frozen_total.to_string());
    report.row("products published during churn", labels.len().to_string());
    report.row(
        "every node complete, after the last restart",
        format!("{:.0} ms", (last - started).max(0.0) * 1000.0),
    );
    report.check(missing == 0, || {
        format!("{missing} (node, product) pairs missing at the end")
    });
    report.data = json!({
        "rounds": opts.rounds,
        "kills": killed_total,
        "freezes": frozen_total,
        "products": labels.len(),
        "complete_after_ms": (last - started).max(0.0) * 1000.0,
        "missing": missing,
    });
    Ok(report)
}

/// A node joins a mesh that holds K products: time until its catalog is complete.
pub fn late_join(opts: &Options) -> anyhow::Result<Report> {
    let (mut net, proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("late-join", n + 1);
    let k = opts.products;
    let mut labels = Vec::with_capacity(k);
    for p in 0..k {
        labels.push(publish_tiny(&net, p % n, &format!("stock-{p}"))?);
    }
    let all: Vec<usize> = (0..n).collect();
    let times = wait_learned(&net, &all, &labels, opts.deadline);
    let settled = all
        .iter()
        .all(|i| labels.iter().all(|l| times[*i].contains_key(l)));
    report.check(settled, || "the mesh never held every product".into());

    // The joiner dials two nodes through the proxy, like every other link.
    let domain = net.nodes[0].domain.clone();
    let j = net.add_unregistered_node(&domain)?;
    let mut links = Vec::new();
    for target in [0, n / 2] {
        let via = proxy.link(
            j,
            target,
            net.nodes[target].socket_addr().context("node address")?,
        )?;
        links.push(format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
            via.port(),
            net.nodes[target].peer_id
        ));
    }
    net.nodes[j].links = links;
    let spawned = Instant::now();
    net.start(j)?;
    let up = Instant::now();
    wait_until(
        "the late joiner's catalog to be complete",
        opts.deadline,
        || Ok(net.nodes[j].status()?.catalog >= k),
    )
    .ok();
    let complete = Instant::now();
    let held = net.nodes[j].status().map(|s| s.catalog).unwrap_or(0);
    report.row("products in the mesh", k.to_string());
    report.row(
        "catalog complete, from API up",
        format!("{:.0} ms", (complete - up).as_secs_f64() * 1000.0),
    );
    report.row(
        "from process start",
        format!("{:.0} ms", (complete - spawned).as_secs_f64() * 1000.0),
    );
    report.check(held >= k, || {
        format!("the joiner holds {held} of {k} entries")
    });
    report.data = json!({
        "products": k,
        "complete_ms_from_up": (complete - up).as_secs_f64() * 1000.0,
        "complete_ms_from_spawn": (complete - spawned).as_secs_f64() * 1000.0,
        "held": held,
    });
    Ok(report)
}
