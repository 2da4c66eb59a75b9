//! `run_sync` over the faithful fakes (state, not interactions) and, for the queue calls, mockall: jobs are completed
//! on success, failed with backoff on error, and a cancelled (or taken-over) job stops its collection before the next
//! batch with the ledger consistent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use colstore_app::{
    CollectionOutcome, StopReason, SyncFailure, SyncOptions, SyncPorts, SyncRun, SyncRunEvent, SyncRunOptions, run_sync, verify_index,
};
use colstore_domain::ports::{
    Clock, CollectionRepo, EmbedError, Embedder, Job, JobFilter, JobId, JobQueue, JobSpec, JobState, Lease, MockJobQueue, QueueError,
    SyncStore, WorkerId,
};
use colstore_domain::{
    CollectionName, CollectionSettings, CollectionSpec, Content, Dimension, DocKey, EmbedderId, Metadata, NewDocument, RetryPolicy,
    StoreId, Tags, Timestamp, Vector,
};
use colstore_testkit::{InMemoryIndex, InMemoryQueue, InMemoryRepo, ManualClock};
use futures::future::BoxFuture;

/// What the test embedder does at the start of its call number `n` (1-based), before it answers.
type Hook = Box<dyn Fn(u64) -> BoxFuture<'static, ()> + Send + Sync>;

/// A deterministic embedder that fails texts containing `fail_on` and runs a hook on every call. Each test document
/// is one distinct chunk, so a batch of documents is one call.
struct TestEmbedder {
    calls: AtomicU64,
    fail_on: Mutex<Option<String>>,
    hook: Mutex<Option<Arc<Hook>>>,
}

#[async_trait]
impl Embedder for TestEmbedder {
    fn identity(&self) -> EmbedderId {
        EmbedderId { kind: "test".into(), model: "jobs".into(), dimension: Dimension::new(3).unwrap() }
    }
    fn max_batch(&self) -> usize {
        8
    }
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vector>, EmbedError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let hook = self.hook.lock().unwrap().clone();
        if let Some(h) = hook {
            h(n).await;
        }
        let fail_on = self.fail_on.lock().unwrap().clone();
        if let Some(f) = fail_on
            && texts.iter().any(|t| t.contains(&f))
        {
            return Err(EmbedError::Unavailable(format!("no vectors for {f}")));
        }
        Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0, 0.5]).collect())
    }
}

struct World {
    clock: Arc<ManualClock>,
    queue: Arc<InMemoryQueue>,
    repo: Arc<InMemoryRepo>,
    embedder: Arc<TestEmbedder>,
    ports: SyncPorts,
}

fn name(s: &str) -> CollectionName {
    CollectionName::parse(s).unwrap()
}

/// Collections with `n` one-chunk documents each; writing them enqueued one sync job per collection.
async fn world(collections: &[(&str, usize)]) -> World {
    let clock = Arc::new(ManualClock::at_2024());
    let queue = Arc::new(InMemoryQueue::new(clock.clone()));
    let repo = Arc::new(InMemoryRepo::new(clock.clone()).with_jobs(queue.clone()));
    for (c, n) in collections {
        let c = name(c);
        repo.create_collection(CollectionSpec { name: c.clone(), settings: CollectionSettings::default() }).await.unwrap();
        let docs = (0..*n)
            .map(|i| NewDocument {
                key: DocKey::parse(&format!("d{i:03}.md")).unwrap(),
                content: Content::Bytes(format!("collection {c}, document number {i}").into_bytes().into()),
                metadata: Metadata::default(),
                tags: Tags::default(),
            })
            .collect();
        repo.put_batch(&c, docs).await.unwrap();
    }
    let embedder = Arc::new(TestEmbedder { calls: AtomicU64::new(0), fail_on: Mutex::new(None), hook: Mutex::new(None) });
    let index: Arc<dyn colstore_domain::ports::VectorIndex> = Arc::new(InMemoryIndex::new());
    let ports = SyncPorts {
        repo: repo.clone(),
        ledger: repo.clone(),
        index: index.clone(),
        router: colstore_app::OneIndex::router(index),
        embedder: embedder.clone(),
        text: repo.clone(),
        store_id: StoreId::random(),
    };
    World { clock, queue, repo, embedder, ports }
}

impl World {
    fn set_hook(&self, hook: impl Fn(u64) -> BoxFuture<'static, ()> + Send + Sync + 'static) {
        *self.embedder.hook.lock().unwrap() = Some(Arc::new(Box::new(hook)));
    }

    async fn run(&self, collections: &[&str], opts: &SyncRunOptions) -> SyncRun {
        let collections: Vec<CollectionName> = collections.iter().map(|c| name(c)).collect();
        run_sync(&self.ports, &*self.queue, &*self.clock, &collections, opts, &|_| {}).await.unwrap()
    }

