//! A faithful Weaviate fake (feature `weaviate-fake`): REST v1 and the GraphQL shapes the adapter sends, served by
//! hyper on `127.0.0.1:<free port>` from its own thread and tokio runtime, so it outlives no test and blocks none.
//!
//! It copies the quirks of ADAPTERS.md that an adapter must cope with: the three error shapes (`{"error":[{"message"}]}`,
//! 422 `{"code","message"}`, GraphQL errors with status 200), not found as 404 with an empty body, bearer auth (401),
//! class names capitalised and validated, a class equal ignoring case refused (422), property names with the first
//! letter lowercased and `id` reserved, ids UUID only (422), one result per object in a batch (a dimension mismatch
//! fails that object only), batch delete requiring `where` and deleting at most `delete_cap` objects per call, the
//! listing cursor `after` (exclusive, UUID order; without it the newest come first), deleting a missing class
//! answered 200, and backups (filesystem only) that go STARTED → TRANSFERRING → SUCCESS over successive polls and
//! restores that refuse existing classes. It has no autoschema and no vectorizer: objects need their class's
//! properties and a vector. Queries it does not understand are errors, never guesses.
//!
//! Faults are injected through the handle: statuses (with `Retry-After`), slow answers and dropped connections for
//! the next requests, and per-object failures for given ids. Every request is logged (method, path with query, body).

mod graphql;
mod store;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use serde_json::Value;
use uuid::Uuid;

use store::{Reply, Store};

/// How to start the fake.
#[derive(Debug, Clone)]
pub struct WeaviateFakeOptions {
    /// When set, every request but `/v1/.well-known/*` needs `Authorization: Bearer <key>` (else 401).
    pub api_key: Option<String>,
    /// Most objects one batch delete removes (Weaviate's `QUERY_MAXIMUM_RESULTS`, 10 000 by default).
    pub delete_cap: usize,
}

impl Default for WeaviateFakeOptions {
    fn default() -> Self {
        Self { api_key: None, delete_cap: 10_000 }
    }
}

/// A fault for one coming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (an `{"error":[{"message"}]}` body) and, when set, `Retry-After: <seconds>`.
    Status {
        /// The status code.
        status: u16,
        /// `Retry-After` in seconds.
        retry_after: Option<u32>,
    },
    /// Answer normally, but only after this long (real time).
    Slow(Duration),
    /// Close the connection without answering.
    Drop,
    /// Answer status 200 with a GraphQL `errors` list holding this message (what Weaviate does for a query it refuses).
    GraphqlError(String),
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with its query, e.g. `/v1/objects?class=C&limit=2`.
    pub path: String,
    /// The body (lossily decoded as UTF-8).
    pub body: String,
}

impl LoggedRequest {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

#[derive(Debug)]
struct State {
    store: Store,
    faults: VecDeque<Fault>,
    log: Vec<LoggedRequest>,
}

#[derive(Debug)]
struct Shared {
    api_key: Option<String>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake; stopped (its thread joined) when dropped.
#[derive(Debug)]
pub struct WeaviateFake {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WeaviateFake {
    /// Starts a fake on a free loopback port, on its own thread with its own runtime.
    ///
    /// # Panics
    /// When no runtime, thread or loopback port is available (a broken test environment).
    pub fn spawn(options: WeaviateFakeOptions) -> Self {
        let shared = Arc::new(Shared {
            api_key: options.api_key.clone(),
            state: Mutex::new(State { store: Store::new(options.delete_cap.max(1)), faults: VecDeque::new(), log: Vec::new() }),
        });
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port for the Weaviate fake");
        let addr = listener.local_addr().expect("the Weaviate fake's address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("weaviate-fake".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("the Weaviate fake's runtime");
                    runtime.block_on(serve(listener, shared, stopped));
                    runtime.shutdown_background();
                })
                .expect("start the Weaviate fake's thread")
        };
        Self { addr, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a fault for the next request not yet faulted (faults apply in order, one per request).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Answers the next `n` requests with `status` (and `Retry-After: retry_after` seconds when set).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u32>) {
        for _ in 0..n {
            self.push_fault(Fault::Status { status, retry_after });
        }
    }

