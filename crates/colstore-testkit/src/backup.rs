//! The `BackupStore` conformance suite.
//!
//! Every scenario is a plain `async fn(&dyn BackupFixture)`; [`backup_conformance!`](crate::backup_conformance) turns
//! each into one `#[tokio::test]` for the backend whose fixture factory it is given. Each scenario gets a fresh, empty
//! repository.
//!
//! Some scenarios need to reach behind the port (damage a stored object, drop a foreign file into the repository).
//! The fixture offers that through optional hooks; a backend that cannot do it returns `None` and the scenario prints
//! why it was skipped instead of passing silently.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{BackupError, BackupId, BackupStore, LockKind, ObjectInfo, PutObjectOutcome, RepoLock};
use colstore_domain::{ContentHash, Timestamp};
use futures::TryStreamExt;

/// How to damage a stored object (see [`BackupFixture::corrupt_object`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Flip one bit in the middle of the bytes at rest.
    FlipByte,
    /// Cut the bytes at rest to half their length.
    Truncate,
    /// Remove the object.
    Delete,
    /// Replace the bytes at rest with those of another stored object (valid encoding, wrong content).
    SwapWith(ContentHash),
}

/// One fresh, empty repository under test.
#[async_trait]
pub trait BackupFixture: Send + Sync {
    /// The repository under test (empty at first).
    fn store(&self) -> Arc<dyn BackupStore>;

    /// The time as the backend stamps writes: the fake's clock, or the wall clock for real backends.
    fn now(&self) -> Timestamp;

    /// How far a `written_at` may be from [`BackupFixture::now`]: zero for a fake on a manual clock; clock skew and
    /// the backend's timestamp resolution (S3: seconds) otherwise.
    fn time_tolerance(&self) -> Duration {
        Duration::ZERO
    }

    /// Damages the stored object `id` behind the repository's back. `None` fails the scenarios that need it.
    async fn corrupt_object(&self, id: &ContentHash, how: Corruption) -> Option<()> {
        let _ = (id, how);
        None
    }

    /// Writes `data` under the repository-relative `key` (e.g. `objects/zz/junk`) behind the repository's back, as a
    /// crashed writer or another tool might. `None` fails the scenarios that need it.
    async fn put_raw(&self, key: &str, data: Bytes) -> Option<()> {
        let _ = (key, data);
        None
    }

    /// A name for skip messages.
    fn name(&self) -> &str {
        "backend"
    }
}

