//! `cargo xtask bench`: measures colstore against the performance targets and records the figures.
//!
//! The run builds `colstore-cli` in release mode, writes generated corpora (see `corpus.rs`) into a temporary
//! directory under `target/` — not `/tmp`, which is often tmpfs and would flatter write and verify speeds — and
//! drives the real binary through the agreed interface: `init`, `collection create`, `add`, `ls`, `verify`, `gc`,
//! `stats --json`, `sync` and `search`. Those figures are wall-clock times of a whole process, start-up included,
//! because that is what a user waits for. Exact search and the job queue are measured in process (`inproc.rs`),
//! through the same composition root `col` uses, since their targets are about the component, not a process.
//!
//! The areas — ingest, sync, search, queue, backup, reconcile, large, peer, remote, retrieval, query — can be measured alone with `--only`, to
//! re-measure one after a change. The backup area (`backup.rs`) compares `col backup`, `verify --read-data` and
//! `restore` with restic; the reconcile area (`reconcile.rs`) measures the filesystem storage mode: `col reconcile`
//! against `git status` on the same tree, reconciles of changed trees, and `col watch` from a save to synced; the large
//! area (`large.rs`) measures the peak memory and time of `put`, `get`, `backup`, `restore`, `export` and `import` of
//! one 2 GiB document (`--large-bytes` for another size), with restic's backup and restore of the same file beside;
//! the peer area (`peer.rs`) compares `col add` + `col sync` with LangChain's `index()` on the same files, restores a
//! synced store against restic and against the same store without vectors, and counts SQL statements per document;
//! the query area (`query.rs`) measures `col ls --where` at 100 000 and 1 000 000 documents, keyword and hybrid search,
//! ingest with the full-text index kept up to date, and the size of the full-text data.

mod backup;
mod corpus;
mod inproc;
mod large;
mod peer;
mod query;
mod reconcile;
mod remote;
mod report;
mod retrieval;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use self::corpus::{Corpus, SyncCorpus};
use self::report::{ChunkSync, CorpusInfo, Ingest, Machine, Measurements, Report, SyncRun};

const DEFAULT_DOCS: usize = 100_000;
const DEFAULT_OUT: &str = "docs/BENCHMARKS.md";
const LS_RUNS: usize = 20;
const RESYNC_RUNS: usize = 5;
/// `col search` queries, one per run: different texts, so no run can reuse another's work.
const CLI_QUERIES: &[&str] = &[
    "how do backups work",
    "restore a snapshot of the store",
    "vector index search",
    "document metadata filter",
    "the crawler found an image",
    "queue server payload",
    "water in the first day",
    "people who write notes",
    "cluster schema version",
    "find the long record",
];
/// Set in the environment of the optimised re-run of `cargo xtask bench`, so it does not re-run itself.
const OPTIMISED_ENV: &str = "XTASK_BENCH_OPTIMISED";

/// A part of the benchmark that can run alone (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Area {
    /// `col add`, `ls`, `verify`, store size (the main store).
    Ingest,
    /// `col sync` of 100 000 chunks, and a no-op re-sync of the main store.
    Sync,
    /// Exact search in process, and `col search` on the main store.
    Search,
    /// The job queue on SQLite, in process.
    Queue,
    /// `col backup`, `verify --read-data` and `restore` of a store of its own, against restic on the same documents.
    Backup,
    /// Filesystem mode: `col reconcile` against `git status` on the same files, and `col watch`, in stores of their own.
    Reconcile,
    /// One large document (2 GiB by default) through `put`, `get`, `backup`, `restore`, `export` and `import`: peak
    /// memory and time, with restic's backup and restore of the same file.
    Large,
    /// LangChain's `index()` on the same files, the restore of a synced store against restic and against the same
    /// store without vectors, and statements per document (`peer.rs`).
    Peer,
    /// `col sync`, `verify --index` and `reindex --to` against the testkit's Qdrant fake on loopback (`remote.rs`).
    Remote,
    /// Known-item search on the machine's man pages in each search mode: recall, MRR and latency (`retrieval.rs`).
    Retrieval,
    /// `col ls --where` at `--docs` and 10× as many documents, keyword and hybrid search, ingest with full text and the
    /// full-text data's size, in a store of its own (`query.rs`).
    Query,
}

