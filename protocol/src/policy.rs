//! The governance policy: council, domain registry, rules and settings, signed by a
//! threshold of the council and chained by version like TUF root metadata.
//!
//! This module is pure and clock-injected: every check takes `now` in unix seconds.
//! [`verify_genesis`] establishes the trust root; [`verify_successor`] accepts
//! version N+1 only with a threshold of both the old and the new council.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::id::DomainName;
use crate::keys::PublicKey;
use crate::signed::{Signed, SignedKind};
use crate::DecodeError;

/// The format version of a policy. Format 3 added [`Settings::domain_limits`];
/// format 2 policies still decode (with no limits) and keep their bytes.
pub const POLICY_FORMAT: u8 = 3;

/// The previous format, still read.
const POLICY_FORMAT_2: u8 = 2;

/// How long a new policy version is valid when its change file names no
/// `expires_in` (and the drafting tool is given no other default): one year.
pub const DEFAULT_VALIDITY_SECS: u64 = 365 * 86_400;

/// The longest validity a policy may be drafted with: ten years. A council that
/// means "forever" should still renew its policy.
pub const MAX_VALIDITY_SECS: u64 = 10 * 365 * 86_400;

/// Why a validity span cannot be given to a new policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    /// Zero seconds.
    #[error("a policy must be valid for some time; give e.g. 365d")]
    Zero,
    /// Longer than [`MAX_VALIDITY_SECS`].
    #[error("{} is longer than the longest validity a policy may have ({}); renew it instead",
        crate::duration::format_duration(*.0),
        crate::duration::format_duration(MAX_VALIDITY_SECS))]
    TooLong(u64),
}

/// Checks a validity span for a new policy: more than zero, at most
/// [`MAX_VALIDITY_SECS`].
pub fn check_validity(secs: u64) -> Result<u64, ValidityError> {
    if secs == 0 {
        return Err(ValidityError::Zero);
    }
    if secs > MAX_VALIDITY_SECS {
        return Err(ValidityError::TooLong(secs));
    }
    Ok(secs)
}

/// The largest policy payload accepted.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// The federated council that signs policies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Council {
    /// Member keys.
    pub members: BTreeSet<PublicKey>,
    /// How many distinct members must sign.
    pub threshold: u16,
}

/// A domain's entry in the registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEntry {
    /// Keys allowed to sign this domain's manifests and announcements.
    pub publisher_keys: BTreeSet<PublicKey>,
    /// libp2p peer ids (base58) of the domain's nodes.
    pub nodes: BTreeSet<String>,
    /// Who to contact about the domain.
    pub contact: String,
}

/// How schema changes between versions are checked at publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaCompatibility {
    /// No check.
    #[default]
    None,
    /// Breaking changes need a new major version.
    Backward,
    /// Breaking changes are refused, whatever the version.
    Frozen,
}

impl std::fmt::Display for SchemaCompatibility {
    /// As a change file writes it: `none`, `backward`, `frozen`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SchemaCompatibility::None => "none",
            SchemaCompatibility::Backward => "backward",
            SchemaCompatibility::Frozen => "frozen",
        })
    }
}

/// What a publish whose data breaks its own contract (types, required, unique)
/// gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QualityEnforcement {
    /// Refused, with the fields and rows at fault.
    #[default]
    Refuse,
    /// Published, with the violations reported as warnings.
    Warn,
}

impl std::fmt::Display for QualityEnforcement {
    /// As a change file writes it: `refuse`, `warn`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QualityEnforcement::Refuse => "refuse",
            QualityEnforcement::Warn => "warn",
        })
    }
}

/// Mesh-wide settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Schema evolution mode.
    pub schema_compatibility: SchemaCompatibility,
    /// Data that breaks its contract at publish.
    pub quality: QualityEnforcement,
    /// Whether providers still serve versions whose status is `retired` (by default
    /// they do not; the catalog keeps listing them).
    pub serve_retired: bool,
    /// What one domain may add to every node's catalog (format 3).
    #[serde(default)]
    pub domain_limits: DomainLimits,
}

