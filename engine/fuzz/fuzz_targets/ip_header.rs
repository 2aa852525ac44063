//! Inner IP header and UDP parsing: lengths never point outside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pnet_mesh::fuzzing::ip_header(data));
