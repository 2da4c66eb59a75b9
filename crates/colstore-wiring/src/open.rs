//! [`Store`]: an opened store (its directory, effective config and adapters), and [`SystemClock`].
//!
//! This is the one place that turns a config into adapters. Today that is the SQLite repository; the vector index,
//! embedder and backup store join here as their crates arrive.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use colstore_domain::ports::{Clock, CollectionRepo, DocumentFiles, FileCatalog, RepoError};
use colstore_domain::{StoreId, Timestamp};
use colstore_sqlite::{SqliteOptions, SqliteRepo};

use crate::{EnvOverride, StorageMode, StoreConfig, StoreDir, WiringError};

/// The real clock: wall time, never going backwards within the process, and tokio's timer for `sleep`.
///
/// `sleep` needs a tokio runtime with the time driver enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The latest time any `SystemClock` returned in this process, so `now` never goes backwards when the wall clock does.
static LAST_NOW_MS: AtomicI64 = AtomicI64::new(i64::MIN);

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let wall = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(before_epoch) => -i64::try_from(before_epoch.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Timestamp::from_millis(monotonic(&LAST_NOW_MS, wall))
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// `wall`, or the latest value returned before if that is later; records the result.
fn monotonic(last: &AtomicI64, wall: i64) -> i64 {
    last.fetch_max(wall, Ordering::AcqRel).max(wall)
}

/// An opened store: where it is, its effective configuration, and the adapters that configuration selects.
#[derive(Clone)]
pub struct Store {
    dir: StoreDir,
    config: StoreConfig,
    overrides: Vec<EnvOverride>,
    repo: Arc<dyn CollectionRepo>,
    clock: Arc<dyn Clock>,
    /// The same repository as `repo`, for what the port does not cover (closing).
    sqlite: SqliteRepo,
    /// Filesystem mode: the folders holding the documents' files.
    files: Option<Arc<dyn DocumentFiles>>,
    /// The vector indexes: the default and any a collection names.
    indexes: Arc<crate::indexes::StoreIndexes>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

/// What opening decides before any adapter is touched.
#[derive(Debug)]
struct Plan {
    dir: StoreDir,
    config: StoreConfig,
    overrides: Vec<EnvOverride>,
    keys: crate::indexes::ApiKeys,
}

/// Loads the config, applies `env`, and checks that this version can serve it and that the database is there.
fn plan(dir: StoreDir, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, WiringError> {
    let file = StoreConfig::load(&dir.config_path())?;
    let (config, overrides) = file.with_env(env)?;
    refuse_identity_overrides(&dir, &file, &config, &overrides)?;
    check_database_file(&dir.db_path(&config))?;
    let keys = crate::indexes::read_keys(&config.vectors, env);
    Ok(Plan { dir, config, overrides, keys })
}

/// The config keys that say which store this is: an existing store's values come from its `config.toml`, and the
/// environment may choose them only at `col init`. A variable that agrees with the file is fine.
const IDENTITY_KEYS: [&str; 3] = ["storage.mode", "storage.filesystem_path", "storage.metadata_db"];

/// Refuses an environment override of the storage mode, documents folder or database that disagrees with the store's
/// `config.toml` (defect: `COLLECTION_STORAGE_MODE=filesystem` in a shell silently switched a sqlite store's mode,
/// and its writes and `reconcile --force` then lost documents).
fn refuse_identity_overrides(
    dir: &StoreDir,
    file: &StoreConfig,
    effective: &StoreConfig,
    overrides: &[EnvOverride],
) -> Result<(), WiringError> {
    let same_path = |a: &Path, b: &Path| a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    for o in overrides.iter().filter(|o| IDENTITY_KEYS.contains(&o.key)) {
        let store_value = match o.key {
            "storage.mode" if effective.storage.mode != file.storage.mode => file.storage.mode.as_str().to_owned(),
            "storage.metadata_db" if !same_path(&dir.db_path(effective), &dir.db_path(file)) => dir.db_path(file).display().to_string(),
            "storage.filesystem_path" if !same_path(&dir.filesystem_path(effective), &dir.filesystem_path(file)) => {
                dir.filesystem_path(file).display().to_string()
            }
            _ => continue,
        };
        return Err(WiringError::EnvDisagrees {
            var: o.var,
            key: o.key,
            env_value: o.value.clone(),
            store_value,
            config: dir.config_path(),
        });
    }
    Ok(())
}

/// Checks what can be told about the database from the file system alone: it exists, is a file, and is not empty.
/// (SQLite would take an empty file for a new, empty database and `col verify` would report "OK: 0 documents".)
fn check_database_file(db: &Path) -> Result<(), WiringError> {
    let unusable = |problem: &str| WiringError::DatabaseUnusable { path: db.to_owned(), problem: problem.to_owned() };
    match std::fs::metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(WiringError::DatabaseMissing { path: db.to_owned() }),
        Err(e) => Err(WiringError::io(db, e)),
        Ok(m) if m.is_dir() => Err(unusable("is a directory, not a database file")),
        Ok(m) if !m.is_file() => Err(unusable("is not a regular file")),
        Ok(m) if m.len() == 0 => Err(unusable("is empty (0 bytes): it holds none of this store's data")),
        Ok(_) => Ok(()),
    }
}

impl Store {
    /// Opens the store in `dir` with the [`SystemClock`]: loads `config.toml`, applies the environment overrides
    /// (looked up with `env`, see [`StoreConfig::with_env`]) and opens the repository its storage mode selects.
    ///
    /// `env` is only used before the returned future first runs, so the future does not borrow it.
    ///
    /// # Errors
    /// [`WiringError::Config`] or [`WiringError::Env`] for a bad configuration; [`WiringError::DatabaseMissing`];
    /// [`WiringError::Repo`] when the database fails to open.
    pub fn open(dir: StoreDir, env: &dyn Fn(&str) -> Option<String>) -> impl Future<Output = Result<Store, WiringError>> + Send + use<> {
        Self::open_with_clock(dir, env, Arc::new(SystemClock))
    }

    /// The store at `dir` (a project folder), created there first as `col init` creates one (sqlite mode, the
    /// defaults, no environment overrides) when it holds none: where `col restore --to-store` restores into.
    ///
    /// # Errors
    /// As [`init`](crate::init) and [`Store::open`].
    pub async fn open_or_init(dir: &std::path::Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Store, WiringError> {
        let store_dir = match crate::StoreDir::at(dir) {
            Some(d) => d,
            None => {
                std::fs::create_dir_all(dir).map_err(|e| WiringError::io(dir, e))?;
                crate::init(dir, StorageMode::Sqlite, None, None, &|_| None, Arc::new(SystemClock)).await?
            }
        };
        Self::open(store_dir, env).await
    }

    /// Like [`Store::open`], with a given clock (tests use a manual one).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with_clock(
        dir: StoreDir,
        env: &dyn Fn(&str) -> Option<String>,
        clock: Arc<dyn Clock>,
    ) -> impl Future<Output = Result<Store, WiringError>> + Send + use<> {
        // Plan synchronously so the future holds no reference to `env` (which need not be `Sync`).
        let planned = plan(dir, env);
        async move {
            let Plan { dir, config, overrides, keys } = planned?;
            let db = dir.db_path(&config);
            let files = (config.storage.mode == StorageMode::Filesystem).then(|| document_files(&dir, &config));
            // SQLite silently opens a file it may not write read-only, so ask the file system first.
            let writable = std::fs::OpenOptions::new().write(true).open(&db).is_ok();
            let opened = match open_existing(&db, !writable, &clock, files.as_ref()).await {
                // The store's files may be read but not written (a read-only mount, another user's store): open it
                // read-only, as sqlite3 does; reads work and writes fail with a clear "read-only" error.
                Err(RepoError::ReadOnly(why)) if writable => {
                    tracing::debug!(db = %db.display(), why, "the database cannot be written; opening it read-only");
                    open_existing(&db, true, &clock, files.as_ref()).await
                }
                other => other,
            };
            let repo = opened.map_err(|e| unusable(&db, e))?;
            check_identity(&repo, &db, config.store_id).await?;
            if !repo.is_read_only() {
                if files.is_some() {
                    discard_stray_staged_files(&dir, &repo).await;
                }
                free_jobs_of_dead_workers(&repo).await;
            }
            tracing::debug!(store = %dir.root().display(), db = %db.display(), mode = config.storage.mode.as_str(), read_only = repo.is_read_only(), "opened the store");
            let indexes = Arc::new(crate::indexes::StoreIndexes::new(
                config.vectors.clone(),
                keys,
                dir.root().join("index").join("embedded.db"),
                repo.is_read_only(),
                clock.clone(),
            ));
            Ok(Store { dir, config, overrides, repo: Arc::new(repo.clone()), clock, sqlite: repo, files, indexes })
        }
    }

    /// The store's `.colstore` directory.
    pub fn dir(&self) -> &StoreDir {
        &self.dir
    }

    /// The effective configuration (file plus environment overrides).
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The store's vector indexes: its default and any a collection's settings name. Building it sent nothing.
    pub fn indexes(&self) -> Arc<dyn colstore_domain::ports::IndexRouter> {
        self.indexes.clone()
    }

    /// The collection of a remote engine that `source` names (`qdrant://HOST:6333/NAME`, `weaviate://HOST:8080/Class`),
    /// read by `col import` to adopt it. Building it sent nothing.
    ///
    /// # Errors
    /// [`WiringError::Index`] when `source` is not such a URL or its client cannot be built.
    pub fn foreign_collection(&self, source: &str) -> Result<Arc<dyn colstore_domain::ports::ForeignCollection>, WiringError> {
        Ok(self.indexes.foreign(source)?)
    }

    /// The environment overrides that were applied.
    pub fn overrides(&self) -> &[EnvOverride] {
        &self.overrides
    }

    /// Whether the store was opened read-only (its database cannot be written by this user): reads work, writes
    /// fail with a read-only error.
    pub fn is_read_only(&self) -> bool {
        self.sqlite.is_read_only()
    }

    /// The store's identity.
    pub fn store_id(&self) -> StoreId {
        self.config.store_id
    }

    /// The collection repository.
    pub fn repo(&self) -> &Arc<dyn CollectionRepo> {
        &self.repo
    }

    /// The store's full-text index (keyword search; the same database as the repository).
    pub fn text(&self) -> Arc<dyn colstore_domain::ports::TextIndex> {
        Arc::new(self.sqlite.clone())
    }

    /// The storage mode the store was opened in.
    pub fn mode(&self) -> StorageMode {
        self.config.storage.mode
    }

    /// Filesystem mode: the collections' folders. `None` in sqlite mode.
    pub fn files(&self) -> Option<&Arc<dyn DocumentFiles>> {
        self.files.as_ref()
    }

    /// Filesystem mode: what the database records about the files, for reconciliation.
    pub fn catalog(&self) -> Arc<dyn FileCatalog> {
        Arc::new(self.sqlite.clone())
    }

    /// Filesystem mode: the documents' folder and its catalog, as the reconcile use cases take them; `None` in
    /// sqlite mode.
    pub fn file_ports(&self) -> Option<colstore_app::FilePorts> {
        self.files.as_ref().map(|files| colstore_app::FilePorts { files: Arc::clone(files), catalog: self.catalog(), text: self.text() })
    }

    /// Where filesystem-mode documents live (the folder holding one folder per collection).
    pub fn docs_dir(&self) -> std::path::PathBuf {
        self.dir.filesystem_path(&self.config)
    }

    /// The clock every adapter of this store uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The SQLite repository behind [`Store::repo`], for operations outside the port (safety copies).
    pub(crate) fn sqlite(&self) -> &SqliteRepo {
        &self.sqlite
    }

    /// Checkpoints the write-ahead logs of the database and of the embedded index (when this store opened it) and
    /// closes their connections. Call it when the shell is done with the store; the repository and the embedded index
    /// fail every call after it. Closing again does nothing more.
    pub async fn close(&self) {
        self.indexes.close().await;
        self.sqlite.close().await;
    }

    /// Whether the store now lives somewhere other than where it was created (it was copied or moved),
    /// so it may need its own identity (`col fix-config`, PRODUCT §10).
    pub fn is_relocated(&self) -> bool {
        is_relocated(&self.dir, &self.config)
    }
}

fn is_relocated(dir: &StoreDir, config: &StoreConfig) -> bool {
    let recorded = config.store_path.canonicalize().unwrap_or_else(|_| config.store_path.clone());
    recorded != dir.root()
}

/// Filesystem mode: removes the staged files (`.colstore-tmp-*`) that interrupted writes left in the collections'
/// folders (a second Ctrl-C, `kill -9`, a crash), when nobody holds the store lock: every writer holds it, so then no
/// staged file can belong to a live write. Costs one listing of each collection's folder, and only then. Failures are
/// logged; the leftovers wait for the next open.
async fn discard_stray_staged_files(dir: &StoreDir, repo: &SqliteRepo) {
    let Some(_idle) = crate::lock::try_exclusive_now(dir) else { return };
    match repo.discard_staged_leftovers().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(files = n, "removed staged files left by interrupted writes"),
        Err(e) => tracing::warn!(error = %e, "could not remove the staged files left by interrupted writes; will try again"),
    }
}

/// Frees the jobs leased by processes of this host that no longer run (PRODUCT §6: "jobs of a dead process are freed
/// at start"), so they are claimable at once instead of after their lease expires. Worker ids are `host:pid:random`.
async fn free_jobs_of_dead_workers(repo: &SqliteRepo) {
    use colstore_domain::ports::{JobQueue, WorkerId};
    let Ok(workers) = repo.running_workers().await else { return };
    if workers.is_empty() || !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let host = crate::lock::host_name();
    for WorkerId(w) in workers {
        let mut parts = w.splitn(3, ':');
        let (Some(h), Some(pid)) = (parts.next(), parts.next()) else { continue };
        if h != host || pid.parse::<u32>().is_err() || std::path::Path::new("/proc").join(pid).exists() {
            continue;
        }
        if let Ok(n) = repo.release_worker(&WorkerId(w.clone())).await
            && n > 0
        {
            tracing::info!(worker = %w, jobs = n, "freed the jobs of a worker that is no longer running");
        }
    }
}

/// Opens the existing database (never creating it), read-write or read-only, in the store's mode.
async fn open_existing(
    db: &Path,
    read_only: bool,
    clock: &Arc<dyn Clock>,
    files: Option<&Arc<dyn DocumentFiles>>,
) -> Result<SqliteRepo, RepoError> {
    let options = SqliteOptions { create: false, read_only, ..SqliteOptions::default() };
    match files {
        None => SqliteRepo::open(db, options, Arc::clone(clock)).await,
        Some(files) => SqliteRepo::open_with_files(db, options, Arc::clone(clock), Arc::clone(files)).await,
    }
}

/// A database that failed to open is named with what is wrong and how to recover; permission and busy errors keep
/// their own messages.
fn unusable(db: &Path, e: RepoError) -> WiringError {
    match e {
        RepoError::Backend { source, .. } => {
            WiringError::DatabaseUnusable { path: db.to_owned(), problem: format!("cannot be used: {source}") }
        }
        other => WiringError::Repo(other),
    }
}

/// The database must be this store's: the store id it records equals `config.toml`'s. A database from before store
/// ids (no record) is adopted: the id is written on the first open that may write.
async fn check_identity(repo: &SqliteRepo, db: &Path, store_id: StoreId) -> Result<(), WiringError> {
    let ours = store_id.to_string();
    match repo.store_id().await.map_err(|e| unusable(db, e))? {
        Some(recorded) if recorded == ours => Ok(()),
        Some(recorded) => Err(WiringError::ForeignDatabase { path: db.to_owned(), db_id: recorded, config_id: ours }),
        None if repo.is_read_only() => Ok(()),
        None => {
            repo.set_store_id(&ours).await?;
            tracing::info!(db = %db.display(), store_id = %ours, "recorded the store id in a database made before stores had one");
            Ok(())
        }
    }
}

/// Creates the database of a new store at `db` and records `store_id` in it: the one function that creates a store
/// database. `col init` calls it; so may a recovery that has moved a damaged database aside. Every other open uses
/// the existing database and refuses a missing, empty or foreign one.
///
/// # Errors
/// [`WiringError::Io`] when `db` (or its `-wal` file) exists already — a database is never created over another;
/// [`WiringError::Repo`] when SQLite fails.
pub async fn create_database(db: &Path, store_id: StoreId, clock: Arc<dyn Clock>) -> Result<(), WiringError> {
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    for existing in [db, wal.as_path()] {
        if existing.symlink_metadata().is_ok() {
            return Err(WiringError::Io {
                path: existing.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a database file is in the way; move it aside first"),
            });
        }
    }
    let repo = open_sqlite(db, true, clock).await?;
    let stamped = repo.set_store_id(&store_id.to_string()).await;
    repo.close().await;
    stamped.map_err(WiringError::from)
}

/// Opens (or with `create`, creates) the SQLite repository: the one call into `colstore-sqlite`, shared by `init` and `open`.
pub(crate) async fn open_sqlite(path: &Path, create: bool, clock: Arc<dyn Clock>) -> Result<SqliteRepo, RepoError> {
    SqliteRepo::open(path, SqliteOptions { create, ..SqliteOptions::default() }, clock).await
}

/// Opens the database in filesystem mode: content in the files of `files`, metadata in the database.
pub(crate) async fn open_filesystem(
    path: &Path,
    create: bool,
    clock: Arc<dyn Clock>,
    files: Arc<dyn DocumentFiles>,
) -> Result<SqliteRepo, RepoError> {
    SqliteRepo::open_with_files(path, SqliteOptions { create, ..SqliteOptions::default() }, clock, files).await
}

/// The collections' folders of a filesystem-mode store (`[storage] filesystem_path`, default `.colstore/docs`).
pub(crate) fn document_files(dir: &StoreDir, config: &StoreConfig) -> Arc<dyn DocumentFiles> {
    Arc::new(colstore_fs::FsDocumentFiles::new(dir.filesystem_path(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A store directory with a config (and optionally a database file), but no real database: unit tests never open SQLite.
    fn store(mode: StorageMode, with_db: bool) -> (tempfile::TempDir, StoreDir) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join(".colstore");
        fs::create_dir(&root).unwrap();
        let dir = StoreDir::from_root(&root).unwrap();
        let config = StoreConfig::new(StoreId::random(), Timestamp::EPOCH, dir.root().to_owned(), mode);
        config.write(&dir.config_path()).unwrap();
        if with_db {
            fs::write(dir.db_path(&config), b"SQLite format 3\0").unwrap();
        }
        (t, dir)
    }

    #[test]
    fn plan_applies_the_environment() {
        let (_t, dir) = store(StorageMode::Sqlite, true);
        let env = |n: &str| (n == "COLSTORE_BACKUP_REPOSITORY").then(|| "s3://b/p".to_owned());
        let p = plan(dir.clone(), &env).unwrap();
        assert_eq!(p.config.backup.repository, "s3://b/p");
        assert_eq!(p.overrides.len(), 1);
        assert!(!is_relocated(&dir, &p.config));
    }

    #[test]
    fn filesystem_mode_comes_from_file_or_env() {
        let (_t, dir) = store(StorageMode::Filesystem, true);
        assert_eq!(plan(dir, &|_| None).unwrap().config.storage.mode, StorageMode::Filesystem);

        // An agreeing variable is fine; a disagreeing one is refused, naming both values and `col migrate`.
        let (_t, dir) = store(StorageMode::Sqlite, true);
        let agrees = |n: &str| (n == "COLSTORE_STORAGE_MODE").then(|| "SQLite".to_owned());
        assert_eq!(plan(dir.clone(), &agrees).unwrap().config.storage.mode, StorageMode::Sqlite);
        let env = |n: &str| (n == "COLLECTION_STORAGE_MODE").then(|| "filesystem".to_owned());
        let e = plan(dir, &env).unwrap_err();
        let WiringError::EnvDisagrees { var: "COLLECTION_STORAGE_MODE", key: "storage.mode", .. } = &e else { panic!("{e:?}") };
        assert!(e.to_string().contains("\"filesystem\"") && e.to_string().contains("\"sqlite\""), "{e}");
    }

    #[test]
    fn the_environment_cannot_move_the_database_or_the_documents_folder() {
        let (_t, dir) = store(StorageMode::Filesystem, true);
        let same_db = dir.root().join("colstore.db").display().to_string();
        let env = |n: &str| (n == "COLSTORE_METADATA_DB_PATH").then(|| same_db.clone());
        plan(dir.clone(), &env).unwrap();
        let env = |n: &str| (n == "COLLECTION_FILESYSTEM_PATH").then(|| "/elsewhere".to_owned());
        let e = plan(dir.clone(), &env).unwrap_err();
        assert!(matches!(e, WiringError::EnvDisagrees { key: "storage.filesystem_path", .. }), "{e:?}");
    }

    #[test]
    fn an_empty_or_directory_database_is_unusable() {
        let (_t, dir) = store(StorageMode::Sqlite, false);
        let db = dir.root().join("colstore.db");
        fs::write(&db, b"").unwrap();
        let e = plan(dir.clone(), &|_| None).unwrap_err();
        assert!(matches!(&e, WiringError::DatabaseUnusable { problem, .. } if problem.contains("empty")), "{e:?}");
        fs::remove_file(&db).unwrap();
        fs::create_dir(&db).unwrap();
        let e = plan(dir, &|_| None).unwrap_err();
        assert!(matches!(&e, WiringError::DatabaseUnusable { problem, .. } if problem.contains("directory")), "{e:?}");
    }

    #[test]
    fn a_missing_database_is_named() {
        let (_t, dir) = store(StorageMode::Sqlite, false);
        let e = plan(dir.clone(), &|_| None).unwrap_err();
        let WiringError::DatabaseMissing { path } = &e else { panic!("{e:?}") };
        assert_eq!(path, &dir.root().join("colstore.db"));

        let env = |n: &str| (n == "COLSTORE_METADATA_DB_PATH").then(|| "/nowhere/x.db".to_owned());
        let e = plan(dir, &env).unwrap_err();
        assert!(matches!(e, WiringError::EnvDisagrees { .. }), "{e:?}");
        assert!(e.to_string().contains("/nowhere/x.db"), "{e}");
    }

    #[test]
    fn config_and_env_errors_surface_before_any_adapter() {
        let (_t, dir) = store(StorageMode::Sqlite, true);
        let env = |n: &str| (n == "COLSTORE_VECTOR_BACKEND").then(|| "pinecone".to_owned());
        assert!(matches!(plan(dir.clone(), &env), Err(WiringError::Env { var: "COLSTORE_VECTOR_BACKEND", .. })));
        fs::write(dir.config_path(), "format = 2\n").unwrap();
        assert!(matches!(plan(dir, &|_| None), Err(WiringError::Config { line: 1, .. })));
    }

    #[test]
    fn a_moved_store_is_detected() {
        let (t, dir) = store(StorageMode::Sqlite, true);
        let moved = t.path().join("moved");
        fs::create_dir(&moved).unwrap();
        fs::rename(dir.root(), moved.join(".colstore")).unwrap();
        let dir = StoreDir::at(&moved).unwrap();
        let p = plan(dir.clone(), &|_| None).unwrap();
        assert!(is_relocated(&dir, &p.config));
    }

    #[test]
    fn the_open_future_is_send_and_does_not_borrow_env() {
        fn assert_send<T: Send + 'static>(_: &T) {}
        let (_t, dir) = store(StorageMode::Filesystem, true);
        let fut = {
            let local = String::from("not sqlite");
            let env = |_: &str| Some(local.clone());
            Store::open(dir, &env)
        };
        assert_send(&fut);
        // The plan failed (bad COLSTORE_* values), so awaiting never reaches SQLite.
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(matches!(rt.block_on(fut), Err(WiringError::Env { .. })));
    }

    #[test]
    fn system_clock_never_goes_backwards() {
        let c = SystemClock;
        let mut last = c.now();
        for _ in 0..1000 {
            let now = c.now();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn a_wall_clock_stepping_back_is_clamped() {
        let last = AtomicI64::new(i64::MIN);
        assert_eq!(monotonic(&last, 1_000), 1_000);
        assert_eq!(monotonic(&last, 400), 1_000, "the wall clock stepped back");
        assert_eq!(monotonic(&last, 1_001), 1_001);
    }

    #[tokio::test(start_paused = true)]
    async fn system_clock_sleeps_on_tokio_time() {
        let start = tokio::time::Instant::now();
        SystemClock.sleep(Duration::from_secs(3600)).await;
        assert!(start.elapsed() >= Duration::from_secs(3600));
    }
}
