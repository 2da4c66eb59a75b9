//! `FsDocumentFiles`: the filesystem storage mode's [`DocumentFiles`] on a real folder (PRODUCT §4, §8).
//!
//! Each collection's documents are plain files under `<base>/<collection>/<key>`, which people may edit. This crate
//! owns only the bytes; the metadata stays in the store's database (`colstore-sqlite`).
//!
//! - **Atomic writes**: `stage` writes `<collection folder>/.colstore-tmp-<uuid>` (created exclusively), hashing on
//!   the way, and `fsync`s it; `commit` creates missing parent folders (`fsync`ing the folder each one was created
//!   in), renames the temporary file over the target, and `fsync`s the target's folder. Temporary files live in the
//!   collection's folder, so the rename never crosses file systems, and a crash leaves every target old or new.
//! - **Path safety**: every path must follow the key rules and may not go through a symlink leading out of the
//!   collection's folder (see `paths.rs`).
//! - **Scans** read no content: one `readdir` per folder and one `lstat` per file (see `scan.rs`).
//!
//! All file system work runs on tokio's blocking threads. Unix is the supported platform (stats carry inode numbers;
//! FIFOs and devices are recognised); elsewhere it compiles with inode 0.

mod paths;
mod scan;
pub mod watch;

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{DocumentFiles, FileStat, FilesError, STAGING_PREFIX, Scan, StagedFile};
use colstore_domain::{CollectionName, ContentHash, ContentHasher, ContentStream, DocKey};
use futures::StreamExt;

use crate::paths::{check_token, io_error, is_missing, not_found, resolve, write_error};

/// Size of the read buffer of `hash` and of the chunks `open` yields, and of the write buffer of `stage`.
pub const IO_CHUNK: usize = 256 * 1024;

/// The documents of every collection as plain files, one folder per collection under a base folder.
///
/// Cheap to clone (an `Arc` inside).
#[derive(Debug, Clone)]
pub struct FsDocumentFiles {
    base: Arc<PathBuf>,
}

impl FsDocumentFiles {
    /// Files under `base`: collection `notes` lives in `base/notes`. Nothing is created until a collection's folder
    /// is needed.
    pub fn new(base: PathBuf) -> Self {
        Self { base: Arc::new(base) }
    }

    /// The base folder.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The folder of `collection`.
    pub fn root(&self, collection: &CollectionName) -> PathBuf {
        self.base.join(collection.as_str())
    }
}

/// Runs blocking file system work on tokio's blocking threads.
async fn blocking<T, F>(what: &Path, f: F) -> Result<T, FilesError>
where
    F: FnOnce() -> Result<T, FilesError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(io_error(what, io::Error::other(format!("the file system task failed: {e}")))),
    }
}

/// The stat the reconcile fast path compares.
pub(crate) fn file_stat(md: &Metadata) -> FileStat {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        FileStat { size: md.len(), mtime_ns: md.mtime().saturating_mul(1_000_000_000).saturating_add(md.mtime_nsec()), inode: md.ino() }
    }
    #[cfg(not(unix))]
    {
        let mtime_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        FileStat { size: md.len(), mtime_ns, inode: 0 }
    }
}

/// Makes a folder's entries (a created, renamed or removed name) durable.
fn fsync_dir(dir: &Path) -> Result<(), FilesError> {
    colstore_durable::sync_dir(dir).map_err(|e| io_error(dir, e))
}

/// Creates the collection's folder (and its parents) when missing, making the new name durable.
fn ensure_root(root: &Path) -> Result<(), FilesError> {
    if root.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(root).map_err(|e| write_error(root, e))?;
    if let Some(parent) = root.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Opens the regular file at `path` for reading without blocking on FIFOs, and returns it with its stat.
fn open_regular(root: &Path, rel: &str, path: &Path) -> Result<(File, FileStat), FilesError> {
    // Sockets and devices fail or misbehave when opened: look first (following links, checked by `resolve`).
    match fs::metadata(path) {
        Ok(md) => not_a_file(rel, &md)?,
        Err(e) if is_missing(&e) => return Err(not_found(root, path)),
        Err(e) => return Err(io_error(path, e)),
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Should the file have been swapped for a FIFO since, `open` must not wait for a writer; fstat checks again.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if is_missing(&e) => return Err(not_found(root, path)),
        Err(e) => return Err(io_error(path, e)),
    };
    let md = file.metadata().map_err(|e| io_error(path, e))?;
    not_a_file(rel, &md)?;
    Ok((file, file_stat(&md)))
}

/// Fails with `Unsafe` when `md` is not a regular file.
fn not_a_file(rel: &str, md: &Metadata) -> Result<(), FilesError> {
    if md.is_file() {
        return Ok(());
    }
    let what = scan::kind(&md.file_type());
    Err(FilesError::Unsafe { path: paths::shown(rel), reason: format!("is a {what}, not a regular file") })
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Hashes the file at `path` whole.
fn hash_file(root: &Path, rel: &str, path: &Path) -> Result<(FileStat, ContentHash, u64), FilesError> {
    let (mut file, stat) = open_regular(root, rel, path)?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; IO_CHUNK];
    let mut size = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf).map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((stat, hasher.finish(), size))
}

