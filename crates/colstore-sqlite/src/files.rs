//! Filesystem mode: the documents' bytes are plain files of a [`DocumentFiles`]; this module owns the crash-safe
//! protocol that keeps them in step with the metadata, which the rest of the crate writes exactly as in sqlite mode.
//!
//! # The write protocol
//!
//! 1. **Stage**: every new content is written to a temporary file in the collection's folder and fsynced
//!    ([`DocumentFiles::stage`]), before any transaction; that is also where its hash comes from. Nothing visible
//!    changes. Any failure discards what was staged and writes nothing.
//! 2. **Record**: one `BEGIN IMMEDIATE` transaction writes the documents, the ledger and the sync job as in sqlite mode
//!    (no blobs), plus one intent per file to write (`file_writes`: 'put' with the staged file's token, or 'remove'
//!    with the hash being removed). A newer intent for a key replaces an older one. Commit: the write is acknowledged
//!    and durable (the bytes are in the fsynced staged file).
//! 3. **Finish**: in another write transaction, each intent still on record is carried out (`commit` renames the
//!    staged file over the key's path and fsyncs the folder; `remove` removes the file), the file's stat goes to
//!    `file_state`, and the intent is deleted. Holding the write lock while renaming is what orders the files like the
//!    transactions: a writer whose intent was replaced by a later one finds it gone and discards its staged file
//!    instead of renaming it over the newer content.
//!
//! A crash before 2 leaves staged files nobody names: a recovery discards them once they are old enough (see
//! [`LEFTOVER_AGE`]). A crash between 2 and 3 leaves intents: readers read the staged file meanwhile, and a recovery
//! ([`SqliteRepo::finish_intents`], run when the repository opens and by `FileCatalog::recover`) carries them out;
//! `commit` and `remove` are idempotent, so a crash during 3 is the same case. Each document is therefore always
//! entirely old or entirely new, and after a recovery every file holds its recorded content.
//!
//! # Snapshots
//!
//! A snapshot's rows are one moment, but files are replaced in place. While snapshots of this repository are open,
//! step 3 first copies the file it is about to replace or remove to a staged file that the open snapshots keep (see
//! [`Displaced`]) and discard when they are dropped, so a backup running in this process (the server) reads the
//! content of its moment. Writes by other processes are not seen; a snapshot then reads the file as it is now, checks
//! the hash, and fails clearly when the content is gone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use colstore_domain::ports::{
    CorruptDocument, DocumentFiles, FileStat, FilesError, ReadDocument, RepoError, StagedFile, VerifyEvent, collect_stream,
};
use colstore_domain::{
    CollectionName, Content, ContentHash, ContentStream, DocKey, DocumentMeta, NewDocument, PutOutcome, PutStatus, checked_content,
};
use futures::StreamExt;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use crate::repo::{
    DOC_COLUMNS, DocWrite, KEYS_PER_READ, backend, collection_id, delete_rows, doc_from_row, hash_from, keys_json, write_documents,
};
use crate::snapshot::{restore_mismatch, restore_rows};
use crate::{SqliteRepo, map_err};

/// Staged files older than this, named by no intent and not written by this process, are leftovers of a crash and
/// are discarded by `FileCatalog::recover`. Younger ones may belong to a live writer in another process that has
/// staged its batch and not yet committed its transaction: a batch stages its files one after the other, and one
/// large streamed content can take many minutes, so the margin is generous (leftovers cost only disk space; scans
/// never see them).
pub(crate) const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Contents staged at the same time by one batch.
const STAGE_CONCURRENCY: usize = 4;

/// Files hashed at the same time by `verify`.
const VERIFY_CONCURRENCY: usize = 4;

/// Intents carried out per transaction (the write lock is held while their files are renamed or removed).
const INTENTS_PER_TRANSACTION: usize = 256;

/// Keys per multi-row statement.
const KEYS_PER_STATEMENT: usize = 200;

/// Documents per page read by `verify`.
const VERIFY_PAGE: i64 = 1000;

/// The `backend` of errors that come from the files.
const FILES_BACKEND: &str = "files";

/// Maps a [`FilesError`] to the repository's error.
pub(crate) fn files_err(e: FilesError) -> RepoError {
    match e {
        FilesError::ReadOnly { path, source } => RepoError::ReadOnly(format!("{path} cannot be written: {source}")),
        other => RepoError::Backend { backend: FILES_BACKEND, source: Box::new(other) },
    }
}

/// A collection name from the database.
fn collection_name(s: &str) -> Result<CollectionName, RepoError> {
    CollectionName::parse(s).map_err(|e| backend(format!("bad collection name in database: {e}")))
}

/// A key from the database.
fn doc_key(s: &str) -> Result<DocKey, RepoError> {
    DocKey::parse(s).map_err(|e| backend(format!("bad key in database: {e}")))
}

fn content_stream(content: Content) -> ContentStream {
    match content {
        Content::Bytes(b) => futures::stream::iter([Ok(b)]).boxed(),
        Content::Stream(s) => s,
    }
}

fn bytes_stream(b: Bytes) -> ContentStream {
    futures::stream::iter([Ok(b)]).boxed()
}

/// Staged files of writes in progress in this process (collection, token). A recovery never discards them.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashSet<(String, String)>>>);

impl InFlight {
    fn contains(&self, collection: &str, token: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains(&(collection.to_owned(), token.to_owned()))
    }
}

/// Staged files of one batch: registered in [`InFlight`] while the batch runs, unregistered when dropped.
/// Where a put's content is: staged (its index in the batch), or in memory and unchanged when last looked at.
enum Slot {
    Staged(usize),
    Known { hash: ContentHash, size: u64, bytes: Bytes },
}

struct StagedBatch {
    registry: InFlight,
    collection: CollectionName,
    files: Vec<StagedFile>,
}

impl StagedBatch {
    fn push(&mut self, staged: StagedFile) {
        self.registry.0.lock().unwrap_or_else(PoisonError::into_inner).insert((self.collection.to_string(), staged.token.clone()));
        self.files.push(staged);
    }

    /// Discards the staged files except `keep` (tokens still named by an intent). Failures only leave leftovers for a
    /// later recovery, so they are logged, not returned.
    async fn discard_except(&self, files: &dyn DocumentFiles, keep: &HashSet<String>) {
        for s in self.files.iter().filter(|s| !keep.contains(&s.token)) {
            if let Err(e) = files.discard(&self.collection, &s.token).await {
                tracing::warn!(collection = %self.collection, token = %s.token, error = %e, "could not discard a staged file");
            }
        }
    }
}

impl Drop for StagedBatch {
    fn drop(&mut self) {
        let mut set = self.registry.0.lock().unwrap_or_else(PoisonError::into_inner);
        for s in &self.files {
            set.remove(&(self.collection.to_string(), s.token.clone()));
        }
    }
}

/// The staged copies of contents that writes displaced while one snapshot was open, by hash.
#[derive(Default)]
pub(crate) struct Displaced(Mutex<HashMap<ContentHash, Arc<Preserved>>>);

impl Displaced {
    /// The staged copy of `hash`, if a write displaced it.
    pub(crate) fn get(&self, hash: &ContentHash) -> Option<Arc<Preserved>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(hash).cloned()
    }
}

