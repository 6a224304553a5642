//! Product health as a consumer sees it before building on a product: the SLA watch
//! (freshness, update frequency, availability), the lifecycle, and lineage flags
//! (an upstream that is deprecated or retired). Evaluated for the newest version of
//! each product, from the catalog and the manifests this node knows, at a given
//! time, so nodes with the same catalog and clock judge a product the same way.

use std::collections::{BTreeMap, HashSet};

use mesh_protocol::manifest::{Manifest, Sla, Status};
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogEntry;

/// The SLA verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlaState {
    /// Every declared level holds.
    Ok,
    /// The newest version is older than the freshness or update frequency allows.
    Late,
    /// Too few providers are reachable for the availability target.
    AtRisk,
}

impl std::fmt::Display for SlaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlaState::Ok => "ok",
            SlaState::Late => "late",
            SlaState::AtRisk => "at-risk",
        })
    }
}

/// Health of a product's newest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The SLA verdict.
    pub sla: SlaState,
    /// Why, when not ok (one line per broken level).
    pub reasons: Vec<String>,
    /// Upstream products that are deprecated or retired.
    pub lineage: Vec<String>,
}

/// Providers needed for an availability target in basis points: one, two at
/// 99.9% and above.
pub fn providers_needed(availability_bp: u16) -> usize {
    if availability_bp >= 9990 {
        2
    } else {
        1
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{:.1}h", s as f64 / 3600.0),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Evaluates `sla` for a newest version published at `published_at` (unix seconds)
/// with `reachable` providers, at `now`.
pub fn evaluate_sla(
    sla: &Sla,
    published_at: u64,
    reachable: usize,
    now: u64,
) -> (SlaState, Vec<String>) {
    let age = now.saturating_sub(published_at);
    let mut late = Vec::new();
    if let Some(max) = sla.freshness_secs {
        if age > max {
            late.push(format!(
                "newest version is {} old; freshness SLA {}",
                human(age),
                human(max)
            ));
        }
    }
    if let Some(every) = sla.update_frequency_secs {
        if age > every {
            late.push(format!(
                "no new version for {}; expected every {}",
                human(age),
                human(every)
            ));
        }
    }
    if !late.is_empty() {
        return (SlaState::Late, late);
    }
    if let Some(bp) = sla.availability_bp {
        let needed = providers_needed(bp);
        if reachable < needed {
            return (
                SlaState::AtRisk,
                vec![format!(
                    "{reachable} provider(s) reachable; {needed} needed for {:.2}% availability",
                    f64::from(bp) / 100.0
                )],
            );
        }
    }
    (SlaState::Ok, Vec::new())
}

/// The newest version of every product in `all`, by product id.
fn newest_versions(all: &[CatalogEntry]) -> BTreeMap<String, &CatalogEntry> {
    let mut newest: BTreeMap<String, &CatalogEntry> = BTreeMap::new();
    for e in all {
        let key = e.announcement.product.to_string();
        if newest
            .get(&key)
            .is_none_or(|n| n.announcement.version < e.announcement.version)
        {
            newest.insert(key, e);
        }
    }
    newest
}

/// Fills in the health of every entry that is its product's newest version.
/// `manifest` gives the manifests this node knows; `reachable` the providers of an
/// announcement this node can reach.
pub fn annotate(
    entries: &mut [CatalogEntry],
    all: &[CatalogEntry],
    manifest: impl Fn(&CatalogEntry) -> Option<Manifest>,
    reachable: impl Fn(&CatalogEntry) -> usize,
    now: u64,
) {
    let newest = newest_versions(all);
    for e in entries.iter_mut() {
        let key = e.announcement.product.to_string();
        let is_newest = newest
            .get(&key)
            .is_some_and(|n| n.announcement.version == e.announcement.version);
        if !is_newest {
            continue;
        }
        let m = manifest(e);
        let published_at = m
            .as_ref()
            .map_or(e.announcement.issued_at_ms / 1000, |m| m.created_at);
        let sla = m.as_ref().map(|m| m.sla.clone()).unwrap_or_default();
        let (state, reasons) = evaluate_sla(&sla, published_at, reachable(e), now);
        let lineage = m
            .iter()
            .flat_map(|m| m.lineage.iter())
            .filter_map(|u| {
                let up = newest.get(&u.id.to_string())?;
                let status = up.announcement.summary.status;
                matches!(status, Status::Deprecated | Status::Retired).then(|| {
                    format!(
                        "upstream {}@{} is {status}",
                        up.announcement.product, up.announcement.version
                    )
                })
            })
            .collect();
        e.health = Some(Health {
            sla: state,
            reasons,
            lineage,
        });
    }
}

/// One product in a lineage graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageNode {
    /// `domain/name`.
    pub id: String,
    /// Newest version in the catalog, if the product is known.
    pub version: Option<String>,
    /// Its lifecycle status, if known.
    pub status: Option<Status>,
}

/// The products upstream and downstream of one product, as edges
/// `upstream -> downstream`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The product asked about.
    pub root: String,
    /// Every product in the graph.
    pub nodes: Vec<LineageNode>,
    /// `(upstream, downstream)` pairs.
    pub edges: Vec<(String, String)>,
}

/// Products followed at most this many hops either way.
pub const MAX_LINEAGE_DEPTH: usize = 16;

