//! This node's subscriptions: products it follows into a directory or an object
//! storage prefix (`mesh subscribe`). Each is a record in the store, so it survives a restart: where its
//! versions go, how many to keep, whether it still runs (a denied one stops), its
//! state and the versions it has materialized, with the lag of each.
//!
//! The follower (`ops/subscribe`) does the work; this book only keeps the records.
//! They are local, never gossiped: what the mesh learns is the list of followed
//! products in this node's provider record.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use mesh_protocol::ProductId;
use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};

use super::StateError;

/// The format version of a stored subscription.
const SUBSCRIPTION_FORMAT: u8 = 1;

/// The most subscriptions one node keeps.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 256;

/// The most versions one subscription keeps materialized.
pub(crate) const MAX_KEEP: usize = 1000;

/// Materialized versions whose lag is remembered, per subscription.
pub(crate) const LAG_SAMPLES: usize = 128;

/// The identity of a directory: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DirId {
    /// Device.
    pub(crate) dev: u64,
    /// Inode.
    pub(crate) ino: u64,
}

/// A folder a subscription made in its directory, known by its inode (which a
/// rename keeps) and its birth time (so a reused inode number is not taken for
/// it), so only folders it made are ever removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Made {
    /// Its name when last recorded (`.partial-V`, then `V`).
    pub(crate) name: String,
    /// Its inode.
    pub(crate) ino: u64,
    /// Its birth time in nanoseconds, where the file system keeps one.
    #[serde(default)]
    pub(crate) born_ns: Option<i128>,
}

impl Made {
    /// Whether `other` (as found on disk) is this folder.
    pub(crate) fn is(&self, other: &Made) -> bool {
        self.ino == other.ino
            && match (self.born_ns, other.born_ns) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum SubState {
    /// No version materialized yet, none being fetched.
    Waiting,
    /// The newest version known is materialized.
    UpToDate,
    /// A version is being fetched and materialized.
    Fetching {
        /// The version.
        version: String,
    },
    /// A newer version is known than the one materialized, and not yet fetched.
    Behind,
    /// A provider (or this node's copy of the rules) denied access: the
    /// subscription stopped. `mesh subscribe` again resumes it.
    Denied {
        /// The rule and its reason.
        reason: String,
    },
    /// The directory claimed is no longer at its path (moved, replaced by a link
    /// or another directory, its marker gone): the subscription stopped and
    /// writes nothing more. `mesh subscribe` again resumes it.
    Moved {
        /// What changed.
        reason: String,
    },
    /// The last attempt failed; it is retried with a growing pause.
    Failing {
        /// What went wrong.
        reason: String,
        /// Attempts failed in a row.
        attempts: u32,
    },
}

impl SubState {
    /// The state's name as `mesh subscriptions` prints it.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            SubState::Waiting => "waiting",
            SubState::UpToDate => "up to date",
            SubState::Fetching { .. } => "fetching",
            SubState::Behind => "behind",
            SubState::Denied { .. } => "denied",
            SubState::Moved { .. } => "moved",
            SubState::Failing { .. } => "failing",
        }
    }
}

/// One version a subscription materialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Materialized {
    /// The version (also its folder's name).
    pub version: String,
    /// Its manifest hash.
    pub manifest: String,
    /// When it became due (unix ms): its announcement's own time, or when the
    /// subscription was made, if later.
    pub due_at_ms: u64,
    /// When its folder became `current` here (unix ms).
    pub materialized_at_ms: u64,
    /// Bytes downloaded for it (chunks the node held already are not).
    pub transferred_bytes: u64,
    /// The version's size.
    pub size: u64,
    /// Bytes of its files that came from the previous version's folder (cloned or
    /// copied by the kernel) rather than written again.
    #[serde(default)]
    pub reused_bytes: u64,
}

