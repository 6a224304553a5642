//! Integration tests of mesh-node, one binary: each former test file is a module.
//! `tests/fuzz_regressions.rs` keeps a binary of its own: it installs a counting
//! global allocator and must run with nothing else allocating at the same time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod api;
mod common;
mod hostile_peer;
mod limits;
mod providers;
mod storage_faults;
mod sync;
mod transport;
