//! Integration tests of the object_store backup adapter: the shared `BackupStore` conformance suite against
//! `memory://`, `file://` (a temporary folder) and `s3://` (a real S3-protocol server, s3s-fs, on loopback inside this
//! process; once with conditional writes, once with them disabled), plus URL parsing, the on-disk layout and what
//! only one backend promises.

mod urls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{BackupCapabilities, BackupError, BackupStore, LockKind};
use colstore_domain::{ContentHash, Timestamp};
use colstore_objstore::{ObjectBackupStore, S3Options, layout};
use colstore_testkit::backup::{self as suite, BackupFixture, Corruption};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn wall_clock() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis();
    Timestamp::from_millis(i64::try_from(ms).expect("fits"))
}

/// Damages bytes at rest as `how` says (`SwapWith` and `Delete` are handled by the callers).
fn damage(stored: &[u8], how: Corruption) -> Vec<u8> {
    let mut v = stored.to_vec();
    match how {
        Corruption::FlipByte => {
            let mid = v.len() / 2;
            v[mid] ^= 0x04;
        }
        Corruption::Truncate => v.truncate(v.len() / 2),
        Corruption::Delete | Corruption::SwapWith(_) => unreachable!("not a byte edit"),
    }
    v
}

/// Damages an object through the raw object store (any backend).
async fn corrupt_raw(store: &dyn ObjectStore, id: &ContentHash, how: Corruption) {
    let key = Path::from(layout::object_key(id));
    let replacement = match how {
        Corruption::Delete => return store.delete(&key).await.expect("raw delete"),
        Corruption::SwapWith(other) => {
            store.get(&Path::from(layout::object_key(&other))).await.expect("raw get").bytes().await.expect("raw bytes").to_vec()
        }
        _ => damage(&store.get(&key).await.expect("raw get").bytes().await.expect("raw bytes"), how),
    };
    store.put(&key, PutPayload::from(replacement)).await.expect("raw put");
}

// ---------------------------------------------------------------------------------------------------------------------
// memory://
// ---------------------------------------------------------------------------------------------------------------------

struct Memory(Arc<ObjectBackupStore>);

#[async_trait]
impl BackupFixture for Memory {
    fn store(&self) -> Arc<dyn BackupStore> {
        self.0.clone()
    }

    fn now(&self) -> Timestamp {
        wall_clock()
    }

    fn time_tolerance(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn corrupt_object(&self, id: &ContentHash, how: Corruption) -> Option<()> {
        corrupt_raw(&*self.0.object_store(), id, how).await;
        Some(())
    }

    async fn put_raw(&self, key: &str, data: Bytes) -> Option<()> {
        self.0.object_store().put(&Path::from(key), PutPayload::from(data)).await.expect("raw put");
        Some(())
    }

    fn name(&self) -> &str {
        "memory://"
    }
}

async fn memory_fixture() -> Option<Box<dyn BackupFixture>> {
    Some(Box::new(Memory(Arc::new(ObjectBackupStore::open("memory://").expect("open memory://")))))
}

mod memory {
    colstore_testkit::backup_conformance!(super::memory_fixture);
}

// ---------------------------------------------------------------------------------------------------------------------
// file://
// ---------------------------------------------------------------------------------------------------------------------

struct File {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Arc<ObjectBackupStore>,
}

#[async_trait]
impl BackupFixture for File {
    fn store(&self) -> Arc<dyn BackupStore> {
        self.store.clone()
    }

    fn now(&self) -> Timestamp {
        wall_clock()
    }

    fn time_tolerance(&self) -> Duration {
        Duration::from_secs(2)
    }

    /// Edits the file on disk, as bit rot or a stray tool would.
    async fn corrupt_object(&self, id: &ContentHash, how: Corruption) -> Option<()> {
        let path = self.root.join(layout::object_key(id));
        match how {
            Corruption::Delete => std::fs::remove_file(&path).expect("remove"),
            Corruption::SwapWith(other) => {
                std::fs::write(&path, std::fs::read(self.root.join(layout::object_key(&other))).expect("read")).expect("write");
            }
            _ => std::fs::write(&path, damage(&std::fs::read(&path).expect("read"), how)).expect("write"),
        }
        Some(())
    }

