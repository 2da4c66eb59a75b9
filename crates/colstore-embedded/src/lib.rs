//! The embedded [`VectorIndex`]: in-process, exact, persisted in its own SQLite database inside the store
//! (`.colstore/index/embedded.db`).
//!
//! - **Storage.** One SQLite database through sqlx (bundled SQLite, WAL, `synchronous = FULL`, a busy timeout,
//!   migrations in `migrations/` embedded in the binary). Table `index_collections` holds each collection's name,
//!   dimension, distance, a version counter and a write stamp; table `points` one row per point: the 16 bytes of its
//!   UUID, its payload as JSON text and its vector as little-endian `f32`s.
//! - **Writes.** Every write is one `BEGIN IMMEDIATE` transaction that also bumps the collection's version (and
//!   draws a new random write stamp), and is durable when the call returns (it survives `kill -9` and power loss). A
//!   batch is all-or-nothing. Cosine vectors are normalised on write, as Qdrant does.
//! - **Search.** Exact top-k over an in-memory copy of the collection: every vector in one contiguous `Vec<f32>`,
//!   scanned by auto-vectorised kernels on up to [`std::thread::available_parallelism`] threads. Cosine and dot
//!   collections also keep int8 codes with rigorous error bounds, so a search reads a quarter of the bytes and
//!   rescores in `f32` only the points that can still be in the top k: the result is bit-for-bit the full scan's.
//!   Scores are higher-is-closer (Euclidean distances negated), ties are broken by id. The copy is loaded on first
//!   use and labelled with the collection's row id and version; each search compares that label with the database
//!   (one indexed read), so writes made by another process or another handle are always seen. Writes made through
//!   the same handle are applied to the copy in place instead of forcing a reload.
//! - **Snapshot files.** Each `col search` is a new process, and decoding a large collection from SQLite and
//!   quantising it again takes seconds. So the prepared copy is also kept in a file beside the database, one per
//!   collection: `.colstore/index/embedded/<collection row id>.snap` (in general `DIR/NAME/<id>.snap` for the database
//!   `DIR/NAME.db`). It holds the ids, payload texts, vectors, int8 codes and their bounds in a versioned
//!   little-endian format with a header (magic `colsnap\0`, format version, dimension, distance, count, and the
//!   collection's row id, version and write stamp it was built from) and XXH64 checksums of the header and of the
//!   body; the layout is documented in `src/sidecar.rs`. A load reads it with large sequential reads when its label
//!   equals the collection's row in the database and both checksums hold, and otherwise loads from the database. The
//!   database stays the source of truth: the write stamp (a random number every write replaces, with the version;
//!   schema version 2) tells apart states that share an id and a version, as after the database was deleted and
//!   created anew or restored from a copy. [`EmbeddedIndex::load_stats`] says which path the loads took.
//! - **When files are written.** After every load from the database of a collection of at least 65 536 floats (for
//!   smaller ones the database is as fast): the first search after another process changed the collection pays the
//!   database load and the write. Writes through a handle do not rewrite the file (the copy in memory is updated in
//!   place; the file goes stale and is rebuilt by the next process that loads the collection), nor does dropping the
//!   handle. A file is written to `.<id>.snap.<pid>-<n>.tmp` in the same folder, synced, renamed over the old file,
//!   and the folder synced, so `kill -9` or a power loss leaves the old file, the new one, or a temporary file that
//!   no reader looks at; a torn or damaged file fails its checksum and is replaced. `drop_collection` removes the
//!   collection's file; writing a file also removes the files of collections dropped by other means and temporary
//!   files older than 15 minutes. Failing to write a file (e.g. a read-only folder) only costs time and is logged.
//! - **Filters** are evaluated with [`Filter::matches`], the reference semantics, so every filter is supported.
//!   Searches use a per-filter mask remembered until the next write; `count` and `delete_by_filter` use it too when
//!   the copy is current, and otherwise read payloads from the database. A filter that pins the document key
//!   (`key = …`, `key in […]`) reads only that document's rows, through an index on the payload's key.
//! - **Scroll** reads the database in id order (UUID byte order = order of the lowercase hyphenated strings), with
//!   Qdrant's paging: `from` inclusive, `next` = the first id of the next page; a `limit` of 0 is an error.
//!
//! [`bench::search_bench`] measures the in-memory search alone, for `cargo xtask bench`; [`bench::cold_load_bench`]
//! the load of a collection from the database and from its snapshot file.

pub mod bench;
mod kernel;
mod sidecar;
mod snapshot;
mod xxh64;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use colstore_domain::ports::{
    IndexCapabilities, IndexError, IndexHealth, ScrollPage, ScrollRequest, SearchRequest, StoredPoint, VectorIndex,
};
use colstore_domain::{Condition, Distance, Filter, IndexName, MatchValue, Payload, Point, PointId, ScoredPoint, VectorSettings};
use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::snapshot::Snapshot;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The adapter's name in errors and health reports.
const BACKEND: &str = "embedded";

/// Points per multi-row statement (4 bound parameters each, well under SQLite's 32 766).
const ROWS_PER_STATEMENT: usize = 256;

/// Searches over fewer floats than this run on the calling task; larger ones move to the blocking pool.
const INLINE_SEARCH_FLOATS: usize = 1 << 16;

