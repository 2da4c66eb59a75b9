//! The peer area (`--only peer`): colstore against LangChain's indexing API on the same files, the restore of a synced
//! store (vectors included) against restic and against the same store without vectors, and the SQL statements each
//! hot path runs per document.
//!
//! - **LangChain.** A Python virtual environment made by the bench under `target/bench-venv` from PyPI, with the
//!   versions in [`PYTHON_PACKAGES`]. [`LANGCHAIN_SCRIPT`] splits every file with `RecursiveCharacterTextSplitter`
//!   (1200 characters, 200 overlap: colstore's default chunking) and calls `index()` with a `SQLRecordManager` (a
//!   SQLite file), an `InMemoryVectorStore` and `DeterministicFakeEmbedding(384)`, source id = the file path,
//!   `cleanup="incremental"`; then calls it again on the same files, unchanged (the no-op re-run). Its figures are
//!   the seconds inside `index()` only (the interpreter's start and imports are not counted), while colstore's are
//!   whole processes: `col add` + `col sync`, twice. The run is made at 20 000 files and at `--docs` files.
//! - **Restore.** The 20 000-file colstore store (synced, so its backup holds vectors) is backed up and restored
//!   into a fresh store; a second store with the same files, never synced, likewise; restic backs up the files and
//!   restores them. Each under the backup area's memory probe.
//! - **Statements per document.** `col add`, `col sync`, `col restore` and `col import` of 20 000 files run again in
//!   stores of their own with `RUST_LOG=sqlx::query=debug`, and every statement sqlx logged is counted (these runs
//!   are not timed).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::backup::{Memory, ResticRunner, Run, col_run, os, refs, restic_step, rss_text, secs};
use super::corpus::text_sized;
use super::report::{Figure, group_thousands};
use super::{Col, create_dirs, scrub_env, step};

/// Files of the smaller run (and of the restore and statement runs).
pub(crate) const SMALL: usize = 20_000;
/// colstore at least this many times faster than LangChain on the first ingest.
pub(crate) const FIRST_TARGET_VS: f64 = 5.0;
/// … and on the no-op re-run.
pub(crate) const AGAIN_TARGET_VS: f64 = 50.0;
/// The no-op re-run at the larger size, whole processes.
pub(crate) const AGAIN_TARGET: Duration = Duration::from_secs(1);
/// Restore with vectors ÷ restic's restore of the files.
pub(crate) const RESTORE_TARGET_VS_RESTIC: f64 = 1.0;
/// Restore with vectors ÷ restore of the same store without vectors.
pub(crate) const RESTORE_TARGET_VS_PLAIN: f64 = 1.5;
/// Statements per document of the hot paths.
pub(crate) const STATEMENTS_TARGET: f64 = 0.1;
/// Peak resident memory of the restore (MB = 10^6 bytes).
const PEAK_RSS_TARGET_BYTES: u64 = 200_000_000;
/// The files: 1.9–2.3 KB of text (300–500 words), two chunks each with the default chunking, like the 300-word files
/// of the measurement that started issue 14.
const MIN_SIZE: usize = 1900;
const MAX_SIZE: usize = 2300;
const SEED: u64 = 0x1A96_C4A1_0000_0300;

/// What `pip install` puts in the bench's virtual environment.
pub(crate) const PYTHON_PACKAGES: &[&str] =
    &["langchain-core==1.8.3", "langchain-classic==1.0.8", "sqlalchemy==2.1.9", "greenlet==3.5.6", "numpy==2.4.6"];

/// The LangChain side: `python peer.py FOLDER DB` prints one JSON line per run (`first`, `again`).
pub(crate) const LANGCHAIN_SCRIPT: &str = r#"import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import index
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_classic.indexes import SQLRecordManager
from langchain_text_splitters import RecursiveCharacterTextSplitter

