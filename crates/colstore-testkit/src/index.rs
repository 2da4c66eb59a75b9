//! The `VectorIndex` conformance suite.
//!
//! Every scenario is a plain `async fn(&dyn IndexFixture)`; [`index_conformance!`](crate::index_conformance) turns each
//! into one `#[tokio::test]` for the backend whose fixture factory it is given. Each scenario gets a fresh, empty
//! index, so there is no shared state and no sleeping.
//!
//! The expectations follow the port's contract and Qdrant's semantics (ADAPTERS.md): upserts replace by id and are
//! all-or-nothing, `scroll` pages in id order (UUID byte order, which is the order of the lowercase hyphenated
//! strings) with `next` = the first id of the next page, filters select exactly what [`Filter::matches`] selects,
//! search scores are higher-is-closer (Euclidean distances negated) with ties broken by id, and cosine vectors are
//! normalised on write. Vectors are chosen so that scores are exact in `f32`, which makes rankings and ties exact.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{IndexError, ScrollPage, ScrollRequest, SearchRequest, StoredPoint, VectorIndex};
use colstore_domain::{
    CollectionName, ContentHash, Dimension, Distance, DocKey, EmbedderId, Filter, IndexName, Payload, Point, PointId, ScoredPoint, StoreId,
    VectorSettings,
};
use serde_json::{Map, Value, json};

/// One fresh, empty index under test.
#[async_trait]
pub trait IndexFixture: Send + Sync {
    /// The index under test (empty at first).
    fn index(&self) -> Arc<dyn VectorIndex>;
}

/// Turns every scenario of the `VectorIndex` suite into a `#[tokio::test]` against one backend.
///
/// `$factory` is an `async fn() -> Box<dyn IndexFixture>` that builds a fresh, empty index. Invoke it inside a module
/// named after the backend, so tests read `embedded::scroll_pages_in_id_order`. The calling crate needs `tokio`
/// (features `macros`, `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// mod fake {
///     colstore_testkit::index_conformance!(super::fixture);
/// }
/// ```
///
/// `index_conformance!(optional $factory)` takes an `async fn() -> Option<Box<dyn IndexFixture>>` instead: each
/// scenario returns at once when it gives `None` (a real server that is not configured; the factory reports the skip,
/// see [`ServerFixture`]).
#[macro_export]
macro_rules! index_conformance {
    ($factory:path) => {
        $crate::index_conformance!(@list scenarios $factory);
    };
    (optional $factory:path) => {
        $crate::index_conformance!(@list optional $factory);
    };
    (@list $mode:ident $factory:path) => {
        $crate::index_conformance!(@ $mode $factory;
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
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let f = $factory().await;
                $crate::index::$scenario(&*f).await;
            }
        )+
    };
    (@optional $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let Some(f) = $factory().await else { return };
                $crate::index::$scenario(&*f).await;
            }
        )+
    };
}

/// A fixture on a shared real server (`TEST_QDRANT_URL`, `TEST_WEAVIATE_URL`): every index name the suite uses gets a
/// suffix unique to the fixture, so scenarios running in parallel never meet, and the collections it made are dropped
/// when it goes. Errors name the caller's index again.
pub struct ServerFixture {
    index: Arc<Namespaced>,
}

impl ServerFixture {
    /// A fixture over `inner`, an adapter connected to the real server.
    pub fn new(inner: Arc<dyn VectorIndex>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let suffix = format!("t{}x{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        Self { index: Arc::new(Namespaced { inner, suffix, used: std::sync::Mutex::new(Vec::new()) }) }
    }

    /// Reports, once per test binary, that no server is configured (through [`need::skip`](crate::need::skip), so a
    /// `COLSTORE_REQUIRE_*` switch turns it into a failure), and returns `None` for the scenario to return early.
    pub fn skipped(need: crate::need::Need, why: &str) -> Option<Box<dyn IndexFixture>> {
        static ONCE: std::sync::Once = std::sync::Once::new();
        if need.required() {
            crate::need::skip(need, why);
        }
        ONCE.call_once(|| crate::need::skip(need, &format!("{why}; every scenario of the real-server suite returns at once")));
        None
    }
}

impl IndexFixture for ServerFixture {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }
}

