//! Integration tests of the embedded index: the shared `VectorIndex` conformance suite, plus what only this adapter
//! promises (persistence across reopening and `kill -9`, cache invalidation across handles, the on-disk format,
//! flush, snapshot files in `snapshot_files`) and the search and cold-load timings.

mod snapshot_files;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use colstore_domain::Distance;
use colstore_domain::ports::{IndexError, VectorIndex};
use colstore_embedded::EmbeddedIndex;
use colstore_testkit::index::{self as suite, IndexFixture};
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    index: Arc<EmbeddedIndex>,
}

impl IndexFixture for Fixture {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }
}

async fn fixture() -> Box<dyn IndexFixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let index = EmbeddedIndex::open(&dir.path().join("index").join("embedded.db")).await.expect("open the index");
    Box::new(Fixture { _dir: dir, index: Arc::new(index) })
}

mod embedded {
    colstore_testkit::index_conformance!(super::fixture);
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join(".colstore").join("index").join("embedded.db")
}

async fn raw(path: &Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new().filename(path).busy_timeout(std::time::Duration::from_secs(10)).connect().await.expect("raw")
}

#[tokio::test]
async fn open_creates_missing_folders_and_is_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let index = EmbeddedIndex::open(&path).await.expect("open");
    assert!(path.is_file(), "the database file exists");
    assert_eq!(index.path(), path);
    let h = index.health().await.expect("health");
    assert_eq!((h.backend.as_str(), h.ok), ("embedded", true));
    assert!(h.version.as_deref().is_some_and(|v| v.starts_with("sqlite 3.")), "{h:?}");
    let caps = index.capabilities();
    assert!(caps.exact_count && caps.filter_should && !caps.snapshots);
    assert_eq!(caps.max_batch_points, 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let c = suite::index_name("cs_test_notes");
    let points: Vec<_> = (0..300).map(|n| suite::point(n, vec![n as f32, 1.0, 0.5], json!({"n": n}))).collect();
    {
        let index = EmbeddedIndex::open(&path).await.unwrap();
        suite::ensure(&index, &c, 3, Distance::Cosine).await;
        suite::upsert(&index, &c, points.clone()).await;
        index.delete(&c, vec![suite::point_id(0)]).await.unwrap();
        index.close().await;
    }
    // Reopening runs the migrations again (a no-op) and finds everything.
    let index = EmbeddedIndex::open(&path).await.unwrap();
    assert_eq!(suite::count(&index, &c, None).await, 299);
    let all = suite::scroll_all(&index, &c, None, true, 64).await;
    assert_eq!(suite::ids_of(&all), suite::sorted_ids(1..300));
    let p = all.iter().find(|p| p.id == suite::point_id(7)).unwrap();
    assert_eq!(p.payload, points[7].payload);
    let norm: f32 = p.vector.as_ref().unwrap().iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-5, "cosine vectors are stored normalised");
    let hits = suite::search(&index, &c, vec![1.0, 0.0, 0.0], 1, None).await;
    assert_eq!(suite::hit_ids(&hits), [suite::point_id(299)]);
    assert!(matches!(index.ensure_collection(&c, &suite::settings(4, Distance::Cosine)).await, Err(IndexError::DimensionMismatch { .. })));
}

