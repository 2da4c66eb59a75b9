//! Filesystem mode: `col reconcile` (and the reconcile that `col sync` and `col status` run first).

use colstore_app::{ReconcileAllError, ReconcileError, ReconcileOptions, ReconcileOutcome, ReconcilePlan, ReconcileReport};
use colstore_domain::CollectionName;
use colstore_domain::ports::{FileChange, SafetyCopy, SafetyNet};
use colstore_wiring::{StorageMode, Store};
use serde_json::json;

use super::{Ctx, collection_name, io};
use crate::cli::{MigrateArgs, ModeArg, ReconcileArgs, WatchArgs};
use crate::error::{CliError, CliResult};
use crate::output::to_value;

/// Changes listed per collection before the rest is summarised (`--json` lists all).
const LISTED: usize = 50;

/// The collections to reconcile: one (a missing one fails at its catalog read, with the usual message; looking it up
/// here would count its documents for nothing), or all.
async fn targets(store: &Store, only: Option<&CollectionName>) -> CliResult<Vec<CollectionName>> {
    Ok(match only {
        Some(c) => vec![c.clone()],
        None => store.repo().list_collections().await?.into_iter().map(|c| c.name).collect(),
    })
}

/// The error for reconcile-only commands on a sqlite-mode store.
fn not_filesystem(store: &Store, command: &str) -> CliError {
    CliError::new(format!("`{command}` applies to the filesystem storage mode; this store keeps its content in SQLite"))
        .hint(format!(
            "in sqlite mode documents change only through col, so there is nothing to reconcile; to keep documents as files, run `col migrate --to filesystem` (store: {})",
            store.dir().root().display()
        ))
}

/// The store's reconcile options: `[storage] reconcile_max_delete_percent`, overridden by `--max-delete`.
pub fn options(store: &Store, dry_run: bool, force: bool, max_delete: Option<u8>) -> ReconcileOptions {
    let percent = max_delete.unwrap_or(store.config().storage.reconcile_max_delete_percent);
    ReconcileOptions { dry_run, force, max_delete_ratio: f64::from(percent) / 100.0 }
}

/// The error of a reconcile of several collections: the collection's, with how to proceed.
pub(crate) fn reconcile_all_error(e: ReconcileAllError) -> CliError {
    match e {
        ReconcileAllError::Collection { collection, source } => reconcile_error(source, &collection),
        ReconcileAllError::Safety(e) => e.into(),
    }
}

fn reconcile_error(e: ReconcileError, collection: &CollectionName) -> CliError {
    match e {
        ReconcileError::Refused { refusal, .. } => CliError::new(format!("refusing to reconcile {collection}: {refusal}")).hint(format!(
            "check the folder first; see the plan with `col reconcile {collection} --dry-run`, and if the deletions are intended run \
             `col reconcile {collection} --force` (a safety copy of the database is taken first)"
        )),
        ReconcileError::Repo(e) => e.into(),
        ReconcileError::Files(e) => CliError::new(format!("cannot read the documents' folder: {e}"))
            .hint("check that the folder exists and is readable (see [storage] filesystem_path in .colstore/config.toml)"),
    }
}

/// `col reconcile [COLLECTION] [--dry-run] [--force]`.
pub async fn reconcile(ctx: &Ctx, a: ReconcileArgs) -> CliResult {
    let only = a.collection.as_deref().map(collection_name).transpose()?;
    let store = ctx.open().await?;
    let Some(files) = store.file_ports() else { return Err(not_filesystem(&store, "col reconcile")) };
    let _lock = ctx.shared_lock(&store).await?;
    let collections = targets(&store, only.as_ref()).await?;
    let progress = super::safety::SafetyProgress::new(ctx);
    let on_event = |e| progress.on_event(e);
    let safety = store.safety_net(&on_event);
    let outcome = colstore_app::reconcile_collections(&files, Some(&safety), &collections, options(&store, a.dry_run, a.force, a.max_delete))
        .await
        .map_err(reconcile_all_error)?;
    match outcome {
        ReconcileOutcome::Planned(plans) => {
            ctx.out.json_value(&json!({ "dry_run": true, "collections": to_value(&plans) })).map_err(io)?;
            for p in &plans {
                print_plan(ctx, p, true)?;
            }
            Ok(())
        }
        ReconcileOutcome::Refused(plans) => {
            for p in &plans {
                print_plan(ctx, p, true)?;
            }
            Err(reconcile_all_error(colstore_app::refusal_error(plans)))
        }
        ReconcileOutcome::Applied { safety, reports } => {
            // A forced plan that the safety checks refused deletes many documents; the copy of the database keeps
            // their metadata, tags and ledger.
            let (copy, _) = super::safety::safety_fields(safety.as_ref());
            if let Some(path) = copy {
                ctx.out.line(format!("Took a safety copy of the database: {path}")).map_err(io)?;
            }
            ctx.out.json_value(&json!({ "dry_run": false, "safety_copy": copy, "collections": to_value(&reports) })).map_err(io)?;
            print_reports(ctx, &reports)
        }
    }
}