/// Settings as format 2 encoded them.
#[derive(Serialize, Deserialize)]
struct SettingsV2 {
    schema_compatibility: SchemaCompatibility,
    quality: QualityEnforcement,
    serve_retired: bool,
}

/// Limits on what one domain adds to every node's catalog, so that one domain (or
/// a stolen key of one) cannot flood every node. Judged by every node as it takes
/// an announcement, and by the publishing node before it publishes. 0: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainLimits {
    /// Product versions one domain may have in the catalog.
    pub max_versions: u32,
    /// Versions one domain may announce in any hour (by the versions' own
    /// announcement times, so a node that syncs a domain's history late judges it
    /// as every other node did).
    pub max_versions_per_hour: u32,
}

/// One version of the mesh's governance policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Format version, [`POLICY_FORMAT`] (or 2, read from older meshes).
    pub format: u8,
    /// Chain position; genesis is 1.
    pub version: u64,
    /// Unix seconds when drafted.
    pub issued_at: u64,
    /// Unix seconds after which this policy must not be trusted as the newest.
    pub expires_at: u64,
    /// Who signs the next version.
    pub council: Council,
    /// Domain -> publisher keys and nodes.
    pub domains: BTreeMap<DomainName, DomainEntry>,
    /// Policy-as-code evaluated at publish and fetch (empty: allow).
    pub rules: String,
    /// Mesh-wide settings.
    pub settings: Settings,
}

/// The policy's fields by name, for readable formats (policy files, the API):
/// every format reads and writes them the same way.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Policy")]
struct PolicyFields {
    format: u8,
    version: u64,
    issued_at: u64,
    expires_at: u64,
    council: Council,
    domains: BTreeMap<DomainName, DomainEntry>,
    rules: String,
    settings: Settings,
}

const POLICY_FIELD_NAMES: [&str; 8] = [
    "format",
    "version",
    "issued_at",
    "expires_at",
    "council",
    "domains",
    "rules",
    "settings",
];

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if s.is_human_readable() {
            return PolicyFields {
                format: self.format,
                version: self.version,
                issued_at: self.issued_at,
                expires_at: self.expires_at,
                council: self.council.clone(),
                domains: self.domains.clone(),
                rules: self.rules.clone(),
                settings: self.settings.clone(),
            }
            .serialize(s);
        }
        // The canonical encoding: fields in order, the settings as the format has
        // them.
        let mut st = s.serialize_struct("Policy", POLICY_FIELD_NAMES.len())?;
        st.serialize_field("format", &self.format)?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("issued_at", &self.issued_at)?;
        st.serialize_field("expires_at", &self.expires_at)?;
        st.serialize_field("council", &self.council)?;
        st.serialize_field("domains", &self.domains)?;
        st.serialize_field("rules", &self.rules)?;
        if self.format == POLICY_FORMAT_2 {
            let v2 = SettingsV2 {
                schema_compatibility: self.settings.schema_compatibility,
                quality: self.settings.quality,
                serve_retired: self.settings.serve_retired,
            };
            st.serialize_field("settings", &v2)?;
        } else {
            st.serialize_field("settings", &self.settings)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let f = PolicyFields::deserialize(d)?;
            return Ok(Policy {
                format: f.format,
                version: f.version,
                issued_at: f.issued_at,
                expires_at: f.expires_at,
                council: f.council,
                domains: f.domains,
                rules: f.rules,
                settings: f.settings,
            });
        }
        d.deserialize_struct("Policy", &POLICY_FIELD_NAMES, CanonicalPolicy)
    }
}

/// Reads the canonical encoding: the format first, then the settings as that
/// format has them.
struct CanonicalPolicy;

