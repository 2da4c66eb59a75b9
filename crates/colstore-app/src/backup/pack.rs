//! Writing blobs into packs (with read-back verification) and reading them back through a small pack cache.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use colstore_domain::ContentHash;
use colstore_domain::ports::{BackupError, BackupStore};

use super::BackupFailure;
use super::format::{self, BlobLocation, PACK_TARGET};

/// Where a blob is, compactly: packs and indexes are numbered in the tables of [`KnownBlobs`].
#[derive(Debug, Clone, Copy)]
struct Slot {
    pack: u32,
    index: u32,
    offset: u64,
    len: u64,
}

/// Every blob the repository holds (as far as the indexes read say): where it is, and which index lists it.
///
/// This is the repository's blob index held in memory, as restic holds its own: about 60 bytes per blob (its id and a
/// [`Slot`]), pack and index ids stored once each.
#[derive(Default)]
pub(crate) struct KnownBlobs {
    blobs: HashMap<ContentHash, Slot>,
    packs: Vec<ContentHash>,
    pack_numbers: HashMap<ContentHash, u32>,
    indexes: Vec<ContentHash>,
    index_numbers: HashMap<ContentHash, u32>,
}

fn number(table: &mut Vec<ContentHash>, numbers: &mut HashMap<ContentHash, u32>, id: ContentHash) -> u32 {
    *numbers.entry(id).or_insert_with(|| {
        table.push(id);
        u32::try_from(table.len() - 1).unwrap_or(u32::MAX)
    })
}

impl KnownBlobs {
    /// Reads the given pack indexes (each once).
    pub async fn load(store: &dyn BackupStore, indexes: impl IntoIterator<Item = ContentHash>) -> Result<Self, BackupFailure> {
        let mut known = Self::default();
        let mut seen = HashSet::new();
        for id in indexes {
            if !seen.insert(id) {
                continue;
            }
            let bytes = store.get_object(&id).await.map_err(|e| BackupFailure::object(&id, "pack index", e))?;
            let entries = format::decode_index(&id, &bytes)?;
            known.blobs.reserve(entries.len());
            for (blob, loc) in entries {
                if !known.blobs.contains_key(&blob) {
                    known.insert(blob, loc, id);
                }
            }
        }
        Ok(known)
    }

    /// Records where a blob is and which index lists it (replacing what was known of it).
    pub fn insert(&mut self, blob: ContentHash, loc: BlobLocation, index: ContentHash) {
        let pack = number(&mut self.packs, &mut self.pack_numbers, loc.pack);
        let index = number(&mut self.indexes, &mut self.index_numbers, index);
        self.blobs.insert(blob, Slot { pack, index, offset: loc.offset, len: loc.len });
    }

    fn expand(&self, slot: Slot) -> (BlobLocation, ContentHash) {
        (BlobLocation { pack: self.packs[slot.pack as usize], offset: slot.offset, len: slot.len }, self.indexes[slot.index as usize])
    }

    /// Where a blob is and which index lists it.
    pub fn get(&self, blob: &ContentHash) -> Option<(BlobLocation, ContentHash)> {
        self.blobs.get(blob).map(|s| self.expand(*s))
    }

    /// Whether a blob is known.
    pub fn contains(&self, blob: &ContentHash) -> bool {
        self.blobs.contains_key(blob)
    }

    /// Every known blob and where it is.
    pub fn locations(&self) -> impl Iterator<Item = (ContentHash, BlobLocation)> + '_ {
        self.blobs.iter().map(|(b, s)| (*b, self.expand(*s).0))
    }

    /// Adds what `other` knows (blobs already known keep their place).
    pub fn merge(&mut self, other: KnownBlobs) {
        for (blob, slot) in &other.blobs {
            if !self.blobs.contains_key(blob) {
                let (loc, index) = other.expand(*slot);
                self.insert(*blob, loc, index);
            }
        }
    }

    /// Only the given blobs, where known.
    pub fn subset<'b>(&self, blobs: impl IntoIterator<Item = &'b ContentHash>) -> KnownBlobs {
        let mut out = KnownBlobs::default();
        for b in blobs {
            if let Some((loc, index)) = self.get(b) {
                out.insert(*b, loc, index);
            }
        }
        out
    }
}

/// Packs written at the same time: while one is compressed, written and read back on other threads, the next fills.
const PACKS_IN_FLIGHT: usize = 2;

/// A backup writes an index once its packs hold this many new blobs (80 bytes each in the index).
const INDEX_ENTRIES_MAX: usize = 16 * 1024;

