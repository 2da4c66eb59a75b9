//! Safety copies: a verified copy of the database taken before a destructive command; and the way out of a damaged
//! database, which is set aside (never deleted) before a fresh one is created.
//!
//! Until backups (PRODUCT §7) land, destructive commands (`col rm`, `col collection delete`) copy the database to
//! `.colstore/safety/<time>-<reason>.db` with `VACUUM INTO`, check the copy, and keep the newest
//! [`SAFETY_COPIES_KEPT`].
//!
//! A store whose database is missing or cannot be opened ([`Store::open_or_damaged`] → [`DamagedStore`]) is
//! recovered by `col restore`: [`DamagedStore::recreate`] moves the database and its `-wal`, `-shm` and `-journal`
//! files to `.colstore/damaged-<time>/`, creates a fresh database exactly as `col init` does, and opens the store.
//! In filesystem mode the documents' files stay where they are (the restore rewrites what differs).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use colstore_app::backup::{BackupEvent, BackupOptions, LockOwner, create_backup};
use colstore_domain::CollectionName;
use colstore_domain::ports::{Clock, RepoError, SafetyCopy, SafetyError, SafetyNet};
use colstore_durable::sync_dir;

use crate::{StorageMode, Store, StoreBackups, StoreDir, StoreLock, WiringError, lock_holder, lock_holder_is_dead};

/// How many safety copies are kept; older ones are removed after a new one is verified.
pub const SAFETY_COPIES_KEPT: usize = 5;

impl Store {
    /// The folder holding safety copies.
    pub fn safety_dir(&self) -> PathBuf {
        self.dir().root().join("safety")
    }

    /// Takes a verified copy of the database before a destructive command and returns its path.
    ///
    /// # Errors
    /// [`WiringError::ReadOnly`] or [`WiringError::Io`] when the safety folder cannot be written;
    /// [`WiringError::Repo`] when the copy fails or does not check out (then nothing destructive may follow).
    pub async fn safety_copy(&self, reason: &str) -> Result<PathBuf, WiringError> {
        let dir = self.safety_dir();
        std::fs::create_dir_all(&dir).map_err(|e| WiringError::io(&dir, e))?;
        let stamp: String = self.clock().now().to_string().chars().filter(char::is_ascii_alphanumeric).collect();
        let reason: String = reason.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(60).collect();
        let dest = dir.join(format!("{stamp}-{}-{reason}.db", std::process::id()));
        self.sqlite().copy_to(&dest).await?;
        prune(&dir);
        tracing::info!(path = %dest.display(), "took a safety copy of the database");
        Ok(dest)
    }
}

/// The store's [`SafetyNet`]: [`keep`](SafetyNet::keep) takes a verified copy of the database in sqlite mode (it holds
/// the contents too) and a backup of the collections in filesystem mode (the files are the content, which a copy of
/// the database would not hold); [`backup`](SafetyNet::backup) always backs up into the configured repository. A
/// backup is tagged `safety-<operation>`; a copy is named after the operation and, for one collection, the collection.
pub struct StoreSafetyNet<'a> {
    store: &'a Store,
    on_event: &'a (dyn Fn(BackupEvent) + Sync),
}

impl Store {
    /// This store's [`SafetyNet`]; a backup's progress goes to `on_event`.
    pub fn safety_net<'a>(&'a self, on_event: &'a (dyn Fn(BackupEvent) + Sync)) -> StoreSafetyNet<'a> {
        StoreSafetyNet { store: self, on_event }
    }
}

fn safety_err(e: impl std::error::Error + Send + Sync + 'static) -> SafetyError {
    SafetyError(Box::new(e))
}

#[async_trait]
impl SafetyNet for StoreSafetyNet<'_> {
    async fn keep(&self, collections: &[CollectionName], operation: &str) -> Result<SafetyCopy, SafetyError> {
        if self.store.mode() == StorageMode::Filesystem {
            return self.backup(collections, operation).await;
        }
        let reason = match collections {
            [one] => format!("{operation}-{one}"),
            _ => operation.to_owned(),
        };
        let path = self.store.safety_copy(&reason).await.map_err(safety_err)?;
        Ok(SafetyCopy::Database(path.display().to_string()))
    }

    async fn backup(&self, collections: &[CollectionName], operation: &str) -> Result<SafetyCopy, SafetyError> {
        let repo = self.store.backup_store(None).map_err(safety_err)?;
        let identity = self.store.identity();
        let opts = BackupOptions {
            collections: collections.to_vec(),
            schema_only: false,
            tags: vec![format!("safety-{operation}")],
            dry_run: false,
            store_id: identity.id,
            store_path: Some(identity.path.display().to_string()),
            schema_version: self.store.schema_version().await,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let owner = LockOwner { holder: lock_holder(), is_dead: Arc::new(lock_holder_is_dead) };
        let report =
            create_backup(&**self.store.repo(), repo, &**self.store.clock(), &owner, &opts, self.on_event).await.map_err(safety_err)?;
        Ok(SafetyCopy::Backup(report.id.unwrap_or_default()))
    }

    async fn copy_database(&self, operation: &str) -> Result<SafetyCopy, SafetyError> {
        let path = self.store.safety_copy(operation).await.map_err(safety_err)?;
        Ok(SafetyCopy::Database(path.display().to_string()))
    }
}

/// Keeps the newest copies (names start with a sortable timestamp).
fn prune(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut copies: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "db")).collect();
    copies.sort();
    let excess = copies.len().saturating_sub(SAFETY_COPIES_KEPT);
    for old in &copies[..excess] {
        let _ = std::fs::remove_file(old);
    }
}

