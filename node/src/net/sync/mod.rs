//! Pull sync on connect: first the peer's newer policies (so that announcements from
//! newly registered keys verify), then its catalog, page by page, then the signed
//! records it holds: provider records (who holds which versions) and usage reports,
//! so every connected node converges on the same providers and usage totals.
//!
//! A sync is a small state machine: [`SyncState`] says what was asked, and
//! [`advance`] takes the answer, offers what it holds through the gossip
//! [`Validator`], and returns the next request, if any. The event loop sends it.
//! A catalog page is not offered on the event loop: it goes to the sync's own
//! worker ([`offers::PageOffers`]), which checks its signatures (most of a late
//! joiner's time) while the loop asks for the next page (the cursor is the page's
//! last entry, valid or not), so the peer reads and sends that page meanwhile and
//! the loop goes on serving gossip and peers.
//!
//! Policy pages are collected and offered to the chain together, because only the
//! newest policy of a catch-up must be unexpired. Both syncs are bounded: at most
//! [`MAX_POLICY_PAGES`] policy pages and [`MAX_CATALOG_PAGES`] catalog pages per
//! connection, and a catalog cursor that does not advance ends the sync; records
//! likewise, at most [`MAX_RECORD_PAGES`] pages of each kind.
//!
//! Gossip is not sent again, so what a node missed (cut off by a partition, down
//! in a crash) reaches it only through sync. A version a sync teaches that was
//! announced recently is therefore gossiped on by the node that learned it (at most
//! [`MAX_SPREAD_PER_PAGE`] a page): sync repairs, gossip spreads the repair, as in
//! the epidemic protocols of Demers et al. Peers that hold it already drop it
//! unchecked (its bytes are the kept ones).

use libp2p::PeerId;
use mesh_protocol::access::{AccessDecision, AccessRequest};
use mesh_protocol::wire::{
    RecordKind, Request, Response, MAX_CATALOG_PAGE, MAX_POLICY_PAGE, MAX_RECORD_PAGE,
};
use mesh_protocol::{Announcement, Policy, ProductId, Signed};
use tracing::{debug, info, warn};

pub(super) mod offers;

use super::gossip::Validator;
use crate::clock::unix_now_ms;
use crate::state::catalog::{entry_key, Offer, PageOffer};
use crate::state::OfferError;

/// Catalog pages fetched from one peer per connection, at most (256 entries each).
const MAX_CATALOG_PAGES: u32 = 4096;
/// Policy pages fetched from one peer per sync, at most (16 versions each).
const MAX_POLICY_PAGES: u32 = 64;
/// Record pages of one kind fetched from one peer per sync, at most (16 each): every
/// node's provider record (at most `state::providers::MAX_RECORDS`) fits.
const MAX_RECORD_PAGES: u32 = 128;

type CatalogCursor = (ProductId, semver::Version);

/// A sync request in flight.
#[derive(Debug)]
pub(super) enum SyncState {
    Policies {
        peer: PeerId,
        pages: u32,
        /// The version the page was requested after.
        after: u64,
        collected: Vec<Signed<Policy>>,
        /// Continue with a catalog sync when done.
        then_catalog: bool,
    },
    Catalog {
        peer: PeerId,
        pages: u32,
        cursor: Option<CatalogCursor>,
    },
    Records {
        peer: PeerId,
        kind: RecordKind,
        pages: u32,
        /// The peer id the page was requested after.
        cursor: Option<String>,
    },
}

impl SyncState {
    /// The first step of a sync with `peer`: its policies after `ours`.
    pub(super) fn start(peer: PeerId, ours: u64, then_catalog: bool) -> Self {
        SyncState::Policies {
            peer,
            pages: 0,
            after: ours,
            collected: Vec::new(),
            then_catalog,
        }
    }

    /// The peer this step asks.
    pub(super) fn peer(&self) -> PeerId {
        match self {
            SyncState::Policies { peer, .. }
            | SyncState::Catalog { peer, .. }
            | SyncState::Records { peer, .. } => *peer,
        }
    }

