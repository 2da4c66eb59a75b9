//! The reconcile area (`--only reconcile`): the filesystem storage mode, where documents are plain files in
//! `<store>/.colstore/docs/<collection>/` and `col reconcile` finds what changed — a file whose size, modification time
//! and inode are as recorded is not read, any other is hashed.
//!
//! A store made with `col init --mode filesystem` gets a collection `notes`, and `--docs` distinct text files of about
//! 2 KiB ([`NotesCorpus`]) are written straight into its folder, spread over 100 nested folders like a notes folder.
//! Then:
//!
//! 1. `col reconcile notes` records them (timed, informational). The folder becomes a git repository (`git init`,
//!    `git add -A`, `git commit`; the add is timed for comparison), and `col reconcile notes` on the unchanged tree is
//!    timed against `git status --porcelain` in the same folder, alternately, after one untimed run of each. git keeps
//!    each file's stat in its index, the same idea as the fast path, which makes it the yardstick. The scan skips
//!    `.git` folders; the untimed run checks that the tree reconciles to no change.
//! 2. 1 %, then 10 % of the files are rewritten in place with new text of the same size, and `col reconcile notes` is
//!    timed after each, with the files and bytes it read, so the cost can be seen to follow the changed bytes.
//! 3. `col watch`: in a separate store of 1 000 such files, reconciled and synced first (`hash` embedder, a new
//!    store's default), `col --json watch notes` runs as a child process and each save — write a temporary file beside
//!    a note, rename it over the note, as editors do — is timed until the watcher prints its `"event": "synced"`
//!    object on stdout.
//!
//! Every `col` command runs through [`Col`] (or the same environment scrubbing), and git without the user's or the
//! system's configuration, so neither tool's figures depend on settings of the machine.

use std::ffi::OsStr;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::backup::{MAX_SIZE, MIN_SIZE};
use super::corpus::{SplitMix64, text_sized};
use super::report::{Figure, group_thousands, median};
use super::{Col, create_dirs, scrub_env, step};

/// The collection every store of the area has.
const COLLECTION: &str = "notes";
/// Leaf folders the notes are spread over: `area-0/topic-0` … `area-9/topic-9`.
pub(crate) const FOLDERS: usize = 100;
/// Seed of the notes: their own, so they are neither the ingest corpus's nor the backup corpus's files.
pub(crate) const SEED: u64 = 0x2EC0_0C11_E5F1_1E50;
/// Mixed into the seed of the watch store's notes, and (times the round) into rewritten content and choices.
const WATCH_SALT: u64 = 0x0A7C_4ED0_C5A1_7001;
const REWRITE_SALT: u64 = 0x2E3B_17E5_0DD5_0C7A;
/// Shares of the files rewritten before the timed reconciles of changed trees, in order.
pub(crate) const CHANGED_PERCENTS: [usize; 2] = [1, 10];
/// Timed runs of `col reconcile` and of `git status` on the unchanged tree, each.
pub(crate) const STATUS_RUNS: usize = 5;
/// Notes in the watch store.
pub(crate) const WATCH_DOCS: usize = 1000;
/// Timed saves under `col watch`.
pub(crate) const WATCH_SAVES: usize = 5;

/// `col reconcile` of an unchanged tree: at most this many times `git status --porcelain` on it.
pub(crate) const GIT_STATUS_TARGET: f64 = 1.0;
/// `col watch`: from a save to the `synced` event.
pub(crate) const WATCH_TARGET: Duration = Duration::from_secs(1);

/// How long `col watch` may take for its first round (reconcile and sync at start).
const WATCH_READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one save may take to be synced before the watch is given up as broken.
const WATCH_SAVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Quiet before each save, so no round of the watcher is still running or about to start.
const WATCH_QUIET: Duration = Duration::from_millis(500);
/// How long `col watch` may take to stop after SIGINT.
const WATCH_STOP_TIMEOUT: Duration = Duration::from_secs(20);
const MB: f64 = 1e6;

/// `docs` distinct notes of [`MIN_SIZE`]..=[`MAX_SIZE`] bytes of prose-like text at `area-A/topic-T/note-0000000.txt`,
/// consecutive notes in the same folder, over up to [`FOLDERS`] folders.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotesCorpus {
    pub(crate) docs: usize,
    pub(crate) seed: u64,
}

impl NotesCorpus {
    pub(crate) fn new(docs: usize) -> Self {
        Self { docs, seed: SEED }
    }

    fn per_folder(&self) -> usize {
        self.docs.div_ceil(FOLDERS).max(1)
    }

    /// Folders holding notes.
    pub(crate) fn folders(&self) -> usize {
        self.docs.div_ceil(self.per_folder())
    }

    /// Path of note `i`, relative to the collection's folder.
    pub(crate) fn path(&self, i: usize) -> String {
        let folder = i / self.per_folder();
        format!("area-{}/topic-{}/note-{i:07}.txt", folder / 10, folder % 10)
    }

    fn file_seed(&self, i: usize) -> u64 {
        self.seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
    }

    pub(crate) fn content(&self, i: usize) -> Vec<u8> {
        assert!(i < self.docs, "note {i} of a {}-note corpus", self.docs);
        text_sized(self.file_seed(i), MIN_SIZE, MAX_SIZE)
    }

    /// New content for note `i` in rewrite `round` (from 1), of exactly the size of its original content.
    pub(crate) fn rewritten(&self, i: usize, round: u64) -> Vec<u8> {
        let size = self.content(i).len();
        text_sized(self.file_seed(i) ^ REWRITE_SALT.wrapping_mul(round), size, size)
    }

    /// `percent` % of the notes, at least one.
    pub(crate) fn changed_count(&self, percent: usize) -> usize {
        (self.docs * percent / 100).max(1)
    }

