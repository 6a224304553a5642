//! The daemon's background work: fetching the manifests of newly announced products
//! (so every node can show their contracts and flag rule violations without a data
//! fetch), and gossiping this node's usage report shortly after its counts change.

use futures::StreamExt;
use mesh_protocol::Announcement;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::fetch::Fetcher;
use crate::net::NetworkHandle;
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
            if let Err(e) = fetcher.prefetch_manifest(&a).await {
                tracing::debug!(product = %a.product, "manifest prefetch: {e}");
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

#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
}
