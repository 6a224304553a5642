//! The crash-consistency harness: SIGKILL a node at a random moment during a
//! publish, a fetch or a policy submission, restart it, and check what it promised.
//!
//! Two nodes: node 0 (sales) publishes, node 1 (finance) fetches and takes policy
//! submissions. Each iteration picks an operation and a kill delay from a seeded
//! generator (so a failing seed replays), with delays spread over the operation's
//! measured uninterrupted duration. After the restart:
//! - **publish**: every publish that was acknowledged is listed as held and its
//!   bytes verify; an unacknowledged one is either absent or complete, never partial;
//! - **fetch** (every other one in place): nothing sits under the output's final
//!   name unless complete and correct, and fetching again completes, verifies, and
//!   reports how many bytes the interrupted attempt had already saved;
//! - **policy**: the node starts (its chain re-verifies from genesis), enforces the
//!   new version if the submission was acknowledged, and both nodes converge on the
//!   same version.
//!
//! With `power_loss`, the homes live on a [`crate::powerloss::Disk`] and each kill is
//! a power loss of the machine: both nodes are killed, the disk forgets every write
//! not yet synced, and both restart. Every promise above must still hold; only what
//! was never acknowledged may be lost.

use mesh_node::api::FetchRequest;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mesh_protocol::policy_change::PolicyChange;

use crate::{file_hash, sample, MeshBin, Testnet, TestnetConfig};

/// How long any one step may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct CrashOptions<F: FnMut(&str)> {
    /// Kill-and-restart iterations.
    pub iterations: usize,
    /// Seeds the choice of operation and kill moment.
    pub seed: u64,
    /// Rows of sample CSV per product (about 45 bytes a row).
    pub rows: usize,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Put the homes on a power-loss disk and lose power at each kill.
    pub power_loss: bool,
    /// Receives one progress line per iteration.
    pub say: F,
}

/// The operation an iteration interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A publish on node 0.
    Publish,
    /// A fetch on node 1.
    Fetch,
    /// A policy submission on node 1.
    Policy,
}

/// What one iteration saw.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Iteration {
    /// The operation.
    pub op: Op,
    /// Milliseconds after the request when the node was killed (0 with `at_ack`).
    pub kill_after_ms: u64,
    /// The kill (a power loss) came right after the acknowledgment.
    pub at_ack: bool,
    /// Whether the node acknowledged the operation before it died.
    pub acknowledged: bool,
    /// Fetch only: bytes the retry did not have to download again.
    pub saved_bytes: u64,
}

/// The harness's result: every iteration, all of which passed their checks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrashReport {
    /// The seed used.
    pub seed: u64,
    /// The iterations, in order.
    pub iterations: Vec<Iteration>,
    /// With `power_loss`: what the disk saw, and what the power losses threw away.
    pub disk: Option<crate::powerloss::Stats>,
}

struct Harness {
    net: Testnet,
    /// The power-loss disk the homes are on (dropped after `net`: nodes die first).
    disk: Option<crate::powerloss::Disk>,
    /// Where source data is written: never on the power-loss disk.
    scratch: PathBuf,
    /// Holds `scratch` and the disk's mount point, with `power_loss`.
    _tmp: Option<tempfile::TempDir>,
    rows: usize,
    /// Acknowledged publishes: product, and the source file's hash.
    published: Vec<(String, blake3::Hash)>,
    /// Source data by product, for products announced but not yet fetched by node 1.
    unfetched: Vec<(String, blake3::Hash)>,
    counter: usize,
}

/// Runs the harness; fails on the first broken promise, naming the seed and step.
pub fn run<F: FnMut(&str)>(mut options: CrashOptions<F>) -> anyhow::Result<CrashReport> {
    let mut h = Harness::start(&options)?;
    // Calibrate: time one uninterrupted request of each operation.
    let publish_ms = h.publish_uninterrupted()?;
    let fetch_ms = h.fetch_uninterrupted()?;
    let policy_ms = h.submit_policy_uninterrupted()?;
    (options.say)(&format!(
        "calibrated: publish {publish_ms} ms, fetch {fetch_ms} ms, policy {policy_ms} ms (seed {})",
        options.seed
    ));

    let mut rng = mesh_testkit::SeededRng::new(options.seed);
    let mut iterations = Vec::new();
    for i in 0..options.iterations {
        let op = match rng.below(3) {
            0 => Op::Publish,
            1 => Op::Fetch,
            _ => Op::Policy,
        };
        let span = match op {
            Op::Publish => publish_ms,
            Op::Fetch => fetch_ms,
            Op::Policy => policy_ms,
        };
        // Up to 20% past the usual duration, so some kills land after the ack. With
        // a power-loss disk, one iteration in three loses power right after the
        // acknowledgment, before any background flush: what was acknowledged must
        // have been synced.
        let kill_after_ms = rng.below(span + span / 5 + 1);
        let kill = if options.power_loss && rng.below(3) == 0 {
            None
        } else {
            Some(kill_after_ms)
        };
        let moment = match kill {
            Some(ms) => format!("after {ms:>5} ms"),
            None => "at the ack".to_owned(),
        };
        let step = || {
            format!(
                "iteration {i} ({op:?}, kill {moment}, seed {})",
                options.seed
            )
        };
        let it = match op {
            Op::Publish => h.crash_publish(kill),
            Op::Fetch => h.crash_fetch(kill),
            Op::Policy => h.crash_policy(kill),
        }
        .with_context(step)?;
        (options.say)(&iteration_line(i, op, options.power_loss, &moment, &it));
        iterations.push(it);
    }
    h.net.stop_all()?;
    Ok(CrashReport {
        seed: options.seed,
        iterations,
        disk: h.disk.as_ref().map(|d| d.stats()),
    })
}

