//! Integration tests of the Weaviate adapter: the `VectorIndex` conformance suite against the testkit's Weaviate fake
//! (and against a real server when `TEST_WEAVIATE_URL` is set), the request bodies as snapshots (they are the
//! contract), the class-name mapping, and fault injection.

mod faults;
mod names;
mod snapshots;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use colstore_domain::ports::{Clock, IndexCapabilities, IndexError, IndexHealth, ScrollPage, ScrollRequest, SearchRequest, VectorIndex};
use colstore_domain::{Filter, IndexName, Point, PointId, RetryPolicy, ScoredPoint, Timestamp, VectorSettings};
use colstore_testkit::ManualClock;
use colstore_testkit::index::IndexFixture;
use colstore_testkit::need::{Need, skip};
use colstore_testkit::weaviate_fake::{WeaviateFake, WeaviateFakeOptions};
use colstore_weaviate::{WeaviateConfig, WeaviateIndex};

/// A manual clock that a sleeper moves itself, recording each wait: retries pass at once and tests see the waits.
#[derive(Debug)]
pub struct SteppingClock {
    manual: ManualClock,
    waits: Mutex<Vec<Duration>>,
}

impl SteppingClock {
    fn new() -> Self {
        Self { manual: ManualClock::at_2024(), waits: Mutex::new(Vec::new()) }
    }

    /// The waits so far.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Clock for SteppingClock {
    fn now(&self) -> Timestamp {
        self.manual.now()
    }

    async fn sleep(&self, d: Duration) {
        self.waits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(d);
        self.manual.advance(d);
    }
}

/// A fresh fake and an index on it.
pub struct FakeFixture {
    /// The fake, stopped on drop.
    pub fake: WeaviateFake,
    /// The index under test.
    pub index: Arc<WeaviateIndex>,
    /// The clock retries wait on.
    pub clock: Arc<SteppingClock>,
}

impl IndexFixture for FakeFixture {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }
}

/// A config for `url` with a small retry policy (waits go through the stepping clock anyway).
pub fn config(url: String) -> WeaviateConfig {
    let mut c = WeaviateConfig::new(url);
    c.retry = RetryPolicy { base: Duration::from_millis(100), max: Duration::from_secs(30), max_attempts: 3 };
    c
}

/// A fake with `options` and an index on it (with the same API key) sending batches of `max_batch` objects.
pub fn fake_with(options: WeaviateFakeOptions, max_batch: usize) -> FakeFixture {
    let fake = WeaviateFake::spawn(options.clone());
    let clock = Arc::new(SteppingClock::new());
    let mut c = config(fake.url());
    c.api_key = options.api_key;
    c.max_batch_objects = max_batch;
    let index = Arc::new(WeaviateIndex::new(c, clock.clone()).expect("an index on the fake"));
    FakeFixture { fake, index, clock }
}

async fn fake_fixture() -> Box<dyn IndexFixture> {
    // A small delete cap and batch size, so the suite also exercises the delete loop and batch splitting.
    Box::new(fake_with(WeaviateFakeOptions { api_key: Some("test-key".into()), delete_cap: 7 }, 64))
}

mod fake {
    colstore_testkit::index_conformance!(super::fake_fixture);
}

/// An index whose names get a suffix unique to the fixture, so the suite's fixed names (`cs_test_notes`) do not
/// collide between tests running in parallel on one real server. Errors name the caller's index again.
struct Namespaced {
    inner: WeaviateIndex,
    suffix: String,
    used: Mutex<Vec<IndexName>>,
}

impl Namespaced {
    fn name(&self, n: &IndexName) -> IndexName {
        let named = IndexName::parse(&format!("{}_{}", n.as_str(), self.suffix)).expect("a namespaced index name");
        let mut used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !used.contains(&named) {
            used.push(named.clone());
        }
        named
    }

    fn back<T>(&self, n: &IndexName, r: Result<T, IndexError>) -> Result<T, IndexError> {
        r.map_err(|e| match e {
            IndexError::CollectionNotFound(_) => IndexError::CollectionNotFound(n.clone()),
            other => other,
        })
    }
}