    /// Makes the next batch write of each of `ids` fail for that object only (`result.status: FAILED`).
    pub fn fail_objects(&self, ids: impl IntoIterator<Item = Uuid>) {
        self.shared.lock().store.fail_ids.extend(ids);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// Faults not used yet.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Drops the faults not yet used.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().log.clear();
    }

    /// Objects per class.
    pub fn object_counts(&self) -> BTreeMap<String, usize> {
        self.shared.lock().store.counts()
    }

    /// The classes that exist.
    pub fn classes(&self) -> Vec<String> {
        self.shared.lock().store.classes.keys().cloned().collect()
    }

    /// Answers one request straight from the store, as the server would (no fault, no log, no key check): how a
    /// test puts a class colstore did not create into the fake (`POST /v1/schema`, then `POST /v1/batch/objects`).
    /// `path` may carry a query. Returns the status and the JSON body (`Null` when there is none).
    pub fn call(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let query = query_pairs(query);
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let reply = self.shared.lock().store.handle(method, route, &query, &bytes);
        (reply.status, reply.body.unwrap_or(Value::Null))
    }
}

impl Drop for WeaviateFake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A whole response body at once (hyper has no such type of its own; http-body-util is not a dependency).
struct Full(Option<Bytes>);

impl Body for Full {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            a = listener.accept() => a,
        };
        let Ok((socket, _)) = accepted else { continue };
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            async move { answer(&shared, req).await }
        });
        let conn = http.serve_connection(TokioIo::new(socket), service).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn read_body(mut body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut buf = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

fn respond(reply: Reply, retry_after: Option<u32>) -> Response<Full> {
    let mut builder = Response::builder().status(reply.status);
    if let Some(s) = retry_after {
        builder = builder.header("retry-after", s.to_string());
    }
    let body = match reply.body {
        Some(v) => {
            builder = builder.header("content-type", "application/json");
            Some(Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
        }
        None => None,
    };
    builder.body(Full(body)).unwrap_or_else(|_| Response::new(Full(None)))
}

/// The error hyper gets to drop a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query string's pairs, percent-decoded.
fn query_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Result<Response<Full>, Dropped> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let full_path = req.uri().path_and_query().map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let query = query_pairs(req.uri().query().unwrap_or_default());
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = read_body(req.into_body()).await.map_err(|_| Dropped)?;
    let fault = {
        let mut st = shared.lock();
        st.log.push(LoggedRequest { method: method.clone(), path: full_path, body: String::from_utf8_lossy(&body).into_owned() });
        st.faults.pop_front()
    };
    match fault {
        Some(Fault::Drop) => return Err(Dropped),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::GraphqlError(message)) => {
            let body = serde_json::json!({"errors": [{"message": message, "locations": [{"line": 1, "column": 1}], "path": []}]});
            return Ok(respond(Reply { status: 200, body: Some(body) }, None));
        }
        Some(Fault::Status { status, retry_after }) => {
            return Ok(respond(Reply::error(status, format!("injected fault: status {status}")), retry_after));
        }
        None => {}
    }
    if let Some(key) = &shared.api_key {
        let open = path.starts_with("/v1/.well-known/");
        if !open && auth.as_deref() != Some(&format!("Bearer {key}")) {
            let body =
                serde_json::json!({"code": 401, "message": "anonymous access not enabled, please provide an auth scheme such as OIDC"});
            return Ok(respond(Reply { status: 401, body: Some(body) }, None));
        }
    }
    if !path.starts_with("/v1/") {
        return Ok(respond(Reply { status: 404, body: None }, None));
    }
    let reply = shared.lock().store.handle(&method, &path, &query, &body);
    Ok(respond(reply, None))
}
