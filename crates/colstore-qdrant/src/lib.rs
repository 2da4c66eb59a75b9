//! `QdrantIndex`: the [`VectorIndex`] port over a Qdrant server's REST API (port 6333), with `reqwest` and
//! hand-written serde types (the official Rust client is gRPC-only).
//!
//! - Every write is sent with `wait=true`, so it is durable when the call returns (Qdrant's `wait` defaults to false).
//! - Upserts are split so that each request body stays under [`QdrantConfig::max_request_bytes`] (Qdrant closes the
//!   connection on bodies over 32 MiB) and under [`IndexCapabilities::max_batch_points`] points.
//! - Filters are translated so that Qdrant selects what [`Filter::matches`] selects (see `filter.rs`).
//! - Scores are higher-is-closer: Qdrant's Euclid score is a distance, so it is negated. Ties are ordered by id.
//! - Errors are classified: connection errors, timeouts, 5xx → `Unavailable` and 429 → `RateLimited`, both retried
//!   through [`colstore_http::retrying`] (honouring `Retry-After`, waiting on the injected [`Clock`]); 401/403 →
//!   `Unauthorized`; 404 → `CollectionNotFound`; a wrong vector length → `DimensionMismatch`; the rest → `Backend`
//!   with the server's message, shortened and with the API key masked.
//!
//! [`QdrantForeign`] reads a collection colstore did not create, for `col import qdrant://HOST:6333/NAME`.
//!
//! The API key is sent as the `api-key` header and never appears in `Debug` output, logs or errors.

mod filter;
mod foreign;

pub use foreign::QdrantForeign;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{
    Clock, IndexCapabilities, IndexError, IndexHealth, ScrollPage, ScrollRequest, SearchRequest, StoredPoint, VectorIndex,
};
use colstore_domain::{Distance, Filter, IndexName, Payload, Point, PointId, RetryPolicy, ScoredPoint, VectorSettings};
use colstore_http::{Failure, display_url, error_chain, retrying, shorten};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

/// The `backend` of this adapter's errors and health.
pub const QDRANT_KIND: &str = "qdrant";

/// Qdrant's default request body limit (`service.max_request_size_mb` = 32).
const QDRANT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Our default: Qdrant's limit minus headroom for a server configured a little tighter or counting differently.
const DEFAULT_MAX_REQUEST_BYTES: usize = QDRANT_BODY_LIMIT - 256 * 1024;

/// Most points per upsert request (Qdrant recommends batches of hundreds to a few thousand).
const MAX_BATCH_POINTS: usize = 1000;

/// Most ids per delete request.
const MAX_DELETE_IDS: usize = 1000;

/// Longest server message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// The payload keys colstore filters by (sync retires points by `key`, checks hashes, scopes by `collection`):
/// they get keyword payload indexes.
const INDEXED_KEYS: [&str; 4] = ["key", "collection", "content_hash", "chunk_hash"];

/// Settings of a [`QdrantIndex`].
#[derive(Clone)]
pub struct QdrantConfig {
    /// The server, `http(s)://host:6333` (a path prefix is kept, for servers behind a proxy).
    pub url: String,
    /// Sent as the `api-key` header when set; never shown in `Debug` output, logs or errors.
    pub api_key: Option<String>,
    /// Timeout of one HTTP request, from sending it to the end of the response body.
    pub timeout: Duration,
    /// Retries of one request on 429, 5xx, connection errors and timeouts.
    pub retry: RetryPolicy,
    /// Largest request body sent; upserts are split to stay under it. Qdrant refuses bodies over 32 MiB by default.
    pub max_request_bytes: usize,
}

impl QdrantConfig {
    /// A configuration with the defaults: no API key, a 30 s timeout, the default [`RetryPolicy`], and request
    /// bodies up to 32 MiB minus 256 KiB of headroom.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

impl fmt::Debug for QdrantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A password in the URL is a secret too.
        let url = Url::parse(&self.url).map_or_else(|_| "<not a URL>".to_owned(), |u| display_url(&u));
        f.debug_struct("QdrantConfig")
            .field("url", &url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish()
    }
}

/// A plain message as an error source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

fn backend(message: impl Into<String>) -> IndexError {
    IndexError::Backend { backend: QDRANT_KIND, source: Box::new(Message(message.into())) }
}

/// A [`VectorIndex`] on a Qdrant server.
pub struct QdrantIndex {
    /// The server root, without a trailing slash.
    base: String,
    /// The root for messages: without user name and password.
    base_display: String,
    /// Kept only to mask it in server messages that echo it.
    api_key: Option<String>,
    auth: Option<HeaderValue>,
    timeout: Duration,
    retry: RetryPolicy,
    max_request_bytes: usize,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The distance of collections seen, to turn scores into higher-is-closer without asking each time.
    distances: Mutex<HashMap<IndexName, Distance>>,
}

impl fmt::Debug for QdrantIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantIndex")
            .field("url", &self.base_display)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish_non_exhaustive()
    }
}

/// How to read a 404.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// A request about this collection: 404 means it does not exist.
    Collection(&'a IndexName),
    /// Anything else: 404 is a plain error.
    Other,
}

