//! Who holds what: every node's newest signed [`ProviderRecord`], kept in the store
//! and indexed in memory by manifest hash, so the catalog can list a version's
//! providers (the publisher and every replica), the SLA can count them and a fetch
//! can ask them.
//!
//! A record is taken only if its signature verifies under its key and that key is
//! the one the named peer id derives from, so no node can speak for another. Records
//! are bounded: one per node, at most [`MAX_RECORDS`] nodes. When full, a record of a
//! node the policy's registry names, or one newer than a stale record, pushes out
//! the stalest record of a node the registry does not name; otherwise it is refused.
//! Peer ids cost nothing to make, so an unregistered flood can never evict the
//! registered domains' nodes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use libp2p::identity::{ed25519, PublicKey as Libp2pKey};
use libp2p::PeerId;
use mesh_protocol::provider::{ProviderRecord, MAX_FOLLOWS, MAX_HELD, PROVIDER_FORMAT};
use mesh_protocol::{KeyPair, ManifestHash, ProductId, Signed};
use mesh_storage::{MetaStore, Tree};

use super::governance::Governance;
use super::{Invalid, OfferError, StateError};

/// The most nodes whose records are kept.
pub(crate) const MAX_RECORDS: usize = 1024;

/// A record may be issued at most this far ahead of our clock.
const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// One node that holds a version, as `mesh show` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The node's peer id.
    pub(crate) peer_id: String,
    /// Unix milliseconds of its newest record: when it last said it holds this.
    pub(crate) last_seen_ms: u64,
    /// Whether that record is older than the TTL (not counted as a provider).
    pub(crate) stale: bool,
}

/// One node that follows a product (`mesh subscribe`), as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Follower {
    /// The node's peer id.
    pub(crate) peer_id: String,
    /// Unix milliseconds of its newest record: when it last said it follows.
    pub(crate) last_seen_ms: u64,
    /// Whether that record is older than the TTL.
    pub(crate) stale: bool,
    /// The product's versions it holds.
    pub(crate) held: Vec<ManifestHash>,
}

/// What one node's newest record says.
#[derive(Debug)]
struct NodeRecord {
    issued_at_ms: u64,
    held: Vec<ManifestHash>,
    addrs: Vec<String>,
    follows: Vec<ProductId>,
}

#[derive(Debug, Default)]
struct Index {
    /// Per node: its newest record.
    nodes: HashMap<String, NodeRecord>,
    /// Per version: the nodes holding it.
    by_manifest: HashMap<ManifestHash, BTreeSet<String>>,
}

impl Index {
    fn insert(&mut self, r: ProviderRecord) {
        self.remove(&r.peer);
        for m in &r.held {
            self.by_manifest
                .entry(*m)
                .or_default()
                .insert(r.peer.clone());
        }
        self.nodes.insert(
            r.peer,
            NodeRecord {
                issued_at_ms: r.issued_at_ms,
                held: r.held,
                addrs: r.addrs,
                follows: r.follows,
            },
        );
    }

    fn remove(&mut self, peer: &str) {
        if let Some(record) = self.nodes.remove(peer) {
            for m in record.held {
                if let Some(set) = self.by_manifest.get_mut(&m) {
                    set.remove(peer);
                    if set.is_empty() {
                        self.by_manifest.remove(&m);
                    }
                }
            }
        }
    }
}

