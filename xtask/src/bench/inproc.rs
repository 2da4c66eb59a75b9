//! The figures measured inside this process rather than through the `col` binary: exact search in the vector index
//! and the job queue. Both go through `colstore-wiring` exactly as `col` does — `init` a store, `Store::open` it
//! (without environment overrides), then `Store::index` and `Store::queue` — so what is measured is the configured
//! production adapter (today the embedded index and `SqliteRepo`), and xtask keeps to tidy's adapters-via-wiring rule.
//!
//! The stores live in the benchmark's temporary directory under `target/`, on the same disk as a user's store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use colstore_domain::ports::{JobQueue, JobSpec, SearchRequest, VectorIndex, WorkerId};
use colstore_domain::{
    CollectionName, ContentHash, Dimension, Distance, DocKey, EmbedderId, IndexName, Payload, Point, PointId, VectorSettings,
};
use colstore_wiring::{StorageMode, Store, SystemClock};

use super::corpus::SplitMix64;
use super::report::{QueueTimings, SearchTimings};

/// Points in the searched collection and their dimension: the target is stated for 100 000 × 384.
pub(crate) const SEARCH_POINTS: usize = 100_000;
pub(crate) const SEARCH_DIM: u32 = 384;
/// Timed queries: enough for a 99th percentile that is not simply the maximum.
pub(crate) const SEARCH_QUERIES: usize = 200;
/// Hits per query, as `col search` asks by default.
pub(crate) const SEARCH_K: usize = 10;
/// Most threads one search of the embedded index uses (`MAX_THREADS` in colstore-embedded's `snapshot.rs`); it
/// uses `min(available_parallelism, this)` for a collection of this size.
const INDEX_MAX_THREADS: usize = 8;

/// Jobs drained per queue figure, and the claim size of the batched one.
pub(crate) const QUEUE_JOBS: usize = 20_000;
pub(crate) const QUEUE_BATCH: usize = 500;
/// Long enough that no lease runs out during a run.
const QUEUE_LEASE: Duration = Duration::from_secs(3600);
const QUEUE_KIND: &str = "bench";

const SEED: u64 = 0x5EA2_C4B3_4C40_0001;

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    // `col` runs on a current-thread runtime too; the index moves large scans to the blocking pool itself.
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|err| format!("cannot start a tokio runtime: {err}"))
}

/// `col init DIR` and opens the store, ignoring the user's `COLSTORE_*` overrides.
async fn new_store(dir: &Path) -> Result<Store, String> {
    let store_dir = colstore_wiring::init(dir, StorageMode::Sqlite, None, None, &|_| None, Arc::new(SystemClock))
        .await
        .map_err(|err| format!("cannot create a store in {}: {err}", dir.display()))?;
    Store::open(store_dir, &|_| None).await.map_err(|err| format!("cannot open the store in {}: {err}", dir.display()))
}

