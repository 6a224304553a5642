//! The node's own metrics, registered in the same `prometheus_client` registry as
//! libp2p's (served at `GET /metrics`). Counters are bumped where the work happens
//! (`net/` for serving and admission, `ops/` for publish and fetch); the catalog and
//! SLA gauges are set from the catalog when the metrics are scraped.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges of what this node does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    /// Chunk bytes served to peers.
    pub(crate) served_bytes: Counter,
    /// Chunk requests served (single chunks and batches).
    pub(crate) served_requests: Counter,
    /// Bytes downloaded by completed fetches.
    pub(crate) fetched_bytes: Counter,
    /// Completed fetches.
    pub(crate) fetches: Counter,
    /// Completed publishes.
    pub(crate) publishes: Counter,
    /// Inbound transfer requests answered `Busy` by the per-peer or overall limits.
    pub(crate) refused_requests: Counter,
    /// Gossip messages (and synced entries) that looked valid but this node failed
    /// to store: its own fault, so the sender was not penalized.
    pub(crate) not_kept: Counter,
    /// Announcements not kept because their domain is over the policy's limits.
    pub(crate) over_limit: Counter,
    /// Reads (manifests and chunks) admitted whose responses are not yet written.
    pub(crate) reads_in_flight: Gauge,
    /// Set at scrape time from the node's state.
    pub(crate) peers: Gauge,
    pub(crate) policy_version: Gauge,
    pub(crate) catalog_versions: Gauge,
    pub(crate) catalog_products: Gauge,
    pub(crate) catalog_local_versions: Gauge,
    pub(crate) sla_ok: Gauge,
    pub(crate) sla_late: Gauge,
    pub(crate) sla_at_risk: Gauge,
    pub(crate) chunks: Gauge,
}

impl Metrics {
    /// Fresh metrics, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let counters = [
            (
                "mesh_served_bytes",
                "Chunk bytes served to peers.",
                &m.served_bytes,
            ),
            (
                "mesh_served_requests",
                "Chunk requests served.",
                &m.served_requests,
            ),
            (
                "mesh_refused_requests",
                "Inbound transfer requests answered Busy by the per-peer or overall limits.",
                &m.refused_requests,
            ),
            (
                "mesh_fetched_bytes",
                "Bytes downloaded by completed fetches.",
                &m.fetched_bytes,
            ),
            ("mesh_fetches", "Completed fetches.", &m.fetches),
            ("mesh_publishes", "Completed publishes.", &m.publishes),
            (
                "mesh_gossip_not_kept",
                "Peer messages that this node failed to store (a local fault; the sender keeps its score).",
                &m.not_kept,
            ),
            (
                "mesh_announcements_over_limit",
                "Announcements not kept because their domain is over the policy's domain limits.",
                &m.over_limit,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        let gauges = [
            ("mesh_peers", "Connected peers.", &m.peers),
            (
                "mesh_policy_version",
                "Version of the enforced policy.",
                &m.policy_version,
            ),
            (
                "mesh_catalog_versions",
                "Product versions in the catalog.",
                &m.catalog_versions,
            ),
            (
                "mesh_catalog_products",
                "Products in the catalog.",
                &m.catalog_products,
            ),
            (
                "mesh_catalog_local_versions",
                "Product versions this node holds completely.",
                &m.catalog_local_versions,
            ),
            (
                "mesh_sla_ok_products",
                "Products whose SLA holds.",
                &m.sla_ok,
            ),
            (
                "mesh_sla_late_products",
                "Products late on freshness or update frequency.",
                &m.sla_late,
            ),
            (
                "mesh_sla_at_risk_products",
                "Products with too few reachable providers.",
                &m.sla_at_risk,
            ),
            ("mesh_chunks", "Chunks in the store.", &m.chunks),
            (
                "mesh_reads_in_flight",
                "Reads (manifests and chunks) admitted whose responses are not yet written.",
                &m.reads_in_flight,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        m
    }
}

/// A count as a gauge value (saturating).
pub(crate) fn gauge_value(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
