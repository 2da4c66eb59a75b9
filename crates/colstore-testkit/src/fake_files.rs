//! `InMemoryFiles`: a faithful in-memory [`DocumentFiles`], with hooks that play the user editing files behind the
//! store's back.
//!
//! Each collection's folder is a map from path to bytes and a [`FileStat`], plus the folders that exist (created by
//! commits and external writes, pruned by `remove`). Every write (stage, or an external write) takes the next value
//! of a fake clock as its modification time; staging a file or an editor-style save takes a fresh inode number, and a
//! commit keeps the staged file's inode, as `rename(2)` does. Staged files live in the folder like the real adapter's
//! temporary files: scans never report them, `leftovers` lists them, and they keep the folder from being removed.
//!
//! The lock is never held across an `.await`: `stage` reads its stream first and then inserts under the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{DocumentFiles, FileStat, FilesError, STAGING_PREFIX, Scan, ScanIssue, ScannedFile, StagedFile};
use colstore_domain::{CollectionName, ContentHash, ContentHasher, ContentStream, DocKey};
use futures::{StreamExt, stream};

/// Largest chunk [`DocumentFiles::open`] yields.
const READ_CHUNK: usize = 64 * 1024;

/// The first fake modification time: 2024-01-01T00:00:00Z in nanoseconds.
const FIRST_MTIME_NS: i64 = 1_704_067_200_000_000_000;

/// How far the fake clock moves per write: one second, so stats never collide by accident.
const MTIME_STEP_NS: i64 = 1_000_000_000;

/// Folder names a scan never enters (as the real adapter).
const IGNORED_DIRS: [&str; 2] = [".git", ".colstore"];

/// A [`DocumentFiles`] kept in memory, for use-case tests and as the reference the conformance suite is checked
/// against.
///
/// Besides the port, it offers hooks to simulate what people and other programs do to the folder
/// ([`InMemoryFiles::external_write`], [`InMemoryFiles::external_rename`], [`InMemoryFiles::set_unreadable`], ...) and
/// a counter of content reads ([`InMemoryFiles::content_reads`]) so tests can assert that a fast path reads nothing.
/// Hooks panic on mistakes in the test (a path that is not valid, a rename of a missing file).
pub struct InMemoryFiles {
    state: Mutex<State>,
    reads: AtomicU64,
}

#[derive(Default)]
struct State {
    roots: BTreeMap<CollectionName, Root>,
    /// Modification times handed out so far (the next one is `FIRST_MTIME_NS + clock * MTIME_STEP_NS`).
    clock: i64,
    /// Inode numbers handed out so far.
    inodes: u64,
}

#[derive(Default)]
struct Root {
    /// Regular files by path.
    files: BTreeMap<String, Entry>,
    /// Staged files by token (their name in the root).
    staged: BTreeMap<String, Entry>,
    /// Folders below the root, by path.
    dirs: BTreeSet<String>,
    /// Entries that are not regular files (FIFOs, sockets, ...), by path, with the reason a scan gives.
    specials: BTreeMap<String, String>,
    /// Files and folders that cannot be read or listed.
    unreadable: BTreeSet<String>,
    /// When set, every write fails with `ReadOnly`.
    read_only: bool,
}

#[derive(Clone)]
struct Entry {
    bytes: Bytes,
    stat: FileStat,
}

impl Default for InMemoryFiles {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// The next fake modification time.
    fn tick(&mut self) -> i64 {
        self.clock += 1;
        FIRST_MTIME_NS + self.clock * MTIME_STEP_NS
    }

    /// A fresh inode number.
    fn inode(&mut self) -> u64 {
        self.inodes += 1;
        self.inodes
    }

    /// A new file's entry: new mtime, new inode.
    fn fresh(&mut self, bytes: Bytes) -> Entry {
        let stat = FileStat { size: bytes.len() as u64, mtime_ns: self.tick(), inode: self.inode() };
        Entry { bytes, stat }
    }

    fn root(&self, collection: &CollectionName) -> Result<&Root, FilesError> {
        self.roots.get(collection).ok_or_else(|| root_missing(collection))
    }

    fn root_mut(&mut self, collection: &CollectionName) -> Result<&mut Root, FilesError> {
        self.roots.get_mut(collection).ok_or_else(|| root_missing(collection))
    }
}

