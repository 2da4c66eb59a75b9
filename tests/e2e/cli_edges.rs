//! Issue 11, defect 7 and the CLI's rough edges: `-o` writes through symbolic links and into special files instead of
//! replacing them, `-o -` and `col import -`, `col search` before the first sync, empty queries and padded results,
//! refused `--meta`/`--where`/`--since` mistakes, the `colstore` name, examples in every `--help`, and the demo's wording.

use std::os::unix::fs::FileTypeExt;
use std::process::Stdio;

use colstore_e2e::{TestStore, col_bin, output_of};

#[test]
fn get_o_writes_through_a_symlink_and_keeps_it() {
    let s = TestStore::with_note("alpha beta gamma");
    let target = s.write("out/real.txt", "old");
    let link = s.path().join("link.txt");
    std::os::unix::fs::symlink("out/real.txt", &link).unwrap();
    s.ok(["get", "notes", "a.md", "-o", "link.txt"]);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "alpha beta gamma");
    let strays: Vec<_> = std::fs::read_dir(s.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(strays.len(), 1, "no temporary file is left beside the target: {strays:?}");
}

#[test]
fn export_o_writes_through_a_symlink_and_keeps_it() {
    let s = TestStore::with_note("alpha beta gamma");
    let target = s.write("real.colstore", "old");
    let link = s.path().join("link.colstore");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    s.ok(["export", "-o", "link.colstore"]);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    let other = TestStore::new();
    other.ok(["import", target.to_str().unwrap(), "--yes"]);
    assert_eq!(other.ok(["get", "notes", "a.md"]).stdout, "alpha beta gamma");
}

#[test]
fn get_o_dash_prints_to_stdout() {
    let s = TestStore::with_note("alpha beta gamma");
    let out = s.ok(["get", "notes", "a.md", "-o", "-"]);
    assert_eq!(out.stdout, "alpha beta gamma");
    assert!(!s.path().join("-").exists(), "a file named '-' was created");
}

#[test]
fn export_to_dev_null_and_to_a_fifo_writes_into_them() {
    let s = TestStore::with_note("alpha beta gamma");
    s.ok(["export", "-o", "/dev/null"]);
    let m = std::fs::metadata("/dev/null").unwrap();
    assert!(m.file_type().is_char_device(), "/dev/null is still a device");

    let fifo = s.path().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    s.ok(["export", "-o", "pipe"]);
    let bytes = reader.join().unwrap();
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced by a regular file");
    assert!(!bytes.is_empty(), "nothing came through the FIFO");
    // What came through is a whole export.
    let file = s.path().join("from-fifo.colstore");
    std::fs::write(&file, &bytes).unwrap();
    TestStore::new().ok(["import", file.to_str().unwrap(), "--dry-run"]);
}

#[test]
fn export_o_dash_pipes_into_import_dash() {
    let s = TestStore::with_note("alpha beta gamma");
    let exported = s.cmd(["export", "-o", "-"]).stderr(Stdio::piped()).output().unwrap();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    assert!(exported.stdout.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "stdout is a zstd stream, without the summary");
    assert!(String::from_utf8_lossy(&exported.stderr).contains("Exported 1 collection(s)"), "the summary goes to stderr");
    assert!(!s.path().join("-").exists(), "a file named '-' was created");

    let other = TestStore::new();
    let dry = output_of(&mut other.cmd(["import", "-", "--dry-run"]), Some(&exported.stdout));
    dry.assert_ok();
    assert!(dry.stdout.contains("standard input"), "{dry}");
    output_of(&mut other.cmd(["import", "-", "--yes"]), Some(&exported.stdout)).assert_ok();
    assert_eq!(other.ok(["get", "notes", "a.md"]).stdout, "alpha beta gamma");
}

#[test]
fn search_before_the_first_sync_says_to_sync() {
    let s = TestStore::with_note("alpha beta gamma");
    let out = s.run(["search", "notes", "alpha", "--mode", "vector"]);
    let line = out.assert_error(1, "not synced yet: run `col sync notes`");
    assert!(!line.contains("cs_"), "the index's internal name leaks: {line}");
    assert!(out.hint().is_some_and(|h| h.contains("--mode keyword")), "{out}");
    // Hybrid, the default, answers from the text and says what is missing.
    let hybrid = s.ok(["search", "notes", "alpha"]);
    assert!(hybrid.stdout.contains("a.md#0") && hybrid.stdout.contains("run `col sync notes` to add vector hits"), "{hybrid}");
}

#[test]
fn search_refuses_an_empty_query() {
    let s = TestStore::with_note("alpha beta gamma");
    s.ok(["sync"]);
    for q in ["", "   "] {
        s.run(["search", "notes", q]).assert_error(2, "the search query is empty");
    }
}

#[test]
fn search_results_are_not_padded_with_unrelated_hits() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "wal.md", "--text", "the write-ahead log makes commits durable"]);
    s.ok(["put", "notes", "cats.md", "--text", "felines purr softly"]);
    s.ok(["put", "notes", "dogs.md", "--text", "hounds bark loudly"]);
    s.ok(["sync"]);
    let hits = s.json(["search", "notes", "durable commits", "-k", "10", "--mode", "vector"]);
    let results = hits["results"].as_array().unwrap();
    let keys: Vec<&str> = results.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["wal.md"], "{hits}");
    assert!(results.iter().all(|r| r["score"].as_f64().unwrap() > 0.0), "{hits}");
    let human = s.ok(["search", "notes", "durable commits", "--mode", "vector"]);
    assert!(!human.stdout.contains("0.000"), "{human}");
    assert!(human.stdout.contains("cosine similarity"), "the score is explained: {human}");
    let hybrid = s.ok(["search", "notes", "durable commits"]);
    assert!(hybrid.stdout.contains("reciprocal rank fusion") && hybrid.stdout.contains("[keyword #1, vector #1]"), "{hybrid}");
    assert!(!human.stdout.contains("not synced yet"), "{human}");
    s.ok(["put", "notes", "fresh.md", "--text", "durable and fresh"]);
    let later = s.ok(["search", "notes", "durable commits"]);
    assert!(later.stdout.contains("note: 1 documents are not synced yet; run `col sync notes`"), "{later}");
    let none = s.ok(["search", "notes", "zebra"]);
    assert!(none.stdout.contains("No results"), "{none}");
}

