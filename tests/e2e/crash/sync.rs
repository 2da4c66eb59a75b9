//! kill -9 during `col sync` against the stub embedding server: nothing synced durably is lost, documents never
//! change, jobs of killed processes are freed, and each text is paid for at most once more than the requests a kill
//! cut off.

use std::time::Duration;

use colstore_e2e::TestStore;
use colstore_testkit::stub_embedder::StubEmbedServer;

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

#[test]
fn kill_9_during_sync() {
    let mut rng = seeded("sync");
    let stub = StubEmbedServer::start(32);
    // Slow answers make the kills land during embedding as well as between batches.
    stub.delay(Duration::from_millis(40));
    let s = TestStore::new();
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
    killer.assert_enough("sync");
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
