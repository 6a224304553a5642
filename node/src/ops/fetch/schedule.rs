//! The download scheduler of a fetch: chunks grouped into batches, each batch sent to
//! the usable provider with the most free slots in its window, windows that grow with
//! good answers and shrink with bad ones, bans after repeated bad chunks, and retries
//! elsewhere for anything a provider got wrong.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use mesh_protocol::manifest::ChunkRef;
use mesh_protocol::wire::{ChunkData, Request, Response, MAX_BATCH_BYTES, MAX_BATCH_CHUNKS};
use mesh_storage::{assemble, ChunkStore};
use tracing::warn;

use super::error::FetchError;
use super::slots::{first_to_answer, Slots};
use crate::net::transfer::buffers::CHUNK_BUFFERS;
use crate::net::{NetError, NetworkHandle};
use crate::task::blocking;

/// Chunks are asked for in batches of about this many bytes (one request each).
const BATCH_BYTES: u64 = 1 << 20;
/// Batch requests in flight at once for one fetch, at most (and at most
/// [`PEER_WINDOW`](super::slots::PEER_WINDOW) per provider, so no request waits for a slot needlessly). With
/// [`BATCH_BYTES`] this bounds the bytes in flight to about 48 MiB.
pub(super) const WINDOW: usize = 48;
/// `Busy` answers tolerated per chunk before giving up on that provider.
const MAX_BUSY_RETRIES: u32 = 40;
/// Backoff unit after a `Busy` answer (grows linearly, capped at 10 units).
const BUSY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);
/// Rounds of asking again, once every provider was tried, those that could not be
/// reached (a dial that failed, a connection that closed: a relay that refused a
/// circuit for a moment, a link being upgraded by a hole punch) or did not hold the
/// version yet (a replica fetching it right now, as every subscriber of a product
/// does when a version is announced).
pub(super) const MAX_RETRY_ROUNDS: u32 = 3;
/// The pause before such a round (grows linearly).
pub(super) const RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);
/// A batch not answered within this many times the fetch's typical answer time is
/// also asked of another provider with a free slot, if one has; the first good
/// answer wins. Mid-fetch the fast providers' windows are full, so this happens at
/// the tail, where a slow provider would otherwise hold the last batches.
const HEDGE_FACTOR: u64 = 4;
/// Never sooner than this.
const MIN_HEDGE: std::time::Duration = std::time::Duration::from_millis(50);
/// Verification failures after which a provider is dropped for this fetch.
pub(super) const MAX_BAD_CHUNKS: u32 = 3;
/// How often a batch waiting for a slot looks again whether the provider it waits
/// for has stalled (see `slots::Slots::stalled`).
const STALL_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) struct ChunkFetch {
    pub(super) net: NetworkHandle,
    pub(super) chunks: Arc<ChunkStore>,
    pub(super) manifest: mesh_protocol::ManifestHash,
    pub(super) providers: Vec<PeerId>,
    pub(super) bad: Mutex<HashMap<PeerId, u32>>,
    /// Peers that answered `NotFound`: they do not hold this product; not asked again.
    pub(super) lacking: Mutex<std::collections::HashSet<PeerId>>,
    pub(super) used: Mutex<BTreeMap<PeerId, u64>>,
    /// Requests outstanding and window per provider.
    pub(super) inflight: Mutex<HashMap<PeerId, Slots>>,
    /// Signalled whenever a provider slot frees up.
    pub(super) slot_freed: tokio::sync::Notify,
    /// A moving average of good answers' times, in microseconds (0: none yet).
    pub(super) answer_us: AtomicU64,
    pub(super) done: AtomicU64,
    pub(super) transferred: AtomicU64,
    /// Output files written as verified chunks arrive.
    pub(super) output: Option<Arc<assemble::Output>>,
    /// Downloaded chunks go to the output only (see `FetchOptions::in_place`).
    pub(super) in_place: bool,
}

