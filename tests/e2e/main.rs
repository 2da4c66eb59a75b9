//! End-to-end tests: every command of the real `col` binary, bad inputs, crash safety (kill -9), the store lock,
//! concurrent writers and a closed stdout pipe. Each test works in its own temporary directory.
//!
//! Snapshots live in `snapshots/`; create or update them with `INSTA_UPDATE=always cargo test -p colstore-e2e`
//! and review every changed `.snap` file before committing it.

mod adopt;
mod backup;
mod backup_safety;
mod bad_input;
mod cli_edges;
mod commands;
mod concurrency;
mod crash;
mod everyday_edges;
mod filesystem;
mod json_shapes;
mod large_documents;
mod lock;
mod outside_input;
mod pipe;
mod query;
mod remote;
mod search;
mod store_identity;
mod sync;
mod sync_cancel;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes` as 64 lowercase hex digits, as the CLI prints `content_hash`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `cmd` (a `col` command) to the end through the `peak-rss` probe and returns its output with the command's own
/// peak resident set size in KiB. The probe, not this process, spawns it: Linux would carry this test process's
/// memory high-water mark (all tests share it) into a child's peak.
pub fn run_measuring_peak_rss(cmd: std::process::Command) -> (colstore_e2e::Output, u64) {
    let report = tempfile::NamedTempFile::new().expect("a temp file for the probe's report");
    let mut probe = std::process::Command::new(env!("CARGO_BIN_EXE_peak-rss"));
    probe.arg(report.path()).arg(cmd.get_program()).args(cmd.get_args()).stdin(std::process::Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        probe.current_dir(dir);
    }
    for (name, value) in cmd.get_envs() {
        match value {
            Some(v) => probe.env(name, v),
            None => probe.env_remove(name),
        };
    }
    let out = colstore_e2e::Output::from_std(probe.output().expect("run the peak-rss probe"));
    let kib = std::fs::read_to_string(report.path()).ok().and_then(|t| t.trim().parse().ok());
    let kib = kib.unwrap_or_else(|| panic!("the peak-rss probe reported nothing\n{out}"));
    (out, kib)
}

/// The keys of a `col --json ls` document, in order.
#[track_caller]
pub fn keys(ls: &Value) -> Vec<String> {
    ls["documents"].as_array().expect("documents is an array").iter().map(|d| d["key"].as_str().expect("a key").to_owned()).collect()
}

/// A small deterministic PRNG (xorshift64*), so tests need no extra crate and print their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced, xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// A seed from the clock, for tests that print it so a failure can be replayed.
    pub fn seed_from_time() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `lo..=hi` pseudo-random bytes.
    pub fn bytes_between(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let n = self.range(lo, hi) as usize;
        self.bytes(n)
    }

    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Runs `col` on `s` as an unprivileged user: directly when this process is not root, as `nobody` through
/// `setpriv` when it is (root ignores file permissions). `Err` with the reason when neither is possible: pass it to
/// [`unprivileged_unavailable`].
pub(crate) fn as_unprivileged(s: &colstore_e2e::TestStore, args: &[&str]) -> Result<colstore_e2e::Output, String> {
    let cmd = s.cmd(args);
    if !colstore_testkit::need::is_root() {
        let mut cmd = cmd;
        return Ok(colstore_e2e::output_of(&mut cmd, None));
    }
    let available = std::process::Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success());
    if !available {
        return Err("running as root and setpriv is not available to drop privileges".into());
    }
    let mut wrapped = std::process::Command::new("setpriv");
    wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(cmd.get_program()).args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped.stdin(std::process::Stdio::null());
    Ok(colstore_e2e::output_of(&mut wrapped, None))
}

/// `chmod -R a-w` (or `u+w` to undo) on `path`.
pub(crate) fn chmod_recursive(path: &std::path::Path, writable: bool) {
    let mode = if writable { "u+w" } else { "a-w" };
    let ok = std::process::Command::new("chmod").args(["-R", mode]).arg(path).status().is_ok_and(|s| s.success());
    assert!(ok, "chmod -R {mode} {}", path.display());
}

/// What a test does when [`as_unprivileged`] cannot run: CI runs as root with setpriv (util-linux) at hand and sets
/// `COLSTORE_REQUIRE_UNPRIVILEGED`, which makes this a failure; elsewhere the test says that it skipped and why.
pub(crate) fn unprivileged_unavailable(reason: &str) {
    colstore_testkit::need::skip(colstore_testkit::need::Need::Unprivileged, reason);
}

/// Makes the files writable again when the test ends, so the temporary directory can be removed.
pub(crate) struct Restore<'a>(pub(crate) &'a std::path::Path);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        chmod_recursive(self.0, true);
    }
}
