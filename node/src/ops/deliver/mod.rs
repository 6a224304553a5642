//! Delivering a held product version into object storage (`mesh fetch ID -o
//! s3://bucket/prefix`, subscriptions into a bucket): each file to
//! `prefix/VERSION/PATH`, then the `current` pointer switched last by a conditional
//! put (see [`pointer`]), so a reader that starts from `current` never sees half a
//! version.
//!
//! A file the previous current version has with the same bytes is copied
//! server-side (no bytes cross the network); others are uploaded from the chunk
//! store, verified chunk by chunk ([`upload`]). A delivery interrupted by a crash
//! is resumed when run again: files recorded as delivered whose object still has
//! the recorded ETag are skipped, and multipart uploads left open are aborted when
//! the node starts ([`Deliverer::recover`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mesh_protocol::manifest::FileEntry;
use mesh_protocol::{Manifest, ManifestHash};
use mesh_storage::objects::object_store::multipart::MultipartStore;
use mesh_storage::objects::object_store::path::Path as ObjectPath;
use mesh_storage::objects::object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use mesh_storage::objects::{Bucket, ObjectError, ObjectSettings, ObjectUrl};
use mesh_storage::ChunkStore;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::clock::unix_now_ms;
use crate::ops::fetch::{FetchEvent, FetchOutcome};
use crate::state::catalog::Catalog;
use crate::state::deliveries::{DeliveredFile, DeliveryBook};
use crate::state::StateError;

mod error;
mod pointer;
pub(crate) mod report;
mod upload;

pub(crate) use error::DeliverError;
pub(crate) use report::DeliveryReport;

use pointer::{Pointer, PointerFile, CURRENT, MAX_POINTER};

/// S3's limit for a server-side copy in one request; larger unchanged files are
/// uploaded again.
const MAX_COPY: u64 = 5 << 30;
/// How often progress is reported while files upload.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Delivers versions from this node's chunk store into object storage.
#[derive(Debug, Clone)]
pub(crate) struct Deliverer {
    pub(crate) settings: ObjectSettings,
    pub(crate) chunks: Arc<ChunkStore>,
    pub(crate) book: DeliveryBook,
    /// Where the fetched versions' manifests are.
    pub(crate) catalog: Catalog,
}

impl Deliverer {
    /// Opens `url` with the node's settings and checks that it is reachable.
    pub(crate) async fn open(&self, url: &ObjectUrl) -> Result<Bucket, DeliverError> {
        let bucket = Bucket::open(url, &self.settings)?;
        bucket.check().await?;
        Ok(bucket)
    }

