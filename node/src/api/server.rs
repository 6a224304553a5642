//! The control API's HTTP server: routes requests to the [`Node`] and errors to
//! status codes by their [`ErrorClass`].
//!
//! Every request must name a loopback host in its `Host` header (unless the node is
//! configured with `api_allow_remote`), so a web page cannot reach the API through
//! DNS rebinding. Reads are open to local callers; every mutating call (`POST`), and
//! the list of consumer tokens, needs
//! `Authorization: Bearer <token>` with the token from the node home's `api.token`,
//! compared in constant time. Request bodies are capped. Every error is the JSON
//! [`ApiError`] form, also those axum's extractors produce (an oversized or malformed
//! body). `POST /v1/fetch` streams [`FetchEvent`]s as JSON lines.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_protocol::{Policy, ProductId, ProductRef, Signed};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::types::{
    AddPeerRequest, ApiError, CheckRequest, FetchEvent, FetchRequest, Filter, GcRequest, Lineage,
    PolicyView, ProductUsage, PublishOptions, PublishRequest, QueryRequest, ShowResponse,
    SubmitRequest, VerifyRequest,
};
use crate::clock::unix_now;
use crate::error::{ErrorClass, NodeError};
use crate::node::Node;

/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
struct AppState {
    node: Node,
    token: Arc<String>,
    /// Whether requests may name any host (the API sits behind a proxy).
    allow_remote: bool,
}

/// An error answer in the API's JSON form.
fn error_answer(status: StatusCode, kind: &str, error: String) -> Response {
    (
        status,
        Json(ApiError {
            error,
            kind: kind.into(),
        }),
    )
        .into_response()
}

/// Whether a `Host` header value names this machine: `localhost`, a loopback
/// address, each with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses requests whose `Host` is not this machine (DNS rebinding).
async fn require_loopback_host(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.allow_remote {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host) {
        return error_answer(
            StatusCode::FORBIDDEN,
            "bad_host",
            format!(
                "the control API answers only requests for a loopback host (localhost, 127.0.0.1, [::1]), not {host:?}; set `api_allow_remote = true` to serve it behind a proxy"
            ),
        );
    }
    next.run(req).await
}

/// Turns the plain-text errors of axum's extractors (an oversized body, malformed
/// JSON) into the API's JSON form.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    // JSON errors are already in form, and the web catalog's HTML error pages are
    // for people.
    let formed = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || formed {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let (kind, error) = if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            "too_large",
            format!("the request body is over the limit of {MAX_BODY} bytes"),
        )
    } else {
        ("usage", format!("bad request: {text}"))
    };
    error_answer(status, kind, error)
}

