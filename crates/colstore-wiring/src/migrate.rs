//! `col migrate --to sqlite|filesystem`: the plan (what the store's config allows), and the steps of the move as a
//! [`StorageConversion`], which `colstore_app::run_migration` takes in order (PRODUCT §4).
//!
//! The steps and their order are documented with `run_migration` (crates/colstore-app/src/migrate.rs); here is how
//! each is done for the two modes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{CollectionRepo, ConversionError, Converted, DocumentFiles, FileCatalog, StorageConversion};
use serde::Serialize;

use colstore_domain::CollectionName;

use crate::{StorageMode, Store, StoreConfig, WiringError};

/// What a migration will do (and, after it, did).
#[derive(Debug, Clone, Serialize)]
pub struct MigrationPlan {
    /// The mode now.
    pub from: StorageMode,
    /// The mode after.
    pub to: StorageMode,
    /// Collections.
    pub collections: u64,
    /// Documents whose content moves.
    pub documents: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Filesystem mode's documents folder (the target, or the source).
    pub docs_dir: PathBuf,
}

/// Why `col migrate` cannot start (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationRefused {
    /// The store is in the target mode already.
    #[error("the store is in {} mode already", .0.as_str())]
    AlreadyInMode(StorageMode),
    /// The storage mode comes from an environment variable, so a switch in `config.toml` would not take.
    #[error("the storage mode comes from {0} (it overrides config.toml)")]
    ModeFromEnv(&'static str),
    /// `--docs-dir` was given for a move to sqlite mode.
    #[error("--docs-dir only applies when migrating to filesystem mode")]
    DocsDirToSqlite,
    /// A collection's folder could not be compared with the store.
    #[error("cannot check the folder of {collection}: {reason}")]
    FolderUnchecked {
        /// The collection.
        collection: CollectionName,
        /// Why.
        reason: String,
    },
    /// A collection's folder has changes not reconciled yet (they would be lost on the way to sqlite).
    #[error(
        "collection {collection} has changes in its folder that are not reconciled ({} added, {} modified, {} deleted, {} renamed)",
        counts.added, counts.modified, counts.deleted, counts.renamed
    )]
    Unreconciled {
        /// The collection.
        collection: CollectionName,
        /// What a reconcile would record.
        counts: colstore_app::ChangeCounts,
    },
}

impl Store {
    /// Plans moving the store to `to`, with filesystem mode's folder `docs_dir` (default: the configured one).
    ///
    /// # Errors
    /// [`WiringError::Migration`] ([`MigrationRefused`]) when the store is in `to` already, the mode comes from an environment variable (the
    /// switch would not take), or (to sqlite) the folders have unreconciled changes.
    pub async fn plan_migration(&self, to: StorageMode, docs_dir: Option<&Path>) -> Result<MigrationPlan, WiringError> {
        let from = self.mode();
        if from == to {
            return Err(MigrationRefused::AlreadyInMode(to).into());
        }
        if let Some(o) = self.overrides().iter().find(|o| o.key == "storage.mode") {
            return Err(MigrationRefused::ModeFromEnv(o.var).into());
        }
        if from == StorageMode::Filesystem && docs_dir.is_some() {
            return Err(MigrationRefused::DocsDirToSqlite.into());
        }
        let docs_dir = match docs_dir {
            Some(d) => std::path::absolute(d).map_err(|source| WiringError::Io { path: d.to_owned(), source })?,
            None => self.docs_dir(),
        };
        let stats = self.repo().stats(None).await?;
        if from == StorageMode::Filesystem {
            self.check_reconciled().await?;
        }
        Ok(MigrationPlan { from, to, collections: stats.collections, documents: stats.documents, bytes: stats.logical_bytes, docs_dir })
    }

    /// Refuses when a collection's folder has changes not yet reconciled (they would be lost on the way to sqlite).
    async fn check_reconciled(&self) -> Result<(), WiringError> {
        let Some(files) = self.files() else { return Ok(()) };
        let catalog = self.catalog();
        for c in self.repo().list_collections().await? {
            let plan = colstore_app::plan_reconcile(files, &*catalog, &c.name, colstore_app::ReconcileOptions::default())
                .await
                .map_err(|e| MigrationRefused::FolderUnchecked { collection: c.name.clone(), reason: e.to_string() })?;
            if !plan.is_clean() {
                return Err(MigrationRefused::Unreconciled { collection: c.name, counts: plan.counts() }.into());
            }
        }
        Ok(())
    }

