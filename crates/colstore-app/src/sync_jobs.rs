//! Running the queued sync jobs (PRODUCT §5, §6): what `col sync` (and a server's worker) does around
//! [`sync_collection_until`].
//!
//! 1. Claim every due `sync` job, so `col jobs` and other workers see who is doing the work. The ledger decides what
//!    to sync; a job only says that someone holds the collection's work.
//! 2. Sync the requested collections one after the other. Meanwhile every lease is renewed each quarter of its
//!    length, recording the collection's progress on its job (`col jobs show ID`).
//! 3. Before every batch, read the collection's jobs: one cancelled (`col jobs cancel ID`), or taken over by another
//!    worker, stops that collection there. Every batch before the stop is committed; the rest stays pending.
//! 4. Complete the jobs of a synced collection; fail those of a failed one, due again after a [`RetryPolicy`] backoff.
//! 5. Release the worker: jobs of collections outside the run go back to pending.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use colstore_domain::ports::{Clock, JobId, JobQueue, JobState, Lease, QueueError, WorkerId};
use colstore_domain::{CollectionName, RetryPolicy};
use futures::future::{BoxFuture, Either, select};
use serde::Serialize;

use crate::sync::{Checkpoint, SyncFailure, SyncOptions, SyncPorts, SyncProgress, SyncReport, sync_collection_until};

/// The kind of the jobs a sync run claims.
pub const SYNC_JOB_KIND: &str = colstore_domain::ports::sync_job::KIND;

/// At most this many jobs are claimed by one run (one per collection is the rule; the dedup key keeps it so).
const MAX_CLAIM: usize = 10_000;

/// How to run the sync jobs.
#[derive(Debug, Clone)]
pub struct SyncRunOptions {
    /// How each collection is synced.
    pub sync: SyncOptions,
    /// Who claims the jobs: unique per process (`<host>:<pid>:<random>`), so the jobs of a dead process can be freed.
    pub worker: WorkerId,
    /// How long a lease lasts; it is renewed every quarter of this.
    pub lease: Duration,
    /// When a failed collection's jobs are due again.
    pub retry: RetryPolicy,
    /// Seeds the jitter of the retry delays (mixed with each job's id and attempt).
    pub jitter_seed: u64,
}

impl SyncRunOptions {
    /// The default lease: two minutes, renewed every 30 s.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

    /// Default options for `worker`.
    pub fn new(worker: WorkerId) -> Self {
        Self { sync: SyncOptions::default(), worker, lease: Self::DEFAULT_LEASE, retry: RetryPolicy::default(), jitter_seed: 0 }
    }
}

/// Why a collection's sync stopped before it was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Its job was cancelled (`col jobs cancel ID`).
    Cancelled,
    /// Its lease was lost: another worker took the job over after the lease ran out, or the job left the running
    /// state some other way. The port requires the worker to stop working on it.
    LeaseLost,
}

/// How one collection's sync ended.
#[derive(Debug)]
pub enum CollectionOutcome {
    /// Everything pending was handled; the collection's jobs are done.
    Synced(SyncReport),
    /// Stopped at a checkpoint because of `job`; the report counts what was done, the rest stays pending. The job is
    /// left as it is (cancelled, or held by another worker).
    Stopped {
        /// The job that stopped it.
        job: JobId,
        /// Why.
        reason: StopReason,
        /// What was done before the stop.
        report: Box<SyncReport>,
    },
    /// The sync failed; the collection's jobs were failed with a backoff (or went dead).
    Failed(SyncFailure),
}

/// One collection of a run.
#[derive(Debug)]
pub struct CollectionRun {
    /// The collection.
    pub collection: CollectionName,
    /// The jobs of this collection the run held.
    pub jobs: Vec<JobId>,
    /// How it ended.
    pub outcome: CollectionOutcome,
}

/// What a run did, one entry per requested collection, in order.
#[derive(Debug, Default)]
pub struct SyncRun {
    /// The collections.
    pub collections: Vec<CollectionRun>,
}

impl SyncRun {
    /// Whether every collection was synced.
    pub fn is_ok(&self) -> bool {
        self.collections.iter().all(|c| matches!(c.outcome, CollectionOutcome::Synced(_)))
    }
}

