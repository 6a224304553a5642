//! Policy-as-code: Cedar rules carried inside the signed policy and evaluated the
//! same way on every node, for two decisions.
//!
//! - `publish`: principal `Mesh::Domain::"<publisher's domain>"`, action
//!   `Mesh::Action::"publish"`, resource the product version.
//! - `fetch`: principal the requesting node's domain per the registry, or
//!   `Mesh::Anonymous::"anonymous"` for an unregistered peer; action
//!   `Mesh::Action::"fetch"`; resource the product version.
//!
//! The resource (`Mesh::Product`) has the attributes `id`, `domain`, `name`,
//! `version`, `major`, `status`, `classification`, `classification_rank` (public 0,
//! internal 1, confidential 2, pii 3), `title`, `description`, `owner_team`,
//! `owner_contact`, `tags`, `consumers`, `grants` (the consumer domains holding an
//! access grant in force, see [`crate::access`]; empty at publish),
//! `field_classifications`, `has_pii`,
//! `fields` (set of `{name, type, required, classification}`) and `sla`, a record
//! whose keys `freshness_secs`, `update_frequency_secs`, `availability_bp` and
//! `retention_secs` are present only when declared (test them with `has`).
//! Principals have `name`.
//!
//! Cedar semantics: deny unless a `permit` matches, and any matching `forbid` wins.
//! A rule's `@id("...")` and `@reason("...")` annotations name it in denials. A rule
//! that fails to evaluate denies (fail closed). An empty rule text allows everything.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityUid, PolicySet,
    Request, RestrictedExpression,
};
use serde::{Deserialize, Serialize};

use crate::manifest::{Classification, Manifest};
use crate::DomainName;

/// The outcome of evaluating rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied by `rule` for `reason`.
    Deny {
        /// The deciding rule's `@id`, or Cedar's id for it.
        rule: String,
        /// The rule's `@reason`, or an explanation.
        reason: String,
    },
}

impl Decision {
    /// Whether the decision allows.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Rules that do not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(String);

/// A parsed rule set.
#[derive(Debug, Clone)]
pub struct Rules {
    set: Option<PolicySet>,
}

/// The largest rule text accepted.
pub const MAX_RULES_BYTES: usize = 256 * 1024;

fn uid(kind: &str, id: &str) -> Result<EntityUid, RuleError> {
    let quoted = serde_json::to_string(id).map_err(|e| RuleError(e.to_string()))?;
    EntityUid::from_str(&format!("{kind}::{quoted}")).map_err(|e| RuleError(e.to_string()))
}

fn rank(c: Classification) -> i64 {
    match c {
        Classification::Public => 0,
        Classification::Internal => 1,
        Classification::Confidential => 2,
        Classification::Pii => 3,
    }
}

fn s(v: impl ToString) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_string())
}

fn long(v: u64) -> RestrictedExpression {
    RestrictedExpression::new_long(i64::try_from(v).unwrap_or(i64::MAX))
}

fn strings<I: IntoIterator<Item = T>, T: ToString>(items: I) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(s))
}

