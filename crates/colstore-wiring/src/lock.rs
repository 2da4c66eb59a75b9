//! [`StoreLock`]: the store-wide lock of PRODUCT §8, on `.colstore/lock`.
//!
//! Writers (put, add, ...) take it shared; exclusive operations (gc, collection delete, later restore, clear, migrate)
//! take it exclusively. Readers take nothing, so they never block. The lock is an OS file lock (`flock` on Unix),
//! which the OS releases when its holder dies, so a killed process never wedges the store. The exclusive holder also
//! writes who it is to `.colstore/lock.info`, so others can say who they are waiting for; a `lock.info` found by
//! whoever next acquires the OS lock is necessarily stale (its writer no longer holds the lock) and is recovered.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use colstore_domain::Timestamp;
use colstore_domain::ports::Clock;
use serde::{Deserialize, Serialize};

use crate::{StoreDir, SystemClock, WiringError};

/// How long [`StoreLock::shared`] waits for an exclusive operation to finish.
pub const DEFAULT_SHARED_WAIT: Duration = Duration::from_secs(10);

/// How often a waiting acquisition retries.
const POLL: Duration = Duration::from_millis(50);

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once (writers); excludes exclusive holders.
    Shared,
    /// One holder, nobody else.
    Exclusive,
}

/// Who holds the exclusive lock, as written to `.colstore/lock.info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInfo {
    /// The holder's process id.
    pub pid: u32,
    /// The command it runs (`gc`, `restore`, ...).
    pub command: String,
    /// The host it runs on.
    pub host: String,
    /// When it took the lock.
    pub started_at: Timestamp,
}

impl LockInfo {
    /// What this process would write for `command`.
    fn current(command: &str) -> Self {
        Self { pid: std::process::id(), command: command.to_owned(), host: host_name(), started_at: SystemClock.now() }
    }

    /// Reads `.colstore/lock.info`; `None` when it is absent or unreadable.
    ///
    /// The file may be stale (left by a process that died); only someone holding the lock can know for sure.
    pub fn read(dir: &StoreDir) -> Option<LockInfo> {
        toml::from_str(&fs::read_to_string(dir.lock_info_path()).ok()?).ok()
    }

    fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        format!(
            "# Who holds this store's exclusive lock. Removed when the command ends; a stale one is recovered automatically.\n\
             pid = {}\ncommand = {}\nhost = {}\nstarted_at = {}\n",
            self.pid,
            q(&self.command),
            q(&self.host),
            q(&self.started_at.to_string())
        )
    }

    /// Whether the holder process still runs: `Some(false)` only when that is certain (same host, no such process).
    fn alive(&self) -> Option<bool> {
        let proc_dir = Path::new("/proc");
        if self.host != host_name() || !proc_dir.join("self").exists() {
            return None;
        }
        Some(proc_dir.join(self.pid.to_string()).exists())
    }
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({}) on {} since {}", self.pid, self.command, self.host, self.started_at)
    }
}

/// The machine's host name, best effort (no `unsafe` `gethostname`).
pub(crate) fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// A held store lock; released on drop (and by the OS if the process dies).
///
/// Do not take a second lock on the same store while holding one: OS file locks do not nest, so the second
/// acquisition waits for the first.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct StoreLock {
    // Held only for its OS lock, which closing the file releases. `None`: a shared lock on a store nobody can write
    // (no lock file, and the folder is read-only), where there is no writer to keep out.
    _file: Option<File>,
    mode: LockMode,
    /// `lock.info` to remove on drop (exclusive holders only).
    info_path: Option<PathBuf>,
    recovered: Option<LockInfo>,
}

impl StoreLock {
    /// Takes the lock shared, waiting up to [`DEFAULT_SHARED_WAIT`] for an exclusive holder. Blocks the thread while
    /// it waits: call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    /// [`WiringError::Busy`] naming the exclusive holder when known; [`WiringError::ReadOnly`] or [`WiringError::Io`]
    /// when the lock file cannot be opened.
    pub fn shared(dir: &StoreDir) -> Result<StoreLock, WiringError> {
        Self::shared_within(dir, DEFAULT_SHARED_WAIT)
    }

    /// Like [`StoreLock::shared`], waiting up to `wait`.
    ///
    /// # Errors
    /// As [`StoreLock::shared`].
    pub fn shared_within(dir: &StoreDir, wait: Duration) -> Result<StoreLock, WiringError> {
        Self::shared_with_notice(dir, wait, &|_| {})
    }

