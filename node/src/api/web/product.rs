//! A product's page: what it is and who owns it, its versions and files, the schema,
//! quality measured at publish, the SLA and its state, providers, lineage and usage,
//! the contract to download, and the exact command that fetches it.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use mesh_protocol::manifest::{Manifest, RuleState};
use mesh_protocol::rules::Decision;
use mesh_protocol::{Announcement, ProductId, ProductRef};
use serde::Deserialize;

use super::context::{PageError, PageQuery, WebState};
use super::page::{self, layout, respond, Nav};
use super::{chart, index, lineage_svg};
use crate::api::types::{
    AccessFilter, AccessView, CatalogEntry, DecisionView, ProductUsage, SubscriberView,
};
use crate::clock::unix_now;
use crate::error::NodeError;
use crate::ops::discover::VersionBrief;
use crate::state::derived::{DeriveState, DerivedProduct};

#[derive(Debug, Deserialize)]
pub(super) struct VersionQuery {
    version: Option<String>,
}

fn target(domain: &str, name: &str, version: Option<&str>) -> Result<ProductRef, NodeError> {
    let text = match version.filter(|v| !v.is_empty()) {
        Some(v) => format!("{domain}/{name}@{v}"),
        None => format!("{domain}/{name}"),
    };
    text.parse()
        .map_err(|e: mesh_protocol::id::IdError| NodeError::NotFound(e.to_string()))
}

pub(super) async fn page(
    State(s): State<WebState>,
    Path((domain, name)): Path<(String, String)>,
    PageQuery(q): PageQuery<VersionQuery>,
) -> Result<Response, PageError> {
    let target = target(&domain, &name, q.version.as_deref())?;
    let now = unix_now();
    let (mut entry, manifest) = s.node.describe_unjudged(&target, now).await?;
    let id = target.id.to_string();
    let rows = s.index.rows(&s.node).await?;
    let row = index::find(&rows, &id);
    // The listing judged the newest version (at most a few seconds ago); older
    // versions have no verdict, as in `mesh show`.
    entry.health = row
        .map(|r| &r.listing)
        .filter(|l| l.newest.manifest == entry.announcement.manifest)
        .and_then(|l| l.health.clone());
    let versions: Vec<VersionBrief> = row.map(|r| r.listing.versions.clone()).unwrap_or_default();
    let lineage = index::lineage(&rows, &id);
    let usage = s
        .node
        .usage(ProductRef {
            id: target.id.clone(),
            version: None,
        })
        .await
        .ok();
    let access = s
        .node
        .access_list(AccessFilter {
            product: Some(id.clone()),
            ..AccessFilter::default()
        })
        .await
        .unwrap_or_default();
    let subscribers = s
        .node
        .subscribers(target.id.clone())
        .await
        .unwrap_or_default();
    let derived = s.node.derived().await.unwrap_or_default();
    let derived = derived.iter().find(|d| d.product == target.id);
    let status = s.node.status().await?;
    let a = &entry.announcement;
    let newest = versions.last().map(|v| &v.version) == Some(&a.version);
    let title = format!("{}@{}", a.product, a.version);
    let manifest_error = manifest.as_ref().err().map(|e| e.to_string());
    let manifest = manifest.ok();
    // The one-shot command only where the rules let a reader with no registered
    // identity fetch.
    let anonymous = manifest.as_ref().map(|m| s.node.anonymous_fetch(m));
    let listen = status
        .listen
        .first()
        .map(|addr| format!("{addr}/p2p/{}", status.peer_id));
    let body = html! {
        (header(&entry, manifest.as_ref(), manifest_error.as_deref(), newest))
        (get_it(a, listen.as_deref(), anonymous.as_ref()))
        @if let Some(m) = &manifest {
            (schema(m))
            (quality(m))
            (sla(m, &entry))
        }
        (providers(&entry, now))
        @if let Some(m) = &manifest {
            (derivation_section(m, derived))
        }
        (lineage_section(lineage.as_ref()))
        (usage_section(usage.as_ref()))
        (access_section(&access, a.product.domain().as_str(), now))
        (subscribers_section(&subscribers, &a.product.to_string(), now))
        (versions_table(&a.product, &versions, &a.version, now))
        @if let Some(m) = &manifest {
            (files(m))
            section {
                h2 { "Signature" }
                p { "Signed by publisher key " code { (m.publisher) } " of domain " (a.product.domain()) ", published " (page::date(m.created_at)) "." }
            }
        }
    };
    Ok(respond(layout(&title, Nav::Products, "", body)))
}

