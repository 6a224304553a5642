//! Gossip validation: every message on the mesh topics is judged before gossipsub
//! may forward it. New -> `Accept`; already known -> `Ignore`; invalid -> `Reject`,
//! which costs the sender score. A failure of our own store is *not* the sender's
//! fault: it is `Ignore`d and logged, so an honest peer never loses score for our
//! disk.
//!
//! [`Validator`] also takes what sync pulls from peers (policies, catalog, provider
//! records, usage reports), so both paths offer through the same checks.

use libp2p::gossipsub::{MessageAcceptance, TopicHash};
use libp2p::PeerId;
use mesh_protocol::chain::Offered;
use mesh_protocol::{Announcement, Policy, PolicyError, Signed};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::behaviour::{
    access_decisions_topic, access_requests_topic, announce_topic, policy_topic, providers_topic,
    usage_topic,
};
use crate::clock::{unix_now, unix_now_ms};
use crate::metrics::Metrics;
use crate::state::access::AccessBook;
use crate::state::catalog::{Catalog, Offer, PageOffer};
use crate::state::governance::Governance;
use crate::state::providers::Providers;
use crate::state::usage::UsageLedger;
use crate::state::OfferError;

/// What the event loop should do after a message was judged.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FollowUp {
    /// Nothing more.
    None,
    /// The sender is ahead of our policy version: pull the missing versions from it.
    PullPolicies,
}

/// Judges gossip and synced entries against the node's state.
#[derive(Debug, Clone)]
pub(super) struct Validator {
    pub(super) catalog: Catalog,
    pub(super) governance: Governance,
    pub(super) usage: UsageLedger,
    pub(super) providers: Providers,
    pub(super) access: AccessBook,
    /// Announcements whose manifests should be fetched and checked in the background.
    pub(super) prefetch: mpsc::Sender<Announcement>,
    /// Counts messages not kept for a local fault.
    pub(super) metrics: Metrics,
}

/// The gossip verdict for an offer's outcome: only the sender's fault rejects.
pub(super) fn acceptance<T>(
    outcome: &Result<T, OfferError>,
    accept: impl FnOnce(&T) -> bool,
) -> MessageAcceptance {
    match outcome {
        Ok(t) if accept(t) => MessageAcceptance::Accept,
        Ok(_) => MessageAcceptance::Ignore,
        Err(OfferError::Invalid(_)) => MessageAcceptance::Reject,
        Err(_) => MessageAcceptance::Ignore,
    }
}

impl Validator {
    /// Judges one gossip message on `topic` from `source`.
    pub(super) fn judge(
        &self,
        topic: &TopicHash,
        source: &PeerId,
        data: &[u8],
    ) -> (MessageAcceptance, FollowUp) {
        if *topic == policy_topic().hash() {
            return self.judge_policy(source, data);
        }
        if *topic == usage_topic().hash() {
            let outcome = self.usage.accept(data);
            self.log_refusal(source, "usage report", &outcome);
            return (acceptance(&outcome, |new| *new), FollowUp::None);
        }
        if *topic == providers_topic().hash() {
            let outcome = self.providers.accept(data, unix_now_ms());
            self.log_refusal(source, "provider record", &outcome);
            return (acceptance(&outcome, |new| *new), FollowUp::None);
        }
        if *topic == access_requests_topic().hash() {
            let outcome = self.access.accept_request(data);
            self.log_refusal(source, "access request", &outcome);
            return (acceptance(&outcome, |new| *new), FollowUp::None);
        }
        if *topic == access_decisions_topic().hash() {
            let outcome = self.access.accept_decision(data);
            self.log_refusal(source, "access decision", &outcome);
            return (acceptance(&outcome, |new| *new), FollowUp::None);
        }
        if *topic != announce_topic().hash() {
            return (MessageAcceptance::Ignore, FollowUp::None);
        }
        let outcome = self.offer_announcement(data);
        if matches!(outcome, Ok(Offer::New)) {
            debug!(peer = %source, "new product version from gossip");
        }
        self.log_refusal(source, "announcement", &outcome);
        (acceptance(&outcome, |o| *o != Offer::Known), FollowUp::None)
    }

