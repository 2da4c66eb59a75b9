//! Turns the measurements into figures with their targets, the table printed on the terminal, and the section of
//! `docs/BENCHMARKS.md` that each run replaces.

use std::time::Duration;

use super::backup::BackupBench;
use super::large::LargeBench;
use super::peer::PeerBench;
use super::reconcile::ReconcileBench;
use super::remote::RemoteBench;

/// Ingest: `col add` of the whole corpus, in documents per second.
pub(crate) const INGEST_TARGET_DOCS_PER_S: f64 = 25_000.0;
/// Listing: median wall time of `col ls bench --limit 100`, process start included.
pub(crate) const LS_TARGET: Duration = Duration::from_millis(50);
/// Verification: `col verify`, in logical megabytes (10^6 bytes) per second.
pub(crate) const VERIFY_TARGET_MB_PER_S: f64 = 200.0;
/// Store size on disk after `col gc`, as a fraction of the logical bytes.
pub(crate) const SIZE_TARGET_RATIO: f64 = 0.55;
/// Sync: `col sync` of documents that make 100 000 chunks, with the `hash` embedder, in chunks per second.
pub(crate) const SYNC_TARGET_CHUNKS_PER_S: f64 = 40_000.0;
/// No-op re-sync: median wall time of `col sync` on a synced 100 000-document store, process start included.
pub(crate) const RESYNC_TARGET: Duration = Duration::from_secs(1);
/// Exact search over 100 000 × 384: latency of one top-10 query, median and 99th percentile.
pub(crate) const SEARCH_P50_TARGET: Duration = Duration::from_millis(15);
pub(crate) const SEARCH_P99_TARGET: Duration = Duration::from_millis(40);
/// `col search`, the whole process, on the main store (about 300 000 points at 100 000 documents).
pub(crate) const CLI_SEARCH_TARGET: Duration = Duration::from_millis(150);
/// Job queue on SQLite: claim + complete, one job at a time, in jobs per second.
pub(crate) const QUEUE_UNBATCHED_TARGET_JOBS_PER_S: f64 = 5_000.0;
/// Job queue on SQLite: claim 500 at a time, complete them with one `complete_many`, in jobs per second.
pub(crate) const QUEUE_BATCHED_TARGET_JOBS_PER_S: f64 = 30_000.0;

const BEGIN: &str = "<!-- BEGIN cargo xtask bench: generated, edits between these markers are overwritten -->";
const END: &str = "<!-- END cargo xtask bench -->";
const HEADER: &str = "# Benchmarks\n\n\
Figures measured by `cargo xtask bench` (`xtask/src/bench.rs`): the release `col` binary on generated corpora, and in\n\
process the vector index's exact search and the SQLite job queue. Re-measure one area with `--only`.\n\
Each run replaces the section between the markers below; text outside them is kept.\n";

/// The machine the figures were measured on.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cpus: String,
    pub(crate) memory_bytes: Option<u64>,
    /// Which of the vector extensions that matter for the search kernel (`avx2`, `avx512f`, `fma`) the CPU has;
    /// `None` when `/proc/cpuinfo` could not be read.
    pub(crate) vector_flags: Option<Vec<String>>,
    /// The vector extensions the code was compiled to use (`-C target-cpu` / `target-feature`).
    pub(crate) compiled_features: Vec<&'static str>,
}

impl Machine {
    fn describe(&self) -> String {
        let memory = self.memory_bytes.map_or_else(|| "unknown RAM".to_owned(), |bytes| format!("{:.1} GiB RAM", bytes as f64 / GIB));
        format!("{}, {} CPUs (nproc), {memory}", self.cpu, self.cpus)
    }

    /// What the CPU offers and what the build uses of it.
    fn vector_support(&self) -> String {
        let has = match &self.vector_flags {
            None => "CPU flags unknown".to_owned(),
            Some(flags) if flags.is_empty() => "CPU has none of avx2, avx512f, fma".to_owned(),
            Some(flags) => format!("CPU has {}", flags.join(", ")),
        };
        let uses = if self.compiled_features.is_empty() {
            "the build enables none of them (baseline target, e.g. x86-64 = SSE2; no `-C target-cpu`)".to_owned()
        } else {
            format!("the build enables {}", self.compiled_features.join(", "))
        };
        format!("{has}; {uses}")
    }
}

/// The vector extensions this build was compiled for, among those the search kernel could use. xtask is built by the
/// same cargo invocation, with the same flags, as the crates it measures in process.
pub(crate) fn compiled_features() -> Vec<&'static str> {
    let mut features = Vec::new();
    if cfg!(target_feature = "avx512f") {
        features.push("avx512f");
    }
    if cfg!(target_feature = "avx2") {
        features.push("avx2");
    }
    if cfg!(target_feature = "fma") {
        features.push("fma");
    }
    features
}

/// The main corpus: generated files in the store that ingest, re-sync and `col search` use.
#[derive(Debug, Clone)]
pub(crate) struct CorpusInfo {
    pub(crate) docs: usize,
    pub(crate) distinct: usize,
    pub(crate) logical_bytes: u64,
    pub(crate) seed: u64,
}

/// The ingest figures, on the main store.
#[derive(Debug, Clone)]
pub(crate) struct Ingest {
    pub(crate) add: Duration,
    pub(crate) ls: Vec<Duration>,
    pub(crate) verify: Duration,
    pub(crate) store_bytes: u64,
}

/// One `col --json sync`: its wall time and the counters it reported for the (only) collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SyncRun {
    pub(crate) elapsed: Duration,
    pub(crate) documents: u64,
    pub(crate) chunks: u64,
    pub(crate) cache_hits: u64,
    pub(crate) embedded: u64,
    pub(crate) embed_calls: u64,
    pub(crate) synced: u64,
    pub(crate) failed: u64,
}

