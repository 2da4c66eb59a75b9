//! Repository URLs: what opens, and the exact message for everything else.

use colstore_objstore::{ObjectBackupStore, OpenError, S3Options};
use rstest::rstest;

const FORMS: &str = "use file:///path, s3://bucket/prefix or memory://";

fn s3(url: &str) -> Result<ObjectBackupStore, OpenError> {
    ObjectBackupStore::open_s3_with(
        url,
        S3Options { endpoint: Some("http://127.0.0.1:1".into()), allow_http: true, ..S3Options::default() },
    )
}

#[rstest]
#[case::memory("memory://", "memory")]
#[case::memory_upper_case_scheme("MEMORY://", "memory")]
#[case::bucket("s3://my-bucket", "s3")]
#[case::bucket_slash("s3://my-bucket/", "s3")]
#[case::prefix("s3://my-bucket/a/b", "s3")]
#[case::prefix_slash("s3://my.bucket-2/a/b/", "s3")]
#[case::encoded_prefix("s3://bucket/my%20backups/2024", "s3")]
fn good_urls_open(#[case] url: &str, #[case] backend: &str) {
    let store = if backend == "s3" { s3(url) } else { ObjectBackupStore::open(url) };
    let store = store.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!((store.backend(), store.url()), (backend, url));
}

#[test]
fn file_urls_open_and_create_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBackupStore::open(&format!("file://{}/new%20folder/x", dir.path().display())).unwrap();
    assert_eq!(store.backend(), "file");
    assert!(dir.path().join("new folder/x").is_dir(), "percent-escapes are decoded");
    let store = ObjectBackupStore::open_dir(&dir.path().join("by path")).unwrap();
    assert!(dir.path().join("by path").is_dir());
    assert_eq!(store.backend(), "file");
}

#[rstest]
#[case::other_scheme("ftp://x", "backup repository URL `ftp://x` is not supported")]
#[case::empty("", "backup repository URL `` is not supported")]
#[case::bare_path("/var/backups", "backup repository URL `/var/backups` is not supported")]
#[case::bare_word("backups", "backup repository URL `backups` is not supported")]
#[case::https("https://s3.amazonaws.com/bucket", "backup repository URL `https://s3.amazonaws.com/bucket` is not supported")]
#[case::no_slashes("file:relative/path", "backup repository URL `file:relative/path` is not supported")]
#[case::windows("C:\\backups", "backup repository URL `C:\\backups` is not supported")]
#[case::relative_file(
    "file://relative/path",
    "backup repository URL `file://relative/path` is invalid: the path must be absolute, as in file:///path (three slashes)"
)]
#[case::file_root("file:///", "backup repository URL `file:///` is invalid: the path must name a folder, not the file system root")]
#[case::file_query(
    "file:///tmp/x?y=1",
    "backup repository URL `file:///tmp/x?y=1` is invalid: a file URL takes no query (`?`) or fragment (`#`)"
)]
#[case::memory_path("memory://x", "backup repository URL `memory://x` is invalid: memory:// takes nothing after the scheme")]
#[case::s3_no_bucket("s3://", "backup repository URL `s3://` is invalid: the bucket name is missing, as in s3://bucket/prefix")]
#[case::s3_empty_bucket(
    "s3:///prefix",
    "backup repository URL `s3:///prefix` is invalid: the bucket name is missing, as in s3://bucket/prefix"
)]
#[case::s3_bad_bucket(
    "s3://Bad_Bucket/x",
    "backup repository URL `s3://Bad_Bucket/x` is invalid: `Bad_Bucket` is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')"
)]
#[case::s3_short_bucket(
    "s3://ab",
    "backup repository URL `s3://ab` is invalid: `ab` is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')"
)]
#[case::s3_credentials(
    "s3://key:secret@bucket/x",
    "backup repository URL `s3://key:secret@bucket/x` is invalid: an s3 URL takes only a bucket and a prefix, as in s3://bucket/prefix (no credentials, port, query or fragment)"
)]
#[case::s3_port(
    "s3://bucket:9000/x",
    "backup repository URL `s3://bucket:9000/x` is invalid: an s3 URL takes only a bucket and a prefix, as in s3://bucket/prefix (no credentials, port, query or fragment)"
)]
#[case::s3_query(
    "s3://bucket/x?versionId=1",
    "backup repository URL `s3://bucket/x?versionId=1` is invalid: an s3 URL takes only a bucket and a prefix, as in s3://bucket/prefix (no credentials, port, query or fragment)"
)]
#[case::s3_empty_segment(
    "s3://bucket/a//b",
    "backup repository URL `s3://bucket/a//b` is invalid: the prefix `a//b` is not a valid object path (no empty, `.` or `..` segments, no control characters)"
)]
#[case::s3_dot_dot(
    "s3://bucket/a/../b",
    "backup repository URL `s3://bucket/a/../b` is invalid: the prefix `a/../b` is not a valid object path (no empty, `.` or `..` segments, no control characters)"
)]
#[case::s3_bad_escape("s3://bucket/%zz", "backup repository URL `s3://bucket/%zz` is invalid: bad percent-encoding in `%zz`")]
fn bad_urls_are_refused_with_the_accepted_forms(#[case] url: &str, #[case] message: &str) {
    let err = ObjectBackupStore::open(url).expect_err(url);
    assert_eq!(err.to_string(), format!("{message}; {FORMS}"));
    assert!(matches!(err, OpenError::Unsupported { .. } | OpenError::Invalid { .. }), "{err:?}");
}

#[test]
fn open_s3_with_takes_only_s3_urls() {
    let err = s3("memory://").expect_err("not s3");
    assert_eq!(err.to_string(), format!("backup repository URL `memory://` is invalid: expected an s3:// URL; {FORMS}"));
    let err = s3("s3://").expect_err("no bucket");
    assert!(err.to_string().contains("the bucket name is missing"), "{err}");
}

#[test]
fn open_dir_needs_an_absolute_path() {
    let err = ObjectBackupStore::open_dir(std::path::Path::new("relative/backups")).expect_err("relative");
    assert_eq!(
        err.to_string(),
        format!(
            "backup repository URL `file://relative/backups` is invalid: the path must be absolute, as in file:///path (three slashes); {FORMS}"
        )
    );
}

#[test]
fn a_file_in_the_way_is_a_folder_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let err = ObjectBackupStore::open(&format!("file://{}", file.display())).expect_err("a file");
    assert!(matches!(err, OpenError::Folder { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("cannot create the backup folder {}: ", file.display())), "{err}");
}
