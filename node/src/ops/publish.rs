//! Publishing: turns files plus a `product.toml` draft into a signed manifest and a
//! signed announcement, after checking the draft, the domain and the policy.
//!
//! Nothing is written until the draft is valid, the key is registered and the policy
//! (unexpired; its publish rules; schema evolution against the previous version)
//! allows it; chunks are stored as they are cut; the manifest and catalog entry are
//! flushed before the publish is acknowledged. [`Publisher::check`] runs the same checks as a
//! dry run.

use std::fs;
use std::path::{Path, PathBuf};

use mesh_contract::{ManifestDraft, PublishFacts};
use mesh_protocol::manifest::{FileEntry, Quality};
use mesh_protocol::policy::QualityEnforcement;
use mesh_protocol::rules::Decision;
use mesh_protocol::{Announcement, Manifest, Signed};
use serde::Serialize;

use libp2p::PeerId;
use mesh_protocol::{DomainName, KeyPair};
use mesh_storage::ChunkStore;
use std::sync::Arc;

use super::found::Found;
use crate::clock::{unix_now, unix_now_ms};
use crate::state::catalog::Catalog;
use crate::state::governance::Governance;
use crate::state::{OfferError, StateError};
use crate::task::TaskError;

/// A publish that was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The `product.toml` draft has missing or invalid fields.
    #[error("invalid manifest: {}", .0.join("; "))]
    InvalidManifest(Vec<String>),
    /// The data breaks the contract its manifest declares (and the policy refuses
    /// such publishes).
    #[error("the data breaks its contract:\n  {}", .0.join("\n  "))]
    Quality(Vec<String>),
    /// The request cannot be carried out as asked (wrong domain, version already
    /// published, no key, unreadable data path); the message says how to fix it.
    #[error("{0}")]
    Request(String),
    /// The mesh policy refuses it; the message names the rule.
    #[error("{0}")]
    Refused(String),
    /// This node's own state failed (disk full, database error).
    #[error(transparent)]
    State(#[from] StateError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// Reading the data from object storage failed (the message names the
    /// endpoint and the bucket).
    #[error(transparent)]
    Objects(#[from] mesh_storage::objects::ObjectError),
}

impl From<mesh_storage::ChunkError> for PublishError {
    fn from(e: mesh_storage::ChunkError) -> Self {
        PublishError::State(e.into())
    }
}

impl From<mesh_storage::StoreError> for PublishError {
    fn from(e: mesh_storage::StoreError) -> Self {
        PublishError::State(e.into())
    }
}

impl From<OfferError> for PublishError {
    fn from(e: OfferError) -> Self {
        match e {
            OfferError::Invalid(i) => PublishError::Refused(i.to_string()),
            OfferError::OverLimit(why) => PublishError::Refused(why),
            OfferError::Store(s) => PublishError::State(s),
        }
    }
}

/// The contract's problems as `mesh contract lint` lists them refuse the publish:
/// what lint calls an error would be published as the product's contract.
fn lint_contract(probe: &Manifest, domain: &DomainName) -> Result<(), PublishError> {
    let Some(contract) = &probe.contract else {
        return Ok(());
    };
    let lint = mesh_contract::odcs::lint(&contract.document, Some(domain.as_str()));
    if lint.errors.is_empty() {
        return Ok(());
    }
    Err(PublishError::InvalidManifest(
        lint.errors
            .iter()
            .map(|e| format!("contract: {e} (`mesh contract lint` lists every problem)"))
            .collect(),
    ))
}

/// Everything a publish uses: the catalog, governance and chunk store to write to,
/// and the domain, key and peer id it publishes as.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    pub(crate) catalog: Catalog,
    pub(crate) governance: Governance,
    pub(crate) chunks: Arc<ChunkStore>,
    pub(crate) domain: DomainName,
    /// The domain's publisher key, if this home holds one, and where it is expected.
    pub(crate) key: Option<Arc<KeyPair>>,
    pub(crate) key_path: PathBuf,
    /// This node, named as the first provider of what it publishes.
    pub(crate) peer_id: PeerId,
    /// Where each publish's OpenLineage event goes, if configured.
    pub(crate) lineage: Option<super::lineage::LineageSink>,
}

