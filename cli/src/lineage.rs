//! `mesh lineage`: a product's upstream and downstream as trees, Graphviz or Mermaid.

use crate::output::say;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mesh_node::api::{Lineage, LineageNode, LineagePin};

use crate::args::{LineageArgs, LineageFormat};

pub(crate) fn show(home: &Path, a: LineageArgs, json: bool) -> anyhow::Result<()> {
    let id: mesh_protocol::ProductId = a.product.parse()?;
    let client = crate::client(home)?;
    let g = client.lineage(&id)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&g)?);
        return Ok(());
    }
    print!(
        "{}",
        match a.format {
            LineageFormat::Tree => tree(&g),
            LineageFormat::Dot => dot(&g),
            LineageFormat::Mermaid => mermaid(&g),
        }
    );
    Ok(())
}

fn label(n: Option<&LineageNode>, id: &str) -> String {
    match n {
        Some(LineageNode {
            version: Some(v),
            status: Some(s),
            ..
        }) => format!("{id}@{v} ({s})"),
        _ => format!("{id} (not in the catalog)"),
    }
}

/// The pin of edge `upstream -> downstream`, if the downstream pins a version.
fn pin<'g>(g: &'g Lineage, upstream: &str, downstream: &str) -> Option<&'g LineagePin> {
    g.pins
        .iter()
        .find(|p| p.upstream == upstream && p.downstream == downstream)
}

/// How a pin reads: `pinned to 1.0.0`, or the manifest when the catalog does not
/// know it.
fn pinned(p: &LineagePin) -> String {
    match &p.version {
        Some(v) => format!("pinned to {v}"),
        None => format!(
            "pinned to manifest {}",
            p.manifest.chars().take(12).collect::<String>()
        ),
    }
}

/// Indented trees: upstream (what the root is built from), then downstream.
pub(crate) fn tree(g: &Lineage) -> String {
    let nodes: BTreeMap<&str, &LineageNode> = g.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut ups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut downs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (u, d) in &g.edges {
        ups.entry(d.as_str()).or_default().push(u.as_str());
        downs.entry(u.as_str()).or_default().push(d.as_str());
    }
    let mut out = String::new();
    for (title, edges, upstream) in [
        ("upstream (built from)", &ups, true),
        ("downstream (built on it)", &downs, false),
    ] {
        out.push_str(&format!(
            "{title}:\n{}\n",
            label(nodes.get(g.root.as_str()).copied(), &g.root)
        ));
        let mut seen = BTreeSet::from([g.root.as_str()]);
        walk(g, &g.root, edges, &nodes, upstream, "", &mut seen, &mut out);
    }
    if g.hidden > 0 {
        out.push_str(&format!(
            "(some lineage may be hidden by the rules: this node may not read the contracts of {} product(s) in the catalog, which may be built on it)\n",
            g.hidden
        ));
    }
    out
}

#[allow(clippy::too_many_arguments)] // one recursive walk; a struct would only rename them
fn walk<'a>(
    g: &Lineage,
    at: &str,
    edges: &BTreeMap<&str, Vec<&'a str>>,
    nodes: &BTreeMap<&str, &LineageNode>,
    upstream: bool,
    indent: &str,
    seen: &mut BTreeSet<&'a str>,
    out: &mut String,
) {
    let next = edges.get(at).cloned().unwrap_or_default();
    if next.is_empty() && indent.is_empty() {
        out.push_str("└── (none)\n");
    }
    for (i, n) in next.iter().enumerate() {
        let last = i + 1 == next.len();
        let again = !seen.insert(n);
        let (u, d) = if upstream { (*n, at) } else { (at, *n) };
        let pin = pin(g, u, d).map(|p| {
            if upstream {
                format!(" [{}]", pinned(p))
            } else {
                format!(" [{u} {}]", pinned(p))
            }
        });
        out.push_str(&format!(
            "{indent}{}{}{}{}\n",
            if last { "└── " } else { "├── " },
            label(nodes.get(n).copied(), n),
            pin.unwrap_or_default(),
            if again { " (see above)" } else { "" }
        ));
        if !again {
            let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
            walk(g, n, edges, nodes, upstream, &deeper, seen, out);
        }
    }
}

