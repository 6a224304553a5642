//! Governance rules with an injected clock and hand-built hostile inputs: the policy
//! chain (TUF root rules), the domain registry, and Cedar rules.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};

use mesh_protocol::chain::PolicyChain;
use mesh_protocol::manifest::*;
use mesh_protocol::policy::{Council, DomainEntry, Settings, POLICY_FORMAT};
use mesh_protocol::policy_change::{PolicyChange, PolicyChangeError};
use mesh_protocol::rules::{Decision, Rules};
use mesh_protocol::*;

const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;
const SAMPLE_RULES: &str = include_str!("../../../examples/governance/rules.cedar");

fn key(n: u8) -> KeyPair {
    KeyPair::from_secret([n; 32])
}

fn council(ids: &[u8], threshold: u16) -> Council {
    Council {
        members: ids.iter().map(|i| key(*i).public()).collect(),
        threshold,
    }
}

fn policy(version: u64, council: Council, expires_at: u64) -> Policy {
    let mut domains = BTreeMap::new();
    domains.insert(
        DomainName::new("sales").unwrap(),
        DomainEntry {
            publisher_keys: BTreeSet::from([key(50).public()]),
            ..Default::default()
        },
    );
    Policy {
        format: POLICY_FORMAT,
        version,
        issued_at: NOW - 10 * DAY,
        expires_at,
        council,
        domains,
        rules: String::new(),
        settings: Settings::default(),
    }
}

fn signed(p: &Policy, signers: &[u8]) -> Signed<Policy> {
    let mut s = Signed::unsigned(p);
    for i in signers {
        s.add_signature(&key(*i));
    }
    s
}

/// A chain at v1 with a 2-of-3 council {1, 2, 3}.
fn genesis() -> PolicyChain {
    PolicyChain::from_genesis(
        signed(&policy(1, council(&[1, 2, 3], 2), NOW + DAY), &[1, 2]),
        NOW,
    )
    .unwrap()
}

fn v2(signers: &[u8]) -> Signed<Policy> {
    signed(&policy(2, council(&[1, 2, 3], 2), NOW + DAY), signers)
}

#[test]
fn successor_needs_a_threshold_of_distinct_keys() {
    let mut c = genesis();
    let o = c.offer(&[v2(&[1])], NOW);
    assert!(o.accepted.is_empty());
    let err = o.error.unwrap().to_string();
    assert!(err.contains("1 of 2 required signatures"), "{err}");
    assert!(
        err.contains(&key(2).public().to_string()),
        "names a missing key: {err}"
    );

    // One key signing twice still counts once: re-signing replaces, and a duplicate
    // entry smuggled into the envelope by hand does not count twice either.
    let mut twice = v2(&[1]);
    twice.add_signature(&key(1));
    assert_eq!(twice.signatures().len(), 1);
    let smuggled = graft(&v2(&[1]), &v2(&[1]));
    assert_eq!(smuggled.signatures().len(), 2);
    assert_eq!(smuggled.valid_signers().len(), 1);
    assert!(c.offer(&[twice, smuggled], NOW).error.is_some());

    assert_eq!(c.offer(&[v2(&[1, 3])], NOW).accepted, vec![2]);
    assert_eq!(c.version(), 2);
}

#[test]
fn signatures_over_other_bytes_or_of_another_kind_do_not_count() {
    let mut c = genesis();
    // Member 2's signature over a *different* policy document, grafted onto v2.
    let other = signed(&policy(2, council(&[1, 2, 3], 3), NOW + DAY), &[2]);
    let target = v2(&[1]);
    let grafted = graft(&target, &other);
    assert_eq!(
        grafted.valid_signers().len(),
        1,
        "a signature over other bytes is invalid"
    );
    assert!(c.offer(&[grafted], NOW).error.is_some());

    // Member 2 signs the exact v2 bytes, but as a *manifest* (other domain tag).
    let as_manifest: Signed<Manifest> = Signed::from_bytes(&target.to_bytes()).unwrap();
    let mut as_manifest = as_manifest;
    as_manifest.add_signature(&key(2));
    let replayed = graft(
        &target,
        &Signed::<Policy>::from_bytes(&as_manifest.to_bytes()).unwrap(),
    );
    assert_eq!(
        replayed.valid_signers().len(),
        1,
        "a manifest signature never verifies as a policy one"
    );
    assert!(c.offer(&[replayed], NOW).error.is_some());
}

