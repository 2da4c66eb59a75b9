//! The backup area (`--only backup`): `col backup`, `col backup verify --read-data` and `col restore` against restic
//! backing up the same documents, in the same run.
//!
//! The documents are distinct text files of about 2 KiB (see [`BackupCorpus`]), written into a folder and `col add`-ed
//! into a fresh store (not timed). Then each step runs for colstore and then for restic: a first backup; a second one
//! after 1 % of the files were rewritten with new content of the same size (and `col add`-ed again, not timed); a full
//! read-back check; a restore into a fresh place. colstore backs up its store into its default `file://` repository
//! (`.colstore/backups`); restic backs up the folder that was `col add`-ed, into a repository beside the store, on the
//! same disk, with its cache there too. Repository sizes are the sums of the file sizes in the repository folders.
//!
//! Every timed command, of either tool, runs under the same memory probe: GNU `time -f %M` (installed with apt-get
//! when missing) or else polling `VmHWM` in `/proc/<pid>/status`. restic comes from `PATH`, or from
//! `apt-get install -y restic` when it is missing; when it cannot be had, or fails, colstore's figures are reported
//! alone and the comparisons say why, so the rest of the benchmark is never lost to it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::corpus::{SplitMix64, text_sized};
use super::report::{Figure, group_thousands};
use super::{Col, create_dirs, dir_size, scrub_env, step};

/// Sizes of the backup corpus's files, in bytes: 1.5–2.5 KiB, 2 KiB on average, so 100 000 files are about 205 MB.
pub(crate) const MIN_SIZE: usize = 1536;
pub(crate) const MAX_SIZE: usize = 2560;
/// Seed of the backup corpus: its own, so its files are neither the ingest corpus's nor the sync corpus's.
pub(crate) const SEED: u64 = 0xBAC4_0B5E_EDC0_1DA7;
/// Mixed into a file's seed when it is rewritten, and into the choice of the files to rewrite.
const REWRITE_SALT: u64 = 0x2E3B_17E5_A1D0_C0DE;
/// Share of the documents rewritten before the second backup.
pub(crate) const CHANGED_PERCENT: usize = 1;

/// First backup: colstore's throughput at least this many times restic's.
pub(crate) const FIRST_BACKUP_TARGET_VS_RESTIC: f64 = 1.5;
/// Restore of the whole store into a fresh one.
pub(crate) const RESTORE_TARGET: Duration = Duration::from_secs(60);
/// Peak resident memory of `col backup` and `col restore` (MB = 10^6 bytes, like every MB in the report).
pub(crate) const PEAK_RSS_TARGET_BYTES: u64 = 200_000_000;

const RESTIC_PASSWORD: &str = "bench";
/// How often the `VmHWM` fallback samples a running process.
const POLL_EVERY: Duration = Duration::from_millis(2);
const MB: f64 = 1e6;

/// `docs` distinct files named `doc-0000000.txt`, …, each of [`MIN_SIZE`]..=[`MAX_SIZE`] bytes of prose-like text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackupCorpus {
    pub(crate) docs: usize,
    pub(crate) seed: u64,
}

impl BackupCorpus {
    pub(crate) fn new(docs: usize) -> Self {
        Self { docs, seed: SEED }
    }

    pub(crate) fn file_name(i: usize) -> String {
        format!("doc-{i:07}.txt")
    }

    fn file_seed(&self, i: usize) -> u64 {
        self.seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
    }

    pub(crate) fn content(&self, i: usize) -> Vec<u8> {
        assert!(i < self.docs, "file {i} of a {}-file corpus", self.docs);
        text_sized(self.file_seed(i), MIN_SIZE, MAX_SIZE)
    }

    /// New content for file `i`, of exactly the size of its original content.
    pub(crate) fn rewritten(&self, i: usize) -> Vec<u8> {
        let size = self.content(i).len();
        text_sized(self.file_seed(i) ^ REWRITE_SALT, size, size)
    }

    /// How many files the second backup finds changed: [`CHANGED_PERCENT`] of them, at least one.
    pub(crate) fn changed_count(&self) -> usize {
        (self.docs * CHANGED_PERCENT / 100).max(1)
    }

