//! `InMemoryRepo` in filesystem mode, and its [`FileCatalog`].
//!
//! Same protocol and semantics as `SqliteRepo::open_with_files`, without the crash-safety machinery a fake does not
//! need: every content is staged first (a failing stream, or any staging error, discards what was staged and changes
//! nothing); then, holding the writer lock, the metadata changes under the state lock exactly as in sqlite mode (no
//! blobs), and the files are committed or removed in order. A file is written only when the content changed. A key
//! that would be both a file and a folder (`a` and `a/b.md`) is refused with `Unsupported` before anything changes.
//! A file operation failing after the metadata changed is returned as an error, as the SQLite adapter does when it
//! cannot finish the write it recorded (the fake keeps no intent to finish later).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{
    ApplyReport, CatalogEntry, CorruptDocument, DocumentFiles, FileCatalog, FileChange, FileStat, FilesError, RepoError, StagedFile,
    StoreSnapshot, VerifyEvent, VerifyStream,
};
use colstore_domain::{
    CollectionName, Content, ContentHash, ContentStream, DocKey, DocumentMeta, Metadata, NewDocument, PutOutcome, PutStatus, Tags,
    checked_content,
};
use futures::{StreamExt, stream};

use super::{InMemoryRepo, InMemorySnapshot, restore_mismatch};

/// What is on record about a document's file.
#[derive(Debug, Clone)]
pub(super) struct FileRecord {
    /// Its path (the key, unless the file is stored under another Unicode form).
    pub(super) path: String,
    /// Its stat when last written or reconciled.
    pub(super) stat: Option<FileStat>,
}

/// The `backend` of errors that come from the files (as the SQLite adapter).
const FILES_BACKEND: &str = "files";

/// Maps a [`FilesError`] to the repository's error, as the SQLite adapter does.
pub(super) fn files_err(e: FilesError) -> RepoError {
    match e {
        FilesError::ReadOnly { path, source } => RepoError::ReadOnly(format!("{path} cannot be written: {source}")),
        other => RepoError::Backend { backend: FILES_BACKEND, source: Box::new(other) },
    }
}

fn content_stream(content: Content) -> ContentStream {
    match content {
        Content::Bytes(b) => stream::iter([Ok(b)]).boxed(),
        Content::Stream(s) => s,
    }
}

async fn collect(mut s: ContentStream) -> Result<Bytes, std::io::Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = s.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

/// Refuses keys new to the collection that cannot be files next to the others (`a` and `a/b.md`), either way.
/// `all` holds every key the collection will have (present ones and the batch).
fn tree_conflict(all: &BTreeSet<&str>, created: &[&DocKey]) -> Option<RepoError> {
    let conflict = |key: &str, other: &str| {
        RepoError::Unsupported(format!(
            "\"{key}\" cannot be stored as a file next to \"{other}\": in filesystem mode one path cannot be both a file and a folder"
        ))
    };
    for k in created {
        let k = k.as_str();
        if let Some(folder) = k.match_indices('/').map(|(i, _)| &k[..i]).find(|f| all.contains(f)) {
            return Some(conflict(k, folder));
        }
        let (lo, hi) = (format!("{k}/"), format!("{k}0"));
        if let Some(below) = all.range::<str, _>((Bound::Excluded(lo.as_str()), Bound::Excluded(hi.as_str()))).next() {
            return Some(conflict(k, below));
        }
    }
    None
}

impl InMemoryRepo {
    /// Stages every content; on any failure discards what was staged and returns the first error.
    async fn stage_all(
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        contents: Vec<(DocKey, ContentStream)>,
    ) -> Result<Vec<StagedFile>, RepoError> {
        let mut staged = Vec::with_capacity(contents.len());
        for (key, content) in contents {
            match files.stage(collection, content).await {
                Ok(s) => staged.push(s),
                Err(e) => {
                    Self::discard_all(files, collection, &staged).await;
                    return Err(match e {
                        FilesError::ContentRead(source) => RepoError::ContentRead { key, source },
                        other => files_err(other),
                    });
                }
            }
        }
        Ok(staged)
    }

    /// Discards staged files; failures only leave leftovers, which scans never see.
    async fn discard_all(files: &dyn DocumentFiles, collection: &CollectionName, staged: &[StagedFile]) {
        for s in staged {
            let _ = files.discard(collection, &s.token).await;
        }
    }

