//! The oracle: a model of what was acknowledged, and what the store may hold after a kill.
//!
//! Before each kill the test knows every document as the last completed command left it (`acked`) and what the killed
//! command meant to do (`intended`: a new version, or `None` for a deletion). After the kill every document must be
//! exactly as acknowledged or exactly as intended (content, metadata and tags together: nothing half there), no other
//! document may exist, at least as many intended changes as the command's `durable` lines counted must be there, and
//! `col verify` must pass. What the store then holds becomes the acknowledged state of the next round.

use std::collections::{BTreeMap, BTreeSet};

use colstore_e2e::TestStore;
use serde_json::{Value, json};

use super::harness::Run;
use crate::sha256_hex;

/// One document as a user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub hash: String,
    pub size: u64,
    pub metadata: Value,
    pub tags: BTreeSet<String>,
}

impl Doc {
    /// A document of `bytes` with `metadata` (a JSON object) and `tags`.
    pub fn new(bytes: &[u8], metadata: Value, tags: &[&str]) -> Self {
        Self { hash: sha256_hex(bytes), size: bytes.len() as u64, metadata, tags: tags.iter().map(|t| (*t).to_owned()).collect() }
    }

    /// A document of `bytes` without metadata or tags.
    pub fn plain(bytes: &[u8]) -> Self {
        Self::new(bytes, json!({}), &[])
    }
}

/// A collection's documents by key.
pub type Docs = BTreeMap<String, Doc>;

/// What a command means to do: per key, the new version or `None` for a deletion.
pub type Intended = BTreeMap<String, Option<Doc>>;

/// The documents of `collection` as `col --json ls` lists them.
#[track_caller]
pub fn listed(s: &TestStore, collection: &str) -> Docs {
    docs_of(&s.json(["ls", collection]))
}

/// The documents of a `col --json ls` answer.
#[track_caller]
pub fn docs_of(ls: &Value) -> Docs {
    let docs = ls["documents"].as_array().expect("documents");
    assert_eq!(ls["total"].as_u64(), Some(docs.len() as u64), "ls lists every document");
    docs.iter()
        .map(|d| {
            let doc = Doc {
                hash: d["content_hash"].as_str().expect("content_hash").to_owned(),
                size: d["size"].as_u64().expect("size"),
                metadata: d["metadata"].clone(),
                tags: d["tags"].as_array().expect("tags").iter().map(|t| t.as_str().expect("a tag").to_owned()).collect(),
            };
            (d["key"].as_str().expect("key").to_owned(), doc)
        })
        .collect()
}

/// `acked` with `intended` applied: the state a completed command leaves.
pub fn applied(acked: &Docs, intended: &Intended) -> Docs {
    let mut out = acked.clone();
    for (k, v) in intended {
        match v {
            Some(d) => out.insert(k.clone(), d.clone()),
            None => out.remove(k),
        };
    }
    out
}

/// The check after a kill (see the module); returns what the store holds.
#[track_caller]
pub fn check_after_kill(s: &TestStore, collection: &str, acked: &Docs, intended: &Intended, durable: u64, what: &str) -> Docs {
    let out = s.run(["verify"]);
    assert_eq!(out.code, 0, "{what}: col verify failed after kill -9\n{out}");
    let now = listed(s, collection);
    let keys: BTreeSet<&String> = acked.keys().chain(intended.keys()).chain(now.keys()).collect();
    let mut done = 0u64;
    for k in keys {
        let (was, got) = (acked.get(k), now.get(k));
        match intended.get(k) {
            None => assert_eq!(got, was, "{what}: {k} was not to change, yet it did (acknowledged {was:?})"),
            Some(meant) => {
                assert!(
                    got == was || got == meant.as_ref(),
                    "{what}: {k} is neither as acknowledged ({was:?}) nor as intended ({meant:?}): {got:?}"
                );
                done += u64::from(got != was && got == meant.as_ref());
            }
        }
    }
    assert!(done >= durable, "{what}: the command made {durable} change(s) durable before the kill, but only {done} survived");
    now
}

/// The check after a command that exited 0: exactly the intended state; returns it.
#[track_caller]
pub fn check_completed(s: &TestStore, collection: &str, acked: &Docs, intended: &Intended, what: &str) -> Docs {
    let want = applied(acked, intended);
    let now = listed(s, collection);
    if now != want {
        let wrong: Vec<&String> = want.keys().chain(now.keys()).filter(|k| want.get(*k) != now.get(*k)).collect();
        panic!("{what}: a completed command left {} document(s) not as acknowledged: {wrong:?}", wrong.len());
    }
    now
}

/// The check after a run of a command that writes documents: [`check_completed`] when it exited by itself (it must
/// have exited 0), [`check_after_kill`] when it was killed mid-way. Returns what the store holds.
#[track_caller]
pub fn check_run(s: &TestStore, collection: &str, run: &Run, acked: &Docs, intended: &Intended, what: &str) -> Docs {
    match &run.finished {
        Some(_) => {
            run.completed(what);
            check_completed(s, collection, acked, intended, what)
        }
        None => check_after_kill(s, collection, acked, intended, run.durable, what),
    }
}
