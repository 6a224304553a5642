//! Access requests and grants on real node processes: a domain that is not a listed
//! consumer of a pii product asks, the owner grants, every node learns the grant and
//! the fetch goes through; the owner revokes, every node learns it within seconds,
//! and every provider (the consumer's own replica too) denies the domain again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::time::Instant;

use common::{adopt_sample_rules, testnet, DEADLINE};
use mesh_node::api::{AccessDecideBody, AccessFilter, AccessRequestBody};
use mesh_testnet::{sample, wait_until, Testnet};

const PRODUCT: &str = "sales/customers";

/// Node `i`'s state of logistics' access to the product (`None`: unknown there).
fn state_on(net: &Testnet, i: usize) -> anyhow::Result<Option<String>> {
    let list = net.nodes[i].client()?.access(&AccessFilter {
        product: Some(PRODUCT.into()),
        consumer: Some("logistics".into()),
        ..AccessFilter::default()
    })?;
    Ok(list.into_iter().next().map(|v| v.state))
}

/// Node `i` decides `decision` on logistics' access; `text` is a grant's purpose
/// and terms, or a denial's or revocation's reason.
fn decide(
    net: &Testnet,
    i: usize,
    decision: &str,
    text: (&str, &str),
) -> anyhow::Result<mesh_node::api::AccessView> {
    let grant = decision == "grant";
    let body = AccessDecideBody {
        product: PRODUCT.into(),
        consumer: "logistics".into(),
        decision: decision.into(),
        until_ms: None,
        purpose: if grant { text.0.into() } else { String::new() },
        terms: if grant { text.1.into() } else { String::new() },
        reason: if grant { String::new() } else { text.0.into() },
    };
    Ok(net.nodes[i].client()?.access_decide(&body)?)
}

/// Waits until every running node sees `state`; returns how long that took.
fn wait_everywhere(net: &Testnet, state: &str) -> std::time::Duration {
    let start = Instant::now();
    for i in (0..net.nodes.len()).filter(|i| net.nodes[*i].pid().is_some()) {
        wait_until(
            &format!("node {i} to see the access {state}"),
            DEADLINE,
            || Ok(state_on(net, i)?.as_deref() == Some(state)),
        )
        .unwrap();
    }
    start.elapsed()
}

