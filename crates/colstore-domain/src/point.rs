//! Points: what a vector index holds for one chunk.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CollectionName, ContentHash, DocKey, StoreId, ValidationError};

/// An embedding.
pub type Vector = Vec<f32>;

/// A point id: a deterministic UUIDv5 (PRODUCT §3), because Qdrant and Weaviate accept only UUIDs (and Qdrant u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PointId(pub Uuid);

impl PointId {
    /// The id of chunk `chunk` of document `key` in `collection` of the store `store`.
    ///
    /// UUIDv5 in the store's namespace over `collection \0 key \0 chunk`: the same inputs always give the same id,
    /// so re-running a sync overwrites instead of duplicating, and two stores never collide on a shared server.
    pub fn derive(store: StoreId, collection: &CollectionName, key: &DocKey, chunk: u32) -> Self {
        let mut name = Vec::with_capacity(collection.as_str().len() + key.as_str().len() + 12);
        name.extend_from_slice(collection.as_str().as_bytes());
        name.push(0);
        name.extend_from_slice(key.as_str().as_bytes());
        name.push(0);
        name.extend_from_slice(chunk.to_string().as_bytes());
        Self(Uuid::new_v5(&store.0, &name))
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lowercase hyphenated, as Qdrant and Weaviate return them.
        self.0.hyphenated().fmt(f)
    }
}

/// The name of a collection inside a vector index: `cs_<short store id>_<collection>`, so many stores can share one server.
/// Adapters with stricter rules (Weaviate class names) map it further, reversibly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexName(String);

impl IndexName {
    /// The namespaced name of `collection` in store `store`.
    pub fn for_collection(store: StoreId, collection: &CollectionName) -> Self {
        Self(format!("cs_{}_{}", store.short(), collection.as_str()))
    }

    /// Accepts an existing name (for adapters listing what a server holds).
    ///
    /// # Errors
    /// Returns a [`ValidationError`] unless the name is `[A-Za-z0-9_-]{1,255}`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > 255 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ValidationError::new("index name", s, "use 1-255 characters of A-Z, a-z, 0-9, '_' and '-'"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IndexName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a point carries besides its vector. Serialised flat, so filters address metadata as `metadata.<field>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The collection.
    pub collection: CollectionName,
    /// The document key.
    pub key: DocKey,
    /// The chunk number, from 0.
    pub chunk: u32,
    /// The document's content hash when the chunk was made.
    pub content_hash: ContentHash,
    /// The chunk's text hash (the embedding cache key).
    pub chunk_hash: ContentHash,
    /// Selected metadata of the document.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A point to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Its id.
    pub id: PointId,
    /// Its vector.
    pub vector: Vector,
    /// Its payload.
    pub payload: Payload,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    /// The point's id.
    pub id: PointId,
    /// Higher is closer, whatever the distance (adapters negate distances where needed).
    pub score: f32,
    /// The point's payload.
    pub payload: Payload,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_deterministic_and_distinct() {
        let s = StoreId(Uuid::from_u128(7));
        let c = CollectionName::parse("notes").unwrap();
        let k = DocKey::parse("a.md").unwrap();
        let a = PointId::derive(s, &c, &k, 0);
        assert_eq!(a, PointId::derive(s, &c, &k, 0));
        assert_ne!(a, PointId::derive(s, &c, &k, 1));
        assert_ne!(a, PointId::derive(StoreId(Uuid::from_u128(8)), &c, &k, 0));
        // "a" + "b\0c" must not collide with "a\0b" + "c": names cannot hold NUL, so the separator is unambiguous.
        assert_eq!(a.0.get_version_num(), 5);
        assert_eq!(a.to_string(), a.to_string().to_lowercase());
    }

    #[test]
    fn index_names_are_namespaced() {
        let s = StoreId(Uuid::from_u128(0xabcdef12_0000_0000_0000_000000000000));
        let n = IndexName::for_collection(s, &CollectionName::parse("notes").unwrap());
        assert_eq!(n.as_str(), "cs_abcdef12_notes");
    }
}