impl Harness {
    /// Two nodes (on a power-loss disk when asked), started.
    fn start<F: FnMut(&str)>(options: &CrashOptions<F>) -> anyhow::Result<Harness> {
        let mut config = TestnetConfig::new(options.mesh.clone(), 2, &["sales", "finance"]);
        let (disk, tmp) = if options.power_loss {
            let tmp = tempfile::Builder::new()
                .prefix("mesh-powerloss-")
                .tempdir()?;
            let disk = crate::powerloss::Disk::mount(&tmp.path().join("disk"))?;
            config.dir = Some(disk.path().to_owned());
            (Some(disk), Some(tmp))
        } else {
            (None, None)
        };
        let mut net = Testnet::create(config)?;
        net.start_all()?;
        let scratch = match &tmp {
            Some(t) => t.path().join("scratch"),
            None => net.root().to_owned(),
        };
        Ok(Harness {
            net,
            disk,
            scratch,
            _tmp: tmp,
            rows: options.rows,
            published: Vec::new(),
            unfetched: Vec::new(),
            counter: 0,
        })
    }
}

/// One iteration as the report prints it.
fn iteration_line(i: usize, op: Op, power_loss: bool, moment: &str, it: &Iteration) -> String {
    format!(
        "{i:>4} {:<8} {} {moment}  {}{}",
        format!("{op:?}").to_lowercase(),
        if power_loss { "power lost" } else { "killed" },
        if it.acknowledged {
            "acknowledged"
        } else {
            "not acknowledged"
        },
        if op == Op::Fetch {
            format!(", retry saved {} bytes", it.saved_bytes)
        } else {
            String::new()
        }
    )
}

/// A Markdown summary: per operation, iterations, acknowledged before the kill, and
/// bytes fetch retries saved.
pub fn markdown(report: &CrashReport) -> String {
    let mut out = String::from(
        "| operation | iterations | acknowledged before the kill | retry bytes saved | result |\n|---|---|---|---|---|\n",
    );
    for op in [Op::Publish, Op::Fetch, Op::Policy] {
        let its: Vec<_> = report.iterations.iter().filter(|i| i.op == op).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | all checks passed |\n",
            format!("{op:?}").to_lowercase(),
            its.len(),
            its.iter().filter(|i| i.acknowledged).count(),
            its.iter().map(|i| i.saved_bytes).sum::<u64>(),
        ));
    }
    if let Some(d) = &report.disk {
        out.push_str(&format!(
            "\npower-loss disk: {} power losses; {} writes ({} bytes) and {} syncs seen; {} files reverted, {} unsynced bytes forgotten\n",
            d.power_losses, d.writes, d.bytes_written, d.syncs, d.files_reverted, d.bytes_forgotten
        ));
    }
    out
}

impl Harness {
    fn root(&self) -> PathBuf {
        self.net.root().to_owned()
    }

    /// Fresh data for a new product; returns its name, directory and source hash.
    fn new_data(&mut self) -> anyhow::Result<(String, PathBuf, blake3::Hash)> {
        self.counter += 1;
        let name = format!("sales/crash-{}", self.counter);
        let dir = self.scratch.join(format!("data-{}", self.counter));
        let csv = sample::write_orders(&dir, self.rows, self.counter as u64)?;
        Ok((name, std::fs::canonicalize(dir)?, file_hash(&csv)?))
    }

