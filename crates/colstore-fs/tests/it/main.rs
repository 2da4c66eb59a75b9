//! Integration tests of `FsDocumentFiles`: the shared `DocumentFiles` conformance suite on a temporary folder, plus
//! what only a real file system shows (symlinks, FIFOs, sockets, names that are not UTF-8, permissions, editors
//! saving by rename, many files). Unix only, like the adapter's file-type and inode handling.

#![cfg(unix)]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use colstore_domain::ports::{DocumentFiles, FilesError, STAGING_PREFIX};
use colstore_domain::{CollectionName, ContentHash, DocKey};
use colstore_fs::{FsDocumentFiles, IO_CHUNK};
use colstore_testkit::files::{FilesFixture, chunks, coll, key, noise, put, read, scan, scanned, skipped_paths};
use colstore_testkit::need::{Unprivileged, as_unprivileged_test};
use rstest::rstest;
use tempfile::TempDir;

struct Fs {
    tmp: TempDir,
    files: Arc<FsDocumentFiles>,
}

impl Fs {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temporary folder");
        let files = Arc::new(FsDocumentFiles::new(tmp.path().join("docs")));
        Self { tmp, files }
    }

    fn root(&self, c: &CollectionName) -> PathBuf {
        self.files.root(c)
    }

    fn at(&self, c: &CollectionName, path: &str) -> PathBuf {
        if path.is_empty() { self.root(c) } else { self.root(c).join(path) }
    }

    /// A folder next to the base folder, outside every collection.
    fn outside(&self) -> PathBuf {
        let p = self.tmp.path().join("outside");
        fs::create_dir_all(&p).expect("mkdir outside");
        p
    }
}

/// Sets `path`'s mode and checks that it took effect for this user; `false` when it did not (running as root or with
/// CAP_DAC_OVERRIDE, who read everything), after putting the mode back.
fn lock_out(path: &Path) -> bool {
    let was = fs::metadata(path).expect("metadata").permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(0o000)).expect("chmod 000");
    let still_readable = if path.is_dir() { fs::read_dir(path).is_ok() } else { fs::File::open(path).is_ok() };
    if still_readable {
        fs::set_permissions(path, fs::Permissions::from_mode(was)).expect("chmod back");
    }
    !still_readable
}

#[async_trait]
impl FilesFixture for Fs {
    fn files(&self) -> Arc<dyn DocumentFiles> {
        self.files.clone()
    }

