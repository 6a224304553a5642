//! The Arrow Flight SQL port: any Flight SQL client (the ADBC and JDBC drivers,
//! DBeaver, pandas through ADBC) runs SQL over the mesh's products, named as in
//! `mesh query` (`domain.product`, `"domain"."product@1.2.0"`,
//! `domain.product.object`).
//!
//! Every call presents a consumer token (`Authorization: Bearer <token>`, made
//! with `mesh token create`); it is checked on each call, so a revocation or an
//! expiry applies to the next one, and the query reads as the token's domain:
//! a product the rules and grants do not let that domain fetch fails with the
//! rule, as a fetch would.
//!
//! A statement is planned when its `FlightInfo` is asked for (its products
//! fetched through the mesh, its columns known) and run when its ticket is
//! redeemed, the rows streamed as they are made. Tickets and prepared-statement
//! handles carry the query and the token's id, sealed with a key of this process
//! (keyed BLAKE3): the server keeps no per-statement state, a client cannot forge
//! or alter one, and another token cannot redeem it. Prepared statements work
//! without parameters; binding parameters is refused with a message. The port is
//! read-only: updates and ingestion are refused. Browsing lists no catalog, a
//! schema per domain and a table per product the token may read (its newest
//! version, with its contract's columns), so a tool that qualifies names writes
//! `domain.product`, as queries name it.

use std::pin::Pin;
use std::time::Duration;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use futures::{Stream, StreamExt};
use mesh_contract::engine;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};
use tracing::warn;

use super::Bound;
use crate::error::{ErrorClass, NodeError};
use crate::home::HomeError;
use crate::node::Node;
use crate::ops::query::{Reader, MAX_QUERY_BYTES};
use crate::state::tokens::ConsumerToken;

/// The largest request message accepted (a query is at most
/// [`MAX_QUERY_BYTES`]).
const MAX_REQUEST: usize = MAX_QUERY_BYTES + 64 * 1024;

/// Calls one connection may have in flight.
const CALLS_PER_CONNECTION: usize = 32;

/// The longest a sealed handle may be: the query, the token id and the seal.
const MAX_HANDLE: usize = MAX_QUERY_BYTES * 2 + 1024;

/// The Flight SQL service over a [`Node`].
pub(crate) struct FlightSqlPort {
    node: Node,
    /// Seals tickets and handles; a new one each start, so a restart voids them.
    key: [u8; 32],
}

/// What a ticket or prepared-statement handle carries, before its seal.
#[derive(Serialize, Deserialize)]
struct Statement {
    /// The query.
    sql: String,
    /// The id of the token it was planned for.
    token: String,
}

/// Serves Flight SQL on `bound` until `shutdown`; fails at once on a TLS
/// certificate or key that does not load.
pub(crate) fn start(
    bound: Bound,
    node: Node,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, HomeError> {
    let port = FlightSqlPort {
        node,
        key: rand::random(),
    };
    let service = FlightServiceServer::new(port).max_decoding_message_size(MAX_REQUEST);
    let mut server = Server::builder()
        .concurrency_limit_per_connection(CALLS_PER_CONNECTION)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    if let Some((cert, key)) = bound.tls {
        // rustls is built with two crypto providers here (ring, aws-lc): name one
        // for the process. An error means one is installed already, which serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        server = server.tls_config(tls).map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            HomeError::Invalid(format!(
                "[flight_sql] the TLS certificate or key does not load ({why}); give PEM files: tls_cert the certificate chain, tls_key its private key"
            ))
        })?;
    }
    let router = server.add_service(service);
    let incoming = TcpIncoming::from(bound.listener).with_nodelay(Some(true));
    Ok(tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
        {
            warn!("Flight SQL port stopped: {e}");
        }
    }))
}

