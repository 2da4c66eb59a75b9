//! Walking a collection's folder: regular files become [`ScannedFile`]s, everything else is skipped or reported as
//! unreadable, with a reason.
//!
//! Speed matters (reconcile runs a scan every time and is compared with `git status`): one `readdir` per folder and
//! one `fstatat` per file (relative to the open folder), top-level folders on several threads, no content read, and
//! `canonicalize` only for symlinks.

use std::fs::{self, FileType, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use colstore_domain::DocKey;
use colstore_domain::ports::{FilesError, STAGING_PREFIX, Scan, ScanIssue, ScannedFile};

use crate::file_stat;
use crate::paths::io_error;

/// Folder names a scan never enters: version control and colstore's own store.
const IGNORED_DIRS: [&str; 2] = [".git", ".colstore"];

/// Walks `root`. Blocking.
pub(crate) fn scan(root: &Path) -> Result<Scan, FilesError> {
    match fs::metadata(root) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => {
            return Err(io_error(root, io::Error::new(io::ErrorKind::NotADirectory, "the collection folder is a file, not a folder")));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FilesError::RootMissing { root: root.display().to_string() }),
        Err(e) => return Err(io_error(root, e)),
    }
    // The top-level folders are walked on up to four threads (a scan is stat-bound, like `git status`, which also
    // uses threads); the collection folder's own entries here.
    let mut walker = Walker::new(root);
    let mut folders = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| io_error(root, e))? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(root, e)),
        };
        let name = entry.file_name();
        let Ok(ft) = entry.file_type() else { continue };
        let Some(name_str) = name.to_str() else {
            walker.skip(name.to_string_lossy().into_owned(), "the name is not valid UTF-8".to_owned());
            continue;
        };
        if ft.is_dir() {
            if IGNORED_DIRS.contains(&name_str) {
                continue;
            }
            match DocKey::parse(name_str) {
                Ok(_) => folders.push(entry.path()),
                Err(e) => walker.skip(name_str.to_owned(), format!("the folder's name cannot be part of a key: {}", e.reason)),
            }
        } else if !name_str.starts_with(STAGING_PREFIX) {
            walker.file(&entry.path(), name_str, ft);
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || folders.len() < 2 {
        for f in &folders {
            walker.walk(f, &rel_of(root, f))?;
        }
    } else {
        let parts: Vec<Result<Walker<'_>, FilesError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let mine: Vec<&PathBuf> = folders.iter().skip(t).step_by(threads).collect();
                    s.spawn(move || {
                        let mut w = Walker::new(root);
                        for f in mine {
                            w.walk(f, &rel_of(root, f))?;
                        }
                        Ok(w)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(io_error(root, io::Error::other("a scan thread panicked")))))
                .collect()
        });
        for part in parts {
            walker.absorb(part?);
        }
    }
    Ok(walker.finish())
}

/// A top-level folder's path relative to the root (its name, which was checked to be UTF-8).
fn rel_of(root: &Path, folder: &Path) -> String {
    folder.strip_prefix(root).unwrap_or(folder).to_string_lossy().into_owned()
}

struct Walker<'a> {
    root: &'a Path,
    /// Computed on the first symlink.
    canonical_root: Option<PathBuf>,
    scan: Scan,
    found: Vec<ScannedFile>,
}

impl<'a> Walker<'a> {
    fn new(root: &'a Path) -> Self {
        Self { root, canonical_root: None, scan: Scan::default(), found: Vec::new() }
    }

    /// Takes what another walker (of other folders of the same root) found.
    fn absorb(&mut self, other: Walker<'_>) {
        self.found.extend(other.found);
        self.scan.skipped.extend(other.scan.skipped);
        self.scan.unreadable.extend(other.scan.unreadable);
    }

