//! The query area (`--only query`): issue 16's targets for listing with a filter, keyword and hybrid search, ingest
//! with the full-text index kept up to date, and the size of the full-text data.
//!
//! The data is `docs` small Markdown files (100 000 by default) whose YAML front matter gives each document a `year`
//! and a `lang`, with a body of words drawn from a Zipf-distributed vocabulary of pseudo-words (so a word's posting
//! list is as long as in prose, not as in a 120-word vocabulary). The files lie in 20 folders, 4 key prefixes × 5
//! tags, because `col add` tags every file of one run alike: ingest is one `col add` per folder (`--prefix
//! kK/tT/ --tag tT`), timed together.
//!
//! 1. Ingest: the 20 `col add` runs into a fresh store (sqlite mode, where each batch's full-text rows are written in
//!    its own transaction), with `RUST_LOG=warn,colstore_sqlite::repo=debug` so every batch logs its `put_batch
//!    phases`; `t_text - t_docs` is the full-text part of a batch's transaction, and the rate without it is derived
//!    from those phase timings of the same run (there is no product switch that turns the index off).
//! 2. Store size: SQLite's `dbstat` (through python3's `sqlite3` module, on a copy of the database) gives the pages of
//!    the full-text tables (`chunk_fts_*`, `fts_docs`, `fts_pending`) against the documents' logical bytes.
//! 3. `col ls` with a 3-condition filter, in process (`CollectionRepo::list_documents`, the call `col ls` makes) and
//!    as a whole `col ls … --json` process; `year` and `lang` are indexed first with `col collection index`.
//! 4. Keyword and hybrid search in process through `colstore_app::search`, after `col sync` (`hash` embedder, 384
//!    dimensions: one chunk per document).
//! 5. The same store grown to 10× the documents (1 000 000 by default) by adding the same folders again under nine
//!    more key prefixes (`col add` of a folder is the fastest bulk path `col` has: `col import` writes transactions of
//!    256 documents and needs a zstd export file), within a time budget, then `col ls` again.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use colstore_app::{SearchMode, SearchOptions};
use colstore_domain::ports::{Clock, CollectionRepo};
use colstore_domain::{CollectionName, DocFilter, ListQuery};
use colstore_wiring::{Store, StoreDir, SystemClock};

use super::corpus::SplitMix64;
use super::report::{Figure, SyncRun, group_thousands, percentile};
use super::{Col, create_dirs, scrub_env, step, sync_run};

/// Seed of the query corpus and its queries.
pub(crate) const SEED: u64 = 0x0F11_7E25_EA2C_4016;
/// Body sizes in bytes (the front matter comes on top): one chunk per document with the default chunking.
const BODY_MIN: usize = 200;
const BODY_MAX: usize = 700;
/// Distinct words of the vocabulary, ranked by frequency (Zipf, exponent 1).
const VOCABULARY: usize = 50_000;
/// Query words are drawn from ranks at or above this one: the most frequent words are stop words nobody searches.
const QUERY_MIN_RANK: usize = 100;
/// Consonant-vowel syllables: words are one, two or three of them, so every rank has its own word.
const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
const VOWELS: &[u8] = b"aeiou";
/// Metadata: `year` uniform in this range, `lang` `en` for half the documents and one of the others otherwise.
const YEARS: std::ops::RangeInclusive<u32> = 1990..=2025;
const OTHER_LANGS: &[&str] = &["de", "fr", "es", "it", "nl", "pt", "sv"];
/// Key prefixes (`k0/` …) × tags (`t0` …): one folder and one `col add` each.
const KEY_GROUPS: usize = 4;
const TAGS: usize = 5;
/// The collection.
const COLLECTION: &str = "bench";

/// The filter with indexed metadata fields (`col collection index bench year`, `… lang`), and the fields.
const FILTER_INDEXED: &str = "year>=2020 and lang=en and tag:t2";
const INDEXED_FIELDS: &[&str] = &["year", "lang"];

/// Documents of the large store, as a multiple of `docs`: 1 000 000 at the default 100 000.
const LARGE_FACTOR: usize = 10;
/// The large store stops growing after this long (then its figures are for the size reached).
const LARGE_BUDGET: Duration = Duration::from_secs(300);

/// `col ls --limit` of the listing figures, and how many times each is timed.
pub(crate) const LS_LIMIT: u64 = 50;
const LS_RUNS_IN_PROCESS: usize = 100;
const LS_RUNS_COMMAND: usize = 20;
/// Search queries per mode, and hits per query (`col search`'s default `-k`).
pub(crate) const SEARCH_QUERIES: usize = 200;
pub(crate) const SEARCH_K: usize = 10;
/// Each series of timed runs (a listing in process, the listing command, a search mode) stops early after this long,
/// once it has `MIN_RUNS`: a slow build still finishes the area in minutes (the figure says how many runs it had).
const SERIES_BUDGET: Duration = Duration::from_secs(60);
const MIN_RUNS: usize = 10;

/// Whether a series that started at `started` and has `runs` runs should stop before `wanted`.
fn series_done(started: Instant, runs: usize, wanted: usize) -> bool {
    runs >= wanted || (runs >= MIN_RUNS && started.elapsed() >= SERIES_BUDGET)
}

