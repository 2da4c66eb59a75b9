//! Fault injection through the fake: retries and their waits, bounded attempts, per-object batch failures, GraphQL
//! errors with status 200, the batch-delete cap, credentials, refusals of classes that are not ours.

use std::time::Duration;

use colstore_domain::Distance;
use colstore_domain::ports::{IndexError, ScrollRequest, VectorIndex};
use colstore_testkit::index::{filter, index_name, point, point_id, settings};
use colstore_testkit::weaviate_fake::{Fault, WeaviateFake, WeaviateFakeOptions};
use colstore_weaviate::WeaviateIndex;
use serde_json::json;

use colstore_testkit::RecordingClock;

use crate::{FakeFixture, config, fake_with};

async fn ready(f: &FakeFixture) -> colstore_domain::IndexName {
    let c = index_name("cs_test_notes");
    f.index.ensure_collection(&c, &settings(2, Distance::Dot)).await.expect("ensure");
    f.index.upsert(&c, (0..4).map(|n| point(n, vec![n as f32, 1.0], json!({"lang": "en"}))).collect()).await.expect("upsert");
    f.fake.clear_requests();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_as_the_server_asks() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let c = ready(&f).await;
    f.fake.fail_next(1, 429, Some(7));
    assert_eq!(f.index.count(&c, None).await.expect("count after a 429"), 4);
    assert_eq!(f.clock.sleeps(), [Duration::from_secs(7)], "the wait is the server's Retry-After, on the injected clock");
    assert_eq!(f.fake.requests().len(), 3, "the refused request, its retry, and the count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_beyond_the_attempts_are_reported() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let c = ready(&f).await;
    f.fake.fail_next(3, 429, Some(1));
    let r = f.index.count(&c, None).await;
    assert!(matches!(r, Err(IndexError::RateLimited)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_beyond_the_attempt_limit_are_unavailable() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let c = ready(&f).await;
    f.fake.fail_next(5, 503, None);
    let r = f.index.count(&c, None).await;
    match r {
        Err(IndexError::Unavailable(m)) => assert!(m.contains("503") && m.contains("injected fault"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(f.fake.requests().len(), 3, "max_attempts is 3");
    assert_eq!(f.clock.sleeps().len(), 2, "two backoffs between three attempts");
    f.fake.clear_faults();
    assert_eq!(f.index.count(&c, None).await.expect("count once the server is back"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_retried() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let c = ready(&f).await;
    f.fake.push_fault(Fault::Drop);
    assert_eq!(f.index.count(&c, None).await.expect("count after a dropped connection"), 4);
    assert_eq!(f.clock.sleeps().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_times_out_as_unavailable() {
    let fake = WeaviateFake::spawn(WeaviateFakeOptions::default());
    let mut c = config(fake.url());
    c.timeout = Duration::from_millis(200);
    c.retry.max_attempts = 2;
    let index = WeaviateIndex::new(c, RecordingClock::new()).expect("index");
    fake.push_fault(Fault::Slow(Duration::from_secs(5)));
    fake.push_fault(Fault::Slow(Duration::from_secs(5)));
    match index.count(&index_name("cs_test_notes"), None).await {
        Err(IndexError::Unavailable(m)) => assert!(m.contains("no answer within"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_object_in_a_batch_is_an_error() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let c = ready(&f).await;
    f.fake.fail_objects([point_id(11).0]);
    let r = f.index.upsert(&c, (10..13).map(|n| point(n, vec![1.0, 0.0], json!({}))).collect()).await;
    match r {
        Err(IndexError::Backend { source, .. }) => {
            let m = source.to_string();
            assert!(m.contains("failed 1 of 3") && m.contains(&point_id(11).to_string()) && m.contains("injected failure"), "{m}");
        }
        other => panic!("expected a batch failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_dimension_is_refused_before_anything_is_sent() {
    let f = fake_with(WeaviateFakeOptions::default(), 2);
    let c = ready(&f).await;
    let mut batch: Vec<_> = (10..15).map(|n| point(n, vec![1.0, 0.0], json!({}))).collect();
    batch.push(point(15, vec![1.0, 0.0, 0.0], json!({})));
    let r = f.index.upsert(&c, batch).await;
    assert!(matches!(r, Err(IndexError::DimensionMismatch { expected: 2, got: 3 })), "{r:?}");
    assert!(f.fake.requests().iter().all(|r| r.method == "GET"), "nothing was written: {:?}", f.fake.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_errors_with_status_200_are_errors() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let c = ready(&f).await;
    // The count reads the class first (answered normally), then sends its GraphQL query.
    f.fake.push_fault(Fault::Slow(Duration::ZERO));
    f.fake.push_fault(Fault::GraphqlError("explorer: list class: search: something broke".into()));
    match f.index.count(&c, None).await {
        Err(IndexError::Backend { source, .. }) => assert!(source.to_string().contains("something broke"), "{source}"),
        other => panic!("expected the GraphQL error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_filter_repeats_until_the_cap_is_no_longer_hit() {
    let f = fake_with(WeaviateFakeOptions { api_key: None, delete_cap: 3 }, 100);
    let c = index_name("cs_test_notes");
    f.index.ensure_collection(&c, &settings(2, Distance::Dot)).await.expect("ensure");
    f.index.upsert(&c, (0..12).map(|n| point(n, vec![1.0, 0.0], json!({"doomed": n < 10}))).collect()).await.expect("upsert");
    f.fake.clear_requests();
    let doomed = filter(json!({"must": [{"match": {"key": "metadata.doomed", "value": true}}]}));
    assert_eq!(f.index.delete_by_filter(&c, &doomed).await.expect("delete_by_filter"), Some(10));
    let calls = f.fake.requests().iter().filter(|r| r.method == "DELETE").count();
    assert_eq!(calls, 4, "3 + 3 + 3, then 1 (below the cap: done)");
    assert_eq!(f.index.count(&c, None).await.expect("count"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_weaviate_cannot_answer_exactly_is_confirmed_on_our_side() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let c = index_name("cs_test_notes");
    f.index.ensure_collection(&c, &settings(2, Distance::Dot)).await.expect("ensure");
    // [n, n + 100]: Weaviate would accept 32 for 130..=131 (32 <= 131 and 132 >= 130); the reference does not.
    f.index.upsert(&c, (28..34).map(|n| point(n, vec![1.0, n as f32], json!({"nums": [n, n + 100]}))).collect()).await.expect("upsert");
    let r = filter(json!({"must": [{"range": {"key": "metadata.nums", "range": {"gte": 130.0, "lte": 131.0}}}]}));
    assert_eq!(f.index.count(&c, Some(r.clone())).await.expect("count"), 2);
    let page =
        f.index.scroll(&c, ScrollRequest { from: None, limit: 10, filter: Some(r.clone()), with_vectors: false }).await.expect("scroll");
    let mut want = vec![point_id(30), point_id(31)];
    want.sort();
    assert_eq!(page.points.iter().map(|p| p.id).collect::<Vec<_>>(), want);
    let hits = f
        .index
        .search(&c, colstore_domain::ports::SearchRequest { vector: vec![0.0, 1.0], limit: 1, filter: Some(r) })
        .await
        .expect("search");
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [point_id(31)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_unauthorized_and_the_key_is_never_shown() {
    let fake = WeaviateFake::spawn(WeaviateFakeOptions { api_key: Some("right-key".into()), delete_cap: 10_000 });
    let mut c = config(fake.url());
    c.api_key = Some("sekrit-wrong-key".into());
    assert!(!format!("{c:?}").contains("sekrit"), "{c:?}");
    let index = WeaviateIndex::new(c, RecordingClock::new()).expect("index");
    assert!(!format!("{index:?}").contains("sekrit"));
    match index.ensure_collection(&index_name("cs_test_notes"), &settings(2, Distance::Dot)).await {
        Err(e @ IndexError::Unauthorized(_)) => assert!(!e.to_string().contains("sekrit"), "{e}"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1, "401 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_that_are_not_ours_are_refused() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    // Another application's classes: one equal to ours ignoring case, one with our exact name but no marker.
    let raw = |class: &str| {
        let body = json!({"class": class, "vectorizer": "none"}).to_string();
        let addr = f.fake.url().trim_start_matches("http://").to_owned();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            let req = format!("POST /v1/schema HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            s.write_all(req.as_bytes()).expect("write");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .join()
        .expect("raw request")
    };
    assert!(raw("CS_TEST_NOTES").starts_with("HTTP/1.1 200"));
    match f.index.ensure_collection(&index_name("cs_test_notes"), &settings(2, Distance::Dot)).await {
        Err(IndexError::Backend { source, .. }) => assert!(source.to_string().contains("differs only in case"), "{source}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(raw("Cs_test_other").starts_with("HTTP/1.1 200"));
    let other = index_name("cs_test_other");
    for r in [
        f.index.ensure_collection(&other, &settings(2, Distance::Dot)).await.err(),
        f.index.count(&other, None).await.err(),
        f.index.drop_collection(&other).await.err(),
    ] {
        match r {
            Some(IndexError::Backend { source, .. }) => assert!(source.to_string().contains("not created by colstore"), "{source}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(f.fake.classes().contains(&"Cs_test_other".to_owned()), "a foreign class is never dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_version_and_a_server_that_is_not_ready() {
    let f = fake_with(WeaviateFakeOptions::default(), 100);
    let h = f.index.health().await.expect("health");
    assert_eq!((h.backend.as_str(), h.version.as_deref(), h.ok, h.detail), ("weaviate", Some("1.39.0"), true, None));
    // /v1/meta answers, /v1/.well-known/ready keeps answering 503.
    f.fake.push_fault(Fault::Slow(Duration::ZERO));
    f.fake.fail_next(3, 503, None);
    let h = f.index.health().await.expect("health of a server that is not ready");
    assert!(!h.ok && h.detail.as_deref().is_some_and(|d| d.contains("503")), "{h:?}");
    assert_eq!((f.clock.sleeps().len(), f.fake.pending_faults()), (0, 2), "one request each, no retry, no wait");
}

#[test]
fn debug_output_hides_credentials() {
    let mut c = config("http://user:pw-in-url@127.0.0.1:1".to_owned());
    c.api_key = Some("sekrit".into());
    let shown = format!("{c:?}");
    assert!(!shown.contains("sekrit") && !shown.contains("pw-in-url"), "{shown}");
}
