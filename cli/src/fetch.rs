//! `mesh fetch`: through the running daemon, or, with `--genesis` and `--bootstrap`,
//! one-shot: an ephemeral node in this process that trusts the genesis, catches up
//! the policy chain and catalog from the bootstrap peers, verifies everything as a
//! daemon would, fetches, and exits, leaving nothing behind but the files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use mesh_node::api::{DeliveryReport, FetchEvent, FetchOutcome, FetchRequest, Filter};
use mesh_node::home::policy_file;
use mesh_node::{unix_now, ApiClient, ClientError, NodeHome, RunOptions};
use mesh_protocol::ProductRef;
use mesh_storage::objects::ObjectUrl;

use crate::args::FetchArgs;
use crate::output::{human_bytes, say, say_err};

/// How long a one-shot fetch waits for the mesh to show the product.
const DISCOVERY_DEADLINE: Duration = Duration::from_secs(60);

/// Shows a fetch's progress: JSON lines with `--json`, a bar on a terminal, a line
/// every 10% otherwise.
struct Progress {
    json: bool,
    tty: bool,
    bar: ProgressBar,
    last_pct: u64,
    /// An ephemeral node's fetch: nothing is served afterwards.
    one_shot: bool,
}

impl Progress {
    fn new(json: bool) -> Self {
        Progress {
            json,
            tty: std::io::stderr().is_terminal() && !json,
            bar: ProgressBar::hidden(),
            last_pct: 0,
            one_shot: false,
        }
    }

    fn event(&mut self, event: &FetchEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                say!("{line}");
            }
        }
        match event {
            FetchEvent::Resolved {
                product,
                total_bytes,
                missing_bytes,
                providers,
                ..
            } => {
                if self.tty {
                    let bar = &self.bar;
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    bar.set_length(*total_bytes);
                    bar.set_position(total_bytes - missing_bytes.min(total_bytes));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_message(format!("{product} asking {providers} provider(s)"));
                } else if !self.json {
                    say_err!(
                        "fetching {product}: {} to download of {}, asking {providers} provider(s)",
                        human_bytes(*missing_bytes),
                        human_bytes(*total_bytes)
                    );
                }
            }
            FetchEvent::Progress {
                done_bytes,
                total_bytes,
            } => {
                if self.tty {
                    self.bar.set_position(*done_bytes);
                } else if !self.json && *total_bytes > 0 {
                    let pct = done_bytes * 100 / total_bytes;
                    if pct >= self.last_pct + 10 {
                        self.last_pct = pct - pct % 10;
                        say_err!(
                            "  {pct}% ({} of {})",
                            human_bytes(*done_bytes),
                            human_bytes(*total_bytes)
                        );
                    }
                }
            }
            FetchEvent::Delivering {
                done_bytes,
                total_bytes,
            } => {
                if self.tty {
                    self.bar.set_message("delivering into object storage");
                    self.bar.set_length(*total_bytes);
                    self.bar.set_position(*done_bytes);
                }
            }
            FetchEvent::Done(_) | FetchEvent::Error { .. } => {}
        }
    }

    /// Prints the outcome (warnings, where the files went, who served them).
    fn done(&self, o: &FetchOutcome, out: &Path) {
        self.bar.finish_and_clear();
        if self.json {
            return;
        }
        for w in &o.warnings {
            say_err!("warning: {w}");
        }
        for b in &o.banned {
            say_err!("warning: provider {b} sent chunks that failed verification and was dropped from this fetch");
        }
        for f in &o.flags {
            say_err!(
                "warning: {}@{} violates rule `{}` of policy v{}: {}",
                o.product,
                o.version,
                f.rule,
                f.policy_version,
                f.reason
            );
        }
        if let Some(d) = &o.delivered {
            delivered(o, d);
            return;
        }
        say!(
            "fetched {}@{} into {}: {} file(s), {}, {} transferred, every chunk verified (BLAKE3)",
            o.product,
            o.version,
            out.display(),
            o.files,
            human_bytes(o.size),
            human_bytes(o.transferred_bytes)
        );
        if o.in_place && !self.one_shot {
            say!("  kept in place: this node serves it from these files, with no copy in its store (edit one and it stops serving that version; --copy keeps one)");
        }
        if o.reused_bytes > 0 {
            say!(
                "  {} came from an earlier version this node wrote out ({}), not written again",
                human_bytes(o.reused_bytes),
                if o.cloned_files > 0 {
                    "cloned, sharing its blocks"
                } else {
                    "copied by the kernel"
                }
            );
        }
        if !o.served.is_empty() {
            say!("  served by {} provider(s):", o.served.len());
        }
        for (peer, bytes) in &o.served {
            say!("    {peer}  {}", human_bytes(*bytes));
        }
    }
}

