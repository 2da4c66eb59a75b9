//! [`ObjectBackupStore`]: the [`BackupStore`] port over an [`ObjectStore`].

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{
    BackupCapabilities, BackupError, BackupId, BackupStore, MAX_MANIFEST_BYTES, ManifestInfo, ObjectInfo, PutObjectOutcome, RepoLock,
};
use colstore_domain::{ContentHash, Timestamp};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use crate::codec;
use crate::layout;
use crate::location::{self, Location, OpenError};
use colstore_durable as durable;

/// Inputs at least this large are hashed and (de)compressed on a blocking thread.
const BLOCKING_THRESHOLD: usize = 128 * 1024;

/// Lock objects larger than this are not locks we wrote; they are skipped rather than read.
const MAX_LOCK_SIZE: u64 = 64 * 1024;

/// Explicit S3 settings for [`ObjectBackupStore::open_s3_with`], instead of the `AWS_*` environment variables.
#[derive(Clone, Default)]
pub struct S3Options {
    /// The endpoint, e.g. `http://127.0.0.1:9000` for an S3-compatible server; `None` for AWS itself.
    /// Requests are path-style (`<endpoint>/<bucket>/<key>`).
    pub endpoint: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// The region (default `us-east-1`).
    pub region: Option<String>,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
    /// Do not send `If-None-Match: *` on create-only writes, for servers that reject conditional writes. Creates then
    /// check with a `HEAD` first, which is not atomic (`capabilities().atomic_create` becomes `false`).
    pub disable_conditional_put: bool,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("disable_conditional_put", &self.disable_conditional_put)
            .finish()
    }
}

/// A backup repository in a local folder (`file://`), an S3 bucket (`s3://`) or memory (`memory://`).
///
/// See the [crate documentation](crate) for the layout and the guarantees.
pub struct ObjectBackupStore {
    store: Arc<dyn ObjectStore>,
    backend: &'static str,
    url: String,
    /// `file://` only: the local store (to map keys to files) and its canonical root, for fsyncs.
    local: Option<(Arc<LocalFileSystem>, PathBuf)>,
    atomic_create: bool,
}

impl fmt::Debug for ObjectBackupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBackupStore")
            .field("url", &self.url)
            .field("backend", &self.backend)
            .field("atomic_create", &self.atomic_create)
            .finish_non_exhaustive()
    }
}

impl ObjectBackupStore {
    /// Opens the repository at `url`:
    ///
    /// - `file:///absolute/path`: a local folder, created if missing; every write is fsynced.
    /// - `s3://bucket/optional/prefix`: S3 or an S3-compatible server, configured by the standard environment
    ///   variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
    ///   `AWS_ENDPOINT`/`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_CONDITIONAL_PUT=disabled`, …). Nothing is sent
    ///   until the first call.
    /// - `memory://`: a fresh, empty in-memory repository (for tests).
    ///
    /// # Errors
    /// [`OpenError::Unsupported`] or [`OpenError::Invalid`] for a bad URL (the message shows the accepted forms),
    /// [`OpenError::Folder`] when a local folder cannot be created, [`OpenError::Backend`] when object_store rejects
    /// the configuration.
    pub fn open(url: &str) -> Result<Self, OpenError> {
        match location::parse(url)? {
            Location::Memory => Ok(Self::memory(url)),
            Location::File(path) => Self::local(url, &path, true),
            Location::S3 { bucket, prefix } => {
                let builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                Self::s3(url, builder, &prefix)
            }
        }
    }

    /// Opens the repository at `url` to read it: like [`ObjectBackupStore::open`], except that a missing `file://`
    /// folder is [`OpenError::NotFound`] instead of being created (reading a repository never creates it). S3 and
    /// memory repositories open as with [`ObjectBackupStore::open`].
    ///
    /// # Errors
    /// As [`ObjectBackupStore::open`], plus [`OpenError::NotFound`].
    pub fn open_existing(url: &str) -> Result<Self, OpenError> {
        match location::parse(url)? {
            Location::File(path) => Self::local(url, &path, false),
            _ => Self::open(url),
        }
    }

