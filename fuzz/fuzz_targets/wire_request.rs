#![no_main]
//! Fuzzes `mesh_node::fuzzing::wire_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mesh_node::fuzzing::wire_request(data));
