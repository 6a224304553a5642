//! Product health as a consumer judges it before building on a product: the SLA
//! watch (freshness, update frequency, availability), lineage flags (an upstream
//! that is deprecated or retired), and what a version's lifecycle status means for
//! its consumers. Pure: given the catalog's announcements, the
//! manifests known, reachable providers and a clock, every node judges a product the
//! same way.

use std::collections::{BTreeMap, HashSet};

use mesh_protocol::manifest::{Manifest, Sla, Status};
use serde::{Deserialize, Serialize};

use mesh_protocol::{Announcement, Hash};

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
pub fn newest_versions<'a>(
    all: impl IntoIterator<Item = &'a Announcement>,
) -> BTreeMap<String, &'a Announcement> {
    let mut newest: BTreeMap<String, &Announcement> = BTreeMap::new();
    for a in all {
        let key = a.product.to_string();
        if newest.get(&key).is_none_or(|n| n.version < a.version) {
            newest.insert(key, a);
        }
    }
    newest
}

/// The health of `a`, a product's newest version, whose manifest (if known) is
/// `manifest`, with `reachable` providers, at `now`; `newest` is the newest version
/// of every product (see [`newest_versions`]), for the lineage flags.
pub fn judge(
    a: &Announcement,
    manifest: Option<&Manifest>,
    newest: &BTreeMap<String, &Announcement>,
    reachable: usize,
    now: u64,
) -> Health {
    let published_at = manifest.map_or(a.issued_at_ms / 1000, |m| m.created_at);
    let sla = manifest.map(|m| m.sla.clone()).unwrap_or_default();
    let (state, reasons) = evaluate_sla(&sla, published_at, reachable, now);
    let lineage = manifest
        .iter()
        .flat_map(|m| m.lineage.iter())
        .filter_map(|u| {
            let up = newest.get(&u.id.to_string())?;
            let status = up.summary.status;
            matches!(status, Status::Deprecated | Status::Retired)
                .then(|| format!("upstream {}@{} is {status}", up.product, up.version))
        })
        .collect();
    Health {
        sla: state,
        reasons,
        lineage,
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
    /// The edges whose downstream pins one exact upstream version
    /// (`[[lineage]] manifest = "<hash>"`).
    #[serde(default)]
    pub pins: Vec<LineagePin>,
    /// Products in the catalog whose contracts the node that drew the graph may
    /// not read (the rules deny it their manifests): they may be built on these
    /// products, and such edges are hidden from it.
    #[serde(default)]
    pub hidden: usize,
}

/// An upstream version a downstream product is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineagePin {
    /// The upstream product.
    pub upstream: String,
    /// The product that pins it.
    pub downstream: String,
    /// The pinned manifest.
    pub manifest: String,
    /// Its version, if the catalog knows that manifest.
    pub version: Option<String>,
}

/// Products followed at most this many hops either way.
pub const MAX_LINEAGE_DEPTH: usize = 16;

/// What a lineage graph is drawn from: each product's newest version, what its
/// newest manifest declares upstream, and the reverse of that. A source answers
/// each question for one product, so drawing one product's graph reads only the
/// products in it (at 100,000 products, building maps of the whole catalog for
/// every graph was most of a product page).
pub trait LineageSource {
    /// The newest version of product `id`, if the catalog has it.
    fn newest(&self, id: &str) -> Option<&Announcement>;
    /// What product `id`'s newest manifest declares it is built from (each
    /// upstream's id, and the manifest it pins if it pins one); `None` when that
    /// manifest is not known.
    fn upstreams(&self, id: &str) -> Option<Vec<(String, Option<Hash>)>>;
    /// Every product whose newest manifest declares `id` upstream, sorted by id,
    /// each once.
    fn downstreams(&self, id: &str) -> Vec<String>;
    /// The version of `product` that was published with `manifest`, if known.
    fn version_of(&self, product: &str, manifest: &Hash) -> Option<semver::Version>;
}

