//! The single-provider fetch rows of the transfer benchmark, side by side in one
//! run: mesh over TCP (TLS 1.3 + yamux) and over QUIC, curl downloading the same file
//! from a local nginx over HTTPS (TLS 1.3) and over plain HTTP, and `sendme
//! receive`. Each is measured [`ROUNDS`] times, interleaved (one of each per
//! round, every run after a `sync`), and reported as the median
//! with the spread, with the CPU seconds per GiB of every process taking part.
//!
//! Every mesh run is a fresh consumer (a node that fetched once holds the product
//! and would not transfer it again), with every other holder but the provider
//! stopped, fetching as `mesh fetch -o DIR` does by default: in place (each
//! output stays, as the node serves the product from it in later rows).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::anchors::{timed, Nginx, Sendme};
use super::measure::{children_cpu_secs, cpu_secs, mbps, peak_rss_mib, Row, LONG};
use crate::Testnet;

/// Runs of each contender.
pub(super) const ROUNDS: usize = 3;

/// One timed run: its wall time, and the CPU seconds of each process in it.
#[derive(Debug, Clone)]
struct Run {
    secs: f64,
    cpu: Vec<(&'static str, f64)>,
}

/// The runs of one contender.
#[derive(Debug, Default)]
pub(super) struct Series {
    runs: Vec<Run>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Series {
    /// The median wall time.
    pub(super) fn median(&self) -> Duration {
        Duration::from_secs_f64(median(self.runs.iter().map(|r| r.secs).collect()))
    }

    /// `2.10 s (511 MB/s; 1.98-2.40 s over 3)`.
    fn summary(&self, size: u64) -> String {
        let secs: Vec<f64> = self.runs.iter().map(|r| r.secs).collect();
        let lo = secs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = secs.iter().copied().fold(0.0, f64::max);
        let m = self.median();
        format!(
            "{:.2} s ({:.0} MB/s; {lo:.2}-{hi:.2} s over {})",
            m.as_secs_f64(),
            mbps(size, m),
            secs.len()
        )
    }

    /// The median CPU seconds per GiB of process `who`.
    fn cpu_per_gib(&self, who: &str, size: u64) -> f64 {
        let gib = size as f64 / f64::from(1u32 << 30);
        median(
            self.runs
                .iter()
                .filter_map(|r| r.cpu.iter().find(|(w, _)| *w == who).map(|(_, s)| *s))
                .collect(),
        ) / gib
    }

    /// `CPU/GiB: consumer 3.1 s, provider 1.2 s` (medians).
    fn cpu_line(&self, size: u64) -> String {
        let Some(first) = self.runs.first() else {
            return String::new();
        };
        let parts: Vec<String> = first
            .cpu
            .iter()
            .map(|(who, _)| format!("{who} {:.2} s", self.cpu_per_gib(who, size)))
            .collect();
        format!("CPU/GiB: {}", parts.join(", "))
    }
}

/// The mesh side: a network, its provider and the fresh consumers still to use.
pub(super) struct MeshSide<'a> {
    pub(super) net: &'a mut Testnet,
    pub(super) provider: usize,
    pub(super) consumers: Vec<usize>,
    /// The highest peak RSS of a consumer, MiB.
    pub(super) peak_rss: f64,
}

impl MeshSide<'_> {
    /// Fetches on the next fresh consumer (every earlier one was stopped after its
    /// fetch, so the provider is the only holder running) into `fetched-N` in the
    /// testnet's folder; stops it afterwards, as it holds the product now. Its
    /// output stays: the node serves the product from there in later rows.
    fn fetch(&mut self, progress: fn(&str)) -> anyhow::Result<Run> {
        let consumer = self.consumers.remove(0);
        let net = &mut *self.net;
        let out = &net.root().join(format!("fetched-{consumer}"));
        let pids = [net.nodes[consumer].pid(), net.nodes[self.provider].pid()];
        let [Some(c_pid), Some(p_pid)] = pids else {
            anyhow::bail!("node {consumer} or {} is not running", self.provider);
        };
        let _ = Command::new("sync").status();
        let before = (cpu_secs(c_pid), cpu_secs(p_pid));
        let t = Instant::now();
        let fetched = net.fetch_in_place(consumer, "sales/big@1.0.0", out)?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            fetched.in_place,
            "the fetch on node {consumer} was not in place"
        );
        let cpu = vec![
            ("consumer", cpu_secs(c_pid) - before.0),
            ("provider", cpu_secs(p_pid) - before.1),
        ];
        progress(&format!("fetch on node {consumer}: {secs:.2} s; {cpu:?}"));
        self.peak_rss = self.peak_rss.max(peak_rss_mib(c_pid)?);
        net.nodes[consumer].terminate()?;
        Ok(Run { secs, cpu })
    }
}

/// What the fetch rounds measured.
pub(super) struct Fetches {
    pub(super) tcp: Series,
    pub(super) quic: Series,
    pub(super) https: Series,
    pub(super) http: Series,
    pub(super) sendme: Series,
}

