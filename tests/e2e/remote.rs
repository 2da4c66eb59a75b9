//! Qdrant and Weaviate end to end (PRODUCT §5, issue 15) through the real `col` binary, against the faithful fakes of
//! colstore-testkit (loopback HTTP servers in this process, with the engines' quirks and injected faults): a store
//! created with `col init --vectors`, sync, status, search with a filter, verify and repair, deletes, credentials,
//! outages that leave documents unsynced without paying twice, and `col reindex --to` between all three backends with
//! no embedder call.

use colstore_e2e::TestStore;
use colstore_testkit::qdrant_fake::{Fault as QdrantFault, QdrantFake, QdrantFakeOptions};
use colstore_testkit::stub_embedder::StubEmbedServer;
use colstore_testkit::weaviate_fake::{Fault as WeaviateFault, WeaviateFake, WeaviateFakeOptions};
use rstest::rstest;
use serde_json::Value;

/// A running fake engine.
enum Engine {
    Qdrant(QdrantFake),
    Weaviate(WeaviateFake),
}

impl Engine {
    fn start(kind: &str, api_key: Option<&str>) -> Self {
        let api_key = api_key.map(str::to_owned);
        match kind {
            "qdrant" => Self::Qdrant(QdrantFake::spawn(QdrantFakeOptions { api_key, ..QdrantFakeOptions::default() })),
            "weaviate" => Self::Weaviate(WeaviateFake::spawn(WeaviateFakeOptions { api_key, ..WeaviateFakeOptions::default() })),
            other => panic!("no fake for {other}"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Qdrant(_) => "qdrant",
            Self::Weaviate(_) => "weaviate",
        }
    }

    /// `qdrant://127.0.0.1:PORT`, as `--vectors` and `--to` take it.
    fn target(&self) -> String {
        let url = match self {
            Self::Qdrant(f) => f.url(),
            Self::Weaviate(f) => f.url(),
        };
        format!("{}://{}", self.kind(), url.trim_start_matches("http://"))
    }

    fn key_var(&self) -> &'static str {
        match self {
            Self::Qdrant(_) => "QDRANT_API_KEY",
            Self::Weaviate(_) => "WEAVIATE_API_KEY",
        }
    }

    /// Points (objects) in every collection (class) of the engine.
    fn points(&self) -> usize {
        match self {
            Self::Qdrant(f) => f.collections().iter().map(|c| f.point_count(c).unwrap_or(0)).sum(),
            Self::Weaviate(f) => f.object_counts().values().sum(),
        }
    }

    /// A storm for the next requests: 429s with `Retry-After: 1`, slow answers, a dropped connection (and for Qdrant a
    /// response cut after the write took effect), each followed by requests that succeed.
    fn storm(&self) {
        use std::time::Duration;
        match self {
            Self::Qdrant(f) => f.push_faults([
                QdrantFault::Status { status: 429, retry_after: Some("1".into()) },
                QdrantFault::Status { status: 429, retry_after: Some("1".into()) },
                QdrantFault::Delay(Duration::from_millis(300)),
                QdrantFault::Drop,
                QdrantFault::Status { status: 503, retry_after: None },
                QdrantFault::DropMidResponse,
                QdrantFault::Delay(Duration::from_millis(300)),
                QdrantFault::Status { status: 429, retry_after: Some("1".into()) },
            ]),
            Self::Weaviate(f) => {
                for fault in [
                    WeaviateFault::Status { status: 429, retry_after: Some(1) },
                    WeaviateFault::Status { status: 429, retry_after: Some(1) },
                    WeaviateFault::Slow(Duration::from_millis(300)),
                    WeaviateFault::Drop,
                    WeaviateFault::Status { status: 503, retry_after: None },
                    WeaviateFault::Slow(Duration::from_millis(300)),
                    WeaviateFault::Status { status: 429, retry_after: Some(1) },
                ] {
                    f.push_fault(fault);
                }
            }
        }
    }

    /// Faults not used yet.
    fn faults_left(&self) -> bool {
        match self {
            Self::Qdrant(f) => f.pending_faults() > 0,
            Self::Weaviate(f) => f.pending_faults() > 0,
        }
    }

