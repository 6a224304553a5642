//! Access requests and decisions (see `mesh_protocol::access`): the newest verified
//! request and decision of each product and consumer domain, kept in the store and,
//! for the providers' per-request check, in memory by product.
//!
//! Offers come from gossip and from pull sync alike and go through [`AccessBook`]'s
//! `accept_*`, which verify the signer against the current policy and keep a decision
//! only if it supersedes the one held: a replayed older grant never undoes a
//! revocation.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use mesh_protocol::access::{access_key, AccessDecision, AccessRequest, Verdict};
use mesh_protocol::{DomainName, ProductId, Signed};
use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::governance::Governance;
use super::{OfferError, StateError};
use crate::clock::unix_now_ms;

/// One product and consumer pair as a person reads it: the request, the decision
/// and whether access is in force now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessView {
    /// `domain/name`.
    pub product: String,
    /// The consumer domain.
    pub consumer: String,
    /// `pending` (asked, no decision since), `granted`, `expired`, `denied`,
    /// `revoked`, or `withdrawn` (a grant whose signing key the policy no longer
    /// registers).
    pub state: String,
    /// The consumer's reason, when it asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it asked (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at_ms: Option<u64>,
    /// The owner's decision, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionView>,
}

/// An owner's decision as a person reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecisionView {
    /// `grant`, `deny` or `revoke`.
    pub kind: String,
    /// When decided (Unix ms).
    pub issued_at_ms: u64,
    /// A grant's end (Unix ms), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// A grant's purpose.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub purpose: String,
    /// A grant's terms.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub terms: String,
    /// A denial's or revocation's reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The signing key (short form).
    pub signed_by: String,
    /// A short id of this decision: the first 12 hex digits of the BLAKE3 hash of
    /// its envelope (usage counts name the grant they were served under by it).
    pub id: String,
}

/// The in-memory index: every product's decisions, by consumer.
type Decisions = BTreeMap<ProductId, BTreeMap<DomainName, (AccessDecision, String)>>;

/// The access requests and decisions this node holds.
#[derive(Debug, Clone)]
pub(crate) struct AccessBook {
    store: Arc<dyn MetaStore>,
    governance: Governance,
    decisions: Arc<RwLock<Decisions>>,
}

/// Whether `d` is a grant in force at `now_ms` under `policy`: unexpired and signed
/// by a key the policy still registers for the product's owner (the test the
/// providers' fetch check applies too, in `Governance::fetch_decision`).
fn in_force(d: &AccessDecision, policy: &mesh_protocol::Policy, now_ms: u64) -> bool {
    d.grants_at(now_ms) && policy.is_publisher(d.product.domain(), &d.publisher)
}

/// The short id of an envelope.
fn short_id(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..12].to_string()
}

impl AccessBook {
    /// Opens the book over the store, indexing the decisions it holds.
    pub(crate) fn open(
        store: Arc<dyn MetaStore>,
        governance: Governance,
    ) -> Result<Self, StateError> {
        let mut decisions = Decisions::new();
        for (_, bytes) in store.scan(Tree::AccessDecisions, None, usize::MAX)? {
            match Signed::<AccessDecision>::from_bytes(&bytes).and_then(|s| s.value()) {
                Ok(d) => {
                    let id = short_id(&bytes);
                    decisions
                        .entry(d.product.clone())
                        .or_default()
                        .insert(d.consumer.clone(), (d, id));
                }
                Err(e) => warn!("skipping an unreadable stored access decision: {e}"),
            }
        }
        Ok(AccessBook {
            store,
            governance,
            decisions: Arc::new(RwLock::new(decisions)),
        })
    }

