//! Tidy: the workspace's architecture rules as code (after rust-analyzer's `xtask/src/tidy.rs`).
//!
//! Each rule is a function from the workspace to its violations. `cargo xtask tidy` prints them, and the
//! `workspace_*` tests at the bottom run every rule on the real workspace, so `cargo test --workspace` fails when a
//! rule is broken. The other tests feed each rule a small synthetic `cargo metadata` document containing a
//! violation and assert that it is reported, so a rule cannot silently stop working.
//!
//! Dependency rules read the manifests' declared dependencies (`cargo metadata --no-deps`); the rules that must
//! also hold transitively walk the resolved graph (full `cargo metadata`) along normal and build edges, i.e. what a
//! non-test build of the crate compiles.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::metadata::{Dep, DepKind, Member, Workspace};

const DOMAIN: &str = "colstore-domain";
const APP: &str = "colstore-app";
const TESTKIT: &str = "colstore-testkit";
const WIRING: &str = "colstore-wiring";
const SHELLS: &[&str] = &["colstore-cli", "colstore-server"];

/// Helpers with no domain knowledge that any member may use (adapters too, which share nothing else): they
/// depend on no workspace member, so using one never couples its users to anything else of ours.
const LEAVES: &[&str] = &["colstore-durable", "colstore-http"];

/// Crates that implement ports against one backend. Only those that exist are checked.
const ADAPTERS: &[&str] =
    &["colstore-sqlite", "colstore-fs", "colstore-objstore", "colstore-qdrant", "colstore-weaviate", "colstore-embedded", "colstore-embed"];

/// The only packages `colstore-domain` may declare as normal or build dependencies: no I/O, no runtime.
const DOMAIN_ALLOWED: &[&str] =
    &["async-trait", "bytes", "futures", "mockall", "serde", "serde_json", "sha2", "thiserror", "unicode-normalization", "uuid"];

/// Allowed in `colstore-domain` only behind a feature (`mocks`), so normal builds never compile them.
const DOMAIN_OPTIONAL_ONLY: &[&str] = &["mockall"];

/// Packages that mean I/O (SQL, HTTP, files, an async runtime, argument parsing); `colstore-domain` must not reach
/// them even through an allowed dependency.
const DOMAIN_FORBIDDEN_TRANSITIVE: &[&str] = &[
    "sqlx",
    "sqlx-core",
    "sqlx-sqlite",
    "libsqlite3-sys",
    "rusqlite",
    "tokio",
    "mio",
    "reqwest",
    "hyper",
    "object_store",
    "axum",
    "clap",
    "walkdir",
];

/// Directories scanned for machine-specific paths, relative to the workspace root.
const SCANNED_DIRS: &[&str] = &["crates", "tests", "xtask"];

/// A line containing this marker is exempt from the machine-path rule, for tests that need an absolute path as
/// data (for example, to check that one is rejected).
pub(crate) const ALLOW_MACHINE_PATH: &str = "tidy:allow-machine-path";

/// The rules, by the name their violations carry.
pub(crate) const RULES: &[&str] = &[
    "domain-dependencies",
    "adapter-isolation",
    "testkit-dev-only",
    "adapters-via-wiring",
    "core-independence",
    "manifest-hygiene",
    "no-machine-paths",
    "shell-port-writes",
    "short-commands",
    "code-map",
    "leaf-crates",
];

/// The longest a file of the CLI's `commands/` may be: a command parses, calls one app function and renders, so a
/// longer file holds a use case that belongs in `colstore-app` (or several commands that want their own modules).
pub(crate) const COMMAND_FILE_MAX_LINES: usize = 400;

/// Calls that write through a port. A shell (the CLI, the server) calls one `colstore-app` function instead, so both
/// shells offer an operation written once and cannot drift apart. Generic method names are matched with their
/// receiver (`queue.cancel(`), so a `Checkpoint::cancel` is not taken for a port write.
pub(crate) const PORT_WRITES: &[&str] = &[
    ".put_batch(",
    ".delete_documents(",
    ".delete_collection(",
    ".create_collection(",
    ".update_settings(",
    ".restore_collection(",
    ".restore_documents(",
    ".restore_document_stream(",
    ".gc(",
    ".ensure_collection(",
    ".drop_collection(",
    ".upsert(",
    ".delete_by_filter(",
    ".put_object(",
    ".delete_object(",
    ".put_manifest(",
    ".delete_manifest(",
    ".put_lock(",
    ".delete_lock(",
    ".enqueue(",
    ".complete_many(",
    ".release_worker(",
    ".heartbeat(",
    ".mark_synced(",
    ".mark_synced_batch(",
    ".mark_failed(",
    ".mark_all_pending(",
    ".cache_vectors(",
    ".restore_ledger(",
    ".apply_changes(",
    ".create_root(",
    ".remove_root(",
    "queue.cancel(",
    "queue().cancel(",
    "queue.retry(",
    "queue().retry(",
];

/// The direct port writes the shells still make, each to move into `colstore-app` (issue 12): (file, call). The
/// list may only shrink: an entry that no longer occurs is a violation too, so it goes when its debt is paid.
const KNOWN_SHELL_PORT_WRITES: &[(&str, &str)] = &[];

/// One broken rule, with a message that says what is wrong, where, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) rule: &'static str,
    pub(crate) message: String,
}

impl Violation {
    fn new(rule: &'static str, message: String) -> Self {
        debug_assert!(RULES.contains(&rule), "unknown rule {rule}");
        Self { rule, message }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.rule, self.message)
    }
}

/// Runs every rule on `ws`, reading manifests and source files from disk.
pub(crate) fn check_all(ws: &Workspace) -> Vec<Violation> {
    let mut violations = Vec::new();
    violations.extend(check_domain_dependencies(ws));
    violations.extend(check_adapter_isolation(ws));
    violations.extend(check_testkit_dev_only(ws));
    violations.extend(check_adapters_via_wiring(ws));
    violations.extend(check_core_independence(ws));
    violations.extend(check_manifests(ws, &|path| std::fs::read_to_string(path)));
    violations.extend(check_machine_paths(ws));
    violations.extend(check_shell_port_writes(&shell_sources(ws), KNOWN_SHELL_PORT_WRITES));
    violations.extend(check_command_sizes(&shell_sources(ws)));
    violations.extend(check_code_map_of(ws));
    violations.extend(check_leaves(ws));
    violations
}

