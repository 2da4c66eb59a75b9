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
