//! `InMemoryRepo`: a faithful in-memory [`CollectionRepo`], content-addressed like the SQLite adapter.
//!
//! It owns no I/O: collections, document descriptions and reference-counted blobs live behind one mutex, which is
//! never held across an `.await`. Every write validates first, reads all streamed content outside the lock, and then
//! applies the whole change under the lock, so a batch is all-or-nothing and readers see one snapshot per call.
//!
//! It is also a [`SyncStore`] with the SQLite adapter's semantics: the sync ledger is kept per collection and changed
//! under the same lock as the documents (put → `pending`, delete of a projected document → pending deletion, delete of
//! an unprojected one → no row), and the embedding cache is keyed by the embedder's display form and the chunk hash.
//! Linked to an [`InMemoryQueue`] with [`InMemoryRepo::with_jobs`], writes also enqueue the collection's sync job.
//!
//! Built with [`InMemoryRepo::with_files`] it is in **filesystem mode**, like `SqliteRepo::open_with_files`: the
//! bytes of documents live in a [`DocumentFiles`](colstore_domain::ports::DocumentFiles) (staged, then committed to
//! the key's path), the metadata stays in memory, and it is also the [`FileCatalog`](colstore_domain::ports::FileCatalog)
//! reconciliation uses (see `files_mode.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{
    Clock, CollectionRepo, CorruptDocument, GcReport, LedgerEntry, Projection, RepoCapabilities, RepoError, SourceRecord, SourceStamp,
    StorageStats, StoreSnapshot, SyncCounts, SyncError, SyncState, SyncStore, VerifyEvent, VerifyStream,
};
use colstore_domain::{
    Collection, CollectionName, CollectionSettings, CollectionSpec, Content, ContentHash, ContentHasher, ContentStream, DocKey,
    DocumentMeta, EmbedderId, ListQuery, Metadata, NewDocument, Page, PutOutcome, PutStatus, Tags, Timestamp, Vector,
};
use futures::StreamExt;
use futures::stream;

use crate::InMemoryQueue;

mod files_mode;
mod text;

use files_mode::FileRecord;

/// Largest chunk [`CollectionRepo::read_content`] yields.
const READ_CHUNK: usize = 64 * 1024;

/// A [`CollectionRepo`] kept in memory, for use-case tests and as the reference the conformance suite is checked against.
///
/// Equal content is stored once across documents and collections (`content_addressed: true`), never compressed, and never
/// edited behind the repository's back. Time comes from the [`Clock`] given to [`InMemoryRepo::new`].
///
/// In filesystem mode ([`InMemoryRepo::with_files`]) each document's bytes are a file of the given
/// [`DocumentFiles`](colstore_domain::ports::DocumentFiles) instead (`content_addressed: false`, `external_edits: true`).
pub struct InMemoryRepo {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    jobs: Option<Arc<InMemoryQueue>>,
    /// Filesystem mode: where the documents' bytes live.
    files: Option<Arc<dyn colstore_domain::ports::DocumentFiles>>,
    /// Filesystem mode: serialises writers from their metadata change to their last file operation, so files change in
    /// the order of the metadata (the SQLite adapter holds its write lock for that).
    writer: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    collections: BTreeMap<CollectionName, CollectionState>,
    blobs: HashMap<ContentHash, Blob>,
    /// The embedding cache, keyed by the embedder's display form (kind, model, dimension) and the chunk hash.
    cache: HashMap<(String, ContentHash), Vector>,
}

struct CollectionState {
    settings: CollectionSettings,
    created_at: Timestamp,
    docs: BTreeMap<DocKey, DocumentMeta>,
    /// The sync ledger: one row per document, plus pending deletions.
    ledger: BTreeMap<DocKey, LedgerRow>,
    /// Filesystem mode: what is on record about each document's file.
    files: BTreeMap<DocKey, FileRecord>,
    /// `col add`'s source stamps, each with the document as it was recorded for (answered only while it is the same).
    stamps: BTreeMap<DocKey, (DocumentMeta, SourceStamp)>,
    /// The full-text index: each indexed document's chunks, with the content and chunking they were made from.
    text: BTreeMap<DocKey, text::Indexed>,
}

/// A sync ledger row without its collection, key and current hash (those come from where it is kept).
struct LedgerRow {
    state: SyncState,
    projected: Option<Projection>,
    attempts: u32,
    error: Option<String>,
    updated_at: Timestamp,
}

impl CollectionState {
    /// A document's sync state (`state:` conditions).
    pub(crate) fn ledger_state(&self, key: &DocKey) -> Option<SyncState> {
        self.ledger.get(key).map(|r| r.state)
    }

