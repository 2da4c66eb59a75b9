//! `InMemoryQueue`: a faithful in-memory [`JobQueue`] with the SQLite adapter's semantics.
//!
//! Jobs live behind one mutex, never held across an `.await`, so every call is atomic like the adapter's transactions.
//! It follows the adapter rule for rule: claims take due pending jobs and expired running ones, oldest `run_after`
//! first, each with `token + 1`; fenced calls check worker and token; at most one pending job per dedup key, and a
//! retry that would create a second one cancels the job instead (`fail`, `release_worker`) or is refused (`retry`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use colstore_domain::Timestamp;
use colstore_domain::ports::{Clock, Job, JobFilter, JobId, JobQueue, JobSpec, JobState, Lease, QueueError, WorkerId};

/// A [`JobQueue`] kept in memory, reading time from the [`Clock`] given to [`InMemoryQueue::new`].
///
/// A stored job's `spec.run_after` is always `Some`: when it is (next) due — the enqueue time when none was given,
/// the retry time after a failure — as in the SQLite adapter.
pub struct InMemoryQueue {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_id: i64,
    jobs: BTreeMap<JobId, Stored>,
}

struct Stored {
    job: Job,
    worker: Option<WorkerId>,
    token: i64,
    lease_expires: Option<Timestamp>,
}

impl Stored {
    fn lease(&self) -> Lease {
        Lease {
            job: self.job.clone(),
            worker: self.worker.clone().unwrap_or_else(|| WorkerId(String::new())),
            token: self.token,
            expires_at: self.lease_expires.unwrap_or(Timestamp::EPOCH),
        }
    }

    fn holds(&self, lease: &Lease) -> bool {
        self.job.state == JobState::Running && self.worker.as_ref() == Some(&lease.worker) && self.token == lease.token
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl State {
    fn pending_with_key(&self, key: Option<&str>, except: Option<JobId>) -> Option<JobId> {
        let key = key?;
        self.jobs
            .values()
            .find(|s| s.job.state == JobState::Pending && s.job.spec.dedup_key.as_deref() == Some(key) && Some(s.job.id) != except)
            .map(|s| s.job.id)
    }

    fn fenced(&mut self, lease: &Lease) -> Result<&mut Stored, QueueError> {
        let id = lease.job.id;
        match self.jobs.get_mut(&id) {
            None => Err(QueueError::NotFound(id)),
            Some(s) if s.holds(lease) => Ok(s),
            Some(_) => Err(QueueError::LeaseLost(id)),
        }
    }

    fn enqueue(&mut self, spec: JobSpec, now: Timestamp) -> JobId {
        if let Some(id) = self.pending_with_key(spec.dedup_key.as_deref(), None) {
            return id;
        }
        self.last_id += 1;
        let id = JobId(self.last_id);
        let spec = JobSpec { run_after: Some(spec.run_after.unwrap_or(now)), ..spec };
        let job =
            Job { id, spec, state: JobState::Pending, attempts: 0, errors: Vec::new(), progress: None, created_at: now, updated_at: now };
        self.jobs.insert(id, Stored { job, worker: None, token: 0, lease_expires: None });
        id
    }
}

impl InMemoryQueue {
    /// An empty queue reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, state: Mutex::new(State::default()) }
    }

    /// [`JobQueue::enqueue`] without awaiting: for fakes that enqueue inside their own critical section, as the SQLite
    /// repository enqueues a collection's sync job inside the transaction of the write that needs it.
    pub fn enqueue_now(&self, spec: JobSpec) -> JobId {
        let now = self.clock.now();
        self.lock().enqueue(spec, now)
    }

    /// The workers that hold running jobs (whether their leases expired or not), in name order, like
    /// `SqliteRepo::running_workers`.
    pub fn running_workers(&self) -> Vec<WorkerId> {
        let st = self.lock();
        let workers: std::collections::BTreeSet<&str> =
            st.jobs.values().filter(|s| s.job.state == JobState::Running).filter_map(|s| s.worker.as_ref()).map(|w| w.0.as_str()).collect();
        workers.into_iter().map(|w| WorkerId(w.to_owned())).collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not turn every later call into a second panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl JobQueue for InMemoryQueue {
    async fn enqueue(&self, spec: JobSpec) -> Result<JobId, QueueError> {
        Ok(self.enqueue_now(spec))
    }

    async fn claim(&self, worker: &WorkerId, kinds: Vec<String>, max: usize, lease: Duration) -> Result<Vec<Lease>, QueueError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let mut due: Vec<(Timestamp, JobId)> = st
            .jobs
            .values()
            .filter(|s| match s.job.state {
                JobState::Pending => s.job.spec.run_after.unwrap_or(Timestamp::EPOCH) <= now,
                JobState::Running => s.lease_expires.is_some_and(|t| t < now),
                _ => false,
            })
            .filter(|s| kinds.is_empty() || kinds.contains(&s.job.spec.kind))
            .map(|s| (s.job.spec.run_after.unwrap_or(Timestamp::EPOCH), s.job.id))
            .collect();
        due.sort_unstable();
        due.truncate(max);
        let mut out = Vec::with_capacity(due.len());
        for (_, id) in due {
            let Some(s) = st.jobs.get_mut(&id) else { continue };
            s.job.state = JobState::Running;
            s.job.attempts += 1;
            s.job.updated_at = now;
            s.worker = Some(worker.clone());
            s.token += 1;
            s.lease_expires = Some(now.plus_millis(millis(lease)));
            out.push(s.lease());
        }
        Ok(out)
    }

    async fn heartbeat(&self, lease: &Lease, progress: Option<serde_json::Value>, extend: Duration) -> Result<Lease, QueueError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let s = st.fenced(lease)?;
        s.lease_expires = Some(now.plus_millis(millis(extend)));
        if progress.is_some() {
            s.job.progress = progress;
        }
        s.job.updated_at = now;
        Ok(s.lease())
    }

    async fn complete(&self, lease: &Lease) -> Result<(), QueueError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let s = st.fenced(lease)?;
        s.job.state = JobState::Done;
        s.job.updated_at = now;
        s.lease_expires = None;
        Ok(())
    }

