//! The filesystem storage mode: `SqliteRepo::open_with_files` over `InMemoryFiles` runs the shared `CollectionRepo`
//! and `SyncStore` suites, plus what only this mode promises: the crash windows of the write protocol (stopped by
//! making `commit` or `remove` fail, which leaves exactly what a kill -9 at that step leaves), reads and `verify` of
//! files changed behind the store's back, reconciliation's `FileCatalog`, and the conversions between the modes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{
    Clock, CollectionRepo, DocumentFiles, FileCatalog, FileChange, FileStat, FilesError, JobFilter, JobQueue, Projection, RepoError,
    STAGING_PREFIX, Scan, StagedFile, SyncState, SyncStore, VerifyEvent,
};
use colstore_domain::{
    CollectionName, CollectionSettings, CollectionSpec, Content, ContentHash, ContentStream, DocKey, DocumentMeta, ListQuery, Metadata,
    NewDocument, PutStatus, Tags,
};
use colstore_sqlite::{SqliteOptions, SqliteRepo};
use colstore_testkit::catalog::CatalogFixture;
use colstore_testkit::repo::RepoFixture;
use colstore_testkit::sync::SyncFixture;
use colstore_testkit::{InMemoryFiles, ManualClock};
use futures::StreamExt;
use sqlx::{ConnectOptions, Connection};

use crate::{doc, name, raw};

/// `InMemoryFiles` with its staged files readable by their token (`open`, `stat`, `hash`), as they are in a real
/// folder, and switches that make `commit` or `remove` fail: stopping the write protocol right after its transaction
/// leaves what a crash at that point leaves.
struct Files {
    inner: InMemoryFiles,
    staged: Mutex<HashMap<(String, String), (Bytes, FileStat)>>,
    clock: Arc<ManualClock>,
    fail_commits: AtomicBool,
    fail_removes: AtomicBool,
    stages: std::sync::atomic::AtomicU64,
    /// Run (once) at the start of the next stage: another writer acting in the middle of a put.
    before_stage: Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

impl Files {
    fn new(clock: Arc<ManualClock>) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemoryFiles::new(),
            staged: Mutex::new(HashMap::new()),
            clock,
            fail_commits: AtomicBool::new(false),
            fail_removes: AtomicBool::new(false),
            stages: std::sync::atomic::AtomicU64::new(0),
            before_stage: Mutex::new(None),
        })
    }

    fn crash_before_commits(&self, on: bool) {
        self.fail_commits.store(on, Ordering::SeqCst);
    }

    fn crash_before_removes(&self, on: bool) {
        self.fail_removes.store(on, Ordering::SeqCst);
    }

    fn staged_file(&self, collection: &CollectionName, token: &str) -> Option<(Bytes, FileStat)> {
        self.staged.lock().unwrap().get(&(collection.to_string(), token.to_owned())).cloned()
    }

    fn crash(path: &str) -> FilesError {
        FilesError::Io { path: path.to_owned(), source: std::io::Error::other("the process was killed (simulated)") }
    }
}

#[async_trait]
impl DocumentFiles for Files {
    fn location(&self, collection: &CollectionName) -> String {
        self.inner.location(collection)
    }

    async fn create_root(&self, collection: &CollectionName) -> Result<(), FilesError> {
        self.inner.create_root(collection).await
    }

    async fn stage(&self, collection: &CollectionName, mut content: ContentStream) -> Result<StagedFile, FilesError> {
        self.stages.fetch_add(1, Ordering::SeqCst);
        let hook = self.before_stage.lock().unwrap().take();
        if let Some(hook) = hook {
            hook.await;
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = content.next().await {
            buf.extend_from_slice(&chunk.map_err(FilesError::ContentRead)?);
        }
        let bytes = buf.freeze();
        let staged = self.inner.stage(collection, futures::stream::iter([Ok(bytes.clone())]).boxed()).await?;
        let stat = FileStat { size: staged.size, mtime_ns: self.clock.now().as_millis() * 1_000_000, inode: 0 };
        self.staged.lock().unwrap().insert((collection.to_string(), staged.token.clone()), (bytes, stat));
        Ok(staged)
    }

    async fn commit(&self, collection: &CollectionName, staged: &StagedFile, key: &DocKey) -> Result<FileStat, FilesError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(Self::crash(key.as_str()));
        }
        let stat = self.inner.commit(collection, staged, key).await?;
        self.staged.lock().unwrap().remove(&(collection.to_string(), staged.token.clone()));
        Ok(stat)
    }

    async fn discard(&self, collection: &CollectionName, token: &str) -> Result<(), FilesError> {
        self.inner.discard(collection, token).await?;
        self.staged.lock().unwrap().remove(&(collection.to_string(), token.to_owned()));
        Ok(())
    }

    async fn leftovers(&self, collection: &CollectionName) -> Result<Vec<String>, FilesError> {
        self.inner.leftovers(collection).await
    }

    async fn remove(&self, collection: &CollectionName, path: &str) -> Result<(), FilesError> {
        if self.fail_removes.load(Ordering::SeqCst) {
            return Err(Self::crash(path));
        }
        self.inner.remove(collection, path).await
    }

    async fn stat(&self, collection: &CollectionName, path: &str) -> Result<Option<FileStat>, FilesError> {
        if path.starts_with(STAGING_PREFIX) {
            return Ok(self.staged_file(collection, path).map(|(_, stat)| stat));
        }
        self.inner.stat(collection, path).await
    }

    async fn open(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentStream), FilesError> {
        if path.starts_with(STAGING_PREFIX) {
            let (bytes, stat) = self.staged_file(collection, path).ok_or_else(|| FilesError::NotFound { path: path.to_owned() })?;
            // In 64 KiB pieces, as the real files and InMemoryFiles read.
            let pieces: Vec<Result<Bytes, std::io::Error>> =
                (0..bytes.len()).step_by(64 * 1024).map(|at| Ok(bytes.slice(at..(at + 64 * 1024).min(bytes.len())))).collect();
            return Ok((stat, futures::stream::iter(pieces).boxed()));
        }
        self.inner.open(collection, path).await
    }

    async fn hash(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentHash, u64), FilesError> {
        if path.starts_with(STAGING_PREFIX) {
            let (bytes, stat) = self.staged_file(collection, path).ok_or_else(|| FilesError::NotFound { path: path.to_owned() })?;
            return Ok((stat, ContentHash::of(&bytes), bytes.len() as u64));
        }
        self.inner.hash(collection, path).await
    }

    async fn scan(&self, collection: &CollectionName) -> Result<Scan, FilesError> {
        self.inner.scan(collection).await
    }

    async fn remove_root(&self, collection: &CollectionName) -> Result<(), FilesError> {
        self.inner.remove_root(collection).await
    }
}

