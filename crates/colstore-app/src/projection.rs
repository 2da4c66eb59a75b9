//! Use cases over the projection: status, `verify --index [--repair]`, reindex (search is in `search.rs`).

use std::collections::{BTreeMap, HashMap};

use colstore_domain::ports::{
    IndexError, IndexHealth, LedgerEntry, Projection, ReadDocument, RepoError, ScrollRequest, StoredPoint, SyncCounts, SyncState,
};
use colstore_domain::{ChunkingSettings, Collection, CollectionName, ContentHash, DocKey, Point, PointId, StoreId, Vector, chunk_text};
use futures::StreamExt;
use serde::Serialize;

use crate::sync::{SyncFailure, SyncPorts, index_name, points_of, upsert_in_calls};

/// Sync status of one collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionStatus {
    /// The collection.
    pub collection: CollectionName,
    /// Documents.
    pub documents: u64,
    /// Ledger counts.
    #[serde(flatten)]
    pub counts: SyncCounts,
    /// The embedder and distance of its vectors, once synced.
    pub embedder: Option<String>,
    /// The vector index it projects into (the store's default unless its settings name another).
    pub index: String,
    /// The most recent errors.
    pub errors: Vec<LedgerEntry>,
}

/// The universal sync status (`col status`).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The index backend's health.
    pub index: IndexHealth,
    /// How long the health check took, in milliseconds (a remote engine's round trip).
    pub index_latency_ms: u64,
    /// Every other index a collection shown projects into (`col collection create --vectors`, `reindex --to`), with
    /// its health: one request each, as for the default.
    pub other_indexes: Vec<TargetHealth>,
    /// Per collection.
    pub collections: Vec<CollectionStatus>,
}

/// The health of an index that is not the store's default.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    /// Its target (`qdrant://HOST:PORT`, `embedded`, …).
    pub target: String,
    /// Its health; an index that cannot even be built (a malformed target) is unhealthy with the reason.
    pub index: IndexHealth,
    /// How long the health check took, in milliseconds.
    pub latency_ms: u64,
}

