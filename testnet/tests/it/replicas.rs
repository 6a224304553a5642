//! Replicas as providers, on real node processes: a node that fetched a version is
//! listed as its provider everywhere (with when it was last seen), counts towards the
//! SLA's availability, serves a fetch with the publisher down, and drops out when it
//! no longer holds the version; usage reports are pulled on connect, so a node that
//! was down when a report was gossiped agrees with the others once it is back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{testnet, DEADLINE};
use mesh_node::api::{GcRequest, ProductUsage, ShowResponse, SlaState};
use mesh_protocol::ProductRef;
use mesh_testnet::{sample, wait_until, Testnet};

fn show(net: &Testnet, node: usize, target: &str) -> ShowResponse {
    let r: ProductRef = target.parse().unwrap();
    net.nodes[node].client().unwrap().show(&r, None).unwrap()
}

fn usage(net: &Testnet, node: usize, target: &str) -> anyhow::Result<ProductUsage> {
    let r: ProductRef = target.parse()?;
    Ok(net.nodes[node].client()?.usage(&r)?)
}

fn peer(net: &Testnet, node: usize) -> String {
    net.nodes[node].peer_id.clone()
}

#[test]
fn replicas_are_providers_everywhere_and_usage_converges() {
    let mut net = testnet(4);
    net.start_all().unwrap();
    // 99.95% availability needs two reachable providers.
    let toml = |v: &str| {
        sample::manifest_toml("sales/orders", v)
            .replace("availability = 99.5", "availability = 99.95")
    };
    for (v, seed) in [("1.0.0", 1), ("1.1.0", 2)] {
        let dir = net.root().join(format!("orders-{v}"));
        sample::write_orders(&dir, 400, seed).unwrap();
        net.publish(0, &dir, &toml(v)).unwrap();
    }
    for i in 1..4 {
        net.wait_product(i, "sales/orders", "1.1.0", DEADLINE)
            .unwrap();
    }
    // Only the publisher holds it: at risk everywhere, one provider listed.
    let before = show(&net, 3, "sales/orders@1.1.0");
    let health = before.entry.health.clone().expect("newest version judged");
    assert_eq!(health.sla, SlaState::AtRisk, "{health:?}");
    assert_eq!(
        before.entry.providers.len(),
        1,
        "{:?}",
        before.entry.providers
    );
    assert!(before.entry.providers[0].announced);

    // Node 1 fetches both versions: within seconds every node lists it as a
    // replica of each, connected and recently seen, and the SLA is met.
    for v in ["1.0.0", "1.1.0"] {
        let out = net.root().join(format!("n1-{v}"));
        net.fetch(1, &format!("sales/orders@{v}"), &out).unwrap();
    }
    let replica = peer(&net, 1);
    for i in [2, 3] {
        wait_until("node 1 listed as a replica", DEADLINE, || {
            let s = show(&net, i, "sales/orders@1.1.0");
            let listed = s
                .entry
                .providers
                .iter()
                .any(|p| p.peer_id == replica && p.replica && p.connected && !p.stale);
            let ok = s.entry.health.is_some_and(|h| h.sla == SlaState::Ok);
            Ok(listed && ok && s.entry.providers.len() == 2)
        })
        .unwrap();
    }
    let s = show(&net, 3, "sales/orders@1.0.0");
    let p = s
        .entry
        .providers
        .iter()
        .find(|p| p.peer_id == replica)
        .unwrap();
    let seen = p.last_seen_ms.expect("a replica has a record");
    assert!(
        mesh_node::unix_now_ms().saturating_sub(seen) < 120_000,
        "{p:?}"
    );

    // The publisher goes away (and misses what follows). Node 2 fetches from the
    // replica, which is the provider that served every byte.
    net.nodes[0].terminate().unwrap();
    let out = net.root().join("n2");
    let fetched = net.fetch(2, "sales/orders@1.1.0", &out).unwrap();
    assert_eq!(
        fetched.served.keys().cloned().collect::<Vec<_>>(),
        vec![replica.clone()],
        "{fetched:?}"
    );
    assert_eq!(
        fetched.served.values().sum::<u64>(),
        fetched.transferred_bytes
    );
    assert!(fetched.transferred_bytes > 0);

    // Node 1 reports that fetch; node 3 sees it. Node 0 was down when the report
    // was gossiped: back up, it pulls the report on connect and agrees.
    wait_until("node 3 to see node 1's report", DEADLINE, || {
        Ok(usage(&net, 3, "sales/orders")?.by_provider.get(&replica) == Some(&1))
    })
    .unwrap();
    net.start(0).unwrap();
    wait_until("every node to agree on usage", DEADLINE, || {
        let all: Vec<ProductUsage> = (0..4)
            .map(|i| usage(&net, i, "sales/orders"))
            .collect::<anyhow::Result<_>>()?;
        Ok(all.iter().all(|u| {
            u.total == all[0].total && u.by_provider == all[0].by_provider && u.total >= 3
        }))
    })
    .unwrap();
    // Per version: node 1's two fetches from node 0, node 2's one from node 1.
    let u = usage(&net, 0, "sales/orders@1.1.0").unwrap();
    assert_eq!(u.version.as_deref(), Some("1.1.0"));
    assert_eq!(u.total, 2, "{u:?}");
    let all = usage(&net, 0, "sales/orders").unwrap();
    assert_eq!(all.by_version.get("1.0.0"), Some(&1), "{all:?}");
    assert_eq!(all.by_version.get("1.1.0"), Some(&2), "{all:?}");
    let err = usage(&net, 0, "sales/orders@9.9.9")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in the catalog"), "{err}");
    let err = usage(&net, 0, "sales/nothing").unwrap_err().to_string();
    assert!(err.contains("not in the catalog"), "{err}");

    // Node 1 keeps only the newest version: it drops out as a provider of 1.0.0
    // everywhere, and stays one of 1.1.0.
    let gc = net.nodes[1]
        .client()
        .unwrap()
        .gc(&GcRequest {
            keep: Some(1),
            dry_run: false,
        })
        .unwrap();
    assert_eq!(gc.dropped_versions, vec!["sales/orders@1.0.0"]);
    wait_until(
        "node 1 to drop out as a provider of 1.0.0",
        DEADLINE,
        || {
            let s = show(&net, 3, "sales/orders@1.0.0");
            Ok(!s.entry.providers.iter().any(|p| p.peer_id == replica))
        },
    )
    .unwrap();
    let s = show(&net, 3, "sales/orders@1.1.0");
    assert!(s.entry.providers.iter().any(|p| p.peer_id == replica));
}
