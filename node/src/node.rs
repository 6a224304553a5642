//! [`Node`]: the handle to a running node's operations, used by the control API
//! and by embedders. Each method is a thin delegation to the part that does the
//! work (`ops/`, `state/`, `net/`); publish and fetch hold the work lock shared,
//! GC exclusively.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use libp2p::{Multiaddr, PeerId};
use mesh_contract::engine::Answer;
use mesh_contract::health::{Lineage, SlaState};
use mesh_protocol::{DomainName, Manifest, Policy, ProductId, ProductRef, Signed};
use mesh_storage::objects::ObjectUrl;
use mesh_storage::{ChunkStore, MetaStore};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, RwLock};

use crate::clock::{unix_now, unix_now_ms};
use crate::error::NodeError;
use crate::home::NodeHome;
use crate::metrics::{gauge_value, Metrics};
use crate::net::{NetworkHandle, PeerInfo, ReachabilityView};
use crate::ops::access::AccessDesk;
use crate::ops::deliver::Deliverer;
use crate::ops::derive::{DeriveError, Deriver};
use crate::ops::discover::{self, ProviderView};
use crate::ops::fetch::{FetchError, FetchEvent, FetchOptions, FetchOutcome, Fetcher};
use crate::ops::publish::{CheckReport, PublishError, PublishOptions, Published, Publisher};
use crate::ops::publish_objects;
use crate::ops::query::{self, Reader, Want};
use crate::ops::share;
use crate::ops::submit::{self, Submitted};
use crate::ops::subscribe::{Subscriber, SubscriberView, SubscriptionView};
use crate::state::access::{AccessFilter, AccessView};
use crate::state::catalog::{Catalog, CatalogEntry, Filter};
use crate::state::derived::DerivedProduct;
use crate::state::gc::{self, GcReport};
use crate::state::governance::Governance;
use crate::state::providers::Providers;
use crate::state::tokens::{ConsumerToken, TokenBook, TokenRefused};
use crate::state::usage::{ProductUsage, UsageLedger};
use crate::state::verify::{self, VerifyReport};
use crate::task::blocking;
use mesh_protocol::rules::Decision;

/// What `mesh status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Policy equivocations on record: documents validly signed by the council that
    /// conflict with an accepted version (the evidence is kept in the database).
    #[serde(default)]
    pub equivocations: u64,
    /// The versions those conflicting documents claim.
    #[serde(default)]
    pub equivocated_versions: Vec<u64>,
    /// The home directory.
    pub home: PathBuf,
    /// The publisher key of this node's domain.
    pub publisher_key: Option<String>,
    /// How others reach this node: public, or behind a NAT through relays; direct
    /// and relayed peers; hole punches.
    #[serde(default)]
    pub reachability: ReachabilityView,
    /// Where the Flight SQL port listens (`host:port`), when it is on.
    #[serde(default)]
    pub flight_sql: Option<String>,
    /// The Delta Sharing port's endpoint URL, when it is on.
    #[serde(default)]
    pub delta_sharing: Option<String>,
}

/// The parts a node is made of, handed over by the daemon at start.
pub(crate) struct Parts {
    pub(crate) net: NetworkHandle,
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) chunks: Arc<ChunkStore>,
    pub(crate) catalog: Catalog,
    pub(crate) governance: Governance,
    pub(crate) usage: UsageLedger,
    pub(crate) providers: Providers,
    pub(crate) access: AccessDesk,
    pub(crate) publisher: Publisher,
    pub(crate) fetcher: Fetcher,
    /// Puts held versions into object storage.
    pub(crate) deliverer: Deliverer,
    pub(crate) subscriber: Subscriber,
    /// The consumer tokens of the output ports.
    pub(crate) tokens: TokenBook,
    /// Computes the derived products.
    pub(crate) deriver: Deriver,
    /// Publish and fetch hold it shared; GC holds it exclusively.
    pub(crate) work_lock: Arc<RwLock<()>>,
    pub(crate) metrics: Metrics,
    pub(crate) registry: Registry,
    pub(crate) keep_versions: usize,
    pub(crate) domain: DomainName,
    pub(crate) home: NodeHome,
}

