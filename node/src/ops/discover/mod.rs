//! The catalog as a consumer sees it: each product's newest version judged for SLA
//! and lineage health (`mesh_contract::health`) from this node's catalog, manifests
//! and providers: the publisher's node and every replica with a provider record.

use std::collections::BTreeMap;
use std::sync::Arc;

use mesh_contract::health::{lineage, Health, Lineage, LineageSource};
use mesh_protocol::manifest::RuleState;
use mesh_protocol::{Announcement, Hash, Manifest, ProductId};

use crate::state::announcements::{newest_of, versions_of, ByKey};
use crate::state::catalog::{Catalog, CatalogEntry, Filter};
use crate::state::declared::Downstreams;
use crate::state::governance::Violation;
use crate::state::StateError;
use crate::task::blocking;

mod error;
mod pages;
mod view;

pub use error::DiscoverError;
pub(crate) use pages::Pages;
use view::annotate;
pub(crate) use view::ProviderView;

/// The catalog filtered by `filter`, each product's newest version annotated with
/// its health at `now` (unix seconds) and its providers, counting as reachable the
/// providers connected to this node (and this node when it holds the version).
pub(crate) async fn products_at(
    catalog: &Catalog,
    view: ProviderView,
    filter: Filter,
    now: u64,
) -> Result<Vec<CatalogEntry>, DiscoverError> {
    let mut pages = Pages::start(catalog.clone(), view, filter, now).await?;
    let mut entries = Vec::new();
    while let Some(page) = pages.next().await {
        entries.extend(page?);
    }
    Ok(entries)
}

/// One product as a catalog browser lists it: its newest version (with health and
/// flags), every version, and what a text search reads beyond the announcement
/// (the description and column names of the newest manifest). Kept for every
/// product by the web catalog, so it holds no more than its pages show.
#[derive(Debug, Clone)]
pub(crate) struct ProductListing {
    /// The newest version's announcement, shared with the catalog's index.
    pub(crate) newest: Arc<Announcement>,
    /// Rules of the current policy the newest version violates.
    pub(crate) flags: Vec<Violation>,
    /// The newest version's SLA, lifecycle and lineage health.
    pub(crate) health: Option<Health>,
    /// Every version, oldest first, in brief (a listing of 100,000 products kept a
    /// whole catalog entry per version: announcement, publisher key, providers).
    pub(crate) versions: Vec<VersionBrief>,
    /// The newest manifest's description (empty when the manifest is unknown).
    pub(crate) description: String,
    /// The newest manifest's column names.
    pub(crate) columns: Vec<String>,
    /// Quality violations and failed quality rules the newest version was published
    /// with (under the policy's `warn` mode).
    pub(crate) quality_problems: usize,
    /// The newest manifest's declared upstreams (`domain/name`, and the manifest
    /// it pins, if any): what a lineage graph is drawn from.
    pub(crate) upstreams: Vec<(String, Option<Hash>)>,
}

/// One version of a product as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionBrief {
    /// Its version.
    pub(crate) version: semver::Version,
    /// The hash naming its signed manifest.
    pub(crate) manifest: Hash,
    /// Unix milliseconds when announced.
    pub(crate) issued_at_ms: u64,
    /// Bytes of data.
    pub(crate) size: u64,
    /// Number of files.
    pub(crate) files: u32,
    /// Lifecycle status.
    pub(crate) status: mesh_protocol::manifest::Status,
    /// Whether this node holds it whole.
    pub(crate) local: bool,
}

impl VersionBrief {
    /// The brief of announcement `a`, as not held here.
    pub(crate) fn of_announcement(a: &Announcement) -> Self {
        VersionBrief {
            version: a.version.clone(),
            manifest: a.manifest,
            issued_at_ms: a.issued_at_ms,
            size: a.summary.size,
            files: a.summary.files,
            status: a.summary.status,
            local: false,
        }
    }
}

/// Every product of the catalog, grouped, sorted by id, with the newest version of
/// each judged at `now`. Read a thousand-odd entries at a time (whole products),
/// so only the listing itself grows with the catalog.
pub(crate) async fn listing(
    catalog: &Catalog,
    view: ProviderView,
    now: u64,
) -> Result<Vec<ProductListing>, DiscoverError> {
    let keys = pages::sorted_keys(catalog, Filter::default()).await?;
    let view = Arc::new(view);
    let mut out = Vec::new();
    let mut rest = keys.as_slice();
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(whole_products(rest, pages::PAGE));
        rest = after;
        let (catalog, view, chunk) = (catalog.clone(), view.clone(), chunk.to_vec());
        out.extend(blocking(move || list_products(&catalog, &view, &chunk, now)).await?);
    }
    // Every entry was read and judged to build it: much freed at once.
    crate::memory::release_freed();
    Ok(out)
}

