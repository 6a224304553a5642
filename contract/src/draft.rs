//! The authoring form of a product's contract: the `product.toml` a domain team
//! writes ([`ManifestDraft`]), and [`ManifestDraft::into_manifest`], which checks
//! every field and, with the facts only a node knows ([`PublishFacts`]: files,
//! time, publisher key, measured quality), makes the wire [`Manifest`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use mesh_protocol::duration::parse_duration;
use mesh_protocol::manifest::{
    field_err, Classification, Contract, Derivation, Field, FieldError, FileEntry, LogicalType,
    Manifest, NullValues, Owner, Quality, Sla, Status, Upstream, MANIFEST_FORMAT,
};
use mesh_protocol::{Hash, ProductId, PublicKey};

/// What a domain team writes in `product.toml`; see the README for a full example.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDraft {
    /// `domain/name`.
    pub id: String,
    /// Semver version of this release.
    pub version: String,
    /// Lifecycle status; defaults to `active`.
    #[serde(default)]
    pub status: Option<Status>,
    /// One-line title.
    pub title: Option<String>,
    /// What the data is.
    pub description: Option<String>,
    /// Overall sensitivity; defaults to `internal`.
    #[serde(default)]
    pub classification: Option<Classification>,
    /// Tags for discovery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Consumer domains (see [`Manifest::consumers`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,
    /// Owning team.
    pub owner: Option<OwnerDraft>,
    /// Columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<FieldDraft>,
    /// What a missing value looks like, e.g. `["NA", ""]` (default: only the
    /// empty cell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    /// Per data file (path relative to the product): `[files."flights.csv"]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileDraft>,
    /// Service levels.
    #[serde(default)]
    pub sla: SlaDraft,
    /// Upstream products.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<UpstreamDraft>,
    /// The ODCS contract this draft was made from (set by `mesh publish
    /// --contract`; see [`crate::odcs::import`]), kept whole in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Contract>,
    /// A derived product: its data is a query over other products (`mesh derive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive: Option<DeriveDraft>,
    /// The product's Open Data Product Standard document, a YAML file beside
    /// `product.toml` (`mesh odps import` writes both); `mesh publish` reads it
    /// into [`ManifestDraft::odps`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odps_file: Option<String>,
    /// The ODPS document, read and checked (see [`crate::odps::document`]), kept
    /// whole in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odps: Option<Contract>,
    /// Where the product's data is (`[source]`), so `mesh publish --manifest
    /// product.toml` needs no path: used by the CLI, not part of the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceDraft>,
}

/// `[source]` in `product.toml`: the data to publish, for example every object
/// under an S3 prefix, kept in place.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDraft {
    /// A file or directory on the node's machine, or `s3://bucket/prefix`.
    pub url: String,
    /// Serve the data where it is (as `mesh publish --in-place`).
    #[serde(default)]
    pub in_place: bool,
}

/// `[derive]` in `product.toml`: the product's data is a SQL query over other
/// products (named as in `mesh query`), recomputed into Parquet by the node.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [derive] table with `sql` or `sql_file`, e.g. `derive = { sql = \"SELECT ... FROM sales.orders\" }`"
)]
pub struct DeriveDraft {
    /// The query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// A file holding the query, relative to `product.toml`; `mesh derive` reads
    /// it into `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_file: Option<String>,
}

/// `[owner]` in `product.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an [owner] table with `team` and `contact`, e.g. `owner = { team = \"sales\", contact = \"sales@example.com\" }`"
)]
pub struct OwnerDraft {
    /// Team name.
    pub team: Option<String>,
    /// Contact.
    #[serde(default)]
    pub contact: String,
}

/// `[files."PATH"]` in `product.toml`: settings of one data file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [files.\"PATH\"] table, e.g. `null_values = [\"NA\"]`"
)]
pub struct FileDraft {
    /// This file's null markers, replacing the product's `null_values`.
    pub null_values: Vec<String>,
}

/// `[[schema]]` in `product.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [[schema]] entry with `name` and `type`, e.g. `{ name = \"order_id\", type = \"string\" }`"
)]
pub struct FieldDraft {
    /// Column name.
    pub name: String,
    /// Logical type (`string`, `integer`, `number`, `boolean`, `date`, `timestamp`,
    /// `time`, `object`, `array`).
    #[serde(rename = "type")]
    pub logical_type: LogicalType,
    /// Whether values are required.
    #[serde(default)]
    pub required: bool,
    /// Meaning.
    #[serde(default)]
    pub description: String,
    /// Sensitivity; defaults to `internal`.
    #[serde(default)]
    pub classification: Option<Classification>,
    /// Whether values must be unique.
    #[serde(default)]
    pub unique: bool,
}

