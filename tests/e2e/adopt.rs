//! Adopting a collection that already lives in Qdrant or Weaviate (`col import qdrant://…/NAME`, issue 15) through
//! the real `col` binary, against the engine fakes of colstore-testkit: the round trip Qdrant → import → sync →
//! reindex --to Weaviate → export keeps every text, metadata value and vector with no embedder call; dry runs, skips,
//! --strict, re-runs and the refusals.

use std::collections::BTreeMap;

use colstore_e2e::TestStore;
use colstore_testkit::qdrant_fake::{QdrantFake, QdrantFakeOptions};
use colstore_testkit::stub_embedder::StubEmbedServer;
use colstore_testkit::weaviate_fake::{WeaviateFake, WeaviateFakeOptions};
use rstest::rstest;
use serde_json::{Value, json};

/// The vectors' dimension in these tests.
const DIM: usize = 8;

/// `qdrant://127.0.0.1:PORT` of a fake.
pub(crate) fn qdrant_target(f: &QdrantFake) -> String {
    format!("qdrant://{}", f.url().trim_start_matches("http://"))
}

fn weaviate_target(f: &WeaviateFake) -> String {
    format!("weaviate://{}", f.url().trim_start_matches("http://"))
}

/// Object `i`'s vector: values with full f32 mantissas (thirds, sevenths), so a lossy copy would show.
pub(crate) fn vector(i: usize, round: usize) -> Vec<f32> {
    (0..DIM).map(|j| ((i * 31 + j * 17 + round * 7) % 97) as f32 / 3.0 - 16.0 + (j as f32) / 7.0).collect()
}

/// Object `i`'s payload: its text under `body`, and metadata of every JSON kind.
pub(crate) fn payload(i: usize, round: usize) -> Value {
    json!({
        "body": format!("Article {i} (revision {round}): vector engines keep embeddings; colstore keeps them safe. ü ñ 日本"),
        "lang": if i.is_multiple_of(2) { "en" } else { "de" },
        "rank": i,
        "score": i as f64 / 8.0,
        "draft": i.is_multiple_of(5),
        "tags": ["a", format!("t{}", i % 3)],
        "author": {"name": format!("Author {}", i % 4), "id": i % 4},
    })
}

/// Creates Qdrant collection `name` (`distance`: Cosine, Dot, Euclid) holding `n` points with ids 1..=n, plus a
/// point without `body` (id n+1) that an adoption skips.
pub(crate) fn seed_qdrant(fake: &QdrantFake, name: &str, distance: &str, n: usize) {
    let (status, body) = fake.call("PUT", &format!("/collections/{name}"), &json!({"vectors": {"size": DIM, "distance": distance}}));
    assert_eq!(status, 200, "{body}");
    write_qdrant_points(fake, name, 1..=n, 0);
    let (status, body) = fake.call(
        "PUT",
        &format!("/collections/{name}/points?wait=true"),
        &json!({"points": [{"id": n + 1, "vector": vector(n + 1, 0), "payload": {"title": "no body"}}]}),
    );
    assert_eq!(status, 200, "{body}");
}

/// (Re)writes points `ids` of `name` as of `round`.
pub(crate) fn write_qdrant_points(fake: &QdrantFake, name: &str, ids: impl IntoIterator<Item = usize>, round: usize) {
    let points: Vec<Value> = ids.into_iter().map(|i| json!({"id": i, "vector": vector(i, round), "payload": payload(i, round)})).collect();
    for chunk in points.chunks(500) {
        let (status, body) = fake.call("PUT", &format!("/collections/{name}/points?wait=true"), &json!({ "points": chunk }));
        assert_eq!(status, 200, "{body}");
    }
}

/// What a document adopted from object `i` must be: its text, and its metadata (the payload without `body`, with
/// `source_id`).
pub(crate) fn adopted(i: usize, round: usize) -> (String, Value) {
    let mut p = payload(i, round);
    let text = p["body"].as_str().unwrap().to_owned();
    p.as_object_mut().unwrap().remove("body");
    p["source_id"] = json!(i.to_string());
    (text, p)
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    v.iter().map(|x| (f64::from(*x) / n) as f32).collect()
}

