//! `mesh query`: SQL over the products of the mesh, run on this node.
//!
//! Phases: [`references`] reads which products the query names (`domain.product`
//! is the newest version the rules let this node read, `"domain"."product@1.2.0"`
//! a given one, `domain.product.object` one schema object of a product with
//! several); [`prepare_source`] fetches the files of the objects the query reads
//! (no other) through the mesh like any fetch (verified, the rules and grants
//! enforced) into a directory of this node's home keyed by the manifest hash
//! (`query/<hash>/`, kept for the next query); then the
//! engine (`mesh_contract::engine`) registers each product's objects with the
//! types its contract declares (`mesh_contract::tables`) and runs the query,
//! read-only, within [`QUERY_DEADLINE`] and the engine's memory pool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::config::Dialect;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use mesh_contract::engine::{self, Answer, QueryError as EngineError};
use mesh_contract::quality::Plan;
use mesh_contract::tables::{object_files, product_tables};
use mesh_protocol::manifest::Upstream;
use mesh_protocol::{DomainName, Manifest, ManifestHash, ProductRef};

use super::fetch::{FetchError, Fetcher};
use crate::home::HomeError;
use crate::state::catalog::CatalogEntry;
use crate::state::StateError;

/// The longest a query may run, its fetches not counted.
pub(crate) const QUERY_DEADLINE: Duration = Duration::from_secs(300);

/// The longest query text accepted, in bytes.
pub(crate) const MAX_QUERY_BYTES: usize = 256 * 1024;

/// Why a query gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query names no product, or names one in a form this node does not read.
    #[error("{0}")]
    Usage(String),
    /// A product could not be had (unknown, denied by a rule, no provider); the
    /// fetch's own error, with the product named.
    #[error("{}", named(product, source))]
    Product {
        /// The product as the query names it.
        product: String,
        /// Why it could not be fetched (boxed: a fetch error is large).
        source: Box<FetchError>,
    },
    /// The query directory of the node home failed.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The engine refused or failed the query.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The query's thread failed (a bug, or the node is shutting down).
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
}

/// The fetch's message, led by the product unless it names it already.
fn named(product: &str, source: &FetchError) -> String {
    let message = source.to_string();
    if message.contains(product) {
        message
    } else {
        format!("{product}: {message}")
    }
}

/// A product a query names, and how.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    /// As written in the query.
    pub(crate) table: TableReference,
    /// The product and version.
    pub(crate) product: ProductRef,
    /// The schema object, for `domain.product.object`.
    pub(crate) object: Option<String>,
}

/// The products `sql` names; a bare table name is a usage error.
pub(crate) fn references(sql: &str) -> Result<Vec<Reference>, QueryError> {
    if sql.len() > MAX_QUERY_BYTES {
        return Err(QueryError::Usage(format!(
            "the query is {} bytes, more than {MAX_QUERY_BYTES}",
            sql.len()
        )));
    }
    let ctx = engine::session()?;
    let state = ctx.state();
    let statement = state
        .sql_to_statement(sql, &Dialect::default())
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    let tables = state
        .resolve_table_references(&statement)
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    let mut out = Vec::new();
    for table in tables {
        let (domain, product, object) = match &table {
            TableReference::Partial { schema, table } => (schema.clone(), table.clone(), None),
            TableReference::Full {
                catalog,
                schema,
                table,
            } => (catalog.clone(), schema.clone(), Some(table.to_string())),
            TableReference::Bare { table } => {
                return Err(QueryError::Usage(format!(
                    "table {table:?}: name a product as domain.product (e.g. sales.orders), \
                     \"domain\".\"product@1.2.0\" for a version, or domain.product.object"
                )))
            }
        };
        let product: ProductRef = format!("{domain}/{product}").parse().map_err(|e| {
            QueryError::Usage(format!("table {table}: not a product reference: {e}"))
        })?;
        out.push(Reference {
            table,
            product,
            object,
        });
    }
    if out.is_empty() {
        return Err(QueryError::Usage(
            "the query names no product: name one as domain.product (e.g. SELECT * FROM sales.orders)"
                .into(),
        ));
    }
    Ok(out)
}