    /// Drops the faults not used yet.
    fn heal(&self) {
        match self {
            Self::Qdrant(f) => f.clear_faults(),
            Self::Weaviate(f) => f.clear_faults(),
        }
    }

    /// Answers the next `n` requests with 503.
    fn fail_next(&self, n: usize) {
        match self {
            Self::Qdrant(f) => f.push_faults((0..n).map(|_| QdrantFault::Status { status: 503, retry_after: Some("0".into()) })),
            Self::Weaviate(f) => f.fail_next(n, 503, Some(0)),
        }
    }
}

/// A new store whose vectors go to `engine`, with its API key in the environment when `key` is set.
fn store_on(engine: &Engine, key: Option<&str>) -> TestStore {
    let mut s = TestStore::uninitialised();
    if let Some(key) = key {
        s.set_env(engine.key_var(), key);
    }
    let init = s.json(["init", "--vectors", &engine.target()]);
    assert_eq!(init["vectors"], engine.target().as_str(), "{init}");
    s
}

fn add_notes(s: &TestStore) {
    s.ok(["collection", "create", "notes"]);
    s.write("docs/wal.md", "Write-ahead logging keeps SQLite durable: changes go to the log first.");
    s.write("docs/fox.md", "The quick brown fox jumps over the lazy dog.");
    s.write("docs/backup.md", "Backups are verified after writing and deduplicated across snapshots.");
    s.ok(["add", "notes", "docs", "--meta", r#"{"lang":"en"}"#]);
    s.ok(["put", "notes", "de.md", "--text", "Der schnelle braune Fuchs springt.", "--meta", r#"{"lang":"de"}"#]);
}

fn collection_status<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["collections"].as_array().unwrap().iter().find(|c| c["collection"] == name).expect("collection in status")
}

fn hit_keys(hits: &Value) -> Vec<String> {
    hits["results"].as_array().unwrap().iter().map(|h| h["key"].as_str().unwrap().to_owned()).collect()
}

#[rstest]
#[case::qdrant("qdrant")]
#[case::weaviate("weaviate")]
fn a_store_on_a_remote_engine_syncs_searches_verifies_and_repairs(#[case] kind: &str) {
    let engine = Engine::start(kind, Some("secret-key"));
    let s = store_on(&engine, Some("secret-key"));
    add_notes(&s);

    let r = s.json(["sync"]);
    assert_eq!((r["ok"].as_bool(), r["collections"][0]["synced"].as_u64()), (Some(true), Some(4)), "{r}");
    assert_eq!(engine.points(), 4, "one point per one-chunk document, in the engine");

    let st = s.json(["status"]);
    assert_eq!((st["index"]["backend"].as_str(), st["index"]["ok"].as_bool()), (Some(kind), Some(true)), "{st}");
    assert!(st["index"]["version"].is_string(), "the server's version is shown: {st}");
    assert_eq!(st["vectors"], engine.target().as_str());
    let c = collection_status(&st, "notes");
    assert_eq!((c["synced"].as_u64(), c["pending"].as_u64(), c["index"].as_str()), (Some(4), Some(0), Some(engine.target().as_str())));

    let hits = s.json(["search", "notes", "quick brown fox lazy dog", "-k", "2"]);
    assert_eq!(hit_keys(&hits).first().map(String::as_str), Some("fox.md"), "{hits}");
    let german = s.json(["search", "notes", "brown fox", "--where", "lang=de"]);
    assert!(hit_keys(&german).iter().all(|k| k == "de.md"), "the filter runs in the engine: {german}");

    assert_eq!(s.json(["verify", "--index"])["ok"], true);
    s.ok(["rm", "notes", "wal.md"]);
    s.ok(["sync"]);
    assert_eq!(engine.points(), 3, "a deleted document's points leave the engine");
    assert_eq!(s.json(["verify", "--index"])["ok"], true);
}

#[rstest]
#[case::qdrant("qdrant")]
#[case::weaviate("weaviate")]
fn an_outage_leaves_documents_unsynced_and_the_next_sync_embeds_nothing_again(#[case] kind: &str) {
    let engine = Engine::start(kind, None);
    let stub = StubEmbedServer::start(8);
    let s = store_on(&engine, None);
    crate::sync::use_stub(&s, &stub);
    add_notes(&s);
    s.ok(["sync"]);
    let embedded = stub.texts_embedded();
    s.ok(["put", "notes", "new.md", "--text", "A document written while the engine is down."]);

    // More failures than the adapter's attempts: the sync gives up, and says so.
    engine.fail_next(200);
    let out = s.run(["sync"]);
    assert_ne!(out.code, 0, "a sync that could not write is not a success: {out}");
    let st = s.json(["status", "notes"]);
    let c = collection_status(&st, "notes");
    assert_eq!(c["synced"], 4, "nothing is marked synced that the engine does not hold: {st}");
    assert_eq!(c["pending"].as_u64().unwrap() + c["failed"].as_u64().unwrap(), 1, "{st}");
    let embedded_during_outage = stub.texts_embedded() - embedded;
    assert!(embedded_during_outage <= 1, "at most the new text was embedded, once");

    // The engine is back: the next sync finishes the work from the cache.
    engine.heal();
    s.ok(["sync"]);
    assert_eq!(stub.texts_embedded() - embedded, 1, "the new text is embedded exactly once over both syncs");
    assert_eq!(engine.points(), 5);
    assert_eq!(s.json(["verify", "--index"])["ok"], true);
}

#[rstest]
#[case::qdrant("qdrant")]
#[case::weaviate("weaviate")]
fn a_missing_or_wrong_api_key_is_named_not_a_crash(#[case] kind: &str) {
    let engine = Engine::start(kind, Some("right"));
    let s = store_on(&engine, None);
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "hello"]);
    let st = s.json(["status"]);
    assert_eq!(st["index"]["ok"], false, "an engine that refuses us is unhealthy, and status still answers: {st}");
    let out = s.run(["sync"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("credentials") || out.stderr.contains("401"), "{out}");
    assert!(!out.stderr.contains("right"), "the key never shows");
    assert_eq!(engine.points(), 0);
}

#[test]
fn reindex_moves_a_collection_between_all_three_backends_without_embedding() {
    let qdrant = Engine::start("qdrant", None);
    let weaviate = Engine::start("weaviate", None);
    let stub = StubEmbedServer::start(8);
    let s = TestStore::new();
    crate::sync::use_stub(&s, &stub);
    add_notes(&s);
    s.ok(["sync"]);
    let embedded = stub.texts_embedded();

    let to_qdrant = s.json(["reindex", "notes", "--to", &qdrant.target()]);
    assert_eq!((to_qdrant["from"].as_str(), to_qdrant["points_written"].as_u64()), (Some("embedded"), Some(4)), "{to_qdrant}");
    assert_eq!(qdrant.points(), 4);
    assert_eq!(stub.texts_embedded(), embedded, "the move embedded nothing");
    assert_eq!(s.json(["verify", "--index"])["ok"], true);
    // The stub embeds a text to the same vector every time: the exact text of a document finds it first.
    let hits = s.json(["search", "notes", "The quick brown fox jumps over the lazy dog.", "-k", "1"]);
    assert_eq!(hit_keys(&hits), ["fox.md"], "search reads the new index: {hits}");
    let embedded = stub.texts_embedded(); // the query

    let to_weaviate = s.json(["reindex", "notes", "--to", &weaviate.target()]);
    assert_eq!(to_weaviate["to"], weaviate.target().as_str());
    assert_eq!((weaviate.points(), qdrant.points()), (4, 0), "the old projection is dropped after the switch");
    s.ok(["put", "notes", "later.md", "--text", "Written after the move, synced into Weaviate."]);
    s.ok(["sync"]);
    assert_eq!(weaviate.points(), 5);

    let back = s.json(["reindex", "notes", "--to", "embedded", "--keep-old"]);
    assert_eq!((back["points_written"].as_u64(), back["old_dropped"].as_bool()), (Some(5), Some(false)));
    assert_eq!(weaviate.points(), 5, "--keep-old keeps it");
    assert_eq!(s.json(["verify", "--index"])["ok"], true);
    assert_eq!(stub.texts_embedded() - embedded, 1, "only the document written after the move was embedded");
}

#[rstest]
#[case::qdrant("qdrant")]
#[case::weaviate("weaviate")]
fn a_storm_of_rate_limits_slow_answers_and_dropped_connections_is_ridden_out(#[case] kind: &str) {
    let engine = Engine::start(kind, None);
    let stub = StubEmbedServer::start(8);
    let s = store_on(&engine, None);
    crate::sync::use_stub(&s, &stub);
    add_notes(&s);
    engine.storm();
    let r = s.json(["sync"]);
    assert_eq!(r["ok"], true, "every fault is retried within the attempts, waiting as the server asked: {r}");
    assert!(!engine.faults_left(), "the sync met every injected fault");
    assert_eq!(engine.points(), 4);
    assert_eq!(s.json(["verify", "--index"])["ok"], true, "nothing marked synced that the engine does not hold");
    assert_eq!(stub.texts_embedded(), 4, "each text embedded once, whatever the engine did");
}

/// `col collection set NAME --vectors TARGET` moves a collection as `col reindex --to` does (the issue's per-collection
/// override after creation); the same target is a no-op; combined with other settings it is refused.
#[test]
fn collection_set_vectors_moves_a_collection_and_refuses_mixed_changes() {
    let qdrant = Engine::start("qdrant", None);
    let stub = StubEmbedServer::start(8);
    let s = TestStore::new();
    crate::sync::use_stub(&s, &stub);
    add_notes(&s);
    s.ok(["sync"]);
    let embedded = stub.texts_embedded();
    let moved = s.json(["collection", "set", "notes", "--vectors", &qdrant.target()]);
    assert_eq!((moved["from"].as_str(), moved["points_written"].as_u64()), (Some("embedded"), Some(4)), "{moved}");
    assert_eq!(qdrant.points(), 4);
    assert_eq!(s.json(["collection", "show", "notes"])["settings"]["index"], qdrant.target().as_str());
    let again = s.json(["collection", "set", "notes", "--vectors", &qdrant.target()]);
    assert_eq!(again["moved"], false, "{again}");
    let mixed = s.run(["collection", "set", "notes", "--vectors", "embedded", "--chunk-size", "500"]);
    mixed.assert_error(2, "--vectors moves the collection and is given alone");
    assert_eq!(qdrant.points(), 4, "a refused change moves nothing");
    s.ok(["collection", "set", "notes", "--vectors", "embedded"]);
    assert_eq!((qdrant.points(), s.json(["verify", "--index"])["ok"].as_bool()), (0, Some(true)));
    assert_eq!(stub.texts_embedded(), embedded, "moving embeds nothing");
}

/// `col status` reports the health of every index a collection projects into, not only the store's default; an
/// unreachable one is a status, not a failure.
#[test]
fn status_shows_each_index_a_collection_projects_into() {
    let qdrant = Engine::start("qdrant", None);
    let s = TestStore::new();
    s.ok(["collection", "create", "far", "--vectors", &qdrant.target()]);
    s.ok(["collection", "create", "near"]);
    let status = s.json(["status"]);
    let others = status["other_indexes"].as_array().expect("other_indexes");
    assert_eq!(others.len(), 1, "{status}");
    assert_eq!(
        (others[0]["target"].as_str(), others[0]["index"]["ok"].as_bool()),
        (Some(qdrant.target().as_str()), Some(true)),
        "{status}"
    );
    assert_eq!(others[0]["index"]["backend"], "qdrant");
    assert!(s.ok(["status"]).stdout.contains(&format!("{} (version", qdrant.target())));
    assert_eq!(s.json(["status", "near"])["other_indexes"], serde_json::json!([]), "only the collections shown");
    let target = qdrant.target();
    drop(qdrant);
    let down = s.json(["status"]);
    assert_eq!(down["other_indexes"][0]["index"]["ok"], false, "{down}");
    assert!(s.ok(["status"]).stdout.contains(&format!("{target} (UNHEALTHY")));
}
