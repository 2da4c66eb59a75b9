//! `StubEmbedServer`: a tiny OpenAI-compatible embeddings server on a real loopback socket, for tests.
//!
//! It serves `POST /v1/embeddings` over hand-parsed HTTP/1.1 (one request per connection, answered with
//! `Connection: close`) on plain std threads, so it works from sync tests, async tests and end-to-end tests that
//! run the real `col` binary against [`StubEmbedServer::url`]. Vectors are deterministic
//! ([`StubEmbedServer::vector`]); the server counts requests and embedded texts, records the last request, and
//! injects faults (error statuses with `Retry-After`, delays, wrong dimensions, a required API key).
//!
//! ```no_run
//! use colstore_testkit::stub_embedder::StubEmbedServer;
//!
//! let server = StubEmbedServer::start(8);
//! server.fail_next(1, 429, Some(2));
//! // point the embedder at server.url() ("http://127.0.0.1:PORT/v1") ...
//! assert_eq!(server.times_embedded("hello"), 0);
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 256 * 1024 * 1024;
/// How long a connection may stay silent before the server gives up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target, e.g. `/v1/embeddings`.
    pub path: String,
    /// The headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (lossily decoded as UTF-8).
    pub body: String,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A fault to answer one request with.
#[derive(Debug, Clone, Copy)]
struct Fault {
    status: u16,
    retry_after: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    stopping: bool,
    requests: u64,
    texts_embedded: u64,
    embedded: HashMap<String, u64>,
    /// The texts of every answered embedding request, by the API key it carried ("" without one), in order.
    by_key: HashMap<String, Vec<Vec<String>>>,
    faults: VecDeque<Fault>,
    delay: Duration,
    wrong_dimension: bool,
    reverse_order: bool,
    key: Option<String>,
    last: Option<RecordedRequest>,
    /// Connection handlers, with a handle on their socket so `Drop` can cut them off.
    handlers: Vec<(JoinHandle<()>, Option<TcpStream>)>,
}

#[derive(Debug)]
struct Shared {
    dimension: u32,
    state: Mutex<State>,
    /// Signalled when the server stops, so delayed answers end at once.
    stopped: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A tiny OpenAI-compatible embeddings server on `127.0.0.1`, stopped when dropped. See the module docs.
#[derive(Debug)]
pub struct StubEmbedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl StubEmbedServer {
    /// Starts a server answering with vectors of `dimension` components, on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound or no thread started (a broken test environment).
    pub fn start(dimension: u32) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port for the stub embedder");
        let addr = listener.local_addr().expect("the stub embedder's address");
        let shared = Arc::new(Shared { dimension, state: Mutex::new(State::default()), stopped: Condvar::new() });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("stub-embedder".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("start the stub embedder's thread")
        };
        Self { addr, shared, accept: Some(accept) }
    }

    /// The base URL to configure an OpenAI-compatible client with: `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dimension of the vectors it answers with (unless [`wrong_dimension`](Self::wrong_dimension) is on).
    pub fn dimension(&self) -> u32 {
        self.shared.dimension
    }

    /// The vector the server returns for `text` at `dimension`: SHA-256 of the text (and a block counter, for more
    /// than 8 components) mapped to `[-1, 1]` per 32 bits, then L2-normalised.
    pub fn vector(text: &str, dimension: u32) -> Vec<f32> {
        let dimension = dimension as usize;
        let mut raw = Vec::with_capacity(dimension);
        let mut block = 0u32;
        while raw.len() < dimension {
            let digest = Sha256::new().chain_update(text.as_bytes()).chain_update(block.to_le_bytes()).finalize();
            for word in digest.chunks_exact(4) {
                if raw.len() == dimension {
                    break;
                }
                let x = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                raw.push(f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0);
            }
            block += 1;
        }
        let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
        raw.iter().map(|x| if norm > 0.0 { (x / norm) as f32 } else { 0.0 }).collect()
    }

    /// HTTP requests received so far, whatever their path or outcome.
    pub fn requests(&self) -> u64 {
        self.shared.lock().requests
    }

    /// Input texts embedded so far, counting repeats: the inputs of every request answered with 200.
    pub fn texts_embedded(&self) -> u64 {
        self.shared.lock().texts_embedded
    }

    /// How many times `text` was embedded (answered with 200).
    pub fn times_embedded(&self, text: &str) -> u64 {
        self.shared.lock().embedded.get(text).copied().unwrap_or(0)
    }