/// Groups chunks, in order, into requests of about [`BATCH_BYTES`] (never more than
/// the protocol's batch limits).
pub(super) fn batches(chunks: Vec<ChunkRef>) -> Vec<Vec<ChunkRef>> {
    let mut out: Vec<Vec<ChunkRef>> = Vec::new();
    let mut bytes = 0u64;
    for c in chunks {
        let len = u64::from(c.len);
        let fits = out.last().is_some_and(|b| {
            b.len() < MAX_BATCH_CHUNKS && bytes < BATCH_BYTES && bytes + len <= MAX_BATCH_BYTES
        });
        if fits {
            bytes += len;
            if let Some(b) = out.last_mut() {
                b.push(c);
            }
        } else {
            bytes = len;
            out.push(vec![c]);
        }
    }
    out
}

/// Whether an answer holds as many chunks as were asked (not yet verified).
fn complete(answer: &Result<Response, crate::net::NetError>, asked: usize) -> bool {
    matches!(answer, Ok(Response::Chunks(d)) if d.len() == asked)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChunkFetch {
    fn usable(&self, peer: &PeerId, tried: &std::collections::HashSet<PeerId>) -> bool {
        !tried.contains(peer)
            && lock(&self.bad).get(peer).copied().unwrap_or(0) < MAX_BAD_CHUNKS
            && !lock(&self.lacking).contains(peer)
    }

    /// Reserves a slot on the usable provider expected to answer first
    /// ([`Slots::eta_us`]), waiting while that is one at its window (its next free
    /// slot still beats every free one) or all are; `None` when none is usable.
    /// `index` breaks ties so equal providers share the work.
    async fn reserve(
        &self,
        index: usize,
        tried: &std::collections::HashSet<PeerId>,
    ) -> Option<PeerId> {
        let n = self.providers.len();
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut inflight = lock(&self.inflight);
                let usable: Vec<PeerId> = (0..n)
                    .map(|k| self.providers[(index + k) % n])
                    .filter(|p| self.usable(p, tried))
                    .collect();
                if usable.is_empty() {
                    return None;
                }
                for p in &usable {
                    inflight.entry(*p).or_default();
                }
                let pick = first_to_answer(
                    usable.iter().filter_map(|p| Some((*p, inflight.get(p)?))),
                    std::time::Instant::now(),
                );
                if let Some(peer) = pick {
                    inflight.entry(peer).or_default().reserve();
                    return Some(peer);
                }
            }
            // A slot frees, or a provider waited for may have stalled meanwhile.
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(STALL_CHECK) => {}
            }
        }
    }

    /// Reserves a slot on a usable provider other than `not` that has one free now,
    /// without waiting.
    fn try_reserve_other(
        &self,
        index: usize,
        tried: &std::collections::HashSet<PeerId>,
        not: &PeerId,
    ) -> Option<PeerId> {
        let n = self.providers.len();
        let mut inflight = lock(&self.inflight);
        let (free, peer) = (0..n)
            .map(|k| self.providers[(index + k) % n])
            .filter(|p| p != not && self.usable(p, tried))
            .map(|p| {
                let s = inflight.entry(p).or_default();
                (s.window.saturating_sub(s.load), p)
            })
            .max_by_key(|(free, _)| *free)?;
        if free == 0 {
            return None;
        }
        inflight.entry(peer).or_default().reserve();
        Some(peer)
    }

    /// Batches in flight to `peer`, this one included.
    fn in_flight(&self, peer: &PeerId) -> usize {
        lock(&self.inflight).get(peer).map_or(1, |s| s.load.max(1))
    }

    /// Times a good answer of `peer`, asked at `asked` with `in_flight` batches out.
    fn paced(&self, peer: &PeerId, asked: std::time::Instant, in_flight: usize) {
        if let Some(s) = lock(&self.inflight).get_mut(peer) {
            s.paced(asked.elapsed(), in_flight);
        }
    }

    /// How long to wait for an answer before hedging, once answers were timed.
    fn hedge_after(&self) -> Option<std::time::Duration> {
        match self.answer_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(std::time::Duration::from_micros(us * HEDGE_FACTOR).max(MIN_HEDGE)),
        }
    }

    /// Folds a good answer's time into the moving average (weight 1/8).
    fn timed(&self, took: std::time::Duration) {
        let us = took.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.answer_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 7 + us) / 8 };
        self.answer_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Sends `request` to `peer` (its slot reserved); if no answer comes within
    /// [`ChunkFetch::hedge_after`] and another provider has a free slot, asks that
    /// one too. Returns who answered and the answer: the first good one, else the
    /// first. The other's slot is freed here; the answerer's is the caller's.
    async fn ask(
        &self,
        index: usize,
        peer: PeerId,
        request: &Request,
        tried: &mut std::collections::HashSet<PeerId>,
        expected: usize,
    ) -> (PeerId, Result<Response, crate::net::NetError>) {
        let good = |a: &Result<Response, crate::net::NetError>| complete(a, expected);
        let started = std::time::Instant::now();
        let queued = self.in_flight(&peer);
        let primary = self.net.request(peer, request.clone());
        tokio::pin!(primary);
        // Until some answer was timed nobody is known to be faster: look again
        // every MIN_HEDGE; then hedge once the answer is overdue and another
        // provider has a free slot.
        let second = loop {
            let wait = self.hedge_after().unwrap_or(MIN_HEDGE);
            tokio::select! {
                answer = &mut primary => {
                    if good(&answer) {
                        self.timed(started.elapsed());
                        self.paced(&peer, started, queued);
                    }
                    return (peer, answer);
                }
                _ = tokio::time::sleep(wait) => {
                    let overdue = self.hedge_after().is_some_and(|h| started.elapsed() >= h);
                    if let Some(other) = overdue
                        .then(|| self.try_reserve_other(index, tried, &peer))
                        .flatten()
                    {
                        break other;
                    }
                }
            }
        };
        tried.insert(second);
        // Only the first request of a fetch counts it as a use (`start`).
        let again = match request.clone() {
            Request::Chunks {
                manifest, chunks, ..
            } => Request::Chunks {
                manifest,
                chunks,
                start: false,
            },
            other => other,
        };
        let (hedged, hedge_queued) = (std::time::Instant::now(), self.in_flight(&second));
        let hedge = self.net.request(second, again);
        tokio::pin!(hedge);
        let (first, answer, rest) = tokio::select! {
            a = &mut primary => (peer, a, second),
            a = &mut hedge => (second, a, peer),
        };
        let pace = |who: &PeerId| {
            if *who == peer {
                self.paced(who, started, queued);
            } else {
                self.paced(who, hedged, hedge_queued);
            }
        };
        if good(&answer) {
            self.timed(started.elapsed());
            pace(&first);
            self.abandon(&rest);
            return (first, answer);
        }
        // The first answer was no good: wait for the other.
        let other = if rest == peer {
            primary.await
        } else {
            hedge.await
        };
        if good(&other) {
            self.timed(started.elapsed());
            pace(&rest);
            self.release(&first, false);
            return (rest, other);
        }
        self.release(&rest, false);
        (first, answer)
    }

    /// Frees the slot of a request whose answer is no longer awaited.
    fn abandon(&self, peer: &PeerId) {
        if let Some(s) = lock(&self.inflight).get_mut(peer) {
            s.abandoned();
        }
        self.slot_freed.notify_waiters();
    }

    /// Frees a slot; a good answer widens the provider's window, a bad one halves it.
    fn release(&self, peer: &PeerId, good: bool) {
        if let Some(s) = lock(&self.inflight).get_mut(peer) {
            s.answered(good);
        }
        self.slot_freed.notify_waiters();
    }

    /// Downloads one batch, verifying and storing each chunk; chunks a provider got
    /// wrong are asked of the next provider.
    pub(super) async fn fetch_batch(
        &self,
        index: usize,
        batch: Vec<ChunkRef>,
    ) -> Result<(), FetchError> {
        let mut remaining = batch;
        let mut at = Attempts::default();
        loop {
            let Some(peer) = self.reserve(index, &at.tried).await else {
                if !at.new_round(&self.lacking) {
                    break;
                }
                tokio::time::sleep(RETRY_BACKOFF * at.retry_rounds).await;
                continue;
            };
            at.tried.insert(peer);
            let request = Request::Chunks {
                manifest: self.manifest,
                chunks: remaining.iter().map(|c| c.hash).collect(),
                start: index == 0,
            };
            let (peer, answer) = self
                .ask(index, peer, &request, &mut at.tried, remaining.len())
                .await;
            let good = complete(&answer, remaining.len());
            self.release(&peer, good);
            let why = match self.judge(peer, answer, &mut remaining, &mut at).await? {
                Verdict::Done => return Ok(()),
                Verdict::Again => continue,
                Verdict::Failed(why) => why,
            };
            warn!(%peer, chunks = remaining.len(), first = %remaining[0].hash.short(), "{why}");
            at.failures.retain(|(p, _)| *p != peer);
            at.failures.push((peer, why));
        }
        Err(at.unavailable(&remaining))
    }

    /// What a provider's answer to a batch means: the batch done, ask again (it
    /// was busy), or why it failed (`remaining` then holds what is still needed;
    /// chunks that failed verification count against the provider).
    async fn judge(
        &self,
        peer: PeerId,
        answer: Result<Response, NetError>,
        remaining: &mut Vec<ChunkRef>,
        at: &mut Attempts,
    ) -> Result<Verdict, FetchError> {
        let why = match answer {
            Ok(Response::Chunks(data)) if data.len() == remaining.len() => {
                let (stored, wrong) = self.store(std::mem::take(remaining), data).await?;
                if stored > 0 {
                    *lock(&self.used).entry(peer).or_default() += stored;
                }
                if wrong.is_empty() {
                    return Ok(Verdict::Done);
                }
                self.count_bad(peer, wrong.len()).await;
                let why = format!(
                    "sent {} chunk(s) that fail BLAKE3 verification",
                    wrong.len()
                );
                *remaining = wrong;
                why
            }
            Ok(Response::Chunks(data)) => {
                *lock(&self.bad).entry(peer).or_default() += 1;
                format!("sent {} chunks, {} were asked", data.len(), remaining.len())
            }
            Ok(Response::NotFound) => {
                lock(&self.lacking).insert(peer);
                at.lacked.push(peer);
                "does not hold it".into()
            }
            Ok(Response::Denied { rule, reason }) => {
                return Err(FetchError::Denied(format!(
                    "denied by rule {rule}: {reason}"
                )));
            }
            Ok(Response::Busy) if at.busy_retries < MAX_BUSY_RETRIES => {
                // The provider is at its concurrency limit: back off, ask again.
                at.busy_retries += 1;
                at.tried.remove(&peer);
                tokio::time::sleep(BUSY_BACKOFF * at.busy_retries.min(10)).await;
                return Ok(Verdict::Again);
            }
            Ok(other) => format!("answered {other:?}"),
            Err(e) => {
                if e.is_unreachable() {
                    at.unreachable.push(peer);
                }
                e.to_string()
            }
        };
        Ok(Verdict::Failed(why))
    }

    /// Counts `n` corrupt chunks against `peer`; at [`MAX_BAD_CHUNKS`] it is
    /// dropped from this fetch and its gossip score penalized.
    async fn count_bad(&self, peer: PeerId, n: usize) {
        let banned_now = {
            let mut bad = lock(&self.bad);
            let count = bad.entry(peer).or_default();
            let before = *count;
            *count += u32::try_from(n).unwrap_or(u32::MAX);
            before < MAX_BAD_CHUNKS && *count >= MAX_BAD_CHUNKS
        };
        if banned_now {
            let _ = self.net.penalize_corrupt_data(peer).await;
        }
    }

    /// Verifies and stores (and writes out) each chunk of an answer. Returns the bytes
    /// stored and the chunks whose bytes were wrong.
    async fn store(
        &self,
        asked: Vec<ChunkRef>,
        data: Vec<ChunkData>,
    ) -> Result<(u64, Vec<ChunkRef>), FetchError> {
        let chunks = self.chunks.clone();
        let output = self.output.clone();
        let in_place = self.in_place;
        let (stored, wrong) = blocking(move || {
            let mut stored = 0u64;
            let mut wrong = Vec::new();
            for (c, d) in asked.into_iter().zip(data) {
                if d.0.len() != c.len as usize {
                    wrong.push(c);
                    continue;
                }
                // In place, the output is the only copy: verified here.
                let put = if in_place {
                    let actual = mesh_protocol::Hash::of(&d.0);
                    if actual == c.hash {
                        Ok(false)
                    } else {
                        Err(mesh_storage::ChunkError::Corrupt {
                            expected: c.hash,
                            actual,
                        })
                    }
                } else {
                    chunks.put_verified(&c.hash, &d.0)
                };
                match put {
                    Ok(_) => {}
                    Err(mesh_storage::ChunkError::Corrupt { .. }) => {
                        wrong.push(c);
                        continue;
                    }
                    Err(e) => return Err(FetchError::from(e)),
                }
                match &output {
                    // Recorded in the store as it lands: kept if the fetch stops.
                    Some(output) if in_place => output.write_referenced(&chunks, &c, &d.0)?,
                    Some(output) => output.write_chunk(&c.hash, &d.0)?,
                    None => {}
                }
                stored += u64::from(c.len);
                CHUNK_BUFFERS.give(d.0);
            }
            Ok((stored, wrong))
        })
        .await?;
        self.done.fetch_add(stored, Ordering::Relaxed);
        self.transferred.fetch_add(stored, Ordering::Relaxed);
        Ok((stored, wrong))
    }
}
/// What a batch's answer means (see `ChunkFetch::judge`).
enum Verdict {
    /// Every chunk is stored.
    Done,
    /// Ask again (the provider was busy).
    Again,
    /// The provider failed the batch, for this reason.
    Failed(String),
}

