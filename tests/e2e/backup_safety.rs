//! Backups that cannot betray their store (issue 11): `latest` is this store's latest in a shared repository
//! (defect 9), a store whose database is corrupt or missing is restored from the repository named in its config
//! without opening the database, which is set aside and never deleted (defect 3), and reading a repository never
//! creates it (rough edge).

use std::path::{Path, PathBuf};

use colstore_e2e::TestStore;
use serde_json::Value;

/// A store whose backups go to the shared repository `url` (through `COLSTORE_BACKUP_REPOSITORY`), holding one
/// collection `notes` with the documents `docs`.
fn store_sharing(url: &str, docs: &[(&str, &str)]) -> TestStore {
    let mut s = TestStore::new();
    s.set_env("COLSTORE_BACKUP_REPOSITORY", url);
    s.ok(["collection", "create", "notes"]);
    for (key, text) in docs {
        s.ok(["put", "notes", key, "--text", text]);
    }
    s
}

fn keys(s: &TestStore) -> Vec<String> {
    crate::keys(&s.json(["ls", "notes"]))
}

fn backup_id(s: &TestStore) -> String {
    s.json(["backup"])["backup"]["id"].as_str().expect("a backup id").to_owned()
}

/// The `damaged-*` folders in `.colstore`.
fn aside_dirs(s: &TestStore) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(s.colstore_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("damaged-")))
        .collect();
    out.sort();
    out
}

/// A store with documents in `notes` and one backup in its configured (default) repository.
fn backed_up(filesystem: bool) -> (TestStore, Value) {
    let s = if filesystem { TestStore::filesystem() } else { TestStore::new() };
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "alpha"]);
    s.ok(["put", "notes", "b.md", "--text", "beta", "--meta", r#"{"lang":"en"}"#]);
    s.ok(["backup"]);
    let docs = s.json(["ls", "notes"]);
    (s, docs)
}

/// Defect 9: two stores share one repository; each backs up (B last). `col restore latest --yes` in A restores A's
/// backup and keeps A's documents (it used to pick B's newer backup and delete A's documents); `backup list` shows
/// both stores; B's backup is restored into A only by its id, and the plan says whose it is; prune is per store.
#[test]
fn restore_latest_picks_this_stores_backup_from_a_shared_repository() {
    let repo = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().join("shared").display());
    let a = store_sharing(&url, &[("a1.md", "alpha one"), ("a2.md", "alpha two")]);
    let b = store_sharing(&url, &[("b1.md", "beta one")]);
    let a_id = backup_id(&a);
    let b_id = backup_id(&b);

    a.ok(["rm", "notes", "a2.md"]);
    let r = a.json(["restore", "latest", "--yes"]);
    assert_eq!(r["restore"]["plan"]["id"].as_str(), Some(a_id.as_str()), "latest is this store's latest: {r}");
    assert_eq!(r["backup_store"]["this_store"], true, "{r}");
    assert_eq!(keys(&a), ["a1.md", "a2.md"], "A keeps its own documents and gets back the deleted one");

    // Both stores' backups are listed, each with its store.
    let list = a.json(["backup", "list"]);
    let backups = list["backups"].as_array().unwrap();
    let of = |id: &str| backups.iter().find(|x| x["id"] == id).cloned().unwrap_or_else(|| panic!("{id} is listed: {list}"));
    assert_eq!(of(&a_id)["this_store"], true);
    assert_eq!(of(&b_id)["this_store"], false);
    assert_ne!(of(&a_id)["store_id"], of(&b_id)["store_id"]);
    let b_path = b.store_dir().display().to_string();
    assert_eq!(of(&b_id)["store_path"].as_str(), Some(b_path.as_str()));
    let human = a.ok(["backup", "list"]).stdout;
    assert!(human.contains("STORE") && human.contains("this store") && human.contains(&b_path), "{human}");
    let show = a.ok(["backup", "show", &b_id]).stdout;
    assert!(show.contains(&b_path), "show names the other store: {show}");
    assert_eq!(a.json(["backup", "show", &b_id])["store_path"].as_str(), Some(b_path.as_str()));

    // B's backup into A: only by its id, and the plan says it is another store's.
    let plan = a.ok(["restore", &b_id, "--dry-run"]);
    assert!(plan.stdout.contains("another store") && plan.stdout.contains(&b_path), "{plan}");
    assert_eq!(keys(&a), ["a1.md", "a2.md"], "a dry run changes nothing");
    a.ok(["restore", &b_id, "--yes", "--no-backup"]);
    assert_eq!(keys(&a), ["b1.md"], "an explicit id restores the other store's backup");

    // Outside both stores, `latest` of a repository holding two stores' backups is ambiguous: name one.
    let out = colstore_e2e::output_of(
        colstore_e2e::col().current_dir(repo.path()).args(["restore", "latest", "--repo", &url, "--to-store", "x", "--yes"]),
        None,
    );
    out.assert_error(1, "backups of 2 stores");
    assert!(out.hint().is_some_and(|h| h.contains("by its id")), "{out}");

    // Retention is per store: keeping A's last backup never removes B's.
    a.ok(["backup"]);
    let pruned = a.json(["backup", "prune", "--keep-last", "1"]);
    assert_eq!(pruned["removed"].as_array().map(Vec::len), Some(1), "{pruned}");
    let left: Vec<String> =
        b.json(["backup", "list"])["backups"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect();
    assert!(left.contains(&b_id), "B's backup survives A's prune: {left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(b.json(["restore", "latest", "--dry-run"])["plan"]["id"].as_str(), Some(b_id.as_str()));
}

/// Defect 3: a database overwritten with garbage. `backup list`, `show`, `verify` and `restore --to-store` work from
/// the configured repository without the database; `restore latest --yes` moves the damaged files aside (kept) and
/// brings the documents back into a fresh database.
#[test]
fn a_corrupt_database_is_set_aside_and_the_store_restored() {
    let (s, docs) = backed_up(false);
    let db = s.colstore_dir().join("colstore.db");
    let garbage = vec![0x5a_u8; 64 * 1024];
    std::fs::write(&db, &garbage).unwrap();
    let out = s.run(["ls", "notes"]);
    assert_ne!(out.code, 0, "the damaged database cannot be read\n{out}");

    assert_eq!(s.json(["backup", "list"])["backups"].as_array().map(Vec::len), Some(1));
    s.ok(["backup", "show", "latest"]);
    s.ok(["backup", "verify", "--read-data"]);
    let other = s.path().join("elsewhere");
    s.ok(["restore", "latest", "--to-store", other.to_str().unwrap(), "--yes"]);
    let there = colstore_e2e::output_of(colstore_e2e::col().args(["--json", "--store"]).arg(&other).args(["ls", "notes"]), None);
    assert_eq!(there.json(), docs, "restore --to-store works with the current database damaged");

    let dry = s.ok(["restore", "latest", "--dry-run"]);
    assert!(dry.stdout.contains("cannot be used") && dry.stdout.contains("damaged-"), "{dry}");
    assert!(aside_dirs(&s).is_empty(), "a dry run moves nothing");
    assert_eq!(std::fs::read(&db).unwrap(), garbage);

    let out = s.ok(["restore", "latest", "--yes"]);
    assert!(out.stdout.contains("Moved the damaged database files to"), "{out}");
    assert_eq!(s.json(["ls", "notes"]), docs, "the documents are back");
    s.ok(["verify"]);
    let aside = aside_dirs(&s);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(aside[0].join("colstore.db")).unwrap(), garbage, "the damaged file is kept, unchanged");
    assert!(out.stdout.contains(&aside[0].display().to_string()), "the user is told where: {out}");
}

/// Defect 3: a deleted database (its `-wal`/`-shm` files, if any, are set aside too): `backup list` works and
/// `restore latest --yes` brings the documents back.
#[test]
fn a_deleted_database_is_restored_from_the_configured_repository() {
    let (s, docs) = backed_up(false);
    let db = s.colstore_dir().join("colstore.db");
    std::fs::remove_file(&db).unwrap();
    std::fs::write(s.colstore_dir().join("colstore.db-wal"), b"stale write-ahead log").unwrap();
    assert_eq!(s.json(["backup", "list"])["backups"].as_array().map(Vec::len), Some(1));
    let r = s.json(["restore", "latest", "--yes"]);
    assert_eq!(r["damaged"]["database"].as_str(), Some(db.display().to_string().as_str()), "{r}");
    assert_eq!(s.json(["ls", "notes"]), docs);
    let aside = aside_dirs(&s);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(aside[0].join("colstore.db-wal")).unwrap(), b"stale write-ahead log", "a stale log is set aside");
}

