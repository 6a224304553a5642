//! Starting and stopping a node: opens the home's stores, loads the policy, builds the
//! swarm, spawns the network loop and the control API, and tears them down in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use mesh_protocol::{DomainName, KeyPair};
use mesh_storage::{ChunkStore, MetaStore, SledStore};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use futures::StreamExt;

use crate::behaviour::build_swarm;
use crate::catalog::Catalog;
use crate::governance::Governance;
use crate::home::{write_atomic, NodeHome};
use crate::network::{EventLoop, NetworkHandle};
use crate::NodeError;

/// State shared by the network loop, the API and the publish / fetch tasks.
#[derive(Debug)]
pub struct Shared {
    /// Metadata.
    pub store: Arc<dyn MetaStore>,
    /// Chunks.
    pub chunks: Arc<ChunkStore>,
    /// The catalog.
    pub catalog: Catalog,
    /// The enforced policy.
    pub governance: Governance,
    /// This node's domain.
    pub domain: DomainName,
    /// The domain publisher key, if this home holds one.
    pub publisher: Option<KeyPair>,
    /// The node home.
    pub home: NodeHome,
    /// Publish and fetch hold it shared; GC holds it exclusively.
    pub work_lock: tokio::sync::RwLock<()>,
    /// Complete versions per product kept by GC (`keep_versions` in config.toml).
    pub keep_versions: usize,
    /// Metrics registered by libp2p behaviours (served at `GET /metrics`).
    pub metrics: prometheus_client::registry::Registry,
    /// The node's own counters (served at `GET /metrics`).
    pub stats: Stats,
    /// Serializes updates of the usage counts.
    pub(crate) usage_lock: std::sync::Mutex<()>,
    /// Signalled when a usage count changes (a report is due).
    pub(crate) usage_changed: tokio::sync::Notify,
}

/// Counters of what this node did since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Chunk bytes served to peers.
    pub served_bytes: std::sync::atomic::AtomicU64,
    /// Chunk requests served (single chunks and batches).
    pub served_requests: std::sync::atomic::AtomicU64,
    /// Bytes downloaded by completed fetches.
    pub fetched_bytes: std::sync::atomic::AtomicU64,
    /// Completed fetches.
    pub fetches: std::sync::atomic::AtomicU64,
    /// Completed publishes.
    pub publishes: std::sync::atomic::AtomicU64,
    /// Inbound transfer requests answered `Busy` by the per-peer or overall limits.
    pub refused_requests: std::sync::atomic::AtomicU64,
    /// Reads (manifests and chunks) admitted whose responses are not yet written.
    pub reads_in_flight: std::sync::atomic::AtomicU64,
}

/// Command-line overrides of `config.toml`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replace the configured listen addresses.
    pub listen: Vec<String>,
    /// Add bootstrap peers.
    pub bootstrap: Vec<String>,
    /// Replace the control API address.
    pub api_listen: Option<SocketAddr>,
    /// Turn peer discovery off (`discovery = false`): connect only to bootstrap peers.
    pub no_discovery: bool,
}

/// A running node: clone [`Node`] to use it, call [`RunningNode::shutdown`] to stop.
#[derive(Debug)]
pub struct RunningNode {
    /// The node's operations.
    pub node: Node,
    /// Where the control API listens.
    pub api_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A handle to a running node's operations.
#[derive(Debug, Clone)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
    pub(crate) net: NetworkHandle,
}

/// What `mesh status` shows.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NodeStatus {
    /// libp2p peer id.
    pub peer_id: String,
    /// Domain.
    pub domain: String,
    /// Listen multiaddrs including `/p2p/<id>`, to give others as `--bootstrap`.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Product versions in the catalog.
    pub catalog: usize,
    /// Enforced policy version.
    pub policy_version: u64,
    /// Whether the enforced policy has expired (publishing is refused until renewed).
    #[serde(default)]
    pub policy_expired: bool,
    /// Conflicting policy documents seen for accepted versions since start.
    #[serde(default)]
    pub equivocations: u64,
    /// The home directory.
    pub home: PathBuf,
    /// The publisher key of this node's domain.
    pub publisher_key: Option<String>,
}

