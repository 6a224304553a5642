//! Multi-provider fetch on shaped links: what several providers are for. Every
//! consumer reaches every provider through its own fault-proxy link limited to a
//! rate well under what one core encrypts, so the fetch is bound by the links, not
//! the CPU (on bare loopback it is the other way round, and more providers only add
//! overhead). Measured, each on a fresh consumer: 1, 2, 3 and 4 providers at the
//! same rate, and 3 of them with a fourth much slower one (which must not make the
//! fetch slower than the 3 alone); every row in each of `rounds` fresh meshes, so
//! a row's repeats are interleaved with the others'.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::bench::{median, write_random, Row};
use crate::proxy::{Fault, FaultProxy};
use crate::{sample, MeshBin, Testnet, TestnetConfig};

/// Settings.
#[derive(Debug, Clone)]
pub struct LinkBenchOptions {
    /// Product size in MiB.
    pub size_mib: u64,
    /// Each provider link's rate, MB/s.
    pub rate_mbps: u64,
    /// The slow provider's rate, MB/s.
    pub slow_mbps: u64,
    /// Rounds: each row is measured this many times (interleaved, a fresh mesh
    /// each round) and shows the median and the spread.
    pub rounds: usize,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Where progress lines go.
    pub progress: fn(&str),
}

const PROVIDERS: usize = 4;
const LONG: Duration = Duration::from_secs(600);

/// The runs: (label, providers reachable at full rate, the slow one if any).
fn runs() -> Vec<(&'static str, Vec<usize>, Option<usize>)> {
    vec![
        ("1 provider", vec![0], None),
        ("2 providers", vec![0, 1], None),
        ("3 providers", vec![0, 1, 2], None),
        ("4 providers", vec![0, 1, 2, 3], None),
        ("3 providers + 1 slow", vec![0, 1, 2], Some(3)),
    ]
}

/// One fetch of a row: its time and the MB each provider served.
struct Fetched {
    took: Duration,
    served: Vec<String>,
}

/// Runs the benchmark; returns the table rows. Each round builds a fresh mesh and
/// runs every row once, so the rows' repeats are interleaved; a row shows its
/// median and the spread.
pub fn links(opts: &LinkBenchOptions) -> anyhow::Result<Vec<Row>> {
    let runs = runs();
    let rounds = opts.rounds.max(1);
    let mut fetched: Vec<Vec<Fetched>> = runs.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        (opts.progress)(&format!("round {} of {rounds}", round + 1));
        for (k, f) in one_round(opts, &runs)?.into_iter().enumerate() {
            fetched[k].push(f);
        }
    }
    let size = opts.size_mib * 1024 * 1024;
    // Each row's (median, fastest, slowest).
    let stats: Vec<(Duration, Duration, Duration)> = fetched
        .iter()
        .map(|f| median(&f.iter().map(|f| f.took).collect::<Vec<_>>()))
        .collect();
    let mut rows = Vec::new();
    for (k, (label, fast, slow)) in runs.iter().enumerate() {
        let (took, lo, hi) = stats[k];
        let mbps = size as f64 / 1e6 / took.as_secs_f64();
        let served = fetched[k]
            .iter()
            .find(|f| f.took == took)
            .map(|f| f.served.join(" / "))
            .unwrap_or_default();
        let (baseline, ratio, target) = compare(
            opts,
            k,
            stats.first().map(|s| &s.0),
            stats.get(2).map(|s| &s.0),
            took,
            mbps,
            fast.len(),
        );
        rows.push(Row {
            what: format!(
                "fetch {} MiB, {label}{}",
                opts.size_mib,
                if slow.is_some() {
                    format!(" ({} MB/s)", opts.slow_mbps)
                } else {
                    String::new()
                }
            ),
            mesh: format!(
                "{:.2} s ({mbps:.0} MB/s; {:.2}-{:.2} s over {rounds}; served {served} MB)",
                took.as_secs_f64(),
                lo.as_secs_f64(),
                hi.as_secs_f64(),
            ),
            baseline,
            ratio,
            target,
        });
    }
    Ok(rows)
}

