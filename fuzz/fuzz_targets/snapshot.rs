//! The embedded index's snapshot file: any bytes are rejected or loaded, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = colstore_embedded::fuzzing::read_snapshot_file(bytes);
});