/// A product's files, ready to read: its manifest and where its files are.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The version's manifest hash.
    pub(crate) hash: ManifestHash,
    /// The verified manifest.
    pub(crate) manifest: Manifest,
    /// The directory holding its files.
    pub(crate) dir: PathBuf,
    /// The files the query reads (relative paths), all in `dir`.
    pub(crate) files: BTreeSet<String>,
}

/// Moves each of `files` fetched (verified) into `tmp` to `dir`, unless another
/// query put it there first, then removes `tmp`. A file in `dir` is whole and
/// verified: each one appears by a rename.
fn settle(tmp: &Path, dir: &Path, files: &BTreeSet<String>) -> Result<(), QueryError> {
    for rel in files {
        let (from, to) = (tmp.join(rel), dir.join(rel));
        if to.is_file() {
            continue;
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(HomeError::io(parent))?;
        }
        if let Err(e) = std::fs::rename(&from, &to) {
            if !to.is_file() {
                let _ = std::fs::remove_dir_all(tmp);
                return Err(HomeError::io(&to)(e).into());
            }
        }
    }
    let _ = std::fs::remove_dir_all(tmp);
    Ok(())
}

/// The files of `manifest` that the tables of `objects` read (`None`: the
/// product's first object with data), as `register` maps them.
fn wanted_files(manifest: &Manifest, objects: &BTreeSet<Option<String>>) -> BTreeSet<String> {
    let plan = Plan::new(
        &manifest.schema,
        &manifest.null_values,
        manifest.contract.as_ref(),
    );
    let files: Vec<(String, u64)> = manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), f.size))
        .collect();
    objects
        .iter()
        .filter_map(|o| object_files(&plan, &files, o.as_deref()))
        .flatten()
        .collect()
}

/// Whose rules and grants decide what a query may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// This node, as its own domain: `mesh query` and the control API.
    Node,
    /// A consumer domain, for a consumer token of an output port: each product
    /// is read only if the rules and grants let that domain fetch it (and this
    /// node can fetch it too).
    Domain(DomainName),
}

/// What a query run returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The rows.
    Rows,
    /// Only the columns, planned but not run (a prepared statement's schema).
    Schema,
}

/// The catalog entry and verified manifest of `product`, if `reader` may read it
/// now: this node's rules and grants, and for a consumer its domain's, judged on
/// every call (so a copy kept here is never read after a revocation).
pub(crate) async fn readable_version(
    fetcher: &Fetcher,
    product: &ProductRef,
    reader: &Reader,
) -> Result<(CatalogEntry, Manifest), QueryError> {
    let named = |source| QueryError::Product {
        product: product.to_string(),
        source: Box::new(source),
    };
    let (entry, manifest) = fetcher.describe(product).await.map_err(named)?;
    let manifest = manifest.map_err(named)?;
    fetcher.may_read(&manifest).map_err(named)?;
    if let Reader::Domain(domain) = reader {
        fetcher.may_domain_read(domain, &manifest).map_err(named)?;
    }
    Ok((entry, manifest))
}

