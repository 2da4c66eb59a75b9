//! `col init`: creating a store — `DIR/.colstore/`, its `config.toml` and its database — all or nothing.

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use colstore_domain::StoreId;
use colstore_domain::ports::Clock;

use crate::discover::{CONFIG_FILE, STORE_DIR_NAME};
use crate::{StorageMode, StoreConfig, StoreDir, VectorsConfig, WiringError};
use colstore_durable::sync_dir;

/// Creates a store in `dir` (created if missing): `dir/.colstore/`, `config.toml` (written atomically) and the database.
/// In filesystem mode also the documents' folder: `docs_dir` (any folder, for example an existing notes folder; it
/// holds one folder per collection) or by default `.colstore/docs`.
///
/// `env` is looked up like at every open (see [`StoreConfig::with_env`]), and what it sets is written into the new
/// config, so `COLSTORE_METADATA_DB_PATH` (or the seed's `COLLECTION_METADATA_DB_PATH`) and
/// `COLSTORE_FILESYSTEM_PATH` choose where the database and the documents go. `mode` and `docs_dir` win over `env`.
///
/// Nothing is left behind on failure, or when the returned future is dropped before it completes: whatever init
/// created (directories, config, database files) is removed again. A directory that already held an empty
/// `.colstore/` keeps it. Stores may nest (a store inside another store's project is fine).
///
/// # Errors
/// - [`WiringError::AlreadyInitialised`] when `dir/.colstore/config.toml` exists;
/// - [`WiringError::NotEmpty`] when `dir/.colstore/` exists with other content;
/// - [`WiringError::ReadOnly`] when `dir` (or the folder it should be created in) cannot be written;
/// - [`WiringError::Repo`] when the database cannot be created; [`WiringError::Io`] otherwise.
pub async fn init(
    dir: &Path,
    mode: StorageMode,
    docs_dir: Option<&Path>,
    vectors: Option<VectorsConfig>,
    env: &dyn Fn(&str) -> Option<String>,
    clock: Arc<dyn Clock>,
) -> Result<StoreDir, WiringError> {
    // Validate the environment before anything is created.
    let from_env = StoreConfig::new(StoreId::random(), clock.now(), PathBuf::new(), mode).with_env(env)?.0.storage;
    let docs_dir = docs_dir.map(Path::to_owned).or(from_env.filesystem_path);
    init_with(dir, mode, docs_dir.as_deref(), Some(from_env.metadata_db), vectors, clock, |db, store_id, clock| async move {
        crate::open::create_database(&db, store_id, clock).await
    })
    .await
}

