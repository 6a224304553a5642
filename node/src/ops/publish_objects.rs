//! Publishing from object storage (`mesh publish s3://bucket/prefix`): every
//! object under the prefix (its key below the prefix is its path in the product;
//! a URL naming one object publishes that object under its file name)
//! is read once, streamed to a spool folder in the node's home, checked against
//! the contract and chunked there like any file (`ops/publish.rs`). Published in
//! place (`--in-place`), its chunks are recorded as ranges of the object at the
//! ETag that read returned, not of the spooled copy: the node then serves them by
//! ranged reads of the object (`If-Match` that ETag, verified against each
//! chunk's hash), and an object replaced since reads as changed, so the version
//! stops being held here instead of being served with other bytes. Without
//! `--in-place` the chunks are copied into the store as for files.
//!
//! The spool holds one copy of the product while it is published (the contract
//! checker and the parallel chunker read local files) and is removed when the
//! publish ends, failed or not, and at the next start after a crash.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use mesh_storage::objects::object_store::{ObjectStore, ObjectStoreExt};
use mesh_storage::objects::{source_of, Bucket, ObjectError, ObjectSettings, ObjectUrl};
use tokio::io::AsyncWriteExt;

use super::publish::{Found, PublishError, PublishOptions, Published, Publisher};
use crate::task::blocking;

/// The most objects one product may have.
pub(crate) const MAX_OBJECTS: usize = 100_000;
/// The spool's folder under the node's home.
const SPOOL: &str = "spool";

/// A spool folder, removed on drop.
#[derive(Debug)]
struct Spool {
    dir: PathBuf,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("removing the publish spool {}: {e}", self.dir.display());
        }
    }
}

/// Removes spools a crash left in `home`.
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
    home: &Path,
    url: &ObjectUrl,
    draft: String,
    options: PublishOptions,
) -> Result<(Published, Vec<u8>), PublishError> {
    let bucket = Bucket::open(url, settings)?;
    bucket.check().await?;
    let (spool, found) = spool(&bucket, home).await?;
    let publisher = publisher.clone();
    blocking(move || {
        let out = publisher.publish_found(found, &draft, options);
        drop(spool);
        out
    })
    .await
}

/// Lists the objects under `bucket`'s prefix and copies each to a spool under
/// `home`.
async fn spool(bucket: &Bucket, home: &Path) -> Result<(Spool, Found), PublishError> {
    let mut objects = list(bucket).await?;
    if objects.is_empty() {
        // The URL may name one object rather than a prefix.
        let key = bucket.key("")?;
        if let (Some(_), Some(name)) = (bucket.head(&key).await?, key.filename()) {
            objects.push((name.to_string(), key.clone()));
        }
    }
    if objects.is_empty() {
        return Err(PublishError::Request(format!(
            "{} holds no objects to publish",
            bucket.url()
        )));
    }
    let dir = home
        .join(SPOOL)
        .join(format!("{:016x}", rand::random::<u64>()));
    let spool = Spool { dir: dir.clone() };
    let (mut files, mut sources) = (Vec::new(), Vec::new());
    for (rel, key) in objects {
        let to = dir.join(&rel);
        let etag = copy_object(bucket, &key, &to).await?;
        sources.push(source_of(&bucket.url().bucket, key.as_ref(), &etag));
        files.push((rel, to));
    }
    Ok((spool, Found::Objects { files, sources }))
}

/// `(path in the product, key)` of every object under the prefix, in path order.
async fn list(
    bucket: &Bucket,
) -> Result<Vec<(String, mesh_storage::objects::object_store::path::Path)>, PublishError> {
    let prefix = bucket.key("")?;
    let under = (!bucket.url().prefix.is_empty()).then_some(&prefix);
    let mut listing = bucket.store().list(under);
    let mut out = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| bucket.error(e, prefix.as_ref()))?;
        let key = meta.location;
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
        out.push((rel, key));
    }
    out.sort();
    Ok(out)
}

/// Streams the object at `key` to `to`; returns the ETag of what was read.
async fn copy_object(
    bucket: &Bucket,
    key: &mesh_storage::objects::object_store::path::Path,
    to: &Path,
) -> Result<String, PublishError> {
    let failed = |e| bucket.error(e, key.as_ref());
    let got = bucket.store().get(key).await.map_err(failed)?;
    let etag = got.meta.e_tag.clone().ok_or_else(|| {
        PublishError::Objects(ObjectError::Store {
            endpoint: bucket.endpoint().to_string(),
            bucket: bucket.url().bucket.clone(),
            detail: format!("{key} came without an ETag, which publishing in place needs"),
        })
    })?;
    let local = |e: std::io::Error| {
        PublishError::Request(format!("spooling {key} to {}: {e}", to.display()))
    };
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(local)?;
    }
    let mut file = tokio::fs::File::create(to).await.map_err(local)?;
    let mut body = got.into_stream();
    while let Some(piece) = body.next().await {
        file.write_all(&piece.map_err(failed)?)
            .await
            .map_err(local)?;
    }
    file.flush().await.map_err(local)?;
    Ok(etag)
}
