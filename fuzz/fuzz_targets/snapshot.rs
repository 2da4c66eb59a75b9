//! The embedded index's snapshot file: any bytes are rejected or loaded, never a panic; and any body behind a header
//! made right for it (so decoding gets past the checksums) is rejected or loaded, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = colstore_embedded::fuzzing::read_snapshot_file(bytes);
    if let Some((rows, body)) = bytes.split_first() {
        let _ = colstore_embedded::fuzzing::read_snapshot_body(*rows, body);
    }
});
