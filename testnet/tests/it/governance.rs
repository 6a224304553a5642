//! Federated governance across real node processes: policies submitted at one node
//! reach and are enforced by all; an offline node catches up; every provider enforces
//! fetch rules; a removed key stops publishing everywhere; schema evolution is checked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{testnet, DEADLINE};

use mesh_protocol::policy_change::PolicyChange;
use mesh_testnet::{sample, wait_until, Testnet};

/// A change installing the sample rules (and optionally more TOML).
fn with_rules(extra: &str) -> PolicyChange {
    let mut c = PolicyChange::from_toml(extra).unwrap();
    c.rules = Some(sample::RULES.to_string());
    c
}

fn publish(net: &Testnet, node: usize, toml: &str) -> anyhow::Result<mesh_node::api::Published> {
    let dir = net
        .root()
        .join(format!("src-{}", blake3::hash(toml.as_bytes()).to_hex()));
    sample::write_orders(&dir, 200, 1)?;
    net.publish(node, &dir, toml)
}

fn flags(net: &Testnet, node: usize, product: &str) -> Vec<String> {
    net.products(node)
        .unwrap()
        .into_iter()
        .filter(|e| e.announcement.product.to_string() == product)
        .flat_map(|e| e.flags.into_iter().map(|f| f.rule))
        .collect()
}

