//! Backup and restore on the fakes: round trips, dedup, corruption, locks, plans, merge rule.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use colstore_app::backup::{
    BackupFailure, BackupOptions, KeepPolicy, LockOwner, RestoreMode, RestoreOptions, create_backup, delete_backup, latest_backup,
    list_backups, plan_restore, prune_backups, restore_backup, verify_backup,
};
use colstore_domain::ports::{
    BackupId, BackupStore, Clock, CollectionRepo, LedgerEntry, LockKind, Projection, RepoLock, SyncState, SyncStore,
};
use colstore_domain::{
    ChunkingSettings, CollectionName, CollectionSettings, CollectionSpec, Content, ContentHash, Dimension, Distance, DocKey, EmbedderId,
    Metadata, NewDocument, StoreId, Tags, VectorSettings, chunk_text,
};
use colstore_testkit::backup::Corruption;
use colstore_testkit::{InMemoryBackupStore, InMemoryRepo, ManualClock};
use serde_json::json;

pub struct World {
    pub clock: Arc<ManualClock>,
    pub repo: Arc<InMemoryRepo>,
    pub backups: Arc<InMemoryBackupStore>,
}

pub fn world() -> World {
    let clock = Arc::new(ManualClock::at_2024());
    World { repo: Arc::new(InMemoryRepo::new(clock.clone())), backups: Arc::new(InMemoryBackupStore::new(clock.clone())), clock }
}

fn name(s: &str) -> CollectionName {
    CollectionName::parse(s).unwrap()
}

fn key(s: &str) -> DocKey {
    DocKey::parse(s).unwrap()
}

fn embedder() -> EmbedderId {
    EmbedderId { kind: "hash".into(), model: "v1".into(), dimension: Dimension::new(4).unwrap() }
}

fn owner() -> LockOwner {
    LockOwner { holder: "test:1".into(), is_dead: Arc::new(|_| false) }
}

/// The one store the tests' backups are of (unless a test says otherwise).
static STORE: std::sync::LazyLock<StoreId> = std::sync::LazyLock::new(StoreId::random);

fn opts(collections: &[&str]) -> BackupOptions {
    BackupOptions {
        collections: collections.iter().map(|c| name(c)).collect(),
        schema_only: false,
        tags: vec!["t".into()],
        dry_run: false,
        store_id: *STORE,
        store_path: Some("/projects/test".into()),
        schema_version: 2,
        tool_version: "test".into(),
    }
}

fn settings() -> CollectionSettings {
    CollectionSettings {
        vectors: Some(VectorSettings { embedder: embedder(), distance: Distance::Cosine }),
        chunking: ChunkingSettings::default(),
        index: None,
        fusion: None,
        indexed_fields: Vec::new(),
    }
}

/// A collection of `n` documents, each synced: vectors cached and the ledger says synced.
pub async fn fill(repo: &InMemoryRepo, coll: &str, n: usize) {
    let c = name(coll);
    if repo.collection(&c).await.is_err() {
        repo.create_collection(CollectionSpec { name: c.clone(), settings: settings() }).await.unwrap();
    }
    let docs = (0..n)
        .map(|i| NewDocument {
            key: key(&format!("d{i:03}.md")),
            content: Content::Bytes(Bytes::from(format!("document {i} of {coll}: some words about backups"))),
            metadata: Metadata(json!({ "i": i }).as_object().unwrap().clone()),
            tags: Tags::default(),
        })
        .collect();
    repo.put_batch(&c, docs).await.unwrap();
    sync_all(repo, &c).await;
}

async fn sync_all(repo: &InMemoryRepo, c: &CollectionName) {
    for row in repo.pending(c, true, None, 10_000).await.unwrap() {
        let Some(hash) = row.current else { continue };
        let (_, mut s) = repo.read_content(c, &row.key).await.unwrap();
        let mut bytes = Vec::new();
        while let Some(b) = futures::StreamExt::next(&mut s).await {
            bytes.extend_from_slice(&b.unwrap());
        }
        let chunks = chunk_text(std::str::from_utf8(&bytes).unwrap(), &ChunkingSettings::default());
        let vectors = chunks.iter().map(|ch| (ch.hash, vec![ch.index as f32, 1.0, 0.5, bytes.len() as f32])).collect();
        repo.cache_vectors(&embedder(), vectors).await.unwrap();
        let p = Projection { content_hash: hash, chunk_count: chunks.len() as u32 };
        assert!(repo.mark_synced(c, &row.key, Some(hash), Some(p)).await.unwrap());
    }
}