/// Brings the files of `product` that the tables of `objects` read (verified,
/// rules and grants enforced for this node and, for a consumer, for `reader`)
/// into `root/query/<manifest hash>/`, fetching only those not there yet: the
/// other objects' files are never transferred. A copy there is read under the
/// current rules too, never after a revocation.
pub(crate) async fn prepare_source(
    fetcher: &Fetcher,
    root: &Path,
    product: &ProductRef,
    objects: &BTreeSet<Option<String>>,
    reader: &Reader,
) -> Result<Source, QueryError> {
    let named = |source| QueryError::Product {
        product: product.to_string(),
        source: Box::new(source),
    };
    let (entry, manifest) = readable_version(fetcher, product, reader).await?;
    let hash = entry.announcement.manifest;
    let dir = root.join("query").join(hash.to_string());
    let files = wanted_files(&manifest, objects);
    let missing: BTreeSet<String> = files
        .iter()
        .filter(|rel| !dir.join(rel).is_file())
        .cloned()
        .collect();
    if !missing.is_empty() {
        let exact = ProductRef {
            id: product.id.clone(),
            version: Some(entry.announcement.version.clone()),
        };
        // Into a directory of its own, each file renamed into place when whole:
        // two queries reading the same new version at once each fetch.
        let tmp = root.join("query").join(format!(
            ".partial-{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        if let Err(e) = fetcher.fetch_files(&exact, tmp.clone(), &missing).await {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(named(e));
        }
        settle(&tmp, &dir, &missing)?;
    }
    Ok(Source {
        hash,
        manifest,
        dir,
        files,
    })
}

/// A query whose products are on this node, ready to register and run.
pub(crate) struct Prepared {
    refs: Vec<Reference>,
    sources: BTreeMap<String, Source>,
}

impl Prepared {
    /// Each product read, pinned to the version read (for a derived product's
    /// lineage), in the order first named.
    pub(crate) fn inputs(&self) -> Vec<Upstream> {
        let mut out: Vec<Upstream> = Vec::new();
        for r in &self.refs {
            if let Some(s) = self.sources.get(&r.product.to_string()) {
                if !out.iter().any(|u| u.manifest == Some(s.hash)) {
                    out.push(Upstream {
                        id: s.manifest.id.clone(),
                        manifest: Some(s.hash),
                    });
                }
            }
        }
        out
    }

    /// Registers each product the query names in `ctx`.
    pub(crate) async fn register(&self, ctx: &SessionContext) -> Result<(), EngineError> {
        register(ctx, &self.refs, &self.sources).await
    }
}

/// Reads which products `sql` names and brings each onto this node as `reader`
/// may (see [`prepare_source`]).
pub(crate) async fn prepare(
    fetcher: &Fetcher,
    root: &Path,
    sql: &str,
    reader: &Reader,
) -> Result<Prepared, QueryError> {
    let refs = references(sql)?;
    // Each product once, with every object the query reads of it.
    let mut wanted: BTreeMap<String, (&ProductRef, BTreeSet<Option<String>>)> = BTreeMap::new();
    for r in &refs {
        let slot = wanted
            .entry(r.product.to_string())
            .or_insert_with(|| (&r.product, BTreeSet::new()));
        slot.1.insert(r.object.clone());
    }
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    for (key, (product, objects)) in wanted {
        let source = prepare_source(fetcher, root, product, &objects, reader).await?;
        sources.insert(key, source);
    }
    Ok(Prepared { refs, sources })
}

/// Runs `sql` over the products it names as `reader`, fetching each first (see
/// the module documentation); `root` is the node home's. With [`Want::Schema`]
/// the answer has the columns and no rows.
pub(crate) async fn query(
    fetcher: &Fetcher,
    root: &Path,
    sql: &str,
    reader: &Reader,
    want: Want,
) -> Result<Answer, QueryError> {
    let prepared = prepare(fetcher, root, sql, reader).await?;
    let sql = sql.to_owned();
    let work = move || {
        engine::run(QUERY_DEADLINE, move || async move {
            let ctx = engine::session()?;
            prepared.register(&ctx).await?;
            match want {
                Want::Rows => engine::collect(&ctx, &sql).await,
                Want::Schema => engine::plan_schema(&ctx, &sql).await.map(|schema| Answer {
                    schema,
                    batches: Vec::new(),
                }),
            }
        })
        .map_err(QueryError::from)
    };
    crate::task::blocking(work).await
}

/// The most products a listing for a reader returns.
pub(crate) const MAX_LISTED: usize = 10_000;

/// The newest version of each product `reader` may read whose manifest this
/// node knows (at most [`MAX_LISTED`]): what a Flight SQL client browsing the
/// tables sees. Blocking (the catalog's store).
pub(crate) fn readable(fetcher: &Fetcher, reader: &Reader) -> Result<Vec<Manifest>, StateError> {
    let entries = fetcher.catalog.list(&Default::default())?;
    let mut newest: BTreeMap<String, ManifestHash> = BTreeMap::new();
    for e in entries {
        // Sorted by id then version: the last of each id is its newest.
        newest.insert(e.announcement.product.to_string(), e.announcement.manifest);
    }
    let mut out = Vec::new();
    for hash in newest.values() {
        let Some((_, m)) = fetcher.catalog.manifest(hash)? else {
            continue; // not fetched yet: its columns are unknown
        };
        let allowed = match reader {
            Reader::Node => fetcher.may_read(&m).is_ok(),
            Reader::Domain(d) => fetcher.may_domain_read(d, &m).is_ok(),
        };
        if allowed {
            out.push(m);
            if out.len() >= MAX_LISTED {
                break;
            }
        }
    }
    Ok(out)
}

/// The rows of a streamed answer, batch by batch; an error ends it.
pub type QueryRows = mpsc::Receiver<Result<RecordBatch, QueryError>>;

/// Batches a streamed answer may run ahead of its reader.
const STREAM_AHEAD: usize = 4;

/// Runs `sql` as `reader` like [`query`], but hands back its columns at once and
/// its rows as they are made, each batch waiting for the reader to take the one
/// before (so a large answer is never held whole). `hold` is kept until the
/// last row is sent (the node's shared work lock).
pub(crate) async fn query_stream<H: Send + 'static>(
    fetcher: &Fetcher,
    root: &Path,
    sql: &str,
    reader: &Reader,
    hold: H,
) -> Result<(SchemaRef, QueryRows), QueryError> {
    let prepared = prepare(fetcher, root, sql, reader).await?;
    let (schema_tx, schema_rx) = oneshot::channel();
    let (tx, mut rx) = mpsc::channel(STREAM_AHEAD);
    let sql = sql.to_owned();
    let rows = tx.clone();
    tokio::task::spawn_blocking(move || {
        let _hold = hold;
        let ran = engine::run(QUERY_DEADLINE, move || async move {
            let ctx = engine::session()?;
            prepared.register(&ctx).await?;
            let fail = |e: datafusion::error::DataFusionError| EngineError::Failed(e.to_string());
            let frame = ctx
                .sql_with_options(&sql, engine::read_only())
                .await
                .map_err(fail)?;
            let _ = schema_tx.send(Arc::new(frame.schema().as_arrow().clone()));
            let mut stream = frame.execute_stream().await.map_err(fail)?;
            while let Some(batch) = stream.next().await {
                if rows.send(batch.map_err(|e| fail(e).into())).await.is_err() {
                    break; // the reader left
                }
            }
            Ok(())
        });
        if let Err(e) = ran {
            let _ = tx.blocking_send(Err(e.into()));
        }
    });
    match schema_rx.await {
        Ok(schema) => Ok((schema, rx)),
        Err(_) => Err(match rx.recv().await {
            Some(Err(e)) => e,
            _ => EngineError::Failed("the query ended before it was planned".into()).into(),
        }),
    }
}

