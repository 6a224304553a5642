//! The control API: HTTP/JSON on loopback, used by the `mesh` CLI and the testnet.
//!
//! Reads are open to local callers; every mutating call (`POST`) needs
//! `Authorization: Bearer <token>` with the token from the node home's `api.token`,
//! compared in constant time. Request bodies are capped. `POST /v1/fetch` streams
//! [`FetchEvent`]s as JSON lines.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_protocol::{Manifest, Policy, ProductRef, Signed};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::catalog::{CatalogEntry, Filter};
use crate::fetch::FetchEvent;
use crate::node::Node;
use crate::NodeError;

/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// `POST /v1/publish`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PublishRequest {
    /// A file or directory on the node's machine.
    pub path: PathBuf,
    /// The `product.toml` text.
    pub manifest: String,
}

/// `POST /v1/fetch`.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchRequest {
    /// `domain/name[@version]`.
    pub product: String,
    /// Where to write the files, if anywhere.
    pub out: Option<PathBuf>,
}

/// `GET /v1/products/{domain}/{name}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShowResponse {
    /// The catalog entry.
    pub entry: CatalogEntry,
    /// The manifest, when this node or a provider could supply it.
    pub manifest: Option<Manifest>,
    /// Why the manifest is absent.
    pub manifest_error: Option<String>,
}

/// `POST /v1/policy`: a signed policy to submit.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// Hex of the encoded `Signed<Policy>` envelope.
    pub envelope: String,
}

/// `POST /v1/policy/check`: a manifest to check.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckRequest {
    /// The `product.toml` text.
    pub manifest: String,
}

/// One version of the node's policy chain.
#[derive(Debug, Serialize, Deserialize)]
pub struct PolicyView {
    /// The policy.
    pub policy: Policy,
    /// BLAKE3 of its canonical bytes.
    pub hash: String,
    /// Keys with a valid signature on it.
    pub signers: Vec<String>,
    /// Hex of the encoded signed envelope (to write a policy file from).
    pub envelope: String,
    /// Whether it is expired now.
    pub expired: bool,
}

impl PolicyView {
    fn new(signed: &Signed<Policy>, policy: Policy) -> Self {
        PolicyView {
            expired: policy.expires_at <= crate::governance::unix_now(),
            policy,
            hash: signed.hash().to_string(),
            signers: signed
                .valid_signers()
                .iter()
                .map(|k| k.to_string())
                .collect(),
            envelope: hex::encode(signed.to_bytes()),
        }
    }
}

/// An error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong and what to do.
    pub error: String,
    /// A stable machine-readable kind.
    pub kind: String,
}

#[derive(Clone)]
struct AppState {
    node: Node,
    token: Arc<String>,
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            NodeError::Usage(_) => (StatusCode::BAD_REQUEST, "usage"),
            NodeError::InvalidManifest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest"),
            NodeError::Quality(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_data"),
            NodeError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            NodeError::Rejected(_) => (StatusCode::FORBIDDEN, "rejected"),
            NodeError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        (
            status,
            Json(ApiError {
                error: self.to_string(),
                kind: kind.into(),
            }),
        )
            .into_response()
    }
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = given.as_bytes().ct_eq(state.token.as_bytes()).into();
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(ApiError {
                error: "missing or wrong API token: mutating calls need `Authorization: Bearer <token>` from the node home's api.token".into(),
                kind: "unauthorized".into(),
            }),
        )
            .into_response();
    }
    next.run(req).await
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, node: Node, token: String, shutdown: CancellationToken) {
    let state = AppState {
        node,
        token: Arc::new(token),
    };
    let mutating = Router::new()
        .route("/v1/publish", post(publish))
        .route("/v1/fetch", post(fetch))
        .route("/v1/policy", post(submit_policy))
        .route("/v1/gc", post(gc))
        .route("/v1/peers", post(add_peer))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/peers", get(peers))
        .route("/v1/products", get(products))
        .route("/v1/products/{domain}/{name}", get(show))
        .route("/v1/lineage/{domain}/{name}", get(lineage))
        .route("/v1/usage/{domain}/{name}", get(usage))
        .route("/v1/policy", get(policy))
        .route("/v1/policy/history", get(history))
        .route("/v1/policy/check", post(check))
        .merge(mutating)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        warn!("control API stopped: {e}");
    }
}

