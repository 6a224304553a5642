//! Submitting a signed policy: offered to the chain (TUF rules); if accepted, it
//! is gossiped and the catalog is re-evaluated under it.

use mesh_protocol::{Policy, PolicyError, Signed};
use serde::Serialize;

use crate::clock::unix_now;
use crate::net::{NetError, NetworkHandle};
use crate::state::catalog::Catalog;
use crate::state::governance::Governance;
use crate::state::StateError;
use crate::task::{blocking, TaskError};

/// The outcome of submitting a policy.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Submitted {
    /// The node's policy version after the submission.
    pub version: u64,
    /// Versions newly accepted.
    pub accepted: Vec<u64>,
}

/// A submission that was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The chain refuses the document (wrong version, too few signatures, expired,
    /// equivocation).
    #[error(transparent)]
    Refused(#[from] PolicyError),
    /// This node's state failed while storing it.
    #[error(transparent)]
    State(#[from] StateError),
    /// Gossiping the accepted policy failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// Offers `signed` to `governance`; if accepted, gossips it and re-evaluates
/// `catalog`.
pub(crate) async fn submit_policy(
    governance: &Governance,
    catalog: &Catalog,
    net: &NetworkHandle,
    signed: Signed<Policy>,
) -> Result<Submitted, SubmitError> {
    let g = governance.clone();
    let offer = signed.clone();
    let offered = blocking(move || Ok::<_, SubmitError>(g.offer(&[offer], unix_now())?)).await?;
    if let Some(e) = offered.error {
        return Err(SubmitError::Refused(e));
    }
    if !offered.accepted.is_empty() {
        net.publish_policy(signed.to_bytes()).await?;
        let catalog = catalog.clone();
        blocking(move || Ok::<_, SubmitError>(catalog.reevaluate()?)).await?;
    }
    Ok(Submitted {
        version: governance.version(),
        accepted: offered.accepted,
    })
}
