//! The `SyncStore` conformance suite: the sync ledger as the repository keeps it, and the embedding cache.
//!
//! Every scenario is a plain `async fn(&dyn SyncFixture)`; [`sync_conformance!`](crate::sync_conformance) turns each
//! into one `#[tokio::test]` for the backend whose fixture factory it is given. The fixture hands out two views of one
//! fresh store — its [`CollectionRepo`] and its [`SyncStore`] — because the ledger MUST follow document writes made
//! through the repository. A store that also enqueues the collection's sync job on writes says so through
//! [`SyncFixture::jobs`].

use std::sync::Arc;
use std::time::Duration;

use colstore_domain::ports::{
    Clock, CollectionRepo, JobFilter, JobQueue, JobState, LedgerEntry, Projection, RepoError, SyncCounts, SyncError, SyncState, SyncStore,
};
use colstore_domain::{CollectionName, ContentHash, Dimension, DocKey, EmbedderId, Vector};

use crate::ManualClock;
use crate::repo::{create, doc, key, name, plain, put, put_one, streamed};

/// One fresh store under test, seen through the two ports that share it.
pub trait SyncFixture: Send + Sync {
    /// The store's documents (empty at first). It reads time from [`SyncFixture::clock`].
    fn repo(&self) -> Arc<dyn CollectionRepo>;

    /// The same store's ledger and embedding cache.
    fn sync(&self) -> Arc<dyn SyncStore>;

    /// The clock the store uses.
    fn clock(&self) -> Arc<ManualClock>;

    /// The queue the store enqueues each collection's sync job into on writes (the SQLite repository;
    /// `InMemoryRepo::with_jobs`). Every store has one: enqueuing is part of the contract.
    fn jobs(&self) -> Arc<dyn JobQueue>;
}

