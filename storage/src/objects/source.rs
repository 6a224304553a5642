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
use object_store::{GetOptions, GetRange, ObjectStore};

use super::{Bucket, ObjectSettings, ObjectUrl};
use crate::chunks::{RemoteError, RemoteSource};

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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("object-source")
            .enable_all()
            .build()?;
        Ok(Arc::new(ObjectSource {
            settings,
            runtime: Some(runtime),
            buckets: Mutex::new(HashMap::new()),
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

impl RemoteSource for ObjectSource {
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
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| RemoteError::Failed("the object source is shutting down".into()))?;
        let task = runtime.spawn(async move {
            let got = store.get_opts(&path, options).await?;
            got.bytes().await
        });
        let got = futures::executor::block_on(task)
            .map_err(|e| RemoteError::Failed(format!("reading {bucket}/{key}: {e}")))?;
        match got {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(
                e @ (object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. }),
            ) => Err(RemoteError::Changed(e.to_string())),
            Err(e) => Err(RemoteError::Failed(b.error(e, key).to_string())),
        }
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
