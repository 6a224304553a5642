//! OpenLineage events for the catalogs a company already runs (Marquez,
//! DataHub, OpenMetadata): each publish on this node, and each derived
//! product's recomputation (which publishes), is one `RunEvent` (eventType
//! `COMPLETE`, spec 2-0-2) whose output dataset is the product version and whose
//! inputs are its upstreams, with the schema, documentation, ownership and
//! dataset-version (the manifest hash) facets; a derived product's job carries
//! its query (the `sql` job facet).
//!
//! Events go, as `[lineage]` in config.toml says, to a JSON-lines file (appended,
//! synced) and/or an HTTP endpoint (POSTed, as Marquez's `/api/v1/lineage`
//! takes them), from one task behind a bounded queue, so a slow or absent
//! endpoint never delays a publish: an event that finds the queue full, or that
//! the endpoint refuses, is logged and dropped.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use mesh_protocol::{Manifest, ManifestHash};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::home::config::LineageConfig;

/// The producer of the events (a URI, as the spec asks).
const PRODUCER: &str = concat!("urn:mesh:node:", env!("CARGO_PKG_VERSION"));

/// The spec the events follow.
const RUN_EVENT: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

/// Events waiting to be written or sent, at most.
const QUEUE: usize = 256;

/// How long the endpoint has to take one event.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A facet: its fields, with the producer and the facet schema's URL.
fn facet(schema: &str, def: &str, mut fields: Value) -> Value {
    fields["_producer"] = json!(PRODUCER);
    fields["_schemaURL"] = json!(format!(
        "https://openlineage.io/spec/facets/{schema}#/$defs/{def}"
    ));
    fields
}

/// The OpenLineage `RunEvent` of publishing `manifest` (hash `hash`): the
/// product as output, its upstreams as inputs; `namespace` is the datasets'
/// and the job's.
pub(crate) fn run_event(
    manifest: &Manifest,
    hash: &ManifestHash,
    namespace: &str,
    now_ms: u64,
) -> Value {
    let fields: Vec<Value> = manifest
        .schema
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut v = json!({"name": f.name, "type": f.logical_type.to_string(), "ordinal_position": i + 1});
            if !f.description.is_empty() {
                v["description"] = json!(f.description);
            }
            v
        })
        .collect();
    let description = if manifest.description.is_empty() {
        &manifest.title
    } else {
        &manifest.description
    };
    let mut owners = vec![json!({"name": format!("team:{}", manifest.owner.team), "type": "team"})];
    if !manifest.owner.contact.is_empty() {
        owners.push(
            json!({"name": format!("contact:{}", manifest.owner.contact), "type": "contact"}),
        );
    }
    let output = json!({
        "namespace": namespace,
        "name": manifest.id.to_string(),
        "facets": {
            "schema": facet("1-2-0/SchemaDatasetFacet.json", "SchemaDatasetFacet", json!({"fields": fields})),
            "documentation": facet("1-1-0/DocumentationDatasetFacet.json", "DocumentationDatasetFacet", json!({"description": description})),
            "ownership": facet("1-0-1/OwnershipDatasetFacet.json", "OwnershipDatasetFacet", json!({"owners": owners})),
            "version": facet("1-0-1/DatasetVersionDatasetFacet.json", "DatasetVersionDatasetFacet", json!({"datasetVersion": hash.to_string()})),
        },
    });
    let inputs: Vec<Value> = manifest
        .lineage
        .iter()
        .map(|u| {
            let mut input = json!({"namespace": namespace, "name": u.id.to_string(), "facets": {}});
            if let Some(h) = &u.manifest {
                input["facets"]["version"] = facet(
                    "1-0-1/DatasetVersionDatasetFacet.json",
                    "DatasetVersionDatasetFacet",
                    json!({"datasetVersion": h.to_string()}),
                );
            }
            input
        })
        .collect();
    let (job_name, job_facets) = match &manifest.derivation {
        Some(d) => (
            format!("derive {}", manifest.id),
            json!({"sql": facet("1-1-0/SQLJobFacet.json", "SQLJobFacet", json!({"query": d.sql}))}),
        ),
        None => (format!("publish {}", manifest.id), json!({})),
    };
    json!({
        "eventType": "COMPLETE",
        "eventTime": rfc3339(now_ms),
        "run": {"runId": run_id(hash, now_ms), "facets": {}},
        "job": {"namespace": namespace, "name": job_name, "facets": job_facets},
        "inputs": inputs,
        "outputs": [output],
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT,
    })
}

