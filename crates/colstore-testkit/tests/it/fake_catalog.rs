//! `InMemoryRepo` in filesystem mode (over `InMemoryFiles`, linked to an `InMemoryQueue`) passes the `FileCatalog`
//! conformance suite, the `SyncStore` suite, and checks of what only the fake promises.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::CollectionName;
use colstore_domain::ports::{CollectionRepo, DocumentFiles, FileCatalog, JobQueue, RepoCapabilities, RepoError, SyncStore};
use colstore_testkit::catalog::{CatalogFixture, edit};
use colstore_testkit::repo::{self, key, plain};
use colstore_testkit::sync::SyncFixture;
use colstore_testkit::{InMemoryFiles, InMemoryQueue, InMemoryRepo, ManualClock};

struct Store {
    repo: Arc<InMemoryRepo>,
    files: Arc<InMemoryFiles>,
    jobs: Arc<InMemoryQueue>,
    clock: Arc<ManualClock>,
}

impl Store {
    fn new(clock: Arc<ManualClock>) -> Self {
        let files = Arc::new(InMemoryFiles::new());
        let jobs = Arc::new(InMemoryQueue::new(clock.clone()));
        let repo = Arc::new(InMemoryRepo::with_files(clock.clone(), files.clone()).with_jobs(jobs.clone()));
        Self { repo, files, jobs, clock }
    }
}

#[async_trait]
impl CatalogFixture for Store {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        self.repo.clone()
    }

    fn catalog(&self) -> Arc<dyn FileCatalog> {
        self.repo.clone()
    }

    fn sync(&self) -> Arc<dyn SyncStore> {
        self.repo.clone()
    }

    fn files(&self) -> Arc<dyn DocumentFiles> {
        self.files.clone()
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    async fn write_behind(&self, collection: &CollectionName, path: &str, bytes: &[u8]) {
        self.files.external_write(collection, path, bytes.to_vec());
    }

    fn jobs(&self) -> Arc<dyn JobQueue> {
        self.jobs.clone()
    }
}

impl SyncFixture for Store {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        self.repo.clone()
    }

    fn sync(&self) -> Arc<dyn SyncStore> {
        self.repo.clone()
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    fn jobs(&self) -> Arc<dyn JobQueue> {
        self.jobs.clone()
    }
}

async fn catalog_fixture(clock: Arc<ManualClock>) -> Box<dyn CatalogFixture> {
    Box::new(Store::new(clock))
}

async fn sync_fixture(clock: Arc<ManualClock>) -> Box<dyn SyncFixture> {
    Box::new(Store::new(clock))
}

mod fake {
    colstore_testkit::catalog_conformance!(super::catalog_fixture);
}

mod fake_files_mode_sync {
    colstore_testkit::sync_conformance!(super::sync_fixture);
}

#[test]
fn capabilities_are_those_of_the_filesystem_mode() {
    let s = Store::new(Arc::new(ManualClock::at_2024()));
    assert_eq!(s.repo.capabilities(), RepoCapabilities { content_addressed: false, compression: false, external_edits: true });
}

#[tokio::test]
async fn documents_are_files_at_their_keys() {
    let s = Store::new(Arc::new(ManualClock::at_2024()));
    let c = repo::create(&*s.repo, "notes").await;
    assert!(s.files.root_exists(&c), "creating a collection creates its folder");
    repo::put(&*s.repo, &c, vec![plain("a.md", "ay"), plain("dir/b.md", "bee")]).await;
    assert_eq!(s.files.paths(&c), ["a.md", "dir/b.md"]);
    assert_eq!(s.files.contents(&c, "dir/b.md").as_deref(), Some(&b"bee"[..]));
    s.repo.delete_documents(&c, vec![key("dir/b.md")]).await.expect("delete");
    assert_eq!(s.files.paths(&c), ["a.md"]);
    assert!(!s.files.dir_exists(&c, "dir"), "the emptied folder went too");
    s.repo.delete_collection(&c).await.expect("delete collection");
    assert!(!s.files.root_exists(&c), "deleting the collection removes its emptied folder");
}

