//! The metadata store interface and its sled and in-memory implementations.
//!
//! Keys and values are bytes; the node encodes them with the canonical encoding.
//! Keeping sled behind [`MetaStore`] lets the engine be swapped (sled 0.34 is beta
//! and its format changes before 1.0) and lets tests inject faults.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

/// The separate keyspaces of the metadata store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// Verified signed manifests this node knows, by manifest hash.
    Manifests,
    /// Manifest hashes of products this node holds completely (every chunk verified).
    Complete,
    /// Rule violations flagged per catalog entry, by catalog key.
    Flags,
    /// Signed announcements of the catalog, by product id and version.
    Announcements,
    /// The accepted policy chain, by version.
    Policies,
    /// Small node state (counters, settings).
    State,
    /// This node's usage counts as a provider, by product and consumer domain.
    Usage,
    /// The newest signed usage report of each provider, by provider peer id.
    UsageReports,
    /// The newest signed provider record of each node (this one's too), by peer id.
    Providers,
    /// The newest signed access request of each product and consumer domain.
    AccessRequests,
    /// The newest signed access decision (grant, denial, revocation) of each product
    /// and consumer domain.
    AccessDecisions,
    /// Evidence of policy equivocation: a second document validly signed for an
    /// accepted version, by version and its hash.
    Equivocations,
    /// This node's subscriptions (products it follows into a directory), by
    /// product id.
    Subscriptions,
    /// Files this node wrote out for products (fetches and subscriptions), so a
    /// later version can start from them, by product, file path and destination.
    Outputs,
    /// Consumer tokens of this node's output ports (stored hashed), by token id.
    Tokens,
    /// The derived products this node computes, by product id.
    Derived,
    /// Deliveries into object storage under way: multipart uploads started (so a
    /// restart aborts what a crash left) and files already delivered (so it
    /// resumes), by destination.
    Deliveries,
}

impl Tree {
    fn name(self) -> &'static str {
        match self {
            Tree::Manifests => "manifests",
            Tree::Complete => "complete",
            Tree::Flags => "flags",
            Tree::Announcements => "announcements",
            Tree::Policies => "policies",
            Tree::State => "state",
            Tree::Usage => "usage",
            Tree::UsageReports => "usage_reports",
            Tree::Providers => "providers",
            Tree::Equivocations => "equivocations",
            Tree::AccessRequests => "access_requests",
            Tree::AccessDecisions => "access_decisions",
            Tree::Subscriptions => "subscriptions",
            Tree::Outputs => "outputs",
            Tree::Tokens => "tokens",
            Tree::Derived => "derived",
            Tree::Deliveries => "deliveries",
        }
    }
}

/// What kind of failure a metadata store error is, for callers that act on it
/// (the message says the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database files are damaged.
    Corrupt,
    /// Another process holds the database (a node already running on the home).
    Locked,
    /// Reading, writing or syncing the disk failed (full, read-only, an I/O error).
    Io,
    /// The store cannot be used any more in this process.
    Unusable,
}

/// A metadata store failure.
#[derive(Debug, thiserror::Error)]
#[error("metadata store: {message}; check the disk and the node home's db/ directory")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

impl StoreError {
    /// Builds an error of `kind` from a description.
    pub fn new(kind: StoreErrorKind, msg: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: msg.into(),
        }
    }

    /// An I/O failure while `doing` something.
    fn io(doing: &str, e: impl std::fmt::Display) -> Self {
        StoreError::new(StoreErrorKind::Io, format!("{doing}: {e}"))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

/// One key-value pair.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Ordered key-value storage in named trees.
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    /// Reads a value.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a value (durable after [`MetaStore::flush`]).
    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Removes a value.
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;
    /// Up to `limit` entries with keys strictly after `after`, in key order.
    fn scan(
        &self,
        tree: Tree,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
    /// Number of entries in a tree.
    fn len(&self, tree: Tree) -> Result<usize, StoreError>;
    /// Makes every earlier write durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// The faults injected into this store, for tests of error paths, if it has any.
    #[cfg(feature = "faults")]
    fn faults(&self) -> Option<&crate::Faults> {
        None
    }
}

/// The sled-backed store.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// sled's own files (its log `db` and its `conf`), opened once to be synced by
    /// [`MetaStore::flush`]: sled's flush ends in `sync_file_range`, which on ext4
    /// saves neither a grown file's new size nor the drive's cache, and does not
    /// reach FUSE at all. The power-loss harness lost acknowledged policy versions
    /// to it.
    files: Vec<std::fs::File>,
    /// Injected faults (off unless a test turns them on).
    faults: crate::faults::Faults,
}

/// Whether sled failed to open because another holder has the database's lock.
fn is_lock_held(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}

fn sled_err(e: sled::Error) -> StoreError {
    let kind = match &e {
        sled::Error::Corruption { .. } => StoreErrorKind::Corrupt,
        sled::Error::Io(_) => StoreErrorKind::Io,
        _ => StoreErrorKind::Unusable,
    };
    StoreError::new(kind, e.to_string())
}