impl Root {
    /// Whether `path` is `dir` or below it.
    fn at_or_under(path: &str, dir: &str) -> bool {
        path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
    }

    /// Whether a folder above `path` cannot be listed (so the file cannot be reached).
    fn behind_unreadable_dir(&self, path: &str) -> bool {
        self.unreadable.iter().any(|u| u != path && Self::at_or_under(path, u))
    }

    /// Whether anything (file, folder, special entry, staged file) is strictly below `dir`.
    fn has_children(&self, dir: &str) -> bool {
        let below = |p: &String| p.len() > dir.len() && Self::at_or_under(p, dir);
        self.files.keys().any(below) || self.dirs.iter().any(below) || self.specials.keys().any(below)
    }

    /// Fails when `path` is a folder or another non-regular entry.
    fn not_a_file(&self, path: &str) -> Result<(), FilesError> {
        if self.dirs.contains(path) {
            return Err(unsafe_path(path, "is a folder, not a file"));
        }
        if let Some(reason) = self.specials.get(path) {
            return Err(unsafe_path(path, &format!("is not a regular file ({reason})")));
        }
        Ok(())
    }

    /// The regular file at `path`, as a read would find it.
    fn readable(&self, collection: &CollectionName, path: &str) -> Result<&Entry, FilesError> {
        if self.behind_unreadable_dir(path) || self.unreadable.contains(path) {
            return Err(permission_denied(collection, path));
        }
        self.not_a_file(path)?;
        self.files.get(path).ok_or_else(|| FilesError::NotFound { path: display(collection, path) })
    }

    /// Fails with `ReadOnly` when writes are switched off.
    fn writable(&self, collection: &CollectionName, what: &str) -> Result<(), FilesError> {
        if self.read_only {
            return Err(FilesError::ReadOnly {
                path: display(collection, what),
                source: io::Error::new(io::ErrorKind::ReadOnlyFilesystem, "read-only file system (simulated)"),
            });
        }
        Ok(())
    }

    /// Makes room for a file at `path`: its parent folders exist afterwards. Fails like the OS when a parent is a file
    /// or `path` is a folder.
    fn prepare_parents(&mut self, collection: &CollectionName, path: &str) -> Result<(), FilesError> {
        for parent in ancestors(path) {
            if self.files.contains_key(parent) || self.specials.contains_key(parent) {
                return Err(FilesError::Io {
                    path: display(collection, path),
                    source: io::Error::new(io::ErrorKind::NotADirectory, format!("{parent} is a file, not a folder")),
                });
            }
        }
        if self.dirs.contains(path) {
            return Err(FilesError::Io {
                path: display(collection, path),
                source: io::Error::new(io::ErrorKind::IsADirectory, "a folder has this name"),
            });
        }
        if self.specials.contains_key(path) {
            return Err(FilesError::Io {
                path: display(collection, path),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "a special file has this name"),
            });
        }
        for parent in ancestors(path) {
            self.dirs.insert(parent.to_owned());
        }
        Ok(())
    }

    /// Removes the folders above `path` that are now empty (never the root).
    fn prune(&mut self, path: &str) {
        let mut parents: Vec<&str> = ancestors(path).collect();
        parents.reverse();
        for dir in parents {
            if self.has_children(dir) {
                break;
            }
            self.dirs.remove(dir);
            self.unreadable.remove(dir);
        }
    }
}

/// The folders above `path`, outermost first (`a/b/c.md` → `a`, `a/b`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

fn location_of(collection: &CollectionName) -> String {
    format!("memory:/{collection}")
}

fn display(collection: &CollectionName, path: &str) -> String {
    format!("{}/{path}", location_of(collection))
}

fn root_missing(collection: &CollectionName) -> FilesError {
    FilesError::RootMissing { root: location_of(collection) }
}

fn unsafe_path(path: &str, reason: &str) -> FilesError {
    FilesError::Unsafe { path: path.to_owned(), reason: reason.to_owned() }
}

fn permission_denied(collection: &CollectionName, path: &str) -> FilesError {
    FilesError::Io {
        path: display(collection, path),
        source: io::Error::new(io::ErrorKind::PermissionDenied, "permission denied (simulated)"),
    }
}

