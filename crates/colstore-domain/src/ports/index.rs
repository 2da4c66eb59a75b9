//! `VectorIndex`: a projection of chunks into a vector engine (embedded, Qdrant, Weaviate).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use crate::{Filter, IndexName, Payload, Point, PointId, ScoredPoint, Vector, VectorSettings};

/// What an index can do (ADAPTERS.md), so use cases batch and filter within limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexCapabilities {
    /// Most points one upsert may carry (use cases split larger batches).
    pub max_batch_points: usize,
    /// Largest request body in bytes (Qdrant: 32 MiB by default).
    pub max_request_bytes: usize,
    /// `should` clauses are supported in filters.
    pub filter_should: bool,
    /// `count` is exact (Qdrant with `exact: true`, the embedded index) rather than approximate.
    pub exact_count: bool,
    /// The engine can snapshot a collection server-side (used by flush and clone).
    pub snapshots: bool,
}

/// The health of an index backend (`col status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexHealth {
    /// Backend kind: `embedded`, `qdrant`, `weaviate`.
    pub backend: String,
    /// Server version, when it reports one.
    pub version: Option<String>,
    /// Whether it answered healthily.
    pub ok: bool,
    /// Details when not ok.
    pub detail: Option<String>,
}

/// A page request over all points of a collection, in id order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScrollRequest {
    /// Start at this id (inclusive); `None` starts at the beginning.
    pub from: Option<PointId>,
    /// Page size, at least 1.
    pub limit: usize,
    /// Only points whose payload matches.
    pub filter: Option<Filter>,
    /// Whether to return vectors.
    pub with_vectors: bool,
}

/// A point as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPoint {
    /// Its id.
    pub id: PointId,
    /// Its payload.
    pub payload: Payload,
    /// Its vector when asked for (cosine vectors may come back normalised).
    pub vector: Option<Vector>,
}

/// One page of points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrollPage {
    /// Points in id order.
    pub points: Vec<StoredPoint>,
    /// The first id of the next page, `None` at the end (Qdrant's `next_page_offset`).
    pub next: Option<PointId>,
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The query vector.
    pub vector: Vector,
    /// How many hits.
    pub limit: usize,
    /// Only points whose payload matches.
    pub filter: Option<Filter>,
}

/// Errors of [`VectorIndex`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The index collection does not exist.
    #[error("index collection \"{0}\" not found")]
    CollectionNotFound(IndexName),
    /// Vectors do not have the collection's dimension, or an existing collection has other settings.
    #[error("dimension mismatch: the index expects {expected}, got {got}")]
    DimensionMismatch {
        /// What the collection holds.
        expected: u32,
        /// What was given.
        got: u32,
    },
    /// The filter uses something this backend cannot express.
    #[error("unsupported filter: {0}")]
    UnsupportedFilter(String),
    /// The backend asked us to slow down.
    #[error("rate limited by the index")]
    RateLimited,
    /// The backend is unreachable or failing; retrying may help.
    #[error("the index is unavailable: {0}")]
    Unavailable(String),
    /// Authentication failed.
    #[error("the index refused our credentials: {0}")]
    Unauthorized(String),
    /// Any other failure of the backend.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which adapter.
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
}

/// A vector engine holding the points of one or more collections. It is a projection: everything in it can be
/// rebuilt from the store's embedding cache.
///
/// # Contract
/// - Writes MUST be durable when they return (Qdrant: `wait=true`; Weaviate: every batch item checked).
/// - Upserting an existing id MUST replace the point. Ids are deterministic UUIDs ([`PointId::derive`]).
/// - Filters MUST follow [`Filter::matches`] semantics; a backend that cannot express one MUST return `UnsupportedFilter`
///   rather than ignore it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// What this index can do.
    fn capabilities(&self) -> IndexCapabilities;

    /// Whether the backend answers. MUST answer promptly: one attempt per request, no retries (`col status` asks
    /// it, and an unreachable server is a status, not a wait).
    async fn health(&self) -> Result<IndexHealth, IndexError>;

    /// Creates the collection if missing. MUST be idempotent.
    ///
    /// # Errors
    /// MUST return `DimensionMismatch` when it exists with another dimension.
    async fn ensure_collection(&self, name: &IndexName, settings: &VectorSettings) -> Result<(), IndexError>;

    /// Drops a collection, returning whether it existed. Dropping a missing collection MUST succeed with `false`.
    async fn drop_collection(&self, name: &IndexName) -> Result<bool, IndexError>;

    /// Inserts or replaces points, durably.
    ///
    /// # Errors
    /// `CollectionNotFound`; `DimensionMismatch` (then no point of the batch may be half-written).
    async fn upsert(&self, name: &IndexName, points: Vec<Point>) -> Result<(), IndexError>;

    /// Deletes points by id; missing ids are ignored.
    async fn delete(&self, name: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError>;

    /// Deletes every point matching the filter, returning how many went when the backend says.
    async fn delete_by_filter(&self, name: &IndexName, filter: &Filter) -> Result<Option<u64>, IndexError>;

    /// Pages through points in id order.
    async fn scroll(&self, name: &IndexName, request: ScrollRequest) -> Result<ScrollPage, IndexError>;

    /// Counts points, optionally filtered.
    async fn count(&self, name: &IndexName, filter: Option<Filter>) -> Result<u64, IndexError>;

    /// Nearest neighbours, best first.
    async fn search(&self, name: &IndexName, request: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError>;

    /// Makes everything acknowledged durable on disk (Qdrant: snapshot then delete it), describing each step taken.
    async fn flush(&self, name: &IndexName) -> Result<Vec<String>, IndexError>;
}

/// Finds the vector index a collection projects into: the store's default, or the one its settings name
/// ([`CollectionSettings::index`](crate::CollectionSettings::index)). Remote engines are reached with the API keys the
/// composition root read; an index is built once per target and shared.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IndexRouter: Send + Sync {
    /// The canonical name of the store's default index (`embedded`, `qdrant://HOST:PORT`, …).
    fn default_target(&self) -> String;

    /// The canonical form of a target a user typed (`qdrant://h` becomes `qdrant://h:6333`), so equal targets compare
    /// equal.
    ///
    /// # Errors
    /// `Backend` with what is wrong and the accepted forms.
    fn canonical(&self, target: &str) -> Result<String, IndexError>;

    /// The index `target` names; `None` is the store's default.
    ///
    /// # Errors
    /// When the target is malformed or its client cannot be built. Nothing is sent to a server here.
    async fn route(&self, target: Option<String>) -> Result<Arc<dyn VectorIndex>, IndexError>;
}