    fn entry(&self, collection: &CollectionName, key: &DocKey, row: &LedgerRow) -> LedgerEntry {
        LedgerEntry {
            collection: collection.clone(),
            key: key.clone(),
            state: row.state,
            current: self.docs.get(key).map(|d| d.content_hash),
            projected: row.projected,
            attempts: row.attempts,
            error: row.error.clone(),
            updated_at: row.updated_at,
        }
    }

    /// The ledger side of a deleted document: the index must forget a projected document (a pending deletion, and
    /// `true`); an unprojected one leaves nothing to undo (its row goes).
    fn forget(&mut self, key: &DocKey, now: Timestamp) -> bool {
        if self.ledger.get(key).is_some_and(|r| r.projected.is_some()) {
            self.mark_pending(key, now);
            true
        } else {
            self.ledger.remove(key);
            false
        }
    }

    /// Something changed that the index must learn: pending, attempts and error reset, projection kept.
    fn mark_pending(&mut self, key: &DocKey, now: Timestamp) {
        let row = self.ledger.entry(key.clone()).or_insert(LedgerRow {
            state: SyncState::Pending,
            projected: None,
            attempts: 0,
            error: None,
            updated_at: now,
        });
        row.state = SyncState::Pending;
        row.attempts = 0;
        row.error = None;
        row.updated_at = now;
    }
}

struct Blob {
    bytes: Bytes,
    /// Documents referencing this blob; 0 means garbage for [`CollectionRepo::gc`].
    refs: u64,
}

/// A document of a batch whose content has been read completely, ready to apply.
struct ReadyDocument {
    key: DocKey,
    bytes: Bytes,
    hash: ContentHash,
    metadata: Metadata,
    tags: Tags,
}

impl InMemoryRepo {
    /// An empty repository reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, state: Mutex::new(State::default()), jobs: None, files: None, writer: tokio::sync::Mutex::new(()) }
    }

    /// An empty repository in filesystem mode: documents' bytes are files of `files` (one folder per collection,
    /// created with the collection), metadata and the ledger stay in memory. It is also a
    /// [`FileCatalog`](colstore_domain::ports::FileCatalog). Combine with [`InMemoryRepo::with_jobs`] as usual.
    pub fn with_files(clock: Arc<dyn Clock>, files: Arc<dyn colstore_domain::ports::DocumentFiles>) -> Self {
        Self { files: Some(files), ..Self::new(clock) }
    }

    /// The documents' files, in filesystem mode.
    pub fn files(&self) -> Option<&Arc<dyn colstore_domain::ports::DocumentFiles>> {
        self.files.as_ref()
    }

    /// Enqueues the collection's sync job into `queue` whenever a write leaves documents pending — `{kind: "sync",
    /// dedup_key: "sync:<collection>", payload: {"collection": "<collection>"}, max_attempts: 10}` — as the SQLite
    /// repository does in the write's transaction. The queue should read the same clock.
    #[must_use]
    pub fn with_jobs(mut self, queue: Arc<InMemoryQueue>) -> Self {
        self.jobs = Some(queue);
        self
    }

    fn enqueue_sync(&self, collection: &CollectionName) {
        if let Some(q) = &self.jobs {
            q.enqueue_now(colstore_domain::ports::sync_job::spec(collection));
        }
    }

    /// Damages the stored bytes of a document, as disk rot would: flips the first byte, or appends one to empty content.
    ///
    /// The blob is shared, so every document with the same content becomes corrupt too; the recorded hashes stay.
    ///
    /// # Panics
    /// When the collection or the document does not exist (a mistake in the test), or in filesystem mode (use
    /// [`InMemoryRepo::corrupt_file`]).
    pub fn corrupt(&self, collection: &CollectionName, key: &DocKey) {
        assert!(self.files.is_none(), "corrupt: in filesystem mode, use `corrupt_file`");
        let mut st = self.lock();
        let hash = st
            .collections
            .get(collection)
            .and_then(|c| c.docs.get(key))
            .map(|d| d.content_hash)
            .unwrap_or_else(|| panic!("corrupt: no document {key:?} in collection {collection:?}"));
        let blob = st.blobs.get_mut(&hash).expect("corrupt: a referenced blob exists");
        let mut damaged = blob.bytes.to_vec();
        match damaged.first_mut() {
            Some(b) => *b ^= 0xff,
            None => damaged.push(0x2a),
        }
        blob.bytes = Bytes::from(damaged);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not turn every later call into a second panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn collection(&self, name: &CollectionName) -> Result<&CollectionState, RepoError> {
        self.collections.get(name).ok_or_else(|| RepoError::CollectionNotFound(name.clone()))
    }

    fn document(&self, collection: &CollectionName, key: &DocKey) -> Result<&DocumentMeta, RepoError> {
        self.collection(collection)?
            .docs
            .get(key)
            .ok_or_else(|| RepoError::DocumentNotFound { collection: collection.clone(), key: key.clone() })
    }

    /// The collections a stats or verify call looks at.
    fn scope(&self, scope: Option<&CollectionName>) -> Result<Vec<&CollectionState>, RepoError> {
        match scope {
            Some(name) => Ok(vec![self.collection(name)?]),
            None => Ok(self.collections.values().collect()),
        }
    }

    fn sync_collection(&self, name: &CollectionName) -> Result<&CollectionState, SyncError> {
        self.collections.get(name).ok_or_else(|| SyncError::CollectionNotFound(name.clone()))
    }

    /// The collections a counts or recent-errors call looks at, with their names.
    fn sync_scope(&self, scope: Option<&CollectionName>) -> Result<Vec<(&CollectionName, &CollectionState)>, SyncError> {
        match scope {
            Some(name) => {
                let (name, c) = self.collections.get_key_value(name).ok_or_else(|| SyncError::CollectionNotFound(name.clone()))?;
                Ok(vec![(name, c)])
            }
            None => Ok(self.collections.iter().collect()),
        }
    }

    fn describe(name: &CollectionName, c: &CollectionState) -> Collection {
        Collection {
            name: name.clone(),
            settings: c.settings.clone(),
            created_at: c.created_at,
            document_count: c.docs.len() as u64,
            logical_bytes: c.docs.values().map(|d| d.size).sum(),
        }
    }
}

