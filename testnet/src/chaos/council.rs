//! The council's part of the soak: policy changes signed as a real council signs
//! them, and forgeries that every node must refuse.
//!
//! The council keeps its own head (the newest version it signed that some node
//! acknowledged) and drafts every change from it, never from a node's possibly
//! stale view: a council signs one document per version, so a version it signed
//! and could not deliver is sent again, unchanged, before anything new is signed.
//! The changes: a contact edit, a council key rotation (one member out, a new key
//! in), a domain removed, and the same domain added back with its keys and nodes.
//! The forgeries: the next version signed by a retired member (or a key never on
//! the council) together with one member short of the threshold.

use mesh_protocol::keys::KeyPair;
use mesh_protocol::policy::Policy;
use mesh_protocol::signed::Signed;

use super::policy::{next_version, Change, Effect, REMOVABLE};
use super::soak::{Soak, DEADLINE};
use crate::wait_until;

impl<F: FnMut(&str)> Soak<F> {
    /// One policy step on a random live node: resend the undelivered version, or
    /// sign and submit a new change (`want`, or one drawn from the seed). Returns
    /// whether a new change was signed and sent.
    pub(super) fn policy(&mut self, live: &[usize], want: Option<Change>) -> bool {
        let Some(i) = self.pick(live) else {
            return false;
        };
        let (doc, effect, kind, new) = match self.council.unsent.take() {
            Some((doc, effect, kind)) => (doc, effect, kind, false),
            None => match self.draft_change(want) {
                Ok((doc, effect, kind)) => (doc, effect, kind, true),
                Err(e) => {
                    self.report
                        .violations
                        .push(format!("the council could not draft a change: {e:#}"));
                    return false;
                }
            },
        };
        self.deliver(i, doc, effect, kind);
        new
    }

    /// Submits `doc` at node `i`; on an ack it becomes the council's head.
    fn deliver(&mut self, i: usize, doc: Signed<Policy>, effect: Effect, kind: &'static str) {
        let result = self.net.submit_policy(i, &doc);
        let ok = result.is_ok();
        if let Err(e) = &result {
            self.council.refused = format!("{e:#}");
        }
        if ok {
            self.council.head = doc;
            match effect {
                Effect::Nothing => {}
                Effect::Rotate { out, inn } => {
                    self.council.members.retain(|m| *m != out);
                    self.council.members.push(inn);
                    self.council.retired.push(out);
                }
                Effect::Removed => self.council.removed = true,
                Effect::Readded => self.council.removed = false,
            }
        } else {
            self.council.unsent = Some((doc, effect, kind));
        }
        self.count_op(kind, &result);
    }

    /// Drafts and signs the next change from the council's head.
    fn draft_change(
        &mut self,
        want: Option<Change>,
    ) -> anyhow::Result<(Signed<Policy>, Effect, &'static str)> {
        self.counter += 1;
        let head = self.council.head.value()?;
        let change = want.unwrap_or_else(|| match self.rng.below(10) {
            0..=3 if self.council.removed => Change::Readd,
            0 => Change::Remove,
            1 => Change::Rotate,
            _ => Change::Contact,
        });
        let change = match change {
            Change::Remove if self.council.removed => Change::Readd,
            Change::Readd if !self.council.removed => Change::Contact,
            c => c,
        };
        let (toml, effect, kind) = if change == Change::Readd {
            (
                self.readd_toml()?,
                Effect::Readded,
                "policy: domain added back",
            )
        } else if change == Change::Remove {
            (
                format!("remove_domains = [\"{REMOVABLE}\"]\n"),
                Effect::Removed,
                "policy: domain removed",
            )
        } else if change == Change::Rotate {
            let out =
                self.council.members[self.rng.below(self.council.members.len() as u64) as usize];
            self.net.council.push(KeyPair::generate());
            let inn = self.net.council.len() - 1;
            (
                format!(
                    "[council]\nadd = [\"{}\"]\nremove = [\"{}\"]\n",
                    self.net.council[inn].public(),
                    self.net.council[out].public()
                ),
                Effect::Rotate { out, inn },
                "policy: council key rotated",
            )
        } else {
            (
                format!(
                    "[domains.sales]\ncontact = \"sales-{}@example.com\"\n",
                    self.counter
                ),
                Effect::Nothing,
                "policy: contact changed",
            )
        };
        let next = next_version(&head, &toml)?;
        let mut signed = Signed::unsigned(&next);
        let threshold = usize::from(head.council.threshold);
        for m in self.council.members.iter().take(threshold) {
            signed.add_signature(&self.net.council[*m]);
        }
        if let Effect::Rotate { inn, .. } = effect {
            // A council change needs a threshold of the new council too: every
            // member signs, and the incoming key.
            for m in self.council.members.iter().skip(threshold).chain([&inn]) {
                signed.add_signature(&self.net.council[*m]);
            }
        }
        Ok((signed, effect, kind))
    }

