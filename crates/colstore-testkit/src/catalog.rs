//! The `FileCatalog` conformance suite: the metadata side of the filesystem mode.
//!
//! Every scenario is a plain `async fn(&dyn CatalogFixture)`; [`catalog_conformance!`](crate::catalog_conformance)
//! turns each into one `#[tokio::test]` for the store whose fixture factory it is given. Each scenario gets a fresh,
//! empty store in filesystem mode and its own [`ManualClock`].
//!
//! The scenarios play the user through the store's own [`DocumentFiles`]: writing a file with `stage` + `commit` or
//! removing one with `remove` is, for the catalog, an edit made behind its back. They then build the
//! [`FileChange`]s reconciliation would (hashing with [`DocumentFiles::hash`]) and check the documents, their
//! content, the catalog and the sync ledger after [`FileCatalog::apply_changes`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colstore_domain::ports::{
    CatalogEntry, Clock, CollectionRepo, DocumentFiles, FileCatalog, FileChange, FileStat, JobFilter, JobQueue, JobState, LedgerEntry,
    RepoError, SyncState, SyncStore,
};
use colstore_domain::{CollectionName, ContentHash, Metadata, Tags};
use futures::StreamExt;
use futures::stream;

use crate::ManualClock;
use crate::repo::{create, doc, get, key, name, plain, put, put_one, read_all};
use crate::sync::projection;

/// One fresh store in filesystem mode, seen through the ports that share it.
#[async_trait]
pub trait CatalogFixture: Send + Sync {
    /// The store's documents (empty at first). It reads time from [`CatalogFixture::clock`].
    fn repo(&self) -> Arc<dyn CollectionRepo>;

    /// The same store's file catalog.
    fn catalog(&self) -> Arc<dyn FileCatalog>;

    /// The same store's sync ledger.
    fn sync(&self) -> Arc<dyn SyncStore>;

    /// The documents' files the store writes through.
    fn files(&self) -> Arc<dyn DocumentFiles>;

    /// The clock the store uses.
    fn clock(&self) -> Arc<ManualClock>;

    /// Writes `bytes` to `path` in the collection's folder behind the store's back, as a user would (creating
    /// folders). Needed for names the port cannot write: a path in another Unicode form than its key.
    async fn write_behind(&self, collection: &CollectionName, path: &str, bytes: &[u8]);

    /// The queue the store enqueues each collection's sync job into (every store has one: enqueuing is part of
    /// the contract).
    fn jobs(&self) -> Arc<dyn JobQueue>;
}