    /// The texts of the last embedding request answered with 200 that carried API key `key` (`Authorization: Bearer
    /// <key>`); empty when none did. Giving each client process its own key tells the processes apart: a process
    /// killed mid-request lost at most that request's answer.
    pub fn last_texts_of(&self, key: &str) -> Vec<String> {
        self.shared.lock().by_key.get(key).and_then(|r| r.last()).cloned().unwrap_or_default()
    }

    /// Every text embedded so far, with how many times.
    pub fn embedded_counts(&self) -> Vec<(String, u64)> {
        self.shared.lock().embedded.iter().map(|(t, n)| (t.clone(), *n)).collect()
    }

    /// How many distinct texts were embedded.
    pub fn distinct_texts(&self) -> usize {
        self.shared.lock().embedded.len()
    }

    /// The last request received, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.lock().last.clone()
    }

    /// The last request's body parsed as JSON, if there was one and it is JSON.
    pub fn last_body(&self) -> Option<Value> {
        self.last_request().and_then(|r| r.json())
    }

    /// Header `name` (case-insensitive) of the last request.
    pub fn last_header(&self, name: &str) -> Option<String> {
        self.last_request().and_then(|r| r.header(name).map(str::to_owned))
    }

    /// Answers the next `n` embedding requests with `status` (a JSON OpenAI-style error body) and, when given,
    /// `Retry-After: <seconds>`. Calls queue up: `fail_next(1, 429, ..)` then `fail_next(2, 500, None)` fails three.
    pub fn fail_next(&self, n: u32, status: u16, retry_after: Option<u32>) {
        let mut state = self.shared.lock();
        state.faults.extend((0..n).map(|_| Fault { status, retry_after }));
    }

    /// Waits `d` before answering every request from now on (`Duration::ZERO` turns it off).
    pub fn delay(&self, d: Duration) {
        self.shared.lock().delay = d;
    }

    /// When on, vectors have `dimension + 1` components.
    pub fn wrong_dimension(&self, on: bool) {
        self.shared.lock().wrong_dimension = on;
    }

    /// When on, `data` lists the embeddings in reverse input order (each still with its right `index`), as servers
    /// may; clients must order by `index`.
    pub fn reverse_order(&self, on: bool) {
        self.shared.lock().reverse_order = on;
    }

    /// Requires `Authorization: Bearer <key>` (answering 401 with a plain-text body otherwise), or no key with `None`.
    pub fn require_key(&self, key: Option<&str>) {
        self.shared.lock().key = key.map(str::to_owned);
    }
}

