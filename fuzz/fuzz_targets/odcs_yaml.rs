#![no_main]
//! Fuzzes `mesh_node::fuzzing::odcs_yaml`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mesh_node::fuzzing::odcs_yaml(data));
