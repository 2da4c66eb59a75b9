//! `col jobs retry` and `col jobs cancel`: a user's hand on the job queue.

use colstore_domain::ports::{JobId, JobQueue, QueueError};

/// Makes a dead or failed job pending again (its attempts start over).
///
/// # Errors
/// `NotFound`, `InvalidState` for a job that cannot be retried, or a queue failure.
pub async fn retry_job(queue: &dyn JobQueue, id: JobId) -> Result<(), QueueError> {
    queue.retry(id).await
}

/// Cancels a job; a running sync notices before its next batch and stops there.
///
/// # Errors
/// `NotFound`, `InvalidState` for a job already finished, or a queue failure.
pub async fn cancel_job(queue: &dyn JobQueue, id: JobId) -> Result<(), QueueError> {
    queue.cancel(id).await
}