/// The workspace members' directories relative to the root (`crates/colstore-app`, `xtask`, `tests`).
fn member_dirs(ws: &Workspace) -> Vec<String> {
    ws.members
        .iter()
        .filter_map(|m| m.manifest_path.parent()?.strip_prefix(&ws.root).ok().map(|d| d.to_string_lossy().replace('\\', "/")))
        .collect()
}

fn check_code_map_of(ws: &Workspace) -> Vec<Violation> {
    let path = ws.root.join("docs").join("ARCHITECTURE.md");
    match std::fs::read_to_string(&path) {
        Ok(text) => check_code_map(&text, &member_dirs(ws)),
        Err(e) => vec![Violation::new("code-map", format!("cannot read {}: {e}", path.display()))],
    }
}

/// Rule 10: the code map of docs/ARCHITECTURE.md (its `### `dir`` headings under `## Code map`) names exactly the
/// workspace members: a heading whose directory is no member is stale, and a member without a heading is missing
/// from the map a reader uses to find things.
pub(crate) fn check_code_map(architecture: &str, members: &[String]) -> Vec<Violation> {
    let mut in_map = false;
    let mut headings: Vec<String> = Vec::new();
    for line in architecture.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            in_map = title.trim() == "Code map";
        } else if in_map
            && let Some(rest) = line.strip_prefix("### `")
            && let Some(end) = rest.find('`')
        {
            headings.push(rest[..end].trim_end_matches('/').to_owned());
        }
    }
    let mut violations = Vec::new();
    if headings.is_empty() {
        violations.push(Violation::new("code-map", "docs/ARCHITECTURE.md has no `## Code map` with `### `dir`` headings".to_owned()));
    }
    for h in &headings {
        if !members.contains(h) {
            violations.push(Violation::new(
                "code-map",
                format!("docs/ARCHITECTURE.md's code map has a heading for `{h}`, which is no workspace member; rename or remove it"),
            ));
        }
    }
    for m in members {
        if !headings.contains(m) {
            violations.push(Violation::new(
                "code-map",
                format!("workspace member `{m}` has no heading in docs/ARCHITECTURE.md's code map; add `### `{m}`` with what it holds"),
            ));
        }
    }
    violations
}

/// Rule 9: no file of `crates/colstore-cli/src/commands/` is longer than [`COMMAND_FILE_MAX_LINES`].
pub(crate) fn check_command_sizes(sources: &[(String, String)]) -> Vec<Violation> {
    sources
        .iter()
        .filter(|(path, _)| path.starts_with("crates/colstore-cli/src/commands/"))
        .filter_map(|(path, text)| {
            let n = text.lines().count();
            (n > COMMAND_FILE_MAX_LINES).then(|| {
                Violation::new(
                    "short-commands",
                    format!(
                        "{path} has {n} lines, more than {COMMAND_FILE_MAX_LINES}: move its use case into colstore-app, or give its commands modules of their own"
                    ),
                )
            })
        })
        .collect()
}

/// Every `.rs` file under the shells' `src/`, as (path relative to the workspace root, text).
fn shell_sources(ws: &Workspace) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.push((rel, text));
            }
        }
    }
    let mut out = Vec::new();
    for shell in SHELLS {
        walk(&ws.root, &ws.root.join("crates").join(shell).join("src"), &mut out);
    }
    out
}

/// Rule 8: the shells only parse, call one `colstore-app` function and render. A call of a port's writing method
/// ([`PORT_WRITES`]) in a shell's source is a violation unless [`KNOWN_SHELL_PORT_WRITES`] lists it as debt still
/// to pay, and a listed debt that no longer occurs is one too (remove it from the list). Comment lines are skipped.
pub(crate) fn check_shell_port_writes(sources: &[(String, String)], known: &[(&str, &str)]) -> Vec<Violation> {
    let mut found: Vec<(&str, &str, usize)> = Vec::new();
    for (path, text) in sources {
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for call in PORT_WRITES {
                if line.contains(call) {
                    found.push((path, call, n + 1));
                }
            }
        }
    }
    let mut violations = Vec::new();
    for (path, call, line) in &found {
        if !known.contains(&(path, call)) {
            violations.push(Violation::new(
                "shell-port-writes",
                format!(
                    "{path}:{line} calls `{call}…)`, a port write, from a shell; write the operation once as a function in colstore-app and call that, so the CLI and the server cannot drift apart"
                ),
            ));
        }
    }
    for (path, call) in known {
        let scanned = sources.iter().any(|(p, _)| p == path);
        if scanned && !found.iter().any(|(p, c, _)| p == path && c == call) {
            violations.push(Violation::new(
                "shell-port-writes",
                format!(
                    "{path} no longer calls `{call}…)`: remove it from KNOWN_SHELL_PORT_WRITES in xtask/src/tidy.rs (the list only shrinks)"
                ),
            ));
        }
    }
    violations
}

fn non_dev(member: &Member) -> impl Iterator<Item = &Dep> {
    member.deps.iter().filter(|dep| dep.kind != DepKind::Dev)
}

fn missing_member(rule: &'static str, name: &str) -> Violation {
    Violation::new(
        rule,
        format!(
            "expected a workspace member named `{name}`; if it was renamed or removed, update xtask/src/tidy.rs so this rule keeps checking it"
        ),
    )
}

