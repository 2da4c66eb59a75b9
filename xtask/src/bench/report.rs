//! Turns the measurements into figures with their targets, the table printed on the terminal, and the section of
//! `docs/BENCHMARKS.md` that each run replaces.

use std::time::Duration;

/// Ingest: `col add` of the whole corpus, in documents per second.
pub(crate) const INGEST_TARGET_DOCS_PER_S: f64 = 25_000.0;
/// Listing: median wall time of `col ls bench --limit 100`, process start included.
pub(crate) const LS_TARGET: Duration = Duration::from_millis(50);
/// Verification: `col verify`, in logical megabytes (10^6 bytes) per second.
pub(crate) const VERIFY_TARGET_MB_PER_S: f64 = 200.0;
/// Store size on disk after `col gc`, as a fraction of the logical bytes.
pub(crate) const SIZE_TARGET_RATIO: f64 = 0.55;

const BEGIN: &str = "<!-- BEGIN cargo xtask bench: generated, edits between these markers are overwritten -->";
const END: &str = "<!-- END cargo xtask bench -->";
const HEADER: &str = "# Benchmarks\n\n\
Figures measured by `cargo xtask bench` (`xtask/src/bench.rs`) with the release `col` binary on a generated corpus.\n\
Each run replaces the section between the markers below; text outside them is kept.\n";

/// The machine the figures were measured on.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cpus: String,
    pub(crate) memory_bytes: Option<u64>,
}

impl Machine {
    fn describe(&self) -> String {
        let memory = self.memory_bytes.map_or_else(|| "unknown RAM".to_owned(), |bytes| format!("{:.1} GiB RAM", bytes as f64 / GIB));
        format!("{}, {} CPUs (nproc), {memory}", self.cpu, self.cpus)
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct Measurements {
    pub(crate) docs: usize,
    pub(crate) distinct: usize,
    pub(crate) logical_bytes: u64,
    pub(crate) add: Duration,
    pub(crate) ls: Vec<Duration>,
    pub(crate) verify: Duration,
    pub(crate) store_bytes: u64,
}

/// A run with its context, ready to print and record.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) date: String,
    pub(crate) machine: Machine,
    pub(crate) rustc: String,
    pub(crate) code: String,
    pub(crate) seed: u64,
    pub(crate) measurements: Measurements,
    /// `col stats --json` after the run (pretty-printed when it parsed as JSON).
    pub(crate) stats: String,
    pub(crate) command: String,
}

/// One measured figure against its target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) measured: String,
    pub(crate) target: String,
    /// Measured value ÷ target value. Above 1 is good for throughputs and bad for times and sizes; `meets` says which.
    pub(crate) ratio: f64,
    pub(crate) meets: bool,
}

impl Figure {
    fn ratio_text(&self) -> String {
        format!("{:.2}× target", self.ratio)
    }

    fn verdict(&self) -> &'static str {
        if self.meets { "meets" } else { "MISSES" }
    }
}