    /// `count` distinct notes picked at random (deterministically for a `round`), in ascending order.
    pub(crate) fn pick(&self, count: usize, round: u64) -> Vec<usize> {
        let count = count.min(self.docs);
        let mut rng = SplitMix64::new(self.seed ^ REWRITE_SALT.wrapping_mul(round).rotate_left(17));
        let mut all: Vec<usize> = (0..self.docs).collect();
        // The first `count` steps of a Fisher–Yates shuffle pick `count` distinct notes uniformly.
        for i in 0..count {
            let j = i + rng.below((self.docs - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(count);
        all.sort_unstable();
        all
    }

    /// Writes every note into `dir` (which must exist), creating the folders, and returns their total size.
    pub(crate) fn write_to(&self, dir: &Path) -> std::io::Result<u64> {
        let mut logical = 0;
        let mut folder: Option<PathBuf> = None;
        for i in 0..self.docs {
            let path = dir.join(self.path(i));
            let parent = path.parent().expect("a note is in a folder");
            if folder.as_deref() != Some(parent) {
                std::fs::create_dir_all(parent)?;
                folder = Some(parent.to_owned());
            }
            let content = self.content(i);
            logical += content.len() as u64;
            std::fs::write(path, content)?;
        }
        Ok(logical)
    }

    /// Rewrites the notes `indexes` in `dir` in place (same inode, new modification time) with their content of
    /// `round`, and returns the bytes written.
    pub(crate) fn rewrite(&self, dir: &Path, indexes: &[usize], round: u64) -> std::io::Result<u64> {
        let mut written = 0;
        for &i in indexes {
            let content = self.rewritten(i, round);
            written += content.len() as u64;
            std::fs::write(dir.join(self.path(i)), content)?;
        }
        Ok(written)
    }
}

/// One `col --json reconcile` of the one collection: its wall time and what it reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReconcileRun {
    pub(crate) elapsed: Duration,
    /// Changes to documents: added, modified, deleted and renamed files.
    pub(crate) changes: u64,
    /// Files whose stat changed but not their content.
    pub(crate) touched: u64,
    pub(crate) unchanged: u64,
    /// Files read and hashed, and the bytes read.
    pub(crate) hashed_files: u64,
    pub(crate) hashed_bytes: u64,
}

/// The counters of `col --json reconcile` for a store with one collection. A real run prints
/// `{"dry_run":false,"collections":[{"plan":{…},"applied":…}]}`, a dry run `{"dry_run":true,"collections":[{…plan…}]}`;
/// the plan has `changes` (each tagged by `change`: added, modified, deleted, renamed, touched), `unchanged`,
/// `hashed_files` and `hashed_bytes`.
pub(crate) fn parse_reconcile_json(text: &str) -> Result<ReconcileRun, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|err| format!("`col --json reconcile` did not print JSON ({err}): {}", clip(text.trim_end())))?;
    let collections = value["collections"]
        .as_array()
        .ok_or_else(|| format!("`col --json reconcile` printed no collections: {}", clip(&value.to_string())))?;
    let [collection] = collections.as_slice() else {
        return Err(format!("`col --json reconcile` reported {} collections, not 1", collections.len()));
    };
    let plan = collection.get("plan").unwrap_or(collection);
    let count = |field: &str| {
        plan[field]
            .as_u64()
            .ok_or_else(|| format!("`col --json reconcile` has no whole number `{field}` in its plan: {}", clip(&plan.to_string())))
    };
    let changes = plan["changes"].as_array().ok_or_else(|| "`col --json reconcile` has no `changes` list in its plan".to_owned())?;
    let mut run = ReconcileRun {
        elapsed: Duration::ZERO,
        changes: 0,
        touched: 0,
        unchanged: count("unchanged")?,
        hashed_files: count("hashed_files")?,
        hashed_bytes: count("hashed_bytes")?,
    };
    for change in changes {
        match change["change"].as_str() {
            Some("touched") => run.touched += 1,
            Some(_) => run.changes += 1,
            None => return Err(format!("`col --json reconcile` lists a change without its kind: {change}")),
        }
    }
    Ok(run)
}

/// The first characters of a long text, for error messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// git's figures on the same folder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GitSide {
    /// `git --version`.
    pub(crate) version: String,
    /// `git add -A` of every note (setup; compared with the first reconcile).
    pub(crate) add: Duration,
    /// Timed `git status --porcelain` runs on the unchanged tree.
    pub(crate) status: Vec<Duration>,
}

/// A timed reconcile after some notes were rewritten.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChangedRun {
    pub(crate) percent: usize,
    /// Notes rewritten, and the bytes written.
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    pub(crate) run: ReconcileRun,
}

/// `col watch`'s figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WatchBench {
    /// Notes in the watch store.
    pub(crate) docs: usize,
    /// From each save to the `synced` event, as the benchmark saw it.
    pub(crate) saves: Vec<Duration>,
    /// The `ms` each `synced` event reported: the watcher's own round (reconcile and sync), debounce excluded.
    pub(crate) rounds: Vec<Duration>,
}

/// The reconcile area's measurements.
#[derive(Debug, Clone)]
pub(crate) struct ReconcileBench {
    pub(crate) docs: usize,
    pub(crate) folders: usize,
    pub(crate) logical_bytes: u64,
    pub(crate) seed: u64,
    /// The first reconcile, recording every note.
    pub(crate) first: ReconcileRun,
    /// Timed reconciles of the unchanged tree.
    pub(crate) unchanged: Vec<ReconcileRun>,
    /// git's figures, or why there are none.
    pub(crate) git: Result<GitSide, String>,
    pub(crate) changed: Vec<ChangedRun>,
    /// The watch figures, or why there are none.
    pub(crate) watch: Result<WatchBench, String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

fn runs_summary(samples: &[Duration]) -> String {
    let max = samples.iter().max().copied().unwrap_or_default();
    format!("median {:.1} ms, max {:.1} ms", ms(median(samples)), ms(max))
}

impl ReconcileBench {
    /// Median wall time of the reconciles of the unchanged tree.
    pub(crate) fn unchanged_median(&self) -> Duration {
        median(&self.unchanged.iter().map(|run| run.elapsed).collect::<Vec<_>>())
    }

