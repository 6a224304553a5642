//! The Delta Sharing port: every node a Delta Sharing server for the whole mesh
//! (delta-io/delta-sharing `PROTOCOL.md`, the `parquet` response format), so
//! pandas, Spark and the other connectors read products with a profile file
//! (`mesh share profile`).
//!
//! Mapping: a recipient is a consumer token (`mesh token`), bound to a consumer
//! domain; its one share is named after that domain; a schema per domain that
//! has products it may read; a table per product (its first schema object with
//! data, with the contract's types). The table's versions count the product's
//! published versions (`ops/share.rs`): `version`, `timestamp` and
//! `startingVersion` choose among them, `/changes` answers each version in the
//! range as `add` actions. What a token lists and reads is what the rules and
//! grants let its domain fetch, checked on every request, so a revocation or a
//! grant's end applies to the next one. A product this node does not hold is
//! fetched through the mesh (verified) before it is served.
//!
//! Files: `listen.rs` (connections, TLS), `protocol.rs` (the JSON shapes),
//! `links.rs` (signed file links, ranges); this file the routes.
//!
//! Files are served by this port under short-lived signed links (`links.rs`),
//! never by path. Requests other than file links need `Authorization: Bearer
//! <token>`. The `delta` response format is not served: the answer is always
//! `parquet` (a client that asks for `delta` is answered as by a server that
//! does not know the header, as the protocol allows).

mod links;
mod listen;
mod protocol;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh_protocol::ProductId;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::links::Link;
use self::protocol::{FileAction, Paging, Refusal, TableMeta};
use super::Bound;
use crate::clock::unix_now_ms;
use crate::home::config::SharingConfig;
use crate::home::HomeError;
use crate::node::Node;
use crate::ops::query::Reader;
use crate::ops::share::{SharedFile, TableVersion};
use crate::state::tokens::ConsumerToken;

/// Where the protocol's endpoints are: a profile's `endpoint` ends with it.
pub(crate) const PREFIX: &str = "/delta-sharing";

/// The largest request body accepted (a `/query` request's hints).
const MAX_BODY: usize = 64 * 1024;

/// The most versions one `/changes` or `startingVersion` answer covers.
const MAX_VERSIONS: usize = 1000;

/// The port's state.
struct Port {
    node: Node,
    /// Seals file links; a new one each start, so a restart voids them.
    key: [u8; 32],
    /// The most bytes of converted Parquet kept (`sharing/`).
    cache_bytes: u64,
    /// How long a file link works, in ms.
    link_ttl_ms: u64,
    /// `https` with TLS, else `http`: the scheme of file links.
    scheme: &'static str,
}

type Shared = Arc<Port>;