/// A store whose embedder is the stub at dimension [`DIM`] (`openai:stub/8`), so any embedder call is counted.
fn store_with_stub(stub: &StubEmbedServer) -> TestStore {
    let s = TestStore::new();
    crate::sync::use_stub(&s, stub);
    s
}

/// The documents of an export file: key → (text, metadata, vectors).
fn exported(s: &TestStore, file: &str) -> BTreeMap<String, (String, Value, Vec<Vec<f32>>)> {
    let bytes = std::fs::read(s.path().join(file)).unwrap();
    let text = String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(d) = v.get("document") else { continue };
        let content = decode_base64(d["content"].as_str().unwrap());
        let vectors = d["vectors"]
            .as_array()
            .map(|vs| vs.iter().map(|pair| pair[1].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()).collect())
            .unwrap_or_default();
        out.insert(d["key"].as_str().unwrap().to_owned(), (String::from_utf8(content).unwrap(), d["metadata"].clone(), vectors));
    }
    out
}

fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for group in bytes.chunks(4) {
        let n = group.iter().enumerate().fold(0u32, |acc, (k, &c)| acc | (u32::from(value(c)) << (18 - 6 * k)));
        out.extend_from_slice(&n.to_be_bytes()[1..group.len()]);
    }
    out
}

/// The round trip: Qdrant → `col import` → `col sync` → `col reindex --to` Weaviate → `col export` keeps
/// every text and metadata value, and every vector (bit-identical for Dot; for Cosine, Qdrant normalises on write, so
/// within 1e-6 of the normalised original), with zero embedder calls.
#[rstest]
#[case::dot("Dot")]
#[case::cosine("Cosine")]
fn a_qdrant_collection_adopted_and_moved_to_weaviate_keeps_every_text_value_and_vector(#[case] distance: &str) {
    const N: usize = 600; // more than two pages
    let qdrant = QdrantFake::spawn(QdrantFakeOptions::default());
    let weaviate = WeaviateFake::spawn(WeaviateFakeOptions::default());
    let stub = StubEmbedServer::start(DIM as u32);
    seed_qdrant(&qdrant, "articles", distance, N);
    let s = store_with_stub(&stub);
    let source = format!("{}/articles", qdrant_target(&qdrant));
    let adopt = ["import", source.as_str(), "--into", "articles", "--text-field", "body", "--embedder", "openai:stub"];

    // A dry run reads everything, shows a sample, and writes nothing.
    let before = s.fingerprint();
    let dry = s.json([&adopt[..], &["--dry-run"]].concat());
    let plan = &dry["adopt"];
    assert_eq!(
        (plan["read"].as_u64(), plan["created"].as_u64(), plan["skipped"].as_u64()),
        (Some(N as u64 + 1), Some(N as u64), Some(1)),
        "{dry}"
    );
    assert_eq!(plan["skips"][0]["id"], json!((N + 1).to_string()));
    assert_eq!(plan["skips"][0]["reason"], "it has no `body` field");
    assert_eq!(plan["sample"].as_array().map(Vec::len), Some(3), "{dry}");
    assert_eq!(s.fingerprint(), before, "a dry run changes nothing");

    let done = s.json(adopt);
    assert_eq!((done["adopt"]["created"].as_u64(), done["adopt"]["vectors"].as_u64()), (Some(N as u64), Some(N as u64)), "{done}");
    assert_eq!(qdrant.point_count("articles"), Some(N + 1), "the source is only read");
    let sync = s.json(["sync", "articles"]);
    assert_eq!(sync["collections"][0]["embedded"], 0, "{sync}");
    let moved = s.json(["reindex", "articles", "--to", &weaviate_target(&weaviate)]);
    assert_eq!(moved["points_written"].as_u64(), Some(N as u64), "{moved}");
    assert_eq!(s.json(["verify", "--index"])["ok"], true);
    s.ok(["export", "-o", "articles.colstore"]);
    assert_eq!(stub.requests(), 0, "nothing was ever embedded");

    let docs = exported(&s, "articles.colstore");
    assert_eq!(docs.len(), N);
    for i in 1..=N {
        let (text, metadata, vectors) = &docs[&i.to_string()];
        let (want_text, want_metadata) = adopted(i, 0);
        assert_eq!((text, metadata), (&want_text, &want_metadata), "document {i}");
        assert_eq!(vectors.len(), 1, "one chunk per document");
        let got = &vectors[0];
        if distance == "Dot" {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got), bits(&vector(i, 0)), "document {i}: the vector is bit-identical");
        } else {
            let want = normalised(&vector(i, 0));
            let off = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(off <= 1e-6, "document {i}: the cosine-normalised vector is off by {off}");
        }
    }
    // Search reads Weaviate now and finds a document by its own vector's neighbourhood (any hit will do: the index
    // answers with adopted documents).
    let hits = s.json(["search", "articles", "vector engines keep embeddings", "-k", "3"]);
    assert_eq!(hits["results"].as_array().map(Vec::len), Some(3), "{hits}");
}