/// Prints what a delivery into object storage did.
fn delivered(o: &FetchOutcome, d: &DeliveryReport) {
    if d.already_current {
        say!(
            "{}@{} is already current at {} (nothing written)",
            o.product,
            o.version,
            d.url
        );
        return;
    }
    say!(
        "delivered {}@{} into {}: {} file(s), {}, every chunk verified (BLAKE3); {}/current names it",
        o.product,
        o.version,
        d.version_url,
        d.files,
        human_bytes(o.size),
        d.url
    );
    say!(
        "  {} file(s) uploaded ({}), {} copied in the store from the previous version ({}), {} already there from an interrupted run",
        d.uploaded_files,
        human_bytes(d.uploaded_bytes),
        d.copied_files,
        human_bytes(d.copied_bytes),
        d.resumed_files
    );
    if !d.pruned.is_empty() {
        say!("  removed older version(s): {}", d.pruned.join(", "));
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir()?.join(p.strip_prefix(".").unwrap_or(p))
    })
}

/// The object storage URL `-o` names, if it names one (`s3://...`), checked.
fn object_target(a: &FetchArgs) -> anyhow::Result<Option<ObjectUrl>> {
    let Some(text) = a.out.to_str().filter(|t| ObjectUrl::is_object_url(t)) else {
        return Ok(None);
    };
    if a.in_place || a.copy || a.force {
        bail!("--in-place, --copy and --force are for a directory; a delivery into object storage puts each version under its own prefix and never overwrites one");
    }
    Ok(Some(text.parse()?))
}

/// `mesh fetch`: one-shot with `--genesis`, else through the daemon of `home`.
pub(crate) fn fetch(home: &Path, a: FetchArgs, json: bool) -> anyhow::Result<()> {
    if a.genesis.is_some() {
        if object_target(&a)?.is_some() {
            bail!("a one-shot fetch (--genesis) writes into a directory; deliver into object storage through a running node (`mesh node run`, credentials in its environment)");
        }
        return one_shot(a, json);
    }
    if !a.bootstrap.is_empty() || a.identity.is_some() {
        bail!("--bootstrap and --identity are for a one-shot fetch; give --genesis FILE too");
    }
    let to_objects = object_target(&a)?;
    let out = match &to_objects {
        Some(url) => PathBuf::from(url.to_string()),
        None => absolute(&a.out)?,
    };
    let mut progress = Progress::new(json);
    let request = FetchRequest {
        product: a.product.clone(),
        out: to_objects.is_none().then(|| out.clone()),
        force: a.force,
        in_place: to_objects.is_none() && !a.copy,
        to_objects: to_objects.map(|u| u.to_string()),
    };
    let client = ApiClient::for_home(&NodeHome::new(home)).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(no daemon? fetch without one: mesh fetch {} -o DIR --genesis genesis.policy.json --bootstrap ADDR)",
            a.product
        )
    })?;
    match client.fetch(&request, |event| progress.event(event)) {
        Ok(o) => {
            progress.done(&o, &out);
            Ok(())
        }
        Err(ClientError::Api { message, .. }) => {
            progress.bar.finish_and_clear();
            bail!("fetch of {} failed: {message}", a.product)
        }
        Err(e) => Err(e.into()),
    }
}

