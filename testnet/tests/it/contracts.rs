//! An ODCS contract's quality rules on real node processes: a publish whose data
//! fails a rule is refused with the rule named; data that keeps them publishes with
//! each rule's measurement; under `warn` the failed rules travel with the version,
//! and every node flags it and `mesh show` lists them. CSV, JSON lines and Parquet.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::path::Path;

use common::{set_quality, testnet, DEADLINE};
use mesh_protocol::manifest::RuleState;
use mesh_protocol::policy::QualityEnforcement;
use mesh_testnet::{wait_until, Testnet};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn publish(net: &Testnet, dir: &Path, contract: &Path) -> std::process::Output {
    net.nodes[0]
        .mesh(
            net.mesh_bin(),
            &[
                "publish",
                dir.to_str().unwrap(),
                "--contract",
                contract.to_str().unwrap(),
            ],
        )
        .unwrap()
}

#[test]
fn quality_rules_refuse_or_travel_with_the_version() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    // The fixture's domain is the testnet's publishing domain here.
    let fixture = include_str!("../../../contract/tests/odcs/quality-rules.odcs.yaml");
    let contract = net.root().join("shipments.odcs.yaml");
    std::fs::write(
        &contract,
        fixture.replace("domain: logistics", "domain: sales"),
    )
    .unwrap();
    let data = net.root().join("shipments");
    write(&data, "shipments.csv", "shipment_id,carrier_code,number,weight_kg,tracking\n1,UA,100,12.5,UA1234\n2,AA,200,NA,AA0001\n3,ZZ,300,7,DL0002\n");
    write(&data, "carrier_list.jsonl", "{\"code\":\"UA\",\"founded\":\"06/04/1926\",\"fleet\":9}\n{\"code\":\"AA\",\"founded\":\"15/04/1926\"}\n{\"code\":\"DL\",\"founded\":\"30/05/1925\"}\n");
    write(&data, "events.jsonl", "{\"kind\":\"shipped\"}\n");

    // `policy check --data` catches it before publish, as publish would.
    let check = |dir: &Path| {
        net.nodes[0]
            .mesh(
                net.mesh_bin(),
                &[
                    "policy",
                    "check",
                    "--contract",
                    contract.to_str().unwrap(),
                    "--data",
                    dir.to_str().unwrap(),
                ],
            )
            .unwrap()
    };
    let checked = check(&data);
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(!checked.status.success(), "{out}");
    assert!(
        out.contains("allowed: policy v1 permits publishing"),
        "{out}"
    );
    assert!(
        out.contains("refused: quality mode refuse") && out.contains("FAIL carrier_known"),
        "{out}"
    );
    let renamed = net.root().join("renamed");
    write(
        &renamed,
        "shipments.csv",
        "shipment_id,carrier,number,weight_kg,tracking\n1,UA,100,12.5,UA1234\n",
    );
    let out = check(&renamed);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shipments.csv, field `carrier`: in the header: no column `carrier_code` (its physicalName) in the header"),
        "{text}"
    );

    // A contract that `mesh contract lint` finds errors in is not published.
    let linty = net.root().join("linty.odcs.yaml");
    std::fs::write(
        &linty,
        std::fs::read_to_string(&contract).unwrap().replace(
            "metric: rowCount\n        mustBeBetween: [3, 10]",
            "metric: rowCount",
        ),
    )
    .unwrap();
    let refused = publish(&net, &data, &linty);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("contract: schema[0].quality[0]: the rule has no operator"),
        "{stderr}"
    );

    // A directory holding only a README has none of the contract's data.
    let readme = net.root().join("readme-only");
    write(&readme, "README.md", "# shipments\n");
    let refused = publish(&net, &readme, &contract);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("object `shipments` has no data"),
        "{stderr}"
    );

    let refused = publish(&net, &data, &contract);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "FAIL carrier_known (shipments.carrier): invalidValues < 1, measured 1 row (33.33%)"
        ),
        "{stderr}"
    );
    assert_eq!(
        net.nodes[0].chunk_count(),
        0,
        "a refused publish stores nothing"
    );

    // Fixed data publishes, and the output names each rule.
    write(&data, "shipments.csv", "shipment_id,carrier_code,number,weight_kg,tracking\n1,UA,100,12.5,UA1234\n2,AA,200,NA,AA0001\n3,DL,300,7,DL0002\n");
    assert!(check(&data).status.success());
    let ok = publish(&net, &data, &contract);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for line in [
        "pass shipments_rows (shipments): rowCount between 3 and 10, measured 3 rows",
        "pass weight_missing (shipments.weight_kg): missingValues < 50 percent, measured 1 row (33.33%)",
        "pass events_rows (events)",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }

    // Node 1 follows the product but passes over flagged versions.
    let followed = net.root().join("shipments-copy");
    let sub = net.nodes[1]
        .mesh(
            net.mesh_bin(),
            &[
                "subscribe",
                "sales/shipments",
                "-o",
                followed.to_str().unwrap(),
                "--skip-flagged",
                "--wait",
            ],
        )
        .unwrap();
    assert!(
        sub.status.success(),
        "{}",
        String::from_utf8_lossy(&sub.stderr)
    );
    // Node 0 follows it without skipping: the flagged version becomes its current.
    let plain = net.root().join("shipments-plain");
    let sub = net.nodes[0]
        .mesh(
            net.mesh_bin(),
            &[
                "subscribe",
                "sales/shipments",
                "-o",
                plain.to_str().unwrap(),
                "--wait",
            ],
        )
        .unwrap();
    assert!(
        sub.status.success(),
        "{}",
        String::from_utf8_lossy(&sub.stderr)
    );

    // Under warn, data that fails a rule publishes; the outcome travels with it.
    set_quality(&net, QualityEnforcement::Warn);
    let v2 = std::fs::read_to_string(&contract)
        .unwrap()
        .replace("version: 1.0.0", "version: 1.0.1");
    std::fs::write(&contract, v2).unwrap();
    write(&data, "shipments.csv", "shipment_id,carrier_code,number,weight_kg,tracking\n1,UA,100,NA,UA1234\n2,AA,200,NA,AA0001\n3,DL,300,NA,DL0002\n");
    let warned = publish(&net, &data, &contract);
    assert!(
        warned.status.success(),
        "{}",
        String::from_utf8_lossy(&warned.stderr)
    );
    net.wait_product(1, "sales/shipments", "1.0.1", DEADLINE)
        .unwrap();
    let show = net.nodes[1]
        .client()
        .unwrap()
        .show(&"sales/shipments@1.0.1".parse().unwrap(), None)
        .unwrap();
    let q = show.manifest.unwrap().quality.unwrap();
    let failed: Vec<&str> = q
        .rules
        .iter()
        .filter(|r| r.state == RuleState::Failed)
        .map(|r| r.rule.as_str())
        .collect();
    assert_eq!(failed, ["weight_missing", "weight_nulls_not_most"]);
    assert_eq!(
        q.fields
            .iter()
            .find(|f| f.name == "weight_kg")
            .unwrap()
            .nulls,
        3
    );
    wait_until("node 1 to flag the warned version", DEADLINE, || {
        let list = net.nodes[1].client()?.products(&Default::default())?;
        Ok(list.iter().any(|e| {
            e.announcement.version.to_string() == "1.0.1"
                && e.flags.iter().any(|f| f.rule == "quality")
        }))
    })
    .unwrap();
    // Once node 0's plain subscription took 1.0.1, the one that skips flagged
    // versions is still on 1.0.0.
    wait_until("node 0's subscription to take 1.0.1", DEADLINE, || {
        Ok(net.nodes[0]
            .client()?
            .subscriptions()?
            .iter()
            .any(|s| s.product == "sales/shipments" && s.current.as_deref() == Some("1.0.1")))
    })
    .unwrap();
    let view = net.nodes[1]
        .client()
        .unwrap()
        .subscriptions()
        .unwrap()
        .into_iter()
        .find(|s| s.product == "sales/shipments")
        .unwrap();
    assert!(view.skip_flagged);
    assert_eq!(view.current.as_deref(), Some("1.0.0"), "{view:?}");
    assert_eq!(
        std::fs::read_link(followed.join("current")).unwrap(),
        std::path::Path::new("1.0.0")
    );
    let out = net.nodes[1]
        .mesh(net.mesh_bin(), &["show", "sales/shipments"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL weight_missing (shipments.weight_kg): missingValues < 50 percent, measured 3 rows (100%)"),
        "{text}"
    );
    assert!(text.contains("object carriers"), "{text}");
}