/// Qdrant's success envelope.
#[derive(Deserialize)]
struct Envelope<T> {
    result: T,
}

#[derive(Deserialize)]
struct CollectionInfo {
    config: CollectionConfig,
    #[serde(default)]
    payload_schema: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct CollectionConfig {
    params: CollectionParams,
}

#[derive(Deserialize)]
struct CollectionParams {
    vectors: Value,
}

#[derive(Deserialize)]
struct WirePoint {
    id: Value,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    vector: Option<Value>,
    #[serde(default)]
    score: Option<f32>,
}

/// A scroll page read straight into its types, vectors into `f32`s (through a `Value` each number would be an
/// `f64` first, and narrowing it rounds twice: `7.038531e-26` would come back one step off). `P` is the payload:
/// [`Payload`] for our points, a plain map for a collection being adopted.
#[derive(Deserialize)]
struct TypedScroll<P> {
    points: Vec<TypedPoint<P>>,
    next_page_offset: Option<Value>,
}

#[derive(Deserialize)]
struct TypedPoint<P> {
    id: Value,
    payload: P,
    #[serde(default)]
    vector: Option<Vec<f32>>,
}

#[derive(Deserialize)]
struct ScrollResult {
    points: Vec<WirePoint>,
    next_page_offset: Option<Value>,
}

#[derive(Deserialize)]
struct QueryResult {
    points: Vec<WirePoint>,
}

#[derive(Deserialize)]
struct CountResult {
    count: u64,
}

#[derive(Deserialize)]
struct SnapshotInfo {
    name: String,
}

#[derive(Deserialize)]
struct Version {
    version: Option<String>,
}

/// Qdrant's distance name (case-sensitive on the wire).
fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "Cosine",
        Distance::Dot => "Dot",
        Distance::Euclid => "Euclid",
    }
}

fn distance_of(name: &str) -> Option<Distance> {
    match name {
        "Cosine" => Some(Distance::Cosine),
        "Dot" => Some(Distance::Dot),
        "Euclid" => Some(Distance::Euclid),
        _ => None,
    }
}

