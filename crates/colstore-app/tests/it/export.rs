//! Export and import on the fakes: round trip, and files that must be refused before anything changes.

use std::io::Cursor;

use colstore_app::backup::RestoreMode;
use colstore_app::{ExportError, export, import, plan_import};
use colstore_domain::ports::CollectionRepo;
use colstore_domain::{StoreId, Timestamp};

use crate::backup::{dump, fill, world};

async fn exported(w: &crate::backup::World) -> Vec<u8> {
    let mut out = Vec::new();
    export(&*w.repo, &colstore_app::ExportScope::default(), StoreId::random(), "test", Timestamp::from_millis(1), &mut out, &|_| {})
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn an_export_imports_into_a_new_store_with_documents_and_vectors() {
    let w = world();
    fill(&w.repo, "notes", 30).await;
    fill(&w.repo, "papers", 3).await;
    let file = exported(&w).await;
    let other = world();
    let plan = plan_import(&*other.repo, Cursor::new(&file), RestoreMode::Replace).await.unwrap();
    assert_eq!((plan.documents, plan.collections.len()), (33, 2));
    assert_eq!(plan.vectors, 33);
    assert_eq!(import(&*other.repo, &*other.repo, Cursor::new(&file), RestoreMode::Replace, &|_| {}).await.unwrap(), 33);
    // Documents, content and vectors are the same; the ledger is pending (the index of the other store is empty).
    let docs = |d: Vec<String>| d.into_iter().filter(|l| !l.starts_with("ledger")).collect::<Vec<_>>();
    assert_eq!(docs(dump(&other.repo).await), docs(dump(&w.repo).await));
    // Importing again changes nothing.
    let again = plan_import(&*other.repo, Cursor::new(&file), RestoreMode::Replace).await.unwrap();
    assert!(again.collections.iter().all(|c| c.add + c.update + c.delete == 0), "{again:?}");

    // Into a store holding more: replace deletes what the file lacks (walked beside the file in key order), merge
    // keeps it.
    for (mode, left) in [(RestoreMode::Merge, 45), (RestoreMode::Replace, 30)] {
        let bigger = world();
        fill(&bigger.repo, "notes", 45).await;
        let plan = plan_import(&*bigger.repo, Cursor::new(&file), mode).await.unwrap();
        let notes = plan.collections.iter().find(|c| c.name.as_str() == "notes").unwrap();
        assert_eq!((notes.unchanged, notes.delete), (30, 45 - left), "{mode:?}: {notes:?}");
        import(&*bigger.repo, &*bigger.repo, Cursor::new(&file), mode, &|_| {}).await.unwrap();
        let snap = bigger.repo.snapshot().await.unwrap();
        assert_eq!(snap.documents(&colstore_domain::CollectionName::parse("notes").unwrap(), None, 1000).await.unwrap().len() as u64, left);
    }
}

/// `col export --where`: the file holds only the matching documents, its collection line says how many and by what
/// filter, and an import of it, in either mode, adds and updates those and deletes nothing it lacks.
#[tokio::test]
async fn a_filtered_export_holds_only_matches_and_its_import_deletes_nothing() {
    let w = world();
    fill(&w.repo, "notes", 30).await;
    fill(&w.repo, "papers", 4).await;
    let filter = colstore_domain::DocFilter::parse("i < 10 or i >= 25", Timestamp::from_millis(1)).unwrap();
    let scope = colstore_app::ExportScope { collections: vec![], filter: Some(("i < 10 or i >= 25".into(), filter)) };
    let mut file = Vec::new();
    let report = export(&*w.repo, &scope, StoreId::random(), "test", Timestamp::from_millis(1), &mut file, &|_| {}).await.unwrap();
    assert_eq!((report.collections, report.documents), (2, 15 + 4));
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(text.lines().next().unwrap().contains("\"version\":4"), "a filtered file is version 4");
    assert!(text.contains("\"documents\":15,\"filter\":\"i < 10 or i >= 25\""), "{}", text.lines().nth(1).unwrap());

    // Into the store it came from, replace mode: nothing is deleted (it would delete 15 notes for a whole file).
    let plan = plan_import(&*w.repo, Cursor::new(&file), RestoreMode::Replace).await.unwrap();
    let notes = plan.collections.iter().find(|c| c.name.as_str() == "notes").unwrap();
    assert_eq!((notes.unchanged, notes.delete, notes.filter.as_deref()), (15, 0, Some("i < 10 or i >= 25")), "{notes:?}");
    let before = dump(&w.repo).await;
    import(&*w.repo, &*w.repo, Cursor::new(&file), RestoreMode::Replace, &|_| {}).await.unwrap();
    assert_eq!(dump(&w.repo).await, before);

    // Into a new store: exactly the matches.
    let other = world();
    assert_eq!(import(&*other.repo, &*other.repo, Cursor::new(&file), RestoreMode::Replace, &|_| {}).await.unwrap(), 19);
    let snap = other.repo.snapshot().await.unwrap();
    let keys: Vec<String> = snap
        .documents(&colstore_domain::CollectionName::parse("notes").unwrap(), None, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.key.to_string())
        .collect();
    let want: Vec<String> = (0..30).filter(|i| *i < 10 || *i >= 25).map(|i| format!("d{i:03}.md")).collect();
    assert_eq!(keys, want);

    // A version-3 file cannot carry a filter: such a file is damaged, refused before anything changes.
    let forged = text.replacen("\"version\":4", "\"version\":3", 1);
    let e = plan_import(&*other.repo, Cursor::new(forged.as_bytes()), RestoreMode::Replace).await.unwrap_err();
    assert!(e.to_string().contains("has a filter, which version 3 files do not have"), "{e}");
}

#[tokio::test]
async fn damaged_truncated_and_future_files_are_refused_before_anything_changes() {
    let w = world();
    fill(&w.repo, "notes", 5).await;
    let file = exported(&w).await;
    let text = String::from_utf8(file.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let truncated = lines[..lines.len() - 1].join("\n") + "\n";
    let future = text.replacen("\"version\":3", "\"version\":7", 1); // a whole export is written as version 3
    let damaged = text.replacen("\"content\":\"", "\"content\":\"QUJD", 1);
    let not_json = "hello\n".to_owned();
    // Documents are listed in key order: a repeated or swapped document line is refused.
    let with_lines = |f: &dyn Fn(&mut Vec<&str>)| {
        let mut l = lines.clone();
        f(&mut l);
        l.join("\n") + "\n"
    };
    let twice = with_lines(&|l| l[3] = l[2]);
    // Found by the property test `a_damaged_export_is_refused_or_harmless`: one flipped bit in a key ('.' -> '&')
    // imported the document under another key; the end line's SHA-256 (format version 3) refuses it now.
    let key_flipped = text.replacen("d001.md", "d001&md", 1);
    let meta_changed = text.replacen("{\"i\":1}", "{\"i\":7}", 1);
    let swapped = with_lines(&|l| l.swap(2, 3));
    let cases: Vec<(&str, String, &str)> = vec![
        ("truncated", truncated, "truncated"),
        ("future", future, "version 7"),
        ("damaged", damaged, "does not match"),
        ("not an export", not_json, "not a colstore export"),
        ("a document twice", twice, "appears twice"),
        ("out of key order", swapped, "key order"),
        ("empty", String::new(), "not a colstore export"),
        ("a key changed", key_flipped, "SHA-256"),
        ("metadata changed", meta_changed, "SHA-256"),
    ];
    for (what, bytes, expect) in cases {
        let target = world();
        fill(&target.repo, "notes", 2).await;
        let before = dump(&target.repo).await;
        let e = plan_import(&*target.repo, Cursor::new(bytes.as_bytes()), RestoreMode::Replace).await.unwrap_err();
        assert!(e.to_string().contains(expect), "{what}: {e}");
        assert!(matches!(e, ExportError::Malformed { .. } | ExportError::TooNew(_)), "{what}: {e}");
        assert_eq!(dump(&target.repo).await, before, "{what}");
        assert_eq!(target.repo.list_collections().await.unwrap().len(), 1);
    }
    // A version 2 file (no digest in its end line) still imports; a version 3 file must carry one.
    let end = lines.last().unwrap();
    let stripped = end.split(",\"sha256\"").next().unwrap().to_owned() + "}}";
    let v2 = text.replacen("\"version\":3", "\"version\":2", 1).replacen(end, &stripped, 1);
    let target = world();
    plan_import(&*target.repo, Cursor::new(v2.as_bytes()), RestoreMode::Replace).await.expect("a version 2 file without a digest");
    let v3_without = text.replacen(end, &stripped, 1);
    let e = plan_import(&*target.repo, Cursor::new(v3_without.as_bytes()), RestoreMode::Replace).await.unwrap_err();
    assert!(e.to_string().contains("no sha256"), "{e}");
}

mod file {
    //! The file as bytes (zstd around the JSON lines) and `run_import`: the safety backup before anything is written.

    use colstore_app::{ImportRunError, decode_export, export_to, run_import};
    use colstore_domain::ports::{MockSafetyNet, SafetyCopy, SafetyError};

    use super::*;

    fn notes() -> colstore_domain::CollectionName {
        colstore_domain::CollectionName::parse("notes").unwrap()
    }

    async fn count(w: &crate::backup::World) -> usize {
        let snap = w.repo.snapshot().await.unwrap();
        snap.documents(&notes(), None, 1000).await.unwrap().len()
    }

    /// The file of a store with 5 `notes`, and a store holding 8 (a replace import deletes 3 of them).
    async fn file_and_bigger_store() -> (Vec<u8>, crate::backup::World) {
        let w = world();
        fill(&w.repo, "notes", 5).await;
        let (_, file) = export_to(
            &*w.repo,
            &colstore_app::ExportScope::default(),
            StoreId::random(),
            "test",
            Timestamp::from_millis(1),
            Vec::new(),
            &|_| {},
        )
        .await
        .unwrap();
        let bigger = world();
        fill(&bigger.repo, "notes", 8).await;
        (file, bigger)
    }

    #[tokio::test]
    async fn the_file_is_zstd_around_the_json_lines() {
        let (file, _) = file_and_bigger_store().await;
        assert_eq!(&file[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
        let lines = String::from_utf8(zstd::decode_all(&file[..]).unwrap()).unwrap();
        assert!(lines.starts_with(r#"{"header":{"format":"colstore-export""#), "{lines}");
        let mut decoded = String::new();
        std::io::Read::read_to_string(&mut decode_export(&file[..]).unwrap(), &mut decoded).unwrap();
        assert_eq!(decoded, lines);
    }

    #[tokio::test]
    async fn a_replace_import_keeps_a_safety_backup_of_what_it_overwrites_first() {
        let (file, w) = file_and_bigger_store().await;
        let plan = plan_import(&*w.repo, decode_export(&file[..]).unwrap(), RestoreMode::Replace).await.unwrap();
        let mut net = MockSafetyNet::new();
        net.expect_backup()
            .withf(|c, op| c == [notes()] && op == "import")
            .times(1)
            .returning(|_, _| Ok(SafetyCopy::Backup("safe".into())));
        let kept = std::sync::Mutex::new(None);
        let out = run_import(
            &*w.repo,
            &*w.repo,
            Some(&net),
            &plan,
            decode_export(&file[..]).unwrap(),
            &|c| *kept.lock().unwrap() = Some(c.clone()),
            &|_| {},
        )
        .await
        .unwrap();
        assert_eq!(out.safety, Some(SafetyCopy::Backup("safe".into())));
        assert_eq!(*kept.lock().unwrap(), out.safety);
        assert_eq!(count(&w).await, 5);
    }

    #[tokio::test]
    async fn a_failed_safety_backup_imports_nothing() {
        let (file, w) = file_and_bigger_store().await;
        let plan = plan_import(&*w.repo, decode_export(&file[..]).unwrap(), RestoreMode::Replace).await.unwrap();
        let mut net = MockSafetyNet::new();
        net.expect_backup().times(1).returning(|_, _| Err(SafetyError("repository unreachable".into())));
        let e = run_import(&*w.repo, &*w.repo, Some(&net), &plan, decode_export(&file[..]).unwrap(), &|_| {}, &|_| {}).await.unwrap_err();
        assert!(matches!(e, ImportRunError::Safety(_)), "{e}");
        assert_eq!(count(&w).await, 8);
    }

    #[tokio::test]
    async fn an_import_that_only_adds_or_was_told_no_backup_keeps_none() {
        let (file, w) = file_and_bigger_store().await;
        let mut net = MockSafetyNet::new();
        net.expect_backup().never();
        let plan = plan_import(&*w.repo, decode_export(&file[..]).unwrap(), RestoreMode::Replace).await.unwrap();
        let out = run_import(&*w.repo, &*w.repo, None, &plan, decode_export(&file[..]).unwrap(), &|_| {}, &|_| {}).await.unwrap();
        assert_eq!(out.safety, None, "--no-backup");
        let fresh = world();
        let plan = plan_import(&*fresh.repo, decode_export(&file[..]).unwrap(), RestoreMode::Replace).await.unwrap();
        let out =
            run_import(&*fresh.repo, &*fresh.repo, Some(&net), &plan, decode_export(&file[..]).unwrap(), &|_| {}, &|_| {}).await.unwrap();
        assert_eq!((out.safety, out.written), (None, 5), "nothing to overwrite in a new store");
    }
}