/// Adds a reference to the blob of `hash`, storing `bytes` when the content is new.
fn add_ref(blobs: &mut HashMap<ContentHash, Blob>, hash: ContentHash, bytes: Bytes) {
    blobs.entry(hash).or_insert(Blob { bytes, refs: 0 }).refs += 1;
}

/// Drops a reference; a blob left with none stays stored as garbage until `gc`.
fn release(blobs: &mut HashMap<ContentHash, Blob>, hash: &ContentHash) {
    if let Some(b) = blobs.get_mut(hash) {
        b.refs = b.refs.saturating_sub(1);
    }
}

/// Reads a document's content completely, hashing it on the way.
async fn read_whole(key: &DocKey, content: Content) -> Result<(Bytes, ContentHash), RepoError> {
    match content {
        Content::Bytes(b) => {
            let hash = ContentHash::of(&b);
            Ok((b, hash))
        }
        Content::Stream(mut s) => {
            let mut buf = BytesMut::new();
            let mut hasher = ContentHasher::new();
            while let Some(item) = s.next().await {
                let chunk = item.map_err(|source| RepoError::ContentRead { key: key.clone(), source })?;
                hasher.update(&chunk);
                buf.extend_from_slice(&chunk);
            }
            Ok((buf.freeze(), hasher.finish()))
        }
    }
}

#[async_trait]
impl CollectionRepo for InMemoryRepo {
    fn capabilities(&self) -> RepoCapabilities {
        if self.files.is_some() {
            RepoCapabilities { content_addressed: false, compression: false, external_edits: true }
        } else {
            RepoCapabilities { content_addressed: true, compression: false, external_edits: false }
        }
    }

    async fn create_collection(&self, spec: CollectionSpec) -> Result<Collection, RepoError> {
        if let Some(files) = &self.files {
            // The folder first, as the SQLite adapter: an empty folder left over is harmless, a collection without one is not.
            files.create_root(&spec.name).await.map_err(files_mode::files_err)?;
        }
        let now = self.clock.now();
        let mut st = self.lock();
        if st.collections.contains_key(&spec.name) {
            return Err(RepoError::CollectionExists(spec.name));
        }
        let c = CollectionState {
            settings: spec.settings,
            created_at: now,
            docs: BTreeMap::new(),
            ledger: BTreeMap::new(),
            files: BTreeMap::new(),
            stamps: BTreeMap::new(),
            text: BTreeMap::new(),
        };
        let described = State::describe(&spec.name, &c);
        st.collections.insert(spec.name, c);
        Ok(described)
    }

    async fn collection(&self, name: &CollectionName) -> Result<Collection, RepoError> {
        let st = self.lock();
        Ok(State::describe(name, st.collection(name)?))
    }

