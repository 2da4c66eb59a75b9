//! Backups from the real binary (PRODUCT §7): round trips, plans, damage, bad input, and a backup taken while another
//! process writes. kill -9 during backup, prune, restore, clear and import is in `crash/backups.rs`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use colstore_e2e::TestStore;
use serde_json::Value;

/// A store with two collections of small text documents (with metadata and tags), synced.
fn store_with_documents(n: usize) -> TestStore {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.ok(["collection", "create", "papers"]);
    for i in 0..n {
        s.write(format!("src/notes/n{i:04}.md"), format!("note {i}: backups keep data safe, write-ahead logs and checksums {}", i * 7));
    }
    s.ok(["add", "notes", "src/notes", "-q"]);
    s.ok(["put", "papers", "p1.md", "--text", "a paper about vectors", "--meta", r#"{"year":2024}"#, "--tag", "draft"]);
    s.ok(["sync", "-q"]);
    s
}

fn backup_id(s: &TestStore, args: &[&str]) -> String {
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    let v = s.json(all);
    v["backup"]["id"].as_str().expect("a backup id").to_owned()
}

/// Every object file of the default file:// repository.
fn object_files(s: &TestStore) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(&s.colstore_dir().join("backups").join("objects"));
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn backup_then_restore_brings_back_exactly_the_backed_up_store() {
    let s = store_with_documents(60);
    let before = s.fingerprint();
    let id = backup_id(&s, &["--tag", "first"]);

    // Damage the store in every way restore must undo.
    s.ok(["rm", "notes", "n0001.md", "n0002.md"]);
    s.ok(["put", "notes", "n0003.md", "--text", "edited"]);
    s.ok(["put", "notes", "extra.md", "--text", "not in the backup"]);
    s.ok(["collection", "delete", "papers", "--yes"]);
    assert_ne!(s.fingerprint(), before);

    let plan = s.json(["restore", &id, "--dry-run"]);
    let notes = plan["plan"]["collections"].as_array().unwrap().iter().find(|c| c["name"] == "notes").unwrap().clone();
    assert_eq!((notes["add"].as_u64(), notes["update"].as_u64(), notes["delete"].as_u64()), (Some(2), Some(1), Some(1)), "{plan}");

    let r = s.json(["restore", &id, "--yes"]);
    assert!(r["safety_backup"].is_string(), "a replace takes a safety backup first: {r}");
    // The replaced contents are garbage until gc, as after any overwrite; then the stores are equal in every figure.
    s.ok(["gc"]);
    assert_eq!(s.fingerprint(), before, "the store is exactly the backed-up one");
    s.ok(["verify"]);
    let idx = s.run(["verify", "--index"]);
    assert_eq!(idx.code, 0, "the index follows the restored ledger from the restored cache\n{idx}");
    let hits = s.json(["search", "notes", "write-ahead logs", "-k", "1"]);
    assert_eq!(hits["results"].as_array().map(Vec::len), Some(1), "{hits}");

    // The safety backup undoes the restore.
    let safety = r["safety_backup"].as_str().unwrap().to_owned();
    s.ok(["restore", &safety, "--yes", "--collection", "notes"]);
    assert_eq!(s.json(["ls", "notes"])["total"].as_u64(), Some(59), "the safety backup held the store before the restore");

    // Into a new store: same documents, and search works without any embedder call (from the restored cache).
    let other = s.path().join("elsewhere");
    s.ok(["restore", &id, "--to-store", other.to_str().unwrap(), "--yes"]);
    let ls = |store: &Path| -> Value {
        let out = colstore_e2e::output_of(colstore_e2e::col().args(["--json", "--store"]).arg(store).args(["ls", "notes"]), None);
        out.assert_ok();
        out.json()
    };
    assert_eq!(ls(&other), before["documents"]["notes"]);
    let out = colstore_e2e::output_of(colstore_e2e::col().arg("--store").arg(&other).args(["verify", "--index"]), None);
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn a_second_backup_stores_only_the_change_and_every_backup_verifies() {
    let s = store_with_documents(200);
    let first = s.json(["backup"]);
    s.ok(["put", "notes", "n0100.md", "--text", "changed"]);
    let second = s.json(["backup"]);
    let (a, b) =
        (first["backup"]["stats"]["new_object_bytes"].as_u64().unwrap(), second["backup"]["stats"]["new_object_bytes"].as_u64().unwrap());
    // With 200 documents the record chunks are a large part of the store; what must not be written again is content.
    assert!(b * 3 < a, "second backup wrote {b} bytes, the first {a}");
    let reused = second["backup"]["stats"]["blobs"].as_u64().unwrap() - second["backup"]["stats"]["new_blobs"].as_u64().unwrap();
    assert!(reused >= 398, "the 199 unchanged documents and their vectors are reused: {second}");
    for v in [&first, &second] {
        let id = v["backup"]["id"].as_str().unwrap();
        let check = s.json(["backup", "verify", id, "--read-data"]);
        assert_eq!(check["problems"].as_array().map(Vec::len), Some(0), "{check}");
    }
    let list = s.json(["backup", "list"]);
    assert_eq!(list["backups"].as_array().map(Vec::len), Some(2));
}

#[test]
fn dry_runs_change_nothing_and_print_their_plans() {
    let s = store_with_documents(5);
    let id = backup_id(&s, &[]);
    s.ok(["put", "notes", "new.md", "--text", "new"]);
    let repo_before = object_files(&s);
    let before = s.fingerprint();
    let t = s.transcript(&[
        &["backup", "--dry-run"],
        &["restore", &id, "--dry-run"],
        &["restore", &id, "--dry-run", "--mode", "merge", "--collection", "notes"],
        &["clear", "notes", "--dry-run"],
        &["clear", "--all", "--drop", "--dry-run"],
        &["backup", "prune", "--keep-last", "1", "--dry-run"],
        &["backup", "delete", &id, "--dry-run"],
    ]);
    insta::assert_snapshot!("backup_dry_runs", t);
    assert_eq!(s.fingerprint(), before);
    assert_eq!(object_files(&s), repo_before);
    assert_eq!(s.json(["backup", "list"])["backups"].as_array().map(Vec::len), Some(1));
}

#[test]
fn backup_commands_transcript() {
    let s = store_with_documents(3);
    let t = s.transcript(&[
        &["backup", "--tag", "nightly"],
        &["backup", "verify"],
        &["backup", "verify", "latest", "--read-data"],
        &["backup", "show", "latest"],
        &["clear", "papers", "--yes"],
        &["restore", "latest", "--collection", "papers", "--yes"],
        &["ls", "papers"],
    ]);
    insta::assert_snapshot!("backup_commands", t);
}

#[test]
fn a_damaged_object_is_named_and_restore_refuses_before_changing_anything() {
    for damage in ["flip", "truncate", "delete"] {
        let s = store_with_documents(20);
        let id = backup_id(&s, &[]);
        let files = object_files(&s);
        let victim = files.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap().clone();
        let object = victim.file_name().unwrap().to_str().unwrap().to_owned();
        match damage {
            "flip" => {
                let mut b = std::fs::read(&victim).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x10;
                std::fs::write(&victim, b).unwrap();
            }
            "truncate" => {
                let b = std::fs::read(&victim).unwrap();
                std::fs::write(&victim, &b[..b.len() / 2]).unwrap();
            }
            _ => std::fs::remove_file(&victim).unwrap(),
        }
        let out = s.run(["backup", "verify", &id, "--read-data"]);
        assert_eq!(out.code, 3, "{damage}: verify must exit 3\n{out}");
        assert!(out.stderr.contains(&object), "{damage}: verify must name the object {object}\n{out}");

        s.ok(["put", "notes", "n0001.md", "--text", "after the backup"]);
        let before = s.fingerprint();
        let out = s.run(["restore", &id, "--yes"]);
        assert_eq!(out.code, 3, "{damage}: restore must refuse\n{out}");
        assert!(out.stderr.contains(&object[..12]) || out.stderr.contains(&object), "{damage}: {out}");
        assert_eq!(s.fingerprint(), before, "{damage}: the refused restore changed the store");
    }
}

#[test]
fn bad_backup_input_gets_clear_errors() {
    let s = store_with_documents(2);
    let cases: &[(&[&str], &str, &str)] = &[
        (&["restore", "../../etc", "--yes"], "backup id", "letters, digits"),
        (&["backup", "--to", "ftp://host/x"], "ftp://host/x", "s3://bucket/prefix"),
        (&["backup", "--collection", "nope"], "collection nope is not in the store", "col collection list"),
        // (after the failed backup above created the repository: reading a missing one is "not found")
        (&["restore", "20990101T000000Z-00000000", "--yes"], "there is no backup 20990101T000000Z-00000000", "col backup list"),
        (&["backup", "--tag", "has space"], "tag", "without spaces"),
        (&["backup", "prune"], "needs a policy", "--keep-last"),
        (&["backup", "prune", "--keep-last", "0"], "--keep-last 0", "keep at least 1"),
        (&["backup", "show", "latest"], "holds no backups", "col backup"),
        (&["clear", "notes"], "refusing", "--yes"),
        (&["clear", "nope", "--yes"], "nope", "col collection create"),
    ];
    for (args, message, hint) in cases {
        let out = s.run(*args);
        out.assert_no_panic();
        assert_ne!(out.code, 0, "{args:?} must fail\n{out}");
        assert!(out.stderr.contains(message), "{args:?}: the error must say {message:?}\n{out}");
        assert!(out.stderr.contains(hint), "{args:?}: the hint must say {hint:?}\n{out}");
    }
    let id = backup_id(&s, &[]);
    let out = s.run(["restore", &id, "--collection", "nope", "--yes"]);
    assert!(out.stderr.contains("collection nope is not in the backup"), "{out}");
    // Nothing here changed the store.
    s.ok(["verify"]);
}

#[test]
fn a_backup_taken_while_another_process_writes_shows_one_moment() {
    let s = store_with_documents(1);
    // The writer puts doc-N, then sets counter.md to N: at any single moment, every doc-1..=counter exists.
    let script = format!(
        "for i in $(seq 1 300); do {col} --store {store} put notes doc-$i.md --text \"doc $i\" -q || exit 1; \
         {col} --store {store} put notes counter.md --text $i -q || exit 1; done",
        col = colstore_e2e::col_bin().display(),
        store = s.store_dir().display()
    );
    let mut writer = std::process::Command::new("sh").arg("-c").arg(&script).stdout(Stdio::null()).spawn().expect("spawn the writer");
    let mut checked = 0;
    let started = Instant::now();
    while writer.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
        let id = backup_id(&s, &["--collection", "notes"]);
        let other = s.path().join(format!("check-{checked}"));
        s.ok(["restore", &id, "--to-store", other.to_str().unwrap(), "--yes", "-q"]);
        let out = colstore_e2e::output_of(
            colstore_e2e::col().args(["--json", "--store"]).arg(&other).args(["ls", "notes", "--limit", "100000"]),
            None,
        );
        out.assert_ok();
        let keys = crate::keys(&out.json());
        if keys.contains(&"counter.md".to_owned()) {
            let got = colstore_e2e::output_of(colstore_e2e::col().arg("--store").arg(&other).args(["get", "notes", "counter.md"]), None);
            let n: usize = got.stdout.trim().parse().unwrap();
            for i in 1..=n {
                assert!(keys.contains(&format!("doc-{i}.md")), "backup {id} has counter {n} but no doc-{i}.md: not one moment");
            }
        }
        checked += 1;
    }
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(checked >= 2, "only {checked} backups ran while the writer wrote");
    println!("{checked} backups taken while writing were each consistent");
}

/// `col backup --to s3://…` against a real S3-protocol server on loopback, configured only through the standard AWS
/// variables, then list, verify, and restore into a new store from it.
#[test]
fn backups_go_to_s3_and_come_back() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
    let Some(server) = rt.block_on(colstore_testkit::s3_server::start_or_skip("backups")) else { return };
    let mut s = store_with_documents(30);
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", colstore_testkit::s3_server::ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", colstore_testkit::s3_server::SECRET_KEY.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL", server.endpoint()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ] {
        s.set_env(k, v);
    }
    let url = "s3://backups/colstore/test";
    let before = s.fingerprint();
    let v = s.json(["backup", "--to", url]);
    let id = v["backup"]["id"].as_str().unwrap().to_owned();
    assert!(server.root().join("backups/colstore/test/manifests").join(format!("{id}.json")).is_file(), "the manifest is in the bucket");
    let list = s.json(["backup", "list", "--repo", url]);
    assert_eq!(list["backups"][0]["id"].as_str(), Some(id.as_str()));
    let check = s.json(["backup", "verify", &id, "--read-data", "--repo", url]);
    assert_eq!(check["problems"].as_array().map(Vec::len), Some(0), "{check}");
    let other = s.path().join("from-s3");
    s.ok(["restore", &id, "--repo", url, "--to-store", other.to_str().unwrap(), "--yes"]);
    let out = colstore_e2e::output_of(colstore_e2e::col().args(["--json", "--store"]).arg(&other).args(["ls", "notes"]), None);
    out.assert_ok();
    assert_eq!(out.json(), before["documents"]["notes"]);
    // A wrong secret is a clear error, not a hang or a panic.
    s.set_env("AWS_SECRET_ACCESS_KEY", "wrong");
    let out = s.run(["backup", "list", "--repo", url]);
    out.assert_no_panic();
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("AWS_SECRET_ACCESS_KEY"), "the hint names the credentials: {out}");
    drop(server);
}