/// `expected dim: 4, got 3` in Qdrant's "Vector dimension error" message.
fn parse_dimension_error(message: &str) -> Option<(u32, u32)> {
    let rest = &message[message.find("expected dim:")? + "expected dim:".len()..];
    let digits = |s: &str| -> Option<(u32, usize)> {
        let s2 = s.trim_start();
        let skipped = s.len() - s2.len();
        let end = s2.find(|c: char| !c.is_ascii_digit()).unwrap_or(s2.len());
        Some((s2[..end].parse().ok()?, skipped + end))
    };
    let (expected, used) = digits(rest)?;
    let rest = &rest[used..];
    let rest = &rest[rest.find("got")? + 3..];
    let (got, _) = digits(rest)?;
    Some((expected, got))
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl QdrantIndex {
    /// An index on the server of `config`, waiting between retries on `clock`.
    ///
    /// Installs ring as rustls's process-wide crypto provider unless one is installed already.
    ///
    /// # Errors
    /// [`IndexError::Backend`] when the URL is not an `http(s)` URL without query, the API key cannot be sent in a
    /// header, `max_request_bytes` is under 1 MiB, or the HTTP client cannot be built.
    pub fn new(config: QdrantConfig, clock: Arc<dyn Clock>) -> Result<Self, IndexError> {
        let bad_url = |why: String| backend(format!("invalid Qdrant url {:?}: {why}; write it like http://localhost:6333", config.url));
        let url = Url::parse(config.url.trim()).map_err(|e| bad_url(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad_url(format!("the scheme must be http or https, not {}", url.scheme())));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad_url("it must not have a query or fragment".to_owned()));
        }
        if config.max_request_bytes < 1024 * 1024 {
            return Err(backend(format!(
                "max_request_bytes is {}; it must be at least 1 MiB (Qdrant's default limit is 32 MiB)",
                config.max_request_bytes
            )));
        }
        let auth = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(key)
                    .map_err(|_| backend("the Qdrant API key cannot be sent in an HTTP header (it holds characters such as newlines)"))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = colstore_http::client(&url, config.timeout).map_err(|e| backend(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base: url.as_str().trim_end_matches('/').to_owned(),
            base_display: display_url(&url).trim_end_matches('/').to_owned(),
            api_key: config.api_key,
            auth,
            timeout: config.timeout,
            retry: config.retry,
            max_request_bytes: config.max_request_bytes,
            client,
            clock,
            distances: Mutex::new(HashMap::new()),
        })
    }

    /// Sends one request (retrying as the policy allows) and returns the status and body of a 2xx answer, or of an
    /// answer whose status is in `accept`.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        scope: Scope<'_>,
        accept: &[StatusCode],
    ) -> Result<(StatusCode, Bytes), IndexError> {
        let body = body.map(|b| serde_json::to_vec(b).map(Bytes::from)).transpose().map_err(|e| backend(e.to_string()))?;
        self.exchange_bytes(method, path, body, scope, accept).await
    }

    async fn exchange_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        scope: Scope<'_>,
        accept: &[StatusCode],
    ) -> Result<(StatusCode, Bytes), IndexError> {
        let url = Url::parse(&format!("{}/{path}", self.base)).map_err(|e| backend(format!("cannot build the URL of {path}: {e}")))?;
        let what = format!("Qdrant {method} /{}", path.split('?').next().unwrap_or(path));
        retrying(
            &what,
            |n, random| self.retry.delay(n, random),
            self.retry.max,
            |wait| self.clock.sleep(wait),
            |attempt| {
                tracing::debug!(attempt, "{what}");
                self.attempt(method.clone(), url.clone(), body.clone(), scope, accept)
            },
        )
        .await
    }

    /// One GET of `path`, without retries: `health` answers at once whatever the server does.
    async fn probe(&self, path: &str) -> Result<(StatusCode, Bytes), IndexError> {
        let url = Url::parse(&format!("{}/{path}", self.base)).map_err(|e| backend(format!("cannot build the URL of {path}: {e}")))?;
        self.attempt(Method::GET, url, None, Scope::Other, &[]).await.map_err(Failure::into_error)
    }

    /// One HTTP exchange.
    async fn attempt(
        &self,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        scope: Scope<'_>,
        accept: &[StatusCode],
    ) -> Result<(StatusCode, Bytes), Failure<IndexError>> {
        // The URL for messages: without credentials and query (`wait=true` says nothing to a reader).
        let mut shown = url.clone();
        shown.set_query(None);
        let path = display_url(&shown);
        let mut request = self.client.request(method.clone(), url);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        if let Some(auth) = &self.auth {
            request = request.header("api-key", auth.clone());
        }
        let response = request.send().await.map_err(|e| self.transport(e, &method, &path))?;
        let status = response.status();
        let retry_after = colstore_http::retry_after(response.headers(), self.clock.now().as_millis());
        let bytes = response.bytes().await.map_err(|e| self.transport(e, &method, &path))?;
        if status.is_success() || accept.contains(&status) {
            return Ok((status, bytes));
        }
        Err(self.classify(status, &bytes, retry_after, scope, &method, &path))
    }

    /// The error of a non-2xx answer.
    fn classify(
        &self,
        status: StatusCode,
        body: &[u8],
        retry_after: Option<Duration>,
        scope: Scope<'_>,
        method: &Method,
        path: &str,
    ) -> Failure<IndexError> {
        let message = self.server_message(body);
        let what =
            format!("{path} answered {status} to {method}{}", if message.is_empty() { String::new() } else { format!(": {message}") });
        match status {
            StatusCode::TOO_MANY_REQUESTS => Failure::Retryable { error: IndexError::RateLimited, retry_after },
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Failure::Retryable { error: IndexError::Unavailable(what), retry_after }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Failure::Fatal(IndexError::Unauthorized(format!("{what} (check the API key: colstore sends it as the `api-key` header)")))
            }
            StatusCode::NOT_FOUND => {
                // Qdrant says a collection is missing in its JSON error shape; a bare 404 comes from elsewhere (a
                // wrong path prefix, a proxy), and "collection not found" would send the user looking in vain.
                let from_qdrant = serde_json::from_slice::<Value>(body).ok().is_some_and(|v| v.pointer("/status/error").is_some());
                match scope {
                    Scope::Collection(name) if from_qdrant => Failure::Fatal(IndexError::CollectionNotFound(name.clone())),
                    Scope::Collection(_) => Failure::Fatal(backend(format!(
                        "{what} (not Qdrant's answer for a missing collection: is the url the Qdrant server root, like http://localhost:6333?)"
                    ))),
                    Scope::Other => Failure::Fatal(backend(what)),
                }
            }
            StatusCode::BAD_REQUEST => match parse_dimension_error(&message) {
                Some((expected, got)) if message.contains("dimension") => Failure::Fatal(IndexError::DimensionMismatch { expected, got }),
                _ => Failure::Fatal(backend(what)),
            },
            _ => Failure::Fatal(backend(what)),
        }
    }

    /// The server's message: `status.error` of Qdrant's JSON errors, or the text itself (401 is plain text);
    /// shortened, with the API key masked.
    fn server_message(&self, body: &[u8]) -> String {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let from_json = json.as_ref().and_then(|v| {
            v.pointer("/status/error").and_then(Value::as_str).map(str::to_owned).or_else(|| v.get("status").map(Value::to_string))
        });
        let message = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        shorten(&message, MAX_MESSAGE_CHARS, self.api_key.as_deref())
    }

    /// A failure before a complete response arrived: retryable.
    fn transport(&self, e: reqwest::Error, method: &Method, path: &str) -> Failure<IndexError> {
        if e.is_builder() {
            return Failure::Fatal(backend(error_chain(&e.without_url())));
        }
        let what = if e.is_timeout() { format!("no answer within {:?}", self.timeout) } else { error_chain(&e.without_url()) };
        let what = shorten(&what, MAX_MESSAGE_CHARS, self.api_key.as_deref());
        Failure::Retryable { error: IndexError::Unavailable(format!("{method} {path}: {what}")), retry_after: None }
    }

    /// A request whose answer is Qdrant's envelope; returns its `result`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        scope: Scope<'_>,
    ) -> Result<T, IndexError> {
        let (_, bytes) = self.exchange(method.clone(), path, body, scope, &[]).await?;
        self.parse(&bytes, &method, path)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, bytes: &[u8], method: &Method, path: &str) -> Result<T, IndexError> {
        serde_json::from_slice::<Envelope<T>>(bytes).map(|e| e.result).map_err(|e| {
            backend(format!("{}/{path} answered {method} with a body that is not what Qdrant 1.x sends: {e}", self.base_display))
        })
    }

    /// The vector size and distance of a collection.
    async fn info(&self, name: &IndexName) -> Result<(u32, Distance, serde_json::Map<String, Value>), IndexError> {
        let info: CollectionInfo = self.call(Method::GET, &format!("collections/{name}"), None, Scope::Collection(name)).await?;
        let vectors = &info.config.params.vectors;
        let size = vectors.get("size").and_then(Value::as_u64);
        let distance = vectors.get("distance").and_then(Value::as_str);
        let (Some(size), Some(distance)) = (size, distance) else {
            return Err(backend(format!(
                "the Qdrant collection {name} has named or unusual vectors ({vectors}); colstore needs one unnamed vector per point. \
                 Drop it or use another collection name"
            )));
        };
        let distance = distance_of(distance).ok_or_else(|| {
            backend(format!(
                "the Qdrant collection {name} uses the distance {distance}, which colstore does not support (Cosine, Dot, Euclid)"
            ))
        })?;
        self.distances.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone(), distance);
        Ok((len_u32(usize::try_from(size).unwrap_or(usize::MAX)), distance, info.payload_schema))
    }

    async fn distance(&self, name: &IndexName) -> Result<Distance, IndexError> {
        let known = self.distances.lock().unwrap_or_else(PoisonError::into_inner).get(name).copied();
        match known {
            Some(d) => Ok(d),
            None => Ok(self.info(name).await?.1),
        }
    }

    async fn create_index(&self, name: &IndexName, key: &str) -> Result<(), IndexError> {
        let body = json!({"field_name": key, "field_schema": "keyword"});
        let result: Value =
            self.call(Method::PUT, &format!("collections/{name}/index?wait=true"), Some(&body), Scope::Collection(name)).await?;
        check_completed(&result, &format!("creating the payload index on {key} of {name}"))
    }

    fn stored(&self, name: &IndexName, p: WirePoint) -> Result<StoredPoint, IndexError> {
        let id = point_id(name, &p.id)?;
        let payload = match p.payload {
            Some(v) => serde_json::from_value::<Payload>(v).map_err(|e| {
                backend(format!("point {id} in {name} has a payload colstore did not write ({e}); drop the collection and sync again"))
            })?,
            None => return Err(backend(format!("Qdrant returned point {id} of {name} without its payload"))),
        };
        let vector = match p.vector {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value::<Vec<f32>>(v)
                    .map_err(|e| backend(format!("point {id} in {name} has a vector that is not one list of numbers: {e}")))?,
            ),
        };
        Ok(StoredPoint { id, payload, vector })
    }

    /// One query request: hits with higher-is-closer scores, in Qdrant's order.
    async fn query(
        &self,
        name: &IndexName,
        request: &SearchRequest,
        filter: Option<&Value>,
        limit: usize,
        distance: Distance,
    ) -> Result<Vec<ScoredPoint>, IndexError> {
        let mut body = json!({"query": request.vector, "limit": limit, "with_payload": true});
        if let Some(f) = filter {
            body["filter"] = f.clone();
        }
        let result: QueryResult =
            self.call(Method::POST, &format!("collections/{name}/points/query"), Some(&body), Scope::Collection(name)).await?;
        result
            .points
            .into_iter()
            .map(|p| {
                let score = p.score.ok_or_else(|| backend(format!("a search hit in {name} has no score")))?;
                let s = self.stored(name, WirePoint { score: None, vector: None, ..p })?;
                // Qdrant's Euclid score is the distance (lower is closer); the port wants higher-is-closer.
                let score = if distance == Distance::Euclid { -score } else { score };
                Ok(ScoredPoint { id: s.id, score, payload: s.payload })
            })
            .collect()
    }
}

