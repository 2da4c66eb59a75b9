//! The index itself: the handle, its database, and its in-memory copies (loading, applying writes, snapshot
//! files). The port's methods are in `port.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use colstore_domain::ports::IndexError;
use colstore_domain::{Distance, Filter, IndexName, PointId};
use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};

use crate::codec::{backend, db_err, decode_vector_into, id_bytes, id_from};
use crate::sidecar;
use crate::snapshot::{self, Snapshot};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The adapter's name in errors and health reports.
pub(crate) const BACKEND: &str = "embedded";

/// Points per multi-row statement (4 bound parameters each, well under SQLite's 32 766).
pub(crate) const ROWS_PER_STATEMENT: usize = 256;

/// Searches over fewer floats than this run on the calling task; larger ones move to the blocking pool.
pub(crate) const INLINE_SEARCH_FLOATS: usize = 1 << 16;

/// Most keys a `key in [...]` filter is answered with from the key index; longer lists scan the collection.
pub(crate) const MAX_INDEXED_KEYS: usize = 256;

/// How long a writer waits for another writer (another process, or another connection of this one).
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Collections of fewer `f32` than this (256 KiB of vectors) get no snapshot file: the database loads them in about a
/// millisecond, less than writing and syncing a file costs.
pub(crate) const PERSIST_MIN_FLOATS: usize = 1 << 16;

/// The in-process vector index. Cloning shares the database pool and the in-memory copies.
#[derive(Clone)]
pub struct EmbeddedIndex {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: SqlitePool,
    pub(crate) path: PathBuf,
    /// The folder of the snapshot files (see [`sidecar`]).
    pub(crate) sidecars: PathBuf,
    pub(crate) stats: Stats,
    /// In-memory copies of collections, by name. The mutex is never held across an `.await`.
    pub(crate) cache: Mutex<HashMap<IndexName, Arc<Snapshot>>>,
    /// Serialises loads, so concurrent searches of a cold collection load it once.
    pub(crate) loading: tokio::sync::Mutex<()>,
}

/// Counters behind [`LoadStats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) from_database: AtomicU64,
    pub(crate) from_snapshot_file: AtomicU64,
    pub(crate) files_rejected: AtomicU64,
    pub(crate) files_written: AtomicU64,
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
pub(crate) struct Info {
    pub(crate) id: i64,
    pub(crate) dim: usize,
    pub(crate) distance: Distance,
    pub(crate) version: i64,
    /// Random, replaced by every write: with `id` and `version`, the label a snapshot file must carry.
    pub(crate) stamp: i64,
}

impl Info {
    pub(crate) fn label(&self) -> sidecar::Label {
        sidecar::Label { collection_id: self.id, version: self.version, stamp: self.stamp, dim: self.dim, distance: self.distance }
    }
}

/// A point ready to write: vector as stored (normalised for cosine), payload as JSON.
pub(crate) struct Prepared {
    pub(crate) id: PointId,
    pub(crate) vector: Vec<f32>,
    pub(crate) payload: Map<String, Value>,
    pub(crate) payload_json: String,
}

/// One change to apply to an in-memory copy after it was committed.
pub(crate) enum Change {
    Upsert(Vec<Prepared>),
    Delete(Vec<PointId>),
}

pub(crate) async fn info(conn: &mut SqliteConnection, name: &IndexName) -> Result<Option<Info>, IndexError> {
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

pub(crate) async fn existing(conn: &mut SqliteConnection, name: &IndexName) -> Result<Info, IndexError> {
    info(conn, name).await?.ok_or_else(|| IndexError::CollectionNotFound(name.clone()))
}

/// Bumps the collection's version (and draws a new stamp) inside the write's transaction and returns the new version.
pub(crate) async fn bump(conn: &mut SqliteConnection, collection_id: i64) -> Result<i64, IndexError> {
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

    pub(crate) async fn open_with(path: &Path, read_only: bool) -> Result<EmbeddedIndex, IndexError> {
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

    pub(crate) fn from_pool(pool: SqlitePool, path: &Path) -> EmbeddedIndex {
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

    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<IndexName, Arc<Snapshot>>> {
        self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, IndexError> {
        self.inner.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
    }

    pub(crate) async fn begin_read(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, IndexError> {
        self.inner.pool.begin().await.map_err(db_err)
    }

    /// The in-memory copy of `name`, as the database holds it now: reused when its label matches the collection's
    /// current (id, version), loaded otherwise.
    pub(crate) async fn snapshot(&self, name: &IndexName) -> Result<Arc<Snapshot>, IndexError> {
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
    pub(crate) async fn read_sidecar(&self, name: &IndexName, current: &Info) -> Result<Result<Snapshot, sidecar::Rejected>, IndexError> {
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
    pub(crate) async fn persist(&self, name: &IndexName, snap: Arc<Snapshot>, stamp: i64, replace: bool) {
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
    pub(crate) async fn collection_ids(&self) -> Result<(Vec<i64>, i64), IndexError> {
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

    pub(crate) fn cached(&self, name: &IndexName, current: &Info) -> Option<Arc<Snapshot>> {
        self.cache().get(name).filter(|s| s.collection_id == current.id && s.version == current.version).cloned()
    }

    /// Reads a whole collection in one read transaction, so the copy and its version label agree; returns the
    /// collection's row as that transaction saw it too.
    pub(crate) async fn load(&self, name: &IndexName) -> Result<(Snapshot, Info), IndexError> {
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
    pub(crate) fn offer(&self, name: &IndexName, snap: Arc<Snapshot>) {
        let mut cache = self.cache();
        let newer = cache.get(name).is_some_and(|c| (c.collection_id, c.version) >= (snap.collection_id, snap.version));
        if !newer {
            cache.insert(name.clone(), snap);
        }
    }

    /// Applies a committed write to the in-memory copy when the copy showed exactly the state before it
    /// (`version - 1`); otherwise drops the copy, and the next search reloads it.
    pub(crate) fn apply(&self, name: &IndexName, collection_id: i64, version: i64, change: Change) {
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
    pub(crate) async fn matching_in_memory(
        &self,
        name: &IndexName,
        found: &Info,
        filter: &Filter,
    ) -> Result<Option<Vec<PointId>>, IndexError> {
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
    pub(crate) async fn delete_ids(tx: &mut SqliteConnection, collection_id: i64, ids: &[PointId]) -> Result<Vec<PointId>, IndexError> {
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
