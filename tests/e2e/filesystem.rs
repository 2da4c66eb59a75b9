//! Filesystem storage mode end to end (PRODUCT §4, seed 000's journeys): documents as plain files that people edit,
//! `col reconcile`, `col status` and `col sync` picking the edits up, path security and migration between the modes.
//! kill -9 during reconcile and migrate is in `crash/files.rs`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use colstore_e2e::TestStore;
use colstore_testkit::stub_embedder::StubEmbedServer;
use serde_json::Value;

use crate::sha256_hex;

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// An editor's save: write a temporary file next to the original, then rename it over.
fn editor_save(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(".{}.swp", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn counts(plan: &Value) -> (usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0);
    for ch in plan["changes"].as_array().unwrap() {
        match ch["change"].as_str().unwrap() {
            "added" => c.0 += 1,
            "modified" => c.1 += 1,
            "deleted" => c.2 += 1,
            "renamed" => c.3 += 1,
            _ => {}
        }
    }
    c
}

/// The plan of the first (or only) collection of a `col --json reconcile`.
fn plan_of(r: &Value) -> &Value {
    let first = &r["collections"][0];
    if first.get("plan").is_some() { &first["plan"] } else { first }
}

/// key → content hash of a `col --json ls`.
fn hashes(s: &TestStore, c: &str) -> BTreeMap<String, String> {
    s.json(["ls", c, "--limit", "100000"])["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["key"].as_str().unwrap().to_owned(), d["content_hash"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn journey_1_sqlite_mode_is_unchanged_and_has_nothing_to_reconcile() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "alpha"]);
    assert_eq!(s.json(["status"])["storage_mode"], "sqlite");
    let out = s.run(["reconcile"]);
    out.assert_error(1, "applies to the filesystem storage mode");
    assert!(out.hint().unwrap().contains("col migrate --to filesystem"), "{out}");
    assert!(!s.colstore_dir().join("docs").exists(), "sqlite mode writes no files");
}

#[test]
fn journey_2_an_external_edit_is_found_and_reconciled() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "ideas/a.md", "--text", "first version", "--meta", r#"{"lang":"en"}"#, "--tag", "idea"]);
    let file = s.docs("notes").join("ideas/a.md");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "first version", "the document is a plain file");

    editor_save(&file, b"second version, edited in vim");
    let st = s.json(["status"]);
    assert_eq!(st["unreconciled"]["notes"]["modified"], 1, "{st}");

    // The dry run shows the plan and changes nothing.
    let before = s.json(["get", "notes", "ideas/a.md", "--meta-only"]);
    let dry = s.json(["reconcile", "--dry-run"]);
    assert_eq!(counts(plan_of(&dry)), (0, 1, 0, 0), "{dry}");
    assert_eq!(s.json(["get", "notes", "ideas/a.md", "--meta-only"]), before);

    let out = s.ok(["reconcile"]);
    assert!(out.stdout.contains("~ ideas/a.md"), "{out}");
    let after = s.json(["get", "notes", "ideas/a.md", "--meta-only"]);
    assert_eq!(after["version"], 2);
    assert_eq!(after["content_hash"], sha256_hex(b"second version, edited in vim"));
    assert_eq!(after["metadata"]["lang"], "en", "metadata survives an external edit");
    assert_eq!(s.run(["get", "notes", "ideas/a.md"]).stdout, "second version, edited in vim");
    assert!(s.json(["status"])["unreconciled"].as_object().unwrap().is_empty());
    s.ok(["verify"]);
}

#[test]
fn journey_3_and_4_sync_reconciles_first_in_both_modes_and_finds_new_files() {
    for mode in ["sqlite", "filesystem"] {
        let s = TestStore::uninitialised();
        s.ok(["init", "--mode", mode]);
        s.ok(["collection", "create", "notes"]);
        s.ok(["put", "notes", "wal.md", "--text", "Write-ahead logging keeps SQLite durable."]);
        let r = s.json(["sync"]);
        assert_eq!(r["collections"][0]["synced"], 1, "{mode}: {r}");
        if mode == "filesystem" {
            // Journey 4: a file added by another program is detected and available for sync.
            write(&s.docs("notes").join("fox.md"), "The quick brown fox jumps over the lazy dog.");
            let st = s.json(["status"]);
            assert_eq!(st["unreconciled"]["notes"]["added"], 1, "{st}");
            let r = s.json(["sync"]);
            assert_eq!(r["collections"][0]["synced"], 1, "{r}");
            let hits = s.json(["search", "notes", "quick brown fox", "-k", "1"]);
            assert_eq!(hits["results"][0]["key"], "fox.md", "{hits}");
        }
        s.ok(["verify"]);
    }
}

