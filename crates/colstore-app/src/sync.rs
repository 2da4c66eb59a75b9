//! `col sync`: project pending documents into the vector index, paying for each embedding once (PRODUCT §5).
//!
//! For each pending document: chunk → cache lookup → embed the misses in batches → store the new vectors in the cache
//! → upsert points (durable) → retire stale points → mark synced in the ledger. The order matters:
//! - vectors reach the cache before anything else, so a crash after an embedding call never pays for it again;
//! - the new version's points are written before the old version's extra points are retired, so a synced document
//!   never has no points;
//! - the ledger says "synced" only after the index acknowledged the upsert, and only if the document did not change
//!   meanwhile (`SyncStore::mark_synced` checks the content hash).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use colstore_domain::ports::{
    CollectionRepo, EmbedError, Embedder, IndexError, IndexRouter, LedgerEntry, Projection, ReadDocument, RepoError, SyncError, SyncStore,
    VectorIndex,
};
use colstore_domain::{
    Chunk, ChunkingSettings, CollectionName, CollectionSettings, ContentHash, Distance, DocKey, IndexName, Payload, Point, PointId,
    StoreId, Vector, VectorSettings, chunk_text,
};
use futures::future::BoxFuture;
use serde::Serialize;

/// The ports a sync needs.
#[derive(Clone)]
pub struct SyncPorts {
    /// Documents and collection settings.
    pub repo: Arc<dyn CollectionRepo>,
    /// The ledger and the embedding cache.
    pub ledger: Arc<dyn SyncStore>,
    /// The store's default vector index (`[vectors]`); a collection whose settings name another target is projected
    /// into [`router`](Self::router)'s index for it instead ([`SyncPorts::for_collection`]).
    pub index: Arc<dyn VectorIndex>,
    /// Finds the index a collection's settings name.
    pub router: Arc<dyn IndexRouter>,
    /// The embedder.
    pub embedder: Arc<dyn Embedder>,
    /// The full-text index of the store's documents (keyword search).
    pub text: Arc<dyn colstore_domain::ports::TextIndex>,
    /// The store's id (namespaces point ids and index names).
    pub store_id: StoreId,
}

impl SyncPorts {
    /// These ports with `index` set to the index the collection projects into: its settings' target, or the store's
    /// default. Every use case that touches one collection's points goes through this first.
    ///
    /// # Errors
    /// When the target cannot be resolved (a malformed target, a client that cannot be built).
    pub async fn for_collection(&self, settings: &CollectionSettings) -> Result<SyncPorts, IndexError> {
        match &settings.index {
            None => Ok(self.clone()),
            Some(target) => Ok(SyncPorts { index: self.router.route(Some(target.clone())).await?, ..self.clone() }),
        }
    }
}

/// An [`IndexRouter`] with one index, named `target`: for stores (and tests) whose collections all use it.
pub struct OneIndex {
    index: Arc<dyn VectorIndex>,
    target: String,
}

impl OneIndex {
    /// A router whose only index is `index`, called `embedded`.
    pub fn router(index: Arc<dyn VectorIndex>) -> Arc<dyn IndexRouter> {
        Arc::new(Self { index, target: "embedded".to_owned() })
    }
}

#[async_trait::async_trait]
impl IndexRouter for OneIndex {
    fn default_target(&self) -> String {
        self.target.clone()
    }

    fn canonical(&self, target: &str) -> Result<String, IndexError> {
        Ok(target.trim().to_owned())
    }

    async fn route(&self, target: Option<String>) -> Result<Arc<dyn VectorIndex>, IndexError> {
        match target {
            Some(t) if t != self.target => {
                Err(IndexError::Backend { backend: "router", source: format!("this store has no index named {t:?}").into() })
            }
            _ => Ok(self.index.clone()),
        }
    }
}

/// How to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Documents handled per round (one cache lookup, a few embed calls, one upsert).
    pub batch_docs: usize,
    /// Retry documents that failed before.
    pub include_failed: bool,
    /// Distance for a collection synced for the first time.
    pub distance: Distance,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self { batch_docs: 1024, include_failed: true, distance: Distance::Cosine }
    }
}

/// Progress of a sync, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncProgress {
    /// Documents pending when the sync started (a lower bound: more may arrive).
    pub pending: u64,
    /// Documents handled so far (synced, deleted or failed).
    pub documents: u64,
    /// Chunks handled so far.
    pub chunks: u64,
    /// Chunks whose vector came from the cache.
    pub cache_hits: u64,
    /// Chunks sent to the embedder.
    pub embedded: u64,
    /// Calls made to the embedder.
    pub embed_calls: u64,
    /// Chunks identical to another chunk of the same batch (e.g. a copied document), embedded once for all of them:
    /// neither cache hits nor embedded themselves.
    pub duplicates: u64,
}

