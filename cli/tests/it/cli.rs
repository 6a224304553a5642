//! The `mesh` binary's offline commands and its error messages, run as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::PermissionsExt;

use crate::common;

use common::{mesh, stderr, stdout};

#[test]
fn help_teaches_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let o = mesh(dir.path(), &["--help"]);
    assert!(o.status.success());
    for cmd in ["init", "publish", "products", "fetch", "policy", "council"] {
        assert!(stdout(&o).contains(cmd), "help lists {cmd}");
    }
}

#[test]
fn commands_without_a_home_or_daemon_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let o = mesh(&home, &["status"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("mesh init"), "{}", stderr(&o));

    assert!(mesh(&home, &["init", "--domain", "sales"]).status.success());
    let o = mesh(&home, &["products"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no mesh daemon is running"),
        "{}",
        stderr(&o)
    );
    let o = mesh(&home, &["--json", "status"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["error"].as_str().unwrap().contains("mesh node run"));

    let o = mesh(&home, &["node", "run"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no genesis policy installed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn keygen_writes_a_private_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("c.key");
    let o = mesh(
        dir.path(),
        &["council", "keygen", "--out", key.to_str().unwrap()],
    );
    assert!(o.status.success());
    assert_eq!(stdout(&o).len(), 64, "prints the hex public key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = mesh(
        dir.path(),
        &["council", "keygen", "--out", key.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("refusing to overwrite"));
}

#[test]
fn genesis_needs_the_council_threshold_before_init_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let keys: Vec<String> = ["c1", "c2", "c3"]
        .iter()
        .map(|c| {
            stdout(&mesh(
                dir.path(),
                &["council", "keygen", "--out", &d(&format!("{c}.key"))],
            ))
        })
        .collect();
    let home = dir.path().join("home");
    let init = mesh(&home, &["--json", "init", "--domain", "sales"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&init)).unwrap();
    let publisher = v["publisher_key"].as_str().unwrap();
    let peer = v["peer_id"].as_str().unwrap();
    let g = d("genesis.json");
    let o = mesh(
        dir.path(),
        &[
            "policy",
            "genesis",
            "--council",
            &keys.join(","),
            "--threshold",
            "2",
            "--domain",
            &format!("sales={publisher}"),
            "--node",
            &format!("sales={peer}"),
            "--out",
            &g,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    assert!(
        mesh(dir.path(), &["policy", "sign", "--key", &d("c1.key"), &g])
            .status
            .success()
    );
    let o = mesh(&home, &["init", "--genesis", &g]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("1 of 2 required signatures"), "{err}");
    assert!(
        err.contains(&keys[1]) && err.contains(&keys[2]),
        "names the missing keys: {err}"
    );

    // Signing twice with the same key does not count twice.
    assert!(
        mesh(dir.path(), &["policy", "sign", "--key", &d("c1.key"), &g])
            .status
            .success()
    );
    assert!(!mesh(&home, &["init", "--genesis", &g]).status.success());

    assert!(
        mesh(dir.path(), &["policy", "sign", "--key", &d("c3.key"), &g])
            .status
            .success()
    );
    let o = mesh(&home, &["--json", "init", "--genesis", &g]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["policy_version"], 1);

    let show = stdout(&mesh(dir.path(), &["policy", "show", &g]));
    assert!(show.contains("2 of 2 required: complete"), "{show}");
    assert!(
        show.contains(
            r#"settings: schema_compatibility = "none", quality = "refuse", serve_retired = false"#
        ),
        "settings as a change file writes them: {show}"
    );

    // Drafting v2 offline from the genesis file: rotate c2 out for c4, threshold 2.
    let c4 = stdout(&mesh(
        dir.path(),
        &["council", "keygen", "--out", &d("c4.key")],
    ));
    let change = d("change.toml");
    std::fs::write(
        &change,
        format!("[council]\nadd = [\"{c4}\"]\nremove = [\"{}\"]\n", keys[1]),
    )
    .unwrap();
    let v2 = d("v2.json");
    let o = mesh(
        dir.path(),
        &[
            "policy",
            "draft",
            "--current",
            &g,
            "--change",
            &change,
            "--out",
            &v2,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The draft shows its expiry: the default year, not the genesis's own span.
    let drafted = stdout(&o);
    assert!(
        drafted.contains("it expires 20") && drafted.contains("(365d from now)"),
        "{drafted}"
    );
    let o = mesh(dir.path(), &["policy", "sign", "--key", &d("c4.key"), &v2]);
    let out = stdout(&o);
    assert!(
        out.contains("current council: 0 signed, 2 required (incomplete)"),
        "{out}"
    );
    assert!(
        out.contains("new council: 1 signed, 2 required (incomplete)"),
        "{out}"
    );
    let show = stdout(&mesh(dir.path(), &["policy", "show", &v2]));
    assert!(show.contains("policy v2"), "{show}");
    let current = show
        .lines()
        .find(|l| l.starts_with("signatures (current council): 0 of 2 required; missing:"))
        .unwrap_or_else(|| panic!("names who must still sign: {show}"));
    assert!(
        current.contains(&keys[0]) && current.contains(&keys[2]),
        "{current}"
    );
    // A change that breaks the policy is refused before anything is written.
    std::fs::write(&change, "[council]\nthreshold = 9\n").unwrap();
    let o = mesh(
        dir.path(),
        &[
            "policy",
            "draft",
            "--current",
            &g,
            "--change",
            &change,
            "--out",
            &d("bad.json"),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("threshold 9"), "{}", stderr(&o));
    assert!(!dir.path().join("bad.json").exists());

    // A hand-edited policy file is refused.
    let text = std::fs::read_to_string(&g)
        .unwrap()
        .replace("\"threshold\": 2", "\"threshold\": 1");
    std::fs::write(&g, text).unwrap();
    let o = mesh(dir.path(), &["policy", "show", &g]);
    assert!(
        stderr(&o).contains("differs from the signed envelope"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn genesis_flags_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.json");
    let o = mesh(
        dir.path(),
        &[
            "policy",
            "genesis",
            "--council",
            "abc",
            "--threshold",
            "1",
            "--domain",
            "x=y",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid public key"), "{}", stderr(&o));
    assert!(!out.exists());
}

#[test]
fn a_broken_manifest_is_named_by_the_file_given() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("orders-v2.toml");
    std::fs::write(&m, "title = \"Orders\"\nversion = [\n").unwrap();
    let o = mesh(
        &dir.path().join("h"),
        &[
            "publish",
            dir.path().to_str().unwrap(),
            "--manifest",
            m.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("orders-v2.toml:"), "{err}");
    assert!(!err.contains("product.toml"), "{err}");
}
