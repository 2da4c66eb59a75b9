//! `col migrate --to sqlite|filesystem`: moving a store's content between the storage modes (PRODUCT §4).
//!
//! The metadata (documents, versions, metadata, tags, the sync ledger, the embedding cache, jobs) stays where it is,
//! in the store's database, in both modes; only the content moves:
//!
//! 1. (the shell) takes the store lock exclusively and a safety backup;
//! 2. copies every document's content to its new place: files written atomically (sqlite → filesystem), or blobs
//!    inserted in transactions (filesystem → sqlite). The old place is untouched, so the store still works in its
//!    old mode, and an interrupted copy is simply run again;
//! 3. verifies in the new mode: every document's content re-hashed against its recorded hash, and (to filesystem)
//!    every folder reconciled clean;
//! 4. switches `[storage] mode` in `config.toml` last, with one atomic rename. Before it the store is in the old
//!    mode, after it in the new one, never half;
//! 5. cleans up: to filesystem, the blobs left in the database are removed (`col gc` finishes it if interrupted);
//!    to sqlite, the files are left where they are (they are the user's; delete them when you no longer need them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use colstore_domain::ports::{CollectionRepo, DocumentFiles, FileCatalog, VerifyEvent};
use futures::StreamExt;
use serde::Serialize;

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

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The plan it carried out.
    pub plan: MigrationPlan,
    /// Contents copied to their new place.
    pub copied: u64,
    /// Documents whose content was re-hashed in the new mode.
    pub verified: u64,
    /// Blobs removed from the database after the switch (to filesystem).
    pub blobs_removed: u64,
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> WiringError {
    WiringError::Migration { message: message.into(), hint: hint.into() }
}

impl Store {
    /// Plans moving the store to `to`, with filesystem mode's folder `docs_dir` (default: the configured one).
    ///
    /// # Errors
    /// [`WiringError::Migration`] when the store is in `to` already, the mode comes from an environment variable (the
    /// switch would not take), or (to sqlite) the folders have unreconciled changes.
    pub async fn plan_migration(&self, to: StorageMode, docs_dir: Option<&Path>) -> Result<MigrationPlan, WiringError> {
        let from = self.mode();
        if from == to {
            return Err(refuse(format!("the store is in {} mode already", to.as_str()), "nothing to do"));
        }
        if let Some(o) = self.overrides().iter().find(|o| o.key == "storage.mode") {
            return Err(refuse(
                format!("the storage mode comes from {} (it overrides config.toml)", o.var),
                format!("unset {} and run `col migrate` again; afterwards config.toml holds the mode", o.var),
            ));
        }
        if from == StorageMode::Filesystem && docs_dir.is_some() {
            return Err(refuse("--docs-dir only applies when migrating to filesystem mode", "drop --docs-dir"));
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
                .map_err(|e| refuse(format!("cannot check the folder of {}: {e}", c.name), "fix the folder, then try again"))?;
            if !plan.is_clean() {
                let n = plan.counts();
                return Err(refuse(
                    format!(
                        "collection {} has changes in its folder that are not reconciled ({} added, {} modified, {} deleted, {} renamed)",
                        c.name, n.added, n.modified, n.deleted, n.renamed
                    ),
                    format!("run `col reconcile {}` (or `col sync`) first, then migrate", c.name),
                ));
            }
        }
        Ok(())
    }

    /// Carries out `plan`: copy, verify, switch the config, clean up. The caller holds the store lock exclusively
    /// and took a safety backup. `progress` gets (contents done, total).
    ///
    /// # Errors
    /// Any failure before the switch leaves the store in its old mode (run again to continue); [`WiringError::Migration`]
    /// when the verification finds a difference.
    pub async fn migrate(&self, plan: &MigrationPlan, progress: &mut (dyn FnMut(u64, u64) + Send)) -> Result<MigrationReport, WiringError> {
        let db = self.dir().db_path(self.config());
        let files: Arc<dyn DocumentFiles> = match plan.to {
            StorageMode::Filesystem => Arc::new(colstore_fs::FsDocumentFiles::new(plan.docs_dir.clone())),
            StorageMode::Sqlite => Arc::clone(self.files().expect("a filesystem-mode store has files")),
        };
        let copied = match plan.to {
            StorageMode::Filesystem => {
                std::fs::create_dir_all(&plan.docs_dir).map_err(|e| WiringError::io(&plan.docs_dir, e))?;
                self.sqlite().copy_contents_to_files(&*files, progress).await?
            }
            StorageMode::Sqlite => self.sqlite().copy_contents_from_files(&*files, progress).await?,
        };

        // Verify through a repository opened in the new mode, exactly as the store will be opened after the switch.
        let target = match plan.to {
            StorageMode::Filesystem => crate::open::open_filesystem(&db, false, Arc::clone(self.clock()), Arc::clone(&files)).await?,
            StorageMode::Sqlite => crate::open::open_sqlite(&db, false, Arc::clone(self.clock())).await?,
        };
        let verified = verify_all(&target).await?;
        if plan.to == StorageMode::Filesystem {
            for c in target.list_collections().await? {
                let report =
                    colstore_app::plan_reconcile(&files, &target as &dyn FileCatalog, &c.name, colstore_app::ReconcileOptions::default())
                        .await
                        .map_err(|e| {
                            refuse(format!("cannot check the new folder of {}: {e}", c.name), "fix the folder and run `col migrate` again")
                        })?;
                if !report.is_clean() {
                    return Err(refuse(
                        format!("the new folder of {} does not match the store after the copy ({:?})", c.name, report.counts()),
                        "remove files that are not documents from the target folder (or choose an empty --docs-dir) and run `col migrate` again",
                    ));
                }
            }
        }

        // The switch: one atomic rename of config.toml.
        let path = self.dir().config_path();
        let mut config = StoreConfig::load(&path)?;
        config.storage.mode = plan.to;
        if plan.to == StorageMode::Filesystem && plan.docs_dir != self.docs_dir() {
            config.storage.filesystem_path = Some(plan.docs_dir.clone());
        }
        config.write(&path)?;
        tracing::info!(from = plan.from.as_str(), to = plan.to.as_str(), "switched the storage mode");

        let blobs_removed = if plan.to == StorageMode::Filesystem { target.gc(false).await?.contents_removed } else { 0 };
        target.close().await;
        Ok(MigrationReport { plan: plan.clone(), copied, verified, blobs_removed })
    }
}

/// Re-hashes every document of `repo`; any corrupt one fails the migration.
async fn verify_all(repo: &colstore_sqlite::SqliteRepo) -> Result<u64, WiringError> {
    let mut events = repo.verify(None).await?;
    let mut checked = 0;
    while let Some(e) = events.next().await {
        match e? {
            VerifyEvent::Checked { documents, .. } => checked += documents,
            VerifyEvent::Corrupt(c) => {
                return Err(refuse(
                    format!("after the copy, {}/{} does not verify: {}", c.collection, c.key, c.problem),
                    "nothing was switched; check the disk and run `col migrate` again",
                ));
            }
        }
    }
    Ok(checked)
}
