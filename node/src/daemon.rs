//! Starting and stopping a node: the one place that wires every part.
//!
//! [`start`] reads the home, opens the stores, loads and seals the policy chain,
//! builds the state handles (`state/`), the swarm and its event loop (`net/`), the
//! operations (`ops/`), the [`Node`] handle, the background tasks and the control
//! API (`api/`) and the output ports (`ports/`), in that order. [`RunningNode::shutdown`] tears them down in
//! reverse: stop accepting (cancel), let the tasks end, flush the store.

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_storage::{ChunkStore, MetaStore, SledStore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::error::NodeError;
use crate::home::config::NodeConfig;
use crate::home::seal::Seal;
use crate::home::{write_atomic, HomeError, NodeHome};
use crate::metrics::Metrics;
use crate::net::behaviour::build_swarm;
use crate::net::{EventLoop, NetError, NetworkHandle, StateHandles};
use crate::node::{Node, Parts};
use crate::ops::access::AccessDesk;
use crate::ops::background::{self, PREFETCH_QUEUE};
use crate::ops::deliver::Deliverer;
use crate::ops::derive::Deriver;
use crate::ops::fetch::Fetcher;
use crate::ops::publish::Publisher;
use crate::ops::subscribe::Subscriber;
use crate::state::access::AccessBook;
use crate::state::catalog::Catalog;
use crate::state::deliveries::DeliveryBook;
use crate::state::derived::DerivedBook;
use crate::state::governance::{Governance, LoadError, OwnNode};
use crate::state::outputs::OutputBook;
use crate::state::providers::Providers;
use crate::state::subscriptions::SubscriptionBook;
use crate::state::tokens::TokenBook;
use crate::state::usage::UsageLedger;

/// Builds the catalog's digest off the event loop (a scan of the catalog), so
/// anti-entropy can answer with it.
fn warm_digest(catalog: &Catalog) {
    let warm = catalog.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = warm.digest() {
            tracing::warn!("building the catalog digest: {e}");
        }
    });
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
    /// A short-lived node (a one-shot fetch): it signs no provider record, so it is
    /// never listed as a replica after it is gone.
    pub ephemeral: bool,
}

/// A running node: clone [`RunningNode::node`] to use it, call
/// [`RunningNode::shutdown`] to stop.
#[derive(Debug)]
pub struct RunningNode {
    /// The node's operations.
    pub node: Node,
    /// Where the control API listens.
    pub api_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a node from its home, in order: its configuration, its local state,
/// the network loop, the operations over them, then (once the swarm listens)
/// the control API.
pub async fn start(home: NodeHome, options: RunOptions) -> Result<RunningNode, NodeError> {
    crate::memory::limit_arenas();
    let config = effective_config(&home, &options)?;
    let key = home.load_node_key()?;
    let peer_id = key.public().to_peer_id();
    let own = OwnNode {
        peer: peer_id.to_string(),
        domain: config.domain.clone(),
    };
    let state = LocalState::open(&home, &config, &key)?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);

    // Network: the swarm and its loop.
    let mut swarm = build_swarm(key, &mut registry, &config)?;
    for addr in config.listen_addrs()? {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr,
                reason: e.to_string(),
            })?;
    }
    let shutdown = CancellationToken::new();
    let (prefetch_tx, prefetch_rx) = tokio::sync::mpsc::channel(PREFETCH_QUEUE);
    let (event_loop, net) = EventLoop::new(
        swarm,
        state.handles(&metrics, &own),
        config.bootstrap_addrs()?,
        &config,
        prefetch_tx,
        shutdown.child_token(),
    );
    let mut tasks = vec![tokio::spawn(event_loop.run())];
    let wiring = Wiring {
        home: &home,
        config: &config,
        options: &options,
        net: &net,
        metrics,
        registry,
        own,
        peer_id,
        shutdown: &shutdown,
    };
    let node = wiring.operations(state, prefetch_rx, &mut tasks);
    wait_listening(&net).await?;
    serve_ports(&home, &config, &node, &shutdown, &mut tasks).await?;
    let api_addr = serve_api(&home, &config, &node, &shutdown, &mut tasks).await?;
    info!(peer = %peer_id, %api_addr, domain = %config.domain, "node started");
    Ok(RunningNode {
        node,
        api_addr,
        shutdown,
        tasks,
    })
}

