//! Subscriptions: a product followed into a directory. The follower task wakes on
//! every catalog change (and every [`TICK`]), and for each active subscription
//! whose newest announced version is not yet materialized, fetches that version
//! (only the chunks this node lacks), verified, into a hidden folder, and makes it
//! `current` atomically (see [`layout`]); older folders beyond `keep` are removed.
//! The node then holds the version, so its provider record offers it to others: a
//! subscriber is a replica.
//!
//! Access is checked twice: before fetching, with this node's own copy of the
//! policy's fetch rules and the access decisions (what every provider will decide),
//! and by the providers themselves. A denial either way stops the subscription with
//! the rule and its reason; `mesh subscribe` again resumes it. Any other failure is
//! retried, with a pause that doubles up to [`MAX_BACKOFF`].

mod buckets;
pub(crate) mod layout;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_protocol::{Manifest, ManifestHash, ProductId, ProductRef};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use mesh_storage::objects::{ObjectError, ObjectUrl};

use self::layout::Layout;
use super::fetch::{FetchError, Fetcher};
use crate::clock::unix_now_ms;
use crate::error::NodeError;
use crate::net::NetError;
use crate::state::catalog::{Catalog, CatalogEntry};
use crate::state::governance::Governance;
use crate::state::providers::Providers;
use crate::state::subscriptions::{
    Materialized, SubState, Subscription, SubscriptionBook, MAX_KEEP,
};
use crate::state::StateError;
use crate::task::blocking;
use crate::task::TaskError;

/// How often the follower looks again without a catalog change (a revocation, a
/// retry that is due).
const TICK: Duration = Duration::from_secs(1);
/// The longest pause between retries of a failing subscription.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A subscription as `mesh subscriptions` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// `domain/name`.
    pub product: String,
    /// The directory its versions go to; `current` in it names the newest.
    pub out: PathBuf,
    /// Versions kept.
    pub keep: usize,
    /// `waiting`, `up to date`, `fetching`, `behind`, `denied`, `failing`.
    pub state: String,
    /// Why it is denied or failing.
    pub reason: Option<String>,
    /// Since when it is in this state (unix ms).
    pub since_ms: u64,
    /// The version `current` names.
    pub current: Option<String>,
    /// The newest version the catalog knows.
    pub newest: Option<String>,
    /// Up to date: how long the current version took from its announcement to
    /// `current`. Otherwise: how long the newest version has waited so far.
    pub lag_ms: Option<u64>,
    /// The versions materialized and kept, oldest first.
    pub kept: Vec<String>,
    /// Whether versions the policy flags are passed over.
    #[serde(default)]
    pub skip_flagged: bool,
    /// Recent materializations with their lags, oldest first.
    pub history: Vec<Materialized>,
}

/// A node that follows a product, as its owner sees it (`mesh subscribers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberView {
    /// The node's peer id.
    pub peer_id: String,
    /// Its domain, when the policy's registry names the node.
    pub domain: Option<String>,
    /// When its newest record was issued (unix ms).
    pub last_seen_ms: u64,
    /// Whether that record is older than the provider TTL.
    pub stale: bool,
    /// The product's versions it holds, newest first.
    pub versions: Vec<String>,
}

/// Why a version could not be materialized.
enum Failed {
    /// Access denied: the subscription stops.
    Denied(String),
    /// The directory is no longer the one claimed: the subscription stops.
    Moved(String),
    /// Anything else: retried.
    Other(String),
}

impl From<FetchError> for Failed {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Denied(reason) => Failed::Denied(reason),
            other => Failed::Other(other.to_string()),
        }
    }
}

impl From<layout::LayoutError> for Failed {
    fn from(e: layout::LayoutError) -> Self {
        match e {
            layout::LayoutError::Moved { .. } => Failed::Moved(e.to_string()),
            other => Failed::Other(format!("materializing: {other}")),
        }
    }
}

impl From<crate::task::TaskError> for Failed {
    fn from(e: crate::task::TaskError) -> Self {
        Failed::Other(e.to_string())
    }
}