impl Area {
    const ALL: [Area; 11] = [
        Area::Ingest,
        Area::Sync,
        Area::Search,
        Area::Queue,
        Area::Backup,
        Area::Reconcile,
        Area::Large,
        Area::Peer,
        Area::Remote,
        Area::Retrieval,
        Area::Query,
    ];

    fn name(self) -> &'static str {
        match self {
            Area::Ingest => "ingest",
            Area::Sync => "sync",
            Area::Search => "search",
            Area::Queue => "queue",
            Area::Backup => "backup",
            Area::Reconcile => "reconcile",
            Area::Large => "large",
            Area::Peer => "peer",
            Area::Remote => "remote",
            Area::Retrieval => "retrieval",
            Area::Query => "query",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|area| area.name() == text)
            .ok_or_else(|| format!("--only takes {}, not {text:?}", Self::ALL.map(Area::name).join(", ")))
    }
}

/// `cargo xtask bench` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Args {
    /// Documents of the main corpus, and chunks of the sync corpus.
    pub(crate) docs: usize,
    /// Where to write the report; `None`: `docs/BENCHMARKS.md` for a full run, nowhere for a partial one (so
    /// re-measuring one area does not drop the others' figures from the published page). Relative paths are taken
    /// from the workspace root, wherever cargo was started.
    pub(crate) out: Option<PathBuf>,
    /// The areas to measure, sorted and without duplicates; empty means all.
    pub(crate) only: Vec<Area>,
    /// Size in bytes of the large area's document.
    pub(crate) large_bytes: u64,
}

impl Args {
    /// Parses `[--docs N] [--out FILE] [--only AREA[,AREA…]]… [--large-bytes N]` (also `--docs=N`, `--out=FILE`,
    /// `--only=AREA`, `--large-bytes=N`).
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut parsed = Self { docs: DEFAULT_DOCS, out: None, only: Vec::new(), large_bytes: large::DEFAULT_BYTES };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || inline.clone().or_else(|| args.next().cloned()).ok_or_else(|| format!("{flag} needs a value"));
            match flag {
                "--docs" => {
                    let value = value()?;
                    parsed.docs = value.replace('_', "").parse().map_err(|_| format!("--docs takes a whole number, not {value:?}"))?;
                    if parsed.docs == 0 {
                        return Err("--docs must be at least 1".into());
                    }
                }
                "--out" => parsed.out = Some(PathBuf::from(value()?)),
                "--large-bytes" => {
                    let value = value()?;
                    parsed.large_bytes =
                        value.replace('_', "").parse().map_err(|_| format!("--large-bytes takes a whole number, not {value:?}"))?;
                    if parsed.large_bytes == 0 {
                        return Err("--large-bytes must be at least 1".into());
                    }
                }
                "--only" => {
                    for name in value()?.split(',') {
                        parsed.only.push(Area::parse(name.trim())?);
                    }
                }
                other => return Err(format!("unknown bench argument {other:?}")),
            }
        }
        parsed.only.sort();
        parsed.only.dedup();
        if parsed.only == Area::ALL {
            parsed.only.clear();
        }
        Ok(parsed)
    }

    fn runs(&self, area: Area) -> bool {
        self.only.is_empty() || self.only.contains(&area)
    }

    /// Where the report goes, if anywhere.
    fn out(&self) -> Option<&Path> {
        match &self.out {
            Some(out) => Some(out),
            None if self.only.is_empty() => Some(Path::new(DEFAULT_OUT)),
            None => None,
        }
    }

    /// The arguments that parse back into these, for the optimised re-run.
    fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--docs".to_owned(), self.docs.to_string()];
        if let Some(out) = &self.out {
            args.extend(["--out".to_owned(), out.display().to_string()]);
        }
        if !self.only.is_empty() {
            args.extend(["--only".to_owned(), self.only.iter().map(|area| area.name()).collect::<Vec<_>>().join(",")]);
        }
        if self.large_bytes != large::DEFAULT_BYTES {
            args.extend(["--large-bytes".to_owned(), self.large_bytes.to_string()]);
        }
        args
    }

    /// The command that reproduces this run, as recorded in the report.
    pub(crate) fn command(&self) -> String {
        let mut command = format!("cargo xtask bench --docs {}", self.docs);
        if !self.only.is_empty() {
            command.push_str(&format!(" --only {}", self.only.iter().map(|area| area.name()).collect::<Vec<_>>().join(",")));
        }
        if self.large_bytes != large::DEFAULT_BYTES {
            command.push_str(&format!(" --large-bytes {}", self.large_bytes));
        }
        if let Some(out) = self.out.as_deref().filter(|out| *out != Path::new(DEFAULT_OUT)) {
            command.push_str(&format!(" --out {}", out.display()));
        }
        command
    }
}

