//! Durable file writes, in one place (PRODUCT §8: every multi-step write is crash-safe).
//!
//! A file is made durable by `fsync`ing it; a *name* (a new file, a rename, a removal, a new folder) only by
//! `fsync`ing the folder that holds it. Forgetting the second step is the classic way to lose a file that was
//! "written" just before a power cut, so every crate that writes files (the store's config and lock, the documents'
//! folder, the embedded index's snapshots, `file://` backup repositories, the CLI's `-o` outputs) uses these helpers
//! instead of its own copy.
//!
//! It also holds [`xxh64`], the checksum of the files colstore writes for itself and reads back.
//!
//! This crate is a leaf with no domain knowledge and no dependencies beyond std, so that adapters, which must never
//! depend on each other, and the shells can all share it. The functions block: call them on a blocking thread from
//! async code.

pub mod xxh64;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes the entries of folder `dir` (a created, renamed or removed name) durable.
///
/// On Windows, where a folder cannot be opened as a file and NTFS journals renames, this does nothing.
///
/// # Errors
/// The folder cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder (`.NAME.tmp-PID-N`), written, `fsync`ed,
/// renamed over `path`, then the folder `fsync`ed. Readers see the old file or the new one, never a mix; a crash
/// leaves at most a stray temporary file, which is removed when the write fails.
///
/// # Errors
/// `path` has no parent folder or file name, or a step fails (the target is then left as it was).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Err(io::Error::other("the path has no parent folder")),
    };
    let name = path.file_name().ok_or_else(|| io::Error::other("the path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp-{}-{}", name.to_string_lossy(), std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and any missing parents, then `fsync`s every folder whose entries changed (from `dir` up to the
/// first folder that already existed), so the new folders survive a crash.
///
/// # Errors
/// A folder cannot be created or synced.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut first_existing = dir;
    while !first_existing.exists() {
        match first_existing.parent() {
            Some(p) => first_existing = p,
            None => break,
        }
    }
    fs::create_dir_all(dir)?;
    if first_existing == dir {
        return Ok(());
    }
    let mut d = dir;
    loop {
        sync_dir(d)?;
        if d == first_existing {
            return Ok(());
        }
        match d.parent() {
            Some(p) => d = p,
            None => return Ok(()),
        }
    }
}

/// `fsync`s the file `path` (when `file_too`) and every folder from its parent up to and including `root`.
///
/// # Errors
/// The first failure, naming the path that failed.
pub fn sync_chain(root: &Path, path: &Path, file_too: bool) -> io::Result<()> {
    let named = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("cannot fsync {}: {e}", p.display()));
    if file_too {
        File::open(path).and_then(|f| f.sync_all()).map_err(|e| named(path, e))?;
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        sync_dir(d).map_err(|e| named(d, e))?;
        if d == root || !d.starts_with(root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.toml");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(names(t.path()), ["a.toml"]);
    }

    #[test]
    fn atomic_write_into_a_missing_folder_fails_and_creates_nothing() {
        let t = tempfile::tempdir().unwrap();
        assert!(atomic_write(&t.path().join("nope/a.toml"), b"x").is_err());
        assert!(names(t.path()).is_empty());
    }

    #[test]
    fn atomic_write_over_a_folder_fails_and_removes_its_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("a")).unwrap();
        fs::write(t.path().join("a/keep"), b"x").unwrap();
        assert!(atomic_write(&t.path().join("a"), b"x").is_err());
        assert_eq!(names(t.path()), ["a"], "the temporary file is removed");
        assert_eq!(names(&t.path().join("a")), ["keep"]);
    }

    #[test]
    fn create_dir_all_creates_nested_folders_and_is_idempotent() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("repo").join("a").join("b");
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all(&deep).unwrap();
        assert!(create_dir_all(&t.path().join("repo/a/b")).is_ok());
    }

    #[test]
    fn sync_chain_syncs_a_file_and_names_what_is_missing() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        let deep = root.join("a").join("b");
        create_dir_all(&deep).unwrap();
        let file = deep.join("f");
        fs::write(&file, b"x").unwrap();
        sync_chain(&root, &file, true).unwrap();
        sync_chain(&root, &deep.join("gone"), false).unwrap();
        let err = sync_chain(&root, &deep.join("missing"), true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with("cannot fsync ") && err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn sync_dir_of_a_missing_folder_fails() {
        let t = tempfile::tempdir().unwrap();
        assert!(sync_dir(t.path()).is_ok());
        assert_eq!(sync_dir(&t.path().join("nope")).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