/// The subscription `new` asks for, or the stored one of its product when
/// `same` says it follows into the same place (its `keep` updated, resumed if it
/// had stopped). Refused when the product is not in the catalog or is followed
/// elsewhere.
fn existing_or(
    book: &SubscriptionBook,
    catalog: &Catalog,
    new: Subscription,
    same: impl Fn(&Subscription) -> bool,
) -> Result<Subscription, SubscribeError> {
    let id = &new.product;
    if catalog.get(id, None)?.is_none() {
        return Err(SubscribeError::NotFound(format!(
            "{id} is not in this node's catalog; `mesh products` lists what the mesh offers"
        )));
    }
    match book.get(id)? {
        Some(mut s) if same(&s) => {
            s.keep = new.keep;
            if !s.active() {
                s.set_state(SubState::Waiting, new.created_at_ms);
            }
            Ok(s)
        }
        Some(s) => Err(SubscribeError::Refused(format!(
            "{id} is already followed into {}; `mesh unsubscribe {id}` first to move it",
            s.out.display()
        ))),
        None => Ok(new),
    }
}

/// Stores `sub`, unless the node follows the most products it keeps already.
fn save_new(book: &SubscriptionBook, sub: Subscription) -> Result<Subscription, SubscribeError> {
    if !book.put(&sub)? {
        return Err(SubscribeError::Refused(format!(
            "this node follows {} products already, the most it keeps; unsubscribe from one first",
            crate::state::subscriptions::MAX_SUBSCRIPTIONS
        )));
    }
    Ok(sub)
}

/// Refuses a `keep` out of range.
fn check_keep(keep: usize) -> Result<(), SubscribeError> {
    if keep == 0 || keep > MAX_KEEP {
        return Err(SubscribeError::Refused(format!(
            "--keep must be 1..={MAX_KEEP}, not {keep}"
        )));
    }
    Ok(())
}

/// A retry that is not due yet.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    due: Instant,
}

/// Why a subscription could not be made, ended or listed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The request cannot be acted on as asked (a directory that is not the
    /// subscription's, a product this node may not read); the message says why.
    #[error("{0}")]
    Refused(String),
    /// The product, or the subscription, is not known here.
    #[error("{0}")]
    NotFound(String),
    /// Fetching a version for the subscription failed.
    #[error(transparent)]
    Fetch(#[from] crate::ops::fetch::FetchError),
    /// This node's own state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The network loop failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}

impl From<SubscribeError> for NodeError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::Refused(m) => NodeError::BadRequest(m),
            SubscribeError::NotFound(m) => NodeError::NotFound(m),
            SubscribeError::Fetch(e) => NodeError::Fetch(e),
            SubscribeError::State(e) => NodeError::State(e),
            SubscribeError::Net(e) => NodeError::Net(e),
            SubscribeError::Task(e) => NodeError::Task(e),
        }
    }
}

/// What subscription work needs from the node.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) book: SubscriptionBook,
    pub(crate) fetcher: Fetcher,
    pub(crate) catalog: Catalog,
    pub(crate) governance: Governance,
    /// Provider records: who else follows a product.
    pub(crate) providers: Providers,
    /// The node's work lock: a fetch holds it shared (GC exclusively).
    pub(crate) work_lock: Arc<RwLock<()>>,
    /// Delivers versions of subscriptions into object storage.
    pub(crate) deliverer: crate::ops::deliver::Deliverer,
}

impl Subscriber {
    /// Subscribes to `product` into `out` (absolute), keeping `keep` versions; or
    /// updates `keep` of an existing subscription and resumes it if it was denied.
    pub(crate) async fn subscribe(
        &self,
        product: ProductId,
        out: PathBuf,
        keep: usize,
        skip_flagged: bool,
    ) -> Result<SubscriptionView, SubscribeError> {
        if let Some(url) = out.to_str().filter(|t| ObjectUrl::is_object_url(t)) {
            let url = url
                .parse()
                .map_err(|e: ObjectError| SubscribeError::Refused(e.to_string()))?;
            return self
                .subscribe_objects(product, url, keep, skip_flagged)
                .await;
        }
        if !out.is_absolute() {
            return Err(SubscribeError::Refused(format!(
                "the subscription directory must be an absolute path, not {}",
                out.display()
            )));
        }
        check_keep(keep)?;
        let (book, catalog) = (self.book.clone(), self.catalog.clone());
        let id = product.clone();
        let sub = blocking(move || -> Result<Subscription, SubscribeError> {
            let new = Subscription::new(id.clone(), out.clone(), keep, unix_now_ms());
            let mut sub = existing_or(&book, &catalog, new, |s| s.out == out)?;
            let layout = Layout::claim(&out, &id.to_string())
                .map_err(|e| SubscribeError::Refused(e.to_string()))?;
            if sub.dir.is_some_and(|d| d != layout.id()) {
                // Another directory at the same path: what the old one held is not
                // here, so every version is materialized again.
                sub.kept.clear();
                sub.made.clear();
            }
            sub.dir = Some(layout.id());
            sub.skip_flagged = skip_flagged;
            save_new(&book, sub)
        })
        .await?;
        info!(product = %product, out = %sub.out.display(), keep, "subscribed");
        self.book.notify();
        self.view(sub).await
    }

