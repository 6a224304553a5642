//! Scenarios: a mesh of real node processes whose links all run through a
//! [`FaultProxy`], broken in one way, measured, and judged. Each returns a
//! [`Report`]: a table for people, JSON for scripts, and whether every node got
//! everything within the deadline.
//!
//! Times come from the nodes' own logs (see [`crate::observe`]), never from polling,
//! so they do not depend on how fast the harness looks.

use anyhow::bail;

mod degrade;
mod faults;
mod gossip;
mod report;
mod setup;
mod subscribe;

pub use degrade::degrade;
pub use faults::{churn, late_join, partition};
pub use gossip::{policy_convergence, propagation};
pub use report::{Options, Report};
pub use subscribe::subscription;

/// The scenarios, by name.
pub const NAMES: [&str; 7] = [
    "propagation",
    "policy-convergence",
    "partition",
    "churn",
    "late-join",
    "degrade",
    "subscription",
];

/// Runs the named scenario.
pub fn run(name: &str, opts: &Options) -> anyhow::Result<Report> {
    match name {
        "propagation" => propagation(opts),
        "policy-convergence" => policy_convergence(opts),
        "partition" => partition(opts),
        "churn" => churn(opts),
        "late-join" => late_join(opts),
        "degrade" => degrade(opts),
        "subscription" => subscription(opts),
        other => bail!("no scenario {other:?}; choose one of: {}", NAMES.join(", ")),
    }
}
