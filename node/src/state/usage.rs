//! Usage: who fetches a product. A provider counts each fetch it starts serving (the
//! consumer marks the first chunk request of a fetch), per product and consumer
//! domain, in its store; shortly after a count changes it signs its running totals
//! with its domain's publisher key (the report loop in `ops::reports` gossips them).
//! Every node keeps each provider's newest verified report, so a product's owner can
//! add up who uses it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use mesh_protocol::usage::{UsageCount, UsageReport, MAX_USAGE_BYTES, USAGE_FORMAT};
use mesh_protocol::{DomainName, KeyPair, ManifestHash, ProductId, Signed};
use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::catalog::Catalog;
use super::governance::Governance;
use super::{Invalid, OfferError, StateError};
use crate::clock::unix_now_ms;

fn key(product: &ProductId, version: &semver::Version, consumer: &str, grant: &str) -> Vec<u8> {
    format!("{product}\0{version}\0{consumer}\0{grant}").into_bytes()
}

/// Who fetched a product (or one version of it), from every provider's newest
/// report this node holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProductUsage {
    /// `domain/name`.
    pub product: String,
    /// The version counted, when only one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Fetches counted by all providers.
    pub total: u64,
    /// Fetches per consumer domain.
    pub by_consumer: BTreeMap<String, u64>,
    /// Fetches per provider peer.
    pub by_provider: BTreeMap<String, u64>,
    /// Fetches per version.
    #[serde(default)]
    pub by_version: BTreeMap<String, u64>,
    /// Fetches per access grant they were served under (the grant's short id; those
    /// served without a grant are not counted here).
    #[serde(default)]
    pub by_grant: BTreeMap<String, u64>,
    /// Provider reports considered.
    pub reports: usize,
}

/// This node's usage counts and the reports of every provider, over the store.
#[derive(Debug, Clone)]
pub(crate) struct UsageLedger {
    store: Arc<dyn MetaStore>,
    catalog: Catalog,
    governance: Governance,
    /// Who signs this node's reports: its domain, publisher key and peer id.
    domain: DomainName,
    publisher: Option<Arc<KeyPair>>,
    provider: PeerId,
    /// Serializes updates of the counts.
    lock: Arc<Mutex<()>>,
    /// Signalled when a count changes (a report is due).
    changed: Arc<Notify>,
}