    /// Offers an announcement to the catalog; a new one queues a background fetch
    /// of its manifest, so the catalog can show its contract and flag rule
    /// violations (dropped when the queue is full).
    pub(super) fn offer_announcement(&self, bytes: &[u8]) -> Result<Offer, OfferError> {
        let offer = self.catalog.offer(bytes)?;
        if offer == Offer::New {
            if let Ok(a) = Signed::<Announcement>::from_bytes(bytes).and_then(|s| s.value()) {
                let _ = self.prefetch.try_send(a);
            }
        }
        Ok(offer)
    }

    /// Offers a page of a catalog sync to the catalog (see
    /// [`Catalog::offer_page`](crate::state::catalog::Catalog::offer_page)); each
    /// new version queues a background fetch of its manifest, as from gossip.
    pub(super) fn offer_announcements(&self, entries: &[Vec<u8>]) -> Vec<PageOffer> {
        let offered = self.catalog.offer_page(entries);
        for (outcome, announcement) in &offered {
            if let (Ok(Offer::New), Some(a)) = (outcome, announcement) {
                // A full queue drops it (without the copy).
                if let Ok(permit) = self.prefetch.try_reserve() {
                    permit.send(a.clone());
                }
            }
        }
        offered
    }

    /// Offers policies to governance; after an acceptance, re-evaluates the catalog
    /// in the background. `None` when our own store failed.
    pub(super) fn offer_policies(&self, updates: &[Signed<Policy>]) -> Option<Offered> {
        match self.governance.offer(updates, unix_now()) {
            Ok(offered) => {
                if !offered.accepted.is_empty() {
                    let catalog = self.catalog.clone();
                    tokio::task::spawn_blocking(move || match catalog.reevaluate() {
                        Ok(n) => info!(flagged = n, "catalog re-evaluated under the new policy"),
                        Err(e) => warn!("re-evaluating the catalog: {e}"),
                    });
                }
                Some(offered)
            }
            Err(e) => {
                warn!("storing policies: {e}");
                None
            }
        }
    }

    fn judge_policy(&self, source: &PeerId, data: &[u8]) -> (MessageAcceptance, FollowUp) {
        let signed = match Signed::<Policy>::from_bytes(data) {
            Ok(s) => s,
            Err(e) => {
                warn!(peer = %source, "rejected policy gossip: {e}");
                return (MessageAcceptance::Reject, FollowUp::None);
            }
        };
        let Some(offered) = self.offer_policies(&[signed]) else {
            return (MessageAcceptance::Ignore, FollowUp::None);
        };
        match offered.error {
            None if !offered.accepted.is_empty() => (MessageAcceptance::Accept, FollowUp::None),
            None => (MessageAcceptance::Ignore, FollowUp::None),
            Some(PolicyError::WrongVersion { found, expected }) if found > expected => {
                // We missed versions: pull them from the sender, in order.
                info!(peer = %source, found, expected, "policy gossip ahead of us; pulling the missing versions");
                (MessageAcceptance::Ignore, FollowUp::PullPolicies)
            }
            Some(e) => {
                warn!(peer = %source, "rejected policy gossip: {e}");
                (MessageAcceptance::Reject, FollowUp::None)
            }
        }
    }
}

impl Validator {
    /// Logs why a message was not taken; counts our own failures.
    fn log_refusal<T>(&self, source: &PeerId, what: &str, outcome: &Result<T, OfferError>) {
        match outcome {
            Err(OfferError::Invalid(e)) => warn!(peer = %source, "rejected {what}: {e}"),
            Err(OfferError::OverLimit(e)) => {
                self.metrics.over_limit.inc();
                debug!(peer = %source, "not kept, over the policy's domain limits: {e}");
            }
            Err(e) => {
                self.metrics.not_kept.inc();
                warn!(peer = %source, "could not keep a valid-looking {what}: {e}; ignored, the sender keeps its score");
            }
            Ok(_) => {}
        }
    }
}