    /// Like [`StoreLock::shared_within`]; when the first attempt finds the lock held, calls `on_wait` once with the
    /// holder when known (`pid 123 (gc) on host since ...`), so a shell can say that it waits and for whom.
    ///
    /// # Errors
    /// As [`StoreLock::shared`].
    pub fn shared_with_notice(dir: &StoreDir, wait: Duration, on_wait: &dyn Fn(Option<String>)) -> Result<StoreLock, WiringError> {
        let file = acquire(dir, LockMode::Shared, wait, on_wait)?;
        let recovered = recover_stale(dir);
        Ok(Self { _file: file, mode: LockMode::Shared, info_path: None, recovered })
    }

    /// Takes the lock exclusively for `command`, retrying every 50 ms until `wait` has passed, then records the holder
    /// in `lock.info`. Blocks the thread while it waits: call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    /// [`WiringError::Busy`] naming the holder when known; [`WiringError::ReadOnly`] or [`WiringError::Io`] when the
    /// lock file or `lock.info` cannot be written.
    pub fn exclusive(dir: &StoreDir, command: &str, wait: Duration) -> Result<StoreLock, WiringError> {
        Self::exclusive_with_notice(dir, command, wait, &|_| {})
    }

    /// Like [`StoreLock::exclusive`]; when the first attempt finds the lock held, calls `on_wait` once with the
    /// holder when known, so a shell can say that it waits and for whom.
    ///
    /// # Errors
    /// As [`StoreLock::exclusive`].
    pub fn exclusive_with_notice(
        dir: &StoreDir,
        command: &str,
        wait: Duration,
        on_wait: &dyn Fn(Option<String>),
    ) -> Result<StoreLock, WiringError> {
        let path = dir.lock_path();
        let file = acquire(dir, LockMode::Exclusive, wait, on_wait)?.ok_or_else(|| WiringError::ReadOnly { path: path.clone() })?;
        let recovered = recover_stale(dir);
        let info_path = dir.lock_info_path();
        // If this fails the file lock is released with `file`, so nothing is left behind.
        colstore_durable::atomic_write(&info_path, LockInfo::current(command).to_toml().as_bytes())
            .map_err(|e| WiringError::io(&info_path, e))?;
        tracing::debug!(command, "took the exclusive store lock");
        Ok(Self { _file: Some(file), mode: LockMode::Exclusive, info_path: Some(info_path), recovered })
    }

    /// Shared or exclusive.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// The holder recorded in a stale `lock.info` that this acquisition found and removed, if any.
    pub fn recovered(&self) -> Option<&LockInfo> {
        self.recovered.as_ref()
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Remove the record before the file closes and the OS lock goes, so nobody reads a record of a free lock.
        if let Some(path) = &self.info_path
            && let Err(e) = fs::remove_file(path)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove lock.info; the next holder will recover it");
        }
    }
}

/// The OS lock taken exclusively at once, when nobody holds it (no colstore process of this store is writing), and
/// without recording a holder: for a moment's housekeeping when a store opens. `None` when it is held or cannot be
/// taken (a read-only store). Released when the file is dropped.
pub(crate) fn try_exclusive_now(dir: &StoreDir) -> Option<File> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.lock_path()).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

fn is_permission(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem)
}