    async fn update_settings(&self, name: &CollectionName, settings: CollectionSettings) -> Result<Collection, RepoError> {
        let mut st = self.lock();
        let c = st.collections.get_mut(name).ok_or_else(|| RepoError::CollectionNotFound(name.clone()))?;
        c.settings = settings;
        let c = &st.collections[name];
        Ok(State::describe(name, c))
    }

    async fn list_collections(&self) -> Result<Vec<Collection>, RepoError> {
        let st = self.lock();
        Ok(st.collections.iter().map(|(n, c)| State::describe(n, c)).collect())
    }

    async fn delete_collection(&self, name: &CollectionName) -> Result<u64, RepoError> {
        if let Some(files) = &self.files {
            return self.delete_collection_files(&**files, name).await;
        }
        let mut st = self.lock();
        let removed = st.collections.remove(name).ok_or_else(|| RepoError::CollectionNotFound(name.clone()))?;
        for d in removed.docs.values() {
            release(&mut st.blobs, &d.content_hash);
        }
        Ok(removed.docs.len() as u64)
    }

    async fn put_batch(&self, collection: &CollectionName, docs: Vec<NewDocument>) -> Result<Vec<PutOutcome>, RepoError> {
        if let Some(files) = &self.files {
            return self.put_batch_files(&**files, collection, docs).await;
        }
        // 1. Validate, before reading any stream.
        self.lock().collection(collection)?;
        let mut seen = HashSet::with_capacity(docs.len());
        if let Some(dup) = docs.iter().find(|d| !seen.insert(&d.key)) {
            return Err(RepoError::DuplicateKey(dup.key.clone()));
        }

        // 2. Read every content completely, without the lock: a failing stream aborts before anything is written.
        let mut ready = Vec::with_capacity(docs.len());
        for NewDocument { key, content, metadata, tags } in docs {
            let (bytes, hash) = read_whole(&key, content).await?;
            ready.push(ReadyDocument { key, bytes, hash, metadata, tags });
        }

        // 3. Apply everything under one lock. The collection may have gone while the streams were read.
        let now = self.clock.now();
        let mut st = self.lock();
        let State { collections, blobs, .. } = &mut *st;
        let coll = collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
        let mut outcomes = Vec::with_capacity(ready.len());
        for ReadyDocument { key, bytes, hash, metadata, tags } in ready {
            let size = bytes.len() as u64;
            // Like the SQLite adapter in sqlite mode: a changed content's text is indexed in the same write.
            if coll.docs.get(&key).is_none_or(|d| d.content_hash != hash) {
                coll.text.insert(key.clone(), text::Indexed::of(hash, coll.settings.chunking, &bytes));
            }
            let status = match coll.docs.get_mut(&key) {
                Some(existing) if existing.content_hash == hash && existing.metadata == metadata && existing.tags == tags => {
                    PutStatus::Unchanged
                }
                Some(existing) => {
                    if existing.content_hash != hash {
                        add_ref(blobs, hash, bytes);
                        release(blobs, &existing.content_hash);
                    }
                    existing.content_hash = hash;
                    existing.size = size;
                    existing.metadata = metadata;
                    existing.tags = tags;
                    existing.version += 1;
                    existing.updated_at = now;
                    PutStatus::Updated
                }
                None => {
                    add_ref(blobs, hash, bytes);
                    let meta = DocumentMeta {
                        collection: collection.clone(),
                        key: key.clone(),
                        content_hash: hash,
                        size,
                        metadata,
                        tags,
                        version: 1,
                        created_at: now,
                        updated_at: now,
                    };
                    coll.docs.insert(key.clone(), meta);
                    PutStatus::Created
                }
            };
            if status != PutStatus::Unchanged {
                coll.mark_pending(&key, now);
            }
            let version = coll.docs.get(&key).map_or(1, |d| d.version);
            outcomes.push(PutOutcome { key, status, version, content_hash: hash, size });
        }
        if outcomes.iter().any(|o| o.status != PutStatus::Unchanged) {
            self.enqueue_sync(collection);
        }
        Ok(outcomes)
    }

    async fn document(&self, collection: &CollectionName, key: &DocKey) -> Result<DocumentMeta, RepoError> {
        self.lock().document(collection, key).cloned()
    }

