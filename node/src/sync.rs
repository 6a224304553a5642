//! Pull sync on connect: first the peer's newer policies (so that announcements from
//! newly registered keys verify), then its catalog, page by page.
//!
//! Policy pages are collected and offered to the chain together, because only the
//! newest policy of a catch-up must be unexpired. Both syncs are bounded: at most
//! [`MAX_POLICY_PAGES`] policy pages and [`MAX_CATALOG_PAGES`] catalog pages per
//! connection, and a catalog cursor that does not advance ends the sync.

use libp2p::PeerId;
use mesh_protocol::wire::{Request, Response, MAX_CATALOG_PAGE, MAX_POLICY_PAGE};
use mesh_protocol::{Announcement, Policy, ProductId, Signed};
use tracing::{debug, info, warn};

use crate::catalog::Offer;
use crate::network::EventLoop;

/// Catalog pages fetched from one peer per connection, at most (256 entries each).
const MAX_CATALOG_PAGES: u32 = 4096;
/// Policy pages fetched from one peer per sync, at most (16 versions each).
const MAX_POLICY_PAGES: u32 = 64;

type CatalogCursor = (ProductId, semver::Version);

/// A sync request in flight.
#[derive(Debug)]
pub(crate) enum SyncState {
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
}

impl EventLoop {
    /// Starts the connect-time sync with `peer`.
    pub(crate) fn start_sync(&mut self, peer: PeerId) {
        self.start_policy_sync(peer, true);
    }

    pub(crate) fn start_policy_sync(&mut self, peer: PeerId, then_catalog: bool) {
        let after = self.shared.governance.version();
        self.request_policies(peer, after, 0, Vec::new(), then_catalog);
    }

    fn request_policies(
        &mut self,
        peer: PeerId,
        after: u64,
        pages: u32,
        collected: Vec<Signed<Policy>>,
        then_catalog: bool,
    ) {
        let id = self.swarm.behaviour_mut().transfer.send_request(
            &peer,
            Request::Policies {
                after,
                limit: MAX_POLICY_PAGE,
            },
        );
        self.syncing.insert(
            id,
            SyncState::Policies {
                peer,
                pages,
                after,
                collected,
                then_catalog,
            },
        );
    }

    fn request_catalog_page(&mut self, peer: PeerId, pages: u32, cursor: Option<CatalogCursor>) {
        let id = self.swarm.behaviour_mut().transfer.send_request(
            &peer,
            Request::Catalog {
                after: cursor.clone(),
                limit: MAX_CATALOG_PAGE,
            },
        );
        self.syncing.insert(
            id,
            SyncState::Catalog {
                peer,
                pages,
                cursor,
            },
        );
    }

    /// Handles a sync response (`None`: the request failed).
    pub(crate) fn on_sync_response(&mut self, state: SyncState, response: Option<Response>) {
        match state {
            SyncState::Policies {
                peer,
                pages,
                after,
                mut collected,
                then_catalog,
            } => {
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
                    self.request_policies(peer, last, pages + 1, collected, then_catalog);
                    return;
                }
                if !collected.is_empty() {
                    if let Some(offered) = self.offer_policies(&collected) {
                        if !offered.accepted.is_empty() {
                            info!(%peer, versions = ?offered.accepted, "policy sync: caught up");
                        }
                        if let Some(e) = offered.error {
                            warn!(%peer, "policy sync: refused: {e}");
                        }
                    }
                }
                if then_catalog {
                    self.request_catalog_page(peer, 0, None);
                }
            }
            SyncState::Catalog {
                peer,
                pages,
                cursor,
            } => {
                let Some(Response::Catalog { entries, more }) = response else {
                    debug!(%peer, "catalog sync: no page");
                    return;
                };
                let mut new = 0usize;
                let mut rejected = 0usize;
                let mut last = None;
                for bytes in entries.iter().take(usize::from(MAX_CATALOG_PAGE)) {
                    match self.shared.catalog.offer(bytes) {
                        Ok(Offer::New) => {
                            new += 1;
                            self.queue_prefetch(bytes);
                        }
                        Ok(_) => {}
                        Err(rejection) => {
                            rejected += 1;
                            debug!(%peer, "catalog sync: rejected entry: {rejection}");
                        }
                    }
                    if let Ok(a) = Signed::<Announcement>::from_bytes(bytes).and_then(|s| s.value())
                    {
                        last = Some((a.product, a.version));
                    }
                }
                if rejected > 0 {
                    warn!(%peer, rejected, "catalog sync: peer sent entries that failed verification");
                }
                if new > 0 {
                    info!(%peer, new, "catalog sync: learned product versions");
                }
                // Continue only while the cursor moves forward and within the page
                // budget, so a hostile peer cannot keep us paging forever.
                let progressed = match (&last, &cursor) {
                    (Some(l), Some(c)) => l > c,
                    (Some(_), None) => true,
                    _ => false,
                };
                if more && progressed && pages + 1 < MAX_CATALOG_PAGES {
                    self.request_catalog_page(peer, pages + 1, last);
                }
            }
        }
    }
}