/// A filesystem-mode store: the database in a temporary folder, the documents in memory.
struct Store {
    _dir: tempfile::TempDir,
    path: PathBuf,
    repo: SqliteRepo,
    files: Arc<Files>,
    clock: Arc<ManualClock>,
}

async fn open_fs(path: &Path, clock: Arc<ManualClock>, files: Arc<Files>) -> SqliteRepo {
    SqliteRepo::open_with_files(path, SqliteOptions { create: true, ..SqliteOptions::default() }, clock, files)
        .await
        .expect("open in filesystem mode")
}

async fn store(clock: Arc<ManualClock>) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colstore.db");
    let files = Files::new(clock.clone());
    let repo = open_fs(&path, clock.clone(), files.clone()).await;
    Store { _dir: dir, path, repo, files, clock }
}

async fn store_with(collection: &str) -> (Store, CollectionName) {
    let s = store(Arc::new(ManualClock::at_2024())).await;
    let c = name(collection);
    s.repo.create_collection(CollectionSpec { name: c.clone(), settings: CollectionSettings::default() }).await.unwrap();
    (s, c)
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
        // An edit behind the store's back: same length, first byte flipped (an empty file gets one byte).
        let mut bytes = self.files.inner.contents(collection, key.as_str()).expect("the document's file").to_vec();
        match bytes.first_mut() {
            Some(b) => *b ^= 0xff,
            None => bytes.push(b'x'),
        }
        self.files.inner.external_write(collection, key.as_str(), bytes);
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
        self.files.inner.external_write(collection, path, Bytes::copy_from_slice(bytes));
    }

    fn jobs(&self) -> Arc<dyn JobQueue> {
        Arc::new(self.repo.clone())
    }
}

impl colstore_testkit::text::TextFixture for Store {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        Arc::new(self.repo.clone())
    }

    fn text(&self) -> Arc<dyn colstore_domain::ports::TextIndex> {
        Arc::new(self.repo.clone())
    }
    fn indexes_on_write(&self) -> bool {
        false
    }
}

async fn text_fixture(clock: Arc<ManualClock>) -> Box<dyn colstore_testkit::text::TextFixture> {
    Box::new(store(clock).await)
}

mod filesystem_text {
    colstore_testkit::text_conformance!(super::text_fixture);
}

async fn repo_fixture(clock: Arc<ManualClock>) -> Box<dyn RepoFixture> {
    Box::new(store(clock).await)
}

async fn sync_fixture(clock: Arc<ManualClock>) -> Box<dyn SyncFixture> {
    Box::new(store(clock).await)
}

mod filesystem_repo {
    colstore_testkit::repo_conformance!(super::repo_fixture);
}

mod filesystem_sync {
    colstore_testkit::sync_conformance!(super::sync_fixture);
}

async fn catalog_fixture(clock: Arc<ManualClock>) -> Box<dyn CatalogFixture> {
    Box::new(store(clock).await)
}

mod filesystem_catalog {
    colstore_testkit::catalog_conformance!(super::catalog_fixture);
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

fn key(s: &str) -> DocKey {
    DocKey::parse(s).unwrap()
}

fn with_meta(k: &str, text: &str, meta: &str, tags: &[&str]) -> NewDocument {
    NewDocument {
        key: key(k),
        content: Content::Bytes(Bytes::from(text.to_owned())),
        metadata: Metadata::parse_json(meta).unwrap(),
        tags: Tags::parse_all(tags).unwrap(),
    }
}

async fn read(repo: &SqliteRepo, c: &CollectionName, k: &str) -> Vec<u8> {
    let (_, mut s) = repo.read_content(c, &key(k)).await.unwrap_or_else(|e| panic!("read {k}: {e}"));
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("read {k}: {e}")));
    }
    out
}

/// Checked documents and the corrupt ones as (key, problem, actual).
async fn verify(repo: &SqliteRepo) -> (u64, Vec<(String, String, Option<ContentHash>)>) {
    let mut checked = 0;
    let mut corrupt = Vec::new();
    let mut events = repo.verify(None).await.unwrap();
    while let Some(ev) = events.next().await {
        match ev.unwrap() {
            VerifyEvent::Checked { documents, .. } => checked += documents,
            VerifyEvent::Corrupt(c) => corrupt.push((c.key.to_string(), c.problem, c.actual)),
        }
    }
    corrupt.sort();
    (checked, corrupt)
}

async fn intents(path: &Path) -> Vec<(String, String)> {
    let mut conn = raw(path).await;
    let rows = sqlx::query_as("SELECT key, op FROM file_writes ORDER BY id").fetch_all(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    rows
}

async fn all_documents(repo: &SqliteRepo) -> Vec<DocumentMeta> {
    let mut out = Vec::new();
    for c in repo.list_collections().await.unwrap() {
        out.extend(repo.list_documents(&c.name, &ListQuery::default()).await.unwrap().items);
    }
    out
}

/// The stat of a file (the fake answers at once, so no runtime is needed).
fn stat_of(files: &Files, c: &CollectionName, path: &str) -> FileStat {
    use futures::FutureExt;
    files.inner.stat(c, path).now_or_never().expect("the fake answers at once").unwrap().unwrap_or_else(|| panic!("no file {path}"))
}

// ---------------------------------------------------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn capabilities_and_catalog_follow_the_mode() {
    let (s, c) = store_with("c").await;
    assert!(s.repo.is_filesystem_mode());
    let caps = s.repo.capabilities();
    assert_eq!((caps.content_addressed, caps.compression, caps.external_edits), (false, false, true));
    assert!(s.files.inner.root_exists(&c), "creating a collection creates its folder");

    let (_dir, _path, sqlite) = crate::setup().await;
    assert!(!sqlite.is_filesystem_mode());
    assert!(sqlite.capabilities().content_addressed);
    assert!(matches!(sqlite.catalog(&name("c")).await, Err(RepoError::Unsupported(_))));
    assert!(matches!(sqlite.apply_changes(&name("c"), vec![]).await, Err(RepoError::Unsupported(_))));
    assert_eq!(sqlite.recover().await.unwrap(), 0, "nothing to recover in sqlite mode");
}