    async fn read_content(&self, collection: &CollectionName, key: &DocKey) -> Result<(DocumentMeta, ContentStream), RepoError> {
        if let Some(files) = &self.files {
            return self.read_content_files(&**files, collection, key).await;
        }
        let (meta, bytes) = {
            let st = self.lock();
            let meta = st.document(collection, key)?.clone();
            let bytes = st.blobs.get(&meta.content_hash).map(|b| b.bytes.clone());
            (meta, bytes)
        };
        let Some(bytes) = bytes else {
            // Cannot happen while reference counts are right; never hand out wrong bytes silently if it does.
            return Err(RepoError::Corrupt { key: key.clone(), detail: "its content is missing".into() });
        };
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..bytes.len()).step_by(READ_CHUNK).map(|start| Ok(bytes.slice(start..bytes.len().min(start + READ_CHUNK)))).collect();
        Ok((meta, stream::iter(chunks).boxed()))
    }

    async fn delete_documents(&self, collection: &CollectionName, keys: Vec<DocKey>) -> Result<Vec<DocKey>, RepoError> {
        if let Some(files) = &self.files {
            return self.delete_documents_files(&**files, collection, keys).await;
        }
        let mut st = self.lock();
        let State { collections, blobs, .. } = &mut *st;
        let coll = collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
        let now = self.clock.now();
        let mut deleted = Vec::new();
        let mut pending_deletions = false;
        for key in keys {
            if let Some(d) = coll.docs.remove(&key) {
                release(blobs, &d.content_hash);
                pending_deletions |= coll.forget(&key, now);
                deleted.push(key);
            }
        }
        if pending_deletions {
            self.enqueue_sync(collection);
        }
        Ok(deleted)
    }

    async fn list_documents(&self, collection: &CollectionName, query: &ListQuery) -> Result<Page<DocumentMeta>, RepoError> {
        let docs: Vec<(DocumentMeta, Option<SyncState>)> = {
            let st = self.lock();
            let c = st.collection(collection)?;
            c.docs.values().map(|d| (d.clone(), c.ledger_state(&d.key))).collect()
        };
        Ok(query.page_in(docs))
    }

    async fn stats(&self, collection: Option<CollectionName>) -> Result<StorageStats, RepoError> {
        let st = self.lock();
        let scope = st.scope(collection.as_ref())?;
        let mut out = StorageStats { collections: scope.len() as u64, ..StorageStats::default() };
        let mut distinct: HashMap<ContentHash, u64> = HashMap::new();
        for d in scope.iter().flat_map(|c| c.docs.values()) {
            out.documents += 1;
            out.logical_bytes += d.size;
            distinct.insert(d.content_hash, d.size);
        }
        out.distinct_contents = distinct.len() as u64;
        out.unique_bytes = distinct.values().sum();
        // No compression: what is at rest is exactly the deduplicated content, or in filesystem mode one file per
        // document.
        out.stored_bytes = if self.files.is_some() { out.logical_bytes } else { out.unique_bytes };
        out.garbage_contents = st.blobs.values().filter(|b| b.refs == 0).count() as u64;
        Ok(out)
    }

    async fn verify(&self, collection: Option<CollectionName>) -> Result<VerifyStream, RepoError> {
        if let Some(files) = &self.files {
            return self.verify_files(files.clone(), collection);
        }
        // Snapshot under the lock (cheap: `Bytes` clones share memory), hash lazily as the stream is polled.
        type Work = (ContentHash, Option<Bytes>, Vec<(CollectionName, DocKey)>);
        let work: Vec<Work> = {
            let st = self.lock();
            let scope = st.scope(collection.as_ref())?;
            let mut by_hash: BTreeMap<ContentHash, Vec<(CollectionName, DocKey)>> = BTreeMap::new();
            for d in scope.iter().flat_map(|c| c.docs.values()) {
                by_hash.entry(d.content_hash).or_default().push((d.collection.clone(), d.key.clone()));
            }
            by_hash.into_iter().map(|(h, docs)| (h, st.blobs.get(&h).map(|b| b.bytes.clone()), docs)).collect()
        };
        let events = stream::iter(work).flat_map(|(expected, bytes, docs)| {
            let (actual, problem) = match &bytes {
                Some(b) => {
                    let actual = ContentHash::of(b);
                    if actual == expected {
                        let checked = VerifyEvent::Checked { documents: docs.len() as u64, bytes: b.len() as u64 };
                        return stream::iter(vec![Ok(checked)]);
                    }
                    (Some(actual), "content does not match its hash")
                }
                None => (None, "content is missing"),
            };
            let corrupt = docs
                .into_iter()
                .map(|(collection, key)| {
                    Ok(VerifyEvent::Corrupt(CorruptDocument { collection, key, expected, actual, problem: problem.to_owned() }))
                })
                .collect::<Vec<_>>();
            stream::iter(corrupt)
        });
        Ok(events.boxed())
    }

    async fn snapshot(&self) -> Result<Box<dyn StoreSnapshot>, RepoError> {
        if let Some(files) = &self.files {
            return self.snapshot_files(&**files).await;
        }
        let st = self.lock();
        Ok(Box::new(InMemorySnapshot::of(&st, st.blobs.iter().map(|(h, b)| (*h, b.bytes.clone())).collect())))
    }

    async fn restore_collection(
        &self,
        name: &CollectionName,
        settings: CollectionSettings,
        created_at: Timestamp,
    ) -> Result<(), RepoError> {
        if let Some(files) = &self.files {
            files.create_root(name).await.map_err(files_mode::files_err)?;
        }
        let mut st = self.lock();
        match st.collections.get_mut(name) {
            Some(c) => c.settings = settings,
            None => {
                st.collections.insert(
                    name.clone(),
                    CollectionState {
                        settings,
                        created_at,
                        docs: BTreeMap::new(),
                        ledger: BTreeMap::new(),
                        files: BTreeMap::new(),
                        stamps: BTreeMap::new(),
                        text: BTreeMap::new(),
                    },
                );
            }
        }
        Ok(())
    }

    async fn source_stamps(&self, collection: &CollectionName, keys: &[DocKey]) -> Result<Vec<Option<SourceStamp>>, RepoError> {
        let st = self.lock();
        let coll = st.collection(collection)?;
        Ok(keys
            .iter()
            .map(|k| coll.stamps.get(k).filter(|(recorded, _)| coll.docs.get(k) == Some(recorded)).map(|(_, stamp)| *stamp))
            .collect())
    }

    async fn record_source_stamps(&self, collection: &CollectionName, records: Vec<SourceRecord>) -> Result<(), RepoError> {
        let mut st = self.lock();
        let coll = st.collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
        for r in records {
            if let Some(doc) = coll.docs.get(&r.key).filter(|d| d.version == r.version && d.content_hash == r.content_hash) {
                coll.stamps.insert(r.key, (doc.clone(), r.stamp));
            }
        }
        Ok(())
    }

    async fn contents_at_rest(&self, collection: &CollectionName, keys: Vec<DocKey>) -> Result<Vec<Option<(ContentHash, u64)>>, RepoError> {
        if let Some(files) = &self.files {
            return self.contents_at_rest_files(&**files, collection, &keys).await;
        }
        let st = self.lock();
        let coll = st.collection(collection)?;
        Ok(keys.iter().map(|k| coll.docs.get(k).map(|d| (d.content_hash, d.size))).collect())
    }

    async fn restore_documents(&self, collection: &CollectionName, docs: Vec<(DocumentMeta, Bytes)>) -> Result<(), RepoError> {
        if let Some(files) = &self.files {
            return self.restore_documents_files(&**files, collection, docs).await;
        }
        let mut seen = HashSet::with_capacity(docs.len());
        for (d, bytes) in &docs {
            if !seen.insert(d.key.clone()) {
                return Err(RepoError::DuplicateKey(d.key.clone()));
            }
            if bytes.len() as u64 != d.size || ContentHash::of(bytes) != d.content_hash {
                return Err(restore_mismatch(&d.key));
            }
        }
        let now = self.clock.now();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let coll = st.collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
            for (mut d, bytes) in docs {
                d.collection = collection.clone();
                if let Some(old) = coll.docs.get(&d.key) {
                    release(&mut st.blobs, &old.content_hash);
                }
                add_ref(&mut st.blobs, d.content_hash, bytes);
                coll.mark_pending(&d.key, now);
                coll.docs.insert(d.key.clone(), d);
            }
        }
        self.enqueue_sync(collection);
        Ok(())
    }

    async fn flush(&self) -> Result<Vec<String>, RepoError> {
        Ok(vec!["in memory: nothing to write".into()])
    }

    async fn gc(&self, dry_run: bool) -> Result<GcReport, RepoError> {
        let mut st = self.lock();
        let mut report = GcReport::default();
        for b in st.blobs.values().filter(|b| b.refs == 0) {
            report.contents_removed += 1;
            report.bytes_freed += b.bytes.len() as u64;
        }
        if !dry_run {
            st.blobs.retain(|_, b| b.refs > 0);
        }
        Ok(report)
    }
}

