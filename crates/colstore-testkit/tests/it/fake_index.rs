//! `InMemoryIndex` passes the `VectorIndex` conformance suite, plus checks of what only the fake promises.

use std::sync::Arc;

use colstore_domain::Distance;
use colstore_domain::ports::{IndexCapabilities, IndexError, VectorIndex};
use colstore_testkit::InMemoryIndex;
use colstore_testkit::index::{self, IndexFixture};
use serde_json::json;

struct Fake(Arc<InMemoryIndex>);

impl IndexFixture for Fake {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.0.clone()
    }
}

async fn fixture() -> Box<dyn IndexFixture> {
    Box::new(Fake(Arc::new(InMemoryIndex::new())))
}

mod fake {
    colstore_testkit::index_conformance!(super::fixture);
}

#[test]
fn capabilities_are_those_of_the_embedded_index() {
    assert_eq!(
        InMemoryIndex::new().capabilities(),
        IndexCapabilities {
            max_batch_points: 1024,
            max_request_bytes: 256 * 1024 * 1024,
            filter_should: true,
            exact_count: true,
            snapshots: false
        }
    );
}

#[tokio::test]
async fn unavailable_switch_fails_every_call_until_healed() {
    let fake = InMemoryIndex::new();
    let c = index::index_name("cs_test_notes");
    index::ensure(&fake, &c, 2, Distance::Dot).await;
    fake.set_unavailable(Some("injected outage"));
    let r = fake.upsert(&c, vec![index::point(1, vec![1.0, 0.0], json!({}))]).await;
    assert!(matches!(&r, Err(IndexError::Unavailable(m)) if m == "injected outage"), "{r:?}");
    assert!(matches!(fake.count(&c, None).await, Err(IndexError::Unavailable(_))));
    let h = fake.health().await.expect("health answers even when unavailable");
    assert_eq!((h.ok, h.detail.as_deref()), (false, Some("injected outage")));
    fake.set_unavailable(None);
    assert_eq!(index::count(&fake, &c, None).await, 0, "nothing was written while unavailable");
    assert_eq!(fake.collection_names(), [c]);
}

/// A scenario missing from the macro's list would silently never run against any backend.
#[test]
fn every_scenario_is_listed_in_the_macro() {
    let source = include_str!("../../src/index.rs");
    let (_, after) = source.split_once("(@scenarios $factory:path;").expect("the macro's scenario list");
    assert!(after.contains("$crate::index::$scenario"));
    let list_start = source.find("$crate::index_conformance!(@ $mode $factory;").expect("the macro's list");
    let listed: Vec<&str> = source[list_start..]
        .split_once(';')
        .and_then(|(_, rest)| rest.split_once(");"))
        .map(|(names, _)| names.split(',').map(str::trim).filter(|n| !n.is_empty()).collect())
        .expect("scenario names");
    let defined: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub async fn "))
        .filter(|l| l.contains("(f: &dyn IndexFixture)"))
        .filter_map(|l| l.split_once('('))
        .map(|(n, _)| n)
        .collect();
    assert!(defined.len() >= 20, "at least 20 scenarios: {defined:?}");
    let mut a = listed.clone();
    let mut b = defined.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "the macro lists exactly the scenarios defined in index.rs");
}
