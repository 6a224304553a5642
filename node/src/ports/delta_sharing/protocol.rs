//! The Delta Sharing protocol's shapes (delta-io/delta-sharing `PROTOCOL.md`,
//! the `parquet` response format): listing pages, the table's `metaData` with its
//! Spark-JSON `schemaString`, the file actions, the error answer, and choosing
//! table versions by number or timestamp. No I/O here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ErrorClass, NodeError};
use crate::ops::share::TableVersion;

/// The most items one listing page holds.
pub(super) const MAX_PAGE: usize = 1000;

/// An error answer: the protocol's `{errorCode, message}` with its status.
#[derive(Debug)]
pub(super) struct Refusal {
    /// The HTTP status.
    pub(super) status: StatusCode,
    /// The protocol's error code (`INVALID_PARAMETER_VALUE`, ...).
    pub(super) code: &'static str,
    /// What went wrong and what to do.
    pub(super) message: String,
}

impl Refusal {
    /// A malformed request (400).
    pub(super) fn bad(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }

    /// Something that does not exist for this recipient (404).
    pub(super) fn missing(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::NOT_FOUND,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
        }
    }

    /// No live token (401).
    pub(super) fn unauthenticated(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED",
            message: message.into(),
        }
    }

    /// Forbidden (403).
    pub(super) fn forbidden(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::FORBIDDEN,
            code: "PERMISSION_DENIED",
            message: message.into(),
        }
    }
}

impl From<NodeError> for Refusal {
    /// The status the control API gives the same error, with the protocol's code.
    fn from(e: NodeError) -> Self {
        let class = e.class();
        let code = match class {
            ErrorClass::Usage | ErrorClass::InvalidManifest | ErrorClass::InvalidData => {
                "INVALID_PARAMETER_VALUE"
            }
            ErrorClass::NotFound => "RESOURCE_DOES_NOT_EXIST",
            ErrorClass::Rejected => "PERMISSION_DENIED",
            ErrorClass::Unavailable => "TEMPORARILY_UNAVAILABLE",
            ErrorClass::Internal => "INTERNAL_ERROR",
        };
        Refusal {
            status: StatusCode::from_u16(class.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({"errorCode": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// A listing request's paging: `maxResults` and `pageToken` (an offset).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Paging {
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// One page of `items`, with the `nextPageToken` if more follow.
pub(super) fn page(items: Vec<Value>, paging: &Paging) -> Result<Value, Refusal> {
    let max = match paging.max_results {
        None => MAX_PAGE,
        Some(n) if n < 0 => return Err(Refusal::bad("maxResults must not be negative")),
        Some(n) => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
    };
    let start = match paging.page_token.as_deref() {
        None | Some("") => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            Refusal::bad(format!(
                "pageToken {t:?} is not one this server gave: list from the start"
            ))
        })?,
    };
    let end = start.saturating_add(max).min(items.len());
    let slice: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut out = json!({ "items": slice });
    if end < items.len() {
        out["nextPageToken"] = Value::String(end.to_string());
    }
    Ok(out)
}

/// The `protocol` line every table answer starts with.
pub(super) fn protocol_line() -> String {
    json!({"protocol": {"minReaderVersion": 1}}).to_string()
}

/// What the `metaData` line says of a table version.
pub(super) struct TableMeta<'a> {
    /// The product id (`domain/name`), of which the table id is made.
    pub(super) product: &'a str,
    /// The table's name.
    pub(super) name: &'a str,
    /// The product's description.
    pub(super) description: &'a str,
    /// The version's columns.
    pub(super) schema: &'a Schema,
    /// The version's number, when the request asked for one.
    pub(super) version: Option<u64>,
}

/// The `metaData` line.
pub(super) fn metadata_line(meta: &TableMeta<'_>) -> String {
    let mut m = json!({
        "id": stable_id(meta.product),
        "name": meta.name,
        "description": meta.description,
        "format": {"provider": "parquet"},
        "schemaString": schema_string(meta.schema).to_string(),
        "partitionColumns": [],
        "configuration": {"enableChangeDataFeed": "true"},
    });
    if let Some(v) = meta.version {
        m["version"] = json!(v);
    }
    json!({ "metaData": m }).to_string()
}

/// A stable id in UUID form for `name` (a product id or a share): the first
/// 16 bytes of its BLAKE3.
pub(super) fn stable_id(name: &str) -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&blake3::hash(name.as_bytes()).as_bytes()[..16]);
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// A file action: `file` for a snapshot, `add` for a version of a change feed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileAction {
    pub(super) url: String,
    pub(super) id: String,
    pub(super) partition_values: serde_json::Map<String, Value>,
    pub(super) size: u64,
    pub(super) stats: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) timestamp: Option<u64>,
    pub(super) expiration_timestamp: u64,
}

impl FileAction {
    /// The action as one line, wrapped as `kind` (`file` or `add`).
    pub(super) fn line(&self, kind: &str) -> String {
        json!({ kind: self }).to_string()
    }
}

/// The per-file statistics: the row count.
pub(super) fn stats(rows: u64) -> String {
    json!({ "numRecords": rows }).to_string()
}

/// The table schema as the protocol's (Spark's) JSON struct type.
pub(super) fn schema_string(schema: &Schema) -> Value {
    json!({
        "type": "struct",
        "fields": schema.fields().iter().map(|f| field_json(f)).collect::<Vec<_>>(),
    })
}