    /// The files to rewrite, spread at random (deterministically) over the corpus, in ascending order.
    pub(crate) fn changed(&self) -> Vec<usize> {
        let k = self.changed_count();
        let mut rng = SplitMix64::new(self.seed ^ REWRITE_SALT);
        let mut all: Vec<usize> = (0..self.docs).collect();
        // The first k steps of a Fisher–Yates shuffle pick k distinct files uniformly.
        for i in 0..k {
            let j = i + rng.below((self.docs - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(k);
        all.sort_unstable();
        all
    }

    /// Writes every file into `dir` (which must exist) and returns their total size.
    pub(crate) fn write_to(&self, dir: &Path) -> std::io::Result<u64> {
        let mut logical = 0;
        for i in 0..self.docs {
            let content = self.content(i);
            logical += content.len() as u64;
            std::fs::write(dir.join(Self::file_name(i)), content)?;
        }
        Ok(logical)
    }

    /// Rewrites the files `indexes` in `dir` with their new content and returns the bytes written.
    pub(crate) fn rewrite(&self, dir: &Path, indexes: &[usize]) -> std::io::Result<u64> {
        let mut written = 0;
        for &i in indexes {
            let content = self.rewritten(i);
            written += content.len() as u64;
            std::fs::write(dir.join(Self::file_name(i)), content)?;
        }
        Ok(written)
    }
}

/// One timed process: its wall time and, when the probe could tell, its peak resident memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Run {
    pub(crate) elapsed: Duration,
    pub(crate) peak_rss: Option<u64>,
}

/// One tool's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Side {
    pub(crate) first: Run,
    /// Size of the repository folder after the first backup.
    pub(crate) repo_after_first: u64,
    pub(crate) second: Run,
    pub(crate) repo_after_second: u64,
    pub(crate) verify: Run,
    pub(crate) restore: Run,
}

impl Side {
    /// Bytes the second backup added to the repository folder.
    pub(crate) fn second_new_bytes(&self) -> u64 {
        self.repo_after_second.saturating_sub(self.repo_after_first)
    }
}

/// restic's figures and version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Restic {
    /// `restic version`.
    pub(crate) version: String,
    pub(crate) side: Side,
}

/// The backup area's measurements.
#[derive(Debug, Clone)]
pub(crate) struct BackupBench {
    pub(crate) docs: usize,
    pub(crate) logical_bytes: u64,
    pub(crate) seed: u64,
    /// Files rewritten before the second backup, and their bytes.
    pub(crate) changed: usize,
    pub(crate) changed_bytes: u64,
    /// How peak memory was measured.
    pub(crate) memory: String,
    pub(crate) colstore: Side,
    /// restic's figures, or why there are none.
    pub(crate) restic: Result<Restic, String>,
}

/// One compared figure: colstore's, restic's, and the target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) colstore: String,
    pub(crate) restic: String,
    /// colstore's value ÷ restic's (of the quantity the row is about).
    pub(crate) vs_restic: Option<f64>,
    pub(crate) target: String,
    /// Measured ÷ target, as in the rest of the report.
    pub(crate) ratio: Option<f64>,
    pub(crate) meets: Option<bool>,
}

impl Row {
    /// The row as a report figure named `area: name`: colstore's value, and restic's beside it unless restic has no
    /// counterpart (`—`).
    pub(crate) fn figure(self, area: &str) -> Figure {
        let peer = if self.restic == "—" {
            String::new()
        } else {
            let vs = self.vs_restic.map(|vs| format!("; {vs:.2}× restic")).unwrap_or_default();
            format!("; restic {}{vs}", self.restic)
        };
        Figure {
            name: format!("{area}: {}", self.name),
            measured: format!("colstore {}{peer}", self.colstore),
            target: self.target,
            ratio: self.ratio,
            meets: self.meets,
        }
    }
}

/// restic's version for a context line, or why it was not measured.
pub(crate) fn restic_label(version: Result<&str, &str>) -> String {
    match version {
        Ok(v) => v.to_owned(),
        Err(why) => format!("restic unavailable ({why})"),
    }
}

pub(super) fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

pub(super) fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MB / secs(d)
}

pub(super) fn rss_text(rss: Option<u64>) -> String {
    rss.map_or_else(|| "unknown".to_owned(), |b| format!("{:.1} MB", b as f64 / MB))
}

/// The larger of two peaks, when both are known.
fn max_rss(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(a?.max(b?))
}

/// A target relative to restic: ratio and verdict from colstore's value ÷ restic's, or none without restic.
fn relative(vs: Option<f64>, target_vs: f64, higher_is_better: bool) -> (Option<f64>, Option<bool>) {
    match vs {
        Some(vs) => {
            let ratio = vs / target_vs;
            (Some(ratio), Some(if higher_is_better { ratio >= 1.0 } else { ratio <= 1.0 }))
        }
        None => (None, None),
    }
}

impl BackupBench {
    /// The compared figures, in the order of the table.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let c = &self.colstore;
        let r = self.restic.as_ref().ok().map(|r| &r.side);
        let unavailable = || "unavailable".to_owned();
        let restic_text = |f: &dyn Fn(&Side) -> String| r.map_or_else(unavailable, f);
        let vs = |f: &dyn Fn(&Side) -> f64| r.map(|r| f(c) / f(r).max(1e-12));
        let mut rows = Vec::new();

        let first = |s: &Side| mb_per_s(self.logical_bytes, s.first.elapsed);
        let first_text = |s: &Side| format!("{:.1} MB/s ({:.2} s)", first(s), s.first.elapsed.as_secs_f64());
        let first_vs = vs(&first);
        let (ratio, meets) = relative(first_vs, FIRST_BACKUP_TARGET_VS_RESTIC, true);
        rows.push(Row {
            name: format!("First backup of {} documents, logical MB/s", group_thousands(self.docs as u64)),
            colstore: first_text(c),
            restic: restic_text(&first_text),
            vs_restic: first_vs,
            target: format!("≥ {FIRST_BACKUP_TARGET_VS_RESTIC}× restic"),
            ratio,
            meets,
        });

