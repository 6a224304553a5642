//! The `degrade` scenario: a latency and loss ladder through the fault proxy.

use std::time::{Duration, Instant};

use serde_json::json;

use super::report::{Options, Report};
use super::setup::{delays, mesh, publish_tiny, wait_learned};
use crate::observe::Delays;
use crate::proxy::Fault;
use crate::sample;

/// One rung of the degradation ladder.
#[derive(Debug, Clone, Copy)]
struct Rung {
    delay_ms: u64,
    jitter_ms: u64,
    loss: f64,
}

const LADDER: [Rung; 5] = [
    Rung {
        delay_ms: 0,
        jitter_ms: 0,
        loss: 0.0,
    },
    Rung {
        delay_ms: 25,
        jitter_ms: 5,
        loss: 0.0,
    },
    Rung {
        delay_ms: 50,
        jitter_ms: 10,
        loss: 0.01,
    },
    Rung {
        delay_ms: 150,
        jitter_ms: 30,
        loss: 0.04,
    },
    Rung {
        delay_ms: 300,
        jitter_ms: 50,
        loss: 0.08,
    },
];

/// A latency and loss ladder on every link: delivery of announcements and fetch
/// success at each rung.
pub fn degrade(opts: &Options) -> anyhow::Result<Report> {
    let (net, proxy) = mesh(opts)?;
    let n = net.nodes.len();
    let mut report = Report::new("degrade", n);
    // A product to fetch at each rung, held by node 0.
    let dir = net.root().join("data").join("degrade-payload");
    sample::write_orders(&dir, 40_000, 3)?;
    let payload = format!("{}/degrade-payload", net.nodes[0].domain);
    net.publish(0, &dir, &sample::manifest_toml(&payload, "1.0.0"))?;
    let mut rungs = Vec::new();
    let all: Vec<usize> = (0..n).collect();
    for (r, rung) in LADDER.iter().enumerate() {
        proxy.set_all(Fault {
            delay: Duration::from_millis(rung.delay_ms),
            jitter: Duration::from_millis(rung.jitter_ms),
            loss: rung.loss,
            ..Fault::default()
        });
        let mut published = Vec::new();
        let per_rung = (opts.announcements / LADDER.len()).max(2);
        for k in 0..per_rung {
            let from = (r + k * 3) % n;
            published.push((publish_tiny(&net, from, &format!("rung{r}-{k}"))?, from));
        }
        let labels: Vec<String> = published.iter().map(|(l, _)| l.clone()).collect();
        let times = wait_learned(&net, &all, &labels, opts.deadline);
        let (d, missing) = delays(&times, &published, &all);
        let pairs = published.len() * (n - 1);
        let reached = 100.0 * d.len() as f64 / pairs.max(1) as f64;
        let stats = Delays::of(d);
        // A fetch across the degraded links, by a node that does not hold it yet.
        let consumer = 1 + r % (n - 1);
        let out = net.root().join(format!("degrade-out-{r}"));
        net.wait_product(consumer, &payload, "1.0.0", opts.deadline)?;
        let t = Instant::now();
        let fetched = net.fetch(consumer, &format!("{payload}@1.0.0"), &out);
        let fetch_ms = t.elapsed().as_secs_f64() * 1000.0;
        let label = format!(
            "{} ms ±{} ms, {:.0}% loss",
            rung.delay_ms,
            rung.jitter_ms,
            rung.loss * 100.0
        );
        report.row(
            &label,
            format!(
                "reached {reached:.1}%, delay {}; fetch {}",
                stats.show(),
                match &fetched {
                    Ok(o) => format!("ok in {fetch_ms:.0} ms ({} bytes)", o.transferred_bytes),
                    Err(e) => format!("FAILED: {e}"),
                }
            ),
        );
        report.check(missing == 0, || {
            format!("{label}: {missing} of {pairs} deliveries missing")
        });
        report.check(fetched.is_ok(), || format!("{label}: the fetch failed"));
        rungs.push(json!({
            "delay_ms": rung.delay_ms,
            "jitter_ms": rung.jitter_ms,
            "loss": rung.loss,
            "reached_pct": reached,
            "delay": stats,
            "fetch_ok": fetched.is_ok(),
            "fetch_ms": fetch_ms,
        }));
    }
    proxy.heal();
    report.data = json!({ "rungs": rungs });
    Ok(report)
}
