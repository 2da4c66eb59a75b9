//! Snapshot files (`.colstore/index/embedded/<collection id>.snap`): a new handle loads a collection from its file
//! instead of the database, and gets exactly what the database holds; a stale, damaged or half-written file is never
//! used, whatever happened to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use colstore_domain::ports::VectorIndex;
use colstore_domain::{Distance, IndexName, Payload, PointId};
use colstore_embedded::{EmbeddedIndex, LoadStats};
use colstore_testkit::index as suite;
use rstest::rstest;
use serde_json::json;

use crate::{db_path, raw};

const DIM: u32 = 64;

/// 76 800 floats: above the size from which a collection gets a snapshot file.
const POINTS: u64 = 1200;

fn name() -> IndexName {
    suite::index_name("cs_test_snap")
}

/// Small integers, so scores are exact and ties happen.
fn vector(n: u64, salt: u64) -> Vec<f32> {
    let mut x = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) % 21) as f32 - 10.0
        })
        .collect()
}

fn points(range: std::ops::Range<u64>, salt: u64) -> Vec<colstore_domain::Point> {
    range.map(|n| suite::point(n, vector(n, salt), json!({"group": n % 5, "text": format!("point {n} ✓")}))).collect()
}

/// A cosine collection of [`POINTS`] points, written in batches, a few deleted.
async fn fill(index: &EmbeddedIndex, c: &IndexName) {
    suite::ensure(index, c, DIM, Distance::Cosine).await;
    for batch in points(0..POINTS, 0).chunks(500) {
        suite::upsert(index, c, batch.to_vec()).await;
    }
    index.delete(c, (0..10).map(suite::point_id).collect()).await.unwrap();
}

fn snapshot_dir(dir: &Path) -> PathBuf {
    dir.join(".colstore").join("index").join("embedded")
}

/// The files in the snapshot folder whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(snapshot_dir(dir))
        .map(|entries| entries.map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(suffix)).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// The one snapshot file.
fn the_file(dir: &Path) -> PathBuf {
    let found = files(dir, ".snap");
    assert_eq!(found.len(), 1, "one snapshot file: {found:?}");
    found[0].clone()
}

type Hits = Vec<Vec<(PointId, u32, Payload)>>;

/// Several searches, with and without a filter: ids, exact score bits and payloads.
async fn results(index: &EmbeddedIndex, c: &IndexName) -> Hits {
    let group = suite::filter(json!({"must": [{"match": {"key": "metadata.group", "value": 2}}]}));
    let mut all = Vec::new();
    for q in 0..4 {
        for (limit, f) in [(1, None), (10, None), (50, None), (10, Some(group.clone()))] {
            let hits = suite::search(index, c, vector(10_000 + q, 99), limit, f).await;
            all.push(hits.into_iter().map(|h| (h.id, h.score.to_bits(), h.payload)).collect());
        }
    }
    all
}

fn stats(from_database: u64, from_snapshot_file: u64, files_rejected: u64, files_written: u64) -> LoadStats {
    let mut s = LoadStats::default();
    (s.from_database, s.from_snapshot_file, s.files_rejected, s.files_written) =
        (from_database, from_snapshot_file, files_rejected, files_written);
    s
}

