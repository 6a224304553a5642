//! The catalog's tally: its digest (how many product versions it holds and the
//! XOR of the BLAKE3 hash of each one's key: two catalogs holding the same
//! versions have the same digest whatever order they learned them in, so
//! anti-entropy compares catalogs by one small answer and pulls only when they
//! differ), and per domain the versions held and when each was announced, which
//! the policy's domain limits are judged against.
//!
//! Built from the store on first use (the daemon warms it at start, off the event
//! loop) and kept in step by the catalog's one write path. Adding is idempotent (a
//! key already counted is not counted again: a write that lands while the tally is
//! being built is both read by the build and added after it), so the tally
//! remembers 8 bytes of each key's hash and each version's announcement time
//! (about 2 MB at 100,000 versions).

use std::collections::{BTreeMap, HashMap, HashSet};

use mesh_protocol::policy::DomainLimits;
use mesh_protocol::Hash;

/// An hour, in milliseconds: the window of `max_versions_per_hour`.
const HOUR_MS: u64 = 3_600_000;

/// A catalog's set of versions, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Digest {
    seen: HashSet<u64>,
    now: CatalogDigest,
    domains: HashMap<String, DomainTally>,
}

/// One domain's versions in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DomainTally {
    versions: u64,
    /// Announcement time (ms) -> versions announced then.
    issued: BTreeMap<u64, u32>,
}

/// The summary itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CatalogDigest {
    /// Product versions.
    pub(crate) versions: u64,
    /// XOR of BLAKE3(key) over them.
    pub(crate) xor: [u8; 32],
}

impl Digest {
    /// Counts one more version, by its catalog key and announcement time (once
    /// however often added).
    pub(crate) fn add(&mut self, key: &[u8], issued_at_ms: u64) {
        let hash = blake3::hash(key);
        let h = hash.as_bytes();
        let short = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        if !self.seen.insert(short) {
            return;
        }
        self.now.versions += 1;
        for (x, b) in self.now.xor.iter_mut().zip(h) {
            *x ^= b;
        }
        let tally = self.domains.entry(domain_of(key).to_string()).or_default();
        tally.versions += 1;
        *tally.issued.entry(issued_at_ms).or_default() += 1;
    }

    /// Whether `limits` let `domain` add a version announced at `issued_at_ms`;
    /// if not, why (for the person who set them, and the one refused).
    pub(crate) fn admits(
        &self,
        limits: &DomainLimits,
        domain: &str,
        issued_at_ms: u64,
    ) -> Result<(), String> {
        let Some(tally) = self.domains.get(domain) else {
            return Ok(());
        };
        let max = u64::from(limits.max_versions);
        if max > 0 && tally.versions >= max {
            return Err(format!(
                "{domain} has {} versions in the catalog, the most the policy allows a domain (settings.max_versions_per_domain = {max})",
                tally.versions
            ));
        }
        let per_hour = u64::from(limits.max_versions_per_hour);
        if per_hour > 0 {
            let from = issued_at_ms.saturating_sub(HOUR_MS - 1);
            let recent: u64 = tally
                .issued
                .range(from..=issued_at_ms)
                .map(|(_, n)| u64::from(*n))
                .sum();
            if recent >= per_hour {
                return Err(format!(
                    "{domain} announced {recent} versions in the hour before this one, the most the policy allows (settings.max_versions_per_domain_per_hour = {per_hour})"
                ));
            }
        }
        Ok(())
    }

    /// The summary.
    pub(crate) fn get(&self) -> CatalogDigest {
        self.now
    }
}

/// The domain of a catalog key (`domain/name \0 version`).
fn domain_of(key: &[u8]) -> &str {
    let end = key.iter().position(|b| *b == b'/').unwrap_or(key.len());
    std::str::from_utf8(&key[..end]).unwrap_or("")
}

impl CatalogDigest {
    /// The digest as the wire carries it.
    pub(crate) fn hash(&self) -> Hash {
        Hash::from_bytes(self.xor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_versions_in_any_order_give_the_same_digest_and_one_more_changes_it() {
        let keys: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("sales/orders\01.{i}.0").into_bytes())
            .collect();
        let (mut a, mut b) = (Digest::default(), Digest::default());
        keys.iter().for_each(|k| a.add(k, 1));
        keys.iter().rev().for_each(|k| b.add(k, 1));
        // Added twice (a write during the build): counted once.
        b.add(&keys[3], 1);
        assert_eq!(a.get(), b.get());
        assert_eq!(a.get().versions, 100);
        let mut c = b.clone();
        c.add(b"sales/orders\x002.0.0", 1);
        assert_ne!(c.get().hash(), a.get().hash());
        // Same count, another version: still different.
        let mut d = Digest::default();
        keys[1..].iter().for_each(|k| d.add(k, 1));
        d.add(b"sales/orders\x009.9.9", 1);
        assert_eq!(d.get().versions, a.get().versions);
        assert_ne!(d.get().hash(), a.get().hash());
    }

    #[test]
    fn a_domain_is_held_to_its_version_quota_and_hourly_rate() {
        let limits = DomainLimits {
            max_versions: 5,
            max_versions_per_hour: 3,
        };
        let mut d = Digest::default();
        let key = |i: u64| format!("sales/orders\0{i}.0.0").into_bytes();
        let hour = HOUR_MS;
        // Three in one hour: the fourth in that hour is refused, the next hour's not.
        for i in 0..3 {
            d.admits(&limits, "sales", 10 * hour + i).unwrap();
            d.add(&key(i), 10 * hour + i);
        }
        let err = d.admits(&limits, "sales", 10 * hour + 100).unwrap_err();
        assert!(
            err.contains("max_versions_per_domain_per_hour = 3"),
            "{err}"
        );
        d.admits(&limits, "sales", 11 * hour + 2).unwrap();
        // Other domains are not counted against it.
        d.admits(&limits, "finance", 10 * hour + 100).unwrap();
        // Five in all: the sixth is refused whenever it was announced.
        d.add(&key(3), 12 * hour);
        d.add(&key(4), 13 * hour);
        let err = d.admits(&limits, "sales", 20 * hour).unwrap_err();
        assert!(err.contains("has 5 versions"), "{err}");
        // No limits: anything goes.
        d.admits(&DomainLimits::default(), "sales", 10 * hour)
            .unwrap();
    }
}