    /// Verifies a request and keeps it if it is the newest of its pair; returns
    /// whether it was new.
    pub(crate) fn accept_request(&self, bytes: &[u8]) -> Result<bool, OfferError> {
        let signed = Signed::<AccessRequest>::from_bytes(bytes).map_err(super::Invalid::new)?;
        let r = self
            .governance
            .check_access_request(&signed, unix_now_ms())?;
        let k = r.key();
        if let Some(old) = self.store.get(Tree::AccessRequests, k.as_bytes())? {
            let newer = Signed::<AccessRequest>::from_bytes(&old)
                .and_then(|s| s.value())
                .is_ok_and(|o| o.issued_at_ms >= r.issued_at_ms);
            if newer {
                return Ok(false);
            }
        }
        self.store.put(Tree::AccessRequests, k.as_bytes(), bytes)?;
        info!(product = %r.product, consumer = %r.consumer, "access requested");
        Ok(true)
    }

    /// Verifies a decision and keeps it if it supersedes the one held for its pair;
    /// returns whether it was new.
    pub(crate) fn accept_decision(&self, bytes: &[u8]) -> Result<bool, OfferError> {
        let signed = Signed::<AccessDecision>::from_bytes(bytes).map_err(super::Invalid::new)?;
        let d = self
            .governance
            .check_access_decision(&signed, unix_now_ms())?;
        // Held under the write lock from the comparison to the index update, so two
        // decisions arriving at once cannot both win.
        let mut index = self.decisions.write().unwrap_or_else(|p| p.into_inner());
        if let Some((held, _)) = index.get(&d.product).and_then(|m| m.get(&d.consumer)) {
            if !d.supersedes(held) {
                return Ok(false);
            }
        }
        self.store
            .put(Tree::AccessDecisions, d.key().as_bytes(), bytes)?;
        info!(product = %d.product, consumer = %d.consumer, decision = d.verdict.kind(), "access decided");
        index
            .entry(d.product.clone())
            .or_default()
            .insert(d.consumer.clone(), (d, short_id(bytes)));
        Ok(true)
    }

    /// Every consumer domain's newest decision on `product`, for the fetch rules.
    pub(crate) fn decisions_for(&self, product: &ProductId) -> Vec<AccessDecision> {
        self.decisions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(product)
            .map(|m| m.values().map(|(d, _)| d.clone()).collect())
            .unwrap_or_default()
    }

    /// The short id of the grant in force for `consumer` on `product`, if any (the
    /// usage counts name the grant a fetch was served under by it).
    pub(crate) fn grant_id(&self, product: &ProductId, consumer: &str) -> Option<String> {
        let now = unix_now_ms();
        let index = self.decisions.read().unwrap_or_else(|p| p.into_inner());
        let (d, id) = index
            .get(product)?
            .iter()
            .find(|(c, _)| c.as_str() == consumer)
            .map(|(_, v)| v)?;
        self.governance
            .with_policy(|policy| in_force(d, policy, now))
            .then(|| id.clone())
    }

