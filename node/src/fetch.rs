//! Fetching a product version: resolve it in the catalog, get the signed manifest from
//! a provider and verify its hash, signature and publisher registration, download the
//! chunks this node lacks from several providers in parallel (each verified against
//! its BLAKE3 hash before it is stored; a bad copy is dropped and fetched elsewhere),
//! then record the manifest as held and write the files out (temp + rename).
//!
//! Progress is reported as [`FetchEvent`]s on a bounded channel. Chunks already in the
//! store are never fetched again, so re-running an interrupted fetch resumes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use libp2p::PeerId;
use mesh_protocol::manifest::{ChunkRef, MAX_CHUNK_LEN};
use mesh_protocol::wire::{ChunkData, Request, Response, MAX_BATCH_BYTES, MAX_BATCH_CHUNKS};
use mesh_protocol::{Manifest, ProductRef, Signed};
use mesh_storage::assemble;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn, Instrument};

use crate::catalog::CatalogEntry;
use crate::node::Node;
use crate::NodeError;

/// Chunks are asked for in batches of about this many bytes (one request each).
const BATCH_BYTES: u64 = 1 << 20;
/// Batch requests in flight at once for one fetch, at most (and at most
/// [`PEER_WINDOW`] per provider, so no request waits for a slot needlessly). With
/// [`BATCH_BYTES`] this bounds the bytes in flight to about 48 MiB.
const WINDOW: usize = 48;
/// Batch requests in flight to one provider at once, at most. Each provider starts
/// at [`INITIAL_PEER_WINDOW`]; every good answer widens its window by one, a busy or
/// failed one halves it. Each batch goes to the usable provider with the most free
/// slots, so a faster provider, answering sooner, grows its window and takes more of
/// the work.
const PEER_WINDOW: usize = 16;
/// A provider's window before it has answered.
const INITIAL_PEER_WINDOW: usize = 2;
/// `Busy` answers tolerated per chunk before giving up on that provider.
const MAX_BUSY_RETRIES: u32 = 40;
/// Backoff unit after a `Busy` answer (grows linearly, capped at 10 units).
const BUSY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);
/// Verification failures after which a provider is dropped for this fetch.
const MAX_BAD_CHUNKS: u32 = 3;
/// Bytes downloaded between background syncs during a fetch.
const FLUSH_EVERY: u64 = 128 << 20;
/// Products with at most this many files are written out while chunks arrive (one
/// open descriptor per file); larger ones are assembled from the store afterwards.
const MAX_STREAMED_FILES: usize = 256;

/// Progress of a fetch, streamed to the CLI as JSON lines.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FetchEvent {
    /// The manifest is verified; chunk download starts.
    Resolved {
        /// `domain/name@version`.
        product: String,
        /// Manifest hash.
        manifest: String,
        /// Total product bytes.
        total_bytes: u64,
        /// Bytes this node must download.
        missing_bytes: u64,
        /// Providers that will be asked.
        providers: usize,
    },
    /// Chunks arrived.
    Progress {
        /// Product bytes held so far.
        done_bytes: u64,
        /// Total product bytes.
        total_bytes: u64,
    },
    /// The fetch finished.
    Done(FetchOutcome),
    /// The fetch failed.
    Error {
        /// What went wrong and what to do.
        message: String,
    },
}

/// The result of a completed fetch.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FetchOutcome {
    /// `domain/name`.
    pub product: String,
    /// Version.
    pub version: String,
    /// Manifest hash.
    pub manifest: String,
    /// Number of files.
    pub files: usize,
    /// Total product bytes.
    pub size: u64,
    /// Bytes downloaded from peers in this fetch.
    pub transferred_bytes: u64,
    /// Every chunk verified against its BLAKE3 hash.
    pub verified: bool,
    /// Where the files were written, if anywhere.
    pub out: Option<PathBuf>,
    /// Peers that served chunks.
    pub providers: Vec<String>,
    /// Bytes each provider served in this fetch.
    #[serde(default)]
    pub served: std::collections::BTreeMap<String, u64>,
    /// Peers dropped from this fetch after sending chunks that failed verification.
    #[serde(default)]
    pub banned: Vec<String>,
    /// Rules of the current policy this version violates (a warning, not a failure).
    #[serde(default)]
    pub flags: Vec<crate::governance::Violation>,
}

