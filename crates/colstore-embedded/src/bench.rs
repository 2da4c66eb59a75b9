//! Micro-benchmarks of the index, for the crate's own timing tests (compiled in test builds only; `cargo xtask bench`
//! measures the index through `col` and the composition root).
//!
//! [`search_bench`] measures what a search costs once the collection is in memory (the steady state: the in-memory
//! copy is loaded once and kept until the collection changes): the int8 pre-scan, exact rescoring of the candidates
//! and ranking, i.e. what `VectorIndex::search` runs; and, for comparison, the full exact `f32` scan it replaces (same
//! results). It does not touch SQLite.
//!
//! [`cold_load_bench`] measures what the first search of a new process pays before that: loading the in-memory copy
//! from the database, writing its snapshot file, and loading it from that file.
//!
//! Build with optimisations (`--release`) for meaningful figures.

use std::path::Path;
use std::time::{Duration, Instant};

use colstore_domain::ports::VectorIndex;
use colstore_domain::{
    CollectionName, ContentHash, Dimension, Distance, DocKey, EmbedderId, IndexName, Payload, Point, PointId, VectorSettings,
};
use uuid::Uuid;

use crate::snapshot::{self, Snapshot};
use crate::{EmbeddedIndex, kernel, sidecar};

/// Hits per query, as `col search` asks by default.
pub(crate) const BENCH_TOP_K: usize = 10;

/// What [`search_bench`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SearchTimings {
    /// Points searched.
    pub points: usize,
    /// Their dimension.
    pub dim: usize,
    /// Queries timed.
    pub queries: usize,
    /// Threads one search used.
    pub threads: usize,
    /// Median latency of one query.
    pub p50: Duration,
    /// 99th percentile latency of one query.
    pub p99: Duration,
    /// Median latency of the full `f32` scan over the same queries (the path for Euclidean collections).
    pub full_scan_p50: Duration,
}

impl std::fmt::Display for SearchTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exact cosine top-{BENCH_TOP_K} over {} x {} f32 on {} thread(s), {} queries: p50 {:.2} ms, p99 {:.2} ms \
             (full f32 scan: p50 {:.2} ms)",
            self.points,
            self.dim,
            self.threads,
            self.queries,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.full_scan_p50.as_secs_f64() * 1e3
        )
    }
}

/// Deterministic pseudo-random floats in [-0.5, 0.5) (xorshift64).
fn fill(seed: u64, out: &mut [f32]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for v in out {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
    }
}

/// Builds a cosine collection of `points` pseudo-random normalised vectors of `dim` floats (with empty payloads),
/// then times `queries` top-10 searches with pseudo-random queries, returning the median and 99th percentile, and
/// the median of the full scan over the same queries. A warm-up query runs first so page faults of the fresh
/// allocation are not counted.
///
/// Uniformly random vectors are the easy case for the pre-scan (real embeddings cluster, so more candidates need
/// rescoring); the full-scan figure is the worst case.
///
/// # Panics
/// When `points`, `dim` or `queries` is zero.
pub(crate) fn search_bench(points: usize, dim: usize, queries: usize) -> SearchTimings {
    assert!(points > 0 && dim > 0 && queries > 0, "search_bench needs at least one point, dimension and query");
    let mut snap = Snapshot::new(0, 0, dim, Distance::Cosine);
    snap.reserve(points);
    let mut v = vec![0f32; dim];
    for i in 0..points {
        fill(i as u64 + 1, &mut v);
        kernel::normalise(&mut v);
        snap.upsert(PointId(Uuid::from_u128(i as u128)), &v, "{}".into(), None);
    }
    let mut q = vec![0f32; dim];
    fill(u64::MAX, &mut q);
    kernel::normalise(&mut q);
    let threads = snapshot::threads_for(points, dim);
    let _warm = snap.search(&q, BENCH_TOP_K, None);
    let search = |q: &[f32]| snap.search(q, BENCH_TOP_K, None).unwrap_or_default();
    let _warm = snap.search_with_threads(&q, BENCH_TOP_K, None, threads);
    let mut times = Vec::with_capacity(queries);
    let mut full = Vec::with_capacity(queries);
    for i in 0..queries {
        fill(u64::MAX - 1 - i as u64, &mut q);
        kernel::normalise(&mut q);
        let started = Instant::now();
        let hits = search(&q);
        times.push(started.elapsed());
        let started = Instant::now();
        let reference = snap.search_with_threads(&q, BENCH_TOP_K, None, threads);
        full.push(started.elapsed());
        let ids = |h: &[snapshot::Hit]| h.iter().map(|h| (h.id, h.score.to_bits())).collect::<Vec<_>>();
        assert_eq!(ids(&hits), ids(&reference), "the pre-scan returns exactly what the full scan does");
    }
    times.sort_unstable();
    full.sort_unstable();
    SearchTimings {
        points,
        dim,
        queries,
        threads,
        p50: percentile(&times, 50),
        p99: percentile(&times, 99),
        full_scan_p50: percentile(&full, 50),
    }
}