const MB: f64 = 1e6;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Median of the samples (mean of the middle two for an even count); zero for no samples.
pub(crate) fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// A duration as seconds, never zero, so rates stay finite on absurdly fast runs.
fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64().max(1e-9)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `1234567` → `"1 234 567"`, the grouping the targets are written with.
pub(crate) fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Measurements {
    pub(crate) fn figures(&self) -> Vec<Figure> {
        let docs_per_s = self.docs as f64 / secs(self.add);
        let ls_median = median(&self.ls);
        let ls_max = self.ls.iter().max().copied().unwrap_or_default();
        let logical_mb = self.logical_bytes as f64 / MB;
        let verify_mb_per_s = logical_mb / secs(self.verify);
        let size_ratio = self.store_bytes as f64 / (self.logical_bytes.max(1)) as f64;
        vec![
            Figure {
                name: "Ingest: `col add`",
                measured: format!("{} docs/s ({:.2} s)", group_thousands(docs_per_s.round() as u64), self.add.as_secs_f64()),
                target: format!("≥ {} docs/s", group_thousands(INGEST_TARGET_DOCS_PER_S as u64)),
                ratio: docs_per_s / INGEST_TARGET_DOCS_PER_S,
                meets: docs_per_s >= INGEST_TARGET_DOCS_PER_S,
            },
            Figure {
                name: "List: `col ls bench --limit 100`",
                measured: format!("median {:.1} ms, max {:.1} ms ({} runs)", ms(ls_median), ms(ls_max), self.ls.len()),
                target: format!("median < {} ms", LS_TARGET.as_millis()),
                ratio: ms(ls_median) / ms(LS_TARGET),
                meets: ls_median < LS_TARGET,
            },
            Figure {
                name: "Verify: `col verify`",
                measured: format!("{} MB/s ({:.2} s)", group_thousands(verify_mb_per_s.round() as u64), self.verify.as_secs_f64()),
                target: format!("≥ {VERIFY_TARGET_MB_PER_S:.0} MB/s"),
                ratio: verify_mb_per_s / VERIFY_TARGET_MB_PER_S,
                meets: verify_mb_per_s >= VERIFY_TARGET_MB_PER_S,
            },
            Figure {
                name: "Store size after `col gc`",
                measured: format!("{size_ratio:.3} of logical ({:.1} MB)", self.store_bytes as f64 / MB),
                target: format!("≤ {SIZE_TARGET_RATIO:.2}"),
                ratio: size_ratio / SIZE_TARGET_RATIO,
                meets: size_ratio <= SIZE_TARGET_RATIO,
            },
        ]
    }

    fn data(&self, seed: u64) -> String {
        format!(
            "{} files of 1–4 KiB text ({} distinct + {} byte-identical duplicates), {:.1} MB logical, seed {seed:#018x}",
            group_thousands(self.docs as u64),
            group_thousands(self.distinct as u64),
            group_thousands((self.docs - self.distinct) as u64),
            self.logical_bytes as f64 / MB
        )
    }
}

/// Pads `cells` into aligned columns (by characters, since `≥` and `×` are multi-byte).
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|col| rows.iter().map(|row| row[col].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count()))).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

impl Report {
    /// The table printed at the end of a run.
    pub(crate) fn table(&self) -> String {
        let mut rows = vec![vec!["figure".to_owned(), "measured".to_owned(), "target".to_owned(), "ratio".to_owned(), String::new()]];
        for figure in self.measurements.figures() {
            rows.push(vec![
                figure.name.replace('`', ""),
                figure.measured.clone(),
                figure.target.clone(),
                figure.ratio_text(),
                figure.verdict().to_owned(),
            ]);
        }
        format!("{}\ndata: {}\n", columns(&rows), self.measurements.data(self.seed))
    }

    /// The generated section, markers included.
    pub(crate) fn markdown_section(&self) -> String {
        let mut out = format!("{BEGIN}\n\n## Latest run\n\n");
        out.push_str("| | |\n|---|---|\n");
        for (key, value) in [
            ("Date", self.date.clone()),
            ("Machine", self.machine.describe()),
            ("Toolchain", self.rustc.clone()),
            ("Code", self.code.clone()),
            ("Data", self.measurements.data(self.seed)),
        ] {
            out.push_str(&format!("| {key} | {} |\n", escape_cell(&value)));
        }
        out.push_str("\n| Figure | Measured | Target | Ratio | |\n|---|---|---|---|---|\n");
        for figure in self.measurements.figures() {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                figure.name,
                escape_cell(&figure.measured),
                escape_cell(&figure.target),
                figure.ratio_text(),
                figure.verdict()
            ));
        }
        out.push_str(
            "\nTimes are wall-clock times of the release `col` binary, process start included; the store is a fresh \
             `col init` in a temporary directory under `target/`. Ingest is `col add bench DIR` of the whole corpus; \
             verify re-hashes every document (MB = 10^6 logical bytes per second); store size is the sum of the file \
             sizes under `.colstore/` after `col gc`, divided by the logical bytes (duplicates included). \
             Ratio = measured ÷ target.\n",
        );
        out.push_str(&format!("\n`col stats --json` after the run:\n\n```json\n{}\n```\n", self.stats.trim_end()));
        out.push_str(&format!("\nReproduce with:\n\n```sh\n{}\n```\n\n{END}\n", self.command));
        out
    }
}