/// One provider's share of a fetch's requests.
struct Slots {
    load: usize,
    window: usize,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            load: 0,
            window: INITIAL_PEER_WINDOW,
        }
    }
}

struct ChunkFetch {
    node: Node,
    manifest: mesh_protocol::ManifestHash,
    providers: Vec<PeerId>,
    bad: Mutex<HashMap<PeerId, u32>>,
    /// Peers that answered `NotFound`: they do not hold this product; not asked again.
    lacking: Mutex<std::collections::HashSet<PeerId>>,
    used: Mutex<BTreeMap<PeerId, u64>>,
    /// Requests outstanding and window per provider.
    inflight: Mutex<HashMap<PeerId, Slots>>,
    /// Signalled whenever a provider slot frees up.
    slot_freed: tokio::sync::Notify,
    done: AtomicU64,
    transferred: AtomicU64,
    /// Output files written as verified chunks arrive.
    output: Option<Arc<assemble::Output>>,
}

async fn send(progress: &Option<mpsc::Sender<FetchEvent>>, e: FetchEvent) {
    if let Some(tx) = progress {
        let _ = tx.send(e).await;
    }
}

impl Node {
    /// Fetches `target` (latest version when none is given), verifies it, and writes
    /// its files under `out` if given.
    pub async fn fetch(
        &self,
        target: &ProductRef,
        out: Option<PathBuf>,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, NodeError> {
        let _shared_work = self.shared.work_lock.read().await;
        let span = tracing::info_span!("fetch", product = %target);
        self.fetch_inner(target, out, progress)
            .instrument(span)
            .await
    }

    async fn fetch_inner(
        &self,
        target: &ProductRef,
        out: Option<PathBuf>,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, NodeError> {
        let entry = self.shared.catalog.resolve(target)?;
        let ann = entry.announcement;
        let providers = self.candidate_providers(&ann).await?;

        let (signed, manifest) = match self.shared.catalog.manifest(&ann.manifest)? {
            Some((s, _)) => {
                let m = self
                    .shared
                    .governance
                    .check_manifest(&s)
                    .map_err(|r| NodeError::Rejected(r.0))?;
                (s, m)
            }
            None => self.fetch_manifest(&ann.manifest, &providers).await?,
        };
        let label = format!("{}@{}", manifest.id, manifest.version);
        // Each distinct chunk once: either held already or to download.
        let mut seen = HashSet::new();
        let (mut missing, mut held) = (Vec::<ChunkRef>::new(), Vec::new());
        for c in manifest.files.iter().flat_map(|f| f.chunks.iter().copied()) {
            if seen.insert(c.hash) {
                if self.shared.chunks.has(&c.hash) {
                    held.push(c.hash);
                } else {
                    missing.push(c);
                }
            }
        }
        let total = manifest.total_size();
        let missing_bytes: u64 = missing.iter().map(|c| u64::from(c.len)).sum();
        send(
            &progress,
            FetchEvent::Resolved {
                product: label.clone(),
                manifest: ann.manifest.to_string(),
                total_bytes: total,
                missing_bytes,
                providers: providers.len(),
            },
        )
        .await;

        let output = match &out {
            Some(dir) if manifest.files.len() <= MAX_STREAMED_FILES => {
                let (files, dir) = (manifest.files.clone(), dir.clone());
                let created =
                    tokio::task::spawn_blocking(move || assemble::Output::create(&files, &dir))
                        .await
                        .map_err(|e| NodeError::Network(format!("fetch task failed: {e}")))?;
                Some(Arc::new(
                    created.map_err(|e| NodeError::Usage(e.to_string()))?,
                ))
            }
            _ => None,
        };
        let job = Arc::new(ChunkFetch {
            node: self.clone(),
            manifest: ann.manifest,
            providers,
            bad: Mutex::new(HashMap::new()),
            lacking: Mutex::new(std::collections::HashSet::new()),
            inflight: Mutex::new(HashMap::new()),
            slot_freed: tokio::sync::Notify::new(),
            used: Mutex::new(BTreeMap::new()),
            done: AtomicU64::new(total - missing_bytes.min(total)),
            transferred: AtomicU64::new(0),
            output,
        });
        let download_started = std::time::Instant::now();
        let mut results = futures::stream::iter(batches(missing).into_iter().enumerate())
            .map(|(i, batch)| {
                let job = job.clone();
                async move { job.fetch_batch(i, batch).await }
            })
            .buffer_unordered(WINDOW.min(PEER_WINDOW * job.providers.len().max(1)));
        // Writeback overlaps the download: every FLUSH_EVERY bytes, one background
        // sync starts (never two at once), so the final sync finds little left to do.
        let mut flushing: Option<tokio::task::JoinHandle<()>> = None;
        let mut flushed_at = 0u64;
        while let Some(r) = results.next().await {
            r?;
            let got = job.transferred.load(Ordering::Relaxed);
            if got >= flushed_at + FLUSH_EVERY && flushing.as_ref().is_none_or(|f| f.is_finished())
            {
                flushed_at = got;
                let chunks = self.shared.chunks.clone();
                flushing = Some(tokio::task::spawn_blocking(move || {
                    if let Err(e) = chunks.sync() {
                        warn!("background sync during fetch: {e}");
                    }
                }));
            }
            send(
                &progress,
                FetchEvent::Progress {
                    done_bytes: job.done.load(Ordering::Relaxed),
                    total_bytes: total,
                },
            )
            .await;
        }
        drop(results);
        if let Some(f) = flushing {
            let _ = f.await;
        }
        let download = download_started.elapsed();

        // Downloaded chunks were verified on arrival (and written out then, if
        // streaming). Chunks that were already held are read and verified from disk
        // now, so a corrupt store is never reported as whole.
        let shared = self.shared.clone();
        let files = manifest.files.clone();
        let output = job.output.clone();
        let hash = ann.manifest;
        let out2 = out.clone();
        let (signed2, manifest2) = (signed.clone(), manifest.clone());
        let finish_started = std::time::Instant::now();
        let sync_time =
            tokio::task::spawn_blocking(move || -> Result<std::time::Duration, NodeError> {
                match (&output, &out2) {
                    (Some(output), _) => {
                        output
                            .fill_from_store(&shared.chunks, &held)
                            .map_err(|e| NodeError::Usage(e.to_string()))?;
                    }
                    (None, Some(dir)) => {
                        assemble::write_files(&files, &shared.chunks, dir)
                            .map_err(|e| NodeError::Usage(e.to_string()))?;
                    }
                    (None, None) => {
                        for hash in &held {
                            shared
                                .chunks
                                .get_verified(hash, u64::from(MAX_CHUNK_LEN))
                                .map_err(|e| NodeError::Corrupt(e.to_string()))?;
                        }
                    }
                }
                // One syncfs covers the store and, on the same file system, the
                // output files, whose own sync in `commit` then finds them clean.
                let synced_from = std::time::Instant::now();
                shared.chunks.sync()?;
                let sync_time = synced_from.elapsed();
                if let Some(output) = &output {
                    output
                        .commit()
                        .map_err(|e| NodeError::Usage(e.to_string()))?;
                }
                shared.catalog.record_manifest(&signed2, &manifest2)?;
                shared.catalog.mark_complete(&hash)?;
                shared.store.flush()?;
                Ok(sync_time)
            })
            .await
            .map_err(|e| NodeError::Network(format!("fetch task failed: {e}")))??;

        let served: BTreeMap<String, u64> = lock(&job.used)
            .iter()
            .map(|(p, b)| (p.to_string(), *b))
            .collect();
        let outcome = FetchOutcome {
            product: manifest.id.to_string(),
            version: manifest.version.to_string(),
            manifest: ann.manifest.to_string(),
            files: manifest.files.len(),
            size: total,
            transferred_bytes: job.transferred.load(Ordering::Relaxed),
            verified: true,
            out,
            providers: served.keys().cloned().collect(),
            served,
            banned: lock(&job.bad)
                .iter()
                .filter(|(_, n)| **n >= MAX_BAD_CHUNKS)
                .map(|(p, _)| p.to_string())
                .collect(),
            flags: self.shared.governance.violations(&manifest),
        };
        let finish = finish_started.elapsed();
        info!(
            bytes = outcome.transferred_bytes,
            download_ms = download.as_millis() as u64,
            write_out_ms = (finish - sync_time.min(finish)).as_millis() as u64,
            sync_ms = sync_time.as_millis() as u64,
            "fetched {label}"
        );
        Ok(outcome)
    }

    /// Providers to ask: those the announcement names, then every connected peer.
    pub(crate) async fn candidate_providers(
        &self,
        ann: &mesh_protocol::Announcement,
    ) -> Result<Vec<PeerId>, NodeError> {
        let mut providers: Vec<PeerId> = ann
            .providers
            .iter()
            .filter_map(|p| p.parse().ok())
            .filter(|p| *p != self.peer_id())
            .collect();
        for peer in self.net.peers().await.map_err(NodeError::Network)? {
            if let Ok(p) = peer.peer_id.parse::<PeerId>() {
                if !providers.contains(&p) {
                    providers.push(p);
                }
            }
        }
        Ok(providers)
    }

    /// The catalog entry of `target` and its verified manifest, from the local store
    /// or, without storing it, from a provider.
    pub async fn describe(
        &self,
        target: &ProductRef,
    ) -> Result<(CatalogEntry, Result<Manifest, NodeError>), NodeError> {
        let entry = self.shared.catalog.resolve(target)?;
        let hash = entry.announcement.manifest;
        let manifest = match self.shared.catalog.manifest(&hash)? {
            Some((s, _)) => self
                .shared
                .governance
                .check_manifest(&s)
                .map_err(|r| NodeError::Rejected(r.0)),
            None => {
                let providers = self.candidate_providers(&entry.announcement).await?;
                self.fetch_manifest(&hash, &providers).await.map(|(_, m)| m)
            }
        };
        Ok((entry, manifest))
    }

    pub(crate) async fn fetch_manifest(
        &self,
        hash: &mesh_protocol::ManifestHash,
        providers: &[PeerId],
    ) -> Result<(Signed<Manifest>, Manifest), NodeError> {
        let mut tried = Vec::new();
        let mut denials = Vec::new();
        for peer in providers {
            let why = match self.net.request(*peer, Request::Manifest(*hash)).await {
                Ok(Response::Manifest(bytes)) => match Signed::<Manifest>::from_bytes(&bytes) {
                    Ok(s) if s.hash() == *hash => match self.shared.governance.check_manifest(&s) {
                        Ok(m) => {
                            let catalog = self.shared.catalog.clone();
                            let (s2, m2) = (s.clone(), m.clone());
                            tokio::task::spawn_blocking(move || catalog.record_manifest(&s2, &m2))
                                .await
                                .map_err(|e| NodeError::Network(e.to_string()))??;
                            return Ok((s, m));
                        }
                        Err(r) => format!("manifest rejected: {r}"),
                    },
                    Ok(_) => "sent a manifest that does not match its hash".into(),
                    Err(e) => format!("sent an undecodable manifest: {e}"),
                },
                Ok(Response::Denied { rule, reason }) => {
                    let d = format!("denied by rule {rule}: {reason}");
                    denials.push(d.clone());
                    d
                }
                Ok(Response::NotFound) => "does not hold it".into(),
                Ok(other) => format!("answered {other:?}"),
                Err(e) => e,
            };
            warn!(%peer, "manifest {}: {why}", hash.short());
            tried.push(format!("{peer}: {why}"));
        }
        if let Some(first) = denials.first() {
            return Err(NodeError::Rejected(format!(
                "the mesh policy does not allow this node to fetch it: {first} ({} of {} provider(s) denied)",
                denials.len(),
                tried.len()
            )));
        }
        Err(NodeError::Unavailable(format!(
            "no provider reachable for manifest {}: tried {} peer(s){}{}; check `mesh peers` and that a provider is running",
            hash.short(),
            tried.len(),
            if tried.is_empty() { "" } else { ": " },
            tried.join("; ")
        )))
    }
}

/// Groups chunks, in order, into requests of about [`BATCH_BYTES`] (never more than
/// the protocol's batch limits).
fn batches(chunks: Vec<ChunkRef>) -> Vec<Vec<ChunkRef>> {
    let mut out: Vec<Vec<ChunkRef>> = Vec::new();
    let mut bytes = 0u64;
    for c in chunks {
        let len = u64::from(c.len);
        let fits = out.last().is_some_and(|b| {
            b.len() < MAX_BATCH_CHUNKS && bytes < BATCH_BYTES && bytes + len <= MAX_BATCH_BYTES
        });
        if fits {
            bytes += len;
            if let Some(b) = out.last_mut() {
                b.push(c);
            }
        } else {
            bytes = len;
            out.push(vec![c]);
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChunkFetch {
    fn usable(&self, peer: &PeerId, tried: &std::collections::HashSet<PeerId>) -> bool {
        !tried.contains(peer)
            && lock(&self.bad).get(peer).copied().unwrap_or(0) < MAX_BAD_CHUNKS
            && !lock(&self.lacking).contains(peer)
    }

    /// Reserves a slot on the usable provider with the most free slots, waiting while
    /// all of them are at their window; `None` when none is usable. `index` breaks
    /// ties so equal providers share the work.
    async fn reserve(
        &self,
        index: usize,
        tried: &std::collections::HashSet<PeerId>,
    ) -> Option<PeerId> {
        let n = self.providers.len();
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut inflight = lock(&self.inflight);
                let usable: Vec<PeerId> = (0..n)
                    .map(|k| self.providers[(index + k) % n])
                    .filter(|p| self.usable(p, tried))
                    .collect();
                if usable.is_empty() {
                    return None;
                }
                let best = usable
                    .iter()
                    .map(|p| {
                        let s = inflight.entry(*p).or_default();
                        (s.window.saturating_sub(s.load), *p)
                    })
                    .filter(|(free, _)| *free > 0)
                    .max_by_key(|(free, _)| *free);
                if let Some((_, peer)) = best {
                    inflight.entry(peer).or_default().load += 1;
                    return Some(peer);
                }
            }
            freed.await;
        }
    }

    /// Frees a slot; a good answer widens the provider's window, a bad one halves it.
    fn release(&self, peer: &PeerId, good: bool) {
        if let Some(s) = lock(&self.inflight).get_mut(peer) {
            s.load = s.load.saturating_sub(1);
            s.window = if good {
                (s.window + 1).min(PEER_WINDOW)
            } else {
                (s.window / 2).max(1)
            };
        }
        self.slot_freed.notify_waiters();
    }

    /// Downloads one batch, verifying and storing each chunk; chunks a provider got
    /// wrong are asked of the next provider.
    async fn fetch_batch(&self, index: usize, batch: Vec<ChunkRef>) -> Result<(), NodeError> {
        let mut remaining = batch;
        let mut failures = Vec::new();
        let mut busy_retries = 0u32;
        let mut tried = std::collections::HashSet::new();
        while let Some(peer) = self.reserve(index, &tried).await {
            tried.insert(peer);
            let request = Request::Chunks {
                manifest: self.manifest,
                chunks: remaining.iter().map(|c| c.hash).collect(),
            };
            let answer = self.node.net.request(peer, request).await;
            let good = matches!(&answer, Ok(Response::Chunks(d)) if d.len() == remaining.len());
            self.release(&peer, good);
            let why = match answer {
                Ok(Response::Chunks(data)) if data.len() == remaining.len() => {
                    let (stored, wrong) = self.store(remaining, data).await?;
                    if stored > 0 {
                        *lock(&self.used).entry(peer).or_default() += stored;
                    }
                    if wrong.is_empty() {
                        return Ok(());
                    }
                    *lock(&self.bad).entry(peer).or_default() += wrong.len() as u32;
                    let why = format!(
                        "sent {} chunk(s) that fail BLAKE3 verification",
                        wrong.len()
                    );
                    remaining = wrong;
                    why
                }
                Ok(Response::Chunks(data)) => {
                    *lock(&self.bad).entry(peer).or_default() += 1;
                    format!("sent {} chunks, {} were asked", data.len(), remaining.len())
                }
                Ok(Response::NotFound) => {
                    lock(&self.lacking).insert(peer);
                    "does not hold it".into()
                }
                Ok(Response::Denied { rule, reason }) => {
                    return Err(NodeError::Rejected(format!(
                        "the mesh policy does not allow this node to fetch it: denied by rule {rule}: {reason}"
                    )));
                }
                Ok(Response::Busy) if busy_retries < MAX_BUSY_RETRIES => {
                    // The provider is at its concurrency limit: back off, ask again.
                    busy_retries += 1;
                    tried.remove(&peer);
                    tokio::time::sleep(BUSY_BACKOFF * busy_retries.min(10)).await;
                    continue;
                }
                Ok(other) => format!("answered {other:?}"),
                Err(e) => e,
            };
            warn!(%peer, chunks = remaining.len(), first = %remaining[0].hash.short(), "{why}");
            failures.push(format!("{peer}: {why}"));
        }
        Err(NodeError::Unavailable(format!(
            "no provider reachable for chunk {} ({}); nothing was written. Retry when another provider is up",
            remaining[0].hash.short(),
            if failures.is_empty() { "no usable provider".to_string() } else { failures.join("; ") }
        )))
    }

    /// Verifies and stores (and writes out) each chunk of an answer. Returns the bytes
    /// stored and the chunks whose bytes were wrong.
    async fn store(
        &self,
        asked: Vec<ChunkRef>,
        data: Vec<ChunkData>,
    ) -> Result<(u64, Vec<ChunkRef>), NodeError> {
        let chunks = self.node.shared.chunks.clone();
        let output = self.output.clone();
        let (stored, wrong) = tokio::task::spawn_blocking(move || {
            let mut stored = 0u64;
            let mut wrong = Vec::new();
            for (c, d) in asked.into_iter().zip(data) {
                if d.0.len() != c.len as usize {
                    wrong.push(c);
                    continue;
                }
                match chunks.put_verified(&c.hash, &d.0) {
                    Ok(_) => {}
                    Err(mesh_storage::ChunkError::Corrupt { .. }) => {
                        wrong.push(c);
                        continue;
                    }
                    Err(e) => return Err(NodeError::from(e)),
                }
                if let Some(output) = &output {
                    output
                        .write_chunk(&c.hash, &d.0)
                        .map_err(|e| NodeError::Usage(e.to_string()))?;
                }
                stored += u64::from(c.len);
            }
            Ok((stored, wrong))
        })
        .await
        .map_err(|e| NodeError::Network(format!("chunk task failed: {e}")))??;
        self.done.fetch_add(stored, Ordering::Relaxed);
        self.transferred.fetch_add(stored, Ordering::Relaxed);
        Ok((stored, wrong))
    }
}
