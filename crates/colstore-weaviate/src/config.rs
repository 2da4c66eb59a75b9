//! The adapter's configuration.

use std::fmt;
use std::time::Duration;

use colstore_domain::RetryPolicy;

/// How to reach a Weaviate server.
#[derive(Clone)]
pub struct WeaviateConfig {
    /// The server's base URL, `http(s)://host:8080` (without `/v1`).
    pub url: String,
    /// Sent as `Authorization: Bearer KEY` when set; never shown by `Debug` or in errors.
    pub api_key: Option<String>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// Retries of failed requests (429, 5xx, transport errors).
    pub retry: RetryPolicy,
    /// Most objects one `POST /v1/batch/objects` carries; larger upserts are split.
    pub max_batch_objects: usize,
}

impl WeaviateConfig {
    /// Defaults for a server at `url`: no key, 30 s timeout, the default retry policy, batches of 100 objects.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), api_key: None, timeout: Duration::from_secs(30), retry: RetryPolicy::default(), max_batch_objects: 100 }
    }
}

impl fmt::Debug for WeaviateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeaviateConfig")
            // A URL may carry a user and password; they are no more shown than the key.
            .field("url", &reqwest::Url::parse(&self.url).map_or_else(|_| self.url.clone(), |u| colstore_http::display_url(&u)))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_batch_objects", &self.max_batch_objects)
            .finish()
    }
}
