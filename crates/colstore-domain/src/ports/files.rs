//! Filesystem storage mode (PRODUCT §4): [`DocumentFiles`], where the bytes of documents live as plain files that
//! people edit, and [`FileCatalog`], what the store's database knows about those files (the metadata side).
//!
//! The split is the mode's design: metadata (keys, hashes, versions, metadata, tags, the sync ledger) stays in the
//! store's SQLite database in both modes; only the place of the bytes differs. `colstore-sqlite` implements
//! `CollectionRepo` for both modes and, in filesystem mode, writes and reads content through a `DocumentFiles`
//! (`colstore-fs` on a real folder, `InMemoryFiles` in tests). Reconciliation (`colstore-app`) compares a
//! [`DocumentFiles::scan`] with [`FileCatalog::catalog`] and applies the difference with
//! [`FileCatalog::apply_changes`].
//!
//! Paths: every `path` here is relative to the collection's folder, `/`-separated, as found on disk. A file's key is
//! its path in Unicode NFC ([`DocKey::parse`] normalises), so `path` differs from the key only for names stored in
//! another normalisation form.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::RepoError;
use crate::{CollectionName, ContentHash, ContentStream, DocKey};

/// Prefix of the temporary files [`DocumentFiles::stage`] writes. Scans never report them.
pub const STAGING_PREFIX: &str = ".colstore-tmp-";

/// What the reconcile fast path compares: a file whose size, modification time and inode are unchanged is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Inode number (0 where the platform has none).
    pub inode: u64,
}

/// A regular file found by a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedFile {
    /// Its key: the path in NFC.
    pub key: DocKey,
    /// Its path on disk, relative to the collection's folder.
    pub path: String,
    /// Its stat.
    pub stat: FileStat,
}

/// Something a scan did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanIssue {
    /// The path, relative to the collection's folder (lossy UTF-8 for names that are not UTF-8).
    pub path: String,
    /// Why, for humans ("symlink leaves the collection folder", "FIFO", "permission denied", ...).
    pub reason: String,
}

/// The result of walking a collection's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// Regular files (and symlinks to regular files inside the folder), sorted by key, keys unique.
    pub files: Vec<ScannedFile>,
    /// Entries skipped on purpose: unsafe or unsupported names and file types, duplicate keys after normalisation.
    pub skipped: Vec<ScanIssue>,
    /// Files and folders that exist but could not be read or listed. Documents at or under these paths MUST NOT be
    /// treated as deleted.
    pub unreadable: Vec<ScanIssue>,
}

impl Scan {
    /// Whether a document whose file was not found may be hidden by an unreadable entry (the path itself, or a
    /// folder above it).
    pub fn may_hide(&self, path: &str) -> bool {
        self.unreadable
            .iter()
            .any(|u| path == u.path || (path.starts_with(u.path.as_str()) && path.as_bytes().get(u.path.len()) == Some(&b'/')))
    }
}

/// A file written by [`DocumentFiles::stage`] and not yet in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// The temporary file's name inside the collection's folder (starts with [`STAGING_PREFIX`]).
    pub token: String,
    /// SHA-256 of what was written.
    pub hash: ContentHash,
    /// Bytes written.
    pub size: u64,
}

/// Errors of [`DocumentFiles`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// The collection's folder does not exist.
    #[error("the folder {root} does not exist")]
    RootMissing {
        /// The folder, for humans.
        root: String,
    },
    /// No file at this path.
    #[error("{path}: no such file")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The path is not allowed (`..`, absolute, NUL, a symlink leaving the folder, not a regular file).
    #[error("{path}: {reason}")]
    Unsafe {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading the content given to `stage` failed.
    #[error("reading the content failed: {0}")]
    ContentRead(std::io::Error),
    /// The folder cannot be written.
    #[error("{path} cannot be written: {source}")]
    ReadOnly {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Any other I/O failure, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// One folder per collection holding its documents as plain files, written atomically.
///
/// # Contract
/// - `stage` + `commit` is the only way content is written: `stage` writes a new temporary file (name starting with
///   [`STAGING_PREFIX`]) inside the collection's folder and makes it durable; `commit` renames it over the target
///   and makes the rename durable (fsync of the folder). A crash leaves every target either old or new.
/// - `commit` is idempotent: when the staged file is gone and the target has the staged hash, it succeeds.
/// - A staged file is a file in the collection's folder: `stat`, `open` and `hash` accept its token as a path (the
///   repository reads a staged file in the moment between its transaction and the rename, and judges leftovers by age).
/// - Paths MUST stay inside the collection's folder: `..`, absolute paths, NUL and symlinks leaving the folder are
///   `Unsafe`.
/// - `scan` never follows a symlink out of the folder, never reads file contents, skips FIFOs, sockets and device
///   files with a reason, never reports staged files, and reports unreadable entries instead of omitting them.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DocumentFiles: Send + Sync {
    /// The collection's folder, for messages.
    fn location(&self, collection: &CollectionName) -> String;

    /// Creates the collection's folder (and its parents) when missing.
    async fn create_root(&self, collection: &CollectionName) -> Result<(), FilesError>;

    /// Writes `content` to a new temporary file in the collection's folder (creating the folder when missing),
    /// hashing it on the way, and fsyncs it. Nothing visible changes.
    async fn stage(&self, collection: &CollectionName, content: ContentStream) -> Result<StagedFile, FilesError>;

    /// Moves a staged file to `key`'s path, replacing any file there, creating parent folders, and fsyncs the
    /// folder. Returns the new file's stat.
    async fn commit(&self, collection: &CollectionName, staged: &StagedFile, key: &DocKey) -> Result<FileStat, FilesError>;

    /// Removes a staged file that will not be committed. A missing file is fine.
    async fn discard(&self, collection: &CollectionName, token: &str) -> Result<(), FilesError>;

    /// Staged files left in the collection's folder (by a crash between `stage` and `commit`).
    async fn leftovers(&self, collection: &CollectionName) -> Result<Vec<String>, FilesError>;

    /// Removes the file at `path` and then the folders above it that became empty (never the collection's folder),
    /// and fsyncs. A missing file is fine.
    async fn remove(&self, collection: &CollectionName, path: &str) -> Result<(), FilesError>;

    /// The stat of the file at `path`, or `None` when there is none.
    async fn stat(&self, collection: &CollectionName, path: &str) -> Result<Option<FileStat>, FilesError>;

    /// Opens the file at `path` for reading, with its stat at opening.
    async fn open(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentStream), FilesError>;

    /// Reads the file at `path` whole and returns its stat, SHA-256 and size.
    async fn hash(&self, collection: &CollectionName, path: &str) -> Result<(FileStat, ContentHash, u64), FilesError>;

    /// Walks the collection's folder.
    ///
    /// # Errors
    /// `RootMissing` when the folder does not exist.
    async fn scan(&self, collection: &CollectionName) -> Result<Scan, FilesError>;

    /// Removes the collection's folder when it is empty (after its documents were deleted). Anything else in it
    /// (files that are not documents) is left, and so is the folder.
    async fn remove_root(&self, collection: &CollectionName) -> Result<(), FilesError>;
}

/// What the store's database knows about one file-backed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The document's key.
    pub key: DocKey,
    /// The file's path (equal to the key unless stored in another Unicode form).
    pub path: String,
    /// The content hash on record.
    pub content_hash: ContentHash,
    /// The size on record.
    pub size: u64,
    /// The file's stat when it was last written or reconciled; `None` when unknown (forces a hash).
    pub stat: Option<FileStat>,
}

