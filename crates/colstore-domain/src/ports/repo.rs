//! `CollectionRepo`: collections, documents, their content and metadata.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::{BoxError, StoreSnapshot};
use crate::{
    Collection, CollectionName, CollectionSettings, CollectionSpec, ContentHash, ContentStream, DocKey, DocumentMeta, ListQuery,
    NewDocument, Page, PutOutcome, Timestamp, Version,
};

/// What a repository can do, so use cases and the conformance suite adapt instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoCapabilities {
    /// Equal content is stored once (sqlite mode). When false, every document has its own bytes (filesystem mode).
    pub content_addressed: bool,
    /// Content may be compressed at rest, so stored bytes can be below logical bytes.
    pub compression: bool,
    /// Content can change behind the repository's back (files edited by people) and needs reconciliation.
    pub external_edits: bool,
}

/// What `col add` saw of a source file when it last wrote the file's document: with it, the next `col add` of an
/// unchanged file neither reads nor hashes it (PRODUCT §3, issue 14: a no-op re-run of 100 000 files under a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the epoch (0 where the platform has none): a write that puts the old
    /// modification time back still changes it.
    pub ctime_ns: i64,
    /// Inode number (0 where the platform has none): an editor's save-by-rename gives a new one.
    pub inode: u64,
    /// A digest of the add's options that shape the document besides the bytes (metadata, tags, front matter).
    pub options: u64,
    /// When the file was looked at (the system clock, as file times are), nanoseconds since the epoch.
    pub seen_at_ns: i64,
}

impl SourceStamp {
    /// A file changed within this long before it was looked at may change again within the same tick of its
    /// modification time (the kernel updates file times in ticks of a few milliseconds; some file systems keep two
    /// seconds), so its stamp vouches for nothing (git's "racily clean" entries).
    pub const SETTLE_NS: i64 = 2_000_000_000;

    /// Whether `self`, recorded when the document was written, shows that the file now seen as `now` holds the
    /// same bytes, so reading it again would change nothing. Same stat and options, and the file had settled when
    /// it was recorded.
    pub fn vouches_for(&self, now: &SourceStamp) -> bool {
        let same = (self.size, self.mtime_ns, self.ctime_ns, self.inode, self.options)
            == (now.size, now.mtime_ns, now.ctime_ns, now.inode, now.options);
        same && self.mtime_ns.max(self.ctime_ns) < self.seen_at_ns.saturating_sub(Self::SETTLE_NS)
    }
}

/// A [`SourceStamp`] to record for the document a file was just written into, as that write left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The document.
    pub key: DocKey,
    /// Its version after the write.
    pub version: Version,
    /// Its content hash after the write.
    pub content_hash: ContentHash,
    /// What was seen of the file.
    pub stamp: SourceStamp,
}

/// Storage figures (`col stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StorageStats {
    /// Collections counted.
    pub collections: u64,
    /// Documents counted.
    pub documents: u64,
    /// Sum of the documents' sizes.
    pub logical_bytes: u64,
    /// Distinct contents referenced by those documents.
    pub distinct_contents: u64,
    /// Sum of the sizes of those distinct contents (after dedup, before compression).
    pub unique_bytes: u64,
    /// Bytes those contents occupy at rest (after dedup and compression).
    pub stored_bytes: u64,
    /// Stored contents that no document references (what `gc` would remove). Store-wide.
    pub garbage_contents: u64,
}

/// What a garbage collection removed (or would remove, in a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GcReport {
    /// Unreferenced contents removed.
    pub contents_removed: u64,
    /// Bytes at rest freed.
    pub bytes_freed: u64,
}

/// A document whose content no longer hashes to its recorded hash, or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptDocument {
    /// Its collection.
    pub collection: CollectionName,
    /// Its key.
    pub key: DocKey,
    /// The recorded hash.
    pub expected: ContentHash,
    /// The hash of what is actually stored, when it could be read.
    pub actual: Option<ContentHash>,
    /// What is wrong, for humans.
    pub problem: String,
}