/// A document a sync could not project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedDocument {
    /// Its key.
    pub key: DocKey,
    /// Why.
    pub error: String,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncReport {
    /// The collection.
    pub collection: CollectionName,
    /// Counters.
    #[serde(flatten)]
    pub progress: SyncProgress,
    /// Documents now synced.
    pub synced: u64,
    /// Deletions projected (points removed).
    pub deleted: u64,
    /// Documents that failed, with their error.
    pub failed: Vec<FailedDocument>,
    /// Points written.
    pub points_upserted: u64,
    /// Stale points removed.
    pub points_retired: u64,
    /// Whether the collection's vector or chunking settings changed, so everything was re-projected.
    pub reprojected: bool,
}

impl SyncReport {
    /// The report of a sync of `collection` that has done nothing yet.
    pub fn new(collection: CollectionName) -> Self {
        Self {
            collection,
            progress: SyncProgress::default(),
            synced: 0,
            deleted: 0,
            failed: Vec::new(),
            points_upserted: 0,
            points_retired: 0,
            reprojected: false,
        }
    }
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncFailure {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The ledger or cache failed.
    #[error(transparent)]
    Ledger(#[from] SyncError),
    /// The index failed in a way that affects the whole collection (e.g. it cannot be created).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The embedder failed for every document of a batch; those documents are marked failed.
    #[error("the embedder failed: {0}")]
    Embedder(EmbedError),
    /// The [`Checkpoint`] asked the sync to stop. Every batch before the stop is committed; the documents not reached
    /// stay pending. The report counts what was done.
    #[error("the sync was stopped after {} of {} documents", .0.progress.documents, .0.progress.pending.max(.0.progress.documents))]
    Stopped(Box<SyncReport>),
    /// The collection has never been synced, so it has no index to search yet.
    #[error("collection \"{0}\" is not synced yet")]
    NotSynced(CollectionName),
}

/// Where a sync asks, before each batch, whether to go on: the one place it can stop cleanly, since every batch
/// before it is committed (ledger, cache and index agree) and the documents not reached stay pending.
pub trait Checkpoint: Send + Sync {
    /// Whether the sync stops before its next batch.
    fn should_stop(&self) -> BoxFuture<'_, bool>;
}

/// A [`Checkpoint`] that stops once [`CancelToken::cancel`] was called (by another task, a signal handler, ...).
/// Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every sync checking this token to stop at its next checkpoint.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Checkpoint for CancelToken {
    fn should_stop(&self) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(self.is_cancelled()))
    }
}

/// The index name of a collection in this store.
pub fn index_name(store: StoreId, collection: &CollectionName) -> IndexName {
    IndexName::for_collection(store, collection)
}

/// Makes sure the collection's vector settings match the embedder; returns the settings and whether everything must
/// be re-projected (embedder, dimension or distance changed).
async fn settle_settings(
    ports: &SyncPorts,
    collection: &CollectionName,
    distance: Distance,
) -> Result<(CollectionSettings, bool), SyncFailure> {
    let c = ports.repo.collection(collection).await?;
    let identity = ports.embedder.identity();
    match &c.settings.vectors {
        Some(v) if v.embedder == identity => Ok((c.settings, false)),
        previous => {
            let had = previous.is_some();
            let distance = previous.as_ref().map_or(distance, |v| v.distance);
            let settings = CollectionSettings { vectors: Some(VectorSettings { embedder: identity, distance }), ..c.settings };
            if had {
                // The old vectors cannot be mixed with the new ones: drop the projection and re-project everything.
                // Documents are pending during this, so no synced document is left without points.
                ports.ledger.mark_all_pending(collection).await?;
                ports.index.drop_collection(&index_name(ports.store_id, collection)).await?;
            }
            ports.repo.update_settings(collection, settings.clone()).await?;
            Ok((settings, had))
        }
    }
}

/// Syncs one collection. `progress` receives cumulative counters after every batch.
///
/// # Errors
/// Repository, ledger and collection-level index failures stop the sync. Embedder and per-batch index failures mark
/// the batch's documents `failed` (visible in `col status`); the sync then stops with [`SyncFailure::Embedder`] or
/// [`SyncFailure::Index`] since later batches would fail the same way.
pub async fn sync_collection(
    ports: &SyncPorts,
    collection: &CollectionName,
    opts: &SyncOptions,
    progress: &(dyn Fn(SyncProgress) + Sync),
) -> Result<SyncReport, SyncFailure> {
    sync_collection_until(ports, collection, opts, progress, &CancelToken::new()).await
}

