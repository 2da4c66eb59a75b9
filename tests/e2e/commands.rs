//! Every command end to end, human and `--json` output, with snapshots of the redacted transcripts and assertions on
//! what the commands did to the store.

use colstore_e2e::{TestStore, run};
use insta::assert_snapshot;
use serde_json::json;

use crate::{keys, sha256_hex};

/// A store with collection `c`.
fn store_with_collection() -> TestStore {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s
}

#[test]
fn init_human_and_json() {
    let s = TestStore::uninitialised();
    let t = s.transcript(&[&["init"]]);
    assert_snapshot!("init_human", t);
    assert!(s.colstore_dir().join("config.toml").is_file());
    assert!(s.colstore_dir().join("colstore.db").is_file());

    let other = TestStore::uninitialised();
    let out = other.run(["--json", "init"]);
    out.assert_ok();
    let v = out.json();
    let id = v["store_id"].as_str().expect("store_id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_ne!(id, s.ok(["--json", "init", "second"]).json()["store_id"], "every store gets its own id");
    let config = std::fs::read_to_string(other.colstore_dir().join("config.toml")).unwrap();
    assert!(config.contains(id), "config.toml records the store id");
    assert_snapshot!("init_json", other.redact(&out.stdout));

    // The new store works right away.
    other.ok(["collection", "create", "x"]);
    assert_eq!(other.json(["collection", "list"])["collections"][0]["name"], "x");
}

#[test]
fn init_in_the_working_directory_and_discovery_upward() {
    let s = TestStore::uninitialised();
    let project = s.path().join("proj");
    std::fs::create_dir_all(project.join("sub/deep")).unwrap();
    colstore_e2e::output_of(colstore_e2e::col().arg("init").current_dir(&project), None).assert_ok();
    assert!(project.join(".colstore/config.toml").is_file());
    // No --store: the store is found from a subdirectory, like git.
    let out =
        colstore_e2e::output_of(colstore_e2e::col().args(["collection", "create", "found"]).current_dir(project.join("sub/deep")), None);
    out.assert_ok();
    // COLSTORE_DIR is honoured too.
    let out = colstore_e2e::output_of(
        colstore_e2e::col().args(["--json", "collection", "list"]).env("COLSTORE_DIR", &project).current_dir(s.path()),
        None,
    );
    out.assert_ok();
    assert_eq!(out.json()["collections"][0]["name"], "found");
}

#[test]
fn collection_create_list_show_delete() {
    let s = TestStore::new();
    let t = s.transcript(&[
        &["collection", "list"],
        &["--json", "collection", "list"],
        &["collection", "create", "notes"],
        &["--json", "collection", "create", "papers"],
        &["collection", "list"],
        &["--json", "collection", "list"],
    ]);
    assert_snapshot!("collection_create_list", t);

    s.ok(["put", "notes", "a.md", "--text", "alpha"]);
    s.ok(["put", "notes", "b.md", "--text", "bravo"]);
    let t = s.transcript(&[&["collection", "show", "notes"], &["--json", "collection", "show", "notes"]]);
    assert_snapshot!("collection_show", t);

    // Dry runs change nothing.
    let before = s.fingerprint();
    let t = s.transcript(&[&["collection", "delete", "notes", "--dry-run"], &["--json", "collection", "delete", "notes", "--dry-run"]]);
    assert_snapshot!("collection_delete_dry_run", t);
    assert_eq!(s.fingerprint(), before, "a dry run changed the store");

    // A real delete takes a safety copy, and says where it is.
    let out = s.ok(["collection", "delete", "notes", "--yes"]);
    let copy = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("A safety copy of the database before the delete is at "))
        .expect("names the safety copy");
    assert!(std::path::Path::new(copy).is_file(), "the safety copy {copy} exists");
    let out_json = s.run(["--json", "collection", "delete", "papers", "--yes"]);
    out_json.assert_ok();
    let v = out_json.json();
    assert_eq!((v["documents_deleted"].as_u64(), v["dry_run"].as_bool()), (Some(0), Some(false)));
    assert!(std::path::Path::new(v["safety_copy"].as_str().unwrap()).is_file());
    assert_snapshot!(
        "collection_delete",
        s.redact(
            &(colstore_e2e::render(&["collection", "delete", "notes", "--yes"], &out)
                + &colstore_e2e::render(&["--json", "collection", "delete", "papers", "--yes"], &out_json))
        )
    );
    assert_eq!(s.json(["collection", "list"])["collections"], json!([]));
    s.run(["ls", "notes"]).assert_error(1, "collection \"notes\" not found");
    // The name is free again; the new collection is empty.
    s.ok(["collection", "create", "notes"]);
    assert_eq!(s.json(["ls", "notes"])["total"], 0);
}