/// `ms` as an RFC 3339 time in UTC with milliseconds.
fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A run id: a UUID v7 (the time, then random bits mixed with the manifest
/// hash, so two publishes in one millisecond still differ).
fn run_id(hash: &ManifestHash, now_ms: u64) -> String {
    let mut bits: [u8; 10] = rand::random();
    for (b, h) in bits.iter_mut().zip(hash.as_bytes()) {
        *b ^= h;
    }
    uuid::Builder::from_unix_timestamp_millis(now_ms, &bits)
        .into_uuid()
        .to_string()
}

/// Where events go: the handle publishes hold.
#[derive(Debug, Clone)]
pub(crate) struct LineageSink {
    tx: mpsc::Sender<Value>,
    namespace: String,
}

impl LineageSink {
    /// Queues the event of publishing `manifest`; dropped (logged) if the
    /// queue is full.
    pub(crate) fn published(&self, manifest: &Manifest, hash: &ManifestHash) {
        let event = run_event(manifest, hash, &self.namespace, crate::clock::unix_now_ms());
        if self.tx.try_send(event).is_err() {
            warn!(product = %manifest.id, "the lineage queue is full: this publish's OpenLineage event is dropped");
        }
    }
}

/// Starts the task that delivers events as `config` says (`file` relative to
/// the node home `root`) until `stop`, then what is queued; `None` when no
/// destination is configured.
pub(crate) fn start(
    config: &LineageConfig,
    root: &std::path::Path,
    stop: CancellationToken,
) -> Option<(LineageSink, JoinHandle<()>)> {
    if config.file.is_none() && config.url.is_none() {
        return None;
    }
    let file = config.file.as_ref().map(|f| root.join(f));
    let url = config.url.clone();
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(deliver(rx, file, url, stop));
    let sink = LineageSink {
        tx,
        namespace: config.namespace.clone(),
    };
    Some((sink, task))
}

/// Writes and sends each event until every sink handle is gone, or `stop`
/// (then the events already queued).
async fn deliver(
    mut rx: mpsc::Receiver<Value>,
    file: Option<PathBuf>,
    url: Option<String>,
    stop: CancellationToken,
) {
    let agent = ureq::AgentBuilder::new().timeout(POST_TIMEOUT).build();
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = stop.cancelled() => rx.try_recv().ok(),
        };
        let Some(event) = event else { return };
        let (file, url, agent) = (file.clone(), url.clone(), agent.clone());
        let done = tokio::task::spawn_blocking(move || {
            if let Some(path) = &file {
                if let Err(e) = append(path, &event) {
                    warn!("writing the OpenLineage event to {}: {e}", path.display());
                }
            }
            if let Some(url) = &url {
                if let Err(e) = agent.post(url).send_json(&event) {
                    warn!("sending the OpenLineage event to {url}: {e}");
                }
            }
        })
        .await;
        if let Err(e) = done {
            warn!("delivering an OpenLineage event: {e}");
        }
    }
}

/// Appends `event` as one line to `path` and syncs it.
fn append(path: &std::path::Path, event: &Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(event)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_uuids_and_times_rfc3339() {
        let id = run_id(&ManifestHash::of(b"m"), 1_700_000_000_123);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "7", "version 7");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, run_id(&ManifestHash::of(b"m"), 1_700_000_000_123));
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
