//! The transfer benchmark: mesh against its anchors, measured side by side in one run.
//!
//! For a product of `size` random bytes: publish against `b3sum` and sendme's import
//! of the same file; single-provider fetch over TCP and over QUIC against `curl`
//! downloading it from a local nginx over HTTPS (TLS 1.3) and plain HTTP and against
//! `sendme receive`, three interleaved rounds with medians, spreads and CPU per GiB
//! of every process (`fetch.rs`), and the in-place publish interleaved with
//! b3sum the same way; a fetch from three providers against one; for
//! version N+1 with ~1% scattered edits, the bytes a consumer holding version N moves
//! and the time it takes to fetch and materialize N+1 over N's output (on the node's
//! disk, and on a reflink file system if given), against a full fetch; the bytes
//! moved for ~1% appended; peak RSS of the publishing and fetching node processes.
//! `bench/transfer` installs the anchors.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{sample, Testnet, TestnetConfig};

mod anchors;
mod fetch;
mod measure;
mod objects;

use anchors::{timed, Sendme};
use fetch::ROUNDS;
use measure::{
    blink_row, cpu_during, mbps, measured_fetch, moved_row, peak_rss_mib, timed_fetch, LONG,
};
pub(crate) use measure::{median, write_random};
pub use measure::{BenchOptions, Row};
pub use objects::objects;

/// Runs the benchmark and returns the table rows.
pub fn transfer(opts: &BenchOptions) -> anyhow::Result<Vec<Row>> {
    let mut b = Bench::start(opts)?;
    let mut rows = Vec::new();
    let (sendme, publish_rss) = publish_rows(&mut b, opts, &mut rows)?;
    let f = fetch_rows(&mut b, opts, sendme, &mut rows)?;
    version_rows(&b, opts, f.fetch1, &mut rows)?;
    copy_rows(&mut b, opts, &f, &mut rows)?;
    rows.push(Row {
        what: "peak RSS".into(),
        mesh: format!(
            "publisher {publish_rss:.0} MiB, fetcher {:.0} MiB",
            f.fetch_rss
        ),
        baseline: String::new(),
        ratio: String::new(),
        target: "fetch < 200 MB".into(),
    });
    phase_logs(&b.net, opts);
    b.net.stop_all()?;
    Ok(rows)
}

/// The benchmark's mesh and data.
struct Bench {
    net: Testnet,
    /// A mesh that speaks QUIC only, with the same product, for the QUIC rows.
    quic: Testnet,
    size: u64,
    /// The folder published, holding `file`.
    data: PathBuf,
    file: PathBuf,
    /// Another random file's folder, for the in-place rows.
    other: PathBuf,
}

impl Bench {
    /// Nine nodes (5 and 6 take part only at the end, in the `--copy` fetch rows;
    /// 7 is the third fresh consumer of the fetch rounds; 8 publishes the copying
    /// publish's later rounds), a QUIC-only mesh of four, and two random files of the
    /// benchmark's size.
    fn start(opts: &BenchOptions) -> anyhow::Result<Bench> {
        let size = opts.size_mib * 1024 * 1024;
        let mut config =
            TestnetConfig::new(opts.mesh.clone(), 9, &["sales", "finance", "logistics"]);
        config.council = 1;
        config.threshold = 1;
        let mut net = Testnet::create(config)?;
        net.start_all()?;
        let mut config = TestnetConfig::new(opts.mesh.clone(), 4, &["sales", "finance"]);
        config.council = 1;
        config.threshold = 1;
        let mut quic = Testnet::create(config)?;
        for n in &mut quic.nodes {
            n.transport = crate::Transport::Quic;
        }
        quic.start_all()?;
        let data = net.root().join("data");
        std::fs::create_dir_all(&data)?;
        let file = data.join("big.bin");
        (opts.progress)(&format!("writing {} MiB of test data", opts.size_mib));
        write_random(&file, size, 42)?;
        // Another file of the same size for the in-place publish, on a node that holds
        // none of big.bin's chunks (big.bin itself is edited by the new-version rows).
        let other = net.root().join("in-place");
        std::fs::create_dir_all(&other)?;
        write_random(&other.join("big.bin"), size, 43)?;
        let _ = Command::new("sync").status();
        Ok(Bench {
            net,
            quic,
            size,
            data,
            file,
            other,
        })
    }
}

/// The product's manifest at version `v`.
fn toml(v: &str) -> String {
    sample::bench_manifest_toml("sales/big", v)
}

