//! `OpenAiEmbedder`: any OpenAI-compatible `POST {base_url}/embeddings` API (OpenAI, Ollama, TEI, vLLM, LM Studio),
//! with batching, a per-request timeout, and retries with backoff that honour `Retry-After`.
//!
//! All waiting between attempts goes through the injected [`Clock`], so tests drive retries with a manual clock
//! and never sleep. Texts, vectors and the API key are never logged, and the key never appears in an error.

use std::error::Error as StdError;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{Clock, EmbedError, Embedder};
use colstore_domain::{Dimension, EmbedderId, RetryPolicy, Timestamp, Vector};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
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

/// How one attempt failed.
enum Failure {
    /// Worth another attempt; `retry_after` is the server's `Retry-After`, if any.
    Retryable { error: EmbedError, retry_after: Option<Duration> },
    /// Final.
    Fatal(EmbedError),
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
        // Fails only when another provider is installed already, which is fine: reqwest then uses that one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(config.timeout).user_agent(concat!("colstore/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&endpoint) {
            // A local server (Ollama, LM Studio, a test stub) is never reached through HTTP(S)_PROXY: a proxy would
            // connect to its own loopback, not ours, and users rarely think to list it in NO_PROXY.
            builder = builder.no_proxy();
        }
        let client = builder.build().map_err(|e| backend(ConfigError::Client(error_chain(&e.without_url()))))?;
        let mut shown = endpoint.clone();
        // Credentials in the URL stay out of messages; setting them fails only for URLs that cannot have them.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(Self {
            endpoint_display: shown.to_string(),
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
        let mut attempt = 1u32;
        loop {
            tracing::debug!(inputs = batch.len(), attempt, "sending an embeddings request");
            let (error, retry_after) = match self.attempt(body.clone(), batch.len()).await {
                Ok(vectors) => return Ok(vectors),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retryable { error, retry_after }) => (error, retry_after),
            };
            let Some(backoff) = self.retry.delay(attempt, jitter()) else {
                tracing::warn!(attempts = attempt, error = %error, "embeddings request failed; giving up");
                return Err(error);
            };
            // The server knows best when it can take more, but we never wait longer than the policy's maximum.
            let wait = retry_after.map_or(backoff, |d| d.min(self.retry.max));
            tracing::warn!(attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), error = %error, "embeddings request failed; retrying");
            self.clock.sleep(wait).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange.
    async fn attempt(&self, body: Bytes, expected: usize) -> Result<Vec<Vector>, Failure> {
        let mut request = self.client.post(self.endpoint.clone()).header(CONTENT_TYPE, "application/json").body(body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let retry_after =
            response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, self.clock.now()));
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
        let mut message = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
        if let Some(key) = self.api_key.as_deref().filter(|k| !k.is_empty()) {
            message = message.replace(key, "<redacted>");
        }
        if message.chars().count() > MAX_MESSAGE_CHARS {
            message = message.chars().take(MAX_MESSAGE_CHARS).chain("…".chars()).collect();
        }
        message
    }

    /// A failure before a complete response arrived.
    fn transport(&self, e: reqwest::Error) -> Failure {
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

/// Whether `url` names this machine: `localhost` (and `*.localhost`), `127.0.0.0/8` or `::1`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}

/// An error and its sources, `: `-separated (reqwest's top-level message alone is often just "error sending request").
fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// A uniformly random `u64` for the backoff jitter, from std's randomly keyed hasher (no RNG crate needed).
fn jitter() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

/// A `Retry-After` value: delay seconds (`120`) or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`), relative to `now`.
/// A date in the past means "now"; anything else unparseable is ignored.
fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Not allowed by RFC 9110, but some servers send fractions.
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = parse_imf_fixdate(value)?;
    Some(Duration::from_millis(u64::try_from(at.saturating_sub(now.as_millis())).unwrap_or(0)))
}

/// Milliseconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP-date form senders
/// MUST generate (RFC 9110 §5.6.7). The obsolete RFC 850 and asctime forms are not accepted.
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = s.split_ascii_whitespace();
    let weekday = parts.next()?;
    if weekday.len() != 4 || !weekday.ends_with(',') {
        return None;
    }
    let day: i64 = parts.next()?.parse().ok()?;
    let month = MONTHS.iter().position(|m| Some(*m) == parts.clone().next())? as i64 + 1;
    parts.next();
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&sec) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + h) * 60 + m) * 60_000 + sec * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = Timestamp::from_millis(784_111_777_000); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO), "the past means now");
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 UTC", now), None);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), None);
    }

    #[test]
    fn imf_fixdate_matches_known_instants() {
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_imf_fixdate("Mon, 01 Jan 2024 00:00:00 GMT"), Some(1_704_067_200_000));
        assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2024 12:30:05 GMT"), Some(1_709_209_805_000));
        assert_eq!(parse_imf_fixdate("Thu, 29 Foo 2024 12:30:05 GMT"), None);
        assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2024 12:30 GMT"), None);
        assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2024 12:30:05:01 GMT"), None);
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
    fn loopback_hosts_are_recognised() {
        let loopback = |u: &str| is_loopback(&Url::parse(u).unwrap());
        assert!(loopback("http://localhost:11434/v1/embeddings"));
        assert!(loopback("http://LOCALHOST./v1"));
        assert!(loopback("http://127.0.0.1:8080/v1"));
        assert!(loopback("http://127.8.9.10/v1"));
        assert!(loopback("http://[::1]:8080/v1"));
        assert!(!loopback("https://api.openai.com/v1"));
        assert!(!loopback("http://10.0.0.1/v1"));
        assert!(!loopback("http://notlocalhost/v1"));
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
