//! Bad inputs: each gives a non-zero exit code (2 for usage errors, 1 otherwise), an `error:` line (plus a `hint:`
//! where the CLI gives one), never a panic or backtrace, and leaves the store unchanged.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use colstore_e2e::{TestStore, col, output_of};

use crate::{Restore, as_unprivileged, chmod_recursive, unprivileged_unavailable};
use rstest::rstest;

/// 64 characters: one more than a collection name may have.
const NAME_64: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const NAME_HINT: &str = "collection names use a-z, 0-9";
const KEY_HINT: &str = "keys are relative paths";
const META_HINT: &str = "pass a JSON object";
const NO_COLLECTION_HINT: &str = "col collection create nope";

/// A store with collection `c` holding `a.md`, and input files `in/file.txt` and `in/dir/x.md`.
fn fixture() -> TestStore {
    let s = TestStore::new();
    s.ok(["collection", "create", "c"]);
    s.ok(["put", "c", "a.md", "--text", "alpha", "--meta", r#"{"lang":"en"}"#, "--tag", "t"]);
    s.write("in/file.txt", "file");
    s.write("in/dir/x.md", "x");
    s
}

#[rstest]
// collection names
#[case::name_uppercase(&["collection", "create", "Bad"], 1, "invalid collection name \"Bad\"", Some(NAME_HINT))]
#[case::name_slash(&["collection", "create", "a/b"], 1, "invalid collection name \"a/b\"", Some(NAME_HINT))]
#[case::name_empty(&["collection", "create", ""], 1, "invalid collection name \"\": it is empty", Some(NAME_HINT))]
#[case::name_64_chars(&["collection", "create", NAME_64], 1, "longer than 63 characters", Some(NAME_HINT))]
#[case::name_non_ascii(&["collection", "create", "ü"], 1, "invalid collection name \"ü\"", Some(NAME_HINT))]
#[case::name_leading_dash(&["collection", "create", "-x"], 2, "unexpected argument '-x'", None)]
#[case::name_bad_in_put(&["put", "C", "k", "--text", "x"], 1, "invalid collection name \"C\"", Some(NAME_HINT))]
// document keys
#[case::key_dotdot(&["put", "c", "..", "--text", "x"], 1, "invalid document key \"..\"", Some(KEY_HINT))]
#[case::key_parent(&["put", "c", "../x", "--text", "x"], 1, "invalid document key \"../x\"", Some(KEY_HINT))]
#[case::key_absolute(&["put", "c", "/abs", "--text", "x"], 1, "invalid document key \"/abs\"", Some(KEY_HINT))]
#[case::key_empty_segment(&["put", "c", "a//b", "--text", "x"], 1, "invalid document key \"a//b\"", Some(KEY_HINT))]
#[case::key_dot_segment(&["put", "c", "a/./b", "--text", "x"], 1, "invalid document key \"a/./b\"", Some(KEY_HINT))]
#[case::key_trailing_slash(&["put", "c", "a/", "--text", "x"], 1, "invalid document key \"a/\"", Some(KEY_HINT))]
#[case::key_empty(&["put", "c", "", "--text", "x"], 1, "invalid document key \"\"", Some(KEY_HINT))]
#[case::key_control_char(&["put", "c", "a\u{1}b", "--text", "x"], 1, "control character", Some(KEY_HINT))]
#[case::key_backslash(&["put", "c", "a\\b", "--text", "x"], 1, "invalid document key", Some(KEY_HINT))]
#[case::key_in_get(&["get", "c", "../a.md"], 1, "invalid document key \"../a.md\"", Some(KEY_HINT))]
#[case::key_in_rm(&["rm", "c", "a.md", "/a.md"], 1, "invalid document key \"/a.md\"", Some(KEY_HINT))]
// metadata and tags
#[case::meta_unclosed(&["put", "c", "k", "--text", "x", "--meta", "{"], 1, "invalid metadata \"{\": it is not valid JSON", Some(META_HINT))]
#[case::meta_array(&["put", "c", "k", "--text", "x", "--meta", "[1]"], 1, "not an array", Some(META_HINT))]
#[case::meta_string(&["put", "c", "k", "--text", "x", "--meta", "\"x\""], 1, "not a string", Some(META_HINT))]
#[case::meta_null(&["put", "c", "k", "--text", "x", "--meta", "null"], 1, "not null", Some(META_HINT))]
#[case::meta_in_add(&["add", "c", "in", "--meta", "[1]"], 1, "invalid metadata", Some(META_HINT))]
#[case::tag_with_space(&["put", "c", "k", "--text", "x", "--tag", "a b"], 1, "invalid tag \"a b\"", Some("tags are 1-64 characters"))]
// missing inputs
#[case::put_missing_file(&["put", "c", "k", "missing.txt"], 1, "cannot read missing.txt", Some("check the path"))]
#[case::put_directory(&["put", "c", "k", "in/dir"], 1, "in/dir is a directory", Some("col add"))]
#[case::add_missing_path(&["add", "c", "missing"], 1, "missing does not exist", Some("check the path"))]
#[case::add_one_missing_path(&["add", "c", "in/dir", "missing"], 1, "missing does not exist", Some("check the path"))]
#[case::add_bad_glob(&["add", "c", "in", "--include", "["], 1, "invalid glob \"[\"", Some("globs look like"))]
#[case::add_bad_prefix(&["add", "c", "in", "--prefix", "/abs"], 1, "invalid key prefix \"/abs\"", Some("relative path"))]
// collections that exist or do not
#[case::duplicate_create(&["collection", "create", "c"], 1, "collection \"c\" already exists", Some("col collection show c"))]
#[case::unknown_put(&["put", "nope", "k", "--text", "x"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_put_file(&["put", "nope", "k", "in/file.txt"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_get(&["get", "nope", "a.md"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_ls(&["ls", "nope"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_rm(&["rm", "nope", "a.md"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_rm_dry_run(&["rm", "nope", "a.md", "--dry-run"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_add(&["add", "nope", "in"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_add_dry_run(&["add", "nope", "in", "--dry-run"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_show(&["collection", "show", "nope"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_delete(&["collection", "delete", "nope", "--yes"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_stats(&["stats", "nope"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
#[case::unknown_verify(&["verify", "nope"], 1, "collection \"nope\" not found", Some(NO_COLLECTION_HINT))]
// missing documents
#[case::get_missing_doc(&["get", "c", "nope.md"], 1, "document \"nope.md\" not found in collection \"c\"", Some("col ls c"))]
#[case::get_missing_doc_meta(&["get", "c", "nope.md", "--meta-only"], 1, "document \"nope.md\" not found", Some("col ls c"))]
#[case::rm_missing_doc(&["rm", "c", "nope.md"], 1, "not found in collection \"c\": nope.md", Some("col ls c"))]
// filters and times
#[case::where_not_a_number(&["ls", "c", "--where", "year>abc"], 1, "invalid filter \"year>abc\": at column 6: \"abc\" is not a number", Some("col ls --help"))]
#[case::where_no_operator(&["ls", "c", "--where", "nooperator"], 1, "at column 11: expected an operator after `nooperator`", Some("col ls --help"))]
#[case::where_bad_field(&["ls", "c", "--where", "a b=c"], 1, "invalid filter \"a b=c\"", None)]
#[case::since_word(&["ls", "c", "--since", "yesterday"], 1, "invalid time \"yesterday\"", None)]
#[case::until_bad_date(&["ls", "c", "--until", "2024-13-01"], 1, "invalid time \"2024-13-01\"", None)]
#[case::tag_filter_bad(&["ls", "c", "--tag", "a,b"], 1, "invalid tag \"a,b\"", Some("tags are"))]
// destructive commands without confirmation, and init over a store
#[case::delete_without_yes(&["collection", "delete", "c"], 1, "refusing to go on without confirmation (stdin is not a terminal): Delete collection c", Some("--yes"))]
#[case::init_twice(&["init"], 1, "is already a colstore store", Some("use the existing store"))]
#[case::init_docs_dir_without_filesystem_mode(&["init", "--docs-dir", "notes", "fs-store"], 2, "--docs-dir only applies to the filesystem storage mode", Some("--mode filesystem"))]
#[case::reconcile_in_sqlite_mode(&["reconcile"], 1, "applies to the filesystem storage mode", Some("col migrate --to filesystem"))]
#[case::watch_in_sqlite_mode(&["watch"], 1, "applies to the filesystem storage mode", Some("col migrate --to filesystem"))]
#[case::migrate_to_the_same_mode(&["migrate", "--to", "sqlite"], 1, "in sqlite mode already", Some("nothing to do"))]
#[case::reconcile_bad_percent(&["reconcile", "--max-delete", "150"], 2, "150", None)]
#[case::watch_bad_poll(&["watch", "--poll", "0"], 2, "is not a polling interval", None)]
// usage errors (clap): exit 2
#[case::usage_put_no_args(&["put"], 2, "required arguments were not provided", None)]
#[case::usage_rm_no_keys(&["rm", "c"], 2, "required arguments were not provided", None)]
#[case::usage_bad_sort(&["ls", "c", "--sort", "bogus"], 2, "invalid value 'bogus' for '--sort <SORT>'", None)]
#[case::usage_negative_limit(&["ls", "c", "--limit", "-1"], 2, "unexpected argument '-1'", None)]
#[case::usage_limit_not_a_number(&["ls", "c", "--limit", "ten"], 2, "invalid value 'ten'", None)]
#[case::usage_unknown_command(&["frobnicate"], 2, "unrecognized subcommand 'frobnicate'", None)]
#[case::usage_unknown_flag(&["--bogus", "ls", "c"], 2, "unexpected argument '--bogus'", None)]
#[case::usage_file_and_text(&["put", "c", "k", "in/file.txt", "--text", "x"], 2, "cannot be used with", None)]
#[case::usage_bad_mode(&["init", "--mode", "mongo"], 2, "invalid value 'mongo'", None)]
#[case::vectors_plain_http(&["init", "fs-store", "--vectors", "http://localhost:6333"], 2, "does not say which engine", Some("col init --help"))]
#[case::vectors_credentials(&["init", "fs-store", "--vectors", "qdrant://me:secret@h"], 2, "never in the URL", Some("col init --help"))]
#[case::vectors_unknown_engine(&["collection", "create", "v", "--vectors", "pinecone://h"], 2, "is not a vector backend", Some("col collection create --help"))]
#[case::reindex_to_nowhere(&["reindex", "c", "--to", "qdrant://"], 2, "names no host", Some("col reindex --help"))]
fn bad_input_fails_cleanly_and_changes_nothing(
    #[case] args: &[&str],
    #[case] code: i32,
    #[case] message: &str,
    #[case] hint: Option<&str>,
) {
    let s = fixture();
    let before = s.fingerprint();
    let out = s.run(args);
    out.assert_error(code, message);
    if let Some(h) = hint {
        assert!(out.hint().is_some_and(|got| got.contains(h)), "expected a hint containing {h:?}\n{out}");
    }
    if code == 2 {
        assert!(out.stderr.contains("--help"), "usage errors point to --help\n{out}");
    }
    assert_eq!(s.fingerprint(), before, "col {} changed the store", args.join(" "));
    assert!(!s.path().join("fs-store").exists(), "a failed init left a directory behind");
}

/// The longest collection name (63 characters) and key (1024 bytes) are accepted; one more is rejected.
#[test]
fn length_limits_are_exact() {
    let s = fixture();
    let name63 = &NAME_64[..63];
    s.ok(["collection", "create", name63]);
    let key1024 = format!("{}/{}", "k".repeat(511), "v".repeat(512));
    s.ok(["put", "c", &key1024, "--text", "x"]);
    let before = s.fingerprint();
    let key1025 = format!("{key1024}v");
    s.run(["put", "c", &key1025, "--text", "x"]).assert_error(1, "longer than 1024 bytes");
    assert_eq!(s.fingerprint(), before);
}

/// A key with a NUL byte cannot reach the CLI through argv at all: the OS (and Rust's `Command`) refuse NUL in
/// arguments, so `col` never sees it. `col add` cannot see one either (file names cannot contain NUL).
#[test]
fn a_nul_byte_in_a_key_cannot_be_passed_in_argv() {
    let s = fixture();
    let before = s.fingerprint();
    let key = OsString::from_vec(b"a\0b".to_vec());
    let result = s.cmd(["put", "c"]).arg(&key).args(["--text", "x"]).output();
    let err = result.expect_err("an argument with a NUL byte was accepted by the OS");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    println!("note: NUL cannot be passed in argv ({err}); the CLI's own NUL check is covered by the domain crate's tests");
    assert_eq!(s.fingerprint(), before);
}

/// The working directory and its parents hold no store: the search upward must fail and say where it looked.
#[test]
fn no_store_found_upward() {
    let s = TestStore::uninitialised();
    let empty = s.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    if let Some(a) = empty.ancestors().find(|a| a.join(".colstore").exists()) {
        panic!("precondition: {} holds a .colstore, so the upward search would find it; remove it", a.display());
    }
    for args in [&["ls", "c"][..], &["put", "c", "k", "--text", "x"], &["stats"], &["collection", "list"], &["gc"]] {
        let out = output_of(col().args(args).current_dir(&empty), None);
        out.assert_error(1, &format!("no colstore store found in {}", empty.display()));
        assert!(out.hint().is_some_and(|h| h.contains("col init")), "{out}");
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nothing was created");
}

#[rstest]
#[case::store_flag_empty_dir("--store", true, "given by --store", "pass --store")]
#[case::store_flag_missing_dir("--store", false, "given by --store", "pass --store")]
#[case::env_empty_dir("COLSTORE_DIR", true, "given by COLSTORE_DIR", "COLSTORE_DIR")]
#[case::env_missing_dir("COLSTORE_DIR", false, "given by COLSTORE_DIR", "COLSTORE_DIR")]
fn store_named_by_flag_or_env_must_exist(#[case] how: &str, #[case] dir_exists: bool, #[case] message: &str, #[case] hint: &str) {
    let s = TestStore::uninitialised();
    let dir: PathBuf = s.path().join("not-a-store");
    if dir_exists {
        std::fs::create_dir(&dir).unwrap();
    }
    for args in [&["ls", "c"][..], &["put", "c", "k", "--text", "x"], &["collection", "create", "c"]] {
        let mut cmd = col();
        cmd.current_dir(s.path());
        if how == "--store" {
            cmd.arg("--store").arg(&dir);
        } else {
            cmd.env("COLSTORE_DIR", &dir);
        }
        let out = output_of(cmd.args(args), None);
        out.assert_error(1, &format!("no colstore store at {}", dir.display()));
        assert!(out.stderr.contains(message), "{out}");
        assert!(out.hint().is_some_and(|h| h.contains(hint)), "{out}");
    }
    if dir_exists {
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing was created in {}", dir.display());
    } else {
        assert!(!dir.exists(), "{} was created", dir.display());
    }
}

/// Breaks `config.toml` by `edit`, and returns the 1-based line the error must point at.
fn break_config(path: &Path, case: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let line_of = |t: &str, needle: &str| t.lines().position(|l| l.starts_with(needle)).expect("the line exists") + 1;
    let (broken, line) = match case {
        "unknown_key" => {
            let t = text.replace("keep_last = 10", "keep_last = 10\nbogus = 1");
            let l = line_of(&t, "bogus");
            (t, l)
        }
        "bad_mode" => {
            let t = text.replace("mode = \"sqlite\"", "mode = \"mongo\"");
            let l = line_of(&t, "mode = ");
            (t, l)
        }
        "bad_dimension" => {
            let t = text.replace("dimension = 384", "dimension = -3");
            let l = line_of(&t, "dimension");
            (t, l)
        }
        "syntax" => {
            let t = text.replace("[vectors]", "[vectors");
            let l = line_of(&t, "[vectors");
            (t, l)
        }
        "newer_format" => {
            let t = text.replace("format = 1", "format = 2");
            let l = line_of(&t, "format");
            (t, l)
        }
        other => panic!("unknown case {other}"),
    };
    assert_ne!(broken, text, "the edit for {case} matched nothing; has config.toml changed?");
    std::fs::write(path, broken).unwrap();
    line
}

#[rstest]
#[case::unknown_key("unknown_key", "unknown key `bogus`")]
#[case::bad_mode("bad_mode", "unknown value `mongo`")]
#[case::bad_dimension("bad_dimension", "invalid value: integer `-3`")]
#[case::syntax("syntax", "invalid store config")]
#[case::newer_format("newer_format", "newer colstore")]
fn broken_config_names_file_and_line(#[case] case: &str, #[case] message: &str) {
    let s = fixture();
    let before = s.fingerprint();
    let config = s.colstore_dir().join("config.toml");
    let good = std::fs::read(&config).unwrap();
    let line = break_config(&config, case);
    for args in [&["ls", "c"][..], &["put", "c", "new.md", "--text", "x"], &["stats"], &["gc"], &["add", "c", "in"]] {
        let out = s.run(args);
        out.assert_error(1, message);
        let location = format!("{}:{line}:", config.display());
        assert!(out.stderr.contains(&location), "the error names {location}\n{out}");
        assert!(out.hint().is_some(), "a broken config gets a hint\n{out}");
    }
    std::fs::write(&config, good).unwrap();
    assert_eq!(s.fingerprint(), before, "a command ran against a broken config and changed the store");
}

#[test]
fn read_only_store_refuses_writes_clearly() {
    let s = fixture();
    // A store its writer closed cleanly (`gc` checkpoints the write-ahead log), as a read-only store must be to be
    // read at all (store_identity.rs), in a temporary directory everyone may enter (tempfile makes it 0700).
    s.ok(["gc"]);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = s.fingerprint();
    // Read-only files and folders, and a user whom they bind (as root: `nobody`, through setpriv).
    chmod_recursive(&s.store_dir(), false);
    let _restore = Restore(&s.store_dir());
    let probe = match as_unprivileged(&s, &["ls", "c"]) {
        Ok(out) => out,
        Err(reason) => return unprivileged_unavailable(&reason),
    };
    probe.assert_ok();
    for args in
        [&["put", "c", "new.md", "--text", "x"][..], &["put", "c", "a.md", "--text", "changed"], &["add", "c", "in"], &["rm", "c", "a.md"]]
    {
        let out = as_unprivileged(&s, args).expect("checked above");
        let error = out.assert_error(1, "").to_lowercase();
        assert!(
            error.contains("read-only") || error.contains("permission"),
            "no read-only/permission message for col {}\n{out}",
            args.join(" ")
        );
        assert!(out.hint().is_some(), "{out}");
    }
    assert_eq!(s.fingerprint(), before, "a write on a read-only store changed it");
}
