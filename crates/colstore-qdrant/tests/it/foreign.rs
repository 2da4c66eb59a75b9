//! The `ForeignCollection` conformance suite (`col import qdrant://…`) for `QdrantForeign`: against the Qdrant fake,
//! and against a real server when `TEST_QDRANT_URL` is set. Collections are created over HTTP as any other Qdrant
//! client would, under names of this run, and dropped afterwards.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::Distance;
use colstore_domain::ports::{ForeignCollection, ForeignObject};
use colstore_qdrant::{QdrantConfig, QdrantForeign};
use colstore_testkit::RecordingClock;
use colstore_testkit::foreign::{ForeignFixture, run_suite};
use colstore_testkit::need::{Need, skip};
use colstore_testkit::qdrant_fake::{QdrantFake, QdrantFakeOptions};
use serde_json::{Value, json};

struct Fixture {
    url: String,
    api_key: Option<String>,
    /// Prefix of this run's collection names.
    prefix: String,
    created: std::sync::Mutex<Vec<String>>,
}

impl Fixture {
    fn new(url: String, api_key: Option<String>) -> Self {
        Self { url, api_key, prefix: format!("foreign_{}_", std::process::id()), created: std::sync::Mutex::default() }
    }

    fn config(&self) -> QdrantConfig {
        QdrantConfig { api_key: self.api_key.clone(), ..QdrantConfig::new(self.url.clone()) }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let url = reqwest::Url::parse(&self.url).expect("a URL");
        // Through colstore-http's client: it installs the TLS crypto provider reqwest needs.
        let client = colstore_http::client(&url, std::time::Duration::from_secs(30)).expect("an HTTP client");
        let mut request = client
            .request(method.clone(), format!("{}/{path}", self.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("JSON"));
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key);
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
            self.send(reqwest::Method::DELETE, &format!("collections/{name}"), &Value::Null).await;
        }
    }
}

#[async_trait]
impl ForeignFixture for Fixture {
    async fn collection(&self, name: &str, distance: Distance, objects: &[ForeignObject]) -> Arc<dyn ForeignCollection> {
        let name = format!("{}{name}", self.prefix);
        let qdrant_distance = match distance {
            Distance::Cosine => "Cosine",
            Distance::Dot => "Dot",
            Distance::Euclid => "Euclid",
        };
        self.send(reqwest::Method::PUT, &format!("collections/{name}"), &json!({"vectors": {"size": 6, "distance": qdrant_distance}}))
            .await;
        self.created.lock().expect("lock").push(name.clone());
        if !objects.is_empty() {
            let points: Vec<Value> = objects.iter().map(|o| json!({"id": o.id, "vector": o.vector, "payload": o.payload})).collect();
            self.send(reqwest::Method::PUT, &format!("collections/{name}/points?wait=true"), &json!({ "points": points })).await;
        }
        Arc::new(QdrantForeign::new(self.config(), &name, RecordingClock::new()).expect("a valid name"))
    }

    fn missing(&self) -> Arc<dyn ForeignCollection> {
        Arc::new(QdrantForeign::new(self.config(), &format!("{}missing", self.prefix), RecordingClock::new()).expect("a valid name"))
    }
}

#[tokio::test]
async fn the_foreign_collection_suite_passes_on_the_fake() {
    let fake = QdrantFake::spawn(QdrantFakeOptions::default());
    let fixture = Fixture::new(fake.url(), None);
    run_suite(&fixture).await;
    fixture.drop_all().await;
}

#[tokio::test]
async fn the_foreign_collection_suite_passes_on_a_real_server() {
    let Some(url) = std::env::var("TEST_QDRANT_URL").ok().filter(|u| !u.is_empty()) else {
        skip(Need::Qdrant, "TEST_QDRANT_URL is not set (a throw-away Qdrant server, e.g. http://127.0.0.1:6333)");
        return;
    };
    let fixture = Fixture::new(url.trim_end_matches('/').to_owned(), std::env::var("TEST_QDRANT_API_KEY").ok().filter(|k| !k.is_empty()));
    run_suite(&fixture).await;
    fixture.drop_all().await;
}

#[test]
fn names_colstore_cannot_address_are_refused_before_any_request() {
    let e = QdrantForeign::new(QdrantConfig::new("http://127.0.0.1:1"), "my collection", RecordingClock::new()).expect_err("a space");
    assert!(e.to_string().contains("cannot read the Qdrant collection \"my collection\""), "{e}");
}