/// The health of `index` and how long asking took; an error is an unhealthy status, not a failure.
async fn health_of(index: Result<std::sync::Arc<dyn colstore_domain::ports::VectorIndex>, IndexError>) -> (IndexHealth, u64) {
    let asked = std::time::Instant::now();
    let unhealthy = |e: IndexError| IndexHealth { backend: "unknown".into(), version: None, ok: false, detail: Some(e.to_string()) };
    let health = match index {
        Ok(index) => index.health().await.unwrap_or_else(unhealthy),
        Err(e) => unhealthy(e),
    };
    (health, u64::try_from(asked.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// Gathers the sync status of one collection or all.
///
/// # Errors
/// Repository or ledger failures; an unreachable index is reported in `index`, not as an error.
pub async fn status(ports: &SyncPorts, only: Option<&CollectionName>) -> Result<Status, SyncFailure> {
    let (index, index_latency_ms) = health_of(Ok(ports.index.clone())).await;
    let collections = match only {
        Some(c) => vec![ports.repo.collection(c).await?],
        None => ports.repo.list_collections().await?,
    };
    let default = ports.router.default_target();
    let mut others: Vec<String> = collections.iter().filter_map(|c| c.settings.index.clone()).filter(|t| *t != default).collect();
    others.sort();
    others.dedup();
    let mut other_indexes = Vec::with_capacity(others.len());
    for target in others {
        let (index, latency_ms) = health_of(ports.router.route(Some(target.clone())).await).await;
        other_indexes.push(TargetHealth { target, index, latency_ms });
    }
    let mut out = Vec::with_capacity(collections.len());
    for c in collections {
        let counts = ports.ledger.counts(Some(c.name.clone())).await?;
        let errors = ports.ledger.recent_errors(Some(c.name.clone()), 5).await?;
        out.push(CollectionStatus {
            collection: c.name,
            documents: c.document_count,
            counts,
            embedder: c.settings.vectors.as_ref().map(|v| format!("{} ({})", v.embedder, v.distance)),
            index: c.settings.index.clone().unwrap_or_else(|| ports.router.default_target()),
            errors,
        });
    }
    Ok(Status { index, index_latency_ms, other_indexes, collections: out })
}

/// One problem found by `verify --index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// `missing` (the ledger says synced, the index lacks the point), `stale` (the point holds another version) or
    /// `orphan` (the index holds a point the ledger does not account for).
    pub kind: &'static str,
    /// The document key.
    pub key: DocKey,
    /// The chunk number.
    pub chunk: u32,
    /// The point id.
    pub id: String,
}

/// The outcome of `verify --index`.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    /// The collection.
    pub collection: CollectionName,
    /// Points the ledger expects.
    pub expected_points: u64,
    /// Points the index holds.
    pub index_points: u64,
    /// Every problem.
    pub drift: Vec<Drift>,
    /// Points rewritten or deleted by `--repair`.
    pub repaired: u64,
    /// Documents that could not be repaired from the cache and were marked pending for the next sync.
    pub marked_pending: Vec<DocKey>,
}

/// [`verify_index`] of each of `collections`, in order (`col verify --index [--repair]`).
///
/// # Errors
/// As [`verify_index`], for the first collection that fails.
pub async fn verify_indexes(ports: &SyncPorts, collections: &[CollectionName], repair: bool) -> Result<Vec<IndexReport>, SyncFailure> {
    let mut reports = Vec::with_capacity(collections.len());
    for c in collections {
        reports.push(verify_index(ports, c, repair).await?);
    }
    Ok(reports)
}

/// Compares the ledger with what the index really holds (ids and content hashes, by scrolling); with `repair`,
/// rewrites missing and stale points from the local cache (no embedder calls) and deletes orphans.
///
/// # Errors
/// Repository, ledger or index failures.
pub async fn verify_index(ports: &SyncPorts, collection: &CollectionName, repair: bool) -> Result<IndexReport, SyncFailure> {
    let c = ports.repo.collection(collection).await?;
    verify_projection(&ports.for_collection(&c.settings).await?, &c, repair).await
}

/// Points per page when `verify --index` (and a move's check) reads a projection back: few round trips, small pages
/// (no vectors).
const VERIFY_PAGE: usize = 2048;

/// What the ledger says a collection's projection holds, gathered from its rows in key order.
#[derive(Default)]
struct Expected {
    /// Every point of every projected row: id → (key, chunk, content hash). Rows not synced are expected to differ;
    /// a pending or failed row keeps its old projection in the index.
    points: BTreeMap<PointId, (DocKey, u32, colstore_domain::ContentHash)>,
    /// The synced rows, which a repair may rewrite.
    synced: HashMap<DocKey, LedgerEntry>,
}

impl Expected {
    /// Adds one page of ledger rows.
    fn add(&mut self, store_id: StoreId, collection: &CollectionName, rows: &[LedgerEntry]) {
        for r in rows {
            if let Some(p) = r.projected {
                for i in 0..p.chunk_count {
                    self.points.insert(PointId::derive(store_id, collection, &r.key, i), (r.key.clone(), i, p.content_hash));
                }
            }
            if r.state == SyncState::Synced {
                self.synced.insert(r.key.clone(), r.clone());
            }
        }
    }

    /// Reads the whole ledger of `collection`.
    async fn read(ports: &SyncPorts, collection: &CollectionName) -> Result<Self, SyncFailure> {
        let mut expected = Self::default();
        let mut after = None;
        loop {
            let rows = ports.ledger.ledger(collection, after.clone(), 1000).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.key.clone());
            expected.add(ports.store_id, collection, &rows);
        }
        Ok(expected)
    }
}

/// [`verify_index`] of `c` against `ports.index`, whichever index that is.
async fn verify_projection(ports: &SyncPorts, c: &Collection, repair: bool) -> Result<IndexReport, SyncFailure> {
    let expected = Expected::read(ports, &c.name).await?;
    check_projection(ports, c, expected, repair).await
}

