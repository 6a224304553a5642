//! One node process of a testnet: its home, address, identity and child process.

use std::ffi::OsString;
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mesh_node::api::NodeStatus;
use mesh_node::{ApiClient, NodeHome};

/// How to run the `mesh` CLI: a `mesh` binary, or `mesh-testnet mesh ...`.
#[derive(Debug, Clone)]
pub struct MeshBin {
    program: PathBuf,
    prefix: Vec<OsString>,
}

impl MeshBin {
    /// A real `mesh` binary.
    pub fn mesh(program: impl Into<PathBuf>) -> Self {
        MeshBin {
            program: program.into(),
            prefix: Vec::new(),
        }
    }

    /// A `mesh-testnet` binary, which carries the CLI behind its hidden `mesh` command.
    pub fn testnet(program: impl Into<PathBuf>) -> Self {
        MeshBin {
            program: program.into(),
            prefix: vec!["mesh".into()],
        }
    }

    /// `$MESH_BIN` if set, else the running `mesh-testnet` executable itself.
    pub fn from_env_or_current() -> anyhow::Result<Self> {
        if let Some(p) = std::env::var_os("MESH_BIN") {
            return Ok(Self::mesh(p));
        }
        Ok(Self::testnet(
            std::env::current_exe().context("locating the mesh-testnet executable")?,
        ))
    }

    /// A command running the CLI with `--home home`.
    pub fn command(&self, home: &Path) -> Command {
        self.command_in(None, home)
    }

    /// A command running the CLI with `--home home`, inside network namespace
    /// `netns` if given (`ip netns exec`, which needs root).
    pub fn command_in(&self, netns: Option<&str>, home: &Path) -> Command {
        let mut c = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        c.args(&self.prefix).arg("--home").arg(home);
        c.stdin(Stdio::null());
        c
    }
}

/// Which transport a testnet node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// TCP (noise + yamux).
    #[default]
    Tcp,
    /// QUIC only.
    Quic,
}

/// One node of a testnet.
#[derive(Debug)]
pub struct TestNode {
    /// Position in the testnet.
    pub index: usize,
    /// The node's domain.
    pub domain: String,
    /// Its home directory.
    pub home: PathBuf,
    /// Its loopback address, distinct per node.
    pub ip: Ipv4Addr,
    /// What it listens on (set before it starts).
    pub transport: Transport,
    /// The network namespace it runs in, if not the harness's own; its control API
    /// is then reached through the CLI run in that namespace.
    pub netns: Option<String>,
    /// Listen addresses replacing the one `transport` and `ip` make (fixed ports).
    pub listen: Vec<String>,
    /// How it was last started (the CLI that reaches a node in a namespace).
    pub(crate) mesh: Option<MeshBin>,
    /// libp2p peer id.
    pub peer_id: String,
    /// Its domain publisher key.
    pub publisher_key: String,
    pub(crate) port: Option<u16>,
    pub(crate) child: Option<Child>,
    pub(crate) log: PathBuf,
    /// Fixed links (through a fault proxy) this node dials; with any, it runs with
    /// discovery off and these as its bootstrap peers.
    pub(crate) links: Vec<String>,
    /// Environment variables the node process gets besides the harness's own
    /// (object storage credentials); set before it starts.
    pub env: Vec<(String, String)>,
}

/// How long a node may take to start.
const START_DEADLINE: Duration = Duration::from_secs(60);