/// `target` carrying its own signatures plus every signature entry of `donor`.
fn graft(target: &Signed<Policy>, donor: &Signed<Policy>) -> Signed<Policy> {
    // The envelope encoding is (format, payload, signatures): rebuild it by hand.
    let mut sigs: Vec<_> = target.signatures().to_vec();
    sigs.extend_from_slice(donor.signatures());
    let bytes = mesh_protocol::encode(&(1u8, target.payload().to_vec(), sigs));
    Signed::from_bytes(&bytes).unwrap()
}

#[test]
fn rollback_skip_and_equivocation() {
    let mut c = genesis();
    assert_eq!(c.offer(&[v2(&[1, 2])], NOW).accepted, vec![2]);
    let v3 = signed(&policy(3, council(&[1, 2, 3], 2), NOW + DAY), &[1, 2]);
    assert_eq!(c.offer(std::slice::from_ref(&v3), NOW).accepted, vec![3]);

    // Rollback: an older version (the genuine v2) is ignored; the chain stays at v3.
    let o = c.offer(&[v2(&[1, 2])], NOW);
    assert_eq!(o.ignored, vec![2]);
    assert!(o.error.is_none());
    assert_eq!(c.version(), 3);

    // Skip: v5 while at v3.
    let v5 = signed(&policy(5, council(&[1, 2, 3], 2), NOW + DAY), &[1, 2]);
    let err = c.offer(&[v5], NOW).error.unwrap();
    assert!(
        matches!(
            err,
            PolicyError::WrongVersion {
                found: 5,
                expected: 4
            }
        ),
        "{err}"
    );

    // Equivocation: a different, validly signed document claiming version 3.
    let mut other = policy(3, council(&[1, 2, 3], 2), NOW + 2 * DAY);
    other.rules = "// different".into();
    let err = c.offer(&[signed(&other, &[1, 2, 3])], NOW).error.unwrap();
    assert!(
        matches!(err, PolicyError::Equivocation { version: 3, .. }),
        "{err}"
    );
    assert_eq!(c.current_signed().hash(), v3.hash());
}

/// Regression: any peer could raise the equivocation alarm with an unsigned or
/// under-signed document bearing an accepted version number.
#[test]
fn only_a_validly_signed_conflict_is_equivocation() {
    let mut c = genesis();
    assert_eq!(c.offer(&[v2(&[1, 2])], NOW).accepted, vec![2]);
    let mut other = policy(2, council(&[1, 2, 3], 2), NOW + 2 * DAY);
    other.rules = "// forged".into();
    for signers in [&[][..], &[1][..], &[9, 8][..]] {
        let err = c.offer(&[signed(&other, signers)], NOW).error.unwrap();
        assert!(
            matches!(err, PolicyError::UnderThreshold { version: 2, .. }),
            "signed by {signers:?}: {err}"
        );
    }
    // A second genesis, unsigned: invalid, not equivocation.
    let mut g = policy(1, council(&[1, 2, 3], 2), NOW + DAY);
    g.rules = "// another genesis".into();
    let err = c.offer(&[signed(&g, &[])], NOW).error.unwrap();
    assert!(!matches!(err, PolicyError::Equivocation { .. }), "{err}");
    // Signed by the threshold: that is equivocation, and the chain keeps its own.
    let err = c.offer(&[signed(&other, &[1, 3])], NOW).error.unwrap();
    assert!(
        matches!(err, PolicyError::Equivocation { version: 2, .. }),
        "{err}"
    );
    assert_eq!(c.version(), 2);
}

