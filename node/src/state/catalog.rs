//! The catalog: every product version this node has learned of, from gossip and from
//! catalog sync, as verified signed announcements in the metadata store.
//!
//! Keys are `domain/name \0 version`, so a page of the catalog can resume after any
//! entry. An announcement enters only after [`Governance::check_announcement`]; the
//! first manifest hash announced for a version wins and a conflicting one is refused.
//!
//! Verified manifests are kept by hash (`manifests` tree) as soon as they are known;
//! a product counts as held only once every chunk is verified (`complete` tree). Each
//! entry may carry [`Violation`] flags: what the current policy says is wrong with it.
//! [`Catalog::reevaluate`] recomputes them after a policy change; nothing is dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mesh_protocol::announcement::Announcement;
use mesh_protocol::{DomainName, Manifest, ManifestHash, ProductId, Signed};
use mesh_storage::{MetaStore, Tree};
use serde::Serialize;

use super::announcements::{AnnouncementIndex, ByKey, Indexed};
use super::declared::{DeclaredIndex, Downstreams};
use super::digest::{CatalogDigest, Digest};
use super::governance::{Governance, Violation};
use super::loaded::LoadedOnUse;
use super::{Invalid, OfferError, StateError};
use mesh_contract::health::Health;

/// One product version in the catalog.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CatalogEntry {
    /// The verified announcement.
    pub announcement: Announcement,
    /// Whether this node holds the complete product (manifest and every chunk).
    pub local: bool,
    /// Rules of the current policy this version violates (empty when compliant).
    #[serde(default)]
    pub flags: Vec<Violation>,
    /// SLA, lifecycle and lineage health, for the newest version of each product
    /// (filled in by the API; never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The nodes that serve this version, for the newest version of each product
    /// and for the version `mesh show` asks about (filled in by the API; never
    /// stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderStatus>,
}

/// One node that serves a product version, as the catalog shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProviderStatus {
    /// Its peer id.
    pub peer_id: String,
    /// Its domain per the policy's registry, if registered.
    #[serde(default)]
    pub domain: Option<String>,
    /// Named by the signed announcement (the publisher's node).
    #[serde(default)]
    pub announced: bool,
    /// A replica: its own signed provider record says it holds the version.
    #[serde(default)]
    pub replica: bool,
    /// This node.
    #[serde(default)]
    pub this_node: bool,
    /// Connected to this node now (or this node itself holding it): counted as
    /// reachable by the SLA.
    #[serde(default)]
    pub connected: bool,
    /// Unix milliseconds of its newest provider record, if any.
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    /// That record is past its TTL (the node has not renewed it).
    #[serde(default)]
    pub stale: bool,
}

/// What happened to an offered announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Offer {
    /// A version the catalog did not know.
    New,
    /// A newer re-announcement of a known version (providers refreshed).
    Refreshed,
    /// Nothing new.
    Known,
}

/// An offer of a page's entry: what happened, and its announcement if it decoded.
pub(crate) type PageOffer = (Result<Offer, OfferError>, Option<Announcement>);

/// Entries a page needs before its signatures are checked on more than one thread.
const PARALLEL_FROM: usize = 64;

/// An offered envelope after the checks that write nothing.
struct Checked {
    /// Its catalog key.
    key: Vec<u8>,
    /// Its announcement (verified unless `kept`).
    announcement: Announcement,
    /// The envelope kept for this version before, if any.
    existing: Option<Vec<u8>>,
    /// The offered bytes are exactly the kept envelope.
    kept: bool,
}

/// Filters for listing the catalog.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only products carrying this tag.
    pub tag: Option<String>,
    /// Only products whose id, title or tags contain this text (case-insensitive).
    pub q: Option<String>,
    /// Judge health as of this unix time instead of now (a what-if, and for tests).
    pub at: Option<u64>,
}