/// `col sync` of the sync corpus (distinct files of about four chunks each) in a store of its own.
#[derive(Debug, Clone)]
pub(crate) struct ChunkSync {
    pub(crate) files: usize,
    pub(crate) logical_bytes: u64,
    pub(crate) seed: u64,
    /// Chunks the corpus makes with the default chunking, counted with the product's chunker.
    pub(crate) expected_chunks: usize,
    pub(crate) run: SyncRun,
}

/// In-process exact search.
#[derive(Debug, Clone)]
pub(crate) struct SearchTimings {
    pub(crate) points: usize,
    pub(crate) dim: u32,
    pub(crate) k: usize,
    /// One per timed query, in the order run.
    pub(crate) latencies: Vec<Duration>,
    /// Threads one search may use.
    pub(crate) threads: usize,
    /// Process CPU time ÷ wall time over the timed queries, when `/proc/self/stat` was readable.
    pub(crate) cpus_busy: Option<f64>,
}

impl SearchTimings {
    fn percentile(&self, p: usize) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// In-process job queue on SQLite.
#[derive(Debug, Clone)]
pub(crate) struct QueueTimings {
    /// Jobs drained in each of the two runs.
    pub(crate) jobs: usize,
    /// Claim size of the batched run.
    pub(crate) batch: usize,
    /// Enqueuing the jobs of the unbatched run (setup, one transaction per job).
    pub(crate) enqueue: Duration,
    pub(crate) unbatched: Duration,
    /// The part of `unbatched` spent claiming (the rest is completing).
    pub(crate) unbatched_claims: Duration,
    pub(crate) batched: Duration,
    /// The part of `batched` spent claiming.
    pub(crate) batched_claims: Duration,
}

/// What one run measured; the parts of the areas that were not run are `None` or empty.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measurements {
    /// The main store's corpus (ingest, the no-op re-sync and `col search` use that store).
    pub(crate) corpus: Option<CorpusInfo>,
    pub(crate) ingest: Option<Ingest>,
    pub(crate) sync: Option<ChunkSync>,
    /// The first `col sync` of the main store, which the re-sync and `col search` need (informational).
    pub(crate) first_sync: Option<SyncRun>,
    /// No-op `col sync` runs on the synced main store.
    pub(crate) resync: Vec<Duration>,
    pub(crate) search: Option<SearchTimings>,
    /// `col search` runs on the synced main store.
    pub(crate) cli_search: Vec<Duration>,
    pub(crate) queue: Option<QueueTimings>,
    /// Backups against restic (`backup.rs`).
    pub(crate) backup: Option<BackupBench>,
    /// Filesystem mode: reconcile against git status, and watch (`reconcile.rs`).
    pub(crate) reconcile: Option<ReconcileBench>,
    /// One large document through put, get, backup, restore, export and import (`large.rs`).
    pub(crate) large: Option<LargeBench>,
    /// `col` against the Qdrant fake on loopback (`remote.rs`).
    pub(crate) remote: Option<RemoteBench>,
    /// LangChain, the restore of a synced store, statements per document (`peer.rs`).
    pub(crate) peer: Option<PeerBench>,
    /// Known-item search on man pages (`retrieval.rs`).
    pub(crate) retrieval: Option<super::retrieval::RetrievalBench>,
    /// Filtered listing, keyword and hybrid search, ingest with full text (`query.rs`).
    pub(crate) query: Option<super::query::QueryBench>,
}

/// A run with its context, ready to print and record.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) date: String,
    pub(crate) machine: Machine,
    pub(crate) rustc: String,
    pub(crate) code: String,
    pub(crate) measurements: Measurements,
    /// The 1-minute load average when the measurements started and when they ended: other work on the machine
    /// (a build, a second benchmark) shows here and explains figures that are off.
    pub(crate) load: Option<(f64, f64)>,
    /// `col stats --json` after the ingest (pretty-printed when it parsed as JSON).
    pub(crate) stats: Option<String>,
    pub(crate) command: String,
}

/// One measured figure against its target, or an informational one without a target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) measured: String,
    pub(crate) target: String,
    /// Measured value ÷ target value, `None` for informational figures. Above 1 is good for throughputs and bad
    /// for times and sizes; `meets` says which.
    pub(crate) ratio: Option<f64>,
    pub(crate) meets: Option<bool>,
}

impl Figure {
    pub(crate) fn against(name: String, measured: String, target: String, ratio: f64, meets: bool) -> Self {
        Self { name, measured, target, ratio: Some(ratio), meets: Some(meets) }
    }

    pub(crate) fn info(name: String, measured: String) -> Self {
        Self { name, measured, target: "—".into(), ratio: None, meets: None }
    }

    fn ratio_text(&self) -> String {
        self.ratio.map_or_else(|| "—".into(), |ratio| format!("{ratio:.2}× target"))
    }

    fn verdict(&self) -> &'static str {
        match self.meets {
            Some(true) => "meets",
            Some(false) => "MISSES",
            None => "info",
        }
    }
}

const MB: f64 = 1e6;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Median of the samples (mean of the middle two for an even count); zero for no samples.
pub(crate) fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// The `p`th percentile by the nearest-rank method (the smallest sample with at least `p` % of the samples at or
/// below it); zero for no samples.
pub(crate) fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[(n * p).div_ceil(100).clamp(1, n) - 1],
    }
}

/// A duration as seconds, never zero, so rates stay finite on absurdly fast runs.
fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64().max(1e-9)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `1234567` → `"1 234 567"`, the grouping the targets are written with.
pub(crate) fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A rate, rounded and grouped.
fn rate(count: f64, elapsed: Duration) -> (f64, String) {
    let per_s = count / secs(elapsed);
    (per_s, group_thousands(per_s.round() as u64))
}

/// `median … ms, max … ms (n runs)`.
fn runs_text(samples: &[Duration]) -> String {
    let max = samples.iter().max().copied().unwrap_or_default();
    format!("median {:.1} ms, max {:.1} ms ({} runs)", ms(median(samples)), ms(max), samples.len())
}