impl TestNode {
    /// The node's control API client (fails if it is not running).
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::for_home(&NodeHome::new(&self.home))?)
    }

    /// The proxied links this node dials (multiaddrs ending in `/p2p/<peer id>`).
    pub fn links(&self) -> &[String] {
        &self.links
    }

    /// Its status.
    pub fn status(&self) -> anyhow::Result<NodeStatus> {
        if let (Some(_), Some(mesh)) = (&self.netns, &self.mesh) {
            return self.cli_json(mesh, &["status"]);
        }
        Ok(self.client()?.status()?)
    }

    /// Runs `mesh --json ARGS` against this node (in its namespace) and parses what
    /// it prints; a failure carries its stderr.
    pub fn cli_json<T: serde::de::DeserializeOwned>(
        &self,
        mesh: &MeshBin,
        args: &[&str],
    ) -> anyhow::Result<T> {
        let out = mesh
            .command_in(self.netns.as_deref(), &self.home)
            .arg("--json")
            .args(args)
            .output()
            .context("running mesh")?;
        if !out.status.success() {
            // With --json the CLI reports its error on stdout (`{"error": ...}`).
            bail!(
                "mesh {} on node {} failed: {}{}",
                args.join(" "),
                self.index,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "parsing `mesh --json {}`: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Whether its process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The multiaddr peers use to reach it, once it has started.
    pub fn addr(&self) -> Option<String> {
        self.port
            .map(|p| format!("{}/p2p/{}", self.listen_addr(p), self.peer_id))
    }

    /// Its listen multiaddr on `port`.
    fn listen_addr(&self, port: u16) -> String {
        match self.transport {
            Transport::Tcp => format!("/ip4/{}/tcp/{port}", self.ip),
            Transport::Quic => format!("/ip4/{}/udp/{port}/quic-v1", self.ip),
        }
    }

    /// Starts the node process, bootstrapping to `bootstrap`, and waits until its API
    /// answers. A restarted node keeps its address.
    pub(crate) fn start(&mut self, mesh: &MeshBin, bootstrap: &[String]) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let _ = fs::remove_file(NodeHome::new(&self.home).api_addr_path());
        self.mesh = Some(mesh.clone());
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = mesh.command_in(self.netns.as_deref(), &self.home);
        cmd.args(["node", "run"]);
        if self.listen.is_empty() {
            cmd.arg("--listen")
                .arg(self.listen_addr(self.port.unwrap_or(0)));
        }
        for a in &self.listen {
            cmd.arg("--listen").arg(a);
        }
        cmd.args(if self.links.is_empty() {
            None
        } else {
            Some("--no-discovery")
        })
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .env(
            "RUST_LOG",
            std::env::var("MESH_TESTNET_LOG")
                .unwrap_or_else(|_| "info,libp2p_gossipsub=warn".into()),
        )
        .envs(self.env.iter().map(|(k, v)| (k, v)))
        .stdout(log.try_clone()?)
        .stderr(log);
        for b in bootstrap {
            cmd.arg("--bootstrap").arg(b);
        }
        self.child = Some(cmd.spawn().context("spawning a mesh node")?);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if !self.is_running() {
                bail!(
                    "node {} ({}) exited during start:\n{}",
                    self.index,
                    self.domain,
                    self.log_tail(20)
                );
            }
            if let Ok(status) = self.status() {
                let port = status
                    .listen
                    .iter()
                    .find_map(|a| port_of(a, self.ip, self.transport));
                if let Some(port) = port {
                    self.port = Some(port);
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not start within {START_DEADLINE:?}:\n{}",
                    self.index,
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address its node listens on, while known.
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        self.port.map(|p| std::net::SocketAddr::from((self.ip, p)))
    }

    /// Resident memory of the node process, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        rss_mib(self.pid()?)
    }

    /// The node process's own resident memory (`RssAnon`), in MiB: its RSS less
    /// the pages of the binary, which every node process shares.
    pub fn private_mib(&self) -> Option<f64> {
        status_mib(self.pid()?, "RssAnon:")
    }

    /// The node process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, ...) to the node process.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            bail!("node {} is not running", self.index)
        };
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }

    /// The number of chunks in the node's store (read-only, safe while it runs).
    pub fn chunk_count(&self) -> usize {
        let root = NodeHome::new(&self.home).chunks_path();
        mesh_storage::ChunkStore::open_read_only(&root).map_or(0, |s| s.len())
    }

    /// `kill -9`: the process dies without any chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after 20 s).
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                if !status.success() {
                    bail!("node {} exited with {status} on SIGTERM", self.index);
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        bail!("node {} did not stop within 20 s of SIGTERM", self.index)
    }

    /// Runs the `mesh` CLI against this node's home (in its namespace).
    pub fn mesh(&self, mesh: &MeshBin, args: &[&str]) -> anyhow::Result<Output> {
        Ok(mesh
            .command_in(self.netns.as_deref(), &self.home)
            .args(args)
            .output()?)
    }
}

fn port_of(addr: &str, ip: Ipv4Addr, transport: Transport) -> Option<u16> {
    let proto = match transport {
        Transport::Tcp => "tcp",
        Transport::Quic => "udp",
    };
    let rest = addr.strip_prefix(&format!("/ip4/{ip}/{proto}/"))?;
    rest.split('/').next()?.parse().ok()
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether this process runs as root (its effective uid, from `/proc/self/status`).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

/// Resident memory of process `pid`, in MiB (from `/proc`).
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// A kB field of `/proc/PID/status` (`VmRSS:`, `RssAnon:`), in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
