//! Integration tests of the Qdrant adapter: the `VectorIndex` conformance suite against the testkit's Qdrant fake
//! (and against a real server when `TEST_QDRANT_URL` is set), snapshots of the request bodies (the contract with the
//! engine), and faults injected through the fake: rate limits, 503 storms, dropped connections, refused keys and
//! batches over the body limit.

mod filters;
mod foreign;

use std::sync::Arc;
use std::time::Duration;

use colstore_domain::ports::{IndexError, ScrollRequest, SearchRequest, VectorIndex};
use colstore_domain::{Distance, RetryPolicy};
use colstore_qdrant::{QDRANT_KIND, QdrantConfig, QdrantIndex};
use colstore_testkit::RecordingClock;
use colstore_testkit::index::{IndexFixture, ServerFixture, filter, index_name, point, point_id, settings};
use colstore_testkit::need::Need;
use colstore_testkit::qdrant_fake::{Fault, LoggedRequest, QdrantFake, QdrantFakeOptions};
use rstest::rstest;
use serde_json::{Value, json};

fn policy() -> RetryPolicy {
    RetryPolicy { base: Duration::from_secs(1), max: Duration::from_secs(30), max_attempts: 4 }
}

fn config(url: &str) -> QdrantConfig {
    QdrantConfig { retry: policy(), timeout: Duration::from_secs(30), ..QdrantConfig::new(url) }
}

fn adapter(config: QdrantConfig) -> (Arc<QdrantIndex>, Arc<RecordingClock>) {
    let clock = RecordingClock::new();
    (Arc::new(QdrantIndex::new(config, clock.clone()).expect("a valid configuration")), clock)
}

// ---------------------------------------------------------------------------------------------------------------------
// The conformance suite against the fake
// ---------------------------------------------------------------------------------------------------------------------

struct FakeFixture {
    _fake: QdrantFake,
    index: Arc<QdrantIndex>,
}

impl IndexFixture for FakeFixture {
    fn index(&self) -> Arc<dyn VectorIndex> {
        self.index.clone()
    }
}

async fn fake_fixture() -> Box<dyn IndexFixture> {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    Box::new(FakeFixture { _fake: fake, index })
}

mod fake {
    colstore_testkit::index_conformance!(super::fake_fixture);
}

// ---------------------------------------------------------------------------------------------------------------------
// The conformance suite against a real server
// ---------------------------------------------------------------------------------------------------------------------

/// The adapter on the server at `TEST_QDRANT_URL` (API key in `TEST_QDRANT_API_KEY`, if any), or a skip. Each
/// scenario works under index names of its own and drops them afterwards.
async fn real_fixture() -> Option<Box<dyn IndexFixture>> {
    let Some(url) = std::env::var("TEST_QDRANT_URL").ok().filter(|u| !u.is_empty()) else {
        return ServerFixture::skipped(Need::Qdrant, "TEST_QDRANT_URL is not set (a throw-away Qdrant server, e.g. http://127.0.0.1:6333)");
    };
    let mut config = QdrantConfig::new(url);
    config.api_key = std::env::var("TEST_QDRANT_API_KEY").ok().filter(|k| !k.is_empty());
    let index = QdrantIndex::new(config, RecordingClock::new()).expect("TEST_QDRANT_URL is a valid URL");
    Some(Box::new(ServerFixture::new(Arc::new(index))))
}

/// The conformance suite against a real server.
mod real {
    colstore_testkit::index_conformance!(optional super::real_fixture);
}

// ---------------------------------------------------------------------------------------------------------------------
// The request bodies: the contract with the engine
// ---------------------------------------------------------------------------------------------------------------------

/// The logged requests as JSON: method, path, body (vectors and payloads included, they are part of the contract).
fn exchanges(requests: &[LoggedRequest]) -> Value {
    Value::Array(
        requests
            .iter()
            .map(|r| json!({"method": r.method, "path": r.path, "body": r.json().unwrap_or_else(|| json!(String::from_utf8_lossy(&r.body)))}))
            .collect(),
    )
}

