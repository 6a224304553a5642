//! The typed, blocking client of the control API, used by the `mesh` CLI and
//! `mesh-testnet`: one method per endpoint, so route strings, query encoding and
//! the fold over a fetch's event stream live here and nowhere else.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use mesh_contract::engine::Answer;
use mesh_protocol::{Policy, ProductId, ProductRef, Signed};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{
    AccessDecideBody, AccessFilter, AccessRequestBody, AccessView, AddPeerRequest, ApiError,
    CatalogEntry, CheckReport, CheckRequest, DeriveBody, FetchEvent, FetchOutcome, FetchRequest,
    Filter, GcReport, GcRequest, Lineage, NodeStatus, PeerInfo, PolicyView, ProductUsage,
    PublishOptions, PublishRequest, Published, QueryRequest, ShowResponse, SubmitRequest,
    Submitted, SubscribeBody, SubscriberView, SubscriptionView, TokenCreateBody, TokenCreated,
    TokenRevokeBody, TokenRevoked, TokenView, UnderiveBody, UnsubscribeBody, VerifyReport,
    VerifyRequest,
};
use crate::home::{HomeError, NodeHome};
use crate::state::derived::DerivedProduct;

/// How long one request may take (a fetch streams, and is not bounded by it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a query may take, the fetches of the products it names included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3600);
/// The largest `/metrics` text read.
const MAX_METRICS_BYTES: u64 = 16 << 20;

