//! The policy chain this node enforces, persisted in the metadata store, and every
//! check that depends on it: publisher registration of manifests and announcements,
//! the policy's Cedar rules for publish and fetch, and schema evolution.
//!
//! The chain is verified from genesis on load (`PolicyChain::restore`) and extended
//! only through [`Governance::offer`], which applies TUF's rules
//! (`mesh_protocol::chain`) and persists each accepted version before reporting it.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use mesh_contract::schema_diff::breaking_changes;
use mesh_protocol::access::{AccessDecision, AccessRequest};
use mesh_protocol::chain::{Offered, PolicyChain};
use mesh_protocol::policy::{self, Policy, SchemaCompatibility};
use mesh_protocol::rules::{Decision, Rules};
use mesh_protocol::{Announcement, DomainName, Manifest, PublicKey, Signed, SignedKind};
use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Invalid, StateError};
use crate::clock::unix_now;
use crate::home::seal::Seal;

/// A rule a product version violates under the current policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The rule's id (or `registry` for an unregistered publisher key).
    pub rule: String,
    /// Its human reason.
    pub reason: String,
    /// The policy version that flagged it.
    pub policy_version: u64,
}

struct State {
    chain: PolicyChain,
    rules: Rules,
}

/// This node as the fetch rules see it: its peer id (which the registry maps to a
/// domain) and the domain it publishes for.
#[derive(Debug, Clone)]
pub(crate) struct OwnNode {
    /// The peer id, base58.
    pub(crate) peer: String,
    /// The domain of its config.
    pub(crate) domain: DomainName,
}

/// The enforced policy chain, shared by every part of the node.
#[derive(Clone)]
pub(crate) struct Governance {
    state: Arc<RwLock<State>>,
    store: Arc<dyn MetaStore>,
    /// Advanced after every accepted version is flushed (see `home::seal`).
    seal: Option<Seal>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("version", &self.version())
            .finish()
    }
}

/// Equivocation evidence documents kept, at most.
const MAX_EVIDENCE: usize = 1024;

fn version_key(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Why a genesis policy was not installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The document is not a valid genesis (wrong version, threshold not met,
    /// expired, rules that do not parse, ...).
    #[error(transparent)]
    Invalid(#[from] mesh_protocol::PolicyError),
    /// The home already trusts another genesis.
    #[error("this home already trusts a different genesis policy; use a fresh --home")]
    DifferentGenesis,
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] mesh_storage::StoreError),
}

/// Verifies a signed genesis policy and stores it as version 1 of the chain.
pub fn install_genesis(
    store: &dyn MetaStore,
    signed: &Signed<Policy>,
    now: u64,
) -> Result<Policy, GenesisError> {
    let policy = policy::verify_genesis(signed, now)?;
    if let Some(existing) = store.get(Tree::Policies, &version_key(1))? {
        let old = Signed::<Policy>::from_bytes(&existing).map(|s| s.hash());
        if old.as_ref().ok() == Some(&signed.hash()) {
            return Ok(policy);
        }
        return Err(GenesisError::DifferentGenesis);
    }
    store.put(Tree::Policies, &version_key(1), &signed.to_bytes())?;
    store.flush()?;
    Ok(policy)
}

fn corrupt(e: impl std::fmt::Display) -> StateError {
    StateError::corrupt("stored policy chain", e)
}

/// The governance chain could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The home holds no genesis policy yet.
    #[error("no genesis policy installed: run `mesh init --home HOME --genesis FILE`")]
    NoGenesis,
    /// The stored chain failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<mesh_storage::StoreError> for LoadError {
    fn from(e: mesh_storage::StoreError) -> Self {
        LoadError::State(e.into())
    }
}

