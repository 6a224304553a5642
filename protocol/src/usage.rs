//! Usage reports: a provider's running count of fetches it started serving, per
//! product version and consumer domain, signed with its domain's publisher key and gossiped,
//! so a product's owner sees who uses it. Counts are totals since the provider began
//! counting; a receiver keeps each provider's newest report.

use serde::{Deserialize, Serialize};

use crate::id::{DomainName, ProductId};
use crate::keys::PublicKey;
use crate::signed::SignedKind;

/// The format version of a usage report.
pub const USAGE_FORMAT: u8 = 3;

/// The largest usage report accepted, in canonical bytes.
pub const MAX_USAGE_BYTES: usize = 256 * 1024;

/// Fetches of one product version by one consumer domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCount {
    /// The product.
    pub product: ProductId,
    /// The version fetched.
    pub version: semver::Version,
    /// The consumer's domain, or `anonymous` for a node the registry does not name.
    pub consumer: String,
    /// Fetches started from this provider.
    pub fetches: u64,
    /// The access grant the fetches were served under (the short id of the owner's
    /// signed decision), or empty when no grant was in force for the consumer.
    pub grant: String,
}

/// One provider's usage counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Format version, [`USAGE_FORMAT`].
    pub format: u8,
    /// The provider's domain.
    pub domain: DomainName,
    /// The provider node's peer id.
    pub provider: String,
    /// Unix milliseconds when issued; a newer report replaces an older one.
    pub issued_at_ms: u64,
    /// Running totals.
    pub counts: Vec<UsageCount>,
    /// The signing key: a publisher key of `domain`.
    pub publisher: PublicKey,
}

impl SignedKind for UsageReport {
    const TAG: &'static str = "mesh/usage/v1";
    const MAX_BYTES: usize = MAX_USAGE_BYTES;
    const WHAT: &'static str = "usage report";
}
