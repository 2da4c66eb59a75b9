//! `InMemoryBackupStore`: a faithful in-memory [`BackupStore`] with the object_store adapter's semantics.
//!
//! Entries live in one map behind a mutex (never held across an `.await`), keyed exactly like the adapter's layout
//! (`objects/ab/<hex>`, `manifests/<id>.json`, `locks/<id>.json`), so listings parse names the same way and skip
//! what does not parse. Objects are stored uncompressed (their size at rest is their length); reads re-hash, so a
//! damaged object (see [`InMemoryBackupStore::corrupt_object`]) is `Corrupt`, never returned. Creates are atomic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{
    BackupCapabilities, BackupError, BackupId, BackupStore, Clock, ManifestInfo, ObjectInfo, PutObjectOutcome, RepoLock,
};
use colstore_domain::{ContentHash, Timestamp};
use futures::stream::{self, BoxStream, StreamExt};

use crate::backup::Corruption;

/// A [`BackupStore`] kept in memory, stamping writes with the [`Clock`] given to [`InMemoryBackupStore::new`].
pub struct InMemoryBackupStore {
    clock: Arc<dyn Clock>,
    entries: Mutex<BTreeMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    data: Bytes,
    written_at: Timestamp,
}

fn object_key(id: &ContentHash) -> String {
    let hex = id.to_hex();
    format!("objects/{}/{hex}", &hex[..2])
}

fn manifest_key(id: &BackupId) -> String {
    format!("manifests/{id}.json")
}

fn valid_lock_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_object_key(key: &str) -> Option<ContentHash> {
    let (fan, hex) = key.strip_prefix("objects/")?.split_once('/')?;
    let id = ContentHash::parse(hex).ok()?;
    (fan.len() == 2 && hex.starts_with(fan) && id.to_hex() == hex).then_some(id)
}

fn invalid_lock_id(id: &str) -> BackupError {
    BackupError::Backend {
        backend: "memory",
        source: format!("invalid lock id `{id}`: use 1-64 characters of letters, digits, '-' and '_'").into(),
    }
}

impl InMemoryBackupStore {
    /// An empty repository.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, entries: Mutex::new(BTreeMap::new()) }
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Damages a stored object behind the repository's back. `false` when there is no such object (or, for
    /// [`Corruption::SwapWith`], no such other object).
    pub fn corrupt_object(&self, id: &ContentHash, how: Corruption) -> bool {
        let mut entries = self.entries();
        let key = object_key(id);
        let replacement = match how {
            Corruption::Delete => return entries.remove(&key).is_some(),
            Corruption::SwapWith(other) => match entries.get(&object_key(&other)) {
                Some(e) => e.data.clone(),
                None => return false,
            },
            Corruption::FlipByte | Corruption::Truncate => Bytes::new(),
        };
        let Some(entry) = entries.get_mut(&key) else { return false };
        entry.data = match how {
            Corruption::FlipByte if entry.data.is_empty() => Bytes::from_static(b"\0"),
            Corruption::FlipByte => {
                let mut v = entry.data.to_vec();
                let mid = v.len() / 2;
                v[mid] ^= 0x04;
                Bytes::from(v)
            }
            Corruption::Truncate => entry.data.slice(..entry.data.len() / 2),
            Corruption::SwapWith(_) => replacement,
            Corruption::Delete => unreachable!("handled above"),
        };
        true
    }

    /// Writes `data` under a repository-relative key behind the repository's back (as a crashed writer or a foreign
    /// tool might), stamped now.
    pub fn put_raw(&self, key: &str, data: Bytes) {
        let written_at = self.clock.now();
        self.entries().insert(key.to_owned(), Entry { data, written_at });
    }

    /// Every key, sorted (for tests of the layout).
    pub fn keys(&self) -> Vec<String> {
        self.entries().keys().cloned().collect()
    }

    fn under(&self, folder: &str) -> Vec<(String, Entry)> {
        self.entries().range(folder.to_owned()..).take_while(|(k, _)| k.starts_with(folder)).map(|(k, e)| (k.clone(), e.clone())).collect()
    }
}

#[async_trait]
impl BackupStore for InMemoryBackupStore {
    fn capabilities(&self) -> BackupCapabilities {
        BackupCapabilities { atomic_create: true, durable_writes: false }
    }

