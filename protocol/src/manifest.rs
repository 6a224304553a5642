//! The product manifest: the contract that makes files a data product.
//!
//! Field names follow the Open Data Contract Standard where one exists (`status`,
//! `description`, `owner`, `schema` with `logicalType`-like types and
//! `classification`, `sla` with freshness / frequency / availability / retention).
//! The authoring form (`product.toml`) lives in the `mesh-contract` crate; a node
//! adds the files, timestamps and publisher key to it to make a [`Manifest`], which
//! is signed and named by its [`ManifestHash`](crate::ManifestHash).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::Hash;
use crate::id::ProductId;
use crate::keys::PublicKey;
use crate::signed::SignedKind;

/// The format version of a manifest.
pub const MANIFEST_FORMAT: u8 = 6;

/// The largest manifest accepted, in canonical bytes (a 1 TiB product at 256 KiB
/// average chunks lists about four million chunks; larger products split files).
pub const MAX_MANIFEST_BYTES: usize = 32 * 1024 * 1024;

/// The largest chunk a manifest may reference.
pub const MAX_CHUNK_LEN: u32 = 4 * 1024 * 1024;

/// Lifecycle of a product version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being prepared; not for production use.
    Draft,
    /// Supported and served.
    Active,
    /// Still served; consumers should migrate.
    Deprecated,
    /// No longer supported.
    Retired,
}

/// Sensitivity of a field or a whole product, from least to most sensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    /// Anyone may read it.
    Public,
    /// Any registered domain may read it.
    Internal,
    /// Only named consumers.
    Confidential,
    /// Personal data.
    Pii,
}

/// A column's logical type (ODCS `logicalType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogicalType {
    /// Text.
    String,
    /// Whole numbers.
    Integer,
    /// Decimal or floating-point numbers.
    Number,
    /// true / false.
    Boolean,
    /// A calendar date.
    Date,
    /// A point in time.
    Timestamp,
    /// A nested object.
    Object,
    /// A list.
    Array,
    /// A time of day (`HH:MM:SS`, ODCS 3.1).
    Time,
}

impl LogicalType {
    /// Every logical type, in the order ODCS lists them.
    pub const ALL: [LogicalType; 9] = [
        LogicalType::String,
        LogicalType::Integer,
        LogicalType::Number,
        LogicalType::Boolean,
        LogicalType::Date,
        LogicalType::Timestamp,
        LogicalType::Time,
        LogicalType::Object,
        LogicalType::Array,
    ];

    /// Its ODCS name (`logicalType: integer`).
    pub fn name(self) -> &'static str {
        match self {
            LogicalType::String => "string",
            LogicalType::Integer => "integer",
            LogicalType::Number => "number",
            LogicalType::Boolean => "boolean",
            LogicalType::Date => "date",
            LogicalType::Timestamp => "timestamp",
            LogicalType::Time => "time",
            LogicalType::Object => "object",
            LogicalType::Array => "array",
        }
    }

    /// The type an ODCS name names, in any case.
    pub fn from_name(s: &str) -> Option<LogicalType> {
        LogicalType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// Every name, comma-separated, for messages.
    pub fn names() -> String {
        LogicalType::ALL.map(LogicalType::name).join(", ")
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Draft => "draft",
            Status::Active => "active",
            Status::Deprecated => "deprecated",
            Status::Retired => "retired",
        })
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Pii => "pii",
        })
    }
}

/// Who owns the product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The owning team.
    pub team: String,
    /// How to reach them (email, chat channel).
    pub contact: String,
}

/// One field (column) of the product's schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Logical type.
    pub logical_type: LogicalType,
    /// Whether every row must have a value.
    pub required: bool,
    /// What the field means.
    pub description: String,
    /// Sensitivity of this field.
    pub classification: Classification,
    /// Whether no two rows may share a (non-null) value.
    pub unique: bool,
}

/// Data-quality metrics measured at publish over every data file the node could read
/// as CSV or JSON lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quality {
    /// Data rows, headers excluded.
    pub rows: u64,
    /// Per schema field, in schema order.
    pub fields: Vec<FieldQuality>,
    /// Files measured (the others are not CSV or JSON lines).
    pub files_checked: u32,
    /// Where the data broke the contract, per file and field (published anyway:
    /// the policy's quality mode was `warn`). Empty when it kept it.
    pub violations: Vec<QualityIssue>,
    /// Each schema object the files were mapped to: its files and rows.
    pub objects: Vec<ObjectQuality>,
    /// Each quality rule of the contract, as measured.
    pub rules: Vec<RuleOutcome>,
}

