//! Where `-o FILE` writes (`col get -o`, `col export -o`): never in a way that replaces what the path names.
//!
//! - `-` (and `/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`) is this process's standard output.
//! - A symbolic link is followed: the file it points to gets the content and the link stays a link.
//! - A regular file (or a new one) is written next to itself under a temporary name, synced and renamed over the
//!   target, so the target is either the old file or the whole new one.
//! - Anything else that exists (a character device such as `/dev/null`, a FIFO, a socket, a terminal), and every
//!   path under `/dev/` or `/proc/`, is opened and written straight, without a temporary file or a rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{CliError, CliResult};

/// Symbolic links followed before giving up (the kernel's own limit is 40).
const MAX_LINKS: usize = 40;

/// An output opened for writing; [`OutputFile::commit`] makes it final. Dropped without a commit, a temporary file
/// is removed and the target left as it was.
pub struct OutputFile {
    kind: Kind,
    /// The path as the user gave it, for messages.
    shown: String,
}

enum Kind {
    Stdout(io::Stdout),
    Direct(File),
    Atomic { tmp: tempfile::NamedTempFile, target: PathBuf, dir: PathBuf },
}

/// Whether `path` means standard output.
pub fn is_stdout(path: &Path) -> bool {
    matches!(path.to_str(), Some("-" | "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1"))
}

impl OutputFile {
    /// Opens `path` for writing as the module docs say.
    ///
    /// # Errors
    /// A directory, a missing parent folder, a symbolic-link loop, or a place that cannot be written.
    pub fn create(path: &Path) -> CliResult<Self> {
        let shown = path.display().to_string();
        let cannot = |e: &dyn std::fmt::Display| CliError::new(format!("cannot write {shown}: {e}"));
        if is_stdout(path) {
            return Ok(Self { kind: Kind::Stdout(io::stdout()), shown: "standard output".into() });
        }
        let real = resolve_links(path).map_err(|e| cannot(&e).hint("check the symbolic link and what it points to"))?;
        let existing = match std::fs::metadata(&real) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(cannot(&e)),
        };
        if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
            return Err(CliError::new(format!("{shown} is a directory")).hint("give a file name for -o, like -o notes.colstore"));
        }
        let special = existing.as_ref().is_some_and(|m| !m.is_file());
        if special || path.starts_with("/dev") || path.starts_with("/proc") || real.starts_with("/dev") || real.starts_with("/proc") {
            // Devices, FIFOs and the like are written as they are: no temporary file, no rename, no truncation of
            // something that is not a regular file.
            let file = OpenOptions::new()
                .write(true)
                .create(existing.is_none())
                .truncate(existing.as_ref().is_some_and(std::fs::Metadata::is_file))
                .open(&real)
                .map_err(|e| cannot(&e).hint("check that it exists and is writable"))?;
            return Ok(Self { kind: Kind::Direct(file), shown });
        }
        let dir = match real.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(CliError::new(format!("cannot write {shown}: folder {} does not exist", dir.display()))
                .hint("create the folder first, or choose another path for -o"));
        }
        // A replaced file keeps its permissions; a new one gets the usual 0666 less the umask.
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            existing.as_ref().map_or(0o666, |m| m.permissions().mode() & 0o7777)
        };
        let prefix = format!(".{}.col-tmp-", real.file_name().and_then(|n| n.to_str()).unwrap_or("out"));
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        let tmp = builder
            .tempfile_in(&dir)
            .map_err(|e| CliError::new(format!("cannot write in {}: {e}", dir.display())).hint("choose a writable place for -o"))?;
        Ok(Self { kind: Kind::Atomic { tmp, target: real, dir }, shown })
    }

    /// Whether this writes to standard output (so human messages must go elsewhere).
    pub fn is_stdout(&self) -> bool {
        matches!(self.kind, Kind::Stdout(_))
    }

    /// The output as the user named it, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Flushes and makes the output final: for a regular file, syncs it and renames it over the target. Returns the
    /// size of the written file when it is one.
    ///
    /// # Errors
    /// A failed write, sync or rename; the target is then left as it was.
    pub fn commit(self) -> CliResult<Option<u64>> {
        let cannot = |e: &dyn std::fmt::Display| CliError::new(format!("cannot write {}: {e}", self.shown));
        match self.kind {
            Kind::Stdout(mut s) => {
                s.flush().map_err(crate::commands::io)?;
                Ok(None)
            }
            Kind::Direct(mut f) => {
                f.flush().map_err(|e| cannot(&e))?;
                Ok(None)
            }
            Kind::Atomic { tmp, target, dir } => {
                tmp.as_file().sync_all().map_err(|e| cannot(&e))?;
                tmp.persist(&target).map_err(|e| cannot(&e.error))?;
                // The file is whole under its name; a folder that cannot be synced (some network file systems)
                // only leaves the rename less certain to survive a power cut.
                let _ = colstore_durable::sync_dir(&dir);
                Ok(std::fs::metadata(&target).ok().map(|m| m.len()))
            }
        }
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Stdout(s) => s.write(buf),
            Kind::Direct(f) => f.write(buf),
            Kind::Atomic { tmp, .. } => tmp.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.kind {
            Kind::Stdout(s) => s.lock().write_all(buf),
            Kind::Direct(f) => f.write_all(buf),
            Kind::Atomic { tmp, .. } => tmp.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            Kind::Stdout(s) => s.flush(),
            Kind::Direct(f) => f.flush(),
            Kind::Atomic { tmp, .. } => tmp.flush(),
        }
    }
}

/// Follows symbolic links from `path` to what they finally name (which may not exist yet: a dangling link's target
/// is where a new file goes). Unlike `canonicalize`, it works for a path that does not exist and leaves the other
/// components alone.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_owned();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = if to.is_absolute() { to } else { p.parent().unwrap_or(Path::new("")).join(to) };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!("more than {MAX_LINKS} symbolic links to follow (a loop?)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_through_a_symlink_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.txt");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        let mut out = OutputFile::create(&link).unwrap();
        out.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    }

    #[test]
    fn a_dangling_symlink_creates_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(dir.path().join("new.txt"), &link).unwrap();
        let mut out = OutputFile::create(&link).unwrap();
        out.write_all(b"x").unwrap();
        out.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(dir.path().join("new.txt")).unwrap(), "x");
    }

    #[test]
    fn dev_null_is_written_straight() {
        let mut out = OutputFile::create(Path::new("/dev/null")).unwrap();
        out.write_all(b"x").unwrap();
        assert_eq!(out.commit().unwrap(), None);
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    }

    #[test]
    fn a_symlink_loop_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(OutputFile::create(&a).is_err());
    }

    #[test]
    fn an_abandoned_output_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.txt");
        std::fs::write(&target, "old").unwrap();
        let mut out = OutputFile::create(&target).unwrap();
        out.write_all(b"half").unwrap();
        drop(out);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }
}