impl Measurements {
    pub(crate) fn figures(&self) -> Vec<Figure> {
        let mut figures = Vec::new();
        if let (Some(corpus), Some(ingest)) = (&self.corpus, &self.ingest) {
            figures.extend(ingest.figures(corpus));
        }
        if let Some(sync) = &self.sync {
            let (per_s, text) = rate(sync.run.chunks as f64, sync.run.elapsed);
            figures.push(Figure::against(
                format!("Sync: `col sync`, {} chunks, `hash` embedder", group_thousands(sync.run.chunks)),
                format!(
                    "{text} chunks/s ({:.2} s; {} files, {} embedded in {} calls)",
                    sync.run.elapsed.as_secs_f64(),
                    group_thousands(sync.files as u64),
                    group_thousands(sync.run.embedded),
                    group_thousands(sync.run.embed_calls)
                ),
                format!("≥ {} chunks/s", group_thousands(SYNC_TARGET_CHUNKS_PER_S as u64)),
                per_s / SYNC_TARGET_CHUNKS_PER_S,
                per_s >= SYNC_TARGET_CHUNKS_PER_S,
            ));
        }
        let docs = self.corpus.as_ref().map_or(0, |corpus| corpus.docs as u64);
        if let Some(first) = &self.first_sync {
            let (_, chunks_per_s) = rate(first.chunks as f64, first.elapsed);
            let (_, docs_per_s) = rate(first.documents as f64, first.elapsed);
            figures.push(Figure::info(
                format!("Sync: first `col sync` of the {}-document store", group_thousands(docs)),
                format!(
                    "{chunks_per_s} chunks/s, {docs_per_s} docs/s ({:.2} s; {} chunks, {} from cache)",
                    first.elapsed.as_secs_f64(),
                    group_thousands(first.chunks),
                    group_thousands(first.cache_hits)
                ),
            ));
        }
        if !self.resync.is_empty() {
            let median = median(&self.resync);
            figures.push(Figure::against(
                format!("Re-sync: no-op `col sync` of the synced {}-document store", group_thousands(docs)),
                runs_text(&self.resync),
                format!("median < {} s", RESYNC_TARGET.as_secs()),
                ms(median) / ms(RESYNC_TARGET),
                median < RESYNC_TARGET,
            ));
        }
        if let Some(search) = &self.search {
            let size = format!("{} × {}", group_thousands(search.points as u64), search.dim);
            let context = format!("{} queries, {} threads", search.latencies.len(), search.threads);
            for (label, p, target) in [("p50", 50, SEARCH_P50_TARGET), ("p99", 99, SEARCH_P99_TARGET)] {
                let measured = search.percentile(p);
                figures.push(Figure::against(
                    format!("Search: exact top-{} over {size}, {label} (in process)", search.k),
                    format!("{:.2} ms ({context})", ms(measured)),
                    format!("{label} < {} ms", target.as_millis()),
                    ms(measured) / ms(target),
                    measured < target,
                ));
            }
        }
        if !self.cli_search.is_empty() {
            let points = self.first_sync.as_ref().map(|first| format!(", {} points", group_thousands(first.chunks))).unwrap_or_default();
            let median = median(&self.cli_search);
            figures.push(Figure::against(
                format!("Search: `col search` on the {}-document store{points}, whole process", group_thousands(docs)),
                runs_text(&self.cli_search),
                format!("median < {} ms", CLI_SEARCH_TARGET.as_millis()),
                ms(median) / ms(CLI_SEARCH_TARGET),
                median < CLI_SEARCH_TARGET,
            ));
        }
        if let Some(queue) = &self.queue {
            let (per_s, text) = rate(queue.jobs as f64, queue.unbatched);
            figures.push(Figure::against(
                "Queue: claim 1 + complete, unbatched (SQLite)".into(),
                format!(
                    "{text} jobs/s ({} jobs, {:.2} s, of which claims {:.2} s)",
                    group_thousands(queue.jobs as u64),
                    queue.unbatched.as_secs_f64(),
                    queue.unbatched_claims.as_secs_f64()
                ),
                format!("≥ {} jobs/s", group_thousands(QUEUE_UNBATCHED_TARGET_JOBS_PER_S as u64)),
                per_s / QUEUE_UNBATCHED_TARGET_JOBS_PER_S,
                per_s >= QUEUE_UNBATCHED_TARGET_JOBS_PER_S,
            ));
            let (per_s, text) = rate(queue.jobs as f64, queue.batched);
            figures.push(Figure::against(
                format!("Queue: claim {} + complete_many (SQLite)", queue.batch),
                format!(
                    "{text} jobs/s ({} jobs, {:.2} s, of which claims {:.2} s)",
                    group_thousands(queue.jobs as u64),
                    queue.batched.as_secs_f64(),
                    queue.batched_claims.as_secs_f64()
                ),
                format!("≥ {} jobs/s", group_thousands(QUEUE_BATCHED_TARGET_JOBS_PER_S as u64)),
                per_s / QUEUE_BATCHED_TARGET_JOBS_PER_S,
                per_s >= QUEUE_BATCHED_TARGET_JOBS_PER_S,
            ));
            let (_, text) = rate(queue.jobs as f64, queue.enqueue);
            figures.push(Figure::info(
                "Queue: enqueue, one job per transaction (setup)".into(),
                format!("{text} jobs/s ({} jobs, {:.2} s)", group_thousands(queue.jobs as u64), queue.enqueue.as_secs_f64()),
            ));
        }
        if let Some(backup) = &self.backup {
            figures.extend(backup.figures());
        }
        if let Some(peer) = &self.peer {
            figures.extend(peer.figures());
        }
        if let Some(reconcile) = &self.reconcile {
            figures.extend(reconcile.figures());
        }
        if let Some(large) = &self.large {
            figures.extend(large.figures());
        }
        if let Some(remote) = &self.remote {
            figures.extend(remote.figures());
        }
        if let Some(retrieval) = &self.retrieval {
            figures.extend(retrieval.figures());
        }
        if let Some(query) = &self.query {
            figures.extend(query.figures());
        }
        figures
    }

