//! Admission of inbound transfer requests under the limits of `net::limits`.
//!
//! Every request first takes a token from its peer's bucket. Catalog and policy
//! pages are then answered at once. Reads (manifests, which can be megabytes to
//! decode and re-encode, and chunks) run on the blocking pool and also need one of
//! the peer's `transfers_per_peer` slots and one of the node's [`MAX_INBOUND_READS`]
//! permits; both are held until the response has been written to the peer or has
//! failed ([`Admission::finish`]), so a peer that asks and never reads ties up at
//! most its own slots, and the node buffers at most that many responses for it. A
//! request past a limit is answered `Busy` and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use libp2p::request_response::InboundRequestId;
use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::home::config::Limits;
use crate::metrics::Metrics;
use crate::net::limits::PeerLimiter;

/// Inbound reads in flight at once, across all peers.
pub(crate) const MAX_INBOUND_READS: usize = 64;

/// The accounting of inbound requests: per-peer buckets and slots, the overall
/// read permits, and the reads admitted whose responses are not yet written.
#[derive(Debug)]
pub(crate) struct Admission {
    limiter: PeerLimiter,
    reads: Arc<Semaphore>,
    serving: HashMap<InboundRequestId, (PeerId, OwnedSemaphorePermit)>,
    metrics: Metrics,
}

impl Admission {
    pub(crate) fn new(limits: Limits, metrics: Metrics) -> Self {
        Admission {
            limiter: PeerLimiter::new(limits),
            reads: Arc::new(Semaphore::new(MAX_INBOUND_READS)),
            serving: HashMap::new(),
            metrics,
        }
    }

    /// Whether `peer` may make a request now (its token bucket); counts a refusal.
    pub(crate) fn admit(&mut self, peer: PeerId) -> bool {
        match self.limiter.admit(peer, Instant::now()) {
            Ok(()) => true,
            Err(refusal) => {
                debug!(%peer, ?refusal, "request refused by the per-peer rate limit");
                self.metrics.refused_requests.inc();
                false
            }
        }
    }

    /// Whether `peer` may start the read `request_id` now (its slots and the
    /// node's permits); if so, holds both until [`Admission::finish`]. Counts a
    /// refusal.
    pub(crate) fn begin_read(&mut self, peer: PeerId, request_id: InboundRequestId) -> bool {
        if let Err(refusal) = self.limiter.begin_transfer(peer, Instant::now()) {
            debug!(%peer, ?refusal, "read refused: the peer has its share in flight");
            self.metrics.refused_requests.inc();
            return false;
        }
        let Ok(permit) = self.reads.clone().try_acquire_owned() else {
            self.limiter.end_transfer(&peer);
            self.metrics.refused_requests.inc();
            return false;
        };
        self.serving.insert(request_id, (peer, permit));
        self.metrics.reads_in_flight.inc();
        true
    }

    /// Releases what a read held, once its response is sent or has failed.
    pub(crate) fn finish(&mut self, request_id: InboundRequestId) {
        if let Some((peer, _permit)) = self.serving.remove(&request_id) {
            self.limiter.end_transfer(&peer);
            self.metrics.reads_in_flight.dec();
        }
    }

    /// Forgets a disconnected peer's bucket once it has nothing in flight.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.limiter.forget(peer);
    }
}
