//! `col backup`: a consistent, deduplicated, verified snapshot of the store.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use colstore_domain::ports::{BackupStore, Clock, CollectionRepo, LockKind, StoreSnapshot};
use colstore_domain::{Collection, CollectionName, ContentHash, ContentHasher, DocKey, DocumentMeta, StoreId, Timestamp, chunk_text};
use futures::StreamExt;
use serde::Serialize;

use super::format::{
    self, CollectionEntry, DocRecord, FORMAT, LedgerRecord, Manifest, RECORD_CHUNK_MAX, Scope, VERSION, VERSION_WITHOUT_PARTS,
};
use super::pack::{BlobReader, KnownBlobs, Packer, RecordStream};
use super::{BackupFailure, HeldLock, LockOwner, new_backup_id, read_manifest};

/// Documents read from the snapshot per page.
const PAGE: usize = 256;
/// The contents of a page are read in groups of about this many bytes (a single larger document is a group alone).
pub(crate) const CONTENT_GROUP_BYTES: u64 = 32 * 1024 * 1024;

/// Splits a page into runs of consecutive documents of at most `max` bytes together (a larger document alone), so the
/// contents read at once stay bounded whatever the documents' sizes.
pub(crate) fn by_bytes(page: Vec<DocumentMeta>, max: u64) -> Vec<Vec<DocumentMeta>> {
    let mut out: Vec<Vec<DocumentMeta>> = Vec::new();
    let mut bytes = 0u64;
    for d in page {
        match out.last_mut() {
            Some(group) if bytes + d.size <= max => {
                bytes += d.size;
                group.push(d);
            }
            _ => {
                bytes = d.size;
                out.push(vec![d]);
            }
        }
    }
    out
}

/// What to back up, and how.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Collections to include (empty: all).
    pub collections: Vec<CollectionName>,
    /// Only collection definitions and settings.
    pub schema_only: bool,
    /// Tags to record.
    pub tags: Vec<String>,
    /// Plan only: count what would be stored, write nothing.
    pub dry_run: bool,
    /// The store's identity, recorded in the manifest.
    pub store_id: StoreId,
    /// Where the store is (for display), recorded in the manifest.
    pub store_path: Option<String>,
    /// The store's schema version, recorded in the manifest.
    pub schema_version: i64,
    /// The colstore version, recorded in the manifest.
    pub tool_version: String,
}

/// Progress of a backup.
#[derive(Debug, Clone, Serialize)]
pub enum BackupEvent {
    /// The snapshot is taken: this many documents and bytes to go through.
    Started {
        /// Documents in scope.
        documents: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// A document was handled (read or found already stored).
    Document {
        /// Its size.
        bytes: u64,
    },
    /// An object was written and verified.
    ObjectWritten {
        /// Its size before compression.
        bytes: u64,
    },
}

/// What a backup did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The new backup's id (`None` for a dry run).
    pub id: Option<String>,
    /// When its snapshot was taken.
    pub created_at: Timestamp,
    /// Per collection: name, documents, bytes, vectors.
    pub collections: Vec<CollectionEntrySummary>,
    /// Figures (for a dry run: what would be stored).
    pub stats: format::BackupStats,
}

/// A collection's line in a report.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionEntrySummary {
    /// Its name.
    pub name: String,
    /// Documents.
    pub documents: u64,
    /// Logical bytes.
    pub bytes: u64,
    /// Chunk vectors.
    pub vectors: u64,
    /// Ledger rows.
    pub ledger_rows: u64,
}

impl From<&CollectionEntry> for CollectionEntrySummary {
    fn from(c: &CollectionEntry) -> Self {
        Self { name: c.name.to_string(), documents: c.documents, bytes: c.bytes, vectors: c.vectors, ledger_rows: c.ledger_rows }
    }
}

/// A cut-by-content stream of JSON-lines records, each finished chunk a blob.
struct RecordChunker {
    buf: Vec<u8>,
    ids: Vec<ContentHash>,
}

