//! `OpenAiEmbedder`: any OpenAI-compatible `POST {base_url}/embeddings` API (OpenAI, Ollama, TEI, vLLM, LM Studio),
//! with batching, a per-request timeout, and retries with backoff that honour `Retry-After`.
//!
//! All waiting between attempts goes through the injected [`Clock`], so tests drive retries with a manual clock
//! and never sleep. Texts, vectors and the API key are never logged, and the key never appears in an error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{Clock, EmbedError, Embedder};
use colstore_domain::{Dimension, EmbedderId, RetryPolicy, Vector};
use colstore_http::{Failure, display_url, error_chain, retrying, shorten};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

/// The `kind` of [`OpenAiEmbedder::identity`].
pub const OPENAI_KIND: &str = "openai";

/// Longest server error message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// Settings of an [`OpenAiEmbedder`].
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// The API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1` (Ollama); requests go to
    /// `{base_url}/embeddings`.
    pub base_url: String,
    /// The model name sent with every request, e.g. `text-embedding-3-small` or `nomic-embed-text`.
    pub model: String,
    /// The dimension every returned vector must have.
    pub dimension: Dimension,
    /// Sent as `Authorization: Bearer <key>` when set. The caller reads it (from the environment variable named in
    /// the configuration); it never appears in `Debug` output, logs or errors.
    pub api_key: Option<String>,
    /// Timeout of one HTTP request, from sending it to the end of the response body.
    pub timeout: Duration,
    /// Most texts per request; [`Embedder::embed`] splits larger inputs into several requests.
    pub max_batch: usize,
    /// Retries of one request on 429, 5xx, connection errors and timeouts.
    pub retry: RetryPolicy,
    /// Send `"dimensions": <dimension>` (models that can shorten their vectors, e.g. OpenAI's `text-embedding-3-*`);
    /// most other servers reject or ignore the field.
    pub send_dimensions: bool,
}

impl OpenAiConfig {
    /// A configuration with the defaults: no API key, a 60 s timeout, batches of 32 (TEI's default limit; OpenAI
    /// and Ollama accept more), the default [`RetryPolicy`], and no `dimensions` field.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>, dimension: Dimension) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            dimension,
            api_key: None,
            timeout: Duration::from_secs(60),
            max_batch: 32,
            retry: RetryPolicy::default(),
            send_dimensions: false,
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_batch", &self.max_batch)
            .field("retry", &self.retry)
            .field("send_dimensions", &self.send_dimensions)
            .finish()
    }
}

/// Why an [`OpenAiEmbedder`] could not be built (reported as [`EmbedError::Backend`]).
#[derive(Debug, thiserror::Error)]
enum ConfigError {
    #[error("invalid base_url {url:?}: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("max_batch must be at least 1")]
    MaxBatch,
    #[error("the API key cannot be sent in an HTTP header (it contains characters such as newlines)")]
    ApiKey,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A successful (2xx) answer that does not fit the protocol (reported as [`EmbedError::Backend`], not retried:
/// asking again would get the same answer).
#[derive(Debug, thiserror::Error)]
enum ResponseError {
    #[error("{endpoint} answered with a body that is not an embeddings response: {reason}")]
    Malformed { endpoint: String, reason: String },
    #[error("{endpoint} answered with {got} embeddings for {expected} inputs")]
    Count { endpoint: String, expected: usize, got: usize },
}

/// An embedder over an OpenAI-compatible `/embeddings` endpoint.
#[derive(Clone)]
pub struct OpenAiEmbedder {
    endpoint: Url,
    /// The endpoint for messages: the URL without user name and password.
    endpoint_display: String,
    model: String,
    dimension: Dimension,
    /// Kept only to redact it from server messages that echo it.
    api_key: Option<String>,
    auth: Option<HeaderValue>,
    timeout: Duration,
    max_batch: usize,
    retry: RetryPolicy,
    send_dimensions: bool,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("endpoint", &self.endpoint_display)
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_batch", &self.max_batch)
            .field("retry", &self.retry)
            .field("send_dimensions", &self.send_dimensions)
            .finish_non_exhaustive()
    }
}

/// The request body.
#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

/// The parts of the response body we read; everything else (`object`, `model`, `usage`) is ignored.
#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    /// Position of the input this vector belongs to; servers may answer out of order.
    #[serde(default)]
    index: Option<usize>,
}