/// One step of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyEvent {
    /// Some content was read and re-hashed correctly.
    Checked {
        /// Documents this content stands for.
        documents: u64,
        /// Bytes re-hashed.
        bytes: u64,
    },
    /// A document is corrupt.
    Corrupt(CorruptDocument),
}

/// The events of a verification, in no particular order.
pub type VerifyStream = BoxStream<'static, Result<VerifyEvent, RepoError>>;

/// Errors of [`CollectionRepo`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The collection does not exist.
    #[error("collection \"{0}\" not found")]
    CollectionNotFound(CollectionName),
    /// The collection already exists.
    #[error("collection \"{0}\" already exists")]
    CollectionExists(CollectionName),
    /// The document does not exist.
    #[error("document \"{key}\" not found in collection \"{collection}\"")]
    DocumentNotFound {
        /// Its collection.
        collection: CollectionName,
        /// Its key.
        key: DocKey,
    },
    /// A batch named the same key twice.
    #[error("key \"{0}\" appears twice in one batch")]
    DuplicateKey(DocKey),
    /// Reading content failed: the content given to a put (nothing of the batch was written), or, in filesystem
    /// mode, a document's file whose record is stale: `NotFound` when the file is gone, a
    /// [`ContentChanged`](crate::ContentChanged) when it was edited outside colstore. Reconciling records either.
    #[error("reading the content of \"{key}\" failed: {source}")]
    ContentRead {
        /// The document whose content failed.
        key: DocKey,
        /// The cause.
        source: std::io::Error,
    },
    /// Stored data does not match its hash or cannot be decoded.
    #[error("stored content of \"{key}\" is corrupt: {detail}")]
    Corrupt {
        /// The document.
        key: DocKey,
        /// What is wrong.
        detail: String,
    },
    /// The store cannot be written (read-only file system or permissions).
    #[error("the store is read-only: {0}")]
    ReadOnly(String),
    /// Another process holds what this operation needs, beyond the busy timeout.
    #[error("the store is busy: {0}")]
    Busy(String),
    /// The operation is not supported by this repository.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Any other failure of the backend.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which adapter.
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
}

