//! Derived products: a product whose data is a SQL query over other products
//! (`[derive] sql` in its `product.toml`), computed and published by this node,
//! on `mesh derive` and, by the daemon, whenever an input publishes a new version.
//!
//! One computation, in steps: [`prepare`](super::query::prepare) the inputs as any
//! query (fetched, verified, this node's rules and grants); stop if they are the
//! ones the last computation read; run the query on one partition into a Parquet
//! file whose bytes depend only on the inputs (`engine::write_parquet`); stop if
//! they are the bytes last published (deduplicated, nothing republished); check
//! the file against the product's own contract, and publish nothing if it breaks
//! it (the reason is kept for `mesh derived`, `mesh show` and the catalog);
//! otherwise publish the next version, its lineage pinned to the inputs' manifest
//! hashes and the query's hash in its manifest (`Manifest::derivation`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_contract::draft::{DeriveDraft, UpstreamDraft};
use mesh_contract::engine;
use mesh_contract::ManifestDraft;
use mesh_protocol::manifest::Upstream;
use mesh_protocol::{Hash, ProductId};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::fetch::Fetcher;
use super::publish::{PublishOptions, Publisher};
use super::query::{self, Prepared, Reader, QUERY_DEADLINE};
use crate::clock::unix_now_ms;
use crate::home::HomeError;
use crate::net::NetworkHandle;
use crate::state::catalog::Catalog;
use crate::state::derived::{DeriveState, DerivedBook, DerivedProduct};
use crate::state::StateError;
use crate::task::{blocking, TaskError};

/// How often the deriver looks again without news (a transient failure retried).
const TICK: Duration = Duration::from_secs(30);

/// Why a derived product could not be registered or run.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The draft is not a derived product this node can compute.
    #[error("{0}")]
    Usage(String),
    /// No derived product of that id on this node.
    #[error(
        "{0} is not a derived product of this node: register it with `mesh derive product.toml`"
    )]
    NotFound(ProductId),
    /// This node's store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A blocking step failed (a bug, or shutdown).
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// Everything a computation uses.
#[derive(Debug, Clone)]
pub(crate) struct Deriver {
    pub(crate) fetcher: Fetcher,
    pub(crate) publisher: Publisher,
    pub(crate) net: NetworkHandle,
    pub(crate) book: DerivedBook,
    pub(crate) catalog: Catalog,
    /// The node home (queries' files under `query/`, computations under `derived/`).
    pub(crate) root: PathBuf,
    /// Held shared while a computation runs (GC holds it exclusively).
    pub(crate) work_lock: Arc<RwLock<()>>,
    /// One computation at a time: `mesh derive` and the daemon's loop never
    /// compute (and publish) the same product at once.
    pub(crate) running: Arc<tokio::sync::Mutex<()>>,
}

/// The draft's query, or why it has none.
fn query_of(draft: &ManifestDraft) -> Result<String, DeriveError> {
    match draft.derive.as_ref().and_then(|d| d.sql.clone()) {
        Some(sql) if !sql.trim().is_empty() => Ok(sql),
        _ => Err(DeriveError::Usage(format!(
            "{}: product.toml has no [derive] query: add [derive] with sql = \"SELECT ...\" (or sql_file, which `mesh derive` reads)",
            draft.id
        ))),
    }
}

fn parse(draft_toml: &str) -> Result<ManifestDraft, DeriveError> {
    toml::from_str(draft_toml).map_err(|e| DeriveError::Usage(format!("product.toml: {e}")))
}

/// The version after the newest published one, or the draft's if it is newer.
fn next_version(draft: &str, newest: Option<&semver::Version>) -> Result<String, DeriveError> {
    let declared = semver::Version::parse(draft)
        .map_err(|e| DeriveError::Usage(format!("version {draft:?}: {e}")))?;
    Ok(match newest {
        Some(n) if *n >= declared => semver::Version::new(n.major, n.minor, n.patch + 1),
        _ => declared,
    }
    .to_string())
}

/// The draft as published: the version, the inputs pinned, the query inline.
fn publish_draft(
    mut draft: ManifestDraft,
    version: String,
    sql: &str,
    inputs: &[Upstream],
) -> Result<String, DeriveError> {
    draft.version = version;
    draft.lineage = inputs
        .iter()
        .map(|u| UpstreamDraft {
            id: u.id.to_string(),
            manifest: u.manifest.map(|h| h.to_string()),
        })
        .collect();
    draft.derive = Some(DeriveDraft {
        sql: Some(sql.to_string()),
        sql_file: None,
    });
    toml::to_string(&draft).map_err(|e| DeriveError::Usage(format!("product.toml: {e}")))
}

/// BLAKE3 of a file, hex.
fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

