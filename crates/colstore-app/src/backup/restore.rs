//! `col restore`: the plan (what changes per collection) and the verbatim write-back, verified afterwards.
//!
//! Conflict rule of `merge`: documents only in the backup are added; documents only in the store are kept; a document
//! in both that differs takes the backup's version unless the store's copy changed later (`updated_at` newer), in
//! which case the store's copy is kept and counted as `kept_newer`. `replace` makes each restored collection exactly
//! the backup's: documents not in the backup are deleted.
//!
//! Memory does not grow with the number of documents: the backup's records (in key order, one record chunk at a time)
//! are walked beside the store's documents (in key order, a page at a time), once to plan and once to write, and
//! once more to check the result.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use colstore_domain::ports::{BackupId, BackupStore, CollectionRepo, RepoError, SyncStore};
use colstore_domain::{CollectionName, ContentHash, DocKey, DocumentMeta, EmbedderId, Vector};
use futures::{SinkExt, StreamExt};
use serde::Serialize;

use super::format::{self, CollectionEntry, DocRecord, LedgerRecord};
use super::pack::{BlobReader, KnownBlobs, RecordStream};
use super::{BackupFailure, read_manifest};

/// Documents per restore transaction (and at most [`BATCH_BYTES`]).
const BATCH_DOCS: usize = 1024;
const BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// How a restore treats what the store already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreMode {
    /// Each restored collection becomes exactly the backup's.
    Replace,
    /// Upsert, under the module's conflict rule; nothing is deleted.
    Merge,
}

/// What to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Collections to restore (empty: all in the backup).
    pub collections: Vec<CollectionName>,
    /// Replace or merge.
    pub mode: RestoreMode,
}

/// What a restore does to one collection.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CollectionPlan {
    /// The collection.
    pub name: CollectionName,
    /// Whether it exists in the store now.
    pub exists: bool,
    /// Whether its settings change.
    pub settings_change: bool,
    /// Documents added.
    pub add: u64,
    /// Documents overwritten with the backup's version.
    pub update: u64,
    /// Documents already identical.
    pub unchanged: u64,
    /// Documents deleted (replace only).
    pub delete: u64,
    /// Documents kept because the store's copy is newer (merge only).
    pub kept_newer: u64,
    /// An import of a filtered export (`col export --where`): the expression its documents were chosen by. Documents
    /// the file lacks are kept, in every mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl CollectionPlan {
    /// The plan line of `name` before anything is counted (not in the store, settings unchanged).
    pub fn new(name: CollectionName) -> Self {
        Self { name, exists: false, settings_change: false, add: 0, update: 0, unchanged: 0, delete: 0, kept_newer: 0, filter: None }
    }
}

/// The plan of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// The backup.
    pub id: String,
    /// The mode.
    pub mode: RestoreMode,
    /// Per collection.
    pub collections: Vec<CollectionPlan>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The plan it carried out.
    pub plan: RestorePlan,
    /// Documents written.
    pub documents_written: u64,
    /// Documents deleted.
    pub documents_deleted: u64,
    /// Chunk vectors put back in the embedding cache.
    pub vectors: u64,
    /// Ledger rows written.
    pub ledger_rows: u64,
    /// Documents checked after the restore (key, hash, metadata, tags, version, times).
    pub verified: u64,
}

fn same(d: &DocumentMeta, r: &DocRecord) -> bool {
    d.content_hash == r.hash
        && d.size == r.size
        && d.metadata == r.metadata
        && d.tags == r.tags
        && d.version == r.version
        && d.created_at == r.created_at
        && d.updated_at == r.updated_at
}

