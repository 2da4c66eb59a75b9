//! The `CollectionRepo` conformance suite.
//!
//! Every scenario is a plain `async fn(&dyn RepoFixture)`; [`repo_conformance!`](crate::repo_conformance) turns each
//! into one `#[tokio::test]` for the backend whose fixture factory it is given. Each scenario gets a fresh, empty
//! repository and its own [`ManualClock`], so there is no shared state and no sleeping.
//!
//! Scenarios adapt to [`RepoCapabilities`]: deduplication and garbage collection are only asserted for
//! content-addressed repositories, and `stored_bytes` may be below `unique_bytes` only with compression.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{
    Clock, CollectionRepo, CorruptDocument, ReadDocument, RepoCapabilities, RepoError, SourceRecord, SourceStamp, StorageStats,
    VerifyEvent, collect_stream,
};
use colstore_domain::{
    ChunkingSettings, Collection, CollectionName, CollectionSettings, CollectionSpec, Content, ContentHash, ContentHasher, ContentStream,
    Dimension, Distance, DocFilter, DocKey, DocumentMeta, EmbedderId, FieldPath, ListQuery, Metadata, NewDocument, Page, PutOutcome,
    PutStatus, SortField, SortOrder, Tag, Tags, TimeRange, Timestamp, VectorSettings,
};
use futures::StreamExt;
use futures::stream;

use crate::ManualClock;

/// One fresh repository under test, plus the hooks the suite needs to reach behind its back.
#[async_trait]
pub trait RepoFixture: Send + Sync {
    /// The repository under test (empty at first). It reads time from [`RepoFixture::clock`].
    fn repo(&self) -> Arc<dyn CollectionRepo>;

    /// The clock the repository uses.
    fn clock(&self) -> Arc<ManualClock>;

    /// Damages the stored bytes of a document without going through the repository, as disk rot or a bad edit would.
    /// The document's recorded hash stays; its bytes change (same length is fine).
    async fn corrupt(&self, collection: &CollectionName, key: &DocKey);
}

/// Turns every scenario of the `CollectionRepo` suite into a `#[tokio::test]` against one backend.
///
/// `$factory` is an `async fn(Arc<ManualClock>) -> Box<dyn RepoFixture>` that builds a fresh, empty repository reading
/// time from the given clock. Invoke it inside a module named after the backend, so tests read `sqlite::put_then_get`.
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// mod fake {
///     colstore_testkit::repo_conformance!(super::fixture);
/// }
/// ```
#[macro_export]
macro_rules! repo_conformance {
    ($factory:path) => {
        $crate::repo_conformance!(@scenarios $factory;
            create_and_get_collection,
            update_settings_replaces_settings_only,
            create_existing_collection_fails_and_keeps_original,
            list_collections_sorted_with_counts,
            collection_counts_follow_writes,
            missing_collection_is_reported_by_every_method,
            delete_collection_removes_documents_and_leaves_garbage,
            collections_are_independent,
            put_then_get_round_trip,
            identical_put_is_unchanged,
            content_change_bumps_version,
            metadata_only_change_bumps_version,
            tags_only_change_bumps_version,
            batch_outcomes_in_input_order,
            same_content_twice_in_one_batch,
            duplicate_key_in_batch_writes_nothing,
            failing_stream_writes_nothing,
            empty_content,
            streamed_content_in_small_chunks,
            large_streamed_content_round_trip,
            unicode_keys_round_trip_and_sort_by_bytes,
            metadata_json_round_trips_exactly,
            missing_document_is_reported,
            read_documents_answers_like_read_content,
            delete_documents_returns_existing_keys_in_order,
            delete_then_put_starts_at_version_one,
            list_sorted_by_key_in_byte_order,
            list_filters_by_tags,
            list_filters_by_metadata_like_a_full_scan,
            list_filters_by_time_ranges,
            list_sorts_with_key_tie_break,
            list_pages_with_total,
            list_filters_by_key_prefix_literally,
            list_filter_language_like_a_full_scan,
            list_filter_language_on_indexed_fields_like_a_full_scan,
            flush_keeps_everything,
            list_pages_with_cursors_like_a_full_scan,
            equal_content_is_deduplicated_across_collections,
            gc_collects_replaced_content,
            gc_keeps_content_until_last_reference_goes,
            content_put_again_after_gc_is_readable,
            stats_per_collection_and_store,
            stored_bytes_follow_capabilities,
            verify_clean_store_accounts_for_every_document,
            verify_reports_corrupted_document,
            verify_reports_every_document_of_corrupted_shared_content,
            verify_scoped_to_one_collection,
            concurrent_writers_in_one_collection,
            concurrent_updates_of_one_key_count_every_version,
            snapshot_shows_one_moment,
            snapshot_pages_documents_and_reads_content,
            snapshot_streams_contents_of_its_moment,
            restore_documents_writes_verbatim,
            restore_document_stream_writes_verbatim_or_nothing,
            restore_documents_refuses_content_that_does_not_match,
            restore_collection_creates_or_updates_settings,
            source_stamps_are_answered_only_for_the_version_recorded,
        );
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let clock = std::sync::Arc::new($crate::ManualClock::at_2024());
                let f = $factory(clock).await;
                $crate::repo::$scenario(&*f).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/// One hour, the step the scenarios move the manual clock by.
pub const HOUR: Duration = Duration::from_secs(3600);

/// A collection name.
///
/// # Panics
/// When `s` is not a valid name (a mistake in the scenario).
pub fn name(s: &str) -> CollectionName {
    CollectionName::parse(s).unwrap_or_else(|e| panic!("bad collection name in a scenario: {e}"))
}

/// A document key.
///
/// # Panics
/// When `s` is not a valid key (a mistake in the scenario).
pub fn key(s: &str) -> DocKey {
    DocKey::parse(s).unwrap_or_else(|e| panic!("bad key in a scenario: {e}"))
}

/// A tag.
///
/// # Panics
/// When `s` is not a valid tag.
pub fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap_or_else(|e| panic!("bad tag in a scenario: {e}"))
}

/// A tag set.
///
/// # Panics
/// When one of `t` is not a valid tag.
pub fn tags(t: &[&str]) -> Tags {
    Tags::parse_all(t).unwrap_or_else(|e| panic!("bad tag in a scenario: {e}"))
}

/// Metadata from JSON text.
///
/// # Panics
/// When `json` is not a JSON object.
pub fn meta(json: &str) -> Metadata {
    Metadata::parse_json(json).unwrap_or_else(|e| panic!("bad metadata in a scenario: {e}"))
}

/// A document with in-memory content.
pub fn doc(k: &str, content: impl AsRef<[u8]>, meta_json: &str, t: &[&str]) -> NewDocument {
    NewDocument { key: key(k), content: Content::Bytes(Bytes::copy_from_slice(content.as_ref())), metadata: meta(meta_json), tags: tags(t) }
}

/// A document with no metadata and no tags.
pub fn plain(k: &str, content: impl AsRef<[u8]>) -> NewDocument {
    doc(k, content, "{}", &[])
}

/// A document whose content is streamed from `chunks`, which may contain an error.
pub fn streamed(k: &str, chunks: Vec<Result<Bytes, std::io::Error>>) -> NewDocument {
    NewDocument {
        key: key(k),
        content: Content::Stream(stream::iter(chunks).boxed()),
        metadata: Metadata::default(),
        tags: Tags::default(),
    }
}

/// Creates a collection with default settings.
///
/// # Panics
/// When the repository fails.
pub async fn create(repo: &dyn CollectionRepo, n: &str) -> CollectionName {
    let n = name(n);
    repo.create_collection(CollectionSpec { name: n.clone(), settings: CollectionSettings::default() })
        .await
        .unwrap_or_else(|e| panic!("create_collection({n}) failed: {e}"));
    n
}

/// Puts a batch that must succeed.
///
/// # Panics
/// When the repository fails.
pub async fn put(repo: &dyn CollectionRepo, c: &CollectionName, docs: Vec<NewDocument>) -> Vec<PutOutcome> {
    repo.put_batch(c, docs).await.unwrap_or_else(|e| panic!("put_batch into {c} failed: {e}"))
}

/// Puts one document that must succeed, returning its outcome.
///
/// # Panics
/// When the repository fails or does not report exactly one outcome.
pub async fn put_one(repo: &dyn CollectionRepo, c: &CollectionName, d: NewDocument) -> PutOutcome {
    let mut out = put(repo, c, vec![d]).await;
    assert_eq!(out.len(), 1, "a batch of one reports one outcome");
    out.remove(0)
}

/// Reads a document's description, which must exist.
///
/// # Panics
/// When the repository fails.
pub async fn get(repo: &dyn CollectionRepo, c: &CollectionName, k: &str) -> DocumentMeta {
    repo.document(c, &key(k)).await.unwrap_or_else(|e| panic!("document({c}, {k:?}) failed: {e}"))
}

/// Collects a content stream.
///
/// # Panics
/// When the stream yields an error.
pub async fn collect(mut s: ContentStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("content stream failed: {e}")));
    }
    out
}

/// Reads a document's whole content through `read_content`.
///
/// # Panics
/// When the repository fails.
pub async fn read_all(repo: &dyn CollectionRepo, c: &CollectionName, k: &str) -> Vec<u8> {
    let (_, s) = repo.read_content(c, &key(k)).await.unwrap_or_else(|e| panic!("read_content({c}, {k:?}) failed: {e}"));
    collect(s).await
}

/// Storage figures that must be available.
///
/// # Panics
/// When the repository fails.
pub async fn stats(repo: &dyn CollectionRepo, c: Option<&CollectionName>) -> StorageStats {
    repo.stats(c.cloned()).await.unwrap_or_else(|e| panic!("stats({c:?}) failed: {e}"))
}

/// Lists documents; the call must succeed.
///
/// # Panics
/// When the repository fails.
pub async fn list(repo: &dyn CollectionRepo, c: &CollectionName, q: &ListQuery) -> Page<DocumentMeta> {
    repo.list_documents(c, q).await.unwrap_or_else(|e| panic!("list_documents({c}, {q:?}) failed: {e}"))
}

/// The keys of some documents, as strings.
pub fn keys_of(docs: &[DocumentMeta]) -> Vec<String> {
    docs.iter().map(|d| d.key.as_str().to_owned()).collect()
}

/// Lists documents and returns their keys and the total.
pub async fn list_keys(repo: &dyn CollectionRepo, c: &CollectionName, q: &ListQuery) -> (Vec<String>, u64) {
    let page = list(repo, c, q).await;
    (keys_of(&page.items), page.total)
}

/// Reads the descriptions of `keys` one by one with `document()`: the full scan listings are compared against.
pub async fn fetch_all(repo: &dyn CollectionRepo, c: &CollectionName, keys: &[&str]) -> Vec<DocumentMeta> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(get(repo, c, k).await);
    }
    out
}

/// What a listing must return: `all` filtered with [`ListQuery::matches`], sorted with [`ListQuery::sort`], then paged.
pub fn reference_page(all: &[DocumentMeta], q: &ListQuery) -> Page<DocumentMeta> {
    q.page(all.iter().cloned())
}

/// Asserts that listing `c` with `q` returns exactly the reference page over `all`, and returns the listed keys.
///
/// # Panics
/// When the listing differs from the reference.
pub async fn assert_list_like_scan(
    repo: &dyn CollectionRepo,
    c: &CollectionName,
    all: &[DocumentMeta],
    q: &ListQuery,
    label: &str,
) -> Vec<String> {
    let got = list(repo, c, q).await;
    let want = reference_page(all, q);
    assert_eq!(keys_of(&got.items), keys_of(&want.items), "{label}: listed keys differ from a full scan ({q:?})");
    assert_eq!(got.items, want.items, "{label}: listed descriptions differ from document() ({q:?})");
    assert_eq!(got.total, want.total, "{label}: total differs from a full scan ({q:?})");
    keys_of(&got.items)
}

/// A query with only a sort.
pub fn sorted_by(sort: SortField, order: SortOrder) -> ListQuery {
    ListQuery { sort, order, ..ListQuery::default() }
}

/// A query with `--where` expressions.
///
/// # Panics
/// When an expression does not parse.
pub fn where_(exprs: &[&str]) -> ListQuery {
    let expr =
        DocFilter::parse_all(exprs, Timestamp::from_millis(0)).unwrap_or_else(|err| panic!("bad filter {exprs:?} in a scenario: {err}"));
    ListQuery { expr, ..ListQuery::default() }
}

/// What a verification reported, added up.
#[derive(Debug, Default)]
pub struct VerifySummary {
    /// Sum of `Checked.documents`.
    pub checked_documents: u64,
    /// Sum of `Checked.bytes`.
    pub checked_bytes: u64,
    /// Every `Corrupt` event.
    pub corrupt: Vec<CorruptDocument>,
}

impl VerifySummary {
    /// The corrupt documents as `(collection, key)` strings, sorted.
    pub fn corrupt_keys(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self.corrupt.iter().map(|c| (c.collection.to_string(), c.key.to_string())).collect();
        v.sort();
        v
    }
}

/// Runs a verification to the end.
///
/// # Panics
/// When the call or one of its events fails.
pub async fn verify(repo: &dyn CollectionRepo, scope: Option<&CollectionName>) -> VerifySummary {
    let mut s = repo.verify(scope.cloned()).await.unwrap_or_else(|e| panic!("verify({scope:?}) failed: {e}"));
    let mut out = VerifySummary::default();
    while let Some(ev) = s.next().await {
        match ev.unwrap_or_else(|e| panic!("verify({scope:?}) event failed: {e}")) {
            VerifyEvent::Checked { documents, bytes } => {
                out.checked_documents += documents;
                out.checked_bytes += bytes;
            }
            VerifyEvent::Corrupt(c) => out.corrupt.push(c),
        }
    }
    out
}

/// Asserts the relation between stored, unique and logical bytes that the capabilities promise.
///
/// # Panics
/// When the figures break the promise.
pub fn assert_stored_bytes(caps: RepoCapabilities, s: &StorageStats, label: &str) {
    let base = if caps.content_addressed { s.unique_bytes } else { s.logical_bytes };
    if caps.compression {
        assert!(s.stored_bytes <= base, "{label}: with compression stored_bytes must not exceed {base}: {s:?}");
    } else {
        assert_eq!(s.stored_bytes, base, "{label}: without compression stored_bytes must equal the content bytes: {s:?}");
    }
}

