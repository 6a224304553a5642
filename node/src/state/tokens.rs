//! Consumer tokens: the one credential model of this node's output ports (the
//! Flight SQL port now, the sharing server after it). A token is bound to a
//! consumer domain; whoever presents it reads exactly what the rules and grants
//! let that domain fetch. Each has an expiry and can be revoked.
//!
//! The secret is shown once, when made (`mesh token create`); the store keeps
//! only its BLAKE3 hash, under the token's id, which the secret carries in clear
//! (`mesh_<id>_<secret>`) so a presented token is found without a scan and
//! checked in constant time. Records are local, never gossiped.

use std::sync::Arc;

use mesh_protocol::DomainName;
use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};

use super::StateError;

/// The format version of a stored token.
const TOKEN_FORMAT: u8 = 1;

/// The most tokens one node keeps, revoked and expired ones included (`mesh
/// token revoke --purge` removes them).
pub(crate) const MAX_TOKENS: usize = 1000;

/// The longest label accepted, in bytes.
pub(crate) const MAX_LABEL: usize = 200;

/// Hex digits of a token id.
const ID_HEX: usize = 12;

/// The prefix every consumer token starts with, so one is recognised in a
/// config file or a leaked log.
pub(crate) const TOKEN_PREFIX: &str = "mesh_";

/// A consumer token as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerToken {
    /// Format version.
    pub format: u8,
    /// The token's id (12 hex digits), also the start of the token itself.
    pub id: String,
    /// The consumer domain whose rules and grants decide what it reads.
    pub domain: DomainName,
    /// What the token is for, as its maker wrote it.
    #[serde(default)]
    pub label: Option<String>,
    /// When it was made (Unix ms).
    pub created_ms: u64,
    /// When it stops working (Unix ms).
    pub expires_ms: u64,
    /// When it was revoked (Unix ms), if it was.
    #[serde(default)]
    pub revoked_ms: Option<u64>,
    /// BLAKE3 of the whole token, hex.
    pub hash: String,
}

impl ConsumerToken {
    /// `active`, `expired` or `revoked` at `now_ms`.
    pub fn state(&self, now_ms: u64) -> &'static str {
        if self.revoked_ms.is_some() {
            "revoked"
        } else if now_ms >= self.expires_ms {
            "expired"
        } else {
            "active"
        }
    }
}

/// Why a presented token opens nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    /// Not a token of this node, or its secret is wrong.
    #[error("unknown token: not a consumer token of this node (make one with `mesh token create --domain DOMAIN` on the node)")]
    Unknown,
    /// Its expiry has passed.
    #[error("token {id} expired; make a new one with `mesh token create`")]
    Expired {
        /// The token's id.
        id: String,
    },
    /// It was revoked.
    #[error("token {id} was revoked")]
    Revoked {
        /// The token's id.
        id: String,
    },
}

/// Why a token could not be made or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request is not acceptable (a past expiry, a long label, too many tokens).
    #[error("{0}")]
    Usage(String),
    /// No token has that id.
    #[error("no token {0} on this node (see `mesh token list`)")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<mesh_storage::StoreError> for TokenError {
    fn from(e: mesh_storage::StoreError) -> Self {
        TokenError::State(StateError::Store(e))
    }
}

/// The consumer tokens of this node.
#[derive(Clone)]
pub(crate) struct TokenBook {
    store: Arc<dyn MetaStore>,
}

impl std::fmt::Debug for TokenBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenBook")
    }
}

impl TokenBook {
    /// The book over `store`.
    pub(crate) fn new(store: Arc<dyn MetaStore>) -> Self {
        TokenBook { store }
    }

    /// Makes a token for `domain` valid until `expires_ms`; returns the secret
    /// (shown once) and the record.
    pub(crate) fn create(
        &self,
        domain: DomainName,
        expires_ms: u64,
        label: Option<String>,
        now_ms: u64,
    ) -> Result<(String, ConsumerToken), TokenError> {
        if expires_ms <= now_ms {
            return Err(TokenError::Usage(
                "the expiry is in the past: give a later date or a duration such as 90d".into(),
            ));
        }
        if let Some(l) = &label {
            if l.len() > MAX_LABEL || l.chars().any(char::is_control) {
                return Err(TokenError::Usage(format!(
                    "the label must be at most {MAX_LABEL} bytes of printable text"
                )));
            }
        }
        if self.store.len(Tree::Tokens)? >= MAX_TOKENS {
            return Err(TokenError::Usage(format!(
                "this node keeps at most {MAX_TOKENS} tokens: remove revoked and expired ones with `mesh token revoke --purge`"
            )));
        }
        let id = hex::encode(rand::random::<[u8; ID_HEX / 2]>());
        let secret = format!(
            "{TOKEN_PREFIX}{id}_{}",
            hex::encode(rand::random::<[u8; 32]>())
        );
        let record = ConsumerToken {
            format: TOKEN_FORMAT,
            id: id.clone(),
            domain,
            label,
            created_ms: now_ms,
            expires_ms,
            revoked_ms: None,
            hash: blake3::hash(secret.as_bytes()).to_hex().to_string(),
        };
        self.put(&record)?;
        Ok((secret, record))
    }