/// A Weaviate class with keys from a field: adopted, synced into the embedded index with no embedder call, and a
/// second run after the source changed updates exactly the changed objects (after a safety backup).
#[test]
fn a_weaviate_class_is_adopted_with_keys_from_a_field_and_a_rerun_refreshes_it() {
    let weaviate = WeaviateFake::spawn(WeaviateFakeOptions::default());
    let stub = StubEmbedServer::start(DIM as u32);
    let class = json!({"class": "Article", "vectorizer": "none", "vectorIndexConfig": {"distance": "dot"}, "properties": [
        {"name": "body", "dataType": ["text"]}, {"name": "path", "dataType": ["text"]}, {"name": "lang", "dataType": ["text"]}]});
    let (status, body) = weaviate.call("POST", "/v1/schema", &class);
    assert_eq!(status, 200, "{body}");
    let object = |i: usize, round: usize| {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        json!({"class": "Article", "id": id, "vector": vector(i, round),
               "properties": {"body": format!("Weaviate article {i}, round {round}."), "path": format!("notes/{i}.md"), "lang": "en"}})
    };
    let (status, body) =
        weaviate.call("POST", "/v1/batch/objects", &json!({"objects": (1..=40).map(|i| object(i, 0)).collect::<Vec<_>>()}));
    assert_eq!(status, 200, "{body}");
    let s = store_with_stub(&stub);
    let source = format!("{}/article", weaviate_target(&weaviate));
    let adopt =
        ["import", source.as_str(), "--into", "kb", "--text-field", "body", "--key-field", "path", "--embedder", "openai:stub", "--yes"];

    let first = s.json(adopt);
    assert_eq!(first["adopt"]["source"], json!(format!("{}/Article", weaviate_target(&weaviate))), "the class name is capitalised");
    assert_eq!(first["adopt"]["created"].as_u64(), Some(40), "{first}");
    let doc = s.json(["get", "kb", "notes/7.md"]);
    assert_eq!(doc["metadata"], json!({"path": "notes/7.md", "lang": "en", "source_id": "00000000-0000-4000-8000-000000000007"}), "{doc}");
    let sync = s.json(["sync"]);
    assert_eq!(sync["collections"][0]["embedded"], 0, "{sync}");
    assert_eq!(s.json(["collection", "show", "kb"])["settings"]["chunking"], json!({"max_chars": u32::MAX, "overlap_chars": 0}));

    // Five objects change in the source; a rerun updates exactly those, after a safety backup of the collection.
    let (status, body) = weaviate.call("POST", "/v1/batch/objects", &json!({"objects": (1..=5).map(|i| object(i, 1)).collect::<Vec<_>>()}));
    assert_eq!(status, 200, "{body}");
    let again = s.json(adopt);
    let r = &again["adopt"];
    assert_eq!((r["created"].as_u64(), r["updated"].as_u64(), r["unchanged"].as_u64()), (Some(0), Some(5), Some(35)), "{again}");
    assert!(again["safety_backup"].is_string(), "the collection had documents: a safety backup first: {again}");
    let sync = s.json(["sync"]);
    assert_eq!(sync["collections"][0]["embedded"], 0, "{sync}");
    assert_eq!(s.json(["verify", "--index"])["ok"], true);
    assert_eq!(stub.requests(), 0, "nothing was ever embedded");
}