/// Compares `expected` (the ledger of `c`) with what `ports.index` holds; repairs with `repair`. `col reindex --to`
/// checks a new projection this way, with the ledger it read while writing it, before the collection switches to it.
async fn check_projection(ports: &SyncPorts, c: &Collection, expected: Expected, repair: bool) -> Result<IndexReport, SyncFailure> {
    let collection = &c.name;
    let name = index_name(ports.store_id, collection);
    let mut report = IndexReport {
        collection: collection.clone(),
        expected_points: 0,
        index_points: 0,
        drift: Vec::new(),
        repaired: 0,
        marked_pending: Vec::new(),
    };
    let Expected { points: expected, synced } = expected;
    report.expected_points = expected.len() as u64;

    // What the index holds: id → (key, chunk, content hash), the rest of each payload dropped as it is read, so a
    // large collection is held as small as its ledger.
    let mut seen: HashMap<PointId, (DocKey, u32, colstore_domain::ContentHash)> = HashMap::new();
    let index_exists = c.settings.vectors.is_some();
    if index_exists {
        let mut from = None;
        loop {
            let request = ScrollRequest { from, limit: VERIFY_PAGE, filter: None, with_vectors: false };
            let page = match ports.index.scroll(&name, request).await {
                Ok(p) => p,
                Err(colstore_domain::ports::IndexError::CollectionNotFound(_)) => break,
                Err(e) => return Err(e.into()),
            };
            for StoredPoint { id, payload, .. } in page.points {
                seen.insert(id, (payload.key, payload.chunk, payload.content_hash));
            }
            match page.next {
                Some(n) => from = Some(n),
                None => break,
            }
        }
    }
    report.index_points = seen.len() as u64;

    let mut to_rewrite: BTreeMap<DocKey, ()> = BTreeMap::new();
    for (id, (key, chunk, hash)) in &expected {
        match seen.get(id) {
            None => {
                report.drift.push(Drift { kind: "missing", key: key.clone(), chunk: *chunk, id: id.to_string() });
                to_rewrite.insert(key.clone(), ());
            }
            Some((k, c, h)) if h != hash || k != key || c != chunk => {
                report.drift.push(Drift { kind: "stale", key: key.clone(), chunk: *chunk, id: id.to_string() });
                to_rewrite.insert(key.clone(), ());
            }
            Some(_) => {}
        }
    }
    let mut orphans = Vec::new();
    for (id, (key, chunk, _)) in &seen {
        if !expected.contains_key(id) {
            report.drift.push(Drift { kind: "orphan", key: key.clone(), chunk: *chunk, id: id.to_string() });
            orphans.push(*id);
        }
    }
    report.drift.sort_by(|a, b| (a.key.as_str(), a.chunk, a.kind).cmp(&(b.key.as_str(), b.chunk, b.kind)));
    if !repair || report.drift.is_empty() {
        return Ok(report);
    }

    // Repair: rewrite the projection of each affected document from the cache, a batch of documents at a time with
    // the shape of a sync's batch (one read, one cache lookup, one index write), then delete orphans.
    let vectors_settings = c.settings.vectors.clone();
    if let Some(v) = &vectors_settings {
        ports.index.ensure_collection(&name, v).await?;
    }
    // Pending or failed rows are fixed by the next sync.
    let rewrite: Vec<(DocKey, Projection)> =
        to_rewrite.keys().filter_map(|k| synced.get(k)).filter_map(|e| e.projected.map(|p| (e.key.clone(), p))).collect();
    for group in rewrite.chunks(REPAIR_BATCH_DOCS) {
        // The documents up to `INLINE_BYTES` together; each larger one on its own, up to `LARGE_CONTENT` (a restore
        // repairs right after writing it, and the vectors of a larger one are not in the backup: the next sync
        // re-projects it, from the cache when its vectors are there).
        let (points, mut unrepairable, larger) = rebuild_points(ports, collection, &c.settings.chunking, group, INLINE_BYTES).await?;
        upsert_in_calls(&*ports.index, &name, points, &mut report.repaired).await?;
        for one in larger {
            let large = crate::backup::format::LARGE_CONTENT;
            let (points, more, too_large) = rebuild_points(ports, collection, &c.settings.chunking, &[one], large).await?;
            upsert_in_calls(&*ports.index, &name, points, &mut report.repaired).await?;
            unrepairable.extend(more.into_iter().chain(too_large.into_iter().map(|(k, _)| k)));
        }
        for key in unrepairable {
            // The content changed or a vector is missing from the cache: let the next sync redo it.
            ports.ledger.mark_failed(collection, &key, "index drift found by verify --index".into()).await?;
            report.marked_pending.push(key);
        }
    }
    if !orphans.is_empty() {
        report.repaired += orphans.len() as u64;
        ports.index.delete(&name, orphans).await?;
    }
    Ok(report)
}