/// Rule 1: `colstore-domain` is pure. Its normal and build dependencies are limited to [`DOMAIN_ALLOWED`]
/// (`mockall` only as an optional dependency), and its build closure contains none of [`DOMAIN_FORBIDDEN_TRANSITIVE`].
pub(crate) fn check_domain_dependencies(ws: &Workspace) -> Vec<Violation> {
    const RULE: &str = "domain-dependencies";
    let Some(domain) = ws.member(DOMAIN) else { return vec![missing_member(RULE, DOMAIN)] };
    let mut violations = Vec::new();
    for dep in non_dev(domain) {
        if !DOMAIN_ALLOWED.contains(&dep.name.as_str()) {
            violations.push(Violation::new(
                RULE,
                format!(
                    "{DOMAIN} declares `{}` in {}; the domain crate holds entities, ports and pure logic and must not know about \
                     SQL, HTTP, files or a runtime. Allowed: {}. Put the code that needs `{}` in an adapter crate behind a port.",
                    dep.name,
                    dep.kind.table(),
                    DOMAIN_ALLOWED.join(", "),
                    dep.name
                ),
            ));
        } else if DOMAIN_OPTIONAL_ONLY.contains(&dep.name.as_str()) && !dep.optional {
            violations.push(Violation::new(
                RULE,
                format!(
                    "{DOMAIN} declares `{}` in {} without `optional = true`; it must only be enabled by a feature \
                     (`mocks = [\"dep:{}\"]`) so normal builds do not compile it",
                    dep.name,
                    dep.kind.table(),
                    dep.name
                ),
            ));
        }
    }
    for chain in ws.build_closure(domain) {
        let package = chain.last().expect("chains are never empty");
        // Direct dependencies were judged above against the allow-list; a chain through a disallowed one would
        // only repeat that violation.
        let through_allowed = chain.get(1).is_some_and(|first| DOMAIN_ALLOWED.contains(&first.as_str()));
        if chain.len() > 2 && through_allowed && DOMAIN_FORBIDDEN_TRANSITIVE.contains(&package.as_str()) {
            violations.push(Violation::new(
                RULE,
                format!(
                    "{DOMAIN} compiles `{package}` through {}; the domain crate must not reach I/O even indirectly. \
                     Drop the feature or dependency that pulls it in.",
                    chain.join(" → ")
                ),
            ));
        }
    }
    violations
}

fn adapters(ws: &Workspace) -> Vec<&str> {
    ADAPTERS.iter().copied().filter(|name| ws.member(name).is_some()).collect()
}

/// Rule 2: adapter crates never depend on each other (normal or build dependencies), so each backend can be used,
/// replaced or removed on its own.
pub(crate) fn check_adapter_isolation(ws: &Workspace) -> Vec<Violation> {
    const RULE: &str = "adapter-isolation";
    let adapters = adapters(ws);
    let mut violations = Vec::new();
    for adapter in &adapters {
        let member = ws.member(adapter).expect("filtered to existing members");
        for dep in non_dev(member).filter(|dep| adapters.contains(&dep.name.as_str())) {
            violations.push(Violation::new(
                RULE,
                format!(
                    "adapter {adapter} declares adapter `{}` in {}; adapters never depend on each other. Share code through \
                     {DOMAIN} (types, pure logic) or compose the two in {WIRING}.",
                    dep.name,
                    dep.kind.table()
                ),
            ));
        }
    }
    violations
}

/// Rule 3: `colstore-testkit` is test-only. No member declares it outside `[dev-dependencies]`, and no member's
/// build closure contains it through another crate.
pub(crate) fn check_testkit_dev_only(ws: &Workspace) -> Vec<Violation> {
    const RULE: &str = "testkit-dev-only";
    let mut violations = Vec::new();
    for member in ws.members.iter().filter(|member| member.name != TESTKIT) {
        for dep in non_dev(member).filter(|dep| dep.name == TESTKIT) {
            violations.push(Violation::new(
                RULE,
                format!(
                    "{} declares {TESTKIT} in {}{}; the testkit (fakes, conformance suites) may only be a \
                     [dev-dependencies] entry, so it never ships in a library or binary",
                    member.name,
                    dep.kind.table(),
                    if dep.optional { " (optional)" } else { "" }
                ),
            ));
        }
        for chain in ws.build_closure(member) {
            if chain.len() > 2 && chain.last().is_some_and(|name| name == TESTKIT) {
                violations.push(Violation::new(
                    RULE,
                    format!(
                        "{} compiles {TESTKIT} in a non-test build through {}; the testkit may only be reached \
                         through [dev-dependencies]",
                        member.name,
                        chain.join(" → ")
                    ),
                ));
            }
        }
    }
    violations
}

/// Rule 4: only `colstore-wiring` (the composition root) depends on adapters; the shells reach them through it.
/// Dev-dependencies are exempt, and adapter-to-adapter dependencies are reported by rule 2.
pub(crate) fn check_adapters_via_wiring(ws: &Workspace) -> Vec<Violation> {
    const RULE: &str = "adapters-via-wiring";
    let adapters = adapters(ws);
    let mut violations = Vec::new();
    for member in ws.members.iter().filter(|member| member.name != WIRING && !adapters.contains(&member.name.as_str())) {
        for dep in non_dev(member).filter(|dep| adapters.contains(&dep.name.as_str())) {
            let role = if SHELLS.contains(&member.name.as_str()) {
                format!("{} is a thin shell: it must get adapters as `Arc<dyn Port>` from {WIRING}", member.name)
            } else {
                format!("only {WIRING}, the composition root, may depend on adapters")
            };
            violations
                .push(Violation::new(RULE, format!("{} declares adapter `{}` in {}; {role}", member.name, dep.name, dep.kind.table())));
        }
    }
    violations
}