#[tokio::test]
async fn a_key_cannot_be_both_a_file_and_a_folder() {
    let s = Store::new(Arc::new(ManualClock::at_2024()));
    let c = repo::create(&*s.repo, "notes").await;
    repo::put_one(&*s.repo, &c, plain("a", "file")).await;
    for batch in [vec![plain("a/b.md", "below a file")], vec![plain("x/y.md", "1"), plain("x", "2")]] {
        match s.repo.put_batch(&c, batch).await {
            Err(RepoError::Unsupported(msg)) => assert!(msg.contains("both a file and a folder"), "{msg}"),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
    assert_eq!(s.files.paths(&c), ["a"], "nothing was written");
    assert!(s.repo.files().is_some());
    let leftovers = s.files.leftovers(&c).await.expect("leftovers");
    assert!(leftovers.is_empty(), "the staged files were discarded: {leftovers:?}");
}

#[tokio::test]
async fn reading_a_file_edited_behind_the_stores_back_fails_at_the_end() {
    let s = Store::new(Arc::new(ManualClock::at_2024()));
    let c = repo::create(&*s.repo, "notes").await;
    repo::put_one(&*s.repo, &c, plain("a.md", "recorded")).await;
    s.files.external_write(&c, "a.md", b"edited!!".to_vec());
    let (_, stream) = s.repo.read_content(&c, &key("a.md")).await.expect("read_content");
    let items: Vec<_> = futures::StreamExt::collect(stream).await;
    let err = items.last().expect("an item").as_ref().expect_err("the stream ends with an error");
    assert!(colstore_domain::ContentChanged::of(err).is_some(), "{err}");
    s.files.external_remove(&c, "a.md");
    match s.repo.read_content(&c, &key("a.md")).await {
        Err(RepoError::ContentRead { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{source}"),
        other => panic!("expected ContentRead(NotFound), got {:?}", other.map(|(m, _)| m)),
    }
}

#[tokio::test]
async fn a_read_only_folder_fails_puts_with_read_only() {
    let s = Store::new(Arc::new(ManualClock::at_2024()));
    let c = repo::create(&*s.repo, "notes").await;
    s.files.set_read_only(&c, true);
    match s.repo.put_batch(&c, vec![plain("a.md", "x")]).await {
        Err(RepoError::ReadOnly(msg)) => assert!(msg.contains("cannot be written"), "{msg}"),
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    assert!(s.repo.document(&c, &key("a.md")).await.is_err(), "nothing was recorded");
}

#[tokio::test]
async fn the_catalog_is_unsupported_in_sqlite_mode() {
    let r = InMemoryRepo::new(Arc::new(ManualClock::at_2024()));
    let c = repo::create(&r, "notes").await;
    assert!(matches!(r.catalog(&c).await, Err(RepoError::Unsupported(_))));
    assert!(matches!(r.apply_changes(&c, vec![]).await, Err(RepoError::Unsupported(_))));
    assert_eq!(r.recover().await.expect("recover"), 0);
}

#[tokio::test]
async fn an_external_edit_is_what_the_catalog_does_not_know() {
    let s = Store::new(Arc::new(ManualClock::at_2024()));
    let c = repo::create(&*s.repo, "notes").await;
    repo::put_one(&*s.repo, &c, plain("a.md", "one")).await;
    let recorded = s.repo.catalog(&c).await.expect("catalog")[0].stat;
    let now = edit(&*s.files, &c, "a.md", b"two").await;
    assert_ne!(recorded, Some(now));
    assert_eq!(s.repo.catalog(&c).await.expect("catalog")[0].stat, recorded, "the catalog keeps what it recorded");
}

/// A scenario missing from the macro's list would silently never run against any backend.
#[test]
fn every_catalog_scenario_is_listed_in_the_macro() {
    crate::fake_queue::assert_lists_every_scenario(
        include_str!("../../src/catalog.rs"),
        "(f: &dyn CatalogFixture)",
        "catalog_conformance",
        12,
    );
}
