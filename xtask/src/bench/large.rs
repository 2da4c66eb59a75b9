//! The large-document area (`--only large`): peak memory and time of `col` moving one document of 2 GiB (issue 11,
//! defect 6: at most 200 MB resident for backup, restore, export and import, whatever one document's size).
//!
//! One text document ([`LargeDoc`], `--large-bytes`, 2 GiB by default) is generated into the bench folder a block at a
//! time, never whole in memory. In a fresh store, `col init` and `col collection create big` (not timed), then each
//! of these runs under the backup area's memory probe: `col put big doc.txt FILE`, `col get big doc.txt -o OUT`,
//! `col backup`, `col restore latest --to-store NEW --yes`, `col export -o FILE.colstore` and, in a third fresh store,
//! `col import FILE.colstore --yes`. The copies that come back — the `get` output, and the document read out of the
//! restored and of the imported store (not timed) — are compared byte for byte with the input; a difference fails the
//! area. restic, the peer, backs up the same file into a repository of its own and restores it into a fresh folder,
//! under the same probe; when it cannot be had or fails, colstore's figures are reported alone with the reason.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::backup::{
    Memory, PEAK_RSS_TARGET_BYTES, ResticRunner, Row, Run, col_run, mb_per_s, os, refs, restic_step, rows_markdown, rss_text,
};
use super::corpus::text_sized;
use super::report::{Figure, group_thousands};
use super::{Col, create_dirs, step};

/// The document's default size: 2 GiB, the size issue 11 names.
pub(crate) const DEFAULT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Seed of the document: its own, so its text is none of the other corpora's.
pub(crate) const SEED: u64 = 0x1A56_E0D0_C5EE_D0B1;
/// The document is written, and compared, in blocks of this size; each block starts with its own number.
pub(crate) const BLOCK: usize = 1024 * 1024;
/// The key the document is stored under, in the collection [`COLLECTION`].
const KEY: &str = "doc.txt";
const COLLECTION: &str = "big";
const MB: f64 = 1e6;

/// One text document of `bytes` bytes: blocks of [`BLOCK`] bytes (the last one shorter when `bytes` is not a
/// multiple), each a line `block NNNNNNNN of LARGE-DOC` and then prose-like text of its own seed, so no two blocks —
/// and no two 4 MiB pieces — are equal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LargeDoc {
    pub(crate) bytes: u64,
    pub(crate) seed: u64,
}

impl LargeDoc {
    pub(crate) fn new(bytes: u64) -> Self {
        Self { bytes, seed: SEED }
    }

    /// How many blocks the document has.
    pub(crate) fn blocks(&self) -> u64 {
        self.bytes.div_ceil(BLOCK as u64)
    }

    /// Block `i`: [`BLOCK`] bytes, or what is left of the document for the last one.
    pub(crate) fn block(&self, i: u64) -> Vec<u8> {
        assert!(i < self.blocks(), "block {i} of a {}-block document", self.blocks());
        let len = (self.bytes - i * BLOCK as u64).min(BLOCK as u64) as usize;
        let mut out = format!("block {i:08} of LARGE-DOC\n").into_bytes();
        if len > out.len() {
            let rest = len - out.len();
            out.extend(text_sized(self.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15), rest, rest));
        }
        out.truncate(len);
        out
    }

    /// Writes the document to `path`, one block at a time.
    pub(crate) fn write_to(&self, path: &Path) -> io::Result<()> {
        let mut file = File::create(path)?;
        for i in 0..self.blocks() {
            file.write_all(&self.block(i))?;
        }
        file.sync_all()
    }
}

/// A document size in GiB from 1 GiB up, else in MiB.
fn size_text(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024 * 1024 * 1024 { format!("{:.2} GiB", bytes as f64 / (MIB * 1024.0)) } else { format!("{:.1} MiB", bytes as f64 / MIB) }
}

