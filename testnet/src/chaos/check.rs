//! The checker: what the mesh must look like once every fault is healed.

use std::collections::BTreeSet;

use super::soak::{Soak, DEADLINE};
use crate::{file_hash, wait_until};

impl<F: FnMut(&str)> Soak<F> {
    /// Runs every end-of-soak check; broken promises go to the report's violations.
    pub(super) fn check(&mut self) {
        let n = self.net.nodes.len();
        let violations = &mut self.report.violations;
        let checked = &mut self.report.checked;
        // No node died other than by the schedule.
        for i in 0..n {
            *checked.entry("node alive at the end".into()).or_default() += 1;
            if !self.net.nodes[i].is_running() {
                violations.push(format!(
                    "node {i} is not running, though the schedule restarted it: {}",
                    self.net.nodes[i].log_tail(20)
                ));
            }
        }
        // Every live node converges to the council's head: the same document, not
        // only the same version number.
        let want_head = self.council.head.hash().to_string();
        let heads = || -> anyhow::Result<BTreeSet<String>> {
            (0..n)
                .map(|i| Ok(self.net.nodes[i].client()?.policy(None)?.hash))
                .collect()
        };
        *checked.entry("policy heads converge".into()).or_default() += n;
        if let Err(e) = wait_until("every node to the council's policy head", DEADLINE, || {
            Ok(heads()? == BTreeSet::from([want_head.clone()]))
        }) {
            violations.push(format!(
                "{e:#}: heads {:?}, the council's {want_head}",
                heads().ok()
            ));
        }
        let want: BTreeSet<String> = self.published.iter().map(|(l, _, _)| l.clone()).collect();
        let catalog = |i: usize| -> anyhow::Result<BTreeSet<String>> {
            Ok(self
                .net
                .products(i)?
                .iter()
                .map(|e| format!("{}@{}", e.announcement.product, e.announcement.version))
                .collect())
        };
        *checked.entry("catalogs converge".into()).or_default() += n;
        for i in 0..n {
            if let Err(e) = wait_until(&format!("node {i}'s catalog"), DEADLINE, || {
                Ok(catalog(i)?.is_superset(&want))
            }) {
                let missing: Vec<_> = catalog(i)
                    .map(|c| want.difference(&c).cloned().collect())
                    .unwrap_or_default();
                violations.push(format!("{e:#}: node {i} lacks {missing:?}"));
            }
        }
        // Every domain is registered again: no entry may stay flagged unregistered.
        for i in 0..n {
            *checked
                .entry("no registry flag once every domain is back".into())
                .or_default() += 1;
            let flagged: Vec<String> = self
                .net
                .products(i)
                .unwrap_or_default()
                .iter()
                .filter(|e| e.flags.iter().any(|f| f.rule == "registry"))
                .map(|e| format!("{}@{}", e.announcement.product, e.announcement.version))
                .collect();
            if !flagged.is_empty() {
                violations.push(format!(
                    "node {i} still flags {flagged:?} as unregistered though the policy registers their domain again"
                ));
            }
        }
        // Every acknowledged publish is held by its publisher and its bytes verify
        // (a chunk corrupted by the schedule is repaired from a peer on the way).
        for (k, (label, node, source)) in self.published.iter().enumerate() {
            *checked
                .entry("acknowledged publish held and verifies".into())
                .or_default() += 1;
            let out = self.net.root().join("chaos-check").join(k.to_string());
            match self.net.fetch(*node, label, &out) {
                Ok(_) => match file_hash(&out.join("orders.csv")) {
                    Ok(h) if h == *source => {}
                    other => violations.push(format!(
                        "{label} on its publisher, node {node}: bytes differ ({other:?})"
                    )),
                },
                Err(e) => violations.push(format!(
                    "{label} was acknowledged by node {node} but cannot be read back: {e:#}"
                )),
            }
        }
        for i in 0..n {
            self.check_chain(i);
        }
    }
}
