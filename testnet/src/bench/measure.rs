//! What every row of the transfer benchmark measures with: its settings and row,
//! throughput, a process's peak memory and CPU time, and timed fetches.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use mesh_node::api::FetchOutcome;

use crate::{MeshBin, Testnet};

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Product size in MiB.
    pub size_mib: u64,
    /// A directory on a file system with reflinks, to measure the new-version row
    /// there too.
    pub reflink_dir: Option<PathBuf>,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Where progress lines and where-the-time-goes notes go (the CLI prints them).
    pub progress: fn(&str),
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// The mesh figure.
    pub mesh: String,
    /// The anchor figure.
    pub baseline: String,
    /// mesh / baseline as a rate ratio (higher is better), when meaningful.
    pub ratio: String,
    /// The target.
    pub target: String,
}

pub(super) const LONG: Duration = Duration::from_secs(600);

/// The median and the spread (min to max) of `runs`.
pub(crate) fn median(runs: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = runs.to_vec();
    sorted.sort();
    let mid = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let lo = sorted.first().copied().unwrap_or_default();
    let hi = sorted.last().copied().unwrap_or_default();
    (mid, lo, hi)
}

pub(super) fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// Writes `size` pseudo-random bytes (fast, deterministic).
pub(crate) fn write_random(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = mesh_testkit::SeededRng::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        rng.fill(&mut buf);
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

pub(super) fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM in /proc status")?;
    Ok(kb / 1024.0)
}

/// CPU seconds (user + system) a process has used so far.
pub(super) fn cpu_secs(pid: u32) -> f64 {
    stat_secs(&format!("/proc/{pid}/stat"), [11, 12])
}

/// CPU seconds (user + system) this process's waited-for children have used so
/// far: a command run to its end between two readings (curl, `sendme receive`).
pub(super) fn children_cpu_secs() -> f64 {
    stat_secs("/proc/self/stat", [13, 14])
}

/// The sum of two clock-tick fields of a `/proc/.../stat` file, in seconds; the
/// fields are counted after the parenthesised command name (utime and stime are
/// 11 and 12 there, cutime and cstime 13 and 14).
fn stat_secs(path: &str, fields: [usize; 2]) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// CPU seconds each node used while `work` ran, as `node N: S s` for stderr.
pub(super) fn cpu_during<T>(
    net: &Testnet,
    work: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, String)> {
    let pids: Vec<Option<u32>> = net.nodes.iter().map(|n| n.pid()).collect();
    let before: Vec<f64> = pids.iter().map(|p| p.map_or(0.0, cpu_secs)).collect();
    let out = work()?;
    let used = pids
        .iter()
        .zip(before)
        .enumerate()
        .map(|(i, (p, b))| format!("node {i}: {:.2} s", p.map_or(0.0, cpu_secs) - b))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((out, used))
}

/// Fetches `sales/big@1.0.0` on node `consumer` (with node `stopped` stopped for
/// the duration, so it cannot serve) and times it. The output is deleted afterwards
/// and the disk synced before, so every measured fetch starts from the same
/// page-cache state: a 1 GiB write into a full page cache spends seconds of CPU in
/// reclaim, which is the machine, not the transfer.
pub(super) fn measured_fetch(
    net: &mut Testnet,
    consumer: usize,
    stopped: Option<usize>,
    providers: usize,
    progress: fn(&str),
) -> anyhow::Result<(Duration, FetchOutcome)> {
    if let Some(s) = stopped {
        net.nodes[s].terminate()?;
    }
    let out = net.root().join(format!("out{consumer}"));
    let _ = Command::new("sync").status();
    let t = Instant::now();
    let (outcome, cpu) = cpu_during(net, || net.fetch(consumer, "sales/big@1.0.0", &out))?;
    let elapsed = t.elapsed();
    progress(&format!(
        "fetch on node {consumer} from {providers} provider(s): {:.2} s; CPU {cpu}",
        elapsed.as_secs_f64()
    ));
    let _ = std::fs::remove_dir_all(&out);
    if let Some(s) = stopped {
        net.start(s)?;
        let running = net.nodes.iter().filter(|n| n.pid().is_some()).count();
        net.wait_peers(s, running - 1, LONG)?;
    }
    Ok((elapsed, outcome))
}

/// The row for a new version: bytes the fetch moved against the product size.
pub(super) fn moved_row(what: String, fetched: &FetchOutcome, stored: u64) -> Row {
    Row {
        what,
        mesh: format!(
            "{:.1} MB moved ({:.2}%); publish stored {:.1} MB",
            fetched.transferred_bytes as f64 / 1e6,
            100.0 * fetched.transferred_bytes as f64 / fetched.size as f64,
            stored as f64 / 1e6
        ),
        baseline: format!("full size {:.1} MB", fetched.size as f64 / 1e6),
        ratio: String::new(),
        target: "<= 5%".into(),
    }
}

/// The row for a new version fetched and materialized over the previous one's
/// output: its time against a full fetch's.
pub(super) fn blink_row(where_: &str, took: Duration, f: &FetchOutcome, full: Duration) -> Row {
    let how = if f.cloned_files > 0 {
        "reflink"
    } else {
        "copy_file_range"
    };
    Row {
        what: format!("new version, 1% scattered edits, fetched and materialized over 1.0.0's output ({where_})"),
        mesh: format!(
            "{:.2} s ({:.0} MB reused by {how}, {:.1} MB moved)",
            took.as_secs_f64(),
            f.reused_bytes as f64 / 1e6,
            f.transferred_bytes as f64 / 1e6
        ),
        baseline: format!("full fetch {:.2} s", full.as_secs_f64()),
        ratio: format!("{:.1}%", 100.0 * took.as_secs_f64() / full.as_secs_f64()),
        target: "<= 10%".into(),
    }
}

/// Fetches `product` on node `i` into `out` after a sync; the outcome and time.
pub(super) fn timed_fetch(
    net: &Testnet,
    i: usize,
    product: &str,
    out: &Path,
) -> anyhow::Result<(FetchOutcome, Duration)> {
    let _ = Command::new("sync").status();
    let t = Instant::now();
    let f = net.fetch(i, product, out)?;
    Ok((f, t.elapsed()))
}
