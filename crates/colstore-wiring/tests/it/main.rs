//! End-to-end through the real SQLite adapter: `init` creates a store that `discover` finds and `Store::open` opens.

use std::sync::Arc;

mod filesystem;
mod props;

use colstore_domain::ports::Clock;
use colstore_domain::{CollectionName, CollectionSettings, CollectionSpec};
use colstore_wiring::{StorageMode, Store, StoreConfig, SystemClock, WiringError, discover, init};

fn no_env(_: &str) -> Option<String> {
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_discover_then_open() {
    let t = tempfile::tempdir().unwrap();
    let project = t.path().join("proj");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let created = init(&project, StorageMode::Sqlite, None, None, &no_env, Arc::clone(&clock)).await.unwrap();
    let config = StoreConfig::load(&created.config_path()).unwrap();
    assert!(created.db_path(&config).is_file(), "init created the database");

    std::fs::create_dir(project.join("src")).unwrap();
    let dir = discover(None, &project.join("src"), &no_env).unwrap();
    assert_eq!(dir, created);

    let store = Store::open(dir.clone(), &no_env).await.unwrap();
    assert_eq!(store.store_id(), config.store_id);
    assert!(!store.is_relocated());
    assert!(store.repo().list_collections().await.unwrap().is_empty());
    let name = CollectionName::parse("notes").unwrap();
    store.repo().create_collection(CollectionSpec { name: name.clone(), settings: CollectionSettings::default() }).await.unwrap();
    store.close().await;

    let again = Store::open(dir, &no_env).await.unwrap();
    let names: Vec<_> = again.repo().list_collections().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, [name]);
    again.close().await;

    let e = init(&project, StorageMode::Sqlite, None, None, &no_env, clock).await.unwrap_err();
    assert!(matches!(e, WiringError::AlreadyInitialised { .. }), "{e:?}");
}

/// A database made before stores had an id (no `store_meta` row) is adopted on its first open: the config's id is
/// recorded, and from then on a database with another id is refused as foreign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_database_without_a_store_id_is_adopted() {
    let t = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dir = init(&t.path().join("a"), StorageMode::Sqlite, None, None, &no_env, Arc::clone(&clock)).await.unwrap();
    let config = StoreConfig::load(&dir.config_path()).unwrap();
    let db = dir.db_path(&config);
    std::fs::remove_file(&db).unwrap();
    let options = colstore_sqlite::SqliteOptions { create: true, ..Default::default() };
    let old = colstore_sqlite::SqliteRepo::open(&db, options, Arc::clone(&clock)).await.unwrap();
    assert_eq!(old.store_id().await.unwrap(), None);
    old.close().await;

    let store = Store::open(dir.clone(), &no_env).await.unwrap();
    store.close().await;
    let options = colstore_sqlite::SqliteOptions::default();
    let reopened = colstore_sqlite::SqliteRepo::open(&db, options, Arc::clone(&clock)).await.unwrap();
    assert_eq!(reopened.store_id().await.unwrap(), Some(config.store_id.to_string()));
    reopened.close().await;

    // Another store's database in its place is refused.
    let other = init(&t.path().join("b"), StorageMode::Sqlite, None, None, &no_env, clock).await.unwrap();
    let other_db = other.db_path(&StoreConfig::load(&other.config_path()).unwrap());
    std::fs::copy(&other_db, &db).unwrap();
    let e = Store::open(dir, &no_env).await.unwrap_err();
    assert!(matches!(e, WiringError::ForeignDatabase { .. }), "{e:?}");
}
