//! The catalog's layout (header, navigation, search box, footer) and the small
//! formatting helpers every page shares: sizes, dates, ages and badges.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use mesh_contract::health::SlaState;
use mesh_protocol::manifest::{Classification, Status};

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Home,
    Products,
    Domains,
    Governance,
    Node,
    None,
}

/// A whole page: `title` in the tab and as the heading's context, `body` in main.
pub(super) fn layout(title: &str, nav: Nav, search: &str, body: Markup) -> Markup {
    let item = |href: &str, label: &str, this: Nav| {
        html! {
            a href=(href) aria-current=[(nav == this).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · mesh catalog" }
                link rel="stylesheet" href="/assets/style.css";
                link rel="icon" type="image/svg+xml" href="/assets/icon.svg";
            }
            body {
                header.top {
                    a.brand href="/" { "mesh" span { "catalog" } }
                    nav {
                        (item("/", "Home", Nav::Home))
                        (item("/products", "Products", Nav::Products))
                        (item("/domains", "Domains", Nav::Domains))
                        (item("/governance", "Governance", Nav::Governance))
                        (item("/node", "This node", Nav::Node))
                    }
                    form.search role="search" action="/products" method="get" {
                        input type="search" name="q" value=(search)
                            placeholder="Search products, columns, tags" aria-label="Search products";
                        button type="submit" { "Search" }
                    }
                }
                main { (body) }
                footer {
                    "Served by this node from its own replica of the mesh catalog. "
                    "Every product version shown was signed by a publisher key the governance policy registers; "
                    "every byte fetched is checked against its BLAKE3 hash."
                }
            }
        }
    }
}

/// A page as an HTTP answer.
pub(super) fn respond(markup: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// An error page with `status`.
pub(super) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.error { (message) }
        p { a href="/" { "Back to the catalog" } }
    };
    let mut resp = respond(layout(title, Nav::None, "", body));
    *resp.status_mut() = status;
    resp
}

/// Bytes as people read them: `1.5 MB`.
pub(super) fn size(bytes: u64) -> String {
    // Binary units, as the CLI prints them: one product, one size, everywhere.
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Unix seconds as a UTC date and time: `2026-12-03 14:05 UTC`.
pub(super) fn date(secs: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
    else {
        return format!("{secs} (unix)");
    };
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_else(|_| format!("{secs} (unix)"))
}

/// A duration in seconds as people say it: `3d`, `5h`, `12 min`, `40 s`.
pub(super) fn span(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// How long ago `then` was at `now` (unix seconds).
pub(super) fn ago(now: u64, then: u64) -> String {
    if then > now {
        return "just now".into();
    }
    format!("{} ago", span(now - then))
}

/// A coloured word.
pub(super) fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

/// The SLA verdict as a badge.
pub(super) fn sla_badge(state: SlaState) -> Markup {
    let class = match state {
        SlaState::Ok => "good",
        SlaState::Late => "bad",
        SlaState::AtRisk => "warn",
    };
    badge(class, &format!("SLA {state}"))
}

/// The lifecycle status as a badge.
pub(super) fn status_badge(status: Status) -> Markup {
    let class = match status {
        Status::Active => "good",
        Status::Draft => "info",
        Status::Deprecated => "warn",
        Status::Retired => "bad",
    };
    badge(class, &status.to_string())
}

/// The classification as a badge.
pub(super) fn class_badge(c: Classification) -> Markup {
    let class = match c {
        Classification::Public => "good",
        Classification::Internal => "info",
        Classification::Confidential => "warn",
        Classification::Pii => "bad",
    };
    badge(class, &c.to_string())
}

/// A peer id or key shortened for a table, whole in its title.
pub(super) fn short_id(id: &str) -> Markup {
    let short: String = if id.chars().count() > 16 {
        let head: String = id.chars().take(8).collect();
        let tail: String = id
            .chars()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{head}…{tail}")
    } else {
        id.to_string()
    };
    html! { code title=(id) { (short) } }
}

/// The link to a product's page.
pub(super) fn product_href(id: &str) -> String {
    format!("/products/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_dates_and_spans_read_as_people_write_them() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_500_000), "1.4 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(date(0), "1970-01-01 00:00 UTC");
        assert_eq!(span(3 * 86_400), "3d");
        assert_eq!(ago(100, 40), "1 min ago");
        assert_eq!(ago(10, 40), "just now");
    }

    #[test]
    fn text_is_escaped_wherever_it_lands() {
        let hostile = "<script>alert(1)</script>\"'";
        let page = layout(hostile, Nav::None, hostile, html! { p { (hostile) } }).into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }
}
