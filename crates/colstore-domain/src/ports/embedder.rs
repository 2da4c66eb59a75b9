//! `Embedder`: turns chunk texts into vectors.

use std::time::Duration;

use async_trait::async_trait;

use super::BoxError;
use crate::{EmbedderId, Vector};

/// Errors of [`Embedder`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The service asked us to slow down; retry after the given delay if any.
    #[error("rate limited by the embedding service{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// The server's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The service returned vectors of the wrong dimension.
    #[error("the embedder returned vectors of dimension {got}, expected {expected}")]
    DimensionMismatch {
        /// The configured dimension.
        expected: u32,
        /// What came back.
        got: u32,
    },
    /// The request cannot succeed as it is (bad model, bad key, input too long); retrying will not help.
    #[error("the embedding request was refused: {0}")]
    Refused(String),
    /// The service is unreachable, timed out or failed; retrying may help.
    #[error("the embedding service is unavailable: {0}")]
    Unavailable(String),
    /// Any other failure of the backend.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which adapter.
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
}

/// An embedding model.
///
/// # Contract
/// - `embed` MUST return exactly one vector per input text, in input order, each of `identity().dimension`.
/// - The same text MUST give the same vector for deterministic embedders; the cache relies on `identity()`
///   changing whenever vectors could change (model or dimension).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Which embedder this is: the embedding cache's key.
    fn identity(&self) -> EmbedderId;

    /// The largest batch one call accepts.
    fn max_batch(&self) -> usize;

    /// Embeds a batch of texts.
    ///
    /// # Errors
    /// `RateLimited` and `Unavailable` are retryable; `Refused` and `DimensionMismatch` are not.
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vector>, EmbedError>;
}