/// Opens the lock file and takes the OS lock, calling `on_wait` with the holder once, when the first attempt finds it
/// held. `None` only for a shared lock on a store whose folder cannot be written.
fn acquire(dir: &StoreDir, mode: LockMode, wait: Duration, on_wait: &dyn Fn(Option<String>)) -> Result<Option<File>, WiringError> {
    let path = dir.lock_path();
    let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
        Ok(file) => file,
        // A store the user may read but not write: a shared lock works on a file opened for reading (flock does
        // not need write access), so readers still wait for an exclusive holder such as `col restore`.
        Err(e) if mode == LockMode::Shared && is_permission(&e) => match File::open(&path) {
            Ok(file) => file,
            Err(again) if again.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(path = %path.display(), "no lock file and the store folder is read-only: reading without a lock");
                return Ok(None);
            }
            Err(_) => return Err(WiringError::io(&path, e)),
        },
        Err(e) => return Err(WiringError::io(&path, e)),
    };
    let deadline = Instant::now() + wait;
    // A record whose process is certainly gone describes a dead holder, not the one in the way.
    let holder = || LockInfo::read(dir).filter(|i| i.alive() != Some(false)).map(|i| i.to_string());
    let mut told = false;
    loop {
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) if !told => {
                told = true;
                on_wait(holder());
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(source)) => return Err(WiringError::Io { path, source }),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WiringError::Busy { holder: holder(), path });
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// Removes a `lock.info` found while holding the OS lock: its writer no longer holds the lock, so it is stale.
fn recover_stale(dir: &StoreDir) -> Option<LockInfo> {
    let path = dir.lock_info_path();
    if !path.exists() {
        return None;
    }
    let info = LockInfo::read(dir);
    // Another shared holder may have removed it first; either way it is gone.
    let _ = fs::remove_file(&path);
    match &info {
        Some(i) => tracing::warn!(pid = i.pid, command = %i.command, "recovered a stale lock left by pid {} ({})", i.pid, i.command),
        None => tracing::warn!(path = %path.display(), "removed an unreadable stale lock.info"),
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    fn store() -> (tempfile::TempDir, StoreDir) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join(".colstore");
        fs::create_dir(&root).unwrap();
        let dir = StoreDir::from_root(&root).unwrap();
        (t, dir)
    }

    const SHORT: Duration = Duration::from_millis(100);

    #[test]
    fn exclusive_excludes_exclusive_and_names_the_holder() {
        let (_t, dir) = store();
        let held = StoreLock::exclusive(&dir, "gc", SHORT).unwrap();
        assert_eq!(held.mode(), LockMode::Exclusive);
        assert!(held.recovered().is_none());
        let info = LockInfo::read(&dir).unwrap();
        assert_eq!((info.pid, info.command.as_str()), (std::process::id(), "gc"));

        let start = Instant::now();
        let e = StoreLock::exclusive(&dir, "collection delete", SHORT).unwrap_err();
        assert!(start.elapsed() >= SHORT);
        let WiringError::Busy { holder: Some(holder), path } = &e else { panic!("{e:?}") };
        assert!(holder.contains("(gc)") && holder.contains(&format!("pid {}", std::process::id())), "{holder}");
        assert_eq!(path, &dir.lock_path());
        assert!(e.to_string().contains("(gc)"), "{e}");

        // Writers wait for it too, and say for whom.
        let e = StoreLock::shared_within(&dir, SHORT).unwrap_err();
        assert!(e.to_string().contains("(gc)"), "{e}");

        drop(held);
        assert!(!dir.lock_info_path().exists(), "lock.info is removed on release");
        let again = StoreLock::exclusive(&dir, "gc", SHORT).unwrap();
        assert!(again.recovered().is_none());
    }

    #[test]
    fn shared_holders_coexist_and_keep_exclusive_out() {
        let (_t, dir) = store();
        let a = StoreLock::shared(&dir).unwrap();
        let b = StoreLock::shared_within(&dir, SHORT).unwrap();
        assert_eq!((a.mode(), b.mode()), (LockMode::Shared, LockMode::Shared));
        let e = StoreLock::exclusive(&dir, "gc", SHORT).unwrap_err();
        assert!(matches!(e, WiringError::Busy { holder: None, .. }), "{e:?}");
        assert!(e.to_string().contains("another colstore command"), "{e}");
        drop(a);
        assert!(StoreLock::exclusive(&dir, "gc", SHORT).is_err(), "one shared holder is enough to keep it out");
        drop(b);
        assert_eq!(StoreLock::exclusive(&dir, "gc", SHORT).unwrap().mode(), LockMode::Exclusive);
    }

    /// The waiter proves it was blocked (it tells once that it waits while the shared lock is held), then gets the
    /// lock once it is released, within its wait.
    #[test]
    fn a_waiting_exclusive_gets_the_lock_when_it_is_released() {
        let (_t, dir) = store();
        let shared = StoreLock::shared(&dir).unwrap();
        let (busy_tx, busy_rx) = std::sync::mpsc::channel();
        let waiter = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let tell = move |holder: Option<String>| {
                    let _ = busy_tx.send(holder);
                };
                StoreLock::exclusive_with_notice(&dir, "gc", Duration::from_secs(600), &tell).map(|l| l.mode())
            })
        };
        let holder = busy_rx.recv().expect("the waiter found the lock held and said so");
        assert_eq!(holder, None, "a shared holder records no lock.info");
        assert!(!waiter.is_finished(), "the waiter is still waiting while the shared lock is held");
        drop(shared);
        assert_eq!(waiter.join().unwrap().unwrap(), LockMode::Exclusive);
        assert!(busy_rx.try_recv().is_err(), "it said so once");
    }

    fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().expect("spawn `true`");
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_stale_lock_info_is_recovered() {
        let (_t, dir) = store();
        let stale = LockInfo {
            pid: dead_pid(),
            command: "restore".into(),
            host: host_name(),
            started_at: Timestamp::from_millis(1_704_067_200_000),
        };
        fs::write(dir.lock_info_path(), stale.to_toml()).unwrap();

        let lock = StoreLock::exclusive(&dir, "gc", SHORT).unwrap();
        assert_eq!(lock.recovered(), Some(&stale));
        assert_eq!(LockInfo::read(&dir).unwrap().command, "gc");
        drop(lock);
        assert!(!dir.lock_info_path().exists());

        // A shared holder recovers it too, and a busy message never names a holder known to be dead.
        fs::write(dir.lock_info_path(), stale.to_toml()).unwrap();
        let shared = StoreLock::shared(&dir).unwrap();
        assert_eq!(shared.recovered(), Some(&stale));
        fs::write(dir.lock_info_path(), stale.to_toml()).unwrap();
        let e = StoreLock::exclusive(&dir, "gc", SHORT).unwrap_err();
        assert!(matches!(e, WiringError::Busy { holder: None, .. }), "{e:?}");
    }

    #[test]
    fn an_unreadable_lock_info_is_recovered() {
        let (_t, dir) = store();
        fs::write(dir.lock_info_path(), "garbage").unwrap();
        let lock = StoreLock::exclusive(&dir, "gc", SHORT).unwrap();
        assert!(lock.recovered().is_none());
        assert_eq!(LockInfo::read(&dir).unwrap().command, "gc");
    }

    #[test]
    fn lock_info_round_trips() {
        let info = LockInfo::current("collection delete \"x\"");
        assert_eq!(toml::from_str::<LockInfo>(&info.to_toml()).unwrap(), info);
        assert!(info.to_string().starts_with(&format!("pid {} (collection delete \"x\") on ", info.pid)));
        assert_eq!(info.alive(), if Path::new("/proc/self").exists() { Some(true) } else { None });
    }

    /// A real process holds the lock (python's `fcntl.flock`, the same OS lock as std's `File::lock`) and is killed
    /// with SIGKILL: the OS releases its lock and the next acquisition recovers its `lock.info`.
    #[test]
    fn a_lock_held_by_a_killed_process_is_recovered() {
        let (_t, dir) = store();
        let script = r#"
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
with open(sys.argv[2], "w") as info:
    info.write('pid = %d\ncommand = "restore"\nhost = "%s"\nstarted_at = "2024-01-01T00:00:00.000Z"\n' % (os.getpid(), sys.argv[3]))
print("locked", flush=True)
time.sleep(60)
"#;
        let spawned = Command::new("python3")
            .args(["-c", script])
            .arg(dir.lock_path())
            .arg(dir.lock_info_path())
            .arg(host_name())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let why = format!("cannot run python3 ({e}); this test needs it to hold a lock from another process");
                return colstore_testkit::need::skip(colstore_testkit::need::Need::Python3, &why);
            }
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked", "the helper did not take the lock");

        let e = StoreLock::exclusive(&dir, "gc", SHORT).unwrap_err();
        let WiringError::Busy { holder: Some(holder), .. } = &e else { panic!("{e:?}") };
        assert!(holder.contains(&format!("pid {} (restore)", child.id())), "{holder}");

        child.kill().unwrap(); // SIGKILL: no cleanup runs in the child
        child.wait().unwrap();
        assert!(dir.lock_info_path().exists(), "the killed process left its lock.info behind");

        let lock = StoreLock::exclusive(&dir, "gc", Duration::from_secs(5)).unwrap();
        let recovered = lock.recovered().expect("the stale lock.info was recovered");
        assert_eq!((recovered.pid, recovered.command.as_str()), (child.id(), "restore"));
    }
}
