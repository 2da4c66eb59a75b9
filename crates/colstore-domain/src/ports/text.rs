//! `TextIndex`: full-text (keyword) search over each document's chunks (PRODUCT §9).
//!
//! The index is derived data, like the vector index, but kept in the store: every change to a document marks it
//! for (re)indexing **in the same transaction** (repositories do it with triggers, so no write path can forget), and
//! [`TextIndex::catch_up`] indexes what is marked (a repository may also index right there, in the writing
//! transaction). A search catches up first, so it always sees the current text.

use async_trait::async_trait;

use super::RepoError;
use crate::{CollectionName, DocFilter, DocKey, KeywordQuery};

/// One keyword hit: a chunk of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordHit {
    /// The document.
    pub key: DocKey,
    /// The chunk (as [`chunk_text`](crate::chunk_text) numbers them with the collection's chunking settings).
    pub chunk: u32,
    /// Relevance (BM25, higher is better; only comparable within one query).
    pub score: f64,
}

/// What [`TextIndex::check`] found: the index compared with the documents it was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TextCheck {
    /// Documents whose rows were made from their current content.
    pub indexed: u64,
    /// Documents marked for [`TextIndex::catch_up`] (not a problem: the next search or sync indexes them).
    pub pending: u64,
    /// Documents neither indexed nor marked: rows missing, made from other content, or not as many as recorded.
    /// A search would answer with text they do not have, or miss them. Sorted by key.
    pub drift: Vec<DocKey>,
    /// Rows of documents that no longer exist (in the whole store, not only the collection checked).
    pub orphans: u64,
    /// The index's own structure check failed (FTS5 `integrity-check`): why. The whole index is then rebuilt by a
    /// repair.
    pub damaged: Option<String>,
}

impl TextCheck {
    /// Whether the index answers exactly for the documents (pending ones aside).
    pub fn is_clean(&self) -> bool {
        self.drift.is_empty() && self.orphans == 0 && self.damaged.is_none()
    }
}

/// Keyword search over a collection's chunks.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TextIndex: Send + Sync {
    /// Indexes every document of the collection changed since it was last indexed (new, changed, or re-chunked by a
    /// settings change); deleted documents are already gone. Returns how many documents it indexed.
    ///
    /// Text that is not UTF-8 is indexed as no chunks. A document that changes while it is indexed is indexed again
    /// by the next call, never left with text it no longer has.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`; `ReadOnly` when the store cannot be written.
    async fn catch_up(&self, collection: &CollectionName) -> Result<u64, RepoError>;

    /// How many documents of the collection wait for [`TextIndex::catch_up`].
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn not_indexed(&self, collection: &CollectionName) -> Result<u64, RepoError>;

    /// Compares the collection's rows with its documents (and looks for rows of no document in the whole store).
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn check(&self, collection: &CollectionName) -> Result<TextCheck, RepoError>;

    /// Makes what [`TextIndex::check`] found right: drifted documents are marked for indexing, orphan rows removed, a
    /// damaged index emptied and every document marked. Returns how many documents it marked; the caller then runs
    /// [`TextIndex::catch_up`]. A clean index is left as it is.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`; `ReadOnly` when the store cannot be written.
    async fn repair(&self, collection: &CollectionName) -> Result<u64, RepoError>;

    /// The `limit` best chunks for the query (any clause matches; BM25 ranking), best first, ties by key then chunk,
    /// only of documents the filter matches. An empty query finds nothing.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn keyword_search(
        &self,
        collection: &CollectionName,
        query: &KeywordQuery,
        filter: &DocFilter,
        limit: usize,
    ) -> Result<Vec<KeywordHit>, RepoError>;
}