/// A store whose database is missing or cannot be opened; its config was read, so its backups can be found.
pub struct DamagedStore {
    /// The store's directory, config and identity.
    pub backups: StoreBackups,
    /// Why the database could not be opened.
    pub reason: WiringError,
}

impl std::fmt::Debug for DamagedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DamagedStore").field("dir", &self.backups.dir).field("reason", &self.reason).finish_non_exhaustive()
    }
}

/// What [`DamagedStore::recreate`] did.
#[derive(Debug)]
pub struct Recreated {
    /// The store, opened on its fresh, empty database.
    pub store: Store,
    /// Where the damaged files were moved (`.colstore/damaged-<time>/`); `None` when there was nothing to move.
    pub aside: Option<PathBuf>,
    /// The files moved there (their new paths).
    pub moved: Vec<PathBuf>,
}

impl WiringError {
    /// Whether this error from opening a store means its database is missing or damaged (empty, a directory, not a
    /// colstore database, corrupt, another store's), as opposed to a bad config, a busy or read-only store: the cases
    /// `col restore` recovers from, moving the files aside.
    pub fn is_damaged_database(&self) -> bool {
        matches!(
            self,
            Self::DatabaseMissing { .. }
                | Self::DatabaseUnusable { .. }
                | Self::ForeignDatabase { .. }
                | Self::Repo(RepoError::Backend { .. } | RepoError::Corrupt { .. })
        )
    }
}

impl Store {
    /// Opens the store in `dir`, or when its database is missing or damaged ([`WiringError::is_damaged_database`]),
    /// returns a [`DamagedStore`] instead of failing, so the store can be restored from its backups.
    ///
    /// # Errors
    /// As [`Store::open`], except for a damaged database.
    pub fn open_or_damaged(
        dir: StoreDir,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> impl Future<Output = Result<Result<Store, DamagedStore>, WiringError>> + Send + use<> {
        let found = StoreBackups::find(dir.clone(), env);
        let opening = Store::open(dir, env);
        async move {
            let backups = found?;
            match opening.await {
                Ok(store) => Ok(Ok(store)),
                Err(reason) if reason.is_damaged_database() => Ok(Err(DamagedStore { backups, reason })),
                Err(e) => Err(e),
            }
        }
    }
}

impl DamagedStore {
    /// The database file the config names.
    pub fn database(&self) -> PathBuf {
        self.backups.dir.db_path(&self.backups.config)
    }

    /// The database's files that exist: the database, and its `-wal`, `-shm` and `-journal` files.
    pub fn files(&self) -> Vec<PathBuf> {
        let db = self.database();
        let mut out = vec![db.clone()];
        out.extend(["-wal", "-shm", "-journal"].iter().map(|s| sibling(&db, s)));
        out.retain(|p| p.symlink_metadata().is_ok());
        out
    }

    /// Where [`DamagedStore::recreate`] moves the damaged files at `now`: `.colstore/damaged-<time>/`.
    pub fn aside_dir(&self, now: colstore_domain::Timestamp) -> PathBuf {
        let stamp: String = now.to_string().chars().filter(char::is_ascii_alphanumeric).collect();
        self.backups.dir.root().join(format!("damaged-{stamp}"))
    }

    /// Moves the damaged files aside (never deletes them), creates a fresh, empty database the way `col init` does,
    /// and opens the store on it. The caller holds the store's exclusive lock (`_lock`).
    ///
    /// # Errors
    /// [`WiringError::Io`] or [`WiringError::ReadOnly`] when a file cannot be moved (then nothing was created);
    /// [`WiringError::Repo`] when the fresh database cannot be created or opened.
    pub async fn recreate(
        self,
        _lock: &StoreLock,
        env: &dyn Fn(&str) -> Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Recreated, WiringError> {
        let files = self.files();
        let mut moved = Vec::new();
        let mut aside = None;
        if !files.is_empty() {
            let mut dir = self.aside_dir(clock.now());
            if dir.exists() {
                dir = dir.with_file_name(format!("{}-{}", dir.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
            }
            std::fs::create_dir_all(&dir).map_err(|e| WiringError::io(&dir, e))?;
            for f in &files {
                let to = dir.join(f.file_name().unwrap_or_default());
                move_file(f, &to)?;
                moved.push(to);
            }
            sync_dir(&dir).map_err(|e| WiringError::io(&dir, e))?;
            if let Some(parent) = self.database().parent() {
                sync_dir(parent).map_err(|e| WiringError::io(parent, e))?;
            }
            tracing::warn!(aside = %dir.display(), "moved the damaged database aside");
            aside = Some(dir);
        }
        crate::open::create_database(&self.database(), self.backups.config.store_id, Arc::clone(&clock)).await?;
        let store = Store::open_with_clock(self.backups.dir.clone(), env, clock).await?;
        Ok(Recreated { store, aside, moved })
    }
}

/// `db` with `suffix` appended to its file name (`colstore.db-wal`).
fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    db.with_file_name(name)
}

/// Renames `from` to `to`; across file systems, copies, syncs, then removes the original.
fn move_file(from: &Path, to: &Path) -> Result<(), WiringError> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| WiringError::io(from, e))?;
    std::fs::File::open(to).and_then(|f| f.sync_all()).map_err(|e| WiringError::io(to, e))?;
    std::fs::remove_file(from).map_err(|e| WiringError::io(from, e))
}
