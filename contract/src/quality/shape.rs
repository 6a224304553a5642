//! The nested structure a contract declares for a property (an object's
//! `properties`, an array's `items`, to any depth up to [`MAX_DEPTH`]), and
//! where a Parquet column's Arrow type departs from it: a struct field missing
//! or of another type, list items of another type, map values of another type.

use arrow_schema::DataType;
use serde_json::{Map, Value};

use mesh_protocol::manifest::LogicalType;

use super::values::type_name;

/// How deep a shape is followed (as nested properties are).
pub(crate) const MAX_DEPTH: usize = 8;

/// What a contract says a property holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    /// Its logical type, if the contract names one mesh knows.
    pub(crate) logical_type: Option<LogicalType>,
    /// An object's fields, by their name in the files.
    pub(crate) fields: Vec<(String, Shape)>,
    /// An array's items.
    pub(crate) items: Option<Box<Shape>>,
}

impl Shape {
    /// The shape a contract property (or `items`) declares.
    pub(crate) fn of(p: &Map<String, Value>, depth: usize) -> Shape {
        let logical_type = match p.get("logicalType").and_then(Value::as_str) {
            Some(t) => LogicalType::from_name(t),
            None if p.contains_key("properties") => Some(LogicalType::Object),
            None if p.contains_key("items") => Some(LogicalType::Array),
            None => Some(LogicalType::String),
        };
        let mut shape = Shape {
            logical_type,
            ..Shape::default()
        };
        if depth >= MAX_DEPTH {
            return shape;
        }
        for f in p
            .get("properties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
        {
            let name = ["physicalName", "name"]
                .iter()
                .find_map(|k| f.get(*k).and_then(Value::as_str));
            if let Some(name) = name {
                shape
                    .fields
                    .push((name.to_owned(), Shape::of(f, depth + 1)));
            }
        }
        if let Some(items) = p.get("items").and_then(Value::as_object) {
            shape.items = Some(Box::new(Shape::of(items, depth + 1)));
        }
        shape
    }

    /// A shape of one logical type and nothing nested.
    pub(crate) fn flat(t: LogicalType) -> Shape {
        Shape {
            logical_type: Some(t),
            ..Shape::default()
        }
    }

    /// Where an Arrow type departs from this shape: `(path, problem)`, the path
    /// starting at `at` (`address.zip`, `tags[]`).
    pub(crate) fn mismatches(&self, d: &DataType, at: &str, out: &mut Vec<(String, String)>) {
        if let Some(t) = self.logical_type {
            if !fits(t, d) {
                let what = if at.contains(['.', '[']) {
                    "the Parquet field"
                } else {
                    "the Parquet column"
                };
                out.push((
                    at.to_owned(),
                    format!("{what} is {d}, but the contract says {}", type_name(t)),
                ));
                return;
            }
        }
        match d {
            DataType::Struct(fields) => {
                for (name, shape) in &self.fields {
                    let path = format!("{at}.{name}");
                    match fields.iter().find(|f| f.name() == name) {
                        Some(f) => shape.mismatches(f.data_type(), &path, out),
                        None => {
                            out.push((path, format!("no field `{name}` in the Parquet struct")))
                        }
                    }
                }
            }
            // A map's keys are not fixed: each named field is checked against
            // the map's value type.
            DataType::Map(entries, _) => {
                if let DataType::Struct(kv) = entries.data_type() {
                    if let Some(value) = kv.get(1) {
                        for (name, shape) in &self.fields {
                            shape.mismatches(value.data_type(), &format!("{at}.{name}"), out);
                        }
                    }
                }
            }
            DataType::List(item)
            | DataType::LargeList(item)
            | DataType::FixedSizeList(item, _)
            | DataType::ListView(item)
            | DataType::LargeListView(item) => {
                if let Some(items) = &self.items {
                    items.mismatches(item.data_type(), &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
}

/// Whether a column of Arrow type `d` holds values of logical type `t`.
pub(crate) fn fits(t: LogicalType, d: &DataType) -> bool {
    use DataType as D;
    match t {
        // Binary too: older writers (Spark, Impala) store strings as unannotated
        // byte arrays.
        LogicalType::String => {
            matches!(
                d,
                D::Utf8
                    | D::LargeUtf8
                    | D::Utf8View
                    | D::Binary
                    | D::LargeBinary
                    | D::BinaryView
                    | D::FixedSizeBinary(_)
                    | D::Dictionary(_, _)
            ) && dictionary_of_text(d)
        }
        LogicalType::Integer => d.is_integer(),
        LogicalType::Number => {
            d.is_integer()
                || d.is_floating()
                || matches!(
                    d,
                    D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..)
                )
        }
        LogicalType::Boolean => matches!(d, D::Boolean),
        LogicalType::Date => matches!(d, D::Date32 | D::Date64),
        LogicalType::Timestamp => matches!(d, D::Timestamp(_, _)),
        LogicalType::Time => matches!(d, D::Time32(_) | D::Time64(_)),
        LogicalType::Object => matches!(d, D::Struct(_) | D::Map(_, _)),
        LogicalType::Array => matches!(
            d,
            D::List(_)
                | D::LargeList(_)
                | D::FixedSizeList(_, _)
                | D::ListView(_)
                | D::LargeListView(_)
        ),
    }
}

fn dictionary_of_text(d: &DataType) -> bool {
    match d {
        DataType::Dictionary(_, v) => matches!(
            v.as_ref(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
        ),
        _ => true,
    }
}