    /// Opens an `s3://bucket/optional/prefix` repository with explicit settings; the `AWS_*` environment variables
    /// are not read.
    ///
    /// # Errors
    /// As [`ObjectBackupStore::open`]; any URL other than `s3://…` is [`OpenError::Invalid`].
    pub fn open_s3_with(url: &str, options: S3Options) -> Result<Self, OpenError> {
        let Location::S3 { bucket, prefix } = location::parse(url)? else {
            return Err(OpenError::Invalid { url: url.to_owned(), reason: "expected an s3:// URL".to_owned() });
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(options.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(options.allow_http);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if options.disable_conditional_put {
            builder = builder.with_conditional_put(S3ConditionalPut::Disabled);
        }
        Self::s3(url, builder, &prefix)
    }

    /// Opens a local folder (absolute path), as `file://` does; for callers that hold a path rather than a URL.
    ///
    /// # Errors
    /// [`OpenError::Invalid`] for a relative path, [`OpenError::Folder`] when the folder cannot be created.
    pub fn open_dir(path: &FsPath) -> Result<Self, OpenError> {
        Self::open_dir_with(path, true)
    }

    /// Opens a local folder (absolute path) to read it: [`OpenError::NotFound`] when it does not exist, never created.
    ///
    /// # Errors
    /// [`OpenError::Invalid`] for a relative path, [`OpenError::NotFound`], [`OpenError::Folder`].
    pub fn open_dir_existing(path: &FsPath) -> Result<Self, OpenError> {
        Self::open_dir_with(path, false)
    }

    fn open_dir_with(path: &FsPath, create: bool) -> Result<Self, OpenError> {
        let url = format!("file://{}", path.display());
        if !path.is_absolute() {
            return Err(OpenError::Invalid { url, reason: "the path must be absolute, as in file:///path (three slashes)".to_owned() });
        }
        Self::local(&url, path, create)
    }

    fn memory(url: &str) -> Self {
        Self { store: Arc::new(InMemory::new()), backend: "memory", url: url.to_owned(), local: None, atomic_create: true }
    }

    fn local(url: &str, path: &FsPath, create: bool) -> Result<Self, OpenError> {
        let folder = |source| OpenError::Folder { path: path.to_owned(), source };
        if create {
            durable::create_dir_all(path).map_err(folder)?;
        } else if !path.exists() {
            return Err(OpenError::NotFound { path: path.to_owned() });
        } else if !path.is_dir() {
            return Err(folder(std::io::Error::other("not a directory")));
        }
        let root = std::fs::canonicalize(path).map_err(folder)?;
        let fs =
            LocalFileSystem::new_with_prefix(&root).map_err(|source| OpenError::Backend { url: url.to_owned(), source })?.with_fsync(true);
        let fs = Arc::new(fs);
        Ok(Self { store: fs.clone(), backend: "file", url: url.to_owned(), local: Some((fs, root)), atomic_create: true })
    }

    fn s3(url: &str, builder: AmazonS3Builder, prefix: &str) -> Result<Self, OpenError> {
        // object_store's S3 client is reqwest with rustls but no bundled crypto provider: use ring, as the rest of
        // the workspace does (ignore the error when a provider is already installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let atomic_create =
            builder.get_config_value(&AmazonS3ConfigKey::ConditionalPut).is_none_or(|v| v != S3ConditionalPut::Disabled.to_string());
        let s3 = builder.build().map_err(|source| OpenError::Backend { url: url.to_owned(), source })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            let prefix = Path::parse(prefix).map_err(|e| OpenError::Invalid { url: url.to_owned(), reason: e.to_string() })?;
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self { store, backend: "s3", url: url.to_owned(), local: None, atomic_create })
    }

    /// The URL this repository was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `"file"`, `"s3"` or `"memory"`: the name used in [`BackupError::Backend`].
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The underlying object store, rooted at the repository (keys as in [`crate::layout`]). For tools and tests
    /// that need raw access; writing through it bypasses every check of this adapter.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// `file://` only: the local file holding `key` (see [`crate::layout`]).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        let (fs, _) = self.local.as_ref()?;
        fs.path_to_filesystem(&Path::from(key)).ok()
    }

    fn backend_err(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BackupError {
        BackupError::Backend { backend: self.backend, source: source.into() }
    }

    fn map_err(&self, e: object_store::Error, key: &str) -> BackupError {
        match e {
            object_store::Error::NotFound { .. } => BackupError::NotFound(key.to_owned()),
            object_store::Error::AlreadyExists { .. } => BackupError::AlreadyExists(key.to_owned()),
            other => self.backend_err(other),
        }
    }

    /// Runs `f` on a blocking thread when `big`, inline otherwise.
    async fn cpu<T: Send + 'static>(&self, big: bool, f: impl FnOnce() -> T + Send + 'static) -> Result<T, BackupError> {
        if big { tokio::task::spawn_blocking(f).await.map_err(|e| self.backend_err(e)) } else { Ok(f()) }
    }

    /// `file://` only: makes a written file and its parent folders up to the root durable.
    async fn sync_written(&self, key: &str) -> Result<(), BackupError> {
        self.sync(key, true).await
    }

    /// `file://` only: makes a removal durable (the parent folders up to the root).
    async fn sync_removed(&self, key: &str) -> Result<(), BackupError> {
        self.sync(key, false).await
    }