impl RecordChunker {
    fn new() -> Self {
        Self { buf: Vec::new(), ids: Vec::new() }
    }

    async fn push<T: Serialize>(&mut self, packer: &mut Packer<'_>, key: &DocKey, record: &T) -> Result<(), BackupFailure> {
        serde_json::to_writer(&mut self.buf, record).map_err(|e| BackupFailure::Invalid(format!("cannot encode a record: {e}")))?;
        self.buf.push(b'\n');
        if format::cuts_after(key) || self.buf.len() >= RECORD_CHUNK_MAX {
            self.cut(packer).await?;
        }
        Ok(())
    }

    async fn cut(&mut self, packer: &mut Packer<'_>) -> Result<(), BackupFailure> {
        if !self.buf.is_empty() {
            let id = packer.add(&self.buf).await?;
            self.ids.push(id);
            self.buf.clear();
        }
        Ok(())
    }

    async fn finish(mut self, packer: &mut Packer<'_>) -> Result<Vec<ContentHash>, BackupFailure> {
        self.cut(packer).await?;
        Ok(self.ids)
    }
}

/// Reads a collection's ledger in key order alongside its documents, writing every row into the ledger's record chunks.
struct LedgerCursor {
    buf: std::collections::VecDeque<LedgerRecord>,
    after: Option<DocKey>,
    done: bool,
    chunks: RecordChunker,
    /// The row handed out last.
    current: Option<LedgerRecord>,
}

impl Default for LedgerCursor {
    fn default() -> Self {
        Self { buf: Default::default(), after: None, done: false, chunks: RecordChunker::new(), current: None }
    }
}

impl LedgerCursor {
    /// Writes every row before `key` (all rows when `None`) and returns the row of `key`, if any.
    async fn take(
        &mut self,
        snap: &dyn StoreSnapshot,
        collection: &CollectionName,
        key: Option<&DocKey>,
        packer: &mut Packer<'_>,
        entry: &mut CollectionEntry,
    ) -> Result<Option<&LedgerRecord>, BackupFailure> {
        self.current = None;
        loop {
            if self.buf.is_empty() && !self.done {
                let page = snap.ledger(collection, self.after.clone(), 1000).await?;
                match page.last() {
                    Some(last) => self.after = Some(last.key.clone()),
                    None => self.done = true,
                }
                self.buf.extend(page);
            }
            let Some(front) = self.buf.front() else { return Ok(None) };
            let order = key.map_or(std::cmp::Ordering::Less, |k| front.key.as_str().as_bytes().cmp(k.as_str().as_bytes()));
            if order == std::cmp::Ordering::Greater {
                return Ok(None);
            }
            let row = self.buf.pop_front().expect("front exists");
            entry.ledger_rows += 1;
            self.chunks.push(packer, &row.key.clone(), &row).await?;
            if order == std::cmp::Ordering::Equal {
                self.current = Some(row);
                return Ok(self.current.as_ref());
            }
        }
    }
}

/// The previous backup's records of a collection (same embedder and chunking), walked in key order alongside the
/// snapshot's documents, for reusing vector blobs unread. One record chunk is held at a time.
fn previous_records(prev: Option<&Manifest>, c: &Collection) -> RecordStream<DocRecord> {
    match prev.and_then(|m| m.collections.iter().find(|e| e.name == c.name)) {
        Some(entry) if entry.settings == c.settings => RecordStream::new(&entry.document_records),
        _ => RecordStream::new(&[]),
    }
}