/// Removes a file when dropped, unless disarmed: a staged file whose writing failed leaves nothing behind.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// The writer half of `stage`, on a blocking thread: receives chunks until `None` (the end) and makes the file
/// durable. A closed channel without the end marker means the content failed or the caller went away: the temporary
/// file is removed.
fn write_staged(root: &Path, mut rx: tokio::sync::mpsc::Receiver<Option<Bytes>>) -> Result<StagedFile, FilesError> {
    ensure_root(root)?;
    let token = format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let path = root.join(&token);
    let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| write_error(&path, e))?;
    let mut guard = RemoveOnDrop(Some(path.clone()));
    let mut out = BufWriter::with_capacity(IO_CHUNK, file);
    let mut hasher = ContentHasher::new();
    let mut size = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Some(chunk)) => {
                hasher.update(&chunk);
                out.write_all(&chunk).map_err(|e| write_error(&path, e))?;
                size += chunk.len() as u64;
            }
            Some(None) => break,
            None => return Err(io_error(&path, io::Error::other("staging was abandoned"))),
        }
    }
    let file = out.into_inner().map_err(|e| write_error(&path, e.into_error()))?;
    file.sync_all().map_err(|e| write_error(&path, e))?;
    guard.0 = None;
    Ok(StagedFile { token, hash: hasher.finish(), size })
}

/// Creates the folders above `rel` that are missing, one by one, making each new name durable in its parent.
fn make_parents(root: &Path, rel: &str) -> Result<(), FilesError> {
    let mut cur = root.to_path_buf();
    let mut segs = rel.split('/').peekable();
    while let Some(seg) = segs.next() {
        if segs.peek().is_none() {
            break;
        }
        cur.push(seg);
        match fs::create_dir(&cur) {
            Ok(()) => fsync_dir(cur.parent().unwrap_or(root))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !fs::metadata(&cur).is_ok_and(|m| m.is_dir()) {
                    let e =
                        io::Error::new(io::ErrorKind::NotADirectory, "it exists and is not a folder, so the file cannot be put below it");
                    return Err(io_error(&cur, e));
                }
            }
            Err(e) => return Err(write_error(&cur, e)),
        }
    }
    Ok(())
}

