//! Helpers shared by the CLI tests: run the `mesh` binary as a user would.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses some of them

use std::path::Path;
use std::process::{Command, Output};

pub(crate) fn mesh(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("MESH_HOME")
        .output()
        .unwrap()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}
