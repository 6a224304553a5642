//! The policy this node enforces, loaded from the chain in the metadata store, and the
//! checks every manifest and announcement must pass: a valid signature by a publisher
//! key that the current policy registers for the product's domain.
//!
//! The genesis policy is installed by `mesh init`; the governance issue extends this
//! with successor policies (`mesh_protocol::policy::verify_successor`) and rules.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use mesh_protocol::policy::{self, Policy};
use mesh_protocol::{Announcement, Manifest, Signed, SignedKind};
use mesh_storage::{MetaStore, Tree};

use crate::NodeError;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a signed object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// The current policy, shared by every part of the node.
#[derive(Debug, Clone)]
pub struct Governance {
    current: Arc<RwLock<Policy>>,
}

fn version_key(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Verifies a signed genesis policy and stores it as version 1 of the chain.
pub fn install_genesis(
    store: &dyn MetaStore,
    signed: &Signed<Policy>,
    now: u64,
) -> Result<Policy, NodeError> {
    let policy =
        policy::verify_genesis(signed, now).map_err(|e| NodeError::Usage(e.to_string()))?;
    if let Some(existing) = store.get(Tree::Policies, &version_key(1))? {
        if existing == signed.to_bytes() {
            return Ok(policy);
        }
        let old = Signed::<Policy>::from_bytes(&existing).map(|s| s.hash());
        if old.as_ref().ok() == Some(&signed.hash()) {
            // Same policy, different signature set: keep the stored one.
            return Ok(policy);
        }
        return Err(NodeError::Usage(
            "this home already trusts a different genesis policy; use a fresh --home".into(),
        ));
    }
    store.put(Tree::Policies, &version_key(1), &signed.to_bytes())?;
    store.flush()?;
    Ok(policy)
}

impl Governance {
    /// Loads the newest policy of the stored chain.
    pub fn load(store: &dyn MetaStore) -> Result<Self, NodeError> {
        let entries = store.scan(Tree::Policies, None, usize::MAX)?;
        let Some((_, bytes)) = entries.last() else {
            return Err(NodeError::NoGenesis);
        };
        let signed = Signed::<Policy>::from_bytes(bytes)
            .map_err(|e| NodeError::Corrupt(format!("stored policy: {e}")))?;
        let policy = signed
            .value()
            .map_err(|e| NodeError::Corrupt(format!("stored policy: {e}")))?;
        Ok(Governance {
            current: Arc::new(RwLock::new(policy)),
        })
    }

    /// A copy of the current policy.
    pub fn policy(&self) -> Policy {
        match self.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Checks a signed manifest: decodes it, verifies the publisher's signature and
    /// that the policy registers the key for the product's domain.
    pub fn check_manifest(&self, signed: &Signed<Manifest>) -> Result<Manifest, Rejection> {
        let m = signed.value().map_err(|e| Rejection(e.to_string()))?;
        m.validate().map_err(|errs| {
            Rejection(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        self.check_publisher(signed, m.id.domain(), &m.publisher)?;
        Ok(m)
    }

    /// Checks a signed announcement the same way.
    pub fn check_announcement(
        &self,
        signed: &Signed<Announcement>,
    ) -> Result<Announcement, Rejection> {
        let a = signed.value().map_err(|e| Rejection(e.to_string()))?;
        a.validate().map_err(Rejection)?;
        self.check_publisher(signed, a.product.domain(), &a.publisher)?;
        Ok(a)
    }

    fn check_publisher<T: SignedKind>(
        &self,
        signed: &Signed<T>,
        domain: &mesh_protocol::DomainName,
        publisher: &mesh_protocol::PublicKey,
    ) -> Result<(), Rejection> {
        if !signed.is_signed_by(publisher) {
            return Err(Rejection(format!(
                "{} for domain {domain} is not validly signed by its publisher key {}",
                T::WHAT,
                publisher.short()
            )));
        }
        let policy = self.policy();
        if !policy.is_publisher(domain, publisher) {
            return Err(Rejection(format!(
                "key {publisher} is not registered for domain {domain} in policy v{}; the council must add it to the domain registry",
                policy.version
            )));
        }
        Ok(())
    }
}