folder, db = sys.argv[1], sys.argv[2]
splitter = RecursiveCharacterTextSplitter(chunk_size=1200, chunk_overlap=200)
manager = SQLRecordManager("bench", db_url=f"sqlite:///{db}")
manager.create_schema()
store = InMemoryVectorStore(DeterministicFakeEmbedding(size=384))

def documents():
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for chunk in splitter.split_text(text):
            yield Document(page_content=chunk, metadata={"source": path})

for run in ("first", "again"):
    start = time.perf_counter()
    result = index(documents(), manager, store, cleanup="incremental", source_id_key="source")
    print(json.dumps({"run": run, "seconds": time.perf_counter() - start, **result}), flush=True)
"#;

/// One size of the LangChain comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Size {
    pub(crate) files: usize,
    /// Chunks `col sync` reported.
    pub(crate) chunks: u64,
    /// `col add` + `col sync`.
    pub(crate) first: Duration,
    /// The same two commands again, nothing changed.
    pub(crate) again: Duration,
    /// LangChain's `index()` first and again, or why it was not measured.
    pub(crate) langchain: Result<(Duration, Duration), String>,
}

/// The restore comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Restore {
    pub(crate) docs: usize,
    pub(crate) vectors: u64,
    pub(crate) with_vectors: Run,
    pub(crate) without_vectors: Run,
    pub(crate) restic: Result<Run, String>,
}

/// Statements sqlx ran, per command, over the documents it handled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statements {
    pub(crate) docs: usize,
    pub(crate) add: u64,
    pub(crate) sync: u64,
    pub(crate) restore: u64,
    pub(crate) import: u64,
}

/// The peer area's measurements.
#[derive(Debug, Clone)]
pub(crate) struct PeerBench {
    pub(crate) sizes: Vec<Size>,
    pub(crate) restore: Restore,
    pub(crate) statements: Statements,
    pub(crate) memory: String,
    pub(crate) python: Result<String, String>,
}

