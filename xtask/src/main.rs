//! `cargo xtask` — colstore's automation, written in Rust so it runs wherever cargo runs.
//!
//! - `cargo xtask ci` runs `.ci/run`, the exact script CI runs.
//! - `cargo xtask tidy` checks the workspace's architecture rules (see `tidy.rs`); the same checks run as `#[test]`s,
//!   so `cargo test --workspace` enforces them.
//! - `cargo xtask bench` measures the release `col` binary and parts of the sync engine against the performance
//!   targets and records the figures in `docs/BENCHMARKS.md`.
//! - `cargo xtask fuzz NAME --seconds N` runs one fuzz target of `fuzz/` (cargo-fuzz, nightly).

mod bench;
mod fuzz;
mod metadata;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                                  run .ci/run (fmt, clippy, cargo deny, tests), exactly as CI does
  tidy                                check the workspace's dependency, manifest and path rules
  bench [--docs N] [--out FILE] [--only AREA[,AREA]] [--large-bytes N]
                                      benchmark the release `col` binary and the sync engine; AREA is ingest,
                                      sync, search, queue, backup (against restic), reconcile (filesystem
                                      mode, against git status) or large (one document of --large-bytes,
                                      2 GiB by default: peak memory of put, get, backup, restore, export,
                                      import) (default: all, --docs 100000, --out docs/BENCHMARKS.md; a
                                      partial run writes only with --out; a relative FILE is taken from the
                                      workspace root)
  fuzz NAME [--seconds N]             run fuzz target NAME (names, config, export, backup_format,
                                      snapshot) for N seconds (default 60) with cargo-fuzz on nightly;
                                      failing inputs land in fuzz/artifacts/NAME/
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("ci") if args.len() == 1 => ci(&root),
        Some("tidy") if args.len() == 1 => tidy(&root),
        Some("bench") => parsed_then_run(bench::Args::parse(&args[1..]), |a| bench::run(&root, &a)),
        Some("fuzz") => parsed_then_run(fuzz::Args::parse(&args[1..]), |a| fuzz::run(&root, &a)),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown command or arguments: {other} {}", args[1..].join(" "))),
        None => usage_error("missing command"),
    }
}

/// Runs a command whose arguments parsed (a usage error otherwise), printing its error.
fn parsed_then_run<A>(args: Result<A, String>, run: impl FnOnce(A) -> Result<(), String>) -> ExitCode {
    match args.map(run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
        Err(err) => usage_error(&err),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {}\n\n{USAGE}", message.trim_end());
    ExitCode::from(2)
}

/// The workspace root: xtask lives in `<root>/xtask`, wherever the user runs cargo from.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one level below the workspace root").to_path_buf()
}

/// Runs `.ci/run` rather than re-implementing its steps, so `cargo xtask ci` can never drift from what CI runs.
fn ci(root: &Path) -> ExitCode {
    let status = match Command::new("bash").arg(root.join(".ci/run")).current_dir(root).status() {
        Ok(status) => status,
        Err(err) => {
            eprintln!("error: cannot run `bash .ci/run`: {err}");
            return ExitCode::FAILURE;
        }
    };
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        // Exit codes above 255 do not exist on Unix; clamp instead of wrapping to 0.
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)),
        None => {
            eprintln!("error: .ci/run was killed by a signal ({status})");
            ExitCode::FAILURE
        }
    }
}

fn tidy(root: &Path) -> ExitCode {
    let workspace = match metadata::Workspace::load(root) {
        Ok(workspace) => workspace,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let violations = tidy::check_all(&workspace);
    if violations.is_empty() {
        println!("tidy: ok ({} rules, {} workspace members)", tidy::RULES.len(), workspace.members.len());
        return ExitCode::SUCCESS;
    }
    for violation in &violations {
        println!("{violation}\n");
    }
    println!("tidy: {} violation(s)", violations.len());
    ExitCode::FAILURE
}
