//! Helpers for the end-to-end tests: build and run the real `col` binary, throw-away stores, and redaction of the
//! parts of the output that change from run to run (temp paths, times, ids), so insta snapshots stay stable.
//!
//! An integration test in another package cannot use `CARGO_BIN_EXE_col`, so [`col_bin`] asks cargo to build the
//! binary once per test process and reads its path from cargo's JSON messages: the binary under test is never stale.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// How long one `col` invocation may take before the helpers kill it and fail the test (a hang is a bug too).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variables the CLI reads, removed from every child so the developer's shell cannot leak into tests.
const CLEARED_PREFIXES: [&str; 2] = ["COLSTORE_", "COLLECTION_"];
/// Single variables removed for the same reason (`COLUMNS`/`LINES` change how clap wraps help text).
const CLEARED_VARS: [&str; 4] = ["RUST_LOG", "RUST_BACKTRACE", "COLUMNS", "LINES"];

/// The workspace root (the parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// The path of a freshly built `col` binary. The first call builds it (`cargo build -p colstore-cli --bin col`);
/// later calls in the same process return the same path. Panics with cargo's output when the build fails.
pub fn col_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_col) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn build_col() -> Result<PathBuf, String> {
    let out = Command::new(env!("CARGO"))
        .args(["build", "-p", "colstore-cli", "--bin", "col", "--message-format=json"])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo to build col: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("`cargo build -p colstore-cli` failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "col")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo built colstore-cli but reported no executable named col:\n{stdout}"))
}

/// A `Command` for the `col` binary with a clean environment: no `COLSTORE_*`, `COLLECTION_*`, `RUST_LOG`,
/// `RUST_BACKTRACE`, `COLUMNS` or `LINES`, and stdin closed.
pub fn col() -> Command {
    let mut cmd = Command::new(col_bin());
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if CLEARED_PREFIXES.iter().any(|p| name_str.starts_with(p)) {
            cmd.env_remove(&name);
        }
    }
    for name in CLEARED_VARS {
        cmd.env_remove(name);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code; `-N` when the process was killed by signal `N`.
    pub code: i32,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// The raw exit status.
    pub status: ExitStatus,
}

impl Output {
    /// Wraps a finished process's output.
    pub fn from_std(o: std::process::Output) -> Self {
        Self {
            code: exit_code(o.status),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            status: o.status,
        }
    }

    /// Panics (showing everything the command printed) unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "expected exit code {code}, got {}\n{self}", self.code);
        self
    }

    /// Panics unless the command exited with 0 and printed nothing alarming on stderr.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0);
        self.assert_no_panic();
        self
    }

    /// Panics when stderr shows a Rust panic, a backtrace or the CLI's "internal error" (its panic hook).
    #[track_caller]
    pub fn assert_no_panic(&self) -> &Self {
        for bad in ["panicked", "RUST_BACKTRACE", "internal error", "stack backtrace"] {
            assert!(!self.stderr.contains(bad), "stderr contains {bad:?}\n{self}");
        }
        self
    }

    /// Panics unless the command failed with `code`, stderr has exactly one `error: ` line, stderr contains
    /// `message`, and shows no panic. Returns the error line.
    #[track_caller]
    pub fn assert_error(&self, code: i32, message: &str) -> String {
        self.assert_code(code);
        self.assert_no_panic();
        let errors: Vec<&str> = self.stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "expected exactly one `error: ` line on stderr\n{self}");
        assert!(self.stderr.contains(message), "stderr lacks {message:?}\n{self}");
        errors[0].to_owned()
    }

    /// The `  hint: ` line, if there is one.
    pub fn hint(&self) -> Option<&str> {
        self.stderr.lines().find_map(|l| l.strip_prefix("  hint: "))
    }

    /// Stdout parsed as one JSON document; panics when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--- exit code {} ---\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// Runs `cmd` to the end with `stdin` as its input (or stdin closed), capturing its output. Kills it and panics
/// after [`COMMAND_TIMEOUT`].
#[track_caller]
pub fn output_of(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A writer thread, so a command that prints before reading cannot deadlock with us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(Ok(o)) => Output::from_std(o),
        Ok(Err(e)) => panic!("waiting for {cmd:?} failed: {e}"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?}; it was killed");
        }
    }
}