#[test]
fn meta_with_a_repeated_key_is_refused() {
    let s = TestStore::with_note("alpha beta gamma");
    let line = s.run(["put", "notes", "b.md", "--text", "x", "--meta", r#"{"a":1,"a":2}"#]).assert_error(1, "\"a\"");
    assert!(line.contains("more than once"), "{line}");
    s.run(["put", "notes", "b.md", "--text", "x", "--meta", r#"{"n":{"b":1,"b":2}}"#]).assert_error(1, "more than once");
    s.run(["put", "notes", "b.md", "--text", "x", "--meta", r#"{"a":1}"#, "--meta", r#"{"a":2}"#]).assert_code(2).assert_no_panic();
    s.write("in/c.md", "c");
    s.run(["add", "notes", "in", "--meta", r#"{"a":1,"a":2}"#]).assert_error(1, "more than once");
    s.run(["get", "notes", "b.md"]).assert_code(1);
}

#[test]
fn where_with_double_equals_is_refused() {
    let s = TestStore::with_note("alpha beta gamma");
    let line = s.run(["ls", "notes", "--where", "lang==en"]).assert_error(1, "`==` is not an operator");
    assert!(line.contains("at column 5") && line.contains("(lang=en)"), "{line}");
    s.run(["search", "notes", "alpha", "--where", "lang==en"]).assert_error(1, "`==` is not an operator");
}

#[test]
fn where_in_without_values_says_the_list_is_missing() {
    let s = TestStore::with_note("alpha beta gamma");
    let line = s.run(["ls", "notes", "--where", "lang in"]).assert_error(1, "value list");
    assert!(line.contains("lang in en,fr"), "{line}");
}

#[test]
fn since_out_of_range_is_refused() {
    let s = TestStore::with_note("alpha beta gamma");
    for age in ["99999999999d", "99999999999999999999d", "9999999999999w"] {
        let line = s.run(["ls", "notes", "--since", age]).assert_error(1, "out of range");
        assert!(line.contains(age), "{line}");
    }
    assert_eq!(s.json(["ls", "notes", "--since", "7d"])["total"], 1);
}

#[test]
fn the_program_is_also_colstore_and_names_itself_so() {
    let dir = tempfile::tempdir().unwrap();
    let colstore = dir.path().join("colstore");
    std::os::unix::fs::symlink(col_bin(), &colstore).unwrap();
    let mut cmd = std::process::Command::new(&colstore);
    let out = output_of(cmd.arg("--help"), None);
    out.assert_ok();
    assert!(out.stdout.contains("Usage: colstore "), "{out}");
    let manifest = std::fs::read_to_string(colstore_e2e::workspace_root().join("crates/colstore-cli/Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"colstore\""), "colstore-cli installs a `colstore` binary too");
}

#[test]
fn every_command_help_has_examples() {
    fn walk(path: &mut Vec<String>, missing: &mut Vec<String>) {
        let out = output_of(std::process::Command::new(col_bin()).args(path.iter()).arg("--help"), None);
        out.assert_ok();
        if !out.stdout.contains("Examples:\n  col ") {
            missing.push(path.join(" "));
        }
        // The "Commands:" section lists the subcommands, one per line, until an empty line.
        let subs: Vec<String> = out
            .stdout
            .split("\nCommands:\n")
            .nth(1)
            .map(|rest| {
                rest.lines()
                    .take_while(|l| !l.trim().is_empty())
                    .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
                    .filter_map(|l| l.split_whitespace().next())
                    .filter(|n| *n != "help")
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for sub in subs {
            path.push(sub);
            walk(path, missing);
            path.pop();
        }
    }
    let mut missing = Vec::new();
    walk(&mut Vec::new(), &mut missing);
    assert!(missing.is_empty(), "--help without examples: {missing:?}");
}

#[test]
fn demo_wording() {
    let out = colstore_e2e::run(["demo"]);
    out.assert_ok();
    let o = &out.stdout;
    assert!(!o.contains(" 1 calls"), "{o}");
    assert!(o.contains("embedded in 1 call"), "{o}");
    assert!(!o.contains("COLLECTION ACTION"), "{o}");
    assert!(o.contains("identical to another chunk"), "the chunk that was not embedded is explained: {o}");
    assert!(o.contains("reciprocal rank fusion"), "the scores are explained: {o}");
}

#[test]
fn reconcile_force_says_what_it_did() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "n"]);
    s.ok(["put", "n", "a.md", "--text", "alpha"]);
    s.ok(["put", "n", "b.md", "--text", "beta"]);
    s.ok(["reconcile"]);
    std::fs::remove_file(s.docs("n").join("a.md")).unwrap();
    std::fs::remove_file(s.docs("n").join("b.md")).unwrap();
    let refused = s.run(["reconcile", "n"]);
    refused.assert_code(1);
    assert!(refused.stdout.contains("refused without --force"), "{refused}");
    let forced = s.ok(["reconcile", "n", "--force"]);
    assert!(!forced.stdout.contains("refused"), "{forced}");
    assert!(forced.stdout.contains("--force"), "{forced}");
}