        let size_text = |s: &Side| {
            format!(
                "{:.1} MB ({:.3} of logical)",
                s.repo_after_first as f64 / MB,
                s.repo_after_first as f64 / self.logical_bytes.max(1) as f64
            )
        };
        rows.push(Row {
            name: "Repository size after the first backup".into(),
            colstore: size_text(c),
            restic: restic_text(&size_text),
            vs_restic: vs(&|s| s.repo_after_first as f64),
            target: "—".into(),
            ratio: None,
            meets: None,
        });

        let changed = format!("{} documents changed", group_thousands(self.changed as u64));
        let new_text = |s: &Side| format!("{:.2} MB", s.second_new_bytes() as f64 / MB);
        let new_vs = vs(&|s| s.second_new_bytes() as f64);
        let (ratio, meets) = relative(new_vs, 1.0, false);
        rows.push(Row {
            name: format!("Second backup ({changed}), new bytes stored"),
            colstore: new_text(c),
            restic: restic_text(&new_text),
            vs_restic: new_vs,
            target: "≤ restic's".into(),
            ratio,
            meets,
        });

        let second_text = |s: &Side| format!("{:.2} s", s.second.elapsed.as_secs_f64());
        let second_vs = vs(&|s| secs(s.second.elapsed));
        let (ratio, meets) = relative(second_vs, 1.0, false);
        rows.push(Row {
            name: format!("Second backup ({changed}), time"),
            colstore: second_text(c),
            restic: restic_text(&second_text),
            vs_restic: second_vs,
            target: "≤ restic's".into(),
            ratio,
            meets,
        });

        let verify = |s: &Side| mb_per_s(s.repo_after_second, s.verify.elapsed);
        let verify_text = |s: &Side| {
            format!("{:.1} MB/s ({:.2} s, {:.1} MB)", verify(s), s.verify.elapsed.as_secs_f64(), s.repo_after_second as f64 / MB)
        };
        let verify_vs = vs(&verify);
        let (ratio, meets) = relative(verify_vs, 1.0, true);
        rows.push(Row {
            name: "Read-back check (`verify --read-data` / `check --read-data`), repository MB/s".into(),
            colstore: verify_text(c),
            restic: restic_text(&verify_text),
            vs_restic: verify_vs,
            target: "≥ restic's".into(),
            ratio,
            meets,
        });

        let restore_text = |s: &Side| {
            format!(
                "{:.2} s ({} docs/s)",
                s.restore.elapsed.as_secs_f64(),
                group_thousands((self.docs as f64 / secs(s.restore.elapsed)) as u64)
            )
        };
        rows.push(Row {
            name: format!("Restore of {} documents into a fresh store / folder", group_thousands(self.docs as u64)),
            colstore: restore_text(c),
            restic: restic_text(&restore_text),
            vs_restic: vs(&|s| secs(s.restore.elapsed)),
            target: format!("< {} s", RESTORE_TARGET.as_secs()),
            ratio: Some(secs(c.restore.elapsed) / secs(RESTORE_TARGET)),
            meets: Some(c.restore.elapsed < RESTORE_TARGET),
        });

        let target = format!("≤ {:.0} MB", PEAK_RSS_TARGET_BYTES as f64 / MB);
        let against = |rss: Option<u64>| (rss.map(|b| b as f64 / PEAK_RSS_TARGET_BYTES as f64), rss.map(|b| b <= PEAK_RSS_TARGET_BYTES));
        let backup_peak = |s: &Side| max_rss(s.first.peak_rss, s.second.peak_rss);
        let backup_text = |s: &Side| {
            format!("{} (first {}, second {})", rss_text(backup_peak(s)), rss_text(s.first.peak_rss), rss_text(s.second.peak_rss))
        };
        let (ratio, meets) = against(backup_peak(c));
        rows.push(Row {
            name: "Peak RSS of the backups".into(),
            colstore: backup_text(c),
            restic: restic_text(&backup_text),
            vs_restic: r.and_then(|r| Some(backup_peak(c)? as f64 / backup_peak(r)?.max(1) as f64)),
            target: target.clone(),
            ratio,
            meets,
        });
        let restore_rss_text = |s: &Side| rss_text(s.restore.peak_rss);
        let (ratio, meets) = against(c.restore.peak_rss);
        rows.push(Row {
            name: "Peak RSS of the restore".into(),
            colstore: restore_rss_text(c),
            restic: restic_text(&restore_rss_text),
            vs_restic: r.and_then(|r| Some(c.restore.peak_rss? as f64 / r.restore.peak_rss?.max(1) as f64)),
            target,
            ratio,
            meets,
        });
        rows
    }

    /// The rows as the report's figures: colstore's value with restic's beside it.
    pub(crate) fn figures(&self) -> Vec<Figure> {
        self.rows().into_iter().map(|row| row.figure("Backup")).collect()
    }

    /// The context line: data, restic's version, memory method.
    pub(crate) fn context(&self) -> String {
        let restic = restic_label(self.restic.as_ref().map(|r| r.version.as_str()).map_err(String::as_str));
        format!(
            "{} distinct files of {:.1}–{:.1} KiB text, {:.1} MB logical, seed {:#018x}; {} of them ({:.2} MB) rewritten with new \
             text of the same size before the second backup; {restic}; peak memory by {}",
            group_thousands(self.docs as u64),
            MIN_SIZE as f64 / 1024.0,
            MAX_SIZE as f64 / 1024.0,
            self.logical_bytes as f64 / MB,
            self.seed,
            group_thousands(self.changed as u64),
            self.changed_bytes as f64 / MB,
            self.memory
        )
    }

    /// How the backup figures were measured.
    pub(crate) fn note() -> String {
        "Backups: the backup data is written as files and `col add`-ed into a fresh store (not timed); colstore runs \
         `col backup` (default repository `.colstore/backups`), `col backup verify latest --read-data` and \
         `col restore latest --to-store NEW --yes`; restic (`RESTIC_PASSWORD` set, repository and cache beside the store) \
         runs `backup` of the same folder, `check --read-data` and `restore latest --target NEW`. Each step runs for \
         colstore, then for restic, with the files and the store in the page cache for both. New bytes are the growth of \
         the repository folder (sum of file sizes); the read-back check's MB/s is that tool's repository size after the \
         second backup ÷ its time; backup MB/s are logical bytes of the documents. Ratios against restic are colstore's \
         figure ÷ restic's, divided by the factor the target asks for."
            .to_owned()
    }

    /// The comparison as a markdown table, printed when the area has run.
    pub(crate) fn comparison_markdown(&self) -> String {
        rows_markdown(&self.rows())
    }
}