impl Drop for ServerFixture {
    fn drop(&mut self) {
        // On a thread of its own: this runs inside the test's runtime.
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

/// `inner` with every index name suffixed ([`ServerFixture`]).
struct Namespaced {
    inner: Arc<dyn VectorIndex>,
    suffix: String,
    used: std::sync::Mutex<Vec<IndexName>>,
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
    fn capabilities(&self) -> colstore_domain::ports::IndexCapabilities {
        self.inner.capabilities()
    }
    async fn health(&self) -> Result<colstore_domain::ports::IndexHealth, IndexError> {
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

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/// The store the suite's point ids are derived in.
pub const STORE: &str = "5f0c2a8e-1b7d-4c3e-9a6f-0d2e4b8c1a7f";

/// The colstore collection every suite payload names.
pub const COLLECTION: &str = "notes";

/// The suite's store id.
///
/// # Panics
/// Never: [`STORE`] is a valid UUID.
pub fn store() -> StoreId {
    STORE.parse().unwrap_or_else(|e| panic!("bad STORE: {e}"))
}

/// An index collection name.
///
/// # Panics
/// When `s` is not a valid name (a mistake in the scenario).
pub fn index_name(s: &str) -> IndexName {
    IndexName::parse(s).unwrap_or_else(|e| panic!("bad index name in a scenario: {e}"))
}

/// Vector settings with user-supplied vectors of `dim` floats.
///
/// # Panics
/// When `dim` is not a valid dimension.
pub fn settings(dim: u32, distance: Distance) -> VectorSettings {
    let dimension = Dimension::new(dim).unwrap_or_else(|e| panic!("bad dimension in a scenario: {e}"));
    VectorSettings { embedder: EmbedderId { kind: "user".into(), model: String::new(), dimension }, distance }
}

/// The key of point `n`: `docs/<n>.md`.
pub fn key_of(n: u64) -> String {
    format!("docs/{n}.md")
}

/// The id of point `n`: derived like a real chunk id (UUIDv5), so ids are in no relation to `n`.
///
/// # Panics
/// Never for the suite's constants.
pub fn point_id(n: u64) -> PointId {
    let collection = CollectionName::parse(COLLECTION).unwrap_or_else(|e| panic!("bad COLLECTION: {e}"));
    let key = DocKey::parse(&key_of(n)).unwrap_or_else(|e| panic!("bad key: {e}"));
    PointId::derive(store(), &collection, &key, 0)
}

/// A point id from its 128-bit value (big-endian bytes, so numeric order is id order).
///
/// # Panics
/// Never: every `u128` is a UUID.
pub fn point_id_from_u128(n: u128) -> PointId {
    serde_json::from_value(Value::String(format!("{n:032x}"))).unwrap_or_else(|e| panic!("bad uuid: {e}"))
}

/// A payload for document `key`, chunk `chunk`, with `metadata` (a JSON object).
///
/// # Panics
/// When `key` is not a valid key or `metadata` is not an object.
pub fn payload(key: &str, chunk: u32, metadata: Value) -> Payload {
    let Value::Object(metadata) = metadata else { panic!("metadata must be a JSON object in a scenario") };
    Payload {
        collection: CollectionName::parse(COLLECTION).unwrap_or_else(|e| panic!("bad COLLECTION: {e}")),
        key: DocKey::parse(key).unwrap_or_else(|e| panic!("bad key in a scenario: {e}")),
        chunk,
        content_hash: ContentHash::of(key.as_bytes()),
        chunk_hash: ContentHash::of(format!("{key}#{chunk}").as_bytes()),
        metadata,
    }
}

/// Point `n`: id [`point_id`]`(n)`, key [`key_of`]`(n)`, chunk `n % 3`, the given vector and metadata.
pub fn point(n: u64, vector: Vec<f32>, metadata: Value) -> Point {
    Point { id: point_id(n), vector, payload: payload(&key_of(n), (n % 3) as u32, metadata) }
}

/// A filter from its JSON form (`{"must": [{"match": {"key": "metadata.lang", "value": "en"}}], ...}`).
///
/// # Panics
/// When the JSON is not a filter (a mistake in the scenario).
pub fn filter(v: Value) -> Filter {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("bad filter {v} in a scenario: {e}"))
}

/// The JSON object a filter is evaluated against: the payload serialised flat.
///
/// # Panics
/// When the payload does not serialise to an object (it always does).
pub fn payload_object(p: &Payload) -> Map<String, Value> {
    match serde_json::to_value(p) {
        Ok(Value::Object(m)) => m,
        other => panic!("a payload serialises to an object, got {other:?}"),
    }
}

/// The ids of `points` whose payload matches `f` by [`Filter::matches`], in id order: what any filtered read must return.
pub fn reference_ids(points: &[Point], f: &Filter) -> Vec<PointId> {
    let set: BTreeSet<PointId> = points.iter().filter(|p| f.matches(&payload_object(&p.payload))).map(|p| p.id).collect();
    set.into_iter().collect()
}

/// Ids of stored points, in the order given.
pub fn ids_of(points: &[StoredPoint]) -> Vec<PointId> {
    points.iter().map(|p| p.id).collect()
}

/// Ids of search hits, in the order given.
pub fn hit_ids(hits: &[ScoredPoint]) -> Vec<PointId> {
    hits.iter().map(|h| h.id).collect()
}

/// Creates (or keeps) a collection; the call must succeed.
///
/// # Panics
/// When the index fails.
pub async fn ensure(index: &dyn VectorIndex, name: &IndexName, dim: u32, distance: Distance) {
    index.ensure_collection(name, &settings(dim, distance)).await.unwrap_or_else(|e| panic!("ensure_collection({name}) failed: {e}"));
}

/// Upserts points; the call must succeed.
///
/// # Panics
/// When the index fails.
pub async fn upsert(index: &dyn VectorIndex, name: &IndexName, points: Vec<Point>) {
    let n = points.len();
    index.upsert(name, points).await.unwrap_or_else(|e| panic!("upsert of {n} points into {name} failed: {e}"));
}

/// Counts points; the call must succeed.
///
/// # Panics
/// When the index fails.
pub async fn count(index: &dyn VectorIndex, name: &IndexName, f: Option<Filter>) -> u64 {
    index.count(name, f.clone()).await.unwrap_or_else(|e| panic!("count({name}, {f:?}) failed: {e}"))
}

/// Reads one page; the call must succeed.
///
/// # Panics
/// When the index fails.
pub async fn scroll(index: &dyn VectorIndex, name: &IndexName, request: ScrollRequest) -> ScrollPage {
    index.scroll(name, request.clone()).await.unwrap_or_else(|e| panic!("scroll({name}, {request:?}) failed: {e}"))
}

/// Reads every (matching) point by following `next` with pages of `page`, checking the paging rules on the way:
/// pages are at most `page` long, a page with a `next` is full, and `next` lies beyond the page's last id.
///
/// # Panics
/// When the index fails or breaks a paging rule.
pub async fn scroll_all(index: &dyn VectorIndex, name: &IndexName, f: Option<Filter>, with_vectors: bool, page: usize) -> Vec<StoredPoint> {
    let mut out: Vec<StoredPoint> = Vec::new();
    let mut from = None;
    for _ in 0..100_000 {
        let p = scroll(index, name, ScrollRequest { from, limit: page, filter: f.clone(), with_vectors }).await;
        assert!(p.points.len() <= page, "a page holds at most `limit` points ({} > {page})", p.points.len());
        if let Some(next) = p.next {
            assert_eq!(p.points.len(), page, "a page followed by another is full");
            if let Some(last) = p.points.last() {
                assert!(last.id < next, "next ({next}) lies beyond the page's last id ({})", last.id);
            }
        }
        out.extend(p.points);
        match p.next {
            None => return out,
            Some(next) => from = Some(next),
        }
    }
    panic!("scrolling {name} did not end after 100 000 pages")
}

/// Searches; the call must succeed.
///
/// # Panics
/// When the index fails.
pub async fn search(index: &dyn VectorIndex, name: &IndexName, vector: Vec<f32>, limit: usize, f: Option<Filter>) -> Vec<ScoredPoint> {
    let request = SearchRequest { vector, limit, filter: f };
    index.search(name, request.clone()).await.unwrap_or_else(|e| panic!("search({name}, {request:?}) failed: {e}"))
}

/// Asserts that hits are exactly `want` (ids in order) with scores within 1e-5.
///
/// # Panics
/// When they differ.
pub fn assert_hits(hits: &[ScoredPoint], want: &[(PointId, f32)], label: &str) {
    let got: Vec<(PointId, f32)> = hits.iter().map(|h| (h.id, h.score)).collect();
    assert_eq!(hit_ids(hits), want.iter().map(|w| w.0).collect::<Vec<_>>(), "{label}: ranking (got {got:?}, want {want:?})");
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() <= 1e-5, "{label}: score of {} is {}, want {}", g.0, g.1, w.1);
    }
}

/// Asserts that two vectors are equal within 1e-6 per component.
///
/// # Panics
/// When they differ.
pub fn assert_vector_close(got: &[f32], want: &[f32], label: &str) {
    assert_eq!(got.len(), want.len(), "{label}: vector length");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6, "{label}: got {got:?}, want {want:?}");
    }
}

/// The ids of points `ns`, sorted by id.
pub fn sorted_ids(ns: impl IntoIterator<Item = u64>) -> Vec<PointId> {
    let set: BTreeSet<PointId> = ns.into_iter().map(point_id).collect();
    set.into_iter().collect()
}

/// `ids` sorted ascending, tie order for equal scores.
fn by_id(mut ids: Vec<PointId>) -> Vec<PointId> {
    ids.sort_unstable();
    ids
}

fn expect_not_found<T: std::fmt::Debug>(r: Result<T, IndexError>, what: &str, want: &IndexName) {
    match r {
        Err(IndexError::CollectionNotFound(n)) => assert_eq!(&n, want, "{what}: CollectionNotFound names the wrong collection"),
        other => panic!("{what}: expected CollectionNotFound({want}), got {other:?}"),
    }
}

fn expect_mismatch<T: std::fmt::Debug>(r: Result<T, IndexError>, what: &str, expected: u32, got: u32) {
    match r {
        Err(IndexError::DimensionMismatch { expected: e, got: g }) => {
            assert_eq!((e, g), (expected, got), "{what}: DimensionMismatch reports (expected, got)");
        }
        other => panic!("{what}: expected DimensionMismatch {{ expected: {expected}, got: {got} }}, got {other:?}"),
    }
}

/// Small integers as a vector (exact in `f32`).
fn v(xs: &[i32]) -> Vec<f32> {
    xs.iter().map(|&x| x as f32).collect()
}

/// A deterministic vector of small integers in -4..=4 for point `n`.
fn small_ints(n: u64, dim: usize) -> Vec<f32> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 58) % 9) as f32 - 4.0
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The reference ranking for a dot collection: exact scores (small integers), best first, ties by id.
fn reference_dot_ranking(points: &[Point], query: &[f32], f: Option<&Filter>, limit: usize) -> Vec<(PointId, f32)> {
    let mut all: Vec<(PointId, f32)> =
        points.iter().filter(|p| f.is_none_or(|f| f.matches(&payload_object(&p.payload)))).map(|p| (p.id, dot(&p.vector, query))).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(limit);
    all
}

// ---------------------------------------------------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------------------------------------------------