/// Checks a path argument with the key rules (relative, `/`-separated, no `.`/`..`/empty segments, no NUL or `\`).
/// A path in another Unicode form than NFC is fine: normalising changes none of these properties.
fn check_path(path: &str) -> Result<(), FilesError> {
    DocKey::parse(path).map(|_| ()).map_err(|e| FilesError::Unsafe { path: path.escape_debug().to_string(), reason: e.reason })
}

/// Checks a path given to a hook: anything a folder could hold (control characters and `\\` included, so scans can
/// be shown names they must skip), but relative and without `.`, `..` or empty segments.
fn check_hook_path(hook: &str, path: &str) {
    let bad =
        path.is_empty() || path.starts_with('/') || path.contains('\0') || path.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    assert!(!bad, "{hook}: {path:?} is not a relative path below the collection's folder");
}

/// Checks a staged file's token: a plain name in the root starting with [`STAGING_PREFIX`].
fn check_token(token: &str) -> Result<(), FilesError> {
    if !token.starts_with(STAGING_PREFIX) || token.contains(['/', '\\', '\0']) || token == "." || token == ".." {
        return Err(unsafe_path(token, &format!("is not a staged file name (it must start with {STAGING_PREFIX:?} and name no folder)")));
    }
    Ok(())
}

/// Whether a scan skips `path` silently (inside `.git` or `.colstore`, or a temporary file of ours).
fn ignored(path: &str) -> bool {
    path.split('/').rev().skip(1).any(|seg| IGNORED_DIRS.contains(&seg))
        || path.rsplit('/').next().is_some_and(|n| n.starts_with(STAGING_PREFIX))
}

fn chunks(bytes: Bytes) -> ContentStream {
    let parts: Vec<Result<Bytes, io::Error>> =
        (0..bytes.len()).step_by(READ_CHUNK).map(|start| Ok(bytes.slice(start..bytes.len().min(start + READ_CHUNK)))).collect();
    stream::iter(parts).boxed()
}