/// `col ls` with a 3-condition filter: p50 in process, and p50 of the whole command.
pub(crate) const LS_IN_PROCESS_TARGET: Duration = Duration::from_millis(10);
pub(crate) const LS_COMMAND_TARGET: Duration = Duration::from_millis(50);
/// Keyword and hybrid search, p50 in process.
pub(crate) const KEYWORD_TARGET: Duration = Duration::from_millis(20);
pub(crate) const HYBRID_TARGET: Duration = Duration::from_millis(30);
/// Ingest with the full-text index kept up to date, against the rate without it.
pub(crate) const FTS_INGEST_TARGET_RATIO: f64 = 0.8;

/// The full-text tables' share of the database, from `dbstat`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FtsSize {
    /// Bytes of the pages of `chunk_fts_*`, `fts_docs` and `fts_pending`.
    pub(crate) fts_bytes: u64,
    /// Bytes of the whole database (page count × page size).
    pub(crate) db_bytes: u64,
}

/// `col ls` on one store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LsFigures {
    /// Documents in the collection.
    pub(crate) docs: u64,
    /// Documents the filter matches (`total`).
    pub(crate) matches: u64,
    pub(crate) in_process: Vec<Duration>,
    pub(crate) command: Vec<Duration>,
}

/// How the large store was grown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LargeBuild {
    /// Documents asked for.
    pub(crate) target_docs: u64,
    /// Documents in the collection when it stopped growing.
    pub(crate) docs: u64,
    /// `col add` runs and their total wall time.
    pub(crate) adds: usize,
    pub(crate) elapsed: Duration,
}

/// What the query area measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryBench {
    pub(crate) docs: usize,
    pub(crate) logical_bytes: u64,
    pub(crate) seed: u64,
    /// The `--where` expression listed with (its metadata fields indexed).
    pub(crate) filter: String,
    /// `col collection index` of the fields, on the 100 000-document store.
    pub(crate) index_time: Duration,
    /// The ingest: the `col add` runs and their total wall time.
    pub(crate) adds: usize,
    pub(crate) ingest: Duration,
    /// Σ (t_text - t_docs) over the batches, and how many batches logged their phases; `None` when none did.
    pub(crate) fts_phase: Option<(Duration, usize)>,
    pub(crate) size: Result<FtsSize, String>,
    /// `col ls` on the ingested store, then on the large one.
    pub(crate) ls: Vec<LsFigures>,
    pub(crate) sync: SyncRun,
    /// The embedder `col collection show --json` reports after the sync (`kind:model/dimension`).
    pub(crate) embedder: Option<String>,
    pub(crate) keyword: Vec<Duration>,
    pub(crate) hybrid: Vec<Duration>,
    /// Queries per mode that found nothing.
    pub(crate) keyword_empty: usize,
    pub(crate) large: LargeBuild,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

/// `p50 … ms, p95 … ms (n runs)`.
fn latency_text(samples: &[Duration], what: &str) -> String {
    format!("p50 {:.2} ms, p95 {:.2} ms ({} {what})", ms(percentile(samples, 50)), ms(percentile(samples, 95)), samples.len())
}

fn latency_figure(name: String, samples: &[Duration], what: &str, target: Duration) -> Figure {
    let p50 = percentile(samples, 50);
    Figure::against(name, latency_text(samples, what), format!("p50 < {} ms", target.as_millis()), ms(p50) / ms(target), p50 < target)
}

impl QueryBench {
    /// The rates with and without the full-text part of the ingest, in documents per second.
    pub(crate) fn ingest_rates(&self) -> (f64, Option<f64>) {
        let with = self.docs as f64 / secs(self.ingest);
        let without = self.fts_phase.map(|(fts, _)| self.docs as f64 / secs(self.ingest.saturating_sub(fts)));
        (with, without)
    }