/// The `p`th percentile of `sorted` by the nearest-rank method: the smallest value with at least `p` % of the values
/// at or below it.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() * p).div_ceil(100)).saturating_sub(1).min(sorted.len() - 1)]
}

/// What [`cold_load_bench`] measured (medians over its runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColdLoadTimings {
    /// Points in the collection.
    pub points: usize,
    /// Their dimension.
    pub dim: usize,
    /// Times each path was measured.
    pub runs: usize,
    /// Loading the in-memory copy from SQLite on a new handle: decoding every row and quantising every vector (what
    /// every new process paid before snapshot files).
    pub from_database: Duration,
    /// Writing the snapshot file of that copy, synced to disk.
    pub write_file: Duration,
    /// Loading the in-memory copy from the snapshot file on a new handle, checksum included.
    pub from_file: Duration,
    /// The snapshot file's size.
    pub file_bytes: u64,
}

impl std::fmt::Display for ColdLoadTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "cold load of {} x {} (cosine), median of {}: from SQLite {:.1} ms, from the snapshot file {:.1} ms \
             ({:.1} MB, written in {:.1} ms)",
            self.points,
            self.dim,
            self.runs,
            ms(self.from_database),
            ms(self.from_file),
            self.file_bytes as f64 / 1e6,
            ms(self.write_file)
        )
    }
}

/// Fills a fresh index in `dir` with a cosine collection of `points` pseudo-random vectors of `dim` floats and
/// payloads shaped like those `col sync` writes, then `runs` times: opens a new handle and loads the collection from
/// the database (timed), writes its snapshot file (timed), opens another new handle and loads the collection as a
/// search does, from the file (timed), and checks both copies are identical. The operating system's page cache is
/// warm (a process started right after another, as in repeated `col search`).
///
/// # Errors
/// A description of what failed.
///
/// # Panics
/// When `points`, `dim` or `runs` is zero.
pub(crate) fn cold_load_bench(dir: &Path, points: usize, dim: usize, runs: usize) -> Result<ColdLoadTimings, String> {
    assert!(points > 0 && dim > 0 && runs > 0, "cold_load_bench needs at least one point, dimension and run");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(cold_load(dir, points, dim, runs))
}