impl Governance {
    /// Loads and re-verifies the stored chain from genesis.
    pub(crate) fn load(store: Arc<dyn MetaStore>) -> Result<Self, LoadError> {
        let entries = store.scan(Tree::Policies, None, usize::MAX)?;
        if entries.is_empty() {
            return Err(LoadError::NoGenesis);
        }
        let signed = entries
            .iter()
            .map(|(_, b)| Signed::<Policy>::from_bytes(b).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        let chain = PolicyChain::restore(signed).map_err(corrupt)?;
        let rules = Rules::parse(&chain.current().rules).map_err(corrupt)?;
        if chain.is_expired(unix_now()) {
            warn!(
                version = chain.version(),
                "the newest policy has expired; publishing is refused until the council signs a newer one"
            );
        }
        Ok(Governance {
            state: Arc::new(RwLock::new(State { chain, rules })),
            store,
            seal: None,
        })
    }

    /// Advances `seal` whenever a new version is accepted from now on.
    pub(crate) fn with_seal(mut self, seal: Seal) -> Self {
        self.seal = Some(seal);
        self
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current policy. It holds the whole domain registry: on a path
    /// taken per request or per product, read it with [`Governance::with_policy`].
    pub(crate) fn policy(&self) -> Policy {
        self.read().chain.current().clone()
    }

    /// `f` of the current policy, without copying it.
    pub(crate) fn with_policy<R>(&self, f: impl FnOnce(&Policy) -> R) -> R {
        f(self.read().chain.current())
    }

    /// The current version.
    pub(crate) fn version(&self) -> u64 {
        self.read().chain.version()
    }

    /// Version `v` as signed, if held.
    pub(crate) fn get(&self, v: u64) -> Option<Signed<Policy>> {
        self.read().chain.get(v).cloned()
    }

    /// Every version, oldest first.
    pub(crate) fn history(&self) -> Vec<(Signed<Policy>, Policy)> {
        self.read()
            .chain
            .iter()
            .map(|(s, p)| (s.clone(), p.clone()))
            .collect()
    }

    /// Equivocations seen: for each, the version and the conflicting document's
    /// hash (the accepted one is in the chain). Kept on disk, so they survive a
    /// restart.
    pub(crate) fn equivocations(&self) -> Vec<(u64, mesh_protocol::Hash)> {
        let rows = self
            .store
            .scan(Tree::Equivocations, None, MAX_EVIDENCE)
            .unwrap_or_default();
        rows.into_iter()
            .filter_map(|(_, bytes)| {
                let s = Signed::<Policy>::from_bytes(&bytes).ok()?;
                Some((s.value().ok()?.version, s.hash()))
            })
            .collect()
    }

    /// Stores the conflicting document as evidence (flushed), at most
    /// [`MAX_EVIDENCE`] of them. Only a document signed by a threshold of the
    /// council gets here, so peers cannot fill it.
    fn keep_evidence(&self, version: u64, doc: &Signed<Policy>) -> Result<(), StateError> {
        if self.store.len(Tree::Equivocations)? >= MAX_EVIDENCE {
            return Ok(());
        }
        let mut key = version_key(version).to_vec();
        key.extend_from_slice(doc.hash().as_bytes());
        self.store.put(Tree::Equivocations, &key, &doc.to_bytes())?;
        self.store.flush()?;
        Ok(())
    }

    /// Whether the newest policy has expired at `now`.
    pub(crate) fn is_expired(&self, now: u64) -> bool {
        self.read().chain.is_expired(now)
    }

    /// Offers policies to the chain; persists (and flushes) what it accepts.
    pub(crate) fn offer(
        &self,
        updates: &[Signed<Policy>],
        now: u64,
    ) -> Result<Offered, StateError> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut chain = state.chain.clone();
        let offered = chain.offer(updates, now);
        if let Some(mesh_protocol::PolicyError::Equivocation {
            version,
            ours,
            theirs,
        }) = &offered.error
        {
            warn!(version, %ours, %theirs, "policy equivocation: a threshold of the council signed a second document for an accepted version; evidence kept");
            if let Some(doc) = updates.iter().find(|u| u.hash() == *theirs) {
                self.keep_evidence(*version, doc)?;
            }
        }
        if offered.accepted.is_empty() {
            return Ok(offered);
        }
        for v in &offered.accepted {
            let s = chain
                .get(*v)
                .ok_or_else(|| corrupt("accepted version missing"))?;
            self.store
                .put(Tree::Policies, &version_key(*v), &s.to_bytes())?;
        }
        self.store.flush()?;
        if let Some(seal) = &self.seal {
            seal.advance(chain.version())?;
        }
        let rules = Rules::parse(&chain.current().rules).map_err(corrupt)?;
        info!(version = chain.version(), "policy accepted");
        *state = State { chain, rules };
        Ok(offered)
    }

    /// Checks a signed manifest: decodes it, verifies the publisher's signature and
    /// that the policy registers the key for the product's domain.
    pub(crate) fn check_manifest(&self, signed: &Signed<Manifest>) -> Result<Manifest, Invalid> {
        let m = signed.value().map_err(Invalid::new)?;
        m.validate().map_err(|errs| {
            Invalid::new(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        self.check_publisher(signed, m.id.domain(), &m.publisher)?;
        Ok(m)
    }

    /// Checks a signed announcement the same way; `a` is its value, decoded once
    /// by the caller (`signed.value()`).
    pub(crate) fn check_announcement(
        &self,
        signed: &Signed<Announcement>,
        a: Announcement,
    ) -> Result<Announcement, Invalid> {
        a.validate().map_err(Invalid::new)?;
        self.check_publisher(signed, a.product.domain(), &a.publisher)?;
        Ok(a)
    }

    /// Verifies a usage report: well formed and signed by a publisher key registered
    /// for the domain it names.
    pub(crate) fn check_usage(
        &self,
        signed: &Signed<mesh_protocol::usage::UsageReport>,
    ) -> Result<mesh_protocol::usage::UsageReport, Invalid> {
        let r = signed.value().map_err(Invalid::new)?;
        if r.format != mesh_protocol::usage::USAGE_FORMAT {
            return Err(Invalid::new(format!(
                "usage report format {} is not supported",
                r.format
            )));
        }
        self.check_publisher(signed, &r.domain, &r.publisher)?;
        Ok(r)
    }

    /// Verifies an access request: well formed, dated no later than the clock
    /// allows, and signed by a publisher key registered for the consumer domain.
    pub(crate) fn check_access_request(
        &self,
        signed: &Signed<AccessRequest>,
        now_ms: u64,
    ) -> Result<AccessRequest, Invalid> {
        let r = signed.value().map_err(Invalid::new)?;
        r.validate(now_ms).map_err(Invalid::new)?;
        self.check_publisher(signed, &r.consumer, &r.publisher)?;
        Ok(r)
    }

    /// Verifies an access decision: well formed, dated no later than the clock
    /// allows, and signed by a publisher key registered for the product's domain
    /// (its owner; no other domain can grant).
    pub(crate) fn check_access_decision(
        &self,
        signed: &Signed<AccessDecision>,
        now_ms: u64,
    ) -> Result<AccessDecision, Invalid> {
        let d = signed.value().map_err(Invalid::new)?;
        d.validate(now_ms).map_err(Invalid::new)?;
        self.check_publisher(signed, d.product.domain(), &d.publisher)
            .map_err(|e| {
                Invalid::new(format!(
                    "only the owner of {} decides who reads it: {e}",
                    d.product
                ))
            })?;
        Ok(d)
    }

    fn check_publisher<T: SignedKind>(
        &self,
        signed: &Signed<T>,
        domain: &DomainName,
        publisher: &PublicKey,
    ) -> Result<(), Invalid> {
        if !signed.is_signed_by(publisher) {
            return Err(Invalid::new(format!(
                "{} for domain {domain} is not validly signed by its publisher key {}",
                T::WHAT,
                publisher.short()
            )));
        }
        let state = self.read();
        let policy = state.chain.current();
        if !policy.is_publisher(domain, publisher) {
            return Err(Invalid::new(format!(
                "key {publisher} is not registered for domain {domain} in policy v{}; the council must add it to the domain registry",
                policy.version
            )));
        }
        Ok(())
    }

    /// The publish rules' decision on a manifest.
    pub(crate) fn publish_decision(&self, m: &Manifest) -> Decision {
        self.read().rules.publish(m.id.domain(), m)
    }

    /// The fetch rules' decision for a request by `peer` (a libp2p peer id), with
    /// the access decisions in force for the product (`grants`: every consumer
    /// domain's newest decision). A grant counts only while it is unexpired and
    /// signed by a key the current policy registers for the owner, so removing a
    /// key withdraws its grants.
    pub(crate) fn fetch_decision(
        &self,
        peer: &str,
        m: &Manifest,
        grants: &[AccessDecision],
        now_ms: u64,
    ) -> Decision {
        let domain = self.read().chain.current().domain_of_node(peer).cloned();
        self.domain_fetch_decision(domain.as_ref(), m, grants, now_ms)
    }

    /// The fetch rules' decision for a read by `domain` (`None`: a node of no
    /// registered domain), with the grants in force, as [`Governance::fetch_decision`]
    /// judges a peer of that domain. A consumer token of an output port reads as
    /// its domain.
    pub(crate) fn domain_fetch_decision(
        &self,
        domain: Option<&DomainName>,
        m: &Manifest,
        grants: &[AccessDecision],
        now_ms: u64,
    ) -> Decision {
        if domain == Some(m.id.domain()) {
            return Decision::Allow;
        }
        let state = self.read();
        let policy = state.chain.current();
        let granted: Vec<DomainName> = grants
            .iter()
            .filter(|g| {
                g.product == m.id
                    && g.grants_at(now_ms)
                    && policy.is_publisher(m.id.domain(), &g.publisher)
            })
            .map(|g| g.consumer.clone())
            .collect();
        state.rules.fetch(domain, m, &granted)
    }

    /// Whether this node (`own`) may read its
    /// own copy of `m` and serve it: a node of the product's own domain always
    /// may; any other as the fetch rules and grants decide for it now, exactly as
    /// a provider would. A copy this node may no longer read (a revoked grant, a
    /// stricter rule) is neither read by a local fetch nor served to others.
    pub(crate) fn own_copy_decision(
        &self,
        own: &OwnNode,
        m: &Manifest,
        grants: &[AccessDecision],
        now_ms: u64,
    ) -> Decision {
        if m.id.domain() == &own.domain {
            return Decision::Allow;
        }
        self.fetch_decision(&own.peer, m, grants, now_ms)
    }

    /// What the current policy says about a product version already in the mesh:
    /// an unregistered publisher key or a publish rule it violates.
    pub(crate) fn violations(&self, m: &Manifest) -> Vec<Violation> {
        let state = self.read();
        let policy = state.chain.current();
        let mut out = Vec::new();
        if !policy.is_publisher(m.id.domain(), &m.publisher) {
            out.push(Violation {
                rule: "registry".into(),
                reason: format!(
                    "publisher key {} is no longer registered for domain {}",
                    m.publisher.short(),
                    m.id.domain()
                ),
                policy_version: policy.version,
            });
        }
        if let Decision::Deny { rule, reason } = state.rules.publish(m.id.domain(), m) {
            out.push(Violation {
                rule,
                reason,
                policy_version: policy.version,
            });
        }
        if let Some(q) = m.quality.as_ref() {
            let n: u64 = q.violations.iter().map(|v| v.count).sum();
            let failed = q
                .rules
                .iter()
                .filter(|r| r.state == mesh_protocol::manifest::RuleState::Failed)
                .count();
            if n > 0 || failed > 0 {
                out.push(Violation {
                    rule: "quality".into(),
                    reason: format!(
                        "published (quality mode warn) with {n} contract violation(s) in {} field(s) of its files and {failed} failed quality rule(s); `mesh show` lists them",
                        q.violations.len()
                    ),
                    policy_version: policy.version,
                });
            }
        }
        out
    }

    /// Checks schema evolution from `previous` to `next` under the policy's setting.
    pub(crate) fn check_evolution(
        &self,
        previous: &Manifest,
        next: &Manifest,
    ) -> Result<(), Invalid> {
        let mode = self.read().chain.current().settings.schema_compatibility;
        if mode == SchemaCompatibility::None {
            return Ok(());
        }
        let breaking = breaking_changes(previous, next);
        if breaking.is_empty() {
            return Ok(());
        }
        let list = breaking
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        match mode {
            SchemaCompatibility::Backward if next.version.major > previous.version.major => Ok(()),
            SchemaCompatibility::Backward => Err(Invalid::new(format!(
                "breaking schema change from {}@{} ({list}): the policy requires a new major version ({}.0.0)",
                previous.id,
                previous.version,
                previous.version.major + 1
            ))),
            _ => Err(Invalid::new(format!(
                "breaking schema change from {}@{} ({list}): the policy freezes schemas; breaking changes are refused",
                previous.id, previous.version
            ))),
        }
    }
}