    async fn write(&self, c: &CollectionName, path: &str, bytes: &[u8]) {
        let p = self.at(c, path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir -p");
        fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    async fn mkdir(&self, c: &CollectionName, path: &str) {
        fs::create_dir_all(self.at(c, path)).expect("mkdir -p");
    }

    async fn dir_exists(&self, c: &CollectionName, path: &str) -> bool {
        self.at(c, path).is_dir()
    }

    async fn remove_folder(&self, c: &CollectionName) {
        let root = self.root(c);
        if root.exists() {
            fs::remove_dir_all(&root).expect("rm -rf");
        }
    }

    async fn make_unreadable(&self, c: &CollectionName, path: &str) -> Option<()> {
        lock_out(&self.at(c, path)).then_some(())
    }

    async fn make_readable(&self, c: &CollectionName, path: &str) {
        let p = self.at(c, path);
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod back");
    }

    fn name(&self) -> &str {
        "FsDocumentFiles"
    }
}

async fn fixture() -> Box<dyn FilesFixture> {
    Box::new(Fs::new())
}

mod fs_suite {
    colstore_testkit::files_conformance!(super::fixture);
}

// ---------------------------------------------------------------------------------------------------------------------
// Layout and atomic writes
// ---------------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn documents_are_plain_files_under_base_collection_key() {
    let f = Fs::new();
    let c = coll();
    put(&*f.files, &c, "notes/2024/a.md", b"# hello").await;
    let on_disk = f.tmp.path().join("docs/docs/notes/2024/a.md");
    assert_eq!(fs::read(&on_disk).expect("the file is where the key says"), b"# hello");
    assert_eq!(f.files.location(&c), f.tmp.path().join("docs/docs").display().to_string());
}

#[tokio::test]
async fn staged_files_live_in_the_collection_folder_until_committed() {
    let f = Fs::new();
    let c = coll();
    let staged = f.files.stage(&c, chunks(&[b"abc"])).await.expect("stage");
    let tmp = f.root(&c).join(&staged.token);
    assert_eq!(fs::read(&tmp).expect("the staged file is in the collection folder"), b"abc");
    f.files.commit(&c, &staged, &key("deep/x.md")).await.expect("commit");
    assert!(!tmp.exists(), "the staged file was renamed");
    assert_eq!(fs::read(f.root(&c).join("deep/x.md")).expect("target"), b"abc");
}

#[tokio::test]
async fn a_crashed_writers_temporary_file_is_a_leftover_not_a_document() {
    let f = Fs::new();
    let c = coll();
    fs::create_dir_all(f.root(&c)).expect("mkdir");
    let name = format!("{STAGING_PREFIX}0123456789abcdef");
    fs::write(f.root(&c).join(&name), b"half written").expect("write");
    assert_eq!(f.files.leftovers(&c).await.expect("leftovers"), std::slice::from_ref(&name));
    assert!(scan(&*f.files, &c).await.files.is_empty());
    f.files.discard(&c, &name).await.expect("discard");
    assert!(f.files.leftovers(&c).await.expect("leftovers").is_empty());
}

#[tokio::test]
async fn open_streams_chunks_of_256_kib() {
    let f = Fs::new();
    let c = coll();
    let data = noise(2 * IO_CHUNK + 5, 9);
    put(&*f.files, &c, "big.bin", &data).await;
    let (stat, mut s) = f.files.open(&c, "big.bin").await.expect("open");
    assert_eq!(stat.size, data.len() as u64);
    let mut sizes = Vec::new();
    let mut back = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut s).await {
        let chunk = chunk.expect("chunk");
        sizes.push(chunk.len());
        back.extend_from_slice(&chunk);
    }
    assert_eq!(sizes, [IO_CHUNK, IO_CHUNK, 5]);
    assert!(back == data);
}

