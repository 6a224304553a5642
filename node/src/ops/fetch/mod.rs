//! Fetching a product version: resolve it in the catalog, get the signed manifest from
//! a provider and verify its hash, signature and publisher registration, download the
//! chunks this node lacks from several providers in parallel (each verified against
//! its BLAKE3 hash before it is stored; a bad copy is dropped and fetched elsewhere),
//! then record the manifest as held and write the files out (temp + rename).
//!
//! Progress is reported as [`FetchEvent`]s on a bounded channel. Chunks already in the
//! store are never fetched again, so re-running an interrupted fetch resumes; in
//! place (see [`FetchOptions::in_place`]) the store holds them as ranges of the
//! output's temporary files, which an interrupted fetch leaves for the next one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use libp2p::PeerId;
use mesh_protocol::manifest::{ChunkRef, Classification, FileEntry, MAX_CHUNK_LEN};
use mesh_protocol::rules::Decision;
use mesh_protocol::{Announcement, Manifest, ProductRef, Signed};
use mesh_storage::assemble::{self, Reuse};
use tokio::sync::mpsc;
use tracing::{info, warn, Instrument};

use mesh_contract::health::lifecycle_warnings;
use mesh_storage::ChunkStore;

mod error;
mod events;
mod peers;
mod schedule;
mod slots;

pub use error::FetchError;
use events::send;
pub use events::{FetchEvent, FetchOutcome};
use schedule::{batches, lock, ChunkFetch, MAX_BAD_CHUNKS, WINDOW};
use slots::PEER_WINDOW;

use crate::clock::unix_now_ms;
use crate::metrics::Metrics;
use crate::net::{ConnectionKind, NetworkHandle};
use crate::state::access::AccessBook;
use crate::state::catalog::{Catalog, CatalogEntry};
use crate::state::governance::{Governance, OwnNode};
use crate::state::outputs::OutputBook;
use crate::state::providers::Providers;
use crate::task::blocking;

/// Corrupt held chunks one fetch drops and fetches again, at most (each repair
/// re-reads the held chunks; more than this says the disk needs `mesh verify`).
const MAX_REPAIRS: usize = 16;
/// Bytes downloaded between background syncs during a fetch (2 MiB with the
/// `test-support` feature, so that tests of a few MiB run them).
const FLUSH_EVERY: u64 = if cfg!(feature = "test-support") {
    2 << 20
} else {
    128 << 20
};
/// Bytes downloaded between starts of writeback (`sync_file_range`, no waiting)
/// between those syncs: what the final sync must still write is at most this
/// much (with 128 MiB it was up to 128 MiB, 65-95 ms of every fetch's tail).
const WRITEBACK_EVERY: u64 = if cfg!(feature = "test-support") {
    512 << 10
} else {
    16 << 20
};
/// Products with at most this many files are written out while chunks arrive (one
/// open descriptor per file); larger ones are assembled from the store afterwards.
const MAX_STREAMED_FILES: usize = 256;

/// How a fetch writes its files.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchOptions {
    /// Replace files already at the product's paths even if they differ
    /// (`mesh fetch --force`); without it only identical ones.
    pub overwrite: bool,
    /// Keep the product's bytes only in the written files (`mesh fetch`'s default;
    /// `--copy` turns it off): downloaded chunks are verified and written there,
    /// not copied into the store's packs too, and the store records each as a
    /// range of the temporary file it landed in as it lands (moved to the final
    /// name at the end, see `ChunkStore::reference_file`). Every byte lands on disk
    /// once; an interrupted fetch leaves its temporary files, which the next fetch
    /// into the directory resumes from. Editing a file afterwards makes this node
    /// stop serving the changed chunks. Needs an output directory; a product of
    /// more than 256 files is fetched into the store as usual (the outcome says
    /// which happened).
    pub in_place: bool,
}

/// Everything a fetch uses: the network to ask providers, the catalog and
/// governance to resolve and check, the chunk store to fill.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    pub(crate) net: NetworkHandle,
    pub(crate) catalog: Catalog,
    /// Who else holds which versions (replicas), from provider records.
    pub(crate) providers: Providers,
    pub(crate) governance: Governance,
    pub(crate) chunks: Arc<ChunkStore>,
    /// Files written out earlier, that a new version's files start from.
    pub(crate) outputs: OutputBook,
    pub(crate) metrics: Metrics,
    /// Access decisions, which the rules read with the fetch rules.
    pub(crate) access: AccessBook,
    /// This node: a local copy is read only if the rules let it read the product.
    pub(crate) own: OwnNode,
}