/// The outcome of a publish.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Published {
    /// `domain/name`.
    pub product: String,
    /// Version.
    pub version: String,
    /// Manifest hash.
    pub manifest: String,
    /// Files.
    pub files: usize,
    /// Total bytes.
    pub size: u64,
    /// Bytes of chunks this node did not already hold.
    pub new_bytes: u64,
    /// Number of chunks.
    pub chunks: usize,
    /// Contract violations in the data, when the policy publishes them with a warning.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Each quality rule of the contract: measured value, pass, fail or not
    /// evaluated.
    #[serde(default)]
    pub rules: Vec<mesh_protocol::manifest::RuleOutcome>,
    /// The chunks are served from the published files in place, not from copies.
    #[serde(default)]
    pub in_place: bool,
}

/// How a publish stores the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PublishOptions {
    /// Record the chunks as ranges of the published files instead of copying them
    /// into the store (like kubo's filestore): no second copy on disk, and the node
    /// serves the version only while those files keep their bytes.
    #[serde(default)]
    pub in_place: bool,
}

/// Most files one product may have.
const MAX_FILES: usize = 100_000;

/// An error mapper for a data path that cannot be read.
fn unreadable(p: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |e| PublishError::Request(format!("cannot read {}: {e}", p.display()))
}

/// A file name as the manifest will carry it; a name that is not UTF-8 is refused
/// rather than silently changed (two such names would otherwise collide).
fn utf8_name(name: &std::ffi::OsStr, path: &Path) -> Result<String, PublishError> {
    name.to_str().map(str::to_owned).ok_or_else(|| {
        PublishError::Request(format!(
            "{} has a file name that is not valid UTF-8; product file names are UTF-8 text: rename it",
            path.display()
        ))
    })
}