#[tokio::test]
async fn request_bodies_match_the_recorded_contract() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = index_name("cs_test_notes");

    index.ensure_collection(&c, &settings(3, Distance::Cosine)).await.expect("ensure");
    insta::assert_json_snapshot!("ensure_collection_new", exchanges(&fake.requests()));
    fake.clear_requests();
    index.ensure_collection(&c, &settings(3, Distance::Cosine)).await.expect("ensure again");
    insta::assert_json_snapshot!("ensure_collection_existing", exchanges(&fake.requests()));
    fake.clear_requests();

    let points = vec![point(1, vec![1.0, 0.0, 0.5], json!({"lang": "en", "tags": ["a"]})), point(2, vec![0.0, 1.0, 0.0], json!({}))];
    index.upsert(&c, points).await.expect("upsert");
    insta::assert_json_snapshot!("upsert", exchanges(&fake.requests()));
    fake.clear_requests();

    let f = filter(json!({
        "must": [{"match": {"key": "metadata.lang", "value": "en"}}, {"range": {"key": "metadata.year", "range": {"gte": 2000.0}}}],
        "should": [{"match_any": {"key": "key", "any": ["docs/1.md", 3, true]}}, {"is_empty": {"key": "metadata.tags"}}],
        "must_not": [{"nested": {"must": [{"match": {"key": "metadata.draft", "value": true}}]}}]
    }));
    index.search(&c, SearchRequest { vector: vec![1.0, 0.0, 0.0], limit: 2, filter: Some(f.clone()) }).await.expect("search");
    insta::assert_json_snapshot!("search_with_filter", exchanges(&fake.requests()));
    fake.clear_requests();

    index
        .scroll(&c, ScrollRequest { from: Some(point_id(1)), limit: 10, filter: Some(f.clone()), with_vectors: true })
        .await
        .expect("scroll");
    insta::assert_json_snapshot!("scroll", exchanges(&fake.requests()));
    fake.clear_requests();

    index.count(&c, Some(f.clone())).await.expect("count");
    insta::assert_json_snapshot!("count", exchanges(&fake.requests()));
    fake.clear_requests();

    index.delete_by_filter(&c, &f).await.expect("delete_by_filter");
    insta::assert_json_snapshot!("delete_by_filter", exchanges(&fake.requests()));
    fake.clear_requests();

    index.delete(&c, vec![point_id(2)]).await.expect("delete");
    insta::assert_json_snapshot!("delete", exchanges(&fake.requests()));
    fake.clear_requests();

    let steps = index.flush(&c).await.expect("flush");
    let logged = fake.requests();
    assert_eq!(logged.len(), 2, "flush: create a snapshot, then delete it: {logged:?}");
    assert_eq!((logged[0].method.as_str(), logged[0].path.as_str()), ("POST", "/collections/cs_test_notes/snapshots?wait=true"));
    assert!(
        logged[1].method == "DELETE" && logged[1].path.starts_with("/collections/cs_test_notes/snapshots/cs_test_notes-"),
        "{logged:?}"
    );
    assert_eq!(steps.len(), 2);
    assert!(steps[1].starts_with("deleted snapshot"), "{steps:?}");
}

#[tokio::test]
async fn every_write_waits_for_completion() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = index_name("cs_test_notes");
    index.ensure_collection(&c, &settings(2, Distance::Dot)).await.unwrap();
    index.upsert(&c, vec![point(1, vec![1.0, 0.0], json!({}))]).await.unwrap();
    index.delete(&c, vec![point_id(1)]).await.unwrap();
    index.delete_by_filter(&c, &filter(json!({"must": [{"match": {"key": "chunk", "value": 0}}]}))).await.unwrap();
    let writes: Vec<LoggedRequest> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/points") && !r.path.contains("/scroll") && !r.path.contains("/count"))
        .collect();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(writes.iter().all(|r| r.path.ends_with("?wait=true")), "every point write waits: {writes:?}");
    let index_creations: Vec<LoggedRequest> = fake.requests().into_iter().filter(|r| r.path.contains("/index")).collect();
    assert_eq!(index_creations.len(), 4, "keyword indexes on key, collection, content_hash, chunk_hash");
    assert!(index_creations.iter().all(|r| r.path.ends_with("?wait=true")));
}