/// What was measured of one schema object (a table, a set of files).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectQuality {
    /// The object's name in the contract (empty for a `product.toml` schema).
    pub name: String,
    /// Files read as this object.
    pub files: u32,
    /// Their data rows.
    pub rows: u64,
}

/// Whether a quality rule held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleState {
    /// The measured value is within the rule's bounds.
    Passed,
    /// It is not.
    Failed,
    /// mesh did not run it (`sql`, `custom` and `text` rules, or no file for its
    /// object); `note` says why.
    #[default]
    NotEvaluated,
}

/// One quality rule of the contract (ODCS `quality`), as measured at publish.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// Where the rule is in the contract, e.g. `schema[1].properties[0].quality[2]`.
    pub path: String,
    /// The rule's `id`, else its `name`, else its metric.
    pub rule: String,
    /// The schema object it belongs to.
    pub object: String,
    /// The property, for a property-level rule (else empty).
    pub property: String,
    /// What was measured, e.g. `3 rows (0.21%)` (empty when not evaluated).
    pub measured: String,
    /// What the rule asks, e.g. `nullValues < 1 percent`.
    pub expected: String,
    /// Passed, failed or not evaluated.
    pub state: RuleState,
    /// Why it was not evaluated, or what limited the measurement.
    pub note: String,
}

/// The violations of one field in one file, summarised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityIssue {
    /// The file, relative to the product.
    pub file: String,
    /// The schema field (`-` for a record that is not readable at all).
    pub field: String,
    /// How many rows break it.
    pub count: u64,
    /// The first few of those rows (1-based data rows; 0 is the header).
    pub first_rows: Vec<u64>,
    /// What the first one breaks, e.g. `"lots" is not a number`.
    pub problem: String,
}

/// Null markers per list.
pub const MAX_NULL_MARKERS: usize = 32;
/// Bytes per null marker.
pub const MAX_NULL_MARKER_BYTES: usize = 64;
/// Files with their own null markers.
pub const MAX_NULL_FILES: usize = 1024;

/// What a missing value looks like in the data files: cells equal to one of these
/// are nulls, not values (R and pandas write `NA`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NullValues {
    /// For every file, unless `files` says otherwise.
    pub default: Vec<String>,
    /// Per file (path relative to the product), replacing `default`.
    pub files: Vec<(String, Vec<String>)>,
}

impl Default for NullValues {
    /// Only the empty cell.
    fn default() -> Self {
        NullValues {
            default: vec![String::new()],
            files: Vec::new(),
        }
    }
}

impl NullValues {
    /// The markers of file `rel`.
    pub fn for_file(&self, rel: &str) -> &[String] {
        self.files
            .iter()
            .find(|(f, _)| f == rel)
            .map_or(&self.default, |(_, v)| v)
    }
}

/// Metrics of one schema field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldQuality {
    /// Field name.
    pub name: String,
    /// Rows where it is null or missing.
    pub nulls: u64,
    /// Distinct non-null values, when there were few enough to count.
    pub distinct: Option<u64>,
}

/// Service levels the owner commits to; durations in seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sla {
    /// Maximum age of the newest data.
    pub freshness_secs: Option<u64>,
    /// How often a new version is published.
    pub update_frequency_secs: Option<u64>,
    /// Availability target in basis points (9990 = 99.90%).
    pub availability_bp: Option<u16>,
    /// How long data is kept.
    pub retention_secs: Option<u64>,
}

/// An upstream product this one is built from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The upstream product.
    pub id: ProductId,
    /// The exact upstream version used, if known.
    pub manifest: Option<Hash>,
}

/// One content-defined chunk of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// BLAKE3 of the chunk's bytes.
    pub hash: Hash,
    /// Length in bytes.
    pub len: u32,
}

/// One file of the product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path with `/` separators; never absolute, never `..`.
    pub path: String,
    /// Size in bytes; equals the sum of chunk lengths.
    pub size: u64,
    /// The chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