/// Bytes of pages sled keeps in memory. Its default is 1 GiB, which a node with a
/// catalog of 100,000 products filled: the process grew to 1.1 GiB. At 64 MiB the
/// node with that catalog held 309 MiB after `web_catalog`'s listings (issue #38
/// asks for 300), at 32 MiB 297, with no time the benchmark tells apart.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // A store this process just dropped keeps its lock until sled's flusher
        // thread notices (up to its flush interval): wait that long for the lock,
        // never longer, before saying another node holds it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let opened = loop {
            match sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                .open()
            {
                Err(e) if is_lock_held(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other,
            }
        };
        let db = opened.map_err(|e| match e {
            sled::Error::Corruption { .. } => StoreError::new(StoreErrorKind::Corrupt, format!(
                "the database {} is corrupt ({e}); restore it from a backup, or move the node home aside and `mesh init` a new one (peers re-sync the catalog and policies)",
                dir.display()
            )),
            e if is_lock_held(&e) => StoreError::new(StoreErrorKind::Locked, format!(
                "cannot open {}: another mesh node is using this home ({e})",
                dir.display()
            )),
            e => StoreError::io(&format!("cannot open {}", dir.display()), e),
        })?;
        let mut files = Vec::new();
        for name in ["db", "conf"] {
            let path = dir.join(name);
            match std::fs::File::open(&path) {
                Ok(f) => files.push(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::io(
                        &format!("cannot open {}", path.display()),
                        e,
                    ))
                }
            }
        }
        // sled writes `conf` without syncing it; a power loss right after `mesh
        // init` would leave it empty.
        for f in &files {
            f.sync_all()
                .map_err(|e| StoreError::io(&format!("syncing {}", dir.display()), e))?;
        }
        Ok(SledStore {
            db,
            files,
            faults: crate::faults::Faults::off(),
        })
    }

    fn tree(&self, tree: Tree) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(tree.name()).map_err(sled_err)
    }
}

impl MetaStore for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(tree)?
            .get(key)
            .map_err(sled_err)?
            .map(|v| v.to_vec()))
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.faults
            .before_write(key.len() + value.len())
            .map_err(|e| StoreError::io("writing the metadata store", e))?;
        self.tree(tree)?.insert(key, value).map_err(sled_err)?;
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.faults
            .before_write(key.len())
            .map_err(|e| StoreError::io("writing the metadata store", e))?;
        self.tree(tree)?.remove(key).map_err(sled_err)?;
        Ok(())
    }

    fn scan(
        &self,
        tree: Tree,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let t = self.tree(tree)?;
        let lower = match after {
            Some(k) => Bound::Excluded(k.to_vec()),
            None => Bound::Unbounded,
        };
        t.range::<Vec<u8>, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err))
            .collect()
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.tree(tree)?.len())
    }

    #[cfg(feature = "faults")]
    fn faults(&self) -> Option<&crate::Faults> {
        Some(&self.faults)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.faults
            .before_sync()
            .map_err(|e| StoreError::io("flushing the metadata store", e))?;
        self.db.flush().map_err(sled_err)?;
        for f in &self.files {
            f.sync_all()
                .map_err(|e| StoreError::io("syncing the metadata store", e))?;
        }
        Ok(())
    }
}

/// Every tree of the in-memory store in one ordered map.
type MemTrees = BTreeMap<(Tree, Vec<u8>), Vec<u8>>;

/// An in-memory store for tests and ephemeral nodes.
#[derive(Debug, Default)]
pub struct MemStore {
    trees: Mutex<MemTrees>,
}

impl MemStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemTrees>, StoreError> {
        self.trees
            .lock()
            .map_err(|_| StoreError::new(StoreErrorKind::Unusable, "in-memory store poisoned"))
    }
}

impl MetaStore for MemStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.get(&(tree, key.to_vec())).cloned())
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.lock()?.insert((tree, key.to_vec()), value.to_vec());
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.lock()?.remove(&(tree, key.to_vec()));
        Ok(())
    }

    fn scan(
        &self,
        tree: Tree,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let map = self.lock()?;
        let lower = match after {
            Some(k) => Bound::Excluded((tree, k.to_vec())),
            None => Bound::Included((tree, Vec::new())),
        };
        Ok(map
            .range((lower, Bound::Unbounded))
            .take_while(|((t, _), _)| *t == tree)
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn len(&self, tree: Tree) -> Result<usize, StoreError> {
        Ok(self.lock()?.keys().filter(|(t, _)| *t == tree).count())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn MetaStore) {
        store.put(Tree::Manifests, b"b", b"2").unwrap();
        store.put(Tree::Manifests, b"a", b"1").unwrap();
        store.put(Tree::Manifests, b"c", b"3").unwrap();
        store.put(Tree::State, b"a", b"x").unwrap();
        assert_eq!(
            store.get(Tree::Manifests, b"a").unwrap(),
            Some(b"1".to_vec())
        );
        let page = store.scan(Tree::Manifests, Some(b"a"), 1).unwrap();
        assert_eq!(page, vec![(b"b".to_vec(), b"2".to_vec())]);
        assert_eq!(store.len(Tree::Manifests).unwrap(), 3);
        store.remove(Tree::Manifests, b"b").unwrap();
        assert_eq!(store.scan(Tree::Manifests, None, 10).unwrap().len(), 2);
        assert_eq!(store.scan(Tree::State, None, 10).unwrap().len(), 1);
        store.flush().unwrap();
    }

    #[test]
    fn sled_and_memory_stores_agree() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&SledStore::open(dir.path()).unwrap());
        exercise(&MemStore::default());
    }

    #[test]
    fn sled_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.put(Tree::Policies, b"k", b"v").unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.get(Tree::Policies, b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn a_store_held_by_another_opener_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SledStore::open(dir.path()).unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Locked, "{err}");
        assert!(err.to_string().starts_with("metadata store: "), "{err}");
    }
}
