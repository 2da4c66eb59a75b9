//! `col search`: hybrid (the default), keyword and vector modes, the filter language, and full-text data that stays
//! true through deletes, edits, `clear`, backup/restore and export/import (PRODUCT §9).

use colstore_e2e::TestStore;
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    v["results"].as_array().expect("results").iter().map(|h| h["key"].as_str().expect("a key").to_owned()).collect()
}

/// Deterministic pseudo-random words, so the corpus is the same on every run.
fn words(seed: u64, n: usize) -> Vec<String> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 3 + (x % 7) as usize;
            (0..len).map(|i| (b'a' + ((x >> (i * 5)) % 26) as u8) as char).collect()
        })
        .collect()
}

/// The first paragraph: 600 notes of 40 random words, one ending in "zebracornflakes quasar" (and a few with
/// one of the two words): hybrid (the default) and keyword search rank it first; each hit says which side found it.
#[test]
fn a_rare_pair_of_words_is_found_first() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    let vocabulary = words(7, 2000);
    for i in 0..600u64 {
        let mut text: Vec<String> = words(1000 + i, 40).iter().map(|w| vocabulary[w.len() * 131 % 2000].clone() + w).collect();
        match i {
            333 => text.extend(["zebracornflakes".to_owned(), "quasar".to_owned()]),
            10 | 20 => text.push("zebracornflakes".to_owned()),
            30 | 40 => text.push("quasar".to_owned()),
            _ => {}
        }
        s.write(format!("notes/note{i:03}.md"), text.join(" "));
    }
    s.ok(["add", "notes", "notes", "-q"]);
    s.ok(["sync", "-q"]);
    for mode in ["hybrid", "keyword"] {
        let v = s.json(["search", "notes", "zebracornflakes quasar", "-k", "3", "--mode", mode]);
        assert_eq!(keys(&v).first().map(String::as_str), Some("note333.md"), "{mode}: {v:#}");
        assert!(v["results"][0]["snippet"].as_str().unwrap().contains("«zebracornflakes» «quasar»"), "{v:#}");
    }
    let v = s.json(["search", "notes", "zebracornflakes quasar", "-k", "5"]);
    assert_eq!(v["mode"], "hybrid", "hybrid is the default");
    let sides: Vec<&str> = v["results"][0]["found_by"].as_array().unwrap().iter().map(|f| f["side"].as_str().unwrap()).collect();
    assert!(sides.contains(&"keyword"), "{v:#}");
    assert_eq!(v["results"][0]["found_by"][0]["rank"], 1);
    assert!(v["fusion"]["rrf_k"].as_u64().is_some(), "{v:#}");
    let out = s.run(["search", "notes", "zebracornflakes quasar", "-k", "1"]);
    assert!(out.stdout.contains("note333.md#0  [keyword #1"), "{out}");
}

/// Keyword search works before the first sync; hybrid then says the vector side is missing, and vector mode refuses
/// with how to fix it. A query that starts with `-` is given after `--`.
#[test]
fn keyword_search_needs_no_sync() {
    let s = TestStore::with_note("alpha beta gamma");
    s.ok(["put", "notes", "b.md", "--text", "-v verbose flag", "--tag", "cli"]);
    let v = s.json(["search", "notes", "alpha"]);
    assert_eq!(keys(&v), ["a.md"]);
    assert!(v["vector_missing"].as_str().unwrap().contains("col sync notes"), "{v:#}");
    let out = s.run(["search", "notes", "alpha"]);
    assert!(out.stdout.contains("keyword hits only") || out.stderr.contains("keyword hits only"), "{out}");
    s.run(["search", "notes", "alpha", "--mode", "vector"]).assert_error(1, "not synced yet");
    assert_eq!(keys(&s.json(["search", "notes", "--", "-v flag"])), ["b.md"]);
    assert_eq!(keys(&s.json(["search", "notes", "\"verbose flag\"", "--mode", "keyword", "--where", "tag:cli"])), ["b.md"]);
    assert!(keys(&s.json(["search", "notes", "verbose", "--where", "not tag:cli"])).is_empty());
    assert_eq!(keys(&s.json(["search", "notes", "gam*", "--mode", "keyword"])), ["a.md"], "a prefix query");
    let out = s.run(["search", "notes", "nothing-matches-this"]);
    assert!(out.stderr.contains("No results") || out.stdout.contains("No results"), "{out}");
}

/// Full-text data follows the documents: an edit and a delete are seen by the next search, `clear` leaves nothing,
/// a restore and an import make the text searchable again, in both storage modes.
#[test]
fn keyword_search_follows_every_change() {
    for filesystem in [false, true] {
        let s = if filesystem { TestStore::filesystem() } else { TestStore::new() };
        s.ok(["collection", "create", "notes"]);
        s.ok(["put", "notes", "a.md", "--text", "the lighthouse keeper"]);
        s.ok(["put", "notes", "b.md", "--text", "a quiet harbour"]);
        assert_eq!(keys(&s.json(["search", "notes", "lighthouse", "--mode", "keyword"])), ["a.md"]);
        s.ok(["put", "notes", "a.md", "--text", "the lamp room"]);
        assert!(keys(&s.json(["search", "notes", "lighthouse", "--mode", "keyword"])).is_empty(), "edited away");
        assert_eq!(keys(&s.json(["search", "notes", "lamp", "--mode", "keyword"])), ["a.md"]);
        s.ok(["rm", "notes", "b.md"]);
        assert!(keys(&s.json(["search", "notes", "harbour", "--mode", "keyword"])).is_empty(), "deleted");

        let backup = s.json(["backup"])["backup"]["id"].as_str().unwrap().to_owned();
        s.ok(["export", "-o", "notes.colstore"]);
        s.ok(["clear", "notes", "--yes"]);
        assert!(keys(&s.json(["search", "notes", "lamp", "--mode", "keyword"])).is_empty(), "cleared");
        s.ok(["restore", &backup, "--yes"]);
        assert_eq!(keys(&s.json(["search", "notes", "lamp", "--mode", "keyword"])), ["a.md"], "restored (filesystem: {filesystem})");
        s.ok(["clear", "notes", "--yes"]);
        s.ok(["import", "notes.colstore", "--yes"]);
        assert_eq!(keys(&s.json(["search", "notes", "lamp", "--mode", "keyword"])), ["a.md"], "imported (filesystem: {filesystem})");
        let v = s.json(["verify"]);
        assert_eq!(v["ok"], true, "{v:#}");
    }
}