/// Runs [`ROUNDS`] rounds of every contender on `file` (in `dir`), interleaved.
pub(super) fn rounds(
    tcp: &mut MeshSide<'_>,
    quic: &mut MeshSide<'_>,
    dir: &Path,
    sendme: &Sendme,
    work: &Path,
    progress: fn(&str),
) -> anyhow::Result<Fetches> {
    let nginx = Nginx::start(dir, work)?;
    let mut f = Fetches {
        tcp: Series::default(),
        quic: Series::default(),
        https: Series::default(),
        http: Series::default(),
        sendme: Series::default(),
    };
    let out = work.join("fetched");
    for round in 0..ROUNDS {
        progress(&format!("fetch round {} of {ROUNDS}", round + 1));
        f.tcp.runs.push(tcp.fetch(progress)?);
        f.quic.runs.push(quic.fetch(progress)?);
        f.https.runs.push(curl(&nginx, true, &out)?);
        f.http.runs.push(curl(&nginx, false, &out)?);
        f.sendme.runs.push(receive(sendme, &out)?);
    }
    Ok(f)
}

/// curl downloading the file from nginx into a file.
fn curl(nginx: &Nginx, tls: bool, out: &Path) -> anyhow::Result<Run> {
    let _ = Command::new("sync").status();
    let worker = nginx.worker_cpu_secs();
    let children = children_cpu_secs();
    let mut cmd = Command::new("curl");
    cmd.args(["-sf", "-o"]).arg(out);
    if tls {
        cmd.arg("--tlsv1.3").arg("--cacert").arg(&nginx.cert);
        cmd.arg(format!("https://127.0.0.1:{}/big.bin", nginx.tls_port));
    } else {
        cmd.arg(format!("http://127.0.0.1:{}/big.bin", nginx.port));
    }
    let took = timed(&mut cmd)?;
    let cpu = vec![
        ("curl", children_cpu_secs() - children),
        ("nginx", nginx.worker_cpu_secs() - worker),
    ];
    let _ = std::fs::remove_file(out);
    Ok(Run {
        secs: took.as_secs_f64(),
        cpu,
    })
}

/// `sendme receive` of the file.
fn receive(sendme: &Sendme, out: &Path) -> anyhow::Result<Run> {
    let _ = Command::new("sync").status();
    let sender = cpu_secs(sendme.pid());
    let children = children_cpu_secs();
    let took = sendme.receive(out)?;
    Ok(Run {
        secs: took.as_secs_f64(),
        cpu: vec![
            ("receive", children_cpu_secs() - children),
            ("send", cpu_secs(sendme.pid()) - sender),
        ],
    })
}

impl Fetches {
    /// The table rows: each transport against nginx HTTPS + curl, then against
    /// plain HTTP and sendme, and the consumer's CPU against curl's.
    pub(super) fn rows(&self, size: u64) -> Vec<Row> {
        let https = &self.https;
        let ratio = |a: &Series, b: &Series| {
            format!(
                "{:.2}x",
                b.median().as_secs_f64() / a.median().as_secs_f64()
            )
        };
        let mut rows = Vec::new();
        for (name, s) in [
            ("TCP (TLS 1.3, AES-GCM + yamux)", &self.tcp),
            ("QUIC", &self.quic),
        ] {
            rows.push(Row {
                what: format!("fetch, 1 provider, {name} (`mesh fetch -o`: in place)"),
                mesh: format!("{}; {}", s.summary(size), s.cpu_line(size)),
                baseline: format!(
                    "nginx HTTPS (TLS 1.3) + curl -o file {}; {}",
                    https.summary(size),
                    https.cpu_line(size)
                ),
                ratio: ratio(s, https),
                target: ">= 1.0x".into(),
            });
        }
        rows.push(Row {
            what: "fetch, 1 provider, TCP, against plain HTTP".into(),
            mesh: self.tcp.summary(size),
            baseline: format!(
                "nginx HTTP + curl -o file {}; {}",
                self.http.summary(size),
                self.http.cpu_line(size)
            ),
            ratio: ratio(&self.tcp, &self.http),
            target: "(for comparison)".into(),
        });
        rows.push(Row {
            what: "fetch, 1 provider, TCP, against sendme (iroh, QUIC)".into(),
            mesh: self.tcp.summary(size),
            baseline: format!(
                "sendme receive {}; {}",
                self.sendme.summary(size),
                self.sendme.cpu_line(size)
            ),
            ratio: ratio(&self.tcp, &self.sendme),
            target: ">= 3x".into(),
        });
        let curl = https.cpu_per_gib("curl", size);
        for (name, s) in [("TCP", &self.tcp), ("QUIC", &self.quic)] {
            let consumer = s.cpu_per_gib("consumer", size);
            rows.push(Row {
                what: format!("consumer CPU per GiB, {name}"),
                mesh: format!("{consumer:.2} s"),
                baseline: format!("curl (HTTPS) {curl:.2} s"),
                ratio: format!("{:.2}x curl's", consumer / curl),
                target: "<= 1.5x curl's".into(),
            });
        }
        rows
    }
}

/// Waits until node `i` of `net` has `product@1.0.0` in its catalog.
pub(super) fn wait_all(net: &Testnet, nodes: &[usize]) -> anyhow::Result<()> {
    for &i in nodes {
        net.wait_product(i, "sales/big", "1.0.0", LONG)
            .with_context(|| format!("node {i} never saw the product"))?;
    }
    Ok(())
}