/// The open snapshots of a repository (weakly held: a dropped snapshot stops collecting).
#[derive(Clone, Default)]
pub(crate) struct OpenSnapshots(Arc<Mutex<Vec<std::sync::Weak<Displaced>>>>);

impl OpenSnapshots {
    /// Registers a new snapshot, before its transaction starts.
    pub(crate) fn register(&self) -> Arc<Displaced> {
        let d = Arc::new(Displaced::default());
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&d));
        d
    }

    fn live(&self) -> Vec<Arc<Displaced>> {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(std::sync::Weak::upgrade).collect()
    }
}

/// A staged copy of a displaced content, discarded when the last snapshot holding it is dropped.
pub(crate) struct Preserved {
    files: Arc<dyn DocumentFiles>,
    collection: CollectionName,
    token: String,
    hash: ContentHash,
    registry: InFlight,
}

impl Preserved {
    /// The copy as a stream, once its hash is checked; `None` when it cannot be read or is not the content.
    pub(crate) async fn open(&self) -> Option<ContentStream> {
        let (_, hash, _) = self.files.hash(&self.collection, &self.token).await.ok()?;
        if hash != self.hash {
            return None;
        }
        self.files.open(&self.collection, &self.token).await.ok().map(|(_, s)| s)
    }

    /// Reads the copy whole; `None` when it cannot be read or is not the content.
    pub(crate) async fn read(&self) -> Option<Bytes> {
        let (_, stream) = self.files.open(&self.collection, &self.token).await.ok()?;
        let bytes = collect(stream).await.ok()?;
        (ContentHash::of(&bytes) == self.hash).then_some(bytes)
    }
}

impl Drop for Preserved {
    fn drop(&mut self) {
        self.registry.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&(self.collection.to_string(), self.token.clone()));
        // Without a runtime the copy stays as a leftover for a later recovery.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (files, collection, token) = (Arc::clone(&self.files), self.collection.clone(), std::mem::take(&mut self.token));
            rt.spawn(async move {
                if let Err(e) = files.discard(&collection, &token).await {
                    tracing::debug!(collection = %collection, token = %token, error = %e, "could not discard a snapshot's copy");
                }
            });
        }
    }
}

async fn collect(mut stream: ContentStream) -> Result<Bytes, std::io::Error> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

/// Which intents to carry out.
pub(crate) enum Which {
    /// These (a writer's own; the ones a later write replaced are gone and skipped).
    Ids(Vec<i64>),
    /// Every intent of one collection (after deleting it).
    Collection(String),
    /// Every intent (recovery).
    All,
}

/// A file write to record in `file_writes`.
struct Intent<'a> {
    key: &'a str,
    op: &'static str,
    token: Option<&'a str>,
    path: Option<&'a str>,
    hash: ContentHash,
    size: u64,
}

/// Records intents (replacing older ones for the same keys) inside the caller's transaction; returns their ids.
async fn record_intents(
    conn: &mut SqliteConnection,
    collection: &CollectionName,
    intents: &[Intent<'_>],
    now: i64,
) -> Result<Vec<i64>, RepoError> {
    for chunk in intents.chunks(KEYS_PER_STATEMENT) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut q = sqlx::query(AssertSqlSafe(format!("DELETE FROM file_writes WHERE collection = ? AND key IN ({marks})")))
            .bind(collection.as_str().to_owned());
        for i in chunk {
            q = q.bind(i.key.to_owned());
        }
        q.execute(&mut *conn).await.map_err(map_err)?;
    }
    let mut ids = Vec::with_capacity(intents.len());
    for chunk in intents.chunks(KEYS_PER_STATEMENT / 2) {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(",");
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
            "INSERT INTO file_writes (collection, key, op, token, path, hash, size, created_at) VALUES {values} RETURNING id"
        )));
        for i in chunk {
            q = q
                .bind(collection.as_str().to_owned())
                .bind(i.key.to_owned())
                .bind(i.op)
                .bind(i.token.map(str::to_owned))
                .bind(i.path.map(str::to_owned))
                .bind(i.hash.as_bytes().to_vec())
                .bind(i64::try_from(i.size).unwrap_or(i64::MAX))
                .bind(now);
        }
        ids.extend(q.fetch_all(&mut *conn).await.map_err(map_err)?);
    }
    Ok(ids)
}

/// Records a 'remove' intent for every document of a collection about to be deleted (replacing pending intents of
/// the collection), inside the caller's transaction.
pub(crate) async fn intend_collection_removal(
    conn: &mut SqliteConnection,
    cid: i64,
    name: &CollectionName,
    now: i64,
) -> Result<(), RepoError> {
    sqlx::query("DELETE FROM file_writes WHERE collection = ?")
        .bind(name.as_str().to_owned())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query(
        "INSERT INTO file_writes (collection, key, op, token, path, hash, size, created_at) \
         SELECT ?, d.key, 'remove', NULL, fs.path, d.hash, d.size, ? FROM documents d \
         LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key WHERE d.collection_id = ? ORDER BY d.key",
    )
    .bind(name.as_str().to_owned())
    .bind(now)
    .bind(cid)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// The paths on disk of documents whose file is not at their key (another Unicode form), by key.
async fn odd_paths(conn: &mut SqliteConnection, cid: i64, keys: &[&str]) -> Result<HashMap<String, String>, RepoError> {
    let mut out = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(format!(
            "SELECT key, path FROM file_state WHERE collection_id = ? AND path IS NOT NULL AND key IN ({marks})"
        )))
        .bind(cid);
        for k in chunk {
            q = q.bind((*k).to_owned());
        }
        out.extend(q.fetch_all(&mut *conn).await.map_err(map_err)?);
    }
    Ok(out)
}

/// Refuses new keys that cannot be files next to the collection's other documents: a key that is a folder of another
/// key (`a` and `a/b.md`), either way. Runs after the new rows are written in the caller's transaction, so it sees
/// the batch itself too.
pub(crate) async fn check_tree(conn: &mut SqliteConnection, cid: i64, new_keys: &[&DocKey]) -> Result<(), RepoError> {
    let conflict = |key: &str, other: &str| {
        RepoError::Unsupported(format!(
            "\"{key}\" cannot be stored as a file next to \"{other}\": in filesystem mode one path cannot be both a file and a folder"
        ))
    };
    // A folder of a new key is a document.
    let mut folders: Vec<(&str, &str)> = Vec::new();
    for k in new_keys {
        let k = k.as_str();
        folders.extend(k.match_indices('/').map(|(i, _)| (&k[..i], k)));
    }
    for chunk in folders.chunks(KEYS_PER_STATEMENT) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
            "SELECT key FROM documents WHERE collection_id = ? AND key IN ({marks}) LIMIT 1"
        )))
        .bind(cid);
        for (folder, _) in chunk {
            q = q.bind((*folder).to_owned());
        }
        if let Some(found) = q.fetch_optional(&mut *conn).await.map_err(map_err)? {
            let key = chunk.iter().find(|(f, _)| *f == found).map_or(found.as_str(), |(_, k)| k);
            return Err(conflict(key, &found));
        }
    }
    // A new key is a folder of a document.
    for chunk in new_keys.chunks(KEYS_PER_STATEMENT) {
        let values = vec!["(?)"; chunk.len()].join(",");
        let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(format!(
            "SELECT k, below FROM (WITH n(k) AS (VALUES {values}) SELECT n.k AS k, \
             (SELECT d.key FROM documents d WHERE d.collection_id = ? AND d.key > n.k || '/' AND d.key < n.k || '0' LIMIT 1) AS below FROM n) \
             WHERE below IS NOT NULL LIMIT 1"
        )));
        for k in chunk {
            q = q.bind(k.as_str().to_owned());
        }
        if let Some((key, below)) = q.bind(cid).fetch_optional(&mut *conn).await.map_err(map_err)? {
            return Err(conflict(&key, &below));
        }
    }
    Ok(())
}