/// Where collections, documents, their content and metadata live (PRODUCT §3, §4).
///
/// # Contract (all methods)
/// - Every method that writes MUST be atomic: after a crash at any point, each document is entirely there
///   (old or new version) or absent, and the store opens.
/// - Reads MUST NOT block on writers and MUST see a consistent snapshot per call.
/// - Listing MUST NOT load content.
/// - Errors MUST use the semantic variants (`CollectionNotFound`, `DocumentNotFound`, ...) so use cases can react.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CollectionRepo: Send + Sync {
    /// What this repository can do.
    fn capabilities(&self) -> RepoCapabilities;

    /// Creates a collection.
    ///
    /// # Errors
    /// MUST return `CollectionExists` when the name is taken, leaving the existing collection unchanged.
    async fn create_collection(&self, spec: CollectionSpec) -> Result<Collection, RepoError>;

    /// Reads one collection, with its current document count and logical bytes.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound` when it does not exist.
    async fn collection(&self, name: &CollectionName) -> Result<Collection, RepoError>;

    /// Replaces a collection's settings (vector and chunking settings), returning the updated collection.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound` when it does not exist.
    async fn update_settings(&self, name: &CollectionName, settings: CollectionSettings) -> Result<Collection, RepoError>;

    /// Lists all collections, sorted by name.
    async fn list_collections(&self) -> Result<Vec<Collection>, RepoError>;

    /// Deletes a collection and all its documents in one transaction, returning how many documents went.
    /// Content no longer referenced becomes garbage for [`CollectionRepo::gc`].
    ///
    /// # Errors
    /// MUST return `CollectionNotFound` when it does not exist.
    async fn delete_collection(&self, name: &CollectionName) -> Result<u64, RepoError>;

    /// Writes a batch of documents, all or nothing, and reports one outcome per document in input order.
    ///
    /// # Contract
    /// - A put replaces content, metadata and tags. Identical content, metadata and tags MUST leave the document
    ///   untouched (`Unchanged`, same version, same `updated_at`); any change MUST bump the version by one.
    /// - The content hash MUST be the SHA-256 of exactly the bytes given. Streamed content MUST NOT be held in memory whole.
    /// - Content-addressed repositories MUST store equal content once, across documents and collections.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`, `DuplicateKey` (same key twice in the batch), or `ContentRead`
    /// (a stream failed); in every error case nothing of the batch is written.
    async fn put_batch(&self, collection: &CollectionName, docs: Vec<NewDocument>) -> Result<Vec<PutOutcome>, RepoError>;

    /// Reads a document's description without its content.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound` or `DocumentNotFound`.
    async fn document(&self, collection: &CollectionName, key: &DocKey) -> Result<DocumentMeta, RepoError>;

    /// Opens a document's content as a stream, together with its description (both from one snapshot).
    ///
    /// # Errors
    /// MUST return `CollectionNotFound` or `DocumentNotFound`. A stream item MUST be `Err` (never wrong bytes silently)
    /// when stored data cannot be decoded.
    async fn read_content(&self, collection: &CollectionName, key: &DocKey) -> Result<(DocumentMeta, ContentStream), RepoError>;

    /// Reads several documents whole, each with its description: one answer per key, in input order (a key given
    /// twice is answered twice). The hot paths that need many documents' text (sync, the re-projection after a
    /// restore) read a batch with one call instead of one [`read_content`](Self::read_content) per document.
    ///
    /// # Contract
    /// - Each answer MUST equal what `read_content` of that key gives at that moment, collected: `Missing` for a key
    ///   that is no document, `TooLarge` (the description only, no bytes read) for a document of more than
    ///   `max_bytes`, and a per-document `Err` where `read_content` or its stream would fail (`Corrupt`,
    ///   `ContentRead`).
    /// - Repositories with snapshots SHOULD answer the whole batch from one, and SHOULD do it in a few statements.
    ///   The default reads one document at a time through `read_content`: right for fakes, slow for a database.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`; other failures of the whole batch (the backend) as usual.
    async fn read_documents(
        &self,
        collection: &CollectionName,
        keys: Vec<DocKey>,
        max_bytes: u64,
    ) -> Result<Vec<Result<ReadDocument, RepoError>>, RepoError> {
        read_one_by_one(self, collection, keys, max_bytes).await
    }

    /// Deletes documents in one transaction, returning the keys that existed (in input order); missing keys are skipped.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn delete_documents(&self, collection: &CollectionName, keys: Vec<DocKey>) -> Result<Vec<DocKey>, RepoError>;

    /// Lists documents matching `query`, sorted and paged as it asks, without loading content.
    /// Results MUST equal filtering, sorting and paging all documents with [`ListQuery::matches`] and [`ListQuery::sort`].
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn list_documents(&self, collection: &CollectionName, query: &ListQuery) -> Result<Page<DocumentMeta>, RepoError>;

    /// Storage figures for one collection or (with `None`) the whole store.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound` for a named collection that does not exist.
    async fn stats(&self, collection: Option<CollectionName>) -> Result<StorageStats, RepoError>;

    /// Re-reads and re-hashes every stored byte of one collection or the whole store, streaming the findings.
    ///
    /// # Contract
    /// Every document MUST be accounted for: either in a `Checked` event's `documents` or as a `Corrupt` event.
    /// Content-addressed repositories MAY read shared content once for all its documents.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound` for a named collection that does not exist.
    async fn verify(&self, collection: Option<CollectionName>) -> Result<VerifyStream, RepoError>;

    /// Removes stored content that no document references (or, with `dry_run`, only counts it).
    /// It MUST NOT remove content a concurrent put is about to reference.
    async fn gc(&self, dry_run: bool) -> Result<GcReport, RepoError>;

    /// Makes the store's files complete on their own (`col flush`): what was acknowledged is durable already, and
    /// afterwards no log beside them is needed to read it (SQLite: the write-ahead log checkpointed into the database
    /// file and truncated). Returns each step taken, for people. Safe while other commands run: a step that a
    /// concurrent reader cuts short says so.
    async fn flush(&self) -> Result<Vec<String>, RepoError>;

    /// Freezes the whole store at this moment for backup and export (see [`StoreSnapshot`]).
    /// Writers MUST NOT be blocked while the snapshot is read.
    async fn snapshot(&self) -> Result<Box<dyn StoreSnapshot>, RepoError>;

    /// The SHA-256 and size of the bytes actually at rest for these documents, in the same order: `None` for a key
    /// that is no document, or whose bytes are missing. Restore compares the backup with this, not with the record,
    /// so that bytes changed or lost behind the repository's back are written again.
    ///
    /// # Contract
    /// Repositories whose content can change behind their back (`external_edits`, filesystem mode) MUST look at the
    /// bytes (they MAY trust the record when the file's stat is unchanged since it was written or reconciled, as
    /// reconciliation does); the default answers from the record, which is right when nothing else writes the bytes.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn contents_at_rest(&self, collection: &CollectionName, keys: Vec<DocKey>) -> Result<Vec<Option<(ContentHash, u64)>>, RepoError> {
        recorded_contents(self, collection, &keys).await
    }

    /// The [`SourceStamp`]s recorded for these documents, in the same order: `None` where nothing is recorded, or
    /// the document changed (by anything: a write, a delete and a new document under the key, a restore) since its
    /// stamp was recorded.
    ///
    /// # Contract
    /// A stamp is a cache: a repository MAY forget any (the default remembers none, which only costs `col add` a
    /// read of every file), but MUST NOT answer one for a document that is not, in every field, the one it was
    /// recorded for.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn source_stamps(&self, collection: &CollectionName, keys: &[DocKey]) -> Result<Vec<Option<SourceStamp>>, RepoError> {
        self.collection(collection).await?;
        Ok(vec![None; keys.len()])
    }

    /// Records stamps of the files documents were just written from: each only while its document still has the
    /// version and content hash given (a record for a document changed since is dropped, not recorded).
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`.
    async fn record_source_stamps(&self, collection: &CollectionName, records: Vec<SourceRecord>) -> Result<(), RepoError> {
        let _ = records;
        self.collection(collection).await.map(drop)
    }

    /// Restore: creates the collection with exactly these settings and creation time, or, when it exists, sets its
    /// settings (keeping its documents).
    async fn restore_collection(&self, name: &CollectionName, settings: CollectionSettings, created_at: Timestamp)
    -> Result<(), RepoError>;

    /// Restore: writes documents exactly as described (content, metadata, tags, version and both timestamps),
    /// replacing documents with the same key, in one transaction. Written keys become `pending` in the sync ledger
    /// in the same transaction, as a put does.
    ///
    /// # Errors
    /// MUST return `CollectionNotFound`, `DuplicateKey`, or `Corrupt` when a content does not hash to its
    /// description's `content_hash` or its size differs; in every error case nothing is written.
    async fn restore_documents(&self, collection: &CollectionName, docs: Vec<(DocumentMeta, Bytes)>) -> Result<(), RepoError>;

    /// Restore: writes one document as [`restore_documents`](Self::restore_documents) does, its content read from a
    /// stream, so a document of any size is restored with bounded memory.
    ///
    /// # Contract
    /// As `restore_documents` for one document: in one transaction, the key pending in the ledger afterwards, and
    /// nothing written when the content does not match `doc`'s hash and size or the stream ends with an error. The
    /// default collects the stream and calls `restore_documents`: right for small contents and fakes only;
    /// repositories meant for large documents MUST stream.
    ///
    /// # Errors
    /// `CollectionNotFound`; `Corrupt` when the content does not match; `ContentRead` when the stream fails.
    async fn restore_document_stream(
        &self,
        collection: &CollectionName,
        doc: DocumentMeta,
        content: ContentStream,
    ) -> Result<(), RepoError> {
        let bytes = collect_stream(&doc.key, content).await?;
        self.restore_documents(collection, vec![(doc, bytes)]).await
    }
}

/// One answer of [`CollectionRepo::read_documents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadDocument {
    /// No document has this key.
    Missing,
    /// The document is larger than the limit asked for: its description, without its bytes.
    TooLarge(DocumentMeta),
    /// The document and its whole content.
    Whole(DocumentMeta, Bytes),
}

