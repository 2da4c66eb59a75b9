//! kill -9 during `col reconcile` (filesystem mode: the files are the user's, the catalog follows them) and during
//! `col migrate` between the two storage modes.

use std::collections::BTreeMap;
use std::time::Duration;

use colstore_e2e::TestStore;

use super::harness::Killer;
use super::oracle::{Doc, Intended, check_after_kill, check_completed, check_run, listed};
use super::{MAX_ROUNDS, seeded};
use crate::Rng;

/// Changes about 150 of 600 possible files in the collection's folder behind colstore's back (writes, rewrites and
/// deletions); `disk` follows what the folder holds.
fn change_files(s: &TestStore, rng: &mut Rng, disk: &mut BTreeMap<String, Vec<u8>>) {
    let root = s.docs("c");
    for _ in 0..150 {
        let i = rng.range(0, 599);
        let key = format!("d{}/f{i}.bin", i % 7);
        let path = root.join(&key);
        if rng.range(0, 4) == 0 && disk.contains_key(&key) {
            std::fs::remove_file(&path).expect("remove a file");
            disk.remove(&key);
        } else {
            let body = rng.bytes_between(200, 3000);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, &body).expect("write a file");
            disk.insert(key, body);
        }
    }
}

/// What a reconcile of the folder means to record: every file as it is, and no document for a file that is gone.
fn intended_by(disk: &BTreeMap<String, Vec<u8>>, recorded: &super::oracle::Docs) -> Intended {
    let mut out: Intended = disk.iter().map(|(k, b)| (k.clone(), Some(Doc::plain(b)))).collect();
    for k in recorded.keys().filter(|k| !disk.contains_key(*k)) {
        out.insert(k.clone(), None);
    }
    out
}

#[test]
fn kill_9_during_reconcile() {
    let mut rng = seeded("reconcile");
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "c"]);
    let mut disk = BTreeMap::new();
    change_files(&s, &mut rng, &mut disk);
    s.ok(["reconcile"]);
    let mut acked = listed(&s, "c");
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(100));
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        change_files(&s, &mut rng, &mut disk);
        let intended = intended_by(&disk, &acked);
        let run = killer.run(&s, &["reconcile"], killer.next_kills());
        let what = format!("reconcile round {round}");
        acked = check_run(&s, "c", &run, &acked, &intended, &what);
        if run.finished.is_none() {
            // In filesystem mode a sync reconciles first: afterwards the store records exactly the folder.
            super::sync_and_verify_index(&s, &what);
            acked = check_completed(&s, "c", &acked, &intended, &format!("{what}, after the next sync"));
        }
    }
    killer.assert_enough("reconcile");
    s.ok(["reconcile"]);
    let v = s.json(["verify"]);
    assert_eq!(v["unreconciled"].as_array().map(Vec::len), Some(0), "every file matches its record: {v}");
    super::verify_all(&s);
}

#[test]
fn kill_9_during_migrate() {
    let mut rng = seeded("migrate");
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "c"]);
    let mut disk = BTreeMap::new();
    for _ in 0..3 {
        change_files(&s, &mut rng, &mut disk);
    }
    s.ok(["reconcile"]);
    let acked = listed(&s, "c");
    let mode = |s: &TestStore| s.json(["status"])["storage_mode"].as_str().expect("storage_mode").to_owned();
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(300));
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        let from = mode(&s);
        let to = if from == "sqlite" { "filesystem" } else { "sqlite" };
        let run = killer.run(&s, &["migrate", "--to", to, "--no-backup"], killer.next_kills());
        let what = format!("migrate {from} -> {to} round {round}");
        let now = mode(&s);
        assert!(now == from || now == to, "{what}: the store is in mode {now}");
        if run.finished.is_some() || run.steps_of("migrate").contains(&"switched") {
            assert_eq!(now, to, "{what}: the switch was durable (or the migration completed), yet the store is in {now}");
        }
        // Migrating changes no document.
        check_after_kill(&s, "c", &acked, &Intended::new(), 0, &what);
        if now == "filesystem" {
            let v = s.json(["verify"]);
            assert_eq!(v["unreconciled"].as_array().map(Vec::len), Some(0), "{what}: every file matches its record: {v}");
        }
        if now == from {
            // An interrupted migration simply runs again.
            s.ok(["migrate", "--to", to, "--no-backup"]);
            check_completed(&s, "c", &acked, &Intended::new(), &what);
        }
    }
    killer.assert_enough("migrate");
    super::verify_all(&s);
}
