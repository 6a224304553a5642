//! Integration tests of the `mesh` CLI, one binary: each former test file is a module.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod cli;
mod common;
mod contract;