#[test]
fn touch_moves_and_deletes_are_classified_and_touch_is_not_rehashed_twice() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    let root = s.docs("notes");
    for i in 0..6 {
        write(&root.join(format!("dir/n{i}.md")), format!("note number {i}"));
    }
    write(&root.join("keep.md"), "kept");
    write(&root.join("gone.md"), "to be deleted");
    write(&root.join("trash/1.md"), "a folder to delete");
    write(&root.join("trash/2.md"), "with two files");
    let r = s.json(["reconcile"]);
    assert_eq!(counts(plan_of(&r)), (10, 0, 0, 0), "{r}");

    // Touch without change: hashed once (stat refreshed), then not read again.
    let f = root.join("keep.md");
    let t = std::fs::File::options().write(true).open(&f).unwrap();
    t.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
    drop(t);
    let r = s.json(["reconcile"]);
    assert_eq!(counts(plan_of(&r)), (0, 0, 0, 0), "{r}");
    assert_eq!(plan_of(&r)["hashed_files"], 1);
    let r = s.json(["reconcile"]);
    assert_eq!(plan_of(&r)["hashed_files"], 0, "the second run trusts the refreshed stat: {r}");

    // A moved directory is renames (metadata kept); a deleted file and a deleted folder are deletions.
    s.ok(["put", "notes", "dir/n0.md", "--text", "note number 0", "--meta", r#"{"pinned":true}"#]);
    std::fs::rename(root.join("dir"), root.join("moved")).unwrap();
    std::fs::remove_file(root.join("gone.md")).unwrap();
    std::fs::remove_dir_all(root.join("trash")).unwrap();
    let r = s.json(["reconcile"]);
    assert_eq!(counts(plan_of(&r)), (0, 0, 3, 6), "{r}");
    let moved = s.json(["get", "notes", "moved/n0.md", "--meta-only"]);
    assert_eq!(moved["metadata"]["pinned"], true, "a rename keeps the metadata");
    s.run(["get", "notes", "dir/n0.md", "--meta-only"]).assert_code(1);

    // A case-only rename is a rename too.
    std::fs::rename(root.join("keep.md"), root.join("Keep.md")).unwrap();
    let r = s.json(["reconcile"]);
    assert_eq!(counts(plan_of(&r)), (0, 0, 0, 1), "{r}");
    s.ok(["verify"]);
}

#[test]
fn a_moved_directory_is_synced_without_embedding_again() {
    let stub = StubEmbedServer::start(16);
    let s = TestStore::filesystem();
    crate::sync::use_stub(&s, &stub);
    s.ok(["collection", "create", "notes"]);
    let root = s.docs("notes");
    for i in 0..5 {
        write(&root.join(format!("a/n{i}.md")), format!("note {i} about write-ahead logs and backups"));
    }
    s.json(["sync"]);
    let embedded = stub.texts_embedded();
    assert!(embedded >= 5);
    std::fs::rename(root.join("a"), root.join("b")).unwrap();
    let r = s.json(["sync"]);
    assert_eq!(r["collections"][0]["synced"], 5, "{r}");
    assert_eq!(stub.texts_embedded(), embedded, "a rename re-embeds nothing");
    let hits = s.json(["search", "notes", "note 3 about write-ahead logs", "-k", "1"]);
    assert!(hits["results"][0]["key"].as_str().unwrap().starts_with("b/"), "{hits}");
}

#[test]
fn safety_refusals_missing_root_mass_deletion_and_forced_with_a_safety_copy() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    let root = s.docs("notes");
    for i in 0..10 {
        write(&root.join(format!("n{i}.md")), format!("note {i}"));
    }
    s.ok(["reconcile"]);

    // More than half deleted: refused, nothing changed.
    for i in 0..6 {
        std::fs::remove_file(root.join(format!("n{i}.md"))).unwrap();
    }
    let out = s.run(["reconcile"]);
    out.assert_error(1, "would delete 6 of 10 documents");
    assert!(out.hint().unwrap().contains("--force"), "{out}");
    assert_eq!(hashes(&s, "notes").len(), 10);
    // The threshold is configurable per run.
    s.ok(["reconcile", "--dry-run", "--max-delete", "70"]);

    // A missing folder (an unmounted disk): refused; sync refuses too.
    std::fs::rename(&root, s.path().join("elsewhere")).unwrap();
    s.run(["reconcile"]).assert_error(1, "does not exist");
    s.run(["sync"]).assert_error(1, "refusing to reconcile notes");
    assert_eq!(hashes(&s, "notes").len(), 10);
    // An empty folder: refused.
    std::fs::create_dir(&root).unwrap();
    s.run(["reconcile"]).assert_error(1, "is empty");

    // Forced: applied after a verified copy of the database (the files are gone; their metadata is what is kept).
    let r = s.json(["reconcile", "--force"]);
    let copy = r["safety_copy"].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(Path::new(copy).is_file(), "{r}");
    assert_eq!(hashes(&s, "notes").len(), 0);
}

