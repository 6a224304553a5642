//! The chaos soak: a seeded random schedule of work and faults on a proxied mesh of
//! real node processes, every acknowledged operation recorded, and a checker that
//! judges the mesh afterwards (Jepsen's idea, on one machine).
//!
//! Each step draws one action from the seed:
//! - work: publish a new product or version, fetch an acknowledged version;
//! - governance (see [`council`]): a contact change, a council key rotation, a
//!   domain removed and later added back, and forged policies (signed by a retired
//!   or never-registered key) that every node must refuse;
//! - faults: `kill -9` a node (restarted some steps later), SIGSTOP one (SIGCONT
//!   later), partition the mesh in two through the fault proxy (healed later),
//!   corrupt a stored chunk on a node whose product another node also holds, and
//!   fill one node's disk to the last byte (freed later; see [`disk`]).
//!
//! At the end every fault is healed, the council delivers its last change and adds
//! the removed domain back, and the checker ([`check`]) asserts:
//! - every acknowledged publish is held by its publisher and its bytes verify;
//! - every fetched file was byte-identical to what was published (checked as it
//!   was fetched);
//! - no node acknowledged a publish for a domain its own policy did not register;
//! - every live node converges to the council's policy head and the same catalog,
//!   with no entry left flagged as unregistered once its domain is back;
//! - every policy version any node holds is signed by a threshold of its
//!   predecessor's council: nothing signed by a retired or unregistered key counted;
//! - no node died other than by the schedule.
//!
//! A failing seed replays the same schedule.

mod check;
mod council;
mod disk;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use mesh_testkit::SeededRng;
use serde::Serialize;

use crate::proxy::FaultProxy;
use crate::{file_hash, sample, MeshBin, Testnet, TestnetConfig};

/// How long convergence and each request may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions<F: FnMut(&str)> {
    /// Nodes in the mesh (at least 4; 10 or more for a real soak).
    pub nodes: usize,
    /// How long the schedule runs (the checks come after).
    pub duration: Duration,
    /// Seeds the schedule.
    pub seed: u64,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Keep the homes and logs here (default: a temp dir removed afterwards).
    pub dir: Option<std::path::PathBuf>,
    /// Receives one line per step.
    pub say: F,
}

/// What a soak did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChaosReport {
    /// The seed used.
    pub seed: u64,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Steps of the schedule.
    pub steps: usize,
    /// Operations attempted and acknowledged, by kind.
    pub operations: BTreeMap<String, (usize, usize)>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Invariants checked: how many instances of each were checked.
    pub checked: BTreeMap<String, usize>,
    /// Why operations were not acknowledged: `op: reason` (numbers and hashes
    /// blanked), with how often.
    pub refusals: BTreeMap<String, usize>,
    /// Every violation found (empty: the mesh kept its promises).
    pub violations: Vec<String>,
}

/// The report as a Markdown table.
pub fn markdown(r: &ChaosReport) -> String {
    let mut s = format!(
        "### chaos ({} nodes, {} steps, seed {}): {}\n\n| what | count |\n|---|---|\n",
        r.nodes,
        r.steps,
        r.seed,
        if r.violations.is_empty() {
            "no violation"
        } else {
            "VIOLATIONS"
        }
    );
    for (op, (tried, acked)) in &r.operations {
        s.push_str(&format!(
            "| {op} (acknowledged of attempted) | {acked} of {tried} |\n"
        ));
    }
    for (fault, n) in &r.faults {
        s.push_str(&format!("| fault: {fault} | {n} |\n"));
    }
    for (inv, n) in &r.checked {
        s.push_str(&format!("| checked: {inv} | {n} |\n"));
    }
    let mut refusals: Vec<_> = r.refusals.iter().collect();
    refusals.sort_by(|a, b| b.1.cmp(a.1));
    for (why, n) in refusals.iter().take(8) {
        s.push_str(&format!("| not acknowledged: {why} | {n} |\n"));
    }
    s.push_str(&format!("| violations | {} |\n", r.violations.len()));
    for v in &r.violations {
        s.push_str(&format!("\nviolation: {v}\n"));
    }
    s
}

/// A rare action every soak takes at least once.
#[derive(Debug, Clone, Copy)]
enum Tour {
    Policy(council::Change),
    Forge,
    FillDisk,
}

/// The tour, in order.
const TOUR: [Tour; 4] = [
    Tour::Policy(council::Change::Rotate),
    Tour::Policy(council::Change::Remove),
    Tour::Forge,
    Tour::FillDisk,
];

/// An error's innermost cause, with numbers, hashes and addresses blanked, so
/// refusals of one kind count together.
fn reason(err: &anyhow::Error) -> String {
    let text = err.root_cause().to_string();
    let words: Vec<String> = text
        .split_whitespace()
        .take(14)
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "#".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    words.join(" ")
}