/// Everything a round trip must keep: documents (all fields but the collection), content, ledger, cached vectors.
pub async fn dump(repo: &InMemoryRepo) -> Vec<String> {
    let snap = repo.snapshot().await.unwrap();
    let mut out = Vec::new();
    for c in snap.collections().await.unwrap() {
        out.push(format!("collection {} {:?} {}", c.name, c.settings, c.created_at.as_millis()));
        for d in snap.documents(&c.name, None, 100_000).await.unwrap() {
            let content = snap.content(&d.content_hash).await.unwrap();
            let chunks = chunk_text(std::str::from_utf8(&content).unwrap(), &c.settings.chunking);
            let vectors = snap.cached_vectors(&embedder(), chunks.iter().map(|c| c.hash).collect()).await.unwrap();
            out.push(format!("doc {d:?} {} {vectors:?}", String::from_utf8_lossy(&content)));
        }
        for l in snap.ledger(&c.name, None, 100_000).await.unwrap() {
            out.push(format!("ledger {l:?}"));
        }
    }
    out
}

async fn backup(w: &World, collections: &[&str]) -> BackupId {
    let r = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(collections), &|_| {}).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    BackupId::parse(&r.id.unwrap()).unwrap()
}

fn replace() -> RestoreOptions {
    RestoreOptions { collections: Vec::new(), mode: RestoreMode::Replace }
}

#[tokio::test]
async fn a_round_trip_into_a_new_store_is_identical() {
    let w = world();
    fill(&w.repo, "notes", 40).await;
    fill(&w.repo, "papers", 5).await;
    // A pending deletion and a failed row are part of the ledger too.
    w.repo.delete_documents(&name("notes"), vec![key("d000.md")]).await.unwrap();
    w.repo.mark_failed(&name("papers"), &key("d001.md"), "boom".into()).await.unwrap();
    let id = backup(&w, &[]).await;

    let other = world();
    let report = restore_backup(&*other.repo, &*other.repo, w.backups.clone(), &id, &replace(), &|_, _| {}).await.unwrap();
    assert_eq!(report.documents_written, 44);
    assert_eq!(report.verified, 44);
    assert_eq!(dump(&other.repo).await, dump(&w.repo).await);
    let v = verify_backup(w.backups.clone(), &id, true, &|_, _| {}).await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.documents, 44);
}

#[tokio::test]
async fn a_second_backup_stores_only_what_changed() {
    let w = world();
    fill(&w.repo, "notes", 300).await;
    let first = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&[]), &|_| {}).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    w.repo
        .put_batch(
            &name("notes"),
            vec![NewDocument {
                key: key("d007.md"),
                content: Content::Bytes(Bytes::from_static(b"changed")),
                metadata: Metadata::default(),
                tags: Tags::default(),
            }],
        )
        .await
        .unwrap();
    let second = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&[]), &|_| {}).await.unwrap();
    // One new content, its record chunk(s) and the ledger chunk that holds its row: a few KiB, not the whole store.
    assert!(second.stats.new_blob_bytes * 10 < first.stats.new_blob_bytes, "{:?} vs {:?}", second.stats, first.stats);
    assert!(second.stats.new_blobs <= 6, "{:?}", second.stats);
    assert_eq!(second.stats.documents, 300);
    // And the second restores the change.
    let other = world();
    restore_backup(&*other.repo, &*other.repo, w.backups.clone(), &BackupId::parse(&second.id.unwrap()).unwrap(), &replace(), &|_, _| {})
        .await
        .unwrap();
    assert_eq!(dump(&other.repo).await, dump(&w.repo).await);
}

#[tokio::test]
async fn a_dry_run_writes_nothing() {
    let w = world();
    fill(&w.repo, "notes", 10).await;
    let r = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &BackupOptions { dry_run: true, ..opts(&[]) }, &|_| {})
        .await
        .unwrap();
    assert!(r.id.is_none());
    assert!(r.stats.new_blobs > 10);
    assert!(w.backups.keys().is_empty(), "{:?}", w.backups.keys());
}

