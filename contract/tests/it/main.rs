//! Integration tests of mesh-contract, one binary: each former test file is a module.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod draft_errors;
mod lint;
mod odcs;
mod official_examples;
mod quality_rules;
mod schema_diff;
mod tables;
