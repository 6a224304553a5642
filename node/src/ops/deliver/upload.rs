//! One product file from the chunk store into an object: a single PUT when it is
//! smaller than a part, else a multipart upload of parts of whole chunks (each at
//! least [`PART`] bytes but the last; S3 asks at least 5 MiB), [`IN_FLIGHT`] parts
//! at once, read from the store by a blocking task ahead of the uploads (bounded:
//! memory stays under `(IN_FLIGHT + 2) * (PART + MAX_CHUNK_LEN)`). Every chunk
//! is verified against its hash as it is read. The upload is journaled before its
//! first part and forgotten once completed or aborted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use mesh_protocol::manifest::{FileEntry, MAX_CHUNK_LEN};
use mesh_storage::objects::object_store::multipart::{MultipartStore, PartId};
use mesh_storage::objects::object_store::path::Path as ObjectPath;
use mesh_storage::objects::object_store::{ObjectStoreExt, PutPayload};
use mesh_storage::objects::Bucket;
use mesh_storage::ChunkStore;
use tokio::sync::mpsc;

use super::error::DeliverError;
use crate::state::deliveries::{DeliveryBook, OpenUpload};

/// Bytes per part (parts end on chunk boundaries, so they are this or a little more).
pub(super) const PART: u64 = 8 << 20;
/// Parts uploaded at once.
const IN_FLIGHT: usize = 8;

/// Uploads `file`'s bytes to `key`; returns the object's ETag. `sent` counts the
/// bytes as each part lands.
pub(super) async fn upload_file(
    bucket: &Bucket,
    chunks: &Arc<ChunkStore>,
    book: &DeliveryBook,
    file: &FileEntry,
    key: &ObjectPath,
    sent: &AtomicU64,
) -> Result<Option<String>, DeliverError> {
    if file.size < PART {
        let body = read_parts(chunks.clone(), file.clone())
            .recv()
            .await
            .transpose()?
            .unwrap_or_default();
        let put = bucket
            .store()
            .put(key, PutPayload::from(body))
            .await
            .map_err(|e| bucket.error(e, key.as_ref()))?;
        sent.fetch_add(file.size, Ordering::Relaxed);
        return Ok(put.e_tag);
    }
    let store = bucket.store();
    let id = store
        .create_multipart(key)
        .await
        .map_err(|e| bucket.error(e, key.as_ref()))?;
    let open = OpenUpload {
        bucket: bucket.url().bucket.clone(),
        key: key.to_string(),
        upload_id: id.clone(),
    };
    book.upload_started(&open)?;
    let result = send_parts(bucket, chunks, file, key, &id, sent).await;
    let outcome = match result {
        Ok(parts) => store
            .complete_multipart(key, &id, parts)
            .await
            .map(|put| put.e_tag)
            .map_err(|e| bucket.error(e, key.as_ref()).into()),
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        // Best effort: what is left is aborted when the node next starts.
        if store.abort_multipart(key, &id).await.is_err() {
            return outcome;
        }
    }
    book.upload_ended(&open.bucket, &open.key)?;
    outcome
}

/// Sends every part of `file`, at most [`IN_FLIGHT`] at once; their ids in order.
async fn send_parts(
    bucket: &Bucket,
    chunks: &Arc<ChunkStore>,
    file: &FileEntry,
    key: &ObjectPath,
    id: &String,
    sent: &AtomicU64,
) -> Result<Vec<PartId>, DeliverError> {
    let mut rx = read_parts(chunks.clone(), file.clone());
    let mut in_flight = FuturesUnordered::new();
    let mut done: Vec<Option<PartId>> = Vec::new();
    let mut next = 0usize;
    loop {
        let room = in_flight.len() < IN_FLIGHT;
        tokio::select! {
            part = rx.recv(), if room => {
                let Some(part) = part else { break };
                let part = part?;
                let (idx, len) = (next, part.len() as u64);
                next += 1;
                done.push(None);
                let store = bucket.store().clone();
                in_flight.push(async move {
                    let r = store.put_part(key, id, idx, PutPayload::from(part)).await;
                    (idx, len, r)
                });
            }
            Some((idx, len, r)) = in_flight.next(), if !in_flight.is_empty() => {
                let part = r.map_err(|e| bucket.error(e, key.as_ref()))?;
                sent.fetch_add(len, Ordering::Relaxed);
                done[idx] = Some(part);
            }
        }
    }
    while let Some((idx, len, r)) = in_flight.next().await {
        let part = r.map_err(|e| bucket.error(e, key.as_ref()))?;
        sent.fetch_add(len, Ordering::Relaxed);
        done[idx] = Some(part);
    }
    done.into_iter()
        .map(|p| p.ok_or(DeliverError::Incomplete))
        .collect()
}

/// The file's parts, read (and verified) from the store by a blocking task, two
/// ahead of the consumer. A file smaller than a part is one part.
fn read_parts(
    chunks: Arc<ChunkStore>,
    file: FileEntry,
) -> mpsc::Receiver<Result<Vec<u8>, DeliverError>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut part = Vec::with_capacity((PART + u64::from(MAX_CHUNK_LEN)) as usize);
        for c in &file.chunks {
            match chunks.get_verified(&c.hash, u64::from(MAX_CHUNK_LEN)) {
                Ok(bytes) => part.extend_from_slice(&bytes),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            }
            if part.len() as u64 >= PART {
                let full = std::mem::replace(
                    &mut part,
                    Vec::with_capacity((PART + u64::from(MAX_CHUNK_LEN)) as usize),
                );
                if tx.blocking_send(Ok(full)).is_err() {
                    return;
                }
            }
        }
        if !part.is_empty() || file.chunks.is_empty() {
            let _ = tx.blocking_send(Ok(part));
        }
    });
    rx
}