/// `GET /metrics`: OpenMetrics text. The libp2p gossipsub metrics (`gossipsub_*`:
/// messages received with and without duplicates per topic, mesh and topic peers,
/// invalid messages), then the node's own gauges.
async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, NodeError> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, &s.node.shared.metrics)
        .map_err(|e| NodeError::Network(format!("encoding metrics: {e}")))?;
    let status = s.node.status().await?;
    let entries = s
        .node
        .products_at(Filter::default(), crate::governance::unix_now())
        .await?;
    let sla = |state: crate::health::SlaState| {
        entries
            .iter()
            .filter(|e| e.health.as_ref().is_some_and(|h| h.sla == state))
            .count() as u64
    };
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let st = &s.node.shared.stats;
    let metrics = [
        (
            "mesh_peers",
            "gauge",
            "Connected peers.",
            status.peers as u64,
        ),
        (
            "mesh_policy_version",
            "gauge",
            "Version of the enforced policy.",
            status.policy_version,
        ),
        (
            "mesh_catalog_versions",
            "gauge",
            "Product versions in the catalog.",
            status.catalog as u64,
        ),
        (
            "mesh_catalog_products",
            "gauge",
            "Products in the catalog.",
            entries.iter().filter(|e| e.health.is_some()).count() as u64,
        ),
        (
            "mesh_catalog_local_versions",
            "gauge",
            "Product versions this node holds completely.",
            entries.iter().filter(|e| e.local).count() as u64,
        ),
        (
            "mesh_sla_ok_products",
            "gauge",
            "Products whose SLA holds.",
            sla(crate::health::SlaState::Ok),
        ),
        (
            "mesh_sla_late_products",
            "gauge",
            "Products late on freshness or update frequency.",
            sla(crate::health::SlaState::Late),
        ),
        (
            "mesh_sla_at_risk_products",
            "gauge",
            "Products with too few reachable providers.",
            sla(crate::health::SlaState::AtRisk),
        ),
        (
            "mesh_chunks",
            "gauge",
            "Chunks in the store.",
            s.node.shared.chunks.len() as u64,
        ),
        (
            "mesh_served_bytes",
            "counter",
            "Chunk bytes served to peers.",
            load(&st.served_bytes),
        ),
        (
            "mesh_served_requests",
            "counter",
            "Chunk requests served.",
            load(&st.served_requests),
        ),
        (
            "mesh_reads_in_flight",
            "gauge",
            "Reads (manifests and chunks) admitted whose responses are not yet written.",
            load(&st.reads_in_flight),
        ),
        (
            "mesh_refused_requests",
            "counter",
            "Inbound transfer requests answered Busy by the per-peer or overall limits.",
            load(&st.refused_requests),
        ),
        (
            "mesh_fetched_bytes",
            "counter",
            "Bytes downloaded by completed fetches.",
            load(&st.fetched_bytes),
        ),
        (
            "mesh_fetches",
            "counter",
            "Completed fetches.",
            load(&st.fetches),
        ),
        (
            "mesh_publishes",
            "counter",
            "Completed publishes.",
            load(&st.publishes),
        ),
    ];
    for (name, kind, help, value) in metrics {
        let sample = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {value}\n"
        ));
    }
    text.push_str("# EOF\n");
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

async fn status(State(s): State<AppState>) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.status().await?))
}

async fn peers(State(s): State<AppState>) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.net.peers().await.map_err(NodeError::Network)?))
}

/// `POST /v1/peers`: a peer to keep connected to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPeerRequest {
    /// Its multiaddr, ending in `/p2p/<peer id>`.
    pub addr: String,
}

async fn add_peer(
    State(s): State<AppState>,
    Json(req): Json<AddPeerRequest>,
) -> Result<impl IntoResponse, NodeError> {
    let addr: libp2p::Multiaddr = req.addr.parse().map_err(|e| {
        NodeError::Usage(format!(
            "{:?} is not a multiaddr ({e}); example: /ip4/127.0.0.1/tcp/4801/p2p/12D3...",
            req.addr
        ))
    })?;
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        return Err(NodeError::Usage(format!(
            "{addr} must end with /p2p/<peer id> (see `mesh status` on that node)"
        )));
    };
    s.node
        .net
        .add_peer(peer, addr.clone())
        .await
        .map_err(NodeError::Network)?;
    Ok(Json(serde_json::json!({ "added": addr.to_string() })))
}

async fn products(
    State(s): State<AppState>,
    Query(filter): Query<Filter>,
) -> Result<Json<Vec<CatalogEntry>>, NodeError> {
    let now = filter.at.unwrap_or_else(crate::governance::unix_now);
    Ok(Json(s.node.products_at(filter, now).await?))
}

/// `domain/name` from a request path, validated.
fn product_id(domain: &str, name: &str) -> Result<mesh_protocol::ProductId, NodeError> {
    format!("{domain}/{name}")
        .parse()
        .map_err(|e: mesh_protocol::id::IdError| NodeError::Usage(e.to_string()))
}