/// With --strict, one object without the text field refuses the whole import before anything is written.
#[test]
fn strict_refuses_everything_when_one_object_cannot_be_adopted() {
    let qdrant = QdrantFake::spawn(QdrantFakeOptions::default());
    seed_qdrant(&qdrant, "articles", "Dot", 20);
    let stub = StubEmbedServer::start(DIM as u32);
    let s = store_with_stub(&stub);
    let source = format!("{}/articles", qdrant_target(&qdrant));
    let before = s.fingerprint();
    let out = s.run(["import", &source, "--into", "articles", "--text-field", "body", "--embedder", "openai:stub", "--strict"]);
    out.assert_error(1, "1 of 21 objects of");
    assert!(out.stderr.contains("(first: 21: it has no `body` field); nothing was written"), "{out}");
    assert_eq!(s.fingerprint(), before, "a strict refusal changes nothing");
}

/// The refusals: each names what is wrong and how to fix it, and changes nothing.
#[rstest]
#[case::store_embeds_with_another_model(&["--embedder", "openai:text-embedding-3-small"], "are openai:text-embedding-3-small/8, but this store embeds with openai:stub/8", "model = \"text-embedding-3-small\"")]
#[case::no_into(&["--into", ""], "needs --into", "--into articles")]
#[case::no_text_field(&["--text-field", ""], "needs --text-field", "--text-field body")]
#[case::embedder_not_kind_model(&["--embedder", "openai"], "is not KIND:MODEL", "--embedder openai:")]
#[case::mode_is_for_files(&["--mode", "merge"], "--mode is for importing a file", "drop --mode")]
#[case::missing_collection(&["--source", "nope"], "index collection \"nope\" not found", "collection name")]
#[case::into_a_chunked_collection(&["--into", "chunked"], "collection \"chunked\" exists and chunks documents", "--into NEW_NAME")]
fn adopting_refuses_clearly_and_changes_nothing(#[case] change: &[&str], #[case] message: &str, #[case] hint: &str) {
    let qdrant = QdrantFake::spawn(QdrantFakeOptions::default());
    seed_qdrant(&qdrant, "articles", "Dot", 3);
    let stub = StubEmbedServer::start(DIM as u32);
    let s = store_with_stub(&stub);
    s.ok(["collection", "create", "chunked"]);
    let mut args: BTreeMap<&str, String> =
        [("--into", "articles"), ("--text-field", "body"), ("--embedder", "openai:stub"), ("--source", "articles")]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect();
    for pair in change.chunks(2) {
        args.insert(pair[0], pair[1].to_owned());
    }
    let source = format!("{}/{}", qdrant_target(&qdrant), args.remove("--source").unwrap());
    let mut argv = vec!["import".to_owned(), source];
    for (k, v) in args {
        if !v.is_empty() {
            argv.extend([k.to_owned(), v]);
        }
    }
    let before = s.fingerprint();
    let out = s.run(&argv);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains(message), "{out}");
    assert!(out.hint().is_some_and(|h| h.contains(hint)), "hint should mention {hint:?}\n{out}");
    assert_eq!(s.fingerprint(), before);
}

/// Flags for a remote collection with a file, and a file import's --mode with a remote one, are refused; a file
/// name with multi-byte characters where a scheme would end is a file, not a crash.
#[test]
fn remote_flags_with_a_file_are_refused() {
    let s = TestStore::new();
    let out = s.run(["import", "日本語のメモ.colstore"]);
    out.assert_no_panic();
    out.assert_error(1, "cannot read 日本語のメモ.colstore");
    s.ok(["export", "-o", "all.colstore"]);
    let out = s.run(["import", "all.colstore", "--text-field", "body"]);
    out.assert_error(2, "--text-field is for adopting a remote collection, and all.colstore is a file");
}
