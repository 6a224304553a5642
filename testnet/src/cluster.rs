//! `mesh-testnet up / status / down`: a long-running local mesh kept in one
//! directory. `up` stays in the foreground holding the nodes (every node watches its
//! pid and exits if it dies, so no node outlives it, even after `kill -9`); Ctrl-C,
//! SIGTERM or `down` stop it cleanly. `status` reads the state file and asks every
//! node.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::proxy::FaultProxy;
use crate::{MeshBin, Testnet, TestnetConfig};

/// The state file `up` writes into its directory.
pub const STATE_FILE: &str = "testnet.json";

/// What `up` records about the running mesh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The `up` process.
    pub pid: u32,
    /// Whether links run through the fault proxy.
    pub proxied: bool,
    /// The nodes.
    pub nodes: Vec<NodeState>,
}

/// One node of a running mesh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// Index.
    pub index: usize,
    /// Domain.
    pub domain: String,
    /// libp2p peer id.
    pub peer_id: String,
    /// Home directory.
    pub home: PathBuf,
    /// Log file.
    pub log: PathBuf,
    /// Listen address.
    pub addr: Option<String>,
    /// Process id.
    pub pid: Option<u32>,
}

/// `up` settings.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Nodes.
    pub nodes: usize,
    /// Distinct domains.
    pub domains: usize,
    /// State directory.
    pub dir: PathBuf,
    /// Run every link through a fault proxy (discovery off, ring plus chords).
    pub proxied: bool,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Where the lines for the person running `up` go (the CLI prints them).
    pub say: fn(&str),
}

/// Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn read_state(dir: &Path) -> anyhow::Result<State> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no testnet is up in {} (no {STATE_FILE}); start one with `mesh-testnet up --dir {}`",
            dir.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// Starts the mesh and holds it until Ctrl-C, SIGTERM or `down`.
pub fn up(opts: &UpOptions) -> anyhow::Result<()> {
    if let Ok(state) = read_state(&opts.dir) {
        if alive(state.pid) {
            bail!(
                "a testnet is already up in {} (pid {}); stop it with `mesh-testnet down --dir {}`",
                opts.dir.display(),
                state.pid,
                opts.dir.display()
            );
        }
    }
    if opts.dir.join("genesis.policy.json").exists() {
        bail!(
            "{} already holds a testnet's homes; choose another --dir or remove it",
            opts.dir.display()
        );
    }
    let names: Vec<String> = (0..opts.domains.clamp(1, opts.nodes.max(1)))
        .map(|i| format!("domain{i}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut config = TestnetConfig::new(opts.mesh.clone(), opts.nodes, &refs);
    config.dir = Some(opts.dir.clone());
    let mut net = Testnet::create(config)?;
    let t = Instant::now();
    let proxy = if opts.proxied {
        let proxy = FaultProxy::new()?;
        net.start_all_proxied(&proxy, 3, 0x5EED)?;
        Some(proxy)
    } else {
        net.start_all()?;
        None
    };
    let state = State {
        pid: std::process::id(),
        proxied: proxy.is_some(),
        nodes: net
            .nodes
            .iter()
            .map(|n| NodeState {
                index: n.index,
                domain: n.domain.clone(),
                peer_id: n.peer_id.clone(),
                home: n.home.clone(),
                log: n.log.clone(),
                addr: n.addr(),
                pid: n.pid(),
            })
            .collect(),
    };
    let path = opts.dir.join(STATE_FILE);
    // Written whole, then renamed: `status` and `down` (and a test waiting for the
    // file) never read it half written.
    let partial = opts.dir.join(format!("{STATE_FILE}.partial"));
    std::fs::write(&partial, serde_json::to_string_pretty(&state)?)?;
    std::fs::rename(&partial, &path)?;
    (opts.say)(&format!(
        "{} nodes up in {:.1} s; state in {}",
        state.nodes.len(),
        t.elapsed().as_secs_f64(),
        path.display()
    ));
    (opts.say)(&format!(
        "use a node: mesh-testnet mesh --home {} status   (any node's home works)",
        state.nodes[0].home.display()
    ));
    (opts.say)(&format!(
        "stop with Ctrl-C here, or `mesh-testnet down --dir {}`",
        opts.dir.display()
    ));
    wait_for_stop_signal()?;
    (opts.say)(&format!("stopping {} nodes", net.nodes.len()));
    let stopped = net.stop_all();
    drop(proxy);
    let _ = std::fs::remove_file(&path);
    stopped
}

/// Blocks until Ctrl-C or SIGTERM.
pub fn wait_for_stop_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        Ok(())
    })
}

/// One node's live view, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Index.
    pub index: usize,
    /// Domain.
    pub domain: String,
    /// Process running.
    pub running: bool,
    /// Connected peers.
    pub peers: Option<usize>,
    /// Catalog entries.
    pub catalog: Option<usize>,
    /// Enforced policy version.
    pub policy: Option<u64>,
    /// Resident memory, MiB.
    pub rss_mib: Option<f64>,
}

/// Every node's live view.
pub fn status(dir: &Path) -> anyhow::Result<(State, Vec<NodeView>)> {
    let state = read_state(dir)?;
    let views = state
        .nodes
        .iter()
        .map(|n| {
            let running = n.pid.is_some_and(alive);
            let st = mesh_node::ApiClient::for_home(&mesh_node::NodeHome::new(&n.home))
                .ok()
                .and_then(|c| c.status().ok());
            let rss_mib = n.pid.and_then(crate::process::rss_mib);
            NodeView {
                index: n.index,
                domain: n.domain.clone(),
                running,
                peers: st.as_ref().map(|s| s.peers),
                catalog: st.as_ref().map(|s| s.catalog),
                policy: st.as_ref().map(|s| s.policy_version),
                rss_mib,
            }
        })
        .collect();
    Ok((state, views))
}

/// Stops the mesh `up` holds in `dir`: SIGTERM to `up`, then SIGKILL to any node
/// still running after 30 s.
pub fn down(dir: &Path) -> anyhow::Result<usize> {
    let state = read_state(dir)?;
    let signal = |sig: &str, pid: u32| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
    };
    if alive(state.pid) {
        signal("-TERM", state.pid).context("running kill")?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let node_pids: Vec<u32> = state.nodes.iter().filter_map(|n| n.pid).collect();
    while Instant::now() < deadline && (alive(state.pid) || node_pids.iter().any(|p| alive(*p))) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut forced = 0;
    for pid in node_pids.iter().copied().filter(|p| alive(*p)) {
        let _ = signal("-KILL", pid);
        forced += 1;
    }
    let _ = std::fs::remove_file(dir.join(STATE_FILE));
    Ok(forced)
}