/// Checks the answer to a write sent with `wait=true`: Qdrant says `completed` once the write is applied; anything else
/// (`acknowledged`: a proxy dropped the query string, or the server ignored it) would make "durable on return" a lie.
/// Counts the bytes written through it.
struct Counting(usize);

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The most bytes one `f32` takes in a body, with its comma: 15 in exponent form (`-1.1754944e-38,`), 18 in the
/// plain decimals serde_json writes for exponents -6 to 12 (`-0.00000123456789,`).
const MAX_FLOAT_TEXT: usize = 18;

/// Refuses, before any request, points no upsert could send: a value that is not finite, or a point that alone
/// passes `max_request_bytes`. Cheap: a point is written out only when a bound on its size passes the limit.
fn check_points(points: &[Point], max_request_bytes: usize) -> Result<(), IndexError> {
    const FRAME: usize = 128; // `{"points":[`, `{"id":"<uuid>","vector":[`, `],"payload":`, `}]}`
    for p in points {
        if let Some(bad) = p.vector.iter().find(|x| !x.is_finite()) {
            return Err(backend(format!("the vector of point {} holds {bad}, which Qdrant cannot store; re-embed the chunk", p.id)));
        }
        let mut payload = Counting(0);
        serde_json::to_writer(&mut payload, &p.payload).map_err(|e| backend(format!("cannot serialise point {}: {e}", p.id)))?;
        if FRAME + p.vector.len() * MAX_FLOAT_TEXT + payload.0 <= max_request_bytes {
            continue;
        }
        let mut one = Vec::new();
        write_upsert_point(&mut one, p).map_err(|e| backend(format!("cannot serialise point {}: {e}", p.id)))?;
        if one.len() + 13 > max_request_bytes {
            return Err(backend(format!(
                "point {} alone takes {} bytes, over the request limit of {max_request_bytes} bytes; shorten its metadata",
                p.id,
                one.len()
            )));
        }
    }
    Ok(())
}

