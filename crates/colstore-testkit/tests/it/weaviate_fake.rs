//! The Weaviate fake's quirks, the ones adapters must cope with: names, ids, the cursor, auth, GraphQL refusals and
//! injected faults.

use colstore_testkit::weaviate_fake::{Fault, WeaviateFake, WeaviateFakeOptions};
use serde_json::{Value, json};

use crate::weaviate_http::call;

fn fake() -> WeaviateFake {
    let f = WeaviateFake::spawn(WeaviateFakeOptions::default());
    let class = json!({"class": "notes", "vectorizer": "none", "vectorIndexConfig": {"distance": "dot"}, "properties": [{"name": "Title", "dataType": ["text"]}, {"name": "n", "dataType": ["int"]}]});
    assert_eq!(call(&f.url(), "POST", "/v1/schema", Some(&class), None).status, 200);
    f
}

fn gql(f: &WeaviateFake, q: &str) -> Value {
    let a = call(&f.url(), "POST", "/v1/graphql", Some(&json!({ "query": q })), None);
    assert_eq!(a.status, 200, "GraphQL answers 200, errors included");
    a.json()
}

fn id(n: u8) -> String {
    format!("00000000-0000-0000-0000-0000000000{n:02x}")
}

fn put(f: &WeaviateFake, ns: &[u8]) {
    let objects: Vec<Value> = ns
        .iter()
        .map(|n| json!({"class": "Notes", "id": id(*n), "vector": [1.0, *n as f64], "properties": {"title": format!("t{n}"), "n": n}}))
        .collect();
    assert_eq!(call(&f.url(), "POST", "/v1/batch/objects", Some(&json!({ "objects": objects })), None).status, 200);
}

#[test]
fn class_and_property_names_follow_weaviate() {
    let f = fake();
    assert_eq!(f.classes(), ["Notes"], "the first letter is capitalised");
    let class = call(&f.url(), "GET", "/v1/schema/Notes", None, None).json();
    assert_eq!(class["properties"][0]["name"], json!("title"), "the first letter of a property is lowercased");
    for bad in ["my-notes", "1notes", "no.tes"] {
        let a = call(&f.url(), "POST", "/v1/schema", Some(&json!({"class": bad})), None);
        assert_eq!(a.status, 422, "{bad}");
        assert!(a.json()["error"][0]["message"].as_str().is_some_and(|m| m.contains("not a valid class name")), "{bad}");
    }
    let a = call(&f.url(), "POST", "/v1/schema", Some(&json!({"class": "NOTES"})), None);
    assert_eq!((a.status, a.json()["error"][0]["message"].as_str().is_some_and(|m| m.contains("already exists"))), (422, true));
    assert_eq!(call(&f.url(), "DELETE", "/v1/schema/Ghost", None, None).status, 200, "deleting a missing class is fine");
    let a = call(&f.url(), "GET", "/v1/schema/Ghost", None, None);
    assert_eq!((a.status, a.body.len()), (404, 0), "not found: 404 with an empty body");
}

#[test]
fn ids_are_uuids_only_and_batches_answer_per_object() {
    let f = fake();
    let a = call(&f.url(), "POST", "/v1/batch/objects", Some(&json!({"objects": [{"class": "Notes", "id": "42", "vector": [1.0]}]})), None);
    assert_eq!(a.status, 422);
    assert!(a.json()["message"].as_str().is_some_and(|m| m.contains("uuid")), "the validation shape {{code, message}}");
    put(&f, &[1, 2]);
    f.fail_objects([uuid::Uuid::parse_str(&id(3)).expect("uuid")]);
    let objects = json!({"objects": [
        {"class": "Notes", "id": id(3), "vector": [1.0, 3.0]},
        {"class": "Notes", "id": id(4), "vector": [1.0, 2.0, 3.0]},
        {"class": "Notes", "id": id(5), "vector": [1.0, 5.0], "properties": {"nope": 1}},
        {"class": "Notes", "id": id(6), "vector": [1.0, 6.0], "properties": {"n": "six"}},
        {"class": "Notes", "id": id(7), "vector": [1.0, 7.0]}
    ]});
    let a = call(&f.url(), "POST", "/v1/batch/objects", Some(&objects), None).json();
    let statuses: Vec<&str> = a.as_array().expect("a list").iter().map(|r| r["result"]["status"].as_str().unwrap_or_default()).collect();
    assert_eq!(statuses, ["FAILED", "FAILED", "FAILED", "FAILED", "SUCCESS"]);
    assert!(a[1]["result"]["errors"]["error"][0]["message"].as_str().is_some_and(|m| m.contains("vector with length 3")));
    assert_eq!(f.object_counts().get("Notes"), Some(&3));
}