/// Runs `col ARGS…` in the current directory (no `--store`).
#[track_caller]
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    output_of(col().args(args), None)
}

/// A store in a fresh temporary directory: `TEMP/store/.colstore`, initialised with `col init`. Every command runs
/// with `--store TEMP/store` and `TEMP` as its working directory, so relative input paths are relative to `TEMP`.
/// The directory is removed when the value is dropped.
#[derive(Debug)]
pub struct TestStore {
    temp: tempfile::TempDir,
    /// Environment variables set on every command.
    env: Vec<(OsString, OsString)>,
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TestStore {
    /// A new, initialised, empty store.
    #[track_caller]
    pub fn new() -> Self {
        let s = Self::uninitialised();
        s.run(["init"]).assert_ok();
        s
    }

    /// A sqlite-mode store with collection `notes` holding one document, `a.md`, whose content is `text`.
    #[track_caller]
    pub fn with_note(text: &str) -> Self {
        let s = Self::new();
        s.ok(["collection", "create", "notes"]);
        s.ok(["put", "notes", "a.md", "--text", text]);
        s
    }

    /// A new, initialised, empty store in filesystem mode (documents in `.colstore/docs/<collection>/`).
    #[track_caller]
    pub fn filesystem() -> Self {
        let s = Self::uninitialised();
        s.run(["init", "--mode", "filesystem"]).assert_ok();
        s
    }

    /// A filesystem-mode store's folder of `collection`.
    pub fn docs(&self, collection: &str) -> PathBuf {
        self.colstore_dir().join("docs").join(collection)
    }

    /// A temporary directory laid out like [`TestStore::new`] but without running `col init`.
    pub fn uninitialised() -> Self {
        let temp = tempfile::Builder::new().prefix("colstore-e2e-").tempdir().expect("create a temp dir");
        Self { temp, env: Vec::new() }
    }

    /// Sets an environment variable for every later command.
    pub fn set_env(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        self.env.push((name.into(), value.into()));
    }

    /// The temporary directory (the working directory of every command).
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The directory given to `--store` (it holds `.colstore/`).
    pub fn store_dir(&self) -> PathBuf {
        self.path().join("store")
    }

    /// The `.colstore` directory.
    pub fn colstore_dir(&self) -> PathBuf {
        self.store_dir().join(".colstore")
    }

    /// A `col --store DIR ARGS…` command, not yet run.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = col();
        cmd.current_dir(self.path()).arg("--store").arg(self.store_dir()).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `col --store DIR ARGS…`.
    #[track_caller]
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        output_of(&mut self.cmd(args), None)
    }

    /// Runs `col --store DIR ARGS…` with `input` on stdin.
    #[track_caller]
    pub fn run_stdin<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        output_of(&mut self.cmd(args), Some(input))
    }

    /// Runs `col --store DIR ARGS…`, asserts success and returns the output.
    #[track_caller]
    pub fn ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args);
        out.assert_ok();
        out
    }

    /// Runs `col --store DIR --json ARGS…`, asserts success and parses stdout.
    #[track_caller]
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<OsString> = vec!["--json".into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self.ok(all).json()
    }

    /// Writes `contents` to `rel` (relative to [`TestStore::path`]), creating parent directories; returns the path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("a file has a parent")).expect("create parent dirs");
        std::fs::write(&p, contents).expect("write test file");
        p
    }

    /// Everything a user can observe through the read commands: the collection list, every collection's documents
    /// (`col --json ls`) and the store statistics. Equal fingerprints mean an unchanged store.
    #[track_caller]
    pub fn fingerprint(&self) -> Value {
        let list = self.json(["collection", "list"]);
        let mut docs = serde_json::Map::new();
        for c in list["collections"].as_array().expect("collections is an array") {
            let name = c["name"].as_str().expect("a collection has a name");
            docs.insert(name.to_owned(), self.json(["ls", name]));
        }
        json!({ "collections": list, "documents": docs, "stats": self.json(["stats"]) })
    }

    /// [`redact`] with this store's temporary directory.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &[self.path()])
    }

    /// Runs each command in turn and renders a transcript for a snapshot: `$ col ARGS` (without the implicit
    /// `--store`), stdout, stderr lines prefixed with `stderr| `, and the exit code when it is not 0. Redacted.
    #[track_caller]
    pub fn transcript(&self, commands: &[&[&str]]) -> String {
        let mut t = String::new();
        for args in commands {
            let out = self.run(*args);
            out.assert_no_panic();
            t.push_str(&render(args, &out));
        }
        self.redact(&t)
    }
}