/// The ledger and cache kept in memory, with the SQLite adapter's semantics: `mark_failed` on a key without a row
/// changes nothing, and the cache keeps the first vector stored for an (embedder, chunk hash).
#[async_trait]
impl SyncStore for InMemoryRepo {
    async fn pending(
        &self,
        collection: &CollectionName,
        include_failed: bool,
        after: Option<DocKey>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, SyncError> {
        let st = self.lock();
        let coll = st.sync_collection(collection)?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(coll
            .ledger
            .range((lower, Bound::Unbounded))
            .filter(|(_, r)| r.state == SyncState::Pending || (include_failed && r.state == SyncState::Failed))
            .take(limit)
            .map(|(k, r)| coll.entry(collection, k, r))
            .collect())
    }

    async fn mark_synced(
        &self,
        collection: &CollectionName,
        key: &DocKey,
        expected: Option<ContentHash>,
        projection: Option<Projection>,
    ) -> Result<bool, SyncError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let coll = st.collections.get_mut(collection).ok_or_else(|| SyncError::CollectionNotFound(collection.clone()))?;
        let current = coll.docs.get(key).map(|d| d.content_hash);
        match expected {
            Some(h) if current == Some(h) => {
                coll.ledger.insert(
                    key.clone(),
                    LedgerRow { state: SyncState::Synced, projected: projection, attempts: 0, error: None, updated_at: now },
                );
                Ok(true)
            }
            None if current.is_none() => {
                coll.ledger.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn mark_failed(&self, collection: &CollectionName, key: &DocKey, error: String) -> Result<(), SyncError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let coll = st.collections.get_mut(collection).ok_or_else(|| SyncError::CollectionNotFound(collection.clone()))?;
        if let Some(r) = coll.ledger.get_mut(key) {
            r.state = SyncState::Failed;
            r.error = Some(error);
            r.attempts += 1;
            r.updated_at = now;
        }
        Ok(())
    }

    async fn mark_all_pending(&self, collection: &CollectionName) -> Result<u64, SyncError> {
        let now = self.clock.now();
        let n = {
            let mut st = self.lock();
            let coll = st.collections.get_mut(collection).ok_or_else(|| SyncError::CollectionNotFound(collection.clone()))?;
            for r in coll.ledger.values_mut() {
                r.state = SyncState::Pending;
                r.attempts = 0;
                r.error = None;
                r.updated_at = now;
            }
            coll.ledger.len() as u64
        };
        if n > 0 {
            self.enqueue_sync(collection);
        }
        Ok(n)
    }

    async fn counts(&self, collection: Option<CollectionName>) -> Result<SyncCounts, SyncError> {
        let st = self.lock();
        let mut out = SyncCounts::default();
        for (_, coll) in st.sync_scope(collection.as_ref())? {
            for r in coll.ledger.values() {
                match r.state {
                    SyncState::Pending => out.pending += 1,
                    SyncState::Synced => out.synced += 1,
                    SyncState::Failed => out.failed += 1,
                }
            }
        }
        Ok(out)
    }

    async fn recent_errors(&self, collection: Option<CollectionName>, limit: usize) -> Result<Vec<LedgerEntry>, SyncError> {
        let st = self.lock();
        let mut failed: Vec<LedgerEntry> = st
            .sync_scope(collection.as_ref())?
            .into_iter()
            .flat_map(|(name, coll)| {
                coll.ledger.iter().filter(|(_, r)| r.state == SyncState::Failed).map(move |(k, r)| coll.entry(name, k, r))
            })
            .collect();
        // Most recent first; ties by collection, then key (as the SQLite adapter orders them).
        failed
            .sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.collection.cmp(&b.collection)).then_with(|| a.key.cmp(&b.key)));
        failed.truncate(limit);
        Ok(failed)
    }

