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
use mesh_protocol::{Manifest, ProductRef};
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
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/products", get(products))
        .route("/v1/products/{domain}/{name}", get(show))
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

async fn status(State(s): State<AppState>) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.status().await?))
}

async fn peers(State(s): State<AppState>) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.net.peers().await.map_err(NodeError::Network)?))
}

async fn products(
    State(s): State<AppState>,
    Query(filter): Query<Filter>,
) -> Result<Json<Vec<CatalogEntry>>, NodeError> {
    let catalog = s.node.shared.catalog.clone();
    let list = tokio::task::spawn_blocking(move || catalog.list(&filter))
        .await
        .map_err(|e| NodeError::Network(e.to_string()))??;
    Ok(Json(list))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
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
    let (entry, manifest) = s.node.describe(&target).await?;
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