/// One transcript entry (see [`TestStore::transcript`]), not redacted.
pub fn render(args: &[&str], out: &Output) -> String {
    let mut t = format!("$ col {}\n", args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "));
    t.push_str(&out.stdout);
    if !out.stdout.is_empty() && !out.stdout.ends_with('\n') {
        t.push_str("⏎ (no newline at end)\n");
    }
    for line in out.stderr.lines() {
        t.push_str("stderr| ");
        t.push_str(line);
        t.push('\n');
    }
    if out.code != 0 {
        t.push_str(&format!("[exit {}]\n", out.code));
    }
    t.push('\n');
    t
}

/// Quotes an argument like a shell user would type it.
fn shell_quote(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c)) {
        a.to_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// Replaces what changes from run to run with stable placeholders:
/// - each of `paths` (and its canonical form) with `[TEMP]`;
/// - RFC 3339 times (`2024-05-01T12:00:00.123Z`) with `[TIMESTAMP]`;
/// - human times (`2024-05-01 12:00:00`) with `YYYY-MM-DD hh:mm:ss` (same width, so tables stay aligned);
/// - compact times in file names (`20240501T120000123Z`) with `[STAMP]`, and `<stamp>-<pid>-` (safety copy names)
///   with `[STAMP]-[PID]-`;
/// - UUIDs with `[UUID]`;
/// - backup ids (`20261122T101500Z-1a2b3c4d`) with `[BACKUP-ID]`.
///
/// SHA-256 hashes are kept (they are stable for fixed content); see [`redact_sha256`] for content that varies.
pub fn redact(text: &str, paths: &[&Path]) -> String {
    let mut variants: Vec<String> = Vec::new();
    for p in paths {
        variants.push(p.display().to_string());
        if let Ok(c) = p.canonicalize() {
            variants.push(c.display().to_string());
        }
    }
    // Longest first, so a path is never half-replaced by a shorter one it contains.
    variants.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_owned();
    for v in variants.iter().filter(|v| !v.is_empty()) {
        out = out.replace(v.as_str(), "[TEMP]");
    }
    redact_durations(&replace_patterns(&out, false))
}

/// Replaces elapsed times the CLI prints in summaries, like `(0.3s)` or `(12.0s)`, with `([SECS])`.
pub fn redact_durations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('(') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + 1..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        let is_secs = digits > 0
            && tail.as_bytes().get(digits) == Some(&b'.')
            && tail.as_bytes().get(digits + 1).is_some_and(u8::is_ascii_digit)
            && tail[digits + 2..].starts_with("s)");
        if is_secs {
            out.push_str("([SECS])");
            rest = &tail[digits + 4..];
        } else {
            out.push('(');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces every 64-digit lowercase hex string (a SHA-256) with `[SHA256]`.
pub fn redact_sha256(text: &str) -> String {
    replace_patterns(text, true)
}

fn replace_patterns(text: &str, sha: bool) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Only ASCII is ever matched, so `i` always lands on a char boundary when a match starts or ends.
    while i < b.len() {
        let at_boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let found = if !at_boundary {
            None
        } else if sha {
            match_hex_run(b, i, 64).map(|n| (n, "[SHA256]"))
        } else {
            match_rfc3339(b, i)
                .map(|n| (n, "[TIMESTAMP]"))
                .or_else(|| match_fixed(b, i, b"dddd-dd-dd dd:dd:dd").map(|n| (n, "YYYY-MM-DD hh:mm:ss")))
                .or_else(|| match_fixed(b, i, b"ddddddddTddddddZ-hhhhhhhh").map(|n| (n, "[BACKUP-ID]")))
                .or_else(|| match_compact_stamp(b, i))
                .or_else(|| match_fixed(b, i, b"hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh").map(|n| (n, "[UUID]")))
        };
        let found = found.filter(|(n, _)| b.get(i + n).is_none_or(|c| !c.is_ascii_alphanumeric()));
        match found {
            Some((n, placeholder)) => {
                out.push_str(placeholder);
                i += n;
            }
            None => {
                let ch = text[i..].chars().next().expect("i is on a char boundary");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Matches `pat` at `i`: `d` is a digit, `h` a lowercase hex digit, anything else itself. Returns the length.
fn match_fixed(b: &[u8], i: usize, pat: &[u8]) -> Option<usize> {
    let s = b.get(i..i + pat.len())?;
    s.iter()
        .zip(pat)
        .all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            b'h' => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
            _ => c == p,
        })
        .then_some(pat.len())
}

fn digits(b: &[u8], i: usize) -> usize {
    b[i.min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count()
}

fn match_rfc3339(b: &[u8], i: usize) -> Option<usize> {
    let mut n = match_fixed(b, i, b"dddd-dd-ddTdd:dd:dd")?;
    if b.get(i + n) == Some(&b'.') && digits(b, i + n + 1) > 0 {
        n += 1 + digits(b, i + n + 1);
    }
    match b.get(i + n) {
        Some(b'Z') => Some(n + 1),
        Some(b'+' | b'-') => match_fixed(b, i + n + 1, b"dd:dd").map(|m| n + 1 + m),
        _ => None,
    }
}

/// `20240501T120000123Z`, and the `-PID` that follows it in safety copy names (`<stamp>-<pid>-<reason>.db`).
fn match_compact_stamp(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    let n = match_fixed(b, i, b"ddddddddTdddddd")?;
    let n = n + digits(b, i + n);
    if b.get(i + n) != Some(&b'Z') {
        return None;
    }
    let n = n + 1;
    let pid = if b.get(i + n) == Some(&b'-') { digits(b, i + n + 1) } else { 0 };
    if pid > 0 && b.get(i + n + 1 + pid) == Some(&b'-') { Some((n + 1 + pid, "[STAMP]-[PID]")) } else { Some((n, "[STAMP]")) }
}

fn match_hex_run(b: &[u8], i: usize, len: usize) -> Option<usize> {
    let run = b[i..].iter().take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(*c)).count();
    (run == len).then_some(len)
}

/// Reads lines from `reader` until one contains `needle` (for "ready" messages of helper processes); returns whether
/// it was seen before the end of the stream.
pub fn wait_for_line(reader: impl std::io::Read, needle: &str) -> bool {
    BufReader::new(reader).lines().map_while(Result::ok).any(|l| l.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_times_ids_and_paths() {
        let p = Path::new("/tmp/colstore-e2e-abc");
        let text = "store /tmp/colstore-e2e-abc/store/.colstore id 0b5e4d3c-1a2b-4c3d-8e9f-0123456789ab\n\
                    \"created_at\": \"2026-11-21T23:01:19.838Z\", at 2026-11-21 23:01:19 or 2024-05-01T12:00:00+02:00\n\
                    safety/20261121T230121931Z-5302-rm-notes.db";
        assert_eq!(
            redact(text, &[p]),
            "store [TEMP]/store/.colstore id [UUID]\n\"created_at\": \"[TIMESTAMP]\", at YYYY-MM-DD hh:mm:ss or [TIMESTAMP]\n\
             safety/[STAMP]-[PID]-rm-notes.db"
        );
    }

    #[test]
    fn keeps_what_only_looks_similar() {
        let text = "version 2024 size 2024-05 x0b5e4d3c-1a2b-4c3d-8e9f-0123456789ab 12026-11-21 23:01:19 sha256 5891b5b522d5";
        assert_eq!(redact(text, &[]), text);
    }

    #[test]
    fn redacts_full_hashes_only() {
        let h = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
        assert_eq!(redact_sha256(&format!("\"{h}\" {h}0 5891b5b522d5 ü")), format!("\"[SHA256]\" {h}0 5891b5b522d5 ü"));
    }

    #[test]
    fn quotes_like_a_shell() {
        assert_eq!(shell_quote("notes/a.md"), "notes/a.md");
        assert_eq!(shell_quote("year>2000"), "'year>2000'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