/// Turns every scenario of the `BackupStore` suite into a `#[tokio::test]` against one backend.
///
/// `$factory` is an `async fn() -> Option<Box<dyn BackupFixture>>` that builds a fresh, empty repository, or prints
/// why the backend is unavailable and returns `None` (the test then passes as skipped; use that only for backends
/// that genuinely may be missing, such as an external server). Invoke it inside a module named after the backend,
/// so tests read `s3::put_then_get_round_trips`. The calling crate needs `tokio` (features `macros`,
/// `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// mod memory {
///     colstore_testkit::backup_conformance!(super::memory_fixture);
/// }
/// ```
#[macro_export]
macro_rules! backup_conformance {
    ($factory:path) => {
        $crate::backup_conformance!(@scenarios $factory;
            fresh_repository_is_empty,
            put_then_get_round_trips_empty_small_and_large,
            put_of_an_existing_id_is_already_present_and_changes_nothing,
            put_with_a_wrong_id_is_corrupt_and_stores_nothing,
            has_object_tells_present_from_missing,
            get_of_a_missing_object_is_not_found,
            list_objects_lists_exactly_what_was_put,
            list_objects_lists_100_objects,
            delete_object_removes_it_and_missing_is_fine,
            concurrent_puts_of_one_id_store_it_once,
            concurrent_puts_of_different_ids_all_land,
            manifests_are_create_only_and_read_back_exactly,
            get_of_a_missing_manifest_is_not_found,
            manifests_are_listed_oldest_first,
            delete_manifest_removes_it_and_missing_is_fine,
            objects_and_manifests_do_not_mix,
            locks_are_written_overwritten_listed_and_deleted,
            invalid_lock_ids_are_refused,
            corrupt_objects_are_reported_never_returned,
            put_never_rewrites_an_existing_object,
            listings_ignore_foreign_and_unreadable_entries,
        );
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let Some(f) = $factory().await else { return };
                $crate::backup::$scenario(&*f).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/// Deterministic, incompressible bytes (xorshift64*), different for each `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// Some compressible text, different for each `n`.
pub fn text(n: u64) -> Bytes {
    Bytes::from(format!("object {n}: {}", "the quick brown fox jumps over the lazy dog. ".repeat(20)))
}

/// A backup id, sortable by `n`.
///
/// # Panics
/// Never for `n < 60`.
pub fn backup_id(n: u32) -> BackupId {
    BackupId::parse(&format!("20240101T0000{n:02}Z-0000abcd")).unwrap_or_else(|e| panic!("bad backup id: {e}"))
}

/// A lock.
pub fn lock(id: &str, kind: LockKind, refreshed_at: Timestamp) -> RepoLock {
    RepoLock { id: id.to_owned(), kind, holder: format!("test-host:{id}"), refreshed_at }
}

/// Stores an object under its hash; the call must succeed.
///
/// # Panics
/// When the repository fails.
pub async fn put(s: &dyn BackupStore, data: &Bytes) -> (ContentHash, PutObjectOutcome) {
    let id = ContentHash::of(data);
    let outcome = s.put_object(&id, data.clone()).await.unwrap_or_else(|e| panic!("put_object({id}) failed: {e}"));
    (id, outcome)
}

/// Stores an object that must be new.
///
/// # Panics
/// When the repository fails or reports it present.
pub async fn put_new(s: &dyn BackupStore, data: &Bytes) -> ContentHash {
    let (id, outcome) = put(s, data).await;
    assert_eq!(outcome, PutObjectOutcome::Stored, "a new object ({} bytes) is stored", data.len());
    id
}

/// Reads an object that must be intact.
///
/// # Panics
/// When the repository fails.
pub async fn get(s: &dyn BackupStore, id: &ContentHash) -> Bytes {
    s.get_object(id).await.unwrap_or_else(|e| panic!("get_object({id}) failed: {e}"))
}

/// Lists every object, sorted by id.
///
/// # Panics
/// When the repository fails.
pub async fn list(s: &dyn BackupStore) -> Vec<ObjectInfo> {
    let stream = s.list_objects().await.unwrap_or_else(|e| panic!("list_objects failed: {e}"));
    let mut all: Vec<ObjectInfo> = stream.try_collect().await.unwrap_or_else(|e| panic!("list_objects stream failed: {e}"));
    all.sort_by_key(|o| o.id);
    all
}

/// The ids of every listed object.
///
/// # Panics
/// When the repository fails.
pub async fn listed_ids(s: &dyn BackupStore) -> BTreeSet<ContentHash> {
    list(s).await.into_iter().map(|o| o.id).collect()
}

/// Asserts that `t` is within the fixture's tolerance of `[before, after]`.
pub fn assert_plausible_time(f: &dyn BackupFixture, t: Timestamp, before: Timestamp, after: Timestamp, what: &str) {
    let slack = i64::try_from(f.time_tolerance().as_millis()).unwrap_or(i64::MAX);
    assert!(
        t >= before.plus_millis(-slack) && t <= after.plus_millis(slack),
        "{what}: written_at {t} is not between {before} and {after} (± {slack} ms)"
    );
}

fn expect_not_found<T: std::fmt::Debug>(r: Result<T, BackupError>, what: &str, names: &str) {
    match r {
        Err(BackupError::NotFound(s)) => assert!(s.contains(names), "{what}: NotFound({s:?}) should name {names}"),
        other => panic!("{what}: expected NotFound naming {names}, got {other:?}"),
    }
}

fn expect_corrupt<T: std::fmt::Debug>(r: Result<T, BackupError>, what: &str, id: &ContentHash) -> String {
    match r {
        Err(BackupError::Corrupt { id: got, detail }) => {
            assert_eq!(got, *id, "{what}: Corrupt names the wrong object");
            assert!(!detail.is_empty(), "{what}: Corrupt says what is wrong");
            detail
        }
        other => panic!("{what}: expected Corrupt({id}), got {other:?}"),
    }
}

/// A fixture that lacks a helper a scenario needs fails the scenario: every `BackupStore` fixture can damage and
/// write raw objects, so a missing helper is a gap in the fixture, never a reason to skip.
fn missing_helper(f: &dyn BackupFixture, scenario: &str, why: &str) {
    panic!("{scenario} cannot run on {}: {why}; implement the fixture's helper", f.name());
}

// ---------------------------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------------------------

/// A fresh repository lists no objects, manifests or locks.
pub async fn fresh_repository_is_empty(f: &dyn BackupFixture) {
    let s = f.store();
    assert_eq!(list(&*s).await, []);
    assert_eq!(s.list_manifests().await.expect("list_manifests"), []);
    assert_eq!(s.list_locks().await.expect("list_locks"), []);
    assert!(!s.has_object(&ContentHash::of(b"nothing")).await.expect("has_object"));
}

/// Objects read back exactly: the empty object, one byte, 5 MiB of incompressible bytes, compressible text.
pub async fn put_then_get_round_trips_empty_small_and_large(f: &dyn BackupFixture) {
    let s = f.store();
    for data in [Bytes::new(), Bytes::from_static(b"x"), random_bytes(5 * 1024 * 1024, 1), text(1)] {
        let id = put_new(&*s, &data).await;
        let got = get(&*s, &id).await;
        assert!(got == data, "{} bytes read back as {} different bytes", data.len(), got.len());
    }
}

/// A second put of an id is `AlreadyPresent`, and the stored object (bytes, size, time) stays as it was.
pub async fn put_of_an_existing_id_is_already_present_and_changes_nothing(f: &dyn BackupFixture) {
    let s = f.store();
    let data = text(7);
    let id = put_new(&*s, &data).await;
    let before = list(&*s).await;
    let (_, again) = put(&*s, &data).await;
    assert_eq!(again, PutObjectOutcome::AlreadyPresent);
    assert_eq!(list(&*s).await, before, "size and written_at unchanged: the object was not rewritten");
    assert_eq!(get(&*s, &id).await, data);
}

/// A put whose id is not the hash of its data is `Corrupt` (naming that id) and stores nothing.
pub async fn put_with_a_wrong_id_is_corrupt_and_stores_nothing(f: &dyn BackupFixture) {
    let s = f.store();
    let wrong = ContentHash::of(b"something else");
    expect_corrupt(s.put_object(&wrong, text(1)).await, "put with a wrong id", &wrong);
    let big_wrong = ContentHash::of(b"another thing");
    expect_corrupt(s.put_object(&big_wrong, random_bytes(300_000, 3)).await, "large put with a wrong id", &big_wrong);
    assert!(!s.has_object(&wrong).await.expect("has_object"));
    assert!(!s.has_object(&ContentHash::of(&text(1))).await.expect("has_object"));
    assert_eq!(list(&*s).await, []);
}

/// `has_object` is true exactly for stored objects.
pub async fn has_object_tells_present_from_missing(f: &dyn BackupFixture) {
    let s = f.store();
    let id = put_new(&*s, &text(1)).await;
    assert!(s.has_object(&id).await.expect("has_object"));
    assert!(!s.has_object(&ContentHash::of(&text(2))).await.expect("has_object"));
}

/// Reading a missing object is `NotFound`, naming the object.
pub async fn get_of_a_missing_object_is_not_found(f: &dyn BackupFixture) {
    let s = f.store();
    put_new(&*s, &text(1)).await;
    let missing = ContentHash::of(&text(2));
    expect_not_found(s.get_object(&missing).await, "get of a missing object", &missing.to_hex());
}

/// `list_objects` lists each stored object once, with a size at rest (> 0 for non-empty content) and a plausible
/// write time; nothing else.
pub async fn list_objects_lists_exactly_what_was_put(f: &dyn BackupFixture) {
    let s = f.store();
    let before = f.now();
    let mut want = BTreeSet::new();
    for n in 0..5 {
        want.insert(put_new(&*s, &text(n)).await);
    }
    want.insert(put_new(&*s, &random_bytes(100_000, 9)).await);
    let empty = put_new(&*s, &Bytes::new()).await;
    want.insert(empty);
    let after = f.now();
    let listed = list(&*s).await;
    assert_eq!(listed.iter().map(|o| o.id).collect::<BTreeSet<_>>(), want);
    assert_eq!(listed.len(), want.len(), "each object once");
    for o in &listed {
        if o.id != empty {
            assert!(o.size > 0, "{}: size at rest > 0", o.id);
        }
        assert!(o.size < 200_000, "{}: size at rest {} is plausible", o.id, o.size);
        assert_plausible_time(f, o.written_at, before, after, &o.id.to_hex());
    }
}

/// 100 objects are all listed.
pub async fn list_objects_lists_100_objects(f: &dyn BackupFixture) {
    let s = f.store();
    let mut want = BTreeSet::new();
    for n in 0..100 {
        want.insert(put_new(&*s, &Bytes::from(format!("small object {n}"))).await);
    }
    assert_eq!(listed_ids(&*s).await, want);
}

/// A deleted object is gone (not listed, not found); deleting it again, or any missing object, succeeds.
pub async fn delete_object_removes_it_and_missing_is_fine(f: &dyn BackupFixture) {
    let s = f.store();
    let gone = put_new(&*s, &text(1)).await;
    let kept = put_new(&*s, &text(2)).await;
    s.delete_object(&gone).await.expect("delete");
    assert!(!s.has_object(&gone).await.expect("has_object"));
    expect_not_found(s.get_object(&gone).await, "get after delete", &gone.to_hex());
    assert_eq!(listed_ids(&*s).await, BTreeSet::from([kept]));
    s.delete_object(&gone).await.expect("deleting again succeeds");
    s.delete_object(&ContentHash::of(b"never stored")).await.expect("deleting a missing object succeeds");
    assert_eq!(get(&*s, &kept).await, text(2));
    let (_, again) = put(&*s, &text(1)).await;
    assert_eq!(again, PutObjectOutcome::Stored, "a deleted object can be stored again");
}

/// Several tasks putting the same object at once all succeed and leave one intact object; with atomic creates,
/// exactly one of them stored it.
pub async fn concurrent_puts_of_one_id_store_it_once(f: &dyn BackupFixture) {
    let s = f.store();
    let data = random_bytes(256 * 1024, 5);
    let id = ContentHash::of(&data);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, data) = (s.clone(), data.clone());
            tokio::spawn(async move { s.put_object(&id, data).await })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(PutObjectOutcome::Stored) => stored += 1,
            Ok(PutObjectOutcome::AlreadyPresent) => {}
            Err(e) => panic!("a concurrent put failed: {e}"),
        }
    }
    assert!(stored >= 1, "someone stored it");
    if s.capabilities().atomic_create {
        assert_eq!(stored, 1, "with atomic creates exactly one put stores the object");
    }
    assert_eq!(listed_ids(&*s).await, BTreeSet::from([id]));
    assert!(get(&*s, &id).await == data);
}

