//! The `DocumentFiles` conformance suite.
//!
//! Every scenario is a plain `async fn(&dyn FilesFixture)`; [`files_conformance!`](crate::files_conformance) turns each
//! into one `#[tokio::test]` for the backend whose fixture factory it is given. Each scenario gets a fresh, empty base
//! folder (no collection folder exists yet).
//!
//! Scenarios reach behind the port through the fixture (write a file as a user would, look at folders, make an entry
//! unreadable). A backend that cannot make something unreadable (a real folder when the tests run as root) returns
//! `None` and the scenario prints why it skipped that part.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use colstore_domain::ports::{DocumentFiles, FileStat, FilesError, STAGING_PREFIX, Scan, StagedFile};
use colstore_domain::{CollectionName, ContentHash, ContentStream, DocKey};
use futures::{StreamExt, stream};

/// One fresh, empty base folder under test, plus the hooks the suite needs to reach behind the port.
#[async_trait]
pub trait FilesFixture: Send + Sync {
    /// The files under test. No collection folder exists at first.
    fn files(&self) -> Arc<dyn DocumentFiles>;

    /// Writes `bytes` to `path` in the collection's folder behind the port, as a user would, creating the folder and
    /// parent folders when missing. `path` may hold names the port would refuse (control characters, NFD).
    async fn write(&self, collection: &CollectionName, path: &str, bytes: &[u8]);

    /// Creates the folder `path` (and its parents) in the collection's folder behind the port.
    async fn mkdir(&self, collection: &CollectionName, path: &str);

    /// Whether the folder `path` exists in the collection's folder; `""` is the collection's folder itself.
    async fn dir_exists(&self, collection: &CollectionName, path: &str) -> bool;

    /// Removes the collection's folder with everything in it (`rm -rf`, an unmounted disk).
    async fn remove_folder(&self, collection: &CollectionName);

    /// Makes the file or folder at `path` unreadable (`chmod 000`). `None` when this backend cannot because the tests
    /// run as root, who reads everything; the scenario then runs again as `nobody` (`need::as_unprivileged_test`).
    async fn make_unreadable(&self, collection: &CollectionName, path: &str) -> Option<()>;

    /// Undoes [`FilesFixture::make_unreadable`] (so a temporary folder can be cleaned up).
    async fn make_readable(&self, collection: &CollectionName, path: &str);

    /// A name for skip messages.
    fn name(&self) -> &str {
        "backend"
    }
}

/// Turns every scenario of the `DocumentFiles` suite into a `#[tokio::test]` against one backend.
///
/// `$factory` is an `async fn() -> Box<dyn FilesFixture>` that builds a fresh, empty base folder. Invoke it inside a
/// module named after the backend, so tests read `fs::stage_commit_round_trip`. The calling crate needs `tokio`
/// (features `macros`, `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// mod fake {
///     colstore_testkit::files_conformance!(super::fixture);
/// }
/// ```
#[macro_export]
macro_rules! files_conformance {
    ($factory:path) => {
        $crate::files_conformance!(@scenarios $factory;
            stage_commit_round_trip,
            a_staged_file_can_be_read_by_its_token,
            stage_creates_a_missing_folder,
            large_streamed_content_round_trip,
            empty_content_round_trip,
            commit_replaces_the_target,
            commit_is_idempotent_once_the_staged_file_is_gone,
            commit_of_a_vanished_staged_file_with_other_content_fails,
            discard_removes_the_staged_file,
            leftovers_lists_staged_files_not_committed,
            failing_stream_is_content_read_and_leaves_nothing,
            concurrent_stages_get_distinct_tokens,
            remove_prunes_empty_folders_but_never_the_root,
            remove_of_a_missing_file_is_fine,
            scan_is_sorted_by_key_and_excludes_staged_files,
            scan_sees_files_written_behind_the_port,
            scan_walks_nested_folders,
            scan_ignores_git_and_colstore_folders,
            scan_normalises_names_to_nfc_keeping_the_path,
            scan_skips_the_second_of_two_names_with_one_nfc_form,
            scan_skips_names_that_are_not_valid_keys,
            scan_reports_unreadable_folders_and_files,
            stat_changes_after_a_write,
            missing_file_is_not_found,
            unsafe_paths_are_refused,
            missing_folder_is_root_missing,
            remove_root_only_when_empty,
        );
    };
    (@scenarios $factory:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let f = $factory().await;
                $crate::files::$scenario(&*f).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/// The collection every scenario uses.
pub fn coll() -> CollectionName {
    CollectionName::parse("docs").expect("valid collection name")
}

/// A document key.
///
/// # Panics
/// When `s` is not a valid key (a mistake in the scenario).
pub fn key(s: &str) -> DocKey {
    DocKey::parse(s).unwrap_or_else(|e| panic!("bad key in scenario: {e}"))
}

/// A stream yielding `parts` in order.
pub fn chunks(parts: &[&[u8]]) -> ContentStream {
    let items: Vec<Result<Bytes, std::io::Error>> = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    stream::iter(items).boxed()
}

/// Stages `bytes` (as one chunk).
pub async fn stage(files: &dyn DocumentFiles, c: &CollectionName, bytes: &[u8]) -> StagedFile {
    files.stage(c, chunks(&[bytes])).await.unwrap_or_else(|e| panic!("stage: {e}"))
}

/// Stages and commits `bytes` to `k`; returns the committed file's stat.
pub async fn put(files: &dyn DocumentFiles, c: &CollectionName, k: &str, bytes: &[u8]) -> FileStat {
    let staged = stage(files, c, bytes).await;
    files.commit(c, &staged, &key(k)).await.unwrap_or_else(|e| panic!("commit {k}: {e}"))
}

/// Reads the stream to its end.
pub async fn collect(mut s: ContentStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("reading the stream: {e}")));
    }
    out
}

