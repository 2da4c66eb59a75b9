//! Sync end to end (PRODUCT §5): `col sync`, `status`, `search`, `verify --index [--repair]`, `reindex`, `jobs`,
//! against the built-in hash embedder and against a stub OpenAI-compatible server that counts every embedding.
//! kill -9 during `col sync` is in `crash/sync.rs`.

use colstore_e2e::TestStore;
use colstore_testkit::stub_embedder::StubEmbedServer;
use serde_json::Value;

/// Points the store's `[embedder]` at the stub server (shared with `sync_cancel.rs`).
pub(crate) fn use_stub(s: &TestStore, stub: &StubEmbedServer) {
    let path = s.colstore_dir().join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("kind = \"hash\"                  # hash | openai", "kind = \"openai\"")
        .replace("dimension = 384", &format!("dimension = {}\nmodel = \"stub\"\nurl = \"{}\"", stub.dimension(), stub.url()));
    assert!(text.contains("kind = \"openai\""), "the config layout changed; update this test");
    std::fs::write(&path, text).unwrap();
}

fn doc_text(i: usize) -> String {
    // Several paragraphs so each document has a few chunks; a shared paragraph so chunks repeat across documents.
    let mut t = format!("Document {i} talks about topic {}.\n\n", i % 7);
    for p in 0..4 {
        t.push_str(&format!("Paragraph {p} of document {i}: {}\n\n", "lorem ipsum dolor sit amet ".repeat(40)));
    }
    t.push_str("Every document ends with the same closing paragraph about write-ahead logs and backups.\n");
    t
}

fn collection_status<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["collections"].as_array().unwrap().iter().find(|c| c["collection"] == name).expect("collection in status")
}