/// [`init`] with the database creation injected, so unit tests never open SQLite.
async fn init_with<F, Fut>(
    dir: &Path,
    mode: StorageMode,
    docs_dir: Option<&Path>,
    metadata_db: Option<PathBuf>,
    vectors: Option<VectorsConfig>,
    clock: Arc<dyn Clock>,
    create_db: F,
) -> Result<StoreDir, WiringError>
where
    F: FnOnce(PathBuf, StoreId, Arc<dyn Clock>) -> Fut,
    Fut: Future<Output = Result<(), WiringError>>,
{
    let docs_dir = match docs_dir {
        Some(d) => {
            Some(std::path::absolute(d).map_err(|source| WiringError::Io { path: d.to_owned(), source })?.components().collect::<PathBuf>())
        }
        None => None,
    };
    if let Some(d) = &docs_dir
        && d.exists()
        && !d.is_dir()
    {
        return Err(WiringError::Io { path: d.clone(), source: std::io::Error::other("the documents folder is not a directory") });
    }
    let dir: PathBuf = std::path::absolute(dir).map_err(|source| WiringError::Io { path: dir.to_owned(), source })?.components().collect();
    let root = dir.join(STORE_DIR_NAME);
    if root.join(CONFIG_FILE).exists() {
        return Err(WiringError::AlreadyInitialised { path: root.canonicalize().unwrap_or(root) });
    }

    let mut undo = Undo::default();
    undo.dirs = create_missing_dirs(&dir)?;
    match fs::create_dir(&root) {
        Ok(()) => undo.root = Some((root.clone(), true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && is_empty_dir(&root) => undo.root = Some((root.clone(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(if root.join(CONFIG_FILE).exists() {
                WiringError::AlreadyInitialised { path: root }
            } else if root.is_dir() {
                WiringError::NotEmpty { path: root }
            } else {
                WiringError::Io { path: root, source: e }
            });
        }
        Err(e) => return Err(WiringError::io(&dir, e)),
    }

    let store = StoreDir::from_root(&root).map_err(|e| WiringError::io(&root, e))?;
    let mut config = StoreConfig::new(StoreId::random(), clock.now(), store.root().to_owned(), mode);
    if let Some(db) = metadata_db {
        config.storage.metadata_db = db;
    }
    if let Some(vectors) = vectors {
        config.vectors = vectors;
    }
    if mode == StorageMode::Filesystem {
        config.storage.filesystem_path = docs_dir;
        let docs = store.filesystem_path(&config);
        undo.docs = create_missing_dirs(&docs)?;
    }
    config.write(&store.config_path())?;
    create_db(store.db_path(&config), config.store_id, clock).await?;
    // Make the new entries durable: the database files in .colstore, and .colstore in its parent.
    sync_dir(store.root()).map_err(|e| WiringError::io(store.root(), e))?;
    sync_dir(&dir).map_err(|e| WiringError::io(&dir, e))?;

    undo.disarm();
    tracing::info!(store = %store.root().display(), store_id = %config.store_id, "created a store");
    Ok(store)
}

/// Creates `dir` and its missing parents; returns the directories it created, outermost first.
fn create_missing_dirs(dir: &Path) -> Result<Vec<PathBuf>, WiringError> {
    let mut missing: Vec<PathBuf> = dir.ancestors().take_while(|a| !a.exists()).map(Path::to_owned).collect();
    missing.reverse();
    if let Some(outermost) = missing.first() {
        // The deepest existing directory is the one that has to accept the new entry.
        let parent = outermost.parent().unwrap_or(outermost);
        fs::create_dir_all(dir).map_err(|e| WiringError::io(parent, e))?;
    } else if !dir.is_dir() {
        return Err(WiringError::Io { path: dir.to_owned(), source: std::io::Error::other("not a directory") });
    }
    Ok(missing)
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

/// What init created, removed again on drop unless disarmed: a failed or cancelled init leaves no half store.
#[derive(Default)]
struct Undo {
    /// Directories created for `dir`, outermost first.
    dirs: Vec<PathBuf>,
    /// Directories created for the documents' folder (filesystem mode), outermost first.
    docs: Vec<PathBuf>,
    /// The `.colstore` directory, and whether init created it (false: it existed empty, so only its content goes).
    root: Option<(PathBuf, bool)>,
    disarmed: bool,
}

impl Undo {
    fn disarm(&mut self) {
        self.disarmed = true;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.disarmed {
            return;
        }
        let warn = |path: &Path, e: std::io::Error| {
            tracing::warn!(path = %path.display(), error = %e, "could not remove what a failed init created");
        };
        for dir in self.docs.iter().rev() {
            fs::remove_dir(dir).unwrap_or_else(|e| warn(dir, e));
        }
        match &self.root {
            Some((root, true)) => fs::remove_dir_all(root).unwrap_or_else(|e| warn(root, e)),
            Some((root, false)) => {
                for entry in fs::read_dir(root).into_iter().flatten().flatten() {
                    let p = entry.path();
                    let r = if entry.file_type().is_ok_and(|t| t.is_dir()) { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                    r.unwrap_or_else(|e| warn(&p, e));
                }
            }
            None => {}
        }
        for dir in self.dirs.iter().rev() {
            // Only empty ones: anything that appeared meanwhile is not ours to delete.
            fs::remove_dir(dir).unwrap_or_else(|e| warn(dir, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use colstore_domain::Timestamp;
    use std::time::Duration;

    struct FixedClock;

    #[async_trait]
    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            Timestamp::from_millis(1_704_067_200_000)
        }
        async fn sleep(&self, _: Duration) {}
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(FixedClock)
    }

    /// Stands in for SQLite: writes the database file.
    async fn fake_db(db: PathBuf, _: StoreId, _: Arc<dyn Clock>) -> Result<(), WiringError> {
        fs::write(&db, b"db").map_err(|e| WiringError::io(db, e))
    }

    async fn failing_db(db: PathBuf, _: StoreId, _: Arc<dyn Clock>) -> Result<(), WiringError> {
        fs::write(&db, b"half").unwrap();
        fs::write(db.with_extension("db-wal"), b"half").unwrap();
        Err(WiringError::Repo(colstore_domain::ports::RepoError::Busy("the disk caught fire".into())))
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = walk(dir).into_iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
        v.sort();
        v
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
        out
    }

    #[tokio::test]
    async fn creates_missing_dirs_config_and_database() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b/proj");
        let store = init_with(&dir, StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap();
        let root = dir.canonicalize().unwrap().join(".colstore");
        assert_eq!(store.root(), root);
        assert_eq!(listing(&root), ["colstore.db", "config.toml"]);

        let config = StoreConfig::load(&store.config_path()).unwrap();
        assert_eq!(config.store_path, root);
        assert_eq!(config.created_at, FixedClock.now());
        assert_eq!(config.storage.mode, StorageMode::Sqlite);
        assert_eq!(StoreDir::at(&dir), Some(store.clone()));

        let e = init_with(&dir, StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap_err();
        assert!(matches!(&e, WiringError::AlreadyInitialised { path } if *path == root), "{e:?}");
        assert!(e.to_string().contains("already a colstore store"));
        assert_eq!(StoreConfig::load(&store.config_path()).unwrap(), config, "the existing store is untouched");
    }

    #[tokio::test]
    async fn two_stores_get_different_ids_and_may_nest() {
        let t = tempfile::tempdir().unwrap();
        let outer = init_with(t.path(), StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap();
        let inner = init_with(&t.path().join("sub"), StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap();
        let id = |s: &StoreDir| StoreConfig::load(&s.config_path()).unwrap().store_id;
        assert_ne!(id(&outer), id(&inner));
    }

    #[tokio::test]
    async fn filesystem_mode_creates_the_documents_folder() {
        let t = tempfile::tempdir().unwrap();
        let store = init_with(&t.path().join("proj"), StorageMode::Filesystem, None, None, None, clock(), fake_db).await.unwrap();
        assert!(store.root().join("docs").is_dir());
        let config = StoreConfig::load(&store.config_path()).unwrap();
        assert_eq!(config.storage.mode, StorageMode::Filesystem);
        assert_eq!(config.storage.filesystem_path, None);

        // A given folder is recorded as an absolute path and created when missing.
        let notes = t.path().join("notes/all");
        let store = init_with(&t.path().join("p2"), StorageMode::Filesystem, Some(&notes), None, None, clock(), fake_db).await.unwrap();
        assert!(notes.is_dir());
        assert_eq!(StoreConfig::load(&store.config_path()).unwrap().storage.filesystem_path, Some(notes.clone()));
    }

    #[tokio::test]
    async fn a_failed_filesystem_init_removes_the_folders_it_created() {
        let t = tempfile::tempdir().unwrap();
        let notes = t.path().join("notes/all");
        init_with(&t.path().join("p"), StorageMode::Filesystem, Some(&notes), None, None, clock(), failing_db).await.unwrap_err();
        assert!(!t.path().join("notes").exists());
        assert!(!t.path().join("p").exists());
    }

    #[tokio::test]
    async fn a_failed_database_leaves_no_half_store() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("keep.txt"), b"mine").unwrap();
        let e = init_with(t.path(), StorageMode::Sqlite, None, None, None, clock(), failing_db).await.unwrap_err();
        assert!(e.to_string().contains("caught fire"), "{e}");
        assert_eq!(listing(t.path()), ["keep.txt"]);

        let dir = t.path().join("new/proj");
        init_with(&dir, StorageMode::Sqlite, None, None, None, clock(), failing_db).await.unwrap_err();
        assert_eq!(listing(t.path()), ["keep.txt"], "the directories init created are gone too");
    }

    #[tokio::test]
    async fn an_existing_empty_colstore_dir_is_used_and_kept() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join(".colstore")).unwrap();
        init_with(t.path(), StorageMode::Sqlite, None, None, None, clock(), failing_db).await.unwrap_err();
        assert_eq!(listing(t.path()), [".colstore"], "emptied, not removed");
        init_with(t.path(), StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap();
        assert_eq!(listing(t.path()), [".colstore", ".colstore/colstore.db", ".colstore/config.toml"]);
    }

    #[tokio::test]
    async fn a_non_empty_colstore_dir_without_config_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join(".colstore")).unwrap();
        fs::write(t.path().join(".colstore/colstore.db"), b"precious").unwrap();
        let e = init_with(t.path(), StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap_err();
        assert!(matches!(e, WiringError::NotEmpty { .. }), "{e:?}");
        assert_eq!(fs::read(t.path().join(".colstore/colstore.db")).unwrap(), b"precious");
    }

    #[tokio::test]
    async fn a_file_in_the_way_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file");
        fs::write(&file, b"x").unwrap();
        let e = init_with(&file, StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap_err();
        assert!(matches!(e, WiringError::Io { .. }), "{e:?}");
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_init_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("proj");
        let never = |_: PathBuf, _: StoreId, _: Arc<dyn Clock>| std::future::pending::<Result<(), WiringError>>();
        let r = tokio::time::timeout(Duration::from_secs(1), init_with(&dir, StorageMode::Sqlite, None, None, None, clock(), never)).await;
        assert!(r.is_err(), "the database step never finished");
        assert!(!dir.exists());
    }

    /// Makes a directory unwritable (mode 0o555) for the test's life; the caller is not root (see
    /// `as_unprivileged_test`), so the mode holds.
    #[cfg(unix)]
    struct Unwritable(PathBuf);

    #[cfg(unix)]
    impl Unwritable {
        fn new(dir: &Path) -> Self {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
            assert!(fs::create_dir(dir.join("probe")).is_err(), "mode 0o555 must keep this user out of {}", dir.display());
            Self(dir.to_owned())
        }
    }

    #[cfg(unix)]
    impl Drop for Unwritable {
        fn drop(&mut self) {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_read_only_directory_is_reported_as_such() {
        use colstore_testkit::need::{Unprivileged, as_unprivileged_test};
        if as_unprivileged_test() != Unprivileged::Here {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let ro = t.path().join("ro");
        fs::create_dir(&ro).unwrap();
        let _unwritable = Unwritable::new(&ro);
        for dir in [ro.clone(), ro.join("sub/proj")] {
            let e = init_with(&dir, StorageMode::Sqlite, None, None, None, clock(), fake_db).await.unwrap_err();
            let WiringError::ReadOnly { path } = &e else { panic!("{e:?}") };
            assert_eq!(path, &ro);
            assert!(e.to_string().contains("permission denied"), "{e}");
        }
    }
}