/// Upsert bodies for `points`, each under `max_request_bytes` and [`MAX_BATCH_POINTS`].
fn upsert_bodies(points: &[Point], max_request_bytes: usize) -> Result<Vec<Bytes>, IndexError> {
    const HEAD: &[u8] = b"{\"points\":[";
    const TAIL: &[u8] = b"]}";
    let mut bodies = Vec::new();
    // Each point is written straight into the body (no buffer per point to copy from); a point that would take the
    // body over the limit moves to the next one.
    let mut current: Vec<u8> = Vec::with_capacity(max_request_bytes.min(4 << 20));
    let mut in_current = 0usize;
    for p in points {
        if let Some(bad) = p.vector.iter().find(|x| !x.is_finite()) {
            return Err(backend(format!("the vector of point {} holds {bad}, which Qdrant cannot store; re-embed the chunk", p.id)));
        }
        if in_current >= MAX_BATCH_POINTS {
            current.extend_from_slice(TAIL);
            bodies.push(Bytes::from(std::mem::replace(&mut current, Vec::with_capacity(max_request_bytes.min(4 << 20)))));
            in_current = 0;
        }
        let before = current.len();
        current.extend_from_slice(if in_current == 0 { HEAD } else { b"," });
        let start = current.len();
        write_upsert_point(&mut current, p).map_err(|e| backend(format!("cannot serialise point {}: {e}", p.id)))?;
        let one = current.len() - start;
        if HEAD.len() + one + TAIL.len() > max_request_bytes {
            return Err(backend(format!(
                "point {} alone takes {one} bytes, over the request limit of {max_request_bytes} bytes; shorten its metadata",
                p.id
            )));
        }
        if current.len() + TAIL.len() > max_request_bytes {
            // Over the limit with the points before it: they make one body, this one starts the next.
            let moved = current.split_off(start);
            current.truncate(before);
            current.extend_from_slice(TAIL);
            bodies.push(Bytes::from(std::mem::replace(&mut current, Vec::with_capacity(max_request_bytes.min(4 << 20)))));
            current.extend_from_slice(HEAD);
            current.extend_from_slice(&moved);
            in_current = 0;
        }
        in_current += 1;
    }
    if in_current > 0 {
        current.extend_from_slice(TAIL);
        bodies.push(Bytes::from(current));
    }
    Ok(bodies)
}

/// Writes `p` as Qdrant's upsert takes it: `{"id":"…","vector":[…],"payload":{…}}`. The floats are written here, not
/// through serde: serde_json passes every number and every comma through its `io::Write` calls, which cost more than
/// the digits themselves. The text is byte for byte serde_json's (the same `zmij` shortest form; a unit test compares
/// them); the vector's values were checked finite by [`check_points`].
fn write_upsert_point(out: &mut Vec<u8>, p: &Point) -> serde_json::Result<()> {
    use std::io::Write as _;
    out.extend_from_slice(b"{\"id\":\"");
    write!(out, "{}", p.id).map_err(serde_json::Error::io)?;
    out.extend_from_slice(b"\",\"vector\":");
    write_f32s(out, &p.vector);
    out.extend_from_slice(b",\"payload\":");
    serde_json::to_writer(&mut *out, &p.payload)?;
    out.push(b'}');
    Ok(())
}

/// Writes finite `values` as a JSON array of their shortest `f32` texts.
fn write_f32s(out: &mut Vec<u8>, values: &[f32]) {
    let mut text = zmij::Buffer::new();
    out.reserve(values.len() * 16 + 2);
    out.push(b'[');
    for (i, x) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(text.format_finite(*x).as_bytes());
    }
    out.push(b']');
}

fn check_completed(result: &Value, what: &str) -> Result<(), IndexError> {
    match result.get("status").and_then(Value::as_str) {
        Some("completed") => Ok(()),
        other => Err(backend(format!(
            "{what}: Qdrant answered {} instead of \"completed\" to a write sent with wait=true, so it may not be applied yet; \
             check that nothing between colstore and Qdrant drops the query string",
            other.map_or_else(|| result.to_string(), |s| format!("{s:?}"))
        ))),
    }
}

fn point_id(name: &IndexName, v: &Value) -> Result<PointId, IndexError> {
    v.as_str().and_then(|s| serde_json::from_value::<PointId>(Value::String(s.to_owned())).ok()).ok_or_else(|| {
        backend(format!("the Qdrant collection {name} holds a point with id {v}, which colstore did not write (its ids are UUIDs)"))
    })
}