    pub(crate) fn figures(&self) -> Vec<Figure> {
        let docs = group_thousands(self.docs as u64);
        let mut out = Vec::new();
        let (with, without) = self.ingest_rates();
        let ingest_name = format!("Query: ingest with full text kept up to date, `col add` of {docs} files ({} runs)", self.adds);
        let with_text = format!("{} docs/s ({:.2} s)", group_thousands(with.round() as u64), self.ingest.as_secs_f64());
        match (without, self.fts_phase) {
            (Some(without), Some((fts, batches))) => {
                let ratio = with / without.max(1e-9);
                out.push(Figure::against(
                    ingest_name,
                    format!(
                        "{with_text}; without the full-text part ≈ {} docs/s ({:.2} s of full text in {batches} batches): {ratio:.2}×",
                        group_thousands(without.round() as u64),
                        fts.as_secs_f64()
                    ),
                    format!("≥ {FTS_INGEST_TARGET_RATIO}× the rate without"),
                    ratio / FTS_INGEST_TARGET_RATIO,
                    ratio >= FTS_INGEST_TARGET_RATIO,
                ));
            }
            _ => out.push(Figure::info(ingest_name, format!("{with_text}; no `put_batch phases` logged, so no rate without full text"))),
        }
        out.push(Figure::info(
            format!("Query: full-text data in the {docs}-document store"),
            match &self.size {
                Ok(size) => format!(
                    "{:.3} bytes per logical byte ({:.1} MB of full-text tables for {:.1} MB logical; database {:.1} MB)",
                    size.fts_bytes as f64 / self.logical_bytes.max(1) as f64,
                    size.fts_bytes as f64 / 1e6,
                    self.logical_bytes as f64 / 1e6,
                    size.db_bytes as f64 / 1e6
                ),
                Err(why) => format!("not measured: {why}"),
            },
        ));
        out.push(Figure::info(
            format!("Query: `col collection index` of {} on {docs} documents", INDEXED_FIELDS.join(" and ")),
            format!("{:.2} s", self.index_time.as_secs_f64()),
        ));
        for ls in &self.ls {
            let size = group_thousands(ls.docs);
            let matched = format!("{} matches", group_thousands(ls.matches));
            out.push(latency_figure(
                format!("Query: `col ls --where` (3 conditions, --limit {LS_LIMIT}), {size} documents, in process"),
                &ls.in_process,
                &format!("runs, {matched}"),
                LS_IN_PROCESS_TARGET,
            ));
            out.push(latency_figure(
                format!("Query: `col ls --where` (3 conditions, --limit {LS_LIMIT} --json), {size} documents, whole command"),
                &ls.command,
                "runs",
                LS_COMMAND_TARGET,
            ));
        }
        out.push(latency_figure(
            format!("Query: keyword search, {docs} documents, in process"),
            &self.keyword,
            &format!("queries, k {SEARCH_K}"),
            KEYWORD_TARGET,
        ));
        let embedder = self.embedder.as_deref().unwrap_or("hash");
        out.push(latency_figure(
            format!("Query: hybrid search, {docs} documents ({} chunks, {embedder}), in process", group_thousands(self.sync.chunks)),
            &self.hybrid,
            &format!("queries, k {SEARCH_K}"),
            HYBRID_TARGET,
        ));
        out.push(Figure::info(
            format!("Query: first `col sync` of the {docs}-document store (setup)"),
            format!("{:.2} s, {} chunks", self.sync.elapsed.as_secs_f64(), group_thousands(self.sync.chunks)),
        ));
        let large = &self.large;
        let reached = if large.docs >= large.target_docs {
            String::new()
        } else {
            format!(
                "; stopped at {} of {} documents after the {} s budget",
                group_thousands(large.docs),
                group_thousands(large.target_docs),
                LARGE_BUDGET.as_secs()
            )
        };
        out.push(Figure::info(
            format!("Query: growing the store to {} documents (setup)", group_thousands(large.docs)),
            format!(
                "{:.1} s for {} documents in {} `col add` runs ({} docs/s){reached}",
                large.elapsed.as_secs_f64(),
                group_thousands(large.docs.saturating_sub(self.docs as u64)),
                large.adds,
                group_thousands((large.docs.saturating_sub(self.docs as u64) as f64 / secs(large.elapsed)).round() as u64)
            ),
        ));
        out
    }

    pub(crate) fn context(&self) -> String {
        let index = format!("`year` and `lang` indexed with `col collection index`; filter `{}`", self.filter);
        let empty = if self.keyword_empty > 0 { format!(" ({} found nothing)", self.keyword_empty) } else { String::new() };
        format!(
            "{} Markdown files ({:.1} MB logical, seed {:#018x}): YAML front matter `year` ({}–{}) and `lang` (`en` for half, \
             else one of {}), a body of {BODY_MIN}–{BODY_MAX} bytes of words drawn from a Zipf vocabulary of {} pseudo-words; \
             {KEY_GROUPS} key prefixes × {TAGS} tags, one folder and one `col add` each; {index}; the large store is the same \
             store with the folders added again under {} more key prefixes; {} search queries per mode of 1–4 words of \
             frequency rank ≥ {QUERY_MIN_RANK}{empty}",
            group_thousands(self.docs as u64),
            self.logical_bytes as f64 / 1e6,
            self.seed,
            YEARS.start(),
            YEARS.end(),
            OTHER_LANGS.join(", "),
            group_thousands(VOCABULARY as u64),
            LARGE_FACTOR - 1,
            self.keyword.len()
        )
    }

    pub(crate) fn note() -> String {
        format!(
            "Query: ingest is the {n} `col add bench FOLDER --prefix kK/tT/ --tag tT` runs of the query data into a fresh store, \
             timed together, run with `RUST_LOG=warn,colstore_sqlite::repo=debug` so each batch logs its `put_batch phases`; \
             the rate without full text is derived from those phase timings of the same run (the wall time less Σ(t_text − \
             t_docs), the full-text rows written in each batch's transaction), not measured with a separate build (there is \
             no switch); as files are read while a batch is written, this is an upper estimate of what the full text costs. \
             Full-text data is the pages of `chunk_fts_*`, `fts_docs` and `fts_pending` in SQLite's `dbstat` (python3's \
             `sqlite3` on a copy of the database) over the documents' logical bytes. `col ls` in process is \
             `CollectionRepo::list_documents` on a store opened through `colstore-wiring` with the query `col ls --where EXPR \
             --limit {LS_LIMIT}` makes (limit {} to see whether a next page exists; `total` counts every match), {LS_RUNS_IN_PROCESS} runs \
             after one untimed; the whole command is `col ls bench --where EXPR --limit {LS_LIMIT} --json`, {LS_RUNS_COMMAND} runs. \
             Searches run in process through `colstore_app::search` (the function `col search` calls) with k {SEARCH_K}, after \
             `col sync` and one untimed query per mode. The large store is grown by `col add` of the same folders under more \
             key prefixes (the fastest bulk path of `col`; contents repeat, so the blobs are shared, but every document has \
             its own metadata, tags and full-text rows). Percentiles are nearest-rank; a series of runs stops early after {} s \
             once it has {MIN_RUNS} runs (the figure says how many it had).",
            LS_LIMIT + 1,
            SERIES_BUDGET.as_secs(),
            n = KEY_GROUPS * TAGS,
        )
    }
}

