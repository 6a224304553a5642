//! A provider whose link all but stalls does not hold up a fetch: the batches it
//! was given are asked again of a faster provider once they are overdue (a
//! hedged request), instead of waiting for the stalled one's request timeout
//! (30 s). Links run through the fault proxy; the consumer reaches two providers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::sync::mpsc;
use std::time::Duration;

use common::{testnet, DEADLINE};
use mesh_testnet::proxy::{Fault, FaultProxy};
use mesh_testnet::{file_hash, sample};

#[test]
fn a_stalled_provider_does_not_hold_up_the_fetch() {
    let mut net = testnet(3);
    let proxy = FaultProxy::new().unwrap();
    // 0 publishes, 1 replicates, 2 fetches from both.
    net.start_all_linked(&proxy, &[(1, 0), (2, 0), (2, 1)])
        .unwrap();
    net.wait_peers(2, 2, DEADLINE).unwrap();
    let dir = net.root().join("orders");
    let csv = sample::write_orders(&dir, 200_000, 3).unwrap();
    net.publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    net.fetch(1, "sales/orders@1.0.0", &net.root().join("replica"))
        .unwrap();
    net.wait_product(2, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    // Node 1's link to the consumer now carries 2 KB/s: a 1 MiB batch would take
    // over 8 minutes.
    proxy.set(
        2,
        1,
        Fault {
            rate: 2_000,
            ..Fault::default()
        },
    );

    let (tx, rx) = mpsc::channel();
    let out = net.root().join("out");
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(net.fetch(2, "sales/orders@1.0.0", &out));
        });
        // Well under the 30 s request timeout the stalled batches would otherwise
        // wait for.
        let outcome = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the fetch waited for the stalled provider")
            .unwrap();
        assert!(outcome.verified);
        let fast = outcome
            .served
            .get(&net.nodes[0].peer_id)
            .copied()
            .unwrap_or(0);
        assert!(fast > 0, "{outcome:?}");
        assert_eq!(
            file_hash(&out.join("orders.csv")).unwrap(),
            file_hash(&csv).unwrap()
        );
        println!(
            "served: fast {} bytes, stalled {} bytes",
            fast,
            outcome
                .served
                .get(&net.nodes[1].peer_id)
                .copied()
                .unwrap_or(0)
        );
    });
}