    /// Stops following `product`; its folders stay.
    pub(crate) async fn unsubscribe(
        &self,
        product: ProductId,
    ) -> Result<SubscriptionView, SubscribeError> {
        let book = self.book.clone();
        let id = product.clone();
        let removed = blocking(move || Ok::<_, SubscribeError>(book.remove(&id)?)).await?;
        let Some(sub) = removed else {
            return Err(SubscribeError::NotFound(format!(
                "this node does not follow {product}; `mesh subscriptions` lists what it follows"
            )));
        };
        info!(product = %product, "unsubscribed");
        self.book.notify();
        self.view(sub).await
    }

    /// The nodes whose provider records say they follow `product`.
    pub(crate) async fn subscribers(
        &self,
        product: ProductId,
    ) -> Result<Vec<SubscriberView>, SubscribeError> {
        let (catalog, providers, governance) = (
            self.catalog.clone(),
            self.providers.clone(),
            self.governance.clone(),
        );
        blocking(move || {
            if catalog.get(&product, None)?.is_none() {
                return Err(SubscribeError::NotFound(format!(
                    "{product} is not in this node's catalog; `mesh products` lists what the mesh offers"
                )));
            }
            let mut versions: Vec<(semver::Version, ManifestHash)> = catalog
                .versions_of(&product)?
                .into_iter()
                .map(|a| (a.version, a.manifest))
                .collect();
            versions.sort_by(|a, b| b.0.cmp(&a.0));
            let hashes: Vec<_> = versions.iter().map(|(_, h)| *h).collect();
            let policy = governance.policy();
            Ok(providers
                .followers(&product, &hashes, unix_now_ms())
                .into_iter()
                .map(|f| SubscriberView {
                    domain: policy.domain_of_node(&f.peer_id).map(|d| d.to_string()),
                    versions: versions
                        .iter()
                        .filter(|(_, h)| f.held.contains(h))
                        .map(|(v, _)| v.to_string())
                        .collect(),
                    peer_id: f.peer_id,
                    last_seen_ms: f.last_seen_ms,
                    stale: f.stale,
                })
                .collect())
        })
        .await
    }

    /// Every subscription with its state and lag.
    pub(crate) async fn list(&self) -> Result<Vec<SubscriptionView>, SubscribeError> {
        let book = self.book.clone();
        let subs = blocking(move || Ok::<_, SubscribeError>(book.all()?)).await?;
        let mut out = Vec::with_capacity(subs.len());
        for s in subs {
            out.push(self.view(s).await?);
        }
        Ok(out)
    }

    async fn view(&self, s: Subscription) -> Result<SubscriptionView, SubscribeError> {
        let catalog = self.catalog.clone();
        let id = s.product.clone();
        let newest = blocking(move || Ok::<_, SubscribeError>(catalog.get(&id, None)?)).await?;
        Ok(view(s, newest.as_ref(), unix_now_ms()))
    }