/// Rule 5: the core (`colstore-domain`, `colstore-app`) depends on no adapter, on `colstore-wiring` or on a shell —
/// in any dependency table, since the core's own tests run on fakes from the testkit — and does not reach them
/// transitively in a non-test build.
pub(crate) fn check_core_independence(ws: &Workspace) -> Vec<Violation> {
    const RULE: &str = "core-independence";
    let mut outer: Vec<&str> = ADAPTERS.to_vec();
    outer.push(WIRING);
    outer.extend(SHELLS);
    let mut violations = Vec::new();
    for core in [DOMAIN, APP] {
        let Some(member) = ws.member(core) else {
            violations.push(missing_member(RULE, core));
            continue;
        };
        for dep in member.deps.iter().filter(|dep| outer.contains(&dep.name.as_str())) {
            violations.push(Violation::new(
                RULE,
                format!(
                    "{core} declares `{}` in {}; the core is written against ports only and must not know adapters, \
                     the composition root or the shells (tests use fakes from {TESTKIT})",
                    dep.name,
                    dep.kind.table()
                ),
            ));
        }
        for chain in ws.build_closure(member) {
            let package = chain.last().expect("chains are never empty");
            if chain.len() > 2 && outer.contains(&package.as_str()) {
                violations.push(Violation::new(
                    RULE,
                    format!(
                        "{core} compiles `{package}` through {}; the core must not reach adapters, wiring or shells",
                        chain.join(" → ")
                    ),
                ));
            }
        }
    }
    violations
}

/// Rule: a leaf crate ([`LEAVES`]) declares no workspace member as a normal or build dependency, so adapters may
/// share it without sharing anything else (rule 2 still keeps them apart).
pub(crate) fn check_leaves(ws: &Workspace) -> Vec<Violation> {
    const RULE: &str = "leaf-crates";
    let mut violations = Vec::new();
    for leaf in LEAVES.iter().filter_map(|name| ws.member(name)) {
        for dep in non_dev(leaf).filter(|dep| ws.member(&dep.name).is_some()) {
            violations.push(Violation::new(
                RULE,
                format!(
                    "{} declares workspace member `{}` in {}; a leaf crate knows nothing of the domain or the other \
                     crates, so that every member (adapters too) may use it. Move the code that needs `{}` out of the leaf.",
                    leaf.name,
                    dep.name,
                    dep.kind.table(),
                    dep.name
                ),
            ));
        }
    }
    violations
}

/// Rule 6: every member inherits the workspace lints (`[lints] workspace = true`) and is unpublishable
/// (`publish = false`, directly or through `publish.workspace = true`).
pub(crate) fn check_manifests(ws: &Workspace, read: &dyn Fn(&Path) -> std::io::Result<String>) -> Vec<Violation> {
    const RULE: &str = "manifest-hygiene";
    let mut violations = Vec::new();
    for member in &ws.members {
        let manifest = member.manifest_path.strip_prefix(&ws.root).unwrap_or(&member.manifest_path).display().to_string();
        match member.publish.as_deref() {
            Some([]) => {}
            None => violations.push(Violation::new(
                RULE,
                format!(
                    "{manifest}: {} can be published; internal crates set `publish.workspace = true` (the workspace says \
                     `publish = false`) until we decide to publish",
                    member.name
                ),
            )),
            Some(registries) => violations.push(Violation::new(
                RULE,
                format!(
                    "{manifest}: {} may be published to {}; internal crates set `publish.workspace = true`",
                    member.name,
                    registries.join(", ")
                ),
            )),
        }
        let text = match read(&member.manifest_path) {
            Ok(text) => text,
            Err(err) => {
                violations.push(Violation::new(RULE, format!("{manifest}: cannot read the manifest: {err}")));
                continue;
            }
        };
        let table: toml::Table = match text.parse() {
            Ok(table) => table,
            Err(err) => {
                violations.push(Violation::new(RULE, format!("{manifest}: not valid TOML: {err}")));
                continue;
            }
        };
        let inherits_lints = table.get("lints").and_then(|lints| lints.get("workspace")).and_then(toml::Value::as_bool) == Some(true);
        if !inherits_lints {
            violations.push(Violation::new(
                RULE,
                format!(
                    "{manifest}: {} does not have `[lints] workspace = true`, so it builds without the workspace lint \
                     levels (unsafe_code = deny, missing_docs, clippy); add that table",
                    member.name
                ),
            ));
        }
    }
    violations
}

/// The path prefixes that identify one machine: our shared development machine's workspace parent and home
/// (`/work`, `/root`), plus the directories of the machine running the check (workspace root, `$HOME`,
/// `$CARGO_HOME`) when they are at least two levels deep, so a shallow `/srv` never matches everything.
///
/// Generic prefixes such as `/home` or `/tmp` are deliberately not patterns: tests use made-up absolute paths
/// (`/home/u/proj`, `/x/.colstore`) as data, and those are the same on every machine. What this rule catches is a
/// path that leaked from a real machine, e.g. into a snapshot. The literals are assembled at run time so this file
/// does not match itself.
pub(crate) fn machine_path_patterns(machine_dirs: &[&Path]) -> Vec<String> {
    let mut patterns: Vec<String> = ["work", "root"].iter().map(|dir| format!("/{dir}/")).collect();
    for dir in machine_dirs {
        let pattern = format!("{}/", dir.display().to_string().trim_end_matches('/'));
        if dir.is_absolute() && dir.components().count() > 2 && !patterns.iter().any(|known| pattern.starts_with(known.as_str())) {
            patterns.push(pattern);
        }
    }
    patterns
}

/// True when the match at `at` starts an absolute path rather than continuing a longer one: a pattern preceded by
/// a host name, a relative path (`src`, `..`, `~`) or a variable is not a machine path; one at the start of a line,
/// after a quote, a space or `=`, or right after `file://`, is.
fn starts_absolute_path(line: &str, at: usize) -> bool {
    let before = &line[..at];
    if before.ends_with("file://") {
        return true;
    }
    before.chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || "._-~/\\$".contains(c)))
}

/// Rule 7 on one file's text. `path` is relative to the workspace root, for messages.
pub(crate) fn check_text(path: &str, text: &str, patterns: &[String]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.contains(ALLOW_MACHINE_PATH) {
            continue;
        }
        let found = patterns
            .iter()
            .flat_map(|pattern| line.match_indices(pattern.as_str()))
            .map(|(at, _)| at)
            .filter(|&at| starts_absolute_path(line, at))
            .min();
        let Some(at) = found else { continue };
        let token: String = line[at..].chars().take_while(|c| !c.is_whitespace() && !"\"'`<>()[]{},;".contains(*c)).take(100).collect();
        let advice = if path.ends_with(".snap") {
            "the snapshot recorded a path from the machine that wrote it; add an insta filter or redaction for it and re-accept the snapshot"
        } else {
            "build paths at run time (tempfile, env!(\"CARGO_MANIFEST_DIR\"), std::env::temp_dir()) so the code works on \
             every machine; if the absolute path is test data, end the line with a `tidy:allow-machine-path` comment"
        };
        violations.push(Violation::new("no-machine-paths", format!("{path}:{}: `{token}` is a path on one machine; {advice}", index + 1)));
    }
    violations
}