#[tokio::test]
async fn any_damaged_object_is_named_and_restore_refuses_before_changing_anything() {
    for how in [Corruption::FlipByte, Corruption::Truncate, Corruption::Delete] {
        let w = world();
        fill(&w.repo, "notes", 20).await;
        let id = backup(&w, &[]).await;
        let m = colstore_app::backup::show_backup(&*w.backups, &id).await.unwrap();
        let pack = m.packs[0];
        assert!(w.backups.corrupt_object(&pack, how));
        let v = verify_backup(w.backups.clone(), &id, true, &|_, _| {}).await.unwrap();
        assert!(v.problems.iter().any(|p| p.object == pack.to_string()), "{how:?}: {:?}", v.problems);

        let target = world();
        fill(&target.repo, "notes", 3).await;
        let before = dump(&target.repo).await;
        let e = restore_backup(&*target.repo, &*target.repo, w.backups.clone(), &id, &replace(), &|_, _| {}).await.unwrap_err();
        assert!(matches!(e, BackupFailure::Corrupt { .. } | BackupFailure::Missing { .. }), "{how:?}: {e}");
        assert!(e.to_string().contains(&pack.to_string()), "{e}");
        assert_eq!(dump(&target.repo).await, before, "{how:?}: the restore changed the store");
    }
}

#[tokio::test]
async fn a_damaged_index_is_found_without_reading_data() {
    let w = world();
    fill(&w.repo, "notes", 5).await;
    let id = backup(&w, &[]).await;
    let m = colstore_app::backup::show_backup(&*w.backups, &id).await.unwrap();
    assert!(w.backups.corrupt_object(&m.indexes[0], Corruption::FlipByte));
    let v = verify_backup(w.backups.clone(), &id, false, &|_, _| {}).await.unwrap();
    assert!(v.problems.iter().any(|p| p.object == m.indexes[0].to_string()), "{:?}", v.problems);
}

#[tokio::test]
async fn the_plan_counts_and_replace_makes_the_collection_the_backups() {
    let w = world();
    fill(&w.repo, "notes", 10).await;
    let id = backup(&w, &[]).await;
    // Change the store: one updated, one deleted, one added.
    w.repo.delete_documents(&name("notes"), vec![key("d001.md")]).await.unwrap();
    w.repo
        .put_batch(
            &name("notes"),
            vec![
                NewDocument {
                    key: key("d002.md"),
                    content: Content::Bytes(Bytes::from_static(b"edit")),
                    metadata: Metadata::default(),
                    tags: Tags::default(),
                },
                NewDocument {
                    key: key("new.md"),
                    content: Content::Bytes(Bytes::from_static(b"new")),
                    metadata: Metadata::default(),
                    tags: Tags::default(),
                },
            ],
        )
        .await
        .unwrap();
    let plan = plan_restore(&*w.repo, w.backups.clone(), &id, &replace()).await.unwrap();
    let c = &plan.collections[0];
    assert_eq!((c.add, c.update, c.delete, c.unchanged, c.kept_newer), (1, 1, 1, 8, 0), "{c:?}");
    // Planning changed nothing.
    assert!(w.repo.document(&name("notes"), &key("new.md")).await.is_ok());

    let merge =
        plan_restore(&*w.repo, w.backups.clone(), &id, &RestoreOptions { collections: vec![], mode: RestoreMode::Merge }).await.unwrap();
    let m = &merge.collections[0];
    // The edit is newer than the backup: merge keeps it; nothing is deleted.
    assert_eq!((m.add, m.update, m.delete, m.unchanged, m.kept_newer), (1, 0, 0, 8, 1), "{m:?}");

    restore_backup(&*w.repo, &*w.repo, w.backups.clone(), &id, &replace(), &|_, _| {}).await.unwrap();
    let keys: Vec<String> = w
        .repo
        .snapshot()
        .await
        .unwrap()
        .documents(&name("notes"), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key.to_string())
        .collect();
    assert_eq!(keys.len(), 10);
    assert!(!keys.contains(&"new.md".to_owned()));
    // The deleted extra document is a pending deletion (its points must leave the index), the rest as backed up.
    let ledger = w.repo.ledger(&name("notes"), None, 100).await.unwrap();
    let extra: Vec<&LedgerEntry> = ledger.iter().filter(|l| l.key.as_str() == "new.md").collect();
    assert!(extra.iter().all(|l| l.current.is_none()));
    assert!(ledger.iter().filter(|l| l.current.is_some()).all(|l| l.state == SyncState::Synced), "{ledger:?}");
}