/// [`sync_collection`] that asks `checkpoint` before every batch whether to stop.
///
/// # Errors
/// As [`sync_collection`], and [`SyncFailure::Stopped`] (with what was done) when the checkpoint stopped the sync
/// before a batch. A sync with nothing left to do finishes without asking.
#[tracing::instrument(skip_all, fields(collection = %collection))]
pub async fn sync_collection_until(
    ports: &SyncPorts,
    collection: &CollectionName,
    opts: &SyncOptions,
    progress: &(dyn Fn(SyncProgress) + Sync),
    checkpoint: &dyn Checkpoint,
) -> Result<SyncReport, SyncFailure> {
    let ports = &ports.for_collection(&ports.repo.collection(collection).await?.settings).await?;
    let (settings, reprojected) = settle_settings(ports, collection, opts.distance).await?;
    let vectors = settings.vectors.clone().ok_or_else(|| SyncFailure::Repo(RepoError::Unsupported("no vector settings".into())))?;
    let name = index_name(ports.store_id, collection);
    if let Err(e) = ports.index.ensure_collection(&name, &vectors).await {
        // Make the failure visible where users look (`col status`): the first batch of pending documents is marked
        // failed with the error; the rest stay pending.
        let first = ports.ledger.pending(collection, opts.include_failed, None, opts.batch_docs.max(1)).await?;
        for entry in first {
            ports.ledger.mark_failed(collection, &entry.key, format!("the vector index failed: {e}")).await?;
        }
        return Err(e.into());
    }
    let counts = ports.ledger.counts(Some(collection.clone())).await?;
    let mut report = SyncReport { reprojected, ..SyncReport::new(collection.clone()) };
    report.progress.pending = counts.pending + if opts.include_failed { counts.failed } else { 0 };
    progress(report.progress);

    let mut after: Option<DocKey> = None;
    loop {
        let batch = ports.ledger.pending(collection, opts.include_failed, after.clone(), opts.batch_docs.max(1)).await?;
        let Some(last) = batch.last() else { break };
        if checkpoint.should_stop().await {
            tracing::info!(documents = report.progress.documents, "sync stopped at a checkpoint");
            return Err(SyncFailure::Stopped(Box::new(report)));
        }
        after = Some(last.key.clone());
        let outcome = sync_batch(ports, collection, &name, &settings.chunking, batch, &mut report).await;
        progress(report.progress);
        outcome?;
    }
    Ok(report)
}

/// A live document ready to project.
struct Prepared {
    entry: LedgerEntry,
    current: ContentHash,
    metadata: serde_json::Map<String, serde_json::Value>,
    chunks: Vec<Chunk>,
}

async fn sync_batch(
    ports: &SyncPorts,
    collection: &CollectionName,
    name: &IndexName,
    chunking: &ChunkingSettings,
    batch: Vec<LedgerEntry>,
    report: &mut SyncReport,
) -> Result<(), SyncFailure> {
    crate::commit_log::began("sync", Some(collection));
    // Deletions: remove the projected points of every deleted document of the batch in one call, then forget their
    // rows in one ledger transaction.
    let (gone, live): (Vec<LedgerEntry>, Vec<LedgerEntry>) = batch.into_iter().partition(|e| e.current.is_none());
    if !gone.is_empty() {
        let ids: Vec<PointId> = gone
            .iter()
            .filter_map(|e| e.projected.map(|p| (e, p)))
            .flat_map(|(e, p)| (0..p.chunk_count).map(|i| PointId::derive(ports.store_id, collection, &e.key, i)))
            .collect();
        if !ids.is_empty() {
            let n = ids.len() as u64;
            if let Err(e) = ports.index.delete(name, ids).await {
                for entry in &gone {
                    ports.ledger.mark_failed(collection, &entry.key, e.to_string()).await?;
                    report.failed.push(FailedDocument { key: entry.key.clone(), error: e.to_string() });
                }
                report.progress.documents += gone.len() as u64;
                return Err(e.into());
            }
            report.points_retired += n;
        }
        report.progress.documents += gone.len() as u64;
        let marked = ports.ledger.mark_synced_batch(collection, gone.into_iter().map(|e| (e.key, None, None)).collect()).await?;
        report.deleted += marked.iter().filter(|m| **m).count() as u64;
    }
    if live.is_empty() {
        return Ok(());
    }

    // Read and chunk the live documents: the small ones together in one read, each larger one (over
    // `INLINE_BYTES`) on its own afterwards, so a batch holds at most `batch_docs` × `INLINE_BYTES` of text, or one
    // larger document.
    let keys = live.iter().map(|e| e.key.clone()).collect();
    let read = ports.repo.read_documents(collection, keys, INLINE_BYTES).await?;
    let mut docs = Vec::with_capacity(live.len());
    let mut large = Vec::new();
    for (entry, answer) in live.into_iter().zip(read) {
        match answer? {
            ReadDocument::Whole(meta, bytes) => docs.extend(prepare(entry, meta, &bytes, chunking)),
            ReadDocument::TooLarge(_) => large.push(entry),
            // Deleted since the ledger was read: the next round sees the pending deletion.
            ReadDocument::Missing => {}
        }
    }
    if !docs.is_empty() {
        project(ports, collection, name, docs, report).await?;
    }
    for entry in large {
        let answer = ports.repo.read_documents(collection, vec![entry.key.clone()], u64::MAX).await?.pop();
        if let Some(ReadDocument::Whole(meta, bytes)) = answer.transpose()?
            && let Some(d) = prepare(entry, meta, &bytes, chunking)
        {
            project(ports, collection, name, vec![d], report).await?;
        }
    }
    Ok(())
}