/// Turns every scenario of the `FileCatalog` suite into a `#[tokio::test]` against one store.
///
/// `$factory` is an `async fn(Arc<ManualClock>) -> Box<dyn CatalogFixture>` that builds a fresh, empty store in
/// filesystem mode reading time from the given clock. Invoke it inside a module named after the backend. The calling
/// crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// mod sqlite_catalog {
///     colstore_testkit::catalog_conformance!(super::catalog_fixture);
/// }
/// ```
#[macro_export]
macro_rules! catalog_conformance {
    ($factory:path) => {
        $crate::catalog_conformance!(@scenarios $factory;
            catalog_lists_documents_with_their_files_sorted_by_key,
            missing_collection_is_not_found,
            empty_changes_apply_nothing,
            added_file_becomes_a_pending_document,
            modified_file_gets_a_new_version_keeping_metadata_and_tags,
            deleted_file_deletes_the_document,
            a_file_gone_behind_the_stores_back_is_a_failed_read_not_corruption,
            deletion_of_a_file_that_exists_again_is_a_conflict,
            renamed_file_keeps_the_documents_identity,
            rename_of_an_unprojected_document_leaves_no_row_for_the_old_key,
            touched_file_refreshes_only_the_stat,
            conflicts_are_skipped_and_reported_while_the_rest_applies,
            changes_of_one_call_see_each_other,
            names_in_another_unicode_form_keep_their_path,
            repository_writes_keep_the_catalog_in_step,
            apply_changes_enqueues_the_sync_job,
            recover_is_idempotent,
        );
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let clock = std::sync::Arc::new($crate::ManualClock::at_2024());
                let f = $factory(clock).await;
                $crate::catalog::$scenario(&*f).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

const HOUR: Duration = Duration::from_secs(3600);

/// Writes `bytes` at `k`'s path through the files port, behind the catalog's back; returns the new stat.
pub async fn edit(files: &dyn DocumentFiles, c: &CollectionName, k: &str, bytes: &[u8]) -> FileStat {
    let content = stream::iter([Ok(bytes::Bytes::copy_from_slice(bytes))]).boxed();
    let staged = files.stage(c, content).await.unwrap_or_else(|e| panic!("stage {k}: {e}"));
    files.commit(c, &staged, &key(k)).await.unwrap_or_else(|e| panic!("commit {k}: {e}"))
}

/// Removes the file at `path` behind the catalog's back.
pub async fn unlink(files: &dyn DocumentFiles, c: &CollectionName, path: &str) {
    files.remove(c, path).await.unwrap_or_else(|e| panic!("remove {path}: {e}"));
}

/// What reconciliation reads of a file: its stat, hash and size.
pub async fn look(files: &dyn DocumentFiles, c: &CollectionName, path: &str) -> (FileStat, ContentHash, u64) {
    files.hash(c, path).await.unwrap_or_else(|e| panic!("hash {path}: {e}"))
}

/// The `Added` change for the file at `path` (key: its NFC form).
pub async fn added(files: &dyn DocumentFiles, c: &CollectionName, path: &str) -> FileChange {
    let (stat, hash, size) = look(files, c, path).await;
    FileChange::Added { key: key(path), path: path.to_owned(), hash, size, stat }
}

/// The `Modified` change for the file at `path`, against the recorded hash `expected`.
pub async fn modified(files: &dyn DocumentFiles, c: &CollectionName, path: &str, expected: ContentHash) -> FileChange {
    let (stat, hash, size) = look(files, c, path).await;
    FileChange::Modified { key: key(path), path: path.to_owned(), expected, hash, size, stat }
}

/// The `Renamed` change of the document `from` to the file at `to`.
pub async fn renamed(files: &dyn DocumentFiles, c: &CollectionName, from: &str, to: &str, expected: ContentHash) -> FileChange {
    let (stat, _, _) = look(files, c, to).await;
    FileChange::Renamed { from: key(from), to: key(to), path: to.to_owned(), expected, stat }
}

/// The `Touched` change for the file at `path`.
pub async fn touched(files: &dyn DocumentFiles, c: &CollectionName, path: &str, expected: ContentHash) -> FileChange {
    let (stat, _, _) = look(files, c, path).await;
    FileChange::Touched { key: key(path), path: path.to_owned(), expected, stat }
}

/// The catalog, panicking on errors.
pub async fn catalog_of(catalog: &dyn FileCatalog, c: &CollectionName) -> Vec<CatalogEntry> {
    catalog.catalog(c).await.unwrap_or_else(|e| panic!("catalog: {e}"))
}

/// The catalog entry of `k`.
pub async fn entry(catalog: &dyn FileCatalog, c: &CollectionName, k: &str) -> Option<CatalogEntry> {
    catalog_of(catalog, c).await.into_iter().find(|e| e.key.as_str() == k)
}

/// The whole ledger of a collection, by key.
pub async fn ledger(sync: &dyn SyncStore, c: &CollectionName) -> Vec<LedgerEntry> {
    sync.ledger(c, None, 10_000).await.unwrap_or_else(|e| panic!("ledger: {e}"))
}

/// The ledger row of `k`.
pub async fn row(sync: &dyn SyncStore, c: &CollectionName, k: &str) -> Option<LedgerEntry> {
    ledger(sync, c).await.into_iter().find(|e| e.key.as_str() == k)
}

/// Marks `k` synced with a projection of its current content.
pub async fn project(sync: &dyn SyncStore, c: &CollectionName, k: &str, content: &str) {
    let p = projection(content, 1);
    let ok = sync.mark_synced(c, &key(k), Some(p.content_hash), Some(p)).await.unwrap_or_else(|e| panic!("mark_synced: {e}"));
    assert!(ok, "mark_synced {k}: the content on record is {content:?}");
}

/// Applies changes, panicking on errors.
pub async fn apply(catalog: &dyn FileCatalog, c: &CollectionName, changes: Vec<FileChange>) -> (u64, Vec<String>) {
    let report = catalog.apply_changes(c, changes).await.unwrap_or_else(|e| panic!("apply_changes: {e}"));
    let mut conflicts: Vec<String> = report.conflicts.iter().map(ToString::to_string).collect();
    conflicts.sort();
    (report.applied, conflicts)
}

fn h(s: &str) -> ContentHash {
    ContentHash::of(s.as_bytes())
}

fn expect_document_gone(r: Result<colstore_domain::DocumentMeta, RepoError>, k: &str) {
    match r {
        Err(RepoError::DocumentNotFound { key, .. }) => assert_eq!(key.as_str(), k),
        other => panic!("{k}: expected DocumentNotFound, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------------------------

/// The catalog lists every document sorted by key, with its hash, size, path (its key) and the stat of the file the
/// put wrote.
pub async fn catalog_lists_documents_with_their_files_sorted_by_key(f: &dyn CatalogFixture) {
    let (repo, catalog, files) = (f.repo(), f.catalog(), f.files());
    let c = create(&*repo, "notes").await;
    assert!(catalog_of(&*catalog, &c).await.is_empty(), "a new collection has an empty catalog");
    let keys = ["zeta.md", "a/b/c.md", "B.md", "a.md", "\u{e9}t\u{e9}.md", "empty.md"];
    for k in keys {
        let content = if k == "empty.md" { String::new() } else { format!("content of {k}") };
        put_one(&*repo, &c, plain(k, content)).await;
    }
    let entries = catalog_of(&*catalog, &c).await;
    let mut want: Vec<&str> = keys.to_vec();
    want.sort_unstable();
    assert_eq!(entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), want, "sorted by key in byte order");
    for e in &entries {
        let d = get(&*repo, &c, e.key.as_str()).await;
        assert_eq!((e.content_hash, e.size), (d.content_hash, d.size), "{}: hash and size as on record", e.key);
        assert_eq!(e.path, e.key.as_str(), "the file is at its key");
        let on_disk = files.stat(&c, &e.path).await.expect("stat");
        assert!(on_disk.is_some(), "{}: the put wrote the file", e.key);
        assert_eq!(e.stat, on_disk, "{}: the stat recorded at the write is the file's", e.key);
    }
}

/// `catalog` and `apply_changes` of a collection that does not exist are `CollectionNotFound`.
pub async fn missing_collection_is_not_found(f: &dyn CatalogFixture) {
    let (repo, catalog) = (f.repo(), f.catalog());
    create(&*repo, "present").await;
    let ghost = name("ghost");
    match catalog.catalog(&ghost).await {
        Err(RepoError::CollectionNotFound(n)) => assert_eq!(n, ghost),
        other => panic!("catalog: expected CollectionNotFound, got {other:?}"),
    }
    let change = FileChange::Deleted { key: key("a.md"), expected: h("x") };
    match catalog.apply_changes(&ghost, vec![change]).await {
        Err(RepoError::CollectionNotFound(n)) => assert_eq!(n, ghost),
        other => panic!("apply_changes: expected CollectionNotFound, got {other:?}"),
    }
    match catalog.apply_changes(&ghost, vec![]).await {
        Err(RepoError::CollectionNotFound(n)) => assert_eq!(n, ghost),
        other => panic!("apply_changes without changes: expected CollectionNotFound, got {other:?}"),
    }
}

/// No changes: nothing applied, no conflict, nothing pending.
pub async fn empty_changes_apply_nothing(f: &dyn CatalogFixture) {
    let (repo, catalog, sync) = (f.repo(), f.catalog(), f.sync());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "a")).await;
    project(&*sync, &c, "a.md", "a").await;
    assert_eq!(apply(&*catalog, &c, vec![]).await, (0, vec![]));
    assert_eq!(row(&*sync, &c, "a.md").await.expect("row").state, SyncState::Synced);
}

/// A new file becomes a document: version 1, empty metadata, no tags, created now, its content readable, its stat on
/// record, pending sync.
pub async fn added_file_becomes_a_pending_document(f: &dyn CatalogFixture) {
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let c = create(&*repo, "notes").await;
    f.clock().advance(HOUR);
    let stat = edit(&*files, &c, "inbox/new.md", b"typed by hand").await;
    let change = added(&*files, &c, "inbox/new.md").await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));

    let d = get(&*repo, &c, "inbox/new.md").await;
    assert_eq!((d.version, d.size, d.content_hash), (1, 13, h("typed by hand")));
    assert_eq!((d.metadata, d.tags), (Metadata::default(), Tags::default()), "empty metadata, no tags");
    assert_eq!((d.created_at, d.updated_at), (f.clock().now(), f.clock().now()));
    assert_eq!(read_all(&*repo, &c, "inbox/new.md").await, b"typed by hand");
    let e = entry(&*catalog, &c, "inbox/new.md").await.expect("in the catalog");
    assert_eq!((e.path.as_str(), e.stat), ("inbox/new.md", Some(stat)));
    let r = row(&*sync, &c, "inbox/new.md").await.expect("a ledger row");
    assert_eq!((r.state, r.current, r.projected), (SyncState::Pending, Some(h("typed by hand")), None));
    let pending = sync.pending(&c, false, None, 100).await.expect("pending");
    assert_eq!(pending.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["inbox/new.md"]);
    assert_eq!(repo.collection(&c).await.expect("collection").document_count, 1);
}