/// Prints the plans applied by a reconcile, the conflicts left for next time, and what now awaits sync.
fn print_reports(ctx: &Ctx, reports: &[ReconcileReport]) -> CliResult {
    let mut pending = 0;
    for r in reports {
        print_plan(ctx, &r.plan, false)?;
        if let Some(applied) = &r.applied {
            for k in &applied.conflicts {
                ctx.out.line(format!("  ! {k}: changed while reconciling; left for the next reconcile")).map_err(io)?;
            }
            pending += r.plan.counts().effective();
        }
    }
    if pending > 0 {
        ctx.out.line(format!("{pending} change(s) recorded; the documents are pending sync (run `col sync`).")).map_err(io)?;
    }
    Ok(())
}

/// Prints the plans of a reconcile that ran before a sync, when they changed or skipped something.
pub(crate) fn print_changed(ctx: &Ctx, reports: &[ReconcileReport]) -> CliResult {
    for r in reports {
        if !r.plan.is_clean() || !r.plan.skipped.is_empty() || !r.plan.unreadable.is_empty() {
            print_plan(ctx, &r.plan, false)?;
        }
    }
    Ok(())
}

/// Prints one collection's plan: a summary line, then the changes (`+` added, `~` modified, `-` deleted, `>` renamed).
pub fn print_plan(ctx: &Ctx, p: &ReconcilePlan, dry_run: bool) -> CliResult {
    let c = p.counts();
    let verb = if dry_run { "would" } else { "reconciled:" };
    let summary = if c.effective() == 0 {
        format!("{}: up to date ({} unchanged", p.collection, p.unchanged)
    } else if dry_run {
        format!(
            "{}: {verb} add {}, modify {}, delete {}, rename {} ({} unchanged",
            p.collection, c.added, c.modified, c.deleted, c.renamed, p.unchanged
        )
    } else {
        format!(
            "{} {verb} {} added, {} modified, {} deleted, {} renamed ({} unchanged",
            p.collection, c.added, c.modified, c.deleted, c.renamed, p.unchanged
        )
    };
    ctx.out.line(format!("{summary}; {} file(s) hashed, {} bytes read)", p.hashed_files, p.hashed_bytes)).map_err(io)?;
    let mut listed = 0;
    for ch in &p.changes {
        let line = match ch {
            FileChange::Added { key, .. } => format!("  + {key}"),
            FileChange::Modified { key, .. } => format!("  ~ {key}"),
            FileChange::Deleted { key, .. } => format!("  - {key}"),
            FileChange::Renamed { from, to, .. } => format!("  > {from} -> {to}"),
            FileChange::Touched { .. } => continue,
        };
        if listed == LISTED {
            let rest = p.changes.iter().filter(|c| !matches!(c, FileChange::Touched { .. })).count() - listed;
            ctx.out.line(format!("  … and {rest} more (--json lists them all)")).map_err(io)?;
            break;
        }
        listed += 1;
        ctx.out.line(line).map_err(io)?;
    }
    for s in &p.skipped {
        ctx.out.line(format!("  skipped {}: {}", s.path, s.reason)).map_err(io)?;
    }
    for u in &p.unreadable {
        ctx.out.line(format!("  unreadable {}: {} (its document is left as it is)", u.path, u.reason)).map_err(io)?;
    }
    if let Some(r) = &p.refusal {
        // A plan is applied with a refusal only when --force allowed it.
        let line = if dry_run { format!("  refused without --force: {r}") } else { format!("  done because of --force: {r}") };
        ctx.out.line(line).map_err(io)?;
    }
    Ok(())
}