#[test]
fn hostile_trees_symlink_escape_fifo_unreadable_and_unicode() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    let root = s.docs("notes");
    write(&root.join("ok.md"), "fine");
    write(&root.join("secret.md"), "readable for now");
    write(&s.path().join("outside/passwd"), "not yours");
    std::os::unix::fs::symlink(s.path().join("outside/passwd"), root.join("escape.md")).unwrap();
    std::os::unix::fs::symlink("ok.md", root.join("inside-link.md")).unwrap();
    let fifo = root.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // NFD on disk: the key is NFC.
    write(&root.join("cafe\u{301}.md"), "coffee");

    let r = s.json(["reconcile"]);
    let plan = plan_of(&r);
    let skipped: Vec<&str> = plan["skipped"].as_array().unwrap().iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert!(skipped.contains(&"escape.md"), "{r}");
    assert!(skipped.contains(&"pipe"), "{r}");
    let keys = hashes(&s, "notes");
    assert!(keys.contains_key("caf\u{e9}.md"), "{keys:?}");
    assert!(!keys.contains_key("escape.md"));
    assert_eq!(s.run(["get", "notes", "caf\u{e9}.md"]).stdout, "coffee");

    // An unreadable file is reported and never treated as deleted. Root reads any file, so as root the commands run
    // as `nobody` (setpriv) on a tree handed over to it.
    if colstore_testkit::need::is_root() {
        assert!(std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(s.path()).status().unwrap().success());
    }
    let run = |args: &[&str]| crate::as_unprivileged(&s, args);
    if let Err(why) = run(&["status"]) {
        return crate::unprivileged_unavailable(&why);
    }
    let run = |args: &[&str]| run(args).expect("ran unprivileged a moment ago");
    std::fs::write(root.join("secret.md"), "changed and then locked").unwrap();
    std::fs::set_permissions(root.join("secret.md"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = run(&["--json", "reconcile"]);
    out.assert_ok();
    let r = out.json();
    let plan = plan_of(&r);
    assert!(plan["unreadable"].as_array().unwrap().iter().any(|u| u["path"] == "secret.md"), "{r}");
    assert!(hashes(&s, "notes").contains_key("secret.md"), "an unreadable file is not deleted");
    // A folder that cannot be listed hides its documents; they are not deleted either.
    write(&root.join("locked/inner.md"), "inside");
    run(&["reconcile"]).assert_ok();
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = run(&["--json", "reconcile"]);
    out.assert_ok();
    assert!(hashes(&s, "notes").contains_key("locked/inner.md"), "documents behind an unreadable folder are kept: {out}");
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("secret.md"), std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn ten_thousand_files_in_one_directory() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "many"]);
    let root = s.docs("many");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..10_000 {
        std::fs::write(root.join(format!("f{i:05}.txt")), format!("file {i}")).unwrap();
    }
    let r = s.json(["reconcile"]);
    assert_eq!(counts(plan_of(&r)).0, 10_000);
    let r = s.json(["reconcile"]);
    assert_eq!(plan_of(&r)["hashed_files"], 0, "nothing read on an unchanged tree");
    assert_eq!(plan_of(&r)["unchanged"], 10_000);
}