/// A modified file: a new version with the new hash and size, metadata and tags kept, the projection kept until the
/// next sync, pending, and the new stat on record.
pub async fn modified_file_gets_a_new_version_keeping_metadata_and_tags(f: &dyn CatalogFixture) {
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    put_one(&*repo, &c, doc("a.md", "first", r#"{"author":"ann"}"#, &["draft"])).await;
    project(&*sync, &c, "a.md", "first").await;
    f.clock().advance(HOUR);
    let stat = edit(&*files, &c, "a.md", b"second, longer").await;
    let change = modified(&*files, &c, "a.md", h("first")).await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));

    let d = get(&*repo, &c, "a.md").await;
    assert_eq!((d.version, d.content_hash, d.size), (2, h("second, longer"), 14));
    assert_eq!(d.metadata, crate::repo::meta(r#"{"author":"ann"}"#), "metadata kept");
    assert_eq!(d.tags, crate::repo::tags(&["draft"]), "tags kept");
    assert_eq!((d.created_at, d.updated_at), (t0, f.clock().now()));
    assert_eq!(read_all(&*repo, &c, "a.md").await, b"second, longer");
    assert_eq!(entry(&*catalog, &c, "a.md").await.expect("entry").stat, Some(stat));
    let r = row(&*sync, &c, "a.md").await.expect("row");
    assert_eq!(r.state, SyncState::Pending);
    assert_eq!(r.current, Some(h("second, longer")));
    assert_eq!(r.projected, Some(projection("first", 1)), "what the index holds is kept until the next sync");
}

/// A file that is gone: the document is deleted; a projected one becomes a pending deletion, an unprojected one
/// leaves no ledger row; the catalog forgets both.
pub async fn deleted_file_deletes_the_document(f: &dyn CatalogFixture) {
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("synced.md", "s"), plain("fresh.md", "f"), plain("kept.md", "k")]).await;
    project(&*sync, &c, "synced.md", "s").await;
    unlink(&*files, &c, "synced.md").await;
    unlink(&*files, &c, "fresh.md").await;
    let changes = vec![
        FileChange::Deleted { key: key("synced.md"), expected: h("s") },
        FileChange::Deleted { key: key("fresh.md"), expected: h("f") },
    ];
    assert_eq!(apply(&*catalog, &c, changes).await, (2, vec![]));

    expect_document_gone(repo.document(&c, &key("synced.md")).await, "synced.md");
    expect_document_gone(repo.document(&c, &key("fresh.md")).await, "fresh.md");
    let keys: Vec<String> = catalog_of(&*catalog, &c).await.iter().map(|e| e.key.to_string()).collect();
    assert_eq!(keys, ["kept.md"]);
    let r = row(&*sync, &c, "synced.md").await.expect("a pending deletion");
    assert_eq!((r.state, r.current, r.projected), (SyncState::Pending, None, Some(projection("s", 1))));
    assert!(row(&*sync, &c, "fresh.md").await.is_none(), "an unprojected deleted document leaves no row");
}

