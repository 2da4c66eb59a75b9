//! A real S3-protocol server for tests (feature `s3-server`): s3s-fs (buckets are folders of a temporary directory) behind s3s, with
//! SigV4 authentication and atomic conditional writes, served by hyper on `127.0.0.1:<free port>` inside the test's own runtime.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::{Service, service_fn};
use hyper::{Method, Request};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "colstore-test-key";
/// The secret key the server accepts.
pub const SECRET_KEY: &str = "colstore-test-secret";

/// A running server; stopped when dropped.
pub struct S3Server {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The folder holding the buckets.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server with one empty bucket.
///
/// # Errors
/// What failed, when the server cannot be started.
pub async fn start(bucket: &str) -> Result<S3Server, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    std::fs::create_dir(dir.path().join(bucket)).map_err(|e| format!("bucket folder: {e}"))?;
    let fs = s3s_fs::FileSystem::new(dir.path()).map_err(|e| format!("s3s-fs: {e:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("local address: {e}"))?;
    // s3s-fs checks `If-None-Match: *` and then writes, which races; S3 itself decides conditional writes
    // atomically. Serialising PUTs makes the check-and-write atomic, so the server has S3's semantics.
    let puts = Arc::new(tokio::sync::Mutex::new(()));
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else { continue };
            let (service, puts) = (service.clone(), puts.clone());
            let serialised = service_fn(move |req: Request<Incoming>| {
                let (service, puts) = (service.clone(), puts.clone());
                async move {
                    let _one_put_at_a_time = if req.method() == Method::PUT { Some(puts.lock_owned().await) } else { None };
                    Service::call(&service, req).await
                }
            });
            let conn = http.serve_connection(TokioIo::new(socket), serialised).into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(S3Server { addr, dir, task })
}

/// Starts a server, or skips the running test ([`crate::need::skip`]) and returns `None`. With `COLSTORE_REQUIRE_S3`
/// set (CI), failing to start is a test failure instead.
pub async fn start_or_skip(bucket: &str) -> Option<S3Server> {
    match start(bucket).await {
        Ok(server) => Some(server),
        Err(e) => {
            crate::need::skip(crate::need::Need::S3, &format!("cannot start the loopback S3 server ({e})"));
            None
        }
    }
}