/// Every chunk vector of each document, in chunk order, from one lookup in the snapshot's embedding cache; `None` for
/// a document with none to give (no vector settings, not text, no chunks, or not all chunks embedded yet: the next
/// sync pays for those).
pub(crate) async fn documents_vectors(
    snap: &dyn StoreSnapshot,
    c: &Collection,
    contents: &[&[u8]],
) -> Result<Vec<Option<Vec<(ContentHash, colstore_domain::Vector)>>>, colstore_domain::ports::RepoError> {
    let Some(v) = &c.settings.vectors else { return Ok(vec![None; contents.len()]) };
    let per_doc: Vec<Vec<ContentHash>> = contents
        .iter()
        .map(|content| match std::str::from_utf8(content) {
            Ok(text) => chunk_text(text, &c.settings.chunking).iter().map(|c| c.hash).collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let all: Vec<ContentHash> = per_doc.iter().flatten().copied().collect();
    let mut found = if all.is_empty() { Vec::new() } else { snap.cached_vectors(&v.embedder, all).await? }.into_iter();
    Ok(per_doc
        .into_iter()
        .map(|hashes| {
            let vectors: Vec<Option<colstore_domain::Vector>> = found.by_ref().take(hashes.len()).collect();
            if hashes.is_empty() || vectors.iter().any(Option::is_none) {
                return None;
            }
            Some(hashes.into_iter().zip(vectors.into_iter().flatten()).collect())
        })
        .collect())
}

/// The vectors blobs (and how many vectors each holds) of several documents (as [`documents_vectors`]).
async fn vectors_blobs(snap: &dyn StoreSnapshot, c: &Collection, contents: &[&[u8]]) -> Result<Vec<Option<(Vec<u8>, u32)>>, BackupFailure> {
    Ok(documents_vectors(snap, c, contents)
        .await?
        .into_iter()
        .map(|pairs| pairs.map(|p| (format::encode_vectors(&p), u32::try_from(p.len()).unwrap_or(u32::MAX))))
        .collect())
}

/// Reads a large document from the snapshot as a stream and stores it as blobs of [`format::PIECE`] bytes (each
/// deduplicated like any blob), checking the whole content's hash and size; returns the pieces' ids in order. Memory
/// holds one piece and the packs being written, whatever the document's size.
async fn store_in_pieces(
    snap: &dyn StoreSnapshot,
    collection: &CollectionName,
    d: &DocumentMeta,
    packer: &mut Packer<'_>,
) -> Result<Vec<ContentHash>, BackupFailure> {
    let mut stream = snap.content_stream(&d.content_hash).await?;
    let mut hasher = ContentHasher::new();
    let mut size = 0u64;
    let mut piece: Vec<u8> = Vec::with_capacity(format::PIECE);
    let mut parts = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| colstore_domain::ports::RepoError::ContentRead { key: d.key.clone(), source })?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (format::PIECE - piece.len()).min(rest.len());
            piece.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if piece.len() == format::PIECE {
                parts.push(packer.add(&piece).await?);
                piece.clear();
            }
        }
    }
    if !piece.is_empty() {
        parts.push(packer.add(&piece).await?);
    }
    if hasher.finish() != d.content_hash || size != d.size {
        return Err(BackupFailure::StoreCorrupt { collection: collection.clone(), key: d.key.to_string() });
    }
    Ok(parts)
}

/// Backs up the store into `store`.
///
/// # Errors
/// Any failure of the store or the repository, a corrupt document in the store, an object that does not read back
/// identically, or a lock held by a prune. Nothing is visible unless the whole backup succeeded.
pub async fn create_backup(
    repo: &dyn CollectionRepo,
    store: Arc<dyn BackupStore>,
    clock: &dyn Clock,
    owner: &LockOwner,
    opts: &BackupOptions,
    on_event: &(dyn Fn(BackupEvent) + Sync),
) -> Result<BackupReport, BackupFailure> {
    let lock = if opts.dry_run { None } else { Some(HeldLock::take(&*store, clock, owner, LockKind::Backup).await?) };
    if lock.is_some() {
        crate::commit_log::began("backup", None);
    }
    backup_locked(repo, store, clock, lock, opts, on_event).await
}

