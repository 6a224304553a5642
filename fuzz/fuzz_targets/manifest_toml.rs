#![no_main]
//! Fuzzes `mesh_node::fuzzing::manifest_toml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mesh_node::fuzzing::manifest_toml(data));
