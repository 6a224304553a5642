//! `mesh-testnet`: local meshes of real `mesh` node processes for demos, CI and
//! experiments.
//!
//! [`Testnet::create`] generates a council, one home per node (each node on its own
//! 127.0.0.x address, since gossipsub penalises many peers on one IP), a genesis
//! policy registering every node's domain, publisher key and peer id, signed by a
//! threshold of the council. [`Testnet::start_all`] starts the processes; the
//! `wait_*` helpers poll conditions against a deadline; dropping the testnet kills
//! every process it started. Nodes also watch the harness's pid, so none outlives it.

#![deny(missing_docs)]

pub mod bench;
pub mod bench_links;
pub mod chaos;
pub mod cluster;
pub mod crash;
pub mod nat;
pub mod observe;
pub mod powerloss;
mod process;
pub mod proxy;
pub mod sample;
pub mod scenario;
pub mod showcase;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mesh_node::api::{
    CatalogEntry, CheckReport, FetchOutcome, FetchRequest, Filter, Published, Submitted,
};
use mesh_node::home::policy_file;
use mesh_node::unix_now;
use mesh_protocol::policy::{Council, DomainEntry};
use mesh_protocol::policy_change::PolicyChange;
use mesh_protocol::{DomainName, KeyPair, Policy, PublicKey, Signed};
use serde::Deserialize;

pub use process::{MeshBin, TestNode, Transport};

/// How to build a testnet.
#[derive(Debug, Clone)]
pub struct TestnetConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Domain names, assigned to nodes round-robin.
    pub domains: Vec<String>,
    /// Council size.
    pub council: usize,
    /// Council threshold.
    pub threshold: u16,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Keep state here instead of a temp dir that is removed on drop.
    pub dir: Option<PathBuf>,
}

impl TestnetConfig {
    /// `nodes` nodes over the given domains, a 2-of-3 council.
    pub fn new(mesh: MeshBin, nodes: usize, domains: &[&str]) -> Self {
        TestnetConfig {
            nodes,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            council: 3,
            threshold: 2,
            mesh,
            dir: None,
        }
    }
}

