//! Everyday rough edges of issue 11: a file edited outside colstore must not break `search` or make `get` print and
//! then fail; `clear` must take the cleared documents out of search; Ctrl-C during `add` says what was written and
//! leaves no staged files (and strays are removed when the store opens); the README's front-matter example works.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use colstore_e2e::{Output, TestStore};
use serde_json::Value;

use crate::keys;

/// The keys and `stale` flags of a `col --json search` answer, in order.
fn hits(v: &Value) -> Vec<(String, bool)> {
    v["results"]
        .as_array()
        .expect("results is an array")
        .iter()
        .map(|h| (h["key"].as_str().expect("a key").to_owned(), h["stale"].as_bool().expect("a stale flag")))
        .collect()
}

/// Every `.colstore-tmp-*` file under `dir`.
fn staged_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            } else if e.file_name().to_string_lossy().starts_with(".colstore-tmp-") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_file_edited_outside_colstore_marks_its_hit_and_search_still_succeeds() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "apples grow in the orchard behind the house"]);
    s.ok(["put", "notes", "b.md", "--text", "apples and pears are sold at the market"]);
    s.ok(["sync"]);
    std::fs::write(s.docs("notes").join("a.md"), "a note about something else entirely").unwrap();

    let out = s.run(["search", "notes", "apples orchard"]);
    out.assert_ok();
    assert!(out.stdout.lines().any(|l| l.contains("a.md#0") && l.ends_with("[changed since synced]")), "{out}");
    assert!(out.stdout.contains("note: 1 hit(s) come from documents changed since they were synced; run `col sync notes`"), "{out}");
    let v = s.json(["search", "notes", "apples orchard"]);
    let mut got = hits(&v);
    got.sort();
    assert_eq!(got, [("a.md".to_owned(), true), ("b.md".to_owned(), false)]);

    // After the next sync (which reconciles first) nothing is stale any more.
    s.ok(["sync"]);
    assert!(hits(&s.json(["search", "notes", "apples orchard"])).iter().all(|(_, stale)| !stale));
}

#[test]
fn get_of_a_file_edited_outside_colstore_prints_the_file_with_a_warning_and_succeeds() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "original"]);
    std::fs::write(s.docs("notes").join("a.md"), "edited in another editor\n").unwrap();

    let out = s.run(["get", "notes", "a.md"]);
    out.assert_ok();
    assert_eq!(out.stdout, "edited in another editor\n");
    assert!(
        out.stderr.contains("warning: notes/a.md was changed outside colstore since the last reconcile")
            && out.stderr.contains("run `col reconcile notes`"),
        "{out}"
    );

    let target = s.path().join("out.md");
    let out = s.run(["get", "notes", "a.md", "-o", target.to_str().unwrap()]);
    out.assert_ok();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "edited in another editor\n");
    assert!(out.stderr.contains("warning: notes/a.md was changed outside colstore"), "{out}");

    // A file that is gone prints nothing and fails clearly.
    std::fs::remove_file(s.docs("notes").join("a.md")).unwrap();
    let out = s.run(["get", "notes", "a.md"]);
    out.assert_error(1, "is missing");
    assert_eq!(out.stdout, "", "nothing may be printed before an error");
}

#[test]
fn search_after_clear_finds_none_of_the_cleared_documents() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "the quick brown fox jumps over the lazy dog"]);
    s.ok(["put", "notes", "b.md", "--text", "a brown fox sleeps under the old oak tree"]);
    s.ok(["sync"]);
    assert_eq!(hits(&s.json(["search", "notes", "brown fox"])).len(), 2);

    let v = s.json(["clear", "notes", "--yes"]);
    assert_eq!((v["documents_deleted"].as_u64(), v["points_retired"].as_u64()), (Some(2), Some(2)), "{v}");
    assert_eq!(hits(&s.json(["search", "notes", "brown fox"])), []);
    let out = s.ok(["search", "notes", "brown fox"]);
    assert!(out.stdout.contains("No results"), "{out}");
    // The ledger agrees with the index: nothing is left to retire.
    s.ok(["verify", "--index"]);
    let st = s.json(["status", "notes"]);
    assert_eq!(st["collections"][0]["pending"].as_u64(), Some(0), "{st}");
}

#[test]
fn search_hides_documents_deleted_since_the_last_sync() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "the quick brown fox jumps over the lazy dog"]);
    s.ok(["put", "notes", "b.md", "--text", "a brown fox sleeps under the old oak tree"]);
    s.ok(["sync"]);
    s.ok(["rm", "notes", "a.md", "--no-backup"]);
    assert_eq!(hits(&s.json(["search", "notes", "quick brown fox", "-k", "1"])), [("b.md".to_owned(), false)]);
}