/// Serves the port on `bound` until `shutdown`, as `config` says.
pub(crate) fn start(
    bound: Bound,
    node: Node,
    config: &SharingConfig,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, HomeError> {
    let tls = match &bound.tls {
        Some((cert, key)) => Some(listen::tls_acceptor(cert, key)?),
        None => None,
    };
    let port = Arc::new(Port {
        node,
        key: rand::random(),
        cache_bytes: config.cache_mib.saturating_mul(1 << 20),
        link_ttl_ms: config.link_ttl_secs.saturating_mul(1000),
        scheme: if tls.is_some() { "https" } else { "http" },
    });
    let app = router(port);
    Ok(tokio::spawn(listen::accept(
        bound.listener,
        tls,
        app,
        shutdown,
    )))
}

fn router(port: Shared) -> Router {
    let table = "/shares/{share}/schemas/{schema}/tables/{table}";
    let routes = Router::new()
        .route("/shares", get(list_shares))
        .route("/shares/{share}", get(get_share))
        .route("/shares/{share}/schemas", get(list_schemas))
        .route("/shares/{share}/all-tables", get(all_tables))
        .route("/shares/{share}/schemas/{schema}/tables", get(list_tables))
        // The older form of the version request (`HEAD` on the table).
        .route(table, get(table_version))
        .route(&format!("{table}/version"), get(table_version))
        .route(&format!("{table}/metadata"), get(metadata))
        .route(&format!("{table}/query"), post(query))
        .route(&format!("{table}/changes"), get(changes))
        .route("/files/{link}", get(file));
    Router::new()
        .nest(PREFIX, routes)
        .fallback(|| async {
            Refusal::missing(format!(
                "no such endpoint: the Delta Sharing endpoints are under {PREFIX}/ (a profile's endpoint ends with it)"
            ))
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(protocol_errors))
        .with_state(port)
}

/// Turns the plain-text errors of axum's extractors (an oversized body, a
/// malformed query string or path) into the protocol's `{errorCode, message}`.
async fn protocol_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let formed = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let errored = status.is_client_error() || status.is_server_error();
    if !errored || formed || status == StatusCode::RANGE_NOT_SATISFIABLE {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the request body is over the limit of {MAX_BODY} bytes")
    } else {
        format!("bad request: {text}")
    };
    let code = if status.is_server_error() {
        "INTERNAL_ERROR"
    } else {
        "INVALID_PARAMETER_VALUE"
    };
    Refusal {
        status,
        code,
        message,
    }
    .into_response()
}

/// The live consumer token a request presents.
async fn recipient(port: &Port, headers: &HeaderMap) -> Result<ConsumerToken, Refusal> {
    let missing = || {
        Refusal::unauthenticated(
            "present a consumer token of this node as `Authorization: Bearer <token>` (a profile from `mesh share profile --domain DOMAIN` carries one)",
        )
    };
    let text = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let presented = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(missing)?;
    port.node
        .authenticate(presented.trim().to_string())
        .await?
        .map_err(|refused| Refusal::unauthenticated(refused.to_string()))
}

/// The token's share, if `share` names it (case-insensitively).
fn check_share(token: &ConsumerToken, share: &str) -> Result<String, Refusal> {
    let own = token.domain.to_string();
    if share.eq_ignore_ascii_case(&own) {
        Ok(own)
    } else {
        Err(Refusal::missing(format!(
            "no share {share:?} for this recipient: its share is {own:?}"
        )))
    }
}

/// The products the token's domain may read: `(domain, name)`, sorted.
async fn readable(port: &Port, token: &ConsumerToken) -> Result<Vec<(String, String)>, Refusal> {
    let manifests = port
        .node
        .readable_products(Reader::Domain(token.domain.clone()))
        .await?;
    let set: BTreeSet<(String, String)> = manifests
        .iter()
        .map(|m| (m.id.domain().to_string(), m.id.name().to_string()))
        .collect();
    Ok(set.into_iter().collect())
}

async fn list_shares(
    State(port): State<Shared>,
    headers: HeaderMap,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, Refusal> {
    let token = recipient(&port, &headers).await?;
    let share = token.domain.to_string();
    let items = vec![json!({"name": share, "id": protocol::stable_id(&share)})];
    Ok(Json(protocol::page(items, &paging)?))
}

async fn get_share(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(share): Path<String>,
) -> Result<Json<Value>, Refusal> {
    let token = recipient(&port, &headers).await?;
    let share = check_share(&token, &share)?;
    Ok(Json(
        json!({"share": {"name": share, "id": protocol::stable_id(&share)}}),
    ))
}

async fn list_schemas(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(share): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, Refusal> {
    let token = recipient(&port, &headers).await?;
    let share = check_share(&token, &share)?;
    let domains: BTreeSet<String> = readable(&port, &token)
        .await?
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    let items = domains
        .into_iter()
        .map(|d| json!({"name": d, "share": share}))
        .collect();
    Ok(Json(protocol::page(items, &paging)?))
}

/// The listing of tables, of one schema or (`schema` None) of all.
async fn tables(
    port: &Port,
    headers: &HeaderMap,
    share: &str,
    schema: Option<&str>,
    paging: &Paging,
) -> Result<Json<Value>, Refusal> {
    let token = recipient(port, headers).await?;
    let share = check_share(&token, share)?;
    let items = readable(port, &token)
        .await?
        .into_iter()
        .filter(|(d, _)| schema.is_none_or(|s| s.eq_ignore_ascii_case(d)))
        .map(|(d, n)| {
            let id = protocol::stable_id(&format!("{d}/{n}"));
            json!({"name": n, "schema": d, "share": share, "id": id})
        })
        .collect();
    Ok(Json(protocol::page(items, paging)?))
}

async fn list_tables(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path((share, schema)): Path<(String, String)>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, Refusal> {
    tables(&port, &headers, &share, Some(&schema), &paging).await
}

async fn all_tables(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(share): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, Refusal> {
    tables(&port, &headers, &share, None, &paging).await
}

/// A table request, resolved: the recipient, the product and its history.
struct Table {
    token: ConsumerToken,
    id: ProductId,
    history: Vec<TableVersion>,
}

impl Table {
    fn reader(&self) -> Reader {
        Reader::Domain(self.token.domain.clone())
    }

    fn current(&self) -> Result<&TableVersion, Refusal> {
        self.history
            .last()
            .ok_or_else(|| Refusal::missing(format!("{} has no versions", self.id)))
    }
}

/// Resolves the table a request names, for its recipient: the rules and grants
/// of the token's domain decide (a denied product is refused with the rule).
async fn resolve(
    port: &Port,
    headers: &HeaderMap,
    (share, schema, table): &(String, String, String),
) -> Result<Table, Refusal> {
    let token = recipient(port, headers).await?;
    check_share(&token, share)?;
    // Names are case-insensitive, and product ids are lowercase.
    let (domain, name) = (schema.to_ascii_lowercase(), table.to_ascii_lowercase());
    let id: ProductId = format!("{domain}/{name}")
        .parse()
        .map_err(|e| Refusal::missing(format!("no table {schema}.{table}: {e}")))?;
    let reader = Reader::Domain(token.domain.clone());
    let history = port.node.share_table(&id, &reader).await?;
    Ok(Table { token, id, history })
}

/// An ndjson answer with the table version header.
fn ndjson(version: u64, lines: &[String]) -> Response {
    let mut body = lines.join("\n");
    body.push('\n');
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
    );
    version_header(h, version);
    r
}

fn version_header(h: &mut HeaderMap, version: u64) {
    if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
        h.insert("delta-table-version", v);
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionParams {
    starting_timestamp: Option<String>,
}

async fn table_version(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Query(params): Query<VersionParams>,
) -> Result<Response, Refusal> {
    let t = resolve(&port, &headers, &path).await?;
    let v = match &params.starting_timestamp {
        Some(ts) => protocol::first_from(&t.history, protocol::parse_timestamp(ts)?)?,
        None => t.current()?,
    };
    let mut r = StatusCode::OK.into_response();
    version_header(r.headers_mut(), v.number);
    Ok(r)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AtParams {
    version: Option<i64>,
    timestamp: Option<String>,
}

/// The version `version` or `timestamp` name (at most one), else the current.
fn chosen<'a>(
    t: &'a Table,
    version: Option<i64>,
    timestamp: Option<&str>,
) -> Result<&'a TableVersion, Refusal> {
    match (version, timestamp) {
        (Some(_), Some(_)) => Err(Refusal::bad("give version or timestamp, not both")),
        (Some(n), None) => protocol::at_version(&t.history, n),
        (None, Some(ts)) => protocol::as_of(&t.history, protocol::parse_timestamp(ts)?),
        (None, None) => t.current(),
    }
}

/// The `metaData` line of table version `v`, whose file is `f`.
fn metadata_of(t: &Table, f: &SharedFile, version: Option<u64>) -> String {
    protocol::metadata_line(&TableMeta {
        product: &t.id.to_string(),
        name: t.id.name(),
        description: if f.description.is_empty() {
            &f.title
        } else {
            &f.description
        },
        schema: &f.schema,
        version,
    })
}

async fn metadata(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Query(at): Query<AtParams>,
) -> Result<Response, Refusal> {
    let t = resolve(&port, &headers, &path).await?;
    let asked = at.version.is_some() || at.timestamp.is_some();
    let v = chosen(&t, at.version, at.timestamp.as_deref())?;
    let f = port
        .node
        .share_file(&t.id, v, &t.reader(), port.cache_bytes)
        .await?;
    let lines = [
        protocol::protocol_line(),
        metadata_of(&t, &f, asked.then_some(v.number)),
    ];
    Ok(ndjson(v.number, &lines))
}

/// The `/query` request body (hints are accepted and not applied: every file
/// of the version is returned, as the protocol allows).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryBody {
    version: Option<i64>,
    timestamp: Option<String>,
    starting_version: Option<i64>,
    ending_version: Option<i64>,
}

/// The file action of version `v` (file `f`) for `t`'s recipient, linked at `host`.
fn action(
    port: &Port,
    host: &str,
    t: &Table,
    v: &TableVersion,
    f: &SharedFile,
    with_version: bool,
) -> FileAction {
    let now = unix_now_ms();
    let link = Link {
        p: t.id.to_string(),
        v: v.version.to_string(),
        h: v.manifest.to_string(),
        t: t.token.id.clone(),
        e: now + port.link_ttl_ms,
    };
    FileAction {
        url: format!(
            "{}://{host}{PREFIX}/files/{}.parquet",
            port.scheme,
            links::seal(&port.key, &link)
        ),
        id: v.manifest.to_string(),
        partition_values: serde_json::Map::new(),
        size: f.size,
        stats: protocol::stats(f.rows),
        version: with_version.then_some(v.number),
        timestamp: with_version.then_some(v.timestamp_ms),
        expiration_timestamp: link.e,
    }
}

/// The host the client reached this port by, for its file links.
fn host(headers: &HeaderMap) -> Result<String, Refusal> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']))
        .map(String::from)
        .ok_or_else(|| Refusal::bad("the request has no Host header to make file links with"))
}

/// The versions `from..=to` of `t` (at most [`MAX_VERSIONS`]).
fn span(t: &Table, from: i64, to: Option<i64>) -> Result<&[TableVersion], Refusal> {
    let start = protocol::at_version(&t.history, from)?.number as usize;
    let end = match to {
        Some(n) => protocol::at_version(&t.history, n)?.number as usize,
        None => t.history.len() - 1,
    };
    if end < start {
        return Err(Refusal::bad(format!(
            "the ending version {end} is before the starting version {start}"
        )));
    }
    if end - start >= MAX_VERSIONS {
        return Err(Refusal::bad(format!(
            "{} versions asked at once; ask for at most {MAX_VERSIONS} (set endingVersion)",
            end - start + 1
        )));
    }
    Ok(&t.history[start..=end])
}

/// The lines of a change feed over `versions`: each version's file as an `add`.
async fn change_lines(
    port: &Port,
    host: &str,
    t: &Table,
    versions: &[TableVersion],
) -> Result<Vec<String>, Refusal> {
    let mut lines = vec![protocol::protocol_line()];
    let mut meta = None;
    for v in versions {
        let f = port
            .node
            .share_file(&t.id, v, &t.reader(), port.cache_bytes)
            .await?;
        if meta.is_none() {
            meta = Some(metadata_of(t, &f, None));
        }
        lines.push(action(port, host, t, v, &f, true).line("add"));
    }
    if let Some(m) = meta {
        lines.insert(1, m);
    }
    Ok(lines)
}

async fn query(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let request: QueryBody = if body.iter().all(u8::is_ascii_whitespace) {
        QueryBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Refusal::bad(format!("the request body is not the query JSON: {e}")))?
    };
    let t = resolve(&port, &headers, &path).await?;
    let host = host(&headers)?;
    if let Some(from) = request.starting_version {
        if request.version.is_some() || request.timestamp.is_some() {
            return Err(Refusal::bad(
                "give startingVersion, or version or timestamp, not both",
            ));
        }
        let versions = span(&t, from, request.ending_version)?;
        let lines = change_lines(&port, &host, &t, versions).await?;
        return Ok(ndjson(versions[0].number, &lines));
    }
    let asked = request.version.is_some() || request.timestamp.is_some();
    let v = chosen(&t, request.version, request.timestamp.as_deref())?;
    let f = port
        .node
        .share_file(&t.id, v, &t.reader(), port.cache_bytes)
        .await?;
    let lines = [
        protocol::protocol_line(),
        metadata_of(&t, &f, asked.then_some(v.number)),
        action(&port, &host, &t, v, &f, asked).line("file"),
    ];
    Ok(ndjson(v.number, &lines))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangesParams {
    starting_version: Option<i64>,
    starting_timestamp: Option<String>,
    ending_version: Option<i64>,
    ending_timestamp: Option<String>,
}

async fn changes(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(path): Path<(String, String, String)>,
    Query(p): Query<ChangesParams>,
) -> Result<Response, Refusal> {
    let t = resolve(&port, &headers, &path).await?;
    let host = host(&headers)?;
    let from = match (p.starting_version, &p.starting_timestamp) {
        (Some(n), None) => n,
        (None, Some(ts)) => {
            protocol::first_from(&t.history, protocol::parse_timestamp(ts)?)?.number as i64
        }
        _ => {
            return Err(Refusal::bad(
                "give startingVersion or startingTimestamp (one of them)",
            ))
        }
    };
    let to = match (p.ending_version, &p.ending_timestamp) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad(
                "give endingVersion or endingTimestamp, not both",
            ))
        }
        (Some(n), None) => Some(n),
        (None, Some(ts)) => {
            Some(protocol::as_of(&t.history, protocol::parse_timestamp(ts)?)?.number as i64)
        }
        (None, None) => None,
    };
    let versions = span(&t, from, to)?;
    let lines = change_lines(&port, &host, &t, versions).await?;
    Ok(ndjson(versions[0].number, &lines))
}

/// A signed file link: checked (seal, expiry, the token still live, its domain
/// still allowed), then the file served, whole or a range.
async fn file(
    State(port): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Refusal> {
    let text = name.strip_suffix(".parquet").unwrap_or(&name);
    let link = links::open(&port.key, text, unix_now_ms())?;
    let token = port.node.live_token(link.t.clone()).await?.ok_or_else(|| {
        Refusal::forbidden("the token this link was made for is revoked or expired")
    })?;
    let forged = || Refusal::forbidden("this file link names no product version");
    let id: ProductId = link.p.parse().map_err(|_| forged())?;
    let v = TableVersion {
        number: 0,
        version: link.v.parse().map_err(|_| forged())?,
        manifest: link.h.parse().map_err(|_| forged())?,
        timestamp_ms: 0,
    };
    let reader = Reader::Domain(token.domain.clone());
    let f = port
        .node
        .share_file(&id, &v, &reader, port.cache_bytes)
        .await?;
    if f.path.file_stem().and_then(|s| s.to_str()) != Some(link.h.as_str()) {
        return Err(Refusal::missing(
            "that version's data changed since the link was made: list the table's files again",
        ));
    }
    Ok(links::serve(&f.path, f.size, &headers).await)
}
