//! `mesh contract init / lint / test / changelog`, run as a domain team's CI
//! would: on files in a temp directory, with no node, judged by exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use std::path::Path;

use common::{mesh, stderr, stdout};

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const CONTRACT: &str = include_str!("../../../contract/tests/odcs/quality-rules.odcs.yaml");

#[test]
fn init_drafts_a_contract_that_lints_and_tests_clean_on_its_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let (home, data) = (dir.path().join("h"), dir.path().join("flights"));
    // R's export: NA for missing values, quoted strings.
    write(&data, "flights.csv", "year,dep_delay,carrier,time_hour\n2013,2,\"UA\",2013-01-01 05:00:00\n2013,NA,\"AA\",2013-01-01 06:00:00\n");
    write(
        &data,
        "airlines/part-1.jsonl",
        "{\"carrier\":\"UA\",\"name\":\"United\"}\n",
    );
    let out = dir.path().join("contract.yaml");
    let o = mesh(
        &home,
        &[
            "contract",
            "init",
            data.to_str().unwrap(),
            "--domain",
            "aviation",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let yaml = std::fs::read_to_string(&out).unwrap();
    for part in [
        "name: flights",
        "name: airlines",
        "name: dep_delay\n    logicalType: integer",
        "logicalType: timestamp",
        "meshNullValues",
        "dataProduct: flights",
    ] {
        assert!(yaml.contains(part), "{part:?} not in:\n{yaml}");
    }
    // It never overwrites without --force.
    let again = mesh(
        &home,
        &[
            "contract",
            "init",
            data.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));

    let lint = mesh(&home, &["contract", "lint", out.to_str().unwrap()]);
    assert!(
        lint.status.success(),
        "{}\n{}",
        stdout(&lint),
        stderr(&lint)
    );
    let test = mesh(
        &home,
        &[
            "contract",
            "test",
            out.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    );
    assert!(
        test.status.success(),
        "{}\n{}",
        stdout(&test),
        stderr(&test)
    );
    assert!(
        stdout(&test).contains("object flights: 1 file(s), 2 row(s)"),
        "{}",
        stdout(&test)
    );
}

#[test]
fn test_exits_1_on_broken_data_and_names_each_failed_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (home, data) = (dir.path().join("h"), dir.path().join("data"));
    let contract = dir.path().join("c.yaml");
    std::fs::write(&contract, CONTRACT).unwrap();
    write(&data, "shipments.csv", "shipment_id,carrier_code,number,weight_kg,tracking\n1,UA,100,12.5,UA1234\n2,AA,200,NA,AA0001\n3,DL,300,7,DL0002\n");
    write(&data, "carrier_list.jsonl", "{\"code\":\"UA\",\"founded\":\"06/04/1926\",\"fleet\":9}\n{\"code\":\"AA\",\"founded\":\"15/04/1926\"}\n{\"code\":\"DL\",\"founded\":\"30/05/1925\"}\n");
    let (c, d) = (contract.to_str().unwrap(), data.to_str().unwrap());
    // Without a file for the `events` object the data does not keep the contract.
    let missing = mesh(&home, &["contract", "test", c, d]);
    assert_eq!(missing.status.code(), Some(1), "{}", stdout(&missing));
    assert!(
        stdout(&missing).contains("object `events` has no data"),
        "{}",
        stdout(&missing)
    );
    // Events as a JSON array (the way datacontract-cli reads `.json`).
    write(&data, "events.json", "[{\"kind\": \"shipped\"}]");
    let ok = mesh(&home, &["contract", "test", c, d]);
    assert!(ok.status.success(), "{}\n{}", stdout(&ok), stderr(&ok));
    assert!(
        stdout(&ok).contains(
            "pass shipments_rows (shipments): rowCount between 3 and 10, measured 3 rows"
        ),
        "{}",
        stdout(&ok)
    );
    assert!(
        stdout(&ok).contains("pass shipments_weight_sql (shipments): sql = 0, measured 0"),
        "{}",
        stdout(&ok)
    );

    write(&data, "shipments.csv", "shipment_id,carrier_code,number,weight_kg,tracking\n1,UA,100,NA,UA1234\n1,ZZ,200,NA,AA0001\n3,DL,300,NA,DL0002\n");
    let bad = mesh(&home, &["contract", "test", c, d]);
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    let out = stdout(&bad);
    for line in [
        "FAIL carrier_known (shipments.carrier): invalidValues < 1, measured 1 row (33.33%)",
        "FAIL weight_missing (shipments.weight_kg): missingValues < 50 percent, measured 3 rows (100%)",
        "shipments.csv, field `shipment_id`: 1 violation(s), first at row(s) 2",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert!(
        stderr(&bad).contains("the data breaks its contract"),
        "{}",
        stderr(&bad)
    );
    let json = mesh(&home, &["--json", "contract", "test", c, d]);
    assert_eq!(json.status.code(), Some(1));
    let first_line = stdout(&json);
    let v: serde_json::Value =
        serde_json::from_str(first_line.split("\n{\"error\"").next().unwrap()).unwrap();
    assert_eq!(v["kept"], false);
    assert!(v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rule"] == "carrier_known" && r["state"] == "failed"));
}

#[test]
fn lint_exits_1_with_the_path_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        CONTRACT.replace(
            "metric: rowCount\n        mustBeBetween: [3, 10]",
            "metric: rowCount",
        ),
    )
    .unwrap();
    let o = mesh(
        &dir.path().join("h"),
        &["contract", "lint", f.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("schema[0].quality[0]: the rule has no operator"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_endless_contract_file_is_refused_at_the_cap_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let o = mesh(&dir.path().join("h"), &["contract", "lint", "/dev/zero"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/dev/zero is larger than 1 MiB"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn changelog_exits_1_on_a_breaking_change_the_mode_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let old = dir.path().join("old.yaml");
    let new = dir.path().join("new.yaml");
    std::fs::write(&old, CONTRACT).unwrap();
    std::fs::write(
        &new,
        CONTRACT
            .replace("physicalName: carrier_code", "physicalName: carrier")
            .replace("version: 1.0.0", "version: 1.1.0"),
    )
    .unwrap();
    let (o, n) = (old.to_str().unwrap(), new.to_str().unwrap());
    let r = mesh(&home, &["contract", "changelog", o, n]);
    assert_eq!(r.status.code(), Some(1), "{}", stdout(&r));
    assert!(
        stdout(&r).contains(
            "BREAKING  schema[shipments].properties[carrier].physicalName: carrier_code -> carrier"
        ),
        "{}",
        stdout(&r)
    );
    assert!(
        stderr(&r).contains("without a new major version"),
        "{}",
        stderr(&r)
    );
    assert!(
        mesh(&home, &["contract", "changelog", o, n, "--mode", "none"])
            .status
            .success()
    );
    std::fs::write(
        &new,
        CONTRACT
            .replace("physicalName: carrier_code", "physicalName: carrier")
            .replace("version: 1.0.0", "version: 2.0.0"),
    )
    .unwrap();
    assert!(mesh(&home, &["contract", "changelog", o, n])
        .status
        .success());
    let frozen = mesh(&home, &["contract", "changelog", o, n, "--mode", "frozen"]);
    assert_eq!(frozen.status.code(), Some(1));
    let same = mesh(&home, &["contract", "changelog", o, o]);
    assert!(
        same.status.success() && stdout(&same).contains("no changes"),
        "{}",
        stdout(&same)
    );
}

#[test]
fn convert_writes_a_v3_1_0_contract_and_refuses_what_stays_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let old = dir.path().join("old.yaml");
    std::fs::write(
        &old,
        "apiVersion: v3.0.1\nkind: DataContract\nid: p\nversion: 1.0.0\nstatus: active\nteam:\n  - username: erin\nschema:\n  - name: p\n    properties:\n      - name: a\n        logicalType: integer\n        isNullable: false\n",
    )
    .unwrap();
    let out = dir.path().join("new.yaml");
    let o = mesh(
        &home,
        &[
            "contract",
            "convert",
            old.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed: team: the v3.0 list"),
        "{}",
        stderr(&o)
    );
    let lint = mesh(
        &home,
        &["contract", "lint", "--domain", "d", out.to_str().unwrap()],
    );
    assert!(lint.status.success(), "{}", stdout(&lint));
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("apiVersion: v3.1.0"), "{written}");
    assert!(written.contains("property: isNullable"), "{written}");

    // Still invalid after converting (a required field is missing): nothing written.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v3.0.2\nkind: DataContract\nid: p\nversion: 1.0.0\n",
    )
    .unwrap();
    let out2 = dir.path().join("bad-new.yaml");
    let o = mesh(
        &home,
        &[
            "contract",
            "convert",
            bad.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("status: required by ODCS v3.1.0"),
        "{}",
        stderr(&o)
    );
    assert!(!out2.exists());
}