impl Drop for StubEmbedServer {
    fn drop(&mut self) {
        let handlers = {
            let mut state = self.shared.lock();
            state.stopping = true;
            std::mem::take(&mut state.handlers)
        };
        self.shared.stopped.notify_all();
        // Wake the accept loop, which checks `stopping` after every connection.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Handlers accepted before the accept loop saw `stopping` were pushed after the `take` above.
        let late = std::mem::take(&mut self.shared.lock().handlers);
        for (handle, stream) in handlers.into_iter().chain(late) {
            if let Some(stream) = stream {
                let _ = stream.shutdown(Shutdown::Both);
            }
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.lock().stopping {
            return;
        }
        let Ok(stream) = stream else { continue };
        let control = stream.try_clone().ok();
        let handler = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new().name("stub-embedder-conn".into()).spawn(move || {
                let _ = handle(stream, &shared);
            })
        };
        let Ok(handler) = handler else { continue };
        let mut state = shared.lock();
        state.handlers.retain(|(h, _)| !h.is_finished());
        state.handlers.push((handler, control));
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// An answer.
struct Response {
    status: u16,
    content_type: &'static str,
    extra_headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Self {
        Self { status, content_type: "application/json", extra_headers: Vec::new(), body: body.to_string().into_bytes() }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({ "error": { "message": message, "type": "invalid_request_error" } }))
    }
}

fn handle(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let request = match read_request(&mut stream) {
        Ok(Some(request)) => request,
        Ok(None) => return Ok(()),
        Err(ParseError::Io(e)) => return Err(e),
        Err(ParseError::Bad(status, message)) => return write_response(&mut stream, &Response::error(status, message)),
    };
    let (delay, response) = answer(shared, request);
    if !delay.is_zero() && !wait_unless_stopped(shared, delay) {
        return Ok(());
    }
    write_response(&mut stream, &response)?;
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// Sleeps `d` unless the server stops first; `false` when it stopped.
fn wait_unless_stopped(shared: &Shared, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    let mut state = shared.lock();
    loop {
        if state.stopping {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        state = shared.stopped.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
    }
}

/// Decides the answer to `request` (and updates the counters), with the delay to wait before sending it.
fn answer(shared: &Shared, request: Request) -> (Duration, Response) {
    let mut state = shared.lock();
    state.requests += 1;
    state.last = Some(RecordedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.clone(),
        body: String::from_utf8_lossy(&request.body).into_owned(),
    });
    let delay = state.delay;
    let path = request.path.split('?').next().unwrap_or_default();
    if path != "/v1/embeddings" {
        return (delay, Response::error(404, &format!("no route for {} {}", request.method, request.path)));
    }
    if request.method != "POST" {
        return (delay, Response::error(405, "use POST"));
    }
    if let Some(key) = &state.key {
        let expected = format!("Bearer {key}");
        let given = request.headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.as_str());
        if given != Some(expected.as_str()) {
            let body = b"Unauthorized: missing or invalid API key".to_vec();
            return (delay, Response { status: 401, content_type: "text/plain; charset=utf-8", extra_headers: Vec::new(), body });
        }
    }
    if let Some(fault) = state.faults.pop_front() {
        let mut response = Response::error(fault.status, &format!("injected failure ({})", fault.status));
        if let Some(secs) = fault.retry_after {
            response.extra_headers.push(("Retry-After", secs.to_string()));
        }
        return (delay, response);
    }
    let (model, inputs) = match parse_embeddings_request(&request.body, shared.dimension) {
        Ok(parsed) => parsed,
        Err(message) => return (delay, Response::error(400, &message)),
    };
    let dimension = if state.wrong_dimension { shared.dimension + 1 } else { shared.dimension };
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({ "object": "embedding", "index": index, "embedding": StubEmbedServer::vector(text, dimension) }))
        .collect();
    if state.reverse_order {
        data.reverse();
    }
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    state.texts_embedded += inputs.len() as u64;
    let bearer = request.headers.iter().find(|(n, _)| n == "authorization").and_then(|(_, v)| v.strip_prefix("Bearer "));
    let bearer = bearer.unwrap_or_default().to_owned();
    state.by_key.entry(bearer).or_default().push(inputs.clone());
    for text in inputs {
        *state.embedded.entry(text).or_insert(0) += 1;
    }
    let body = json!({ "object": "list", "data": data, "model": model, "usage": { "prompt_tokens": tokens, "total_tokens": tokens } });
    (delay, Response::json(200, &body))
}

/// The model and the input texts of an embeddings request, or why it is invalid.
fn parse_embeddings_request(body: &[u8], dimension: u32) -> Result<(String, Vec<String>), String> {
    let body: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let model = body.get("model").and_then(Value::as_str).ok_or("`model` (a string) is required")?.to_owned();
    let inputs = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>().ok_or("`input` must hold strings")?
        }
        _ => return Err("`input` (a string or an array of strings) is required".into()),
    };
    if inputs.is_empty() {
        return Err("`input` must not be empty".into());
    }
    match body.get("dimensions") {
        None | Some(Value::Null) => {}
        Some(d) if d.as_u64() == Some(u64::from(dimension)) => {}
        Some(d) => return Err(format!("this model does not support `dimensions` {d} (it has {dimension})")),
    }
    Ok((model, inputs))
}