/// Moves a staged file over `key`'s path. Blocking.
fn commit_staged(root: &Path, staged: &StagedFile, key: &DocKey) -> Result<FileStat, FilesError> {
    check_token(&staged.token)?;
    let target = resolve(root, key.as_str())?;
    let tmp = root.join(&staged.token);
    match fs::symlink_metadata(&tmp) {
        Ok(_) => {}
        Err(e) if is_missing(&e) => {
            // Committed before (a retry after a crash or a lost answer): fine when the target holds the staged bytes.
            return match hash_file(root, key.as_str(), &target) {
                Ok((stat, hash, _)) if hash == staged.hash => Ok(stat),
                Ok(_) | Err(FilesError::NotFound { .. }) => Err(FilesError::NotFound { path: tmp.display().to_string() }),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(io_error(&tmp, e)),
    }
    make_parents(root, key.as_str())?;
    if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
        let e = io::Error::new(io::ErrorKind::IsADirectory, "a folder has this name; move it away or choose another key");
        return Err(io_error(&target, e));
    }
    fs::rename(&tmp, &target).map_err(|e| write_error(&target, e))?;
    fsync_dir(target.parent().unwrap_or(root))?;
    let md = fs::symlink_metadata(&target).map_err(|e| io_error(&target, e))?;
    Ok(file_stat(&md))
}

/// Removes the file at `rel` and the folders above it that became empty (never `root`). Blocking.
fn remove_file(root: &Path, rel: &str) -> Result<(), FilesError> {
    let target = resolve(root, rel)?;
    match fs::symlink_metadata(&target) {
        Ok(md) if md.is_dir() => {
            return Err(FilesError::Unsafe { path: paths::shown(rel), reason: "is a folder, not a document's file".to_owned() });
        }
        Ok(_) => {}
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(io_error(&target, e)),
    }
    match fs::remove_file(&target) {
        Ok(()) => {}
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(write_error(&target, e)),
    }
    // Prune emptied folders bottom-up; the first that is not empty (or cannot go) ends it.
    let mut dir = target.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            fsync_dir(&d)?;
            break;
        }
        if fs::remove_dir(&d).is_err() {
            fsync_dir(&d)?;
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Ok(())
}

/// Staged files in `root`, sorted. Blocking.
fn list_leftovers(root: &Path) -> Result<Vec<String>, FilesError> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_error(root, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(root, e))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with(STAGING_PREFIX) && entry.file_type().is_ok_and(|t| t.is_file()) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

#[async_trait]
impl DocumentFiles for FsDocumentFiles {
    fn location(&self, collection: &CollectionName) -> String {
        self.root(collection).display().to_string()
    }

    async fn create_root(&self, collection: &CollectionName) -> Result<(), FilesError> {
        let root = self.root(collection);
        blocking(&root.clone(), move || ensure_root(&root)).await
    }

    async fn stage(&self, collection: &CollectionName, mut content: ContentStream) -> Result<StagedFile, FilesError> {
        let root = self.root(collection);
        let (tx, rx) = tokio::sync::mpsc::channel::<Option<Bytes>>(4);
        let writer = {
            let root = root.clone();
            tokio::task::spawn_blocking(move || write_staged(&root, rx))
        };
        let mut failed = None;
        while let Some(item) = content.next().await {
            match item {
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) => {
                    if tx.send(Some(chunk)).await.is_err() {
                        // The writer stopped; its error comes from the join below.
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none() {
            let _ = tx.send(None).await;
        }
        drop(tx);
        let written = match writer.await {
            Ok(r) => r,
            Err(e) => Err(io_error(&root, io::Error::other(format!("the file system task failed: {e}")))),
        };
        match failed {
            Some(e) => Err(FilesError::ContentRead(e)),
            None => written,
        }
    }

    async fn commit(&self, collection: &CollectionName, staged: &StagedFile, key: &DocKey) -> Result<FileStat, FilesError> {
        let root = self.root(collection);
        let (staged, key) = (staged.clone(), key.clone());
        blocking(&root.clone(), move || commit_staged(&root, &staged, &key)).await
    }

    async fn discard(&self, collection: &CollectionName, token: &str) -> Result<(), FilesError> {
        check_token(token)?;
        let path = self.root(collection).join(token);
        blocking(&path.clone(), move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(write_error(&path, e)),
        })
        .await
    }

    async fn leftovers(&self, collection: &CollectionName) -> Result<Vec<String>, FilesError> {
        let root = self.root(collection);
        blocking(&root.clone(), move || list_leftovers(&root)).await
    }

    async fn remove(&self, collection: &CollectionName, path: &str) -> Result<(), FilesError> {
        let root = self.root(collection);
        let rel = path.to_owned();
        blocking(&root.clone(), move || remove_file(&root, &rel)).await
    }

    async fn stat(&self, collection: &CollectionName, path: &str) -> Result<Option<FileStat>, FilesError> {
        let root = self.root(collection);
        let rel = path.to_owned();
        blocking(&root.clone(), move || {
            let target = resolve(&root, &rel)?;
            match fs::metadata(&target) {
                Ok(md) => not_a_file(&rel, &md).map(|()| Some(file_stat(&md))),
                Err(e) if is_missing(&e) => match not_found(&root, &target) {
                    FilesError::NotFound { .. } => Ok(None),
                    root_missing => Err(root_missing),
                },
                Err(e) => Err(io_error(&target, e)),
            }
        })
        .await
    }

    async fn open(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentStream), FilesError> {
        let root = self.root(collection);
        let rel = path.to_owned();
        let (file, stat, target) = blocking(&root.clone(), move || {
            let target = resolve(&root, &rel)?;
            let (file, stat) = open_regular(&root, &rel, &target)?;
            Ok((file, stat, target))
        })
        .await?;
        let target = Arc::new(target);
        let chunks = futures::stream::unfold(Some(file), move |state| {
            let target = target.clone();
            async move {
                let mut file = state?;
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; IO_CHUNK];
                    let n = read_full(&mut file, &mut buf)?;
                    buf.truncate(n);
                    Ok::<_, io::Error>((file, buf))
                })
                .await
                .unwrap_or_else(|e| Err(io::Error::other(format!("the file system task failed: {e}"))));
                match read {
                    Ok((_, buf)) if buf.is_empty() => None,
                    Ok((file, buf)) => Some((Ok(Bytes::from(buf)), Some(file))),
                    Err(e) => Some((Err(io::Error::new(e.kind(), format!("{}: {e}", target.display()))), None)),
                }
            }
        });
        Ok((stat, chunks.boxed()))
    }

    async fn hash(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentHash, u64), FilesError> {
        let root = self.root(collection);
        let rel = path.to_owned();
        blocking(&root.clone(), move || {
            let target = resolve(&root, &rel)?;
            hash_file(&root, &rel, &target)
        })
        .await
    }

    async fn scan(&self, collection: &CollectionName) -> Result<Scan, FilesError> {
        let root = self.root(collection);
        blocking(&root.clone(), move || scan::scan(&root)).await
    }

    async fn remove_root(&self, collection: &CollectionName) -> Result<(), FilesError> {
        let root = self.root(collection);
        blocking(&root.clone(), move || match fs::remove_dir(&root) {
            Ok(()) => match root.parent() {
                Some(parent) => fsync_dir(parent),
                None => Ok(()),
            },
            // Missing is fine; anything still inside keeps the folder.
            Err(e) if is_missing(&e) || matches!(e.kind(), io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists) => Ok(()),
            Err(e) => Err(write_error(&root, e)),
        })
        .await
    }
}
