//! The `ForeignCollection` conformance suite (`col import weaviate://…`) for `WeaviateForeign`: against the Weaviate
//! fake, and against a real server when `TEST_WEAVIATE_URL` is set. Classes are created over HTTP as any other
//! Weaviate client would (explicit schema, `vectorizer: none`), under names of this run, and deleted afterwards.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::Distance;
use colstore_domain::ports::{ForeignCollection, ForeignObject};
use colstore_testkit::RecordingClock;
use colstore_testkit::foreign::{ForeignFixture, run_suite};
use colstore_testkit::need::{Need, skip};
use colstore_testkit::weaviate_fake::{WeaviateFake, WeaviateFakeOptions};
use colstore_weaviate::{WeaviateConfig, WeaviateForeign};
use serde_json::{Value, json};

struct Fixture {
    url: String,
    api_key: Option<String>,
    /// Prefix of this run's class names.
    prefix: String,
    created: std::sync::Mutex<Vec<String>>,
}

impl Fixture {
    fn new(url: String, api_key: Option<String>) -> Self {
        Self { url, api_key, prefix: format!("Foreign{}", std::process::id()), created: std::sync::Mutex::default() }
    }

    fn config(&self) -> WeaviateConfig {
        WeaviateConfig { api_key: self.api_key.clone(), ..WeaviateConfig::new(self.url.clone()) }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let url = reqwest::Url::parse(&self.url).expect("a URL");
        // Through colstore-http's client: it installs the TLS crypto provider reqwest needs.
        let client = colstore_http::client(&url, std::time::Duration::from_secs(30)).expect("an HTTP client");
        let mut request = client.request(method.clone(), format!("{}{path}", self.url)).header("content-type", "application/json");
        if !body.is_null() {
            request = request.body(serde_json::to_vec(body).expect("JSON"));
        }
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("a body");
        assert!(status.is_success(), "{method} {path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.created.lock().expect("lock"));
        for name in names {
            self.send(reqwest::Method::DELETE, &format!("/v1/schema/{name}"), &Value::Null).await;
        }
    }
}

#[async_trait]
impl ForeignFixture for Fixture {
    async fn collection(&self, name: &str, distance: Distance, objects: &[ForeignObject]) -> Arc<dyn ForeignCollection> {
        let class = format!("{}{name}", self.prefix);
        let weaviate_distance = match distance {
            Distance::Cosine => "cosine",
            Distance::Dot => "dot",
            Distance::Euclid => "l2-squared",
        };
        let properties = json!([
            {"name": "text", "dataType": ["text"]}, {"name": "n", "dataType": ["int"]}, {"name": "x", "dataType": ["number"]},
            {"name": "flag", "dataType": ["boolean"]}, {"name": "list", "dataType": ["text[]"]},
        ]);
        let definition =
            json!({"class": class, "vectorizer": "none", "vectorIndexConfig": {"distance": weaviate_distance}, "properties": properties});
        self.send(reqwest::Method::POST, "/v1/schema", &definition).await;
        self.created.lock().expect("lock").push(class.clone());
        if !objects.is_empty() {
            let objects: Vec<Value> =
                objects.iter().map(|o| json!({"class": class, "id": o.id, "vector": o.vector, "properties": o.payload})).collect();
            let answer = self.send(reqwest::Method::POST, "/v1/batch/objects", &json!({ "objects": objects })).await;
            let failed: Vec<&Value> = answer.as_array().into_iter().flatten().filter(|r| r.pointer("/result/errors").is_some()).collect();
            assert!(failed.is_empty(), "objects refused: {failed:?}");
        }
        Arc::new(WeaviateForeign::new(&self.config(), &class, RecordingClock::new()).expect("a valid class name"))
    }

    fn missing(&self) -> Arc<dyn ForeignCollection> {
        Arc::new(WeaviateForeign::new(&self.config(), &format!("{}Missing", self.prefix), RecordingClock::new()).expect("a valid name"))
    }
}

#[tokio::test]
async fn the_foreign_collection_suite_passes_on_the_fake() {
    let fake = WeaviateFake::spawn(WeaviateFakeOptions::default());
    let fixture = Fixture::new(fake.url(), None);
    run_suite(&fixture).await;
    fixture.drop_all().await;
}

#[tokio::test]
async fn the_foreign_collection_suite_passes_on_a_real_server() {
    let Some(url) = std::env::var("TEST_WEAVIATE_URL").ok().filter(|u| !u.is_empty()) else {
        skip(Need::Weaviate, "TEST_WEAVIATE_URL is not set (a throw-away Weaviate server, e.g. http://127.0.0.1:8080)");
        return;
    };
    let fixture = Fixture::new(url.trim_end_matches('/').to_owned(), std::env::var("TEST_WEAVIATE_API_KEY").ok().filter(|k| !k.is_empty()));
    run_suite(&fixture).await;
    fixture.drop_all().await;
}

#[test]
fn names_that_are_not_class_names_are_refused_and_the_first_letter_is_capitalised() {
    let e = WeaviateForeign::new(&WeaviateConfig::new("http://127.0.0.1:1"), "my-class", RecordingClock::new()).expect_err("a dash");
    assert!(e.to_string().contains("\"my-class\" is not a Weaviate class name"), "{e}");
    let c = WeaviateForeign::new(&WeaviateConfig::new("http://127.0.0.1:1"), "article", RecordingClock::new()).expect("valid");
    assert_eq!(c.describe(), "weaviate://127.0.0.1:1/Article");
}