/// Most keys a `key in [...]` filter is answered with from the key index; longer lists scan the collection.
const MAX_INDEXED_KEYS: usize = 256;

/// How long a writer waits for another writer (another process, or another connection of this one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Collections of fewer `f32` than this (256 KiB of vectors) get no snapshot file: the database loads them in about a
/// millisecond, less than writing and syncing a file costs.
const PERSIST_MIN_FLOATS: usize = 1 << 16;

/// The in-process vector index. Cloning shares the database pool and the in-memory copies.
#[derive(Clone)]
pub struct EmbeddedIndex {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    path: PathBuf,
    /// The folder of the snapshot files (see [`sidecar`]).
    sidecars: PathBuf,
    stats: Stats,
    /// In-memory copies of collections, by name. The mutex is never held across an `.await`.
    cache: Mutex<HashMap<IndexName, Arc<Snapshot>>>,
    /// Serialises loads, so concurrent searches of a cold collection load it once.
    loading: tokio::sync::Mutex<()>,
}

/// Counters behind [`LoadStats`].
#[derive(Debug, Default)]
struct Stats {
    from_database: AtomicU64,
    from_snapshot_file: AtomicU64,
    files_rejected: AtomicU64,
    files_written: AtomicU64,
}

/// How the in-memory copies of a handle (and its clones) were obtained, since it was opened: diagnostics, and what
/// tests use to tell which load path ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadStats {
    /// Copies read from the database row by row (and quantised).
    pub from_database: u64,
    /// Copies read from a snapshot file.
    pub from_snapshot_file: u64,
    /// Snapshot files found but not used: built from another state of the collection, of another format version,
    /// or damaged.
    pub files_rejected: u64,
    /// Snapshot files written.
    pub files_written: u64,
}

impl std::fmt::Debug for EmbeddedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedIndex").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// A collection's row.
#[derive(Debug, Clone, Copy)]
struct Info {
    id: i64,
    dim: usize,
    distance: Distance,
    version: i64,
    /// Random, replaced by every write: with `id` and `version`, the label a snapshot file must carry.
    stamp: i64,
}

impl Info {
    fn label(&self) -> sidecar::Label {
        sidecar::Label { collection_id: self.id, version: self.version, stamp: self.stamp, dim: self.dim, distance: self.distance }
    }
}

/// A point ready to write: vector as stored (normalised for cosine), payload as JSON.
struct Prepared {
    id: PointId,
    vector: Vec<f32>,
    payload: Map<String, Value>,
    payload_json: String,
}

/// One change to apply to an in-memory copy after it was committed.
enum Change {
    Upsert(Vec<Prepared>),
    Delete(Vec<PointId>),
}

fn backend(msg: impl Into<String>) -> IndexError {
    IndexError::Backend { backend: BACKEND, source: msg.into().into() }
}

/// Maps sqlx errors: a busy database is `Unavailable` (retrying helps), anything else `Backend`.
fn db_err(e: sqlx::Error) -> IndexError {
    if let sqlx::Error::Database(db) = &e
        && let Some(code) = db.code().and_then(|c| c.parse::<i32>().ok())
        && matches!(code & 0xff, 5 | 6)
    {
        return IndexError::Unavailable(format!("the embedded index database is busy ({})", db.message()));
    }
    IndexError::Backend { backend: BACKEND, source: Box::new(e) }
}

fn dimension_mismatch(expected: usize, got: usize) -> IndexError {
    let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    IndexError::DimensionMismatch { expected: n(expected), got: n(got) }
}

fn id_bytes(id: &PointId) -> &[u8; 16] {
    id.0.as_bytes()
}

