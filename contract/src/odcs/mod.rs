//! Open Data Contract Standard (ODCS) v3 contracts in and out.
//!
//! [`import`] maps a contract's YAML into a [`ManifestDraft`]: `domain` and
//! `dataProduct` (or `name`) make the product id, `name` the title, `version`,
//! `status`, `description` (`purpose`, `usage`, `limitations`), `team` (its name, and
//! the owner member as contact), `tags`, the first schema object's `properties`
//! (`name`, `logicalType`, `required`, `unique`, `classification`, `description`) and
//! `slaProperties` (`latency` or `freshness`, `frequency`, `retention`,
//! `availability` or `generalAvailability` in percent). Everything else is listed in
//! [`Imported::unsupported`], never dropped silently. [`export`] writes a manifest
//! back as a contract that imports to the same draft.

use serde::Serialize;
use serde_yaml::{Mapping, Value};

use crate::draft::{FieldDraft, ManifestDraft, OwnerDraft, SlaDraft};
use mesh_protocol::duration::format_duration;
use mesh_protocol::manifest::{Classification, LogicalType, Manifest, Status};

/// The largest contract accepted, in bytes.
pub const MAX_CONTRACT_BYTES: usize = 1 << 20;

/// A contract mapped to a manifest draft.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The draft to publish.
    pub draft: ManifestDraft,
    /// Parts of the contract mesh does not represent, by their path in the YAML.
    pub unsupported: Vec<String>,
}

/// Why a contract could not be mapped; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ODCS contract: {}", .0.join("; "))]
pub struct OdcsError(pub Vec<String>);

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Value> {
    m.get(Value::String(key.into()))
}

fn keys(m: &Mapping) -> impl Iterator<Item = String> + '_ {
    m.keys()
        .map(|k| text(k).unwrap_or_else(|| format!("{k:?}")))
}

/// Lower-case letters, digits and dashes, as product ids need.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(63).collect()
}

fn status(s: &str) -> Option<Status> {
    Some(match s.to_ascii_lowercase().as_str() {
        "proposed" | "draft" => Status::Draft,
        "active" => Status::Active,
        "deprecated" => Status::Deprecated,
        "retired" => Status::Retired,
        _ => return None,
    })
}

fn logical_type(s: &str) -> Option<LogicalType> {
    Some(match s.to_ascii_lowercase().as_str() {
        "string" => LogicalType::String,
        "integer" => LogicalType::Integer,
        "number" => LogicalType::Number,
        "boolean" => LogicalType::Boolean,
        "date" => LogicalType::Date,
        "timestamp" => LogicalType::Timestamp,
        "object" => LogicalType::Object,
        "array" => LogicalType::Array,
        _ => return None,
    })
}