/// Where a document's bytes are: the staged file of an unfinished write, else its file.
struct FileRef {
    collection: CollectionName,
    key: DocKey,
    path: String,
    token: Option<String>,
}

impl FileRef {
    /// The file of document `key` of `collection`, from a row with the columns `file_path` and `token` (the staged
    /// file of an unfinished write, if any).
    fn from_row(collection: CollectionName, key: DocKey, row: &sqlx::sqlite::SqliteRow) -> Result<Self, RepoError> {
        Ok(Self { collection, key, path: row.try_get("file_path").map_err(map_err)?, token: row.try_get("token").map_err(map_err)? })
    }

    fn display(&self, files: &dyn DocumentFiles) -> String {
        format!("{}/{}", files.location(&self.collection), self.path)
    }

    /// Opens the bytes, preferring the staged file of an unfinished write (it may have been renamed into place
    /// meanwhile: then the file is the right one).
    async fn open(&self, files: &dyn DocumentFiles) -> Result<ContentStream, RepoError> {
        if let Some(token) = &self.token
            && let Ok((_, stream)) = files.open(&self.collection, token).await
        {
            return Ok(stream);
        }
        match files.open(&self.collection, &self.path).await {
            Ok((_, stream)) => Ok(stream),
            Err(FilesError::NotFound { .. }) => Err(RepoError::ContentRead {
                key: self.key.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("its file {} is missing", self.display(files))),
            }),
            Err(e) => Err(files_err(e)),
        }
    }

    /// Opens the staged file of an unfinished write or else the file, whichever hashes to `hash` now (read twice:
    /// hashed, then opened as a stream).
    async fn open_holding(&self, files: &dyn DocumentFiles, hash: &ContentHash) -> Option<ContentStream> {
        for name in self.token.iter().chain([&self.path]) {
            if let Ok((_, h, _)) = files.hash(&self.collection, name).await
                && h == *hash
                && let Ok((_, stream)) = files.open(&self.collection, name).await
            {
                return Some(stream);
            }
        }
        None
    }

    /// Re-hashes the bytes: the number of bytes when they are the recorded content, else the verdict.
    async fn check(&self, files: &dyn DocumentFiles, expected: ContentHash, size: u64) -> Result<u64, (Option<ContentHash>, String)> {
        if let Some(token) = &self.token
            && let Ok((_, hash, n)) = files.hash(&self.collection, token).await
            && hash == expected
        {
            return Ok(n);
        }
        match files.hash(&self.collection, &self.path).await {
            Ok((_, hash, n)) if hash == expected && n == size => Ok(n),
            Ok((_, hash, _)) if self.token.is_some() => {
                Err((Some(hash), "an interrupted write was not finished (open the store again to finish it)".into()))
            }
            Ok((_, hash, _)) => Err((Some(hash), "the file was changed outside colstore since the last reconcile".into())),
            Err(FilesError::NotFound { .. }) => Err((None, "the file is missing".into())),
            Err(e) => Err((None, format!("the file cannot be read: {e}"))),
        }
    }
}

/// A row of `file_writes`.
struct IntentRow {
    id: i64,
    collection: String,
    key: String,
    op: String,
    token: Option<String>,
    path: Option<String>,
    hash: ContentHash,
    size: u64,
}

/// What carrying out intents did.
#[derive(Default)]
struct Finished {
    /// Files put in place or removed.
    done: u64,
    /// The first failure.
    error: Option<RepoError>,
}

/// The file-state change that follows a carried-out intent.
enum StateChange {
    /// The document's file is at its key with this stat.
    Set { collection: String, key: String, hash: ContentHash, stat: FileStat },
    /// Nothing is known about the file any more (reconcile hashes it).
    Forget { collection: String, key: String },
}

/// `read_documents` in filesystem mode: the descriptions and file names of the keys ?3 (a JSON array) of collection
/// ?2 (named ?1 in `file_writes`).
pub(crate) fn read_documents_files_sql() -> String {
    format!(
        "SELECT {DOC_COLUMNS}, coalesce(fs.path, d.key) AS file_path, \
         (SELECT w.token FROM file_writes w WHERE w.collection = ? AND w.key = d.key AND w.op = 'put' ORDER BY w.id DESC LIMIT 1) AS token \
         FROM documents d LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
         WHERE d.collection_id = ? AND d.key IN (SELECT value FROM json_each(?))"
    )
}

impl SqliteRepo {
    /// The files of this filesystem-mode repository.
    pub(crate) fn files_or_unsupported(&self, what: &str) -> Result<&Arc<dyn DocumentFiles>, RepoError> {
        self.files.as_ref().ok_or_else(|| RepoError::Unsupported(format!("{what} exists only in filesystem storage mode")))
    }

    /// Stages every content, a few at a time, registering each staged file; on the first failure everything staged
    /// is discarded and the failure returned (a failing stream names its document).
    async fn stage_all(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        contents: Vec<(DocKey, ContentStream)>,
    ) -> Result<StagedBatch, RepoError> {
        let mut batch =
            StagedBatch { registry: self.in_flight.clone(), collection: collection.clone(), files: Vec::with_capacity(contents.len()) };
        // A plain loop over `FuturesOrdered` rather than `buffered` on a closure: futures made in closures that borrow
        // trip the compiler's `Send` inference for the caller's future.
        let mut contents = contents.into_iter();
        let mut running = futures::stream::FuturesOrdered::new();
        let mut first_error = None;
        // Every stage runs to its end even after a failure, so no temporary file is left half-written by a dropped future.
        loop {
            while running.len() < STAGE_CONCURRENCY {
                let Some((key, stream)) = contents.next() else { break };
                running.push_back(async move { (key, files.stage(collection, stream).await) });
            }
            let Some((key, result)) = running.next().await else { break };
            match result {
                Ok(staged) => batch.push(staged),
                Err(FilesError::ContentRead(source)) => {
                    first_error.get_or_insert(RepoError::ContentRead { key, source });
                }
                Err(e) => {
                    first_error.get_or_insert(files_err(e));
                }
            }
        }
        if let Some(e) = first_error {
            batch.discard_except(files, &HashSet::new()).await;
            return Err(e);
        }
        Ok(batch)
    }

