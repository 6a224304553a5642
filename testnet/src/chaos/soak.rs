//! The soak's state and its schedule: one step at a time, drawn from the seed
//! (work, governance, faults), and the healing of every fault at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use mesh_testkit::SeededRng;

use super::disk;
use super::policy::{Change, CouncilState};
use super::report::ChaosReport;
use crate::proxy::FaultProxy;
use crate::{file_hash, sample, Testnet};

/// How long convergence and each request may take.
pub(super) const DEADLINE: Duration = Duration::from_secs(120);

/// A rare action every soak takes at least once.
#[derive(Debug, Clone, Copy)]
pub(super) enum Tour {
    Policy(Change),
    Forge,
    FillDisk,
}

/// The tour, in order.
pub(super) const TOUR: [Tour; 4] = [
    Tour::Policy(Change::Rotate),
    Tour::Policy(Change::Remove),
    Tour::Forge,
    Tour::FillDisk,
];

/// An error's innermost cause, with numbers, hashes and addresses blanked, so
/// refusals of one kind count together.
pub(super) fn reason(err: &anyhow::Error) -> String {
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
pub(super) enum Healing {
    Restart(usize),
    Resume(usize),
    Heal,
    FreeDisk,
}

pub(super) struct Soak<F: FnMut(&str)> {
    pub(super) net: Testnet,
    pub(super) proxy: FaultProxy,
    pub(super) rng: SeededRng,
    pub(super) report: ChaosReport,
    pub(super) say: F,
    /// Acknowledged publishes: `product@version`, publisher, source hash.
    pub(super) published: Vec<(String, usize, blake3::Hash)>,
    /// Nodes down (killed) or stopped, and when each comes back.
    pub(super) pending: Vec<(usize, Healing)>,
    pub(super) down: BTreeSet<usize>,
    pub(super) partitioned: bool,
    pub(super) counter: usize,
    pub(super) council: CouncilState,
    /// The node whose home is on a small disk, and the disk (dropped after `net`).
    pub(super) small: Option<(usize, disk::SmallDisk)>,
    pub(super) disk_full: bool,
    /// Rare actions not taken yet (see [`TOUR`]).
    pub(super) tour: Vec<Tour>,
    /// The soak's own temporary root, when no directory was given.
    pub(super) _tmp: Option<tempfile::TempDir>,
}

impl<F: FnMut(&str)> Soak<F> {
    pub(super) fn live(&self) -> Vec<usize> {
        (0..self.net.nodes.len())
            .filter(|i| !self.down.contains(i))
            .collect()
    }

    pub(super) fn pick(&mut self, from: &[usize]) -> Option<usize> {
        (!from.is_empty()).then(|| from[self.rng.below(from.len() as u64) as usize])
    }

    /// Counts an attempted operation, and why it was not acknowledged.
    pub(super) fn count_op<T>(&mut self, op: &str, result: &anyhow::Result<T>) {
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

    pub(super) fn count_fault(&mut self, fault: &str) {
        *self.report.faults.entry(fault.into()).or_default() += 1;
    }

    pub(super) fn step(&mut self) -> anyhow::Result<()> {
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

    pub(super) fn heal(&mut self, h: Healing) -> anyhow::Result<()> {
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
    pub(super) fn tour_step(&mut self, action: Tour, live: &[usize]) -> anyhow::Result<bool> {
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
    pub(super) fn fill_disk(&mut self) -> anyhow::Result<()> {
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
    pub(super) fn registered(&self, i: usize) -> Option<bool> {
        let node = &self.net.nodes[i];
        let policy = self.net.current_policy(i).ok()?.value().ok()?;
        let key = node.publisher_key.parse().ok()?;
        let domain = mesh_protocol::id::DomainName::new(&node.domain).ok()?;
        Some(policy.is_publisher(&domain, &key))
    }

    pub(super) fn heal_all(&mut self) -> anyhow::Result<()> {
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

    pub(super) fn publish(&mut self, live: &[usize]) {
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

    pub(super) fn fetch(&mut self, live: &[usize]) {
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
    pub(super) fn corrupt(&mut self, live: &[usize]) -> anyhow::Result<()> {
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
