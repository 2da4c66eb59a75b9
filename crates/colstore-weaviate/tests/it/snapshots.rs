//! The request bodies the adapter sends, as insta snapshots: they are the contract with Weaviate. Each test drives
//! the adapter against the fake and snapshots what the fake received.

use colstore_domain::Distance;
use colstore_domain::ports::{SearchRequest, VectorIndex};
use colstore_testkit::index::{filter, index_name, point, point_id, settings};
use colstore_testkit::weaviate_fake::{LoggedRequest, WeaviateFakeOptions};
use serde_json::{Value, json};

use crate::{FakeFixture, fake_with};

fn fixture() -> FakeFixture {
    fake_with(WeaviateFakeOptions::default(), 100)
}

fn sent(f: &FakeFixture, method: &str, path_start: &str) -> Vec<LoggedRequest> {
    f.fake.requests().into_iter().filter(|r| r.method == method && r.path.starts_with(path_start)).collect()
}

fn body(r: &LoggedRequest) -> Value {
    r.json().unwrap_or_else(|| panic!("{} {} has a JSON body", r.method, r.path))
}

fn graphql(r: &LoggedRequest) -> String {
    body(r)["query"].as_str().unwrap_or_else(|| panic!("a GraphQL body")).to_owned()
}

async fn notes(f: &FakeFixture, distance: Distance) -> colstore_domain::IndexName {
    let c = index_name("cs_abcdef12_my-notes");
    f.index.ensure_collection(&c, &settings(3, distance)).await.expect("ensure");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_creation() {
    let f = fixture();
    notes(&f, Distance::Euclid).await;
    let posts = sent(&f, "POST", "/v1/schema");
    assert_eq!(posts.len(), 1, "one class creation");
    insta::assert_json_snapshot!("schema_creation", body(&posts[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_upsert_with_new_metadata_properties() {
    let f = fixture();
    let c = notes(&f, Distance::Cosine).await;
    f.fake.clear_requests();
    let points = vec![
        point(1, vec![3.0, 4.0, 0.0], json!({"lang": "en", "year": 2021, "tags": ["a", "b"], "author": {"name": "Ann"}, "nums": [1, 2.5]})),
        point(2, vec![0.0, 0.0, 2.0], json!({"lang": " padded ", "draft": true, "日本語": "skipped: no field path names it"})),
    ];
    f.index.upsert(&c, points).await.expect("upsert");
    let props: Vec<Value> = sent(&f, "POST", "/v1/schema/").iter().map(body).collect();
    insta::assert_json_snapshot!("upsert_new_properties", props);
    let batches = sent(&f, "POST", "/v1/batch/objects");
    assert_eq!(batches.len(), 1);
    insta::assert_json_snapshot!("upsert_batch", body(&batches[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_search_with_a_filter_and_count() {
    let f = fixture();
    let c = notes(&f, Distance::Dot).await;
    let points = (0..4)
        .map(|n| point(n, vec![n as f32, 1.0, 0.0], json!({"lang": if n % 2 == 0 { "en" } else { "fr" }, "year": 2000 + n})))
        .collect();
    f.index.upsert(&c, points).await.expect("upsert");
    f.fake.clear_requests();
    let flt = filter(json!({
        "must": [{"match": {"key": "metadata.lang", "value": "en"}}, {"range": {"key": "metadata.year", "range": {"gte": 2000.0, "lt": 2003.5}}}],
        "should": [{"match_any": {"key": "chunk", "any": [0, 2]}}, {"match": {"key": "key", "value": "docs/0.md"}}],
        "must_not": [{"is_empty": {"key": "metadata.lang"}}, {"match": {"key": "metadata.missing", "value": "x"}}]
    }));
    let hits =
        f.index.search(&c, SearchRequest { vector: vec![1.0, 0.5, 0.0], limit: 2, filter: Some(flt.clone()) }).await.expect("search");
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [point_id(2), point_id(0)]);
    let n = f.index.count(&c, Some(flt)).await.expect("count");
    assert_eq!(n, 2);
    let queries: Vec<String> = sent(&f, "POST", "/v1/graphql").iter().map(graphql).collect();
    assert_eq!(queries.len(), 2, "one search and one count, both answered by Weaviate: {queries:#?}");
    insta::assert_snapshot!("search_with_filter", queries[0]);
    insta::assert_snapshot!("count_with_filter", queries[1]);
    assert!(sent(&f, "GET", "/v1/objects").is_empty(), "an exact filter needs no listing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_deletes() {
    let f = fixture();
    let c = notes(&f, Distance::Dot).await;
    f.index.upsert(&c, (0..3).map(|n| point(n, vec![1.0, 0.0, 0.0], json!({"lang": "en"}))).collect()).await.expect("upsert");
    f.fake.clear_requests();
    f.index.delete(&c, vec![point_id(0), point_id(9)]).await.expect("delete");
    let by_filter = filter(json!({"must": [{"match": {"key": "metadata.lang", "value": "en"}}]}));
    assert_eq!(f.index.delete_by_filter(&c, &by_filter).await.expect("delete_by_filter"), Some(2));
    let deletes: Vec<Value> = sent(&f, "DELETE", "/v1/batch/objects").iter().map(body).collect();
    insta::assert_json_snapshot!("batch_deletes", deletes);
}
