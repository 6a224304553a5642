//! Publishing from object storage (`mesh publish s3://bucket/prefix`): every
//! object under the prefix (its key below the prefix is its path in the product;
//! a URL naming one object publishes that object under its file name) is listed
//! with its ETag, then read where it is (`ops/found.rs`): checked against the
//! contract and cut into chunks as GETs stream it, every read conditional on the
//! listed ETag, so an object replaced during the publish fails it instead of
//! mixing two objects' bytes. Published in place (`--in-place`), its chunks are
//! recorded as ranges of the object at that ETag and nothing is copied: the node
//! serves them by ranged reads (`If-Match` the ETag, verified against each
//! chunk's hash), and an object replaced since reads as changed, so the version
//! stops being held here instead of being served with other bytes. Without
//! `--in-place` the chunks are copied into the store as for files.
//!
//! Earlier versions spooled a copy of the product in the node's home while
//! publishing; a spool a crash left there is removed at start
//! ([`clean_spools`]).

use std::path::Path;

use futures::StreamExt;
use mesh_storage::objects::object_store::{ObjectMeta, ObjectStore};
use mesh_storage::objects::{
    source_of, Bucket, ObjectError, ObjectSettings, ObjectSource, ObjectUrl,
};

use super::found::{Found, Listed};
use super::publish::{PublishError, PublishOptions, Published, Publisher};
use crate::task::blocking;

/// The most objects one product may have.
pub(crate) const MAX_OBJECTS: usize = 100_000;
/// The spool's folder under the node's home.
const SPOOL: &str = "spool";

/// Removes spools a crash of an earlier version left in `home`.
pub(crate) fn clean_spools(home: &Path) {
    let dir = home.join(SPOOL);
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("removing leftover publish spools in {}: {e}", dir.display());
        }
    }
}

/// Publishes the objects under `url` (or the one object it names) with
/// `publisher` as the TOML `draft` says; the outcome and the announcement to
/// gossip, as `Publisher::publish`.
pub(crate) async fn publish(
    publisher: &Publisher,
    settings: &ObjectSettings,
    url: &ObjectUrl,
    draft: String,
    options: PublishOptions,
) -> Result<(Published, Vec<u8>), PublishError> {
    let bucket = Bucket::open(url, settings)?;
    bucket.check().await?;
    let objects = listed(&bucket).await?;
    let reader = ObjectSource::new(settings.clone())
        .map_err(|e| PublishError::Request(format!("starting the object store client: {e}")))?;
    let found = Found::Objects { objects, reader };
    let publisher = publisher.clone();
    blocking(move || publisher.publish_found(found, &draft, options)).await
}

/// Every object to publish under `bucket`'s prefix (or the one object it
/// names), with its ETag and size.
async fn listed(bucket: &Bucket) -> Result<Vec<Listed>, PublishError> {
    let mut objects = list(bucket).await?;
    if objects.is_empty() {
        // The URL may name one object rather than a prefix.
        let key = bucket.key("")?;
        if let (Some(meta), Some(name)) = (bucket.head(&key).await?, key.filename()) {
            objects.push((name.to_string(), meta));
        }
    }
    if objects.is_empty() {
        return Err(PublishError::Request(format!(
            "{} holds no objects to publish",
            bucket.url()
        )));
    }
    let mut out = Vec::with_capacity(objects.len());
    for (rel, mut meta) in objects {
        if meta.e_tag.is_none() {
            meta = bucket.head(&meta.location).await?.unwrap_or(meta);
        }
        let Some(etag) = meta.e_tag else {
            return Err(PublishError::Objects(ObjectError::Store {
                endpoint: bucket.endpoint().to_string(),
                bucket: bucket.url().bucket.clone(),
                detail: format!(
                    "{} comes without an ETag, which publishing from a bucket needs",
                    meta.location
                ),
            }));
        };
        out.push(Listed {
            rel,
            source: source_of(&bucket.url().bucket, meta.location.as_ref(), &etag),
            size: meta.size,
        });
    }
    Ok(out)
}

/// `(path in the product, listing)` of every object under the prefix, in path
/// order.
async fn list(bucket: &Bucket) -> Result<Vec<(String, ObjectMeta)>, PublishError> {
    let prefix = bucket.key("")?;
    let under = (!bucket.url().prefix.is_empty()).then_some(&prefix);
    let mut listing = bucket.store().list(under);
    let mut out = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| bucket.error(e, prefix.as_ref()))?;
        let key = &meta.location;
        let rel = match under {
            Some(p) => key.prefix_match(p).map(|parts| {
                parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            }),
            None => Some(key.to_string()),
        };
        let Some(rel) = rel.filter(|r| !r.is_empty()) else {
            continue;
        };
        if out.len() >= MAX_OBJECTS {
            return Err(PublishError::Request(format!(
                "{} holds more than {MAX_OBJECTS} objects, the most one product may have",
                bucket.url()
            )));
        }
        out.push((rel, meta));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
