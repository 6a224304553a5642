//! Reading chunks published in place from object storage: the chunk store's
//! [`RemoteSource`] over S3. A source is `s3://bucket/key` and, on the next line,
//! the ETag the object had when it was published; every read is a ranged GET with
//! `If-Match` that ETag, so an object replaced since reads as
//! [`RemoteError::Changed`] (the store then reports the chunk's source changed, and
//! the product stops being held), never as other bytes. The chunk store verifies
//! what comes back against the chunk's hash as for any read.
//!
//! The chunk store is synchronous and is called from blocking threads; each read
//! runs on this source's own small runtime and is waited for there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::bucket::Bucket;
use super::settings::ObjectSettings;
use super::stream::{ObjectStream, Piece, AHEAD};
use super::url::ObjectUrl;
use crate::seam::{RemoteError, RemoteSource};

/// The source text of `key` in `bucket` as it was with `etag`.
pub fn source_of(bucket: &str, key: &str, etag: &str) -> String {
    format!("s3://{bucket}/{key}\n{etag}")
}

/// Splits a source into its bucket, key and ETag.
fn parse(source: &str) -> Option<(&str, &str, &str)> {
    let (url, etag) = source.split_once('\n')?;
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    Some((bucket, key, etag))
}

/// Reads remote references through S3 with the node's settings.
#[derive(Debug)]
pub struct ObjectSource {
    settings: ObjectSettings,
    /// Taken only by `drop` (a runtime dropped inside another's async context
    /// panics, so it is shut down in the background instead).
    runtime: Option<tokio::runtime::Runtime>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Where sealed packs go (`[storage] url`), if anywhere.
    packs: Option<ObjectUrl>,
}

impl Drop for ObjectSource {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl ObjectSource {
    /// A source with `settings` (credentials from the environment, as
    /// [`Bucket::open`]).
    pub fn new(settings: ObjectSettings) -> std::io::Result<Arc<Self>> {
        Self::with_packs(settings, None)
    }

    /// A source that also keeps the chunk store's sealed packs under `packs`
    /// (`packs/NNNNNNNN.pack` objects below its prefix).
    pub fn with_packs(
        settings: ObjectSettings,
        packs: Option<ObjectUrl>,
    ) -> std::io::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("object-source")
            .enable_all()
            .build()?;
        Ok(Arc::new(ObjectSource {
            settings,
            runtime: Some(runtime),
            buckets: Mutex::new(HashMap::new()),
            packs,
        }))
    }

    fn bucket(&self, name: &str) -> Result<Bucket, RemoteError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = buckets.get(name) {
            return Ok(b.clone());
        }
        let url = ObjectUrl {
            bucket: name.to_string(),
            prefix: String::new(),
        };
        let b =
            Bucket::open(&url, &self.settings).map_err(|e| RemoteError::Failed(e.to_string()))?;
        buckets.insert(name.to_string(), b.clone());
        Ok(b)
    }
}

impl ObjectSource {
    /// Runs `work` on this source's runtime and waits for it (from any thread).
    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, RemoteError>> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| RemoteError::Failed("the object source is shutting down".into()))?;
        futures::executor::block_on(runtime.spawn(work))
            .map_err(|e| RemoteError::Failed(e.to_string()))?
    }

    /// The pack bucket, and the key of pack `name`.
    fn pack_key(&self, name: &str) -> Result<(Bucket, ObjectPath), RemoteError> {
        let url = self
            .packs
            .as_ref()
            .ok_or_else(|| RemoteError::Failed("no [storage] url for packs".into()))?;
        let b = self.bucket(&url.bucket)?.with_prefix(url.clone());
        let rel = if name.is_empty() {
            "packs".to_string()
        } else {
            format!("packs/{name}")
        };
        let key = b
            .key(&rel)
            .map_err(|e| RemoteError::Failed(e.to_string()))?;
        Ok((b, key))
    }
}