/// The outcome of submitting a policy.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Submitted {
    /// The node's policy version after the submission.
    pub version: u64,
    /// Versions newly accepted.
    pub accepted: Vec<u64>,
}

impl Node {
    /// Verifies a signed policy against the chain; if accepted, stores it, gossips it
    /// and re-evaluates the catalog.
    pub async fn submit_policy(
        &self,
        signed: mesh_protocol::Signed<mesh_protocol::Policy>,
    ) -> Result<Submitted, NodeError> {
        let governance = self.shared.governance.clone();
        let s2 = signed.clone();
        let offered = tokio::task::spawn_blocking(move || {
            governance.offer(&[s2], crate::governance::unix_now())
        })
        .await
        .map_err(|e| NodeError::Network(e.to_string()))??;
        if let Some(e) = offered.error {
            return Err(NodeError::Rejected(e.to_string()));
        }
        if !offered.accepted.is_empty() {
            self.net
                .publish_policy(signed.to_bytes())
                .await
                .map_err(NodeError::Network)?;
            let catalog = self.shared.catalog.clone();
            tokio::task::spawn_blocking(move || catalog.reevaluate())
                .await
                .map_err(|e| NodeError::Network(e.to_string()))??;
        }
        Ok(Submitted {
            version: self.shared.governance.version(),
            accepted: offered.accepted,
        })
    }

    /// Fetches and records the manifest of an announced product, if not yet known.
    pub async fn prefetch_manifest(
        &self,
        a: &mesh_protocol::Announcement,
    ) -> Result<(), NodeError> {
        if self.shared.catalog.manifest(&a.manifest)?.is_some() {
            return Ok(());
        }
        let providers = self.candidate_providers(a).await?;
        self.fetch_manifest(&a.manifest, &providers)
            .await
            .map(|_| ())
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.net.peer_id()
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The network handle.
    pub fn network(&self) -> &NetworkHandle {
        &self.net
    }

    /// Status summary.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let listen = self
            .net
            .listen_addrs()
            .await
            .map_err(NodeError::Network)?
            .into_iter()
            .map(|a: Multiaddr| format!("{a}/p2p/{}", self.peer_id()))
            .collect();
        let peers = self.net.peers().await.map_err(NodeError::Network)?.len();
        Ok(NodeStatus {
            peer_id: self.peer_id().to_string(),
            domain: self.shared.domain.to_string(),
            listen,
            peers,
            catalog: self.shared.catalog.len()?,
            policy_version: self.shared.governance.version(),
            policy_expired: self
                .shared
                .governance
                .is_expired(crate::governance::unix_now()),
            equivocations: self.shared.governance.equivocations(),
            home: self.shared.home.root().to_owned(),
            publisher_key: self
                .shared
                .publisher
                .as_ref()
                .map(|k| k.public().to_string()),
        })
    }
}

/// Announcements waiting for their manifest to be prefetched, at most.
const PREFETCH_QUEUE: usize = 1024;
/// Manifest prefetches in flight at once.
const PREFETCH_CONCURRENCY: usize = 4;

/// Fetches the manifests of newly announced products in the background, so every
/// node can show their contracts and flag rule violations without a data fetch.
async fn prefetch_manifests(
    node: Node,
    rx: tokio::sync::mpsc::Receiver<mesh_protocol::Announcement>,
    shutdown: CancellationToken,
) {
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|a| (a, rx)) });
    let work = stream.for_each_concurrent(PREFETCH_CONCURRENCY, |a| {
        let node = node.clone();
        async move {
            if let Err(e) = node.prefetch_manifest(&a).await {
                tracing::debug!(product = %a.product, "manifest prefetch: {e}");
            }
        }
    });
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = work => {}
    }
}

