//! The provider side of the transfer protocol: what this node answers to peers'
//! requests, under the policy's fetch rules.
//!
//! Every manifest and chunk request is authorized against the product it concerns
//! (`Governance::fetch_decision`, principal = the requester's domain from the
//! registry); a chunk is served only if the named manifest lists it. Chunk reads are
//! verified on the way out: a corrupt stored chunk is deleted and answered `NotFound`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use mesh_protocol::manifest::MAX_CHUNK_LEN;
use mesh_protocol::rules::Decision;
use mesh_protocol::wire::{
    ChunkData, RecordKind, Request, Response, MAX_BATCH_BYTES, MAX_BATCH_CHUNKS, MAX_CATALOG_PAGE,
    MAX_POLICY_PAGE, MAX_RECORD_PAGE,
};
use mesh_protocol::{Hash, Manifest, ManifestHash, ProductId};
use mesh_storage::{ChunkError, ChunkStore};
use tracing::{debug, warn};

use crate::clock::unix_now_ms;
use crate::metrics::Metrics;
use crate::net::handles::StateHandles;
use crate::state::access::AccessBook;
use crate::state::catalog::Catalog;
use crate::state::governance::{Governance, OwnNode};
use crate::state::providers::Providers;
use crate::state::usage::UsageLedger;

/// Manifests indexed for chunk membership, at most this many at once.
const INDEX_CAPACITY: usize = 128;

struct Indexed {
    manifest: Manifest,
    chunks: HashSet<Hash>,
}

/// Answers transfer requests for one node.
pub(crate) struct Provider {
    catalog: Catalog,
    governance: Governance,
    chunks: Arc<ChunkStore>,
    usage: UsageLedger,
    providers: Providers,
    access: AccessBook,
    metrics: Metrics,
    /// This node: a copy it may no longer read itself is not served.
    own: OwnNode,
    index: Mutex<HashMap<ManifestHash, Arc<Indexed>>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").finish_non_exhaustive()
    }
}

impl Provider {
    pub(crate) fn new(state: StateHandles) -> Self {
        Provider {
            catalog: state.catalog,
            governance: state.governance,
            chunks: state.chunks,
            usage: state.usage,
            providers: state.providers,
            access: state.access,
            metrics: state.metrics,
            own: state.own,
            index: Mutex::new(HashMap::new()),
        }
    }