/// `ensure_collection` twice is fine and keeps the points written in between.
pub async fn ensure_collection_is_idempotent(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 4, Distance::Cosine).await;
    ensure(&*index, &c, 4, Distance::Cosine).await;
    upsert(&*index, &c, (0..3).map(|n| point(n, v(&[1, 2, 3, n as i32]), json!({}))).collect()).await;
    ensure(&*index, &c, 4, Distance::Cosine).await;
    assert_eq!(count(&*index, &c, None).await, 3, "ensuring an existing collection keeps its points");
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 10).await), sorted_ids(0..3));
}

/// Ensuring an existing collection with another dimension fails with `DimensionMismatch` and changes nothing.
pub async fn ensure_with_other_dimension_is_a_mismatch(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 4, Distance::Cosine).await;
    upsert(&*index, &c, vec![point(1, v(&[1, 0, 0, 0]), json!({}))]).await;
    expect_mismatch(index.ensure_collection(&c, &settings(8, Distance::Cosine)).await, "ensure with dimension 8", 4, 8);
    upsert(&*index, &c, vec![point(2, v(&[0, 1, 0, 0]), json!({}))]).await;
    assert_eq!(count(&*index, &c, None).await, 2, "the collection keeps dimension 4 and its points");
    expect_mismatch(index.upsert(&c, vec![point(3, vec![0.0; 8], json!({}))]).await, "upsert of 8 floats after the failed ensure", 4, 8);
}

/// Ensuring an existing collection with the same dimension but another distance is refused (`DimensionMismatch`,
/// the port's error for "exists with other settings"): scores would silently change meaning otherwise.
pub async fn ensure_with_other_distance_is_rejected(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 3, Distance::Dot).await;
    upsert(&*index, &c, vec![point(1, v(&[3, 4, 0]), json!({}))]).await;
    let r = index.ensure_collection(&c, &settings(3, Distance::Cosine)).await;
    assert!(matches!(r, Err(IndexError::DimensionMismatch { .. })), "ensure with distance cosine over dot: {r:?}");
    // Still a dot collection: the vector was not normalised and scores are raw inner products.
    assert_hits(&search(&*index, &c, v(&[1, 0, 0]), 1, None).await, &[(point_id(1), 3.0)], "still dot");
}

/// Dropping a collection that does not exist succeeds with `false`.
pub async fn drop_missing_collection_returns_false(f: &dyn IndexFixture) {
    let index = f.index();
    assert!(!index.drop_collection(&index_name("cs_test_ghost")).await.expect("drop missing"), "dropping a missing collection → false");
    ensure(&*index, &index_name("cs_test_notes"), 2, Distance::Dot).await;
    assert!(!index.drop_collection(&index_name("cs_test_ghost")).await.expect("drop missing"), "other collections do not matter");
}

/// A dropped collection reports `true` once, then is gone; re-creating it (even with another dimension) starts empty,
/// and searches see the new points, not the old ones.
pub async fn dropped_collection_is_gone_and_can_be_recreated(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 3, Distance::Dot).await;
    upsert(&*index, &c, (0..10).map(|n| point(n, v(&[n as i32, 1, 0]), json!({"old": true}))).collect()).await;
    assert_eq!(search(&*index, &c, v(&[1, 0, 0]), 1, None).await.len(), 1, "searchable before the drop");
    assert!(index.drop_collection(&c).await.expect("drop"), "dropping an existing collection → true");
    assert!(!index.drop_collection(&c).await.expect("drop again"), "dropping it again → false");
    expect_not_found(index.count(&c, None).await, "count after drop", &c);
    expect_not_found(index.search(&c, SearchRequest { vector: v(&[1, 0, 0]), limit: 1, filter: None }).await, "search after drop", &c);

    ensure(&*index, &c, 2, Distance::Dot).await;
    assert_eq!(count(&*index, &c, None).await, 0, "a re-created collection starts empty");
    assert!(scroll_all(&*index, &c, None, false, 10).await.is_empty());
    assert!(search(&*index, &c, v(&[1, 0]), 10, None).await.is_empty(), "no old point is found");
    upsert(&*index, &c, vec![point(3, v(&[0, 5]), json!({"old": false}))]).await;
    let hits = search(&*index, &c, v(&[0, 1]), 10, None).await;
    assert_hits(&hits, &[(point_id(3), 5.0)], "only the new point");
    assert_eq!(hits[0].payload.metadata.get("old"), Some(&json!(false)));
}

/// Every point operation on a missing collection fails with `CollectionNotFound` naming it.
pub async fn missing_collection_is_reported_by_every_method(f: &dyn IndexFixture) {
    let index = f.index();
    ensure(&*index, &index_name("cs_test_other"), 2, Distance::Dot).await;
    let c = index_name("cs_test_ghost");
    expect_not_found(index.upsert(&c, vec![point(1, v(&[1, 0]), json!({}))]).await, "upsert", &c);
    expect_not_found(index.delete(&c, vec![point_id(1)]).await, "delete", &c);
    expect_not_found(
        index.delete_by_filter(&c, &filter(json!({"must": [{"match": {"key": "chunk", "value": 0}}]}))).await,
        "delete_by_filter",
        &c,
    );
    expect_not_found(index.scroll(&c, ScrollRequest { from: None, limit: 10, filter: None, with_vectors: false }).await, "scroll", &c);
    expect_not_found(index.count(&c, None).await, "count", &c);
    expect_not_found(index.search(&c, SearchRequest { vector: v(&[1, 0]), limit: 3, filter: None }).await, "search", &c);
}

// ---------------------------------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------------------------------

/// A batch holding one vector of the wrong length (too short or too long) fails with `DimensionMismatch` and writes
/// nothing: neither its new points nor its replacements.
pub async fn upsert_with_wrong_dimension_writes_nothing(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 3, Distance::Dot).await;
    upsert(&*index, &c, vec![point(1, v(&[1, 0, 0]), json!({"v": 1}))]).await;
    for bad in [v(&[1, 0]), v(&[1, 0, 0, 0])] {
        let got = bad.len() as u32;
        let batch = vec![point(2, v(&[0, 1, 0]), json!({"v": 1})), point(1, v(&[0, 0, 1]), json!({"v": 2})), point(3, bad, json!({}))];
        expect_mismatch(index.upsert(&c, batch).await, "upsert with a bad vector last", 3, got);
    }
    let all = scroll_all(&*index, &c, None, true, 10).await;
    assert_eq!(ids_of(&all), [point_id(1)], "no point of the failed batches was written");
    assert_eq!(all[0].payload.metadata.get("v"), Some(&json!(1)), "the replacement in the failed batch was not applied");
    assert_eq!(all[0].vector.as_deref(), Some(&[1.0, 0.0, 0.0][..]));
    assert_eq!(count(&*index, &c, None).await, 1);
    assert_eq!(hit_ids(&search(&*index, &c, v(&[0, 1, 0]), 10, None).await), [point_id(1)], "search sees no half-written batch");
}

/// Upserting an existing id replaces its vector and payload; it never duplicates.
pub async fn upsert_replaces_points_by_id(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    upsert(&*index, &c, vec![point(1, v(&[1, 0]), json!({"v": 1})), point(2, v(&[2, 0]), json!({"v": 1}))]).await;
    assert_eq!(hit_ids(&search(&*index, &c, v(&[1, 0]), 1, None).await), [point_id(2)], "warm up: point 2 leads");
    let mut replacement = point(1, v(&[0, 3]), json!({"v": 2}));
    replacement.payload.chunk = 7;
    upsert(&*index, &c, vec![replacement.clone()]).await;
    assert_eq!(count(&*index, &c, None).await, 2, "replacing does not add a point");
    let all = scroll_all(&*index, &c, None, true, 10).await;
    let one = all.iter().find(|p| p.id == point_id(1)).expect("point 1 is still there");
    assert_eq!(one.payload, replacement.payload, "the payload is replaced whole");
    assert_eq!(one.vector.as_deref(), Some(&[0.0, 3.0][..]), "the vector is replaced");
    assert_hits(&search(&*index, &c, v(&[0, 1]), 2, None).await, &[(point_id(1), 3.0), (point_id(2), 0.0)], "search uses the new vector");
    assert_hits(&search(&*index, &c, v(&[1, 0]), 2, None).await, &[(point_id(2), 2.0), (point_id(1), 0.0)], "and not the old one");
}

