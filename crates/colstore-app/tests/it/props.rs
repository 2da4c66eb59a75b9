//! Property tests of the file readers in this crate: the export file (zstd frame and JSON lines), the backup manifest,
//! pack indexes and vectors blobs. Whatever the bytes, reading never panics; what was written reads back the same; a
//! damaged export is refused before anything changes, or (when the damage is harmless) imports whole. Case counts are
//! bounded for CI; `cargo xtask fuzz` runs the fuzz targets for longer.

use std::io::{Cursor, Read};

use colstore_app::backup::RestoreMode;
use colstore_app::backup::format::{BlobLocation, Manifest, decode_index, decode_vectors, encode_index, encode_vectors};
use colstore_app::{decode_export, export, import, plan_import};
use colstore_domain::{ContentHash, StoreId, Timestamp, Vector};
use proptest::prelude::*;

use crate::backup::{dump, fill, world};

fn hash() -> impl Strategy<Value = ContentHash> {
    any::<[u8; 32]>().prop_map(ContentHash::from_bytes)
}

/// A valid export of a small store, written once.
fn sample_export() -> &'static [u8] {
    static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let w = world();
            fill(&w.repo, "notes", 6).await;
            let mut out = Vec::new();
            export(
                &*w.repo,
                &colstore_app::ExportScope::default(),
                StoreId::random(),
                "test",
                Timestamp::from_millis(1),
                &mut out,
                &|_| {},
            )
            .await
            .expect("export");
            out
        })
    })
}

/// `bytes` with one byte changed, a range removed, or cut short.
fn damaged(bytes: &[u8], at: usize, how: u8, len: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = at % b.len().max(1);
    match how % 3 {
        0 => b[at] ^= 1 << (len % 8),
        1 => {
            let end = (at + len % 64).min(b.len());
            b.drain(at..end);
        }
        _ => b.truncate(at),
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn manifests_parse_or_refuse(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Manifest::parse("fuzz", &bytes);
    }

    #[test]
    fn pack_indexes_round_trip_and_refuse_damage(
        entries in proptest::collection::vec((hash(), hash(), any::<u64>(), any::<u64>()), 0..20),
        junk in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let id = ContentHash::of(b"index");
        let entries: Vec<(ContentHash, BlobLocation)> =
            entries.into_iter().map(|(b, pack, offset, len)| (b, BlobLocation { pack, offset, len })).collect();
        prop_assert_eq!(decode_index(&id, &encode_index(&entries)).expect("its own encoding"), entries);
        let _ = decode_index(&id, &junk);
    }

    #[test]
    fn vectors_blobs_round_trip_and_refuse_damage(
        dim in 0usize..8,
        rows in proptest::collection::vec((hash(), proptest::collection::vec(-1.0f32..1.0, 8)), 0..10),
        junk in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let id = ContentHash::of(b"vectors");
        let rows: Vec<(ContentHash, Vector)> = rows.into_iter().map(|(h, v)| (h, v[..dim].to_vec())).collect();
        let back = decode_vectors(&id, &encode_vectors(&rows)).expect("its own encoding");
        prop_assert_eq!(back.len(), rows.len());
        for ((h, v), (h2, v2)) in rows.iter().zip(&back) {
            prop_assert_eq!(h, h2);
            prop_assert_eq!(v, v2);
        }
        let _ = decode_vectors(&id, &junk);
    }

    /// Arbitrary bytes handed to `col import`: the zstd frame or the lines are refused, never a panic.
    #[test]
    fn any_bytes_are_an_export_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(mut lines) = decode_export(Cursor::new(&bytes)) {
            let mut text = Vec::new();
            let _ = lines.read_to_end(&mut text);
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        let w = world();
        let _ = rt.block_on(plan_import(&*w.repo, Cursor::new(&bytes), RestoreMode::Replace));
    }

    /// A damaged export is refused by the plan (and then nothing is imported), or the damage was harmless and the
    /// import brings exactly the exported documents.
    #[test]
    fn a_damaged_export_is_refused_or_harmless(at in any::<usize>(), how in any::<u8>(), len in any::<usize>()) {
        let good = sample_export();
        let bad = damaged(good, at, how, len);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let w = world();
            let before = dump(&w.repo).await;
            match plan_import(&*w.repo, Cursor::new(&bad), RestoreMode::Replace).await {
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    assert_eq!(dump(&w.repo).await, before, "a refused plan changes nothing");
                }
                Ok(_) => {
                    let reference = world();
                    import(&*reference.repo, &*reference.repo, Cursor::new(good), RestoreMode::Replace, &|_| {}).await.expect("the good file");
                    import(&*w.repo, &*w.repo, Cursor::new(&bad), RestoreMode::Replace, &|_| {}).await.expect("a planned import");
                    let docs = |d: Vec<String>| d.into_iter().filter(|l| !l.starts_with("ledger")).collect::<Vec<_>>();
                    assert_eq!(docs(dump(&w.repo).await), docs(dump(&reference.repo).await), "harmless damage imports the same documents");
                }
            }
        });
    }
}