fn s(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

impl PeerBench {
    pub(crate) fn figures(&self) -> Vec<Figure> {
        let mut out = Vec::new();
        for size in &self.sizes {
            let n = group_thousands(size.files as u64);
            for (what, ours, theirs, target_vs) in [
                ("first ingest + sync", size.first, size.langchain.as_ref().map(|l| l.0), FIRST_TARGET_VS),
                ("no-op re-run", size.again, size.langchain.as_ref().map(|l| l.1), AGAIN_TARGET_VS),
            ] {
                let (peer, ratio) = match theirs {
                    Ok(t) => {
                        let faster = secs(t) / secs(ours);
                        (format!("; LangChain `index()` {}; {faster:.1}× faster", s(t)), Some(faster / target_vs))
                    }
                    Err(why) => (format!("; LangChain not measured ({why})"), None),
                };
                out.push(Figure {
                    name: format!("Peer: {what}, {n} files (`col add` + `col sync`)"),
                    measured: format!("colstore {}{peer}", s(ours)),
                    target: format!("≥ {target_vs}× faster than LangChain"),
                    ratio,
                    meets: ratio.map(|r| r >= 1.0),
                });
            }
            if size.files > SMALL {
                let ratio = secs(size.again) / secs(AGAIN_TARGET);
                out.push(Figure {
                    name: format!("Peer: no-op re-run, {n} files, whole processes"),
                    measured: s(size.again),
                    target: format!("< {} s", AGAIN_TARGET.as_secs()),
                    ratio: Some(ratio),
                    meets: Some(ratio < 1.0),
                });
            }
        }
        let r = &self.restore;
        let n = group_thousands(r.docs as u64);
        let vs_plain = secs(r.with_vectors.elapsed) / secs(r.without_vectors.elapsed);
        out.push(Figure {
            name: format!("Peer: `col restore` of a synced {n}-document store ({} vectors) vs without vectors", group_thousands(r.vectors)),
            measured: format!("{} with vectors; {} without; {vs_plain:.2}×", s(r.with_vectors.elapsed), s(r.without_vectors.elapsed)),
            target: format!("≤ {RESTORE_TARGET_VS_PLAIN}× without"),
            ratio: Some(vs_plain / RESTORE_TARGET_VS_PLAIN),
            meets: Some(vs_plain <= RESTORE_TARGET_VS_PLAIN),
        });
        let (measured, ratio) = match &r.restic {
            Ok(restic) => {
                let vs = secs(r.with_vectors.elapsed) / secs(restic.elapsed);
                (
                    format!("colstore {}; restic {}; {vs:.2}× restic", s(r.with_vectors.elapsed), s(restic.elapsed)),
                    Some(vs / RESTORE_TARGET_VS_RESTIC),
                )
            }
            Err(why) => (format!("colstore {}; restic unavailable ({why})", s(r.with_vectors.elapsed)), None),
        };
        out.push(Figure {
            name: format!("Peer: `col restore` of the synced {n}-document store vs `restic restore` of its files"),
            measured,
            target: format!("≤ {RESTORE_TARGET_VS_RESTIC}× restic"),
            ratio,
            meets: ratio.map(|r| r <= 1.0),
        });
        let peak = r.with_vectors.peak_rss;
        let restic_peak = r.restic.as_ref().ok().and_then(|run| run.peak_rss);
        let limit = restic_peak.map_or(PEAK_RSS_TARGET_BYTES, |p| p.min(PEAK_RSS_TARGET_BYTES));
        out.push(Figure {
            name: format!("Peer: peak RSS of that restore ({n} documents, vectors included)"),
            measured: format!("colstore {}; restic {}", rss_text(peak), rss_text(restic_peak)),
            target: "≤ 200 MB and ≤ restic's".into(),
            ratio: peak.map(|p| p as f64 / limit as f64),
            meets: peak.map(|p| p <= limit),
        });
        let st = &self.statements;
        for (what, count) in [("col add", st.add), ("col sync", st.sync), ("col restore", st.restore), ("col import", st.import)] {
            let per_doc = count as f64 / st.docs.max(1) as f64;
            out.push(Figure {
                name: format!("Statements per document: `{what}` of {} documents", group_thousands(st.docs as u64)),
                measured: format!("{per_doc:.3} ({} statements)", group_thousands(count)),
                target: format!("≤ {STATEMENTS_TARGET}"),
                ratio: Some(per_doc / STATEMENTS_TARGET),
                meets: Some(per_doc <= STATEMENTS_TARGET),
            });
        }
        out
    }

    pub(crate) fn context(&self) -> String {
        let python = match &self.python {
            Ok(version) => format!("{version} with {}", PYTHON_PACKAGES.join(", ")),
            Err(why) => format!("LangChain unavailable ({why})"),
        };
        format!(
            "files of {MIN_SIZE}–{MAX_SIZE} bytes of text (300–500 words, 2 chunks each), seed {SEED:#018x}, {}; {python}; peak \
             memory by {}",
            self.sizes
                .iter()
                .map(|s| format!("{} files ({} chunks)", group_thousands(s.files as u64), group_thousands(s.chunks)))
                .collect::<Vec<_>>()
                .join(" and "),
            self.memory
        )
    }

    pub(crate) fn note() -> String {
        "Peer: colstore's times are whole `col` processes (`col add` then `col sync` into a fresh store; the no-op re-run \
         is the same two commands again); LangChain's are the seconds inside `index()` (SQLRecordManager on a SQLite file, \
         InMemoryVectorStore, DeterministicFakeEmbedding(384), RecursiveCharacterTextSplitter 1200/200, source id = path, \
         cleanup incremental), interpreter start and imports not counted. The restores are `col restore latest --to-store \
         NEW --yes` of a backup of the synced store and of the same files never synced, and `restic restore latest --target \
         NEW` of the files. Statements are the `sqlx::query` debug events of one command (`RUST_LOG=sqlx::query=debug`) \
         over the documents it handled, in untimed runs."
            .to_owned()
    }
}

fn file_name(i: usize) -> String {
    format!("note-{i:07}.txt")
}

fn write_files(dir: &Path, files: usize) -> Result<(), String> {
    create_dirs(&[dir])?;
    for i in 0..files {
        let text = text_sized(SEED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), MIN_SIZE, MAX_SIZE);
        std::fs::write(dir.join(file_name(i)), text).map_err(|e| format!("cannot write the peer files: {e}"))?;
    }
    Ok(())
}