/// `delete` removes the given ids and ignores ids that are not there (or were already deleted).
pub async fn delete_ignores_missing_ids(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    upsert(&*index, &c, (0..5).map(|n| point(n, v(&[n as i32, 1]), json!({}))).collect()).await;
    assert_eq!(search(&*index, &c, v(&[1, 0]), 1, None).await.len(), 1, "warm up");
    index.delete(&c, vec![point_id(1), point_id(99), point_id(3)]).await.expect("delete with a missing id");
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 10).await), sorted_ids([0, 2, 4]));
    index.delete(&c, vec![point_id(1), point_id(3)]).await.expect("deleting deleted ids");
    index.delete(&c, vec![]).await.expect("deleting nothing");
    assert_eq!(count(&*index, &c, None).await, 3);
    assert_hits(&search(&*index, &c, v(&[1, 0]), 10, None).await, &[(point_id(4), 4.0), (point_id(2), 2.0), (point_id(0), 0.0)], "search");
}

/// `delete_by_filter` removes exactly the points `Filter::matches` selects (reporting how many, when it says), and
/// a filter on a missing key deletes nothing.
pub async fn delete_by_filter_removes_exactly_the_matches(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    let langs = [json!({"lang": "en"}), json!({"lang": "fr"}), json!({}), json!({"lang": ["en", "de"]}), json!({"lang": null})];
    let points: Vec<Point> = (0..30).map(|n| point(n, v(&[n as i32, 1]), langs[n as usize % 5].clone())).collect();
    upsert(&*index, &c, points.clone()).await;
    assert_eq!(search(&*index, &c, v(&[1, 0]), 1, None).await.len(), 1, "warm up");

    let nope = filter(json!({"must": [{"match": {"key": "metadata.nope", "value": "x"}}]}));
    let n = index.delete_by_filter(&c, &nope).await.expect("delete_by_filter on a missing key");
    assert!(n.is_none_or(|n| n == 0), "a missing key matches nothing: {n:?}");
    assert_eq!(count(&*index, &c, None).await, 30);

    let en = filter(json!({"must": [{"match": {"key": "metadata.lang", "value": "en"}}]}));
    let doomed = reference_ids(&points, &en);
    assert_eq!(doomed.len(), 12, "the reference: plain \"en\" and arrays holding \"en\"");
    let n = index.delete_by_filter(&c, &en).await.expect("delete_by_filter");
    assert!(n.is_none_or(|n| n == 12), "delete_by_filter reports the deleted count when it reports one: {n:?}");
    let keep: Vec<PointId> = by_id(points.iter().map(|p| p.id).filter(|id| !doomed.contains(id)).collect());
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 7).await), keep, "exactly the matches are gone");
    let hits = search(&*index, &c, v(&[1, 0]), 100, None).await;
    assert_eq!(by_id(hit_ids(&hits)), keep, "search no longer finds them");
    let again = index.delete_by_filter(&c, &en).await.expect("delete_by_filter again");
    assert!(again.is_none_or(|n| n == 0), "nothing left to delete: {again:?}");
    assert_eq!(count(&*index, &c, None).await, 18);

    // One document's points, as a sync retires them.
    let one = filter(json!({"must": [{"match": {"key": "key", "value": key_of(1)}}]}));
    let n = index.delete_by_filter(&c, &one).await.expect("delete_by_filter by key");
    assert!(n.is_none_or(|n| n == 1), "one point had key {}: {n:?}", key_of(1));
    let keep: Vec<PointId> = by_id(keep.into_iter().filter(|id| *id != point_id(1)).collect());
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 7).await), keep, "only that document's point is gone");
}

// ---------------------------------------------------------------------------------------------------------------------
// Count and scroll
// ---------------------------------------------------------------------------------------------------------------------

/// `count` is exact, with and without a filter; an empty filter counts everything.
pub async fn count_with_and_without_filter(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    assert_eq!(count(&*index, &c, None).await, 0, "empty");
    upsert(&*index, &c, (0..20).map(|n| point(n, v(&[1, n as i32]), json!({"group": n % 4}))).collect()).await;
    assert_eq!(count(&*index, &c, None).await, 20);
    assert_eq!(count(&*index, &c, Some(Filter::default())).await, 20, "an empty filter matches everything");
    assert_eq!(count(&*index, &c, Some(filter(json!({"must": [{"match": {"key": "metadata.group", "value": 0}}]})))).await, 5);
    assert_eq!(count(&*index, &c, Some(filter(json!({"must_not": [{"match": {"key": "metadata.group", "value": 0}}]})))).await, 15);
    assert_eq!(count(&*index, &c, Some(filter(json!({"must": [{"match": {"key": "metadata.group", "value": 9}}]})))).await, 0);
    index.delete(&c, vec![point_id(0), point_id(1)]).await.expect("delete");
    assert_eq!(count(&*index, &c, None).await, 18, "count follows deletes");
    assert_eq!(count(&*index, &c, Some(filter(json!({"must": [{"match": {"key": "metadata.group", "value": 0}}]})))).await, 4);
}

/// 250 points with limit 100 come in three pages (100, 100, 50) in id order; each `next` is the first id of the
/// following page and the last page has none.
pub async fn scroll_pages_through_250_points_in_id_order(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    // Written in two batches in an order unrelated to the ids.
    upsert(&*index, &c, (0..250).rev().filter(|n| n % 2 == 0).map(|n| point(n, v(&[1, 0]), json!({"n": n}))).collect()).await;
    upsert(&*index, &c, (0..250).filter(|n| n % 2 == 1).map(|n| point(n, v(&[1, 0]), json!({"n": n}))).collect()).await;
    let sorted = sorted_ids(0..250);
    let strings: Vec<String> = sorted.iter().map(ToString::to_string).collect();
    let mut resorted = strings.clone();
    resorted.sort();
    assert_eq!(strings, resorted, "UUID byte order is the order of the lowercase hyphenated strings");

    let req = |from| ScrollRequest { from, limit: 100, filter: None, with_vectors: false };
    let p1 = scroll(&*index, &c, req(None)).await;
    assert_eq!(ids_of(&p1.points), sorted[..100], "page 1: the 100 smallest ids, ascending");
    assert_eq!(p1.next, Some(sorted[100]), "page 1: next is the first id of page 2");
    let p2 = scroll(&*index, &c, req(p1.next)).await;
    assert_eq!(ids_of(&p2.points), sorted[100..200], "page 2 starts at next (inclusive)");
    assert_eq!(p2.next, Some(sorted[200]));
    let p3 = scroll(&*index, &c, req(p2.next)).await;
    assert_eq!(ids_of(&p3.points), sorted[200..], "page 3: the last 50");
    assert_eq!(p3.next, None, "the last page has no next");
    for p in p1.points.iter().chain(&p2.points).chain(&p3.points) {
        let n = p.payload.metadata.get("n").and_then(Value::as_u64).expect("payload n");
        assert_eq!(p.id, point_id(n), "each point carries its own payload");
    }
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 1).await), sorted, "pages of one");
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 250).await), sorted, "one page");
    let big = scroll(&*index, &c, ScrollRequest { from: None, limit: 1000, filter: None, with_vectors: false }).await;
    assert_eq!((big.points.len(), big.next), (250, None), "a limit beyond the end");
}

