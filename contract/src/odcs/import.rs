//! Contract to draft: the whole document kept, what mesh checks mapped.

use serde_json::{Map, Value};

use super::document::{
    self, classification, field, slug, status, text, Imported, OdcsError, API_VERSIONS,
    CUSTOM_CLASSIFICATION, CUSTOM_CONSUMERS, CUSTOM_LINEAGE,
};
use crate::draft::{FieldDraft, ManifestDraft, OwnerDraft, SlaDraft, UpstreamDraft};
use mesh_protocol::manifest::{Contract, LogicalType};

/// The top-level sections mesh maps (all others are kept and listed in the notes).
const MAPPED: [&str; 13] = [
    "apiVersion",
    "kind",
    "id",
    "name",
    "version",
    "status",
    "domain",
    "dataProduct",
    "description",
    "team",
    "schema",
    "slaProperties",
    "tags",
];

/// Reads an ODCS v3 contract (YAML or JSON). A contract without `domain` belongs
/// to `default_domain` (the publishing node's), if given.
pub fn import(yaml: &str, default_domain: Option<&str>) -> Result<Imported, OdcsError> {
    let top = document::document(yaml)?;
    let mut r = Reader {
        errs: Vec::new(),
        notes: Vec::new(),
    };
    let api_version = r.api_version(&top);
    let (version, domain, id) = r.identity(&top, default_domain);
    let title = field(&top, "name")
        .or_else(|| field(&top, "dataProduct"))
        .or_else(|| field(&top, "id"));
    let status = field(&top, "status").map(|s| {
        let (st, known) = status(&s);
        if !known {
            r.notes.push(format!(
                "status {s:?} is kept as written; mesh treats the version as {st}"
            ));
        }
        st
    });
    let description = r.description(top.get("description"));
    let owner = r.owner(top.get("team"), domain.as_deref());
    let schema = r.schema(top.get("schema"));
    let sla = r.sla(top.get("slaProperties"));
    let tags: Vec<String> = top
        .get("tags")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(text).collect())
        .unwrap_or_default();
    let custom = r.custom(top.get("customProperties"));
    for k in top.keys().filter(|k| {
        !MAPPED.contains(&k.as_str()) && (k.as_str() != "customProperties" || !custom.only_mesh)
    }) {
        r.notes
            .push(format!("{k}: kept in the contract, not checked by mesh"));
    }
    if !r.errs.is_empty() {
        return Err(OdcsError(r.errs));
    }
    let classification = custom
        .classification
        .or_else(|| schema.iter().filter_map(|f| f.classification).max());
    let document = Value::Object(top).to_string();
    Ok(Imported {
        draft: ManifestDraft {
            id,
            version: version.unwrap_or_default(),
            status,
            title,
            description,
            classification,
            tags,
            consumers: custom.consumers,
            owner,
            schema,
            null_values: custom.null_values,
            files: Default::default(),
            sla,
            lineage: custom.lineage,
            contract: Some(Contract {
                api_version,
                document,
            }),
            derive: None,
            odps_file: None,
            source: None,
            odps: None,
        },
        notes: r.notes,
    })
}

/// What mesh's own custom properties say (see [`CUSTOM_CLASSIFICATION`]).
#[derive(Default)]
struct Custom {
    classification: Option<mesh_protocol::manifest::Classification>,
    consumers: Vec<String>,
    lineage: Vec<UpstreamDraft>,
    null_values: Option<Vec<String>>,
    /// Every custom property is one of mesh's.
    only_mesh: bool,
}

/// Collects the problems and notes of one import.
struct Reader {
    errs: Vec<String>,
    notes: Vec<String>,
}

impl Reader {
    /// `apiVersion`: one mesh reads, or a newer v3 read as v3.1.0 with a note.
    fn api_version(&mut self, top: &Map<String, Value>) -> String {
        match field(top, "apiVersion") {
            Some(v) if API_VERSIONS.contains(&v.as_str()) => v,
            Some(v) if v.starts_with("v3.") => {
                self.notes.push(format!(
                    "apiVersion {v}: newer than the versions mesh knows ({}); read as v3.1.0",
                    API_VERSIONS.join(", ")
                ));
                v
            }
            Some(v) => {
                self.errs.push(format!(
                    "apiVersion {v:?}: only ODCS v3 contracts are supported ({})",
                    API_VERSIONS.join(", ")
                ));
                v
            }
            None => {
                self.errs.push("apiVersion is missing (e.g. v3.1.0)".into());
                String::new()
            }
        }
    }