/// `col watch [COLLECTION]`: reconcile and sync now, then after every burst of changes, until Ctrl-C.
pub async fn watch(ctx: &Ctx, a: WatchArgs) -> CliResult {
    use futures::StreamExt;

    let only = a.collection.as_deref().map(collection_name).transpose()?;
    let store = ctx.open().await?;
    if store.mode() != StorageMode::Filesystem {
        return Err(not_filesystem(&store, "col watch"));
    }
    if let Some(c) = &only {
        // Before any folder is created for it.
        store.repo().collection(c).await?;
    }
    let collections = targets(&store, only.as_ref()).await?;
    if collections.is_empty() {
        return Err(CliError::new("there are no collections to watch").hint("create one with `col collection create NAME`"));
    }
    let poll = a.poll.map(std::time::Duration::from_secs_f64);
    let signals = store.watch_changes(&collections, poll).await?;
    let how = signals.method.clone();
    ctx.out.json_line(&json!({ "event": "watching", "collections": collections, "method": how })).map_err(io)?;
    ctx.out
        .line(format!("Watching {} collection(s) in {} ({how}); Ctrl-C to stop.", collections.len(), super::display(&store.docs_dir())))
        .map_err(io)?;

    // First Ctrl-C: finish the current step, then stop. Second: stop now (every step is crash-safe).
    let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(());
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let mut signals = signals.stream.take_until(stop_rx);
    let ports = Ctx::sync_ports(&store).await?;
    let opts = options(&store, false, false, None);
    let debounce = std::time::Duration::from_millis(a.debounce_ms);
    let step = || -> futures::future::BoxFuture<'_, bool> {
        Box::pin(async {
            let started = std::time::Instant::now();
            if let Err(e) = watch_step(ctx, &store, &ports, &collections, opts, started).await {
                let hint = e.hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default();
                let _ = ctx.out.json_line(&json!({ "event": "error", "message": e.message, "hint": e.hint }));
                eprintln!("error: {}{hint}; watching on", e.message);
            }
            true
        })
    };
    colstore_app::watch(&mut signals, &**store.clock(), debounce, step).await;
    ctx.out.json_line(&json!({ "event": "stopped" })).map_err(io)?;
    ctx.out.line("Stopped watching.").map_err(io)?;
    Ok(())
}

/// One round of `col watch`: reconcile every collection, then sync them, printing what changed.
async fn watch_step(
    ctx: &Ctx,
    store: &Store,
    ports: &colstore_app::SyncPorts,
    collections: &[CollectionName],
    opts: ReconcileOptions,
    started: std::time::Instant,
) -> CliResult {
    let _lock = ctx.shared_lock(store).await?;
    let changed = std::sync::atomic::AtomicU64::new(0);
    let printed = std::sync::Mutex::new(Ok(()));
    let on_reconciled = |reports: &[ReconcileReport]| {
        changed.store(reports.iter().map(|r| r.plan.counts().effective()).sum(), std::sync::atomic::Ordering::Relaxed);
        *printed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = print_changed(ctx, reports);
    };
    let sync = super::sync::run_options();
    let run = colstore_app::reconcile_and_sync(
        store.file_ports().as_ref(),
        ports,
        &*store.queue(),
        &**store.clock(),
        collections,
        opts,
        &sync,
        &on_reconciled,
        &|_| {},
    )
    .await
    .map_err(super::sync::reconcile_sync_error)?;
    printed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)?;
    let changed = changed.into_inner();
    let mut synced = 0;
    for c in &run.collections {
        match &c.outcome {
            colstore_app::CollectionOutcome::Synced(r) => synced += r.synced + r.deleted,
            colstore_app::CollectionOutcome::Stopped { reason, .. } => {
                ctx.out.line(format!("{}: sync stopped ({reason:?})", c.collection)).map_err(io)?;
            }
            colstore_app::CollectionOutcome::Failed(e) => ctx.out.line(format!("{}: sync failed: {e}", c.collection)).map_err(io)?,
        }
    }
    if changed > 0 || synced > 0 {
        let json = json!({ "event": "synced", "changes": changed, "synced": synced, "ms": started.elapsed().as_millis() as u64 });
        ctx.out.json_line(&json).map_err(io)?;
        ctx.out
            .line(format!("{changed} change(s) reconciled, {synced} document(s) synced in {} ms", started.elapsed().as_millis()))
            .map_err(io)?;
    }
    Ok(())
}

