//! kill -9 during `col sync` against the stub embedding server, into the embedded index and into the Qdrant fake:
//! nothing synced durably is lost, documents never change, jobs of killed processes are freed, and each text is paid
//! for at most once more than the requests a kill cut off. kill -9 during `col reindex --to` between the embedded
//! index and the Qdrant fake: the collection is always in one index or the other, whole, and nothing is embedded.

use std::time::Duration;

use colstore_e2e::TestStore;
use colstore_testkit::qdrant_fake::{QdrantFake, QdrantFakeOptions};
use colstore_testkit::stub_embedder::StubEmbedServer;
use rstest::rstest;
use serde_json::Value;

use super::harness::Killer;
use super::oracle::{Intended, check_after_kill, listed};
use super::{MAX_ROUNDS, seeded};
use crate::Rng;

const DOCUMENTS: usize = 400;

fn doc_text(i: usize, round: Option<usize>) -> String {
    // Several paragraphs so each document has a few chunks; a shared paragraph so chunks repeat across documents.
    let mut t = round.map(|r| format!("Round {r} rewrote this opening.\n\n")).unwrap_or_default();
    t.push_str(&format!("Document {i} talks about topic {}.\n\n", i % 7));
    for p in 0..4 {
        t.push_str(&format!("Paragraph {p} of document {i}: {}\n\n", "lorem ipsum dolor sit amet ".repeat(40)));
    }
    t
}

fn synced(s: &TestStore) -> u64 {
    let st = s.json(["status"]);
    let c = st["collections"].as_array().expect("collections").iter().find(|c| c["collection"] == "c").expect("collection c");
    c["synced"].as_u64().expect("synced")
}

/// `qdrant://127.0.0.1:PORT` of a fake.
fn qdrant_target(fake: &QdrantFake) -> String {
    format!("qdrant://{}", fake.url().trim_start_matches("http://"))
}

#[rstest]
#[case::embedded("embedded")]
#[case::qdrant("qdrant")]
fn kill_9_during_sync(#[case] backend: &str) {
    let mut rng = seeded(&format!("sync into {backend}"));
    let stub = StubEmbedServer::start(32);
    // Slow answers make the kills land during embedding as well as between batches.
    stub.delay(Duration::from_millis(40));
    let qdrant = (backend == "qdrant").then(|| QdrantFake::spawn(QdrantFakeOptions::default()));
    let s = match &qdrant {
        None => TestStore::new(),
        Some(fake) => {
            let s = TestStore::uninitialised();
            s.ok(["init", "--vectors", &qdrant_target(fake)]);
            s
        }
    };
    crate::sync::use_stub(&s, &stub);
    // Each run sends its own API key, so the stub can tell which requests a killed process sent last.
    let config = s.colstore_dir().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace("model = \"stub\"", "model = \"stub\"\napi_key_env = \"CRASH_RUN_KEY\"")).expect("config");
    s.ok(["collection", "create", "c"]);
    for i in 0..DOCUMENTS {
        s.write(format!("d/{i:03}.md"), doc_text(i, None));
    }
    s.ok(["add", "c", "d"]);
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(500));
    let mut cut_off: Vec<Vec<String>> = Vec::new();
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        // Edit some documents before each round, so every round has embedding work left however fast the machine.
        for j in 0..30 {
            let i = (round * 30 + j) % DOCUMENTS;
            s.write(format!("d/{i:03}.md"), doc_text(i, Some(round)));
        }
        s.ok(["add", "c", "d"]);
        let docs = listed(&s, "c");
        let before = synced(&s);
        let key = format!("run-{round}");
        let run = killer.run_with_env(&s, &["sync"], killer.next_kills(), &[("CRASH_RUN_KEY", key.as_str())]);
        let what = format!("sync round {round}");
        if run.finished.is_some() {
            run.completed(&what);
        } else {
            cut_off.push(stub.last_texts_of(&key));
        }
        // A sync changes no document; what it marked synced durably stays synced.
        check_after_kill(&s, "c", &docs, &Intended::new(), 0, &what);
        let after = synced(&s);
        assert!(
            after >= before + run.durable,
            "{what}: {} documents were synced durably, yet synced went {before} -> {after}",
            run.durable
        );
        if run.finished.is_none() {
            super::sync_and_verify_index(&s, &what);
        }
    }
    killer.assert_enough(&format!("sync into {backend}"));
    // Jobs leased by the killed processes are freed when the store is next opened, not left running.
    let running = s.json(["jobs", "list", "--state", "running"]);
    assert!(running["jobs"].as_array().expect("jobs").is_empty(), "jobs of dead processes are freed at open: {running}");

    super::verify_all(&s);
    let st = s.json(["status"]);
    let c = &st["collections"][0];
    assert_eq!((c["synced"].as_u64(), c["pending"].as_u64(), c["failed"].as_u64()), (Some(DOCUMENTS as u64), Some(0), Some(0)), "{st}");
    // Every chunk of every document is cached: a reindex needs no embedding at all.
    let before = stub.texts_embedded();
    s.ok(["reindex", "c"]);
    assert_eq!(stub.texts_embedded(), before, "every chunk of every document was already cached");
    s.ok(["verify", "--index"]);

    // Paid once: a text is embedded again only if a kill cut off a request that held it (sync caches every answer
    // before it sends the next request, so a killed process can lose only its last one).
    let texts: Vec<String> = cut_off.iter().flatten().cloned().collect();
    let mut again = 0;
    for (text, times) in stub.embedded_counts() {
        let allowed = 1 + texts.iter().filter(|t| **t == text).count() as u64;
        assert!(times <= allowed, "a chunk was embedded {times} times with {} cut-off request(s) holding it", allowed - 1);
        again += times - 1;
    }
    println!("{again} chunk embeddings repeated, all within the {} requests that kills cut off", cut_off.len());
}