#[test]
fn export_then_import_into_a_new_store_and_bad_files_change_nothing() {
    let s = store_with_documents(40);
    let file = s.path().join("out.colstore");
    let v = s.json(["export", "-o", file.to_str().unwrap()]);
    assert_eq!(v["export"]["documents"].as_u64(), Some(41));
    let before = s.fingerprint();

    let other = TestStore::new();
    let dry = other.json(["import", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(dry["plan"]["documents"].as_u64(), Some(41));
    assert_eq!(other.json(["collection", "list"])["collections"].as_array().map(Vec::len), Some(0), "a dry run imports nothing");
    other.ok(["import", file.to_str().unwrap(), "--yes"]);
    assert_eq!(other.json(["ls", "notes"]), before["documents"]["notes"]);
    assert_eq!(other.json(["ls", "papers"]), before["documents"]["papers"]);
    // The vectors came along: syncing needs no embedder call.
    let sync = other.json(["sync"]);
    let embedded: u64 = sync["collections"].as_array().unwrap().iter().map(|c| c["embedded"].as_u64().unwrap()).sum();
    assert_eq!(embedded, 0, "{sync}");

    // Truncated, garbage, future-version and missing files are refused, naming the problem, and change nothing.
    let bytes = std::fs::read(&file).unwrap();
    let mut text = Vec::new();
    zstd_decode(&bytes, &mut text);
    // The header with a version from the future (whatever the current one is).
    let all = String::from_utf8(text.clone()).unwrap();
    let (head, rest) = all.split_once('\n').unwrap();
    let mut head: serde_json::Value = serde_json::from_str(head).unwrap();
    head["header"]["version"] = 99.into();
    let future = format!("{head}\n{rest}");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec(), "line"),
        ("garbage", b"not an export at all".to_vec(), "not usable"),
        ("future", zstd_encode(future.as_bytes()), "upgrade colstore"),
        ("cut after a line", zstd_encode(&text[..text.len() - 20]), "line"),
    ];
    let fingerprint = other.fingerprint();
    for (what, data, expect) in cases {
        let p = other.path().join(format!("{}.colstore", what.replace(' ', "-")));
        std::fs::write(&p, data).unwrap();
        let out = other.run(["import", p.to_str().unwrap(), "--yes"]);
        out.assert_no_panic();
        assert_eq!(out.code, 1, "{what}\n{out}");
        assert!(out.stderr.contains(expect), "{what}: {expect:?}\n{out}");
        assert_eq!(other.fingerprint(), fingerprint, "{what} changed the store");
    }
    let out = other.run(["import", "missing.colstore"]);
    assert!(out.stderr.contains("cannot read") && out.stderr.contains("col export"), "{out}");
    let out = s.run(["export", "-o", s.path().to_str().unwrap()]);
    assert!(out.stderr.contains("is a directory"), "{out}");
}

