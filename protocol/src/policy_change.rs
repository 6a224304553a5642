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

use crate::duration::parse_duration;
use crate::policy::{Policy, SchemaCompatibility};
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

fn key(s: &str, what: &str) -> Result<PublicKey, String> {
    s.parse::<PublicKey>().map_err(|e| format!("{what}: {e}"))
}

impl PolicyChange {
    /// Parses a change file's TOML.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies the change to `current`, giving version N+1 issued at `now`.
    pub fn apply(&self, current: &Policy, now: u64) -> Result<Policy, String> {
        let mut p = current.clone();
        // A successor is written in the newest format, whatever its predecessor's.
        p.format = crate::policy::POLICY_FORMAT;
        p.version = current.version + 1;
        p.issued_at = now;
        // Never inherited: an emergency policy valid for minutes must not make the
        // next one expire as fast.
        let span = match &self.expires_in {
            Some(d) => parse_duration(d).map_err(|e| format!("expires_in: {e}"))?,
            None => crate::policy::DEFAULT_VALIDITY_SECS,
        };
        let span = crate::policy::check_validity(span).map_err(|e| format!("expires_in: {e}"))?;
        p.expires_at = now.saturating_add(span);
        for k in &self.council.add {
            p.council.members.insert(key(k, "council.add")?);
        }
        for k in &self.council.remove {
            let k = key(k, "council.remove")?;
            if !p.council.members.remove(&k) {
                return Err(format!("council.remove: {k} is not a council member"));
            }
        }
        if let Some(t) = self.council.threshold {
            p.council.threshold = t;
        }
        for d in &self.remove_domains {
            let name = DomainName::new(d).map_err(|e| format!("remove_domains: {e}"))?;
            if p.domains.remove(&name).is_none() {
                return Err(format!("remove_domains: domain {name} is not registered"));
            }
        }
        for (name, change) in &self.domains {
            let name = DomainName::new(name).map_err(|e| format!("domains.{name}: {e}"))?;
            let entry = p.domains.entry(name.clone()).or_default();
            for k in &change.add_keys {
                entry
                    .publisher_keys
                    .insert(key(k, &format!("domains.{name}.add_keys"))?);
            }
            for k in &change.remove_keys {
                let k = key(k, &format!("domains.{name}.remove_keys"))?;
                if !entry.publisher_keys.remove(&k) {
                    return Err(format!(
                        "domains.{name}.remove_keys: {k} is not registered for {name}"
                    ));
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
        if let Some(rules) = &self.rules {
            p.rules = rules.clone();
        }
        if let Some(q) = self.settings.quality {
            p.settings.quality = q;
        }
        if let Some(s) = self.settings.serve_retired {
            p.settings.serve_retired = s;
        }
        if let Some(m) = self.settings.schema_compatibility {
            p.settings.schema_compatibility = m;
        }
        if let Some(n) = self.settings.max_versions_per_domain {
            p.settings.domain_limits.max_versions = n;
        }
        if let Some(n) = self.settings.max_versions_per_domain_per_hour {
            p.settings.domain_limits.max_versions_per_hour = n;
        }
        p.check_shape().map_err(|e| e.to_string())?;
        Ok(p)
    }
}