#[test]
fn only_the_newest_policy_must_be_unexpired() {
    // Final expired: refused, nothing accepted.
    let mut c = genesis();
    let stale = signed(&policy(2, council(&[1, 2, 3], 2), NOW - 1), &[1, 2]);
    let o = c.offer(std::slice::from_ref(&stale), NOW);
    assert!(matches!(
        o.error,
        Some(PolicyError::Expired { version: 2, .. })
    ));
    assert_eq!(c.version(), 1);

    // Expired intermediate followed by a valid newest: both accepted.
    let v3 = signed(&policy(3, council(&[1, 2, 3], 2), NOW + DAY), &[1, 2]);
    let o = c.offer(&[v3.clone(), stale.clone()], NOW);
    assert_eq!(o.accepted, vec![2, 3]);

    // The whole chain verifies from genesis at NOW, and not once v3 has expired.
    let g = signed(&policy(1, council(&[1, 2, 3], 2), NOW + DAY), &[1, 2]);
    assert_eq!(
        PolicyChain::verify(g.clone(), &[stale.clone(), v3.clone()], NOW)
            .unwrap()
            .version(),
        3
    );
    assert!(PolicyChain::verify(g, &[stale, v3], NOW + 2 * DAY).is_err());
}

#[test]
fn rotation_needs_both_the_old_and_the_new_threshold() {
    let mut c = genesis();
    // 2-of-3 {1,2,3} -> 3-of-5 {1,2,3,4,5}.
    let rotated = policy(2, council(&[1, 2, 3, 4, 5], 3), NOW + DAY);
    // New council only (3 of the new, but only 1 of the old): refused.
    let err = c
        .offer(&[signed(&rotated, &[3, 4, 5])], NOW)
        .error
        .unwrap()
        .to_string();
    assert!(err.contains("current council"), "{err}");
    // Old threshold met (1, 2) but only 2 of the new 3: refused.
    let err = c
        .offer(&[signed(&rotated, &[1, 2])], NOW)
        .error
        .unwrap()
        .to_string();
    assert!(
        err.contains("new council") && err.contains("2 of 3"),
        "{err}"
    );
    // Both: accepted.
    assert_eq!(
        c.offer(&[signed(&rotated, &[1, 2, 4])], NOW).accepted,
        vec![2]
    );
    // The next version must now satisfy the 3-of-5 council.
    let next = policy(3, council(&[1, 2, 3, 4, 5], 3), NOW + DAY);
    assert!(c.offer(&[signed(&next, &[1, 2])], NOW).error.is_some());
    assert_eq!(c.offer(&[signed(&next, &[3, 4, 5])], NOW).accepted, vec![3]);
}

#[test]
fn a_removed_publisher_key_is_no_longer_registered() {
    let c = genesis();
    let sales = DomainName::new("sales").unwrap();
    assert!(c.current().is_publisher(&sales, &key(50).public()));
    assert!(
        !c.current().is_publisher(&sales, &key(51).public()),
        "unregistered key"
    );
    let change = PolicyChange::from_toml(&format!(
        "[domains.sales]\nadd_keys = [\"{}\"]\nremove_keys = [\"{}\"]\n",
        key(51).public(),
        key(50).public()
    ))
    .unwrap();
    let next = change.apply(c.current(), NOW).unwrap();
    assert_eq!(next.version, 2);
    assert!(!next.is_publisher(&sales, &key(50).public()));
    assert!(next.is_publisher(&sales, &key(51).public()));
    // Removing a key that is not there is an error, not a silent no-op.
    let bad = PolicyChange::from_toml(&format!(
        "[domains.sales]\nremove_keys = [\"{}\"]\n",
        key(52).public()
    ))
    .unwrap();
    assert!(matches!(
        bad.apply(c.current(), NOW),
        Err(PolicyChangeError::KeyNotRegistered { .. })
    ));
    // An unknown field in a change file is an error.
    assert!(PolicyChange::from_toml("[council]\nthresold = 2\n").is_err());
}