/// The provider records this node knows, and its own identity to sign its record.
#[derive(Clone)]
pub(crate) struct Providers {
    store: Arc<dyn MetaStore>,
    governance: Governance,
    me: PeerId,
    /// This node's identity key, as the protocol's key type.
    key: Arc<KeyPair>,
    index: Arc<RwLock<Index>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// The peer id an identity key derives from.
fn peer_of(key: &mesh_protocol::PublicKey) -> Option<PeerId> {
    let pk = ed25519::PublicKey::try_from_bytes(key.as_bytes()).ok()?;
    Some(Libp2pKey::from(pk).to_peer_id())
}

impl Providers {
    /// Loads every stored record; `identity` is this node's libp2p key (ed25519).
    pub(crate) fn load(
        store: Arc<dyn MetaStore>,
        governance: Governance,
        identity: &libp2p::identity::Keypair,
    ) -> Result<Self, StateError> {
        let ed = identity
            .clone()
            .try_into_ed25519()
            .map_err(|e| StateError::corrupt("node identity", format!("not ed25519: {e}")))?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(ed.secret().as_ref());
        let key = KeyPair::from_secret(seed);
        let mut index = Index::default();
        for (_, bytes) in store.scan(Tree::Providers, None, usize::MAX)? {
            if let Ok(r) = Signed::<ProviderRecord>::from_bytes(&bytes).and_then(|s| s.value()) {
                index.insert(r);
            }
        }
        Ok(Providers {
            store,
            governance,
            me: identity.public().to_peer_id(),
            key: Arc::new(key),
            index: Arc::new(RwLock::new(index)),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Verifies a record (gossiped or pulled) and keeps it if it is its node's
    /// newest; returns whether it was new. This node's own records are not taken
    /// from others.
    pub(crate) fn accept(&self, bytes: &[u8], now_ms: u64) -> Result<bool, OfferError> {
        let signed = Signed::<ProviderRecord>::from_bytes(bytes).map_err(Invalid::new)?;
        let r = signed.value().map_err(Invalid::new)?;
        // What would be dropped anyway is dropped before the signature check, which
        // costs more than everything else here: anti-entropy pulls every record again.
        if r.peer == self.me.to_string() || self.is_known(&r) {
            return Ok(false);
        }
        r.validate().map_err(Invalid::new)?;
        if !signed.is_signed_by(&r.key) {
            return Err(Invalid::new(format!(
                "provider record of {} is not validly signed by the key it names",
                r.peer
            ))
            .into());
        }
        if peer_of(&r.key).map(|p| p.to_string()).as_deref() != Some(r.peer.as_str()) {
            return Err(Invalid::new(format!(
                "provider record names peer {} but is signed by another node's key",
                r.peer
            ))
            .into());
        }
        if r.issued_at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(Invalid::new(format!(
                "provider record of {} is issued {} s in the future; check that node's clock",
                r.peer,
                (r.issued_at_ms - now_ms) / 1000
            ))
            .into());
        }
        let mut index = self.write();
        if let Some(known) = index.nodes.get(&r.peer) {
            if known.issued_at_ms >= r.issued_at_ms {
                return Ok(false);
            }
        } else if index.nodes.len() >= MAX_RECORDS {
            let Some(victim) = self.victim(&index, &r, now_ms) else {
                return Ok(false);
            };
            self.store.remove(Tree::Providers, victim.as_bytes())?;
            index.remove(&victim);
        }
        self.store.put(Tree::Providers, r.peer.as_bytes(), bytes)?;
        index.insert(r);
        Ok(true)
    }

    /// Whether a record of `r`'s node at least as new as `r` is kept already.
    fn is_known(&self, r: &ProviderRecord) -> bool {
        self.read()
            .nodes
            .get(&r.peer)
            .is_some_and(|known| known.issued_at_ms >= r.issued_at_ms)
    }

    /// The record to drop for `new` when full: the stalest record of a node the
    /// registry does not name, if `new` is registered or newer than it.
    fn victim(&self, index: &Index, new: &ProviderRecord, now_ms: u64) -> Option<String> {
        let policy = self.governance.policy();
        let registered = |peer: &str| policy.domain_of_node(peer).is_some();
        let (peer, issued) = index
            .nodes
            .iter()
            .filter(|(p, _)| !registered(p))
            .map(|(p, n)| (p.clone(), n.issued_at_ms))
            .min_by_key(|(_, issued)| *issued)?;
        let stale = now_ms.saturating_sub(issued) > mesh_protocol::provider::PROVIDER_TTL_MS;
        (registered(&new.peer) || (stale && new.issued_at_ms > issued)).then_some(peer)
    }

    /// Signs this node's record for `held` and `addrs`, keeps it (so peers pull it)
    /// and returns its envelope.
    pub(crate) fn sign_own(
        &self,
        mut held: Vec<ManifestHash>,
        addrs: Vec<String>,
        mut follows: Vec<ProductId>,
        now_ms: u64,
    ) -> Result<Vec<u8>, StateError> {
        held.sort();
        held.truncate(MAX_HELD);
        follows.sort();
        follows.dedup();
        follows.truncate(MAX_FOLLOWS);
        let record = ProviderRecord {
            format: PROVIDER_FORMAT,
            peer: self.me.to_string(),
            key: self.key.public(),
            issued_at_ms: now_ms,
            held,
            addrs: addrs
                .into_iter()
                .take(mesh_protocol::provider::MAX_PROVIDER_ADDRS)
                .collect(),
            follows,
        };
        let envelope = Signed::sign(&record, &self.key).to_bytes();
        self.store
            .put(Tree::Providers, record.peer.as_bytes(), &envelope)?;
        self.write().insert(record);
        Ok(envelope)
    }

    /// The other nodes that say they hold `manifest`, freshest first.
    pub(crate) fn holders(&self, manifest: &ManifestHash, now_ms: u64) -> Vec<Holder> {
        let me = self.me.to_string();
        let index = self.read();
        let mut out: Vec<Holder> = index
            .by_manifest
            .get(manifest)
            .into_iter()
            .flatten()
            .filter(|p| **p != me)
            .filter_map(|p| {
                let issued = index.nodes.get(p)?.issued_at_ms;
                Some(Holder {
                    peer_id: p.clone(),
                    last_seen_ms: issued,
                    stale: now_ms.saturating_sub(issued) > mesh_protocol::provider::PROVIDER_TTL_MS,
                })
            })
            .collect();
        out.sort_by_key(|h| std::cmp::Reverse(h.last_seen_ms));
        out
    }

    /// Every other node with a fresh record, and the addresses it gives.
    pub(crate) fn fresh_nodes(&self, now_ms: u64) -> Vec<(String, Vec<String>)> {
        let me = self.me.to_string();
        self.read()
            .nodes
            .iter()
            .filter(|(p, n)| {
                **p != me
                    && now_ms.saturating_sub(n.issued_at_ms)
                        <= mesh_protocol::provider::PROVIDER_TTL_MS
            })
            .map(|(p, n)| (p.clone(), n.addrs.clone()))
            .collect()
    }

    /// The addresses `peer` says it is reachable at.
    pub(crate) fn addrs(&self, peer: &str) -> Vec<String> {
        self.read()
            .nodes
            .get(peer)
            .map(|n| n.addrs.clone())
            .unwrap_or_default()
    }

    /// The nodes whose records say they follow `product`, freshest first, each with
    /// the product's versions (among `versions`) it holds. This node is included:
    /// its own record says what it follows too.
    pub(crate) fn followers(
        &self,
        product: &ProductId,
        versions: &[ManifestHash],
        now_ms: u64,
    ) -> Vec<Follower> {
        let index = self.read();
        let mut out: Vec<Follower> = index
            .nodes
            .iter()
            .filter(|(_, n)| n.follows.contains(product))
            .map(|(p, n)| Follower {
                peer_id: p.clone(),
                last_seen_ms: n.issued_at_ms,
                stale: now_ms.saturating_sub(n.issued_at_ms)
                    > mesh_protocol::provider::PROVIDER_TTL_MS,
                held: n
                    .held
                    .iter()
                    .filter(|h| versions.contains(h))
                    .copied()
                    .collect(),
            })
            .collect();
        out.sort_by_key(|f| std::cmp::Reverse(f.last_seen_ms));
        out
    }

    /// A page of stored records after `after` (a peer id), and whether more follow.
    pub(crate) fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StateError> {
        super::page_after(
            self.store.as_ref(),
            Tree::Providers,
            after.map(str::as_bytes),
            limit,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures::test_governance;
    use mesh_protocol::provider::PROVIDER_TTL_MS;

    fn providers() -> (Providers, libp2p::identity::Keypair) {
        let (store, governance) = test_governance();
        let id = libp2p::identity::Keypair::generate_ed25519();
        (Providers::load(store, governance, &id).unwrap(), id)
    }

    fn record_of(id: &libp2p::identity::Keypair, held: &[ManifestHash], at: u64) -> Vec<u8> {
        let (store, governance) = test_governance();
        let other = Providers::load(store, governance, id).unwrap();
        other
            .sign_own(
                held.to_vec(),
                vec!["/ip4/127.0.0.1/tcp/1".into()],
                Vec::new(),
                at,
            )
            .unwrap()
    }

    /// `id`'s ed25519 secret as a mesh signing key.
    fn signing_key_of(id: &libp2p::identity::Keypair) -> KeyPair {
        let ed = id.clone().try_into_ed25519().unwrap();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(ed.secret().as_ref());
        KeyPair::from_secret(seed)
    }

    #[test]
    fn a_replica_is_listed_and_drops_out_with_its_next_record() {
        let (p, _) = providers();
        let replica = libp2p::identity::Keypair::generate_ed25519();
        let (a, b) = (ManifestHash::of(b"a"), ManifestHash::of(b"b"));
        assert!(p
            .accept(&record_of(&replica, &[a, b], 1_000), 1_000)
            .unwrap());
        let holders = p.holders(&a, 2_000);
        assert_eq!(holders.len(), 1);
        assert_eq!(
            holders[0].peer_id,
            replica.public().to_peer_id().to_string()
        );
        assert_eq!(holders[0].last_seen_ms, 1_000);
        assert!(!holders[0].stale);
        // An older record changes nothing; a newer one without `a` drops it.
        assert!(!p.accept(&record_of(&replica, &[], 500), 2_000).unwrap());
        assert!(p.accept(&record_of(&replica, &[b], 3_000), 3_000).unwrap());
        assert!(p.holders(&a, 3_000).is_empty());
        assert_eq!(p.holders(&b, 3_000).len(), 1);
        assert!(p.holders(&b, 3_001 + PROVIDER_TTL_MS)[0].stale);
        assert_eq!(p.addrs(&holders[0].peer_id), vec!["/ip4/127.0.0.1/tcp/1"]);
    }

    #[test]
    fn a_record_for_another_peer_or_badly_signed_is_refused() {
        let (p, _) = providers();
        let (node, liar) = (
            libp2p::identity::Keypair::generate_ed25519(),
            libp2p::identity::Keypair::generate_ed25519(),
        );
        // The liar signs a record naming `node`'s peer id with its own key.
        let liar_key = signing_key_of(&liar);
        let forged = ProviderRecord {
            format: PROVIDER_FORMAT,
            peer: node.public().to_peer_id().to_string(),
            key: liar_key.public(),
            issued_at_ms: 1,
            held: vec![ManifestHash::of(b"x")],
            addrs: vec![],
            follows: vec![],
        };
        let err = p
            .accept(&Signed::sign(&forged, &liar_key).to_bytes(), 10)
            .unwrap_err();
        assert!(err.to_string().contains("another node's key"), "{err}");
        // Right key named, but signed by someone else.
        let mut unsigned = forged.clone();
        unsigned.key = KeyPair::generate().public();
        let err = p
            .accept(&Signed::sign(&unsigned, &liar_key).to_bytes(), 10)
            .unwrap_err();
        assert!(err.to_string().contains("not validly signed"), "{err}");
        // From the future.
        let err = p
            .accept(&record_of(&node, &[], 10 * 60 * 1000 + 1_000), 0)
            .unwrap_err();
        assert!(err.to_string().contains("future"), "{err}");
        assert!(p.accept(b"garbage", 0).is_err());
    }

    #[test]
    fn a_record_no_newer_than_the_kept_one_is_dropped_unchecked_and_changes_nothing() {
        let (p, _) = providers();
        let (replica, liar) = (
            libp2p::identity::Keypair::generate_ed25519(),
            libp2p::identity::Keypair::generate_ed25519(),
        );
        let a = ManifestHash::of(b"a");
        assert!(p.accept(&record_of(&replica, &[a], 1_000), 1_000).unwrap());
        // The liar's key signs records naming the replica: as old as the kept one
        // (dropped before any signature is checked, as anti-entropy repeats every
        // record), and newer (checked and refused).
        let liar_key = signing_key_of(&liar);
        let forged = |at: u64| {
            let r = ProviderRecord {
                format: PROVIDER_FORMAT,
                peer: replica.public().to_peer_id().to_string(),
                key: liar_key.public(),
                issued_at_ms: at,
                held: vec![],
                addrs: vec![],
                follows: vec![],
            };
            Signed::sign(&r, &liar_key).to_bytes()
        };
        assert!(!p.accept(&forged(1_000), 2_000).unwrap());
        assert!(!p.accept(&forged(500), 2_000).unwrap());
        let err = p.accept(&forged(1_500), 2_000).unwrap_err();
        assert!(err.to_string().contains("another node's key"), "{err}");
        assert_eq!(p.holders(&a, 2_000).len(), 1, "the kept record stands");
    }

    #[test]
    fn followers_are_listed_from_records_with_the_versions_they_hold() {
        let (p, id) = providers();
        let orders: ProductId = "sales/orders".parse().unwrap();
        let (v1, v2, other) = (
            ManifestHash::of(b"v1"),
            ManifestHash::of(b"v2"),
            ManifestHash::of(b"other"),
        );
        let sub = libp2p::identity::Keypair::generate_ed25519();
        let (store, governance) = test_governance();
        let theirs = Providers::load(store, governance, &sub).unwrap();
        let env = theirs
            .sign_own(vec![v1, other], vec![], vec![orders.clone()], 1_000)
            .unwrap();
        assert!(p.accept(&env, 1_000).unwrap());
        // A replica that does not follow is not a follower.
        let replica = libp2p::identity::Keypair::generate_ed25519();
        assert!(p.accept(&record_of(&replica, &[v1], 1_500), 1_500).unwrap());
        p.sign_own(vec![v2], vec![], vec![orders.clone()], 2_000)
            .unwrap();
        let f = p.followers(&orders, &[v1, v2], 3_000);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].peer_id, id.public().to_peer_id().to_string());
        assert_eq!(f[0].held, vec![v2]);
        assert_eq!(f[1].peer_id, sub.public().to_peer_id().to_string());
        assert_eq!(f[1].held, vec![v1], "other products' versions are left out");
        assert!(!f[1].stale);
        let later = 1_000 + mesh_protocol::provider::PROVIDER_TTL_MS + 1;
        assert!(p.followers(&orders, &[v1], later)[1].stale);
        // Unfollowing drops it with the next record.
        let env = theirs.sign_own(vec![v1], vec![], vec![], 4_000).unwrap();
        assert!(p.accept(&env, 4_000).unwrap());
        assert_eq!(p.followers(&orders, &[v1, v2], 4_000).len(), 1);
    }

    #[test]
    fn own_record_is_kept_and_paged_but_not_a_holder() {
        let (p, id) = providers();
        let a = ManifestHash::of(b"a");
        let env = p.sign_own(vec![a], vec![], Vec::new(), 5).unwrap();
        assert!(
            p.holders(&a, 5).is_empty(),
            "this node is not its own remote provider"
        );
        assert!(!p.accept(&env, 5).unwrap());
        let (page, more) = p.page(None, 16).unwrap();
        assert_eq!(page, vec![env]);
        assert!(!more);
        let me = id.public().to_peer_id().to_string();
        assert!(p.page(Some(&me), 16).unwrap().0.is_empty());
    }

    #[test]
    fn a_flood_of_unregistered_records_is_bounded() {
        let (p, _) = providers();
        let m = ManifestHash::of(b"m");
        for i in 0..MAX_RECORDS {
            let id = libp2p::identity::Keypair::generate_ed25519();
            assert!(p
                .accept(&record_of(&id, &[m], 1_000 + i as u64), 2_000)
                .unwrap());
        }
        // Full: a fresh unregistered record does not push out fresh ones...
        let id = libp2p::identity::Keypair::generate_ed25519();
        assert!(!p.accept(&record_of(&id, &[m], 3_000), 3_000).unwrap());
        assert_eq!(p.holders(&m, 3_000).len(), MAX_RECORDS);
        // ...but once the oldest are stale, a newer record replaces the stalest.
        let later = 1_000 + PROVIDER_TTL_MS + 10;
        assert!(p.accept(&record_of(&id, &[m], later), later).unwrap());
        assert_eq!(p.holders(&m, later).len(), MAX_RECORDS);
    }
}
