//! A product's schema objects as tables of the SQL engine ([`crate::engine`]): each
//! object's files (mapped as the quality checks map them, by name, `physicalName`
//! or folder) read by DataFusion's own readers with the types the contract
//! declares, not re-inferred.
//!
//! - CSV: each file's header names its columns (a declared delimiter wins, else the
//!   header tells); cells equal to a null marker (`NA`) are nulls and a declared
//!   property is cast from text to its logical type (a value that does not parse
//!   fails the query, naming it); undeclared columns are left out.
//! - JSON lines (`.jsonl`, `.ndjson`) and JSON arrays (`.json`): keys by name, nested
//!   objects and arrays as the contract's `properties` and `items` declare them.
//! - Parquet: the file's own types, each scalar property cast to its logical type.
//!
//! Every group of files read alike becomes one frame projected to the object's
//! properties in contract order (a property a group lacks is null), and the
//! groups are unioned: one table per object.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::functions::core::expr_fn::nullif;
use datafusion::logical_expr::{cast, ident, lit, Expr};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, SessionContext};

use mesh_protocol::manifest::LogicalType;

use crate::engine::{arrow_type, is_text, QueryError};
use crate::quality::csv::CsvReader;
use crate::quality::shape::Shape;
use crate::quality::{files_by_object, DataFile, Format, Plan};

/// One schema object, as a table.
#[derive(Debug)]
pub struct ObjectTable {
    /// The object's name in the contract (empty for `product.toml`'s schema).
    pub name: String,
    /// Its `physicalName`, if it has one.
    pub physical_name: Option<String>,
    /// Its rows: every file of the object, projected to its properties.
    pub frame: DataFrame,
}

/// The object's top-level properties: `(name in the files, logical type, shape)`.
fn columns(plan: &Plan, o: usize) -> Vec<(String, LogicalType, Shape)> {
    plan.objects[o]
        .columns
        .iter()
        .filter(|c| !c.nested())
        .map(|c| (c.column.clone(), c.logical_type, c.shape.clone()))
        .collect()
}

/// The Arrow type a property is read as from a nested format (JSON, the cast
/// target of Parquet): its shape's structs and lists, scalars by logical type.
fn nested_type(t: LogicalType, shape: &Shape) -> DataType {
    match t {
        LogicalType::Object if !shape.fields.is_empty() => DataType::Struct(Fields::from(
            shape
                .fields
                .iter()
                .map(|(name, s)| {
                    let t = s.logical_type.unwrap_or(LogicalType::String);
                    Field::new(name, nested_type(t, s), true)
                })
                .collect::<Vec<_>>(),
        )),
        LogicalType::Array => {
            let items = shape.items.as_deref();
            let t = items
                .and_then(|s| s.logical_type)
                .unwrap_or(LogicalType::String);
            let item = nested_type(t, items.unwrap_or(&Shape::default()));
            DataType::List(Arc::new(Field::new("item", item, true)))
        }
        other => arrow_type(other),
    }
}

/// What makes files readable as one group: format, extension, and for CSV the
/// header, delimiter and markers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    format: Format,
    extension: String,
    header: Vec<String>,
    delimiter: u8,
    markers: Vec<String>,
}

/// A CSV file's header and delimiter; `None` for an empty file.
fn csv_header(f: &DataFile) -> Result<Option<(Vec<String>, u8)>, QueryError> {
    let file = File::open(&f.path).map_err(|e| read_error(f, &e))?;
    let mut reader = CsvReader::new(BufReader::new(file));
    reader.declare_delimiter(f.delimiter);
    let Some(header) = reader.next_record().map_err(|e| read_error(f, &e))? else {
        return Ok(None);
    };
    let delimiter = u8::try_from(reader.delimiter()).map_err(|_| {
        QueryError::Failed(format!(
            "{}: the delimiter {:?} is not one byte",
            f.rel,
            reader.delimiter()
        ))
    })?;
    Ok(Some((
        header.iter().map(|h| h.trim().to_owned()).collect(),
        delimiter,
    )))
}

