//! The store lock (PRODUCT §8, crates/colstore-wiring/src/lock.rs): `.colstore/lock` is an OS file lock (flock),
//! `.colstore/lock.info` names the exclusive holder. A stale `lock.info` from a dead process never blocks; a live
//! exclusive holder makes exclusive commands and writers wait, then fail with a clear "busy" message; readers never wait.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use colstore_e2e::{TestStore, wait_for_line};

/// The pid of a process that has exited (and been reaped), so no process has it right now.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn `true`");
    let pid = child.id();
    child.wait().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} was reused already");
    pid
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "unknown-host".into())
}

fn write_stale_lock_info(s: &TestStore, pid: u32) -> std::path::PathBuf {
    let info = s.colstore_dir().join("lock.info");
    let text = format!("pid = {pid}\ncommand = \"restore\"\nhost = \"{}\"\nstarted_at = \"2024-01-01T00:00:00.000Z\"\n", host_name());
    std::fs::write(&info, text).unwrap();
    info
}

#[test]
fn a_stale_lock_info_does_not_block_gc() {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "a.md", "--text", "gone soon"]);
    s.ok(["rm", "c", "a.md"]);
    let pid = dead_pid();
    let info = write_stale_lock_info(&s, pid);

    let start = Instant::now();
    let out = s.run(["--json", "gc"]);
    out.assert_ok();
    assert!(start.elapsed() < Duration::from_secs(5), "gc waited {:?} for a dead process", start.elapsed());
    assert_eq!(out.json()["contents_removed"], 1);
    assert!(out.stderr.contains(&format!("pid {pid}")), "the recovery is reported, naming the dead holder\n{out}");
    assert!(!info.exists(), "the stale lock.info was removed");

    // A stale record does not block writers either, and the lock works normally afterwards.
    write_stale_lock_info(&s, pid);
    s.ok(["put", "c", "b.md", "--text", "b"]);
    assert!(!info.exists());
    s.ok(["gc"]);
    s.ok(["verify"]);
}

/// The recovery warning is for humans: it must not show Rust's debug representation of the lock record.
#[test]
fn the_stale_lock_warning_is_readable() {
    let s = TestStore::new();
    let pid = dead_pid();
    write_stale_lock_info(&s, pid);
    let out = s.run(["gc"]);
    out.assert_ok();
    assert!(!out.stderr.contains("LockInfo {") && !out.stderr.contains("Timestamp("), "a Rust Debug value reached the user:\n{out}");
    assert_eq!(out.stderr.matches(&format!("pid {pid}")).count(), 1, "the recovery is reported once:\n{out}");
}

/// Holds an exclusive flock on `path` in a python process until killed.
struct PythonLock(Child);

impl PythonLock {
    fn hold(path: &std::path::Path) -> Result<Self, String> {
        let script =
            "import fcntl,time,sys\nf=open(sys.argv[1],'a')\nfcntl.flock(f, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut holder = PythonLock(child);
        if !wait_for_line(stdout, "locked") {
            let mut err = String::new();
            let _ = holder.0.stderr.take().map(|mut e| e.read_to_string(&mut err));
            return Err(format!("python3 did not take the lock: {err}"));
        }
        Ok(holder)
    }
}

impl Drop for PythonLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn gc_and_writers_wait_then_fail_busy_while_another_process_holds_the_lock() {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "a.md", "--text", "alpha"]);
    let lock_path = s.colstore_dir().join("lock");
    assert!(lock_path.exists(), "the lock file is .colstore/lock");
    let holder = match PythonLock::hold(&lock_path) {
        Ok(h) => h,
        Err(why) => {
            println!("skipped: the lock test needs python3 to hold a flock from another process ({why})");
            return;
        }
    };
    let before = s.fingerprint();

    // Readers do not wait for the lock.
    let start = Instant::now();
    assert_eq!(s.ok(["get", "c", "a.md"]).stdout, "alpha");
    s.ok(["ls", "c"]);
    s.ok(["verify"]);
    assert!(start.elapsed() < Duration::from_secs(5), "readers waited {:?} for the lock", start.elapsed());

    // An exclusive command (gc) and a writer (put) wait about 10 s, then fail clearly. Run them side by side.
    let start = Instant::now();
    let put = std::thread::scope(|scope| {
        let put = scope.spawn(|| s.run(["put", "c", "b.md", "--text", "b"]));
        let gc = s.run(["gc"]);
        let waited = start.elapsed();
        gc.assert_error(1, "the store is busy");
        assert!(gc.stderr.contains(&lock_path.display().to_string()), "names the lock file\n{gc}");
        assert!(gc.hint().is_some_and(|h| h.contains("wait")), "{gc}");
        assert!(waited >= Duration::from_secs(9), "gc gave up after {waited:?} instead of waiting ~10 s");
        assert!(waited < Duration::from_secs(30), "gc waited {waited:?}");
        put.join().unwrap()
    });
    put.assert_error(1, "the store is busy");
    assert_eq!(s.fingerprint(), before, "a command that could not get the lock changed the store");

    // Once the holder is gone (killed: the OS releases its lock), everything works again.
    drop(holder);
    let start = Instant::now();
    s.ok(["put", "c", "b.md", "--text", "b"]);
    s.ok(["gc"]);
    assert!(start.elapsed() < Duration::from_secs(5), "the lock of a killed process was not released");
    assert!(!s.colstore_dir().join("lock.info").exists(), "gc removes its lock.info when done");
}

/// An exclusive command waits for a holder that lets go in time, instead of failing.
#[test]
fn gc_waits_for_a_holder_that_finishes_in_time() {
    let s = TestStore::new();
    let holder = match PythonLock::hold(&s.colstore_dir().join("lock")) {
        Ok(h) => h,
        Err(why) => {
            println!("skipped: the lock test needs python3 to hold a flock from another process ({why})");
            return;
        }
    };
    let start = Instant::now();
    let gc = std::thread::scope(|scope| {
        let gc = scope.spawn(|| s.run(["gc"]));
        std::thread::sleep(Duration::from_secs(2));
        drop(holder);
        gc.join().unwrap()
    });
    gc.assert_ok();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(9), "gc finished after {waited:?}");
}