// ---------------------------------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------------------------------

async fn ready(fake: &QdrantFake, index: &QdrantIndex, dim: u32) -> colstore_domain::IndexName {
    let c = index_name("cs_test_notes");
    index.ensure_collection(&c, &settings(dim, Distance::Dot)).await.expect("ensure");
    fake.clear_requests();
    c
}

#[tokio::test]
async fn rate_limit_waits_as_long_as_retry_after_says_then_succeeds() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, clock) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 2).await;
    fake.push_faults([Fault::Status { status: 429, retry_after: Some("7".into()) }]);
    index.upsert(&c, vec![point(1, vec![1.0, 0.0], json!({}))]).await.expect("the retry succeeds");
    assert_eq!(clock.sleeps(), [Duration::from_secs(7)], "the wait is the server's Retry-After, not the backoff (at most 1 s)");
    assert_eq!(fake.point_count("cs_test_notes"), Some(1));
    let puts: Vec<_> = fake.requests().into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 2, "the same request twice");
    assert_eq!(puts[0].body, puts[1].body);
}

#[tokio::test]
async fn a_503_storm_beyond_the_attempt_limit_is_unavailable_and_writes_nothing() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, clock) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 2).await;
    fake.push_faults(std::iter::repeat_n(Fault::Status { status: 503, retry_after: None }, 10));
    let r = index.upsert(&c, vec![point(1, vec![1.0, 0.0], json!({}))]).await;
    assert!(matches!(&r, Err(IndexError::Unavailable(m)) if m.contains("503")), "{r:?}");
    assert_eq!(fake.requests().len(), 4, "bounded: max_attempts requests");
    assert_eq!(clock.sleeps().len(), 3, "a backoff between attempts");
    assert!(clock.sleeps().iter().all(|d| *d <= Duration::from_secs(30)));
    assert_eq!(fake.point_count("cs_test_notes"), Some(0), "nothing written");
    assert_eq!(fake.pending_faults(), 6);
}

#[rstest]
#[case::dropped_before_answering(Fault::Drop)]
#[case::cut_mid_response(Fault::DropMidResponse)]
#[case::server_error(Fault::Status { status: 500, retry_after: None })]
#[tokio::test]
async fn a_failed_exchange_is_retried(#[case] fault: Fault) {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, clock) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 2).await;
    fake.push_faults([fault.clone()]);
    index.upsert(&c, vec![point(1, vec![1.0, 0.0], json!({})), point(2, vec![0.0, 1.0], json!({}))]).await.expect("retried");
    assert_eq!(fake.point_count("cs_test_notes"), Some(2));
    assert_eq!(clock.sleeps().len(), 1, "one retry after {fault:?}");
    fake.push_faults([fault]);
    assert_eq!(index.count(&c, None).await.expect("count retried"), 2);
}