/// A pack handed to a background task: its blobs (id, offset, length), and the task, which answers the pack's id and
/// size once it is written and verified.
struct InFlight {
    blobs: Vec<(ContentHash, u64, u64)>,
    task: tokio::task::JoinHandle<Result<(ContentHash, u64), BackupFailure>>,
}

/// Writes new blobs into packs; remembers which packs and indexes the backup being written needs.
///
/// Full packs are written by background tasks (at most [`PACKS_IN_FLIGHT`] at a time), so hashing, compressing,
/// writing and reading back a pack overlaps with reading the store for the next one. A failure of a pack surfaces at
/// a later [`add`](Self::add) or at [`finish`](Self::finish); dropping the packer aborts what is still running.
pub(crate) struct Packer<'a> {
    store: Arc<dyn BackupStore>,
    known: KnownBlobs,
    /// Count what would be written, write nothing.
    dry_run: bool,
    buf: Vec<u8>,
    pending: Vec<(ContentHash, u64, u64)>,
    in_flight: VecDeque<InFlight>,
    /// Entries of the packs this run wrote, for its own index.
    new_entries: Vec<(ContentHash, BlobLocation)>,
    /// Blobs of this run not yet written (dedup within the run): in the buffer or in flight.
    in_buffer: HashSet<ContentHash>,
    pub used_packs: HashSet<ContentHash>,
    pub used_indexes: HashSet<ContentHash>,
    pub stats: format::BackupStats,
    /// Called after each object written, with its uncompressed size.
    on_object: Box<dyn FnMut(u64) + Send + 'a>,
}

impl Drop for Packer<'_> {
    fn drop(&mut self) {
        for f in &self.in_flight {
            f.task.abort();
        }
    }
}

/// Writes one object and reads it back: the store re-hashes what it returns, and the bytes are compared too.
async fn put_verified(store: &dyn BackupStore, id: ContentHash, data: Bytes, what: &str) -> Result<(), BackupFailure> {
    store.put_object(&id, data.clone()).await.map_err(|e| BackupFailure::object(&id, what, e))?;
    let back = store.get_object(&id).await.map_err(|e| BackupFailure::object(&id, what, e))?;
    if back != data {
        return Err(BackupFailure::Unverified { id, detail: format!("the {what} read back differs from what was written") });
    }
    Ok(())
}

impl<'a> Packer<'a> {
    pub fn new(store: Arc<dyn BackupStore>, known: KnownBlobs, dry_run: bool, on_object: Box<dyn FnMut(u64) + Send + 'a>) -> Self {
        Self {
            store,
            known,
            dry_run,
            buf: Vec::with_capacity(PACK_TARGET + 1024 * 1024),
            pending: Vec::new(),
            in_flight: VecDeque::new(),
            new_entries: Vec::new(),
            in_buffer: HashSet::new(),
            used_packs: HashSet::new(),
            used_indexes: HashSet::new(),
            stats: format::BackupStats::default(),
            on_object,
        }
    }

    /// Whether a blob is already stored or queued in this run, without marking it used.
    pub fn has(&self, id: &ContentHash) -> bool {
        self.known.contains(id) || self.in_buffer.contains(id)
    }

    /// Whether a blob is already stored (or queued in this run); marks it used when it is.
    pub fn reuse(&mut self, id: &ContentHash, len: u64) -> bool {
        if let Some((loc, index)) = self.known.get(id) {
            self.used_packs.insert(loc.pack);
            self.used_indexes.insert(index);
            self.stats.blobs += 1;
            self.stats.blob_bytes += len;
            return true;
        }
        if self.in_buffer.contains(id) {
            self.stats.blobs += 1;
            self.stats.blob_bytes += len;
            return true;
        }
        false
    }

    /// Adds a blob (unless already stored), returning its id.
    pub async fn add(&mut self, data: &[u8]) -> Result<ContentHash, BackupFailure> {
        let id = ContentHash::of(data);
        self.add_with_id(id, data).await?;
        Ok(id)
    }

    /// Adds a blob whose id the caller checked.
    pub async fn add_with_id(&mut self, id: ContentHash, data: &[u8]) -> Result<(), BackupFailure> {
        if self.reuse(&id, data.len() as u64) {
            return Ok(());
        }
        let offset = self.buf.len() as u64;
        self.buf.extend_from_slice(data);
        self.pending.push((id, offset, data.len() as u64));
        self.in_buffer.insert(id);
        self.stats.blobs += 1;
        self.stats.blob_bytes += data.len() as u64;
        self.stats.new_blobs += 1;
        self.stats.new_blob_bytes += data.len() as u64;
        if self.buf.len() >= PACK_TARGET {
            self.flush().await?;
        }
        Ok(())
    }

