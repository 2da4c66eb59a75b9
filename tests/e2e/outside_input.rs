//! What colstore reads from outside (the disk behind a filesystem-mode store, import files, backup repositories) is
//! checked before it is trusted: restore compares the backup with the bytes really on disk, readers of outside files
//! bound the size of one line or object, and settings read from files pass the same validation as the CLI's.

use std::io::Write;
use std::path::{Path, PathBuf};

use colstore_e2e::TestStore;

use crate::run_measuring_peak_rss;

/// Issue 11, defect 4: a filesystem-mode restore rewrites the files removed or edited on disk since the backup.
#[test]
fn filesystem_restore_rewrites_files_deleted_or_edited_on_disk() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "n"]);
    s.ok(["put", "n", "a.md", "--text", "alpha"]);
    s.ok(["put", "n", "b.md", "--text", "beta"]);
    s.ok(["backup"]);
    std::fs::remove_file(s.docs("n").join("a.md")).unwrap();
    std::fs::write(s.docs("n").join("b.md"), "changed\n").unwrap();

    let plan = s.json(["restore", "latest", "--dry-run"]);
    let n = &plan["plan"]["collections"][0];
    assert_eq!(n["name"], "n", "{plan}");
    assert_eq!(n["unchanged"].as_u64(), Some(0), "the files on disk differ from the backup: {plan}");
    assert_eq!(n["add"].as_u64().unwrap() + n["update"].as_u64().unwrap(), 2, "both files are to be written: {plan}");
    assert!(!s.docs("n").join("a.md").exists(), "--dry-run writes nothing");

    let r = s.json(["restore", "latest", "--yes"]);
    assert_eq!(r["restore"]["documents_written"].as_u64(), Some(2), "{r}");
    assert_eq!(std::fs::read_to_string(s.docs("n").join("a.md")).unwrap(), "alpha");
    assert_eq!(std::fs::read_to_string(s.docs("n").join("b.md")).unwrap(), "beta");
    s.ok(["verify"]);
    let again = s.json(["restore", "latest", "--dry-run"]);
    assert_eq!(again["plan"]["collections"][0]["unchanged"].as_u64(), Some(2), "{again}");
}

/// The lines of a `col export` file.
fn export_text(path: &Path) -> String {
    String::from_utf8(zstd::decode_all(&std::fs::read(path).unwrap()[..]).unwrap()).unwrap()
}