    async fn jobs(&self) -> Vec<Job> {
        let mut jobs = self.queue.list(JobFilter::default()).await.unwrap();
        jobs.sort_by_key(|j| j.id);
        jobs
    }

    async fn job_of(&self, collection: &str) -> Job {
        self.jobs().await.into_iter().find(|j| j.spec.payload["collection"] == collection).expect("the collection has a job")
    }

    async fn counts(&self, collection: &str) -> (u64, u64, u64) {
        let c = self.repo.counts(Some(name(collection))).await.unwrap();
        (c.synced, c.pending, c.failed)
    }
}

fn opts() -> SyncRunOptions {
    SyncRunOptions {
        sync: SyncOptions { batch_docs: 2, ..SyncOptions::default() },
        ..SyncRunOptions::new(WorkerId("test-host:1:w".into()))
    }
}

#[tokio::test]
async fn synced_collections_complete_their_jobs_and_events_follow_the_run() {
    let w = world(&[("a", 3), ("b", 2)]).await;
    assert_eq!(w.jobs().await.len(), 2, "each write enqueued its collection's sync job");
    let events = Mutex::new(Vec::new());
    let on_event = |e: SyncRunEvent<'_>| {
        events.lock().unwrap().push(match e {
            SyncRunEvent::Started { collection } => format!("start {collection}"),
            SyncRunEvent::Progress { collection, progress } => format!("progress {collection} {}", progress.documents),
            SyncRunEvent::Finished(run) => format!("finish {} {}", run.collection, matches!(run.outcome, CollectionOutcome::Synced(_))),
        });
    };
    let run = run_sync(&w.ports, &*w.queue, &*w.clock, &[name("a"), name("b")], &opts(), &on_event).await.unwrap();
    assert!(run.is_ok());
    let synced: Vec<u64> = run
        .collections
        .iter()
        .map(|c| match &c.outcome {
            CollectionOutcome::Synced(r) => r.synced,
            other => panic!("{} was not synced: {other:?}", c.collection),
        })
        .collect();
    assert_eq!(synced, [3, 2]);
    assert!(run.collections.iter().all(|c| c.jobs.len() == 1), "each collection held its job");
    assert!(w.jobs().await.iter().all(|j| j.state == JobState::Done), "{:?}", w.jobs().await);
    assert_eq!(
        *events.lock().unwrap(),
        [
            "start a",
            "progress a 0",
            "progress a 2",
            "progress a 3",
            "finish a true",
            "start b",
            "progress b 0",
            "progress b 2",
            "finish b true"
        ]
    );
    assert_eq!((w.counts("a").await, w.counts("b").await), ((3, 0, 0), (2, 0, 0)));
}

#[tokio::test]
async fn jobs_of_collections_outside_the_run_go_back_to_pending() {
    let w = world(&[("a", 1), ("b", 1)]).await;
    let run = w.run(&["a"], &opts()).await;
    assert!(run.is_ok());
    assert_eq!(w.job_of("a").await.state, JobState::Done);
    let b = w.job_of("b").await;
    assert_eq!(b.state, JobState::Pending, "released, not left running until its lease runs out");
    assert_eq!(w.counts("b").await, (0, 1, 0));
}

#[tokio::test]
async fn a_failed_collection_fails_its_job_with_backoff_and_the_others_still_sync() {
    let w = world(&[("a", 3), ("b", 2)]).await;
    *w.embedder.fail_on.lock().unwrap() = Some("collection a,".into());
    let start = w.clock.now();
    let run = w.run(&["a", "b"], &opts()).await;
    assert!(!run.is_ok());
    assert!(matches!(run.collections[0].outcome, CollectionOutcome::Failed(SyncFailure::Embedder(_))), "{:?}", run.collections[0]);
    assert!(matches!(run.collections[1].outcome, CollectionOutcome::Synced(_)), "{:?}", run.collections[1]);

    let a = w.job_of("a").await;
    assert_eq!(a.state, JobState::Pending, "due again after a backoff");
    assert_eq!(a.attempts, 1);
    assert_eq!(a.errors.len(), 1);
    assert!(a.errors[0].contains("no vectors for collection a,"), "{:?}", a.errors);
    // The first retry of the default policy waits between half and all of its 500 ms base.
    let due = a.spec.run_after.unwrap();
    assert!(due >= start.plus_millis(250) && due <= start.plus_millis(500), "due at {due:?}, run at {start:?}");
    assert_eq!(w.job_of("b").await.state, JobState::Done);
    assert_eq!(w.counts("a").await, (0, 1, 2), "the failed batch is failed, the batch not reached is pending");

    // Not due before its backoff; once due, the next run takes it and succeeds.
    *w.embedder.fail_on.lock().unwrap() = None;
    let early = w.queue.claim(&WorkerId("other:2:x".into()), vec!["sync".into()], 10, Duration::from_secs(60)).await.unwrap();
    assert!(early.is_empty(), "the failed job is not due yet");
    w.clock.advance(Duration::from_millis(500));
    let run = w.run(&["a"], &opts()).await;
    assert!(run.is_ok());
    assert_eq!(run.collections[0].jobs, [a.id], "the retried job is the one the run held");
    assert_eq!(w.job_of("a").await.state, JobState::Done);
    assert_eq!(w.counts("a").await, (3, 0, 0));
}

