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

/// A provider with batches in flight that has answered nothing for this many of
/// its per-batch times (and at least [`MIN_STALL`]) is stalled (stopped with
/// SIGSTOP, a dead link): no batch goes to it and none waits for it until it
/// answers again.
const STALL_FACTOR: u32 = 8;
/// The shortest silence taken for a stall.
const MIN_STALL: std::time::Duration = std::time::Duration::from_millis(250);

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
    /// Since when it has had batches in flight and answered none.
    quiet_since: Option<std::time::Instant>,
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

    /// A batch sent to it now.
    pub(super) fn reserve(&mut self) {
        self.load += 1;
        self.quiet_since.get_or_insert_with(std::time::Instant::now);
    }

    /// Whether it has had batches in flight and answered none for too long (see
    /// [`STALL_FACTOR`]); a provider not timed yet is never waited for anyway.
    pub(super) fn stalled(&self, now: std::time::Instant) -> bool {
        let limit = std::time::Duration::from_micros(self.per_batch_us)
            .saturating_mul(STALL_FACTOR)
            .max(MIN_STALL);
        self.load > 0
            && self.per_batch_us > 0
            && self
                .quiet_since
                .is_some_and(|t| now.saturating_duration_since(t) > limit)
    }

    /// Something came back (or stopped being awaited): the silence ends.
    fn heard(&mut self) {
        self.quiet_since = (self.load > 0).then(std::time::Instant::now);
    }

    /// A request whose answer is no longer awaited (the other of a hedged pair won).
    pub(super) fn abandoned(&mut self) {
        self.load = self.load.saturating_sub(1);
        if self.load == 0 {
            self.quiet_since = None;
        }
    }

    /// An answer came back: a good one widens the window (up to its cap), a bad or
    /// busy one halves it.
    pub(super) fn answered(&mut self, good: bool) {
        self.load = self.load.saturating_sub(1);
        self.heard();
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
            quiet_since: None,
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
            quiet_since: None,
        }
    }
}

/// Of `providers` (in the order that breaks ties), the one with a free slot that is
/// expected to answer a batch first, unless a provider at its window would still
/// answer sooner once a slot frees (then `None`: wait for it). A provider not timed
/// yet is tried when it has a slot, and is not waited for when it has none. A
/// stalled provider (silent too long at `now`) is neither chosen nor waited for.
pub(super) fn first_to_answer<'a>(
    providers: impl Iterator<Item = (PeerId, &'a Slots)>,
    now: std::time::Instant,
) -> Option<PeerId> {
    let (mut free, mut full): (Option<(u64, PeerId)>, Option<u64>) = (None, None);
    for (p, s) in providers.filter(|(_, s)| !s.stalled(now)) {
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
            quiet_since: (load > 0).then(std::time::Instant::now),
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
        let now = std::time::Instant::now();
        for (i, (providers, expected)) in cases.iter().enumerate() {
            let got = first_to_answer(providers.iter().map(|(p, s)| (*p, s)), now);
            assert_eq!(got, *expected, "case {i}");
        }
    }

    /// Regression: a fast provider stopped with SIGSTOP mid-fetch kept its window
    /// full and its small per-batch time, so every batch waited for it (10-16 s
    /// instead of 1 s, until its requests timed out).
    #[test]
    fn a_stalled_provider_is_neither_chosen_nor_waited_for() {
        let (stopped, slow) = (PeerId::random(), PeerId::random());
        let t0 = std::time::Instant::now();
        let providers = [(stopped, slots(16, 16, 5)), (slow, slots(0, 4, 200))];
        let pick = |at| first_to_answer(providers.iter().map(|(p, s)| (*p, s)), at);
        // Just now it would answer first: wait for it.
        assert_eq!(pick(t0), None);
        // Silent past the limit (8 x 5 ms, at least 250 ms): go to the slow one.
        let later = t0 + MIN_STALL + std::time::Duration::from_millis(10);
        assert!(providers[0].1.stalled(later));
        assert_eq!(pick(later), Some(slow));
        // An answer ends the silence.
        let mut back = slots(16, 16, 5);
        back.answered(true);
        assert!(!back.stalled(std::time::Instant::now()));
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
