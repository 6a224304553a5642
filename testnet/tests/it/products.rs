//! Data as a product, on real node processes: contracts checked at publish (CSV and
//! JSON lines, refused or warned as the policy says), lineage across three products
//! on three nodes, upstream deprecation flags, lifecycle at fetch, and the SLA watch
//! judged the same way on every node.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use crate::common;

use common::{set_quality, testnet, DEADLINE};
use mesh_node::api::{CatalogEntry, Filter, SlaState};
use mesh_protocol::policy::QualityEnforcement;
use mesh_testnet::{sample, wait_until, Testnet};

/// The sample manifest with another status and upstream.
fn toml(product: &str, version: &str, status: &str, upstream: &str) -> String {
    sample::manifest_toml(product, version)
        .replace("status = \"active\"", &format!("status = \"{status}\""))
        .replace("id = \"crm/customers\"", &format!("id = \"{upstream}\""))
}

fn publish(net: &Testnet, node: usize, name: &str, toml: &str) -> mesh_node::api::Published {
    let dir = net.root().join("data").join(name);
    // A distinct seed per product: identical data would dedup to nothing to fetch.
    let seed = name
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    sample::write_orders(&dir, 50, seed).unwrap();
    net.publish(node, &dir, toml).unwrap()
}

fn entry(net: &Testnet, node: usize, product: &str, at: Option<u64>) -> CatalogEntry {
    let filter = Filter {
        at,
        ..Filter::default()
    };
    let list = net.nodes[node].client().unwrap().products(&filter).unwrap();
    list.into_iter()
        .filter(|e| e.announcement.product.to_string() == product)
        .max_by(|a, b| a.announcement.version.cmp(&b.announcement.version))
        .expect("listed")
}