#[tokio::test]
async fn a_job_failing_when_the_policy_allows_no_more_attempts_goes_dead() {
    let w = world(&[("a", 1)]).await;
    *w.embedder.fail_on.lock().unwrap() = Some("collection a,".into());
    let opts = SyncRunOptions { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..opts() };
    let run = w.run(&["a"], &opts).await;
    assert!(matches!(run.collections[0].outcome, CollectionOutcome::Failed(_)));
    let a = w.job_of("a").await;
    assert_eq!(a.state, JobState::Dead);
    assert_eq!(a.errors.len(), 1);
}

/// `col jobs cancel ID` while the sync holds the job: the batch in flight finishes (it is committed as a whole), the
/// next one never starts, the ledger says exactly what happened, and a later run finishes the rest.
#[tokio::test]
async fn cancelling_the_job_stops_the_collection_before_its_next_batch_with_a_consistent_ledger() {
    let w = world(&[("a", 7), ("b", 1)]).await;
    let job = w.job_of("a").await.id;
    let queue = w.queue.clone();
    // Batches of 2 one-chunk documents, one embed call each: cancel during the second batch of `a`.
    w.set_hook(move |n| {
        let queue = queue.clone();
        Box::pin(async move {
            if n == 2 {
                queue.cancel(job).await.unwrap();
            }
        })
    });
    let run = w.run(&["a", "b"], &opts()).await;
    assert!(!run.is_ok());
    match &run.collections[0].outcome {
        CollectionOutcome::Stopped { job: stopped, reason, report } => {
            assert_eq!((*stopped, *reason), (job, StopReason::Cancelled));
            assert_eq!((report.synced, report.progress.documents, report.progress.pending), (4, 4, 7), "two whole batches");
        }
        other => panic!("not stopped: {other:?}"),
    }
    assert_eq!(w.embedder.calls.load(Ordering::SeqCst), 3, "two batches of a, one of b: no batch started after the cancel");
    assert!(matches!(run.collections[1].outcome, CollectionOutcome::Synced(_)), "the other collection still syncs");

    assert_eq!(w.counts("a").await, (4, 3, 0), "synced documents stay synced, the rest stay pending");
    assert_eq!(w.job_of("a").await.state, JobState::Cancelled, "the cancelled job is left cancelled");
    let report = verify_index(&w.ports, &name("a"), false).await.unwrap();
    assert!(report.drift.is_empty(), "the index holds exactly what the ledger says: {:?}", report.drift);

    // A later run has no job for `a` but the ledger still knows what is pending.
    w.set_hook(|_| Box::pin(async {}));
    let run = w.run(&["a"], &opts()).await;
    assert!(run.is_ok());
    assert!(run.collections[0].jobs.is_empty());
    assert_eq!(w.counts("a").await, (7, 0, 0));
    assert!(verify_index(&w.ports, &name("a"), false).await.unwrap().drift.is_empty());
}

#[tokio::test]
async fn a_job_cancelled_before_its_collections_turn_stops_it_before_any_batch() {
    let w = world(&[("a", 1), ("b", 3)]).await;
    let job_b = w.job_of("b").await.id;
    let queue = w.queue.clone();
    w.set_hook(move |_| {
        let queue = queue.clone();
        Box::pin(async move {
            let _ = queue.cancel(job_b).await;
        })
    });
    let run = w.run(&["a", "b"], &opts()).await;
    match &run.collections[1].outcome {
        CollectionOutcome::Stopped { reason: StopReason::Cancelled, report, .. } => assert_eq!(report.progress.documents, 0),
        other => panic!("not stopped: {other:?}"),
    }
    assert_eq!(w.counts("b").await, (0, 3, 0));
}