/// Opens `path` and reads it whole; returns the stat at opening and the bytes.
pub async fn read(files: &dyn DocumentFiles, c: &CollectionName, path: &str) -> (FileStat, Vec<u8>) {
    let (stat, s) = files.open(c, path).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    (stat, collect(s).await)
}

/// Scans, panicking on an error.
pub async fn scan(files: &dyn DocumentFiles, c: &CollectionName) -> Scan {
    files.scan(c).await.unwrap_or_else(|e| panic!("scan: {e}"))
}

/// The `(key, path)` pairs of a scan's files.
pub fn scanned(s: &Scan) -> Vec<(String, String)> {
    s.files.iter().map(|f| (f.key.to_string(), f.path.clone())).collect()
}

/// The paths of a scan's skipped entries.
pub fn skipped_paths(s: &Scan) -> Vec<String> {
    s.skipped.iter().map(|i| i.path.clone()).collect()
}

/// Deterministic, incompressible bytes, different for each `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn expect_not_found<T: std::fmt::Debug>(r: Result<T, FilesError>, what: &str) {
    match r {
        Err(FilesError::NotFound { path }) => assert!(!path.is_empty(), "{what}: NotFound names the path"),
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn expect_unsafe<T: std::fmt::Debug>(r: Result<T, FilesError>, what: &str) {
    match r {
        Err(FilesError::Unsafe { reason, .. }) => assert!(!reason.is_empty(), "{what}: Unsafe says why"),
        other => panic!("{what}: expected Unsafe, got {other:?}"),
    }
}

fn expect_root_missing<T: std::fmt::Debug>(r: Result<T, FilesError>, what: &str) {
    match r {
        Err(e @ FilesError::RootMissing { .. }) => assert!(e.to_string().contains("docs"), "{what}: the message names the folder: {e}"),
        other => panic!("{what}: expected RootMissing, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------------------------

/// A staged file is a file in the folder: `stat`, `open` and `hash` take its token (the repository reads it between
/// its transaction and the rename, and ages leftovers by its stat).
pub async fn a_staged_file_can_be_read_by_its_token(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let staged = files.stage(&c, chunks(&[b"in ", b"flight"])).await.expect("stage");
    let stat = files.stat(&c, &staged.token).await.expect("stat").expect("a staged file has a stat");
    assert_eq!(stat.size, 9);
    assert_eq!(files.hash(&c, &staged.token).await.expect("hash"), (stat, ContentHash::of(b"in flight"), 9));
    assert_eq!(read(&*files, &c, &staged.token).await.1, b"in flight");
    files.discard(&c, &staged.token).await.expect("discard");
    assert_eq!(files.stat(&c, &staged.token).await.expect("stat"), None, "gone after discard");
}

/// Stage hashes and counts what it wrote under a temporary name; commit puts it in place and returns the stat that
/// `stat`, `open` and `hash` then report; nothing is left over.
pub async fn stage_commit_round_trip(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    files.create_root(&c).await.expect("create_root");
    files.create_root(&c).await.expect("create_root is idempotent");
    let staged = files.stage(&c, chunks(&[b"hello ", b"world"])).await.expect("stage");
    assert!(staged.token.starts_with(STAGING_PREFIX), "the staged file's name starts with {STAGING_PREFIX:?}: {}", staged.token);
    assert_eq!((staged.hash, staged.size), (ContentHash::of(b"hello world"), 11));
    assert_eq!(files.leftovers(&c).await.expect("leftovers"), std::slice::from_ref(&staged.token), "staged, not yet committed");
    assert!(scan(&*files, &c).await.files.is_empty(), "a staged file is not visible");
    assert_eq!(files.stat(&c, "notes/a.md").await.expect("stat"), None, "nothing at the target yet");

    let stat = files.commit(&c, &staged, &key("notes/a.md")).await.expect("commit");
    assert_eq!(stat.size, 11);
    assert_eq!(files.stat(&c, "notes/a.md").await.expect("stat"), Some(stat), "stat reports what commit returned");
    assert_eq!(files.hash(&c, "notes/a.md").await.expect("hash"), (stat, ContentHash::of(b"hello world"), 11));
    assert_eq!(read(&*files, &c, "notes/a.md").await, (stat, b"hello world".to_vec()));
    assert!(files.leftovers(&c).await.expect("leftovers").is_empty(), "nothing left over after commit");
    let s = scan(&*files, &c).await;
    assert_eq!(scanned(&s), [("notes/a.md".to_owned(), "notes/a.md".to_owned())]);
    assert_eq!(s.files[0].stat, stat, "the scan reports the same stat");
    assert!(s.skipped.is_empty() && s.unreadable.is_empty(), "nothing skipped: {s:?}");
    assert!(!files.location(&c).is_empty(), "location names the folder");
}

/// `stage` creates the collection's folder when it is missing.
pub async fn stage_creates_a_missing_folder(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    assert!(!f.dir_exists(&c, "").await, "no folder at first");
    put(&*files, &c, "a.md", b"x").await;
    assert!(f.dir_exists(&c, "").await, "stage created the folder");
    assert_eq!(read(&*files, &c, "a.md").await.1, b"x");
}

/// Content of several MiB streamed in uneven chunks comes back byte for byte, with the right hash and size.
pub async fn large_streamed_content_round_trip(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let data = noise(3 * 1024 * 1024 + 17, 7);
    let parts: Vec<&[u8]> = data.chunks(100_003).collect();
    let staged = files.stage(&c, chunks(&parts)).await.expect("stage");
    assert_eq!((staged.hash, staged.size), (ContentHash::of(&data), data.len() as u64));
    let stat = files.commit(&c, &staged, &key("big.bin")).await.expect("commit");
    assert_eq!(stat.size, data.len() as u64);
    let (_, back) = read(&*files, &c, "big.bin").await;
    assert!(back == data, "the content comes back byte for byte ({} vs {} bytes)", back.len(), data.len());
    assert_eq!(files.hash(&c, "big.bin").await.expect("hash").1, ContentHash::of(&data));
}

/// Empty content, from an empty stream or a stream of empty chunks, is a file of size 0.
pub async fn empty_content_round_trip(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let staged = files.stage(&c, chunks(&[])).await.expect("stage of an empty stream");
    assert_eq!((staged.hash, staged.size), (ContentHash::of(b""), 0));
    files.commit(&c, &staged, &key("empty.md")).await.expect("commit");
    let staged = files.stage(&c, chunks(&[b"", b""])).await.expect("stage of empty chunks");
    files.commit(&c, &staged, &key("empty2.md")).await.expect("commit");
    for p in ["empty.md", "empty2.md"] {
        let (stat, bytes) = read(&*files, &c, p).await;
        assert_eq!((stat.size, bytes.len()), (0, 0), "{p}");
        assert_eq!(files.hash(&c, p).await.expect("hash").1, ContentHash::of(b""), "{p}");
    }
}

/// A second commit to the same key replaces the file; the scan still shows one file.
pub async fn commit_replaces_the_target(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let first = put(&*files, &c, "a.md", b"version one").await;
    let second = put(&*files, &c, "a.md", b"v2").await;
    assert_ne!(first, second, "the stat changes with the content");
    assert_eq!(read(&*files, &c, "a.md").await, (second, b"v2".to_vec()));
    let s = scan(&*files, &c).await;
    assert_eq!(scanned(&s), [("a.md".to_owned(), "a.md".to_owned())]);
    assert!(files.leftovers(&c).await.expect("leftovers").is_empty());
}

/// Committing a staged file again, once it is in place, succeeds (a retry after a lost answer or a crash).
pub async fn commit_is_idempotent_once_the_staged_file_is_gone(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let staged = stage(&*files, &c, b"payload").await;
    let stat = files.commit(&c, &staged, &key("dir/a.md")).await.expect("commit");
    let again = files.commit(&c, &staged, &key("dir/a.md")).await.expect("commit again");
    assert_eq!(again, stat, "the retry reports the file in place");
    assert_eq!(read(&*files, &c, "dir/a.md").await.1, b"payload");
}

/// A staged file that is gone cannot be committed to a target holding other content; the target is untouched.
pub async fn commit_of_a_vanished_staged_file_with_other_content_fails(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let staged = stage(&*files, &c, b"lost").await;
    files.discard(&c, &staged.token).await.expect("discard");
    put(&*files, &c, "a.md", b"present").await;
    let r = files.commit(&c, &staged, &key("a.md")).await;
    assert!(r.is_err(), "commit of a discarded staged file over other content must fail, got {r:?}");
    let r = files.commit(&c, &staged, &key("b.md")).await;
    assert!(r.is_err(), "commit of a discarded staged file to a missing target must fail, got {r:?}");
    assert_eq!(read(&*files, &c, "a.md").await.1, b"present");
    assert_eq!(files.stat(&c, "b.md").await.expect("stat"), None);
}

/// `discard` removes a staged file; discarding it again is fine.
pub async fn discard_removes_the_staged_file(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let staged = stage(&*files, &c, b"never mind").await;
    files.discard(&c, &staged.token).await.expect("discard");
    assert!(files.leftovers(&c).await.expect("leftovers").is_empty());
    files.discard(&c, &staged.token).await.expect("discarding a missing staged file is fine");
    assert!(scan(&*files, &c).await.files.is_empty());
    expect_unsafe(files.discard(&c, "../escape").await, "discard of a token naming another folder");
    expect_unsafe(files.discard(&c, "a.md").await, "discard of a document's name");
}

/// `leftovers` lists exactly the staged files not committed or discarded, and scans never show them.
pub async fn leftovers_lists_staged_files_not_committed(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let a = stage(&*files, &c, b"a").await;
    let b = stage(&*files, &c, b"b").await;
    let d = stage(&*files, &c, b"d").await;
    files.commit(&c, &a, &key("a.md")).await.expect("commit");
    files.discard(&c, &d.token).await.expect("discard");
    assert_eq!(files.leftovers(&c).await.expect("leftovers"), std::slice::from_ref(&b.token));
    let s = scan(&*files, &c).await;
    assert_eq!(scanned(&s), [("a.md".to_owned(), "a.md".to_owned())], "the scan shows no staged file");
    assert!(s.skipped.is_empty(), "staged files are not even skipped entries: {s:?}");
    files.discard(&c, &b.token).await.expect("discard");
    assert!(files.leftovers(&c).await.expect("leftovers").is_empty());
}

/// A stream failing mid-way fails `stage` with `ContentRead` keeping the cause, and leaves no file behind.
pub async fn failing_stream_is_content_read_and_leaves_nothing(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    files.create_root(&c).await.expect("create_root");
    let broken: ContentStream = stream::iter(vec![
        Ok(Bytes::from_static(b"partial ")),
        Ok(Bytes::from(noise(300_000, 3))),
        Err(std::io::Error::other("disk on fire")),
    ])
    .boxed();
    match files.stage(&c, broken).await {
        Err(FilesError::ContentRead(e)) => assert!(e.to_string().contains("disk on fire"), "the cause is kept: {e}"),
        other => panic!("expected ContentRead, got {other:?}"),
    }
    assert!(files.leftovers(&c).await.expect("leftovers").is_empty(), "the partial temporary file is gone");
    let s = scan(&*files, &c).await;
    assert!(s.files.is_empty() && s.skipped.is_empty(), "nothing visible: {s:?}");
    files.remove_root(&c).await.expect("remove_root");
    assert!(!f.dir_exists(&c, "").await, "the folder is empty again, so it can be removed");
}

/// Stages running at the same time get distinct temporary files and all commit.
pub async fn concurrent_stages_get_distinct_tokens(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    files.create_root(&c).await.expect("create_root");
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let files = files.clone();
            let c = c.clone();
            tokio::spawn(async move {
                let content = vec![i; 1000 + usize::from(i)];
                let staged = files.stage(&c, chunks(&[&content])).await.expect("stage");
                files.commit(&c, &staged, &key(&format!("f{i:02}.bin"))).await.expect("commit");
                staged.token
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.expect("task"));
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 16, "every stage had its own temporary file");
    let s = scan(&*files, &c).await;
    assert_eq!(s.files.len(), 16);
    for (i, file) in s.files.iter().enumerate() {
        assert_eq!(file.stat.size, 1000 + i as u64, "{}", file.path);
    }
}

/// Removing a file removes the folders above it that became empty, never the collection's folder, and keeps
/// folders that still hold something.
pub async fn remove_prunes_empty_folders_but_never_the_root(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    put(&*files, &c, "a/b/c/deep.md", b"1").await;
    put(&*files, &c, "a/side.md", b"2").await;
    assert!(f.dir_exists(&c, "a/b/c").await, "commit created the parent folders");
    files.remove(&c, "a/b/c/deep.md").await.expect("remove");
    assert_eq!(files.stat(&c, "a/b/c/deep.md").await.expect("stat"), None);
    assert!(!f.dir_exists(&c, "a/b/c").await && !f.dir_exists(&c, "a/b").await, "emptied folders are removed");
    assert!(f.dir_exists(&c, "a").await, "a still holds side.md");
    files.remove(&c, "a/side.md").await.expect("remove");
    assert!(!f.dir_exists(&c, "a").await, "a became empty");
    assert!(f.dir_exists(&c, "").await, "the collection's folder stays");
    let s = scan(&*files, &c).await;
    assert!(s.files.is_empty() && s.skipped.is_empty(), "{s:?}");

    f.mkdir(&c, "keep/empty").await;
    put(&*files, &c, "keep/x.md", b"x").await;
    files.remove(&c, "keep/x.md").await.expect("remove");
    assert!(f.dir_exists(&c, "keep/empty").await, "a folder someone else made is left alone");
}

/// Removing a missing file (or below a missing folder, or in a missing collection folder) is fine.
pub async fn remove_of_a_missing_file_is_fine(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    files.remove(&c, "nothing.md").await.expect("remove in a missing folder");
    files.create_root(&c).await.expect("create_root");
    files.remove(&c, "nothing.md").await.expect("remove of a missing file");
    files.remove(&c, "no/such/dir/x.md").await.expect("remove below a missing folder");
    assert!(f.dir_exists(&c, "").await);
}

/// A scan lists files sorted by key (byte order), excludes staged files, and reports each file's stat.
pub async fn scan_is_sorted_by_key_and_excludes_staged_files(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let keys = ["zeta.md", "a/z.md", "b.md", "a.md", "é.md", "Z.md", "a-b.md", "a/b/c.md", "日本.txt"];
    let mut stats = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        stats.push((k.to_string(), put(&*files, &c, k, format!("content {i}").as_bytes()).await));
    }
    let _pending = stage(&*files, &c, b"not yet").await;
    let s = scan(&*files, &c).await;
    let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    want.sort();
    let got: Vec<String> = s.files.iter().map(|f| f.key.to_string()).collect();
    assert_eq!(got, want, "sorted by key in byte order, no staged file");
    for file in &s.files {
        let (_, stat) = stats.iter().find(|(k, _)| *k == file.key.as_str()).expect("known key");
        assert_eq!(file.path, file.key.as_str(), "path equals key for NFC names");
        assert_eq!(&file.stat, stat, "{}: the scan's stat is the commit's", file.path);
    }
    assert!(s.skipped.is_empty() && s.unreadable.is_empty(), "{s:?}");
}

/// Files written behind the port are found, with the stat `stat` reports.
pub async fn scan_sees_files_written_behind_the_port(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    f.write(&c, "inbox/new.md", b"typed by hand").await;
    f.write(&c, "top.txt", b"").await;
    let s = scan(&*files, &c).await;
    assert_eq!(scanned(&s), [("inbox/new.md".to_owned(), "inbox/new.md".to_owned()), ("top.txt".to_owned(), "top.txt".to_owned())]);
    for file in &s.files {
        assert_eq!(Some(file.stat), files.stat(&c, &file.path).await.expect("stat"), "{}", file.path);
    }
    assert_eq!(files.hash(&c, "inbox/new.md").await.expect("hash").1, ContentHash::of(b"typed by hand"));
}

/// Deeply nested folders are walked; empty folders contribute nothing.
pub async fn scan_walks_nested_folders(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let deep = "l1/l2/l3/l4/l5/l6/l7/l8/deep.md";
    put(&*files, &c, deep, b"deep").await;
    f.mkdir(&c, "empty/also-empty").await;
    f.write(&c, "l1/l2/mid.md", b"mid").await;
    let s = scan(&*files, &c).await;
    let keys: Vec<String> = s.files.iter().map(|f| f.key.to_string()).collect();
    assert_eq!(keys, ["l1/l2/l3/l4/l5/l6/l7/l8/deep.md", "l1/l2/mid.md"]);
    assert!(s.skipped.is_empty(), "empty folders are not entries: {s:?}");
    assert_eq!(read(&*files, &c, deep).await.1, b"deep");
}

/// Files inside `.git` and `.colstore` folders are not documents, nor are other stores' temporary files: the scan
/// leaves them out silently.
pub async fn scan_ignores_git_and_colstore_folders(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    f.write(&c, ".git/HEAD", b"ref: refs/heads/main").await;
    f.write(&c, "sub/.git/config", b"[core]").await;
    f.write(&c, ".colstore/config.toml", b"x = 1").await;
    f.write(&c, &format!("sub/{STAGING_PREFIX}crashed"), b"half").await;
    f.write(&c, ".gitignore", b"*.tmp").await;
    f.write(&c, "sub/note.md", b"n").await;
    let s = scan(&*files, &c).await;
    assert_eq!(
        scanned(&s),
        [(".gitignore".to_owned(), ".gitignore".to_owned()), ("sub/note.md".to_owned(), "sub/note.md".to_owned())],
        "only the dotfile that is not a .git/.colstore folder counts"
    );
    assert!(s.skipped.is_empty() && s.unreadable.is_empty(), "ignored silently: {s:?}");
}

/// A name stored in NFD (as macOS writes it) has its NFC form as key and keeps its own path, which `open`, `hash`,
/// `stat` and `remove` accept.
pub async fn scan_normalises_names_to_nfc_keeping_the_path(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let nfd = "cafe\u{301}/re\u{301}sume\u{301}.md";
    let nfc = "caf\u{e9}/r\u{e9}sum\u{e9}.md";
    f.write(&c, nfd, b"accents").await;
    let s = scan(&*files, &c).await;
    assert_eq!(scanned(&s), [(nfc.to_owned(), nfd.to_owned())]);
    assert_eq!(read(&*files, &c, nfd).await.1, b"accents");
    assert_eq!(files.hash(&c, nfd).await.expect("hash").1, ContentHash::of(b"accents"));
    assert_eq!(files.stat(&c, nfd).await.expect("stat"), Some(s.files[0].stat));
    files.remove(&c, nfd).await.expect("remove");
    assert_eq!(files.stat(&c, nfd).await.expect("stat"), None);
    assert!(!f.dir_exists(&c, "cafe\u{301}").await, "its emptied folder went too");
}

/// Two names with one NFC form: the first in byte order is the document, the other is skipped naming it.
pub async fn scan_skips_the_second_of_two_names_with_one_nfc_form(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let nfc = "caf\u{e9}.md";
    let nfd = "cafe\u{301}.md";
    f.write(&c, nfc, b"composed").await;
    f.write(&c, nfd, b"decomposed").await;
    let s = scan(&*files, &c).await;
    // "cafe" < "caf\u{e9}" in bytes (b'e' < 0xc3), so the NFD name comes first.
    let (first, second) = if nfd.as_bytes() < nfc.as_bytes() { (nfd, nfc) } else { (nfc, nfd) };
    assert_eq!(scanned(&s), [(nfc.to_owned(), first.to_owned())]);
    assert_eq!(skipped_paths(&s), [second.to_owned()]);
    let reason = &s.skipped[0].reason;
    assert!(reason.contains("same key") && reason.contains("normalisation"), "the reason explains the clash: {reason}");
}

/// Names that are not valid keys (control characters, `\`) are skipped with the rule they break; a folder with such
/// a name is skipped once, with everything in it.
pub async fn scan_skips_names_that_are_not_valid_keys(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    f.write(&c, "line\nbreak.md", b"x").await;
    f.write(&c, "back\\slash.md", b"x").await;
    f.write(&c, "fine.md", b"x").await;
    f.write(&c, "tab\tdir/inner.md", b"x").await;
    f.write(&c, "tab\tdir/deeper/other.md", b"x").await;
    let s = scan(&*files, &c).await;
    assert_eq!(scanned(&s), [("fine.md".to_owned(), "fine.md".to_owned())]);
    let mut skipped = skipped_paths(&s);
    skipped.sort();
    assert_eq!(skipped, ["back\\slash.md", "line\nbreak.md", "tab\tdir"], "a folder with such a name is skipped once, whole");
    assert!(s.skipped.iter().all(|i| !i.reason.is_empty()), "every skip has a reason: {s:?}");
}

/// Folders that cannot be listed and files that cannot be read are reported as unreadable, never omitted, so
/// reconcile does not take their documents for deleted.
pub async fn scan_reports_unreadable_folders_and_files(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    put(&*files, &c, "locked/inside.md", b"secret").await;
    put(&*files, &c, "open/readable.md", b"fine").await;
    put(&*files, &c, "open/sealed.md", b"sealed").await;
    if f.make_unreadable(&c, "locked").await.is_none() {
        // Root reads every folder: run the scenario again as nobody (the fixture's store is fresh in that process).
        assert!(
            crate::need::as_unprivileged_test() != crate::need::Unprivileged::Here,
            "{}: cannot make entries unreadable, yet this user is not root",
            f.name()
        );
        return;
    }
    f.make_unreadable(&c, "open/sealed.md").await.expect("a file can be made unreadable where a folder can");
    let s = scan(&*files, &c).await;
    let unreadable: Vec<&str> = s.unreadable.iter().map(|u| u.path.as_str()).collect();
    assert!(unreadable.contains(&"locked"), "the folder that cannot be listed is reported: {s:?}");
    assert!(s.may_hide("locked/inside.md"), "its documents may be hidden");
    let keys: Vec<&str> = s.files.iter().map(|f| f.key.as_str()).collect();
    assert!(!keys.contains(&"locked/inside.md"), "nothing is reported from inside the locked folder");
    assert!(keys.contains(&"open/readable.md"));
    // A file without read permission can still be listed and stat'ed; reading it fails.
    let r = files.hash(&c, "open/sealed.md").await;
    match r {
        Err(FilesError::Io { path, source }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{source}");
            assert!(path.contains("open/sealed.md"), "the error names the file: {path}");
        }
        other => panic!("expected Io(PermissionDenied), got {other:?}"),
    }
    assert!(files.open(&c, "open/sealed.md").await.is_err(), "open fails too");
    let reported = unreadable.contains(&"open/sealed.md") || keys.contains(&"open/sealed.md");
    assert!(reported, "an unreadable file is reported (as unreadable, or listed so reading it fails): {s:?}");
    f.make_readable(&c, "open/sealed.md").await;
    f.make_readable(&c, "locked").await;
    let s = scan(&*files, &c).await;
    assert!(s.unreadable.is_empty(), "readable again: {s:?}");
    assert_eq!(s.files.len(), 3);
}

/// A write behind the port changes the stat the scan and `stat` report (the reconcile fast path relies on it).
pub async fn stat_changes_after_a_write(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    let committed = put(&*files, &c, "a.md", b"one").await;
    f.write(&c, "a.md", b"a longer text").await;
    let now = files.stat(&c, "a.md").await.expect("stat").expect("present");
    assert_ne!(now, committed, "an external write changes the stat");
    assert_eq!(now.size, 13);
    assert_eq!(scan(&*files, &c).await.files[0].stat, now);
    let rewritten = put(&*files, &c, "a.md", b"one").await;
    assert_ne!(rewritten.inode, 0, "an inode is reported on this platform");
    assert_ne!(rewritten, now, "a commit changes the stat");
}

/// `open` and `hash` of a missing file are `NotFound`; `stat` is `None`.
pub async fn missing_file_is_not_found(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    put(&*files, &c, "present.md", b"x").await;
    expect_not_found(files.open(&c, "absent.md").await.map(|(s, _)| s), "open");
    expect_not_found(files.hash(&c, "absent.md").await, "hash");
    expect_not_found(files.hash(&c, "no/such/dir.md").await, "hash below a missing folder");
    assert_eq!(files.stat(&c, "absent.md").await.expect("stat"), None);
    assert_eq!(files.stat(&c, "no/such/dir.md").await.expect("stat"), None);
}

/// Paths that could leave the collection's folder, or are not plain relative paths, are `Unsafe` for every method
/// that takes a path.
pub async fn unsafe_paths_are_refused(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    put(&*files, &c, "a.md", b"x").await;
    for bad in ["../x", "a/../../x", "/etc/passwd", "a\0b", "a//b", "", ".", "a/./b", "a\\b", "..", "x/"] {
        expect_unsafe(files.open(&c, bad).await.map(|(s, _)| s), &format!("open {bad:?}"));
        expect_unsafe(files.hash(&c, bad).await, &format!("hash {bad:?}"));
        expect_unsafe(files.stat(&c, bad).await, &format!("stat {bad:?}"));
        expect_unsafe(files.remove(&c, bad).await, &format!("remove {bad:?}"));
    }
    let staged = stage(&*files, &c, b"y").await;
    let forged = StagedFile { token: format!("../{}", staged.token), ..staged.clone() };
    expect_unsafe(files.commit(&c, &forged, &key("b.md")).await, "commit of a token naming another folder");
    files.commit(&c, &staged, &key("b.md")).await.expect("the real token commits");
    assert_eq!(read(&*files, &c, "a.md").await.1, b"x", "nothing was touched");
}

/// A collection folder that never existed, or was removed, is `RootMissing` for `scan`; `create_root` makes it.
pub async fn missing_folder_is_root_missing(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    expect_root_missing(files.scan(&c).await, "scan before create_root");
    files.create_root(&c).await.expect("create_root");
    assert_eq!(scan(&*files, &c).await, Scan::default(), "an empty folder scans empty");
    put(&*files, &c, "a.md", b"x").await;
    f.remove_folder(&c).await;
    expect_root_missing(files.scan(&c).await, "scan after the folder was removed");
    match files.hash(&c, "a.md").await {
        Err(FilesError::RootMissing { .. } | FilesError::NotFound { .. }) => {}
        other => panic!("hash in a removed folder: expected RootMissing or NotFound, got {other:?}"),
    }
    assert!(files.leftovers(&c).await.expect("leftovers of a missing folder").is_empty());
}

/// `remove_root` removes the collection's folder only when it is empty; anything else keeps it. A missing folder is
/// fine.
pub async fn remove_root_only_when_empty(f: &dyn FilesFixture) {
    let files = f.files();
    let c = coll();
    files.remove_root(&c).await.expect("remove_root of a missing folder");
    put(&*files, &c, "a/doc.md", b"x").await;
    files.remove_root(&c).await.expect("remove_root");
    assert!(f.dir_exists(&c, "").await, "a folder holding a document stays");
    assert_eq!(read(&*files, &c, "a/doc.md").await.1, b"x");

    files.remove(&c, "a/doc.md").await.expect("remove");
    f.write(&c, "notes-by-hand.txt", b"mine").await;
    files.remove_root(&c).await.expect("remove_root");
    assert!(f.dir_exists(&c, "").await, "a folder holding a foreign file stays");

    f.remove_folder(&c).await;
    f.mkdir(&c, "empty-subfolder").await;
    files.remove_root(&c).await.expect("remove_root");
    assert!(f.dir_exists(&c, "empty-subfolder").await, "a folder holding a folder stays");

    f.remove_folder(&c).await;
    let staged = stage(&*files, &c, b"pending").await;
    files.remove_root(&c).await.expect("remove_root");
    assert_eq!(files.leftovers(&c).await.expect("leftovers"), std::slice::from_ref(&staged.token), "a staged file keeps the folder");

    files.discard(&c, &staged.token).await.expect("discard");
    files.remove_root(&c).await.expect("remove_root");
    assert!(!f.dir_exists(&c, "").await, "an empty folder is removed");
    expect_root_missing(files.scan(&c).await, "scan after remove_root");
}
