//! Killing a command while it writes, and knowing what it had made durable.
//!
//! `col` prints, with `RUST_LOG=colstore::commit=debug`, a `writing began` line before an operation first changes the
//! store and a `durable … documents=N` line after each write it made durable (`colstore_app::commit_log`). The harness
//! starts the command, waits for `writing began`, lets it run for a random part of its usual writing time, and sends
//! SIGKILL. A kill counts as *mid-write* only when the command was still running then; each command's test goes on
//! until at least [`MIN_MID_WRITE_KILLS`] such kills, and reports how many rounds that took.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use colstore_e2e::{COMMAND_TIMEOUT, Output, TestStore};

use crate::Rng;

/// Each mutating command is killed mid-write at least this many times.
pub const MIN_MID_WRITE_KILLS: usize = 20;

/// How one run ended.
#[derive(Debug)]
pub struct Run {
    /// Killed while running, after it said writing began.
    pub mid_write: bool,
    /// It exited by itself (before the kill or without ever writing), with this output.
    pub finished: Option<Output>,
    /// Documents its `durable` lines counted (created, changed or deleted, and durable before the kill).
    pub durable: u64,
    /// The durable steps its log named, as (op, step): a backup's id, `removed <id>`, `switched`.
    pub steps: Vec<(String, String)>,
    /// How long it wrote before it exited or was killed.
    pub wrote_for: Duration,
}

impl Run {
    /// The steps of `op`.
    pub fn steps_of(&self, op: &str) -> Vec<&str> {
        self.steps.iter().filter(|(o, _)| o == op).map(|(_, s)| s.as_str()).collect()
    }
}

impl Run {
    /// Asserts the command finished with exit 0 and returns its output.
    #[track_caller]
    pub fn completed(&self, what: &str) -> &Output {
        let out = self.finished.as_ref().unwrap_or_else(|| panic!("{what}: the command was killed"));
        assert_eq!(out.code, 0, "{what}: the command failed before it could be killed\n{out}");
        out
    }
}

/// Runs `args` on `s` and SIGKILLs it a random time (up to `window`) after it said writing began. `window` adapts: a
/// command that finishes first shows how long it writes, and the next delays stay within that.
pub struct Killer {
    window: Duration,
    rng: Rng,
    /// Runs so far (killed or let finish), kill attempts, and kills that landed mid-write.
    pub runs: usize,
    pub rounds: usize,
    pub mid_write: usize,
    /// Mid-write kills that came after some of the command's writes were durable (the oracle then requires them).
    pub after_durable: usize,
}

impl Killer {
    /// A killer whose first delays are up to `window`, drawing them from `rng`.
    pub fn new(rng: Rng, window: Duration) -> Self {
        Self { window, rng, runs: 0, rounds: 0, mid_write: 0, after_durable: 0 }
    }

    /// Whether enough kills landed mid-write (or `max_runs` runs are done: then [`Killer::assert_enough`] fails).
    pub fn done(&self, max_runs: usize) -> bool {
        self.mid_write >= MIN_MID_WRITE_KILLS || self.runs >= max_runs
    }

    /// Whether the next run should be killed: three runs in four; the fourth runs to the end, so the window learns
    /// how long the command writes and completed runs are checked too.
    pub fn next_kills(&self) -> bool {
        self.runs % 4 != 3
    }

    /// Fails unless [`MIN_MID_WRITE_KILLS`] kills landed mid-write; prints how many rounds that took.
    #[track_caller]
    pub fn assert_enough(&self, what: &str) {
        println!(
            "{what}: {} of {} kills landed mid-write, {} of them after durable writes",
            self.mid_write, self.rounds, self.after_durable
        );
        assert!(
            self.mid_write >= MIN_MID_WRITE_KILLS,
            "{what}: only {} of {} kills landed while the command wrote; the test proved too little",
            self.mid_write,
            self.rounds
        );
    }