/// A batch's attempts so far.
#[derive(Default)]
struct Attempts {
    /// Each provider's last failure (retry rounds ask the same ones again).
    failures: Vec<(PeerId, String)>,
    busy_retries: u32,
    /// Providers asked this round.
    tried: std::collections::HashSet<PeerId>,
    /// Providers that could not be reached, or lacked the chunks, this round.
    unreachable: Vec<PeerId>,
    lacked: Vec<PeerId>,
    retry_rounds: u32,
}

impl Attempts {
    /// Starts another round with the providers that were unreachable or lacked
    /// the chunks; false when there are none or the rounds are spent.
    fn new_round(&mut self, lacking: &Mutex<std::collections::HashSet<PeerId>>) -> bool {
        if (self.unreachable.is_empty() && self.lacked.is_empty())
            || self.retry_rounds == MAX_RETRY_ROUNDS
        {
            return false;
        }
        self.retry_rounds += 1;
        for p in self.unreachable.drain(..) {
            self.tried.remove(&p);
        }
        for p in self.lacked.drain(..) {
            self.tried.remove(&p);
            lock(lacking).remove(&p);
        }
        true
    }

    /// The error once no provider is left: each one's last answer.
    fn unavailable(&self, remaining: &[ChunkRef]) -> FetchError {
        let reasons: Vec<String> = self
            .failures
            .iter()
            .map(|(peer, why)| format!("{peer}: {why}"))
            .collect();
        FetchError::Unavailable(format!(
            "no provider reachable for chunk {} ({}); nothing was written. Retry when another provider is up",
            remaining.first().map(|c| c.hash.short()).unwrap_or_default(),
            if reasons.is_empty() { "no usable provider".to_string() } else { reasons.join("; ") }
        ))
    }
}