    /// Delivers the version a fetch just put in the store (`fetched`), as
    /// [`Deliverer::deliver`].
    pub(crate) async fn deliver_fetched(
        &self,
        bucket: &Bucket,
        fetched: &FetchOutcome,
        keep: Option<usize>,
        progress: &Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<DeliveryReport, DeliverError> {
        let hash: ManifestHash = fetched
            .manifest
            .parse()
            .map_err(|e| StateError::corrupt("the fetched manifest's hash", e))?;
        let (_, manifest) = self
            .catalog
            .manifest(&hash)?
            .ok_or_else(|| StateError::corrupt("the fetched manifest", "not recorded"))?;
        self.deliver(bucket, &manifest, &hash, keep, progress).await
    }

    /// Delivers the held version `manifest` (hash `hash`) to `bucket`'s prefix,
    /// keeping at most `keep` versions there (all when `None`).
    pub(crate) async fn deliver(
        &self,
        bucket: &Bucket,
        manifest: &Manifest,
        hash: &ManifestHash,
        keep: Option<usize>,
        progress: &Option<mpsc::Sender<FetchEvent>>,
    ) -> Result<DeliveryReport, DeliverError> {
        let version = manifest.version.to_string();
        let mut report = DeliveryReport {
            url: bucket.url().to_string(),
            version_url: bucket.url().join(&version).to_string(),
            files: manifest.files.len(),
            ..DeliveryReport::default()
        };
        let (previous, etag) = self.read_pointer(bucket, &manifest.id.to_string()).await?;
        if previous.as_ref().map(|p| &p.manifest) == Some(&hash.to_string()) {
            report.already_current = true;
            return Ok(report);
        }
        let total: u64 = manifest.files.iter().map(|f| f.size).sum();
        let sent = AtomicU64::new(0);
        let work = self.put_files(bucket, manifest, previous.as_ref(), &sent, &mut report);
        with_progress(work, &sent, total, progress).await?;
        let mut versions = previous.map(|p| p.versions).unwrap_or_default();
        versions.retain(|v| *v != version);
        versions.push(version.clone());
        let cut = keep.map_or(0, |k| versions.len().saturating_sub(k.max(1)));
        let pruned: Vec<String> = versions.drain(..cut).collect();
        let pointer = Pointer {
            product: manifest.id.to_string(),
            version: version.clone(),
            manifest: hash.to_string(),
            delivered_at_ms: unix_now_ms(),
            versions,
            files: manifest.files.iter().map(pointer_file).collect(),
        };
        self.switch(bucket, &pointer, etag).await?;
        let keys: Vec<String> = manifest
            .files
            .iter()
            .filter_map(|f| bucket.key(&file_key(&version, f)).ok())
            .map(|k| k.to_string())
            .collect();
        self.book
            .forget_delivered(&bucket.url().bucket, keys.iter().map(String::as_str))?;
        for old in &pruned {
            self.remove_version(bucket, old).await?;
        }
        report.pruned = pruned;
        info!(url = %report.version_url, uploaded = report.uploaded_bytes, copied = report.copied_files, "delivered");
        Ok(report)
    }

    /// Aborts the multipart uploads a crash left open (a store that cannot be
    /// reached now keeps its records for the next start).
    pub(crate) async fn recover(&self) {
        let open = match self.book.open_uploads() {
            Ok(o) => o,
            Err(e) => return warn!(error = %e, "reading the delivery journal"),
        };
        for u in open {
            let url = ObjectUrl {
                bucket: u.bucket.clone(),
                prefix: String::new(),
            };
            let aborted = match Bucket::open(&url, &self.settings) {
                Ok(b) => {
                    let key = ObjectPath::from(u.key.as_str());
                    b.store()
                        .abort_multipart(&key, &u.upload_id)
                        .await
                        .map_err(|e| b.error(e, &u.key).to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match aborted {
                Ok(()) => {
                    info!(bucket = %u.bucket, key = %u.key, "aborted an upload a crash left open");
                    if let Err(e) = self.book.upload_ended(&u.bucket, &u.key) {
                        warn!(error = %e, "updating the delivery journal");
                    }
                }
                Err(e) => {
                    warn!(bucket = %u.bucket, key = %u.key, error = %e, "could not abort an upload a crash left open; will try again at the next start")
                }
            }
        }
    }

    /// Checks that the prefix is empty or holds `product`'s deliveries.
    pub(crate) async fn claim(&self, bucket: &Bucket, product: &str) -> Result<(), DeliverError> {
        self.read_pointer(bucket, product).await.map(|_| ())
    }

    /// The pointer at the prefix (checked to be `product`'s) and its ETag.
    async fn read_pointer(
        &self,
        bucket: &Bucket,
        product: &str,
    ) -> Result<(Option<Pointer>, Option<String>), DeliverError> {
        let key = bucket.key(CURRENT)?;
        let Some(meta) = bucket.head(&key).await? else {
            return Ok((None, None));
        };
        let bad = |why: String| DeliverError::BadPointer {
            url: bucket.url().to_string(),
            why,
        };
        if meta.size > MAX_POINTER {
            return Err(bad(format!("{} bytes", meta.size)));
        }
        let bytes = bucket
            .store()
            .get(&key)
            .await
            .map_err(|e| bucket.error(e, key.as_ref()))?
            .bytes()
            .await
            .map_err(|e| bucket.error(e, key.as_ref()))?;
        let pointer: Pointer = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if pointer.product != product {
            return Err(DeliverError::NotOurs {
                url: bucket.url().to_string(),
                other: pointer.product,
                product: product.to_string(),
            });
        }
        Ok((Some(pointer), meta.e_tag))
    }

    /// Puts every file of the version in place: resumed, copied or uploaded.
    async fn put_files(
        &self,
        bucket: &Bucket,
        manifest: &Manifest,
        previous: Option<&Pointer>,
        sent: &AtomicU64,
        report: &mut DeliveryReport,
    ) -> Result<(), DeliverError> {
        let version = manifest.version.to_string();
        let old: HashMap<&str, &PointerFile> = previous
            .map(|p| p.files.iter().map(|f| (f.digest.as_str(), f)).collect())
            .unwrap_or_default();
        for file in &manifest.files {
            let key = bucket.key(&file_key(&version, file))?;
            let digest = file_digest(file);
            if self.already_there(bucket, &key, &digest).await? {
                report.resumed_files += 1;
                sent.fetch_add(file.size, Ordering::Relaxed);
                continue;
            }
            let source = previous.zip(old.get(digest.as_str()));
            let etag = match source {
                Some((p, f)) if file.size <= MAX_COPY => {
                    let from = bucket.key(&format!("{}/{}", p.version, f.path))?;
                    let etag = self.copy(bucket, &from, &key, file.size).await?;
                    report.copied_files += 1;
                    report.copied_bytes += file.size;
                    sent.fetch_add(file.size, Ordering::Relaxed);
                    etag
                }
                _ => {
                    let etag =
                        upload::upload_file(bucket, &self.chunks, &self.book, file, &key, sent)
                            .await?;
                    report.uploaded_files += 1;
                    report.uploaded_bytes += file.size;
                    etag
                }
            };
            let record = DeliveredFile { digest, etag };
            self.book
                .delivered(&bucket.url().bucket, key.as_ref(), &record)?;
        }
        Ok(())
    }

    /// Whether an interrupted run delivered this file already (recorded, and the
    /// object still has the recorded ETag).
    async fn already_there(
        &self,
        bucket: &Bucket,
        key: &ObjectPath,
        digest: &str,
    ) -> Result<bool, DeliverError> {
        let Some(done) = self
            .book
            .delivered_file(&bucket.url().bucket, key.as_ref())?
        else {
            return Ok(false);
        };
        if done.digest != digest || done.etag.is_none() {
            return Ok(false);
        }
        let meta = bucket.head(key).await?;
        Ok(meta.is_some_and(|m| m.e_tag == done.etag))
    }

    /// Copies `from` to `to` in the store and checks the copy's size.
    async fn copy(
        &self,
        bucket: &Bucket,
        from: &ObjectPath,
        to: &ObjectPath,
        size: u64,
    ) -> Result<Option<String>, DeliverError> {
        bucket
            .store()
            .copy(from, to)
            .await
            .map_err(|e| bucket.error(e, from.as_ref()))?;
        match bucket.head(to).await? {
            Some(m) if m.size == size => Ok(m.e_tag),
            _ => Err(ObjectError::Store {
                endpoint: bucket.endpoint().to_string(),
                bucket: bucket.url().bucket.clone(),
                detail: format!("the server-side copy of {from} to {to} did not land whole"),
            }
            .into()),
        }
    }

    /// Makes `pointer` current: `If-Match` the ETag read before the delivery, or
    /// `If-None-Match: *` when there was none.
    async fn switch(
        &self,
        bucket: &Bucket,
        pointer: &Pointer,
        etag: Option<String>,
    ) -> Result<(), DeliverError> {
        let key = bucket.key(CURRENT)?;
        let body = serde_json::to_vec_pretty(pointer).map_err(|e| DeliverError::BadPointer {
            url: bucket.url().to_string(),
            why: e.to_string(),
        })?;
        let mode = match etag {
            Some(e_tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
            None => PutMode::Create,
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        bucket
            .store()
            .put_opts(&key, PutPayload::from(body), opts)
            .await
            .map_err(|e| bucket.error(e, key.as_ref()))?;
        Ok(())
    }

    /// Deletes every object under `prefix/VERSION/`.
    async fn remove_version(&self, bucket: &Bucket, version: &str) -> Result<(), DeliverError> {
        let prefix = bucket.key(version)?;
        let mut listing = bucket.store().list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| bucket.error(e, prefix.as_ref()))?;
            bucket
                .store()
                .delete(&meta.location)
                .await
                .map_err(|e| bucket.error(e, meta.location.as_ref()))?;
        }
        Ok(())
    }
}

/// Runs `work`, reporting the bytes in `sent` every [`PROGRESS_EVERY`].
async fn with_progress<T>(
    work: impl std::future::Future<Output = T>,
    sent: &AtomicU64,
    total: u64,
    progress: &Option<mpsc::Sender<FetchEvent>>,
) -> T {
    let Some(tx) = progress else {
        return work.await;
    };
    tokio::pin!(work);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                let done_bytes = sent.load(Ordering::Relaxed);
                let _ = tx.try_send(FetchEvent::Delivering { done_bytes, total_bytes: total });
            }
        }
    }
}

/// A file's key under the prefix.
fn file_key(version: &str, f: &FileEntry) -> String {
    format!("{version}/{}", f.path)
}

/// What a file's bytes are: BLAKE3 over its size and its chunks' hashes (equal
/// digests, equal bytes, since each chunk hash names its bytes).
pub(crate) fn file_digest(f: &FileEntry) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&f.size.to_le_bytes());
    for c in &f.chunks {
        h.update(c.hash.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

fn pointer_file(f: &FileEntry) -> PointerFile {
    PointerFile {
        path: f.path.clone(),
        size: f.size,
        digest: file_digest(f),
    }
}