#[rstest]
#[case::rate_limited(429, "RateLimited")]
#[case::unavailable(503, "Unavailable")]
#[case::internal(500, "Unavailable")]
#[case::forbidden(403, "Unauthorized")]
#[case::unauthorized(401, "Unauthorized")]
#[case::not_found(404, "CollectionNotFound")]
#[case::teapot(418, "Backend")]
#[case::bad_request(400, "Backend")]
#[tokio::test]
async fn statuses_are_classified(#[case] status: u16, #[case] want: &str) {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 2).await;
    fake.push_faults(std::iter::repeat_n(Fault::Status { status, retry_after: None }, 4));
    let got = match index.count(&c, None).await {
        Err(IndexError::RateLimited) => "RateLimited",
        Err(IndexError::Unavailable(_)) => "Unavailable",
        Err(IndexError::Unauthorized(_)) => "Unauthorized",
        Err(IndexError::CollectionNotFound(n)) if n == c => "CollectionNotFound",
        Err(IndexError::Backend { backend: QDRANT_KIND, source }) => {
            assert!(source.to_string().contains(&status.to_string()), "the message names the status: {source}");
            "Backend"
        }
        other => panic!("{status}: unexpected {other:?}"),
    };
    assert_eq!(got, want, "status {status}");
    let retried = matches!(status, 429 | 500 | 503);
    assert_eq!(fake.requests().len(), if retried { 4 } else { 1 }, "retried only when it may help");
}

#[tokio::test]
async fn plain_text_401_is_unauthorized_and_never_shows_the_key() {
    let fake = QdrantFake::spawn(QdrantFakeOptions { api_key: Some("right-key-123".into()), ..QdrantFakeOptions::default() });
    let c = index_name("cs_test_notes");

    let (nokey, _) = adapter(config(&fake.url()));
    let r = nokey.count(&c, None).await;
    assert!(matches!(&r, Err(IndexError::Unauthorized(m)) if m.contains("Must provide an API key")), "{r:?}");

    let mut wrong = config(&fake.url());
    wrong.api_key = Some("wrong-secret-456".into());
    assert!(!format!("{wrong:?}").contains("wrong-secret-456"), "config Debug hides the key");
    let (index, clock) = adapter(wrong);
    assert!(!format!("{index:?}").contains("wrong-secret-456"), "index Debug hides the key");
    let r = index.ensure_collection(&c, &settings(2, Distance::Dot)).await;
    let Err(IndexError::Unauthorized(m)) = &r else { panic!("expected Unauthorized, got {r:?}") };
    assert!(m.contains("Invalid API key") && m.contains("api-key") && !m.contains("wrong-secret-456"), "{m}");
    assert!(clock.sleeps().is_empty(), "a refused key is not retried");
    let h = index.health().await.expect("health answers");
    assert!(!h.ok && h.detail.as_deref().is_some_and(|d| d.contains("Invalid API key")), "{h:?}");

    let mut right = config(&fake.url());
    right.api_key = Some("right-key-123".into());
    let (index, _) = adapter(right);
    index.ensure_collection(&c, &settings(2, Distance::Dot)).await.expect("the right key is accepted");
    assert!(index.health().await.expect("health").ok);
}

#[tokio::test]
async fn batches_over_the_body_limit_are_split_under_32_mib() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 4).await;
    // 400 points of ~100 KB each: ~40 MB in all, more than Qdrant takes in one request.
    let text = "x".repeat(100_000);
    let points: Vec<_> = (0..400).map(|n| point(n, vec![n as f32, 1.0, 0.0, -1.0], json!({"text": text}))).collect();
    index.upsert(&c, points).await.expect("split upsert");
    let puts: Vec<_> = fake.requests().into_iter().filter(|r| r.method == "PUT").collect();
    assert!(puts.len() >= 2, "split into several requests: {}", puts.len());
    let limit = index.capabilities().max_request_bytes;
    assert!(limit < 32 * 1024 * 1024);
    assert!(puts.iter().all(|r| r.body.len() <= limit), "{:?}", puts.iter().map(|r| r.body.len()).collect::<Vec<_>>());
    assert_eq!(fake.point_count("cs_test_notes"), Some(400));
    assert_eq!(index.count(&c, None).await.unwrap(), 400);
}