/// The HTTP status of an error class.
fn status_of(class: ErrorClass) -> StatusCode {
    StatusCode::from_u16(class.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let class = self.class();
        (
            status_of(class),
            Json(ApiError {
                error: self.to_string(),
                kind: class.kind().into(),
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

impl axum::extract::FromRef<AppState> for Node {
    fn from_ref(state: &AppState) -> Node {
        state.node.clone()
    }
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    node: Node,
    token: String,
    allow_remote: bool,
    shutdown: CancellationToken,
) {
    let state = AppState {
        node,
        token: Arc::new(token),
        allow_remote,
    };
    let mutating = Router::new()
        .route("/v1/publish", post(publish))
        .route("/v1/fetch", post(fetch))
        .route("/v1/query", post(query))
        .route("/v1/policy", post(submit_policy))
        .route("/v1/gc", post(gc))
        .route("/v1/verify", post(verify))
        .route("/v1/peers", post(add_peer))
        .route("/v1/access/request", post(super::access::request))
        .route("/v1/access/decide", post(super::access::decide))
        .route("/v1/subscriptions", post(super::subscriptions::subscribe))
        .route(
            "/v1/subscriptions/remove",
            post(super::subscriptions::unsubscribe),
        )
        .route(
            "/v1/tokens",
            post(super::tokens::create).get(super::tokens::list),
        )
        .route("/v1/tokens/revoke", post(super::tokens::revoke))
        .route("/v1/derive", post(super::derive::derive))
        .route("/v1/derive/remove", post(super::derive::remove))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let app = Router::new()
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/peers", get(peers))
        .route("/v1/products", get(products))
        .route("/v1/products/{domain}/{name}", get(show))
        .route("/v1/lineage/{domain}/{name}", get(lineage))
        .route("/v1/usage/{domain}/{name}", get(usage))
        .route("/v1/access", get(super::access::list))
        .route("/v1/subscriptions", get(super::subscriptions::list))
        .route("/v1/derived", get(super::derive::list))
        .route(
            "/v1/subscribers/{domain}/{name}",
            get(super::subscriptions::subscribers),
        )
        .route("/v1/policy", get(policy))
        .route("/v1/policy/history", get(history))
        .route("/v1/policy/check", post(check))
        .merge(mutating)
        .with_state(state.clone())
        .merge(super::web::router(state.node.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_loopback_host,
        ));
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        warn!("control API stopped: {e}");
    }
}

/// `GET /metrics`: OpenMetrics text.
async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, NodeError> {
    let text = s.node.metrics_text().await?;
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
    Ok(Json(s.node.peers().await?))
}

async fn add_peer(
    State(s): State<AppState>,
    Json(req): Json<AddPeerRequest>,
) -> Result<impl IntoResponse, NodeError> {
    let addr = s.node.add_peer(&req.addr).await?;
    Ok(Json(serde_json::json!({ "added": addr.to_string() })))
}

async fn products(
    State(s): State<AppState>,
    Query(filter): Query<Filter>,
) -> Result<Response, NodeError> {
    let now = filter.at.unwrap_or_else(unix_now);
    let mut pages = s.node.product_pages(filter, now).await?;
    // The first page is read before the answer starts: a failure there is still
    // an error status; a later one cuts the body short.
    let first = pages.next().await.transpose()?.unwrap_or_default();
    let rest = futures::stream::unfold(pages, |mut pages| async move {
        pages.next().await.map(|page| (page, pages))
    });
    Ok(json_stream(first, rest))
}

/// Bytes of JSON built before they are handed to the connection.
const JSON_PIECE: usize = 256 * 1024;

/// The items of `first` and then of every page `rest` yields as one JSON array
/// (the bytes `Json` would send for them all), written in pieces of about
/// [`JSON_PIECE`] as the connection takes them, a page read only when the pieces
/// before it are gone: a 100,000-product listing (75 MB) never sits in memory
/// whole, as JSON or as entries. A page that fails ends the body early (the
/// client sees a truncated array).
fn json_stream<T, E, S>(first: Vec<T>, rest: S) -> Response
where
    T: serde::Serialize + Send + 'static,
    E: std::fmt::Display + Send + 'static,
    S: futures::Stream<Item = Result<Vec<T>, E>> + Send + 'static,
{
    /// Where the array is: `[` written, an item written, `]` written.
    struct At<T, S> {
        current: std::vec::IntoIter<T>,
        rest: std::pin::Pin<Box<S>>,
        opened: bool,
        any: bool,
        done: bool,
    }
    let start = At {
        current: first.into_iter(),
        rest: Box::pin(rest),
        opened: false,
        any: false,
        done: false,
    };
    let pieces = futures::stream::unfold(start, |mut at| async move {
        if at.done {
            return None;
        }
        let mut piece = Vec::with_capacity(JSON_PIECE + 4096);
        if !at.opened {
            piece.push(b'[');
            at.opened = true;
        }
        loop {
            for item in at.current.by_ref() {
                if at.any {
                    piece.push(b',');
                }
                at.any = true;
                if let Err(e) = serde_json::to_writer(&mut piece, &item) {
                    at.done = true;
                    return Some((Err(std::io::Error::other(e)), at));
                }
                if piece.len() >= JSON_PIECE {
                    return Some((Ok(piece), at));
                }
            }
            match futures::StreamExt::next(&mut at.rest).await {
                Some(Ok(page)) => at.current = page.into_iter(),
                Some(Err(e)) => {
                    at.done = true;
                    return Some((Err(std::io::Error::other(e.to_string())), at));
                }
                None => break,
            }
        }
        // A long listing freed as much as it sent, in pieces on many threads.
        crate::memory::release_freed();
        piece.push(b']');
        at.done = true;
        Some((Ok(piece), at))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(pieces))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `domain/name` from a request path, validated.
fn product_id(domain: &str, name: &str) -> Result<ProductId, NodeError> {
    super::parse_product(&format!("{domain}/{name}"))
}

async fn usage(
    State(s): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<ProductUsage>, NodeError> {
    Ok(Json(
        s.node
            .usage(product_ref(&domain, &name, q.version)?)
            .await?,
    ))
}

/// `domain/name[@version]` from a request path and query, validated.
fn product_ref(domain: &str, name: &str, version: Option<String>) -> Result<ProductRef, NodeError> {
    let text = match version {
        Some(v) => format!("{domain}/{name}@{v}"),
        None => format!("{domain}/{name}"),
    };
    text.parse().map_err(NodeError::from)
}

async fn lineage(
    State(s): State<AppState>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<Lineage>, NodeError> {
    Ok(Json(s.node.lineage(&product_id(&domain, &name)?).await?))
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
    let target = product_ref(&domain, &name, q.version)?;
    let now = q.at.unwrap_or_else(unix_now);
    let (entry, manifest) = s.node.describe(&target, now).await?;
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
    let options = PublishOptions {
        in_place: req.in_place,
    };
    Ok(Json(
        s.node.publish_with(req.path, req.manifest, options).await?,
    ))
}

/// Events a fetch may queue for a slow client before the fetch waits for it.
const FETCH_EVENTS: usize = 64;

async fn fetch(
    State(s): State<AppState>,
    Json(req): Json<FetchRequest>,
) -> Result<Response, NodeError> {
    let target: ProductRef = req.product.parse().map_err(NodeError::from)?;
    let (tx, rx) = mpsc::channel::<FetchEvent>(FETCH_EVENTS);
    let node = s.node.clone();
    tokio::spawn(async move {
        let options = crate::FetchOptions {
            overwrite: req.force,
            in_place: req.in_place,
        };
        let fetched = match &req.to_objects {
            Some(url) => match url.parse() {
                Ok(url) => node.fetch_to_objects(&target, &url, Some(tx.clone())).await,
                Err(e) => Err(NodeError::BadRequest(format!("{e}"))),
            },
            None => {
                node.fetch_with(&target, req.out, options, Some(tx.clone()))
                    .await
            }
        };
        let last = match fetched {
            Ok(outcome) => FetchEvent::Done(outcome),
            Err(e) => FetchEvent::Error {
                kind: e.class().kind().to_string(),
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
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// The media type of an Arrow IPC stream.
pub(crate) const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// `POST /v1/query`: the answer as an Arrow IPC stream, written as the rows are
/// made (the columns first, then each batch; never the whole answer at once). An
/// error before the first row is the usual JSON error; one after it ends the
/// stream early, which the reader sees as a truncated stream.
async fn query(
    State(s): State<AppState>,
    Json(req): Json<QueryRequest>,
) -> Result<Response, NodeError> {
    let (schema, rows) = s
        .node
        .query_stream(&req.sql, &crate::ops::query::Reader::Node)
        .await?;
    let encoding = |e: datafusion::arrow::error::ArrowError| {
        NodeError::BadRequest(format!("the answer could not be encoded: {e}"))
    };
    let mut writer = datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema)
        .map_err(encoding)?;
    let head = std::mem::take(writer.get_mut());
    // Each step writes one batch (or, at the end, the end-of-stream marker) and
    // hands on what the writer produced; the writer is dropped after the end.
    let batches = futures::stream::unfold((rows, Some(writer)), |(mut rows, writer)| async move {
        let mut w = writer?;
        let (written, more) = match rows.recv().await {
            Some(Ok(batch)) => (w.write(&batch).map_err(|e| e.to_string()), true),
            Some(Err(e)) => {
                warn!("a streamed query failed after its first rows: {e}");
                (Err(e.to_string()), false)
            }
            None => (w.finish().map_err(|e| e.to_string()), false),
        };
        let chunk = written
            .map(|()| std::mem::take(w.get_mut()))
            .map_err(std::io::Error::other);
        let failed = chunk.is_err();
        Some((chunk, (rows, (more && !failed).then_some(w))))
    });
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(head) }),
        batches,
    );
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, ARROW_STREAM)
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[derive(Deserialize)]
struct PolicyQuery {
    version: Option<u64>,
}

async fn policy(
    State(s): State<AppState>,
    Query(q): Query<PolicyQuery>,
) -> Result<Json<PolicyView>, NodeError> {
    let (signed, policy) = s.node.policy(q.version)?;
    Ok(Json(PolicyView::new(&signed, policy, unix_now())))
}

async fn history(State(s): State<AppState>) -> Json<Vec<PolicyView>> {
    let now = unix_now();
    Json(
        s.node
            .policy_history()
            .into_iter()
            .map(|(signed, p)| PolicyView::new(&signed, p, now))
            .collect(),
    )
}

async fn submit_policy(
    State(s): State<AppState>,
    Json(req): Json<SubmitRequest>,
) -> Result<impl IntoResponse, NodeError> {
    let bytes = hex::decode(req.envelope.trim())
        .map_err(|e| NodeError::BadRequest(format!("envelope is not hex: {e}")))?;
    let signed = Signed::<Policy>::from_bytes(&bytes)
        .map_err(|e| NodeError::BadRequest(format!("not a signed policy: {e}")))?;
    Ok(Json(s.node.submit_policy(signed).await?))
}

async fn check(
    State(s): State<AppState>,
    Json(req): Json<CheckRequest>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.check(req.manifest).await?))
}

async fn gc(
    State(s): State<AppState>,
    Json(req): Json<GcRequest>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.gc(req.keep, req.dry_run).await?))
}

async fn verify(
    State(s): State<AppState>,
    Json(req): Json<VerifyRequest>,
) -> Result<impl IntoResponse, NodeError> {
    Ok(Json(s.node.verify(!req.no_repair).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in [
            "localhost",
            "localhost:4900",
            "LOCALHOST:1",
            "127.0.0.1",
            "127.0.0.1:4900",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:4900",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:4900",
            "127.0.0.1.evil.example",
            "10.0.0.1:4900",
            "[::2]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    /// The streamed array is byte for byte what `serde_json` writes for the whole
    /// vector, however it comes in pages: empty, one item, and enough items to
    /// span many pieces, in pages of 1,000 and of 7, an empty first page and an
    /// empty one midway.
    #[tokio::test]
    async fn a_streamed_json_array_is_the_whole_arrays_bytes() {
        for n in [0usize, 1, 2, 40_000] {
            let items: Vec<(usize, String)> =
                (0..n).map(|i| (i, format!("item \"{i}\" ü"))).collect();
            let want = serde_json::to_vec(&items).unwrap();
            for page in [1000, 7] {
                let mut pages: Vec<Vec<(usize, String)>> =
                    items.chunks(page).map(<[_]>::to_vec).collect();
                pages.insert(pages.len() / 2, Vec::new());
                for first_empty in [false, true] {
                    let mut pages = pages.clone();
                    let first = if first_empty || pages.is_empty() {
                        Vec::new()
                    } else {
                        pages.remove(0)
                    };
                    let rest = futures::stream::iter(
                        pages.into_iter().map(Ok::<_, std::convert::Infallible>),
                    );
                    let body = json_stream(first, rest).into_body();
                    let got = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                    assert_eq!(got.as_ref(), want.as_slice(), "{n} items, pages of {page}");
                }
            }
            if n == 40_000 {
                assert!(want.len() > 3 * JSON_PIECE, "spans several pieces");
            }
        }
    }

    /// A page that fails midway ends the body early: never a well-formed array
    /// that silently lacks entries.
    #[tokio::test]
    async fn a_page_that_fails_cuts_the_array_short() {
        let rest = futures::stream::iter(vec![Ok(vec![2]), Err("the disk failed"), Ok(vec![3])]);
        let body = json_stream(vec![1], rest).into_body();
        assert!(axum::body::to_bytes(body, usize::MAX).await.is_err());
    }
}