/// `[sla]` in `product.toml`, with human durations such as `24h`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an [sla] table, e.g. `sla = { freshness = \"24h\", availability = 99.9 }`"
)]
pub struct SlaDraft {
    /// Maximum data age, e.g. `24h`.
    pub freshness: Option<String>,
    /// Publication cadence, e.g. `1d`.
    pub update_frequency: Option<String>,
    /// Availability target in percent, e.g. `99.9`.
    pub availability: Option<f64>,
    /// Retention, e.g. `365d`.
    pub retention: Option<String>,
}

/// `[[lineage]]` in `product.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a [[lineage]] entry with the upstream's `id`, e.g. `{ id = \"sales/orders\" }`"
)]
pub struct UpstreamDraft {
    /// Upstream product id.
    pub id: String,
    /// Exact upstream manifest hash, if pinned.
    pub manifest: Option<String>,
}

/// Everything a node adds to a draft to make a manifest.
#[derive(Debug)]
pub struct PublishFacts {
    /// The data files, chunked.
    pub files: Vec<FileEntry>,
    /// Publication time, unix seconds.
    pub created_at: u64,
    /// The signing publisher key.
    pub publisher: PublicKey,
    /// Data-quality metrics, if measured.
    pub quality: Option<Quality>,
}

impl ManifestDraft {
    /// The schema as the manifest carries it. A column without a classification of
    /// its own has the product's (a public product's columns are public, not
    /// `internal`).
    pub fn fields(&self) -> Vec<Field> {
        self.schema
            .iter()
            .map(|f| Field {
                name: f.name.clone(),
                logical_type: f.logical_type,
                required: f.required,
                description: f.description.clone(),
                classification: f
                    .classification
                    .or(self.classification)
                    .unwrap_or(Classification::Internal),
                unique: f.unique,
            })
            .collect()
    }

    /// The null markers as the manifest carries them.
    pub fn nulls(&self) -> NullValues {
        NullValues {
            default: self
                .null_values
                .clone()
                .unwrap_or_else(|| NullValues::default().default),
            files: self
                .files
                .iter()
                .map(|(path, f)| (path.clone(), f.null_values.clone()))
                .collect(),
        }
    }

    /// Checks data files against the draft, as publish will
    /// ([`crate::quality::check_product`]).
    pub fn check_data(
        &self,
        files: &[(String, std::path::PathBuf)],
    ) -> std::io::Result<crate::quality::Report> {
        let fields = self.fields();
        crate::quality::check_product(&fields, &self.nulls(), self.contract.as_ref(), files)
    }

    /// Turns the draft into a manifest, listing every missing or invalid field.
    pub fn into_manifest(self, facts: PublishFacts) -> Result<Manifest, Vec<FieldError>> {
        let mut errs = Vec::new();
        let schema = self.fields();
        let null_values = self.nulls();
        let id = self
            .id
            .parse::<ProductId>()
            .map_err(|e| errs.push(field_err("id", e.to_string())))
            .ok();
        let version = semver::Version::parse(&self.version)
            .map_err(|e| {
                errs.push(field_err(
                    "version",
                    format!("{:?} is not semver ({e}); use e.g. 1.0.0", self.version),
                ))
            })
            .ok();
        let title = self.title.unwrap_or_default();
        if title.trim().is_empty() {
            errs.push(field_err("title", "is missing: add title = \"...\""));
        }
        let owner = owner_of(self.owner, &mut errs);
        let sla = sla_of(self.sla, &mut errs);
        let lineage = lineage_of(self.lineage, &mut errs);
        let consumers = consumers_of(&self.consumers, &mut errs);
        let derivation = derivation_of(self.derive.as_ref(), &lineage, &mut errs);
        if let (Some(f), None) = (&self.odps_file, &self.odps) {
            errs.push(field_err(
                "odps_file",
                format!("{f:?} was not read: publish with `mesh publish --manifest product.toml`, which reads it"),
            ));
        }
        let (Some(id), Some(version)) = (id, version) else {
            return Err(errs);
        };
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id,
            version,
            status: self.status.unwrap_or(Status::Active),
            title,
            description: self.description.unwrap_or_default(),
            owner,
            tags: self.tags,
            classification: self.classification.unwrap_or(Classification::Internal),
            consumers,
            schema,
            null_values,
            sla,
            lineage,
            files: facts.files,
            quality: facts.quality,
            created_at: facts.created_at,
            publisher: facts.publisher,
            contract: self.contract,
            derivation,
            odps: self.odps,
        };
        if let Err(more) = manifest.validate() {
            errs.extend(more);
        }
        if errs.is_empty() {
            Ok(manifest)
        } else {
            Err(errs)
        }
    }
}