/// Documents up to this size are read together, a batch at a time; larger ones one at a time.
const INLINE_BYTES: u64 = 256 * 1024;

/// A live document read for projection: chunked, unless it changed since the ledger was read (`None`: it stays
/// pending for the next sync). Only text is embedded; other content is synced with no chunks.
fn prepare(entry: LedgerEntry, meta: colstore_domain::DocumentMeta, bytes: &[u8], chunking: &ChunkingSettings) -> Option<Prepared> {
    let current = entry.current.filter(|c| *c == meta.content_hash)?;
    let chunks = match std::str::from_utf8(bytes) {
        Ok(text) => chunk_text(text, chunking),
        Err(_) => Vec::new(),
    };
    Some(Prepared { entry, current, metadata: meta.metadata.0, chunks })
}

/// Projects read documents: the cache lookup, the embedding of the misses, the points, the retirements and the
/// ledger, in that order.
async fn project(
    ports: &SyncPorts,
    collection: &CollectionName,
    name: &IndexName,
    docs: Vec<Prepared>,
    report: &mut SyncReport,
) -> Result<(), SyncFailure> {
    // Cache lookup for every distinct chunk of the batch.
    let identity = ports.embedder.identity();
    let mut distinct: Vec<ContentHash> = Vec::new();
    let mut texts: HashMap<ContentHash, &str> = HashMap::new();
    for d in &docs {
        for c in &d.chunks {
            if texts.insert(c.hash, c.text.as_str()).is_none() {
                distinct.push(c.hash);
            }
        }
    }
    let cached = ports.ledger.cached_vectors(&identity, distinct.clone()).await?;
    let mut vectors: HashMap<ContentHash, Vector> = HashMap::with_capacity(distinct.len());
    let mut misses = Vec::new();
    for (h, v) in distinct.iter().zip(cached) {
        match v {
            Some(v) => {
                vectors.insert(*h, v);
            }
            None => misses.push(*h),
        }
    }
    let total_chunks: u64 = docs.iter().map(|d| d.chunks.len() as u64).sum();
    report.progress.chunks += total_chunks;
    let missed: HashSet<ContentHash> = misses.iter().copied().collect();
    let missed_chunks = docs.iter().flat_map(|d| &d.chunks).filter(|c| missed.contains(&c.hash)).count() as u64;
    report.progress.cache_hits += total_chunks - missed_chunks;
    report.progress.duplicates += missed_chunks - misses.len() as u64;

    // Embed the misses in batches; every answer goes to the cache at once, before anything else can fail.
    for group in misses.chunks(ports.embedder.max_batch().max(1)) {
        let inputs: Vec<String> = group.iter().map(|h| texts[h].to_owned()).collect();
        report.progress.embed_calls += 1;
        match ports.embedder.embed(inputs).await {
            Ok(got) => {
                report.progress.embedded += group.len() as u64;
                let fresh: Vec<(ContentHash, Vector)> = group.iter().copied().zip(got).collect();
                ports.ledger.cache_vectors(&identity, fresh.clone()).await?;
                vectors.extend(fresh);
            }
            Err(e) => {
                for d in &docs {
                    ports.ledger.mark_failed(collection, &d.entry.key, format!("embedding failed: {e}")).await?;
                    report.failed.push(FailedDocument { key: d.entry.key.clone(), error: format!("embedding failed: {e}") });
                }
                report.progress.documents += docs.len() as u64;
                return Err(SyncFailure::Embedder(e));
            }
        }
    }

    // Upsert the new version of every document, in batches the index accepts.
    let mut points = Vec::with_capacity(total_chunks as usize);
    for d in &docs {
        points.extend(points_of(ports.store_id, collection, &d.entry.key, d.current, &d.metadata, &d.chunks, &vectors));
    }
    if let Err(e) = upsert_in_calls(&*ports.index, name, points, &mut report.points_upserted).await {
        for d in &docs {
            ports.ledger.mark_failed(collection, &d.entry.key, format!("index upsert failed: {e}")).await?;
            report.failed.push(FailedDocument { key: d.entry.key.clone(), error: format!("index upsert failed: {e}") });
        }
        report.progress.documents += docs.len() as u64;
        return Err(e.into());
    }

    // Retire points of chunks that no longer exist (one call for the batch), then record every projection in one
    // ledger transaction.
    let stale: Vec<PointId> = docs
        .iter()
        .filter_map(|d| d.entry.projected.map(|old| (d, old.chunk_count)))
        .flat_map(|(d, old)| (d.chunks.len() as u32..old).map(|i| PointId::derive(ports.store_id, collection, &d.entry.key, i)))
        .collect();
    let retire_failed = if stale.is_empty() {
        None
    } else {
        let n = stale.len() as u64;
        match ports.index.delete(name, stale).await {
            Ok(()) => {
                report.points_retired += n;
                None
            }
            Err(e) => Some(e.to_string()),
        }
    };
    let mut synced_items = Vec::with_capacity(docs.len());
    for d in &docs {
        let new_count = d.chunks.len() as u32;
        if let Some(error) = &retire_failed
            && d.entry.projected.is_some_and(|old| old.chunk_count > new_count)
        {
            ports.ledger.mark_failed(collection, &d.entry.key, format!("retiring old points failed: {error}")).await?;
            report.failed.push(FailedDocument { key: d.entry.key.clone(), error: error.clone() });
            continue;
        }
        let projection = Projection { content_hash: d.current, chunk_count: new_count };
        synced_items.push((d.entry.key.clone(), Some(d.current), Some(projection)));
        report.progress.documents += 1;
    }
    let marked = ports.ledger.mark_synced_batch(collection, synced_items).await?;
    let synced = marked.iter().filter(|m| **m).count() as u64;
    crate::commit_log::durable("sync", collection, synced);
    report.synced += synced;
    Ok(())
}