    async fn ledger(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<LedgerEntry>, SyncError> {
        let st = self.lock();
        let coll = st.sync_collection(collection)?;
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(coll.ledger.range((lower, Bound::Unbounded)).take(limit).map(|(k, r)| coll.entry(collection, k, r)).collect())
    }

    async fn cached_vectors(&self, embedder: &EmbedderId, chunks: Vec<ContentHash>) -> Result<Vec<Option<Vector>>, SyncError> {
        let id = embedder.to_string();
        let expected = embedder.dimension.get();
        let st = self.lock();
        chunks
            .into_iter()
            .map(|h| match st.cache.get(&(id.clone(), h)) {
                Some(v) if v.len() != expected as usize => {
                    Err(SyncError::DimensionMismatch { expected, got: u32::try_from(v.len()).unwrap_or(u32::MAX) })
                }
                found => Ok(found.cloned()),
            })
            .collect()
    }

    async fn cache_vectors(&self, embedder: &EmbedderId, vectors: Vec<(ContentHash, Vector)>) -> Result<(), SyncError> {
        let expected = embedder.dimension.get();
        if let Some((_, v)) = vectors.iter().find(|(_, v)| v.len() != expected as usize) {
            return Err(SyncError::DimensionMismatch { expected, got: u32::try_from(v.len()).unwrap_or(u32::MAX) });
        }
        let id = embedder.to_string();
        let mut st = self.lock();
        for (h, v) in vectors {
            st.cache.entry((id.clone(), h)).or_insert(v);
        }
        Ok(())
    }

    async fn restore_ledger(&self, collection: &CollectionName, entries: Vec<LedgerEntry>) -> Result<(), SyncError> {
        let mut st = self.lock();
        let coll = st.collections.get_mut(collection).ok_or_else(|| SyncError::CollectionNotFound(collection.clone()))?;
        for e in entries {
            coll.ledger.insert(
                e.key,
                LedgerRow { state: e.state, projected: e.projected, attempts: e.attempts, error: e.error, updated_at: e.updated_at },
            );
        }
        Ok(())
    }
}

/// [`InMemoryRepo::snapshot`]: a copy of the whole state, taken under the lock.
struct InMemorySnapshot {
    collections: Vec<Collection>,
    docs: BTreeMap<CollectionName, BTreeMap<DocKey, DocumentMeta>>,
    ledger: BTreeMap<CollectionName, BTreeMap<DocKey, LedgerEntry>>,
    blobs: HashMap<ContentHash, Bytes>,
    cache: HashMap<(String, ContentHash), Vector>,
}

impl InMemorySnapshot {
    /// A copy of `st`, with the content bytes by hash (the blobs, or in filesystem mode what the files held).
    fn of(st: &State, blobs: HashMap<ContentHash, Bytes>) -> Self {
        InMemorySnapshot {
            collections: st.collections.iter().map(|(n, c)| State::describe(n, c)).collect(),
            docs: st.collections.iter().map(|(n, c)| (n.clone(), c.docs.clone())).collect(),
            ledger: st
                .collections
                .iter()
                .map(|(n, c)| (n.clone(), c.ledger.iter().map(|(k, r)| (k.clone(), c.entry(n, k, r))).collect()))
                .collect(),
            blobs,
            cache: st.cache.clone(),
        }
    }
}

/// The error of a restore whose bytes do not match the recorded size and hash.
fn restore_mismatch(key: &DocKey) -> RepoError {
    RepoError::Corrupt { key: key.clone(), detail: "the restored content does not match its recorded size and hash".into() }
}

fn page<T: Clone>(rows: Option<&BTreeMap<DocKey, T>>, after: Option<DocKey>, limit: usize) -> Vec<T> {
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    rows.map(|m| m.range((lower, Bound::Unbounded)).take(limit).map(|(_, v)| v.clone()).collect()).unwrap_or_default()
}

#[async_trait]
impl StoreSnapshot for InMemorySnapshot {
    async fn collections(&self) -> Result<Vec<Collection>, RepoError> {
        Ok(self.collections.clone())
    }

