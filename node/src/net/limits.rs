//! Resource limits on what peers may ask of a node: the `[limits]` section of
//! `config.toml`, and the per-peer accounting the network loop applies to every
//! inbound transfer request.
//!
//! Each peer has a token bucket (`requests_per_second`, up to `request_burst` at
//! once) and a cap on reads (manifests and chunks) in flight (`transfers_per_peer`);
//! the node also caps reads across all peers. A request past any of these is answered
//! `Busy`, which costs the node almost nothing and tells an honest fetcher to back
//! off. New connections are refused while the process uses more than
//! `max_memory_mib` of memory.

use std::collections::HashMap;
use std::time::Instant;

use crate::home::config::Limits;
use libp2p::PeerId;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The peer's token bucket is empty.
    Rate,
    /// The peer has `transfers_per_peer` reads in flight.
    InFlight,
}

/// One peer's standing.
#[derive(Debug)]
struct PeerState {
    tokens: f64,
    refilled: Instant,
    in_flight: u32,
}

/// Per-peer request accounting. Entries exist for connected peers and for peers
/// with reads still in flight, so the map is bounded by the connection limit.
#[derive(Debug)]
pub(crate) struct PeerLimiter {
    limits: Limits,
    peers: HashMap<PeerId, PeerState>,
}

impl PeerLimiter {
    pub(crate) fn new(limits: Limits) -> Self {
        PeerLimiter {
            limits,
            peers: HashMap::new(),
        }
    }

    fn state(&mut self, peer: PeerId, now: Instant) -> &mut PeerState {
        let burst = f64::from(self.limits.request_burst);
        self.peers.entry(peer).or_insert(PeerState {
            tokens: burst,
            refilled: now,
            in_flight: 0,
        })
    }

    /// Takes a token for one request from `peer` at `now`.
    pub(crate) fn admit(&mut self, peer: PeerId, now: Instant) -> Result<(), Refusal> {
        let (rate, burst) = (
            f64::from(self.limits.requests_per_second),
            f64::from(self.limits.request_burst),
        );
        let state = self.state(peer, now);
        let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(burst);
        state.refilled = now;
        if state.tokens < 1.0 {
            return Err(Refusal::Rate);
        }
        state.tokens -= 1.0;
        Ok(())
    }

    /// Starts a read for `peer`, unless it already has its share in flight.
    pub(crate) fn begin_transfer(&mut self, peer: PeerId, now: Instant) -> Result<(), Refusal> {
        let cap = self.limits.transfers_per_peer;
        let state = self.state(peer, now);
        if state.in_flight >= cap {
            return Err(Refusal::InFlight);
        }
        state.in_flight += 1;
        Ok(())
    }

    /// Ends a chunk read started with [`PeerLimiter::begin_transfer`].
    pub(crate) fn end_transfer(&mut self, peer: &PeerId) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }

    /// Forgets a peer that has disconnected. Its reads still in flight keep their
    /// entry until they end; a peer that reconnects at once to reset its bucket
    /// finds a full one, which the connection limits already bound.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        if self.peers.get(peer).is_some_and(|s| s.in_flight == 0) {
            self.peers.remove(peer);
        }
    }

    /// Peers tracked (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(rate: u32, burst: u32, per_peer: u32) -> PeerLimiter {
        PeerLimiter::new(Limits {
            requests_per_second: rate,
            request_burst: burst,
            transfers_per_peer: per_peer,
            ..Limits::default()
        })
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let mut l = limiter(10, 5, 4);
        let (peer, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.admit(peer, t0), Ok(()));
        }
        assert_eq!(l.admit(peer, t0), Err(Refusal::Rate));
        // Another peer has its own bucket.
        assert_eq!(l.admit(other, t0), Ok(()));
        // A tenth of a second refills one token; a long pause refills only the burst.
        assert_eq!(l.admit(peer, t0 + Duration::from_millis(100)), Ok(()));
        assert_eq!(
            l.admit(peer, t0 + Duration::from_millis(100)),
            Err(Refusal::Rate)
        );
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(l.admit(peer, later), Ok(()));
        }
        assert_eq!(l.admit(peer, later), Err(Refusal::Rate));
    }

    #[test]
    fn transfers_in_flight_are_capped_per_peer_and_released() {
        let mut l = limiter(10, 5, 2);
        let (peer, other) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        assert_eq!(l.begin_transfer(peer, now), Ok(()));
        assert_eq!(l.begin_transfer(peer, now), Ok(()));
        assert_eq!(l.begin_transfer(peer, now), Err(Refusal::InFlight));
        assert_eq!(l.begin_transfer(other, now), Ok(()));
        l.end_transfer(&peer);
        assert_eq!(l.begin_transfer(peer, now), Ok(()));
    }

    #[test]
    fn disconnected_peers_are_forgotten_once_idle() {
        let mut l = limiter(10, 5, 2);
        let peer = PeerId::random();
        let now = Instant::now();
        l.begin_transfer(peer, now).unwrap();
        l.forget(&peer);
        assert_eq!(l.tracked(), 1, "a read in flight keeps the entry");
        l.end_transfer(&peer);
        l.forget(&peer);
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn zero_limits_are_refused_with_a_hint() {
        let bad = Limits {
            request_burst: 0,
            ..Limits::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("request_burst"), "{err}");
        Limits::default().validate().unwrap();
    }
}
