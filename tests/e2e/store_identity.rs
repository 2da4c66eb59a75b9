//! A store knows what it is (issue 11, defects 1 and 2, and their rough edges): its mode, documents folder and database
//! come from its `config.toml`, never from an environment variable that disagrees; its database records the store id
//! of `config.toml`, so an empty, missing or foreign database is refused with the recovery command instead of being
//! taken for a new, empty store; and a store the user may only read can still be read.

use std::ffi::OsStr;
use std::path::Path;

use colstore_e2e::{Output, TestStore, output_of};

use crate::{Restore, as_unprivileged, chmod_recursive, unprivileged_unavailable};

/// `col ARGS…` on `s` with one more environment variable.
fn run_with_env(s: &TestStore, var: &str, value: impl AsRef<OsStr>, args: &[&str]) -> Output {
    output_of(s.cmd(args).env(var, value), None)
}

fn db(s: &TestStore) -> std::path::PathBuf {
    s.colstore_dir().join("colstore.db")
}

#[test]
fn an_environment_variable_does_not_switch_an_existing_stores_mode() {
    // The exact reproduction: this used to exit 0, after which `get` failed and `verify` exited 3.
    let s = TestStore::with_note("original");
    let out = run_with_env(&s, "COLLECTION_STORAGE_MODE", "filesystem", &["put", "notes", "a.md", "--text", "overwritten"]);
    let line = out.assert_error(1, "COLLECTION_STORAGE_MODE=\"filesystem\" disagrees with this store");
    assert!(line.contains("storage.mode is \"sqlite\""), "{out}");
    let hint = out.hint().expect("a hint");
    assert!(hint.contains("col migrate --to filesystem") && hint.contains("col init"), "{out}");
    assert_eq!(s.ok(["get", "notes", "a.md"]).stdout, "original");
    s.ok(["verify"]);

    // Under the same variable `reconcile --force` used to delete every document.
    let out = run_with_env(&s, "COLLECTION_STORAGE_MODE", "filesystem", &["reconcile", "--force"]);
    out.assert_error(1, "disagrees with this store");
    assert_eq!(s.ok(["get", "notes", "a.md"]).stdout, "original");

    // A value that agrees with the store is fine, whatever its case.
    run_with_env(&s, "COLSTORE_STORAGE_MODE", "SQLite", &["get", "notes", "a.md"]).assert_ok();

    // The database and the documents folder come from the store too.
    let elsewhere = s.path().join("other.db");
    run_with_env(&s, "COLSTORE_METADATA_DB_PATH", &elsewhere, &["ls", "notes"]).assert_error(1, "storage.metadata_db");
    assert!(!elsewhere.exists(), "no database was created elsewhere");
    let fs = TestStore::filesystem();
    run_with_env(&fs, "COLLECTION_FILESYSTEM_PATH", s.path().join("folder"), &["collection", "list"])
        .assert_error(1, "storage.filesystem_path");
}

#[test]
fn an_environment_variable_still_chooses_at_init() {
    let s = TestStore::uninitialised();
    output_of(s.cmd(["init"]).env("COLLECTION_STORAGE_MODE", "filesystem"), None).assert_ok();
    // Afterwards config.toml holds the mode: no variable is needed, and the same variable agrees.
    assert_eq!(s.json(["status"])["storage_mode"], "filesystem");
    run_with_env(&s, "COLLECTION_STORAGE_MODE", "filesystem", &["collection", "create", "n"]).assert_ok();
}

#[test]
fn an_empty_database_is_refused_not_taken_for_a_new_store() {
    // The exact reproduction: `verify` used to print "OK: 0 documents" and exit 0.
    let s = TestStore::with_note("original");
    std::fs::write(db(&s), b"").unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(s.colstore_dir().join(format!("colstore.db{suffix}")));
    }
    let out = s.run(["verify"]);
    out.assert_error(1, "is empty (0 bytes)");
    assert!(!out.stdout.contains("OK"), "{out}");
    assert!(out.hint().is_some_and(|h| h.contains("col restore latest")), "{out}");
    s.run(["ls", "notes"]).assert_error(1, "is empty");
    s.run(["put", "notes", "b.md", "--text", "x"]).assert_error(1, "is empty");
    assert_eq!(std::fs::metadata(db(&s)).unwrap().len(), 0, "the empty file was not turned into a database");
}

#[test]
fn a_missing_database_is_refused_and_not_recreated() {
    let s = TestStore::with_note("original");
    std::fs::remove_file(db(&s)).unwrap();
    let out = s.run(["verify"]);
    out.assert_error(1, "is missing");
    assert!(out.hint().is_some_and(|h| h.contains("col restore latest") && h.contains("col init")), "{out}");
    s.run(["collection", "create", "other"]).assert_error(1, "is missing");
    assert!(!db(&s).exists(), "only `col init` creates a database");
}

#[test]
fn another_stores_database_is_refused() {
    let s = TestStore::with_note("original");
    let other = TestStore::new();
    other.ok(["collection", "create", "theirs"]);
    std::fs::copy(db(&other), db(&s)).unwrap();
    let out = s.run(["verify"]);
    out.assert_error(1, "belongs to another store");
    assert!(out.hint().is_some_and(|h| h.contains("col restore latest")), "{out}");
    s.run(["ls", "theirs"]).assert_error(1, "belongs to another store");
}

