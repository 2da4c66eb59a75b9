//! `col migrate --to sqlite|filesystem`: moving a store's content between the storage modes (PRODUCT §4).
//!
//! The metadata (documents, versions, metadata, tags, the sync ledger, the embedding cache, jobs) stays in the
//! store's database in both modes; only the content moves. [`run_migration`] takes the steps in an order that never
//! loses anything (the shell holds the store lock exclusively):
//!
//! 1. a safety backup of every collection ([`SafetyNet::backup`]), unless declined;
//! 2. the copy ([`StorageConversion::copy_contents`]): the old place is untouched, so the store still works in its
//!    old mode, and an interrupted copy is simply run again;
//! 3. the check, through the store as it will be opened after the switch: every document's content re-hashed
//!    against its recorded hash, and (to filesystem) every new folder reconciled clean;
//! 4. the switch ([`StorageConversion::switch`]), one atomic write: before it the store is in the old mode, after it
//!    in the new one, never half;
//! 5. the clean-up: to filesystem, the contents no document needs in the database any more are removed (`col gc`
//!    finishes it if interrupted); to sqlite, the files stay where they are (they are the user's).

use std::sync::Arc;

use colstore_domain::CollectionName;
use colstore_domain::ports::{
    CollectionRepo, ConversionError, RepoError, SafetyCopy, SafetyError, SafetyNet, StorageConversion, VerifyEvent,
};
use futures::StreamExt;
use serde::Serialize;

use crate::reconcile::{ChangeCounts, ReconcileError, ReconcileOptions, plan};

/// What [`run_migration`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationOutcome {
    /// Contents copied to their new place.
    pub copied: u64,
    /// Documents whose content was re-hashed in the new mode.
    pub verified: u64,
    /// Contents removed from the database after the switch (to filesystem).
    pub blobs_removed: u64,
    /// The safety backup taken first, if any.
    #[serde(skip)]
    pub safety: Option<SafetyCopy>,
}

/// Why a step of the migration failed (nothing was switched, unless the clean-up failed).
#[derive(Debug, thiserror::Error)]
pub enum MigrationFailure {
    /// A step of the conversion failed.
    #[error(transparent)]
    Conversion(#[from] ConversionError),
    /// Reading the converted store failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// After the copy, a document does not verify in the new mode.
    #[error("after the copy, {collection}/{key} does not verify: {problem}")]
    NotVerified {
        /// The collection.
        collection: CollectionName,
        /// The document.
        key: colstore_domain::DocKey,
        /// What is wrong.
        problem: String,
    },
    /// A new folder could not be checked.
    #[error("cannot check the new folder of {collection}: {source}")]
    FolderUnchecked {
        /// The collection.
        collection: CollectionName,
        /// Why.
        #[source]
        source: ReconcileError,
    },
    /// A new folder does not hold exactly the collection's documents (files that are no documents were there).
    #[error("the new folder of {collection} does not match the store after the copy ({counts:?})")]
    FolderDiffers {
        /// The collection.
        collection: CollectionName,
        /// What a reconcile would change.
        counts: ChangeCounts,
    },
}

/// Why [`run_migration`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// No safety backup could be taken: nothing was done.
    #[error(transparent)]
    Safety(#[from] SafetyError),
    /// A later step failed; the store as it was is in `safety`, when one was taken.
    #[error("{source}")]
    Failed {
        /// Why.
        #[source]
        source: MigrationFailure,
        /// The safety backup taken first.
        safety: Option<SafetyCopy>,
    },
}

/// Carries out a migration (see the module docs for the steps): `safety`, when given, backs up `collections` first
/// (`on_kept` hears of it before anything else happens); `progress` hears (contents copied, total).
///
/// # Errors
/// A failed safety backup (nothing done); a failed step ([`MigrationError::Failed`]: before the switch the store is
/// still in its old mode, and `col migrate` may simply run again).
pub async fn run_migration(
    conversion: &dyn StorageConversion,
    safety: Option<&dyn SafetyNet>,
    collections: &[CollectionName],
    on_kept: &(dyn Fn(&SafetyCopy) + Sync),
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<MigrationOutcome, MigrationError> {
    crate::commit_log::began("migrate", None);
    let safety = match safety {
        Some(net) => {
            let copy = net.backup(collections, "migrate").await?;
            on_kept(&copy);
            Some(copy)
        }
        None => None,
    };
    match convert(conversion, progress).await {
        Ok(outcome) => Ok(MigrationOutcome { safety, ..outcome }),
        Err(source) => Err(MigrationError::Failed { source, safety }),
    }
}

async fn convert(
    conversion: &dyn StorageConversion,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<MigrationOutcome, MigrationFailure> {
    let copied = conversion.copy_contents(progress).await?;
    let converted = conversion.open_converted().await?;
    let verified = verify_all(&converted.repo).await?;
    if let Some((files, catalog)) = &converted.files {
        for c in converted.repo.list_collections().await? {
            let report = plan(files, &**catalog, &c.name, ReconcileOptions::default())
                .await
                .map_err(|source| MigrationFailure::FolderUnchecked { collection: c.name.clone(), source })?;
            if !report.is_clean() {
                return Err(MigrationFailure::FolderDiffers { collection: c.name, counts: report.counts() });
            }
        }
    }
    conversion.switch().await?;
    crate::commit_log::durable_step("migrate", "switched");
    let blobs_removed = if converted.files.is_some() { converted.repo.gc(false).await?.contents_removed } else { 0 };
    Ok(MigrationOutcome { copied, verified, blobs_removed, safety: None })
}

/// Re-hashes every document of `repo`; the first corrupt one fails the migration.
async fn verify_all(repo: &Arc<dyn CollectionRepo>) -> Result<u64, MigrationFailure> {
    let mut events = repo.verify(None).await?;
    let mut checked = 0;
    while let Some(e) = events.next().await {
        match e? {
            VerifyEvent::Checked { documents, .. } => checked += documents,
            VerifyEvent::Corrupt(c) => {
                return Err(MigrationFailure::NotVerified { collection: c.collection, key: c.key, problem: c.problem });
            }
        }
    }
    Ok(checked)
}