/// Documents whose projection a repair rewrites per batch.
const REPAIR_BATCH_DOCS: usize = 1024;

/// Documents up to this size are read a batch at a time by the repair; larger ones one at a time.
const INLINE_BYTES: u64 = 256 * 1024;

/// A batch of points, the documents that cannot be rebuilt, and those larger than the read's limit.
type Rebuilt = (Vec<Point>, Vec<DocKey>, Vec<(DocKey, Projection)>);

/// The points of the current versions of `group`'s documents of at most `max_bytes`, from the cache only (one read
/// of the documents, one cache lookup); the documents that cannot be rebuilt so (changed since their projection, not
/// text, or with a vector missing from the cache); and those larger than `max_bytes`, not read.
async fn rebuild_points(
    ports: &SyncPorts,
    collection: &CollectionName,
    chunking: &ChunkingSettings,
    group: &[(DocKey, Projection)],
    max_bytes: u64,
) -> Result<Rebuilt, SyncFailure> {
    let read = ports.repo.read_documents(collection, group.iter().map(|(k, _)| k.clone()).collect(), max_bytes).await?;
    let mut larger = Vec::new();
    let mut unrepairable = Vec::new();
    let mut docs = Vec::with_capacity(group.len());
    for ((key, projected), answer) in group.iter().zip(read) {
        let text = match answer? {
            ReadDocument::Whole(meta, bytes) if meta.content_hash == projected.content_hash => {
                String::from_utf8(bytes.to_vec()).ok().map(|text| (meta, text))
            }
            ReadDocument::TooLarge(_) => {
                larger.push((key.clone(), *projected));
                continue;
            }
            _ => None,
        };
        match text {
            Some((meta, text)) => docs.push((key, *projected, meta, chunk_text(&text, chunking))),
            None => unrepairable.push(key.clone()),
        }
    }
    let mut distinct: Vec<ContentHash> = docs.iter().flat_map(|(_, _, _, chunks)| chunks.iter().map(|c| c.hash)).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let cached = ports.ledger.cached_vectors(&ports.embedder.identity(), distinct.clone()).await?;
    let vectors: HashMap<ContentHash, Vector> = distinct.into_iter().zip(cached).filter_map(|(h, v)| v.map(|v| (h, v))).collect();
    let mut points = Vec::new();
    for (key, projected, meta, chunks) in docs {
        if chunks.len() as u32 != projected.chunk_count || chunks.iter().any(|c| !vectors.contains_key(&c.hash)) {
            unrepairable.push(key.clone());
            continue;
        }
        points.extend(points_of(ports.store_id, collection, key, meta.content_hash, &meta.metadata.0, &chunks, &vectors));
    }
    Ok((points, unrepairable, larger))
}