/// Reads until `buf` is full or the end of the input, and returns how many bytes were read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Whether the two files hold the same bytes, read [`BLOCK`] at a time; `Err` names the file that could not be read.
pub(crate) fn same_bytes(a: &Path, b: &Path) -> Result<bool, String> {
    let open = |path: &Path| File::open(path).map_err(|err| format!("cannot open {}: {err}", path.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0; BLOCK], vec![0; BLOCK]);
    loop {
        let na = fill(&mut fa, &mut ba).map_err(|err| format!("cannot read {}: {err}", a.display()))?;
        let nb = fill(&mut fb, &mut bb).map_err(|err| format!("cannot read {}: {err}", b.display()))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// restic's figures for the same document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResticLarge {
    /// `restic version`.
    pub(crate) version: String,
    pub(crate) backup: Run,
    pub(crate) restore: Run,
}

/// restic's run beside a command: `None` where restic has no such command, `Err` where restic was unavailable.
type Peer = Option<Result<Run, ()>>;

/// The large-document area's measurements.
#[derive(Debug, Clone)]
pub(crate) struct LargeBench {
    pub(crate) bytes: u64,
    pub(crate) seed: u64,
    /// How peak memory was measured.
    pub(crate) memory: String,
    pub(crate) put: Run,
    pub(crate) get: Run,
    pub(crate) backup: Run,
    pub(crate) restore: Run,
    pub(crate) export: Run,
    pub(crate) import: Run,
    /// restic's figures, or why there are none.
    pub(crate) restic: Result<ResticLarge, String>,
}

impl LargeBench {
    /// The measured commands, in the order they ran: the command as shown, colstore's run, restic's run beside it.
    fn commands(&self) -> Vec<(&'static str, Run, Peer)> {
        let restic = |f: fn(&ResticLarge) -> Run| Some(self.restic.as_ref().map(f).map_err(|_| ()));
        vec![
            ("`col put`", self.put, None),
            ("`col get -o`", self.get, None),
            ("`col backup`", self.backup, restic(|r| r.backup)),
            ("`col restore --to-store`", self.restore, restic(|r| r.restore)),
            ("`col export`", self.export, None),
            ("`col import`", self.import, None),
        ]
    }

    /// Peak RSS of each command against the target (restic's beside backup and restore), then each time, informational.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let size = size_text(self.bytes);
        let target = format!("≤ {:.0} MB", PEAK_RSS_TARGET_BYTES as f64 / MB);
        let no_peer = || "—".to_owned();
        let unavailable = || "unavailable".to_owned();
        let mut rows = Vec::new();
        for (command, run, peer) in self.commands() {
            let peer_rss = peer.and_then(Result::ok).and_then(|r| r.peak_rss);
            rows.push(Row {
                name: format!("Peak RSS of {command}, one {size} document"),
                colstore: rss_text(run.peak_rss),
                restic: peer.map_or_else(no_peer, |p| p.map_or_else(|()| unavailable(), |r| rss_text(r.peak_rss))),
                vs_restic: run.peak_rss.zip(peer_rss).map(|(c, r)| c as f64 / r.max(1) as f64),
                target: target.clone(),
                ratio: run.peak_rss.map(|b| b as f64 / PEAK_RSS_TARGET_BYTES as f64),
                meets: run.peak_rss.map(|b| b <= PEAK_RSS_TARGET_BYTES),
            });
        }
        let time_text = |run: Run| format!("{:.2} s ({:.1} MB/s)", run.elapsed.as_secs_f64(), mb_per_s(self.bytes, run.elapsed));
        for (command, run, peer) in self.commands() {
            rows.push(Row {
                name: format!("Time of {command}, one {size} document"),
                colstore: time_text(run),
                restic: peer.map_or_else(no_peer, |p| p.map_or_else(|()| unavailable(), time_text)),
                vs_restic: peer.and_then(Result::ok).map(|r| run.elapsed.as_secs_f64() / r.elapsed.as_secs_f64().max(1e-9)),
                target: "—".into(),
                ratio: None,
                meets: None,
            });
        }
        rows
    }

    /// The rows as the report's figures: colstore's value, with restic's beside it where restic was measured.
    pub(crate) fn figures(&self) -> Vec<Figure> {
        self.rows().into_iter().map(|row| row.figure("Large")).collect()
    }

    /// The context line: data, restic's version, memory method.
    pub(crate) fn context(&self) -> String {
        let restic = super::backup::restic_label(self.restic.as_ref().map(|r| r.version.as_str()).map_err(String::as_str));
        format!(
            "one text document of {} bytes ({:.1} MB) in {} blocks of 1 MiB, each numbered, seed {:#018x}; {restic}; \
             peak memory by {}",
            group_thousands(self.bytes),
            self.bytes as f64 / MB,
            group_thousands(self.bytes.div_ceil(BLOCK as u64)),
            self.seed,
            self.memory
        )
    }

    /// How the large-document figures were measured.
    pub(crate) fn note() -> String {
        "Large document: one generated text document is `col put` into a fresh store's collection `big`, read back with \
         `col get -o`, backed up with `col backup` (default repository), restored with `col restore latest --to-store NEW \
         --yes`, exported with `col export -o FILE` and imported with `col import FILE --yes` into a third fresh store; \
         the `get` output and the document read out of the restored and the imported store are compared byte for byte \
         with the input. restic (`RESTIC_PASSWORD` set, repository and cache of its own) runs `backup` of the same file \
         and `restore latest --target NEW`. MB/s are the document's bytes ÷ the command's wall time."
            .to_owned()
    }

    /// The comparison as a markdown table, printed when the area has run.
    pub(crate) fn comparison_markdown(&self) -> String {
        rows_markdown(&self.rows())
    }
}

