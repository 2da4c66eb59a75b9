//! The `JobQueue` and `SyncStore` conformance suites against `SqliteRepo`, plus what only this adapter promises:
//! the migration of existing stores, the on-disk vector format, index use, and state that survives a reopen.

use std::sync::Arc;
use std::time::Duration;

use colstore_domain::ports::{
    CollectionRepo, JobFilter, JobQueue, JobSpec, JobState, SyncCounts, SyncError, SyncState, SyncStore, WorkerId,
};
use colstore_domain::{CollectionSettings, CollectionSpec, ContentHash, Dimension, DocKey, EmbedderId};
use colstore_sqlite::{SqliteOptions, SqliteRepo};
use colstore_testkit::ManualClock;
use colstore_testkit::queue::QueueFixture;
use colstore_testkit::sync::SyncFixture;
use sqlx::{ConnectOptions, Connection};

use crate::{doc, name, open, raw};

struct Store {
    _dir: tempfile::TempDir,
    repo: SqliteRepo,
    clock: Arc<ManualClock>,
}

async fn store(clock: Arc<ManualClock>) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(&dir.path().join("colstore.db"), clock.clone()).await;
    Store { _dir: dir, repo, clock }
}

impl QueueFixture for Store {
    fn queue(&self) -> Arc<dyn JobQueue> {
        Arc::new(self.repo.clone())
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
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

async fn queue_fixture(clock: Arc<ManualClock>) -> Box<dyn QueueFixture> {
    Box::new(store(clock).await)
}

async fn sync_fixture(clock: Arc<ManualClock>) -> Box<dyn SyncFixture> {
    Box::new(store(clock).await)
}

mod sqlite_queue {
    colstore_testkit::queue_conformance!(super::queue_fixture);
}

mod sqlite_sync {
    colstore_testkit::sync_conformance!(super::sync_fixture);
}

fn embedder(dimension: u32) -> EmbedderId {
    EmbedderId { kind: "hash".into(), model: String::new(), dimension: Dimension::new(dimension).unwrap() }
}

/// A store written by a colstore that knew only schema version 1 gets a ledger (every document pending) and one sync
/// job per collection with documents when it is opened.
#[tokio::test]
async fn migrating_a_version_1_store_makes_every_document_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("colstore.db");
    let v1 = dir.path().join("v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_init.sql"), v1.join("0001_init.sql")).unwrap();
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true).connect().await.unwrap();
    sqlx::migrate::Migrator::new(v1.as_path()).await.unwrap().run(&mut conn).await.unwrap();
    for (id, name) in [(1, "notes"), (2, "empty"), (3, "code")] {
        sqlx::query("INSERT INTO collections (id, name, settings, created_at) VALUES (?, ?, ?, 0)")
            .bind(id)
            .bind(name)
            .bind(serde_json::to_string(&CollectionSettings::default()).unwrap())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for (cid, key, text, at) in [(1, "a.md", "ay", 1000), (1, "b.md", "bee", 3000), (3, "main.rs", "fn main() {}", 2000)] {
        sqlx::query(
            "INSERT INTO documents (collection_id, key, hash, size, meta, tags, version, created_at, updated_at) \
             VALUES (?, ?, ?, ?, '{}', '[]', 1, ?, ?)",
        )
        .bind(cid)
        .bind(key)
        .bind(ContentHash::of(text.as_bytes()).as_bytes().to_vec())
        .bind(text.len() as i64)
        .bind(at)
        .bind(at)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.close().await.unwrap();

    let repo = SqliteRepo::open(&path, SqliteOptions::default(), Arc::new(ManualClock::at_2024())).await.unwrap();
    assert_eq!(repo.schema_version().await.unwrap(), 9);
    let notes = repo.pending(&name("notes"), false, None, 10).await.unwrap();
    assert_eq!(
        notes.iter().map(|e| (e.key.as_str(), e.state, e.current, e.projected)).collect::<Vec<_>>(),
        [
            ("a.md", SyncState::Pending, Some(ContentHash::of(b"ay")), None),
            ("b.md", SyncState::Pending, Some(ContentHash::of(b"bee")), None),
        ]
    );
    assert_eq!(notes[1].updated_at.as_millis(), 3000, "the row dates from the document's last change");
    assert_eq!(repo.counts(None).await.unwrap(), SyncCounts { pending: 3, synced: 0, failed: 0 });
    let jobs = repo.list(JobFilter::default()).await.unwrap();
    let mut keys: Vec<_> = jobs.iter().map(|j| (j.spec.dedup_key.clone().unwrap(), j.spec.payload.clone(), j.state)).collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        keys,
        [
            ("sync:code".to_owned(), serde_json::json!({ "collection": "code" }), JobState::Pending),
            ("sync:notes".to_owned(), serde_json::json!({ "collection": "notes" }), JobState::Pending),
        ]
    );
    let claimed = repo.claim(&WorkerId("w".into()), vec!["sync".into()], 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 2, "the migrated jobs are due at once");
}