/// A call to the control API that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No daemon runs for this home (no `api.addr`).
    #[error("no mesh daemon is running for {home}: start it with `mesh node run --home {home}`")]
    NoDaemon {
        /// The home directory.
        home: String,
    },
    /// The daemon could not be reached.
    #[error("cannot reach the mesh daemon at {base}: {reason}; is `mesh node run` running for this home?")]
    Unreachable {
        /// The API's base URL.
        base: String,
        /// The transport error.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status (0 for an error reported inside a fetch stream).
        status: u16,
        /// The stable kind (`usage`, `not_found`, `rejected`, `unavailable`,
        /// `unauthorized`, `internal`, ...).
        kind: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The daemon's answer could not be read.
    #[error("bad response from the daemon: {0}")]
    Protocol(String),
    /// The home could not be read.
    #[error(transparent)]
    Home(#[from] HomeError),
}

impl ClientError {
    /// The daemon's error kind, when it answered with one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            ClientError::Api { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// A client bound to one node's control API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Percent-encodes a query value.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `key=value` query parts of the filter fields that are set, values escaped.
fn query_parts(fields: &[(&str, &Option<String>)]) -> Vec<String> {
    fields
        .iter()
        .filter_map(|(key, value)| {
            value
                .as_deref()
                .map(|v| format!("{key}={}", query_escape(v)))
        })
        .collect()
}

/// `/PREFIX/domain/name`.
fn product_path(prefix: &str, id: &ProductId) -> String {
    format!("{prefix}/{}/{}", id.domain(), id.name())
}

impl ApiClient {
    /// A client for the daemon running on `home` (reads `api.addr` and `api.token`).
    pub fn for_home(home: &NodeHome) -> Result<Self, ClientError> {
        home.load_config()?;
        let addr =
            std::fs::read_to_string(home.api_addr_path()).map_err(|_| ClientError::NoDaemon {
                home: home.root().display().to_string(),
            })?;
        Ok(Self::new(addr.trim(), home.load_token().ok()))
    }

    /// A client for the API at `addr` (`host:port`), with the token for mutating
    /// calls, if any.
    pub fn new(addr: &str, token: Option<String>) -> Self {
        ApiClient {
            base: format!("http://{addr}"),
            token,
            // No pooled connections: the server closes a connection whose request it
            // refused before reading the body (a 401), and a pooled one reused after
            // that close fails with an unexpected EOF. Loopback connects are cheap.
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .max_idle_connections(0)
                .build(),
        }
    }

    /// The web catalog's address on this node: `http://host:port/`, or the page of
    /// `product` (`domain/name`).
    pub fn catalog_url(&self, product: Option<&ProductId>) -> String {
        match product {
            Some(id) => format!("{}{}", self.base, product_path("/products", id)),
            None => format!("{}/", self.base),
        }
    }

    // --- reads ---

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<NodeStatus, ClientError> {
        self.get("/v1/status")
    }

    /// `GET /v1/peers`.
    pub fn peers(&self) -> Result<Vec<PeerInfo>, ClientError> {
        self.get("/v1/peers")
    }

    /// `GET /v1/products`, filtered.
    pub fn products(&self, filter: &Filter) -> Result<Vec<CatalogEntry>, ClientError> {
        let mut query = query_parts(&[
            ("domain", &filter.domain),
            ("tag", &filter.tag),
            ("q", &filter.q),
        ]);
        if let Some(at) = filter.at {
            query.push(format!("at={at}"));
        }
        self.get(&format!("/v1/products?{}", query.join("&")))
    }

    /// `GET /v1/products/{domain}/{name}`: one version (the newest without one),
    /// its manifest and health (as of `at`, unix seconds, when given).
    pub fn show(&self, target: &ProductRef, at: Option<u64>) -> Result<ShowResponse, ClientError> {
        let mut query = Vec::new();
        if let Some(v) = &target.version {
            query.push(format!("version={}", query_escape(&v.to_string())));
        }
        if let Some(at) = at {
            query.push(format!("at={at}"));
        }
        self.get(&format!(
            "{}?{}",
            product_path("/v1/products", &target.id),
            query.join("&")
        ))
    }

    /// `GET /v1/lineage/{domain}/{name}`.
    pub fn lineage(&self, id: &ProductId) -> Result<Lineage, ClientError> {
        self.get(&product_path("/v1/lineage", id))
    }

    /// `GET /v1/usage/{domain}/{name}[?version=V]`.
    pub fn usage(&self, target: &ProductRef) -> Result<ProductUsage, ClientError> {
        let path = product_path("/v1/usage", &target.id);
        match &target.version {
            Some(v) => self.get(&format!("{path}?version={v}")),
            None => self.get(&path),
        }
    }

    /// `GET /v1/access`: the access requests and decisions the node knows, pending
    /// first.
    pub fn access(&self, filter: &AccessFilter) -> Result<Vec<AccessView>, ClientError> {
        let query = query_parts(&[
            ("product", &filter.product),
            ("owner", &filter.owner),
            ("consumer", &filter.consumer),
        ]);
        if query.is_empty() {
            self.get("/v1/access")
        } else {
            self.get(&format!("/v1/access?{}", query.join("&")))
        }
    }

    /// `POST /v1/access/request`: asks the owner of a product for access.
    pub fn access_request(&self, body: &AccessRequestBody) -> Result<AccessView, ClientError> {
        self.post("/v1/access/request", body)
    }

    /// `POST /v1/access/decide`: grants, denies or revokes a domain's access.
    pub fn access_decide(&self, body: &AccessDecideBody) -> Result<AccessView, ClientError> {
        self.post("/v1/access/decide", body)
    }

    /// `GET /v1/subscriptions`: this node's subscriptions with state and lag.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionView>, ClientError> {
        self.get("/v1/subscriptions")
    }

    /// `GET /v1/subscribers/{domain}/{name}`: the nodes that follow a product.
    pub fn subscribers(&self, id: &ProductId) -> Result<Vec<SubscriberView>, ClientError> {
        self.get(&product_path("/v1/subscribers", id))
    }

    /// `POST /v1/subscriptions`: follows a product into a directory on the node's
    /// machine.
    pub fn subscribe(&self, body: &SubscribeBody) -> Result<SubscriptionView, ClientError> {
        self.post("/v1/subscriptions", body)
    }

    /// `POST /v1/subscriptions/remove`: stops following a product.
    pub fn unsubscribe(&self, id: &ProductId) -> Result<SubscriptionView, ClientError> {
        self.post(
            "/v1/subscriptions/remove",
            &UnsubscribeBody {
                product: id.to_string(),
            },
        )
    }

    /// `POST /v1/derive`: registers a derived product (`draft`) or computes a
    /// registered one again (`product`); answers where it stands.
    pub fn derive(&self, body: &DeriveBody) -> Result<DerivedProduct, ClientError> {
        self.post("/v1/derive", body)
    }

    /// `GET /v1/derived`: the derived products this node computes.
    pub fn derived(&self) -> Result<Vec<DerivedProduct>, ClientError> {
        self.get("/v1/derived")
    }

    /// `POST /v1/derive/remove`: stops computing a derived product.
    pub fn underive(&self, product: &ProductId) -> Result<DerivedProduct, ClientError> {
        self.post(
            "/v1/derive/remove",
            &UnderiveBody {
                product: product.to_string(),
            },
        )
    }

    /// `POST /v1/tokens`: makes a consumer token (its secret is in the answer only).
    pub fn token_create(&self, body: &TokenCreateBody) -> Result<TokenCreated, ClientError> {
        self.post("/v1/tokens", body)
    }

    /// `GET /v1/tokens`: this node's consumer tokens, without secrets.
    pub fn tokens(&self) -> Result<Vec<TokenView>, ClientError> {
        self.get("/v1/tokens")
    }

    /// `POST /v1/tokens/revoke`: revokes a token, or purges dead ones.
    pub fn token_revoke(&self, body: &TokenRevokeBody) -> Result<TokenRevoked, ClientError> {
        self.post("/v1/tokens/revoke", body)
    }

    /// `GET /v1/policy`: version `version`, or the current one.
    pub fn policy(&self, version: Option<u64>) -> Result<PolicyView, ClientError> {
        match version {
            Some(v) => self.get(&format!("/v1/policy?version={v}")),
            None => self.get("/v1/policy"),
        }
    }

    /// `GET /v1/policy/history`.
    pub fn policy_history(&self) -> Result<Vec<PolicyView>, ClientError> {
        self.get("/v1/policy/history")
    }

    /// `POST /v1/policy/check`: would this `product.toml` publish? (No token needed:
    /// a dry run changes nothing.)
    pub fn check(&self, manifest: &str) -> Result<CheckReport, ClientError> {
        self.post(
            "/v1/policy/check",
            &CheckRequest {
                manifest: manifest.to_string(),
            },
        )
    }

    /// `GET /metrics`: OpenMetrics text (at most 16 MiB).
    pub fn metrics(&self) -> Result<String, ClientError> {
        let resp = self.call_get("/metrics")?;
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(resp.into_reader(), MAX_METRICS_BYTES),
            &mut text,
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(text)
    }

    // --- mutations (need the token) ---

    /// `POST /v1/query`: runs `sql` on the node (fetching the products it names
    /// first) and reads the whole Arrow IPC stream it answers.
    pub fn query(&self, sql: &str) -> Result<Answer, ClientError> {
        let rows = self.query_rows(sql)?;
        let schema = rows.schema();
        let batches = rows.collect::<Result<Vec<_>, _>>()?;
        Ok(Answer { schema, batches })
    }

    /// `POST /v1/query`, its rows read as the node streams them: a batch at a
    /// time, so a caller writing them out never holds the whole answer.
    pub fn query_rows(&self, sql: &str) -> Result<AnswerRows, ClientError> {
        let mut req = self.agent.post(&format!("{}/v1/query", self.base));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let resp = req
            .timeout(QUERY_TIMEOUT)
            .send_json(QueryRequest {
                sql: sql.to_owned(),
            })
            .map_err(|e| self.map_err(e))?;
        AnswerRows::new(resp.into_reader())
    }

    /// `POST /v1/publish`: publishes the files at `path` (on the node's machine).
    pub fn publish(&self, path: &Path, manifest: &str) -> Result<Published, ClientError> {
        self.publish_with(path, manifest, PublishOptions::default())
    }

    /// `POST /v1/publish` with options (`in_place`: no copy into the store).
    pub fn publish_with(
        &self,
        path: &Path,
        manifest: &str,
        options: PublishOptions,
    ) -> Result<Published, ClientError> {
        self.post(
            "/v1/publish",
            &PublishRequest {
                path: path.to_owned(),
                manifest: manifest.to_string(),
                in_place: options.in_place,
            },
        )
    }

    /// `POST /v1/policy`: submits a signed policy.
    pub fn submit_policy(&self, signed: &Signed<Policy>) -> Result<Submitted, ClientError> {
        self.submit_envelope(&hex::encode(signed.to_bytes()))
    }

    /// `POST /v1/policy` with an envelope as hex, exactly as given.
    pub fn submit_envelope(&self, envelope_hex: &str) -> Result<Submitted, ClientError> {
        self.post(
            "/v1/policy",
            &SubmitRequest {
                envelope: envelope_hex.to_string(),
            },
        )
    }

    /// `POST /v1/peers`: a peer to keep connected to; returns the address added.
    pub fn add_peer(&self, addr: &str) -> Result<String, ClientError> {
        let answer: serde_json::Value = self.post(
            "/v1/peers",
            &AddPeerRequest {
                addr: addr.to_string(),
            },
        )?;
        Ok(answer["added"].as_str().unwrap_or(addr).to_string())
    }

    /// `POST /v1/verify`: checks every stored chunk, removes corrupt ones and (unless
    /// `no_repair`) fetches the damaged products again.
    pub fn verify(&self, request: &VerifyRequest) -> Result<VerifyReport, ClientError> {
        self.post("/v1/verify", request)
    }

    /// `POST /v1/gc`.
    pub fn gc(&self, request: &GcRequest) -> Result<GcReport, ClientError> {
        self.post("/v1/gc", request)
    }

    /// `POST /v1/fetch`: fetches `request.product` (writing it under `out` on the
    /// node's machine, if given), calling `on_event` with each progress event, and
    /// returns the outcome, or the error the node reported.
    pub fn fetch(
        &self,
        request: &FetchRequest,
        mut on_event: impl FnMut(&FetchEvent),
    ) -> Result<FetchOutcome, ClientError> {
        let reader = BufReader::new(self.post_raw("/v1/fetch", request)?.into_reader());
        for line in reader.lines() {
            let line =
                line.map_err(|e| ClientError::Protocol(format!("the fetch stream broke: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let event: FetchEvent = serde_json::from_str(&line)
                .map_err(|e| ClientError::Protocol(format!("bad fetch event: {e}")))?;
            on_event(&event);
            match event {
                FetchEvent::Done(outcome) => return Ok(outcome),
                FetchEvent::Error { message, kind } => {
                    return Err(ClientError::Api {
                        status: 0,
                        kind,
                        message,
                    })
                }
                _ => {}
            }
        }
        Err(ClientError::Protocol(
            "the fetch stream ended without a result (did the daemon stop?)".into(),
        ))
    }

    // --- transport ---

    fn map_err(&self, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Status(code, resp) => {
                let body = resp.into_string().unwrap_or_default();
                match serde_json::from_str::<ApiError>(&body) {
                    Ok(err) => ClientError::Api {
                        status: code,
                        kind: err.kind,
                        message: err.error,
                    },
                    Err(_) => ClientError::Protocol(format!("control API answered {code}: {body}")),
                }
            }
            ureq::Error::Transport(t) => ClientError::Unreachable {
                base: self.base.clone(),
                reason: t.to_string(),
            },
        }
    }

    fn call_get(&self, path: &str) -> Result<ureq::Response, ClientError> {
        let mut req = self
            .agent
            .get(&format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req.call().map_err(|e| self.map_err(e))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call_get(path)?
            .into_json()
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn post_raw<B: Serialize>(&self, path: &str, body: &B) -> Result<ureq::Response, ClientError> {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req.send_json(body).map_err(|e| self.map_err(e))
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.post_raw(path, body)?
            .into_json()
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

/// A reader that remembers the last 8 bytes it gave: an Arrow IPC stream that
/// ended whole ends with the end-of-stream marker.
/// A query's rows as the node streams them ([`ApiClient::query_rows`]): each
/// item is the next batch; an answer the node cut off (the query failed after its
/// first rows) ends with an error, never as a shorter answer.
pub struct AnswerRows {
    reader: datafusion::arrow::ipc::reader::StreamReader<
        BufReader<Tail<Box<dyn std::io::Read + Send>>>,
    >,
    ended: bool,
}

impl std::fmt::Debug for AnswerRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerRows")
            .field("schema", &self.schema())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl AnswerRows {
    fn new(body: Box<dyn std::io::Read + Send>) -> Result<Self, ClientError> {
        let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(
            BufReader::new(Tail::new(body)),
            None,
        )
        .map_err(bad_stream)?;
        Ok(AnswerRows {
            reader,
            ended: false,
        })
    }

    /// The answer's columns (known before its first row).
    pub fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.reader.schema()
    }
}

impl Iterator for AnswerRows {
    type Item = Result<datafusion::arrow::record_batch::RecordBatch, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        match self.reader.next() {
            Some(Ok(batch)) => Some(Ok(batch)),
            Some(Err(e)) => {
                self.ended = true;
                // The node aborts the body of an answer whose query failed
                // after its first rows: the transport's error says only that.
                Some(Err(match e {
                    datafusion::arrow::error::ArrowError::IoError(..) => ClientError::Protocol(format!(
                        "the answer was cut off: the query failed after its first rows (the node's log says why); reading it: {e}"
                    )),
                    e => bad_stream(e),
                }))
            }
            None => {
                self.ended = true;
                // The node streams the rows as they are made: a query that fails
                // after its first rows ends the stream without its end marker
                // (which arrow's reader takes for a normal end).
                (!self.reader.get_ref().get_ref().ended_whole()).then(|| {
                    Err(ClientError::Protocol(
                        "the answer was cut off: the query failed after its first rows (the node's log says why)".into(),
                    ))
                })
            }
        }
    }
}

fn bad_stream(e: datafusion::arrow::error::ArrowError) -> ClientError {
    ClientError::Protocol(e.to_string())
}

struct Tail<R> {
    inner: R,
    last: Vec<u8>,
}

impl<R> Tail<R> {
    fn new(inner: R) -> Self {
        Tail {
            inner,
            last: Vec::with_capacity(16),
        }
    }

    /// Whether what was read ended with the IPC end-of-stream marker.
    fn ended_whole(&self) -> bool {
        self.last.ends_with(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
    }
}

impl<R: std::io::Read> std::io::Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.last.extend_from_slice(&buf[..n]);
        let excess = self.last.len().saturating_sub(8);
        self.last.drain(..excess);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::io::Read;

    #[test]
    fn a_stream_cut_before_its_end_marker_is_told_from_a_whole_one() {
        let batch = RecordBatch::try_from_iter([(
            "n",
            std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        )])
        .expect("a batch");
        let mut w =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
                .expect("a writer");
        w.write(&batch).expect("written");
        let cut = w.get_ref().clone();
        w.finish().expect("finished");
        let whole = w.into_inner().expect("the bytes");
        for (bytes, ended) in [(whole.clone(), true), (cut.clone(), false)] {
            let mut t = Tail::new(&bytes[..]);
            let mut sink = Vec::new();
            t.read_to_end(&mut sink).expect("read");
            assert_eq!(t.ended_whole(), ended);
        }
        // Read as rows: the cut answer gives its batch, then an error.
        let rows = |bytes: Vec<u8>| {
            AnswerRows::new(Box::new(std::io::Cursor::new(bytes)))
                .expect("a stream")
                .map(|r| r.map(|b| b.num_rows()).map_err(|e| e.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(whole), vec![Ok(3)]);
        let read = rows(cut);
        assert_eq!(read.len(), 2, "{read:?}");
        assert_eq!(read[0], Ok(3));
        assert!(
            read[1].as_ref().is_err_and(|e| e.contains("cut off")),
            "{read:?}"
        );
    }
}