/// Fails unless `copy` holds the same bytes as `input`; `what` says where the copy came from.
fn check_same(input: &Path, copy: &Path, what: &str) -> Result<(), String> {
    if same_bytes(input, copy)? {
        println!("{what}: byte-identical to the input");
        Ok(())
    } else {
        Err(format!("{what} ({}) differs from the input document ({})", copy.display(), input.display()))
    }
}

/// Reads the document out of `store` with `col get` (not timed), checks it against `input`, and deletes the copy.
fn check_store(bin: &Path, store: &Path, cwd: &Path, input: &Path, what: &str) -> Result<(), String> {
    let copy = cwd.join("check-copy.txt");
    let col = Col { bin, store, cwd };
    col.run([OsStr::new("get"), OsStr::new(COLLECTION), OsStr::new(KEY), OsStr::new("-o"), copy.as_os_str()])?;
    check_same(input, &copy, what)?;
    std::fs::remove_file(&copy).map_err(|err| format!("cannot remove {}: {err}", copy.display()))
}

/// `[prefix…, path, suffix…]` as arguments.
fn with_path(prefix: &[&str], path: &Path, suffix: &[&str]) -> Vec<OsString> {
    let mut args = os(prefix);
    args.push(path.as_os_str().to_owned());
    args.extend(os(suffix));
    args
}

/// Where `restic restore --target TARGET` puts the file backed up as `path` (absolute): under TARGET, at its full path.
fn restic_restored(target: &Path, path: &Path) -> PathBuf {
    target.join(path.strip_prefix("/").unwrap_or(path))
}