/// Rebuilds a collection's projection: drops the index collection, marks every document pending, and syncs again,
/// which takes every vector from the cache (an embedder is called only for chunks that were never embedded).
///
/// # Errors
/// As [`crate::sync_collection`].
pub async fn reindex(
    ports: &SyncPorts,
    collection: &CollectionName,
    opts: &crate::SyncOptions,
    progress: &(dyn Fn(crate::SyncProgress) + Sync),
) -> Result<crate::SyncReport, SyncFailure> {
    let c = ports.repo.collection(collection).await?;
    let routed = ports.for_collection(&c.settings).await?;
    ports.ledger.mark_all_pending(collection).await?;
    routed.index.drop_collection(&index_name(ports.store_id, collection)).await?;
    crate::sync_collection(ports, collection, opts, progress).await
}

/// What [`move_index`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveReport {
    /// The collection.
    pub collection: CollectionName,
    /// The index it projected into before.
    pub from: String,
    /// The index it projects into now.
    pub to: String,
    /// Points written into the new index, every vector from the embedding cache.
    pub points_written: u64,
    /// Points the new index held when it was verified.
    pub verified_points: u64,
    /// Synced documents whose vectors were not in the cache (or that changed meanwhile): marked failed, so the next
    /// `col sync` projects them into the new index.
    pub left_for_sync: Vec<DocKey>,
    /// Whether the old projection was dropped (`false` with `--keep-old`, or when dropping it failed).
    pub old_dropped: bool,
    /// Why the old projection could not be dropped; the move itself is complete.
    pub old_drop_problem: Option<String>,
}

/// Why [`move_index`] did not switch the collection (it still projects into its old index, unchanged).
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The collection already projects into that index.
    #[error("collection \"{collection}\" already projects into {target}")]
    AlreadyThere {
        /// The collection.
        collection: CollectionName,
        /// The index.
        target: String,
    },
    /// The new projection did not match the ledger; it was dropped again.
    #[error(
        "the new projection of \"{collection}\" in {target} does not match what was written ({problems} problems, first: {first}); nothing was switched"
    )]
    Unverified {
        /// The collection.
        collection: CollectionName,
        /// The new index.
        target: String,
        /// How many points differ.
        problems: usize,
        /// The first difference, as `kind key#chunk`.
        first: String,
    },
    /// A store, ledger or index failure; the collection still projects into its old index.
    #[error(transparent)]
    Sync(#[from] SyncFailure),
}

impl From<IndexError> for MoveError {
    fn from(e: IndexError) -> Self {
        Self::Sync(e.into())
    }
}

impl From<RepoError> for MoveError {
    fn from(e: RepoError) -> Self {
        Self::Sync(e.into())
    }
}

impl From<colstore_domain::ports::SyncError> for MoveError {
    fn from(e: colstore_domain::ports::SyncError) -> Self {
        Self::Sync(e.into())
    }
}

