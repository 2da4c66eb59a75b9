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
    // Folders in byte order of their names as path prefixes ("a/" after "a.b"), each walked in that order, so every
    // folder's files come out sorted and the parts only need concatenating. Threads take the next folder as they
    // finish one, so one large folder does not leave a thread idle.
    folders.sort_by_cached_key(|f| as_prefix(f));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4).min(folders.len());
    let mut parts: Vec<Walker<'_>> = Vec::with_capacity(folders.len());
    if threads < 2 {
        for f in &folders {
            let mut w = Walker::new(root);
            w.walk(f, &rel_of(root, f))?;
            parts.push(w);
        }
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done: Vec<Result<Vec<(usize, Walker<'_>)>, FilesError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(f) = folders.get(i) else { return Ok(mine) };
                            let mut w = Walker::new(root);
                            w.walk(f, &rel_of(root, f))?;
                            mine.push((i, w));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(io_error(root, io::Error::other("a scan thread panicked")))))
                .collect()
        });
        let mut numbered = Vec::with_capacity(folders.len());
        for d in done {
            numbered.extend(d?);
        }
        numbered.sort_unstable_by_key(|(i, _)| *i);
        parts.extend(numbered.into_iter().map(|(_, w)| w));
    }
    // The collection folder's own files (few, in the order `readdir` gave them) merged in among the folders' paths.
    let mut top = std::mem::take(&mut walker.found);
    walker.found.reserve_exact(parts.iter().map(|p| p.found.len()).sum());
    for part in parts {
        walker.absorb(part);
    }
    if !top.is_empty() {
        top.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        walker.found = merge_by_path(top, std::mem::take(&mut walker.found));
    }
    Ok(walker.finish())
}

/// A top-level folder's path relative to the root (its name, which was checked to be UTF-8).
fn rel_of(root: &Path, folder: &Path) -> String {
    folder.strip_prefix(root).unwrap_or(folder).to_string_lossy().into_owned()
}

/// Two lists sorted by path, as one.
fn merge_by_path(a: Vec<ScannedFile>, b: Vec<ScannedFile>) -> Vec<ScannedFile> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.path <= y.path,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
}

/// A folder's name as it orders among the paths of its siblings: followed by `/`.
fn as_prefix(folder: &Path) -> Vec<u8> {
    let mut name = folder.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
    name.push(b'/');
    name
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
        // This folder's entries in the byte order of the paths they lead to, a folder's name counting as "name/", so
        // that the walk emits paths already sorted (see `finish`).
        let mut listed: Vec<(Vec<u8>, fs::DirEntry, FileType)> = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.unreadable(rel_dir.to_owned(), &e);
                    return Ok(());
                }
            };
            let Ok(ft) = entry.file_type() else { continue };
            let mut order = entry.file_name().into_encoded_bytes();
            if ft.is_dir() {
                order.push(b'/');
            }
            listed.push((order, entry, ft));
        }
        listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (mut name, entry, ft) in listed {
            if ft.is_dir() {
                name.pop();
            }
            let Ok(name_str) = std::str::from_utf8(&name) else {
                self.skip(format!("{rel_dir}/{}", String::from_utf8_lossy(&name)), "the name is not valid UTF-8".to_owned());
                continue;
            };
            let mut rel = String::with_capacity(rel_dir.len() + 1 + name_str.len());
            rel.push_str(rel_dir);
            rel.push('/');
            rel.push_str(name_str);
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
                    Ok(md) => self.regular(rel, &md),
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
    fn regular(&mut self, rel: String, md: &Metadata) {
        match DocKey::parse(&rel) {
            Ok(key) => self.found.push(ScannedFile { key, path: rel, stat: file_stat(md) }),
            Err(e) => self.skip(rel, e.reason),
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
        // The walk emits paths in byte order, which is key order unless a name is not in NFC; keys strictly
        // increasing (the common case) means sorted and no two names with one key, so there is nothing to do.
        if !self.found.windows(2).all(|w| w[0].key < w[1].key) {
            self.found.sort_unstable_by(|a, b| a.key.cmp(&b.key).then_with(|| a.path.cmp(&b.path)));
            let mut files: Vec<ScannedFile> = Vec::with_capacity(self.found.len());
            for f in std::mem::take(&mut self.found) {
                match files.last() {
                    Some(prev) if prev.key == f.key => {
                        let reason = format!("same key as {:?} after Unicode normalisation; rename one of them", prev.path);
                        self.scan.skipped.push(ScanIssue { path: f.path, reason });
                    }
                    _ => files.push(f),
                }
            }
            self.found = files;
        }
        self.scan.files = self.found;
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
