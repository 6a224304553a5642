//! Subscriptions: every node but the publisher follows one product; the publisher
//! puts out version after version (each a few rows longer, so only the tail chunk is
//! new); each subscriber's daemon fetches and switches in every version. Measured:
//! the lag from a version's announcement to its folder becoming `current` on each
//! subscriber (from the subscribers' own records, not from polling), the bytes
//! moved per version, and the catch-up after a partition heals and after the
//! publisher restarts. Checked: every subscriber ends on the newest version with
//! byte-identical files, keeps only `keep` folders, leaves nothing half-written,
//! and is listed among the product's subscribers on the publisher.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use mesh_node::api::{SubscribeBody, SubscriptionView};
use serde_json::json;

use super::report::{Options, Report};
use super::setup::mesh;
use crate::observe::now_secs;
use crate::proxy::FaultProxy;
use crate::{file_hash, sample, wait_until, Testnet};

/// Rows of the first version; each later one adds [`ROWS_PER_VERSION`].
const BASE_ROWS: usize = 20_000;
const ROWS_PER_VERSION: usize = 200;
/// Versions each subscriber keeps.
const KEEP: usize = 3;

/// The followed product.
fn product(net: &Testnet) -> String {
    format!("{}/feed", net.nodes[0].domain)
}

/// Publishes version `1.k.0` on node 0; returns the source file's hash.
fn publish(net: &Testnet, k: usize) -> anyhow::Result<blake3::Hash> {
    let dir = net.root().join("data").join(format!("feed-{k}"));
    let file = sample::write_orders(&dir, BASE_ROWS + k * ROWS_PER_VERSION, 7)?;
    let version = format!("1.{k}.0");
    net.publish(0, &dir, &sample::manifest_toml(&product(net), &version))
        .with_context(|| format!("publishing {version}"))?;
    file_hash(&file)
}

/// Node `i`'s subscription.
fn followed(net: &Testnet, i: usize) -> anyhow::Result<Option<SubscriptionView>> {
    let p = product(net);
    Ok(net.nodes[i]
        .client()?
        .subscriptions()?
        .into_iter()
        .find(|s| s.product == p))
}

/// Waits until every subscriber's `current` is `1.k.0`.
fn wait_current(net: &Testnet, subs: &[usize], k: usize, deadline: Duration) -> anyhow::Result<()> {
    let version = format!("1.{k}.0");
    for &i in subs {
        wait_until(
            &format!("node {i} to materialize {version}"),
            deadline,
            || {
                let s = followed(net, i)?;
                if let Some(s) = &s {
                    if matches!(s.state.as_str(), "denied") {
                        anyhow::bail!("node {i}'s subscription was denied: {:?}", s.reason);
                    }
                }
                Ok(s.is_some_and(|s| s.current.as_deref() == Some(version.as_str())))
            },
        )?;
    }
    Ok(())
}

/// The `q` quantile (0..=1) of sorted `v`.
fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Version folders (not hidden, not `current`) in `dir`, and whether any hidden
/// leftover (`.partial-*`, `.current-*`) is there.
fn folders(dir: &Path) -> anyhow::Result<(Vec<String>, bool)> {
    let mut names = Vec::new();
    let mut leftovers = false;
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with(".partial-") || name.starts_with(".current-") {
            leftovers = true;
        } else if !name.starts_with('.') && name != "current" {
            names.push(name);
        }
    }
    names.sort();
    Ok((names, leftovers))
}

