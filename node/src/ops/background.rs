//! The daemon's background work: fetching the manifests of newly announced products
//! (so every node can show their contracts and flag rule violations without a data
//! fetch), gossiping this node's usage report shortly after its counts change, and
//! its provider record when what it holds or its addresses change (and every
//! [`PROVIDER_REFRESH_MS`], so others know it is still there).

use futures::StreamExt;
use mesh_protocol::Announcement;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use mesh_protocol::provider::PROVIDER_REFRESH_MS;

use super::fetch::{FetchError, Fetcher};
use crate::clock::unix_now_ms;
use crate::net::NetworkHandle;
use crate::state::catalog::Catalog;
use crate::state::providers::Providers;
use crate::state::subscriptions::SubscriptionBook;
use crate::state::usage::UsageLedger;
use crate::state::StateError;
use crate::task::blocking;

/// Announcements waiting for their manifest to be prefetched, at most.
pub(crate) const PREFETCH_QUEUE: usize = 1024;
/// Manifest prefetches in flight at once.
const PREFETCH_CONCURRENCY: usize = 4;
/// How long after a count changes the report goes out (changes in between share it).
const REPORT_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Fetches the manifests of the announcements arriving on `rx`, until shutdown.
pub(crate) async fn prefetch_manifests(
    fetcher: Fetcher,
    rx: mpsc::Receiver<Announcement>,
    shutdown: CancellationToken,
) {
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|a| (a, rx)) });
    let work = stream.for_each_concurrent(PREFETCH_CONCURRENCY, |a| {
        let fetcher = fetcher.clone();
        async move {
            // A catch-up first: its signature checks take the cores, and the
            // catalog it completes is what the manifests are shown beside.
            fetcher.net.catalog_synced().await;
            match fetcher.prefetch_manifest(&a).await {
                Ok(()) => {}
                // The rules keep its contract (and so its lineage) from this node.
                Err(FetchError::Denied(e)) => {
                    tracing::debug!(product = %a.product, "manifest prefetch denied: {e}");
                    fetcher.catalog.note_unreadable(a.product.clone());
                }
                Err(e) => tracing::debug!(product = %a.product, "manifest prefetch: {e}"),
            }
        }
    });
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = work => {}
    }
}

/// Gossips a signed usage report shortly after counts change, until shutdown.
pub(crate) async fn usage_reports(
    ledger: UsageLedger,
    net: NetworkHandle,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ledger.changed() => {}
        }
        tokio::time::sleep(REPORT_DEBOUNCE).await;
        let l = ledger.clone();
        match blocking(move || Ok::<_, ReportError>(l.sign_report()?)).await {
            Ok(Some(envelope)) => {
                if let Err(e) = net.gossip_usage(envelope).await {
                    warn!("gossiping usage: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => warn!("signing a usage report: {e}"),
        }
    }
}

/// Signs and gossips this node's provider record at start, shortly after what it
/// holds, follows or listens on changes, and every [`PROVIDER_REFRESH_MS`], until
/// shutdown.
pub(crate) async fn provider_records(
    providers: Providers,
    catalog: Catalog,
    subscriptions: SubscriptionBook,
    net: NetworkHandle,
    shutdown: CancellationToken,
) {
    let refresh = std::time::Duration::from_millis(PROVIDER_REFRESH_MS);
    let (holdings, follows) = (catalog.holdings(), subscriptions.changes());
    loop {
        // Registered before the record is read, so a change while it is signed
        // brings the next one.
        let (held_changed, follows_changed) = (holdings.notified(), follows.notified());
        tokio::pin!(held_changed, follows_changed);
        held_changed.as_mut().enable();
        follows_changed.as_mut().enable();
        let addrs = match net.advertised_addrs().await {
            Ok(a) => a.iter().map(|a| a.to_string()).collect(),
            Err(_) => return,
        };
        let (p, c, subs) = (providers.clone(), catalog.clone(), subscriptions.clone());
        let signed = blocking(move || {
            Ok::<_, ReportError>(p.sign_own(c.held()?, addrs, subs.follows()?, unix_now_ms())?)
        });
        match signed.await {
            Ok(envelope) => {
                if let Err(e) = net.gossip_providers(envelope).await {
                    warn!("gossiping the provider record: {e}");
                }
            }
            Err(e) => warn!("signing the provider record: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = held_changed => {}
            _ = follows_changed => {}
            _ = net.addrs_changed() => {}
            _ = tokio::time::sleep(refresh) => {}
        }
        tokio::time::sleep(REPORT_DEBOUNCE).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
}

/// How often sealed packs are looked for to offload (`[storage] url`).
const OFFLOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Offloads the chunk store's sealed packs to object storage (when `[storage]
/// url` is set) every [`OFFLOAD_EVERY`], until shutdown. A failure is logged and
/// tried again: the pack stays local meanwhile.
pub(crate) async fn offload_packs(
    chunks: std::sync::Arc<mesh_storage::ChunkStore>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(OFFLOAD_EVERY) => {}
        }
        let c = chunks.clone();
        match blocking(move || Ok::<_, crate::error::NodeError>(c.offload_packs()?)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(packs = n, "offloaded sealed packs to object storage"),
            Err(e) => warn!("offloading packs: {e}"),
        }
    }
}