/// A repeated put of in-memory content that is already the document's writes no file (no staging, no fsync); a
/// metadata change with the same content keeps the file; a changed content is staged and written.
#[tokio::test]
async fn unchanged_in_memory_content_is_not_staged_again() {
    let (s, c) = store_with("c").await;
    let stages = || s.files.stages.load(Ordering::SeqCst);
    s.repo.put_batch(&c, vec![doc("a.md", "alpha"), doc("b.md", "beta")]).await.unwrap();
    assert_eq!(stages(), 2);
    let stat = stat_of(&s.files, &c, "a.md");

    let out = s.repo.put_batch(&c, vec![doc("a.md", "alpha"), doc("b.md", "beta")]).await.unwrap();
    assert!(out.iter().all(|o| o.status == PutStatus::Unchanged), "{out:?}");
    assert_eq!(stages(), 2, "nothing staged for unchanged contents");

    let out = s.repo.put_batch(&c, vec![with_meta("a.md", "alpha", r#"{"k":1}"#, &[]), doc("b.md", "beta 2")]).await.unwrap();
    assert_eq!((out[0].status, out[1].status), (PutStatus::Updated, PutStatus::Updated));
    assert_eq!(stages(), 3, "only the changed content is staged");
    assert_eq!(stat_of(&s.files, &c, "a.md"), stat, "a metadata change keeps the file");
    assert_eq!(read(&s.repo, &c, "b.md").await, b"beta 2");
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty());
}

/// A content judged unchanged before the transaction but changed by another writer meanwhile is staged late, under
/// the write lock, and written: the last put wins with its bytes on disk.
#[tokio::test]
async fn content_changed_between_the_check_and_the_transaction_is_staged_late() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "alpha")]).await.unwrap();
    let (other, c2) = (s.repo.clone(), c.clone());
    *s.files.before_stage.lock().unwrap() = Some(Box::pin(async move {
        other.put_batch(&c2, vec![doc("a.md", "changed elsewhere")]).await.unwrap();
    }));
    // a.md's content is the current one when checked; z.md is streamed, and its staging lets the other writer in.
    let streamed = NewDocument {
        key: key("z.md"),
        content: Content::Stream(futures::stream::iter([Ok(Bytes::from_static(b"zed"))]).boxed()),
        metadata: Metadata::default(),
        tags: Tags::default(),
    };
    let out = s.repo.put_batch(&c, vec![doc("a.md", "alpha"), streamed]).await.unwrap();
    assert_eq!(out[0].status, PutStatus::Updated, "{out:?}");
    assert_eq!(out[0].version, 3);
    assert_eq!(read(&s.repo, &c, "a.md").await, b"alpha");
    assert_eq!(verify(&s.repo).await.1, vec![], "every file matches its record");
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty());
}

/// The catalog is read in packed pages: more than one page comes back whole, in key order, with paths and stats.
#[tokio::test]
async fn a_catalog_of_several_pages_is_whole_and_sorted() {
    let (s, c) = store_with("c").await;
    let n = 8192 * 2 + 17;
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let docs = chunk.iter().map(|i| doc(&format!("d{}/k{i:06}", i % 3), &format!("body {i}"))).collect();
        s.repo.put_batch(&c, docs).await.unwrap();
    }
    let cat = s.repo.catalog(&c).await.unwrap();
    assert_eq!(cat.len(), n);
    assert!(cat.windows(2).all(|w| w[0].key < w[1].key), "sorted by key, no duplicates");
    let e = cat.iter().find(|e| e.key.as_str() == "d1/k000007").unwrap();
    assert_eq!((e.path.as_str(), e.content_hash, e.size), ("d1/k000007", ContentHash::of(b"body 7"), 6));
    assert_eq!(e.stat, Some(stat_of(&s.files, &c, "d1/k000007")));
}

