//! `InMemoryFiles` passes the `DocumentFiles` conformance suite, plus checks of its test hooks.

use std::sync::Arc;

use async_trait::async_trait;
use colstore_domain::CollectionName;
use colstore_domain::ContentHash;
use colstore_domain::ports::{DocumentFiles, FilesError};
use colstore_testkit::InMemoryFiles;
use colstore_testkit::files::{self, FilesFixture, coll, put, read, scan, scanned};

struct Fake {
    files: Arc<InMemoryFiles>,
}

#[async_trait]
impl FilesFixture for Fake {
    fn files(&self) -> Arc<dyn DocumentFiles> {
        self.files.clone()
    }

    async fn write(&self, collection: &CollectionName, path: &str, bytes: &[u8]) {
        self.files.external_write(collection, path, bytes.to_vec());
    }

    async fn mkdir(&self, collection: &CollectionName, path: &str) {
        self.files.external_mkdir(collection, path);
    }

    async fn dir_exists(&self, collection: &CollectionName, path: &str) -> bool {
        if path.is_empty() { self.files.root_exists(collection) } else { self.files.dir_exists(collection, path) }
    }

    async fn remove_folder(&self, collection: &CollectionName) {
        self.files.external_remove_root(collection);
    }

    async fn make_unreadable(&self, collection: &CollectionName, path: &str) -> Option<()> {
        self.files.set_unreadable(collection, path);
        Some(())
    }

    async fn make_readable(&self, collection: &CollectionName, path: &str) {
        self.files.set_readable(collection, path);
    }

    fn name(&self) -> &str {
        "InMemoryFiles"
    }
}

async fn fixture() -> Box<dyn FilesFixture> {
    Box::new(Fake { files: Arc::new(InMemoryFiles::new()) })
}

mod fake {
    colstore_testkit::files_conformance!(super::fixture);
}

#[tokio::test]
async fn content_reads_count_hash_and_open_only() {
    let f = InMemoryFiles::new();
    let c = coll();
    put(&f, &c, "a.md", b"abc").await;
    scan(&f, &c).await;
    f.stat(&c, "a.md").await.expect("stat");
    assert_eq!(f.content_reads(), 0, "stage, commit, scan and stat read no content");
    f.hash(&c, "a.md").await.expect("hash");
    read(&f, &c, "a.md").await;
    assert_eq!(f.content_reads(), 2);
    f.reset_content_reads();
    assert_eq!(f.content_reads(), 0);
}

#[tokio::test]
async fn hooks_change_stats_as_the_os_would() {
    let f = InMemoryFiles::new();
    let c = coll();
    let committed = put(&f, &c, "a.md", b"one").await;

    f.touch(&c, "a.md");
    let touched = f.stat(&c, "a.md").await.expect("stat").expect("present");
    assert_eq!((touched.size, touched.inode), (committed.size, committed.inode), "touch keeps size and inode");
    assert!(touched.mtime_ns > committed.mtime_ns, "touch moves the mtime forward");

    f.external_write(&c, "a.md", b"two!".to_vec());
    let edited = f.stat(&c, "a.md").await.expect("stat").expect("present");
    assert_eq!(edited.inode, committed.inode, "an in-place write keeps the inode");
    assert!(edited.mtime_ns > touched.mtime_ns && edited.size == 4);

    f.external_replace(&c, "a.md", b"three".to_vec());
    let saved = f.stat(&c, "a.md").await.expect("stat").expect("present");
    assert_ne!(saved.inode, edited.inode, "an editor-style save makes a new inode");

    f.external_rename(&c, "a.md", "moved/b.md");
    let moved = f.stat(&c, "moved/b.md").await.expect("stat").expect("present");
    assert_eq!(moved, saved, "a rename keeps the whole stat");
    assert_eq!(f.stat(&c, "a.md").await.expect("stat"), None);

    f.external_write_keeping_stat(&c, "moved/b.md", b"THREE".to_vec());
    assert_eq!(f.stat(&c, "moved/b.md").await.expect("stat"), Some(saved), "the stat is unchanged");
    assert_eq!(f.hash(&c, "moved/b.md").await.expect("hash").1, ContentHash::of(b"THREE"), "but the bytes are new");

    f.external_remove(&c, "moved/b.md");
    assert!(f.dir_exists(&c, "moved"), "rm leaves the folder");
    assert!(f.paths(&c).is_empty());
}

#[tokio::test]
async fn special_entries_are_skipped_and_refused() {
    let f = InMemoryFiles::new();
    let c = coll();
    f.external_special(&c, "pipe", "FIFO");
    f.external_write(&c, "a.md", b"x".to_vec());
    let s = scan(&f, &c).await;
    assert_eq!(scanned(&s), [("a.md".to_owned(), "a.md".to_owned())]);
    assert_eq!(s.skipped.len(), 1);
    assert_eq!((s.skipped[0].path.as_str(), s.skipped[0].reason.as_str()), ("pipe", "FIFO"));
    assert!(matches!(f.hash(&c, "pipe").await, Err(FilesError::Unsafe { .. })));
    assert!(matches!(f.stat(&c, "pipe").await, Err(FilesError::Unsafe { .. })));
}

#[tokio::test]
async fn read_only_folders_refuse_writes() {
    let f = InMemoryFiles::new();
    let c = coll();
    let staged = files::stage(&f, &c, b"x").await;
    f.set_read_only(&c, true);
    assert!(matches!(f.commit(&c, &staged, &files::key("a.md")).await, Err(FilesError::ReadOnly { .. })));
    assert!(matches!(f.stage(&c, files::chunks(&[b"y"])).await, Err(FilesError::ReadOnly { .. })));
    assert!(matches!(f.remove(&c, "a.md").await, Err(FilesError::ReadOnly { .. })));
    f.set_read_only(&c, false);
    f.commit(&c, &staged, &files::key("a.md")).await.expect("commit once writable");
    assert_eq!(f.contents(&c, "a.md").as_deref(), Some(&b"x"[..]));
}

/// A scenario missing from the macro's list would silently never run against any backend.
#[test]
fn every_files_scenario_is_listed_in_the_macro() {
    crate::fake_queue::assert_lists_every_scenario(include_str!("../../src/files.rs"), "(f: &dyn FilesFixture)", "files_conformance", 20);
}