/// Turns every scenario of the `SyncStore` suite into a `#[tokio::test]` against one backend.
///
/// `$factory` is an `async fn(Arc<ManualClock>) -> Box<dyn SyncFixture>` that builds a fresh, empty store reading time
/// from the given clock. Invoke it inside a module named after the backend. The calling crate needs `tokio` (features
/// `macros`, `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// mod fake_sync {
///     colstore_testkit::sync_conformance!(super::sync_fixture);
/// }
/// ```
#[macro_export]
macro_rules! sync_conformance {
    ($factory:path) => {
        $crate::sync_conformance!(@scenarios $factory;
            put_marks_new_documents_pending,
            mark_synced_records_the_projection,
            identical_put_leaves_a_synced_document_alone,
            changed_put_is_pending_with_the_old_projection_kept,
            stale_mark_synced_changes_nothing,
            mark_synced_batch_answers_each_item_as_mark_synced,
            deleting_a_synced_document_leaves_a_pending_deletion,
            pending_deletion_of_a_recreated_document_is_not_confirmed,
            deleting_a_never_synced_document_removes_its_row,
            failed_batch_leaves_the_ledger_alone,
            mark_failed_records_error_and_attempts,
            listing_by_state_follows_the_ledger,
            mark_all_pending_marks_every_row,
            counts_per_collection_and_store,
            recent_errors_most_recent_first,
            deleting_a_collection_clears_its_ledger,
            pending_and_ledger_page_by_key,
            missing_collection_is_reported,
            writes_enqueue_one_sync_job_per_collection,
            cache_round_trip_in_input_order,
            cache_is_per_embedder,
            cache_writes_are_idempotent,
            cache_rejects_vectors_of_another_dimension,
            cache_handles_thousands_of_vectors,
            restore_ledger_writes_rows_verbatim,
        );
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let clock = std::sync::Arc::new($crate::ManualClock::at_2024());
                let f = $factory(clock).await;
                $crate::sync::$scenario(&*f).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/// The hash of a text.
pub fn hash(text: &str) -> ContentHash {
    ContentHash::of(text.as_bytes())
}

/// A projection of `text` in `chunks` chunks.
pub fn projection(text: &str, chunks: u32) -> Projection {
    Projection { content_hash: hash(text), chunk_count: chunks }
}

/// An embedder id.
///
/// # Panics
/// When `dimension` is out of range (a mistake in the scenario).
pub fn embedder(kind: &str, model: &str, dimension: u32) -> EmbedderId {
    EmbedderId {
        kind: kind.to_owned(),
        model: model.to_owned(),
        dimension: Dimension::new(dimension).unwrap_or_else(|e| panic!("bad dimension in a scenario: {e}")),
    }
}

/// A deterministic vector of `dimension` values for `seed`, with signs, fractions and exact bit patterns to round-trip.
pub fn vector(seed: u64, dimension: u32) -> Vector {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dimension)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// The ledger row of a key, if any (read with [`SyncStore::ledger`]).
///
/// # Panics
/// When the store fails.
pub async fn row(sync: &dyn SyncStore, c: &CollectionName, k: &str) -> Option<LedgerEntry> {
    let all = sync.ledger(c, None, usize::MAX).await.unwrap_or_else(|e| panic!("ledger({c}) failed: {e}"));
    all.into_iter().find(|e| e.key.as_str() == k)
}

/// The ledger row of a key, which must exist.
///
/// # Panics
/// When the store fails or has no row for the key.
pub async fn must_row(sync: &dyn SyncStore, c: &CollectionName, k: &str) -> LedgerEntry {
    row(sync, c, k).await.unwrap_or_else(|| panic!("no ledger row for {c}/{k}"))
}

/// The keys of the pending rows (and failed ones with `include_failed`), all pages.
///
/// # Panics
/// When the store fails.
pub async fn pending_keys(sync: &dyn SyncStore, c: &CollectionName, include_failed: bool) -> Vec<String> {
    let rows = sync.pending(c, include_failed, None, usize::MAX).await.unwrap_or_else(|e| panic!("pending({c}) failed: {e}"));
    rows.iter().map(|e| e.key.as_str().to_owned()).collect()
}

/// Ledger counts, which must be available.
///
/// # Panics
/// When the store fails.
pub async fn counts(sync: &dyn SyncStore, c: Option<&CollectionName>) -> SyncCounts {
    sync.counts(c.cloned()).await.unwrap_or_else(|e| panic!("counts({c:?}) failed: {e}"))
}

/// Records a projection of the document's current content, which must succeed.
///
/// # Panics
/// When the store fails or refuses.
pub async fn synced(sync: &dyn SyncStore, c: &CollectionName, k: &str, text: &str, chunks: u32) {
    let ok = sync.mark_synced(c, &key(k), Some(hash(text)), Some(projection(text, chunks))).await;
    assert!(ok.unwrap_or_else(|e| panic!("mark_synced({c}/{k}) failed: {e}")), "mark_synced({c}/{k}) was refused");
}

fn counts_of(pending: u64, synced: u64, failed: u64) -> SyncCounts {
    SyncCounts { pending, synced, failed }
}

async fn delete(repo: &dyn CollectionRepo, c: &CollectionName, keys: &[&str]) -> Vec<DocKey> {
    repo.delete_documents(c, keys.iter().map(|k| key(k)).collect()).await.unwrap_or_else(|e| panic!("delete_documents failed: {e}"))
}

fn expect_collection_not_found<T: std::fmt::Debug>(r: Result<T, SyncError>, what: &str, want: &CollectionName) {
    match r {
        Err(SyncError::CollectionNotFound(n)) => assert_eq!(&n, want, "{what}: CollectionNotFound names the wrong collection"),
        other => panic!("{what}: expected CollectionNotFound({want}), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// The ledger
// ---------------------------------------------------------------------------------------------------------------------

/// A put of new documents leaves each one pending with its current hash, nothing projected, no attempts.
pub async fn put_marks_new_documents_pending(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    let now = f.clock().now();
    put(&*repo, &c, vec![plain("b.md", "bee"), plain("a.md", "ay")]).await;
    let rows = sync.pending(&c, false, None, 100).await.expect("pending");
    let want = |k: &str, text: &str| LedgerEntry {
        collection: c.clone(),
        key: key(k),
        state: SyncState::Pending,
        current: Some(hash(text)),
        projected: None,
        attempts: 0,
        error: None,
        updated_at: now,
    };
    assert_eq!(rows, [want("a.md", "ay"), want("b.md", "bee")], "pending rows, ordered by key");
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(2, 0, 0));
}

/// `mark_synced` with the current hash records the projection: the row is synced and leaves the pending list.
pub async fn mark_synced_records_the_projection(f: &dyn SyncFixture) {
    let (repo, sync, clock) = (f.repo(), f.sync(), f.clock());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "ay"), plain("b.md", "bee")]).await;
    clock.advance(Duration::from_secs(5));
    synced(&*sync, &c, "a.md", "ay", 3).await;
    let a = must_row(&*sync, &c, "a.md").await;
    assert_eq!(
        (a.state, a.current, a.projected, a.attempts, a.error, a.updated_at),
        (SyncState::Synced, Some(hash("ay")), Some(projection("ay", 3)), 0, None, clock.now())
    );
    assert_eq!(pending_keys(&*sync, &c, true).await, ["b.md"]);
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(1, 1, 0));
    // Again: idempotent.
    synced(&*sync, &c, "a.md", "ay", 3).await;
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(1, 1, 0));
    // A document with no text is synced with nothing projected.
    assert!(sync.mark_synced(&c, &key("b.md"), Some(hash("bee")), None).await.expect("mark_synced"));
    assert_eq!(must_row(&*sync, &c, "b.md").await.projected, None);
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(0, 2, 0));
}

/// An identical put (`Unchanged`) does not touch a synced row.
pub async fn identical_put_leaves_a_synced_document_alone(f: &dyn SyncFixture) {
    let (repo, sync, clock) = (f.repo(), f.sync(), f.clock());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "ay")).await;
    synced(&*sync, &c, "a.md", "ay", 1).await;
    let before = must_row(&*sync, &c, "a.md").await;
    clock.advance(Duration::from_secs(60));
    put_one(&*repo, &c, plain("a.md", "ay")).await;
    assert_eq!(must_row(&*sync, &c, "a.md").await, before, "unchanged document, unchanged row");
    assert!(pending_keys(&*sync, &c, true).await.is_empty());
}