/// [`CollectionRepo::read_documents`] through one [`CollectionRepo::read_content`] per key: what the trait's default
/// does, and what a repository may fall back to for the documents it cannot read in bulk.
///
/// # Errors
/// `CollectionNotFound`, and the backend failures of `read_content` that are not about one document.
pub async fn read_one_by_one<R: CollectionRepo + ?Sized>(
    repo: &R,
    collection: &CollectionName,
    keys: Vec<DocKey>,
    max_bytes: u64,
) -> Result<Vec<Result<ReadDocument, RepoError>>, RepoError> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let answer = match repo.read_content(collection, &key).await {
            Ok((meta, _)) if meta.size > max_bytes => Ok(ReadDocument::TooLarge(meta)),
            Ok((meta, stream)) => collect_stream(&key, stream).await.map(|bytes| ReadDocument::Whole(meta, bytes)),
            Err(RepoError::DocumentNotFound { .. }) => Ok(ReadDocument::Missing),
            Err(e @ (RepoError::Corrupt { .. } | RepoError::ContentRead { .. })) => Err(e),
            Err(e) => return Err(e),
        };
        out.push(answer);
    }
    Ok(out)
}

/// The whole of a content stream, or `ContentRead` naming `key` when it fails.
///
/// # Errors
/// `ContentRead` with the stream's error.
pub async fn collect_stream(key: &DocKey, mut content: ContentStream) -> Result<Bytes, RepoError> {
    use futures::StreamExt;
    let mut out = bytes::BytesMut::new();
    while let Some(piece) = content.next().await {
        out.extend_from_slice(&piece.map_err(|source| RepoError::ContentRead { key: key.clone(), source })?);
    }
    Ok(out.freeze())
}

