//! `InMemoryBackupStore` passes the `BackupStore` conformance suite, plus checks of what only the fake promises.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{BackupCapabilities, BackupStore, Clock, LockKind};
use colstore_domain::{ContentHash, Timestamp};
use colstore_testkit::backup::{self, BackupFixture, Corruption};
use colstore_testkit::{InMemoryBackupStore, ManualClock};

struct Fake {
    store: Arc<InMemoryBackupStore>,
    clock: Arc<ManualClock>,
}

#[async_trait]
impl BackupFixture for Fake {
    fn store(&self) -> Arc<dyn BackupStore> {
        self.store.clone()
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn corrupt_object(&self, id: &ContentHash, how: Corruption) -> Option<()> {
        assert!(self.store.corrupt_object(id, how), "the object to damage exists");
        Some(())
    }

    async fn put_raw(&self, key: &str, data: Bytes) -> Option<()> {
        self.store.put_raw(key, data);
        Some(())
    }

    fn name(&self) -> &str {
        "fake"
    }
}

async fn fixture() -> Option<Box<dyn BackupFixture>> {
    let clock = Arc::new(ManualClock::at_2024());
    Some(Box::new(Fake { store: Arc::new(InMemoryBackupStore::new(clock.clone())), clock }))
}

mod fake {
    colstore_testkit::backup_conformance!(super::fixture);
}

#[test]
fn capabilities_are_atomic_and_not_durable() {
    let s = InMemoryBackupStore::new(Arc::new(ManualClock::at_2024()));
    assert_eq!(s.capabilities(), BackupCapabilities { atomic_create: true, durable_writes: false });
}

/// The fake keys entries exactly like the object_store adapter's layout, stamps them with its clock, and stores
/// objects uncompressed.
#[tokio::test]
async fn layout_times_and_sizes_follow_the_adapter() {
    let clock = Arc::new(ManualClock::at_2024());
    let s = InMemoryBackupStore::new(clock.clone());
    let (id, _) = backup::put(&s, &Bytes::from_static(b"hello")).await;
    clock.advance(Duration::from_secs(60));
    s.put_manifest(&backup::backup_id(1), Bytes::from_static(b"{}")).await.unwrap();
    s.put_lock(&backup::lock("l", LockKind::Backup, clock.now())).await.unwrap();
    let hex = id.to_hex();
    assert_eq!(
        s.keys(),
        ["locks/l.json".into(), format!("manifests/{}.json", backup::backup_id(1)), format!("objects/{}/{hex}", &hex[..2])]
    );
    let listed = backup::list(&s).await;
    assert_eq!((listed[0].size, listed[0].written_at), (5, ManualClock::at_2024().now()));
    let m = s.list_manifests().await.unwrap();
    assert_eq!(m[0].written_at, clock.now());
}

#[test]
fn corrupting_a_missing_object_reports_false() {
    let s = InMemoryBackupStore::new(Arc::new(ManualClock::at_2024()));
    assert!(!s.corrupt_object(&ContentHash::of(b"x"), Corruption::FlipByte));
    assert!(!s.corrupt_object(&ContentHash::of(b"x"), Corruption::Delete));
}

#[test]
fn random_bytes_are_deterministic_and_distinct() {
    assert_eq!(backup::random_bytes(1000, 1), backup::random_bytes(1000, 1));
    assert_ne!(backup::random_bytes(1000, 1), backup::random_bytes(1000, 2));
    assert_eq!(backup::random_bytes(13, 1).len(), 13);
}

/// A scenario missing from the macro's list would silently never run against any backend.
#[test]
fn every_backup_scenario_is_listed_in_the_macro() {
    crate::fake_queue::assert_lists_every_scenario(
        include_str!("../../src/backup.rs"),
        "(f: &dyn BackupFixture)",
        "backup_conformance",
        15,
    );
}