#[tokio::test]
async fn commit_over_a_folder_fails_clearly_and_keeps_the_staged_file() {
    let f = Fs::new();
    let c = coll();
    put(&*f.files, &c, "a/inside.md", b"x").await;
    let staged = f.files.stage(&c, chunks(&[b"y"])).await.expect("stage");
    match f.files.commit(&c, &staged, &key("a")).await {
        Err(e @ FilesError::Io { .. }) => assert!(e.to_string().contains("folder"), "{e}"),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(
        f.files.leftovers(&c).await.expect("leftovers"),
        std::slice::from_ref(&staged.token),
        "the staged file can be retried or discarded"
    );
    match f.files.commit(&c, &staged, &key("a/inside.md/below.md")).await {
        Err(e @ FilesError::Io { .. }) => assert!(e.to_string().contains("not a folder"), "{e}"),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[tokio::test]
async fn editor_style_save_changes_the_inode() {
    let f = Fs::new();
    let c = coll();
    let committed = put(&*f.files, &c, "a.md", b"original").await;
    // What editors do: write a new file next to it, then rename it over the old one.
    let tmp = f.root(&c).join(".a.md.swp");
    fs::write(&tmp, b"original").expect("write");
    fs::rename(&tmp, f.root(&c).join("a.md")).expect("rename");
    let saved = f.files.stat(&c, "a.md").await.expect("stat").expect("present");
    assert_eq!(saved.size, committed.size);
    assert_ne!(saved.inode, committed.inode, "a new inode, so the fast path hashes it");
    let s = scan(&*f.files, &c).await;
    assert_eq!(scanned(&s), [("a.md".to_owned(), "a.md".to_owned())]);
    assert_eq!(f.files.hash(&c, "a.md").await.expect("hash").1, ContentHash::of(b"original"));
}

#[tokio::test]
async fn read_only_folder_refuses_staging() {
    if as_unprivileged_test() != Unprivileged::Here {
        return;
    }
    let f = Fs::new();
    let c = coll();
    f.files.create_root(&c).await.expect("create_root");
    let root = f.root(&c);
    fs::set_permissions(&root, fs::Permissions::from_mode(0o555)).expect("chmod");
    assert!(fs::File::create(root.join("probe")).is_err(), "mode 0o555 keeps this user out");
    let r = f.files.stage(&c, chunks(&[b"x"])).await;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod back");
    match r {
        Err(e @ FilesError::ReadOnly { .. }) => assert!(e.to_string().contains(&root.display().to_string()), "names the folder: {e}"),
        other => panic!("expected ReadOnly, got {other:?}"),
    }
}

#[tokio::test]
async fn unlistable_collection_folder_fails_the_scan() {
    if as_unprivileged_test() != Unprivileged::Here {
        return;
    }
    let f = Fs::new();
    let c = coll();
    put(&*f.files, &c, "a.md", b"x").await;
    let root = f.root(&c);
    assert!(lock_out(&root), "mode 0o000 keeps this user out");
    let r = f.files.scan(&c).await;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod back");
    match r {
        Err(FilesError::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied),
        other => panic!("a scan of a folder that cannot be listed cannot be trusted; expected Io, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Symlinks
// ---------------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn symlinks_leaving_the_folder_are_skipped_and_refused() {
    let f = Fs::new();
    let c = coll();
    let outside = f.outside();
    fs::write(outside.join("secret.md"), b"secret").expect("write");
    f.files.create_root(&c).await.expect("create_root");
    let root = f.root(&c);
    std::os::unix::fs::symlink(outside.join("secret.md"), root.join("leak.md")).expect("symlink");
    std::os::unix::fs::symlink(&outside, root.join("out")).expect("symlink");
    std::os::unix::fs::symlink("../../outside/secret.md", root.join("relative.md")).expect("symlink");

    let s = scan(&*f.files, &c).await;
    assert!(s.files.is_empty(), "{s:?}");
    assert_eq!(skipped_paths(&s), ["leak.md", "out", "relative.md"]);
    for issue in &s.skipped {
        assert!(issue.reason.contains("leaves the collection folder"), "{issue:?}");
    }

    for p in ["leak.md", "out/secret.md", "relative.md"] {
        for r in [
            f.files.hash(&c, p).await.map(|_| ()),
            f.files.open(&c, p).await.map(|_| ()),
            f.files.stat(&c, p).await.map(|_| ()),
            f.files.remove(&c, p).await,
        ] {
            match r {
                Err(FilesError::Unsafe { reason, .. }) => assert!(reason.contains("outside the collection folder"), "{p}: {reason}"),
                other => panic!("{p}: expected Unsafe, got {other:?}"),
            }
        }
    }
    let staged = f.files.stage(&c, chunks(&[b"overwrite"])).await.expect("stage");
    let r = f.files.commit(&c, &staged, &key("out/secret.md")).await;
    assert!(matches!(r, Err(FilesError::Unsafe { .. })), "commit through a link leaving the folder: {r:?}");
    let r = f.files.commit(&c, &staged, &key("out/new/x.md")).await;
    assert!(matches!(r, Err(FilesError::Unsafe { .. })), "commit below a link leaving the folder: {r:?}");
    assert_eq!(fs::read(outside.join("secret.md")).expect("read"), b"secret", "nothing outside was written");
    assert!(!outside.join("new").exists(), "no folder was created outside");
}

#[tokio::test]
async fn symlinks_inside_the_folder() {
    let f = Fs::new();
    let c = coll();
    let real = put(&*f.files, &c, "dir/real.md", b"real").await;
    let root = f.root(&c);
    std::os::unix::fs::symlink("dir/real.md", root.join("link.md")).expect("symlink");
    std::os::unix::fs::symlink("dir", root.join("linkdir")).expect("symlink");
    std::os::unix::fs::symlink("nowhere.md", root.join("dangling.md")).expect("symlink");

    let s = scan(&*f.files, &c).await;
    assert_eq!(scanned(&s), [("dir/real.md".to_owned(), "dir/real.md".to_owned()), ("link.md".to_owned(), "link.md".to_owned())]);
    assert_eq!(s.files[1].stat, real, "a link to a file inside reports its target's stat");
    let reasons: Vec<(String, String)> = s.skipped.iter().map(|i| (i.path.clone(), i.reason.clone())).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].0 == "dangling.md" && reasons[0].1.contains("dangling"), "{reasons:?}");
    assert!(reasons[1].0 == "linkdir" && reasons[1].1.contains("symlink to a folder"), "{reasons:?}");

    assert_eq!(read(&*f.files, &c, "link.md").await.1, b"real", "a link inside may be read");
    assert_eq!(read(&*f.files, &c, "linkdir/real.md").await.1, b"real", "so may a path through a linked folder inside");
    assert_eq!(f.files.stat(&c, "dangling.md").await.expect("stat"), None, "a dangling link is no file");
}

// ---------------------------------------------------------------------------------------------------------------------
// Special files and names
// ---------------------------------------------------------------------------------------------------------------------

fn make_fifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(p).status().expect("run mkfifo").success();
    assert!(ok, "mkfifo {}", p.display());
}

fn make_socket(p: &Path) -> std::os::unix::net::UnixListener {
    std::os::unix::net::UnixListener::bind(p).expect("bind a unix socket")
}

#[rstest]
#[case::fifo("pipe", "FIFO")]
#[case::socket("sock", "socket")]
#[tokio::test]
async fn special_files_are_skipped_and_never_opened(#[case] name: &str, #[case] reason: &str) {
    let f = Fs::new();
    let c = coll();
    put(&*f.files, &c, "a.md", b"x").await;
    let p = f.root(&c).join(name);
    let _listener = if name == "sock" {
        Some(make_socket(&p))
    } else {
        make_fifo(&p);
        None
    };
    let s = scan(&*f.files, &c).await;
    assert_eq!(scanned(&s), [("a.md".to_owned(), "a.md".to_owned())]);
    assert_eq!(skipped_paths(&s), [name.to_owned()]);
    assert!(s.skipped[0].reason.contains(reason), "{:?}", s.skipped[0]);
    // Opening a FIFO for reading would block until a writer comes; the adapter must refuse it at once.
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), f.files.hash(&c, name)).await.expect("hash does not block");
    match r {
        Err(FilesError::Unsafe { reason: why, .. }) => assert!(why.contains(reason), "{why}"),
        other => panic!("expected Unsafe, got {other:?}"),
    }
    assert!(matches!(f.files.stat(&c, name).await, Err(FilesError::Unsafe { .. })));
}

