//! Anti-entropy by digest: gossip lost on the way (a full substream queue, a
//! stalled node) is not sent again, so every tick the event loop asks one
//! connected peer, in turn, for its catalog digest ([`Request::Digest`]: how many
//! versions and the XOR of their keys' hashes) and pulls its catalog (the ordinary
//! sync) only when the peer holds at least as many versions as this node, the
//! digests differ, and the peer's digest changed since its catalog was last
//! pulled. So a version any connected peer holds is repaired within one round of
//! asks (connected peers x the tick, at most 64 x 2 s), an idle mesh exchanges
//! only digests, and a peer that lags behind is not pulled again and again.
//!
//! [`Request::Digest`]: mesh_protocol::wire::Request::Digest

use std::collections::HashMap;

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use mesh_protocol::wire::Response;
use mesh_protocol::Hash;

use crate::state::digest::CatalogDigest;

/// Digest asks and what they led to (`I`: the request id type).
#[derive(Debug)]
pub(super) struct AntiEntropy<I = OutboundRequestId> {
    /// The digest request in flight, if any, and whom it asked.
    asked: Option<(I, PeerId)>,
    /// Each connected peer's digest when its catalog was last pulled for a
    /// difference.
    pulled: HashMap<PeerId, Hash>,
    /// Whose turn is next.
    turn: usize,
}

impl<I> Default for AntiEntropy<I> {
    fn default() -> Self {
        AntiEntropy {
            asked: None,
            pulled: HashMap::new(),
            turn: 0,
        }
    }
}

impl<I: Copy + PartialEq> AntiEntropy<I> {
    /// The peer to ask next among `peers` (connected, in a stable order), unless a
    /// digest request is still in flight.
    pub(super) fn next_peer(&mut self, peers: &[PeerId]) -> Option<PeerId> {
        self.pulled.retain(|p, _| peers.contains(p));
        if self.asked.is_some() || peers.is_empty() {
            return None;
        }
        let peer = peers[self.turn % peers.len()];
        self.turn = self.turn.wrapping_add(1);
        Some(peer)
    }

    /// Records the digest request sent to `peer`.
    pub(super) fn sent(&mut self, id: I, peer: PeerId) {
        self.asked = Some((id, peer));
    }

    /// The peer asked by request `id`, if `id` is the digest request in flight
    /// (which it then no longer is).
    pub(super) fn answered(&mut self, id: I) -> Option<PeerId> {
        match self.asked {
            Some((asked, peer)) if asked == id => {
                self.asked = None;
                Some(peer)
            }
            _ => None,
        }
    }

    /// Whether to pull `peer`'s catalog, given its answer and this node's digest
    /// (`None` while it is still being built: nothing is decided then).
    pub(super) fn should_pull(
        &mut self,
        peer: PeerId,
        answer: &Response,
        ours: Option<CatalogDigest>,
    ) -> bool {
        let (Response::Digest { versions, digest }, Some(ours)) = (answer, ours) else {
            return false;
        };
        if *digest == ours.hash() || *versions < ours.versions {
            return false;
        }
        if self.pulled.get(&peer) == Some(digest) {
            return false;
        }
        self.pulled.insert(peer, *digest);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::digest::Digest;

    fn digest(keys: &[&str]) -> CatalogDigest {
        let mut d = Digest::default();
        keys.iter().for_each(|k| d.add(k.as_bytes(), 0));
        d.get()
    }

    fn answer(d: CatalogDigest) -> Response {
        Response::Digest {
            versions: d.versions,
            digest: d.hash(),
        }
    }

    #[test]
    fn a_peer_is_pulled_once_per_difference_and_never_when_it_holds_less() {
        let mut ae = AntiEntropy::<u32>::default();
        let peer = PeerId::random();
        let ours = digest(&["a", "b"]);
        // The same catalog: nothing to pull.
        assert!(!ae.should_pull(peer, &answer(ours), Some(ours)));
        // The peer holds one more: pulled, once.
        let more = digest(&["a", "b", "c"]);
        assert!(ae.should_pull(peer, &answer(more), Some(ours)));
        assert!(!ae.should_pull(peer, &answer(more), Some(ours)));
        // It learned another since: pulled again.
        let again = digest(&["a", "b", "c", "d"]);
        assert!(ae.should_pull(peer, &answer(again), Some(ours)));
        // A peer holding fewer, a busy answer, or our digest not built yet: no.
        let other = PeerId::random();
        assert!(!ae.should_pull(other, &answer(digest(&["a"])), Some(ours)));
        assert!(!ae.should_pull(other, &Response::Busy, Some(ours)));
        assert!(!ae.should_pull(other, &answer(more), None));
        // As many as ours but different versions: pulled.
        assert!(ae.should_pull(other, &answer(digest(&["a", "x"])), Some(ours)));
    }

    #[test]
    fn peers_are_asked_in_turn_one_at_a_time() {
        let mut ae = AntiEntropy::<u32>::default();
        let peers = [PeerId::random(), PeerId::random()];
        let first = ae.next_peer(&peers).unwrap();
        ae.sent(7, first);
        assert_eq!(ae.next_peer(&peers), None, "one ask in flight at a time");
        assert_eq!(ae.answered(8), None);
        assert_eq!(ae.answered(7), Some(first));
        let second = ae.next_peer(&peers).unwrap();
        assert_ne!(first, second, "the next peer in turn");
    }
}
