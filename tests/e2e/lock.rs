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

    // The record holds no OS lock: gc takes the lock at once (no "waiting" notice) and reports the recovery.
    let out = s.run(["--json", "gc"]);
    out.assert_ok();
    assert!(!out.stderr.contains("waiting for the store lock"), "gc waited for a dead process\n{out}");
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
            panic!("python3 did not take the lock: {err}");
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
            colstore_testkit::need::skip(
                colstore_testkit::need::Need::Python3,
                &format!("the lock test needs python3 to hold a flock from another process ({why})"),
            );
            return;
        }
    };
    let before = s.fingerprint();

    // Readers do not wait for the lock: a reader that took it would say it waits (and then fail busy).
    for args in [&["get", "c", "a.md"][..], &["ls", "c"], &["verify"]] {
        let out = s.run(args);
        out.assert_ok();
        assert!(!out.stderr.contains("waiting for the store lock"), "{args:?} waited\n{out}");
    }

    // An exclusive command (gc) and a writer (put) say they wait, wait 10 s, then fail clearly. Side by side. (A
    // lower bound on time holds on any machine, however loaded.)
    let start = Instant::now();
    let put = std::thread::scope(|scope| {
        let put = scope.spawn(|| s.run(["put", "c", "b.md", "--text", "b"]));
        let gc = s.run(["gc"]);
        let waited = start.elapsed();
        gc.assert_error(1, "the store is busy");
        assert!(gc.stderr.contains("waiting for the store lock") && gc.stderr.contains("giving up after 10 s"), "{gc}");
        assert!(gc.stderr.contains(&lock_path.display().to_string()), "names the lock file\n{gc}");
        assert!(gc.hint().is_some_and(|h| h.contains("wait")), "{gc}");
        assert!(waited >= Duration::from_secs(10), "gc gave up after {waited:?} instead of waiting 10 s");
        put.join().unwrap()
    });
    put.assert_error(1, "the store is busy");
    assert!(put.stderr.contains("waiting for the store lock"), "{put}");
    assert_eq!(s.fingerprint(), before, "a command that could not get the lock changed the store");

    // Once the holder is gone (killed: the OS releases its lock), everything works again, without waiting.
    drop(holder);
    for args in [&["put", "c", "b.md", "--text", "b"][..], &["gc"]] {
        let out = s.run(args);
        out.assert_ok();
        assert!(!out.stderr.contains("waiting for the store lock"), "the lock of a killed process was not released\n{out}");
    }
    assert!(!s.colstore_dir().join("lock.info").exists(), "gc removes its lock.info when done");
}

/// An exclusive command waits for a holder that lets go in time, instead of failing.
#[test]
fn gc_waits_for_a_holder_that_finishes_in_time() {
    let s = TestStore::new();
    let holder = match PythonLock::hold(&s.colstore_dir().join("lock")) {
        Ok(h) => h,
        Err(why) => {
            colstore_testkit::need::skip(
                colstore_testkit::need::Need::Python3,
                &format!("the lock test needs python3 to hold a flock from another process ({why})"),
            );
            return;
        }
    };
    // Ordered by events, not by the clock: gc says it waits, then the holder lets go, then gc succeeds.
    let mut gc = s.cmd(["gc"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start col gc");
    let stderr = gc.stderr.take().expect("piped");
    let (said_tx, said_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok);
        let said = lines.by_ref().any(|l| l.contains("waiting for the store lock"));
        let _ = said_tx.send(said);
        lines.collect::<Vec<_>>().join("\n")
    });
    assert!(said_rx.recv().unwrap_or(false), "gc says that it waits for the holder");
    drop(holder);
    let status = gc.wait().expect("wait for col gc");
    let rest = reader.join().expect("stderr reader");
    assert!(status.success(), "gc gets the lock once the holder lets go ({status}):\n{rest}");
}
