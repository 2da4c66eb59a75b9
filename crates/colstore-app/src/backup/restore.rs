//! `col restore`: the plan (what changes per collection) and the verbatim write-back, verified afterwards.
//!
//! Conflict rule of `merge`: documents only in the backup are added; documents only in the store are kept; a document
//! in both that differs takes the backup's version unless the store's copy changed later (`updated_at` newer), in
//! which case the store's copy is kept and counted as `kept_newer`. `replace` makes each restored collection exactly
//! the backup's: documents not in the backup are deleted.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use colstore_domain::ports::{BackupId, BackupStore, CollectionRepo, RepoError, SyncStore};
use colstore_domain::{CollectionName, DocKey, DocumentMeta};
use futures::StreamExt;
use serde::Serialize;

use super::format::{self, CollectionEntry, DocRecord, LedgerRecord, Manifest};
use super::pack::{BlobReader, KnownBlobs};
use super::{BackupFailure, read_manifest};

/// Documents per restore transaction (and at most [`BATCH_BYTES`]).
const BATCH_DOCS: usize = 256;
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
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct CollectionPlan {
    /// The collection.
    pub name: String,
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

/// Everything a restore needs from the repository, read and checked before anything changes.
struct Loaded {
    manifest: Manifest,
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
        // Refuse before changing anything: every pack must be there and read back with its hash.
        // Two at a time: the store decompresses and re-hashes on blocking threads.
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
    let reader = BlobReader::new(store, known, 2);
    Ok(Loaded { manifest, reader, chosen })
}

async fn records<T: for<'de> serde::Deserialize<'de>>(
    reader: &mut BlobReader,
    ids: &[colstore_domain::ContentHash],
) -> Result<Vec<T>, BackupFailure> {
    let mut out = Vec::new();
    for id in ids {
        let bytes = reader.blob(id, "record chunk").await?;
        out.extend(format::parse_lines::<T>(id, &bytes)?);
    }
    Ok(out)
}

/// The store's documents of a collection (empty when it does not exist).
pub(crate) async fn current_docs(
    repo: &dyn CollectionRepo,
    name: &CollectionName,
) -> Result<Option<HashMap<DocKey, DocumentMeta>>, RepoError> {
    let snap = repo.snapshot().await?;
    let mut out = HashMap::new();
    let mut after = None;
    loop {
        let page = match snap.documents(name, after.clone(), 1000).await {
            Ok(p) => p,
            Err(RepoError::CollectionNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        out.extend(page.into_iter().map(|d| (d.key.clone(), d)));
    }
    Ok(Some(out))
}

/// Checks that each of `must` (in key order) is in the store exactly, walking a snapshot of the collection in key order
/// alongside; returns how many documents the collection holds.
async fn verify_restored(repo: &dyn CollectionRepo, name: &CollectionName, must: &[&DocRecord]) -> Result<u64, BackupFailure> {
    let snap = repo.snapshot().await?;
    let mut want = must.iter().peekable();
    let (mut held, mut after) = (0u64, None);
    loop {
        let page = snap.documents(name, after.clone(), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        held += page.len() as u64;
        for d in &page {
            let Some(r) = want.peek() else { break };
            match r.key.as_str().as_bytes().cmp(d.key.as_str().as_bytes()) {
                std::cmp::Ordering::Less => {
                    return Err(BackupFailure::RestoreMismatch(format!("{name}/{} is missing after the restore", r.key)));
                }
                std::cmp::Ordering::Equal if !same(d, r) => {
                    return Err(BackupFailure::RestoreMismatch(format!("{name}/{} differs from the backup after the restore", r.key)));
                }
                std::cmp::Ordering::Equal => {
                    want.next();
                }
                std::cmp::Ordering::Greater => {}
            }
        }
    }
    match want.next() {
        Some(r) => Err(BackupFailure::RestoreMismatch(format!("{name}/{} is missing after the restore", r.key))),
        None => Ok(held),
    }
}

/// What each document of the backup needs: written or not.
fn classify(
    mode: RestoreMode,
    entry: &CollectionEntry,
    docs: &[DocRecord],
    current: Option<&HashMap<DocKey, DocumentMeta>>,
    settings: Option<&colstore_domain::CollectionSettings>,
) -> (CollectionPlan, Vec<usize>, Vec<DocKey>) {
    let mut plan = CollectionPlan {
        name: entry.name.to_string(),
        exists: current.is_some(),
        settings_change: settings.is_some_and(|s| *s != entry.settings),
        ..CollectionPlan::default()
    };
    let mut write = Vec::new();
    let empty = HashMap::new();
    let current = current.unwrap_or(&empty);
    for (i, r) in docs.iter().enumerate() {
        match current.get(&r.key) {
            None => {
                plan.add += 1;
                write.push(i);
            }
            Some(d) if same(d, r) => plan.unchanged += 1,
            Some(d) if mode == RestoreMode::Merge && d.updated_at > r.updated_at => plan.kept_newer += 1,
            Some(_) => {
                plan.update += 1;
                write.push(i);
            }
        }
    }
    let mut delete = Vec::new();
    if mode == RestoreMode::Replace {
        let in_backup: std::collections::HashSet<&DocKey> = docs.iter().map(|r| &r.key).collect();
        delete = current.keys().filter(|k| !in_backup.contains(k)).cloned().collect();
        delete.sort();
        plan.delete = delete.len() as u64;
    }
    (plan, write, delete)
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
        let docs: Vec<DocRecord> = records(&mut loaded.reader, &entry.document_records).await?;
        let current = current_docs(repo, &entry.name).await?;
        let settings = match repo.collection(&entry.name).await {
            Ok(c) => Some(c.settings),
            Err(_) => None,
        };
        plans.push(classify(opts.mode, entry, &docs, current.as_ref(), settings.as_ref()).0);
    }
    Ok(RestorePlan { id: id.to_string(), mode: opts.mode, collections: plans })
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
    for entry in loaded.chosen.clone() {
        let docs: Vec<DocRecord> = records(&mut loaded.reader, &entry.document_records).await?;
        let current = current_docs(repo, &entry.name).await?;
        let settings = repo.collection(&entry.name).await.ok().map(|c| c.settings);
        let (plan, write, delete) = classify(opts.mode, &entry, &docs, current.as_ref(), settings.as_ref());
        drop(current);
        repo.restore_collection(&entry.name, entry.settings.clone(), entry.created_at).await?;

        let embedder = entry.settings.vectors.as_ref().map(|v| v.embedder.clone());
        let mut batch: Vec<(DocumentMeta, Bytes)> = Vec::new();
        let mut batch_bytes = 0u64;
        for (n, &i) in write.iter().enumerate() {
            let r = &docs[i];
            let content = loaded.reader.blob(&r.hash, "document content").await?;
            if let (Some(v), Some(e)) = (r.vectors, embedder.as_ref()) {
                let bytes = loaded.reader.blob(&v, "vectors blob").await?;
                let pairs = format::decode_vectors(&v, &bytes)?;
                report.vectors += pairs.len() as u64;
                ledger.cache_vectors(e, pairs).await?;
            }
            batch_bytes += content.len() as u64;
            batch.push((meta_of(&entry.name, r), content));
            if batch.len() >= BATCH_DOCS || batch_bytes >= BATCH_BYTES || n + 1 == write.len() {
                let k = batch.len() as u64;
                repo.restore_documents(&entry.name, std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
                report.documents_written += k;
                done += k;
                on_progress(done, total);
            }
        }
        for keys in delete.chunks(1000) {
            report.documents_deleted += repo.delete_documents(&entry.name, keys.to_vec()).await?.len() as u64;
        }
        // The ledger last: rows of the documents written (merge) or the backup's whole ledger (replace).
        let rows: Vec<LedgerRecord> = records(&mut loaded.reader, &entry.ledger_records).await?;
        let written: std::collections::HashSet<&DocKey> = write.iter().map(|&i| &docs[i].key).collect();
        let rows: Vec<LedgerRecord> = rows.into_iter().filter(|r| opts.mode == RestoreMode::Replace || written.contains(&r.key)).collect();
        report.ledger_rows += rows.len() as u64;
        for chunk in rows.chunks(1000) {
            ledger.restore_ledger(&entry.name, chunk.to_vec()).await?;
        }

        // Verify: every document of the backup that should now be in the store is there, exactly. Records and the
        // store's documents are both in key order, so they are compared page by page, not held in memory.
        let must: Vec<&DocRecord> = match opts.mode {
            RestoreMode::Replace => docs.iter().collect(),
            RestoreMode::Merge => write.iter().map(|&i| &docs[i]).collect(),
        };
        let held = verify_restored(repo, &entry.name, &must).await?;
        report.verified += must.len() as u64;
        if opts.mode == RestoreMode::Replace && held != docs.len() as u64 {
            return Err(BackupFailure::RestoreMismatch(format!(
                "{} holds {held} documents after the restore, the backup {}",
                entry.name,
                docs.len()
            )));
        }
        done += plan.unchanged + plan.kept_newer;
        on_progress(done, total);
        report.plan.collections.push(plan);
    }
    let _ = &loaded.manifest;
    Ok(report)
}
