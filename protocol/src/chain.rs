//! The policy chain: TUF root-metadata rules for the mesh's governance policy.
//!
//! A node trusts a genesis (version 1) given out of band. Version N+1 is accepted only
//! if it is exactly N+1, carries a threshold of distinct valid signatures from the
//! council of N **and** from its own council, and its rules parse. Only the newest
//! policy must be unexpired: intermediate versions in a catch-up may have expired.
//! Older or equal versions with the same hash are ignored; a different document with an
//! accepted version is equivocation. Pure and clock-injected: `now` is unix seconds.

use crate::policy::{verify_genesis, verify_successor, Policy, PolicyError};
use crate::signed::Signed;
use crate::Hash;

/// A verified chain of policies from genesis to the newest.
#[derive(Debug, Clone)]
pub struct PolicyChain {
    signed: Vec<Signed<Policy>>,
    policies: Vec<Policy>,
}

/// What offering updates to a chain did.
#[derive(Debug, Default)]
pub struct Offered {
    /// Versions newly accepted, in order.
    pub accepted: Vec<u64>,
    /// Versions already held, ignored.
    pub ignored: Vec<u64>,
    /// Why the rest of the updates were refused, if they were.
    pub error: Option<PolicyError>,
}

impl PolicyChain {
    /// Starts a chain from a genesis that verifies at `now`.
    pub fn from_genesis(genesis: Signed<Policy>, now: u64) -> Result<Self, PolicyError> {
        let policy = verify_genesis(&genesis, now)?;
        Ok(PolicyChain {
            signed: vec![genesis],
            policies: vec![policy],
        })
    }

    /// Rebuilds a chain from stored versions 1..=N, re-verifying every link. Expiry is
    /// not checked: a node must still start when its newest policy has expired (it
    /// reports it instead, see [`PolicyChain::is_expired`]).
    pub fn restore(mut stored: Vec<Signed<Policy>>) -> Result<Self, PolicyError> {
        if stored.is_empty() {
            return Err(PolicyError::WrongVersion {
                found: 0,
                expected: 1,
            });
        }
        let rest = stored.split_off(1);
        let genesis = stored.remove(0);
        let policy = verify_genesis(&genesis, 0)?;
        let mut chain = PolicyChain {
            signed: vec![genesis],
            policies: vec![policy],
        };
        for s in rest {
            let p = verify_successor(chain.current(), &s)?;
            chain.signed.push(s);
            chain.policies.push(p);
        }
        Ok(chain)
    }

    /// Verifies a whole chain from genesis as of `now`: every link, and the newest
    /// unexpired (intermediate versions may be expired).
    pub fn verify(
        genesis: Signed<Policy>,
        updates: &[Signed<Policy>],
        now: u64,
    ) -> Result<Self, PolicyError> {
        let g = verify_genesis(&genesis, 0)?;
        let mut chain = PolicyChain {
            signed: vec![genesis],
            policies: vec![g],
        };
        let offered = chain.offer(updates, now);
        if let Some(e) = offered.error {
            return Err(e);
        }
        chain.check_not_expired(now)?;
        Ok(chain)
    }

    /// The newest accepted policy.
    pub fn current(&self) -> &Policy {
        // A chain always holds its genesis.
        &self.policies[self.policies.len() - 1]
    }

    /// The newest accepted policy, as signed.
    pub fn current_signed(&self) -> &Signed<Policy> {
        &self.signed[self.signed.len() - 1]
    }

    /// The newest version.
    pub fn version(&self) -> u64 {
        self.current().version
    }

    /// Version `v`, as signed, if held.
    pub fn get(&self, v: u64) -> Option<&Signed<Policy>> {
        usize::try_from(v.checked_sub(1)?)
            .ok()
            .and_then(|i| self.signed.get(i))
    }

    /// Every version, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&Signed<Policy>, &Policy)> {
        self.signed.iter().zip(&self.policies)
    }

    /// Whether the newest policy has expired at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.current().expires_at <= now
    }

    /// Verifies `s` as a candidate for the already accepted `version`: signed by a
    /// threshold of the council of `version - 1` and of its own (expiry aside).
    fn verify_as(&self, version: u64, s: &Signed<Policy>) -> Result<(), PolicyError> {
        match version {
            0 => Err(PolicyError::WrongVersion {
                found: 0,
                expected: 1,
            }),
            1 => verify_genesis(s, 0).map(|_| ()),
            v => {
                let previous = usize::try_from(v - 2)
                    .ok()
                    .and_then(|i| self.policies.get(i))
                    .ok_or(PolicyError::WrongVersion {
                        found: v,
                        expected: self.version() + 1,
                    })?;
                verify_successor(previous, s).map(|_| ())
            }
        }
    }

    fn check_not_expired(&self, now: u64) -> Result<(), PolicyError> {
        let p = self.current();
        if p.expires_at <= now {
            return Err(PolicyError::Expired {
                version: p.version,
                expires_at: p.expires_at,
                now,
            });
        }
        Ok(())
    }

    /// Offers policies (any order; sorted here by version). Accepts each valid next
    /// version in turn and stops at the first refusal. If anything was accepted, the
    /// newest must be unexpired at `now`, else every version accepted by this call is
    /// rolled back. Returns what was accepted, ignored and why the rest was refused.
    pub fn offer(&mut self, updates: &[Signed<Policy>], now: u64) -> Offered {
        let mut decoded = Vec::new();
        let mut out = Offered::default();
        for s in updates {
            match s.value() {
                Ok(p) => decoded.push((p.version, s)),
                Err(e) => {
                    out.error = Some(e.into());
                    return out;
                }
            }
        }
        decoded.sort_by_key(|(v, _)| *v);
        let before = self.signed.len();
        for (version, s) in decoded {
            if version <= self.version() {
                let ours = self.get(version).map(|o| o.hash());
                if ours == Some(s.hash()) {
                    out.ignored.push(version);
                    continue;
                }
                // A different document for an accepted version is equivocation only
                // if it carries the signatures that version needs: a threshold of the
                // council before it and of its own. Anything less is an invalid
                // document, which any peer could make up.
                out.error = Some(match self.verify_as(version, s) {
                    Ok(()) => PolicyError::Equivocation {
                        version,
                        ours: ours.unwrap_or(Hash::from_bytes([0; 32])),
                        theirs: s.hash(),
                    },
                    Err(e) => e,
                });
                break;
            }
            match verify_successor(self.current(), s) {
                Ok(p) => {
                    self.signed.push(s.clone());
                    self.policies.push(p);
                    out.accepted.push(version);
                }
                Err(e) => {
                    out.error = Some(e);
                    break;
                }
            }
        }
        if self.signed.len() > before {
            if let Err(e) = self.check_not_expired(now) {
                self.signed.truncate(before);
                self.policies.truncate(before);
                out.accepted.clear();
                out.error = Some(e);
            }
        }
        out
    }
}
