//! This node's page: who it is, how others reach it, its peers with their gossip
//! scores, and the node's own counters (the `mesh_*` series of `/metrics`).

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::context::{PageError, WebState};
use super::page::{self, layout, respond, Nav};

/// Metric samples shown at most.
const MAX_METRICS: usize = 80;

/// The `mesh_*` samples of OpenMetrics text, as (series, value).
fn mesh_samples(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter(|l| l.starts_with("mesh_"))
        .filter_map(|l| l.rsplit_once(' '))
        .take(MAX_METRICS)
        .collect()
}

pub(super) async fn page(State(s): State<WebState>) -> Result<Response, PageError> {
    let status = s.node.status().await?;
    let peers = s.node.peers().await?;
    let metrics = s.node.metrics_text().await?;
    let r = &status.reachability;
    let body = html! {
        h1 { "This node" }
        div.grid {
            section {
                h2 { "Identity" }
                table {
                    tbody {
                        tr { th { "Peer id" } td { code { (status.peer_id) } } }
                        tr { th { "Domain" } td { a href={ "/domains/" (status.domain) } { (status.domain) } } }
                        tr { th { "Listening on" } td { @for l in &status.listen { code { (l) } br; } } }
                        tr { th { "Catalog" } td { (status.catalog) " product versions" } }
                        tr { th { "Policy" } td { a href="/governance" { "version " (status.policy_version) }
                            @if status.policy_expired { " " (page::badge("bad", "expired")) } } }
                        @if status.equivocations > 0 {
                            tr { th { "Equivocations" } td { (page::badge("bad", &format!("{} seen", status.equivocations))) } }
                        }
                    }
                }
            }
            section {
                h2 { "Reachability" }
                table {
                    tbody {
                        tr { th { "Verdict" } td { (r.status) " (configured " (r.configured) ")" } }
                        tr { th { "External addresses" } td { @for a in &r.external { code { (a) } br; } @if r.external.is_empty() { "none confirmed" } } }
                        tr { th { "Relays holding a slot" } td { (r.relays.len()) } }
                        tr { th { "Peers direct / relayed" } td { (r.direct_peers) " / " (r.relayed_peers) } }
                        tr { th { "Hole punches ok / failed" } td { (r.hole_punches) " / " (r.hole_punch_failures) } }
                        tr { th { "Relay server" } td { @if r.relay_server { "on" } @else { "off" } } }
                    }
                }
            }
        }
        section {
            h2 { "Peers (" (peers.len()) ")" }
            @if peers.is_empty() {
                p.muted { "No peer connected. Check the bootstrap addresses in config.toml and that this node's port is open." }
            } @else {
                table {
                    thead { tr { th { "Peer" } th { "Domain" } th { "Connection" } th { "Address" } th.num { "Gossip score" } th { "Agent" } } }
                    tbody {
                        @for p in &peers {
                            tr {
                                td { (page::short_id(&p.peer_id)) }
                                td { (p.domain.clone().unwrap_or_else(|| "unregistered".into())) }
                                td { (p.connection) " " (p.transport) }
                                td { code { (p.address) } }
                                td.num {
                                    @if let Some(sc) = p.score { (format!("{sc:.1}")) } @else { "–" }
                                    @if p.graylisted { " " (page::badge("bad", "graylisted")) }
                                }
                                td { (p.agent.clone().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Metrics" }
            p.muted { "This node's own counters; " a href="/metrics" { "/metrics" } " has every series for Prometheus." }
            table.metrics {
                tbody {
                    @for (series, value) in mesh_samples(&metrics) {
                        tr { td { code { (series) } } td.num { (value) } }
                    }
                }
            }
        }
    };
    Ok(respond(layout("This node", Nav::Node, "", body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nodes_own_samples_are_shown() {
        let text =
            "# HELP mesh_peers peers\nmesh_peers 3\nlibp2p_x 1\nmesh_publishes_total 2\n# EOF\n";
        assert_eq!(
            mesh_samples(text),
            vec![("mesh_peers", "3"), ("mesh_publishes_total", "2")]
        );
    }
}
