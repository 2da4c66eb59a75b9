//! A fake Qdrant 1.18 REST server for tests (feature `qdrant-fake`), hand-written on hyper, with the real server's
//! quirks (ADAPTERS.md and the recorded exchanges in `shared/fixtures/qdrant-1.18.3/`, which its replay test checks):
//! the `{"result","status","time"}` envelope and `{"status":{"error"}}` errors, plain-text 401, u64/UUID ids, `wait`
//! defaulting to false, 409 on re-creating a collection, 200 with `false` on dropping a missing one, scroll paging,
//! the `with_payload` defaults, Qdrant's filter semantics, Euclid scores as distances, cosine normalisation on write,
//! snapshots, and the request body limit (the connection is closed, as the real server does).
//!
//! [`QdrantFake::spawn`] runs the server on its own thread with its own tokio runtime, so sync tests, async tests of
//! any flavour and other processes can use it; it listens on `127.0.0.1:<free port>` and stops when dropped. Faults
//! are injected at runtime ([`QdrantFake::push_faults`]); every request is logged ([`QdrantFake::requests`]).
//!
//! Not reproduced: gRPC, named-vector point operations, sparse and multi vectors, quantization, payload index
//! semantics beyond recording them, `order_by`, grouping, recommendations, shards and clusters, JWT claims.

mod api;
mod filter;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use api::State;

/// Qdrant's default request body limit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Settings of a [`QdrantFake`].
#[derive(Debug, Clone)]
pub struct QdrantFakeOptions {
    /// When set, every API request must carry it as `api-key` or `Authorization: Bearer` (else 401, plain text).
    pub api_key: Option<String>,
    /// Request bodies over this many bytes get the connection closed, unanswered.
    pub max_body_bytes: usize,
    /// Keep every request for [`QdrantFake::requests`] (the default). A fake run as a process of its own
    /// (`fake-engine`) keeps none: nobody reads the log, and a benchmark's bodies would fill its memory.
    pub log_requests: bool,
}

impl Default for QdrantFakeOptions {
    fn default() -> Self {
        Self { api_key: None, max_body_bytes: DEFAULT_MAX_BODY_BYTES, log_requests: true }
    }
}

/// One injected fault, consumed by the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a Qdrant error body without doing anything; `retry_after` becomes the
    /// `Retry-After` header.
    Status {
        /// The HTTP status, e.g. 429 or 503.
        status: u16,
        /// The `Retry-After` header value, e.g. `"7"`.
        retry_after: Option<String>,
    },
    /// Wait this long (real time), then handle the request normally.
    Delay(Duration),
    /// Close the connection without answering; the request is not handled.
    Drop,
    /// Handle the request (its effects stay!), send the headers and part of the body, then cut the connection.
    DropMidResponse,
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The path with its query, e.g. `/collections/c/points?wait=true`.
    pub path: String,
    /// The body (empty when there was none; only its first bytes when over the body limit).
    pub body: Vec<u8>,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
}

impl LoggedRequest {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    faults: Mutex<VecDeque<Fault>>,
    log: Mutex<Vec<LoggedRequest>>,
    options: QdrantFakeOptions,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake; stopped when dropped.
pub struct QdrantFake {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for QdrantFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantFake").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl QdrantFake {
    /// Starts a fake on `127.0.0.1:<free port>` on its own thread.
    ///
    /// # Panics
    /// When no loopback port can be bound or the thread or runtime cannot be started (the machine is broken).
    pub fn spawn(options: QdrantFakeOptions) -> QdrantFake {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("qdrant fake: bind 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("qdrant fake: local address: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("qdrant fake: non-blocking socket: {e}"));
        let shared =
            Arc::new(Shared { state: Mutex::new(State::new()), faults: Mutex::new(VecDeque::new()), log: Mutex::new(Vec::new()), options });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("qdrant-fake-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("qdrant fake: tokio runtime: {e}"));
                runtime.block_on(serve(listener, for_thread, stopped));
            })
            .unwrap_or_else(|e| panic!("qdrant fake: thread: {e}"));
        QdrantFake { addr, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues faults; each applies to one following request, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.shared.faults).extend(faults);
    }

    /// Drops the faults not consumed yet.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Faults not consumed yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the logged requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// How many points `collection` holds, `None` when it does not exist.
    pub fn point_count(&self, collection: &str) -> Option<usize> {
        lock(&self.shared.state).point_count(collection)
    }

    /// The names of the collections, sorted.
    pub fn collections(&self) -> Vec<String> {
        lock(&self.shared.state).collection_names()
    }

