//! The catalog's product listing, cached for the pages: built once per catalog
//! generation (and at most [`FRESH`] old, since SLA verdicts age with the clock and
//! providers come and go), then searched, filtered, sorted and paged in memory, so
//! typing a search over 10,000 products costs no store reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_contract::health::{self, Lineage, LineageSource, SlaState};
use mesh_protocol::{Announcement, Hash};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::clock::unix_now;
use crate::error::NodeError;
use crate::node::Node;
use crate::ops::discover::ProductListing;

/// How long a listing is reused while the catalog has not changed.
const FRESH: Duration = Duration::from_secs(5);

/// Products per page of results.
pub(super) const PAGE_SIZE: usize = 50;

/// One product with the text a search reads, lowercased once.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) listing: ProductListing,
    id: String,
    haystack: String,
}

impl Row {
    fn new(mut listing: ProductListing) -> Self {
        // The description and column names live on only in the search text: no page
        // shows them from the listing (its product page reads the manifest).
        let description = std::mem::take(&mut listing.description);
        let columns = std::mem::take(&mut listing.columns);
        let a = &listing.newest;
        let id = a.product.to_string();
        let mut haystack = format!(
            "{} {} {} {} {} {}",
            id,
            a.summary.title,
            description,
            a.summary.tags.join(" "),
            columns.join(" "),
            a.summary.owner_team,
        )
        .to_lowercase();
        haystack.shrink_to_fit();
        Row {
            listing,
            id,
            haystack,
        }
    }

    /// `domain/name`.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The SLA verdict of the newest version.
    pub(super) fn sla(&self) -> SlaState {
        self.listing.health.as_ref().map_or(SlaState::Ok, |h| h.sla)
    }

    /// Unix milliseconds of the newest version's announcement.
    pub(super) fn updated_ms(&self) -> u64 {
        self.listing.newest.issued_at_ms
    }

    /// Whether the newest version carries a policy flag or recorded quality
    /// violations.
    pub(super) fn flagged(&self) -> bool {
        !self.listing.flags.is_empty() || self.listing.quality_problems > 0
    }
}

/// The listing at one catalog generation.
#[derive(Debug)]
struct Cached {
    generation: u64,
    built: Instant,
    rows: Arc<Vec<Row>>,
}

/// The cache: one listing, rebuilt by whichever request finds it stale (the others
/// wait for it rather than each reading the whole catalog).
#[derive(Debug, Default)]
pub(super) struct IndexCache {
    cell: Mutex<Option<Cached>>,
}

impl IndexCache {
    /// Every product, sorted by id, current as of the catalog's generation.
    pub(super) async fn rows(&self, node: &Node) -> Result<Arc<Vec<Row>>, NodeError> {
        let mut cell = self.cell.lock().await;
        if let Some(c) = cell.as_ref() {
            if c.generation == node.catalog_generation() && c.built.elapsed() < FRESH {
                return Ok(c.rows.clone());
            }
        }
        let (generation, listing) = node.listing(unix_now()).await?;
        let mut rows: Vec<Row> = listing.into_iter().map(Row::new).collect();
        // By the id as written, which is what [`find`] searches by (the store's
        // order compares domain and name apart, so `a-b/x` and `a/x` swap).
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let rows = Arc::new(rows);
        *cell = Some(Cached {
            generation,
            built: Instant::now(),
            rows: rows.clone(),
        });
        Ok(rows)
    }
}

/// The row of product `id` in `rows` (sorted by id, as [`IndexCache::rows`] keeps
/// them).
pub(super) fn find<'a>(rows: &'a [Row], id: &str) -> Option<&'a Row> {
    rows.binary_search_by(|r| r.id().cmp(id))
        .ok()
        .and_then(|i| rows.get(i))
}

/// The lineage graph of `root` drawn from the listing's upstreams (what every
/// product's newest manifest declares) without reading the store; `None` when the
/// listing does not hold `root`.
pub(super) fn lineage(rows: &[Row], root: &str) -> Option<Lineage> {
    find(rows, root)?;
    // Who declares each product upstream: one pass over the rows, keeping only
    // those that declare any.
    let mut downstreams: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.listing.upstreams.is_empty()) {
        for (u, _) in &r.listing.upstreams {
            downstreams.entry(u).or_default().push(r.id.clone());
        }
    }
    for list in downstreams.values_mut() {
        list.sort();
        list.dedup();
    }
    Some(health::lineage(root, &RowsSource { rows, downstreams }))
}

/// The listing as a [`LineageSource`].
struct RowsSource<'a> {
    rows: &'a [Row],
    downstreams: BTreeMap<&'a str, Vec<String>>,
}

