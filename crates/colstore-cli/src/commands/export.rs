//! `col export` and `col import`: the portable file (docs/EXPORT-FORMAT.md).

use std::time::Instant;

use colstore_app::backup::{RestoreMode, RestorePlan};
use colstore_app::ImportRunError;
use colstore_domain::ports::SafetyCopy;
use colstore_wiring::SystemClock;
use serde_json::json;

use super::collection::confirm;
use super::restore::print_plan;
use super::safety::{SafetyProgress, announce_safety, safety_label};
use super::{Ctx, collection_name, display, io};
use crate::cli::RestoreModeArg;
use crate::error::{CliError, CliResult};
use crate::output::{human_bytes, to_value};

pub async fn export(ctx: &Ctx, a: crate::cli::ExportArgs) -> CliResult {
    let collections = a.collections.iter().map(|c| collection_name(c)).collect::<CliResult<Vec<_>>>()?;
    let scope = match a.filters.len() {
        0 => colstore_app::ExportScope::collections(collections),
        n => {
            let text = if n == 1 { a.filters[0].clone() } else { a.filters.iter().map(|f| format!("({f})")).collect::<Vec<_>>().join(" and ") };
            colstore_app::ExportScope::filtered(collections, text, super::where_filter(&a.filters)?)?
        }
    };
    let store = ctx.open().await?;
    let _lock = ctx.shared_lock(&store).await?;
    let target = a.output.clone();
    // A regular file is written beside the target, synced and renamed (the target is either the old file or the whole
    // new one); a symbolic link is followed and stays a link; `-`, a device or a FIFO is written straight.
    let out = crate::outfile::OutputFile::create(&target)?;
    let to_stdout = out.is_stdout();
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(CliError::new("refusing to write an export (compressed, binary) to the terminal")
            .code(2)
            .hint("pipe it, e.g. `col export -o - | col --store OTHER import -`, or give a file name: -o notes.colstore"));
    }
    let bar = crate::progress::bar(0, false, ctx.hide_progress, "exporting");
    let now = colstore_domain::ports::Clock::now(&SystemClock);
    let result =
        colstore_app::export_to(&**store.repo(), &scope, store.store_id(), env!("CARGO_PKG_VERSION"), now, out, &|n| bar.set_position(n))
            .await;
    bar.finish_and_clear();
    let (report, out) = result.map_err(|e| match e {
        colstore_app::ExportError::Io(e) => CliError::new(format!("cannot write {}: {e}", display(&target))),
        e => e.into(),
    })?;
    let shown = out.shown().to_owned();
    let size = out.commit()?;
    let filter = scope.filter.as_ref().map(|(text, _)| text.as_str());
    let doc = json!({ "file": shown, "export": to_value(&report), "file_bytes": size, "filter": filter });
    let line = format!(
        "Exported {} collection(s), {} documents{} ({}) and {} vectors to {}{}.",
        report.collections,
        report.documents,
        filter.map(|f| format!(" matching `{f}`")).unwrap_or_default(),
        human_bytes(report.bytes),
        report.vectors,
        shown,
        size.map(|s| format!(" ({})", human_bytes(s))).unwrap_or_default()
    );
    if to_stdout {
        // Standard output carries the file: the summary goes to standard error, and only without --json/--quiet.
        if !ctx.out.json && !ctx.out.quiet {
            eprintln!("{line}");
        }
        return Ok(());
    }
    ctx.out.json_value(&doc).map_err(io)?;
    ctx.out.line(line).map_err(io)?;
    Ok(())
}

/// An import error, naming the file when the problem is in it.
fn import_error(shown: &str, e: colstore_app::ExportError) -> CliError {
    use colstore_app::ExportError as E;
    let in_file = matches!(e, E::Malformed { .. } | E::LineTooLong { .. });
    let mut err = CliError::from(e);
    if in_file {
        err.message = err.message.replacen("the import file is", &format!("the import file {shown} is"), 1);
    }
    err
}

/// Where `col import` reads from: a file, or standard input (`-`) copied once into a temporary file, since the file is
/// read twice (checked whole first, then written).
enum ImportSource {
    Path(std::path::PathBuf),
    Stdin(std::fs::File),
}

