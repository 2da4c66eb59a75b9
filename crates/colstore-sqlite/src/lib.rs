//! `CollectionRepo` for both storage modes, plus the store's `JobQueue` and `SyncStore` (sync ledger and embedding
//! cache) and, in filesystem mode, the `FileCatalog`, on SQLite through sqlx. One [`SqliteRepo`] implements them all
//! over one connection pool and one `Clock`, so the ledger changes in the same transaction as the documents it
//! describes.
//!
//! The two modes share every line of metadata SQL; only the place of the bytes differs. [`SqliteRepo::open`] keeps
//! content in the database (`blobs`); [`SqliteRepo::open_with_files`] keeps it in plain files through a
//! `DocumentFiles`, with the crash-safe write protocol described in the `files` module.
//!
//! - WAL journal, `synchronous = FULL`, a busy timeout, foreign keys on, incremental auto-vacuum.
//! - Migrations in `migrations/` are embedded in the binary and run on every open.
//! - Every multi-statement write runs in one `BEGIN IMMEDIATE` transaction, so writers queue on the busy timeout
//!   instead of failing half-way, and a crash leaves either the old or the new state.
//! - Content is content-addressed (one blob per SHA-256, shared across collections), reference-counted by triggers,
//!   zstd-compressed when that saves space, and split into 1 MiB parts when large so it streams both ways.
//! - Every write that leaves documents to project (`put_batch` creating or changing documents, `delete_documents`
//!   deleting projected ones, `SyncStore::mark_all_pending`) marks their ledger rows `pending` and enqueues the
//!   collection's sync job — `{kind: "sync", dedup_key: "sync:<collection>", payload: {"collection": "<collection>"},
//!   max_attempts: 10}`, at most one pending — in the same transaction.

mod catalog;
mod catalog_cache;
mod content;
mod convert;
mod files;
mod filter_sql;
mod jobs;
#[cfg(test)]
mod plans;
mod repo;
mod snapshot;
mod stamps;
mod sync;
mod text;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use colstore_domain::ports::{Clock, DocumentFiles, RepoError};

pub use snapshot::SqliteSnapshot;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, migrate::Migrator};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Create the database file (and run migrations) when it does not exist. Without it, the file must exist and
    /// hold a colstore schema: an empty file or another program's database is refused, never turned into a new store.
    pub create: bool,
    /// Open read-only (`mode=ro`): no migrations, no writes; every write fails with `RepoError::ReadOnly`. The
    /// schema must be current. For stores whose files the user may read but not write.
    pub read_only: bool,
    /// How long a writer waits for another writer before failing with `RepoError::Busy`.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { create: false, read_only: false, busy_timeout: Duration::from_secs(30) }
    }
}

/// The SQLite repository. Cloning shares the connection pool.
#[derive(Clone)]
pub struct SqliteRepo {
    pool: SqlitePool,
    /// The job queue's connections: the same database with `synchronous = NORMAL` (see [`SqliteRepo::queue_pool`]).
    queue_pool: SqlitePool,
    clock: Arc<dyn Clock>,
    path: PathBuf,
    /// Filesystem mode: where the documents' bytes live. `None` in sqlite mode.
    files: Option<Arc<dyn DocumentFiles>>,
    /// Staged files of writes in progress in this process, which a recovery must not discard however old they are.
    in_flight: files::InFlight,
    /// Filesystem mode: the snapshots open in this process, which keep the contents writes displace.
    snapshots: files::OpenSnapshots,
    /// Opened with `SqliteOptions::read_only`.
    read_only: bool,
}

impl std::fmt::Debug for SqliteRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRepo").field("path", &self.path).field("filesystem_mode", &self.files.is_some()).finish_non_exhaustive()
    }
}

impl SqliteRepo {
    /// Opens (or with `create`, creates) the database at `path`, in WAL mode, running pending migrations.
    ///
    /// # Errors
    /// `RepoError::ReadOnly` when the file or its folder cannot be written; `Backend` for anything else
    /// (including a missing file without `create`).
    pub async fn open(path: &Path, options: SqliteOptions, clock: Arc<dyn Clock>) -> Result<Self, RepoError> {
        Self::open_pool(path, options, clock, None).await
    }