fn id_from(bytes: &[u8]) -> Result<PointId, IndexError> {
    <[u8; 16]>::try_from(bytes)
        .map(|b| PointId(Uuid::from_bytes(b)))
        .map_err(|_| backend(format!("a point id has {} bytes, not 16", bytes.len())))
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode_vector_into(bytes: &[u8], dim: usize, id: &PointId, out: &mut Vec<f32>) -> Result<(), IndexError> {
    let (floats, rest) = bytes.as_chunks::<4>();
    if floats.len() != dim || !rest.is_empty() {
        return Err(backend(format!("the vector of point {id} has {} bytes, expected {}", bytes.len(), dim * 4)));
    }
    out.extend(floats.iter().map(|b| f32::from_le_bytes(*b)));
    Ok(())
}

fn parse_payload_map(json: &str, id: &PointId) -> Result<Map<String, Value>, IndexError> {
    match serde_json::from_str(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(backend(format!("the payload of point {id} is not a JSON object"))),
        Err(e) => Err(backend(format!("the payload of point {id} is not valid JSON: {e}"))),
    }
}

fn payload_from_map(map: Map<String, Value>, id: &PointId) -> Result<Payload, IndexError> {
    serde_json::from_value(Value::Object(map)).map_err(|e| backend(format!("the payload of point {id} is not a colstore payload: {e}")))
}

/// A filter worth evaluating: `None` for no filter or one without conditions (which matches everything).
fn effective(filter: Option<Filter>) -> Option<Filter> {
    filter.filter(|f| !f.is_empty())
}

/// Which rows a filtered scan must read.
#[derive(Debug, PartialEq)]
enum Rows {
    /// Every row of the collection.
    All,
    /// Only the rows of these document keys (read through the `points_by_key` index).
    Keys(Vec<String>),
    /// None: the filter pins the key to something no key can be.
    Nothing,
}

impl Rows {
    /// The rows `filter` can possibly match. A `must` condition `key = "k"` or `key in [...]` restricts them to those
    /// keys: points with other keys fail that condition, so reading only these rows and then applying the whole
    /// filter is exact.
    fn for_filter(filter: Option<&Filter>) -> Self {
        let texts = |values: &mut dyn Iterator<Item = &MatchValue>| -> Vec<String> {
            // A key is always a string: integer or boolean values can never match it.
            values.filter_map(|v| if let MatchValue::Text(t) = v { Some(t.clone()) } else { None }).collect()
        };
        let pinned = filter.into_iter().flat_map(|f| &f.must).find_map(|c| match c {
            Condition::Match { key, value } if key.as_str() == "key" => Some(texts(&mut std::iter::once(value))),
            Condition::MatchAny { key, any } if key.as_str() == "key" && any.len() <= MAX_INDEXED_KEYS => Some(texts(&mut any.iter())),
            _ => None,
        });
        match pinned {
            None => Self::All,
            Some(keys) if keys.is_empty() => Self::Nothing,
            Some(keys) => Self::Keys(keys),
        }
    }

    /// The table to read from: with pinned keys, through the key index (SQLite would otherwise prefer the primary key
    /// when the query also orders by id, and scan the whole collection).
    fn table(&self) -> &'static str {
        match self {
            Self::All | Self::Nothing => "points",
            Self::Keys(_) => "points INDEXED BY points_by_key",
        }
    }

    /// The SQL condition selecting these rows (to follow `WHERE collection_id = ?`), with one `?` per key.
    fn clause(&self) -> String {
        match self {
            Self::All | Self::Nothing => String::new(),
            Self::Keys(keys) => format!(" AND json_extract(payload, '$.key') IN ({})", vec!["?"; keys.len()].join(", ")),
        }
    }

    fn keys(&self) -> &[String] {
        match self {
            Self::Keys(keys) => keys,
            Self::All | Self::Nothing => &[],
        }
    }
}

async fn info(conn: &mut SqliteConnection, name: &IndexName) -> Result<Option<Info>, IndexError> {
    let row = sqlx::query("SELECT id, dimension, distance, version, stamp FROM index_collections WHERE name = ?")
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let Some(row) = row else { return Ok(None) };
    let dim: i64 = row.try_get("dimension").map_err(db_err)?;
    let distance: String = row.try_get("distance").map_err(db_err)?;
    Ok(Some(Info {
        id: row.try_get("id").map_err(db_err)?,
        dim: usize::try_from(dim).map_err(|_| backend(format!("collection {name} has dimension {dim}")))?,
        distance: Distance::parse(&distance).map_err(|e| backend(e.to_string()))?,
        version: row.try_get("version").map_err(db_err)?,
        stamp: row.try_get("stamp").map_err(db_err)?,
    }))
}

async fn existing(conn: &mut SqliteConnection, name: &IndexName) -> Result<Info, IndexError> {
    info(conn, name).await?.ok_or_else(|| IndexError::CollectionNotFound(name.clone()))
}

/// Bumps the collection's version (and draws a new stamp) inside the write's transaction and returns the new version.
async fn bump(conn: &mut SqliteConnection, collection_id: i64) -> Result<i64, IndexError> {
    sqlx::query_scalar("UPDATE index_collections SET version = version + 1, stamp = random() WHERE id = ? RETURNING version")
        .bind(collection_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)
}

impl EmbeddedIndex {
    /// Opens the index database at `path`, creating it (and its parent folder) when missing, in WAL mode with
    /// `synchronous = FULL`, and runs pending migrations.
    ///
    /// # Errors
    /// `Backend` when the folder or file cannot be created or opened, or the database has a schema this version
    /// does not know.
    pub async fn open(path: &Path) -> Result<EmbeddedIndex, IndexError> {
        Self::open_with(path, false).await
    }

    /// Opens an existing index read-only (`mode=ro`), for a store the user may read but not write: no folder or file
    /// is created, no migration runs, and every write fails. A missing index file is opened as an empty in-memory
    /// index (nothing was ever synced).
    ///
    /// # Errors
    /// `Backend` when the file cannot be opened.
    pub async fn open_read_only(path: &Path) -> Result<EmbeddedIndex, IndexError> {
        Self::open_with(path, true).await
    }