impl Deriver {
    /// Registers (or replaces) the derived product `draft_toml` describes; a
    /// changed draft is computed again.
    async fn register(&self, draft_toml: String) -> Result<DerivedProduct, DeriveError> {
        let draft = parse(&draft_toml)?;
        let id: ProductId = draft
            .id
            .parse()
            .map_err(|e| DeriveError::Usage(format!("id {:?}: {e}", draft.id)))?;
        if id.domain() != &self.publisher.domain {
            return Err(DeriveError::Usage(format!(
                "{id} belongs to domain {}, and this node publishes for {}: derive it on a node of its domain",
                id.domain(),
                self.publisher.domain
            )));
        }
        let sql = query_of(&draft)?;
        let refs = query::references(&sql)
            .map_err(|e| DeriveError::Usage(format!("{id}: the [derive] query: {e}")))?;
        if refs.iter().any(|r| r.product.id == id) {
            return Err(DeriveError::Usage(format!(
                "{id}'s query reads {id} itself: a derived product is computed from other products"
            )));
        }
        let book = self.book.clone();
        blocking(move || {
            let record = match book.get(&id)? {
                Some(old) if old.draft == draft_toml => old,
                // A new or changed draft is computed and published afresh (a
                // changed contract needs a version even for the same bytes).
                _ => DerivedProduct::new(id, draft_toml, unix_now_ms()),
            };
            if !book.put(&record)? {
                return Err(DeriveError::Usage(format!(
                    "this node computes at most {} derived products",
                    crate::state::derived::MAX_DERIVED
                )));
            }
            Ok(record)
        })
        .await
    }

    /// Computes `id` now and publishes it if its result changed (`force`:
    /// computes even when its inputs did not; the same bytes still publish
    /// nothing); returns where it stands.
    pub(crate) async fn run(
        &self,
        id: &ProductId,
        force: bool,
    ) -> Result<DerivedProduct, DeriveError> {
        let _one_at_a_time = self.running.lock().await;
        self.run_locked(id, force).await
    }

    /// [`Deriver::register`], then [`Deriver::run`], with no computation by the
    /// daemon's loop in between.
    pub(crate) async fn register_and_run(
        &self,
        draft_toml: String,
    ) -> Result<DerivedProduct, DeriveError> {
        let _one_at_a_time = self.running.lock().await;
        let d = self.register(draft_toml).await?;
        self.run_locked(&d.product, false).await
    }

    /// [`Deriver::run`] with the computation lock held.
    async fn run_locked(&self, id: &ProductId, force: bool) -> Result<DerivedProduct, DeriveError> {
        let _shared_work = self.work_lock.read().await;
        let book = self.book.clone();
        let key = id.clone();
        let mut record = blocking(move || Ok::<_, DeriveError>(book.get(&key)?))
            .await?
            .ok_or_else(|| DeriveError::NotFound(id.clone()))?;
        record.attempted = self.resolved(&record);
        let state = match self.compute(&mut record, force).await {
            Ok(state) => state,
            Err(failed) => failed,
        };
        match &state {
            DeriveState::Failed { reason, .. } => {
                warn!(product = %id, "derived product not published: {reason}")
            }
            DeriveState::Published { version } => {
                info!(product = %id, %version, "derived product published")
            }
            _ => {}
        }
        record.state = state;
        record.updated_ms = unix_now_ms();
        let book = self.book.clone();
        let saved = record.clone();
        blocking(move || Ok::<_, DeriveError>(book.put(&saved)?)).await?;
        Ok(record)
    }