    /// The request this step sends.
    pub(super) fn request(&self) -> Request {
        match self {
            SyncState::Policies { after, .. } => Request::Policies {
                after: *after,
                limit: MAX_POLICY_PAGE,
            },
            SyncState::Catalog { cursor, .. } => Request::Catalog {
                after: cursor.clone(),
                limit: MAX_CATALOG_PAGE,
            },
            SyncState::Records { kind, cursor, .. } => Request::Records {
                kind: *kind,
                after: cursor.clone(),
                limit: MAX_RECORD_PAGE,
            },
        }
    }
}

/// Versions a sync taught this node are gossiped on when they were announced at most
/// this long ago: a partition that healed, or a node back from a crash, then spreads
/// what it missed at gossip speed instead of each node waiting for its own sync.
const SPREAD_RECENT_MS: u64 = 10 * 60 * 1000;
/// Versions gossiped on per catalog page, at most: a late joiner learning a large
/// catalog does not flood the mesh with what every other node holds.
const MAX_SPREAD_PER_PAGE: usize = 32;

/// Whether a version a sync taught this node is gossiped on (see [`SPREAD_RECENT_MS`]).
fn worth_spreading(issued_at_ms: u64, now_ms: u64, spread_so_far: usize) -> bool {
    spread_so_far < MAX_SPREAD_PER_PAGE && now_ms.saturating_sub(issued_at_ms) <= SPREAD_RECENT_MS
}

/// What a sync does after an answer.
#[derive(Debug)]
pub(super) enum Advance {
    /// Ask this next (or nothing: the sync is over).
    Ask(Option<SyncState>),
    /// Offer this catalog page (off the event loop), then ask `then`, if any. With
    /// `early`, `then` (the next page) may be asked before the page is offered.
    Offer {
        page: Box<CatalogPage>,
        then: Option<SyncState>,
        early: bool,
    },
}

/// Takes the answer to `state` (`None`: the request failed), offers what it holds
/// (policies and records here; a catalog page is handed back to be offered off the
/// event loop), and says what comes next.
pub(super) fn advance(
    state: SyncState,
    response: Option<Response>,
    validator: &Validator,
) -> Advance {
    match state {
        SyncState::Policies {
            peer,
            pages,
            after,
            collected,
            then_catalog,
        } => {
            let page = PolicyPage {
                peer,
                pages,
                after,
                collected,
                then_catalog,
            };
            Advance::Ask(policies_page(page, response, validator))
        }
        SyncState::Catalog {
            peer,
            pages,
            cursor,
        } => {
            let Some(Response::Catalog { entries, more }) = response else {
                debug!(%peer, "catalog sync: no page");
                return Advance::Ask(None);
            };
            let page = CatalogPage {
                peer,
                pages,
                cursor,
                entries,
                more,
            };
            match page.next() {
                Some(next) => Advance::Offer {
                    page: Box::new(page),
                    then: Some(next),
                    early: true,
                },
                None => Advance::Offer {
                    page: Box::new(page),
                    then: Some(SyncState::Records {
                        peer,
                        kind: RecordKind::Providers,
                        pages: 0,
                        cursor: None,
                    }),
                    early: false,
                },
            }
        }
        SyncState::Records {
            peer,
            kind,
            pages,
            cursor,
        } => Advance::Ask(records_page(peer, kind, pages, cursor, response, validator)),
    }
}

/// The policy step's state.
struct PolicyPage {
    peer: PeerId,
    pages: u32,
    after: u64,
    collected: Vec<Signed<Policy>>,
    then_catalog: bool,
}

/// A page of the peer's policies: collected until versions stop advancing, then
/// offered as one chain; next the catalog, if asked for.
fn policies_page(
    page: PolicyPage,
    response: Option<Response>,
    validator: &Validator,
) -> Option<SyncState> {
    let PolicyPage {
        peer,
        pages,
        after,
        mut collected,
        then_catalog,
    } = page;
    let mut more = false;
    if let Some(Response::Policies { entries, more: m }) = response {
        for bytes in entries.iter().take(usize::from(MAX_POLICY_PAGE)) {
            match Signed::<Policy>::from_bytes(bytes) {
                Ok(s) => collected.push(s),
                Err(e) => warn!(%peer, "policy sync: undecodable policy: {e}"),
            }
        }
        more = m && !entries.is_empty();
    }
    let last = collected
        .last()
        .and_then(|s| s.value().ok())
        .map(|p| p.version);
    // Continue only while versions advance and within the page budget.
    let advanced = last.filter(|l| *l > after);
    if let (true, Some(last)) = (more && pages + 1 < MAX_POLICY_PAGES, advanced) {
        return Some(SyncState::Policies {
            peer,
            pages: pages + 1,
            after: last,
            collected,
            then_catalog,
        });
    }
    if !collected.is_empty() {
        if let Some(offered) = validator.offer_policies(&collected) {
            if !offered.accepted.is_empty() {
                info!(%peer, versions = ?offered.accepted, "policy sync: caught up");
            }
            if let Some(e) = offered.error {
                warn!(%peer, "policy sync: refused: {e}");
            }
        }
    }
    then_catalog.then_some(SyncState::Catalog {
        peer,
        pages: 0,
        cursor: None,
    })
}