/// A put that changes content, metadata or tags makes the row pending again, with the current hash, the old projection
/// kept (the sync needs it to retire stale points), and attempts and error reset.
pub async fn changed_put_is_pending_with_the_old_projection_kept(f: &dyn SyncFixture) {
    let (repo, sync, clock) = (f.repo(), f.sync(), f.clock());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "v1"), plain("b.md", "same")]).await;
    synced(&*sync, &c, "a.md", "v1", 4).await;
    synced(&*sync, &c, "b.md", "same", 1).await;
    sync.mark_failed(&c, &key("a.md"), "index down".into()).await.expect("mark_failed");
    clock.advance(Duration::from_secs(60));
    put(&*repo, &c, vec![plain("a.md", "v2"), doc("b.md", "same", r#"{"lang":"en"}"#, &[])]).await;
    let a = must_row(&*sync, &c, "a.md").await;
    assert_eq!(
        (a.state, a.current, a.projected, a.attempts, a.error, a.updated_at),
        (SyncState::Pending, Some(hash("v2")), Some(projection("v1", 4)), 0, None, clock.now())
    );
    let b = must_row(&*sync, &c, "b.md").await;
    assert_eq!(
        (b.state, b.current, b.projected),
        (SyncState::Pending, Some(hash("same")), Some(projection("same", 1))),
        "metadata changed"
    );
    assert_eq!(pending_keys(&*sync, &c, false).await, ["a.md", "b.md"]);
}

/// `mark_synced` with a hash the document no longer has changes nothing and returns false.
pub async fn stale_mark_synced_changes_nothing(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "v1")).await;
    let read = sync.pending(&c, false, None, 10).await.expect("pending");
    let expected = read[0].current;
    put_one(&*repo, &c, plain("a.md", "v2")).await;
    let before = must_row(&*sync, &c, "a.md").await;
    let ok = sync.mark_synced(&c, &key("a.md"), expected, Some(projection("v1", 2))).await.expect("mark_synced");
    assert!(!ok, "the document changed since the projection was made");
    assert_eq!(must_row(&*sync, &c, "a.md").await, before, "still pending, nothing projected");
    // Nor can a missing document be marked synced.
    let ok = sync.mark_synced(&c, &key("ghost.md"), Some(hash("boo")), Some(projection("boo", 1))).await.expect("mark_synced");
    assert!(!ok);
    assert!(row(&*sync, &c, "ghost.md").await.is_none(), "no row appears for a document that does not exist");
    // A deletion cannot be confirmed while the document exists.
    assert!(!sync.mark_synced(&c, &key("a.md"), None, None).await.expect("mark_synced"));
    assert_eq!(must_row(&*sync, &c, "a.md").await, before);
}

/// `mark_synced_batch` answers and changes each item exactly as `mark_synced` of it alone would, in input order, in
/// one call that mixes projections and deletions: a current document is synced, a stale or missing one is not, a
/// deletion is confirmed only for a document that is gone.
pub async fn mark_synced_batch_answers_each_item_as_mark_synced(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    put(
        &*repo,
        &c,
        vec![plain("a.md", "ay"), plain("b.md", "v1"), plain("gone.md", "bye"), plain("kept.md", "here"), plain("z.md", "zed")],
    )
    .await;
    synced(&*sync, &c, "gone.md", "bye", 1).await;
    synced(&*sync, &c, "kept.md", "here", 1).await;
    delete(&*repo, &c, &["gone.md"]).await;
    put_one(&*repo, &c, plain("b.md", "v2")).await;
    let b_before = must_row(&*sync, &c, "b.md").await;
    let kept_before = must_row(&*sync, &c, "kept.md").await;
    let items = vec![
        (key("z.md"), Some(hash("zed")), Some(projection("zed", 3))),
        (key("gone.md"), None, None),
        (key("b.md"), Some(hash("v1")), Some(projection("v1", 2))),
        (key("ghost.md"), Some(hash("boo")), Some(projection("boo", 1))),
        (key("kept.md"), None, None),
        (key("a.md"), Some(hash("ay")), None),
    ];
    let answers = sync.mark_synced_batch(&c, items).await.expect("mark_synced_batch");
    assert_eq!(answers, [true, true, false, false, false, true], "one answer per item, in input order");
    let z = must_row(&*sync, &c, "z.md").await;
    assert_eq!((z.state, z.projected), (SyncState::Synced, Some(projection("zed", 3))), "z.md synced with its projection");
    let a = must_row(&*sync, &c, "a.md").await;
    assert_eq!((a.state, a.projected), (SyncState::Synced, None), "a.md synced with nothing projected (no chunks)");
    assert!(row(&*sync, &c, "gone.md").await.is_none(), "the confirmed deletion's row is gone");
    assert_eq!(must_row(&*sync, &c, "b.md").await, b_before, "the stale item changed nothing");
    assert_eq!(must_row(&*sync, &c, "kept.md").await, kept_before, "a deletion of a document that exists changed nothing");
    assert!(row(&*sync, &c, "ghost.md").await.is_none(), "no row for a document that does not exist");
    assert!(sync.mark_synced_batch(&c, Vec::new()).await.expect("an empty batch").is_empty());
}