/// The query data: which documents there are and what the filters should match.
#[derive(Debug, Clone)]
pub(crate) struct QueryCorpus {
    pub(crate) docs: usize,
    pub(crate) seed: u64,
}

/// One document's generated fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Doc {
    pub(crate) key_group: usize,
    pub(crate) tag: usize,
    pub(crate) year: u32,
    pub(crate) lang: &'static str,
    pub(crate) text: String,
}

/// A uniform float in [0, 1).
fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A rank in `lo..hi` with probability about proportional to `1 / (rank + 1)` (Zipf, exponent 1).
fn zipf(rng: &mut SplitMix64, lo: usize, hi: usize) -> usize {
    let (a, b) = (((lo + 1) as f64).ln(), ((hi + 1) as f64).ln());
    let r = (a + unit(rng) * (b - a)).exp() as usize;
    r.saturating_sub(1).clamp(lo, hi - 1)
}

/// The word of frequency rank `rank`: one syllable for the most frequent, then two, then three; distinct for every rank.
pub(crate) fn word(rank: usize) -> String {
    let syllables = CONSONANTS.len() * VOWELS.len();
    let syllable = |i: usize, out: &mut String| {
        out.push(CONSONANTS[i / VOWELS.len()] as char);
        out.push(VOWELS[i % VOWELS.len()] as char);
    };
    let mut out = String::with_capacity(6);
    let mut r = rank;
    if r < syllables {
        syllable(r, &mut out);
        return out;
    }
    r -= syllables;
    if r < syllables * syllables {
        syllable(r / syllables, &mut out);
        syllable(r % syllables, &mut out);
        return out;
    }
    r -= syllables * syllables;
    syllable(r / (syllables * syllables) % syllables, &mut out);
    syllable(r / syllables % syllables, &mut out);
    syllable(r % syllables, &mut out);
    out
}

impl QueryCorpus {
    pub(crate) fn new(docs: usize) -> Self {
        Self { docs, seed: SEED }
    }

    pub(crate) fn doc(&self, i: usize) -> Doc {
        let group = i % (KEY_GROUPS * TAGS);
        let mut rng = SplitMix64::new(self.seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let year = YEARS.start() + rng.below(u64::from(YEARS.end() - YEARS.start() + 1)) as u32;
        let lang = if rng.below(2) == 0 { "en" } else { OTHER_LANGS[rng.below(OTHER_LANGS.len() as u64) as usize] };
        let size = BODY_MIN + rng.below((BODY_MAX - BODY_MIN + 1) as u64) as usize;
        let mut text = format!("---\nyear: {year}\nlang: {lang}\n---\n");
        let start = text.len();
        while text.len() - start < size {
            for n in 0..5 + rng.below(10) {
                let w = word(zipf(&mut rng, 0, VOCABULARY));
                if n == 0 {
                    if text.len() > start {
                        text.push(' ');
                    }
                    let mut chars = w.chars();
                    text.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                    text.push_str(chars.as_str());
                } else {
                    text.push(' ');
                    text.push_str(&w);
                }
            }
            text.push('.');
        }
        text.push('\n');
        Doc { key_group: group / TAGS, tag: group % TAGS, year, lang, text }
    }

    /// The folder of a key group and tag, relative to the corpus directory (and the key prefix of its documents).
    pub(crate) fn folder(key_group: usize, tag: usize) -> String {
        format!("k{key_group}/t{tag}")
    }

    /// Writes every file into its folder under `dir` and returns the logical size and how many documents match
    /// [`FILTER_INDEXED`].
    pub(crate) fn write_to(&self, dir: &Path) -> std::io::Result<(u64, u64)> {
        for k in 0..KEY_GROUPS {
            for t in 0..TAGS {
                std::fs::create_dir_all(dir.join(Self::folder(k, t)))?;
            }
        }
        let (mut logical, mut indexed) = (0, 0);
        for i in 0..self.docs {
            let doc = self.doc(i);
            indexed += u64::from(doc.year >= 2020 && doc.lang == "en" && doc.tag == 2);
            logical += doc.text.len() as u64;
            std::fs::write(dir.join(Self::folder(doc.key_group, doc.tag)).join(format!("doc-{i:07}.md")), doc.text)?;
        }
        Ok((logical, indexed))
    }

    /// `n` search queries of 1–4 words, none of the most frequent ones.
    pub(crate) fn queries(&self, n: usize) -> Vec<String> {
        let mut rng = SplitMix64::new(self.seed ^ 0x005E_A2C4);
        (0..n)
            .map(|_| {
                let words = match rng.below(10) {
                    0 | 1 => 1,
                    2..=5 => 2,
                    6..=8 => 3,
                    _ => 4,
                };
                (0..words).map(|_| word(zipf(&mut rng, QUERY_MIN_RANK, VOCABULARY))).collect::<Vec<_>>().join(" ")
            })
            .collect()
    }
}

/// A `humantime`-free reading of a `Duration`'s `Debug` form (`1.5s`, `12.3ms`, `450.1µs`, `80ns`).
pub(crate) fn parse_debug_duration(text: &str) -> Option<Duration> {
    let (number, scale) = [("ns", 1e-9), ("µs", 1e-6), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, scale)))?;
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value * scale))
}