/// A fault in force, healed when its step comes or at the end.
#[derive(Debug)]
enum Healing {
    Restart(usize),
    Resume(usize),
    Heal,
    FreeDisk,
}

struct Soak<F: FnMut(&str)> {
    net: Testnet,
    proxy: FaultProxy,
    rng: SeededRng,
    report: ChaosReport,
    say: F,
    /// Acknowledged publishes: `product@version`, publisher, source hash.
    published: Vec<(String, usize, blake3::Hash)>,
    /// Nodes down (killed) or stopped, and when each comes back.
    pending: Vec<(usize, Healing)>,
    down: BTreeSet<usize>,
    partitioned: bool,
    counter: usize,
    council: council::CouncilState,
    /// The node whose home is on a small disk, and the disk (dropped after `net`).
    small: Option<(usize, disk::SmallDisk)>,
    disk_full: bool,
    /// Rare actions not taken yet (see [`TOUR`]).
    tour: Vec<Tour>,
    /// The soak's own temporary root, when no directory was given.
    _tmp: Option<tempfile::TempDir>,
}

/// Runs a soak; an error means the harness itself could not go on (a node that
/// would not start); broken promises are `violations` in the report.
pub fn run<F: FnMut(&str)>(mut options: ChaosOptions<F>) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(options.nodes >= 4, "a chaos soak needs at least 4 nodes");
    let mut config = TestnetConfig::new(
        options.mesh.clone(),
        options.nodes,
        &["sales", "finance", "logistics", council::REMOVABLE],
    );
    let tmp = match &options.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("mesh-chaos-").tempdir()?),
    };
    let root = match (&options.dir, &tmp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => anyhow::bail!("no directory for the soak"),
    };
    config.dir = Some(root.clone());
    // The last node's home goes on a small disk the schedule can fill.
    let small = if crate::process::is_root() {
        let last = options.nodes - 1;
        let domain = &config.domains[last % config.domains.len()];
        let home = root.join(format!("node{last:02}-{domain}"));
        Some((last, disk::SmallDisk::mount(&home)?))
    } else {
        (options.say)(
            "NOTE: not root, so no node gets a small disk: the full-disk fault is skipped",
        );
        None
    };
    let mut net = Testnet::create(config)?;
    let proxy = FaultProxy::new()?;
    net.start_all_proxied(&proxy, 2, options.seed)?;
    let genesis = net.current_policy(0)?;
    let council = council::CouncilState::new(genesis, net.council.len());
    let mut soak = Soak {
        net,
        proxy,
        rng: SeededRng::new(options.seed),
        report: ChaosReport {
            seed: options.seed,
            nodes: options.nodes,
            ..ChaosReport::default()
        },
        say: options.say,
        published: Vec::new(),
        pending: Vec::new(),
        down: BTreeSet::new(),
        partitioned: false,
        counter: 0,
        council,
        small,
        disk_full: false,
        tour: TOUR.to_vec(),
        _tmp: tmp,
    };
    let started = Instant::now();
    while started.elapsed() < options.duration {
        soak.step()?;
    }
    soak.heal_all()?;
    soak.settle_council()?;
    soak.check();
    soak.net.stop_all()?;
    Ok(soak.report)
}

impl<F: FnMut(&str)> Soak<F> {
    fn live(&self) -> Vec<usize> {
        (0..self.net.nodes.len())
            .filter(|i| !self.down.contains(i))
            .collect()
    }

    fn pick(&mut self, from: &[usize]) -> Option<usize> {
        (!from.is_empty()).then(|| from[self.rng.below(from.len() as u64) as usize])
    }

    /// Counts an attempted operation, and why it was not acknowledged.
    fn count_op<T>(&mut self, op: &str, result: &anyhow::Result<T>) {
        let e = self.report.operations.entry(op.into()).or_default();
        e.0 += 1;
        e.1 += usize::from(result.is_ok());
        if let Err(err) = result {
            *self
                .report
                .refusals
                .entry(format!("{op}: {}", reason(err)))
                .or_default() += 1;
        }
    }

    fn count_fault(&mut self, fault: &str) {
        *self.report.faults.entry(fault.into()).or_default() += 1;
    }

