//! What a scenario is given ([`Options`]) and what it returns ([`Report`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::MeshBin;

/// Scenario settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Distinct domains, assigned round-robin.
    pub domains: usize,
    /// Announcements to measure (propagation, degrade).
    pub announcements: usize,
    /// Products the mesh holds before a node joins (late-join).
    pub products: usize,
    /// Kill-and-restart rounds (churn).
    pub rounds: usize,
    /// Extra random links per node besides the ring.
    pub chords: usize,
    /// How long anything may take before the scenario fails.
    pub deadline: Duration,
    /// How long the mesh's idle traffic is measured (late-join, before the joiner
    /// starts, after as long to settle; anti-entropy pulls a whole catalog every
    /// 30 s).
    pub idle: Duration,
    /// How to run `mesh`.
    pub mesh: MeshBin,
    /// Keep homes and logs here.
    pub dir: Option<PathBuf>,
}

impl Options {
    /// Defaults for `nodes` nodes.
    pub fn new(mesh: MeshBin, nodes: usize) -> Self {
        Options {
            nodes,
            domains: 4.min(nodes).max(1),
            announcements: 20,
            products: 100,
            rounds: 3,
            chords: 3,
            deadline: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            mesh,
            dir: None,
        }
    }
}

/// What a scenario measured and whether it passed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Every check held.
    pub passed: bool,
    /// Checks that did not hold.
    pub problems: Vec<String>,
    /// Measurements for people, in order.
    pub rows: Vec<(String, String)>,
    /// The same and more, for scripts.
    pub data: serde_json::Value,
}

impl Report {
    pub(super) fn new(scenario: &str, nodes: usize) -> Self {
        Report {
            scenario: scenario.into(),
            nodes,
            passed: true,
            problems: Vec::new(),
            rows: Vec::new(),
            data: json!({}),
        }
    }

    pub(super) fn row(&mut self, what: &str, value: String) {
        self.rows.push((what.into(), value));
    }

    pub(super) fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.passed = false;
            self.problems.push(problem());
        }
    }

    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "### {} ({} nodes): {}\n\n| measurement | value |\n|---|---|\n",
            self.scenario,
            self.nodes,
            if self.passed { "passed" } else { "FAILED" }
        );
        for (k, v) in &self.rows {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
        for p in &self.problems {
            s.push_str(&format!("\nproblem: {p}\n"));
        }
        s
    }
}