#[tokio::test]
async fn batches_over_the_point_limit_are_split() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 2).await;
    let max = index.capabilities().max_batch_points;
    index.upsert(&c, (0..(2 * max as u64 + 1)).map(|n| point(n, vec![1.0, 0.0], json!({}))).collect()).await.unwrap();
    let sizes: Vec<usize> =
        fake.requests().iter().filter(|r| r.method == "PUT").map(|r| r.json().unwrap()["points"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [max, max, 1]);
}

#[tokio::test]
async fn a_point_alone_over_the_limit_is_refused_before_sending() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let mut cfg = config(&fake.url());
    cfg.max_request_bytes = 1024 * 1024;
    let (index, _) = adapter(cfg);
    let c = ready(&fake, &index, 2).await;
    let big = point(1, vec![1.0, 0.0], json!({"text": "y".repeat(2 * 1024 * 1024)}));
    let r = index.upsert(&c, vec![point(2, vec![0.0, 1.0], json!({})), big]).await;
    assert!(matches!(&r, Err(IndexError::Backend { source, .. }) if source.to_string().contains("over the request limit")), "{r:?}");
    assert!(fake.requests().is_empty(), "nothing sent: {:?}", fake.requests().len());
}

#[tokio::test]
async fn mixed_vector_lengths_fail_before_any_request_writes() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 2).await;
    let max = index.capabilities().max_batch_points as u64;
    // The odd vector is in the second request's share: without the check, the first request would land.
    let mut points: Vec<_> = (0..max + 5).map(|n| point(n, vec![1.0, 0.0], json!({}))).collect();
    points.push(point(9999, vec![1.0, 0.0, 0.0], json!({})));
    let r = index.upsert(&c, points).await;
    assert!(matches!(r, Err(IndexError::DimensionMismatch { expected: 2, got: 3 })), "{r:?}");
    assert_eq!(fake.point_count("cs_test_notes"), Some(0));
    assert!(fake.requests().iter().all(|r| r.method != "PUT"), "no upsert was sent");
}

#[tokio::test]
async fn a_collection_with_other_settings_is_reported() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = index_name("cs_test_notes");
    index.ensure_collection(&c, &settings(3, Distance::Euclid)).await.unwrap();
    let r = index.ensure_collection(&c, &settings(5, Distance::Euclid)).await;
    assert!(matches!(r, Err(IndexError::DimensionMismatch { expected: 3, got: 5 })), "{r:?}");
    let r = index.ensure_collection(&c, &settings(3, Distance::Dot)).await;
    assert!(matches!(r, Err(IndexError::DimensionMismatch { .. })), "another distance: {r:?}");
}

#[test]
fn bad_configurations_are_refused_with_a_fix() {
    let clock = RecordingClock::new();
    for (url, want) in [("localhost:6333", "http"), ("ftp://x:6333", "scheme"), ("http://x:6333/?a=1", "query"), ("not a url", "invalid")] {
        let r = QdrantIndex::new(QdrantConfig::new(url), clock.clone());
        assert!(matches!(&r, Err(IndexError::Backend { source, .. }) if source.to_string().contains(want)), "{url}: {:?}", r.err());
    }
    let mut c = QdrantConfig::new("http://localhost:6333");
    c.api_key = Some("bad\nkey".into());
    let r = QdrantIndex::new(c, clock.clone());
    assert!(matches!(&r, Err(IndexError::Backend { source, .. }) if !source.to_string().contains("bad\nkey")), "{:?}", r.err());
    let mut c = QdrantConfig::new("http://localhost:6333");
    c.max_request_bytes = 10;
    assert!(QdrantIndex::new(c, clock).is_err());
    let d = QdrantConfig::new("http://localhost:6333");
    assert_eq!((d.api_key, d.timeout, d.retry), (None, Duration::from_secs(30), RetryPolicy::default()));
    assert!(d.max_request_bytes < 32 * 1024 * 1024 && d.max_request_bytes > 31 * 1024 * 1024);
}

