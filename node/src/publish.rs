//! Publishing: turns files plus a `product.toml` draft into a signed manifest and a
//! signed announcement, after checking the draft, the domain and the policy.
//!
//! Nothing is written until the draft is valid, the key is registered and the policy
//! (unexpired; its publish rules; schema evolution against the previous version)
//! allows it; chunks are stored as they are cut; the manifest and catalog entry are
//! flushed before the publish is acknowledged. [`check`] runs the same checks as a
//! dry run.

use std::fs;
use std::path::{Path, PathBuf};

use mesh_protocol::announcement::{Summary, ANNOUNCEMENT_FORMAT};
use mesh_protocol::manifest::{FileEntry, ManifestDraft, PublishFacts};
use mesh_protocol::policy::QualityEnforcement;
use mesh_protocol::rules::Decision;
use mesh_protocol::{Announcement, Manifest, Signed};
use mesh_storage::chunker::chunk_file;
use serde::Serialize;

use crate::governance::{unix_now, unix_now_ms};
use crate::node::Shared;
use crate::NodeError;

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
}

/// Most files one product may have.
const MAX_FILES: usize = 100_000;

/// Lists the regular files under `path` (or `path` itself), with their relative paths.
fn collect_files(path: &Path) -> Result<Vec<(String, PathBuf)>, NodeError> {
    let meta = fs::metadata(path)
        .map_err(|e| NodeError::Usage(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| NodeError::Usage(format!("{} has no file name", path.display())))?;
        return Ok(vec![(name, path.to_owned())]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), path.to_owned())];
    while let Some((prefix, dir)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(NodeError::io(&dir))?
            .collect::<Result<_, _>>()
            .map_err(NodeError::io(&dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let ft = e.file_type().map_err(NodeError::io(&e.path()))?;
            if ft.is_dir() {
                stack.push((rel, e.path()));
            } else if ft.is_file() {
                out.push((rel, e.path()));
            } else {
                return Err(NodeError::Usage(format!(
                    "{} is not a regular file (symlinks and devices are not published)",
                    e.path().display()
                )));
            }
            if out.len() > MAX_FILES {
                return Err(NodeError::Usage(format!(
                    "{} holds more than {MAX_FILES} files; publish fewer, larger files",
                    path.display()
                )));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(NodeError::Usage(format!(
            "{} contains no files",
            path.display()
        )));
    }
    Ok(out)
}

/// Everything the policy says about publishing `m` from this node.
fn policy_checks(shared: &Shared, m: &Manifest) -> Result<(), NodeError> {
    let policy = shared.governance.policy();
    if shared.governance.is_expired(unix_now()) {
        return Err(NodeError::Rejected(format!(
            "policy v{} expired at {} (unix seconds); publishing is refused until the council signs and submits a newer policy",
            policy.version, policy.expires_at
        )));
    }
    if !policy.is_publisher(m.id.domain(), &m.publisher) {
        return Err(NodeError::Rejected(format!(
            "publisher key {} is not registered for domain {} in policy v{}; ask the council to add it to the domain registry",
            m.publisher,
            m.id.domain(),
            policy.version
        )));
    }
    if let Decision::Deny { rule, reason } = shared.governance.publish_decision(m) {
        return Err(NodeError::Rejected(format!(
            "policy v{} denies publishing {}@{}: rule `{rule}`: {reason}",
            policy.version, m.id, m.version
        )));
    }
    if let Some(previous) = previous_version(shared, m)? {
        shared
            .governance
            .check_evolution(&previous, m)
            .map_err(|r| NodeError::Rejected(r.0))?;
    }
    Ok(())
}

/// The newest earlier version of the same product whose manifest this node knows.
fn previous_version(shared: &Shared, m: &Manifest) -> Result<Option<Manifest>, NodeError> {
    let mut best: Option<Manifest> = None;
    for e in shared.catalog.list(&Default::default())? {
        let a = &e.announcement;
        if a.product != m.id || a.version >= m.version {
            continue;
        }
        if best.as_ref().is_some_and(|b| b.version >= a.version) {
            continue;
        }
        if let Some((_, prev)) = shared.catalog.manifest(&a.manifest)? {
            best = Some(prev);
        }
    }
    Ok(best)
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

/// Would publishing `draft_toml` from this node be allowed? Checks fields, domain,
/// registration, expiry, rules and schema evolution, without reading data files.
pub fn check(shared: &Shared, draft_toml: &str) -> CheckReport {
    let policy_version = shared.governance.version();
    let outcome = (|| -> Result<(), NodeError> {
        let draft: ManifestDraft = toml::from_str(draft_toml)
            .map_err(|e| NodeError::InvalidManifest(vec![format!("product.toml: {e}")]))?;
        let publisher = shared
            .publisher
            .as_ref()
            .map(|k| k.public())
            .ok_or_else(|| {
                NodeError::Usage(format!(
                    "this node holds no publisher key for domain {}",
                    shared.domain
                ))
            })?;
        let probe = draft
            .into_manifest(PublishFacts {
                files: Vec::new(),
                created_at: unix_now(),
                publisher,
                quality: None,
            })
            .map_err(field_errors)?;
        policy_checks(shared, &probe)
    })();
    match outcome {
        Ok(()) => CheckReport {
            allowed: true,
            policy_version,
            problems: Vec::new(),
        },
        Err(NodeError::InvalidManifest(errs)) => CheckReport {
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

fn field_errors(errs: Vec<mesh_protocol::manifest::FieldError>) -> NodeError {
    NodeError::InvalidManifest(errs.iter().map(|e| e.to_string()).collect())
}

/// Publishes the files at `path` described by the TOML `draft`. Blocking: run it on a
/// blocking thread. Returns the outcome and the encoded signed announcement to gossip.
pub fn publish(
    shared: &Shared,
    path: &Path,
    draft_toml: &str,
) -> Result<(Published, Vec<u8>), NodeError> {
    let draft: ManifestDraft = toml::from_str(draft_toml)
        .map_err(|e| NodeError::InvalidManifest(vec![format!("product.toml: {e}")]))?;
    let key = shared.publisher.as_ref().ok_or_else(|| {
        NodeError::Usage(format!(
            "this node holds no publisher key for domain {} (expected {})",
            shared.domain,
            shared.home.publisher_key_path(&shared.domain).display()
        ))
    })?;
    // Validate every field before touching the store, so a bad draft changes nothing.
    let probe = draft.clone().into_manifest(PublishFacts {
        files: Vec::new(),
        created_at: 0,
        publisher: key.public(),
        quality: None,
    });
    let probe = probe.map_err(field_errors)?;
    if probe.id.domain() != &shared.domain {
        return Err(NodeError::Usage(format!(
            "manifest field `id`: {} belongs to domain {}, but this node publishes for domain {}",
            probe.id,
            probe.id.domain(),
            shared.domain
        )));
    }
    policy_checks(shared, &probe)?;
    if let Some(existing) = shared.catalog.get(&probe.id, Some(&probe.version))? {
        return Err(NodeError::Usage(format!(
            "{}@{} is already published (manifest {}); a published version never changes: bump `version`",
            probe.id,
            probe.version,
            existing.announcement.manifest.short()
        )));
    }

    // The data must keep the contract before any chunk is stored.
    let found = collect_files(path)?;
    let checked = crate::quality::check(&probe.schema, &found)
        .map_err(|e| NodeError::Usage(format!("reading the data to check it: {e}")))?;
    let mut warnings = Vec::new();
    if checked.total_violations > 0 {
        match shared.governance.policy().settings.quality {
            QualityEnforcement::Refuse => return Err(NodeError::Quality(checked.lines())),
            QualityEnforcement::Warn => warnings = checked.lines(),
        }
    }
    warnings.extend(checked.notes.iter().cloned());

    let started = std::time::Instant::now();
    let mut files = Vec::new();
    let mut new_bytes = 0;
    for (rel, full) in found {
        let c = chunk_file(&full, &shared.chunks)?;
        new_bytes += c.new_bytes;
        files.push(FileEntry {
            path: rel,
            size: c.size,
            chunks: c.chunks,
        });
    }
    let manifest: Manifest = draft
        .into_manifest(PublishFacts {
            files,
            created_at: unix_now(),
            publisher: key.public(),
            quality: checked.quality,
        })
        .map_err(field_errors)?;
    let chunked = started.elapsed();
    // Rules may depend on the files (size, count): evaluate the final manifest too.
    policy_checks(shared, &manifest)?;
    let signed = Signed::sign(&manifest, key);
    let hash = signed.hash();
    let announcement = Announcement {
        format: ANNOUNCEMENT_FORMAT,
        product: manifest.id.clone(),
        version: manifest.version.clone(),
        manifest: hash,
        summary: Summary {
            title: manifest.title.chars().take(200).collect(),
            status: manifest.status,
            classification: manifest.classification,
            tags: manifest
                .tags
                .iter()
                .take(32)
                .map(|t| t.chars().take(64).collect())
                .collect(),
            owner_team: manifest.owner.team.chars().take(200).collect(),
            size: manifest.total_size(),
            files: manifest.files.len() as u32,
        },
        providers: vec![shared.home.peer_id()?.to_string()],
        issued_at_ms: unix_now_ms(),
        publisher: key.public(),
    };
    let envelope = Signed::sign(&announcement, key).to_bytes();
    let synced_from = std::time::Instant::now();
    shared.chunks.sync()?;
    let synced = synced_from.elapsed();
    shared.catalog.record_manifest(&signed, &manifest)?;
    shared.catalog.mark_complete(&hash)?;
    shared
        .catalog
        .offer(&envelope)
        .map_err(|r| NodeError::Rejected(r.0))?;
    shared.store.flush()?;
    tracing::info!(
        product = %manifest.id,
        chunk_ms = chunked.as_millis() as u64,
        sync_ms = synced.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "publish timings"
    );
    Ok((
        Published {
            product: manifest.id.to_string(),
            version: manifest.version.to_string(),
            manifest: hash.to_string(),
            files: manifest.files.len(),
            size: manifest.total_size(),
            new_bytes,
            chunks: manifest.files.iter().map(|f| f.chunks.len()).sum(),
            warnings,
        },
        envelope,
    ))
}

impl crate::node::Node {
    /// Publishes the files at `path` described by `draft_toml` and gossips the
    /// announcement.
    pub async fn publish(&self, path: PathBuf, draft_toml: String) -> Result<Published, NodeError> {
        let _shared_work = self.shared.work_lock.read().await;
        let shared = self.shared.clone();
        let (published, envelope) =
            tokio::task::spawn_blocking(move || publish(&shared, &path, &draft_toml))
                .await
                .map_err(|e| NodeError::Network(format!("publish task failed: {e}")))??;
        tracing::info!(product = %published.product, version = %published.version, "published");
        self.shared
            .stats
            .publishes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.net
            .announce(envelope)
            .await
            .map_err(NodeError::Network)?;
        Ok(published)
    }
}