/// The results a handle gets with no snapshot file to help it: straight from the database.
async fn from_database(dir: &Path, c: &IndexName) -> Hits {
    let aside = dir.join("snapshots-aside");
    std::fs::rename(snapshot_dir(dir), &aside).unwrap();
    let index = EmbeddedIndex::open(&db_path(dir)).await.unwrap();
    // Nothing written: only the search's own load.
    let want = results(&index, c).await;
    assert_eq!((index.load_stats().from_database, index.load_stats().from_snapshot_file), (1, 0));
    index.close().await;
    std::fs::remove_dir_all(snapshot_dir(dir)).ok();
    std::fs::rename(&aside, snapshot_dir(dir)).unwrap();
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_handle_loads_the_snapshot_file_and_finds_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let c = name();
    let writer = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    assert_eq!(writer.snapshot_dir(), snapshot_dir(dir.path()), "the folder is named after the database");
    fill(&writer, &c).await;
    assert!(files(dir.path(), ".snap").is_empty(), "writes alone make no file");
    let want = results(&writer, &c).await;
    assert_eq!(writer.load_stats(), stats(1, 0, 0, 1), "loaded from the database once, then wrote the file");
    let file = the_file(dir.path());
    assert!(std::fs::metadata(&file).unwrap().len() > POINTS * u64::from(DIM) * 5, "vectors and codes: {}", file.display());
    assert!(files(dir.path(), ".tmp").is_empty());

    // Another handle, as another process: the file, not the database, and exactly the same answers.
    let reader = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    assert_eq!(results(&reader, &c).await, want);
    assert_eq!(reader.load_stats(), stats(0, 1, 0, 0), "the new handle used the file");
    assert_eq!(suite::count(&reader, &c, None).await, POINTS - 10);
    assert_eq!(from_database(dir.path(), &c).await, want);

    // The copy from the file takes this handle's own writes in place.
    suite::upsert(&reader, &c, vec![suite::point(5000, vector(10_000, 99), json!({"group": 2}))]).await;
    reader.delete(&c, vec![suite::point_id(20)]).await.unwrap();
    let after = results(&reader, &c).await;
    assert_eq!(reader.load_stats(), stats(0, 1, 0, 0), "no reload");
    assert_eq!(after[1][0].0, suite::point_id(5000), "the new point is the closest to its own query");
    assert!(after.iter().flatten().all(|(id, ..)| *id != suite::point_id(20)), "the deleted point is gone");
    assert_eq!(from_database(dir.path(), &c).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_file_made_stale_by_another_handle_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let c = name();
    let first = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    fill(&first, &c).await;
    results(&first, &c).await;
    let old = std::fs::read(the_file(dir.path())).unwrap();

    // Another process writes: the version moves on, the file stays behind.
    let other = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    suite::upsert(&other, &c, vec![suite::point(7000, vector(10_000, 99), json!({"group": 2}))]).await;
    assert_eq!(std::fs::read(the_file(dir.path())).unwrap(), old, "a write does not touch the file");
    let fresh = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    let got = results(&fresh, &c).await;
    assert_eq!(got[1][0].0, suite::point_id(7000), "the other handle's write is seen");
    assert_eq!(fresh.load_stats(), stats(1, 0, 1, 1), "stale file rejected, database read, file rewritten");
    assert_ne!(std::fs::read(the_file(dir.path())).unwrap(), old);
    assert_eq!(from_database(dir.path(), &c).await, got);

    // The first handle's copy is stale too; the file is current again, so it reloads from the file.
    assert_eq!(results(&first, &c).await, got);
    assert_eq!(first.load_stats(), stats(1, 1, 0, 1));

    // Deletes (by id and by filter) from elsewhere are seen as well.
    other.delete(&c, vec![suite::point_id(7000)]).await.unwrap();
    let gone =
        suite::filter(json!({"must": [{"match": {"key": "metadata.group", "value": 2}}, {"range": {"key": "chunk", "range": {"lt": 1}}}]}));
    assert!(other.delete_by_filter(&c, &gone).await.unwrap().unwrap() > 50);
    let newest = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    let got = results(&newest, &c).await;
    assert!(got.iter().flatten().all(|(_, _, p)| p.metadata["group"] != json!(2) || p.chunk > 0), "those points were deleted");
    assert!(got.iter().flatten().any(|(_, _, p)| p.metadata["group"] == json!(2)), "the others were not");
    assert_eq!(newest.load_stats(), stats(1, 0, 1, 1));
    assert_eq!(results(&EmbeddedIndex::open(&db_path(dir.path())).await.unwrap(), &c).await, got);
}

/// What happens to the file between writing and the next load.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// One bit flipped at this fraction of the file.
    Flip(f64),
    /// Cut to this fraction of its length.
    Truncate(f64),
    Empty,
    /// The same length of other bytes.
    Garbage,
    /// The format version field (bytes 8..12) set to another version.
    FormatVersion(u32),
    /// One byte appended.
    Longer,
    /// Another collection's valid file in its place.
    Swapped,
}

