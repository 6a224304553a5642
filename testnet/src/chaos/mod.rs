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
mod policy;
mod report;
mod soak;

pub use report::{markdown, ChaosReport};
use soak::{Soak, TOUR};

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mesh_testkit::SeededRng;

use crate::proxy::FaultProxy;
use crate::{MeshBin, Testnet, TestnetConfig};

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

/// Runs a soak; an error means the harness itself could not go on (a node that
/// would not start); broken promises are `violations` in the report.
pub fn run<F: FnMut(&str)>(mut options: ChaosOptions<F>) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(options.nodes >= 4, "a chaos soak needs at least 4 nodes");
    let mut config = TestnetConfig::new(
        options.mesh.clone(),
        options.nodes,
        &["sales", "finance", "logistics", policy::REMOVABLE],
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
    let council = policy::CouncilState::new(genesis, net.council.len());
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