    /// Walks everything below `dir` (a folder of the root, already checked), whose path relative to the root is
    /// `rel_dir`. `std`'s directory entries stat relative to the open folder (`fstatat`), which spares the kernel a
    /// full path lookup per file.
    fn walk(&mut self, dir: &Path, rel_dir: &str) -> Result<(), FilesError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // Removed while we walked: it is simply not there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                self.unreadable(rel_dir.to_owned(), &e);
                return Ok(());
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.unreadable(rel_dir.to_owned(), &e);
                    return Ok(());
                }
            };
            let name = entry.file_name();
            let Ok(ft) = entry.file_type() else { continue };
            let Some(name_str) = name.to_str() else {
                self.skip(format!("{rel_dir}/{}", name.to_string_lossy()), "the name is not valid UTF-8".to_owned());
                continue;
            };
            let rel = format!("{rel_dir}/{name_str}");
            if ft.is_dir() {
                if IGNORED_DIRS.contains(&name_str) {
                    continue;
                }
                match DocKey::parse(&rel) {
                    Ok(_) => self.walk(&entry.path(), &rel)?,
                    Err(e) => self.skip(rel, format!("the folder's name cannot be part of a key: {}", e.reason)),
                }
                continue;
            }
            if name_str.starts_with(STAGING_PREFIX) {
                continue;
            }
            if ft.is_file() {
                match entry.metadata() {
                    Ok(md) => self.regular(&rel, &md),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => self.unreadable(rel, &e),
                }
            } else {
                self.file(&entry.path(), &rel, ft);
            }
        }
        Ok(())
    }

    /// A regular file with its metadata.
    fn regular(&mut self, rel: &str, md: &Metadata) {
        match DocKey::parse(rel) {
            Ok(key) => self.found.push(ScannedFile { key, path: rel.to_owned(), stat: file_stat(md) }),
            Err(e) => self.skip(rel.to_owned(), e.reason),
        }
    }

    fn skip(&mut self, path: String, reason: String) {
        self.scan.skipped.push(ScanIssue { path, reason });
    }

    fn unreadable(&mut self, path: String, e: &io::Error) {
        let reason = if e.kind() == io::ErrorKind::PermissionDenied { "permission denied".to_owned() } else { e.to_string() };
        self.scan.unreadable.push(ScanIssue { path, reason });
    }

    /// An entry that is not a folder.
    fn file(&mut self, path: &Path, rel: &str, ft: FileType) {
        let key = match DocKey::parse(rel) {
            Ok(key) => key,
            Err(e) => return self.skip(rel.to_owned(), e.reason),
        };
        let md = if ft.is_file() {
            match fs::symlink_metadata(path) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => return self.unreadable(rel.to_owned(), &e),
            }
        } else if ft.is_symlink() {
            match self.follow(path) {
                Ok(md) => md,
                Err(Issue::Skip(reason)) => return self.skip(rel.to_owned(), reason),
                Err(Issue::Unreadable(e)) => return self.unreadable(rel.to_owned(), &e),
            }
        } else {
            return self.skip(rel.to_owned(), format!("{} (only regular files are documents)", kind(&ft)));
        };
        self.found.push(ScannedFile { key, path: rel.to_owned(), stat: file_stat(&md) });
    }

    /// The target of a symlink, when it is a regular file inside the folder.
    fn follow(&mut self, path: &Path) -> Result<Metadata, Issue> {
        let md = match fs::metadata(path) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Issue::Skip("dangling symlink (its target does not exist)".to_owned()));
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(Issue::Unreadable(e)),
            Err(e) => return Err(Issue::Skip(format!("symlink that cannot be followed: {e}"))),
        };
        let canonical_root = match &self.canonical_root {
            Some(c) => c,
            None => match fs::canonicalize(self.root) {
                Ok(c) => self.canonical_root.insert(c),
                Err(e) => return Err(Issue::Unreadable(e)),
            },
        };
        match fs::canonicalize(path) {
            Ok(target) if target.starts_with(canonical_root) => {}
            Ok(_) => return Err(Issue::Skip("symlink leaves the collection folder".to_owned())),
            Err(e) => return Err(Issue::Skip(format!("symlink that cannot be followed: {e}"))),
        }
        if md.is_dir() {
            return Err(Issue::Skip("symlink to a folder (colstore does not follow linked folders)".to_owned()));
        }
        if !md.is_file() {
            return Err(Issue::Skip(format!("symlink to a {} (only regular files are documents)", kind(&md.file_type()))));
        }
        Ok(md)
    }

    fn finish(mut self) -> Scan {
        // By key, then path in byte order: of two names with one NFC form, the first in byte order is the document.
        self.found.sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| a.path.cmp(&b.path)));
        let mut files: Vec<ScannedFile> = Vec::with_capacity(self.found.len());
        for f in self.found {
            match files.last() {
                Some(prev) if prev.key == f.key => {
                    let reason = format!("same key as {:?} after Unicode normalisation; rename one of them", prev.path);
                    self.scan.skipped.push(ScanIssue { path: f.path, reason });
                }
                _ => files.push(f),
            }
        }
        self.scan.files = files;
        self.scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        self.scan.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
        self.scan
    }
}

enum Issue {
    Skip(String),
    Unreadable(io::Error),
}

/// A human name for a file type that is not a regular file or a folder.
pub(crate) fn kind(ft: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "socket";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_char_device() {
            return "character device";
        }
    }
    if ft.is_dir() {
        "folder"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "regular file"
    } else {
        "special file"
    }
}
