//! Crash safety (PRODUCT §8): every mutating command killed with SIGKILL while it writes, at least
//! [`harness::MIN_MID_WRITE_KILLS`] times each, checked against an oracle of what was acknowledged
//! ([`oracle`]). See docs/TESTING.md.

mod backups;
mod documents;
mod files;
mod harness;
mod oracle;
mod sync;

use colstore_e2e::TestStore;

use crate::Rng;

/// A command's test stops after this many kills even if too few landed mid-write (and then fails).
const MAX_ROUNDS: usize = 80;

/// A generator for `what`, seeded from `E2E_CRASH_SEED` or the clock; prints the seed so a failure can be replayed.
fn seeded(what: &str) -> Rng {
    let seed = std::env::var("E2E_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(Rng::seed_from_time);
    println!("{what}: crash test seed {seed} (replay with E2E_CRASH_SEED={seed})");
    Rng::new(seed)
}

/// A new store in `mode` (`sqlite` or `filesystem`).
fn store(mode: &str) -> TestStore {
    match mode {
        "sqlite" => TestStore::new(),
        "filesystem" => TestStore::filesystem(),
        other => panic!("no storage mode {other}"),
    }
}

/// After a kill of a command that changes what the index should hold: the next sync leaves an index that verifies.
#[track_caller]
fn sync_and_verify_index(s: &TestStore, what: &str) {
    let out = s.run(["sync"]);
    assert_eq!(out.code, 0, "{what}: the sync after the kill failed\n{out}");
    let out = s.run(["verify", "--index"]);
    assert_eq!(out.code, 0, "{what}: the index does not verify after the next sync\n{out}");
}

/// The end of every crash test: the store verifies, and after a sync its index verifies too.
#[track_caller]
fn verify_all(s: &TestStore) {
    s.ok(["verify"]);
    s.ok(["sync"]);
    s.ok(["verify", "--index"]);
}