    /// `col reconcile` ÷ `git status`, by their medians on the unchanged tree.
    pub(crate) fn vs_git_status(&self) -> Option<f64> {
        let git = self.git.as_ref().ok()?;
        (!git.status.is_empty() && !self.unchanged.is_empty()).then(|| secs(self.unchanged_median()) / secs(median(&git.status)))
    }

    /// Time of a reconcile of a changed tree over the unchanged tree's median, in milliseconds: negative when it was
    /// faster, which happens when the changes cost less than the unchanged runs vary.
    pub(crate) fn over_unchanged_ms(&self, changed: &ChangedRun) -> f64 {
        ms(changed.run.elapsed) - ms(self.unchanged_median())
    }

    /// [`Self::over_unchanged_ms`] per changed note, in microseconds.
    pub(crate) fn per_changed_file_us(&self, changed: &ChangedRun) -> f64 {
        self.over_unchanged_ms(changed) * 1e3 / changed.files.max(1) as f64
    }

    pub(crate) fn figures(&self) -> Vec<Figure> {
        let docs = group_thousands(self.docs as u64);
        let mut figures = Vec::new();

        let git_add = match &self.git {
            Ok(git) => format!("; `git add -A` of the same files {:.2} s", git.add.as_secs_f64()),
            Err(_) => String::new(),
        };
        figures.push(Figure {
            name: format!("Reconcile: first `col reconcile` of {docs} new files"),
            measured: format!(
                "{:.2} s ({} files/s; {} changes, {} files hashed, {:.1} MB read{git_add})",
                self.first.elapsed.as_secs_f64(),
                group_thousands((self.docs as f64 / secs(self.first.elapsed)).round() as u64),
                group_thousands(self.first.changes),
                group_thousands(self.first.hashed_files),
                self.first.hashed_bytes as f64 / MB
            ),
            target: "—".into(),
            ratio: None,
            meets: None,
        });

        let col_times: Vec<Duration> = self.unchanged.iter().map(|run| run.elapsed).collect();
        let changes = self.unchanged.iter().map(|run| run.changes).max().unwrap_or(0);
        let hashed = self.unchanged.iter().map(|run| run.hashed_files).max().unwrap_or(0);
        let found = format!("{changes} changes and at most {hashed} files hashed per run");
        let runs = self.unchanged.len();
        let (measured, ratio) = match (&self.git, self.vs_git_status()) {
            (Ok(git), Some(vs)) => (
                format!(
                    "col {}; `git status --porcelain` {} ({runs} runs each, alternating); {vs:.2}× git status; {found}",
                    runs_summary(&col_times),
                    runs_summary(&git.status)
                ),
                Some(vs / GIT_STATUS_TARGET),
            ),
            (git, _) => {
                let why = git.as_ref().err().map_or("no runs", String::as_str);
                (format!("col {} ({runs} runs); git status unavailable ({why}); {found}", runs_summary(&col_times)), None)
            }
        };
        figures.push(Figure {
            name: format!("Reconcile: `col reconcile` of {docs} unchanged files against `git status`"),
            measured,
            target: format!("≤ {GIT_STATUS_TARGET:.1}× `git status`"),
            ratio,
            meets: ratio.map(|ratio| ratio <= 1.0),
        });

        for changed in &self.changed {
            let run = &changed.run;
            let slowest_unchanged = col_times.iter().max().copied().unwrap_or_default();
            let spread = if run.elapsed <= slowest_unchanged {
                format!(", within the unchanged runs' spread (max {:.1} ms)", ms(slowest_unchanged))
            } else {
                String::new()
            };
            let read_ratio = run.hashed_bytes as f64 / changed.bytes.max(1) as f64;
            let missed = if run.changes == changed.files as u64 {
                String::new()
            } else {
                format!("; but it found {} changes", group_thousands(run.changes))
            };
            figures.push(Figure {
                name: format!(
                    "Reconcile: `col reconcile` after {} % of the files changed ({} files)",
                    changed.percent,
                    group_thousands(changed.files as u64)
                ),
                measured: format!(
                    "{:.1} ms ({:+.1} ms over the unchanged tree's median, {:+.1} µs per changed file{spread}); read {:.2} MB \
                     in {} files (changed {:.2} MB; whole tree {:.1} MB){missed}",
                    ms(run.elapsed),
                    self.over_unchanged_ms(changed),
                    self.per_changed_file_us(changed),
                    run.hashed_bytes as f64 / MB,
                    group_thousands(run.hashed_files),
                    changed.bytes as f64 / MB,
                    self.logical_bytes as f64 / MB
                ),
                target: "reads only the changed bytes".into(),
                ratio: Some(read_ratio),
                meets: Some(run.hashed_bytes <= changed.bytes && missed.is_empty()),
            });
        }

        let name =
            |docs: usize| format!("Watch: `col watch`, save → `synced` event ({} files, `hash` embedder)", group_thousands(docs as u64));
        let target = format!("max < {} s", WATCH_TARGET.as_secs());
        figures.push(match &self.watch {
            Ok(watch) => {
                let max = watch.saves.iter().max().copied().unwrap_or_default();
                Figure {
                    name: name(watch.docs),
                    measured: format!(
                        "{} ({} saves; the watcher's own rounds: {})",
                        runs_summary(&watch.saves),
                        watch.saves.len(),
                        runs_summary(&watch.rounds)
                    ),
                    target,
                    ratio: Some(secs(max) / secs(WATCH_TARGET)),
                    meets: Some(!watch.saves.is_empty() && max < WATCH_TARGET),
                }
            }
            Err(why) => {
                Figure { name: name(WATCH_DOCS.min(self.docs)), measured: format!("not measured: {why}"), target, ratio: None, meets: None }
            }
        });
        figures
    }

