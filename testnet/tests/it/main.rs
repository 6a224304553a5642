//! Integration tests on real node processes, one binary: each former test file is a
//! module. The tests that need root and must not overlap with others (the NAT lab,
//! power loss, the chaos soak) keep binaries of their own (`tests/nat.rs`,
//! `tests/powerloss.rs`, `tests/chaos.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod access;
mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod contracts;
mod crash;
mod delta_sharing;
mod derived;
mod flight_sql;
mod governance;
mod hedging;
mod in_place;
mod lineage;
mod mesh;
mod object_store;
mod odps;
mod oneshot;
mod products;
mod query;
mod replicas;
mod scenarios;
mod subscriptions;
mod topology;
mod transfer;
mod transports;
mod web_catalog;