/// Before reconcile, a document whose file was removed behind the store's back reads as `ContentRead` with
/// `NotFound` (a stale record, not damaged data) and verify lists it with `actual: None`; an edited file is listed
/// with the hash it has now. What to do about it is the shell's to say: no message names a command.
pub async fn a_file_gone_behind_the_stores_back_is_a_failed_read_not_corruption(f: &dyn CatalogFixture) {
    let (repo, files) = (f.repo(), f.files());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("gone.md", "g"), plain("edited.md", "e"), plain("kept.md", "k")]).await;
    unlink(&*files, &c, "gone.md").await;
    edit(&*files, &c, "edited.md", b"edited elsewhere").await;

    match repo.read_content(&c, &key("gone.md")).await {
        Err(RepoError::ContentRead { key: k, source }) => {
            assert_eq!(k.as_str(), "gone.md");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{source}");
            assert!(source.to_string().contains("gone.md") && !source.to_string().contains("`col"), "{source}");
        }
        other => panic!("reading a document whose file is gone: expected ContentRead(NotFound), got {:?}", other.map(|(m, _)| m)),
    }
    let mut v = crate::repo::verify(&*repo, Some(&c)).await;
    assert_eq!(v.checked_documents, 1, "kept.md checks out");
    v.corrupt.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    let found: Vec<(&str, Option<ContentHash>)> = v.corrupt.iter().map(|d| (d.key.as_str(), d.actual)).collect();
    assert_eq!(found, [("edited.md", Some(h("edited elsewhere"))), ("gone.md", None)]);
    assert!(v.corrupt.iter().all(|d| !d.problem.is_empty() && !d.problem.contains("`col")), "{:?}", v.corrupt);
}