async fn usage(
    State(s): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<crate::usage::ProductUsage>, NodeError> {
    Ok(Json(s.node.usage(product_id(&domain, &name)?).await?))
}

async fn lineage(
    State(s): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<crate::health::Lineage>, NodeError> {
    let id = product_id(&domain, &name)?;
    Ok(Json(s.node.lineage(&id.to_string()).await?))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
    /// Judge health as of this unix time instead of now.
    at: Option<u64>,
}

async fn show(
    State(s): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<ShowResponse>, NodeError> {
    let text = match q.version {
        Some(v) => format!("{domain}/{name}@{v}"),
        None => format!("{domain}/{name}"),
    };
    let target: ProductRef = text
        .parse()
        .map_err(|e: mesh_protocol::id::IdError| NodeError::Usage(e.to_string()))?;
    let (mut entry, manifest) = s.node.describe(&target).await?;
    let filter = Filter {
        domain: Some(domain.clone()),
        ..Filter::default()
    };
    let now = q.at.unwrap_or_else(crate::governance::unix_now);
    entry.health = s
        .node
        .products_at(filter, now)
        .await?
        .into_iter()
        .find(|e| e.announcement.manifest == entry.announcement.manifest)
        .and_then(|e| e.health);
    let (manifest, manifest_error) = match manifest {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Json(ShowResponse {
        entry,
        manifest,
        manifest_error,
    }))
}

async fn publish(
    State(s): State<AppState>,
    Json(req): Json<PublishRequest>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.publish(req.path, req.manifest).await?))
}

async fn fetch(
    State(s): State<AppState>,
    Json(req): Json<FetchRequest>,
) -> Result<Response, NodeError> {
    let target: ProductRef = req
        .product
        .parse()
        .map_err(|e: mesh_protocol::id::IdError| NodeError::Usage(e.to_string()))?;
    let (tx, rx) = mpsc::channel::<FetchEvent>(64);
    let node = s.node.clone();
    tokio::spawn(async move {
        let last = match node.fetch(&target, req.out, Some(tx.clone())).await {
            Ok(outcome) => FetchEvent::Done(outcome),
            Err(e) => FetchEvent::Error {
                message: e.to_string(),
            },
        };
        let _ = tx.send(last).await;
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(line), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines))
        .map_err(|e| NodeError::Network(e.to_string()))
}

#[derive(Deserialize)]
struct PolicyQuery {
    version: Option<u64>,
}

async fn policy(
    State(s): State<AppState>,
    Query(q): Query<PolicyQuery>,
) -> Result<Json<PolicyView>, NodeError> {
    let g = &s.node.shared.governance;
    let version = q.version.unwrap_or_else(|| g.version());
    let signed = g.get(version).ok_or_else(|| {
        NodeError::NotFound(format!(
            "this node holds policy versions 1..={}, not {version}",
            g.version()
        ))
    })?;
    let policy = signed
        .value()
        .map_err(|e| NodeError::Corrupt(e.to_string()))?;
    Ok(Json(PolicyView::new(&signed, policy)))
}

async fn history(State(s): State<AppState>) -> Json<Vec<PolicyView>> {
    Json(
        s.node
            .shared
            .governance
            .history()
            .into_iter()
            .map(|(signed, p)| PolicyView::new(&signed, p))
            .collect(),
    )
}

async fn submit_policy(
    State(s): State<AppState>,
    Json(req): Json<SubmitRequest>,
) -> Result<impl IntoResponse, NodeError> {
    let bytes = hex::decode(req.envelope.trim())
        .map_err(|e| NodeError::Usage(format!("envelope is not hex: {e}")))?;
    let signed = Signed::<Policy>::from_bytes(&bytes)
        .map_err(|e| NodeError::Usage(format!("not a signed policy: {e}")))?;
    Ok(Json(s.node.submit_policy(signed).await?))
}

async fn check(
    State(s): State<AppState>,
    Json(req): Json<CheckRequest>,
) -> Result<impl IntoResponse, NodeError> {
    let shared = s.node.shared.clone();
    let report = tokio::task::spawn_blocking(move || crate::publish::check(&shared, &req.manifest))
        .await
        .map_err(|e| NodeError::Network(e.to_string()))?;
    Ok(Json(report))
}

/// `POST /v1/gc`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GcRequest {
    /// Complete versions to keep per product (default: `keep_versions` in config).
    pub keep: Option<usize>,
    /// Report without deleting.
    #[serde(default)]
    pub dry_run: bool,
}

async fn gc(
    State(s): State<AppState>,
    Json(req): Json<GcRequest>,
) -> Result<impl IntoResponse, NodeError> {
    let keep = req.keep.unwrap_or(s.node.shared.keep_versions);
    Ok(Json(s.node.gc(keep, req.dry_run).await?))
}