/// `from` is inclusive when it exists and otherwise starts at the next larger id; a full last page has no `next`.
pub async fn scroll_from_is_inclusive_and_need_not_exist(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    upsert(&*index, &c, (0..60).map(|n| point(n, v(&[1, 0]), json!({}))).collect()).await;
    let sorted = sorted_ids(0..60);
    let req = |from, limit| ScrollRequest { from: Some(from), limit, filter: None, with_vectors: false };

    let p = scroll(&*index, &c, req(sorted[37], 5)).await;
    assert_eq!(ids_of(&p.points), sorted[37..42], "an existing from is included");
    assert_eq!(p.next, Some(sorted[42]));

    // An id between sorted[9] and sorted[10] that no point has.
    let between = point_id_from_u128(sorted[9].0.as_u128() + 1);
    assert!(between < sorted[10] && !sorted.contains(&between), "the scenario's probe id lies strictly between two ids");
    let p = scroll(&*index, &c, req(between, 3)).await;
    assert_eq!(ids_of(&p.points), sorted[10..13], "a missing from starts at the next larger id");
    assert_eq!(p.next, Some(sorted[13]));

    let p = scroll(&*index, &c, req(sorted[50], 10)).await;
    assert_eq!(ids_of(&p.points), sorted[50..60], "exactly the rest");
    assert_eq!(p.next, None, "a full page that ends the collection has no next");

    let p = scroll(&*index, &c, req(point_id_from_u128(u128::MAX), 10)).await;
    assert!(p.points.is_empty() && p.next.is_none(), "from beyond the last id: an empty last page");
    let p = scroll(&*index, &c, req(point_id_from_u128(0), 2)).await;
    assert_eq!((ids_of(&p.points), p.next), (sorted[..2].to_vec(), Some(sorted[2])), "from the smallest possible id");
}

/// Vectors come back only with `with_vectors`, exactly as written for dot collections.
pub async fn scroll_returns_vectors_only_when_asked(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 5, Distance::Dot).await;
    let points: Vec<Point> = (0..12).map(|n| point(n, vec![n as f32 * 0.25, -1.5, 3.0, 0.0, 1e-3], json!({"n": n}))).collect();
    upsert(&*index, &c, points.clone()).await;
    let without = scroll_all(&*index, &c, None, false, 5).await;
    assert!(without.iter().all(|p| p.vector.is_none()), "no vectors unless asked");
    let with = scroll_all(&*index, &c, None, true, 5).await;
    assert_eq!(ids_of(&with), ids_of(&without));
    for p in &with {
        let original = points.iter().find(|o| o.id == p.id).expect("a written point");
        assert_eq!(p.vector.as_ref(), Some(&original.vector), "dot vectors read back exactly");
        assert_eq!(p.payload, original.payload, "payload read back");
    }
}

/// With a filter, pages hold only matching points in id order and `next` is the next *matching* id.
pub async fn scroll_with_filter_pages_over_matches(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    let points: Vec<Point> = (0..250).map(|n| point(n, v(&[1, 0]), json!({"group": n % 3}))).collect();
    upsert(&*index, &c, points.clone()).await;
    let g1 = filter(json!({"must": [{"match": {"key": "metadata.group", "value": 1}}]}));
    let want = reference_ids(&points, &g1);
    assert_eq!(want.len(), 83);
    let p = scroll(&*index, &c, ScrollRequest { from: None, limit: 10, filter: Some(g1.clone()), with_vectors: false }).await;
    assert_eq!(ids_of(&p.points), want[..10], "first page: the 10 smallest matching ids");
    assert_eq!(p.next, Some(want[10]), "next is the first matching id of the next page");
    let all = scroll_all(&*index, &c, Some(g1.clone()), false, 10).await;
    assert_eq!(ids_of(&all), want, "all pages together: exactly the matches");
    assert!(all.iter().all(|p| p.payload.metadata.get("group") == Some(&json!(1))));
    // Starting from a non-matching id starts at the next matching one.
    let first_non_matching = sorted_ids(0..250).into_iter().find(|id| !want.contains(id)).expect("a non-matching id");
    let p = scroll(&*index, &c, ScrollRequest { from: Some(first_non_matching), limit: 1, filter: Some(g1), with_vectors: false }).await;
    let expected = want.iter().find(|id| **id > first_non_matching).copied();
    assert_eq!(p.points.first().map(|p| p.id), expected, "from a non-matching id");
}

/// A page size of 0 is refused (Qdrant answers 422), never treated as "everything".
pub async fn scroll_limit_zero_is_rejected(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    upsert(&*index, &c, vec![point(1, v(&[1, 0]), json!({}))]).await;
    let r = index.scroll(&c, ScrollRequest { from: None, limit: 0, filter: None, with_vectors: false }).await;
    assert!(r.is_err(), "limit 0 must be an error, got {r:?}");
}

// ---------------------------------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------------------------------

/// Cosine ranks by angle whatever the lengths of stored or query vectors; equal angles tie and are ordered by id.
pub async fn search_cosine_ranks_by_angle(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 3, Distance::Cosine).await;
    let vectors = [(1, v(&[1, 0, 0])), (2, v(&[5, 0, 0])), (3, v(&[1, 1, 0])), (4, v(&[0, 2, 0])), (5, v(&[-3, 0, 0])), (6, v(&[2, 1, 2]))];
    upsert(&*index, &c, vectors.iter().map(|(n, vec)| point(*n, vec.clone(), json!({}))).collect()).await;
    let tie = by_id(vec![point_id(1), point_id(2)]);
    let want = [
        (tie[0], 1.0),
        (tie[1], 1.0),
        (point_id(3), std::f32::consts::FRAC_1_SQRT_2),
        (point_id(6), 2.0 / 3.0),
        (point_id(4), 0.0),
        (point_id(5), -1.0),
    ];
    assert_hits(&search(&*index, &c, v(&[3, 0, 0]), 10, None).await, &want, "cosine, query of length 3");
    assert_hits(&search(&*index, &c, v(&[0, 0, 7]), 1, None).await, &[(point_id(6), 2.0 / 3.0)], "cosine towards z");
}

/// Dot ranks by raw inner product: longer vectors score higher and the query is not normalised.
pub async fn search_dot_ranks_by_inner_product(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 3, Distance::Dot).await;
    let vectors = [
        (1, vec![10.0, 0.0, 0.0]),
        (2, vec![1.0, 0.0, 0.0]),
        (3, vec![0.5, 3.0, 0.0]),
        (4, vec![0.0, 1.0, 0.0]),
        (5, vec![-2.0, 0.0, 0.0]),
    ];
    upsert(&*index, &c, vectors.iter().map(|(n, vec)| point(*n, vec.clone(), json!({}))).collect()).await;
    let want = [(point_id(1), 10.0), (point_id(2), 1.0), (point_id(3), 0.5), (point_id(4), 0.0), (point_id(5), -2.0)];
    assert_hits(&search(&*index, &c, v(&[1, 0, 0]), 10, None).await, &want, "dot");
    assert_hits(&search(&*index, &c, v(&[2, 0, 0]), 1, None).await, &[(point_id(1), 20.0)], "the query's length scales scores");
    assert_hits(&search(&*index, &c, v(&[0, 1, 0]), 2, None).await, &[(point_id(3), 3.0), (point_id(4), 1.0)], "dot towards y");
}

/// Euclid ranks by distance, closest first, with the score the negated distance (higher is closer).
pub async fn search_euclid_scores_are_negated_distances(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Euclid).await;
    let vectors = [(1, v(&[1, 0])), (2, v(&[1, 2])), (3, v(&[4, 4])), (4, v(&[-2, 0])), (5, v(&[1, -1]))];
    upsert(&*index, &c, vectors.iter().map(|(n, vec)| point(*n, vec.clone(), json!({}))).collect()).await;
    let want = [(point_id(1), 0.0), (point_id(5), -1.0), (point_id(2), -2.0), (point_id(4), -3.0), (point_id(3), -5.0)];
    assert_hits(&search(&*index, &c, v(&[1, 0]), 10, None).await, &want, "euclid from (1, 0)");
    let want = [(point_id(3), -1.0), (point_id(2), -(10f32).sqrt())];
    assert_hits(&search(&*index, &c, v(&[4, 3]), 2, None).await, &want, "euclid from (4, 3)");
    let back = scroll_all(&*index, &c, None, true, 10).await;
    let three = back.iter().find(|p| p.id == point_id(3)).and_then(|p| p.vector.clone());
    assert_eq!(three, Some(v(&[4, 4])), "euclid vectors are not normalised");
}