/// A deletion planned while the file was gone is a conflict once the file exists again: a document whose file is
/// there is never deleted.
pub async fn deletion_of_a_file_that_exists_again_is_a_conflict(f: &dyn CatalogFixture) {
    let (repo, catalog, files) = (f.repo(), f.catalog(), f.files());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("back.md", "same")).await;
    unlink(&*files, &c, "back.md").await;
    let change = FileChange::Deleted { key: key("back.md"), expected: h("same") };
    edit(&*files, &c, "back.md", b"same").await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (0, vec!["back.md".to_owned()]));
    assert_eq!(get(&*repo, &c, "back.md").await.version, 1, "the document stays");
}

/// A file moved with its content unchanged: the document's key changes, keeping metadata, tags, version and creation
/// time; the old key becomes a pending deletion (it was projected), the new key is pending; the catalog follows.
pub async fn renamed_file_keeps_the_documents_identity(f: &dyn CatalogFixture) {
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    put_one(&*repo, &c, doc("old/name.md", "v1", r#"{"n":1}"#, &["x"])).await;
    f.clock().advance(HOUR);
    put_one(&*repo, &c, doc("old/name.md", "the content", r#"{"n":2}"#, &["x", "y"])).await;
    project(&*sync, &c, "old/name.md", "the content").await;
    let before = get(&*repo, &c, "old/name.md").await;
    assert_eq!(before.version, 2);

    f.clock().advance(HOUR);
    let stat = edit(&*files, &c, "new/place.md", b"the content").await;
    unlink(&*files, &c, "old/name.md").await;
    let change = renamed(&*files, &c, "old/name.md", "new/place.md", h("the content")).await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));

    expect_document_gone(repo.document(&c, &key("old/name.md")).await, "old/name.md");
    let d = get(&*repo, &c, "new/place.md").await;
    assert_eq!(d.key.as_str(), "new/place.md");
    assert_eq!((&d.metadata, &d.tags), (&before.metadata, &before.tags), "metadata and tags kept");
    assert_eq!((d.version, d.created_at, d.content_hash, d.size), (2, t0, before.content_hash, before.size), "identity kept");
    assert_eq!(read_all(&*repo, &c, "new/place.md").await, b"the content");

    let entries = catalog_of(&*catalog, &c).await;
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].key.as_str(), entries[0].path.as_str(), entries[0].stat), ("new/place.md", "new/place.md", Some(stat)));

    let old = row(&*sync, &c, "old/name.md").await.expect("the old key is a pending deletion");
    assert_eq!((old.state, old.current, old.projected), (SyncState::Pending, None, Some(projection("the content", 1))));
    let new = row(&*sync, &c, "new/place.md").await.expect("the new key has a row");
    assert_eq!((new.state, new.current), (SyncState::Pending, Some(h("the content"))));
}