/// A handle to a running node's operations; cheap to clone.
#[derive(Clone)]
pub struct Node {
    parts: Arc<Parts>,
    /// Publish and fetch hold it shared; GC holds it exclusively (the
    /// subscriber's fetches too).
    work_lock: Arc<RwLock<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id())
            .field("domain", &self.parts.domain)
            .finish_non_exhaustive()
    }
}

impl Node {
    pub(crate) fn new(parts: Parts) -> Self {
        let work_lock = parts.work_lock.clone();
        Node {
            parts: Arc::new(parts),
            work_lock,
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.parts.net.peer_id()
    }

    /// Status summary.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let p = &self.parts;
        let listen = p
            .net
            .listen_addrs()
            .await?
            .into_iter()
            .map(|a: Multiaddr| format!("{a}/p2p/{}", self.peer_id()))
            .collect();
        let peers = p.net.peers().await?.len();
        let equivocations = p.governance.equivocations();
        Ok(NodeStatus {
            peer_id: self.peer_id().to_string(),
            domain: p.domain.to_string(),
            listen,
            peers,
            catalog: p.catalog.len()?,
            policy_version: p.governance.version(),
            policy_expired: p.governance.is_expired(unix_now()),
            equivocations: equivocations.len() as u64,
            equivocated_versions: equivocations.iter().map(|(v, _)| *v).collect(),
            home: p.home.root().to_owned(),
            publisher_key: p.publisher.key.as_ref().map(|k| k.public().to_string()),
            reachability: p.net.reachability().await?,
            flight_sql: std::fs::read_to_string(p.home.flight_sql_addr_path())
                .ok()
                .map(|a| a.trim().to_string()),
            delta_sharing: std::fs::read_to_string(p.home.delta_sharing_endpoint_path())
                .ok()
                .map(|a| a.trim().to_string()),
        })
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        Ok(self.parts.net.peers().await?)
    }