/// Two handles on one file stand for two processes: each search must see what the other handle wrote, whatever its
/// in-memory copy held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_handle_sees_writes_made_through_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let writer = EmbeddedIndex::open(&path).await.unwrap();
    let reader = EmbeddedIndex::open(&path).await.unwrap();
    let c = suite::index_name("cs_test_notes");
    suite::ensure(&writer, &c, 2, Distance::Dot).await;
    suite::upsert(&writer, &c, (0..50).map(|n| suite::point(n, vec![n as f32, 0.0], json!({}))).collect()).await;
    let top = |hits: Vec<colstore_domain::ScoredPoint>| hits.first().map(|h| (h.id, h.score));
    let q = || vec![1.0, 0.0];
    assert_eq!(top(suite::search(&reader, &c, q(), 1, None).await), Some((suite::point_id(49), 49.0)), "reader loads its copy");

    suite::upsert(&writer, &c, vec![suite::point(1000, vec![1000.0, 0.0], json!({}))]).await;
    assert_eq!(top(suite::search(&reader, &c, q(), 1, None).await), Some((suite::point_id(1000), 1000.0)), "an insert");
    suite::upsert(&writer, &c, vec![suite::point(1000, vec![-1.0, 0.0], json!({}))]).await;
    assert_eq!(top(suite::search(&reader, &c, q(), 1, None).await), Some((suite::point_id(49), 49.0)), "a replacement");
    writer.delete(&c, vec![suite::point_id(49)]).await.unwrap();
    assert_eq!(top(suite::search(&reader, &c, q(), 1, None).await), Some((suite::point_id(48), 48.0)), "a delete");
    let low = suite::filter(json!({"must": [{"range": {"key": "chunk", "range": {"gte": 0.0}}}]}));
    assert_eq!(writer.delete_by_filter(&c, &low).await.unwrap(), Some(50));
    assert!(suite::search(&reader, &c, q(), 1, None).await.is_empty(), "a delete by filter");

    // Drop and re-create with another dimension: the reader's copy of the old collection must not be used.
    suite::upsert(&writer, &c, vec![suite::point(1, vec![5.0, 0.0], json!({}))]).await;
    assert_eq!(suite::search(&reader, &c, q(), 5, None).await.len(), 1);
    assert!(writer.drop_collection(&c).await.unwrap());
    suite::ensure(&writer, &c, 3, Distance::Dot).await;
    suite::upsert(&writer, &c, vec![suite::point(1, vec![0.0, 0.0, 2.0], json!({}))]).await;
    let r = reader.search(&c, colstore_domain::ports::SearchRequest { vector: q(), limit: 5, filter: None }).await;
    assert!(matches!(r, Err(IndexError::DimensionMismatch { expected: 3, got: 2 })), "{r:?}");
    assert_eq!(top(suite::search(&reader, &c, vec![0.0, 0.0, 1.0], 5, None).await), Some((suite::point_id(1), 2.0)));

    // And the other way round: the reader's own writes are seen by the writer's copy.
    suite::upsert(&reader, &c, vec![suite::point(2, vec![0.0, 0.0, 9.0], json!({}))]).await;
    assert_eq!(top(suite::search(&writer, &c, vec![0.0, 0.0, 1.0], 5, None).await), Some((suite::point_id(2), 9.0)));

    // A re-created collection reaches the very version the reader's copy of its predecessor was labelled with:
    // only the collection's row id tells them apart.
    let r = suite::index_name("cs_test_recreated");
    suite::ensure(&writer, &r, 2, Distance::Dot).await;
    suite::upsert(&writer, &r, vec![suite::point(1, vec![1.0, 0.0], json!({}))]).await;
    assert_eq!(top(suite::search(&reader, &r, q(), 5, None).await), Some((suite::point_id(1), 1.0)));
    assert!(writer.drop_collection(&r).await.unwrap());
    suite::ensure(&writer, &r, 2, Distance::Dot).await;
    suite::upsert(&writer, &r, vec![suite::point(2, vec![2.0, 0.0], json!({}))]).await;
    assert_eq!(suite::hit_ids(&suite::search(&reader, &r, q(), 5, None).await), [suite::point_id(2)], "the successor, not the old copy");
}

/// A collection large enough for the int8 pre-scan (3 000 x 128) returns exactly the brute-force ranking, also with a
/// filter and after writes that change its in-memory copy in place. Integer components keep every score exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_collections_search_exactly_like_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    let c = suite::index_name("cs_test_large");
    suite::ensure(&index, &c, 128, Distance::Dot).await;
    let ints = |n: u64, salt: u64| -> Vec<f32> {
        let mut x = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
        (0..128)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) % 101) as f32 - 50.0
            })
            .collect()
    };
    let mut points: Vec<_> = (0..3000).map(|n| suite::point(n, ints(n, 0), json!({"group": n % 5}))).collect();
    for batch in points.chunks(1000) {
        suite::upsert(&index, &c, batch.to_vec()).await;
    }
    let reference = |points: &[colstore_domain::Point], q: &[f32], f: Option<&colstore_domain::Filter>, limit: usize| {
        let mut all: Vec<(colstore_domain::PointId, f32)> = points
            .iter()
            .filter(|p| f.is_none_or(|f| f.matches(&suite::payload_object(&p.payload))))
            .map(|p| (p.id, p.vector.iter().zip(q).map(|(a, b)| a * b).sum::<f32>()))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    };
    let g = suite::filter(json!({"must": [{"match_any": {"key": "metadata.group", "any": [1, 3]}}]}));
    for round in 0..3u64 {
        for qn in 0..4u64 {
            let q = ints(10_000 + qn, round);
            for (f, limit) in [(None, 1), (None, 10), (Some(&g), 10), (None, 100)] {
                let got = suite::search(&index, &c, q.clone(), limit, f.cloned()).await;
                suite::assert_hits(&got, &reference(&points, &q, f, limit), &format!("round {round} query {qn} limit {limit}"));
            }
        }
        // Replace some points, add some, delete some: the copy is updated in place, codes included.
        let changed: Vec<_> = (round * 100..round * 100 + 50).chain(5000 + round * 10..5000 + round * 10 + 10).collect();
        let fresh: Vec<_> = changed.iter().map(|&n| suite::point(n, ints(n, round + 7), json!({"group": (n + round) % 5}))).collect();
        suite::upsert(&index, &c, fresh.clone()).await;
        for p in fresh {
            match points.iter_mut().find(|o| o.id == p.id) {
                Some(o) => *o = p,
                None => points.push(p),
            }
        }
        let gone: Vec<_> = (2000 + round * 20..2000 + round * 20 + 20).map(suite::point_id).collect();
        index.delete(&c, gone.clone()).await.unwrap();
        points.retain(|p| !gone.contains(&p.id));
    }
}