/// Content lives in the files, never in the blobs; a metadata-only change leaves the file alone.
#[tokio::test]
async fn documents_are_files_and_metadata_stays_in_the_database() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![with_meta("notes/a.md", "alpha", r#"{"n":1}"#, &["t"]), doc("b.md", "beta")]).await.unwrap();
    assert_eq!(s.files.inner.paths(&c), ["b.md", "notes/a.md"]);
    assert_eq!(s.files.inner.contents(&c, "notes/a.md").unwrap(), "alpha");
    let mut conn = raw(&s.path).await;
    let blobs: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs").fetch_one(&mut conn).await.unwrap();
    assert_eq!(blobs, 0, "no content in the database");
    let before = stat_of(&s.files, &c, "notes/a.md");
    let out = s.repo.put_batch(&c, vec![with_meta("notes/a.md", "alpha", r#"{"n":2}"#, &["t"])]).await.unwrap();
    assert_eq!((out[0].status, out[0].version), (PutStatus::Updated, 2));
    assert_eq!(stat_of(&s.files, &c, "notes/a.md"), before, "the file was not rewritten");
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty(), "the unused staged file was discarded");
    let recorded: (i64, i64, i64) =
        sqlx::query_as("SELECT size, mtime_ns, inode FROM file_state WHERE key = 'notes/a.md'").fetch_one(&mut conn).await.unwrap();
    assert_eq!(recorded, (before.size as i64, before.mtime_ns, before.inode as i64), "the stat is on record");
    conn.close().await.unwrap();

    s.repo.delete_collection(&c).await.unwrap();
    assert!(!s.files.inner.root_exists(&c), "deleting a collection removes its files and folder");
}

/// A key cannot be a file and a folder at once: such puts fail and write nothing.
#[tokio::test]
async fn keys_that_would_be_both_a_file_and_a_folder_are_refused() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a", "file a"), doc("p/q.md", "q")]).await.unwrap();
    for batch in [vec![doc("a/b.md", "below a file")], vec![doc("p", "above a file")], vec![doc("x", "x"), doc("x/y", "y")]] {
        let keys: Vec<String> = batch.iter().map(|d| d.key.to_string()).collect();
        let r = s.repo.put_batch(&c, batch).await;
        assert!(matches!(&r, Err(RepoError::Unsupported(m)) if m.contains("both a file and a folder")), "{keys:?}: {r:?}");
    }
    assert_eq!(s.files.inner.paths(&c), ["a", "p/q.md"]);
    assert_eq!(s.repo.list_documents(&c, &ListQuery::default()).await.unwrap().total, 2);
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------------------------------
// Crash windows
// ---------------------------------------------------------------------------------------------------------------------

/// Killed after the transaction, before the rename: the write is acknowledged; reads and verify use the staged file;
/// the next open puts it in place.
#[tokio::test]
async fn a_write_stopped_after_its_transaction_is_read_from_the_staged_file_and_finished_at_open() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "old")]).await.unwrap();
    s.files.crash_before_commits(true);
    assert!(s.repo.put_batch(&c, vec![doc("a.md", "new content"), doc("b.md", "brand new")]).await.is_err());
    assert_eq!(s.files.inner.contents(&c, "a.md").unwrap(), "old", "the rename did not happen");
    assert_eq!(s.files.inner.contents(&c, "b.md"), None);
    let d = s.repo.document(&c, &key("a.md")).await.unwrap();
    assert_eq!((d.version, d.content_hash), (2, ContentHash::of(b"new content")), "the metadata is committed");
    assert_eq!(intents(&s.path).await, [("a.md".to_owned(), "put".to_owned()), ("b.md".to_owned(), "put".to_owned())]);
    assert_eq!(read(&s.repo, &c, "a.md").await, b"new content", "read from the staged file");
    assert_eq!(read(&s.repo, &c, "b.md").await, b"brand new");
    assert_eq!(verify(&s.repo).await, (2, vec![]), "the staged files verify");
    assert_eq!(s.files.inner.leftovers(&c).await.unwrap().len(), 2, "the staged files are kept");

    s.files.crash_before_commits(false);
    s.repo.close().await;
    let repo = open_fs(&s.path, s.clock.clone(), s.files.clone()).await;
    assert_eq!(s.files.inner.contents(&c, "a.md").unwrap(), "new content", "opening finished the write");
    assert_eq!(s.files.inner.contents(&c, "b.md").unwrap(), "brand new");
    assert!(intents(&s.path).await.is_empty());
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty());
    assert_eq!(verify(&repo).await, (2, vec![]));
    let entry = repo.catalog(&c).await.unwrap().into_iter().find(|e| e.key.as_str() == "a.md").unwrap();
    assert_eq!(entry.stat, Some(stat_of(&s.files, &c, "a.md")), "the new file's stat is on record");
    assert_eq!(repo.recover().await.unwrap(), 0, "recovery is idempotent");
}

/// Killed after a delete's transaction: recovery removes the file, unless someone put other content there since.
#[tokio::test]
async fn a_delete_stopped_after_its_transaction_is_finished_by_recovery_unless_the_file_changed() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "one"), doc("b.md", "two"), doc("keep.md", "three")]).await.unwrap();
    s.files.crash_before_removes(true);
    assert!(s.repo.delete_documents(&c, vec![key("a.md"), key("b.md")]).await.is_err());
    assert_eq!(s.repo.list_documents(&c, &ListQuery::default()).await.unwrap().total, 1, "the deletion is committed");
    assert_eq!(s.files.inner.paths(&c), ["a.md", "b.md", "keep.md"]);
    s.files.inner.external_write(&c, "b.md", "someone's new file");
    s.files.crash_before_removes(false);
    assert_eq!(s.repo.recover().await.unwrap(), 1, "one file removed");
    assert_eq!(s.files.inner.paths(&c), ["b.md", "keep.md"], "a new file at a deleted key stays");
    assert_eq!(s.files.inner.contents(&c, "b.md").unwrap(), "someone's new file");
    assert!(intents(&s.path).await.is_empty());
}

/// Killed between staging and the transaction: nothing is on record; the staged file is discarded once old enough to
/// be no live writer's.
#[tokio::test]
async fn a_crash_before_the_transaction_leaves_a_staged_file_that_recovery_discards_once_old() {
    let (s, c) = store_with("c").await;
    let staged = s.files.stage(&c, futures::stream::iter([Ok(Bytes::from_static(b"orphan"))]).boxed()).await.unwrap();
    assert_eq!(s.repo.recover().await.unwrap(), 0);
    assert_eq!(
        s.files.inner.leftovers(&c).await.unwrap(),
        std::slice::from_ref(&staged.token),
        "a young staged file may be a live writer's"
    );
    s.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(s.repo.recover().await.unwrap(), 0, "discarding leftovers finishes no write");
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty(), "an old one is discarded");
}

/// A later write of the same key replaces an unfinished one: its file wins, and the older staged file is a leftover.
#[tokio::test]
async fn a_later_write_replaces_an_unfinished_one() {
    let (s, c) = store_with("c").await;
    s.files.crash_before_commits(true);
    assert!(s.repo.put_batch(&c, vec![doc("a.md", "first")]).await.is_err());
    s.files.crash_before_commits(false);
    let out = s.repo.put_batch(&c, vec![doc("a.md", "second")]).await.unwrap();
    assert_eq!((out[0].status, out[0].version), (PutStatus::Updated, 2));
    assert_eq!(s.files.inner.contents(&c, "a.md").unwrap(), "second");
    assert!(intents(&s.path).await.is_empty());
    assert_eq!(s.repo.recover().await.unwrap(), 0, "the replaced write is not finished");
    assert_eq!(s.files.inner.contents(&c, "a.md").unwrap(), "second");
    assert_eq!(s.files.inner.leftovers(&c).await.unwrap().len(), 1);
    s.clock.advance(Duration::from_secs(2 * 3600));
    s.repo.recover().await.unwrap();
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty());
    assert_eq!(verify(&s.repo).await, (1, vec![]));
}

/// A deleted collection whose removals were interrupted loses its files and folder at recovery.
#[tokio::test]
async fn a_collection_delete_stopped_after_its_transaction_is_finished_by_recovery() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "one"), doc("sub/b.md", "two")]).await.unwrap();
    s.files.crash_before_removes(true);
    assert!(s.repo.delete_collection(&c).await.is_err());
    assert!(matches!(s.repo.collection(&c).await, Err(RepoError::CollectionNotFound(_))));
    s.files.crash_before_removes(false);
    assert_eq!(s.repo.recover().await.unwrap(), 2);
    assert!(!s.files.inner.root_exists(&c), "the empty folder went too");
}