/// A Graphviz digraph, upstream to downstream, the root in bold.
pub(crate) fn dot(g: &Lineage) -> String {
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
    for n in &g.nodes {
        out.push_str(&format!(
            "  {:?} [label={:?}{}];\n",
            n.id,
            label(Some(n), &n.id),
            if n.id == g.root { ", style=bold" } else { "" }
        ));
    }
    for (u, d) in &g.edges {
        match pin(g, u, d) {
            Some(p) => out.push_str(&format!("  {u:?} -> {d:?} [label={:?}];\n", pinned(p))),
            None => out.push_str(&format!("  {u:?} -> {d:?};\n")),
        }
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart, upstream to downstream.
pub(crate) fn mermaid(g: &Lineage) -> String {
    let index: BTreeMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut out = String::from("graph LR\n");
    for (i, n) in g.nodes.iter().enumerate() {
        out.push_str(&format!(
            "  n{i}[\"{}\"]\n",
            label(Some(n), &n.id).replace('"', "'")
        ));
    }
    for (u, d) in &g.edges {
        if let (Some(a), Some(b)) = (index.get(u.as_str()), index.get(d.as_str())) {
            match pin(g, u, d) {
                Some(p) => out.push_str(&format!("  n{a} -- \"{}\" --> n{b}\n", pinned(p))),
                None => out.push_str(&format!("  n{a} --> n{b}\n")),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::manifest::Status;

    fn graph() -> Lineage {
        let node = |id: &str, s: Option<Status>| LineageNode {
            id: id.into(),
            version: s.map(|_| "1.0.0".into()),
            status: s,
        };
        Lineage {
            hidden: 0,
            root: "sales/orders".into(),
            nodes: vec![
                node("crm/customers", Some(Status::Deprecated)),
                node("finance/revenue", Some(Status::Active)),
                node("sales/orders", Some(Status::Active)),
                node("web/clicks", None),
            ],
            edges: vec![
                ("crm/customers".into(), "sales/orders".into()),
                ("web/clicks".into(), "sales/orders".into()),
                ("sales/orders".into(), "finance/revenue".into()),
            ],
            pins: vec![LineagePin {
                upstream: "sales/orders".into(),
                downstream: "finance/revenue".into(),
                manifest: "b3abcdef0123456789".into(),
                version: Some("0.9.0".into()),
            }],
        }
    }

    #[test]
    fn trees_dot_and_mermaid_show_every_edge() {
        let t = tree(&graph());
        assert_eq!(
            t,
            "upstream (built from):\nsales/orders@1.0.0 (active)\n\
             ├── crm/customers@1.0.0 (deprecated)\n\
             └── web/clicks (not in the catalog)\n\
             downstream (built on it):\nsales/orders@1.0.0 (active)\n\
             └── finance/revenue@1.0.0 (active) [sales/orders pinned to 0.9.0]\n"
        );
        let d = dot(&graph());
        assert!(d.contains("\"crm/customers\" -> \"sales/orders\";"), "{d}");
        assert!(
            d.contains("\"sales/orders\" [label=\"sales/orders@1.0.0 (active)\", style=bold]"),
            "{d}"
        );
        let m = mermaid(&graph());
        assert!(m.starts_with("graph LR\n"));
        assert!(
            m.contains("n0 --> n2") && m.contains("n2 -- \"pinned to 0.9.0\" --> n1"),
            "{m}"
        );
        assert!(
            d.contains("\"sales/orders\" -> \"finance/revenue\" [label=\"pinned to 0.9.0\"];"),
            "{d}"
        );
        let up = tree(&Lineage {
            root: "finance/revenue".into(),
            ..graph()
        });
        assert!(!up.contains("hidden by the rules"));
        let hidden = tree(&Lineage {
            hidden: 2,
            ..graph()
        });
        assert!(
            hidden.contains("some lineage may be hidden by the rules: this node may not read the contracts of 2 product(s)"),
            "{hidden}"
        );
        assert!(
            up.contains("└── sales/orders@1.0.0 (active) [pinned to 0.9.0]"),
            "{up}"
        );
    }
}