/// The gRPC status of a node error, by whose fault it is.
fn status(e: NodeError) -> Status {
    let message = e.to_string();
    match e.class() {
        ErrorClass::Usage | ErrorClass::InvalidManifest | ErrorClass::InvalidData => {
            Status::invalid_argument(message)
        }
        ErrorClass::NotFound => Status::not_found(message),
        ErrorClass::Rejected => Status::permission_denied(message),
        ErrorClass::Unavailable => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

/// The bearer token of a call's headers.
fn bearer(metadata: &MetadataMap) -> Result<String, Status> {
    let missing = || {
        Status::unauthenticated(
            "present a consumer token of this node as `Authorization: Bearer <token>` (make one with `mesh token create --domain DOMAIN` on the node)",
        )
    };
    let value = metadata.get("authorization").ok_or_else(missing)?;
    let text = value.to_str().map_err(|_| missing())?;
    text.strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(|t| t.trim().to_string())
        .ok_or_else(missing)
}

/// A read-only refusal.
fn read_only(what: &str) -> Status {
    Status::permission_denied(format!(
        "{what}: the mesh's Flight SQL port is read-only; a domain changes its products by publishing them (`mesh publish`)"
    ))
}

impl FlightSqlPort {
    /// The live consumer token a call presents.
    async fn consumer(&self, metadata: &MetadataMap) -> Result<ConsumerToken, Status> {
        let presented = bearer(metadata)?;
        self.node
            .authenticate(presented)
            .await
            .map_err(status)?
            .map_err(|refused| Status::unauthenticated(refused.to_string()))
    }

    /// `statement` sealed: its JSON, then the keyed BLAKE3 of that JSON.
    fn seal(&self, statement: &Statement) -> Result<Vec<u8>, Status> {
        let mut bytes =
            serde_json::to_vec(statement).map_err(|e| Status::internal(e.to_string()))?;
        let mac = blake3::keyed_hash(&self.key, &bytes);
        bytes.extend_from_slice(mac.as_bytes());
        Ok(bytes)
    }

    /// The query of a sealed handle, if the seal holds and it was made for `token`.
    fn open(&self, handle: &[u8], token: &ConsumerToken) -> Result<String, Status> {
        let stale = || {
            Status::invalid_argument(
                "this statement handle or ticket was not issued by this node process (it restarted, or the handle was altered): plan the query again",
            )
        };
        if handle.len() > MAX_HANDLE || handle.len() < 32 {
            return Err(stale());
        }
        let (body, mac) = handle.split_at(handle.len() - 32);
        let mac: [u8; 32] = mac.try_into().map_err(|_| stale())?;
        // blake3::Hash compares in constant time.
        if blake3::keyed_hash(&self.key, body) != blake3::Hash::from(mac) {
            return Err(stale());
        }
        let statement: Statement = serde_json::from_slice(body).map_err(|_| stale())?;
        if statement.token != token.id {
            return Err(Status::permission_denied(
                "this statement was planned for another token",
            ));
        }
        Ok(statement.sql)
    }

    /// Plans `sql` for `token` and describes how to get its rows: the columns,
    /// and one endpoint whose ticket is the sealed statement.
    async fn plan(
        &self,
        sql: String,
        token: &ConsumerToken,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let reader = Reader::Domain(token.domain.clone());
        let schema = self
            .node
            .query_schema(&sql, &reader)
            .await
            .map_err(status)?;
        let handle = self.seal(&Statement {
            sql,
            token: token.id.clone(),
        })?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("encoding the columns: {e}")))
            .map(|info| {
                info.with_endpoint(endpoint)
                    .with_descriptor(descriptor)
                    .with_ordered(true)
            })
    }

    /// A listing's `FlightInfo`, for a caller with a live token: its columns and
    /// one endpoint whose ticket is the command itself.
    async fn listing(
        &self,
        request: Request<FlightDescriptor>,
        ticket: Vec<u8>,
        schema: &Schema,
    ) -> Result<Response<FlightInfo>, Status> {
        self.consumer(request.metadata()).await?;
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    /// The products the call's token may read.
    async fn readable(
        &self,
        metadata: &MetadataMap,
    ) -> Result<Vec<mesh_protocol::Manifest>, Status> {
        let token = self.consumer(metadata).await?;
        self.node
            .readable_products(Reader::Domain(token.domain))
            .await
            .map_err(status)
    }

    /// What `mesh` tells clients about itself.
    fn sql_info() -> Result<SqlInfoData, Status> {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "mesh");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
        b.append(SqlInfo::FlightSqlServerCancel, false);
        b.build().map_err(|e| Status::internal(e.to_string()))
    }
}

/// The stream type of a `DoGet` answer.
type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

#[tonic::async_trait]
impl FlightSqlService for FlightSqlPort {
    type FlightService = FlightSqlPort;