/// What happens during a run, for progress display.
#[derive(Debug)]
pub enum SyncRunEvent<'a> {
    /// A collection's sync starts.
    Started {
        /// The collection.
        collection: &'a CollectionName,
    },
    /// Cumulative counters of the running collection, after every batch.
    Progress {
        /// The collection.
        collection: &'a CollectionName,
        /// The counters.
        progress: SyncProgress,
    },
    /// A collection is finished, whatever the outcome; its jobs are already completed or failed.
    Finished(&'a CollectionRun),
}

/// Claims the queued sync jobs and syncs `collections` in order, renewing the leases meanwhile; see the module
/// documentation. A failed or stopped collection does not stop the others. `on_event` sees each collection start,
/// progress and finish.
///
/// # Errors
/// Only when the jobs cannot be claimed; everything after that is reported per collection in the [`SyncRun`].
pub async fn run_sync(
    ports: &SyncPorts,
    queue: &dyn JobQueue,
    clock: &dyn Clock,
    collections: &[CollectionName],
    opts: &SyncRunOptions,
    on_event: &(dyn Fn(SyncRunEvent<'_>) + Sync),
) -> Result<SyncRun, QueueError> {
    let leases = queue.claim(&opts.worker, vec![SYNC_JOB_KIND.to_owned()], MAX_CLAIM, opts.lease).await?;
    let shared = Mutex::new(Shared::default());
    let runner = Runner { ports, queue, clock, opts, shared: &shared, on_event };
    let work = async {
        let mut run = SyncRun::default();
        for c in collections {
            // The full-text index catches up here too, so the first keyword search after a sync does not pay for it
            // (a search catches up anyway: a failure here only costs that search the time).
            if let Err(e) = ports.text.catch_up(c).await {
                tracing::warn!(collection = %c, error = %e, "cannot bring the full-text index up to date");
            }
            let mine: Vec<&Lease> = leases.iter().filter(|l| collection_of(l) == Some(c.as_str())).collect();
            let collection_run = runner.sync_one(c, &mine).await;
            on_event(SyncRunEvent::Finished(&collection_run));
            run.collections.push(collection_run);
        }
        run
    };
    let run = match select(pin!(work), pin!(keep_leases(queue, clock, &leases, opts.lease, &shared))).await {
        Either::Left((run, _)) => run,
        Either::Right(((), work)) => work.await,
    };
    // Jobs of collections outside this run go back to the queue.
    if let Err(e) = queue.release_worker(&opts.worker).await {
        tracing::warn!(error = %e, "cannot release the sync jobs of this worker; they are freed when their leases run out");
    }
    Ok(run)
}

/// State shared by the collection loop and the lease keeper (never locked across an `.await`).
#[derive(Default)]
struct Shared {
    /// The collection being synced, with its latest counters.
    current: Option<(CollectionName, SyncProgress)>,
    /// Jobs whose lease a renewal found lost.
    lost: HashSet<JobId>,
    /// Jobs already completed, failed or stopped: no more renewals.
    settled: HashSet<JobId>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The collection a sync job is for (`payload.collection`).
fn collection_of(lease: &Lease) -> Option<&str> {
    colstore_domain::ports::sync_job::collection(&lease.job.spec)
}

/// What every collection of a run shares.
struct Runner<'a> {
    ports: &'a SyncPorts,
    queue: &'a dyn JobQueue,
    clock: &'a dyn Clock,
    opts: &'a SyncRunOptions,
    shared: &'a Mutex<Shared>,
    on_event: &'a (dyn Fn(SyncRunEvent<'_>) + Sync),
}