/// The bench's Python environment with LangChain, made (or completed) under `target/bench-venv`.
fn python(target: &Path) -> Result<(PathBuf, String), String> {
    let venv = target.join("bench-venv");
    let py = venv.join("bin").join("python");
    if !py.exists() {
        step(&format!("python3 -m venv {}", venv.display()));
        let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().map_err(|e| format!("cannot run python3: {e}"))?;
        if !status.success() {
            return Err(format!("`python3 -m venv` failed ({status})"));
        }
    }
    step(&format!("pip install {}", PYTHON_PACKAGES.join(" ")));
    let out = Command::new(&py)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(PYTHON_PACKAGES)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !out.status.success() {
        return Err(format!("pip install failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")));
    }
    let version = Command::new(&py).arg("--version").output().map_err(|e| format!("cannot run python: {e}"))?;
    Ok((py, String::from_utf8_lossy(&version.stdout).trim().to_owned()))
}

/// LangChain's first and no-op `index()` over `files`.
fn langchain(py: &Path, script: &Path, files: &Path, db: &Path) -> Result<(Duration, Duration), String> {
    let out =
        Command::new(py).arg(script).arg(files).arg(db).stdin(Stdio::null()).output().map_err(|e| format!("cannot run python: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the LangChain script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ));
    }
    let runs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let seconds = |run: &str| {
        runs.iter()
            .find(|r| r["run"] == run)
            .and_then(|r| r["seconds"].as_f64())
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("the LangChain script printed no {run:?} run"))
    };
    Ok((seconds("first")?, seconds("again")?))
}