/// One round: a fresh mesh, the product published and replicated on every
/// provider, then each run's fetch on its own fresh consumer.
fn one_round(
    opts: &LinkBenchOptions,
    runs: &[(&'static str, Vec<usize>, Option<usize>)],
) -> anyhow::Result<Vec<Fetched>> {
    let n = PROVIDERS + runs.len();
    let (net, proxy) = linked_mesh(opts, n)?;
    let data = net.root().join("data");
    std::fs::create_dir_all(&data)?;
    (opts.progress)(&format!("writing {} MiB of test data", opts.size_mib));
    write_random(&data.join("big.bin"), opts.size_mib * 1024 * 1024, 7)?;
    let toml = sample::binary_manifest_toml("sales/big", "1.0.0").replace("Orders", "Bench data");
    net.publish(0, &data, &toml)?;
    for p in 1..PROVIDERS {
        net.wait_product(p, "sales/big", "1.0.0", LONG)?;
        net.fetch(
            p,
            "sales/big@1.0.0",
            &net.root().join(format!("replica{p}")),
        )
        .with_context(|| format!("provider {p} taking a replica"))?;
    }
    let mut out = Vec::new();
    for (k, (label, fast, slow)) in runs.iter().enumerate() {
        let c = PROVIDERS + k;
        shape_links(&proxy, c, fast, *slow, opts);
        net.wait_product(c, "sales/big", "1.0.0", LONG)?;
        let dir = net.root().join(format!("out{c}"));
        let _ = std::process::Command::new("sync").status();
        let t = Instant::now();
        let o = net.fetch(c, "sales/big@1.0.0", &dir)?;
        let took = t.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        let served: Vec<String> = o
            .served
            .values()
            .map(|b| format!("{:.0}", *b as f64 / 1e6))
            .collect();
        (opts.progress)(&format!(
            "{label}: {:.2} s ({:.0} MB/s), MB served per provider: {}",
            took.as_secs_f64(),
            o.size as f64 / 1e6 / took.as_secs_f64(),
            served.join(" / ")
        ));
        out.push(Fetched { took, served });
    }
    Ok(out)
}

/// `n` nodes, each link through the fault proxy: the providers with each other,
/// every consumer with every provider.
fn linked_mesh(opts: &LinkBenchOptions, n: usize) -> anyhow::Result<(Testnet, FaultProxy)> {
    let mut config = TestnetConfig::new(opts.mesh.clone(), n, &["sales", "finance", "logistics"]);
    config.council = 1;
    config.threshold = 1;
    let mut net = Testnet::create(config)?;
    let proxy = FaultProxy::new()?;
    let mut links = Vec::new();
    for p in 0..PROVIDERS {
        for q in p + 1..PROVIDERS {
            links.push((p, q));
        }
    }
    for c in PROVIDERS..n {
        for p in 0..PROVIDERS {
            links.push((c, p));
        }
    }
    net.start_all_linked(&proxy, &links)?;
    for c in PROVIDERS..n {
        net.wait_peers(c, PROVIDERS, LONG)?;
    }
    Ok((net, proxy))
}

/// Consumer `c`'s links: the `fast` providers at the link rate, the `slow` one
/// at the slow rate, the rest cut.
fn shape_links(
    proxy: &FaultProxy,
    c: usize,
    fast: &[usize],
    slow: Option<usize>,
    opts: &LinkBenchOptions,
) {
    let rate = opts.rate_mbps * 1_000_000;
    for p in 0..PROVIDERS {
        let fault = if fast.contains(&p) {
            Fault {
                rate,
                ..Fault::default()
            }
        } else if slow == Some(p) {
            Fault {
                rate: opts.slow_mbps * 1_000_000,
                ..Fault::default()
            }
        } else {
            Fault {
                blackhole: true,
                ..Fault::default()
            }
        };
        proxy.set(c, p, fault);
    }
}

/// A row's baseline, ratio and target: run 0 against the link rate, run 4 (a
/// slow provider added) against 3 providers alone, the others against one.
fn compare(
    opts: &LinkBenchOptions,
    k: usize,
    one: Option<&Duration>,
    three: Option<&Duration>,
    took: Duration,
    mbps: f64,
    fast: usize,
) -> (String, String, String) {
    match (k, one, three) {
        (0, _, _) => (
            format!("link rate {} MB/s", opts.rate_mbps),
            format!("{:.2}x of the link", mbps / opts.rate_mbps as f64),
            "near the link".to_string(),
        ),
        (4, _, Some(t3)) => (
            format!("3 providers alone {:.2} s", t3.as_secs_f64()),
            format!("{:.2}x", t3.as_secs_f64() / took.as_secs_f64()),
            ">= 1x (a slow provider never slows the fetch)".to_string(),
        ),
        (_, Some(t1), _) => (
            format!("1 provider {:.2} s", t1.as_secs_f64()),
            format!("{:.2}x", t1.as_secs_f64() / took.as_secs_f64()),
            match fast {
                3 => ">= 2.9x".to_string(),
                4 => ">= 3.8x".to_string(),
                _ => String::new(),
            },
        ),
        _ => (String::new(), String::new(), String::new()),
    }
}