/// Σ (t_text - t_docs) over the `put_batch phases` lines of `stderr`, and how many lines had both.
pub(crate) fn fts_phase(stderr: &str) -> (Duration, usize) {
    let field = |line: &str, name: &str| line.split_whitespace().find_map(|token| token.strip_prefix(name)).and_then(parse_debug_duration);
    let mut total = Duration::ZERO;
    let mut batches = 0;
    for line in stderr.lines().filter(|line| line.contains("put_batch phases")) {
        if let (Some(docs), Some(text)) = (field(line, "t_docs="), field(line, "t_text=")) {
            total += text.saturating_sub(docs);
            batches += 1;
        }
    }
    (total, batches)
}

/// Runs `col --store STORE ARGS` with `RUST_LOG` set to `log` (after removing the user's settings): its stdout,
/// stderr and wall time.
fn run_logged(col: &Col<'_>, args: &[OsString], log: &str) -> Result<(String, String, Duration), String> {
    let mut cmd = Command::new(col.bin);
    cmd.arg("--store").arg(col.store).args(args).current_dir(col.cwd).stdin(Stdio::null());
    scrub_env(&mut cmd);
    cmd.env("RUST_LOG", log);
    let shown = format!("col {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let started = Instant::now();
    let output = cmd.output().map_err(|err| format!("cannot run `{shown}`: {err}"))?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!("`{shown}` failed ({}):\n{}", output.status, stderr.trim_end()));
    }
    Ok((stdout, stderr, elapsed))
}

/// `created` of `col add --json`.
fn created(stdout: &str) -> Result<u64, String> {
    let value: serde_json::Value =
        serde_json::from_str(stdout).map_err(|err| format!("`col add --json` did not print JSON ({err}): {}", stdout.trim_end()))?;
    value["created"].as_u64().ok_or_else(|| format!("`col add --json` has no `created`: {value}"))
}

/// `col add --json bench FOLDER --prefix PREFIX --tag TAG` of every folder; returns the documents created, the
/// total wall time and stderr.
fn add_folders(
    col: &Col<'_>,
    corpus: &Path,
    prefix: &dyn Fn(usize, usize) -> String,
    log: &str,
) -> Result<(u64, Duration, String), String> {
    let (mut docs, mut elapsed, mut stderr) = (0, Duration::ZERO, String::new());
    for k in 0..KEY_GROUPS {
        for t in 0..TAGS {
            let args: Vec<OsString> = vec![
                "--json".into(),
                "add".into(),
                COLLECTION.into(),
                corpus.join(QueryCorpus::folder(k, t)).into_os_string(),
                "--prefix".into(),
                prefix(k, t).into(),
                "--tag".into(),
                format!("t{t}").into(),
            ];
            let (out, err, took) = run_logged(col, &args, log)?;
            docs += created(&out)?;
            elapsed += took;
            stderr.push_str(&err);
        }
    }
    Ok((docs, elapsed, stderr))
}

/// The full-text tables' pages in a copy of the store's database, through python3's `sqlite3` and `dbstat`.
fn fts_size(store: &Path, scratch: &Path) -> Result<FtsSize, String> {
    let db = store.join(".colstore").join("colstore.db");
    create_dirs(&[scratch])?;
    let copy = scratch.join("colstore.db");
    std::fs::copy(&db, &copy).map_err(|err| format!("cannot copy {}: {err}", db.display()))?;
    let wal = store.join(".colstore").join("colstore.db-wal");
    if wal.is_file() {
        std::fs::copy(&wal, scratch.join("colstore.db-wal")).map_err(|err| format!("cannot copy {}: {err}", wal.display()))?;
    }
    const SCRIPT: &str = "import json, sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1])\n\
        size = c.execute('pragma page_size').fetchone()[0] * c.execute('pragma page_count').fetchone()[0]\n\
        fts = c.execute(\"select coalesce(sum(pgsize), 0) from dbstat where name like 'chunk_fts%' or name in ('fts_docs', 'fts_pending')\").fetchone()[0]\n\
        print(json.dumps({'db': size, 'fts': fts}))\n";
    let output = Command::new("python3").arg("-c").arg(SCRIPT).arg(&copy).output().map_err(|err| format!("cannot run python3 ({err})"))?;
    let _ = std::fs::remove_dir_all(scratch);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("python3's sqlite3 could not read dbstat: {}", stderr.lines().last().unwrap_or_default()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|err| format!("the dbstat script printed no JSON ({err})"))?;
    match (value["fts"].as_u64(), value["db"].as_u64()) {
        (Some(fts_bytes), Some(db_bytes)) => Ok(FtsSize { fts_bytes, db_bytes }),
        _ => Err(format!("the dbstat script printed {value}")),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|err| format!("cannot start a tokio runtime: {err}"))
}

async fn open(store: &Path) -> Result<Store, String> {
    let dir = StoreDir::at(store).ok_or_else(|| format!("no store in {}", store.display()))?;
    Store::open(dir, &|_| None).await.map_err(|err| format!("cannot open the store in {}: {err}", store.display()))
}

fn collection() -> Result<CollectionName, String> {
    CollectionName::parse(COLLECTION).map_err(|err| err.to_string())
}

