//! Issue 11, defect 6: a document larger than memory should hold moves through backup, restore, export and import
//! as a stream of pieces (4 MiB each), in both storage modes, and comes back byte for byte. A malformed `part` line
//! of an export file is refused like any other damage.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use colstore_e2e::TestStore;
use rstest::rstest;
use sha2::{Digest, Sha256};

use crate::run_measuring_peak_rss;
use crate::sha256_hex;

/// The document's size: larger than the memory any of the commands may use (a copy of it in memory fails the test).
const DOC_BYTES: usize = 256 * 1024 * 1024;
/// The issue's target for the peak resident set size of every command, whatever the document's size.
const PEAK_RSS_LIMIT_KIB: u64 = 200 * 1024;

/// Writes `DOC_BYTES` of text to `path` (streamed: this process never holds it) and returns its SHA-256: 1 MiB blocks
/// of pseudo-random words, each starting with its number, so no two of the 4 MiB pieces a backup cuts are alike (a
/// repeated piece would be stored once and prove less).
fn write_large_text(path: &Path) -> String {
    let mut rng = crate::Rng::new(6);
    let words: Vec<String> = (0..4096).map(|_| format!("w{:x} ", rng.next_u64() % 0xff_ffff)).collect();
    let mut block = Vec::with_capacity(1 << 20);
    while block.len() < (1 << 20) - 32 {
        block.extend_from_slice(words[(rng.next_u64() % 4096) as usize].as_bytes());
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0usize;
    let mut n = 0u64;
    while written < DOC_BYTES {
        let head = format!("block {n:08}\n");
        let take = (DOC_BYTES - written).min(head.len() + block.len());
        let piece: Vec<u8> = head.bytes().chain(block.iter().copied()).take(take).collect();
        file.write_all(&piece).unwrap();
        written += take;
        n += 1;
    }
    file.flush().unwrap();
    sha_of_file(path)
}

/// The SHA-256 of a file, read a block at a time.
fn sha_of_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `col ARGS…` in `s`, asserts it succeeded within the memory target, and returns its stdout.
#[track_caller]
fn ok_within_memory(s: &TestStore, args: &[&str]) -> String {
    let (out, peak_kib) = run_measuring_peak_rss(s.cmd(args));
    out.assert_ok();
    assert!(
        peak_kib < PEAK_RSS_LIMIT_KIB,
        "`col {}` peaked at {} MiB with a {} MiB document; the target is under {} MiB",
        args.join(" "),
        peak_kib / 1024,
        DOC_BYTES >> 20,
        PEAK_RSS_LIMIT_KIB / 1024
    );
    out.stdout
}

/// The SHA-256 of document `key` of `notes` in `s`, read with `col get -o`.
fn stored_sha(s: &TestStore, key: &str, scratch: &Path) -> String {
    let out = scratch.join(format!("{key}.out"));
    s.ok(["get", "notes", key, "-o", out.to_str().unwrap()]);
    let sha = sha_of_file(&out);
    std::fs::remove_file(&out).unwrap();
    sha
}

fn store(filesystem: bool) -> TestStore {
    if filesystem { TestStore::filesystem() } else { TestStore::new() }
}

#[rstest]
#[case::sqlite_mode(false)]
#[case::filesystem_mode(true)]
fn a_document_larger_than_memory_moves_through_backup_restore_export_and_import(#[case] filesystem: bool) {
    let s = store(filesystem);
    s.ok(["collection", "create", "notes"]);
    let file = s.path().join("big.txt");
    let want = write_large_text(&file);
    s.ok(["put", "notes", "big.txt", file.to_str().unwrap()]);
    s.ok(["put", "notes", "small.md", "--text", "a small note beside it"]);

    // Backup, then restore into a new store.
    let first: serde_json::Value = serde_json::from_str(&ok_within_memory(&s, &["--json", "backup"])).unwrap();
    let first_id = first["backup"]["id"].as_str().expect("a backup id").to_owned();
    let scratch = tempfile::tempdir().unwrap();
    let restored = TestStore::uninitialised();
    let copy = restored.store_dir();
    ok_within_memory(&s, &["restore", "latest", "--to-store", copy.to_str().unwrap(), "--yes"]);
    assert_eq!(stored_sha(&restored, "big.txt", scratch.path()), want, "the restored document is the original");
    restored.ok(["verify"]);

    // Unchanged, the document's pieces are reused unread; with the first backup deleted they are still there.
    let again = s.json(["backup"]);
    let new_bytes = again["backup"]["stats"]["new_blob_bytes"].as_u64().expect("new_blob_bytes");
    assert!(new_bytes < 1024 * 1024, "an unchanged document stored {new_bytes} new bytes: {again}");
    assert!(again["backup"]["stats"]["blob_bytes"].as_u64().unwrap() >= DOC_BYTES as u64, "{again}");
    s.ok(["backup", "delete", &first_id]);
    s.ok(["backup", "verify", "latest", "--read-data"]);

    // Export, then import into a new store.
    let export: PathBuf = scratch.path().join("all.colstore");
    ok_within_memory(&s, &["export", "-o", export.to_str().unwrap()]);
    let fresh = store(filesystem);
    ok_within_memory(&fresh, &["import", export.to_str().unwrap(), "--dry-run"]);
    ok_within_memory(&fresh, &["import", export.to_str().unwrap(), "--yes"]);
    assert_eq!(stored_sha(&fresh, "big.txt", scratch.path()), want, "the imported document is the original");
    fresh.ok(["verify"]);

    // One byte changed in the middle: the next backup stores about one piece, not the whole document again.
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(DOC_BYTES as u64 / 2)).unwrap();
    f.write_all(b"#").unwrap();
    drop(f);
    let changed = sha_of_file(&file);
    assert_ne!(changed, want);
    s.ok(["put", "notes", "big.txt", file.to_str().unwrap()]);
    let b = s.json(["backup"]);
    let new_bytes = b["backup"]["stats"]["new_blob_bytes"].as_u64().expect("new_blob_bytes");
    assert!(new_bytes <= 8 * 1024 * 1024, "a one-byte change stored {new_bytes} new bytes: {b}");
    s.ok(["backup", "verify", "latest", "--read-data"]);

    // And that backup restores the changed document into the first copy.
    ok_within_memory(&s, &["restore", "latest", "--to-store", copy.to_str().unwrap(), "--yes"]);
    assert_eq!(stored_sha(&restored, "big.txt", scratch.path()), changed);
}