/// Registers each reference's table in `ctx`.
async fn register(
    ctx: &SessionContext,
    refs: &[Reference],
    sources: &BTreeMap<String, Source>,
) -> Result<(), EngineError> {
    let fail = |e: datafusion::error::DataFusionError| EngineError::Failed(e.to_string());
    for r in refs {
        let Some(source) = sources.get(&r.product.to_string()) else {
            continue;
        };
        let m = &source.manifest;
        let plan = Plan::new(&m.schema, &m.null_values, m.contract.as_ref());
        let files: Vec<(String, PathBuf)> = source
            .files
            .iter()
            .map(|rel| (rel.clone(), source.dir.join(rel)))
            .collect();
        let tables = product_tables(ctx, &plan, &files).await?;
        let chosen = match &r.object {
            Some(o) => tables
                .into_iter()
                .find(|t| &t.name == o || t.physical_name.as_deref() == Some(o.as_str())),
            None => tables.into_iter().next(),
        };
        let Some(table) = chosen else {
            return Err(EngineError::Failed(format!(
                "{} has no schema object {} with data files; its objects: {}",
                r.product,
                r.object.as_deref().unwrap_or("(any)"),
                plan.object_names().join(", ")
            )));
        };
        ensure_schema(ctx, &r.table)?;
        ctx.register_table(r.table.clone(), table.frame.into_view())
            .map_err(fail)?;
    }
    Ok(())
}

/// Creates the catalog and schema a reference names, if missing.
fn ensure_schema(ctx: &SessionContext, table: &TableReference) -> Result<(), EngineError> {
    let fail = |e: datafusion::error::DataFusionError| EngineError::Failed(e.to_string());
    let catalog_name = table.catalog().unwrap_or("datafusion");
    let catalog = match ctx.catalog(catalog_name) {
        Some(c) => c,
        None => {
            let c: Arc<dyn CatalogProvider> = Arc::new(MemoryCatalogProvider::new());
            ctx.register_catalog(catalog_name, c.clone());
            c
        }
    };
    if let Some(schema) = table.schema() {
        if catalog.schema(schema).is_none() {
            catalog
                .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
                .map_err(fail)?;
        }
    }
    Ok(())
}
