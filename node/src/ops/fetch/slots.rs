//! One provider's share of a fetch: its window of batches in flight, how long it
//! takes per batch, and which provider a batch should go to.

use libp2p::PeerId;

/// Batch requests in flight to one provider at once, at most. Each provider starts
/// at [`INITIAL_PEER_WINDOW`]; every good answer widens its window by one, a busy or
/// failed one halves it. Each batch goes where it is expected to be answered first
/// (see [`Slots::eta_us`]), so a faster provider takes more of the work and a slow
/// one holds no more batches than it can answer while the fast ones answer theirs.
pub(super) const PEER_WINDOW: usize = 16;
/// A provider's window before it has answered.
const INITIAL_PEER_WINDOW: usize = 2;

/// The window of a provider reached only through a relay: one batch (1 MiB) in
/// flight at a time, so a relay's bandwidth and its per-circuit byte cap are spent
/// on what no direct provider can serve.
pub(super) const RELAYED_WINDOW: usize = 1;

/// One provider's share of a fetch's requests.
pub(super) struct Slots {
    /// Batches in flight to it now.
    pub(super) load: usize,
    /// Batches it may have in flight.
    pub(super) window: usize,
    /// The most its window may grow to.
    cap: usize,
    /// A moving average of the time this provider takes per batch, in microseconds
    /// (0: not answered yet): an answer's time divided by the batches that were in
    /// flight to it when it was asked, since they share its link.
    per_batch_us: u64,
}

impl Slots {
    /// When a batch asked now would be answered, in microseconds: after the batches
    /// already in flight and itself. 0 for a provider not timed yet, so each is
    /// tried.
    pub(super) fn eta_us(&self) -> u64 {
        (self.load as u64 + 1).saturating_mul(self.per_batch_us)
    }

    /// Folds a good answer's time into the per-batch average (weight 1/4).
    pub(super) fn paced(&mut self, took: std::time::Duration, in_flight: usize) {
        let us = (took.as_micros() / in_flight.max(1) as u128).min(u128::from(u32::MAX)) as u64;
        let old = self.per_batch_us;
        self.per_batch_us = if old == 0 { us } else { (old * 3 + us) / 4 }.max(1);
    }

    /// A request whose answer is no longer awaited (the other of a hedged pair won).
    pub(super) fn abandoned(&mut self) {
        self.load = self.load.saturating_sub(1);
    }

    /// An answer came back: a good one widens the window (up to its cap), a bad or
    /// busy one halves it.
    pub(super) fn answered(&mut self, good: bool) {
        self.load = self.load.saturating_sub(1);
        self.window = if good {
            (self.window + 1).min(self.cap)
        } else {
            (self.window / 2).max(1)
        };
    }

    /// The slots of a provider reached only through a relay.
    pub(super) fn relayed() -> Self {
        Slots {
            load: 0,
            window: RELAYED_WINDOW,
            cap: RELAYED_WINDOW,
            per_batch_us: 0,
        }
    }
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            load: 0,
            window: INITIAL_PEER_WINDOW,
            cap: PEER_WINDOW,
            per_batch_us: 0,
        }
    }
}

/// Of `providers` (in the order that breaks ties), the one with a free slot that is
/// expected to answer a batch first, unless a provider at its window would still
/// answer sooner once a slot frees (then `None`: wait for it). A provider not timed
/// yet is tried when it has a slot, and is not waited for when it has none.
pub(super) fn first_to_answer<'a>(
    providers: impl Iterator<Item = (PeerId, &'a Slots)>,
) -> Option<PeerId> {
    let (mut free, mut full): (Option<(u64, PeerId)>, Option<u64>) = (None, None);
    for (p, s) in providers {
        let eta = s.eta_us();
        if s.load < s.window {
            if free.is_none_or(|(best, _)| eta < best) {
                free = Some((eta, p));
            }
        } else if s.per_batch_us > 0 {
            full = Some(full.map_or(eta, |best| best.min(eta)));
        }
    }
    free.filter(|(eta, _)| full.is_none_or(|f| *eta <= f))
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(load: usize, window: usize, per_batch_ms: u64) -> Slots {
        Slots {
            load,
            window,
            cap: PEER_WINDOW,
            per_batch_us: per_batch_ms * 1000,
        }
    }

    /// A batch goes where it is expected to be answered first: a slow provider
    /// (200 ms a batch) takes one while the fast one (20 ms a batch, 16 in flight)
    /// would answer later, but not a second that would come after the fast one's
    /// next free slot; equal providers share by order; a provider not timed yet is
    /// tried, and never waited for (it once held every batch back until its first
    /// answer, 0.6 s on a 5 MB/s link).
    #[test]
    fn batches_go_where_they_are_answered_first() {
        let (fast, slow, new) = (PeerId::random(), PeerId::random(), PeerId::random());
        let cases = [
            (
                vec![(fast, slots(16, 16, 20)), (slow, slots(0, 4, 200))],
                Some(slow),
            ),
            (
                vec![(fast, slots(16, 16, 20)), (slow, slots(1, 4, 200))],
                None,
            ),
            (
                vec![(fast, slots(3, 16, 20)), (slow, slots(0, 4, 200))],
                Some(fast),
            ),
            (
                vec![(slow, slots(0, 4, 20)), (fast, slots(0, 4, 20))],
                Some(slow),
            ),
            (
                vec![(new, slots(2, 2, 0)), (fast, slots(5, 16, 20))],
                Some(fast),
            ),
            (
                vec![(fast, slots(5, 16, 20)), (new, slots(0, 2, 0))],
                Some(new),
            ),
            (vec![(fast, slots(16, 16, 20))], None),
        ];
        for (i, (providers, expected)) in cases.iter().enumerate() {
            let got = first_to_answer(providers.iter().map(|(p, s)| (*p, s)));
            assert_eq!(got, *expected, "case {i}");
        }
    }

    #[test]
    fn a_relayed_provider_keeps_one_batch_in_flight_and_a_direct_one_grows() {
        let (mut direct, mut relayed) = (Slots::default(), Slots::relayed());
        for _ in 0..40 {
            direct.load += 1;
            direct.answered(true);
            relayed.load += 1;
            relayed.answered(true);
        }
        assert_eq!(direct.window, PEER_WINDOW);
        assert_eq!(relayed.window, RELAYED_WINDOW);
        direct.answered(false);
        assert_eq!(direct.window, PEER_WINDOW / 2);
        relayed.answered(false);
        assert_eq!(relayed.window, 1, "never below one");
    }
}
