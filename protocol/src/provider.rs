//! Provider records: a node's signed statement "I hold these product versions
//! completely, I follow these products, and you can dial me here". Every node that holds a version (its
//! publisher, and every replica that fetched it) is found through these records.
//!
//! A record is signed with the node's own identity key (the ed25519 key its libp2p
//! peer id is derived from), not a domain's publisher key: a consumer node with no
//! domain serves what it fetched too. The receiver checks that the signing key is the
//! key of the peer id the record names (`node/` does, as this crate knows no libp2p).
//! A node's newer record replaces its older one, so a version it no longer holds
//! drops out with its next record; a record not renewed within [`PROVIDER_TTL_MS`] of
//! its issue is stale and no longer counted.

use serde::{Deserialize, Serialize};

use crate::hash::ManifestHash;
use crate::id::ProductId;
use crate::keys::PublicKey;
use crate::record::{check_count, check_length, RecordError, MAX_PEER_ID_LEN};
use crate::signed::SignedKind;

/// The format version of a provider record (2 added `follows`).
pub const PROVIDER_FORMAT: u8 = 2;

/// The most product versions one record lists (a node holding more lists its
/// newest ones).
pub const MAX_HELD: usize = 2048;

/// The most followed products one record lists.
pub const MAX_FOLLOWS: usize = 256;

/// The most addresses one record lists.
pub const MAX_PROVIDER_ADDRS: usize = 8;

/// The longest address accepted in a record, in bytes.
pub const MAX_ADDR_LEN: usize = 256;

/// The largest record accepted, in canonical bytes.
pub const MAX_PROVIDER_BYTES: usize = 128 * 1024;

/// How often a node re-issues its record while nothing changes.
pub const PROVIDER_REFRESH_MS: u64 = 10 * 60 * 1000;

/// A record older than this (three missed refreshes) is stale: its node is listed as
/// last seen then, but no longer counted as a provider.
pub const PROVIDER_TTL_MS: u64 = 3 * PROVIDER_REFRESH_MS;

/// What one node holds, signed by its identity key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRecord {
    /// Format version, [`PROVIDER_FORMAT`].
    pub format: u8,
    /// The node's libp2p peer id (base58); it must derive from `key`.
    pub peer: String,
    /// The node's identity key, which signs the record.
    pub key: PublicKey,
    /// Unix milliseconds when issued; a newer record replaces an older one.
    pub issued_at_ms: u64,
    /// Manifest hashes of the versions the node holds completely, sorted.
    pub held: Vec<ManifestHash>,
    /// Multiaddrs the node listens on or is reachable at (without `/p2p/`).
    pub addrs: Vec<String>,
    /// Products the node subscribes to (`mesh subscribe`): it fetches each new
    /// version as it is announced. Their owners see their subscribers from this.
    pub follows: Vec<ProductId>,
}

impl SignedKind for ProviderRecord {
    const TAG: &'static str = "mesh/provider/v1";
    const MAX_BYTES: usize = MAX_PROVIDER_BYTES;
    const WHAT: &'static str = "provider record";
}

impl ProviderRecord {
    /// Checks the limits that keep records small and well-formed.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.format != PROVIDER_FORMAT {
            return Err(RecordError::Format {
                what: "provider record",
                format: self.format,
                supported: PROVIDER_FORMAT,
            });
        }
        check_length(
            "provider record's peer id",
            self.peer.len(),
            1,
            MAX_PEER_ID_LEN,
        )?;
        check_count("a provider record's versions", self.held.len(), 0, MAX_HELD)?;
        check_count(
            "a provider record's followed products",
            self.follows.len(),
            0,
            MAX_FOLLOWS,
        )?;
        check_count(
            "a provider record's addresses",
            self.addrs.len(),
            0,
            MAX_PROVIDER_ADDRS,
        )?;
        for a in &self.addrs {
            check_length("provider address", a.len(), 1, MAX_ADDR_LEN)?;
        }
        Ok(())
    }

    /// Whether the record is stale at `now_ms`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.issued_at_ms) > PROVIDER_TTL_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyPair, Signed};

    fn record(held: usize, addrs: usize) -> ProviderRecord {
        let key = KeyPair::generate();
        ProviderRecord {
            format: PROVIDER_FORMAT,
            peer: "12D3KooWexample".into(),
            key: key.public(),
            issued_at_ms: 1_000,
            held: (0..held)
                .map(|i| ManifestHash::of(&(i as u64).to_be_bytes()))
                .collect(),
            addrs: (0..addrs)
                .map(|i| format!("/ip4/10.0.0.{i}/tcp/4801"))
                .collect(),
            follows: Vec::new(),
        }
    }

    #[test]
    fn limits_are_checked() {
        assert!(record(3, 2).validate().is_ok());
        assert!(record(MAX_HELD, MAX_PROVIDER_ADDRS).validate().is_ok());
        assert!(record(MAX_HELD + 1, 1).validate().is_err());
        assert!(record(1, MAX_PROVIDER_ADDRS + 1).validate().is_err());
        let mut r = record(1, 1);
        r.follows = (0..=MAX_FOLLOWS)
            .map(|i| format!("sales/p{i}").parse().unwrap())
            .collect();
        assert!(matches!(
            r.validate(),
            Err(RecordError::Count { what, .. }) if what.contains("followed products")
        ));
        let mut r = record(1, 1);
        r.format = 9;
        assert!(r.validate().unwrap_err().to_string().contains("format 9"));
    }

    #[test]
    fn a_full_record_fits_its_limit_and_signs() {
        let key = KeyPair::generate();
        let mut r = record(MAX_HELD, MAX_PROVIDER_ADDRS);
        r.follows = (0..MAX_FOLLOWS)
            .map(|i| {
                format!("a-very-long-domain-name-{i}/a-very-long-product-name")
                    .parse()
                    .unwrap()
            })
            .collect();
        let env = Signed::sign(&r, &key).to_bytes();
        let back = Signed::<ProviderRecord>::from_bytes(&env).unwrap();
        assert!(back.is_signed_by(&key.public()));
        assert_eq!(back.value().unwrap(), r);
    }

    #[test]
    fn staleness_follows_the_ttl() {
        let r = record(1, 1);
        assert!(!r.is_stale(1_000 + PROVIDER_TTL_MS));
        assert!(r.is_stale(1_001 + PROVIDER_TTL_MS));
        assert!(!r.is_stale(0), "a clock behind the issuer's is not stale");
    }
}