fn zstd_file(path: &Path, text: &str) {
    std::fs::write(path, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
}

/// A store with one collection `n` of one document, and its export.
fn exported() -> (TestStore, PathBuf) {
    let s = TestStore::new();
    s.ok(["collection", "create", "n"]);
    s.ok(["put", "n", "a.md", "--text", "alpha"]);
    let file = s.path().join("good.colstore");
    s.ok(["export", "-o", file.to_str().unwrap()]);
    (s, file)
}

/// Issue 11, defect 5: a few KB of zstd holding one line of 512 MiB after a valid header is refused as soon
/// as the line passes the limit, without holding it whole, naming the file, the line and the limit.
#[test]
fn an_import_decompression_bomb_is_refused_in_bounded_memory() {
    let (s, good) = exported();
    let text = export_text(&good);
    let header = text.lines().next().unwrap();
    let bomb = s.path().join("bomb.colstore");
    let mut enc = zstd::Encoder::new(std::fs::File::create(&bomb).unwrap(), 1).unwrap();
    writeln!(enc, "{header}").unwrap();
    enc.write_all(br#"{"collection":{"name":""#).unwrap();
    let block = vec![b'a'; 1 << 20];
    // 512 MiB: past the 256 MiB limit, and more than the peak memory allowed below, so holding it whole fails.
    for _ in 0..512 {
        enc.write_all(&block).unwrap();
    }
    enc.finish().unwrap();
    let size = std::fs::metadata(&bomb).unwrap().len();
    assert!(size < 1 << 20, "the bomb is small: {size} bytes");
    let before = s.fingerprint();

    let (out, peak_kib) = run_measuring_peak_rss(s.cmd(["import", bomb.to_str().unwrap(), "--dry-run"]));
    out.assert_error(1, "line 2 is longer than the limit of 256 MiB");
    assert!(out.stderr.contains("bomb.colstore"), "the error names the file\n{out}");
    assert!(out.hint().is_some_and(|h| h.contains("nothing was imported") && h.contains("damaged")), "{out}");
    assert!(peak_kib < 450 * 1024, "peak RSS {} MiB: the line must not be held whole (512 MiB)", peak_kib / 1024);
    let out = s.run(["import", bomb.to_str().unwrap(), "--yes"]);
    out.assert_error(1, "line 2 is longer than the limit");
    assert_eq!(s.fingerprint(), before, "nothing changed");
}

/// The id of the only backup of `s`.
fn only_backup(s: &TestStore) -> String {
    let list = s.json(["backup", "list"]);
    list["backups"][0]["id"].as_str().unwrap_or_else(|| panic!("a backup id in {list}")).to_owned()
}

/// Issue 11, defect 5: a manifest or an object of a file:// repository larger than colstore ever writes is refused,
/// before it is read whole, naming it and the limit.
#[test]
fn too_large_manifests_and_objects_in_a_repository_are_refused() {
    let s = TestStore::new();
    s.ok(["collection", "create", "n"]);
    s.ok(["put", "n", "a.md", "--text", "alpha"]);
    s.ok(["backup"]);
    let id = only_backup(&s);
    s.ok(["put", "n", "a.md", "--text", "changed"]);
    let before = s.fingerprint();
    let repo = s.colstore_dir().join("backups");

    // An object whose zstd frame claims 2 GiB (a few bytes on disk): refused before anything is decompressed.
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    frame.extend_from_slice(&(2u64 << 30).to_le_bytes());
    frame.extend_from_slice(&[0x01, 0x00, 0x00]);
    let objects: Vec<PathBuf> = walk(&repo.join("objects"));
    assert!(!objects.is_empty());
    let saved: Vec<(PathBuf, Vec<u8>)> = objects.iter().map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
    for p in &objects {
        std::fs::remove_file(p).unwrap();
        std::fs::write(p, &frame).unwrap();
    }
    let out = s.run(["restore", &id, "--yes"]);
    out.assert_error(3, "more than the limit of 1073741824 bytes");
    assert_eq!(s.fingerprint(), before, "nothing changed");
    for (p, bytes) in saved {
        std::fs::write(p, bytes).unwrap();
    }

    // A manifest of 300 MiB (sparse): refused by its size.
    let manifest = repo.join("manifests").join(format!("{id}.json"));
    std::fs::OpenOptions::new().write(true).open(&manifest).unwrap().set_len(300 << 20).unwrap();
    let out = s.run(["restore", &id, "--yes"]);
    out.assert_error(3, "more than the limit of 256 MiB");
    assert!(out.stderr.contains(&id), "the error names the backup\n{out}");
    assert_eq!(s.fingerprint(), before, "nothing changed");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// Issue 11, defect 8: chunking that `collection create` refuses is refused in an import file too, before anything
/// changes, with the same rule.
#[test]
fn import_refuses_settings_that_collection_create_refuses() {
    let (s, good) = exported();
    let out = s.run(["collection", "create", "x", "--chunk-size", "0", "--chunk-overlap", "5000"]);
    out.assert_error(1, "chunk size must be positive and larger than the overlap");

    let text = export_text(&good);
    let bad_text =
        text.replacen(r#""chunking":{"max_chars":1200,"overlap_chars":200}"#, r#""chunking":{"max_chars":0,"overlap_chars":5000}"#, 1);
    assert_ne!(bad_text, text, "the export holds the default chunking: {text}");
    let bad = s.path().join("bad.colstore");
    zstd_file(&bad, &bad_text);

    let other = TestStore::new();
    let before = other.fingerprint();
    for args in [&["--dry-run"][..], &["--yes"][..]] {
        let out = other.run([&["import", bad.to_str().unwrap()][..], args].concat());
        let line = out.assert_error(1, "chunk size must be positive and larger than the overlap");
        assert!(line.contains("bad.colstore") && line.contains("line 2"), "names the file and the line: {line}");
        assert_eq!(other.fingerprint(), before, "nothing changed");
    }
    // Into the store it came from: its collection keeps its settings.
    let out = s.run(["import", bad.to_str().unwrap(), "--yes"]);
    out.assert_error(1, "chunk size must be positive");
    assert_eq!(s.json(["collection", "list"])["collections"][0]["settings"]["chunking"]["max_chars"].as_u64(), Some(1200));
}

/// Issue 11, defect 8: a backup whose manifest holds invalid settings is refused before the restore changes anything.
#[test]
fn restore_refuses_a_manifest_with_settings_that_collection_create_refuses() {
    let s = TestStore::new();
    s.ok(["collection", "create", "n"]);
    s.ok(["put", "n", "a.md", "--text", "alpha"]);
    s.ok(["backup"]);
    let id = only_backup(&s);
    let manifest = s.colstore_dir().join("backups").join("manifests").join(format!("{id}.json"));
    let json = std::fs::read_to_string(&manifest).unwrap();
    let bad = json.replacen(r#""max_chars": 1200"#, r#""max_chars": 0"#, 1);
    assert_ne!(bad, json, "the manifest holds the default chunking: {json}");
    std::fs::write(&manifest, bad).unwrap();
    s.ok(["put", "n", "a.md", "--text", "changed"]);
    let before = s.fingerprint();
    let out = s.run(["restore", &id, "--yes"]);
    out.assert_error(3, "chunk size must be positive and larger than the overlap");
    assert_eq!(s.fingerprint(), before, "nothing changed");
}
