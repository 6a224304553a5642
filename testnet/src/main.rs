//! The `mesh-testnet` binary: `demo` runs the README's local mesh end to end; the
//! hidden `mesh` command runs the `mesh` CLI itself, so that one build of this binary
//! is all a demo needs.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mesh_testnet::{file_hash, sample, scenario, MeshBin, Testnet, TestnetConfig};

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
        /// Then keep the mesh running with a few more products (lineage with a
        /// pinned upstream, several versions, usage) and print the address of each
        /// node's web catalog; Ctrl-C stops it.
        #[arg(long)]
        serve: bool,
    },
    /// Transfer benchmark: publish vs b3sum and sendme, fetch vs nginx+curl and
    /// sendme, 3 providers vs 1, bytes moved and time taken for a ~1% change, peak
    /// RSS. `bench/transfer` installs the anchors and mounts an XFS image.
    BenchTransfer {
        /// Product size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// A directory on a file system with reflinks (XFS, btrfs): the new-version
        /// row is also measured there.
        #[arg(long)]
        reflink_dir: Option<std::path::PathBuf>,
    },
    /// Object storage: publish in place from, and deliver into, a SeaweedFS on
    /// loopback, against `aws s3 cp` to and from it (needs scripts/py-clients s3).
    BenchObjects {
        /// Product size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
    },
    /// Multi-provider fetch on shaped links: every consumer reaches each of 4
    /// providers through its own link limited to --rate-mbps; fetches from 1, 2, 3
    /// and 4 providers, and from 3 with a fourth at --slow-mbps.
    BenchLinks {
        /// Product size in MiB.
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Each provider link's rate in MB/s.
        #[arg(long, default_value_t = 50)]
        rate_mbps: u64,
        /// The slow provider's rate in MB/s.
        #[arg(long, default_value_t = 5)]
        slow_mbps: u64,
        /// Rounds, each on a fresh mesh: every row shows its median and spread.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Start N nodes in DIR (council, genesis and domains generated) and hold them in
    /// the foreground until Ctrl-C, SIGTERM or `down`; no node outlives this process.
    Up {
        /// Number of nodes (each on its own 127.0.0.x address).
        #[arg(short = 'n', long, default_value_t = 5)]
        nodes: usize,
        /// Number of distinct domains, assigned round-robin.
        #[arg(long, default_value_t = 3)]
        domains: usize,
        /// Directory for homes, logs and the state file (must not hold a testnet).
        #[arg(long, default_value = "mesh-testnet")]
        dir: std::path::PathBuf,
        /// Run every link through the fault proxy (discovery off; ring plus 3 chords).
        #[arg(long)]
        proxied: bool,
    },
    /// Show every node of the testnet `up` holds in DIR: running, peers, catalog,
    /// policy, memory.
    Status {
        /// The directory given to `up`.
        #[arg(long, default_value = "mesh-testnet")]
        dir: std::path::PathBuf,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop the testnet `up` holds in DIR (SIGTERM, then SIGKILL after 30 s).
    Down {
        /// The directory given to `up`.
        #[arg(long, default_value = "mesh-testnet")]
        dir: std::path::PathBuf,
    },
    /// Run a fault scenario on a fresh mesh whose links all go through the fault
    /// proxy; prints a table, writes JSON, exits non-zero if it failed. Scenarios:
    /// propagation, policy-convergence, partition, churn, late-join, degrade,
    /// subscription, all.
    Scenario {
        /// Which scenario (or `all`).
        name: String,
        /// Number of nodes.
        #[arg(short = 'n', long, default_value_t = 8)]
        nodes: usize,
        /// Announcements to measure (propagation, partition, degrade).
        #[arg(long, default_value_t = 20)]
        announcements: usize,
        /// Products the mesh holds before a node joins (late-join).
        #[arg(long, default_value_t = 100)]
        products: usize,
        /// Kill-and-restart rounds (churn).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds any step may take before the scenario fails.
        #[arg(long, default_value_t = 120)]
        deadline: u64,
        /// Seconds the idle mesh's traffic is measured (late-join, before the
        /// joiner starts, after as many seconds to settle). Each node pulls a
        /// whole catalog every 30 s: a window under 60 s may miss those pulls.
        #[arg(long, default_value_t = 60)]
        idle: u64,
        /// Keep homes and logs here (default: a temp dir, removed afterwards).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Write the reports as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// A mesh across NATs in network namespaces (root only): a relay with DNS, two
    /// cone-NAT sites and a symmetric-NAT site; relay slots, hole punching, fetches
    /// direct, relayed and within a LAN, and a fetch after the relay is gone. Prints
    /// the figures; exits non-zero if a step failed.
    Nat {
        /// Nodes in each of the two main sites (the second cone site has one).
        #[arg(long, default_value_t = 2)]
        per_site: usize,
        /// Rows of sample CSV in the throughput products (about 38 bytes a row).
        #[arg(long, default_value_t = 400_000)]
        rows: usize,
        /// Seconds any step may take.
        #[arg(long, default_value_t = 120)]
        deadline: u64,
    },
    /// Crash consistency: SIGKILL a node at random moments during publish, fetch and
    /// policy submission, restart it, and check that every acknowledged publish is
    /// held and verifies, nothing partial is visible, fetches resume, and the policy
    /// chain is intact. Exits non-zero on the first broken promise.
    Crash {
        /// Kill-and-restart iterations.
        #[arg(short = 'n', long, default_value_t = 100)]
        iterations: usize,
        /// Seed for the operations and kill moments (a failing seed replays).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Rows of sample CSV per product (about 45 bytes a row).
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Put the homes on a disk that forgets unsynced writes, and make each kill a
        /// power loss of both nodes (needs root or fusermount3, and /dev/fuse).
        #[arg(long)]
        power_loss: bool,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Chaos soak: a seeded random schedule of publishes, fetches, policy changes,
    /// kill -9 and restarts, SIGSTOP / SIGCONT, partitions and corrupted chunks on a
    /// proxied mesh; then checks that every acknowledged publish is held and
    /// verifies, every fetch was byte-identical, and every node converged. Prints a
    /// table; exits non-zero on a violation.
    Chaos {
        /// Nodes in the mesh.
        #[arg(short = 'n', long, default_value_t = 10)]
        nodes: usize,
        /// How long the schedule runs, in seconds (the checks come after).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Seed of the schedule (a failing seed replays).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Keep the node homes and logs here.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Run the `mesh` CLI (this binary carries it).
    #[command(hide = true, disable_help_flag = true)]
    Mesh {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Runs a benchmark and prints its table; a failure is said and exits non-zero.
fn bench(run: impl FnOnce(MeshBin) -> anyhow::Result<Vec<mesh_testnet::bench::Row>>) -> ExitCode {
    match MeshBin::from_env_or_current().and_then(run) {
        Ok(rows) => {
            print!("{}", mesh_testnet::bench::markdown(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Mesh { args } => mesh_cli::run(std::iter::once("mesh".into()).chain(args)),
        Cmd::Up {
            nodes,
            domains,
            dir,
            proxied,
        } => report(MeshBin::from_env_or_current().and_then(|mesh| {
            mesh_testnet::cluster::up(&mesh_testnet::cluster::UpOptions {
                nodes,
                domains,
                dir,
                proxied,
                mesh,
                say: |line| println!("{line}"),
            })
        })),
        Cmd::Status { dir, json } => report(status(&dir, json)),
        Cmd::Down { dir } => report(mesh_testnet::cluster::down(&dir).map(|forced| {
            println!(
                "testnet in {} stopped{}",
                dir.display(),
                if forced > 0 {
                    format!(" ({forced} node(s) had to be killed)")
                } else {
                    String::new()
                }
            );
        })),
        Cmd::Demo { rows, dir, serve } => match demo(rows, dir, serve) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e:#}");
                ExitCode::FAILURE
            }
        },
        cmd @ (Cmd::BenchTransfer { .. } | Cmd::BenchLinks { .. } | Cmd::BenchObjects { .. }) => {
            benches(cmd)
        }
        cmd @ Cmd::Scenario { .. } => scenarios(cmd),
        cmd => experiments(cmd),
    }
}

/// The benchmarks, each printing its table.
fn benches(cmd: Cmd) -> ExitCode {
    match cmd {
        Cmd::BenchTransfer {
            size_mib,
            reflink_dir,
        } => bench(|mesh| {
            mesh_testnet::bench::transfer(&mesh_testnet::bench::BenchOptions {
                size_mib,
                reflink_dir,
                mesh,
                progress: |line| eprintln!("{line}"),
            })
        }),
        Cmd::BenchObjects { size_mib } => bench(|mesh| {
            mesh_testnet::bench::objects(&mesh_testnet::bench::BenchOptions {
                size_mib,
                reflink_dir: None,
                mesh,
                progress: |line| eprintln!("{line}"),
            })
        }),
        Cmd::BenchLinks {
            size_mib,
            rate_mbps,
            slow_mbps,
            rounds,
        } => bench(|mesh| {
            mesh_testnet::bench_links::links(&mesh_testnet::bench_links::LinkBenchOptions {
                size_mib,
                rate_mbps,
                slow_mbps,
                rounds,
                mesh,
                progress: |line| eprintln!("{line}"),
            })
        }),
        _ => unreachable_command(),
    }
}

/// The fault experiments and scenarios, each printing its report.
fn experiments(cmd: Cmd) -> ExitCode {
    match cmd {
        Cmd::Nat {
            per_site,
            rows,
            deadline,
        } => report(MeshBin::from_env_or_current().and_then(|mesh| {
            let mut lab = mesh_testnet::nat::NatLab::start(mesh, per_site)?;
            let r = mesh_testnet::nat::scenario(
                &mut lab,
                rows,
                std::time::Duration::from_secs(deadline),
            )?;
            print!("{}", r.markdown());
            Ok(())
        })),
        Cmd::Crash {
            iterations,
            seed,
            rows,
            power_loss,
            json,
        } => report(MeshBin::from_env_or_current().and_then(|mesh| {
            let r = mesh_testnet::crash::run(mesh_testnet::crash::CrashOptions {
                iterations,
                seed,
                rows,
                mesh,
                power_loss,
                say: |line| println!("{line}"),
            })?;
            print!("{}", mesh_testnet::crash::markdown(&r));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&r)?)?;
            }
            Ok(())
        })),
        Cmd::Chaos {
            nodes,
            seconds,
            seed,
            json,
            dir,
        } => report(MeshBin::from_env_or_current().and_then(|mesh| {
            let r = mesh_testnet::chaos::run(mesh_testnet::chaos::ChaosOptions {
                nodes,
                duration: std::time::Duration::from_secs(seconds),
                seed,
                mesh,
                dir,
                say: |line| println!("{line}"),
            })?;
            print!("{}", mesh_testnet::chaos::markdown(&r));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&r)?)?;
            }
            anyhow::ensure!(
                r.violations.is_empty(),
                "{} violation(s) of the mesh's promises",
                r.violations.len()
            );
            Ok(())
        })),
        _ => unreachable_command(),
    }
}

/// The mesh scenarios, each printing its report.
fn scenarios(cmd: Cmd) -> ExitCode {
    match cmd {
        Cmd::Scenario {
            name,
            nodes,
            announcements,
            products,
            rounds,
            deadline,
            idle,
            dir,
            json,
        } => {
            let run = || -> anyhow::Result<bool> {
                let mut opts = scenario::Options::new(MeshBin::from_env_or_current()?, nodes);
                opts.announcements = announcements;
                opts.products = products;
                opts.rounds = rounds;
                opts.deadline = Duration::from_secs(deadline);
                opts.idle = Duration::from_secs(idle);
                let names: Vec<&str> = if name == "all" {
                    scenario::NAMES.to_vec()
                } else {
                    vec![name.as_str()]
                };
                let mut reports = Vec::new();
                for n in names {
                    opts.dir = dir.as_ref().map(|d| d.join(n));
                    eprintln!("running scenario {n} with {nodes} nodes");
                    let r = scenario::run(n, &opts)?;
                    println!("{}", r.table());
                    reports.push(r);
                }
                if let Some(path) = &json {
                    std::fs::write(path, serde_json::to_string_pretty(&reports)?)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                Ok(reports.iter().all(|r| r.passed))
            };
            match run() {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("scenario failed: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => unreachable_command(),
    }
}

/// A command routed to the wrong group: a bug in this file.
fn unreachable_command() -> ExitCode {
    eprintln!("mesh-testnet: internal error: a command reached the wrong handler");
    ExitCode::FAILURE
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-testnet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn status(dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let (state, views) = mesh_testnet::cluster::status(dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    println!(
        "testnet in {} held by pid {}{}",
        dir.display(),
        state.pid,
        if state.proxied {
            ", links through the fault proxy"
        } else {
            ""
        }
    );
    println!(
        "{:<5} {:<10} {:<8} {:>5} {:>8} {:>7} {:>8}",
        "NODE", "DOMAIN", "STATE", "PEERS", "CATALOG", "POLICY", "RSS MiB"
    );
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for v in views {
        println!(
            "{:<5} {:<10} {:<8} {:>5} {:>8} {:>7} {:>8}",
            v.index,
            v.domain,
            if v.running { "running" } else { "down" },
            show(v.peers.map(|p| p.to_string())),
            show(v.catalog.map(|c| c.to_string())),
            show(v.policy.map(|p| format!("v{p}"))),
            show(v.rss_mib.map(|r| format!("{r:.0}"))),
        );
    }
    Ok(())
}

fn step(t0: Instant, msg: &str) {
    println!("[{:>6.2}s] {msg}", t0.elapsed().as_secs_f64());
}

fn demo(rows: usize, dir: Option<std::path::PathBuf>, serve: bool) -> anyhow::Result<()> {
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
    if serve {
        mesh_testnet::showcase::extend(&net, &data, rows, &published.manifest)?;
        step(
            t0,
            "published finance/revenue (pinned to sales/orders 1.0.0), logistics/shipments and sales/orders 1.1.0",
        );
        println!();
        println!("The mesh catalog in your browser, as each node sees it:");
        for n in &net.nodes {
            println!(
                "  node {} [{}]  {}",
                n.index,
                n.domain,
                n.client()?.catalog_url(None)
            );
        }
        println!();
        println!("Ctrl-C stops the nodes.");
        mesh_testnet::cluster::wait_for_stop_signal()?;
    }
    net.stop_all()?;
    step(
        t0,
        "demo complete: published, announced, fetched and verified on every node; nodes stopped",
    );
    Ok(())
}
