//! The products page: text search over id, title, description, tags, columns and
//! owner, filters (domain, tag, status, classification, SLA), sorting and pages.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::context::{PageError, PageQuery, WebState};
use super::index::{select, Query, Row, PAGE_SIZE};
use super::page::{self, layout, respond, Nav};
use crate::clock::unix_now;

/// One `<select>` of the filter form.
fn choice(name: &str, label: &str, current: &str, options: &[String]) -> Markup {
    html! {
        label {
            (label) " "
            select name=(name) {
                option value="" { "any" }
                @for o in options {
                    option value=(o) selected[o == current] { (o) }
                }
            }
        }
    }
}

pub(super) async fn page(
    State(s): State<WebState>,
    PageQuery(q): PageQuery<Query>,
) -> Result<Response, PageError> {
    let rows = s.index.rows(&s.node).await?;
    let now = unix_now();
    let found = select(&rows, &q);
    let domains: Vec<String> = rows
        .iter()
        .map(|r| r.listing.newest.product.domain().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let statuses = owned(&["draft", "active", "deprecated", "retired"]);
    let classes = owned(&["public", "internal", "confidential", "pii"]);
    let slas = owned(&["ok", "late", "at-risk", "flagged"]);
    let sort = if q.sort.is_empty() {
        "name"
    } else {
        q.sort.as_str()
    };
    let body = html! {
        h1 { "Products" }
        form.filters action="/products" method="get" {
            label { "Search " input type="search" name="q" value=(q.q); }
            (choice("domain", "Domain", &q.domain, &domains))
            label { "Tag " input type="text" name="tag" value=(q.tag) size="12"; }
            (choice("status", "Status", &q.status, &statuses))
            (choice("class", "Classification", &q.class, &classes))
            (choice("sla", "SLA", &q.sla, &slas))
            input type="hidden" name="sort" value=(sort);
            button type="submit" { "Apply" }
            " " a href="/products" { "clear" }
        }
        p.count {
            (found.matched) " of " (rows.len()) " products"
            @if found.pages > 1 { " · page " (found.page) " of " (found.pages) }
            " · sort by "
            @for (key, label) in [("name", "name"), ("updated", "newest"), ("size", "size")] {
                @if key == sort { strong { (label) } } @else { a href=(q.href(1, key)) { (label) } }
                " "
            }
        }
        @if found.matched == 0 {
            p.empty {
                @if rows.is_empty() {
                    "The catalog is empty: this node has not learned of any product yet. "
                    "A node learns the catalog from its peers within seconds of connecting."
                } @else {
                    "No product matches ";
                    @for (i, (name, value)) in q.filters().into_iter().enumerate() {
                        @if i > 0 { " and " }
                        (name) " " q { (value) }
                    }
                    ". The catalog holds " (rows.len()) " products; search and tags match whatever their case. "
                    a href="/products" { "Show them all." }
                }
            }
        } @else {
            (table(&found.rows, now))
            @if found.pages > 1 {
                nav.pages aria-label="Pages" {
                    @if found.page > 1 { a href=(q.href(found.page - 1, sort)) rel="prev" { "← previous" } " " }
                    span { "page " (found.page) " of " (found.pages) " (" (PAGE_SIZE) " a page)" }
                    @if found.page < found.pages { " " a href=(q.href(found.page + 1, sort)) rel="next" { "next →" } }
                }
            }
        }
    };
    Ok(respond(layout("Products", Nav::Products, &q.q, body)))
}

/// One page of products, a row each.
fn table(rows: &[&Row], now: u64) -> Markup {
    html! {
    table.products {
        thead {
            tr {
                th { "Product" } th { "Title" } th { "Version" } th { "Status" }
                th { "Class" } th { "SLA" } th.num { "Size" } th { "Updated" } th { "Tags" }
            }
        }
        tbody {
            @for r in rows {
                @let a = &r.listing.newest;
                tr {
                    td { a href=(page::product_href(r.id())) { (a.product) } }
                    td { (a.summary.title) }
                    td { (a.version) }
                    td { (page::status_badge(a.summary.status)) }
                    td { (page::class_badge(a.summary.classification)) }
                    td {
                        (page::sla_badge(r.sla()))
                        @if r.flagged() { " " (page::badge("bad", "flagged")) }
                    }
                    td.num { (page::size(a.summary.size)) }
                    td { (page::ago(now, a.issued_at_ms / 1000)) }
                    td {
                        @for t in &a.summary.tags {
                            a.tag href=(Query { tag: t.clone(), ..Query::default() }.href(1, "name")) { (t) } " "
                        }
                    }
                }
            }
        }
    }
    }
}