#[tokio::test]
async fn health_reports_the_version() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, clock) = adapter(config(&fake.url()));
    let h = index.health().await.unwrap();
    assert_eq!((h.backend.as_str(), h.version.as_deref(), h.ok), ("qdrant", Some("1.18.3"), true));
    // An outage is reported at once: `col status` never waits through the retries a write would make.
    fake.push_faults([Fault::Status { status: 503, retry_after: None }, Fault::Status { status: 503, retry_after: None }]);
    let h = index.health().await.unwrap();
    assert!(!h.ok && h.detail.as_deref().is_some_and(|d| d.contains("503")), "{h:?}");
    assert_eq!((clock.sleeps().len(), fake.pending_faults()), (0, 1), "one request, no retry, no wait");
    let caps = index.capabilities();
    assert!(caps.exact_count && caps.filter_should && caps.snapshots);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let mut cfg = config(&fake.url());
    cfg.timeout = Duration::from_millis(300);
    let (index, clock) = adapter(cfg);
    let c = ready(&fake, &index, 2).await;
    index.upsert(&c, vec![point(1, vec![1.0, 0.0], json!({}))]).await.unwrap();
    // Far longer than the timeout; the fake's thread stops the waiting handler when the fake is dropped.
    fake.push_faults([Fault::Delay(Duration::from_secs(600))]);
    assert_eq!(index.count(&c, None).await.expect("the retry answers"), 1);
    assert_eq!(clock.sleeps().len(), 1, "one retry after the timeout");
    fake.push_faults(std::iter::repeat_n(Fault::Delay(Duration::from_secs(600)), 4));
    let r = index.count(&c, None).await;
    assert!(matches!(&r, Err(IndexError::Unavailable(m)) if m.contains("no answer within")), "{r:?}");
}

#[tokio::test]
async fn collections_with_named_vectors_are_refused_with_a_fix() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    // Made by another tool: one named vector.
    let url = reqwest::Url::parse(&fake.url()).unwrap();
    let made = colstore_http::client(&url, Duration::from_secs(30))
        .unwrap()
        .put(format!("{}/collections/cs_test_notes", fake.url()))
        .header("content-type", "application/json")
        .body(r#"{"vectors": {"text": {"size": 3, "distance": "Dot"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 200);
    let (index, _) = adapter(config(&fake.url()));
    let r = index.ensure_collection(&index_name("cs_test_notes"), &settings(3, Distance::Dot)).await;
    let Err(IndexError::Backend { source, .. }) = &r else { panic!("expected Backend, got {r:?}") };
    let m = source.to_string();
    assert!(m.contains("named") && m.contains("another collection name"), "{m}");
}

#[tokio::test]
async fn flush_reports_a_snapshot_it_could_not_delete() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&fake.url()));
    let c = ready(&fake, &index, 2).await;
    // The snapshot is made; deleting it is refused.
    fake.push_faults([Fault::Delay(Duration::ZERO), Fault::Status { status: 400, retry_after: None }]);
    let steps = index.flush(&c).await.expect("the data is flushed even if the snapshot stays");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps[0].starts_with("created snapshot cs_test_notes-"), "{steps:?}");
    assert!(steps[1].contains("could not delete snapshot") && steps[1].contains("by hand"), "{steps:?}");
    let missing = index.flush(&index_name("cs_test_ghost")).await;
    assert!(matches!(missing, Err(IndexError::CollectionNotFound(_))), "{missing:?}");
}

#[tokio::test]
async fn a_bare_404_points_at_the_url_not_at_a_collection() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let (index, _) = adapter(config(&format!("{}/not-qdrant", fake.url())));
    let r = index.count(&index_name("cs_test_notes"), None).await;
    let Err(IndexError::Backend { source, .. }) = &r else { panic!("expected Backend, got {r:?}") };
    let m = source.to_string();
    assert!(m.contains("/not-qdrant/collections/cs_test_notes/points/count") && m.contains("server root"), "{m}");
}