impl OpenAiEmbedder {
    /// An embedder for `config`, waiting between retries on `clock`.
    ///
    /// Installs ring as rustls's process-wide crypto provider unless one is installed already (reqwest is built
    /// without a provider of its own, see the workspace manifest).
    ///
    /// # Errors
    /// [`EmbedError::Backend`] when `base_url` is not an `http(s)` URL, `max_batch` is 0, the API key cannot be a
    /// header value, or the HTTP client cannot be built.
    pub fn new(config: OpenAiConfig, clock: Arc<dyn Clock>) -> Result<Self, EmbedError> {
        let endpoint = endpoint(&config.base_url).map_err(backend)?;
        if config.max_batch == 0 {
            return Err(backend(ConfigError::MaxBatch));
        }
        let auth = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| backend(ConfigError::ApiKey))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = colstore_http::client(&endpoint, config.timeout).map_err(|e| backend(ConfigError::Client(e)))?;
        Ok(Self {
            endpoint_display: display_url(&endpoint),
            endpoint,
            model: config.model,
            dimension: config.dimension,
            api_key: config.api_key,
            auth,
            timeout: config.timeout,
            max_batch: config.max_batch,
            retry: config.retry,
            send_dimensions: config.send_dimensions,
            client,
            clock,
        })
    }

    /// Embeds one batch (at most `max_batch` texts), retrying as the policy allows.
    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vector>, EmbedError> {
        let request =
            EmbeddingsRequest { model: &self.model, input: batch, dimensions: self.send_dimensions.then(|| self.dimension.get()) };
        let body = Bytes::from(serde_json::to_vec(&request).map_err(|e| EmbedError::Backend { backend: OPENAI_KIND, source: e.into() })?);
        retrying(
            "embeddings request",
            |n, random| self.retry.delay(n, random),
            self.retry.max,
            |wait| self.clock.sleep(wait),
            |attempt| {
                tracing::debug!(inputs = batch.len(), attempt, "sending an embeddings request");
                self.attempt(body.clone(), batch.len())
            },
        )
        .await
    }

    /// One HTTP exchange.
    async fn attempt(&self, body: Bytes, expected: usize) -> Result<Vec<Vector>, Failure<EmbedError>> {
        let mut request = self.client.post(self.endpoint.clone()).header(CONTENT_TYPE, "application/json").body(body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let retry_after = colstore_http::retry_after(response.headers(), self.clock.now().as_millis());
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if status.is_success() {
            return self.parse(&bytes, expected).map_err(Failure::Fatal);
        }
        let message = self.server_message(&bytes);
        let what = format!(
            "{} answered {status}{}",
            self.endpoint_display,
            if message.is_empty() { String::new() } else { format!(": {message}") }
        );
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => Failure::Retryable { error: EmbedError::RateLimited { retry_after }, retry_after },
            // 408: the server gave up waiting for us; like a timeout, trying again may work.
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Failure::Retryable { error: EmbedError::Unavailable(what), retry_after }
            }
            _ => Failure::Fatal(EmbedError::Refused(what)),
        })
    }

    /// Checks and orders a 2xx body.
    fn parse(&self, body: &[u8], expected: usize) -> Result<Vec<Vector>, EmbedError> {
        let malformed = |reason: String| response_error(ResponseError::Malformed { endpoint: self.endpoint_display.clone(), reason });
        let response: EmbeddingsResponse = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
        if response.data.len() != expected {
            return Err(response_error(ResponseError::Count {
                endpoint: self.endpoint_display.clone(),
                expected,
                got: response.data.len(),
            }));
        }
        let mut slots: Vec<Option<Vector>> = vec![None; expected];
        for (position, item) in response.data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            let slot = slots.get_mut(index).ok_or_else(|| malformed(format!("index {index} is out of range for {expected} inputs")))?;
            if slot.is_some() {
                return Err(malformed(format!("index {index} appears twice")));
            }
            let got = u32::try_from(item.embedding.len()).unwrap_or(u32::MAX);
            if got != self.dimension.get() {
                return Err(EmbedError::DimensionMismatch { expected: self.dimension.get(), got });
            }
            *slot = Some(item.embedding);
        }
        // Count checked and no index repeated, so every slot is filled.
        slots.into_iter().map(|v| v.ok_or_else(|| malformed("an index is missing".to_owned()))).collect()
    }

    /// The server's error message from an error body: OpenAI's `{"error": {"message": …}}`, TEI's and Ollama's
    /// `{"error": "…"}`, vLLM's `{"message": …}`, FastAPI's `{"detail": …}`, or the text itself; shortened, and with
    /// the API key masked in case the server echoes it.
    fn server_message(&self, body: &[u8]) -> String {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let from_json = json.as_ref().and_then(|v| {
            let pick = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            };
            v.pointer("/error/message").or_else(|| v.get("error")).or_else(|| v.get("message")).or_else(|| v.get("detail")).and_then(pick)
        });
        let message = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        shorten(&message, MAX_MESSAGE_CHARS, self.api_key.as_deref())
    }

    /// A failure before a complete response arrived.
    fn transport(&self, e: reqwest::Error) -> Failure<EmbedError> {
        if e.is_builder() {
            return Failure::Fatal(EmbedError::Backend { backend: OPENAI_KIND, source: Box::new(e.without_url()) });
        }
        let what = if e.is_timeout() { format!("no answer within {:?}", self.timeout) } else { error_chain(&e.without_url()) };
        Failure::Retryable { error: EmbedError::Unavailable(format!("{}: {what}", self.endpoint_display)), retry_after: None }
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn identity(&self) -> EmbedderId {
        EmbedderId { kind: OPENAI_KIND.to_owned(), model: self.model.clone(), dimension: self.dimension }
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vector>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.max_batch) {
            vectors.extend(self.embed_batch(batch).await?);
        }
        Ok(vectors)
    }
}