    fn step(&mut self) -> anyhow::Result<()> {
        self.report.steps += 1;
        let step = self.report.steps;
        // Faults whose time has come are healed first.
        let due: Vec<Healing> = {
            let (now, later): (Vec<_>, Vec<_>) =
                self.pending.drain(..).partition(|(at, _)| *at <= step);
            self.pending = later;
            now.into_iter().map(|(_, h)| h).collect()
        };
        for h in due {
            self.heal(h)?;
        }
        let live = self.live();
        // Every fifth step, until each has happened once, a rare action of the tour:
        // a short soak still rotates a key, removes a domain, forges a policy and
        // fills a disk.
        if step.is_multiple_of(5) {
            if let Some(&action) = self.tour.first() {
                if self.tour_step(action, &live)? {
                    self.tour.remove(0);
                }
                return Ok(());
            }
        }
        let max_down = self.net.nodes.len() / 3;
        match self.rng.below(100) {
            0..=29 => self.publish(&live),
            30..=54 => self.fetch(&live),
            55..=62 => {
                self.policy(&live, None);
            }
            63..=72 if self.down.len() < max_down => {
                if let Some(i) = self.pick(&live) {
                    (self.say)(&format!("step {step}: kill -9 node {i}"));
                    self.net.nodes[i].kill();
                    self.down.insert(i);
                    let back = step + 2 + self.rng.below(4) as usize;
                    self.pending.push((back, Healing::Restart(i)));
                    self.count_fault("kill -9 and restart");
                }
            }
            73..=80 if self.down.len() < max_down => {
                if let Some(i) = self.pick(&live) {
                    (self.say)(&format!("step {step}: SIGSTOP node {i}"));
                    self.net.nodes[i].signal("STOP")?;
                    self.down.insert(i);
                    let back = step + 1 + self.rng.below(3) as usize;
                    self.pending.push((back, Healing::Resume(i)));
                    self.count_fault("SIGSTOP and SIGCONT");
                }
            }
            81..=88 if !self.partitioned => {
                let n = self.net.nodes.len();
                let side: Vec<usize> = (0..n / 2).collect();
                (self.say)(&format!("step {step}: partition {side:?} from the rest"));
                self.proxy.partition(&side);
                self.partitioned = true;
                let back = step + 2 + self.rng.below(4) as usize;
                self.pending.push((back, Healing::Heal));
                self.count_fault("partition and heal");
            }
            89..=93 => self.corrupt(&live)?,
            94..=96 => {
                self.forge(&live)?;
            }
            97..=99 if !self.disk_full && self.small.is_some() => self.fill_disk()?,
            _ => self.fetch(&live),
        }
        Ok(())
    }

    fn heal(&mut self, h: Healing) -> anyhow::Result<()> {
        match h {
            Healing::Restart(i) => match self.net.start(i) {
                Ok(()) => {
                    self.down.remove(&i);
                }
                // A node cannot open its database on a full disk: it must say so
                // and exit; it is started again once the disk is freed.
                Err(e) if self.disk_full && self.small.as_ref().is_some_and(|(n, _)| *n == i) => {
                    let text = format!("{e:#}");
                    *self
                        .report
                        .checked
                        .entry("start on a full disk refused with a clear error".into())
                        .or_default() += 1;
                    if !text.contains("No space left on device") {
                        self.report.violations.push(format!(
                            "node {i} failed to start on a full disk without saying so: {text}"
                        ));
                    }
                    self.pending
                        .push((self.report.steps + 1, Healing::Restart(i)));
                }
                Err(e) => return Err(e).with_context(|| format!("restarting node {i}")),
            },
            Healing::Resume(i) => {
                self.net.nodes[i].signal("CONT")?;
                self.down.remove(&i);
            }
            Healing::Heal => {
                self.proxy.heal();
                self.partitioned = false;
            }
            Healing::FreeDisk => {
                if let Some((_, d)) = &self.small {
                    d.free()?;
                }
                self.disk_full = false;
            }
        }
        Ok(())
    }

    /// One action of the tour; whether it happened (it is tried again otherwise).
    fn tour_step(&mut self, action: Tour, live: &[usize]) -> anyhow::Result<bool> {
        Ok(match action {
            Tour::Policy(change) => self.policy(live, Some(change)),
            Tour::Forge => self.forge(live)?,
            Tour::FillDisk if self.small.is_none() => true,
            Tour::FillDisk if self.disk_full => false,
            Tour::FillDisk => {
                self.fill_disk()?;
                true
            }
        })
    }

    /// Fills the small disk's last byte; freed some steps later.
    fn fill_disk(&mut self) -> anyhow::Result<()> {
        let Some((i, d)) = &self.small else {
            return Ok(());
        };
        let (i, filled) = (*i, d.fill()?);
        (self.say)(&format!(
            "step {}: node {i}'s disk is full ({} MiB of ballast)",
            self.report.steps,
            filled >> 20
        ));
        self.disk_full = true;
        let back = self.report.steps + 2 + self.rng.below(4) as usize;
        self.pending.push((back, Healing::FreeDisk));
        self.count_fault("disk full and freed");
        Ok(())
    }

    /// Whether node `i`'s own policy registers its domain and publisher key.
    fn registered(&self, i: usize) -> Option<bool> {
        let node = &self.net.nodes[i];
        let policy = self.net.current_policy(i).ok()?.value().ok()?;
        let key = node.publisher_key.parse().ok()?;
        let domain = mesh_protocol::id::DomainName::new(&node.domain).ok()?;
        Some(policy.is_publisher(&domain, &key))
    }

