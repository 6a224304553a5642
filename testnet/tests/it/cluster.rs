//! `mesh-testnet up / status / down` as a user runs them: `up` in the background holds
//! the nodes, `status` sees them, `down` stops them all, and killing `up` with
//! SIGKILL takes every node with it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mesh_testnet::cluster::{self, STATE_FILE};
use mesh_testnet::wait_until;

const DEADLINE: Duration = Duration::from_secs(90);

/// Starts `mesh-testnet up` in the background and waits until its state file exists.
fn up(dir: &Path, nodes: usize) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_mesh-testnet"))
        .args(["up", "-n", &nodes.to_string(), "--domains", "2", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the testnet to be up", DEADLINE, || {
        Ok(dir.join(STATE_FILE).exists())
    })
    .unwrap();
    child
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn node_pids(dir: &Path) -> Vec<u32> {
    let (state, _) = cluster::status(dir).unwrap();
    state.nodes.iter().filter_map(|n| n.pid).collect()
}

#[test]
fn up_status_down_leaves_no_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let mut holder = up(&dir, 3);
    let (_, views) = cluster::status(&dir).unwrap();
    assert_eq!(views.len(), 3);
    assert!(
        views.iter().all(|v| v.running && v.peers.unwrap_or(0) >= 1),
        "{views:?}"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_mesh-testnet"))
        .args(["status", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);

    let pids = node_pids(&dir);
    assert_eq!(
        cluster::down(&dir).unwrap(),
        0,
        "every node stopped cleanly"
    );
    holder.wait().unwrap();
    assert!(pids.iter().all(|p| !alive(*p)), "no node left running");
    assert!(!dir.join(STATE_FILE).exists());
    assert!(cluster::down(&dir).is_err(), "nothing left to stop");
}

#[test]
fn killing_up_takes_every_node_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let mut holder = up(&dir, 3);
    let pids = node_pids(&dir);
    holder.kill().unwrap();
    holder.wait().unwrap();
    wait_until("every node to exit after its holder died", DEADLINE, || {
        Ok(pids.iter().all(|p| !alive(*p)))
    })
    .unwrap();
}