impl<'de> serde::de::Visitor<'de> for CanonicalPolicy {
    type Value = Policy;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a policy")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Policy, A::Error> {
        fn next<'de, T: Deserialize<'de>, A: serde::de::SeqAccess<'de>>(
            seq: &mut A,
            i: usize,
        ) -> Result<T, A::Error> {
            seq.next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &"the 8 fields of a policy"))
        }
        let format: u8 = next(&mut seq, 0)?;
        let version = next(&mut seq, 1)?;
        let issued_at = next(&mut seq, 2)?;
        let expires_at = next(&mut seq, 3)?;
        let council = next(&mut seq, 4)?;
        let domains = next(&mut seq, 5)?;
        let rules = next(&mut seq, 6)?;
        let settings = if format == POLICY_FORMAT_2 {
            let v2: SettingsV2 = next(&mut seq, 7)?;
            Settings {
                schema_compatibility: v2.schema_compatibility,
                quality: v2.quality,
                serve_retired: v2.serve_retired,
                domain_limits: DomainLimits::default(),
            }
        } else {
            next(&mut seq, 7)?
        };
        Ok(Policy {
            format,
            version,
            issued_at,
            expires_at,
            council,
            domains,
            rules,
            settings,
        })
    }
}

impl SignedKind for Policy {
    const TAG: &'static str = "mesh/policy/v1";
    const MAX_BYTES: usize = MAX_POLICY_BYTES;
    const WHAT: &'static str = "policy";
}

/// Why a policy is not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The policy bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The council is malformed.
    #[error("policy v{version}: council threshold {threshold} must be between 1 and the {members} members")]
    BadThreshold {
        /// Policy version.
        version: u64,
        /// Threshold.
        threshold: u16,
        /// Council size.
        members: usize,
    },
    /// Not enough distinct council keys signed.
    #[error("policy v{version}: {have} of {need} required signatures from the {which} council; missing: {}", missing.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "))]
    UnderThreshold {
        /// Policy version.
        version: u64,
        /// Which council (`current` or `new`).
        which: &'static str,
        /// Valid distinct signatures.
        have: usize,
        /// Threshold.
        need: u16,
        /// Members that have not signed.
        missing: Vec<PublicKey>,
    },
    /// The version is not the one expected.
    #[error("policy has version {found}, expected {expected}")]
    WrongVersion {
        /// Found.
        found: u64,
        /// Expected.
        expected: u64,
    },
    /// The policy expired.
    #[error("policy v{version} expired at {expires_at} (now {now}); the council must sign a newer version")]
    Expired {
        /// Policy version.
        version: u64,
        /// Expiry.
        expires_at: u64,
        /// Now.
        now: u64,
    },
    /// A different document was signed for a version already accepted.
    #[error("equivocation: policy v{version} {theirs} differs from the accepted v{version} {ours}; report this to the council")]
    Equivocation {
        /// The version.
        version: u64,
        /// Hash of the accepted document.
        ours: crate::Hash,
        /// Hash of the conflicting document.
        theirs: crate::Hash,
    },
    /// The policy's rules do not parse.
    #[error("policy v{version}: rules are invalid: {error}")]
    BadRules {
        /// Policy version.
        version: u64,
        /// The parser's message.
        error: String,
    },
    /// A domain entry is unusable.
    #[error("policy v{version}: domain {domain} has no publisher key")]
    EmptyDomain {
        /// Policy version.
        version: u64,
        /// Domain.
        domain: DomainName,
    },
}

impl Policy {
    /// Whether `key` may publish for `domain`.
    pub fn is_publisher(&self, domain: &DomainName, key: &PublicKey) -> bool {
        self.domains
            .get(domain)
            .is_some_and(|d| d.publisher_keys.contains(key))
    }

    /// The domain a libp2p peer id is registered to, if any.
    pub fn domain_of_node(&self, peer: &str) -> Option<&DomainName> {
        self.domains
            .iter()
            .find(|(_, d)| d.nodes.contains(peer))
            .map(|(name, _)| name)
    }

