//! The object storage benchmark: mesh against `aws s3 cp` to and from the same
//! SeaweedFS server on loopback, in one run, with the local-disk rows beside them.
//!
//! For a product of `size` random bytes: `aws s3 cp` uploads it (the anchor of a
//! delivery, and the object published), then downloads it (the anchor of a publish
//! in place, which reads every object once); `mesh publish s3://... --in-place`;
//! the consumer fetches the version into its store, then delivers the held
//! version into a fresh prefix (`mesh fetch -o s3://...`: the upload alone); and
//! the local-disk publish and fetch of the same file. Each timed row runs three
//! times interleaved with its anchor; the median and the spread are printed.
//! `bench/objects` installs `weed` and `aws` (scripts/py-clients s3).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mesh_testkit::seaweed::Seaweed;

use super::anchors::timed;
use super::measure::{mbps, median, write_random, BenchOptions, Row, LONG};
use crate::{sample, Testnet, TestnetConfig};

/// Runs of each timed row.
const RUNS: usize = 3;

/// Runs the benchmark and returns the table rows.
pub fn objects(opts: &BenchOptions) -> anyhow::Result<Vec<Row>> {
    let weed = Seaweed::binary()
        .context("no weed binary: run scripts/py-clients s3 (bench/objects does)")?;
    let aws = weed
        .parent()
        .map(|b| b.join("aws"))
        .filter(|a| a.is_file())
        .context("no aws beside weed: run scripts/py-clients s3")?;
    let size = opts.size_mib * 1024 * 1024;
    let mut config = TestnetConfig::new(opts.mesh.clone(), 2, &["sales", "finance"]);
    config.council = 1;
    config.threshold = 1;
    let mut net = Testnet::create(config)?;
    let s3 = Seaweed::start(&weed, &net.root().join("seaweed"))?;
    s3.make_bucket("bench")?;
    for n in &mut net.nodes {
        n.env = s3.env();
    }
    net.start_all()?;
    let data = net.root().join("data");
    std::fs::create_dir_all(&data)?;
    let file = data.join("big.bin");
    (opts.progress)(&format!("writing {} MiB of test data", opts.size_mib));
    write_random(&file, size, 42)?;
    let aws_cp = |from: &str, to: &str| {
        timed(
            Command::new(&aws)
                .args([
                    "--endpoint-url",
                    &s3.endpoint,
                    "s3",
                    "cp",
                    "--only-show-errors",
                ])
                .args([from, to])
                .envs(s3.env()),
        )
    };
    let file_s = file.to_string_lossy().to_string();
    let mut rows = Vec::new();
    (opts.progress)("publish in place from S3 against aws s3 cp download");
    let (mut upload, mut download, mut publish) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        upload.push(aws_cp(&file_s, "s3://bench/src/big.bin")?);
        let copy = net.root().join("aws-copy.bin");
        download.push(aws_cp("s3://bench/src/big.bin", &copy.to_string_lossy())?);
        std::fs::remove_file(&copy)?;
        let t = Instant::now();
        publish_url(&net, 0, "s3://bench/src", &format!("1.0.{run}"))?;
        publish.push(t.elapsed());
    }
    rows.push(row(
        format!("publish {} MiB in place from S3 (SeaweedFS)", opts.size_mib),
        size,
        &publish,
        "aws s3 cp download",
        &download,
        ">= 0.8x aws s3 cp",
    ));
    (opts.progress)("deliver into S3 against aws s3 cp upload");
    crate::wait_until("the consumer to see the version", LONG, || {
        net.knows(1, "sales/big", &format!("1.0.{}", RUNS - 1))
    })?;
    net.fetch(1, "sales/big", &net.root().join("held"))?;
    let mut deliver = Vec::new();
    let mut upload2 = Vec::new();
    for run in 0..RUNS {
        upload2.push(aws_cp(
            &file_s,
            &format!("s3://bench/aws-up-{run}/big.bin"),
        )?);
        let t = Instant::now();
        deliver_to(&net, 1, &format!("s3://bench/out-{run}"))?;
        deliver.push(t.elapsed());
    }
    upload.extend(upload2);
    rows.push(row(
        format!(
            "deliver {} MiB into S3 (`mesh fetch -o s3://`, held)",
            opts.size_mib
        ),
        size,
        &deliver,
        "aws s3 cp upload",
        &upload,
        ">= 0.8x aws s3 cp",
    ));
    local_rows(&mut net, opts, &data, size, &publish, &deliver, &mut rows)?;
    net.stop_all()?;
    Ok(rows)
}