/// A signed, content-addressed description of one product version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version, [`MANIFEST_FORMAT`].
    pub format: u8,
    /// Which product.
    pub id: ProductId,
    /// Which version.
    pub version: semver::Version,
    /// Lifecycle status.
    pub status: Status,
    /// One-line title.
    pub title: String,
    /// What the data is and how to use it.
    pub description: String,
    /// The owning team.
    pub owner: Owner,
    /// Free-form tags for discovery.
    pub tags: Vec<String>,
    /// The product's overall sensitivity.
    pub classification: Classification,
    /// Domains this product names as its consumers; the policy's fetch rules decide
    /// what that means (e.g. only they may fetch a `pii` product).
    pub consumers: Vec<crate::DomainName>,
    /// Columns.
    pub schema: Vec<Field>,
    /// What a missing value looks like in the files.
    pub null_values: NullValues,
    /// Service levels.
    pub sla: Sla,
    /// Products this one is derived from.
    pub lineage: Vec<Upstream>,
    /// The data files.
    pub files: Vec<FileEntry>,
    /// Data-quality metrics measured at publish, if any file could be read.
    pub quality: Option<Quality>,
    /// Unix seconds when this version was published.
    pub created_at: u64,
    /// The domain publisher key that signs this manifest.
    pub publisher: PublicKey,
    /// The data contract this version was published with, whole (`None`: published
    /// from `product.toml`). Signed with the rest, so every node exports the same
    /// document.
    pub contract: Option<Contract>,
    /// For a derived product, the query its data was computed by; its inputs are
    /// the `lineage`, each pinned to the exact version read.
    pub derivation: Option<Derivation>,
    /// The Open Data Product Standard (ODPS) document this product was described
    /// with (`odps_file` in `product.toml`), whole: its `apiVersion` and the
    /// document as compact JSON. Signed with the rest, so every node exports the
    /// same data product (`mesh show --format odps`), its values kept.
    pub odps: Option<Contract>,
}

/// The longest query a derived product may declare, in bytes.
pub const MAX_DERIVE_SQL: usize = 64 * 1024;

/// How a derived product's data was computed (`[derive]` in `product.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivation {
    /// The SQL, as declared.
    pub sql: String,
    /// BLAKE3 of the SQL's bytes: two versions computed by the same query show it.
    pub query_hash: Hash,
}

impl Derivation {
    /// Adds to `errs` what is wrong with it: an empty or oversized query, or a
    /// hash that is not the query's.
    fn validate(&self, errs: &mut Vec<FieldError>) {
        if self.sql.trim().is_empty() || self.sql.len() > MAX_DERIVE_SQL {
            errs.push(field_err(
                "derive.sql",
                format!("the query must be 1 to {MAX_DERIVE_SQL} bytes"),
            ));
        }
        if self.query_hash != Hash::of(self.sql.as_bytes()) {
            errs.push(field_err(
                "derive.query_hash",
                "is not the BLAKE3 of the query",
            ));
        }
    }

    /// The derivation of `sql`.
    pub fn of(sql: &str) -> Self {
        Derivation {
            sql: sql.to_string(),
            query_hash: Hash::of(sql.as_bytes()),
        }
    }
}

/// The largest contract document a manifest carries, in bytes.
pub const MAX_CONTRACT_BYTES: usize = 1 << 20;

/// A data contract as its author wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// The standard it follows, as written (ODCS's `apiVersion`, e.g. `v3.1.0`).
    pub api_version: String,
    /// The whole document as compact JSON (ODCS's data model is JSON Schema's),
    /// every value as given; only the fields mesh owns are set on export.
    pub document: String,
}

impl SignedKind for Manifest {
    const TAG: &'static str = "mesh/manifest/v1";
    const MAX_BYTES: usize = MAX_MANIFEST_BYTES;
    const WHAT: &'static str = "manifest";
}

/// A manifest field that is missing or invalid, named as in `product.toml`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("manifest field `{field}`: {problem}")]
pub struct FieldError {
    /// Dotted path of the field, e.g. `schema[2].name`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// A [`FieldError`] for `field`.
pub fn field_err(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Whether `path` is a safe relative file path inside a product.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && c.len() <= MAX_NAME_BYTES)
}

