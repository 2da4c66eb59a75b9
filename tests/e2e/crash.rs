//! Crash safety (PRODUCT §8): `col add` killed with SIGKILL at random moments never leaves a partial document, the
//! store always opens and verifies, and a completed add is never lost.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use colstore_e2e::TestStore;

use crate::{Rng, sha256_hex};

/// Small files in the tree.
const FILES: usize = 3000;
/// Kills at least this many times.
const MIN_ROUNDS: usize = 20;
/// ...and keeps going (up to [`MAX_ROUNDS`]) until this many kills interrupted a running add.
const MIN_INTERRUPTED: usize = 10;
const MAX_ROUNDS: usize = 60;

/// The source tree and every version each file has had: (sha256, size) in order.
struct Tree {
    root: std::path::PathBuf,
    history: HashMap<String, Vec<(String, u64)>>,
    current: HashMap<String, (String, u64)>,
}

impl Tree {
    fn write(&mut self, key: &str, bytes: &[u8]) {
        let path = self.root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let v = (sha256_hex(bytes), bytes.len() as u64);
        self.history.entry(key.to_owned()).or_default().push(v.clone());
        self.current.insert(key.to_owned(), v);
    }
}

/// 1–8 KiB of content: mostly random, every tenth one of five shared texts (so contents are deduplicated).
fn small_content(rng: &mut Rng) -> Vec<u8> {
    if rng.range(0, 9) == 0 {
        let which = rng.range(0, 4);
        format!("shared content number {which}\n").repeat(100 + which as usize * 50).into_bytes()
    } else {
        rng.bytes_between(1024, 8192)
    }
}

fn build_tree(rng: &mut Rng, root: &Path) -> Tree {
    let mut t = Tree { root: root.to_owned(), history: HashMap::new(), current: HashMap::new() };
    for i in 0..FILES {
        let key = format!("d{:02}/e{}/file-{i:04}.dat", i % 30, i % 7);
        let c = small_content(rng);
        t.write(&key, &c);
    }
    // Above the 1 MiB part size, so the streaming path (blob parts) is part of the crash test.
    for i in 0..3 {
        let n = rng.range(2 * 1024 * 1024, 3 * 1024 * 1024) as usize;
        let c = rng.bytes(n);
        t.write(&format!("big/blob-{i}.bin"), &c);
    }
    t
}

/// Rewrites about half of the small files and one big file, and adds a few new files, so the next add has work.
fn mutate(rng: &mut Rng, t: &mut Tree, round: usize) {
    let keys: Vec<String> = t.current.keys().filter(|k| !k.starts_with("big/")).cloned().collect();
    for k in keys {
        if rng.range(0, 1) == 0 {
            let c = small_content(rng);
            t.write(&k, &c);
        }
    }
    let big = format!("big/blob-{}.bin", round % 3);
    let n = rng.range(2 * 1024 * 1024, 3 * 1024 * 1024) as usize;
    let c = rng.bytes(n);
    t.write(&big, &c);
    for j in 0..20 {
        let c = small_content(rng);
        t.write(&format!("new/round-{round:02}/f{j}.dat"), &c);
    }
}

/// `col verify` passes and every listed document is one complete version of its source file.
#[track_caller]
fn check_consistent(s: &TestStore, t: &Tree, round: usize) -> usize {
    let out = s.run(["verify"]);
    assert_eq!(out.code, 0, "round {round}: col verify failed after kill -9\n{out}");
    let ls = s.json(["ls", "c"]);
    let docs = ls["documents"].as_array().unwrap();
    for d in docs {
        let key = d["key"].as_str().unwrap();
        let got = (d["content_hash"].as_str().unwrap().to_owned(), d["size"].as_u64().unwrap());
        let versions = t.history.get(key).unwrap_or_else(|| panic!("round {round}: document {key} has no source file"));
        assert!(
            versions.contains(&got),
            "round {round}: document {key} (sha256 {}, {} bytes) is no version of its source file: a partial write",
            got.0,
            got.1
        );
    }
    docs.len()
}

#[test]
fn kill_9_during_add_never_leaves_a_partial_document() {
    let seed = std::env::var("E2E_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(Rng::seed_from_time);
    println!("crash test seed: {seed} (replay with E2E_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    let mut tree = build_tree(&mut rng, &s.path().join("src"));

    let (mut rounds, mut interrupted) = (0, 0);
    while rounds < MIN_ROUNDS || (interrupted < MIN_INTERRUPTED && rounds < MAX_ROUNDS) {
        if rounds > 0 {
            mutate(&mut rng, &mut tree, rounds);
        }
        let delay = Duration::from_millis(rng.range(0, 400));
        let mut child = s.cmd(["add", "c", "src"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn col add");
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("try_wait");
        let outcome = match finished {
            None => {
                child.kill().expect("SIGKILL col add");
                let status = child.wait().unwrap();
                interrupted += 1;
                format!("killed ({status})")
            }
            Some(status) => {
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(status.success(), "round {rounds}: col add failed before it was killed: {status}\n{stderr}");
                "finished before the kill".to_owned()
            }
        };
        let n = check_consistent(&s, &tree, rounds);
        if finished.is_some() {
            // An add that exited 0 was acknowledged: every file must be there, in its current version.
            assert_eq!(n, tree.current.len(), "round {rounds}: a completed add lost documents");
            let ls = s.json(["ls", "c"]);
            for d in ls["documents"].as_array().unwrap() {
                let want = &tree.current[d["key"].as_str().unwrap()];
                assert_eq!(d["content_hash"].as_str().unwrap(), want.0, "round {rounds}: {} is not the acknowledged version", d["key"]);
            }
        }
        println!("round {rounds:2}: kill after {:3} ms: {outcome}; {n} of {} documents present", delay.as_millis(), tree.current.len());
        rounds += 1;
    }
    println!("{interrupted} of {rounds} kills interrupted a running add ({:.1} s)", started.elapsed().as_secs_f64());
    assert!(interrupted >= MIN_INTERRUPTED, "only {interrupted} of {rounds} kills hit a running add; the test did not test crashes");

    // Finally, an add that runs to the end brings every file in, exactly.
    s.ok(["add", "c", "src"]);
    let ls = s.json(["ls", "c"]);
    assert_eq!(ls["total"].as_u64(), Some(tree.current.len() as u64));
    for d in ls["documents"].as_array().unwrap() {
        let want = &tree.current[d["key"].as_str().unwrap()];
        assert_eq!((d["content_hash"].as_str().unwrap(), d["size"].as_u64().unwrap()), (want.0.as_str(), want.1), "{}", d["key"]);
    }
    let v = s.json(["verify"]);
    assert_eq!((v["ok"].as_bool(), v["documents_ok"].as_u64()), (Some(true), Some(tree.current.len() as u64)));
    // Killed adds leave garbage at most; gc removes it and the store still verifies.
    s.ok(["gc"]);
    s.ok(["verify"]);
    println!("crash test done in {:.1} s", started.elapsed().as_secs_f64());
}