    async fn put_raw(&self, key: &str, data: Bytes) -> Option<()> {
        let path = self.root.join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write");
        Some(())
    }

    fn name(&self) -> &str {
        "file://"
    }
}

fn file_url(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

async fn file_fixture() -> Option<Box<dyn BackupFixture>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("backups");
    let store = Arc::new(ObjectBackupStore::open(&file_url(&root)).expect("open file://"));
    Some(Box::new(File { _dir: dir, root, store }))
}

mod file {
    colstore_testkit::backup_conformance!(super::file_fixture);
}

// ---------------------------------------------------------------------------------------------------------------------
// s3:// (s3s-fs on loopback)
// ---------------------------------------------------------------------------------------------------------------------

struct S3 {
    _server: colstore_testkit::s3_server::S3Server,
    store: Arc<ObjectBackupStore>,
    name: &'static str,
}

#[async_trait]
impl BackupFixture for S3 {
    fn store(&self) -> Arc<dyn BackupStore> {
        self.store.clone()
    }

    fn now(&self) -> Timestamp {
        wall_clock()
    }

    /// S3 reports `Last-Modified` in whole seconds.
    fn time_tolerance(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// Overwrites the object through the S3 API.
    async fn corrupt_object(&self, id: &ContentHash, how: Corruption) -> Option<()> {
        corrupt_raw(&*self.store.object_store(), id, how).await;
        Some(())
    }

    async fn put_raw(&self, key: &str, data: Bytes) -> Option<()> {
        self.store.object_store().put(&Path::from(key), PutPayload::from(data)).await.expect("raw put");
        Some(())
    }

    fn name(&self) -> &str {
        self.name
    }
}

const BUCKET: &str = "colstore-test";

fn s3_options(server: &colstore_testkit::s3_server::S3Server) -> S3Options {
    S3Options {
        endpoint: Some(server.endpoint()),
        access_key_id: Some(colstore_testkit::s3_server::ACCESS_KEY.into()),
        secret_access_key: Some(colstore_testkit::s3_server::SECRET_KEY.into()),
        region: Some("us-east-1".into()),
        allow_http: true,
        disable_conditional_put: false,
    }
}

async fn s3_fixture_with(url: &str, disable_conditional_put: bool, name: &'static str) -> Option<Box<dyn BackupFixture>> {
    let server = colstore_testkit::s3_server::start_or_skip(BUCKET).await?;
    let options = S3Options { disable_conditional_put, ..s3_options(&server) };
    let store = Arc::new(ObjectBackupStore::open_s3_with(url, options).expect("open s3://"));
    Some(Box::new(S3 { _server: server, store, name }))
}

async fn s3_fixture() -> Option<Box<dyn BackupFixture>> {
    s3_fixture_with(&format!("s3://{BUCKET}/repos/one"), false, "s3:// (conditional writes)").await
}

async fn s3_head_then_put_fixture() -> Option<Box<dyn BackupFixture>> {
    s3_fixture_with(&format!("s3://{BUCKET}"), true, "s3:// (conditional writes disabled)").await
}

mod s3 {
    colstore_testkit::backup_conformance!(super::s3_fixture);
}

mod s3_head_then_put {
    colstore_testkit::backup_conformance!(super::s3_head_then_put_fixture);
}

// ---------------------------------------------------------------------------------------------------------------------
// What only some backends promise
// ---------------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn capabilities_per_backend() {
    let both = BackupCapabilities { atomic_create: true, durable_writes: true };
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(ObjectBackupStore::open(&file_url(dir.path())).unwrap().capabilities(), both);
    let memory = ObjectBackupStore::open("memory://").unwrap();
    assert_eq!(memory.capabilities(), BackupCapabilities { atomic_create: true, durable_writes: false });
    assert_eq!(memory.backend(), "memory");
    let opts = S3Options { endpoint: Some("http://127.0.0.1:1".into()), allow_http: true, ..S3Options::default() };
    let s3 = ObjectBackupStore::open_s3_with("s3://bucket/p", opts.clone()).unwrap();
    assert_eq!((s3.backend(), s3.capabilities().atomic_create, s3.capabilities().durable_writes), ("s3", true, false));
    let s3 = ObjectBackupStore::open_s3_with("s3://bucket/p", S3Options { disable_conditional_put: true, ..opts }).unwrap();
    assert!(!s3.capabilities().atomic_create, "without conditional writes, creates are head-then-put");
}

#[test]
fn s3_options_never_print_the_secret() {
    let opts = S3Options { secret_access_key: Some("hunter2".into()), access_key_id: Some("AKID".into()), ..S3Options::default() };
    let shown = format!("{opts:?}");
    assert!(!shown.contains("hunter2") && shown.contains("<redacted>") && shown.contains("AKID"), "{shown}");
}

#[tokio::test]
async fn memory_repositories_are_independent() {
    let a = ObjectBackupStore::open("memory://").unwrap();
    let b = ObjectBackupStore::open("memory://").unwrap();
    let id = suite::put_new(&a, &Bytes::from_static(b"only in a")).await;
    assert!(!b.has_object(&id).await.unwrap());
}

/// The folder is created (with its parents); objects are zstd files in a fan-out folder, manifests and locks are
/// plain files; a second handle on the folder sees everything.
#[tokio::test]
async fn file_layout_on_disk_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deep").join("er").join("backups");
    let store = ObjectBackupStore::open(&file_url(&root)).unwrap();
    assert!(root.is_dir(), "the folder is created");
    let data = suite::text(1);
    let id = suite::put_new(&store, &data).await;
    let manifest = Bytes::from_static(b"{\"format\":1}");
    store.put_manifest(&suite::backup_id(1), manifest.clone()).await.unwrap();
    let lock = suite::lock("host-1", LockKind::Backup, wall_clock());
    store.put_lock(&lock).await.unwrap();