async fn backup_locked(
    repo: &dyn CollectionRepo,
    store: Arc<dyn BackupStore>,
    clock: &dyn Clock,
    mut lock: Option<HeldLock>,
    opts: &BackupOptions,
    on_event: &(dyn Fn(BackupEvent) + Sync),
) -> Result<BackupReport, BackupFailure> {
    let outcome = async {
        // What the repository already holds: every blob listed by the indexes of the existing backups.
        let mut manifests = Vec::new();
        for info in store.list_manifests().await.map_err(BackupFailure::Store)? {
            match read_manifest(&*store, &info.id).await {
                Ok(m) => manifests.push(m),
                Err(e) => tracing::warn!(backup = %info.id, error = %e, "skipping an unreadable manifest for deduplication"),
            }
        }
        // Collected first: an iterator with a closure over borrowed manifests held across the await would make this
        // future not provably `Send` (a SafetyNet implementation runs it behind async-trait).
        let indexes: Vec<ContentHash> = manifests.iter().flat_map(|m| m.indexes.iter().copied()).collect();
        let known = KnownBlobs::load(&*store, indexes).await?;
        let prev = manifests.iter().rev().find(|m| !m.scope.schema_only);
        // Only the previous backup's record chunks are read back (for the vectors they name).
        let record_chunks = known.subset(prev.iter().flat_map(|m| m.collections.iter().flat_map(|c| c.document_records.iter())));
        let mut reader = BlobReader::new(Arc::clone(&store), record_chunks, 2);

        let snap = repo.snapshot().await?;
        let created_at = clock.now();
        let all = snap.collections().await?;
        for want in &opts.collections {
            if !all.iter().any(|c| &c.name == want) {
                return Err(BackupFailure::NoSuchCollection(want.clone(), "store"));
            }
        }
        let chosen: Vec<Collection> =
            all.into_iter().filter(|c| opts.collections.is_empty() || opts.collections.contains(&c.name)).collect();
        let (documents, bytes) = if opts.schema_only {
            (0, 0)
        } else {
            (chosen.iter().map(|c| c.document_count).sum(), chosen.iter().map(|c| c.logical_bytes).sum())
        };
        on_event(BackupEvent::Started { documents, bytes });

        let mut packer =
            Packer::new(Arc::clone(&store), known, opts.dry_run, Box::new(|b| on_event(BackupEvent::ObjectWritten { bytes: b })));
        let mut entries = Vec::new();
        // Whether a document is in parts: then the manifest is version 2, which builds before parts refuse.
        let mut any_parts = false;
        for c in &chosen {
            let mut entry = CollectionEntry {
                name: c.name.clone(),
                settings: c.settings.clone(),
                created_at: c.created_at,
                documents: 0,
                bytes: 0,
                vectors: 0,
                ledger_rows: 0,
                document_records: Vec::new(),
                ledger_records: Vec::new(),
            };
            if !opts.schema_only {
                let mut previous = previous_records(prev, c);
                let mut records = RecordChunker::new();
                // The ledger is read alongside the documents (both in key order): it tells whether a document's
                // vectors can be in the cache, and its rows become the ledger's record chunks.
                let mut ledger = LedgerCursor::default();
                let mut after = None;
                loop {
                    let page: Vec<DocumentMeta> = snap.documents(&c.name, after.clone(), PAGE).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.key.clone());
                    // Contents are read a group at a time: at most 256 documents and about CONTENT_GROUP_BYTES.
                    for page in by_bytes(page, CONTENT_GROUP_BYTES) {
                        // First the plan of each document: what the previous backup had for this very content, when it can
                        // stand as it is (its vectors blob, still stored, or "no vectors" while the document has no
                        // projection of this content), and whether its content must be read.
                        // A large document (in parts) is streamed on its own below, without vectors; its previous
                        // parts stand when every one is still stored.
                        let mut plans = Vec::with_capacity(page.len());
                        let mut previous_parts: HashMap<usize, Vec<ContentHash>> = HashMap::new();
                        for (i, d) in page.iter().enumerate() {
                            let row = ledger.take(&*snap, &c.name, Some(&d.key), &mut packer, &mut entry).await?;
                            let projected_now = row.and_then(|r| r.projected).is_some_and(|p| p.content_hash == d.content_hash);
                            let prev = previous.find(&mut reader, &d.key).await?;
                            if d.size > format::LARGE_CONTENT {
                                if let Some(r) = prev.filter(|r| r.hash == d.content_hash && !r.parts.is_empty()) {
                                    previous_parts.insert(i, r.parts);
                                }
                                plans.push((Some((None, 0)), false));
                                continue;
                            }
                            let reused: Option<(Option<ContentHash>, u32)> = match prev {
                                Some(r) if r.hash != d.content_hash || !r.parts.is_empty() => None,
                                Some(DocRecord { vectors: Some(v), vector_count, .. }) if packer.has(&v) => Some((Some(v), vector_count)),
                                Some(DocRecord { vectors: None, .. }) if !projected_now || c.settings.vectors.is_none() => Some((None, 0)),
                                _ => None,
                            };
                            let read = reused.is_none() || !packer.has(&d.content_hash);
                            plans.push((reused, read));
                        }
                        // Then the contents to read, in one request, checked against their hashes.
                        let wanted: Vec<usize> = plans.iter().enumerate().filter(|(_, (_, read))| *read).map(|(i, _)| i).collect();
                        let fetched = snap.contents(wanted.iter().map(|&i| page[i].content_hash).collect()).await?;
                        for (&i, content) in wanted.iter().zip(&fetched) {
                            if ContentHash::of(content) != page[i].content_hash {
                                return Err(BackupFailure::StoreCorrupt { collection: c.name.clone(), key: page[i].key.to_string() });
                            }
                        }
                        // The vectors of the documents read whose previous vectors cannot stand, in one cache lookup.
                        let needs_vectors: Vec<usize> = (0..wanted.len()).filter(|&j| plans[wanted[j]].0.is_none()).collect();
                        let blobs = vectors_blobs(&*snap, c, &needs_vectors.iter().map(|&j| &fetched[j][..]).collect::<Vec<_>>()).await?;
                        let mut new_vectors: HashMap<usize, Option<(Vec<u8>, u32)>> =
                            needs_vectors.iter().map(|&j| wanted[j]).zip(blobs).collect();
                        let contents: HashMap<ContentHash, Bytes> = wanted.iter().map(|&i| page[i].content_hash).zip(fetched).collect();
                        for (i, (d, (reused, _))) in page.into_iter().zip(plans).enumerate() {
                            let mut parts = Vec::new();
                            let have_content = if d.size > format::LARGE_CONTENT {
                                parts = match previous_parts.remove(&i) {
                                    Some(p) if p.iter().all(|h| packer.has(h)) => {
                                        for (n, h) in p.iter().enumerate() {
                                            let start = n as u64 * format::PIECE as u64;
                                            packer.reuse(h, d.size.saturating_sub(start).min(format::PIECE as u64));
                                        }
                                        p
                                    }
                                    _ => store_in_pieces(&*snap, &c.name, &d, &mut packer).await?,
                                };
                                any_parts = true;
                                true
                            } else {
                                packer.reuse(&d.content_hash, d.size)
                            };
                            if let Some((Some(v), _)) = reused {
                                packer.reuse(&v, 0);
                            }
                            if !have_content {
                                let content = match contents.get(&d.content_hash) {
                                    Some(b) => b.clone(),
                                    None => snap.content(&d.content_hash).await?,
                                };
                                packer.add_with_id(d.content_hash, &content).await?;
                            }
                            let (vectors, vector_count) = match reused {
                                Some(r) => r,
                                None => match new_vectors.remove(&i).flatten() {
                                    Some((blob, n)) => (Some(packer.add(&blob).await?), n),
                                    None => (None, 0),
                                },
                            };
                            entry.vectors += u64::from(vector_count);
                            entry.documents += 1;
                            entry.bytes += d.size;
                            on_event(BackupEvent::Document { bytes: d.size });
                            let record = DocRecord {
                                key: d.key.clone(),
                                hash: d.content_hash,
                                parts,
                                size: d.size,
                                metadata: d.metadata,
                                tags: d.tags,
                                version: d.version,
                                created_at: d.created_at,
                                updated_at: d.updated_at,
                                vectors,
                                vector_count,
                            };
                            records.push(&mut packer, &d.key, &record).await?;
                        }
                    }
                    if let Some(l) = lock.as_mut() {
                        l.refresh(&*store, clock).await?;
                    }
                }
                entry.document_records = records.finish(&mut packer).await?;
                // Ledger rows after the last document (pending deletions).
                ledger.take(&*snap, &c.name, None, &mut packer, &mut entry).await?;
                entry.ledger_records = ledger.chunks.finish(&mut packer).await?;
            }
            entries.push(entry);
        }
        drop(snap);
        let (packs, indexes, mut stats) = packer.finish().await?;
        stats.documents = entries.iter().map(|e| e.documents).sum();
        stats.logical_bytes = entries.iter().map(|e| e.bytes).sum();
        let summaries = entries.iter().map(CollectionEntrySummary::from).collect();
        if opts.dry_run {
            return Ok(BackupReport { id: None, created_at, collections: summaries, stats });
        }
        let id = new_backup_id(created_at);
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            version: if any_parts { VERSION } else { VERSION_WITHOUT_PARTS },
            id: id.clone(),
            created_at,
            tags: opts.tags.clone(),
            scope: Scope { collections: (!opts.collections.is_empty()).then(|| opts.collections.clone()), schema_only: opts.schema_only },
            store_id: Some(opts.store_id),
            store_path: opts.store_path.clone(),
            tool_version: opts.tool_version.clone(),
            schema_version: opts.schema_version,
            collections: entries,
            indexes,
            packs,
            stats,
        };
        let bytes = Bytes::from(manifest.to_bytes());
        store.put_manifest(&id, bytes.clone()).await.map_err(BackupFailure::Store)?;
        let back = store.get_manifest(&id).await.map_err(BackupFailure::Store)?;
        if back != bytes {
            return Err(BackupFailure::Unverified { id: ContentHash::of(&bytes), detail: format!("manifest {id} read back differs") });
        }
        crate::commit_log::durable_step("backup", &id.to_string());
        Ok(BackupReport { id: Some(id.to_string()), created_at, collections: summaries, stats })
    }
    .await;
    if let Some(l) = lock {
        l.release(&*store).await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn doc(i: usize, size: u64) -> DocumentMeta {
        DocumentMeta {
            collection: CollectionName::parse("c").unwrap(),
            key: DocKey::parse(&format!("k{i:03}")).unwrap(),
            content_hash: ContentHash::of(&i.to_le_bytes()),
            size,
            metadata: Default::default(),
            tags: Default::default(),
            version: 1,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[rstest]
    #[case::empty(&[], &[])]
    #[case::all_fit(&[3, 3, 4], &[3])]
    #[case::cut_when_full(&[6, 4, 1, 9], &[2, 2])]
    #[case::a_large_document_alone(&[2, 50, 2], &[1, 1, 1])]
    #[case::first_larger_than_max(&[50, 1, 1], &[1, 2])]
    fn pages_split_into_groups_of_bounded_bytes(#[case] sizes: &[u64], #[case] groups: &[usize]) {
        let page: Vec<DocumentMeta> = sizes.iter().enumerate().map(|(i, s)| doc(i, *s)).collect();
        let split = by_bytes(page, 10);
        assert_eq!(split.iter().map(Vec::len).collect::<Vec<_>>(), groups);
        let keys: Vec<String> = split.into_iter().flatten().map(|d| d.key.to_string()).collect();
        assert_eq!(keys, (0..sizes.len()).map(|i| format!("k{i:03}")).collect::<Vec<_>>(), "order and documents kept");
    }
}