/// Vectors are stored as little-endian f32; a stored vector of another length is reported, never returned.
#[tokio::test]
async fn cached_vectors_are_little_endian_f32_and_checked_on_read() {
    let (_dir, path, repo) = crate::setup().await;
    let e = embedder(4);
    let h = ContentHash::of(b"chunk");
    repo.cache_vectors(&e, vec![(h, vec![1.0, -2.0, 0.5, 0.0])]).await.unwrap();
    let mut conn = raw(&path).await;
    let (id, bytes): (String, Vec<u8>) = sqlx::query_as("SELECT embedder, vector FROM embedding_cache").fetch_one(&mut conn).await.unwrap();
    assert_eq!(id, "hash/4", "keyed by the embedder's display form");
    assert_eq!(bytes, [0, 0, 128, 63, 0, 0, 0, 192, 0, 0, 0, 63, 0, 0, 0, 0]);
    sqlx::query("UPDATE embedding_cache SET vector = x'0000803f000000c00000003f'").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    match repo.cached_vectors(&e, vec![h]).await {
        Err(SyncError::DimensionMismatch { expected, got }) => assert_eq!((expected, got), (4, 3)),
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
}

/// Jobs, leases and the ledger are in the database: a process that dies while holding jobs leaves them to be freed at
/// the next start, and the ledger is as it was.
#[tokio::test]
async fn queue_and_ledger_survive_a_reopen() {
    let (_dir, path, repo) = crate::setup().await;
    let c = name("c");
    repo.put_batch(&c, vec![doc("a", "one"), doc("b", "two")]).await.unwrap();
    assert!(repo.mark_synced(&c, &DocKey::parse("a").unwrap(), Some(ContentHash::of(b"one")), None).await.unwrap());
    let other = repo
        .enqueue(JobSpec { kind: "backup".into(), dedup_key: None, payload: serde_json::json!({}), max_attempts: 1, run_after: None })
        .await
        .unwrap();
    let dead = WorkerId("host:1:gone".into());
    let held = repo.claim(&dead, Vec::new(), 10, Duration::from_secs(600)).await.unwrap();
    assert_eq!(held.len(), 2, "the sync job of the put, and the backup");
    repo.close().await;

    let repo = SqliteRepo::open(&path, SqliteOptions::default(), Arc::new(ManualClock::at_2024())).await.unwrap();
    assert_eq!(repo.counts(Some(c.clone())).await.unwrap(), SyncCounts { pending: 1, synced: 1, failed: 0 });
    assert!(repo.claim(&WorkerId("new".into()), Vec::new(), 10, Duration::from_secs(30)).await.unwrap().is_empty(), "leases hold");
    assert_eq!(repo.running_workers().await.unwrap(), std::slice::from_ref(&dead), "who to check at start");
    assert_eq!(repo.release_worker(&dead).await.unwrap(), 2, "freed at start");
    assert!(repo.running_workers().await.unwrap().is_empty());
    let again = repo.claim(&WorkerId("new".into()), Vec::new(), 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().any(|l| l.job.id == other && l.job.attempts == 2));
    for l in &held {
        assert!(repo.complete(l).await.is_err(), "the dead process's leases are spent");
    }
}

/// A collection deleted and created again under its name does not inherit ledger rows, even with the same row id.
#[tokio::test]
async fn a_recreated_collection_starts_with_an_empty_ledger() {
    let (_dir, _path, repo) = crate::setup().await;
    let c = name("c");
    repo.put_batch(&c, vec![doc("a", "one")]).await.unwrap();
    repo.delete_collection(&c).await.unwrap();
    repo.create_collection(CollectionSpec { name: c.clone(), settings: CollectionSettings::default() }).await.unwrap();
    assert!(repo.ledger(&c, None, 10).await.unwrap().is_empty());
}