/// The home's configuration with the command line's overrides, checked.
fn effective_config(home: &NodeHome, options: &RunOptions) -> Result<NodeConfig, NodeError> {
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
    if home.secure()? {
        tracing::warn!(home = %home.root().display(), "the node home was readable by other users; made it owner-only (0700)");
    }
    Ok(config)
}

/// What the node keeps on its disk, opened: the store, the sealed policy chain,
/// the chunks, the catalog and the books over them.
struct LocalState {
    store: Arc<dyn MetaStore>,
    governance: Governance,
    chunks: Arc<ChunkStore>,
    catalog: Catalog,
    usage: UsageLedger,
    providers: Providers,
    access: AccessBook,
    subscriptions: SubscriptionBook,
    tokens: TokenBook,
    derived: DerivedBook,
    publisher_key: Option<Arc<mesh_protocol::KeyPair>>,
}

impl LocalState {
    fn open(
        home: &NodeHome,
        config: &NodeConfig,
        key: &libp2p::identity::Keypair,
    ) -> Result<LocalState, NodeError> {
        let store: Arc<dyn MetaStore> = Arc::new(SledStore::open(&home.db_path())?);
        let governance = open_governance(home, store.clone())?;
        let chunks = Arc::new(ChunkStore::open(&home.chunks_path())?);
        // Chunks published in place from object storage are read through it.
        let packs = config.storage.packs_url()?;
        let objects =
            mesh_storage::objects::ObjectSource::with_packs(config.object_store.clone(), packs)
                .map_err(|source| mesh_storage::ChunkError::Io {
                    path: home.root().to_owned(),
                    source,
                })?;
        chunks.set_remote(objects);
        if let Some(mib) = config.storage.pack_mib {
            chunks.set_pack_target(mib.max(1) << 20);
        }
        crate::ops::publish_objects::clean_spools(home.root());
        let catalog = Catalog::new(store.clone(), governance.clone());
        catalog.recheck_complete(&chunks)?;
        warm_digest(&catalog);
        let publisher_key = home.load_publisher_key(&config.domain).ok().map(Arc::new);
        let usage = UsageLedger::new(
            store.clone(),
            catalog.clone(),
            governance.clone(),
            config.domain.clone(),
            publisher_key.clone(),
            key.public().to_peer_id(),
        );
        Ok(LocalState {
            providers: Providers::load(store.clone(), governance.clone(), key)?,
            access: AccessBook::open(store.clone(), governance.clone())?,
            subscriptions: SubscriptionBook::new(store.clone()),
            tokens: TokenBook::new(store.clone()),
            derived: DerivedBook::new(store.clone()),
            store,
            governance,
            chunks,
            catalog,
            usage,
            publisher_key,
        })
    }

    /// What the network loop reads and writes.
    fn handles(&self, metrics: &Metrics, own: &OwnNode) -> StateHandles {
        StateHandles {
            catalog: self.catalog.clone(),
            governance: self.governance.clone(),
            usage: self.usage.clone(),
            providers: self.providers.clone(),
            access: self.access.clone(),
            chunks: self.chunks.clone(),
            metrics: metrics.clone(),
            own: own.clone(),
        }
    }
}

/// The policy chain as stored, checked against the home's seal (a rolled-back
/// database is refused) and the seal moved to it.
fn open_governance(home: &NodeHome, store: Arc<dyn MetaStore>) -> Result<Governance, NodeError> {
    let seal = Seal::new(home.seal_path());
    let governance = match Governance::load(store) {
        Err(LoadError::NoGenesis) => {
            seal.check(None, &home.db_path())?;
            return Err(HomeError::Invalid(format!(
                "no genesis policy installed in {}: run `mesh init --home {} --genesis FILE` with the council-signed genesis",
                home.root().display(),
                home.root().display()
            ))
            .into());
        }
        other => other?,
    };
    seal.check(Some(governance.version()), &home.db_path())?;
    seal.advance(governance.version())?;
    Ok(governance.with_seal(seal))
}