/// Publish → materialized lag over `opts.announcements` versions (at least 20),
/// then a partition and a publisher restart.
pub fn subscription(opts: &Options) -> anyhow::Result<Report> {
    let (mut net, proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("subscription", n);
    let subs: Vec<usize> = (1..n).collect();
    let p = product(&net);
    let outs: Vec<PathBuf> = (0..n)
        .map(|i| net.root().join(format!("subscribed-{i}")))
        .collect();

    // Version 1.0.0, then every other node subscribes.
    publish(&net, 0)?;
    for &i in &subs {
        net.wait_product(i, &p, "1.0.0", opts.deadline)?;
        net.nodes[i].client()?.subscribe(&SubscribeBody {
            product: p.clone(),
            out: outs[i].clone(),
            keep: KEEP,
            skip_flagged: false,
        })?;
    }
    wait_current(&net, &subs, 0, opts.deadline)?;
    // The owner sees its subscribers (from their provider records).
    let seen = wait_until(
        "the publisher to list every subscriber",
        opts.deadline,
        || {
            let list = net.nodes[0].client()?.subscribers(&p.parse()?)?;
            Ok(list.len() >= subs.len())
        },
    );
    report.check(seen.is_ok(), || {
        "the publisher does not list every subscriber".into()
    });

    // Steady state: one version at a time, each awaited everywhere.
    let versions = opts.announcements.max(20);
    for k in 1..=versions {
        publish(&net, k)?;
        wait_current(&net, &subs, k, opts.deadline)?;
    }
    let Measured {
        mut lags,
        moved,
        size,
        reused,
    } = measured(&net, &subs)?;
    // Each version appends to the last: most of its bytes come from the previous
    // version's folder, not from the store.
    report.check(reused * 2 > size, || {
        format!("only {reused} of {size} bytes came from the previous versions' folders")
    });
    lags.sort_unstable();
    report.check(lags.len() == versions * subs.len(), || {
        format!(
            "{} materializations recorded, {} expected",
            lags.len(),
            versions * subs.len()
        )
    });

    // A partition: the far half misses a version, and catches up after the heal.
    let (far, healed_ms, after_heal) = partition(&net, &proxy, versions + 1, opts)?;
    // The publisher restarts; the next version reaches every subscriber.
    net.nodes[0].terminate()?;
    net.start(0)?;
    let k = versions + 2;
    let restarted = Instant::now();
    let hash = publish(&net, k)?;
    wait_current(&net, &subs, k, opts.deadline)?;
    let after_restart = restarted.elapsed();

    // Every subscriber: the newest version, byte-identical, `keep` folders, nothing
    // half-written.
    let wrong = check_outputs(&outs, &subs, &hash, &format!("1.{k}.0"))?;
    report.check(wrong.is_empty(), || wrong.join("; "));
    let far_lag: Vec<u64> = far
        .iter()
        .filter_map(|i| followed(&net, *i).ok().flatten())
        .filter_map(|s| {
            s.history
                .iter()
                .find(|h| h.version == format!("1.{}.0", versions + 1))
                .map(|h| h.materialized_at_ms.saturating_sub(healed_ms))
        })
        .collect();

    let phases = Phases {
        subscribers: subs.len(),
        versions,
        far_lag: far_lag.iter().max().copied().unwrap_or(0),
        after_heal,
        after_restart,
    };
    rows(&mut report, &phases, &lags, moved, size, reused);
    Ok(report)
}

/// What the steady phase measured over every subscriber's history.
struct Measured {
    lags: Vec<u64>,
    moved: u64,
    size: u64,
    reused: u64,
}

fn measured(net: &Testnet, subs: &[usize]) -> anyhow::Result<Measured> {
    let mut m = Measured {
        lags: Vec::new(),
        moved: 0,
        size: 0,
        reused: 0,
    };
    for &i in subs {
        let s = followed(net, i)?.context("a subscription vanished")?;
        for h in s.history.iter().filter(|h| h.version != "1.0.0") {
            m.lags.push(h.lag_ms());
            m.moved += h.transferred_bytes;
            m.size += h.size;
            m.reused += h.reused_bytes;
        }
    }
    Ok(m)
}

/// Every subscriber's folder: the newest version `version`, byte-identical to
/// `hash`, `KEEP` folders, nothing half-written; what is wrong, by node.
fn check_outputs(
    outs: &[PathBuf],
    subs: &[usize],
    hash: &blake3::Hash,
    version: &str,
) -> anyhow::Result<Vec<String>> {
    let mut wrong = Vec::new();
    for &i in subs {
        let current = outs[i].join("current").join("orders.csv");
        if file_hash(&current)? != *hash {
            wrong.push(format!(
                "node {i}: current/orders.csv differs from the source"
            ));
        }
        let (names, leftovers) = folders(&outs[i])?;
        if names.len() != KEEP || !names.iter().any(|n| n == version) {
            wrong.push(format!(
                "node {i}: folders {names:?}, {KEEP} expected with {version}"
            ));
        }
        if leftovers {
            wrong.push(format!("node {i}: a half-written leftover is visible"));
        }
    }
    Ok(wrong)
}

/// The timings of the partition and restart phases.
struct Phases {
    subscribers: usize,
    versions: usize,
    far_lag: u64,
    after_heal: std::time::Duration,
    after_restart: std::time::Duration,
}

/// The scenario's table rows and JSON.
fn rows(report: &mut Report, p: &Phases, lags: &[u64], moved: u64, size: u64, reused: u64) {
    report.row("subscribers", p.subscribers.to_string());
    report.row("versions published, each awaited", p.versions.to_string());
    report.row(
        "publish -> materialized lag p50 / p99 / max",
        format!(
            "{} / {} / {} ms",
            quantile(lags, 0.5),
            quantile(lags, 0.99),
            lags.last().copied().unwrap_or(0)
        ),
    );
    report.row(
        "bytes downloaded / version size",
        format!(
            "{:.1}% ({} of {} bytes)",
            100.0 * moved as f64 / size.max(1) as f64,
            moved,
            size
        ),
    );
    report.row(
        "bytes reused from the previous version's folder / version size",
        format!(
            "{:.1}% (cloned or copied by the kernel, not written again)",
            100.0 * reused as f64 / size.max(1) as f64
        ),
    );
    report.row(
        "far side of a partition materialized, after the heal",
        format!(
            "{} ms (max over its nodes; all waited {} ms)",
            p.far_lag,
            p.after_heal.as_millis()
        ),
    );
    report.row(
        "next version everywhere, after a publisher restart",
        format!("{} ms", p.after_restart.as_millis()),
    );
    report.data = json!({
        "subscribers": p.subscribers,
        "versions": p.versions,
        "lag_ms": { "p50": quantile(lags, 0.5), "p99": quantile(lags, 0.99), "max": lags.last(), "all": lags },
        "downloaded_bytes": moved,
        "reused_bytes": reused,
        "version_bytes": size,
        "after_heal_ms": p.far_lag,
        "after_restart_ms": p.after_restart.as_millis() as u64,
    });
}

/// The near half of the mesh (with the publisher) cut from the far half while
/// version `k` is published, then healed: returns the far half, when the heal
/// happened (Unix ms) and how long the far half took after it.
fn partition(
    net: &Testnet,
    proxy: &FaultProxy,
    k: usize,
    opts: &Options,
) -> anyhow::Result<(Vec<usize>, u64, std::time::Duration)> {
    let n = net.nodes.len();
    let near: Vec<usize> = (0..n / 2).collect();
    let far: Vec<usize> = (n / 2..n).collect();
    proxy.partition(&near);
    publish(net, k)?;
    let near_subs: Vec<usize> = near.iter().copied().filter(|i| *i != 0).collect();
    wait_current(net, &near_subs, k, opts.deadline)?;
    let healed = Instant::now();
    let healed_ms = (now_secs() * 1000.0) as u64;
    proxy.heal();
    wait_current(net, &far, k, opts.deadline)?;
    let after_heal = healed.elapsed();
    Ok((far, healed_ms, after_heal))
}