/// Concurrent puts of different objects all land.
pub async fn concurrent_puts_of_different_ids_all_land(f: &dyn BackupFixture) {
    let s = f.store();
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move { put_new(&*s, &text(n)).await })
        })
        .collect();
    let mut want = BTreeSet::new();
    for t in tasks {
        want.insert(t.await.expect("task"));
    }
    assert_eq!(listed_ids(&*s).await, want);
}

/// A manifest reads back exactly as written (any bytes); a second write with the same id is `AlreadyExists`, naming
/// the manifest, and changes nothing.
pub async fn manifests_are_create_only_and_read_back_exactly(f: &dyn BackupFixture) {
    let s = f.store();
    let id = backup_id(1);
    let data = Bytes::from_static(b"{\"format\": 1, \"objects\": [\"\xc3\xa9\"]}\n");
    s.put_manifest(&id, data.clone()).await.expect("put_manifest");
    assert_eq!(s.get_manifest(&id).await.expect("get_manifest"), data);
    match s.put_manifest(&id, Bytes::from_static(b"{\"other\": true}")).await {
        Err(BackupError::AlreadyExists(what)) => assert!(what.contains(id.as_str()), "AlreadyExists({what:?}) names the manifest"),
        other => panic!("second put_manifest: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(s.get_manifest(&id).await.expect("get_manifest"), data, "the first manifest is kept");
    let empty = backup_id(2);
    s.put_manifest(&empty, Bytes::new()).await.expect("an empty manifest");
    assert_eq!(s.get_manifest(&empty).await.expect("get_manifest"), Bytes::new());
}

/// Reading a missing manifest is `NotFound`, naming it.
pub async fn get_of_a_missing_manifest_is_not_found(f: &dyn BackupFixture) {
    let s = f.store();
    s.put_manifest(&backup_id(1), Bytes::from_static(b"{}")).await.expect("put_manifest");
    expect_not_found(s.get_manifest(&backup_id(2)).await, "get of a missing manifest", backup_id(2).as_str());
}

/// `list_manifests` lists every manifest oldest first (by id), with its size and a plausible write time.
pub async fn manifests_are_listed_oldest_first(f: &dyn BackupFixture) {
    let s = f.store();
    let before = f.now();
    for n in [5, 1, 42, 3, 20] {
        let data = Bytes::from(format!("{{\"n\": {n}, \"pad\": \"{}\"}}", "x".repeat(n as usize)));
        s.put_manifest(&backup_id(n), data).await.expect("put_manifest");
    }
    let after = f.now();
    let listed = s.list_manifests().await.expect("list_manifests");
    let ids: Vec<BackupId> = listed.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, [1, 3, 5, 20, 42].map(backup_id));
    for m in &listed {
        let want = s.get_manifest(&m.id).await.expect("get_manifest").len() as u64;
        assert_eq!(m.size, want, "{}: size is the manifest's length", m.id);
        assert_plausible_time(f, m.written_at, before, after, m.id.as_str());
    }
}

/// A deleted manifest is gone and its id can be used again; deleting a missing manifest succeeds.
pub async fn delete_manifest_removes_it_and_missing_is_fine(f: &dyn BackupFixture) {
    let s = f.store();
    s.put_manifest(&backup_id(1), Bytes::from_static(b"one")).await.expect("put_manifest");
    s.put_manifest(&backup_id(2), Bytes::from_static(b"two")).await.expect("put_manifest");
    s.delete_manifest(&backup_id(1)).await.expect("delete_manifest");
    expect_not_found(s.get_manifest(&backup_id(1)).await, "get after delete", backup_id(1).as_str());
    let ids: Vec<BackupId> = s.list_manifests().await.expect("list").into_iter().map(|m| m.id).collect();
    assert_eq!(ids, [backup_id(2)]);
    s.delete_manifest(&backup_id(1)).await.expect("deleting again succeeds");
    s.delete_manifest(&backup_id(9)).await.expect("deleting a missing manifest succeeds");
    s.put_manifest(&backup_id(1), Bytes::from_static(b"again")).await.expect("the id is free again");
    assert_eq!(s.get_manifest(&backup_id(1)).await.expect("get"), Bytes::from_static(b"again"));
}

/// Objects, manifests and locks live apart: none shows up in another's listing.
pub async fn objects_and_manifests_do_not_mix(f: &dyn BackupFixture) {
    let s = f.store();
    let id = put_new(&*s, &text(1)).await;
    s.put_manifest(&backup_id(1), text(1)).await.expect("put_manifest");
    s.put_lock(&lock("l1", LockKind::Backup, f.now())).await.expect("put_lock");
    assert_eq!(listed_ids(&*s).await, BTreeSet::from([id]));
    assert_eq!(s.list_manifests().await.expect("list").len(), 1);
    assert_eq!(s.list_locks().await.expect("list").len(), 1);
    s.delete_object(&id).await.expect("delete");
    assert_eq!(s.get_manifest(&backup_id(1)).await.expect("get"), text(1));
}

/// Locks are written, overwritten in place (a refresh), listed (all of them, as written) and deleted; deleting a
/// missing lock succeeds.
pub async fn locks_are_written_overwritten_listed_and_deleted(f: &dyn BackupFixture) {
    let s = f.store();
    let t0 = Timestamp::from_millis(1_704_067_200_000);
    let a = lock("backup-a_1", LockKind::Backup, t0);
    let b = lock("prune-B", LockKind::Prune, t0.plus_millis(5));
    s.put_lock(&a).await.expect("put_lock a");
    s.put_lock(&b).await.expect("put_lock b");
    let mut got = s.list_locks().await.expect("list_locks");
    got.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, [a.clone(), b.clone()]);
    let refreshed = RepoLock { refreshed_at: t0.plus_millis(60_000), holder: "test-host:moved".into(), ..a.clone() };
    s.put_lock(&refreshed).await.expect("refresh a");
    let mut got = s.list_locks().await.expect("list_locks");
    got.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(got, [refreshed, b.clone()], "the refresh replaced the lock");
    s.delete_lock(&a.id).await.expect("delete_lock");
    assert_eq!(s.list_locks().await.expect("list_locks"), std::slice::from_ref(&b));
    s.delete_lock(&a.id).await.expect("deleting again succeeds");
    s.delete_lock("never-written").await.expect("deleting a missing lock succeeds");
    s.delete_lock(&b.id).await.expect("delete_lock");
    assert_eq!(s.list_locks().await.expect("list_locks"), []);
}