/// The longest file or folder name in a product's paths: what file systems allow.
pub const MAX_NAME_BYTES: usize = 255;

impl Manifest {
    /// Total bytes of all files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The chunk named `hash`, wherever it is in the files.
    pub fn chunk(&self, hash: &Hash) -> Option<ChunkRef> {
        self.files
            .iter()
            .flat_map(|f| f.chunks.iter())
            .find(|c| c.hash == *hash)
            .copied()
    }

    /// Checks the manifest's internal consistency; every problem is listed.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        if self.format != MANIFEST_FORMAT {
            errs.push(field_err(
                "format",
                format!("unsupported format {}", self.format),
            ));
        }
        if self.title.trim().is_empty() {
            errs.push(field_err("title", "must not be empty"));
        }
        if self.owner.team.trim().is_empty() {
            errs.push(field_err("owner.team", "must name the owning team"));
        }
        let mut names = BTreeSet::new();
        for (i, f) in self.schema.iter().enumerate() {
            if f.name.trim().is_empty() {
                errs.push(field_err(format!("schema[{i}].name"), "must not be empty"));
            } else if !names.insert(f.name.as_str()) {
                errs.push(field_err(
                    format!("schema[{i}].name"),
                    format!("duplicate field name {:?}", f.name),
                ));
            }
        }
        for (field, doc) in [("contract", &self.contract), ("odps", &self.odps)] {
            let Some(c) = doc else { continue };
            if c.document.len() > MAX_CONTRACT_BYTES {
                errs.push(field_err(
                    field,
                    format!(
                        "the document is {} bytes, over the limit of {MAX_CONTRACT_BYTES}",
                        c.document.len()
                    ),
                ));
            } else if !serde_json::from_str::<serde_json::Value>(&c.document)
                .is_ok_and(|v| v.is_object())
            {
                errs.push(field_err(field, "the document is not a JSON object"));
            }
        }
        if let Some(d) = &self.derivation {
            d.validate(&mut errs);
        }
        let markers = std::iter::once(&self.null_values.default)
            .chain(self.null_values.files.iter().map(|(_, v)| v));
        if self.null_values.files.len() > MAX_NULL_FILES
            || markers.into_iter().any(|m| {
                m.len() > MAX_NULL_MARKERS || m.iter().any(|v| v.len() > MAX_NULL_MARKER_BYTES)
            })
        {
            errs.push(field_err(
                "null_values",
                format!(
                    "at most {MAX_NULL_MARKERS} markers of {MAX_NULL_MARKER_BYTES} bytes each, for at most {MAX_NULL_FILES} files"
                ),
            ));
        }
        let mut paths = BTreeSet::new();
        for (i, f) in self.files.iter().enumerate() {
            if !is_safe_relative_path(&f.path) {
                errs.push(field_err(
                    format!("files[{i}].path"),
                    format!(
                        "{:?} is not a safe relative path (no leading `/`, `..`, `\\` or empty part; names at most {MAX_NAME_BYTES} bytes)",
                        f.path
                    ),
                ));
            } else if !paths.insert(f.path.as_str()) {
                errs.push(field_err(format!("files[{i}].path"), "duplicate path"));
            }
            let sum: u64 = f.chunks.iter().map(|c| u64::from(c.len)).sum();
            if sum != f.size {
                errs.push(field_err(
                    format!("files[{i}].size"),
                    format!("{} does not equal the sum of its chunks ({sum})", f.size),
                ));
            }
            if f.chunks.iter().any(|c| c.len == 0 || c.len > MAX_CHUNK_LEN) {
                errs.push(field_err(
                    format!("files[{i}].chunks"),
                    format!("every chunk must be 1..={MAX_CHUNK_LEN} bytes"),
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for p in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a\\b", "./a"] {
            assert!(!is_safe_relative_path(p), "{p:?}");
        }
        assert!(is_safe_relative_path("data/orders.csv"));
        // Names up to what a file system allows; one byte more cannot be written.
        assert!(is_safe_relative_path(&format!("d/{}", "a".repeat(255))));
        assert!(!is_safe_relative_path(&format!("d/{}", "a".repeat(256))));
    }
}