/// Runs the benchmark and writes the report section into the output file.
pub(crate) fn run(root: &Path, args: &Args) -> Result<(), String> {
    if cfg!(debug_assertions) && std::env::var_os(OPTIMISED_ENV).is_none() {
        return run_optimised(root, args);
    }
    let metadata = crate::metadata::cargo_metadata(root, false)?;
    let target_dir = PathBuf::from(metadata["target_directory"].as_str().ok_or("`cargo metadata` has no target_directory")?);

    step("cargo build --release -p colstore-cli");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "colstore-cli"])
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if !status.success() {
        return Err(format!("`cargo build --release -p colstore-cli` failed ({status})"));
    }
    let bin = target_dir.join("release").join(format!("col{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        return Err(format!("the build succeeded but {} does not exist; is the binary still called `col`?", bin.display()));
    }

    let tmp = tempfile::Builder::new()
        .prefix("xtask-bench-")
        .tempdir_in(&target_dir)
        .map_err(|err| format!("cannot create a temporary directory in {}: {err}", target_dir.display()))?;
    let result = measure(root, &bin, tmp.path(), args);
    match result {
        Ok(report) => {
            drop(tmp);
            print!("\n{}", report.table());
            let Some(out) = args.out() else {
                println!("\n(a partial run: {DEFAULT_OUT} is left as it is; add --out FILE to record these figures)");
                return Ok(());
            };
            let out = root.join(out);
            let existing = match std::fs::read_to_string(&out) {
                Ok(text) => Some(text),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(format!("cannot read {}: {err}", out.display())),
            };
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
            }
            let text = report::replace_section(existing.as_deref(), &report.markdown_section());
            std::fs::write(&out, text).map_err(|err| format!("cannot write {}: {err}", out.display()))?;
            println!("\nwrote {}", out.display());
            Ok(())
        }
        Err(err) => {
            // Keep the corpus and the store so the failure can be investigated.
            let kept = tmp.keep();
            Err(format!("{err}\n(the corpora and stores are kept in {} for inspection)", kept.display()))
        }
    }
}

/// `cargo xtask` builds xtask without optimisations, and the in-process figures (and the corpus generation) need
/// them, so an unoptimised xtask re-runs itself through `cargo run --release`.
fn run_optimised(root: &Path, args: &Args) -> Result<(), String> {
    step("cargo run --release -p xtask -- bench … (the in-process figures need an optimised build)");
    let status = Command::new(env!("CARGO"))
        .args(["run", "--release", "--quiet", "-p", "xtask", "--", "bench"])
        .args(args.to_args())
        .env(OPTIMISED_ENV, "1")
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if status.success() { Ok(()) } else { Err(format!("the optimised `cargo xtask bench` failed ({status})")) }
}

fn step(what: &str) {
    println!("==> {what}");
}

