//! `peak-rss OUT PROGRAM [ARG]…`: runs PROGRAM (stdin, stdout and stderr inherited), writes its peak resident set size
//! in KiB to the file OUT, and exits as it did (128 + N when signal N killed it).
//!
//! The end-to-end tests measure a command's memory through this small process rather than directly: Linux carries
//! the spawning process's memory high-water mark into the child's `ru_maxrss` (the child shares or copies its
//! parent's memory until `exec`), so a test process that once held a large file would make every command it spawns
//! look as large. This process stays a few MiB, so what it reports is the command's own peak.

use std::process::{Command, ExitCode};

#[allow(unsafe_code)] // wait4 reaps the child and reports its peak RSS; std offers no rusage of one child
fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: peak-rss OUT PROGRAM [ARG]…");
        return ExitCode::from(2);
    };
    let child = match Command::new(&program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peak-rss: cannot run {}: {e}", program.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; `pid` is our child, not yet reaped (`child` is never waited).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        eprintln!("peak-rss: wait4 failed: {}", std::io::Error::last_os_error());
        return ExitCode::from(2);
    }
    std::mem::forget(child);
    if let Err(e) = std::fs::write(&out, usage.ru_maxrss.to_string()) {
        eprintln!("peak-rss: cannot write {}: {e}", out.to_string_lossy());
        return ExitCode::from(2);
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