/// `col verify` compares the full-text index with the documents: drift made behind the store's back (a record
/// pointing at other content, rows without their record) fails it with exit 3 and names the documents (python's
/// SQLite cannot open the FTS5 table itself: orphan rows and a damaged index are the adapter's unit tests);
/// `col verify --repair` re-indexes from the documents and search answers right again. Both storage modes.
#[test]
fn verify_finds_and_repairs_full_text_drift() {
    for filesystem in [false, true] {
        let s = if filesystem { TestStore::filesystem() } else { TestStore::new() };
        s.ok(["collection", "create", "notes"]);
        s.ok(["put", "notes", "a.md", "--text", "the lighthouse keeper"]);
        s.ok(["put", "notes", "b.md", "--text", "a quiet harbour"]);
        assert_eq!(keys(&s.json(["search", "notes", "lighthouse", "--mode", "keyword"])), ["a.md"]);
        let out = s.ok(["verify"]);
        assert!(out.stdout.contains("OK: full-text index matches the documents (2 indexed)"), "{out}");
        let script = "import sqlite3,sys\n\
            db=sqlite3.connect(sys.argv[1])\n\
            db.execute(\"UPDATE fts_docs SET hash=x'00' WHERE doc_id=(SELECT id FROM documents WHERE key='a.md')\")\n\
            db.execute(\"DELETE FROM fts_docs WHERE doc_id=(SELECT id FROM documents WHERE key='b.md')\")\n\
            db.commit()\n";
        let py = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(s.colstore_dir().join("colstore.db"))
            .output()
            .expect("python3 runs (the drift test edits the database with its sqlite3 module)");
        assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
        let out = s.run(["verify"]);
        out.assert_error(3, "the full-text index of 1 collection(s) does not match the documents");
        assert!(out.stderr.contains("full-text drift: notes/a.md") && out.stderr.contains("full-text drift: notes/b.md"), "{out}");
        let out = s.run(["--json", "verify"]);
        out.assert_code(3);
        let v = out.json();
        assert_eq!((v["ok"].as_bool(), v["text"][0]["check"]["drift"][0].as_str()), (Some(false), Some("a.md")), "{v:#}");
        let out = s.ok(["verify", "--repair"]);
        assert!(out.stdout.contains("repaired: full-text index of notes: 2 drifted document(s), 0 orphan row(s); 2 document(s)"), "{out}");
        assert_eq!(s.json(["verify"])["ok"], true);
        assert_eq!(keys(&s.json(["search", "notes", "harbour", "--mode", "keyword"])), ["b.md"]);
        assert_eq!(keys(&s.json(["search", "notes", "lighthouse", "--mode", "keyword"])), ["a.md"], "filesystem: {filesystem}");
    }
}

/// Fusion settings are per collection: set, used by hybrid search at once (no sync), shown, reset; bad values and
/// mixed calls are refused and change nothing.
#[test]
fn fusion_is_set_per_collection() {
    let s = TestStore::with_note("alpha beta gamma");
    s.ok(["sync", "-q"]);
    let defaults = s.json(["search", "notes", "alpha"])["fusion"].clone();
    assert_eq!(defaults, serde_json::json!({"rrf_k": 10, "keyword_weight": 1.0, "vector_weight": 0.1}), "the hash embedder's defaults");
    let v = s.json(["collection", "set", "notes", "--vector-weight", "0.5", "--rrf-k", "20"]);
    assert_eq!(v["change"]["fusion"], serde_json::json!({"rrf_k": 20, "keyword_weight": 1.0, "vector_weight": 0.5}), "{v:#}");
    assert_eq!(s.json(["search", "notes", "alpha"])["fusion"]["rrf_k"], 20);
    assert!(s.ok(["collection", "show", "notes"]).stdout.contains("fusion:     rrf_k 20, keyword weight 1, vector weight 0.5"));
    s.run(["collection", "set", "notes", "--vector-weight", "200"]).assert_error(2, "the vector weight goes from 0 to 100");
    s.run(["collection", "set", "notes", "--keyword-weight", "0", "--vector-weight", "0"]).assert_error(2, "cannot both be 0");
    s.run(["collection", "set", "notes", "--rrf-k", "5", "--chunk-size", "800"]).assert_error(2, "fusion settings are given alone");
    assert_eq!(s.json(["search", "notes", "alpha"])["fusion"]["vector_weight"], 0.5, "nothing changed");
    s.ok(["collection", "set", "notes", "--default-fusion"]);
    assert_eq!(s.json(["search", "notes", "alpha"])["fusion"], defaults);
}
