//! The `mesh-testnet` binary: `demo` runs the README's local mesh end to end; the
//! hidden `mesh` command runs the `mesh` CLI itself, so that one build of this binary
//! is all a demo needs.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mesh_testnet::{file_hash, sample, MeshBin, Testnet, TestnetConfig};

/// Local meshes of real mesh nodes on loopback.
#[derive(Debug, Parser)]
#[command(name = "mesh-testnet", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start 3 nodes of different domains, publish a product on one, watch it reach
    /// the others over gossip, fetch and verify it on both, print a summary.
    Demo {
        /// Rows of sample CSV data to publish.
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Keep homes and logs in this directory instead of a temp dir.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Transfer benchmark: publish vs b3sum, fetch vs nginx+curl, 3 providers vs 1,
    /// bytes moved for a ~1% change, peak RSS. `bench/transfer` installs the anchors.
    BenchTransfer {
        /// Product size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
    },
    /// Run the `mesh` CLI (this binary carries it).
    #[command(hide = true, disable_help_flag = true)]
    Mesh {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Mesh { args } => mesh_cli::run(std::iter::once("mesh".into()).chain(args)),
        Cmd::BenchTransfer { size_mib } => {
            let run = || -> anyhow::Result<()> {
                let rows = mesh_testnet::bench::transfer(&mesh_testnet::bench::BenchOptions {
                    size_mib,
                    mesh: MeshBin::from_env_or_current()?,
                })?;
                print!("{}", mesh_testnet::bench::markdown(&rows));
                Ok(())
            };
            match run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("benchmark failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Demo { rows, dir } => match demo(rows, dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn step(t0: Instant, msg: &str) {
    println!("[{:>6.2}s] {msg}", t0.elapsed().as_secs_f64());
}

fn demo(rows: usize, dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut config = TestnetConfig::new(
        MeshBin::from_env_or_current()?,
        3,
        &["sales", "finance", "logistics"],
    );
    config.dir = dir;
    let mut net = Testnet::create(config).context("creating the testnet")?;
    step(
        t0,
        &format!(
            "council of 3 (threshold 2) signed the genesis policy; homes in {}",
            net.root().display()
        ),
    );
    net.start_all()?;
    for n in &net.nodes {
        step(
            t0,
            &format!("node {} [{}] {} on {}", n.index, n.domain, n.peer_id, n.ip),
        );
    }
    let data = net.root().join("data");
    let csv = sample::write_orders(&data, rows, 7)?;
    let published = net.publish(0, &data, &sample::manifest_toml("sales/orders", "1.0.0"))?;
    step(
        t0,
        &format!(
            "sales published {}@{} ({} bytes, manifest {})",
            published.product,
            published.version,
            published.size,
            &published.manifest[..12]
        ),
    );
    for i in 1..3 {
        net.wait_product(i, "sales/orders", "1.0.0", Duration::from_secs(30))?;
        step(
            t0,
            &format!(
                "node {i} [{}] learned of it over the mesh",
                net.nodes[i].domain
            ),
        );
    }
    let source = file_hash(&csv)?;
    println!();
    println!(
        "{:<6} {:<10} {:>12} {:>12}  {:<9} RESULT",
        "NODE", "DOMAIN", "BYTES", "TRANSFER", "VERIFIED"
    );
    for i in 1..3 {
        let out = net.root().join(format!("fetched-{i}"));
        let o = net.fetch(i, "sales/orders@1.0.0", &out)?;
        let same = file_hash(&out.join("orders.csv"))? == source;
        println!(
            "{:<6} {:<10} {:>12} {:>12}  {:<9} {}",
            i,
            net.nodes[i].domain,
            o.size,
            o.transferred_bytes,
            if o.verified { "blake3" } else { "no" },
            if same { "byte-identical" } else { "MISMATCH" }
        );
        if !same {
            anyhow::bail!("node {i} fetched data that differs from the source");
        }
    }
    println!();
    net.stop_all()?;
    step(
        t0,
        "demo complete: published, announced, fetched and verified on every node; nodes stopped",
    );
    Ok(())
}