impl Materialized {
    /// From due (announced, or subscribed if later) to `current`, in milliseconds.
    pub fn lag_ms(&self) -> u64 {
        self.materialized_at_ms.saturating_sub(self.due_at_ms)
    }
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subscription {
    /// [`SUBSCRIPTION_FORMAT`].
    pub(crate) format: u8,
    /// The product followed.
    pub(crate) product: ProductId,
    /// The directory its versions go to (absolute).
    pub(crate) out: PathBuf,
    /// How many versions stay materialized (at least 1).
    pub(crate) keep: usize,
    /// When it was made (unix ms).
    pub(crate) created_at_ms: u64,
    /// Where it stands.
    pub(crate) state: SubState,
    /// Since when (unix ms).
    pub(crate) since_ms: u64,
    /// The versions materialized and kept, oldest first; the last is `current`.
    pub(crate) kept: Vec<Materialized>,
    /// The most recent materializations, oldest first (at most [`LAG_SAMPLES`]).
    pub(crate) history: VecDeque<Materialized>,
    /// The identity of the directory claimed (absent in records made before it
    /// was kept: taken at the next look).
    #[serde(default)]
    pub(crate) dir: Option<DirId>,
    /// The folders this subscription made and still has (kept versions and the
    /// one being fetched): only these are ever removed.
    #[serde(default)]
    pub(crate) made: Vec<Made>,
    /// Versions the policy flags are passed over.
    #[serde(default)]
    pub(crate) skip_flagged: bool,
    /// Versions go into object storage here instead of a directory (`out` then
    /// holds the same URL, for display).
    #[serde(default)]
    pub(crate) objects: Option<mesh_storage::objects::ObjectUrl>,
}

impl Subscription {
    /// A new subscription, waiting for its first version.
    pub(crate) fn new(product: ProductId, out: PathBuf, keep: usize, now_ms: u64) -> Self {
        Subscription {
            format: SUBSCRIPTION_FORMAT,
            product,
            out,
            keep: keep.clamp(1, MAX_KEEP),
            created_at_ms: now_ms,
            state: SubState::Waiting,
            since_ms: now_ms,
            kept: Vec::new(),
            history: VecDeque::new(),
            dir: None,
            made: Vec::new(),
            skip_flagged: false,
            objects: None,
        }
    }

    /// Whether the follower works on it (a denied or moved one has stopped).
    pub(crate) fn active(&self) -> bool {
        !matches!(self.state, SubState::Denied { .. } | SubState::Moved { .. })
    }

    /// The version `current` points to.
    pub(crate) fn current(&self) -> Option<&Materialized> {
        self.kept.last()
    }

    /// Moves to `state` at `now_ms` (the time is kept only when the state's kind
    /// changes, so "failing since" counts from the first failure).
    pub(crate) fn set_state(&mut self, state: SubState, now_ms: u64) {
        if std::mem::discriminant(&state) != std::mem::discriminant(&self.state) {
            self.since_ms = now_ms;
        }
        self.state = state;
    }

    /// Records a version made `current`; returns the versions beyond `keep` that
    /// are no longer kept (oldest first), for their folders to be removed.
    pub(crate) fn materialized(&mut self, m: Materialized) -> Vec<Materialized> {
        self.kept.retain(|k| k.version != m.version);
        self.kept.push(m.clone());
        if self.history.len() >= LAG_SAMPLES {
            self.history.pop_front();
        }
        self.history.push_back(m);
        let excess = self.kept.len().saturating_sub(self.keep);
        self.kept.drain(..excess).collect()
    }
}

/// The subscriptions of this node, over the metadata store.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionBook {
    store: Arc<dyn MetaStore>,
    /// Signalled when one is added or removed (the provider record lists them) or
    /// asks for work.
    changed: Arc<tokio::sync::Notify>,
}

