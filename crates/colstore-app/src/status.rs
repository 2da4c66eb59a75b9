//! `col status`: everything a user (or the server's `/status`) asks about a store at once, read-only.

use colstore_domain::CollectionName;
use colstore_domain::ports::{JobFilter, JobQueue, JobState};
use serde::Serialize;

use crate::projection::{Status, status};
use crate::reconcile::{ChangeCounts, ReconcileOptions, plan};
use crate::reconcile_all::{FilePorts, ReconcileAllError};
use crate::sync::{SyncFailure, SyncPorts};

/// The most jobs [`store_status`] counts (a queue this long is reported as at least this).
const JOBS_COUNTED: u64 = 1000;

/// Sync jobs waiting or running, and dead ones (failed for good).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    /// Pending or running.
    pub pending_or_running: usize,
    /// Dead.
    pub dead: usize,
}

/// What [`store_status`] found.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    /// The index's health and each collection's documents, ledger counts and recent failures.
    pub status: Status,
    /// Filesystem mode: per collection whose folder has changes not reconciled yet, what a reconcile would do.
    pub unreconciled: Vec<(CollectionName, ChangeCounts)>,
    /// The job queue; `None` when it could not be read (the rest of the status is still worth showing).
    pub jobs: Option<JobCounts>,
}

/// Why [`store_status`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The store or the ledger failed.
    #[error(transparent)]
    Sync(#[from] SyncFailure),
    /// A folder could not be compared with the store.
    #[error(transparent)]
    Reconcile(#[from] ReconcileAllError),
}

/// Gathers the status of one collection or all: [`status`], then (filesystem mode, `files` given) a dry-run
/// reconcile of each collection's folder, and the sync jobs in the queue. Changes nothing.
///
/// # Errors
/// Store, ledger or folder failures; an unreachable index is in the status, an unreadable queue is `jobs: None`.
pub async fn store_status(
    ports: &SyncPorts,
    files: Option<&FilePorts>,
    queue: &dyn JobQueue,
    only: Option<&CollectionName>,
) -> Result<StoreStatus, StatusError> {
    let status = status(ports, only).await?;
    let mut unreconciled = Vec::new();
    if let Some(files) = files {
        for c in &status.collections {
            let p = plan(&files.files, &*files.catalog, &c.collection, ReconcileOptions { dry_run: true, ..ReconcileOptions::default() })
                .await
                .map_err(|source| ReconcileAllError::Collection { collection: c.collection.clone(), source })?;
            if !p.is_clean() {
                unreconciled.push((c.collection.clone(), p.counts()));
            }
        }
    }
    let filter = JobFilter { states: vec![JobState::Pending, JobState::Running, JobState::Dead], kind: None, limit: Some(JOBS_COUNTED) };
    let jobs = queue.list(filter).await.ok().map(|j| JobCounts {
        pending_or_running: j.iter().filter(|j| j.state != JobState::Dead).count(),
        dead: j.iter().filter(|j| j.state == JobState::Dead).count(),
    });
    Ok(StoreStatus { status, unreconciled, jobs })
}
