#![no_main]
//! Fuzzes `mesh_node::fuzzing::wire_response`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mesh_node::fuzzing::wire_response(data));
