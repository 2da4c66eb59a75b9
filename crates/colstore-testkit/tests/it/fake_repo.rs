//! `InMemoryRepo` passes the `CollectionRepo` conformance suite, plus checks of what only the fake promises.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::ports::{CollectionRepo, RepoCapabilities};
use colstore_domain::{CollectionName, ContentHash, DocKey};
use colstore_testkit::repo::{self, RepoFixture};
use colstore_testkit::{InMemoryFiles, InMemoryRepo, ManualClock};
use futures::StreamExt;

struct Fake {
    repo: Arc<InMemoryRepo>,
    clock: Arc<ManualClock>,
}

#[async_trait]
impl RepoFixture for Fake {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        self.repo.clone()
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    async fn corrupt(&self, collection: &CollectionName, key: &DocKey) {
        self.repo.corrupt(collection, key);
    }
}

async fn fixture(clock: Arc<ManualClock>) -> Box<dyn RepoFixture> {
    Box::new(Fake { repo: Arc::new(InMemoryRepo::new(clock.clone())), clock })
}

mod fake {
    colstore_testkit::repo_conformance!(super::fixture);
}

/// `InMemoryRepo` in filesystem mode, its documents' bytes in `InMemoryFiles`.
struct FakeWithFiles {
    repo: Arc<InMemoryRepo>,
    clock: Arc<ManualClock>,
}

#[async_trait]
impl RepoFixture for FakeWithFiles {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        self.repo.clone()
    }

    fn clock(&self) -> Arc<ManualClock> {
        self.clock.clone()
    }

    async fn corrupt(&self, collection: &CollectionName, key: &DocKey) {
        self.repo.corrupt_file(collection, key).await;
    }
}

async fn files_fixture(clock: Arc<ManualClock>) -> Box<dyn RepoFixture> {
    let files = Arc::new(InMemoryFiles::new());
    Box::new(FakeWithFiles { repo: Arc::new(InMemoryRepo::with_files(clock.clone(), files)), clock })
}

mod fake_files_mode {
    colstore_testkit::repo_conformance!(super::files_fixture);
}

impl colstore_testkit::text::TextFixture for Fake {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        self.repo.clone()
    }

    fn text(&self) -> Arc<dyn colstore_domain::ports::TextIndex> {
        self.repo.clone()
    }
    fn indexes_on_write(&self) -> bool {
        true
    }
}

impl colstore_testkit::text::TextFixture for FakeWithFiles {
    fn repo(&self) -> Arc<dyn CollectionRepo> {
        self.repo.clone()
    }

    fn text(&self) -> Arc<dyn colstore_domain::ports::TextIndex> {
        self.repo.clone()
    }
    fn indexes_on_write(&self) -> bool {
        false
    }
}

async fn text_fixture(clock: Arc<ManualClock>) -> Box<dyn colstore_testkit::text::TextFixture> {
    Box::new(Fake { repo: Arc::new(InMemoryRepo::new(clock.clone())), clock })
}

async fn files_text_fixture(clock: Arc<ManualClock>) -> Box<dyn colstore_testkit::text::TextFixture> {
    let files = Arc::new(InMemoryFiles::new());
    Box::new(FakeWithFiles { repo: Arc::new(InMemoryRepo::with_files(clock.clone(), files)), clock })
}

mod fake_text {
    colstore_testkit::text_conformance!(super::text_fixture);
}

mod fake_files_mode_text {
    colstore_testkit::text_conformance!(super::files_text_fixture);
}

fn fresh() -> InMemoryRepo {
    InMemoryRepo::new(Arc::new(ManualClock::at_2024()))
}

#[test]
fn capabilities_are_those_of_the_sqlite_mode() {
    assert_eq!(fresh().capabilities(), RepoCapabilities { content_addressed: true, compression: false, external_edits: false });
}

#[tokio::test]
async fn read_content_streams_chunks_of_at_most_64_kib() {
    let r = fresh();
    let c = repo::create(&r, "notes").await;
    let content = repo::pseudo_random_chunk(1, 0, 200 * 1024 + 5);
    repo::put_one(&r, &c, repo::plain("a.bin", &content)).await;
    let (_, mut s) = r.read_content(&c, &repo::key("a.bin")).await.expect("read_content");
    let mut sizes = Vec::new();
    let mut back = Vec::new();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.expect("chunk");
        sizes.push(chunk.len());
        back.extend_from_slice(&chunk);
    }
    assert_eq!(sizes, [65_536, 65_536, 65_536, 8_197]);
    assert_eq!(back, content.as_ref());
}

#[tokio::test]
async fn corrupt_reports_the_hash_of_the_damaged_bytes() {
    let r = fresh();
    let c = repo::create(&r, "notes").await;
    repo::put(&r, &c, vec![repo::plain("a.md", "abc"), repo::plain("e.md", "")]).await;
    r.corrupt(&c, &repo::key("a.md"));
    r.corrupt(&c, &repo::key("e.md"));
    let v = repo::verify(&r, Some(&c)).await;
    let mut found: Vec<_> = v.corrupt.iter().map(|d| (d.key.to_string(), d.expected, d.actual, d.problem.clone())).collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let problem = "content does not match its hash".to_owned();
    assert_eq!(
        found,
        [
            ("a.md".to_owned(), ContentHash::of(b"abc"), Some(ContentHash::of(&[b'a' ^ 0xff, b'b', b'c'])), problem.clone()),
            ("e.md".to_owned(), ContentHash::of(b""), Some(ContentHash::of(&[0x2a])), problem),
        ]
    );
    assert_eq!(repo::read_all(&r, &c, "a.md").await, [b'a' ^ 0xff, b'b', b'c'], "the fake hands out what it stores");
}

#[tokio::test]
async fn verify_checks_shared_content_once() {
    let r = fresh();
    let c = repo::create(&r, "notes").await;
    repo::put(&r, &c, vec![repo::plain("a.md", "same"), repo::plain("b.md", "same"), repo::plain("c.md", "other")]).await;
    let mut s = r.verify(None).await.expect("verify");
    let mut events = Vec::new();
    while let Some(ev) = s.next().await {
        events.push(ev.expect("event"));
    }
    let mut checked: Vec<(u64, u64)> = events
        .iter()
        .map(|e| match e {
            colstore_domain::ports::VerifyEvent::Checked { documents, bytes } => (*documents, *bytes),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    checked.sort_unstable();
    assert_eq!(checked, [(1, 5), (2, 4)], "one event per distinct content, counting its documents");
}

/// A scenario missing from the macro's list would silently never run against any backend.
#[test]
fn every_scenario_is_listed_in_the_macro() {
    let source = include_str!("../../src/repo.rs");
    let (_, after) = source.split_once("(@scenarios $factory:path;").expect("the macro's scenario list");
    let list_start = source.find("$crate::repo_conformance!(@scenarios").expect("the macro's list");
    let listed: Vec<&str> = source[list_start..]
        .split_once(';')
        .and_then(|(_, rest)| rest.split_once(");"))
        .map(|(names, _)| names.split(',').map(str::trim).filter(|n| !n.is_empty()).collect())
        .expect("scenario names");
    assert!(after.contains("$crate::repo::$scenario"));
    let defined: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub async fn "))
        .filter(|l| l.contains("(f: &dyn RepoFixture)"))
        .filter_map(|l| l.split_once('('))
        .map(|(n, _)| n)
        .collect();
    assert!(defined.len() >= 30, "at least 30 scenarios: {defined:?}");
    let mut a = listed.clone();
    let mut b = defined.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "the macro lists exactly the scenarios defined in repo.rs");
}