#[test]
fn a_file_that_is_not_a_colstore_database_is_refused() {
    let s = TestStore::with_note("original");
    std::fs::write(db(&s), b"this is not a database, just some text that is long enough to look like one").unwrap();
    let out = s.run(["verify"]);
    out.assert_error(1, "cannot be used");
    assert!(out.hint().is_some_and(|h| h.contains("col restore latest")), "{out}");
}

#[test]
fn a_missing_or_unreadable_config_is_named() {
    let s = TestStore::with_note("original");
    let config = s.colstore_dir().join("config.toml");
    let saved = std::fs::read(&config).unwrap();
    std::fs::remove_file(&config).unwrap();
    let out = s.run(["ls", "notes"]);
    out.assert_error(1, "config.toml");
    assert!(out.stderr.contains("it is missing") && !out.stderr.contains("no colstore store"), "{out}");
    // The same from inside the project, found by the upward search.
    let out = output_of(colstore_e2e::col().current_dir(s.store_dir()).args(["ls", "notes"]), None);
    out.assert_error(1, "it is missing");

    std::fs::create_dir(&config).unwrap();
    s.run(["ls", "notes"]).assert_error(1, "it is not a file");
    std::fs::remove_dir(&config).unwrap();
    std::fs::write(&config, saved).unwrap();
    s.ok(["ls", "notes"]);
}

#[test]
fn a_database_that_is_a_directory_is_named_as_such() {
    let s = TestStore::with_note("original");
    std::fs::remove_file(db(&s)).unwrap();
    std::fs::create_dir(db(&s)).unwrap();
    let out = s.run(["ls", "notes"]);
    out.assert_error(1, "is a directory");
    assert!(!out.stderr.contains("read-only"), "{out}");
}

fn a_read_only_store_can_be_read_in(s: &TestStore, collection: &str) {
    s.ok(["sync"]);
    // A store its writer closed cleanly (`gc` checkpoints the write-ahead log): SQLite cannot read a log that still
    // holds transactions without a `-shm` file it may map, which a read-only folder cannot give (README, Safety).
    s.ok(["gc"]);
    // Everyone may read and enter the temporary directory (tempfile makes it 0700), and write the export's folder.
    let open = |p: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    open(s.path(), 0o755);
    let out_dir = s.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    open(&out_dir, 0o777);
    chmod_recursive(&s.store_dir(), false);
    let _restore = Restore(&s.store_dir());

    let probe = match as_unprivileged(s, &["ls", collection]) {
        Ok(out) => out,
        Err(reason) => {
            unprivileged_unavailable(&reason);
            return;
        }
    };
    probe.assert_ok();
    assert!(probe.stdout.contains("a.md"), "{probe}");
    let run = |args: &[&str]| as_unprivileged(s, args).expect("checked above");
    let verify = run(&["verify"]);
    verify.assert_ok();
    assert!(verify.stdout.contains("OK"), "{verify}");
    let search = run(&["search", collection, "original"]);
    search.assert_ok();
    assert!(search.stdout.contains("a.md"), "{search}");
    run(&["status"]).assert_ok();
    let export = out_dir.join("export.jsonl.zst");
    run(&["export", "-o", export.to_str().unwrap()]).assert_ok();
    assert!(export.is_file());
    assert_eq!(run(&["get", collection, "a.md"]).stdout, "original");

    // Writes fail with a clear error and change nothing.
    let out = run(&["put", collection, "b.md", "--text", "new"]);
    out.assert_code(1);
    out.assert_no_panic();
    assert!(out.stderr.contains("read-only") || out.stderr.contains("cannot write"), "{out}");
    drop(_restore);
    assert!(s.ok(["ls", collection]).stdout.contains("a.md"));
    s.ok(["verify"]);
}

#[test]
fn a_read_only_store_can_be_read() {
    let s = TestStore::with_note("original");
    a_read_only_store_can_be_read_in(&s, "notes");
}

#[test]
fn a_read_only_filesystem_mode_store_can_be_read() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "original"]);
    a_read_only_store_can_be_read_in(&s, "notes");
}

/// Every command checkpoints and closes the store's databases when it is done, so no write-ahead log is left holding
/// transactions: a reader that may not write (a read-only store, a backup tool copying the folder) could not open a
/// database whose log still holds them, and the log would depend on whether the process outlived its pool's threads.
#[test]
fn commands_leave_no_write_ahead_log_behind() {
    let s = TestStore::with_note("alpha beta gamma");
    let steps: [&[&str]; 4] = [&["sync"], &["search", "notes", "alpha"], &["put", "notes", "b.md", "--text", "more"], &["sync"]];
    for args in steps {
        s.ok(args);
        for database in ["colstore.db", "index/embedded.db"] {
            assert!(s.colstore_dir().join(database).is_file(), "{database} is where this test looks");
            let wal = s.colstore_dir().join(format!("{database}-wal"));
            let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            assert_eq!(len, 0, "`col {}` left {len} bytes in {}", args.join(" "), wal.display());
        }
    }
}
