//! The `TextIndex` conformance suite: keyword search over chunks, as the SQLite adapter (FTS5) and the fake answer it.
//!
//! Rankings are asserted as orders that BM25 must give (a chunk with both rare words before chunks with one), never as
//! scores, so the fake's arithmetic and FTS5's may differ in the last digits.

use std::sync::Arc;

use colstore_domain::ports::{CollectionRepo, KeywordHit, RepoError, TextIndex};
use colstore_domain::{ChunkingSettings, CollectionName, CollectionSettings, DocFilter, KeywordQuery, Timestamp, chunk_text};

use crate::repo::{create, doc, name, plain, put, put_one};

/// One fresh store: its repository and the same store as a [`TextIndex`].
pub trait TextFixture: Send + Sync {
    /// The repository (empty at first).
    fn repo(&self) -> Arc<dyn CollectionRepo>;
    /// The same store's full-text index.
    fn text(&self) -> Arc<dyn TextIndex>;
    /// Whether a put indexes the text it writes in its own transaction (the SQLite adapter in sqlite mode), so
    /// nothing waits for [`TextIndex::catch_up`]; otherwise (filesystem mode) written documents wait for it.
    fn indexes_on_write(&self) -> bool;
}

/// Turns every scenario of the `TextIndex` suite into a `#[tokio::test]` against one backend; `$factory` is an
/// `async fn(Arc<ManualClock>) -> Box<dyn TextFixture>`.
#[macro_export]
macro_rules! text_conformance {
    ($factory:path) => {
        $crate::text_conformance!(@scenarios $factory;
            a_rare_pair_ranks_first,
            catch_up_indexes_what_changed_and_deletes_are_immediate,
            documents_written_again_before_indexing,
            hits_name_their_chunk,
            phrases_and_prefixes,
            case_and_accents_fold,
            filters_apply,
            collections_are_separate,
            rechunking_reindexes,
            binary_and_empty_documents_have_no_text,
            limit_and_ties,
            check_counts_indexed_and_pending,
            missing_collection_is_reported,
        );
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let clock = std::sync::Arc::new($crate::ManualClock::at_2024());
                let f = $factory(clock).await;
                $crate::text::$scenario(&*f).await;
            }
        )+
    };
}

async fn search(f: &dyn TextFixture, c: &CollectionName, q: &str, filter: &str, limit: usize) -> Vec<KeywordHit> {
    let filter = if filter.is_empty() { DocFilter::default() } else { DocFilter::parse(filter, Timestamp::from_millis(0)).unwrap() };
    f.text().keyword_search(c, &KeywordQuery::parse(q), &filter, limit).await.unwrap_or_else(|e| panic!("search {q:?}: {e}"))
}

fn keys(hits: &[KeywordHit]) -> Vec<String> {
    hits.iter().map(|h| h.key.to_string()).collect()
}

async fn indexed(f: &dyn TextFixture, c: &CollectionName) -> u64 {
    f.text().catch_up(c).await.unwrap_or_else(|e| panic!("catch_up {c}: {e}"))
}

/// How many of `n` documents just put wait for a catch-up.
fn waiting(f: &dyn TextFixture, n: u64) -> u64 {
    if f.indexes_on_write() { 0 } else { n }
}

/// Words no test query uses.
fn filler(i: usize, n: usize) -> String {
    const WORDS: &[&str] =
        &["river", "stone", "paper", "window", "garden", "silver", "orange", "number", "yellow", "forest", "bridge", "candle"];
    (0..n).map(|j| WORDS[(i * 7 + j * 13 + j * j) % WORDS.len()]).collect::<Vec<_>>().join(" ")
}

/// The issue's first paragraph: two rare words together in exactly one document rank it first, above documents
/// with one of them (each several times) and all the rest.
pub async fn a_rare_pair_ranks_first(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let mut docs: Vec<_> = (0..200).map(|i| plain(&format!("n{i:03}.md"), filler(i, 40))).collect();
    docs[17] = plain("n017.md", format!("{} zebracornflakes quasar", filler(17, 38)));
    for (i, word) in [(40, "zebracornflakes"), (80, "zebracornflakes"), (120, "quasar"), (160, "quasar")] {
        docs[i] = plain(&format!("n{i:03}.md"), format!("{} {word}", filler(i, 39)));
    }
    put(&*repo, &c, docs).await;
    assert_eq!(indexed(f, &c).await, waiting(f, 200));
    let hits = search(f, &c, "zebracornflakes quasar", "", 3).await;
    assert_eq!(hits.first().map(|h| h.key.as_str()), Some("n017.md"), "{hits:?}");
    assert_eq!(hits.len(), 3);
    assert!(hits[0].score > hits[1].score, "the pair scores above one word: {hits:?}");
    assert_eq!(search(f, &c, "zebracornflakes quasar", "", 10).await.len(), 5, "any word matches");
    assert!(search(f, &c, "nothingmatches", "", 10).await.is_empty());
    assert!(search(f, &c, " -- ", "", 10).await.is_empty(), "a query with no word finds nothing");
}

