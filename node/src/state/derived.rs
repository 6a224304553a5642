//! The derived products this node computes (`mesh derive`): each one's
//! `product.toml` (with its `[derive]` query inline), where its last computation
//! stands, the inputs it read (pinned) and the hash of the file it made, so an
//! unchanged input set or an unchanged result publishes nothing.
//!
//! The deriver (`ops/derive.rs`) does the work; this book only keeps the
//! records. They are local, never gossiped: the mesh sees the published versions.

use std::sync::Arc;

use mesh_protocol::manifest::Upstream;
use mesh_protocol::ProductId;
use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};

use super::StateError;

/// The format version of a stored record.
const DERIVED_FORMAT: u8 = 1;

/// The most derived products one node computes.
pub(crate) const MAX_DERIVED: usize = 256;

/// Where a derived product's last computation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeriveState {
    /// Registered, not computed yet.
    Waiting,
    /// The last computation published this version.
    Published {
        /// The version.
        version: String,
    },
    /// The last computation gave the bytes already published (or read the same
    /// inputs): nothing new was published.
    Unchanged {
        /// The version that stays current.
        version: Option<String>,
    },
    /// The last computation published nothing.
    Failed {
        /// Why: the query's error, or the contract's violations.
        reason: String,
        /// Whether it may pass on a retry with the same inputs (a provider was
        /// unreachable); otherwise only new inputs or `mesh derive` run it again.
        transient: bool,
    },
}

/// One derived product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedProduct {
    /// Format version.
    pub format: u8,
    /// The product.
    pub product: ProductId,
    /// Its `product.toml`, the `[derive]` query inline.
    pub draft: String,
    /// Where the last computation stands.
    #[serde(flatten)]
    pub state: DeriveState,
    /// The inputs the last computation read, each pinned to its version.
    #[serde(default)]
    pub inputs: Vec<Upstream>,
    /// BLAKE3 of the last file published, hex.
    #[serde(default)]
    pub output: Option<String>,
    /// The versions (manifest hashes) the query's products resolved to at the
    /// last attempt, sorted: the daemon tries again only when they change.
    #[serde(default)]
    pub attempted: Vec<mesh_protocol::Hash>,
    /// When the state last changed (Unix ms).
    pub updated_ms: u64,
}

/// The derived products of this node.
#[derive(Clone)]
pub(crate) struct DerivedBook {
    store: Arc<dyn MetaStore>,
    changes: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for DerivedBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DerivedBook")
    }
}

impl DerivedBook {
    /// The book over `store`.
    pub(crate) fn new(store: Arc<dyn MetaStore>) -> Self {
        DerivedBook {
            store,
            changes: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Notified when a record is added (the deriver then looks again).
    pub(crate) fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changes.clone()
    }

    /// Every derived product.
    pub(crate) fn all(&self) -> Result<Vec<DerivedProduct>, StateError> {
        self.store
            .scan(Tree::Derived, None, MAX_DERIVED)?
            .into_iter()
            .map(|(k, v)| decode(&k, &v))
            .collect()
    }

    /// The record of `product`.
    pub(crate) fn get(&self, product: &ProductId) -> Result<Option<DerivedProduct>, StateError> {
        let key = product.to_string();
        self.store
            .get(Tree::Derived, key.as_bytes())?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }

    /// Stores `d`; false when the book is full and `d` is new.
    pub(crate) fn put(&self, d: &DerivedProduct) -> Result<bool, StateError> {
        let key = d.product.to_string();
        let exists = self.store.get(Tree::Derived, key.as_bytes())?.is_some();
        if !exists && self.store.len(Tree::Derived)? >= MAX_DERIVED {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(d).map_err(|e| StateError::corrupt("derived product", e))?;
        self.store.put(Tree::Derived, key.as_bytes(), &bytes)?;
        self.store.flush()?;
        if !exists {
            self.changes.notify_one();
        }
        Ok(true)
    }

    /// Stops computing `product`; returns its record.
    pub(crate) fn remove(&self, product: &ProductId) -> Result<Option<DerivedProduct>, StateError> {
        let old = self.get(product)?;
        if old.is_some() {
            self.store
                .remove(Tree::Derived, product.to_string().as_bytes())?;
            self.store.flush()?;
        }
        Ok(old)
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<DerivedProduct, StateError> {
    super::decode_record(
        "derived product",
        key,
        bytes,
        DERIVED_FORMAT,
        |r: &DerivedProduct| r.format,
    )
}

impl DerivedProduct {
    /// A new record of `product` from its draft, not computed yet.
    pub(crate) fn new(product: ProductId, draft: String, now_ms: u64) -> Self {
        DerivedProduct {
            format: DERIVED_FORMAT,
            product,
            draft,
            state: DeriveState::Waiting,
            inputs: Vec::new(),
            output: None,
            attempted: Vec::new(),
            updated_ms: now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_round_trip_and_the_book_is_bounded() {
        let book = DerivedBook::new(Arc::new(mesh_storage::MemStore::default()));
        let id: ProductId = "finance/totals".parse().unwrap();
        let mut d = DerivedProduct::new(id.clone(), "id = \"finance/totals\"".into(), 1);
        assert!(book.put(&d).unwrap());
        d.state = DeriveState::Failed {
            reason: "amount: 3 values are not numbers".into(),
            transient: false,
        };
        assert!(book.put(&d).unwrap());
        assert_eq!(book.get(&id).unwrap(), Some(d.clone()));
        for i in 1..MAX_DERIVED {
            let other: ProductId = format!("finance/t{i}").parse().unwrap();
            assert!(book
                .put(&DerivedProduct::new(other, String::new(), 1))
                .unwrap());
        }
        let extra: ProductId = "finance/extra".parse().unwrap();
        assert!(!book
            .put(&DerivedProduct::new(extra, String::new(), 1))
            .unwrap());
        assert_eq!(book.remove(&id).unwrap(), Some(d));
        assert_eq!(book.all().unwrap().len(), MAX_DERIVED - 1);
    }
}
