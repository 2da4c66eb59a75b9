//! `read_document` (`col get`): the content checked against its hash, and when bytes reach the output.

use std::sync::Arc;

use colstore_app::{CHECK_IN_MEMORY, ReadError, ReadMode, read_document};
use colstore_domain::ports::DocumentFiles;
use colstore_domain::{CollectionName, DocKey};
use colstore_testkit::repo::{create, key, plain, put};
use colstore_testkit::{InMemoryFiles, InMemoryRepo, ManualClock};
use rstest::rstest;

async fn store_with(content: &[u8]) -> (InMemoryRepo, CollectionName, DocKey) {
    let repo = InMemoryRepo::new(Arc::new(ManualClock::at_2024()));
    let c = create(&repo, "notes").await;
    put(&repo, &c, vec![plain("a.md", content)]).await;
    (repo, c, key("a.md"))
}

#[rstest]
#[case::streamed_small(ReadMode::Streamed, 100)]
#[case::checked_first_in_memory(ReadMode::CheckedFirst, 100)]
#[case::checked_first_read_twice(ReadMode::CheckedFirst, CHECK_IN_MEMORY as usize + 4096)]
#[tokio::test]
async fn the_content_reaches_the_output_whole(#[case] mode: ReadMode, #[case] size: usize) {
    let content: Vec<u8> = (0..size).map(|i| b"abcdefghij"[i % 10]).collect();
    let (repo, c, k) = store_with(&content).await;
    let mut out = Vec::new();
    let r = read_document(&repo, &c, &k, &mut out, mode).await.unwrap();
    assert_eq!(out.len(), content.len());
    assert!(out == content, "the bytes written are the document's");
    assert!(!r.changed_on_disk);
    assert_eq!(r.meta.size, size as u64);
}

#[tokio::test]
async fn a_corrupt_content_is_refused_and_checked_first_writes_nothing() {
    let (repo, c, k) = store_with(b"the original words").await;
    repo.corrupt(&c, &k);
    let mut out = Vec::new();
    let e = read_document(&repo, &c, &k, &mut out, ReadMode::CheckedFirst).await.unwrap_err();
    assert!(matches!(e, ReadError::Corrupt { .. } | ReadError::Read { .. }), "{e}");
    assert!(e.to_string().contains("notes/a.md"), "{e}");
    assert!(out.is_empty(), "nothing reached the output: {out:?}");
    let e = read_document(&repo, &c, &k, &mut Vec::new(), ReadMode::Streamed).await.unwrap_err();
    assert!(matches!(e, ReadError::Corrupt { .. } | ReadError::Read { .. }), "{e}");
}

#[tokio::test]
async fn a_missing_document_is_a_repo_error() {
    let (repo, c, _) = store_with(b"x").await;
    let e = read_document(&repo, &c, &key("nope.md"), &mut Vec::new(), ReadMode::Streamed).await.unwrap_err();
    assert!(matches!(e, ReadError::Repo(colstore_domain::ports::RepoError::DocumentNotFound { .. })), "{e}");
}

#[tokio::test]
async fn a_failing_output_is_a_write_error() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (repo, c, k) = store_with(b"some words").await;
    for mode in [ReadMode::Streamed, ReadMode::CheckedFirst] {
        let e = read_document(&repo, &c, &k, &mut Full, mode).await.unwrap_err();
        assert!(matches!(&e, ReadError::Write(w) if w.kind() == std::io::ErrorKind::StorageFull), "{e}");
    }
}

#[tokio::test]
async fn a_file_edited_outside_colstore_is_read_as_it_is_now_and_said_so() {
    let files = Arc::new(InMemoryFiles::new());
    let dyn_files: Arc<dyn DocumentFiles> = files.clone();
    let repo = InMemoryRepo::with_files(Arc::new(ManualClock::at_2024()), dyn_files);
    let c = create(&repo, "notes").await;
    put(&repo, &c, vec![plain("a.md", b"recorded")]).await;
    files.external_replace(&c, "a.md", &b"edited by hand"[..]);
    let mut out = Vec::new();
    let r = read_document(&repo, &c, &key("a.md"), &mut out, ReadMode::CheckedFirst).await.unwrap();
    assert!(r.changed_on_disk);
    assert_eq!(out, b"edited by hand");
}