    /// Context lines: what data each area ran on, and how the search ran.
    fn context(&self, machine: &Machine) -> Vec<(&'static str, String)> {
        let mut lines = Vec::new();
        if let Some(corpus) = &self.corpus {
            lines.push((
                "Data",
                format!(
                    "{} files of 1–4 KiB text ({} distinct + {} byte-identical duplicates), {:.1} MB logical, seed {:#018x}",
                    group_thousands(corpus.docs as u64),
                    group_thousands(corpus.distinct as u64),
                    group_thousands((corpus.docs - corpus.distinct) as u64),
                    corpus.logical_bytes as f64 / MB,
                    corpus.seed
                ),
            ));
        }
        if let Some(sync) = &self.sync {
            let mut text = format!(
                "{} distinct files of about 3.3–3.5 KB, {} chunks with the default chunking (1200 characters, 200 overlap), \
                 {:.1} MB, seed {:#018x}",
                group_thousands(sync.files as u64),
                group_thousands(sync.expected_chunks as u64),
                sync.logical_bytes as f64 / MB,
                sync.seed
            );
            if sync.run.chunks != sync.expected_chunks as u64 {
                text.push_str(&format!(" (but `col sync` reported {} chunks)", group_thousands(sync.run.chunks)));
            }
            lines.push(("Sync data", text));
        }
        if let Some(search) = &self.search {
            let busy = search.cpus_busy.map(|busy| format!(", {busy:.2} CPUs busy on average while searching")).unwrap_or_default();
            lines.push((
                "Search",
                format!(
                    "{} random unit vectors × {} f32 (cosine), up to {} threads per search{busy}; {}",
                    group_thousands(search.points as u64),
                    search.dim,
                    search.threads,
                    machine.vector_support()
                ),
            ));
        }
        if let Some(backup) = &self.backup {
            lines.push(("Backup data", backup.context()));
        }
        if let Some(peer) = &self.peer {
            lines.push(("Peer data", peer.context()));
        }
        if let Some(reconcile) = &self.reconcile {
            lines.push(("Reconcile data", reconcile.context()));
        }
        if let Some(large) = &self.large {
            lines.push(("Large data", large.context()));
        }
        if let Some(remote) = &self.remote {
            lines.push(("Remote", remote.context()));
        }
        if let Some(retrieval) = &self.retrieval {
            lines.push(retrieval.context());
        }
        if let Some(query) = &self.query {
            lines.push(("Query data", query.context()));
        }
        lines
    }

    /// How each figure present was measured.
    fn notes(&self) -> String {
        let mut notes = vec![
            "Times are wall-clock times of the release `col` binary, process start included, unless marked in process; \
             stores are fresh `col init`s in a temporary directory under `target/`."
                .to_owned(),
        ];
        if self.ingest.is_some() {
            notes.push(
                "Ingest is `col add bench DIR` of the whole corpus; verify re-hashes every document (MB = 10^6 logical bytes \
                 per second); store size is the sum of the file sizes under `.colstore/` after `col gc`, divided by the \
                 logical bytes (duplicates included)."
                    .to_owned(),
            );
        }
        if self.sync.is_some() {
            notes.push(
                "Sync is `col --json sync` of a store holding only the sync data (default config: `hash` embedder, 384 \
                 dimensions, embedded index); chunks/s is the `chunks` it reports divided by its wall time."
                    .to_owned(),
            );
        }
        if self.first_sync.is_some() {
            notes.push(format!(
                "The main store is synced once (the first-sync row) before {}.",
                match (self.resync.is_empty(), self.cli_search.is_empty()) {
                    (false, false) => "the no-op re-syncs and `col search`",
                    (false, true) => "the no-op re-syncs",
                    _ => "`col search`",
                }
            ));
        }
        if self.search.is_some() {
            notes.push(
                "Exact search runs in process on a fresh store's vector index, opened through `colstore-wiring` as `col` \
                 opens it: random top-10 queries through `VectorIndex::search` after one untimed query that loads the \
                 in-memory copy; percentiles are nearest-rank. `col search` is the whole process (open the store, embed \
                 the query, load the index, search) with a different query each run."
                    .to_owned(),
            );
        }
        if self.queue.is_some() {
            notes.push(
                "The queue runs in process on the store's `JobQueue` (`SqliteRepo`, WAL; the queue's own connections use \
                 `synchronous = NORMAL`) in a fresh \
                 store per run: the jobs (no dedup key) are enqueued first, then one worker drains them, claiming one job \
                 and completing it with `complete`, or claiming a batch and completing it with one `complete_many` (one \
                 commit per batch)."
                    .to_owned(),
            );
        }
        if self.backup.is_some() {
            notes.push(BackupBench::note());
        }
        if self.peer.is_some() {
            notes.push(PeerBench::note());
        }
        if self.reconcile.is_some() {
            notes.push(ReconcileBench::note());
        }
        if self.large.is_some() {
            notes.push(LargeBench::note());
        }
        if self.remote.is_some() {
            notes.push(RemoteBench::note());
        }
        if self.query.is_some() {
            notes.push(super::query::QueryBench::note());
        }
        notes.push("Ratio = measured ÷ target.".to_owned());
        notes.join(" ")
    }
}