    /// Publishes a new product on node 0 and waits until node 1 knows it; returns
    /// how long the publish request took, in milliseconds.
    fn publish_uninterrupted(&mut self) -> anyhow::Result<u64> {
        let (name, dir, hash) = self.new_data()?;
        let started = Instant::now();
        self.net.nodes[0]
            .client()?
            .publish(&dir, &sample::manifest_toml(&name, "1.0.0"))?;
        let took = started.elapsed().as_millis() as u64;
        self.net.wait_product(1, &name, "1.0.0", DEADLINE)?;
        self.published.push((name.clone(), hash));
        self.unfetched.push((name, hash));
        Ok(took)
    }

    /// A product node 1 knows and does not hold yet (published now if none).
    fn next_unfetched(&mut self) -> anyhow::Result<(String, blake3::Hash)> {
        if self.unfetched.is_empty() {
            self.publish_uninterrupted()?;
        }
        self.unfetched.pop().context("a product to fetch")
    }

    /// Fetches a product on node 1; returns how long that took, in milliseconds.
    fn fetch_uninterrupted(&mut self) -> anyhow::Result<u64> {
        let (name, hash) = self.next_unfetched()?;
        let out = self.root().join(format!("calibrate-{}", self.counter));
        let started = Instant::now();
        self.net.fetch(1, &name, &out)?;
        let took = started.elapsed().as_millis() as u64;
        check_output(&out, hash)?;
        Ok(took)
    }

