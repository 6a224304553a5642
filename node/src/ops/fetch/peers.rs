//! Where a fetch gets what it needs: the providers to ask for a version (announced,
//! replicas from provider records, connected peers) and the signed manifest, taken
//! from the first provider whose copy matches its hash and passes governance.

use libp2p::PeerId;
use mesh_protocol::wire::{Request, Response};
use mesh_protocol::{Announcement, Manifest, ProductRef, Signed};
use tracing::{debug, warn};

use super::{schedule, FetchError, Fetcher};
use crate::clock::unix_now_ms;
use crate::state::catalog::CatalogEntry;
use crate::task::blocking;

impl Fetcher {
    /// Providers to ask: those the announcement names and the replicas whose fresh
    /// provider records list the version (connected ones first), then every other
    /// connected peer. Replicas not connected are dialled at the addresses their
    /// records give (with discovery on).
    pub(crate) async fn candidate_providers(
        &self,
        ann: &Announcement,
    ) -> Result<Vec<PeerId>, FetchError> {
        let me = self.net.peer_id();
        let connected: Vec<PeerId> = self
            .net
            .connected()
            .await?
            .into_iter()
            .map(|(peer, _)| peer)
            .collect();
        let holders: Vec<PeerId> = self
            .providers
            .holders(&ann.manifest, unix_now_ms())
            .into_iter()
            .filter(|h| !h.stale)
            .filter_map(|h| h.peer_id.parse().ok())
            .collect();
        let named = ann
            .providers
            .iter()
            .filter_map(|p| p.parse::<PeerId>().ok());
        let mut listed: Vec<PeerId> = Vec::new();
        for p in named.chain(holders) {
            if p != me && !listed.contains(&p) {
                listed.push(p);
            }
        }
        // Connected holders first (no dial), then the others.
        listed.sort_by_key(|p| !connected.contains(p));
        for p in listed.iter().filter(|p| !connected.contains(p)) {
            let addrs = self
                .providers
                .addrs(&p.to_string())
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            self.net.learn_addrs(*p, addrs).await?;
        }
        for p in connected {
            if !listed.contains(&p) {
                listed.push(p);
            }
        }
        Ok(listed)
    }

    /// The catalog entry of `target` and its verified manifest, from the local store
    /// or, without storing it, from a provider.
    pub(crate) async fn describe(
        &self,
        target: &ProductRef,
    ) -> Result<(CatalogEntry, Result<Manifest, FetchError>), FetchError> {
        let entry = self.resolve(target)?;
        let hash = entry.announcement.manifest;
        let manifest = match self.catalog.manifest(&hash)? {
            Some((s, _)) => self
                .governance
                .check_manifest(&s)
                .map_err(FetchError::Rejected),
            None => {
                let providers = self.candidate_providers(&entry.announcement).await?;
                self.fetch_manifest(&hash, &providers).await.map(|(_, m)| m)
            }
        };
        Ok((entry, manifest))
    }

    pub(crate) async fn fetch_manifest(
        &self,
        hash: &mesh_protocol::ManifestHash,
        providers: &[PeerId],
    ) -> Result<(Signed<Manifest>, Manifest), FetchError> {
        let mut tried = Vec::new();
        let mut denials = Vec::new();
        // Providers that could not be reached, or did not hold the manifest yet (a
        // neighbour fetching the same new version at the same moment), are asked
        // again, after a pause, once every other one was tried (see
        // `schedule::MAX_RETRY_ROUNDS`).
        let mut round: Vec<PeerId> = providers.to_vec();
        let mut retry_rounds = 0;
        while !round.is_empty() {
            let mut again = Vec::new();
            for peer in &round {
                let why = match self.net.request(*peer, Request::Manifest(*hash)).await {
                    Ok(Response::Manifest(bytes)) => match Signed::<Manifest>::from_bytes(&bytes) {
                        Ok(s) if s.hash() == *hash => match self.governance.check_manifest(&s) {
                            Ok(m) => {
                                let catalog = self.catalog.clone();
                                let (s2, m2) = (s.clone(), m.clone());
                                blocking(move || {
                                    catalog.record_manifest(&s2, &m2).map_err(FetchError::from)
                                })
                                .await?;
                                return Ok((s, m));
                            }
                            Err(r) => format!("manifest rejected: {r}"),
                        },
                        Ok(_) => "sent a manifest that does not match its hash".into(),
                        Err(e) => format!("sent an undecodable manifest: {e}"),
                    },
                    Ok(Response::Denied { rule, reason }) => {
                        let d = format!("denied by rule {rule}: {reason}");
                        denials.push(d.clone());
                        d
                    }
                    Ok(Response::NotFound) => {
                        again.push(*peer);
                        "does not hold it (yet)".into()
                    }
                    Ok(other) => format!("answered {other:?}"),
                    Err(e) => {
                        if e.is_unreachable() {
                            again.push(*peer);
                        }
                        e.to_string()
                    }
                };
                if again.last() == Some(peer) {
                    debug!(%peer, "manifest {}: {why}; asking again later", hash.short());
                } else {
                    warn!(%peer, "manifest {}: {why}", hash.short());
                }
                // The last answer of each peer.
                tried.retain(|(p, _)| p != peer);
                tried.push((*peer, why));
            }
            if again.is_empty() || retry_rounds == schedule::MAX_RETRY_ROUNDS {
                break;
            }
            retry_rounds += 1;
            tokio::time::sleep(schedule::RETRY_BACKOFF * retry_rounds).await;
            round = again;
        }
        if let Some(first) = denials.first() {
            return Err(FetchError::Denied(format!(
                "{first} ({} of {} provider(s) denied)",
                denials.len(),
                tried.len()
            )));
        }
        Err(FetchError::Unavailable(format!(
            "no provider reachable for manifest {}: tried {} peer(s){}{}; check `mesh peers` and that a provider is running",
            hash.short(),
            tried.len(),
            if tried.is_empty() { "" } else { ": " },
            tried
                .iter()
                .map(|(peer, why)| format!("{peer}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}
