//! The workspace's structure, kept true by one test for every crate:
//! - no source file imports a file that imports it back (directly or around a
//!   longer cycle);
//! - each folder names only the layers its crate's `lib.rs` map puts below it
//!   ([`LAYERS`]);
//! - no non-test function is longer than [`MAX_FUNCTION_LINES`] lines, except the
//!   ones listed in [`LONG_FUNCTIONS`], each with its reason.
//!
//! File length is a guideline, not a rule: it is not checked. The checks read the
//! sources as text (imports after `crate::` and `super::`, a function's lines by
//! its braces), which the planted-cycle and planted-function tests below show
//! catching what they should.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a non-test function may be.
const MAX_FUNCTION_LINES: usize = 100;

/// Functions allowed over [`MAX_FUNCTION_LINES`]: `(file, function, reason)`.
/// Each is a debt; remove its line when it is split.
const LONG_FUNCTIONS: &[(&str, &str, &str)] = &[];

/// A top-level module and the top-level modules it must never name.
type Layer = (&'static str, &'static [&'static str]);

/// Per crate, per top-level module (a folder or file of `src/`), the top-level
/// modules it must never name: the layers above it in the crate's map.
const LAYERS: &[(&str, &[Layer])] = &[
    (
        "node",
        &[
            (
                "home",
                &["state", "net", "ops", "api", "ports", "node", "daemon"],
            ),
            ("state", &["net", "ops", "api", "ports", "node", "daemon"]),
            ("net", &["ops", "api", "ports", "node", "daemon"]),
            ("ops", &["api", "ports", "node", "daemon"]),
            ("api", &["ports", "daemon"]),
            ("ports", &["api", "daemon"]),
        ],
    ),
    (
        "contract",
        &[
            (
                "quality",
                &[
                    "tables",
                    "draft",
                    "odcs",
                    "infer",
                    "changelog",
                    "health",
                    "schema_diff",
                ],
            ),
            (
                "draft",
                &["odcs", "infer", "changelog", "health", "schema_diff"],
            ),
            ("changelog", &["draft", "infer", "health", "schema_diff"]),
            (
                "schema_diff",
                &["odcs", "quality", "infer", "health", "tables"],
            ),
            (
                "health",
                &["odcs", "quality", "infer", "changelog", "schema_diff"],
            ),
            (
                "engine",
                &[
                    "tables",
                    "quality",
                    "draft",
                    "odcs",
                    "infer",
                    "changelog",
                    "health",
                    "schema_diff",
                ],
            ),
        ],
    ),
    (
        "storage",
        &[
            ("pack", &["chunks", "chunker", "assemble"]),
            ("meta", &["chunks", "chunker", "assemble"]),
            ("chunks", &["chunker", "assemble"]),
        ],
    ),
];

/// The workspace's member crates, from its `Cargo.toml`.
fn members() -> Vec<String> {
    let root = workspace();
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether a file is a test module of its own (`tests.rs`, `reuse_tests.rs`).
fn is_test_file(path: &Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

/// Every non-test `.rs` file under `root`.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every `.rs` file under `root`, by module path (`net/transfer/serve`; `mod.rs`,
/// `lib.rs` and `main.rs` name their folder).
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    for path in rust_files(root) {
        let rel = path.strip_prefix(root).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        out.insert(parts, path);
    }
    out
}

/// The source up to its `#[cfg(test)]` block (tests may reach anywhere; by
/// convention the test module ends the file), without comment lines (a doc link
/// is not an import).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("\n#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
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

type Graph = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

/// Which file modules each file names.
fn graph(root: &Path) -> Graph {
    let mods = modules(root);
    let mut edges = BTreeMap::new();
    for (m, path) in &mods {
        let src = code(path);
        // `super::` of `a/b.rs` and of `a/b/mod.rs` is `a`.
        let parent: Vec<String> = m[..m.len().saturating_sub(1)].to_vec();
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

/// The first import cycle in `edges`, if any, as `a -> b -> a`.
fn cycle(edges: &Graph) -> Option<String> {
    fn visit(
        m: &Vec<String>,
        edges: &Graph,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<String> {
        if done.contains(m) {
            return None;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            let cycle: Vec<String> = stack[i..].iter().map(|p| p.join("/")).collect();
            return Some(format!("{} -> {}", cycle.join(" -> "), m.join("/")));
        }
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

/// Non-test functions over `limit` lines in `path`: `(name, first line, lines)`.
fn long_functions(path: &Path, limit: usize) -> Vec<(String, usize, usize)> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let Some(name) = fn_name(line).filter(|_| !line.trim_end().ends_with(';')) else {
            i += 1;
            continue;
        };
        let (mut depth, mut started, mut j) = (0i64, false, i);
        while j < lines.len() {
            let code = strip_literals(lines[j]);
            depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            started |= code.contains('{');
            if started && depth <= 0 {
                break;
            }
            j += 1;
        }
        let n = j - i + 1;
        if n > limit {
            out.push((name, i + 1, n));
        }
        i = if started { j + 1 } else { i + 1 };
    }
    out
}

/// The name of the function a line declares, if it does.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for word in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(word).unwrap_or(rest);
        rest = rest.trim_start();
    }
    let rest = rest.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// A line without its comment, strings and char literals (their braces do not
/// count).
fn strip_literals(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // A char literal ('{', '\''), not a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '\'' => break,
                            _ => {}
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Every non-test source file of the workspace's crates (not `tests/`).
fn sources() -> Vec<PathBuf> {
    members()
        .iter()
        .flat_map(|c| rust_files(&workspace().join(c).join("src")))
        .collect()
}

#[test]
fn no_crate_has_an_import_cycle() {
    let crates = members();
    assert!(crates.len() >= 7, "the members line was read: {crates:?}");
    for c in crates {
        let edges = graph(&workspace().join(&c).join("src"));
        assert!(!edges.is_empty(), "{c}: the walk found no sources");
        if let Some(cycle) = cycle(&edges) {
            panic!("{c}: import cycle: {cycle}");
        }
    }
}

#[test]
fn each_folder_names_only_the_layers_below_it() {
    let mut broken = Vec::new();
    for (c, rules) in LAYERS {
        let edges = graph(&workspace().join(c).join("src"));
        for (m, to) in &edges {
            let Some((_, banned)) = rules
                .iter()
                .find(|(f, _)| m.first().map(String::as_str) == Some(*f))
            else {
                continue;
            };
            for t in to {
                if banned.contains(&t[0].as_str()) {
                    broken.push(format!("{c}: {} names {}", m.join("/"), t.join("/")));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn no_function_is_longer_than_the_budget_unless_listed_with_its_reason() {
    let root = workspace().canonicalize().unwrap();
    let mut over = Vec::new();
    let mut listed_seen = BTreeSet::new();
    for path in sources() {
        let rel = path
            .canonicalize()
            .unwrap()
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (name, line, n) in long_functions(&path, MAX_FUNCTION_LINES) {
            match LONG_FUNCTIONS
                .iter()
                .find(|(f, fun, _)| *f == rel && *fun == name)
            {
                Some(_) => {
                    listed_seen.insert((rel.clone(), name));
                }
                None => over.push(format!("{rel}:{line} {name}: {n} lines")),
            }
        }
    }
    assert!(
        over.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n{}",
        over.join("\n")
    );
    let stale: Vec<String> = LONG_FUNCTIONS
        .iter()
        .filter(|(f, fun, _)| !listed_seen.contains(&(f.to_string(), fun.to_string())))
        .map(|(f, fun, _)| format!("{f} {fun}"))
        .collect();
    assert!(
        stale.is_empty(),
        "listed as long but no longer over the budget (remove them from LONG_FUNCTIONS):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_checks_catch_a_planted_cycle_and_a_planted_long_function() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a/mod.rs"), "use crate::b::Thing;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "use super::{a::X, c};\n").unwrap();
    let found = cycle(&graph(dir.path())).expect("the planted cycle is found");
    assert!(
        found.contains("a -> b -> a") || found.contains("b -> a -> b"),
        "{found}"
    );

    let body: String = (0..MAX_FUNCTION_LINES)
        .map(|i| format!("    let x{i} = '{{'; // }}}}\n"))
        .collect();
    let src = format!(
        "pub(crate) fn short() {{\n}}\n\npub async fn planted() -> u8 {{\n{body}    0\n}}\n\n#[cfg(test)]\nmod tests {{\n    fn long_test() {{\n{body}    }}\n}}\n"
    );
    let file = dir.path().join("long.rs");
    std::fs::write(&file, src).unwrap();
    let long = long_functions(&file, MAX_FUNCTION_LINES);
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(long[0].0, "planted");
    assert_eq!(long[0].2, MAX_FUNCTION_LINES + 3);
}
