//! The remote area (`--only remote`, issue 15): `col` against the testkit's Qdrant fake, run as a process of its own
//! on loopback (`fake-engine qdrant`). A fake answers from memory, so these figures are colstore's side of the work
//! (chunking, embedding, batching, HTTP, JSON) with an engine that costs nothing, not a real Qdrant's speed.
//!
//! - `col sync` of the sync corpus (about `--docs` chunks) into a store made with `col init --vectors qdrant://…`:
//!   chunks per second and peak memory;
//! - `col verify --index` of that store (scrolls every point back);
//! - `col reindex sync --to qdrant://…` of the same corpus synced into the embedded index first: points per second,
//!   the median of [`MOVES`] moves (moved back with `--to embedded` between them, not timed): one move is a few
//!   seconds of fsyncs and two processes sharing two cores, and single runs of the same code differed by 15 %.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::backup::{Memory, PEAK_RSS_TARGET_BYTES, Run, col_run, rss_text, secs};
use super::corpus::SyncCorpus;
use super::report::{Figure, group_thousands, median};
use super::{Col, create_dirs, step};

/// `col sync` into the Qdrant fake: at least this many chunks per second.
const SYNC_TARGET_CHUNKS_PER_S: f64 = 10_000.0;
/// `col reindex --to` the Qdrant fake: at least this many points per second.
const MOVE_TARGET_POINTS_PER_S: f64 = 20_000.0;
/// `col verify --index` of the remote points: under this.
const VERIFY_TARGET: Duration = Duration::from_secs(10);
/// Timed moves to the fake; the figure is their median.
const MOVES: usize = 3;

/// What the remote area measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RemoteBench {
    /// Chunks `col sync` reported.
    pub(crate) chunks: u64,
    pub(crate) sync: Run,
    pub(crate) verify: Run,
    /// Points `col reindex --to` wrote (each time).
    pub(crate) moved_points: u64,
    /// Each timed move, in order.
    pub(crate) moves: Vec<Run>,
    /// How peak memory was measured.
    pub(crate) memory: String,
}

/// The fake engine process; killed when dropped.
struct Engine(Child);

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds and starts `fake-engine qdrant`, returning it and its `qdrant://127.0.0.1:PORT` target.
fn start_engine(root: &Path, target_dir: &Path) -> Result<(Engine, String), String> {
    step("cargo build --release -p colstore-testkit --features qdrant-fake,weaviate-fake --bin fake-engine");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "colstore-testkit", "--features", "qdrant-fake,weaviate-fake", "--bin", "fake-engine"])
        .current_dir(root)
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if !status.success() {
        return Err(format!("building the fake engine failed ({status})"));
    }
    let bin = target_dir.join("release").join(format!("fake-engine{}", std::env::consts::EXE_SUFFIX));
    let mut child = Command::new(&bin)
        .arg("qdrant")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("the fake engine has no stdout")?;
    let engine = Engine(child);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url).map_err(|err| format!("the fake engine said nothing: {err}"))?;
    let host = url.trim().strip_prefix("http://").ok_or_else(|| format!("the fake engine printed {url:?}, not its URL"))?;
    Ok((engine, format!("qdrant://{host}")))
}

