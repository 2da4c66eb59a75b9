//! The `JobQueue` conformance suite.
//!
//! Every scenario is a plain `async fn(&dyn QueueFixture)`; [`queue_conformance!`](crate::queue_conformance) turns each
//! into one `#[tokio::test]` for the backend whose fixture factory it is given. Each scenario gets a fresh, empty queue
//! and its own [`ManualClock`]: leases expire and `run_after` passes only when the scenario moves the clock, so nothing
//! sleeps.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use colstore_domain::ports::{Clock, Job, JobFilter, JobId, JobQueue, JobSpec, JobState, Lease, QueueError, WorkerId};

use crate::ManualClock;

/// One fresh queue under test.
pub trait QueueFixture: Send + Sync {
    /// The queue under test (empty at first). It reads time from [`QueueFixture::clock`].
    fn queue(&self) -> Arc<dyn JobQueue>;

    /// The clock the queue uses.
    fn clock(&self) -> Arc<ManualClock>;
}

/// Turns every scenario of the `JobQueue` suite into a `#[tokio::test]` against one backend.
///
/// `$factory` is an `async fn(Arc<ManualClock>) -> Box<dyn QueueFixture>` that builds a fresh, empty queue reading
/// time from the given clock. Invoke it inside a module named after the backend, so tests read `sqlite::claim_…`.
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// mod fake_queue {
///     colstore_testkit::queue_conformance!(super::queue_fixture);
/// }
/// ```
#[macro_export]
macro_rules! queue_conformance {
    ($factory:path) => {
        $crate::queue_conformance!(@scenarios $factory;
            enqueue_then_get_round_trip,
            missing_job_is_not_found,
            dedup_key_returns_the_pending_job,
            claim_hands_each_job_to_one_worker,
            claim_takes_the_oldest_run_after_first,
            claim_respects_run_after,
            claim_filters_by_kind,
            concurrent_claimers_take_each_job_once,
            expired_lease_is_reclaimed_with_a_new_token,
            reclaim_by_the_same_worker_fences_its_old_lease,
            heartbeat_extends_the_lease_and_records_progress,
            complete_marks_done_once,
            complete_many_completes_valid_leases_and_reports_each_stale_one,
            complete_many_fences_off_an_expired_lease_taken_over,
            complete_many_completes_a_large_batch,
            fail_retries_at_the_given_time_then_goes_dead,
            fail_without_retry_time_is_dead,
            fail_superseded_by_a_pending_duplicate_is_cancelled,
            cancel_pending_and_running_jobs,
            retry_makes_dead_and_cancelled_jobs_pending,
            retry_refuses_a_second_pending_job_with_the_same_dedup_key,
            release_worker_frees_only_its_jobs,
            release_worker_cancels_jobs_superseded_by_a_pending_duplicate,
            list_filters_newest_first,
        );
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let clock = std::sync::Arc::new($crate::ManualClock::at_2024());
                let f = $factory(clock).await;
                $crate::queue::$scenario(&*f).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/// The lease the scenarios claim with.
pub const LEASE: Duration = Duration::from_secs(30);

/// One millisecond, to step just past a deadline.
pub const MS: Duration = Duration::from_millis(1);

/// A job of `kind` with a small payload, 3 attempts, due at once, no dedup key.
pub fn spec(kind: &str, n: u64) -> JobSpec {
    JobSpec { kind: kind.to_owned(), dedup_key: None, payload: serde_json::json!({ "n": n }), max_attempts: 3, run_after: None }
}

/// A job with a dedup key.
pub fn keyed(kind: &str, dedup_key: &str) -> JobSpec {
    JobSpec { dedup_key: Some(dedup_key.to_owned()), ..spec(kind, 0) }
}

/// A worker id.
pub fn worker(name: &str) -> WorkerId {
    WorkerId(format!("test-host:1:{name}"))
}

/// Enqueues a job that must be accepted.
///
/// # Panics
/// When the queue fails.
pub async fn enqueue(q: &dyn JobQueue, s: JobSpec) -> JobId {
    q.enqueue(s.clone()).await.unwrap_or_else(|e| panic!("enqueue({s:?}) failed: {e}"))
}

/// Reads a job that must exist.
///
/// # Panics
/// When the queue fails.
pub async fn get(q: &dyn JobQueue, id: JobId) -> Job {
    q.get(id).await.unwrap_or_else(|e| panic!("get({id}) failed: {e}"))
}

/// Claims up to `max` jobs of any kind for [`LEASE`].
///
/// # Panics
/// When the queue fails.
pub async fn claim(q: &dyn JobQueue, w: &str, max: usize) -> Vec<Lease> {
    q.claim(&worker(w), Vec::new(), max, LEASE).await.unwrap_or_else(|e| panic!("claim by {w} failed: {e}"))
}

/// Claims exactly one job.
///
/// # Panics
/// When the queue fails or hands out no job or more than one.
pub async fn claim_one(q: &dyn JobQueue, w: &str) -> Lease {
    let mut got = claim(q, w, 1).await;
    assert_eq!(got.len(), 1, "{w} expected to claim one job, got {got:?}");
    got.remove(0)
}

/// The ids of some leases.
pub fn ids(leases: &[Lease]) -> Vec<JobId> {
    leases.iter().map(|l| l.job.id).collect()
}

/// Lists jobs; the call must succeed.
///
/// # Panics
/// When the queue fails.
pub async fn list(q: &dyn JobQueue, filter: JobFilter) -> Vec<Job> {
    q.list(filter.clone()).await.unwrap_or_else(|e| panic!("list({filter:?}) failed: {e}"))
}

fn expect_lease_lost<T: std::fmt::Debug>(r: Result<T, QueueError>, what: &str, id: JobId) {
    match r {
        Err(QueueError::LeaseLost(got)) => assert_eq!(got, id, "{what}: LeaseLost names the wrong job"),
        other => panic!("{what}: expected LeaseLost({id}), got {other:?}"),
    }
}

fn expect_not_found<T: std::fmt::Debug>(r: Result<T, QueueError>, what: &str, id: JobId) {
    match r {
        Err(QueueError::NotFound(got)) => assert_eq!(got, id, "{what}: NotFound names the wrong job"),
        other => panic!("{what}: expected NotFound({id}), got {other:?}"),
    }
}

fn expect_invalid_state<T: std::fmt::Debug>(r: Result<T, QueueError>, what: &str, id: JobId, want: JobState) {
    match r {
        Err(QueueError::InvalidState { id: got, state, .. }) => {
            assert_eq!(got, id, "{what}: InvalidState names the wrong job");
            assert_eq!(state, want, "{what}: InvalidState names the wrong state");
        }
        other => panic!("{what}: expected InvalidState({id}, {want:?}), got {other:?}"),
    }
}

/// Asserts that the old lease can neither heartbeat, complete nor fail the job.
async fn assert_fenced_off(q: &dyn JobQueue, lease: &Lease, what: &str) {
    let id = lease.job.id;
    expect_lease_lost(q.heartbeat(lease, None, LEASE).await, &format!("{what}: heartbeat"), id);
    expect_lease_lost(q.complete(lease).await, &format!("{what}: complete"), id);
    expect_lease_lost(q.fail(lease, "late".into(), None).await, &format!("{what}: fail"), id);
}

// ---------------------------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------------------------

/// `enqueue` stores the spec; `get` returns it pending, with no attempts, errors or progress, `run_after` defaulting to
/// the enqueue time, and the clock's time as `created_at` and `updated_at`.
pub async fn enqueue_then_get_round_trip(f: &dyn QueueFixture) {
    let q = f.queue();
    let now = f.clock().now();
    let s = JobSpec {
        kind: "backup".into(),
        dedup_key: None,
        payload: serde_json::json!({ "to": "s3://bucket/x", "collections": ["a", "b"], "full": true }),
        max_attempts: 4,
        run_after: None,
    };
    let id = enqueue(&*q, s.clone()).await;
    let j = get(&*q, id).await;
    assert_eq!(j.id, id);
    assert_eq!(j.spec, JobSpec { run_after: Some(now), ..s.clone() }, "the spec round-trips; run_after defaults to now");
    assert_eq!((j.state, j.attempts, j.errors.len(), j.progress.clone()), (JobState::Pending, 0, 0, None));
    assert_eq!((j.created_at, j.updated_at), (now, now));

    let later = now.plus_millis(60_000);
    let id2 = enqueue(&*q, JobSpec { run_after: Some(later), ..s }).await;
    assert_ne!(id2, id, "a job without dedup key is always new");
    assert_eq!(get(&*q, id2).await.spec.run_after, Some(later), "an explicit run_after is kept");
}

/// Every call naming a job that does not exist reports `NotFound`.
pub async fn missing_job_is_not_found(f: &dyn QueueFixture) {
    let q = f.queue();
    let known = enqueue(&*q, spec("sync", 1)).await;
    let id = JobId(known.0 + 1000);
    expect_not_found(q.get(id).await, "get", id);
    expect_not_found(q.cancel(id).await, "cancel", id);
    expect_not_found(q.retry(id).await, "retry", id);
    let mut forged = claim_one(&*q, "w1").await;
    forged.job.id = id;
    expect_not_found(q.heartbeat(&forged, None, LEASE).await, "heartbeat", id);
    expect_not_found(q.complete(&forged).await, "complete", id);
    expect_not_found(q.fail(&forged, "e".into(), None).await, "fail", id);
}

/// At most one pending job per dedup key: enqueuing again returns it. Once it runs, the key is free for a new job.
pub async fn dedup_key_returns_the_pending_job(f: &dyn QueueFixture) {
    let q = f.queue();
    let a = enqueue(&*q, keyed("sync", "sync:notes")).await;
    f.clock().advance(Duration::from_secs(1));
    assert_eq!(enqueue(&*q, keyed("sync", "sync:notes")).await, a, "the pending job is returned");
    let b = enqueue(&*q, keyed("sync", "sync:other")).await;
    assert_ne!(a, b, "another key is another job");
    assert_eq!(list(&*q, JobFilter::default()).await.len(), 2, "no duplicate was stored");
    assert_eq!(get(&*q, a).await.updated_at, get(&*q, b).await.updated_at.plus_millis(-1000), "the pending job is not touched");

    let lease = claim_one(&*q, "w1").await;
    assert_eq!(lease.job.id, a);
    let c = enqueue(&*q, keyed("sync", "sync:notes")).await;
    assert_ne!(c, a, "a running job does not absorb new work: it may have read its input already");
    assert_eq!(enqueue(&*q, keyed("sync", "sync:notes")).await, c, "the new pending job dedups");
    q.complete(&lease).await.expect("complete");
    assert_eq!(enqueue(&*q, keyed("sync", "sync:notes")).await, c);
}

/// A batch claim hands out up to `max` jobs, each to one worker; what is claimed is not handed out again.
pub async fn claim_hands_each_job_to_one_worker(f: &dyn QueueFixture) {
    let q = f.queue();
    let now = f.clock().now();
    let mut all = Vec::new();
    for n in 0..5 {
        all.push(enqueue(&*q, spec("sync", n)).await);
    }
    assert!(claim(&*q, "w0", 0).await.is_empty(), "max 0 claims nothing");
    let first = claim(&*q, "w1", 3).await;
    assert_eq!(ids(&first), all[..3], "the three oldest, in order");
    for l in &first {
        assert_eq!(l.worker, worker("w1"));
        assert_eq!(l.expires_at, now.plus_millis(30_000), "the lease runs from now");
        assert_eq!((l.job.state, l.job.attempts), (JobState::Running, 1));
        assert_eq!(get(&*q, l.job.id).await.state, JobState::Running);
    }
    let second = claim(&*q, "w2", 10).await;
    assert_eq!(ids(&second), all[3..], "the rest");
    assert!(claim(&*q, "w3", 10).await.is_empty(), "nothing is handed out twice");
}

/// Claims take the oldest `run_after` first, then the oldest job.
pub async fn claim_takes_the_oldest_run_after_first(f: &dyn QueueFixture) {
    let q = f.queue();
    let now = f.clock().now();
    let at = |ms: i64| JobSpec { run_after: Some(now.plus_millis(ms)), ..spec("sync", 0) };
    let j1 = enqueue(&*q, at(0)).await;
    let j2 = enqueue(&*q, at(-2000)).await;
    let j3 = enqueue(&*q, at(-1000)).await;
    let j4 = enqueue(&*q, at(0)).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(claim_one(&*q, "w").await.job.id);
    }
    assert_eq!(order, [j2, j3, j1, j4], "one at a time");
    assert!(claim(&*q, "w", 10).await.is_empty());
}

/// A job is not claimable before its `run_after`, and is from that moment on.
pub async fn claim_respects_run_after(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let due = clock.now().plus_millis(10_000);
    let id = enqueue(&*q, JobSpec { run_after: Some(due), ..spec("sync", 0) }).await;
    assert!(claim(&*q, "w", 10).await.is_empty(), "not yet");
    clock.advance(Duration::from_millis(9_999));
    assert!(claim(&*q, "w", 10).await.is_empty(), "1 ms early");
    clock.advance(MS);
    assert_eq!(ids(&claim(&*q, "w", 10).await), [id], "due exactly at run_after");
}

/// Claims can be limited to some kinds; no kinds means every kind.
pub async fn claim_filters_by_kind(f: &dyn QueueFixture) {
    let q = f.queue();
    let s = enqueue(&*q, spec("sync", 0)).await;
    let b = enqueue(&*q, spec("backup", 0)).await;
    let r = enqueue(&*q, spec("reconcile", 0)).await;
    let got = q.claim(&worker("w"), vec!["backup".into(), "reconcile".into()], 10, LEASE).await.expect("claim");
    assert_eq!(ids(&got), [b, r]);
    let got = q.claim(&worker("w"), vec!["backup".into()], 10, LEASE).await.expect("claim");
    assert!(got.is_empty(), "claimed jobs are not handed out again, whatever the kind filter");
    assert_eq!(ids(&claim(&*q, "w", 10).await), [s], "no kinds: any kind");
}

/// 4 workers claiming 200 jobs at once, in batches, get each job exactly once.
pub async fn concurrent_claimers_take_each_job_once(f: &dyn QueueFixture) {
    const JOBS: u64 = 200;
    const WORKERS: usize = 4;
    let q = f.queue();
    for n in 0..JOBS {
        enqueue(&*q, spec("sync", n)).await;
    }
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let q = Arc::clone(&q);
        tasks.push(tokio::spawn(async move {
            let me = worker(&format!("w{w}"));
            let mut mine = Vec::new();
            loop {
                let got = q.claim(&me, Vec::new(), 7, LEASE).await.unwrap_or_else(|e| panic!("w{w}: claim failed: {e}"));
                if got.is_empty() {
                    return mine;
                }
                for l in got {
                    assert_eq!(l.worker, me);
                    q.complete(&l).await.unwrap_or_else(|e| panic!("w{w}: complete {} failed: {e}", l.job.id));
                    mine.push(l.job.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer task panicked"));
    }
    let distinct: BTreeSet<JobId> = all.iter().copied().collect();
    assert_eq!(all.len() as u64, JOBS, "every job was claimed once, none twice");
    assert_eq!(distinct.len() as u64, JOBS);
    let done = list(&*q, JobFilter { states: vec![JobState::Done], ..JobFilter::default() }).await;
    assert_eq!(done.len() as u64, JOBS);
    assert!(done.iter().all(|j| j.attempts == 1), "one attempt each");
}

/// A lease that runs out makes the job claimable again (strictly after `expires_at`), with a new fencing token; the
/// old lease can no longer heartbeat, complete or fail it.
pub async fn expired_lease_is_reclaimed_with_a_new_token(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let id = enqueue(&*q, spec("sync", 0)).await;
    let old = claim_one(&*q, "w1").await;
    clock.advance(LEASE);
    assert!(claim(&*q, "w2", 10).await.is_empty(), "a lease is held up to and including its expiry time");
    clock.advance(MS);
    let new = claim_one(&*q, "w2").await;
    assert_eq!(new.job.id, id);
    assert_ne!(new.token, old.token, "a new claim has a new fencing token");
    assert_eq!((new.worker.clone(), new.job.attempts, new.job.state), (worker("w2"), 2, JobState::Running));
    assert_eq!(new.expires_at, clock.now().plus_millis(30_000));
    assert_fenced_off(&*q, &old, "the expired lease").await;
    q.complete(&new).await.expect("the new lease completes");
    assert_eq!(get(&*q, id).await.state, JobState::Done);
}

/// A worker that reclaims its own expired job gets a new token too: its old lease is fenced off.
pub async fn reclaim_by_the_same_worker_fences_its_old_lease(f: &dyn QueueFixture) {
    let q = f.queue();
    enqueue(&*q, spec("sync", 0)).await;
    let old = claim_one(&*q, "w1").await;
    f.clock().advance(LEASE + MS);
    let new = claim_one(&*q, "w1").await;
    assert_eq!((new.job.id, new.worker.clone()), (old.job.id, old.worker.clone()));
    assert_ne!(new.token, old.token);
    assert_fenced_off(&*q, &old, "the same worker's old lease").await;
    q.heartbeat(&new, None, LEASE).await.expect("the new lease is alive");
}

/// A heartbeat moves the expiry to now + extend and records progress (kept when a later heartbeat sends none).
pub async fn heartbeat_extends_the_lease_and_records_progress(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let id = enqueue(&*q, spec("sync", 0)).await;
    let lease = claim_one(&*q, "w1").await;
    clock.advance(Duration::from_secs(20));
    let progress = serde_json::json!({ "documents": 5, "of": 10 });
    let renewed = q.heartbeat(&lease, Some(progress.clone()), LEASE).await.expect("heartbeat");
    assert_eq!(renewed.expires_at, clock.now().plus_millis(30_000));
    assert_eq!((renewed.token, renewed.worker.clone()), (lease.token, lease.worker.clone()), "a heartbeat keeps the lease");
    assert_eq!(renewed.job.progress, Some(progress.clone()));
    clock.advance(Duration::from_secs(20));
    assert!(claim(&*q, "w2", 10).await.is_empty(), "40 s after the claim, the renewed lease still holds");
    let again = q.heartbeat(&renewed, None, LEASE).await.expect("heartbeat without progress");
    assert_eq!(get(&*q, id).await.progress, Some(progress), "progress is kept");
    assert_eq!(get(&*q, id).await.updated_at, clock.now());
    clock.advance(LEASE + MS);
    let taken = claim_one(&*q, "w2").await;
    assert_eq!(taken.job.id, id, "without heartbeats the lease runs out");
    expect_lease_lost(q.heartbeat(&again, None, LEASE).await, "heartbeat after takeover", id);
}

/// `complete` marks the job done; done jobs are never claimed, and the lease is spent.
pub async fn complete_marks_done_once(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let id = enqueue(&*q, spec("sync", 0)).await;
    let lease = claim_one(&*q, "w1").await;
    clock.advance(Duration::from_secs(5));
    q.complete(&lease).await.expect("complete");
    let j = get(&*q, id).await;
    assert_eq!((j.state, j.attempts, j.updated_at), (JobState::Done, 1, clock.now()));
    assert_fenced_off(&*q, &lease, "a completed job's lease").await;
    clock.advance(LEASE * 10);
    assert!(claim(&*q, "w2", 10).await.is_empty(), "done jobs are never claimed");
    assert_eq!(get(&*q, id).await.state, JobState::Done);
}

/// `complete_many` answers one entry per lease, in order: valid leases are completed (done, `updated_at` now), a
/// stale one reports `LeaseLost` and leaves its job alone, an unknown job `NotFound`, a lease given twice completes
/// once. An empty batch is an empty answer.
pub async fn complete_many_completes_valid_leases_and_reports_each_stale_one(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    assert!(q.complete_many(&[]).await.expect("complete_many of nothing").is_empty());
    for n in 0..4 {
        enqueue(&*q, spec("sync", n)).await;
    }
    let leases = claim(&*q, "w1", 4).await;
    assert_eq!(leases.len(), 4);
    q.cancel(leases[1].job.id).await.expect("cancel");
    q.complete(&leases[3]).await.expect("complete");
    let mut ghost = leases[0].clone();
    ghost.job.id = JobId(leases.iter().map(|l| l.job.id.0).max().unwrap_or(0) + 1000);
    clock.advance(Duration::from_secs(3));

    let batch = [leases[0].clone(), leases[1].clone(), leases[2].clone(), ghost.clone(), leases[3].clone(), leases[0].clone()];
    let got = q.complete_many(&batch).await.expect("complete_many");
    let [first, cancelled, third, unknown, done, again]: [Result<(), QueueError>; 6] =
        got.try_into().unwrap_or_else(|got: Vec<_>| panic!("one answer per lease, in order: {got:?}"));
    assert!(first.is_ok() && third.is_ok(), "valid leases complete: {first:?}, {third:?}");
    expect_lease_lost(cancelled, "complete_many of a cancelled job's lease", leases[1].job.id);
    expect_not_found(unknown, "complete_many of an unknown job", ghost.job.id);
    expect_lease_lost(done, "complete_many of a completed job's lease", leases[3].job.id);
    expect_lease_lost(again, "complete_many of a lease given twice", leases[0].job.id);

    for l in [&leases[0], &leases[2]] {
        let j = get(&*q, l.job.id).await;
        assert_eq!((j.state, j.updated_at), (JobState::Done, clock.now()));
        assert_fenced_off(&*q, l, "a lease completed by complete_many").await;
    }
    assert_eq!(get(&*q, leases[1].job.id).await.state, JobState::Cancelled, "a stale lease leaves its job alone");
    clock.advance(LEASE * 10);
    assert!(claim(&*q, "w2", 10).await.is_empty(), "completed jobs are never claimed");
}

/// A lease that ran out and was reclaimed is fenced off in a batch too; the new holder's lease completes.
pub async fn complete_many_fences_off_an_expired_lease_taken_over(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let a = enqueue(&*q, spec("sync", 0)).await;
    let b = enqueue(&*q, spec("sync", 1)).await;
    let old = claim(&*q, "w1", 2).await;
    clock.advance(LEASE + MS);
    let new = claim(&*q, "w2", 1).await;
    assert_eq!(ids(&new), [a]);
    let got = q.complete_many(&old).await.expect("complete_many");
    expect_lease_lost(got.into_iter().next().expect("an answer"), "complete_many with a reclaimed lease", a);
    assert_eq!(get(&*q, a).await.state, JobState::Running, "the new holder keeps the job");
    assert_eq!(get(&*q, b).await.state, JobState::Done, "an expired lease nobody took over still completes, as with complete");
    let got = q.complete_many(&new).await.expect("complete_many");
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(get(&*q, a).await.state, JobState::Done);
}

/// A batch larger than any single statement an adapter might build is still answered and completed as a whole.
pub async fn complete_many_completes_a_large_batch(f: &dyn QueueFixture) {
    const JOBS: u64 = 2_100;
    let q = f.queue();
    for n in 0..JOBS {
        enqueue(&*q, spec("bulk", n)).await;
    }
    let leases = claim(&*q, "w1", JOBS as usize).await;
    assert_eq!(leases.len() as u64, JOBS);
    let got = q.complete_many(&leases).await.expect("complete_many");
    assert_eq!(got.len() as u64, JOBS);
    assert!(got.iter().all(Result::is_ok), "every lease is valid");
    let done = list(&*q, JobFilter { states: vec![JobState::Done], ..JobFilter::default() }).await;
    assert_eq!(done.len() as u64, JOBS);
}

/// `fail` keeps every error; the job is pending again at `retry_at` until its attempts are used up, then dead.
pub async fn fail_retries_at_the_given_time_then_goes_dead(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let id = enqueue(&*q, spec("sync", 0)).await;
    for attempt in 1..=3u32 {
        let lease = claim_one(&*q, "w1").await;
        assert_eq!(lease.job.attempts, attempt);
        let retry_at = clock.now().plus_millis(10_000);
        let state = q.fail(&lease, format!("boom {attempt}"), Some(retry_at)).await.expect("fail");
        let j = get(&*q, id).await;
        assert_eq!(j.errors, (1..=attempt).map(|a| format!("boom {a}")).collect::<Vec<_>>(), "the error history, oldest first");
        assert_eq!(j.attempts, attempt);
        if attempt < 3 {
            assert_eq!((state, j.state), (JobState::Pending, JobState::Pending), "attempt {attempt} of 3 is retried");
            assert_eq!(j.spec.run_after, Some(retry_at));
            expect_lease_lost(q.complete(&lease).await, "complete after fail", id);
            assert!(claim(&*q, "w1", 10).await.is_empty(), "not before retry_at");
            clock.advance(Duration::from_millis(10_000));
        } else {
            assert_eq!((state, j.state), (JobState::Dead, JobState::Dead), "the third failure of three is final");
        }
    }
    clock.advance(Duration::from_secs(3600));
    assert!(claim(&*q, "w1", 10).await.is_empty(), "dead jobs are never claimed");
}

/// Without a retry time, a failure is final at once, whatever attempts are left.
pub async fn fail_without_retry_time_is_dead(f: &dyn QueueFixture) {
    let q = f.queue();
    let id = enqueue(&*q, JobSpec { max_attempts: 10, ..spec("sync", 0) }).await;
    let lease = claim_one(&*q, "w1").await;
    assert_eq!(q.fail(&lease, "refused by the embedder".into(), None).await.expect("fail"), JobState::Dead);
    let j = get(&*q, id).await;
    assert_eq!((j.state, j.attempts, j.errors.clone()), (JobState::Dead, 1, vec!["refused by the embedder".to_owned()]));
}

/// A failed job whose retry would make a second pending job with its dedup key is cancelled instead: the pending job
/// does the same work.
pub async fn fail_superseded_by_a_pending_duplicate_is_cancelled(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let a = enqueue(&*q, keyed("sync", "sync:notes")).await;
    let lease = claim_one(&*q, "w1").await;
    let b = enqueue(&*q, keyed("sync", "sync:notes")).await;
    let state = q.fail(&lease, "index unavailable".into(), Some(clock.now().plus_millis(1000))).await.expect("fail");
    assert_eq!(state, JobState::Cancelled);
    let ja = get(&*q, a).await;
    assert_eq!((ja.state, ja.errors.clone()), (JobState::Cancelled, vec!["index unavailable".to_owned()]), "the error is kept");
    assert_eq!(get(&*q, b).await.state, JobState::Pending);
    assert_eq!(enqueue(&*q, keyed("sync", "sync:notes")).await, b, "still one pending job for the key");
}

/// Pending and running jobs can be cancelled (a running job's worker loses its lease); cancelling again is harmless;
/// finished jobs cannot be cancelled.
pub async fn cancel_pending_and_running_jobs(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let running = enqueue(&*q, spec("sync", 0)).await;
    let lease = claim_one(&*q, "w1").await;
    let pending = enqueue(&*q, spec("sync", 1)).await;
    clock.advance(Duration::from_secs(1));
    q.cancel(pending).await.expect("cancel pending");
    q.cancel(running).await.expect("cancel running");
    for id in [pending, running] {
        let j = get(&*q, id).await;
        assert_eq!((j.state, j.updated_at), (JobState::Cancelled, clock.now()));
    }
    assert_fenced_off(&*q, &lease, "a cancelled job's lease").await;
    clock.advance(LEASE * 2);
    assert!(claim(&*q, "w2", 10).await.is_empty(), "cancelled jobs are never claimed, even after the lease time");
    q.cancel(pending).await.expect("cancelling twice is harmless");

    let done = enqueue(&*q, spec("sync", 2)).await;
    q.complete(&claim_one(&*q, "w1").await).await.expect("complete");
    expect_invalid_state(q.cancel(done).await, "cancel done", done, JobState::Done);
    let dead = enqueue(&*q, spec("sync", 3)).await;
    q.fail(&claim_one(&*q, "w1").await, "e".into(), None).await.expect("fail");
    expect_invalid_state(q.cancel(dead).await, "cancel dead", dead, JobState::Dead);
}

/// `retry` makes a dead or cancelled job pending and due now, with fresh attempts and its error history kept; any
/// other state is refused.
pub async fn retry_makes_dead_and_cancelled_jobs_pending(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let dead = enqueue(&*q, JobSpec { max_attempts: 1, ..spec("sync", 0) }).await;
    let lease = claim_one(&*q, "w1").await;
    assert_eq!(q.fail(&lease, "boom".into(), Some(clock.now())).await.expect("fail"), JobState::Dead, "1 of 1 attempts");
    let cancelled = enqueue(&*q, JobSpec { run_after: Some(clock.now().plus_millis(1_000_000)), ..spec("sync", 1) }).await;
    q.cancel(cancelled).await.expect("cancel");
    clock.advance(Duration::from_secs(60));
    q.retry(dead).await.expect("retry dead");
    q.retry(cancelled).await.expect("retry cancelled");
    for id in [dead, cancelled] {
        let j = get(&*q, id).await;
        assert_eq!((j.state, j.attempts, j.spec.run_after, j.updated_at), (JobState::Pending, 0, Some(clock.now()), clock.now()));
    }
    assert_eq!(get(&*q, dead).await.errors, ["boom"], "the error history is kept");
    let again = claim(&*q, "w2", 10).await;
    assert_eq!(ids(&again), [dead, cancelled], "both are due at once");
    assert!(again.iter().all(|l| l.job.attempts == 1));

    expect_invalid_state(q.retry(dead).await, "retry running", dead, JobState::Running);
    q.complete(&again[0]).await.expect("complete");
    expect_invalid_state(q.retry(dead).await, "retry done", dead, JobState::Done);
    let pending = enqueue(&*q, spec("sync", 2)).await;
    expect_invalid_state(q.retry(pending).await, "retry pending", pending, JobState::Pending);
}

/// Retrying a job while another job with its dedup key is pending is refused; once that one is gone, it works.
pub async fn retry_refuses_a_second_pending_job_with_the_same_dedup_key(f: &dyn QueueFixture) {
    let q = f.queue();
    let a = enqueue(&*q, keyed("sync", "sync:notes")).await;
    q.fail(&claim_one(&*q, "w1").await, "boom".into(), None).await.expect("fail");
    let b = enqueue(&*q, keyed("sync", "sync:notes")).await;
    assert_ne!(a, b, "a dead job does not hold its dedup key");
    expect_invalid_state(q.retry(a).await, "retry with a pending duplicate", a, JobState::Dead);
    assert_eq!(get(&*q, a).await.state, JobState::Dead, "nothing changed");
    q.cancel(b).await.expect("cancel");
    q.retry(a).await.expect("retry once the duplicate is gone");
    assert_eq!(enqueue(&*q, keyed("sync", "sync:notes")).await, a, "the retried job holds the key again");
}

/// `release_worker` puts the running jobs of one worker back to pending (claimable at once, by anyone) and leaves other
/// workers' jobs alone; the released leases are spent.
pub async fn release_worker_frees_only_its_jobs(f: &dyn QueueFixture) {
    let q = f.queue();
    let mut jobs = Vec::new();
    for n in 0..4 {
        jobs.push(enqueue(&*q, spec("sync", n)).await);
    }
    let dead_worker = claim(&*q, "w1", 2).await;
    let alive = claim_one(&*q, "w2").await;
    assert_eq!((ids(&dead_worker), alive.job.id), (jobs[..2].to_vec(), jobs[2]));
    assert_eq!(q.release_worker(&worker("w1")).await.expect("release"), 2);
    for l in &dead_worker {
        let j = get(&*q, l.job.id).await;
        assert_eq!((j.state, j.attempts), (JobState::Pending, 1), "released, the attempt counted");
    }
    assert_eq!(get(&*q, alive.job.id).await.state, JobState::Running, "other workers keep their jobs");
    for l in &dead_worker {
        assert_fenced_off(&*q, l, "a released lease").await;
    }
    let retaken = claim(&*q, "w3", 10).await;
    assert_eq!(ids(&retaken), [jobs[0], jobs[1], jobs[3]], "the released jobs are claimable at once, with the one never claimed");
    assert!(retaken[..2].iter().all(|l| l.job.attempts == 2));
    q.complete(&alive).await.expect("the other worker's lease still holds");
    assert_eq!(q.release_worker(&worker("nobody")).await.expect("release"), 0);
}

/// A released job whose dedup key now has a pending job is cancelled instead of making a second pending one.
pub async fn release_worker_cancels_jobs_superseded_by_a_pending_duplicate(f: &dyn QueueFixture) {
    let q = f.queue();
    let a = enqueue(&*q, keyed("sync", "sync:notes")).await;
    let other = enqueue(&*q, keyed("sync", "sync:other")).await;
    let leases = claim(&*q, "w1", 10).await;
    assert_eq!(ids(&leases), [a, other]);
    let b = enqueue(&*q, keyed("sync", "sync:notes")).await;
    assert_eq!(q.release_worker(&worker("w1")).await.expect("release"), 2, "both jobs are off the dead worker");
    assert_eq!(get(&*q, a).await.state, JobState::Cancelled, "superseded by the pending duplicate");
    assert_eq!(get(&*q, other).await.state, JobState::Pending);
    assert_eq!(get(&*q, b).await.state, JobState::Pending);
    assert_eq!(enqueue(&*q, keyed("sync", "sync:notes")).await, b);
}

/// `list` filters by states and kind, newest first, and honours the limit.
pub async fn list_filters_newest_first(f: &dyn QueueFixture) {
    let q = f.queue();
    let clock = f.clock();
    let mut ids_in_order = Vec::new();
    for (i, kind) in ["sync", "backup", "sync", "reconcile", "sync"].iter().enumerate() {
        ids_in_order.push(enqueue(&*q, spec(kind, i as u64)).await);
        clock.advance(Duration::from_secs(1));
    }
    let newest_first: Vec<JobId> = ids_in_order.iter().rev().copied().collect();
    let all = list(&*q, JobFilter::default()).await;
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);

    // Make the oldest sync job done and the backup dead.
    let l = q.claim(&worker("w"), vec!["backup".into()], 1, LEASE).await.expect("claim");
    q.fail(&l[0], "e".into(), None).await.expect("fail");
    let l = claim_one(&*q, "w").await;
    assert_eq!(l.job.id, ids_in_order[0]);
    q.complete(&l).await.expect("complete");

    let ids_of = |jobs: Vec<Job>| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    let only = |states: Vec<JobState>, kind: Option<&str>, limit: Option<u64>| JobFilter { states, kind: kind.map(str::to_owned), limit };
    assert_eq!(ids_of(list(&*q, only(vec![JobState::Pending], None, None)).await), [ids_in_order[4], ids_in_order[3], ids_in_order[2]]);
    assert_eq!(ids_of(list(&*q, only(vec![], Some("sync"), None)).await), [ids_in_order[4], ids_in_order[2], ids_in_order[0]]);
    assert_eq!(ids_of(list(&*q, only(vec![JobState::Done, JobState::Dead], None, None)).await), [ids_in_order[1], ids_in_order[0]]);
    assert_eq!(ids_of(list(&*q, only(vec![JobState::Pending], Some("sync"), Some(1))).await), [ids_in_order[4]]);
    assert_eq!(ids_of(list(&*q, only(vec![], None, Some(2))).await), [ids_in_order[4], ids_in_order[3]]);
    assert!(list(&*q, only(vec![JobState::Running], None, None)).await.is_empty());
    assert!(list(&*q, only(vec![], Some("nope"), None)).await.is_empty());
}