#[test]
fn the_cursor_is_exclusive_in_uuid_order_and_refused_with_where() {
    let f = fake();
    put(&f, &[5, 1, 3, 2, 4]);
    let list = |q: &str| call(&f.url(), "GET", &format!("/v1/objects?class=Notes&{q}"), None, None);
    let ids = |v: Value| -> Vec<String> {
        v["objects"].as_array().expect("objects").iter().map(|o| o["id"].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!(ids(list("limit=2&after=").json()), [id(1), id(2)], "after= starts at the beginning, in UUID order");
    assert_eq!(ids(list(&format!("limit=10&after={}", id(2))).json()), [id(3), id(4), id(5)], "after is exclusive");
    assert_eq!(ids(list("limit=2").json()), [id(4), id(2)], "without a cursor: newest first");
    assert_eq!(list(&format!("limit=2&after={}&offset=1", id(2))).status, 422);
    let e =
        gql(&f, &format!("{{ Get {{ Notes(after: \"{}\", where: {{path: [\"n\"], operator: Equal, valueInt: 1}}) {{ n }} }} }}", id(1)));
    assert!(e["errors"][0]["message"].as_str().is_some_and(|m| m.contains("after")), "{e}");
    let ok = gql(&f, &format!("{{ Get {{ Notes(after: \"{}\", limit: 2) {{ n }} }} }}", id(1)));
    assert_eq!(ok["data"]["Get"]["Notes"], json!([{"n": 2}, {"n": 3}]));
}

#[test]
fn graphql_refuses_what_the_fake_does_not_understand() {
    let f = fake();
    put(&f, &[1, 2, 3]);
    for q in [
        "{ Get { Notes(nearText: {concepts: [\"x\"]}) { n } } }",
        "{ Get { Notes(where: {path: [\"n\"], operator: Like, valueText: \"x\"}) { n } } }",
        "{ Get { Notes(where: {path: [\"n\"], operator: Equal, valueText: \"1\"}) { n } } }",
        "{ Get { Notes(where: {path: [\"ghost\"], operator: Equal, valueInt: 1}) { n } } }",
        "{ Get { Notes { n _additional { certainty } } } }",
        "{ Get { Notes(nearVector: {vector: [1, 2, 3]}) { n } } }",
        "{ Aggregate { Notes { n { sum } } } }",
        "{ Get { Notes { n } Other { n } } }",
        "{ Get { Notes { n } } ",
    ] {
        let v = gql(&f, q);
        assert!(v["errors"].as_array().is_some_and(|e| !e.is_empty()), "{q} → {v}");
        assert!(v.get("data").is_none_or(Value::is_null), "{q}: no data with errors");
    }
    let v = gql(
        &f,
        "{ Get { Notes(nearVector: {vector: [1, 0]}, where: {operator: Not, operands: [{path: [\"n\"], operator: Equal, valueInt: 2}]}, limit: 5) { n _additional { distance } } } }",
    );
    // Dot distance is the negated inner product; ties come in an order callers must not rely on (here: descending ids).
    assert_eq!(
        v["data"]["Get"]["Notes"],
        json!([{"n": 3, "_additional": {"distance": -1.0}}, {"n": 1, "_additional": {"distance": -1.0}}])
    );
}

#[test]
fn bearer_auth_and_injected_faults() {
    let f = WeaviateFake::spawn(WeaviateFakeOptions { api_key: Some("k".into()), delete_cap: 10 });
    assert_eq!(call(&f.url(), "GET", "/v1/meta", None, None).status, 401);
    assert_eq!(call(&f.url(), "GET", "/v1/meta", None, Some("Bearer nope")).status, 401);
    assert_eq!(call(&f.url(), "GET", "/v1/meta", None, Some("Bearer k")).status, 200);
    assert_eq!(call(&f.url(), "GET", "/v1/.well-known/ready", None, None).status, 200, "readiness needs no key");
    f.fail_next(1, 429, Some(3));
    f.push_fault(Fault::GraphqlError("boom".into()));
    let a = call(&f.url(), "GET", "/v1/meta", None, Some("Bearer k"));
    assert_eq!((a.status, a.header("retry-after")), (429, Some("3")));
    assert!(a.json()["error"][0]["message"].is_string());
    let a = call(&f.url(), "GET", "/v1/meta", None, Some("Bearer k"));
    assert_eq!((a.status, a.json()["errors"][0]["message"].as_str()), (200, Some("boom")));
    assert_eq!(f.requests().len(), 6);
    assert_eq!(f.requests()[5].path, "/v1/meta");
}