/// Regression: a draft silently inherited the previous version's span (a 45 s
/// emergency policy made the next one expire in 45 s too), and any span was taken.
#[test]
fn a_drafted_policy_gets_the_default_validity_and_a_bounded_one() {
    let mut current = policy(1, council(&[1, 2, 3], 2), NOW + 45);
    current.issued_at = NOW;
    let next = PolicyChange::default().apply(&current, NOW).unwrap();
    assert_eq!(
        next.expires_at - next.issued_at,
        mesh_protocol::policy::DEFAULT_VALIDITY_SECS
    );
    let change = |d: &str| PolicyChange::from_toml(&format!("expires_in = \"{d}\"\n")).unwrap();
    assert_eq!(
        change("30d").apply(&current, NOW).unwrap().expires_at,
        NOW + 30 * DAY
    );
    for absurd in ["213503982334601d", "11000d", "0s"] {
        let err = change(absurd).apply(&current, NOW).unwrap_err();
        assert!(
            matches!(
                err,
                PolicyChangeError::Duration(_) | PolicyChangeError::Validity(_)
            ),
            "{absurd}: {err}"
        );
        assert!(err.to_string().starts_with("expires_in: "), "{err}");
    }
}

#[test]
fn unparsable_rules_make_a_policy_invalid() {
    let mut c = genesis();
    let mut p = policy(2, council(&[1, 2, 3], 2), NOW + DAY);
    p.rules = "permit(principal, action, resource) when { ".into();
    let err = c.offer(&[signed(&p, &[1, 2])], NOW).error.unwrap();
    assert!(matches!(err, PolicyError::BadRules { .. }), "{err}");
}

fn manifest() -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        id: "sales/orders".parse().unwrap(),
        version: semver::Version::new(1, 0, 0),
        status: Status::Active,
        title: "Orders".into(),
        description: "All orders".into(),
        owner: Owner {
            team: "sales-data".into(),
            contact: "x@example.com".into(),
        },
        tags: vec![],
        classification: Classification::Internal,
        consumers: vec![],
        schema: vec![
            Field {
                name: "id".into(),
                logical_type: LogicalType::Integer,
                required: true,
                description: String::new(),
                classification: Classification::Internal,
                unique: false,
            },
            Field {
                name: "note".into(),
                logical_type: LogicalType::String,
                required: false,
                description: String::new(),
                classification: Classification::Internal,
                unique: false,
            },
        ],
        null_values: Default::default(),
        sla: Sla {
            freshness_secs: Some(DAY),
            ..Default::default()
        },
        lineage: vec![],
        files: vec![],
        quality: None,
        created_at: NOW,
        publisher: key(50).public(),
        contract: None,
        derivation: None,
        odps: None,
    }
}

fn deny_rule(d: Decision) -> String {
    match d {
        Decision::Deny { rule, reason } => {
            assert!(!reason.is_empty());
            rule
        }
        Decision::Allow => "allow".into(),
    }
}

#[test]
fn sample_publish_rules_decide_and_name_the_rule() {
    let rules = Rules::parse(SAMPLE_RULES).unwrap();
    let sales = DomainName::new("sales").unwrap();
    assert_eq!(rules.publish(&sales, &manifest()), Decision::Allow);

    let mut m = manifest();
    m.description.clear();
    assert_eq!(
        deny_rule(rules.publish(&sales, &m)),
        "owner-and-description"
    );

    let mut m = manifest();
    m.schema[1].classification = Classification::Pii;
    assert_eq!(deny_rule(rules.publish(&sales, &m)), "pii-is-protected");
    m.classification = Classification::Confidential;
    assert_eq!(
        deny_rule(rules.publish(&sales, &m)),
        "pii-is-protected",
        "still needs retention"
    );
    m.sla.retention_secs = Some(365 * DAY);
    assert_eq!(rules.publish(&sales, &m), Decision::Allow);

    let mut m = manifest();
    m.id = "sales/tmp-orders".parse().unwrap();
    assert_eq!(deny_rule(rules.publish(&sales, &m)), "no-scratch-names");

    let mut m = manifest();
    m.sla.freshness_secs = None;
    assert_eq!(
        deny_rule(rules.publish(&sales, &m)),
        "active-declares-freshness"
    );
    m.status = Status::Draft;
    assert_eq!(rules.publish(&sales, &m), Decision::Allow);
}