/// A fetch by an ephemeral node: a temporary home with a fresh identity (or
/// `--identity`, a node key the registry names, to fetch as that domain's node),
/// the genesis installed, the bootstrap peers dialled; removed when done.
fn one_shot(a: FetchArgs, json: bool) -> anyhow::Result<()> {
    let genesis_path = a.genesis.clone().context("--genesis")?;
    if a.bootstrap.is_empty() {
        bail!("a one-shot fetch needs --bootstrap ADDR: a multiaddr of any node of the mesh, ending in /p2p/<peer id> (see `mesh status` there)");
    }
    let target: ProductRef = a.product.parse()?;
    let out = absolute(&a.out)?;
    let genesis = policy_file::read(&genesis_path)?;
    let tmp = tempfile::Builder::new()
        .prefix("mesh-fetch-")
        .tempdir()
        .context("creating the ephemeral node's home")?;
    let home = NodeHome::new(tmp.path().join("home"));
    home.create(&"consumer".parse()?, None)?;
    if let Some(identity) = &a.identity {
        let bytes = std::fs::read(identity)
            .with_context(|| format!("reading the node key {}", identity.display()))?;
        mesh_node::home::write_atomic(&home.node_key_path(), &bytes)?;
        home.load_node_key().map_err(|e| {
            anyhow::anyhow!(
                "{} is not a node key (a home's node.key, protobuf-encoded ed25519): {e}",
                identity.display()
            )
        })?;
    }
    {
        let store = mesh_storage::SledStore::open(&home.db_path())?;
        mesh_node::install_genesis(&store, &genesis, unix_now())?;
    }
    // Any interface, any port: the node dials out, and peers it reaches may dial back.
    let mut config = home.load_config()?;
    config.listen = vec![
        "/ip4/0.0.0.0/udp/0/quic-v1".into(),
        "/ip4/0.0.0.0/tcp/0".into(),
    ];
    std::fs::write(home.config_path(), config.to_toml()?)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut progress = Progress::new(json);
    progress.one_shot = true;
    let result = runtime.block_on(async {
        let running = mesh_node::start(
            home,
            RunOptions {
                bootstrap: a.bootstrap.clone(),
                ephemeral: true,
                ..RunOptions::default()
            },
        )
        .await?;
        let node = running.node.clone();
        let outcome = async {
            wait_for_product(&node, &target, json).await?;
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            // The ephemeral store is thrown away: a copy there is pure cost, so
            // every byte is written once, into the output.
            let options = mesh_node::FetchOptions {
                overwrite: a.force,
                in_place: true,
            };
            let fetching = node.fetch_with(&target, Some(out.clone()), options, Some(tx));
            let showing = async {
                while let Some(e) = rx.recv().await {
                    progress.event(&e);
                }
            };
            let (fetch, ()) = tokio::join!(fetching, showing);
            Ok::<_, anyhow::Error>(fetch?)
        }
        .await;
        running.shutdown().await?;
        outcome
    });
    match result {
        Ok(o) => {
            // As through a daemon, `--json` ends with the outcome's event.
            progress.event(&FetchEvent::Done(o.clone()));
            progress.done(&o, &out);
            Ok(())
        }
        Err(e) => {
            progress.bar.finish_and_clear();
            Err(e.context(format!("one-shot fetch of {}", a.product)))
        }
    }
}

/// Waits until the catalog, synced from the bootstrap peers, shows `target` (and
/// has stopped growing for a moment, so the newest version is known).
async fn wait_for_product(
    node: &mesh_node::Node,
    target: &ProductRef,
    json: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let filter = Filter {
        domain: Some(target.id.domain().to_string()),
        ..Filter::default()
    };
    let mut last = usize::MAX;
    let mut said = false;
    loop {
        let status = node.status().await?;
        let entries = node.products(filter.clone(), unix_now()).await?;
        let found = entries.iter().any(|e| {
            e.announcement.product == target.id
                && target
                    .version
                    .as_ref()
                    .is_none_or(|v| *v == e.announcement.version)
        });
        if found && (target.version.is_some() || status.catalog == last) {
            return Ok(());
        }
        last = status.catalog;
        if !said && !json && started.elapsed() > Duration::from_secs(2) {
            say_err!(
                "waiting for the mesh: {} peer(s), policy v{}, {} product version(s) known",
                status.peers,
                status.policy_version,
                status.catalog
            );
            said = true;
        }
        if started.elapsed() > DISCOVERY_DEADLINE {
            if status.peers == 0 {
                bail!("no peer reached within {DISCOVERY_DEADLINE:?}: check the --bootstrap address and that the node there is running");
            }
            bail!(
                "{target} is not in the catalog of the mesh reached ({} peer(s), {} product version(s), policy v{}); see `mesh products` on a node of the mesh",
                status.peers,
                status.catalog,
                status.policy_version
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
