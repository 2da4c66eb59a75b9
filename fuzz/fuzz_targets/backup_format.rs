//! The backup repository's objects: manifests, pack indexes and vectors blobs. Never a panic; an index or a vectors
//! blob that decodes encodes back to the same bytes.
#![no_main]

use colstore_app::backup::format::{Manifest, decode_index, decode_vectors, encode_index, encode_vectors};
use colstore_domain::ContentHash;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = Manifest::parse("fuzz", bytes);
    let id = ContentHash::of(bytes);
    if let Ok(entries) = decode_index(&id, bytes) {
        assert_eq!(encode_index(&entries), bytes);
    }
    if let Ok(vectors) = decode_vectors(&id, bytes) {
        if !vectors.is_empty() {
            assert_eq!(encode_vectors(&vectors), bytes);
        }
    }
});