impl Fetcher {
    /// Fetches `target` (latest version when none is given), verifies it, and writes
    /// its files under `out` if given, as `options` say.
    pub(crate) async fn fetch(
        &self,
        target: &ProductRef,
        out: Option<PathBuf>,
        options: FetchOptions,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, FetchError> {
        let span = tracing::info_span!("fetch", product = %target);
        self.fetch_inner(target, out, options, None, progress)
            .instrument(span)
            .await
    }

    /// Fetches only the files of `target` at the paths in `only` (verified as
    /// any fetch) into `out`: what a query reads. The version is not recorded
    /// as held here unless `only` names every file.
    pub(crate) async fn fetch_files(
        &self,
        target: &ProductRef,
        out: PathBuf,
        only: &BTreeSet<String>,
    ) -> Result<FetchOutcome, FetchError> {
        let span = tracing::info_span!("fetch", product = %target, files = only.len());
        let options = FetchOptions {
            overwrite: true,
            ..FetchOptions::default()
        };
        self.fetch_inner(target, Some(out), options, Some(only), None)
            .instrument(span)
            .await
    }

    /// Fetches and records the manifest of an announced product, if not yet known.
    pub(crate) async fn prefetch_manifest(&self, a: &Announcement) -> Result<(), FetchError> {
        if self.catalog.manifest(&a.manifest)?.is_some() {
            return Ok(());
        }
        let providers = self.candidate_providers(a).await?;
        self.fetch_manifest(&a.manifest, &providers)
            .await
            .map(|_| ())
    }

    /// Whether this node may read `manifest`'s product now, as every provider
    /// will judge: a local copy (chunks held, 0 bytes to transfer) is read under
    /// the current rules and grants too, never after a revocation.
    pub(crate) fn may_read(&self, manifest: &Manifest) -> Result<(), FetchError> {
        let grants = self.access.decisions_for(&manifest.id);
        match self
            .governance
            .own_copy_decision(&self.own, manifest, &grants, unix_now_ms())
        {
            Decision::Allow => Ok(()),
            Decision::Deny { rule, reason } => Err(FetchError::Denied(format!(
                "denied by rule {rule}: {reason} (this node's domain may not read {}@{} under the current rules and grants, so its local copy is not read either)",
                manifest.id, manifest.version
            ))),
        }
    }

    /// Whether `domain` may read `manifest`'s product now, as a provider would
    /// judge a node of that domain: for a consumer token of an output port.
    pub(crate) fn may_domain_read(
        &self,
        domain: &mesh_protocol::DomainName,
        manifest: &Manifest,
    ) -> Result<(), FetchError> {
        let grants = self.access.decisions_for(&manifest.id);
        match self
            .governance
            .domain_fetch_decision(Some(domain), manifest, &grants, unix_now_ms())
        {
            Decision::Allow => Ok(()),
            Decision::Deny { rule, reason } => Err(FetchError::Denied(format!(
                "denied by rule {rule}: {reason} (domain {domain} may not read {}@{} under the current rules and grants)",
                manifest.id, manifest.version
            ))),
        }
    }

    /// `target`'s catalog entry.
    pub(crate) fn resolve(&self, target: &ProductRef) -> Result<CatalogEntry, FetchError> {
        self.catalog
            .get(&target.id, target.version.as_ref())?
            .ok_or_else(|| FetchError::NotInCatalog(target.clone()))
    }

    /// A fetch in phases: resolve (catalog entry, providers, verified manifest),
    /// plan (held and missing chunks), prepare (output files, started from an
    /// earlier version's, and the download job), download, finish (verify what
    /// was held, write out, sync, record; a held chunk found corrupt is fetched
    /// again), then the outcome.
    async fn fetch_inner(
        &self,
        target: &ProductRef,
        out: Option<PathBuf>,
        options: FetchOptions,
        only: Option<&BTreeSet<String>>,
        progress: Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<FetchOutcome, FetchError> {
        if options.in_place && out.is_none() {
            return Err(FetchError::InPlaceNeedsOut);
        }
        let r = self.resolve_fetch(target, only).await?;
        let started = std::time::Instant::now();
        let (prepared, mut plan) = self.prepare(&r, out.as_ref(), &options).await?;
        let prepare = started.elapsed();
        send(
            &progress,
            FetchEvent::Resolved {
                product: r.label(),
                manifest: r.ann.manifest.to_string(),
                total_bytes: plan.total,
                missing_bytes: plan.missing_bytes,
                providers: r.providers.len(),
            },
        )
        .await;
        let started = std::time::Instant::now();
        let missing = std::mem::take(&mut plan.missing);
        self.download(&prepared.job, missing, 0, plan.total, &progress)
            .await?;
        let download = started.elapsed();
        let started = std::time::Instant::now();
        let (sync_time, reuse) = self
            .finish(&r, &mut plan, &prepared, out.clone(), &progress)
            .await?;
        let finish = started.elapsed();
        let outcome = self.outcome(&r, &prepared, plan.total, &reuse, out);
        self.metrics.fetches.inc();
        self.metrics.fetched_bytes.inc_by(outcome.transferred_bytes);
        info!(
            bytes = outcome.transferred_bytes,
            resumed_bytes = prepared.job.output.as_ref().map_or(0, |o| o.resumed()),
            reused_bytes = reuse.bytes(),
            cloned_files = reuse.cloned_files,
            prepare_ms = prepare.as_millis() as u64,
            download_ms = download.as_millis() as u64,
            write_out_ms = (finish - sync_time.min(finish)).as_millis() as u64,
            sync_ms = sync_time.as_millis() as u64,
            "fetched {}",
            r.label()
        );
        Ok(outcome)
    }

    /// Resolve: the catalog's entry for `target`, the providers to ask, and the
    /// manifest (held, or fetched), checked against the policy and the rules.
    async fn resolve_fetch(
        &self,
        target: &ProductRef,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Resolved, FetchError> {
        let ann = self.resolve(target)?.announcement;
        let providers = self.candidate_providers(&ann).await?;
        let (signed, manifest) = match self.catalog.manifest(&ann.manifest)? {
            Some((s, _)) => {
                let m = self
                    .governance
                    .check_manifest(&s)
                    .map_err(FetchError::Rejected)?;
                (s, m)
            }
            None => self.fetch_manifest(&ann.manifest, &providers).await?,
        };
        self.may_read(&manifest)?;
        let files = match only {
            Some(only) => manifest
                .files
                .iter()
                .filter(|f| only.contains(&f.path))
                .cloned()
                .collect(),
            None => manifest.files.clone(),
        };
        Ok(Resolved {
            whole: files.len() == manifest.files.len(),
            files,
            ann,
            providers,
            signed,
            manifest,
        })
    }

    /// Prepare: the output files (started from an earlier version's files where
    /// they are untouched, or, in place, from what an interrupted fetch left), then
    /// the plan (which chunks are held, those included) and the download job.
    async fn prepare(
        &self,
        r: &Resolved,
        out: Option<&PathBuf>,
        options: &FetchOptions,
    ) -> Result<(Prepared, ChunkPlan), FetchError> {
        let manifest = &r.manifest;
        // Confidential and personal data stay readable by this node's user only.
        let output_options = assemble::OutputOptions {
            private: manifest.classification >= Classification::Confidential,
            overwrite: options.overwrite,
        };
        // In place only when the files are written while chunks arrive.
        let in_place = options.in_place && r.whole && r.files.len() <= MAX_STREAMED_FILES;
        if options.in_place && !in_place {
            warn!(
                files = r.files.len(),
                "more than {MAX_STREAMED_FILES} files: fetching into the store, not in place"
            );
        }
        let bases = match out {
            Some(dir) if r.whole => self.bases(manifest, dir).await?,
            _ => Vec::new(),
        };
        let output = match out {
            Some(dir) if r.files.len() <= MAX_STREAMED_FILES => {
                let (files, dir, b) = (r.files.clone(), dir.clone(), bases.clone());
                let store = self.chunks.clone();
                let created = blocking(move || {
                    if in_place {
                        assemble::Output::create_referenced(
                            &files,
                            &dir,
                            output_options,
                            &b,
                            &store,
                        )
                    } else {
                        assemble::Output::create_over(&files, &dir, output_options, &b, &store)
                    }
                    .map_err(FetchError::Output)
                })
                .await?;
                Some(Arc::new(created))
            }
            _ => None,
        };
        let plan = ChunkPlan::of(&r.files, &self.chunks);
        let job = self.job(r, &plan, output, in_place).await?;
        let prepared = Prepared {
            output_options,
            in_place,
            bases,
            job,
        };
        Ok((prepared, plan))
    }

    /// Files of an earlier version this node wrote (in `dir`, or elsewhere) and
    /// that are untouched since: the new files start from them. Only hints: if
    /// their records cannot be read, every byte is written.
    async fn bases(
        &self,
        manifest: &Manifest,
        dir: &std::path::Path,
    ) -> Result<Vec<Option<assemble::Base>>, FetchError> {
        let (outputs, catalog) = (self.outputs.clone(), self.catalog.clone());
        let (id, files, dir) = (manifest.id.clone(), manifest.files.clone(), dir.to_owned());
        blocking(move || {
            Ok::<_, FetchError>(
                outputs
                    .bases(&catalog, &id, &files, &dir)
                    .unwrap_or_else(|e| {
                        warn!("reading the records of earlier outputs: {e}; writing every byte");
                        Vec::new()
                    }),
            )
        })
        .await
    }

    /// The download job: a provider reached only through a relay gets one batch
    /// in flight at a time (see `slots::RELAYED_WINDOW`); direct ones take the bulk.
    async fn job(
        &self,
        r: &Resolved,
        plan: &ChunkPlan,
        output: Option<Arc<assemble::Output>>,
        in_place: bool,
    ) -> Result<Arc<ChunkFetch>, FetchError> {
        let inflight = self
            .net
            .connected()
            .await?
            .into_iter()
            .filter(|(_, kind)| *kind == ConnectionKind::Relayed)
            .map(|(peer, _)| (peer, slots::Slots::relayed()))
            .collect();
        Ok(Arc::new(ChunkFetch {
            net: self.net.clone(),
            chunks: self.chunks.clone(),
            manifest: r.ann.manifest,
            providers: r.providers.clone(),
            bad: Mutex::new(HashMap::new()),
            lacking: Mutex::new(std::collections::HashSet::new()),
            inflight: Mutex::new(inflight),
            slot_freed: tokio::sync::Notify::new(),
            used: Mutex::new(BTreeMap::new()),
            answer_us: AtomicU64::new(0),
            done: AtomicU64::new(plan.total - plan.missing_bytes.min(plan.total)),
            transferred: AtomicU64::new(0),
            output,
            in_place,
        }))
    }

    /// Finish: downloaded chunks were verified on arrival (and written out then,
    /// if streaming); the chunks already held are read and verified from disk now,
    /// so a corrupt store is never reported as whole. A held chunk that fails here
    /// (this node's own disk's damage) is dropped, the product unmarked, and the
    /// chunk fetched again from peers, up to [`MAX_REPAIRS`] times.
    async fn finish(
        &self,
        r: &Resolved,
        plan: &mut ChunkPlan,
        p: &Prepared,
        out: Option<PathBuf>,
        progress: &Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<(std::time::Duration, Reuse), FetchError> {
        let mut repaired = 0usize;
        loop {
            let work = Finishing {
                chunks: self.chunks.clone(),
                catalog: self.catalog.clone(),
                outputs: self.outputs.clone(),
                signed: r.signed.clone(),
                manifest: r.manifest.clone(),
                files: r.files.clone(),
                whole: r.whole,
                hash: r.ann.manifest,
                output: p.job.output.clone(),
                out: out.clone(),
                held: plan.held.clone(),
                bases: p.bases.clone(),
                options: p.output_options,
                in_place: p.in_place,
            };
            let finished = blocking(move || work.run()).await;
            let bad = match &finished {
                Err(e) if repaired < MAX_REPAIRS => corrupt_chunk(e),
                _ => None,
            };
            let Some((c, changed)) = bad.and_then(|(bad, f)| Some((r.manifest.chunk(&bad)?, f)))
            else {
                return finished;
            };
            self.repair(r, plan, p, c, changed, progress).await?;
            repaired += 1;
        }
    }

    /// Drops held chunk `c` (found corrupt) and, when it was a range of a file
    /// kept in place (`changed`), every chunk of that file that no longer verifies
    /// and every chunk of files that are gone (an earlier output deleted: one
    /// round, not one per chunk); unmarks the versions that lose a chunk and
    /// fetches again the dropped chunks this fetch needs.
    async fn repair(
        &self,
        r: &Resolved,
        plan: &mut ChunkPlan,
        p: &Prepared,
        c: ChunkRef,
        changed: Option<PathBuf>,
        progress: &Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<(), FetchError> {
        let (chunks, catalog, hash) = (self.chunks.clone(), self.catalog.clone(), r.ann.manifest);
        let dropped = blocking(
            move || -> Result<HashSet<mesh_protocol::Hash>, FetchError> {
                let mut dropped: HashSet<_> = match &changed {
                    Some(path) => chunks.drop_changed(Some(path))?.into_iter().collect(),
                    None => HashSet::new(),
                };
                chunks.remove(&c.hash)?;
                dropped.insert(c.hash);
                catalog.unmark_complete(&hash)?;
                catalog.recheck_complete(&chunks)?;
                catalog.flush()?;
                Ok(dropped)
            },
        )
        .await?;
        let mut seen = HashSet::new();
        let again: Vec<ChunkRef> = r
            .files
            .iter()
            .flat_map(|f| f.chunks.iter().copied())
            .filter(|c| dropped.contains(&c.hash) && seen.insert(c.hash))
            .collect();
        warn!(
            chunk = %c.hash.short(),
            dropped = dropped.len(),
            fetching = again.len(),
            "chunks held here fail verification or their files changed or went: dropped, the versions that needed them marked incomplete, fetching them again"
        );
        plan.held.retain(|h| !dropped.contains(h));
        let bytes: u64 = again.iter().map(|c| u64::from(c.len)).sum();
        p.job.done.fetch_sub(bytes, Ordering::Relaxed);
        self.download(&p.job, again, usize::MAX / 2, plan.total, progress)
            .await
    }

    /// What a finished fetch tells its caller.
    fn outcome(
        &self,
        r: &Resolved,
        p: &Prepared,
        total: u64,
        reuse: &Reuse,
        out: Option<PathBuf>,
    ) -> FetchOutcome {
        let job = &p.job;
        let served: BTreeMap<String, u64> = lock(&job.used)
            .iter()
            .map(|(p, b)| (p.to_string(), *b))
            .collect();
        FetchOutcome {
            product: r.manifest.id.to_string(),
            version: r.manifest.version.to_string(),
            manifest: r.ann.manifest.to_string(),
            files: r.files.len(),
            size: total,
            transferred_bytes: job.transferred.load(Ordering::Relaxed),
            reused_bytes: reuse.bytes(),
            cloned_files: reuse.cloned_files,
            verified: true,
            in_place: p.in_place,
            out,
            delivered: None,
            providers: served.keys().cloned().collect(),
            served,
            banned: lock(&job.bad)
                .iter()
                .filter(|(_, n)| **n >= MAX_BAD_CHUNKS)
                .map(|(p, _)| p.to_string())
                .collect(),
            flags: self.governance.violations(&r.manifest),
            warnings: lifecycle_warnings(&r.manifest),
        }
    }

    /// Downloads `missing` through `job`'s providers, reporting progress; on a
    /// failure removes the output's temporary files before returning. Batches are
    /// numbered from `first_batch`.
    async fn download(
        &self,
        job: &Arc<ChunkFetch>,
        missing: Vec<ChunkRef>,
        first_batch: usize,
        total: u64,
        progress: &Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<(), FetchError> {
        // Batch 0 marks the start of a fetch (providers count it as one use).
        let numbered = batches(missing)
            .into_iter()
            .enumerate()
            .map(|(i, b)| (i + first_batch, b));
        let mut results = futures::stream::iter(numbered)
            .map(|(i, batch)| {
                let job = job.clone();
                async move { job.fetch_batch(i, batch).await }
            })
            .buffer_unordered(WINDOW.min(PEER_WINDOW * job.providers.len().max(1)));
        let mut writeback = Writeback::new(self.chunks.clone(), job.output.clone());
        let abandon = |e: FetchError| {
            // Batches still running on other threads hold the output; remove its
            // temporary files before reporting, not when the last one ends.
            if let Some(output) = &job.output {
                output.abandon();
            }
            e
        };
        while let Some(r) = results.next().await {
            r.map_err(abandon)?;
            let got = job.transferred.load(Ordering::Relaxed);
            writeback.after(got).await.map_err(abandon)?;
            send(
                progress,
                FetchEvent::Progress {
                    done_bytes: job.done.load(Ordering::Relaxed),
                    total_bytes: total,
                },
            )
            .await;
        }
        drop(results);
        writeback.finish().await.map_err(abandon)
    }
}

/// Writeback overlapping a download, so that the final syncs find little left:
/// every [`WRITEBACK_EVERY`] bytes one background task starts writing back the
/// store's packs and the output files, and every [`FLUSH_EVERY`] bytes it syncs
/// the store instead (never two tasks at once). A failed sync fails the fetch:
/// after an I/O error a later fsync may report success for pages already lost.
struct Writeback {
    chunks: Arc<ChunkStore>,
    output: Option<Arc<assemble::Output>>,
    running: Option<tokio::task::JoinHandle<Result<(), FetchError>>>,
    started_at: u64,
    synced_at: u64,
}

impl Writeback {
    fn new(chunks: Arc<ChunkStore>, output: Option<Arc<assemble::Output>>) -> Self {
        Writeback {
            chunks,
            output,
            running: None,
            started_at: 0,
            synced_at: 0,
        }
    }

    /// Called as the download has `got` bytes: starts the next round if due and
    /// the last one is over (reporting its failure).
    async fn after(&mut self, got: u64) -> Result<(), FetchError> {
        if got < self.started_at + WRITEBACK_EVERY
            || self.running.as_ref().is_some_and(|t| !t.is_finished())
        {
            return Ok(());
        }
        self.finish().await?;
        self.started_at = got;
        let sync = got >= self.synced_at + FLUSH_EVERY;
        if sync {
            self.synced_at = got;
        }
        let (chunks, output) = (self.chunks.clone(), self.output.clone());
        self.running = Some(tokio::task::spawn_blocking(move || {
            if sync {
                chunks.sync()?;
            } else {
                chunks.start_writeback()?;
            }
            // The output files' final fsync (which alone makes them durable) is
            // then short.
            if let Some(output) = output {
                output.start_writeback()?;
            }
            Ok(())
        }));
        Ok(())
    }

    /// Waits for the round under way, if any; its outcome.
    async fn finish(&mut self) -> Result<(), FetchError> {
        match self.running.take() {
            Some(t) => t.await.map_err(|e| FetchError::Task(e.into()))?,
            None => Ok(()),
        }
    }
}

/// What resolving a fetch found.
struct Resolved {
    ann: Announcement,
    providers: Vec<PeerId>,
    signed: Signed<Manifest>,
    manifest: Manifest,
    /// The files to fetch: every file of the manifest, or those asked for.
    files: Vec<FileEntry>,
    /// Whether `files` is every file (only then is the version held after).
    whole: bool,
}

impl Resolved {
    /// `domain/name@version`.
    fn label(&self) -> String {
        format!("{}@{}", self.manifest.id, self.manifest.version)
    }
}

/// Which chunks a fetch needs: each distinct chunk once, held already or missing.
struct ChunkPlan {
    held: Vec<mesh_protocol::Hash>,
    missing: Vec<ChunkRef>,
    total: u64,
    missing_bytes: u64,
}

impl ChunkPlan {
    fn of(files: &[FileEntry], chunks: &ChunkStore) -> ChunkPlan {
        let mut seen = HashSet::new();
        let (mut missing, mut held) = (Vec::new(), Vec::new());
        for c in files.iter().flat_map(|f| f.chunks.iter().copied()) {
            if seen.insert(c.hash) {
                if chunks.has(&c.hash) {
                    held.push(c.hash);
                } else {
                    missing.push(c);
                }
            }
        }
        ChunkPlan {
            held,
            missing_bytes: missing.iter().map(|c| u64::from(c.len)).sum(),
            missing,
            total: files.iter().map(|f| f.size).sum(),
        }
    }
}

/// The output and the download job, ready.
struct Prepared {
    output_options: assemble::OutputOptions,
    in_place: bool,
    bases: Vec<Option<assemble::Base>>,
    job: Arc<ChunkFetch>,
}

/// The finishing work, on the blocking pool.
struct Finishing {
    chunks: Arc<ChunkStore>,
    catalog: Catalog,
    outputs: OutputBook,
    signed: Signed<Manifest>,
    manifest: Manifest,
    /// The files fetched, and whether they are all of the manifest's.
    files: Vec<FileEntry>,
    whole: bool,
    hash: mesh_protocol::ManifestHash,
    output: Option<Arc<assemble::Output>>,
    out: Option<PathBuf>,
    held: Vec<mesh_protocol::Hash>,
    bases: Vec<Option<assemble::Base>>,
    options: assemble::OutputOptions,
    in_place: bool,
}

impl Finishing {
    /// Verifies (and writes out) the held chunks, syncs the store then the
    /// output, records the version as held and the written files for the next
    /// version. Returns the sync time and what earlier files were reused.
    fn run(self) -> Result<(std::time::Duration, Reuse), FetchError> {
        let Finishing {
            chunks,
            catalog,
            outputs,
            signed,
            manifest,
            files,
            whole,
            hash,
            output,
            out,
            held,
            bases,
            options,
            in_place,
        } = self;
        let files = &files;
        // Held chunks already in place from a base are not written again.
        let mut written = None;
        match (&output, &out) {
            (Some(output), _) => output.fill_from_store(&chunks, &held)?,
            (None, Some(dir)) => {
                written = Some(assemble::write_files(files, &chunks, dir, options, &bases)?);
            }
            (None, None) => {
                // Only the store's copy is checked: nothing is written.
                for hash in &held {
                    chunks.get_checked(hash, u64::from(MAX_CHUNK_LEN))?;
                }
            }
        }
        if !in_place {
            keep_copies(&chunks, &held)?;
        }
        // The store's packs first (an fsync of each written), then the output
        // files, synced by `commit` before they are renamed.
        let synced_from = std::time::Instant::now();
        chunks.sync()?;
        let sync_time = synced_from.elapsed();
        let mut replaced = 0usize;
        if let Some(output) = &output {
            output.commit()?;
            if in_place {
                // The files are whole and synced: the store now records every
                // chunk as a range of them, durable before the version is held.
                for (f, dest) in files.iter().zip(output.paths()) {
                    replaced += chunks.reference_file(dest, &f.chunks)?.len();
                }
                chunks.sync()?;
            }
        }
        catalog.record_manifest(&signed, &manifest)?;
        if !whole {
            // Some files only (a query's): the version is not held here.
            catalog.flush()?;
            return Ok((sync_time, output.map(|o| o.reuse()).unwrap_or_default()));
        }
        catalog.mark_complete(&hash)?;
        if replaced > 0 {
            // Files an earlier in-place fetch wrote were replaced: the versions
            // that needed their other bytes are not held now.
            let gone = catalog.recheck_complete(&chunks)?;
            info!(
                replaced,
                versions = gone.len(),
                "in place over an earlier version's files: it is no longer held here"
            );
        }
        let mut reuse = Reuse::default();
        if let Some(o) = output.as_deref().or(written.as_ref()) {
            let dests: Vec<PathBuf> = o.paths().map(PathBuf::from).collect();
            // A hint for the next version: losing it costs a full write.
            if let Err(e) = outputs.record(&manifest.id, &hash, files, &dests, unix_now_ms()) {
                warn!("recording the written files for the next version: {e}");
            }
            reuse = o.reuse();
        }
        catalog.flush()?;
        Ok((sync_time, reuse))
    }
}

/// A fetch with a copy (`--copy`, subscriptions): the held chunks this node kept
/// only as ranges of files (an earlier in-place fetch or publish) are copied into
/// the store's packs, so the version outlives those files, as asked.
fn keep_copies(chunks: &ChunkStore, held: &[mesh_protocol::Hash]) -> Result<(), FetchError> {
    for hash in held.iter().filter(|h| chunks.is_referenced(h)) {
        let data = chunks.get_verified(hash, u64::from(MAX_CHUNK_LEN))?;
        chunks.keep_copy(hash, &data)?;
    }
    Ok(())
}

/// The chunk whose stored bytes failed verification, if that is what `e` says,
/// and the file it was kept in, if it was a range of one that changed or went.
fn corrupt_chunk(e: &FetchError) -> Option<(mesh_protocol::Hash, Option<PathBuf>)> {
    use mesh_storage::assemble::AssembleError;
    use mesh_storage::ChunkError;
    let source = match e {
        FetchError::State(crate::state::StateError::Chunk(source))
        | FetchError::Output(AssembleError::Chunk { source, .. }) => source,
        _ => return None,
    };
    match source {
        ChunkError::Corrupt { expected, .. } => Some((*expected, None)),
        ChunkError::SourceChanged { hash, path } => Some((*hash, Some(path.clone()))),
        _ => None,
    }
}
