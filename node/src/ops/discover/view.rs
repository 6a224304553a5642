//! What judging a listed version needs (this node, its peers, the provider
//! records, the policy's registry) and the judging itself: a version's providers
//! and its health.

use std::collections::{BTreeMap, HashSet};

use mesh_contract::health::judge;
use mesh_protocol::{Announcement, Manifest};

use crate::net::{NetError, NetworkHandle};
use crate::state::announcements::{newest_of, ByKey};
use crate::state::catalog::{CatalogEntry, ProviderStatus};
use crate::state::governance::Governance;
use crate::state::providers::Providers;

/// What judging providers needs: this node, its connected peers, the records, and
/// the policy's registry (copied once per view, not once per product: with 1,000
/// domains a copy per product was most of a 100,000-product listing).
#[derive(Debug, Clone)]
pub(crate) struct ProviderView {
    providers: Providers,
    policy: std::sync::Arc<mesh_protocol::Policy>,
    me: String,
    connected: HashSet<String>,
}

impl ProviderView {
    /// A view as of now: the peers `net` is connected to.
    pub(crate) async fn now(
        net: &NetworkHandle,
        providers: &Providers,
        governance: &Governance,
    ) -> Result<Self, NetError> {
        Ok(ProviderView {
            providers: providers.clone(),
            policy: std::sync::Arc::new(governance.policy()),
            me: net.peer_id().to_string(),
            connected: net.peers().await?.into_iter().map(|p| p.peer_id).collect(),
        })
    }

    /// The nodes serving `e`'s version: this node if it holds it, the nodes its
    /// announcement names, and the replicas whose records list it. Connected ones
    /// (reachable) first, then by when last seen.
    pub(crate) fn statuses(&self, e: &CatalogEntry, now_ms: u64) -> Vec<ProviderStatus> {
        let a = &e.announcement;
        let policy = &self.policy;
        let mut out: Vec<ProviderStatus> = Vec::new();
        let me = self.me.as_str();
        let add = |out: &mut Vec<ProviderStatus>, peer: &str| -> Option<usize> {
            if let Some(i) = out.iter().position(|p| p.peer_id == peer) {
                return Some(i);
            }
            let this_node = peer == me;
            if this_node && !e.local {
                return None;
            }
            out.push(ProviderStatus {
                peer_id: peer.to_string(),
                domain: policy.domain_of_node(peer).map(|d| d.to_string()),
                announced: false,
                replica: false,
                this_node,
                connected: this_node || self.connected.contains(peer),
                last_seen_ms: None,
                stale: false,
            });
            Some(out.len() - 1)
        };
        if e.local {
            add(&mut out, me);
        }
        for p in &a.providers {
            if let Some(i) = add(&mut out, p) {
                out[i].announced = true;
            }
        }
        for h in self.providers.holders(&a.manifest, now_ms) {
            if let Some(i) = add(&mut out, &h.peer_id) {
                out[i].replica = true;
                out[i].last_seen_ms = Some(h.last_seen_ms);
                out[i].stale = h.stale;
            }
        }
        out.sort_by(|x, y| {
            (!x.connected, std::cmp::Reverse(x.last_seen_ms))
                .cmp(&(!y.connected, std::cmp::Reverse(y.last_seen_ms)))
        });
        out
    }
}

/// The newest version of product `id`, looked up in `index` once and then kept in
/// `newest`.
pub(super) fn newest_known<'a>(
    index: &'a ByKey,
    newest: &mut BTreeMap<String, &'a Announcement>,
    id: String,
) -> Option<&'a Announcement> {
    if let Some(n) = newest.get(&id).copied() {
        return Some(n);
    }
    let n = newest_of(index, &id)?;
    newest.insert(id, n);
    Some(n)
}

/// Fills in a newest version's providers and its health at `now`.
pub(super) fn annotate(
    e: &mut CatalogEntry,
    manifest: Option<&Manifest>,
    newest: &BTreeMap<String, &Announcement>,
    view: &ProviderView,
    now: u64,
) {
    e.providers = view.statuses(e, now.saturating_mul(1000));
    let reachable = e.providers.iter().filter(|p| p.connected).count();
    e.health = Some(judge(&e.announcement, manifest, newest, reachable, now));
}