/// Defect 3 in filesystem mode: the database is set aside, the documents' folder stays, and the restore makes the
/// store whole again.
#[test]
fn a_corrupt_database_in_filesystem_mode_is_restored() {
    let (s, docs) = backed_up(true);
    std::fs::write(s.colstore_dir().join("colstore.db"), b"not a database at all, just bytes").unwrap();
    s.ok(["restore", "latest", "--yes"]);
    assert_eq!(s.json(["ls", "notes"]), docs);
    assert!(s.ok(["get", "notes", "b.md"]).stdout.contains("beta"));
    assert!(s.docs("notes").join("a.md").is_file());
    assert_eq!(aside_dirs(&s).len(), 1);
}

/// Rough edge: reading a repository never creates it. `restore latest --repo file:///nonexistent` and list, show,
/// verify, prune and delete with a missing repository fail with "backup repository not found: PATH" and a hint;
/// only `col backup` creates a repository.
#[test]
fn reading_a_missing_repository_creates_nothing() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "alpha"]);

    if !Path::new("/nonexistent").exists() {
        let out = s.run(["restore", "latest", "--repo", "file:///nonexistent", "--yes"]);
        out.assert_error(1, "backup repository not found: /nonexistent");
        assert!(out.hint().is_some_and(|h| h.contains("col backup")), "{out}");
        assert!(!Path::new("/nonexistent").exists(), "restore created the folder");
    }
    let missing = s.path().join("missing");
    let url = format!("file://{}", missing.display());
    for args in [
        vec!["restore", "latest", "--repo", &url, "--yes"],
        vec!["backup", "list", "--repo", &url],
        vec!["backup", "show", "latest", "--repo", &url],
        vec!["backup", "verify", "--repo", &url],
        vec!["backup", "prune", "--keep-last", "1", "--repo", &url],
        vec!["backup", "delete", "20250101T000000Z-00000000", "--repo", &url],
    ] {
        let out = s.run(&args);
        out.assert_error(1, &format!("backup repository not found: {}", missing.display()));
        assert!(!missing.exists(), "{args:?} created the repository");
    }

    // The store's own repository before its first backup: no backups, nothing created.
    let own = s.colstore_dir().join("backups");
    assert_eq!(s.json(["backup", "list"])["backups"].as_array().map(Vec::len), Some(0));
    assert!(s.ok(["backup", "list"]).stdout.contains("No backups yet"));
    assert!(!own.exists(), "listing created the store's repository");

    // Writing creates it.
    s.ok(["backup", "--to", &url]);
    assert!(missing.is_dir());
    assert_eq!(s.json(["backup", "list", "--repo", &url])["backups"].as_array().map(Vec::len), Some(1));
}