/// The copying publish against cp + fsync of the same file (and b3sum and sendme's
/// import), and the in-place publish against b3sum on one thread, each
/// [`ROUNDS`] times interleaved with its anchor. Returns sendme (still serving, for the
/// fetch rows) and the publisher's peak RSS.
fn publish_rows(
    b: &mut Bench,
    opts: &BenchOptions,
    rows: &mut Vec<Row>,
) -> anyhow::Result<(Sendme, f64)> {
    let (net, size, data, file, other) = (&mut b.net, b.size, &b.data, &b.file, &b.other);
    let b3 = timed(Command::new("b3sum").arg(file)).context("b3sum (cargo install b3sum)")?;
    let b3_1 = timed(Command::new("b3sum").args(["--num-threads", "1"]).arg(file))?;
    let (publish, cp) = copy_rounds(net, data, size)?;
    let (publish, cp) = (median(&publish), median(&cp));
    let publish_rss = peak_rss_mib(net.nodes[0].pid().context("node 0 pid")?)?;
    let sendme = Sendme::send(file, net.root(), LONG)?;
    let (in_place, b3_other) = in_place_rounds(net, other)?;
    let (in_place, b3_other) = (median(&in_place), median(&b3_other));
    rows.push(Row {
        what: format!("publish {} MiB (copied into the store)", opts.size_mib),
        mesh: format!("{} ({:.0} MB/s)", spread(publish), mbps(size, publish.0)),
        baseline: format!(
            "cp + fsync {}; sendme import {:.2} s (by reference, no copy); b3sum {:.2} s ({:.0} MB/s), 1 thread {:.2} s",
            spread(cp),
            sendme.import.as_secs_f64(),
            b3.as_secs_f64(),
            mbps(size, b3),
            b3_1.as_secs_f64()
        ),
        ratio: format!(
            "{:.2}x cp + fsync; {:.2}x sendme import",
            cp.0.as_secs_f64() / publish.0.as_secs_f64(),
            sendme.import.as_secs_f64() / publish.0.as_secs_f64()
        ),
        target: ">= 1x cp + fsync".into(),
    });
    rows.push(Row {
        what: format!(
            "publish {} MiB in place (`--in-place`, another random file)",
            opts.size_mib
        ),
        mesh: format!("{} ({:.0} MB/s)", spread(in_place), mbps(size, in_place.0)),
        baseline: format!(
            "b3sum 1 thread (same file) {}; sendme import {:.2} s",
            spread(b3_other),
            sendme.import.as_secs_f64()
        ),
        ratio: format!(
            "{:.2}x b3sum 1 thread; {:.2}x sendme import",
            in_place.0.as_secs_f64() / b3_other.0.as_secs_f64(),
            sendme.import.as_secs_f64() / in_place.0.as_secs_f64()
        ),
        target: "<= 1.5x b3sum 1 thread; >= 1x sendme import".into(),
    });
    Ok((sendme, publish_rss))
}

/// Copying publishes against `cp` + `sync` of the same file (what a copying publish
/// does besides chunking and hashing: a durable copy), [`ROUNDS`] rounds with the
/// copy first. The first round publishes `data` on node 0 (the product the fetch
/// rows fetch); the others each a new random file of `size` bytes on node 8, which
/// holds nothing else (bytes a store already holds are not written again), removed
/// after. Returns both series of times.
fn copy_rounds(
    net: &Testnet,
    data: &Path,
    size: u64,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut mesh, mut cp) = (Vec::new(), Vec::new());
    for k in 1..=ROUNDS {
        let folder = if k == 1 {
            data.to_owned()
        } else {
            let folder = net.root().join(format!("copy-round-{k}"));
            std::fs::create_dir_all(&folder)?;
            write_random(&folder.join("big.bin"), size, 50 + k as u64)?;
            folder
        };
        let copy = net.root().join("cp-copy.bin");
        cp.push(timed(
            Command::new("sh")
                .args(["-c", r#"cp "$1" "$2" && sync "$2""#, "cp"])
                .arg(folder.join("big.bin"))
                .arg(&copy),
        )?);
        std::fs::remove_file(&copy)?;
        let t = Instant::now();
        if k == 1 {
            net.publish(0, &folder, &toml("1.0.0"))?;
        } else {
            let name = format!("logistics/big-copy-{k}");
            net.publish(8, &folder, &sample::bench_manifest_toml(&name, "1.0.0"))?;
        }
        mesh.push(t.elapsed());
        if k > 1 {
            std::fs::remove_dir_all(&folder)?;
        }
    }
    Ok((mesh, cp))
}

/// Publishes `other` in place on node 3 [`ROUNDS`] times, as that many products (the
/// same file cut and hashed whole each time), each after `b3sum --num-threads 1` of
/// the same file. Returns both series of times.
fn in_place_rounds(net: &Testnet, other: &Path) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut mesh, mut b3) = (Vec::new(), Vec::new());
    for k in 1..=ROUNDS {
        b3.push(timed(
            Command::new("b3sum")
                .args(["--num-threads", "1"])
                .arg(other.join("big.bin")),
        )?);
        let toml = sample::bench_manifest_toml(&format!("sales/big-in-place-{k}"), "1.0.0");
        let t = Instant::now();
        net.publish_in_place(3, other, &toml)?;
        mesh.push(t.elapsed());
    }
    Ok((mesh, b3))
}