/// `catch_up` indexes new and changed documents once; until it runs, a changed document answers with its old text
/// (unless the put indexed it). A deleted document's chunks are gone at once.
pub async fn catch_up_indexes_what_changed_and_deletes_are_immediate(f: &dyn TextFixture) {
    let repo = f.repo();
    let text = f.text();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "alpha apple"), plain("b.md", "bravo banana"), plain("c.md", "charlie cherry")]).await;
    assert_eq!(text.not_indexed(&c).await.unwrap(), waiting(f, 3));
    if !f.indexes_on_write() {
        assert!(search(f, &c, "alpha", "", 10).await.is_empty(), "nothing is searchable before it is indexed");
    }
    assert_eq!(indexed(f, &c).await, waiting(f, 3));
    assert_eq!(text.not_indexed(&c).await.unwrap(), 0);
    assert_eq!(indexed(f, &c).await, 0, "a second catch-up has nothing to do");
    assert_eq!(keys(&search(f, &c, "alpha", "", 10).await), ["a.md"]);

    put_one(&*repo, &c, plain("a.md", "alpha apricot")).await;
    put_one(&*repo, &c, doc("b.md", "bravo banana", r#"{"x":1}"#, &["t"])).await;
    assert_eq!(text.not_indexed(&c).await.unwrap(), waiting(f, 1), "a metadata-only change keeps the text");
    if !f.indexes_on_write() {
        assert_eq!(keys(&search(f, &c, "apple", "", 10).await), ["a.md"], "old text until the next catch-up");
    }
    assert_eq!(indexed(f, &c).await, waiting(f, 1));
    assert!(search(f, &c, "apple", "", 10).await.is_empty());
    assert_eq!(keys(&search(f, &c, "apricot", "", 10).await), ["a.md"]);

    repo.delete_documents(&c, vec![crate::repo::key("c.md")]).await.unwrap();
    assert!(search(f, &c, "cherry", "", 10).await.is_empty(), "deleted at once, without a catch-up");
    assert_eq!(text.not_indexed(&c).await.unwrap(), 0);
}

/// A document written several times (content, metadata, a new key in the same batch) before any catch-up is written
/// every time and indexed once, with its last text.
pub async fn documents_written_again_before_indexing(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put_one(&*repo, &c, plain("a.md", "first draft")).await;
    put_one(&*repo, &c, plain("a.md", "second draft")).await;
    put_one(&*repo, &c, doc("a.md", "third draft", r#"{"v":3}"#, &[])).await;
    put(&*repo, &c, vec![plain("a.md", "final text"), plain("b.md", "other")]).await;
    assert_eq!(f.text().not_indexed(&c).await.unwrap(), waiting(f, 2));
    assert_eq!(indexed(f, &c).await, waiting(f, 2));
    assert!(search(f, &c, "draft", "", 10).await.is_empty());
    assert_eq!(keys(&search(f, &c, "final", "", 10).await), ["a.md"]);
    repo.update_settings(&c, CollectionSettings { chunking: ChunkingSettings::new(500, 10).unwrap(), ..CollectionSettings::default() })
        .await
        .unwrap();
    put_one(&*repo, &c, plain("b.md", "changed while pending")).await;
    assert_eq!(indexed(f, &c).await, if f.indexes_on_write() { 1 } else { 2 }, "re-chunked, and written while pending (a put indexes it)");
    assert_eq!(keys(&search(f, &c, "pending", "", 10).await), ["b.md"]);
}

/// A hit names the chunk that holds the words, numbered as `chunk_text` numbers it.
pub async fn hits_name_their_chunk(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = name("small");
    let chunking = ChunkingSettings::new(200, 0).unwrap();
    repo.create_collection(colstore_domain::CollectionSpec {
        name: c.clone(),
        settings: CollectionSettings { chunking, ..CollectionSettings::default() },
    })
    .await
    .unwrap();
    let text = format!("{}\n\n{}\n\n{} lighthouse keeper\n\n{}", filler(1, 30), filler(2, 30), filler(3, 25), filler(4, 30));
    put_one(&*repo, &c, plain("long.md", &text)).await;
    indexed(f, &c).await;
    let chunks = chunk_text(&text, &chunking);
    assert!(chunks.len() >= 4, "the document spans several chunks");
    let want: Vec<u32> = chunks.iter().filter(|ch| ch.text.contains("lighthouse")).map(|ch| ch.index).collect();
    let hits = search(f, &c, "lighthouse", "", 10).await;
    assert_eq!(hits.iter().map(|h| h.chunk).collect::<Vec<_>>(), want, "{hits:?}");
    assert!(want[0] > 0);
}

/// `"a phrase"` needs its words in order and adjacent; `pre*` matches words starting so.
pub async fn phrases_and_prefixes(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(
        &*repo,
        &c,
        vec![plain("a.md", "the write ahead log"), plain("b.md", "log ahead of the write"), plain("c.md", "rewriting history")],
    )
    .await;
    indexed(f, &c).await;
    assert_eq!(keys(&search(f, &c, "\"write ahead\"", "", 10).await), ["a.md"]);
    let mut prefix = keys(&search(f, &c, "writ*", "", 10).await);
    prefix.sort();
    assert_eq!(prefix, ["a.md", "b.md"], "a prefix starts the word: rewriting does not match");
    assert_eq!(keys(&search(f, &c, "rewrit*", "", 10).await), ["c.md"]);
    assert!(search(f, &c, "writ", "", 10).await.is_empty(), "a word is a whole word");
}

/// Case and accents do not matter (FTS5 `unicode61 remove_diacritics 2`); punctuation separates words.
pub async fn case_and_accents_fold(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, vec![plain("a.md", "Café ÜBER-naïve"), plain("b.md", "cafeteria")]).await;
    indexed(f, &c).await;
    for q in ["cafe", "CAFÉ", "uber", "naive", "über naïve"] {
        assert_eq!(keys(&search(f, &c, q, "", 10).await), ["a.md"], "{q}");
    }
}

/// The filter language restricts keyword hits exactly as it restricts listings.
pub async fn filters_apply(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(
        &*repo,
        &c,
        vec![
            doc("en/a.md", "shared word", r#"{"lang":"en"}"#, &["x"]),
            doc("fr/b.md", "shared word", r#"{"lang":"fr"}"#, &["x"]),
            doc("en/c.md", "shared word", r#"{"lang":"en"}"#, &[]),
        ],
    )
    .await;
    indexed(f, &c).await;
    assert_eq!(keys(&search(f, &c, "shared", "lang=en", 10).await), ["en/a.md", "en/c.md"]);
    assert_eq!(keys(&search(f, &c, "shared", "tag:x and not key:en/", 10).await), ["fr/b.md"]);
    assert!(search(f, &c, "shared", "lang=de", 10).await.is_empty());
}

/// A collection's search never returns another collection's documents.
pub async fn collections_are_separate(f: &dyn TextFixture) {
    let repo = f.repo();
    let a = create(&*repo, "a").await;
    let b = create(&*repo, "b").await;
    put_one(&*repo, &a, plain("x.md", "unique marmalade")).await;
    put_one(&*repo, &b, plain("y.md", "unique marmalade")).await;
    assert_eq!(indexed(f, &a).await, waiting(f, 1));
    assert_eq!(f.text().not_indexed(&b).await.unwrap(), waiting(f, 1), "each collection catches up on its own");
    assert_eq!(keys(&search(f, &a, "marmalade", "", 10).await), ["x.md"]);
    if !f.indexes_on_write() {
        assert!(search(f, &b, "marmalade", "", 10).await.is_empty());
    }
    indexed(f, &b).await;
    assert_eq!(keys(&search(f, &b, "marmalade", "", 10).await), ["y.md"]);
}

/// New chunking settings re-index every document of the collection, and hits then name the new chunks.
pub async fn rechunking_reindexes(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let text = format!("{} needle {}", filler(5, 60), filler(6, 60));
    put(&*repo, &c, vec![plain("a.md", &text), plain("b.md", "short")]).await;
    indexed(f, &c).await;
    assert_eq!(search(f, &c, "needle", "", 10).await.iter().map(|h| h.chunk).collect::<Vec<_>>(), [0]);
    let small = ChunkingSettings::new(100, 0).unwrap();
    repo.update_settings(&c, CollectionSettings { chunking: small, ..CollectionSettings::default() }).await.unwrap();
    assert_eq!(f.text().not_indexed(&c).await.unwrap(), 2, "every document of the collection");
    assert_eq!(indexed(f, &c).await, 2);
    let want: Vec<u32> = chunk_text(&text, &small).iter().filter(|ch| ch.text.contains("needle")).map(|ch| ch.index).collect();
    assert!(want[0] > 0);
    assert_eq!(search(f, &c, "needle", "", 10).await.iter().map(|h| h.chunk).collect::<Vec<_>>(), want);
}

/// Documents that are not UTF-8 text, or empty, are indexed as no chunks (not left pending forever).
pub async fn binary_and_empty_documents_have_no_text(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    let mut bin = b"binary \xff\xfe zebra".to_vec();
    bin.push(0);
    put(&*repo, &c, vec![plain("bin.dat", bin), plain("empty.md", ""), plain("blank.md", "   \n ")]).await;
    assert_eq!(indexed(f, &c).await, waiting(f, 3));
    assert_eq!(f.text().not_indexed(&c).await.unwrap(), 0);
    assert!(search(f, &c, "zebra binary", "", 10).await.is_empty());
}

/// `check` counts indexed and pending documents and finds nothing wrong with an index only the store wrote;
/// `repair` of a clean index changes nothing.
pub async fn check_counts_indexed_and_pending(f: &dyn TextFixture) {
    let repo = f.repo();
    let text = f.text();
    let c = create(&*repo, "notes").await;
    let other = create(&*repo, "other").await;
    put(&*repo, &c, vec![plain("a.md", "alpha"), plain("b.md", "bravo"), plain("c.md", "charlie")]).await;
    put_one(&*repo, &other, plain("x.md", "xray")).await;
    let check = text.check(&c).await.unwrap();
    assert_eq!((check.indexed, check.pending), (3 - waiting(f, 3), waiting(f, 3)));
    assert!(check.is_clean(), "{check:?}");
    indexed(f, &c).await;
    let check = text.check(&c).await.unwrap();
    assert_eq!((check.indexed, check.pending, check.is_clean()), (3, 0, true), "{check:?}");
    repo.update_settings(&c, CollectionSettings { chunking: ChunkingSettings::new(100, 0).unwrap(), ..CollectionSettings::default() })
        .await
        .unwrap();
    assert_eq!(text.check(&c).await.unwrap().pending, 3, "re-chunking marks, it is no drift");
    indexed(f, &c).await;
    repo.delete_documents(&c, vec![crate::repo::key("b.md")]).await.unwrap();
    let check = text.check(&c).await.unwrap();
    assert_eq!((check.indexed, check.pending), (2, 0));
    assert!(check.is_clean(), "a deletion leaves no orphan: {check:?}");
    assert_eq!(text.repair(&c).await.unwrap(), 0);
    assert_eq!(keys(&search(f, &c, "alpha charlie bravo", "", 10).await), ["a.md", "c.md"]);
}

/// At most `limit` hits; equal scores are ordered by key, then chunk.
pub async fn limit_and_ties(f: &dyn TextFixture) {
    let repo = f.repo();
    let c = create(&*repo, "notes").await;
    put(&*repo, &c, ["d.md", "b.md", "a.md", "c.md"].iter().map(|k| plain(k, "same words here")).collect()).await;
    indexed(f, &c).await;
    assert_eq!(keys(&search(f, &c, "words", "", 3).await), ["a.md", "b.md", "c.md"]);
    assert!(search(f, &c, "words", "", 0).await.is_empty());
}

/// Every method reports a collection that does not exist.
pub async fn missing_collection_is_reported(f: &dyn TextFixture) {
    let text = f.text();
    let nope = name("nope");
    assert!(matches!(text.catch_up(&nope).await, Err(RepoError::CollectionNotFound(_))));
    assert!(matches!(text.not_indexed(&nope).await, Err(RepoError::CollectionNotFound(_))));
    assert!(matches!(text.check(&nope).await, Err(RepoError::CollectionNotFound(_))));
    assert!(matches!(text.repair(&nope).await, Err(RepoError::CollectionNotFound(_))));
    assert!(matches!(
        text.keyword_search(&nope, &KeywordQuery::parse("x"), &DocFilter::default(), 5).await,
        Err(RepoError::CollectionNotFound(_))
    ));
}