/// The index collection `c` projects into: `settings.index` of `collection show`, or the store's default.
fn index_of(s: &TestStore) -> String {
    let c = s.json(["collection", "show", "c"]);
    c["settings"]["index"].as_str().unwrap_or("embedded").to_owned()
}

#[test]
fn kill_9_during_reindex_to_another_index() {
    let mut rng = seeded("reindex --to");
    let qdrant = QdrantFake::spawn(QdrantFakeOptions::default());
    // Slow answers from the fake make the kills land while points are written as well as around the switch.
    let remote = qdrant_target(&qdrant);
    let stub = StubEmbedServer::start(32);
    let s = TestStore::new();
    crate::sync::use_stub(&s, &stub);
    s.ok(["collection", "create", "c"]);
    for i in 0..DOCUMENTS {
        s.write(format!("d/{i:03}.md"), doc_text(i, None));
    }
    s.ok(["add", "c", "d"]);
    s.ok(["sync"]);
    let docs = listed(&s, "c");
    let embedded = stub.texts_embedded();
    let mut killer = Killer::new(Rng::new(rng.next_u64()), Duration::from_millis(300));
    while !killer.done(MAX_ROUNDS) {
        let round = killer.runs;
        let here = index_of(&s);
        let to = if here == "embedded" { remote.as_str() } else { "embedded" };
        qdrant.push_faults((0..3).map(|_| colstore_testkit::qdrant_fake::Fault::Delay(Duration::from_millis(20))));
        let run = killer.run(&s, &["reindex", "c", "--to", to], killer.next_kills());
        let what = format!("reindex --to {to}, round {round}");
        let switched = !run.steps_of("reindex").is_empty();
        if run.finished.is_some() {
            run.completed(&what);
        }
        let now = index_of(&s);
        assert!(now == here || now == to, "{what}: the collection is in {now}, neither {here} nor {to}");
        if switched || run.finished.is_some() {
            assert_eq!(now, to, "{what}: the switch was durable, yet the collection is in {now}");
        }
        // Whichever index it is in holds its whole projection, with no sync in between: the switch comes only after
        // the new projection verified, and the old one is dropped only after the switch.
        let out = s.run(["verify", "--index"]);
        assert_eq!(out.code, 0, "{what}: the collection's index does not verify after the kill\n{out}");
        check_after_kill(&s, "c", &docs, &Intended::new(), 0, &what);
        let status: Value = s.json(["status"]);
        assert_eq!(status["collections"][0]["synced"], DOCUMENTS as u64, "{what}: every document stays synced: {status}");
    }
    killer.assert_enough("reindex --to");
    assert_eq!(stub.texts_embedded(), embedded, "moving a collection never calls the embedder, killed or not");
    super::verify_all(&s);
}
