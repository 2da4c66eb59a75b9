//! Requests to Weaviate: authentication, retries and the classification of failures.
//!
//! Transport errors, timeouts, 408 and 5xx are `Unavailable`; 429 is `RateLimited`; both are retried (bounded by the
//! retry policy, waiting on the injected clock, `Retry-After` honoured through `colstore_http::retrying`). 401 and
//! 403 are `Unauthorized`. Everything else comes back to the caller, who knows what a 404 or a 422 means for its
//! request. Weaviate's three error shapes (`{"error":[{"message"}]}`, `{"code","message"}`, GraphQL `errors` with
//! status 200) are read for messages, which never contain the API key.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use colstore_domain::RetryPolicy;
use colstore_domain::ports::{Clock, IndexError};
use colstore_http::{Failure, display_url, error_chain, retrying, shorten};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::{WEAVIATE_KIND, WeaviateConfig};

/// Longest server message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 500;

/// A finished exchange the caller interprets.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub(crate) fn json(&self, what: &str) -> Result<Value, IndexError> {
        serde_json::from_slice(&self.body).map_err(|e| backend(format!("{what}: the answer is not JSON: {e}")))
    }
}

/// The HTTP side of the adapter.
pub(crate) struct Http {
    base: Url,
    display: String,
    client: reqwest::Client,
    auth: Option<HeaderValue>,
    api_key: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

/// An `IndexError::Backend` with a message.
pub(crate) fn backend(message: impl Into<String>) -> IndexError {
    IndexError::Backend { backend: WEAVIATE_KIND, source: message.into().into() }
}

impl Http {
    pub(crate) fn new(config: &WeaviateConfig, clock: Arc<dyn Clock>) -> Result<Self, IndexError> {
        let invalid = |reason: String| backend(format!("invalid Weaviate URL {:?}: {reason}", config.url));
        let base = Url::parse(config.url.trim_end_matches('/')).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!("the scheme must be http or https, not {}", base.scheme())));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("it must not have a query or fragment".to_owned()));
        }
        let auth = match config.api_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    backend("the Weaviate API key cannot be sent in an HTTP header (it contains characters such as newlines)")
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = colstore_http::client(&base, config.timeout).map_err(|e| backend(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            display: display_url(&base).trim_end_matches('/').to_owned(),
            base,
            client,
            auth,
            api_key: config.api_key.clone(),
            retry: config.retry,
            timeout: config.timeout,
            clock,
        })
    }

    /// The server's URL for messages (no credentials).
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// Sends a request (retrying what is worth retrying) and returns any answer but 401, 403, 429 and 5xx.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, IndexError> {
        let body = match body {
            Some(v) => Some(Bytes::from(serde_json::to_vec(v).map_err(|e| backend(format!("cannot encode a request: {e}")))?)),
            None => None,
        };
        self.send_bytes(method, path, query, body).await
    }

    /// [`send`](Self::send) of a JSON body already encoded.
    pub(crate) async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer, IndexError> {
        let url = self.url(path, query);
        let what = format!("{method} {path}");
        retrying(
            &format!("Weaviate request {what}"),
            |n, random| self.retry.delay(n, random),
            self.retry.max,
            |wait| self.clock.sleep(wait),
            |attempt| {
                tracing::debug!(attempt, request = %what, "sending a Weaviate request");
                self.attempt(method.clone(), url.clone(), body.clone(), &what)
            },
        )
        .await
    }

    /// One GET of `path`, without retries: `health` answers at once whatever the server does.
    pub(crate) async fn probe(&self, path: &str) -> Result<Answer, IndexError> {
        self.attempt(Method::GET, self.url(path, &[]), None, &format!("GET {path}")).await.map_err(Failure::into_error)
    }

    /// `path` (and `query`) under the base URL, which may have a path of its own (a reverse proxy's prefix).
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn attempt(&self, method: Method, url: Url, body: Option<Bytes>, what: &str) -> Result<Answer, Failure<IndexError>> {
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(|e| self.transport(e, what))?;
        let status = response.status();
        let retry_after = colstore_http::retry_after(response.headers(), self.clock.now().as_millis());
        let body = response.bytes().await.map_err(|e| self.transport(e, what))?;
        let said = || {
            let m = self.message(&body);
            format!("{} answered {what} with {status}{}", self.display, if m.is_empty() { String::new() } else { format!(": {m}") })
        };
        match status {
            StatusCode::TOO_MANY_REQUESTS => Err(Failure::Retryable { error: IndexError::RateLimited, retry_after }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure::Fatal(IndexError::Unauthorized(said()))),
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Err(Failure::Retryable { error: IndexError::Unavailable(said()), retry_after })
            }
            _ => Ok(Answer { status, body }),
        }
    }

    fn transport(&self, e: reqwest::Error, what: &str) -> Failure<IndexError> {
        let why = if e.is_timeout() { format!("no answer within {:?}", self.timeout) } else { error_chain(&e.without_url()) };
        Failure::Retryable { error: IndexError::Unavailable(format!("{} ({what}): {why}", self.display)), retry_after: None }
    }

    /// The message of an error body in any of Weaviate's shapes (or the raw text), shortened, the key masked.
    pub(crate) fn message(&self, body: &[u8]) -> String {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let messages = |v: &Value| -> Option<String> {
            let list = v.as_array()?;
            let texts: Vec<String> = list.iter().filter_map(|e| e.get("message").and_then(Value::as_str).map(str::to_owned)).collect();
            (!texts.is_empty()).then(|| texts.join("; "))
        };
        let from_json = json.as_ref().and_then(|v| {
            v.get("error")
                .and_then(messages)
                .or_else(|| v.get("errors").and_then(messages))
                .or_else(|| v.get("message").and_then(Value::as_str).map(str::to_owned))
        });
        let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        shorten(&text, MAX_MESSAGE_CHARS, self.api_key.as_deref())
    }

    /// An unexpected answer as an error.
    pub(crate) fn unexpected(&self, what: &str, answer: &Answer) -> IndexError {
        let m = self.message(&answer.body);
        backend(format!(
            "{} answered {what} with {}{}",
            self.display,
            answer.status,
            if m.is_empty() { String::new() } else { format!(": {m}") }
        ))
    }

    /// Runs a GraphQL query and returns its `data`; the `errors` Weaviate sends with status 200 are errors.
    pub(crate) async fn graphql(&self, query: &str) -> Result<Value, IndexError> {
        let answer = self.send(Method::POST, "/v1/graphql", &[], Some(&serde_json::json!({ "query": query }))).await?;
        if answer.status != StatusCode::OK {
            return Err(self.unexpected("a GraphQL query", &answer));
        }
        let mut v = answer.json("a GraphQL query")?;
        if v.get("errors").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
            return Err(backend(format!("{} refused a GraphQL query: {}", self.display, self.message(&answer.body))));
        }
        Ok(v.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }
}