    /// Hands the current pack, if any, to a background task; waits for the oldest when too many are in flight.
    pub async fn flush(&mut self) -> Result<(), BackupFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PACK_TARGET + 1024 * 1024)));
        let blobs = std::mem::take(&mut self.pending);
        if self.dry_run {
            let len = data.len() as u64;
            self.stats.new_objects += 1;
            self.stats.new_object_bytes += len;
            self.written(ContentHash::of(&data), blobs);
            return Ok(());
        }
        while self.in_flight.len() >= PACKS_IN_FLIGHT {
            self.complete_oldest().await?;
        }
        let store = Arc::clone(&self.store);
        let task = tokio::spawn(async move {
            let hashed = data.clone();
            let pack = tokio::task::spawn_blocking(move || ContentHash::of(&hashed))
                .await
                .map_err(|e| BackupFailure::Invalid(format!("hashing a pack failed: {e}")))?;
            let len = data.len() as u64;
            put_verified(&*store, pack, data, "pack").await?;
            Ok((pack, len))
        });
        self.in_flight.push_back(InFlight { blobs, task });
        Ok(())
    }

    /// Waits for the oldest pack in flight and records where its blobs are.
    async fn complete_oldest(&mut self) -> Result<(), BackupFailure> {
        let Some(f) = self.in_flight.pop_front() else { return Ok(()) };
        let (pack, len) = f.task.await.map_err(|e| BackupFailure::Invalid(format!("writing a pack failed: {e}")))??;
        self.stats.new_objects += 1;
        self.stats.new_object_bytes += len;
        (self.on_object)(len);
        self.written(pack, f.blobs);
        if self.new_entries.len() >= INDEX_ENTRIES_MAX {
            self.write_index().await?;
        }
        Ok(())
    }

    /// Writes an index of the packs written since the last one, if any. A backup writes one every
    /// [`INDEX_ENTRIES_MAX`] blobs, so what it holds for its own index stays bounded.
    async fn write_index(&mut self) -> Result<(), BackupFailure> {
        if self.new_entries.is_empty() {
            return Ok(());
        }
        let bytes = Bytes::from(format::encode_index(&std::mem::take(&mut self.new_entries)));
        let id = ContentHash::of(&bytes);
        let len = bytes.len() as u64;
        if !self.dry_run {
            put_verified(&*self.store, id, bytes, "pack index").await?;
            (self.on_object)(len);
        }
        self.stats.new_objects += 1;
        self.stats.new_object_bytes += len;
        self.used_indexes.insert(id);
        Ok(())
    }

    /// Records a written pack's blobs: later reuse within this run finds them like any stored blob.
    fn written(&mut self, pack: ContentHash, blobs: Vec<(ContentHash, u64, u64)>) {
        for (blob, offset, len) in blobs {
            let loc = BlobLocation { pack, offset, len };
            self.new_entries.push((blob, loc));
            self.in_buffer.remove(&blob);
            // Its index is this run's (added at finish).
            self.known.insert(blob, loc, ContentHash::from_bytes([0; 32]));
        }
        self.used_packs.insert(pack);
    }

    /// Flushes, waits for every pack, and writes this run's index; returns the packs and indexes the backup needs.
    pub async fn finish(mut self) -> Result<(Vec<ContentHash>, Vec<ContentHash>, format::BackupStats), BackupFailure> {
        self.flush().await?;
        while !self.in_flight.is_empty() {
            self.complete_oldest().await?;
        }
        let placeholder = ContentHash::from_bytes([0; 32]);
        self.used_indexes.remove(&placeholder);
        self.write_index().await?;
        // Blobs reused from earlier backups: their packs must still be there (a prune may have run since).
        let mut packs: Vec<ContentHash> = std::mem::take(&mut self.used_packs).into_iter().collect();
        packs.sort_unstable();
        let mut indexes: Vec<ContentHash> = std::mem::take(&mut self.used_indexes).into_iter().collect();
        indexes.sort_unstable();
        for id in packs.iter().chain(indexes.iter()).filter(|_| !self.dry_run) {
            if !self.store.has_object(id).await.map_err(|e| BackupFailure::object(id, "object", e))? {
                return Err(BackupFailure::Unverified {
                    id: *id,
                    detail: "an object this backup shares with earlier backups is gone (was a prune running?); run the backup again".into(),
                });
            }
        }
        Ok((packs, indexes, self.stats))
    }
}

/// Reads blobs by id through a small cache of whole packs (least recently used out).
pub(crate) struct BlobReader {
    store: Arc<dyn BackupStore>,
    index: KnownBlobs,
    cache: VecDeque<(ContentHash, Bytes)>,
    cache_packs: usize,
    /// Objects read and their bytes.
    pub read: (u64, u64),
}

