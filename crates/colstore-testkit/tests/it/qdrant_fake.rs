//! The Qdrant fake's own behaviour beyond the recorded exchanges: injected faults, the request log, the body limit,
//! and Qdrant semantics the recording does not exercise (Euclid scores as distances, ties in insertion order,
//! `is_empty` on arrays of nulls, an empty `should`).

use std::time::Duration;

use colstore_testkit::qdrant_fake::{Fault, QdrantFake, QdrantFakeOptions};
use serde_json::{Value, json};

use super::qdrant_replay::{Answer, Auth, send};

fn addr(fake: &QdrantFake) -> String {
    fake.url().trim_start_matches("http://").to_owned()
}

fn call(fake: &QdrantFake, method: &str, path: &str, body: &Value) -> Answer {
    let bytes = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    send(&addr(fake), method, path, &Auth::None, "application/json", &bytes).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn json_of(a: &Answer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&a.body)))
}

/// A fake with collection `c` (2 dimensions, `distance`) holding `points` (`[id, [x, y], payload]`).
fn with_points(distance: &str, points: &[(u64, [f32; 2], Value)]) -> QdrantFake {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    assert_eq!(call(&fake, "PUT", "/collections/c", &json!({"vectors": {"size": 2, "distance": distance}})).status, 200);
    let points: Vec<Value> = points.iter().map(|(id, v, p)| json!({"id": id, "vector": v, "payload": p})).collect();
    assert_eq!(call(&fake, "PUT", "/collections/c/points?wait=true", &json!({"points": points})).status, 200);
    fake
}

#[test]
fn injected_statuses_carry_retry_after_and_a_qdrant_error_body() {
    let fake = with_points("Dot", &[(1, [1.0, 0.0], json!({}))]);
    fake.push_faults([Fault::Status { status: 429, retry_after: Some("7".into()) }, Fault::Status { status: 503, retry_after: None }]);
    assert_eq!(fake.pending_faults(), 2);
    let a = call(&fake, "POST", "/collections/c/points/count", &json!({"exact": true}));
    assert_eq!(a.status, 429);
    assert!(a.head.to_ascii_lowercase().contains("retry-after: 7"), "{}", a.head);
    assert!(json_of(&a).pointer("/status/error").and_then(Value::as_str).is_some());
    assert_eq!(call(&fake, "POST", "/collections/c/points/count", &json!({"exact": true})).status, 503);
    assert_eq!(fake.pending_faults(), 0);
    assert_eq!(json_of(&call(&fake, "POST", "/collections/c/points/count", &json!({"exact": true})))["result"]["count"], 1);
    let log = fake.requests();
    let faults: Vec<_> = log.iter().rev().take(3).map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        [None, Some(Fault::Status { status: 503, retry_after: None }), Some(Fault::Status { status: 429, retry_after: Some("7".into()) })]
    );
    assert_eq!(log.last().and_then(|r| r.json()), Some(json!({"exact": true})));
}

#[test]
fn dropped_connections_apply_or_not_as_documented() {
    let fake = with_points("Dot", &[]);
    fake.push_faults([Fault::Drop]);
    let r = send(
        &addr(&fake),
        "PUT",
        "/collections/c/points?wait=true",
        &Auth::None,
        "application/json",
        br#"{"points":[{"id":1,"vector":[1,0]}]}"#,
    );
    assert!(r.is_err(), "dropped before answering");
    assert_eq!(fake.point_count("c"), Some(0), "a dropped request is not handled");
    fake.push_faults([Fault::DropMidResponse]);
    let r = send(
        &addr(&fake),
        "PUT",
        "/collections/c/points?wait=true",
        &Auth::None,
        "application/json",
        br#"{"points":[{"id":1,"vector":[1,0]}]}"#,
    );
    assert!(r.as_ref().is_err_and(|e| e.contains("cut")), "{:?}", r.as_ref().err());
    assert_eq!(fake.point_count("c"), Some(1), "cut mid-response: the write happened");
}

#[test]
fn a_delay_answers_late_but_answers() {
    let fake = with_points("Dot", &[]);
    fake.push_faults([Fault::Delay(Duration::from_millis(50))]);
    assert_eq!(call(&fake, "GET", "/collections/c/exists", &Value::Null).status, 200);
}

#[test]
fn bodies_over_the_limit_close_the_connection() {
    let fake = QdrantFake::spawn(QdrantFakeOptions { max_body_bytes: 1024, ..QdrantFakeOptions::default() });
    assert_eq!(call(&fake, "PUT", "/collections/c", &json!({"vectors": {"size": 2, "distance": "Dot"}})).status, 200);
    let small = json!({"points": [{"id": 1, "vector": [1, 0], "payload": {"pad": "x".repeat(500)}}]});
    assert_eq!(call(&fake, "PUT", "/collections/c/points?wait=true", &small).status, 200);
    let big = json!({"points": [{"id": 2, "vector": [1, 0], "payload": {"pad": "x".repeat(2000)}}]}).to_string();
    let r = send(&addr(&fake), "PUT", "/collections/c/points?wait=true", &Auth::None, "application/json", big.as_bytes());
    assert!(r.is_err(), "closed unanswered");
    assert_eq!(fake.point_count("c"), Some(1));
}