/// How many of `keys` (catalog keys, `{id}\0{version}`, sorted) make at least
/// `at_least` entries, or all, without splitting a product's versions.
fn whole_products(keys: &[Vec<u8>], at_least: usize) -> usize {
    let product = |k: &[u8]| k.split(|b| *b == 0).next().unwrap_or_default().to_owned();
    let Some(last) = keys.get(at_least.saturating_sub(1)).map(|k| product(k)) else {
        return keys.len();
    };
    let same = |k: &Vec<u8>| k.starts_with(&last) && k.get(last.len()) == Some(&0);
    at_least + keys[at_least..].iter().take_while(|k| same(k)).count()
}

/// The listings of the products whose every version is in `keys` (sorted).
fn list_products(
    catalog: &Catalog,
    view: &ProviderView,
    keys: &[Vec<u8>],
    now: u64,
) -> Result<Vec<ProductListing>, DiscoverError> {
    catalog
        .with_index(|index| {
            let mut newest = BTreeMap::new();
            let mut out = Vec::new();
            let mut versions: Vec<VersionBrief> = Vec::new();
            let entries: Vec<_> = keys.iter().filter_map(|k| index.get(k)).collect();
            for (i, indexed) in entries.iter().enumerate() {
                let a = &indexed.announcement;
                versions.push(VersionBrief {
                    local: catalog.holds(&a.manifest)?,
                    ..VersionBrief::of_announcement(a)
                });
                let last_of_product = entries
                    .get(i + 1)
                    .is_none_or(|next| next.announcement.product != a.product);
                if last_of_product {
                    let mut brief = std::mem::take(&mut versions);
                    brief.shrink_to_fit();
                    out.push(product_listing(
                        catalog,
                        index,
                        &mut newest,
                        view,
                        a,
                        brief,
                        now,
                    )?);
                }
            }
            Ok::<_, StateError>(out)
        })?
        .map_err(DiscoverError::from)
}

/// The listing of the product whose newest version is `a` (its versions
/// `versions`), judged at `now`.
fn product_listing<'a>(
    catalog: &Catalog,
    index: &'a ByKey,
    newest: &mut BTreeMap<String, &'a Announcement>,
    view: &ProviderView,
    a: &'a Arc<Announcement>,
    versions: Vec<VersionBrief>,
    now: u64,
) -> Result<ProductListing, StateError> {
    let manifest = catalog.manifest(&a.manifest).ok().flatten().map(|(_, m)| m);
    for u in manifest.iter().flat_map(|m| m.lineage.iter()) {
        view::newest_known(index, newest, u.id.to_string());
    }
    newest.insert(a.product.to_string(), a);
    let mut top = catalog.entry_of(Announcement::clone(a))?;
    annotate(&mut top, manifest.as_ref(), newest, view, now);
    let m = manifest.as_ref();
    Ok(ProductListing {
        newest: a.clone(),
        flags: top.flags,
        health: top.health,
        versions,
        description: m.map(|m| m.description.clone()).unwrap_or_default(),
        columns: m
            .map(|m| m.schema.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default(),
        upstreams: m.map(upstreams_of).unwrap_or_default(),
        quality_problems: m.and_then(|m| m.quality.as_ref()).map_or(0, |q| {
            q.violations.len()
                + q.rules
                    .iter()
                    .filter(|r| r.state == RuleState::Failed)
                    .count()
        }),
    })
}

/// What `m` declares it is built from: each upstream's id and the manifest it
/// pins, if any.
fn upstreams_of(m: &Manifest) -> Vec<(String, Option<Hash>)> {
    m.lineage
        .iter()
        .map(|u| (u.id.to_string(), u.manifest))
        .collect()
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
        // Loaded first (once; it reads every manifest), so the announcement index
        // is never held while that runs: gossip writes to it.
        catalog.with_declared(|_| ())?;
        catalog.with_index(|index| {
            if newest_of(index, &root).is_none() {
                return Err(DiscoverError::NotInCatalog(id));
            }
            let mut graph = catalog.with_declared(|declared| {
                let source = CatalogSource {
                    index,
                    catalog: &catalog,
                    declared,
                };
                lineage(&root, &source)
            })?;
            graph.hidden = catalog.unreadable_except(&id);
            Ok(graph)
        })?
    })
    .await
}

/// The catalog's index, manifests and reversed lineage as a [`LineageSource`].
struct CatalogSource<'a> {
    index: &'a ByKey,
    catalog: &'a Catalog,
    declared: &'a Downstreams,
}