/// Starts a node from its home.
pub async fn start(home: NodeHome, options: RunOptions) -> Result<RunningNode, NodeError> {
    let mut config = home.load_config()?;
    if !options.listen.is_empty() {
        config.listen = options.listen.clone();
    }
    config.bootstrap.extend(options.bootstrap.iter().cloned());
    if options.no_discovery {
        config.discovery = false;
    }
    if let Some(api) = options.api_listen {
        config.api_listen = api;
    }
    config.validate()?;
    let listen = config.listen_addrs()?;
    let bootstrap = config.bootstrap_addrs()?;
    let key = home.load_node_key()?;
    let store: Arc<dyn MetaStore> = Arc::new(SledStore::open(&home.db_path())?);
    let seal = crate::seal::Seal::new(home.seal_path());
    let governance = match Governance::load(store.clone()) {
        Err(NodeError::NoGenesis) => {
            seal.check(None, &home.db_path())?;
            return Err(NodeError::Usage(format!(
                "no genesis policy installed in {}: run `mesh init --home {} --genesis FILE` with the council-signed genesis",
                home.root().display(),
                home.root().display()
            )));
        }
        other => other?,
    };
    seal.check(Some(governance.version()), &home.db_path())?;
    seal.advance(governance.version())?;
    let governance = governance.with_seal(seal);
    let chunks = Arc::new(ChunkStore::open(&home.chunks_path())?);
    Catalog::new(store.clone(), governance.clone()).recheck_complete(&chunks)?;
    let publisher = home.load_publisher_key(&config.domain).ok();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut swarm = build_swarm(key, &mut registry, &config)?;
    let shared = Arc::new(Shared {
        catalog: Catalog::new(store.clone(), governance.clone()),
        store,
        chunks,
        governance,
        domain: config.domain.clone(),
        publisher,
        home: home.clone(),
        work_lock: tokio::sync::RwLock::new(()),
        keep_versions: config.keep_versions,
        metrics: registry,
        stats: Stats::default(),
        usage_lock: std::sync::Mutex::new(()),
        usage_changed: tokio::sync::Notify::new(),
    });

    for addr in listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NodeError::Network(format!("cannot listen on {addr}: {e}")))?;
    }
    let shutdown = CancellationToken::new();
    let (prefetch_tx, prefetch_rx) = tokio::sync::mpsc::channel(PREFETCH_QUEUE);
    let (event_loop, net) = EventLoop::new(
        swarm,
        shared.clone(),
        bootstrap,
        &config,
        prefetch_tx,
        shutdown.child_token(),
    );
    let node = Node { shared, net };
    let mut tasks = vec![
        tokio::spawn(event_loop.run()),
        tokio::spawn(prefetch_manifests(
            node.clone(),
            prefetch_rx,
            shutdown.child_token(),
        )),
        tokio::spawn(crate::usage::report_loop(
            node.clone(),
            shutdown.child_token(),
        )),
    ];

    // Return only once the swarm listens, so callers can read its address at once.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while node
        .net
        .listen_addrs()
        .await
        .map_err(NodeError::Network)?
        .is_empty()
    {
        if tokio::time::Instant::now() > deadline {
            return Err(NodeError::Network(
                "the swarm reported no listen address within 10 s; check --listen".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|e| {
            NodeError::Usage(format!(
                "cannot bind the control API on {}: {e}",
                config.api_listen
            ))
        })?;
    let api_addr = listener.local_addr().map_err(NodeError::io(home.root()))?;
    tasks.push(tokio::spawn(crate::api::serve(
        listener,
        node.clone(),
        home.load_token()?,
        shutdown.child_token(),
    )));
    write_atomic(&home.api_addr_path(), api_addr.to_string().as_bytes())?;
    info!(peer = %node.peer_id(), %api_addr, domain = %config.domain, "node started");
    Ok(RunningNode {
        node,
        api_addr,
        shutdown,
        tasks,
    })
}

impl RunningNode {
    /// The token that stops the node when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting work, ends the network loop and the API, flushes the store.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(self.node.shared.home.api_addr_path());
        self.node.shared.store.flush()?;
        info!("node stopped");
        Ok(())
    }
}
