//! `StoreSnapshot`: a consistent, read-only view of a whole store at one moment, for backup and export.
//!
//! A snapshot is taken with [`CollectionRepo::snapshot`](super::CollectionRepo::snapshot) and shows the store as it was
//! when it was taken, however long it is read and whatever other processes write meanwhile. Restores go the other way
//! through [`CollectionRepo::restore_documents`](super::CollectionRepo::restore_documents) and
//! [`SyncStore::restore_ledger`](super::SyncStore::restore_ledger), which write rows verbatim.

use async_trait::async_trait;
use bytes::Bytes;

use super::{LedgerEntry, RepoError};
use crate::{Collection, CollectionName, ContentHash, DocKey, DocumentMeta, EmbedderId, Vector};

/// A store frozen at one moment.
///
/// # Contract
/// - Every method MUST answer from the same moment: writes committed after the snapshot was taken are invisible.
/// - Pages are in key order (byte order of the key), after `after` (exclusive), at most `limit` long; an empty page
///   means the end.
/// - Dropping the snapshot releases what it holds (a read transaction, a copy).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait StoreSnapshot: Send + Sync {
    /// Every collection, by name.
    async fn collections(&self) -> Result<Vec<Collection>, RepoError>;

    /// A page of a collection's documents.
    ///
    /// # Errors
    /// `CollectionNotFound` when the collection did not exist at that moment.
    async fn documents(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<DocumentMeta>, RepoError>;

    /// The whole content with this hash.
    ///
    /// # Errors
    /// `Corrupt`-style backend errors when the stored bytes do not decode or do not match the hash.
    async fn content(&self, hash: &ContentHash) -> Result<Bytes, RepoError>;

    /// The contents with these hashes, in the same order (a hash may repeat): what [`content`](Self::content) gives
    /// for each, read in as few round trips as the backend allows. Backups read a page of documents at a time this way.
    ///
    /// # Errors
    /// As [`content`](Self::content), for the first hash that fails.
    async fn contents(&self, hashes: Vec<ContentHash>) -> Result<Vec<Bytes>, RepoError> {
        let mut out = Vec::with_capacity(hashes.len());
        for h in &hashes {
            out.push(self.content(h).await?);
        }
        Ok(out)
    }

    /// The content with this hash as a stream of pieces, so a content of any size can be read with bounded memory.
    /// Backups and exports read contents larger than a few MiB this way.
    ///
    /// # Contract
    /// The stream yields exactly the bytes [`content`](Self::content) would give, in pieces of a few MiB at most, and
    /// stays readable after the call returns (it does not borrow the snapshot). The caller checks the hash of what it
    /// read; a backend that finds its bytes differ from the hash (a file changed behind its back) MAY end the stream
    /// with an error instead. The default reads the whole content at once: right for small stores and fakes only.
    ///
    /// # Errors
    /// As [`content`](Self::content).
    async fn content_stream(&self, hash: &ContentHash) -> Result<crate::ContentStream, RepoError> {
        let bytes = self.content(hash).await?;
        Ok(Box::pin(futures::stream::iter([Ok(bytes)])))
    }

    /// A page of a collection's sync ledger (including pending deletions).
    async fn ledger(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<LedgerEntry>, RepoError>;

    /// Cached vectors for these chunks, in the same order (`None` where the cache has none).
    async fn cached_vectors(&self, embedder: &EmbedderId, chunks: Vec<ContentHash>) -> Result<Vec<Option<Vector>>, RepoError>;
}
