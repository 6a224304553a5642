//! Schema evolution: which changes between two versions of a product break consumers,
//! after datacontract-cli's breaking-change rules.
//!
//! Breaking: a field removed; a field made required; a field's type changed; a field's
//! classification loosened (e.g. `pii` to `internal`). Adding an optional field,
//! relaxing `required`, or tightening a classification is compatible. When both
//! versions carry an ODCS contract, every schema object is compared
//! ([`crate::changelog`], the rules of `mesh contract changelog`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use mesh_protocol::manifest::{Field, Manifest};

/// One breaking change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakingChange {
    /// The field.
    pub field: String,
    /// What changed.
    pub change: String,
}

impl fmt::Display for BreakingChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}` {}", self.field, self.change)
    }
}

/// The breaking changes from `old` to `new`, in field order.
pub fn breaking_changes(old: &Manifest, new: &Manifest) -> Vec<BreakingChange> {
    let doc = |m: &Manifest| {
        m.contract
            .as_ref()
            .and_then(|c| serde_json::from_str::<serde_json::Value>(&c.document).ok())
            .and_then(|v| match v {
                serde_json::Value::Object(o) => Some(o),
                _ => None,
            })
    };
    if let (Some(a), Some(b)) = (doc(old), doc(new)) {
        return crate::changelog::changelog(&a, &b)
            .breaking()
            .map(|c| BreakingChange {
                field: c.path.clone(),
                change: c.change.clone(),
            })
            .collect();
    }
    let new_fields: BTreeMap<&str, &Field> =
        new.schema.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut out = Vec::new();
    for o in &old.schema {
        let change = |c: String| BreakingChange {
            field: o.name.clone(),
            change: c,
        };
        let Some(n) = new_fields.get(o.name.as_str()) else {
            out.push(change("was removed".into()));
            continue;
        };
        if n.logical_type != o.logical_type {
            out.push(change(
                format!(
                    "changed type from {:?} to {:?}",
                    o.logical_type, n.logical_type
                )
                .to_lowercase(),
            ));
        }
        if n.required && !o.required {
            out.push(change("became required".into()));
        }
        if n.classification < o.classification {
            out.push(change(format!(
                "loosened its classification from {} to {}",
                o.classification, n.classification
            )));
        }
    }
    let old_names: std::collections::BTreeSet<&str> =
        old.schema.iter().map(|f| f.name.as_str()).collect();
    for n in &new.schema {
        if n.required && !old_names.contains(n.name.as_str()) {
            out.push(BreakingChange {
                field: n.name.clone(),
                change: "was added as required".into(),
            });
        }
    }
    out
}