#[test]
fn put_from_file_stdin_text_with_meta_and_tags() {
    let s = store_with_collection();
    s.write("files/ideas.md", "# Ideas\n\n- more tests\n");
    let out = s.run_stdin(["put", "c", "from-stdin.txt", "-"], b"piped content\n");
    out.assert_ok();
    let t = s.transcript(&[
        &["put", "c", "ideas.md", "files/ideas.md"],
        &[
            "--json",
            "put",
            "c",
            "notes/todo.md",
            "--text",
            "buy milk",
            "--meta",
            r#"{"lang":"en","year":2024}"#,
            "--tag",
            "home",
            "--tag",
            "todo",
        ],
        &["put", "c", "ideas.md", "files/ideas.md"],
        &["--json", "put", "c", "ideas.md", "files/ideas.md"],
        &["put", "c", "ideas.md", "--text", "# Ideas, revised"],
        &["--json", "put", "c", "ideas.md", "--text", "# Ideas, revised twice"],
        &["put", "c", "notes/todo.md", "--text", "buy milk", "--meta", r#"{"lang":"en","year":2024}"#, "--tag", "home"],
    ]);
    assert_snapshot!("put", colstore_e2e::render(&["put", "c", "from-stdin.txt", "-"], &out) + &t);

    let ls = s.json(["ls", "c"]);
    assert_eq!(keys(&ls), ["from-stdin.txt", "ideas.md", "notes/todo.md"]);
    let doc = |k: &str| ls["documents"].as_array().unwrap().iter().find(|d| d["key"] == k).unwrap().clone();
    assert_eq!(doc("from-stdin.txt")["content_hash"], sha256_hex(b"piped content\n"));
    assert_eq!(doc("ideas.md")["version"], 3, "created, unchanged twice, updated twice");
    assert_eq!(doc("ideas.md")["content_hash"], sha256_hex(b"# Ideas, revised twice"));
    // Changing only the tags is an update too.
    assert_eq!(doc("notes/todo.md")["version"], 2);
    assert_eq!(doc("notes/todo.md")["tags"], json!(["home"]));
    assert_eq!(doc("notes/todo.md")["metadata"], json!({"lang": "en", "year": 2024}));
    assert_eq!(s.ok(["get", "c", "from-stdin.txt"]).stdout, "piped content\n");
}

/// The example in `col put --help` must work as printed: `--text '- buy milk'` is text that starts with a dash.
#[test]
fn put_help_example_with_text_starting_with_a_dash_works() {
    let s = TestStore::new();
    s.ok(["collection", "create", "notes"]);
    let help = s.ok(["put", "--help"]).stdout;
    assert!(help.contains("--text '- buy milk'"), "the example is in the help:\n{help}");
    let out = s.run(["put", "notes", "todo.md", "--text", "- buy milk", "--meta", r#"{"lang":"en"}"#, "--tag", "home"]);
    assert_eq!(out.code, 0, "the help example `col put notes todo.md --text '- buy milk' ...` fails:\n{out}");
    assert_eq!(s.ok(["get", "notes", "todo.md"]).stdout, "- buy milk");
}

#[test]
fn put_reads_large_and_binary_content_exactly() {
    let s = store_with_collection();
    // Above the 1 MiB streaming threshold, with every byte value.
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 7).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    s.write("big.bin", &big);
    let v = s.json(["put", "c", "big.bin", "big.bin"]);
    assert_eq!((v["size"].as_u64(), v["content_hash"].as_str()), (Some(big.len() as u64), Some(sha256_hex(&big).as_str())));
    let v = s.ok(["--json", "put", "c", "big-stdin.bin", "-"]).json();
    assert_eq!(v["size"], 0, "stdin was closed, so this is an empty document");
    let out = s.run_stdin(["--json", "put", "c", "big-stdin.bin", "-"], &big);
    out.assert_ok();
    assert_eq!(out.json()["content_hash"], sha256_hex(&big));
    s.ok(["get", "c", "big-stdin.bin", "-o", "back.bin"]);
    assert!(std::fs::read(s.path().join("back.bin")).unwrap() == big, "get -o returns the exact bytes");
    s.ok(["verify"]);
}

#[test]
fn get_content_meta_only_json_and_output_file() {
    let s = store_with_collection();
    s.ok(["put", "c", "notes/a.md", "--text", "alpha\nbeta\n", "--meta", r#"{"lang":"en","n":1}"#, "--tag", "x"]);
    let t = s.transcript(&[
        &["get", "c", "notes/a.md"],
        &["get", "c", "notes/a.md", "--meta-only"],
        &["--json", "get", "c", "notes/a.md"],
        &["--json", "get", "c", "notes/a.md", "--meta-only"],
        &["get", "c", "missing.md"],
    ]);
    assert_snapshot!("get", t);
    // `-o` writes the file atomically (a missing folder is tested below).
    std::fs::create_dir(s.path().join("out")).unwrap();
    let out = s.run(["get", "c", "notes/a.md", "-o", "out/a.md"]);
    out.assert_ok();
    assert_eq!(out.stdout, "", "-o writes nothing to stdout");
    assert_eq!(std::fs::read_to_string(s.path().join("out/a.md")).unwrap(), "alpha\nbeta\n");
    let names: Vec<_> = std::fs::read_dir(s.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["a.md"], "no temp file is left next to the output");
    // Overwriting an existing file works.
    s.ok(["put", "c", "notes/a.md", "--text", "v2"]);
    s.ok(["get", "c", "notes/a.md", "--output", "out/a.md"]);
    assert_eq!(std::fs::read_to_string(s.path().join("out/a.md")).unwrap(), "v2");
}

/// `get -o` into a folder that does not exist must name the file the user asked for, not the CLI's internal temp
/// file (PRODUCT §11: errors say what and where).
#[test]
fn get_output_into_a_missing_folder_names_the_users_path() {
    let s = store_with_collection();
    s.ok(["put", "c", "a.md", "--text", "alpha"]);
    let out = s.run(["get", "c", "a.md", "-o", "nowhere/a.md"]);
    out.assert_error(1, "cannot write");
    assert!(!out.stderr.contains(".col-tmp-"), "the message names an internal temp file instead of nowhere/a.md:\n{out}");
    assert!(out.stderr.contains("nowhere/a.md"), "the message does not name nowhere/a.md:\n{out}");
}

#[test]
fn rm_dry_run_real_and_missing_keys() {
    let s = store_with_collection();
    for k in ["a.md", "b.md", "c.md"] {
        s.ok(["put", "c", k, "--text", k]);
    }
    let before = s.fingerprint();
    let t = s.transcript(&[&["rm", "c", "a.md", "nope.md", "--dry-run"], &["--json", "rm", "c", "a.md", "nope.md", "--dry-run"]]);
    assert_snapshot!("rm_dry_run", t);
    assert_eq!(s.fingerprint(), before, "rm --dry-run changed the store");

    let human = s.run(["rm", "c", "a.md"]);
    human.assert_ok();
    let json_out = s.run(["--json", "rm", "c", "b.md"]);
    json_out.assert_ok();
    let copy = json_out.json()["safety_copy"].as_str().expect("a safety copy path").to_owned();
    assert!(std::path::Path::new(&copy).is_file(), "the safety copy {copy} exists");
    assert_eq!(keys(&s.json(["ls", "c"])), ["c.md"]);

    // A missing key: exit 1, and the keys that exist are still deleted.
    s.ok(["put", "c", "d.md", "--text", "d"]);
    let missing = s.run(["rm", "c", "d.md", "nope.md"]);
    let missing_json = s.run(["--json", "rm", "c", "nope.md"]);
    assert_snapshot!(
        "rm",
        s.redact(
            &(colstore_e2e::render(&["rm", "c", "a.md"], &human)
                + &colstore_e2e::render(&["--json", "rm", "c", "b.md"], &json_out)
                + &colstore_e2e::render(&["rm", "c", "d.md", "nope.md"], &missing)
                + &colstore_e2e::render(&["--json", "rm", "c", "nope.md"], &missing_json))
        )
    );
    missing.assert_error(1, "not found in collection \"c\": nope.md");
    assert!(missing.hint().is_some_and(|h| h.contains("col ls c")), "{missing}");
    assert_eq!(missing.stdout, "deleted c/d.md\n");
    missing_json.assert_error(1, "nope.md");
    assert_eq!(missing_json.json()["missing"], json!(["nope.md"]));
    assert_eq!(keys(&s.json(["ls", "c"])), ["c.md"]);
}

/// Only the newest safety copies are kept, so an `rm` that deletes nothing (every key missing) must not take one:
/// a few mistyped keys would otherwise push out the copy taken before a real delete.
#[test]
fn rm_of_only_missing_keys_keeps_earlier_safety_copies() {
    let s = store_with_collection();
    s.ok(["put", "c", "precious.md", "--text", "precious"]);
    let copy = s.json(["rm", "c", "precious.md"])["safety_copy"].as_str().expect("a safety copy").to_owned();
    for _ in 0..6 {
        s.run(["rm", "c", "typo.md"]).assert_error(1, "not found in collection \"c\": typo.md");
    }
    let copies: Vec<_> = std::fs::read_dir(s.colstore_dir().join("safety")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(
        std::path::Path::new(&copy).is_file(),
        "the safety copy taken before deleting precious.md was rotated out by rm commands that deleted nothing; left: {copies:?}"
    );
}

/// Documents for the `ls` tests: metadata, tags, sizes and prefixes that the filters tell apart.
fn ls_store() -> TestStore {
    let s = store_with_collection();
    s.ok(["put", "c", "en/a.md", "--text", "alpha", "--meta", r#"{"lang":"en","year":1999}"#, "--tag", "draft"]);
    s.ok(["put", "c", "en/b.md", "--text", "bravo bravo", "--meta", r#"{"lang":"en","year":2021}"#, "--tag", "draft", "--tag", "pub"]);
    s.ok(["put", "c", "fr/c.md", "--text", "charlie charlie charlie", "--meta", r#"{"lang":"fr","year":2024}"#, "--tag", "pub"]);
    s.ok(["put", "c", "notes.txt", "--text", "d"]);
    s.write("big.bin", vec![7u8; 5000]);
    s.ok(["put", "c", "big.bin", "big.bin"]);
    s
}

#[test]
fn ls_filters_sort_and_paging() {
    let s = ls_store();
    let all = ["big.bin", "en/a.md", "en/b.md", "fr/c.md", "notes.txt"];
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &all),
        (&["--tag", "pub"], &["en/b.md", "fr/c.md"]),
        (&["--tag", "draft", "--tag", "pub"], &["en/b.md"]),
        (&["--where", "lang=en"], &["en/a.md", "en/b.md"]),
        (&["--where", "lang!=en"], &["big.bin", "fr/c.md", "notes.txt"]),
        (&["--where", "year>2000"], &["en/b.md", "fr/c.md"]),
        (&["--where", "year<=2021", "--where", "lang=en"], &["en/a.md", "en/b.md"]),
        (&["--where", "lang in fr,de"], &["fr/c.md"]),
        (&["--where", "year exists"], &["en/a.md", "en/b.md", "fr/c.md"]),
        (&["--where", "year missing"], &["big.bin", "notes.txt"]),
        (&["--where", "lang=en and (tag:pub or year<2000)"], &["en/a.md", "en/b.md"]),
        (&["--where", "tag:pub and not lang=en"], &["fr/c.md"]),
        (&["--where", "key:en/ or year>=2024"], &["en/a.md", "en/b.md", "fr/c.md"]),
        (&["--where", "not (tag:draft or tag:pub)"], &["big.bin", "notes.txt"]),
        (&["--where", "created:>=1h and updated:<2999-01-01 and year missing"], &["big.bin", "notes.txt"]),
        (&["--where", "LANG=en OR lang=\"fr\""], &["fr/c.md"]),
        (&["--prefix", "en/"], &["en/a.md", "en/b.md"]),
        (&["--sort", "size", "--desc"], &["big.bin", "fr/c.md", "en/b.md", "en/a.md", "notes.txt"]),
        (&["--sort", "size"], &["notes.txt", "en/a.md", "en/b.md", "fr/c.md", "big.bin"]),
        (&["--sort", "key", "--desc"], &["notes.txt", "fr/c.md", "en/b.md", "en/a.md", "big.bin"]),
        (&["--limit", "2", "--offset", "1"], &["en/a.md", "en/b.md"]),
        (&["--sort", "size", "--desc", "--limit", "2"], &["big.bin", "fr/c.md"]),
        (&["--offset", "4"], &["notes.txt"]),
        (&["--offset", "10"], &[]),
        (&["--since", "1h"], &all),
        (&["--since", "2000-01-01"], &all),
        (&["--until", "1h"], &[]),
        (&["--since", "2999-01-01"], &[]),
    ];
    for (args, expected) in cases {
        let mut full = vec!["ls", "c"];
        full.extend_from_slice(args);
        let v = s.json(&full);
        assert_eq!(keys(&v), *expected, "col ls c {}", args.join(" "));
        let paged = args.contains(&"--limit") || args.contains(&"--offset");
        if !paged {
            assert_eq!(v["total"], expected.len(), "total of col ls c {}", args.join(" "));
        } else {
            assert_eq!(v["total"], 5, "total ignores paging: col ls c {}", args.join(" "));
        }
    }

    let t = s.transcript(&[
        &["ls", "c"],
        &["ls", "c", "--tag", "pub"],
        &["ls", "c", "--where", "lang=en"],
        &["ls", "c", "--where", "year>2000"],
        &["ls", "c", "--prefix", "en/"],
        &["ls", "c", "--sort", "size", "--desc"],
        &["ls", "c", "--limit", "2", "--offset", "1"],
        &["ls", "c", "--since", "1h"],
        &["ls", "c", "--since", "2999-01-01"],
        &["ls", "c", "--offset", "10"],
        &["-q", "ls", "c", "--prefix", "fr/"],
    ]);
    assert_snapshot!("ls_human", t);
    let t =
        s.transcript(&[&["--json", "ls", "c", "--where", "year>2000", "--limit", "1"], &["--json", "ls", "c", "--since", "2999-01-01"]]);
    assert_snapshot!("ls_json", t);
}

/// `--after` pages by cursor in every sort: the pages concatenate to the listing, a document added behind the cursor
/// shifts nothing, and a cursor used with another sort or damaged is refused with what to do.
#[test]
fn ls_pages_by_cursor() {
    let s = ls_store();
    for sort in [
        &["--sort", "key"][..],
        &["--sort", "size", "--desc"],
        &["--sort", "updated"],
        &["--where", "not tag:draft", "--sort", "created", "--desc"],
    ] {
        let full: Vec<String> = keys(&s.json(["ls", "c"].iter().copied().chain(sort.iter().copied()).collect::<Vec<_>>()));
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..10 {
            let mut args: Vec<&str> = vec!["ls", "c", "--limit", "2"];
            args.extend_from_slice(sort);
            if let Some(a) = &after {
                args.extend(["--after", a.as_str()]);
            }
            let v = s.json(&args);
            walked.extend(keys(&v));
            match v["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(walked, full, "pages of 2 with {sort:?}");
    }
    let first = s.json(["ls", "c", "--limit", "2"]);
    let next = first["next"].as_str().expect("a next cursor").to_owned();
    assert_eq!(keys(&first), ["big.bin", "en/a.md"]);
    s.ok(["put", "c", "a-first.md", "--text", "new"]);
    assert_eq!(
        keys(&s.json(["ls", "c", "--limit", "2", "--after", &next])),
        ["en/b.md", "fr/c.md"],
        "a write behind the cursor shifts nothing"
    );
    s.run(["ls", "c", "--sort", "size", "--after", &next]).assert_error(1, "page with the same --sort and --desc");
    s.run(["ls", "c", "--after", "c1.ka.0.zz"]).assert_error(1, "copy it whole");
    let next = s.json(["ls", "c", "--limit", "2"])["next"].as_str().expect("a next cursor").to_owned();
    let out = s.run(["ls", "c", "--limit", "2"]);
    assert!(out.stdout.contains(&format!("add --after {next}")) || out.stderr.contains(&format!("add --after {next}")), "{out}");
}

/// A bad `--where` says at which column what was expected, for `col ls` and `col search` alike, and changes nothing.
#[test]
fn filter_errors_say_where() {
    let s = ls_store();
    for cmd in [&["ls", "c"][..], &["search", "c", "alpha"]] {
        let mut args = cmd.to_vec();
        args.extend(["--where", "lang=en and (year>"]);
        let out = s.run(&args);
        out.assert_error(1, "at column 19: expected a value after `>`");
        assert!(out.stderr.contains("col ls --help"), "{out}");
        let mut args = cmd.to_vec();
        args.extend(["--where", "title=two words"]);
        s.run(&args).assert_error(1, "quote a value that has spaces");
    }
}

/// A folder with nested directories, a duplicate, a VCS folder and a symbolic link.
fn add_tree(s: &TestStore) {
    s.write("docs/readme.md", "# Readme\n");
    s.write("docs/guide/intro.md", "intro\n");
    s.write("docs/guide/deep/er/details.md", "details\n");
    s.write("docs/guide/deep/er/copy-of-intro.md", "intro\n");
    s.write("docs/drafts/wip.md", "work in progress\n");
    s.write("docs/data/table.csv", "a,b\n1,2\n");
    s.write("docs/.git/config", "[core]\n");
    std::os::unix::fs::symlink("/etc/hostname", s.path().join("docs/link.md")).unwrap();
}

#[test]
fn add_recursive_include_exclude_dry_run_readd_create() {
    let s = store_with_collection();
    add_tree(&s);

    let before = s.fingerprint();
    let dry = s.run(["add", "c", "docs", "--dry-run"]);
    dry.assert_ok();
    let dry_json = s.run(["--json", "add", "c", "docs", "--dry-run"]);
    dry_json.assert_ok();
    assert_eq!(s.fingerprint(), before, "add --dry-run changed the store");

    let first = s.run(["add", "c", "docs"]);
    first.assert_ok();
    let expected =
        ["data/table.csv", "drafts/wip.md", "guide/deep/er/copy-of-intro.md", "guide/deep/er/details.md", "guide/intro.md", "readme.md"];
    let ls = s.json(["ls", "c"]);
    assert_eq!(keys(&ls), expected, ".git and symbolic links are skipped, nested folders become key paths");
    for d in ls["documents"].as_array().unwrap() {
        let src = std::fs::read(s.path().join("docs").join(d["key"].as_str().unwrap())).unwrap();
        assert_eq!((d["content_hash"].as_str().unwrap(), d["size"].as_u64().unwrap()), (sha256_hex(&src).as_str(), src.len() as u64));
    }

    let after_first = s.fingerprint();
    let again = s.run(["add", "c", "docs"]);
    again.assert_ok();
    let again_json = s.run(["--json", "add", "c", "docs"]);
    again_json.assert_ok();
    assert_eq!(s.fingerprint(), after_first, "re-adding unchanged files changed the store");

    let filtered = s.run(["add", "f", "docs", "--create", "--include", "**/*.md", "--exclude", "drafts/**"]);
    filtered.assert_ok();
    assert_eq!(keys(&s.json(["ls", "f"])), ["guide/deep/er/copy-of-intro.md", "guide/deep/er/details.md", "guide/intro.md", "readme.md"]);
    let prefixed = s.run([
        "add",
        "p",
        "docs/readme.md",
        "docs/guide",
        "--create",
        "--prefix",
        "imported/",
        "--tag",
        "imp",
        "--meta",
        r#"{"src":"docs"}"#,
    ]);
    prefixed.assert_ok();
    let ls = s.json(["ls", "p"]);
    assert_eq!(keys(&ls), ["imported/deep/er/copy-of-intro.md", "imported/deep/er/details.md", "imported/intro.md", "imported/readme.md"]);
    assert!(ls["documents"].as_array().unwrap().iter().all(|d| d["tags"] == json!(["imp"]) && d["metadata"] == json!({"src": "docs"})));

    let mut t = String::new();
    for (args, out) in [
        (&["add", "c", "docs", "--dry-run"][..], &dry),
        (&["--json", "add", "c", "docs", "--dry-run"], &dry_json),
        (&["add", "c", "docs"], &first),
        (&["add", "c", "docs"], &again),
        (&["--json", "add", "c", "docs"], &again_json),
        (&["add", "f", "docs", "--create", "--include", "**/*.md", "--exclude", "drafts/**"], &filtered),
        (
            &[
                "add",
                "p",
                "docs/readme.md",
                "docs/guide",
                "--create",
                "--prefix",
                "imported/",
                "--tag",
                "imp",
                "--meta",
                r#"{"src":"docs"}"#,
            ],
            &prefixed,
        ),
    ] {
        t.push_str(&colstore_e2e::render(args, out));
    }
    assert_snapshot!("add", s.redact(&t));

    // A changed file is an update, the others stay unchanged.
    s.write("docs/readme.md", "# Readme v2\n");
    let v = s.json(["add", "c", "docs"]);
    assert_eq!((v["created"].as_u64(), v["updated"].as_u64(), v["unchanged"].as_u64()), (Some(0), Some(1), Some(5)), "{v}");
}

/// Adding the same files again reads only what changed (issue 14): a file whose stat is the one recorded when it was
/// last added, with the same options, into a document nobody changed since, is unchanged without being read. Files
/// changed within two seconds of an add are read again by the next one (their modification time may not show a
/// change made in the same tick), so the test waits that long once.
#[test]
fn adding_again_reads_only_what_changed() {
    let s = store_with_collection();
    for name in ["a.md", "b.md", "c.md"] {
        s.write(format!("docs/{name}"), format!("note {name}"));
    }
    let counts = |v: &serde_json::Value| {
        let n = |f: &str| v[f].as_u64().unwrap_or_else(|| panic!("{f} in {v}"));
        (n("created"), n("updated"), n("unchanged"), n("unchanged_unread"))
    };
    assert_eq!(counts(&s.json(["add", "c", "docs"])), (3, 0, 0, 0));
    // Files seen less than two seconds after they changed are read again by the next add; this one looks at them
    // after that (the pause only makes them older, so a slow machine cannot break it) and records them as settled.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let v = s.json(["add", "c", "docs"]);
    let (created, updated, unchanged, _) = counts(&v);
    assert_eq!((created, updated, unchanged), (0, 0, 3), "{v}");
    assert_eq!(counts(&s.json(["add", "c", "docs"])), (0, 0, 3, 3), "nothing changed: nothing read");
    assert_eq!(counts(&s.json(["add", "c", "docs", "--dry-run"])), (0, 0, 3, 3));

    // Same size, new bytes: read and updated; the others are still not read.
    s.write("docs/b.md", "NOTE b.md");
    assert_eq!(counts(&s.json(["add", "c", "docs"])), (0, 1, 2, 2));
    // The document changed in the store since its file was added: the file is read and put back.
    s.ok(["put", "c", "a.md", "--text", "edited in the store"]);
    let v = s.json(["add", "c", "docs"]);
    assert_eq!(counts(&v).1, 1, "{v}");
    assert_eq!(s.ok(["get", "c", "a.md"]).stdout, "note a.md");
    // Other options make other documents: every file is read.
    let v = s.json(["add", "c", "docs", "--tag", "t"]);
    assert_eq!((counts(&v).1, counts(&v).3), (3, 0), "{v}");
}

#[test]
fn stats_store_and_collection_show_dedup() {
    let s = store_with_collection();
    s.ok(["collection", "create", "d"]);
    let text = "the same words ".repeat(200);
    s.ok(["put", "c", "one.txt", "--text", &text]);
    s.ok(["put", "c", "two.txt", "--text", &text]);
    s.ok(["put", "d", "three.txt", "--text", &text]);
    s.ok(["put", "d", "other.txt", "--text", "something else"]);
    let t = s.transcript(&[&["stats"], &["--json", "stats"], &["stats", "c"], &["--json", "stats", "d"]]);
    assert_snapshot!("stats", t);

    let v = s.json(["stats"]);
    assert_eq!((v["collections"].as_u64(), v["documents"].as_u64(), v["distinct_contents"].as_u64()), (Some(2), Some(4), Some(2)));
    assert_eq!(v["logical_bytes"], 3 * text.len() + 14);
    assert_eq!(v["unique_bytes"], text.len() + 14);
    assert!(v["dedup_ratio"].as_f64().unwrap() > 2.5, "three copies of one text dedup to one: {v}");
    assert!(v["stored_bytes"].as_u64().unwrap() < v["unique_bytes"].as_u64().unwrap(), "repetitive text is compressed: {v}");
    let c = s.json(["stats", "c"]);
    assert_eq!((c["documents"].as_u64(), c["distinct_contents"].as_u64(), c["scope"].as_str()), (Some(2), Some(1), Some("collection c")));
}

#[test]
fn verify_clean_store() {
    let s = store_with_collection();
    s.ok(["put", "c", "a.md", "--text", "alpha"]);
    s.write("big.bin", vec![1u8; 2 * 1024 * 1024 + 3]);
    s.ok(["put", "c", "big.bin", "big.bin"]);
    let t = s.transcript(&[&["verify"], &["--json", "verify"], &["verify", "c"]]);
    assert_snapshot!("verify", t);
    let v = s.json(["verify"]);
    assert_eq!((v["ok"].as_bool(), v["documents_ok"].as_u64()), (Some(true), Some(2)));
}

/// Damages one stored content with python's sqlite3 module: `col verify` must exit 3 and name the document, and
/// `col get` must refuse to print corrupt content.
#[test]
fn verify_finds_corruption_with_exit_code_3() {
    let s = store_with_collection();
    s.ok(["collection", "create", "d"]);
    s.ok(["put", "c", "good.md", "--text", "good content"]);
    s.ok(["put", "c", "bad.md", "--text", "content that will be damaged"]);
    s.ok(["put", "d", "fine.md", "--text", "good content"]);
    // Damage the stored bytes themselves: inline contents live in `blob_data`, raw (codec 0) when short.
    let script = "import sqlite3,sys\n\
        db=sqlite3.connect(sys.argv[1])\n\
        n=db.execute(\"UPDATE blob_data SET data=CAST(replace(CAST(data AS TEXT),'damaged','DAMAGED') AS BLOB) WHERE blob_id IN (SELECT id FROM blobs WHERE codec=0 AND parts=0) AND instr(CAST(data AS TEXT),'damaged')>0\").rowcount\n\
        db.commit()\nprint(n)\n";
    // python3 and its sqlite3 module come with the test machine; a script that cannot run fails the test, never skips it.
    let py = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(s.colstore_dir().join("colstore.db"))
        .output()
        .expect("python3 runs (the corruption test edits the database with its sqlite3 module)");
    assert!(py.status.success(), "the script that damages the database failed: {}", String::from_utf8_lossy(&py.stderr));
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "1", "exactly one stored content was damaged (raw, inline)");

    let out = s.run(["verify"]);
    out.assert_error(3, "verification failed: 1 corrupt documents (2 others are fine)");
    assert!(out.stderr.contains("corrupt: c/bad.md"), "{out}");
    let out = s.run(["--json", "verify"]);
    out.assert_code(3);
    let v = out.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["corrupt"][0]["key"], "bad.md");
    assert_eq!(v["corrupt"][0]["expected"], sha256_hex(b"content that will be damaged"));
    // Another collection, whose content is fine, still verifies.
    assert_eq!(s.json(["verify", "d"])["ok"], true);
    s.run(["get", "c", "bad.md"]).assert_error(1, "corrupt");
    assert_eq!(s.ok(["get", "c", "good.md"]).stdout, "good content");
}

#[test]
fn gc_dry_run_and_real_after_rm() {
    let s = store_with_collection();
    s.ok(["put", "c", "keep.md", "--text", "keep me"]);
    s.ok(["put", "c", "shared-1.md", "--text", "shared"]);
    s.ok(["put", "c", "shared-2.md", "--text", "shared"]);
    s.ok(["put", "c", "gone-1.md", "--text", "unique one"]);
    s.ok(["put", "c", "gone-2.md", "--text", "unique two!"]);
    s.ok(["rm", "c", "gone-1.md", "gone-2.md", "shared-1.md"]);
    assert_eq!(s.json(["stats"])["garbage_contents"], 2, "shared content is still referenced");

    let before = s.fingerprint();
    let t = s.transcript(&[&["gc", "--dry-run"], &["--json", "gc", "--dry-run"]]);
    assert_eq!(s.fingerprint(), before, "gc --dry-run changed the store");
    let t = t + &s.transcript(&[&["stats"], &["gc"], &["--json", "gc"], &["stats"]]);
    assert_snapshot!("gc", t);
    let v = s.json(["stats"]);
    assert_eq!((v["garbage_contents"].as_u64(), v["distinct_contents"].as_u64()), (Some(0), Some(2)));
    s.ok(["verify"]);
    assert_eq!(s.ok(["get", "c", "shared-2.md"]).stdout, "shared");
}

#[test]
fn gc_json_reports_what_it_removed() {
    let s = store_with_collection();
    s.ok(["put", "c", "a.md", "--text", "0123456789"]);
    s.ok(["rm", "c", "a.md"]);
    let v = s.json(["gc", "--dry-run"]);
    assert_eq!(v, json!({"dry_run": true, "contents_removed": 1, "bytes_freed": 10}));
    let v = s.json(["gc"]);
    assert_eq!(v, json!({"dry_run": false, "contents_removed": 1, "bytes_freed": 10}));
    assert_eq!(s.json(["gc"])["contents_removed"], 0);
}

#[test]
fn quiet_suppresses_messages_but_not_data() {
    let s = store_with_collection();
    let out = s.run(["-q", "put", "c", "a.md", "--text", "alpha"]);
    out.assert_ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    assert_eq!(s.ok(["-q", "get", "c", "a.md"]).stdout, "alpha");
    assert!(s.ok(["-q", "ls", "c"]).stdout.contains("a.md"));
    assert_eq!(s.ok(["-q", "verify"]).stdout, "");
}

#[test]
fn demo_runs_on_a_throwaway_store() {
    let mut s = TestStore::uninitialised();
    let tmp = s.path().to_owned();
    s.set_env("TMPDIR", tmp);
    let out = s.run(["demo"]);
    out.assert_ok();
    assert!(out.stdout.contains("The demo worked."), "{out}");
    let text = s.redact(&out.stdout);
    // The demo's temp dir is `colstore-demo-` + a random suffix.
    let text = redact_demo_dir(&text);
    assert_snapshot!("demo", text + &out.stderr);
    let left: Vec<_> = std::fs::read_dir(s.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the demo's temporary store is removed: {left:?}");

    let out = s.run(["demo", "--keep", "kept"]);
    out.assert_ok();
    let kept = s.path().join("kept/store");
    let ls = colstore_e2e::output_of(colstore_e2e::col().arg("--store").arg(&kept).args(["--json", "ls", "demo"]), None);
    ls.assert_ok();
    assert_eq!(ls.json()["total"], 6);
    colstore_e2e::output_of(colstore_e2e::col().arg("--store").arg(&kept).arg("verify"), None).assert_ok();
}

fn redact_demo_dir(text: &str) -> String {
    let marker = "colstore-demo-";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let n = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        out.push_str("[RANDOM]");
        rest = &rest[n..];
    }
    out.push_str(rest);
    out
}

#[test]
fn help_texts() {
    let out = run(["--help"]);
    out.assert_ok();
    assert_snapshot!("help", out.stdout);
    let out = run(["ls", "--help"]);
    out.assert_ok();
    assert_snapshot!("ls_help", out.stdout);
    // Every command has help, and `help` without a store needs no store.
    for cmd in ["init", "collection", "put", "get", "rm", "ls", "add", "stats", "verify", "gc", "demo"] {
        let out = run([cmd, "--help"]);
        out.assert_ok();
        assert!(out.stdout.contains("Usage: col"), "col {cmd} --help:\n{out}");
    }
    let out = run(["--version"]);
    out.assert_ok();
    assert!(out.stdout.starts_with("col "), "{out}");
}

/// `col flush`: the store's database first, then each collection's index, each step named; `--collection` limits the
/// indexes (the database is always flushed); a missing collection is an error; the store still answers afterwards.
#[test]
fn flush_reports_each_step() {
    let s = store_with_collection();
    s.ok(["collection", "create", "d"]);
    s.ok(["put", "c", "a.md", "--text", "alpha"]);
    s.ok(["sync", "c"]);
    let out = s.ok(["flush"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("store: checkpointed the write-ahead log of "), "{out}");
    assert!(lines[1].starts_with("index c: checkpointed the write-ahead log of "), "{out}");
    assert_eq!(lines[2], "index d: not synced yet: nothing in the index to flush", "{out}");
    assert_eq!(lines[3], "Flushed: the store's files are complete on disk.");
    let v = s.json(["flush", "--collection", "c"]);
    let targets: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["store", "index c"], "{v:#}");
    s.run(["flush", "--collection", "nope"]).assert_error(1, "collection \"nope\" not found");
    assert_eq!(s.json(["search", "c", "alpha", "--mode", "keyword"])["results"][0]["key"], "a.md");
}
