//! `col add PATH…`.

use colstore_app::{AddEvent, AddOptions, CancelToken, add_paths_until};
use colstore_domain::ports::RepoError;
use colstore_domain::Tags;
use serde_json::json;

use super::docs::parse_meta;
use super::{Ctx, collection_name, display, io};
use crate::cli::AddArgs;
use crate::error::{CliError, CliResult};
use crate::output::{human_bytes, to_value};
use crate::progress;

pub async fn run(ctx: &Ctx, a: AddArgs) -> CliResult {
    let collection = collection_name(&a.collection)?;
    let opts = AddOptions {
        include: a.include,
        exclude: a.exclude,
        prefix: a.prefix,
        metadata: parse_meta(a.meta.as_deref())?,
        tags: Tags::parse_all(&a.tags)?,
        dry_run: a.dry_run,
        front_matter: !a.no_front_matter,
        ..AddOptions::default()
    };
    let store = ctx.open().await?;
    let lock = if a.dry_run { None } else { Some(ctx.shared_lock(&store).await?) };
    if a.create && !a.dry_run {
        match colstore_app::create_collection(&**store.repo(), collection.clone(), None, None, None).await {
            Ok(_) => ctx.out.line(format!("Created collection {collection}")).map_err(io)?,
            Err(RepoError::CollectionExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let bar = std::sync::Mutex::new(None::<indicatif::ProgressBar>);
    let hide = ctx.hide_progress;
    let on_event = |e: AddEvent| {
        let mut bar = bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match e {
            AddEvent::Scanned { bytes, .. } => *bar = Some(progress::bar(bytes, true, hide, if a.dry_run { "checking" } else { "adding" })),
            AddEvent::Batch { bytes, .. } => {
                if let Some(b) = bar.as_ref() {
                    b.inc(bytes);
                }
            }
        }
    };
    let stop = CancelToken::new();
    let _on_ctrl_c = stop_on_ctrl_c(stop.clone())?;
    let result = add_paths_until(store.repo(), &collection, &a.paths, &opts, &on_event, &stop).await;
    if let Some(b) = bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        b.finish_and_clear();
    }
    let report = result?;
    // Fold the write-ahead log into the database now, so the store on disk is compact after a large ingest.
    drop(lock);
    store.close().await;
    let mut doc = to_value(&report);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("collection".into(), json!(collection));
    }
    ctx.out.json_value(&doc).map_err(io)?;
    for w in &report.warnings {
        eprintln!("warning: {}: {}", display(&w.path), w.message);
    }
    for s in &report.skipped {
        if s.error {
            eprintln!("warning: skipped {}: {}", display(&s.path), s.reason);
        } else {
            tracing::info!(path = %s.path.display(), reason = %s.reason, "skipped");
        }
    }
    if report.interrupted {
        ctx.out
            .line(format!(
                "Interrupted: {} of {} files were added to {collection} before Ctrl-C: {} new, {} updated, {} unchanged",
                report.handled(),
                report.files,
                report.created,
                report.updated,
                report.unchanged
            ))
            .map_err(io)?;
        return Err(CliError::new(format!(
            "interrupted by Ctrl-C: {} files were not added",
            report.files.saturating_sub(report.handled() + report.errors() as u64)
        ))
        .hint("run the same `col add` again to add the rest: the files already added are skipped quickly")
        .code(INTERRUPTED));
    }
    let verb = if report.dry_run { "Would add" } else { "Added" };
    ctx.out
        .line(format!(
            "{verb} {} files ({}) to {collection}: {} new, {} updated, {} unchanged{}",
            report.files,
            human_bytes(report.bytes),
            report.created,
            report.updated,
            report.unchanged,
            if report.skipped.is_empty() { String::new() } else { format!(", {} skipped", report.skipped.len()) }
        ))
        .map_err(io)?;
    if report.dry_run {
        ctx.out.line("Dry run: nothing was changed.").map_err(io)?;
    }
    let errors = report.errors();
    if errors > 0 {
        return Err(CliError::new(format!("{errors} files could not be added (see the warnings above); the others were added"))
            .hint("fix the files' permissions or names and run the same `col add` again: unchanged files are skipped quickly"));
    }
    Ok(())
}

/// The exit code of a command stopped by Ctrl-C (SIGINT), as shells report it: 128 + 2.
const INTERRUPTED: i32 = 130;

/// Listens for Ctrl-C while the add runs: the first one asks the add to stop after the batches being written (so
/// nothing is half-written and no staged file is left); a second one ends the process at once (its staged files are
/// removed when the store is next opened). The listener stops when the returned guard is dropped.
fn stop_on_ctrl_c(stop: CancelToken) -> CliResult<AbortOnDrop> {
    // Listening starts here, before the add does, so no Ctrl-C falls back to the default (die silently).
    let mut interrupts = Interrupts::new().map_err(|e| CliError::new(format!("cannot listen for Ctrl-C: {e}")))?;
    let task = tokio::spawn(async move {
        if !interrupts.next().await {
            return;
        }
        eprintln!("interrupted: finishing the batches being written; press Ctrl-C again to stop at once");
        stop.cancel();
        if interrupts.next().await {
            eprintln!("interrupted again: stopping now (unfinished staged files are removed when the store is next opened)");
            std::process::exit(INTERRUPTED);
        }
    });
    Ok(AbortOnDrop(task))
}

/// Ctrl-C presses (SIGINT on Unix).
#[cfg(unix)]
struct Interrupts(tokio::signal::unix::Signal);

#[cfg(unix)]
impl Interrupts {
    fn new() -> std::io::Result<Self> {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map(Self)
    }

    async fn next(&mut self) -> bool {
        self.0.recv().await.is_some()
    }
}

/// Ctrl-C presses.
#[cfg(not(unix))]
struct Interrupts;

#[cfg(not(unix))]
impl Interrupts {
    fn new() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) -> bool {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