    /// Runs `args`, killing it mid-write when it lasts long enough; `kill` false lets it run to the end.
    pub fn run(&mut self, s: &TestStore, args: &[&str], kill: bool) -> Run {
        self.run_with_env(s, args, kill, &[])
    }

    /// [`Killer::run`] with extra environment variables.
    pub fn run_with_env(&mut self, s: &TestStore, args: &[&str], kill: bool, env: &[(&str, &str)]) -> Run {
        let delay = Duration::from_micros(self.rng.range(0, self.window.as_micros().max(1) as u64));
        let run = run_killing_after(s, args, kill.then_some(delay), env);
        self.runs += 1;
        self.rounds += usize::from(kill);
        self.mid_write += usize::from(run.mid_write);
        self.after_durable += usize::from(run.mid_write && (run.durable > 0 || !run.steps.is_empty()));
        if run.finished.is_some() && run.wrote_for > Duration::ZERO {
            // Aim within the writing time seen (at least 1 ms, so very short writes are still aimed at).
            self.window = ((self.window + run.wrote_for) / 2).max(Duration::from_millis(1));
        }
        run
    }
}

/// Runs `args` with the commit log on; with `kill_after`, SIGKILLs it that long after `writing began`.
fn run_killing_after(s: &TestStore, args: &[&str], kill_after: Option<Duration>, env: &[(&str, &str)]) -> Run {
    let mut cmd = s.cmd(args);
    cmd.envs(env.iter().copied());
    cmd.env("RUST_LOG", "colstore::commit=debug").stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start col {args:?}: {e}"));
    let mut stdout = child.stdout.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let started = Instant::now();
    let mut began = None;
    // Until the command says it writes, or exits (the channel closes with stderr).
    while began.is_none() {
        match rx.recv_timeout(COMMAND_TIMEOUT.saturating_sub(started.elapsed())) {
            Ok(line) => {
                if is_began(&line) {
                    began = Some(Instant::now());
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("col {args:?} neither wrote nor exited within {COMMAND_TIMEOUT:?}:\n{}", lines.join("\n"));
            }
        }
    }
    let mut mid_write = false;
    if let (Some(at), Some(delay)) = (began, kill_after) {
        std::thread::sleep(delay.saturating_sub(at.elapsed()));
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL");
            mid_write = true;
        }
    }
    let status = child.wait().expect("wait for col");
    let ended = Instant::now();
    err_reader.join().expect("stderr reader");
    lines.extend(rx.try_iter());
    let stdout = out_reader.join().expect("stdout reader");
    let durable = lines.iter().filter(|l| is_durable(l) && l.contains("documents=")).map(|l| field(l, "documents")).sum();
    let steps = lines.iter().filter(|l| is_durable(l) && l.contains("step=")).map(|l| (quoted(l, "op"), quoted(l, "step"))).collect();
    let wrote_for = began.map_or(Duration::ZERO, |at| ended - at);
    let finished = (!mid_write).then(|| {
        let stderr: Vec<&str> = lines.iter().map(String::as_str).filter(|l| !is_began(l) && !is_durable(l)).collect();
        Output::from_std(std::process::Output { status, stdout: stdout.into_bytes(), stderr: stderr.join("\n").into_bytes() })
    });
    Run { mid_write, finished, durable, steps, wrote_for }
}

/// A commit-log line saying writing began.
fn is_began(line: &str) -> bool {
    line.trim_start().starts_with("DEBUG") && line.contains("writing began op=")
}

/// A commit-log line counting durable documents.
fn is_durable(line: &str) -> bool {
    line.trim_start().starts_with("DEBUG") && line.contains("durable op=")
}

/// The quoted value of `name=` in a commit-log line.
fn quoted(line: &str, name: &str) -> String {
    let at = line.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("no {name}=\"…\" in {line:?}"));
    line[at + name.len() + 2..].split('"').next().unwrap_or_default().to_owned()
}

/// The number after `name=` in a commit-log line.
fn field(line: &str, name: &str) -> u64 {
    let at = line.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name}= in {line:?}"));
    line[at + name.len() + 1..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a number")
}