    /// The change that adds [`REMOVABLE`] back with every key and node it had.
    fn readd_toml(&self) -> anyhow::Result<String> {
        let nodes: Vec<_> = self
            .net
            .nodes
            .iter()
            .filter(|n| n.domain == REMOVABLE)
            .collect();
        let quote = |v: Vec<&str>| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Ok(format!(
            "[domains.{REMOVABLE}]\ncontact = \"{REMOVABLE}@example.com\"\nadd_keys = [{}]\nadd_nodes = [{}]\n",
            quote(nodes.iter().map(|n| n.publisher_key.as_str()).collect()),
            quote(nodes.iter().map(|n| n.peer_id.as_str()).collect()),
        ))
    }

    /// A forgery: the next version signed by a retired member (or, before any
    /// rotation, a key never on the council) and one member short of the
    /// threshold. Submitted to a live node at the council's head, which must
    /// refuse it.
    /// Returns whether a forgery was submitted (it needs a live node at the head).
    pub(super) fn forge(&mut self, live: &[usize]) -> anyhow::Result<bool> {
        let head = self.council.head.value()?;
        let at_head: Vec<usize> = live
            .iter()
            .copied()
            .filter(|i| self.net.policy_version(*i).is_ok_and(|v| v == head.version))
            .collect();
        let Some(i) = self.pick(&at_head) else {
            return Ok(false);
        };
        self.counter += 1;
        let next = next_version(
            &head,
            &format!(
                "[domains.sales]\ncontact = \"forged-{}@example.com\"\n",
                self.counter
            ),
        )?;
        let mut forged = Signed::unsigned(&next);
        let stranger = KeyPair::generate();
        let (who, key) = match self.council.retired.last() {
            Some(r) => ("a retired council key", &self.net.council[*r]),
            None => ("a key never on the council", &stranger),
        };
        forged.add_signature(key);
        let threshold = usize::from(head.council.threshold);
        for m in self
            .council
            .members
            .iter()
            .take(threshold.saturating_sub(1))
        {
            forged.add_signature(&self.net.council[*m]);
        }
        *self
            .report
            .checked
            .entry("forged policy refused".into())
            .or_default() += 1;
        self.count_fault("forged policy submitted");
        if self.net.submit_policy(i, &forged).is_ok() {
            self.report.violations.push(format!(
                "node {i} accepted policy v{} signed by {who} and {} member(s), under the threshold of {threshold}",
                next.version,
                threshold.saturating_sub(1)
            ));
        }
        Ok(true)
    }

    /// At the end (every fault healed): delivers the undelivered version and adds
    /// the removed domain back, so the checks see a mesh whose every domain is
    /// registered. Each goes to a node at the council's head, which must take it.
    pub(super) fn settle_council(&mut self) -> anyhow::Result<()> {
        while self.council.unsent.is_some() || self.council.removed {
            let (doc, effect, kind) = match self.council.unsent.take() {
                Some(u) => u,
                // `removed`: the draft is the domain added back.
                None => self.draft_change(Some(Change::Readd))?,
            };
            let head = self.council.head.value()?.version;
            let mut at_head = None;
            wait_until("a node at the council's head", DEADLINE, || {
                at_head = self
                    .live()
                    .into_iter()
                    .find(|i| self.net.policy_version(*i).is_ok_and(|v| v == head));
                Ok(at_head.is_some())
            })?;
            let Some(i) = at_head else { continue };
            self.deliver(i, doc, effect, kind);
            if let Some((_, _, kind)) = &self.council.unsent {
                self.report.violations.push(format!(
                    "node {i}, at the council's head v{head}, refused its next version ({kind}): {}",
                    self.council.refused
                ));
                return Ok(());
            }
        }
        Ok(())
    }

    /// Every version in node `i`'s history is signed by a threshold of the council
    /// of the version before it (genesis by its own): nothing signed by a retired
    /// or unregistered key counted.
    pub(super) fn check_chain(&mut self, i: usize) {
        let history = match self.net.nodes[i]
            .client()
            .and_then(|c| c.policy_history().map_err(anyhow::Error::from))
        {
            Ok(h) => h,
            Err(e) => {
                self.report
                    .violations
                    .push(format!("node {i}'s policy history cannot be read: {e:#}"));
                return;
            }
        };
        let mut previous: Option<&Policy> = None;
        for view in &history {
            *self
                .report
                .checked
                .entry("policy version signed by its predecessor's council".into())
                .or_default() += 1;
            let council = &previous.unwrap_or(&view.policy).council;
            let valid = view
                .signers
                .iter()
                .filter(|s| council.members.iter().any(|m| m.to_string() == **s))
                .count();
            if valid < usize::from(council.threshold) {
                self.report.violations.push(format!(
                    "node {i} holds policy v{} with {valid} signature(s) of its predecessor's council, under the threshold of {}",
                    view.policy.version, council.threshold
                ));
            }
            previous = Some(&view.policy);
        }
    }
}