    async fn sync(&self, key: &str, file_too: bool) -> Result<(), BackupError> {
        let Some((_, root)) = &self.local else { return Ok(()) };
        let Some(path) = self.local_path(key) else { return Ok(()) };
        let root = root.clone();
        tokio::task::spawn_blocking(move || durable::sync_chain(&root, &path, file_too))
            .await
            .map_err(|e| self.backend_err(e))?
            .map_err(|e| self.backend_err(e))
    }

    async fn exists(&self, key: &str) -> Result<bool, BackupError> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.map_err(e, key)),
        }
    }

    /// Writes `data` under `key` create-only: atomically when the backend enforces it, else after a `HEAD`.
    async fn create(&self, key: &str, data: Bytes) -> Result<(), BackupError> {
        let path = Path::from(key);
        let mode = if self.atomic_create {
            PutMode::Create
        } else {
            if self.exists(key).await? {
                return Err(BackupError::AlreadyExists(key.to_owned()));
            }
            PutMode::Overwrite
        };
        self.store.put_opts(&path, PutPayload::from(data), mode.into()).await.map_err(|e| self.map_err(e, key))?;
        self.sync_written(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(e, key)),
        }
    }

    async fn read(&self, key: &str) -> Result<(ObjectMeta, Bytes), BackupError> {
        let got = self.store.get(&Path::from(key)).await.map_err(|e| self.map_err(e, key))?;
        let meta = got.meta.clone();
        let bytes = got.bytes().await.map_err(|e| self.map_err(e, key))?;
        Ok((meta, bytes))
    }

    async fn list_keys(&self, folder: &str) -> Result<Vec<ObjectMeta>, BackupError> {
        self.store.list(Some(&Path::from(folder))).map_err(|e| self.map_err(e, folder)).try_collect().await
    }
}

fn written_at(meta: &ObjectMeta) -> Timestamp {
    Timestamp::from_millis(meta.last_modified.timestamp_millis())
}

fn corrupt(id: &ContentHash, detail: impl Into<String>) -> BackupError {
    BackupError::Corrupt { id: *id, detail: detail.into() }
}

fn invalid_lock_id(backend: &'static str, id: &str) -> BackupError {
    let shown: String = id.chars().take(80).collect();
    BackupError::Backend {
        backend,
        source: format!("invalid lock id `{shown}`: use 1-64 characters of letters, digits, '-' and '_'").into(),
    }
}

#[async_trait]
impl BackupStore for ObjectBackupStore {
    fn capabilities(&self) -> BackupCapabilities {
        BackupCapabilities { atomic_create: self.atomic_create, durable_writes: self.local.is_some() }
    }

    async fn put_object(&self, id: &ContentHash, data: Bytes) -> Result<PutObjectOutcome, BackupError> {
        let key = layout::object_key(id);
        let big = data.len() >= BLOCKING_THRESHOLD;
        // The id is the caller's claim; a wrong one would break content addressing for good, so check it.
        let hashed = data.clone();
        let actual = self.cpu(big, move || ContentHash::of(&hashed)).await?;
        if actual != *id {
            return Err(corrupt(id, format!("the data to store hashes to {actual}, not to its id")));
        }
        if self.exists(&key).await? {
            return Ok(PutObjectOutcome::AlreadyPresent);
        }
        let compressed = self.cpu(big, move || codec::compress(&data)).await?.map_err(|e| self.backend_err(e))?;
        match self.create(&key, Bytes::from(compressed)).await {
            Ok(()) => Ok(PutObjectOutcome::Stored),
            Err(BackupError::AlreadyExists(_)) => {
                // Another writer stored it meanwhile (same id, so the same content).
                self.sync_written(&key).await?;
                Ok(PutObjectOutcome::AlreadyPresent)
            }
            Err(e) => Err(e),
        }
    }

    async fn get_object(&self, id: &ContentHash) -> Result<Bytes, BackupError> {
        let key = layout::object_key(id);
        let path = Path::from(key.as_str());
        let got = self.store.get(&path).await.map_err(|e| self.map_err(e, &key))?;
        // zstd never grows incompressible data by more than a little: a stored object much larger than the
        // largest object is not one we wrote; refuse it before reading it into memory.
        let max_stored = codec::MAX_OBJECT_SIZE + codec::MAX_OBJECT_SIZE / 64 + 1024;
        if got.meta.size > max_stored {
            return Err(corrupt(id, format!("stored size {} exceeds the limit of {max_stored} bytes", got.meta.size)));
        }
        let stored = got.bytes().await.map_err(|e| self.map_err(e, &key))?;
        let big = stored.len() >= BLOCKING_THRESHOLD / 4;
        let want = *id;
        let data = self
            .cpu(big, move || {
                let data = codec::decompress(&stored, codec::MAX_OBJECT_SIZE)?;
                let got = ContentHash::of(&data);
                if got == want { Ok(data) } else { Err(format!("hash mismatch: the content hashes to {got}")) }
            })
            .await?
            .map_err(|detail| corrupt(id, detail))?;
        Ok(Bytes::from(data))
    }