/// Rows compared with restic as a markdown table: figure, colstore, restic, colstore ÷ restic, target, ratio, verdict.
pub(super) fn rows_markdown(rows: &[Row]) -> String {
    let mut out =
        String::from("| Figure | colstore | restic | colstore ÷ restic | Target | Ratio to target | |\n|---|---|---|---|---|---|---|\n");
    for row in rows {
        let verdict = match row.meets {
            Some(true) => "meets",
            Some(false) => "MISSES",
            None => "info",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {verdict} |\n",
            row.name.replace('|', "\\|"),
            row.colstore,
            row.restic,
            row.vs_restic.map_or_else(|| "—".to_owned(), |vs| format!("{vs:.2}×")),
            row.target,
            row.ratio.map_or_else(|| "—".to_owned(), |ratio| format!("{ratio:.2}× target")),
        ));
    }
    out
}

/// How peak memory is measured.
#[derive(Debug, Clone)]
pub(super) enum Memory {
    /// GNU time writes the child's maximum resident set size (KiB) into `out`.
    GnuTime { time: PathBuf, out: PathBuf },
    /// `VmHWM` of `/proc/<pid>/status`, sampled every [`POLL_EVERY`]; output goes through files in `scratch`.
    VmHwm { scratch: PathBuf },
}

impl Memory {
    /// GNU time at `/usr/bin/time`, installing Debian's `time` when it is missing; else the `/proc` fallback.
    pub(super) fn detect(scratch: &Path) -> Self {
        let time = PathBuf::from("/usr/bin/time");
        let gnu = Self::GnuTime { time: time.clone(), out: scratch.join("time-max-rss.txt") };
        if gnu_time_works(&time) {
            return gnu;
        }
        match apt_install("time") {
            Ok(()) if gnu_time_works(&time) => gnu,
            outcome => {
                let why = outcome.err().unwrap_or_else(|| "it was installed but `/usr/bin/time -f %M true` does not work".into());
                eprintln!("warning: no GNU time ({why}); measuring peak memory by polling VmHWM in /proc/<pid>/status");
                Self::VmHwm { scratch: scratch.to_owned() }
            }
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Self::GnuTime { time, .. } => format!("`{} -f %M` (the process's maximum resident set size)", time.display()),
            Self::VmHwm { .. } => {
                format!("polling `VmHWM` in `/proc/<pid>/status` every {} ms (GNU time unavailable)", POLL_EVERY.as_millis())
            }
        }
    }

    /// Runs `cmd` to completion, timing it and measuring its peak memory. `cmd` has its arguments, environment and
    /// working directory; its output is collected here.
    pub(super) fn run(&self, cmd: &Command, shown: &str) -> Result<(Output, Run), String> {
        let (output, run) = match self {
            Self::GnuTime { time, out } => {
                let mut wrapped = Command::new(time);
                wrapped.arg("-f").arg("%M").arg("-o").arg(out).arg(cmd.get_program()).args(cmd.get_args());
                copy_setup(cmd, &mut wrapped);
                let start = Instant::now();
                let output = wrapped.output().map_err(|err| format!("cannot run `{shown}` under {}: {err}", time.display()))?;
                let elapsed = start.elapsed();
                let peak_rss = std::fs::read_to_string(out).ok().and_then(|text| parse_max_rss_kib(&text)).map(|kib| kib * 1024);
                (output, Run { elapsed, peak_rss })
            }
            Self::VmHwm { scratch } => poll_vmhwm(cmd, scratch, shown)?,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            let shown_output = if stderr.trim().is_empty() { stdout } else { stderr };
            return Err(format!("`{shown}` failed ({}):\n{}", output.status, tail(&shown_output, 20)));
        }
        Ok((output, run))
    }
}