/// Builds the lineage graph of `root` from each product's newest manifest
/// (`upstreams` gives a product's declared upstream ids, if its manifest is known).
pub fn lineage(
    root: &str,
    all: &[CatalogEntry],
    upstreams: impl Fn(&CatalogEntry) -> Option<Vec<String>>,
) -> Lineage {
    let newest = newest_versions(all);
    let ups: BTreeMap<String, Vec<String>> = newest
        .iter()
        .filter_map(|(k, e)| Some((k.clone(), upstreams(e)?)))
        .collect();
    let mut edges = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([root.to_string()]);
    // Upstream, breadth first.
    let mut frontier = vec![root.to_string()];
    for _ in 0..MAX_LINEAGE_DEPTH {
        let mut next = Vec::new();
        for p in &frontier {
            for u in ups.get(p).into_iter().flatten() {
                edges.push((u.clone(), p.clone()));
                if seen.insert(u.clone()) {
                    next.push(u.clone());
                }
            }
        }
        frontier = next;
    }
    // Downstream, breadth first.
    let mut frontier = vec![root.to_string()];
    let mut seen_down: HashSet<String> = HashSet::from([root.to_string()]);
    for _ in 0..MAX_LINEAGE_DEPTH {
        let mut next = Vec::new();
        for p in &frontier {
            for (d, list) in &ups {
                if list.contains(p) {
                    let edge = (p.clone(), d.clone());
                    if !edges.contains(&edge) {
                        edges.push(edge);
                    }
                    seen.insert(d.clone());
                    if seen_down.insert(d.clone()) {
                        next.push(d.clone());
                    }
                }
            }
        }
        frontier = next;
    }
    let mut ids: Vec<String> = seen.into_iter().collect();
    ids.sort();
    Lineage {
        root: root.to_string(),
        nodes: ids
            .into_iter()
            .map(|id| {
                let e = newest.get(&id);
                LineageNode {
                    version: e.map(|e| e.announcement.version.to_string()),
                    status: e.map(|e| e.announcement.summary.status),
                    id,
                }
            })
            .collect(),
        edges,
    }
}

impl crate::node::Node {
    /// The catalog filtered by `filter`, each product's newest version annotated with
    /// its health at `now` (unix seconds).
    pub async fn products_at(
        &self,
        filter: crate::catalog::Filter,
        now: u64,
    ) -> Result<Vec<CatalogEntry>, crate::NodeError> {
        let connected: HashSet<String> = self
            .net
            .peers()
            .await
            .map_err(crate::NodeError::Network)?
            .into_iter()
            .map(|p| p.peer_id)
            .collect();
        let me = self.peer_id().to_string();
        let catalog = self.shared.catalog.clone();
        tokio::task::spawn_blocking(move || {
            let all = catalog.list(&Default::default())?;
            let mut entries = catalog.list(&filter)?;
            annotate(
                &mut entries,
                &all,
                |e| {
                    catalog
                        .manifest(&e.announcement.manifest)
                        .ok()
                        .flatten()
                        .map(|(_, m)| m)
                },
                |e| {
                    let listed = e
                        .announcement
                        .providers
                        .iter()
                        .filter(|p| connected.contains(*p) || (**p == me && e.local))
                        .count();
                    let me_unlisted = e.local && !e.announcement.providers.contains(&me);
                    listed + usize::from(me_unlisted)
                },
                now,
            );
            Ok(entries)
        })
        .await
        .map_err(|e| crate::NodeError::Network(format!("catalog task failed: {e}")))?
    }

    /// The lineage graph of `product` from the manifests this node knows.
    pub async fn lineage(&self, product: &str) -> Result<Lineage, crate::NodeError> {
        let catalog = self.shared.catalog.clone();
        let root = product.to_string();
        tokio::task::spawn_blocking(move || {
            let all = catalog.list(&Default::default())?;
            if !all
                .iter()
                .any(|e| e.announcement.product.to_string() == root)
            {
                return Err(crate::NodeError::NotFound(format!(
                    "{root} is not in the catalog; see `mesh products`"
                )));
            }
            Ok(lineage(&root, &all, |e| {
                let (_, m) = catalog.manifest(&e.announcement.manifest).ok().flatten()?;
                Some(m.lineage.iter().map(|u| u.id.to_string()).collect())
            }))
        })
        .await
        .map_err(|e| crate::NodeError::Network(format!("catalog task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sla_flips_from_ok_to_late_as_the_clock_moves() {
        let sla = Sla {
            freshness_secs: Some(86_400),
            update_frequency_secs: Some(2 * 86_400),
            availability_bp: Some(9990),
            retention_secs: None,
        };
        let t0 = 1_800_000_000;
        assert_eq!(evaluate_sla(&sla, t0, 2, t0 + 3600), (SlaState::Ok, vec![]));
        let (state, reasons) = evaluate_sla(&sla, t0, 2, t0 + 86_401);
        assert_eq!(state, SlaState::Late);
        assert_eq!(
            reasons,
            vec!["newest version is 24.0h old; freshness SLA 1d"]
        );
        let (_, reasons) = evaluate_sla(&sla, t0, 2, t0 + 3 * 86_400);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        let (state, reasons) = evaluate_sla(&sla, t0, 1, t0 + 60);
        assert_eq!(state, SlaState::AtRisk);
        assert_eq!(
            reasons,
            vec!["1 provider(s) reachable; 2 needed for 99.90% availability"]
        );
        // Nothing declared: always ok.
        assert_eq!(
            evaluate_sla(&Sla::default(), 0, 0, u64::MAX).0,
            SlaState::Ok
        );
    }
}
