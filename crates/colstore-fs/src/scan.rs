//! Walking a collection's folder: regular files become [`ScannedFile`]s, everything else is skipped or reported as
//! unreadable, with a reason.
//!
//! Speed matters (reconcile runs a scan every time and is compared with `git status`): one `readdir` per folder and
//! one `lstat` per file, no content read, and `canonicalize` only for symlinks.

use std::fs::{self, FileType, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use colstore_domain::DocKey;
use colstore_domain::ports::{FilesError, STAGING_PREFIX, Scan, ScanIssue, ScannedFile};
use walkdir::WalkDir;

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
    let mut walker = Walker { root, canonical_root: None, scan: Scan::default(), found: Vec::new() };
    let mut it = WalkDir::new(root).follow_links(false).min_depth(1).into_iter();
    while let Some(next) = it.next() {
        let entry = match next {
            Ok(entry) => entry,
            Err(err) => {
                walker.walk_error(err)?;
                continue;
            }
        };
        let ft = entry.file_type();
        let Ok(rel) = entry.path().strip_prefix(root) else { continue };
        let Some(rel_str) = rel.to_str() else {
            walker.skip(rel.to_string_lossy().into_owned(), "the name is not valid UTF-8".to_owned());
            if ft.is_dir() {
                it.skip_current_dir();
            }
            continue;
        };
        if ft.is_dir() {
            let name = entry.file_name();
            if IGNORED_DIRS.iter().any(|d| name == *d) {
                it.skip_current_dir();
            } else if let Err(e) = DocKey::parse(rel_str) {
                walker.skip(rel_str.to_owned(), format!("the folder's name cannot be part of a key: {}", e.reason));
                it.skip_current_dir();
            }
            continue;
        }
        if entry.file_name().as_encoded_bytes().starts_with(STAGING_PREFIX.as_bytes()) {
            continue;
        }
        walker.file(entry.path(), rel_str, ft);
    }
    Ok(walker.finish())
}

struct Walker<'a> {
    root: &'a Path,
    /// Computed on the first symlink.
    canonical_root: Option<PathBuf>,
    scan: Scan,
    found: Vec<ScannedFile>,
}

impl Walker<'_> {
    fn skip(&mut self, path: String, reason: String) {
        self.scan.skipped.push(ScanIssue { path, reason });
    }

    fn unreadable(&mut self, path: String, e: &io::Error) {
        let reason = if e.kind() == io::ErrorKind::PermissionDenied { "permission denied".to_owned() } else { e.to_string() };
        self.scan.unreadable.push(ScanIssue { path, reason });
    }

    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(self.root).unwrap_or(p).to_string_lossy().into_owned()
    }

    /// A folder that could not be listed, or an entry that vanished or failed while walking.
    fn walk_error(&mut self, err: walkdir::Error) -> Result<(), FilesError> {
        let rel = err.path().map(|p| self.rel(p)).unwrap_or_default();
        let io_err = err.into_io_error().unwrap_or_else(|| io::Error::other("a file system loop"));
        if io_err.kind() == io::ErrorKind::NotFound {
            // Removed while we walked: it is simply not there.
            return Ok(());
        }
        if rel.is_empty() {
            // The collection folder itself cannot be listed: no scan can be trusted.
            return Err(io_error(self.root, io_err));
        }
        self.unreadable(rel, &io_err);
        Ok(())
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