    async fn has_object(&self, id: &ContentHash) -> Result<bool, BackupError> {
        self.exists(&layout::object_key(id)).await
    }

    async fn list_objects(&self) -> Result<BoxStream<'static, Result<ObjectInfo, BackupError>>, BackupError> {
        let backend = self.backend;
        let stream = self.store.list(Some(&Path::from(layout::OBJECTS))).filter_map(move |r| async move {
            match r {
                Ok(meta) => layout::parse_object_key(meta.location.as_ref())
                    .map(|id| Ok(ObjectInfo { id, size: meta.size, written_at: written_at(&meta) })),
                Err(e) => Some(Err(BackupError::Backend { backend, source: Box::new(e) })),
            }
        });
        Ok(stream.boxed())
    }

    async fn delete_object(&self, id: &ContentHash) -> Result<(), BackupError> {
        // Not fsynced: an object that reappears after a crash is merely unreferenced garbage for the next prune.
        self.delete(&layout::object_key(id)).await
    }

    async fn put_manifest(&self, id: &BackupId, data: Bytes) -> Result<(), BackupError> {
        self.create(&layout::manifest_key(id), data).await
    }

    async fn get_manifest(&self, id: &BackupId) -> Result<Bytes, BackupError> {
        let key = layout::manifest_key(id);
        let got = self.store.get(&Path::from(key.as_str())).await.map_err(|e| self.map_err(e, &key))?;
        // Refused before it is read into memory: colstore never writes a manifest this large.
        if got.meta.size > MAX_MANIFEST_BYTES {
            return Err(BackupError::TooLarge { what: format!("manifest {id} ({key})"), size: got.meta.size, limit: MAX_MANIFEST_BYTES });
        }
        got.bytes().await.map_err(|e| self.map_err(e, &key))
    }

    async fn list_manifests(&self) -> Result<Vec<ManifestInfo>, BackupError> {
        let mut out: Vec<ManifestInfo> = self
            .list_keys(layout::MANIFESTS)
            .await?
            .into_iter()
            .filter_map(|meta| {
                let id = layout::parse_manifest_key(meta.location.as_ref())?;
                Some(ManifestInfo { id, size: meta.size, written_at: written_at(&meta) })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn delete_manifest(&self, id: &BackupId) -> Result<(), BackupError> {
        // Durable: a manifest that came back after a crash could name objects a prune has since removed.
        let key = layout::manifest_key(id);
        self.delete(&key).await?;
        self.sync_removed(&key).await
    }

    async fn put_lock(&self, lock: &RepoLock) -> Result<(), BackupError> {
        if !layout::valid_lock_id(&lock.id) {
            return Err(invalid_lock_id(self.backend, &lock.id));
        }
        let key = layout::lock_key(&lock.id);
        let json = serde_json::to_vec(lock).map_err(|e| self.backend_err(e))?;
        self.store
            .put_opts(&Path::from(key.as_str()), PutPayload::from(json), PutMode::Overwrite.into())
            .await
            .map_err(|e| self.map_err(e, &key))?;
        self.sync_written(&key).await
    }

    async fn list_locks(&self) -> Result<Vec<RepoLock>, BackupError> {
        let mut locks = Vec::new();
        for meta in self.list_keys(layout::LOCKS).await? {
            let key = meta.location.as_ref();
            let Some(id) = layout::parse_lock_key(key) else { continue };
            if meta.size > MAX_LOCK_SIZE {
                tracing::warn!(key, size = meta.size, "skipping an oversized lock object");
                continue;
            }
            let bytes = match self.read(key).await {
                Ok((_, bytes)) => bytes,
                Err(BackupError::NotFound(_)) => continue, // released meanwhile
                Err(e) => return Err(e),
            };
            match serde_json::from_slice::<RepoLock>(&bytes) {
                Ok(lock) if lock.id == id => locks.push(lock),
                Ok(lock) => tracing::warn!(key, claimed = lock.id, "skipping a lock object whose id does not match its name"),
                Err(e) => tracing::warn!(key, error = %e, "skipping an unreadable lock object"),
            }
        }
        locks.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(locks)
    }

    async fn delete_lock(&self, id: &str) -> Result<(), BackupError> {
        if !layout::valid_lock_id(id) {
            return Err(invalid_lock_id(self.backend, id));
        }
        self.delete(&layout::lock_key(id)).await
    }
}