    let hex = id.to_hex();
    let object_file = root.join("objects").join(&hex[..2]).join(&hex);
    assert_eq!(store.local_path(&layout::object_key(&id)), Some(std::fs::canonicalize(&object_file).unwrap()));
    let at_rest = std::fs::read(&object_file).unwrap();
    assert_eq!(&at_rest[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    assert!(at_rest.len() < data.len(), "compressed: {} < {}", at_rest.len(), data.len());
    assert_eq!(zstd::decode_all(&at_rest[..]).unwrap(), data);
    assert_eq!(std::fs::read(root.join("manifests").join(format!("{}.json", suite::backup_id(1)))).unwrap(), manifest);
    let lock_json: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("locks/host-1.json")).unwrap()).unwrap();
    assert_eq!(lock_json["id"], "host-1");
    assert_eq!(lock_json["kind"], "backup");

    let again = ObjectBackupStore::open(&file_url(&root)).unwrap();
    assert_eq!(suite::get(&again, &id).await, data);
    assert_eq!(again.list_manifests().await.unwrap().len(), 1);
    assert_eq!(again.list_locks().await.unwrap(), [lock]);
    let listed = suite::list(&again).await;
    assert_eq!(listed[0].size, at_rest.len() as u64, "the size listed is the size at rest");
}

/// A crash can leave object_store's staging files (`<name>#<n>`) behind; they are not objects.
#[tokio::test]
async fn file_staging_leftovers_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBackupStore::open(&file_url(dir.path())).unwrap();
    let id = suite::put_new(&store, &suite::text(1)).await;
    let path = dir.path().join(layout::object_key(&id));
    std::fs::write(format!("{}#1", path.display()), b"half written").unwrap();
    std::fs::write(dir.path().join("manifests.json#2"), b"x").unwrap();
    assert_eq!(suite::listed_ids(&store).await, [id].into());
    assert_eq!(suite::get(&store, &id).await, suite::text(1));
}