/// The catalog over the node's metadata store.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    store: Arc<dyn MetaStore>,
    governance: Governance,
    /// Signalled when a version becomes held or stops being held (the provider
    /// record is due).
    holdings: Arc<tokio::sync::Notify>,
    /// Bumped by every write, so a reader's cache knows when it is stale.
    generation: Arc<AtomicU64>,
    /// Signalled (to current waiters) by every write.
    updated: Arc<tokio::sync::Notify>,
    /// Every announcement, decoded, for listing and search.
    index: AnnouncementIndex,
    /// Every known manifest's upstreams, reversed, for lineage.
    declared: DeclaredIndex,
    /// The set of versions, summarised, for anti-entropy.
    digest: LoadedOnUse<Digest>,
    /// Products whose manifests the rules deny this node (its lineage of them is
    /// incomplete), at most [`MAX_UNREADABLE`].
    unreadable: Arc<std::sync::Mutex<std::collections::HashSet<ProductId>>>,
    /// Held while an entry is kept: gossip (on the network loop) and catalog sync
    /// (on its own worker) keep entries at the same time, and each keep re-reads
    /// the stored entry under it, so a version is never counted new twice.
    keeping: Arc<Mutex<()>>,
}

/// Products remembered as unreadable, at most.
const MAX_UNREADABLE: usize = 100_000;

/// Sorts entries by product id, then version (the store's key order compares
/// versions as text).
pub(crate) fn sort_entries(entries: &mut [CatalogEntry]) {
    entries.sort_by(|a, b| {
        (&a.announcement.product, &a.announcement.version)
            .cmp(&(&b.announcement.product, &b.announcement.version))
    });
}

/// A filter's parts, lowercased once.
pub(crate) struct FilterParts {
    domain: Option<String>,
    tag: Option<String>,
    q: Option<String>,
}

impl FilterParts {
    /// Tags and domains match whatever their case; the text is searched in id,
    /// title and tags.
    pub(crate) fn of(filter: &Filter) -> Self {
        let lower = |s: &Option<String>| s.as_ref().map(|s| s.to_lowercase());
        FilterParts {
            domain: lower(&filter.domain),
            tag: lower(&filter.tag),
            q: lower(&filter.q),
        }
    }

    /// Whether `i` passes.
    pub(crate) fn matches(&self, i: &Indexed) -> bool {
        i.matches(
            self.domain.as_deref(),
            self.tag.as_deref(),
            self.q.as_deref(),
        )
    }
}

/// A stored announcement's value.
fn decode_announcement(bytes: &[u8]) -> Result<Announcement, StateError> {
    Signed::<Announcement>::from_bytes(bytes)
        .and_then(|s| s.value())
        .map_err(|e| StateError::corrupt("catalog entry", e))
}

/// The catalog key of a product version.
pub(crate) fn entry_key(id: &ProductId, version: &semver::Version) -> Vec<u8> {
    format!("{id}\0{version}").into_bytes()
}

/// A page of the announcements in `store` after `after`, in key order (the bytes
/// of [`entry_key`], which is not semver order: `1.10.0` comes before `1.9.0`), and
/// whether more follow.
pub(crate) fn page_of(
    store: &dyn MetaStore,
    after: Option<&(ProductId, semver::Version)>,
    limit: usize,
) -> Result<(Vec<Vec<u8>>, bool), StateError> {
    let cursor = after.map(|(id, v)| entry_key(id, v));
    let mut rows = store.scan(Tree::Announcements, cursor.as_deref(), limit + 1)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows.into_iter().map(|(_, v)| v).collect(), more))
}

impl Catalog {
    /// A catalog over `store`, enforcing `governance`.
    pub(crate) fn new(store: Arc<dyn MetaStore>, governance: Governance) -> Self {
        Catalog {
            store,
            governance,
            holdings: Arc::new(tokio::sync::Notify::new()),
            generation: Arc::new(AtomicU64::new(0)),
            updated: Arc::new(tokio::sync::Notify::new()),
            index: AnnouncementIndex::default(),
            declared: DeclaredIndex::default(),
            digest: LoadedOnUse::default(),
            unreadable: Arc::default(),
            keeping: Arc::default(),
        }
    }

