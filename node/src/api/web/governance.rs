//! The governance pages: the policy this node enforces (version, expiry, council,
//! history, rules with their ids and reasons, settings) and the domain registry
//! (each domain's contact, publisher keys, nodes and products).

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use mesh_protocol::rules::Rules;
use mesh_protocol::DomainName;

use super::context::{PageError, WebState};
use super::page::{self, layout, respond, Nav};
use crate::api::types::PolicyView;
use crate::clock::unix_now;
use crate::error::NodeError;

pub(super) async fn page(State(s): State<WebState>) -> Result<Response, PageError> {
    let now = unix_now();
    let (signed, policy) = s.node.policy(None)?;
    let view = PolicyView::new(&signed, policy, now);
    let p = &view.policy;
    let history = s.node.policy_history();
    let rules = Rules::parse(&p.rules).map(|r| r.summaries());
    let signers: HashSet<&String> = view.signers.iter().collect();
    let body = html! {
        h1 { "Governance" }
        p {
            "This node enforces policy version " strong { (p.version) } ", issued " (page::date(p.issued_at))
            ", expires " (page::date(p.expires_at)) " "
            @if view.expired { (page::badge("bad", "expired: publishing is refused until the council signs a new version")) }
            @else { "(" (page::span(p.expires_at.saturating_sub(now))) " left)" }
            ". Hash " code title=(view.hash) { (view.hash.get(..12).unwrap_or(&view.hash)) } "."
        }
        div.grid {
            section {
                h2 { "Council" }
                p { (p.council.threshold) " of " (p.council.members.len()) " members must sign the next version (and a threshold of its own council)." }
                table {
                    thead { tr { th { "Member key" } th { "Signed this version" } } }
                    tbody {
                        @for k in &p.council.members {
                            tr {
                                td { (page::short_id(&k.to_string())) }
                                td { @if signers.contains(&k.to_string()) { (page::badge("good", "signed")) } @else { "–" } }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Settings" }
                table {
                    tbody {
                        tr { th { "schema_compatibility" } td { (p.settings.schema_compatibility) } }
                        tr { th { "quality" } td { (p.settings.quality) } }
                        tr { th { "serve_retired" } td { (p.settings.serve_retired) } }
                        tr { th { "max_versions_per_domain" } td { (limit(p.settings.domain_limits.max_versions)) } }
                        tr { th { "max_versions_per_domain_per_hour" } td { (limit(p.settings.domain_limits.max_versions_per_hour)) } }
                    }
                }
                p.muted { "In the words a policy change file uses." }
            }
        }
        section {
            h2 { "Rules" }
            @match &rules {
                Ok(list) if list.is_empty() => p { "No rules: every registered domain may publish and every node may fetch." },
                Ok(list) => {
                    p.muted { "Cedar rules, evaluated the same way by every node at publish and at fetch. A denial names the rule and its reason." }
                    table.rules {
                        thead { tr { th { "Rule" } th { "Effect" } th { "Reason" } } }
                        tbody {
                            @for r in list {
                                tr {
                                    td { code { (r.id) } }
                                    td { @if r.effect == "forbid" { (page::badge("warn", "forbid")) } @else { (page::badge("good", "permit")) } }
                                    td {
                                        (r.reason.clone().unwrap_or_default())
                                        details { summary { "text" } pre { code { (r.text) } } }
                                    }
                                }
                            }
                        }
                    }
                }
                Err(e) => p.error { "The rules do not parse: " (e.to_string()) },
            }
        }
        section {
            h2 { "Domains" }
            p { (p.domains.len()) " registered: " @for (i, d) in p.domains.keys().enumerate() { @if i > 0 { ", " } a href={ "/domains/" (d) } { (d) } } }
        }
        section {
            h2 { "History" }
            table {
                thead { tr { th { "Version" } th { "Issued" } th { "Expires" } th.num { "Council" } th.num { "Domains" } th.num { "Rules" } } }
                tbody {
                    @for (_, h) in history.iter().rev() {
                        tr.current[h.version == p.version] {
                            td { (h.version) }
                            td { (page::date(h.issued_at)) }
                            td { (page::date(h.expires_at)) }
                            td.num { (h.council.threshold) " of " (h.council.members.len()) }
                            td.num { (h.domains.len()) }
                            td.num { (Rules::parse(&h.rules).map(|r| r.summaries().len()).unwrap_or(0)) }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(layout("Governance", Nav::Governance, "", body)))
}

pub(super) async fn domains(State(s): State<WebState>) -> Result<Response, PageError> {
    let (_, policy) = s.node.policy(None)?;
    let rows = s.index.rows(&s.node).await?;
    let body = html! {
        h1 { "Domains" }
        p { "The domains the governance policy registers: who may publish for each, and their nodes." }
        table {
            thead { tr { th { "Domain" } th { "Contact" } th.num { "Publisher keys" } th.num { "Nodes" } th.num { "Products" } } }
            tbody {
                @for (name, d) in &policy.domains {
                    tr {
                        td { a href={ "/domains/" (name) } { (name) } }
                        td { (d.contact) }
                        td.num { (d.publisher_keys.len()) }
                        td.num { (d.nodes.len()) }
                        td.num { (rows.iter().filter(|r| r.listing.newest.product.domain() == name).count()) }
                    }
                }
            }
        }
    };
    Ok(respond(layout("Domains", Nav::Domains, "", body)))
}

pub(super) async fn domain(
    State(s): State<WebState>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let domain = DomainName::new(&name).map_err(|e| NodeError::NotFound(e.to_string()))?;
    let (_, policy) = s.node.policy(None)?;
    let rows = s.index.rows(&s.node).await?;
    let products: Vec<_> = rows
        .iter()
        .filter(|r| r.listing.newest.product.domain() == &domain)
        .collect();
    let entry = policy.domains.get(&domain);
    if entry.is_none() && products.is_empty() {
        return Err(NodeError::NotFound(format!(
            "no domain {domain} in policy version {} or in the catalog",
            policy.version
        ))
        .into());
    }
    let connected: HashSet<String> = s
        .node
        .peers()
        .await?
        .into_iter()
        .map(|p| p.peer_id)
        .collect();
    let me = s.node.peer_id().to_string();
    let body = html! {
        p.crumbs { a href="/domains" { "Domains" } " / " (domain) }
        h1 { "Domain " (domain) }
        @match entry {
            None => p.error { "Not registered in policy version " (policy.version) ": its products are flagged and no longer accepted." },
            Some(d) => {
                p { "Contact: " (if d.contact.is_empty() { "not given" } else { d.contact.as_str() }) }
                div.grid {
                    section {
                        h2 { "Publisher keys" }
                        ul.plain { @for k in &d.publisher_keys { li { code { (k) } } } }
                    }
                    section {
                        h2 { "Nodes" }
                        table {
                            tbody {
                                @for n in &d.nodes {
                                    tr {
                                        td { (page::short_id(n)) }
                                        td {
                                            @if *n == me { (page::badge("info", "this node")) }
                                            @else if connected.contains(n) { (page::badge("good", "connected")) }
                                            @else { (page::badge("warn", "not connected")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Products" }
            @if products.is_empty() { p.muted { "None published yet." } }
            @else {
                table {
                    thead { tr { th { "Product" } th { "Title" } th { "Version" } th { "Status" } th { "SLA" } } }
                    tbody {
                        @for r in &products {
                            @let a = &r.listing.newest;
                            tr {
                                td { a href=(page::product_href(r.id())) { (a.product) } }
                                td { (a.summary.title) }
                                td { (a.version) }
                                td { (page::status_badge(a.summary.status)) }
                                td { (page::sla_badge(r.sla())) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(layout(
        &format!("Domain {domain}"),
        Nav::Domains,
        "",
        body,
    )))
}

/// A domain limit as the page shows it: 0 is no limit.
fn limit(n: u32) -> String {
    if n == 0 {
        "no limit".to_string()
    } else {
        n.to_string()
    }
}
