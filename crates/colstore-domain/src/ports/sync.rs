//! `SyncStore`: the sync ledger and the embedding cache (PRODUCT §3, §5), kept in the store's database.
//!
//! The ledger records, per document, what was last projected into the vector index and whether the document is
//! `pending`, `synced` or `failed`. Repositories that implement it mark a document `pending` **in the same
//! transaction** as the change that causes it (put, delete), so no change can be missed by a crash.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use crate::{CollectionName, ContentHash, DocKey, EmbedderId, Timestamp, Vector};

/// A document's sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Changed (or deleted) since it was last projected.
    Pending,
    /// The index holds exactly its current chunks.
    Synced,
    /// The last attempt failed; `error` says why. `col sync` retries it.
    Failed,
}

/// What the index holds for a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    /// The content hash the chunks were made from.
    pub content_hash: ContentHash,
    /// How many chunks (points, numbered 0..count) the index holds.
    pub chunk_count: u32,
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The collection.
    pub collection: CollectionName,
    /// The document key.
    pub key: DocKey,
    /// Its state.
    pub state: SyncState,
    /// The document's current content hash; `None` when the document was deleted and the deletion is not yet projected.
    pub current: Option<ContentHash>,
    /// What the index holds for it; `None` when nothing was projected yet.
    pub projected: Option<Projection>,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// The last error, when failed.
    pub error: Option<String>,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

/// Ledger counts (`col status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncCounts {
    /// Pending documents (including pending deletions).
    pub pending: u64,
    /// Synced documents.
    pub synced: u64,
    /// Failed documents.
    pub failed: u64,
}

/// Errors of [`SyncStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The collection does not exist.
    #[error("collection \"{0}\" not found")]
    CollectionNotFound(CollectionName),
    /// A cached vector does not have the embedder's dimension.
    #[error("cached vector has dimension {got}, expected {expected}")]
    DimensionMismatch {
        /// The embedder's dimension.
        expected: u32,
        /// What was given or found.
        got: u32,
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

/// The sync ledger and the embedding cache.
///
/// # Contract
/// - Every put that creates or changes a document, and every delete of a document that has a projection, MUST leave
///   its ledger row `pending` in the same transaction (implemented by the repository that shares this store).
/// - `mark_synced` MUST NOT mark a document synced when its content changed since `expected` was read: the row stays
///   pending and the call returns `false`.
/// - The cache MUST return exactly the vectors stored for (embedder, chunk hash), and never a vector of another embedder.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Ledger rows in `pending` state (and `failed` ones when `include_failed`), ordered by key, after `after`.
    async fn pending(
        &self,
        collection: &CollectionName,
        include_failed: bool,
        after: Option<DocKey>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, SyncError>;

    /// Records that the index now holds `projection` for the document — or, with `expected = None`, that its deletion
    /// was projected (the row goes away). Returns `false`, changing nothing, when the document's current content hash
    /// is no longer `expected`.
    async fn mark_synced(
        &self,
        collection: &CollectionName,
        key: &DocKey,
        expected: Option<ContentHash>,
        projection: Option<Projection>,
    ) -> Result<bool, SyncError>;

    /// `mark_synced` for many documents of one collection, with the same semantics for each item, returning one result
    /// per item in order. Adapters SHOULD do it in one transaction (the default calls `mark_synced` per item).
    async fn mark_synced_batch(
        &self,
        collection: &CollectionName,
        items: Vec<(DocKey, Option<ContentHash>, Option<Projection>)>,
    ) -> Result<Vec<bool>, SyncError> {
        let mut out = Vec::with_capacity(items.len());
        for (key, expected, projection) in items {
            out.push(self.mark_synced(collection, &key, expected, projection).await?);
        }
        Ok(out)
    }

    /// Records a failed attempt with its error.
    async fn mark_failed(&self, collection: &CollectionName, key: &DocKey, error: String) -> Result<(), SyncError>;

    /// Marks every document of the collection pending (settings changed), returning how many.
    async fn mark_all_pending(&self, collection: &CollectionName) -> Result<u64, SyncError>;

    /// Counts per state, for one collection or the whole store.
    async fn counts(&self, collection: Option<CollectionName>) -> Result<SyncCounts, SyncError>;

    /// Failed rows, most recent first.
    async fn recent_errors(&self, collection: Option<CollectionName>, limit: usize) -> Result<Vec<LedgerEntry>, SyncError>;

    /// All ledger rows of a collection, ordered by key, after `after` (for `verify --index`).
    async fn ledger(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<LedgerEntry>, SyncError>;

    /// Cached vectors for the given chunk hashes (same order; `None` where not cached).
    async fn cached_vectors(&self, embedder: &EmbedderId, chunks: Vec<ContentHash>) -> Result<Vec<Option<Vector>>, SyncError>;

    /// Stores vectors in the cache (idempotent).
    async fn cache_vectors(&self, embedder: &EmbedderId, vectors: Vec<(ContentHash, Vector)>) -> Result<(), SyncError>;

    /// Restore: writes ledger rows verbatim (state, projection, attempts, error, time), replacing rows with the same
    /// key, in one transaction. `collection` and `current` of the entries are ignored (the row belongs to
    /// `collection`; the current hash is the document's).
    async fn restore_ledger(&self, collection: &CollectionName, entries: Vec<LedgerEntry>) -> Result<(), SyncError>;
}

/// The job a write enqueues for its collection when it leaves documents pending, defined once for the SQLite
/// repository, the fake and the worker that claims it (`colstore_app::run_sync`).
pub mod sync_job {
    use super::super::JobSpec;
    use crate::CollectionName;

    /// The job's kind.
    pub const KIND: &str = "sync";

    /// Attempts before the job goes `dead` (each attempt that fails is retried later).
    pub const MAX_ATTEMPTS: u32 = 10;

    /// The dedup key: at most one sync job is pending per collection.
    pub fn dedup_key(collection: &CollectionName) -> String {
        format!("sync:{collection}")
    }

    /// The whole job: `{kind: "sync", dedup_key: "sync:<collection>", payload: {"collection": "<collection>"},
    /// max_attempts: 10}`, runnable at once.
    pub fn spec(collection: &CollectionName) -> JobSpec {
        JobSpec {
            kind: KIND.to_owned(),
            dedup_key: Some(dedup_key(collection)),
            payload: serde_json::json!({ "collection": collection.as_str() }),
            max_attempts: MAX_ATTEMPTS,
            run_after: None,
        }
    }

    /// The collection a sync job is for (`payload.collection`), as written by [`spec`].
    pub fn collection(spec: &JobSpec) -> Option<&str> {
        spec.payload.get("collection").and_then(|v| v.as_str())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_sync_job_names_its_collection_and_dedups_per_collection() {
            let c = CollectionName::parse("notes").unwrap();
            let job = spec(&c);
            assert_eq!((job.kind.as_str(), job.dedup_key.as_deref(), job.max_attempts), ("sync", Some("sync:notes"), 10));
            assert_eq!(collection(&job), Some("notes"));
        }
    }
}
