//! `InMemoryQueue` passes the `JobQueue` conformance suite.

use std::sync::Arc;

use colstore_domain::ports::JobQueue;
use colstore_testkit::queue::QueueFixture;
use colstore_testkit::{InMemoryQueue, ManualClock};

struct Queue {
    queue: Arc<InMemoryQueue>,
    clock: Arc<ManualClock>,
}

impl QueueFixture for Queue {
    fn queue(&self) -> Arc<dyn JobQueue> {
        self.queue.clone()
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }
}

async fn queue_fixture(clock: Arc<ManualClock>) -> Box<dyn QueueFixture> {
    Box::new(Queue { queue: Arc::new(InMemoryQueue::new(clock.clone())), clock })
}

mod fake {
    colstore_testkit::queue_conformance!(super::queue_fixture);
}

/// `running_workers` names each worker holding running jobs once, as `SqliteRepo::running_workers` does.
#[tokio::test]
async fn running_workers_are_listed_once_each() {
    use colstore_testkit::queue::{claim, enqueue, spec, worker};
    let q = InMemoryQueue::new(Arc::new(ManualClock::at_2024()));
    for n in 0..4 {
        enqueue(&q, spec("sync", n)).await;
    }
    claim(&q, "b", 2).await;
    let done = claim(&q, "a", 1).await;
    q.complete(&done[0]).await.expect("complete");
    claim(&q, "c", 1).await;
    assert_eq!(q.running_workers(), [worker("b"), worker("c")]);
}

/// A scenario missing from a macro's list would silently never run against any backend.
#[test]
fn every_queue_scenario_is_listed_in_the_macro() {
    assert_lists_every_scenario(include_str!("../../src/queue.rs"), "(f: &dyn QueueFixture)", "queue_conformance", 15);
}

/// Asserts that the macro `macro_name` defined in `source` lists exactly the scenarios (`pub async fn` taking
/// `fixture`) defined there, and at least `at_least` of them.
pub(crate) fn assert_lists_every_scenario(source: &str, fixture: &str, macro_name: &str, at_least: usize) {
    let marker = format!("$crate::{macro_name}!(@scenarios $factory;");
    let start = source.find(&marker).unwrap_or_else(|| panic!("{macro_name}: the scenario list")) + marker.len();
    let mut listed: Vec<&str> =
        source[start..].split_once(");").expect("end of the list").0.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    let mut defined: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub async fn "))
        .filter(|l| l.contains(fixture))
        .filter_map(|l| l.split_once('('))
        .map(|(n, _)| n)
        .collect();
    assert!(defined.len() >= at_least, "{macro_name}: at least {at_least} scenarios: {defined:?}");
    listed.sort_unstable();
    defined.sort_unstable();
    assert_eq!(listed, defined, "{macro_name} lists exactly the scenarios defined");
}