#[test]
fn api_keys_guard_the_api_but_not_the_probes() {
    let fake = QdrantFake::spawn(QdrantFakeOptions { api_key: Some("k".into()), ..QdrantFakeOptions::default() });
    let probe = send(&addr(&fake), "GET", "/readyz", &Auth::None, "", b"").unwrap();
    assert_eq!(probe.status, 200);
    let refused = send(&addr(&fake), "GET", "/collections", &Auth::None, "", b"").unwrap();
    assert_eq!((refused.status, refused.content_type.as_str()), (401, ""), "plain text, no content type");
    assert_eq!(send(&addr(&fake), "GET", "/collections", &Auth::ApiKey("k"), "", b"").unwrap().status, 200);
    assert_eq!(send(&addr(&fake), "GET", "/collections", &Auth::Bearer("k"), "", b"").unwrap().status, 200);
}

#[test]
fn euclid_scores_are_distances_and_ties_come_in_insertion_order() {
    // Ids inserted in the order 5, 2, 9: equal scores keep that order, not the id order.
    let fake = with_points("Euclid", &[(5, [1.0, 0.0], json!({})), (2, [1.0, 0.0], json!({})), (9, [4.0, 4.0], json!({}))]);
    let a = json_of(&call(&fake, "POST", "/collections/c/points/query", &json!({"query": [4, 0], "limit": 3})));
    let hits: Vec<(u64, f64)> =
        a["result"]["points"].as_array().unwrap().iter().map(|p| (p["id"].as_u64().unwrap(), p["score"].as_f64().unwrap())).collect();
    assert_eq!(hits, [(5, 3.0), (2, 3.0), (9, 4.0)], "ascending distances, ties in insertion order");
    let payloadless = a["result"]["points"][0].as_object().unwrap();
    assert!(!payloadless.contains_key("payload"), "query: with_payload defaults to false");
}

#[test]
fn filters_follow_qdrant_where_it_differs_from_colstore() {
    let fake = with_points(
        "Dot",
        &[
            (1, [1.0, 0.0], json!({"t": [null]})),
            (2, [1.0, 0.0], json!({"t": []})),
            (3, [1.0, 0.0], json!({"t": null})),
            (4, [1.0, 0.0], json!({})),
            (5, [1.0, 0.0], json!({"t": ["a", null]})),
            (6, [1.0, 0.0], json!({"o": [{"k": "v"}]})),
        ],
    );
    let count = |filter: Value| -> u64 {
        let a = call(&fake, "POST", "/collections/c/points/count", &json!({"filter": filter, "exact": true}));
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        json_of(&a)["result"]["count"].as_u64().unwrap()
    };
    assert_eq!(count(json!({"must": [{"is_empty": {"key": "t"}}]})), 5, "missing, null, [] and [null] are empty; [\"a\", null] is not");
    assert_eq!(count(json!({"should": []})), 0, "an empty should matches nothing");
    assert_eq!(count(json!({"must": []})), 6, "an empty must matches everything");
    assert_eq!(count(json!({"must": [{"key": "o.k", "match": {"value": "v"}}]})), 0, "arrays are not walked without []");
    assert_eq!(count(json!({"must": [{"key": "o[].k", "match": {"value": "v"}}]})), 1, "but with []");
    let mixed =
        call(&fake, "POST", "/collections/c/points/count", &json!({"filter": {"must": [{"key": "t", "match": {"any": ["a", 1]}}]}}));
    assert_eq!(mixed.status, 400, "match.any takes strings or integers, not both");
}

#[test]
fn snapshots_recover_from_file_urls_and_refuse_other_configurations() {
    let fake = with_points("Dot", &[(1, [1.0, 0.0], json!({"k": "v"})), (2, [0.0, 1.0], json!({}))]);
    let created = json_of(&call(&fake, "POST", "/collections/c/snapshots?wait=true", &Value::Null));
    let name = created["result"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("c-") && name.ends_with(".snapshot"), "{name}");
    let location = format!("file:///qdrant/snapshots/c/{name}");
    let recovered = call(&fake, "PUT", "/collections/copy/snapshots/recover?wait=true", &json!({"location": location}));
    assert_eq!(recovered.status, 200, "{}", String::from_utf8_lossy(&recovered.body));
    assert_eq!(fake.point_count("copy"), Some(2));
    assert_eq!(call(&fake, "PUT", "/collections/other", &json!({"vectors": {"size": 3, "distance": "Dot"}})).status, 200);
    let refused = call(&fake, "PUT", "/collections/other/snapshots/recover?wait=true", &json!({"location": location}));
    assert_eq!(refused.status, 400);
    assert!(json_of(&refused)["status"]["error"].as_str().unwrap().contains("not compatible"));
    assert_eq!(fake.point_count("other"), Some(0));
    assert_eq!(call(&fake, "DELETE", &format!("/collections/c/snapshots/{name}"), &Value::Null).status, 200);
    assert_eq!(call(&fake, "DELETE", &format!("/collections/c/snapshots/{name}"), &Value::Null).status, 404, "deleted once");
}