fn backend(e: ConfigError) -> EmbedError {
    EmbedError::Backend { backend: OPENAI_KIND, source: Box::new(e) }
}

fn response_error(e: ResponseError) -> EmbedError {
    EmbedError::Backend { backend: OPENAI_KIND, source: Box::new(e) }
}

/// `{base_url}/embeddings`, checked.
fn endpoint(base_url: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::BaseUrl { url: base_url.to_owned(), reason };
    let url = Url::parse(&format!("{}/embeddings", base_url.trim_end_matches('/'))).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("the scheme must be http or https, not {}", url.scheme())));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment".to_owned()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use colstore_domain::Timestamp;

    /// A clock for tests that never wait.
    struct Still;

    #[async_trait]
    impl Clock for Still {
        fn now(&self) -> Timestamp {
            Timestamp::EPOCH
        }
        async fn sleep(&self, _: Duration) {}
    }

    #[test]
    fn endpoints_are_checked_and_joined() {
        assert_eq!(endpoint("http://127.0.0.1:11434/v1").unwrap().as_str(), "http://127.0.0.1:11434/v1/embeddings");
        assert_eq!(endpoint("https://api.openai.com/v1/").unwrap().as_str(), "https://api.openai.com/v1/embeddings");
        assert!(endpoint("127.0.0.1:11434").is_err());
        assert!(endpoint("ftp://example.com/v1").is_err());
        assert!(endpoint("http://example.com/v1?x=1").is_err());
    }

    #[test]
    fn responses_are_ordered_by_index_and_checked() {
        let e = OpenAiEmbedder::new(OpenAiConfig::new("http://localhost/v1", "m", Dimension::new(2).unwrap()), Arc::new(Still)).unwrap();
        let ok = br#"{"object":"list","data":[{"embedding":[1,0],"index":1},{"embedding":[0,1],"index":0}],"usage":{}}"#;
        assert_eq!(e.parse(ok, 2).unwrap(), [vec![0.0, 1.0], vec![1.0, 0.0]]);
        let positional = br#"{"data":[{"embedding":[1,0]},{"embedding":[0,1]}]}"#;
        assert_eq!(e.parse(positional, 2).unwrap(), [vec![1.0, 0.0], vec![0.0, 1.0]]);

        let short = e.parse(br#"{"data":[{"embedding":[1,0],"index":0}]}"#, 2).unwrap_err();
        assert!(short.to_string().contains("1 embeddings for 2 inputs"), "{short}");
        let twice = e.parse(br#"{"data":[{"embedding":[1,0],"index":0},{"embedding":[0,1],"index":0}]}"#, 2).unwrap_err();
        assert!(twice.to_string().contains("index 0 appears twice"), "{twice}");
        let out = e.parse(br#"{"data":[{"embedding":[1,0],"index":5}]}"#, 1).unwrap_err();
        assert!(out.to_string().contains("out of range"), "{out}");
        let not_json = e.parse(b"<html>", 1).unwrap_err();
        assert!(matches!(not_json, EmbedError::Backend { backend: "openai", .. }), "{not_json:?}");
        let wide = e.parse(br#"{"data":[{"embedding":[1,0,0],"index":0}]}"#, 1).unwrap_err();
        assert!(matches!(wide, EmbedError::DimensionMismatch { expected: 2, got: 3 }), "{wide:?}");
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let mut config = OpenAiConfig::new("http://localhost/v1", "m", Dimension::new(3).unwrap());
        config.api_key = Some("sk-very-secret".to_owned());
        assert!(!format!("{config:?}").contains("sk-very-secret"));
        let embedder = OpenAiEmbedder::new(config, Arc::new(Still)).unwrap();
        assert!(!format!("{embedder:?}").contains("sk-very-secret"));
        assert_eq!(embedder.server_message(br#"{"error":{"message":"bad key sk-very-secret"}}"#), "bad key <redacted>");
    }

    #[test]
    fn server_messages_are_found_in_the_usual_shapes() {
        let config = OpenAiConfig::new("http://localhost/v1", "m", Dimension::new(3).unwrap());
        let e = OpenAiEmbedder::new(config, Arc::new(Still)).unwrap();
        assert_eq!(e.server_message(br#"{"error":{"message":"model not found","type":"invalid_request_error"}}"#), "model not found");
        assert_eq!(e.server_message(br#"{"error":"Input validation error","error_type":"Validation"}"#), "Input validation error");
        assert_eq!(e.server_message(br#"{"object":"error","message":"too long"}"#), "too long");
        assert_eq!(e.server_message(br#"{"detail":[{"msg":"field required"}]}"#), r#"[{"msg":"field required"}]"#);
        assert_eq!(e.server_message(b"  Unauthorized\n"), "Unauthorized");
        assert_eq!(e.server_message("x".repeat(600).as_bytes()).chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn bad_configurations_are_rejected() {
        let ok = OpenAiConfig::new("http://localhost/v1", "m", Dimension::new(3).unwrap());
        let err = OpenAiEmbedder::new(OpenAiConfig { max_batch: 0, ..ok.clone() }, Arc::new(Still)).unwrap_err();
        assert!(err.to_string().contains("max_batch"), "{err}");
        let err = OpenAiEmbedder::new(OpenAiConfig { api_key: Some("a\nb".into()), ..ok.clone() }, Arc::new(Still)).unwrap_err();
        assert!(!err.to_string().contains("a\nb"), "{err}");
        let err = OpenAiEmbedder::new(OpenAiConfig { base_url: "localhost:8080".into(), ..ok }, Arc::new(Still)).unwrap_err();
        assert!(err.to_string().contains("base_url"), "{err}");
    }
}