#[tokio::test]
async fn names_that_are_not_utf8_are_skipped() {
    let f = Fs::new();
    let c = coll();
    put(&*f.files, &c, "ok.md", b"x").await;
    let root = f.root(&c);
    let bad_file = std::ffi::OsStr::from_bytes(b"caf\xe9.md");
    let bad_dir = std::ffi::OsStr::from_bytes(b"d\xff");
    fs::write(root.join(bad_file), b"latin-1 name").expect("write");
    fs::create_dir(root.join(bad_dir)).expect("mkdir");
    fs::write(root.join(bad_dir).join("inside.md"), b"x").expect("write");
    let s = scan(&*f.files, &c).await;
    assert_eq!(scanned(&s), [("ok.md".to_owned(), "ok.md".to_owned())]);
    assert_eq!(skipped_paths(&s), ["caf\u{fffd}.md", "d\u{fffd}"], "one entry for the folder, none for what is inside");
    assert!(s.skipped.iter().all(|i| i.reason.contains("not valid UTF-8")), "{s:?}");
}

#[tokio::test]
async fn nfd_names_on_disk_keep_their_bytes() {
    let f = Fs::new();
    let c = coll();
    let nfd = "Re\u{301}sume\u{301}.md";
    fs::create_dir_all(f.root(&c)).expect("mkdir");
    fs::write(f.root(&c).join(nfd), b"x").expect("write");
    let s = scan(&*f.files, &c).await;
    assert_eq!(s.files.len(), 1);
    assert_eq!(s.files[0].key.as_str(), "R\u{e9}sum\u{e9}.md");
    assert_eq!(s.files[0].path.as_bytes(), nfd.as_bytes(), "the path is the name as stored");
    // Committing to the NFC key writes a second file: the adapter writes keys, reconcile decides about paths.
    assert!(f.files.stat(&c, "R\u{e9}sum\u{e9}.md").await.expect("stat").is_none(), "no file under the NFC name");
}