/// `runs` timed `list_documents` calls with the query `col ls bench --where EXPR --limit LS_LIMIT` makes, after one
/// untimed; returns the latencies and the matches.
fn ls_in_process(store: &Path, expr: &str, runs: usize) -> Result<(Vec<Duration>, u64), String> {
    runtime()?.block_on(async {
        let store = open(store).await?;
        let result = async {
            let filter = DocFilter::parse(expr, SystemClock.now()).map_err(|err| format!("invalid filter {expr:?}: {err}"))?;
            let query = ListQuery { expr: filter, limit: Some(LS_LIMIT + 1), ..ListQuery::default() };
            let collection = collection()?;
            let repo: &dyn CollectionRepo = &**store.repo();
            let first = repo.list_documents(&collection, &query).await.map_err(|err| format!("list_documents: {err}"))?;
            let mut latencies = Vec::with_capacity(runs);
            let series = Instant::now();
            while !series_done(series, latencies.len(), runs) {
                let started = Instant::now();
                let page = repo.list_documents(&collection, &query).await.map_err(|err| format!("list_documents: {err}"))?;
                latencies.push(started.elapsed());
                if page.total != first.total || page.items.len() != first.items.len() {
                    return Err(format!("list_documents answered {} then {} matches", first.total, page.total));
                }
            }
            Ok((latencies, first.total))
        }
        .await;
        store.close().await;
        result
    })
}

/// `col ls bench --where EXPR --limit LS_LIMIT --json`, `runs` times; returns the wall times and the `total` printed.
fn ls_command(col: &Col<'_>, expr: &str, runs: usize) -> Result<(Vec<Duration>, u64), String> {
    let limit = LS_LIMIT.to_string();
    let args = ["ls", COLLECTION, "--where", expr, "--limit", &limit, "--json"];
    let mut total = None;
    let mut latencies = Vec::with_capacity(runs);
    let series = Instant::now();
    while !series_done(series, latencies.len(), runs) {
        let timed = col.run(args)?;
        latencies.push(timed.elapsed);
        if total.is_none() {
            let value: serde_json::Value =
                serde_json::from_slice(&timed.output.stdout).map_err(|err| format!("`col ls --json` did not print JSON ({err})"))?;
            total = Some(value["total"].as_u64().ok_or_else(|| format!("`col ls --json` has no `total`: {value}"))?);
        }
    }
    Ok((latencies, total.unwrap_or(0)))
}

fn ls_figures(col: &Col<'_>, store: &Path, expr: &str, docs: u64) -> Result<LsFigures, String> {
    step(&format!("col ls bench --where {expr:?} --limit {LS_LIMIT}: {LS_RUNS_IN_PROCESS} runs in process, {LS_RUNS_COMMAND} commands"));
    let (in_process, matches) = ls_in_process(store, expr, LS_RUNS_IN_PROCESS)?;
    let (command, printed) = ls_command(col, expr, LS_RUNS_COMMAND)?;
    if printed != matches {
        eprintln!("warning: `col ls --json` printed total {printed}, list_documents in process {matches}");
    }
    if in_process.len() < LS_RUNS_IN_PROCESS || command.len() < LS_RUNS_COMMAND {
        eprintln!(
            "warning: the listing took so long that only {} + {} runs fit in {} s each",
            in_process.len(),
            command.len(),
            SERIES_BUDGET.as_secs()
        );
    }
    Ok(LsFigures { docs, matches, in_process, command })
}

/// Keyword and hybrid searches of `queries` in process; returns their latencies and how many keyword queries found
/// nothing.
fn search_in_process(store: &Path, queries: &[String]) -> Result<(Vec<Duration>, Vec<Duration>, usize), String> {
    runtime()?.block_on(async {
        let store = open(store).await?;
        let result = async {
            let ports = store.sync_ports(&|_| None).await.map_err(|err| format!("cannot build the search ports: {err}"))?;
            let collection = collection()?;
            let mut keyword_empty = 0;
            let mut modes = Vec::new();
            for (name, mode) in [("keyword", SearchMode::Keyword), ("hybrid", SearchMode::Hybrid)] {
                let opts = SearchOptions { mode, k: SEARCH_K, filter: None };
                colstore_app::search(&ports, &collection, "warm up", &opts).await.map_err(|err| format!("{name} search: {err}"))?;
                let mut latencies = Vec::with_capacity(queries.len());
                let series = Instant::now();
                for query in queries {
                    if series_done(series, latencies.len(), queries.len()) {
                        break;
                    }
                    let started = Instant::now();
                    let found = colstore_app::search(&ports, &collection, query, &opts)
                        .await
                        .map_err(|err| format!("{name} search {query:?}: {err}"))?;
                    latencies.push(started.elapsed());
                    if mode == SearchMode::Keyword && found.hits.is_empty() {
                        keyword_empty += 1;
                    }
                }
                modes.push(latencies);
            }
            let hybrid = modes.pop().unwrap_or_default();
            let keyword = modes.pop().unwrap_or_default();
            Ok((keyword, hybrid, keyword_empty))
        }
        .await;
        store.close().await;
        result
    })
}

/// `kind:model/dimension` of the collection's embedder, from `col collection show --json`.
fn embedder(col: &Col<'_>) -> Option<String> {
    let out = col.run(["collection", "show", COLLECTION, "--json"]).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&out.output.stdout).ok()?;
    let embedder = &value["settings"]["vectors"]["embedder"];
    Some(format!("{}:{}/{}", embedder["kind"].as_str()?, embedder["model"].as_str()?, embedder["dimension"].as_u64()?))
}