/// `[derive]`: the query, inline, and every input pinned in the lineage (the
/// node that computes the product pins them; a hand-written `[derive]` is
/// published by `mesh derive`, not `mesh publish`).
fn derivation_of(
    derive: Option<&DeriveDraft>,
    lineage: &[Upstream],
    errs: &mut Vec<FieldError>,
) -> Option<Derivation> {
    let d = derive?;
    let Some(sql) = &d.sql else {
        let problem = match &d.sql_file {
            Some(f) => format!("sql_file {f:?} was not read: publish a derived product with `mesh derive product.toml`, which reads it"),
            None => "give the query as sql = \"...\" or sql_file = \"query.sql\"".into(),
        };
        errs.push(field_err("derive.sql", problem));
        return None;
    };
    if lineage.is_empty() || lineage.iter().any(|u| u.manifest.is_none()) {
        errs.push(field_err(
            "lineage",
            "a derived product's inputs must each be pinned to a version (manifest hash): publish it with `mesh derive product.toml`, which computes and pins them",
        ));
    }
    Some(Derivation::of(sql))
}

/// `[owner]`: a team is required.
fn owner_of(owner: Option<OwnerDraft>, errs: &mut Vec<FieldError>) -> Owner {
    match owner {
        Some(OwnerDraft {
            team: Some(team),
            contact,
        }) if !team.trim().is_empty() => Owner { team, contact },
        _ => {
            errs.push(field_err(
                "owner.team",
                "is missing: add [owner] with team = \"...\"",
            ));
            Owner {
                team: String::new(),
                contact: String::new(),
            }
        }
    }
}

/// `[sla]`: human durations and a percentage.
fn sla_of(sla: SlaDraft, errs: &mut Vec<FieldError>) -> Sla {
    let mut duration = |name: &str, v: Option<String>| {
        v.and_then(|s| {
            parse_duration(&s)
                .map_err(|e| errs.push(field_err(format!("sla.{name}"), e.to_string())))
                .ok()
        })
    };
    let freshness_secs = duration("freshness", sla.freshness);
    let update_frequency_secs = duration("update_frequency", sla.update_frequency);
    let retention_secs = duration("retention", sla.retention);
    let availability_bp = match sla.availability {
        None => None,
        Some(p) if (0.0..=100.0).contains(&p) => Some((p * 100.0).round() as u16),
        Some(p) => {
            errs.push(field_err(
                "sla.availability",
                format!("{p} is not a percentage between 0 and 100"),
            ));
            None
        }
    };
    Sla {
        freshness_secs,
        update_frequency_secs,
        availability_bp,
        retention_secs,
    }
}

/// `[[lineage]]`: product ids, and manifest hashes where pinned.
fn lineage_of(drafts: Vec<UpstreamDraft>, errs: &mut Vec<FieldError>) -> Vec<Upstream> {
    let mut lineage = Vec::new();
    for (i, u) in drafts.into_iter().enumerate() {
        let id =
            u.id.parse::<ProductId>()
                .map_err(|e| errs.push(field_err(format!("lineage[{i}].id"), e.to_string())))
                .ok();
        let manifest = match u.manifest {
            None => None,
            Some(h) => h
                .parse::<Hash>()
                .map_err(|e| errs.push(field_err(format!("lineage[{i}].manifest"), e.to_string())))
                .ok(),
        };
        if let Some(id) = id {
            lineage.push(Upstream { id, manifest });
        }
    }
    lineage
}

/// `consumers`: domain names.
fn consumers_of(names: &[String], errs: &mut Vec<FieldError>) -> Vec<mesh_protocol::DomainName> {
    let mut consumers = Vec::new();
    for (i, c) in names.iter().enumerate() {
        match mesh_protocol::DomainName::new(c) {
            Ok(d) => consumers.push(d),
            Err(e) => errs.push(field_err(format!("consumers[{i}]"), e.to_string())),
        }
    }
    consumers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_without_a_classification_has_the_products() {
        let draft: ManifestDraft = toml::from_str(
            "id = \"sales/open\"\nversion = \"1.0.0\"\ntitle = \"Open\"\nclassification = \"public\"\n[owner]\nteam = \"t\"\ncontact = \"t@x\"\n[[schema]]\nname = \"a\"\ntype = \"string\"\n[[schema]]\nname = \"b\"\ntype = \"string\"\nclassification = \"pii\"\n",
        )
        .unwrap();
        let f = draft.fields();
        assert_eq!(f[0].classification, Classification::Public);
        assert_eq!(f[1].classification, Classification::Pii);
        let unset: ManifestDraft = toml::from_str(
            "id = \"sales/x\"\nversion = \"1.0.0\"\ntitle = \"X\"\n[owner]\nteam = \"t\"\ncontact = \"t@x\"\n[[schema]]\nname = \"a\"\ntype = \"string\"\n",
        )
        .unwrap();
        assert_eq!(unset.fields()[0].classification, Classification::Internal);
    }
}
