//! kill -9 during `col backup`, `col backup prune`, `col restore`, `col clear` and `col import` (sqlite mode), of a
//! file and of a collection adopted from Qdrant.
//!
//! Besides the document oracle: every acknowledged backup survives and verifies; a prune removes only what it meant
//! to; the safety backup a killed restore, clear or import took holds the store as it was before (restored into a new
//! store and compared); and a completed restore leaves nothing for a dry run to plan.

use std::path::{Path, PathBuf};
use std::time::Duration;

use colstore_e2e::TestStore;
use serde_json::Value;

use super::harness::{Killer, Run};
use super::oracle::{Doc, Docs, Intended, check_after_kill, check_completed, check_run, listed};
use super::{MAX_ROUNDS, seeded};
use crate::Rng;

/// How many backups `col backup` keeps by default (its rotation, `[backup] keep_last`).
const KEEP_LAST: usize = 10;

/// Files in the collection's source folder.
const FILES: usize = 300;

/// Writes the source folder: `FILES` small files (every `every`-th rewritten) and one file above the 1 MiB part size.
fn write_sources(rng: &mut Rng, root: &Path, every: usize) {
    std::fs::create_dir_all(root.join("big")).expect("mkdir");
    for i in (0..FILES).step_by(every.max(1)) {
        std::fs::create_dir_all(root.join(format!("d{}", i % 9))).expect("mkdir");
        std::fs::write(root.join(format!("d{}/f{i:03}.txt", i % 9)), rng.bytes_between(100, 20_000)).expect("write");
    }
    std::fs::write(root.join("big/large.bin"), rng.bytes_between(2 << 20, 3 << 20)).expect("write");
}

/// A sqlite-mode store whose collection `c` holds the source folder; returns the store and the folder.
fn store_with_sources(rng: &mut Rng) -> (TestStore, PathBuf) {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    let root = s.path().join("src");
    write_sources(rng, &root, 1);
    s.ok(["add", "c", "src"]);
    (s, root)
}

/// Changes about a third of the documents through a completed `col add`, and returns what the store holds.
fn change_some(s: &TestStore, rng: &mut Rng, root: &Path) -> Docs {
    write_sources(rng, root, 3);
    s.ok(["add", "c", "src"]);
    listed(s, "c")
}

/// The ids `col backup list` shows.
fn backup_ids(s: &TestStore) -> Vec<String> {
    let list = s.json(["backup", "list"]);
    list["backups"].as_array().expect("backups").iter().map(|b| b["id"].as_str().expect("an id").to_owned()).collect()
}

/// The documents of collection `c` in the store at `dir`.
fn listed_in(dir: &Path) -> Docs {
    let probe = TestStore::uninitialised();
    let mut cmd = colstore_e2e::col();
    cmd.arg("--store").arg(dir).current_dir(probe.path());
    let out = colstore_e2e::output_of(cmd.args(["--json", "ls", "c"]), None);
    out.assert_ok();
    super::oracle::docs_of(&out.json())
}

/// A safety backup the killed command acknowledged (its manifest was durable) holds exactly `before`: restored into
/// a new store, it lists the same documents.
#[track_caller]
fn check_safety_backup(s: &TestStore, run: &Run, before: &Docs, what: &str) -> bool {
    let Some(id) = run.steps_of("backup").first().map(|id| (*id).to_owned()) else { return false };
    let other = s.path().join(format!("safety-check-{id}"));
    s.ok(["restore", &id, "--to-store", other.to_str().expect("utf-8"), "--yes", "-q"]);
    assert_eq!(&listed_in(&other), before, "{what}: safety backup {id} does not hold the store as it was before");
    std::fs::remove_dir_all(&other).expect("remove the check store");
    true
}

/// [`check_run`], and after a kill the next sync must leave an index that verifies (restore, clear and import change
/// what the index should hold).
#[track_caller]
fn check(s: &TestStore, run: &Run, acked: &Docs, intended: &Intended, what: &str) -> Docs {
    let now = check_run(s, "c", run, acked, intended, what);
    if run.finished.is_none() {
        super::sync_and_verify_index(s, what);
    }
    now
}