/// Gives `to` the environment changes and working directory of `from`, with no standard input.
fn copy_setup(from: &Command, to: &mut Command) {
    for (key, value) in from.get_envs() {
        match value {
            Some(value) => to.env(key, value),
            None => to.env_remove(key),
        };
    }
    if let Some(dir) = from.get_current_dir() {
        to.current_dir(dir);
    }
    to.stdin(Stdio::null());
}

/// Runs `cmd` with its output in files, sampling its `VmHWM` until it exits.
fn poll_vmhwm(cmd: &Command, scratch: &Path, shown: &str) -> Result<(Output, Run), String> {
    let (out_path, err_path) = (scratch.join("probe-stdout.txt"), scratch.join("probe-stderr.txt"));
    let create = |path: &Path| std::fs::File::create(path).map_err(|err| format!("cannot create {}: {err}", path.display()));
    let mut child_cmd = Command::new(cmd.get_program());
    child_cmd.args(cmd.get_args());
    copy_setup(cmd, &mut child_cmd);
    child_cmd.stdout(create(&out_path)?).stderr(create(&err_path)?);
    let start = Instant::now();
    let mut child = child_cmd.spawn().map_err(|err| format!("cannot run `{shown}`: {err}"))?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak: Option<u64> = None;
    let status = loop {
        // VmHWM is the high-water mark itself, so a sample taken late still holds every earlier peak.
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|text| parse_vmhwm_kib(&text)) {
            peak = Some(peak.unwrap_or(0).max(kib));
        }
        match child.try_wait().map_err(|err| format!("cannot wait for `{shown}`: {err}"))? {
            Some(status) => break status,
            None => std::thread::sleep(POLL_EVERY),
        }
    };
    let elapsed = start.elapsed();
    let read = |path: &Path| std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()));
    let output = Output { status, stdout: read(&out_path)?, stderr: read(&err_path)? };
    Ok((output, Run { elapsed, peak_rss: peak.map(|kib| kib * 1024) }))
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// GNU time's `%M` output: the last non-empty line, in KiB (earlier lines may say the command failed).
fn parse_max_rss_kib(text: &str) -> Option<u64> {
    text.lines().rev().find(|line| !line.trim().is_empty())?.trim().parse().ok()
}