impl InMemoryFiles {
    /// No collection folders yet.
    pub fn new() -> Self {
        Self { state: Mutex::new(State::default()), reads: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not turn every later call into a second panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry `open` and `hash` read: a staged file (a file in the folder like any other, as on a real disk) or a
    /// readable regular file.
    fn readable(&self, collection: &CollectionName, path: &str) -> Result<Entry, FilesError> {
        let st = self.lock();
        let root = st.root(collection)?;
        match root.staged.get(path) {
            Some(staged) => Ok(staged.clone()),
            None => Ok(root.readable(collection, path)?.clone()),
        }
    }

    /// How many times `hash` or `open` read a file's content so far.
    pub fn content_reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Sets the content-read counter back to zero.
    pub fn reset_content_reads(&self) {
        self.reads.store(0, Ordering::SeqCst);
    }

    /// Writes a file in place as a user or a program would (`echo > file`): the collection's folder and parent
    /// folders are created when missing; an existing file keeps its inode and gets the new bytes and a new
    /// modification time; a new file gets a fresh inode.
    ///
    /// # Panics
    /// When `path` is not a valid relative path or a parent is a file.
    pub fn external_write(&self, collection: &CollectionName, path: &str, bytes: impl Into<Bytes>) {
        self.write_behind(collection, path, bytes.into(), false);
    }

    /// Saves a file the way editors do (write a temporary file, rename it over the old one): new bytes, new
    /// modification time and a fresh inode.
    ///
    /// # Panics
    /// As [`InMemoryFiles::external_write`].
    pub fn external_replace(&self, collection: &CollectionName, path: &str, bytes: impl Into<Bytes>) {
        self.write_behind(collection, path, bytes.into(), true);
    }

    fn write_behind(&self, collection: &CollectionName, path: &str, bytes: Bytes, new_inode: bool) {
        check_hook_path("external write", path);
        let mut st = self.lock();
        let mtime = st.tick();
        let fresh_inode = st.inode();
        let root = st.roots.entry(collection.clone()).or_default();
        root.prepare_parents(collection, path).unwrap_or_else(|e| panic!("external write: {e}"));
        let inode = match root.files.get(path) {
            Some(old) if !new_inode => old.stat.inode,
            _ => fresh_inode,
        };
        let stat = FileStat { size: bytes.len() as u64, mtime_ns: mtime, inode };
        root.files.insert(path.to_owned(), Entry { bytes, stat });
    }

    /// Replaces a file's bytes but keeps its stat (size, mtime and inode), as a tool that restores timestamps could:
    /// the case the reconcile fast path cannot see. Keep the length equal to stay faithful.
    ///
    /// # Panics
    /// When there is no such file.
    pub fn external_write_keeping_stat(&self, collection: &CollectionName, path: &str, bytes: impl Into<Bytes>) {
        let mut st = self.lock();
        let entry = st
            .roots
            .get_mut(collection)
            .and_then(|r| r.files.get_mut(path))
            .unwrap_or_else(|| panic!("external write keeping stat: no file {path:?} in {collection}"));
        entry.bytes = bytes.into();
    }

    /// Removes a file as a user would, and nothing else (its folders stay, as with `rm`). A missing file is fine.
    pub fn external_remove(&self, collection: &CollectionName, path: &str) {
        if let Some(root) = self.lock().roots.get_mut(collection) {
            root.files.remove(path);
        }
    }

    /// Moves a file as `mv` would: same bytes, same inode, same modification time; parent folders of the target are
    /// created, the source's folders stay.
    ///
    /// # Panics
    /// When there is no file at `from`, or `to` is not a valid path.
    pub fn external_rename(&self, collection: &CollectionName, from: &str, to: &str) {
        check_hook_path("external rename", to);
        let mut st = self.lock();
        let root = st.roots.get_mut(collection).unwrap_or_else(|| panic!("external rename: no folder for {collection}"));
        let entry = root.files.remove(from).unwrap_or_else(|| panic!("external rename: no file {from:?} in {collection}"));
        root.prepare_parents(collection, to).unwrap_or_else(|e| panic!("external rename: {e}"));
        root.files.insert(to.to_owned(), entry);
    }

    /// Gives a file a new modification time without changing its bytes (`touch`).
    ///
    /// # Panics
    /// When there is no such file.
    pub fn touch(&self, collection: &CollectionName, path: &str) {
        let mut st = self.lock();
        let mtime = st.tick();
        let entry = st
            .roots
            .get_mut(collection)
            .and_then(|r| r.files.get_mut(path))
            .unwrap_or_else(|| panic!("touch: no file {path:?} in {collection}"));
        entry.stat.mtime_ns = mtime;
    }

    /// Creates a folder (and its parents), as `mkdir -p` would.
    ///
    /// # Panics
    /// When `path` is not a valid relative path or a parent is a file.
    pub fn external_mkdir(&self, collection: &CollectionName, path: &str) {
        check_hook_path("external mkdir", path);
        let mut st = self.lock();
        let root = st.roots.entry(collection.clone()).or_default();
        root.prepare_parents(collection, path).unwrap_or_else(|e| panic!("external mkdir: {e}"));
        root.dirs.insert(path.to_owned());
    }

    /// Puts an entry that is not a regular file at `path` (a FIFO, a socket, a device, a symlink leaving the folder);
    /// scans skip it with `reason`, reads fail with `Unsafe`.
    ///
    /// # Panics
    /// When `path` is not a valid relative path or a parent is a file.
    pub fn external_special(&self, collection: &CollectionName, path: &str, reason: &str) {
        check_hook_path("external special", path);
        let mut st = self.lock();
        let root = st.roots.entry(collection.clone()).or_default();
        root.prepare_parents(collection, path).unwrap_or_else(|e| panic!("external special: {e}"));
        root.specials.insert(path.to_owned(), reason.to_owned());
    }

    /// Makes the file or folder at `path` unreadable (`chmod 000`): scans report it in `unreadable` (and nothing
    /// below a folder), `hash` and `open` fail with `Io` (`PermissionDenied`), and so does `stat` below a folder.
    pub fn set_unreadable(&self, collection: &CollectionName, path: &str) {
        self.lock().roots.entry(collection.clone()).or_default().unreadable.insert(path.to_owned());
    }

    /// Undoes [`InMemoryFiles::set_unreadable`].
    pub fn set_readable(&self, collection: &CollectionName, path: &str) {
        if let Some(root) = self.lock().roots.get_mut(collection) {
            root.unreadable.remove(path);
        }
    }

    /// Makes every write to the collection's folder (`stage`, `commit`, `discard`, `remove`) fail with `ReadOnly`,
    /// or allows them again.
    pub fn set_read_only(&self, collection: &CollectionName, read_only: bool) {
        self.lock().roots.entry(collection.clone()).or_default().read_only = read_only;
    }

    /// Removes the collection's folder with everything in it (`rm -rf`, or an unmounted disk).
    pub fn external_remove_root(&self, collection: &CollectionName) {
        self.lock().roots.remove(collection);
    }

    /// The bytes of the file at `path`, if there is one (no read is counted).
    pub fn contents(&self, collection: &CollectionName, path: &str) -> Option<Bytes> {
        self.lock().roots.get(collection).and_then(|r| r.files.get(path)).map(|e| e.bytes.clone())
    }

    /// The paths of every regular file in the collection's folder, staged files excluded, in byte order.
    pub fn paths(&self, collection: &CollectionName) -> Vec<String> {
        self.lock().roots.get(collection).map(|r| r.files.keys().cloned().collect()).unwrap_or_default()
    }

    /// Whether the collection's folder exists.
    pub fn root_exists(&self, collection: &CollectionName) -> bool {
        self.lock().roots.contains_key(collection)
    }

    /// Whether a folder exists at `path` below the collection's folder.
    pub fn dir_exists(&self, collection: &CollectionName, path: &str) -> bool {
        self.lock().roots.get(collection).is_some_and(|r| r.dirs.contains(path))
    }
}

#[async_trait]
impl DocumentFiles for InMemoryFiles {
    fn location(&self, collection: &CollectionName) -> String {
        location_of(collection)
    }

    async fn create_root(&self, collection: &CollectionName) -> Result<(), FilesError> {
        self.lock().roots.entry(collection.clone()).or_default();
        Ok(())
    }

    async fn stage(&self, collection: &CollectionName, mut content: ContentStream) -> Result<StagedFile, FilesError> {
        if let Some(root) = self.lock().roots.get(collection) {
            root.writable(collection, STAGING_PREFIX)?;
        }
        let mut buf = BytesMut::new();
        let mut hasher = ContentHasher::new();
        while let Some(chunk) = content.next().await {
            let chunk = chunk.map_err(FilesError::ContentRead)?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        let hash = hasher.finish();
        let mut st = self.lock();
        let entry = st.fresh(buf.freeze());
        let size = entry.stat.size;
        let root = st.roots.entry(collection.clone()).or_default();
        root.writable(collection, STAGING_PREFIX)?;
        let token = format!("{STAGING_PREFIX}{}", entry.stat.inode);
        root.staged.insert(token.clone(), entry);
        Ok(StagedFile { token, hash, size })
    }

    async fn commit(&self, collection: &CollectionName, staged: &StagedFile, key: &DocKey) -> Result<FileStat, FilesError> {
        check_token(&staged.token)?;
        let path = key.as_str();
        let mut st = self.lock();
        let root = st.root_mut(collection)?;
        root.writable(collection, path)?;
        if !root.staged.contains_key(&staged.token) {
            // Committed before (a retry after a crash or a lost answer): fine when the target holds the staged bytes.
            return match root.files.get(path) {
                Some(e) if ContentHash::of(&e.bytes) == staged.hash => Ok(e.stat),
                _ => Err(FilesError::NotFound { path: display(collection, &staged.token) }),
            };
        }
        root.prepare_parents(collection, path)?;
        let entry = root.staged.remove(&staged.token).expect("checked above");
        let stat = entry.stat;
        root.files.insert(path.to_owned(), entry);
        Ok(stat)
    }

    async fn discard(&self, collection: &CollectionName, token: &str) -> Result<(), FilesError> {
        check_token(token)?;
        let mut st = self.lock();
        let Some(root) = st.roots.get_mut(collection) else { return Ok(()) };
        root.writable(collection, token)?;
        root.staged.remove(token);
        Ok(())
    }

    async fn leftovers(&self, collection: &CollectionName) -> Result<Vec<String>, FilesError> {
        Ok(self.lock().roots.get(collection).map(|r| r.staged.keys().cloned().collect()).unwrap_or_default())
    }

    async fn remove(&self, collection: &CollectionName, path: &str) -> Result<(), FilesError> {
        check_path(path)?;
        let mut st = self.lock();
        let Some(root) = st.roots.get_mut(collection) else { return Ok(()) };
        root.writable(collection, path)?;
        if root.behind_unreadable_dir(path) {
            return Err(permission_denied(collection, path));
        }
        root.not_a_file(path)?;
        if root.files.remove(path).is_some() {
            root.prune(path);
        }
        Ok(())
    }

    async fn stat(&self, collection: &CollectionName, path: &str) -> Result<Option<FileStat>, FilesError> {
        check_path(path)?;
        let st = self.lock();
        let root = st.root(collection)?;
        if root.behind_unreadable_dir(path) {
            return Err(permission_denied(collection, path));
        }
        if let Some(staged) = root.staged.get(path) {
            return Ok(Some(staged.stat));
        }
        root.not_a_file(path)?;
        Ok(root.files.get(path).map(|e| e.stat))
    }

    async fn open(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentStream), FilesError> {
        check_path(path)?;
        let entry = self.readable(collection, path)?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok((entry.stat, chunks(entry.bytes)))
    }

    async fn hash(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentHash, u64), FilesError> {
        check_path(path)?;
        let entry = self.readable(collection, path)?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok((entry.stat, ContentHash::of(&entry.bytes), entry.bytes.len() as u64))
    }

    async fn scan(&self, collection: &CollectionName) -> Result<Scan, FilesError> {
        let st = self.lock();
        let root = st.root(collection)?;
        let mut scan = Scan::default();
        // Folders that cannot be listed are reported once, and nothing below them.
        let hidden = |p: &str| root.unreadable.iter().any(|u| root.dirs.contains(u) && Root::at_or_under(p, u) && p != u);
        for u in &root.unreadable {
            let exists = root.dirs.contains(u) || root.files.contains_key(u);
            if exists && !hidden(u) && !ignored(u) {
                scan.unreadable.push(ScanIssue { path: u.clone(), reason: "permission denied".to_owned() });
            }
        }
        for (path, reason) in &root.specials {
            if !hidden(path) && !ignored(path) {
                scan.skipped.push(ScanIssue { path: path.clone(), reason: reason.clone() });
            }
        }
        let mut found: Vec<ScannedFile> = Vec::with_capacity(root.files.len());
        // A folder whose name cannot be part of a key is skipped once, as the real adapter does, not file by file.
        let mut bad_dirs = BTreeSet::new();
        for (path, entry) in &root.files {
            if hidden(path) || root.unreadable.contains(path) || ignored(path) {
                continue;
            }
            match DocKey::parse(path) {
                Ok(key) => found.push(ScannedFile { key, path: path.clone(), stat: entry.stat }),
                Err(e) => match ancestors(path).find_map(|d| DocKey::parse(d).err().map(|e| (d, e))) {
                    Some((dir, e)) => {
                        if bad_dirs.insert(dir) {
                            let reason = format!("the folder's name cannot be part of a key: {}", e.reason);
                            scan.skipped.push(ScanIssue { path: dir.to_owned(), reason });
                        }
                    }
                    None => scan.skipped.push(ScanIssue { path: path.clone(), reason: e.reason }),
                },
            }
        }
        // Sort by key, then by path in byte order, so the first of two names with one NFC form wins.
        found.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.path.cmp(&b.path)));
        for f in found {
            match scan.files.last() {
                Some(prev) if prev.key == f.key => scan.skipped.push(ScanIssue {
                    reason: format!("same key as {:?} after Unicode normalisation; rename one of them", prev.path),
                    path: f.path,
                }),
                _ => scan.files.push(f),
            }
        }
        scan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(scan)
    }

    async fn remove_root(&self, collection: &CollectionName) -> Result<(), FilesError> {
        let mut st = self.lock();
        let Some(root) = st.roots.get(collection) else { return Ok(()) };
        let empty = root.files.is_empty() && root.staged.is_empty() && root.dirs.is_empty() && root.specials.is_empty();
        if empty {
            st.roots.remove(collection);
        }
        Ok(())
    }
}