/// The local-disk publish and fetch of the same file, beside the S3 rows.
fn local_rows(
    net: &mut Testnet,
    opts: &BenchOptions,
    data: &Path,
    size: u64,
    publish_s3: &[Duration],
    deliver: &[Duration],
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    (opts.progress)("the local-disk rows");
    let toml = sample::bench_manifest_toml("sales/local", "1.0.0");
    let t = Instant::now();
    net.publish_in_place(0, data, &toml)?;
    let local_publish = t.elapsed();
    crate::wait_until("the consumer to see the local product", LONG, || {
        net.knows(1, "sales/local", "1.0.0")
    })?;
    let t = Instant::now();
    net.fetch(1, "sales/local", &net.root().join("local-out"))?;
    let local_fetch = t.elapsed();
    rows.push(row(
        format!("publish {} MiB in place from local disk", opts.size_mib),
        size,
        &[local_publish],
        "publish in place from S3 (median)",
        publish_s3,
        "(for comparison)",
    ));
    rows.push(row(
        format!(
            "fetch {} MiB onto local disk (one provider, loopback)",
            opts.size_mib
        ),
        size,
        &[local_fetch],
        "deliver into S3 (median)",
        deliver,
        "(for comparison)",
    ));
    Ok(())
}

/// Publishes `url` in place from node `i` as `sales/big@version`.
fn publish_url(net: &Testnet, i: usize, url: &str, version: &str) -> anyhow::Result<()> {
    let manifest = net.root().join("big.toml");
    let toml = sample::bench_manifest_toml("sales/big", version);
    std::fs::write(&manifest, toml)?;
    let out = net.nodes[i].mesh(
        net.mesh_bin(),
        &[
            "publish",
            url,
            "--manifest",
            &manifest.to_string_lossy(),
            "--in-place",
        ],
    )?;
    if !out.status.success() {
        bail!("publish {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Node `i` delivers the newest `sales/big` into `url`.
fn deliver_to(net: &Testnet, i: usize, url: &str) -> anyhow::Result<()> {
    let out = net.nodes[i].mesh(net.mesh_bin(), &["fetch", "sales/big", "-o", url])?;
    if !out.status.success() {
        bail!("fetch -o {url}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A row: mesh's median against the anchor's, as a rate ratio.
fn row(
    what: String,
    size: u64,
    mesh: &[Duration],
    anchor: &str,
    base: &[Duration],
    target: &str,
) -> Row {
    let (m, m_lo, m_hi) = median(mesh);
    let (b, b_lo, b_hi) = median(base);
    Row {
        what,
        mesh: format!(
            "{:.2} s ({:.0} MB/s; {:.2}-{:.2} s over {})",
            m.as_secs_f64(),
            mbps(size, m),
            m_lo.as_secs_f64(),
            m_hi.as_secs_f64(),
            mesh.len()
        ),
        baseline: format!(
            "{anchor} {:.2} s ({:.0} MB/s; {:.2}-{:.2} s over {})",
            b.as_secs_f64(),
            mbps(size, b),
            b_lo.as_secs_f64(),
            b_hi.as_secs_f64(),
            base.len()
        ),
        ratio: format!("{:.2}x", b.as_secs_f64() / m.as_secs_f64().max(1e-9)),
        target: target.into(),
    }
}