/// A page of the peer's catalog, as it came.
#[derive(Debug)]
pub(super) struct CatalogPage {
    peer: PeerId,
    pages: u32,
    cursor: Option<CatalogCursor>,
    entries: Vec<Vec<u8>>,
    more: bool,
}

impl CatalogPage {
    /// The entries read (a longer page is cut to the most a page may hold).
    fn entries(&self) -> &[Vec<u8>] {
        &self.entries[..self.entries.len().min(usize::from(MAX_CATALOG_PAGE))]
    }

    /// The next page's step, while the peer has more, the cursor moves forward
    /// (to this page's last entry that decodes, valid or not) and the page budget
    /// lasts, so a hostile peer cannot keep us paging forever.
    fn next(&self) -> Option<SyncState> {
        let last = self.entries().iter().rev().find_map(|bytes| {
            Signed::<Announcement>::from_bytes(bytes)
                .and_then(|s| s.value())
                .ok()
                .map(|a| (a.product, a.version))
        });
        let going = self.more
            && moved_past(last.as_ref(), self.cursor.as_ref())
            && self.pages + 1 < MAX_CATALOG_PAGES;
        going.then(|| SyncState::Catalog {
            peer: self.peer,
            pages: self.pages + 1,
            cursor: last,
        })
    }

    /// Offers every entry of `pages` in one batch (their signature checks spread
    /// over the cores with no pause between pages), pushing recent new versions
    /// onto `spread` (to be gossiped on), and logs what came of each page.
    pub(super) fn offer_all(
        pages: Vec<CatalogPage>,
        validator: &Validator,
        spread: &mut Vec<Vec<u8>>,
    ) {
        let mut entries = Vec::new();
        let mut ends = Vec::with_capacity(pages.len());
        for mut page in pages {
            page.entries.truncate(usize::from(MAX_CATALOG_PAGE));
            entries.append(&mut page.entries);
            ends.push((page.peer, entries.len()));
        }
        let mut outcomes = validator.offer_announcements(&entries).into_iter();
        let mut start = 0;
        for (peer, end) in ends {
            let page = entries.get(start..end).unwrap_or_default();
            tally(
                peer,
                page,
                outcomes.by_ref().take(page.len()),
                validator,
                spread,
            );
            start = end;
        }
    }
}

/// Logs what came of a page's entries (`outcomes`, in order), pushing recent new
/// versions onto `spread`, at most [`MAX_SPREAD_PER_PAGE`].
fn tally(
    peer: PeerId,
    page: &[Vec<u8>],
    outcomes: impl Iterator<Item = PageOffer>,
    validator: &Validator,
    spread: &mut Vec<Vec<u8>>,
) {
    let (mut new, mut rejected, mut failed) = (0usize, 0usize, 0usize);
    let now = unix_now_ms();
    let spread_before = spread.len();
    for (bytes, (offered, decoded)) in page.iter().zip(outcomes) {
        match offered {
            Ok(Offer::New) => {
                new += 1;
                if decoded.as_ref().is_some_and(|a| {
                    worth_spreading(a.issued_at_ms, now, spread.len() - spread_before)
                }) {
                    spread.push(bytes.clone());
                }
            }
            Ok(_) => {}
            Err(OfferError::Invalid(e)) => {
                rejected += 1;
                debug!(%peer, "catalog sync: rejected entry: {e}");
            }
            Err(OfferError::OverLimit(e)) => {
                validator.metrics.over_limit.inc();
                debug!(%peer, "catalog sync: over the domain limits: {e}");
            }
            Err(e) => {
                failed += 1;
                validator.metrics.not_kept.inc();
                debug!(%peer, "catalog sync: could not keep an entry: {e}");
            }
        }
    }
    if rejected > 0 {
        warn!(%peer, rejected, "catalog sync: peer sent entries that failed verification");
    }
    if failed > 0 {
        warn!(%peer, failed, "catalog sync: entries could not be stored here");
    }
    if new > 0 {
        info!(%peer, new, "catalog sync: learned product versions");
    }
}