/// `limit` caps the hits (the best ones), and a limit beyond the collection returns every point.
pub async fn search_respects_limit(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    upsert(&*index, &c, (0..10).map(|n| point(n, v(&[n as i32, 0]), json!({}))).collect()).await;
    assert_hits(&search(&*index, &c, v(&[1, 0]), 3, None).await, &[(point_id(9), 9.0), (point_id(8), 8.0), (point_id(7), 7.0)], "top 3");
    assert_eq!(search(&*index, &c, v(&[1, 0]), 1, None).await.len(), 1);
    let all = search(&*index, &c, v(&[-1, 0]), 100, None).await;
    assert_eq!(hit_ids(&all), (0..10).map(point_id).collect::<Vec<_>>(), "all 10, best (smallest x) first");
}

/// Equal scores are ordered by id, also when the limit cuts through the tied group.
pub async fn search_ties_are_broken_by_id(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    let mut points: Vec<Point> = (0..8).map(|n| point(n, v(&[1, 1]), json!({}))).collect();
    points.push(point(100, v(&[2, 2]), json!({})));
    upsert(&*index, &c, points).await;
    let tied = sorted_ids(0..8);
    let want: Vec<(PointId, f32)> = std::iter::once((point_id(100), 2.0)).chain(tied.iter().take(3).map(|id| (*id, 1.0))).collect();
    assert_hits(&search(&*index, &c, v(&[1, 0]), 4, None).await, &want, "limit inside the tie: the smallest ids");
    let want: Vec<(PointId, f32)> = std::iter::once((point_id(100), 2.0)).chain(tied.iter().map(|id| (*id, 1.0))).collect();
    assert_hits(&search(&*index, &c, v(&[1, 0]), 20, None).await, &want, "the whole tie in id order");
}

/// With a filter, only matching points are ranked, and the best matching ones are returned.
pub async fn search_with_filter_ranks_only_matches(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 6, Distance::Dot).await;
    let points: Vec<Point> = (0..80).map(|n| point(n, small_ints(n, 6), json!({"group": n % 4}))).collect();
    upsert(&*index, &c, points.clone()).await;
    let query = v(&[1, -2, 3, 0, 1, 2]);
    let g = filter(json!({"must": [{"match_any": {"key": "metadata.group", "any": [1, 2]}}]}));
    for limit in [1, 5, 80] {
        let want = reference_dot_ranking(&points, &query, Some(&g), limit);
        assert_hits(&search(&*index, &c, query.clone(), limit, Some(g.clone())).await, &want, &format!("filtered, limit {limit}"));
        let want = reference_dot_ranking(&points, &query, None, limit);
        assert_hits(&search(&*index, &c, query.clone(), limit, None).await, &want, &format!("unfiltered, limit {limit}"));
    }
    let none = filter(json!({"must": [{"match": {"key": "metadata.group", "value": 7}}]}));
    assert!(search(&*index, &c, query, 10, Some(none)).await.is_empty(), "no match, no hits");
}

/// A query vector of the wrong length fails with `DimensionMismatch`.
pub async fn search_with_wrong_dimension_is_a_mismatch(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 3, Distance::Cosine).await;
    upsert(&*index, &c, vec![point(1, v(&[1, 0, 0]), json!({}))]).await;
    expect_mismatch(index.search(&c, SearchRequest { vector: v(&[1, 0]), limit: 3, filter: None }).await, "search with 2 floats", 3, 2);
    expect_mismatch(index.search(&c, SearchRequest { vector: v(&[1, 0, 0, 0]), limit: 3, filter: None }).await, "search with 4", 3, 4);
}

/// Searching an empty collection returns no hits (not an error).
pub async fn search_on_empty_collection_returns_nothing(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 3, Distance::Cosine).await;
    assert!(search(&*index, &c, v(&[1, 0, 0]), 10, None).await.is_empty());
    upsert(&*index, &c, vec![point(1, v(&[1, 0, 0]), json!({}))]).await;
    index.delete(&c, vec![point_id(1)]).await.expect("delete");
    assert!(search(&*index, &c, v(&[1, 0, 0]), 10, None).await.is_empty(), "emptied again");
}

/// Every kind of write is visible to the next search (indexes that keep vectors in memory must not serve stale copies).
pub async fn search_sees_every_write(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    let q = || v(&[1, 0]);
    upsert(&*index, &c, vec![point(1, v(&[1, 0]), json!({"v": 1}))]).await;
    assert_hits(&search(&*index, &c, q(), 5, None).await, &[(point_id(1), 1.0)], "first write");
    upsert(&*index, &c, vec![point(2, v(&[2, 0]), json!({"v": 1}))]).await;
    assert_hits(&search(&*index, &c, q(), 5, None).await, &[(point_id(2), 2.0), (point_id(1), 1.0)], "an added point");
    upsert(&*index, &c, vec![point(2, v(&[-1, 0]), json!({"v": 2}))]).await;
    let hits = search(&*index, &c, q(), 5, None).await;
    assert_hits(&hits, &[(point_id(1), 1.0), (point_id(2), -1.0)], "a replaced vector");
    assert_eq!(hits[1].payload.metadata.get("v"), Some(&json!(2)), "a replaced payload");
    index.delete(&c, vec![point_id(1)]).await.expect("delete");
    assert_hits(&search(&*index, &c, q(), 5, None).await, &[(point_id(2), -1.0)], "a deleted point");
    let all = filter(json!({"must": [{"match": {"key": "collection", "value": COLLECTION}}]}));
    index.delete_by_filter(&c, &all).await.expect("delete_by_filter");
    assert!(search(&*index, &c, q(), 5, None).await.is_empty(), "deleted by filter");
    upsert(&*index, &c, vec![point(3, v(&[3, 0]), json!({}))]).await;
    assert_hits(&search(&*index, &c, q(), 5, None).await, &[(point_id(3), 3.0)], "written after emptying");

    // Filtered reads after writes that change which points match.
    let en = || Some(filter(json!({"must": [{"match": {"key": "metadata.lang", "value": "en"}}]})));
    upsert(&*index, &c, vec![point(10, v(&[5, 0]), json!({"lang": "en"}))]).await;
    assert_hits(&search(&*index, &c, q(), 5, en()).await, &[(point_id(10), 5.0)], "filtered, one match");
    assert_eq!(count(&*index, &c, en()).await, 1);
    upsert(&*index, &c, vec![point(11, v(&[6, 0]), json!({"lang": "en"}))]).await;
    assert_hits(&search(&*index, &c, q(), 5, en()).await, &[(point_id(11), 6.0), (point_id(10), 5.0)], "a new match");
    assert_eq!(count(&*index, &c, en()).await, 2);
    upsert(&*index, &c, vec![point(11, v(&[7, 0]), json!({"lang": "fr"}))]).await;
    assert_hits(&search(&*index, &c, q(), 5, en()).await, &[(point_id(10), 5.0)], "a point that stopped matching");
    assert_eq!(count(&*index, &c, en()).await, 1);
    index.delete(&c, vec![point_id(10)]).await.expect("delete");
    assert!(search(&*index, &c, q(), 5, en()).await.is_empty(), "a deleted match");
    assert_eq!(count(&*index, &c, en()).await, 0);
}