/// Deleting a projected document leaves a pending deletion (current `None`, projection kept) until `mark_synced(None)`
/// confirms it; then the row goes.
pub async fn deleting_a_synced_document_leaves_a_pending_deletion(f: &dyn SyncFixture) {
    let (repo, sync, clock) = (f.repo(), f.sync(), f.clock());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "ay"), plain("b.md", "bee")]).await;
    synced(&*sync, &c, "a.md", "ay", 2).await;
    synced(&*sync, &c, "b.md", "bee", 1).await;
    sync.mark_failed(&c, &key("a.md"), "late failure".into()).await.expect("mark_failed");
    clock.advance(Duration::from_secs(10));
    delete(&*repo, &c, &["a.md"]).await;
    let a = must_row(&*sync, &c, "a.md").await;
    assert_eq!(
        (a.state, a.current, a.projected, a.attempts, a.error, a.updated_at),
        (SyncState::Pending, None, Some(projection("ay", 2)), 0, None, clock.now())
    );
    assert_eq!(pending_keys(&*sync, &c, false).await, ["a.md"]);
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(1, 1, 0), "pending counts pending deletions");
    assert!(sync.mark_synced(&c, &key("a.md"), None, None).await.expect("mark_synced"), "the deletion is projected");
    assert!(row(&*sync, &c, "a.md").await.is_none(), "the row is gone");
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(0, 1, 0));
    assert!(sync.mark_synced(&c, &key("a.md"), None, None).await.expect("mark_synced"), "confirming again is harmless");
}

/// A pending deletion whose document is put again becomes a pending update (projection kept); confirming the deletion
/// is then refused.
pub async fn pending_deletion_of_a_recreated_document_is_not_confirmed(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "v1")).await;
    synced(&*sync, &c, "a.md", "v1", 2).await;
    delete(&*repo, &c, &["a.md"]).await;
    put_one(&*repo, &c, plain("a.md", "v2")).await;
    let a = must_row(&*sync, &c, "a.md").await;
    assert_eq!((a.state, a.current, a.projected), (SyncState::Pending, Some(hash("v2")), Some(projection("v1", 2))));
    assert!(!sync.mark_synced(&c, &key("a.md"), None, None).await.expect("mark_synced"), "the document is back");
    assert_eq!(must_row(&*sync, &c, "a.md").await, a, "nothing changed");
}

/// Deleting a document that was never projected leaves nothing to do: its row goes with it.
pub async fn deleting_a_never_synced_document_removes_its_row(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "ay"), plain("b.md", "bee"), plain("c.md", "sea")]).await;
    sync.mark_failed(&c, &key("b.md"), "embedder down".into()).await.expect("mark_failed");
    assert!(sync.mark_synced(&c, &key("c.md"), Some(hash("sea")), None).await.expect("mark_synced"));
    delete(&*repo, &c, &["a.md", "b.md", "c.md", "never.md"]).await;
    assert!(sync.ledger(&c, None, 100).await.expect("ledger").is_empty(), "pending, failed and synced-without-projection rows go");
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(0, 0, 0));
}

/// A batch that fails writes no ledger row either.
pub async fn failed_batch_leaves_the_ledger_alone(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "v1")).await;
    synced(&*sync, &c, "a.md", "v1", 1).await;
    let r = repo.put_batch(&c, vec![plain("a.md", "v2"), plain("n.md", "new"), plain("n.md", "again")]).await;
    assert!(matches!(r, Err(RepoError::DuplicateKey(_))), "{r:?}");
    let r = repo.put_batch(&c, vec![plain("a.md", "v3"), streamed("s.md", vec![Err(std::io::Error::other("disk gone"))])]).await;
    assert!(matches!(r, Err(RepoError::ContentRead { .. })), "{r:?}");
    let rows = sync.ledger(&c, None, 100).await.expect("ledger");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].state, rows[0].current), (SyncState::Synced, Some(hash("v1"))));
}

/// `mark_failed` records the error and counts attempts; failed rows are listed only with `include_failed` and in
/// `recent_errors`; a success or a new put resets them.
pub async fn mark_failed_records_error_and_attempts(f: &dyn SyncFixture) {
    let (repo, sync, clock) = (f.repo(), f.sync(), f.clock());
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "ay"), plain("b.md", "bee"), plain("c.md", "sea")]).await;
    sync.mark_failed(&c, &key("b.md"), "timeout".into()).await.expect("mark_failed");
    clock.advance(Duration::from_secs(1));
    sync.mark_failed(&c, &key("b.md"), "rate limited".into()).await.expect("mark_failed");
    let b = must_row(&*sync, &c, "b.md").await;
    assert_eq!(
        (b.state, b.attempts, b.error.as_deref(), b.current, b.updated_at),
        (SyncState::Failed, 2, Some("rate limited"), Some(hash("bee")), clock.now())
    );
    assert_eq!(pending_keys(&*sync, &c, false).await, ["a.md", "c.md"]);
    assert_eq!(pending_keys(&*sync, &c, true).await, ["a.md", "b.md", "c.md"]);
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(2, 0, 1));
    let errors = sync.recent_errors(Some(c.clone()), 10).await.expect("recent_errors");
    assert_eq!(errors, std::slice::from_ref(&b));
    // A failure of a key without a row changes nothing.
    sync.mark_failed(&c, &key("ghost.md"), "x".into()).await.expect("mark_failed");
    assert!(row(&*sync, &c, "ghost.md").await.is_none());

    synced(&*sync, &c, "b.md", "bee", 1).await;
    let b = must_row(&*sync, &c, "b.md").await;
    assert_eq!((b.state, b.attempts, b.error), (SyncState::Synced, 0, None), "success clears the failure");
    sync.mark_failed(&c, &key("c.md"), "boom".into()).await.expect("mark_failed");
    put_one(&*repo, &c, plain("c.md", "sea 2")).await;
    let c_row = must_row(&*sync, &c, "c.md").await;
    assert_eq!((c_row.state, c_row.attempts, c_row.error), (SyncState::Pending, 0, None), "a new version starts afresh");
}