fn create_dirs(paths: &[&Path]) -> Result<(), String> {
    for path in paths {
        std::fs::create_dir_all(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    }
    Ok(())
}

fn load() -> Option<f64> {
    report::parse_load(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

fn measure(root: &Path, bin: &Path, dir: &Path, args: &Args) -> Result<Report, String> {
    let load_at_start = load();
    let mut m = Measurements::default();
    let mut stats = None;

    // The main store: the ingest figures, and the store the no-op re-sync and `col search` run on.
    let main_store = dir.join("store");
    let col = Col { bin, store: &main_store, cwd: dir };
    if args.runs(Area::Ingest) || args.runs(Area::Sync) || args.runs(Area::Search) {
        let corpus_dir = dir.join("corpus");
        create_dirs(&[&corpus_dir, &main_store])?;
        let corpus = Corpus::new(args.docs);
        step(&format!("generating {} files in {}", args.docs, corpus_dir.display()));
        let logical_bytes = corpus.write_to(&corpus_dir).map_err(|err| format!("cannot write the corpus: {err}"))?;
        m.corpus = Some(CorpusInfo { docs: args.docs, distinct: corpus.distinct(), logical_bytes, seed: corpus.seed });

        step("col init; col collection create bench");
        col.run(["init"])?;
        col.run(["collection", "create", "bench"])?;
        step(&format!("col add bench <corpus> ({} files)", args.docs));
        let add = col.run([OsStr::new("add"), OsStr::new("bench"), corpus_dir.as_os_str()])?.elapsed;

        if args.runs(Area::Ingest) {
            step(&format!("col ls bench --limit 100 (x{LS_RUNS})"));
            let mut ls = Vec::with_capacity(LS_RUNS);
            for _ in 0..LS_RUNS {
                ls.push(col.run(["ls", "bench", "--limit", "100"])?.elapsed);
            }

            step("col verify");
            let verify = col.run(["verify"])?.elapsed;

            step("col gc");
            col.run(["gc"])?;
            let colstore = main_store.join(".colstore");
            let store_bytes = dir_size(&colstore).map_err(|err| format!("cannot measure {}: {err}", colstore.display()))?;

            step("col stats --json");
            let text = String::from_utf8_lossy(&col.run(["stats", "--json"])?.output.stdout).into_owned();
            stats = Some(redact(&pretty_json(&text), dir));
            m.ingest = Some(Ingest { add, ls, verify, store_bytes });
        }
    }

    if args.runs(Area::Sync) {
        m.sync = Some(measure_chunk_sync(bin, dir, args.docs)?);
    }

    if args.runs(Area::Sync) || args.runs(Area::Search) {
        step(&format!("col sync (the {}-document store, first time)", args.docs));
        let first = sync_run(&col)?;
        if first.synced != args.docs as u64 || first.failed > 0 {
            eprintln!(
                "warning: the first sync of the main store synced {} of {} documents ({} failed)",
                first.synced, args.docs, first.failed
            );
        }
        m.first_sync = Some(first);
    }

    if args.runs(Area::Sync) {
        step(&format!("col sync (no-op, x{RESYNC_RUNS})"));
        for _ in 0..RESYNC_RUNS {
            let again = sync_run(&col)?;
            if again.documents > 0 || again.chunks > 0 {
                eprintln!("warning: a re-sync of the synced store was not a no-op: {} documents, {} chunks", again.documents, again.chunks);
            }
            m.resync.push(again.elapsed);
        }
    }

    if args.runs(Area::Search) {
        let search_dir = dir.join("search-store");
        create_dirs(&[&search_dir])?;
        step(&format!(
            "exact search in process: {} x {} random vectors, {} queries",
            inproc::SEARCH_POINTS,
            inproc::SEARCH_DIM,
            inproc::SEARCH_QUERIES
        ));
        m.search = Some(inproc::search(&search_dir, inproc::SEARCH_POINTS, inproc::SEARCH_DIM, inproc::SEARCH_QUERIES)?);

        step(&format!("col search bench QUERY (x{})", CLI_QUERIES.len()));
        for query in CLI_QUERIES {
            m.cli_search.push(col.run(["search", "bench", query])?.elapsed);
        }
    }

    if args.runs(Area::Queue) {
        let queue_dir = dir.join("queue");
        create_dirs(&[&queue_dir])?;
        step(&format!(
            "job queue in process: {} jobs, claim 1 + complete; then claim {} + complete_many",
            inproc::QUEUE_JOBS,
            inproc::QUEUE_BATCH
        ));
        m.queue = Some(inproc::queue(&queue_dir, inproc::QUEUE_JOBS, inproc::QUEUE_BATCH)?);
    }

    if args.runs(Area::Backup) {
        m.backup = Some(backup::measure_backup(bin, dir, args.docs)?);
    }

    if args.runs(Area::Reconcile) {
        m.reconcile = Some(reconcile::measure_reconcile(bin, dir, args.docs)?);
    }

    if args.runs(Area::Large) {
        m.large = Some(large::measure_large(bin, dir, args.large_bytes)?);
    }

    if args.runs(Area::Peer) {
        let target = dir.parent().unwrap_or(dir);
        m.peer = Some(peer::measure_peer(bin, dir, target, args.docs)?);
    }

    if args.runs(Area::Remote) {
        let target_dir = dir.parent().unwrap_or(dir);
        m.remote = Some(remote::measure_remote(root, target_dir, bin, dir, args.docs)?);
    }

    if args.runs(Area::Retrieval) {
        let store = dir.join("retrieval-store");
        create_dirs(&[&store])?;
        let col = Col { bin, store: &store, cwd: dir };
        m.retrieval = Some(retrieval::retrieval(dir, &|args| col.run(args).map(|_| ()))?);
    }

    if args.runs(Area::Query) {
        m.query = Some(query::measure_query(bin, dir, args.docs)?);
    }

    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    Ok(Report {
        date: report::utc_date(now),
        machine: machine(root),
        // From the workspace root, so a rust-toolchain file there is honoured.
        rustc: command_line(root, "rustc", &["-V"]).unwrap_or_else(|| "unknown".into()),
        code: code_revision(root),
        measurements: m,
        load: load_at_start.zip(load()),
        stats,
        command: args.command(),
    })
}

/// A fresh store holding only the sync corpus (about `chunks` chunks), then a timed `col sync`.
fn measure_chunk_sync(bin: &Path, dir: &Path, chunks: usize) -> Result<ChunkSync, String> {
    let corpus_dir = dir.join("sync-corpus");
    let store = dir.join("sync-store");
    create_dirs(&[&corpus_dir, &store])?;
    let corpus = SyncCorpus::new(chunks);
    step(&format!("generating {} files ({} chunks) in {}", corpus.files(), corpus.chunks(), corpus_dir.display()));
    let logical_bytes = corpus.write_to(&corpus_dir).map_err(|err| format!("cannot write the sync corpus: {err}"))?;

    let col = Col { bin, store: &store, cwd: dir };
    step("col init; col collection create sync; col add sync <sync corpus>");
    col.run(["init"])?;
    col.run(["collection", "create", "sync"])?;
    col.run([OsStr::new("add"), OsStr::new("sync"), corpus_dir.as_os_str()])?;

    step(&format!("col sync ({} chunks)", corpus.chunks()));
    let run = sync_run(&col)?;
    if run.chunks != corpus.chunks() as u64 || run.failed > 0 {
        eprintln!(
            "warning: `col sync` reported {} chunks and {} failed documents; the corpus makes {} chunks",
            run.chunks,
            run.failed,
            corpus.chunks()
        );
    }
    Ok(ChunkSync { files: corpus.files(), logical_bytes, seed: corpus.seed, expected_chunks: corpus.chunks(), run })
}

/// Runs `col --json sync` and reads its counters.
fn sync_run(col: &Col<'_>) -> Result<SyncRun, String> {
    let timed = col.run(["--json", "sync"])?;
    let mut run = parse_sync_json(&String::from_utf8_lossy(&timed.output.stdout))?;
    run.elapsed = timed.elapsed;
    Ok(run)
}

/// The counters of `col --json sync` for a store with one collection: `collections[0]` holds the report's progress
/// counters flattened (`documents`, `chunks`, `cache_hits`, `embedded`, `embed_calls`) beside `synced` and `failed`.
fn parse_sync_json(text: &str) -> Result<SyncRun, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("`col --json sync` did not print JSON ({err}): {}", text.trim_end()))?;
    let collections = value["collections"].as_array().ok_or_else(|| format!("`col --json sync` printed no collections: {value}"))?;
    let [collection] = collections.as_slice() else {
        return Err(format!("`col --json sync` reported {} collections, not 1: {value}", collections.len()));
    };
    let count =
        |field: &str| collection[field].as_u64().ok_or_else(|| format!("`col --json sync` has no whole number `{field}`: {collection}"));
    Ok(SyncRun {
        elapsed: Duration::ZERO,
        documents: count("documents")?,
        chunks: count("chunks")?,
        cache_hits: count("cache_hits")?,
        embedded: count("embedded")?,
        embed_calls: count("embed_calls")?,
        synced: count("synced")?,
        failed: collection["failed"]
            .as_array()
            .map(|failed| failed.len() as u64)
            .ok_or_else(|| format!("`col --json sync` has no `failed` list: {collection}"))?,
    })
}

/// The `col` binary bound to one store.
struct Col<'a> {
    bin: &'a Path,
    store: &'a Path,
    cwd: &'a Path,
}