/// A whole number at `pointer` in `col --json` output.
fn json_count(out: &std::process::Output, pointer: &str, what: &str) -> Result<u64, String> {
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.pointer(pointer).and_then(serde_json::Value::as_u64))
        .ok_or_else(|| format!("`{what}` printed no `{pointer}`: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The remote area: see the module documentation.
pub(crate) fn measure_remote(root: &Path, target_dir: &Path, bin: &Path, dir: &Path, chunks: usize) -> Result<RemoteBench, String> {
    let base = dir.join("remote");
    let corpus_dir = base.join("corpus");
    let remote_store = base.join("remote-store");
    let local_store = base.join("local-store");
    create_dirs(&[&corpus_dir, &remote_store, &local_store])?;
    let memory = Memory::detect(&base);
    let (_engine, target) = start_engine(root, target_dir)?;
    let corpus = SyncCorpus::new(chunks);
    step(&format!("generating {} files ({} chunks) in {}", corpus.files(), corpus.chunks(), corpus_dir.display()));
    corpus.write_to(&corpus_dir).map_err(|err| format!("cannot write the corpus: {err}"))?;

    let remote = Col { bin, store: &remote_store, cwd: &base };
    step(&format!("col init --vectors {target}; col collection create sync; col add sync <corpus> (not timed)"));
    remote.run(["init", "--vectors", &target])?;
    remote.run(["collection", "create", "sync"])?;
    remote.run([OsStr::new("add"), OsStr::new("sync"), corpus_dir.as_os_str()])?;
    step(&format!("col --json sync ({} chunks into the Qdrant fake)", corpus.chunks()));
    let (out, sync) = col_run(&remote, &memory, &[OsStr::new("--json"), OsStr::new("sync")])?;
    let synced_chunks = json_count(&out, "/collections/0/chunks", "col --json sync")?;
    step("col verify --index (every remote point scrolled back)");
    let (_, verify) = col_run(&remote, &memory, &[OsStr::new("verify"), OsStr::new("--index")])?;

    let local = Col { bin, store: &local_store, cwd: &base };
    step("col init; col collection create sync; col add sync <corpus>; col sync (embedded, not timed)");
    local.run(["init"])?;
    local.run(["collection", "create", "sync"])?;
    local.run([OsStr::new("add"), OsStr::new("sync"), corpus_dir.as_os_str()])?;
    local.run(["sync"])?;
    let args = ["--json", "reindex", "sync", "--to", target.as_str()].map(OsStr::new);
    let mut moves = Vec::with_capacity(MOVES);
    let mut moved_points = 0;
    for i in 1..=MOVES {
        if i > 1 {
            step("col reindex sync --to embedded (back, not timed)");
            local.run(["reindex", "sync", "--to", "embedded"])?;
        }
        step(&format!("col --json reindex sync --to {target} ({i} of {MOVES})"));
        let (out, moved) = col_run(&local, &memory, &args)?;
        let points = json_count(&out, "/points_written", "col --json reindex --to")?;
        if i > 1 && points != moved_points {
            return Err(format!("the moves wrote {moved_points} and then {points} points; they should write the same"));
        }
        moved_points = points;
        moves.push(moved);
    }
    Ok(RemoteBench { chunks: synced_chunks, sync, verify, moved_points, moves, memory: memory.describe() })
}

impl RemoteBench {
    pub(crate) fn figures(&self) -> Vec<Figure> {
        let per_s = self.chunks as f64 / secs(self.sync.elapsed);
        let times: Vec<Duration> = self.moves.iter().map(|m| m.elapsed).collect();
        let moved = median(&times);
        let moved_per_s = self.moved_points as f64 / secs(moved);
        let each = times.iter().map(|t| format!("{:.2}", t.as_secs_f64())).collect::<Vec<_>>().join(", ");
        let rss_ok = self.sync.peak_rss.map(|b| b <= PEAK_RSS_TARGET_BYTES);
        vec![
            Figure::against(
                "Remote: `col sync` into the Qdrant fake".into(),
                format!(
                    "{} chunks/s ({} chunks, {:.2} s), peak {}",
                    group_thousands(per_s as u64),
                    group_thousands(self.chunks),
                    self.sync.elapsed.as_secs_f64(),
                    rss_text(self.sync.peak_rss)
                ),
                format!("≥ {} chunks/s, ≤ 200 MB", group_thousands(SYNC_TARGET_CHUNKS_PER_S as u64)),
                per_s / SYNC_TARGET_CHUNKS_PER_S,
                per_s >= SYNC_TARGET_CHUNKS_PER_S && rss_ok.unwrap_or(false),
            ),
            Figure::against(
                "Remote: `col reindex --to` the Qdrant fake (from the cache, no embedder)".into(),
                format!(
                    "{} points/s ({} points, median {:.2} s of {} moves: {each} s)",
                    group_thousands(moved_per_s as u64),
                    group_thousands(self.moved_points),
                    moved.as_secs_f64(),
                    times.len()
                ),
                format!("≥ {} points/s", group_thousands(MOVE_TARGET_POINTS_PER_S as u64)),
                moved_per_s / MOVE_TARGET_POINTS_PER_S,
                moved_per_s >= MOVE_TARGET_POINTS_PER_S,
            ),
            Figure::against(
                "Remote: `col verify --index` of the remote points".into(),
                format!("{:.2} s ({} points)", self.verify.elapsed.as_secs_f64(), group_thousands(self.chunks)),
                format!("< {} s", VERIFY_TARGET.as_secs()),
                secs(self.verify.elapsed) / secs(VERIFY_TARGET),
                self.verify.elapsed < VERIFY_TARGET,
            ),
        ]
    }

    pub(crate) fn context(&self) -> String {
        format!(
            "the sync corpus ({} chunks); the Qdrant fake of colstore-testkit as a process of its own on loopback \
             (`fake-engine qdrant`, in-memory, exact search); peak memory by {}",
            group_thousands(self.chunks),
            self.memory
        )
    }

    pub(crate) fn note() -> String {
        "Remote: a store made with `col init --vectors qdrant://127.0.0.1:PORT` syncs the sync corpus into the testkit's \
         Qdrant fake (`col --json sync`, whole process), then `col verify --index` scrolls every point back; a second store \
         syncs the same corpus into its embedded index (not timed) and moves it with `col --json reindex sync --to \
         qdrant://…` three times, moved back with `--to embedded` in between (not timed); points written ÷ the median \
         wall time. The fake answers from memory: the figures are colstore's side of the \
         work, not a real Qdrant's."
            .to_owned()
    }
}