// ---------------------------------------------------------------------------------------------------------------------
// Files changed behind the store's back
// ---------------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn reads_and_verify_report_files_changed_outside_colstore() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "alpha"), doc("b.md", "beta"), doc("d.md", "delta")]).await.unwrap();
    s.files.inner.external_write(&c, "b.md", "BETA!");
    s.files.inner.external_remove(&c, "d.md");
    assert_eq!(read(&s.repo, &c, "a.md").await, b"alpha");

    let (_, stream) = s.repo.read_content(&c, &key("b.md")).await.unwrap();
    let items: Vec<_> = stream.collect().await;
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert!(colstore_domain::ContentChanged::of(last).is_some(), "{last}");
    assert!(last.to_string().contains("changed outside colstore"), "{last}");

    // A file that is gone is a failed read of the stale record (NotFound), not corruption; no hint in the adapter.
    match s.repo.read_content(&c, &key("d.md")).await {
        Err(RepoError::ContentRead { key, source }) => {
            assert_eq!(key.as_str(), "d.md");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{source}");
            assert!(source.to_string().contains("d.md is missing") && !source.to_string().contains("col "), "{source}");
        }
        other => panic!("expected ContentRead, got {:?}", other.map(|(m, _)| m)),
    }

    let (checked, corrupt) = verify(&s.repo).await;
    assert_eq!(checked, 1);
    assert_eq!(corrupt.len(), 2);
    assert_eq!(corrupt[0].0, "b.md");
    assert!(corrupt[0].1.contains("changed outside colstore since the last reconcile"), "{}", corrupt[0].1);
    assert_eq!(corrupt[0].2, Some(ContentHash::of(b"BETA!")));
    assert_eq!((corrupt[1].0.as_str(), corrupt[1].2), ("d.md", None));
    assert!(corrupt[1].1.contains("missing"), "{}", corrupt[1].1);
    assert!(corrupt.iter().all(|c| !c.1.contains("col ")), "hints are the CLI's: {corrupt:?}");
}

/// A snapshot shows one moment: contents that this process's writes replace or remove while it is open are kept for
/// it (and discarded with it); a file changed by anyone else fails clearly, never silently.
#[tokio::test]
async fn a_snapshot_keeps_displaced_contents_and_refuses_files_changed_elsewhere() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "one"), doc("b.md", "two"), doc("e.md", "three")]).await.unwrap();
    let snap = s.repo.snapshot().await.unwrap();
    s.repo.put_batch(&c, vec![doc("a.md", "changed")]).await.unwrap();
    s.repo.delete_documents(&c, vec![key("b.md")]).await.unwrap();
    s.files.inner.external_write(&c, "e.md", "edited elsewhere");
    assert_eq!(snap.content(&ContentHash::of(b"one")).await.unwrap(), "one", "replaced after the snapshot");
    assert_eq!(snap.content(&ContentHash::of(b"two")).await.unwrap(), "two", "removed after the snapshot");
    match snap.content(&ContentHash::of(b"three")).await {
        Err(RepoError::ContentRead { key, source }) => {
            assert_eq!(key.as_str(), "e.md");
            assert_eq!(colstore_domain::ContentChanged::of(&source).map(|c| c.key.as_str()), Some("e.md"), "{source}");
        }
        other => panic!("expected ContentRead(ContentChanged), got {other:?}"),
    }
    assert_eq!(s.files.inner.leftovers(&c).await.unwrap().len(), 2, "the two copies");
    s.clock.advance(Duration::from_secs(2 * 3600));
    s.repo.recover().await.unwrap();
    assert_eq!(s.files.inner.leftovers(&c).await.unwrap().len(), 2, "a recovery leaves an open snapshot's copies alone");
    drop(snap);
    for _ in 0..200 {
        if s.files.inner.leftovers(&c).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty(), "the copies go with the snapshot");
    s.repo.put_batch(&c, vec![doc("a.md", "again")]).await.unwrap();
    assert!(s.files.inner.leftovers(&c).await.unwrap().is_empty(), "without a snapshot nothing is copied");
}