fn product_entity(m: &Manifest, grants: &[DomainName]) -> Result<Entity, RuleError> {
    let err = |e: &dyn std::fmt::Display| RuleError(e.to_string());
    let mut sla = Vec::new();
    for (k, v) in [
        ("freshness_secs", m.sla.freshness_secs),
        ("update_frequency_secs", m.sla.update_frequency_secs),
        ("availability_bp", m.sla.availability_bp.map(u64::from)),
        ("retention_secs", m.sla.retention_secs),
    ] {
        if let Some(v) = v {
            sla.push((k.to_string(), long(v)));
        }
    }
    let fields = m
        .schema
        .iter()
        .map(|f| {
            RestrictedExpression::new_record([
                ("name".to_string(), s(&f.name)),
                (
                    "type".to_string(),
                    s(format!("{:?}", f.logical_type).to_lowercase()),
                ),
                (
                    "required".to_string(),
                    RestrictedExpression::new_bool(f.required),
                ),
                ("classification".to_string(), s(f.classification)),
            ])
            .map_err(|e| err(&e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let has_pii = m.classification == Classification::Pii
        || m.schema
            .iter()
            .any(|f| f.classification == Classification::Pii);
    let attrs: HashMap<String, RestrictedExpression> = [
        ("id", s(&m.id)),
        ("domain", s(m.id.domain())),
        ("name", s(m.id.name())),
        ("version", s(&m.version)),
        ("major", long(m.version.major)),
        ("status", s(m.status)),
        ("classification", s(m.classification)),
        (
            "classification_rank",
            RestrictedExpression::new_long(rank(m.classification)),
        ),
        ("title", s(&m.title)),
        ("description", s(&m.description)),
        ("owner_team", s(&m.owner.team)),
        ("owner_contact", s(&m.owner.contact)),
        ("tags", strings(&m.tags)),
        ("consumers", strings(&m.consumers)),
        ("grants", strings(grants)),
        (
            "field_classifications",
            strings(m.schema.iter().map(|f| f.classification)),
        ),
        ("has_pii", RestrictedExpression::new_bool(has_pii)),
        ("fields", RestrictedExpression::new_set(fields)),
        (
            "sla",
            RestrictedExpression::new_record(sla).map_err(|e| err(&e))?,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Entity::new(
        uid("Mesh::Product", &format!("{}@{}", m.id, m.version))?,
        attrs,
        HashSet::new(),
    )
    .map_err(|e| err(&e))
}

fn principal_entity(domain: Option<&DomainName>) -> Result<Entity, RuleError> {
    let (kind, name) = match domain {
        Some(d) => ("Mesh::Domain", d.as_str()),
        None => ("Mesh::Anonymous", "anonymous"),
    };
    Entity::new(
        uid(kind, name)?,
        HashMap::from([("name".to_string(), s(name))]),
        HashSet::new(),
    )
    .map_err(|e| RuleError(e.to_string()))
}

/// Position of a rule in the text: Cedar names parsed rules `policy0`, `policy1`, ...
fn text_order(id: &cedar_policy::PolicyId) -> (u64, String) {
    let s = id.to_string();
    let n = s
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, s)
}

/// One rule of a rule set, as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSummary {
    /// Its `@id` annotation, or Cedar's id (`policy0`, ...).
    pub id: String,
    /// `permit` or `forbid`.
    pub effect: String,
    /// Its `@reason` annotation, if any.
    pub reason: Option<String>,
    /// The rule as Cedar prints it.
    pub text: String,
}

impl Rules {
    /// Every rule in rule-text order, with its id, effect and reason.
    pub fn summaries(&self) -> Vec<RuleSummary> {
        let Some(set) = &self.set else {
            return Vec::new();
        };
        let mut rules: Vec<_> = set.policies().collect();
        rules.sort_by_key(|p| text_order(p.id()));
        rules
            .into_iter()
            .map(|p| RuleSummary {
                id: p
                    .annotation("id")
                    .map(str::to_owned)
                    .unwrap_or_else(|| p.id().to_string()),
                effect: match p.effect() {
                    cedar_policy::Effect::Permit => "permit".into(),
                    cedar_policy::Effect::Forbid => "forbid".into(),
                },
                reason: p.annotation("reason").map(str::to_owned),
                text: p.to_string(),
            })
            .collect()
    }

    /// Parses rule text; empty text means "allow everything".
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        if text.len() > MAX_RULES_BYTES {
            return Err(RuleError(format!(
                "rules are {} bytes, more than {MAX_RULES_BYTES}",
                text.len()
            )));
        }
        if text.trim().is_empty() {
            return Ok(Rules { set: None });
        }
        let set = PolicySet::from_str(text).map_err(|e| RuleError(format!("{e:?}")))?;
        Ok(Rules { set: Some(set) })
    }

    /// May `publisher` publish this manifest?
    pub fn publish(&self, publisher: &DomainName, m: &Manifest) -> Decision {
        self.decide(Some(publisher), "publish", m, &[])
    }

    /// May a node of `requester` (None: an unregistered peer) fetch this product,
    /// whose access grants in force name the domains `grants`?
    pub fn fetch(
        &self,
        requester: Option<&DomainName>,
        m: &Manifest,
        grants: &[DomainName],
    ) -> Decision {
        self.decide(requester, "fetch", m, grants)
    }

    fn decide(
        &self,
        principal: Option<&DomainName>,
        action: &str,
        m: &Manifest,
        grants: &[DomainName],
    ) -> Decision {
        let Some(set) = &self.set else {
            return Decision::Allow;
        };
        match self.evaluate(set, principal, action, m, grants) {
            Ok(d) => d,
            Err(e) => Decision::Deny {
                rule: "evaluation".into(),
                reason: format!("rules could not be evaluated: {e}"),
            },
        }
    }

    fn evaluate(
        &self,
        set: &PolicySet,
        principal: Option<&DomainName>,
        action: &str,
        m: &Manifest,
        grants: &[DomainName],
    ) -> Result<Decision, RuleError> {
        let p = principal_entity(principal)?;
        let r = product_entity(m, grants)?;
        let request = Request::new(
            p.uid(),
            uid("Mesh::Action", action)?,
            r.uid(),
            Context::empty(),
            None,
        )
        .map_err(|e| RuleError(e.to_string()))?;
        let entities =
            Entities::from_entities([p, r], None).map_err(|e| RuleError(e.to_string()))?;
        let response = Authorizer::new().is_authorized(&request, set, &entities);
        let name = |id: &cedar_policy::PolicyId| {
            let rule = set
                .annotation(id, "id")
                .map(str::to_owned)
                .unwrap_or_else(|| id.to_string());
            let reason = set.annotation(id, "reason").map(str::to_owned);
            (rule, reason)
        };
        // Fail closed: a rule that errors (e.g. reads an undeclared attribute without
        // `has`) denies rather than silently not applying.
        let mut errors: Vec<_> = response
            .diagnostics()
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
                (
                    text_order(pe.policy_id()),
                    pe.policy_id().clone(),
                    e.to_string(),
                )
            })
            .collect();
        errors.sort();
        if let Some((_, id, e)) = errors.into_iter().next() {
            let (rule, _) = name(&id);
            return Ok(Decision::Deny {
                rule,
                reason: format!("the rule failed to evaluate ({e}); fix the rule or the product"),
            });
        }
        if response.decision() == CedarDecision::Allow {
            return Ok(Decision::Allow);
        }
        // Several rules may decide; name the first in rule-text order, so every node
        // reports the same one.
        let mut deciding: Vec<&cedar_policy::PolicyId> = response.diagnostics().reason().collect();
        deciding.sort_by_key(|id| text_order(id));
        let decision = match deciding.first().copied() {
            Some(id) => {
                let (rule, reason) = name(id);
                Decision::Deny {
                    reason: reason.unwrap_or_else(|| format!("forbidden by rule {rule}")),
                    rule,
                }
            }
            None => Decision::Deny {
                rule: "default-deny".into(),
                reason: format!("no rule permits {action} of this product"),
            },
        };
        Ok(decision)
    }
}
