//! `mesh lineage`: a product's upstream and downstream as trees, Graphviz or Mermaid.

use crate::output::say;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mesh_node::api::{Lineage, LineageNode};
use mesh_node::{ApiClient, NodeHome};

use crate::args::{LineageArgs, LineageFormat};

pub(crate) fn show(home: &Path, a: LineageArgs, json: bool) -> anyhow::Result<()> {
    let id: mesh_protocol::ProductId = a.product.parse()?;
    let client = ApiClient::for_home(&NodeHome::new(home))?;
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
    for (title, edges) in [
        ("upstream (built from)", &ups),
        ("downstream (built on it)", &downs),
    ] {
        out.push_str(&format!(
            "{title}:\n{}\n",
            label(nodes.get(g.root.as_str()).copied(), &g.root)
        ));
        let mut seen = BTreeSet::from([g.root.as_str()]);
        walk(&g.root, edges, &nodes, "", &mut seen, &mut out);
    }
    out
}

fn walk<'a>(
    at: &str,
    edges: &BTreeMap<&str, Vec<&'a str>>,
    nodes: &BTreeMap<&str, &LineageNode>,
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
        out.push_str(&format!(
            "{indent}{}{}{}\n",
            if last { "└── " } else { "├── " },
            label(nodes.get(n).copied(), n),
            if again { " (see above)" } else { "" }
        ));
        if !again {
            let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
            walk(n, edges, nodes, &deeper, seen, out);
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
        out.push_str(&format!("  {u:?} -> {d:?};\n"));
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
            out.push_str(&format!("  n{a} --> n{b}\n"));
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
             └── finance/revenue@1.0.0 (active)\n"
        );
        let d = dot(&graph());
        assert!(d.contains("\"crm/customers\" -> \"sales/orders\";"), "{d}");
        assert!(
            d.contains("\"sales/orders\" [label=\"sales/orders@1.0.0 (active)\", style=bold]"),
            "{d}"
        );
        let m = mermaid(&graph());
        assert!(m.starts_with("graph LR\n"));
        assert!(m.contains("n0 --> n2") && m.contains("n2 --> n1"), "{m}");
    }
}