impl LineageSource for RowsSource<'_> {
    fn newest(&self, id: &str) -> Option<&Announcement> {
        find(self.rows, id).map(|r| &*r.listing.newest)
    }

    fn upstreams(&self, id: &str) -> Option<Vec<(String, Option<Hash>)>> {
        find(self.rows, id).map(|r| r.listing.upstreams.clone())
    }

    fn downstreams(&self, id: &str) -> Vec<String> {
        self.downstreams.get(id).cloned().unwrap_or_default()
    }

    fn version_of(&self, product: &str, manifest: &Hash) -> Option<semver::Version> {
        find(self.rows, product)?
            .listing
            .versions
            .iter()
            .find(|v| v.manifest == *manifest)
            .map(|v| v.version.clone())
    }
}

/// The products page's query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Query {
    /// Words that must all appear in id, title, description, tags, columns or
    /// owner (any case).
    #[serde(default)]
    pub(super) q: String,
    /// Only this domain.
    #[serde(default)]
    pub(super) domain: String,
    /// Only products with this tag (any case).
    #[serde(default)]
    pub(super) tag: String,
    /// Only this lifecycle status.
    #[serde(default)]
    pub(super) status: String,
    /// Only this classification.
    #[serde(default)]
    pub(super) class: String,
    /// Only this SLA verdict (`ok`, `late`, `at-risk`), or `flagged`.
    #[serde(default)]
    pub(super) sla: String,
    /// `name` (default: by id), `updated` (newest first) or `size` (largest first).
    #[serde(default)]
    pub(super) sort: String,
    /// 1-based page, as written (a page past the last shows the last; one
    /// that is not a number, the first).
    #[serde(default)]
    pub(super) page: String,
}

impl Query {
    /// The same query on another page or with another sort, as a URL.
    pub(super) fn href(&self, page: usize, sort: &str) -> String {
        let mut parts: Vec<(&str, &str)> = Vec::new();
        for (k, v) in [
            ("q", self.q.as_str()),
            ("domain", &self.domain),
            ("tag", &self.tag),
            ("status", &self.status),
            ("class", &self.class),
            ("sla", &self.sla),
            ("sort", sort),
        ] {
            let default_sort = k == "sort" && v == "name";
            if !v.is_empty() && !default_sort {
                parts.push((k, v));
            }
        }
        let page = page.to_string();
        if page != "1" {
            parts.push(("page", &page));
        }
        let query: Vec<String> = parts
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        if query.is_empty() {
            "/products".into()
        } else {
            format!("/products?{}", query.join("&"))
        }
    }

    /// The filters set, as `name: value` pairs, for telling a user which matched
    /// nothing.
    pub(super) fn filters(&self) -> Vec<(&'static str, &str)> {
        [
            ("search", self.q.as_str()),
            ("domain", &self.domain),
            ("tag", &self.tag),
            ("status", &self.status),
            ("classification", &self.class),
            ("SLA", &self.sla),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect()
    }
}

/// Percent-encodes a query value.
pub(super) fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What a query selects: the rows of the asked page and how many matched.
#[derive(Debug)]
pub(super) struct Selection<'a> {
    pub(super) rows: Vec<&'a Row>,
    pub(super) matched: usize,
    pub(super) page: usize,
    pub(super) pages: usize,
}

/// Applies `q` to `rows`.
pub(super) fn select<'a>(rows: &'a [Row], q: &Query) -> Selection<'a> {
    let words: Vec<String> = q.q.split_whitespace().map(str::to_lowercase).collect();
    let tag = q.tag.trim().to_lowercase();
    let domain = q.domain.trim().to_lowercase();
    let status = q.status.trim().to_lowercase();
    let class = q.class.trim().to_lowercase();
    let sla = q.sla.trim().to_lowercase();
    let mut hits: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            let a = &r.listing.newest;
            words.iter().all(|w| r.haystack.contains(w.as_str()))
                && (domain.is_empty() || a.product.domain().as_str() == domain)
                && (tag.is_empty() || a.summary.tags.iter().any(|t| t.to_lowercase() == tag))
                && (status.is_empty() || a.summary.status.to_string() == status)
                && (class.is_empty() || a.summary.classification.to_string() == class)
                && match sla.as_str() {
                    "" => true,
                    "flagged" => r.flagged(),
                    "late" | "at-risk" | "ok" => r.sla().to_string() == sla,
                    _ => false,
                }
        })
        .collect();
    match q.sort.as_str() {
        "updated" => hits.sort_by_key(|r| std::cmp::Reverse(r.updated_ms())),
        "size" => hits.sort_by_key(|r| std::cmp::Reverse(r.listing.newest.summary.size)),
        // Rows come sorted by id, which is domain then name.
        _ => {}
    }
    let matched = hits.len();
    let pages = matched.div_ceil(PAGE_SIZE).max(1);
    let page = q.page.trim();
    let page = match page.parse::<usize>() {
        Ok(n) => n,
        // Digits too many for a number: past the last page.
        Err(_) if !page.is_empty() && page.bytes().all(|b| b.is_ascii_digit()) => usize::MAX,
        Err(_) => 1,
    }
    .clamp(1, pages);
    let rows = hits
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    Selection {
        rows,
        matched,
        page,
        pages,
    }
}