    /// Adds a peer to keep connected to (dialled now, redialled when lost); `addr`
    /// is a multiaddr ending in `/p2p/<peer id>`.
    pub async fn add_peer(&self, addr: &str) -> Result<Multiaddr, NodeError> {
        let addr: Multiaddr = addr.parse().map_err(|e| {
            NodeError::BadRequest(format!(
                "{addr:?} is not a multiaddr ({e}); example: /ip4/127.0.0.1/tcp/4801/p2p/12D3..."
            ))
        })?;
        let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(NodeError::BadRequest(format!(
                "{addr} must end with /p2p/<peer id> (see `mesh status` on that node)"
            )));
        };
        self.parts.net.add_peer(peer, addr.clone()).await?;
        Ok(addr)
    }

    /// The catalog filtered by `filter`, each product's newest version annotated
    /// with its health at `now` (unix seconds).
    pub async fn products(&self, filter: Filter, now: u64) -> Result<Vec<CatalogEntry>, NodeError> {
        let p = &self.parts;
        let view = ProviderView::now(&p.net, &p.providers, &p.governance).await?;
        Ok(discover::products_at(&p.catalog, view, filter, now).await?)
    }

    /// [`Node::products`], a page at a time as the caller reads them (a
    /// streamed listing).
    pub(crate) async fn product_pages(
        &self,
        filter: Filter,
        now: u64,
    ) -> Result<discover::Pages, NodeError> {
        let p = &self.parts;
        let view = ProviderView::now(&p.net, &p.providers, &p.governance).await?;
        Ok(discover::Pages::start(p.catalog.clone(), view, filter, now).await?)
    }

    /// Every product of the catalog grouped by id, the newest version of each judged
    /// at `now` (for the web catalog), and the catalog generation it was read at.
    pub(crate) async fn listing(
        &self,
        now: u64,
    ) -> Result<(u64, Vec<discover::ProductListing>), NodeError> {
        let p = &self.parts;
        let generation = p.catalog.generation();
        let view = ProviderView::now(&p.net, &p.providers, &p.governance).await?;
        Ok((generation, discover::listing(&p.catalog, view, now).await?))
    }

    /// The catalog's generation: it changes whenever anything in the catalog does.
    pub(crate) fn catalog_generation(&self) -> u64 {
        self.parts.catalog.generation()
    }

    /// The catalog entry of `target` with its health at `now`, and its verified
    /// manifest, from the local store or (without storing it) from a provider.
    pub async fn describe(
        &self,
        target: &ProductRef,
        now: u64,
    ) -> Result<(CatalogEntry, Result<Manifest, FetchError>), NodeError> {
        let (mut entry, manifest) = self.describe_unjudged(target, now).await?;
        let filter = Filter {
            domain: Some(target.id.domain().to_string()),
            ..Filter::default()
        };
        entry.health = self
            .products(filter, now)
            .await?
            .into_iter()
            .find(|e| e.announcement.manifest == entry.announcement.manifest)
            .and_then(|e| e.health);
        Ok((entry, manifest))
    }

    /// [`Node::describe`] without the health verdict (which reads the whole
    /// catalog): the entry with its providers at `now`, and the manifest.
    pub(crate) async fn describe_unjudged(
        &self,
        target: &ProductRef,
        now: u64,
    ) -> Result<(CatalogEntry, Result<Manifest, FetchError>), NodeError> {
        let (mut entry, manifest) = self.parts.fetcher.describe(target).await?;
        let p = &self.parts;
        let view = ProviderView::now(&p.net, &p.providers, &p.governance).await?;
        entry.providers = view.statuses(&entry, now.saturating_mul(1000));
        Ok((entry, manifest))
    }

    /// The lineage graph of `product` from the manifests this node knows.
    pub async fn lineage(&self, product: &ProductId) -> Result<Lineage, NodeError> {
        Ok(discover::lineage_of(&self.parts.catalog, product).await?)
    }

    /// Asks the owner of `product` for access for this node's domain (signed with
    /// its publisher key, gossiped); returns the pair as it stands.
    pub async fn access_request(
        &self,
        product: ProductId,
        reason: String,
    ) -> Result<AccessView, NodeError> {
        Ok(self.parts.access.request(product, reason).await?)
    }

    /// Grants, denies or revokes `consumer`'s access to `product`, which this node's
    /// domain owns (signed with its publisher key, gossiped).
    pub async fn access_decide(
        &self,
        product: ProductId,
        consumer: DomainName,
        verdict: mesh_protocol::access::Verdict,
    ) -> Result<AccessView, NodeError> {
        Ok(self.parts.access.decide(product, consumer, verdict).await?)
    }

    /// The access requests and decisions this node knows, pending first.
    pub async fn access_list(&self, filter: AccessFilter) -> Result<Vec<AccessView>, NodeError> {
        Ok(self.parts.access.list(filter).await?)
    }

    /// Follows `product` into `out` (absolute), keeping `keep` versions: each new
    /// version is fetched and switched in whole (`out/current`). Again on an
    /// existing subscription: updates `keep`, resumes a denied one.
    pub async fn subscribe(
        &self,
        product: ProductId,
        out: PathBuf,
        keep: usize,
        skip_flagged: bool,
    ) -> Result<SubscriptionView, NodeError> {
        Ok(self
            .parts
            .subscriber
            .subscribe(product, out, keep, skip_flagged)
            .await?)
    }

    /// Stops following `product` (its folders stay).
    pub async fn unsubscribe(&self, product: ProductId) -> Result<SubscriptionView, NodeError> {
        Ok(self.parts.subscriber.unsubscribe(product).await?)
    }

    /// This node's subscriptions, with state and lag.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionView>, NodeError> {
        Ok(self.parts.subscriber.list().await?)
    }

    /// The nodes that follow `product` (from their provider records), with the
    /// versions each holds.
    pub async fn subscribers(&self, product: ProductId) -> Result<Vec<SubscriberView>, NodeError> {
        Ok(self.parts.subscriber.subscribers(product).await?)
    }

    /// Adds up the usage of `target` (one version of it, if it names one) from every
    /// provider report this node holds; a product or version the catalog does not
    /// know is an error, not zero fetches.
    pub async fn usage(&self, target: ProductRef) -> Result<ProductUsage, NodeError> {
        let usage = self.parts.usage.clone();
        let catalog = self.parts.catalog.clone();
        blocking(move || {
            let version = target.version.as_ref();
            if catalog.get(&target.id, version)?.is_none() {
                return Err(match version {
                    None => NodeError::Discover(discover::DiscoverError::NotInCatalog(
                        target.id.clone(),
                    )),
                    Some(v) => NodeError::NotFound(format!(
                        "{}@{v} is not in the catalog; `mesh show {}` lists its versions",
                        target.id, target.id
                    )),
                });
            }
            Ok::<_, NodeError>(usage.totals(&target.id, version)?)
        })
        .await
    }

    /// Policy `version` (the current one when `None`) as signed.
    pub fn policy(&self, version: Option<u64>) -> Result<(Signed<Policy>, Policy), NodeError> {
        let g = &self.parts.governance;
        let version = version.unwrap_or_else(|| g.version());
        let signed = g.get(version).ok_or_else(|| {
            NodeError::NotFound(format!(
                "this node holds policy versions 1..={}, not {version}",
                g.version()
            ))
        })?;
        let policy = signed
            .value()
            .map_err(|e| crate::state::StateError::corrupt("stored policy", e))?;
        Ok((signed, policy))
    }

    /// Every policy version, oldest first.
    pub fn policy_history(&self) -> Vec<(Signed<Policy>, Policy)> {
        self.parts.governance.history()
    }

    /// Verifies a signed policy against the chain; if accepted, stores it, gossips it
    /// and re-evaluates the catalog.
    pub async fn submit_policy(&self, signed: Signed<Policy>) -> Result<Submitted, NodeError> {
        let p = &self.parts;
        Ok(submit::submit_policy(&p.governance, &p.catalog, &p.net, signed).await?)
    }

    /// Would publishing `draft_toml` from this node be allowed? A dry run.
    pub async fn check(&self, draft_toml: String) -> Result<CheckReport, NodeError> {
        let publisher = self.parts.publisher.clone();
        blocking(move || Ok::<_, NodeError>(publisher.check(&draft_toml))).await
    }

    /// What the fetch rules decide for a reader with no registered identity (an
    /// anonymous one-shot fetch) of `manifest`'s product: the web catalog offers
    /// the one-shot command only when it would work.
    pub(crate) fn anonymous_fetch(&self, manifest: &mesh_protocol::Manifest) -> Decision {
        self.parts
            .governance
            .fetch_decision("", manifest, &[], unix_now_ms())
    }

    /// Publishes the files at `path` described by `draft_toml` and gossips the
    /// announcement.
    pub async fn publish(&self, path: PathBuf, draft_toml: String) -> Result<Published, NodeError> {
        self.publish_with(path, draft_toml, PublishOptions::default())
            .await
    }

    /// [`Node::publish`] with options: `in_place` records the chunks as ranges of
    /// the files at `path` instead of copying them (see [`PublishOptions`]).
    pub async fn publish_with(
        &self,
        path: PathBuf,
        draft_toml: String,
        options: PublishOptions,
    ) -> Result<Published, NodeError> {
        let _shared_work = self.work_lock.read().await;
        let publisher = self.parts.publisher.clone();
        let url = path
            .to_str()
            .filter(|t| ObjectUrl::is_object_url(t))
            .map(str::parse::<ObjectUrl>)
            .transpose()
            .map_err(PublishError::from)?;
        let (published, envelope) = match url {
            Some(url) => {
                let settings = &self.parts.deliverer.settings;
                publish_objects::publish(&publisher, settings, &url, draft_toml, options).await?
            }
            None => {
                blocking(move || {
                    publisher
                        .publish(&path, &draft_toml, options)
                        .map_err(NodeError::from)
                })
                .await?
            }
        };
        tracing::info!(product = %published.product, version = %published.version, "published");
        self.parts.metrics.publishes.inc();
        self.parts.net.announce(envelope).await?;
        Ok(published)
    }

    /// Fetches `target` (latest version when none is given), verifies it, and writes
    /// its files under `out` if given; progress goes to `progress`. A file already
    /// at one of the product's paths is replaced only if identical (else the fetch
    /// fails before writing anything); see [`Node::fetch_with`].
    pub async fn fetch(
        &self,
        target: &ProductRef,
        out: Option<PathBuf>,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, NodeError> {
        self.fetch_with(target, out, FetchOptions::default(), progress)
            .await
    }

    /// Like [`Node::fetch`], replacing whatever files are at the product's paths
    /// (`mesh fetch --force`).
    pub async fn fetch_replacing(
        &self,
        target: &ProductRef,
        out: Option<PathBuf>,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, NodeError> {
        let options = FetchOptions {
            overwrite: true,
            ..FetchOptions::default()
        };
        self.fetch_with(target, out, options, progress).await
    }

    /// [`Node::fetch`] with options (`--force`, `--in-place`), under the shared work
    /// lock.
    pub async fn fetch_with(
        &self,
        target: &ProductRef,
        out: Option<PathBuf>,
        options: FetchOptions,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, NodeError> {
        let _shared_work = self.work_lock.read().await;
        Ok(self
            .parts
            .fetcher
            .fetch(target, out, options, progress)
            .await?)
    }

    /// Fetches `target` into this node's store, then delivers its files into
    /// object storage at `url` (see `ops/deliver`): `prefix/VERSION/...`, with
    /// `prefix/current` switched last. The outcome's `delivered` says what moved.
    pub async fn fetch_to_objects(
        &self,
        target: &ProductRef,
        url: &ObjectUrl,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, NodeError> {
        let _shared_work = self.work_lock.read().await;
        let deliverer = &self.parts.deliverer;
        let bucket = deliverer.open(url).await?;
        let fetcher = &self.parts.fetcher;
        let mut outcome = fetcher
            .fetch(target, None, FetchOptions::default(), progress.clone())
            .await?;
        let report = deliverer
            .deliver_fetched(&bucket, &outcome, None, &progress)
            .await?;
        outcome.delivered = Some(Box::new(report));
        Ok(outcome)
    }

    /// Runs `sql` over the products it names, fetching each first as
    /// [`Node::fetch`] would (rules, grants, verification), under the shared work
    /// lock; see `ops/query.rs`. `reader` is whose rules and grants apply: this
    /// node's, or a consumer token's domain.
    pub async fn query(&self, sql: &str, reader: &Reader) -> Result<Answer, NodeError> {
        let _shared_work = self.work_lock.read().await;
        let (fetcher, root) = (&self.parts.fetcher, self.parts.home.root());
        Ok(query::query(fetcher, root, sql, reader, Want::Rows).await?)
    }

    /// The columns `sql` would answer with, as `reader`: the products it names
    /// are fetched and the query planned, not run (a prepared statement).
    pub async fn query_schema(&self, sql: &str, reader: &Reader) -> Result<SchemaRef, NodeError> {
        let _shared_work = self.work_lock.read().await;
        let (fetcher, root) = (&self.parts.fetcher, self.parts.home.root());
        Ok(query::query(fetcher, root, sql, reader, Want::Schema)
            .await?
            .schema)
    }

    /// Runs `sql` as `reader` like [`Node::query`], handing back the columns at
    /// once and the rows as they are made (bounded: each batch waits for the
    /// reader); the shared work lock is held until the last row is sent.
    pub async fn query_stream(
        &self,
        sql: &str,
        reader: &Reader,
    ) -> Result<(SchemaRef, query::QueryRows), NodeError> {
        let hold = self.work_lock.clone().read_owned().await;
        let (fetcher, root) = (&self.parts.fetcher, self.parts.home.root());
        Ok(query::query_stream(fetcher, root, sql, reader, hold).await?)
    }

    /// Registers the derived product `draft_toml` describes (its `[derive]`
    /// query inline) and computes it now; see `ops/derive.rs`.
    pub async fn derive_register(&self, draft_toml: String) -> Result<DerivedProduct, NodeError> {
        Ok(self.parts.deriver.register_and_run(draft_toml).await?)
    }

    /// Computes the derived product `id` now (`force`: even if its inputs did
    /// not change), publishing a new version if its result changed.
    pub async fn derive(&self, id: &ProductId, force: bool) -> Result<DerivedProduct, NodeError> {
        Ok(self.parts.deriver.run(id, force).await?)
    }

    /// The derived products this node computes, with where each stands.
    pub async fn derived(&self) -> Result<Vec<DerivedProduct>, NodeError> {
        let book = self.parts.deriver.book.clone();
        blocking(move || Ok(book.all()?)).await
    }

    /// Stops computing the derived product `id` (its published versions stay).
    pub async fn underive(&self, id: ProductId) -> Result<DerivedProduct, NodeError> {
        let book = self.parts.deriver.book.clone();
        blocking(move || {
            let removed = book.remove(&id)?;
            removed.ok_or_else(|| DeriveError::NotFound(id).into())
        })
        .await
    }

    /// The newest version of each product `reader` may read whose manifest this
    /// node knows: the tables a Flight SQL client browses.
    pub async fn readable_products(&self, reader: Reader) -> Result<Vec<Manifest>, NodeError> {
        let fetcher = self.parts.fetcher.clone();
        blocking(move || Ok(query::readable(&fetcher, &reader)?)).await
    }

    /// The history of product `id` as a Delta Sharing table, if `reader` may
    /// read it (see `ops/share.rs`).
    pub(crate) async fn share_table(
        &self,
        id: &ProductId,
        reader: &Reader,
    ) -> Result<Vec<share::TableVersion>, NodeError> {
        Ok(share::table(&self.parts.fetcher, id, reader).await?)
    }

    /// Version `v` of product `id` as one Parquet file, as `reader` may read it:
    /// fetched and converted if need be, the cache kept under `cache_bytes`.
    pub(crate) async fn share_file(
        &self,
        id: &ProductId,
        v: &share::TableVersion,
        reader: &Reader,
        cache_bytes: u64,
    ) -> Result<share::SharedFile, NodeError> {
        let _shared_work = self.work_lock.read().await;
        let (fetcher, root) = (&self.parts.fetcher, self.parts.home.root());
        Ok(share::version_file(fetcher, root, id, v, reader, cache_bytes).await?)
    }

    /// The consumer token `id`, if it is live now (a signed file link's check).
    pub(crate) async fn live_token(&self, id: String) -> Result<Option<ConsumerToken>, NodeError> {
        let book = self.parts.tokens.clone();
        let now = unix_now_ms();
        blocking(move || Ok(book.get(&id)?.filter(|t| t.state(now) == "active"))).await
    }

    /// Makes a consumer token for `domain`, valid until `expires_ms`: the secret
    /// (shown once) and its record.
    pub async fn token_create(
        &self,
        domain: DomainName,
        expires_ms: u64,
        label: Option<String>,
    ) -> Result<(String, ConsumerToken), NodeError> {
        let book = self.parts.tokens.clone();
        blocking(move || Ok(book.create(domain, expires_ms, label, unix_now_ms())?)).await
    }

    /// Every consumer token of this node (no secrets).
    pub async fn tokens(&self) -> Result<Vec<ConsumerToken>, NodeError> {
        let book = self.parts.tokens.clone();
        blocking(move || Ok(book.list()?)).await
    }

    /// Revokes the consumer token `id`: it opens nothing from the next request.
    pub async fn token_revoke(&self, id: String) -> Result<ConsumerToken, NodeError> {
        let book = self.parts.tokens.clone();
        blocking(move || Ok(book.revoke(&id, unix_now_ms())?)).await
    }

    /// Removes every revoked or expired consumer token; returns how many.
    pub async fn token_purge(&self) -> Result<usize, NodeError> {
        let book = self.parts.tokens.clone();
        blocking(move || Ok(book.purge(unix_now_ms())?)).await
    }

    /// The consumer token `presented` stands for, if it is live on this node.
    pub async fn authenticate(
        &self,
        presented: String,
    ) -> Result<Result<ConsumerToken, TokenRefused>, NodeError> {
        let book = self.parts.tokens.clone();
        blocking(move || Ok(book.authenticate(&presented, unix_now_ms())?)).await
    }

    /// Runs GC keeping `keep` complete versions per product (default: the
    /// configured `keep_versions`; at least 1).
    pub async fn gc(&self, keep: Option<usize>, dry_run: bool) -> Result<GcReport, NodeError> {
        let _exclusive = self.work_lock.write().await;
        let keep = keep.unwrap_or(self.parts.keep_versions);
        let (catalog, chunks) = (self.parts.catalog.clone(), self.parts.chunks.clone());
        let root = self.parts.home.root().to_path_buf();
        blocking(move || {
            let mut report = gc::collect(&catalog, &chunks, keep, dry_run)?;
            gc::collect_work_files(&root, &catalog, &mut report)?;
            Ok::<_, NodeError>(report)
        })
        .await
    }

    /// Reads and checks every stored chunk; removes corrupt ones, marks the products
    /// that lose one as not held, and with `repair` fetches those again from peers.
    pub async fn verify(&self, repair: bool) -> Result<VerifyReport, NodeError> {
        let (mut report, unmarked) = {
            let _exclusive = self.work_lock.write().await;
            let (catalog, chunks) = (self.parts.catalog.clone(), self.parts.chunks.clone());
            blocking(move || Ok::<_, NodeError>(verify::verify_store(&catalog, &chunks)?)).await?
        };
        if repair {
            for (hash, label) in unmarked.iter().zip(report.unmarked.clone()) {
                let Ok(target) = label.parse::<ProductRef>() else {
                    continue;
                };
                match self.fetch(&target, None, None).await {
                    Ok(o) if o.manifest == hash.to_string() => report.repaired.push(label),
                    Ok(_) => report
                        .not_repaired
                        .push(format!("{label}: another manifest")),
                    Err(e) => report.not_repaired.push(format!("{label}: {e}")),
                }
            }
        }
        Ok(report)
    }

    /// The metrics in OpenMetrics text: libp2p's (`gossipsub_*`) and the node's
    /// own (`mesh_*`), with the catalog and SLA gauges as of now.
    pub async fn metrics_text(&self) -> Result<String, NodeError> {
        let p = &self.parts;
        let entries = self.products(Filter::default(), unix_now()).await?;
        let sla = |state: SlaState| {
            gauge_value(
                entries
                    .iter()
                    .filter(|e| e.health.as_ref().is_some_and(|h| h.sla == state))
                    .count(),
            )
        };
        let m = &p.metrics;
        m.peers.set(gauge_value(p.net.peers().await?.len()));
        m.policy_version.set(gauge_value(p.governance.version()));
        m.catalog_versions.set(gauge_value(entries.len()));
        m.catalog_products.set(gauge_value(
            entries.iter().filter(|e| e.health.is_some()).count(),
        ));
        m.catalog_local_versions
            .set(gauge_value(entries.iter().filter(|e| e.local).count()));
        m.sla_ok.set(sla(SlaState::Ok));
        m.sla_late.set(sla(SlaState::Late));
        m.sla_at_risk.set(sla(SlaState::AtRisk));
        m.chunks.set(gauge_value(p.chunks.len()));
        let mut text = String::new();
        // Formatting into a String cannot fail; the encoder's only error is the writer's.
        let _ = prometheus_client::encoding::text::encode(&mut text, &p.registry);
        Ok(text)
    }

    /// The node home.
    pub fn home(&self) -> &NodeHome {
        &self.parts.home
    }

    /// Flushes the metadata store (at shutdown).
    pub(crate) fn flush(&self) -> Result<(), NodeError> {
        Ok(self.parts.store.flush()?)
    }

    /// A view of the node's internals for tests.
    #[cfg(feature = "test-support")]
    pub fn probe(&self) -> crate::testing::Probe {
        let p = &self.parts;
        crate::testing::Probe::new(
            p.catalog.clone(),
            p.governance.clone(),
            p.chunks.clone(),
            p.store.clone(),
            p.metrics.clone(),
            p.net.clone(),
        )
    }
}