    /// The context line: the data, the changes, git's version.
    pub(crate) fn context(&self) -> String {
        let git = match &self.git {
            Ok(git) => git.version.clone(),
            Err(why) => format!("git unavailable ({why})"),
        };
        let changed: Vec<String> = self
            .changed
            .iter()
            .map(|c| format!("{} ({} %, {:.2} MB)", group_thousands(c.files as u64), c.percent, c.bytes as f64 / MB))
            .collect();
        format!(
            "{} distinct files of {:.1}–{:.1} KiB text in {} folders (`area-A/topic-T/`), {:.1} MB, seed {:#018x}, in the folder of a \
             filesystem-mode collection; then {} of them rewritten in place with new text of the same size; {git}; watch store: {} \
             such files",
            group_thousands(self.docs as u64),
            MIN_SIZE as f64 / 1024.0,
            MAX_SIZE as f64 / 1024.0,
            self.folders,
            self.logical_bytes as f64 / MB,
            self.seed,
            changed.join(", then "),
            group_thousands(WATCH_DOCS.min(self.docs) as u64)
        )
    }

    /// How the reconcile figures were measured.
    pub(crate) fn note() -> String {
        "Reconcile: the notes are written straight into the folder of a collection of a `col init --mode filesystem` store \
         (`.colstore/docs/notes/`); every reconcile is `col --json reconcile notes` (the JSON gives the files and bytes \
         read). The first one records every file. Then the folder becomes a git repository (`git init`, `git add -A`, \
         `git commit`, git run without user or system configuration); the scan skips `.git`. `col reconcile` and \
         `git status --porcelain` on the unchanged tree run alternately after one untimed run each, so both have warm \
         caches; the ratio is the medians'. The changed-tree reconciles run once each, 1 % then 10 % of the files \
         rewritten; time per changed file is the time over the unchanged tree's median divided by the files changed \
         (within the unchanged runs' spread, it is noise), \
         and the ratio is the bytes read ÷ the bytes changed. Watch: a store of its own, reconciled and synced first \
         (`hash` embedder, default debounce); `col --json watch notes` runs in the background, and each save (a \
         temporary file written beside a note and renamed over it, after 0.5 s of quiet) is timed until the watcher \
         prints its `\"event\": \"synced\"` object."
            .to_owned()
    }
}

/// A collection's folder in a filesystem-mode store with the default documents folder.
fn collection_folder(store: &Path) -> PathBuf {
    store.join(".colstore").join("docs").join(COLLECTION)
}

/// Runs `col --json reconcile notes` and reads its counters.
fn reconcile_run(col: &Col<'_>) -> Result<ReconcileRun, String> {
    let timed = col.run(["--json", "reconcile", COLLECTION])?;
    let mut run = parse_reconcile_json(&String::from_utf8_lossy(&timed.output.stdout))?;
    run.elapsed = timed.elapsed;
    Ok(run)
}

/// A git command in `dir`, with the benchmark's identity and without the user's or the system's configuration.
fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.args(["-c", "user.name=colstore bench", "-c", "user.email=bench@colstore.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

/// Runs git in `dir`, timed; a failure carries its stderr.
fn git(dir: &Path, args: &[&str]) -> Result<(Output, Duration), String> {
    let shown = format!("git {}", args.join(" "));
    let start = Instant::now();
    let output = git_command(dir, args).output().map_err(|err| format!("cannot run `{shown}`: {err}"))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`{shown}` failed ({}): {}", output.status, clip(stderr.trim())));
    }
    Ok((output, elapsed))
}

/// Makes `dir` a git repository with every file committed; returns git's version and the time of `git add -A`.
fn git_setup(dir: &Path) -> Result<GitSide, String> {
    let (output, _) = git(dir, &["--version"])?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    println!("{version}");
    git(dir, &["init", "-q"])?;
    step("git add -A");
    let (_, add) = git(dir, &["add", "-A"])?;
    step("git commit");
    git(dir, &["commit", "-q", "-m", "notes"])?;
    Ok(GitSide { version, add, status: Vec::new() })
}

/// One `git status --porcelain`, warning when the tree is not clean.
fn git_status(dir: &Path) -> Result<Duration, String> {
    let (output, elapsed) = git(dir, &["status", "--porcelain"])?;
    if !output.stdout.is_empty() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        eprintln!("warning: `git status --porcelain` is not clean:\n{}", clip(stdout.trim_end()));
    }
    Ok(elapsed)
}

/// The reconcile area: see the module documentation. Only colstore's failures of the reconcile figures fail it; git
/// and the watch are reported as unavailable, with why, when they fail.
pub(crate) fn measure_reconcile(bin: &Path, dir: &Path, docs: usize) -> Result<ReconcileBench, String> {
    let base = dir.join("reconcile");
    let store = base.join("store");
    create_dirs(&[&store])?;
    let col = Col { bin, store: &store, cwd: &base };
    step(&format!("col init --mode filesystem; col collection create {COLLECTION}"));
    col.run(["init", "--mode", "filesystem"])?;
    col.run(["collection", "create", COLLECTION])?;
    let folder = collection_folder(&store);
    create_dirs(&[&folder])?;

    let corpus = NotesCorpus::new(docs);
    step(&format!("generating {docs} files of {MIN_SIZE}–{MAX_SIZE} bytes in {} folders of {}", corpus.folders(), folder.display()));
    let logical_bytes = corpus.write_to(&folder).map_err(|err| format!("cannot write the notes: {err}"))?;

    step(&format!("col --json reconcile {COLLECTION} (first: records {docs} new files)"));
    let first = reconcile_run(&col)?;
    if first.changes != docs as u64 {
        return Err(format!(
            "the first `col reconcile` found {} changes, not the {docs} new files in {}; is that the collection's folder?",
            first.changes,
            folder.display()
        ));
    }

    step(&format!("git --version; git init; git add -A; git commit (in {})", folder.display()));
    let mut git = git_setup(&folder);
    if let Err(why) = &git {
        eprintln!("warning: git is unavailable ({why}); colstore's figures are reported alone");
    }

    step(&format!("col --json reconcile {COLLECTION} and git status --porcelain, once each untimed, then x{STATUS_RUNS} alternating"));
    let warm = reconcile_run(&col)?;
    if warm.changes != 0 || warm.touched != 0 {
        eprintln!(
            "warning: `col reconcile` of the unchanged tree found {} changes and {} touched files (is `.git` scanned?)",
            warm.changes, warm.touched
        );
    }
    git_step(&mut git, "git status --porcelain", |_| git_status(&folder).map(drop));
    let mut unchanged = Vec::with_capacity(STATUS_RUNS);
    for _ in 0..STATUS_RUNS {
        unchanged.push(reconcile_run(&col)?);
        git_step(&mut git, "git status --porcelain", |side| {
            side.status.push(git_status(&folder)?);
            Ok(())
        });
    }
    println!(
        "col reconcile: {}; git status: {}",
        runs_summary(&unchanged.iter().map(|run| run.elapsed).collect::<Vec<_>>()),
        git.as_ref().map_or_else(|why| format!("unavailable ({why})"), |side| runs_summary(&side.status))
    );

    let mut changed = Vec::new();
    for (round, percent) in (1..).zip(CHANGED_PERCENTS) {
        let picked = corpus.pick(corpus.changed_count(percent), round);
        step(&format!("rewriting {} files ({percent} %); col --json reconcile {COLLECTION}", picked.len()));
        let bytes = corpus.rewrite(&folder, &picked, round).map_err(|err| format!("cannot rewrite the changed notes: {err}"))?;
        let run = reconcile_run(&col)?;
        println!(
            "{:.1} ms; {} changes, {} files hashed, {:.2} MB read",
            ms(run.elapsed),
            run.changes,
            run.hashed_files,
            run.hashed_bytes as f64 / MB
        );
        if run.changes != picked.len() as u64 {
            eprintln!("warning: `col reconcile` found {} changes after {} files were rewritten", run.changes, picked.len());
        }
        changed.push(ChangedRun { percent, files: picked.len(), bytes, run });
    }

    let watch = measure_watch(bin, &base, docs.min(WATCH_DOCS)).inspect_err(|why| {
        eprintln!("warning: the `col watch` figure could not be measured:\n{why}");
    });
    let watch = watch.map_err(|why| why.lines().next().unwrap_or_default().to_owned());

    Ok(ReconcileBench { docs, folders: corpus.folders(), logical_bytes, seed: corpus.seed, first, unchanged, git, changed, watch })
}

/// Runs one git step unless git already failed; a failure is printed and replaces git's figures with why.
fn git_step(git: &mut Result<GitSide, String>, what: &str, f: impl FnOnce(&mut GitSide) -> Result<(), String>) {
    let Ok(side) = git else { return };
    if let Err(err) = f(side) {
        eprintln!("warning: {what} failed; colstore's figures are reported without git's:\n{err}");
        *git = Err(format!("`{what}` failed: {}", err.lines().next().unwrap_or_default()));
    }
}

/// The watch figure: a store of `docs` notes of its own, synced, then saves under `col --json watch`.
fn measure_watch(bin: &Path, base: &Path, docs: usize) -> Result<WatchBench, String> {
    let store = base.join("watch-store");
    create_dirs(&[&store])?;
    let col = Col { bin, store: &store, cwd: base };
    step(&format!("watch store: col init --mode filesystem; col collection create {COLLECTION}; {docs} files; col reconcile; col sync"));
    col.run(["init", "--mode", "filesystem"])?;
    col.run(["collection", "create", COLLECTION])?;
    let folder = collection_folder(&store);
    create_dirs(&[&folder])?;
    let corpus = NotesCorpus { docs, seed: SEED ^ WATCH_SALT };
    corpus.write_to(&folder).map_err(|err| format!("cannot write the watch store's notes: {err}"))?;
    col.run(["reconcile", COLLECTION])?;
    col.run(["sync"])?;

    // A change made before the watcher starts makes its first round (reconcile and sync at start) print a `synced`
    // event: the sign that it is watching.
    corpus.rewrite(&folder, &[0], 1).map_err(|err| format!("cannot rewrite a note: {err}"))?;
    step(&format!("col --json watch {COLLECTION} (in the background), then {WATCH_SAVES} saves"));
    let mut cmd = Command::new(col.bin);
    cmd.arg("--store").arg(col.store).args(["--json", "watch", COLLECTION]).current_dir(col.cwd);
    scrub_env(&mut cmd);
    let mut watcher = Watcher::spawn(cmd, &base.join("watch-stderr.txt"))?;
    let (_, first) = watcher.next_synced(WATCH_READY_TIMEOUT)?;
    println!("watching (first round: {first})");

    let mut saves = Vec::with_capacity(WATCH_SAVES);
    let mut rounds = Vec::with_capacity(WATCH_SAVES);
    for (round, i) in (2..).zip(corpus.pick(WATCH_SAVES, 1)) {
        std::thread::sleep(WATCH_QUIET);
        for stray in watcher.events.drain() {
            eprintln!("warning: `col watch` printed {stray} between saves");
        }
        let note = folder.join(corpus.path(i));
        let name = note.file_name().map(OsStr::to_string_lossy).unwrap_or_default();
        let temp = note.with_file_name(format!(".{name}.save-tmp"));
        let content = corpus.rewritten(i, round);
        let start = Instant::now();
        std::fs::write(&temp, content).map_err(|err| format!("cannot write {}: {err}", temp.display()))?;
        std::fs::rename(&temp, &note).map_err(|err| format!("cannot rename {} to {}: {err}", temp.display(), note.display()))?;
        let (at, event) = watcher.next_synced(WATCH_SAVE_TIMEOUT)?;
        let save = at.saturating_duration_since(start);
        let round_ms = event["ms"].as_u64();
        println!("save of {}: synced after {:.1} ms ({event})", corpus.path(i), ms(save));
        if event["changes"].as_u64() == Some(0) {
            eprintln!("warning: the `synced` event after a save reported no change: {event}");
        }
        saves.push(save);
        rounds.extend(round_ms.map(Duration::from_millis));
    }
    watcher.stop()?;
    Ok(WatchBench { docs, saves, rounds })
}

/// The JSON values a process prints on stdout, each with the moment it was read, parsed on a thread of its own.
struct Events {
    rx: Receiver<Result<(Instant, Value), String>>,
}

impl Events {
    /// Reads concatenated JSON values (pretty-printed or not) from `reader` until it ends or holds something else.
    fn spawn(reader: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for value in serde_json::Deserializer::from_reader(BufReader::new(reader)).into_iter::<Value>() {
                let failed = value.is_err();
                let item = value.map(|value| (Instant::now(), value)).map_err(|err| format!("the output is not JSON: {err}"));
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        });
        Self { rx }
    }