    /// `kind`, `version`, and the product id: the domain (`domain`, else the
    /// publishing node's) and the product (`dataProduct`, `name` or `id`).
    fn identity(
        &mut self,
        top: &Map<String, Value>,
        default_domain: Option<&str>,
    ) -> (Option<String>, Option<String>, String) {
        if let Some(k) = field(top, "kind") {
            if k != "DataContract" {
                self.errs.push(format!("kind {k:?}: expected DataContract"));
            }
        }
        let version = field(top, "version");
        if version.is_none() {
            self.errs.push("version is missing".into());
        }
        let domain = field(top, "domain").or_else(|| default_domain.map(str::to_owned));
        if domain.is_none() {
            self.errs.push(
                "domain is missing: add `domain:`, or publish from a node of the product's domain"
                    .into(),
            );
        }
        let product = field(top, "dataProduct")
            .or_else(|| field(top, "name"))
            .or_else(|| field(top, "id"));
        if product.is_none() {
            self.errs
                .push("the contract names no product: give dataProduct, name or id".into());
        }
        let id = format!(
            "{}/{}",
            slug(domain.as_deref().unwrap_or("")),
            slug(product.as_deref().unwrap_or(""))
        );
        (version, domain, id)
    }

    /// The top-level custom properties mesh writes for what ODCS has no field for.
    fn custom(&mut self, v: Option<&Value>) -> Custom {
        let mut c = Custom {
            only_mesh: true,
            ..Custom::default()
        };
        for p in v.and_then(Value::as_array).into_iter().flatten() {
            let Some(p) = p.as_object() else { continue };
            let value = p.get("value");
            match field(p, "property").as_deref() {
                Some(CUSTOM_CLASSIFICATION) => {
                    c.classification = value.and_then(text).as_deref().and_then(classification);
                }
                Some(CUSTOM_CONSUMERS) => {
                    c.consumers = value
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(text).collect())
                        .unwrap_or_default();
                }
                Some(CUSTOM_LINEAGE) => {
                    for u in value.and_then(Value::as_array).into_iter().flatten() {
                        if let Some(id) = u.as_object().and_then(|u| field(u, "id")) {
                            c.lineage.push(UpstreamDraft {
                                id,
                                manifest: u.as_object().and_then(|u| field(u, "manifest")),
                            });
                        }
                    }
                }
                Some(crate::quality::CUSTOM_NULL_VALUES) => {
                    c.null_values = value
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(text).collect());
                }
                // Read by the quality plan.
                Some(crate::quality::CUSTOM_DELIMITER) => {}
                _ => c.only_mesh = false,
            }
        }
        c
    }

    /// `description`: a string, or `{purpose, usage, limitations, ...}`.
    fn description(&mut self, v: Option<&Value>) -> Option<String> {
        match v? {
            Value::Object(d) => {
                let mut parts = Vec::new();
                if let Some(p) = field(d, "purpose") {
                    parts.push(p);
                }
                if let Some(u) = field(d, "usage") {
                    parts.push(format!("Usage: {u}"));
                }
                if let Some(l) = field(d, "limitations") {
                    parts.push(format!("Limitations: {l}"));
                }
                for k in d
                    .keys()
                    .filter(|k| !["purpose", "usage", "limitations"].contains(&k.as_str()))
                {
                    self.notes.push(format!(
                        "description.{k}: kept in the contract, not checked by mesh"
                    ));
                }
                Some(parts.join("\n\n"))
            }
            other => text(other),
        }
    }

    /// `team`: a list of members (v3.0) or `{name, members}` (v3.1). The owner is
    /// the member whose role says owner, else the first.
    fn owner(&mut self, v: Option<&Value>, domain: Option<&str>) -> Option<OwnerDraft> {
        let (name, members): (Option<String>, Vec<&Map<String, Value>>) = match v {
            Some(Value::Array(s)) => (None, s.iter().filter_map(Value::as_object).collect()),
            Some(Value::Object(t)) => (
                field(t, "name"),
                t.get("members")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_object).collect())
                    .unwrap_or_default(),
            ),
            _ => (None, Vec::new()),
        };
        let owner = members
            .iter()
            .find(|m| field(m, "role").is_some_and(|r| r.to_ascii_lowercase().contains("owner")))
            .or(members.first());
        let contact = owner
            .and_then(|m| field(m, "username").or_else(|| field(m, "email")))
            .unwrap_or_default();
        Some(OwnerDraft {
            team: name.or_else(|| domain.map(|d| format!("{d} team"))),
            contact,
        })
    }

    /// The first schema object's properties, as the columns the catalog shows.
    /// Every object, with its quality rules, is checked against its files at
    /// publish (see [`crate::quality::Plan`]).
    fn schema(&mut self, v: Option<&Value>) -> Vec<FieldDraft> {
        let Some(objects) = v.and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut fields = Vec::new();
        let props = objects
            .first()
            .and_then(Value::as_object)
            .and_then(|o| o.get("properties"))
            .and_then(Value::as_array);
        for (i, p) in props.into_iter().flatten().enumerate() {
            let at = format!("schema[0].properties[{i}]");
            let Some(p) = p.as_object() else {
                self.errs.push(format!("{at} is not a mapping"));
                continue;
            };
            let Some(name) = field(p, "name") else {
                self.errs.push(format!("{at}.name is missing"));
                continue;
            };
            let logical = match field(p, "logicalType") {
                None => LogicalType::String,
                Some(t) => match LogicalType::from_name(&t) {
                    Some(t) => t,
                    None => {
                        self.errs.push(format!(
                            "{at}.logicalType {t:?} is not one of {}",
                            LogicalType::names()
                        ));
                        continue;
                    }
                },
            };
            let class = field(p, "classification").map(|c| {
                let level = classification(&c);
                if level.is_none() {
                    self.notes.push(format!(
                        "{at}.classification {c:?} is kept as written; mesh treats the column as internal"
                    ));
                }
                level.unwrap_or(mesh_protocol::manifest::Classification::Internal)
            });
            fields.push(FieldDraft {
                name,
                logical_type: logical,
                required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                unique: p.get("unique").and_then(Value::as_bool).unwrap_or(false),
                description: field(p, "description").unwrap_or_default(),
                classification: class,
            });
        }
        fields
    }

    /// The SLA properties mesh understands; the others are kept and noted.
    fn sla(&mut self, v: Option<&Value>) -> SlaDraft {
        let mut sla = SlaDraft::default();
        for (i, s) in v
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(s) = s.as_object() else { continue };
            let property = field(s, "property").unwrap_or_default();
            let value = s.get("value").cloned().unwrap_or(Value::Null);
            let unit = field(s, "unit");
            let d = duration(&value, unit.as_deref());
            let slot = match property.as_str() {
                "latency" | "freshness" => Some(&mut sla.freshness),
                "frequency" => Some(&mut sla.update_frequency),
                "retention" => Some(&mut sla.retention),
                _ => None,
            };
            match (slot, d) {
                (Some(slot), Some(d)) => *slot = Some(d),
                (None, _)
                    if matches!(property.as_str(), "availability" | "generalAvailability")
                        && value.as_f64().is_some() =>
                {
                    sla.availability = value.as_f64();
                }
                _ => self.notes.push(format!(
                    "slaProperties[{i}] ({property}): kept in the contract, not checked by mesh"
                )),
            }
        }
        sla
    }
}

/// An SLA value and unit as a duration string (`4` `d` -> `4d`).
fn duration(value: &Value, unit: Option<&str>) -> Option<String> {
    let n = value.as_f64()?;
    if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0) {
        return None;
    }
    let n = n as u64;
    let (mult, unit) = match unit.unwrap_or("d").to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" | "seconds" => (1, "s"),
        "m" | "min" | "minute" | "minutes" => (1, "m"),
        "h" | "hr" | "hour" | "hours" => (1, "h"),
        "d" | "day" | "days" => (1, "d"),
        "w" | "week" | "weeks" => (7, "d"),
        "y" | "yr" | "year" | "years" => (365, "d"),
        _ => return None,
    };
    Some(format!("{}{unit}", n.checked_mul(mult)?))
}