/// While a batch runs, the lease keeper renews every lease each quarter of its length with the progress of the
/// running collection; a renewal that finds the lease taken over makes the collection stop at its next checkpoint.
#[tokio::test]
async fn leases_are_renewed_with_progress_and_a_lease_taken_over_stops_the_collection() {
    let w = world(&[("a", 7)]).await;
    let lease = Duration::from_secs(120);
    let opts = SyncRunOptions { lease, ..opts() };
    let (clock, queue) = (w.clock.clone(), w.queue.clone());
    w.set_hook(move |n| {
        let (clock, queue) = (clock.clone(), queue.clone());
        Box::pin(async move {
            // The lease keeper is driven by the same task as the sync: let it run before and after moving the clock.
            yield_a_few().await;
            match n {
                // First batch: a quarter lease passes; the keeper renews with the progress so far.
                1 => clock.advance(lease / 4),
                // Second batch: the lease runs out and another worker takes the job over.
                2 => {
                    clock.advance(lease + Duration::from_millis(1));
                    let taken = queue.claim(&WorkerId("other:2:y".into()), vec![], 10, lease).await.unwrap();
                    assert_eq!(taken.len(), 1);
                }
                _ => {}
            }
            yield_a_few().await;
        })
    });
    let run = w.run(&["a"], &opts).await;
    let job = w.job_of("a").await;
    match &run.collections[0].outcome {
        CollectionOutcome::Stopped { job: stopped, reason, report } => {
            assert_eq!((*stopped, *reason), (job.id, StopReason::LeaseLost));
            assert_eq!(report.progress.documents, 4);
        }
        other => panic!("not stopped: {other:?}"),
    }
    assert_eq!(job.state, JobState::Running, "the other worker's job is left alone");
    let progress = job.progress.expect("the renewal recorded progress");
    assert_eq!(progress["collection"], "a");
    assert_eq!(progress["progress"]["pending"], 7);
    assert_eq!(w.counts("a").await, (4, 3, 0));
}

async fn yield_a_few() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Interactions with the queue (mockall)
// ---------------------------------------------------------------------------------------------------------------------

fn lease_for(id: i64, collection: &str, attempts: u32) -> Lease {
    let now = Timestamp::from_millis(1_704_067_200_000);
    Lease {
        job: Job {
            id: JobId(id),
            spec: JobSpec {
                kind: "sync".into(),
                dedup_key: Some(format!("sync:{collection}")),
                payload: serde_json::json!({ "collection": collection }),
                max_attempts: 10,
                run_after: Some(now),
            },
            state: JobState::Running,
            attempts,
            errors: Vec::new(),
            progress: None,
            created_at: now,
            updated_at: now,
        },
        worker: WorkerId("test-host:1:w".into()),
        token: 1,
        expires_at: now.plus_millis(120_000),
    }
}

#[tokio::test]
async fn a_failure_fails_every_job_of_the_collection_once_and_the_worker_is_released() {
    let w = world(&[("a", 1)]).await;
    *w.embedder.fail_on.lock().unwrap() = Some("collection a,".into());
    let now = w.clock.now();
    let mut q = MockJobQueue::new();
    q.expect_claim().times(1).returning(|_, kinds, _, lease| {
        assert_eq!(kinds, ["sync"]);
        assert_eq!(lease, Duration::from_secs(120));
        Ok(vec![lease_for(7, "a", 2), lease_for(8, "a", 1), lease_for(9, "other", 1)])
    });
    q.expect_get().returning(|id| Ok(lease_for(id.0, "a", 1).job));
    q.expect_complete().never();
    q.expect_fail().times(2).returning(move |lease, error, retry_at| {
        assert_eq!(lease.job.spec.payload["collection"], "a");
        assert!(error.contains("no vectors"), "{error}");
        // Attempt 2 of the default policy: 0.5–1 × 1 s; attempt 1: 0.5–1 × 500 ms.
        let (lo, hi) = if lease.job.attempts == 2 { (500, 1000) } else { (250, 500) };
        let at = retry_at.expect("a retry time");
        assert!(at >= now.plus_millis(lo) && at <= now.plus_millis(hi), "job {} due at {at:?}", lease.job.id);
        Ok(JobState::Pending)
    });
    q.expect_release_worker().times(1).returning(|w| {
        assert_eq!(w.0, "test-host:1:w");
        Ok(1)
    });
    let run = run_sync(&w.ports, &q, &*w.clock, &[name("a")], &opts(), &|_| {}).await.unwrap();
    assert_eq!(run.collections[0].jobs, [JobId(7), JobId(8)]);
    assert!(matches!(run.collections[0].outcome, CollectionOutcome::Failed(_)));
}

#[tokio::test]
async fn a_claim_failure_is_the_runs_error_and_nothing_is_synced() {
    let w = world(&[("a", 1)]).await;
    let mut q = MockJobQueue::new();
    q.expect_claim().returning(|_, _, _, _| Err(QueueError::Backend { backend: "mock", source: "database is locked".into() }));
    q.expect_release_worker().never();
    let r = run_sync(&w.ports, &q, &*w.clock, &[name("a")], &opts(), &|_| {}).await;
    assert!(matches!(r, Err(QueueError::Backend { .. })), "{r:?}");
    assert_eq!(w.embedder.calls.load(Ordering::SeqCst), 0);
    assert_eq!(w.counts("a").await, (0, 1, 0));
}