    /// Answers one request straight from the state, as the server would (no fault, no log, no key check): how a
    /// test puts a collection colstore did not create into the fake (`PUT /collections/articles`, then
    /// `PUT /collections/articles/points?wait=true`). Returns the status and the JSON body (`Null` when not JSON).
    pub fn call(&self, method: &str, path_and_query: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let (route, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let reply = lock(&self.shared.state).route(method, route, query, &hyper::HeaderMap::new(), &bytes, std::time::Instant::now());
        (reply.status, serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for QdrantFake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    loop {
        let socket = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&shared), req));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service).await;
        });
    }
}

/// Why a connection was closed without an answer.
#[derive(Debug)]
pub(crate) struct Closed(&'static str);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Closed {}

/// A response body: whole, or cut after its first part (which is flushed first: the cut comes a moment later).
pub(crate) struct FakeBody {
    data: Option<Bytes>,
    cut: bool,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = Closed;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Closed>>> {
        match self.data.take() {
            Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
            None if self.cut => {
                if let Some(pause) = self.pause.as_mut()
                    && pause.as_mut().poll(cx).is_pending()
                {
                    return Poll::Pending;
                }
                self.cut = false;
                Poll::Ready(Some(Err(Closed("connection cut mid-response (injected fault)"))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && !self.cut
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// An answer of the fake.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

async fn read_body(mut body: Incoming, limit: usize, seen: &mut Vec<u8>) -> Result<(), Closed> {
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| Closed("request body broken"))?;
        if let Ok(data) = frame.into_data() {
            if seen.len() + data.len() > limit {
                let room = limit.saturating_sub(seen.len()).min(4096);
                seen.extend_from_slice(&data[..room.min(data.len())]);
                return Err(Closed("request body over the limit: connection closed, as Qdrant does"));
            }
            seen.extend_from_slice(&data);
        }
    }
    Ok(())
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<FakeBody>, Closed> {
    let fault = lock(&shared.faults).pop_front();
    let (parts, body) = req.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let declared = parts.headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let mut bytes = Vec::new();
    let over = declared.is_some_and(|n| n > shared.options.max_body_bytes);
    let read =
        if over { Err(Closed("request body over the limit")) } else { read_body(body, shared.options.max_body_bytes, &mut bytes).await };
    if shared.options.log_requests {
        lock(&shared.log).push(LoggedRequest { method: method.clone(), path: path.clone(), body: bytes.clone(), fault: fault.clone() });
    }
    read?;
    let reply = match &fault {
        Some(Fault::Drop) => return Err(Closed("connection dropped (injected fault)")),
        Some(Fault::Status { status, retry_after }) => {
            let mut r = api::error(*status, &format!("Injected fault: status {status}"));
            if let Some(ra) = retry_after {
                r.headers.push(("retry-after", ra.clone()));
            }
            r
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(*d).await;
            answer(&shared, &method, &path, &parts.headers, &bytes)
        }
        Some(Fault::DropMidResponse) | None => answer(&shared, &method, &path, &parts.headers, &bytes),
    };
    let cut = fault == Some(Fault::DropMidResponse);
    let full_len = reply.body.len();
    let data = if cut { Bytes::copy_from_slice(&reply.body[..full_len / 2]) } else { Bytes::from(reply.body) };
    let mut response = Response::builder().status(reply.status);
    if let Some(ct) = reply.content_type {
        response = response.header(hyper::header::CONTENT_TYPE, ct);
    }
    response = response.header(hyper::header::CONTENT_LENGTH, full_len.to_string());
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    let pause = cut.then(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
    response.body(FakeBody { data: Some(data), cut, pause }).map_err(|_| Closed("cannot build the response"))
}

fn answer(shared: &Shared, method: &str, path: &str, headers: &hyper::HeaderMap, body: &[u8]) -> Reply {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if let Some(key) = &shared.options.api_key
        && !matches!(route, "/healthz" | "/readyz" | "/livez")
    {
        let given = headers.get("api-key").and_then(|v| v.to_str().ok()).map(str::to_owned).or_else(|| {
            headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned)
        });
        match given {
            None => return api::plain(401, "Must provide an API key or an Authorization bearer token"),
            Some(g) if &g != key => return api::plain(401, "Invalid API key or JWT"),
            Some(_) => {}
        }
    }
    let started = std::time::Instant::now();
    let mut state = lock(&shared.state);
    state.route(method, route, query, headers, body, started)
}