struct Timed {
    output: Output,
    elapsed: Duration,
}

impl Col<'_> {
    /// Runs `col --store <store> <args>`, timing the whole process. A failure carries the command and its stderr.
    fn run<I, S>(&self, args: I) -> Result<Timed, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let mut cmd = Command::new(self.bin);
        cmd.arg("--store").arg(self.store).args(&args).current_dir(self.cwd).stdin(Stdio::null());
        scrub_env(&mut cmd);
        let shown = format!(
            "col --store {} {}",
            self.store.display(),
            args.iter().map(|a| a.as_ref().to_string_lossy()).collect::<Vec<_>>().join(" ")
        );
        let start = Instant::now();
        let output = cmd.output().map_err(|err| format!("cannot run `{shown}` ({}): {err}", self.bin.display()))?;
        let elapsed = start.elapsed();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let mut message = format!("`{shown}` failed ({}):\n{}", output.status, stderr.trim_end());
            if stderr.trim().is_empty() {
                message.push_str(&format!("(no stderr; stdout was:)\n{}", stdout.trim_end()));
            }
            return Err(message);
        }
        Ok(Timed { output, elapsed })
    }
}

/// Removes the user's store settings and log level from `col`'s environment: they must not change what is measured.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("COLSTORE_") || key_text.starts_with("COLLECTION_") || key_text == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
}