/// Renaming a document that was never projected leaves nothing to undo under its old key.
pub async fn rename_of_an_unprojected_document_leaves_no_row_for_the_old_key(f: &dyn CatalogFixture) {
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "never synced")).await;
    edit(&*files, &c, "b.md", b"never synced").await;
    unlink(&*files, &c, "a.md").await;
    let change = renamed(&*files, &c, "a.md", "b.md", h("never synced")).await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));
    let keys: Vec<String> = ledger(&*sync, &c).await.iter().map(|e| e.key.to_string()).collect();
    assert_eq!(keys, ["b.md"], "only the new key is in the ledger");
    assert_eq!(get(&*repo, &c, "b.md").await.version, 1);
}

/// A file whose stat changed but whose content did not: only the stat on record changes (no new version, no
/// sync).
pub async fn touched_file_refreshes_only_the_stat(f: &dyn CatalogFixture) {
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "same bytes")).await;
    project(&*sync, &c, "a.md", "same bytes").await;
    let before = get(&*repo, &c, "a.md").await;
    let old_stat = entry(&*catalog, &c, "a.md").await.expect("entry").stat;
    f.clock().advance(HOUR);
    let new_stat = edit(&*files, &c, "a.md", b"same bytes").await;
    assert_ne!(Some(new_stat), old_stat, "a rewrite gives the file a new stat");
    let change = touched(&*files, &c, "a.md", h("same bytes")).await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));
    assert_eq!(get(&*repo, &c, "a.md").await, before, "the document is unchanged");
    assert_eq!(entry(&*catalog, &c, "a.md").await.expect("entry").stat, Some(new_stat), "the new stat is on record");
    assert_eq!(row(&*sync, &c, "a.md").await.expect("row").state, SyncState::Synced, "nothing to sync");
}

/// Changes planned against content that changed since (a stale `expected`, an added key that exists, a rename onto
/// a taken key or from a missing one) are skipped and reported; the other changes of the call apply.
pub async fn conflicts_are_skipped_and_reported_while_the_rest_applies(f: &dyn CatalogFixture) {
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "a"), plain("b.md", "b"), plain("c.md", "c"), plain("d.md", "d"), plain("e.md", "e")]).await;
    edit(&*files, &c, "a.md", b"a edited").await;
    edit(&*files, &c, "new.md", b"new").await;
    edit(&*files, &c, "moved.md", b"d").await;
    let stale = h("not what is on record");
    let changes = vec![
        modified(&*files, &c, "a.md", stale).await,                 // conflict: stale expected
        added(&*files, &c, "b.md").await,                           // conflict: the key exists
        FileChange::Deleted { key: key("c.md"), expected: stale },  // conflict: stale expected
        renamed(&*files, &c, "ghost.md", "moved.md", h("d")).await, // conflict: nothing to rename
        renamed(&*files, &c, "d.md", "e.md", h("d")).await,         // conflict: the target key is taken
        touched(&*files, &c, "e.md", stale).await,                  // conflict: stale expected
        added(&*files, &c, "new.md").await,                         // applies
        modified(&*files, &c, "a.md", h("a")).await,                // applies
    ];
    let (applied, conflicts) = apply(&*catalog, &c, changes).await;
    assert_eq!(applied, 2, "the two sound changes apply");
    assert_eq!(conflicts, ["a.md", "b.md", "c.md", "e.md", "e.md", "moved.md"], "every conflict is reported, renames by target");

    assert_eq!(get(&*repo, &c, "a.md").await.version, 2, "the sound modification applied");
    assert_eq!(get(&*repo, &c, "new.md").await.version, 1, "the sound addition applied");
    for (k, content) in [("b.md", "b"), ("c.md", "c"), ("d.md", "d"), ("e.md", "e")] {
        let d = get(&*repo, &c, k).await;
        assert_eq!((d.version, d.content_hash), (1, h(content)), "{k} is untouched");
    }
    expect_document_gone(repo.document(&c, &key("moved.md")).await, "moved.md");
    let pending: Vec<String> = sync.pending(&c, false, None, 100).await.expect("pending").iter().map(|e| e.key.to_string()).collect();
    assert_eq!(pending, ["a.md", "b.md", "c.md", "d.md", "e.md", "new.md"], "from the puts, plus the two applied changes");
}