impl ImportSource {
    fn open(path: &std::path::Path) -> CliResult<Self> {
        if path.as_os_str() != "-" {
            return Ok(Self::Path(path.to_owned()));
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(CliError::new("`col import -` reads an export from standard input, which is a terminal")
                .code(2)
                .hint("pipe it in, e.g. `col export -o - | col --store OTHER import -`, or give the file's path"));
        }
        let mut spool = tempfile::tempfile()
            .map_err(|e| CliError::new(format!("cannot make a temporary file for standard input: {e}")).hint("check TMPDIR"))?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool)
            .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
        Ok(Self::Stdin(spool))
    }

    fn shown(&self) -> String {
        match self {
            Self::Path(p) => display(p),
            Self::Stdin(_) => "standard input".into(),
        }
    }

    /// A fresh reader from the start.
    fn reader(&self) -> CliResult<impl std::io::BufRead + use<>> {
        let file = match self {
            Self::Path(path) => std::fs::File::open(path).map_err(|e| {
                CliError::new(format!("cannot read {}: {e}", display(path))).hint("give the path of a file written by `col export`")
            })?,
            Self::Stdin(spool) => {
                let mut f = spool.try_clone().map_err(|e| CliError::new(format!("cannot read standard input again: {e}")))?;
                std::io::Seek::rewind(&mut f).map_err(|e| CliError::new(format!("cannot read standard input again: {e}")))?;
                f
            }
        };
        colstore_app::decode_export(file).map_err(|e| CliError::new(format!("cannot read {}: {e}", self.shown())))
    }
}

pub async fn import(ctx: &Ctx, a: crate::cli::ImportArgs) -> CliResult {
    if let Some(source) = super::adopt::remote_source(&a.file) {
        return super::adopt::run(ctx, &source, a).await;
    }
    super::adopt::refuse_remote_flags(&a)?;
    let mode = match a.mode.unwrap_or(RestoreModeArg::Replace) {
        RestoreModeArg::Replace => RestoreMode::Replace,
        RestoreModeArg::Merge => RestoreMode::Merge,
    };
    let source = ImportSource::open(&a.file)?;
    let store = ctx.open().await?;
    // Pass one checks the whole file before anything changes.
    let plan = colstore_app::plan_import(&**store.repo(), source.reader()?, mode).await.map_err(|e| import_error(&source.shown(), e))?;
    let as_restore = RestorePlan { id: source.shown(), mode, collections: plan.collections.clone() };
    print_plan(ctx, &as_restore, "Import plan for", &display(store.dir().root()))?;
    if a.dry_run {
        ctx.out.json_value(&json!({ "plan": to_value(&plan), "dry_run": true })).map_err(io)?;
        ctx.out
            .line(format!(
                "The file is complete and valid ({} documents, {} vectors). Dry run: nothing was changed.",
                plan.documents, plan.vectors
            ))
            .map_err(io)?;
        return Ok(());
    }
    let overwrites: u64 = plan.collections.iter().map(|c| c.delete + c.update).sum();
    // Only an import that overwrites or deletes something (documents or settings) asks; adding never does.
    if !a.yes && (overwrites > 0 || plan.collections.iter().any(|c| c.settings_change)) {
        confirm(&format!("Import {} documents, overwriting or deleting {overwrites}?", plan.documents))?;
    }
    let _lock = ctx.exclusive_lock(&store, "import").await?;
    let progress = SafetyProgress::new(ctx);
    let on_event = |e| progress.on_event(e);
    let net = store.safety_net(&on_event);
    let on_kept = |copy: &SafetyCopy| {
        progress.finish();
        announce_safety(ctx, copy);
    };
    let bar = std::sync::OnceLock::new();
    let started = Instant::now();
    let safety_net = if a.no_backup { None } else { Some(&net as &dyn colstore_domain::ports::SafetyNet) };
    let outcome = colstore_app::run_import(&**store.repo(), &*store.sync_store(), safety_net, &plan, source.reader()?, &on_kept, &|n| {
        bar.get_or_init(|| crate::progress::bar(plan.documents, false, ctx.hide_progress, "importing")).set_position(n);
    })
    .await;
    progress.finish();
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    let outcome = outcome.map_err(|e| match e {
        ImportRunError::Safety(e) => e.into(),
        ImportRunError::Import(e) => import_error(&source.shown(), e),
    })?;
    let written = outcome.written;
    let safety = outcome.safety.as_ref().map(safety_label);
    ctx.out
        .json_value(&json!({ "plan": to_value(&plan), "documents_written": written, "safety_backup": safety, "dry_run": false }))
        .map_err(io)?;
    ctx.out
        .line(format!(
            "Imported {written} documents ({} vectors into the embedding cache) ({:.1}s). Run `col sync` to project them; cached vectors need no embedder call.",
            plan.vectors,
            started.elapsed().as_secs_f64()
        ))
        .map_err(io)?;
    if let Some(s) = safety {
        ctx.out.line(format!("Undo with `col restore {s}`.")).map_err(io)?;
    }
    Ok(())
}
