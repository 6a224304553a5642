//! The node's local state, with no network: the [`catalog`] of every product
//! version it knows, the [`governance`] policy chain it enforces, the [`usage`]
//! ledger of who fetched what, the [`access`] requests and grants that open
//! restricted products, this node's [`subscriptions`], the consumer [`tokens`] of its output ports, the [`derived`] products it computes, [`gc`] of the chunk store
//! and [`verify`] of its bytes.
//!
//! Each part is a cloneable handle over the metadata store with its fields private;
//! `net/` and `ops/` receive the handles they need. Errors say whose fault a failure
//! is: [`OfferError::Invalid`] is the sender's (gossip `Reject`, the peer loses
//! score), [`OfferError::Store`] is ours (gossip `Ignore`, logged).

pub(crate) mod access;
pub(crate) mod announcements;
pub(crate) mod catalog;
pub(crate) mod declared;
pub(crate) mod deliveries;
pub(crate) mod derived;
pub(crate) mod digest;
pub(crate) mod gc;
pub(crate) mod governance;
pub(crate) mod loaded;
pub(crate) mod outputs;
pub(crate) mod providers;
pub(crate) mod subscriptions;
pub(crate) mod tokens;
pub(crate) mod usage;
pub(crate) mod verify;

#[cfg(test)]
pub(crate) mod fixtures;

use mesh_storage::{ChunkError, StoreError};

use crate::home::HomeError;

/// Up to `limit` values of `tree` with keys after `after`, and whether more follow:
/// a page of per-node records (provider records, usage reports) for a peer's pull.
pub(crate) fn page_after(
    store: &dyn mesh_storage::MetaStore,
    tree: mesh_storage::Tree,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(Vec<Vec<u8>>, bool), StateError> {
    let rows = store.scan(tree, after, limit.saturating_add(1))?;
    let more = rows.len() > limit;
    Ok((rows.into_iter().take(limit).map(|(_, v)| v).collect(), more))
}

/// A local record stored as JSON (a subscription, a consumer token, a derived
/// product): decoded, and refused as corrupt unless its format (`format_of`) is
/// `format`. `what` names the kind in the error, with the record's key.
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(
    what: &str,
    key: &[u8],
    bytes: &[u8],
    format: u8,
    format_of: impl Fn(&T) -> u8,
) -> Result<T, StateError> {
    let what = || format!("{what} {}", String::from_utf8_lossy(key));
    let record: T = serde_json::from_slice(bytes).map_err(|e| StateError::corrupt(what(), e))?;
    let found = format_of(&record);
    if found != format {
        return Err(StateError::corrupt(
            what(),
            format!("format {found} is not {format}"),
        ));
    }
    Ok(record)
}

/// Our own state failed: the disk, the database, or data that no longer verifies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chunk store failed.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// Stored data no longer decodes or verifies.
    #[error("corrupt local data: {what}: {reason}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A file of the node home (the policy seal) failed.
    #[error(transparent)]
    Home(#[from] HomeError),
}

impl StateError {
    /// A [`StateError::Corrupt`] about `what`.
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        StateError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Why a peer's message (announcement, policy, usage report) was refused: the
/// sender's fault, and the reason to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl Invalid {
    /// An invalid message, and why.
    pub(crate) fn new(reason: impl std::fmt::Display) -> Self {
        Invalid(reason.to_string())
    }
}

/// A message offered by a peer that was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The message is invalid: the sender is at fault.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Our own store failed while keeping it: not the sender's fault.
    #[error("keeping it failed locally: {0}")]
    Store(#[from] StateError),
    /// The policy's limits on a domain refuse it (a domain over its quota or
    /// rate): the domain's doing, not the forwarding peer's.
    #[error("{0}")]
    OverLimit(String),
}

impl From<StoreError> for OfferError {
    fn from(e: StoreError) -> Self {
        OfferError::Store(StateError::Store(e))
    }
}