/// Lock ids outside `[A-Za-z0-9_-]{1,64}` are refused by `put_lock` and `delete_lock`, and nothing is written.
pub async fn invalid_lock_ids_are_refused(f: &dyn BackupFixture) {
    let s = f.store();
    let long = "x".repeat(65);
    for bad in ["", "../escape", "a/b", "a.b", "has space", long.as_str()] {
        let r = s.put_lock(&lock(bad, LockKind::Backup, f.now())).await;
        assert!(r.is_err(), "put_lock({bad:?}) must fail");
        assert!(s.delete_lock(bad).await.is_err(), "delete_lock({bad:?}) must fail");
    }
    assert_eq!(s.list_locks().await.expect("list_locks"), []);
    assert_eq!(list(&*s).await, [], "nothing escaped into the objects");
}

/// A damaged object is never returned: a flipped bit, a truncation or another object's bytes are `Corrupt` naming
/// the object, with a detail; a removed object is `NotFound`. Other objects are unaffected.
pub async fn corrupt_objects_are_reported_never_returned(f: &dyn BackupFixture) {
    let s = f.store();
    let intact = put_new(&*s, &text(100)).await;
    let other = put_new(&*s, &text(101)).await;
    let cases = [
        (Corruption::FlipByte, text(1)),
        (Corruption::Truncate, text(2)),
        (Corruption::Truncate, Bytes::from_static(b"x")),
        (Corruption::FlipByte, random_bytes(300_000, 4)),
        (Corruption::SwapWith(other), text(3)),
    ];
    for (how, data) in cases {
        let id = put_new(&*s, &data).await;
        if f.corrupt_object(&id, how).await.is_none() {
            return missing_helper(f, "corrupt_objects_are_reported_never_returned", "the fixture cannot damage stored objects");
        }
        let detail = expect_corrupt(s.get_object(&id).await, &format!("{how:?} of {} bytes", data.len()), &id);
        if matches!(how, Corruption::SwapWith(_)) {
            assert!(detail.contains("hash"), "a swapped object is a hash mismatch: {detail}");
        }
    }
    let gone = put_new(&*s, &text(4)).await;
    f.corrupt_object(&gone, Corruption::Delete).await.expect("the fixture deletes objects");
    expect_not_found(s.get_object(&gone).await, "a removed object", &gone.to_hex());
    assert!(!s.has_object(&gone).await.expect("has_object"));
    assert_eq!(get(&*s, &intact).await, text(100));
    assert_eq!(get(&*s, &other).await, text(101));
}