impl UsageLedger {
    pub(crate) fn new(
        store: Arc<dyn MetaStore>,
        catalog: Catalog,
        governance: Governance,
        domain: DomainName,
        publisher: Option<Arc<KeyPair>>,
        provider: PeerId,
    ) -> Self {
        UsageLedger {
            store,
            catalog,
            governance,
            domain,
            publisher,
            provider,
            lock: Arc::new(Mutex::new(())),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Counts one fetch of `manifest` started by `peer` (blocking: writes the store),
    /// under the access grant `grant_of(product, consumer)` names, if any.
    pub(crate) fn count(
        &self,
        peer: &PeerId,
        manifest: &ManifestHash,
        grant_of: impl FnOnce(&ProductId, &str) -> Option<String>,
    ) {
        let (product, version) = match self.catalog.manifest(manifest) {
            Ok(Some((_, m))) => (m.id, m.version),
            _ => return,
        };
        let consumer = self.governance.with_policy(|p| {
            p.domain_of_node(&peer.to_string())
                .map_or_else(|| "anonymous".to_string(), |d| d.to_string())
        });
        let grant = grant_of(&product, &consumer).unwrap_or_default();
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(&product, &version, &consumer, &grant);
        let n = match self.store.get(Tree::Usage, &k) {
            Ok(Some(v)) => v.try_into().map(u64::from_be_bytes).unwrap_or(0),
            _ => 0,
        };
        if let Err(e) = self.store.put(Tree::Usage, &k, &(n + 1).to_be_bytes()) {
            warn!("recording usage: {e}");
            return;
        }
        debug!(%product, %version, %consumer, fetches = n + 1, "fetch counted");
        self.changed.notify_one();
    }

    /// Waits until a count changes.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// This node's running totals.
    fn own_counts(&self) -> Result<Vec<UsageCount>, StateError> {
        let mut out = Vec::new();
        for (k, v) in self.store.scan(Tree::Usage, None, usize::MAX)? {
            let text = String::from_utf8_lossy(&k).into_owned();
            // Counts from before per-grant keys (`product \0 version \0 consumer`)
            // count as served without a grant.
            let mut parts = text.splitn(4, '\0');
            let (Some(product), Some(version), Some(consumer)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let grant = parts.next().unwrap_or_default();
            let (Ok(product), Ok(version), Ok(n)) = (
                product.parse::<ProductId>(),
                version.parse::<semver::Version>(),
                <[u8; 8]>::try_from(v),
            ) else {
                continue;
            };
            out.push(UsageCount {
                product,
                version,
                consumer: consumer.to_string(),
                fetches: u64::from_be_bytes(n),
                grant: grant.to_string(),
            });
        }
        Ok(out)
    }

    /// Verifies a gossiped report and keeps it if it is the provider's newest;
    /// returns whether it was new. A report that does not verify is
    /// [`OfferError::Invalid`]; failing to store it is [`OfferError::Store`].
    pub(crate) fn accept(&self, bytes: &[u8]) -> Result<bool, OfferError> {
        let signed = Signed::<UsageReport>::from_bytes(bytes).map_err(Invalid::new)?;
        let claimed = signed.value().map_err(Invalid::new)?;
        let k = claimed.provider.as_bytes().to_vec();
        // A report no newer than the one kept is dropped before its signature is
        // checked (anti-entropy pulls every report again).
        if let Some(old) = self.store.get(Tree::UsageReports, &k)? {
            let newer = Signed::<UsageReport>::from_bytes(&old)
                .and_then(|s| s.value())
                .is_ok_and(|o| o.issued_at_ms >= claimed.issued_at_ms);
            if newer {
                return Ok(false);
            }
        }
        self.governance.check_usage(&signed)?;
        self.store.put(Tree::UsageReports, &k, bytes)?;
        Ok(true)
    }

    /// Signs this node's running totals, keeps the report and returns its envelope
    /// (`None` when there is nothing to report or no publisher key to sign with).
    pub(crate) fn sign_report(&self) -> Result<Option<Vec<u8>>, StateError> {
        let Some(key) = self.publisher.as_ref() else {
            return Ok(None);
        };
        let mut counts = self.own_counts()?;
        if counts.is_empty() {
            return Ok(None);
        }
        // A report over the size every receiver accepts would be refused whole: keep
        // the most-fetched counts that fit, and say what was left out.
        counts.sort_by_key(|c| std::cmp::Reverse(c.fetches));
        let total = counts.len();
        let (report, signed) = loop {
            let report = UsageReport {
                format: USAGE_FORMAT,
                domain: self.domain.clone(),
                provider: self.provider.to_string(),
                issued_at_ms: unix_now_ms(),
                counts: counts.clone(),
                publisher: key.public(),
            };
            let signed = Signed::sign(&report, key);
            if signed.payload().len() <= MAX_USAGE_BYTES || counts.len() <= 1 {
                break (report, signed);
            }
            counts.truncate(counts.len() * 9 / 10);
        };
        if report.counts.len() < total {
            warn!(
                kept = report.counts.len(),
                total,
                "usage report over {MAX_USAGE_BYTES} bytes: the least-fetched counts are left out"
            );
        }
        let envelope = signed.to_bytes();
        self.store
            .put(Tree::UsageReports, report.provider.as_bytes(), &envelope)?;
        Ok(Some(envelope))
    }

    /// A page of stored reports after `after` (a provider peer id), and whether
    /// more follow: what a peer pulls on connect.
    pub(crate) fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StateError> {
        super::page_after(
            self.store.as_ref(),
            Tree::UsageReports,
            after.map(str::as_bytes),
            limit,
        )
    }

    /// Adds up the usage of `product` (of its `version` only, if given) from every
    /// provider report this node holds.
    pub(crate) fn totals(
        &self,
        product: &ProductId,
        version: Option<&semver::Version>,
    ) -> Result<ProductUsage, StateError> {
        let mut out = ProductUsage {
            product: product.to_string(),
            version: version.map(|v| v.to_string()),
            ..ProductUsage::default()
        };
        for (_, bytes) in self.store.scan(Tree::UsageReports, None, usize::MAX)? {
            let Ok(r) = Signed::<UsageReport>::from_bytes(&bytes).and_then(|s| s.value()) else {
                continue;
            };
            let mut counted = false;
            let counts = r
                .counts
                .iter()
                .filter(|c| c.product == *product && version.is_none_or(|v| c.version == *v));
            for c in counts {
                out.total += c.fetches;
                *out.by_version.entry(c.version.to_string()).or_default() += c.fetches;
                *out.by_consumer.entry(c.consumer.clone()).or_default() += c.fetches;
                *out.by_provider.entry(r.provider.clone()).or_default() += c.fetches;
                if !c.grant.is_empty() {
                    *out.by_grant.entry(c.grant.clone()).or_default() += c.fetches;
                }
                counted = true;
            }
            out.reports += usize::from(counted);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures::test_governance;

    #[test]
    fn an_oversized_report_keeps_the_most_fetched_counts_that_fit() {
        let (store, governance) = test_governance();
        let catalog = Catalog::new(store.clone(), governance.clone());
        let ledger = UsageLedger::new(
            store.clone(),
            catalog,
            governance,
            "sales".parse().unwrap(),
            Some(Arc::new(KeyPair::generate())),
            PeerId::random(),
        );
        let product: ProductId = "sales/orders".parse().unwrap();
        let n = 8_000u64;
        for i in 0..n {
            let version = semver::Version::new(1, 0, i);
            let k = key(&product, &version, &format!("consumer-{i}"), "");
            store.put(Tree::Usage, &k, &(i + 1).to_be_bytes()).unwrap();
        }
        let envelope = ledger.sign_report().unwrap().unwrap();
        let signed = Signed::<UsageReport>::from_bytes(&envelope).unwrap();
        assert!(signed.payload().len() <= MAX_USAGE_BYTES);
        let report = signed.value().unwrap();
        assert!(report.counts.len() < n as usize && report.counts.len() > 1_000);
        let least_kept = report.counts.iter().map(|c| c.fetches).min().unwrap();
        assert_eq!(
            least_kept,
            n - report.counts.len() as u64 + 1,
            "the most fetched are kept"
        );
    }
}