impl LineageSource for CatalogSource<'_> {
    fn newest(&self, id: &str) -> Option<&Announcement> {
        newest_of(self.index, id)
    }

    fn upstreams(&self, id: &str) -> Option<Vec<(String, Option<Hash>)>> {
        let a = newest_of(self.index, id)?;
        let (_, m) = self.catalog.manifest(&a.manifest).ok().flatten()?;
        Some(upstreams_of(&m))
    }

    /// The products whose newest version's manifest declares `id` (an older
    /// version that did is not a downstream any more).
    fn downstreams(&self, id: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .declared
            .get(id)
            .into_iter()
            .flatten()
            .filter(|(d, v)| newest_of(self.index, d).is_some_and(|n| n.version == *v))
            .map(|(d, _)| d.clone())
            .collect();
        out.dedup();
        out
    }

    fn version_of(&self, product: &str, manifest: &Hash) -> Option<semver::Version> {
        versions_of(self.index, product)
            .find(|a| a.manifest == *manifest)
            .map(|a| a.version.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::manifest::{Classification, Status};
    use mesh_protocol::{KeyPair, Signed};

    use crate::state::catalog::Offer;

    /// `sales/<name>@version`, declaring `upstreams`, signed by `key`, recorded and
    /// announced.
    fn publish(catalog: &Catalog, key: &KeyPair, name: &str, version: &str, upstreams: &[&str]) {
        let m = Manifest {
            format: mesh_protocol::manifest::MANIFEST_FORMAT,
            id: format!("sales/{name}").parse().expect("id"),
            version: version.parse().expect("version"),
            status: Status::Active,
            title: name.into(),
            description: String::new(),
            owner: mesh_protocol::manifest::Owner {
                team: "sales".into(),
                contact: "sales@example.com".into(),
            },
            tags: vec![],
            classification: Classification::Internal,
            consumers: vec![],
            schema: vec![],
            null_values: Default::default(),
            sla: Default::default(),
            lineage: upstreams
                .iter()
                .map(|u| mesh_protocol::manifest::Upstream {
                    id: format!("sales/{u}").parse().expect("upstream"),
                    manifest: None,
                })
                .collect(),
            files: vec![],
            quality: None,
            created_at: 1,
            publisher: key.public(),
            contract: None,
            derivation: None,
            odps: None,
        };
        let signed = Signed::sign(&m, key);
        catalog.record_manifest(&signed, &m).expect("record");
        let a = Announcement::of(
            &m,
            signed.hash(),
            vec![libp2p::PeerId::random().to_string()],
            1_000,
            key.public(),
        );
        let offered = catalog.offer(&Signed::sign(&a, key).to_bytes());
        assert_eq!(offered.expect("offer"), Offer::New);
    }

    #[test]
    fn chunks_of_the_listing_end_between_products() {
        let keys: Vec<Vec<u8>> = [
            "a/x\x001.0.0",
            "a/x\x002.0.0",
            "a/y\x001.0.0",
            "a/y\x001.1.0",
            "b/z\x001.0.0",
        ]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
        // The third key is a/y's first version: its second comes along.
        assert_eq!(whole_products(&keys, 3), 4);
        assert_eq!(whole_products(&keys, 2), 2);
        assert_eq!(whole_products(&keys, 4), 4);
        assert_eq!(whole_products(&keys, 5), 5);
        assert_eq!(whole_products(&keys, 50), 5);
        assert_eq!(whole_products(&keys[..0], 3), 0);
    }

    /// Downstreams come from the reversed lineage of every known manifest: loaded
    /// from the store on the first walk, then kept current by each recorded manifest,
    /// and counting only what a product's newest version declares.
    #[tokio::test]
    async fn lineage_finds_downstreams_by_the_newest_manifests() {
        let (catalog, key) = crate::state::fixtures::test_catalog();
        let edges = |root: &'static str| {
            let catalog = catalog.clone();
            async move {
                let g = lineage_of(&catalog, &root.parse().expect("id"))
                    .await
                    .expect("lineage");
                let mut e = g.edges;
                e.sort();
                e
            }
        };
        let e = |u: &str, d: &str| (format!("sales/{u}"), format!("sales/{d}"));
        publish(&catalog, &key, "raw", "1.0.0", &[]);
        publish(&catalog, &key, "clean", "1.0.0", &["raw"]);
        // Loaded from the store.
        assert_eq!(edges("sales/raw").await, vec![e("raw", "clean")]);
        // Recorded after the load: kept current.
        publish(&catalog, &key, "report", "1.0.0", &["raw"]);
        assert_eq!(
            edges("sales/raw").await,
            vec![e("raw", "clean"), e("raw", "report")]
        );
        // clean's newest version no longer builds on raw.
        publish(&catalog, &key, "clean", "2.0.0", &[]);
        assert_eq!(edges("sales/raw").await, vec![e("raw", "report")]);
        assert_eq!(edges("sales/clean").await, vec![]);
        // A product whose contract the rules keep from this node: the graph says
        // some lineage may be hidden, until its manifest is known after all.
        let hidden = |root: &'static str| {
            let catalog = catalog.clone();
            async move {
                lineage_of(&catalog, &root.parse().expect("id"))
                    .await
                    .expect("lineage")
                    .hidden
            }
        };
        assert_eq!(hidden("sales/raw").await, 0);
        catalog.note_unreadable("sales/secret".parse().expect("id"));
        assert_eq!(hidden("sales/raw").await, 1);
        assert_eq!(hidden("sales/clean").await, 1);
        publish(&catalog, &key, "secret", "1.0.0", &["raw"]);
        assert_eq!(hidden("sales/raw").await, 0);
    }
}