    /// Commits `writes` (index into `staged`, key) in order and discards every other staged file; records each
    /// committed file's stat while its document still has that content. Returns the first error.
    async fn commit_all(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        staged: &[StagedFile],
        writes: &[(usize, DocKey)],
    ) -> Result<(), RepoError> {
        let mut first_error = None;
        let wanted: HashMap<usize, &DocKey> = writes.iter().map(|(i, k)| (*i, k)).collect();
        for (i, s) in staged.iter().enumerate() {
            let Some(key) = wanted.get(&i).copied().filter(|_| first_error.is_none()) else {
                let _ = files.discard(collection, &s.token).await;
                continue;
            };
            let stat = match files.commit(collection, s, key).await {
                Ok(stat) => stat,
                Err(e) => {
                    first_error = Some(files_err(e));
                    let _ = files.discard(collection, &s.token).await;
                    continue;
                }
            };
            // A document stored under another Unicode form now has its file at its key: the old one goes (unless it
            // is the same file, on a file system that ignores the normalisation form).
            let old_path = self
                .lock()
                .collections
                .get(collection)
                .and_then(|c| c.files.get(key))
                .map(|r| r.path.clone())
                .filter(|p| p != key.as_str());
            if let Some(p) = old_path {
                let removed = match files.stat(collection, &p).await {
                    Ok(Some(old)) if old != stat => files.remove(collection, &p).await,
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = removed {
                    first_error = Some(files_err(e));
                }
            }
            let mut st = self.lock();
            if let Some(c) = st.collections.get_mut(collection)
                && c.docs.get(key).is_some_and(|d| d.content_hash == s.hash)
            {
                c.files.insert(key.clone(), FileRecord { path: key.as_str().to_owned(), stat: Some(stat) });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `put_batch` in filesystem mode.
    pub(super) async fn put_batch_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        docs: Vec<NewDocument>,
    ) -> Result<Vec<PutOutcome>, RepoError> {
        self.lock().collection(collection)?;
        let mut seen = HashSet::with_capacity(docs.len());
        if let Some(dup) = docs.iter().find(|d| !seen.insert(&d.key)) {
            return Err(RepoError::DuplicateKey(dup.key.clone()));
        }
        let mut described = Vec::with_capacity(docs.len());
        let mut contents = Vec::with_capacity(docs.len());
        for NewDocument { key, content, metadata, tags } in docs {
            contents.push((key.clone(), content_stream(content)));
            described.push((key, metadata, tags));
        }
        let staged = Self::stage_all(files, collection, contents).await?;

        let _writer = self.writer.lock().await;
        let now = self.clock.now();
        let applied = {
            let mut st = self.lock();
            match st.collections.get_mut(collection) {
                None => Err(RepoError::CollectionNotFound(collection.clone())),
                Some(coll) => {
                    let created: Vec<&DocKey> = described.iter().map(|(k, ..)| k).filter(|k| !coll.docs.contains_key(*k)).collect();
                    let all: BTreeSet<&str> = coll.docs.keys().chain(described.iter().map(|(k, ..)| k)).map(DocKey::as_str).collect();
                    match tree_conflict(&all, &created) {
                        Some(e) => Err(e),
                        None => {
                            let mut outcomes = Vec::with_capacity(described.len());
                            let mut writes = Vec::new();
                            for (i, ((key, metadata, tags), s)) in described.into_iter().zip(&staged).enumerate() {
                                let (status, previous) = match coll.docs.get_mut(&key) {
                                    Some(d) if d.content_hash == s.hash && d.metadata == metadata && d.tags == tags => {
                                        (PutStatus::Unchanged, Some(d.content_hash))
                                    }
                                    Some(d) => {
                                        let previous = d.content_hash;
                                        d.content_hash = s.hash;
                                        d.size = s.size;
                                        d.metadata = metadata;
                                        d.tags = tags;
                                        d.version += 1;
                                        d.updated_at = now;
                                        (PutStatus::Updated, Some(previous))
                                    }
                                    None => {
                                        let meta = DocumentMeta {
                                            collection: collection.clone(),
                                            key: key.clone(),
                                            content_hash: s.hash,
                                            size: s.size,
                                            metadata,
                                            tags,
                                            version: 1,
                                            created_at: now,
                                            updated_at: now,
                                        };
                                        coll.docs.insert(key.clone(), meta);
                                        (PutStatus::Created, None)
                                    }
                                };
                                if status != PutStatus::Unchanged {
                                    coll.mark_pending(&key, now);
                                    if previous != Some(s.hash) {
                                        writes.push((i, key.clone()));
                                    }
                                }
                                let version = coll.docs.get(&key).map_or(1, |d| d.version);
                                outcomes.push(PutOutcome { key, status, version, content_hash: s.hash, size: s.size });
                            }
                            Ok((outcomes, writes))
                        }
                    }
                }
            }
        };
        let (outcomes, writes) = match applied {
            Ok(done) => done,
            Err(e) => {
                Self::discard_all(files, collection, &staged).await;
                return Err(e);
            }
        };
        if outcomes.iter().any(|o| o.status != PutStatus::Unchanged) {
            self.enqueue_sync(collection);
        }
        self.commit_all(files, collection, &staged, &writes).await?;
        Ok(outcomes)
    }

    /// `restore_documents` in filesystem mode: verbatim rows, and every file written (a restore also brings lost
    /// files back).
    pub(super) async fn restore_documents_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        docs: Vec<(DocumentMeta, Bytes)>,
    ) -> Result<(), RepoError> {
        let mut seen = HashSet::with_capacity(docs.len());
        for (d, bytes) in &docs {
            if !seen.insert(d.key.clone()) {
                return Err(RepoError::DuplicateKey(d.key.clone()));
            }
            if bytes.len() as u64 != d.size || ContentHash::of(bytes) != d.content_hash {
                return Err(restore_mismatch(&d.key));
            }
        }
        self.lock().collection(collection)?;
        let mut metas = Vec::with_capacity(docs.len());
        let mut contents = Vec::with_capacity(docs.len());
        for (d, bytes) in docs {
            contents.push((d.key.clone(), stream::iter([Ok(bytes)]).boxed()));
            metas.push(d);
        }
        let staged = Self::stage_all(files, collection, contents).await?;

        let _writer = self.writer.lock().await;
        let now = self.clock.now();
        let applied = {
            let mut st = self.lock();
            match st.collections.get_mut(collection) {
                None => Err(RepoError::CollectionNotFound(collection.clone())),
                Some(coll) => {
                    let created: Vec<&DocKey> = metas.iter().map(|d| &d.key).filter(|k| !coll.docs.contains_key(*k)).collect();
                    let all: BTreeSet<&str> = coll.docs.keys().chain(metas.iter().map(|d| &d.key)).map(DocKey::as_str).collect();
                    match tree_conflict(&all, &created) {
                        Some(e) => Err(e),
                        None => {
                            let mut writes = Vec::with_capacity(metas.len());
                            for (i, mut d) in metas.into_iter().enumerate() {
                                d.collection = collection.clone();
                                coll.mark_pending(&d.key, now);
                                writes.push((i, d.key.clone()));
                                coll.docs.insert(d.key.clone(), d);
                            }
                            Ok(writes)
                        }
                    }
                }
            }
        };
        let writes = match applied {
            Ok(w) => w,
            Err(e) => {
                Self::discard_all(files, collection, &staged).await;
                return Err(e);
            }
        };
        self.enqueue_sync(collection);
        self.commit_all(files, collection, &staged, &writes).await
    }

    /// `delete_documents` in filesystem mode: the metadata as in sqlite mode, then the files.
    pub(super) async fn delete_documents_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        keys: Vec<DocKey>,
    ) -> Result<Vec<DocKey>, RepoError> {
        let _writer = self.writer.lock().await;
        let now = self.clock.now();
        let (deleted, paths, pending_deletions) = {
            let mut st = self.lock();
            let coll = st.collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
            let mut deleted = Vec::new();
            let mut paths = Vec::new();
            let mut pending_deletions = false;
            for key in keys {
                if coll.docs.remove(&key).is_some() {
                    paths.push(coll.files.remove(&key).map_or_else(|| key.as_str().to_owned(), |r| r.path));
                    pending_deletions |= coll.forget(&key, now);
                    deleted.push(key);
                }
            }
            (deleted, paths, pending_deletions)
        };
        if pending_deletions {
            self.enqueue_sync(collection);
        }
        let mut first_error = None;
        for p in paths {
            if let Err(e) = files.remove(collection, &p).await {
                first_error.get_or_insert(files_err(e));
            }
        }
        first_error.map_or(Ok(deleted), Err)
    }

    /// `delete_collection` in filesystem mode: the metadata, then every file, then the folder when it is empty.
    pub(super) async fn delete_collection_files(&self, files: &dyn DocumentFiles, name: &CollectionName) -> Result<u64, RepoError> {
        let _writer = self.writer.lock().await;
        let removed = self.lock().collections.remove(name).ok_or_else(|| RepoError::CollectionNotFound(name.clone()))?;
        for key in removed.docs.keys() {
            let path = removed.files.get(key).map_or(key.as_str(), |r| r.path.as_str());
            files.remove(name, path).await.map_err(files_err)?;
        }
        files.remove_root(name).await.map_err(files_err)?;
        Ok(removed.docs.len() as u64)
    }

    /// The file of a document: its recorded path, else its key.
    fn path_of(&self, collection: &CollectionName, key: &DocKey) -> Result<(DocumentMeta, String), RepoError> {
        let st = self.lock();
        let meta = st.document(collection, key)?.clone();
        let path = st.collections[collection].files.get(key).map_or_else(|| key.as_str().to_owned(), |r| r.path.clone());
        Ok((meta, path))
    }

    /// `contents_at_rest` in filesystem mode: each document's file hashed (`None` when it or the document is missing).
    pub(super) async fn contents_at_rest_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        keys: &[DocKey],
    ) -> Result<Vec<Option<(ContentHash, u64)>>, RepoError> {
        self.lock().collection(collection)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let path = match self.path_of(collection, key) {
                Ok((_, path)) => path,
                Err(RepoError::DocumentNotFound { .. }) => {
                    out.push(None);
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.push(match files.hash(collection, &path).await {
                Ok((_, hash, n)) => Some((hash, n)),
                Err(FilesError::NotFound { .. }) => None,
                Err(e) => return Err(files_err(e)),
            });
        }
        Ok(out)
    }

    /// `read_content` in filesystem mode: the document's file, checked against the recorded hash as it streams.
    pub(super) async fn read_content_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        key: &DocKey,
    ) -> Result<(DocumentMeta, ContentStream), RepoError> {
        let (meta, path) = self.path_of(collection, key)?;
        let stream = match files.open(collection, &path).await {
            Ok((_, s)) => s,
            Err(FilesError::NotFound { .. }) => {
                return Err(RepoError::ContentRead {
                    key: key.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("its file {}/{path} is missing", files.location(collection)),
                    ),
                });
            }
            Err(e) => return Err(files_err(e)),
        };
        let checked = checked_content(stream, key.clone(), meta.content_hash, meta.size);
        Ok((meta, checked))
    }

    /// `verify` in filesystem mode: every document's file is hashed, one `Checked` event per sound document.
    pub(super) fn verify_files(&self, files: Arc<dyn DocumentFiles>, scope: Option<CollectionName>) -> Result<VerifyStream, RepoError> {
        type Work = (CollectionName, DocKey, String, ContentHash, u64);
        let work: Vec<Work> = {
            let st = self.lock();
            let names: Vec<CollectionName> = match &scope {
                Some(n) => {
                    st.collection(n)?;
                    vec![n.clone()]
                }
                None => st.collections.keys().cloned().collect(),
            };
            names
                .into_iter()
                .flat_map(|n| {
                    let c = &st.collections[&n];
                    c.docs
                        .values()
                        .map(|d| {
                            let path = c.files.get(&d.key).map_or_else(|| d.key.as_str().to_owned(), |r| r.path.clone());
                            (n.clone(), d.key.clone(), path, d.content_hash, d.size)
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let events = stream::iter(work).then(move |(collection, key, path, expected, size)| {
            let files = files.clone();
            async move {
                let verdict = match files.hash(&collection, &path).await {
                    Ok((_, hash, n)) if hash == expected && n == size => return Ok(VerifyEvent::Checked { documents: 1, bytes: n }),
                    Ok((_, hash, _)) => (Some(hash), "the file was changed outside colstore since the last reconcile".to_owned()),
                    Err(FilesError::NotFound { .. }) => (None, "the file is missing".to_owned()),
                    Err(e) => (None, format!("the file cannot be read: {e}")),
                };
                let (actual, problem) = verdict;
                Ok(VerifyEvent::Corrupt(CorruptDocument { collection, key, expected, actual, problem }))
            }
        });
        Ok(events.boxed())
    }

    /// `snapshot` in filesystem mode: a copy of the metadata and of what the documents' files hold, taken while no
    /// writer runs. Content whose file no longer matches its record is left out (`content` then fails).
    pub(super) async fn snapshot_files(&self, files: &dyn DocumentFiles) -> Result<Box<dyn StoreSnapshot>, RepoError> {
        let _writer = self.writer.lock().await;
        let (mut snap, work) = {
            let st = self.lock();
            let work: Vec<(CollectionName, String, ContentHash)> = st
                .collections
                .iter()
                .flat_map(|(n, c)| {
                    c.docs.values().map(|d| {
                        let path = c.files.get(&d.key).map_or_else(|| d.key.as_str().to_owned(), |r| r.path.clone());
                        (n.clone(), path, d.content_hash)
                    })
                })
                .collect();
            (InMemorySnapshot::of(&st, HashMap::new()), work)
        };
        for (collection, path, hash) in work {
            if snap.blobs.contains_key(&hash) {
                continue;
            }
            let Ok((_, s)) = files.open(&collection, &path).await else { continue };
            if let Ok(bytes) = collect(s).await
                && ContentHash::of(&bytes) == hash
            {
                snap.blobs.insert(hash, bytes);
            }
        }
        Ok(Box::new(snap))
    }

    /// Damages a document's file behind the repository's back (filesystem mode's [`InMemoryRepo::corrupt`]): flips
    /// its first byte, or writes one byte to an empty file, at the document's key. The record stays.
    ///
    /// # Panics
    /// When not in filesystem mode, or the document or its file does not exist (a mistake in the test).
    pub async fn corrupt_file(&self, collection: &CollectionName, key: &DocKey) {
        let files = self.files.clone().expect("corrupt_file: the repository is not in filesystem mode");
        let (_, path) = self.path_of(collection, key).unwrap_or_else(|e| panic!("corrupt_file: {e}"));
        let (_, s) = files.open(collection, &path).await.unwrap_or_else(|e| panic!("corrupt_file: {e}"));
        let mut damaged = collect(s).await.unwrap_or_else(|e| panic!("corrupt_file: {e}")).to_vec();
        match damaged.first_mut() {
            Some(b) => *b ^= 0xff,
            None => damaged.push(0x2a),
        }
        let staged = files.stage(collection, stream::iter([Ok(Bytes::from(damaged))]).boxed()).await.expect("corrupt_file: stage");
        files.commit(collection, &staged, key).await.expect("corrupt_file: commit");
    }

    fn files_or_unsupported(&self, what: &str) -> Result<&Arc<dyn DocumentFiles>, RepoError> {
        self.files.as_ref().ok_or_else(|| RepoError::Unsupported(format!("{what} exists only in filesystem mode")))
    }
}

/// The metadata side of filesystem mode, with the SQLite adapter's semantics: `apply_changes` applies, in this
/// order, deletions (as `delete_documents`; a conflict too when the file exists again), renames (the key changes in
/// place keeping metadata, tags, version and creation time, `updated_at` is now; the old key becomes a pending
/// deletion or goes, the new key is pending), additions and modifications (as puts: version 1 with empty metadata and
/// no tags, or version + 1 keeping metadata and tags), touches (stat only). `recover` has nothing to do: the fake
/// leaves no write half-done. In sqlite mode `catalog` and `apply_changes` are `Unsupported`.
#[async_trait]
impl FileCatalog for InMemoryRepo {
    async fn catalog(&self, collection: &CollectionName) -> Result<Vec<CatalogEntry>, RepoError> {
        self.files_or_unsupported("the file catalog")?;
        let st = self.lock();
        let coll = st.collection(collection)?;
        Ok(coll
            .docs
            .values()
            .map(|d| {
                let record = coll.files.get(&d.key);
                CatalogEntry {
                    key: d.key.clone(),
                    path: record.map_or_else(|| d.key.as_str().to_owned(), |r| r.path.clone()),
                    content_hash: d.content_hash,
                    size: d.size,
                    stat: record.and_then(|r| r.stat),
                }
            })
            .collect())
    }

    async fn apply_changes(&self, collection: &CollectionName, changes: Vec<FileChange>) -> Result<ApplyReport, RepoError> {
        let files = self.files_or_unsupported("reconciliation")?.clone();
        let _writer = self.writer.lock().await;
        // A deletion applies only while the file is still gone (a write may have put it back since the scan).
        let mut gone: HashSet<usize> = HashSet::new();
        for (i, ch) in changes.iter().enumerate() {
            if let FileChange::Deleted { key, .. } = ch {
                let path = {
                    let st = self.lock();
                    let coll = st.collection(collection)?;
                    coll.files.get(key).map_or_else(|| key.as_str().to_owned(), |r| r.path.clone())
                };
                if matches!(
                    files.stat(collection, &path).await,
                    Ok(None) | Err(FilesError::RootMissing { .. } | FilesError::NotFound { .. })
                ) {
                    gone.insert(i);
                }
            }
        }
        let now = self.clock.now();
        let mut report = ApplyReport::default();
        let mut pending = false;
        {
            let mut st = self.lock();
            let coll = st.collections.get_mut(collection).ok_or_else(|| RepoError::CollectionNotFound(collection.clone()))?;
            let on_record = |docs: &BTreeMap<DocKey, DocumentMeta>, key: &DocKey, expected: &ContentHash| {
                docs.get(key).is_some_and(|d| d.content_hash == *expected)
            };
            // 1. Deletions.
            for (i, ch) in changes.iter().enumerate() {
                if let FileChange::Deleted { key, expected } = ch {
                    if on_record(&coll.docs, key, expected) && gone.contains(&i) {
                        coll.docs.remove(key);
                        coll.files.remove(key);
                        pending |= coll.forget(key, now);
                        report.applied += 1;
                    } else {
                        report.conflicts.push(key.clone());
                    }
                }
            }
            // 2. Renames.
            for ch in &changes {
                if let FileChange::Renamed { from, to, path, expected, stat } = ch {
                    if !on_record(&coll.docs, from, expected) || coll.docs.contains_key(to) {
                        report.conflicts.push(to.clone());
                        continue;
                    }
                    let mut d = coll.docs.remove(from).expect("on record");
                    d.key = to.clone();
                    d.updated_at = now;
                    coll.docs.insert(to.clone(), d);
                    coll.files.remove(from);
                    coll.files.insert(to.clone(), FileRecord { path: path.clone(), stat: Some(*stat) });
                    coll.forget(from, now);
                    coll.mark_pending(to, now);
                    pending = true;
                    report.applied += 1;
                }
            }
            // 3. Additions and modifications, as puts.
            for ch in &changes {
                match ch {
                    FileChange::Added { key, path, hash, size, stat } => {
                        if coll.docs.contains_key(key) {
                            report.conflicts.push(key.clone());
                            continue;
                        }
                        let meta = DocumentMeta {
                            collection: collection.clone(),
                            key: key.clone(),
                            content_hash: *hash,
                            size: *size,
                            metadata: Metadata::default(),
                            tags: Tags::default(),
                            version: 1,
                            created_at: now,
                            updated_at: now,
                        };
                        coll.docs.insert(key.clone(), meta);
                        coll.files.insert(key.clone(), FileRecord { path: path.clone(), stat: Some(*stat) });
                        coll.mark_pending(key, now);
                        pending = true;
                        report.applied += 1;
                    }
                    FileChange::Modified { key, path, expected, hash, size, stat } => {
                        if !on_record(&coll.docs, key, expected) {
                            report.conflicts.push(key.clone());
                            continue;
                        }
                        let d = coll.docs.get_mut(key).expect("on record");
                        if d.content_hash != *hash || d.size != *size {
                            d.content_hash = *hash;
                            d.size = *size;
                            d.version += 1;
                            d.updated_at = now;
                            coll.mark_pending(key, now);
                            pending = true;
                        }
                        coll.files.insert(key.clone(), FileRecord { path: path.clone(), stat: Some(*stat) });
                        report.applied += 1;
                    }
                    _ => {}
                }
            }
            // 4. Touches.
            for ch in &changes {
                if let FileChange::Touched { key, path, expected, stat } = ch {
                    if on_record(&coll.docs, key, expected) {
                        coll.files.insert(key.clone(), FileRecord { path: path.clone(), stat: Some(*stat) });
                        report.applied += 1;
                    } else {
                        report.conflicts.push(key.clone());
                    }
                }
            }
        }
        if pending {
            self.enqueue_sync(collection);
        }
        Ok(report)
    }

    async fn recover(&self) -> Result<u64, RepoError> {
        Ok(0)
    }
}