#[test]
fn kill_9_during_backup_and_prune() {
    let mut rng = seeded("backup and prune");
    let (s, root) = store_with_sources(&mut rng);
    // Acknowledged backups with the run that made them.
    let mut acked_backups: Vec<(usize, String)> = Vec::new();

    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(300));
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        let acked = change_some(&s, &mut rng, &root);
        let run = killer.run(&s, &["--json", "backup"], killer.next_kills());
        let what = format!("backup round {round}");
        match &run.finished {
            Some(_) => {
                let out: Value = serde_json::from_str(&run.completed(&what).stdout).expect("backup --json");
                acked_backups.push((round, out["backup"]["id"].as_str().expect("an id").to_owned()));
            }
            None => acked_backups.extend(run.steps_of("backup").iter().map(|id| (round, (*id).to_owned()))),
        }
        // A backup changes no document, killed or not. Every acknowledged backup is there unless the rotation after
        // a backup (keep the newest [backup] keep_last, 10 by default) removed it, which takes KEEP_LAST newer
        // backups: each run makes at most one, so a backup acknowledged in one of the last KEEP_LAST runs must be
        // there.
        check_after_kill(&s, "c", &acked, &Intended::new(), 0, &what);
        let listed_ids = backup_ids(&s);
        for (made_in, id) in &acked_backups {
            if round - made_in < KEEP_LAST {
                assert!(listed_ids.contains(id), "{what}: backup {id}, acknowledged in run {made_in}, is gone");
            }
        }
        if let Some((_, last)) = acked_backups.last() {
            let v = s.run(["backup", "verify", last, "--read-data"]);
            assert_eq!(v.code, 0, "{what}: backup {last} no longer verifies\n{v}");
        }
    }
    killer.assert_enough("backup");

    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(100));
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        for _ in 0..2 {
            change_some(&s, &mut rng, &root);
            s.ok(["backup", "-q"]);
        }
        let before = backup_ids(&s);
        let run = killer.run(&s, &["backup", "prune", "--keep-last", "3"], killer.next_kills());
        let what = format!("prune round {round}");
        let after = backup_ids(&s);
        let newest: Vec<&String> = before.iter().rev().take(3).collect();
        for id in &after {
            assert!(before.contains(id), "{what}: backup {id} appeared");
        }
        for id in newest {
            assert!(after.contains(id), "{what}: prune removed {id}, one of the three newest");
        }
        for removed in run.steps_of("prune") {
            let id = removed.strip_prefix("removed ").expect("removed <id>");
            assert!(!after.iter().any(|a| a == id), "{what}: {id} was removed durably, yet it is listed");
        }
        if run.finished.is_some() {
            run.completed(&what);
            assert_eq!(after.len(), 3, "{what}: a completed prune keeps exactly 3");
        }
        // What is left verifies: a killed prune never deletes an object a kept backup needs.
        for id in &after {
            let v = s.run(["backup", "verify", id]);
            assert_eq!(v.code, 0, "{what}: backup {id} does not verify after the prune\n{v}");
        }
    }
    killer.assert_enough("prune");
    let last = backup_ids(&s).pop().expect("a backup");
    s.ok(["backup", "verify", &last, "--read-data"]);
    super::verify_all(&s);
}

/// Kills a command that takes a safety backup first (restore, clear, import) until 20 kills landed mid-write.
/// `prepare` readies each round and returns the documents as acknowledged and what the command means to do. Besides
/// the document oracle, the safety backups of up to five runs are restored and compared with the store before them.
fn kill_with_safety_backup(what: &str, args: &[&str], s: &TestStore, rng: &mut Rng, mut prepare: impl FnMut(&mut Rng) -> (Docs, Intended)) {
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(300));
    let mut safety_checked = 0;
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        let (acked, intended) = prepare(rng);
        let run = killer.run(s, args, killer.next_kills());
        let label = format!("{what} round {round}");
        check(s, &run, &acked, &intended, &label);
        if safety_checked < 5 && check_safety_backup(s, &run, &acked, &label) {
            safety_checked += 1;
        }
    }
    killer.assert_enough(what);
    assert!(safety_checked > 0, "no {what} acknowledged a safety backup to check");
}

