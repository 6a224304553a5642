//! Usage: who fetches a product. A provider counts each fetch it starts serving (the
//! consumer marks the first chunk request of a fetch), per product and consumer
//! domain, in its store; shortly after a count changes it signs its running totals
//! with its domain's publisher key and gossips them. Every node keeps each
//! provider's newest verified report, so a product's owner can add up who uses it.

use std::collections::BTreeMap;

use libp2p::PeerId;
use mesh_protocol::usage::{UsageCount, UsageReport, USAGE_FORMAT};
use mesh_protocol::{ManifestHash, ProductId, Signed};
use mesh_storage::Tree;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::node::{Node, Shared};
use crate::NodeError;

/// How long after a count changes the report goes out (changes in between share it).
const DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

fn key(product: &ProductId, consumer: &str) -> Vec<u8> {
    format!("{product}\0{consumer}").into_bytes()
}

/// Counts one fetch of `manifest` started by `peer` (blocking: writes the store).
pub(crate) fn count(shared: &Shared, peer: &PeerId, manifest: &ManifestHash) {
    let product = match shared.catalog.manifest(manifest) {
        Ok(Some((_, m))) => m.id,
        _ => return,
    };
    let consumer = shared
        .governance
        .policy()
        .domain_of_node(&peer.to_string())
        .map_or_else(|| "anonymous".to_string(), |d| d.to_string());
    let _guard = shared.usage_lock.lock().unwrap_or_else(|p| p.into_inner());
    let k = key(&product, &consumer);
    let n = match shared.store.get(Tree::Usage, &k) {
        Ok(Some(v)) => v.try_into().map(u64::from_be_bytes).unwrap_or(0),
        _ => 0,
    };
    if let Err(e) = shared.store.put(Tree::Usage, &k, &(n + 1).to_be_bytes()) {
        warn!("recording usage: {e}");
        return;
    }
    debug!(%product, %consumer, fetches = n + 1, "fetch counted");
    shared.usage_changed.notify_one();
}

/// This node's running totals.
fn own_counts(shared: &Shared) -> Result<Vec<UsageCount>, NodeError> {
    let mut out = Vec::new();
    for (k, v) in shared.store.scan(Tree::Usage, None, usize::MAX)? {
        let text = String::from_utf8_lossy(&k).into_owned();
        let Some((product, consumer)) = text.split_once('\0') else {
            continue;
        };
        let (Ok(product), Ok(n)) = (product.parse::<ProductId>(), <[u8; 8]>::try_from(v)) else {
            continue;
        };
        out.push(UsageCount {
            product,
            consumer: consumer.to_string(),
            fetches: u64::from_be_bytes(n),
        });
    }
    Ok(out)
}

/// Verifies a gossiped report and keeps it if it is the provider's newest; returns
/// whether it was new.
pub(crate) fn accept(shared: &Shared, bytes: &[u8]) -> Result<bool, String> {
    let signed = Signed::<UsageReport>::from_bytes(bytes).map_err(|e| e.to_string())?;
    let report = shared.governance.check_usage(&signed).map_err(|r| r.0)?;
    let k = report.provider.as_bytes().to_vec();
    if let Ok(Some(old)) = shared.store.get(Tree::UsageReports, &k) {
        let newer = Signed::<UsageReport>::from_bytes(&old)
            .and_then(|s| s.value())
            .is_ok_and(|o| o.issued_at_ms >= report.issued_at_ms);
        if newer {
            return Ok(false);
        }
    }
    shared
        .store
        .put(Tree::UsageReports, &k, bytes)
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Signs this node's running totals, keeps the report and returns its envelope
/// (`None` when there is nothing to report or no publisher key to sign with).
fn sign_report(shared: &Shared) -> Result<Option<Vec<u8>>, NodeError> {
    let Some(key) = shared.publisher.as_ref() else {
        return Ok(None);
    };
    let counts = own_counts(shared)?;
    if counts.is_empty() {
        return Ok(None);
    }
    let report = UsageReport {
        format: USAGE_FORMAT,
        domain: shared.domain.clone(),
        provider: shared.home.peer_id()?.to_string(),
        issued_at_ms: crate::governance::unix_now_ms(),
        counts,
        publisher: key.public(),
    };
    let envelope = Signed::sign(&report, key).to_bytes();
    shared
        .store
        .put(Tree::UsageReports, report.provider.as_bytes(), &envelope)?;
    Ok(Some(envelope))
}

/// Gossips a report shortly after counts change, until shutdown.
pub(crate) async fn report_loop(node: Node, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = node.shared.usage_changed.notified() => {}
        }
        tokio::time::sleep(DEBOUNCE).await;
        let shared = node.shared.clone();
        match tokio::task::spawn_blocking(move || sign_report(&shared)).await {
            Ok(Ok(Some(envelope))) => {
                if let Err(e) = node.net.gossip_usage(envelope).await {
                    warn!("gossiping usage: {e}");
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => warn!("signing a usage report: {e}"),
            Err(e) => warn!("usage task failed: {e}"),
        }
    }
}

/// Who fetched a product, from every provider's newest report this node holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProductUsage {
    /// `domain/name`.
    pub product: String,
    /// Fetches counted by all providers.
    pub total: u64,
    /// Fetches per consumer domain.
    pub by_consumer: BTreeMap<String, u64>,
    /// Fetches per provider peer.
    pub by_provider: BTreeMap<String, u64>,
    /// Provider reports considered.
    pub reports: usize,
}

impl Node {
    /// Adds up the usage of `product` from every provider report this node holds.
    pub async fn usage(&self, product: ProductId) -> Result<ProductUsage, NodeError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = ProductUsage {
                product: product.to_string(),
                ..ProductUsage::default()
            };
            for (_, bytes) in shared.store.scan(Tree::UsageReports, None, usize::MAX)? {
                let Ok(r) = Signed::<UsageReport>::from_bytes(&bytes).and_then(|s| s.value())
                else {
                    continue;
                };
                let mut counted = false;
                for c in r.counts.iter().filter(|c| c.product == product) {
                    out.total += c.fetches;
                    *out.by_consumer.entry(c.consumer.clone()).or_default() += c.fetches;
                    *out.by_provider.entry(r.provider.clone()).or_default() += c.fetches;
                    counted = true;
                }
                out.reports += usize::from(counted);
            }
            Ok(out)
        })
        .await
        .map_err(|e| NodeError::Network(format!("usage task failed: {e}")))?
    }
}