/// [`CollectionRepo::contents_at_rest`] answered from the records (hash and size of each document, `None` for a
/// missing one): right for a repository whose bytes only it writes.
///
/// # Errors
/// As [`CollectionRepo::document`], but for `DocumentNotFound`.
pub async fn recorded_contents<R: CollectionRepo + ?Sized>(
    repo: &R,
    collection: &CollectionName,
    keys: &[DocKey],
) -> Result<Vec<Option<(ContentHash, u64)>>, RepoError> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        match repo.document(collection, key).await {
            Ok(d) => out.push(Some((d.content_hash, d.size))),
            Err(RepoError::DocumentNotFound { .. }) => out.push(None),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::SourceStamp;

    const SECOND: i64 = 1_000_000_000;

    fn recorded() -> SourceStamp {
        SourceStamp { size: 10, mtime_ns: 100 * SECOND, ctime_ns: 100 * SECOND, inode: 7, options: 3, seen_at_ns: 200 * SECOND }
    }

    #[rstest]
    #[case::unchanged(|s: &mut SourceStamp| s.seen_at_ns = 300 * SECOND, true)]
    #[case::size(|s: &mut SourceStamp| s.size = 11, false)]
    #[case::mtime(|s: &mut SourceStamp| s.mtime_ns += 1, false)]
    #[case::ctime_only(|s: &mut SourceStamp| s.ctime_ns += 1, false)]
    #[case::inode(|s: &mut SourceStamp| s.inode = 8, false)]
    #[case::options(|s: &mut SourceStamp| s.options = 4, false)]
    fn a_stamp_vouches_only_for_the_same_stat_and_options(#[case] change: fn(&mut SourceStamp), #[case] vouches: bool) {
        let mut now = recorded();
        change(&mut now);
        assert_eq!(recorded().vouches_for(&now), vouches);
    }

    #[rstest]
    #[case::settled(100 * SECOND + SourceStamp::SETTLE_NS + 1, true)]
    #[case::just_written(100 * SECOND + SourceStamp::SETTLE_NS, false)]
    #[case::written_after_it_was_seen(99 * SECOND, false)]
    fn a_file_seen_right_after_a_change_vouches_for_nothing(#[case] seen_at_ns: i64, #[case] vouches: bool) {
        let stamp = SourceStamp { seen_at_ns, ..recorded() };
        assert_eq!(stamp.vouches_for(&recorded()), vouches);
    }
}