#[cfg(test)]
mod tests {
    use mesh_protocol::announcement::{Summary, ANNOUNCEMENT_FORMAT};
    use mesh_protocol::manifest::{Classification, Status};
    use mesh_protocol::{Announcement, Hash, KeyPair};

    use super::*;

    fn row(id: &str, version: &str, upstreams: Vec<(String, Option<Hash>)>) -> Row {
        let announcement = Announcement {
            format: ANNOUNCEMENT_FORMAT,
            product: id.parse().expect("test id"),
            version: version.parse().expect("test version"),
            manifest: Hash::of(format!("{id}@{version}").as_bytes()),
            summary: Summary {
                title: id.to_string(),
                status: Status::Active,
                classification: Classification::Internal,
                tags: Vec::new(),
                owner_team: "team".to_string(),
                size: 1,
                files: 1,
            },
            providers: vec!["peer".to_string()],
            issued_at_ms: 1,
            publisher: KeyPair::generate().public(),
        };
        Row::new(ProductListing {
            versions: vec![crate::ops::discover::VersionBrief::of_announcement(
                &announcement,
            )],
            newest: std::sync::Arc::new(announcement),
            flags: Vec::new(),
            health: None,
            description: String::new(),
            columns: Vec::new(),
            quality_problems: 0,
            upstreams,
        })
    }

    #[test]
    fn lineage_from_the_listing_finds_ids_that_sort_apart_by_domain_and_by_text() {
        let pinned = Hash::of(b"a-b/raw@1.0.0");
        let mut rows = vec![
            row(
                "a/report",
                "1.0.0",
                vec![("a-b/raw".to_string(), Some(pinned))],
            ),
            row("a-b/raw", "1.0.0", Vec::new()),
            row("a-b/clean", "1.0.0", vec![("a-b/raw".to_string(), None)]),
        ];
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        for r in &rows {
            assert_eq!(find(&rows, r.id()).map(Row::id), Some(r.id()));
        }
        assert!(find(&rows, "a/missing").is_none());
        assert!(lineage(&rows, "a/missing").is_none());

        let g = lineage(&rows, "a-b/raw").expect("raw is listed");
        let mut edges = g.edges.clone();
        edges.sort();
        assert_eq!(
            edges,
            vec![
                ("a-b/raw".to_string(), "a-b/clean".to_string()),
                ("a-b/raw".to_string(), "a/report".to_string()),
            ]
        );
        assert_eq!(g.pins.len(), 1, "report pins raw: {:?}", g.pins);
        assert_eq!(g.pins[0].downstream, "a/report");
        assert_eq!(g.pins[0].version.as_deref(), Some("1.0.0"));
    }

    /// A cycle of declared upstreams (which no manifest check forbids across
    /// products) ends: each edge once, every product once, the pins of both.
    #[test]
    fn lineage_of_a_cycle_ends_with_each_edge_once() {
        let pin = Hash::of(b"x/b@1.0.0");
        let mut rows = vec![
            row("x/a", "1.0.0", vec![("x/b".to_string(), Some(pin))]),
            row("x/b", "1.0.0", vec![("x/a".to_string(), None)]),
            row("x/c", "1.0.0", vec![("x/b".to_string(), None)]),
            row("y/unrelated", "1.0.0", Vec::new()),
        ];
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let g = lineage(&rows, "x/a").expect("a is listed");
        let mut edges = g.edges.clone();
        edges.sort();
        let e = |u: &str, d: &str| (u.to_string(), d.to_string());
        assert_eq!(
            edges,
            vec![e("x/a", "x/b"), e("x/b", "x/a"), e("x/b", "x/c")]
        );
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["x/a", "x/b", "x/c"]);
        assert_eq!(g.pins.len(), 1, "{:?}", g.pins);
        assert_eq!(g.pins[0].version.as_deref(), Some("1.0.0"));
    }
}
