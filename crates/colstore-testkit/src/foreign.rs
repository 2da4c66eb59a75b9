//! The conformance suite of the `ForeignCollection` port (reading a collection colstore did not create, for
//! `col import qdrant://…`): counts, paging that visits every object once whatever the page size, payloads and
//! vectors as stored, no vectors when none are asked for, and a missing collection. Each adapter runs it from its
//! integration tests against its engine fake (and a real server when one is configured) through a [`ForeignFixture`]
//! that knows how to create a collection in that engine:
//!
//! ```ignore
//! colstore_testkit::foreign::run_suite(&fixture).await;
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{ForeignCollection, ForeignObject, IndexError};
use colstore_domain::{Distance, Vector};
use serde_json::{Map, Value, json};

/// What an adapter's test provides: a way to create a collection in its engine.
#[async_trait]
pub trait ForeignFixture: Send + Sync {
    /// Creates a new collection named `name` with `distance` holding `objects` (UUID ids, every one with a vector of
    /// the same length), the way someone other than colstore would, and returns it as the adapter reads it.
    async fn collection(&self, name: &str, distance: Distance, objects: &[ForeignObject]) -> Arc<dyn ForeignCollection>;

    /// A collection that does not exist.
    fn missing(&self) -> Arc<dyn ForeignCollection>;
}

/// `n` objects with UUID ids, payloads of text, integers, numbers, booleans and lists (what both engines' schemas
/// hold without nesting) and 6-dimensional vectors with full mantissas.
pub fn objects(n: usize) -> Vec<ForeignObject> {
    (0..n)
        .map(|i| {
            let payload = json!({
                "text": format!("object {i}: ü 日本"),
                "n": i,
                "x": i as f64 / 3.0,
                "flag": i % 2 == 0,
                "list": ["a", format!("b{i}")],
            });
            let Value::Object(payload) = payload else { unreachable!("a JSON object") };
            ForeignObject {
                id: format!("{:08x}-0000-4000-8000-{:012x}", i * 7919 % 65_536, i),
                vector: Some((0..6).map(|j| ((i * 13 + j * 5) % 23) as f32 / 7.0 - 1.5).collect()),
                payload,
            }
        })
        .collect()
}

/// Reads every page of `c` at `page` objects per page.
async fn read_all(c: &dyn ForeignCollection, page: usize, with_vectors: bool) -> Vec<ForeignObject> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let p = c.page(cursor.take(), page, with_vectors).await.unwrap_or_else(|e| panic!("page of {}: {e}", c.describe()));
        assert!(p.objects.len() <= page, "a page of {page} held {} objects", p.objects.len());
        out.extend(p.objects);
        match p.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
    panic!("paging {} at {page} per page never ended", c.describe());
}

fn by_id(objects: Vec<ForeignObject>) -> BTreeMap<String, ForeignObject> {
    let n = objects.len();
    let map: BTreeMap<String, ForeignObject> = objects.into_iter().map(|o| (o.id.clone(), o)).collect();
    assert_eq!(map.len(), n, "an object came twice");
    map
}

fn bits(v: &Vector) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Runs every scenario against `fixture`; panics with the first failure.
pub async fn run_suite(fixture: &dyn ForeignFixture) {
    info_reports_dimension_distance_and_count(fixture).await;
    every_object_comes_once_with_its_payload_and_vector_whatever_the_page_size(fixture).await;
    without_vectors_no_vector_comes(fixture).await;
    an_empty_collection_has_no_objects(fixture).await;
    a_missing_collection_is_not_found(fixture).await;
}

async fn info_reports_dimension_distance_and_count(fixture: &dyn ForeignFixture) {
    for (name, distance) in [("InfoDot", Distance::Dot), ("InfoCosine", Distance::Cosine), ("InfoEuclid", Distance::Euclid)] {
        let c = fixture.collection(name, distance, &objects(5)).await;
        let info = c.info().await.unwrap_or_else(|e| panic!("info of {}: {e}", c.describe()));
        assert_eq!((info.dimension.get(), info.distance, info.count), (6, distance, 5), "info of {}", c.describe());
        assert!(c.describe().ends_with(name), "describe names the collection: {}", c.describe());
    }
}

async fn every_object_comes_once_with_its_payload_and_vector_whatever_the_page_size(fixture: &dyn ForeignFixture) {
    let want = objects(23);
    let c = fixture.collection("Paged", Distance::Dot, &want).await;
    for page in [1, 4, 23, 100] {
        let got = by_id(read_all(&*c, page, true).await);
        assert_eq!(got.len(), want.len(), "{page} per page");
        for w in &want {
            let g = got.get(&w.id).unwrap_or_else(|| panic!("object {} missing at {page} per page", w.id));
            let mut payload: Map<String, Value> = g.payload.clone();
            payload.retain(|k, _| w.payload.contains_key(k));
            assert_eq!(payload, w.payload, "object {}: the payload as stored", w.id);
            let (gv, wv) = (g.vector.as_ref().expect("a vector"), w.vector.as_ref().expect("a vector"));
            assert_eq!(bits(gv), bits(wv), "object {}: the vector as stored, bit for bit (Dot is not normalised)", w.id);
        }
    }
}

async fn without_vectors_no_vector_comes(fixture: &dyn ForeignFixture) {
    let c = fixture.collection("NoVectors", Distance::Dot, &objects(3)).await;
    let got = read_all(&*c, 10, false).await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|o| o.vector.is_none()), "no vectors were asked for");
}

async fn an_empty_collection_has_no_objects(fixture: &dyn ForeignFixture) {
    let c = fixture.collection("Empty", Distance::Cosine, &[]).await;
    assert!(read_all(&*c, 10, true).await.is_empty());
}

async fn a_missing_collection_is_not_found(fixture: &dyn ForeignFixture) {
    let c = fixture.missing();
    match c.info().await {
        Err(IndexError::CollectionNotFound(_)) => {}
        other => panic!("info of a missing collection: {other:?}"),
    }
}