/// A page of the peer's records of one kind (providers, usage, access requests,
/// access decisions, in that order).
fn records_page(
    peer: PeerId,
    kind: RecordKind,
    pages: u32,
    cursor: Option<String>,
    response: Option<Response>,
    validator: &Validator,
) -> Option<SyncState> {
    let Some(Response::Records { entries, more }) = response else {
        debug!(%peer, ?kind, "record sync: no page");
        return None;
    };
    let now = unix_now_ms();
    let (mut new, mut rejected) = (0usize, 0usize);
    let mut last = None;
    for bytes in entries.iter().take(usize::from(MAX_RECORD_PAGE)) {
        let (outcome, owner) = match kind {
            RecordKind::Providers => (
                validator.providers.accept(bytes, now),
                record_owner::<mesh_protocol::provider::ProviderRecord>(bytes, |r| r.peer),
            ),
            RecordKind::Usage => (
                validator.usage.accept(bytes),
                record_owner::<mesh_protocol::usage::UsageReport>(bytes, |r| r.provider),
            ),
            RecordKind::AccessRequests => (
                validator.access.accept_request(bytes),
                record_owner::<AccessRequest>(bytes, |r| r.key()),
            ),
            RecordKind::AccessDecisions => (
                validator.access.accept_decision(bytes),
                record_owner::<AccessDecision>(bytes, |d| d.key()),
            ),
        };
        match outcome {
            Ok(true) => new += 1,
            Ok(false) => {}
            Err(OfferError::Invalid(e)) => {
                rejected += 1;
                debug!(%peer, ?kind, "record sync: rejected entry: {e}");
            }
            Err(e) => {
                validator.metrics.not_kept.inc();
                debug!(%peer, ?kind, "record sync: could not keep an entry: {e}");
            }
        }
        if owner.is_some() {
            last = owner;
        }
    }
    if rejected > 0 {
        warn!(%peer, ?kind, rejected, "record sync: peer sent records that failed verification");
    }
    if new > 0 {
        debug!(%peer, ?kind, new, "record sync: learned records");
    }
    let progressed = match (&last, &cursor) {
        (Some(l), Some(c)) => l > c,
        (Some(_), None) => true,
        _ => false,
    };
    if more && progressed && pages + 1 < MAX_RECORD_PAGES {
        return Some(SyncState::Records {
            peer,
            kind,
            pages: pages + 1,
            cursor: last,
        });
    }
    // Providers, then usage, then access requests and decisions.
    let next = match kind {
        RecordKind::Providers => RecordKind::Usage,
        RecordKind::Usage => RecordKind::AccessRequests,
        RecordKind::AccessRequests => RecordKind::AccessDecisions,
        RecordKind::AccessDecisions => return None,
    };
    Some(SyncState::Records {
        peer,
        kind: next,
        pages: 0,
        cursor: None,
    })
}