fn read_error(f: &DataFile, e: &dyn std::fmt::Display) -> QueryError {
    QueryError::Failed(format!("{}: {e}", f.rel))
}

fn key_of(f: &DataFile) -> Result<Option<GroupKey>, QueryError> {
    let extension = f
        .path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut key = GroupKey {
        format: f.format,
        extension,
        header: Vec::new(),
        delimiter: b',',
        markers: Vec::new(),
    };
    if f.format == Format::Csv {
        let Some((header, delimiter)) = csv_header(f)? else {
            return Ok(None);
        };
        key.header = header;
        key.delimiter = delimiter;
        key.markers = f.markers.clone();
    }
    Ok(Some(key))
}

/// Reads one group of files as a frame.
async fn read_group(
    ctx: &SessionContext,
    key: &GroupKey,
    paths: Vec<String>,
    cols: &[(String, LogicalType, Shape)],
) -> Result<DataFrame, QueryError> {
    let fail = |e: datafusion::error::DataFusionError| QueryError::Failed(e.to_string());
    match key.format {
        Format::Csv => {
            // All text: DataFusion 55 does not apply a null regex while reading,
            // so markers are taken out (NULLIF) and the types cast in `project`.
            let schema = Schema::new(
                key.header
                    .iter()
                    .map(|h| Field::new(h, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            );
            let options = CsvReadOptions::new()
                .has_header(true)
                .delimiter(key.delimiter)
                .schema(&schema)
                .file_extension(&key.extension)
                .newlines_in_values(true);
            ctx.read_csv(paths, options).await.map_err(fail)
        }
        Format::JsonLines | Format::Json => {
            let schema = Schema::new(
                cols.iter()
                    .map(|(c, t, s)| Field::new(c, nested_type(*t, s), true))
                    .collect::<Vec<_>>(),
            );
            let options = JsonReadOptions::default()
                .schema(&schema)
                .file_extension(&key.extension)
                .newline_delimited(key.format == Format::JsonLines);
            ctx.read_json(paths, options).await.map_err(fail)
        }
        Format::Parquet => read_parquet(ctx, key, paths).await.map_err(fail),
    }
}

/// From this many bytes of Parquet on, a query's filters run inside the reader
/// (`pushdown_filters`, cheapest first): rows a predicate drops are never decoded
/// in full. Below it the reader's row selections cost more than they save
/// (`bench/query`: on nycflights13's 5 MB `flights.parquet` a filter took 14.5 ms
/// with them and 9.2 without, a join 23 and 16.7 ms; on the 1 GiB synthetic
/// copy's 0.6 GB a filter 0.13 s with them and 0.19 without).
pub const PUSHDOWN_MIN_BYTES: u64 = 64 << 20;

/// Reads a group of Parquet files as one table, its filters pushed into the
/// reader when the files hold at least [`PUSHDOWN_MIN_BYTES`].
async fn read_parquet(
    ctx: &SessionContext,
    key: &GroupKey,
    paths: Vec<String>,
) -> datafusion::error::Result<DataFrame> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    let bytes: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut options = ctx.copied_table_options().parquet;
    options.global.pushdown_filters = bytes >= PUSHDOWN_MIN_BYTES;
    let listing = ListingOptions::new(Arc::new(ParquetFormat::new().with_options(options)))
        .with_file_extension(&key.extension);
    let urls = paths
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(listing)
        .infer_schema(&ctx.state())
        .await?;
    ctx.read_table(Arc::new(ListingTable::try_new(config)?))
}

/// `frame` projected to the object's properties, in contract order. From CSV
/// (`markers` given) each cell equal to a marker is null and the rest is cast
/// from text; a value that does not parse fails the query, naming it.
fn project(
    frame: DataFrame,
    cols: &[(String, LogicalType, Shape)],
    markers: Option<&[String]>,
) -> Result<DataFrame, QueryError> {
    let present: Vec<(String, DataType)> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let exprs: Vec<Expr> = cols
        .iter()
        .map(|(c, t, s)| {
            let found = present.iter().find(|(p, _)| p == c).map(|(_, d)| d);
            let value = if found.is_none() {
                let target = nested_type(*t, s);
                lit(ScalarValue::try_from(&target).unwrap_or(ScalarValue::Null))
            } else if let Some(markers) = markers {
                let text = markers
                    .iter()
                    .filter(|m| !m.is_empty())
                    .fold(ident(c), |e, m| nullif(e, lit(m.as_str())));
                cast(text, arrow_type(*t))
            } else {
                let target = arrow_type(*t);
                match (t, found) {
                    // The column itself, unaliased (an alias of a struct column to
                    // its own name trips DataFusion 55's projection pushdown); so is
                    // a column already of its type (text read as string views too:
                    // casting those to plain strings only costs).
                    (LogicalType::Object | LogicalType::Array, _) => return ident(c),
                    (_, Some(d)) if *d == target || is_text(d) && is_text(&target) => {
                        return ident(c)
                    }
                    _ => cast(ident(c), target),
                }
            };
            value.alias(c)
        })
        .collect();
    frame
        .select(exprs)
        .map_err(|e| QueryError::Failed(e.to_string()))
}

/// The files (relative paths, among `files`: `(relative path, size)`) that the
/// table of `object` reads: the object named so (by `name` or `physicalName`),
/// or with none the first object that has data, as [`product_tables`] picks it.
/// `None` when that object has no data files. A query fetches only these.
pub fn object_files(
    plan: &Plan,
    files: &[(String, u64)],
    object: Option<&str>,
) -> Option<Vec<String>> {
    let paths: Vec<(String, PathBuf)> = files
        .iter()
        .map(|(rel, _)| (rel.clone(), PathBuf::from(rel)))
        .collect();
    let size = |rel: &str| files.iter().find(|(r, _)| r == rel).map_or(0, |(_, s)| *s);
    // An empty CSV file has no header: it is not read (see `key_of`).
    let has_data = |f: &DataFile| !(f.format == Format::Csv && size(&f.rel) == 0);
    let by_object = files_by_object(plan, &paths);
    let chosen = by_object.into_iter().enumerate().find(|(o, data)| {
        let object_plan = &plan.objects[*o];
        match object {
            Some(name) => {
                object_plan.name == name || object_plan.physical_name.as_deref() == Some(name)
            }
            None => data.iter().any(has_data),
        }
    })?;
    let rels: Vec<String> = chosen.1.into_iter().map(|f| f.rel).collect();
    (!rels.is_empty()).then_some(rels)
}

/// Every object of `plan` that has files among `files` (`(relative path, full
/// path)`), as a frame.
pub async fn product_tables(
    ctx: &SessionContext,
    plan: &Plan,
    files: &[(String, PathBuf)],
) -> Result<Vec<ObjectTable>, QueryError> {
    let mut out = Vec::new();
    for (o, data) in files_by_object(plan, files).into_iter().enumerate() {
        let cols = columns(plan, o);
        let mut groups: BTreeMap<GroupKey, Vec<String>> = BTreeMap::new();
        for f in &data {
            if let Some(key) = key_of(f)? {
                groups
                    .entry(key)
                    .or_default()
                    .push(f.path.to_string_lossy().into_owned());
            }
        }
        let mut frame: Option<DataFrame> = None;
        for (key, paths) in groups {
            let markers = (key.format == Format::Csv).then_some(&key.markers[..]);
            let frame_of_group = read_group(ctx, &key, paths, &cols).await?;
            let group = project(frame_of_group, &cols, markers)?;
            frame = Some(match frame {
                None => group,
                Some(f) => f
                    .union(group)
                    .map_err(|e| QueryError::Failed(e.to_string()))?,
            });
        }
        if let Some(frame) = frame {
            let object = &plan.objects[o];
            out.push(ObjectTable {
                name: object.name.clone(),
                physical_name: object.physical_name.clone(),
                frame,
            });
        }
    }
    Ok(out)
}