#[test]
fn a_grant_opens_a_product_on_every_provider_and_a_revocation_closes_it() {
    // sales, finance, logistics, sales, finance, logistics
    let mut net = testnet(6);
    net.start_all().unwrap();
    adopt_sample_rules(&net);
    let dir = net.root().join("customers");
    sample::write_orders(&dir, 200, 1).unwrap();
    net.publish(
        0,
        &dir,
        &sample::restricted_manifest_toml(PRODUCT, "1.0.0", &["finance"]),
    )
    .unwrap();
    for i in 0..6 {
        net.wait_product(i, PRODUCT, "1.0.0", DEADLINE).unwrap();
    }
    // The owner's other node and a listed consumer hold it too.
    net.fetch(3, PRODUCT, &net.root().join("o3")).unwrap();
    net.fetch(1, PRODUCT, &net.root().join("o1")).unwrap();

    // Logistics is not a listed consumer: refused, naming the rule.
    let err = net
        .fetch(2, PRODUCT, &net.root().join("o2-refused"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("restricted-to-consumers"), "{err}");

    // It asks; the owner's node lists the request as pending.
    let logistics = net.nodes[2].client().unwrap();
    let asked = logistics
        .access_request(&AccessRequestBody {
            product: PRODUCT.into(),
            reason: "route planning needs delivery addresses".into(),
        })
        .unwrap();
    assert_eq!(asked.state, "pending");
    let requested = wait_everywhere(&net, "pending");
    let on_owner = net.nodes[0]
        .client()
        .unwrap()
        .access(&AccessFilter::default())
        .unwrap();
    assert_eq!(
        on_owner[0].reason.as_deref(),
        Some("route planning needs delivery addresses")
    );

    // Only the owner decides: finance cannot grant sales' product.
    let by_finance = decide(&net, 1, "grant", ("", "")).unwrap_err().to_string();
    assert!(by_finance.contains("only its owner"), "{by_finance}");

    // The owner grants, with a purpose and terms; every node learns it.
    let granted = decide(
        &net,
        0,
        "grant",
        (
            "route planning",
            "no copies outside logistics; delete after 90 days",
        ),
    )
    .unwrap();
    assert_eq!(granted.state, "granted");
    let grant_spread = wait_everywhere(&net, "granted");
    let seen_by_consumer = logistics
        .access(&AccessFilter::default())
        .unwrap()
        .remove(0);
    let d = seen_by_consumer.decision.unwrap();
    assert_eq!(d.purpose, "route planning");
    assert!(d.terms.contains("delete after 90 days"));

    // Now logistics fetches, and verifies every byte.
    let out = net.root().join("o2");
    net.fetch(2, PRODUCT, &out).unwrap();
    assert_eq!(
        std::fs::read(out.join("orders.csv")).unwrap(),
        std::fs::read(dir.join("orders.csv")).unwrap()
    );

    // The providers count that fetch under the grant, by its id, and every node
    // adds the reports up the same way.
    let grant_id = d.id.clone();
    wait_until("the fetch to be counted under the grant", DEADLINE, || {
        let u = net.nodes[0].client()?.usage(&PRODUCT.parse()?)?;
        Ok(u.by_grant.get(&grant_id).copied().unwrap_or(0) >= 1)
    })
    .unwrap();

    // The owner revokes; every node learns it within seconds, and every node that
    // could serve it (the owner's two nodes, finance's replica and the other
    // finance node, which knows the manifest) denies logistics' other node, while
    // logistics' own replica stops serving it.
    // Logistics' other node is down meanwhile: it learns the revocation from a
    // peer's records when it comes back (gossip is not sent again).
    net.nodes[5].terminate().unwrap();
    decide(&net, 0, "revoke", ("the route planning project ended", "")).unwrap();
    let revoke_spread = wait_everywhere(&net, "revoked");
    net.start(5).unwrap();
    wait_everywhere(&net, "revoked");
    let err = net
        .fetch(5, PRODUCT, &net.root().join("o5"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("restricted-to-consumers"), "{err}");
    // Logistics' replica does not serve a copy its own domain may no longer read
    // (it answers as if it did not hold it); the other four deny.
    assert!(err.contains("4 of 5 provider(s) denied"), "{err}");
    assert!(!net.root().join("o5/orders.csv").exists());
    // Nor does logistics read its own copy: a fetch from its store is refused too,
    // and writes nothing.
    let err = net
        .fetch(2, PRODUCT, &net.root().join("o2-again"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("restricted-to-consumers") && err.contains("local copy is not read"),
        "{err}"
    );
    assert!(!net.root().join("o2-again/orders.csv").exists());
    // The product page of any node shows the agreement and its end.
    let page_url = net.nodes[4]
        .client()
        .unwrap()
        .catalog_url(Some(&PRODUCT.parse().unwrap()));
    let page = ureq::get(&page_url).call().unwrap().into_string().unwrap();
    // No anonymous one-shot command for a product the rules deny such a reader;
    // what to do instead.
    assert!(!page.contains("--genesis genesis.json"), "{page}");
    assert!(
        page.contains("Not readable without a node of a domain the rules admit")
            && page.contains("mesh access request sales/customers"),
        "{page}"
    );
    let access = &page[page.find("<h2>Access</h2>").expect("an Access section")..];
    assert!(
        access.contains("logistics") && access.contains("revoked"),
        "{access}"
    );
    assert!(
        access.contains("the route planning project ended"),
        "{access}"
    );
    println!(
        "access on 6 nodes: request known everywhere after {} ms, grant after {} ms, revocation on the 5 running nodes after {} ms",
        requested.as_millis(),
        grant_spread.as_millis(),
        revoke_spread.as_millis()
    );
}