/// A local mesh of node processes.
#[derive(Debug)]
pub struct Testnet {
    /// The nodes, by index.
    pub nodes: Vec<TestNode>,
    /// Council keys (secret halves, for signing policies in tests).
    pub council: Vec<KeyPair>,
    /// The genesis policy file.
    pub genesis: PathBuf,
    mesh: MeshBin,
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

#[derive(Deserialize)]
struct InitOutput {
    peer_id: String,
    publisher_key: String,
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    wait_until_every(what, timeout, Duration::from_millis(50), check)
}

/// Polls `check` every `every` until it returns true or `timeout` passes: for a
/// state that lasts only a moment (a file being written), a short `every`.
pub fn wait_until_every(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what} (last error: {e:#})")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        std::thread::sleep(every);
    }
}

fn run_mesh(cmd: &mut std::process::Command) -> anyhow::Result<String> {
    let out = cmd.output().context("running mesh")?;
    if !out.status.success() {
        bail!(
            "mesh failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Testnet {
    /// Creates homes, council and a signed genesis for `config`; starts nothing.
    pub fn create(config: TestnetConfig) -> anyhow::Result<Self> {
        if config.nodes == 0 || config.nodes > 200 {
            bail!("a testnet has 1..=200 nodes, not {}", config.nodes);
        }
        if config.domains.is_empty() {
            bail!("a testnet needs at least one domain");
        }
        let (root, tmp) = match &config.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("mesh-testnet-").tempdir()?;
                if std::env::var_os("MESH_TESTNET_KEEP").is_some() {
                    // Debugging a failure: the node homes and logs stay for reading.
                    let kept = t.keep();
                    eprintln!("MESH_TESTNET_KEEP: the testnet stays in {}", kept.display());
                    (kept, None)
                } else {
                    (t.path().to_owned(), Some(t))
                }
            }
        };
        let mut nodes = Vec::new();
        for i in 0..config.nodes {
            let domain = config.domains[i % config.domains.len()].clone();
            nodes.push(Self::init_home(&config.mesh, &root, i, &domain)?);
        }
        let council: Vec<KeyPair> = (0..config.council).map(|_| KeyPair::generate()).collect();
        let mut domains: BTreeMap<DomainName, DomainEntry> = BTreeMap::new();
        for n in &nodes {
            let entry = domains.entry(DomainName::new(&n.domain)?).or_default();
            entry
                .publisher_keys
                .insert(n.publisher_key.parse::<PublicKey>()?);
            entry.nodes.insert(n.peer_id.clone());
            entry.contact = format!("{}@example.com", n.domain);
        }
        let members = council.iter().map(|k| k.public()).collect::<BTreeSet<_>>();
        let policy = Policy::genesis(
            Council {
                members,
                threshold: config.threshold,
            },
            domains,
            unix_now(),
            365 * 86_400,
        )?;
        let mut signed = Signed::unsigned(&policy);
        for k in council.iter().take(usize::from(config.threshold)) {
            signed.add_signature(k);
        }
        let genesis = root.join("genesis.policy.json");
        policy_file::write(&genesis, &signed)?;
        let net = Testnet {
            nodes,
            council,
            genesis,
            mesh: config.mesh,
            root,
            _tmp: tmp,
        };
        for n in &net.nodes {
            net.install_genesis(&n.home)?;
        }
        Ok(net)
    }

    fn init_home(
        mesh: &MeshBin,
        root: &Path,
        index: usize,
        domain: &str,
    ) -> anyhow::Result<TestNode> {
        let home = root.join(format!("node{index:02}-{domain}"));
        let out = run_mesh(
            mesh.command(&home)
                .args(["--json", "init", "--domain", domain]),
        )?;
        let init: InitOutput = serde_json::from_str(&out).context("parsing `mesh init --json`")?;
        let n = u8::try_from(index + 10).context("too many nodes for 127.0.0.x")?;
        Ok(TestNode {
            index,
            domain: domain.to_owned(),
            log: root.join(format!("node{index:02}.log")),
            home,
            ip: Ipv4Addr::new(127, 0, 0, n),
            transport: Transport::default(),
            netns: None,
            listen: Vec::new(),
            mesh: None,
            peer_id: init.peer_id,
            publisher_key: init.publisher_key,
            port: None,
            child: None,
            links: Vec::new(),
            env: Vec::new(),
        })
    }

    fn install_genesis(&self, home: &Path) -> anyhow::Result<()> {
        run_mesh(
            self.mesh
                .command(home)
                .args(["init", "--genesis"])
                .arg(&self.genesis),
        )?;
        Ok(())
    }

    /// Adds a node whose domain and key the genesis does **not** register; it trusts
    /// the genesis but cannot publish. Not started.
    pub fn add_unregistered_node(&mut self, domain: &str) -> anyhow::Result<usize> {
        let index = self.nodes.len();
        let node = Self::init_home(&self.mesh, &self.root, index, domain)?;
        self.install_genesis(&node.home)?;
        self.nodes.push(node);
        Ok(index)
    }

    /// The directory holding homes, logs and the genesis.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How this testnet runs `mesh`.
    pub fn mesh_bin(&self) -> &MeshBin {
        &self.mesh
    }

    /// Addresses of up to three running nodes other than `except`, for bootstrap.
    fn bootstrap_for(&self, except: usize) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.index != except)
            .filter_map(|n| n.addr())
            .take(3)
            .collect()
    }

    /// Starts node `i` (or restarts it on its old address, and with its proxy links).
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let bootstrap = if self.nodes[i].links.is_empty() {
            self.bootstrap_for(i)
        } else {
            self.nodes[i].links.clone()
        };
        let mesh = self.mesh.clone();
        self.nodes[i].start(&mesh, &bootstrap)
    }

    /// Starts node `i` bootstrapping to exactly `bootstrap` (with discovery on).
    pub fn start_with(&mut self, i: usize, bootstrap: &[String]) -> anyhow::Result<()> {
        let mesh = self.mesh.clone();
        self.nodes[i].start(&mesh, bootstrap)
    }

    /// Starts every node, the first ones serving as bootstrap for the rest, and waits
    /// until each has a peer.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            self.start(i)?;
        }
        for i in 0..self.nodes.len() {
            self.wait_peers(i, 1, Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// Starts every node with discovery off and connects them only through `proxy`:
    /// node i dials node i+1 (a ring, so any contiguous half stays connected when the
    /// other is cut off) and `chords` more nodes picked by `seed`. Waits until every
    /// node has at least two peers.
    pub fn start_all_proxied(
        &mut self,
        proxy: &proxy::FaultProxy,
        chords: usize,
        seed: u64,
    ) -> anyhow::Result<()> {
        let n = self.nodes.len();
        let mut rng = mesh_testkit::SeededRng::new(seed);
        let mut links = Vec::new();
        for i in 0..n {
            let mut targets = vec![(i + 1) % n];
            let mut tries = 0;
            while targets.len() < (chords + 1).min(n - 1) && tries < 100 * n {
                tries += 1;
                let j = rng.below(n as u64) as usize;
                if j != i && !targets.contains(&j) {
                    targets.push(j);
                }
            }
            links.extend(targets.into_iter().filter(|j| *j != i).map(|j| (i, j)));
        }
        self.start_all_linked(proxy, &links)?;
        for i in 0..n {
            self.wait_peers(i, 2.min(n - 1), Duration::from_secs(60))?;
        }
        Ok(())
    }

    /// Starts every node with discovery off and connects them only through `proxy`,
    /// exactly by `links`: `(i, j)` has node i dial node j through its own proxy
    /// link (the proxy's link `(i, j)`, whose faults apply to that connection).
    pub fn start_all_linked(
        &mut self,
        proxy: &proxy::FaultProxy,
        links: &[(usize, usize)],
    ) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            // A placeholder until the real links exist: discovery is off from the start.
            node.links = vec![String::new()];
        }
        for i in 0..self.nodes.len() {
            let mesh = self.mesh.clone();
            self.nodes[i].start(&mesh, &[])?;
        }
        for node in &mut self.nodes {
            node.links.clear();
        }
        for &(i, j) in links {
            let target = self.nodes[j]
                .socket_addr()
                .with_context(|| format!("node {j} has no address"))?;
            let via = proxy.link(i, j, target)?;
            let addr = format!(
                "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                via.port(),
                self.nodes[j].peer_id
            );
            self.nodes[i].links.push(addr.clone());
            self.nodes[i].client()?.add_peer(&addr)?;
        }
        Ok(())
    }

    /// Waits until node `i` has at least `n` connected peers.
    /// On timeout the error names the peers it has and ends with its log.
    pub fn wait_peers(&self, i: usize, n: usize, timeout: Duration) -> anyhow::Result<()> {
        wait_until(&format!("node {i} to have {n} peer(s)"), timeout, || {
            Ok(self.nodes[i].status()?.peers >= n)
        })
        .map_err(|e| {
            let peers = self.nodes[i]
                .client()
                .and_then(|c| Ok(c.peers()?))
                .map(|ps| ps.iter().map(|p| p.peer_id.clone()).collect::<Vec<_>>());
            e.context(format!(
                "node {i} is connected to {peers:?}; the end of its log:\n{}",
                self.nodes[i].log_tail(40)
            ))
        })
    }

    /// Node `i`'s catalog.
    pub fn products(&self, i: usize) -> anyhow::Result<Vec<CatalogEntry>> {
        Ok(self.nodes[i].client()?.products(&Filter::default())?)
    }

    /// Whether node `i`'s catalog lists `product@version`.
    pub fn knows(&self, i: usize, product: &str, version: &str) -> anyhow::Result<bool> {
        Ok(lists(&self.products(i)?, product, version))
    }

    /// Whether node `i` lists `product@version` as held (complete) there.
    pub fn holds(&self, i: usize, product: &str, version: &str) -> anyhow::Result<bool> {
        Ok(self.products(i)?.iter().any(|e| {
            e.local
                && e.announcement.product.to_string() == product
                && e.announcement.version.to_string() == version
        }))
    }

    /// Waits until node `i` lists `product@version`.
    pub fn wait_product(
        &self,
        i: usize,
        product: &str,
        version: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        wait_until(
            &format!("node {i} to list {product}@{version}"),
            timeout,
            || self.knows(i, product, version),
        )
    }

    /// Publishes `path` with the manifest text `toml` on node `i`.
    pub fn publish(&self, i: usize, path: &Path, toml: &str) -> anyhow::Result<Published> {
        let path = std::fs::canonicalize(path)?;
        Ok(self.nodes[i].client()?.publish(&path, toml)?)
    }

    /// Publishes `path` in place (no copy into the store) on node `i`.
    pub fn publish_in_place(&self, i: usize, path: &Path, toml: &str) -> anyhow::Result<Published> {
        let path = std::fs::canonicalize(path)?;
        let options = mesh_node::api::PublishOptions { in_place: true };
        Ok(self.nodes[i].client()?.publish_with(&path, toml, options)?)
    }

    /// Fetches `product` on node `i` into `out`; the error carries the node's message.
    pub fn fetch(&self, i: usize, product: &str, out: &Path) -> anyhow::Result<FetchOutcome> {
        let request = FetchRequest {
            product: product.to_owned(),
            out: Some(out.to_owned()),
            force: false,
            in_place: false,
            to_objects: None,
        };
        Ok(self.nodes[i].client()?.fetch(&request, |_| {})?)
    }

    /// Fetches `product` on node `i` into `out` in place: the node keeps it only in
    /// the written files (`mesh fetch --in-place`).
    pub fn fetch_in_place(
        &self,
        i: usize,
        product: &str,
        out: &Path,
    ) -> anyhow::Result<FetchOutcome> {
        let request = FetchRequest {
            product: product.to_owned(),
            out: Some(out.to_owned()),
            force: false,
            in_place: true,
            to_objects: None,
        };
        Ok(self.nodes[i].client()?.fetch(&request, |_| {})?)
    }

    /// Stops every node (SIGTERM, clean shutdown).
    pub fn stop_all(&mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        for n in &mut self.nodes {
            if let Err(e) = n.terminate() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Testnet {
    /// Node `i`'s current policy, as signed.
    pub fn current_policy(&self, i: usize) -> anyhow::Result<Signed<Policy>> {
        let view = self.nodes[i].client()?.policy(None)?;
        Ok(Signed::from_bytes(&hex::decode(view.envelope)?)?)
    }

    /// Node `i`'s policy version.
    pub fn policy_version(&self, i: usize) -> anyhow::Result<u64> {
        Ok(self.nodes[i].status()?.policy_version)
    }

    /// Drafts the successor of node `i`'s current policy with `change`, signed by the
    /// council members at `signers` (indices into [`Testnet::council`]).
    pub fn draft_policy(
        &self,
        i: usize,
        change: &PolicyChange,
        signers: &[usize],
    ) -> anyhow::Result<Signed<Policy>> {
        let current = self.current_policy(i)?.value()?;
        let next = change
            .apply(&current, unix_now())
            .map_err(|e| anyhow::anyhow!("applying the policy change: {e}"))?;
        let mut signed = Signed::unsigned(&next);
        for s in signers {
            signed.add_signature(&self.council[*s]);
        }
        Ok(signed)
    }

    /// Submits a signed policy at node `i`.
    pub fn submit_policy(&self, i: usize, signed: &Signed<Policy>) -> anyhow::Result<Submitted> {
        Ok(self.nodes[i].client()?.submit_policy(signed)?)
    }

    /// Waits until node `i` enforces policy `version` (or newer).
    pub fn wait_policy(&self, i: usize, version: u64, timeout: Duration) -> anyhow::Result<()> {
        wait_until(
            &format!("node {i} to enforce policy v{version}"),
            timeout,
            || Ok(self.policy_version(i)? >= version),
        )
    }

    /// Dry-run check of a manifest on node `i`.
    pub fn check(&self, i: usize, toml: &str) -> anyhow::Result<CheckReport> {
        Ok(self.nodes[i].client()?.check(toml)?)
    }
}

/// Whether `entries` (a catalog) lists `product@version`.
pub fn lists(entries: &[CatalogEntry], product: &str, version: &str) -> bool {
    entries.iter().any(|e| {
        e.announcement.product.to_string() == product
            && e.announcement.version.to_string() == version
    })
}

/// The last event `mesh --json fetch` printed (its outcome or its error).
pub fn last_fetch_event(stdout: &str) -> Option<mesh_node::api::FetchEvent> {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

/// BLAKE3 of a file, for comparing fetched data with its source.
pub fn file_hash(path: &Path) -> anyhow::Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize())
}