    /// Every token, oldest first.
    pub(crate) fn list(&self) -> Result<Vec<ConsumerToken>, StateError> {
        let mut out = self
            .store
            .scan(Tree::Tokens, None, MAX_TOKENS)?
            .into_iter()
            .map(|(k, v)| decode(&k, &v))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// Revokes the token `id` (from then on it opens nothing); revoking one twice
    /// keeps the first time.
    pub(crate) fn revoke(&self, id: &str, now_ms: u64) -> Result<ConsumerToken, TokenError> {
        let mut record = self
            .get(id)?
            .ok_or_else(|| TokenError::NotFound(id.to_string()))?;
        if record.revoked_ms.is_none() {
            record.revoked_ms = Some(now_ms);
            self.put(&record)?;
        }
        Ok(record)
    }

    /// Removes every revoked or expired token; returns how many.
    pub(crate) fn purge(&self, now_ms: u64) -> Result<usize, TokenError> {
        let mut removed = 0;
        for t in self.list()? {
            if t.state(now_ms) != "active" {
                self.store.remove(Tree::Tokens, t.id.as_bytes())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The domain a presented token reads as, if it is a live token of this node.
    pub(crate) fn authenticate(
        &self,
        presented: &str,
        now_ms: u64,
    ) -> Result<Result<ConsumerToken, TokenRefused>, StateError> {
        let Some(id) = presented
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .filter(|id| id.len() == ID_HEX && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(Err(TokenRefused::Unknown));
        };
        let Some(record) = self.get(id)? else {
            return Ok(Err(TokenRefused::Unknown));
        };
        let given = blake3::hash(presented.as_bytes());
        let stored = blake3::Hash::from_hex(&record.hash)
            .map_err(|e| StateError::corrupt(format!("token {id}"), e))?;
        // blake3::Hash compares in constant time.
        if given != stored {
            return Ok(Err(TokenRefused::Unknown));
        }
        Ok(match record.state(now_ms) {
            "revoked" => Err(TokenRefused::Revoked { id: record.id }),
            "expired" => Err(TokenRefused::Expired { id: record.id }),
            _ => Ok(record),
        })
    }

    /// The token `id`, if this node has it (whatever its state).
    pub(crate) fn get(&self, id: &str) -> Result<Option<ConsumerToken>, StateError> {
        self.store
            .get(Tree::Tokens, id.as_bytes())?
            .map(|v| decode(id.as_bytes(), &v))
            .transpose()
    }

    fn put(&self, t: &ConsumerToken) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(t).map_err(|e| StateError::corrupt("token", e))?;
        self.store.put(Tree::Tokens, t.id.as_bytes(), &bytes)?;
        self.store.flush()?;
        Ok(())
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<ConsumerToken, StateError> {
    super::decode_record("token", key, bytes, TOKEN_FORMAT, |r: &ConsumerToken| {
        r.format
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> TokenBook {
        TokenBook::new(Arc::new(mesh_storage::MemStore::default()))
    }

    fn finance() -> DomainName {
        DomainName::new("finance").unwrap()
    }

    #[test]
    fn a_token_opens_until_it_expires_or_is_revoked() {
        let b = book();
        let (secret, t) = b
            .create(finance(), 2_000, Some("bi".into()), 1_000)
            .unwrap();
        assert!(secret.starts_with(&format!("mesh_{}_", t.id)));
        assert_ne!(t.hash, secret, "only the hash is stored");
        let stored = serde_json::to_string(&b.list().unwrap()).unwrap();
        assert!(
            !stored.contains(&secret[t.id.len() + 6..]),
            "the secret is not stored"
        );

        assert_eq!(
            b.authenticate(&secret, 1_500).unwrap().unwrap().domain,
            finance()
        );
        assert_eq!(
            b.authenticate(&secret, 2_000).unwrap(),
            Err(TokenRefused::Expired { id: t.id.clone() })
        );
        b.revoke(&t.id, 1_600).unwrap();
        assert_eq!(
            b.authenticate(&secret, 1_700).unwrap(),
            Err(TokenRefused::Revoked { id: t.id.clone() })
        );
    }

    #[test]
    fn a_wrong_or_malformed_token_is_unknown() {
        let b = book();
        let (secret, t) = b.create(finance(), 2_000, None, 1_000).unwrap();
        let mut wrong = secret.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        for bad in [
            wrong.as_str(),
            "",
            "mesh_",
            "Bearer x",
            &format!("mesh_{}", t.id),
            "mesh_zzzzzzzzzzzz_00",
        ] {
            assert_eq!(
                b.authenticate(bad, 1_500).unwrap(),
                Err(TokenRefused::Unknown),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_requests_are_refused_and_the_book_is_bounded() {
        let b = book();
        assert!(matches!(
            b.create(finance(), 1_000, None, 1_000),
            Err(TokenError::Usage(_))
        ));
        assert!(matches!(
            b.create(finance(), 2_000, Some("x".repeat(MAX_LABEL + 1)), 1_000),
            Err(TokenError::Usage(_))
        ));
        assert!(matches!(
            b.revoke("000000000000", 1),
            Err(TokenError::NotFound(_))
        ));
        for _ in 0..MAX_TOKENS {
            b.create(finance(), 2_000, None, 1_000).unwrap();
        }
        assert!(matches!(
            b.create(finance(), 9_000, None, 1_000),
            Err(TokenError::Usage(_))
        ));
        assert_eq!(
            b.purge(2_000).unwrap(),
            MAX_TOKENS,
            "expired ones are purged"
        );
        assert!(b.create(finance(), 9_000, None, 2_000).is_ok());
    }
}
