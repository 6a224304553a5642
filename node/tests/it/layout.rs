//! The layout is the map: these tests keep it true. Each folder of `node/src` may
//! name only the layers below it, and no source file imports a file that imports it
//! back (directly or around a longer cycle).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, by module path (`net/transfer/serve`; `mod.rs` and
/// `lib.rs` name their folder).
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                    parts.pop();
                }
                out.insert(parts, path);
            }
        }
    }
    out
}

/// The source without its `#[cfg(test)] mod tests` block (tests may reach anywhere).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Paths named in `src` after `prefix` (`crate::`, `super::`), as segments; a use
/// group `crate::{a, b::c}` gives each member.
fn paths_after(src: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut rest = src;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| ident(c) || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segs: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty() && s.chars().all(ident))
                    .collect();
                if !segs.is_empty() {
                    out.push(segs);
                }
            }
            continue;
        }
        let end = rest
            .find(|c: char| !(ident(c) || c == ':'))
            .unwrap_or(rest.len());
        let segs: Vec<String> = rest[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        out.push(segs);
    }
    out
}

/// The file module that `path` (from the crate root) lands in: its longest prefix
/// that is a file.
fn resolve(mods: &BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| mods.contains_key(p))
}

/// Which file modules each file names.
fn graph(root: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mods = modules(root);
    let mut edges = BTreeMap::new();
    for (m, path) in &mods {
        let src = code(path);
        let is_folder = path.ends_with("mod.rs") || path.ends_with("lib.rs");
        let parent: Vec<String> = if is_folder {
            m[..m.len().saturating_sub(1)].to_vec()
        } else {
            m[..m.len() - 1].to_vec()
        };
        let mut to = BTreeSet::new();
        for p in paths_after(&src, "crate::") {
            to.extend(resolve(&mods, &p));
        }
        for p in paths_after(&src, "super::") {
            let mut full = parent.clone();
            full.extend(p);
            to.extend(resolve(&mods, &full));
        }
        // A child module named by a relative path (`schedule::batches`).
        for (child, _) in mods
            .iter()
            .filter(|(c, _)| c.len() == m.len() + 1 && c.starts_with(m))
        {
            let name = format!("{}::", child[child.len() - 1]);
            if src.contains(&name) {
                to.insert(child.clone());
            }
        }
        to.remove(m);
        to.remove(&Vec::new());
        edges.insert(m.clone(), to);
    }
    edges
}

fn node_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_source_file_imports_a_file_that_imports_it_back() {
    let edges = graph(&node_src());
    assert!(
        edges.len() > 30,
        "the walk found the sources: {}",
        edges.len()
    );
    // Depth-first search for a back edge; report the cycle.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            let cycle: Vec<String> = stack[i..].iter().map(|p| p.join("/")).collect();
            panic!("import cycle: {} -> {}", cycle.join(" -> "), m.join("/"));
        }
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, stack, done);
        }
        stack.pop();
        done.insert(m.clone());
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        visit(m, &edges, &mut Vec::new(), &mut done);
    }
}

#[test]
fn each_folder_names_only_the_layers_below_it() {
    // folder -> top-level modules it must never name.
    let rules: [(&str, &[&str]); 4] = [
        ("home", &["state", "net", "ops", "api", "node", "daemon"]),
        ("state", &["net", "ops", "api", "node", "daemon"]),
        ("net", &["ops", "api", "node", "daemon"]),
        ("ops", &["api", "node", "daemon"]),
    ];
    let edges = graph(&node_src());
    let mut broken = Vec::new();
    for (m, to) in &edges {
        let Some((_, banned)) = rules
            .iter()
            .find(|(f, _)| m.first().map(String::as_str) == Some(*f))
        else {
            continue;
        };
        for t in to {
            if banned.contains(&t[0].as_str()) {
                broken.push(format!("{} names {}", m.join("/"), t.join("/")));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_an_import_cycle_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a/mod.rs"), "use crate::b::Thing;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use crate::{a::X, c};\n").unwrap();
    let edges = graph(dir.path());
    let a = vec!["a".to_string()];
    let b = vec!["b".to_string()];
    assert!(
        edges[&a].contains(&b) && edges[&b].contains(&a),
        "{edges:?}"
    );
}