    /// A client that handshakes (some send basic credentials first) is told to
    /// use a bearer token; one that presents a live token gets it back.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let token = self.consumer(request.metadata()).await?;
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.id.into_bytes().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(answer)]))))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let token = self.consumer(request.metadata()).await?;
        let info = self.plan(query.query, &token, request.into_inner()).await?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let token = self.consumer(request.metadata()).await?;
        let sql = self.open(&cmd.prepared_statement_handle, &token)?;
        let info = self.plan(sql, &token, request.into_inner()).await?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let token = self.consumer(request.metadata()).await?;
        let sql = self.open(&ticket.statement_handle, &token)?;
        let reader = Reader::Domain(token.domain.clone());
        let (schema, rows) = self
            .node
            .query_stream(&sql, &reader)
            .await
            .map_err(status)?;
        let batches = futures::stream::unfold(rows, |mut rows| async move {
            rows.recv().await.map(|item| (item, rows))
        })
        .map(|item| item.map_err(|e| FlightError::ExternalError(Box::new(e))));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map(|item| item.map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let token = self.consumer(request.metadata()).await?;
        let reader = Reader::Domain(token.domain.clone());
        let schema = self
            .node
            .query_schema(&query.query, &reader)
            .await
            .map_err(status)?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
        let IpcMessage(parameter_schema) =
            SchemaAsIpc::new(&Schema::empty(), &IpcWriteOptions::default())
                .try_into()
                .map_err(|e: datafusion::arrow::error::ArrowError| {
                    Status::internal(e.to_string())
                })?;
        let handle = self.seal(&Statement {
            sql: query.query,
            token: token.id,
        })?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles hold no server state; closing one only checks the caller.
        self.consumer(request.metadata()).await.map(|_| ())
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.consumer(request.metadata()).await?;
        Err(Status::invalid_argument(
            "prepared statements on the mesh's Flight SQL port take no parameters: write the values into the query text, or run it without binding",
        ))
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("an update"))
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("ingestion"))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only("an update"))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = Self::sql_info()?;
        let ticket = query.as_any().encode_to_vec();
        self.listing(request, ticket, &query.into_builder(&info).schema())
            .await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.consumer(request.metadata()).await?;
        let info = Self::sql_info()?;
        let builder = query.into_builder(&info);
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build()))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        self.listing(request, ticket, &query.into_builder().schema())
            .await
    }

    /// No catalogs: a table is `domain.product`, a schema and a table.
    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.consumer(request.metadata()).await?;
        let builder = query.into_builder();
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        self.listing(request, ticket, &query.into_builder().schema())
            .await
    }

    /// A schema per domain with a product the token may read.
    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let products = self.readable(request.metadata()).await?;
        let domains: std::collections::BTreeSet<String> =
            products.iter().map(|m| m.id.domain().to_string()).collect();
        let mut builder = query.into_builder();
        for d in domains {
            builder.append("", d);
        }
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        self.listing(request, ticket, &query.into_builder().schema())
            .await
    }

    /// A table per product the token may read (its newest version), with the
    /// columns its contract declares.
    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let products = self.readable(request.metadata()).await?;
        let mut builder = query.into_builder();
        for m in &products {
            let fields: Vec<Field> = m
                .schema
                .iter()
                .map(|f| Field::new(&f.name, engine::arrow_type(f.logical_type), !f.required))
                .collect();
            builder
                .append(
                    "",
                    m.id.domain().as_str(),
                    m.id.name(),
                    "TABLE",
                    &Schema::new(fields),
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let schema = builder.schema();
        Ok(one_batch(schema, builder.build()))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// One built batch (or its error) as a `DoGet` answer.
fn one_batch(
    schema: datafusion::arrow::datatypes::SchemaRef,
    batch: Result<datafusion::arrow::record_batch::RecordBatch, FlightError>,
) -> Response<DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { batch }))
        .map(|item| item.map_err(Status::from));
    Response::new(Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_from_the_headers_and_its_absence_explained() {
        let mut m = MetadataMap::new();
        let err = bearer(&m).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(
            err.message().contains("mesh token create"),
            "{}",
            err.message()
        );
        m.insert("authorization", "Bearer mesh_abc".parse().unwrap());
        assert_eq!(bearer(&m).unwrap(), "mesh_abc");
        m.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert!(bearer(&m).is_err());
    }
}
