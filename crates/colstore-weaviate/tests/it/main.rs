//! Integration tests of the Weaviate adapter: the `VectorIndex` conformance suite against the testkit's Weaviate fake
//! (and against a real server when `TEST_WEAVIATE_URL` is set), the request bodies as snapshots (they are the
//! contract), the class-name mapping, and fault injection.

mod faults;
mod foreign;
mod names;
mod snapshots;

use std::sync::Arc;
use std::time::Duration;

use colstore_domain::RetryPolicy;
use colstore_domain::ports::VectorIndex;
use colstore_testkit::RecordingClock;
use colstore_testkit::index::{IndexFixture, ServerFixture};
use colstore_testkit::need::Need;
use colstore_testkit::weaviate_fake::{WeaviateFake, WeaviateFakeOptions};
use colstore_weaviate::{WeaviateConfig, WeaviateIndex};

/// A fresh fake and an index on it.
pub struct FakeFixture {
    /// The fake, stopped on drop.
    pub fake: WeaviateFake,
    /// The index under test.
    pub index: Arc<WeaviateIndex>,
    /// The clock retries wait on.
    pub clock: Arc<RecordingClock>,
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
    let clock = RecordingClock::new();
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

/// An index on the real server `TEST_WEAVIATE_URL` (key from `TEST_WEAVIATE_API_KEY`), or a skip.
async fn real_fixture() -> Option<Box<dyn IndexFixture>> {
    let Some(url) = std::env::var("TEST_WEAVIATE_URL").ok().filter(|u| !u.is_empty()) else {
        return ServerFixture::skipped(Need::Weaviate, "TEST_WEAVIATE_URL is not set, so the suite ran against the fake only");
    };
    let mut c = config(url);
    c.api_key = std::env::var("TEST_WEAVIATE_API_KEY").ok().filter(|k| !k.is_empty());
    let inner = WeaviateIndex::new(c, RecordingClock::new()).expect("an index on TEST_WEAVIATE_URL");
    Some(Box::new(ServerFixture::new(Arc::new(inner))))
}

/// The conformance suite against a real server, each scenario under index names of its own.
mod real {
    colstore_testkit::index_conformance!(optional super::real_fixture);
}