    /// The unsigned genesis (version 1) of a new mesh: `council`, the `domains`
    /// registry, no rules, default settings, valid from `now` for `valid_for`
    /// seconds. Its shape is checked (threshold within the council, every domain
    /// with a publisher key); the council then signs it.
    pub fn genesis(
        council: Council,
        domains: BTreeMap<DomainName, DomainEntry>,
        now: u64,
        valid_for: u64,
    ) -> Result<Policy, PolicyError> {
        let policy = Policy {
            format: POLICY_FORMAT,
            version: 1,
            issued_at: now,
            expires_at: now.saturating_add(valid_for),
            council,
            domains,
            rules: String::new(),
            settings: Settings::default(),
        };
        policy.check_shape()?;
        Ok(policy)
    }

    /// Checks format, council threshold, rules and domain entries.
    pub fn check_shape(&self) -> Result<(), PolicyError> {
        if self.format != POLICY_FORMAT_2 {
            crate::encoding::check_format("policy", self.format, POLICY_FORMAT)?;
        }
        let t = self.council.threshold;
        if t == 0 || usize::from(t) > self.council.members.len() {
            return Err(PolicyError::BadThreshold {
                version: self.version,
                threshold: t,
                members: self.council.members.len(),
            });
        }
        if let Err(e) = crate::rules::Rules::parse(&self.rules) {
            return Err(PolicyError::BadRules {
                version: self.version,
                error: e.to_string(),
            });
        }
        if let Some((domain, _)) = self
            .domains
            .iter()
            .find(|(_, d)| d.publisher_keys.is_empty())
        {
            return Err(PolicyError::EmptyDomain {
                version: self.version,
                domain: domain.clone(),
            });
        }
        Ok(())
    }
}

/// Checks that `signed` carries `council.threshold` distinct valid signatures of
/// `council` members.
pub fn check_threshold(
    signed: &Signed<Policy>,
    version: u64,
    council: &Council,
    which: &'static str,
) -> Result<(), PolicyError> {
    let (have, missing) = council.signatures(signed);
    if have >= usize::from(council.threshold) {
        return Ok(());
    }
    Err(PolicyError::UnderThreshold {
        version,
        which,
        have,
        need: council.threshold,
        missing,
    })
}

impl Council {
    /// How many distinct members have a valid signature on `signed`, and which
    /// members have not signed.
    pub fn signatures(&self, signed: &Signed<Policy>) -> (usize, Vec<PublicKey>) {
        let signers = signed.valid_signers();
        (
            self.members.intersection(&signers).count(),
            self.members.difference(&signers).copied().collect(),
        )
    }
}

/// Verifies a genesis policy: version 1, well-formed, signed by a threshold of its own
/// council, not expired at `now`.
pub fn verify_genesis(signed: &Signed<Policy>, now: u64) -> Result<Policy, PolicyError> {
    let policy = signed.value()?;
    if policy.version != 1 {
        return Err(PolicyError::WrongVersion {
            found: policy.version,
            expected: 1,
        });
    }
    policy.check_shape()?;
    check_threshold(signed, policy.version, &policy.council, "genesis")?;
    if policy.expires_at <= now {
        return Err(PolicyError::Expired {
            version: policy.version,
            expires_at: policy.expires_at,
            now,
        });
    }
    Ok(policy)
}

/// Verifies that `next` may follow `current`: version exactly N+1, a threshold of the
/// current council and of its own council. Expiry is the caller's check on the newest.
pub fn verify_successor(current: &Policy, next: &Signed<Policy>) -> Result<Policy, PolicyError> {
    let policy = next.value()?;
    if policy.version != current.version + 1 {
        return Err(PolicyError::WrongVersion {
            found: policy.version,
            expected: current.version + 1,
        });
    }
    policy.check_shape()?;
    check_threshold(next, policy.version, &current.council, "current")?;
    check_threshold(next, policy.version, &policy.council, "new")?;
    Ok(policy)
}