#[tokio::test]
async fn merge_adds_and_keeps_newer_documents() {
    let w = world();
    fill(&w.repo, "notes", 4).await;
    let id = backup(&w, &[]).await;
    w.repo.delete_documents(&name("notes"), vec![key("d000.md")]).await.unwrap();
    w.repo
        .put_batch(
            &name("notes"),
            vec![NewDocument {
                key: key("d001.md"),
                content: Content::Bytes(Bytes::from_static(b"mine")),
                metadata: Metadata::default(),
                tags: Tags::default(),
            }],
        )
        .await
        .unwrap();
    let r = restore_backup(
        &*w.repo,
        &*w.repo,
        w.backups.clone(),
        &id,
        &RestoreOptions { collections: vec![], mode: RestoreMode::Merge },
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(r.documents_written, 1);
    assert!(w.repo.document(&name("notes"), &key("d000.md")).await.is_ok(), "the deleted document came back");
    let d1 = w.repo.document(&name("notes"), &key("d001.md")).await.unwrap();
    assert_eq!(d1.content_hash, ContentHash::of(b"mine"), "the newer store copy is kept");
}

#[tokio::test]
async fn scope_and_unknown_collections() {
    let w = world();
    fill(&w.repo, "notes", 3).await;
    fill(&w.repo, "papers", 3).await;
    let id = backup(&w, &["papers"]).await;
    let m = colstore_app::backup::show_backup(&*w.backups, &id).await.unwrap();
    assert_eq!(m.collections.iter().map(|c| c.name.to_string()).collect::<Vec<_>>(), ["papers"]);
    let e = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&["nope"]), &|_| {}).await.unwrap_err();
    assert!(matches!(e, BackupFailure::NoSuchCollection(..)), "{e}");
    let e = restore_backup(
        &*w.repo,
        &*w.repo,
        w.backups.clone(),
        &id,
        &RestoreOptions { collections: vec![name("notes")], mode: RestoreMode::Replace },
        &|_, _| {},
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("notes is not in the backup"), "{e}");
    let e = restore_backup(&*w.repo, &*w.repo, w.backups.clone(), &BackupId::parse("missing").unwrap(), &replace(), &|_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(e, BackupFailure::NotFound(_)), "{e}");
}

#[tokio::test]
async fn schema_only_keeps_settings_and_no_documents() {
    let w = world();
    fill(&w.repo, "notes", 3).await;
    let r = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &BackupOptions { schema_only: true, ..opts(&[]) }, &|_| {})
        .await
        .unwrap();
    let id = BackupId::parse(&r.id.unwrap()).unwrap();
    let other = world();
    restore_backup(&*other.repo, &*other.repo, w.backups.clone(), &id, &replace(), &|_, _| {}).await.unwrap();
    let c = other.repo.collection(&name("notes")).await.unwrap();
    assert_eq!(c.settings, settings());
    assert_eq!(c.document_count, 0);
}