/// A version-2 export file of one collection `n` holding document `a.md` as the given part lines (already JSON).
fn parted_export(s: &TestStore, name: &str, content: &[u8], parts: u64, part_lines: &[String]) -> PathBuf {
    let mut lines = vec![
        r#"{"header":{"format":"colstore-export","version":2,"created_at":"2026-12-01T00:00:00.000Z","store_id":"0a956bd0-47c3-43d2-8f68-04797fed50a0","tool_version":"0.0.0"}}"#.to_owned(),
        r#"{"collection":{"name":"n","settings":{"vectors":null,"chunking":{"max_chars":1200,"overlap_chars":200}},"created_at":"2026-12-01T00:00:00.000Z","documents":1}}"#.to_owned(),
        format!(
            r#"{{"document":{{"key":"a.md","hash":"{}","size":{},"metadata":{{}},"tags":[],"version":1,"created_at":"2026-12-01T00:00:00.000Z","updated_at":"2026-12-01T00:00:00.000Z","content":"","parts":{parts}}}}}"#,
            sha256_hex(content),
            content.len()
        ),
    ];
    lines.extend(part_lines.iter().cloned());
    lines.push(r#"{"end":{"collections":1,"documents":1}}"#.to_owned());
    let path = s.path().join(name);
    std::fs::write(&path, zstd::encode_all((lines.join("\n") + "\n").as_bytes(), 3).unwrap()).unwrap();
    path
}

fn part(b64: &str) -> String {
    format!(r#"{{"part":"{b64}"}}"#)
}

/// Part lines are read back into one document, and a missing, damaged or stray part line is refused before anything
/// changes, naming the line.
#[test]
fn import_reads_part_lines_and_refuses_damaged_ones() {
    let s = TestStore::new();
    // "hello " and "world" in base64.
    let good = parted_export(&s, "good.colstore", b"hello world", 2, &[part("aGVsbG8g"), part("d29ybGQ=")]);
    s.ok(["import", good.to_str().unwrap(), "--yes"]);
    assert_eq!(s.ok(["get", "n", "a.md"]).stdout, "hello world");

    let fresh = TestStore::new();
    let before = fresh.fingerprint();
    let cases = [
        ("missing.colstore", 3, vec![part("aGVsbG8g"), part("d29ybGQ=")], "line 6: document a.md declares more parts than follow it"),
        ("damaged.colstore", 2, vec![part("aGVsbG8g"), part("V09STEQ=")], "line 5: the content of a.md does not match its size and hash"),
        ("base64.colstore", 2, vec![part("aGVsbG8g"), part("d29y*GQ=")], "line 5: a part of the content of a.md is not valid base64"),
    ];
    for (name, parts, lines, message) in cases {
        let file = parted_export(&fresh, name, b"hello world", parts, &lines);
        for args in [vec!["import", file.to_str().unwrap(), "--dry-run"], vec!["import", file.to_str().unwrap(), "--yes"]] {
            let err = fresh.run(&args).assert_error(1, message);
            assert!(err.contains(name), "the error names the file: {err}");
        }
    }
    // A part line after a document without parts.
    let stray = parted_export(&fresh, "stray.colstore", b"hello world", 2, &[part("aGVsbG8g"), part("d29ybGQ="), part("eA==")]);
    fresh.run(["import", stray.to_str().unwrap(), "--yes"]).assert_error(1, "line 6: a part line that follows no document with parts");
    assert_eq!(fresh.fingerprint(), before, "a refused import changes nothing");
}
