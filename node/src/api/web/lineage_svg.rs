//! The lineage graph drawn by the node as inline SVG: upstream products to the
//! left of the product, downstream ones to the right, one column per hop; an edge
//! whose downstream pins one exact upstream version is dashed and says which.
//! Every box links to its product's page. No script, no outside resource.

use std::collections::BTreeMap;

use maud::{html, Markup};
use mesh_contract::health::Lineage;

/// Products drawn at most; a larger graph is cut with a note.
const MAX_DRAWN: usize = 120;
const BOX_W: i64 = 210;
const BOX_H: i64 = 46;
const COL_GAP: i64 = 90;
const ROW_GAP: i64 = 18;
const PAD: i64 = 10;

/// Column of each product: the root 0, upstream negative, downstream positive.
fn columns(g: &Lineage) -> BTreeMap<String, i64> {
    let mut col: BTreeMap<String, i64> = BTreeMap::from([(g.root.clone(), 0)]);
    // Relax hop by hop; each pass settles at least one more product, so as many
    // passes as products reach a fixed point (lineage graphs may hold cycles).
    for _ in 0..=g.nodes.len() {
        let mut changed = false;
        for (up, down) in &g.edges {
            match (col.get(up).copied(), col.get(down).copied()) {
                (None, Some(d)) if d <= 0 => {
                    col.insert(up.clone(), d - 1);
                    changed = true;
                }
                (Some(u), None) if u >= 0 => {
                    col.insert(down.clone(), u + 1);
                    changed = true;
                }
                _ => {}
            }
        }
        if !changed {
            break;
        }
    }
    for (up, down) in &g.edges {
        for id in [up, down] {
            if !col.contains_key(id) {
                col.insert(id.clone(), 0);
            }
        }
    }
    col
}

