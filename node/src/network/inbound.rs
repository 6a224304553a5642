//! Serving inbound transfer requests under the limits of [`crate::limits`].
//!
//! Every request first takes a token from its peer's bucket. Catalog and policy
//! pages are answered at once from the event loop. Reads (manifests, which can be
//! megabytes to decode and re-encode, and chunks) run on the blocking pool and also
//! need one of the peer's `transfers_per_peer` slots and one of the node's
//! [`MAX_INBOUND_READS`](super::MAX_INBOUND_READS) permits; both are held until the
//! response has been written to the peer or has failed, so a peer that asks and
//! never reads ties up at most its own slots, and the node buffers at most that many
//! responses for it. A request past a limit is answered `Busy`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use libp2p::request_response::{InboundRequestId, ResponseChannel};
use libp2p::PeerId;
use mesh_protocol::wire::{Request, Response};
use tracing::debug;

use super::EventLoop;

/// A read finished on the blocking pool: the request it answers, where to send the
/// answer, and the answer.
pub(super) type Answer = (InboundRequestId, ResponseChannel<Response>, Response);

impl EventLoop {
    pub(super) fn respond(&mut self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self
            .swarm
            .behaviour_mut()
            .transfer
            .send_response(channel, response);
    }

    fn refuse(&mut self, channel: ResponseChannel<Response>) {
        self.shared
            .stats
            .refused_requests
            .fetch_add(1, Ordering::Relaxed);
        self.respond(channel, Response::Busy);
    }

    /// Releases what a read held, once its response is sent or has failed.
    pub(super) fn finish_inbound(&mut self, request_id: InboundRequestId) {
        if let Some((peer, _permit)) = self.serving.remove(&request_id) {
            self.limiter.end_transfer(&peer);
            self.shared
                .stats
                .reads_in_flight
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Sends a finished read; if the peer has gone, releases it now.
    pub(super) fn on_answer(&mut self, (request_id, channel, response): Answer) {
        let sent = self
            .swarm
            .behaviour_mut()
            .transfer
            .send_response(channel, response);
        if sent.is_err() {
            self.finish_inbound(request_id);
        }
    }

    pub(super) fn on_inbound(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        if let Err(refusal) = self.limiter.admit(peer, Instant::now()) {
            debug!(%peer, ?refusal, "request refused by the per-peer rate limit");
            self.refuse(channel);
            return;
        }
        match request {
            Request::Catalog { after, limit } => {
                let response = self.provider.catalog_page(after.as_ref(), limit);
                self.respond(channel, response);
            }
            Request::Policies { after, limit } => {
                let response = self.provider.policies_page(after, limit);
                self.respond(channel, response);
            }
            Request::Manifest(_) | Request::Chunk { .. } | Request::Chunks { .. } => {
                if let Err(refusal) = self.limiter.begin_transfer(peer, Instant::now()) {
                    debug!(%peer, ?refusal, "read refused: the peer has its share in flight");
                    self.refuse(channel);
                    return;
                }
                let Ok(permit) = self.inbound_reads.clone().try_acquire_owned() else {
                    self.limiter.end_transfer(&peer);
                    self.refuse(channel);
                    return;
                };
                self.serving.insert(request_id, (peer, permit));
                self.shared
                    .stats
                    .reads_in_flight
                    .fetch_add(1, Ordering::Relaxed);
                let provider = self.provider.clone();
                let tx = self.responses_tx.clone();
                tokio::spawn(async move {
                    let response = tokio::task::spawn_blocking(move || match request {
                        Request::Manifest(hash) => provider.manifest(&peer, &hash),
                        Request::Chunk { manifest, chunk } => {
                            provider.chunk(&peer, &manifest, &chunk)
                        }
                        Request::Chunks {
                            manifest,
                            chunks,
                            start,
                        } => {
                            let r = provider.chunks(&peer, &manifest, &chunks);
                            if start && matches!(r, Response::Chunks(_)) {
                                provider.count_fetch(&peer, &manifest);
                            }
                            r
                        }
                        _ => Response::Invalid("not a read request".into()),
                    })
                    .await
                    .unwrap_or(Response::Busy);
                    let _ = tx.send((request_id, channel, response)).await;
                });
            }
        }
    }
}
