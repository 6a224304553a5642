#![no_main]
//! Fuzzes `mesh_node::fuzzing::policy_change_toml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mesh_node::fuzzing::policy_change_toml(data));