impl ObjectSource {
    /// The object `source` names, as a GET (conditional on its ETag) streams it
    /// from its first byte; read it from a blocking thread. An object replaced
    /// since `source` was taken fails the read (`changed since it was listed`),
    /// never gives other bytes.
    pub fn stream(&self, source: &str) -> Result<ObjectStream, RemoteError> {
        let (bucket, key, etag) = parse(source)
            .ok_or_else(|| RemoteError::Failed(format!("not an object source: {source:?}")))?;
        let b = self.bucket(bucket)?;
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| RemoteError::Failed("the object source is shutting down".into()))?;
        let name = format!("s3://{bucket}/{key}");
        let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
        let options = GetOptions {
            if_match: Some(etag.to_string()),
            ..GetOptions::default()
        };
        let path = ObjectPath::from(key);
        let label = name.clone();
        runtime.spawn(async move {
            use futures::StreamExt;
            let failed = |e: object_store::Error| {
                let text = match e {
                    object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. } => {
                        format!("{label} changed since it was listed ({e}); publish it again")
                    }
                    e => b.error(e, path.as_ref()).to_string(),
                };
                Piece::Failed(std::io::Error::other(text))
            };
            let mut body = match b.store().get_opts(&path, options).await {
                Ok(got) => got.into_stream(),
                Err(e) => {
                    let _ = tx.send(failed(e)).await;
                    return;
                }
            };
            while let Some(piece) = body.next().await {
                let piece = match piece {
                    Ok(bytes) => Piece::Data(bytes),
                    Err(e) => failed(e),
                };
                let stop = matches!(piece, Piece::Failed(_));
                // The reader gone (dropped) ends the GET.
                if tx.send(piece).await.is_err() || stop {
                    return;
                }
            }
            let _ = tx.send(Piece::End).await;
        });
        Ok(ObjectStream::new(rx, name))
    }
}

impl RemoteSource for ObjectSource {
    fn stores_packs(&self) -> bool {
        self.packs.is_some()
    }

    fn upload_pack(&self, file: &std::path::Path, name: &str) -> Result<String, RemoteError> {
        let (b, key) = self.pack_key(name)?;
        let file = file.to_owned();
        let (store, k, bb) = (b.store().clone(), key.clone(), b.clone());
        let etag = self.run(async move {
            let fail =
                |e: object_store::Error| RemoteError::Failed(bb.error(e, k.as_ref()).to_string());
            let upload = store.put_multipart(&k).await.map_err(fail)?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, 8 << 20);
            let mut f = tokio::fs::File::open(&file)
                .await
                .map_err(|e| RemoteError::Failed(format!("{}: {e}", file.display())))?;
            let mut buf = vec![0u8; 8 << 20];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut f, &mut buf)
                    .await
                    .map_err(|e| RemoteError::Failed(format!("{}: {e}", file.display())))?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(8).await.map_err(fail)?;
                writer.write(&buf[..n]);
            }
            let put = writer.finish().await.map_err(fail)?;
            Ok(put.e_tag.unwrap_or_default())
        })?;
        Ok(source_of(&b.url().bucket, key.as_ref(), &etag))
    }

    fn delete_pack(&self, name: &str) -> Result<(), RemoteError> {
        let (b, key) = self.pack_key(name)?;
        let store = b.store().clone();
        self.run(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(RemoteError::Failed(b.error(e, key.as_ref()).to_string())),
            }
        })
    }

    fn list_packs(&self) -> Result<Vec<String>, RemoteError> {
        let (b, key) = self.pack_key("")?;
        let store = b.store().clone();
        self.run(async move {
            use futures::StreamExt;
            let mut listing = store.list(Some(&key));
            let mut names = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta =
                    meta.map_err(|e| RemoteError::Failed(b.error(e, key.as_ref()).to_string()))?;
                if let Some(name) = meta.location.filename().filter(|n| n.ends_with(".pack")) {
                    names.push(name.to_string());
                }
            }
            Ok(names)
        })
    }

    fn read_at(&self, source: &str, offset: u64, len: u32) -> Result<Vec<u8>, RemoteError> {
        let (bucket, key, etag) = parse(source)
            .ok_or_else(|| RemoteError::Failed(format!("not an object source: {source:?}")))?;
        let b = self.bucket(bucket)?;
        let path = ObjectPath::from(key);
        let options = GetOptions {
            if_match: Some(etag.to_string()),
            range: Some(GetRange::Bounded(offset..offset + u64::from(len))),
            ..GetOptions::default()
        };
        let store = b.store().clone();
        let key = key.to_string();
        self.run(async move {
            let got = match store.get_opts(&path, options).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            };
            match got {
                Ok(bytes) => Ok(bytes.to_vec()),
                Err(
                    e @ (object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. }),
                ) => Err(RemoteError::Changed(e.to_string())),
                Err(e) => Err(RemoteError::Failed(b.error(e, &key).to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip() {
        let s = source_of("lake", "sales/orders/a.csv", "\"abc-2\"");
        assert_eq!(parse(&s), Some(("lake", "sales/orders/a.csv", "\"abc-2\"")));
        assert!(s.starts_with(crate::chunks::REMOTE_PREFIX));
        assert_eq!(parse("s3://lake"), None);
    }
}