    fn indexed(&self, hash: &ManifestHash) -> Result<Option<Arc<Indexed>>, Response> {
        if let Some(i) = self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
        {
            return Ok(Some(i.clone()));
        }
        let known = self.catalog.manifest(hash).map_err(|e| {
            warn!("reading manifest {}: {e}", hash.short());
            Response::Busy
        })?;
        let Some((_, manifest)) = known else {
            return Ok(None);
        };
        let chunks = manifest
            .files
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.hash))
            .collect();
        let entry = Arc::new(Indexed { manifest, chunks });
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if index.len() >= INDEX_CAPACITY {
            index.clear();
        }
        index.insert(*hash, entry.clone());
        Ok(Some(entry))
    }

    fn authorize(&self, peer: &PeerId, m: &Manifest) -> Option<Response> {
        if m.status == mesh_protocol::manifest::Status::Retired
            && !self.governance.with_policy(|p| p.settings.serve_retired)
        {
            return Some(Response::Denied {
                rule: "lifecycle".into(),
                reason: format!(
                    "{}@{} is retired and the policy does not serve retired versions; use a newer version",
                    m.id, m.version
                ),
            });
        }
        let grants = self.access.decisions_for(&m.id);
        let now = unix_now_ms();
        // A copy this node may no longer read itself (its grant revoked) is not
        // offered to anyone: the requester goes to another provider.
        if let Decision::Deny { rule, .. } = self
            .governance
            .own_copy_decision(&self.own, m, &grants, now)
        {
            debug!(%peer, product = %m.id, %rule, "not serving a copy this node may no longer read");
            return Some(Response::NotFound);
        }
        match self
            .governance
            .fetch_decision(&peer.to_string(), m, &grants, now)
        {
            Decision::Allow => None,
            Decision::Deny { rule, reason } => {
                debug!(%peer, product = %m.id, %rule, "fetch denied");
                Some(Response::Denied { rule, reason })
            }
        }
    }

    /// Answers a read request (manifest, chunk, chunk batch); blocking (reads the
    /// disk). The first batch of a fetch (`start`) is counted as a fetch for usage.
    pub(crate) fn read(&self, peer: &PeerId, request: Request) -> Response {
        match request {
            Request::Manifest(hash) => self.manifest(peer, &hash),
            Request::Chunk { manifest, chunk } => self.chunk(peer, &manifest, &chunk),
            Request::Chunks {
                manifest,
                chunks,
                start,
            } => {
                let r = self.chunks(peer, &manifest, &chunks);
                if start && matches!(r, Response::Chunks(_)) {
                    self.usage
                        .count(peer, &manifest, |p, c| self.access.grant_id(p, c));
                }
                r
            }
            _ => Response::Invalid("not a read request".into()),
        }
    }

    /// `Request::Manifest`.
    fn manifest(&self, peer: &PeerId, hash: &ManifestHash) -> Response {
        match self.indexed(hash) {
            Err(r) => r,
            Ok(None) => Response::NotFound,
            Ok(Some(i)) => {
                if let Some(denied) = self.authorize(peer, &i.manifest) {
                    return denied;
                }
                match self.catalog.manifest(hash) {
                    Ok(Some((signed, _))) => Response::Manifest(signed.to_bytes()),
                    Ok(None) => Response::NotFound,
                    Err(_) => Response::Busy,
                }
            }
        }
    }

    /// `Request::Chunk`; blocking (reads the disk).
    fn chunk(&self, peer: &PeerId, manifest: &ManifestHash, chunk: &Hash) -> Response {
        match self.chunks(peer, manifest, std::slice::from_ref(chunk)) {
            Response::Chunks(mut data) => match data.pop() {
                Some(d) => Response::Chunk(d.0),
                None => Response::NotFound,
            },
            other => other,
        }
    }

    /// `Request::Chunks`; blocking (reads the disk). All or nothing: if any chunk is
    /// missing the answer is `NotFound`.
    fn chunks(&self, peer: &PeerId, manifest: &ManifestHash, chunks: &[Hash]) -> Response {
        if chunks.is_empty() || chunks.len() > MAX_BATCH_CHUNKS {
            return Response::Invalid(format!(
                "a chunk batch names 1..={MAX_BATCH_CHUNKS} chunks, not {}",
                chunks.len()
            ));
        }
        let i = match self.indexed(manifest) {
            Err(r) => return r,
            Ok(None) => return Response::NotFound,
            Ok(Some(i)) => i,
        };
        if let Some(chunk) = chunks.iter().find(|c| !i.chunks.contains(c)) {
            return Response::Invalid(format!(
                "chunk {} is not part of manifest {}",
                chunk.short(),
                manifest.short()
            ));
        }
        if let Some(denied) = self.authorize(peer, &i.manifest) {
            return denied;
        }
        let bytes: u64 = chunks
            .iter()
            .map(|c| self.chunks.len_of(c).unwrap_or(0))
            .sum();
        if chunks.len() > 1 && bytes > MAX_BATCH_BYTES {
            return Response::Invalid(format!(
                "the batch is {bytes} bytes, over the limit of {MAX_BATCH_BYTES}; ask for fewer chunks"
            ));
        }
        let mut out = Vec::with_capacity(chunks.len());
        // Checked against the CRC recorded when stored (not BLAKE3: every consumer
        // verifies what it receives against the chunk's name anyway); damage on our
        // disk is caught here either way.
        for chunk in chunks {
            match self.chunks.get_checked(chunk, u64::from(MAX_CHUNK_LEN)) {
                Ok(data) => out.push(ChunkData(data)),
                Err(ChunkError::Missing(_)) => return Response::NotFound,
                Err(e) if e.is_bad_copy() => {
                    warn!(%peer, chunk = %chunk, "{e}; removing the chunk, marking the product incomplete, not serving it");
                    let _ = self.chunks.remove(chunk);
                    if let Err(e) = self
                        .catalog
                        .unmark_complete(manifest)
                        .and_then(|()| self.catalog.flush())
                    {
                        warn!("marking {} incomplete: {e}", manifest.short());
                    }
                    return Response::NotFound;
                }
                Err(e) => {
                    warn!("reading chunk {}: {e}", chunk.short());
                    return Response::Busy;
                }
            }
        }
        self.metrics.served_requests.inc();
        self.metrics
            .served_bytes
            .inc_by(out.iter().map(|d| d.0.len() as u64).sum());
        Response::Chunks(out)
    }

    /// `Request::Catalog`.
    pub(crate) fn catalog_page(
        &self,
        after: Option<&(ProductId, semver::Version)>,
        limit: u16,
    ) -> Response {
        let limit = usize::from(limit.clamp(1, MAX_CATALOG_PAGE));
        match self.catalog.page(after, limit) {
            Ok((entries, more)) => Response::Catalog { entries, more },
            Err(e) => {
                warn!("serving catalog page: {e}");
                Response::Busy
            }
        }
    }

    /// `Request::Digest`: the catalog's digest, or `Busy` while it is being built.
    pub(crate) fn digest(&self) -> Response {
        match self.catalog.digest_if_built() {
            Some(d) => Response::Digest {
                versions: d.versions,
                digest: d.hash(),
            },
            None => Response::Busy,
        }
    }

    /// `Request::Records`: a page of provider records or usage reports.
    pub(crate) fn records_page(
        &self,
        kind: RecordKind,
        after: Option<&str>,
        limit: u16,
    ) -> Response {
        let limit = usize::from(limit.clamp(1, MAX_RECORD_PAGE));
        let page = match kind {
            RecordKind::Providers => self.providers.page(after, limit),
            RecordKind::Usage => self.usage.page(after, limit),
            RecordKind::AccessRequests => self.access.page(false, after, limit),
            RecordKind::AccessDecisions => self.access.page(true, after, limit),
        };
        match page {
            Ok((entries, more)) => Response::Records { entries, more },
            Err(e) => {
                warn!("serving {kind:?} records: {e}");
                Response::Busy
            }
        }
    }

    /// `Request::Policies`.
    pub(crate) fn policies_page(&self, after: u64, limit: u16) -> Response {
        let limit = u64::from(limit.clamp(1, MAX_POLICY_PAGE));
        let newest = self.governance.version();
        let entries = (after.saturating_add(1)..=newest.min(after.saturating_add(limit)))
            .filter_map(|v| self.governance.get(v))
            .map(|s| s.to_bytes())
            .collect();
        Response::Policies {
            entries,
            more: after.saturating_add(limit) < newest,
        }
    }
}
