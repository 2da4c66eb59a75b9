//! Writing blobs into packs (with read-back verification) and reading them back through a small pack cache.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use colstore_domain::ContentHash;
use colstore_domain::ports::{BackupError, BackupStore};

use super::BackupFailure;
use super::format::{self, BlobLocation, PACK_TARGET};

/// Every blob the repository holds (as far as the indexes of the manifests read say), and which index lists it.
#[derive(Default)]
pub(crate) struct KnownBlobs {
    pub blobs: HashMap<ContentHash, (BlobLocation, ContentHash)>,
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
            for (blob, loc) in format::decode_index(&id, &bytes)? {
                known.blobs.entry(blob).or_insert((loc, id));
            }
        }
        Ok(known)
    }
}

/// Writes new blobs into packs; remembers which packs and indexes the backup being written needs.
pub(crate) struct Packer<'a> {
    store: &'a dyn BackupStore,
    known: KnownBlobs,
    /// Count what would be written, write nothing.
    dry_run: bool,
    buf: Vec<u8>,
    pending: Vec<(ContentHash, u64, u64)>,
    /// Entries of the packs this run wrote, for its own index.
    new_entries: Vec<(ContentHash, BlobLocation)>,
    /// Blobs of this run not yet flushed (dedup within the run).
    in_buffer: HashSet<ContentHash>,
    pub used_packs: HashSet<ContentHash>,
    pub used_indexes: HashSet<ContentHash>,
    pub stats: format::BackupStats,
    /// Called after each object written, with its uncompressed size.
    on_object: Box<dyn FnMut(u64) + Send + 'a>,
}

impl<'a> Packer<'a> {
    pub fn new(store: &'a dyn BackupStore, known: KnownBlobs, dry_run: bool, on_object: Box<dyn FnMut(u64) + Send + 'a>) -> Self {
        Self {
            store,
            known,
            dry_run,
            buf: Vec::with_capacity(PACK_TARGET + 1024 * 1024),
            pending: Vec::new(),
            new_entries: Vec::new(),
            in_buffer: HashSet::new(),
            used_packs: HashSet::new(),
            used_indexes: HashSet::new(),
            stats: format::BackupStats::default(),
            on_object,
        }
    }

    /// Whether a blob is already stored (or queued in this run); marks it used when it is.
    pub fn reuse(&mut self, id: &ContentHash, len: u64) -> bool {
        if let Some((loc, index)) = self.known.blobs.get(id) {
            self.used_packs.insert(loc.pack);
            self.used_indexes.insert(*index);
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

    /// Writes one object and reads it back: the store re-hashes what it returns, and the bytes are compared too.
    async fn put_verified(&mut self, id: ContentHash, data: Bytes, what: &str) -> Result<(), BackupFailure> {
        let len = data.len() as u64;
        if self.dry_run {
            self.stats.new_objects += 1;
            self.stats.new_object_bytes += len;
            return Ok(());
        }
        self.store.put_object(&id, data.clone()).await.map_err(|e| BackupFailure::object(&id, what, e))?;
        let back = self.store.get_object(&id).await.map_err(|e| BackupFailure::object(&id, what, e))?;
        if back != data {
            return Err(BackupFailure::Unverified { id, detail: format!("the {what} read back differs from what was written") });
        }
        self.stats.new_objects += 1;
        self.stats.new_object_bytes += len;
        (self.on_object)(len);
        Ok(())
    }

    /// Writes the current pack, if any.
    pub async fn flush(&mut self) -> Result<(), BackupFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PACK_TARGET + 1024 * 1024)));
        let pack = ContentHash::of(&data);
        self.put_verified(pack, data, "pack").await?;
        for (blob, offset, len) in self.pending.drain(..) {
            let loc = BlobLocation { pack, offset, len };
            self.new_entries.push((blob, loc));
            self.in_buffer.remove(&blob);
            // Later reuse within this run finds it like any stored blob; its index is this run's (added at finish).
            self.known.blobs.insert(blob, (loc, ContentHash::from_bytes([0; 32])));
        }
        self.used_packs.insert(pack);
        Ok(())
    }

    /// Flushes and writes this run's index; returns the packs and indexes the backup needs.
    pub async fn finish(mut self) -> Result<(Vec<ContentHash>, Vec<ContentHash>, format::BackupStats), BackupFailure> {
        self.flush().await?;
        let placeholder = ContentHash::from_bytes([0; 32]);
        self.used_indexes.remove(&placeholder);
        if !self.new_entries.is_empty() {
            let bytes = Bytes::from(format::encode_index(&self.new_entries));
            let id = ContentHash::of(&bytes);
            self.put_verified(id, bytes, "pack index").await?;
            self.used_indexes.insert(id);
        }
        // Blobs reused from earlier backups: their packs must still be there (a prune may have run since).
        let mut packs: Vec<ContentHash> = self.used_packs.into_iter().collect();
        packs.sort_unstable();
        let mut indexes: Vec<ContentHash> = self.used_indexes.into_iter().collect();
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

/// Reads blobs by id through a small cache of whole packs.
pub(crate) struct BlobReader {
    store: Arc<dyn BackupStore>,
    index: HashMap<ContentHash, BlobLocation>,
    cache: VecDeque<(ContentHash, Bytes)>,
    cache_packs: usize,
    /// Objects read and their bytes.
    pub read: (u64, u64),
}

impl BlobReader {
    pub fn new(store: Arc<dyn BackupStore>, known: KnownBlobs, cache_packs: usize) -> Self {
        Self {
            store,
            index: known.blobs.into_iter().map(|(b, (loc, _))| (b, loc)).collect(),
            cache: VecDeque::new(),
            cache_packs: cache_packs.max(1),
            read: (0, 0),
        }
    }

    /// Whether the index knows the blob.
    pub fn knows(&self, id: &ContentHash) -> bool {
        self.index.contains_key(id)
    }

    /// Every (blob, location) the index knows.
    pub fn entries(&self) -> impl Iterator<Item = (&ContentHash, &BlobLocation)> {
        self.index.iter()
    }

    /// Reads a whole pack (the store checks its hash).
    pub async fn pack(&mut self, pack: &ContentHash) -> Result<Bytes, BackupFailure> {
        if let Some((_, b)) = self.cache.iter().find(|(p, _)| p == pack) {
            return Ok(b.clone());
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
        let loc = *self.index.get(id).ok_or_else(|| BackupFailure::Missing { id: *id, what: what.to_owned() })?;
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

/// Maps a store error on an object to the failure the use cases report.
pub(crate) fn object_error(id: &ContentHash, what: &str, e: BackupError) -> BackupFailure {
    match e {
        BackupError::NotFound(_) => BackupFailure::Missing { id: *id, what: what.to_owned() },
        BackupError::Corrupt { id, detail } => BackupFailure::Corrupt { id, detail },
        other => BackupFailure::Store(other),
    }
}