/// Total size of the files under `dir`, without following symlinks.
fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            total += dir_size(&entry.path())?;
        } else if file_type.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// Pretty-prints `text` when it is JSON; otherwise returns it unchanged with a warning, since a broken `--json` is a
/// bug to report, not a reason to lose the figures.
fn pretty_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_owned()),
        Err(err) => {
            eprintln!("warning: `col stats --json` did not print valid JSON ({err}); recording it as is");
            text.to_owned()
        }
    }
}

/// Replaces the temporary directory in recorded output, so the report holds no machine-specific path.
fn redact(text: &str, dir: &Path) -> String {
    let mut text = text.to_owned();
    let canonical = dir.canonicalize().ok();
    for path in [Some(dir.to_path_buf()), canonical].into_iter().flatten() {
        text = text.replace(&*path.to_string_lossy(), "$BENCH_DIR");
    }
    text
}

/// First line of a command's stdout, if it ran successfully.
fn command_line(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).current_dir(dir).output().ok()?;
    let stdout = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| stdout.lines().next().unwrap_or_default().trim().to_owned()).filter(|line| !line.is_empty())
}

fn machine(root: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = report::parse_cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".into());
    let vector_flags = report::parse_vector_flags(&cpuinfo);
    let cpus = command_line(root, "nproc", &[])
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.to_string()))
        .unwrap_or_else(|| "unknown".into());
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| report::parse_mem_total(&text));
    Machine { cpu, cpus, memory_bytes, vector_flags, compiled_features: report::compiled_features() }
}