#[test]
fn init_options_and_env_follow_the_seed() {
    // --docs-dir: an existing folder of notes becomes the collections' folder.
    let s = TestStore::uninitialised();
    write(&s.path().join("notes/journal/today.md"), "dear diary");
    let out = s.json(["init", "--mode", "filesystem", "--docs-dir", "notes"]);
    assert_eq!(out["mode"], "filesystem");
    s.ok(["collection", "create", "journal"]);
    let r = s.json(["reconcile"]);
    assert_eq!(counts(plan_of(&r)).0, 1, "{r}");
    assert_eq!(s.run(["get", "journal", "today.md"]).stdout, "dear diary");

    // The seed's variable names.
    let mut s = TestStore::uninitialised();
    s.set_env("COLLECTION_STORAGE_MODE", "filesystem");
    s.set_env("COLLECTION_FILESYSTEM_PATH", s.path().join("collections").into_os_string());
    s.set_env("COLLECTION_METADATA_DB_PATH", s.path().join("meta/collections_metadata.db").into_os_string());
    std::fs::create_dir_all(s.path().join("meta")).unwrap();
    s.ok(["init"]);
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "x.md", "--text", "hello"]);
    assert!(s.path().join("collections/c/x.md").is_file());
    assert!(s.path().join("meta/collections_metadata.db").is_file());
    assert_eq!(s.json(["status"])["storage_mode"], "filesystem");

    // Bad input.
    let s = TestStore::uninitialised();
    s.run(["init", "--docs-dir", "x"]).assert_error(2, "--docs-dir only applies to the filesystem storage mode");
    s.run(["init", "--mode", "filesystem", "--docs-dir", "/dev/null"]).assert_error(1, "not a directory");
    assert!(!s.colstore_dir().exists());
}

#[test]
fn migrate_both_ways_keeps_keys_hashes_metadata_and_vectors() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    for i in 0..20 {
        s.ok(["put", "notes", &format!("d/{i}.md"), "--text", &format!("document {i} on backups"), "--tag", "t"]);
    }
    s.json(["sync"]);
    let before = hashes(&s, "notes");
    s.run(["migrate", "--to", "sqlite"]).assert_error(1, "in sqlite mode already");
    let dry = s.json(["migrate", "--to", "filesystem", "--dry-run"]);
    assert_eq!(dry["plan"]["documents"], 20);
    assert_eq!(s.json(["status"])["storage_mode"], "sqlite", "a dry run changes nothing");

    let r = s.json(["migrate", "--to", "filesystem"]);
    assert!(r["safety_backup"].is_string(), "{r}");
    assert_eq!(s.json(["status"])["storage_mode"], "filesystem");
    assert_eq!(hashes(&s, "notes"), before);
    assert_eq!(std::fs::read_to_string(s.docs("notes").join("d/3.md")).unwrap(), "document 3 on backups");
    s.ok(["verify"]);
    let st = s.json(["status"]);
    assert_eq!(st["collections"][0]["pending"], 0, "the ledger stays valid: nothing to re-sync: {st}");

    // Unreconciled edits block the way back.
    write(&s.docs("notes").join("new.md"), "added by hand");
    s.run(["migrate", "--to", "sqlite"]).assert_error(1, "not reconciled");
    s.ok(["reconcile"]);
    let before = hashes(&s, "notes");
    s.json(["migrate", "--to", "sqlite"]);
    assert_eq!(s.json(["status"])["storage_mode"], "sqlite");
    assert_eq!(hashes(&s, "notes"), before);
    assert_eq!(s.run(["get", "notes", "new.md"]).stdout, "added by hand");
    s.ok(["verify"]);
}

/// `col watch` with file-system notifications: an editor's save is reconciled and synced without any command, and
/// Ctrl-C (SIGINT) stops it cleanly.
#[test]
fn watch_syncs_a_save_and_stops_on_ctrl_c() {
    watch_round_trip(&[], "file-system notifications");
}

/// The same with polling (the fallback when notifications are unavailable, e.g. on network file systems).
#[test]
fn watch_by_polling_syncs_a_save() {
    watch_round_trip(&["--poll", "0.2"], "polling every 0.2 s");
}

