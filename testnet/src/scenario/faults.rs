//! Scenarios of broken meshes: a partition that heals, churn (kill -9, SIGSTOP),
//! and a node that joins late.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::report::{Options, Report};
use super::setup::*;
use crate::observe::{self, now_secs, Traffic};
use crate::{wait_until, Testnet};

/// Catalog contents of every node: `product@version` entries, and whether any
/// entry appears twice.
pub(super) fn catalogs(net: &Testnet) -> anyhow::Result<Vec<(BTreeSet<String>, bool)>> {
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

/// Announcement gossip messages (not counting duplicates) all nodes received so far.
fn unique_announcements(net: &Testnet) -> u64 {
    (0..net.nodes.len())
        .filter_map(|i| crate::observe::announce_counts(net, i))
        .map(|(all, dupes)| all - dupes)
        .sum()
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
    let gossiped_before = unique_announcements(&net);
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
    // Nothing is published after the heal: every announcement gossiped since is a
    // version a node learned by sync and spread on.
    let spread = unique_announcements(&net).saturating_sub(gossiped_before);
    report.row("products per side", per_side.to_string());
    report.row(
        "full convergence after heal",
        format!("{:.0} ms", (last - healed) * 1000.0),
    );
    report.row("catalogs exactly complete", format!("{exact} of {n}"));
    report.row(
        "announcements received by gossip after heal (spread on from sync)",
        spread.to_string(),
    );
    report.check(spread > 0, || {
        "no version learned by sync after the heal was gossiped on".into()
    });
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
        "spread_after_heal": spread,
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

/// A node joins a mesh that holds K products: time until its catalog is complete,
/// what it received on the way, and the mesh's idle traffic before it came.
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
    let idle = idle_traffic(&net, opts.idle);

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
    let joined = observe::traffic(&net, j).unwrap_or_default();
    report.row("products in the mesh", k.to_string());
    report.row(
        "idle traffic per node per minute before the join (in / out; steady, after as long to settle)",
        format!(
            "{:.0} / {:.0} KB over {:.0} s",
            idle.bytes_in as f64 / 1000.0,
            idle.bytes_out as f64 / 1000.0,
            opts.idle.as_secs_f64()
        ),
    );
    report.row(
        "the joiner received / sent until complete",
        format!(
            "{:.0} / {:.0} KB",
            joined.bytes_in as f64 / 1000.0,
            joined.bytes_out as f64 / 1000.0
        ),
    );
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
        "idle_per_node_per_minute": idle,
        "joiner_traffic": joined,
    });
    Ok(report)
}

/// Every node's traffic over `window` with nothing published, scaled to one minute
/// (the mean over nodes), measured after a first `window` in which the tail of the
/// publishing (every node prefetching every new manifest) dies down: at 150 nodes
/// that first minute carried twice the steady one.
fn idle_traffic(net: &Testnet, window: Duration) -> Traffic {
    // Measurement windows, not waits for a condition.
    std::thread::sleep(window);
    let before = observe::traffic_all(net);
    std::thread::sleep(window);
    let per_minute = 60.0 / window.as_secs_f64().max(0.001);
    Traffic::mean_since(&before, &observe::traffic_all(net)).map(|b| (b as f64 * per_minute) as u64)
}