/// Runs the area in `dir/query` with the release `col` at `bin`.
pub(crate) fn measure_query(bin: &Path, dir: &Path, docs: usize) -> Result<QueryBench, String> {
    let base = dir.join("query");
    let corpus_dir = base.join("corpus");
    let store = base.join("store");
    create_dirs(&[&corpus_dir, &store])?;
    let corpus = QueryCorpus::new(docs);
    step(&format!("generating {docs} Markdown files in {} folders under {}", KEY_GROUPS * TAGS, corpus_dir.display()));
    let (logical_bytes, expect_indexed) = corpus.write_to(&corpus_dir).map_err(|err| format!("cannot write the query corpus: {err}"))?;

    let col = Col { bin, store: &store, cwd: &base };
    step("col init; col collection create bench");
    col.run(["init"])?;
    col.run(["collection", "create", COLLECTION])?;

    step(&format!("col add bench <folder> --prefix kK/tT/ --tag tT ({} runs, {docs} files, put_batch phases logged)", KEY_GROUPS * TAGS));
    let (created, ingest, stderr) =
        add_folders(&col, &corpus_dir, &|k, t| format!("{}/", QueryCorpus::folder(k, t)), "warn,colstore_sqlite::repo=debug")?;
    if created != docs as u64 {
        eprintln!("warning: the ingest created {created} documents, not {docs}");
    }
    let (fts, batches) = fts_phase(&stderr);
    let fts_phase = (batches > 0).then_some((fts, batches));
    if fts_phase.is_none() {
        eprintln!("warning: `col add` logged no `put_batch phases` with t_docs and t_text; no rate without full text");
    }

    step("full-text tables' size (dbstat through python3's sqlite3, on a copy of the database)");
    let size = fts_size(&store, &base.join("size-copy"));
    if let Err(why) = &size {
        eprintln!("warning: the full-text data's size is not measured: {why}");
    }

    step(&format!("col collection index bench {}", INDEXED_FIELDS.join("; … ")));
    let mut took = Duration::ZERO;
    for field in INDEXED_FIELDS {
        took += col.run(["collection", "index", COLLECTION, field])?.elapsed;
    }
    let (filter, expected, index_time) = (FILTER_INDEXED, expect_indexed, took);

    let mut ls = vec![ls_figures(&col, &store, filter, docs as u64)?];
    if ls[0].matches != expected {
        eprintln!("warning: {filter:?} matched {} documents; the corpus has {expected} that match", ls[0].matches);
    }

    step(&format!("col sync ({docs} documents, hash embedder)"));
    let sync = sync_run(&col)?;
    if sync.synced != docs as u64 || sync.failed > 0 {
        eprintln!("warning: `col sync` synced {} of {docs} documents ({} failed)", sync.synced, sync.failed);
    }
    let embedder = embedder(&col);
    if embedder.as_deref().is_some_and(|e| !e.ends_with("/384")) {
        eprintln!("warning: the collection's embedder is {embedder:?}, not 384 dimensions");
    }

    let queries = corpus.queries(SEARCH_QUERIES);
    step(&format!("keyword and hybrid search in process, {} queries each, k {SEARCH_K}", queries.len()));
    let (keyword, hybrid, keyword_empty) = search_in_process(&store, &queries)?;

    let target_docs = (docs * LARGE_FACTOR) as u64;
    step(&format!(
        "growing the store to {target_docs} documents: the folders again under {} more key prefixes (budget {} s)",
        LARGE_FACTOR - 1,
        LARGE_BUDGET.as_secs()
    ));
    let mut large = LargeBuild { target_docs, docs: created, adds: 0, elapsed: Duration::ZERO };
    for replica in 1..LARGE_FACTOR {
        if large.elapsed >= LARGE_BUDGET {
            eprintln!("warning: the large store stopped at {} documents after {:.0} s", large.docs, large.elapsed.as_secs_f64());
            break;
        }
        let (added, took, _) = add_folders(&col, &corpus_dir, &|k, t| format!("k{k}/r{replica}/t{t}/"), "warn")?;
        large.docs += added;
        large.adds += KEY_GROUPS * TAGS;
        large.elapsed += took;
        println!("    {} documents, {:.1} s", large.docs, large.elapsed.as_secs_f64());
    }
    let figures = ls_figures(&col, &store, filter, large.docs)?;
    let replicas = large.docs / created.max(1);
    if figures.matches != expected * replicas {
        eprintln!("warning: {filter:?} matched {} documents in the large store, not {}", figures.matches, expected * replicas);
    }
    ls.push(figures);

    Ok(QueryBench {
        docs,
        logical_bytes,
        seed: corpus.seed,
        filter: filter.to_owned(),
        index_time,
        adds: KEY_GROUPS * TAGS,
        ingest,
        fts_phase,
        size,
        ls,
        sync,
        embedder,
        keyword,
        hybrid,
        keyword_empty,
        large,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn words_are_distinct_per_rank() {
        let words: HashSet<String> = (0..VOCABULARY).map(word).collect();
        assert_eq!(words.len(), VOCABULARY);
        assert_eq!(word(0), "ba");
        assert!(words.iter().all(|w| w.bytes().all(|b| b.is_ascii_lowercase())));
    }

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let mut rng = SplitMix64::new(3);
        let draws: Vec<usize> = (0..20_000).map(|_| zipf(&mut rng, 0, VOCABULARY)).collect();
        assert!(draws.iter().all(|&r| r < VOCABULARY));
        let top = draws.iter().filter(|&&r| r == 0).count();
        let mid = draws.iter().filter(|&&r| r == 1000).count();
        assert!(top > 800 && mid < 20, "{top} {mid}");
        let q: Vec<usize> = (0..1000).map(|_| zipf(&mut rng, QUERY_MIN_RANK, VOCABULARY)).collect();
        assert!(q.iter().all(|&r| (QUERY_MIN_RANK..VOCABULARY).contains(&r)));
    }

    #[test]
    fn documents_have_front_matter_and_a_small_body() {
        let corpus = QueryCorpus::new(1000);
        for i in [0, 1, 999] {
            let doc = corpus.doc(i);
            assert!(doc.text.starts_with(&format!("---\nyear: {}\nlang: {}\n---\n", doc.year, doc.lang)), "{}", doc.text);
            assert!((BODY_MIN..BODY_MAX + 200).contains(&doc.text.len()), "{}", doc.text.len());
            assert_eq!(doc, corpus.doc(i), "deterministic");
        }
        let docs: Vec<Doc> = (0..1000).map(|i| corpus.doc(i)).collect();
        let en = docs.iter().filter(|d| d.lang == "en").count();
        assert!((400..600).contains(&en), "{en}");
        assert_eq!(docs.iter().filter(|d| d.tag == 2 && d.key_group == 1).count(), 50);
        assert!(corpus.queries(50).iter().all(|q| (1..=4).contains(&q.split(' ').count())));
    }

    #[test]
    fn debug_durations_and_phase_lines_are_read() {
        assert_eq!(parse_debug_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_debug_duration("12.5ms"), Some(Duration::from_micros(12_500)));
        assert_eq!(parse_debug_duration("313.398µs"), Some(Duration::from_nanos(313_398)));
        assert_eq!(parse_debug_duration("80ns"), Some(Duration::from_nanos(80)));
        assert_eq!(parse_debug_duration("fast"), None);
        let stderr = "DEBUG put_batch{collection=b docs=2000}: put_batch phases t_enc=3ms t_begin=3.1ms t_blobs=10ms t_docs=20ms t_text=35ms t_commit=40ms\n\
                      DEBUG something else t_docs=1s t_text=9s\n\
                      DEBUG put_batch{collection=b docs=10}: put_batch phases t_docs=1.5ms t_text=2ms t_commit=3ms\n\
                      DEBUG put_batch{collection=b docs=1}: put_batch phases t_docs=1ms t_commit=3ms\n";
        assert_eq!(fts_phase(stderr), (Duration::from_micros(15_500), 2));
    }

    fn bench() -> QueryBench {
        let d = Duration::from_millis;
        QueryBench {
            docs: 100_000,
            logical_bytes: 50_000_000,
            seed: SEED,
            filter: FILTER_INDEXED.into(),
            index_time: d(900),
            adds: 20,
            ingest: d(10_000),
            fts_phase: Some((d(1_000), 50)),
            size: Ok(FtsSize { fts_bytes: 25_000_000, db_bytes: 120_000_000 }),
            ls: vec![
                LsFigures { docs: 100_000, matches: 1_667, in_process: vec![d(4); 100], command: vec![d(30); 20] },
                LsFigures { docs: 1_000_000, matches: 16_670, in_process: vec![d(40); 100], command: vec![d(60); 20] },
            ],
            sync: SyncRun { elapsed: d(8000), documents: 100_000, chunks: 100_000, synced: 100_000, ..SyncRun::default() },
            embedder: Some("hash:v1/384".into()),
            keyword: vec![d(5); 200],
            hybrid: vec![d(31); 200],
            keyword_empty: 0,
            large: LargeBuild { target_docs: 1_000_000, docs: 1_000_000, adds: 180, elapsed: d(90_000) },
        }
    }

    #[test]
    fn figures_judge_each_target() {
        let figures = bench().figures();
        let verdicts: Vec<(String, Option<bool>)> = figures.iter().map(|f| (f.name.clone(), f.meets)).collect();
        assert_eq!(
            verdicts.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
            [Some(true), None, None, Some(true), Some(true), Some(false), Some(false), Some(true), Some(false), None, None],
            "{verdicts:#?}"
        );
        assert!(figures[0].measured.contains("10 000 docs/s (10.00 s); without the full-text part ≈ 11 111 docs/s"), "{:?}", figures[0]);
        assert!(figures[0].measured.ends_with("0.90×") && (figures[0].ratio.unwrap() - 1.125).abs() < 1e-6, "{:?}", figures[0]);
        assert!(figures[1].measured.starts_with("0.500 bytes per logical byte"), "{:?}", figures[1]);
        assert!(figures[5].name.contains("1 000 000 documents, in process"), "{:?}", figures[5]);
        assert!(figures[8].name.contains("(100 000 chunks, hash:v1/384)"), "{:?}", figures[8]);
        assert!(!bench().context().is_empty() && QueryBench::note().contains("Σ(t_text − t_docs)"));
    }

    #[test]
    fn a_run_without_phases_or_the_whole_large_store_says_so() {
        let mut b = bench();
        b.fts_phase = None;
        b.size = Err("no python3".into());
        b.large.docs = 400_000;
        let figures = b.figures();
        assert_eq!(figures[0].meets, None);
        assert!(figures[1].measured.contains("no python3"));
        assert!(figures.last().unwrap().measured.contains("stopped at 400 000 of 1 000 000 documents"), "{:?}", figures.last());
    }
}