    async fn put_object(&self, id: &ContentHash, data: Bytes) -> Result<PutObjectOutcome, BackupError> {
        let actual = ContentHash::of(&data);
        if actual != *id {
            return Err(BackupError::Corrupt { id: *id, detail: format!("the data to store hashes to {actual}, not to its id") });
        }
        let written_at = self.clock.now();
        let mut entries = self.entries();
        let key = object_key(id);
        if entries.contains_key(&key) {
            return Ok(PutObjectOutcome::AlreadyPresent);
        }
        entries.insert(key, Entry { data, written_at });
        Ok(PutObjectOutcome::Stored)
    }

    async fn get_object(&self, id: &ContentHash) -> Result<Bytes, BackupError> {
        let key = object_key(id);
        let data = self.entries().get(&key).map(|e| e.data.clone()).ok_or(BackupError::NotFound(key))?;
        let got = ContentHash::of(&data);
        if got != *id {
            return Err(BackupError::Corrupt { id: *id, detail: format!("hash mismatch: the content hashes to {got}") });
        }
        Ok(data)
    }

    async fn has_object(&self, id: &ContentHash) -> Result<bool, BackupError> {
        Ok(self.entries().contains_key(&object_key(id)))
    }

    async fn list_objects(&self) -> Result<BoxStream<'static, Result<ObjectInfo, BackupError>>, BackupError> {
        let infos: Vec<Result<ObjectInfo, BackupError>> = self
            .under("objects/")
            .into_iter()
            .filter_map(|(k, e)| Some(Ok(ObjectInfo { id: parse_object_key(&k)?, size: e.data.len() as u64, written_at: e.written_at })))
            .collect();
        Ok(stream::iter(infos).boxed())
    }

    async fn delete_object(&self, id: &ContentHash) -> Result<(), BackupError> {
        self.entries().remove(&object_key(id));
        Ok(())
    }

    async fn put_manifest(&self, id: &BackupId, data: Bytes) -> Result<(), BackupError> {
        let written_at = self.clock.now();
        let mut entries = self.entries();
        let key = manifest_key(id);
        if entries.contains_key(&key) {
            return Err(BackupError::AlreadyExists(key));
        }
        entries.insert(key, Entry { data, written_at });
        Ok(())
    }

    async fn get_manifest(&self, id: &BackupId) -> Result<Bytes, BackupError> {
        let key = manifest_key(id);
        let data = self.entries().get(&key).map(|e| e.data.clone()).ok_or_else(|| BackupError::NotFound(key.clone()))?;
        if data.len() as u64 > colstore_domain::ports::MAX_MANIFEST_BYTES {
            return Err(BackupError::TooLarge {
                what: format!("manifest {id} ({key})"),
                size: data.len() as u64,
                limit: colstore_domain::ports::MAX_MANIFEST_BYTES,
            });
        }
        Ok(data)
    }

    async fn list_manifests(&self) -> Result<Vec<ManifestInfo>, BackupError> {
        let mut out: Vec<ManifestInfo> = self
            .under("manifests/")
            .into_iter()
            .filter_map(|(k, e)| {
                let id = BackupId::parse(k.strip_prefix("manifests/")?.strip_suffix(".json")?).ok()?;
                Some(ManifestInfo { id, size: e.data.len() as u64, written_at: e.written_at })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn delete_manifest(&self, id: &BackupId) -> Result<(), BackupError> {
        self.entries().remove(&manifest_key(id));
        Ok(())
    }

    async fn put_lock(&self, lock: &RepoLock) -> Result<(), BackupError> {
        if !valid_lock_id(&lock.id) {
            return Err(invalid_lock_id(&lock.id));
        }
        let json = serde_json::to_vec(lock).map_err(|e| BackupError::Backend { backend: "memory", source: e.into() })?;
        let written_at = self.clock.now();
        self.entries().insert(format!("locks/{}.json", lock.id), Entry { data: Bytes::from(json), written_at });
        Ok(())
    }

    async fn list_locks(&self) -> Result<Vec<RepoLock>, BackupError> {
        let mut locks: Vec<RepoLock> = self
            .under("locks/")
            .into_iter()
            .filter_map(|(k, e)| {
                let id = k.strip_prefix("locks/")?.strip_suffix(".json")?;
                let lock: RepoLock = serde_json::from_slice(&e.data).ok()?;
                (valid_lock_id(id) && lock.id == id).then_some(lock)
            })
            .collect();
        locks.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(locks)
    }

    async fn delete_lock(&self, id: &str) -> Result<(), BackupError> {
        if !valid_lock_id(id) {
            return Err(invalid_lock_id(id));
        }
        self.entries().remove(&format!("locks/{id}.json"));
        Ok(())
    }
}