/// `col ls --where state:…`: the repository's listing by sync state agrees with the ledger, alone and mixed with
/// other conditions (the reference is [`ListQuery::page_in`] over the ledger's states).
pub async fn listing_by_state_follows_the_ledger(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    let docs = (0..12).map(|i| doc(&format!("n{i:02}.md"), format!("text {i}"), "{}", if i % 2 == 0 { &["x"] } else { &[] })).collect();
    put(&*repo, &c, docs).await;
    for i in [0, 1, 2, 3, 4, 5] {
        synced(&*sync, &c, &format!("n{i:02}.md"), &format!("text {i}"), 1).await;
    }
    for i in [6, 7, 8] {
        sync.mark_failed(&c, &key(&format!("n{i:02}.md")), "timeout".into()).await.expect("mark_failed");
    }
    put_one(&*repo, &c, plain("n03.md", "text 3, changed")).await;
    let all = repo.list_documents(&c, &colstore_domain::ListQuery::default()).await.expect("list").items;
    let mut with_state = Vec::new();
    for d in &all {
        with_state.push((d.clone(), Some(must_row(&*sync, &c, d.key.as_str()).await.state)));
    }
    let now = colstore_domain::Timestamp::from_millis(0);
    let cases = [
        ("state:failed", 3),
        ("state:synced", 5),
        ("state:pending", 4),
        ("not state:synced", 7),
        ("state:failed or tag:x", 7),
        ("tag:x and not state:pending", 5),
        ("STATE:Synced and key:n0", 5),
    ];
    for (expr, n) in cases {
        let q = colstore_domain::ListQuery { expr: colstore_domain::DocFilter::parse(expr, now).unwrap(), ..Default::default() };
        let got: Vec<String> = repo.list_documents(&c, &q).await.expect("list").items.iter().map(|d| d.key.to_string()).collect();
        let want: Vec<String> = q.page_in(with_state.clone()).items.iter().map(|d| d.key.to_string()).collect();
        assert_eq!(got, want, "{expr}");
        assert_eq!(got.len(), n, "{expr}: {got:?}");
    }
}

/// `mark_all_pending` makes every row pending (projections kept, failures cleared) and returns how many rows there are.
pub async fn mark_all_pending_marks_every_row(f: &dyn SyncFixture) {
    let (repo, sync, clock) = (f.repo(), f.sync(), f.clock());
    let c = create(&*repo, "notes").await;
    let other = create(&*repo, "other").await;
    put(&*repo, &c, vec![plain("a.md", "ay"), plain("b.md", "bee"), plain("c.md", "sea"), plain("d.md", "dee")]).await;
    put_one(&*repo, &other, plain("x.md", "ex")).await;
    synced(&*sync, &c, "a.md", "ay", 1).await;
    synced(&*sync, &c, "b.md", "bee", 2).await;
    synced(&*sync, &c, "d.md", "dee", 1).await;
    synced(&*sync, &other, "x.md", "ex", 1).await;
    sync.mark_failed(&c, &key("b.md"), "boom".into()).await.expect("mark_failed");
    delete(&*repo, &c, &["d.md"]).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(sync.mark_all_pending(&c).await.expect("mark_all_pending"), 4, "a, b, c and the pending deletion of d");
    let rows = sync.ledger(&c, None, 100).await.expect("ledger");
    assert!(rows.iter().all(|r| r.state == SyncState::Pending && r.attempts == 0 && r.error.is_none() && r.updated_at == clock.now()));
    let projected: Vec<_> = rows.iter().map(|r| (r.key.as_str().to_owned(), r.projected)).collect();
    assert_eq!(
        projected,
        [
            ("a.md".to_owned(), Some(projection("ay", 1))),
            ("b.md".to_owned(), Some(projection("bee", 2))),
            ("c.md".to_owned(), None),
            ("d.md".to_owned(), Some(projection("dee", 1)))
        ],
        "projections are kept: the sync retires what they name"
    );
    assert_eq!(counts(&*sync, Some(&other)).await, counts_of(0, 1, 0), "other collections are untouched");
    let empty = create(&*repo, "empty").await;
    assert_eq!(sync.mark_all_pending(&empty).await.expect("mark_all_pending"), 0);
}

/// Counts per collection add up to the store's.
pub async fn counts_per_collection_and_store(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let a = create(&*repo, "alpha").await;
    let b = create(&*repo, "beta").await;
    let _empty = create(&*repo, "gamma").await;
    put(&*repo, &a, vec![plain("1", "one"), plain("2", "two"), plain("3", "three")]).await;
    put(&*repo, &b, vec![plain("1", "one"), plain("2", "two")]).await;
    synced(&*sync, &a, "1", "one", 1).await;
    synced(&*sync, &a, "2", "two", 1).await;
    sync.mark_failed(&a, &key("3"), "e".into()).await.expect("mark_failed");
    synced(&*sync, &b, "1", "one", 1).await;
    delete(&*repo, &a, &["1"]).await;
    assert_eq!(counts(&*sync, Some(&a)).await, counts_of(1, 1, 1));
    assert_eq!(counts(&*sync, Some(&b)).await, counts_of(1, 1, 0));
    assert_eq!(counts(&*sync, Some(&name("gamma"))).await, counts_of(0, 0, 0));
    assert_eq!(counts(&*sync, None).await, counts_of(2, 2, 1));
}

