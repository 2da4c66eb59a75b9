//! The filter language beyond `col ls`'s basics (issue 16): indexed fields (`col collection index`), sync states
//! (`state:`), and `col export --where` with an import that never deletes what a filtered file lacks. Both storage
//! modes, through the real binary.

use colstore_e2e::TestStore;
use serde_json::Value;

fn ls(s: &TestStore, expr: &str) -> Vec<String> {
    let v: Value = s.json(["ls", "notes", "--where", expr, "--limit", "1000"]);
    v["documents"].as_array().expect("documents").iter().map(|d| d["key"].as_str().expect("key").to_owned()).collect()
}

fn notes(s: &TestStore) {
    s.ok(["collection", "create", "notes"]);
    for i in 0..12 {
        let meta =
            format!(r#"{{"year": {}, "lang": "{}", "labels": ["l{}", "all"]}}"#, 2015 + i, if i % 3 == 0 { "de" } else { "en" }, i % 4);
        s.ok(["put", "notes", &format!("n{i:02}.md"), "--text", &format!("note {i}"), "--meta", &meta, "--tag", &format!("t{}", i % 2)]);
    }
}

/// An indexed field gives the same answers as before it was indexed, through writes after it, and after it is
/// dropped; `collection show` and `--json` say which fields are indexed.
#[test]
fn indexed_fields_change_speed_not_answers() {
    for filesystem in [false, true] {
        let s = if filesystem { TestStore::filesystem() } else { TestStore::new() };
        notes(&s);
        let exprs = ["year>=2020 and lang=en and tag:t1", "labels=l2 or year<2016", "not lang=de and labels in l1,l3", "year>2020.5"];
        let before: Vec<Vec<String>> = exprs.iter().map(|e| ls(&s, e)).collect();
        assert_eq!(before[0], ["n05.md", "n07.md", "n11.md"], "filesystem: {filesystem}");
        for field in ["year", "lang", "labels"] {
            let v = s.json(["collection", "index", "notes", field]);
            assert_eq!(v["change"], "added", "{v:#}");
        }
        assert_eq!(s.json(["collection", "index", "notes", "year"])["change"], "already_indexed");
        let shown = s.ok(["collection", "show", "notes"]).stdout;
        assert!(shown.contains("indexed:    tags, keys, times, sync states and labels, lang, year"), "{shown}");
        for (e, want) in exprs.iter().zip(&before) {
            assert_eq!(&ls(&s, e), want, "{e} with indexes (filesystem: {filesystem})");
        }
        // Writes after indexing keep the index: a changed value, a new document, a removed one.
        s.ok(["put", "notes", "n05.md", "--text", "note 5", "--meta", r#"{"year": 2001, "lang": "en"}"#, "--tag", "t1"]);
        s.ok(["put", "notes", "n99.md", "--text", "new", "--meta", r#"{"year": 2030, "lang": "en"}"#, "--tag", "t1"]);
        s.ok(["rm", "notes", "n07.md"]);
        assert_eq!(ls(&s, exprs[0]), ["n11.md", "n99.md"]);
        assert_eq!(s.json(["collection", "index", "notes", "year", "--drop"])["change"], "dropped");
        assert_eq!(ls(&s, exprs[0]), ["n11.md", "n99.md"], "the same without the index");
        s.run(["collection", "index", "notes", "a..b"]).assert_error(1, "invalid field");
        s.run(["collection", "index", "nope", "year"]).assert_code(1);
    }
}

/// `state:` lists documents by their sync state, alone or with other conditions; a wrong state is an error naming
/// the column; `col search --where state:…` agrees; `col export --where state:…` is refused.
#[test]
fn documents_are_listed_by_sync_state() {
    let s = TestStore::new();
    notes(&s);
    assert_eq!(ls(&s, "state:pending").len(), 12);
    s.ok(["sync"]);
    assert_eq!(ls(&s, "state:synced").len(), 12);
    s.ok(["put", "notes", "n03.md", "--text", "note 3, edited"]);
    assert_eq!(ls(&s, "state:pending"), ["n03.md"]);
    assert_eq!(ls(&s, "not state:synced or tag:t1 and year>2025"), ["n03.md", "n11.md"]);
    assert!(ls(&s, "state:failed").is_empty());
    let out = s.run(["ls", "notes", "--where", "tag:t1 and state:done"]);
    out.assert_error(1, "at column 18: \"done\" is not a sync state; write state:pending, state:synced or state:failed");
    let hits: Value = s.json(["search", "notes", "note", "-k", "20", "--where", "state:synced and year<2017"]);
    let mut keys: Vec<&str> = hits["results"].as_array().unwrap().iter().map(|h| h["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys, ["n00.md", "n01.md"], "{hits:#}");
    s.run(["export", "--where", "state:failed", "-o", "x.colstore"]).assert_error(1, "`state:` cannot choose what to export");
}

/// `col export --where` writes only the matches; importing that file into the store it came from deletes nothing
/// (a whole export imported in replace mode would), and into an empty store gives exactly the matches.
#[test]
fn a_filtered_export_imports_without_deleting_what_it_lacks() {
    for filesystem in [false, true] {
        let s = if filesystem { TestStore::filesystem() } else { TestStore::new() };
        notes(&s);
        let v = s.json(["export", "--collection", "notes", "--where", "tag:t1", "--where", "year>=2020", "-o", "part.colstore"]);
        assert_eq!((v["export"]["documents"].as_u64(), v["filter"].as_str()), (Some(4), Some("(tag:t1) and (year>=2020)")), "{v:#}");
        let plan = s.json(["import", "part.colstore", "--dry-run"]);
        let c = &plan["plan"]["collections"][0];
        assert_eq!(
            (c["delete"].as_u64(), c["unchanged"].as_u64(), c["filter"].as_str()),
            (Some(0), Some(4), Some("(tag:t1) and (year>=2020)"))
        );
        s.ok(["import", "part.colstore", "--yes"]);
        assert_eq!(s.json(["ls", "notes"])["total"].as_u64(), Some(12), "nothing deleted (filesystem: {filesystem})");
        let other = TestStore::new();
        let file = s.path().join("part.colstore");
        other.ok([std::ffi::OsStr::new("import"), file.as_os_str(), std::ffi::OsStr::new("--yes")]);
        let all: Value = other.json(["ls", "notes"]);
        let keys: Vec<&str> = all["documents"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["n05.md", "n07.md", "n09.md", "n11.md"]);
        assert_eq!(other.json(["search", "notes", "note", "--mode", "keyword"])["results"].as_array().unwrap().len(), 4);
    }
}