/// The changes of one call apply together: a key freed by a deletion can be the target of a rename, and a renamed
/// document can be modified under its new key.
pub async fn changes_of_one_call_see_each_other(f: &dyn CatalogFixture) {
    let (repo, catalog, files) = (f.repo(), f.catalog(), f.files());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "a"), plain("b.md", "b"), plain("c.md", "c")]).await;
    // b.md was moved over a.md (replacing it); c.md was moved to d.md and then edited.
    edit(&*files, &c, "a.md", b"b").await;
    unlink(&*files, &c, "b.md").await;
    edit(&*files, &c, "d.md", b"c").await;
    unlink(&*files, &c, "c.md").await;
    let rename_to_d = renamed(&*files, &c, "c.md", "d.md", h("c")).await;
    edit(&*files, &c, "d.md", b"c, then edited").await;
    let changes = vec![
        FileChange::Deleted { key: key("a.md"), expected: h("a") },
        renamed(&*files, &c, "b.md", "a.md", h("b")).await,
        rename_to_d,
        modified(&*files, &c, "d.md", h("c")).await,
    ];
    // The deletion of a.md is planned while a.md exists again (b.md took its place): a store may apply it (and then
    // the rename) or report it with the rename as conflicts. Either way nothing is lost.
    let (applied, conflicts) = apply(&*catalog, &c, changes).await;
    let d = get(&*repo, &c, "d.md").await;
    assert_eq!((d.version, d.content_hash), (2, h("c, then edited")), "renamed then modified");
    expect_document_gone(repo.document(&c, &key("c.md")).await, "c.md");
    if conflicts.is_empty() {
        assert_eq!(applied, 4);
        assert_eq!(get(&*repo, &c, "a.md").await.content_hash, h("b"), "b.md's document now lives at a.md");
        expect_document_gone(repo.document(&c, &key("b.md")).await, "b.md");
    } else {
        assert_eq!((applied, conflicts), (2, vec!["a.md".to_owned(), "a.md".to_owned()]));
        assert_eq!(get(&*repo, &c, "a.md").await.content_hash, h("a"), "the conflicting pair changed nothing");
        assert_eq!(get(&*repo, &c, "b.md").await.content_hash, h("b"));
    }

    // A deletion that frees a key for a rename, when the file is really gone.
    put(&*repo, &c, vec![plain("x.md", "x"), plain("y.md", "y")]).await;
    unlink(&*files, &c, "x.md").await;
    unlink(&*files, &c, "y.md").await;
    edit(&*files, &c, "z.md", b"y").await;
    let changes = vec![FileChange::Deleted { key: key("x.md"), expected: h("x") }, renamed(&*files, &c, "y.md", "z.md", h("y")).await];
    assert_eq!(apply(&*catalog, &c, changes).await, (2, vec![]));
    assert_eq!(get(&*repo, &c, "z.md").await.content_hash, h("y"));
}

/// A file stored under another Unicode form (NFD, as macOS writes) is the document of its NFC key and keeps its path
/// in the catalog; reads go to that path. A put of new content writes the key's path and the old file goes.
pub async fn names_in_another_unicode_form_keep_their_path(f: &dyn CatalogFixture) {
    let (repo, catalog, files) = (f.repo(), f.catalog(), f.files());
    let c = create(&*repo, "notes").await;
    let nfd = "cafe\u{301}.md";
    let nfc = "caf\u{e9}.md";
    f.write_behind(&c, nfd, b"decomposed").await;
    let change = added(&*files, &c, nfd).await;
    assert!(matches!(&change, FileChange::Added { key, path, .. } if key.as_str() == nfc && path == nfd));
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));
    let e = entry(&*catalog, &c, nfc).await.expect("entry");
    assert_eq!((e.key.as_str(), e.path.as_str()), (nfc, nfd), "the key is NFC, the path as on disk");
    assert_eq!(read_all(&*repo, &c, nfc).await, b"decomposed", "reads go to the file's path");

    put_one(&*repo, &c, plain(nfc, "rewritten")).await;
    let e = entry(&*catalog, &c, nfc).await.expect("entry");
    assert_eq!(e.path, nfc, "the new file is at the key");
    assert_eq!(read_all(&*repo, &c, nfc).await, b"rewritten");
    let nfd_left = files.stat(&c, nfd).await.expect("stat");
    let nfc_stat = files.stat(&c, nfc).await.expect("stat");
    assert!(nfd_left.is_none() || nfd_left == nfc_stat, "the old file under the other form is gone (or is the same file)");
}