#[test]
fn policy_submitted_at_one_node_reaches_and_is_enforced_by_all_five() {
    let mut net = testnet(5);
    net.start_all().unwrap();
    // Published under genesis (no rules): a pii field in an `internal` product.
    publish(&net, 0, &sample::manifest_toml("sales/orders", "1.0.0")).unwrap();
    for i in 0..5 {
        net.wait_product(i, "sales/orders", "1.0.0", DEADLINE)
            .unwrap();
    }

    let v2 = net.draft_policy(2, &with_rules(""), &[0, 1]).unwrap();
    let submitted = net.submit_policy(2, &v2).unwrap();
    assert_eq!(submitted.accepted, vec![2]);
    for i in 0..5 {
        net.wait_policy(i, 2, DEADLINE).unwrap();
    }
    // Every node decides the same: a dry run of a scratch name is denied by the rule.
    for i in 0..5 {
        let domain = &net.nodes[i].domain;
        let r = net
            .check(
                i,
                &sample::restricted_manifest_toml(&format!("{domain}/tmp-x"), "1.0.0", &[]),
            )
            .unwrap();
        assert!(!r.allowed, "node {i}");
        assert!(
            r.problems.iter().any(|p| p.contains("no-scratch-names")),
            "node {i}: {:?}",
            r.problems
        );
    }
    // The existing product now violates a rule: flagged on every node, not dropped.
    for i in 0..5 {
        wait_until(&format!("node {i} to flag sales/orders"), DEADLINE, || {
            Ok(flags(&net, i, "sales/orders").contains(&"pii-is-protected".to_string()))
        })
        .unwrap();
    }
    // And publishing a violation is refused, naming the rule and its reason.
    let err = publish(&net, 3, &sample::manifest_toml("sales/orders", "1.1.0"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pii-is-protected") && err.contains("retention SLA"),
        "{err}"
    );
    publish(
        &net,
        3,
        &sample::restricted_manifest_toml("sales/orders", "1.1.0", &["finance"]),
    )
    .unwrap();
    net.wait_product(1, "sales/orders", "1.1.0", DEADLINE)
        .unwrap();
    assert!(
        flags(&net, 1, "sales/orders").len() == 1,
        "only 1.0.0 is flagged"
    );
}

#[test]
fn a_node_offline_during_two_updates_catches_up_on_restart() {
    let mut net = testnet(4);
    net.start_all().unwrap();
    net.nodes[3].terminate().unwrap();

    let v2 = net
        .draft_policy(
            0,
            &PolicyChange::from_toml("[domains.sales]\ncontact = \"v2@example.com\"").unwrap(),
            &[0, 1],
        )
        .unwrap();
    net.submit_policy(0, &v2).unwrap();
    for i in 0..3 {
        net.wait_policy(i, 2, DEADLINE).unwrap();
    }
    let v3 = net.draft_policy(1, &with_rules(""), &[1, 2]).unwrap();
    net.submit_policy(1, &v3).unwrap();
    for i in 0..3 {
        net.wait_policy(i, 3, DEADLINE).unwrap();
    }

    net.start(3).unwrap();
    net.wait_policy(3, 3, DEADLINE).unwrap();
    let history = net.nodes[3].client().unwrap().policy_history().unwrap();
    let versions: Vec<u64> = history.iter().map(|v| v.policy.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(
        history[2].hash,
        net.current_policy(0).unwrap().hash().to_string()
    );

    // An under-signed v4 is refused with what is missing, and spreads nowhere.
    let v4 = net.draft_policy(0, &PolicyChange::default(), &[0]).unwrap();
    let err = net.submit_policy(0, &v4).unwrap_err().to_string();
    assert!(err.contains("1 of 2 required signatures"), "{err}");
    assert_eq!(net.policy_version(0).unwrap(), 3);
}

#[test]
fn a_fetch_denied_by_the_policy_is_denied_by_every_provider() {
    let mut net = testnet(5); // sales, finance, logistics, sales, finance
    net.start_all().unwrap();
    net.submit_policy(0, &net.draft_policy(0, &with_rules(""), &[0, 1]).unwrap())
        .unwrap();
    for i in 0..5 {
        net.wait_policy(i, 2, DEADLINE).unwrap();
    }
    publish(
        &net,
        0,
        &sample::restricted_manifest_toml("sales/customers", "1.0.0", &["finance"]),
    )
    .unwrap();
    for i in 0..5 {
        net.wait_product(i, "sales/customers", "1.0.0", DEADLINE)
            .unwrap();
    }
    // The owner's other node and a listed consumer may fetch; both then also serve it.
    net.fetch(3, "sales/customers", &net.root().join("o3"))
        .unwrap();
    net.fetch(1, "sales/customers", &net.root().join("o1"))
        .unwrap();
    // Logistics is not listed: every node that could serve it (the three holders and
    // the other finance node, which knows the manifest) denies it, naming the rule.
    let err = net
        .fetch(2, "sales/customers", &net.root().join("o2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("restricted-to-consumers"), "{err}");
    assert!(err.contains("4 of 4 provider(s) denied"), "{err}");
    assert!(!net.root().join("o2/orders.csv").exists());
}

#[test]
fn schema_evolution_and_a_removed_key_are_enforced() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    let v2 = net
        .draft_policy(
            0,
            &PolicyChange::from_toml("[settings]\nschema_compatibility = \"backward\"").unwrap(),
            &[0, 2],
        )
        .unwrap();
    net.submit_policy(0, &v2).unwrap();
    net.wait_policy(0, 2, DEADLINE).unwrap();

    let v1 = sample::manifest_toml("sales/orders", "1.0.0");
    publish(&net, 0, &v1).unwrap();
    let drop_amount = |version: &str| {
        sample::manifest_toml("sales/orders", version)
            .replace("[[schema]]\nname = \"amount\"\ntype = \"number\"\nrequired = true\ndescription = \"Order total in EUR\"\n", "")
    };
    let err = publish(&net, 0, &drop_amount("1.1.0"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field `amount` was removed") && err.contains("2.0.0"),
        "{err}"
    );
    publish(&net, 0, &drop_amount("2.0.0")).unwrap();
    for i in 1..3 {
        net.wait_product(i, "sales/orders", "2.0.0", DEADLINE)
            .unwrap();
    }

    // v3 rotates the sales publisher key: the old one is removed.
    let old = net.nodes[0].publisher_key.clone();
    let fresh = mesh_protocol::KeyPair::generate().public();
    let change = format!("[domains.sales]\nadd_keys = [\"{fresh}\"]\nremove_keys = [\"{old}\"]\n");
    net.submit_policy(
        1,
        &net.draft_policy(1, &PolicyChange::from_toml(&change).unwrap(), &[1, 2])
            .unwrap(),
    )
    .unwrap();
    for i in 0..3 {
        net.wait_policy(i, 3, DEADLINE).unwrap();
    }
    let err = publish(&net, 0, &drop_amount("2.1.0"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not registered for domain sales"), "{err}");
    // Products signed by the removed key stay listed, flagged, on every node.
    for i in 0..3 {
        wait_until(
            &format!("node {i} to flag the removed key"),
            DEADLINE,
            || {
                Ok(flags(&net, i, "sales/orders")
                    .iter()
                    .filter(|r| *r == "registry")
                    .count()
                    == 2)
            },
        )
        .unwrap();
    }
}