/// `recent_errors` lists failed rows, most recent first (ties by collection, then key), across the store or in one
/// collection, up to the limit.
pub async fn recent_errors_most_recent_first(f: &dyn SyncFixture) {
    let (repo, sync, clock) = (f.repo(), f.sync(), f.clock());
    let a = create(&*repo, "alpha").await;
    let b = create(&*repo, "beta").await;
    put(&*repo, &a, vec![plain("x", "1"), plain("y", "2"), plain("z", "3")]).await;
    put(&*repo, &b, vec![plain("x", "1")]).await;
    sync.mark_failed(&a, &key("y"), "first".into()).await.expect("mark_failed");
    clock.advance(Duration::from_secs(1));
    sync.mark_failed(&a, &key("z"), "second".into()).await.expect("mark_failed");
    sync.mark_failed(&a, &key("x"), "second too".into()).await.expect("mark_failed");
    clock.advance(Duration::from_secs(1));
    sync.mark_failed(&b, &key("x"), "third".into()).await.expect("mark_failed");
    let label = |rows: Vec<LedgerEntry>| -> Vec<String> {
        rows.iter().map(|r| format!("{}/{}: {}", r.collection, r.key, r.error.clone().unwrap_or_default())).collect()
    };
    let all = sync.recent_errors(None, 10).await.expect("recent_errors");
    assert_eq!(label(all), ["beta/x: third", "alpha/x: second too", "alpha/z: second", "alpha/y: first"]);
    assert_eq!(label(sync.recent_errors(None, 2).await.expect("recent_errors")), ["beta/x: third", "alpha/x: second too"]);
    assert_eq!(
        label(sync.recent_errors(Some(a.clone()), 10).await.expect("recent_errors")),
        ["alpha/x: second too", "alpha/z: second", "alpha/y: first"]
    );
    assert!(sync.recent_errors(Some(a), 0).await.expect("recent_errors").is_empty());
}

/// Deleting a collection deletes its ledger; a collection created again under the name starts empty.
pub async fn deleting_a_collection_clears_its_ledger(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    let keep = create(&*repo, "keep").await;
    put(&*repo, &c, vec![plain("a.md", "ay"), plain("b.md", "bee"), plain("c.md", "sea")]).await;
    put_one(&*repo, &keep, plain("k.md", "kay")).await;
    synced(&*sync, &c, "a.md", "ay", 1).await;
    synced(&*sync, &c, "b.md", "bee", 1).await;
    delete(&*repo, &c, &["b.md"]).await;
    repo.delete_collection(&c).await.expect("delete_collection");
    assert_eq!(counts(&*sync, None).await, counts_of(1, 0, 0), "only the other collection's row is left");
    expect_collection_not_found(sync.ledger(&c, None, 10).await, "ledger of a deleted collection", &c);
    let c = create(&*repo, "notes").await;
    assert!(sync.ledger(&c, None, 10).await.expect("ledger").is_empty(), "a new collection starts with an empty ledger");
    assert_eq!(counts(&*sync, Some(&c)).await, counts_of(0, 0, 0));
}

/// `pending` and `ledger` page by key (byte order) with `after` and `limit`.
pub async fn pending_and_ledger_page_by_key(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "notes").await;
    let mut keys: Vec<String> = (0..23).map(|i| format!("doc/{i:02}.md")).collect();
    keys.extend(["Z.md".to_owned(), "é.md".to_owned(), "doc/1/deeper.md".to_owned()]);
    put(&*repo, &c, keys.iter().map(|k| plain(k, k)).collect()).await;
    let synced_keys: Vec<String> = (0..23).step_by(3).map(|i| format!("doc/{i:02}.md")).collect();
    for k in &synced_keys {
        synced(&*sync, &c, k, k, 1).await;
    }
    let mut all_sorted = keys.clone();
    all_sorted.sort_unstable();
    let pending_sorted: Vec<String> = all_sorted.iter().filter(|k| !synced_keys.contains(k)).cloned().collect();

    let mut paged = Vec::new();
    let mut after: Option<DocKey> = None;
    loop {
        let page = sync.pending(&c, false, after.clone(), 4).await.expect("pending");
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        paged.extend(page.iter().map(|e| e.key.as_str().to_owned()));
    }
    assert_eq!(paged, pending_sorted, "pending rows in byte order, each once");

    let mut paged = Vec::new();
    let mut after: Option<DocKey> = None;
    loop {
        let page = sync.ledger(&c, after.clone(), 5).await.expect("ledger");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        paged.extend(page.iter().map(|e| e.key.as_str().to_owned()));
    }
    assert_eq!(paged, all_sorted, "every row in byte order, each once");
    assert!(sync.pending(&c, true, None, 0).await.expect("pending").is_empty(), "limit 0");
    let tail = sync.ledger(&c, Some(key("doc/22.md")), 10).await.expect("ledger");
    assert_eq!(tail.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["é.md"], "after a key that sorts near the end");
}

/// Every ledger method reports a missing collection as `CollectionNotFound`.
pub async fn missing_collection_is_reported(f: &dyn SyncFixture) {
    let sync = f.sync();
    let _ = create(&*f.repo(), "exists").await;
    let c = name("missing");
    expect_collection_not_found(sync.pending(&c, true, None, 10).await, "pending", &c);
    expect_collection_not_found(sync.mark_synced(&c, &key("a"), Some(hash("a")), None).await, "mark_synced", &c);
    expect_collection_not_found(sync.mark_synced(&c, &key("a"), None, None).await, "mark_synced(None)", &c);
    expect_collection_not_found(sync.mark_failed(&c, &key("a"), "e".into()).await, "mark_failed", &c);
    expect_collection_not_found(sync.mark_all_pending(&c).await, "mark_all_pending", &c);
    expect_collection_not_found(sync.counts(Some(c.clone())).await, "counts", &c);
    expect_collection_not_found(sync.recent_errors(Some(c.clone()), 10).await, "recent_errors", &c);
    expect_collection_not_found(sync.ledger(&c, None, 10).await, "ledger", &c);
}