impl Ingest {
    fn figures(&self, corpus: &CorpusInfo) -> Vec<Figure> {
        let (docs_per_s, docs_text) = rate(corpus.docs as f64, self.add);
        let ls_median = median(&self.ls);
        let logical_mb = corpus.logical_bytes as f64 / MB;
        let verify_mb_per_s = logical_mb / secs(self.verify);
        let size_ratio = self.store_bytes as f64 / (corpus.logical_bytes.max(1)) as f64;
        vec![
            Figure::against(
                "Ingest: `col add`".into(),
                format!("{docs_text} docs/s ({:.2} s)", self.add.as_secs_f64()),
                format!("≥ {} docs/s", group_thousands(INGEST_TARGET_DOCS_PER_S as u64)),
                docs_per_s / INGEST_TARGET_DOCS_PER_S,
                docs_per_s >= INGEST_TARGET_DOCS_PER_S,
            ),
            Figure::against(
                "List: `col ls bench --limit 100`".into(),
                runs_text(&self.ls),
                format!("median < {} ms", LS_TARGET.as_millis()),
                ms(ls_median) / ms(LS_TARGET),
                ls_median < LS_TARGET,
            ),
            Figure::against(
                "Verify: `col verify`".into(),
                format!("{} MB/s ({:.2} s)", group_thousands(verify_mb_per_s.round() as u64), self.verify.as_secs_f64()),
                format!("≥ {VERIFY_TARGET_MB_PER_S:.0} MB/s"),
                verify_mb_per_s / VERIFY_TARGET_MB_PER_S,
                verify_mb_per_s >= VERIFY_TARGET_MB_PER_S,
            ),
            Figure::against(
                "Store size after `col gc`".into(),
                format!("{size_ratio:.3} of logical ({:.1} MB)", self.store_bytes as f64 / MB),
                format!("≤ {SIZE_TARGET_RATIO:.2}"),
                size_ratio / SIZE_TARGET_RATIO,
                size_ratio <= SIZE_TARGET_RATIO,
            ),
        ]
    }
}

/// Pads `cells` into aligned columns (by characters, since `≥` and `×` are multi-byte).
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|col| rows.iter().map(|row| row[col].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count()))).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

impl Report {
    /// The table printed at the end of a run.
    pub(crate) fn table(&self) -> String {
        let mut rows = vec![vec!["figure".to_owned(), "measured".to_owned(), "target".to_owned(), "ratio".to_owned(), String::new()]];
        for figure in self.measurements.figures() {
            rows.push(vec![
                figure.name.replace('`', ""),
                figure.measured.clone(),
                figure.target.clone(),
                figure.ratio_text(),
                figure.verdict().to_owned(),
            ]);
        }
        let mut out = format!("{}\n", columns(&rows));
        for (key, value) in self.load_context().into_iter().chain(self.measurements.context(&self.machine)) {
            out.push_str(&format!("{}: {value}\n", key.to_lowercase()));
        }
        out
    }

    fn load_context(&self) -> Option<(&'static str, String)> {
        self.load.map(|(start, end)| {
            ("Load", format!("1-minute load average {start:.2} at the start, {end:.2} at the end ({} CPUs)", self.machine.cpus))
        })
    }

    /// The generated section, markers included.
    pub(crate) fn markdown_section(&self) -> String {
        let mut out = format!("{BEGIN}\n\n## Latest run\n\n");
        out.push_str("| | |\n|---|---|\n");
        let mut context = vec![
            ("Date", self.date.clone()),
            ("Machine", self.machine.describe()),
            ("Toolchain", self.rustc.clone()),
            ("Code", self.code.clone()),
        ];
        context.extend(self.load_context());
        context.extend(self.measurements.context(&self.machine));
        for (key, value) in context {
            out.push_str(&format!("| {key} | {} |\n", escape_cell(&value)));
        }
        out.push_str("\n| Figure | Measured | Target | Ratio | |\n|---|---|---|---|---|\n");
        for figure in self.measurements.figures() {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                escape_cell(&figure.name),
                escape_cell(&figure.measured),
                escape_cell(&figure.target),
                figure.ratio_text(),
                figure.verdict()
            ));
        }
        out.push_str(&format!("\n{}\n", self.measurements.notes()));
        if let Some(stats) = &self.stats {
            out.push_str(&format!("\n`col stats --json` after the ingest:\n\n```json\n{}\n```\n", stats.trim_end()));
        }
        out.push_str(&format!("\nReproduce with:\n\n```sh\n{}\n```\n\n{END}\n", self.command));
        out
    }
}

/// The new file content: `existing` with its generated section replaced by `section`, the section appended when
/// there is none, or a new file when `existing` is `None`.
pub(crate) fn replace_section(existing: Option<&str>, section: &str) -> String {
    let Some(text) = existing else { return format!("{HEADER}\n{section}") };
    match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            let rest = text[end + END.len()..].trim_start_matches('\n');
            let separator = if rest.is_empty() { "" } else { "\n" };
            format!("{}{section}{separator}{rest}", &text[..begin])
        }
        _ => format!("{}\n\n{section}", text.trim_end()),
    }
}

