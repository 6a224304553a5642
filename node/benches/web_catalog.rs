//! Benchmark: the web catalog's server time over a catalog of 10,000 products
//! (100 domains × 100 products, each with a signed manifest of 8 columns), on an
//! in-process node, measured over loopback HTTP. The baseline, measured in the same
//! run on the same catalog, is the control API's JSON listing (`GET /v1/products`),
//! which reads and judges the same products. Then a second node joins and pulls the
//! whole catalog from the first (late-joiner catch-up), against the time the first
//! node took to take the same announcements in-process.
//!
//! Run: `cargo bench -p mesh-node --bench web_catalog` (prints a Markdown table;
//! `MESH_BENCH_PRODUCTS=N` changes the catalog size; `MESH_BENCH_JOINER_ONLY=1`
//! times only the late joiner, for profiling it; `MESH_BENCH_TRACE=1` prints its
//! catalog's size as it grows).

use std::error::Error;
use std::time::{Duration, Instant};

use mesh_node::{install_genesis, unix_now, unix_now_ms, NodeHome, RunOptions};
use mesh_protocol::announcement::{Summary, ANNOUNCEMENT_FORMAT};
use mesh_protocol::manifest::{
    ChunkRef, Classification, Field, FileEntry, LogicalType, Owner, Sla, Status, MANIFEST_FORMAT,
};
use mesh_protocol::policy::{Council, DomainEntry};
use mesh_protocol::{Announcement, Hash, KeyPair, Manifest, Policy, Signed};

type Res<T> = Result<T, Box<dyn Error>>;

/// Products per domain.
const PER_DOMAIN: usize = 100;
/// Timed requests per row (the median is reported).
const RUNS: usize = 15;

fn manifest(domain: &str, n: usize, key: &KeyPair) -> Res<Manifest> {
    let id = format!("{domain}/product-{n}");
    let size = 1_000_000 + n as u64;
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        id: id.parse()?,
        version: semver::Version::new(1, 0, n as u64 % 5),
        status: Status::Active,
        title: format!("Product {n} of {domain}"),
        description: format!(
            "Sample product {n} of domain {domain}, with eight columns and a daily SLA."
        ),
        owner: Owner {
            team: format!("{domain}-data"),
            contact: format!("{domain}@example.com"),
        },
        tags: vec!["bench".into(), format!("t{}", n % 10)],
        classification: Classification::Internal,
        consumers: vec![],
        schema: (0..8)
            .map(|c| Field {
                name: format!("col{}", (n * 8 + c) % 1000),
                logical_type: LogicalType::String,
                required: c == 0,
                description: format!("column {c}"),
                classification: Classification::Internal,
                unique: false,
            })
            .collect(),
        null_values: Default::default(),
        sla: Sla {
            freshness_secs: Some(86_400),
            ..Default::default()
        },
        lineage: vec![],
        files: vec![FileEntry {
            path: "data.csv".into(),
            size,
            chunks: vec![ChunkRef {
                hash: Hash::of(id.as_bytes()),
                len: u32::try_from(size)?,
            }],
        }],
        quality: None,
        created_at: unix_now(),
        publisher: key.public(),
        contract: None,
        derivation: None,
        odps: None,
    })
}

fn announcement(m: &Manifest, signed: &Signed<Manifest>, key: &KeyPair) -> Vec<u8> {
    let a = Announcement {
        format: ANNOUNCEMENT_FORMAT,
        product: m.id.clone(),
        version: m.version.clone(),
        manifest: signed.hash(),
        summary: Summary {
            title: m.title.clone(),
            status: m.status,
            classification: m.classification,
            tags: m.tags.clone(),
            owner_team: m.owner.team.clone(),
            size: m.files.iter().map(|f| f.size).sum(),
            files: 1,
        },
        providers: vec![libp2p::PeerId::random().to_string()],
        issued_at_ms: unix_now_ms(),
        publisher: key.public(),
    };
    Signed::sign(&a, key).to_bytes()
}

/// The size of `GET url`'s body, read and dropped as it arrives (so the bench's own
/// client holds no listing, and the process RSS it prints is the node's).
fn size_of(url: &str) -> Res<usize> {
    let n = std::io::copy(
        &mut ureq::get(url).call()?.into_reader(),
        &mut std::io::sink(),
    )?;
    Ok(usize::try_from(n)?)
}