/// The crumbs, title, badges, owner and description, and the policy's flags.
fn header(
    entry: &CatalogEntry,
    manifest: Option<&Manifest>,
    manifest_error: Option<&str>,
    newest: bool,
) -> Markup {
    let a = &entry.announcement;
    html! {
    p.crumbs { a href="/products" { "Products" } " / " a href={ "/domains/" (a.product.domain()) } { (a.product.domain()) } " / " (a.product.name()) }
    h1 { (a.summary.title) }
    p.ident {
        code { (a.product) "@" (a.version) } " "
        (page::status_badge(a.summary.status)) " "
        (page::class_badge(a.summary.classification)) " "
        @if let Some(h) = &entry.health { (page::sla_badge(h.sla)) " " }
        @if !newest { (page::badge("info", "not the newest version")) " " }
        @for t in &a.summary.tags { a.tag href={ "/products?tag=" (super::index::encode(t)) } { (t) } " " }
    }
    @if let Some(m) = manifest {
        p.owner { "Owned by " strong { (m.owner.team) } " · contact " (m.owner.contact) }
        div.description { @for para in m.description.split("\n\n") { p { (para) } } }
    } @else {
        p.owner { "Owned by " strong { (a.summary.owner_team) } }
        p.error { "The manifest is not available here: " (manifest_error.unwrap_or_default()) }
    }
    @if !entry.flags.is_empty() {
        section.flags {
            h2 { "Flagged by the policy" }
            ul { @for f in &entry.flags { li { strong { (f.rule) } ": " (f.reason) " (policy " (f.policy_version) ")" } } }
        }
    }
    }
}

/// The product's upstreams and downstreams, drawn.
fn lineage_section(lineage: Option<&mesh_contract::health::Lineage>) -> Markup {
    html! {
    section {
        h2 { "Lineage" }
        @match lineage {
            Some(g) if g.edges.is_empty() => p.muted { "No product upstream or downstream of this one." },
            Some(g) => (lineage_svg::draw(g)),
            None => p.muted { "Lineage unavailable." },
        }
    }
    }
}

/// A derived product's query, and its last computation here if it published
/// nothing.
fn derivation_section(m: &Manifest, here: Option<&DerivedProduct>) -> Markup {
    let Some(d) = &m.derivation else {
        return html! {};
    };
    html! {
    section {
        h2 { "Derived by SQL" }
        p { "Computed from the upstreams below, each pinned to the version read, by query " code { (d.query_hash.short()) } ":" }
        pre { (d.sql) }
        @if let Some(DeriveState::Failed { reason, .. }) = here.map(|h| &h.state) {
            p.warn { "The last computation on this node published nothing: " (reason) }
        }
    }
    }
}

/// "Get it": the fetch command, the one-shot command where the rules let an
/// anonymous reader fetch (else the rule and how to ask for access), and the
/// contract to download. `listen` is this node's address for `--bootstrap`.
fn get_it(a: &Announcement, listen: Option<&str>, anonymous: Option<&Decision>) -> Markup {
    let fetch_cmd = format!(
        "mesh fetch {}@{} -o {}",
        a.product,
        a.version,
        a.product.name()
    );
    html! {
        section.get {
            h2 { "Get it" }
            p { "With a node of your domain running:" }
            pre { code { (fetch_cmd) } }
            @match (listen, anonymous) {
                (Some(addr), Some(Decision::Allow)) => {
                    p { "Without a node (a one-shot fetch through this node, with the mesh's genesis policy file):" }
                    pre { code { (fetch_cmd) " --genesis genesis.json --bootstrap " (addr) } }
                }
                (_, Some(Decision::Deny { rule, reason })) => {
                    p.muted {
                        "Not readable without a node of a domain the rules admit (rule " code { (rule) } ": " (reason) "). "
                        "From a node of your domain: " code { "mesh access request " (a.product) " --reason \"...\"" }
                    }
                }
                _ => {}
            }
            p {
                a.button href={ "/products/" (a.product) "/contract.yaml?version=" (a.version) } download { "Download the contract (ODCS YAML)" }
                " · " (page::size(a.summary.size)) " in " (a.summary.files) " file(s)"
                " · manifest " code title=(a.manifest.to_string()) { (a.manifest.short()) }
            }
        }
    }
}