async fn cold_load(dir: &Path, points: usize, dim: usize, runs: usize) -> Result<ColdLoadTimings, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("cannot {what}: {e}");
    let path = dir.join("index").join("embedded.db");
    let collection = CollectionName::parse("bench").map_err(|e| fail("name the collection", &e))?;
    let name = IndexName::parse("cs_bench_cold").map_err(|e| fail("name the index", &e))?;
    {
        let index = EmbeddedIndex::open(&path).await.map_err(|e| fail("open the index", &e))?;
        let dimension = Dimension::new(u32::try_from(dim).unwrap_or(u32::MAX)).map_err(|e| fail("use the dimension", &e))?;
        let settings =
            VectorSettings { embedder: EmbedderId { kind: "bench".into(), model: "random".into(), dimension }, distance: Distance::Cosine };
        index.ensure_collection(&name, &settings).await.map_err(|e| fail("create the collection", &e))?;
        let mut v = vec![0f32; dim];
        for start in (0..points).step_by(1024) {
            let mut batch = Vec::with_capacity(1024);
            for i in start..points.min(start + 1024) {
                fill(i as u64 + 1, &mut v);
                let key = DocKey::parse(&format!("docs/doc-{i:07}.md")).map_err(|e| fail("make a key", &e))?;
                let hash = ContentHash::of(key.as_str().as_bytes());
                let payload = Payload {
                    collection: collection.clone(),
                    key,
                    chunk: (i % 4) as u32,
                    content_hash: hash,
                    chunk_hash: ContentHash::of(format!("{i}").as_bytes()),
                    metadata: serde_json::Map::new(),
                };
                batch.push(Point { id: PointId(Uuid::from_u128(i as u128 * 0x9E37_79B9)), vector: v.clone(), payload });
            }
            index.upsert(&name, batch).await.map_err(|e| fail("write points", &e))?;
        }
        index.close().await;
    }
    let mut database = Vec::with_capacity(runs);
    let mut write = Vec::with_capacity(runs);
    let mut file = Vec::with_capacity(runs);
    let mut file_bytes = 0;
    for _ in 0..runs {
        let index = EmbeddedIndex::open(&path).await.map_err(|e| fail("open the index", &e))?;
        let started = Instant::now();
        let (loaded, info) = index.load(&name).await.map_err(|e| fail("load from the database", &e))?;
        database.push(started.elapsed());
        let started = Instant::now();
        file_bytes = sidecar::write(index.snapshot_dir(), &loaded, info.stamp).map_err(|e| fail("write the snapshot file", &e))?;
        write.push(started.elapsed());
        index.close().await;

        let fresh = EmbeddedIndex::open(&path).await.map_err(|e| fail("open the index", &e))?;
        let started = Instant::now();
        let from_file = fresh.snapshot(&name).await.map_err(|e| fail("load from the snapshot file", &e))?;
        file.push(started.elapsed());
        let stats = fresh.load_stats();
        if (stats.from_snapshot_file, stats.from_database) != (1, 0) {
            return Err(format!("the second handle did not load from the snapshot file: {stats:?}"));
        }
        if !loaded.same_rows(&from_file) {
            return Err("the copy from the snapshot file differs from the copy from the database".into());
        }
        fresh.close().await;
    }
    for t in [&mut database, &mut write, &mut file] {
        t.sort_unstable();
    }
    let median = |t: &[Duration]| t[(t.len() - 1) / 2];
    Ok(ColdLoadTimings {
        points,
        dim,
        runs,
        from_database: median(&database),
        write_file: median(&write),
        from_file: median(&file),
        file_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On 20 000 x 384, the pre-scan returns exactly the full scan's hits for 10 queries (the check inside
    /// `search_bench`), and prints the latency (no assertion on time: machines differ, and debug builds are slow).
    /// `COLSTORE_BENCH_POINTS` overrides the size, e.g. 100000 with `--release` for the target figure.
    #[test]
    fn search_timing() {
        let points = std::env::var("COLSTORE_BENCH_POINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        let t = search_bench(points, 384, 10);
        println!("embedded index search ({}): {t}", if cfg!(debug_assertions) { "debug build" } else { "release build" });
    }

    /// Nearest-rank percentiles: off-by-one errors here would misreport every figure in docs/BENCHMARKS.md.
    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        let hundred = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&hundred, 50), Duration::from_millis(50));
        assert_eq!(percentile(&hundred, 99), Duration::from_millis(99));
        assert_eq!(percentile(&hundred, 100), Duration::from_millis(100));
        let seven = ms(&[1, 2, 3, 4, 5, 6, 70]);
        assert_eq!(percentile(&seven, 50), Duration::from_millis(4));
        assert_eq!(percentile(&seven, 99), Duration::from_millis(70));
        assert_eq!(percentile(&ms(&[9]), 1), Duration::from_millis(9));
    }

    /// The cold-load paths (from SQLite, writing the snapshot file, from the snapshot file) give the same rows, on
    /// 5 000 x 16, and prints their times. `COLSTORE_BENCH_POINTS` makes it a
    /// measurement at 384 dimensions, e.g. 100000 with
    /// `cargo test -p colstore-embedded --release --lib -- --nocapture cold_load` (a minute or more).
    #[test]
    fn cold_load_paths_agree() {
        let (points, dim, runs) = match std::env::var("COLSTORE_BENCH_POINTS").ok().and_then(|v| v.parse().ok()) {
            Some(n) => (n, 384, 3),
            None => (5_000, 16, 1),
        };
        let dir = tempfile::tempdir().unwrap();
        let t = cold_load_bench(dir.path(), points, dim, runs).expect("the loads agree");
        println!("embedded index ({}): {t}", if cfg!(debug_assertions) { "debug build" } else { "release build" });
    }

    #[test]
    fn search_bench_reports_what_it_ran() {
        let t = search_bench(300, 8, 7);
        assert_eq!((t.points, t.dim, t.queries, t.threads), (300, 8, 7, 1));
        assert!(t.full_scan_p50 > Duration::ZERO);
        assert!(t.to_string().starts_with("exact cosine top-10 over 300 x 8 f32 on 1 thread(s), 7 queries: p50 "), "{t}");
    }

    #[test]
    fn cold_loads_are_timed_on_both_paths() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t = cold_load_bench(dir.path(), 1500, 48, 2).expect("the bench runs");
        assert_eq!((t.points, t.dim, t.runs), (1500, 48, 2));
        assert!(t.file_bytes > (1500 * 48 * 5) as u64, "{t}");
        assert!(t.to_string().starts_with("cold load of 1500 x 48 (cosine), median of 2: from SQLite "), "{t}");
    }
}