/// A write that leaves documents pending enqueues the collection's sync job — `{kind: "sync", dedup_key:
/// "sync:<collection>", payload: {"collection": …}, max_attempts: 10}` — at most one pending per collection; writes
/// that leave nothing to project enqueue nothing.
pub async fn writes_enqueue_one_sync_job_per_collection(f: &dyn SyncFixture) {
    let jobs = f.jobs();
    let (repo, sync) = (f.repo(), f.sync());
    let pending_jobs =
        || async { jobs.list(JobFilter { states: vec![JobState::Pending], ..JobFilter::default() }).await.expect("list jobs") };
    let c = create(&*repo, "notes").await;
    let other = create(&*repo, "other").await;
    assert!(pending_jobs().await.is_empty(), "creating a collection enqueues nothing");
    put(&*repo, &c, vec![plain("a.md", "ay"), plain("b.md", "bee")]).await;
    put_one(&*repo, &c, plain("c.md", "sea")).await;
    let listed = pending_jobs().await;
    assert_eq!(listed.len(), 1, "one job per collection: {listed:?}");
    let job = &listed[0];
    assert_eq!(job.spec.kind, "sync");
    assert_eq!(job.spec.dedup_key.as_deref(), Some("sync:notes"));
    assert_eq!(job.spec.payload, serde_json::json!({ "collection": "notes" }));
    assert_eq!(job.spec.max_attempts, 10);
    assert_eq!(job.spec.run_after, Some(f.clock().now()), "due at once");

    // The worker takes it; a write after that needs a new job (the running one may have read the ledger already).
    let lease = jobs.claim(&crate::queue::worker("w"), vec!["sync".into()], 10, crate::queue::LEASE).await.expect("claim");
    assert_eq!(lease.len(), 1);
    put_one(&*repo, &c, plain("a.md", "ay")).await;
    assert!(pending_jobs().await.is_empty(), "an unchanged put leaves nothing to project");
    synced(&*sync, &c, "a.md", "ay", 1).await;
    delete(&*repo, &c, &["b.md"]).await;
    assert!(pending_jobs().await.is_empty(), "deleting an unprojected document leaves nothing to project");
    delete(&*repo, &c, &["a.md"]).await;
    let listed = pending_jobs().await;
    assert_eq!(listed.len(), 1, "deleting a projected document needs a sync");
    assert_ne!(listed[0].id, job.id);
    put_one(&*repo, &other, plain("x.md", "ex")).await;
    sync.mark_all_pending(&c).await.expect("mark_all_pending");
    let mut keys: Vec<_> = pending_jobs().await.iter().filter_map(|j| j.spec.dedup_key.clone()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["sync:notes", "sync:other"]);
}

// ---------------------------------------------------------------------------------------------------------------------
// The embedding cache
// ---------------------------------------------------------------------------------------------------------------------

/// Cached vectors come back exactly, in input order, `None` where missing, duplicates answered each time.
pub async fn cache_round_trip_in_input_order(f: &dyn SyncFixture) {
    let sync = f.sync();
    let e = embedder("hash", "", 8);
    let (h1, h2, h3, missing) = (hash("one"), hash("two"), hash("three"), hash("never cached"));
    let (v1, v2, v3) = (vector(1, 8), vector(2, 8), vec![0.0, -0.0, 1.5, -1e-30, f32::MAX, f32::MIN_POSITIVE, 1e30, -3.25]);
    sync.cache_vectors(&e, vec![(h1, v1.clone()), (h2, v2.clone()), (h3, v3.clone())]).await.expect("cache_vectors");
    let got = sync.cached_vectors(&e, vec![h2, missing, h1, h3, h2]).await.expect("cached_vectors");
    assert_eq!(got, [Some(v2.clone()), None, Some(v1), Some(v3.clone()), Some(v2)]);
    let bits = |v: &Vector| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(got[3].as_ref().expect("cached")), bits(&v3), "bit-exact, signed zero included");
    assert!(sync.cached_vectors(&e, Vec::new()).await.expect("cached_vectors").is_empty());
    sync.cache_vectors(&e, Vec::new()).await.expect("caching nothing is fine");
}

/// The cache never answers with another embedder's vector: kind, model and dimension all count.
pub async fn cache_is_per_embedder(f: &dyn SyncFixture) {
    let sync = f.sync();
    let h = hash("chunk");
    let e = embedder("openai", "text-embedding-3-small", 4);
    sync.cache_vectors(&e, vec![(h, vector(1, 4))]).await.expect("cache_vectors");
    for other in [embedder("openai", "text-embedding-3-large", 4), embedder("hash", "text-embedding-3-small", 4), embedder("openai", "", 4)]
    {
        assert_eq!(sync.cached_vectors(&other, vec![h]).await.expect("cached_vectors"), [None], "{other}");
    }
    let wider = embedder("openai", "text-embedding-3-small", 8);
    assert_eq!(sync.cached_vectors(&wider, vec![h]).await.expect("cached_vectors"), [None], "another dimension is another embedder");
    sync.cache_vectors(&wider, vec![(h, vector(2, 8))]).await.expect("cache_vectors");
    assert_eq!(sync.cached_vectors(&e, vec![h]).await.expect("cached_vectors"), [Some(vector(1, 4))]);
    assert_eq!(sync.cached_vectors(&wider, vec![h]).await.expect("cached_vectors"), [Some(vector(2, 8))]);
}

