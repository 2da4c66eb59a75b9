//! A micro-benchmark of the search kernel, for `cargo xtask bench` and the crate's own timing test.
//!
//! It measures what a search costs once the collection is in memory (the steady state: the in-memory copy is loaded
//! once and kept until the collection changes): the int8 pre-scan, exact rescoring of the candidates and ranking,
//! i.e. what `VectorIndex::search` runs; and, for comparison, the full exact `f32` scan it replaces (same results).
//! It does not touch SQLite. Build with optimisations (`--release`) for meaningful figures.

use std::time::{Duration, Instant};

use colstore_domain::{Distance, PointId};
use uuid::Uuid;

use crate::kernel;
use crate::snapshot::{self, Snapshot};

/// Hits per query, as `col search` asks by default.
pub const BENCH_TOP_K: usize = 10;

/// What [`search_bench`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchTimings {
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
pub fn search_bench(points: usize, dim: usize, queries: usize) -> SearchTimings {
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
    let at = |t: &[Duration], p: usize| t[((t.len() * p).div_ceil(100)).saturating_sub(1).min(t.len() - 1)];
    SearchTimings { points, dim, queries, threads, p50: at(&times, 50), p99: at(&times, 99), full_scan_p50: at(&full, 50) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_counted() {
        let t = search_bench(300, 8, 7);
        assert_eq!((t.points, t.dim, t.queries, t.threads), (300, 8, 7, 1));
        assert!(t.p50 <= t.p99);
        assert!(t.full_scan_p50 > Duration::ZERO);
        assert!(t.to_string().starts_with("exact cosine top-10 over 300 x 8 f32 on 1 thread(s), 7 queries: p50 "), "{t}");
    }
}
