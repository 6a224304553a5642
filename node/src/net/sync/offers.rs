//! Catalog pages offered off the event loop, one at a time, in the order they came.
//!
//! A late joiner's catalog sync is mostly signature checks (100,000 entries at
//! 30-50 µs each). Offered on the event loop, each page held the loop for its whole
//! check, and the next page's request, though queued before, reached the peer only
//! when the loop next polled the swarm: a quarter of the sync went to waiting for
//! pages. Here one worker task offers the pages on the blocking pool, every page
//! waiting at once as one batch
//! ([`Catalog::offer_page`](crate::state::catalog::Catalog::offer_page) spreads
//! a batch's checks over the cores; a batch per page left the cores idle at each
//! page's end), while the loop goes on asking for pages, at most [`AHEAD`] of them
//! waiting to be offered; past that, a sync's next page is deferred until one
//! before it has been offered, so memory stays bounded and the worker always has
//! the next pages at hand.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use super::{CatalogPage, SyncState};
use crate::net::gossip::Validator;

/// Pages handed to the worker and not yet offered, past which a sync asks for its
/// next page only when one of them has been offered (a page is 256 entries of at
/// most a few KiB each); also the most pages offered as one batch.
const AHEAD: usize = 4;
/// Pages the worker's queue holds (more than [`AHEAD`]: several syncs may run at
/// once); a page that finds it full is offered on the loop.
const QUEUE: usize = 8;

/// A page to offer, and the step its sync takes once it is offered.
struct Job {
    page: CatalogPage,
    then: Option<SyncState>,
}

/// A page offered: the envelopes of recent versions it taught this node (to be
/// gossiped on), and its sync's next step, if any.
#[derive(Debug)]
pub(crate) struct Offered {
    pub(crate) spread: Vec<Vec<u8>>,
    pub(crate) then: Option<SyncState>,
}

impl Offered {
    /// Offers `page` here and now.
    fn now(page: CatalogPage, then: Option<SyncState>, validator: &Validator) -> Self {
        let mut spread = Vec::new();
        CatalogPage::offer_all(vec![page], validator, &mut spread);
        Offered { spread, then }
    }
}

/// The sync worker, as the event loop sees it.
#[derive(Debug)]
pub(crate) struct PageOffers {
    /// For the pages offered on the loop (a full queue).
    validator: Validator,
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Offered>,
    /// Pages handed over whose [`Offered`] has not been taken.
    queued: usize,
    /// Next pages to ask for once fewer than [`AHEAD`] pages wait (one per sync
    /// at most: a sync asks for a page only when the one before has come).
    deferred: VecDeque<SyncState>,
    worker: JoinHandle<()>,
}

impl PageOffers {
    /// Starts the worker (on the current tokio runtime).
    pub(crate) fn start(validator: Validator) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let (done_tx, done) = mpsc::channel(QUEUE);
        let worker = tokio::spawn(work(queue, done_tx, validator.clone()));
        PageOffers {
            validator,
            jobs,
            done,
            queued: 0,
            deferred: VecDeque::new(),
            worker,
        }
    }

    /// Keeps a sync's next page step until it may be asked ([`PageOffers::ready`]).
    pub(crate) fn defer(&mut self, next: SyncState) {
        self.deferred.push_back(next);
    }

    /// A deferred step that may be asked now: fewer than [`AHEAD`] pages wait.
    pub(crate) fn ready(&mut self) -> Option<SyncState> {
        if self.queued < AHEAD {
            self.deferred.pop_front()
        } else {
            None
        }
    }

    /// Whether no page is waiting to be offered or asked for (no sync's catalog
    /// step is under way here).
    pub(crate) fn idle(&self) -> bool {
        self.queued == 0 && self.deferred.is_empty()
    }

    /// Hands `page` to the worker; `then` comes back with its [`Offered`]. A full
    /// queue (or a stopped worker) has the page offered here and now instead: its
    /// [`Offered`] is returned.
    pub(crate) fn submit(&mut self, page: CatalogPage, then: Option<SyncState>) -> Option<Offered> {
        match self.jobs.try_send(Job { page, then }) {
            Ok(()) => {
                self.queued += 1;
                None
            }
            Err(e) => {
                let Job { page, then } = e.into_inner();
                Some(Offered::now(page, then, &self.validator))
            }
        }
    }

    /// The next page offered (cancel-safe: nothing is lost if another branch of a
    /// `select!` wins). Pending forever while nothing is queued.
    pub(crate) async fn offered(&mut self) -> Option<Offered> {
        let offered = self.done.recv().await;
        if offered.is_some() {
            self.queued = self.queued.saturating_sub(1);
        }
        offered
    }

    /// Stops the worker after the page it is offering; pages still queued are
    /// dropped (the next sync asks for them again).
    pub(crate) async fn stop(self) {
        let PageOffers {
            jobs, done, worker, ..
        } = self;
        drop(jobs);
        drop(done);
        if let Err(e) = worker.await {
            warn!("catalog sync worker: {e}");
        }
    }
}

/// The worker: takes every page waiting (at most [`AHEAD`]), offers them as one
/// batch on the blocking pool, and sends back one [`Offered`] per page, in order,
/// until the loop goes.
async fn work(mut queue: mpsc::Receiver<Job>, done: mpsc::Sender<Offered>, validator: Validator) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < AHEAD {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (pages, thens): (Vec<_>, Vec<_>) = jobs.into_iter().map(|j| (j.page, j.then)).unzip();
        let v = validator.clone();
        let offered = tokio::task::spawn_blocking(move || {
            let mut spread = Vec::new();
            CatalogPage::offer_all(pages, &v, &mut spread);
            spread
        })
        .await;
        // Pages whose offer failed are skipped: their syncs go on.
        let mut spread = offered.unwrap_or_else(|e| {
            warn!("catalog sync: offering pages failed: {e}");
            Vec::new()
        });
        for then in thens {
            let spread = std::mem::take(&mut spread);
            if done.send(Offered { spread, then }).await.is_err() {
                return;
            }
        }
    }
}
