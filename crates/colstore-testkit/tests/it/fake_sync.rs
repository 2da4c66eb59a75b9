//! `InMemoryRepo`, linked to an `InMemoryQueue`, passes the `SyncStore` conformance suite.

use std::sync::Arc;

use colstore_domain::ports::{CollectionRepo, JobQueue, SyncStore};
use colstore_testkit::sync::SyncFixture;
use colstore_testkit::{InMemoryQueue, InMemoryRepo, ManualClock};

struct Sync {
    repo: Arc<InMemoryRepo>,
    jobs: Arc<InMemoryQueue>,
    clock: Arc<ManualClock>,
}

impl SyncFixture for Sync {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        self.repo.clone()
    }

    fn sync(&self) -> Arc<dyn SyncStore> {
        self.repo.clone()
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    fn jobs(&self) -> Arc<dyn JobQueue> {
        self.jobs.clone()
    }
}

async fn sync_fixture(clock: Arc<ManualClock>) -> Box<dyn SyncFixture> {
    let jobs = Arc::new(InMemoryQueue::new(clock.clone()));
    Box::new(Sync { repo: Arc::new(InMemoryRepo::new(clock.clone()).with_jobs(jobs.clone())), jobs, clock })
}

mod fake {
    colstore_testkit::sync_conformance!(super::sync_fixture);
}

/// An `InMemoryRepo` without a queue keeps its ledger all the same.
#[tokio::test]
async fn a_repo_without_a_queue_keeps_its_ledger() {
    let repo = InMemoryRepo::new(Arc::new(ManualClock::at_2024()));
    let c = colstore_testkit::repo::create(&repo, "notes").await;
    colstore_testkit::repo::put_one(&repo, &c, colstore_testkit::repo::plain("a.md", "ay")).await;
    assert_eq!(repo.counts(Some(c)).await.expect("counts").pending, 1);
}

/// A scenario missing from the macro's list would silently never run against any backend.
#[test]
fn every_sync_scenario_is_listed_in_the_macro() {
    crate::fake_queue::assert_lists_every_scenario(include_str!("../../src/sync.rs"), "(f: &dyn SyncFixture)", "sync_conformance", 20);
}