/// The points of one version of a document: one per chunk, with the chunk's vector from `vectors` (which MUST hold
/// every chunk's) and the payload search and verification read. Sync and the repair of `verify --index` (which
/// restore uses) build points only here.
pub(crate) fn points_of(
    store_id: StoreId,
    collection: &CollectionName,
    key: &DocKey,
    content_hash: ContentHash,
    metadata: &serde_json::Map<String, serde_json::Value>,
    chunks: &[Chunk],
    vectors: &HashMap<ContentHash, Vector>,
) -> Vec<Point> {
    chunks
        .iter()
        .map(|c| Point {
            id: PointId::derive(store_id, collection, key, c.index),
            vector: vectors[&c.hash].clone(),
            payload: Payload {
                collection: collection.clone(),
                key: key.clone(),
                chunk: c.index,
                content_hash,
                chunk_hash: c.hash,
                metadata: metadata.clone(),
            },
        })
        .collect()
}

/// Writes `points` in as few calls as the index accepts (its `max_batch_points`), adding each call's points to
/// `written` once it returned.
///
/// # Errors
/// The first failed call; the calls before it are written.
pub(crate) async fn upsert_in_calls(
    index: &dyn VectorIndex,
    name: &IndexName,
    points: Vec<Point>,
    written: &mut u64,
) -> Result<(), IndexError> {
    let per_call = index.capabilities().max_batch_points.max(1);
    let mut remaining = points;
    while !remaining.is_empty() {
        let rest = remaining.split_off(remaining.len().min(per_call));
        let n = remaining.len() as u64;
        index.upsert(name, remaining).await?;
        *written += n;
        remaining = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use colstore_domain::ports::{IndexCapabilities, MockEmbedder, MockSyncStore, MockVectorIndex, SyncCounts, SyncState};
    use colstore_domain::{Collection, Dimension, EmbedderId, Timestamp};
    use mockall::Sequence;

    fn name() -> CollectionName {
        CollectionName::parse("c").unwrap()
    }

    fn identity() -> EmbedderId {
        EmbedderId { kind: "hash".into(), model: "v1".into(), dimension: Dimension::new(2).unwrap() }
    }

    /// The order of effects for one changed document: cache lookup, embed, cache store, upsert, retire, ledger.
    #[tokio::test]
    async fn effects_happen_in_the_safe_order() {
        let mut seq = Sequence::new();
        let mut repo = colstore_domain::ports::MockCollectionRepo::new();
        let mut ledger = MockSyncStore::new();
        let mut index = MockVectorIndex::new();
        let mut embedder = MockEmbedder::new();
        let key = DocKey::parse("a.md").unwrap();
        let text = "hello world";
        let hash = ContentHash::of(text.as_bytes());
        let old_hash = ContentHash::of(b"old");

        embedder.expect_identity().returning(identity);
        embedder.expect_max_batch().returning(|| 16);
        index.expect_capabilities().returning(|| IndexCapabilities {
            max_batch_points: 100,
            max_request_bytes: 1 << 20,
            filter_should: true,
            exact_count: true,
            snapshots: false,
        });
        repo.expect_collection().returning(|n| {
            Ok(Collection {
                name: n.clone(),
                settings: CollectionSettings {
                    vectors: Some(VectorSettings { embedder: identity(), distance: Distance::Cosine }),
                    chunking: ChunkingSettings::default(),
                    index: None,
                    fusion: None,
                    indexed_fields: Vec::new(),
                },
                created_at: Timestamp::EPOCH,
                document_count: 1,
                logical_bytes: 11,
            })
        });
        index.expect_ensure_collection().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
        ledger.expect_counts().returning(|_| Ok(SyncCounts { pending: 1, synced: 0, failed: 0 }));
        let k2 = key.clone();
        ledger.expect_pending().times(1).in_sequence(&mut seq).returning(move |c, _, _, _| {
            Ok(vec![LedgerEntry {
                collection: c.clone(),
                key: k2.clone(),
                state: SyncState::Pending,
                current: Some(hash),
                // It had 3 chunks before; now it has 1, so chunks 1 and 2 must be retired after the upsert.
                projected: Some(Projection { content_hash: old_hash, chunk_count: 3 }),
                attempts: 0,
                error: None,
                updated_at: Timestamp::EPOCH,
            }])
        });
        let k3 = key.clone();
        repo.expect_read_documents().times(1).in_sequence(&mut seq).returning(move |c, keys, max| {
            assert_eq!(keys, std::slice::from_ref(&k3), "the batch's live documents in one read");
            assert_eq!(max, INLINE_BYTES, "larger documents are read on their own");
            let meta = colstore_domain::DocumentMeta {
                collection: c.clone(),
                key: k3.clone(),
                content_hash: hash,
                size: 11,
                metadata: Default::default(),
                tags: Default::default(),
                version: 2,
                created_at: Timestamp::EPOCH,
                updated_at: Timestamp::EPOCH,
            };
            Ok(vec![Ok(ReadDocument::Whole(meta, bytes::Bytes::from_static(b"hello world")))])
        });
        ledger.expect_cached_vectors().times(1).in_sequence(&mut seq).returning(|_, hs| Ok(hs.iter().map(|_| None).collect()));
        embedder.expect_embed().times(1).in_sequence(&mut seq).returning(|t| Ok(t.iter().map(|_| vec![1.0, 0.0]).collect()));
        ledger.expect_cache_vectors().times(1).in_sequence(&mut seq).returning(|_, v| {
            assert_eq!(v.len(), 1);
            Ok(())
        });
        index.expect_upsert().times(1).in_sequence(&mut seq).returning(|_, points| {
            assert_eq!(points.len(), 1);
            assert_eq!(points[0].payload.chunk, 0);
            Ok(())
        });
        let store = StoreId::random();
        let expected_stale: Vec<PointId> = (1..3).map(|i| PointId::derive(store, &name(), &key, i)).collect();
        index.expect_delete().times(1).in_sequence(&mut seq).returning(move |_, ids| {
            assert_eq!(ids, expected_stale, "only the chunks beyond the new count are retired");
            Ok(())
        });
        ledger.expect_mark_synced_batch().times(1).in_sequence(&mut seq).returning(move |_, items| {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].1, Some(hash));
            assert_eq!(items[0].2, Some(Projection { content_hash: hash, chunk_count: 1 }));
            Ok(vec![true])
        });
        ledger.expect_pending().times(1).in_sequence(&mut seq).returning(|_, _, _, _| Ok(vec![]));

        let ports = SyncPorts {
            repo: Arc::new(repo),
            ledger: Arc::new(ledger),
            router: OneIndex::router(Arc::new(MockVectorIndex::new())),
            index: Arc::new(index),
            embedder: Arc::new(embedder),
            text: Arc::new(colstore_domain::ports::MockTextIndex::new()),
            store_id: store,
        };
        let r = sync_collection(&ports, &name(), &SyncOptions::default(), &|_| {}).await.unwrap();
        assert_eq!((r.synced, r.points_upserted, r.points_retired, r.progress.embedded), (1, 1, 2, 1));
    }

    /// A failing embedder leaves the batch failed and never touches the index or marks anything synced.
    #[tokio::test]
    async fn a_failing_embedder_marks_documents_failed_and_nothing_synced() {
        let mut repo = colstore_domain::ports::MockCollectionRepo::new();
        let mut ledger = MockSyncStore::new();
        let mut index = MockVectorIndex::new();
        let mut embedder = MockEmbedder::new();
        embedder.expect_identity().returning(identity);
        embedder.expect_max_batch().returning(|| 16);
        embedder.expect_embed().returning(|_| Err(EmbedError::Unavailable("down".into())));
        repo.expect_collection().returning(|n| {
            Ok(Collection {
                name: n.clone(),
                settings: CollectionSettings::default(),
                created_at: Timestamp::EPOCH,
                document_count: 1,
                logical_bytes: 5,
            })
        });
        repo.expect_update_settings().times(1).returning(|n, s| {
            Ok(Collection { name: n.clone(), settings: s, created_at: Timestamp::EPOCH, document_count: 1, logical_bytes: 5 })
        });
        index.expect_ensure_collection().returning(|_, _| Ok(()));
        index.expect_upsert().never();
        ledger.expect_mark_synced().never();
        ledger.expect_mark_synced_batch().never();
        ledger.expect_counts().returning(|_| Ok(SyncCounts { pending: 1, synced: 0, failed: 0 }));
        ledger.expect_pending().returning(|c, _, _, _| {
            Ok(vec![LedgerEntry {
                collection: c.clone(),
                key: DocKey::parse("a").unwrap(),
                state: SyncState::Pending,
                current: Some(ContentHash::of(b"hello")),
                projected: None,
                attempts: 0,
                error: None,
                updated_at: Timestamp::EPOCH,
            }])
        });
        repo.expect_read_documents().returning(|c, keys, _| {
            let k = &keys[0];
            let meta = colstore_domain::DocumentMeta {
                collection: c.clone(),
                key: k.clone(),
                content_hash: ContentHash::of(b"hello"),
                size: 5,
                metadata: Default::default(),
                tags: Default::default(),
                version: 1,
                created_at: Timestamp::EPOCH,
                updated_at: Timestamp::EPOCH,
            };
            Ok(vec![Ok(ReadDocument::Whole(meta, bytes::Bytes::from_static(b"hello")))])
        });
        ledger.expect_cached_vectors().returning(|_, hs| Ok(hs.iter().map(|_| None).collect()));
        ledger.expect_mark_failed().times(1).returning(|_, _, e| {
            assert!(e.contains("down"));
            Ok(())
        });
        let ports = SyncPorts {
            repo: Arc::new(repo),
            ledger: Arc::new(ledger),
            router: OneIndex::router(Arc::new(MockVectorIndex::new())),
            index: Arc::new(index),
            embedder: Arc::new(embedder),
            text: Arc::new(colstore_domain::ports::MockTextIndex::new()),
            store_id: StoreId::random(),
        };
        let r = sync_collection(&ports, &name(), &SyncOptions::default(), &|_| {}).await;
        assert!(matches!(r, Err(SyncFailure::Embedder(_))));
    }
}

