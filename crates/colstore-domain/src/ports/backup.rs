//! `BackupStore`: a repository of immutable, content-addressed objects and backup manifests.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::BoxError;
use crate::{ContentHash, Timestamp, ValidationError};

/// A backup's id: `YYYYMMDDTHHMMSSZ-<8 hex>`, sortable by time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BackupId(String);

impl BackupId {
    /// Validates an id: 1–64 characters of `[A-Za-z0-9_-]`.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] otherwise.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > 64 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ValidationError::new("backup id", s, "use 1-64 characters of letters, digits, '-' and '_'"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a backup repository can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCapabilities {
    /// Create-only writes are enforced by the backend itself (otherwise by a check before writing).
    pub atomic_create: bool,
    /// Writes are fsynced (file://).
    pub durable_writes: bool,
}

/// Whether a put stored new bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutObjectOutcome {
    /// The object was written.
    Stored,
    /// An object with this hash was already there (deduplicated).
    AlreadyPresent,
}

/// An object in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// Its id: the SHA-256 of its (uncompressed) content.
    pub id: ContentHash,
    /// Its size at rest.
    pub size: u64,
    /// When it was written (prune spares young unreferenced objects: they may belong to a backup still running).
    pub written_at: Timestamp,
}

/// What a repository lock is held for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// A backup is writing objects (shared: backups may run side by side).
    Backup,
    /// A prune or delete is removing objects (exclusive).
    Prune,
}

/// A lock object in the repository: who holds it and when it was last refreshed.
///
/// Locks are advisory and written write-then-check: a process writes its lock, then lists the others.
/// A lock not refreshed for longer than the holder's stated lifetime is stale and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoLock {
    /// Unique id (also the object name), `[A-Za-z0-9_-]`.
    pub id: String,
    /// Shared (backup) or exclusive (prune).
    pub kind: LockKind,
    /// Who holds it, e.g. `host:pid`, shown in errors.
    pub holder: String,
    /// When it was last written.
    pub refreshed_at: Timestamp,
}

/// A manifest in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInfo {
    /// The backup's id.
    pub id: BackupId,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written.
    pub written_at: Timestamp,
}

/// The largest manifest [`BackupStore::get_manifest`] reads (256 MiB; a manifest names packs and record chunks, a
/// few hundred bytes per thousand documents, so a real one is far smaller). A larger one is damaged or not colstore's.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

/// Errors of [`BackupStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The object or manifest does not exist.
    #[error("{0} not found in the backup repository")]
    NotFound(String),
    /// A create-only write found something already there.
    #[error("{0} already exists in the backup repository")]
    AlreadyExists(String),
    /// What was read does not hash to its id.
    #[error("object {id} is corrupt: {detail}")]
    Corrupt {
        /// The object.
        id: ContentHash,
        /// What is wrong.
        detail: String,
    },
    /// What is stored is larger than a reader accepts; it was refused before being read whole.
    #[error("{what} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// What, for humans (`manifest ID`).
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Any other failure of the backend.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which adapter.
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
}

/// A backup repository (local folder, S3, memory).
///
/// # Contract
/// - Objects are immutable and named by the SHA-256 of their content; `put_object` of an existing id MUST NOT rewrite it.
/// - A manifest MUST be written create-only and last; a backup without a manifest does not exist.
/// - Reads MUST return exactly the bytes written, or an error.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// What this repository can do.
    fn capabilities(&self) -> BackupCapabilities;

    /// Stores an object under its id unless already present.
    async fn put_object(&self, id: &ContentHash, data: Bytes) -> Result<PutObjectOutcome, BackupError>;

    /// Reads an object whole (objects are bounded in size by the writer).
    ///
    /// # Errors
    /// `NotFound` when missing.
    async fn get_object(&self, id: &ContentHash) -> Result<Bytes, BackupError>;

    /// Whether an object exists.
    async fn has_object(&self, id: &ContentHash) -> Result<bool, BackupError>;

    /// Lists every object.
    async fn list_objects(&self) -> Result<BoxStream<'static, Result<ObjectInfo, BackupError>>, BackupError>;

    /// Deletes an object; deleting a missing object MUST succeed.
    async fn delete_object(&self, id: &ContentHash) -> Result<(), BackupError>;

    /// Writes a manifest, create-only.
    ///
    /// # Errors
    /// `AlreadyExists` when a manifest with this id exists.
    async fn put_manifest(&self, id: &BackupId, data: Bytes) -> Result<(), BackupError>;

    /// Reads a manifest.
    ///
    /// # Errors
    /// `NotFound` when missing; `TooLarge`, without reading it, when it is larger than [`MAX_MANIFEST_BYTES`].
    async fn get_manifest(&self, id: &BackupId) -> Result<Bytes, BackupError>;

    /// Lists manifests, oldest first.
    async fn list_manifests(&self) -> Result<Vec<ManifestInfo>, BackupError>;

    /// Deletes a manifest; deleting a missing manifest MUST succeed.
    async fn delete_manifest(&self, id: &BackupId) -> Result<(), BackupError>;

    /// Writes (or refreshes, overwriting) a lock object.
    async fn put_lock(&self, lock: &RepoLock) -> Result<(), BackupError>;

    /// Lists every lock object, stale or not.
    async fn list_locks(&self) -> Result<Vec<RepoLock>, BackupError>;

    /// Deletes a lock object; deleting a missing lock MUST succeed.
    async fn delete_lock(&self, id: &str) -> Result<(), BackupError>;
}