#[async_trait]
impl VectorIndex for Namespaced {
    fn capabilities(&self) -> IndexCapabilities {
        self.inner.capabilities()
    }
    async fn health(&self) -> Result<IndexHealth, IndexError> {
        self.inner.health().await
    }
    async fn ensure_collection(&self, n: &IndexName, s: &VectorSettings) -> Result<(), IndexError> {
        self.back(n, self.inner.ensure_collection(&self.name(n), s).await)
    }
    async fn drop_collection(&self, n: &IndexName) -> Result<bool, IndexError> {
        self.back(n, self.inner.drop_collection(&self.name(n)).await)
    }
    async fn upsert(&self, n: &IndexName, p: Vec<Point>) -> Result<(), IndexError> {
        self.back(n, self.inner.upsert(&self.name(n), p).await)
    }
    async fn delete(&self, n: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError> {
        self.back(n, self.inner.delete(&self.name(n), ids).await)
    }
    async fn delete_by_filter(&self, n: &IndexName, f: &Filter) -> Result<Option<u64>, IndexError> {
        self.back(n, self.inner.delete_by_filter(&self.name(n), f).await)
    }
    async fn scroll(&self, n: &IndexName, r: ScrollRequest) -> Result<ScrollPage, IndexError> {
        self.back(n, self.inner.scroll(&self.name(n), r).await)
    }
    async fn count(&self, n: &IndexName, f: Option<Filter>) -> Result<u64, IndexError> {
        self.back(n, self.inner.count(&self.name(n), f).await)
    }
    async fn search(&self, n: &IndexName, r: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError> {
        self.back(n, self.inner.search(&self.name(n), r).await)
    }
    async fn flush(&self, n: &IndexName) -> Result<Vec<String>, IndexError> {
        self.back(n, self.inner.flush(&self.name(n)).await)
    }
}

struct RealFixture {
    index: Arc<Namespaced>,
}

impl IndexFixture for RealFixture {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }
}

impl Drop for RealFixture {
    fn drop(&mut self) {
        // Drops the classes the test made; on a thread of its own, since this runs inside the test's runtime.
        let index = Arc::clone(&self.index);
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            let names: Vec<IndexName> = index.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            rt.block_on(async {
                for n in names {
                    let _ = index.inner.drop_collection(&n).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// An index on the real server `TEST_WEAVIATE_URL` (key from `TEST_WEAVIATE_API_KEY`), or a skip.
fn real_fixture() -> Option<RealFixture> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Some(url) = std::env::var("TEST_WEAVIATE_URL").ok().filter(|u| !u.is_empty()) else {
        skip(Need::Weaviate, "TEST_WEAVIATE_URL is not set, so the suite ran against the fake only");
        return None;
    };
    let mut c = config(url);
    c.api_key = std::env::var("TEST_WEAVIATE_API_KEY").ok().filter(|k| !k.is_empty());
    let inner = WeaviateIndex::new(c, Arc::new(SteppingClock::new())).expect("an index on TEST_WEAVIATE_URL");
    let suffix = format!("t{}{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    Some(RealFixture { index: Arc::new(Namespaced { inner, suffix, used: Mutex::new(Vec::new()) }) })
}

/// The conformance suite against a real server. `index_conformance!` has no way to skip, so this list mirrors its
/// scenarios (keep them in step).
mod real {
    macro_rules! real_scenarios {
        ($($scenario:ident),+ $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(f) = super::real_fixture() else { return };
                    colstore_testkit::index::$scenario(&f).await;
                }
            )+
        };
    }

    real_scenarios!(
        ensure_collection_is_idempotent,
        ensure_with_other_dimension_is_a_mismatch,
        ensure_with_other_distance_is_rejected,
        drop_missing_collection_returns_false,
        dropped_collection_is_gone_and_can_be_recreated,
        missing_collection_is_reported_by_every_method,
        upsert_with_wrong_dimension_writes_nothing,
        upsert_replaces_points_by_id,
        delete_ignores_missing_ids,
        delete_by_filter_removes_exactly_the_matches,
        count_with_and_without_filter,
        scroll_pages_through_250_points_in_id_order,
        scroll_from_is_inclusive_and_need_not_exist,
        scroll_returns_vectors_only_when_asked,
        scroll_with_filter_pages_over_matches,
        scroll_limit_zero_is_rejected,
        search_cosine_ranks_by_angle,
        search_dot_ranks_by_inner_product,
        search_euclid_scores_are_negated_distances,
        search_respects_limit,
        search_ties_are_broken_by_id,
        search_with_filter_ranks_only_matches,
        search_with_wrong_dimension_is_a_mismatch,
        search_on_empty_collection_returns_nothing,
        search_sees_every_write,
        filters_follow_the_reference_semantics,
        collections_are_isolated,
        cosine_vectors_are_normalised_on_write,
        payload_round_trips_exactly,
        upsert_5000_points_in_one_call,
        concurrent_upserts_all_land,
        flush_keeps_everything,
        health_and_capabilities_are_sane,
    );
}