    fn policy_change(&self) -> anyhow::Result<PolicyChange> {
        PolicyChange::from_toml(&format!(
            "[domains.sales]\ncontact = \"sales-{}@example.com\"\n",
            self.counter
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Submits a new policy version on node 1 and waits until node 0 enforces it;
    /// returns how long the submission took, in milliseconds.
    fn submit_policy_uninterrupted(&mut self) -> anyhow::Result<u64> {
        self.counter += 1;
        let signed = self.net.draft_policy(1, &self.policy_change()?, &[0, 1])?;
        let version = signed.value()?.version;
        let started = Instant::now();
        self.net.submit_policy(1, &signed)?;
        let took = started.elapsed().as_millis() as u64;
        self.net.wait_policy(0, version, DEADLINE)?;
        Ok(took)
    }

    /// Runs `request` on node `i` in a thread, kills the node after `kill` ms or,
    /// with `None`, as soon as it answers (with a
    /// power-loss disk: kills every node and loses power), restarts; returns the
    /// request's result.
    fn kill_during<T: Send + 'static>(
        &mut self,
        i: usize,
        kill: Option<u64>,
        request: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<anyhow::Result<T>> {
        let worker = std::thread::spawn(request);
        let join = |w: std::thread::JoinHandle<anyhow::Result<T>>| {
            w.join()
                .map_err(|_| anyhow::anyhow!("the request thread panicked"))
        };
        let (answered, running) = match kill {
            // The kill is the point: a fixed moment, whatever the request is doing.
            Some(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                (None, Some(worker))
            }
            None => (Some(join(worker)?), None),
        };
        if let Some(disk) = &self.disk {
            for n in &mut self.net.nodes {
                n.kill();
            }
            disk.power_loss();
        } else {
            self.net.nodes[i].kill();
        }
        let result = match (answered, running) {
            (Some(r), _) => r,
            (None, Some(w)) => join(w)?,
            (None, None) => bail!("the request thread was lost"),
        };
        if self.disk.is_some() {
            for n in 0..self.net.nodes.len() {
                self.net.start(n)?;
            }
            for n in 0..self.net.nodes.len() {
                self.net.wait_peers(n, 1, DEADLINE)?;
            }
        } else {
            self.net.start(i)?;
            self.net.wait_peers(i, 1, DEADLINE)?;
        }
        Ok(result)
    }

    fn crash_publish(&mut self, kill: Option<u64>) -> anyhow::Result<Iteration> {
        let (name, dir, hash) = self.new_data()?;
        let client = self.net.nodes[0].client()?;
        let manifest = sample::manifest_toml(&name, "1.0.0");
        let result = self.kill_during(0, kill, move || {
            client.publish(&dir, &manifest).map_err(anyhow::Error::from)
        })?;
        let acknowledged = result.is_ok();
        // Every acknowledged publish, this one included, is held and verifies.
        if acknowledged {
            self.published.push((name.clone(), hash));
            self.unfetched.push((name.clone(), hash));
        }
        let entries = self.net.products(0)?;
        for (product, source) in &self.published {
            let held = entries
                .iter()
                .any(|e| e.announcement.product.to_string() == *product && e.local);
            if !held {
                bail!("acknowledged publish {product} is not held after the restart");
            }
            self.verify_local(0, product, *source)?;
        }
        // An unacknowledged one is absent or whole.
        if !acknowledged {
            if let Some(e) = entries
                .iter()
                .find(|e| e.announcement.product.to_string() == name)
            {
                if !e.local {
                    bail!("unacknowledged publish {name} is listed but not held: partial");
                }
                self.verify_local(0, &name, hash)?;
            }
        }
        Ok(Iteration {
            op: Op::Publish,
            kill_after_ms: kill.unwrap_or(0),
            at_ack: kill.is_none(),
            acknowledged,
            saved_bytes: 0,
        })
    }

    /// Fetches `product` on node `i` (which holds it) into a scratch directory and
    /// compares it with its source.
    fn verify_local(&self, i: usize, product: &str, source: blake3::Hash) -> anyhow::Result<()> {
        let out = self.root().join("verify");
        let _ = std::fs::remove_dir_all(&out);
        self.net
            .fetch(i, product, &out)
            .with_context(|| format!("reading back {product} on node {i}"))?;
        check_output(&out, source).with_context(|| format!("verifying {product}"))
    }

    fn crash_fetch(&mut self, kill: Option<u64>) -> anyhow::Result<Iteration> {
        let (name, hash) = self.next_unfetched()?;
        self.counter += 1;
        let out = self.root().join(format!("fetch-{}", self.counter));
        let client = self.net.nodes[1].client()?;
        // Every other fetch in place (the store records chunks in the output's
        // partial file), the others into the store.
        let in_place = self.counter.is_multiple_of(2);
        let request = FetchRequest {
            product: name.clone(),
            out: Some(out.clone()),
            force: false,
            in_place,
            to_objects: None,
        };
        let result = self.kill_during(1, kill, move || {
            client
                .fetch(&request, |_| {})
                .map(|_| ())
                .map_err(anyhow::Error::from)
        })?;
        let acknowledged = result.is_ok();
        // Nothing partial under the final name.
        if out.join("orders.csv").exists() {
            check_output(&out, hash).context("a file under its final name after the kill")?;
        } else if acknowledged {
            bail!("the fetch was acknowledged but its output is missing");
        }
        // Fetching again completes and verifies. A catalog entry learned from gossip
        // moments before the kill may not have reached the disk (only what the node
        // holds is promised to survive); the connect-time sync brings it back.
        self.net.wait_product(1, &name, "1.0.0", DEADLINE)?;
        let outcome = if in_place {
            self.net.fetch_in_place(1, &name, &out)?
        } else {
            self.net.fetch(1, &name, &out)?
        };
        check_output(&out, hash)?;
        Ok(Iteration {
            op: Op::Fetch,
            kill_after_ms: kill.unwrap_or(0),
            at_ack: kill.is_none(),
            acknowledged,
            saved_bytes: outcome.size.saturating_sub(outcome.transferred_bytes),
        })
    }

    fn crash_policy(&mut self, kill: Option<u64>) -> anyhow::Result<Iteration> {
        self.counter += 1;
        let before = self.net.policy_version(1)?;
        let signed = self.net.draft_policy(1, &self.policy_change()?, &[0, 1])?;
        let version = signed.value()?.version;
        let client = self.net.nodes[1].client()?;
        let to_submit = signed.clone();
        let result = self.kill_during(1, kill, move || {
            client
                .submit_policy(&to_submit)
                .map_err(anyhow::Error::from)
        })?;
        let acknowledged = result.is_ok();
        let now = self.net.policy_version(1)?;
        if acknowledged && now < version {
            bail!(
                "policy v{version} was acknowledged but the node enforces v{now} after the restart"
            );
        }
        if now < before {
            bail!("the node went back from policy v{before} to v{now}");
        }
        // The chain is whole: history lists every version, and both nodes agree.
        let history = self.net.nodes[1].client()?.policy_history()?;
        if history.len() as u64 != now {
            bail!(
                "policy history holds {} versions, expected {now}",
                history.len()
            );
        }
        if now < version {
            // Not applied: submit again, as an operator would, and it lands.
            self.net.submit_policy(1, &signed)?;
        }
        self.net.wait_policy(0, version, DEADLINE)?;
        self.net.wait_policy(1, version, DEADLINE)?;
        Ok(Iteration {
            op: Op::Policy,
            kill_after_ms: kill.unwrap_or(0),
            at_ack: kill.is_none(),
            acknowledged,
            saved_bytes: 0,
        })
    }
}

/// The fetched `orders.csv` in `out` matches the source hash.
fn check_output(out: &Path, source: blake3::Hash) -> anyhow::Result<()> {
    let got = file_hash(&out.join("orders.csv"))?;
    if got != source {
        bail!(
            "{} does not match its source",
            out.join("orders.csv").display()
        );
    }
    Ok(())
}