    async fn documents(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<DocumentMeta>, RepoError> {
        let rows = self.docs.get(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
        Ok(page(Some(rows), after, limit))
    }

    async fn content(&self, hash: &ContentHash) -> Result<Bytes, RepoError> {
        self.blobs
            .get(hash)
            .cloned()
            .ok_or_else(|| RepoError::Backend { backend: "memory", source: format!("content {hash} is missing").into() })
    }

    /// In pieces of at most 1 MiB, as SQLite streams its parts.
    async fn content_stream(&self, hash: &ContentHash) -> Result<ContentStream, RepoError> {
        let whole = self.content(hash).await?;
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            (0..whole.len()).step_by(1 << 20).map(|at| Ok(whole.slice(at..(at + (1 << 20)).min(whole.len())))).collect();
        Ok(Box::pin(futures::stream::iter(pieces)))
    }

    async fn ledger(&self, collection: &CollectionName, after: Option<DocKey>, limit: usize) -> Result<Vec<LedgerEntry>, RepoError> {
        let rows = self.ledger.get(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
        Ok(page(Some(rows), after, limit))
    }

    async fn cached_vectors(&self, embedder: &EmbedderId, chunks: Vec<ContentHash>) -> Result<Vec<Option<Vector>>, RepoError> {
        let id = embedder.to_string();
        Ok(chunks.into_iter().map(|h| self.cache.get(&(id.clone(), h)).cloned()).collect())
    }
}