fn chunks_of(stdout: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(stdout)
        .ok()
        .and_then(|v| v.pointer("/collections/0/chunks").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// `col add` + `col sync` twice in a fresh store.
fn colstore_runs(bin: &Path, base: &Path, files: &Path) -> Result<(u64, Duration, Duration), String> {
    let store = base.join("store");
    create_dirs(&[&store])?;
    let col = Col { bin, store: &store, cwd: base };
    col.run(["init"])?;
    col.run(["collection", "create", "notes"])?;
    let mut times = Vec::new();
    let mut chunks = 0;
    for run in ["first", "again"] {
        step(&format!("col add notes <files>; col sync ({run})"));
        let add = col.run([OsStr::new("add"), OsStr::new("notes"), files.as_os_str()])?.elapsed;
        let sync = col.run(["--json", "sync"])?;
        if run == "first" {
            chunks = chunks_of(&sync.output.stdout);
        }
        times.push(add + sync.elapsed);
    }
    Ok((chunks, times[0], times[1]))
}

/// Runs `col ARGS` with the SQL statement log on and counts the statements.
fn count_statements(bin: &Path, store: &Path, cwd: &Path, args: &[&OsStr]) -> Result<u64, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--store").arg(store).args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    scrub_env(&mut cmd);
    cmd.env("RUST_LOG", "sqlx::query=debug");
    let out = cmd.output().map_err(|e| format!("cannot run col: {e}"))?;
    if !out.status.success() {
        return Err(format!("`col {:?}` failed ({})", args, out.status));
    }
    Ok(String::from_utf8_lossy(&out.stderr).lines().filter(|l| l.contains("summary=")).count() as u64)
}

fn statements(bin: &Path, base: &Path, files: &Path, docs: usize) -> Result<Statements, String> {
    let store = base.join("statements-store");
    let restored = base.join("statements-restored");
    let imported = base.join("statements-imported");
    create_dirs(&[&store, &restored, &imported])?;
    let col = Col { bin, store: &store, cwd: base };
    col.run(["init"])?;
    col.run(["collection", "create", "notes"])?;
    step("statements: col add, col sync, col restore, col import (RUST_LOG=sqlx::query=debug)");
    let add = count_statements(bin, &store, base, &[OsStr::new("add"), OsStr::new("notes"), files.as_os_str()])?;
    let sync = count_statements(bin, &store, base, &[OsStr::new("sync")])?;
    col.run(["backup"])?;
    let export = base.join("statements.colx");
    col.run([OsStr::new("export"), OsStr::new("--output"), export.as_os_str()])?;
    let restore = count_statements(
        bin,
        &store,
        base,
        &[OsStr::new("restore"), OsStr::new("latest"), OsStr::new("--to-store"), restored.as_os_str(), OsStr::new("--yes")],
    )?;
    let target = Col { bin, store: &imported, cwd: base };
    target.run(["init"])?;
    let import = count_statements(bin, &imported, base, &[OsStr::new("import"), export.as_os_str(), OsStr::new("--yes")])?;
    Ok(Statements { docs, add, sync, restore, import })
}

pub(crate) fn measure_peer(bin: &Path, dir: &Path, target: &Path, docs: usize) -> Result<PeerBench, String> {
    let base = dir.join("peer");
    create_dirs(&[&base])?;
    let memory = Memory::detect(&base);
    let python = python(target);
    let script = base.join("langchain_peer.py");
    std::fs::write(&script, LANGCHAIN_SCRIPT).map_err(|e| format!("cannot write the LangChain script: {e}"))?;
    if let Err(why) = &python {
        eprintln!("warning: LangChain is not measured: {why}");
    }

    let mut sizes = Vec::new();
    let mut counts = vec![SMALL];
    if docs > SMALL {
        counts.push(docs);
    }
    let small_files = base.join(format!("files-{SMALL}"));
    for files in counts {
        let folder = base.join(format!("files-{files}"));
        step(&format!("generating {files} files of {MIN_SIZE}–{MAX_SIZE} bytes in {}", folder.display()));
        write_files(&folder, files)?;
        let run_dir = base.join(format!("colstore-{files}"));
        create_dirs(&[&run_dir])?;
        let (chunks, first, again) = colstore_runs(bin, &run_dir, &folder)?;
        let lc = match &python {
            Ok((py, _)) => {
                step(&format!("LangChain index() of {files} files, then again"));
                langchain(py, &script, &folder, &base.join(format!("langchain-{files}.db")))
            }
            Err(why) => Err(why.clone()),
        };
        if let Err(why) = &lc {
            eprintln!("warning: {why}");
        }
        sizes.push(Size { files, chunks, first, again, langchain: lc });
    }

    // The restores: the synced 20 000-file store, the same files never synced, and restic.
    let synced = base.join(format!("colstore-{SMALL}")).join("store");
    let col = Col { bin, store: &synced, cwd: &base };
    step("col backup (the synced store)");
    col.run(["backup"])?;
    let vectors = sizes[0].chunks;
    let with_dir = base.join("restored-with-vectors");
    step("col restore latest --to-store NEW (vectors included)");
    let (_, with_vectors) = col_run(
        &col,
        &memory,
        &refs(&[os(&["restore", "latest", "--to-store"]), vec![with_dir.into_os_string()], os(&["--yes"])].concat()),
    )?;

    let plain_store = base.join("plain-store");
    create_dirs(&[&plain_store])?;
    let plain = Col { bin, store: &plain_store, cwd: &base };
    plain.run(["init"])?;
    plain.run(["collection", "create", "notes"])?;
    plain.run([OsStr::new("add"), OsStr::new("notes"), small_files.as_os_str()])?;
    plain.run(["backup"])?;
    let without_dir = base.join("restored-without-vectors");
    step("col restore latest --to-store NEW (never synced: no vectors)");
    let (_, without_vectors) = col_run(
        &plain,
        &memory,
        &refs(&[os(&["restore", "latest", "--to-store"]), vec![without_dir.into_os_string()], os(&["--yes"])].concat()),
    )?;

    let mut restic = ResticRunner::setup(&base.join("restic-repo"), &base.join("restic-cache"), &base);
    let mut restic_restore = None;
    restic_step(&mut restic, "restic backup <files>", |r| r.run(&memory, &[OsStr::new("backup"), small_files.as_os_str()]).map(|_| ()));
    let restic_target = base.join("restic-restored");
    restic_step(&mut restic, "restic restore latest --target NEW", |r| {
        restic_restore =
            Some(r.run(&memory, &[OsStr::new("restore"), OsStr::new("latest"), OsStr::new("--target"), restic_target.as_os_str()])?);
        Ok(())
    });
    let restic = restic.and_then(|_| restic_restore.ok_or_else(|| "no restore was measured".to_owned()));

    let statements = statements(bin, &base, &small_files, SMALL)?;
    Ok(PeerBench {
        sizes,
        restore: Restore { docs: SMALL, vectors, with_vectors, without_vectors, restic },
        statements,
        memory: memory.describe(),
        python: python.map(|(_, version)| version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secs: f64) -> Run {
        Run { elapsed: Duration::from_secs_f64(secs), peak_rss: Some(150_000_000) }
    }

    fn bench() -> PeerBench {
        PeerBench {
            sizes: vec![
                Size {
                    files: SMALL,
                    chunks: 40_000,
                    first: Duration::from_secs(3),
                    again: Duration::from_millis(200),
                    langchain: Ok((Duration::from_secs(15), Duration::from_secs(16))),
                },
                Size {
                    files: 100_000,
                    chunks: 200_000,
                    first: Duration::from_secs(20),
                    again: Duration::from_millis(1500),
                    langchain: Err("no python".into()),
                },
            ],
            restore: Restore { docs: SMALL, vectors: 40_000, with_vectors: run(6.0), without_vectors: run(2.0), restic: Ok(run(5.0)) },
            statements: Statements { docs: SMALL, add: 100, sync: 400, restore: 1000, import: 3000 },
            memory: "test".into(),
            python: Ok("Python 3.11".into()),
        }
    }

    #[test]
    fn figures_compare_with_each_peer_and_target() {
        let figures = bench().figures();
        let verdicts: Vec<(&str, Option<bool>)> = figures.iter().map(|f| (f.name.as_str(), f.meets)).collect();
        assert_eq!(
            verdicts.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
            [
                Some(true),  // first, 20k: 5× LangChain
                Some(true),  // no-op, 20k: 80×
                None,        // first, 100k: no LangChain
                None,        // no-op, 100k: no LangChain
                Some(false), // no-op, 100k: 1.5 s ≥ 1 s
                Some(false), // restore: 3× without vectors
                Some(false), // restore: 1.2× restic
                Some(true),  // peak RSS
                Some(true),  // add: 0.005
                Some(true),  // sync: 0.02
                Some(true),  // restore: 0.05
                Some(false), // import: 0.15
            ],
            "{verdicts:#?}"
        );
        assert!(figures[0].measured.contains("LangChain `index()` 15.00 s; 5.0× faster"), "{}", figures[0].measured);
        assert!(figures[2].measured.contains("LangChain not measured (no python)"), "{}", figures[2].measured);
    }

    #[test]
    fn files_are_two_chunks_of_text() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), 3).unwrap();
        for i in 0..3 {
            let text = std::fs::read_to_string(dir.path().join(file_name(i))).unwrap();
            let words = text.split_whitespace().count();
            // Two chunks of the default chunking (1200 characters, 200 overlap), and at least the 300 words of the issue.
            assert!((1400..=2400).contains(&text.len()) && words >= 300, "{} bytes, {words} words", text.len());
        }
    }
}
