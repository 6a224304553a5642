//! The catalog as a consumer sees it: each product's newest version judged for SLA
//! and lineage health (`mesh_contract::health`) from this node's catalog, manifests
//! and connected providers.

use std::collections::HashSet;

use mesh_contract::health::{judge, lineage, newest_versions, Lineage};
use mesh_protocol::ProductId;

use crate::net::{NetError, NetworkHandle};
use crate::state::catalog::{Catalog, CatalogEntry, Filter};
use crate::state::StateError;
use crate::task::{blocking, TaskError};

/// Listing or judging the catalog failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The product asked about is not in the catalog.
    #[error("{0} is not in the catalog; see `mesh products`")]
    NotInCatalog(ProductId),
    /// This node's state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The network loop failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}

/// The catalog filtered by `filter`, each product's newest version annotated with
/// its health at `now` (unix seconds), counting providers reachable from `net`.
pub(crate) async fn products_at(
    catalog: &Catalog,
    net: &NetworkHandle,
    filter: Filter,
    now: u64,
) -> Result<Vec<CatalogEntry>, DiscoverError> {
    let connected: HashSet<String> = net.peers().await?.into_iter().map(|p| p.peer_id).collect();
    let me = net.peer_id().to_string();
    let catalog = catalog.clone();
    blocking(move || {
        let all = catalog.list(&Default::default())?;
        let mut entries = catalog.list(&filter)?;
        let newest = newest_versions(all.iter().map(|e| &e.announcement));
        for e in entries.iter_mut() {
            let a = &e.announcement;
            let is_newest = newest
                .get(&a.product.to_string())
                .is_some_and(|n| n.version == a.version);
            if !is_newest {
                continue;
            }
            let manifest = catalog.manifest(&a.manifest).ok().flatten().map(|(_, m)| m);
            let listed = a
                .providers
                .iter()
                .filter(|p| connected.contains(*p) || (**p == me && e.local))
                .count();
            let me_unlisted = e.local && !a.providers.contains(&me);
            let reachable = listed + usize::from(me_unlisted);
            e.health = Some(judge(a, manifest.as_ref(), &newest, reachable, now));
        }
        Ok(entries)
    })
    .await
}

/// The lineage graph of `product` from the manifests this node knows.
pub(crate) async fn lineage_of(
    catalog: &Catalog,
    product: &ProductId,
) -> Result<Lineage, DiscoverError> {
    let catalog = catalog.clone();
    let id = product.clone();
    let root = product.to_string();
    blocking(move || {
        let all = catalog.list(&Default::default())?;
        if !all
            .iter()
            .any(|e| e.announcement.product.to_string() == root)
        {
            return Err(DiscoverError::NotInCatalog(id));
        }
        Ok(lineage(&root, all.iter().map(|e| &e.announcement), |a| {
            let (_, m) = catalog.manifest(&a.manifest).ok().flatten()?;
            Some(
                m.lineage
                    .iter()
                    .map(|u| (u.id.to_string(), u.manifest))
                    .collect(),
            )
        }))
    })
    .await
}