/// `col reindex COLLECTION --to TARGET`: projects a collection into another index from the embedding cache, with no
/// embedder call, checks the new projection against the ledger (every expected point there with its content hash,
/// nothing else), and only then switches the collection's settings to it (one transaction). The old projection is
/// dropped after the switch unless `keep_old`. Until the switch every search still reads the old index; after it, the
/// new one. `to` is a canonical target ([`IndexRouter::canonical`](colstore_domain::ports::IndexRouter::canonical)).
/// `progress` hears the points written so far.
///
/// Synced documents whose vectors are not in the cache are marked failed before the switch (with the reason), so
/// the ledger never calls a document synced that the new index lacks; the next `col sync` projects them, and pays
/// for those embeddings only. Interrupted at any point before the switch, the collection is unchanged (the partial
/// new projection is dropped by the next attempt); after it, at worst the old projection is left behind.
///
/// # Errors
/// [`MoveError::AlreadyThere`], [`MoveError::Unverified`], or a store, ledger or index failure; in every case the
/// collection still projects into its old index.
pub async fn move_index(
    ports: &SyncPorts,
    collection: &CollectionName,
    to: &str,
    keep_old: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<MoveReport, MoveError> {
    let c = ports.repo.collection(collection).await?;
    let default = ports.router.default_target();
    let from = c.settings.index.clone().unwrap_or_else(|| default.clone());
    if from == to {
        return Err(MoveError::AlreadyThere { collection: collection.clone(), target: to.to_owned() });
    }
    let new_target = (to != default).then(|| to.to_owned());
    let old = ports.for_collection(&c.settings).await?;
    let new = SyncPorts { index: ports.router.route(new_target.clone()).await?, ..ports.clone() };
    let name = index_name(ports.store_id, collection);
    let mut report = MoveReport {
        collection: collection.clone(),
        from,
        to: to.to_owned(),
        points_written: 0,
        verified_points: 0,
        left_for_sync: Vec::new(),
        old_dropped: false,
        old_drop_problem: None,
    };

    crate::commit_log::began("reindex", Some(collection));
    if let Some(vectors) = &c.settings.vectors {
        // A clean slate: whatever an interrupted attempt left there is not this projection.
        new.index.drop_collection(&name).await?;
        new.index.ensure_collection(&name, vectors).await?;
        let mut after = None;
        // The ledger as read here is what the new projection is checked against (the store is locked meanwhile).
        let mut expected = Expected::default();
        // A pipeline: while the engine takes one upsert call, the next call's body is written (by the adapter, on a
        // blocking thread) and the next batch is read, chunked and looked up in the cache, so colstore and the engine
        // work at once instead of waiting for each other.
        let per_call = new.index.capabilities().max_batch_points.max(1);
        let mut in_flight: Calls<'_> = futures::stream::FuturesOrdered::new();
        loop {
            let rows = ports.ledger.ledger(collection, after.clone(), 1000).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.key.clone());
            expected.add(ports.store_id, collection, &rows);
            let synced: Vec<(DocKey, Projection)> =
                rows.into_iter().filter(|r| r.state == SyncState::Synced).filter_map(|r| r.projected.map(|p| (r.key, p))).collect();
            for group in synced.chunks(REPAIR_BATCH_DOCS) {
                let rebuilt = rebuild_points(&new, collection, &c.settings.chunking, group, INLINE_BYTES);
                let (points, mut unmovable, larger) = while_calls_run(rebuilt, &mut in_flight, &mut report, progress).await?;
                for one in larger {
                    let large = crate::backup::format::LARGE_CONTENT;
                    let (points, more, too_large) = rebuild_points(&new, collection, &c.settings.chunking, &[one], large).await?;
                    upsert_in_calls(&*new.index, &name, points, &mut report.points_written).await?;
                    unmovable.extend(more.into_iter().chain(too_large.into_iter().map(|(k, _)| k)));
                }
                report.left_for_sync.extend(unmovable);
                let mut rest = points;
                while !rest.is_empty() {
                    let tail = rest.split_off(rest.len().min(per_call));
                    let call = std::mem::replace(&mut rest, tail);
                    while in_flight.len() >= CALLS_IN_FLIGHT {
                        finished_call(&mut in_flight, &mut report, progress).await?;
                    }
                    let (index, name) = (&*new.index, &name);
                    in_flight.push_back(Box::pin(async move {
                        let n = call.len() as u64;
                        index.upsert(name, call).await.map(|()| n)
                    }));
                }
            }
        }
        while !in_flight.is_empty() {
            finished_call(&mut in_flight, &mut report, progress).await?;
        }
        // Every point the ledger expects must be there with its hashes, and nothing else; documents not synced (and
        // those left for the next sync) keep their projection in the old index only.
        let synced_keys: std::collections::HashSet<DocKey> = expected.synced.keys().cloned().collect();
        let check = check_projection(&new, &c, expected, false).await?;
        report.verified_points = check.index_points;
        let tolerated = |d: &Drift| d.kind == "missing" && (report.left_for_sync.contains(&d.key) || !synced_keys.contains(&d.key));
        let problems: Vec<&Drift> = check.drift.iter().filter(|d| !tolerated(d)).collect();
        if let Some(first) = problems.first() {
            let _ = new.index.drop_collection(&name).await;
            return Err(MoveError::Unverified {
                collection: collection.clone(),
                target: to.to_owned(),
                problems: problems.len(),
                first: format!("{} {}#{}", first.kind, first.key, first.chunk),
            });
        }
        for key in &report.left_for_sync {
            ports.ledger.mark_failed(collection, key, format!("its vectors were not in the cache when it moved to {to}")).await?;
        }
    }

    ports.repo.update_settings(collection, colstore_domain::CollectionSettings { index: new_target, ..c.settings.clone() }).await?;
    crate::commit_log::durable_step("reindex", &format!("switched to {to}"));
    if !keep_old {
        match old.index.drop_collection(&name).await {
            Ok(_) => report.old_dropped = true,
            Err(e) => report.old_drop_problem = Some(e.to_string()),
        }
    }
    Ok(report)
}