fn translate(filter: Option<&Filter>) -> Result<Option<Value>, IndexError> {
    filter.map(filter::to_qdrant).transpose().map(Option::flatten)
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            max_batch_points: MAX_BATCH_POINTS,
            max_request_bytes: self.max_request_bytes,
            filter_should: true,
            exact_count: true,
            snapshots: true,
        }
    }

    async fn health(&self) -> Result<IndexHealth, IndexError> {
        let unhealthy =
            |e: IndexError| IndexHealth { backend: QDRANT_KIND.to_owned(), version: None, ok: false, detail: Some(e.to_string()) };
        let version = match self.probe("").await {
            Ok((_, bytes)) => serde_json::from_slice::<Version>(&bytes).ok().and_then(|v| v.version),
            Err(e) => return Ok(unhealthy(e)),
        };
        // The API key is checked on API routes only: list collections to know that ours is accepted.
        if let Err(e) = self.probe("collections").await {
            return Ok(IndexHealth { version, ..unhealthy(e) });
        }
        if let Err(e) = self.probe("readyz").await {
            return Ok(IndexHealth { version, ..unhealthy(e) });
        }
        Ok(IndexHealth { backend: QDRANT_KIND.to_owned(), version, ok: true, detail: None })
    }

    async fn ensure_collection(&self, name: &IndexName, settings: &VectorSettings) -> Result<(), IndexError> {
        let dim = settings.embedder.dimension.get();
        let body = json!({"vectors": {"size": dim, "distance": distance_name(settings.distance)}});
        let (status, _) =
            self.exchange(Method::PUT, &format!("collections/{name}"), Some(&body), Scope::Other, &[StatusCode::CONFLICT]).await?;
        let existing = if status == StatusCode::CONFLICT {
            let (size, distance, schema) = self.info(name).await?;
            if size != dim {
                return Err(IndexError::DimensionMismatch { expected: size, got: dim });
            }
            if distance != settings.distance {
                tracing::warn!(collection = %name, existing = ?distance, wanted = ?settings.distance, "the Qdrant collection exists with another distance");
                // The port has no variant for "other settings" but this one (as the embedded index does).
                return Err(IndexError::DimensionMismatch { expected: size, got: dim });
            }
            schema
        } else {
            serde_json::Map::new()
        };
        self.distances.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone(), settings.distance);
        for key in INDEXED_KEYS {
            if !existing.contains_key(key) {
                self.create_index(name, key).await?;
            }
        }
        Ok(())
    }

    async fn drop_collection(&self, name: &IndexName) -> Result<bool, IndexError> {
        self.distances.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
        self.call(Method::DELETE, &format!("collections/{name}"), None, Scope::Other).await
    }

    async fn upsert(&self, name: &IndexName, points: Vec<Point>) -> Result<(), IndexError> {
        let Some(first) = points.first() else { return Ok(()) };
        // All-or-nothing across split requests: a vector of another length would fail only its own request after
        // earlier ones were written, so check the lengths against the collection before sending anything.
        if let Some(odd) = points.iter().find(|p| p.vector.len() != first.vector.len()) {
            let (size, _, _) = self.info(name).await?;
            let wrong = if first.vector.len() != size as usize { first } else { odd };
            return Err(IndexError::DimensionMismatch { expected: size, got: len_u32(wrong.vector.len()) });
        }
        let path = format!("collections/{name}/points?wait=true");
        let max = self.max_request_bytes;
        // Refused before anything is sent: a value Qdrant cannot store, a point that alone passes the request limit.
        check_points(&points, max)?;
        // Writing the floats as text is the costliest part of a large upsert. It is done on a blocking thread, one
        // group of points ahead of the requests: the next group becomes text while the engine takes this one, and
        // the caller's other work (reading and chunking its next batch) goes on meanwhile.
        let mut groups = Vec::with_capacity(points.len().div_ceil(MAX_BATCH_POINTS));
        let mut rest = points;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(MAX_BATCH_POINTS));
            groups.push(std::mem::replace(&mut rest, tail));
        }
        let write = |group: Vec<Point>| tokio::task::spawn_blocking(move || upsert_bodies(&group, max));
        let mut groups = groups.into_iter();
        let mut next = groups.next().map(write);
        while let Some(writing) = next.take() {
            let bodies = writing.await.map_err(|e| backend(format!("writing the upsert bodies failed: {e}")))??;
            next = groups.next().map(write);
            for body in bodies {
                let (_, bytes) = self.exchange_bytes(Method::PUT, &path, Some(body), Scope::Collection(name), &[]).await?;
                let result: Value = self.parse(&bytes, &Method::PUT, &path)?;
                check_completed(&result, &format!("upsert into {name}"))?;
            }
        }
        Ok(())
    }

    async fn delete(&self, name: &IndexName, ids: Vec<PointId>) -> Result<(), IndexError> {
        let path = format!("collections/{name}/points/delete?wait=true");
        if ids.is_empty() {
            // Still report a missing collection.
            self.info(name).await?;
            return Ok(());
        }
        for chunk in ids.chunks(MAX_DELETE_IDS) {
            let body = json!({"points": chunk.iter().map(ToString::to_string).collect::<Vec<_>>()});
            let result: Value = self.call(Method::POST, &path, Some(&body), Scope::Collection(name)).await?;
            check_completed(&result, &format!("delete from {name}"))?;
        }
        Ok(())
    }

    async fn delete_by_filter(&self, name: &IndexName, filter: &Filter) -> Result<Option<u64>, IndexError> {
        let body = json!({"filter": translate(Some(filter))?.unwrap_or_else(|| json!({}))});
        let result: Value =
            self.call(Method::POST, &format!("collections/{name}/points/delete?wait=true"), Some(&body), Scope::Collection(name)).await?;
        check_completed(&result, &format!("delete by filter from {name}"))?;
        // Qdrant does not say how many points went.
        Ok(None)
    }

    async fn scroll(&self, name: &IndexName, request: ScrollRequest) -> Result<ScrollPage, IndexError> {
        if request.limit == 0 {
            return Err(backend(format!("scroll of {name} with limit 0: a page holds at least one point (Qdrant refuses 0 with 422)")));
        }
        let mut body = json!({"limit": request.limit, "with_payload": true, "with_vector": request.with_vectors});
        if let Some(from) = request.from {
            body["offset"] = json!(from.to_string());
        }
        if let Some(f) = translate(request.filter.as_ref())? {
            body["filter"] = f;
        }
        let path = format!("collections/{name}/points/scroll");
        let (_, bytes) = self.exchange(Method::POST, &path, Some(&body), Scope::Collection(name), &[]).await?;
        // Our own points read straight into their types; anything else takes the general path, whose errors say
        // what is wrong with the point.
        if let Ok(typed) = serde_json::from_slice::<Envelope<TypedScroll<Payload>>>(&bytes) {
            let points = typed
                .result
                .points
                .into_iter()
                .map(|p| Ok(StoredPoint { id: point_id(name, &p.id)?, payload: p.payload, vector: p.vector }))
                .collect::<Result<Vec<_>, IndexError>>()?;
            let next = match typed.result.next_page_offset {
                None | Some(Value::Null) => None,
                Some(v) => Some(point_id(name, &v)?),
            };
            return Ok(ScrollPage { points, next });
        }
        let result: ScrollResult = self.parse(&bytes, &Method::POST, &path)?;
        let points = result.points.into_iter().map(|p| self.stored(name, p)).collect::<Result<Vec<_>, _>>()?;
        let next = match result.next_page_offset {
            None | Some(Value::Null) => None,
            Some(v) => Some(point_id(name, &v)?),
        };
        Ok(ScrollPage { points, next })
    }

    async fn count(&self, name: &IndexName, filter: Option<Filter>) -> Result<u64, IndexError> {
        let mut body = json!({"exact": true});
        if let Some(f) = translate(filter.as_ref())? {
            body["filter"] = f;
        }
        let result: CountResult =
            self.call(Method::POST, &format!("collections/{name}/points/count"), Some(&body), Scope::Collection(name)).await?;
        Ok(result.count)
    }

    async fn search(&self, name: &IndexName, request: SearchRequest) -> Result<Vec<ScoredPoint>, IndexError> {
        let filter = translate(request.filter.as_ref())?;
        let distance = self.distance(name).await?;
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        // Qdrant orders equal scores arbitrarily; the port wants ties by id. Ask for one more hit than wanted: when
        // it ties with the last wanted one, the tie may go on beyond it, so ask for more until it ends.
        let mut fetch = request.limit.saturating_add(1);
        loop {
            let mut hits = self.query(name, &request, filter.as_ref(), fetch, distance).await?;
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            let complete = hits.len() < fetch || hits.get(request.limit - 1).map(|h| h.score) != hits.last().map(|h| h.score);
            if complete || fetch >= 100_000 {
                hits.truncate(request.limit);
                return Ok(hits);
            }
            fetch = fetch.saturating_mul(2).min(100_000);
        }
    }

    async fn flush(&self, name: &IndexName) -> Result<Vec<String>, IndexError> {
        let snapshot: SnapshotInfo =
            self.call(Method::POST, &format!("collections/{name}/snapshots?wait=true"), None, Scope::Collection(name)).await?;
        let mut steps = vec![format!("created snapshot {} of {name} (Qdrant persists its WAL and segments for it)", snapshot.name)];
        let deleted: Result<Value, IndexError> =
            self.call(Method::DELETE, &format!("collections/{name}/snapshots/{}", snapshot.name), None, Scope::Other).await;
        steps.push(match deleted {
            Ok(_) => format!("deleted snapshot {}", snapshot.name),
            Err(e) => format!(
                "could not delete snapshot {} ({e}); the data is flushed, but delete the snapshot by hand to free its disk space \
                 (DELETE /collections/{name}/snapshots/{})",
                snapshot.name, snapshot.name
            ),
        });
        Ok(steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that never waits (these tests send nothing).
    struct Still;

    #[async_trait]
    impl Clock for Still {
        fn now(&self) -> colstore_domain::Timestamp {
            colstore_domain::Timestamp::EPOCH
        }
        async fn sleep(&self, _: Duration) {}
    }

    #[test]
    fn debug_output_never_shows_the_key_or_a_password_in_the_url() {
        let config = QdrantConfig { api_key: Some("sekrit-key".into()), ..QdrantConfig::new("http://me:pw-in-url@127.0.0.1:6333") };
        let index = QdrantIndex::new(config.clone(), Arc::new(Still)).unwrap();
        for shown in [format!("{config:?}"), format!("{index:?}")] {
            assert!(!shown.contains("sekrit-key") && !shown.contains("pw-in-url"), "{shown}");
            assert!(shown.contains("127.0.0.1:6333"), "the server is still named: {shown}");
        }
    }

    #[test]
    fn dimension_errors_are_parsed() {
        assert_eq!(parse_dimension_error("Wrong input: Vector dimension error: expected dim: 4, got 3"), Some((4, 3)));
        assert_eq!(parse_dimension_error("expected dim: 384, got 1536"), Some((384, 1536)));
        assert_eq!(parse_dimension_error("Wrong input: something else"), None);
        assert_eq!(parse_dimension_error("expected dim: x, got 3"), None);
        assert_eq!(parse_dimension_error("expected dim: 4"), None);
    }

    #[test]
    fn writes_must_be_completed() {
        assert!(check_completed(&json!({"operation_id": 3, "status": "completed"}), "upsert").is_ok());
        let e = check_completed(&json!({"operation_id": 3, "status": "acknowledged"}), "upsert into c").unwrap_err().to_string();
        assert!(e.contains("upsert into c") && e.contains("\"acknowledged\"") && e.contains("wait=true"), "{e}");
        assert!(check_completed(&json!(true), "x").is_err());
    }

    /// Vectors go out as the shortest text of each `f32` (`0.1`), not of the `f32` widened to `f64`
    /// (`0.10000000149011612`): half the bytes for the same value on the server.
    /// Chunk `chunk` of `a.md` in collection `c`, with `metadata`, and its id in a new store.
    fn point_of(chunk: u32, metadata: serde_json::Map<String, Value>) -> (PointId, Payload) {
        let h = colstore_domain::ContentHash::of(b"x");
        let payload = Payload {
            collection: colstore_domain::CollectionName::parse("c").unwrap(),
            key: colstore_domain::DocKey::parse("a.md").unwrap(),
            chunk,
            content_hash: h,
            chunk_hash: h,
            metadata,
        };
        (PointId::derive(colstore_domain::StoreId::random(), &payload.collection, &payload.key, chunk), payload)
    }

    #[test]
    fn upsert_bodies_write_vectors_as_f32() {
        let (id, payload) = point_of(0, serde_json::Map::new());
        let point = Point { id, vector: vec![0.1, 0.6, -1.0e-7], payload };
        let bodies = upsert_bodies(&[point], DEFAULT_MAX_REQUEST_BYTES).unwrap();
        let body: Value = serde_json::from_slice(&bodies[0]).unwrap();
        let text = String::from_utf8(bodies[0].to_vec()).unwrap();
        assert!(text.contains("\"vector\":[0.1,0.6,-1e-7]"), "{text}");
        let back: Vec<f32> = serde_json::from_value(body["points"][0]["vector"].clone()).unwrap();
        assert_eq!(back, vec![0.1f32, 0.6, -1.0e-7], "the same f32s on the server");
    }

    /// The hand-written point is byte for byte what serde_json writes for the same fields, for floats of every
    /// magnitude (a sample of all finite bit patterns, both signs, subnormals, the extremes).
    #[test]
    fn upsert_points_are_written_as_serde_json_writes_them() {
        #[derive(serde::Serialize)]
        struct Reference<'a> {
            id: String,
            vector: &'a [f32],
            payload: &'a Payload,
        }
        let mut metadata = serde_json::Map::new();
        metadata.insert("title".into(), json!("\"quoted\" é \u{1}"));
        let (id, payload) = point_of(3, metadata);
        let mut vector: Vec<f32> = (0..u32::MAX / 9973).map(|i| f32::from_bits(i.wrapping_mul(9973))).filter(|x| x.is_finite()).collect();
        vector.extend([0.0, -0.0, f32::MIN, f32::MAX, f32::MIN_POSITIVE, f32::EPSILON, 1e-45, -1e-45, 0.1, 7.038531e-26]);
        for chunk in [&vector[..0], &vector[..1], &vector[..]] {
            let point = Point { id, vector: chunk.to_vec(), payload: payload.clone() };
            let mut ours = Vec::new();
            write_upsert_point(&mut ours, &point).unwrap();
            let theirs = serde_json::to_vec(&Reference { id: id.to_string(), vector: chunk, payload: &payload }).unwrap();
            assert!(ours == theirs, "the texts differ for a vector of {} values", chunk.len());
        }
    }

    #[test]
    fn distances_map_to_qdrant_names() {
        for d in [Distance::Cosine, Distance::Dot, Distance::Euclid] {
            assert_eq!(distance_of(distance_name(d)), Some(d));
        }
        assert_eq!(distance_of("cosine"), None, "case-sensitive, as Qdrant");
        assert_eq!(distance_of("Manhattan"), None);
    }
}