/// The new file content: `existing` with its generated section replaced by `section`, the section appended when
/// there is none, or a new file when `existing` is `None`.
pub(crate) fn replace_section(existing: Option<&str>, section: &str) -> String {
    let Some(text) = existing else { return format!("{HEADER}\n{section}") };
    match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            let rest = text[end + END.len()..].trim_start_matches('\n');
            let separator = if rest.is_empty() { "" } else { "\n" };
            format!("{}{section}{separator}{rest}", &text[..begin])
        }
        _ => format!("{}\n\n{section}", text.trim_end()),
    }
}

/// The `model name` of the first CPU in `/proc/cpuinfo`.
pub(crate) fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub(crate) fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch (Howard Hinnant's `civil_from_days`), so xtask needs no
/// date crate.
pub(crate) fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", secs_of_day / 3600, secs_of_day % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurements() -> Measurements {
        Measurements {
            docs: 100_000,
            distinct: 50_000,
            logical_bytes: 256_100_000,
            add: Duration::from_secs(4),
            ls: (1..=20).map(Duration::from_millis).collect(),
            verify: Duration::from_secs(2),
            store_bytes: 115_245_000,
        }
    }

    fn report() -> Report {
        Report {
            date: "2026-05-01 12:34 UTC".into(),
            machine: Machine { cpu: "Example CPU @ 2.20GHz".into(), cpus: "2".into(), memory_bytes: Some(24 * 1024 * 1024 * 1024) },
            rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
            code: "git 0123abc".into(),
            seed: 42,
            measurements: measurements(),
            stats: "{\n  \"documents\": 100000\n}".into(),
            command: "cargo xtask bench --docs 100000".into(),
        }
    }

    #[test]
    fn median_handles_odd_even_and_empty() {
        let d = Duration::from_millis;
        assert_eq!(median(&[d(5), d(1), d(3)]), d(3));
        assert_eq!(median(&[d(4), d(1), d(3), d(2)]), Duration::from_micros(2500));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn figures_compare_each_measurement_with_its_target() {
        let figures = measurements().figures();
        let summary: Vec<(String, String, String, bool)> =
            figures.iter().map(|f| (f.measured.clone(), f.target.clone(), f.ratio_text(), f.meets)).collect();
        assert_eq!(
            summary,
            [
                ("25 000 docs/s (4.00 s)".into(), "≥ 25 000 docs/s".into(), "1.00× target".into(), true),
                ("median 10.5 ms, max 20.0 ms (20 runs)".into(), "median < 50 ms".into(), "0.21× target".into(), true),
                ("128 MB/s (2.00 s)".into(), "≥ 200 MB/s".into(), "0.64× target".into(), false),
                ("0.450 of logical (115.2 MB)".into(), "≤ 0.55".into(), "0.82× target".into(), true),
            ]
        );
    }

    #[test]
    fn figures_flag_slow_listing_and_large_stores() {
        let mut m = measurements();
        m.ls = vec![Duration::from_millis(50); 3];
        m.store_bytes = m.logical_bytes;
        let figures = m.figures();
        assert!(!figures[1].meets, "50 ms is not below 50 ms");
        assert!(!figures[3].meets);
        assert_eq!(figures[3].ratio_text(), "1.82× target");
    }

    #[test]
    fn figures_stay_finite_for_zero_durations() {
        let mut m = measurements();
        m.add = Duration::ZERO;
        m.verify = Duration::ZERO;
        m.ls.clear();
        assert!(m.figures().iter().all(|f| f.ratio.is_finite()));
    }

    #[test]
    fn thousands_are_grouped_with_spaces() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1 000");
        assert_eq!(group_thousands(25_000), "25 000");
        assert_eq!(group_thousands(1_234_567), "1 234 567");
    }

    #[test]
    fn columns_align_by_characters_not_bytes() {
        let rows = vec![vec!["a".to_owned(), "≥ 1".to_owned(), "x".to_owned()], vec!["long".to_owned(), "2".to_owned(), String::new()]];
        assert_eq!(columns(&rows), "a     ≥ 1  x\nlong  2\n");
    }

    #[test]
    fn table_lists_every_figure_and_the_data() {
        let table = report().table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("figure"), "{table}");
        assert!(lines[1].starts_with("Ingest: col add ") && lines[1].ends_with("meets"), "{table}");
        assert!(lines[3].contains("128 MB/s") && lines[3].ends_with("MISSES"), "{table}");
        assert!(lines[4].starts_with("Store size after col gc") && lines[4].contains("0.82× target"), "{table}");
        assert!(
            table.contains("data: 100 000 files of 1–4 KiB text (50 000 distinct + 50 000 byte-identical duplicates), 256.1 MB logical")
        );
    }

    #[test]
    fn markdown_section_records_context_figures_stats_and_command() {
        let section = report().markdown_section();
        for needle in [
            BEGIN,
            END,
            "| Date | 2026-05-01 12:34 UTC |",
            "| Machine | Example CPU @ 2.20GHz, 2 CPUs (nproc), 24.0 GiB RAM |",
            "| Toolchain | rustc 1.95.0 (59807616e 2026-04-14) |",
            "| Code | git 0123abc |",
            "256.1 MB logical, seed 0x000000000000002a",
            "| Ingest: `col add` | 25 000 docs/s (4.00 s) | ≥ 25 000 docs/s | 1.00× target | meets |",
            "| List: `col ls bench --limit 100` | median 10.5 ms, max 20.0 ms (20 runs) | median < 50 ms | 0.21× target | meets |",
            "| Verify: `col verify` | 128 MB/s (2.00 s) | ≥ 200 MB/s | 0.64× target | MISSES |",
            "| Store size after `col gc` | 0.450 of logical (115.2 MB) | ≤ 0.55 | 0.82× target | meets |",
            "```json\n{\n  \"documents\": 100000\n}\n```",
            "```sh\ncargo xtask bench --docs 100000\n```",
        ] {
            assert!(section.contains(needle), "missing {needle:?} in\n{section}");
        }
        assert!(section.starts_with(BEGIN) && section.trim_end().ends_with(END));
    }

    #[test]
    fn section_is_created_replaced_or_appended() {
        let first = format!("{BEGIN}\nold\n{END}\n");
        let new_file = replace_section(None, &first);
        assert!(new_file.starts_with("# Benchmarks\n") && new_file.ends_with(&first), "{new_file}");

        let second = format!("{BEGIN}\nnew\n{END}\n");
        let with_notes = format!("{new_file}\n## Notes\n\nkept by hand\n");
        let replaced = replace_section(Some(&with_notes), &second);
        assert_eq!(replaced, format!("{}{second}\n## Notes\n\nkept by hand\n", new_file.strip_suffix(&first).unwrap()));
        assert!(!replaced.contains("old"));
        // Idempotent: replacing with the same section changes nothing.
        assert_eq!(replace_section(Some(&replaced), &second), replaced);

        let appended = replace_section(Some("# Benchmarks\n\nhand-written intro\n"), &second);
        assert_eq!(appended, format!("# Benchmarks\n\nhand-written intro\n\n{second}"));
    }

    #[test]
    fn markdown_cells_escape_pipes() {
        let mut r = report();
        r.machine.cpu = "odd | cpu".into();
        assert!(r.markdown_section().contains("| Machine | odd \\| cpu, 2 CPUs"));
    }

    #[test]
    fn proc_files_are_parsed() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(parse_cpu_model(cpuinfo).as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        assert_eq!(parse_cpu_model("processor : 0\nHardware : BCM2835\n"), None);
        let meminfo = "MemTotal:       24730000 kB\nMemFree:        22000000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(24_730_000 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn utc_dates_follow_the_calendar() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_709_210_096), "2024-02-29 12:34 UTC");
        assert_eq!(utc_date(1_798_761_599), "2026-12-31 23:59 UTC");
    }
}