#[tokio::test]
async fn prune_keeps_what_kept_backups_need_and_waits_for_running_backups() {
    let w = world();
    fill(&w.repo, "notes", 30).await;
    let a = backup(&w, &[]).await;
    fill(&w.repo, "papers", 30).await;
    let b = backup(&w, &[]).await;
    let c = backup(&w, &[]).await;

    // A running backup (a fresh lock of a live holder) blocks a prune.
    let lock = RepoLock { id: "backup-other".into(), kind: LockKind::Backup, holder: "elsewhere:7".into(), refreshed_at: w.clock.now() };
    w.backups.put_lock(&lock).await.unwrap();
    let e = prune_backups(&*w.backups, &*w.clock, &owner(), KeepPolicy { last: Some(1), ..KeepPolicy::default() }, None, false)
        .await
        .unwrap_err();
    assert!(matches!(e, BackupFailure::Locked { .. }), "{e}");
    // ... until it goes stale.
    w.clock.advance(Duration::from_secs(11 * 60));
    let dry =
        prune_backups(&*w.backups, &*w.clock, &owner(), KeepPolicy { last: Some(1), ..KeepPolicy::default() }, None, true).await.unwrap();
    assert_eq!(dry.removed, [a.to_string(), b.to_string()]);
    assert_eq!(list_backups(&*w.backups).await.unwrap().len(), 3, "a dry run removes nothing");
    let r =
        prune_backups(&*w.backups, &*w.clock, &owner(), KeepPolicy { last: Some(1), ..KeepPolicy::default() }, None, false).await.unwrap();
    assert_eq!(r.kept, [c.to_string()]);
    // The kept backup is still whole, with data first stored by the removed ones.
    let v = verify_backup(w.backups.clone(), &c, true, &|_, _| {}).await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    let other = world();
    restore_backup(&*other.repo, &*other.repo, w.backups.clone(), &c, &replace(), &|_, _| {}).await.unwrap();
    assert_eq!(dump(&other.repo).await, dump(&w.repo).await);
    // Delete the last one: the repository is empty of objects again.
    delete_backup(&*w.backups, &*w.clock, &owner(), &c, false).await.unwrap();
    assert!(w.backups.keys().iter().all(|k| k.starts_with("locks/")), "{:?}", w.backups.keys());
}

#[tokio::test]
async fn latest_and_prune_are_per_store() {
    let w = world();
    fill(&w.repo, "notes", 3).await;
    let other = StoreId::random();
    let of = |s: StoreId| BackupOptions { store_id: s, ..opts(&[]) };
    let a1 = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&[]), &|_| {}).await.unwrap().id.unwrap();
    w.clock.advance(Duration::from_secs(1));
    let a2 = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&[]), &|_| {}).await.unwrap().id.unwrap();
    w.clock.advance(Duration::from_secs(1));
    let b1 = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &of(other), &|_| {}).await.unwrap().id.unwrap();
    let list = list_backups(&*w.backups).await.unwrap();
    assert_eq!(list[2].store_id, Some(other));
    assert_eq!(list[2].store_path.as_deref(), Some("/projects/test"));
    // `latest` is this store's newest, never the newer backup of another store.
    assert_eq!(latest_backup(&list, Some(*STORE)).unwrap().id, a2);
    assert_eq!(latest_backup(&list, Some(other)).unwrap().id, b1);
    let e = latest_backup(&list, Some(StoreId::random())).unwrap_err();
    assert!(e.to_string().contains("no backups of this store"), "{e}");
    let e = latest_backup(&list, None).unwrap_err();
    assert!(e.to_string().contains("2 stores"), "{e}");
    // Keep the last 1 of this store: the other store's backup is not touched.
    let keep1 = KeepPolicy { last: Some(1), ..KeepPolicy::default() };
    let r = prune_backups(&*w.backups, &*w.clock, &owner(), keep1, Some(*STORE), true).await.unwrap();
    assert_eq!(r.removed, std::slice::from_ref(&a1));
    // Without a store, the policy applies to each store's backups among themselves.
    let r = prune_backups(&*w.backups, &*w.clock, &owner(), keep1, None, false).await.unwrap();
    assert_eq!(r.removed, [a1]);
    let mut kept = r.kept.clone();
    kept.sort();
    assert_eq!(kept, [a2, b1]);
}

#[tokio::test]
async fn a_prune_blocks_a_backup_and_an_interrupted_backup_is_invisible() {
    let w = world();
    fill(&w.repo, "notes", 5).await;
    let lock = RepoLock { id: "prune-other".into(), kind: LockKind::Prune, holder: "elsewhere:8".into(), refreshed_at: w.clock.now() };
    w.backups.put_lock(&lock).await.unwrap();
    let e = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&[]), &|_| {}).await.unwrap_err();
    assert!(matches!(e, BackupFailure::Locked { .. }), "{e}");
    assert!(w.backups.keys().iter().all(|k| k.starts_with("locks/")), "nothing but locks: {:?}", w.backups.keys());
    // A dead holder's lock is ignored.
    let dead = LockOwner { holder: "test:1".into(), is_dead: Arc::new(|h| h == "elsewhere:8") };
    create_backup(&*w.repo, w.backups.clone(), &*w.clock, &dead, &opts(&[]), &|_| {}).await.unwrap();
    // Objects without a manifest (a killed backup) are not a backup, and prune collects them.
    w.backups.delete_lock("prune-other").await.unwrap();
    let orphan = Bytes::from_static(b"orphan object");
    w.backups.put_object(&ContentHash::of(&orphan), orphan).await.unwrap();
    assert_eq!(list_backups(&*w.backups).await.unwrap().len(), 1);
    let r =
        prune_backups(&*w.backups, &*w.clock, &owner(), KeepPolicy { last: Some(5), ..KeepPolicy::default() }, None, false).await.unwrap();
    assert_eq!(r.objects_removed, 1);
}