#[test]
fn sync_search_status_and_verify_with_the_hash_embedder() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.write("docs/wal.md", "Write-ahead logging keeps SQLite durable: changes go to the log first.");
    s.write("docs/fox.md", "The quick brown fox jumps over the lazy dog.");
    s.write("docs/backup.md", "Backups are verified after writing and deduplicated across snapshots.");
    s.ok(["add", "notes", "docs", "--meta", r#"{"lang":"en"}"#]);

    let st = s.json(["status"]);
    assert_eq!(st["storage_mode"], "sqlite");
    assert_eq!(st["index"]["ok"], true);
    assert_eq!(collection_status(&st, "notes")["pending"], 3);

    let r = s.json(["sync"]);
    assert_eq!(r["ok"], true);
    let notes = &r["collections"][0];
    assert_eq!(notes["synced"], 3);
    assert_eq!(notes["points_upserted"], 3);

    let st = s.json(["status", "notes"]);
    let c = collection_status(&st, "notes");
    assert_eq!((c["pending"].as_u64(), c["synced"].as_u64(), c["failed"].as_u64()), (Some(0), Some(3), Some(0)));

    let hits = s.json(["search", "notes", "brown fox lazy dog", "-k", "2"]);
    let results = hits["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "only fox.md shares words with the query; the others are not padded in: {hits}");
    assert_eq!(results[0]["key"], "fox.md", "the lexical embedder ranks the matching document first: {hits}");
    assert!(results[0]["snippet"].as_str().unwrap().contains("The quick «brown» «fox» jumps"), "the query's words are marked: {hits}");
    assert_eq!(results[0]["metadata"]["lang"], "en");
    let filtered = s.json(["search", "notes", "fox", "--where", "lang=de"]);
    assert!(filtered["results"].as_array().unwrap().is_empty(), "the metadata filter applies: {filtered}");

    s.ok(["verify", "--index"]);
    // A change is pending until the next sync; the old projection stays consistent meanwhile.
    s.ok(["put", "notes", "fox.md", "--text", "A fox, now edited."]);
    assert_eq!(collection_status(&s.json(["status"]), "notes")["pending"], 1);
    s.ok(["verify", "--index"]);
    let r = s.json(["sync", "notes"]);
    assert_eq!(r["collections"][0]["synced"], 1);
    // Deletes propagate.
    s.ok(["rm", "notes", "wal.md"]);
    let r = s.json(["sync"]);
    assert_eq!(r["collections"][0]["deleted"], 1);
    let hits = s.json(["search", "notes", "write-ahead logging SQLite"]);
    assert!(hits["results"].as_array().unwrap().iter().all(|h| h["key"] != "wal.md"), "deleted documents leave the index: {hits}");
    s.ok(["verify", "--index"]);
    // A second sync has nothing to do.
    let r = s.json(["sync"]);
    assert_eq!(r["collections"][0]["documents"], 0);
}

#[test]
fn verify_index_finds_and_repairs_drift_without_the_embedder() {
    let stub = StubEmbedServer::start(32);
    let s = TestStore::new();
    use_stub(&s, &stub);
    s.ok(["collection", "create", "c"]);
    for i in 0..5 {
        s.write(format!("d/{i}.md"), doc_text(i));
    }
    s.ok(["add", "c", "d"]);
    s.ok(["sync"]);
    let embedded = stub.texts_embedded();
    assert!(embedded > 0);

    // Damage the index behind colstore's back: delete some points.
    let db = s.colstore_dir().join("index").join("embedded.db");
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); t=[r[0] for r in c.execute(\"select name from sqlite_master where type='table' and sql like '%payload%'\")][0]; c.execute(f'delete from {t} where rowid in (select rowid from {t} limit 3)'); c.commit()")
        .arg(&db)
        .status();
    let status = match python {
        Ok(status) => status,
        Err(e) => {
            let why = format!("the drift part of this test needs python3 to edit the index file ({e})");
            return colstore_testkit::need::skip(colstore_testkit::need::Need::Python3, &why);
        }
    };
    assert!(status.success(), "python3 could not edit the index");
    let out = s.run(["verify", "--index"]);
    out.assert_code(3);
    assert!(out.stderr.contains("missing"), "{}", out.stderr);
    let before = stub.requests();
    s.ok(["verify", "--index", "--repair"]);
    s.ok(["verify", "--index"]);
    assert_eq!(stub.requests(), before, "repair uses the cache, never the embedder");
}

#[test]
fn every_chunk_is_embedded_once_across_resync_edit_and_reindex() {
    let stub = StubEmbedServer::start(32);
    let s = TestStore::new();
    use_stub(&s, &stub);
    s.ok(["collection", "create", "c"]);
    for i in 0..20 {
        s.write(format!("d/{i}.md"), doc_text(i));
    }
    s.ok(["add", "c", "d"]);
    s.ok(["sync"]);
    let distinct = stub.distinct_texts();
    assert_eq!(stub.texts_embedded() as usize, distinct, "each distinct chunk embedded exactly once");

    s.ok(["sync"]);
    s.ok(["reindex", "c", "--to", "embedded"]);
    assert_eq!(stub.texts_embedded() as usize, distinct, "re-sync and reindex call the embedder for nothing");
    s.ok(["verify", "--index"]);

    // Editing the end of one document re-embeds only its changed chunk(s).
    s.write("d/3.md", doc_text(3) + "\nA new closing line.\n");
    s.ok(["add", "c", "d"]);
    s.ok(["sync"]);
    let new_texts = stub.texts_embedded() as usize - distinct;
    assert!((1..=2).contains(&new_texts), "only the changed chunks are embedded, got {new_texts}");
    s.ok(["verify", "--index"]);
}

#[test]
fn a_failing_embedder_leaves_documents_failed_and_visible() {
    let stub = StubEmbedServer::start(16);
    let s = TestStore::new();
    use_stub(&s, &stub);
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "a.md", "--text", "some text to embed"]);
    // 401 is final (not retried), so one injected answer fails the whole sync.
    stub.fail_next(1, 401, None);
    let out = s.run(["sync"]);
    out.assert_code(1);
    assert!(out.stderr.contains("embedder"), "{}", out.stderr);
    let st = s.json(["status"]);
    let c = collection_status(&st, "c");
    assert_eq!((c["synced"].as_u64(), c["failed"].as_u64()), (Some(0), Some(1)), "{st}");
    assert!(c["errors"][0]["error"].as_str().unwrap().contains("401"), "the error is visible: {st}");
    let human = s.ok(["status"]);
    assert!(human.stdout.contains("failed: c/a.md"), "{}", human.stdout);
    // The failed sync left a queued job for a retry; now that the server answers, a sync fixes everything.
    s.ok(["sync"]);
    let c2 = s.json(["status"]);
    assert_eq!(collection_status(&c2, "c")["synced"], 1);
    s.ok(["verify", "--index"]);
    let jobs = s.json(["jobs", "list"]);
    assert!(jobs["jobs"].as_array().unwrap().iter().all(|j| j["state"] != "running"), "no job is left running: {jobs}");
}

#[test]
fn deleting_a_collection_drops_its_points() {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "old.md", "--text", "zebra giraffe savanna"]);
    s.ok(["sync"]);
    s.ok(["collection", "delete", "c", "--yes", "--no-backup"]);
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "new.md", "--text", "something else entirely"]);
    s.ok(["sync"]);
    let hits = s.json(["search", "c", "zebra giraffe"]);
    assert!(hits["results"].as_array().unwrap().iter().all(|h| h["key"] != "old.md"), "points of a deleted collection are gone: {hits}");
    s.ok(["verify", "--index"]);
}

/// The embedding cache is looked up per batch, after the previous batch's embeddings reached it: 1 100 copies of one
/// text span two sync batches (1 024 documents each), and the text is embedded once in all.
#[test]
fn a_chunk_copied_across_batches_is_embedded_once() {
    let stub = StubEmbedServer::start(32);
    let s = TestStore::new();
    use_stub(&s, &stub);
    s.ok(["collection", "create", "c"]);
    for i in 0..1100 {
        s.write(format!("d/{i:04}.md"), "the same words in every copied note");
    }
    s.ok(["add", "c", "d"]);
    let r: serde_json::Value = serde_json::from_str(&s.ok(["--json", "sync"]).stdout).expect("sync --json");
    assert_eq!(r["collections"][0]["synced"], 1100, "{r}");
    assert_eq!((stub.distinct_texts(), stub.texts_embedded()), (1, 1), "one text, embedded once for both batches");
}
