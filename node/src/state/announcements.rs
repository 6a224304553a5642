//! Every announcement of the catalog, decoded once and kept in memory, with the
//! lowercased text a search reads: listing, searching and finding the newest
//! versions read this instead of decoding the whole store each time (at 100,000
//! products, two decodes of the store were most of `mesh products --search`).
//!
//! Loaded from the store on first use; the catalog inserts every announcement it
//! stores afterwards (its one write path, `Catalog::offer`), so the two agree. A
//! reader may briefly see the store ahead of the index, never the reverse.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_protocol::Announcement;

use super::loaded::LoadedOnUse;

/// One announcement and its search text.
#[derive(Debug)]
pub(crate) struct Indexed {
    /// The announcement (shared with the web catalog's listing, which keeps each
    /// product's newest without a copy).
    pub(crate) announcement: Arc<Announcement>,
    /// `id title tags`, lowercased.
    haystack: Box<str>,
}

impl Indexed {
    fn new(announcement: Announcement) -> Self {
        let a = &announcement;
        let haystack = format!(
            "{} {} {}",
            a.product,
            a.summary.title,
            a.summary.tags.join(" ")
        )
        .to_lowercase();
        Indexed {
            announcement: Arc::new(announcement),
            haystack: haystack.into_boxed_str(),
        }
    }

    /// Whether it passes a filter whose parts are already lowercased: the domain,
    /// a tag (exact), a text contained in id, title or tags.
    pub(crate) fn matches(&self, domain: Option<&str>, tag: Option<&str>, q: Option<&str>) -> bool {
        domain.is_none_or(|d| self.announcement.product.domain().as_str() == d)
            && tag.is_none_or(|t| {
                // Lowercased here, not kept: a tag filter is rare, and a second
                // copy of every tag was a tenth of the index at 100,000 products.
                let tags = &self.announcement.summary.tags;
                tags.iter().any(|x| x.to_lowercase() == t)
            })
            && q.is_none_or(|q| self.haystack.contains(q))
    }
}

/// Catalog key -> announcement.
pub(crate) type ByKey = BTreeMap<Vec<u8>, Indexed>;

/// Every version of product `id` in `index`, read without the rest: a product's
/// versions are one run of keys, `{id}\0{version}`.
pub(crate) fn versions_of<'a>(
    index: &'a ByKey,
    id: &str,
) -> impl Iterator<Item = &'a Announcement> {
    let mut prefix = Vec::with_capacity(id.len() + 1);
    prefix.extend_from_slice(id.as_bytes());
    prefix.push(0);
    index
        .range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
        .map(|(_, i)| &*i.announcement)
}

/// The newest version (semver order) of product `id` in `index`.
pub(crate) fn newest_of<'a>(index: &'a ByKey, id: &str) -> Option<&'a Announcement> {
    versions_of(index, id).reduce(|best, a| if a.version > best.version { a } else { best })
}

/// The index, or nothing until it is loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnnouncementIndex {
    inner: LoadedOnUse<ByKey>,
}

impl AnnouncementIndex {
    /// `f` over every announcement in key order (product id, then version as
    /// stored), loading the index with `load` first if it is not yet.
    pub(crate) fn read<R, E>(
        &self,
        load: impl FnOnce() -> Result<Vec<(Vec<u8>, Announcement)>, E>,
        f: impl FnOnce(&ByKey) -> R,
    ) -> Result<R, E> {
        self.inner.read(
            || {
                Ok(load()?
                    .into_iter()
                    .map(|(k, a)| (k, Indexed::new(a)))
                    .collect())
            },
            f,
        )
    }

    /// Whether a key is in the index; `None` while the index is not loaded.
    pub(crate) fn contains(&self, key: &[u8]) -> Option<bool> {
        self.inner.peek(|map| map.contains_key(key))
    }