fn watch_round_trip(extra: &[&str], method: &str) {
    use std::io::{BufRead, BufReader};

    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    write(&s.docs("notes").join("first.md"), "written before the watch started");
    let mut args = vec!["--json", "watch", "notes", "--debounce-ms", "100"];
    args.extend_from_slice(extra);
    let mut child = s.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Events are JSON lines: "watching" once, then "synced" after each round that did something.
    let next_event = |what: &str| -> Value {
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("no event while waiting for {what}: {e}"));
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["event"] != "watching" {
                return v;
            }
            assert_eq!(v["method"], method, "{v}");
        }
    };
    // The first round reconciles and syncs what is there.
    let e = next_event("the first round");
    assert_eq!((e["event"].as_str(), e["changes"].as_u64(), e["synced"].as_u64()), (Some("synced"), Some(1), Some(1)), "{e}");

    // An editor-style save is picked up.
    editor_save(&s.docs("notes").join("first.md"), b"saved in an editor: write-ahead logs");
    let e = next_event("the save");
    assert_eq!((e["changes"].as_u64(), e["synced"].as_u64()), (Some(1), Some(1)), "{e}");
    let hits = s.json(["search", "notes", "saved in an editor: write-ahead logs", "-k", "1"]);
    assert_eq!(hits["results"][0]["key"], "first.md");

    // Ctrl-C: a clean exit.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "watch exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    s.ok(["verify"]);
}

/// A backup restores into a store of the other storage mode, both ways, bit for bit (keys, hashes, metadata).
#[test]
fn backups_restore_across_storage_modes() {
    for (from, to) in [("sqlite", "filesystem"), ("filesystem", "sqlite")] {
        let a = TestStore::uninitialised();
        a.ok(["init", "--mode", from]);
        a.ok(["collection", "create", "notes"]);
        for i in 0..5 {
            a.ok(["put", "notes", &format!("n/{i}.md"), "--text", &format!("note {i}"), "--meta", r#"{"k":1}"#, "--tag", "x"]);
        }
        a.json(["sync"]);
        let id = a.json(["backup"])["backup"]["id"].as_str().unwrap().to_owned();
        let repo = format!("file://{}", a.colstore_dir().join("backups").display());

        let b = TestStore::uninitialised();
        b.ok(["init", "--mode", to]);
        b.ok(["restore", &id, "--repo", &repo, "--yes"]);
        assert_eq!(b.json(["ls", "notes"])["documents"], a.json(["ls", "notes"])["documents"], "{from} -> {to}");
        assert_eq!(b.run(["get", "notes", "n/3.md"]).stdout, "note 3");
        if to == "filesystem" {
            assert_eq!(std::fs::read_to_string(b.docs("notes").join("n/3.md")).unwrap(), "note 3");
            assert!(b.json(["status"])["unreconciled"].as_object().unwrap().is_empty());
        }
        let v = b.json(["verify"]);
        assert_eq!(v["ok"], true, "{v}");
    }
}

/// In filesystem mode the files are the content: `rm` and `collection delete` keep a safety backup (a copy of the
/// database would not hold the files), from which the documents come back.
#[test]
fn destructive_commands_keep_a_safety_backup_of_the_files() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "precious words"]);
    s.ok(["put", "notes", "b.md", "--text", "more words"]);
    let r = s.json(["rm", "notes", "a.md"]);
    let id = r["safety_backup"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    assert!(!s.docs("notes").join("a.md").exists(), "rm removes the file");
    let r = s.json(["collection", "delete", "notes", "--yes"]);
    assert!(r["safety_backup"].is_string(), "{r}");
    assert!(!s.docs("notes").join("b.md").exists());

    s.ok(["restore", &id, "--yes"]);
    assert_eq!(std::fs::read_to_string(s.docs("notes").join("a.md")).unwrap(), "precious words");
    s.ok(["verify"]);
}

/// A missing collection is a clear error for the filesystem-mode commands, and creates no folder.
#[test]
fn a_missing_collection_is_named_and_gets_no_folder() {
    let s = TestStore::filesystem();
    for args in [&["reconcile", "nope"][..], &["reconcile", "nope", "--dry-run"], &["watch", "nope"]] {
        let out = s.run(args);
        out.assert_error(1, "collection \"nope\" not found");
        assert!(out.hint().unwrap().contains("col collection create nope"), "{out}");
    }
    assert!(!s.docs("nope").exists());
}