/// `0.43 s (0.41-0.47 s over 3)`, of [`median`]'s triple.
fn spread((mid, lo, hi): (Duration, Duration, Duration)) -> String {
    format!(
        "{:.2} s ({:.2}-{:.2} s over {ROUNDS})",
        mid.as_secs_f64(),
        lo.as_secs_f64(),
        hi.as_secs_f64()
    )
}

/// What the fetch rows measured, for the rows after them.
struct Fetched {
    /// The median single-provider fetch over TCP.
    fetch1: Duration,
    fetch_rss: f64,
    /// The median HTTPS download and sendme receive.
    curl_file: Duration,
    receive: Duration,
}

/// Fetches from one provider ([`fetch::rounds`]: TCP on nodes 1, 2 and 7, QUIC on
/// the QUIC mesh's 1, 2 and 3, against nginx + curl and sendme, interleaved), then
/// from three: node 3, then node 4 with node 3 stopped, from 0, 1, 2 (best of 2).
fn fetch_rows(
    b: &mut Bench,
    opts: &BenchOptions,
    sendme: Sendme,
    rows: &mut Vec<Row>,
) -> anyhow::Result<Fetched> {
    let size = b.size;
    let root = b.net.root().to_owned();
    fetch::wait_all(&b.net, &[1, 2, 3, 4, 7])?;
    b.quic.publish(0, &b.data, &toml("1.0.0"))?;
    fetch::wait_all(&b.quic, &[1, 2, 3])?;
    let mut tcp = fetch::MeshSide {
        net: &mut b.net,
        provider: 0,
        consumers: vec![1, 2, 7],
        peak_rss: 0.0,
    };
    let mut quic = fetch::MeshSide {
        net: &mut b.quic,
        provider: 0,
        consumers: vec![1, 2, 3],
        peak_rss: 0.0,
    };
    let f = fetch::rounds(&mut tcp, &mut quic, &b.data, &sendme, &root, opts.progress)?;
    let fetch_rss = tcp.peak_rss.max(quic.peak_rss);
    drop(sendme);
    b.quic.stop_all()?;
    rows.extend(f.rows(size));
    let net = &mut b.net;
    for i in [1, 2] {
        net.start(i)?;
    }
    let running = net.nodes.iter().filter(|n| n.pid().is_some()).count();
    for i in [1, 2] {
        net.wait_peers(i, running - 1, LONG)?;
    }
    let fetch1 = f.tcp.median();
    let mut fetch3 = Duration::MAX;
    let mut used = 0;
    for (consumer, stopped) in [(3, None), (4, Some(3))] {
        let (elapsed, outcome) = measured_fetch(net, consumer, stopped, 3, opts.progress)?;
        fetch3 = fetch3.min(elapsed);
        used = used.max(outcome.providers.len());
    }
    rows.push(Row {
        what: "fetch, 3 providers on loopback (best of 2; shaped links: `bench-links`)".into(),
        mesh: format!(
            "{:.2} s ({:.0} MB/s, {used} providers used)",
            fetch3.as_secs_f64(),
            mbps(size, fetch3),
        ),
        baseline: format!("1 provider (TCP, median) {:.2} s", fetch1.as_secs_f64()),
        ratio: format!("{:.2}x", fetch1.as_secs_f64() / fetch3.as_secs_f64()),
        target: ">= 1x".into(),
    });
    Ok(Fetched {
        fetch1,
        fetch_rss,
        curl_file: f.https.median(),
        receive: f.sendme.median(),
    })
}