/// The use case over the faithful fakes: state, not interactions.
#[cfg(test)]
mod with_fakes {
    use super::*;
    use async_trait::async_trait;
    use colstore_domain::ports::{SyncState, SyncStore};
    use colstore_domain::{CollectionSpec, Content, Dimension, EmbedderId, Metadata, NewDocument, Tags};
    use colstore_testkit::{InMemoryIndex, InMemoryRepo, ManualClock};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A deterministic embedder that counts what it embeds.
    #[derive(Default)]
    struct Counting(AtomicU64);

    #[async_trait]
    impl Embedder for Counting {
        fn identity(&self) -> EmbedderId {
            EmbedderId { kind: "test".into(), model: "count".into(), dimension: Dimension::new(3).unwrap() }
        }
        fn max_batch(&self) -> usize {
            2
        }
        async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vector>, EmbedError> {
            self.0.fetch_add(texts.len() as u64, Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0, 0.5]).collect())
        }
    }

    async fn setup() -> (Arc<InMemoryRepo>, Arc<InMemoryIndex>, Arc<Counting>, SyncPorts) {
        let repo = Arc::new(InMemoryRepo::new(Arc::new(ManualClock::at_2024())));
        let index = Arc::new(InMemoryIndex::new());
        let embedder = Arc::new(Counting::default());
        let c = CollectionName::parse("c").unwrap();
        repo.create_collection(CollectionSpec { name: c.clone(), settings: CollectionSettings::default() }).await.unwrap();
        let docs = (0..5)
            .map(|i| NewDocument {
                key: DocKey::parse(&format!("d{i}.md")).unwrap(),
                content: Content::Bytes(format!("document number {i}").into_bytes().into()),
                metadata: Metadata::default(),
                tags: Tags::default(),
            })
            .collect();
        repo.put_batch(&c, docs).await.unwrap();
        let ports = SyncPorts {
            repo: repo.clone(),
            ledger: repo.clone(),
            index: index.clone(),
            router: OneIndex::router(index.clone()),
            embedder: embedder.clone(),
            text: repo.clone(),
            store_id: StoreId::random(),
        };
        (repo, index, embedder, ports)
    }

    #[tokio::test]
    async fn a_failing_index_leaves_documents_failed_and_nothing_synced() {
        let (repo, index, embedder, ports) = setup().await;
        let c = CollectionName::parse("c").unwrap();
        index
            .ensure_collection(
                &index_name(ports.store_id, &c),
                &VectorSettings { embedder: embedder.identity(), distance: Distance::Cosine },
            )
            .await
            .unwrap();
        index.set_unavailable(Some("index down"));
        let r = sync_collection(&ports, &c, &SyncOptions::default(), &|_| {}).await;
        assert!(r.is_err(), "the sync reports the failure");
        let counts = repo.counts(Some(c.clone())).await.unwrap();
        assert_eq!((counts.synced, counts.failed), (0, 5), "nothing is marked synced that is not in the index");
        let errors = repo.recent_errors(Some(c.clone()), 10).await.unwrap();
        assert!(errors.iter().all(|e| e.state == SyncState::Failed && e.error.as_deref().unwrap_or("").contains("index down")));
        // Once the index is back, the failed documents are retried and each chunk is paid for once.
        index.set_unavailable(None);
        let r = sync_collection(&ports, &c, &SyncOptions::default(), &|_| {}).await.unwrap();
        assert_eq!(r.synced, 5);
        assert_eq!(embedder.0.load(Ordering::SeqCst), 5);
        assert_eq!(repo.counts(Some(c)).await.unwrap().failed, 0);
    }

    /// A document larger than `INLINE_BYTES` is read on its own, after the batch's small ones, and is projected like
    /// them; the repair of `verify --index` (what a restore runs) rebuilds it too.
    #[tokio::test]
    async fn a_larger_document_is_read_alone_and_projected_like_the_others() {
        let (repo, index, embedder, ports) = setup().await;
        let c = CollectionName::parse("c").unwrap();
        let big: String = (0..40_000).map(|i| format!("w{i} ")).collect();
        assert!(big.len() as u64 > INLINE_BYTES);
        let doc = NewDocument {
            key: DocKey::parse("d2-big.md").unwrap(),
            content: Content::Bytes(big.clone().into_bytes().into()),
            metadata: Metadata::default(),
            tags: Tags::default(),
        };
        repo.put_batch(&c, vec![doc]).await.unwrap();
        let r = sync_collection(&ports, &c, &SyncOptions::default(), &|_| {}).await.unwrap();
        let big_chunks = chunk_text(&big, &ChunkingSettings::default()).len() as u64;
        assert_eq!(r.synced, 6, "{r:?}");
        assert_eq!(r.points_upserted, 5 + big_chunks, "every chunk of every document, the large one's included");
        let name = index_name(ports.store_id, &c);
        assert_eq!(index.count(&name, None).await.unwrap(), 5 + big_chunks);
        let embedded = embedder.0.load(Ordering::SeqCst);

        index.drop_collection(&name).await.unwrap();
        let report = crate::verify_index(&ports, &c, true).await.unwrap();
        assert_eq!((report.repaired, report.marked_pending.len()), (5 + big_chunks, 0), "{report:?}");
        assert!(crate::verify_index(&ports, &c, false).await.unwrap().drift.is_empty());
        assert_eq!(embedder.0.load(Ordering::SeqCst), embedded, "the repair embeds nothing");
    }

    #[tokio::test]
    async fn unchanged_chunks_are_never_embedded_twice_and_deletes_propagate() {
        let (repo, index, embedder, ports) = setup().await;
        let c = CollectionName::parse("c").unwrap();
        sync_collection(&ports, &c, &SyncOptions::default(), &|_| {}).await.unwrap();
        assert_eq!(embedder.0.load(Ordering::SeqCst), 5);
        let name = index_name(ports.store_id, &c);
        assert_eq!(index.count(&name, None).await.unwrap(), 5);
        // A second sync, a re-chunk of everything, and a reindex embed nothing new.
        sync_collection(&ports, &c, &SyncOptions::default(), &|_| {}).await.unwrap();
        crate::reindex(&ports, &c, &SyncOptions::default(), &|_| {}).await.unwrap();
        assert_eq!(embedder.0.load(Ordering::SeqCst), 5);
        repo.delete_documents(&c, vec![DocKey::parse("d0.md").unwrap()]).await.unwrap();
        let r = sync_collection(&ports, &c, &SyncOptions::default(), &|_| {}).await.unwrap();
        assert_eq!((r.deleted, r.points_retired), (1, 1));
        assert_eq!(index.count(&name, None).await.unwrap(), 4);
        let report = crate::verify_index(&ports, &c, false).await.unwrap();
        assert!(report.drift.is_empty(), "{:?}", report.drift);
    }
}