    /// One computation (see the module documentation); a failure is the state
    /// to record. Updates the record's inputs and output as it goes.
    async fn compute(
        &self,
        record: &mut DerivedProduct,
        force: bool,
    ) -> Result<DeriveState, DeriveState> {
        let failed = |reason: String, transient: bool| DeriveState::Failed { reason, transient };
        let draft = parse(&record.draft).map_err(|e| failed(e.to_string(), false))?;
        let sql = query_of(&draft).map_err(|e| failed(e.to_string(), false))?;
        let prepared = query::prepare(&self.fetcher, &self.root, &sql, &Reader::Node)
            .await
            .map_err(|e| {
                let unavailable = matches!(
                    &e,
                    query::QueryError::Product { source, .. }
                        if matches!(**source, super::fetch::FetchError::Unavailable(_))
                );
                failed(e.to_string(), unavailable)
            })?;
        let inputs = prepared.inputs();
        let current = self
            .catalog
            .get(&record.product, None)
            .map_err(|e| failed(e.to_string(), true))?
            .map(|e| e.announcement.version);
        let settled = matches!(
            record.state,
            DeriveState::Published { .. } | DeriveState::Unchanged { .. }
        );
        if !force && settled && inputs == record.inputs {
            return Ok(DeriveState::Unchanged {
                version: current.map(|v| v.to_string()),
            });
        }
        record.inputs = inputs.clone();
        let dir = self
            .root
            .join("derived")
            .join(hex::encode(rand::random::<[u8; 8]>()));
        let outcome = self
            .compute_in(&dir, record, draft, &sql, prepared, current.as_ref())
            .await;
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!("removing {}: {e}", dir.display());
            }
        }
        outcome
    }

    /// The computation's file in `dir`, checked and published.
    #[allow(clippy::too_many_arguments)]
    async fn compute_in(
        &self,
        dir: &Path,
        record: &mut DerivedProduct,
        draft: ManifestDraft,
        sql: &str,
        prepared: Prepared,
        current: Option<&semver::Version>,
    ) -> Result<DeriveState, DeriveState> {
        let failed = |reason: String| DeriveState::Failed {
            reason,
            transient: false,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        let name = format!("{}.parquet", record.product.name());
        let file = dir.join(&name);
        // The query and the hash of its file, then the check: file work, off the
        // async workers.
        let (query, path) = (sql.to_string(), file.clone());
        let (rows, hash) = blocking(move || {
            let out = path.clone();
            let rows = engine::run(QUERY_DEADLINE, move || async move {
                let ctx = engine::deterministic_session()?;
                prepared.register(&ctx).await?;
                engine::write_parquet(&ctx, &query, &out).await
            })?;
            let hash = file_hash(&path).map_err(HomeError::io(&path))?;
            Ok::<_, query::QueryError>((rows, hash))
        })
        .await
        .map_err(|e| failed(e.to_string()))?;
        if record.output.as_deref() == Some(hash.as_str()) {
            return Ok(DeriveState::Unchanged {
                version: current.map(|v| v.to_string()),
            });
        }
        let checked = draft.clone();
        let report = blocking(move || {
            checked
                .check_data(&[(name, file.clone())])
                .map_err(|e| query::QueryError::from(HomeError::io(&file)(e)))
        })
        .await
        .map_err(|e| failed(format!("reading the result to check it: {e}")))?;
        if !report.kept() {
            return Err(failed(format!(
                "the result ({rows} rows) breaks the product's contract, so nothing was published: {}",
                report.lines().join("; ")
            )));
        }
        let version = next_version(&draft.version, current).map_err(|e| failed(e.to_string()))?;
        let toml = publish_draft(draft, version.clone(), sql, &record.inputs)
            .map_err(|e| failed(e.to_string()))?;
        let (publisher, path) = (self.publisher.clone(), dir.to_path_buf());
        let (_, envelope) =
            blocking(move || publisher.publish(&path, &toml, PublishOptions::default()))
                .await
                .map_err(|e| failed(e.to_string()))?;
        if let Err(e) = self.net.announce(envelope).await {
            warn!(product = %record.product, "announcing the derived version: {e}");
        }
        record.output = Some(hash);
        Ok(DeriveState::Published { version })
    }

    /// The manifest hash of the version each product `d`'s query names resolves
    /// to in the catalog now (those not in the catalog left out), sorted.
    fn resolved(&self, d: &DerivedProduct) -> Vec<Hash> {
        let refs = parse(&d.draft)
            .and_then(|draft| query_of(&draft))
            .ok()
            .and_then(|sql| query::references(&sql).ok())
            .unwrap_or_default();
        let mut out: Vec<Hash> = refs
            .iter()
            .filter_map(|r| self.fetcher.resolve(&r.product).ok())
            .map(|entry| entry.announcement.manifest)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether `d` should be computed now: never computed, a transient failure,
    /// or its query resolves to other versions than at the last attempt (so a
    /// failure that is not transient, a denied input say, waits for news).
    fn due(&self, d: &DerivedProduct) -> bool {
        match &d.state {
            DeriveState::Waiting
            | DeriveState::Failed {
                transient: true, ..
            } => true,
            _ => self.resolved(d) != d.attempted,
        }
    }

    /// The daemon's loop: computes each derived product when it is due, woken by
    /// catalog changes (an input's new version), a new registration, or a tick.
    pub(crate) async fn watch(self, shutdown: CancellationToken) {
        let (updates, changes) = (self.catalog.updates(), self.book.changes());
        loop {
            let (changed, registered) = (updates.notified(), changes.notified());
            tokio::pin!(changed, registered);
            changed.as_mut().enable();
            registered.as_mut().enable();
            let book = self.book.clone();
            let all = blocking(move || Ok::<_, DeriveError>(book.all()?))
                .await
                .unwrap_or_else(|e| {
                    warn!("derived products: {e}");
                    Vec::new()
                });
            // With no derived product, catalog changes need no pass.
            let watching = !all.is_empty();
            for d in all.iter().filter(|d| self.due(d)) {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = self.run(&d.product, false) => if let Err(e) = r {
                        warn!(product = %d.product, "derived product: {e}");
                    },
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changed, if watching => {}
                _ = registered => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_version_follows_the_newest_published_one() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        assert_eq!(next_version("1.0.0", None).unwrap(), "1.0.0");
        assert_eq!(next_version("1.0.0", Some(&v("1.0.0"))).unwrap(), "1.0.1");
        assert_eq!(next_version("1.0.0", Some(&v("1.3.7"))).unwrap(), "1.3.8");
        assert_eq!(next_version("2.0.0", Some(&v("1.3.7"))).unwrap(), "2.0.0");
        assert!(next_version("one", None).is_err());
    }
}