enum ParseError {
    Io(io::Error),
    Bad(u16, &'static str),
}

impl From<io::Error> for ParseError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads one request; `None` when the peer closed without sending one (e.g. the wake-up connection of `Drop`).
fn read_request(stream: &mut TcpStream) -> Result<Option<Request>, ParseError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ParseError::Bad(431, "request head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(ParseError::Bad(400, "incomplete request head")) };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ParseError::Bad(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path), Some(version)) = (request_line.next(), request_line.next(), request_line.next()) else {
        return Err(ParseError::Bad(400, "malformed request line"));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    if !version.starts_with("HTTP/1.") {
        return Err(ParseError::Bad(505, "only HTTP/1.x is supported"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ParseError::Bad(400, "malformed header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if header("transfer-encoding").is_some() {
        return Err(ParseError::Bad(411, "send a Content-Length; chunked bodies are not supported"));
    }
    let length = match header("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| ParseError::Bad(400, "bad Content-Length"))?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(ParseError::Bad(413, "body too large"));
    }
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(ParseError::Bad(400, "incomplete body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some(Request { method, path, headers, body }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn write_response(stream: &mut TcpStream, response: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal blocking HTTP client: one request, the whole answer as (status, headers+body text).
    fn post(server: &StubEmbedServer, path: &str, headers: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
        (status, answer)
    }

    fn body_of(answer: &str) -> Value {
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    }

    #[test]
    fn embeds_deterministically_and_counts() {
        let server = StubEmbedServer::start(4);
        assert!(server.url().starts_with("http://127.0.0.1:") && server.url().ends_with("/v1"));
        let (status, answer) = post(&server, "/v1/embeddings", "", r#"{"model":"m","input":["a","b","a"]}"#);
        assert_eq!(status, 200, "{answer}");
        let body = body_of(&answer);
        let first: Vec<f32> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(first, StubEmbedServer::vector("a", 4));
        assert_eq!(body["data"][2]["index"], 2);
        let norm: f32 = first.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(StubEmbedServer::vector("a", 20).len(), 20);
        assert_ne!(StubEmbedServer::vector("a", 4), StubEmbedServer::vector("b", 4));
        assert_eq!((server.requests(), server.texts_embedded(), server.distinct_texts()), (1, 3, 2));
        assert_eq!((server.times_embedded("a"), server.times_embedded("c")), (2, 0));
        assert_eq!(server.last_body().unwrap()["model"], "m");
        assert_eq!(server.last_header("HOST").as_deref(), Some("x"));
        assert_eq!(server.last_texts_of(""), ["a", "b", "a"], "requests without a key are grouped under \"\"");
        post(&server, "/v1/embeddings", "Authorization: Bearer one\r\n", r#"{"model":"m","input":["x"]}"#);
        post(&server, "/v1/embeddings", "Authorization: Bearer one\r\n", r#"{"model":"m","input":["y","z"]}"#);
        assert_eq!(server.last_texts_of("one"), ["y", "z"], "the last request of key one");
        assert!(server.last_texts_of("two").is_empty());
    }

    #[test]
    fn injects_faults_in_order_then_recovers() {
        let server = StubEmbedServer::start(2);
        server.fail_next(1, 429, Some(3));
        server.fail_next(1, 503, None);
        let (status, answer) = post(&server, "/v1/embeddings", "", r#"{"model":"m","input":"x"}"#);
        assert_eq!(status, 429);
        assert!(answer.contains("Retry-After: 3\r\n"), "{answer}");
        assert_eq!(post(&server, "/v1/embeddings", "", r#"{"model":"m","input":"x"}"#).0, 503);
        assert_eq!(post(&server, "/v1/embeddings", "", r#"{"model":"m","input":"x"}"#).0, 200);
        assert_eq!((server.requests(), server.texts_embedded()), (3, 1));
    }

    #[test]
    fn requires_the_key_and_rejects_bad_requests() {
        let server = StubEmbedServer::start(2);
        server.require_key(Some("k1"));
        let (status, answer) = post(&server, "/v1/embeddings", "", r#"{"model":"m","input":"x"}"#);
        assert_eq!(status, 401);
        assert!(answer.contains("text/plain") && !answer.contains("k1"), "{answer}");
        assert_eq!(post(&server, "/v1/embeddings", "Authorization: Bearer k1\r\n", r#"{"model":"m","input":"x"}"#).0, 200);
        server.require_key(None);
        assert_eq!(post(&server, "/v1/embeddings", "", r#"{"input":"x"}"#).0, 400);
        assert_eq!(post(&server, "/v1/embeddings", "", r#"{"model":"m","input":[1]}"#).0, 400);
        assert_eq!(post(&server, "/v1/embeddings", "", r#"{"model":"m","input":"x","dimensions":3}"#).0, 400);
        assert_eq!(post(&server, "/v1/embeddings", "", r#"{"model":"m","input":"x","dimensions":2}"#).0, 200);
        assert_eq!(post(&server, "/v2/other", "", "{}").0, 404);
        server.wrong_dimension(true);
        let (_, answer) = post(&server, "/v1/embeddings", "", r#"{"model":"m","input":"x"}"#);
        assert_eq!(body_of(&answer)["data"][0]["embedding"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn reverse_order_keeps_indexes() {
        let server = StubEmbedServer::start(2);
        server.reverse_order(true);
        let (_, answer) = post(&server, "/v1/embeddings", "", r#"{"model":"m","input":["a","b"]}"#);
        let body = body_of(&answer);
        assert_eq!((body["data"][0]["index"].as_u64(), body["data"][1]["index"].as_u64()), (Some(1), Some(0)));
    }

    #[test]
    fn drop_ends_delayed_answers_at_once() {
        let server = StubEmbedServer::start(2);
        server.delay(Duration::from_secs(60));
        let addr = server.addr();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let body = r#"{"model":"m","input":"x"}"#;
            write!(s, "POST /v1/embeddings HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        });
        while server.requests() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let start = Instant::now();
        drop(server);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(client.join().unwrap(), "", "no answer after stopping");
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "the port is closed");
    }
}