#[tokio::test]
async fn vectors_that_arrive_after_a_backup_are_in_the_next_one() {
    let w = world();
    let c = name("notes");
    w.repo.create_collection(CollectionSpec { name: c.clone(), settings: settings() }).await.unwrap();
    let docs = (0..40)
        .map(|i| NewDocument {
            key: key(&format!("d{i:03}.md")),
            content: Content::Bytes(Bytes::from(format!("unsynced document {i}"))),
            metadata: Metadata::default(),
            tags: Tags::default(),
        })
        .collect();
    w.repo.put_batch(&c, docs).await.unwrap();
    let first = backup(&w, &[]).await;
    let m = colstore_app::backup::show_backup(&*w.backups, &first).await.unwrap();
    assert_eq!(m.collections[0].vectors, 0, "nothing was embedded yet");
    // Now the documents are synced: the next backup must carry their vectors, although their contents are unchanged.
    sync_all(&w.repo, &c).await;
    let second = backup(&w, &[]).await;
    let m = colstore_app::backup::show_backup(&*w.backups, &second).await.unwrap();
    assert_eq!(m.collections[0].vectors, 40);
    let other = world();
    restore_backup(&*other.repo, &*other.repo, w.backups.clone(), &second, &replace(), &|_, _| {}).await.unwrap();
    assert_eq!(dump(&other.repo).await, dump(&w.repo).await);
    // And a third backup with nothing changed reuses everything.
    let r = create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&[]), &|_| {}).await.unwrap();
    assert_eq!(r.stats.new_blobs, 0, "{:?}", r.stats);
}

#[tokio::test]
async fn a_large_backup_writes_its_index_in_parts_and_still_round_trips() {
    // 40 000 documents of about 100 bytes (and 200 of record each): more than one 8 MiB pack, and more than the 16 384
    // blobs after which an index is written.
    let w = world();
    let c = name("notes");
    w.repo.create_collection(CollectionSpec { name: c.clone(), settings: settings() }).await.unwrap();
    let docs = (0..40_000)
        .map(|i| NewDocument {
            key: key(&format!("d{i:06}.md")),
            content: Content::Bytes(Bytes::from(format!("document {i}: {}", "words ".repeat(14)))),
            metadata: Metadata::default(),
            tags: Tags::default(),
        })
        .collect();
    w.repo.put_batch(&c, docs).await.unwrap();
    let id = backup(&w, &[]).await;
    let m = colstore_app::backup::show_backup(&*w.backups, &id).await.unwrap();
    assert!(m.indexes.len() >= 2, "the index is written in parts: {:?}", m.indexes);
    let v = verify_backup(w.backups.clone(), &id, true, &|_, _| {}).await.unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.documents, 40_000);
    let target = world();
    let r = restore_backup(&*target.repo, &*target.repo, w.backups.clone(), &id, &replace(), &|_, _| {}).await.unwrap();
    assert_eq!((r.documents_written, r.verified), (40_000, 40_000), "the restore checks every document against the backup");
}