/// Median wall time and body size of `GET url` over [`RUNS`] runs.
fn time_get(url: &str) -> Res<(Duration, usize)> {
    let mut times = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        bytes = size_of(url)?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], bytes))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() -> Res<()> {
    // As `mesh` does first thing.
    mesh_node::limit_arenas();
    let products: usize = std::env::var("MESH_BENCH_PRODUCTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let domains = products.div_ceil(PER_DOMAIN).max(1);
    let dir = tempfile::tempdir()?;
    let council = KeyPair::generate();
    let keys: Vec<(String, KeyPair)> = (0..domains)
        .map(|d| (format!("dom{d}"), KeyPair::generate()))
        .collect();
    let registry = keys
        .iter()
        .map(|(name, key)| {
            Ok((
                name.parse()?,
                DomainEntry {
                    publisher_keys: [key.public()].into(),
                    ..Default::default()
                },
            ))
        })
        .collect::<Res<_>>()?;
    let council_of_one = Council {
        members: [council.public()].into(),
        threshold: 1,
    };
    let genesis = Signed::sign(
        &Policy::genesis(council_of_one, registry, unix_now(), 86_400)?,
        &council,
    );
    let home = NodeHome::new(dir.path().join("node"));
    home.create(
        &"dom0".parse()?,
        Some(KeyPair::from_secret(keys[0].1.secret_bytes())),
    )?;
    install_genesis(
        &mesh_storage::SledStore::open(&home.db_path())?,
        &genesis,
        unix_now(),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let running = rt.block_on(mesh_node::start(
        home,
        RunOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            ..Default::default()
        },
    ))?;
    let probe = running.node.probe();
    let filled = Instant::now();
    for i in 0..products {
        let (domain, key) = &keys[i / PER_DOMAIN];
        let m = manifest(domain, i % PER_DOMAIN, key)?;
        let signed = Signed::sign(&m, key);
        probe.learn(&announcement(&m, &signed, key), &signed)?;
    }
    let filled_in = filled.elapsed();
    eprintln!(
        "catalog of {products} products over {domains} domains filled in {:.1} s; process RSS {}",
        filled_in.as_secs_f64(),
        rss()
    );
    if std::env::var_os("MESH_BENCH_JOINER_ONLY").is_none() {
        listings(&format!("http://{}", running.api_addr), products)?;
    }
    let (joiner_domain, joiner_key) = &keys[keys.len() - 1];
    let joined = rt.block_on(late_joiner(
        &dir,
        (joiner_domain, joiner_key),
        &genesis,
        &running,
        products,
    ))?;
    println!();
    println!("| late joiner ({products} products) | seconds | vs baseline |");
    println!("|---|---|---|");
    println!(
        "| baseline: filling the first node in-process (`learn`, same catalog) | {:.1} | 1.00x |",
        filled_in.as_secs_f64()
    );
    println!(
        "| a new node's catalog complete, from its start (catalog sync over loopback) | {:.1} | {:.2}x |",
        joined.as_secs_f64(),
        joined.as_secs_f64() / filled_in.as_secs_f64()
    );
    rt.block_on(running.shutdown())?;
    Ok(())
}

/// Times every listing row against the JSON listing and prints the first table.
fn listings(base: &str, products: usize) -> Res<()> {
    let (baseline, baseline_bytes) = time_get(&format!("{base}/v1/products"))?;
    eprintln!("process RSS after {RUNS} JSON listings: {}", rss());
    // The first page view after a catalog change builds the listing.
    let cold = Instant::now();
    let first = size_of(&format!("{base}/products"))?;
    let cold = cold.elapsed();
    eprintln!("process RSS after the web listing is built: {}", rss());
    // The first lineage walk loads every known manifest's lineage, reversed.
    let first_lineage = Instant::now();
    size_of(&format!("{base}/v1/lineage/dom7/product-42"))?;
    let first_lineage = first_lineage.elapsed();
    let rows: Vec<(&str, String)> = vec![
        ("products page, warm", format!("{base}/products")),
        (
            "products search `col123 t3`",
            format!("{base}/products?q=col123+t3"),
        ),
        (
            "products page 150, newest first",
            format!("{base}/products?sort=updated&page=150"),
        ),
        (
            "`mesh products --search col123` (`GET /v1/products?q=col123`: no id, title or tag has it)",
            format!("{base}/v1/products?q=col123"),
        ),
        (
            "`mesh products --search dom12/product-4` (11 products)",
            format!("{base}/v1/products?q=dom12/product-4"),
        ),
        (
            "`mesh products --search product-42` (one product in every domain)",
            format!("{base}/v1/products?q=product-42"),
        ),
        (
            "`mesh lineage dom7/product-42` (`GET /v1/lineage/...`)",
            format!("{base}/v1/lineage/dom7/product-42"),
        ),
        ("home page", format!("{base}/")),
        ("product page", format!("{base}/products/dom7/product-42")),
    ];
    println!("| request ({products} products) | median ms | bytes | vs baseline |");
    println!("|---|---|---|---|");
    println!(
        "| baseline: `GET /v1/products` (JSON, same catalog) | {} | {baseline_bytes} | 1.00x |",
        ms(baseline)
    );
    println!(
        "| products page, first view after a change (builds the listing) | {} | {} | {:.2}x |",
        ms(cold),
        first,
        cold.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "| first `mesh lineage` after a start (loads every manifest's declared lineage) | {} |  | {:.2}x |",
        ms(first_lineage),
        first_lineage.as_secs_f64() / baseline.as_secs_f64()
    );
    for (what, url) in rows {
        let (t, bytes) = time_get(&url)?;
        println!(
            "| {what} | {} | {bytes} | {:.2}x |",
            ms(t),
            t.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    let rss = rss();
    eprintln!(
        "machine: {} cores; median of {RUNS} runs over loopback HTTP; the node's process RSS after the runs: {rss}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}

/// This process's resident memory, for the report.
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown".to_string(),
            |kb| format!("{:.0} MiB{}", kb / 1024.0, heap_in_use()),
        )
}

/// The bytes glibc's allocator has handed out and not had back, all arenas: what
/// of the RSS is live data (the rest is the binary, stacks, and memory freed but
/// kept by the allocator).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn heap_in_use() -> String {
    // SAFETY: mallinfo2 only reads the allocator's own counters.
    let info = unsafe { libc::mallinfo2() };
    format!(
        " (heap in use {:.0} MiB, free in the heap {:.0} MiB)",
        info.uordblks as f64 / 1048576.0,
        info.fordblks as f64 / 1048576.0
    )
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> String {
    String::new()
}

/// Starts a second node of `domain` bootstrapping to `first`, and returns the time
/// from its start until its catalog holds all `products` (at most 10 minutes).
async fn late_joiner(
    dir: &tempfile::TempDir,
    (domain, key): (&str, &KeyPair),
    genesis: &Signed<Policy>,
    first: &mesh_node::RunningNode,
    products: usize,
) -> Res<Duration> {
    let home = NodeHome::new(dir.path().join("joiner"));
    home.create(
        &domain.parse()?,
        Some(KeyPair::from_secret(key.secret_bytes())),
    )?;
    install_genesis(
        &mesh_storage::SledStore::open(&home.db_path())?,
        genesis,
        unix_now(),
    )?;
    let bootstrap = first.node.status().await?.listen;
    let started = Instant::now();
    let joiner = mesh_node::start(
        home,
        RunOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap,
            ..Default::default()
        },
    )
    .await?;
    let probe = joiner.node.probe();
    let deadline = started + Duration::from_secs(600);
    while probe.catalog_len() < products {
        if Instant::now() > deadline {
            return Err(format!(
                "the late joiner holds {} of {products} products after 10 minutes",
                probe.catalog_len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if std::env::var_os("MESH_BENCH_TRACE").is_some() {
            eprintln!(
                "{:.2} {}",
                started.elapsed().as_secs_f64(),
                probe.catalog_len()
            );
        }
    }
    let took = started.elapsed();
    joiner.shutdown().await?;
    Ok(took)
}