/// The measured code's revision, so a figure can be traced to a commit.
fn code_revision(root: &Path) -> String {
    match command_line(root, "git", &["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty =
                Command::new("git").args(["status", "--porcelain"]).current_dir(root).output().is_ok_and(|out| !out.stdout.is_empty());
            if dirty { format!("git {rev} with uncommitted changes") } else { format!("git {rev}") }
        }
        None => "unknown (no git commit)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn args_default_to_the_published_run() {
        let args = parse(&[]).unwrap();
        assert_eq!(args, Args { docs: 100_000, out: None, only: vec![], large_bytes: 2 * 1024 * 1024 * 1024 });
        assert_eq!(args.command(), "cargo xtask bench --docs 100000");
        assert_eq!(args.out(), Some(Path::new("docs/BENCHMARKS.md")));
        assert!(Area::ALL.iter().all(|&area| args.runs(area)));
    }

    #[test]
    fn args_accept_both_spellings_and_record_a_custom_out() {
        let args = parse(&["--docs", "2_000", "--out=target/bench.md"]).unwrap();
        assert_eq!(args, Args { docs: 2000, out: Some(PathBuf::from("target/bench.md")), only: vec![], large_bytes: large::DEFAULT_BYTES });
        assert_eq!(args.command(), "cargo xtask bench --docs 2000 --out target/bench.md");
        assert_eq!(parse(&["--docs=5"]).unwrap().docs, 5);
        assert_eq!(parse(&["--out", "docs/BENCHMARKS.md"]).unwrap().command(), "cargo xtask bench --docs 100000");
    }

    #[test]
    fn only_selects_areas_and_a_partial_run_writes_nothing_unless_told() {
        let args = parse(&["--only", "queue,sync", "--only=sync"]).unwrap();
        assert_eq!(args.only, [Area::Sync, Area::Queue]);
        assert!(args.runs(Area::Sync) && args.runs(Area::Queue) && !args.runs(Area::Ingest) && !args.runs(Area::Search));
        assert_eq!(args.command(), "cargo xtask bench --docs 100000 --only sync,queue");
        assert_eq!(args.out(), None);
        let recorded = parse(&["--only", "search", "--out", "target/search.md"]).unwrap();
        assert_eq!(recorded.out(), Some(Path::new("target/search.md")));
        assert_eq!(recorded.command(), "cargo xtask bench --docs 100000 --only search --out target/search.md");
        // Naming every area is a full run.
        let all = parse(&["--only", "ingest,sync,search,queue,backup,reconcile,large,peer,remote,retrieval,query"]).unwrap();
        assert_eq!((all.only.len(), all.out()), (0, Some(Path::new("docs/BENCHMARKS.md"))));
    }

    #[test]
    fn large_bytes_default_to_two_gib_and_a_smaller_size_is_recorded() {
        let args = parse(&["--only", "large", "--large-bytes", "64_000_000"]).unwrap();
        assert_eq!((args.only.as_slice(), args.large_bytes), (&[Area::Large][..], 64_000_000));
        assert_eq!(args.command(), "cargo xtask bench --docs 100000 --only large --large-bytes 64000000");
        let default = parse(&["--only=large", "--large-bytes", "2147483648"]).unwrap();
        assert_eq!(default.command(), "cargo xtask bench --docs 100000 --only large");
    }

    #[test]
    fn args_round_trip_for_the_optimised_rerun() {
        for argv in [
            &[][..],
            &["--docs", "7", "--out", "x.md"],
            &["--only", "ingest,search"],
            &["--docs=3", "--only=queue"],
            &["--only", "large", "--large-bytes", "64_000_000"],
        ] {
            let args = parse(argv).unwrap();
            assert_eq!(Args::parse(&args.to_args()).unwrap(), args, "{argv:?}");
        }
    }

    #[test]
    fn args_reject_nonsense() {
        assert_eq!(parse(&["--docs"]), Err("--docs needs a value".into()));
        assert_eq!(parse(&["--docs", "many"]), Err("--docs takes a whole number, not \"many\"".into()));
        assert_eq!(parse(&["--docs", "0"]), Err("--docs must be at least 1".into()));
        assert_eq!(parse(&["--fast"]), Err("unknown bench argument \"--fast\"".into()));
        assert_eq!(
            parse(&["--only", "ingest,speed"]),
            Err("--only takes ingest, sync, search, queue, backup, reconcile, large, peer, remote, retrieval, query, not \"speed\"".into())
        );
        assert_eq!(parse(&["--large-bytes", "2GiB"]), Err("--large-bytes takes a whole number, not \"2GiB\"".into()));
        assert_eq!(parse(&["--large-bytes=0"]), Err("--large-bytes must be at least 1".into()));
        assert_eq!(parse(&["--only"]), Err("--only needs a value".into()));
    }

    #[test]
    fn sync_json_is_read_from_the_first_collection() {
        let json = r#"{"collections":[{"cache_hits":3,"chunks":12,"collection":"bench","deleted":0,"documents":4,"embed_calls":1,
            "embedded":9,"failed":[["a.txt","boom"]],"pending":4,"points_retired":0,"points_upserted":12,"reprojected":false,"synced":3}],"ok":true}"#;
        assert_eq!(
            parse_sync_json(json).unwrap(),
            SyncRun { elapsed: Duration::ZERO, documents: 4, chunks: 12, cache_hits: 3, embedded: 9, embed_calls: 1, synced: 3, failed: 1 }
        );
        assert!(parse_sync_json("not json").unwrap_err().contains("did not print JSON"));
        assert!(parse_sync_json(r#"{"collections":[],"ok":true}"#).unwrap_err().contains("0 collections, not 1"));
        let err = parse_sync_json(r#"{"collections":[{"documents":1}],"ok":true}"#).unwrap_err();
        assert!(err.contains("no whole number `chunks`"), "{err}");
    }

    #[test]
    fn dir_size_sums_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("top"), [0; 10]).unwrap();
        std::fs::write(dir.path().join("a/b/deep"), [0; 32]).unwrap();
        assert_eq!(dir_size(dir.path()).unwrap(), 42);
    }

    #[test]
    fn stats_are_pretty_printed_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let raw = format!("{{\"store\":\"{}/store/.colstore\",\"documents\":3}}", dir.path().display());
        let recorded = redact(&pretty_json(&raw), dir.path());
        assert_eq!(recorded, "{\n  \"documents\": 3,\n  \"store\": \"$BENCH_DIR/store/.colstore\"\n}");
        assert_eq!(pretty_json("not json"), "not json");
    }

    // Stand-ins for `col` are existing programs rather than scripts written by the test: executing a file that was
    // just written races with other test threads' fork/exec (ETXTBSY).

    #[test]
    fn a_failing_col_command_reports_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        // `sh --store …` fails with a usage message on stderr, like a real command would.
        let col = Col { bin: Path::new("sh"), store: Path::new("S"), cwd: dir.path() };
        let err = col.run(["ls", "bench"]).err().expect("the command fails");
        assert!(err.starts_with("`col --store S ls bench` failed (exit status: 2):\n"), "{err}");
        assert!(err.contains("option"), "stderr is included: {err}");
    }

    #[test]
    fn a_failing_col_command_without_stderr_shows_its_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let col = Col { bin: Path::new("false"), store: Path::new("S"), cwd: dir.path() };
        let err = col.run(["verify"]).err().expect("the command fails");
        assert!(err.starts_with("`col --store S verify` failed (exit status: 1):") && err.contains("no stderr"), "{err}");
    }

    #[test]
    fn a_successful_col_command_is_timed_and_gets_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let col = Col { bin: Path::new("echo"), store: Path::new("S"), cwd: dir.path() };
        let timed = col.run(["ls", "bench", "--limit", "100"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&timed.output.stdout), "--store S ls bench --limit 100\n");
        assert!(timed.elapsed > Duration::ZERO);
    }
}