/// Count, scroll and search select exactly what [`Filter::matches`] selects, for match, match-any, range, is-empty,
/// must/should/must-not, nested filters, nested metadata, arrays (any element), type-strict matching, missing keys
/// and top-level payload fields.
pub async fn filters_follow_the_reference_semantics(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    let langs = [json!("en"), json!("fr"), json!("de"), Value::Null];
    let tags = [json!(["a", "b"]), json!(["c"]), json!([]), json!("a")];
    let points: Vec<Point> = (0..60u64)
        .map(|n| {
            let mut m = Map::new();
            if n % 5 != 4 {
                m.insert("lang".into(), langs[n as usize % 4].clone());
            }
            if n % 7 != 6 {
                m.insert("tags".into(), tags[n as usize % 4].clone());
            }
            m.insert("year".into(), if n % 6 == 0 { json!(2000.5 + n as f64) } else { json!(2000 + n) });
            m.insert("draft".into(), json!(n % 2 == 0));
            m.insert("author".into(), json!({"name": if n % 3 == 0 { "Ann" } else { "Bob" }, "age": n}));
            m.insert("mixed".into(), if n % 2 == 0 { json!(1) } else { json!("1") });
            m.insert("nums".into(), json!([n, n + 100]));
            m.insert("score".into(), json!(n as f64 / 10.0));
            point(n, v(&[1, n as i32]), Value::Object(m))
        })
        .collect();
    upsert(&*index, &c, points.clone()).await;
    let k3 = key_of(3);
    let hash7 = points[7].payload.content_hash.to_hex();
    let cases: Vec<Value> = vec![
        json!({}),
        json!({"must": [{"match": {"key": "metadata.lang", "value": "en"}}]}),
        json!({"must": [{"match_any": {"key": "metadata.lang", "any": ["en", "de"]}}]}),
        json!({"must": [{"match": {"key": "metadata.tags", "value": "a"}}]}),
        json!({"must": [{"match_any": {"key": "metadata.tags", "any": ["b", "c"]}}]}),
        json!({"must": [{"is_empty": {"key": "metadata.tags"}}]}),
        json!({"must": [{"is_empty": {"key": "metadata.lang"}}]}),
        json!({"must_not": [{"is_empty": {"key": "metadata.lang"}}]}),
        json!({"must": [{"range": {"key": "metadata.year", "range": {"gte": 2010.0, "lt": 2020.0}}}]}),
        json!({"must": [{"range": {"key": "metadata.year", "range": {"gt": 2012.0, "lte": 2013.0}}}]}),
        json!({"must": [{"range": {"key": "metadata.score", "range": {"gt": 1.5}}}]}),
        json!({"must": [{"range": {"key": "metadata.nums", "range": {"gte": 130.0, "lte": 131.0}}}]}),
        json!({"must": [{"range": {"key": "metadata.lang", "range": {"gte": 0.0}}}]}),
        json!({"must": [{"match": {"key": "metadata.draft", "value": true}}]}),
        json!({"must": [{"match": {"key": "metadata.author.name", "value": "Ann"}}]}),
        json!({"must": [{"range": {"key": "metadata.author.age", "range": {"lt": 10.0}}}]}),
        json!({"must": [{"match": {"key": "metadata.author", "value": "Ann"}}]}),
        json!({"must": [{"match": {"key": "metadata.mixed", "value": 1}}]}),
        json!({"must": [{"match": {"key": "metadata.mixed", "value": "1"}}]}),
        json!({"must": [{"match": {"key": "metadata.nope", "value": "x"}}]}),
        json!({"must_not": [{"match": {"key": "metadata.nope", "value": "x"}}]}),
        json!({"must_not": [{"match": {"key": "metadata.lang", "value": "en"}}]}),
        json!({"should": [{"match": {"key": "metadata.lang", "value": "fr"}}, {"match": {"key": "metadata.draft", "value": true}}]}),
        json!({
            "must": [{"match": {"key": "metadata.draft", "value": false}}],
            "should": [{"match": {"key": "metadata.lang", "value": "en"}}, {"match": {"key": "metadata.author.name", "value": "Ann"}}],
            "must_not": [{"match": {"key": "metadata.tags", "value": "c"}}]
        }),
        json!({"must": [
            {"match": {"key": "metadata.draft", "value": true}},
            {"nested": {"should": [{"match": {"key": "metadata.lang", "value": "de"}}, {"is_empty": {"key": "metadata.tags"}}]}}
        ]}),
        json!({"must_not": [{"nested": {"must": [{"match": {"key": "metadata.lang", "value": "en"}}, {"match": {"key": "metadata.draft", "value": true}}]}}]}),
        json!({"must": [{"match": {"key": "key", "value": k3}}]}),
        json!({"must": [{"match_any": {"key": "key", "any": [key_of(10), "nope.md", key_of(3), 3]}}]}),
        json!({"must": [{"match_any": {"key": "key", "any": [key_of(4), key_of(8)]}}, {"match": {"key": "metadata.draft", "value": true}}]}),
        json!({"must": [{"match": {"key": "key", "value": 3}}]}),
        json!({"must": [{"match_any": {"key": "key", "any": []}}]}),
        json!({"must_not": [{"match": {"key": "key", "value": k3}}]}),
        json!({"must": [{"match": {"key": "chunk", "value": 1}}]}),
        json!({"must": [{"match_any": {"key": "chunk", "any": [0, 2]}}]}),
        json!({"must": [{"match": {"key": "collection", "value": COLLECTION}}]}),
        json!({"must": [{"match": {"key": "content_hash", "value": hash7}}]}),
    ];
    let caps = index.capabilities();
    let mut checked = 0;
    for case in cases {
        let flt = filter(case.clone());
        let want = reference_ids(&points, &flt);
        let counted = match index.count(&c, Some(flt.clone())).await {
            Err(IndexError::UnsupportedFilter(why)) if !caps.filter_should && filter_uses_should(&flt) => {
                eprintln!("skipped {case}: {why}");
                continue;
            }
            other => other.unwrap_or_else(|e| panic!("count with {case} failed: {e}")),
        };
        assert_eq!(counted, want.len() as u64, "count with {case}");
        assert_eq!(ids_of(&scroll_all(&*index, &c, Some(flt.clone()), false, 7).await), want, "scroll with {case}");
        let hits = search(&*index, &c, v(&[0, 1]), 100, Some(flt.clone())).await;
        assert_eq!(by_id(hit_ids(&hits)), want, "search with {case}");
        checked += 1;
    }
    assert!(checked >= 33, "only {checked} filters were checked");
}

fn filter_uses_should(f: &Filter) -> bool {
    use colstore_domain::Condition;
    fn cond(c: &Condition) -> bool {
        matches!(c, Condition::Nested(inner) if filter_uses_should(inner))
    }
    !f.should.is_empty() || f.must.iter().chain(&f.must_not).any(cond)
}

// ---------------------------------------------------------------------------------------------------------------------
// Isolation, fidelity, volume
// ---------------------------------------------------------------------------------------------------------------------

/// Collections with the same point ids but other dimensions do not see each other's points, writes or drops.
pub async fn collections_are_isolated(f: &dyn IndexFixture) {
    let index = f.index();
    let (a, b) = (index_name("cs_test_a"), index_name("cs_test_b"));
    ensure(&*index, &a, 3, Distance::Cosine).await;
    ensure(&*index, &b, 2, Distance::Dot).await;
    upsert(&*index, &a, (0..6).map(|n| point(n, v(&[1, n as i32, 0]), json!({"in": "a"}))).collect()).await;
    upsert(&*index, &b, (0..4).map(|n| point(n, v(&[n as i32, 1]), json!({"in": "b"}))).collect()).await;
    assert_eq!((count(&*index, &a, None).await, count(&*index, &b, None).await), (6, 4));
    assert!(scroll_all(&*index, &a, None, false, 10).await.iter().all(|p| p.payload.metadata.get("in") == Some(&json!("a"))));
    let hits = search(&*index, &b, v(&[1, 0]), 10, None).await;
    assert_eq!(hits.len(), 4);
    assert!(hits.iter().all(|h| h.payload.metadata.get("in") == Some(&json!("b"))), "search in b finds b's points");
    index.delete(&a, vec![point_id(0)]).await.expect("delete in a");
    assert_eq!(ids_of(&scroll_all(&*index, &b, None, false, 10).await), sorted_ids(0..4), "a delete in a leaves b alone");
    let n = index.delete_by_filter(&b, &filter(json!({"must": [{"match": {"key": "metadata.in", "value": "b"}}]}))).await.expect("dbf");
    assert!(n.is_none_or(|n| n == 4));
    assert_eq!(count(&*index, &a, None).await, 5, "a delete_by_filter in b leaves a alone");
    assert!(index.drop_collection(&b).await.expect("drop b"));
    assert_eq!(ids_of(&scroll_all(&*index, &a, None, false, 10).await), sorted_ids(1..6), "dropping b leaves a alone");
    assert_eq!(search(&*index, &a, v(&[1, 0, 0]), 10, None).await.len(), 5);
}