#[tokio::test]
async fn ten_thousand_files_in_one_folder() {
    let f = Fs::new();
    let c = coll();
    let dir = f.root(&c).join("many");
    fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..10_000 {
        fs::write(dir.join(format!("{i:05}.md")), i.to_string()).expect("write");
    }
    let started = Instant::now();
    let s = scan(&*f.files, &c).await;
    let took = started.elapsed();
    println!("scanned 10 000 files in {took:?}");
    assert_eq!(s.files.len(), 10_000);
    assert!(s.skipped.is_empty() && s.unreadable.is_empty());
    assert!(s.files.windows(2).all(|w| w[0].key < w[1].key), "sorted by key");
    assert_eq!(s.files[1234].key.as_str(), "many/01234.md");
    assert_eq!(s.files[1234].stat.size, 4);
    let (_, bytes) = read(&*f.files, &c, "many/09999.md").await;
    assert_eq!(bytes, b"9999");
}

/// The walk emits paths in byte order without a final sort: files of the collection folder among its folders, a
/// folder's files after a sibling file whose name extends the folder's (`a.b` before `a/x`), several folders walked
/// on several threads; and names not in NFC, which the walk's order does not cover, still come out by key.
#[rstest]
#[case::ascii(&["a.b", "a-b/x", "a/x", "a/y/z", "a/y.md", "a/yz", "b/1", "b0", "c/d/e/f", "c.md", "Z", "~"])]
#[case::unicode_forms(&["\u{e9}/1", "e\u{301}x", "ea", "f", "\u{e9}a/b"])]
#[tokio::test]
async fn the_scan_is_in_key_order_across_folders_root_files_and_unicode_forms(#[case] paths: &[&str]) {
    let f = Fs::new();
    let c = coll();
    let root = f.root(&c);
    for p in paths {
        let full = root.join(p);
        fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        fs::write(&full, p).expect("write");
    }
    let s = scan(&*f.files, &c).await;
    assert!(s.skipped.is_empty() && s.unreadable.is_empty(), "{s:?}");
    let found: Vec<(&str, &str)> = s.files.iter().map(|f| (f.key.as_str(), f.path.as_str())).collect();
    let mut expected: Vec<(String, &str)> = paths.iter().map(|p| (DocKey::parse(p).expect("key").as_str().to_owned(), *p)).collect();
    expected.sort();
    assert_eq!(found, expected.iter().map(|(k, p)| (k.as_str(), *p)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_stream_error_removes_the_partial_temporary_file() {
    let f = Fs::new();
    let c = coll();
    f.files.create_root(&c).await.expect("create_root");
    let big = noise(3 * IO_CHUNK, 1);
    let s = futures::stream::iter(vec![Ok(bytes::Bytes::from(big)), Err(std::io::Error::other("network gone"))]);
    let r = f.files.stage(&c, futures::StreamExt::boxed(s)).await;
    assert!(matches!(r, Err(FilesError::ContentRead(_))), "{r:?}");
    let names: Vec<_> = fs::read_dir(f.root(&c)).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert!(names.is_empty(), "nothing left in the folder: {names:?}");
}