/// A pseudo-random unit vector (coordinates uniform in [-1, 1), then L2-normalised).
fn unit_vector(rng: &mut SplitMix64, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Process CPU time (user + system, all threads) from `/proc/self/stat`, or `None` where there is no procfs.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces: state is field 3, utime 14,
    // stime 15, in clock ticks of USER_HZ, which is 100 on every Linux architecture.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Writes `points` random unit vectors of `dim` floats into a cosine collection of a fresh store in `dir`, with
/// payloads shaped like those `col sync` writes, then times `queries` top-`SEARCH_K` searches with random queries
/// through `VectorIndex::search`. One untimed search first loads the in-memory copy, as the first search of a
/// long-running process would.
pub(crate) fn search(dir: &Path, points: usize, dim: u32, queries: usize) -> Result<SearchTimings, String> {
    assert!(points >= SEARCH_K && queries > 0, "search needs at least {SEARCH_K} points and one query");
    runtime()?.block_on(async {
        let store = new_store(dir).await?;
        let index = store.index().await.map_err(|err| format!("cannot open the vector index: {err}"))?;
        let result = search_in(&store, index.as_ref(), points, dim, queries).await;
        store.close().await;
        result
    })
}

async fn search_in(store: &Store, index: &dyn VectorIndex, points: usize, dim: u32, queries: usize) -> Result<SearchTimings, String> {
    let collection = CollectionName::parse("bench").map_err(|err| err.to_string())?;
    let name = IndexName::for_collection(store.store_id(), &collection);
    let dimension = Dimension::new(dim).map_err(|err| err.to_string())?;
    let settings =
        VectorSettings { embedder: EmbedderId { kind: "bench".into(), model: "random".into(), dimension }, distance: Distance::Cosine };
    let fail = |what: &str, err: &dyn std::fmt::Display| format!("the vector index failed to {what}: {err}");
    index.ensure_collection(&name, &settings).await.map_err(|err| fail("create the collection", &err))?;

    let mut rng = SplitMix64::new(SEED);
    let dim_u32 = dim;
    let dim = dim as usize;
    let batch = index.capabilities().max_batch_points.clamp(1, 1024);
    let mut written = 0;
    while written < points {
        let batch_points: Vec<Point> = (written..points.min(written + batch))
            .map(|i| {
                let key = DocKey::parse(&format!("doc-{i:07}.txt")).expect("a valid key");
                let content_hash = ContentHash::of(key.as_str().as_bytes());
                Point {
                    id: PointId::derive(store.store_id(), &collection, &key, 0),
                    vector: unit_vector(&mut rng, dim),
                    payload: Payload {
                        collection: collection.clone(),
                        key,
                        chunk: 0,
                        chunk_hash: content_hash,
                        content_hash,
                        metadata: serde_json::Map::new(),
                    },
                }
            })
            .collect();
        written += batch_points.len();
        index.upsert(&name, batch_points).await.map_err(|err| fail("write points", &err))?;
    }

    let request = |vector| SearchRequest { vector, limit: SEARCH_K, filter: None };
    index.search(&name, request(unit_vector(&mut rng, dim))).await.map_err(|err| fail("search", &err))?;
    let mut latencies = Vec::with_capacity(queries);
    let cpu_before = cpu_time();
    let wall_before = Instant::now();
    for _ in 0..queries {
        let query = request(unit_vector(&mut rng, dim));
        let started = Instant::now();
        let hits = index.search(&name, query).await.map_err(|err| fail("search", &err))?;
        latencies.push(started.elapsed());
        if hits.len() != SEARCH_K {
            return Err(format!("a search of {points} points returned {} hits, not {SEARCH_K}", hits.len()));
        }
    }
    let wall = wall_before.elapsed();
    let cpus_busy =
        cpu_before.zip(cpu_time()).map(|(before, after)| after.saturating_sub(before).as_secs_f64() / wall.as_secs_f64().max(1e-9));
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(SearchTimings { points, dim: dim_u32, k: SEARCH_K, latencies, threads: available.min(INDEX_MAX_THREADS), cpus_busy })
}

/// Two fresh stores under `dir`, `jobs` jobs enqueued in each (timed, but not against a target), then drained by one
/// worker: claim one job and complete it, repeated; and claim `batch` at a time and complete them with one
/// `complete_many` (one commit per batch).
pub(crate) fn queue(dir: &Path, jobs: usize, batch: usize) -> Result<QueueTimings, String> {
    runtime()?.block_on(async {
        let unbatched = drain(&dir.join("queue-unbatched"), jobs, 1).await?;
        let batched = drain(&dir.join("queue-batched"), jobs, batch).await?;
        Ok(QueueTimings {
            jobs,
            batch,
            enqueue: unbatched.enqueue,
            unbatched: unbatched.drain,
            unbatched_claims: unbatched.claims,
            batched: batched.drain,
            batched_claims: batched.claims,
        })
    })
}

/// How long one queue run's parts took.
struct Drained {
    enqueue: Duration,
    drain: Duration,
    /// The part of `drain` spent in `claim`.
    claims: Duration,
}

async fn drain(dir: &Path, jobs: usize, batch: usize) -> Result<Drained, String> {
    let store = new_store(dir).await?;
    let result = drain_in(store.queue().as_ref(), jobs, batch).await;
    store.close().await;
    result
}

async fn drain_in(queue: &dyn JobQueue, jobs: usize, batch: usize) -> Result<Drained, String> {
    let fail = |what: &str, err: &dyn std::fmt::Display| format!("the job queue failed to {what}: {err}");
    let started = Instant::now();
    for n in 0..jobs {
        let spec =
            JobSpec { kind: QUEUE_KIND.into(), dedup_key: None, payload: serde_json::json!({ "n": n }), max_attempts: 3, run_after: None };
        queue.enqueue(spec).await.map_err(|err| fail("enqueue", &err))?;
    }
    let enqueue = started.elapsed();

    let worker = WorkerId(format!("xtask-bench:{}", std::process::id()));
    let started = Instant::now();
    let mut done = 0;
    let mut claims = Duration::ZERO;
    loop {
        let claiming = Instant::now();
        let leases = queue.claim(&worker, vec![QUEUE_KIND.into()], batch, QUEUE_LEASE).await.map_err(|err| fail("claim", &err))?;
        claims += claiming.elapsed();
        if leases.is_empty() {
            break;
        }
        if batch == 1 {
            for lease in &leases {
                queue.complete(lease).await.map_err(|err| fail("complete", &err))?;
            }
        } else {
            let answers = queue.complete_many(&leases).await.map_err(|err| fail("complete a batch", &err))?;
            if let Some(Err(err)) = answers.iter().find(|a| a.is_err()) {
                return Err(fail("complete a job of a batch", err));
            }
        }
        done += leases.len();
    }
    let drain = started.elapsed();
    if done != jobs {
        return Err(format!("the queue handed out {done} jobs, not the {jobs} enqueued"));
    }
    Ok(Drained { enqueue, drain, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_vectors_are_normalised_and_differ() {
        let mut rng = SplitMix64::new(1);
        let a = unit_vector(&mut rng, 384);
        let b = unit_vector(&mut rng, 384);
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm(&a) - 1.0).abs() < 1e-4 && (norm(&b) - 1.0).abs() < 1e-4);
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x < 0.0) && a.iter().any(|&x| x > 0.0));
    }

    #[test]
    fn cpu_time_moves_with_work() {
        let Some(before) = cpu_time() else { return };
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_time().unwrap() >= before + Duration::from_millis(20), "{x}");
    }

    #[test]
    fn search_and_queue_run_on_a_small_store() {
        let dir = tempfile::tempdir().unwrap();
        let timings = search(&dir.path().join("search"), 50, 8, 5).unwrap();
        assert_eq!((timings.points, timings.dim, timings.k, timings.latencies.len()), (50, 8, SEARCH_K, 5));
        assert!(timings.threads >= 1);
        let queue = queue(&dir.path().join("queue"), 7, 3).unwrap();
        assert_eq!((queue.jobs, queue.batch), (7, 3));
        assert!(queue.unbatched > Duration::ZERO && queue.batched > Duration::ZERO);
    }
}