/// Rule 7: no file under `crates/`, `tests/` or `xtask/` (snapshots included) contains a machine-specific absolute
/// path. `target/` and `.git/` directories are skipped, as are binary files and insta's uncommitted
/// `.snap.new`/`.pending-snap` files (git ignores them; they become `.snap` files, which are checked).
pub(crate) fn check_machine_paths(ws: &Workspace) -> Vec<Violation> {
    let env_dirs: Vec<PathBuf> = ["HOME", "CARGO_HOME"].iter().filter_map(std::env::var_os).map(PathBuf::from).collect();
    let mut machine_dirs: Vec<&Path> = vec![&ws.root];
    machine_dirs.extend(env_dirs.iter().map(PathBuf::as_path));
    let patterns = machine_path_patterns(&machine_dirs);
    let mut violations = Vec::new();
    for dir in SCANNED_DIRS {
        scan_tree(&ws.root, &ws.root.join(dir), &patterns, &mut violations);
    }
    violations
}

fn scan_tree(root: &Path, dir: &Path, patterns: &[String], violations: &mut Vec<Violation>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // `file_type` does not follow symlinks, so a link out of the tree is never scanned.
        let Ok(file_type) = entry.file_type() else { continue };
        if file_type.is_dir() {
            if name != "target" && name != ".git" {
                scan_tree(root, &path, patterns, violations);
            }
        } else if file_type.is_file() && !name.ends_with(".snap.new") && !name.ends_with(".pending-snap") {
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if bytes.contains(&0) {
                continue;
            }
            let Ok(text) = String::from_utf8(bytes) else { continue };
            let relative = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            violations.extend(check_text(&relative, &text, patterns));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use super::*;
    use crate::metadata::DepKind;
    use crate::metadata::fixture::{Package, dev, external, member, normal, workspace};

    fn rules(violations: &[Violation]) -> Vec<&'static str> {
        violations.iter().map(|v| v.rule).collect()
    }

    fn assert_reports(violations: &[Violation], rule: &str, needles: &[&str]) {
        assert!(
            violations.iter().any(|v| v.rule == rule && needles.iter().all(|needle| v.message.contains(needle))),
            "expected a [{rule}] violation mentioning {needles:?}, got {violations:#?}"
        );
    }

    /// A small workspace that follows every rule; each test breaks one thing.
    fn healthy() -> Vec<Package> {
        vec![
            member(DOMAIN, &[normal("serde"), normal("futures"), ("mockall", DepKind::Normal, true), dev("tokio")]),
            member(APP, &[normal(DOMAIN), normal("tokio"), normal("walkdir"), dev(TESTKIT)]),
            member("colstore-sqlite", &[normal(DOMAIN), normal("sqlx"), dev(TESTKIT)]),
            member("colstore-fs", &[normal(DOMAIN), dev(TESTKIT), dev("colstore-sqlite")]),
            member(TESTKIT, &[normal(DOMAIN), normal("tokio")]),
            member(WIRING, &[normal(DOMAIN), normal("colstore-sqlite"), normal("colstore-fs")]),
            member("colstore-cli", &[normal(APP), normal(WIRING), normal("clap"), dev(TESTKIT)]),
            external("serde", &[]),
            external("futures", &[]),
            external("mockall", &[]),
            external("tokio", &["mio"]),
            external("mio", &[]),
            external("walkdir", &[]),
            external("sqlx", &["tokio"]),
            external("clap", &[]),
        ]
    }

    fn with(mut packages: Vec<Package>, name: &str, edit: impl FnOnce(&mut Package)) -> Vec<Package> {
        edit(packages.iter_mut().find(|p| p.name == name).expect("fixture package"));
        packages
    }

    fn graph_rules(ws: &Workspace) -> Vec<Violation> {
        let mut v = check_domain_dependencies(ws);
        v.extend(check_adapter_isolation(ws));
        v.extend(check_testkit_dev_only(ws));
        v.extend(check_adapters_via_wiring(ws));
        v.extend(check_core_independence(ws));
        v
    }

    #[test]
    fn healthy_fixture_has_no_violations() {
        assert_eq!(graph_rules(&workspace(&healthy())), []);
    }

    #[test]
    fn domain_rejects_an_io_dependency() {
        let ws = workspace(&with(healthy(), DOMAIN, |p| p.deps.push(normal("sqlx"))));
        let v = check_domain_dependencies(&ws);
        assert_reports(&v, "domain-dependencies", &["declares `sqlx` in [dependencies]", "adapter crate"]);
        // sqlx → tokio → mio is the same mistake; it is reported once.
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[test]
    fn domain_rejects_a_build_dependency_outside_the_allow_list() {
        let ws = workspace(&with(healthy(), DOMAIN, |p| p.deps.push(("clap", DepKind::Build, false))));
        assert_reports(&check_domain_dependencies(&ws), "domain-dependencies", &["`clap` in [build-dependencies]"]);
    }

    #[test]
    fn domain_requires_mockall_to_be_optional() {
        let ws = workspace(&with(healthy(), DOMAIN, |p| p.deps[2] = normal("mockall")));
        assert_reports(&check_domain_dependencies(&ws), "domain-dependencies", &["`mockall`", "optional = true"]);
    }

    #[test]
    fn domain_rejects_io_reached_through_an_allowed_dependency() {
        // futures → tokio stands for a feature on an allowed crate that drags in a runtime.
        let mut packages = with(healthy(), "futures", |p| p.deps.push(normal("tokio")));
        assert_reports(
            &check_domain_dependencies(&workspace(&packages)),
            "domain-dependencies",
            &["compiles `tokio` through colstore-domain → futures → tokio"],
        );
        packages = healthy();
        assert_eq!(check_domain_dependencies(&workspace(&packages)), [], "a tokio dev-dependency is fine");
    }

    #[test]
    fn domain_must_exist() {
        let packages: Vec<Package> = healthy().into_iter().filter(|p| p.name != DOMAIN).map(without_dep(DOMAIN)).collect();
        assert_reports(
            &check_domain_dependencies(&workspace(&packages)),
            "domain-dependencies",
            &["expected a workspace member named `colstore-domain`"],
        );
    }

    fn without_dep(name: &'static str) -> impl Fn(Package) -> Package {
        move |mut p| {
            p.deps.retain(|(dep, _, _)| *dep != name);
            p
        }
    }

    #[test]
    fn adapters_must_not_depend_on_each_other() {
        let ws = workspace(&with(healthy(), "colstore-fs", |p| p.deps.push(normal("colstore-sqlite"))));
        let v = check_adapter_isolation(&ws);
        assert_reports(&v, "adapter-isolation", &["adapter colstore-fs declares adapter `colstore-sqlite` in [dependencies]"]);
        assert_eq!(v.len(), 1);
        // The same edge is not reported again as "only wiring may depend on adapters".
        assert_eq!(check_adapters_via_wiring(&ws), []);
    }

    #[test]
    fn testkit_must_not_be_a_normal_dependency() {
        let ws = workspace(&with(healthy(), APP, |p| p.deps.push(normal(TESTKIT))));
        assert_reports(&check_testkit_dev_only(&ws), "testkit-dev-only", &["colstore-app declares colstore-testkit in [dependencies]"]);
    }

    #[test]
    fn testkit_must_not_be_an_optional_dependency() {
        let ws = workspace(&with(healthy(), "colstore-cli", |p| p.deps.push((TESTKIT, DepKind::Normal, true))));
        assert_reports(
            &check_testkit_dev_only(&ws),
            "testkit-dev-only",
            &["colstore-cli declares colstore-testkit in [dependencies] (optional)"],
        );
    }

    #[test]
    fn testkit_must_not_be_reached_transitively() {
        let mut packages = with(healthy(), "colstore-cli", |p| p.deps.push(normal("colstore-helper")));
        packages.push(member("colstore-helper", &[normal(TESTKIT)]));
        let v = check_testkit_dev_only(&workspace(&packages));
        assert_reports(&v, "testkit-dev-only", &["colstore-helper declares colstore-testkit"]);
        assert_reports(
            &v,
            "testkit-dev-only",
            &["colstore-cli compiles colstore-testkit", "colstore-cli → colstore-helper → colstore-testkit"],
        );
    }

    #[test]
    fn shells_reach_adapters_only_through_wiring() {
        let ws = workspace(&with(healthy(), "colstore-cli", |p| p.deps.push(normal("colstore-sqlite"))));
        assert_reports(
            &check_adapters_via_wiring(&ws),
            "adapters-via-wiring",
            &["colstore-cli declares adapter `colstore-sqlite`", "thin shell"],
        );
    }

    #[test]
    fn only_wiring_depends_on_adapters() {
        let ws = workspace(&with(healthy(), TESTKIT, |p| p.deps.push(normal("colstore-fs"))));
        assert_reports(
            &check_adapters_via_wiring(&ws),
            "adapters-via-wiring",
            &["colstore-testkit declares adapter `colstore-fs`", "composition root"],
        );
    }

    #[test]
    fn core_must_not_depend_on_wiring_or_shells() {
        let ws = workspace(&with(healthy(), APP, |p| p.deps.push(normal(WIRING))));
        assert_reports(&check_core_independence(&ws), "core-independence", &["colstore-app declares `colstore-wiring` in [dependencies]"]);
        let ws = workspace(&with(healthy(), DOMAIN, |p| p.deps.push(normal("colstore-cli"))));
        assert_reports(&check_core_independence(&ws), "core-independence", &["colstore-domain declares `colstore-cli`"]);
    }

    #[test]
    fn core_must_not_dev_depend_on_an_adapter() {
        let ws = workspace(&with(healthy(), APP, |p| p.deps.push(dev("colstore-sqlite"))));
        assert_reports(
            &check_core_independence(&ws),
            "core-independence",
            &["colstore-app declares `colstore-sqlite` in [dev-dependencies]"],
        );
    }

    #[test]
    fn core_must_not_reach_adapters_transitively() {
        let mut packages = with(healthy(), APP, |p| p.deps.push(normal("colstore-helper")));
        packages.push(member("colstore-helper", &[normal("colstore-fs")]));
        let v = check_core_independence(&workspace(&packages));
        assert_reports(
            &v,
            "core-independence",
            &["colstore-app compiles `colstore-fs` through colstore-app → colstore-helper → colstore-fs"],
        );
    }

    fn manifests(ws: &Workspace, texts: &HashMap<PathBuf, String>) -> Vec<Violation> {
        check_manifests(ws, &|path| texts.get(path).cloned().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    fn manifest_texts(ws: &Workspace, text: &str) -> HashMap<PathBuf, String> {
        ws.members.iter().map(|m| (m.manifest_path.clone(), text.to_owned())).collect()
    }

    const GOOD_MANIFEST: &str = "[package]\nname = \"x\"\npublish.workspace = true\n\n[lints]\nworkspace = true\n";

    #[test]
    fn manifests_with_lints_and_no_publish_pass() {
        let ws = workspace(&healthy());
        assert_eq!(manifests(&ws, &manifest_texts(&ws, GOOD_MANIFEST)), []);
        assert_eq!(manifests(&ws, &manifest_texts(&ws, "lints.workspace = true\n\n[package]\nname = \"x\"\n")), []);
    }

    #[test]
    fn manifests_must_inherit_workspace_lints() {
        let ws = workspace(&healthy());
        let mut texts = manifest_texts(&ws, GOOD_MANIFEST);
        let app = ws.member(APP).unwrap();
        texts.insert(app.manifest_path.clone(), "[package]\nname = \"colstore-app\"\n".into());
        let v = manifests(&ws, &texts);
        assert_eq!(rules(&v), ["manifest-hygiene"]);
        assert_reports(&v, "manifest-hygiene", &["crates/colstore-app/Cargo.toml: colstore-app does not have `[lints] workspace = true`"]);
        texts.insert(app.manifest_path.clone(), "[lints]\nworkspace = false\n".into());
        assert_reports(&manifests(&ws, &texts), "manifest-hygiene", &["colstore-app does not have `[lints] workspace = true`"]);
    }

    #[test]
    fn manifests_must_not_be_publishable() {
        let ws = workspace(&with(healthy(), WIRING, |p| p.publish = None));
        let v = manifests(&ws, &manifest_texts(&ws, GOOD_MANIFEST));
        assert_reports(&v, "manifest-hygiene", &["colstore-wiring can be published"]);
        let ws = workspace(&with(healthy(), WIRING, |p| p.publish = Some(vec!["crates-io"])));
        assert_reports(&manifests(&ws, &manifest_texts(&ws, GOOD_MANIFEST)), "manifest-hygiene", &["may be published to crates-io"]);
    }

    #[test]
    fn unreadable_or_invalid_manifests_are_reported() {
        let ws = workspace(&healthy());
        assert_reports(&manifests(&ws, &HashMap::new()), "manifest-hygiene", &["cannot read the manifest"]);
        assert_reports(&manifests(&ws, &manifest_texts(&ws, "[lints\n")), "manifest-hygiene", &["not valid TOML"]);
    }

    /// `/<dir>/<rest>`, assembled so this file never contains a machine path literally.
    fn abs(dir: &str, rest: &str) -> String {
        format!("/{dir}/{rest}")
    }

    fn patterns() -> Vec<String> {
        machine_path_patterns(&[Path::new(&abs("srv", "ci/colstore")), Path::new(&abs("var", "lib/builder"))])
    }

    #[test]
    fn machine_paths_are_the_shared_machine_and_this_machine() {
        assert_eq!(patterns(), [abs("work", ""), abs("root", ""), abs("srv", "ci/colstore/"), abs("var", "lib/builder/")]);
        // A directory already covered by a generic pattern, or too shallow to be specific, adds nothing.
        assert_eq!(machine_path_patterns(&[Path::new(&abs("work", "main")), Path::new("/srv"), Path::new("relative/dir")]).len(), 2);
    }

    #[test]
    fn machine_paths_in_code_are_reported_with_file_and_line() {
        let text = format!("fn main() {{\n    let p = \"{}\";\n}}\n", abs("work", "main/target/debug/col"));
        let v = check_text("crates/colstore-cli/src/main.rs", &text, &patterns());
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_reports(
            &v,
            "no-machine-paths",
            &[&format!("crates/colstore-cli/src/main.rs:2: `{}`", abs("work", "main/target/debug/col")), "tempfile"],
        );
    }

    #[test]
    fn machine_paths_in_snapshots_are_reported_with_insta_advice() {
        let text = format!("---\nsource: tests/e2e/main.rs\n---\nstore: {}\n", abs("srv", "ci/colstore/target/tmp/.tmpX1/.colstore"));
        let v = check_text("tests/e2e/snapshots/e2e__init.snap", &text, &patterns());
        assert_reports(&v, "no-machine-paths", &["e2e__init.snap:4:", "insta filter"]);
        let text = format!("url = \"file://{}\"\nhome = {}\n", abs("root", "backups"), abs("var", "lib/builder/notes"));
        assert_eq!(check_text("x.toml", &text, &patterns()).len(), 2);
    }

    #[test]
    fn paths_that_merely_contain_a_pattern_are_not_reported() {
        let text = [
            format!("see https://example.com{}", abs("work", "x")),
            format!("let rel = \"src{}\";", abs("work", "mod.rs")),
            format!("let up = \"..{}\";", abs("root", "x")),
            format!("let t = \"~{}\";", abs("work", "x")),
            format!("let key = \"{}\"; // {ALLOW_MACHINE_PATH}: rejected as an absolute key", abs("root", "x")),
            "let root = \"/workspace/x\"; let h = \"/rootless/y\";".to_owned(),
            // Made-up absolute paths used as test data are the same on every machine.
            format!("PathBuf::from(\"{}\"), Path::new(\"/x/.colstore\")", abs("home", "u/proj/.colstore")),
        ]
        .join("\n");
        assert_eq!(check_text("crates/colstore-domain/src/names.rs", &text, &patterns()), []);
    }

    #[test]
    fn scan_skips_target_git_binary_and_pending_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let leak = format!("p = \"{}\"\n", abs("work", "main"));
        let write = |rel: &str, bytes: &[u8]| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        write("crates/a/src/lib.rs", leak.as_bytes());
        write("crates/a/tests/snapshots/a.snap", leak.as_bytes());
        write("crates/a/target/debug/out.txt", leak.as_bytes());
        write("crates/a/tests/snapshots/a.snap.new", leak.as_bytes());
        write("tests/.git/config", leak.as_bytes());
        write("tests/fixtures/blob.bin", &[leak.as_bytes(), &[0, 159, 146, 150]].concat());
        write("xtask/src/main.rs", b"fn main() {}\n");
        write("docs/NOTES.md", leak.as_bytes());
        let mut v = Vec::new();
        let patterns = machine_path_patterns(&[root]);
        for dir in SCANNED_DIRS {
            scan_tree(root, &root.join(dir), &patterns, &mut v);
        }
        let files: Vec<&str> = v.iter().map(|v| v.message.split(':').next().unwrap()).collect();
        assert_eq!(files, ["crates/a/src/lib.rs", "crates/a/tests/snapshots/a.snap"]);
    }

    #[test]
    fn violations_name_their_rule() {
        let v = Violation::new("adapter-isolation", "x".into());
        assert_eq!(v.to_string(), "[adapter-isolation] x");
    }

    // The rules on the real workspace: these are what `cargo test --workspace` enforces.

    fn real_workspace() -> &'static Workspace {
        static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
        WORKSPACE.get_or_init(|| Workspace::load(&crate::project_root()).unwrap_or_else(|err| panic!("{err}")))
    }

    #[track_caller]
    fn assert_clean(violations: Vec<Violation>) {
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            panic!("{} tidy violation(s):\n\n{}\n", violations.len(), list.join("\n\n"));
        }
    }

    #[test]
    fn workspace_domain_dependencies() {
        assert_clean(check_domain_dependencies(real_workspace()));
    }

    #[test]
    fn workspace_adapter_isolation() {
        assert_clean(check_adapter_isolation(real_workspace()));
    }

    #[test]
    fn workspace_testkit_dev_only() {
        assert_clean(check_testkit_dev_only(real_workspace()));
    }

    #[test]
    fn workspace_adapters_via_wiring() {
        assert_clean(check_adapters_via_wiring(real_workspace()));
    }

    #[test]
    fn workspace_core_independence() {
        assert_clean(check_core_independence(real_workspace()));
    }

    #[test]
    fn workspace_manifest_hygiene() {
        assert_clean(check_manifests(real_workspace(), &|path| std::fs::read_to_string(path)));
    }

    #[test]
    fn workspace_no_machine_paths() {
        assert_clean(check_machine_paths(real_workspace()));
    }

    #[test]
    fn workspace_shell_port_writes() {
        assert_clean(check_shell_port_writes(&shell_sources(real_workspace()), KNOWN_SHELL_PORT_WRITES));
    }

    #[test]
    fn workspace_leaf_crates() {
        assert_clean(check_leaves(real_workspace()));
    }

    #[test]
    fn a_leaf_that_depends_on_a_member_is_reported() {
        let mut packages = healthy();
        packages.push(member("colstore-durable", &[normal("serde"), dev(TESTKIT)]));
        assert_eq!(check_leaves(&workspace(&packages)), [], "external and dev dependencies are fine");
        let ws = workspace(&with(packages, "colstore-durable", |p| p.deps.push(normal(DOMAIN))));
        let v = check_leaves(&ws);
        assert_reports(&v, "leaf-crates", &["colstore-durable declares workspace member `colstore-domain` in [dependencies]"]);
        assert_eq!(v.len(), 1, "{v:#?}");
    }

    #[test]
    fn workspace_code_map() {
        assert_clean(check_code_map_of(real_workspace()));
    }

    #[test]
    fn the_code_map_names_exactly_the_members() {
        let md = "# A\n## Code map\n### `crates/a`\ntext\n### `xtask/`\n### `tests/` (package `e2e`)\n## Ports\n### `crates/not-a-heading-of-the-map`\n";
        let members = |m: &[&str]| m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(check_code_map(md, &members(&["crates/a", "xtask", "tests"])).is_empty());
        let v = check_code_map(md, &members(&["crates/a", "xtask", "tests", "crates/b"]));
        assert_reports(&v, "code-map", &["crates/b", "no heading"]);
        let v = check_code_map(md, &members(&["xtask", "tests"]));
        assert_reports(&v, "code-map", &["crates/a", "no workspace member"]);
        assert_reports(&check_code_map("# nothing\n", &[]), "code-map", &["no `## Code map`"]);
    }

    #[test]
    fn workspace_short_commands() {
        assert_clean(check_command_sizes(&shell_sources(real_workspace())));
    }

    #[test]
    fn a_long_command_file_is_reported() {
        let long = "// x\n".repeat(COMMAND_FILE_MAX_LINES + 1);
        let v = check_command_sizes(&[source("crates/colstore-cli/src/commands/big.rs", &long)]);
        assert_reports(&v, "short-commands", &["commands/big.rs", "401 lines"]);
        let fine = "// x\n".repeat(COMMAND_FILE_MAX_LINES);
        assert!(check_command_sizes(&[source("crates/colstore-cli/src/commands/ok.rs", &fine)]).is_empty());
        assert!(check_command_sizes(&[source("crates/colstore-cli/src/cli.rs", &long)]).is_empty(), "only commands/ is bounded");
    }

    fn source(path: &str, text: &str) -> (String, String) {
        (path.to_owned(), text.to_owned())
    }

    #[test]
    fn a_port_write_added_to_the_cli_is_reported_with_its_place() {
        let cli = "crates/colstore-cli/src/commands/new.rs";
        let v = check_shell_port_writes(&[source(cli, "fn f() {\n    store.repo().delete_documents(&c, keys).await?;\n}\n")], &[]);
        assert_reports(&v, "shell-port-writes", &["crates/colstore-cli/src/commands/new.rs:2", ".delete_documents(", "colstore-app"]);
        let v = check_shell_port_writes(&[source(cli, "queue.cancel(JobId(1)).await?;\n")], &[]);
        assert_reports(&v, "shell-port-writes", &["queue.cancel("]);
    }

    #[test]
    fn app_calls_comments_and_other_cancels_are_not_port_writes() {
        let text = "colstore_app::remove_documents(&**store.repo(), None, &c, keys, &|_| {}).await?;\n\
                    // store.repo().put_batch(&c, docs) would be a port write\n\
                    stop.cancel();\n";
        assert!(check_shell_port_writes(&[source("crates/colstore-cli/src/commands/new.rs", text)], &[]).is_empty());
    }

    #[test]
    fn a_paid_debt_must_leave_the_list() {
        let (path, call) = ("crates/colstore-cli/src/commands/docs.rs", ".put_batch(");
        // Listed as debt and still there: no violation.
        let text = "store.repo().put_batch(&c, docs).await?;\n";
        assert!(check_shell_port_writes(&[source(path, text)], &[(path, call)]).is_empty());
        // Paid: the entry must go.
        let v = check_shell_port_writes(&[source(path, "fn f() {}\n")], &[(path, call)]);
        assert_reports(&v, "shell-port-writes", &[path, call, "remove it from KNOWN_SHELL_PORT_WRITES"]);
    }
}
