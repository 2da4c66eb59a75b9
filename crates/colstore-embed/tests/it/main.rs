//! Integration tests of the embedders: `OpenAiEmbedder` against the testkit's stub OpenAI-compatible server on a
//! loopback socket (batching, ordering, retries driven by a manual clock, timeouts, refusals, the wire format), and
//! `HashEmbedder` through the port.

use std::sync::Arc;
use std::time::Duration;

use colstore_domain::ports::{Clock, EmbedError, Embedder};
use colstore_domain::{Dimension, RetryPolicy};
use colstore_embed::{HashEmbedder, OpenAiConfig, OpenAiEmbedder};
use colstore_testkit::RecordingClock;
use colstore_testkit::stub_embedder::StubEmbedServer;

const DIM: u32 = 8;

fn policy() -> RetryPolicy {
    RetryPolicy { base: Duration::from_secs(1), max: Duration::from_secs(10), max_attempts: 4 }
}

fn config(server: &StubEmbedServer) -> OpenAiConfig {
    OpenAiConfig {
        timeout: Duration::from_secs(10),
        max_batch: 3,
        retry: policy(),
        ..OpenAiConfig::new(server.url(), "stub-model", Dimension::new(DIM).unwrap())
    }
}

fn embedder(config: OpenAiConfig) -> (OpenAiEmbedder, Arc<RecordingClock>) {
    let clock = RecordingClock::new();
    (OpenAiEmbedder::new(config, clock.clone()).unwrap(), clock)
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text number {i}")).collect()
}

#[tokio::test]
async fn batches_requests_and_keeps_input_order() {
    let server = StubEmbedServer::start(DIM);
    // Servers may list embeddings out of order; the client must follow `index`.
    server.reverse_order(true);
    let (e, clock) = embedder(config(&server));
    assert_eq!(e.max_batch(), 3);
    let id = e.identity();
    assert_eq!((id.kind.as_str(), id.model.as_str(), id.dimension.get()), ("openai", "stub-model", DIM));

    let input = texts(8);
    let vectors = e.embed(input.clone()).await.unwrap();
    assert_eq!(server.requests(), 3, "8 texts in batches of 3");
    assert_eq!(vectors.len(), 8);
    for (text, vector) in input.iter().zip(&vectors) {
        assert_eq!(vector, &StubEmbedServer::vector(text, DIM), "{text}");
        assert_eq!(server.times_embedded(text), 1);
    }
    assert_eq!((server.texts_embedded(), server.distinct_texts()), (8, 8));
    assert_eq!(server.last_body().unwrap()["input"].as_array().unwrap().len(), 2, "the last batch holds the remainder");

    assert!(e.embed(Vec::new()).await.unwrap().is_empty());
    assert_eq!(server.requests(), 3, "nothing to embed, no request");
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_on_the_clock() {
    let server = StubEmbedServer::start(DIM);
    server.fail_next(1, 429, Some(2));
    let (e, clock) = embedder(config(&server));
    let before = clock.now();

    let vectors = e.embed(texts(2)).await.unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(server.requests(), 2);
    assert_eq!(clock.sleeps(), [Duration::from_secs(2)], "Retry-After: 2 wins over the backoff");
    assert_eq!(clock.now().as_millis() - before.as_millis(), 2000);
}

#[tokio::test]
async fn retry_after_is_capped_by_the_policy() {
    let server = StubEmbedServer::start(DIM);
    server.fail_next(1, 429, Some(3600));
    let (e, clock) = embedder(config(&server));
    e.embed(texts(1)).await.unwrap();
    assert_eq!(clock.sleeps(), [Duration::from_secs(10)]);
}

#[tokio::test]
async fn rate_limited_forever_reports_rate_limited() {
    let server = StubEmbedServer::start(DIM);
    server.fail_next(100, 429, Some(1));
    let (e, clock) = embedder(config(&server));
    let err = e.embed(texts(1)).await.unwrap_err();
    assert!(matches!(err, EmbedError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(1)), "{err:?}");
    assert_eq!(server.requests(), 4);
    assert_eq!(clock.sleeps().len(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = StubEmbedServer::start(DIM);
    server.fail_next(2, 500, None);
    let (e, clock) = embedder(config(&server));

    let vectors = e.embed(texts(3)).await.unwrap();
    assert_eq!(vectors[2], StubEmbedServer::vector("text number 2", DIM));
    assert_eq!(server.requests(), 3);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2);
    // Equal jitter: retry n waits between half and all of base × 2^(n-1).
    assert!((Duration::from_millis(500)..=Duration::from_secs(1)).contains(&sleeps[0]), "{sleeps:?}");
    assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&sleeps[1]), "{sleeps:?}");
}

#[tokio::test]
async fn server_errors_forever_end_unavailable_after_max_attempts() {
    let server = StubEmbedServer::start(DIM);
    server.fail_next(100, 503, None);
    let (e, clock) = embedder(config(&server));
    let err = e.embed(texts(1)).await.unwrap_err();
    let EmbedError::Unavailable(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("503") && message.contains("injected failure"), "{message}");
    assert_eq!(server.requests(), 4, "max_attempts counts the first try");
    assert_eq!(clock.sleeps().len(), 3);
}