/// `col migrate --to sqlite|filesystem [--docs-dir PATH] [--dry-run]`.
pub async fn migrate(ctx: &Ctx, a: MigrateArgs) -> CliResult {
    let to = match a.to {
        ModeArg::Sqlite => StorageMode::Sqlite,
        ModeArg::Filesystem => StorageMode::Filesystem,
    };
    let store = ctx.open().await?;
    let plan = store.plan_migration(to, a.docs_dir.as_deref()).await?;
    let summary = format!(
        "{} → {}: {} collection(s), {} document(s), {} of content; documents folder {}",
        plan.from.as_str(),
        plan.to.as_str(),
        plan.collections,
        plan.documents,
        crate::output::human_bytes(plan.bytes),
        super::display(&plan.docs_dir)
    );
    if a.dry_run {
        ctx.out.json_value(&json!({ "dry_run": true, "plan": to_value(&plan) })).map_err(io)?;
        ctx.out.line(format!("Would migrate {summary}.")).map_err(io)?;
        ctx.out.line("Nothing was changed (dry run).").map_err(io)?;
        return Ok(());
    }
    let _lock = ctx.exclusive_lock(&store, "col migrate").await?;
    let all: Vec<CollectionName> = store.repo().list_collections().await?.into_iter().map(|c| c.name).collect();
    let progress = super::safety::SafetyProgress::new(ctx);
    let on_event = |e| progress.on_event(e);
    let net = store.safety_net(&on_event);
    let on_kept = |copy: &SafetyCopy| {
        progress.finish();
        super::safety::announce_safety(ctx, copy);
        // The plan line follows the safety backup, as the copy starts.
        let _ = ctx.out.line(format!("Migrating {summary}"));
    };
    let safety = if a.no_backup { None } else { Some(&net as &dyn SafetyNet) };
    if safety.is_none() {
        ctx.out.line(format!("Migrating {summary}")).map_err(io)?;
    }
    let conversion = store.conversion(&plan);
    let bar = std::sync::OnceLock::new();
    let mut on_progress = |done: u64, total: u64| {
        let bar = bar.get_or_init(|| crate::progress::bar(total, false, ctx.hide_progress, "copying content"));
        bar.set_length(total);
        bar.set_position(done);
    };
    let outcome = colstore_app::run_migration(&conversion, safety, &all, &on_kept, &mut on_progress).await;
    progress.finish();
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    conversion.close().await;
    let report = outcome?;
    store.close().await;
    let safety = report.safety.as_ref().map(super::safety::safety_label);
    let report_json = json!({ "plan": to_value(&plan), "copied": report.copied, "verified": report.verified, "blobs_removed": report.blobs_removed });
    ctx.out.json_value(&json!({ "dry_run": false, "report": report_json, "safety_backup": safety })).map_err(io)?;
    ctx.out
        .line(format!(
            "Migrated to {} mode: {} content(s) copied, {} document(s) verified{}.",
            plan.to.as_str(),
            report.copied,
            report.verified,
            if report.blobs_removed > 0 { format!(", {} blob(s) removed from the database", report.blobs_removed) } else { String::new() }
        ))
        .map_err(io)?;
    if plan.to == StorageMode::Sqlite {
        ctx.out
            .line(format!("The files in {} were left in place; delete them when you no longer need them.", super::display(&plan.docs_dir)))
            .map_err(io)?;
    } else {
        ctx.out.line(format!("Documents are now files in {}/<collection>/.", super::display(&plan.docs_dir))).map_err(io)?;
    }
    Ok(())
}