/// Lists the regular files under `path` (or `path` itself), with their relative
/// paths, sorted; a symlink, device or non-UTF-8 name is refused.
pub fn collect_files(path: &Path) -> Result<Vec<(String, PathBuf)>, PublishError> {
    let meta = fs::metadata(path).map_err(unreadable(path))?;
    if meta.is_file() {
        let name = path
            .file_name()
            .ok_or_else(|| PublishError::Request(format!("{} has no file name", path.display())))
            .and_then(|n| utf8_name(n, path))?;
        return Ok(vec![(name, path.to_owned())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), path.to_owned())];
    while let Some((prefix, dir)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(unreadable(&dir))?
            .collect::<Result<_, _>>()
            .map_err(unreadable(&dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = utf8_name(&e.file_name(), &e.path())?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let ft = e.file_type().map_err(unreadable(&e.path()))?;
            if ft.is_dir() {
                stack.push((rel, e.path()));
            } else if ft.is_file() {
                out.push((rel, e.path()));
            } else {
                return Err(PublishError::Request(format!(
                    "{} is not a regular file (symlinks and devices are not published)",
                    e.path().display()
                )));
            }
            if out.len() > MAX_FILES {
                return Err(PublishError::Request(format!(
                    "{} holds more than {MAX_FILES} files; publish fewer, larger files",
                    path.display()
                )));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(PublishError::Request(format!(
            "{} contains no files",
            path.display()
        )));
    }
    Ok(out)
}

/// The outcome of a dry-run publish check.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CheckReport {
    /// Whether a publish of this manifest would be allowed.
    pub allowed: bool,
    /// The policy version checked against.
    pub policy_version: u64,
    /// Why not, when not allowed.
    pub problems: Vec<String>,
}

fn field_errors(errs: Vec<mesh_protocol::manifest::FieldError>) -> PublishError {
    PublishError::InvalidManifest(errs.iter().map(|e| e.to_string()).collect())
}

fn parse_draft(draft_toml: &str) -> Result<ManifestDraft, PublishError> {
    toml::from_str(draft_toml)
        .map_err(|e| PublishError::InvalidManifest(vec![format!("product.toml: {e}")]))
}

impl Publisher {
    /// Everything the policy says about publishing `m` from this node.
    fn policy_checks(&self, m: &Manifest) -> Result<(), PublishError> {
        let policy = self.governance.policy();
        if self.governance.is_expired(unix_now()) {
            return Err(PublishError::Refused(format!(
                "policy v{} expired at {} (unix seconds); publishing is refused until the council signs and submits a newer policy",
                policy.version, policy.expires_at
            )));
        }
        if !policy.is_publisher(m.id.domain(), &m.publisher) {
            return Err(PublishError::Refused(format!(
                "publisher key {} is not registered for domain {} in policy v{}; ask the council to add it to the domain registry",
                m.publisher,
                m.id.domain(),
                policy.version
            )));
        }
        if let Decision::Deny { rule, reason } = self.governance.publish_decision(m) {
            return Err(PublishError::Refused(format!(
                "policy v{} denies publishing {}@{}: rule `{rule}`: {reason}",
                policy.version, m.id, m.version
            )));
        }
        if let Some(previous) = self.previous_version(m)? {
            self.governance
                .check_evolution(&previous, m)
                .map_err(|r| PublishError::Refused(r.to_string()))?;
        }
        Ok(())
    }

    /// The newest earlier version of the same product whose manifest this node knows.
    fn previous_version(&self, m: &Manifest) -> Result<Option<Manifest>, StateError> {
        let mut best: Option<Manifest> = None;
        for e in self.catalog.list(&Default::default())? {
            let a = &e.announcement;
            if a.product != m.id || a.version >= m.version {
                continue;
            }
            if best.as_ref().is_some_and(|b| b.version >= a.version) {
                continue;
            }
            if let Some((_, prev)) = self.catalog.manifest(&a.manifest)? {
                best = Some(prev);
            }
        }
        Ok(best)
    }

    fn key(&self) -> Result<&KeyPair, PublishError> {
        self.key.as_deref().ok_or_else(|| {
            PublishError::Request(format!(
                "this node holds no publisher key for domain {} (expected {})",
                self.domain,
                self.key_path.display()
            ))
        })
    }

    /// Would publishing `draft_toml` from this node be allowed? Checks fields, domain,
    /// registration, expiry, rules and schema evolution, without reading data files.
    pub(crate) fn check(&self, draft_toml: &str) -> CheckReport {
        let policy_version = self.governance.version();
        let outcome = (|| -> Result<(), PublishError> {
            let draft = parse_draft(draft_toml)?;
            let publisher = self.key()?.public();
            let probe = draft
                .into_manifest(PublishFacts {
                    files: Vec::new(),
                    created_at: unix_now(),
                    publisher,
                    quality: None,
                })
                .map_err(field_errors)?;
            self.policy_checks(&probe)
        })();
        match outcome {
            Ok(()) => CheckReport {
                allowed: true,
                policy_version,
                problems: Vec::new(),
            },
            Err(PublishError::InvalidManifest(errs)) => CheckReport {
                allowed: false,
                policy_version,
                problems: errs,
            },
            Err(e) => CheckReport {
                allowed: false,
                policy_version,
                problems: vec![e.to_string()],
            },
        }
    }

    /// Publishes the files at `path` described by the TOML `draft`. Blocking: run it
    /// on a blocking thread. Returns the outcome and the encoded signed announcement
    /// to gossip.
    ///
    /// A publish that fails after storing chunks removes the ones it added, giving
    /// their disk space back at once (a full disk stays usable), so a failed
    /// publish leaves the store as it was.
    pub(crate) fn publish(
        &self,
        path: &Path,
        draft_toml: &str,
        options: PublishOptions,
    ) -> Result<(Published, Vec<u8>), PublishError> {
        let found = collect_files(path)?;
        self.publish_found(Found::Files(found), draft_toml, options)
    }

    /// Publishes `found` (files, or objects spooled from object storage) as
    /// [`Publisher::publish`] does.
    pub(crate) fn publish_found(
        &self,
        found: Found,
        draft_toml: &str,
        options: PublishOptions,
    ) -> Result<(Published, Vec<u8>), PublishError> {
        let mut written = Vec::new();
        let result = self.publish_tracked(found, draft_toml, options, &mut written);
        if result.is_err() && !written.is_empty() {
            let mut freed = 0u64;
            for hash in &written {
                match self.chunks.remove(hash) {
                    Ok(n) => freed += n,
                    Err(e) => tracing::warn!("removing a chunk of the failed publish: {e}"),
                }
            }
            if let Err(e) = self.chunks.sync() {
                tracing::warn!("syncing after removing a failed publish's chunks: {e}");
            }
            // A fetch running beside this publish may have counted on one of those
            // chunks (stored here first, so it did not store its own copy): any
            // product now missing a chunk stops being listed as held.
            match self.catalog.recheck_complete(&self.chunks) {
                Ok(unmarked) if !unmarked.is_empty() => tracing::warn!(
                    products = unmarked.len(),
                    "products shared a chunk with the failed publish; marked incomplete (fetch them again)"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("rechecking held products: {e}"),
            }
            tracing::info!(
                chunks = written.len(),
                freed,
                "removed the chunks a failed publish had stored"
            );
        }
        result
    }

    /// Publish in phases: the draft validated (nothing stored yet), the data
    /// checked against its contract, the files chunked into the store, the
    /// manifest and announcement signed, then recorded and offered.
    fn publish_tracked(
        &self,
        found: Found,
        draft_toml: &str,
        options: PublishOptions,
        written: &mut Vec<mesh_protocol::Hash>,
    ) -> Result<(Published, Vec<u8>), PublishError> {
        let draft = parse_draft(draft_toml)?;
        let key = self.key()?;
        let probe = self.validate(&draft, key)?;
        let (quality, mut warnings) = self.check_data(&probe, &found.places())?;
        let started = std::time::Instant::now();
        let chunked = self.chunk_files(found, options.in_place, written)?;
        let manifest: Manifest = draft
            .into_manifest(PublishFacts {
                files: chunked.files,
                created_at: unix_now(),
                publisher: key.public(),
                quality,
            })
            .map_err(field_errors)?;
        let chunk_time = started.elapsed();
        // Rules may depend on the files (size, count): evaluate the final manifest too.
        self.policy_checks(&manifest)?;
        let signed = Signed::sign(&manifest, key);
        let hash = signed.hash();
        let announcement = Announcement::of(
            &manifest,
            hash,
            vec![self.peer_id.to_string()],
            unix_now_ms(),
            key.public(),
        );
        let envelope = Signed::sign(&announcement, key).to_bytes();
        let sync_time = self.record(
            &signed,
            &manifest,
            &envelope,
            chunked.replaced,
            &mut warnings,
        )?;
        tracing::info!(
            product = %manifest.id,
            in_place = options.in_place,
            chunk_ms = chunk_time.as_millis() as u64,
            sync_ms = sync_time.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "publish timings"
        );
        if let Some(lineage) = &self.lineage {
            lineage.published(&manifest, &hash);
        }
        let published = Published {
            product: manifest.id.to_string(),
            version: manifest.version.to_string(),
            manifest: hash.to_string(),
            files: manifest.files.len(),
            size: manifest.total_size(),
            new_bytes: chunked.new_bytes,
            chunks: manifest.files.iter().map(|f| f.chunks.len()).sum(),
            warnings,
            rules: manifest
                .quality
                .as_ref()
                .map(|q| q.rules.clone())
                .unwrap_or_default(),
            in_place: options.in_place,
        };
        Ok((published, envelope))
    }

    /// Every field of the draft, the domain, the policy, the contract's lint,
    /// a version not yet published and the domain's limits, checked before
    /// anything is stored: a bad draft changes nothing.
    fn validate(&self, draft: &ManifestDraft, key: &KeyPair) -> Result<Manifest, PublishError> {
        let probe = draft
            .clone()
            .into_manifest(PublishFacts {
                files: Vec::new(),
                created_at: 0,
                publisher: key.public(),
                quality: None,
            })
            .map_err(field_errors)?;
        if probe.id.domain() != &self.domain {
            return Err(PublishError::Request(format!(
                "manifest field `id`: {} belongs to domain {}, but this node publishes for domain {}",
                probe.id,
                probe.id.domain(),
                self.domain
            )));
        }
        self.policy_checks(&probe)?;
        lint_contract(&probe, &self.domain)?;
        if let Some(existing) = self.catalog.get(&probe.id, Some(&probe.version))? {
            return Err(PublishError::Request(format!(
                "{}@{} is already published (manifest {}); a published version never changes: bump `version`",
                probe.id,
                probe.version,
                existing.announcement.manifest.short()
            )));
        }
        // Every node would refuse a version over the domain's limits: say so now.
        self.catalog
            .within_domain_limits(&self.domain, unix_now_ms())
            .map_err(PublishError::from)?;
        Ok(probe)
    }

    /// The data checked against its contract before any chunk is stored: the
    /// metrics for the manifest, and the warnings (the violations, under the
    /// policy's `warn`; refused under `refuse`).
    fn check_data(
        &self,
        probe: &Manifest,
        found: &[(String, mesh_contract::quality::Place)],
    ) -> Result<(Option<Quality>, Vec<String>), PublishError> {
        let checked = mesh_contract::quality::check_product_at(
            &probe.schema,
            &probe.null_values,
            probe.contract.as_ref(),
            found,
        )
        .map_err(|e| PublishError::Request(format!("reading the data to check it: {e}")))?;
        let mut warnings = Vec::new();
        if !checked.kept() {
            match self.governance.policy().settings.quality {
                QualityEnforcement::Refuse => return Err(PublishError::Quality(checked.lines())),
                QualityEnforcement::Warn => warnings = checked.lines(),
            }
        }
        warnings.extend(checked.notes.iter().cloned());
        Ok((checked.quality, warnings))
    }

    /// Each file cut into chunks and stored (or, in place, recorded as ranges of
    /// the file); every chunk stored is pushed onto `written`.
    fn chunk_files(
        &self,
        found: Found,
        in_place: bool,
        written: &mut Vec<mesh_protocol::Hash>,
    ) -> Result<Chunked, PublishError> {
        let mut out = Chunked::default();
        found.chunk(&self.chunks, in_place, written, |rel, c| {
            out.new_bytes += c.new_bytes;
            out.replaced += c.replaced.len();
            out.files.push(FileEntry {
                path: rel.to_string(),
                size: c.size,
                chunks: c.chunks,
            });
        })?;
        Ok(out)
    }

    /// The chunks synced, the version recorded as held and its announcement
    /// offered to the catalog (not acknowledged: not held either). Returns the
    /// sync's time.
    fn record(
        &self,
        signed: &Signed<Manifest>,
        manifest: &Manifest,
        envelope: &[u8],
        replaced: usize,
        warnings: &mut Vec<String>,
    ) -> Result<std::time::Duration, PublishError> {
        let hash = signed.hash();
        let synced_from = std::time::Instant::now();
        self.chunks.sync()?;
        let synced = synced_from.elapsed();
        self.catalog.record_manifest(signed, manifest)?;
        self.catalog.mark_complete(&hash)?;
        if replaced > 0 {
            // The same files were published in place before and have changed since:
            // the versions that need their old bytes are no longer held here.
            for gone in self.catalog.recheck_complete(&self.chunks)? {
                if let Ok(Some((_, m))) = self.catalog.manifest(&gone) {
                    warnings.push(format!(
                        "{}@{} was published in place from these files, which have changed since: it is no longer served from this node",
                        m.id, m.version
                    ));
                }
            }
        }
        let offered = self
            .catalog
            .offer(envelope)
            .map_err(PublishError::from)
            .and_then(|_| Ok(self.catalog.flush()?));
        if let Err(e) = offered {
            // Not acknowledged: it must not be listed as held either.
            let _ = self.catalog.unmark_complete(&hash);
            return Err(e);
        }
        Ok(synced)
    }
}

/// What chunking a publish's files made.
#[derive(Default)]
struct Chunked {
    files: Vec<FileEntry>,
    new_bytes: u64,
    replaced: usize,
}