    /// The next object with `"event": "synced"` (others are printed and skipped), or why there is none.
    fn next_synced(&self, timeout: Duration) -> Result<(Instant, Value), String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok((at, value))) if value["event"] == "synced" => return Ok((at, value)),
                Ok(Ok((_, value))) => println!("(col watch printed {value})"),
                Ok(Err(err)) => return Err(err),
                Err(RecvTimeoutError::Timeout) => return Err(format!("no `\"event\": \"synced\"` within {} s", timeout.as_secs_f64())),
                Err(RecvTimeoutError::Disconnected) => return Err("the output ended".to_owned()),
            }
        }
    }

    /// The values printed and not yet taken.
    fn drain(&self) -> Vec<Value> {
        let mut values = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(Ok((_, value))) => values.push(value),
                Ok(Err(_)) | Err(TryRecvError::Empty | TryRecvError::Disconnected) => return values,
            }
        }
    }
}

/// A `col --json watch` running in the background; killed when dropped.
struct Watcher {
    child: Child,
    events: Events,
    stderr: PathBuf,
}

impl Watcher {
    /// Starts `cmd` with its stdout read as [`Events`] and its stderr in the file `stderr`.
    fn spawn(mut cmd: Command, stderr: &Path) -> Result<Self, String> {
        let stderr_file = std::fs::File::create(stderr).map_err(|err| format!("cannot create {}: {err}", stderr.display()))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .spawn()
            .map_err(|err| format!("cannot start `{}`: {err}", cmd.get_program().to_string_lossy()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(Self { child, events: Events::spawn(stdout), stderr: stderr.to_owned() })
    }

    /// The next `synced` event; a failure says whether the watcher exited, and the end of its stderr.
    fn next_synced(&mut self, timeout: Duration) -> Result<(Instant, Value), String> {
        self.events.next_synced(timeout).map_err(|why| {
            let exited = match self.child.try_wait() {
                Ok(Some(status)) => format!("; it exited ({status})"),
                _ => String::new(),
            };
            let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            let lines: Vec<&str> = stderr.trim_end().lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            format!("`col --json watch`: {why}{exited}; its stderr ends with:\n{tail}")
        })
    }

    /// Stops the watcher as Ctrl-C would (SIGINT), and kills it when it does not stop in time.
    fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).stdin(Stdio::null()).status().is_ok_and(|status| status.success());
        let deadline = Instant::now() + WATCH_STOP_TIMEOUT;
        while sent && Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(err) => return Err(format!("cannot wait for `col watch`: {err}")),
            }
        }
        eprintln!("warning: `col watch` did not stop on SIGINT within {} s; killing it", WATCH_STOP_TIMEOUT.as_secs());
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn notes_are_distinct_text_spread_over_nested_folders() {
        let corpus = NotesCorpus::new(2000);
        assert_eq!(corpus.folders(), 100);
        assert_eq!(corpus.path(0), "area-0/topic-0/note-0000000.txt");
        assert_eq!(corpus.path(19), "area-0/topic-0/note-0000019.txt");
        assert_eq!(corpus.path(20), "area-0/topic-1/note-0000020.txt");
        assert_eq!(corpus.path(1999), "area-9/topic-9/note-0001999.txt");
        let folders: HashSet<String> = (0..corpus.docs).map(|i| corpus.path(i).rsplit_once('/').unwrap().0.to_owned()).collect();
        assert_eq!(folders.len(), 100);
        assert_eq!(NotesCorpus::new(100_000).path(99_999), "area-9/topic-9/note-0099999.txt");
        assert_eq!(NotesCorpus::new(150).folders(), 75, "2 per folder");
        assert_eq!(NotesCorpus::new(3).folders(), 3);

        let contents: Vec<Vec<u8>> = (0..corpus.docs).map(|i| corpus.content(i)).collect();
        assert!(contents.iter().all(|c| (MIN_SIZE..=MAX_SIZE).contains(&c.len())));
        assert_eq!(contents.iter().collect::<HashSet<_>>().len(), contents.len(), "no duplicates");
        assert_ne!(contents[0], super::super::backup::BackupCorpus::new(1).content(0), "its own seed");
        assert_ne!(NotesCorpus { docs: 10, seed: SEED ^ WATCH_SALT }.content(0), contents[0]);
    }

    #[test]
    fn rewrites_keep_the_size_and_differ_by_round() {
        let corpus = NotesCorpus::new(10_000);
        let one = corpus.pick(corpus.changed_count(1), 1);
        let ten = corpus.pick(corpus.changed_count(10), 2);
        assert_eq!((one.len(), ten.len()), (100, 1000));
        assert!(one.windows(2).all(|w| w[0] < w[1]) && ten.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        assert!(one[0] < 1000 && one[99] > 9000, "spread over the corpus");
        assert_ne!(one[..], ten[..100], "each round picks its own");
        assert_eq!(corpus.pick(100, 1), one, "deterministic");
        let (old, r1, r2) = (corpus.content(7), corpus.rewritten(7, 1), corpus.rewritten(7, 2));
        assert!(old.len() == r1.len() && r1.len() == r2.len());
        assert!(old != r1 && r1 != r2 && old != r2);
        assert_eq!(NotesCorpus::new(5).changed_count(1), 1);
        assert_eq!(NotesCorpus::new(3).pick(10, 1), [0, 1, 2]);
    }

    #[test]
    fn notes_are_written_and_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = NotesCorpus::new(250);
        let logical = corpus.write_to(dir.path()).unwrap();
        assert_eq!(logical, super::super::dir_size(dir.path()).unwrap());
        let note = dir.path().join(corpus.path(249));
        assert_eq!(std::fs::read(&note).unwrap(), corpus.content(249));
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&note);
        let written = corpus.rewrite(dir.path(), &[249], 3).unwrap();
        assert_eq!(std::fs::read(&note).unwrap(), corpus.rewritten(249, 3));
        assert_eq!(written, corpus.content(249).len() as u64);
        assert_eq!(inode(&note), before, "in place");
    }

    #[test]
    fn reconcile_json_is_read_from_the_plan() {
        let real = r#"{"dry_run":false,"safety_backup":null,"collections":[{"plan":{"collection":"notes","root":"/s/notes",
            "changes":[{"change":"modified","key":"a.txt"},{"change":"added","key":"b.txt"},{"change":"touched","key":"c.txt"}],
            "unchanged":97,"hashed_files":3,"hashed_bytes":6144,"skipped":[],"unreadable":[],"refusal":null},
            "applied":{"conflicts":[]}}]}"#;
        assert_eq!(
            parse_reconcile_json(real).unwrap(),
            ReconcileRun { elapsed: Duration::ZERO, changes: 2, touched: 1, unchanged: 97, hashed_files: 3, hashed_bytes: 6144 }
        );
        let dry = r#"{"dry_run":true,"collections":[{"collection":"notes","changes":[],"unchanged":5,"hashed_files":0,"hashed_bytes":0}]}"#;
        assert_eq!(parse_reconcile_json(dry).unwrap(), ReconcileRun { unchanged: 5, ..ReconcileRun::default() });
        assert!(parse_reconcile_json("refused").unwrap_err().contains("did not print JSON"));
        assert!(parse_reconcile_json(r#"{"collections":[]}"#).unwrap_err().contains("0 collections, not 1"));
        let err = parse_reconcile_json(r#"{"collections":[{"plan":{"changes":[],"unchanged":1}}]}"#).unwrap_err();
        assert!(err.contains("no whole number `hashed_files`"), "{err}");
        let err = parse_reconcile_json(r#"{"collections":[{"plan":{"changes":[{}],"unchanged":1,"hashed_files":0,"hashed_bytes":0}}]}"#)
            .unwrap_err();
        assert!(err.contains("without its kind"), "{err}");
        assert_eq!(clip(&"x".repeat(400)).chars().count(), 301);
    }

    fn run(ms: u64, changes: u64, hashed_files: u64, hashed_bytes: u64) -> ReconcileRun {
        ReconcileRun { elapsed: Duration::from_millis(ms), changes, touched: 0, unchanged: 0, hashed_files, hashed_bytes }
    }

    fn bench() -> ReconcileBench {
        let d = Duration::from_millis;
        ReconcileBench {
            docs: 100_000,
            folders: 100,
            logical_bytes: 204_900_000,
            seed: SEED,
            first: run(20_000, 100_000, 100_000, 204_900_000),
            unchanged: [300, 280, 320, 310, 290].map(|ms| run(ms, 0, 0, 0)).to_vec(),
            git: Ok(GitSide { version: "git version 2.47.3".into(), add: d(15_000), status: vec![d(200), d(250), d(240), d(260), d(230)] }),
            changed: vec![
                ChangedRun { percent: 1, files: 1000, bytes: 2_050_000, run: run(400, 1000, 1000, 2_050_000) },
                ChangedRun { percent: 10, files: 10_000, bytes: 20_500_000, run: run(1300, 10_000, 10_000, 20_500_000) },
            ],
            watch: Ok(WatchBench {
                docs: 1000,
                saves: vec![d(400), d(450), d(420), d(900), d(410)],
                rounds: vec![d(150), d(160), d(155), d(600), d(150)],
            }),
        }
    }

    fn summary(figures: &[Figure]) -> Vec<(String, Option<String>, Option<bool>)> {
        figures.iter().map(|f| (f.target.clone(), f.ratio.map(|r| format!("{r:.2}")), f.meets)).collect()
    }

    #[test]
    fn figures_compare_with_git_status_and_the_changed_bytes() {
        let b = bench();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            summary(&b.figures()),
            [
                ("—".into(), None, None),
                ("≤ 1.0× `git status`".into(), s("1.25"), Some(false)), // 300 ms vs 240 ms
                ("reads only the changed bytes".into(), s("1.00"), Some(true)),
                ("reads only the changed bytes".into(), s("1.00"), Some(true)),
                ("max < 1 s".into(), s("0.90"), Some(true)),
            ]
        );
        let figures = b.figures();
        assert_eq!(figures[0].name, "Reconcile: first `col reconcile` of 100 000 new files");
        assert_eq!(
            figures[0].measured,
            "20.00 s (5 000 files/s; 100 000 changes, 100 000 files hashed, 204.9 MB read; `git add -A` of the same files 15.00 s)"
        );
        assert_eq!(
            figures[1].measured,
            "col median 300.0 ms, max 320.0 ms; `git status --porcelain` median 240.0 ms, max 260.0 ms (5 runs each, alternating); \
             1.25× git status; 0 changes and at most 0 files hashed per run"
        );
        assert_eq!(figures[2].name, "Reconcile: `col reconcile` after 1 % of the files changed (1 000 files)");
        assert_eq!(
            figures[2].measured,
            "400.0 ms (+100.0 ms over the unchanged tree's median, +100.0 µs per changed file); read 2.05 MB in 1 000 files \
             (changed 2.05 MB; whole tree 204.9 MB)"
        );
        assert!(figures[3].measured.starts_with("1300.0 ms (+1000.0 ms over the unchanged tree's median, +100.0 µs per changed file)"));
        assert_eq!(figures[4].name, "Watch: `col watch`, save → `synced` event (1 000 files, `hash` embedder)");
        assert_eq!(figures[4].measured, "median 420.0 ms, max 900.0 ms (5 saves; the watcher's own rounds: median 155.0 ms, max 600.0 ms)");
        let context = b.context();
        assert!(context.contains("100 000 distinct files of 1.5–2.5 KiB text in 100 folders"), "{context}");
        assert!(context.contains("then 1 000 (1 %, 2.05 MB), then 10 000 (10 %, 20.50 MB) of them"), "{context}");
        assert!(context.contains("git version 2.47.3; watch store: 1 000 such files"), "{context}");
    }

    #[test]
    fn misses_reads_of_unchanged_files_missed_changes_slow_saves_and_failures() {
        let mut b = bench();
        b.changed[0].run.hashed_bytes = 204_900_000;
        b.changed[1].run.changes = 9_999;
        if let Ok(watch) = &mut b.watch {
            watch.saves[3] = Duration::from_secs(1);
        }
        b.unchanged = [200, 230].map(|ms| run(ms, 0, 0, 0)).to_vec();
        let figures = b.figures();
        assert_eq!((figures[1].meets, figures[1].ratio.map(|r| format!("{r:.2}"))), (Some(true), Some("0.90".into())), "215 ms vs 240 ms");
        assert_eq!((figures[2].meets, figures[2].ratio.map(|r| format!("{r:.2}"))), (Some(false), Some("99.95".into())));
        assert_eq!(figures[3].meets, Some(false));
        assert!(figures[3].measured.ends_with("; but it found 9 999 changes"), "{}", figures[3].measured);
        assert_eq!(figures[4].meets, Some(false), "1 s is not below 1 s");

        b.git = Err("`git add -A` failed: boom".into());
        b.watch = Err("`col --json watch`: the output ended".into());
        let figures = b.figures();
        assert_eq!((figures[1].ratio, figures[1].meets), (None, None));
        assert!(figures[1].measured.contains("git status unavailable (`git add -A` failed: boom)"), "{}", figures[1].measured);
        assert!(!figures[0].measured.contains("git add"));
        assert_eq!((figures[4].ratio, figures[4].meets), (None, None));
        assert_eq!(figures[4].measured, "not measured: `col --json watch`: the output ended");
        assert!(b.context().contains("git unavailable (`git add -A` failed: boom)"));
    }

    #[test]
    fn a_changed_tree_faster_than_the_unchanged_median_is_shown_as_noise() {
        let mut b = bench();
        b.changed[0].run.elapsed = Duration::from_millis(290);
        let measured = &b.figures()[2].measured;
        assert!(
            measured.starts_with(
                "290.0 ms (-10.0 ms over the unchanged tree's median, -10.0 µs per changed file, within the unchanged runs' spread \
                 (max 320.0 ms)); read 2.05 MB"
            ),
            "{measured}"
        );
    }

    #[test]
    fn events_are_read_from_pretty_or_compact_json() {
        let text = "{\n  \"event\": \"synced\",\n  \"changes\": 1\n}\n{\"event\":\"other\"}\n{\"event\":\"synced\",\"changes\":2}\n";
        let events = Events::spawn(std::io::Cursor::new(text.to_owned()));
        let (_, first) = events.next_synced(Duration::from_secs(5)).unwrap();
        assert_eq!(first["changes"], 1);
        let (_, second) = events.next_synced(Duration::from_secs(5)).unwrap();
        assert_eq!(second["changes"], 2, "the other event is skipped");
        assert_eq!(events.next_synced(Duration::from_secs(5)).unwrap_err(), "the output ended");

        let broken = Events::spawn(std::io::Cursor::new("{\"event\":\"synced\"}\nwatching…\n".to_owned()));
        assert!(broken.next_synced(Duration::from_secs(5)).is_ok());
        assert!(broken.next_synced(Duration::from_secs(5)).unwrap_err().starts_with("the output is not JSON"));
    }

    // Existing programs stand in for `col watch` (see bench.rs on ETXTBSY).

    #[test]
    fn a_watcher_is_read_timed_out_and_stopped_with_sigint() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo '{\"event\":\"synced\",\"ms\":5}'; echo 'on stderr' >&2; exec sleep 60"]);
        let mut watcher = Watcher::spawn(cmd, &dir.path().join("stderr")).unwrap();
        let (_, event) = watcher.next_synced(Duration::from_secs(10)).unwrap();
        assert_eq!(event["ms"], 5);
        let err = watcher.next_synced(Duration::from_millis(50)).unwrap_err();
        assert!(err.starts_with("`col --json watch`: no `\"event\": \"synced\"` within 0.05 s") && err.ends_with("on stderr"), "{err}");
        let start = Instant::now();
        watcher.stop().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "sleep stops on SIGINT");
    }

    #[test]
    fn a_watcher_that_exits_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'error: no store' >&2; exit 2"]);
        let mut watcher = Watcher::spawn(cmd, &dir.path().join("stderr")).unwrap();
        let err = watcher.next_synced(Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("the output ended") && err.ends_with("error: no store"), "{err}");
    }
}
