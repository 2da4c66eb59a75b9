//! `cargo xtask bench`: measures the release `col` binary against the performance targets and records the figures.
//!
//! The run builds `colstore-cli` in release mode, writes a generated corpus (see `corpus.rs`) into a temporary
//! directory under `target/` — not `/tmp`, which is often tmpfs and would flatter write and verify speeds — and
//! drives the real binary through the agreed interface: `init`, `collection create`, `add`, `ls`, `verify`, `gc`
//! and `stats --json`. Every figure is a wall-clock time of a whole process, start-up included, because that is
//! what a user waits for.

mod corpus;
mod report;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use self::corpus::Corpus;
use self::report::{Machine, Measurements, Report};

const DEFAULT_DOCS: usize = 100_000;
const DEFAULT_OUT: &str = "docs/BENCHMARKS.md";
const LS_RUNS: usize = 20;

/// `cargo xtask bench` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Args {
    pub(crate) docs: usize,
    /// Relative paths are taken from the workspace root, wherever cargo was started.
    pub(crate) out: PathBuf,
}

impl Args {
    /// Parses `[--docs N] [--out FILE]` (also `--docs=N`, `--out=FILE`).
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut parsed = Self { docs: DEFAULT_DOCS, out: PathBuf::from(DEFAULT_OUT) };
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
                "--out" => parsed.out = PathBuf::from(value()?),
                other => return Err(format!("unknown bench argument {other:?}")),
            }
        }
        Ok(parsed)
    }

    /// The command that reproduces this run, as recorded in the report.
    pub(crate) fn command(&self) -> String {
        let mut command = format!("cargo xtask bench --docs {}", self.docs);
        if self.out != Path::new(DEFAULT_OUT) {
            command.push_str(&format!(" --out {}", self.out.display()));
        }
        command
    }
}

/// Runs the benchmark and writes the report section into `args.out`.
pub(crate) fn run(root: &Path, args: &Args) -> Result<(), String> {
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
            let out = root.join(&args.out);
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
            Err(format!("{err}\n(the corpus and store are kept in {} for inspection)", kept.display()))
        }
    }
}

fn step(what: &str) {
    println!("==> {what}");
}

fn measure(root: &Path, bin: &Path, dir: &Path, args: &Args) -> Result<Report, String> {
    let corpus_dir = dir.join("corpus");
    let store = dir.join("store");
    for path in [&corpus_dir, &store] {
        std::fs::create_dir_all(path).map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    }

    let corpus = Corpus::new(args.docs);
    step(&format!("generating {} files in {}", args.docs, corpus_dir.display()));
    let logical_bytes = corpus.write_to(&corpus_dir).map_err(|err| format!("cannot write the corpus: {err}"))?;

    let col = Col { bin, store: &store, cwd: dir };
    step("col init; col collection create bench");
    col.run(["init"])?;
    col.run(["collection", "create", "bench"])?;

    step(&format!("col add bench <corpus> ({} files)", args.docs));
    let add = col.run([OsStr::new("add"), OsStr::new("bench"), corpus_dir.as_os_str()])?.elapsed;

    step(&format!("col ls bench --limit 100 (x{LS_RUNS})"));
    let mut ls = Vec::with_capacity(LS_RUNS);
    for _ in 0..LS_RUNS {
        ls.push(col.run(["ls", "bench", "--limit", "100"])?.elapsed);
    }

    step("col verify");
    let verify = col.run(["verify"])?.elapsed;

    step("col gc");
    col.run(["gc"])?;
    let colstore = store.join(".colstore");
    let store_bytes = dir_size(&colstore).map_err(|err| format!("cannot measure {}: {err}", colstore.display()))?;

    step("col stats --json");
    let stats = String::from_utf8_lossy(&col.run(["stats", "--json"])?.output.stdout).into_owned();
    let stats = redact(&pretty_json(&stats), dir);

    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    Ok(Report {
        date: report::utc_date(now),
        machine: machine(root),
        // From the workspace root, so a rust-toolchain file there is honoured.
        rustc: command_line(root, "rustc", &["-V"]).unwrap_or_else(|| "unknown".into()),
        code: code_revision(root),
        seed: corpus.seed,
        measurements: Measurements { docs: args.docs, distinct: corpus.distinct(), logical_bytes, add, ls, verify, store_bytes },
        stats,
        command: args.command(),
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
        // The user's store settings and log level must not change what is measured.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("COLSTORE_") || key_text.starts_with("COLLECTION_") || key_text == "RUST_LOG" {
                cmd.env_remove(&key);
            }
        }
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
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| report::parse_cpu_model(&text))
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = command_line(root, "nproc", &[])
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.to_string()))
        .unwrap_or_else(|| "unknown".into());
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| report::parse_mem_total(&text));
    Machine { cpu, cpus, memory_bytes }
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
        assert_eq!(args, Args { docs: 100_000, out: PathBuf::from("docs/BENCHMARKS.md") });
        assert_eq!(args.command(), "cargo xtask bench --docs 100000");
    }

    #[test]
    fn args_accept_both_spellings_and_record_a_custom_out() {
        let args = parse(&["--docs", "2_000", "--out=target/bench.md"]).unwrap();
        assert_eq!(args, Args { docs: 2000, out: PathBuf::from("target/bench.md") });
        assert_eq!(args.command(), "cargo xtask bench --docs 2000 --out target/bench.md");
        assert_eq!(parse(&["--docs=5"]).unwrap().docs, 5);
    }

    #[test]
    fn args_reject_nonsense() {
        assert_eq!(parse(&["--docs"]), Err("--docs needs a value".into()));
        assert_eq!(parse(&["--docs", "many"]), Err("--docs takes a whole number, not \"many\"".into()));
        assert_eq!(parse(&["--docs", "0"]), Err("--docs must be at least 1".into()));
        assert_eq!(parse(&["--fast"]), Err("unknown bench argument \"--fast\"".into()));
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