impl SubscriptionBook {
    /// The book over `store`.
    pub(crate) fn new(store: Arc<dyn MetaStore>) -> Self {
        SubscriptionBook {
            store,
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The signal of a subscription added or removed: a waiter that enables its
    /// `notified()` future before reading misses no change made after.
    pub(crate) fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Wakes whoever waits on [`SubscriptionBook::changes`].
    pub(crate) fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Every subscription, by product. A record that no longer decodes is logged
    /// and left out (and left in the store), so one damaged record does not stop
    /// the others.
    pub(crate) fn all(&self) -> Result<Vec<Subscription>, StateError> {
        Ok(self
            .store
            .scan(Tree::Subscriptions, None, MAX_SUBSCRIPTIONS)?
            .into_iter()
            .filter_map(|(key, bytes)| {
                decode(&key, &bytes)
                    .map_err(|e| tracing::warn!("{e}; `mesh unsubscribe` it and subscribe again"))
                    .ok()
            })
            .collect())
    }

    /// The subscription of `product`, if any.
    pub(crate) fn get(&self, product: &ProductId) -> Result<Option<Subscription>, StateError> {
        let key = product.to_string();
        self.store
            .get(Tree::Subscriptions, key.as_bytes())?
            .map(|bytes| decode(key.as_bytes(), &bytes))
            .transpose()
    }

    /// Stores `s` (new or updated). A new one beyond [`MAX_SUBSCRIPTIONS`] is
    /// refused with `Ok(false)`.
    pub(crate) fn put(&self, s: &Subscription) -> Result<bool, StateError> {
        let key = s.product.to_string();
        let exists = self
            .store
            .get(Tree::Subscriptions, key.as_bytes())?
            .is_some();
        if !exists && self.store.len(Tree::Subscriptions)? >= MAX_SUBSCRIPTIONS {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(s)
            .map_err(|e| StateError::corrupt(format!("subscription {key}"), e))?;
        self.store
            .put(Tree::Subscriptions, key.as_bytes(), &bytes)?;
        self.store.flush()?;
        Ok(true)
    }

    /// Removes the subscription of `product`; returns it if there was one.
    pub(crate) fn remove(&self, product: &ProductId) -> Result<Option<Subscription>, StateError> {
        let old = self.get(product)?;
        if old.is_some() {
            self.store
                .remove(Tree::Subscriptions, product.to_string().as_bytes())?;
            self.store.flush()?;
        }
        Ok(old)
    }

    /// The followed products (for this node's provider record).
    pub(crate) fn follows(&self) -> Result<Vec<ProductId>, StateError> {
        Ok(self.all()?.into_iter().map(|s| s.product).collect())
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Subscription, StateError> {
    super::decode_record(
        "subscription",
        key,
        bytes,
        SUBSCRIPTION_FORMAT,
        |r: &Subscription| r.format,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(version: &str, published: u64, at: u64) -> Materialized {
        Materialized {
            version: version.into(),
            manifest: format!("hash-{version}"),
            due_at_ms: published,
            materialized_at_ms: at,
            transferred_bytes: 10,
            size: 100,
            reused_bytes: 0,
        }
    }

    #[test]
    fn kept_versions_are_pruned_to_keep_and_lags_remembered() {
        let mut s = Subscription::new("sales/orders".parse().unwrap(), "/tmp/x".into(), 2, 0);
        assert!(s.materialized(m("1.0.0", 10, 30)).is_empty());
        assert!(s.materialized(m("1.1.0", 40, 45)).is_empty());
        let gone = s.materialized(m("1.2.0", 50, 80));
        assert_eq!(gone, vec![m("1.0.0", 10, 30)]);
        assert_eq!(s.current().unwrap().version, "1.2.0");
        assert_eq!(s.kept.len(), 2);
        let lags: Vec<u64> = s.history.iter().map(Materialized::lag_ms).collect();
        assert_eq!(lags, vec![20, 5, 30]);
        // Materializing a kept version again moves it to current, no duplicate.
        assert!(s.materialized(m("1.1.0", 40, 90)).is_empty());
        let kept: Vec<&str> = s.kept.iter().map(|k| k.version.as_str()).collect();
        assert_eq!(kept, vec!["1.2.0", "1.1.0"]);
    }

    #[test]
    fn a_denied_subscription_stops_and_the_state_clock_counts_from_the_first_failure() {
        let mut s = Subscription::new("sales/orders".parse().unwrap(), "/tmp/x".into(), 0, 5);
        assert_eq!(s.keep, 1, "keep is at least 1");
        s.set_state(
            SubState::Failing {
                reason: "x".into(),
                attempts: 1,
            },
            10,
        );
        s.set_state(
            SubState::Failing {
                reason: "y".into(),
                attempts: 2,
            },
            20,
        );
        assert_eq!(s.since_ms, 10);
        assert!(s.active());
        s.set_state(
            SubState::Denied {
                reason: "no grant".into(),
            },
            30,
        );
        assert!(!s.active());
        assert_eq!(s.state.label(), "denied");
    }

    #[test]
    fn the_book_survives_reopening_and_is_bounded() {
        let store: Arc<dyn MetaStore> = Arc::new(mesh_storage::MemStore::default());
        let book = SubscriptionBook::new(store.clone());
        let s = Subscription::new("sales/orders".parse().unwrap(), "/data/o".into(), 3, 1);
        assert!(book.put(&s).unwrap());
        let again = SubscriptionBook::new(store.clone());
        assert_eq!(again.get(&s.product).unwrap(), Some(s.clone()));
        assert_eq!(again.follows().unwrap(), vec![s.product.clone()]);
        for i in 1..MAX_SUBSCRIPTIONS {
            let p = format!("sales/p{i}").parse().unwrap();
            assert!(book.put(&Subscription::new(p, "/d".into(), 1, 1)).unwrap());
        }
        let over = Subscription::new("sales/over".parse().unwrap(), "/d".into(), 1, 1);
        assert!(!book.put(&over).unwrap(), "full");
        assert!(book.put(&s).unwrap(), "an update of a kept one is fine");
        assert!(book.remove(&s.product).unwrap().is_some());
        assert!(book.get(&s.product).unwrap().is_none());
        // A damaged record is reported and left out; the others go on.
        store
            .put(Tree::Subscriptions, b"sales/bad", b"{not json")
            .unwrap();
        assert_eq!(book.all().unwrap().len(), MAX_SUBSCRIPTIONS - 1);
        let bad: ProductId = "sales/bad".parse().unwrap();
        assert!(book.get(&bad).is_err());
    }
}
