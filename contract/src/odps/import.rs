//! An ODPS document to a `product.toml` draft: what mesh checks and shows is
//! read from it, the document itself is named (`odps_file`) and travels whole.

use mesh_protocol::manifest::Status;
use serde_json::Value;

use super::document::{document, OdpsError};
use crate::draft::{ManifestDraft, OwnerDraft};

/// A drafted `product.toml` and what the reader should know about it.
#[derive(Debug, Clone)]
pub struct ImportedProduct {
    /// The draft; its `odps_file` names the document.
    pub draft: ManifestDraft,
    /// How values were read loosely, and what the draft still lacks.
    pub notes: Vec<String>,
}

/// `text` as a product-id label: lowercase ASCII letters, digits and `-`.
fn label(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(63).collect()
}

fn str_at<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = doc;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().filter(|s| !s.trim().is_empty())
}

/// The owner: the team's name and a way to reach it (the owner member, the first
/// member, or the first support channel). v0.9.0 documents list members as
/// `team`; later ones nest them under `team.members`.
fn owner(doc: &Value, notes: &mut Vec<String>) -> OwnerDraft {
    let members: Vec<&Value> = match doc.get("team") {
        Some(Value::Array(m)) => m.iter().collect(),
        Some(t) => t
            .get("members")
            .and_then(Value::as_array)
            .map(|m| m.iter().collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let lead = members
        .iter()
        .find(|m| str_at(m, &["role"]).is_some_and(|r| r.eq_ignore_ascii_case("owner")))
        .or_else(|| members.first());
    let team = str_at(doc, &["team", "name"])
        .or_else(|| lead.and_then(|m| str_at(m, &["name"])))
        .map(String::from);
    let contact = lead
        .and_then(|m| str_at(m, &["username"]))
        .or_else(|| {
            doc.get("support")
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(|s| str_at(s, &["url"]))
        })
        .map(String::from);
    if team.is_none() || contact.is_none() {
        notes.push(
            "owner: the document names no team or no contact; fill in [owner] before publishing"
                .into(),
        );
    }
    OwnerDraft {
        team: Some(team.unwrap_or_else(|| "unknown".into())),
        contact: contact.unwrap_or_else(|| "unknown".into()),
    }
}

fn status(doc: &Value, notes: &mut Vec<String>) -> Status {
    let deprecated = doc.get("deprecated").and_then(Value::as_bool) == Some(true);
    let s = match str_at(doc, &["status"])
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("active") => Status::Active,
        Some("draft") => Status::Draft,
        Some("deprecated") => Status::Deprecated,
        Some("retired") => Status::Retired,
        Some(other) => {
            notes.push(format!(
                "status {other:?}: mesh knows draft, active, deprecated and retired; read as draft"
            ));
            Status::Draft
        }
    };
    if deprecated && matches!(s, Status::Active | Status::Draft) {
        notes.push("deprecated: true: published as status deprecated".into());
        return Status::Deprecated;
    }
    s
}

fn version(doc: &Value, notes: &mut Vec<String>) -> String {
    let Some(v) = str_at(doc, &["version"]) else {
        notes.push("version: none given; drafted as 1.0.0".into());
        return "1.0.0".into();
    };
    let bare = v.trim().trim_start_matches(['v', 'V']);
    if semver::Version::parse(bare).is_ok() {
        bare.to_string()
    } else {
        notes.push(format!(
            "version {v:?} is not semver; drafted as 1.0.0 (the document keeps {v:?})"
        ));
        "1.0.0".into()
    }
}

/// The description: the purpose, then the usage and the limitations.
fn description(doc: &Value) -> Option<String> {
    let parts: Vec<String> = [
        ("", "purpose"),
        ("Usage: ", "usage"),
        ("Limitations: ", "limitations"),
    ]
    .iter()
    .filter_map(|(lead, key)| str_at(doc, &["description", key]).map(|t| format!("{lead}{t}")))
    .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// Drafts a `product.toml` from the ODPS document `yaml`, saved beside it as
/// `file_name`; a document without `domain` belongs to `default_domain`.
pub fn import(
    yaml: &str,
    file_name: &str,
    default_domain: Option<&str>,
) -> Result<ImportedProduct, OdpsError> {
    let doc: Value = serde_json::from_str(&document(yaml)?.document)
        .map_err(|e| OdpsError(vec![format!("re-reading the document: {e}")]))?;
    let mut notes = Vec::new();
    let domain = match str_at(&doc, &["domain"])
        .map(label)
        .filter(|d| !d.is_empty())
    {
        Some(d) => d,
        None => match default_domain {
            Some(d) => d.to_string(),
            None => {
                return Err(OdpsError(vec![
                    "domain: the document names no domain; give one (--domain)".into(),
                ]))
            }
        },
    };
    let id_text = str_at(&doc, &["id"]).unwrap_or_default();
    let name = str_at(&doc, &["name"])
        .map(label)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| label(id_text));
    let id = format!("{domain}/{name}");
    if let Err(e) = id.parse::<mesh_protocol::ProductId>() {
        return Err(OdpsError(vec![format!(
            "the product id {id:?} made of domain and name: {e}"
        )]));
    }
    let title = str_at(&doc, &["name"]).unwrap_or(id_text).to_string();
    let tags = doc
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    notes.push("classification: ODPS has none; drafted as internal".into());
    notes.push("schema: ODPS describes no columns; add [[schema]] fields (those of the ODCS contract its output ports name)".into());
    let draft = ManifestDraft {
        id,
        version: version(&doc, &mut notes),
        status: Some(status(&doc, &mut notes)),
        title: Some(title),
        description: description(&doc),
        owner: Some(owner(&doc, &mut notes)),
        tags,
        odps_file: Some(file_name.to_string()),
        ..ManifestDraft::default()
    };
    Ok(ImportedProduct { draft, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_examples_draft_products() {
        let customer = import(
            include_str!("../../tests/odps/customer-data-product.odps.yaml"),
            "customer.odps.yaml",
            None,
        )
        .unwrap();
        let d = &customer.draft;
        assert_eq!(d.id, "seller/customer-data-product");
        assert_eq!(d.status, Some(Status::Draft));
        assert_eq!(d.version, "1.0.0");
        assert_eq!(d.tags, vec!["customer".to_string()]);
        let owner = d.owner.as_ref().unwrap();
        assert_eq!(owner.team.as_deref(), Some("Data Team"));
        assert_eq!(owner.contact, "john.doe@retailcorp.com");
        assert!(d.description.as_deref().unwrap().contains("Usage: Check"));
        // No domain in the document: the one given.
        let simple = import(
            include_str!("../../tests/odps/simple-data-product.odps.yaml"),
            "simple.odps.yaml",
            Some("sales"),
        )
        .unwrap();
        assert_eq!(simple.draft.id, "sales/simple-data-product");
        assert_eq!(simple.draft.version, "1.0.0");
        let deprecated = import(
            include_str!("../../tests/odps/deprecated-data-product.odps.yaml"),
            "c360.odps.yaml",
            Some("sales"),
        )
        .unwrap();
        assert_eq!(deprecated.draft.version, "2.0.0");
        let err = import(
            include_str!("../../tests/odps/simple-data-product.odps.yaml"),
            "x",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--domain"), "{err}");
    }
}