#[test]
fn ctrl_c_during_add_says_what_was_written_and_leaves_no_staged_files() {
    const FILES: usize = 3000;
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    for i in 0..FILES {
        s.write(format!("many/{i:04}.txt"), format!("small file {i}\n"));
    }
    let mut add = s.cmd(["add", "notes", "many"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Wait until the first batch is in place, then press Ctrl-C.
    let folder = s.docs("notes");
    let started = Instant::now();
    loop {
        let written = std::fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| !e.file_name().to_string_lossy().starts_with(".colstore-tmp-"));
        if written {
            break;
        }
        assert!(add.try_wait().unwrap().is_none(), "`col add` ended before any file was written");
        // A hang guard, not a speed bound: the harness's limit for one command.
        assert!(started.elapsed() < colstore_e2e::COMMAND_TIMEOUT, "`col add` wrote nothing within {:?}", colstore_e2e::COMMAND_TIMEOUT);
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our own running child.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(add.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let started = Instant::now();
    while add.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < colstore_e2e::COMMAND_TIMEOUT, "`col add` did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (mut stdout, mut stderr) = (String::new(), String::new());
    add.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    add.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let out =
        Output::from_std(std::process::Output { status: add.wait().unwrap(), stdout: stdout.into_bytes(), stderr: stderr.into_bytes() });

    out.assert_error(130, "interrupted by Ctrl-C: ");
    assert!(out.stderr.contains("interrupted: finishing the batches being written"), "{out}");
    let line = out.stdout.lines().find(|l| l.starts_with("Interrupted: ")).unwrap_or_else(|| panic!("no summary\n{out}"));
    let added: u64 = line["Interrupted: ".len()..].split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
    assert!(line.contains(&format!(" of {FILES} files were added to notes before Ctrl-C: {added} new")), "{out}");
    assert!(added > 0 && added < FILES as u64, "the add was not interrupted in the middle: {out}");

    // What the summary says is what the store holds, and no staged file is left behind.
    assert_eq!(s.json(["ls", "notes", "--limit", "1"])["total"].as_u64(), Some(added));
    assert_eq!(staged_files(&s.colstore_dir()), Vec::<String>::new());
    s.ok(["verify"]);
    // Running the same add again finishes the job.
    let v = s.json(["add", "notes", "many"]);
    assert_eq!(
        (v["created"].as_u64(), v["unchanged"].as_u64(), v["interrupted"].as_bool()),
        (Some(FILES as u64 - added), Some(added), Some(false))
    );
}

#[test]
fn stray_staged_files_are_removed_when_the_store_opens() {
    let s = TestStore::filesystem();
    s.ok(["collection", "create", "notes"]);
    s.ok(["put", "notes", "a.md", "--text", "kept"]);
    let stray = s.docs("notes").join(".colstore-tmp-xyz");
    std::fs::write(&stray, "half of an interrupted write").unwrap();
    let other = s.docs("notes").join("colstore-tmp-not-ours.txt");
    std::fs::write(&other, "a file of the user's").unwrap();

    assert_eq!(keys(&s.json(["ls", "notes"])), ["a.md"]);
    assert!(!stray.exists(), "the stray staged file is still there");
    assert!(other.exists(), "a file that is not a staged file was removed");
    assert_eq!(std::fs::read_to_string(s.docs("notes").join("a.md")).unwrap(), "kept");
}

/// The README's example: `col add notes ~/notes`, then `col ls notes --where lang=en`.
#[test]
fn front_matter_of_markdown_files_becomes_metadata_on_add() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    s.write("notes/ideas/2024.md", "---\ntitle: Ideas for 2024\nlang: en\nyear: 2024\ntags: [plans, work]\n---\n# Ideas\n");
    s.write("notes/de.md", "---\nlang: de\n---\n# Notizen\n");
    s.write("notes/plain.md", "# No front matter\n\n---\n\nlang: en\n");
    s.write("notes/broken.md", "---\nlang: [en\n---\n# Broken\n");
    s.write("notes/data.txt", "---\nlang: en\n---\n");

    let out = s.run(["add", "notes", "notes"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("broken.md: its front matter was not read (line ") && out.stderr.contains("the file was added without it"),
        "{out}"
    );
    assert_eq!(keys(&s.json(["ls", "notes", "--where", "lang=en"])), ["ideas/2024.md"]);
    assert_eq!(keys(&s.json(["ls", "notes", "--where", "year>=2024"])), ["ideas/2024.md"]);
    assert_eq!(keys(&s.json(["ls", "notes", "--where", "tags=work"])), ["ideas/2024.md"]);
    assert_eq!(keys(&s.json(["ls", "notes"])), ["broken.md", "data.txt", "de.md", "ideas/2024.md", "plain.md"]);
    let doc = s.json(["get", "notes", "ideas/2024.md", "--meta-only"]);
    assert_eq!(doc["metadata"]["title"], "Ideas for 2024", "{doc}");

    // --meta wins over the front matter for the keys it names.
    s.ok(["add", "notes", "notes", "--meta", r#"{"lang":"fr"}"#]);
    assert_eq!(keys(&s.json(["ls", "notes", "--where", "lang=en"])), Vec::<String>::new());
    let doc = s.json(["get", "notes", "ideas/2024.md", "--meta-only"]);
    assert_eq!((doc["metadata"]["lang"].as_str(), doc["metadata"]["year"].as_u64()), (Some("fr"), Some(2024)), "{doc}");

    // --no-front-matter turns it off.
    s.ok(["collection", "create", "raw"]);
    s.ok(["add", "raw", "notes", "--no-front-matter"]);
    assert_eq!(keys(&s.json(["ls", "raw", "--where", "lang=en"])), Vec::<String>::new());
}
