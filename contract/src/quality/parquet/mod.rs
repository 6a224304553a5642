//! Parquet files, read with the Apache Arrow crates: the file's schema against
//! the object's properties (names, logical types, and nested struct fields, list
//! items and map values against the contract's nested `properties` and `items`,
//! [`super::shape`]), then the values batch by batch (a struct's fields too)
//! (only the contract's columns are decoded, [`BATCH_ROWS`] rows at a time, so
//! memory stays bounded by a batch, not the file). Before anything is decoded the
//! footer's length and every page header of those columns are checked against
//! limits ([`pages`]): a page header declares the size the reader allocates.

pub(crate) mod blocks;
pub mod pages;

use std::io;

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::reader::ChunkReader;

use super::object::{Cell, ObjectState};
use super::report::Sink;
use super::shape::fits;

/// Rows decoded at a time.
pub const BATCH_ROWS: usize = 8192;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a readable Parquet file: {e}"),
    )
}

/// A binary value as text: UTF-8 as it is, other bytes in hex.
fn binary_text(a: &dyn Array, i: usize) -> Option<String> {
    use arrow_array::cast::AsArray;
    let bytes: &[u8] = match a.data_type() {
        DataType::Binary => a.as_binary::<i32>().value(i),
        DataType::LargeBinary => a.as_binary::<i64>().value(i),
        DataType::BinaryView => a.as_binary_view().value(i),
        DataType::FixedSizeBinary(_) => a.as_fixed_size_binary().value(i),
        _ => return None,
    };
    Some(match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// Checks the page headers of every leaf column under the top-level columns
/// `roots` before they are decoded (see [`pages`]).
fn check_leaves_of<R: ChunkReader>(
    file: &R,
    meta: &ArrowReaderMetadata,
    roots: &[usize],
) -> io::Result<()> {
    let descr = meta.parquet_schema();
    let leaves: Vec<usize> = (0..descr.num_columns())
        .filter(|l| roots.contains(&descr.get_column_root_idx(*l)))
        .collect();
    pages::check_pages(file, meta.metadata(), &leaves).map_err(invalid)
}

/// Where a property's values are: a top-level column, and for a field of a
/// struct the child indices down to it.
#[derive(Debug, Clone)]
struct Source {
    root: usize,
    children: Vec<usize>,
}

/// Each property's column among the file's fields (a nested property's in its
/// struct), if its type fits the contract's shape; a missing column, field or one
/// of another type is a violation of the schema.
fn columns_of(
    schema: &arrow_schema::Schema,
    plan: &super::plan::ObjectPlan,
    sink: &mut Sink,
    rel: &str,
) -> Vec<Option<Source>> {
    let mut wanted = Vec::with_capacity(plan.columns.len());
    for c in &plan.columns {
        if c.nested() {
            // Its problems are reported with its top-level property's shape.
            wanted.push(nested_source(schema, c));
            continue;
        }
        let Some(i) = schema.fields().iter().position(|f| f.name() == &c.column) else {
            sink.violate(
                rel,
                0,
                &c.name,
                format!("no column `{}` in the Parquet schema", c.column),
            );
            wanted.push(None);
            continue;
        };
        let d = schema.field(i).data_type();
        let mut problems = Vec::new();
        c.shape.mismatches(d, &c.column, &mut problems);
        for (at, problem) in problems {
            sink.violate(rel, 0, &at, problem);
        }
        let fits = c.shape.logical_type.is_none_or(|t| fits(t, d));
        wanted.push(fits.then_some(Source {
            root: i,
            children: Vec::new(),
        }));
    }
    wanted
}

/// A nested property's struct field, through structs only, if its type fits.
fn nested_source(schema: &arrow_schema::Schema, c: &super::plan::ColumnPlan) -> Option<Source> {
    let (first, rest) = c.path.split_first()?;
    let root = schema.fields().iter().position(|f| f.name() == first)?;
    let mut d = schema.field(root).data_type();
    let mut children = Vec::with_capacity(rest.len());
    for key in rest {
        let DataType::Struct(fields) = d else {
            return None;
        };
        let i = fields.iter().position(|f| f.name() == key)?;
        children.push(i);
        d = fields[i].data_type();
    }
    fits(c.logical_type, d).then_some(Source { root, children })
}

/// The structs above a property's values, and its values.
type Resolved<'a> = (Vec<&'a dyn Array>, &'a dyn Array);

/// A property's array in a batch, and the structs above it (a null struct means
/// the field is not there to check, as a missing parent in JSON).
fn resolve<'a>(top: &'a dyn Array, children: &[usize]) -> Option<Resolved<'a>> {
    use arrow_array::cast::AsArray;
    let mut parents = Vec::with_capacity(children.len());
    let mut a = top;
    for &i in children {
        let s = a.as_struct_opt()?;
        parents.push(a);
        a = s.column(i).as_ref();
    }
    Some((parents, a))
}

/// Reads a Parquet file (a local [`std::fs::File`], or a remote file's
/// [`blocks::Blocks`]) as the object.
pub(crate) fn read<R: ChunkReader + 'static>(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    file: R,
) -> io::Result<()> {
    pages::check_footer(&file).map_err(invalid)?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default()).map_err(invalid)?;
    let schema = meta.schema().clone();
    let plan = state.plan;
    let wanted = columns_of(&schema, plan, sink, rel);
    let mut roots: Vec<usize> = wanted.iter().flatten().map(|w| w.root).collect();
    roots.sort_unstable();
    roots.dedup();
    let rows_in_file = meta.metadata().file_metadata().num_rows().max(0) as u64;
    if roots.is_empty() {
        // No property is readable here: the rows still count, nothing else can.
        state.rows += rows_in_file;
        return Ok(());
    }
    check_leaves_of(&file, &meta, &roots)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(invalid)?;
    // After projection, a root's column index is its rank among the kept roots.
    let index: Vec<Option<(usize, &[usize])>> = wanted
        .iter()
        .map(|w| {
            let w = w.as_ref()?;
            let rank = roots.iter().position(|r| *r == w.root)?;
            Some((rank, w.children.as_slice()))
        })
        .collect();
    let mut row = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(invalid)?;
        row = rows_of(state, sink, rel, &batch, &index, row)?;
    }
    Ok(())
}

/// Checks the rows of one batch; returns the last row's number.
fn rows_of(
    state: &mut ObjectState<'_>,
    sink: &mut Sink,
    rel: &str,
    batch: &RecordBatch,
    index: &[Option<(usize, &[usize])>],
    mut row: u64,
) -> io::Result<u64> {
    let options = FormatOptions::default();
    let columns: Vec<Option<Resolved<'_>>> = index
        .iter()
        .map(|i| i.and_then(|(rank, children)| resolve(batch.column(rank).as_ref(), children)))
        .collect();
    let formatters = columns
        .iter()
        .map(|c| {
            c.as_ref()
                .map(|(_, a)| ArrayFormatter::try_new(*a, &options))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let mut cells = Vec::with_capacity(columns.len());
    for r in 0..batch.num_rows() {
        row += 1;
        cells.clear();
        for (col, fmt) in columns.iter().zip(&formatters) {
            cells.push(match (col, fmt) {
                (Some((parents, _)), _) if parents.iter().any(|p| p.is_null(r)) => Cell::Absent,
                (Some((_, a)), _) if a.is_null(r) => Cell::Null,
                (Some((_, a)), Some(f)) => {
                    Cell::Typed(binary_text(*a, r).unwrap_or_else(|| f.value(r).to_string()))
                }
                _ => Cell::Absent,
            });
        }
        state.row(sink, rel, row, &cells, &[]);
    }
    Ok(row)
}