/// `VmHWM` of a `/proc/<pid>/status`, in KiB.
fn parse_vmhwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn gnu_time_works(time: &Path) -> bool {
    Command::new(time)
        .args(["-f", "%M", "true"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && parse_max_rss_kib(&String::from_utf8_lossy(&out.stderr)).is_some())
}

/// `apt-get install -y PACKAGE`, non-interactively; once more after an `apt-get update` when it fails.
fn apt_install(package: &str) -> Result<(), String> {
    let apt = |args: &[&str]| -> Result<(), String> {
        step(&format!("apt-get {}", args.join(" ")));
        let output = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("cannot run apt-get: {err}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("`apt-get {}` failed ({}): {}", args.join(" "), output.status, tail(&String::from_utf8_lossy(&output.stderr), 3)))
        }
    };
    apt(&["install", "-y", package]).or_else(|first| {
        apt(&["update"]).map_err(|err| format!("{first}; then {err}"))?;
        apt(&["install", "-y", package])
    })
}

/// restic with its repository, cache and password.
pub(super) struct ResticRunner {
    repo: PathBuf,
    cache: PathBuf,
    cwd: PathBuf,
    pub(super) version: String,
    side: Side,
}

impl ResticRunner {
    /// Finds restic (installing it when missing) and initialises the repository.
    pub(super) fn setup(repo: &Path, cache: &Path, cwd: &Path) -> Result<Self, String> {
        step("restic version");
        let version = match restic_version() {
            Ok(version) => version,
            Err(missing) => {
                println!("restic is not usable here ({missing}); installing it");
                apt_install("restic").map_err(|err| format!("not on PATH and not installable: {err}"))?;
                restic_version().map_err(|err| format!("installed, but {err}"))?
            }
        };
        println!("{version}");
        let runner = Self { repo: repo.to_owned(), cache: cache.to_owned(), cwd: cwd.to_owned(), version, side: Side::default() };
        step(&format!("restic init (repository {})", repo.display()));
        let output = runner.command(["init"]).output().map_err(|err| format!("cannot run restic: {err}"))?;
        if !output.status.success() {
            return Err(format!("`restic init` failed ({}): {}", output.status, tail(&String::from_utf8_lossy(&output.stderr), 5)));
        }
        Ok(runner)
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("restic");
        cmd.arg("--repo").arg(&self.repo).arg("--cache-dir").arg(&self.cache).args(args).current_dir(&self.cwd).stdin(Stdio::null());
        // Only the benchmark's repository and password; no user settings that would point elsewhere.
        for key in ["RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND", "RESTIC_CACHE_DIR"] {
            cmd.env_remove(key);
        }
        cmd.env("RESTIC_PASSWORD", RESTIC_PASSWORD);
        cmd
    }

    pub(super) fn run(&self, memory: &Memory, args: &[&OsStr]) -> Result<Run, String> {
        let shown = format!("restic {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        Ok(memory.run(&self.command(args), &shown)?.1)
    }

    fn repo_size(&self) -> Result<u64, String> {
        dir_size(&self.repo).map_err(|err| format!("cannot measure {}: {err}", self.repo.display()))
    }
}

/// The first line of `restic version`, or why restic cannot run.
fn restic_version() -> Result<String, String> {
    let output = Command::new("restic").arg("version").stdin(Stdio::null()).output().map_err(|err| format!("cannot run restic: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().next().map(str::trim).filter(|line| !line.is_empty()) {
        Some(line) if output.status.success() => Ok(line.to_owned()),
        _ => Err(format!("`restic version` failed ({})", output.status)),
    }
}

/// Runs one restic step unless restic already failed; a failure is printed and replaces restic's figures with why.
pub(super) fn restic_step(restic: &mut Result<ResticRunner, String>, what: &str, f: impl FnOnce(&mut ResticRunner) -> Result<(), String>) {
    let Ok(runner) = restic else { return };
    step(what);
    if let Err(err) = f(runner) {
        eprintln!("warning: {what} failed; colstore's figures are reported without restic's:\n{err}");
        let first_line = err.lines().next().unwrap_or_default().to_owned();
        *restic = Err(format!("`{what}` failed: {first_line}"));
    }
}

/// Runs `col --store STORE ARGS` under the memory probe.
pub(super) fn col_run(col: &Col<'_>, memory: &Memory, args: &[&OsStr]) -> Result<(Output, Run), String> {
    let mut cmd = Command::new(col.bin);
    cmd.arg("--store").arg(col.store).args(args).current_dir(col.cwd);
    scrub_env(&mut cmd);
    let shown = format!("col --store {} {}", col.store.display(), args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    memory.run(&cmd, &shown)
}

pub(super) fn os(parts: &[&str]) -> Vec<OsString> {
    parts.iter().map(OsString::from).collect()
}

pub(super) fn refs(args: &[OsString]) -> Vec<&OsStr> {
    args.iter().map(OsString::as_os_str).collect()
}

/// A whole number field of `col --json` output, for sanity checks.
fn json_count(stdout: &[u8], pointer: &str) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(stdout).ok()?.pointer(pointer)?.as_u64()
}

/// Files under `dir`, recursively.
fn count_files(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += count_files(&entry.path())?;
        } else if kind.is_file() {
            total += 1;
        }
    }
    Ok(total)
}

/// The backup area: see the module documentation. Only colstore's failures fail it.
pub(crate) fn measure_backup(bin: &Path, dir: &Path, docs: usize) -> Result<BackupBench, String> {
    let base = dir.join("backup");
    let documents = base.join("documents");
    let store = base.join("store");
    create_dirs(&[&documents, &store])?;
    let memory = Memory::detect(&base);
    println!("peak memory: {}", memory.describe());

    let corpus = BackupCorpus::new(docs);
    step(&format!("generating {docs} files of {MIN_SIZE}–{MAX_SIZE} bytes in {}", documents.display()));
    let logical_bytes = corpus.write_to(&documents).map_err(|err| format!("cannot write the backup corpus: {err}"))?;

    let col = Col { bin, store: &store, cwd: &base };
    step("col init; col collection create bench; col add bench <documents> (not timed)");
    col.run(["init"])?;
    col.run(["collection", "create", "bench"])?;
    col.run([OsStr::new("add"), OsStr::new("bench"), documents.as_os_str()])?;
    let col_repo = store.join(".colstore").join("backups");
    let col_repo_size = || dir_size(&col_repo).map_err(|err| format!("cannot measure {}: {err}", col_repo.display()));

    let mut restic = ResticRunner::setup(&base.join("restic-repo"), &base.join("restic-cache"), &base);
    if let Err(why) = &restic {
        eprintln!("warning: restic is unavailable ({why}); colstore's figures are reported alone");
    }

    let mut c = Side::default();
    step("col backup (first)");
    c.first = col_run(&col, &memory, &refs(&os(&["backup"])))?.1;
    c.repo_after_first = col_repo_size()?;
    restic_step(&mut restic, "restic backup (first)", |r| {
        r.side.first = r.run(&memory, &[OsStr::new("backup"), documents.as_os_str()])?;
        r.side.repo_after_first = r.repo_size()?;
        Ok(())
    });

    let changed = corpus.changed();
    step(&format!("rewriting {} files ({CHANGED_PERCENT} %); col add bench <documents> (not timed)", changed.len()));
    let changed_bytes = corpus.rewrite(&documents, &changed).map_err(|err| format!("cannot rewrite the changed files: {err}"))?;
    let added = col.run([OsStr::new("--json"), OsStr::new("add"), OsStr::new("bench"), documents.as_os_str()])?;
    let updated = json_count(&added.output.stdout, "/updated");
    if updated != Some(changed.len() as u64) {
        eprintln!("warning: `col add` after the rewrite reported {updated:?} updated documents, not {}", changed.len());
    }

    step("col backup (second)");
    c.second = col_run(&col, &memory, &refs(&os(&["backup"])))?.1;
    c.repo_after_second = col_repo_size()?;
    restic_step(&mut restic, "restic backup (second)", |r| {
        r.side.second = r.run(&memory, &[OsStr::new("backup"), documents.as_os_str()])?;
        r.side.repo_after_second = r.repo_size()?;
        Ok(())
    });

    step("col backup verify latest --read-data");
    c.verify = col_run(&col, &memory, &refs(&os(&["backup", "verify", "latest", "--read-data"])))?.1;
    restic_step(&mut restic, "restic check --read-data", |r| {
        r.side.verify = r.run(&memory, &refs(&os(&["check", "--read-data"])))?;
        Ok(())
    });

    let restored = base.join("restored-store");
    step(&format!("col restore latest --to-store {} --yes", restored.display()));
    let mut args = os(&["--json", "restore", "latest", "--to-store"]);
    args.extend([restored.clone().into_os_string(), OsString::from("--yes")]);
    let (output, run) = col_run(&col, &memory, &refs(&args))?;
    c.restore = run;
    let written = json_count(&output.stdout, "/restore/documents_written");
    if written != Some(docs as u64) {
        eprintln!("warning: `col restore` reported {written:?} documents written, not {docs}");
    }
    let restic_target = base.join("restic-restore");
    restic_step(&mut restic, "restic restore latest --target <folder>", |r| {
        let mut args = os(&["restore", "latest", "--target"]);
        args.push(restic_target.clone().into_os_string());
        r.side.restore = r.run(&memory, &refs(&args))?;
        match count_files(&restic_target) {
            Ok(n) if n == docs as u64 => {}
            other => eprintln!("warning: restic restored {other:?} files, not {docs}"),
        }
        Ok(())
    });

    let bench = BackupBench {
        docs,
        logical_bytes,
        seed: corpus.seed,
        changed: changed.len(),
        changed_bytes,
        memory: memory.describe(),
        colstore: c,
        restic: restic.map(|r| Restic { version: r.version, side: r.side }),
    };
    println!("\nBackups, colstore against restic ({}):\n\n{}", bench.context(), bench.comparison_markdown());
    Ok(bench)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_corpus_is_distinct_text_of_about_two_kib() {
        let corpus = BackupCorpus::new(2000);
        let contents: Vec<Vec<u8>> = (0..corpus.docs).map(|i| corpus.content(i)).collect();
        assert!(contents.iter().all(|c| (MIN_SIZE..=MAX_SIZE).contains(&c.len())));
        let mean = contents.iter().map(Vec::len).sum::<usize>() / contents.len();
        assert!((1950..=2150).contains(&mean), "mean size {mean}");
        assert_eq!(contents.iter().collect::<HashSet<_>>().len(), contents.len(), "no duplicates");
        assert!(std::str::from_utf8(&contents[0]).unwrap().split_whitespace().count() > 100);
        assert_eq!(BackupCorpus::new(2000).content(7), contents[7], "deterministic");
        assert_ne!(contents[0][..100], super::super::corpus::Corpus::new(10).content(0)[..100], "its own seed");
    }

    #[test]
    fn one_percent_is_rewritten_with_new_text_of_the_same_size() {
        let corpus = BackupCorpus::new(10_000);
        let changed = corpus.changed();
        assert_eq!(changed.len(), 100);
        assert!(changed.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        assert!(changed[0] < 1000 && changed[99] > 9000, "spread over the corpus: {changed:?}");
        assert_eq!(corpus.changed(), changed, "deterministic");
        for &i in &changed[..5] {
            let (old, new) = (corpus.content(i), corpus.rewritten(i));
            assert_eq!(old.len(), new.len());
            assert_ne!(old, new);
        }
        assert_eq!(BackupCorpus::new(5).changed_count(), 1);
    }

    #[test]
    fn files_are_written_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = BackupCorpus::new(12);
        let logical = corpus.write_to(dir.path()).unwrap();
        assert_eq!(logical, dir_size(dir.path()).unwrap());
        assert_eq!(count_files(dir.path()).unwrap(), 12);
        let written = corpus.rewrite(dir.path(), &[3]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("doc-0000003.txt")).unwrap(), corpus.rewritten(3));
        assert_eq!(written, corpus.content(3).len() as u64);
        assert_eq!(dir_size(dir.path()).unwrap(), logical, "same sizes");
    }

    fn run(secs: f64, rss_mb: u64) -> Run {
        Run { elapsed: Duration::from_secs_f64(secs), peak_rss: Some(rss_mb * 1_000_000) }
    }

    fn bench(restic: Result<Restic, String>) -> BackupBench {
        BackupBench {
            docs: 100_000,
            logical_bytes: 200_000_000,
            seed: SEED,
            changed: 1000,
            changed_bytes: 2_000_000,
            memory: "`/usr/bin/time -f %M`".into(),
            colstore: Side {
                first: run(4.0, 150),
                repo_after_first: 60_000_000,
                second: run(1.0, 120),
                repo_after_second: 64_000_000,
                verify: run(0.5, 50),
                restore: run(30.0, 250),
            },
            restic,
        }
    }

    fn restic() -> Restic {
        Restic {
            version: "restic 0.14.0 compiled with go1.19.8 on linux/amd64".into(),
            side: Side {
                first: run(10.0, 300),
                repo_after_first: 50_000_000,
                second: run(2.0, 200),
                repo_after_second: 52_000_000,
                verify: run(1.0, 100),
                restore: run(20.0, 100),
            },
        }
    }

    fn summary(b: &BackupBench) -> Vec<(Option<String>, Option<String>, Option<bool>)> {
        b.rows().into_iter().map(|r| (r.vs_restic.map(|v| format!("{v:.2}")), r.ratio.map(|v| format!("{v:.2}")), r.meets)).collect()
    }

    #[test]
    fn rows_compare_with_restic_and_the_targets() {
        let b = bench(Ok(restic()));
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            summary(&b),
            [
                (s("2.50"), s("1.67"), Some(true)),  // 50 MB/s vs 20 MB/s, target 1.5×
                (s("1.20"), None, None),             // 60 vs 50 MB
                (s("2.00"), s("2.00"), Some(false)), // 4 MB new vs 2 MB
                (s("0.50"), s("0.50"), Some(true)),  // 1 s vs 2 s
                (s("2.46"), s("2.46"), Some(true)),  // 128 MB/s vs 52 MB/s
                (s("1.50"), s("0.50"), Some(true)),  // 30 s of 60 s
                (s("0.50"), s("0.75"), Some(true)),  // 150 MB of 200
                (s("2.50"), s("1.25"), Some(false)), // 250 MB of 200
            ]
        );
        let rows = b.rows();
        assert_eq!(rows[0].colstore, "50.0 MB/s (4.00 s)");
        assert_eq!(rows[0].restic, "20.0 MB/s (10.00 s)");
        assert_eq!(rows[1].colstore, "60.0 MB (0.300 of logical)");
        assert_eq!(rows[4].colstore, "128.0 MB/s (0.50 s, 64.0 MB)");
        assert_eq!(rows[6].colstore, "150.0 MB (first 150.0 MB, second 120.0 MB)");
        let figures = b.figures();
        assert_eq!(figures.len(), rows.len());
        assert_eq!(figures[0].name, "Backup: First backup of 100 000 documents, logical MB/s");
        assert_eq!(figures[0].measured, "colstore 50.0 MB/s (4.00 s); restic 20.0 MB/s (10.00 s); 2.50× restic");
        assert_eq!(figures[0].target, "≥ 1.5× restic");
        let table = b.comparison_markdown();
        assert!(table.contains("| 2.50× | ≥ 1.5× restic | 1.67× target | meets |"), "{table}");
        assert!(b.context().contains("restic 0.14.0 compiled"), "{}", b.context());
    }

    #[test]
    fn without_restic_only_the_absolute_targets_have_ratios() {
        let b = bench(Err("not on PATH and not installable".into()));
        let rows = b.rows();
        assert!(rows.iter().all(|r| r.restic == "unavailable" && r.vs_restic.is_none()));
        let judged: Vec<Option<bool>> = rows.iter().map(|r| r.meets).collect();
        assert_eq!(judged, [None, None, None, None, None, Some(true), Some(true), Some(false)]);
        assert!(b.figures()[0].measured.ends_with("restic unavailable"));
        assert!(b.context().contains("restic unavailable (not on PATH and not installable)"));
        // Unknown memory is not judged.
        let mut b = b;
        b.colstore.restore.peak_rss = None;
        assert_eq!(b.rows()[7].meets, None);
        assert_eq!(b.rows()[7].colstore, "unknown");
    }

    #[test]
    fn probe_outputs_are_parsed() {
        assert_eq!(parse_max_rss_kib("123456\n"), Some(123_456));
        assert_eq!(parse_max_rss_kib("Command exited with non-zero status 1\n2048\n\n"), Some(2048));
        assert_eq!(parse_max_rss_kib(""), None);
        let status = "Name:\tcol\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_vmhwm_kib(status), Some(51_200));
        assert_eq!(parse_vmhwm_kib("Name:\tzombie\n"), None);
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
    }

    // Existing programs stand in for `col` and restic (see bench.rs on ETXTBSY).

    #[test]
    fn the_proc_fallback_measures_a_process_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::VmHwm { scratch: dir.path().to_owned() };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 0.05; echo out"]);
        let (output, run) = memory.run(&cmd, "sh").unwrap();
        assert_eq!(output.stdout, b"out\n");
        assert!(run.elapsed >= Duration::from_millis(50));
        assert!(run.peak_rss.is_some_and(|b| b > 100_000), "{run:?}");
        let mut failing = Command::new("sh");
        failing.args(["-c", "echo broken >&2; exit 3"]);
        let err = memory.run(&failing, "sh -c fail").unwrap_err();
        assert!(err.starts_with("`sh -c fail` failed (exit status: 3):\nbroken"), "{err}");
    }

    #[test]
    fn gnu_time_measures_a_process_when_present() {
        let time = Path::new("/usr/bin/time");
        if !gnu_time_works(time) {
            eprintln!("skipped: no GNU time at /usr/bin/time");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::GnuTime { time: time.to_owned(), out: dir.path().join("rss") };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo \"$PROBE\""]).env("PROBE", "kept").current_dir(dir.path());
        let (output, run) = memory.run(&cmd, "sh").unwrap();
        assert_eq!(output.stdout, b"kept\n", "environment passed through");
        assert!(run.peak_rss.is_some_and(|b| b > 100_000), "{run:?}");
        let mut failing = Command::new("false");
        failing.current_dir(dir.path());
        assert!(memory.run(&failing, "false").unwrap_err().starts_with("`false` failed"));
    }
}