/// What wiring the operations needs besides the local state.
struct Wiring<'a> {
    home: &'a NodeHome,
    config: &'a NodeConfig,
    options: &'a RunOptions,
    net: &'a NetworkHandle,
    metrics: Metrics,
    registry: prometheus_client::registry::Registry,
    own: OwnNode,
    peer_id: libp2p::PeerId,
    shutdown: &'a CancellationToken,
}

impl Wiring<'_> {
    /// The publisher, with its OpenLineage sink when `[lineage]` names a
    /// destination (the sink's task pushed onto `tasks`).
    fn publisher(&self, st: &LocalState, tasks: &mut Vec<JoinHandle<()>>) -> Publisher {
        let config = &self.config;
        let lineage = crate::ops::lineage::start(
            &config.lineage,
            self.home.root(),
            self.shutdown.child_token(),
        );
        Publisher {
            catalog: st.catalog.clone(),
            governance: st.governance.clone(),
            chunks: st.chunks.clone(),
            domain: config.domain.clone(),
            key: st.publisher_key.clone(),
            key_path: self.home.publisher_key_path(&config.domain),
            peer_id: self.peer_id,
            lineage: lineage.map(|(sink, task)| {
                tasks.push(task);
                sink
            }),
        }
    }

    /// The deliverer into object storage, with its background tasks: aborting
    /// uploads a crash left open, and offloading sealed packs (`[storage] url`).
    fn object_storage(
        &self,
        config: &NodeConfig,
        st: &LocalState,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Deliverer {
        let deliverer = Deliverer {
            settings: config.object_store.clone(),
            chunks: st.chunks.clone(),
            book: DeliveryBook::new(st.store.clone()),
            catalog: st.catalog.clone(),
        };
        if !self.options.ephemeral {
            let d = deliverer.clone();
            tasks.push(tokio::spawn(async move { d.recover().await }));
            if config.storage.url.is_some() {
                tasks.push(tokio::spawn(background::offload_packs(
                    st.chunks.clone(),
                    self.shutdown.child_token(),
                )));
            }
        }
        deliverer
    }

    /// The operations over the state and the network, their background tasks
    /// (pushed onto `tasks`), and the [`Node`] handle over them.
    fn operations(
        self,
        st: LocalState,
        prefetch_rx: tokio::sync::mpsc::Receiver<mesh_protocol::Announcement>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Node {
        let publisher = self.publisher(&st, tasks);
        let (config, net) = (self.config, self.net);
        let fetcher = Fetcher {
            net: net.clone(),
            catalog: st.catalog.clone(),
            providers: st.providers.clone(),
            governance: st.governance.clone(),
            chunks: st.chunks.clone(),
            outputs: OutputBook::new(st.store.clone()),
            metrics: self.metrics.clone(),
            access: st.access.clone(),
            own: self.own.clone(),
        };
        let token = || self.shutdown.child_token();
        tasks.push(tokio::spawn(background::prefetch_manifests(
            fetcher.clone(),
            prefetch_rx,
            token(),
        )));
        tasks.push(tokio::spawn(background::usage_reports(
            st.usage.clone(),
            net.clone(),
            token(),
        )));
        let deliverer = self.object_storage(config, &st, tasks);
        let work_lock = Arc::new(tokio::sync::RwLock::new(()));
        let subscriber = Subscriber {
            book: st.subscriptions.clone(),
            fetcher: fetcher.clone(),
            catalog: st.catalog.clone(),
            governance: st.governance.clone(),
            providers: st.providers.clone(),
            work_lock: work_lock.clone(),
            deliverer: deliverer.clone(),
        };
        if !self.options.ephemeral {
            tasks.push(tokio::spawn(background::provider_records(
                st.providers.clone(),
                st.catalog.clone(),
                st.subscriptions.clone(),
                net.clone(),
                token(),
            )));
            tasks.push(tokio::spawn(subscriber.clone().run(token())));
        }
        let deriver = Deriver {
            fetcher: fetcher.clone(),
            publisher: publisher.clone(),
            net: net.clone(),
            book: st.derived.clone(),
            catalog: st.catalog.clone(),
            root: self.home.root().to_path_buf(),
            work_lock: work_lock.clone(),
            running: Arc::default(),
        };
        if !self.options.ephemeral {
            tasks.push(tokio::spawn(deriver.clone().watch(token())));
        }
        let access = AccessDesk {
            book: st.access,
            catalog: st.catalog.clone(),
            net: net.clone(),
            domain: config.domain.clone(),
            key: st.publisher_key.clone(),
        };
        Node::new(Parts {
            net: net.clone(),
            store: st.store,
            chunks: st.chunks,
            catalog: st.catalog,
            governance: st.governance,
            usage: st.usage,
            providers: st.providers,
            access,
            publisher,
            fetcher,
            deliverer,
            subscriber,
            tokens: st.tokens,
            deriver,
            work_lock,
            metrics: self.metrics,
            registry: self.registry,
            keep_versions: config.keep_versions,
            domain: config.domain.clone(),
            home: self.home.clone(),
        })
    }
}

/// Returns once the swarm listens, so callers can read its address at once.
async fn wait_listening(net: &NetworkHandle) -> Result<(), NodeError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while net.listen_addrs().await?.is_empty() {
        if tokio::time::Instant::now() > deadline {
            return Err(NetError::NoListenAddress.into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Binds and serves the output ports that are on (Flight SQL, Delta Sharing),
/// and writes each
/// one's address into the home.
async fn serve_ports(
    home: &NodeHome,
    config: &NodeConfig,
    node: &Node,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<(), NodeError> {
    if config.flight_sql.enabled {
        let bound = crate::ports::bind("flight_sql", &config.flight_sql).await?;
        let (addr, tls) = (bound.addr, bound.tls.is_some());
        let port = crate::ports::flight_sql::start(bound, node.clone(), shutdown.child_token())?;
        tasks.push(port);
        write_atomic(&home.flight_sql_addr_path(), addr.to_string().as_bytes())?;
        info!(%addr, tls, "Flight SQL port listening");
    }
    let sharing = &config.delta_sharing;
    if sharing.enabled {
        let bound = crate::ports::bind("delta_sharing", &sharing.port()).await?;
        let (addr, tls) = (bound.addr, bound.tls.is_some());
        let port = crate::ports::delta_sharing::start(
            bound,
            node.clone(),
            sharing,
            shutdown.child_token(),
        )?;
        tasks.push(port);
        let scheme = if tls { "https" } else { "http" };
        let endpoint = format!("{scheme}://{addr}{}", crate::ports::delta_sharing::PREFIX);
        write_atomic(&home.delta_sharing_endpoint_path(), endpoint.as_bytes())?;
        info!(%addr, tls, "Delta Sharing port listening");
    }
    Ok(())
}

/// Binds and serves the control API, and writes its address into the home.
async fn serve_api(
    home: &NodeHome,
    config: &NodeConfig,
    node: &Node,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<SocketAddr, NodeError> {
    let listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|e| {
            HomeError::Invalid(format!(
                "cannot bind the control API on {}: {e}",
                config.api_listen
            ))
        })?;
    let api_addr = listener.local_addr().map_err(HomeError::io(home.root()))?;
    tasks.push(tokio::spawn(crate::api::server::serve(
        listener,
        node.clone(),
        home.load_token()?,
        config.api_allow_remote,
        shutdown.child_token(),
    )));
    write_atomic(&home.api_addr_path(), api_addr.to_string().as_bytes())?;
    Ok(api_addr)
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
        let _ = std::fs::remove_file(self.node.home().api_addr_path());
        let _ = std::fs::remove_file(self.node.home().flight_sql_addr_path());
        let _ = std::fs::remove_file(self.node.home().delta_sharing_endpoint_path());
        self.node.flush()?;
        info!("node stopped");
        Ok(())
    }
}