/// An emptied object file (say, a crash in another tool) is corrupt, not empty content.
#[tokio::test]
async fn file_empty_object_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBackupStore::open(&file_url(dir.path())).unwrap();
    let id = suite::put_new(&store, &suite::text(2)).await;
    std::fs::write(dir.path().join(layout::object_key(&id)), b"").unwrap();
    match store.get_object(&id).await {
        Err(BackupError::Corrupt { id: got, detail }) => {
            assert_eq!(got, id);
            assert_eq!(detail, "decompression failed: incomplete frame");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_object_names_its_key() {
    let store = ObjectBackupStore::open("memory://").unwrap();
    let id = ContentHash::of(b"missing");
    let err = store.get_object(&id).await.unwrap_err();
    assert_eq!(err.to_string(), format!("objects/{}/{} not found in the backup repository", &id.to_hex()[..2], id.to_hex()));
    let err = store.get_manifest(&suite::backup_id(3)).await.unwrap_err();
    assert_eq!(err.to_string(), format!("manifests/{}.json not found in the backup repository", suite::backup_id(3)));
}

#[tokio::test]
async fn invalid_lock_id_message() {
    let store = ObjectBackupStore::open("memory://").unwrap();
    let err = store.delete_lock("../x").await.unwrap_err();
    assert_eq!(err.to_string(), "memory error: invalid lock id `../x`: use 1-64 characters of letters, digits, '-' and '_'");
}

/// The s3 suite really talks to the loopback server: objects land in the bucket folder, under the prefix.
#[tokio::test]
async fn s3_objects_land_in_the_bucket_under_the_prefix() {
    let Some(server) = colstore_testkit::s3_server::start_or_skip(BUCKET).await else { return };
    let store = ObjectBackupStore::open_s3_with(&format!("s3://{BUCKET}/team/repo"), s3_options(&server)).unwrap();
    let id = suite::put_new(&store, &suite::text(1)).await;
    store.put_manifest(&suite::backup_id(1), Bytes::from_static(b"{}")).await.unwrap();
    let bucket = server.root().join(BUCKET);
    let hex = id.to_hex();
    let on_server = bucket.join("team/repo/objects").join(&hex[..2]).join(&hex);
    assert!(on_server.is_file(), "{} exists", on_server.display());
    assert_eq!(zstd::decode_all(&std::fs::read(&on_server).unwrap()[..]).unwrap(), suite::text(1));
    assert!(bucket.join("team/repo/manifests").join(format!("{}.json", suite::backup_id(1))).is_file());
    let other = ObjectBackupStore::open_s3_with(&format!("s3://{BUCKET}/team/other"), s3_options(&server)).unwrap();
    assert!(!other.has_object(&id).await.unwrap(), "prefixes are separate repositories");
    assert_eq!(suite::list(&other).await, []);
}

/// A create-only write that the server refuses because the object exists surfaces as `AlreadyExists`, proving
/// `If-None-Match: *` is sent and honoured (not only the adapter's `HEAD`).
#[tokio::test]
async fn s3_conditional_put_is_enforced_by_the_server() {
    let Some(server) = colstore_testkit::s3_server::start_or_skip(BUCKET).await else { return };
    let store = ObjectBackupStore::open_s3_with(&format!("s3://{BUCKET}/r"), s3_options(&server)).unwrap();
    let raw = store.object_store();
    let key = Path::from("manifests/x.json");
    raw.put_opts(&key, PutPayload::from_static(b"1"), object_store::PutMode::Create.into()).await.expect("first create");
    let second = raw.put_opts(&key, PutPayload::from_static(b"2"), object_store::PutMode::Create.into()).await;
    assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");
}

#[tokio::test]
async fn s3_wrong_credentials_are_a_backend_error() {
    let Some(server) = colstore_testkit::s3_server::start_or_skip(BUCKET).await else { return };
    let options = S3Options { secret_access_key: Some("wrong".into()), ..s3_options(&server) };
    let store = ObjectBackupStore::open_s3_with(&format!("s3://{BUCKET}"), options).unwrap();
    match store.put_object(&ContentHash::of(b"x"), Bytes::from_static(b"x")).await {
        Err(BackupError::Backend { backend: "s3", source }) => assert!(!source.to_string().is_empty()),
        other => panic!("expected a backend error, got {other:?}"),
    }
}