#[rstest]
#[case::flip_in_header(Damage::Flip(0.0))]
#[case::flip_in_ids(Damage::Flip(0.02))]
#[case::flip_in_payloads(Damage::Flip(0.1))]
#[case::flip_in_vectors(Damage::Flip(0.5))]
#[case::flip_in_codes(Damage::Flip(0.99))]
#[case::flip_last_byte(Damage::Flip(1.0))]
#[case::truncated_in_header(Damage::Truncate(0.0001))]
#[case::truncated_in_half(Damage::Truncate(0.5))]
#[case::truncated_by_one_byte(Damage::Truncate(0.999_999))]
#[case::empty(Damage::Empty)]
#[case::garbage(Damage::Garbage)]
#[case::newer_format(Damage::FormatVersion(3))]
#[case::first_format(Damage::FormatVersion(1))]
#[case::older_format(Damage::FormatVersion(0))]
#[case::longer(Damage::Longer)]
#[case::another_collections_file(Damage::Swapped)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_file_is_not_used_and_is_rewritten(#[case] damage: Damage) {
    let dir = tempfile::tempdir().unwrap();
    let c = name();
    let writer = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    fill(&writer, &c).await;
    let want = results(&writer, &c).await;
    let file = the_file(dir.path());
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    let at = |f: f64| ((good.len() - 1) as f64 * f) as usize;
    match damage {
        Damage::Flip(f) => bad[at(f)] ^= 0x04,
        Damage::Truncate(f) => bad.truncate(at(f)),
        Damage::Empty => bad.clear(),
        Damage::Garbage => bad.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 31 % 251) as u8),
        Damage::FormatVersion(v) => bad[8..12].copy_from_slice(&v.to_le_bytes()),
        Damage::Longer => bad.push(0),
        Damage::Swapped => {
            // A second collection with other points, loaded once so it has its own file, which then takes the
            // first one's name.
            let other = suite::index_name("cs_test_other");
            suite::ensure(&writer, &other, DIM, Distance::Cosine).await;
            suite::upsert(&writer, &other, points(0..POINTS, 1)).await;
            results(&writer, &other).await;
            let theirs = files(dir.path(), ".snap").into_iter().find(|p| *p != file).unwrap();
            bad = std::fs::read(theirs).unwrap();
        }
    }
    assert_ne!(bad, good);
    std::fs::write(&file, &bad).unwrap();

    let reader = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    assert_eq!(results(&reader, &c).await, want, "{damage:?}: the database's answers");
    assert_eq!(reader.load_stats(), stats(1, 0, 1, 1), "{damage:?}: rejected, read from the database, rewritten");
    assert_eq!(std::fs::read(&file).unwrap(), good, "{damage:?}: the same collection state gives the same file");
    let again = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    assert_eq!(results(&again, &c).await, want);
    assert_eq!(again.load_stats(), stats(0, 1, 0, 0), "{damage:?}: the rewritten file is used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_files_are_ignored_and_old_ones_removed() {
    let dir = tempfile::tempdir().unwrap();
    let c = name();
    let writer = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    fill(&writer, &c).await;
    let want = results(&writer, &c).await;
    let file = the_file(dir.path());
    let id = file.file_stem().unwrap().to_str().unwrap().to_owned();
    // What writers killed at various moments leave: an empty file, a partial copy, a complete copy of a stale state.
    let good = std::fs::read(&file).unwrap();
    let snap = snapshot_dir(dir.path());
    let young = snap.join(format!(".{id}.snap.4242-0.tmp"));
    let old = snap.join(format!(".{id}.snap.4242-1.tmp"));
    let older = snap.join(format!(".{id}.snap.4243-0.tmp"));
    std::fs::write(&young, &good[..good.len() / 3]).unwrap();
    std::fs::write(&old, b"").unwrap();
    std::fs::write(&older, &good).unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    for p in [&old, &older] {
        std::fs::File::options().write(true).open(p).unwrap().set_modified(long_ago).unwrap();
    }
    std::fs::remove_file(&file).unwrap();

    // With no file, the temporary ones are not taken for it.
    let reader = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    assert_eq!(results(&reader, &c).await, want);
    assert_eq!(reader.load_stats(), stats(1, 0, 0, 1), "the database, not a temporary file");
    // Writing the file cleaned up those left long ago, not the young one (its writer may still be at work).
    assert_eq!(files(dir.path(), ".tmp"), [young]);
    let again = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    assert_eq!(results(&again, &c).await, want);
    assert_eq!(again.load_stats(), stats(0, 1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_dropped_collections_are_removed_and_small_collections_get_none() {
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedIndex::open(&db_path(dir.path())).await.unwrap();
    let (a, b, small) = (suite::index_name("cs_test_a"), suite::index_name("cs_test_b"), suite::index_name("cs_test_small"));
    for c in [&a, &b] {
        fill(&index, c).await;
        results(&index, c).await;
    }
    assert_eq!(files(dir.path(), ".snap").len(), 2);

    // Dropped through the index: its file goes with it.
    let a_file = files(dir.path(), ".snap")[0].clone();
    assert!(index.drop_collection(&a).await.unwrap());
    assert_eq!(files(dir.path(), ".snap").len(), 1);
    assert!(!a_file.exists());

    // Dropped by something that did not remove the file (a process killed right after its commit): the next file
    // written removes it.
    let b_file = the_file(dir.path());
    let mut conn = raw(&db_path(dir.path())).await;
    sqlx::query("DELETE FROM index_collections WHERE name = 'cs_test_b'").execute(&mut conn).await.unwrap();
    drop(conn);
    fill(&index, &a).await;
    results(&index, &a).await;
    assert_eq!(files(dir.path(), ".snap").len(), 1);
    assert!(!b_file.exists(), "the dropped collection's file was cleaned up");

    // A small collection loads from the database in no time: no file.
    suite::ensure(&index, &small, 4, Distance::Dot).await;
    suite::upsert(&index, &small, (0..100).map(|n| suite::point(n, vec![n as f32, 1.0, 0.0, 0.0], json!({}))).collect()).await;
    let before = index.load_stats();
    suite::search(&index, &small, vec![1.0, 0.0, 0.0, 0.0], 3, None).await;
    assert_eq!(index.load_stats().files_written, before.files_written);
    assert_eq!(files(dir.path(), ".snap").len(), 1);
}

/// A database deleted and created anew starts its collection ids again at 1 and its versions at 0: only the write
/// stamp keeps an old file from passing for the new collection at the same id and version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_a_deleted_database_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let c = name();
    let path = db_path(dir.path());
    {
        let index = EmbeddedIndex::open(&path).await.unwrap();
        fill(&index, &c).await;
        results(&index, &c).await;
        index.close().await;
    }
    let old = the_file(dir.path());
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", path.display())).ok();
    }
    // The same writes with other vectors: same id, same version.
    let index = EmbeddedIndex::open(&path).await.unwrap();
    suite::ensure(&index, &c, DIM, Distance::Cosine).await;
    for batch in points(0..POINTS, 5).chunks(500) {
        suite::upsert(&index, &c, batch.to_vec()).await;
    }
    index.delete(&c, (0..10).map(suite::point_id).collect()).await.unwrap();
    assert_eq!(the_file(dir.path()), old, "the same file name");
    let fresh = EmbeddedIndex::open(&path).await.unwrap();
    let got = results(&fresh, &c).await;
    assert_eq!(fresh.load_stats(), stats(1, 0, 1, 1), "the old file is stale");
    assert_eq!(from_database(dir.path(), &c).await, got);
}

/// `kill -9` of a process at any moment of writing a snapshot file leaves nothing that loads wrong data. The test
/// runs itself as the child: with `COLSTORE_EMBEDDED_SNAPSHOT_CHILD` set it changes the collection and searches it
/// through a new handle (which loads it from the database and rewrites the file), forever, printing when each
/// search starts and ends.
#[test]
fn snapshot_files_survive_kill_9_at_any_moment() {
    const CHILD: &str = "COLSTORE_EMBEDDED_SNAPSHOT_CHILD";
    const BIG: u64 = 12_000;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let c = name();
    if let Some(path) = std::env::var_os(CHILD) {
        rt.block_on(async {
            let path = PathBuf::from(path);
            let writer = EmbeddedIndex::open(&path).await.unwrap();
            for round in 0u64.. {
                suite::upsert(&writer, &c, points(round % BIG..round % BIG + 1, round)).await;
                let reader = EmbeddedIndex::open(&path).await.unwrap();
                println!("search {round}");
                suite::search(&reader, &c, vector(round, 3), 5, None).await;
                println!("done {round}");
            }
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    rt.block_on(async {
        let index = EmbeddedIndex::open(&path).await.unwrap();
        suite::ensure(&index, &c, DIM, Distance::Cosine).await;
        for batch in points(0..BIG, 0).chunks(1000) {
            suite::upsert(&index, &c, batch.to_vec()).await;
        }
        index.close().await;
    });
    let mut seed = u64::from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos()) | 1;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    // A search ends with writing the file, so kills aim at the last part of a search; a kill that left a temporary
    // file behind hit a write. Kills go on until three did (at most 40 kills); at least one must have, or the test
    // proved nothing about a write cut short.
    let mut writes_hit = 0;
    let mut kills = 0;
    for kill in 0..40u32 {
        if writes_hit >= 3 {
            break;
        }
        kills += 1;
        let temps_before = files(dir.path(), ".tmp").len();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "snapshot_files::snapshot_files_survive_kill_9_at_any_moment", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || lines.next().expect("the child runs rounds").unwrap();
        let mut search = Duration::ZERO;
        for _ in 0..2 {
            while !next().starts_with("search ") {}
            let started = std::time::Instant::now();
            while !next().starts_with("done ") {}
            search = search.max(started.elapsed());
        }
        while !next().starts_with("search ") {}
        let delay = search.mul_f64(0.5 + 0.6 * random());
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        writes_hit += usize::from(files(dir.path(), ".tmp").len() > temps_before);
        rt.block_on(async {
            let index = EmbeddedIndex::open(&path).await.unwrap();
            let got = results(&index, &c).await;
            let s = index.load_stats();
            let when = format!("kill {kill}, {delay:?} into a search of about {search:?}: {s:?}");
            assert_eq!(s.from_database + s.from_snapshot_file, 1, "{when}");
            index.close().await;
            assert_eq!(from_database(dir.path(), &c).await, got, "{when}");
        });
    }
    println!("{writes_hit} of {kills} kills hit a snapshot file write");
    assert!(writes_hit >= 1, "none of {kills} kills hit a snapshot file write: the test proved nothing about one");
}