// ---------------------------------------------------------------------------------------------------------------------
// FileCatalog
// ---------------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn apply_changes_updates_documents_ledger_and_file_state() {
    let (s, c) = store_with("c").await;
    s.repo
        .put_batch(
            &c,
            vec![
                with_meta("a.md", "alpha", r#"{"x":1}"#, &["t"]),
                doc("b.md", "beta"),
                doc("c.md", "gamma"),
                doc("e.md", "epsilon"),
                doc("f.md", "phi"),
            ],
        )
        .await
        .unwrap();
    let a = s.repo.document(&c, &key("a.md")).await.unwrap();
    let catalog = s.repo.catalog(&c).await.unwrap();
    assert_eq!(catalog.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["a.md", "b.md", "c.md", "e.md", "f.md"]);
    assert!(catalog.iter().all(|e| e.path == e.key.as_str() && e.stat == Some(stat_of(&s.files, &c, &e.path))), "{catalog:?}");
    let projected = Projection { content_hash: ContentHash::of(b"alpha"), chunk_count: 1 };
    assert!(s.repo.mark_synced(&c, &key("a.md"), Some(projected.content_hash), Some(projected)).await.unwrap());
    for k in ["b.md", "c.md", "e.md", "f.md"] {
        s.repo.mark_synced(&c, &key(k), s.repo.document(&c, &key(k)).await.ok().map(|d| d.content_hash), None).await.unwrap();
    }

    // What people did meanwhile.
    let f = &s.files.inner;
    f.external_rename(&c, "a.md", "moved/a.md");
    f.external_write(&c, "b.md", "beta 2");
    f.external_remove(&c, "c.md");
    f.external_write(&c, "d.md", "delta");
    f.touch(&c, "e.md");
    s.clock.advance(Duration::from_secs(3600));
    let changes = vec![
        FileChange::Added {
            key: key("b.md"),
            path: "b.md".into(),
            hash: ContentHash::of(b"x"),
            size: 1,
            stat: stat_of(&s.files, &c, "b.md"),
        },
        FileChange::Added {
            key: key("d.md"),
            path: "d.md".into(),
            hash: ContentHash::of(b"delta"),
            size: 5,
            stat: stat_of(&s.files, &c, "d.md"),
        },
        FileChange::Modified {
            key: key("b.md"),
            path: "b.md".into(),
            expected: ContentHash::of(b"beta"),
            hash: ContentHash::of(b"beta 2"),
            size: 6,
            stat: stat_of(&s.files, &c, "b.md"),
        },
        FileChange::Deleted { key: key("c.md"), expected: ContentHash::of(b"gamma") },
        FileChange::Touched {
            key: key("e.md"),
            path: "e.md".into(),
            expected: ContentHash::of(b"epsilon"),
            stat: stat_of(&s.files, &c, "e.md"),
        },
        FileChange::Modified {
            key: key("f.md"),
            path: "f.md".into(),
            expected: ContentHash::of(b"not what is on record"),
            hash: ContentHash::of(b"x"),
            size: 1,
            stat: stat_of(&s.files, &c, "f.md"),
        },
        FileChange::Renamed {
            from: key("a.md"),
            to: key("moved/a.md"),
            path: "moved/a.md".into(),
            expected: ContentHash::of(b"alpha"),
            stat: stat_of(&s.files, &c, "moved/a.md"),
        },
    ];
    let report = s.repo.apply_changes(&c, changes).await.unwrap();
    assert_eq!(report.applied, 5);
    assert_eq!(report.conflicts, [key("b.md"), key("f.md")], "an added key that exists, a stale expected hash");

    let moved = s.repo.document(&c, &key("moved/a.md")).await.unwrap();
    assert_eq!(
        (&moved.metadata, &moved.tags, moved.version, moved.created_at, moved.content_hash),
        (&a.metadata, &a.tags, a.version, a.created_at, a.content_hash),
        "a rename keeps metadata, tags, version and creation time"
    );
    assert_eq!(moved.updated_at, s.clock.now(), "and sets the update time");
    assert!(matches!(s.repo.document(&c, &key("a.md")).await, Err(RepoError::DocumentNotFound { .. })));
    let b = s.repo.document(&c, &key("b.md")).await.unwrap();
    assert_eq!((b.version, b.content_hash, b.size), (2, ContentHash::of(b"beta 2"), 6));
    assert!(matches!(s.repo.document(&c, &key("c.md")).await, Err(RepoError::DocumentNotFound { .. })));
    let d = s.repo.document(&c, &key("d.md")).await.unwrap();
    assert_eq!((d.version, d.metadata.to_json(), d.tags.to_json(), d.created_at), (1, "{}".to_owned(), "[]".to_owned(), s.clock.now()));
    assert_eq!(s.repo.document(&c, &key("e.md")).await.unwrap().version, 1, "a touch changes no document");

    let ledger: Vec<_> =
        s.repo.ledger(&c, None, 100).await.unwrap().into_iter().map(|e| (e.key.to_string(), e.state, e.projected)).collect();
    assert_eq!(
        ledger,
        [
            ("a.md".to_owned(), SyncState::Pending, Some(projected)),
            ("b.md".to_owned(), SyncState::Pending, None),
            ("d.md".to_owned(), SyncState::Pending, None),
            ("e.md".to_owned(), SyncState::Synced, None),
            ("f.md".to_owned(), SyncState::Synced, None),
            ("moved/a.md".to_owned(), SyncState::Pending, None),
        ],
        "the old key is a pending deletion of its projection, the new one pending; c.md had nothing projected and left"
    );
    let jobs = s.repo.list(JobFilter::default()).await.unwrap();
    assert!(jobs.iter().any(|j| j.spec.dedup_key.as_deref() == Some("sync:c") && j.state == colstore_domain::ports::JobState::Pending));

    let catalog = s.repo.catalog(&c).await.unwrap();
    for e in &catalog {
        assert_eq!(e.stat, Some(stat_of(&s.files, &c, &e.path)), "{}: the stat on record is the file's", e.key);
    }
    assert_eq!(verify(&s.repo).await, (5, vec![]), "the metadata matches the files again");
}

/// Changes to a key with an unfinished write of colstore's own, or deleting a document whose file is back, conflict.
#[tokio::test]
async fn apply_changes_leaves_files_that_colstore_is_writing_alone() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "old"), doc("b.md", "bee")]).await.unwrap();
    s.files.crash_before_commits(true);
    assert!(s.repo.put_batch(&c, vec![doc("a.md", "new")]).await.is_err());
    let stale = FileChange::Modified {
        key: key("a.md"),
        path: "a.md".into(),
        expected: ContentHash::of(b"new"),
        hash: ContentHash::of(b"old"),
        size: 3,
        stat: stat_of(&s.files, &c, "a.md"),
    };
    let gone_but_back = FileChange::Deleted { key: key("b.md"), expected: ContentHash::of(b"bee") };
    let report = s.repo.apply_changes(&c, vec![stale, gone_but_back]).await.unwrap();
    assert_eq!((report.applied, report.conflicts), (0, vec![key("b.md"), key("a.md")]));
    s.files.crash_before_commits(false);
    s.repo.recover().await.unwrap();
    assert_eq!(read(&s.repo, &c, "a.md").await, b"new");
}

/// A file whose name is in another Unicode form than its key is read from there, and replaced by a file at the key.
#[tokio::test]
async fn a_file_under_another_unicode_form_is_read_and_replaced() {
    let (s, c) = store_with("c").await;
    let nfd = "cafe\u{301}.md";
    let nfc = "caf\u{e9}.md";
    s.files.inner.external_write(&c, nfd, "from a mac");
    let stat = stat_of(&s.files, &c, nfd);
    let added = FileChange::Added { key: key(nfd), path: nfd.into(), hash: ContentHash::of(b"from a mac"), size: 10, stat };
    assert_eq!(s.repo.apply_changes(&c, vec![added]).await.unwrap().applied, 1);
    let entry = &s.repo.catalog(&c).await.unwrap()[0];
    assert_eq!((entry.key.as_str(), entry.path.as_str(), entry.stat), (nfc, nfd, Some(stat)));
    assert_eq!(read(&s.repo, &c, nfc).await, b"from a mac");
    assert_eq!(verify(&s.repo).await, (1, vec![]));

    s.repo.put_batch(&c, vec![doc(nfc, "rewritten")]).await.unwrap();
    assert_eq!(s.files.inner.paths(&c), [nfc], "the file moved to the key's form");
    assert_eq!(s.repo.catalog(&c).await.unwrap()[0].path, nfc);
    assert_eq!(read(&s.repo, &c, nfc).await, b"rewritten");
}

