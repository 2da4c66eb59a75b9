//! The filesystem mode as the store composes it: `SqliteRepo` with its content in real files (`FsDocumentFiles`),
//! through the same `CollectionRepo`, `SyncStore` and `FileCatalog` conformance suites as every other backend.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{CollectionRepo, DocumentFiles, FileCatalog, JobQueue, SyncStore};
use colstore_domain::{CollectionName, DocKey};
use colstore_fs::FsDocumentFiles;
use colstore_sqlite::{SqliteOptions, SqliteRepo};
use colstore_testkit::ManualClock;
use colstore_testkit::catalog::CatalogFixture;
use colstore_testkit::repo::RepoFixture;
use colstore_testkit::sync::SyncFixture;

/// A filesystem-mode store on disk: the database and the documents' folders in one temporary folder.
struct Store {
    _dir: tempfile::TempDir,
    docs: PathBuf,
    repo: SqliteRepo,
    files: Arc<FsDocumentFiles>,
    clock: Arc<ManualClock>,
}

async fn store(clock: Arc<ManualClock>) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    let files = Arc::new(FsDocumentFiles::new(docs.clone()));
    let options = SqliteOptions { create: true, ..SqliteOptions::default() };
    let repo = SqliteRepo::open_with_files(&dir.path().join("colstore.db"), options, clock.clone(), files.clone())
        .await
        .expect("open in filesystem mode");
    Store { _dir: dir, docs, repo, files, clock }
}

impl Store {
    /// Writes a file behind the store's back, as an editor would (a new file renamed over the old one).
    fn write_behind(&self, collection: &CollectionName, path: &str, bytes: &[u8]) {
        let target = self.docs.join(collection.as_str()).join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let tmp = target.with_extension("edit-tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &target).unwrap();
    }
}

#[async_trait]
impl RepoFixture for Store {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        Arc::new(self.repo.clone())
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    async fn corrupt(&self, collection: &CollectionName, key: &DocKey) {
        let path = self.docs.join(collection.as_str()).join(key.as_str());
        let mut bytes = std::fs::read(&path).expect("the document's file");
        match bytes.first_mut() {
            Some(b) => *b ^= 0xff,
            None => bytes.push(b'x'),
        }
        std::fs::write(&path, bytes).unwrap();
    }
}

impl SyncFixture for Store {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        Arc::new(self.repo.clone())
    }

    fn sync(&self) -> Arc<dyn SyncStore> {
        Arc::new(self.repo.clone())
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    fn jobs(&self) -> Arc<dyn JobQueue> {
        Arc::new(self.repo.clone())
    }
}

#[async_trait]
impl CatalogFixture for Store {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        Arc::new(self.repo.clone())
    }

    fn catalog(&self) -> Arc<dyn FileCatalog> {
        Arc::new(self.repo.clone())
    }

    fn sync(&self) -> Arc<dyn SyncStore> {
        Arc::new(self.repo.clone())
    }

    fn files(&self) -> Arc<dyn DocumentFiles> {
        self.files.clone()
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    async fn write_behind(&self, collection: &CollectionName, path: &str, bytes: &[u8]) {
        Store::write_behind(self, collection, path, bytes);
    }

    fn jobs(&self) -> Arc<dyn JobQueue> {
        Arc::new(self.repo.clone())
    }
}

async fn repo_fixture(clock: Arc<ManualClock>) -> Box<dyn RepoFixture> {
    Box::new(store(clock).await)
}

async fn sync_fixture(clock: Arc<ManualClock>) -> Box<dyn SyncFixture> {
    Box::new(store(clock).await)
}

async fn catalog_fixture(clock: Arc<ManualClock>) -> Box<dyn CatalogFixture> {
    Box::new(store(clock).await)
}

mod filesystem_repo {
    colstore_testkit::repo_conformance!(super::repo_fixture);
}

mod filesystem_sync {
    colstore_testkit::sync_conformance!(super::sync_fixture);
}

mod filesystem_catalog {
    colstore_testkit::catalog_conformance!(super::catalog_fixture);
}