    /// A number that changes whenever anything in the catalog does (an entry, a
    /// manifest, a flag, a holding): a cache built at one generation is current
    /// while the generation is the same.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.updated.notify_waiters();
    }

    /// The signal of every write: a waiter that enables its `notified()` future
    /// before reading misses no change made after.
    pub(crate) fn updates(&self) -> Arc<tokio::sync::Notify> {
        self.updated.clone()
    }

    /// The signal of a version becoming held or no longer held: a waiter that
    /// enables its `notified()` future before reading misses no change made after.
    pub(crate) fn holdings(&self) -> Arc<tokio::sync::Notify> {
        self.holdings.clone()
    }

    /// Manifest hashes of every version this node holds completely.
    pub(crate) fn held(&self) -> Result<Vec<ManifestHash>, StateError> {
        self.stored_hashes(Tree::Complete)
    }

    /// Verifies and records an announcement's encoded envelope.
    ///
    /// An invalid announcement is [`OfferError::Invalid`] (the sender's fault); a
    /// store failure while keeping it is [`OfferError::Store`] (ours).
    pub(crate) fn offer(&self, bytes: &[u8]) -> Result<Offer, OfferError> {
        let checked = self.check(bytes)?;
        self.keep(bytes, &checked)
    }

    /// Offers every envelope of a page (a catalog sync's) as [`Catalog::offer`]
    /// does, in order. The signatures (most of the cost of a late joiner's sync)
    /// are checked on as many threads as the machine has cores, this one among
    /// them, while this one also keeps each entry in turn as soon as its check is
    /// done, so the writes overlap the checks of the entries after. Each outcome
    /// comes with its announcement when the envelope decodes, valid or not (a
    /// sync's cursor moves past both).
    pub(crate) fn offer_page(&self, entries: &[Vec<u8>]) -> Vec<PageOffer> {
        // Loaded, the index answers whether a version is known without a read of
        // the store (most entries of a catch-up are not); a failed load only
        // leaves those reads to the store.
        let _ = self.with_index(|_| ());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads < 2 || entries.len() < PARALLEL_FROM {
            return entries
                .iter()
                .map(|b| self.offer_checked(b, self.check(b)))
                .collect();
        }
        let slots: Vec<Mutex<Option<Result<Checked, OfferError>>>> =
            entries.iter().map(|_| Mutex::new(None)).collect();
        let claimed = AtomicUsize::new(0);
        // Checks the next entry no thread has claimed; false when none is left.
        let check_next = || {
            let i = claimed.fetch_add(1, Ordering::AcqRel);
            let (Some(bytes), Some(slot)) = (entries.get(i), slots.get(i)) else {
                return false;
            };
            let checked = self.check(bytes);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(checked);
            true
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads)
                .map(|_| scope.spawn(|| while check_next() {}))
                .collect();
            let mut out = Vec::with_capacity(entries.len());
            for (bytes, slot) in entries.iter().zip(&slots) {
                let checked = loop {
                    if let Some(c) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                        break c;
                    }
                    // Its check is another thread's and not done: check a later
                    // one meanwhile, or wait (checking it here if that thread died).
                    if !check_next() {
                        if helpers.iter().all(|h| h.is_finished()) {
                            break self.check(bytes);
                        }
                        std::thread::yield_now();
                    }
                };
                out.push(self.offer_checked(bytes, checked));
            }
            out
        })
    }

    /// Keeps an envelope whose check came out as `checked`.
    fn offer_checked(&self, bytes: &[u8], checked: Result<Checked, OfferError>) -> PageOffer {
        match checked {
            Ok(c) => (self.keep(bytes, &c), Some(c.announcement)),
            Err(e) => {
                let decoded = Signed::<Announcement>::from_bytes(bytes)
                    .and_then(|s| s.value())
                    .ok();
                (Err(e), decoded)
            }
        }
    }

    /// The checks of an offer that write nothing: the envelope decodes, and unless
    /// it is the very envelope kept already (anti-entropy pulls every entry again:
    /// its signature was checked when it was kept, and checking it costs more than
    /// everything else here), it is validly signed by a key the policy registers.
    fn check(&self, bytes: &[u8]) -> Result<Checked, OfferError> {
        let signed = Signed::<Announcement>::from_bytes(bytes).map_err(Invalid::new)?;
        let claimed = signed.value().map_err(Invalid::new)?;
        let key = entry_key(&claimed.product, &claimed.version);
        let existing = self.stored(&key)?;
        let kept = existing.as_deref() == Some(bytes);
        let announcement = if kept {
            claimed
        } else {
            self.governance.check_announcement(&signed, claimed)?
        };
        Ok(Checked {
            key,
            announcement,
            existing,
            kept,
        })
    }

    /// Keeps a checked envelope: a new version within the domain's limits, or a
    /// newer announcement of a known one (its manifest may never change). When the
    /// stored entry is no longer the one the check read (another offer of the same
    /// version was kept since: the same version twice in one page, or from gossip
    /// and sync at once), the envelope is checked again against what is stored.
    fn keep(&self, bytes: &[u8], c: &Checked) -> Result<Offer, OfferError> {
        if c.kept {
            return Ok(Offer::Known);
        }
        let _keeping = self.keeping.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stored(&c.key)? != c.existing {
            return self.keep_checked(bytes, &self.check(bytes)?);
        }
        self.keep_checked(bytes, c)
    }

    /// The stored envelope of a catalog key. A key the loaded index lacks is not
    /// looked up: every write stores the entry, then indexes it, both while
    /// [`Catalog::keeping`] is held, so with it held the index is never behind
    /// (without it, a [`Catalog::keep`] checks again).
    fn stored(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if self.index.contains(key) == Some(false) {
            return Ok(None);
        }
        Ok(self.store.get(Tree::Announcements, key)?)
    }

    /// [`Catalog::keep`] once the stored entry is known to be the one `c` read
    /// (with [`Catalog::keeping`] held).
    fn keep_checked(&self, bytes: &[u8], c: &Checked) -> Result<Offer, OfferError> {
        if c.kept {
            return Ok(Offer::Known);
        }
        let a = &c.announcement;
        let old = c
            .existing
            .as_deref()
            .and_then(|b| decode_announcement(b).ok());
        let offer = match old {
            None => {
                self.within_domain_limits(a.product.domain(), a.issued_at_ms)?;
                Offer::New
            }
            Some(old) => {
                if old.manifest != a.manifest {
                    return Err(Invalid::new(format!(
                        "{}@{} was already announced with manifest {}; a published version never changes (publish a new version)",
                        a.product,
                        a.version,
                        old.manifest.short()
                    ))
                    .into());
                }
                if a.issued_at_ms <= old.issued_at_ms {
                    return Ok(Offer::Known);
                }
                Offer::Refreshed
            }
        };
        self.store.put(Tree::Announcements, &c.key, bytes)?;
        if offer == Offer::New {
            self.digest.update(|d| d.add(&c.key, a.issued_at_ms));
        }
        self.index.insert(c.key.clone(), a.clone());
        self.changed();
        if offer == Offer::New {
            // One line per version learned: mesh-testnet measures propagation from it.
            tracing::info!(product = %a.product, version = %a.version, "catalog learned");
        }
        Ok(offer)
    }

    fn decode_entry(&self, bytes: &[u8]) -> Result<CatalogEntry, StateError> {
        self.entry_of(decode_announcement(bytes)?)
    }

    /// The entry of a stored announcement: whether this node holds it, its flags.
    pub(crate) fn entry_of(&self, announcement: Announcement) -> Result<CatalogEntry, StateError> {
        let local = self.holds(&announcement.manifest)?;
        let flags = self.flags(&entry_key(&announcement.product, &announcement.version))?;
        Ok(CatalogEntry {
            announcement,
            local,
            flags,
            health: None,
            providers: Vec::new(),
        })
    }

    /// Whether this node holds the complete product with this manifest.
    pub(crate) fn holds(&self, manifest: &ManifestHash) -> Result<bool, StateError> {
        Ok(self
            .store
            .get(Tree::Complete, manifest.as_bytes())?
            .is_some())
    }

    /// Marks the product with this manifest as held completely.
    pub(crate) fn mark_complete(&self, manifest: &ManifestHash) -> Result<(), StateError> {
        self.store.put(Tree::Complete, manifest.as_bytes(), &[])?;
        self.changed();
        self.holdings.notify_one();
        Ok(())
    }

    /// Marks the product with this manifest as no longer held (GC).
    pub(crate) fn unmark_complete(&self, manifest: &ManifestHash) -> Result<(), StateError> {
        self.store.remove(Tree::Complete, manifest.as_bytes())?;
        self.changed();
        self.holdings.notify_one();
        Ok(())
    }

    /// Checks every product marked complete against the chunk store, at start: one
    /// whose manifest is unreadable or whose chunks are not all held (lost to
    /// corruption, or pack files removed by hand) is marked incomplete, so it is
    /// neither served nor listed as local, and a fetch brings it back. Returns the
    /// manifests unmarked.
    pub(crate) fn recheck_complete(
        &self,
        chunks: &mesh_storage::ChunkStore,
    ) -> Result<Vec<ManifestHash>, StateError> {
        let mut unmarked = Vec::new();
        for hash in self.stored_hashes(Tree::Complete)? {
            let whole = match self.manifest(&hash) {
                Ok(Some((_, m))) => m
                    .files
                    .iter()
                    .flat_map(|f| &f.chunks)
                    .all(|c| chunks.has(&c.hash)),
                Ok(None) | Err(StateError::Corrupt { .. }) => false,
                Err(e) => return Err(e),
            };
            if !whole {
                tracing::warn!(manifest = %hash, "a product marked complete is missing chunks or its manifest; marked incomplete (fetch it again)");
                self.unmark_complete(&hash)?;
                unmarked.push(hash);
            }
        }
        Ok(unmarked)
    }

    /// Hashes of every verified manifest this node knows.
    pub(crate) fn known_manifests(&self) -> Result<Vec<ManifestHash>, StateError> {
        self.stored_hashes(Tree::Manifests)
    }

    /// The manifest hashes that key `tree` (manifests, or completed products).
    fn stored_hashes(&self, tree: Tree) -> Result<Vec<ManifestHash>, StateError> {
        let mut out = Vec::new();
        self.for_each_stored(tree, |key, _| {
            if let Ok(bytes) = <[u8; 32]>::try_from(key) {
                out.push(ManifestHash::from_bytes(bytes));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// A verified manifest this node knows, if any.
    pub(crate) fn manifest(
        &self,
        hash: &ManifestHash,
    ) -> Result<Option<(Signed<Manifest>, Manifest)>, StateError> {
        let Some(bytes) = self.store.get(Tree::Manifests, hash.as_bytes())? else {
            return Ok(None);
        };
        let what = || format!("stored manifest {}", hash.short());
        let signed =
            Signed::<Manifest>::from_bytes(&bytes).map_err(|e| StateError::corrupt(what(), e))?;
        let m = signed.value().map_err(|e| StateError::corrupt(what(), e))?;
        Ok(Some((signed, m)))
    }

    /// Records a verified manifest and flags its entry with any violations.
    pub(crate) fn record_manifest(
        &self,
        signed: &Signed<Manifest>,
        m: &Manifest,
    ) -> Result<(), StateError> {
        // Flags first: a reader that finds the manifest finds its flags too.
        self.set_flags(
            &entry_key(&m.id, &m.version),
            &self.governance.violations(m),
        )?;
        self.store.put(
            Tree::Manifests,
            signed.hash().as_bytes(),
            &signed.to_bytes(),
        )?;
        self.unreadable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&m.id);
        self.declared.insert(m);
        self.changed();
        Ok(())
    }

    fn flags(&self, key: &[u8]) -> Result<Vec<Violation>, StateError> {
        match self.store.get(Tree::Flags, key)? {
            Some(b) => mesh_protocol::decode(&b, 1024 * 1024, "catalog flags")
                .map_err(|e| StateError::corrupt("catalog flags", e)),
            None => Ok(Vec::new()),
        }
    }

    fn set_flags(&self, key: &[u8], flags: &[Violation]) -> Result<(), StateError> {
        self.changed();
        if flags.is_empty() {
            self.store.remove(Tree::Flags, key)?;
        } else {
            self.store
                .put(Tree::Flags, key, &mesh_protocol::encode(&flags))?;
        }
        Ok(())
    }

    /// Re-evaluates every entry against the current policy; returns how many entries
    /// are flagged. Entries whose manifest is unknown are checked for registration.
    pub(crate) fn reevaluate(&self) -> Result<usize, StateError> {
        let policy = self.governance.policy();
        let mut flagged = 0;
        self.for_each_stored(Tree::Announcements, |key, bytes| {
            let Ok(a) = Signed::<Announcement>::from_bytes(bytes).and_then(|s| s.value()) else {
                return Ok(());
            };
            let flags = match self.manifest(&a.manifest)? {
                Some((_, m)) => self.governance.violations(&m),
                None if !policy.is_publisher(a.product.domain(), &a.publisher) => {
                    vec![Violation {
                        rule: "registry".into(),
                        reason: format!(
                            "publisher key {} is no longer registered for domain {}",
                            a.publisher.short(),
                            a.product.domain()
                        ),
                        policy_version: policy.version,
                    }]
                }
                None => Vec::new(),
            };
            if !flags.is_empty() {
                flagged += 1;
            }
            self.set_flags(key, &flags)
        })?;
        self.store.flush()?;
        Ok(flagged)
    }

    /// Every version of every product matching `filter`, sorted by id then version.
    pub(crate) fn list(&self, filter: &Filter) -> Result<Vec<CatalogEntry>, StateError> {
        let matched: Vec<Announcement> = self.with_index(|map| {
            let parts = FilterParts::of(filter);
            map.values()
                .filter(|i| parts.matches(i))
                .map(|i| Announcement::clone(&i.announcement))
                .collect()
        })?;
        let mut out = matched
            .into_iter()
            .map(|a| self.entry_of(a))
            .collect::<Result<Vec<_>, _>>()?;
        sort_entries(&mut out);
        Ok(out)
    }

    /// `f` over every announcement, decoded, by catalog key (loaded from the store
    /// on first use).
    pub(crate) fn with_index<R>(&self, f: impl FnOnce(&ByKey) -> R) -> Result<R, StateError> {
        self.index.read(
            || {
                let mut all = Vec::new();
                self.for_each_stored(Tree::Announcements, |k, v| {
                    all.push((k.to_vec(), decode_announcement(v)?));
                    Ok(())
                })?;
                Ok(all)
            },
            f,
        )
    }

    /// `f` over what every known manifest declares upstream, reversed (loaded from
    /// the stored manifests on first use; an undecodable one is skipped, as
    /// `mesh verify` reports it).
    pub(crate) fn with_declared<R>(
        &self,
        f: impl FnOnce(&Downstreams) -> R,
    ) -> Result<R, StateError> {
        self.declared.read(
            |map| {
                self.for_each_stored(Tree::Manifests, |_, v| {
                    if let Ok(m) = Signed::<Manifest>::from_bytes(v).and_then(|s| s.value()) {
                        super::declared::add(map, &m);
                    }
                    Ok(())
                })
            },
            f,
        )
    }

    /// One version of a product, or its highest version when `version` is `None`.
    pub(crate) fn get(
        &self,
        id: &ProductId,
        version: Option<&semver::Version>,
    ) -> Result<Option<CatalogEntry>, StateError> {
        if let Some(v) = version {
            return match self.store.get(Tree::Announcements, &entry_key(id, v))? {
                Some(b) => Ok(Some(self.decode_entry(&b)?)),
                None => Ok(None),
            };
        }
        match self
            .versions_of(id)?
            .into_iter()
            .max_by(|a, b| a.version.cmp(&b.version))
        {
            Some(a) => Ok(Some(self.entry_of(a)?)),
            None => Ok(None),
        }
    }

    /// Every version of `id` this catalog holds (announcements only), by a prefix
    /// scan of the product's keys (at most 10,000 versions).
    pub(crate) fn versions_of(&self, id: &ProductId) -> Result<Vec<Announcement>, StateError> {
        let prefix = format!("{id}\0").into_bytes();
        let page = self.store.scan(
            Tree::Announcements,
            Some(&prefix[..prefix.len() - 1]),
            10_000,
        )?;
        page.iter()
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| decode_announcement(v))
            .collect()
    }

    /// The catalog's digest, built from the store's keys the first time (a scan of
    /// the whole tree: warm it off the event loop).
    pub(crate) fn digest(&self) -> Result<CatalogDigest, StateError> {
        self.with_tally(Digest::get)
    }

    /// `f` over the catalog's tally, built from the store's keys the first time.
    fn with_tally<R>(&self, f: impl FnOnce(&Digest) -> R) -> Result<R, StateError> {
        self.digest.read(
            || {
                let mut d = Digest::default();
                self.for_each_stored(Tree::Announcements, |key, bytes| {
                    let issued = decode_announcement(bytes).map_or(0, |a| a.issued_at_ms);
                    d.add(key, issued);
                    Ok(())
                })?;
                Ok(d)
            },
            f,
        )
    }

    /// Whether the policy's domain limits let `domain` add a version announced at
    /// `issued_at_ms` (see `DomainLimits`); the tally is built first if it is not
    /// yet.
    pub(crate) fn within_domain_limits(
        &self,
        domain: &DomainName,
        issued_at_ms: u64,
    ) -> Result<(), OfferError> {
        let limits = self.governance.with_policy(|p| p.settings.domain_limits);
        if limits == Default::default() {
            return Ok(());
        }
        self.with_tally(|d| d.admits(&limits, domain.as_str(), issued_at_ms))?
            .map_err(OfferError::OverLimit)
    }

    /// The catalog's digest if it is built already (never scans the store).
    pub(crate) fn digest_if_built(&self) -> Option<CatalogDigest> {
        self.digest.peek(Digest::get)
    }

    /// Calls `f` with every entry (key, value) of `tree`, in key order, a page at a time.
    fn for_each_stored(
        &self,
        tree: Tree,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.store.scan(tree, after.as_deref(), 512)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (key, bytes) in &page {
                f(key, bytes)?;
            }
        }
    }

    /// A page of encoded announcements after `after`, for catalog sync.
    pub(crate) fn page(
        &self,
        after: Option<&(ProductId, semver::Version)>,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StateError> {
        page_of(self.store.as_ref(), after, limit)
    }

    /// Notes that the rules deny this node `id`'s manifest: lineage drawn here
    /// says that some may be hidden.
    pub(crate) fn note_unreadable(&self, id: ProductId) {
        let mut set = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        if set.len() < MAX_UNREADABLE {
            set.insert(id);
        }
    }

    /// Products other than `except` whose manifests the rules deny this node.
    pub(crate) fn unreadable_except(&self, except: &ProductId) -> usize {
        let set = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        set.len() - usize::from(set.contains(except))
    }

    /// Makes everything written so far durable.
    pub(crate) fn flush(&self) -> Result<(), StateError> {
        Ok(self.store.flush()?)
    }

    /// Number of product versions known, from the tally (versions are only ever
    /// added, and the tally with them), so only the first call scans the store.
    pub(crate) fn len(&self) -> Result<usize, StateError> {
        Ok(usize::try_from(self.digest()?.versions).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests;
