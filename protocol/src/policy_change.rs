//! Policy change files: what someone drafting policy N+1 writes (TOML), applied to
//! policy N to produce the unsigned draft.
//!
//! ```toml
//! expires_in = "365d"               # validity of the new version (default: 365d, at most 10 years)
//! rules_file = "rules.cedar"        # replace the rules (path relative to this file)
//! remove_domains = ["old"]
//!
//! [council]
//! add = ["<key>"]
//! remove = ["<key>"]
//! threshold = 2
//!
//! [domains.sales]                   # created if missing
//! add_keys = ["<key>"]
//! remove_keys = ["<key>"]
//! add_nodes = ["12D3Koo..."]
//! remove_nodes = []
//! contact = "sales@example.com"
//!
//! [settings]
//! schema_compatibility = "backward" # none | backward | frozen
//! quality = "refuse"                # refuse | warn
//! serve_retired = false
//! max_versions_per_domain = 100000  # 0: no limit
//! max_versions_per_domain_per_hour = 3600
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::duration::{parse_duration, DurationError};
use crate::id::IdError;
use crate::keys::ParseKeyError;
use crate::policy::{check_validity, Policy, PolicyError, SchemaCompatibility, ValidityError};
use crate::{DomainName, PublicKey};

/// A parsed change file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// Validity of the new version, e.g. `365d`.
    pub expires_in: Option<String>,
    /// Rules file to load (the caller reads it and sets [`PolicyChange::rules`]).
    pub rules_file: Option<String>,
    /// Replacement rule text (from `rules_file`).
    #[serde(skip)]
    pub rules: Option<String>,
    /// Domains to drop from the registry.
    #[serde(default)]
    pub remove_domains: Vec<String>,
    /// Council changes.
    #[serde(default)]
    pub council: CouncilChange,
    /// Registry changes per domain.
    #[serde(default)]
    pub domains: BTreeMap<String, DomainChange>,
    /// Settings changes.
    #[serde(default)]
    pub settings: SettingsChange,
}

/// `[council]` of a change file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouncilChange {
    /// Keys to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Keys to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// New threshold.
    pub threshold: Option<u16>,
}

/// `[domains.NAME]` of a change file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainChange {
    /// Publisher keys to add.
    #[serde(default)]
    pub add_keys: Vec<String>,
    /// Publisher keys to remove.
    #[serde(default)]
    pub remove_keys: Vec<String>,
    /// Node peer ids to add.
    #[serde(default)]
    pub add_nodes: Vec<String>,
    /// Node peer ids to remove.
    #[serde(default)]
    pub remove_nodes: Vec<String>,
    /// New contact.
    pub contact: Option<String>,
}

/// `[settings]` of a change file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// New schema compatibility mode.
    pub schema_compatibility: Option<SchemaCompatibility>,
    /// New data-quality enforcement at publish (`refuse` or `warn`).
    pub quality: Option<crate::policy::QualityEnforcement>,
    /// Whether retired versions are still served.
    pub serve_retired: Option<bool>,
    /// Product versions one domain may have in the catalog (0: no limit).
    pub max_versions_per_domain: Option<u32>,
    /// Versions one domain may announce in any hour (0: no limit).
    pub max_versions_per_domain_per_hour: Option<u32>,
}

impl SettingsChange {
    /// Sets each setting the change names.
    fn apply(&self, p: &mut Policy) {
        if let Some(q) = self.quality {
            p.settings.quality = q;
        }
        if let Some(s) = self.serve_retired {
            p.settings.serve_retired = s;
        }
        if let Some(m) = self.schema_compatibility {
            p.settings.schema_compatibility = m;
        }
        if let Some(n) = self.max_versions_per_domain {
            p.settings.domain_limits.max_versions = n;
        }
        if let Some(n) = self.max_versions_per_domain_per_hour {
            p.settings.domain_limits.max_versions_per_hour = n;
        }
    }
}