/// `put_object` of an id that exists never rewrites it, even when the stored copy is damaged (repairing is not its
/// job; a verify finds the damage).
pub async fn put_never_rewrites_an_existing_object(f: &dyn BackupFixture) {
    let s = f.store();
    let data = text(1);
    let id = put_new(&*s, &data).await;
    if f.corrupt_object(&id, Corruption::FlipByte).await.is_none() {
        return missing_helper(f, "put_never_rewrites_an_existing_object", "the fixture cannot damage stored objects");
    }
    let (_, again) = put(&*s, &data).await;
    assert_eq!(again, PutObjectOutcome::AlreadyPresent);
    expect_corrupt(s.get_object(&id).await, "the damaged copy was kept", &id);
}

/// Listings skip what is not theirs: temporary and foreign files, names that do not parse, objects in the wrong
/// folder, and lock objects that are not valid JSON locks (or whose id is not their name), without failing.
pub async fn listings_ignore_foreign_and_unreadable_entries(f: &dyn BackupFixture) {
    let s = f.store();
    let id = put_new(&*s, &text(1)).await;
    s.put_manifest(&backup_id(1), Bytes::from_static(b"{}")).await.expect("put_manifest");
    let good = lock("good", LockKind::Backup, Timestamp::from_millis(1_704_067_200_000));
    s.put_lock(&good).await.expect("put_lock");
    let hex = ContentHash::of(&text(2)).to_hex();
    let mismatched = serde_json::to_vec(&lock("claims-another-id", LockKind::Prune, f.now())).expect("json");
    let junk: [(String, Bytes); 11] = [
        (format!("objects/{}/{hex}#1", &hex[..2]), text(2)),
        (format!("objects/zz/{hex}"), text(2)),
        (format!("objects/{}/{}", &hex[..2], hex.to_uppercase()), text(2)),
        ("objects/README.txt".into(), Bytes::from_static(b"hello")),
        (format!("objects/{}/{}", &hex[..2], &hex[..10]), text(2)),
        ("manifests/notes.txt".into(), Bytes::from_static(b"{}")),
        ("manifests/not an id.json".into(), Bytes::from_static(b"{}")),
        ("locks/garbage.json".into(), Bytes::from_static(b"not json {")),
        ("locks/wrong-shape.json".into(), Bytes::from_static(b"{\"id\": \"wrong-shape\"}")),
        ("locks/mismatch.json".into(), Bytes::from(mismatched)),
        ("elsewhere/file.bin".into(), Bytes::from_static(b"x")),
    ];
    for (key, data) in junk {
        if f.put_raw(&key, data).await.is_none() {
            return missing_helper(f, "listings_ignore_foreign_and_unreadable_entries", "the fixture cannot write raw entries");
        }
    }
    assert_eq!(listed_ids(&*s).await, BTreeSet::from([id]));
    let manifests: Vec<BackupId> = s.list_manifests().await.expect("list_manifests").into_iter().map(|m| m.id).collect();
    assert_eq!(manifests, [backup_id(1)]);
    assert_eq!(s.list_locks().await.expect("list_locks"), [good]);
}
