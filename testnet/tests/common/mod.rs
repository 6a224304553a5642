//! Shared setup of the testnet integration tests.

use std::time::Duration;

use mesh_protocol::policy::QualityEnforcement;
use mesh_protocol::policy_change::{PolicyChange, SettingsChange};
use mesh_testnet::{MeshBin, Testnet, TestnetConfig};

/// How long any single condition may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// A testnet of `nodes` processes over the domains sales, finance, logistics
/// (round-robin), run by this package's `mesh-testnet` binary.
pub(crate) fn testnet(nodes: usize) -> Testnet {
    let mesh = MeshBin::testnet(env!("CARGO_BIN_EXE_mesh-testnet"));
    Testnet::create(TestnetConfig::new(
        mesh,
        nodes,
        &["sales", "finance", "logistics"],
    ))
    .expect("create testnet")
}

/// Has the council (signing on nodes 0 and 1) set the policy's quality mode.
#[allow(dead_code)] // not every test binary changes it
pub(crate) fn set_quality(net: &Testnet, mode: QualityEnforcement) {
    let change = PolicyChange {
        settings: SettingsChange {
            quality: Some(mode),
            ..Default::default()
        },
        ..Default::default()
    };
    let signed = net
        .draft_policy(0, &change, &[0, 1])
        .expect("draft the policy");
    net.submit_policy(0, &signed).expect("submit the policy");
}

/// Has the council (signing on nodes 0 and 1) adopt the sample fetch rules
/// (`examples/governance/rules.cedar`: confidential and pii products for their
/// owner, listed consumers and granted domains), and waits until every node
/// enforces that policy (version 2).
#[allow(dead_code)] // not every test binary needs the rules
pub(crate) fn adopt_sample_rules(net: &Testnet) {
    let rules = PolicyChange {
        rules: Some(mesh_testnet::sample::RULES.to_string()),
        ..PolicyChange::default()
    };
    let signed = net
        .draft_policy(0, &rules, &[0, 1])
        .expect("draft the policy");
    net.submit_policy(0, &signed).expect("submit the policy");
    for i in 0..net.nodes.len() {
        net.wait_policy(i, 2, DEADLINE)
            .expect("every node enforces the rules");
    }
}

/// The python of a venv of real clients: the one `var` names (`.ci/run` sets
/// it), else made by `scripts/py-clients KIND`. Without one, and with no way to
/// make it, says loudly that `test` is skipped and returns `None`; with `CI`
/// set it panics instead.
pub(crate) fn python_client(var: &str, kind: &str, test: &str) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/py-clients");
    let made = std::process::Command::new("bash")
        .arg(&script)
        .arg(kind)
        .output();
    let why = match made {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(p) = text.lines().last().filter(|p| Path::new(p).exists()) {
                return Some(PathBuf::from(p));
            }
            format!("{} printed no python", script.display())
        }
        Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test} must run in CI, but its venv (scripts/py-clients {kind}) could not be made: {why}");
    }
    eprintln!("\n!!! SKIPPED: {test} needs the venv of scripts/py-clients {kind}: {why}\n");
    None
}

/// The rows of a real client's JSON answer (`{"rows": [...]}`), or a panic with
/// its error.
pub(crate) fn answer_rows(answer: &serde_json::Value) -> &Vec<serde_json::Value> {
    answer["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {answer}"))
}

/// The error of a real client's JSON answer (`{"error": "..."}`), or a panic
/// with its rows.
pub(crate) fn answer_error(answer: &serde_json::Value) -> String {
    answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {answer}"))
        .to_string()
}

/// A SeaweedFS S3 server on loopback with its data under `dir` (see
/// `mesh_testkit::seaweed`). Without a `weed` binary (`scripts/py-clients s3`
/// installs it) says loudly that `test` is skipped and returns `None`; with `CI`
/// set it panics instead.
#[allow(dead_code)] // not every test binary uses object storage
pub(crate) fn seaweed(dir: &std::path::Path, test: &str) -> Option<mesh_testkit::seaweed::Seaweed> {
    use mesh_testkit::seaweed::Seaweed;
    let weed = Seaweed::binary().or_else(|| {
        let python = python_client("MESH_PY_S3", "s3", test)?;
        Some(python.parent()?.join("weed")).filter(|w| w.is_file())
    });
    let Some(weed) = weed else {
        if std::env::var_os("CI").is_some() {
            panic!("{test} must run in CI, but no weed binary was found (scripts/py-clients s3)");
        }
        eprintln!("\n!!! SKIPPED: {test} needs SeaweedFS's weed (scripts/py-clients s3)\n");
        return None;
    };
    Some(Seaweed::start(&weed, dir).expect("start SeaweedFS"))
}

/// The sizes of the pack files (`*.pack`) in a node's chunk store (none when it
/// has no packs folder yet).
#[allow(dead_code)] // not every test binary looks at packs
pub(crate) fn pack_sizes(home: &std::path::Path) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(home.join("chunks/packs")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .collect()
}

/// Bytes of the pack files in a node's chunk store.
#[allow(dead_code)] // not every test binary looks at packs
pub(crate) fn packed_bytes(home: &std::path::Path) -> u64 {
    pack_sizes(home).iter().sum()
}