    async fn complete_many(&self, leases: &[Lease]) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let now = self.clock.now();
        // One lock for the whole batch: atomic, like the adapter's transaction; in order, like `complete` one by one.
        let mut st = self.lock();
        Ok(leases
            .iter()
            .map(|lease| {
                let s = st.fenced(lease)?;
                s.job.state = JobState::Done;
                s.job.updated_at = now;
                s.lease_expires = None;
                Ok(())
            })
            .collect())
    }

    async fn fail(&self, lease: &Lease, error: String, retry_at: Option<Timestamp>) -> Result<JobState, QueueError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let s = st.fenced(lease)?;
        let (id, dedup_key, exhausted) = (s.job.id, s.job.spec.dedup_key.clone(), s.job.attempts >= s.job.spec.max_attempts);
        let state = if retry_at.is_none() || exhausted {
            JobState::Dead
        } else if st.pending_with_key(dedup_key.as_deref(), Some(id)).is_some() {
            JobState::Cancelled
        } else {
            JobState::Pending
        };
        let s = st.jobs.get_mut(&id).ok_or(QueueError::NotFound(id))?;
        s.job.state = state;
        s.job.errors.push(error);
        if state == JobState::Pending {
            s.job.spec.run_after = retry_at;
        }
        s.job.updated_at = now;
        s.lease_expires = None;
        Ok(state)
    }

    async fn cancel(&self, id: JobId) -> Result<(), QueueError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let s = st.jobs.get_mut(&id).ok_or(QueueError::NotFound(id))?;
        match s.job.state {
            JobState::Pending | JobState::Running => {
                s.job.state = JobState::Cancelled;
                s.job.updated_at = now;
                s.lease_expires = None;
                Ok(())
            }
            // Cancelling twice is harmless.
            JobState::Cancelled => Ok(()),
            state => Err(QueueError::InvalidState { id, state, detail: "only pending or running jobs can be cancelled".into() }),
        }
    }

    async fn retry(&self, id: JobId) -> Result<(), QueueError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let (state, dedup_key) = st.jobs.get(&id).map(|s| (s.job.state, s.job.spec.dedup_key.clone())).ok_or(QueueError::NotFound(id))?;
        if !matches!(state, JobState::Dead | JobState::Cancelled) {
            return Err(QueueError::InvalidState { id, state, detail: "only dead or cancelled jobs can be retried".into() });
        }
        if let Some(other) = st.pending_with_key(dedup_key.as_deref(), Some(id)) {
            return Err(QueueError::InvalidState { id, state, detail: format!("job {other} with the same dedup key is already pending") });
        }
        let s = st.jobs.get_mut(&id).ok_or(QueueError::NotFound(id))?;
        s.job.state = JobState::Pending;
        s.job.attempts = 0;
        s.job.spec.run_after = Some(now);
        s.job.updated_at = now;
        s.lease_expires = None;
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Job, QueueError> {
        self.lock().jobs.get(&id).map(|s| s.job.clone()).ok_or(QueueError::NotFound(id))
    }

    async fn list(&self, filter: JobFilter) -> Result<Vec<Job>, QueueError> {
        let st = self.lock();
        let mut jobs: Vec<Job> = st
            .jobs
            .values()
            .filter(|s| filter.states.is_empty() || filter.states.contains(&s.job.state))
            .filter(|s| filter.kind.as_ref().is_none_or(|k| *k == s.job.spec.kind))
            .map(|s| s.job.clone())
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
        jobs.truncate(filter.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)));
        Ok(jobs)
    }

    async fn release_worker(&self, worker: &WorkerId) -> Result<u64, QueueError> {
        let now = self.clock.now();
        let mut st = self.lock();
        let mine: Vec<(JobId, Option<String>)> = st
            .jobs
            .values()
            .filter(|s| s.job.state == JobState::Running && s.worker.as_ref() == Some(worker))
            .map(|s| (s.job.id, s.job.spec.dedup_key.clone()))
            .collect();
        let mut released = 0;
        // Newest first, so that of two released jobs with one dedup key the newer one goes back to pending and the
        // older one is superseded (cancelled), as in the SQLite adapter.
        for (id, key) in mine.into_iter().rev() {
            let state = if st.pending_with_key(key.as_deref(), Some(id)).is_some() { JobState::Cancelled } else { JobState::Pending };
            if let Some(s) = st.jobs.get_mut(&id) {
                s.job.state = state;
                s.job.updated_at = now;
                s.lease_expires = None;
                released += 1;
            }
        }
        Ok(released)
    }
}