impl BlobReader {
    pub fn new(store: Arc<dyn BackupStore>, known: KnownBlobs, cache_packs: usize) -> Self {
        Self { store, index: known, cache: VecDeque::new(), cache_packs: cache_packs.max(1), read: (0, 0) }
    }

    /// Reads a whole pack (the store checks its hash).
    pub async fn pack(&mut self, pack: &ContentHash) -> Result<Bytes, BackupFailure> {
        if let Some(i) = self.cache.iter().position(|(p, _)| p == pack) {
            // Least recently used goes first: move a hit to the back.
            let hit = self.cache.remove(i).expect("found");
            let bytes = hit.1.clone();
            self.cache.push_back(hit);
            return Ok(bytes);
        }
        let bytes = self.store.get_object(pack).await.map_err(|e| BackupFailure::object(pack, "pack", e))?;
        self.read.0 += 1;
        self.read.1 += bytes.len() as u64;
        if self.cache.len() >= self.cache_packs {
            self.cache.pop_front();
        }
        self.cache.push_back((*pack, bytes.clone()));
        Ok(bytes)
    }

    /// Reads a blob and checks its hash.
    pub async fn blob(&mut self, id: &ContentHash, what: &str) -> Result<Bytes, BackupFailure> {
        let (loc, _) = self.index.get(id).ok_or_else(|| BackupFailure::Missing { id: *id, what: what.to_owned() })?;
        let pack = self.pack(&loc.pack).await?;
        let (start, end) = (usize::try_from(loc.offset).unwrap_or(usize::MAX), usize::try_from(loc.offset + loc.len).unwrap_or(usize::MAX));
        let Some(slice) = pack.get(start..end) else {
            return Err(BackupFailure::Corrupt {
                id: loc.pack,
                detail: format!("the {what} {} lies beyond the end of the pack", id.short()),
            });
        };
        if ContentHash::of(slice) != *id {
            return Err(BackupFailure::Corrupt {
                id: loc.pack,
                detail: format!("the {what} {} in it does not match its hash", id.short()),
            });
        }
        Ok(pack.slice(start..end))
    }
}

/// Records of record chunks (JSON lines, in key order), read one chunk at a time.
pub(crate) struct RecordStream<T> {
    /// Chunks not read yet, next last.
    chunks: Vec<ContentHash>,
    buf: VecDeque<T>,
}

/// A record with a document key.
pub(crate) trait Keyed {
    fn key(&self) -> &colstore_domain::DocKey;
}

impl Keyed for format::DocRecord {
    fn key(&self) -> &colstore_domain::DocKey {
        &self.key
    }
}

impl Keyed for format::LedgerRecord {
    fn key(&self) -> &colstore_domain::DocKey {
        &self.key
    }
}

impl<T: serde::de::DeserializeOwned + Keyed> RecordStream<T> {
    pub fn new(chunks: &[ContentHash]) -> Self {
        Self { chunks: chunks.iter().rev().copied().collect(), buf: VecDeque::new() }
    }

    /// The next record, without taking it.
    pub async fn peek(&mut self, reader: &mut BlobReader) -> Result<Option<&T>, BackupFailure> {
        while self.buf.is_empty() {
            let Some(id) = self.chunks.pop() else { return Ok(None) };
            let bytes = reader.blob(&id, "record chunk").await?;
            self.buf.extend(format::parse_lines::<T>(&id, &bytes)?);
        }
        Ok(self.buf.front())
    }

    /// Takes the next record.
    pub async fn next(&mut self, reader: &mut BlobReader) -> Result<Option<T>, BackupFailure> {
        self.peek(reader).await?;
        Ok(self.buf.pop_front())
    }

    /// The record of `key`, if any, dropping those before it (keys asked in increasing order).
    pub async fn find(&mut self, reader: &mut BlobReader, key: &colstore_domain::DocKey) -> Result<Option<T>, BackupFailure> {
        loop {
            let order = match self.peek(reader).await? {
                None => return Ok(None),
                Some(r) => r.key().as_str().as_bytes().cmp(key.as_str().as_bytes()),
            };
            match order {
                std::cmp::Ordering::Less => {
                    self.buf.pop_front();
                }
                std::cmp::Ordering::Equal => return Ok(self.buf.pop_front()),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
    }
}

/// Maps a store error on an object to the failure the use cases report.
pub(crate) fn object_error(id: &ContentHash, what: &str, e: BackupError) -> BackupFailure {
    match e {
        BackupError::NotFound(_) => BackupFailure::Missing { id: *id, what: what.to_owned() },
        BackupError::Corrupt { id, detail } => BackupFailure::Corrupt { id, detail },
        other => BackupFailure::Store(other),
    }
}