#[tokio::test]
async fn filesystem_mode_restore_writes_back_files_removed_or_edited_behind_the_store() {
    let clock = Arc::new(ManualClock::at_2024());
    let files = Arc::new(colstore_testkit::InMemoryFiles::new());
    let w = World {
        repo: Arc::new(InMemoryRepo::with_files(clock.clone(), files.clone())),
        backups: Arc::new(InMemoryBackupStore::new(clock.clone())),
        clock,
    };
    fill(&w.repo, "notes", 3).await;
    let id = backup(&w, &[]).await;
    let before = dump(&w.repo).await;
    let c = name("notes");
    let original = files.contents(&c, "d001.md").unwrap();
    files.external_remove(&c, "d000.md");
    files.external_replace(&c, "d001.md", Bytes::from_static(b"edited outside colstore"));

    let plan = plan_restore(&*w.repo, w.backups.clone(), &id, &replace()).await.unwrap();
    let p = &plan.collections[0];
    assert_eq!((p.add, p.update, p.unchanged, p.delete), (0, 2, 1, 0), "{plan:?}");
    let r = restore_backup(&*w.repo, &*w.repo, w.backups.clone(), &id, &replace(), &|_, _| {}).await.unwrap();
    assert_eq!(r.documents_written, 2);
    assert!(files.contents(&c, "d000.md").is_some(), "the removed file is back");
    assert_eq!(files.contents(&c, "d001.md").unwrap(), original, "the edited file holds the backup's content again");
    assert_eq!(dump(&w.repo).await, before);
    let again = plan_restore(&*w.repo, w.backups.clone(), &id, &replace()).await.unwrap();
    assert_eq!(again.collections[0].unchanged, 3, "{again:?}");
}

mod run {
    //! `run_restore`: the safety backup before anything is written, the restore, and the index brought in line with
    //! the restored ledger afterwards, from the cache (the embedder is a mock that fails the test if asked to embed).

    use colstore_app::SyncPorts;
    use colstore_app::backup::{RestoreRunError, RestoreTarget, run_restore};
    use colstore_domain::ports::{MockEmbedder, MockSafetyNet, SafetyCopy, SafetyError, VectorIndex};
    use colstore_testkit::InMemoryIndex;

    use super::*;

    /// A store with `notes` (10 synced documents) backed up, then one document added after the backup: a replace
    /// restore deletes it.
    async fn changed_since_backup() -> (World, BackupId) {
        let w = world();
        fill(&w.repo, "notes", 10).await;
        let id = backup(&w, &[]).await;
        fill(&w.repo, "notes", 11).await;
        (w, id)
    }

    fn ports(w: &World, index: Arc<InMemoryIndex>) -> SyncPorts {
        let mut embedder = MockEmbedder::new();
        embedder.expect_identity().returning(super::embedder);
        embedder.expect_embed().never();
        let router = colstore_app::OneIndex::router(index.clone());
        SyncPorts {
            repo: w.repo.clone(),
            ledger: w.repo.clone(),
            index,
            router,
            embedder: Arc::new(embedder),
            text: w.repo.clone(),
            store_id: *STORE,
        }
    }

    async fn keys(w: &World) -> usize {
        let q = colstore_domain::ListQuery { limit: Some(1000), ..Default::default() };
        w.repo.list_documents(&name("notes"), &q).await.unwrap().total as usize
    }

    #[tokio::test]
    async fn a_replace_keeps_a_safety_backup_then_restores_then_reprojects_from_the_cache() {
        let (w, id) = changed_since_backup().await;
        let plan = plan_restore(&*w.repo, w.backups.clone(), &id, &replace()).await.unwrap();
        let mut net = MockSafetyNet::new();
        net.expect_backup()
            .withf(|c, op| c == [name("notes")] && op == "restore")
            .times(1)
            .returning(|_, _| Ok(SafetyCopy::Backup("safe".into())));
        let index = Arc::new(InMemoryIndex::new());
        let p = ports(&w, index.clone());
        let target = RestoreTarget { repo: &*w.repo, ledger: &*w.repo, index: Some(&p), safety: Some(&net) };
        let kept = std::sync::Mutex::new(Vec::new());
        let out = run_restore(&target, w.backups.clone(), &id, &replace(), &plan, &|c| kept.lock().unwrap().push(c.clone()), &|_, _| {})
            .await
            .unwrap();
        assert_eq!(*kept.lock().unwrap(), [SafetyCopy::Backup("safe".into())]);
        assert_eq!(out.safety, Some(SafetyCopy::Backup("safe".into())));
        assert_eq!(out.report.documents_deleted, 1);
        assert_eq!(keys(&w).await, 10);
        assert_eq!(out.index.len(), 1, "{out:?}");
        assert_eq!(out.index[0].collection, name("notes"));
        assert!(out.index[0].repaired > 0, "the empty index was filled: {out:?}");
        assert!(out.index_failures.is_empty());
        let names = index.collection_names();
        assert_eq!(names.len(), 1);
        assert_eq!(index.count(&names[0], None).await.unwrap(), 10, "one point per one-chunk document");
    }