fn schema(m: &Manifest) -> Markup {
    let objects = m
        .quality
        .as_ref()
        .map(|q| q.objects.as_slice())
        .unwrap_or_default();
    html! {
        section {
            h2 { "Schema" }
            @if objects.iter().filter(|o| !o.name.is_empty()).count() > 1 {
                p.muted {
                    "The contract has " (objects.len()) " schema objects: "
                    @for (i, o) in objects.iter().enumerate() {
                        @if i > 0 { ", " }
                        (o.name) " (" (o.files) " file(s), " (o.rows) " rows)"
                    }
                    ". Download the contract for every object's properties."
                }
            }
            @if m.schema.is_empty() {
                p.muted { "No schema declared." }
            } @else {
                table.schema {
                    thead { tr { th { "Column" } th { "Type" } th { "Required" } th { "Unique" } th { "Classification" } th { "Description" } } }
                    tbody {
                        @for f in &m.schema {
                            tr {
                                td { code { (f.name) } }
                                td { (format!("{:?}", f.logical_type).to_lowercase()) }
                                td { @if f.required { "yes" } @else { "no" } }
                                td { @if f.unique { "yes" } @else { "no" } }
                                td { (page::class_badge(f.classification)) }
                                td { (f.description) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn quality(m: &Manifest) -> Markup {
    let Some(q) = &m.quality else {
        return html! {
            section { h2 { "Quality" } p.muted { "No data file could be measured at publish." } }
        };
    };
    html! {
        section {
            h2 { "Quality" }
            p { (q.rows) " rows in " (q.files_checked) " checked file(s), measured by the publishing node at publish." }
            @if !q.fields.is_empty() {
                table {
                    thead { tr { th { "Column" } th.num { "Nulls" } th.num { "Distinct" } } }
                    tbody {
                        @for f in &q.fields {
                            tr {
                                td { code { (f.name) } }
                                td.num { (f.nulls) }
                                td.num { @if let Some(d) = f.distinct { (d) } @else { "many" } }
                            }
                        }
                    }
                }
            }
            @if !q.rules.is_empty() {
                h3 { "Quality rules" }
                table.rules {
                    thead { tr { th { "Rule" } th { "On" } th { "Expected" } th { "Measured" } th { "Result" } } }
                    tbody {
                        @for r in &q.rules {
                            tr {
                                td { (r.rule) }
                                td { (r.object) @if !r.property.is_empty() { "." (r.property) } }
                                td { (r.expected) }
                                td { (r.measured) }
                                td {
                                    @match r.state {
                                        RuleState::Passed => (page::badge("good", "passed")),
                                        RuleState::Failed => (page::badge("bad", "failed")),
                                        RuleState::NotEvaluated => (page::badge("info", "not evaluated")),
                                    }
                                    @if !r.note.is_empty() { " " span.muted { (r.note) } }
                                }
                            }
                        }
                    }
                }
            }
            @if !q.violations.is_empty() {
                h3 { "Where the data broke its contract" }
                p.muted { "Published anyway: the policy's quality mode is warn." }
                table {
                    thead { tr { th { "File" } th { "Column" } th.num { "Rows" } th { "First rows" } th { "First problem" } } }
                    tbody {
                        @for v in &q.violations {
                            tr {
                                td { (v.file) } td { (v.field) } td.num { (v.count) }
                                td { (v.first_rows.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) }
                                td { (v.problem) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn sla(m: &Manifest, entry: &CatalogEntry) -> Markup {
    let s = &m.sla;
    html! {
        section {
            h2 { "Service levels" }
            @if let Some(h) = &entry.health {
                p { (page::sla_badge(h.sla)) " " @for r in &h.reasons { (r) ". " } }
                @for l in &h.lineage { p.warn { (l) } }
            }
            table {
                tbody {
                    tr { th { "Freshness" } td { @if let Some(v) = s.freshness_secs { "data at most " (page::span(v)) " old" } @else { "not declared" } } }
                    tr { th { "Update frequency" } td { @if let Some(v) = s.update_frequency_secs { "a new version every " (page::span(v)) } @else { "not declared" } } }
                    tr { th { "Availability" } td { @if let Some(v) = s.availability_bp { (format!("{:.2}%", f64::from(v) / 100.0)) } @else { "not declared" } } }
                    tr { th { "Retention" } td { @if let Some(v) = s.retention_secs { "kept " (page::span(v)) } @else { "not declared" } } }
                }
            }
        }
    }
}

fn providers(entry: &CatalogEntry, now: u64) -> Markup {
    html! {
        section {
            h2 { "Providers" }
            @if entry.providers.is_empty() {
                p.muted { "No node is known to serve this version." }
            } @else {
                table {
                    thead { tr { th { "Node" } th { "Domain" } th { "Role" } th { "Reachable" } th { "Last seen" } } }
                    tbody {
                        @for p in &entry.providers {
                            tr {
                                td { (page::short_id(&p.peer_id)) }
                                td { (p.domain.clone().unwrap_or_else(|| "unregistered".into())) }
                                td {
                                    @if p.this_node { "this node " }
                                    @if p.announced { "publisher " }
                                    @if p.replica { "replica" }
                                }
                                td { @if p.connected { (page::badge("good", "connected")) } @else { (page::badge("warn", "not connected")) } }
                                td {
                                    @if let Some(ms) = p.last_seen_ms { (page::ago(now, ms / 1000)) }
                                    @if p.stale { " " (page::badge("warn", "stale")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn usage_section(usage: Option<&ProductUsage>) -> Markup {
    html! {
        section {
            h2 { "Usage" }
            @match usage {
                Some(u) if u.total > 0 => {
                    p { (u.total) " fetch(es) reported by " (u.reports) " provider report(s), per consumer domain:" }
                    (chart::bars(&u.by_consumer))
                }
                _ => p.muted { "No fetch reported yet." },
            }
        }
    }
}

/// Who may read the product beyond its listed consumers: the owner's grants (with
/// purpose, terms and end), pending requests, denials and revocations.
fn access_section(access: &[AccessView], owner: &str, now: u64) -> Markup {
    let until = |d: &DecisionView| match d.until_ms {
        Some(u) => format!("until {}", page::date(u / 1000)),
        None => "until revoked".to_string(),
    };
    html! {
        section {
            h2 { "Access" }
            @if access.is_empty() {
                p.muted { "No access requested. A domain asks with " code { "mesh access request DOMAIN/NAME" } "; the owner answers with " code { "mesh access grant" } "." }
            } @else {
                table {
                    thead { tr { th { "Consumer" } th { "State" } th { "Since" } th { "Purpose, terms, reason" } } }
                    tbody {
                        @for v in access {
                            tr {
                                td { a href={ "/domains/" (v.consumer) } { (v.consumer) } }
                                td { (v.state) }
                                td {
                                    @match (&v.decision, v.requested_at_ms) {
                                        (Some(d), _) if v.state != "pending" => { (page::ago(now, d.issued_at_ms / 1000)) }
                                        (_, Some(t)) => { (page::ago(now, t / 1000)) }
                                        _ => "–",
                                    }
                                }
                                td {
                                    @match &v.decision {
                                        Some(d) if v.state != "pending" && d.kind == "grant" => {
                                            (d.purpose) @if !d.terms.is_empty() { " · terms: " (d.terms) } " · " (until(d))
                                            " · " code title="decision id" { (d.id) }
                                        }
                                        Some(d) if v.state != "pending" => { (d.reason) }
                                        _ => { "asks: " (v.reason.clone().unwrap_or_default()) " · the owner answers with " code { "mesh access grant " (v.consumer) " " (v.product) } }
                                    }
                                }
                            }
                        }
                    }
                }
                p.muted { "Grants are signed by " (owner) "'s publisher key and enforced by every provider." }
            }
        }
    }
}

/// The nodes that follow the product (`mesh subscribe`), from their provider
/// records.
fn subscribers_section(subscribers: &[SubscriberView], product: &str, now: u64) -> Markup {
    html! {
        section {
            h2 { "Subscribers" }
            @if subscribers.is_empty() {
                p.muted { "No node follows this product. " code { "mesh subscribe " (product) " -o DIR" } " keeps a copy current: each new version is fetched and switched in whole." }
            } @else {
                table {
                    thead { tr { th { "Domain" } th { "Node" } th { "Holds" } th { "Last seen" } } }
                    tbody {
                        @for f in subscribers {
                            tr {
                                td {
                                    @match &f.domain {
                                        Some(d) => { a href={ "/domains/" (d) } { (d) } },
                                        None => { span.muted { "no domain" } },
                                    }
                                }
                                td { code title=(f.peer_id) { (f.peer_id.get(f.peer_id.len().saturating_sub(8)..).unwrap_or(&f.peer_id)) } }
                                td { @if f.versions.is_empty() { "–" } @else { (f.versions.join(", ")) } }
                                td { (page::ago(now, f.last_seen_ms / 1000)) @if f.stale { " (stale)" } }
                            }
                        }
                    }
                }
                p.muted { "Each subscriber serves what it holds to others, as a replica." }
            }
        }
    }
}

fn versions_table(
    product: &ProductId,
    versions: &[VersionBrief],
    shown: &semver::Version,
    now: u64,
) -> Markup {
    html! {
        section {
            h2 { "Versions" }
            table {
                thead { tr { th { "Version" } th { "Published" } th.num { "Size" } th.num { "Files" } th { "Status" } th { "Here" } } }
                tbody {
                    @for v in versions.iter().rev() {
                        tr.current[&v.version == shown] {
                            td { a href={ "/products/" (product) "?version=" (v.version) } { (v.version) } }
                            td { (page::date(v.issued_at_ms / 1000)) " (" (page::ago(now, v.issued_at_ms / 1000)) ")" }
                            td.num { (page::size(v.size)) }
                            td.num { (v.files) }
                            td { (page::status_badge(v.status)) }
                            td { @if v.local { "held" } @else { "–" } }
                        }
                    }
                }
            }
        }
    }
}

fn files(m: &Manifest) -> Markup {
    html! {
        section {
            h2 { "Files" }
            table {
                thead { tr { th { "Path" } th.num { "Size" } th.num { "Chunks" } } }
                tbody {
                    @for f in &m.files {
                        tr { td { code { (f.path) } } td.num { (page::size(f.size)) } td.num { (f.chunks.len()) } }
                    }
                }
            }
        }
    }
}

/// `GET /products/{domain}/{name}/contract.yaml`: the version's contract as ODCS
/// YAML, the same document `mesh show --format odcs` prints.
pub(super) async fn contract(
    State(s): State<WebState>,
    Path((domain, name)): Path<(String, String)>,
    PageQuery(q): PageQuery<VersionQuery>,
) -> Result<Response, PageError> {
    let target = target(&domain, &name, q.version.as_deref())?;
    let (entry, manifest) = s.node.describe_unjudged(&target, unix_now()).await?;
    let manifest = manifest.map_err(NodeError::from)?;
    let yaml = mesh_contract::odcs::export(&manifest).map_err(|e| {
        PageError::Unprocessable(format!("the contract of {target} does not export: {e}"))
    })?;
    let a = &entry.announcement;
    let file = format!(
        "attachment; filename=\"{}-{}-{}.odcs.yaml\"",
        a.product.domain(),
        a.product.name(),
        a.version
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/yaml; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, file),
        ],
        yaml,
    )
        .into_response())
}