fn classification(s: &str) -> Option<Classification> {
    Some(match s.to_ascii_lowercase().as_str() {
        "public" => Classification::Public,
        "internal" => Classification::Internal,
        "confidential" | "restricted" => Classification::Confidential,
        "pii" | "personal" | "sensitive" => Classification::Pii,
        _ => return None,
    })
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

/// Maps an ODCS v3 contract to a manifest draft.
pub fn import(yaml: &str) -> Result<Imported, OdcsError> {
    if yaml.len() > MAX_CONTRACT_BYTES {
        return Err(OdcsError(vec![format!(
            "the contract is {} bytes, over the limit of {MAX_CONTRACT_BYTES}",
            yaml.len()
        )]));
    }
    let doc: Value =
        serde_yaml::from_str(yaml).map_err(|e| OdcsError(vec![format!("not valid YAML: {e}")]))?;
    let Value::Mapping(top) = doc else {
        return Err(OdcsError(vec![
            "the contract must be a YAML mapping (apiVersion, kind, name, ...)".into(),
        ]));
    };
    let mut errs = Vec::new();
    let mut unsupported = Vec::new();
    let field = |key: &str| get(&top, key).and_then(text);
    match field("apiVersion") {
        Some(v) if v.starts_with("v3") => {}
        Some(v) => errs.push(format!(
            "apiVersion {v:?}: only ODCS v3 contracts are supported"
        )),
        None => errs.push("apiVersion is missing (e.g. v3.0.2)".into()),
    }
    if let Some(k) = field("kind") {
        if k != "DataContract" {
            errs.push(format!("kind {k:?}: expected DataContract"));
        }
    }
    let name = field("name");
    let domain = field("domain");
    let version = field("version");
    if name.is_none() {
        errs.push("name is missing".into());
    }
    if domain.is_none() {
        errs.push("domain is missing: mesh products belong to a domain".into());
    }
    if version.is_none() {
        errs.push("version is missing".into());
    }
    let product = field("dataProduct")
        .or_else(|| name.clone())
        .unwrap_or_default();
    let id = format!(
        "{}/{}",
        slug(domain.as_deref().unwrap_or("")),
        slug(&product)
    );
    let status = match field("status") {
        None => None,
        Some(s) => match status(&s) {
            Some(s) => Some(s),
            None => {
                errs.push(format!(
                    "status {s:?}: use proposed, draft, active, deprecated or retired"
                ));
                None
            }
        },
    };
    if field("id").is_some() {
        unsupported.push("id (the contract's own id; the product id is domain/dataProduct)".into());
    }

    let mut description = None;
    match get(&top, "description") {
        None => {}
        Some(Value::Mapping(d)) => {
            let part = |k: &str| get(d, k).and_then(text);
            let mut parts = Vec::new();
            if let Some(p) = part("purpose") {
                parts.push(p);
            }
            if let Some(u) = part("usage") {
                parts.push(format!("Usage: {u}"));
            }
            if let Some(l) = part("limitations") {
                parts.push(format!("Limitations: {l}"));
            }
            for k in keys(d).filter(|k| !["purpose", "usage", "limitations"].contains(&k.as_str()))
            {
                unsupported.push(format!("description.{k}"));
            }
            description = Some(parts.join("\n\n"));
        }
        Some(v) => description = text(v),
    }

    // team: a list of members (v3.0) or {name, members} (v3.1).
    let (team_name, members): (Option<String>, Vec<&Mapping>) = match get(&top, "team") {
        Some(Value::Sequence(s)) => (None, s.iter().filter_map(Value::as_mapping).collect()),
        Some(Value::Mapping(t)) => {
            for k in keys(t).filter(|k| k != "name" && k != "members") {
                unsupported.push(format!("team.{k}"));
            }
            (
                get(t, "name").and_then(text),
                get(t, "members")
                    .and_then(Value::as_sequence)
                    .map(|s| s.iter().filter_map(Value::as_mapping).collect())
                    .unwrap_or_default(),
            )
        }
        _ => (None, Vec::new()),
    };
    let owner_member = members
        .iter()
        .find(|m| {
            get(m, "role")
                .and_then(text)
                .is_some_and(|r| r.to_ascii_lowercase().contains("owner"))
        })
        .or(members.first());
    let contact = owner_member
        .and_then(|m| {
            get(m, "username")
                .or_else(|| get(m, "email"))
                .and_then(text)
        })
        .unwrap_or_default();
    if members.len() > 1 {
        unsupported.push(format!(
            "team members other than the owner ({} more)",
            members.len() - 1
        ));
    }
    let owner = Some(OwnerDraft {
        team: team_name.or_else(|| domain.as_ref().map(|d| format!("{d} team"))),
        contact,
    });

    let mut schema = Vec::new();
    if let Some(objects) = get(&top, "schema").and_then(Value::as_sequence) {
        for (i, obj) in objects.iter().enumerate().skip(1) {
            let n = obj.as_mapping().and_then(|o| get(o, "name")).and_then(text);
            unsupported.push(format!(
                "schema[{i}] ({}): only the first schema object is mapped",
                n.unwrap_or_default()
            ));
        }
        let props = objects
            .first()
            .and_then(Value::as_mapping)
            .and_then(|o| get(o, "properties"))
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for (i, p) in props.iter().enumerate() {
            let Some(p) = p.as_mapping() else {
                errs.push(format!("schema[0].properties[{i}] is not a mapping"));
                continue;
            };
            let pf = |k: &str| get(p, k).and_then(text);
            let Some(fname) = pf("name") else {
                errs.push(format!("schema[0].properties[{i}].name is missing"));
                continue;
            };
            let t = match pf("logicalType") {
                Some(t) => match logical_type(&t) {
                    Some(t) => t,
                    None => {
                        errs.push(format!(
                            "schema[0].properties[{i}].logicalType {t:?} is not one of string, integer, number, boolean, date, timestamp, object, array"
                        ));
                        continue;
                    }
                },
                None => LogicalType::String,
            };
            let class = match pf("classification") {
                None => None,
                Some(c) => match classification(&c) {
                    Some(c) => Some(c),
                    None => {
                        errs.push(format!(
                            "schema[0].properties[{i}].classification {c:?}: use public, internal, confidential, restricted or pii"
                        ));
                        None
                    }
                },
            };
            let known = [
                "name",
                "logicalType",
                "required",
                "unique",
                "classification",
                "description",
                "physicalType",
            ];
            for k in keys(p).filter(|k| !known.contains(&k.as_str())) {
                unsupported.push(format!("schema[0].properties[{i}].{k}"));
            }
            schema.push(FieldDraft {
                name: fname,
                logical_type: t,
                required: get(p, "required").and_then(Value::as_bool).unwrap_or(false),
                unique: get(p, "unique").and_then(Value::as_bool).unwrap_or(false),
                description: pf("description").unwrap_or_default(),
                classification: class,
            });
        }
    }

    let mut sla = SlaDraft::default();
    for (i, s) in get(&top, "slaProperties")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(s) = s.as_mapping() else { continue };
        let property = get(s, "property").and_then(text).unwrap_or_default();
        let value = get(s, "value").cloned().unwrap_or(Value::Null);
        let unit = get(s, "unit").and_then(text);
        let bad = || {
            format!(
                "slaProperties[{i}] ({property}): value {value:?} unit {unit:?} is not a duration"
            )
        };
        match property.as_str() {
            "latency" | "freshness" => match duration(&value, unit.as_deref()) {
                Some(d) => sla.freshness = Some(d),
                None => errs.push(bad()),
            },
            "frequency" => match duration(&value, unit.as_deref()) {
                Some(d) => sla.update_frequency = Some(d),
                None => errs.push(bad()),
            },
            "retention" => match duration(&value, unit.as_deref()) {
                Some(d) => sla.retention = Some(d),
                None => errs.push(bad()),
            },
            "availability" | "generalAvailability" if value.as_f64().is_some() => {
                sla.availability = value.as_f64();
            }
            other => unsupported.push(format!("slaProperties[{i}] ({other})")),
        }
    }

    let tags: Vec<String> = get(&top, "tags")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(text).collect())
        .unwrap_or_default();
    let known = [
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
    for k in keys(&top).filter(|k| !known.contains(&k.as_str())) {
        unsupported.push(k);
    }
    if !errs.is_empty() {
        return Err(OdcsError(errs));
    }
    let classification = schema.iter().filter_map(|f| f.classification).max();
    Ok(Imported {
        draft: ManifestDraft {
            id,
            version: version.unwrap_or_default(),
            status,
            title: name,
            description,
            classification,
            tags,
            consumers: Vec::new(),
            owner,
            schema,
            sla,
            lineage: Vec::new(),
        },
        unsupported,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Contract {
    api_version: &'static str,
    kind: &'static str,
    name: String,
    version: String,
    status: String,
    domain: String,
    data_product: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Purpose>,
    team: Team,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    schema: Vec<SchemaObject>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sla_properties: Vec<SlaProperty>,
}

#[derive(Serialize)]
struct Purpose {
    purpose: String,
}

#[derive(Serialize)]
struct Team {
    name: String,
    members: Vec<Member>,
}

#[derive(Serialize)]
struct Member {
    username: String,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemaObject {
    name: String,
    logical_type: &'static str,
    properties: Vec<Property>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Property {
    name: String,
    logical_type: String,
    required: bool,
    unique: bool,
    classification: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
}

#[derive(Serialize)]
struct SlaProperty {
    property: &'static str,
    value: serde_yaml::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
}

fn sla_duration(property: &'static str, secs: u64) -> SlaProperty {
    let text = format_duration(secs);
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    SlaProperty {
        property,
        value: Value::Number(n.parse::<u64>().unwrap_or(secs).into()),
        unit: Some(if unit.is_empty() {
            "s".into()
        } else {
            unit.into()
        }),
    }
}

/// Writes a manifest as an ODCS v3 contract (YAML).
pub fn export(m: &Manifest) -> Result<String, OdcsError> {
    let mut sla = Vec::new();
    if let Some(s) = m.sla.freshness_secs {
        sla.push(sla_duration("latency", s));
    }
    if let Some(s) = m.sla.update_frequency_secs {
        sla.push(sla_duration("frequency", s));
    }
    if let Some(s) = m.sla.retention_secs {
        sla.push(sla_duration("retention", s));
    }
    if let Some(bp) = m.sla.availability_bp {
        sla.push(SlaProperty {
            property: "availability",
            value: serde_yaml::to_value(f64::from(bp) / 100.0)
                .map_err(|e| OdcsError(vec![e.to_string()]))?,
            unit: Some("%".into()),
        });
    }
    let contract = Contract {
        api_version: "v3.0.2",
        kind: "DataContract",
        name: m.title.clone(),
        version: m.version.to_string(),
        status: m.status.to_string(),
        domain: m.id.domain().to_string(),
        data_product: m.id.name().to_string(),
        description: (!m.description.is_empty()).then(|| Purpose {
            purpose: m.description.clone(),
        }),
        team: Team {
            name: m.owner.team.clone(),
            members: vec![Member {
                username: m.owner.contact.clone(),
                role: "owner",
            }],
        },
        tags: m.tags.clone(),
        schema: vec![SchemaObject {
            name: m.id.name().to_string(),
            logical_type: "object",
            properties: m
                .schema
                .iter()
                .map(|f| Property {
                    name: f.name.clone(),
                    logical_type: format!("{:?}", f.logical_type).to_lowercase(),
                    required: f.required,
                    unique: f.unique,
                    classification: f.classification.to_string(),
                    description: f.description.clone(),
                })
                .collect(),
        }],
        sla_properties: sla,
    };
    serde_yaml::to_string(&contract).map_err(|e| OdcsError(vec![e.to_string()]))
}