/// A new version over the previous one's output: node 1 writes 1.0.0 to the
/// node's own disk, node 2 to the reflink file system if there is one; then ~1%
/// changed (scattered edits), then 1% appended.
fn version_rows(
    b: &Bench,
    opts: &BenchOptions,
    fetch1: Duration,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let (net, size, data, file) = (&b.net, b.size, &b.data, &b.file);
    let here = net.root().join("versions");
    net.fetch(1, "sales/big@1.0.0", &here)?;
    let there = opts
        .reflink_dir
        .as_ref()
        .map(|d| d.join(format!("mesh-bench-{}", std::process::id())));
    if let Some(dir) = &there {
        net.fetch(2, "sales/big@1.0.0", dir)?;
    }
    // ~1% changed: scattered edits, then appended bytes.
    let mut bytes = std::fs::read(file)?;
    let edits = 100u64;
    let edit_len = (size / 100 / edits).max(1) as usize;
    for k in 0..edits {
        let at = ((k * 2 + 1) * size / (edits * 2)) as usize;
        for b in bytes.iter_mut().skip(at).take(edit_len) {
            *b = b.wrapping_add(1);
        }
    }
    std::fs::write(file, &bytes)?;
    let p2 = net.publish(0, data, &toml("1.1.0"))?;
    net.wait_product(1, "sales/big", "1.1.0", LONG)?;
    net.wait_product(2, "sales/big", "1.1.0", LONG)?;
    let (f2, took) = timed_fetch(net, 1, "sales/big@1.1.0", &here)?;
    rows.push(moved_row(
        format!("new version, {edits} scattered edits (1% of bytes)"),
        &f2,
        p2.new_bytes,
    ));
    let fs_here = fs_type(net.root());
    rows.push(blink_row(&fs_here, took, &f2, fetch1));
    if let Some(dir) = &there {
        let (f, took) = timed_fetch(net, 2, "sales/big@1.1.0", dir)?;
        rows.push(blink_row(&fs_type(dir), took, &f, fetch1));
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(file)?;
    let extra = size / 100;
    let tail: Vec<u8> = bytes
        .iter()
        .take(extra as usize)
        .map(|b| b.wrapping_mul(3))
        .collect();
    f.write_all(&tail)?;
    drop(f);
    let p3 = net.publish(0, data, &toml("1.2.0"))?;
    net.wait_product(1, "sales/big", "1.2.0", LONG)?;
    let f4 = net.fetch(1, "sales/big@1.2.0", &net.root().join("out1c"))?;
    rows.push(moved_row(
        "new version, 1% appended".into(),
        &f4,
        p3.new_bytes,
    ));
    Ok(())
}

/// With `--copy` (into the store and the output: each byte written twice), from
/// node 0 alone (the other holders stopped), on two nodes that never held it, each
/// stopped after its fetch so it does not serve the next.
fn copy_rows(
    b: &mut Bench,
    opts: &BenchOptions,
    f: &Fetched,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let net = &mut b.net;
    let size_fetched = b.size;
    let Fetched {
        curl_file, receive, ..
    } = *f;
    for i in 1..5 {
        net.nodes[i].terminate()?;
    }
    let mut fetch_copy = Duration::MAX;
    for consumer in [5, 6] {
        net.wait_product(consumer, "sales/big", "1.0.0", LONG)?;
        let out = net.root().join(format!("out{consumer}"));
        let _ = Command::new("sync").status();
        let t = Instant::now();
        let (f, cpu) = cpu_during(net, || net.fetch(consumer, "sales/big@1.0.0", &out))?;
        let elapsed = t.elapsed();
        anyhow::ensure!(!f.in_place, "the fetch on node {consumer} was in place");
        (opts.progress)(&format!(
            "fetch --copy on node {consumer}: {:.2} s; CPU {cpu}",
            elapsed.as_secs_f64()
        ));
        fetch_copy = fetch_copy.min(elapsed);
        net.nodes[consumer].terminate()?;
        let _ = std::fs::remove_dir_all(&out);
    }
    rows.push(Row {
        what: "fetch, 1 provider, TCP, `--copy` (a second copy in the store; best of 2)".into(),
        mesh: format!(
            "{:.2} s ({:.0} MB/s)",
            fetch_copy.as_secs_f64(),
            mbps(size_fetched, fetch_copy)
        ),
        baseline: format!(
            "nginx HTTPS + curl -o file {:.2} s; sendme receive {:.2} s (medians)",
            curl_file.as_secs_f64(),
            receive.as_secs_f64()
        ),
        ratio: format!(
            "{:.2}x curl; {:.2}x sendme",
            curl_file.as_secs_f64() / fetch_copy.as_secs_f64(),
            receive.as_secs_f64() / fetch_copy.as_secs_f64()
        ),
        target: "(for comparison)".into(),
    });
    Ok(())
}

/// Where the time went, from the nodes' own phase logs.
fn phase_logs(net: &Testnet, opts: &BenchOptions) {
    for i in 0..net.nodes.len() {
        let log =
            std::fs::read_to_string(net.root().join(format!("node{i:02}.log"))).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("publish timings") || l.contains("fetched "))
        {
            (opts.progress)(&format!("node {i}: {}", line.trim()));
        }
    }
}

/// The file system type of `path` as `df` names it ("ext4", "xfs"), or "?".
fn fs_type(path: &Path) -> String {
    Command::new("df")
        .args(["--output=fstype"])
        .arg(path)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().nth(1).map(|l| l.trim().to_owned()))
        .unwrap_or_else(|| "?".into())
}

/// Renders rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| measurement | mesh | baseline (same run) | ratio | target |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.what, r.mesh, r.baseline, r.ratio, r.target
        );
    }
    s
}