/// Caching is idempotent: storing a key again is accepted and keeps the first vector.
pub async fn cache_writes_are_idempotent(f: &dyn SyncFixture) {
    let sync = f.sync();
    let e = embedder("hash", "", 4);
    let h = hash("chunk");
    sync.cache_vectors(&e, vec![(h, vector(1, 4))]).await.expect("cache_vectors");
    sync.cache_vectors(&e, vec![(h, vector(1, 4)), (hash("other"), vector(3, 4))]).await.expect("the same again");
    sync.cache_vectors(&e, vec![(h, vector(2, 4))]).await.expect("another vector for a cached key");
    assert_eq!(sync.cached_vectors(&e, vec![h, hash("other")]).await.expect("cached_vectors"), [Some(vector(1, 4)), Some(vector(3, 4))]);
}

/// A vector whose length is not the embedder's dimension is refused with `DimensionMismatch`, and nothing of the call is
/// stored.
pub async fn cache_rejects_vectors_of_another_dimension(f: &dyn SyncFixture) {
    let sync = f.sync();
    let e = embedder("hash", "", 4);
    let r = sync.cache_vectors(&e, vec![(hash("ok"), vector(1, 4)), (hash("short"), vector(2, 3))]).await;
    match r {
        Err(SyncError::DimensionMismatch { expected, got }) => assert_eq!((expected, got), (4, 3)),
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
    assert_eq!(sync.cached_vectors(&e, vec![hash("ok"), hash("short")]).await.expect("cached_vectors"), [None, None]);
}

/// Thousands of vectors go in with one call and come back in order. (How fast is `cargo xtask bench`'s business: a
/// time bound here would fail on a loaded machine and prove little.)
pub async fn cache_handles_thousands_of_vectors(f: &dyn SyncFixture) {
    const N: u64 = 3000;
    const DIM: u32 = 384;
    let sync = f.sync();
    let e = embedder("hash", "", DIM);
    let entries: Vec<(ContentHash, Vector)> = (0..N).map(|i| (hash(&format!("chunk {i}")), vector(i, DIM))).collect();
    sync.cache_vectors(&e, entries.clone()).await.expect("cache_vectors");
    let mut asked: Vec<ContentHash> = entries.iter().rev().map(|(h, _)| *h).collect();
    asked.push(hash("not cached"));
    let got = sync.cached_vectors(&e, asked).await.expect("cached_vectors");
    assert_eq!(got.len() as u64, N + 1);
    assert_eq!(got[N as usize], None);
    for (i, (_, v)) in entries.iter().rev().enumerate() {
        assert_eq!(got[i].as_ref(), Some(v), "vector {i} from the end");
    }
}

/// Restored ledger rows keep state, projection, attempts, error and time; the current hash stays the document's.
pub async fn restore_ledger_writes_rows_verbatim(f: &dyn SyncFixture) {
    let (repo, sync) = (f.repo(), f.sync());
    let c = create(&*repo, "restored").await;
    put(&*repo, &c, vec![plain("a.md", "alpha"), plain("b.md", "beta")]).await;
    let at = colstore_domain::Timestamp::from_millis(42_000);
    let rows = vec![
        LedgerEntry {
            collection: name("elsewhere"),
            key: key("a.md"),
            state: SyncState::Synced,
            current: None,
            projected: Some(projection("alpha", 3)),
            attempts: 0,
            error: None,
            updated_at: at,
        },
        LedgerEntry {
            collection: c.clone(),
            key: key("b.md"),
            state: SyncState::Failed,
            current: None,
            projected: None,
            attempts: 4,
            error: Some("the embedder said no".into()),
            updated_at: at,
        },
        // A pending deletion: a row without a document.
        LedgerEntry {
            collection: c.clone(),
            key: key("gone.md"),
            state: SyncState::Pending,
            current: None,
            projected: Some(projection("gone", 1)),
            attempts: 0,
            error: None,
            updated_at: at,
        },
    ];
    sync.restore_ledger(&c, rows.clone()).await.expect("restore_ledger");
    let a = must_row(&*sync, &c, "a.md").await;
    assert_eq!((a.state, a.projected, a.attempts, a.updated_at), (SyncState::Synced, Some(projection("alpha", 3)), 0, at));
    assert_eq!(a.collection, c, "the row belongs to the collection restored into");
    assert_eq!(a.current, Some(hash("alpha")), "current is the document's hash");
    let b = must_row(&*sync, &c, "b.md").await;
    assert_eq!((b.state, b.attempts, b.error.as_deref()), (SyncState::Failed, 4, Some("the embedder said no")));
    let gone = must_row(&*sync, &c, "gone.md").await;
    assert_eq!((gone.state, gone.current), (SyncState::Pending, None));
    assert!(matches!(sync.restore_ledger(&name("nope"), rows).await, Err(SyncError::CollectionNotFound(_))));
}