/// The large-document area: see the module documentation. Only colstore's failures fail it.
pub(crate) fn measure_large(bin: &Path, dir: &Path, bytes: u64) -> Result<LargeBench, String> {
    let base = dir.join("large");
    let store = base.join("store");
    create_dirs(&[&base, &store])?;
    let memory = Memory::detect(&base);
    println!("peak memory: {}", memory.describe());

    let doc = LargeDoc::new(bytes);
    // Absolute, so restic records (and restores) it under its full path.
    let input = base.canonicalize().map_err(|err| format!("cannot resolve {}: {err}", base.display()))?.join("input.txt");
    step(&format!("generating one document of {} bytes in {}", group_thousands(bytes), input.display()));
    doc.write_to(&input).map_err(|err| format!("cannot write {}: {err}", input.display()))?;

    let col = Col { bin, store: &store, cwd: &base };
    step(&format!("col init; col collection create {COLLECTION} (not timed)"));
    col.run(["init"])?;
    col.run(["collection", "create", COLLECTION])?;

    step(&format!("col put {COLLECTION} {KEY} <document>"));
    let put = col_run(&col, &memory, &refs(&with_path(&["put", COLLECTION, KEY], &input, &[])))?.1;

    let got = base.join("got.txt");
    step(&format!("col get {COLLECTION} {KEY} -o <file>"));
    let get = col_run(&col, &memory, &refs(&with_path(&["get", COLLECTION, KEY, "-o"], &got, &[])))?.1;
    check_same(&input, &got, "`col get -o` output")?;
    std::fs::remove_file(&got).map_err(|err| format!("cannot remove {}: {err}", got.display()))?;

    let mut restic = ResticRunner::setup(&base.join("restic-repo"), &base.join("restic-cache"), &base);
    if let Err(why) = &restic {
        eprintln!("warning: restic is unavailable ({why}); colstore's figures are reported alone");
    }
    let (mut restic_backup, mut restic_restore) = (Run::default(), Run::default());

    step("col backup");
    let backup = col_run(&col, &memory, &refs(&os(&["backup"])))?.1;
    restic_step(&mut restic, "restic backup <document>", |r| {
        restic_backup = r.run(&memory, &[OsStr::new("backup"), input.as_os_str()])?;
        Ok(())
    });

    let restored = base.join("restored-store");
    step(&format!("col restore latest --to-store {} --yes", restored.display()));
    let restore = col_run(&col, &memory, &refs(&with_path(&["restore", "latest", "--to-store"], &restored, &["--yes"])))?.1;
    check_store(bin, &restored, &base, &input, "the document of the restored store")?;
    let restic_target = base.join("restic-restore");
    restic_step(&mut restic, "restic restore latest --target <folder>", |r| {
        restic_restore = r.run(&memory, &refs(&with_path(&["restore", "latest", "--target"], &restic_target, &[])))?;
        let copy = restic_restored(&restic_target, &input);
        match same_bytes(&input, &copy) {
            Ok(true) => println!("restic's restored file: byte-identical to the input"),
            other => eprintln!("warning: restic's restored file {} is not the input ({other:?})", copy.display()),
        }
        std::fs::remove_dir_all(&restic_target).map_err(|err| format!("cannot remove {}: {err}", restic_target.display()))
    });

    let export_file = base.join("export.colstore");
    step("col export -o <file>");
    let export = col_run(&col, &memory, &refs(&with_path(&["export", "-o"], &export_file, &[])))?.1;

    let imported = base.join("imported-store");
    create_dirs(&[&imported])?;
    let import_col = Col { bin, store: &imported, cwd: &base };
    step("col init (a third store, not timed); col import <file> --yes");
    import_col.run(["init"])?;
    let import = col_run(&import_col, &memory, &refs(&with_path(&["import"], &export_file, &["--yes"])))?.1;
    check_store(bin, &imported, &base, &input, "the document of the imported store")?;

    let bench = LargeBench {
        bytes,
        seed: doc.seed,
        memory: memory.describe(),
        put,
        get,
        backup,
        restore,
        export,
        import,
        restic: restic.map(|r| ResticLarge { version: r.version, backup: restic_backup, restore: restic_restore }),
    };
    println!("\nOne large document, colstore against restic ({}):\n\n{}", bench.context(), bench.comparison_markdown());
    Ok(bench)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_document_is_numbered_blocks_of_text_of_the_exact_size() {
        let doc = LargeDoc::new(3 * BLOCK as u64 + 100);
        assert_eq!(doc.blocks(), 4);
        let blocks: Vec<Vec<u8>> = (0..doc.blocks()).map(|i| doc.block(i)).collect();
        assert_eq!(blocks.iter().map(Vec::len).collect::<Vec<_>>(), [BLOCK, BLOCK, BLOCK, 100]);
        assert!(blocks[2].starts_with(b"block 00000002 of LARGE-DOC\n"));
        assert_ne!(blocks[0][40..1000], blocks[1][40..1000], "each block has its own text");
        assert!(std::str::from_utf8(&blocks[1]).unwrap().split_whitespace().count() > 100_000);
        assert_eq!(LargeDoc::new(3 * BLOCK as u64 + 100).block(1), blocks[1], "deterministic");
        // A document shorter than a block's number line is cut inside it.
        assert_eq!(LargeDoc::new(5).block(0), b"block");
        assert_eq!(LargeDoc::new(DEFAULT_BYTES).blocks(), 2048);
    }

    #[test]
    fn the_document_is_written_and_compared_by_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let doc = LargeDoc::new(2 * BLOCK as u64 + 7);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        doc.write_to(&a).unwrap();
        assert_eq!(std::fs::metadata(&a).unwrap().len(), doc.bytes);
        let expected: Vec<u8> = (0..doc.blocks()).flat_map(|i| doc.block(i)).collect();
        assert_eq!(std::fs::read(&a).unwrap(), expected);
        std::fs::copy(&a, &b).unwrap();
        assert_eq!(same_bytes(&a, &b), Ok(true));
        let mut changed = expected.clone();
        changed[BLOCK + 10] ^= 1;
        std::fs::write(&b, &changed).unwrap();
        assert_eq!(same_bytes(&a, &b), Ok(false));
        std::fs::write(&b, &expected[..expected.len() - 1]).unwrap();
        assert_eq!(same_bytes(&a, &b), Ok(false), "shorter");
        assert!(check_same(&a, &b, "copy").unwrap_err().starts_with("copy ("));
        assert!(same_bytes(&a, &dir.path().join("missing")).unwrap_err().starts_with("cannot open"));
    }

    #[test]
    fn sizes_are_shown_in_gib_or_mib() {
        assert_eq!(size_text(DEFAULT_BYTES), "2.00 GiB");
        assert_eq!(size_text(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(size_text(1_500_000), "1.4 MiB");
    }

    #[test]
    fn restic_restores_under_the_full_path() {
        assert_eq!(restic_restored(Path::new("t"), Path::new("/x/large/input.txt")), Path::new("t/x/large/input.txt"));
    }

    fn run(secs: f64, rss_mb: u64) -> Run {
        Run { elapsed: Duration::from_secs_f64(secs), peak_rss: Some(rss_mb * 1_000_000) }
    }

    fn bench(restic: Result<ResticLarge, String>) -> LargeBench {
        LargeBench {
            bytes: DEFAULT_BYTES,
            seed: SEED,
            memory: "`/usr/bin/time -f %M`".into(),
            put: run(10.0, 37),
            get: run(5.0, 19),
            backup: run(20.0, 138),
            restore: run(30.0, 250),
            export: run(8.0, 32),
            import: run(25.0, 65),
            restic,
        }
    }

    fn restic() -> ResticLarge {
        ResticLarge {
            version: "restic 0.14.0 compiled with go1.19.8 on linux/amd64".into(),
            backup: run(40.0, 276),
            restore: run(15.0, 125),
        }
    }

    #[test]
    fn rows_judge_each_peak_and_put_restic_beside_backup_and_restore() {
        let b = bench(Ok(restic()));
        let rows = b.rows();
        assert_eq!(rows.len(), 12);
        assert_eq!(rows[0].name, "Peak RSS of `col put`, one 2.00 GiB document");
        assert_eq!((rows[0].colstore.as_str(), rows[0].restic.as_str(), rows[0].vs_restic), ("37.0 MB", "—", None));
        assert_eq!(rows[2].restic, "276.0 MB");
        assert_eq!(rows[2].vs_restic.map(|v| format!("{v:.2}")), Some("0.50".into()));
        assert_eq!(rows[3].restic, "125.0 MB");
        let verdicts: Vec<Option<bool>> = rows.iter().map(|r| r.meets).collect();
        assert_eq!(verdicts[..6], [Some(true), Some(true), Some(true), Some(false), Some(true), Some(true)]);
        assert!(verdicts[6..].iter().all(Option::is_none), "times are informational");
        assert_eq!(rows[3].ratio.map(|v| format!("{v:.2}")), Some("1.25".into()));
        assert_eq!(rows[3].target, "≤ 200 MB");
        assert_eq!(rows[6].name, "Time of `col put`, one 2.00 GiB document");
        assert_eq!(rows[6].colstore, "10.00 s (214.7 MB/s)");
        assert_eq!(rows[8].restic, "40.00 s (53.7 MB/s)");
        assert_eq!(rows[8].vs_restic, Some(0.5));
        let figures = b.figures();
        assert_eq!(figures[0].name, "Large: Peak RSS of `col put`, one 2.00 GiB document");
        assert_eq!(figures[0].measured, "colstore 37.0 MB");
        assert_eq!(figures[2].measured, "colstore 138.0 MB; restic 276.0 MB; 0.50× restic");
        let table = b.comparison_markdown();
        assert!(table.contains("| 250.0 MB | 125.0 MB | 2.00× | ≤ 200 MB | 1.25× target | MISSES |"), "{table}");
        assert!(b.context().starts_with("one text document of 2 147 483 648 bytes (2147.5 MB) in 2 048 blocks"), "{}", b.context());
        assert!(b.context().contains("restic 0.14.0 compiled"));
    }

    #[test]
    fn without_restic_colstore_is_reported_alone_with_the_reason() {
        let mut b = bench(Err("not on PATH and not installable".into()));
        let rows = b.rows();
        assert_eq!((rows[2].restic.as_str(), rows[2].vs_restic, rows[2].meets), ("unavailable", None, Some(true)));
        assert_eq!(rows[0].restic, "—");
        assert_eq!(b.figures()[8].measured, "colstore 20.00 s (107.4 MB/s); restic unavailable");
        assert!(b.context().contains("restic unavailable (not on PATH and not installable)"));
        // Unknown memory is not judged.
        b.import.peak_rss = None;
        assert_eq!((b.rows()[5].colstore.as_str(), b.rows()[5].meets), ("unknown", None));
    }
}