    /// Records a stored announcement (if the index is loaded; else the load will
    /// read it from the store).
    pub(crate) fn insert(&self, key: Vec<u8>, announcement: Announcement) {
        self.inner.update(|map| {
            map.insert(key, Indexed::new(announcement));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::announcement::{Summary, ANNOUNCEMENT_FORMAT};
    use mesh_protocol::manifest::{Classification, Status};
    use mesh_protocol::{KeyPair, ManifestHash};

    fn announcement(id: &str, title: &str, tags: &[&str]) -> (Vec<u8>, Announcement) {
        let a = Announcement {
            format: ANNOUNCEMENT_FORMAT,
            product: id.parse().unwrap(),
            version: semver::Version::new(1, 0, 0),
            manifest: ManifestHash::of(id.as_bytes()),
            summary: Summary {
                title: title.into(),
                status: Status::Active,
                classification: Classification::Internal,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                owner_team: "team".into(),
                size: 1,
                files: 1,
            },
            providers: vec![],
            issued_at_ms: 1,
            publisher: KeyPair::generate().public(),
        };
        (format!("{id}\0001.0.0").into_bytes(), a)
    }

    fn ids(
        index: &AnnouncementIndex,
        d: Option<&str>,
        t: Option<&str>,
        q: Option<&str>,
    ) -> Vec<String> {
        index
            .read(
                || Ok::<_, ()>(Vec::new()),
                |m| {
                    m.values()
                        .filter(|i| i.matches(d, t, q))
                        .map(|i| i.announcement.product.to_string())
                        .collect()
                },
            )
            .unwrap()
    }

    #[test]
    fn loads_once_then_follows_inserts_and_searches_lowercased_text() {
        let index = AnnouncementIndex::default();
        // Not loaded: an insert waits for the load, which reads the store.
        let (k, a) = announcement("sales/orders", "Daily Orders", &["Daily"]);
        index.insert(k.clone(), a.clone());
        let mut loads = 0;
        let n = index
            .read(
                || {
                    loads += 1;
                    Ok::<_, ()>(vec![(k.clone(), a.clone())])
                },
                |m| m.len(),
            )
            .unwrap();
        assert_eq!((n, loads), (1, 1));
        let n = index
            .read(
                || {
                    loads += 1;
                    Ok::<_, ()>(Vec::new())
                },
                |m| m.len(),
            )
            .unwrap();
        assert_eq!((n, loads), (1, 1), "loaded once");
        let (k2, a2) = announcement("finance/ledger", "General ledger", &["monthly"]);
        index.insert(k2, a2);
        assert_eq!(ids(&index, None, None, None).len(), 2);
        assert_eq!(ids(&index, None, None, Some("orders")), ["sales/orders"]);
        assert_eq!(ids(&index, None, Some("daily"), None), ["sales/orders"]);
        assert_eq!(
            ids(&index, Some("finance"), None, Some("ledger")),
            ["finance/ledger"]
        );
        assert!(ids(&index, Some("sales"), None, Some("ledger")).is_empty());
    }

    /// The newest version of one product is found by its own run of keys, in semver
    /// order (not the keys' text order), and never from a product whose id merely
    /// starts with the same text.
    #[test]
    fn newest_of_reads_one_products_versions_in_semver_order() {
        let mut index = ByKey::new();
        for (id, v) in [
            ("sales/orders", "1.9.0"),
            ("sales/orders", "1.10.0"),
            ("sales/orders", "1.2.0"),
            ("sales/orders-eu", "9.0.0"),
            ("sales/order", "3.0.0"),
        ] {
            let (_, mut a) = announcement(id, "t", &[]);
            a.version = v.parse().unwrap();
            index.insert(format!("{id}\0{v}").into_bytes(), Indexed::new(a));
        }
        let newest = |id: &str| newest_of(&index, id).map(|a| a.version.to_string());
        assert_eq!(newest("sales/orders").as_deref(), Some("1.10.0"));
        assert_eq!(newest("sales/order").as_deref(), Some("3.0.0"));
        assert_eq!(newest("sales/orders-eu").as_deref(), Some("9.0.0"));
        assert_eq!(newest("sales/ord"), None);
    }
}