    /// The steps of carrying out `plan`, for `colstore_app::run_migration`, which takes them in order (the caller holds
    /// the store lock exclusively). Call [`StoreConversion::close`] afterwards.
    pub fn conversion(&self, plan: &MigrationPlan) -> StoreConversion<'_> {
        let files: Arc<dyn DocumentFiles> = match plan.to {
            StorageMode::Filesystem => Arc::new(colstore_fs::FsDocumentFiles::new(plan.docs_dir.clone())),
            StorageMode::Sqlite => Arc::clone(self.files().expect("a filesystem-mode store has files")),
        };
        StoreConversion { store: self, plan: plan.clone(), files, target: std::sync::Mutex::new(None) }
    }
}

/// The [`StorageConversion`] of a store to the mode of its plan: contents copied by the store's SQLite adapter, the
/// converted store opened exactly as `Store::open` will open it after the switch, the switch written to
/// `config.toml` with one atomic rename.
pub struct StoreConversion<'a> {
    store: &'a Store,
    plan: MigrationPlan,
    /// Filesystem mode's documents (the target, or the source).
    files: Arc<dyn DocumentFiles>,
    /// The converted store, once opened.
    target: std::sync::Mutex<Option<colstore_sqlite::SqliteRepo>>,
}

fn conversion_err(e: impl Into<WiringError>) -> ConversionError {
    ConversionError(Box::new(e.into()))
}

impl StoreConversion<'_> {
    /// Closes the converted store's database, if it was opened.
    pub async fn close(self) {
        let target = self.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(t) = target {
            t.close().await;
        }
    }
}

#[async_trait]
impl StorageConversion for StoreConversion<'_> {
    async fn copy_contents(&self, progress: &mut (dyn FnMut(u64, u64) + Send)) -> Result<u64, ConversionError> {
        let sqlite = self.store.sqlite();
        match self.plan.to {
            StorageMode::Filesystem => {
                let dir = &self.plan.docs_dir;
                std::fs::create_dir_all(dir).map_err(|e| conversion_err(WiringError::io(dir, e)))?;
                sqlite.copy_contents_to_files(&*self.files, progress).await.map_err(conversion_err)
            }
            StorageMode::Sqlite => sqlite.copy_contents_from_files(&*self.files, progress).await.map_err(conversion_err),
        }
    }

    async fn open_converted(&self) -> Result<Converted, ConversionError> {
        let db = self.store.dir().db_path(self.store.config());
        let clock = Arc::clone(self.store.clock());
        let target = match self.plan.to {
            StorageMode::Filesystem => crate::open::open_filesystem(&db, false, clock, Arc::clone(&self.files)).await,
            StorageMode::Sqlite => crate::open::open_sqlite(&db, false, clock).await,
        }
        .map_err(conversion_err)?;
        let files =
            (self.plan.to == StorageMode::Filesystem).then(|| (Arc::clone(&self.files), Arc::new(target.clone()) as Arc<dyn FileCatalog>));
        let repo: Arc<dyn CollectionRepo> = Arc::new(target.clone());
        *self.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(target);
        Ok(Converted { repo, files })
    }

    async fn switch(&self) -> Result<(), ConversionError> {
        let path = self.store.dir().config_path();
        let mut config = StoreConfig::load(&path).map_err(conversion_err)?;
        config.storage.mode = self.plan.to;
        if self.plan.to == StorageMode::Filesystem && self.plan.docs_dir != self.store.docs_dir() {
            config.storage.filesystem_path = Some(self.plan.docs_dir.clone());
        }
        config.write(&path).map_err(conversion_err)?;
        tracing::info!(from = self.plan.from.as_str(), to = self.plan.to.as_str(), "switched the storage mode");
        Ok(())
    }
}