/// Deterministic pseudo-random bytes (xorshift64): chunk `index` of the content identified by `seed`.
pub fn pseudo_random_chunk(seed: u64, index: u64, len: usize) -> Bytes {
    let mut x = (seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A lazily generated stream of `chunks` pseudo-random chunks of `chunk_len` bytes: never held in memory whole.
pub fn pseudo_random_stream(seed: u64, chunks: u64, chunk_len: usize) -> ContentStream {
    stream::iter(0..chunks).map(move |i| Ok(pseudo_random_chunk(seed, i, chunk_len))).boxed()
}

fn expect_collection_not_found<T>(r: Result<T, RepoError>, what: &str, want: &CollectionName) {
    match r {
        Err(RepoError::CollectionNotFound(n)) => assert_eq!(&n, want, "{what}: CollectionNotFound names the wrong collection"),
        Err(e) => panic!("{what}: expected CollectionNotFound({want}), got {e:?}"),
        Ok(_) => panic!("{what}: expected CollectionNotFound({want}), got Ok"),
    }
}

fn expect_document_not_found<T>(r: Result<T, RepoError>, what: &str, c: &CollectionName, k: &str) {
    match r {
        Err(RepoError::DocumentNotFound { collection, key: got }) => {
            assert_eq!(&collection, c, "{what}: DocumentNotFound names the wrong collection");
            assert_eq!(got.as_str(), k, "{what}: DocumentNotFound names the wrong key");
        }
        Err(e) => panic!("{what}: expected DocumentNotFound({c}/{k}), got {e:?}"),
        Ok(_) => panic!("{what}: expected DocumentNotFound({c}/{k}), got Ok"),
    }
}

fn status(outcomes: &[PutOutcome]) -> Vec<PutStatus> {
    outcomes.iter().map(|o| o.status).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------------------------------
// Collections
// ---------------------------------------------------------------------------------------------------------------------

/// `update_settings` replaces the settings, keeps documents and creation time, and reports a missing collection.
pub async fn update_settings_replaces_settings_only(f: &dyn RepoFixture) {
    let repo = f.repo();
    let created =
        repo.create_collection(CollectionSpec { name: name("notes"), settings: CollectionSettings::default() }).await.expect("create");
    repo.put_batch(&name("notes"), vec![doc("a.md", b"alpha", "{}", &[])]).await.expect("put");
    let settings = CollectionSettings {
        vectors: Some(VectorSettings {
            embedder: EmbedderId { kind: "hash".into(), model: String::new(), dimension: Dimension::new(64).unwrap() },
            distance: Distance::Cosine,
        }),
        chunking: ChunkingSettings::new(300, 30).unwrap(),
        index: None,
        // Search settings of its own: kept exactly.
        fusion: Some(colstore_domain::FusionSettings::new(20, 1.0, 0.25).unwrap()),
        indexed_fields: vec![colstore_domain::FieldPath::parse("author.name").unwrap(), colstore_domain::FieldPath::parse("year").unwrap()],
    };
    f.clock().advance(HOUR);
    let updated = repo.update_settings(&name("notes"), settings.clone()).await.expect("update_settings");
    assert_eq!(updated.settings, settings);
    assert_eq!(updated.created_at, created.created_at, "creation time is kept");
    assert_eq!(updated.document_count, 1, "documents are kept");
    assert_eq!(repo.collection(&name("notes")).await.expect("read back").settings, settings, "settings read back");
    assert!(
        matches!(repo.update_settings(&name("ghost"), CollectionSettings::default()).await, Err(RepoError::CollectionNotFound(_))),
        "update_settings on a missing collection"
    );
}

/// A created collection keeps its settings, takes its creation time from the clock, starts empty, and reads back equal.
pub async fn create_and_get_collection(f: &dyn RepoFixture) {
    let repo = f.repo();
    let t0 = f.clock().now();
    let settings = CollectionSettings {
        vectors: Some(VectorSettings {
            embedder: EmbedderId {
                kind: "openai".into(),
                model: "text-embedding-3-small".into(),
                dimension: Dimension::new(1536).unwrap(),
            },
            distance: Distance::Dot,
        }),
        chunking: ChunkingSettings::new(500, 50).unwrap(),
        // A collection of its own index, as `col reindex --to` records it: kept exactly.
        index: Some("qdrant://db.example:6333".into()),
        fusion: None,
        indexed_fields: Vec::new(),
    };
    let created = repo.create_collection(CollectionSpec { name: name("notes"), settings: settings.clone() }).await.expect("create notes");
    let want = Collection { name: name("notes"), settings, created_at: t0, document_count: 0, logical_bytes: 0 };
    assert_eq!(created, want, "create_collection returns the new, empty collection stamped with the clock");

    f.clock().advance(HOUR);
    assert_eq!(repo.collection(&name("notes")).await.expect("collection(notes)"), want, "collection() reads back what was created");

    let plain = repo
        .create_collection(CollectionSpec { name: name("plain"), settings: CollectionSettings::default() })
        .await
        .expect("create plain");
    assert_eq!(plain.settings, CollectionSettings::default(), "default settings round trip");
    assert_eq!(plain.created_at, t0.plus_millis(3_600_000), "created_at is the clock's time at creation");
    assert_eq!(repo.collection(&name("plain")).await.expect("collection(plain)"), plain);
}

/// Creating a taken name fails with `CollectionExists` and leaves the original collection and its documents as they were.
pub async fn create_existing_collection_fails_and_keeps_original(f: &dyn RepoFixture) {
    let repo = f.repo();
    let original_settings = CollectionSettings {
        vectors: None,
        chunking: ChunkingSettings::new(800, 100).unwrap(),
        index: None,
        fusion: None,
        indexed_fields: Vec::new(),
    };
    let original = repo.create_collection(CollectionSpec { name: name("notes"), settings: original_settings }).await.expect("create");
    put_one(&*repo, &name("notes"), plain("a.md", "alpha")).await;
    f.clock().advance(HOUR);

    let other_settings = CollectionSettings {
        vectors: None,
        chunking: ChunkingSettings::new(100, 10).unwrap(),
        index: None,
        fusion: None,
        indexed_fields: Vec::new(),
    };
    match repo.create_collection(CollectionSpec { name: name("notes"), settings: other_settings }).await {
        Err(RepoError::CollectionExists(n)) => assert_eq!(n, name("notes"), "CollectionExists names the collection"),
        Err(e) => panic!("expected CollectionExists, got {e:?}"),
        Ok(c) => panic!("expected CollectionExists, got Ok({c:?})"),
    }

    let now = repo.collection(&name("notes")).await.expect("collection(notes)");
    assert_eq!(now.settings, original.settings, "settings are unchanged");
    assert_eq!(now.created_at, original.created_at, "created_at is unchanged");
    assert_eq!(now.document_count, 1, "documents are kept");
    assert_eq!(read_all(&*repo, &name("notes"), "a.md").await, b"alpha", "content is kept");
    assert_eq!(repo.list_collections().await.expect("list").len(), 1, "no second collection appeared");
}

/// `list_collections` is sorted by name in byte order and carries document counts and logical bytes.
pub async fn list_collections_sorted_with_counts(f: &dyn RepoFixture) {
    let repo = f.repo();
    assert!(repo.list_collections().await.expect("list").is_empty(), "a fresh store has no collections");
    for n in ["zeta", "a_notes", "b-docs", "0first", "a-notes"] {
        create(&*repo, n).await;
    }
    put(&*repo, &name("a_notes"), vec![plain("x.md", "abc"), plain("y.md", "defgh")]).await;
    put_one(&*repo, &name("zeta"), plain("z.md", "0123456789")).await;

    let listed = repo.list_collections().await.expect("list");
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["0first", "a-notes", "a_notes", "b-docs", "zeta"], "collections are sorted by name, byte order");
    let counts: Vec<(u64, u64)> = listed.iter().map(|c| (c.document_count, c.logical_bytes)).collect();
    assert_eq!(counts, [(0, 0), (0, 0), (2, 8), (0, 0), (1, 10)], "document_count and logical_bytes per collection");
    for c in &listed {
        assert_eq!(&repo.collection(&c.name).await.expect("collection"), c, "list_collections agrees with collection()");
    }
}

/// `collection()` counts follow puts, updates, deletes and no-op puts.
pub async fn collection_counts_follow_writes(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let counts = async |repo: &dyn CollectionRepo| {
        let col = repo.collection(&c).await.expect("collection");
        (col.document_count, col.logical_bytes)
    };
    put(&*repo, &c, vec![plain("a.md", "12345"), plain("b.md", "123")]).await;
    assert_eq!(counts(&*repo).await, (2, 8), "after two puts");
    put_one(&*repo, &c, plain("a.md", "1")).await;
    assert_eq!(counts(&*repo).await, (2, 4), "after shrinking a.md");
    put_one(&*repo, &c, plain("b.md", "123")).await;
    assert_eq!(counts(&*repo).await, (2, 4), "after a no-op put");
    repo.delete_documents(&c, vec![key("b.md")]).await.expect("delete");
    assert_eq!(counts(&*repo).await, (1, 1), "after deleting b.md");
}

/// Every method given a collection that does not exist fails with `CollectionNotFound` naming it, and creates nothing.
pub async fn missing_collection_is_reported_by_every_method(f: &dyn RepoFixture) {
    let repo = f.repo();
    let present = create(&*repo, "present").await;
    put_one(&*repo, &present, plain("a.md", "here")).await;
    let ghost = name("ghost");

    expect_collection_not_found(repo.collection(&ghost).await, "collection", &ghost);
    expect_collection_not_found(repo.delete_collection(&ghost).await, "delete_collection", &ghost);
    expect_collection_not_found(repo.put_batch(&ghost, vec![plain("a.md", "x")]).await, "put_batch", &ghost);
    expect_collection_not_found(repo.put_batch(&ghost, vec![]).await, "put_batch (empty batch)", &ghost);
    // The collection is checked before the batch itself: before duplicate keys, and before any stream is read.
    let dup = vec![plain("a.md", "x"), plain("a.md", "y")];
    expect_collection_not_found(repo.put_batch(&ghost, dup).await, "put_batch (duplicate keys)", &ghost);
    let failing = vec![streamed("s.md", vec![Err(std::io::Error::other("never to be read"))])];
    expect_collection_not_found(repo.put_batch(&ghost, failing).await, "put_batch (failing stream)", &ghost);
    expect_collection_not_found(repo.document(&ghost, &key("a.md")).await, "document", &ghost);
    expect_collection_not_found(repo.read_content(&ghost, &key("a.md")).await, "read_content", &ghost);
    expect_collection_not_found(repo.read_documents(&ghost, vec![key("a.md")], u64::MAX).await, "read_documents", &ghost);
    expect_collection_not_found(repo.delete_documents(&ghost, vec![key("a.md")]).await, "delete_documents", &ghost);
    expect_collection_not_found(repo.list_documents(&ghost, &ListQuery::default()).await, "list_documents", &ghost);
    expect_collection_not_found(repo.stats(Some(ghost.clone())).await, "stats", &ghost);
    expect_collection_not_found(repo.verify(Some(ghost.clone())).await, "verify", &ghost);
    expect_collection_not_found(repo.source_stamps(&ghost, &[key("a.md")]).await, "source_stamps", &ghost);
    expect_collection_not_found(repo.record_source_stamps(&ghost, vec![]).await, "record_source_stamps", &ghost);

    let names: Vec<String> = repo.list_collections().await.expect("list").iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["present"], "no call created the missing collection");
    assert_eq!(get(&*repo, &present, "a.md").await.version, 1, "the existing document is untouched");
}

/// `read_documents` answers each key as `read_content` would, collected: in input order (a key given twice is
/// answered twice), `Missing` for no document, `TooLarge` (no bytes) above the limit, and the failure of a damaged
/// document as that document's own answer, never the batch's. Content stored in parts (3 MiB) is read whole.
pub async fn read_documents_answers_like_read_content(f: &dyn RepoFixture) {
    const CHUNK: usize = 256 * 1024;
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "alpha"), plain("b.md", "bravo bravo"), plain("e.md", ""), plain("bad.md", "about to rot")]).await;
    let big = NewDocument {
        key: key("big.bin"),
        content: Content::Stream(pseudo_random_stream(7, 12, CHUNK)),
        metadata: meta(r#"{"kind":"large"}"#),
        tags: Tags::default(),
    };
    let big_hash = put_one(&*repo, &c, big).await.content_hash;
    f.corrupt(&c, &key("bad.md")).await;

    let keys = ["b.md", "missing.md", "a.md", "big.bin", "e.md", "a.md", "bad.md"];
    let got = repo.read_documents(&c, keys.iter().map(|k| key(k)).collect(), u64::MAX).await.expect("read_documents");
    assert_eq!(got.len(), keys.len(), "one answer per key");
    for (k, answer) in keys.iter().zip(&got) {
        let expected = match repo.read_content(&c, &key(k)).await {
            Ok((m, s)) => collect_stream(&key(k), s).await.map(|b| ReadDocument::Whole(m, b)),
            Err(RepoError::DocumentNotFound { .. }) => Ok(ReadDocument::Missing),
            Err(e) => Err(e),
        };
        match (answer, &expected) {
            (Ok(a), Ok(e)) => assert_eq!(a, e, "{k}: read_documents and read_content differ"),
            (Err(a), Err(e)) => assert_eq!(std::mem::discriminant(a), std::mem::discriminant(e), "{k}: {a} vs {e}"),
            (a, e) => panic!("{k}: read_documents gave {a:?}, read_content {e:?}"),
        }
    }
    // Not only equal to each other: equal to what was put.
    assert!(matches!(&got[2], Ok(ReadDocument::Whole(m, b)) if m.key == key("a.md") && &b[..] == b"alpha"), "{:?}", got[2]);
    assert!(matches!(&got[1], Ok(ReadDocument::Missing)), "{:?}", got[1]);
    assert!(matches!(&got[4], Ok(ReadDocument::Whole(m, b)) if m.size == 0 && b.is_empty()), "{:?}", got[4]);
    match &got[3] {
        Ok(ReadDocument::Whole(m, b)) => {
            assert_eq!((m.size, b.len()), (12 * CHUNK as u64, 12 * CHUNK), "the large document whole");
            assert_eq!(ContentHash::of(b), big_hash, "the large document's bytes");
        }
        other => panic!("big.bin: {other:?}"),
    }

    let limited = repo.read_documents(&c, vec![key("a.md"), key("b.md"), key("big.bin")], 5).await.expect("with a limit");
    assert!(matches!(&limited[0], Ok(ReadDocument::Whole(m, b)) if m.size == 5 && &b[..] == b"alpha"), "at the limit: {:?}", limited[0]);
    assert!(matches!(&limited[1], Ok(ReadDocument::TooLarge(m)) if m.key == key("b.md") && m.size == 11), "{:?}", limited[1]);
    assert!(matches!(&limited[2], Ok(ReadDocument::TooLarge(m)) if m.content_hash == big_hash), "above the limit");
    assert!(repo.read_documents(&c, Vec::new(), 0).await.expect("an empty batch").is_empty());
}