/// Whether a catalog page whose last entry is `last` moved past `cursor`, in the
/// order a peer serves pages in: the bytes of the catalog key, not semver (which
/// puts `1.10.0` after `1.9.0`, where the key puts it before) nor the id's own
/// order (`a-b/x` sorts before `a/x` as a key). Comparing in semver order ended a
/// sync of 2,000 versions of one product after the first page that wrapped.
fn moved_past(last: Option<&CatalogCursor>, cursor: Option<&CatalogCursor>) -> bool {
    match (last, cursor) {
        (Some(l), Some(c)) => entry_key(&l.0, &l.1) > entry_key(&c.0, &c.1),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The store key (peer id) of a record envelope: where the next page resumes.
fn record_owner<T: mesh_protocol::SignedKind>(
    bytes: &[u8],
    owner: impl FnOnce(T) -> String,
) -> Option<String> {
    Signed::<T>::from_bytes(bytes)
        .and_then(|s| s.value())
        .ok()
        .map(owner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::catalog::page_of;
    use mesh_storage::{MemStore, MetaStore, Tree};
    use proptest::prelude::*;

    /// A version from a few numbers: `1.10.0` and `1.9.0` alike, pre-releases
    /// (`1.0.0-rc.10` before `1.0.0-rc.9` as bytes) and build metadata.
    fn version() -> impl Strategy<Value = semver::Version> {
        (0u64..3, 0u64..120, 0u64..12, 0u8..6).prop_map(|(major, minor, patch, kind)| {
            let text = match kind {
                0 => format!("{major}.{minor}.{patch}-rc.{minor}"),
                1 => format!("{major}.{minor}.{patch}-alpha"),
                2 => format!("{major}.{minor}.{patch}+build.{patch}"),
                _ => format!("{major}.{minor}.{patch}"),
            };
            text.parse().expect("a valid version")
        })
    }

    /// Product ids whose domains and names are prefixes of each other (`a`,
    /// `a-b`, `ab`), so key order and the id's own order differ.
    fn product() -> impl Strategy<Value = ProductId> {
        let parts = ["a", "a-b", "ab", "a0", "sales", "sales-eu"];
        (0..parts.len(), 0..parts.len()).prop_map(move |(d, n)| {
            format!("{}/{}", parts[d], parts[n])
                .parse()
                .expect("a valid id")
        })
    }

    /// Pages through `store` as a syncing node does: each page after the last
    /// entry of the one before, while more follow and the cursor moves.
    fn sync_all(store: &dyn MetaStore, limit: usize) -> Vec<CatalogCursor> {
        let (mut got, mut cursor) = (Vec::new(), None::<CatalogCursor>);
        for _ in 0..MAX_CATALOG_PAGES {
            let (entries, more) = page_of(store, cursor.as_ref(), limit).expect("a page");
            let page: Vec<CatalogCursor> = entries
                .iter()
                .map(|v| serde_json::from_slice(v).expect("an entry"))
                .collect();
            let last = page.last().cloned();
            got.extend(page);
            if !(more && moved_past(last.as_ref(), cursor.as_ref())) {
                break;
            }
            cursor = last;
        }
        got
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn catalog_sync_converges_on_every_entry_whatever_the_version_order(
            entries in proptest::collection::btree_set((product(), version()), 10_000..12_000),
            // At least 3 a page: the sync stops after MAX_CATALOG_PAGES pages (4,096),
            // which a page of 1 or 2 would reach before 12,000 entries.
            limit in prop_oneof![Just(256usize), 3usize..300],
        ) {
            let store = MemStore::default();
            for (id, v) in &entries {
                let value = serde_json::to_vec(&(id, v)).expect("json");
                store.put(Tree::Announcements, &entry_key(id, v), &value).expect("put");
            }
            let mut got = sync_all(&store, limit);
            got.sort();
            let want: Vec<CatalogCursor> = entries.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn two_thousand_versions_of_one_product_sync_whole() {
        // The case real use found: 2,000 versions of one product, 256 a page.
        let store = MemStore::default();
        let id: ProductId = "sales/orders".parse().expect("id");
        for minor in 0..2000 {
            let v: semver::Version = format!("1.{minor}.0").parse().expect("version");
            let value = serde_json::to_vec(&(&id, &v)).expect("json");
            store
                .put(Tree::Announcements, &entry_key(&id, &v), &value)
                .expect("put");
        }
        assert_eq!(sync_all(&store, 256).len(), 2000);
    }

    #[test]
    fn only_recent_versions_are_spread_and_at_most_a_page_budget() {
        let now = 100 * SPREAD_RECENT_MS;
        assert!(worth_spreading(now, now, 0));
        assert!(worth_spreading(now - SPREAD_RECENT_MS, now, 0));
        assert!(!worth_spreading(now - SPREAD_RECENT_MS - 1, now, 0));
        // Issued "in the future" by a skewed clock is recent.
        assert!(worth_spreading(now + 5_000, now, 0));
        assert!(worth_spreading(now, now, MAX_SPREAD_PER_PAGE - 1));
        assert!(!worth_spreading(now, now, MAX_SPREAD_PER_PAGE));
    }
}