/// The repository's own writes keep the catalog in step: a put records the new stat, a metadata-only put keeps the
/// file, a delete removes the file and the entry.
pub async fn repository_writes_keep_the_catalog_in_step(f: &dyn CatalogFixture) {
    let (repo, catalog, files) = (f.repo(), f.catalog(), f.files());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "one")).await;
    let first = entry(&*catalog, &c, "a.md").await.expect("entry").stat;
    put_one(&*repo, &c, doc("a.md", "one", r#"{"k":1}"#, &[])).await;
    assert_eq!(entry(&*catalog, &c, "a.md").await.expect("entry").stat, first, "a metadata-only change keeps the file");
    assert_eq!(files.stat(&c, "a.md").await.expect("stat"), first);
    put_one(&*repo, &c, plain("a.md", "two!")).await;
    let second = entry(&*catalog, &c, "a.md").await.expect("entry").stat;
    assert_ne!(second, first, "a content change writes a new file");
    assert_eq!(files.stat(&c, "a.md").await.expect("stat"), second);
    assert_eq!(files.hash(&c, "a.md").await.expect("hash").1, h("two!"));
    repo.delete_documents(&c, vec![key("a.md")]).await.expect("delete");
    assert!(catalog_of(&*catalog, &c).await.is_empty());
    assert_eq!(files.stat(&c, "a.md").await.expect("stat"), None, "the file is gone");
}

/// Applied changes that leave documents pending enqueue the collection's sync job, as puts do; touches alone do
/// not.
pub async fn apply_changes_enqueues_the_sync_job(f: &dyn CatalogFixture) {
    let jobs = f.jobs();
    let (repo, catalog, sync, files) = (f.repo(), f.catalog(), f.sync(), f.files());
    let pending_jobs =
        || async { jobs.list(JobFilter { states: vec![JobState::Pending], ..JobFilter::default() }).await.expect("list jobs").len() };
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "a")).await;
    project(&*sync, &c, "a.md", "a").await;
    let lease = jobs.claim(&crate::queue::worker("w"), vec!["sync".into()], 10, crate::queue::LEASE).await.expect("claim");
    assert_eq!(lease.len(), 1, "the put's job");
    assert_eq!(pending_jobs().await, 0);

    edit(&*files, &c, "a.md", b"a").await;
    let change = touched(&*files, &c, "a.md", h("a")).await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));
    assert_eq!(pending_jobs().await, 0, "a touch leaves nothing to project");

    edit(&*files, &c, "b.md", b"b").await;
    let change = added(&*files, &c, "b.md").await;
    assert_eq!(apply(&*catalog, &c, vec![change]).await, (1, vec![]));
    assert_eq!(pending_jobs().await, 1, "an added document needs a sync");
}

/// `recover` succeeds on a store with nothing to recover, and a second call finds nothing to do.
pub async fn recover_is_idempotent(f: &dyn CatalogFixture) {
    let (repo, catalog) = (f.repo(), f.catalog());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "a"), plain("b/c.md", "c")]).await;
    let before = catalog_of(&*catalog, &c).await;
    catalog.recover().await.expect("recover");
    assert_eq!(catalog.recover().await.expect("recover again"), 0, "nothing left to finish");
    assert_eq!(catalog_of(&*catalog, &c).await, before, "nothing changed");
    assert_eq!(read_all(&*repo, &c, "b/c.md").await, b"c");
}