/// Why a change file cannot be read or applied; each names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError {
    /// Not TOML, or a field this format does not have.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// `expires_in` is not a duration.
    #[error("expires_in: {0}")]
    Duration(#[from] DurationError),
    /// `expires_in` is zero or too long.
    #[error("expires_in: {0}")]
    Validity(#[from] ValidityError),
    /// A key that does not parse.
    #[error("{field}: {source}")]
    Key {
        /// Where in the file, e.g. `council.add`.
        field: String,
        /// Why it does not parse.
        source: ParseKeyError,
    },
    /// A domain name that is not valid.
    #[error("{field}: {source}")]
    DomainName {
        /// Where in the file.
        field: String,
        /// Why it is not valid.
        source: IdError,
    },
    /// `council.remove` names a key that is not a member.
    #[error("council.remove: {0} is not a council member")]
    NotAMember(PublicKey),
    /// `remove_domains` names a domain that is not registered.
    #[error("remove_domains: domain {0} is not registered")]
    UnknownDomain(DomainName),
    /// `remove_keys` names a key the domain does not have.
    #[error("domains.{domain}.remove_keys: {key} is not registered for {domain}")]
    KeyNotRegistered {
        /// The domain.
        domain: DomainName,
        /// The key.
        key: PublicKey,
    },
    /// The result is not a well-formed policy (e.g. a threshold above the council).
    #[error(transparent)]
    Shape(#[from] PolicyError),
}

fn key(s: &str, field: &str) -> Result<PublicKey, PolicyChangeError> {
    s.parse::<PublicKey>()
        .map_err(|source| PolicyChangeError::Key {
            field: field.to_string(),
            source,
        })
}

fn domain(s: &str, field: &str) -> Result<DomainName, PolicyChangeError> {
    DomainName::new(s).map_err(|source| PolicyChangeError::DomainName {
        field: field.to_string(),
        source,
    })
}

impl PolicyChange {
    /// Parses a change file's TOML.
    pub fn from_toml(text: &str) -> Result<Self, PolicyChangeError> {
        Ok(toml::from_str(text)?)
    }

    /// Applies the change to `current`, giving version N+1 issued at `now`.
    pub fn apply(&self, current: &Policy, now: u64) -> Result<Policy, PolicyChangeError> {
        let mut p = current.clone();
        // A successor is written in the newest format, whatever its predecessor's.
        p.format = crate::policy::POLICY_FORMAT;
        p.version = current.version + 1;
        p.issued_at = now;
        // Never inherited: an emergency policy valid for minutes must not make the
        // next one expire as fast.
        let span = match &self.expires_in {
            Some(d) => parse_duration(d)?,
            None => crate::policy::DEFAULT_VALIDITY_SECS,
        };
        p.expires_at = now.saturating_add(check_validity(span)?);
        self.apply_council(&mut p)?;
        self.apply_domains(&mut p)?;
        if let Some(rules) = &self.rules {
            p.rules = rules.clone();
        }
        self.settings.apply(&mut p);
        p.check_shape()?;
        Ok(p)
    }

    fn apply_council(&self, p: &mut Policy) -> Result<(), PolicyChangeError> {
        for k in &self.council.add {
            p.council.members.insert(key(k, "council.add")?);
        }
        for k in &self.council.remove {
            let k = key(k, "council.remove")?;
            if !p.council.members.remove(&k) {
                return Err(PolicyChangeError::NotAMember(k));
            }
        }
        if let Some(t) = self.council.threshold {
            p.council.threshold = t;
        }
        Ok(())
    }

    fn apply_domains(&self, p: &mut Policy) -> Result<(), PolicyChangeError> {
        for d in &self.remove_domains {
            let name = domain(d, "remove_domains")?;
            if p.domains.remove(&name).is_none() {
                return Err(PolicyChangeError::UnknownDomain(name));
            }
        }
        for (name, change) in &self.domains {
            let name = domain(name, &format!("domains.{name}"))?;
            let entry = p.domains.entry(name.clone()).or_default();
            for k in &change.add_keys {
                entry
                    .publisher_keys
                    .insert(key(k, &format!("domains.{name}.add_keys"))?);
            }
            for k in &change.remove_keys {
                let k = key(k, &format!("domains.{name}.remove_keys"))?;
                if !entry.publisher_keys.remove(&k) {
                    return Err(PolicyChangeError::KeyNotRegistered {
                        domain: name,
                        key: k,
                    });
                }
            }
            for n in &change.add_nodes {
                entry.nodes.insert(n.clone());
            }
            for n in &change.remove_nodes {
                entry.nodes.remove(n);
            }
            if let Some(c) = &change.contact {
                entry.contact = c.clone();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Council;
    use crate::KeyPair;

    fn genesis() -> Policy {
        let council = Council {
            members: [KeyPair::generate().public()].into(),
            threshold: 1,
        };
        Policy::genesis(council, BTreeMap::new(), 1_000, 86_400).unwrap()
    }

    #[test]
    fn a_change_applies_and_each_fault_names_its_field() {
        let current = genesis();
        let sales_key = KeyPair::generate().public();
        let next = PolicyChange::from_toml(&format!(
            "expires_in = \"2d\"\n[domains.sales]\nadd_keys = [\"{sales_key}\"]"
        ))
        .unwrap()
        .apply(&current, 2_000)
        .unwrap();
        assert_eq!((next.version, next.expires_at), (2, 2_000 + 2 * 86_400));
        assert!(next
            .domains
            .contains_key(&DomainName::new("sales").unwrap()));

        let fault = |toml: &str| {
            PolicyChange::from_toml(toml)
                .unwrap()
                .apply(&current, 2_000)
        };
        assert!(matches!(
            fault("expires_in = \"3y\""),
            Err(PolicyChangeError::Duration(
                DurationError::UnknownUnit { .. }
            ))
        ));
        assert!(matches!(
            fault("expires_in = \"0s\""),
            Err(PolicyChangeError::Validity(ValidityError::Zero))
        ));
        let stranger = KeyPair::generate().public();
        assert!(matches!(
            fault(&format!("[council]\nremove = [\"{stranger}\"]")),
            Err(PolicyChangeError::NotAMember(k)) if k == stranger
        ));
        let err = fault("[council]\nadd = [\"nope\"]").unwrap_err();
        assert!(err.to_string().starts_with("council.add: "), "{err}");
        assert!(matches!(
            fault("remove_domains = [\"ghost\"]"),
            Err(PolicyChangeError::UnknownDomain(_))
        ));
        assert!(matches!(
            fault("[council]\nthreshold = 5"),
            Err(PolicyChangeError::Shape(_))
        ));
        assert!(matches!(
            PolicyChange::from_toml("bogus = 1"),
            Err(PolicyChangeError::Toml(_))
        ));
    }
}
