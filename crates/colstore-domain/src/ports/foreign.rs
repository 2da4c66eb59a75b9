//! `ForeignCollection`: a collection in a vector engine that colstore did not create, read so that `col import
//! qdrant://…/NAME` can adopt it (its objects become documents, their vectors go into the embedding cache).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::IndexError;
use crate::{Dimension, Distance, Vector};

/// What a foreign collection is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignInfo {
    /// The dimension of its vectors.
    pub dimension: Dimension,
    /// Its distance function.
    pub distance: Distance,
    /// How many objects it holds, as the engine counts them (it may change while it is read).
    pub count: u64,
}

/// One object (Qdrant: point; Weaviate: object) of a foreign collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignObject {
    /// Its id as the engine writes it (a UUID, or an integer in Qdrant).
    pub id: String,
    /// Its vector, when asked for; `None` when the object has none.
    pub vector: Option<Vector>,
    /// Its payload (Qdrant) or properties (Weaviate).
    pub payload: Map<String, Value>,
}

/// One page of a foreign collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignPage {
    /// The objects, in the engine's id order.
    pub objects: Vec<ForeignObject>,
    /// Where the next page starts (opaque), `None` at the end.
    pub next: Option<String>,
}

/// A collection in a vector engine that colstore did not create. Read only: nothing here writes.
///
/// # Contract
/// - `page` MUST visit every object exactly once across the pages of one walk, in the engine's id order, whatever
///   the page size, and MUST hold memory to one page.
/// - With `with_vectors`, every object of a collection with vectors MUST come with its vector as stored.
/// - A missing collection is `IndexError::CollectionNotFound`; transient failures are retried inside (as the
///   `VectorIndex` adapters do) and classified the same way.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ForeignCollection: Send + Sync {
    /// The source for messages, without credentials: `qdrant://localhost:6333/articles`.
    fn describe(&self) -> String;

    /// Dimension, distance and count.
    async fn info(&self) -> Result<ForeignInfo, IndexError>;

    /// Up to `limit` objects from `cursor` (`None`: the start), with or without their vectors.
    async fn page(&self, cursor: Option<String>, limit: usize, with_vectors: bool) -> Result<ForeignPage, IndexError>;
}
