//! The catalog listing a page at a time: the keys the filter keeps are collected
//! and sorted first (small: a 100,000-product catalog's are a few MB), then each
//! page of entries is read and judged when the reader asks for it, on the blocking
//! pool, holding the index only while it does. A listing of the whole catalog
//! never sits in memory whole, and a slow reader holds up no writer.

use std::collections::BTreeMap;

use mesh_protocol::{Announcement, ProductId};

use super::error::DiscoverError;
use super::view::{annotate, newest_known, ProviderView};
use crate::state::catalog::{Catalog, CatalogEntry, Filter, FilterParts};
use crate::state::StateError;
use crate::task::blocking;

/// Entries judged per page.
pub(super) const PAGE: usize = 1000;

/// A listing under way: the keys still to read, in the listing's order.
pub(crate) struct Pages {
    catalog: Catalog,
    view: std::sync::Arc<ProviderView>,
    keys: std::vec::IntoIter<Vec<u8>>,
    now: u64,
}

impl Pages {
    /// Starts listing the entries `filter` keeps, sorted by product id then
    /// version (as `sort_entries` sorts), each product's newest version annotated
    /// with its health at `now` and its providers (see `products_at`).
    pub(crate) async fn start(
        catalog: Catalog,
        view: ProviderView,
        filter: Filter,
        now: u64,
    ) -> Result<Pages, DiscoverError> {
        let keys = sorted_keys(&catalog, filter).await?;
        Ok(Pages {
            catalog,
            view: std::sync::Arc::new(view),
            keys: keys.into_iter(),
            now,
        })
    }

    /// The next page of at most [`PAGE`] entries; `None` once every one was read.
    /// An entry removed since the listing started is left out.
    pub(crate) async fn next(&mut self) -> Option<Result<Vec<CatalogEntry>, DiscoverError>> {
        let page: Vec<Vec<u8>> = self.keys.by_ref().take(PAGE).collect();
        if page.is_empty() {
            return None;
        }
        let (catalog, view, now) = (self.catalog.clone(), self.view.clone(), self.now);
        Some(blocking(move || judge(&catalog, &view, &page, now)).await)
    }
}

/// The catalog keys of the entries `filter` keeps, sorted by product id then
/// version (as `sort_entries` sorts).
pub(super) async fn sorted_keys(
    catalog: &Catalog,
    filter: Filter,
) -> Result<Vec<Vec<u8>>, DiscoverError> {
    let reader = catalog.clone();
    blocking(move || {
        let parts = FilterParts::of(&filter);
        reader
            .with_index(|index| {
                let mut keys: Vec<(&ProductId, &semver::Version, &Vec<u8>)> = index
                    .iter()
                    .filter(|(_, i)| parts.matches(i))
                    .map(|(k, i)| (&i.announcement.product, &i.announcement.version, k))
                    .collect();
                keys.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                keys.into_iter()
                    .map(|(_, _, k)| k.clone())
                    .collect::<Vec<_>>()
            })
            .map_err(DiscoverError::from)
    })
    .await
}

/// The entries of `keys`, each product's newest version annotated. The newest
/// version of each product and of its upstreams (lineage health) is found by one
/// range of the index; the store is read for these entries only.
fn judge(
    catalog: &Catalog,
    view: &ProviderView,
    keys: &[Vec<u8>],
    now: u64,
) -> Result<Vec<CatalogEntry>, DiscoverError> {
    catalog
        .with_index(|index| {
            let mut newest = BTreeMap::new();
            let mut entries = Vec::with_capacity(keys.len());
            for i in keys.iter().filter_map(|k| index.get(k)) {
                let a = &i.announcement;
                let is_newest = newest_known(index, &mut newest, a.product.to_string())
                    .is_some_and(|n| n.version == a.version);
                let mut e = catalog.entry_of(Announcement::clone(a))?;
                if is_newest {
                    let manifest = catalog.manifest(&a.manifest).ok().flatten().map(|(_, m)| m);
                    for u in manifest.iter().flat_map(|m| m.lineage.iter()) {
                        newest_known(index, &mut newest, u.id.to_string());
                    }
                    annotate(&mut e, manifest.as_ref(), &newest, view, now);
                }
                entries.push(e);
            }
            Ok::<_, StateError>(entries)
        })?
        .map_err(DiscoverError::from)
}