/// Cosine vectors are normalised on write (read back at unit length, same direction), like Qdrant; dot and euclid
/// vectors are stored as given.
pub async fn cosine_vectors_are_normalised_on_write(f: &dyn IndexFixture) {
    let index = f.index();
    let (cos, dot_c) = (index_name("cs_test_cos"), index_name("cs_test_dot"));
    ensure(&*index, &cos, 3, Distance::Cosine).await;
    ensure(&*index, &dot_c, 3, Distance::Dot).await;
    let points = vec![point(1, v(&[3, 4, 0]), json!({})), point(2, vec![0.0, 0.0, 0.5], json!({})), point(3, v(&[-2, 0, 0]), json!({}))];
    upsert(&*index, &cos, points.clone()).await;
    upsert(&*index, &dot_c, points.clone()).await;
    let back = scroll_all(&*index, &cos, None, true, 10).await;
    let want = [(point_id(1), [0.6, 0.8, 0.0]), (point_id(2), [0.0, 0.0, 1.0]), (point_id(3), [-1.0, 0.0, 0.0])];
    for (id, vector) in want {
        let got = back.iter().find(|p| p.id == id).and_then(|p| p.vector.clone()).expect("a vector");
        assert_vector_close(&got, &vector, &format!("cosine read-back of {id}"));
    }
    assert_hits(&search(&*index, &cos, v(&[6, 8, 0]), 1, None).await, &[(point_id(1), 1.0)], "cosine score of the same direction");
    for p in scroll_all(&*index, &dot_c, None, true, 10).await {
        let original = points.iter().find(|o| o.id == p.id).expect("a written point");
        assert_eq!(p.vector.as_ref(), Some(&original.vector), "dot vectors are stored as given");
    }
}

/// Payloads come back exactly as written, through scroll and search: unicode keys and values, nested metadata,
/// arrays, large integers, floats, booleans, nulls and empty containers.
pub async fn payload_round_trips_exactly(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    let rich = json!({
        "日本語": "値",
        "ключ": {"вложенный": [1, 2.5, "три", null, true, {"deep": ["x"]}]},
        "emoji 🎉": "✓ ünïcødé",
        "big": 9_007_199_254_740_993_i64,
        "neg": -42,
        "float": 0.1,
        "exp": 1.5e-300,
        "flag": false,
        "nothing": null,
        "empty_obj": {},
        "empty_arr": [],
        "empty_str": "",
        "quote\"and\\slash": "line\nbreak\ttab",
        "nested": {"a": {"b": {"c": "deep", "d": [[1, 2], [3]]}}}
    });
    let mut p1 = point(1, v(&[1, 0]), rich);
    p1.payload.key = DocKey::parse("ünïcødé/日本語 notes.md").unwrap_or_else(|e| panic!("{e}"));
    p1.payload.chunk = 4_000_000_000;
    let p2 = point(2, v(&[0, 1]), json!({}));
    upsert(&*index, &c, vec![p1.clone(), p2.clone()]).await;
    let back = scroll_all(&*index, &c, None, false, 10).await;
    let got1 = back.iter().find(|p| p.id == p1.id).expect("point 1");
    assert_eq!(got1.payload, p1.payload, "scroll returns the payload exactly");
    assert_eq!(back.iter().find(|p| p.id == p2.id).map(|p| &p.payload), Some(&p2.payload), "an empty metadata object");
    let hits = search(&*index, &c, v(&[1, 0]), 1, None).await;
    assert_eq!(hits.first().map(|h| &h.payload), Some(&p1.payload), "search returns the payload exactly");
    let by_unicode = filter(json!({"must": [{"match": {"key": "key", "value": "ünïcødé/日本語 notes.md"}}]}));
    assert_eq!(count(&*index, &c, Some(by_unicode)).await, 1, "a unicode key value can be filtered on");
}

/// One upsert of 5 000 points lands whole.
pub async fn upsert_5000_points_in_one_call(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 8, Distance::Dot).await;
    let points: Vec<Point> = (0..5000).map(|n| point(n, vec![n as f32, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], json!({"n": n}))).collect();
    upsert(&*index, &c, points).await;
    assert_eq!(count(&*index, &c, None).await, 5000);
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 1000).await), sorted_ids(0..5000), "every id, in id order");
    let hits = search(&*index, &c, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 3, None).await;
    assert_hits(&hits, &[(point_id(4999), 4999.0), (point_id(4998), 4998.0), (point_id(4997), 4997.0)], "the largest first");
    assert_eq!(hits[0].payload.metadata.get("n"), Some(&json!(4999)));
}

/// Upserts from several tasks at once all land (writers queue, none is lost).
pub async fn concurrent_upserts_all_land(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 4, Distance::Cosine).await;
    let tasks: Vec<_> = (0..4u64)
        .map(|t| {
            let (index, c) = (Arc::clone(&index), c.clone());
            tokio::spawn(async move {
                for batch in 0..5u64 {
                    let points = (0..20).map(|i| t * 1000 + batch * 20 + i).map(|n| point(n, small_ints(n, 4), json!({"t": t}))).collect();
                    index.upsert(&c, points).await.unwrap_or_else(|e| panic!("task {t} batch {batch}: {e}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("a writer task failed: {e}"));
    }
    assert_eq!(count(&*index, &c, None).await, 400);
    let want: Vec<PointId> = sorted_ids((0..4u64).flat_map(|t| (0..100).map(move |i| t * 1000 + i)));
    assert_eq!(ids_of(&scroll_all(&*index, &c, None, false, 100).await), want);
    assert_eq!(count(&*index, &c, Some(filter(json!({"must": [{"match": {"key": "metadata.t", "value": 2}}]})))).await, 100);
}

/// `flush` succeeds on an existing collection and leaves every point in place.
pub async fn flush_keeps_everything(f: &dyn IndexFixture) {
    let index = f.index();
    let c = index_name("cs_test_notes");
    ensure(&*index, &c, 2, Distance::Dot).await;
    upsert(&*index, &c, (0..10).map(|n| point(n, v(&[n as i32, 1]), json!({}))).collect()).await;
    let steps = index.flush(&c).await.unwrap_or_else(|e| panic!("flush failed: {e}"));
    assert!(steps.iter().all(|s| !s.trim().is_empty()), "steps are described: {steps:?}");
    assert_eq!(count(&*index, &c, None).await, 10);
    assert_hits(&search(&*index, &c, v(&[1, 0]), 1, None).await, &[(point_id(9), 9.0)], "search after flush");
}

/// The backend answers healthily and states usable limits.
pub async fn health_and_capabilities_are_sane(f: &dyn IndexFixture) {
    let index = f.index();
    let h = index.health().await.unwrap_or_else(|e| panic!("health failed: {e}"));
    assert!(h.ok, "a fresh index is healthy: {h:?}");
    assert!(!h.backend.is_empty() && h.detail.is_none(), "{h:?}");
    let caps = index.capabilities();
    assert!(caps.max_batch_points >= 1, "{caps:?}");
    assert!(caps.max_request_bytes >= 1024 * 1024, "{caps:?}");
}
