//! The `--json` shapes documented in docs/CLI.md: every documented field is present (fields may be added, never
//! renamed or removed), times are RFC 3339 with milliseconds, hashes are 64 lowercase hex digits, and stdout holds
//! exactly one JSON document.

use colstore_e2e::TestStore;
use serde_json::Value;

#[track_caller]
fn assert_fields(what: &str, v: &Value, fields: &[&str]) {
    let obj = v.as_object().unwrap_or_else(|| panic!("{what}: not a JSON object: {v}"));
    let missing: Vec<&str> = fields.iter().copied().filter(|f| !obj.contains_key(*f)).collect();
    assert!(missing.is_empty(), "{what}: documented fields {missing:?} are missing (docs/CLI.md) in {v:#}");
}

#[track_caller]
fn assert_time(what: &str, v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    let b = s.as_bytes();
    let ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(ok, "{what}: {s:?} is not RFC 3339 UTC with milliseconds");
}

#[track_caller]
fn assert_hash(what: &str, v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert!(s.len() == 64 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{what}: {s:?} is not a SHA-256");
}

const DOCUMENT: &[&str] = &["collection", "key", "content_hash", "size", "metadata", "tags", "version", "created_at", "updated_at"];
const COLLECTION: &[&str] = &["name", "documents", "logical_bytes", "created_at", "settings"];

#[track_caller]
fn assert_document(what: &str, d: &Value) {
    assert_fields(what, d, DOCUMENT);
    assert_hash(what, &d["content_hash"]);
    assert_time(what, &d["created_at"]);
    assert_time(what, &d["updated_at"]);
    assert!(d["metadata"].is_object() && d["tags"].is_array() && d["size"].is_u64() && d["version"].is_u64(), "{what}: {d:#}");
}

#[test]
fn read_and_write_commands_match_the_documented_shapes() {
    let s = TestStore::uninitialised();
    let v = s.json(["init"]);
    assert_fields("init", &v, &["store", "store_id", "mode"]);
    assert_eq!(v["mode"], "sqlite");

    let v = s.json(["collection", "create", "c"]);
    assert_fields("collection create", &v, COLLECTION);
    assert_time("collection create", &v["created_at"]);
    assert_fields("collection show", &s.json(["collection", "show", "c"]), COLLECTION);
    s.ok(["collection", "create", "a"]);
    let list = s.json(["collection", "list"]);
    assert_fields("collection list", &list, &["collections"]);
    let names: Vec<&str> = list["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "c"], "collection list is sorted by name");

    let v = s.json(["put", "c", "k.md", "--text", "hello", "--meta", r#"{"lang":"en"}"#, "--tag", "x"]);
    assert_fields("put", &v, &["collection", "key", "status", "version", "content_hash", "size"]);
    assert_hash("put", &v["content_hash"]);
    assert_eq!(v["status"], "created");
    assert_eq!(s.json(["put", "c", "k.md", "--text", "hello", "--meta", r#"{"lang":"en"}"#, "--tag", "x"])["status"], "unchanged");
    assert_eq!(s.json(["put", "c", "k.md", "--text", "hello!", "--meta", r#"{"lang":"en"}"#, "--tag", "x"])["status"], "updated");

    assert_document("get", &s.json(["get", "c", "k.md"]));
    assert_document("get --meta-only", &s.json(["get", "c", "k.md", "--meta-only"]));

    let v = s.json(["ls", "c"]);
    assert_fields("ls", &v, &["collection", "total", "offset", "limit", "documents"]);
    assert!(v["limit"].is_null());
    assert_document("ls document", &v["documents"][0]);
    assert_eq!(s.json(["ls", "c", "--limit", "5"])["limit"], 5);

    let v = s.json(["stats"]);
    let stats = [
        "scope",
        "collections",
        "documents",
        "logical_bytes",
        "distinct_contents",
        "unique_bytes",
        "stored_bytes",
        "garbage_contents",
        "dedup_ratio",
        "compression_ratio",
        "stored_to_logical",
    ];
    assert_fields("stats", &v, &stats);
    assert_eq!(v["scope"], "store");
    assert_eq!(s.json(["stats", "c"])["scope"], "collection c");

    let v = s.json(["verify"]);
    assert_fields("verify", &v, &["scope", "ok", "documents_ok", "bytes_checked", "corrupt"]);

    let v = s.json(["rm", "c", "k.md"]);
    assert_fields("rm", &v, &["collection", "deleted", "missing", "safety_copy", "dry_run"]);
    assert_eq!(v["dry_run"], false);

    let v = s.json(["gc", "--dry-run"]);
    assert_fields("gc", &v, &["dry_run", "contents_removed", "bytes_freed"]);

    let v = s.json(["collection", "delete", "a", "--dry-run"]);
    assert_fields("collection delete --dry-run", &v, &["collection", "documents", "dry_run"]);
    let v = s.json(["collection", "delete", "a", "--yes"]);
    assert_fields("collection delete", &v, &["collection", "documents_deleted", "safety_copy", "dry_run"]);
}

/// docs/CLI.md: `add` prints `{ "collection", "files", "bytes", "created", "updated", "unchanged", "unchanged_unread", "skipped",
/// "dry_run" }`.
#[test]
fn add_matches_the_documented_shape() {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s.write("docs/a.md", "a");
    let v = s.json(["add", "c", "docs"]);
    assert_fields(
        "add",
        &v,
        &["collection", "files", "bytes", "created", "updated", "unchanged", "unchanged_unread", "skipped", "dry_run"],
    );
    assert_eq!((v["files"].as_u64(), v["created"].as_u64()), (Some(1), Some(1)));
}

/// docs/CLI.md gives `rm` one shape, `safety_copy: path|null` included; a dry run takes no copy, so it says null.
#[test]
fn rm_dry_run_matches_the_documented_shape() {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "k", "--text", "x"]);
    let v = s.json(["rm", "c", "k", "--dry-run"]);
    assert_fields("rm --dry-run", &v, &["collection", "deleted", "missing", "safety_copy", "dry_run"]);
    assert!(v["safety_copy"].is_null(), "a dry run takes no safety copy: {v}");
}

/// Errors are not JSON: with --json a failing command prints nothing on stdout and the error on stderr.
#[test]
fn errors_stay_on_stderr_with_json() {
    let s = TestStore::new();
    let out = s.run(["--json", "ls", "nope"]);
    out.assert_error(1, "collection \"nope\" not found");
    assert_eq!(out.stdout, "");
}