    /// A page of envelopes of one kind after `after` (a key), for a peer's pull.
    pub(crate) fn page(
        &self,
        decisions: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StateError> {
        let tree = if decisions {
            Tree::AccessDecisions
        } else {
            Tree::AccessRequests
        };
        super::page_after(self.store.as_ref(), tree, after.map(str::as_bytes), limit)
    }

    /// Every pair this node knows, optionally of one product, owner domain or
    /// consumer domain: pending requests first, then by product and consumer.
    pub(crate) fn list(&self, filter: &AccessFilter) -> Result<Vec<AccessView>, StateError> {
        let now = unix_now_ms();
        let policy = self.governance.policy();
        let mut pairs: BTreeMap<String, AccessView> = BTreeMap::new();
        for (_, bytes) in self.store.scan(Tree::AccessRequests, None, usize::MAX)? {
            let Ok(r) = Signed::<AccessRequest>::from_bytes(&bytes).and_then(|s| s.value()) else {
                continue;
            };
            if !filter.matches(&r.product, &r.consumer) {
                continue;
            }
            pairs.insert(
                r.key(),
                AccessView {
                    product: r.product.to_string(),
                    consumer: r.consumer.to_string(),
                    state: "pending".into(),
                    reason: Some(r.reason.clone()),
                    requested_at_ms: Some(r.issued_at_ms),
                    decision: None,
                },
            );
        }
        let index = self.decisions.read().unwrap_or_else(|p| p.into_inner());
        for (product, by_consumer) in index.iter() {
            for (consumer, (d, id)) in by_consumer {
                if !filter.matches(product, consumer) {
                    continue;
                }
                let view = pairs
                    .entry(access_key(product, consumer))
                    .or_insert_with(|| AccessView {
                        product: product.to_string(),
                        consumer: consumer.to_string(),
                        state: String::new(),
                        reason: None,
                        requested_at_ms: None,
                        decision: None,
                    });
                // A request made after the decision is pending again (asking anew
                // after a denial or a revocation, or for a renewal).
                let asked_since = view.requested_at_ms.is_some_and(|t| t > d.issued_at_ms);
                view.state = match &d.verdict {
                    _ if asked_since && !d.grants_at(now) => "pending",
                    Verdict::Grant { .. } if in_force(d, &policy, now) => "granted",
                    Verdict::Grant { .. }
                        if !policy.is_publisher(product.domain(), &d.publisher) =>
                    {
                        "withdrawn"
                    }
                    Verdict::Grant { .. } => "expired",
                    Verdict::Deny { .. } => "denied",
                    Verdict::Revoke { .. } => "revoked",
                }
                .into();
                view.decision = Some(decision_view(d, id));
            }
        }
        let mut out: Vec<AccessView> = pairs.into_values().collect();
        out.sort_by_key(|v| v.state != "pending");
        Ok(out)
    }
}

fn decision_view(d: &AccessDecision, id: &str) -> DecisionView {
    let (until_ms, purpose, terms, reason) = match &d.verdict {
        Verdict::Grant {
            until_ms,
            purpose,
            terms,
        } => (*until_ms, purpose.clone(), terms.clone(), String::new()),
        Verdict::Deny { reason } | Verdict::Revoke { reason } => {
            (None, String::new(), String::new(), reason.clone())
        }
    };
    DecisionView {
        kind: d.verdict.kind().into(),
        issued_at_ms: d.issued_at_ms,
        until_ms,
        purpose,
        terms,
        reason,
        signed_by: d.publisher.short(),
        id: id.to_string(),
    }
}

/// Which pairs [`AccessBook::list`] shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccessFilter {
    /// Only this product.
    #[serde(default)]
    pub product: Option<String>,
    /// Only products of this (owner) domain.
    #[serde(default)]
    pub owner: Option<String>,
    /// Only this consumer domain.
    #[serde(default)]
    pub consumer: Option<String>,
}

