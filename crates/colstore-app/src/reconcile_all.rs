//! Reconciling several collections at once: `col reconcile` (every collection, or one), and "reconcile, then sync",
//! the first step of `col sync` and each round of `col watch` in filesystem mode.
//!
//! Every collection is planned before any is changed, so a plan the safety checks refuse stops the whole run with
//! nothing applied. A forced run whose plans were refused takes a copy of the database first ([`SafetyNet`]).

use std::sync::Arc;

use colstore_domain::CollectionName;
use colstore_domain::ports::{Clock, DocumentFiles, FileCatalog, JobQueue, QueueError, SafetyCopy, SafetyError, SafetyNet, TextIndex};

use crate::reconcile::{ReconcileError, ReconcileOptions, ReconcilePlan, ReconcileReport, apply_plan, plan};
use crate::sync::SyncPorts;
use crate::sync_jobs::{SyncRun, SyncRunEvent, SyncRunOptions, run_sync};

/// The ports of a filesystem-mode store's documents: the folder and what the database records about it.
#[derive(Clone)]
pub struct FilePorts {
    /// The documents' folder.
    pub files: Arc<dyn DocumentFiles>,
    /// What the database records about the files.
    pub catalog: Arc<dyn FileCatalog>,
    /// The full-text index, caught up after each applied reconcile (filesystem mode indexes the text it finds
    /// changed there, not in the write).
    pub text: Arc<dyn TextIndex>,
}

/// Why reconciling several collections stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileAllError {
    /// One collection failed (the collections before it were only planned, unless the failure came while applying).
    #[error("{collection}: {source}")]
    Collection {
        /// The collection.
        collection: CollectionName,
        /// Why.
        #[source]
        source: ReconcileError,
    },
    /// The database copy a forced run takes first failed: nothing was applied.
    #[error(transparent)]
    Safety(#[from] SafetyError),
}

impl ReconcileAllError {
    fn of(collection: &CollectionName) -> impl FnOnce(ReconcileError) -> Self + '_ {
        move |source| Self::Collection { collection: collection.clone(), source }
    }
}

/// What [`reconcile_collections`] did.
#[derive(Debug)]
pub enum ReconcileOutcome {
    /// A dry run: every collection's plan; nothing was changed.
    Planned(Vec<ReconcilePlan>),
    /// The safety checks refused at least one plan and the run was not forced: every collection's plan (the refused
    /// ones carry their [`ReconcilePlan::refusal`]); nothing was changed.
    Refused(Vec<ReconcilePlan>),
    /// Applied, collection by collection.
    Applied {
        /// The database copy taken first, when a forced run applied plans the safety checks refused.
        safety: Option<SafetyCopy>,
        /// One report per collection, in the order given.
        reports: Vec<ReconcileReport>,
    },
}

/// Plans every collection of `collections`; then, unless `options.dry_run` or a plan is refused without
/// `options.force`, applies them. A forced run with refused plans keeps a copy of the database through `safety`
/// first; without a safety net (`None`) refused plans are never applied, forced or not. Changes made to the files
/// after the plan are caught by the plans' expected hashes and left for the next reconcile.
///
/// # Errors
/// A collection that cannot be planned or applied (`CollectionNotFound`, store or folder failures), or a failed
/// safety copy (nothing applied).
pub async fn reconcile_collections(
    files: &FilePorts,
    safety: Option<&dyn SafetyNet>,
    collections: &[CollectionName],
    options: ReconcileOptions,
) -> Result<ReconcileOutcome, ReconcileAllError> {
    let plan_options = ReconcileOptions { dry_run: true, ..options };
    let mut plans = Vec::with_capacity(collections.len());
    for c in collections {
        plans.push(plan(&files.files, &*files.catalog, c, plan_options).await.map_err(ReconcileAllError::of(c))?);
    }
    let refused = plans.iter().any(|p| p.refusal.is_some());
    if options.dry_run {
        return Ok(ReconcileOutcome::Planned(plans));
    }
    let safety = match (refused, safety) {
        (false, _) => None,
        (true, Some(net)) if options.force => Some(net.copy_database("reconcile-force").await?),
        (true, _) => return Ok(ReconcileOutcome::Refused(plans)),
    };
    let mut reports = Vec::with_capacity(plans.len());
    for (c, p) in collections.iter().zip(plans) {
        reports.push(apply_plan(&*files.catalog, c, p, options).await.map_err(ReconcileAllError::of(c))?);
        files.text.catch_up(c).await.map_err(|e| ReconcileAllError::of(c)(e.into()))?;
    }
    Ok(ReconcileOutcome::Applied { safety, reports })
}

/// Why [`reconcile_and_sync`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileSyncError {
    /// The reconcile failed or was refused; nothing was synced.
    #[error(transparent)]
    Reconcile(#[from] ReconcileAllError),
    /// The sync jobs could not be claimed (after the reconcile was applied).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Filesystem mode (`files` given): reconciles `collections` (never forced: a refused plan is an error, see
/// [`refusal_error`]) and tells `on_reconciled` what changed; then, in every mode, syncs `collections` with
/// [`run_sync`], whose events go to `on_event`. What `col sync` and each round of `col watch` do.
///
/// # Errors
/// A failed or refused reconcile (nothing synced), or sync jobs that cannot be claimed. Failures of single
/// collections during the sync are in the returned [`SyncRun`].
#[allow(clippy::too_many_arguments)] // the sync's own arguments plus the reconcile's; a struct would only rename them
pub async fn reconcile_and_sync(
    files: Option<&FilePorts>,
    ports: &SyncPorts,
    queue: &dyn JobQueue,
    clock: &dyn Clock,
    collections: &[CollectionName],
    reconcile: ReconcileOptions,
    sync: &SyncRunOptions,
    on_reconciled: &(dyn Fn(&[ReconcileReport]) + Sync),
    on_event: &(dyn Fn(SyncRunEvent<'_>) + Sync),
) -> Result<SyncRun, ReconcileSyncError> {
    if let Some(files) = files {
        let options = ReconcileOptions { dry_run: false, force: false, ..reconcile };
        match reconcile_collections(files, None, collections, options).await? {
            ReconcileOutcome::Applied { reports, .. } => on_reconciled(&reports),
            ReconcileOutcome::Refused(plans) => return Err(refusal_error(plans).into()),
            ReconcileOutcome::Planned(_) => unreachable!("not a dry run"),
        }
    }
    Ok(run_sync(ports, queue, clock, collections, sync, on_event).await?)
}

/// The error of the first refused plan of `plans` (a [`ReconcileOutcome::Refused`]).
///
/// # Panics
/// When no plan of `plans` was refused.
pub fn refusal_error(plans: Vec<ReconcilePlan>) -> ReconcileAllError {
    let p = plans.into_iter().find(|p| p.refusal.is_some()).expect("a refused plan");
    let refusal = p.refusal.clone().expect("refused");
    ReconcileAllError::Collection { collection: p.collection.clone(), source: ReconcileError::Refused { refusal, plan: Box::new(p) } }
}