/// Upsert calls [`move_index`] keeps in flight: one the engine takes while the next one's body is written.
const CALLS_IN_FLIGHT: usize = 2;

/// [`move_index`]'s upsert calls under way, oldest first; each resolves to the points it wrote.
type Calls<'a> = futures::stream::FuturesOrdered<std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, IndexError>> + Send + 'a>>>;

/// Waits for the oldest call in `in_flight` (which must not be empty) and counts its points.
async fn finished_call(in_flight: &mut Calls<'_>, report: &mut MoveReport, progress: &(dyn Fn(u64) + Sync)) -> Result<(), IndexError> {
    if let Some(written) = in_flight.next().await {
        report.points_written += written?;
        progress(report.points_written);
    }
    Ok(())
}

/// Runs `work` to its end while the calls in `in_flight` go on (and are counted as they finish); the first failed call
/// fails the whole.
async fn while_calls_run<T>(
    work: impl std::future::Future<Output = Result<T, SyncFailure>>,
    in_flight: &mut Calls<'_>,
    report: &mut MoveReport,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<T, MoveError> {
    let mut work = std::pin::pin!(work);
    loop {
        if in_flight.is_empty() {
            return Ok(work.await?);
        }
        match futures::future::select(work.as_mut(), in_flight.next()).await {
            futures::future::Either::Left((done, _)) => return Ok(done?),
            futures::future::Either::Right((Some(written), _)) => {
                report.points_written += written?;
                progress(report.points_written);
            }
            futures::future::Either::Right((None, _)) => {}
        }
    }
}

/// What a settings change means for the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SettingsChange {
    /// Chunking changed: every document is pending again (unchanged chunks reuse cached vectors).
    pub rechunk: bool,
    /// The distance changed: the index collection is dropped and rebuilt from the cache on the next sync.
    pub redistance: bool,
    /// Documents marked pending.
    pub marked_pending: u64,
}

/// Changes a collection's chunking and/or distance, marking what the next sync must re-project.
///
/// # Errors
/// Repository, ledger or index failures.
pub async fn change_settings(
    ports: &SyncPorts,
    collection: &CollectionName,
    chunking: Option<ChunkingSettings>,
    distance: Option<colstore_domain::Distance>,
) -> Result<SettingsChange, SyncFailure> {
    let c = ports.repo.collection(collection).await?;
    let ports = &ports.for_collection(&c.settings).await?;
    let mut settings = c.settings.clone();
    let rechunk = chunking.is_some_and(|ch| ch != settings.chunking);
    if let Some(ch) = chunking {
        settings.chunking = ch;
    }
    let redistance = match (distance, settings.vectors.as_mut()) {
        (Some(d), Some(v)) if v.distance != d => {
            v.distance = d;
            true
        }
        (Some(d), None) => {
            // Never synced: remember the distance for the first sync.
            settings.vectors = Some(colstore_domain::VectorSettings { embedder: ports.embedder.identity(), distance: d });
            false
        }
        _ => false,
    };
    ports.repo.update_settings(collection, settings).await?;
    let mut marked_pending = 0;
    if rechunk || redistance {
        marked_pending = ports.ledger.mark_all_pending(collection).await?;
    }
    if redistance {
        ports.index.drop_collection(&index_name(ports.store_id, collection)).await?;
    }
    Ok(SettingsChange { rechunk, redistance, marked_pending })
}