impl AccessFilter {
    fn matches(&self, product: &ProductId, consumer: &DomainName) -> bool {
        self.product
            .as_deref()
            .is_none_or(|p| p == product.to_string())
            && self
                .owner
                .as_deref()
                .is_none_or(|o| o == product.domain().as_str())
            && self
                .consumer
                .as_deref()
                .is_none_or(|c| c == consumer.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::access::ACCESS_FORMAT;
    use mesh_protocol::manifest::{Classification, Manifest};
    use mesh_protocol::policy::{Council, DomainEntry};
    use mesh_protocol::rules::Decision;
    use mesh_protocol::{KeyPair, Policy};

    /// Domains sales (keys `sales`, `sales_old`) and finance (key `finance`), the
    /// sample rules, and a book over them.
    struct Mesh {
        council: KeyPair,
        sales: KeyPair,
        sales_old: KeyPair,
        finance: KeyPair,
        governance: Governance,
        book: AccessBook,
    }

    fn mesh() -> Mesh {
        let (council, sales, sales_old, finance) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        let entry = |keys: Vec<&KeyPair>, node: &str| DomainEntry {
            publisher_keys: keys.into_iter().map(KeyPair::public).collect(),
            nodes: [node.to_string()].into(),
            ..DomainEntry::default()
        };
        let mut genesis = Policy::genesis(
            Council {
                members: [council.public()].into(),
                threshold: 1,
            },
            [
                (
                    "sales".parse().unwrap(),
                    entry(vec![&sales, &sales_old], "sales-node"),
                ),
                (
                    "finance".parse().unwrap(),
                    entry(vec![&finance], "finance-node"),
                ),
            ]
            .into(),
            crate::clock::unix_now(),
            86_400,
        )
        .unwrap();
        genesis.rules = include_str!("../../../examples/governance/rules.cedar").into();
        let store: Arc<dyn MetaStore> = Arc::new(mesh_storage::MemStore::default());
        super::super::governance::install_genesis(
            store.as_ref(),
            &Signed::sign(&genesis, &council),
            crate::clock::unix_now(),
        )
        .unwrap();
        let governance = Governance::load(store.clone()).unwrap();
        let book = AccessBook::open(store, governance.clone()).unwrap();
        Mesh {
            council,
            sales,
            sales_old,
            finance,
            governance,
            book,
        }
    }

    fn product() -> ProductId {
        "sales/orders".parse().unwrap()
    }

    fn finance() -> DomainName {
        "finance".parse().unwrap()
    }

    fn decision(key: &KeyPair, verdict: Verdict, at: u64) -> Vec<u8> {
        let d = AccessDecision {
            format: ACCESS_FORMAT,
            product: product(),
            consumer: finance(),
            verdict,
            issued_at_ms: at,
            publisher: key.public(),
        };
        Signed::sign(&d, key).to_bytes()
    }

    fn grant(until_ms: Option<u64>) -> Verdict {
        Verdict::Grant {
            until_ms,
            purpose: "revenue reporting".into(),
            terms: "delete after 90 days".into(),
        }
    }

    fn revoke() -> Verdict {
        Verdict::Revoke {
            reason: "contract ended".into(),
        }
    }

    /// A pii product of sales, and whether a finance node may fetch it now.
    fn finance_may_fetch(m: &Mesh) -> bool {
        let manifest = Manifest {
            format: mesh_protocol::manifest::MANIFEST_FORMAT,
            id: product(),
            version: semver::Version::new(1, 0, 0),
            status: mesh_protocol::manifest::Status::Active,
            title: "Orders".into(),
            description: "Every order".into(),
            owner: mesh_protocol::manifest::Owner {
                team: "sales-data".into(),
                contact: "sales@example.com".into(),
            },
            tags: vec![],
            classification: Classification::Pii,
            consumers: vec![],
            schema: vec![],
            null_values: Default::default(),
            sla: Default::default(),
            lineage: vec![],
            files: vec![],
            quality: None,
            created_at: 0,
            publisher: m.sales.public(),
            contract: None,
            derivation: None,
            odps: None,
        };
        let grants = m.book.decisions_for(&product());
        m.governance
            .fetch_decision("finance-node", &manifest, &grants, unix_now_ms())
            == Decision::Allow
    }

    fn invalid(outcome: Result<bool, OfferError>) -> String {
        match outcome {
            Err(OfferError::Invalid(e)) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_grant_opens_the_product_and_a_revocation_closes_it_for_good() {
        let m = mesh();
        let now = unix_now_ms();
        assert!(!finance_may_fetch(&m), "no grant yet");
        let granted = decision(&m.sales, grant(None), now - 2_000);
        assert!(m.book.accept_decision(&granted).unwrap());
        assert!(finance_may_fetch(&m));
        let list = m.book.list(&AccessFilter::default()).unwrap();
        assert_eq!(list[0].state, "granted");
        assert_eq!(
            list[0].decision.as_ref().unwrap().terms,
            "delete after 90 days"
        );

        assert!(m
            .book
            .accept_decision(&decision(&m.sales, revoke(), now - 1_000))
            .unwrap());
        assert!(!finance_may_fetch(&m));
        // The revoked grant, replayed (from gossip or a peer's sync), changes nothing.
        assert!(!m.book.accept_decision(&granted).unwrap());
        assert!(!finance_may_fetch(&m));
        // A reopened book (a restart) keeps the revocation.
        let reopened = AccessBook::open(m.book.store.clone(), m.governance.clone()).unwrap();
        assert!(!reopened.accept_decision(&granted).unwrap());
        assert_eq!(
            reopened.list(&AccessFilter::default()).unwrap()[0].state,
            "revoked"
        );
    }

    #[test]
    fn only_the_owner_domain_grants() {
        let m = mesh();
        let by_consumer = decision(&m.finance, grant(None), unix_now_ms());
        let e = invalid(m.book.accept_decision(&by_consumer));
        assert!(e.contains("only the owner of sales/orders"), "{e}");
        assert!(!finance_may_fetch(&m));
        // An unknown key claiming to be sales' fails the same way.
        let stranger = decision(&KeyPair::generate(), grant(None), unix_now_ms());
        assert!(invalid(m.book.accept_decision(&stranger)).contains("not registered"));
    }

    #[test]
    fn a_forged_or_tampered_envelope_is_refused() {
        let m = mesh();
        // A request that names finance's key but is signed by another key.
        let request = AccessRequest {
            format: ACCESS_FORMAT,
            product: product(),
            consumer: finance(),
            reason: "reporting".into(),
            issued_at_ms: unix_now_ms(),
            publisher: m.finance.public(),
        };
        let forged = Signed::sign(&request, &KeyPair::generate()).to_bytes();
        assert!(invalid(m.book.accept_request(&forged)).contains("not validly signed"));
        let genuine = Signed::sign(&request, &m.finance).to_bytes();
        assert!(m.book.accept_request(&genuine).unwrap());
        assert_eq!(
            m.book.list(&AccessFilter::default()).unwrap()[0].state,
            "pending"
        );
        // Flipping a byte of a valid grant breaks its signature or its encoding.
        let mut tampered = decision(&m.sales, grant(None), unix_now_ms());
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        assert!(m.book.accept_decision(&tampered).is_err());
        assert!(!finance_may_fetch(&m));
    }

    #[test]
    fn an_expired_grant_no_longer_opens_the_product() {
        let m = mesh();
        let now = unix_now_ms();
        let lapsed = decision(&m.sales, grant(Some(now - 1)), now - 60_000);
        assert!(m.book.accept_decision(&lapsed).unwrap());
        assert!(!finance_may_fetch(&m));
        assert_eq!(
            m.book.list(&AccessFilter::default()).unwrap()[0].state,
            "expired"
        );
    }

    #[test]
    fn removing_the_signing_key_withdraws_its_grants() {
        let m = mesh();
        let granted = decision(&m.sales_old, grant(None), unix_now_ms());
        assert!(m.book.accept_decision(&granted).unwrap());
        assert!(finance_may_fetch(&m));
        // The council removes the old key from sales.
        let mut next = m.governance.policy();
        next.version += 1;
        next.domains
            .get_mut(&"sales".parse::<DomainName>().unwrap())
            .unwrap()
            .publisher_keys
            .remove(&m.sales_old.public());
        let offered = m
            .governance
            .offer(&[Signed::sign(&next, &m.council)], crate::clock::unix_now())
            .unwrap();
        assert_eq!(offered.accepted.len(), 1, "{:?}", offered.error);
        assert!(
            !finance_may_fetch(&m),
            "a removed key's grant no longer counts"
        );
        assert_eq!(
            m.book.list(&AccessFilter::default()).unwrap()[0].state,
            "withdrawn"
        );
        // And the removed key cannot sign a new one.
        let again = decision(&m.sales_old, grant(None), unix_now_ms() + 1);
        assert!(invalid(m.book.accept_decision(&again)).contains("not registered"));
        // The current key can.
        let renewed = decision(&m.sales, grant(None), unix_now_ms() + 2);
        assert!(m.book.accept_decision(&renewed).unwrap());
        assert!(finance_may_fetch(&m));
    }

    #[test]
    fn a_decision_dated_ahead_of_the_clock_is_refused() {
        let m = mesh();
        let ahead = unix_now_ms() + mesh_protocol::access::MAX_CLOCK_SKEW_MS + 60_000;
        let e = invalid(m.book.accept_decision(&decision(&m.sales, revoke(), ahead)));
        assert!(e.contains("future"), "{e}");
    }
}
