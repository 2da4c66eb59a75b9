//! `JobQueue`: durable background work with leases (PRODUCT §6).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use crate::{Timestamp, ValidationError};

/// A job's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who claims jobs: unique per process (`<host>:<pid>:<random>`), so jobs of a dead process can be freed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkerId(pub String);

/// A job's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to be claimed (possibly not before `run_after`).
    Pending,
    /// Claimed under a lease.
    Running,
    /// Finished.
    Done,
    /// Failed too often; kept with its error history.
    Dead,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// Every state, in life-cycle order.
    pub const ALL: [JobState; 5] = [JobState::Pending, JobState::Running, JobState::Done, JobState::Dead, JobState::Cancelled];

    /// The state's name, as users type it and JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = ValidationError;

    /// A state's name (`canceled` is accepted for `cancelled`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "canceled" {
            return Ok(JobState::Cancelled);
        }
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| ValidationError::new("job state", s, "not one of pending, running, done, dead or cancelled"))
    }
}

/// What to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The kind of work (`sync`, `reconcile`, `backup`, ...).
    pub kind: String,
    /// At most one pending job per dedup key: enqueuing a second returns the first.
    pub dedup_key: Option<String>,
    /// Kind-specific parameters.
    pub payload: serde_json::Value,
    /// Attempts before the job goes `dead`.
    pub max_attempts: u32,
    /// Not before this time.
    pub run_after: Option<Timestamp>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its spec.
    pub spec: JobSpec,
    /// Its state.
    pub state: JobState,
    /// Attempts so far.
    pub attempts: u32,
    /// Errors of past attempts, oldest first.
    pub errors: Vec<String>,
    /// Progress reported by the worker.
    pub progress: Option<serde_json::Value>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A claim on a running job. The fencing token changes with every claim; calls with a stale token MUST fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The job.
    pub job: Job,
    /// The claimant.
    pub worker: WorkerId,
    /// The fencing token.
    pub token: i64,
    /// When the lease runs out unless renewed.
    pub expires_at: Timestamp,
}

/// Which jobs to list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobFilter {
    /// Only these states (all when empty).
    pub states: Vec<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<u64>,
}

/// Errors of [`JobQueue`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No such job.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The lease expired or was taken over (stale fencing token); the worker MUST stop working on the job.
    #[error("lease on job {0} was lost")]
    LeaseLost(JobId),
    /// The job is in a state that does not allow the operation (e.g. retrying a running job).
    #[error("job {id} is {state:?}: {detail}")]
    InvalidState {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
        /// Why the operation is refused.
        detail: String,
    },
    /// Any other failure of the backend.
    #[error("{backend} error: {source}")]
    Backend {
        /// Which adapter.
        backend: &'static str,
        /// The cause.
        source: BoxError,
    },
}

/// A durable queue: at-least-once delivery with leases; use cases make effects idempotent.
///
/// # Contract
/// - `claim` MUST hand each pending job to one worker at a time, oldest `run_after` first, in one atomic step.
/// - An expired lease MUST make the job claimable again, with a new fencing token.
/// - All time decisions MUST use the [`Clock`](super::Clock) given to the adapter.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues a job, or returns the pending job with the same dedup key.
    async fn enqueue(&self, spec: JobSpec) -> Result<JobId, QueueError>;

    /// Claims up to `max` due jobs of the given kinds (all kinds when empty) for `lease`.
    async fn claim(&self, worker: &WorkerId, kinds: Vec<String>, max: usize, lease: Duration) -> Result<Vec<Lease>, QueueError>;

    /// Renews a lease and records progress.
    ///
    /// # Errors
    /// `LeaseLost` when the token is stale.
    async fn heartbeat(&self, lease: &Lease, progress: Option<serde_json::Value>, extend: Duration) -> Result<Lease, QueueError>;

    /// Marks a job done.
    ///
    /// # Errors
    /// `LeaseLost` when the token is stale.
    async fn complete(&self, lease: &Lease) -> Result<(), QueueError>;

    /// Marks many jobs done in one durable step: the batched form of [`JobQueue::complete`] for a worker that claimed
    /// a batch, so a batch costs one commit instead of one per job.
    ///
    /// # Contract
    /// - The answer MUST have one entry per lease, in order: `Ok(())`, or the error [`JobQueue::complete`] would have
    ///   returned for that lease alone (`LeaseLost` when its token is stale, `NotFound` when the job does not exist).
    /// - Every lease MUST be checked with its fencing token; a stale lease MUST NOT affect the job or the other leases.
    /// - The valid leases MUST be completed atomically and durably (one transaction, one commit): after a crash either
    ///   all of them are done or none.
    /// - The leases are applied in order: a job given twice is completed by the first entry and the second reports
    ///   `LeaseLost`. An empty slice is an empty answer.
    ///
    /// # Errors
    /// The outer error only when the backend fails; then no job was completed.
    async fn complete_many(&self, leases: &[Lease]) -> Result<Vec<Result<(), QueueError>>, QueueError>;

    /// Records a failed attempt: pending again at `retry_at`, or `dead` when attempts are used up or `retry_at` is `None`.
    ///
    /// # Errors
    /// `LeaseLost` when the token is stale.
    async fn fail(&self, lease: &Lease, error: String, retry_at: Option<Timestamp>) -> Result<JobState, QueueError>;

    /// Cancels a pending or running job.
    async fn cancel(&self, id: JobId) -> Result<(), QueueError>;

    /// Makes a dead or cancelled job pending again with fresh attempts.
    async fn retry(&self, id: JobId) -> Result<(), QueueError>;

    /// Reads a job.
    async fn get(&self, id: JobId) -> Result<Job, QueueError>;

    /// Lists jobs.
    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>, QueueError>;

    /// Frees every job leased by a worker known to be dead, returning how many.
    async fn release_worker(&self, worker: &WorkerId) -> Result<u64, QueueError>;
}

#[cfg(test)]
mod state_tests {
    use super::JobState;

    #[test]
    fn job_states_print_and_parse_as_users_type_them() {
        for state in JobState::ALL {
            assert_eq!(state.to_string().parse::<JobState>(), Ok(state));
            assert_eq!(serde_json::to_value(state).unwrap(), serde_json::json!(state.to_string()), "JSON spells it the same way");
        }
        assert_eq!("canceled".parse::<JobState>(), Ok(JobState::Cancelled));
        let e = "finished".parse::<JobState>().unwrap_err();
        assert_eq!(e.to_string(), r#"invalid job state "finished": not one of pending, running, done, dead or cancelled"#);
    }
}
