// The whole program, shared by the `col` and `colstore` binaries (src/main.rs and src/bin/colstore.rs include it, so
// that both are built from one source without a library crate; module paths resolve relative to this file).

mod cli;
mod commands;
mod error;
mod outfile;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::error::{CliError, exit};

fn main() -> ExitCode {
    return_large_buffers_to_the_os();
    // Never show a Rust panic or backtrace to users; say what happened and how to report it.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error: {msg}{at}\n  hint: this is a bug in colstore; please report it with the command you ran");
    }));

    let cli = parse_args();
    init_tracing(cli.verbose, cli.quiet);

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&CliError::new(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.closed_output => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Makes glibc's allocator give every buffer of 1 MiB or more back to the system when it is freed.
///
/// Large documents move in 4 MiB pieces, each allocated on whichever thread reads, decompresses or hashes it. By
/// default glibc raises its mmap threshold past the size of the first large buffer freed, and from then on keeps
/// freed pieces in the arena of the thread that used them: the resident size then depends on how many threads the
/// scheduler happened to use (a 256 MiB restore peaked between 120 and 205 MiB on a loaded machine). A fixed
/// threshold turns that off, so the peak is what the program holds at once (about 100 MiB), on any machine. The cost
/// is a fresh mapping per large buffer, about a tenth of a large restore's time.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // mallopt sets a tunable of the C allocator; std has no way to reach it
fn return_large_buffers_to_the_os() {
    // SAFETY: mallopt only changes a malloc tunable; it runs first in main, before any other thread exists.
    // Its result is ignored: when glibc refuses, memory is merely managed as by default.
    let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_to_the_os() {}

/// Parses the command line; the program names itself `colstore` when run under that name (`--version`, usage lines).
fn parse_args() -> Cli {
    let invoked = std::env::args_os().next().and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_os_string()));
    let mut cmd = Cli::command();
    if invoked.is_some_and(|n| n == "colstore") {
        cmd = cmd.name("colstore");
    }
    Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit())
}

fn report(e: &CliError) -> ExitCode {
    if !e.message.is_empty() {
        eprintln!("error: {}", e.message);
    }
    if let Some(h) = &e.hint {
        eprintln!("  hint: {h}");
    }
    ExitCode::from(u8::try_from(e.code).unwrap_or(exit::ERROR as u8))
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
