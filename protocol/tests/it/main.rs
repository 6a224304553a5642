//! Integration tests of mesh-protocol, one binary: each former test file is a module.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod encoding;
mod governance;