fn zstd_decode(data: &[u8], out: &mut Vec<u8>) {
    let mut d = zstd::Decoder::new(data).unwrap();
    std::io::Read::read_to_end(&mut d, out).unwrap();
}

fn zstd_encode(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

#[test]
fn restore_and_import_ask_only_when_they_would_overwrite_or_delete() {
    let s = store_with_documents(3);
    let id = backup_id(&s, &[]);
    let file = s.path().join("all.colstore");
    s.ok(["export", "-o", file.to_str().unwrap()]);
    // Into a new store nothing is overwritten: no question, even without a terminal.
    let other = s.path().join("fresh");
    s.ok(["restore", &id, "--to-store", other.to_str().unwrap()]);
    let empty = TestStore::new();
    empty.ok(["import", file.to_str().unwrap()]);
    assert_eq!(empty.json(["ls", "notes"])["documents"].as_array().map(Vec::len), Some(3));
    // Restoring over a changed document, or importing over it, asks; without a terminal that is a refusal.
    s.ok(["put", "notes", "n0001.md", "--text", "changed after the backup"]);
    let before = s.fingerprint();
    for args in [vec!["restore", id.as_str()], vec!["import", file.to_str().unwrap()]] {
        let out = s.run(args.clone());
        assert_ne!(out.code, 0, "{args:?} must ask\n{out}");
        assert!(out.stderr.contains("--yes"), "{args:?}\n{out}");
        assert_eq!(s.fingerprint(), before, "{args:?} changed the store");
    }
}
