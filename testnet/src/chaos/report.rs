//! What a soak did and found, and the Markdown table of it.

use std::collections::BTreeMap;

use serde::Serialize;

/// What a soak did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChaosReport {
    /// The seed used.
    pub seed: u64,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Steps of the schedule.
    pub steps: usize,
    /// Operations attempted and acknowledged, by kind.
    pub operations: BTreeMap<String, (usize, usize)>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// Invariants checked: how many instances of each were checked.
    pub checked: BTreeMap<String, usize>,
    /// Why operations were not acknowledged: `op: reason` (numbers and hashes
    /// blanked), with how often.
    pub refusals: BTreeMap<String, usize>,
    /// Every violation found (empty: the mesh kept its promises).
    pub violations: Vec<String>,
}

/// The report as a Markdown table.
pub fn markdown(r: &ChaosReport) -> String {
    let mut s = format!(
        "### chaos ({} nodes, {} steps, seed {}): {}\n\n| what | count |\n|---|---|\n",
        r.nodes,
        r.steps,
        r.seed,
        if r.violations.is_empty() {
            "no violation"
        } else {
            "VIOLATIONS"
        }
    );
    for (op, (tried, acked)) in &r.operations {
        s.push_str(&format!(
            "| {op} (acknowledged of attempted) | {acked} of {tried} |\n"
        ));
    }
    for (fault, n) in &r.faults {
        s.push_str(&format!("| fault: {fault} | {n} |\n"));
    }
    for (inv, n) in &r.checked {
        s.push_str(&format!("| checked: {inv} | {n} |\n"));
    }
    let mut refusals: Vec<_> = r.refusals.iter().collect();
    refusals.sort_by(|a, b| b.1.cmp(a.1));
    for (why, n) in refusals.iter().take(8) {
        s.push_str(&format!("| not acknowledged: {why} | {n} |\n"));
    }
    s.push_str(&format!("| violations | {} |\n", r.violations.len()));
    for v in &r.violations {
        s.push_str(&format!("\nviolation: {v}\n"));
    }
    s
}