/// The `model name` of the first CPU in `/proc/cpuinfo`.
pub(crate) fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// The 1-minute load average from `/proc/loadavg`.
pub(crate) fn parse_load(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub(crate) fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch (Howard Hinnant's `civil_from_days`), so xtask needs no
/// date crate.
pub(crate) fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", secs_of_day / 3600, secs_of_day % 3600 / 60)
}

/// Which of `avx2`, `avx512f` and `fma` the first CPU in `/proc/cpuinfo` lists in its `flags` (`None` without a
/// `flags` line, e.g. on ARM, where the line is `Features`).
pub(crate) fn parse_vector_flags(cpuinfo: &str) -> Option<Vec<String>> {
    let line = cpuinfo.lines().find(|line| line.starts_with("flags"))?;
    let (_, flags) = line.split_once(':')?;
    let flags: Vec<&str> = flags.split_whitespace().collect();
    Some(["avx2", "avx512f", "fma"].into_iter().filter(|wanted| flags.contains(wanted)).map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest_only() -> Measurements {
        Measurements {
            corpus: Some(CorpusInfo { docs: 100_000, distinct: 50_000, logical_bytes: 256_100_000, seed: 42 }),
            ingest: Some(Ingest {
                add: Duration::from_secs(4),
                ls: (1..=20).map(Duration::from_millis).collect(),
                verify: Duration::from_secs(2),
                store_bytes: 115_245_000,
            }),
            ..Measurements::default()
        }
    }

    fn everything() -> Measurements {
        let d = Duration::from_millis;
        Measurements {
            sync: Some(ChunkSync {
                files: 25_010,
                logical_bytes: 85_000_000,
                seed: 7,
                expected_chunks: 100_003,
                run: SyncRun {
                    elapsed: d(4000),
                    documents: 25_010,
                    chunks: 100_003,
                    embedded: 100_003,
                    embed_calls: 1563,
                    synced: 25_010,
                    ..SyncRun::default()
                },
            }),
            first_sync: Some(SyncRun {
                elapsed: d(10_000),
                documents: 100_000,
                chunks: 300_000,
                cache_hits: 150_000,
                embedded: 150_000,
                synced: 100_000,
                ..SyncRun::default()
            }),
            resync: vec![d(300), d(500), d(400)],
            search: Some(SearchTimings {
                points: 100_000,
                dim: 384,
                k: 10,
                latencies: (1..=100).rev().map(|i| Duration::from_micros(i * 200)).collect(),
                threads: 2,
                cpus_busy: Some(1.9),
            }),
            cli_search: vec![d(1200); 10],
            queue: Some(QueueTimings {
                jobs: 20_000,
                batch: 500,
                enqueue: d(10_000),
                unbatched: d(8000),
                unbatched_claims: d(6000),
                batched: d(500),
                batched_claims: d(20),
            }),
            ..ingest_only()
        }
    }

    fn machine() -> Machine {
        Machine {
            cpu: "Example CPU @ 2.20GHz".into(),
            cpus: "2".into(),
            memory_bytes: Some(24 * 1024 * 1024 * 1024),
            vector_flags: Some(vec!["avx2".into(), "fma".into()]),
            compiled_features: vec![],
        }
    }

    fn report(measurements: Measurements) -> Report {
        Report {
            date: "2026-05-01 12:34 UTC".into(),
            machine: machine(),
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            code: "git 0123abc".into(),
            measurements,
            load: Some((0.5, 1.25)),
            stats: Some("{\n  \"documents\": 100000\n}".into()),
            command: "cargo xtask bench --docs 100000".into(),
        }
    }

    fn summary(figures: &[Figure]) -> Vec<(String, String, String, &'static str)> {
        figures.iter().map(|f| (f.measured.clone(), f.target.clone(), f.ratio_text(), f.verdict())).collect()
    }

    #[test]
    fn median_handles_odd_even_and_empty() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(5), d(1), d(3)]), d(3));
        assert_eq!(median(&[d(4), d(1), d(3), d(2)]), Duration::from_micros(2500));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let d = Duration::from_millis;
        let samples: Vec<Duration> = (1..=200).rev().map(d).collect();
        assert_eq!(percentile(&samples, 50), d(100));
        assert_eq!(percentile(&samples, 99), d(198));
        assert_eq!(percentile(&samples, 100), d(200));
        assert_eq!(percentile(&[d(7)], 99), d(7));
        assert_eq!(percentile(&[d(1), d(2)], 50), d(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn figures_compare_each_measurement_with_its_target() {
        assert_eq!(
            summary(&ingest_only().figures()),
            [
                ("25 000 docs/s (4.00 s)".into(), "≥ 25 000 docs/s".into(), "1.00× target".into(), "meets"),
                ("median 10.5 ms, max 20.0 ms (20 runs)".into(), "median < 50 ms".into(), "0.21× target".into(), "meets"),
                ("128 MB/s (2.00 s)".into(), "≥ 200 MB/s".into(), "0.64× target".into(), "MISSES"),
                ("0.450 of logical (115.2 MB)".into(), "≤ 0.55".into(), "0.82× target".into(), "meets"),
            ]
        );
    }

    #[test]
    fn sync_search_and_queue_figures_follow_the_ingest_ones() {
        let figures = everything().figures();
        let names: Vec<&str> = figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names[4..],
            [
                "Sync: `col sync`, 100 003 chunks, `hash` embedder",
                "Sync: first `col sync` of the 100 000-document store",
                "Re-sync: no-op `col sync` of the synced 100 000-document store",
                "Search: exact top-10 over 100 000 × 384, p50 (in process)",
                "Search: exact top-10 over 100 000 × 384, p99 (in process)",
                "Search: `col search` on the 100 000-document store, 300 000 points, whole process",
                "Queue: claim 1 + complete, unbatched (SQLite)",
                "Queue: claim 500 + complete_many (SQLite)",
                "Queue: enqueue, one job per transaction (setup)",
            ]
        );
        assert_eq!(
            summary(&figures[4..]),
            [
                (
                    "25 001 chunks/s (4.00 s; 25 010 files, 100 003 embedded in 1 563 calls)".into(),
                    "≥ 40 000 chunks/s".into(),
                    "0.63× target".into(),
                    "MISSES"
                ),
                ("30 000 chunks/s, 10 000 docs/s (10.00 s; 300 000 chunks, 150 000 from cache)".into(), "—".into(), "—".into(), "info"),
                ("median 400.0 ms, max 500.0 ms (3 runs)".into(), "median < 1 s".into(), "0.40× target".into(), "meets"),
                ("10.00 ms (100 queries, 2 threads)".into(), "p50 < 15 ms".into(), "0.67× target".into(), "meets"),
                ("19.80 ms (100 queries, 2 threads)".into(), "p99 < 40 ms".into(), "0.49× target".into(), "meets"),
                ("median 1200.0 ms, max 1200.0 ms (10 runs)".into(), "median < 150 ms".into(), "8.00× target".into(), "MISSES"),
                (
                    "2 500 jobs/s (20 000 jobs, 8.00 s, of which claims 6.00 s)".into(),
                    "≥ 5 000 jobs/s".into(),
                    "0.50× target".into(),
                    "MISSES"
                ),
                (
                    "40 000 jobs/s (20 000 jobs, 0.50 s, of which claims 0.02 s)".into(),
                    "≥ 30 000 jobs/s".into(),
                    "1.33× target".into(),
                    "meets"
                ),
                ("2 000 jobs/s (20 000 jobs, 10.00 s)".into(), "—".into(), "—".into(), "info"),
            ]
        );
    }

    #[test]
    fn figures_flag_slow_listing_large_stores_slow_searches_and_slow_resyncs() {
        let mut m = everything();
        let ingest = m.ingest.as_mut().unwrap();
        ingest.ls = vec![Duration::from_millis(50); 3];
        ingest.store_bytes = m.corpus.as_ref().unwrap().logical_bytes;
        m.resync = vec![Duration::from_secs(1)];
        m.search.as_mut().unwrap().latencies = vec![Duration::from_millis(40); 10];
        let figures = m.figures();
        assert_eq!(figures[1].meets, Some(false), "50 ms is not below 50 ms");
        assert_eq!(figures[3].meets, Some(false));
        assert_eq!(figures[3].ratio_text(), "1.82× target");
        assert_eq!(figures[6].meets, Some(false), "1 s is not below 1 s");
        assert_eq!((figures[7].meets, figures[8].meets), (Some(false), Some(false)));
    }

    #[test]
    fn only_the_areas_measured_have_figures() {
        assert!(Measurements::default().figures().is_empty());
        let queue_only = Measurements { queue: everything().queue, ..Measurements::default() };
        assert_eq!(queue_only.figures().len(), 3);
        let table = report(queue_only.clone()).table();
        assert!(!table.contains("data:") && table.contains("Queue: claim 500"), "{table}");
        let section = report(queue_only).markdown_section();
        assert!(!section.contains("| Data |") && !section.contains("Ingest is") && section.contains("The queue runs"), "{section}");
    }

    #[test]
    fn a_remote_run_judges_sync_rate_and_memory_move_rate_and_verify_time() {
        let run = |secs: f64, rss_mb: Option<u64>| super::super::backup::Run {
            elapsed: Duration::from_secs_f64(secs),
            peak_rss: rss_mb.map(|mb| mb * 1_000_000),
        };
        let remote = RemoteBench {
            chunks: 100_000,
            sync: run(5.0, Some(250)),
            verify: run(1.0, None),
            moved_points: 100_000,
            moves: vec![run(9.0, None), run(4.0, None), run(3.0, None)],
            memory: "GNU time".into(),
        };
        let figures = remote.figures();
        let verdicts: Vec<Option<bool>> = figures.iter().map(|f| f.meets).collect();
        // 20 000 chunks/s but 250 MB; 25 000 points/s; 1 s.
        assert_eq!(verdicts, [Some(false), Some(true), Some(true)], "{figures:?}");
        assert!(figures[0].measured.contains("20 000 chunks/s") && figures[0].measured.contains("250.0 MB"), "{figures:?}");
        assert!(figures[1].measured.contains("median 4.00 s of 3 moves: 9.00, 4.00, 3.00 s"), "{figures:?}");
        let m = Measurements { remote: Some(remote), ..Measurements::default() };
        assert!(m.notes().contains("Qdrant fake"));
    }

    #[test]
    fn a_large_document_run_has_its_figures_data_line_and_note() {
        let run = super::super::backup::Run { elapsed: Duration::from_secs(10), peak_rss: Some(50_000_000) };
        let large = LargeBench {
            bytes: 64 * 1024 * 1024,
            seed: 9,
            memory: "`/usr/bin/time -f %M`".into(),
            put: run,
            get: run,
            backup: run,
            restore: run,
            export: run,
            import: run,
            restic: Err("not installable".into()),
        };
        let m = Measurements { large: Some(large), ..Measurements::default() };
        assert_eq!(m.figures().len(), 12);
        let section = report(m).markdown_section();
        assert!(section.contains("| Large data | one text document of 67 108 864 bytes"), "{section}");
        assert!(
            section.contains("| Large: Peak RSS of `col backup`, one 64.0 MiB document | colstore 50.0 MB; restic unavailable |"),
            "{section}"
        );
        assert!(section.contains("Large document: one generated text document"), "{section}");
    }

    #[test]
    fn figures_stay_finite_for_zero_durations() {
        let mut m = everything();
        let ingest = m.ingest.as_mut().unwrap();
        ingest.add = Duration::ZERO;
        ingest.verify = Duration::ZERO;
        ingest.ls.clear();
        m.sync.as_mut().unwrap().run.elapsed = Duration::ZERO;
        m.resync.clear();
        m.search.as_mut().unwrap().latencies.clear();
        let zero = Duration::ZERO;
        m.queue = Some(QueueTimings {
            jobs: 1,
            batch: 1,
            enqueue: zero,
            unbatched: zero,
            unbatched_claims: zero,
            batched: zero,
            batched_claims: zero,
        });
        assert!(m.figures().iter().all(|f| f.ratio.is_none_or(f64::is_finite)));
    }

    #[test]
    fn thousands_are_grouped_with_spaces() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1 000");
        assert_eq!(group_thousands(25_000), "25 000");
        assert_eq!(group_thousands(1_234_567), "1 234 567");
    }

    #[test]
    fn columns_align_by_characters_not_bytes() {
        let rows = vec![vec!["a".to_owned(), "≥ 1".to_owned(), "x".to_owned()], vec!["long".to_owned(), "2".to_owned(), String::new()]];
        assert_eq!(columns(&rows), "a     ≥ 1  x\nlong  2\n");
    }

    #[test]
    fn table_lists_every_figure_and_the_data() {
        let table = report(everything()).table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("figure"), "{table}");
        assert!(lines[1].starts_with("Ingest: col add ") && lines[1].ends_with("meets"), "{table}");
        assert!(lines[3].contains("128 MB/s") && lines[3].ends_with("MISSES"), "{table}");
        assert!(lines[4].starts_with("Store size after col gc") && lines[4].contains("0.82× target"), "{table}");
        assert!(lines[6].starts_with("Sync: first col sync") && lines[6].ends_with("info"), "{table}");
        assert!(
            table.contains("data: 100 000 files of 1–4 KiB text (50 000 distinct + 50 000 byte-identical duplicates), 256.1 MB logical")
        );
        assert!(table.contains("\nsync data: 25 010 distinct files"), "{table}");
        assert!(table.contains("\nload: 1-minute load average 0.50 at the start"), "{table}");
        assert!(table.contains("\nsearch: 100 000 random unit vectors × 384 f32 (cosine), up to 2 threads per search, 1.90 CPUs busy"));
        assert!(table.contains("CPU has avx2, fma; the build enables none of them"), "{table}");
    }

    #[test]
    fn markdown_section_records_context_figures_stats_and_command() {
        let section = report(everything()).markdown_section();
        for needle in [
            BEGIN,
            END,
            "| Date | 2026-05-01 12:34 UTC |",
            "| Machine | Example CPU @ 2.20GHz, 2 CPUs (nproc), 24.0 GiB RAM |",
            "| Toolchain | rustc 1.95.0 (59807616e 2026-04-14) |",
            "| Code | git 0123abc |",
            "| Load | 1-minute load average 0.50 at the start, 1.25 at the end (2 CPUs) |",
            "256.1 MB logical, seed 0x000000000000002a",
            "| Sync data | 25 010 distinct files of about 3.3–3.5 KB, 100 003 chunks with the default chunking",
            "| Search | 100 000 random unit vectors × 384 f32 (cosine), up to 2 threads per search",
            "| Ingest: `col add` | 25 000 docs/s (4.00 s) | ≥ 25 000 docs/s | 1.00× target | meets |",
            "| List: `col ls bench --limit 100` | median 10.5 ms, max 20.0 ms (20 runs) | median < 50 ms | 0.21× target | meets |",
            "| Verify: `col verify` | 128 MB/s (2.00 s) | ≥ 200 MB/s | 0.64× target | MISSES |",
            "| Store size after `col gc` | 0.450 of logical (115.2 MB) | ≤ 0.55 | 0.82× target | meets |",
            "| Sync: `col sync`, 100 003 chunks, `hash` embedder | 25 001 chunks/s (4.00 s; 25 010 files, 100 003 embedded in 1 563 calls) | ≥ 40 000 chunks/s | 0.63× target | MISSES |",
            "| Queue: claim 1 + complete, unbatched (SQLite) | 2 500 jobs/s (20 000 jobs, 8.00 s, of which claims 6.00 s) | ≥ 5 000 jobs/s | 0.50× target | MISSES |",
            "| Queue: enqueue, one job per transaction (setup) | 2 000 jobs/s (20 000 jobs, 10.00 s) | — | — | info |",
            "before the no-op re-syncs and `col search`.",
            "```json\n{\n  \"documents\": 100000\n}\n```",
            "```sh\ncargo xtask bench --docs 100000\n```",
        ] {
            assert!(section.contains(needle), "missing {needle:?} in\n{section}");
        }
        assert!(section.starts_with(BEGIN) && section.trim_end().ends_with(END));
    }

    #[test]
    fn a_sync_that_counts_other_chunks_says_so() {
        let mut m = everything();
        m.sync.as_mut().unwrap().run.chunks = 99_000;
        assert!(report(m).table().contains("(but `col sync` reported 99 000 chunks)"));
    }

    #[test]
    fn section_is_created_replaced_or_appended() {
        let first = format!("{BEGIN}\nold\n{END}\n");
        let new_file = replace_section(None, &first);
        assert!(new_file.starts_with("# Benchmarks\n") && new_file.ends_with(&first), "{new_file}");

        let second = format!("{BEGIN}\nnew\n{END}\n");
        let with_notes = format!("{new_file}\n## Notes\n\nkept by hand\n");
        let replaced = replace_section(Some(&with_notes), &second);
        assert_eq!(replaced, format!("{}{second}\n## Notes\n\nkept by hand\n", new_file.strip_suffix(&first).unwrap()));
        assert!(!replaced.contains("old"));
        // Idempotent: replacing with the same section changes nothing.
        assert_eq!(replace_section(Some(&replaced), &second), replaced);

        let appended = replace_section(Some("# Benchmarks\n\nhand-written intro\n"), &second);
        assert_eq!(appended, format!("# Benchmarks\n\nhand-written intro\n\n{second}"));
    }

    #[test]
    fn markdown_cells_escape_pipes() {
        let mut r = report(ingest_only());
        r.machine.cpu = "odd | cpu".into();
        assert!(r.markdown_section().contains("| Machine | odd \\| cpu, 2 CPUs"));
    }

    #[test]
    fn vector_support_names_what_the_cpu_has_and_the_build_uses() {
        let mut m = machine();
        assert_eq!(
            m.vector_support(),
            "CPU has avx2, fma; the build enables none of them (baseline target, e.g. x86-64 = SSE2; no `-C target-cpu`)"
        );
        m.compiled_features = vec!["avx2", "fma"];
        m.vector_flags = None;
        assert_eq!(m.vector_support(), "CPU flags unknown; the build enables avx2, fma");
        m.vector_flags = Some(vec![]);
        assert!(m.vector_support().starts_with("CPU has none of avx2, avx512f, fma;"));
    }

    #[test]
    fn proc_files_are_parsed() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512vl\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(parse_cpu_model(cpuinfo).as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        assert_eq!(parse_cpu_model("processor : 0\nHardware : BCM2835\n"), None);
        assert_eq!(parse_vector_flags(cpuinfo), Some(vec!["avx2".into(), "avx512f".into(), "fma".into()]));
        assert_eq!(parse_vector_flags("flags : fpu sse2 avx512vl\n"), Some(vec![]));
        assert_eq!(parse_vector_flags("Features : fp asimd\n"), None);
        let meminfo = "MemTotal:       24730000 kB\nMemFree:        22000000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_730_000 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_load("2.26 3.02 2.77 4/107 2164\n"), Some(2.26));
        assert_eq!(parse_load(""), None);
    }

    #[test]
    fn utc_dates_follow_the_calendar() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_709_210_096), "2024-02-29 12:34 UTC");
        assert_eq!(utc_date(1_798_761_599), "2026-12-31 23:59 UTC");
    }
}
