//! Access to restricted products: a consumer domain's signed request, and the owning
//! domain's signed decision (grant, denial or revocation).
//!
//! A request is signed with a publisher key of the consumer domain; a decision with a
//! publisher key of the product's domain, its owner (no other domain and not the
//! council can grant: the council controls who the owner's keys are). Both replicate
//! like usage reports (gossip, and pull sync on connect), one of each per product and
//! consumer domain: a newer one replaces the older. Decisions are ordered by
//! [`AccessDecision::supersedes`], so a revocation stays in force when the grant it
//! revoked is replayed, on every node, in any order of arrival.
//!
//! Grants are visible to the fetch rules as `resource.grants` (see [`crate::rules`]):
//! the domains whose newest decision is an unexpired grant signed by a key the
//! current policy still registers for the owner.

use serde::{Deserialize, Serialize};

use crate::id::{DomainName, ProductId};
use crate::keys::PublicKey;
use crate::record::{check_length, RecordError};
use crate::signed::SignedKind;

/// The format version of access requests and decisions.
pub const ACCESS_FORMAT: u8 = 1;

/// The largest request or decision accepted, in canonical bytes.
pub const MAX_ACCESS_BYTES: usize = 16 * 1024;

/// The longest free text (reason, purpose, terms), in bytes.
pub const MAX_ACCESS_TEXT: usize = 4096;

/// How far ahead of the receiver's clock a request or decision may be dated: a
/// decision dated later would outrank every decision its owner makes until then.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// A consumer domain asks the owner of a product for access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Format version, [`ACCESS_FORMAT`].
    pub format: u8,
    /// The product asked for.
    pub product: ProductId,
    /// The domain asking.
    pub consumer: DomainName,
    /// Why it needs the data.
    pub reason: String,
    /// Unix milliseconds when made; a newer request replaces an older one.
    pub issued_at_ms: u64,
    /// The signing key: a publisher key of `consumer`.
    pub publisher: PublicKey,
}

impl SignedKind for AccessRequest {
    const TAG: &'static str = "mesh/access-request/v1";
    const MAX_BYTES: usize = MAX_ACCESS_BYTES;
    const WHAT: &'static str = "access request";
}

/// What the owner decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Access granted, until a time (Unix milliseconds) or until revoked.
    Grant {
        /// When the grant lapses; `None` lasts until revoked.
        until_ms: Option<u64>,
        /// What the consumer may use the data for.
        purpose: String,
        /// The terms of the agreement, as the owner wrote them.
        terms: String,
    },
    /// The request is refused.
    Deny {
        /// Why.
        reason: String,
    },
    /// An earlier grant is withdrawn.
    Revoke {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// `grant`, `deny` or `revoke`.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Grant { .. } => "grant",
            Verdict::Deny { .. } => "deny",
            Verdict::Revoke { .. } => "revoke",
        }
    }

    /// Ties between decisions of the same instant go to the stricter one.
    fn strictness(&self) -> u8 {
        match self {
            Verdict::Grant { .. } => 0,
            Verdict::Deny { .. } => 1,
            Verdict::Revoke { .. } => 2,
        }
    }
}

/// The owning domain's decision on a consumer domain's access to a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDecision {
    /// Format version, [`ACCESS_FORMAT`].
    pub format: u8,
    /// The product.
    pub product: ProductId,
    /// The consumer domain decided on.
    pub consumer: DomainName,
    /// Grant, denial or revocation.
    pub verdict: Verdict,
    /// Unix milliseconds when decided; see [`AccessDecision::supersedes`].
    pub issued_at_ms: u64,
    /// The signing key: a publisher key of the product's domain.
    pub publisher: PublicKey,
}

impl SignedKind for AccessDecision {
    const TAG: &'static str = "mesh/access-decision/v1";
    const MAX_BYTES: usize = MAX_ACCESS_BYTES;
    const WHAT: &'static str = "access decision";
}

fn check_time(issued_at_ms: u64, now_ms: u64) -> Result<(), RecordError> {
    if issued_at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(RecordError::FutureDated {
            ahead_secs: (issued_at_ms - now_ms) / 1000,
            skew_secs: MAX_CLOCK_SKEW_MS / 1000,
        });
    }
    Ok(())
}

fn check_text(what: &'static str, text: &str) -> Result<(), RecordError> {
    check_length(what, text.len(), 0, MAX_ACCESS_TEXT)
}

fn check_not_owner(product: &ProductId, consumer: &DomainName) -> Result<(), RecordError> {
    if product.domain() == consumer {
        return Err(RecordError::OwnProduct {
            domain: consumer.clone(),
            product: product.clone(),
        });
    }
    Ok(())
}

impl AccessRequest {
    /// Checks the format, the text sizes and the date against `now_ms`.
    pub fn validate(&self, now_ms: u64) -> Result<(), RecordError> {
        if self.format != ACCESS_FORMAT {
            return Err(RecordError::Format {
                what: "access request",
                format: self.format,
                supported: ACCESS_FORMAT,
            });
        }
        check_not_owner(&self.product, &self.consumer)?;
        check_text("reason", &self.reason)?;
        check_time(self.issued_at_ms, now_ms)
    }