/// Deleting a collection removes its documents (count returned), keeps other collections, and leaves its unshared
/// content as garbage for `gc`. The name can then be created again, empty.
pub async fn delete_collection_removes_documents_and_leaves_garbage(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    let notes = create(&*repo, "notes").await;
    let other = create(&*repo, "other").await;
    put(&*repo, &notes, vec![plain("a.md", "only in notes"), plain("b.md", "shared"), plain("c.md", "also only in notes")]).await;
    put_one(&*repo, &other, plain("x.md", "shared")).await;

    assert_eq!(repo.delete_collection(&notes).await.expect("delete_collection"), 3, "delete_collection returns the document count");
    expect_collection_not_found(repo.collection(&notes).await, "collection after delete", &notes);
    expect_collection_not_found(repo.document(&notes, &key("a.md")).await, "document after delete", &notes);
    let names: Vec<String> = repo.list_collections().await.expect("list").iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["other"]);
    assert_eq!(read_all(&*repo, &other, "x.md").await, b"shared", "shared content survives in the other collection");

    let s = stats(&*repo, None).await;
    assert_eq!((s.collections, s.documents, s.distinct_contents), (1, 1, 1), "store stats after delete: {s:?}");
    if caps.content_addressed {
        assert_eq!(s.garbage_contents, 2, "the two unshared contents became garbage: {s:?}");
        let report = repo.gc(false).await.expect("gc");
        assert_eq!(report.contents_removed, 2, "gc removes the deleted collection's content");
        if !caps.compression {
            assert_eq!(report.bytes_freed, ("only in notes".len() + "also only in notes".len()) as u64, "bytes freed");
        }
        assert_eq!(stats(&*repo, None).await.garbage_contents, 0, "no garbage after gc");
    }
    assert_eq!(read_all(&*repo, &other, "x.md").await, b"shared", "gc keeps referenced content");

    create(&*repo, "notes").await;
    let again = repo.collection(&notes).await.expect("collection");
    assert_eq!((again.document_count, again.logical_bytes), (0, 0), "a re-created collection starts empty");
    assert_eq!(list(&*repo, &notes, &ListQuery::default()).await.total, 0, "no documents come back");
    let out = put_one(&*repo, &notes, plain("a.md", "only in notes")).await;
    assert_eq!((out.status, out.version), (PutStatus::Created, 1), "an old key is new in the re-created collection");
}