    /// Opens the database like [`SqliteRepo::open`], in filesystem mode: documents' bytes are the files of `files`,
    /// their metadata stays in the database. Finishes the file writes a crash interrupted (see
    /// [`FileCatalog::recover`](colstore_domain::ports::FileCatalog::recover)); that costs one query when there are
    /// none, and when it fails (a folder that is not mounted, a read-only disk) the store still opens: reads go
    /// through the staged files and the next open tries again.
    ///
    /// # Errors
    /// As [`SqliteRepo::open`].
    pub async fn open_with_files(
        path: &Path,
        options: SqliteOptions,
        clock: Arc<dyn Clock>,
        files: Arc<dyn DocumentFiles>,
    ) -> Result<Self, RepoError> {
        let repo = Self::open_pool(path, options, clock, Some(Arc::clone(&files))).await?;
        if repo.read_only {
            return Ok(repo);
        }
        match repo.finish_intents(&*files, files::Which::All, true).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "finished file writes that a crash interrupted"),
            Err(e) => tracing::warn!(error = %e, "could not finish the file writes that a crash interrupted; will try again"),
        }
        Ok(repo)
    }

    /// Filesystem mode: removes every staged file (`.colstore-tmp-*` in a collection's folder) that no recorded
    /// write names and this process is not writing: the leftovers of writes that were interrupted before their
    /// transaction (Ctrl-C twice, `kill -9`, a crash). Call it only when no other process can be writing (the caller
    /// holds the store lock exclusively); otherwise [`FileCatalog::recover`](colstore_domain::ports::FileCatalog::recover)
    /// removes only those older than an hour. Returns how many went; 0 in sqlite mode.
    ///
    /// # Errors
    /// Database or file-system failures.
    pub async fn discard_staged_leftovers(&self) -> Result<u64, RepoError> {
        match self.files.clone() {
            Some(files) => self.discard_leftovers_older_than(&*files, std::time::Duration::ZERO).await,
            None => Ok(0),
        }
    }

    /// Whether this repository keeps documents in files (filesystem mode) rather than in the database.
    pub fn is_filesystem_mode(&self) -> bool {
        self.files.is_some()
    }

    async fn open_pool(
        path: &Path,
        options: SqliteOptions,
        clock: Arc<dyn Clock>,
        files: Option<Arc<dyn DocumentFiles>>,
    ) -> Result<Self, RepoError> {
        if !options.create && !path.exists() {
            return Err(RepoError::Backend { backend: "sqlite", source: format!("database {} does not exist", path.display()).into() });
        }
        if !options.create {
            check_header(path)?;
            probe_schema(path).await?;
        }
        let read_only = options.read_only && !options.create;
        let connect = SqliteConnectOptions::new().filename(path).create_if_missing(options.create).read_only(read_only);
        // auto_vacuum is chosen when the file is created (later it changes only through a VACUUM), and setting it is
        // a write transaction with two fsyncs even when the value does not change: so only a new database sets it,
        // not every connection of every command (a read-only one could not).
        let new_file = options.create && std::fs::metadata(path).map_or(true, |m| m.len() == 0);
        let connect = if new_file { connect.auto_vacuum(SqliteAutoVacuum::Incremental) } else { connect };
        let connect = connect
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            .pragma("temp_store", "memory")
            // After a checkpoint resets the WAL, shrink it to this size so one large ingest does not leave a WAL
            // as large as its biggest moment behind.
            .pragma("journal_size_limit", "67108864")
            .pragma("cache_size", "-32768");
        let pool_options = || {
            // No ping before each use: a connection to a local file does not go stale, and the ping is a round trip
            // to the connection's worker thread on every statement run on the pool.
            SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(0)
                .test_before_acquire(false)
                .acquire_timeout(options.busy_timeout + Duration::from_secs(5))
        };
        let pool = match pool_options().connect_with(connect.clone()).await {
            Ok(pool) => pool,
            // A WAL database needs its `-shm` file; when the folder is read-only too and there is none, the only way
            // to read it is as an immutable file (nobody can write it either).
            Err(e) if read_only && !wal_has_content(path) => {
                tracing::debug!(error = %e, "opening read-only failed; trying again as an immutable file");
                pool_options().connect_with(connect.clone().immutable(true)).await.map_err(map_err)?
            }
            Err(e) => return Err(map_err(e)),
        };
        if !options.create {
            check_schema(&pool, path).await?;
        }
        if read_only {
            check_version(&pool).await?;
            return Ok(Self::from_pool(pool.clone(), pool, clock, path, files, true));
        }
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => map_err(inner),
            sqlx::migrate::MigrateError::VersionTooNew(v, _) | sqlx::migrate::MigrateError::VersionMissing(v) => RepoError::Backend {
                backend: "sqlite",
                source: format!("the database has schema version {v}, which this colstore does not know; upgrade colstore").into(),
            },
            other => RepoError::Backend { backend: "sqlite", source: Box::new(other) },
        })?;
        // The queue's pool connects on first use: commands that never touch the queue never open it.
        let queue_pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .test_before_acquire(false)
            .acquire_timeout(options.busy_timeout + Duration::from_secs(5))
            .connect_lazy_with(connect.create_if_missing(false).synchronous(SqliteSynchronous::Normal));
        Ok(Self::from_pool(pool, queue_pool, clock, path, files, false))
    }

    fn from_pool(
        pool: SqlitePool,
        queue_pool: SqlitePool,
        clock: Arc<dyn Clock>,
        path: &Path,
        files: Option<Arc<dyn DocumentFiles>>,
        read_only: bool,
    ) -> Self {
        Self {
            pool,
            queue_pool,
            clock,
            path: path.to_owned(),
            files,
            in_flight: files::InFlight::default(),
            snapshots: files::OpenSnapshots::default(),
            read_only,
        }
    }

    /// The store id the database records (`store_meta`), or `None` for a database made before stores had one.
    ///
    /// # Errors
    /// `Backend` when the query fails.
    pub async fn store_id(&self) -> Result<Option<String>, RepoError> {
        sqlx::query_scalar::<_, String>("SELECT value FROM store_meta WHERE key = 'store_id'")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    /// Records the store id. Refuses to replace a different one: a database belongs to one store.
    ///
    /// # Errors
    /// `Backend` when another id is recorded; `ReadOnly` on a read-only database.
    pub async fn set_store_id(&self, id: &str) -> Result<(), RepoError> {
        sqlx::query("INSERT INTO store_meta (key, value) VALUES ('store_id', ?) ON CONFLICT (key) DO NOTHING")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        match self.store_id().await? {
            Some(recorded) if recorded == id => Ok(()),
            other => {
                Err(RepoError::Backend { backend: "sqlite", source: format!("the database records store id {other:?}, not {id}").into() })
            }
        }
    }

    /// Whether this repository was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so writers queue on the busy
    /// timeout instead of failing half-way when they upgrade from reading.
    pub(crate) async fn begin_immediate(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// The connections of transactions that touch only the `jobs` table: `synchronous = NORMAL`, so their commits
    /// do not wait for an fsync. **Invariant** (docs/ARCHITECTURE.md): a commit here survives a process crash
    /// (`kill -9`: the WAL is in the page cache); only a power failure or OS crash may lose the last ones, and a lost
    /// claim or completion only makes an idempotent job run again (PRODUCT §6). Every transaction that changes
    /// documents, the ledger or the cache, including the sync jobs a document write enqueues, goes through the main
    /// pool (`synchronous = FULL`); its fsync of the WAL also makes every queue commit before it durable.
    pub(crate) fn queue_pool(&self) -> &SqlitePool {
        &self.queue_pool
    }

    /// `BEGIN IMMEDIATE` on [`SqliteRepo::queue_pool`].
    pub(crate) async fn begin_queue(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.queue_pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checkpoints the WAL into the main file and closes every connection.
    pub async fn close(&self) {
        self.queue_pool.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await;
        self.pool.close().await;
    }

    /// Writes a consistent, compacted copy of the whole database to `dest` (`VACUUM INTO`), then checks the copy
    /// with `PRAGMA quick_check`. Used for safety copies before destructive commands. Readers and writers may go on
    /// meanwhile; the copy shows one moment.
    ///
    /// # Errors
    /// `Backend` when `dest` exists, cannot be written, or the copy fails its check (the bad copy is removed).
    pub async fn copy_to(&self, dest: &Path) -> Result<(), RepoError> {
        let dest_str =
            dest.to_str().ok_or_else(|| RepoError::Backend { backend: "sqlite", source: "safety copy path is not UTF-8".into() })?;
        sqlx::query("VACUUM INTO ?").bind(dest_str.to_owned()).execute(&self.pool).await.map_err(map_err)?;
        let check = async {
            let opts = SqliteConnectOptions::new().filename(dest).read_only(true);
            let mut conn = sqlx::ConnectOptions::connect(&opts).await?;
            let verdict: String = sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut conn).await?;
            sqlx::Connection::close(conn).await?;
            Ok::<_, sqlx::Error>(verdict)
        };
        match check.await {
            Ok(v) if v == "ok" => Ok(()),
            Ok(v) => {
                let _ = std::fs::remove_file(dest);
                Err(RepoError::Backend { backend: "sqlite", source: format!("the safety copy failed its check: {v}").into() })
            }
            Err(e) => {
                let _ = std::fs::remove_file(dest);
                Err(map_err(e))
            }
        }
    }

    /// The highest applied schema version.
    ///
    /// # Errors
    /// `Backend` when the query fails.
    pub async fn schema_version(&self) -> Result<i64, RepoError> {
        sqlx::query_scalar::<_, i64>("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}

/// Whether the write-ahead log beside `path` holds something: then the database cannot be read as an immutable file
/// (that would ignore the log's committed transactions).
pub(crate) fn wal_has_content(path: &Path) -> bool {
    std::fs::metadata(format!("{}-wal", path.display())).is_ok_and(|m| m.len() > 0)
}

/// Refuses a file that is an SQLite database but not a colstore one (no migrations table): an existing database must
/// already hold the schema, since only `col init` creates one. Run before migrations, which would otherwise turn an
/// empty or foreign database into a new, empty store.
async fn check_schema(pool: &SqlitePool, path: &Path) -> Result<(), RepoError> {
    if has_schema(pool).await? { Ok(()) } else { Err(no_schema(path)) }
}

async fn has_schema(pool: &SqlitePool) -> Result<bool, RepoError> {
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('_sqlx_migrations', 'collections')")
            .fetch_one(pool)
            .await
            .map_err(map_err)?;
    Ok(tables == 2)
}

fn no_schema(path: &Path) -> RepoError {
    RepoError::Backend {
        backend: "sqlite",
        source: format!("{} holds no colstore schema (it is empty, or another program's database)", path.display()).into(),
    }
}

/// Refuses a file that does not start with SQLite's header before SQLite opens it. A database in WAL mode always has
/// its first page in the main file, so a file that is not SQLite's (overwritten, truncated, another program's) is
/// damaged; opening it anyway would let SQLite take the pages of a leftover `-wal` for the database and checkpoint
/// them into the damaged file when it closes, changing what `col restore` moves aside.
fn check_header(path: &Path) -> Result<(), RepoError> {
    use std::io::Read;
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut found = Vec::with_capacity(HEADER.len());
    let read = std::fs::File::open(path).and_then(|f| f.take(HEADER.len() as u64).read_to_end(&mut found));
    match read {
        // Empty files and unreadable ones are reported by the checks that follow, with their own words.
        Err(_) => Ok(()),
        Ok(0) => Ok(()),
        Ok(_) if found == HEADER => Ok(()),
        Ok(_) => Err(RepoError::Backend {
            backend: "sqlite",
            source: format!("{} is not a SQLite database (its first bytes are not SQLite's header)", path.display()).into(),
        }),
    }
}

/// [`check_schema`] on a plain read-only connection, before the pool's connections set their pragmas (which write the
/// header of an empty file). Best effort: when this connection cannot be opened or queried, the pool's open reports
/// why and checks the schema itself.
async fn probe_schema(path: &Path) -> Result<(), RepoError> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let Ok(pool) = SqlitePoolOptions::new().max_connections(1).min_connections(0).connect_with(options).await else { return Ok(()) };
    let found = has_schema(&pool).await;
    pool.close().await;
    if matches!(found, Ok(false)) { Err(no_schema(path)) } else { Ok(()) }
}

/// A read-only open cannot migrate: the schema must be the one this version writes.
async fn check_version(pool: &SqlitePool) -> Result<(), RepoError> {
    let applied: i64 = sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    if applied < known {
        return Err(RepoError::ReadOnly(format!(
            "the database has schema version {applied} and needs an upgrade to {known}, which needs write access; \
             run any command once as a user who may write the store"
        )));
    }
    if applied > known {
        return Err(RepoError::Backend {
            backend: "sqlite",
            source: format!("the database has schema version {applied}, which this colstore does not know; upgrade colstore").into(),
        });
    }
    Ok(())
}

/// Maps sqlx errors to the port's semantic variants.
pub(crate) fn map_err(e: sqlx::Error) -> RepoError {
    if let sqlx::Error::Database(db) = &e
        && let Some(code) = db.code().and_then(|c| c.parse::<i32>().ok())
    {
        // Primary result code is the low byte of the extended code.
        match code & 0xff {
            5 | 6 => return RepoError::Busy(format!("another process is writing ({})", db.message())),
            8 => return RepoError::ReadOnly(db.message().to_owned()),
            14 => return RepoError::ReadOnly(format!("cannot open the database file ({})", db.message())),
            13 => return RepoError::Backend { backend: "sqlite", source: "the disk is full".into() },
            11 | 26 => {
                return RepoError::Backend { backend: "sqlite", source: format!("the database file is corrupt: {}", db.message()).into() };
            }
            _ => {}
        }
    }
    if let sqlx::Error::Io(io) = &e
        && io.kind() == std::io::ErrorKind::PermissionDenied
    {
        return RepoError::ReadOnly(io.to_string());
    }
    RepoError::Backend { backend: "sqlite", source: Box::new(e) }
}