    #[tokio::test]
    async fn a_failed_safety_backup_restores_nothing() {
        let (w, id) = changed_since_backup().await;
        let plan = plan_restore(&*w.repo, w.backups.clone(), &id, &replace()).await.unwrap();
        let mut net = MockSafetyNet::new();
        net.expect_backup().times(1).returning(|_, _| Err(SafetyError("repository unreachable".into())));
        let target = RestoreTarget { repo: &*w.repo, ledger: &*w.repo, index: None, safety: Some(&net) };
        let e = run_restore(&target, w.backups.clone(), &id, &replace(), &plan, &|_| {}, &|_, _| {}).await.unwrap_err();
        assert!(matches!(e, RestoreRunError::Safety(_)), "{e}");
        assert_eq!(keys(&w).await, 11, "the document added since the backup is still there");
    }

    #[rstest::rstest]
    #[case::merge_never_overwrites(RestoreMode::Merge, true)]
    #[case::declined_with_no_backup(RestoreMode::Replace, false)]
    #[tokio::test]
    async fn no_safety_backup_when_merging_or_declined(#[case] mode: RestoreMode, #[case] with_net: bool) {
        let (w, id) = changed_since_backup().await;
        let opts = RestoreOptions { collections: Vec::new(), mode };
        let plan = plan_restore(&*w.repo, w.backups.clone(), &id, &opts).await.unwrap();
        let mut net = MockSafetyNet::new();
        net.expect_backup().never();
        let target = RestoreTarget { repo: &*w.repo, ledger: &*w.repo, index: None, safety: with_net.then_some(&net as _) };
        let out = run_restore(&target, w.backups.clone(), &id, &opts, &plan, &|_| {}, &|_, _| {}).await.unwrap();
        assert_eq!(out.safety, None);
        assert!(out.index.is_empty(), "no index given, none reprojected");
    }

    #[tokio::test]
    async fn nothing_to_overwrite_takes_no_safety_backup() {
        let w = world();
        fill(&w.repo, "notes", 3).await;
        let id = backup(&w, &[]).await;
        let plan = plan_restore(&*w.repo, w.backups.clone(), &id, &replace()).await.unwrap();
        let mut net = MockSafetyNet::new();
        net.expect_backup().never();
        let target = RestoreTarget { repo: &*w.repo, ledger: &*w.repo, index: None, safety: Some(&net) };
        let out = run_restore(&target, w.backups.clone(), &id, &replace(), &plan, &|_| {}, &|_, _| {}).await.unwrap();
        assert_eq!((out.safety, out.report.documents_written), (None, 0));
    }
}

/// `col backup`'s rotation runs after the backup and keeps this store's newest `keep_last`; another store's backups
/// in the same repository are never pruned; a dry run rotates nothing.
#[tokio::test]
async fn a_backup_then_its_rotation_keeps_this_stores_newest() {
    use colstore_app::backup::backup_and_rotate;
    let w = world();
    fill(&w.repo, "notes", 3).await;
    let other = BackupOptions { store_id: StoreId::random(), ..opts(&[]) };
    create_backup(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &other, &|_| {}).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        w.clock.advance(std::time::Duration::from_secs(5));
        let done = backup_and_rotate(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &opts(&[]), 2, &|_| {}).await.unwrap();
        ids.push(done.report.id.clone().unwrap());
        let rotation = done.rotation.expect("a rotation").expect("it succeeded");
        assert!(!rotation.removed.contains(ids.last().unwrap()), "the new backup is kept");
    }
    let listed: Vec<String> = list_backups(&*w.backups).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(listed.len(), 3, "this store's newest 2 and the other store's one: {listed:?}");
    assert!(listed.contains(&ids[2]) && listed.contains(&ids[3]));
    let dry =
        backup_and_rotate(&*w.repo, w.backups.clone(), &*w.clock, &owner(), &BackupOptions { dry_run: true, ..opts(&[]) }, 2, &|_| {})
            .await
            .unwrap();
    assert!(dry.rotation.is_none());
}