/// One change found by reconciliation. Every change but `Added` names the hash the plan saw (`expected`), and is
/// skipped as a conflict when the document changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum FileChange {
    /// A new file: a new document (empty metadata, no tags), pending sync.
    Added {
        /// The new key.
        key: DocKey,
        /// Its path on disk.
        path: String,
        /// Its hash.
        hash: ContentHash,
        /// Its size.
        size: u64,
        /// Its stat.
        stat: FileStat,
    },
    /// A file whose content changed: a new version, pending sync.
    Modified {
        /// The key.
        key: DocKey,
        /// Its path on disk.
        path: String,
        /// The hash on record.
        expected: ContentHash,
        /// The new hash.
        hash: ContentHash,
        /// The new size.
        size: u64,
        /// The new stat.
        stat: FileStat,
    },
    /// A file that is gone: the document is deleted (its points are removed by the next sync).
    Deleted {
        /// The key.
        key: DocKey,
        /// The hash on record.
        expected: ContentHash,
    },
    /// The same content under a new path: the document's key changes, keeping metadata, tags, version and
    /// creation time; no re-embedding (the vectors are in the cache).
    Renamed {
        /// The old key.
        from: DocKey,
        /// The new key.
        to: DocKey,
        /// The new path on disk.
        path: String,
        /// The hash on record (and on disk).
        expected: ContentHash,
        /// The file's stat.
        stat: FileStat,
    },
    /// The stat changed but the content did not (a touch, a copy back): only the stat on record is refreshed.
    Touched {
        /// The key.
        key: DocKey,
        /// Its path on disk.
        path: String,
        /// The hash on record (and on disk).
        expected: ContentHash,
        /// The new stat.
        stat: FileStat,
    },
}

/// What [`FileCatalog::apply_changes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Changes applied.
    pub applied: u64,
    /// Changes skipped because the document changed after the plan was made (keys as in the change: `to` for
    /// renames).
    pub conflicts: Vec<DocKey>,
}

/// The metadata side of the filesystem mode, in the store's database.
///
/// # Contract
/// - `catalog` lists every document of the collection, sorted by key, from one snapshot.
/// - `apply_changes` applies all changes in one transaction, with the ledger and the sync job updated as a put or a
///   delete would, and skips (reporting) changes whose `expected` hash is no longer on record, or an `Added` key that
///   now exists.
/// - `recover` finishes or undoes file writes that a crash interrupted, so that afterwards every document's file
///   holds its recorded content (or was edited by someone else, which reconcile finds). It is idempotent.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait FileCatalog: Send + Sync {
    /// Every document of the collection with what is on record about its file.
    ///
    /// # Errors
    /// `CollectionNotFound`.
    async fn catalog(&self, collection: &CollectionName) -> Result<Vec<CatalogEntry>, RepoError>;

    /// Applies reconciliation changes in one transaction.
    ///
    /// # Errors
    /// `CollectionNotFound`; any error leaves nothing applied.
    async fn apply_changes(&self, collection: &CollectionName, changes: Vec<FileChange>) -> Result<ApplyReport, RepoError>;

    /// Finishes interrupted file writes of every collection; returns how many files it put in place or removed.
    async fn recover(&self) -> Result<u64, RepoError>;
}