/// The same key in two collections names two documents: writes and deletes in one never touch the other.
pub async fn collections_are_independent(f: &dyn RepoFixture) {
    let repo = f.repo();
    let one = create(&*repo, "one").await;
    let two = create(&*repo, "two").await;
    put_one(&*repo, &one, doc("a.md", "one's a", r#"{"owner":"one"}"#, &["first"])).await;
    put_one(&*repo, &two, doc("a.md", "two's a", r#"{"owner":"two"}"#, &["second"])).await;
    put_one(&*repo, &two, plain("b.md", "only in two")).await;

    let out = put_one(&*repo, &one, doc("a.md", "one's a, edited", r#"{"owner":"one"}"#, &["first"])).await;
    assert_eq!(out.version, 2);
    let a2 = get(&*repo, &two, "a.md").await;
    assert_eq!(
        (a2.version, a2.metadata.clone(), a2.tags.clone()),
        (1, meta(r#"{"owner":"two"}"#), tags(&["second"])),
        "two/a.md untouched"
    );
    assert_eq!(a2.collection, two, "document() reports its own collection");
    assert_eq!(read_all(&*repo, &two, "a.md").await, b"two's a");

    assert_eq!(list_keys(&*repo, &one, &ListQuery::default()).await, (strings(&["a.md"]), 1), "listing one shows only one's documents");
    assert_eq!(list_keys(&*repo, &two, &ListQuery::default()).await, (strings(&["a.md", "b.md"]), 2), "listing two");
    assert_eq!(repo.delete_documents(&one, vec![key("a.md"), key("b.md")]).await.expect("delete"), vec![key("a.md")]);
    assert_eq!(read_all(&*repo, &two, "a.md").await, b"two's a", "deleting in one keeps two's document");
    assert_eq!(stats(&*repo, Some(&two)).await.documents, 2);
    assert_eq!(stats(&*repo, Some(&one)).await.documents, 0);
}

// ---------------------------------------------------------------------------------------------------------------------
// Documents: put, get, versions
// ---------------------------------------------------------------------------------------------------------------------

/// A put document reads back with its exact bytes, SHA-256, size, metadata, tags, version 1 and the clock's time.
pub async fn put_then_get_round_trip(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    let out = put_one(&*repo, &c, doc("notes/a.md", "hello world", r#"{"lang":"en","n":1}"#, &["x", "y"])).await;
    let hash = ContentHash::parse("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9").unwrap();
    assert_eq!(
        out,
        PutOutcome { key: key("notes/a.md"), status: PutStatus::Created, version: 1, content_hash: hash, size: 11 },
        "outcome of a first put"
    );

    f.clock().advance(HOUR);
    let want = DocumentMeta {
        collection: c.clone(),
        key: key("notes/a.md"),
        content_hash: hash,
        size: 11,
        metadata: meta(r#"{"lang":"en","n":1}"#),
        tags: tags(&["y", "x"]),
        version: 1,
        created_at: t0,
        updated_at: t0,
    };
    assert_eq!(get(&*repo, &c, "notes/a.md").await, want, "document() returns the full description");
    let (m, s) = repo.read_content(&c, &key("notes/a.md")).await.expect("read_content");
    assert_eq!(m, want, "read_content returns the same description");
    assert_eq!(collect(s).await, b"hello world", "read_content returns the exact bytes");
    let page = list(&*repo, &c, &ListQuery::default()).await;
    assert_eq!(page.items, vec![want], "list_documents returns the same description");
}

/// Putting identical content, metadata and tags again (tags and keys in another order) changes nothing: `Unchanged`,
/// same version, same `updated_at`, even when the clock moved.
pub async fn identical_put_is_unchanged(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    let first = put_one(&*repo, &c, doc("a.md", "same bytes", r#"{"lang":"en","year":2020}"#, &["x", "y"])).await;
    f.clock().advance(HOUR);
    let again = put(&*repo, &c, vec![doc("a.md", "same bytes", r#"{"year":2020,"lang":"en"}"#, &["y", "x"]), plain("b.md", "b")]).await;
    assert_eq!(
        again[0],
        PutOutcome { status: PutStatus::Unchanged, ..first.clone() },
        "an identical put reports Unchanged with the current version"
    );
    assert_eq!(again[1].status, PutStatus::Created);
    let d = get(&*repo, &c, "a.md").await;
    assert_eq!((d.version, d.created_at, d.updated_at), (1, t0, t0), "nothing about the document changed");
    f.clock().advance(HOUR);
    assert_eq!(
        put_one(&*repo, &c, doc("a.md", "same bytes", r#"{"lang":"en","year":2020}"#, &["x", "y"])).await.status,
        PutStatus::Unchanged
    );
    assert_eq!(get(&*repo, &c, "a.md").await.updated_at, t0, "updated_at stays after repeated identical puts");
    assert_eq!(stats(&*repo, None).await.garbage_contents, 0, "identical puts make no garbage");
}

/// Changing the content bumps the version by one, moves `updated_at` to the clock, and keeps `created_at`.
pub async fn content_change_bumps_version(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    put_one(&*repo, &c, doc("a.md", "v1", r#"{"k":"v"}"#, &["t"])).await;
    for (i, content) in ["version two", "v3", "v1"].into_iter().enumerate() {
        f.clock().advance(HOUR);
        let now = f.clock().now();
        let version = i as u64 + 2;
        let out = put_one(&*repo, &c, doc("a.md", content, r#"{"k":"v"}"#, &["t"])).await;
        assert_eq!(
            out,
            PutOutcome {
                key: key("a.md"),
                status: PutStatus::Updated,
                version,
                content_hash: ContentHash::of(content.as_bytes()),
                size: content.len() as u64
            },
            "outcome of content change {version}"
        );
        let d = get(&*repo, &c, "a.md").await;
        assert_eq!((d.version, d.created_at, d.updated_at), (version, t0, now), "after content change to {content:?}");
        assert_eq!((d.content_hash, d.size), (ContentHash::of(content.as_bytes()), content.len() as u64));
        assert_eq!(read_all(&*repo, &c, "a.md").await, content.as_bytes(), "content replaced");
    }
    let out = put_one(&*repo, &c, doc("a.md", "v1", r#"{"k":"v"}"#, &["t"])).await;
    assert_eq!((out.status, out.version), (PutStatus::Unchanged, 4), "same again is Unchanged at the latest version");
}

/// Changing only the metadata bumps the version (content hash kept), and metadata is replaced, never merged.
pub async fn metadata_only_change_bumps_version(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    put_one(&*repo, &c, doc("a.md", "body", r#"{"lang":"en","keep":"me?"}"#, &["t"])).await;
    let steps = [(r#"{"lang":"fr"}"#, 2), (r#"{"lang":"fr","extra":null}"#, 3), (r#"{"lang":"fr","extra":[1]}"#, 4), ("{}", 5)];
    for (json, version) in steps {
        f.clock().advance(HOUR);
        let out = put_one(&*repo, &c, doc("a.md", "body", json, &["t"])).await;
        assert_eq!((out.status, out.version), (PutStatus::Updated, version), "metadata {json} is a change");
        assert_eq!(out.content_hash, ContentHash::of(b"body"), "content hash unchanged");
        let d = get(&*repo, &c, "a.md").await;
        assert_eq!(d.metadata, meta(json), "metadata replaced whole by {json}");
        assert_eq!((d.version, d.created_at, d.updated_at), (version, t0, f.clock().now()));
    }
    assert_eq!(read_all(&*repo, &c, "a.md").await, b"body");
    assert_eq!(put_one(&*repo, &c, doc("a.md", "body", "{}", &["t"])).await.status, PutStatus::Unchanged);
}

/// Changing only the tags bumps the version; tags are replaced whole.
pub async fn tags_only_change_bumps_version(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    put_one(&*repo, &c, doc("a.md", "body", r#"{"m":1}"#, &["x"])).await;
    let steps: [(&[&str], u64); 4] = [(&["x", "y"], 2), (&["y"], 3), (&["Y"], 4), (&[], 5)];
    for (t, version) in steps {
        f.clock().advance(HOUR);
        let out = put_one(&*repo, &c, doc("a.md", "body", r#"{"m":1}"#, t)).await;
        assert_eq!((out.status, out.version), (PutStatus::Updated, version), "tags {t:?} are a change");
        let d = get(&*repo, &c, "a.md").await;
        assert_eq!(d.tags, tags(t), "tags replaced whole by {t:?}");
        assert_eq!((d.created_at, d.updated_at, d.metadata), (t0, f.clock().now(), meta(r#"{"m":1}"#)));
    }
    assert_eq!(put_one(&*repo, &c, doc("a.md", "body", r#"{"m":1}"#, &[])).await.status, PutStatus::Unchanged);
}

/// A batch reports one outcome per document in input order, mixing Created, Updated and Unchanged; an empty batch is fine.
pub async fn batch_outcomes_in_input_order(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    put(&*repo, &c, vec![plain("b.md", "bee"), plain("c.md", "sea")]).await;
    f.clock().advance(HOUR);
    let t1 = f.clock().now();
    let out = put(&*repo, &c, vec![plain("z.md", "zed"), plain("c.md", "sea"), plain("a.md", "ay"), plain("b.md", "bee two")]).await;
    let got: Vec<(String, PutStatus, u64, ContentHash, u64)> =
        out.iter().map(|o| (o.key.to_string(), o.status, o.version, o.content_hash, o.size)).collect();
    let want = vec![
        ("z.md".to_owned(), PutStatus::Created, 1, ContentHash::of(b"zed"), 3),
        ("c.md".to_owned(), PutStatus::Unchanged, 1, ContentHash::of(b"sea"), 3),
        ("a.md".to_owned(), PutStatus::Created, 1, ContentHash::of(b"ay"), 2),
        ("b.md".to_owned(), PutStatus::Updated, 2, ContentHash::of(b"bee two"), 7),
    ];
    assert_eq!(got, want, "outcomes follow the input order");
    let times = |d: &DocumentMeta| (d.created_at, d.updated_at);
    assert_eq!(times(&get(&*repo, &c, "z.md").await), (t1, t1));
    assert_eq!(times(&get(&*repo, &c, "c.md").await), (t0, t0));
    assert_eq!(times(&get(&*repo, &c, "b.md").await), (t0, t1));
    assert_eq!(read_all(&*repo, &c, "b.md").await, b"bee two");

    assert!(put(&*repo, &c, vec![]).await.is_empty(), "an empty batch reports nothing");
    assert_eq!(list(&*repo, &c, &ListQuery::default()).await.total, 4, "an empty batch writes nothing");
}

/// Two keys with equal content in one batch are both written; a content-addressed repository stores the bytes once.
pub async fn same_content_twice_in_one_batch(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let out = put(&*repo, &c, vec![plain("one.md", "twin"), plain("two.md", "twin")]).await;
    assert_eq!(status(&out), [PutStatus::Created, PutStatus::Created]);
    assert_eq!(out[0].content_hash, out[1].content_hash, "equal content, equal hash");
    let s = stats(&*repo, None).await;
    assert_eq!((s.documents, s.logical_bytes, s.distinct_contents, s.unique_bytes), (2, 8, 1, 4), "stats: {s:?}");
    repo.delete_documents(&c, vec![key("one.md")]).await.expect("delete");
    assert_eq!(read_all(&*repo, &c, "two.md").await, b"twin", "the other reference still reads");
    assert_eq!(stats(&*repo, None).await.garbage_contents, 0, "content still referenced is no garbage");
    repo.gc(false).await.expect("gc");
    assert_eq!(read_all(&*repo, &c, "two.md").await, b"twin", "gc keeps the still-referenced content");
}

/// The same key twice in a batch fails with `DuplicateKey` and nothing of the batch is written.
pub async fn duplicate_key_in_batch_writes_nothing(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("keep.md", "original")).await;
    let before = stats(&*repo, None).await;

    let batches = [
        (vec![plain("new.md", "n"), plain("keep.md", "changed"), plain("new.md", "again")], "new.md"),
        (vec![plain("keep.md", "changed"), plain("keep.md", "original")], "keep.md"),
        // Duplicates are found before any stream is read, so a failing stream does not hide them.
        (vec![streamed("s.md", vec![Err(std::io::Error::other("unread"))]), plain("x.md", "x"), plain("x.md", "y")], "x.md"),
    ];
    for (batch, dup) in batches {
        match repo.put_batch(&c, batch).await {
            Err(RepoError::DuplicateKey(k)) => assert_eq!(k.as_str(), dup, "DuplicateKey names the repeated key"),
            Err(e) => panic!("expected DuplicateKey({dup}), got {e:?}"),
            Ok(out) => panic!("expected DuplicateKey({dup}), got Ok({out:?})"),
        }
    }
    expect_document_not_found(repo.document(&c, &key("new.md")).await, "new.md after a failed batch", &c, "new.md");
    let kept = get(&*repo, &c, "keep.md").await;
    assert_eq!(kept.version, 1, "the existing document was not updated");
    assert_eq!(read_all(&*repo, &c, "keep.md").await, b"original");
    assert_eq!(stats(&*repo, None).await, before, "store figures are unchanged");
}

/// A content stream failing mid-batch fails the batch with `ContentRead` for that key and writes nothing; the same batch
/// with a working stream then succeeds.
pub async fn failing_stream_writes_nothing(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let t0 = f.clock().now();
    put_one(&*repo, &c, plain("existing.md", "before")).await;
    let before = stats(&*repo, None).await;
    f.clock().advance(HOUR);

    let broken = streamed(
        "broken.md",
        vec![Ok(Bytes::from_static(b"partial ")), Ok(Bytes::from_static(b"content")), Err(std::io::Error::other("disk on fire"))],
    );
    let batch = vec![plain("fresh.md", "fresh bytes"), plain("existing.md", "after"), broken, plain("later.md", "later")];
    match repo.put_batch(&c, batch).await {
        Err(RepoError::ContentRead { key: k, source }) => {
            assert_eq!(k.as_str(), "broken.md", "ContentRead names the document whose stream failed");
            assert!(source.to_string().contains("disk on fire"), "ContentRead keeps the cause: {source}");
        }
        Err(e) => panic!("expected ContentRead, got {e:?}"),
        Ok(out) => panic!("expected ContentRead, got Ok({out:?})"),
    }
    for k in ["fresh.md", "broken.md", "later.md"] {
        expect_document_not_found(repo.document(&c, &key(k)).await, "after a failed stream", &c, k);
    }
    let existing = get(&*repo, &c, "existing.md").await;
    assert_eq!((existing.version, existing.updated_at), (1, t0), "existing.md was not updated");
    assert_eq!(read_all(&*repo, &c, "existing.md").await, b"before");
    assert_eq!(stats(&*repo, None).await, before, "store figures are unchanged: no content, no garbage");

    let fixed = streamed("broken.md", vec![Ok(Bytes::from_static(b"partial ")), Ok(Bytes::from_static(b"content"))]);
    let out =
        put(&*repo, &c, vec![plain("fresh.md", "fresh bytes"), plain("existing.md", "after"), fixed, plain("later.md", "later")]).await;
    assert_eq!(status(&out), [PutStatus::Created, PutStatus::Updated, PutStatus::Created, PutStatus::Created], "the retried batch");
    assert_eq!(read_all(&*repo, &c, "broken.md").await, b"partial content");
    assert_eq!(out[2].content_hash, ContentHash::of(b"partial content"));
}

/// Empty content (from bytes, an empty stream, or a stream of empty chunks) is a real document of size 0.
pub async fn empty_content(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let empty = ContentHash::parse("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap();
    let out = put(
        &*repo,
        &c,
        vec![
            plain("empty.md", b""),
            streamed("empty-stream.md", vec![]),
            streamed("empty-chunks.md", vec![Ok(Bytes::new()), Ok(Bytes::new())]),
        ],
    )
    .await;
    for o in &out {
        assert_eq!((o.status, o.content_hash, o.size), (PutStatus::Created, empty, 0), "{}: empty content", o.key);
    }
    for k in ["empty.md", "empty-stream.md", "empty-chunks.md"] {
        let d = get(&*repo, &c, k).await;
        assert_eq!((d.size, d.content_hash), (0, empty), "{k}");
        assert!(read_all(&*repo, &c, k).await.is_empty(), "{k} reads back empty");
    }
    let s = stats(&*repo, Some(&c)).await;
    assert_eq!((s.documents, s.logical_bytes, s.distinct_contents, s.unique_bytes), (3, 0, 1, 0), "stats: {s:?}");
    assert_eq!(list(&*repo, &c, &ListQuery::default()).await.total, 3, "empty documents are listed");

    let grown = put_one(&*repo, &c, plain("empty.md", "now something")).await;
    assert_eq!((grown.status, grown.version), (PutStatus::Updated, 2));
    let emptied = put_one(&*repo, &c, plain("empty.md", b"")).await;
    assert_eq!((emptied.status, emptied.version, emptied.size), (PutStatus::Updated, 3, 0));
    assert!(read_all(&*repo, &c, "empty.md").await.is_empty());
}

/// Content streamed in many small, uneven chunks (some empty) hashes and reads back as the concatenation.
pub async fn streamed_content_in_small_chunks(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let mut whole = Vec::new();
    let mut chunks = Vec::new();
    for i in 0..1000u64 {
        let chunk = pseudo_random_chunk(7, i, (i % 38) as usize);
        whole.extend_from_slice(&chunk);
        chunks.push(Ok(chunk));
    }
    let out = put_one(&*repo, &c, streamed("chunky.bin", chunks)).await;
    assert_eq!((out.content_hash, out.size), (ContentHash::of(&whole), whole.len() as u64), "hash and size of the concatenation");
    assert_eq!(read_all(&*repo, &c, "chunky.bin").await, whole, "reads back as the concatenation");
    let again = put_one(&*repo, &c, plain("chunky.bin", &whole)).await;
    assert_eq!(again.status, PutStatus::Unchanged, "the same bytes given in memory are Unchanged");
}

/// Size of the large-content scenario: 64 MiB.
pub const LARGE_SIZE: u64 = 64 * 1024 * 1024;

/// 64 MiB streamed lazily in 1 MiB pseudo-random chunks round trip with the right hash and size, streamed back.
pub async fn large_streamed_content_round_trip(f: &dyn RepoFixture) {
    const CHUNK: usize = 1024 * 1024;
    let chunks = LARGE_SIZE / CHUNK as u64;
    let repo = f.repo();
    let c = create(&*repo, "big").await;
    let mut hasher = ContentHasher::new();
    for i in 0..chunks {
        hasher.update(&pseudo_random_chunk(42, i, CHUNK));
    }
    let expected = hasher.finish();

    let big = |k: &str| NewDocument {
        key: key(k),
        content: Content::Stream(pseudo_random_stream(42, chunks, CHUNK)),
        metadata: meta(r#"{"kind":"large"}"#),
        tags: Tags::default(),
    };
    let out = put_one(&*repo, &c, big("large.bin")).await;
    assert_eq!((out.status, out.content_hash, out.size), (PutStatus::Created, expected, LARGE_SIZE), "outcome of the 64 MiB put");

    let (m, mut s) = repo.read_content(&c, &key("large.bin")).await.expect("read_content");
    assert_eq!((m.content_hash, m.size), (expected, LARGE_SIZE), "description of the large document");
    let mut back = ContentHasher::new();
    let mut size = 0u64;
    let mut pieces = 0u64;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.expect("large content chunk");
        size += chunk.len() as u64;
        pieces += 1;
        back.update(&chunk);
    }
    assert_eq!((back.finish(), size), (expected, LARGE_SIZE), "streamed back content hashes to the recorded hash");
    assert!(pieces > 1, "large content is streamed back in several chunks, not one 64 MiB buffer");

    let again = put_one(&*repo, &c, big("large.bin")).await;
    assert_eq!((again.status, again.version), (PutStatus::Unchanged, 1), "the same stream again is Unchanged");
    let v = verify(&*repo, Some(&c)).await;
    assert!(v.corrupt.is_empty(), "large content verifies: {:?}", v.corrupt);
    assert_eq!(v.checked_documents, 1);
    assert_eq!(stats(&*repo, Some(&c)).await.logical_bytes, LARGE_SIZE);
}

/// Keys are Unicode NFC (`DocKey::parse` normalises): NFC "é" and NFD "é" name one document. CJK, emoji and spaces
/// round trip byte for byte; listings sort by bytes and prefixes match bytes.
pub async fn unicode_keys_round_trip_and_sort_by_bytes(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "unicode").await;
    let nfc = "caf\u{e9}.md";
    let nfd = "cafe\u{301}.md";
    let keys = [nfc, "日本語/ノート.md", "emoji/😀 party 🎉.txt", "with space/file name.md", "Zed.md", "apple.md", "Ärger.md", "中文.txt"];
    let docs = keys.iter().map(|k| doc(k, format!("content of {k}"), &format!(r#"{{"key":"{k}"}}"#), &[])).collect();
    let out = put(&*repo, &c, docs).await;
    assert!(out.iter().all(|o| o.status == PutStatus::Created), "every key is a new document: {out:?}");
    assert_eq!(out.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), keys, "outcome keys are byte-identical");

    for k in keys {
        let d = get(&*repo, &c, k).await;
        assert_eq!(d.key.as_str().as_bytes(), k.as_bytes(), "key {k:?} comes back byte for byte");
        assert_eq!(read_all(&*repo, &c, k).await, format!("content of {k}").as_bytes(), "content of {k:?}");
    }
    assert_eq!(key(nfd), key(nfc), "the NFD spelling parses to the NFC key");
    let again = put_one(&*repo, &c, plain(nfd, "written through the NFD spelling")).await;
    assert_eq!((again.key.as_str(), again.status, again.version), (nfc, PutStatus::Updated, 2), "NFD names the NFC document");
    assert_eq!(read_all(&*repo, &c, nfc).await, b"written through the NFD spelling");

    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let (listed, total) = list_keys(&*repo, &c, &ListQuery::default()).await;
    assert_eq!(listed, strings(&sorted), "listing sorts keys by bytes");
    assert_eq!(total, keys.len() as u64);
    sorted.reverse();
    assert_eq!(list_keys(&*repo, &c, &sorted_by(SortField::Key, SortOrder::Desc)).await.0, strings(&sorted), "descending by bytes");

    let prefix = |p: &str| ListQuery { key_prefix: Some(p.to_owned()), ..ListQuery::default() };
    assert_eq!(list_keys(&*repo, &c, &prefix("caf")).await.0, strings(&[nfc]));
    assert_eq!(list_keys(&*repo, &c, &prefix("caf\u{e9}")).await.0, strings(&[nfc]), "the NFC prefix matches");
    assert_eq!(list_keys(&*repo, &c, &prefix("日本語/")).await.0, strings(&["日本語/ノート.md"]));

    assert_eq!(repo.delete_documents(&c, vec![key(nfd)]).await.expect("delete"), vec![key(nfc)], "deleting by the NFD spelling");
    expect_document_not_found(repo.document(&c, &key(nfc)).await, "after deleting café", &c, nfc);
}

/// Nested, unicode and numeric-edge metadata reads back exactly, through every read path.
pub async fn metadata_json_round_trips_exactly(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let value = serde_json::json!({
        "title": "Grüße, 世界 🌍",
        "escapes": "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} slash /",
        "rtl": "שלום",
        "nested": {"a": {"b": {"c": [1, 2, {"d": null}, [[]]]}}, "empty_obj": {}, "empty_arr": []},
        "numbers": {
            "zero": 0, "neg": -17, "i64max": i64::MAX, "i64min": i64::MIN, "u64max": u64::MAX,
            "float": 0.1, "exp": 1.5e300, "negfloat": -2.5, "tiny": 5e-324
        },
        "bools": [true, false, null],
        "dotted.key": "value",
        "ключ": "значение",
        "": "empty key",
        "emoji 🔑": {"deep": ["x", 1, 2.5, false]}
    });
    let json = value.to_string();
    put_one(&*repo, &c, doc("m.json", "body", &json, &["t"])).await;
    let want = meta(&json);
    assert_eq!(get(&*repo, &c, "m.json").await.metadata, want, "document() metadata round trips exactly");
    let (m, _) = repo.read_content(&c, &key("m.json")).await.expect("read_content");
    assert_eq!(m.metadata, want, "read_content metadata round trips exactly");
    let page = list(&*repo, &c, &ListQuery::default()).await;
    assert_eq!(page.items[0].metadata, want, "list_documents metadata round trips exactly");
    assert_eq!(
        put_one(&*repo, &c, doc("m.json", "body", &json, &["t"])).await.status,
        PutStatus::Unchanged,
        "stored metadata compares equal to the same JSON"
    );
}

/// Missing documents are `DocumentNotFound` naming collection and key, for `document` and `read_content`.
pub async fn missing_document_is_reported(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let other = create(&*repo, "other").await;
    put_one(&*repo, &c, plain("a.md", "a")).await;
    put_one(&*repo, &other, plain("b.md", "b")).await;
    expect_document_not_found(repo.document(&c, &key("b.md")).await, "document", &c, "b.md");
    expect_document_not_found(repo.read_content(&c, &key("b.md")).await, "read_content", &c, "b.md");
    expect_document_not_found(repo.document(&c, &key("A.md")).await, "keys are case-sensitive", &c, "A.md");
    expect_document_not_found(repo.document(&c, &key("a.md/x")).await, "document under a key", &c, "a.md/x");
    repo.delete_documents(&c, vec![key("a.md")]).await.expect("delete");
    expect_document_not_found(repo.document(&c, &key("a.md")).await, "document after delete", &c, "a.md");
    expect_document_not_found(repo.read_content(&c, &key("a.md")).await, "read_content after delete", &c, "a.md");
}

/// `delete_documents` returns the keys that existed, in input order, skipping missing and repeated ones.
pub async fn delete_documents_returns_existing_keys_in_order(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "a"), plain("b.md", "b"), plain("c.md", "c"), plain("d.md", "d")]).await;
    let deleted =
        repo.delete_documents(&c, vec![key("d.md"), key("missing.md"), key("b.md"), key("a.md"), key("b.md")]).await.expect("delete");
    assert_eq!(deleted, vec![key("d.md"), key("b.md"), key("a.md")], "existing keys, input order, each once");
    assert_eq!(list_keys(&*repo, &c, &ListQuery::default()).await, (strings(&["c.md"]), 1), "only c.md remains");
    assert!(repo.delete_documents(&c, vec![]).await.expect("delete none").is_empty());
    assert!(repo.delete_documents(&c, vec![key("a.md")]).await.expect("delete again").is_empty(), "deleting twice finds nothing");
    let s = stats(&*repo, Some(&c)).await;
    assert_eq!((s.documents, s.logical_bytes), (1, 1), "stats after deletes: {s:?}");
}

/// A deleted key put again is a new document: `Created`, version 1, fresh timestamps.
pub async fn delete_then_put_starts_at_version_one(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "one")).await;
    put_one(&*repo, &c, plain("a.md", "two")).await;
    assert_eq!(get(&*repo, &c, "a.md").await.version, 2);
    repo.delete_documents(&c, vec![key("a.md")]).await.expect("delete");
    f.clock().advance(HOUR);
    let t1 = f.clock().now();
    let out = put_one(&*repo, &c, plain("a.md", "two")).await;
    assert_eq!((out.status, out.version), (PutStatus::Created, 1), "re-created key starts over");
    let d = get(&*repo, &c, "a.md").await;
    assert_eq!((d.version, d.created_at, d.updated_at), (1, t1, t1), "fresh timestamps");
}

// ---------------------------------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------------------------------

/// Listing by key sorts by bytes (not case-insensitively, not by locale) in both directions.
pub async fn list_sorted_by_key_in_byte_order(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let keys = ["b.md", "a.md", "A.md", "a/b.md", "a-b.md", "a.md.bak", "ab.md", "_x.md", "10.md", "9.md", "B.md"];
    put(&*repo, &c, keys.iter().map(|k| plain(k, *k)).collect()).await;
    let want = ["10.md", "9.md", "A.md", "B.md", "_x.md", "a-b.md", "a.md", "a.md.bak", "a/b.md", "ab.md", "b.md"];
    let (listed, total) = list_keys(&*repo, &c, &ListQuery::default()).await;
    assert_eq!(listed, strings(&want), "ascending byte order ('-' < '.' < '/' < digits < upper case < '_' < lower case)");
    assert_eq!(total, keys.len() as u64);
    let mut desc = want;
    desc.reverse();
    assert_eq!(list_keys(&*repo, &c, &sorted_by(SortField::Key, SortOrder::Desc)).await.0, strings(&desc), "descending byte order");
}

/// Tag filters need every listed tag (case-sensitive); no tags means no restriction.
pub async fn list_filters_by_tags(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let docs: [(&str, &[&str]); 6] =
        [("none.md", &[]), ("x.md", &["x"]), ("xy.md", &["x", "y"]), ("y.md", &["y"]), ("xyz.md", &["x", "y", "z"]), ("X.md", &["X"])];
    put(&*repo, &c, docs.iter().map(|(k, t)| doc(k, *k, "{}", t)).collect()).await;
    let all = fetch_all(&*repo, &c, &docs.map(|(k, _)| k)).await;
    let cases: [(&[&str], &[&str]); 8] = [
        (&[], &["X.md", "none.md", "x.md", "xy.md", "xyz.md", "y.md"]),
        (&["x"], &["x.md", "xy.md", "xyz.md"]),
        (&["x", "y"], &["xy.md", "xyz.md"]),
        (&["y", "x"], &["xy.md", "xyz.md"]),
        (&["z"], &["xyz.md"]),
        (&["X"], &["X.md"]),
        (&["x", "X"], &[]),
        (&["w"], &[]),
    ];
    for (wanted, expected) in cases {
        let q = ListQuery { tags: wanted.iter().map(|t| tag(t)).collect(), ..ListQuery::default() };
        let got = assert_list_like_scan(&*repo, &c, &all, &q, &format!("tags {wanted:?}")).await;
        assert_eq!(got, strings(expected), "documents carrying all of {wanted:?}");
    }
}

/// Metadata filters (`--where` expressions, alone and combined, with paging) return exactly what a full scan with
/// [`ListQuery::matches`] returns.
pub async fn list_filters_by_metadata_like_a_full_scan(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let docs = [
        ("a.md", r#"{"lang":"en","year":1999,"draft":false,"score":0.25,"labels":["red","blue"],"author":{"name":"Ann","age":41}}"#),
        ("b.md", r#"{"lang":"fr","year":2005,"draft":true,"score":0.5,"labels":[],"author":{"name":"Bob"}}"#),
        ("c.md", r#"{"lang":"en","year":2021,"score":1,"labels":["blue"]}"#),
        ("d.md", r#"{"lang":"de","year":"2021","author":null}"#),
        ("e.md", "{}"),
        ("f.md", r#"{"lang":"EN","year":2010.5,"draft":false,"labels":["green"],"author":{"name":"Ann"}}"#),
        ("g.md", r#"{"lang":["en","fr"],"year":-5,"score":-0.5}"#),
        ("h.md", r#"{"lang":"en fr","year":2000,"labels":"blue"}"#),
        ("i.md", r#"{"year":2000,"draft":"true","author":"Ann"}"#),
        ("j.md", r#"{"lang":"","n":0,"author":{}}"#),
        ("k.md", r#"{"lang":"fr","year":2000.0,"score":0.5,"author":{"name":"Ann","age":17}}"#),
    ];
    put(&*repo, &c, docs.iter().enumerate().map(|(i, (k, m))| doc(k, "x".repeat(i + 1), m, &[])).collect()).await;
    let all = fetch_all(&*repo, &c, &docs.map(|(k, _)| k)).await;

    let exprs: &[&[&str]] = &[
        &["lang=en"],
        &["lang!=en"],
        &["lang=EN"],
        &["lang=\"\""],
        &["lang=\"en fr\""],
        &["year>2000"],
        &["year>=2000"],
        &["year<2000"],
        &["year<=1999"],
        &["year=2021"],
        &["year=\"2021\""],
        &["year=2000"],
        &["draft=true"],
        &["draft=false"],
        &["draft=\"true\""],
        &["score>=0.5"],
        &["score<0"],
        &["labels=blue"],
        &["labels exists"],
        &["labels missing"],
        &["author exists"],
        &["author missing"],
        &["author=Ann"],
        &["author.name=Ann"],
        &["author.age>40"],
        &["author.name!=Ann"],
        &["lang in en,fr"],
        &["lang in de,EN"],
        &["year in 1999,2021"],
        &["nope exists"],
        &["lang=en", "year>2000"],
        &["author exists", "draft=false", "labels=blue"],
        &["lang!=en", "year<=2010"],
        &["author.name=Ann", "lang missing"],
        &["score>0", "score<1"],
    ];
    let mut selective = 0;
    for e in exprs {
        let q = where_(e);
        let got = assert_list_like_scan(&*repo, &c, &all, &q, &format!("where {e:?}")).await;
        if !got.is_empty() && got.len() < docs.len() {
            selective += 1;
        }
        for (offset, limit) in [(1, Some(2)), (0, Some(1)), (3, None)] {
            let paged = ListQuery { offset, limit, sort: SortField::Size, order: SortOrder::Desc, ..q.clone() };
            assert_list_like_scan(&*repo, &c, &all, &paged, &format!("where {e:?} paged")).await;
        }
    }
    assert!(selective >= 30, "the expressions must actually discriminate ({selective} did)");

    // Anchor the reference itself on a few hand-checked answers.
    let keys = |e: &[&str]| {
        let page = reference_page(&all, &where_(e));
        keys_of(&page.items)
    };
    assert_eq!(keys(&["lang=en"]), strings(&["a.md", "c.md", "g.md"]), "array values match any element");
    assert_eq!(keys(&["author.name=Ann"]), strings(&["a.md", "f.md", "k.md"]));
    assert_eq!(keys(&["year=2000"]), strings(&["h.md", "i.md"]), "integer match ignores 2000.0 and strings");
    assert_eq!(list_keys(&*repo, &c, &where_(&["author.name=Ann"])).await.0, strings(&["a.md", "f.md", "k.md"]));
}

/// `created` and `updated` ranges are half-open `[since, until)` and follow the clock at write time; no-op puts keep
/// `updated_at`.
pub async fn list_filters_by_time_ranges(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let clock = f.clock();
    let t0 = clock.now();
    put(&*repo, &c, vec![plain("a.md", "a"), plain("b.md", "b")]).await;
    clock.advance(HOUR);
    let t1 = clock.now();
    put_one(&*repo, &c, plain("c.md", "c")).await;
    clock.advance(HOUR);
    let t2 = clock.now();
    put(&*repo, &c, vec![plain("d.md", "d"), plain("a.md", "a2")]).await;
    clock.advance(HOUR);
    let t3 = clock.now();
    assert_eq!(put_one(&*repo, &c, plain("b.md", "b")).await.status, PutStatus::Unchanged);
    let all = fetch_all(&*repo, &c, &["a.md", "b.md", "c.md", "d.md"]).await;

    let r = |since: Option<colstore_domain::Timestamp>, until: Option<colstore_domain::Timestamp>| TimeRange { since, until };
    let cases: Vec<(&str, TimeRange, TimeRange, &[&str])> = vec![
        ("created since t1", r(Some(t1), None), TimeRange::default(), &["c.md", "d.md"]),
        ("created until t1 (exclusive)", r(None, Some(t1)), TimeRange::default(), &["a.md", "b.md"]),
        ("created [t0, t1)", r(Some(t0), Some(t1)), TimeRange::default(), &["a.md", "b.md"]),
        ("created [t1, t2)", r(Some(t1), Some(t2)), TimeRange::default(), &["c.md"]),
        ("created [t1, t1)", r(Some(t1), Some(t1)), TimeRange::default(), &[]),
        ("updated since t2", TimeRange::default(), r(Some(t2), None), &["a.md", "d.md"]),
        ("updated until t1", TimeRange::default(), r(None, Some(t1)), &["b.md"]),
        ("updated since t0+1ms", TimeRange::default(), r(Some(t0.plus_millis(1)), None), &["a.md", "c.md", "d.md"]),
        ("updated since t3", TimeRange::default(), r(Some(t3), None), &[]),
        ("created until t1, updated since t2", r(None, Some(t1)), r(Some(t2), None), &["a.md"]),
    ];
    for (label, created, updated, expected) in cases {
        let q = ListQuery { created, updated, ..ListQuery::default() };
        let got = assert_list_like_scan(&*repo, &c, &all, &q, label).await;
        assert_eq!(got, strings(expected), "{label}");
    }
}

/// Sorting by size, `updated_at` and `created_at`, both directions, breaks ties by key ascending.
pub async fn list_sorts_with_key_tie_break(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let clock = f.clock();
    put(&*repo, &c, vec![plain("b.md", "bbbbb"), plain("a.md", "aaaaa"), plain("c.md", "c")]).await;
    clock.advance(HOUR);
    put(&*repo, &c, vec![plain("e.md", "eeeee"), plain("d.md", "ddddddddd")]).await;
    clock.advance(HOUR);
    put_one(&*repo, &c, plain("c.md", "z")).await;
    let all = fetch_all(&*repo, &c, &["a.md", "b.md", "c.md", "d.md", "e.md"]).await;
    let cases = [
        (SortField::Size, SortOrder::Asc, ["c.md", "a.md", "b.md", "e.md", "d.md"]),
        (SortField::Size, SortOrder::Desc, ["d.md", "a.md", "b.md", "e.md", "c.md"]),
        (SortField::UpdatedAt, SortOrder::Asc, ["a.md", "b.md", "d.md", "e.md", "c.md"]),
        (SortField::UpdatedAt, SortOrder::Desc, ["c.md", "d.md", "e.md", "a.md", "b.md"]),
        (SortField::CreatedAt, SortOrder::Asc, ["a.md", "b.md", "c.md", "d.md", "e.md"]),
        (SortField::CreatedAt, SortOrder::Desc, ["d.md", "e.md", "a.md", "b.md", "c.md"]),
        (SortField::Key, SortOrder::Desc, ["e.md", "d.md", "c.md", "b.md", "a.md"]),
    ];
    for (sort, order, expected) in cases {
        let q = sorted_by(sort, order);
        let got = assert_list_like_scan(&*repo, &c, &all, &q, &format!("{sort:?} {order:?}")).await;
        assert_eq!(got, strings(&expected), "{sort:?} {order:?}, ties by key ascending");
        let page = ListQuery { limit: Some(2), offset: 2, ..q };
        assert_eq!(list_keys(&*repo, &c, &page).await, (strings(&expected[2..4]), 5), "{sort:?} {order:?} second page");
    }
}

/// `limit`/`offset` page through the sorted matches; `total` always counts every match.
pub async fn list_pages_with_total(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let keys: Vec<String> = (0..10).map(|i| format!("doc-{i:02}.md")).collect();
    put(&*repo, &c, keys.iter().enumerate().map(|(i, k)| doc(k, k, "{}", if i % 2 == 0 { &["even"] } else { &[] })).collect()).await;

    let page = |offset: u64, limit: Option<u64>| ListQuery { offset, limit, ..ListQuery::default() };
    let mut walked = Vec::new();
    for (n, offset) in [0, 3, 6, 9].into_iter().enumerate() {
        let (got, total) = list_keys(&*repo, &c, &page(offset, Some(3))).await;
        assert_eq!(total, 10, "total ignores paging (page {n})");
        assert_eq!(got.len(), if offset == 9 { 1 } else { 3 }, "page {n} size");
        walked.extend(got);
    }
    assert_eq!(walked, keys, "pages concatenate to the full listing, without gaps or repeats");
    assert_eq!(list_keys(&*repo, &c, &page(10, Some(3))).await, (vec![], 10), "offset at the end");
    assert_eq!(list_keys(&*repo, &c, &page(100, None)).await, (vec![], 10), "offset past the end");
    assert_eq!(list_keys(&*repo, &c, &page(0, Some(0))).await, (vec![], 10), "limit 0 still counts");
    assert_eq!(list_keys(&*repo, &c, &page(8, None)).await, (keys[8..].to_vec(), 10), "offset without limit");
    let even = ListQuery { tags: vec![tag("even")], offset: 1, limit: Some(2), ..ListQuery::default() };
    assert_eq!(list_keys(&*repo, &c, &even).await, (strings(&["doc-02.md", "doc-04.md"]), 5), "total counts filtered matches");
}

/// A collection of 42 documents spread over keys, metadata, tags, sizes and times (created over 40 hours, some
/// updated later), for the filter-language and cursor scenarios. Returns every document's description.
async fn varied_collection(f: &dyn RepoFixture, c: &CollectionName) -> Vec<DocumentMeta> {
    let repo = f.repo();
    let clock = f.clock();
    let folders = ["a/", "a/b/", "ab/", "b/", "é/", ""];
    let metas = [
        r#"{"lang":"en","year":1999,"n":1,"labels":["red","blue"],"author":{"name":"Ann"}}"#,
        r#"{"lang":"fr","year":2005,"n":2,"labels":[]}"#,
        r#"{"lang":["en","fr"],"year":2010.5,"author":null}"#,
        r#"{"lang":"de","year":"2001","n":"1","labels":"red"}"#,
        r#"{}"#,
        r#"{"lang":"en","year":2020,"n":3,"author":"Bob","labels":["red"]}"#,
        r#"{"lang":"EN","n":true}"#,
    ];
    let tag_sets: [&[&str]; 4] = [&["x"], &["y"], &["x", "y"], &[]];
    let mut keys = Vec::new();
    for i in 0..40usize {
        let key = format!("{}{i:02}.md", folders[i % folders.len()]);
        put_one(&*repo, c, doc(&key, "z".repeat(i * 7 % 13 + 1), metas[i % metas.len()], tag_sets[i % 4])).await;
        keys.push(key);
        clock.advance(HOUR);
    }
    // Keys just past a prefix's range (`a0` after every `a/…`): a translation that gets the prefix's end wrong lists them.
    for key in ["a0", "b0"] {
        put_one(&*repo, c, doc(key, key, "{}", &["x"])).await;
        keys.push(key.to_owned());
    }
    // Some documents change later, so that `updated` differs from `created` and sorts differently.
    for (i, key) in keys.iter().take(40).enumerate().filter(|(i, _)| i % 3 == 0) {
        put_one(&*repo, c, doc(key, "changed".repeat(i % 4 + 1), metas[(i + 1) % metas.len()], tag_sets[(i + 1) % 4])).await;
        clock.advance(HOUR);
    }
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    fetch_all(&*repo, c, &key_refs).await
}

/// A small deterministic generator (xorshift), so a failing expression is the same on every run.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    /// A random `--where` expression over metadata, tags, keys and times, with `and`, `or`, `not` and parentheses.
    fn expr(&mut self, depth: u32) -> String {
        const ATOMS: &[&str] = &[
            "lang=en",
            "lang!=fr",
            "year>=2000",
            "year<2010",
            "n in 1,2",
            "n=\"1\"",
            "n=true",
            "author exists",
            "author missing",
            "author.name=Ann",
            "labels=red",
            "tag:x",
            "tag:y",
            "key:a/",
            "key:a/b",
            "key:\"b/\"",
            "key:é",
            "created:>=20h",
            "created:<30h",
            "updated:>=10h",
            "updated:<45h",
            "created:60h..50h",
        ];
        if depth == 0 || self.below(3) == 0 {
            return ATOMS[self.below(ATOMS.len())].to_owned();
        }
        match self.below(3) {
            0 => format!("{} and {}", self.expr(depth - 1), self.expr(depth - 1)),
            1 => format!("({} or {})", self.expr(depth - 1), self.expr(depth - 1)),
            _ => format!("not ({})", self.expr(depth - 1)),
        }
    }

    fn sort(&mut self) -> (SortField, SortOrder) {
        let sort = [SortField::Key, SortField::UpdatedAt, SortField::CreatedAt, SortField::Size][self.below(4)];
        (sort, if self.below(2) == 0 { SortOrder::Asc } else { SortOrder::Desc })
    }
}

/// Every expression of the filter language (metadata, `tag:`, `key:`, `created:`, `updated:`, `and`, `or`, `not`,
/// parentheses) lists exactly what a full scan with [`DocFilter::matches`] finds, in every sort, with every page.
pub async fn list_filter_language_like_a_full_scan(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let all = varied_collection(f, &c).await;
    filter_rounds(f, &c, &all).await;
}

/// `flush` describes what it did and changes nothing a reader sees.
pub async fn flush_keeps_everything(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "alpha"), doc("b.md", "bravo", r#"{"x":1}"#, &["t"])]).await;
    let before = fetch_all(&*repo, &c, &["a.md", "b.md"]).await;
    let steps = repo.flush().await.expect("flush");
    assert!(!steps.is_empty() && steps.iter().all(|s| !s.is_empty()), "{steps:?}");
    assert_eq!(fetch_all(&*repo, &c, &["a.md", "b.md"]).await, before);
    assert_eq!(read_all(&*repo, &c, "b.md").await, b"bravo");
    assert!(!repo.flush().await.expect("a second flush").is_empty());
}

/// The same with metadata fields indexed (`col collection index`): some before the documents are written (kept by
/// every write), some after (filled from the documents there are), one dropped again; arrays, objects, `null` and
/// values of every JSON type included. An index only changes speed: the answers are the full scan's.
pub async fn list_filter_language_on_indexed_fields_like_a_full_scan(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let index = |fields: &[&str]| {
        let repo = repo.clone();
        let c = c.clone();
        let fields: Vec<FieldPath> = fields.iter().map(|p| FieldPath::parse(p).unwrap()).collect();
        async move {
            let mut settings = repo.collection(&c).await.unwrap().settings;
            settings.indexed_fields = fields;
            let got = repo.update_settings(&c, settings.clone()).await.expect("update_settings");
            assert_eq!(got.settings, settings, "indexed fields are kept in the settings");
        }
    };
    index(&["labels", "lang", "nope"]).await;
    let all = varied_collection(f, &c).await;
    index(&["author", "author.name", "labels", "n", "year"]).await;
    filter_rounds(f, &c, &all).await;
    index(&["year"]).await;
    filter_rounds(f, &c, &all).await;
}

async fn filter_rounds(f: &dyn RepoFixture, c: &CollectionName, all: &[DocumentMeta]) {
    let repo = f.repo();
    let (c, all) = (c.clone(), all.to_vec());
    let now = f.clock().now();
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let (mut selective, mut rounds) = (0, 0);
    while rounds < 300 {
        let text = rng.expr(3);
        let expr = DocFilter::parse(&text, now).unwrap_or_else(|e| panic!("the scenario's own expression {text:?}: {e}"));
        let (sort, order) = rng.sort();
        let q = ListQuery { expr, sort, order, ..ListQuery::default() };
        let got = assert_list_like_scan(&*repo, &c, &all, &q, &format!("where {text:?}")).await;
        if !got.is_empty() && got.len() < all.len() {
            selective += 1;
        }
        let paged = ListQuery { offset: rng.below(4) as u64, limit: Some(rng.below(6) as u64 + 1), ..q };
        assert_list_like_scan(&*repo, &c, &all, &paged, &format!("where {text:?} paged")).await;
        rounds += 1;
    }
    assert!(selective >= 150, "the expressions must actually discriminate ({selective} of {rounds} did)");
    // Anchor the reference on hand-checked answers.
    let keys =
        |e: &str| keys_of(&reference_page(&all, &ListQuery { expr: DocFilter::parse(e, now).unwrap(), ..ListQuery::default() }).items);
    assert_eq!(keys("key:a/b"), strings(&["a/b/01.md", "a/b/07.md", "a/b/13.md", "a/b/19.md", "a/b/25.md", "a/b/31.md", "a/b/37.md"]));
    assert_eq!(keys("key:\"b/\" and tag:x and tag:y"), strings(&["b/09.md", "b/21.md", "b/33.md"]), "tags as changed later");
    assert_eq!(keys("created:60h..50h"), strings(&["a/00.md", "a/b/01.md", "ab/02.md", "b/03.md"]), "half-open [60h ago, 50h ago)");
    assert_eq!(keys("created:>=1h"), Vec::<String>::new(), "every document was created more than an hour ago");
}

/// `after` (a cursor) pages through any sort: the pages concatenate to the full listing without gaps or repeats, a
/// document written behind the cursor does not shift later pages, and `total` still counts every match.
pub async fn list_pages_with_cursors_like_a_full_scan(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let all = varied_collection(f, &c).await;
    let now = f.clock().now();
    for (sort, order) in [SortField::Key, SortField::UpdatedAt, SortField::CreatedAt, SortField::Size]
        .into_iter()
        .flat_map(|s| [(s, SortOrder::Asc), (s, SortOrder::Desc)])
    {
        for (expr, page_size) in [("", 7), ("tag:x or lang=en", 3), ("not key:a/", 4)] {
            let base = ListQuery {
                expr: DocFilter::parse_all((!expr.is_empty()).then_some(expr), now).unwrap(),
                sort,
                order,
                ..ListQuery::default()
            };
            let want = keys_of(&reference_page(&all, &base).items);
            let mut walked = Vec::new();
            let mut after = None;
            loop {
                let q = ListQuery { limit: Some(page_size), after: after.clone(), ..base.clone() };
                let got = assert_list_like_scan(&*repo, &c, &all, &q, &format!("{sort:?} {order:?} where {expr:?} after {after:?}")).await;
                let page = list(&*repo, &c, &q).await;
                assert_eq!(page.total as usize, want.len(), "total counts every match, not what is after the cursor");
                walked.extend(got);
                match page.items.last() {
                    Some(last) => after = Some(q.cursor_after(last)),
                    None => break,
                }
            }
            assert_eq!(walked, want, "{sort:?} {order:?} where {expr:?}: pages of {page_size} concatenate to the listing");
        }
    }
    // A document written before the cursor's position does not move what comes after it.
    let q = ListQuery { limit: Some(5), ..ListQuery::default() };
    let first = list(&*repo, &c, &q).await;
    let next = ListQuery { after: Some(q.cursor_after(first.items.last().unwrap())), ..q.clone() };
    let before = keys_of(&list(&*repo, &c, &next).await.items);
    put_one(&*repo, &c, plain("0-new-first.md", "new")).await;
    assert_eq!(keys_of(&list(&*repo, &c, &next).await.items), before, "a write behind the cursor shifts nothing");
}

/// `key_prefix` is a literal byte prefix: `_`, `%`, `*`, `[` and case are not patterns.
pub async fn list_filters_by_key_prefix_literally(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let keys = [
        "notes/a.md",
        "notes/b/c.md",
        "notes.md",
        "notesx.md",
        "other/notes/a.md",
        "a_b.md",
        "axb.md",
        "a%c.md",
        "abc.md",
        "a*.md",
        "a[1].md",
        "a1.md",
        "caf\u{e9}/x.md",
    ];
    put(&*repo, &c, keys.iter().map(|k| plain(k, *k)).collect()).await;
    let all = fetch_all(&*repo, &c, &keys).await;
    let cases: [(&str, &[&str]); 11] = [
        ("notes/", &["notes/a.md", "notes/b/c.md"]),
        ("notes", &["notes.md", "notes/a.md", "notes/b/c.md", "notesx.md"]),
        ("a_", &["a_b.md"]),
        ("a%", &["a%c.md"]),
        ("a*", &["a*.md"]),
        ("a[", &["a[1].md"]),
        ("Notes", &[]),
        ("zzz", &[]),
        ("caf\u{e9}", &["caf\u{e9}/x.md"]),
        ("notes/b/c.md", &["notes/b/c.md"]),
        ("", &keys),
    ];
    for (prefix, expected) in cases {
        let q = ListQuery { key_prefix: Some(prefix.to_owned()), ..ListQuery::default() };
        let got = assert_list_like_scan(&*repo, &c, &all, &q, &format!("prefix {prefix:?}")).await;
        let mut want = strings(expected);
        want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(got, want, "prefix {prefix:?}");
    }
    let paged = ListQuery { key_prefix: Some("notes".into()), limit: Some(1), offset: 1, ..ListQuery::default() };
    assert_eq!(list_keys(&*repo, &c, &paged).await, (strings(&["notes/a.md"]), 4), "prefix with paging");
}

// ---------------------------------------------------------------------------------------------------------------------
// Content addressing, garbage collection, stats
// ---------------------------------------------------------------------------------------------------------------------

/// Equal content in two collections counts once in distinct contents and unique bytes, twice in logical bytes.
pub async fn equal_content_is_deduplicated_across_collections(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    let one = create(&*repo, "one").await;
    let two = create(&*repo, "two").await;
    let content = "the same content, stored in two collections";
    let size = content.len() as u64;
    let a = put_one(&*repo, &one, doc("a.md", content, r#"{"in":"one"}"#, &[])).await;
    let b = put_one(&*repo, &two, doc("b.md", content, r#"{"in":"two"}"#, &["t"])).await;
    assert_eq!(a.content_hash, b.content_hash, "equal content, equal hash");

    let s = stats(&*repo, None).await;
    assert_eq!(
        (s.collections, s.documents, s.logical_bytes, s.distinct_contents, s.unique_bytes),
        (2, 2, 2 * size, 1, size),
        "store-wide figures: {s:?}"
    );
    assert_stored_bytes(caps, &s, "store");
    if caps.content_addressed && !caps.compression {
        assert_eq!(s.stored_bytes, size, "content-addressed storage keeps the bytes once: {s:?}");
    }
    let s1 = stats(&*repo, Some(&one)).await;
    assert_eq!((s1.collections, s1.documents, s1.logical_bytes, s1.distinct_contents, s1.unique_bytes), (1, 1, size, 1, size), "{s1:?}");
    repo.delete_documents(&one, vec![key("a.md")]).await.expect("delete");
    repo.gc(false).await.expect("gc");
    assert_eq!(read_all(&*repo, &two, "b.md").await, content.as_bytes(), "the other collection's reference keeps the content alive");
}

/// Replacing a document's content leaves the old content as garbage; a dry run only counts it; gc removes it once.
pub async fn gc_collects_replaced_content(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    let c = create(&*repo, "notes").await;
    let old = "first version of the document";
    put_one(&*repo, &c, plain("a.md", old)).await;
    put_one(&*repo, &c, plain("a.md", "second version")).await;
    let s = stats(&*repo, None).await;
    assert_eq!((s.documents, s.distinct_contents), (1, 1), "only the new content is referenced: {s:?}");
    if caps.content_addressed {
        assert_eq!(s.garbage_contents, 1, "the replaced content is garbage: {s:?}");
        let dry = repo.gc(true).await.expect("gc dry run");
        assert_eq!(dry.contents_removed, 1, "a dry run reports what it would remove");
        assert!(dry.bytes_freed > 0, "a dry run reports the bytes it would free");
        if !caps.compression {
            assert_eq!(dry.bytes_freed, old.len() as u64, "bytes freed are the stored size");
        }
        assert_eq!(stats(&*repo, None).await.garbage_contents, 1, "a dry run removes nothing");
        assert_eq!(repo.gc(false).await.expect("gc"), dry, "gc removes what the dry run reported");
        assert_eq!(stats(&*repo, None).await.garbage_contents, 0, "no garbage after gc");
    }
    let again = repo.gc(false).await.expect("second gc");
    assert_eq!((again.contents_removed, again.bytes_freed), (0, 0), "a second gc finds nothing");
    assert_eq!(read_all(&*repo, &c, "a.md").await, b"second version", "gc keeps the current content");
}

/// Content shared by two documents survives deleting one of them; deleting the last makes it garbage, which gc removes.
pub async fn gc_keeps_content_until_last_reference_goes(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    let c = create(&*repo, "notes").await;
    let shared = "bytes shared by b and c";
    put(&*repo, &c, vec![plain("b.md", shared), plain("c.md", shared), plain("other.md", "unrelated")]).await;

    repo.delete_documents(&c, vec![key("b.md")]).await.expect("delete b");
    assert_eq!(stats(&*repo, None).await.garbage_contents, 0, "c.md still references the content");
    let dry = repo.gc(true).await.expect("gc dry run");
    assert_eq!(dry.contents_removed, 0, "nothing is collectable while referenced");
    let report = repo.gc(false).await.expect("gc");
    assert_eq!((report.contents_removed, report.bytes_freed), (0, 0), "gc removes nothing while referenced");
    assert_eq!(read_all(&*repo, &c, "c.md").await, shared.as_bytes(), "c.md still reads after gc");

    repo.delete_documents(&c, vec![key("c.md")]).await.expect("delete c");
    if caps.content_addressed {
        assert_eq!(stats(&*repo, None).await.garbage_contents, 1, "the last reference went");
        let dry = repo.gc(true).await.expect("gc dry run");
        assert_eq!(dry.contents_removed, 1);
        assert_eq!(stats(&*repo, None).await.garbage_contents, 1, "a dry run removes nothing");
        let report = repo.gc(false).await.expect("gc");
        assert_eq!(report, dry, "gc removes what the dry run reported");
        if !caps.compression {
            assert_eq!(report.bytes_freed, shared.len() as u64);
        }
    }
    let s = stats(&*repo, None).await;
    assert_eq!((s.garbage_contents, s.documents, s.distinct_contents), (0, 1, 1), "after gc: {s:?}");
    assert_eq!(read_all(&*repo, &c, "other.md").await, b"unrelated");
}

/// Content put again after gc removed it is stored afresh; content put again before gc stops being garbage.
pub async fn content_put_again_after_gc_is_readable(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "phoenix")).await;
    repo.delete_documents(&c, vec![key("a.md")]).await.expect("delete");
    repo.gc(false).await.expect("gc");
    let out = put_one(&*repo, &c, plain("b.md", "phoenix")).await;
    assert_eq!((out.status, out.content_hash), (PutStatus::Created, ContentHash::of(b"phoenix")));
    assert_eq!(read_all(&*repo, &c, "b.md").await, b"phoenix", "content collected by gc is stored again on put");

    put_one(&*repo, &c, plain("c.md", "lazarus")).await;
    repo.delete_documents(&c, vec![key("c.md")]).await.expect("delete");
    if caps.content_addressed {
        assert_eq!(stats(&*repo, None).await.garbage_contents, 1);
    }
    put_one(&*repo, &c, plain("d.md", "lazarus")).await;
    assert_eq!(stats(&*repo, None).await.garbage_contents, 0, "a new reference revives garbage content");
    assert_eq!(repo.gc(false).await.expect("gc").contents_removed, 0, "gc keeps revived content");
    assert_eq!(read_all(&*repo, &c, "d.md").await, b"lazarus");
    let v = verify(&*repo, None).await;
    assert!(v.corrupt.is_empty(), "re-stored content verifies: {:?}", v.corrupt);
    assert_eq!(v.checked_documents, 2);
}

/// Stats per collection and for the whole store: documents, logical and unique bytes, distinct contents, collections.
pub async fn stats_per_collection_and_store(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    assert_eq!(stats(&*repo, None).await, StorageStats::default(), "an empty store has zero everything");
    let one = create(&*repo, "one").await;
    let two = create(&*repo, "two").await;
    let empty = create(&*repo, "empty").await;
    put(&*repo, &one, vec![plain("a.md", "aaa"), plain("b.md", "bbbb"), plain("c.md", "aaa")]).await;
    put(&*repo, &two, vec![plain("x.md", "aaa"), plain("y.md", "zz")]).await;

    let fig = |s: &StorageStats| (s.collections, s.documents, s.logical_bytes, s.distinct_contents, s.unique_bytes, s.garbage_contents);
    let s1 = stats(&*repo, Some(&one)).await;
    assert_eq!(fig(&s1), (1, 3, 10, 2, 7, 0), "collection one: {s1:?}");
    let s2 = stats(&*repo, Some(&two)).await;
    assert_eq!(fig(&s2), (1, 2, 5, 2, 5, 0), "collection two: {s2:?}");
    let se = stats(&*repo, Some(&empty)).await;
    assert_eq!(fig(&se), (1, 0, 0, 0, 0, 0), "empty collection: {se:?}");
    assert_eq!(se.stored_bytes, 0, "an empty collection stores nothing");
    let all = stats(&*repo, None).await;
    assert_eq!(fig(&all), (3, 5, 15, 3, 9, 0), "whole store: {all:?}");
    for (s, label) in [(&s1, "one"), (&s2, "two"), (&all, "store")] {
        assert_stored_bytes(caps, s, label);
    }

    put_one(&*repo, &one, plain("b.md", "bbbbbb")).await;
    let s1 = stats(&*repo, Some(&one)).await;
    assert_eq!(fig(&s1), (1, 3, 12, 2, 9, u64::from(caps.content_addressed)), "one after an update: {s1:?}");
    assert_eq!(
        stats(&*repo, Some(&two)).await.garbage_contents,
        u64::from(caps.content_addressed),
        "garbage is counted store-wide, even in a collection's stats"
    );
}

/// Stored bytes never exceed unique bytes with compression, and equal them without (logical bytes when not
/// content-addressed).
pub async fn stored_bytes_follow_capabilities(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    let c = create(&*repo, "notes").await;
    let compressible = "all work and no play makes a dull document. ".repeat(6000);
    let random = pseudo_random_chunk(3, 0, 64 * 1024);
    put(
        &*repo,
        &c,
        vec![
            plain("text.txt", &compressible),
            plain("copy.txt", &compressible),
            plain("random.bin", &random),
            plain("tiny.txt", "x"),
            plain("empty.txt", ""),
        ],
    )
    .await;
    let s = stats(&*repo, Some(&c)).await;
    let unique = (compressible.len() + random.len() + 1) as u64;
    assert_eq!((s.logical_bytes, s.unique_bytes, s.distinct_contents), (unique + compressible.len() as u64, unique, 4), "{s:?}");
    assert_stored_bytes(caps, &s, "collection");
    assert_stored_bytes(caps, &stats(&*repo, None).await, "store");
    assert_eq!(read_all(&*repo, &c, "text.txt").await, compressible.as_bytes(), "compressed or not, content reads back exactly");
    assert_eq!(read_all(&*repo, &c, "random.bin").await, random.as_ref());
}

// ---------------------------------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------------------------------

/// On a clean store every document is accounted for by `Checked` events and nothing is corrupt.
pub async fn verify_clean_store_accounts_for_every_document(f: &dyn RepoFixture) {
    let repo = f.repo();
    let one = create(&*repo, "one").await;
    let two = create(&*repo, "two").await;
    create(&*repo, "empty").await;
    put(&*repo, &one, vec![plain("a.md", "alpha"), plain("b.md", "shared"), plain("c.md", ""), plain("d.md", "shared")]).await;
    put(
        &*repo,
        &two,
        vec![plain("x.md", "shared"), streamed("y.md", vec![Ok(Bytes::from_static(b"stre")), Ok(Bytes::from_static(b"am"))])],
    )
    .await;
    let s = stats(&*repo, None).await;
    let v = verify(&*repo, None).await;
    assert!(v.corrupt.is_empty(), "a clean store has no corrupt documents: {:?}", v.corrupt);
    assert_eq!(v.checked_documents, 6, "every document is accounted for exactly once");
    assert!(
        v.checked_bytes >= s.unique_bytes && v.checked_bytes <= s.logical_bytes,
        "re-hashed bytes lie between unique and logical bytes: {v:?} {s:?}"
    );
    let empty_scope = verify(&*repo, Some(&name("empty"))).await;
    assert_eq!((empty_scope.checked_documents, empty_scope.corrupt.len()), (0, 0), "an empty collection verifies to nothing");
}

/// After damaging one document's bytes, verify reports exactly that document as corrupt, with its recorded hash, and
/// still checks every other document.
pub async fn verify_reports_corrupted_document(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("good.md", "fine"), plain("bad.md", "about to rot"), plain("also-good.md", "fine too"), plain("e.md", "")])
        .await;
    let expected = get(&*repo, &c, "bad.md").await.content_hash;
    f.corrupt(&c, &key("bad.md")).await;

    let v = verify(&*repo, None).await;
    assert_eq!(v.corrupt_keys(), [("notes".to_owned(), "bad.md".to_owned())], "exactly the damaged document is corrupt");
    let bad = &v.corrupt[0];
    assert_eq!(bad.expected, expected, "Corrupt carries the recorded hash");
    assert_ne!(bad.actual, Some(expected), "the actual hash (when readable) differs from the recorded one");
    assert!(!bad.problem.is_empty(), "Corrupt explains the problem");
    assert_eq!(v.checked_documents, 3, "the other documents are still checked");
    assert_eq!(get(&*repo, &c, "bad.md").await.content_hash, expected, "verify does not rewrite the recorded hash");

    f.corrupt(&c, &key("e.md")).await;
    let v = verify(&*repo, Some(&c)).await;
    assert_eq!(
        v.corrupt_keys(),
        [("notes".to_owned(), "bad.md".to_owned()), ("notes".to_owned(), "e.md".to_owned())],
        "damaged empty content is corrupt too"
    );
    assert_eq!(v.checked_documents, 2);
}

/// Damaged content shared by two documents makes both corrupt in a content-addressed repository (only the damaged one
/// otherwise); each is reported once.
pub async fn verify_reports_every_document_of_corrupted_shared_content(f: &dyn RepoFixture) {
    let repo = f.repo();
    let caps = repo.capabilities();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("twin-1.md", "twin content"), plain("twin-2.md", "twin content"), plain("single.md", "alone")]).await;
    f.corrupt(&c, &key("twin-1.md")).await;
    let v = verify(&*repo, None).await;
    let mut want = vec![("notes".to_owned(), "twin-1.md".to_owned())];
    if caps.content_addressed {
        want.push(("notes".to_owned(), "twin-2.md".to_owned()));
    }
    assert_eq!(v.corrupt_keys(), want, "documents sharing the damaged bytes");
    assert!(v.corrupt.iter().all(|d| d.expected == ContentHash::of(b"twin content")), "each carries its recorded hash");
    assert_eq!(v.checked_documents + v.corrupt.len() as u64, 3, "every document accounted for once: {v:?}");
}

/// Verify scoped to a collection counts only that collection's documents, even for content shared with another.
pub async fn verify_scoped_to_one_collection(f: &dyn RepoFixture) {
    let repo = f.repo();
    let one = create(&*repo, "one").await;
    let two = create(&*repo, "two").await;
    put(&*repo, &one, vec![plain("a.md", "shared between collections"), plain("b.md", "only in one")]).await;
    put(&*repo, &two, vec![plain("x.md", "only in two, soon damaged"), plain("y.md", "shared between collections")]).await;
    f.corrupt(&two, &key("x.md")).await;

    let v1 = verify(&*repo, Some(&one)).await;
    assert!(v1.corrupt.is_empty(), "damage in another collection is not reported: {:?}", v1.corrupt);
    assert_eq!(v1.checked_documents, 2, "only collection one's documents are counted");
    let v2 = verify(&*repo, Some(&two)).await;
    assert_eq!(v2.corrupt_keys(), [("two".to_owned(), "x.md".to_owned())]);
    assert_eq!(v2.checked_documents, 1, "collection two's intact document");
    let all = verify(&*repo, None).await;
    assert_eq!(all.corrupt_keys(), [("two".to_owned(), "x.md".to_owned())]);
    assert_eq!(all.checked_documents, 3, "store-wide");
}

// ---------------------------------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------------------------------

fn concurrent_content(task: usize, batch: usize, i: usize) -> String {
    if i == 0 { format!("shared by every task, batch {batch}") } else { format!("task {task}, batch {batch}, document {i}") }
}

/// 8 tasks each put 25 batches of 4 documents into one collection at once (some content shared between tasks): all 800
/// documents are there, each reads back with the right hash, and stats count the distinct contents right.
pub async fn concurrent_writers_in_one_collection(f: &dyn RepoFixture) {
    const TASKS: usize = 8;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 4;
    let repo = f.repo();
    let c = create(&*repo, "busy").await;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let repo = Arc::clone(&repo);
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            for batch in 0..BATCHES {
                let docs = (0..PER_BATCH)
                    .map(|i| {
                        doc(
                            &format!("t{task}/b{batch:02}/d{i}.txt"),
                            concurrent_content(task, batch, i),
                            &format!(r#"{{"task":{task}}}"#),
                            &[],
                        )
                    })
                    .collect();
                let out = repo.put_batch(&c, docs).await.unwrap_or_else(|e| panic!("task {task} batch {batch}: {e}"));
                assert!(out.iter().all(|o| o.status == PutStatus::Created && o.version == 1), "task {task} batch {batch}: {out:?}");
            }
        }));
    }
    for h in handles {
        h.await.expect("writer task panicked");
    }

    let page = list(&*repo, &c, &ListQuery::default()).await;
    assert_eq!(page.total, (TASKS * BATCHES * PER_BATCH) as u64, "every document is there");
    let mut logical = 0u64;
    let mut distinct = BTreeSet::new();
    for task in 0..TASKS {
        for batch in 0..BATCHES {
            for i in 0..PER_BATCH {
                let k = format!("t{task}/b{batch:02}/d{i}.txt");
                let content = concurrent_content(task, batch, i);
                let (m, s) = repo.read_content(&c, &key(&k)).await.unwrap_or_else(|e| panic!("read {k}: {e}"));
                assert_eq!(m.content_hash, ContentHash::of(content.as_bytes()), "{k}: recorded hash");
                assert_eq!(collect(s).await, content.as_bytes(), "{k}: content");
                assert_eq!(m.metadata, meta(&format!(r#"{{"task":{task}}}"#)), "{k}: metadata");
                logical += content.len() as u64;
                distinct.insert(content);
            }
        }
    }
    let s = stats(&*repo, Some(&c)).await;
    assert_eq!(distinct.len(), BATCHES + TASKS * BATCHES * (PER_BATCH - 1), "the scenario's own arithmetic");
    assert_eq!(
        (s.documents, s.logical_bytes, s.distinct_contents, s.garbage_contents),
        ((TASKS * BATCHES * PER_BATCH) as u64, logical, distinct.len() as u64, 0),
        "stats after concurrent writes: {s:?}"
    );
    let v = verify(&*repo, Some(&c)).await;
    assert!(v.corrupt.is_empty());
    assert_eq!(v.checked_documents, s.documents);
}

/// 8 tasks updating one key 10 times each with distinct content: every put is one version, none is lost.
pub async fn concurrent_updates_of_one_key_count_every_version(f: &dyn RepoFixture) {
    const TASKS: usize = 8;
    const PUTS: usize = 10;
    let repo = f.repo();
    let c = create(&*repo, "hot").await;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let repo = Arc::clone(&repo);
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..PUTS {
                let out = repo.put_batch(&c, vec![plain("hot.md", format!("task {task} put {n}"))]).await;
                statuses.push(out.unwrap_or_else(|e| panic!("task {task} put {n}: {e}"))[0].status);
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("writer task panicked"));
    }
    assert_eq!(all.iter().filter(|s| **s == PutStatus::Created).count(), 1, "exactly one put created the document");
    assert_eq!(all.iter().filter(|s| **s == PutStatus::Updated).count(), TASKS * PUTS - 1, "every other put updated it");
    let d = get(&*repo, &c, "hot.md").await;
    assert_eq!(d.version, (TASKS * PUTS) as u64, "no version was lost or doubled");
    let content = read_all(&*repo, &c, "hot.md").await;
    assert_eq!(ContentHash::of(&content), d.content_hash, "the final content matches its recorded hash");
    if repo.capabilities().content_addressed {
        assert_eq!(stats(&*repo, None).await.garbage_contents, (TASKS * PUTS - 1) as u64, "every replaced content is garbage");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Snapshots and verbatim restores (backup, export).

/// A snapshot does not see writes made after it was taken, while those writes are not blocked.
pub async fn snapshot_shows_one_moment(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "snap").await;
    put(&*repo, &c, vec![plain("a.md", "one"), plain("b.md", "two")]).await;
    let snap = repo.snapshot().await.expect("snapshot");
    // Writers go on while the snapshot is open.
    put(&*repo, &c, vec![plain("a.md", "changed"), plain("c.md", "three")]).await;
    repo.delete_documents(&c, vec![key("b.md")]).await.expect("delete");
    create(&*repo, "later").await;
    let docs = snap.documents(&c, None, 100).await.expect("documents");
    assert_eq!(keys_of(&docs), ["a.md", "b.md"], "the snapshot shows the moment it was taken");
    assert_eq!(snap.content(&docs[0].content_hash).await.expect("content"), Bytes::from_static(b"one"));
    let names: Vec<String> = snap.collections().await.expect("collections").into_iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["snap"]);
    drop(snap);
    assert_eq!(keys_of(&repo.snapshot().await.expect("snapshot").documents(&c, None, 100).await.expect("documents")), ["a.md", "c.md"]);
}

/// Pages follow key order after `after`; content of every size reads back whole; a missing collection is named.
pub async fn snapshot_pages_documents_and_reads_content(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "pages").await;
    let docs: Vec<NewDocument> = (0..25).map(|i| plain(&format!("k{i:02}"), format!("content {i}"))).collect();
    put(&*repo, &c, docs).await;
    put(&*repo, &c, vec![streamed("big.bin", (0..3).map(|i| Ok(pseudo_random_chunk(7, i, 700_000))).collect())]).await;
    let snap = repo.snapshot().await.expect("snapshot");
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = snap.documents(&c, after.clone(), 10).await.expect("page");
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        all.extend(page);
    }
    assert_eq!(all.len(), 26);
    assert!(all.windows(2).all(|w| w[0].key.as_str().as_bytes() < w[1].key.as_str().as_bytes()), "key order");
    for d in &all {
        let bytes = snap.content(&d.content_hash).await.expect("content");
        assert_eq!(bytes.len() as u64, d.size, "{}", d.key);
        assert_eq!(ContentHash::of(&bytes), d.content_hash, "{}", d.key);
    }
    // Many at once, in the order asked, repeats included, the large content too.
    let mut hashes: Vec<ContentHash> = all.iter().rev().map(|d| d.content_hash).collect();
    hashes.push(all[3].content_hash);
    let many = snap.contents(hashes.clone()).await.expect("contents");
    assert_eq!(many.len(), hashes.len());
    for (h, bytes) in hashes.iter().zip(&many) {
        assert_eq!(ContentHash::of(bytes), *h, "contents answers in the order asked");
    }
    assert!(snap.contents(Vec::new()).await.expect("no contents").is_empty());
    assert!(snap.contents(vec![ContentHash::of(b"never stored")]).await.is_err(), "a missing content is an error");
    expect_collection_not_found(snap.documents(&name("nope"), None, 10).await, "snapshot documents", &name("nope"));
}

/// `content_stream` gives exactly what `content` gives, in pieces of at most a few MiB, as of the snapshot's moment
/// (a content replaced after the snapshot still streams), and fails for a content the snapshot never had.
pub async fn snapshot_streams_contents_of_its_moment(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "streams").await;
    put(&*repo, &c, vec![plain("small.md", "small content")]).await;
    // Over 8 MiB: an answer in one piece fails the piece-size check below.
    put(&*repo, &c, vec![streamed("big.bin", (0..10).map(|i| Ok(pseudo_random_chunk(11, i, 900_000))).collect())]).await;
    let snap = repo.snapshot().await.expect("snapshot");
    // Replaced after the snapshot: the snapshot still streams the content of its moment.
    put(&*repo, &c, vec![plain("big.bin", "replaced")]).await;
    for d in snap.documents(&c, None, 10).await.expect("documents") {
        let whole = snap.content(&d.content_hash).await.expect("content");
        let mut stream = snap.content_stream(&d.content_hash).await.expect("content_stream");
        let mut streamed = Vec::new();
        while let Some(piece) = stream.next().await {
            let piece = piece.expect("piece");
            assert!(piece.len() <= 8 * 1024 * 1024, "{}: a piece of {} bytes", d.key, piece.len());
            streamed.extend_from_slice(&piece);
        }
        assert_eq!(streamed.len() as u64, d.size, "{}", d.key);
        assert_eq!(ContentHash::of(&streamed), d.content_hash, "{}: the content of the snapshot's moment", d.key);
        assert_eq!(&streamed[..], &whole[..], "{}", d.key);
    }
    assert!(snap.content_stream(&ContentHash::of(b"never stored")).await.is_err(), "a content the snapshot never had is an error");
}

/// `restore_document_stream` writes one document verbatim from a stream of pieces, and writes nothing when the
/// content does not match its description or the stream fails.
pub async fn restore_document_stream_writes_verbatim_or_nothing(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "restream").await;
    put(&*repo, &c, vec![plain("old.md", "old content")]).await;
    let pieces: Vec<Bytes> = (0..3).map(|i| pseudo_random_chunk(13, i, 1_000_000)).collect();
    let whole: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
    let mut meta = get(&*repo, &c, "old.md").await;
    meta.key = key("large.bin");
    meta.version = 4;
    meta.created_at = colstore_domain::Timestamp::from_millis(1_000);
    meta.updated_at = colstore_domain::Timestamp::from_millis(2_000);
    meta.metadata = self::meta(r#"{"restored": true}"#);
    meta.tags = tags(&["big"]);
    meta.content_hash = ContentHash::of(&whole);
    meta.size = whole.len() as u64;
    let stream = |pieces: Vec<Bytes>| -> ContentStream { futures::stream::iter(pieces.into_iter().map(Ok)).boxed() };
    repo.restore_document_stream(&c, meta.clone(), stream(pieces.clone())).await.expect("restore_document_stream");
    assert_eq!(get(&*repo, &c, "large.bin").await, meta, "restored verbatim");
    assert_eq!(read_all(&*repo, &c, "large.bin").await, whole);

    // A content that is not the description's, and a stream that fails half-way: nothing is written.
    let mut other = meta.clone();
    other.key = key("other.bin");
    let short = pieces[..2].to_vec();
    let r = repo.restore_document_stream(&c, other.clone(), stream(short)).await;
    assert!(matches!(r, Err(RepoError::Corrupt { .. })), "{r:?}");
    expect_document_not_found(repo.document(&c, &other.key).await, "document", &c, "other.bin");
    let failing: ContentStream = futures::stream::iter([Ok(pieces[0].clone()), Err(std::io::Error::other("the source broke"))]).boxed();
    let r = repo.restore_document_stream(&c, other.clone(), failing).await;
    assert!(r.is_err(), "a failing stream is an error");
    expect_document_not_found(repo.document(&c, &other.key).await, "document", &c, "other.bin");
    // The document already there is untouched by the failed attempts.
    let mut over = meta.clone();
    over.content_hash = ContentHash::of(b"x");
    over.size = 1;
    assert!(repo.restore_document_stream(&c, over, stream(vec![Bytes::from_static(b"y")])).await.is_err());
    assert_eq!(get(&*repo, &c, "large.bin").await, meta, "a refused restore leaves the document as it was");
    assert_eq!(read_all(&*repo, &c, "large.bin").await, whole);
    let r = repo.restore_document_stream(&name("nope"), meta.clone(), stream(pieces)).await;
    expect_collection_not_found(r, "restore_document_stream", &name("nope"));
}

/// Restored documents keep every field as given: version, both times, metadata and tags, content.
pub async fn restore_documents_writes_verbatim(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "restore").await;
    put(&*repo, &c, vec![plain("old.md", "old content")]).await;
    let mut meta = get(&*repo, &c, "old.md").await;
    meta.version = 7;
    meta.created_at = colstore_domain::Timestamp::from_millis(1_000);
    meta.updated_at = colstore_domain::Timestamp::from_millis(2_000);
    meta.metadata = self::meta(r#"{"restored": true, "n": 1.5}"#);
    meta.tags = tags(&["x", "y"]);
    let content = Bytes::from_static(b"restored content");
    meta.content_hash = ContentHash::of(&content);
    meta.size = content.len() as u64;
    let mut fresh = meta.clone();
    fresh.key = key("new/doc.md");
    fresh.version = 1;
    let big = pseudo_random_chunk(3, 0, 2_500_000);
    let mut large = meta.clone();
    large.key = key("large.bin");
    large.content_hash = ContentHash::of(&big);
    large.size = big.len() as u64;
    repo.restore_documents(&c, vec![(meta.clone(), content.clone()), (fresh.clone(), content.clone()), (large.clone(), big.clone())])
        .await
        .expect("restore_documents");
    for want in [&meta, &fresh, &large] {
        let got = get(&*repo, &c, want.key.as_str()).await;
        assert_eq!(&got, want, "restored verbatim");
        let (_, stream) = repo.read_content(&c, &want.key).await.expect("read");
        assert_eq!(ContentHash::of(&collect(stream).await), want.content_hash);
    }
    expect_collection_not_found(repo.restore_documents(&name("nope"), vec![]).await, "restore_documents", &name("nope"));
    let dup = repo.restore_documents(&c, vec![(meta.clone(), content.clone()), (meta.clone(), content.clone())]).await;
    assert!(matches!(dup, Err(RepoError::DuplicateKey(_))), "{dup:?}");
}

/// A content that does not match its description is refused and nothing of the batch is written.
pub async fn restore_documents_refuses_content_that_does_not_match(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "refuse").await;
    put(&*repo, &c, vec![plain("a.md", "a")]).await;
    let good = get(&*repo, &c, "a.md").await;
    let mut other = good.clone();
    other.key = key("b.md");
    let r = repo.restore_documents(&c, vec![(other, Bytes::from_static(b"a")), (good.clone(), Bytes::from_static(b"not a"))]).await;
    assert!(matches!(r, Err(RepoError::Corrupt { .. })), "{r:?}");
    expect_document_not_found(repo.document(&c, &key("b.md")).await, "document", &c, "b.md");
}

/// `restore_collection` creates with the given settings and time, or updates only the settings.
pub async fn restore_collection_creates_or_updates_settings(f: &dyn RepoFixture) {
    let repo = f.repo();
    let settings = CollectionSettings {
        vectors: None,
        chunking: ChunkingSettings::new(300, 30).expect("chunking"),
        index: None,
        fusion: None,
        indexed_fields: Vec::new(),
    };
    let at = colstore_domain::Timestamp::from_millis(123_456);
    repo.restore_collection(&name("made"), settings.clone(), at).await.expect("restore_collection");
    let c = repo.collection(&name("made")).await.expect("collection");
    assert_eq!((c.settings.clone(), c.created_at, c.document_count), (settings.clone(), at, 0));
    put(&*repo, &c.name, vec![plain("k", "v")]).await;
    repo.restore_collection(&name("made"), CollectionSettings::default(), colstore_domain::Timestamp::from_millis(1)).await.expect("again");
    let c = repo.collection(&name("made")).await.expect("collection");
    assert_eq!((c.settings, c.created_at, c.document_count), (CollectionSettings::default(), at, 1));
}

/// A source stamp is a cache for `col add`: an implementation may remember none, but one it answers was recorded for
/// the document as it is now. A record for a version or content the document does not have records nothing; any later
/// write (content, metadata) and a delete followed by a new document under the key make the stamp stale.
pub async fn source_stamps_are_answered_only_for_the_version_recorded(f: &dyn RepoFixture) {
    let repo = f.repo();
    let c = create(&*repo, "c").await;
    let keys = [key("a.md"), key("b.md"), key("c.md"), key("d.md"), key("none.md")];
    put(&*repo, &c, vec![plain("a.md", "alpha"), plain("b.md", "beta"), plain("c.md", "gamma"), plain("d.md", "delta")]).await;
    let stamp = |n: u64| SourceStamp { size: n, mtime_ns: 1, ctime_ns: 2, inode: 3, options: 4, seen_at_ns: 5 };
    let record = |k: &str, version: u64, content: &str, n: u64| SourceRecord {
        key: key(k),
        version,
        content_hash: ContentHash::of(content.as_bytes()),
        stamp: stamp(n),
    };
    let records = vec![
        record("a.md", 1, "alpha", 1),
        record("b.md", 1, "beta", 2),
        record("c.md", 1, "gamma", 3),
        record("d.md", 2, "delta", 4),
        record("none.md", 1, "x", 5),
    ];
    repo.record_source_stamps(&c, records).await.expect("record");
    let answered = repo.source_stamps(&c, &keys).await.expect("stamps");
    assert_eq!(answered.len(), keys.len(), "one answer per key, in order");
    let remembers = answered[0].is_some();
    if remembers {
        let expected = vec![Some(stamp(1)), Some(stamp(2)), Some(stamp(3)), None, None];
        assert_eq!(answered, expected, "d.md was recorded for a version it does not have");
    } else {
        assert!(answered.iter().all(Option::is_none), "{answered:?}");
    }
    put(&*repo, &c, vec![plain("a.md", "alpha 2")]).await;
    put(&*repo, &c, vec![doc("b.md", "beta", r#"{"x":1}"#, &[])]).await;
    repo.delete_documents(&c, vec![key("c.md")]).await.expect("delete");
    f.clock().advance(HOUR);
    put(&*repo, &c, vec![plain("c.md", "gamma")]).await;
    assert_eq!(repo.source_stamps(&c, &keys).await.expect("stamps"), vec![None; 5], "every document changed since");
    if remembers {
        // Recorded again for the documents as they are now, they are answered again.
        let a = get(&*repo, &c, "a.md").await.version;
        repo.record_source_stamps(&c, vec![record("a.md", a, "alpha 2", 9), record("c.md", 1, "gamma", 8)]).await.expect("record");
        let expected = vec![Some(stamp(9)), None, Some(stamp(8)), None, None];
        assert_eq!(repo.source_stamps(&c, &keys).await.expect("stamps"), expected);
    }
}