    /// Follows every active subscription until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        if let Err(e) = self.recover().await {
            warn!("subscriptions: {e}");
        }
        let (updates, book_changes) = (self.catalog.updates(), self.book.changes());
        let mut backoff: HashMap<ProductId, Backoff> = HashMap::new();
        let mut manifests: HashMap<ProductId, (ManifestHash, Arc<Manifest>)> = HashMap::new();
        loop {
            // Registered before the pass, so a change during it wakes the next one.
            let (changed, book_changed) = (updates.notified(), book_changes.notified());
            tokio::pin!(changed, book_changed);
            changed.as_mut().enable();
            book_changed.as_mut().enable();
            let subs = {
                let book = self.book.clone();
                match blocking(move || Ok::<_, SubscribeError>(book.all()?)).await {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("subscriptions: {e}");
                        Vec::new()
                    }
                }
            };
            manifests.retain(|p, _| subs.iter().any(|s| &s.product == p));
            // With nothing subscribed, catalog changes (a late joiner's sync makes
            // a hundred thousand) need no pass.
            let watching = subs.iter().any(Subscription::active);
            for sub in subs.into_iter().filter(Subscription::active) {
                let product = sub.product.clone();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = self.step(sub, &mut backoff, &mut manifests) => if let Err(e) = r {
                        warn!(%product, "subscription: {e}");
                    },
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed, if watching => {}
                _ = book_changed => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// At start: removes what an interrupted run left in each directory, and turns
    /// a `fetching` state (the run that fetched is gone) into `behind`.
    async fn recover(&self) -> Result<(), SubscribeError> {
        let book = self.book.clone();
        blocking(move || -> Result<(), SubscribeError> {
            for mut s in book.all()?.into_iter().filter(Subscription::active) {
                if s.objects.is_some() {
                    // Deliveries resume by themselves (`ops/deliver`).
                    if matches!(s.state, SubState::Fetching { .. }) {
                        s.set_state(SubState::Behind, unix_now_ms());
                        book.put(&s)?;
                    }
                    continue;
                }
                let cleaned = Layout::open(&s.out, &s.product.to_string(), s.dir)
                    .and_then(|l| l.clean(&s.made));
                match cleaned {
                    Ok(0) => {}
                    Ok(n) => info!(product = %s.product, "removed {n} leftover(s) of an interrupted materialization"),
                    Err(e @ layout::LayoutError::Moved { .. }) => {
                        warn!(product = %s.product, "subscription stopped: {e}");
                        s.set_state(SubState::Moved { reason: e.to_string() }, unix_now_ms());
                        book.put(&s)?;
                        continue;
                    }
                    Err(e) => warn!(product = %s.product, "cleaning {}: {e}", s.out.display()),
                }
                if matches!(s.state, SubState::Fetching { .. }) {
                    s.set_state(SubState::Behind, unix_now_ms());
                    book.put(&s)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// One look at one subscription: stop it if access is denied or its directory
    /// was moved, else fetch and materialize the newest version if it is not
    /// current.
    async fn step(
        &self,
        mut sub: Subscription,
        backoff: &mut HashMap<ProductId, Backoff>,
        manifests: &mut HashMap<ProductId, (ManifestHash, Arc<Manifest>)>,
    ) -> Result<(), SubscribeError> {
        let now = unix_now_ms();
        let (newest, denial) = self.judge(&sub, manifests).await?;
        if let Some(reason) = denial {
            warn!(product = %sub.product, "subscription stopped: {reason}");
            sub.set_state(SubState::Denied { reason }, now);
            return self.save(sub).await;
        }
        let opened = match sub.objects {
            Some(_) => None,
            None => Some(self.open_dir(&mut sub).await?),
        };
        let layout = match opened {
            None => None,
            Some(Ok(layout)) => Some(layout),
            Some(Err(e @ layout::LayoutError::Moved { .. })) => {
                warn!(product = %sub.product, "subscription stopped: {e}");
                sub.set_state(
                    SubState::Moved {
                        reason: e.to_string(),
                    },
                    now,
                );
                return self.save(sub).await;
            }
            // Looked at again at the next tick.
            Some(Err(e)) => {
                warn!(product = %sub.product, "subscription: {e}");
                return Ok(());
            }
        };
        let Some(newest) = newest else {
            return Ok(());
        };
        let version = newest.announcement.version.to_string();
        if sub.current().is_some_and(|c| c.version == version) {
            if sub.state != SubState::UpToDate {
                sub.set_state(SubState::UpToDate, now);
                self.save(sub).await?;
            }
            backoff.remove(&newest.announcement.product);
            return Ok(());
        }
        if backoff
            .get(&sub.product)
            .is_some_and(|b| b.due > Instant::now())
        {
            return Ok(());
        }
        sub.set_state(
            SubState::Fetching {
                version: version.clone(),
            },
            now,
        );
        self.save(sub.clone()).await?;
        let result = match &layout {
            Some(layout) => self.materialize(&mut sub, layout, &newest).await,
            None => self.deliver_version(&sub, &newest).await,
        };
        self.settle(&mut sub, layout.as_ref(), result, &version, backoff)
            .await;
        self.save(sub).await
    }

    /// The catalog's newest entry of the product, and whether the fetch rules
    /// deny this node (what every provider will decide, from this node's copy of
    /// the rules and grants; the manifest is known once prefetched or held,
    /// decoded once per version, the rules asked on every look).
    async fn judge(
        &self,
        sub: &Subscription,
        manifests: &mut HashMap<ProductId, (ManifestHash, Arc<Manifest>)>,
    ) -> Result<(Option<CatalogEntry>, Option<String>), SubscribeError> {
        let (catalog, governance, fetcher) = (
            self.catalog.clone(),
            self.governance.clone(),
            self.fetcher.clone(),
        );
        let (id, skip_flagged) = (sub.product.clone(), sub.skip_flagged);
        let cached = manifests.get(&sub.product).cloned();
        let (newest, manifest, denial) = blocking(move || {
            let Some(entry) = newest_to_follow(&catalog, &id, skip_flagged)? else {
                return Ok::<_, SubscribeError>((None, None, None));
            };
            let hash = entry.announcement.manifest;
            let manifest = match cached {
                Some((h, m)) if h == hash => Some(m),
                _ => catalog
                    .manifest(&hash)?
                    .and_then(|(signed, _)| governance.check_manifest(&signed).ok())
                    .map(Arc::new),
            };
            let denial = manifest
                .as_ref()
                .and_then(|m| fetcher.may_read(m).err().map(|e| e.to_string()));
            Ok((Some(entry), manifest.map(|m| (hash, m)), denial))
        })
        .await?;
        if let Some(m) = manifest {
            manifests.insert(sub.product.clone(), m);
        }
        Ok((newest, denial))
    }

    /// Opens the subscription's directory as claimed, or says why it is no longer
    /// the one claimed. A record from before directories were known by identity
    /// takes this one's, and its kept folders as its own.
    async fn open_dir(
        &self,
        sub: &mut Subscription,
    ) -> Result<Result<Arc<Layout>, layout::LayoutError>, SubscribeError> {
        let (out, product, dir) = (sub.out.clone(), sub.product.to_string(), sub.dir);
        let kept: Vec<String> = sub.kept.iter().map(|k| k.version.clone()).collect();
        let made = sub.made.clone();
        let opened = blocking(move || {
            let layout = match Layout::open(&out, &product, dir) {
                Ok(l) => l,
                Err(e) => return Ok::<_, SubscribeError>(Err(e)),
            };
            let mut adopted = Vec::new();
            if dir.is_none() {
                for v in kept.iter().filter(|v| !made.iter().any(|m| &m.name == *v)) {
                    if let Ok(Some(found)) = layout.folder(v) {
                        adopted.push(found);
                    }
                }
            }
            Ok(Ok((Arc::new(layout), adopted)))
        })
        .await?;
        Ok(match opened {
            Ok((layout, adopted)) => {
                if sub.dir.is_none() {
                    sub.dir = Some(layout.id());
                    sub.made.extend(adopted);
                    self.save(sub.clone()).await?;
                }
                Ok(layout)
            }
            Err(e) => Err(e),
        })
    }

    /// Records how a materialization went: the new version current and the ones
    /// beyond `keep` removed, or the subscription stopped, or a retry planned.
    async fn settle(
        &self,
        sub: &mut Subscription,
        layout: Option<&Arc<Layout>>,
        result: Result<Materialized, Failed>,
        version: &str,
        backoff: &mut HashMap<ProductId, Backoff>,
    ) {
        let failed = match result {
            Ok(m) => {
                backoff.remove(&sub.product);
                info!(product = %sub.product, %version, lag_ms = m.lag_ms(), "subscription: materialized");
                let gone = sub.materialized(m);
                // A delivery into object storage removed its old versions itself.
                let pruned = match layout {
                    Some(layout) => self.prune(sub, layout, gone).await,
                    None => Ok(()),
                };
                match pruned {
                    Ok(()) => {
                        sub.set_state(SubState::UpToDate, unix_now_ms());
                        return;
                    }
                    Err(f) => f,
                }
            }
            Err(f) => f,
        };
        let state = match failed {
            Failed::Denied(reason) => {
                warn!(product = %sub.product, "subscription stopped: {reason}");
                SubState::Denied { reason }
            }
            Failed::Moved(reason) => {
                warn!(product = %sub.product, "subscription stopped: {reason}");
                SubState::Moved { reason }
            }
            Failed::Other(e) => {
                let attempts = match &sub.state {
                    SubState::Failing { attempts, .. } => attempts + 1,
                    _ => 1,
                };
                let pause = Duration::from_secs(1 << attempts.min(6)).min(MAX_BACKOFF);
                warn!(product = %sub.product, %version, attempts, "subscription: {e}; retrying in {} s", pause.as_secs());
                backoff.insert(
                    sub.product.clone(),
                    Backoff {
                        due: Instant::now() + pause,
                    },
                );
                SubState::Failing {
                    reason: e,
                    attempts,
                }
            }
        };
        sub.set_state(state, unix_now_ms());
    }

    /// Removes the folders of versions no longer kept, each only if it is still
    /// the folder this subscription made. Only a moved directory is an error (a
    /// failed removal is logged).
    async fn prune(
        &self,
        sub: &mut Subscription,
        layout: &Arc<Layout>,
        gone: Vec<Materialized>,
    ) -> Result<(), Failed> {
        let (l, made) = (layout.clone(), sub.made.clone());
        let product = sub.product.clone();
        let (made, moved) = blocking(move || {
            let mut made = made;
            for g in gone {
                let Some(at) = made.iter().position(|m| m.name == g.version) else {
                    continue;
                };
                match l.prune(&made[at]) {
                    Ok(true) => {}
                    Ok(false) => info!(%product, version = %g.version, "subscription: the old folder is not the one it made; left in place"),
                    Err(e @ layout::LayoutError::Moved { .. }) => return Ok((made, Some(e.to_string()))),
                    Err(e) => warn!(%product, "subscription: removing an old version: {e}"),
                }
                made.remove(at);
            }
            Ok::<_, Failed>((made, None))
        })
        .await?;
        sub.made = made;
        moved.map_or(Ok(()), |reason| Err(Failed::Moved(reason)))
    }

    /// Fetches `entry`'s version into its hidden folder and makes it current.
    async fn materialize(
        &self,
        sub: &mut Subscription,
        layout: &Arc<Layout>,
        entry: &CatalogEntry,
    ) -> Result<Materialized, Failed> {
        let a = &entry.announcement;
        let version = a.version.to_string();
        let (l, v, made) = (layout.clone(), version.clone(), sub.made.clone());
        let partial = blocking(move || l.partial(&v, &made).map_err(Failed::from)).await?;
        // Recorded before anything is written into it, so a crash leaves a folder
        // known to be this subscription's.
        let partial_made = partial.made();
        sub.made.push(partial.made());
        self.save(sub.clone())
            .await
            .map_err(|e| Failed::Other(e.to_string()))?;
        let path = partial.path();
        let target = ProductRef {
            id: a.product.clone(),
            version: Some(a.version.clone()),
        };
        let fetched = {
            let _shared_work = self.work_lock.read().await;
            let options = crate::ops::fetch::FetchOptions {
                overwrite: true,
                in_place: false,
            };
            self.fetcher
                .fetch(&target, Some(path.clone()), options, None)
                .await
        };
        let outcome = match fetched {
            Ok(o) => o,
            Err(e) => {
                let l = layout.clone();
                let _ = blocking(move || l.discard(partial).map_err(Failed::from)).await;
                sub.made.retain(|m| !m.is(&partial_made));
                return Err(e.into());
            }
        };
        let (l, v, made) = (layout.clone(), version.clone(), sub.made.clone());
        let (outputs, product) = (self.fetcher.outputs.clone(), a.product.clone());
        let folder = blocking(move || {
            let folder = l.commit(partial, &v, &made)?;
            // The files' records follow them, so the next version starts from them
            // (only hints: losing them costs the next version a full write).
            if let Err(e) = outputs.relocate(&product, &path, &l.dir().join(&v)) {
                tracing::warn!("following the renamed folder's records: {e}");
            }
            Ok::<_, Failed>(folder)
        })
        .await;
        sub.made.retain(|m| !m.is(&partial_made));
        let folder = folder?;
        sub.made.retain(|m| !m.is(&folder) && m.name != folder.name);
        sub.made.push(folder);
        Ok(Materialized {
            version,
            manifest: outcome.manifest,
            due_at_ms: a.issued_at_ms.max(sub.created_at_ms),
            materialized_at_ms: unix_now_ms(),
            transferred_bytes: outcome.transferred_bytes,
            size: outcome.size,
            reused_bytes: outcome.reused_bytes,
        })
    }

    async fn save(&self, sub: Subscription) -> Result<(), SubscribeError> {
        let book = self.book.clone();
        blocking(move || {
            // Unsubscribed meanwhile: nothing to save.
            if book.get(&sub.product)?.is_some() {
                book.put(&sub)?;
            }
            Ok::<_, SubscribeError>(())
        })
        .await
    }
}

/// The newest version of `id` a subscription follows: the newest, or with
/// `skip_flagged` the newest the policy does not flag.
fn newest_to_follow(
    catalog: &Catalog,
    id: &ProductId,
    skip_flagged: bool,
) -> Result<Option<CatalogEntry>, SubscribeError> {
    if !skip_flagged {
        return Ok(catalog.get(id, None)?);
    }
    let mut versions: Vec<semver::Version> = catalog
        .versions_of(id)?
        .into_iter()
        .map(|a| a.version)
        .collect();
    versions.sort_by(|a, b| b.cmp(a));
    for v in versions {
        let Some(entry) = catalog.get(id, Some(&v))? else {
            continue;
        };
        // Judged only once its manifest is known (its flags are set with it).
        let judged = catalog.manifest(&entry.announcement.manifest)?.is_some();
        if judged && entry.flags.is_empty() {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// The view of `s`, with the catalog's newest version of its product.
fn view(s: Subscription, newest: Option<&CatalogEntry>, now_ms: u64) -> SubscriptionView {
    let current = s.current().cloned();
    let newest_version = newest.map(|e| e.announcement.version.to_string());
    // A stopped subscription (denied, moved) waits for nothing: its lag is the
    // current version's, not a count of time since the newest was announced.
    let stopped = !s.active();
    let lag_ms = match (&current, newest) {
        (Some(c), Some(n)) if c.version == n.announcement.version.to_string() => Some(c.lag_ms()),
        (Some(c), _) if stopped => Some(c.lag_ms()),
        (None, _) if stopped => None,
        (_, Some(n)) => Some(now_ms.saturating_sub(n.announcement.issued_at_ms)),
        (Some(c), None) => Some(c.lag_ms()),
        (None, None) => None,
    };
    let reason = match &s.state {
        SubState::Denied { reason }
        | SubState::Moved { reason }
        | SubState::Failing { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    // A known newer version that is not being fetched: behind.
    let state = match &s.state {
        SubState::UpToDate if newest_version.as_ref() != current.as_ref().map(|c| &c.version) => {
            "behind"
        }
        other => other.label(),
    };
    SubscriptionView {
        product: s.product.to_string(),
        out: s.out.clone(),
        keep: s.keep,
        state: state.to_string(),
        reason,
        since_ms: s.since_ms,
        current: current.map(|c| c.version),
        newest: newest_version,
        lag_ms,
        kept: s.kept.iter().map(|k| k.version.clone()).collect(),
        skip_flagged: s.skip_flagged,
        history: s.history.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, issued_at_ms: u64) -> CatalogEntry {
        let key = mesh_protocol::KeyPair::generate();
        CatalogEntry {
            announcement: crate::state::fixtures::orders_announcement(&key, version, issued_at_ms),
            local: false,
            flags: vec![],
            health: None,
            providers: vec![],
        }
    }

    #[test]
    fn a_stopped_subscriptions_lag_does_not_grow() {
        let mut s = Subscription::new("sales/orders".parse().expect("id"), "/tmp/x".into(), 2, 0);
        s.materialized(Materialized {
            version: "1.0.0".into(),
            manifest: "m".into(),
            due_at_ms: 1_000,
            materialized_at_ms: 1_500,
            transferred_bytes: 1,
            size: 1,
            reused_bytes: 0,
        });
        let newer = entry("1.1.0", 2_000);
        // Following: the newest has waited since its announcement.
        assert_eq!(view(s.clone(), Some(&newer), 10_000).lag_ms, Some(8_000));
        // Denied: it waits for nothing; the lag is the current version's.
        s.set_state(
            SubState::Denied {
                reason: "revoked".into(),
            },
            3_000,
        );
        assert_eq!(view(s.clone(), Some(&newer), 10_000).lag_ms, Some(500));
        assert_eq!(view(s, Some(&newer), 99_000).lag_ms, Some(500));
    }
}