fn meta_of(collection: &CollectionName, r: &DocRecord) -> DocumentMeta {
    DocumentMeta {
        collection: collection.clone(),
        key: r.key.clone(),
        content_hash: r.hash,
        size: r.size,
        metadata: r.metadata.clone(),
        tags: r.tags.clone(),
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// Where a large document's pieces go: [`restore_fed`] reads them from the other end.
pub(crate) type PieceSender = futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Writes one document whose content `feed` sends piece by piece, through
/// [`CollectionRepo::restore_document_stream`]: the repository writes each piece as it arrives, so memory holds a
/// piece or two whatever the document's size. A feed that fails sends an error down the stream first, so the
/// repository writes nothing; its own error is returned. A repository that stops early (a mismatch) stops the feed.
pub(crate) async fn restore_fed<E, F, Fut>(repo: &dyn CollectionRepo, name: &CollectionName, meta: DocumentMeta, feed: F) -> Result<(), E>
where
    E: From<RepoError>,
    F: FnOnce(PieceSender) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let (tx, rx) = futures::channel::mpsc::channel(1);
    let (written, fed) = futures::join!(repo.restore_document_stream(name, meta, rx.boxed()), feed(tx));
    fed?;
    Ok(written?)
}

/// Sends the pieces of a document in parts from the backup (each checked against its id by the reader).
async fn feed_parts(reader: &mut BlobReader, parts: &[ContentHash], mut tx: PieceSender) -> Result<(), BackupFailure> {
    for p in parts {
        match reader.blob(p, "document content part").await {
            Ok(bytes) => {
                if tx.send(Ok(bytes)).await.is_err() {
                    // The repository stopped reading: its own error says why.
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The plan of restoring backup `id` into an empty store (one whose damaged database is to be replaced by a fresh
/// one), from the manifest alone: every chosen collection is created and every document added.
///
/// # Errors
/// `NotFound`, an unreadable manifest, or a collection of `opts` the backup does not hold.
pub async fn plan_restore_into_empty(store: &dyn BackupStore, id: &BackupId, opts: &RestoreOptions) -> Result<RestorePlan, BackupFailure> {
    let manifest = read_manifest(store, id).await?;
    for want in &opts.collections {
        if !manifest.collections.iter().any(|c| &c.name == want) {
            return Err(BackupFailure::NoSuchCollection(want.clone(), "backup"));
        }
    }
    let collections = manifest
        .collections
        .iter()
        .filter(|c| opts.collections.is_empty() || opts.collections.contains(&c.name))
        .map(|c| CollectionPlan { add: c.documents, ..CollectionPlan::new(c.name.clone()) })
        .collect();
    Ok(RestorePlan { id: id.to_string(), mode: opts.mode, collections })
}

/// Everything a restore needs from the repository, read and checked before anything changes.
struct Loaded {
    reader: BlobReader,
    chosen: Vec<CollectionEntry>,
}

async fn load(store: Arc<dyn BackupStore>, id: &BackupId, opts: &RestoreOptions, read_packs: bool) -> Result<Loaded, BackupFailure> {
    let manifest = read_manifest(&*store, id).await?;
    for want in &opts.collections {
        if !manifest.collections.iter().any(|c| &c.name == want) {
            return Err(BackupFailure::NoSuchCollection(want.clone(), "backup"));
        }
    }
    let chosen: Vec<CollectionEntry> =
        manifest.collections.iter().filter(|c| opts.collections.is_empty() || opts.collections.contains(&c.name)).cloned().collect();
    let known = KnownBlobs::load(&*store, manifest.indexes.iter().copied()).await?;
    if read_packs {
        // Refuse before changing anything: every pack must be there and read back with its hash. Two at a time: the
        // store decompresses and re-hashes on blocking threads.
        let mut reads = futures::stream::iter(manifest.packs.iter())
            .map(|p| {
                let store = Arc::clone(&store);
                async move { store.get_object(p).await.map(drop).map_err(|e| BackupFailure::object(p, "pack", e)) }
            })
            .buffered(2);
        while let Some(r) = reads.next().await {
            r?;
        }
    }
    // Records and the contents they name may lie in different packs (a later backup rewrites only changed records).
    let reader = BlobReader::new(store, known, 4);
    Ok(Loaded { reader, chosen })
}

/// The store's documents of a collection in key order, a page at a time, each page from a snapshot taken for it (so
/// no snapshot stays open while the restore writes). Pages are read ahead of the writes that concern them: a
/// document is compared with the store before it is written.
///
/// Checking the bytes at rest (restore, in a repository whose content can change behind its back): each page is
/// also asked [`CollectionRepo::contents_at_rest`], and a document whose bytes are missing or are not its recorded
/// content is marked not intact.
pub(crate) struct StoreDocs<'a> {
    repo: &'a dyn CollectionRepo,
    name: CollectionName,
    after: Option<DocKey>,
    buf: VecDeque<DocumentMeta>,
    /// Per document of `buf`: whether its bytes at rest are its recorded content.
    intact: VecDeque<bool>,
    check_at_rest: bool,
    done: bool,
}

impl<'a> StoreDocs<'a> {
    pub fn new(repo: &'a dyn CollectionRepo, name: &CollectionName) -> Self {
        Self { repo, name: name.clone(), after: None, buf: VecDeque::new(), intact: VecDeque::new(), check_at_rest: false, done: false }
    }

    /// As [`new`](Self::new), also checking the bytes at rest when the repository's content can change behind its back.
    fn checking_at_rest(repo: &'a dyn CollectionRepo, name: &CollectionName) -> Self {
        Self { check_at_rest: repo.capabilities().external_edits, ..Self::new(repo, name) }
    }

    /// The next document, without taking it (`None` at the end, or when the collection does not exist).
    pub async fn peek(&mut self) -> Result<Option<&DocumentMeta>, RepoError> {
        if self.buf.is_empty() && !self.done {
            let snap = self.repo.snapshot().await?;
            let read = snap.documents(&self.name, self.after.clone(), 1000).await;
            drop(snap);
            match read {
                Ok(page) => {
                    match page.last() {
                        Some(last) => self.after = Some(last.key.clone()),
                        None => self.done = true,
                    }
                    if self.check_at_rest && !page.is_empty() {
                        let at_rest = match self.repo.contents_at_rest(&self.name, page.iter().map(|d| d.key.clone()).collect()).await {
                            Ok(at_rest) => at_rest,
                            // Deleted meanwhile: every document's bytes are gone.
                            Err(RepoError::CollectionNotFound(_)) => vec![None; page.len()],
                            Err(e) => return Err(e),
                        };
                        self.intact.extend(page.iter().zip(at_rest).map(|(d, r)| r == Some((d.content_hash, d.size))));
                    } else {
                        self.intact.extend(std::iter::repeat_n(true, page.len()));
                    }
                    self.buf.extend(page);
                }
                Err(RepoError::CollectionNotFound(_)) => self.done = true,
                Err(e) => return Err(e),
            }
        }
        Ok(self.buf.front())
    }

    /// Takes the next document.
    pub async fn next(&mut self) -> Result<Option<DocumentMeta>, RepoError> {
        Ok(self.next_checked().await?.map(|c| c.meta))
    }

    /// Takes the next document, with whether its bytes at rest are its recorded content.
    async fn next_checked(&mut self) -> Result<Option<Current>, RepoError> {
        self.peek().await?;
        Ok(self.buf.pop_front().map(|meta| Current { meta, intact: self.intact.pop_front().unwrap_or(true) }))
    }
}

/// A document of the store during a restore.
struct Current {
    meta: DocumentMeta,
    /// Whether its bytes at rest are its recorded content (a file edited or removed outside colstore is not).
    intact: bool,
}

impl Current {
    /// Whether the store holds exactly the backup's document, bytes at rest included.
    fn same_as(&self, r: &DocRecord) -> bool {
        self.intact && same(&self.meta, r)
    }
}

/// One step of walking the backup's records beside the store's documents, both in key order.
enum Step {
    /// A document of the backup, with the store's document of the same key if there is one.
    Backup(Box<DocRecord>, Option<Current>),
    /// A document only the store has.
    StoreOnly(DocumentMeta),
}

struct Walk<'a> {
    records: RecordStream<DocRecord>,
    store: StoreDocs<'a>,
}

impl<'a> Walk<'a> {
    fn new(entry: &CollectionEntry, repo: &'a dyn CollectionRepo) -> Self {
        Self { records: RecordStream::new(&entry.document_records), store: StoreDocs::checking_at_rest(repo, &entry.name) }
    }

    async fn next(&mut self, reader: &mut BlobReader) -> Result<Option<Step>, BackupFailure> {
        let order = {
            let r = self.records.peek(reader).await?.map(|r| r.key.clone());
            let d = self.store.peek().await?;
            match (r, d) {
                (None, None) => return Ok(None),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(r), Some(d)) => r.as_str().as_bytes().cmp(d.key.as_str().as_bytes()),
            }
        };
        Ok(Some(match order {
            std::cmp::Ordering::Less => Step::Backup(Box::new(self.records.next(reader).await?.expect("peeked")), None),
            std::cmp::Ordering::Equal => {
                Step::Backup(Box::new(self.records.next(reader).await?.expect("peeked")), self.store.next_checked().await?)
            }
            std::cmp::Ordering::Greater => Step::StoreOnly(self.store.next().await?.expect("peeked")),
        }))
    }
}

/// What a restore does with one document of the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Add,
    Update,
    Unchanged,
    KeptNewer,
}

impl Decision {
    fn of(mode: RestoreMode, r: &DocRecord, current: Option<&Current>) -> Self {
        match current {
            None => Decision::Add,
            Some(c) if c.same_as(r) => Decision::Unchanged,
            Some(c) if mode == RestoreMode::Merge && c.meta.updated_at > r.updated_at => Decision::KeptNewer,
            Some(_) => Decision::Update,
        }
    }

    fn writes(self) -> bool {
        matches!(self, Decision::Add | Decision::Update)
    }

    fn count(self, plan: &mut CollectionPlan) {
        match self {
            Decision::Add => plan.add += 1,
            Decision::Update => plan.update += 1,
            Decision::Unchanged => plan.unchanged += 1,
            Decision::KeptNewer => plan.kept_newer += 1,
        }
    }
}

/// The plan line of a collection before anything is counted.
async fn empty_plan(repo: &dyn CollectionRepo, entry: &CollectionEntry) -> CollectionPlan {
    let settings = repo.collection(&entry.name).await.ok().map(|c| c.settings);
    CollectionPlan {
        exists: settings.is_some(),
        settings_change: settings.is_some_and(|s| s != entry.settings),
        ..CollectionPlan::new(entry.name.clone())
    }
}

/// Computes what restoring `id` would change, without changing anything.
///
/// # Errors
/// `NotFound`, a collection not in the backup, or an unreadable manifest, index or record chunk.
pub async fn plan_restore(
    repo: &dyn CollectionRepo,
    store: Arc<dyn BackupStore>,
    id: &BackupId,
    opts: &RestoreOptions,
) -> Result<RestorePlan, BackupFailure> {
    let mut loaded = load(store, id, opts, false).await?;
    let mut plans = Vec::new();
    for entry in &loaded.chosen {
        let mut plan = empty_plan(repo, entry).await;
        let mut walk = Walk::new(entry, repo);
        while let Some(step) = walk.next(&mut loaded.reader).await? {
            match step {
                Step::Backup(r, d) => Decision::of(opts.mode, &r, d.as_ref()).count(&mut plan),
                Step::StoreOnly(_) if opts.mode == RestoreMode::Replace => plan.delete += 1,
                Step::StoreOnly(_) => {}
            }
        }
        plans.push(plan);
    }
    Ok(RestorePlan { id: id.to_string(), mode: opts.mode, collections: plans })
}

/// Documents (and, in merge mode, their ledger rows), and their vectors for the embedding cache, waiting to be
/// written together.
#[derive(Default)]
struct Batch {
    docs: Vec<(DocumentMeta, Bytes)>,
    bytes: u64,
    ledger: Vec<LedgerRecord>,
    vectors: Vec<(ContentHash, Vector)>,
}

/// Vectors held for one cache write (about 6 MiB at 384 dimensions).
const BATCH_VECTORS: usize = 4096;

impl Batch {
    fn full(&self) -> bool {
        self.docs.len() >= BATCH_DOCS || self.bytes >= BATCH_BYTES || self.vectors.len() >= BATCH_VECTORS
    }

    /// Writes the vectors into the cache (one transaction), the documents in one transaction, then their ledger rows
    /// (which the write marked pending). The cache goes first: it is keyed by content, so vectors written for a
    /// document an interruption then leaves unrestored are only unused.
    async fn flush(
        &mut self,
        repo: &dyn CollectionRepo,
        ledger: &dyn SyncStore,
        name: &CollectionName,
        embedder: Option<&EmbedderId>,
    ) -> Result<u64, BackupFailure> {
        if let Some(e) = embedder
            && !self.vectors.is_empty()
        {
            ledger.cache_vectors(e, std::mem::take(&mut self.vectors)).await?;
        }
        let k = self.docs.len() as u64;
        if k > 0 {
            repo.restore_documents(name, std::mem::take(&mut self.docs)).await?;
            crate::commit_log::durable("restore", name, k);
        }
        if !self.ledger.is_empty() {
            ledger.restore_ledger(name, std::mem::take(&mut self.ledger)).await?;
        }
        self.bytes = 0;
        Ok(k)
    }
}

/// Restores backup `id` into the store: collections and settings, documents verbatim, their vectors into the
/// embedding cache, and the sync ledger; then checks every restored document against the backup.
///
/// Every pack is read and re-hashed before anything changes, so a damaged backup is refused up front. Each batch is
/// one transaction; a restore interrupted half-way leaves whole documents (old or restored) and can be run again.
///
/// # Errors
/// As [`plan_restore`], plus store failures and [`BackupFailure::RestoreMismatch`] when the check afterwards fails.
pub async fn restore_backup(
    repo: &dyn CollectionRepo,
    ledger: &dyn SyncStore,
    store: Arc<dyn BackupStore>,
    id: &BackupId,
    opts: &RestoreOptions,
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<RestoreReport, BackupFailure> {
    let mut loaded = load(store, id, opts, true).await?;
    let total: u64 = loaded.chosen.iter().map(|c| c.documents).sum();
    let mut done = 0u64;
    let mut report = RestoreReport {
        plan: RestorePlan { id: id.to_string(), mode: opts.mode, collections: Vec::new() },
        documents_written: 0,
        documents_deleted: 0,
        vectors: 0,
        ledger_rows: 0,
        verified: 0,
    };
    let reader = &mut loaded.reader;
    for entry in &loaded.chosen {
        let mut plan = empty_plan(repo, entry).await;
        repo.restore_collection(&entry.name, entry.settings.clone(), entry.created_at).await?;
        let embedder = entry.settings.vectors.as_ref().map(|v| v.embedder.clone());

        // Write what differs, in key order; in merge mode each written document's ledger row goes with it.
        let mut walk = Walk::new(entry, repo);
        let mut ledger_rows = RecordStream::<LedgerRecord>::new(&entry.ledger_records);
        let mut batch = Batch::default();
        let mut deletes: Vec<DocKey> = Vec::new();
        while let Some(step) = walk.next(reader).await? {
            let r = match step {
                Step::StoreOnly(d) => {
                    if opts.mode == RestoreMode::Replace {
                        plan.delete += 1;
                        deletes.push(d.key);
                        if deletes.len() >= 1000 {
                            let n = repo.delete_documents(&entry.name, std::mem::take(&mut deletes)).await?.len() as u64;
                            crate::commit_log::durable("restore", &entry.name, n);
                            report.documents_deleted += n;
                        }
                    }
                    continue;
                }
                Step::Backup(r, d) => {
                    let decision = Decision::of(opts.mode, &r, d.as_ref());
                    decision.count(&mut plan);
                    if !decision.writes() {
                        done += 1;
                        continue;
                    }
                    r
                }
            };
            if let (Some(v), Some(_)) = (r.vectors, embedder.as_ref()) {
                let bytes = reader.blob(&v, "vectors blob").await?;
                let pairs = format::decode_vectors(&v, &bytes)?;
                report.vectors += pairs.len() as u64;
                batch.vectors.extend(pairs);
            }
            if opts.mode == RestoreMode::Merge
                && let Some(row) = ledger_rows.find(reader, &r.key).await?
            {
                report.ledger_rows += 1;
                batch.ledger.push(row);
            }
            if !r.parts.is_empty() {
                // A large document: streamed from its parts on its own, in its own transaction.
                restore_fed(repo, &entry.name, meta_of(&entry.name, &r), |tx| feed_parts(reader, &r.parts, tx)).await?;
                crate::commit_log::durable("restore", &entry.name, 1);
                report.documents_written += 1;
                done += 1;
                on_progress(done, total);
                continue;
            }
            let content = reader.blob(&r.hash, "document content").await?;
            batch.bytes += content.len() as u64;
            batch.docs.push((meta_of(&entry.name, &r), content));
            if batch.full() {
                let k = batch.flush(repo, ledger, &entry.name, embedder.as_ref()).await?;
                report.documents_written += k;
                done += k;
                on_progress(done, total);
            }
        }
        let k = batch.flush(repo, ledger, &entry.name, embedder.as_ref()).await?;
        report.documents_written += k;
        done += k;
        if !deletes.is_empty() {
            let n = repo.delete_documents(&entry.name, deletes).await?.len() as u64;
            crate::commit_log::durable("restore", &entry.name, n);
            report.documents_deleted += n;
        }
        // Replace: the backup's whole ledger, last (after the deletions, which mark rows too).
        if opts.mode == RestoreMode::Replace {
            let mut rows = Vec::new();
            while let Some(row) = ledger_rows.next(reader).await? {
                rows.push(row);
                if rows.len() >= 1000 {
                    report.ledger_rows += rows.len() as u64;
                    ledger.restore_ledger(&entry.name, std::mem::take(&mut rows)).await?;
                }
            }
            if !rows.is_empty() {
                report.ledger_rows += rows.len() as u64;
                ledger.restore_ledger(&entry.name, rows).await?;
            }
        }
        on_progress(done, total);

        // Verify: every document of the backup is now in the store exactly (merge: or the store's newer copy was
        // kept), and with replace nothing else is.
        report.verified += verify_restored(repo, reader, entry, opts.mode).await?;
        report.plan.collections.push(plan);
    }
    Ok(report)
}

/// Walks the backup's records beside the store after the restore; returns how many documents were checked.
async fn verify_restored(
    repo: &dyn CollectionRepo,
    reader: &mut BlobReader,
    entry: &CollectionEntry,
    mode: RestoreMode,
) -> Result<u64, BackupFailure> {
    let name = &entry.name;
    let mut walk = Walk::new(entry, repo);
    let mut checked = 0u64;
    while let Some(step) = walk.next(reader).await? {
        match step {
            Step::Backup(r, None) => {
                return Err(BackupFailure::RestoreMismatch(format!("{name}/{} is missing after the restore", r.key)));
            }
            Step::Backup(r, Some(c)) => {
                let kept_newer = mode == RestoreMode::Merge && c.meta.updated_at > r.updated_at;
                if !c.same_as(&r) && !kept_newer {
                    let what = if c.intact { "differs from the backup" } else { "has bytes at rest that differ from the backup" };
                    return Err(BackupFailure::RestoreMismatch(format!("{name}/{} {what} after the restore", r.key)));
                }
                checked += 1;
            }
            Step::StoreOnly(d) if mode == RestoreMode::Replace => {
                return Err(BackupFailure::RestoreMismatch(format!(
                    "{name}/{} is in the store after the restore but not in the backup",
                    d.key
                )));
            }
            Step::StoreOnly(_) => {}
        }
    }
    Ok(checked)
}