/// Builds the lineage graph of `root` from each product's newest manifest, at most
/// [`MAX_LINEAGE_DEPTH`] hops upstream and downstream.
pub fn lineage(root: &str, source: &impl LineageSource) -> Lineage {
    let mut declared: BTreeMap<String, Vec<(String, Option<Hash>)>> = BTreeMap::new();
    let mut upstreams_of = |id: &str| -> Vec<(String, Option<Hash>)> {
        declared
            .entry(id.to_string())
            .or_insert_with(|| source.upstreams(id).unwrap_or_default())
            .clone()
    };
    let mut edges = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([root.to_string()]);
    // Upstream, breadth first.
    let mut frontier = vec![root.to_string()];
    for _ in 0..MAX_LINEAGE_DEPTH {
        let mut next = Vec::new();
        for p in &frontier {
            for (u, _) in upstreams_of(p) {
                edges.push((u.clone(), p.clone()));
                if seen.insert(u.clone()) {
                    next.push(u);
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
            for d in source.downstreams(p) {
                let edge = (p.clone(), d.clone());
                if !edges.contains(&edge) {
                    edges.push(edge);
                }
                seen.insert(d.clone());
                if seen_down.insert(d.clone()) {
                    next.push(d);
                }
            }
        }
        frontier = next;
    }
    let mut pins = Vec::new();
    for (u, d) in &edges {
        for (_, hash) in upstreams_of(d).iter().filter(|(x, _)| x == u) {
            if let Some(h) = hash {
                pins.push(LineagePin {
                    upstream: u.clone(),
                    downstream: d.clone(),
                    manifest: h.to_string(),
                    version: source.version_of(u, h).map(|v| v.to_string()),
                });
            }
        }
    }
    let mut ids: Vec<String> = seen.into_iter().collect();
    ids.sort();
    Lineage {
        pins,
        hidden: 0,
        root: root.to_string(),
        nodes: ids
            .into_iter()
            .map(|id| {
                let e = source.newest(&id);
                LineageNode {
                    version: e.map(|a| a.version.to_string()),
                    status: e.map(|a| a.summary.status),
                    id,
                }
            })
            .collect(),
        edges,
    }
}

/// What a consumer should hear about the version's lifecycle.
pub fn lifecycle_warnings(m: &Manifest) -> Vec<String> {
    match m.status {
        Status::Deprecated => vec![format!(
            "{}@{} is deprecated: its owner ({}) asks consumers to migrate to a newer version",
            m.id, m.version, m.owner.team
        )],
        Status::Retired => vec![format!(
            "{}@{} is retired: it is no longer supported",
            m.id, m.version
        )],
        Status::Draft => vec![format!(
            "{}@{} is a draft: not for production use",
            m.id, m.version
        )],
        Status::Active => Vec::new(),
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

    #[test]
    fn only_a_version_that_is_not_active_warns_its_consumers() {
        let draft: crate::ManifestDraft = serde_json::from_str(
            r#"{"id": "sales/orders", "version": "1.0.0", "title": "Orders", "owner": {"team": "t"}}"#,
        )
        .expect("draft");
        let base = draft
            .into_manifest(crate::PublishFacts {
                files: Vec::new(),
                created_at: 0,
                publisher: mesh_protocol::KeyPair::from_secret([1; 32]).public(),
                quality: None,
            })
            .expect("manifest");
        let m = |status| Manifest {
            status,
            ..base.clone()
        };
        assert!(lifecycle_warnings(&m(Status::Active)).is_empty());
        for (status, word) in [
            (Status::Deprecated, "deprecated"),
            (Status::Retired, "retired"),
            (Status::Draft, "draft"),
        ] {
            let w = lifecycle_warnings(&m(status));
            assert_eq!(w.len(), 1);
            assert!(w[0].contains(word), "{w:?}");
        }
    }
}