#[test]
fn kill_9_during_restore() {
    let mut rng = seeded("restore");
    let (s, root) = store_with_sources(&mut rng);
    let target = listed(&s, "c");
    let id = s.json(["backup"])["backup"]["id"].as_str().expect("a backup id").to_owned();
    kill_with_safety_backup("restore", &["restore", &id, "--yes"], &s, &mut rng, |rng| {
        // The store moves away from the backup: changed documents, and some the backup lacks.
        let acked = change_some(&s, rng, &root);
        let intended: Intended = acked
            .keys()
            .filter(|k| !target.contains_key(*k))
            .map(|k| (k.clone(), None))
            .chain(target.iter().map(|(k, d)| (k.clone(), Some(d.clone()))))
            .collect();
        (acked, intended)
    });
    // A restore run to the end gives exactly the backup, and then a dry run plans no change.
    s.ok(["restore", &id, "--yes", "--no-backup"]);
    check_completed(&s, "c", &target, &Intended::new(), "the last restore");
    let plan = s.json(["restore", &id, "--dry-run"]);
    for c in plan["plan"]["collections"].as_array().expect("plan collections") {
        for field in ["add", "update", "delete"] {
            assert_eq!(c[field].as_u64(), Some(0), "a dry run after a restore plans no change: {plan}");
        }
    }
    super::verify_all(&s);
}

#[test]
fn kill_9_during_clear() {
    let mut rng = seeded("clear");
    let (s, root) = store_with_sources(&mut rng);
    kill_with_safety_backup("clear", &["clear", "c", "--yes"], &s, &mut rng, |rng| {
        let acked = change_some(&s, rng, &root);
        let intended: Intended = acked.keys().map(|k| (k.clone(), None)).collect();
        (acked, intended)
    });
    super::verify_all(&s);
}

#[test]
fn kill_9_during_import() {
    let mut rng = seeded("import");
    let (s, root) = store_with_sources(&mut rng);
    let target = listed(&s, "c");
    s.ok(["export", "-o", "export.jsonl.zst"]);
    kill_with_safety_backup("import", &["import", "export.jsonl.zst", "--yes"], &s, &mut rng, |rng| {
        // Every document differs from the file (so every write of the import is a change the oracle can see).
        write_sources(rng, &root, 1);
        s.ok(["add", "c", "src"]);
        let intended: Intended = target.iter().map(|(k, d)| (k.clone(), Some(d.clone()))).collect();
        (listed(&s, "c"), intended)
    });
    s.ok(["import", "export.jsonl.zst", "--yes", "--no-backup"]);
    check_completed(&s, "c", &target, &Intended::new(), "the last import");
    super::verify_all(&s);
}

/// `col import qdrant://…/articles` (adopting a remote collection) killed while it writes pages, as the source
/// changes between runs: every document is as before or as the source has it, and a safety backup taken first holds
/// the collection as it was.
#[test]
fn kill_9_during_import_from_qdrant() {
    const OBJECTS: usize = 1500;
    let mut rng = seeded("import from qdrant");
    let qdrant = colstore_testkit::qdrant_fake::QdrantFake::spawn(colstore_testkit::qdrant_fake::QdrantFakeOptions::default());
    crate::adopt::seed_qdrant(&qdrant, "articles", "Dot", OBJECTS);
    let s = TestStore::new();
    let config = s.colstore_dir().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("dimension = 384"), "the config layout changed; update this test");
    std::fs::write(&config, text.replace("dimension = 384", "dimension = 8")).expect("config");
    let source = format!("{}/articles", crate::adopt::qdrant_target(&qdrant));
    let args = ["import", source.as_str(), "--into", "c", "--text-field", "body", "--embedder", "hash:v1", "--yes"];
    s.ok(args);
    // The round of each object's current version in the source.
    let mut rounds = vec![0usize; OBJECTS + 1];
    let mut round = 0;
    kill_with_safety_backup("import from qdrant", &args, &s, &mut rng, |rng| {
        // The source moves on: about a third of the objects change, so every run has pages to write.
        round += 1;
        let changed: Vec<usize> = (1..=OBJECTS).filter(|_| rng.range(0, 3) == 0).collect();
        crate::adopt::write_qdrant_points(&qdrant, "articles", changed.iter().copied(), round);
        for i in changed {
            rounds[i] = round;
        }
        let intended: Intended = (1..=OBJECTS)
            .map(|i| {
                let (text, metadata) = crate::adopt::adopted(i, rounds[i]);
                (i.to_string(), Some(Doc::new(text.as_bytes(), metadata, &[])))
            })
            .collect();
        (listed(&s, "c"), intended)
    });
    s.ok(args);
    let want: Intended = (1..=OBJECTS)
        .map(|i| {
            let (text, metadata) = crate::adopt::adopted(i, rounds[i]);
            (i.to_string(), Some(Doc::new(text.as_bytes(), metadata, &[])))
        })
        .collect();
    check_completed(&s, "c", &Docs::new(), &want, "the last import");
    super::verify_all(&s);
}