fn field_json(f: &Field) -> Value {
    json!({
        "name": f.name(),
        "type": type_json(f.data_type()),
        "nullable": f.is_nullable(),
        "metadata": {},
    })
}

/// An Arrow type as a Spark type; what Spark has no type for is a string.
fn type_json(t: &DataType) -> Value {
    let name = match t {
        DataType::Boolean => "boolean",
        DataType::Int8 => "byte",
        DataType::Int16 => "short",
        DataType::Int32 | DataType::UInt8 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "long",
        DataType::Float16 | DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, Some(_)) => "timestamp",
        DataType::Timestamp(_, None) => "timestamp_ntz",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary",
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            return Value::String(format!("decimal({p},{s})"))
        }
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
            return json!({
                "type": "array",
                "elementType": type_json(item.data_type()),
                "containsNull": item.is_nullable(),
            })
        }
        DataType::Struct(fields) => {
            return json!({
                "type": "struct",
                "fields": fields.iter().map(|f| field_json(f)).collect::<Vec<_>>(),
            })
        }
        _ => "string",
    };
    Value::String(name.into())
}

/// A timestamp of the protocol (ISO 8601 / RFC 3339, e.g.
/// `2022-01-01T00:00:00Z`) as Unix ms.
pub(super) fn parse_timestamp(text: &str) -> Result<u64, Refusal> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            Refusal::bad(format!(
                "timestamp {text:?} is not an ISO 8601 time in UTC such as 2022-01-01T00:00:00Z: {e}"
            ))
        })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| Refusal::bad(format!("timestamp {text:?} is before 1970")))
}

/// Version `n` of `history`.
pub(super) fn at_version(history: &[TableVersion], n: i64) -> Result<&TableVersion, Refusal> {
    usize::try_from(n)
        .ok()
        .and_then(|i| history.get(i))
        .ok_or_else(|| {
            Refusal::bad(format!(
                "version {n} does not exist: this table has versions 0 to {}",
                history.len().saturating_sub(1)
            ))
        })
}

/// The table as of `ms`: its newest version published at or before it.
pub(super) fn as_of(history: &[TableVersion], ms: u64) -> Result<&TableVersion, Refusal> {
    history
        .iter()
        .rev()
        .find(|v| v.timestamp_ms <= ms)
        .ok_or_else(|| Refusal::bad("the timestamp is before the table's first version"))
}

/// The first version published at or after `ms`.
pub(super) fn first_from(history: &[TableVersion], ms: u64) -> Result<&TableVersion, Refusal> {
    history
        .iter()
        .find(|v| v.timestamp_ms >= ms)
        .ok_or_else(|| Refusal::bad("the timestamp is after the table's last version"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn history() -> Vec<TableVersion> {
        (0..3u64)
            .map(|n| TableVersion {
                number: n,
                version: semver::Version::new(1, n, 0),
                manifest: mesh_protocol::ManifestHash::of(&[n as u8]),
                timestamp_ms: 1000 * (n + 1),
            })
            .collect()
    }

    #[test]
    fn versions_are_chosen_by_number_and_time() {
        let h = history();
        assert_eq!(at_version(&h, 2).unwrap().number, 2);
        assert!(at_version(&h, 3).unwrap_err().message.contains("0 to 2"));
        assert!(at_version(&h, -1).is_err());
        assert_eq!(as_of(&h, 2500).unwrap().number, 1);
        assert!(as_of(&h, 999).is_err());
        assert_eq!(first_from(&h, 1500).unwrap().number, 1);
        assert!(first_from(&h, 3001).is_err());
        assert_eq!(parse_timestamp("1970-01-01T00:00:02Z").unwrap(), 2000);
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn pages_follow_their_tokens() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let paging = Paging {
            max_results: Some(2),
            page_token: None,
        };
        let first = page(items.clone(), &paging).unwrap();
        assert_eq!(first["items"], json!([0, 1]));
        let next = Paging {
            max_results: Some(2),
            page_token: first["nextPageToken"].as_str().map(String::from),
        };
        let second = page(items.clone(), &next).unwrap();
        assert_eq!(second["items"], json!([2, 3]));
        let last = Paging {
            max_results: Some(2),
            page_token: Some("4".into()),
        };
        let end = page(items.clone(), &last).unwrap();
        assert_eq!(end["items"], json!([4]));
        assert!(end.get("nextPageToken").is_none());
        let bad = Paging {
            max_results: None,
            page_token: Some("x".into()),
        };
        assert!(page(items, &bad).is_err());
    }

    #[test]
    fn arrow_types_become_spark_types() {
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8View, true),
            Field::new("tags", DataType::List(item), true),
            Field::new(
                "at",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ),
        ]);
        let s = schema_string(&schema);
        assert_eq!(s["fields"][0]["type"], "long");
        assert_eq!(s["fields"][0]["nullable"], false);
        assert_eq!(s["fields"][1]["type"], "string");
        assert_eq!(s["fields"][2]["type"]["type"], "array");
        assert_eq!(s["fields"][2]["type"]["elementType"], "long");
        assert_eq!(s["fields"][3]["type"], "timestamp");
        assert_eq!(stable_id("sales/orders").len(), 36);
        assert_eq!(stable_id("sales/orders"), stable_id("sales/orders"));
    }
}