#[test]
fn sample_fetch_rules_decide_by_requesting_domain() {
    let rules = Rules::parse(SAMPLE_RULES).unwrap();
    let sales = DomainName::new("sales").unwrap();
    let finance = DomainName::new("finance").unwrap();
    let hr = DomainName::new("hr").unwrap();
    let m = manifest();
    assert_eq!(rules.fetch(Some(&finance), &m, &[]), Decision::Allow);
    assert_eq!(
        deny_rule(rules.fetch(None, &m, &[])),
        "internal-needs-a-domain"
    );
    let mut public = manifest();
    public.classification = Classification::Public;
    assert_eq!(rules.fetch(None, &public, &[]), Decision::Allow);

    let mut pii = manifest();
    pii.classification = Classification::Pii;
    pii.consumers = vec![finance.clone()];
    assert_eq!(rules.fetch(Some(&finance), &pii, &[]), Decision::Allow);
    assert_eq!(
        rules.fetch(Some(&sales), &pii, &[]),
        Decision::Allow,
        "the owner reads its own"
    );
    assert_eq!(
        deny_rule(rules.fetch(Some(&hr), &pii, &[])),
        "restricted-to-consumers"
    );
    // A grant in force lets a domain read a restricted product; someone else's
    // grant does not, and an anonymous peer is still refused.
    assert_eq!(
        rules.fetch(Some(&hr), &pii, std::slice::from_ref(&hr)),
        Decision::Allow
    );
    assert_eq!(
        deny_rule(rules.fetch(Some(&hr), &pii, std::slice::from_ref(&finance))),
        "restricted-to-consumers"
    );
    assert_eq!(
        deny_rule(rules.fetch(None, &pii, std::slice::from_ref(&hr))),
        "internal-needs-a-domain"
    );
    assert_eq!(
        deny_rule(rules.fetch(None, &pii, &[])),
        "internal-needs-a-domain"
    );
}

#[test]
fn rules_fail_closed_and_empty_rules_allow() {
    let sales = DomainName::new("sales").unwrap();
    assert_eq!(
        Rules::parse("").unwrap().publish(&sales, &manifest()),
        Decision::Allow
    );
    // Reads an attribute the product does not declare, without `has`: denies.
    let rules = Rules::parse(
        r#"permit(principal, action, resource);
           @id("needs-retention") forbid(principal, action, resource) when { resource.sla.retention_secs < 10 };"#,
    )
    .unwrap();
    assert_eq!(
        deny_rule(rules.publish(&sales, &manifest())),
        "needs-retention"
    );
    // No permit at all: default deny, explained.
    let none = Rules::parse(r#"forbid(principal, action, resource) when { false };"#).unwrap();
    assert_eq!(deny_rule(none.publish(&sales, &manifest())), "default-deny");
}

#[test]
fn rule_summaries_list_every_rule_in_text_order_with_id_effect_and_reason() {
    let rules = Rules::parse(SAMPLE_RULES).unwrap();
    let listed = rules.summaries();
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(&ids[..2], ["publish-open", "owner-and-description"]);
    assert_eq!(listed.len(), SAMPLE_RULES.matches("@id(").count());
    assert_eq!(listed[0].effect, "permit");
    assert_eq!(listed[1].effect, "forbid");
    assert_eq!(
        listed[1].reason.as_deref(),
        Some("every product names an owner team and has a description")
    );
    assert!(listed[1].text.contains("owner_team"));
    let bare = Rules::parse("permit (principal, action, resource);").unwrap();
    assert_eq!(bare.summaries()[0].id, "policy0");
    assert_eq!(bare.summaries()[0].reason, None);
    assert!(Rules::parse("").unwrap().summaries().is_empty());
}