    /// Carries out the recorded intents and discards the batch's staged files that no intent names any more
    /// (unchanged contents, writes carried out, and writes that a later write replaced). A staged file still named by
    /// an intent (a failure) is kept for the recovery; when that cannot be told, every one is kept.
    async fn finish_batch(&self, files: &dyn DocumentFiles, batch: &StagedBatch, ids: Vec<i64>) -> Result<(), RepoError> {
        let finished = self.finish(files, Which::Ids(ids.clone()), false).await;
        let mut named = HashSet::new();
        for chunk in ids.chunks(KEYS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut q =
                sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(format!("SELECT token FROM file_writes WHERE id IN ({marks})")));
            for id in chunk {
                q = q.bind(*id);
            }
            match q.fetch_all(&self.pool).await {
                Ok(tokens) => named.extend(tokens.into_iter().flatten()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell which staged files are still needed; keeping them for the recovery");
                    return finished.error.map_or(Ok(()), Err);
                }
            }
        }
        batch.discard_except(files, &named).await;
        finished.error.map_or(Ok(()), Err)
    }

    /// `put_batch` in filesystem mode: stage, record, finish (see the module's documentation).
    pub(crate) async fn put_batch_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        docs: Vec<NewDocument>,
    ) -> Result<Vec<PutOutcome>, RepoError> {
        // Contents already in memory whose hash is the document's current one need no new file: without this a
        // repeated `col add` would write and fsync every file again only to find it unchanged. The transaction checks
        // again, and stages (late, under the write lock) any such content that changed in between.
        let in_memory: Vec<String> =
            docs.iter().filter(|d| matches!(d.content, Content::Bytes(_))).map(|d| d.key.as_str().to_owned()).collect();
        let current = self.current_hashes(collection, &in_memory).await?;
        let mut described = Vec::with_capacity(docs.len());
        let mut contents = Vec::new();
        let mut slots = Vec::with_capacity(docs.len());
        for d in docs {
            match d.content {
                Content::Bytes(b) if current.get(d.key.as_str()) == Some(&ContentHash::of(&b)) => {
                    slots.push(Slot::Known { hash: ContentHash::of(&b), size: b.len() as u64, bytes: b });
                }
                content => {
                    slots.push(Slot::Staged(contents.len()));
                    contents.push((d.key.clone(), content_stream(content)));
                }
            }
            described.push((d.key, d.metadata.to_json(), d.tags.to_json()));
        }
        let mut batch = self.stage_all(files, collection, contents).await?;
        let now = self.clock.now().as_millis();
        let mut late: Vec<StagedFile> = Vec::new();
        let recorded = async {
            let mut tx = self.begin_write().await?;
            let cid = collection_id(&mut tx, collection).await?;
            let rows: Vec<DocWrite<'_>> = described
                .iter()
                .zip(&slots)
                .map(|((key, meta_json, tags_json), slot)| {
                    let (hash, size) = match slot {
                        Slot::Staged(i) => (batch.files[*i].hash, batch.files[*i].size),
                        Slot::Known { hash, size, .. } => (*hash, *size),
                    };
                    DocWrite { key, hash, size, meta_json, tags_json }
                })
                .collect();
            let (outcomes, previous) = write_documents(&mut tx, cid, collection, &rows, now).await?;
            let created: Vec<&DocKey> = outcomes.iter().filter(|o| o.status == PutStatus::Created).map(|o| &o.key).collect();
            check_tree(&mut tx, cid, &created).await?;
            // A file is written only when the content changed; a metadata-only change keeps the file.
            let writes: Vec<usize> =
                (0..rows.len()).filter(|&i| outcomes[i].status != PutStatus::Unchanged && previous[i] != Some(rows[i].hash)).collect();
            let replaced: Vec<&str> = writes.iter().filter(|&&i| previous[i].is_some()).map(|&i| rows[i].key.as_str()).collect();
            let odd = odd_paths(&mut tx, cid, &replaced).await?;
            // A content judged unchanged before the transaction that changed meanwhile is staged now.
            let mut late_at: HashMap<usize, usize> = HashMap::new();
            for &i in &writes {
                if let Slot::Known { bytes, .. } = &slots[i] {
                    let staged = files.stage(collection, bytes_stream(bytes.clone())).await.map_err(files_err)?;
                    late_at.insert(i, late.len());
                    late.push(staged);
                }
            }
            let token_of = |i: usize| match &slots[i] {
                Slot::Staged(j) => batch.files[*j].token.as_str(),
                Slot::Known { .. } => late[late_at[&i]].token.as_str(),
            };
            let intents: Vec<Intent<'_>> = writes
                .iter()
                .map(|&i| Intent {
                    key: rows[i].key.as_str(),
                    op: "put",
                    token: Some(token_of(i)),
                    path: odd.get(rows[i].key.as_str()).map(String::as_str),
                    hash: rows[i].hash,
                    size: rows[i].size,
                })
                .collect();
            let ids = record_intents(&mut tx, collection, &intents, now).await?;
            tx.commit().await.map_err(map_err)?;
            Ok::<_, RepoError>((outcomes, ids))
        }
        .await;
        for staged in late {
            batch.push(staged);
        }
        match recorded {
            Ok((outcomes, ids)) => {
                self.finish_batch(files, &batch, ids).await?;
                Ok(outcomes)
            }
            Err(e) => {
                batch.discard_except(files, &HashSet::new()).await;
                Err(e)
            }
        }
    }

    /// The current content hashes of the documents among `keys` that exist (an empty map for a missing collection;
    /// the transaction reports that).
    async fn current_hashes(&self, collection: &CollectionName, keys: &[String]) -> Result<HashMap<String, ContentHash>, RepoError> {
        let mut out = HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let cid = match collection_id(&mut conn, collection).await {
            Ok(cid) => cid,
            Err(RepoError::CollectionNotFound(_)) => return Ok(out),
            Err(e) => return Err(e),
        };
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut q = sqlx::query_as::<_, (String, Vec<u8>)>(AssertSqlSafe(format!(
                "SELECT key, hash FROM documents WHERE collection_id = ? AND key IN ({marks})"
            )))
            .bind(cid);
            for k in chunk {
                q = q.bind(k.as_str());
            }
            for (key, hash) in q.fetch_all(&mut *conn).await.map_err(map_err)? {
                out.insert(key, hash_from(hash)?);
            }
        }
        Ok(out)
    }

    /// `contents_at_rest` in filesystem mode: what each document's file holds now. A file whose stat is the one on
    /// record (since colstore wrote or reconcile hashed it) holds the recorded content, as reconciliation trusts;
    /// any other file is hashed; a missing file is `None`. An unfinished write of colstore's own is judged by its
    /// staged file (as `read_content` reads it).
    pub(crate) async fn contents_at_rest_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        keys: &[DocKey],
    ) -> Result<Vec<Option<(ContentHash, u64)>>, RepoError> {
        struct Recorded {
            file: FileRef,
            hash: ContentHash,
            size: u64,
            stat: Option<FileStat>,
        }
        let mut recorded: HashMap<String, Recorded> = HashMap::with_capacity(keys.len());
        {
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let cid = collection_id(&mut tx, collection).await?;
            for chunk in keys.chunks(KEYS_PER_STATEMENT) {
                let marks = vec!["?"; chunk.len()].join(",");
                let mut q = sqlx::query(AssertSqlSafe(format!(
                    "SELECT d.key, d.hash, d.size, coalesce(fs.path, d.key) AS file_path, fs.size AS fs_size, fs.mtime_ns, fs.inode, \
                     (SELECT w.token FROM file_writes w WHERE w.collection = ? AND w.key = d.key AND w.op = 'put' ORDER BY w.id DESC LIMIT 1) AS token \
                     FROM documents d LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
                     WHERE d.collection_id = ? AND d.key IN ({marks})"
                )))
                .bind(collection.as_str().to_owned())
                .bind(cid);
                for k in chunk {
                    q = q.bind(k.as_str().to_owned());
                }
                for row in q.fetch_all(&mut *tx).await.map_err(map_err)? {
                    let key: String = row.try_get("key").map_err(map_err)?;
                    let stat = match (
                        row.try_get::<Option<i64>, _>("fs_size").map_err(map_err)?,
                        row.try_get::<Option<i64>, _>("mtime_ns").map_err(map_err)?,
                        row.try_get::<Option<i64>, _>("inode").map_err(map_err)?,
                    ) {
                        (Some(size), Some(mtime_ns), Some(inode)) => Some(FileStat { size: size as u64, mtime_ns, inode: inode as u64 }),
                        _ => None,
                    };
                    let file = FileRef::from_row(collection.clone(), doc_key(&key)?, &row)?;
                    let hash = hash_from(row.try_get("hash").map_err(map_err)?)?;
                    let size = row.try_get::<i64, _>("size").map_err(map_err)? as u64;
                    recorded.insert(key, Recorded { file, hash, size, stat });
                }
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(r) = recorded.get(key.as_str()) else {
                out.push(None);
                continue;
            };
            let unchanged =
                r.file.token.is_none() && r.stat.is_some() && files.stat(collection, &r.file.path).await.map_err(files_err)? == r.stat;
            if unchanged {
                out.push(Some((r.hash, r.size)));
                continue;
            }
            let staged = match &r.file.token {
                Some(token) => files.hash(collection, token).await.ok(),
                None => None,
            };
            out.push(match staged {
                Some((_, hash, n)) => Some((hash, n)),
                None => match files.hash(collection, &r.file.path).await {
                    Ok((_, hash, n)) => Some((hash, n)),
                    Err(FilesError::NotFound { .. }) => None,
                    Err(e) => return Err(files_err(e)),
                },
            });
        }
        Ok(out)
    }

    /// `restore_documents` in filesystem mode: the same protocol as a put, with verbatim rows.
    pub(crate) async fn restore_documents_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        docs: Vec<(DocumentMeta, Bytes)>,
    ) -> Result<(), RepoError> {
        self.restore_streams_files(files, collection, docs.into_iter().map(|(d, b)| (d, bytes_stream(b))).collect()).await
    }

    /// As [`restore_documents_files`](Self::restore_documents_files), each content read from a stream into its
    /// staged file (bounded memory whatever its size).
    pub(crate) async fn restore_streams_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        docs: Vec<(DocumentMeta, ContentStream)>,
    ) -> Result<(), RepoError> {
        // Missing collection first, before anything is staged.
        {
            let mut conn = self.pool.acquire().await.map_err(map_err)?;
            collection_id(&mut conn, collection).await?;
        }
        let mut metas = Vec::with_capacity(docs.len());
        let mut contents = Vec::with_capacity(docs.len());
        for (d, stream) in docs {
            contents.push((d.key.clone(), stream));
            metas.push(d);
        }
        let batch = self.stage_all(files, collection, contents).await?;
        if let Some(d) = metas.iter().zip(&batch.files).find(|(d, s)| s.hash != d.content_hash || s.size != d.size).map(|(d, _)| d) {
            batch.discard_except(files, &HashSet::new()).await;
            return Err(restore_mismatch(d));
        }
        let now = self.clock.now().as_millis();
        let recorded = async {
            let mut tx = self.begin_write().await?;
            let cid = collection_id(&mut tx, collection).await?;
            let keys: Vec<&DocKey> = metas.iter().map(|d| &d.key).collect();
            let existing = Self::existing_docs(&mut tx, cid, &keys).await?;
            let key_strs: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
            let odd = odd_paths(&mut tx, cid, &key_strs).await?;
            let refs: Vec<&DocumentMeta> = metas.iter().collect();
            restore_rows(&mut tx, cid, collection, &refs, now).await?;
            let created: Vec<&DocKey> = keys.iter().copied().filter(|k| !existing.contains_key(k.as_str())).collect();
            check_tree(&mut tx, cid, &created).await?;
            // Every file is written: a restore is also how lost files come back.
            let intents: Vec<Intent<'_>> = metas
                .iter()
                .zip(&batch.files)
                .map(|(d, s)| Intent {
                    key: d.key.as_str(),
                    op: "put",
                    token: Some(s.token.as_str()),
                    path: odd.get(d.key.as_str()).map(String::as_str),
                    hash: d.content_hash,
                    size: d.size,
                })
                .collect();
            let ids = record_intents(&mut tx, collection, &intents, now).await?;
            tx.commit().await.map_err(map_err)?;
            Ok::<_, RepoError>(ids)
        }
        .await;
        match recorded {
            Ok(ids) => self.finish_batch(files, &batch, ids).await,
            Err(e) => {
                batch.discard_except(files, &HashSet::new()).await;
                Err(e)
            }
        }
    }

    /// `delete_documents` in filesystem mode: delete the rows and record 'remove' intents in one transaction, then
    /// remove the files.
    pub(crate) async fn delete_documents_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        keys: Vec<DocKey>,
    ) -> Result<Vec<DocKey>, RepoError> {
        let now = self.clock.now().as_millis();
        let mut tx = self.begin_write().await?;
        let cid = collection_id(&mut tx, collection).await?;
        // What each file is (hash, size, path), read before the rows go.
        let mut what: HashMap<String, (ContentHash, u64, Option<String>)> = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT d.key, d.hash, d.size, fs.path FROM documents d \
                 LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
                 WHERE d.collection_id = ? AND d.key IN ({marks})"
            )))
            .bind(cid);
            for k in chunk {
                q = q.bind(k.as_str().to_owned());
            }
            for r in q.fetch_all(&mut *tx).await.map_err(map_err)? {
                let size: i64 = r.try_get("size").map_err(map_err)?;
                what.insert(
                    r.try_get("key").map_err(map_err)?,
                    (hash_from(r.try_get("hash").map_err(map_err)?)?, size as u64, r.try_get("path").map_err(map_err)?),
                );
            }
        }
        let deleted = delete_rows(&mut tx, cid, collection, keys, now).await?;
        let intents: Vec<Intent<'_>> = deleted
            .iter()
            .filter_map(|k| {
                what.get(k.as_str()).map(|(hash, size, path)| Intent {
                    key: k.as_str(),
                    op: "remove",
                    token: None,
                    path: path.as_deref(),
                    hash: *hash,
                    size: *size,
                })
            })
            .collect();
        let ids = record_intents(&mut tx, collection, &intents, now).await?;
        tx.commit().await.map_err(map_err)?;
        let finished = self.finish(files, Which::Ids(ids), false).await;
        finished.error.map_or(Ok(deleted), Err)
    }

    /// Carries out recorded file writes (see the module's documentation); returns how many files were put in place
    /// or removed. With `recovering`, a 'remove' only removes a file that still holds the deleted content and whose
    /// key has no document now (anything else is someone's new file).
    pub(crate) async fn finish_intents(&self, files: &dyn DocumentFiles, which: Which, recovering: bool) -> Result<u64, RepoError> {
        let finished = self.finish(files, which, recovering).await;
        finished.error.map_or(Ok(finished.done), Err)
    }

    async fn finish(&self, files: &dyn DocumentFiles, which: Which, recovering: bool) -> Finished {
        let mut out = Finished::default();
        if let Err(e) = self.finish_inner(files, which, recovering, &mut out).await {
            out.error.get_or_insert(e);
        }
        out
    }

    async fn finish_inner(&self, files: &dyn DocumentFiles, which: Which, recovering: bool, out: &mut Finished) -> Result<(), RepoError> {
        // Cheap when there is nothing to do: one read, no write lock.
        let any: bool = match &which {
            Which::Ids(ids) => !ids.is_empty(),
            Which::Collection(c) => sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM file_writes WHERE collection = ?)")
                .bind(c.clone())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?,
            Which::All => sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM file_writes)").fetch_one(&self.pool).await.map_err(map_err)?,
        };
        if !any {
            return Ok(());
        }
        let mut emptied: HashSet<String> = HashSet::new();
        let mut after = 0i64;
        let mut id_chunks = match &which {
            Which::Ids(ids) => ids.chunks(INTENTS_PER_TRANSACTION).map(<[i64]>::to_vec).collect::<Vec<_>>().into_iter(),
            _ => Vec::new().into_iter(),
        };
        loop {
            let ids = match &which {
                Which::Ids(_) => match id_chunks.next() {
                    Some(ids) => ids,
                    None => break,
                },
                _ => Vec::new(),
            };
            let mut tx = self.begin_write().await?;
            let select = "SELECT id, collection, key, op, token, path, hash, size FROM file_writes";
            let rows = match &which {
                Which::Ids(_) => {
                    let marks = vec!["?"; ids.len()].join(",");
                    let mut q = sqlx::query(AssertSqlSafe(format!("{select} WHERE id IN ({marks}) ORDER BY id")));
                    for id in ids {
                        q = q.bind(id);
                    }
                    q.fetch_all(&mut *tx).await
                }
                Which::Collection(c) => {
                    sqlx::query(AssertSqlSafe(format!("{select} WHERE collection = ? AND id > ? ORDER BY id LIMIT ?")))
                        .bind(c.clone())
                        .bind(after)
                        .bind(INTENTS_PER_TRANSACTION as i64)
                        .fetch_all(&mut *tx)
                        .await
                }
                Which::All => {
                    sqlx::query(AssertSqlSafe(format!("{select} WHERE id > ? ORDER BY id LIMIT ?")))
                        .bind(after)
                        .bind(INTENTS_PER_TRANSACTION as i64)
                        .fetch_all(&mut *tx)
                        .await
                }
            }
            .map_err(map_err)?;
            if rows.is_empty() && !matches!(which, Which::Ids(_)) {
                break;
            }
            let mut intents = Vec::with_capacity(rows.len());
            for r in &rows {
                intents.push(IntentRow {
                    id: r.try_get("id").map_err(map_err)?,
                    collection: r.try_get("collection").map_err(map_err)?,
                    key: r.try_get("key").map_err(map_err)?,
                    op: r.try_get("op").map_err(map_err)?,
                    token: r.try_get("token").map_err(map_err)?,
                    path: r.try_get("path").map_err(map_err)?,
                    hash: hash_from(r.try_get("hash").map_err(map_err)?)?,
                    size: r.try_get::<i64, _>("size").map_err(map_err)? as u64,
                });
            }
            after = intents.last().map_or(after, |i| i.id);
            let mut handled: Vec<i64> = Vec::with_capacity(intents.len());
            let mut states: Vec<StateChange> = Vec::new();
            for intent in intents {
                match self.carry_out(&mut tx, files, &intent, recovering).await {
                    Ok((done, state)) => {
                        handled.push(intent.id);
                        out.done += u64::from(done);
                        states.extend(state);
                        if intent.op == "remove" {
                            emptied.insert(intent.collection.clone());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(collection = %intent.collection, key = %intent.key, op = %intent.op, error = %e, "could not finish a file write");
                        out.error.get_or_insert(e);
                    }
                }
            }
            for state in states {
                apply_state(&mut tx, state).await?;
            }
            for chunk in handled.chunks(KEYS_PER_STATEMENT) {
                let marks = vec!["?"; chunk.len()].join(",");
                let mut q = sqlx::query(AssertSqlSafe(format!("DELETE FROM file_writes WHERE id IN ({marks})")));
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await.map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)?;
        }
        // A recovery also finishes deleted collections: their folders go once empty.
        if recovering {
            for name in emptied {
                let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM collections WHERE name = ?)")
                    .bind(name.clone())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                if !exists {
                    files.remove_root(&collection_name(&name)?).await.map_err(files_err)?;
                }
            }
        }
        Ok(())
    }

    /// Copies the file at `path` to a staged file that every open snapshot keeps, before a write replaces or removes
    /// it. Nothing happens when no snapshot is open. Best effort: a failure only means a snapshot cannot read that
    /// content later, which it reports.
    async fn preserve_for_snapshots(&self, collection: &CollectionName, path: &str) {
        let live = self.snapshots.live();
        if live.is_empty() {
            return;
        }
        let Some(files) = self.files.clone() else { return };
        let Ok((_, stream)) = files.open(collection, path).await else { return };
        let staged = match files.stage(collection, stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(collection = %collection, path, error = %e, "could not keep a displaced content for an open snapshot");
                return;
            }
        };
        self.in_flight.0.lock().unwrap_or_else(PoisonError::into_inner).insert((collection.to_string(), staged.token.clone()));
        let copy = Arc::new(Preserved {
            files,
            collection: collection.clone(),
            token: staged.token,
            hash: staged.hash,
            registry: self.in_flight.clone(),
        });
        for d in live {
            d.0.lock().unwrap_or_else(PoisonError::into_inner).entry(copy.hash).or_insert_with(|| Arc::clone(&copy));
        }
    }

    /// Carries out one intent, holding the write lock (`conn`'s transaction). Returns whether a file was put in place
    /// or removed, and the file-state change to record.
    async fn carry_out(
        &self,
        conn: &mut SqliteConnection,
        files: &dyn DocumentFiles,
        intent: &IntentRow,
        recovering: bool,
    ) -> Result<(bool, Option<StateChange>), RepoError> {
        let collection = collection_name(&intent.collection)?;
        match intent.op.as_str() {
            "put" => {
                let key = doc_key(&intent.key)?;
                let token =
                    intent.token.clone().ok_or_else(|| backend(format!("the put intent of {} names no staged file", intent.key)))?;
                let staged = StagedFile { token, hash: intent.hash, size: intent.size };
                self.preserve_for_snapshots(&collection, key.as_str()).await;
                match files.commit(&collection, &staged, &key).await {
                    Ok(stat) => {
                        // The document's old file under another Unicode form goes, unless it is the same file (a
                        // file system that ignores the normalisation form).
                        if let Some(old) = intent.path.as_deref().filter(|p| *p != key.as_str())
                            && let Some(old_stat) = files.stat(&collection, old).await.map_err(files_err)?
                            && old_stat != stat
                        {
                            files.remove(&collection, old).await.map_err(files_err)?;
                        }
                        let state =
                            StateChange::Set { collection: intent.collection.clone(), key: intent.key.clone(), hash: intent.hash, stat };
                        Ok((true, Some(state)))
                    }
                    // The staged file is gone and the target does not hold its content: nothing can finish this write
                    // any more. What is on disk is left for reconcile, which hashes it (the stat is forgotten).
                    Err(FilesError::NotFound { path }) => {
                        tracing::warn!(collection = %collection, key = %key, staged = %path, "the staged content of an unfinished write is gone; the next reconcile records the file as it is");
                        Ok((false, Some(StateChange::Forget { collection: intent.collection.clone(), key: intent.key.clone() })))
                    }
                    Err(e) => Err(files_err(e)),
                }
            }
            "remove" => {
                let path = intent.path.as_deref().unwrap_or(&intent.key);
                if recovering {
                    let live: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM documents d JOIN collections c ON c.id = d.collection_id WHERE c.name = ? AND d.key = ?)",
                    )
                    .bind(intent.collection.clone())
                    .bind(intent.key.clone())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map_err)?;
                    if live {
                        return Ok((false, None));
                    }
                    match files.hash(&collection, path).await {
                        Ok((_, hash, _)) if hash == intent.hash => {}
                        Ok(_) | Err(FilesError::NotFound { .. } | FilesError::RootMissing { .. }) => return Ok((false, None)),
                        Err(e) => return Err(files_err(e)),
                    }
                }
                self.preserve_for_snapshots(&collection, path).await;
                match files.remove(&collection, path).await {
                    Ok(()) | Err(FilesError::RootMissing { .. }) => Ok((true, None)),
                    Err(e) => Err(files_err(e)),
                }
            }
            other => Err(backend(format!("unknown file write {other:?} in database"))),
        }
    }

    /// Discards staged files that no intent names, that this process is not writing, and that are older than
    /// [`LEFTOVER_AGE`]; returns how many.
    pub(crate) async fn discard_leftovers(&self, files: &dyn DocumentFiles) -> Result<u64, RepoError> {
        self.discard_leftovers_older_than(files, LEFTOVER_AGE).await
    }

    /// [`SqliteRepo::discard_leftovers`] for staged files older than `age`.
    pub(crate) async fn discard_leftovers_older_than(&self, files: &dyn DocumentFiles, age: Duration) -> Result<u64, RepoError> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM collections ORDER BY name").fetch_all(&self.pool).await.map_err(map_err)?;
        let now_ns = i128::from(self.clock.now().as_millis()) * 1_000_000;
        let age_ns = age.as_nanos() as i128;
        let mut discarded = 0;
        for name in names {
            let collection = collection_name(&name)?;
            let tokens = match files.leftovers(&collection).await {
                Ok(t) => t,
                Err(FilesError::RootMissing { .. }) => continue,
                Err(e) => return Err(files_err(e)),
            };
            if tokens.is_empty() {
                continue;
            }
            let named: HashSet<String> = sqlx::query_scalar("SELECT token FROM file_writes WHERE collection = ? AND token IS NOT NULL")
                .bind(name.clone())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?
                .into_iter()
                .collect();
            for token in tokens {
                if named.contains(&token) || self.in_flight.contains(&name, &token) {
                    continue;
                }
                // A staged file whose age cannot be told is kept: it may be a live writer's.
                let old = age.is_zero()
                    || matches!(files.stat(&collection, &token).await, Ok(Some(st)) if now_ns - i128::from(st.mtime_ns) >= age_ns);
                if old {
                    files.discard(&collection, &token).await.map_err(files_err)?;
                    discarded += 1;
                }
            }
        }
        Ok(discarded)
    }

    /// `read_content` in filesystem mode: the description from the database, the bytes from the file (or the staged
    /// file of an unfinished write), checked against the recorded hash as they stream.
    pub(crate) async fn read_content_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        key: &DocKey,
    ) -> Result<(DocumentMeta, ContentStream), RepoError> {
        let (meta, file) = {
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let cid = collection_id(&mut tx, collection).await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {DOC_COLUMNS}, coalesce(fs.path, d.key) AS file_path, \
                 (SELECT w.token FROM file_writes w WHERE w.collection = ? AND w.key = d.key AND w.op = 'put' ORDER BY w.id DESC LIMIT 1) AS token \
                 FROM documents d LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
                 WHERE d.collection_id = ? AND d.key = ?"
            )))
            .bind(collection.as_str().to_owned())
            .bind(cid)
            .bind(key.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or_else(|| RepoError::DocumentNotFound { collection: collection.clone(), key: key.clone() })?;
            let meta = doc_from_row(collection, &row)?;
            let file = FileRef::from_row(collection.clone(), meta.key.clone(), &row)?;
            (meta, file)
        };
        let stream = file.open(files).await?;
        let stream = checked_content(stream, meta.key.clone(), meta.content_hash, meta.size);
        Ok((meta, stream))
    }

    /// `read_documents` in filesystem mode: the descriptions and file names of a group of keys in one statement,
    /// then each file read whole and checked against its recorded hash, as `read_content` checks it.
    pub(crate) async fn read_documents_files(
        &self,
        files: &dyn DocumentFiles,
        collection: &CollectionName,
        keys: Vec<DocKey>,
        max_bytes: u64,
    ) -> Result<Vec<Result<ReadDocument, RepoError>>, RepoError> {
        let mut described: HashMap<String, (DocumentMeta, FileRef)> = HashMap::with_capacity(keys.len());
        {
            let mut tx = self.pool.begin().await.map_err(map_err)?;
            let cid = collection_id(&mut tx, collection).await?;
            for group in keys.chunks(KEYS_PER_READ) {
                let rows = sqlx::query(AssertSqlSafe(read_documents_files_sql()))
                    .bind(collection.as_str().to_owned())
                    .bind(cid)
                    .bind(keys_json(group))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for row in rows {
                    let meta = doc_from_row(collection, &row)?;
                    let file = FileRef::from_row(collection.clone(), meta.key.clone(), &row)?;
                    described.insert(meta.key.as_str().to_owned(), (meta, file));
                }
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in &keys {
            let Some((meta, file)) = described.get(key.as_str()) else {
                out.push(Ok(ReadDocument::Missing));
                continue;
            };
            if meta.size > max_bytes {
                out.push(Ok(ReadDocument::TooLarge(meta.clone())));
                continue;
            }
            let answer = match file.open(files).await {
                Ok(stream) => collect_stream(key, checked_content(stream, key.clone(), meta.content_hash, meta.size))
                    .await
                    .map(|bytes| ReadDocument::Whole(meta.clone(), bytes)),
                Err(e @ (RepoError::Corrupt { .. } | RepoError::ContentRead { .. })) => Err(e),
                Err(e) => return Err(e),
            };
            out.push(answer);
        }
        Ok(out)
    }

    /// `verify` in filesystem mode: re-hashes every document's file, a few at a time, page by page from one read
    /// transaction; runs as a background task.
    pub(crate) async fn verify_files_task(
        self,
        files: Arc<dyn DocumentFiles>,
        scope: Option<i64>,
        tx: tokio::sync::mpsc::Sender<Result<VerifyEvent, RepoError>>,
    ) -> Result<(), RepoError> {
        let mut conn = self.pool.begin().await.map_err(map_err)?;
        let (mut after_cid, mut after_key) = (0i64, String::new());
        loop {
            let rows = sqlx::query(
                "SELECT d.collection_id, c.name, d.key, d.hash, d.size, coalesce(fs.path, d.key) AS file_path, \
                 (SELECT w.token FROM file_writes w WHERE w.collection = c.name AND w.key = d.key AND w.op = 'put' ORDER BY w.id DESC LIMIT 1) AS token \
                 FROM documents d JOIN collections c ON c.id = d.collection_id \
                 LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key \
                 WHERE (?1 IS NULL OR d.collection_id = ?1) AND (d.collection_id, d.key) > (?2, ?3) ORDER BY d.collection_id, d.key LIMIT ?4",
            )
            .bind(scope)
            .bind(after_cid)
            .bind(after_key.clone())
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            let Some(last) = rows.last() else { break };
            after_cid = last.try_get("collection_id").map_err(map_err)?;
            after_key = last.try_get("key").map_err(map_err)?;
            let mut page = Vec::with_capacity(rows.len());
            for r in &rows {
                let collection = collection_name(&r.try_get::<String, _>("name").map_err(map_err)?)?;
                let file = FileRef::from_row(collection, doc_key(&r.try_get::<String, _>("key").map_err(map_err)?)?, r)?;
                page.push((file, hash_from(r.try_get("hash").map_err(map_err)?)?, r.try_get::<i64, _>("size").map_err(map_err)? as u64));
            }
            let files = &*files;
            let mut page = page.into_iter();
            let mut running = futures::stream::FuturesOrdered::new();
            let mut verdicts = Vec::new();
            loop {
                while running.len() < VERIFY_CONCURRENCY {
                    let Some((file, expected, size)) = page.next() else { break };
                    running.push_back(async move {
                        let verdict = file.check(files, expected, size).await;
                        (file, expected, verdict)
                    });
                }
                let Some(v) = running.next().await else { break };
                verdicts.push(v);
            }
            let (mut documents, mut bytes) = (0u64, 0u64);
            let mut corrupt = Vec::new();
            for (file, expected, verdict) in verdicts {
                match verdict {
                    Ok(n) => {
                        documents += 1;
                        bytes += n;
                    }
                    Err((actual, problem)) => {
                        corrupt.push(CorruptDocument { collection: file.collection, key: file.key, expected, actual, problem });
                    }
                }
            }
            if documents > 0 && tx.send(Ok(VerifyEvent::Checked { documents, bytes })).await.is_err() {
                return Ok(());
            }
            for c in corrupt {
                if tx.send(Ok(VerifyEvent::Corrupt(c))).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Records the file-state change of a carried-out intent, inside the caller's transaction. The stat is recorded only
/// while the document still has the content that was written.
async fn apply_state(conn: &mut SqliteConnection, state: StateChange) -> Result<(), RepoError> {
    match state {
        StateChange::Set { collection, key, hash, stat } => {
            sqlx::query(
                "INSERT INTO file_state (collection_id, key, path, size, mtime_ns, inode) \
                 SELECT d.collection_id, d.key, NULL, ?, ?, ? FROM documents d JOIN collections c ON c.id = d.collection_id \
                 WHERE c.name = ? AND d.key = ? AND d.hash = ? \
                 ON CONFLICT (collection_id, key) DO UPDATE SET path = NULL, size = excluded.size, mtime_ns = excluded.mtime_ns, \
                 inode = excluded.inode",
            )
            .bind(i64::try_from(stat.size).unwrap_or(i64::MAX))
            .bind(stat.mtime_ns)
            .bind(stat.inode as i64)
            .bind(collection)
            .bind(key)
            .bind(hash.as_bytes().to_vec())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        }
        StateChange::Forget { collection, key } => {
            sqlx::query("DELETE FROM file_state WHERE key = ? AND collection_id = (SELECT id FROM collections WHERE name = ?)")
                .bind(key)
                .bind(collection)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
    }
    Ok(())
}

/// `StoreSnapshot::content` in filesystem mode: the copy kept when a write of this process displaced the content,
/// else the bytes of a document that had `hash` in the snapshot (read on `conn`, the snapshot's transaction), from its
/// file or the staged file of an unfinished write, checked; else a blob left over from sqlite mode.
/// As [`snapshot_content`], as a stream with bounded memory: the source (the snapshot's copy of a displaced content,
/// a file that had the hash in the snapshot, or a leftover blob) is chosen by hashing it first, then read again as a
/// stream; a file changed between the two reads ends the stream with an error when the reader checks the hash.
pub(crate) async fn snapshot_content_stream(
    shared: &crate::snapshot::SharedTx,
    files: &Arc<dyn DocumentFiles>,
    displaced: &Displaced,
    hash: &ContentHash,
) -> Result<ContentStream, RepoError> {
    if let Some(copy) = displaced.get(hash)
        && let Some(stream) = copy.open().await
    {
        return Ok(stream);
    }
    let rows = {
        let mut tx = shared.lock().await;
        candidate_files(&mut tx, hash).await?
    };
    let mut first_key = None;
    for file in rows {
        if let Some(stream) = file.open_holding(&**files, hash).await {
            return Ok(stream);
        }
        first_key.get_or_insert(file.key);
    }
    if let Some(stream) = crate::snapshot::blob_stream(shared, hash).await? {
        return Ok(stream);
    }
    Err(missing_from_snapshot(first_key, hash))
}

/// The files that held `hash` at the snapshot's moment (at most 16), with the staged file of an unfinished write.
async fn candidate_files(conn: &mut SqliteConnection, hash: &ContentHash) -> Result<Vec<FileRef>, RepoError> {
    let rows = sqlx::query(
        "SELECT c.name, d.key, coalesce(fs.path, d.key) AS file_path, \
         (SELECT w.token FROM file_writes w WHERE w.collection = c.name AND w.key = d.key AND w.op = 'put' AND w.hash = d.hash \
          ORDER BY w.id DESC LIMIT 1) AS token \
         FROM documents d JOIN collections c ON c.id = d.collection_id \
         LEFT JOIN file_state fs ON fs.collection_id = d.collection_id AND fs.key = d.key WHERE d.hash = ? LIMIT 16",
    )
    .bind(hash.as_bytes().to_vec())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            FileRef::from_row(
                collection_name(&r.try_get::<String, _>("name").map_err(map_err)?)?,
                doc_key(&r.try_get::<String, _>("key").map_err(map_err)?)?,
                r,
            )
        })
        .collect()
}

/// The error of a content no source of the snapshot holds.
fn missing_from_snapshot(first_key: Option<DocKey>, hash: &ContentHash) -> RepoError {
    match first_key {
        // The file was written again or changed outside colstore since the snapshot: stale, not damaged.
        Some(key) => {
            tracing::debug!(%hash, "no file holds this content of the snapshot any more");
            RepoError::ContentRead { source: std::io::Error::other(colstore_domain::ContentChanged { key: key.clone() }), key }
        }
        None => backend(format!("content {hash} is missing from the snapshot")),
    }
}

pub(crate) async fn snapshot_content(
    conn: &mut SqliteConnection,
    files: &dyn DocumentFiles,
    displaced: &Displaced,
    hash: &ContentHash,
) -> Result<Bytes, RepoError> {
    if let Some(copy) = displaced.get(hash)
        && let Some(bytes) = copy.read().await
    {
        return Ok(bytes);
    }
    let mut first_key = None;
    for file in candidate_files(&mut *conn, hash).await? {
        if let Ok(stream) = file.open(files).await
            && let Ok(bytes) = collect(stream).await
            && ContentHash::of(&bytes) == *hash
        {
            return Ok(bytes);
        }
        first_key.get_or_insert(file.key);
    }
    if let Some(bytes) = crate::snapshot::blob_bytes(conn, hash).await?
        && ContentHash::of(&bytes) == *hash
    {
        return Ok(bytes);
    }
    Err(missing_from_snapshot(first_key, hash))
}
