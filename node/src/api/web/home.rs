//! The home page: search, products per domain, the newest versions, and the
//! products a consumer should look at twice (SLA late or at risk, flagged).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};
use mesh_contract::health::SlaState;

use super::context::{PageError, WebState};
use super::index::Row;
use super::page::{self, layout, respond, Nav};
use crate::clock::unix_now;

/// Rows in each short list of the home page.
const SHORT_LIST: usize = 10;

pub(super) async fn page(State(s): State<WebState>) -> Result<Response, PageError> {
    let rows = s.index.rows(&s.node).await?;
    let status = s.node.status().await?;
    let now = unix_now();
    let mut per_domain: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in rows.iter() {
        let d = per_domain
            .entry(r.listing.newest.product.domain().as_str())
            .or_default();
        d.0 += 1;
        d.1 += r.listing.versions.len();
    }
    // The newest few, without sorting every product (newest first, then by id).
    let mut recent: Vec<&Row> = rows.iter().collect();
    fn newest_first<'a>(r: &&'a Row) -> (std::cmp::Reverse<u64>, &'a str) {
        (std::cmp::Reverse(r.updated_ms()), r.id())
    }
    if recent.len() > SHORT_LIST {
        recent.select_nth_unstable_by_key(SHORT_LIST - 1, newest_first);
        recent.truncate(SHORT_LIST);
    }
    recent.sort_unstable_by_key(newest_first);
    let troubled: Vec<&Row> = rows
        .iter()
        .filter(|r| r.sla() != SlaState::Ok)
        .take(SHORT_LIST)
        .collect();
    let troubled_count = rows.iter().filter(|r| r.sla() != SlaState::Ok).count();
    let flagged: Vec<&Row> = rows
        .iter()
        .filter(|r| r.flagged())
        .take(SHORT_LIST)
        .collect();
    let flagged_count = rows.iter().filter(|r| r.flagged()).count();
    let versions: usize = rows.iter().map(|r| r.listing.versions.len()).sum();
    let body = html! {
        (hero(&rows, versions, per_domain.len(), &status))
        div.grid {
            (domains(&per_domain))
            (recently_published(&recent, now))
            (troubled_list(&troubled, troubled_count))
            (flagged_list(&flagged, flagged_count))
        }
    };
    Ok(respond(layout("Home", Nav::Home, "", body)))
}

/// The title, the counts and the search box; a hint when the catalog is empty.
fn hero(rows: &[Row], versions: usize, domains: usize, status: &crate::node::NodeStatus) -> Markup {
    html! {
    section.hero {
        h1 { "The mesh's data products" }
        p {
            (rows.len()) " products (" (versions) " versions) from " (domains)
            " domains, as node " (page::short_id(&status.peer_id)) " of domain "
            strong { (status.domain) } " knows them, under governance policy version "
            a href="/governance" { (status.policy_version) } "."
        }
        form.search.big role="search" action="/products" method="get" {
            input type="search" name="q" placeholder="Find a product: a name, a column, a tag, a team"
                aria-label="Find a product";
            button type="submit" { "Search" }
        }
    }
    @if rows.is_empty() {
        p.empty {
            "No products yet. A new node learns the catalog from its peers within seconds of connecting; "
            "this node has " (status.peers) " peer(s). See " a href="/node" { "this node" } "."
        }
    }
    }
}

/// Products and versions per domain.
fn domains(per_domain: &BTreeMap<&str, (usize, usize)>) -> Markup {
    html! {
        section {
            h2 { "Domains" }
            table {
                thead { tr { th { "Domain" } th.num { "Products" } th.num { "Versions" } } }
                tbody {
                    @for (d, (products, versions)) in per_domain {
                        tr {
                            td { a href={ "/domains/" (d) } { (d) } }
                            td.num { a href={ "/products?domain=" (d) } { (products) } }
                            td.num { (versions) }
                        }
                    }
                }
            }
        }
    }
}

/// The newest versions.
fn recently_published(recent: &[&Row], now: u64) -> Markup {
    html! {
        section {
            h2 { "Recently published" }
            ul.plain {
                @for r in recent {
                    @let a = &r.listing.newest;
                    li {
                        a href=(page::product_href(r.id())) { (a.product) "@" (a.version) }
                        " " span.muted { (a.summary.title) " · " (page::ago(now, a.issued_at_ms / 1000)) }
                    }
                }
            }
            p { a href="/products?sort=updated" { "All products, newest first" } }
        }
    }
}

/// Products whose SLA is late or at risk.
fn troubled_list(troubled: &[&Row], troubled_count: usize) -> Markup {
    html! {
        section {
            h2 { "SLA late or at risk" }
            @if troubled.is_empty() {
                p.muted { "Every product's SLA holds." }
            } @else {
                ul.plain {
                    @for r in troubled {
                        li {
                            (page::sla_badge(r.sla())) " "
                            a href=(page::product_href(r.id())) { (r.id()) }
                            @if let Some(h) = &r.listing.health {
                                " " span.muted { (h.reasons.join("; ")) }
                            }
                        }
                    }
                }
                @if troubled_count > troubled.len() {
                    p { a href="/products?sla=late" { "All late" } " · " a href="/products?sla=at-risk" { "all at risk" } }
                }
            }
        }
    }
}

/// Products flagged by the policy or by their own contract.
fn flagged_list(flagged: &[&Row], flagged_count: usize) -> Markup {
    html! {
        section {
            h2 { "Flagged" }
            @if flagged.is_empty() {
                p.muted { "No product breaks the current policy or its own contract." }
            } @else {
                ul.plain {
                    @for r in flagged {
                        li {
                            a href=(page::product_href(r.id())) { (r.id()) }
                            " " span.muted {
                                @for f in &r.listing.flags { (f.rule) ": " (f.reason) " " }
                                @if r.listing.quality_problems > 0 {
                                    (r.listing.quality_problems) " quality problem(s) recorded at publish"
                                }
                            }
                        }
                    }
                }
                @if flagged_count > flagged.len() {
                    p { a href="/products?sla=flagged" { "All " (flagged_count) " flagged products" } }
                }
            }
        }
    }
}
