//! Integration tests of the SQLite repository: the shared `CollectionRepo` conformance suite, plus what only this
//! adapter promises (WAL, migrations, refcount bookkeeping, safety copies, corruption of compressed data). The
//! `JobQueue` and `SyncStore` suites and their SQLite specifics are in `sync.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{CollectionRepo, RepoError, VerifyEvent};
use colstore_domain::{CollectionName, CollectionSettings, CollectionSpec, Content, DocKey, Metadata, NewDocument, Tags};
use colstore_sqlite::{SqliteOptions, SqliteRepo};
use colstore_testkit::ManualClock;
use colstore_testkit::repo::RepoFixture;
use futures::StreamExt;
use sqlx::{ConnectOptions, Connection};

mod files;
mod queue_crash;
mod sync;

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    repo: SqliteRepo,
    clock: Arc<ManualClock>,
}

async fn open(path: &std::path::Path, clock: Arc<ManualClock>) -> SqliteRepo {
    SqliteRepo::open(path, SqliteOptions { create: true, ..SqliteOptions::default() }, clock).await.expect("open the database")
}

async fn fixture(clock: Arc<ManualClock>) -> Box<dyn RepoFixture> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colstore.db");
    let repo = open(&path, clock.clone()).await;
    Box::new(Fixture { _dir: dir, path, repo, clock })
}

async fn raw(path: &std::path::Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new().filename(path).busy_timeout(std::time::Duration::from_secs(10)).connect().await.unwrap()
}

#[async_trait]
impl RepoFixture for Fixture {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        Arc::new(self.repo.clone())
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    async fn corrupt(&self, collection: &CollectionName, key: &DocKey) {
        // Replace the stored bytes with different raw bytes behind the adapter's back, as disk rot or a stray write would.
        let mut conn = raw(&self.path).await;
        let (id, parts): (i64, i64) = sqlx::query_as(
            "SELECT b.id, b.parts FROM documents d JOIN collections c ON c.id = d.collection_id JOIN blobs b ON b.hash = d.hash \
             WHERE c.name = ? AND d.key = ?",
        )
        .bind(collection.as_str().to_owned())
        .bind(key.as_str().to_owned())
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if parts == 0 {
            sqlx::query("UPDATE blobs SET codec = 0 WHERE id = ?").bind(id).execute(&mut conn).await.unwrap();
            sqlx::query("UPDATE blob_data SET data = CAST(x'00' || data AS BLOB) WHERE blob_id = ?")
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            sqlx::query("UPDATE blob_parts SET codec = 0, data = x'deadbeef' WHERE blob_id = ? AND seq = 0")
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
    }
}

colstore_testkit::repo_conformance!(fixture);

impl colstore_testkit::text::TextFixture for Fixture {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        Arc::new(self.repo.clone())
    }

    fn text(&self) -> Arc<dyn colstore_domain::ports::TextIndex> {
        Arc::new(self.repo.clone())
    }
    fn indexes_on_write(&self) -> bool {
        true
    }
}

async fn text_fixture(clock: Arc<ManualClock>) -> Box<dyn colstore_testkit::text::TextFixture> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colstore.db");
    let repo = open(&path, clock.clone()).await;
    Box::new(Fixture { _dir: dir, path, repo, clock })
}

mod text {
    colstore_testkit::text_conformance!(super::text_fixture);
}

fn name(s: &str) -> CollectionName {
    CollectionName::parse(s).unwrap()
}

fn doc(key: &str, text: &str) -> NewDocument {
    NewDocument {
        key: DocKey::parse(key).unwrap(),
        content: Content::Bytes(text.to_owned().into_bytes().into()),
        metadata: Metadata::default(),
        tags: Tags::default(),
    }
}

async fn setup() -> (tempfile::TempDir, PathBuf, SqliteRepo) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colstore.db");
    let repo = open(&path, Arc::new(ManualClock::at_2024())).await;
    repo.create_collection(CollectionSpec { name: name("c"), settings: CollectionSettings::default() }).await.unwrap();
    (dir, path, repo)
}

#[tokio::test]
async fn database_is_in_wal_mode_and_migrations_are_idempotent() {
    let (_dir, path, repo) = setup().await;
    assert_eq!(repo.schema_version().await.unwrap(), 9);
    repo.close().await;
    let again = SqliteRepo::open(&path, SqliteOptions::default(), Arc::new(ManualClock::at_2024())).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 9);
    assert_eq!(again.list_collections().await.unwrap().len(), 1);
    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, "wal");
    let auto_vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut conn).await.unwrap();
    assert_eq!(auto_vacuum, 2, "incremental, chosen when the file was created");
}