#[tokio::test]
async fn a_wrong_key_is_refused_at_once_and_never_echoed() {
    let server = StubEmbedServer::start(DIM);
    server.require_key(Some("the-right-key"));
    let (e, clock) = embedder(OpenAiConfig { api_key: Some("sk-wrong-key-123".into()), ..config(&server) });
    let err = e.embed(texts(1)).await.unwrap_err();
    let EmbedError::Refused(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("401") && message.contains("Unauthorized"), "{message}");
    assert!(!err.to_string().contains("sk-wrong-key-123") && !format!("{err:?}").contains("sk-wrong-key-123"));
    assert_eq!(server.requests(), 1, "no retry");
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn other_client_errors_are_refused_with_the_server_message() {
    for status in [400, 403, 404, 422] {
        let server = StubEmbedServer::start(DIM);
        server.fail_next(1, status, None);
        let (e, clock) = embedder(config(&server));
        let err = e.embed(texts(1)).await.unwrap_err();
        let EmbedError::Refused(message) = &err else { panic!("{status}: {err:?}") };
        assert!(message.contains(&status.to_string()) && message.contains(&format!("injected failure ({status})")), "{message}");
        assert_eq!(server.requests(), 1);
        assert!(clock.sleeps().is_empty());
    }
}

#[tokio::test]
async fn the_authorization_header_is_sent_only_with_a_key() {
    let server = StubEmbedServer::start(DIM);
    server.require_key(Some("sk-test"));
    let (e, _) = embedder(OpenAiConfig { api_key: Some("sk-test".into()), ..config(&server) });
    e.embed(texts(1)).await.unwrap();
    assert_eq!(server.last_header("authorization").as_deref(), Some("Bearer sk-test"));
    assert_eq!(server.last_header("content-type").as_deref(), Some("application/json"));

    server.require_key(None);
    let (e, _) = embedder(config(&server));
    e.embed(texts(1)).await.unwrap();
    assert_eq!(server.last_header("authorization"), None);
}

#[tokio::test]
async fn a_wrong_dimension_is_not_retried() {
    let server = StubEmbedServer::start(DIM);
    server.wrong_dimension(true);
    let (e, clock) = embedder(config(&server));
    let err = e.embed(texts(2)).await.unwrap_err();
    assert!(matches!(err, EmbedError::DimensionMismatch { expected: 8, got: 9 }), "{err:?}");
    assert_eq!(server.requests(), 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_slow_server_times_out_is_retried_then_unavailable() {
    let server = StubEmbedServer::start(DIM);
    server.delay(Duration::from_secs(30));
    let retry = RetryPolicy { max_attempts: 3, ..policy() };
    let (e, clock) = embedder(OpenAiConfig { timeout: Duration::from_millis(200), retry, ..config(&server) });
    let err = e.embed(texts(1)).await.unwrap_err();
    let EmbedError::Unavailable(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("no answer within 200ms"), "{message}");
    assert_eq!(server.requests(), 3);
    assert_eq!(clock.sleeps().len(), 2);

    server.delay(Duration::ZERO);
    assert_eq!(e.embed(texts(1)).await.unwrap().len(), 1, "recovers once the server is fast again");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // A port that was free a moment ago: connecting is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = OpenAiConfig {
        retry: RetryPolicy { max_attempts: 2, ..policy() },
        ..OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"), "m", Dimension::new(DIM).unwrap())
    };
    let (e, clock) = embedder(cfg);
    let err = e.embed(texts(1)).await.unwrap_err();
    assert!(matches!(err, EmbedError::Unavailable(_)), "{err:?}");
    assert_eq!(clock.sleeps().len(), 1);
}

#[tokio::test]
async fn request_body_matches_the_openai_wire_format() {
    let server = StubEmbedServer::start(DIM);
    let (e, _) = embedder(OpenAiConfig { send_dimensions: true, ..config(&server) });
    e.embed(vec!["first text".into(), "zweiter Text ✓".into()]).await.unwrap();
    let request = server.last_request().unwrap();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v1/embeddings"));
    // The exact bytes: field order and escaping as sent (non-ASCII stays UTF-8).
    insta::assert_snapshot!("request_body_with_dimensions", request.body);

    let (e, _) = embedder(config(&server));
    e.embed(vec!["only".into()]).await.unwrap();
    assert_eq!(server.last_request().unwrap().body, r#"{"model":"stub-model","input":["only"]}"#);
}

#[tokio::test]
async fn hash_embedder_through_the_port() {
    let e: Arc<dyn Embedder> = Arc::new(HashEmbedder::new(Dimension::new(64).unwrap()));
    assert_eq!(e.identity().to_string(), "hash:v1/64");
    let v = e.embed(vec!["alpha beta".into(), String::new(), "alpha beta".into()]).await.unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0], v[2]);
    assert!(v[1].iter().all(|x| *x == 0.0));
    assert!(v.iter().all(|x| x.len() == 64));
}