#[test]
fn contracts_are_checked_at_publish_and_the_policy_decides() {
    let net = {
        let mut n = testnet(2);
        n.start_all().unwrap();
        n
    };
    let dir = net.root().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("orders.csv"),
        "order_id,customer_email,amount\n1,a@x.io,1.5\n2,,2.0\n2,c@x.io,lots\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("more.jsonl"),
        "{\"order_id\": 3, \"customer_email\": \"d@x.io\", \"amount\": \"7\"}\n",
    )
    .unwrap();
    let err = net
        .publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap_err()
        .to_string();
    for expected in [
        "orders.csv row 2, field `customer_email`: is required but empty",
        "orders.csv row 3, field `order_id`: \"2\" repeats an earlier value but must be unique",
        "orders.csv row 3, field `amount`: \"lots\" is not a number",
        "more.jsonl row 1, field `amount`: \"7\" is not a number",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert_eq!(
        net.nodes[0].chunk_count(),
        0,
        "a refused publish stores nothing"
    );

    // The council relaxes the policy: the same data is published, with warnings.
    set_quality(&net, QualityEnforcement::Warn);
    let p = net
        .publish(0, &dir, &sample::manifest_toml("sales/orders", "1.0.0"))
        .unwrap();
    // A line per broken file and field first, then each violation.
    assert_eq!(p.warnings.len(), 8, "{:?}", p.warnings);
    assert!(
        p.warnings[0].starts_with("more.jsonl, field `amount`: 1 violation(s), first at row(s) 1")
    );
    let show = net.nodes[0]
        .client()
        .unwrap()
        .show(&"sales/orders".parse().unwrap(), None)
        .unwrap();
    let q = show.manifest.unwrap().quality.expect("metrics recorded");
    assert_eq!((q.rows, q.files_checked), (4, 2));
    assert_eq!(q.fields[1].name, "customer_email");
    assert_eq!(q.fields[1].nulls, 1);
    assert_eq!(
        q.violations.len(),
        4,
        "the violations travel with the version"
    );
    // Every node flags it, and `mesh show` lists what broke.
    net.wait_product(1, "sales/orders", "1.0.0", DEADLINE)
        .unwrap();
    wait_until("node 1 to flag the warned version", DEADLINE, || {
        Ok(entry(&net, 1, "sales/orders", None)
            .flags
            .iter()
            .any(|f| f.rule == "quality"))
    })
    .unwrap();
    let out = net.nodes[1]
        .mesh(net.mesh_bin(), &["show", "sales/orders"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("broke its contract")
            && text.contains("orders.csv, field `amount`: 1 violation(s), first at row(s) 3"),
        "{text}"
    );

    // Tags match whatever their case; a filter that matches nothing says so.
    let list = |args: &[&str]| {
        let mut all = vec!["products"];
        all.extend_from_slice(args);
        let out = net.nodes[1].mesh(net.mesh_bin(), &all).unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(list(&["--tag", "ORDERS"]).contains("sales/orders"));
    let none = list(&["--tag", "nope"]);
    assert!(
        none.contains("no product matches --tag nope (1 version(s) in the catalog"),
        "{none}"
    );

    // Null markers: `NA` is a null, so the data keeps its contract, and the metrics
    // are the same whether the policy warns or refuses.
    let na = net.root().join("na");
    std::fs::create_dir_all(&na).unwrap();
    std::fs::write(
        na.join("orders.csv"),
        "order_id,customer_email,amount\n1,a@x.io,NA\n2,b@x.io,NA\n3,c@x.io,2.5\n4,d@x.io,\n",
    )
    .unwrap();
    let optional_amount = |version: &str| {
        sample::manifest_toml("sales/flights", version).replace(
            "name = \"amount\"\ntype = \"number\"\nrequired = true",
            "name = \"amount\"\ntype = \"number\"\nrequired = false",
        )
    };
    let with_na =
        |version: &str| format!("null_values = [\"NA\", \"\"]\n{}", optional_amount(version));
    let metrics = |version: &str| {
        let show = net.nodes[0]
            .client()
            .unwrap()
            .show(&format!("sales/flights@{version}").parse().unwrap(), None)
            .unwrap();
        show.manifest.unwrap().quality.unwrap()
    };
    let warned = net.publish(0, &na, &with_na("1.0.0")).unwrap();
    assert!(warned.warnings.is_empty(), "{:?}", warned.warnings);
    set_quality(&net, QualityEnforcement::Refuse);
    net.publish(0, &na, &with_na("1.0.1")).unwrap();
    let (w, r) = (metrics("1.0.0"), metrics("1.0.1"));
    assert_eq!(w, r, "warn-mode and refuse-mode metrics of the same data");
    assert_eq!(r.fields[2].nulls, 3, "two NA and one empty amount");
    // Without the markers the same data breaks its contract and is refused.
    let err = net
        .publish(0, &na, &optional_amount("1.0.2"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("orders.csv, field `amount`: 2 violation(s), first at row(s) 1, 2: \"NA\" is not a number"),
        "{err}"
    );
}

#[test]
fn lineage_deprecation_lifecycle_and_sla_across_three_nodes() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    // web/clicks (unknown) <- sales/raw <- finance/revenue <- logistics/forecast,
    // one per node.
    let raw = publish(
        &net,
        0,
        "raw",
        &toml("sales/raw", "1.0.0", "active", "web/clicks"),
    );
    // finance/revenue pins the exact version it was built from.
    net.wait_product(1, "sales/raw", "1.0.0", DEADLINE).unwrap();
    publish(
        &net,
        1,
        "revenue",
        &toml("finance/revenue", "1.0.0", "active", "sales/raw").replace(
            "id = \"sales/raw\"",
            &format!("id = \"sales/raw\"\nmanifest = \"{}\"", raw.manifest),
        ),
    );
    publish(
        &net,
        2,
        "forecast",
        &toml("logistics/forecast", "1.0.0", "active", "finance/revenue"),
    );
    let client = net.nodes[0].client().unwrap();
    wait_until("node 0 to know the whole lineage", DEADLINE, || {
        let g = client.lineage(&"finance/revenue".parse()?)?;
        Ok(g.edges.len() == 3)
    })
    .unwrap();
    let g = client.lineage(&"finance/revenue".parse().unwrap()).unwrap();
    assert!(g.edges.contains(&("web/clicks".into(), "sales/raw".into())));
    assert!(g
        .edges
        .contains(&("sales/raw".into(), "finance/revenue".into())));
    assert!(g
        .edges
        .contains(&("finance/revenue".into(), "logistics/forecast".into())));
    let out = net.nodes[0]
        .mesh(
            net.mesh_bin(),
            &["lineage", "finance/revenue", "--format", "mermaid"],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("finance/revenue@1.0.0 (active)"), "{text}");

    // The upstream is deprecated: its downstream is flagged everywhere, and a fetch
    // of the deprecated version warns.
    publish(
        &net,
        0,
        "raw2",
        &toml("sales/raw", "2.0.0", "deprecated", "web/clicks"),
    );
    // The pin still names the version it pins, not the newest.
    wait_until("node 0 to know sales/raw 2.0.0", DEADLINE, || {
        let g = client.lineage(&"finance/revenue".parse()?)?;
        Ok(g.nodes
            .iter()
            .any(|n| n.id == "sales/raw" && n.version.as_deref() == Some("2.0.0")))
    })
    .unwrap();
    let out = net.nodes[0]
        .mesh(net.mesh_bin(), &["lineage", "finance/revenue"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("└── sales/raw@2.0.0 (deprecated) [pinned to 1.0.0]"),
        "{text}"
    );
    for node in 0..3 {
        wait_until("the deprecation flag", DEADLINE, || {
            let e = entry(&net, node, "finance/revenue", None);
            Ok(e.health
                .is_some_and(|h| h.lineage == ["upstream sales/raw@2.0.0 is deprecated"]))
        })
        .unwrap();
    }
    let o = net
        .fetch(1, "sales/raw@2.0.0", &net.root().join("o1"))
        .unwrap();
    assert!(o.warnings[0].contains("is deprecated"), "{:?}", o.warnings);

    // The fetch shows in both nodes' metrics.
    let metric = |node: usize, name: &str| -> f64 {
        let text = net.nodes[node].client().unwrap().metrics().unwrap();
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    assert!(metric(0, "mesh_served_bytes_total") > 0.0);
    assert!(metric(1, "mesh_fetches_total") >= 1.0);
    assert_eq!(metric(1, "mesh_catalog_products"), 3.0);
    assert!(
        metric(
            1,
            "gossipsub_topic_msg_recv_counts_total{hash=\"mesh/announce/v1\"}"
        ) >= 1.0
    );

    // A retired version is not served (the default policy).
    publish(
        &net,
        0,
        "old",
        &toml("sales/old", "1.0.0", "retired", "web/clicks"),
    );
    net.wait_product(2, "sales/old", "1.0.0", DEADLINE).unwrap();
    let err = net
        .fetch(2, "sales/old@1.0.0", &net.root().join("o2"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lifecycle") && err.contains("retired"),
        "{err}"
    );

    // SLA: fresh now, late two days on, and every node says so.
    let later = mesh_node::unix_now() + 2 * 86_400;
    for node in 0..3 {
        let now = entry(&net, node, "logistics/forecast", None)
            .health
            .unwrap();
        assert_eq!(now.sla, SlaState::Ok, "node {node}: {now:?}");
        let then = entry(&net, node, "logistics/forecast", Some(later))
            .health
            .unwrap();
        assert_eq!(then.sla, SlaState::Late, "node {node}");
        assert!(
            then.reasons[0].contains("freshness SLA 1d"),
            "{:?}",
            then.reasons
        );
    }
}

#[test]
fn an_odcs_contract_publishes_and_exports_back() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let contract = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contract/tests/odcs/orders.odcs.yaml"
    );
    let dir = net.root().join("orders");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("orders.csv"),
        "order_id,customer_email,amount,ordered_at\n1,a@x.io,9.5,2026-11-27T08:00:00Z\n2,b@x.io,,\n",
    )
    .unwrap();
    // Every object of the contract has data (order_lines declares no columns).
    std::fs::write(dir.join("order_lines.csv"), "order_id,line\n1,1\n").unwrap();
    let out = net.nodes[0]
        .mesh(
            net.mesh_bin(),
            &["publish", dir.to_str().unwrap(), "--contract", contract],
        )
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: servers: kept in the contract, not checked by mesh"),
        "{stderr}"
    );
    net.wait_product(1, "sales/orders", "2.1.0", DEADLINE)
        .unwrap();
    // Another node exports the very document that was published: every value.
    let out = net.nodes[1]
        .mesh(
            net.mesh_bin(),
            &["show", "sales/orders", "--format", "odcs"],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    let as_json = |y: &str| {
        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(y).unwrap()).unwrap()
    };
    let original = as_json(&std::fs::read_to_string(contract).unwrap());
    assert_eq!(
        original["apiVersion"], "v3.1.0",
        "the fixture is already v3.1.0"
    );
    assert_eq!(
        as_json(&yaml),
        original,
        "node 1's export is the published contract"
    );
    let back = mesh_contract::odcs::import(&yaml, None).unwrap();
    assert_eq!(back.draft.id, "sales/orders");
    assert_eq!(back.draft.schema.len(), 4);
    assert!(back.draft.schema[0].unique && back.draft.schema[0].required);
    assert_eq!(back.draft.sla.freshness.as_deref(), Some("4h"));
}

#[test]
fn usage_reports_reach_every_node() {
    let mut net = testnet(3);
    net.start_all().unwrap();
    publish(
        &net,
        0,
        "used",
        &toml("sales/used", "1.0.0", "active", "web/clicks"),
    );
    for node in [1, 2] {
        net.wait_product(node, "sales/used", "1.0.0", DEADLINE)
            .unwrap();
        net.fetch(node, "sales/used", &net.root().join(format!("u{node}")))
            .unwrap();
    }
    // finance (node 1) and logistics (node 2) fetched once each; node 1 learns of its
    // own fetch only from the provider's signed report.
    for node in 0..3 {
        wait_until("usage reports to arrive", DEADLINE, || {
            let u = net.nodes[node].client()?.usage(&"sales/used".parse()?)?;
            Ok(u.by_consumer.get("finance") == Some(&1)
                && u.by_consumer.get("logistics") == Some(&1)
                && u.total == 2)
        })
        .unwrap();
    }
    let out = net.nodes[1]
        .mesh(net.mesh_bin(), &["usage", "sales/used"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 fetch(es)") && text.contains("consumer finance"),
        "{text}"
    );
}

/// Regression: publisher-written text was printed raw, so a title carrying ANSI and
/// OSC escapes set a consumer's terminal title and colours, and one carrying a
/// newline printed a line that looked like another product.
#[test]
fn terminal_escapes_in_publisher_text_are_shown_escaped_not_obeyed() {
    let mut net = testnet(2);
    net.start_all().unwrap();
    let toml = sample::manifest_toml("sales/escapes", "1.0.0")
        .replacen(
            "title = \"",
            "title = \"\\u001b]0;pwned\\u0007\\u001b[31mRed \\nsales/fake  9.9.9\\t",
            1,
        )
        .replacen("description = \"", "description = \"\\u001b[2J\\u009b", 1);
    publish(&net, 0, "sales/escapes", &toml);
    let run = |args: &[&str]| {
        let out = net.nodes[0].mesh(net.mesh_bin(), args).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for shown in [run(&["products"]), run(&["show", "sales/escapes"])] {
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}') && !shown.contains('\u{9b}'),
            "raw control characters reached the terminal: {shown:?}"
        );
        assert!(shown.contains("\\u{1b}]0;pwned"), "{shown}");
        // A newline in the title cannot start a line that looks like a product.
        assert!(
            !shown.lines().any(|l| l.starts_with("sales/fake")),
            "{shown}"
        );
        assert!(shown.contains("Red \\nsales/fake  9.9.9\\t"), "{shown}");
    }
    // JSON output keeps the exact text (JSON escapes it).
    let json = run(&["--json", "show", "sales/escapes"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["manifest"]["title"]
        .as_str()
        .unwrap()
        .starts_with("\u{1b}]0;pwned\u{7}"));
}
