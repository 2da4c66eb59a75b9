//! colstore's domain: entities, validated newtypes and the ports every adapter implements.
//!
//! This crate knows nothing about SQL, HTTP, files or the terminal. It holds:
//! - validated newtypes that cross every port ([`CollectionName`], [`DocKey`], [`Tag`], [`ContentHash`], ...),
//! - the entities of PRODUCT §3 ([`Collection`], [`DocumentMeta`], [`Point`], ...),
//! - pure logic shared by adapters and fakes ([`Filter::matches`], [`ListQuery::matches`], [`PointId::derive`]),
//! - the six ports in [`ports`], each with its own error enum.
//!
//! Architecture invariant: this crate has no I/O dependency. Adapters depend on it; it depends on no adapter.

mod chunk;
mod collection;
mod doc_filter;
mod document;
mod error;
mod filter;
mod hash;
mod keyword;
mod names;
mod point;
pub mod ports;
#[cfg(test)]
mod props;
mod query;
mod retry;
mod time;

pub use chunk::{Chunk, chunk_text};
pub use collection::{
    ChunkingSettings, Collection, CollectionSettings, CollectionSpec, Dimension, Distance, EmbedderId, FusionSettings, VectorSettings,
};
pub use doc_filter::DocFilter;
pub use document::{
    Content, ContentChanged, ContentStream, DocumentMeta, Metadata, NewDocument, PutOutcome, PutStatus, Tags, Version, checked_content,
};
pub use error::ValidationError;
pub use filter::{Condition, Filter, MatchValue, Range};
pub use hash::{ContentHash, ContentHasher};
pub use keyword::{KeywordClause, KeywordQuery, snippet, token_spans, tokens};
pub use names::{CollectionName, DocKey, FieldPath, StoreId, Tag};
pub use point::{IndexName, Payload, Point, PointId, ScoredPoint, Vector};
pub use query::{Cursor, ListQuery, Page, SortField, SortOrder, TimeRange};
pub use retry::RetryPolicy;
pub use time::Timestamp;