/// Opening an existing database and reading it writes nothing: no connection sets a pragma that is a write (as
/// `auto_vacuum` is, with two fsyncs, even when its value does not change), so the write-ahead log stays empty.
#[tokio::test]
async fn opening_and_reading_an_existing_database_writes_nothing() {
    let (_dir, path, repo) = setup().await;
    repo.close().await;
    let wal = path.with_file_name("colstore.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_len(), 0, "close folds the log in");
    let again = SqliteRepo::open(&path, SqliteOptions::default(), Arc::new(ManualClock::at_2024())).await.unwrap();
    // Several connections at once, so the pool opens more than one.
    let reads = futures::future::join_all((0..4).map(|_| again.list_collections())).await;
    assert!(reads.iter().all(|r| r.as_ref().is_ok_and(|c| c.len() == 1)));
    assert_eq!(wal_len(), 0, "nothing was written to the log");
}

#[tokio::test]
async fn a_missing_database_is_not_created_without_create() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let r = SqliteRepo::open(&path, SqliteOptions::default(), Arc::new(ManualClock::at_2024())).await;
    assert!(r.is_err());
    assert!(!path.exists());
}

#[tokio::test]
async fn refcounts_always_equal_the_number_of_referencing_documents() {
    let (_dir, path, repo) = setup().await;
    repo.create_collection(CollectionSpec { name: name("d"), settings: CollectionSettings::default() }).await.unwrap();
    repo.put_batch(&name("c"), vec![doc("a", "x"), doc("b", "x"), doc("c", "y")]).await.unwrap();
    repo.put_batch(&name("d"), vec![doc("a", "x")]).await.unwrap();
    repo.put_batch(&name("c"), vec![doc("b", "z")]).await.unwrap();
    repo.delete_documents(&name("c"), vec![DocKey::parse("c").unwrap()]).await.unwrap();
    let mut conn = raw(&path).await;
    let mismatches: i64 =
        sqlx::query_scalar("SELECT count(*) FROM blobs b WHERE b.refcount <> (SELECT count(*) FROM documents d WHERE d.hash = b.hash)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(mismatches, 0);
    let x_refs: i64 =
        sqlx::query_scalar("SELECT refcount FROM blobs WHERE size = 1 AND hash = (SELECT hash FROM documents WHERE key = 'a' LIMIT 1)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(x_refs, 2);
}

#[tokio::test]
async fn text_is_stored_compressed() {
    let (_dir, _path, repo) = setup().await;
    let text = "colstore keeps collections consistent. ".repeat(200);
    repo.put_batch(&name("c"), vec![doc("a", &text)]).await.unwrap();
    let s = repo.stats(None).await.unwrap();
    assert_eq!(s.logical_bytes, text.len() as u64);
    assert!(s.stored_bytes * 5 < s.logical_bytes, "{s:?}");
}

#[tokio::test]
async fn undecodable_compressed_data_is_reported_not_returned() {
    let (_dir, path, repo) = setup().await;
    let text = "compressible text. ".repeat(100);
    repo.put_batch(&name("c"), vec![doc("a", &text)]).await.unwrap();
    let mut conn = raw(&path).await;
    // Keep the zstd codec but damage the frame.
    sqlx::query("UPDATE blob_data SET data = CAST(x'28b52ffd00' || substr(data, 6) AS BLOB)").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let events: Vec<_> = repo.verify(None).await.unwrap().collect().await;
    let corrupt: Vec<_> = events
        .into_iter()
        .filter_map(|e| match e.unwrap() {
            VerifyEvent::Corrupt(c) => Some(c),
            VerifyEvent::Checked { .. } => None,
        })
        .collect();
    assert_eq!(corrupt.len(), 1);
    assert_eq!(corrupt[0].key.as_str(), "a");
    // Reading it fails before a byte of it is returned: no undecoded or partly decoded bytes pass as its content.
    let (_, stream) = repo.read_content(&name("c"), &DocKey::parse("a").unwrap()).await.unwrap();
    let items: Vec<_> = stream.collect().await;
    let first = items.first().expect("the stream says something");
    assert!(first.is_err(), "the first item is {} bytes of content, not an error", first.as_ref().map_or(0, |b| b.len()));
}

#[tokio::test]
async fn a_missing_blob_is_reported_by_verify_and_read() {
    let (_dir, path, repo) = setup().await;
    repo.put_batch(&name("c"), vec![doc("a", "gone")]).await.unwrap();
    let mut conn = raw(&path).await;
    sqlx::query("DROP TRIGGER documents_ref_delete").execute(&mut conn).await.unwrap();
    sqlx::query("DELETE FROM blob_data").execute(&mut conn).await.unwrap();
    sqlx::query("DELETE FROM blobs").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let events: Vec<_> = repo.verify(None).await.unwrap().collect().await;
    assert!(events.iter().any(|e| matches!(e, Ok(VerifyEvent::Corrupt(c)) if c.problem.contains("missing"))), "{events:?}");
    let r = repo.read_content(&name("c"), &DocKey::parse("a").unwrap()).await;
    assert!(matches!(r, Err(RepoError::Corrupt { .. })));
}

#[tokio::test]
async fn safety_copy_is_a_checked_consistent_copy() {
    let (dir, _path, repo) = setup().await;
    repo.put_batch(&name("c"), vec![doc("a", "kept")]).await.unwrap();
    let dest = dir.path().join("copy.db");
    repo.copy_to(&dest).await.unwrap();
    let copy = SqliteRepo::open(&dest, SqliteOptions::default(), Arc::new(ManualClock::at_2024())).await.unwrap();
    assert_eq!(copy.document(&name("c"), &DocKey::parse("a").unwrap()).await.unwrap().size, 4);
    // A second copy to the same path is refused rather than overwriting.
    assert!(repo.copy_to(&dest).await.is_err());
}

#[tokio::test]
async fn gc_gives_pages_back_to_the_file_system() {
    let (_dir, path, repo) = setup().await;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    repo.put_batch(
        &name("c"),
        vec![NewDocument {
            key: DocKey::parse("big").unwrap(),
            content: Content::Bytes(noise.into()),
            metadata: Metadata::default(),
            tags: Tags::default(),
        }],
    )
    .await
    .unwrap();
    repo.delete_documents(&name("c"), vec![DocKey::parse("big").unwrap()]).await.unwrap();
    let mut conn = raw(&path).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.unwrap();
    let before: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut conn).await.unwrap();
    let r = repo.gc(false).await.unwrap();
    assert_eq!(r.contents_removed, 1);
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.unwrap();
    let after: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(&mut conn).await.unwrap();
    assert!(after * 4 < before, "pages before {before}, after {after}");
}

/// Without `create`, only an existing colstore database opens: an empty file or another program's database is refused
/// and left as it was (migrations used to turn it into a new, empty store).
#[tokio::test]
async fn an_empty_or_foreign_file_is_not_turned_into_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_2024());
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let e = SqliteRepo::open(&empty, SqliteOptions::default(), clock.clone()).await.unwrap_err();
    assert!(e.to_string().contains("no colstore schema"), "{e}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

    let other = dir.path().join("other.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&other).create_if_missing(true);
    let mut conn = opts.connect().await.unwrap();
    sqlx::query("CREATE TABLE t (x)").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let e = SqliteRepo::open(&other, SqliteOptions::default(), clock).await.unwrap_err();
    assert!(e.to_string().contains("no colstore schema"), "{e}");
}

/// The store id is recorded once; a different one is refused. A read-only open reads but never writes.
#[tokio::test]
async fn store_id_is_recorded_once_and_read_only_opens_do_not_write() {
    let (_dir, path, repo) = setup().await;
    assert_eq!(repo.store_id().await.unwrap(), None);
    repo.set_store_id("one").await.unwrap();
    repo.set_store_id("one").await.unwrap();
    assert!(repo.set_store_id("two").await.is_err());
    assert_eq!(repo.store_id().await.unwrap().as_deref(), Some("one"));
    repo.create_collection(CollectionSpec { name: name("ro-one"), settings: CollectionSettings::default() }).await.unwrap();
    let collections = repo.list_collections().await.unwrap().len();
    repo.close().await;

    let ro = SqliteOptions { read_only: true, ..SqliteOptions::default() };
    let repo = SqliteRepo::open(&path, ro, Arc::new(ManualClock::at_2024())).await.unwrap();
    assert!(repo.is_read_only());
    assert_eq!(repo.store_id().await.unwrap().as_deref(), Some("one"));
    assert_eq!(repo.list_collections().await.unwrap().len(), collections);
    let e = repo.create_collection(CollectionSpec { name: name("ro-two"), settings: CollectionSettings::default() }).await.unwrap_err();
    assert!(matches!(e, RepoError::ReadOnly(_)), "{e:?}");
    repo.close().await;
}

/// SQLite remembers `col add`'s source stamps (the conformance suite also accepts a repository that remembers none),
/// and forgets one when a restore writes another state of the document under the same version.
#[tokio::test]
async fn source_stamps_are_remembered_until_the_document_changes_even_by_a_restore() {
    use colstore_domain::ports::{SourceRecord, SourceStamp};
    let (_dir, _path, repo) = setup().await;
    let c = name("c");
    let put = repo.put_batch(&c, vec![doc("a.md", "alpha")]).await.unwrap().remove(0);
    let stamp = SourceStamp { size: 5, mtime_ns: 1, ctime_ns: 2, inode: u64::MAX, options: u64::MAX - 1, seen_at_ns: 3 };
    let record = SourceRecord { key: put.key.clone(), version: put.version, content_hash: put.content_hash, stamp };
    repo.record_source_stamps(&c, vec![record]).await.unwrap();
    assert_eq!(repo.source_stamps(&c, std::slice::from_ref(&put.key)).await.unwrap(), vec![Some(stamp)], "u64 bits round-trip");
    let mut other = repo.document(&c, &put.key).await.unwrap();
    other.content_hash = colstore_domain::ContentHash::of(b"other");
    other.size = 5;
    repo.restore_documents(&c, vec![(other, bytes::Bytes::from_static(b"other"))]).await.unwrap();
    assert_eq!(repo.document(&c, &put.key).await.unwrap().version, put.version, "same version, other content");
    assert_eq!(repo.source_stamps(&c, std::slice::from_ref(&put.key)).await.unwrap(), vec![None]);
}
