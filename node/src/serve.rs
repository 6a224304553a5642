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
    ChunkData, Response, MAX_BATCH_BYTES, MAX_BATCH_CHUNKS, MAX_CATALOG_PAGE, MAX_POLICY_PAGE,
};
use mesh_protocol::{Hash, Manifest, ManifestHash, ProductId};
use mesh_storage::ChunkError;
use tracing::{debug, warn};

use crate::node::Shared;

/// Manifests indexed for chunk membership, at most this many at once.
const INDEX_CAPACITY: usize = 128;

struct Indexed {
    manifest: Manifest,
    chunks: HashSet<Hash>,
}

/// Answers transfer requests for one node.
pub(crate) struct Provider {
    shared: Arc<Shared>,
    index: Mutex<HashMap<ManifestHash, Arc<Indexed>>>,
}

impl Provider {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Provider {
            shared,
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
        let known = self.shared.catalog.manifest(hash).map_err(|e| {
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
            && !self.shared.governance.policy().settings.serve_retired
        {
            return Some(Response::Denied {
                rule: "lifecycle".into(),
                reason: format!(
                    "{}@{} is retired and the policy does not serve retired versions; use a newer version",
                    m.id, m.version
                ),
            });
        }
        match self.shared.governance.fetch_decision(&peer.to_string(), m) {
            Decision::Allow => None,
            Decision::Deny { rule, reason } => {
                debug!(%peer, product = %m.id, %rule, "fetch denied");
                Some(Response::Denied { rule, reason })
            }
        }
    }

    /// `Request::Manifest`.
    pub(crate) fn manifest(&self, peer: &PeerId, hash: &ManifestHash) -> Response {
        match self.indexed(hash) {
            Err(r) => r,
            Ok(None) => Response::NotFound,
            Ok(Some(i)) => {
                if let Some(denied) = self.authorize(peer, &i.manifest) {
                    return denied;
                }
                match self.shared.catalog.manifest(hash) {
                    Ok(Some((signed, _))) => Response::Manifest(signed.to_bytes()),
                    Ok(None) => Response::NotFound,
                    Err(_) => Response::Busy,
                }
            }
        }
    }

    /// `Request::Chunk`; blocking (reads the disk).
    pub(crate) fn chunk(&self, peer: &PeerId, manifest: &ManifestHash, chunk: &Hash) -> Response {
        match self.chunks(peer, manifest, std::slice::from_ref(chunk)) {
            Response::Chunks(mut data) => match data.pop() {
                Some(d) => Response::Chunk(d.0),
                None => Response::NotFound,
            },
            other => other,
        }
    }

    /// Counts a fetch of `manifest` by `peer` that just started; blocking.
    pub(crate) fn count_fetch(&self, peer: &PeerId, manifest: &ManifestHash) {
        crate::usage::count(&self.shared, peer, manifest);
    }

    /// `Request::Chunks`; blocking (reads the disk). All or nothing: if any chunk is
    /// missing the answer is `NotFound`.
    pub(crate) fn chunks(
        &self,
        peer: &PeerId,
        manifest: &ManifestHash,
        chunks: &[Hash],
    ) -> Response {
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
            .map(|c| self.shared.chunks.len_of(c).unwrap_or(0))
            .sum();
        if chunks.len() > 1 && bytes > MAX_BATCH_BYTES {
            return Response::Invalid(format!(
                "the batch is {bytes} bytes, over the limit of {MAX_BATCH_BYTES}; ask for fewer chunks"
            ));
        }
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            match self
                .shared
                .chunks
                .get_verified(chunk, u64::from(MAX_CHUNK_LEN))
            {
                Ok(data) => out.push(ChunkData(data)),
                Err(ChunkError::Missing(_)) => return Response::NotFound,
                Err(ChunkError::Corrupt { .. }) => {
                    warn!(%peer, chunk = %chunk, "stored chunk is corrupt; removing it and not serving it");
                    let _ = self.shared.chunks.remove(chunk);
                    return Response::NotFound;
                }
                Err(e) => {
                    warn!("reading chunk {}: {e}", chunk.short());
                    return Response::Busy;
                }
            }
        }
        let stats = &self.shared.stats;
        stats
            .served_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        stats.served_bytes.fetch_add(
            out.iter().map(|d| d.0.len() as u64).sum(),
            std::sync::atomic::Ordering::Relaxed,
        );
        Response::Chunks(out)
    }

    /// `Request::Catalog`.
    pub(crate) fn catalog_page(
        &self,
        after: Option<&(ProductId, semver::Version)>,
        limit: u16,
    ) -> Response {
        let limit = usize::from(limit.clamp(1, MAX_CATALOG_PAGE));
        match self.shared.catalog.page(after, limit) {
            Ok((entries, more)) => Response::Catalog { entries, more },
            Err(e) => {
                warn!("serving catalog page: {e}");
                Response::Busy
            }
        }
    }

    /// `Request::Policies`.
    pub(crate) fn policies_page(&self, after: u64, limit: u16) -> Response {
        let limit = u64::from(limit.clamp(1, MAX_POLICY_PAGE));
        let newest = self.shared.governance.version();
        let entries = (after.saturating_add(1)..=newest.min(after.saturating_add(limit)))
            .filter_map(|v| self.shared.governance.get(v))
            .map(|s| s.to_bytes())
            .collect();
        Response::Policies {
            entries,
            more: after.saturating_add(limit) < newest,
        }
    }
}
