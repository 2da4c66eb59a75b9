//! Integration tests of the Weaviate adapter: the `VectorIndex` conformance suite against the testkit's Weaviate fake
//! (and against a real server when `TEST_WEAVIATE_URL` is set), the request bodies as snapshots (they are the
//! contract), the class-name mapping, and fault injection.

mod faults;
mod names;
mod snapshots;

use std::sync::Arc;
use std::time::Duration;

use colstore_domain::RetryPolicy;
use colstore_domain::ports::VectorIndex;
use colstore_testkit::ManualClock;
use colstore_testkit::index::IndexFixture;
use colstore_testkit::weaviate_fake::{WeaviateFake, WeaviateFakeOptions};
use colstore_weaviate::{WeaviateConfig, WeaviateIndex};

/// A fresh fake and an index on it.
pub struct FakeFixture {
    /// The fake, stopped on drop.
    pub fake: WeaviateFake,
    /// The index under test.
    pub index: Arc<WeaviateIndex>,
    /// The clock retries wait on.
    pub clock: Arc<ManualClock>,
}

impl IndexFixture for FakeFixture {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }
}

/// A config for `url` with a fast retry policy (waits go through the manual clock anyway).
pub fn config(url: String) -> WeaviateConfig {
    let mut c = WeaviateConfig::new(url);
    c.retry = RetryPolicy { base: Duration::from_millis(100), max: Duration::from_secs(30), max_attempts: 3 };
    c.timeout = Duration::from_secs(30);
    c
}

/// A fake with `options` and an index on it that advances its manual clock by itself (retry waits pass at once).
pub fn fake_with(options: WeaviateFakeOptions, max_batch: usize) -> FakeFixture {
    let fake = WeaviateFake::spawn(options.clone());
    let clock = Arc::new(ManualClock::at_2024());
    let mut c = config(fake.url());
    c.api_key = options.api_key;
    c.max_batch_objects = max_batch;
    let index = Arc::new(WeaviateIndex::new(c, clock.clone()).expect("an index on the fake"));
    FakeFixture { fake, index, clock }
}

async fn fake_fixture() -> Box<dyn IndexFixture> {
    Box::new(fake_with(WeaviateFakeOptions { api_key: Some("test-key".into()), delete_cap: 7 }, 64))
}

mod fake {
    colstore_testkit::index_conformance!(super::fake_fixture);
}

/// Against a real server: every test uses its own index names, so the server is emptied of them first.
struct RealFixture {
    index: Arc<WeaviateIndex>,
}

impl IndexFixture for RealFixture {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }
}
