//! What a test needs from the machine, and the one way a test skips when the machine lacks it.
//!
//! A test that cannot run calls [`skip`]: with the need's switch set (`COLSTORE_REQUIRE_S3=1`, …) that is a failure;
//! otherwise it writes `SKIPPED <test>: <reason>` to the process's stderr, past libtest's capture (a passing test's
//! output is hidden), and appends the same line to the file `COLSTORE_SKIP_LOG` names, which `.ci/run` prints as the
//! skip summary at the end of the run.
//!
//! Root reads and writes every file, so a test of file permissions re-runs itself as `nobody`
//! ([`as_unprivileged_test`]).

use std::io::Write;

/// Something outside the workspace a test may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Need {
    /// A real S3 server on loopback (s3s-fs, started in process).
    S3,
    /// A user file permissions apply to: not root, or root able to become `nobody` through `setpriv` (util-linux).
    Unprivileged,
    /// `python3`, to hold a lock or edit a file from another process the way another tool would.
    Python3,
    /// A real Qdrant server at `TEST_QDRANT_URL` (the adapter's tests run against the fake otherwise).
    Qdrant,
    /// A real Weaviate server (`TEST_WEAVIATE_URL`), for the adapter's suite against the real thing.
    Weaviate,
    /// Shared fixtures outside the repository: the recorded Qdrant exchanges in `../shared/fixtures/qdrant-1.18.3/` and
    /// the Weaviate OpenAPI spec in `../shared/specs/`.
    Fixtures,
}

impl Need {
    /// The environment variable that turns a skip for lack of this need into a failure.
    pub fn switch(self) -> &'static str {
        match self {
            Need::S3 => "COLSTORE_REQUIRE_S3",
            Need::Unprivileged => "COLSTORE_REQUIRE_UNPRIVILEGED",
            Need::Python3 => "COLSTORE_REQUIRE_PYTHON3",
            Need::Qdrant => "COLSTORE_REQUIRE_QDRANT",
            Need::Weaviate => "COLSTORE_REQUIRE_WEAVIATE",
            Need::Fixtures => "COLSTORE_REQUIRE_FIXTURES",
        }
    }

    /// Whether this need's switch is set.
    pub fn required(self) -> bool {
        std::env::var_os(self.switch()).is_some_and(|v| !v.is_empty() && v != "0")
    }
}

/// The running test's name as libtest gives it (`module::test`): libtest names each test's thread after it.
pub fn current_test() -> String {
    std::thread::current().name().unwrap_or("unnamed test").to_owned()
}

/// Skips the running test for lack of `need`: the caller returns right after.
///
/// # Panics
/// When `need`'s switch is set: then the machine promised the need, and not meeting it is a failure.
pub fn skip(need: Need, reason: &str) {
    let test = current_test();
    assert!(!need.required(), "{test} cannot run: {reason} ({} is set, so this is a failure, not a skip)", need.switch());
    let line = format!("SKIPPED {test}: {reason}; set {}=1 to make this a failure", need.switch());
    // Straight to the file descriptor: libtest captures `eprintln!`, not writes to `std::io::stderr()`.
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(log) = std::env::var_os("COLSTORE_SKIP_LOG") {
        let appended = std::fs::OpenOptions::new().create(true).append(true).open(log).and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            let _ = writeln!(std::io::stderr(), "warning: cannot append to COLSTORE_SKIP_LOG: {e}");
        }
    }
}

/// Whether this process runs as root (effective uid 0), read from `/proc/self/status`; `false` where it cannot tell.
pub fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1)).is_some_and(|euid| euid == "0")
}

/// Where a test of file permissions runs its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprivileged {
    /// This process is not root: run the body here.
    Here,
    /// This process is root: the test ran and passed in a child process as `nobody`; return.
    RanAsNobody,
    /// The test cannot run unprivileged here; it was skipped (see [`skip`]); return.
    Skipped,
}

/// Call first in a test of file permissions. Not root: [`Unprivileged::Here`]. Root: runs this same test again (the
/// current test binary with `--exact <test>`) as `nobody` through `setpriv`, fails unless exactly that test passed
/// there without skipping, and returns [`Unprivileged::RanAsNobody`]. The child creates its own temporary
/// directories, so the test must not depend on files made before this call.
///
/// # Panics
/// When the child fails, or (with `COLSTORE_REQUIRE_UNPRIVILEGED` set) when it cannot be started.
pub fn as_unprivileged_test() -> Unprivileged {
    if !is_root() {
        return Unprivileged::Here;
    }
    let test = current_test();
    let setpriv = std::process::Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success());
    let exe = std::env::current_exe();
    let (true, Ok(exe)) = (setpriv, exe) else {
        skip(Need::Unprivileged, "running as root, and setpriv (util-linux) is not available to become nobody");
        return Unprivileged::Skipped;
    };
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env("TMPDIR", std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{test}: cannot start {} as nobody: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("{test} as nobody ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
    assert!(out.status.success(), "{report}");
    assert!(stdout.contains("test result: ok. 1 passed"), "exactly this test must pass: {report}");
    assert!(!stdout.contains("SKIPPED") && !stderr.contains("SKIPPED"), "it must not skip as nobody either: {report}");
    Unprivileged::RanAsNobody
}

/// `relative` (e.g. `fixtures/qdrant-1.18.3/transcript.json`) inside the `shared/` folder of design files, specs and
/// recordings that sits beside the repository (`../shared/` of the workspace root, or of a folder above it, as in a
/// worktree), if it is there. The files are read, never copied into the repository.
pub fn shared_file(relative: &str) -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.ancestors().skip(1).map(|d| d.join("shared").join(relative)).find(|p| p.is_file())
}