    fn heal_all(&mut self) -> anyhow::Result<()> {
        // Restarts last: a node killed on a full disk starts once the disk is free.
        while !self.pending.is_empty() {
            let mut pending: Vec<Healing> = self.pending.drain(..).map(|(_, h)| h).collect();
            pending.sort_by_key(|h| matches!(h, Healing::Restart(_)));
            for h in pending {
                self.heal(h)?;
            }
        }
        Ok(())
    }

    fn publish(&mut self, live: &[usize]) {
        let Some(i) = self.pick(live) else { return };
        self.counter += 1;
        let domain = self.net.nodes[i].domain.clone();
        // A few products per domain, each published in new versions.
        let product = format!("{domain}/p{}", self.rng.below(3));
        let version = format!("1.{}.0", self.counter);
        let dir = self
            .net
            .root()
            .join("chaos-data")
            .join(self.counter.to_string());
        let before = self.registered(i);
        let acked = sample::write_orders(&dir, 200, self.counter as u64)
            .map_err(anyhow::Error::from)
            .and_then(|csv| {
                let hash = file_hash(&csv)?;
                self.net
                    .publish(i, &dir, &sample::manifest_toml(&product, &version))?;
                Ok(hash)
            });
        let ok = acked.is_ok();
        // A node whose policy did not register its domain before the publish, and
        // still does not after it, must have refused (the domain can only come
        // back through this schedule, so "not before, not after" means "not during").
        if before == Some(false) {
            *self
                .report
                .checked
                .entry("publish of an unregistered domain refused".into())
                .or_default() += 1;
            if ok && self.registered(i) == Some(false) {
                self.report.violations.push(format!(
                    "node {i} acknowledged {product}@{version} though its policy does not register domain {domain}"
                ));
            }
        }
        self.count_op("publish", &acked);
        if let Ok(hash) = acked {
            self.published
                .push((format!("{product}@{version}"), i, hash));
        }
    }

    fn fetch(&mut self, live: &[usize]) {
        let Some(i) = self.pick(live) else { return };
        if self.published.is_empty() {
            return;
        }
        let k = self.rng.below(self.published.len() as u64) as usize;
        let (label, _, source) = self.published[k].clone();
        self.counter += 1;
        let out = self
            .net
            .root()
            .join("chaos-out")
            .join(self.counter.to_string());
        let result = self.net.fetch(i, &label, &out);
        let ok = result.is_ok();
        if ok {
            // Every fetched file is byte-identical to what was published.
            *self
                .report
                .checked
                .entry("fetched bytes identical".into())
                .or_default() += 1;
            match file_hash(&out.join("orders.csv")) {
                Ok(h) if h == source => {}
                other => self.report.violations.push(format!(
                    "node {i} fetched {label} but its bytes differ: {other:?}"
                )),
            }
        }
        self.count_op("fetch", &result);
    }

    /// Corrupts one chunk of a product on a provider that fetched it (a replica,
    /// never the publisher, whose copy stays the source of truth).
    fn corrupt(&mut self, live: &[usize]) -> anyhow::Result<()> {
        let publisher: BTreeMap<&str, usize> = self
            .published
            .iter()
            .map(|(l, n, _)| (l.as_str(), *n))
            .collect();
        let mut holders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in live {
            for e in self.net.products(i).unwrap_or_default() {
                let label = format!("{}@{}", e.announcement.product, e.announcement.version);
                if e.local && publisher.get(label.as_str()).is_some_and(|p| *p != i) {
                    holders.entry(label).or_default().push(i);
                }
            }
        }
        let shared: Vec<(String, Vec<usize>)> = holders.into_iter().collect();
        if shared.is_empty() {
            return Ok(());
        }
        let (label, nodes) = shared[self.rng.below(shared.len() as u64) as usize].clone();
        let Some(victim) = self.pick(&nodes) else {
            return Ok(());
        };
        let show = self.net.nodes[victim]
            .client()?
            .show(&label.parse()?, None)?;
        let Some(m) = show.manifest else {
            return Ok(());
        };
        let home = mesh_node::NodeHome::new(&self.net.nodes[victim].home);
        let store = mesh_storage::ChunkStore::open_read_only(&home.chunks_path())?;
        let Some(at) = m.files[0]
            .chunks
            .first()
            .and_then(|c| store.locate(&c.hash))
        else {
            return Ok(());
        };
        use std::os::unix::fs::FileExt;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&at.path)?
            .write_all_at(&vec![0xA5; at.len as usize], at.offset)?;
        (self.say)(&format!(
            "step {}: corrupted a chunk of {label} on node {victim}",
            self.report.steps
        ));
        self.count_fault("corrupt chunk on a holder");
        Ok(())
    }
}
