//! The whole of `col restore` once its plan is accepted: the safety backup, the restore, and the vector index brought
//! in line with the restored ledger.

use std::sync::Arc;

use colstore_domain::CollectionName;
use colstore_domain::ports::{BackupId, BackupStore, CollectionRepo, SafetyCopy, SafetyError, SafetyNet, SyncStore};
use serde::Serialize;

use super::BackupFailure;
use super::restore::{CollectionPlan, RestoreMode, RestoreOptions, RestorePlan, RestoreReport, restore_backup};
use crate::projection::verify_index;
use crate::sync::SyncPorts;

/// The ports a restore writes to. `index` is `None` when the store's vector index (or embedder) could not be
/// opened: the restore still runs, and the index is left for `col verify --index --repair`.
pub struct RestoreTarget<'a> {
    /// Documents and collections.
    pub repo: &'a dyn CollectionRepo,
    /// The sync ledger and the embedding cache.
    pub ledger: &'a dyn SyncStore,
    /// The projection, re-made from the restored cache afterwards.
    pub index: Option<&'a SyncPorts>,
    /// What keeps the collections a replace overwrites; `None` when the user declined (`--no-backup`).
    pub safety: Option<&'a dyn SafetyNet>,
}

/// One collection's index after the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reprojected {
    /// The collection.
    pub collection: CollectionName,
    /// Points written, rewritten or deleted to match the restored ledger.
    pub repaired: usize,
}

/// A collection whose index could not be brought in line (the restore itself succeeded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReprojectFailure {
    /// The collection.
    pub collection: CollectionName,
    /// Why.
    pub error: String,
}

/// What [`run_restore`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    /// The restore.
    pub report: RestoreReport,
    /// The safety backup taken first, if any.
    pub safety: Option<SafetyCopy>,
    /// The collections with vectors whose index was brought in line.
    pub index: Vec<Reprojected>,
    /// The collections whose index could not be (left for `col verify --index --repair`).
    pub index_failures: Vec<ReprojectFailure>,
}

/// Why [`run_restore`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreRunError {
    /// No safety backup could be taken: nothing was restored.
    #[error(transparent)]
    Safety(#[from] SafetyError),
    /// The restore failed; the store as it was before is in `safety`, when one was taken.
    #[error("{source}")]
    Restore {
        /// Why.
        #[source]
        source: BackupFailure,
        /// The safety backup taken before.
        safety: Option<SafetyCopy>,
    },
}

/// The collections of a restore or import plan that it overwrites or deletes documents in (existing ones only):
/// what a safety backup must keep.
pub fn overwritten(collections: &[CollectionPlan]) -> Vec<CollectionName> {
    collections.iter().filter(|c| c.exists && (c.delete + c.update) > 0).map(|c| c.name.clone()).collect()
}

/// Carries out a restore whose `plan` ([`plan_restore`](super::plan_restore)) the user accepted:
/// 1. in replace mode, when the plan overwrites or deletes documents of existing collections and `target.safety` is
///    given, a backup of those collections (`on_kept` hears of it before anything changes);
/// 2. [`restore_backup`], with `on_progress`;
/// 3. for every restored collection with vectors, [`verify_index`] with repair: the index follows the restored
///    ledger, from the restored embedding cache (no embedder calls). Failures here are reported, not fatal.
///
/// # Errors
/// A failed safety backup (nothing restored), or a failed restore (with the safety backup, if one was taken).
pub async fn run_restore(
    target: &RestoreTarget<'_>,
    backups: Arc<dyn BackupStore>,
    id: &BackupId,
    opts: &RestoreOptions,
    plan: &RestorePlan,
    on_kept: &(dyn Fn(&SafetyCopy) + Sync),
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<RestoreOutcome, RestoreRunError> {
    let existing = overwritten(&plan.collections);
    crate::commit_log::began("restore", None);
    let safety = match target.safety {
        Some(net) if opts.mode == RestoreMode::Replace && !existing.is_empty() => {
            let copy = net.backup(&existing, "restore").await?;
            on_kept(&copy);
            Some(copy)
        }
        _ => None,
    };
    let report = match restore_backup(target.repo, target.ledger, backups, id, opts, on_progress).await {
        Ok(r) => r,
        Err(source) => return Err(RestoreRunError::Restore { source, safety }),
    };
    let mut outcome = RestoreOutcome { report, safety, index: Vec::new(), index_failures: Vec::new() };
    let Some(ports) = target.index else { return Ok(outcome) };
    for c in &outcome.report.plan.collections {
        if !target.repo.collection(&c.name).await.is_ok_and(|c| c.settings.vectors.is_some()) {
            continue;
        }
        match verify_index(ports, &c.name, true).await {
            Ok(r) => outcome.index.push(Reprojected { collection: c.name.clone(), repaired: r.drift.len() }),
            Err(e) => outcome.index_failures.push(ReprojectFailure { collection: c.name.clone(), error: e.to_string() }),
        }
    }
    Ok(outcome)
}