    async fn open_with(path: &Path, read_only: bool) -> Result<EmbeddedIndex, IndexError> {
        if read_only && !path.exists() {
            // Nothing was ever synced: an empty index, migrated in memory, that cannot touch the store.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(SqliteConnectOptions::new().in_memory(true))
                .await
                .map_err(db_err)?;
            MIGRATOR.run(&pool).await.map_err(|e| IndexError::Backend { backend: BACKEND, source: Box::new(e) })?;
            return Ok(Self::from_pool(pool, path));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !read_only) {
            std::fs::create_dir_all(parent).map_err(|e| backend(format!("cannot create {}: {e}", parent.display())))?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(!read_only)
            .read_only(read_only)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory")
            // After a checkpoint resets the WAL, shrink it to this size so one large sync does not leave a WAL as
            // large as its biggest moment behind.
            .pragma("journal_size_limit", "67108864")
            .pragma("cache_size", "-16384");
        let pool_options =
            || SqlitePoolOptions::new().max_connections(4).min_connections(0).acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(5));
        let pool = match pool_options().connect_with(connect.clone()).await {
            Ok(pool) => pool,
            // A WAL database in a read-only folder without its `-shm` file can only be read as an immutable file.
            Err(_) if read_only && !std::fs::metadata(format!("{}-wal", path.display())).is_ok_and(|m| m.len() > 0) => {
                pool_options().connect_with(connect.immutable(true)).await.map_err(db_err)?
            }
            Err(e) => return Err(db_err(e)),
        };
        if read_only {
            return Ok(Self::from_pool(pool, path));
        }
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => db_err(inner),
            sqlx::migrate::MigrateError::VersionTooNew(v, _) | sqlx::migrate::MigrateError::VersionMissing(v) => {
                backend(format!("the index database has schema version {v}, which this colstore does not know; upgrade colstore"))
            }
            other => IndexError::Backend { backend: BACKEND, source: Box::new(other) },
        })?;
        Ok(Self::from_pool(pool, path))
    }

    fn from_pool(pool: SqlitePool, path: &Path) -> EmbeddedIndex {
        EmbeddedIndex {
            inner: Arc::new(Inner {
                pool,
                path: path.to_owned(),
                sidecars: sidecar::dir_for(path),
                stats: Stats::default(),
                cache: Mutex::new(HashMap::new()),
                loading: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The folder of the snapshot files: `DIR/NAME/` beside the database `DIR/NAME.db`.
    pub fn snapshot_dir(&self) -> &Path {
        &self.inner.sidecars
    }

    /// Where this handle's in-memory copies came from so far.
    pub fn load_stats(&self) -> LoadStats {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LoadStats {
            from_database: get(&s.from_database),
            from_snapshot_file: get(&s.from_snapshot_file),
            files_rejected: get(&s.files_rejected),
            files_written: get(&s.files_written),
        }
    }

    /// Checkpoints the WAL into the database file and closes every connection of this handle (and its clones).
    pub async fn close(&self) {
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.inner.pool).await;
        self.inner.pool.close().await;
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<IndexName, Arc<Snapshot>>> {
        self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, IndexError> {
        self.inner.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
    }

    async fn begin_read(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, IndexError> {
        self.inner.pool.begin().await.map_err(db_err)
    }

    /// The in-memory copy of `name`, as the database holds it now: reused when its label matches the collection's
    /// current (id, version), loaded otherwise.
    async fn snapshot(&self, name: &IndexName) -> Result<Arc<Snapshot>, IndexError> {
        let current = {
            let mut conn = self.inner.pool.acquire().await.map_err(db_err)?;
            existing(&mut conn, name).await?
        };
        if let Some(s) = self.cached(name, &current) {
            return Ok(s);
        }
        let loading = self.inner.loading.lock().await;
        // Another task may have loaded it while this one waited.
        if let Some(s) = self.cached(name, &current) {
            return Ok(s);
        }
        let rejected = match self.read_sidecar(name, &current).await? {
            Ok(snap) => {
                let snap = Arc::new(snap);
                self.offer(name, Arc::clone(&snap));
                return Ok(snap);
            }
            Err(rejected) => rejected,
        };
        let (loaded, info) = self.load(name).await?;
        let loaded = Arc::new(loaded);
        self.offer(name, Arc::clone(&loaded));
        drop(loading);
        self.persist(name, Arc::clone(&loaded), info.stamp, !matches!(rejected, sidecar::Rejected::Missing)).await;
        Ok(loaded)
    }

    /// The copy of `name` from its snapshot file, when the file shows the collection exactly as `current` describes it.
    async fn read_sidecar(&self, name: &IndexName, current: &Info) -> Result<Result<Snapshot, sidecar::Rejected>, IndexError> {
        let started = std::time::Instant::now();
        let path = sidecar::path_for(&self.inner.sidecars, current.id);
        let label = current.label();
        let read = tokio::task::spawn_blocking(move || sidecar::read(&path, &label))
            .await
            .map_err(|e| backend(format!("the snapshot file task failed: {e}")))?;
        let stats = &self.inner.stats;
        match &read {
            Ok(snap) => {
                stats.from_snapshot_file.fetch_add(1, Ordering::Relaxed);
                let elapsed_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(collection = %name, points = snap.len(), elapsed_ms, "loaded index collection from its snapshot file");
            }
            Err(sidecar::Rejected::Missing) => {}
            Err(stale @ sidecar::Rejected::Stale(_)) => {
                stats.files_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(collection = %name, "{stale}; loading from the database");
            }
            Err(invalid @ sidecar::Rejected::Invalid(_)) => {
                stats.files_rejected.fetch_add(1, Ordering::Relaxed);
                let path = sidecar::path_for(&self.inner.sidecars, current.id);
                tracing::warn!(collection = %name, path = %path.display(), "{invalid}; loading from the database and rewriting it");
            }
        }
        Ok(read)
    }

    /// Writes the snapshot file of a copy just loaded from the database (when the collection is large enough for it
    /// to pay; a smaller collection's old file, if `replace`, is removed instead), then removes files of dropped
    /// collections and abandoned temporary files. Failures are logged: the file only saves time.
    async fn persist(&self, name: &IndexName, snap: Arc<Snapshot>, stamp: i64, replace: bool) {
        let dir = self.inner.sidecars.clone();
        if snap.len().saturating_mul(snap.dim) < PERSIST_MIN_FLOATS {
            if replace && let Err(e) = sidecar::remove(&dir, snap.collection_id) {
                tracing::warn!(collection = %name, "cannot remove the snapshot file of a small collection: {e}");
            }
            return;
        }
        let live = self.collection_ids().await.inspect_err(|e| tracing::debug!("cannot list collections for cleanup: {e}")).ok();
        let started = std::time::Instant::now();
        let written = tokio::task::spawn_blocking(move || {
            let size = sidecar::write(&dir, &snap, stamp)?;
            if let Some((ids, last)) = live {
                sidecar::clean(&dir, &ids, last);
            }
            Ok::<_, std::io::Error>((size, snap.len()))
        })
        .await;
        match written {
            Ok(Ok((bytes, points))) => {
                self.inner.stats.files_written.fetch_add(1, Ordering::Relaxed);
                let elapsed_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(collection = %name, points, bytes, elapsed_ms, "wrote the snapshot file of index collection");
            }
            Ok(Err(e)) => tracing::warn!(collection = %name, dir = %self.inner.sidecars.display(), "cannot write the snapshot file: {e}"),
            Err(e) => tracing::warn!(collection = %name, "the snapshot file task failed: {e}"),
        }
    }

    /// The row ids of every collection, and the largest id handed out so far.
    async fn collection_ids(&self) -> Result<(Vec<i64>, i64), IndexError> {
        let mut tx = self.begin_read().await?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM index_collections").fetch_all(&mut *tx).await.map_err(db_err)?;
        let last: Option<i64> = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'index_collections'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let last = last.unwrap_or(0).max(ids.iter().copied().max().unwrap_or(0));
        Ok((ids, last))
    }

    fn cached(&self, name: &IndexName, current: &Info) -> Option<Arc<Snapshot>> {
        self.cache().get(name).filter(|s| s.collection_id == current.id && s.version == current.version).cloned()
    }

    /// Reads a whole collection in one read transaction, so the copy and its version label agree; returns the
    /// collection's row as that transaction saw it too.
    async fn load(&self, name: &IndexName) -> Result<(Snapshot, Info), IndexError> {
        let started = std::time::Instant::now();
        let mut tx = self.begin_read().await?;
        let info = existing(&mut tx, name).await?;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM points WHERE collection_id = ?")
            .bind(info.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut snap = Snapshot::new(info.id, info.version, info.dim, info.distance);
        snap.reserve(usize::try_from(count).unwrap_or(0));
        let mut vector = Vec::with_capacity(info.dim);
        {
            let mut rows = sqlx::query("SELECT id, payload, vector FROM points WHERE collection_id = ?").bind(info.id).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(db_err)? {
                let id = id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?;
                // Payloads stay text until a filter or a hit needs them parsed.
                let payload: Box<str> = row.try_get::<&str, _>(1).map_err(db_err)?.into();
                vector.clear();
                decode_vector_into(row.try_get::<&[u8], _>(2).map_err(db_err)?, info.dim, &id, &mut vector)?;
                snap.upsert(id, &vector, payload, None);
            }
        }
        tx.commit().await.map_err(db_err)?;
        self.inner.stats.from_database.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(collection = %name, points = snap.len(), elapsed_ms = started.elapsed().as_millis() as u64, "loaded index collection");
        Ok((snap, info))
    }

    /// Keeps `snap` as the copy of `name` unless the cache already holds a newer one: a larger (never reused) row
    /// id, or the same id at a version at least as high. Loads and applied writes may finish in any order.
    fn offer(&self, name: &IndexName, snap: Arc<Snapshot>) {
        let mut cache = self.cache();
        let newer = cache.get(name).is_some_and(|c| (c.collection_id, c.version) >= (snap.collection_id, snap.version));
        if !newer {
            cache.insert(name.clone(), snap);
        }
    }

    /// Applies a committed write to the in-memory copy when the copy showed exactly the state before it
    /// (`version - 1`); otherwise drops the copy, and the next search reloads it.
    fn apply(&self, name: &IndexName, collection_id: i64, version: i64, change: Change) {
        let taken = {
            let mut cache = self.cache();
            match cache.get(name) {
                Some(c) if c.collection_id == collection_id && c.version == version - 1 => cache.remove(name),
                Some(_) => {
                    cache.remove(name);
                    return;
                }
                None => return,
            }
        };
        let Some(mut copy) = taken else { return };
        // Outside the lock: this copies the collection when a search still holds the old copy.
        let snap = Arc::make_mut(&mut copy);
        match change {
            Change::Upsert(points) => {
                for p in points {
                    snap.upsert(p.id, &p.vector, p.payload_json.into_boxed_str(), Some(p.payload));
                }
            }
            Change::Delete(ids) => {
                for id in &ids {
                    snap.remove(id);
                }
            }
        }
        snap.version = version;
        self.offer(name, copy);
    }

    /// The ids of the points of `name` that `filter` selects, from the in-memory copy, when one shows the collection as
    /// `found` describes (same row id and version); `None` otherwise. Used for filters that must look at every point,
    /// where parsing every payload from the database costs far more than a (usually remembered) mask.
    async fn matching_in_memory(&self, name: &IndexName, found: &Info, filter: &Filter) -> Result<Option<Vec<PointId>>, IndexError> {
        let Some(snap) = self.cached(name, found) else { return Ok(None) };
        let filter = filter.clone();
        let threads = snapshot::threads_for(snap.len(), snap.dim);
        let ids = tokio::task::spawn_blocking(move || {
            let mask = snap.mask(&filter, threads)?;
            Ok::<_, String>(snap.ids().iter().zip(mask.iter()).filter(|(_, m)| **m).map(|(id, _)| *id).collect::<Vec<_>>())
        })
        .await
        .map_err(|e| backend(format!("the filter task failed: {e}")))?
        .map_err(|e| backend(format!("index collection {name}: {e}")))?;
        Ok(Some(ids))
    }

    /// Deletes `ids` inside `tx`, returning those that existed.
    async fn delete_ids(tx: &mut SqliteConnection, collection_id: i64, ids: &[PointId]) -> Result<Vec<PointId>, IndexError> {
        let mut deleted = Vec::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("DELETE FROM points WHERE collection_id = ? AND id IN ({marks}) RETURNING id");
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(collection_id);
            for id in chunk {
                q = q.bind(id_bytes(id).as_slice());
            }
            for row in q.fetch_all(&mut *tx).await.map_err(db_err)? {
                deleted.push(id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?);
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl VectorIndex for EmbeddedIndex {
    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            max_batch_points: 1024,
            max_request_bytes: 256 * 1024 * 1024,
            filter_should: true,
            exact_count: true,
            snapshots: false,
        }
    }

    async fn health(&self) -> Result<IndexHealth, IndexError> {
        let answer: Result<String, sqlx::Error> = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&self.inner.pool).await;
        Ok(match answer {
            Ok(v) => IndexHealth { backend: BACKEND.to_owned(), version: Some(format!("sqlite {v}")), ok: true, detail: None },
            Err(e) => IndexHealth {
                backend: BACKEND.to_owned(),
                version: None,
                ok: false,
                detail: Some(format!("{}: {e}", self.inner.path.display())),
            },
        })
    }

    async fn ensure_collection(&self, name: &IndexName, settings: &VectorSettings) -> Result<(), IndexError> {
        let dim = settings.embedder.dimension.get();
        let mut tx = self.begin_write().await?;
        if let Some(found) = info(&mut tx, name).await? {
            let wanted = dim as usize;
            if found.dim != wanted {
                return Err(dimension_mismatch(found.dim, wanted));
            }
            if found.distance != settings.distance {
                // The port has no variant for "other settings" but this one (see `IndexError::DimensionMismatch`).
                return Err(dimension_mismatch(found.dim, wanted));
            }
            return Ok(());
        }
        sqlx::query("INSERT INTO index_collections (name, dimension, distance, stamp) VALUES (?, ?, ?, random())")
            .bind(name.as_str())
            .bind(i64::from(dim))
            .bind(settings.distance.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn drop_collection(&self, name: &IndexName) -> Result<bool, IndexError> {
        let mut tx = self.begin_write().await?;
        let Some(found) = info(&mut tx, name).await? else { return Ok(false) };
        sqlx::query("DELETE FROM points WHERE collection_id = ?").bind(found.id).execute(&mut *tx).await.map_err(db_err)?;
        sqlx::query("DELETE FROM index_collections WHERE id = ?").bind(found.id).execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.cache().remove(name);
        // Ids are never reused, so a file left behind could never be used; it would only take space.
        if let Err(e) = sidecar::remove(&self.inner.sidecars, found.id) {
            tracing::warn!(collection = %name, "cannot remove the snapshot file of the dropped collection: {e}");
        }
        Ok(true)
    }

    async fn upsert(&self, name: &IndexName, points: Vec<Point>) -> Result<(), IndexError> {
        let mut tx = self.begin_write().await?;
        let found = existing(&mut tx, name).await?;
        // Validate the whole batch before writing anything; dropping the transaction rolls back.
        if let Some(bad) = points.iter().find(|p| p.vector.len() != found.dim) {
            return Err(dimension_mismatch(found.dim, bad.vector.len()));
        }
        if points.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(points.len());
        for p in points {
            let mut vector = p.vector;
            if found.distance == Distance::Cosine {
                kernel::normalise(&mut vector);
            }
            let payload = match serde_json::to_value(&p.payload) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(backend("a payload did not serialise to a JSON object")),
                Err(e) => return Err(backend(format!("cannot serialise the payload of point {}: {e}", p.id))),
            };
            let payload_json = serde_json::to_string(&payload).map_err(|e| backend(e.to_string()))?;
            prepared.push(Prepared { id: p.id, vector, payload, payload_json });
        }
        for chunk in prepared.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(",");
            let sql = format!(
                "INSERT INTO points (collection_id, id, payload, vector) VALUES {values} \
                 ON CONFLICT (collection_id, id) DO UPDATE SET payload = excluded.payload, vector = excluded.vector"
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for p in chunk {
                q = q.bind(found.id).bind(id_bytes(&p.id).as_slice()).bind(p.payload_json.as_str()).bind(encode_vector(&p.vector));
            }
            q.execute(&mut *tx).await.map_err(db_err)?;
        }
        let version = bump(&mut tx, found.id).await?;
        tx.commit().await.map_err(db_err)?;
        self.apply(name, found.id, version, Change::Upsert(prepared));
        Ok(())
    }

    async fn delete(&self, name: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError> {
        let mut tx = self.begin_write().await?;
        let found = existing(&mut tx, name).await?;
        let deleted = Self::delete_ids(&mut tx, found.id, &ids).await?;
        if deleted.is_empty() {
            // Nothing changed: leave the version (and so every in-memory copy) as it is.
            return Ok(());
        }
        let version = bump(&mut tx, found.id).await?;
        tx.commit().await.map_err(db_err)?;
        self.apply(name, found.id, version, Change::Delete(deleted));
        Ok(())
    }

    async fn delete_by_filter(&self, name: &IndexName, filter: &Filter) -> Result<Option<u64>, IndexError> {
        let mut tx = self.begin_write().await?;
        let found = existing(&mut tx, name).await?;
        let scope = Rows::for_filter(Some(filter));
        if scope == Rows::Nothing {
            return Ok(Some(0));
        }
        // The write lock is held, so an in-memory copy at this version shows exactly what will be deleted from.
        let in_memory = if scope == Rows::All { self.matching_in_memory(name, &found, filter).await? } else { None };
        let matching = match in_memory {
            Some(ids) => ids,
            None => {
                let sql = format!("SELECT id, payload FROM {} WHERE collection_id = ?{}", scope.table(), scope.clause());
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(found.id);
                for k in scope.keys() {
                    q = q.bind(k.as_str());
                }
                let mut matching = Vec::new();
                let mut rows = q.fetch(&mut *tx);
                while let Some(row) = rows.try_next().await.map_err(db_err)? {
                    let id = id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?;
                    if filter.matches(&parse_payload_map(row.try_get::<&str, _>(1).map_err(db_err)?, &id)?) {
                        matching.push(id);
                    }
                }
                matching
            }
        };
        let deleted = Self::delete_ids(&mut tx, found.id, &matching).await?;
        let n = deleted.len() as u64;
        if deleted.is_empty() {
            return Ok(Some(0));
        }
        let version = bump(&mut tx, found.id).await?;
        tx.commit().await.map_err(db_err)?;
        self.apply(name, found.id, version, Change::Delete(deleted));
        Ok(Some(n))
    }

    async fn scroll(&self, name: &IndexName, request: ScrollRequest) -> Result<ScrollPage, IndexError> {
        if request.limit == 0 {
            return Err(backend("the scroll limit must be at least 1"));
        }
        let filter = effective(request.filter);
        let scope = Rows::for_filter(filter.as_ref());
        let mut tx = self.begin_read().await?;
        let found = existing(&mut tx, name).await?;
        if scope == Rows::Nothing {
            return Ok(ScrollPage { points: Vec::new(), next: None });
        }
        let columns = if request.with_vectors { "id, payload, vector" } else { "id, payload" };
        // Without a filter the database stops after the one point past the page; with one, rows are read in id
        // order until enough match.
        let limit_clause = if filter.is_none() { " LIMIT ?" } else { "" };
        let sql = format!(
            "SELECT {columns} FROM {} WHERE collection_id = ?{} AND id >= ? ORDER BY id{limit_clause}",
            scope.table(),
            scope.clause()
        );
        // The empty blob sorts before every id.
        let from: Vec<u8> = request.from.map(|id| id_bytes(&id).to_vec()).unwrap_or_default();
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(found.id);
        for k in scope.keys() {
            q = q.bind(k.as_str());
        }
        q = q.bind(from);
        if filter.is_none() {
            q = q.bind(i64::try_from(request.limit.saturating_add(1)).unwrap_or(i64::MAX));
        }
        let mut points = Vec::with_capacity(request.limit.min(1024));
        let mut next = None;
        {
            let mut rows = q.fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(db_err)? {
                let id = id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?;
                let payload = parse_payload_map(row.try_get::<&str, _>(1).map_err(db_err)?, &id)?;
                if filter.as_ref().is_some_and(|f| !f.matches(&payload)) {
                    continue;
                }
                if points.len() == request.limit {
                    next = Some(id);
                    break;
                }
                let vector = if request.with_vectors {
                    let mut v = Vec::with_capacity(found.dim);
                    decode_vector_into(row.try_get::<&[u8], _>(2).map_err(db_err)?, found.dim, &id, &mut v)?;
                    Some(v)
                } else {
                    None
                };
                points.push(StoredPoint { id, payload: payload_from_map(payload, &id)?, vector });
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(ScrollPage { points, next })
    }

    async fn count(&self, name: &IndexName, filter: Option<Filter>) -> Result<u64, IndexError> {
        let filter = effective(filter);
        let mut tx = self.begin_read().await?;
        let found = existing(&mut tx, name).await?;
        let n = match filter {
            None => {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM points WHERE collection_id = ?")
                    .bind(found.id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                u64::try_from(n).unwrap_or(0)
            }
            Some(f) if Rows::for_filter(Some(&f)) == Rows::Nothing => 0,
            Some(f) if Rows::for_filter(Some(&f)) == Rows::All && self.cached(name, &found).is_some() => {
                // Same transaction, so the copy's version label still describes what this read sees.
                self.matching_in_memory(name, &found, &f).await?.map_or(0, |ids| ids.len() as u64)
            }
            Some(f) => {
                let scope = Rows::for_filter(Some(&f));
                let sql = format!("SELECT id, payload FROM {} WHERE collection_id = ?{}", scope.table(), scope.clause());
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(found.id);
                for k in scope.keys() {
                    q = q.bind(k.as_str());
                }
                let mut n = 0u64;
                let mut rows = q.fetch(&mut *tx);
                while let Some(row) = rows.try_next().await.map_err(db_err)? {
                    let id = id_from(row.try_get::<&[u8], _>(0).map_err(db_err)?)?;
                    if f.matches(&parse_payload_map(row.try_get::<&str, _>(1).map_err(db_err)?, &id)?) {
                        n += 1;
                    }
                }
                n
            }
        };
        tx.commit().await.map_err(db_err)?;
        Ok(n)
    }

    async fn search(&self, name: &IndexName, request: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError> {
        let snap = self.snapshot(name).await?;
        if request.vector.len() != snap.dim {
            return Err(dimension_mismatch(snap.dim, request.vector.len()));
        }
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = request.vector;
        if snap.distance == Distance::Cosine {
            kernel::normalise(&mut query);
        }
        let filter = effective(request.filter);
        let limit = request.limit;
        let hits = if snap.len().saturating_mul(snap.dim) < INLINE_SEARCH_FLOATS {
            snap.search(&query, limit, filter.as_ref())
        } else {
            // Scanning a large collection takes milliseconds of CPU: keep it off the async workers.
            let s = Arc::clone(&snap);
            tokio::task::spawn_blocking(move || s.search(&query, limit, filter.as_ref()))
                .await
                .map_err(|e| backend(format!("the search task failed: {e}")))?
        }
        .map_err(|e| backend(format!("index collection {name}: {e}")))?;
        hits.into_iter()
            .map(|h| {
                let payload = serde_json::from_str(snap.payload_json(h.index))
                    .map_err(|e| backend(format!("the payload of point {} is not a colstore payload: {e}", h.id)))?;
                Ok(ScoredPoint { id: h.id, score: h.score, payload })
            })
            .collect()
    }

    async fn flush(&self, name: &IndexName) -> Result<Vec<String>, IndexError> {
        {
            let mut conn = self.inner.pool.acquire().await.map_err(db_err)?;
            existing(&mut conn, name).await?;
        }
        let (busy, log, checkpointed): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.inner.pool).await.map_err(db_err)?;
        let file = self.inner.path.display();
        let step = if busy == 0 {
            format!("checkpointed the write-ahead log of {file} into the database file and truncated it")
        } else {
            format!(
                "checkpointed {checkpointed} of {log} write-ahead log pages of {file}; a reader kept the rest in the log, \
                 which is durable too (synchronous = FULL)"
            )
        };
        Ok(vec![step])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: serde_json::Value) -> Rows {
        let f: Filter = serde_json::from_value(v).unwrap_or_default();
        Rows::for_filter(Some(&f))
    }

    #[test]
    fn a_pinned_key_narrows_the_rows_read() {
        assert_eq!(Rows::for_filter(None), Rows::All);
        assert_eq!(rows(json!({"must": [{"match": {"key": "key", "value": "a.md"}}]})), Rows::Keys(vec!["a.md".into()]));
        assert_eq!(
            rows(json!({"must": [{"match_any": {"key": "key", "any": ["a.md", 3, "b.md"]}}]})),
            Rows::Keys(vec!["a.md".into(), "b.md".into()])
        );
        assert_eq!(rows(json!({"must": [{"match": {"key": "key", "value": 3}}]})), Rows::Nothing, "a key is never a number");
        assert_eq!(rows(json!({"must": [{"match_any": {"key": "key", "any": []}}]})), Rows::Nothing);
        // Only `must` pins: `should`, `must_not`, nested filters and other fields read everything.
        assert_eq!(rows(json!({"should": [{"match": {"key": "key", "value": "a.md"}}]})), Rows::All);
        assert_eq!(rows(json!({"must_not": [{"match": {"key": "key", "value": "a.md"}}]})), Rows::All);
        assert_eq!(rows(json!({"must": [{"nested": {"must": [{"match": {"key": "key", "value": "a.md"}}]}}]})), Rows::All);
        assert_eq!(rows(json!({"must": [{"match": {"key": "metadata.key", "value": "a.md"}}]})), Rows::All);
        let many: Vec<String> = (0..=MAX_INDEXED_KEYS).map(|i| format!("{i}.md")).collect();
        assert_eq!(rows(json!({"must": [{"match_any": {"key": "key", "any": many}}]})), Rows::All, "long lists scan");
        assert_eq!(Rows::Keys(vec!["a".into(), "b".into()]).clause(), " AND json_extract(payload, '$.key') IN (?, ?)");
    }
}
