//! The journal of deliveries into object storage (`mesh fetch -o s3://...`,
//! subscriptions into a bucket): each multipart upload is recorded before its
//! first part is sent and removed once it completes or is aborted, so the
//! uploads a crash left behind are aborted when the node starts again (they would
//! otherwise hold the store's space, invisible, until a lifecycle rule removes
//! them); and each file delivered for a version not yet `current` is recorded with
//! its ETag, so a delivery run again resumes after the files already there.

use std::sync::Arc;

use mesh_storage::{MetaStore, Tree};
use serde::{Deserialize, Serialize};

use super::StateError;

/// Entries read at once when scanning (the journal holds one per file of the
/// deliveries under way).
const SCAN: usize = 1024;

/// A multipart upload under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpenUpload {
    /// The bucket.
    pub(crate) bucket: String,
    /// The object's key.
    pub(crate) key: String,
    /// The store's id of the upload.
    pub(crate) upload_id: String,
}

/// A file delivered for a version that is not yet `current`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeliveredFile {
    /// What its bytes are (see `ops::deliver::file_digest`).
    pub(crate) digest: String,
    /// The object's ETag when it was written.
    pub(crate) etag: Option<String>,
}

/// The journal, over the metadata store.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryBook {
    store: Arc<dyn MetaStore>,
}

fn key(kind: &str, bucket: &str, object: &str) -> Vec<u8> {
    format!("{kind}\0{bucket}\0{object}").into_bytes()
}

impl DeliveryBook {
    /// The journal in `store`.
    pub(crate) fn new(store: Arc<dyn MetaStore>) -> Self {
        DeliveryBook { store }
    }

    /// Records an upload before its parts are sent (flushed: a crash right after
    /// must still find it).
    pub(crate) fn upload_started(&self, u: &OpenUpload) -> Result<(), StateError> {
        let bytes =
            serde_json::to_vec(u).map_err(|e| StateError::corrupt("a delivery record", e))?;
        self.store
            .put(Tree::Deliveries, &key("upload", &u.bucket, &u.key), &bytes)?;
        self.store.flush()?;
        Ok(())
    }

    /// Forgets an upload that completed or was aborted.
    pub(crate) fn upload_ended(&self, bucket: &str, object: &str) -> Result<(), StateError> {
        Ok(self
            .store
            .remove(Tree::Deliveries, &key("upload", bucket, object))?)
    }

    /// Every upload recorded as under way.
    pub(crate) fn open_uploads(&self) -> Result<Vec<OpenUpload>, StateError> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.store.scan(Tree::Deliveries, after.as_deref(), SCAN)?;
            let Some(last) = page.last() else { break };
            after = Some(last.0.clone());
            for (k, v) in &page {
                if k.starts_with(b"upload\0") {
                    if let Ok(u) = serde_json::from_slice::<OpenUpload>(v) {
                        out.push(u);
                    }
                }
            }
            if page.len() < SCAN {
                break;
            }
        }
        Ok(out)
    }

    /// Records a file delivered.
    pub(crate) fn delivered(
        &self,
        bucket: &str,
        object: &str,
        f: &DeliveredFile,
    ) -> Result<(), StateError> {
        let bytes =
            serde_json::to_vec(f).map_err(|e| StateError::corrupt("a delivery record", e))?;
        Ok(self
            .store
            .put(Tree::Deliveries, &key("done", bucket, object), &bytes)?)
    }

    /// The record of a file delivered at `object`, if any.
    pub(crate) fn delivered_file(
        &self,
        bucket: &str,
        object: &str,
    ) -> Result<Option<DeliveredFile>, StateError> {
        let Some(v) = self
            .store
            .get(Tree::Deliveries, &key("done", bucket, object))?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&v).ok())
    }

    /// Forgets the files delivered at `objects` (their version became current).
    pub(crate) fn forget_delivered<'a>(
        &self,
        bucket: &str,
        objects: impl Iterator<Item = &'a str>,
    ) -> Result<(), StateError> {
        for o in objects {
            self.store
                .remove(Tree::Deliveries, &key("done", bucket, o))?;
        }
        Ok(self.store.flush()?)
    }
}