// ---------------------------------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------------------------------

fn big(seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..2_500_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// sqlite → files → sqlite keeps every key, hash, metadata field and time; each direction can run twice; gc in
/// filesystem mode removes the blobs left behind.
#[tokio::test]
async fn contents_round_trip_between_the_modes() {
    let clock = Arc::new(ManualClock::at_2024());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colstore.db");
    let sqlite = crate::open(&path, clock.clone()).await;
    for n in ["one", "two", "empty"] {
        sqlite.create_collection(CollectionSpec { name: name(n), settings: CollectionSettings::default() }).await.unwrap();
    }
    let large = big(1);
    sqlite
        .put_batch(
            &name("one"),
            vec![
                with_meta("a.md", "shared", r#"{"k":[1,2]}"#, &["x", "y"]),
                doc("deep/er/b.md", "bee"),
                doc("empty.txt", ""),
                NewDocument {
                    key: key("large.bin"),
                    content: Content::Stream(
                        futures::stream::iter(large.chunks(100_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect::<Vec<_>>()).boxed(),
                    ),
                    metadata: Metadata::default(),
                    tags: Tags::default(),
                },
            ],
        )
        .await
        .unwrap();
    sqlite.put_batch(&name("two"), vec![doc("a.md", "shared"), doc("gone.md", "soon garbage")]).await.unwrap();
    sqlite.delete_documents(&name("two"), vec![key("gone.md")]).await.unwrap();
    let before = all_documents(&sqlite).await;
    assert_eq!(before.len(), 5);

    let files = Files::new(clock.clone());
    let mut calls = Vec::new();
    assert_eq!(sqlite.copy_contents_to_files(&*files, &mut |d, t| calls.push((d, t))).await.unwrap(), 5);
    assert_eq!((calls.first(), calls.last()), (Some(&(0, 5)), Some(&(5, 5))));
    assert_eq!(sqlite.copy_contents_to_files(&*files, &mut |_, _| {}).await.unwrap(), 5, "it can run again");
    assert_eq!(files.inner.paths(&name("one")), ["a.md", "deep/er/b.md", "empty.txt", "large.bin"]);
    assert!(files.inner.root_exists(&name("empty")));
    sqlite.close().await;

    let fs = open_fs(&path, clock.clone(), files.clone()).await;
    assert_eq!(all_documents(&fs).await, before, "the same documents");
    assert_eq!(read(&fs, &name("one"), "large.bin").await, large);
    assert_eq!(read(&fs, &name("two"), "a.md").await, b"shared");
    assert_eq!(verify(&fs).await, (5, vec![]));
    assert!(fs.catalog(&name("one")).await.unwrap().iter().all(|e| e.stat.is_some()), "stats are on record");
    let stats = fs.stats(None).await.unwrap();
    assert_eq!((stats.documents, stats.distinct_contents, stats.stored_bytes), (5, 4, stats.logical_bytes));
    assert_eq!(stats.garbage_contents, 5, "every blob is garbage in filesystem mode (4 contents and the deleted one)");
    let gc = fs.gc(false).await.unwrap();
    assert_eq!(gc.contents_removed, 5);
    assert_eq!(fs.stats(None).await.unwrap().garbage_contents, 0);
    assert_eq!(verify(&fs).await, (5, vec![]), "gc removed nothing the files need");

    let mut calls = Vec::new();
    assert_eq!(fs.copy_contents_from_files(&*files, &mut |d, t| calls.push((d, t))).await.unwrap(), 5);
    assert_eq!(calls.last(), Some(&(5, 5)));
    assert_eq!(fs.copy_contents_from_files(&*files, &mut |_, _| {}).await.unwrap(), 5, "it can run again");
    fs.close().await;

    let back = SqliteRepo::open(&path, SqliteOptions::default(), clock.clone()).await.unwrap();
    assert_eq!(all_documents(&back).await, before, "the same documents again");
    assert_eq!(read(&back, &name("one"), "large.bin").await, large);
    assert_eq!(read(&back, &name("one"), "empty.txt").await, b"");
    assert_eq!(verify(&back).await, (5, vec![]), "every blob re-hashes");
    let mut conn = raw(&path).await;
    let mismatches: i64 =
        sqlx::query_scalar("SELECT count(*) FROM blobs b WHERE b.refcount <> (SELECT count(*) FROM documents d WHERE d.hash = b.hash)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(mismatches, 0, "reference counts are right");
    conn.close().await.unwrap();
    let stats = back.stats(None).await.unwrap();
    assert_eq!((stats.distinct_contents, stats.garbage_contents), (4, 0));
}

/// Leaving filesystem mode refuses files that do not hold their recorded content.
#[tokio::test]
async fn copying_from_files_refuses_unreconciled_files() {
    let (s, c) = store_with("c").await;
    s.repo.put_batch(&c, vec![doc("a.md", "alpha"), doc("b.md", "beta")]).await.unwrap();
    s.files.inner.external_write(&c, "b.md", "edited");
    match s.repo.copy_contents_from_files(&*s.files, &mut |_, _| {}).await {
        Err(RepoError::ContentRead { key, source }) => {
            assert_eq!(key.as_str(), "b.md");
            assert!(colstore_domain::ContentChanged::of(&source).is_some(), "{source}");
        }
        other => panic!("expected ContentRead (changed), got {other:?}"),
    }
    s.files.inner.external_remove(&c, "b.md");
    let r = s.repo.copy_contents_from_files(&*s.files, &mut |_, _| {}).await;
    assert!(
        matches!(&r, Err(RepoError::ContentRead { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && source.to_string().contains("missing")),
        "{r:?}"
    );
}

/// A store of schema version 2 migrates in sqlite mode with empty file tables, and its documents still delete
/// (the file state's foreign key has nothing to cascade).
#[tokio::test]
async fn a_version_2_store_migrates_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colstore.db");
    let v2 = dir.path().join("v2");
    std::fs::create_dir(&v2).unwrap();
    for f in ["0001_init.sql", "0002_sync.sql"] {
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(f), v2.join(f)).unwrap();
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true).connect().await.unwrap();
    sqlx::migrate::Migrator::new(v2.as_path()).await.unwrap().run(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let clock = Arc::new(ManualClock::at_2024());
    let repo = SqliteRepo::open(&path, SqliteOptions::default(), clock.clone()).await.unwrap();
    assert_eq!(repo.schema_version().await.unwrap(), 9);
    let c = name("c");
    repo.create_collection(CollectionSpec { name: c.clone(), settings: CollectionSettings::default() }).await.unwrap();
    repo.put_batch(&c, vec![doc("a.md", "alpha")]).await.unwrap();
    assert_eq!(read(&repo, &c, "a.md").await, b"alpha");
    assert_eq!(repo.delete_documents(&c, vec![key("a.md")]).await.unwrap(), [key("a.md")]);
    let mut conn = raw(&path).await;
    let (state, writes): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM file_state), (SELECT count(*) FROM file_writes)").fetch_one(&mut conn).await.unwrap();
    assert_eq!((state, writes), (0, 0));
    conn.close().await.unwrap();
}

/// The catalog cache (`catalog-cache/` beside the database) answers for the catalog only while nothing changed it:
/// after each kind of write, the catalog read with the cache in place equals the one read from the database alone,
/// and every write below does change it. A damaged cache file is ignored and rewritten.
#[tokio::test]
async fn the_catalog_cache_never_answers_for_a_changed_catalog() {
    use colstore_testkit::catalog::{added, modified, renamed, touched};
    let (s, c) = store_with("c").await;
    let cache_dir = s.path.parent().unwrap().join("catalog-cache");
    s.repo.put_batch(&c, vec![doc("a.md", "alpha"), doc("b.md", "beta"), doc("c.md", "gamma")]).await.unwrap();
    let mut before = cached_catalog(&s.repo, &c).await;
    assert!(cache_dir.join("catalog-1.bin").is_file(), "the first read writes the cache");
    assert_eq!(cached_catalog(&s.repo, &c).await, before, "read twice, the second from the cache");

    let f = &s.files.inner;
    let h = |t: &str| ContentHash::of(t.as_bytes());
    for step in ["put new", "put changed", "delete", "apply modified", "apply added", "apply renamed", "apply touched", "restore"] {
        s.clock.advance(Duration::from_secs(10));
        match step {
            "put new" => drop(s.repo.put_batch(&c, vec![doc("d.md", "delta")]).await.unwrap()),
            "put changed" => drop(s.repo.put_batch(&c, vec![doc("a.md", "alpha 2")]).await.unwrap()),
            "delete" => drop(s.repo.delete_documents(&c, vec![key("d.md")]).await.unwrap()),
            "apply modified" => {
                f.external_write(&c, "b.md", "beta 2");
                let change = modified(&*s.files, &c, "b.md", h("beta")).await;
                assert_eq!(s.repo.apply_changes(&c, vec![change]).await.unwrap().applied, 1);
            }
            "apply added" => {
                f.external_write(&c, "e.md", "epsilon");
                assert_eq!(s.repo.apply_changes(&c, vec![added(&*s.files, &c, "e.md").await]).await.unwrap().applied, 1);
            }
            "apply renamed" => {
                f.external_rename(&c, "c.md", "moved/c.md");
                let change = renamed(&*s.files, &c, "c.md", "moved/c.md", h("gamma")).await;
                assert_eq!(s.repo.apply_changes(&c, vec![change]).await.unwrap().applied, 1);
            }
            "apply touched" => {
                f.touch(&c, "e.md");
                let change = touched(&*s.files, &c, "e.md", h("epsilon")).await;
                assert_eq!(s.repo.apply_changes(&c, vec![change]).await.unwrap().applied, 1);
            }
            "restore" => {
                let mut meta = s.repo.document(&c, &key("e.md")).await.unwrap();
                meta.content_hash = h("eta");
                meta.size = 3;
                s.repo.restore_documents(&c, vec![(meta, Bytes::from_static(b"eta"))]).await.unwrap();
            }
            _ => unreachable!(),
        }
        let (cached, fresh) = cached_and_fresh(&s.repo, &c, &cache_dir).await;
        assert_eq!(cached, fresh, "after {step}, the cache answered for an old catalog");
        assert_ne!(fresh, before, "{step} changes the catalog");
        before = fresh;
    }

    // A metadata-only change leaves the catalog (and its cache) as it was.
    s.repo.put_batch(&c, vec![with_meta("a.md", "alpha 2", r#"{"x":2}"#, &["t"])]).await.unwrap();
    let (cached, fresh) = cached_and_fresh(&s.repo, &c, &cache_dir).await;
    assert_eq!((&cached, &fresh), (&before, &before));

    // A damaged cache file is ignored, and the read from the database replaces it.
    let file = cache_dir.join("catalog-1.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(cached_catalog(&s.repo, &c).await, before);
    assert_ne!(std::fs::read(&file).unwrap(), bytes, "rewritten");

    // A collection deleted and created again under the same name (and id) starts with an empty catalog, and its
    // cache file went with it.
    s.repo.delete_collection(&c).await.unwrap();
    assert!(!file.exists());
    s.repo.create_collection(CollectionSpec { name: c.clone(), settings: CollectionSettings::default() }).await.unwrap();
    assert_eq!(cached_catalog(&s.repo, &c).await, vec![]);
    s.repo.put_batch(&c, vec![doc("z.md", "zeta")]).await.unwrap();
    let (cached, fresh) = cached_and_fresh(&s.repo, &c, &cache_dir).await;
    assert_eq!(cached, fresh);
    assert_eq!(fresh.len(), 1);
}

async fn cached_catalog(repo: &SqliteRepo, c: &CollectionName) -> Vec<colstore_domain::ports::CatalogEntry> {
    repo.catalog(c).await.unwrap()
}

/// The catalog as the cache gives it, then as the database gives it (the cache folder removed first).
async fn cached_and_fresh(
    repo: &SqliteRepo,
    c: &CollectionName,
    cache_dir: &Path,
) -> (Vec<colstore_domain::ports::CatalogEntry>, Vec<colstore_domain::ports::CatalogEntry>) {
    let cached = cached_catalog(repo, c).await;
    std::fs::remove_dir_all(cache_dir).unwrap();
    let fresh = cached_catalog(repo, c).await;
    assert!(cache_dir.join("catalog-1.bin").is_file(), "a read from the database writes the cache");
    (cached, fresh)
}