#[tokio::test]
async fn points_are_stored_in_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let index = EmbeddedIndex::open(&path).await.unwrap();
    let c = suite::index_name("cs_test_notes");
    suite::ensure(&index, &c, 2, Distance::Cosine).await;
    let p = suite::point(5, vec![3.0, 4.0], json!({"lang": "en"}));
    suite::upsert(&index, &c, vec![p.clone()]).await;
    index.upsert(&c, vec![]).await.expect("an empty batch is fine");

    let mut conn = raw(&path).await;
    let (name, dim, distance, version): (String, i64, String, i64) =
        sqlx::query_as("SELECT name, dimension, distance, version FROM index_collections").fetch_one(&mut conn).await.unwrap();
    assert_eq!((name.as_str(), dim, distance.as_str(), version), ("cs_test_notes", 2, "cosine", 1), "one write, one version");
    let (id, payload, vector): (Vec<u8>, String, Vec<u8>) =
        sqlx::query_as("SELECT id, payload, vector FROM points").fetch_one(&mut conn).await.unwrap();
    assert_eq!(id, p.id.0.as_bytes(), "the id is the UUID's 16 bytes");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&payload).unwrap(), serde_json::to_value(&p.payload).unwrap(), "JSON payload");
    let mut want = Vec::new();
    for x in [0.6f32, 0.8] {
        want.extend_from_slice(&x.to_le_bytes());
    }
    assert_eq!(vector, want, "the normalised vector as little-endian f32");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn flush_checkpoints_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let index = EmbeddedIndex::open(&path).await.unwrap();
    let c = suite::index_name("cs_test_notes");
    suite::ensure(&index, &c, 2, Distance::Dot).await;
    suite::upsert(&index, &c, (0..100).map(|n| suite::point(n, vec![n as f32, 1.0], json!({}))).collect()).await;
    let wal = path.with_file_name("embedded.db-wal");
    assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0, "writes went to the WAL");
    let steps = index.flush(&c).await.expect("flush");
    assert_eq!(steps.len(), 1);
    assert!(steps[0].starts_with("checkpointed the write-ahead log of "), "{steps:?}");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0, "the WAL is truncated");
    assert_eq!(suite::count(&index, &c, None).await, 100);
    let ghost = suite::index_name("cs_test_ghost");
    assert!(matches!(index.flush(&ghost).await, Err(IndexError::CollectionNotFound(n)) if n == ghost));
}

/// Every acknowledged upsert survives `kill -9` of the writing process. The test runs itself as the child: with
/// `COLSTORE_EMBEDDED_KILL_CHILD` set it writes batches and prints each acknowledged batch number, forever.
#[test]
fn acknowledged_writes_survive_kill_9() {
    const CHILD: &str = "COLSTORE_EMBEDDED_KILL_CHILD";
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let c = suite::index_name("cs_test_notes");
    let batch = |b: u64| (0..50).map(|i| suite::point(b * 50 + i, vec![i as f32, b as f32], json!({"batch": b}))).collect::<Vec<_>>();
    if let Some(path) = std::env::var_os(CHILD) {
        rt.block_on(async {
            let index = EmbeddedIndex::open(Path::new(&path)).await.unwrap();
            suite::ensure(&index, &c, 2, Distance::Dot).await;
            for b in 0.. {
                suite::upsert(&index, &c, batch(b)).await;
                println!("acked {b}");
            }
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "acknowledged_writes_survive_kill_9", "--nocapture", "--test-threads=1"])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut last_acked = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(b) = line.strip_prefix("acked ") {
            let b: u64 = b.trim().parse().unwrap();
            last_acked = Some(b);
            if b >= 20 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let last = last_acked.expect("the child acknowledged batches");
    rt.block_on(async {
        let index = EmbeddedIndex::open(&path).await.unwrap();
        let n = suite::count(&index, &c, None).await;
        assert!(n >= (last + 1) * 50, "{n} points after kill -9, but {} were acknowledged", (last + 1) * 50);
        assert_eq!(n % 50, 0, "batches are all-or-nothing: {n}");
        let all = suite::scroll_all(&index, &c, None, false, 1000).await;
        assert_eq!(suite::ids_of(&all), suite::sorted_ids(0..n));
    });
}