/// Cuts `s` to `n` characters with an ellipsis.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// The graph as an `<svg>` element, with a caption for screen readers.
pub(super) fn draw(g: &Lineage) -> Markup {
    let col = columns(g);
    let min_col = col.values().copied().min().unwrap_or(0);
    let mut per_col: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (id, c) in col.iter().take(MAX_DRAWN) {
        per_col.entry(*c).or_default().push(id);
    }
    let mut at: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut height = 0;
    for (c, ids) in &per_col {
        for (row, id) in ids.iter().enumerate() {
            let x = PAD + (c - min_col) * (BOX_W + COL_GAP);
            let y = PAD + i64::try_from(row).unwrap_or(0) * (BOX_H + ROW_GAP);
            height = height.max(y + BOX_H + PAD);
            at.insert(id, (x, y));
        }
    }
    let width = PAD * 2 + i64::try_from(per_col.len()).unwrap_or(1) * (BOX_W + COL_GAP) - COL_GAP;
    let node_of = |id: &str| g.nodes.iter().find(|n| n.id == id);
    let pin_of = |up: &str, down: &str| {
        g.pins
            .iter()
            .find(|p| p.upstream == up && p.downstream == down)
    };
    let summary = format!(
        "Lineage of {}: {} product(s), {} edge(s), upstream to the left.",
        g.root,
        col.len(),
        g.edges.len()
    );
    html! {
        figure.lineage {
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(summary)
                width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } {
                defs {
                    marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" {}
                    }
                }
                @for (up, down) in &g.edges {
                    @if let (Some(&(ux, uy)), Some(&(dx, dy))) = (at.get(up.as_str()), at.get(down.as_str())) {
                        @let (x1, y1, x2, y2) = (ux + BOX_W, uy + BOX_H / 2, dx, dy + BOX_H / 2);
                        @let mid = (x1 + x2) / 2;
                        @let pin = pin_of(up, down);
                        path class=(if pin.is_some() { "edge pinned" } else { "edge" })
                            d={ "M " (x1) " " (y1) " C " (mid) " " (y1) ", " (mid) " " (y2) ", " (x2) " " (y2) }
                            marker-end="url(#arrow)" {
                            title { (up) " → " (down) }
                        }
                        @if let Some(p) = pin {
                            text.pin x=(mid) y=((y1 + y2) / 2 - 4) text-anchor="middle" {
                                "pinned to " (p.version.clone().unwrap_or_else(|| format!("manifest {}", cut(&p.manifest, 12))))
                            }
                        }
                    }
                }
                @for (id, &(x, y)) in &at {
                    @let node = node_of(id);
                    @let known = node.is_some_and(|n| n.version.is_some());
                    @let body = html! {
                        rect class=(if *id == g.root { "box root" } else if known { "box" } else { "box missing" })
                            x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6" {}
                        text.name x=(x + 10) y=(y + 19) { (cut(id, 28)) }
                        text.meta x=(x + 10) y=(y + 36) {
                            @match node.and_then(|n| n.version.as_ref()) {
                                Some(v) => { "newest " (v) }
                                None => { "not in this catalog" }
                            }
                            @if let Some(s) = node.and_then(|n| n.status) { " · " (s) }
                        }
                    };
                    // Only products this node knows get a link: a page for an
                    // unknown one would be a 404.
                    @if known {
                        a href={ "/products/" (id) } { (body) }
                    } @else {
                        g { title { (id) " is not in this node's catalog" } (body) }
                    }
                }
            }
            figcaption {
                (summary)
                @if col.len() > MAX_DRAWN { " Only the first " (MAX_DRAWN) " are drawn." }
                " Dashed edges pin one exact upstream version."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_contract::health::{LineageNode, LineagePin};

    fn node(id: &str, v: &str) -> LineageNode {
        LineageNode {
            id: id.into(),
            version: Some(v.into()),
            status: None,
        }
    }

    #[test]
    fn upstream_is_drawn_left_downstream_right_and_pins_are_labelled() {
        let g = Lineage {
            hidden: 0,
            root: "finance/revenue".into(),
            nodes: vec![
                node("sales/orders", "1.4.0"),
                node("finance/revenue", "2.0.0"),
                node("exec/dashboard", "1.0.0"),
            ],
            edges: vec![
                ("sales/orders".into(), "finance/revenue".into()),
                ("finance/revenue".into(), "exec/dashboard".into()),
            ],
            pins: vec![LineagePin {
                upstream: "sales/orders".into(),
                downstream: "finance/revenue".into(),
                manifest: "ab".repeat(32),
                version: Some("1.0.0".into()),
            }],
        };
        let c = columns(&g);
        assert_eq!(c["sales/orders"], -1);
        assert_eq!(c["finance/revenue"], 0);
        assert_eq!(c["exec/dashboard"], 1);
        let svg = draw(&g).into_string();
        assert!(svg.contains("pinned to 1.0.0"), "{svg}");
        assert!(svg.contains("href=\"/products/exec/dashboard\""));
        assert_eq!(svg.matches("class=\"edge pinned\"").count(), 1);
        assert!(svg.contains("newest 1.4.0"));
        // Inside HTML, SVG elements are not void: an unclosed <rect> would swallow
        // the labels after it (they would not be drawn).
        for tag in ["rect", "path", "text"] {
            let open = svg.matches(&format!("<{tag} ")).count();
            assert_eq!(
                open,
                svg.matches(&format!("</{tag}>")).count(),
                "{tag}: {svg}"
            );
        }
    }

    #[test]
    fn a_cycle_still_draws_every_product_once() {
        let g = Lineage {
            hidden: 0,
            root: "a/x".into(),
            nodes: vec![node("a/x", "1.0.0"), node("b/y", "1.0.0")],
            edges: vec![("a/x".into(), "b/y".into()), ("b/y".into(), "a/x".into())],
            pins: vec![],
        };
        let svg = draw(&g).into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
    }

    #[test]
    fn a_product_missing_from_the_catalog_is_drawn_without_a_link() {
        let g = Lineage {
            hidden: 0,
            root: "a/x".into(),
            nodes: vec![node("a/x", "1.0.0")],
            edges: vec![("crm/customers".into(), "a/x".into())],
            pins: vec![],
        };
        let svg = draw(&g).into_string();
        assert!(svg.contains("not in this catalog"), "{svg}");
        assert!(!svg.contains("href=\"/products/crm/customers\""), "{svg}");
        assert!(svg.contains("href=\"/products/a/x\""), "{svg}");
    }
}