impl Runner<'_> {
    /// Syncs one collection, stopping at a checkpoint when one of `leases` was cancelled or lost, then completes or
    /// fails its jobs.
    async fn sync_one(&self, collection: &CollectionName, leases: &[&Lease]) -> CollectionRun {
        let Self { ports, queue, clock, opts, shared, on_event } = *self;
        on_event(SyncRunEvent::Started { collection });
        lock(shared).current = Some((collection.clone(), SyncProgress::default()));
        let checkpoint = JobCheckpoint { queue, jobs: leases.iter().map(|l| l.job.id).collect(), shared, stop: Mutex::new(None) };
        let on_progress = |p: SyncProgress| {
            lock(shared).current = Some((collection.clone(), p));
            on_event(SyncRunEvent::Progress { collection, progress: p });
        };
        let result = sync_collection_until(ports, collection, &opts.sync, &on_progress, &checkpoint).await;
        let outcome = match result {
            Ok(report) => {
                for l in leases {
                    if let Err(e) = queue.complete(l).await {
                        tracing::warn!(job = %l.job.id, error = %e, "cannot mark the sync job done");
                    }
                }
                CollectionOutcome::Synced(report)
            }
            Err(SyncFailure::Stopped(report)) => match checkpoint.stopped() {
                Some((job, reason)) => {
                    tracing::info!(%collection, %job, ?reason, "sync stopped");
                    CollectionOutcome::Stopped { job, reason, report }
                }
                // Only this run's checkpoint stops a sync; keep the failure if that ever changes.
                None => CollectionOutcome::Failed(SyncFailure::Stopped(report)),
            },
            Err(e) => {
                let msg = e.to_string();
                for l in leases {
                    let retry_at = retry_time(&opts.retry, opts.jitter_seed, l, clock);
                    if let Err(err) = queue.fail(l, msg.clone(), retry_at).await {
                        tracing::warn!(job = %l.job.id, error = %err, "cannot record the failure on the sync job");
                    }
                }
                CollectionOutcome::Failed(e)
            }
        };
        {
            let mut s = lock(shared);
            s.current = None;
            s.settled.extend(leases.iter().map(|l| l.job.id));
        }
        CollectionRun { collection: collection.clone(), jobs: leases.iter().map(|l| l.job.id).collect(), outcome }
    }
}

/// When a failed job is due again: the policy's backoff for its attempt, or `None` (dead) when attempts are used up.
fn retry_time(policy: &RetryPolicy, seed: u64, lease: &Lease, clock: &dyn Clock) -> Option<colstore_domain::Timestamp> {
    let attempt = lease.job.attempts;
    let random = splitmix64(seed ^ (lease.job.id.0 as u64).rotate_left(32) ^ u64::from(attempt));
    policy.delay(attempt, random).map(|d| clock.now().plus_millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

/// A well-mixed `u64` from `x` (SplitMix64's finaliser), for jitter without a random-number crate.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Renews every unsettled lease each quarter of `lease`, recording the running collection's progress on its jobs, and
/// notes the leases found lost. Never returns; the run drops it when the collections are done.
async fn keep_leases(queue: &dyn JobQueue, clock: &dyn Clock, leases: &[Lease], lease: Duration, shared: &Mutex<Shared>) {
    let every = (lease / 4).max(Duration::from_millis(1));
    loop {
        clock.sleep(every).await;
        for l in leases {
            let id = l.job.id;
            let progress = {
                let s = lock(shared);
                if s.settled.contains(&id) || s.lost.contains(&id) {
                    continue;
                }
                s.current.as_ref().filter(|(c, _)| collection_of(l) == Some(c.as_str())).map(|(c, p)| {
                    serde_json::json!({ "collection": c.as_str(), "progress": serde_json::to_value(p).unwrap_or(serde_json::Value::Null) })
                })
            };
            match queue.heartbeat(l, progress, lease).await {
                Ok(_) => {}
                Err(QueueError::LeaseLost(_) | QueueError::NotFound(_)) => {
                    lock(shared).lost.insert(id);
                }
                Err(e) => tracing::warn!(job = %id, error = %e, "cannot renew the lease of a sync job"),
            }
        }
    }
}

/// The checkpoint of one collection's sync: before every batch, reads the collection's jobs and stops when one was
/// cancelled or its lease is gone. A failing read does not stop the sync (the next batch reads again).
struct JobCheckpoint<'a> {
    queue: &'a dyn JobQueue,
    jobs: Vec<JobId>,
    shared: &'a Mutex<Shared>,
    stop: Mutex<Option<(JobId, StopReason)>>,
}

impl JobCheckpoint<'_> {
    fn stopped(&self) -> Option<(JobId, StopReason)> {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn check(&self) -> Option<(JobId, StopReason)> {
        for &id in &self.jobs {
            let reason = match self.queue.get(id).await {
                Ok(job) => match job.state {
                    JobState::Cancelled => Some(StopReason::Cancelled),
                    JobState::Running if !lock(self.shared).lost.contains(&id) => None,
                    _ => Some(StopReason::LeaseLost),
                },
                Err(QueueError::NotFound(_)) => Some(StopReason::LeaseLost),
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot read the sync job; the sync goes on");
                    None
                }
            };
            if let Some(reason) = reason {
                return Some((id, reason));
            }
        }
        None
    }
}

impl Checkpoint for JobCheckpoint<'_> {
    fn should_stop(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            if self.stopped().is_some() {
                return true;
            }
            match self.check().await {
                Some(stop) => {
                    *self.stop.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop);
                    true
                }
                None => false,
            }
        })
    }
}
