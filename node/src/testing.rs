//! What the node's own tests need to see and steer inside a running node, behind
//! the `test-support` feature (never in a release build): the catalog, the chunk
//! store, the storage fault switches and a few counters, plus the transfer codec
//! for hand-written rogue peers.

use std::sync::Arc;

use libp2p::PeerId;
use mesh_protocol::wire::{Request, Response};
use mesh_protocol::{Manifest, ManifestHash, ProductId, Signed};
use mesh_storage::{ChunkStore, Faults, MetaStore};

pub use crate::state::catalog::CatalogEntry;

use crate::net::transfer::codec;

/// The transfer protocol's name, for rogue peers that speak it.
pub const TRANSFER_PROTOCOL: libp2p::StreamProtocol = codec::TRANSFER_PROTOCOL;

/// Reads one length-prefixed transfer frame of at most `cap` bytes, as the node does.
pub async fn read_frame<T: futures::AsyncRead + Unpin>(
    io: &mut T,
    cap: usize,
) -> std::io::Result<Vec<u8>> {
    codec::read_frame(io, cap).await
}

use crate::metrics::Metrics;
use crate::net::{NetError, NetworkHandle};
use crate::state::catalog::Catalog;
use crate::state::governance::Governance;

/// A test's view of one running node.
#[derive(Debug, Clone)]
pub struct Probe {
    catalog: Catalog,
    governance: Governance,
    chunks: Arc<ChunkStore>,
    store: Arc<dyn MetaStore>,
    metrics: Metrics,
    net: NetworkHandle,
}

impl Probe {
    pub(crate) fn new(
        catalog: Catalog,
        governance: Governance,
        chunks: Arc<ChunkStore>,
        store: Arc<dyn MetaStore>,
        metrics: Metrics,
        net: NetworkHandle,
    ) -> Self {
        Probe {
            catalog,
            governance,
            chunks,
            store,
            metrics,
            net,
        }
    }

    /// Verifies and records a signed announcement and its signed manifest, as
    /// gossip and the manifest prefetch would: fills a catalog without a network
    /// (benchmarks of catalog-wide reads).
    pub fn learn(&self, announcement: &[u8], manifest: &Signed<Manifest>) -> Result<(), String> {
        self.catalog
            .offer(announcement)
            .map_err(|e| e.to_string())?;
        let m = self
            .governance
            .check_manifest(manifest)
            .map_err(|e| e.to_string())?;
        self.catalog
            .record_manifest(manifest, &m)
            .map_err(|e| e.to_string())
    }

    /// Verifies and records a signed announcement as gossip would, without
    /// forwarding it: a version this node holds whose gossip its peers lost.
    pub fn keep(&self, announcement: &[u8]) -> Result<(), String> {
        self.catalog
            .offer(announcement)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Every catalog entry (empty if the store fails).
    pub fn entries(&self) -> Vec<CatalogEntry> {
        self.catalog.list(&Default::default()).unwrap_or_default()
    }

    /// Whether the catalog lists `product` (any version).
    pub fn knows(&self, product: &str) -> bool {
        self.entries()
            .iter()
            .any(|e| e.announcement.product.to_string() == product)
    }

    /// Sends a raw transfer request to `peer` from this node.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, NetError> {
        self.net.request(peer, request).await
    }

    /// Gossips an encoded signed announcement from this node.
    pub async fn announce(&self, envelope: Vec<u8>) -> Result<(), NetError> {
        self.net.announce(envelope).await
    }

    /// Product versions in the catalog (0 if the store fails).
    pub fn catalog_len(&self) -> usize {
        self.catalog.len().unwrap_or(0)
    }

    /// A version's catalog entry, if known.
    pub fn entry(&self, id: &ProductId, version: &semver::Version) -> Option<CatalogEntry> {
        self.catalog.get(id, Some(version)).ok().flatten()
    }

    /// A verified manifest this node knows.
    pub fn manifest(&self, hash: &ManifestHash) -> Option<(Signed<Manifest>, Manifest)> {
        self.catalog.manifest(hash).ok().flatten()
    }

    /// The first `limit` encoded announcements of the catalog.
    pub fn catalog_page(&self, limit: usize) -> Vec<Vec<u8>> {
        self.catalog
            .page(None, limit)
            .map(|(entries, _)| entries)
            .unwrap_or_default()
    }

    /// The chunk store.
    pub fn chunks(&self) -> Arc<ChunkStore> {
        self.chunks.clone()
    }

    /// The chunk store's fault switches.
    pub fn chunk_faults(&self) -> &Faults {
        self.chunks.faults()
    }

    /// The metadata store's fault switches, if it has them.
    pub fn meta_faults(&self) -> Option<&Faults> {
        self.store.faults()
    }

    /// Inbound requests answered `Busy` so far.
    pub fn refused_requests(&self) -> u64 {
        self.metrics.refused_requests.get()
    }

    /// Peer messages this node failed to store (its own fault).
    pub fn not_kept(&self) -> u64 {
        self.metrics.not_kept.get()
    }

    /// Reads admitted whose responses are not yet written.
    pub fn reads_in_flight(&self) -> i64 {
        self.metrics.reads_in_flight.get()
    }
}