    /// The store and sync key: product and consumer.
    pub fn key(&self) -> String {
        access_key(&self.product, &self.consumer)
    }
}

impl AccessDecision {
    /// Checks the format, the text sizes and the date against `now_ms`.
    pub fn validate(&self, now_ms: u64) -> Result<(), RecordError> {
        if self.format != ACCESS_FORMAT {
            return Err(RecordError::Format {
                what: "access decision",
                format: self.format,
                supported: ACCESS_FORMAT,
            });
        }
        check_not_owner(&self.product, &self.consumer)?;
        match &self.verdict {
            Verdict::Grant {
                until_ms,
                purpose,
                terms,
            } => {
                check_text("purpose", purpose)?;
                check_text("terms", terms)?;
                if until_ms.is_some_and(|u| u <= self.issued_at_ms) {
                    return Err(RecordError::EndsBeforeIssued);
                }
            }
            Verdict::Deny { reason } | Verdict::Revoke { reason } => check_text("reason", reason)?,
        }
        check_time(self.issued_at_ms, now_ms)
    }

    /// The store and sync key: product and consumer.
    pub fn key(&self) -> String {
        access_key(&self.product, &self.consumer)
    }

    /// Whether this decision replaces `older` for the same product and consumer:
    /// it is dated later, or at the same millisecond and stricter (a revocation
    /// beats a denial beats a grant). Equal ones do not replace each other.
    pub fn supersedes(&self, older: &AccessDecision) -> bool {
        (self.issued_at_ms, self.verdict.strictness())
            > (older.issued_at_ms, older.verdict.strictness())
    }

    /// Whether this is a grant in force at `now_ms`.
    pub fn grants_at(&self, now_ms: u64) -> bool {
        match &self.verdict {
            Verdict::Grant { until_ms, .. } => until_ms.is_none_or(|u| now_ms < u),
            _ => false,
        }
    }
}

/// The key of a product and consumer pair: `domain/name consumer` (a space sorts
/// before every character of ids and domain names, so keys of one product are
/// adjacent).
pub fn access_key(product: &ProductId, consumer: &DomainName) -> String {
    format!("{product} {consumer}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keys::KeyPair;

    fn decision(verdict: Verdict, at: u64) -> AccessDecision {
        AccessDecision {
            format: ACCESS_FORMAT,
            product: "sales/orders".parse().unwrap(),
            consumer: DomainName::new("finance").unwrap(),
            verdict,
            issued_at_ms: at,
            publisher: KeyPair::generate().public(),
        }
    }

    fn grant(until_ms: Option<u64>) -> Verdict {
        Verdict::Grant {
            until_ms,
            purpose: "revenue reporting".into(),
            terms: String::new(),
        }
    }

    #[test]
    fn a_revocation_outranks_the_grant_it_revokes_however_they_arrive() {
        let g = decision(grant(None), 1_000);
        let r = decision(
            Verdict::Revoke {
                reason: "contract ended".into(),
            },
            2_000,
        );
        assert!(r.supersedes(&g));
        assert!(!g.supersedes(&r), "a replayed older grant never wins");
        let same_instant = decision(grant(None), 2_000);
        assert!(r.supersedes(&g) && !same_instant.supersedes(&r));
        assert!(!r.supersedes(&r.clone()));
    }

    #[test]
    fn a_grant_is_in_force_until_it_lapses() {
        let g = decision(grant(Some(5_000)), 1_000);
        assert!(g.grants_at(4_999));
        assert!(!g.grants_at(5_000));
        assert!(decision(grant(None), 1_000).grants_at(u64::MAX));
        let d = decision(
            Verdict::Deny {
                reason: "no".into(),
            },
            1_000,
        );
        assert!(!d.grants_at(1_001));
    }

    #[test]
    fn malformed_decisions_are_refused_with_the_reason() {
        let now = 10_000_000;
        assert!(decision(grant(None), now).validate(now).is_ok());
        let future = decision(grant(None), now + MAX_CLOCK_SKEW_MS + 1);
        assert!(matches!(
            future.validate(now),
            Err(RecordError::FutureDated {
                ahead_secs: 300,
                ..
            })
        ));
        let backwards = decision(grant(Some(now - 1)), now);
        assert_eq!(backwards.validate(now), Err(RecordError::EndsBeforeIssued));
        let mut own = decision(grant(None), now);
        own.consumer = DomainName::new("sales").unwrap();
        assert!(own.validate(now).unwrap_err().to_string().contains("owns"));
        let long = decision(
            Verdict::Deny {
                reason: "x".repeat(MAX_ACCESS_TEXT + 1),
            },
            now,
        );
        assert!(matches!(
            long.validate(now),
            Err(RecordError::Length { what: "reason", .. })
        ));
    }

    #[test]
    fn keys_of_one_product_sort_together() {
        let a = access_key(
            &"sales/orders".parse().unwrap(),
            &DomainName::new("zeta").unwrap(),
        );
        let b = access_key(
            &"sales/orders-eu".parse().unwrap(),
            &DomainName::new("alpha").unwrap(),
        );
        assert!(a < b, "{a} sorts before {b}");
    }
}
