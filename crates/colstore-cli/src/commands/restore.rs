//! `col restore`: plan, safety backup, restore (also into a damaged or another store), reprojection.

use std::sync::Arc;
use std::time::Instant;

use colstore_app::backup::{
    RestoreMode, RestoreOptions, RestorePlan, RestoreTarget, plan_restore, plan_restore_into_empty, run_restore, show_backup,
};
use colstore_domain::ports::SafetyCopy;
use colstore_wiring::{Store, SystemClock, process_env};
use serde_json::json;

use super::backup::{backup_id, open_repo, resolve_id};
use super::collection::confirm;
use super::safety::{SafetyProgress, announce_safety, safety_label};
use super::{Ctx, collection_name, display, io};
use crate::cli::{RestoreArgs, RestoreModeArg};
use crate::error::CliResult;
use crate::output::{table, to_value};

pub(super) fn print_plan(ctx: &Ctx, plan: &RestorePlan, what: &str, target: &str) -> CliResult {
    let rows: Vec<Vec<String>> = plan
        .collections
        .iter()
        .map(|c| {
            vec![
                c.name.to_string(),
                if !c.exists {
                    "create".into()
                } else if c.settings_change {
                    "update settings".into()
                } else {
                    "keep".into()
                },
                c.add.to_string(),
                c.update.to_string(),
                c.delete.to_string(),
                c.unchanged.to_string(),
                c.kept_newer.to_string(),
            ]
        })
        .collect();
    let mode = match plan.mode {
        RestoreMode::Replace => "replace",
        RestoreMode::Merge => "merge",
    };
    ctx.out
        .data(format!(
            "{what} {} into {target} (mode {mode}):\n{}",
            plan.id,
            table(&["COLLECTION", "ACTION", "ADD", "UPDATE", "DELETE", "UNCHANGED", "KEPT (NEWER)"], &rows)
        ))
        .map_err(io)?;
    for c in &plan.collections {
        if let Some(filter) = &c.filter {
            ctx.out
                .line(format!("{}: the file holds only the documents that matched `{filter}`; documents it lacks are kept.", c.name))
                .map_err(io)?;
        }
    }
    Ok(())
}

pub async fn restore(ctx: &Ctx, a: RestoreArgs) -> CliResult {
    let collections = a.collections.iter().map(|c| collection_name(c)).collect::<CliResult<Vec<_>>>()?;
    if a.id != "latest" {
        backup_id(&a.id)?;
    }
    // The repository comes from config.toml alone: a damaged or missing database does not stop a restore.
    let (here, repo) = open_repo(ctx, a.repo.as_deref()).await?;
    let this = here.as_ref().map(|h| h.identity.id);
    let id = resolve_id(&*repo, &a.id, this).await?;
    let manifest = show_backup(&*repo, &id).await?;
    let backup_store = json!({
        "store_id": manifest.store_id,
        "store_path": manifest.store_path,
        "this_store": this.is_some() && manifest.store_id == this,
    });
    // Only an explicit id reaches another store's backup (`latest` never does); say so before anything changes.
    let foreign = match (this, manifest.store_id) {
        (Some(t), Some(s)) if s != t => Some(format!(
            "Note: backup {id} was taken from another store: {} (store {s}), not from this one.",
            manifest.store_path.as_deref().unwrap_or("path unknown")
        )),
        (Some(_), None) => Some(format!("Note: backup {id} does not name the store it was taken from (an older backup).")),
        _ => None,
    };
    let mode = match a.mode {
        RestoreModeArg::Replace => RestoreMode::Replace,
        RestoreModeArg::Merge => RestoreMode::Merge,
    };
    let opts = RestoreOptions { collections, mode };
    let mut held_lock = None;
    let mut damaged_json = serde_json::Value::Null;
    let target = match (&a.to_store, here) {
        // `--to-store DIR`: a store is created there when it holds none.
        (Some(to), _) => Store::open_or_init(to, &process_env).await?,
        (None, None) => ctx.open().await?,
        (None, Some(here)) => match Store::open_or_damaged(here.dir.clone(), &process_env).await? {
            Ok(store) => store,
            Err(damaged) => {
                // The database is missing or cannot be opened: set it aside (never deleted) and restore into a fresh one.
                let db = display(&damaged.database());
                let files: Vec<String> = damaged.files().iter().map(|f| display(f)).collect();
                let aside = display(&damaged.aside_dir(colstore_domain::ports::Clock::now(&SystemClock)));
                let plan = plan_restore_into_empty(&*repo, &id, &opts).await?;
                damaged_json = json!({ "database": db, "reason": damaged.reason.to_string(), "files": files });
                if let Some(n) = &foreign {
                    ctx.out.line(n.clone()).map_err(io)?;
                }
                let moving = if files.is_empty() {
                    "There is nothing to move aside".to_owned()
                } else {
                    format!("Its files ({}) will be moved to {aside}/ (nothing is deleted)", files.join(", "))
                };
                ctx.out
                    .line(format!(
                        "The store cannot be opened: {}.\n{moving}; a fresh database is created as by `col init` and backup {id} is restored into it.",
                        damaged.reason
                    ))
                    .map_err(io)?;
                print_plan(ctx, &plan, "Restore plan for backup", &display(here.dir.root()))?;
                if a.dry_run {
                    ctx.out
                        .json_value(
                            &json!({ "plan": to_value(&plan), "damaged": damaged_json, "backup_store": backup_store, "dry_run": true }),
                        )
                        .map_err(io)?;
                    ctx.out.line("Dry run: nothing was changed.").map_err(io)?;
                    return Ok(());
                }
                if !a.yes {
                    confirm(&format!("Move the damaged database aside and restore backup {id} into a fresh one?"))?;
                }
                let lock = super::lock_dir(&here.dir, Some("restore")).await?;
                let recreated = damaged.recreate(&lock, &process_env, Arc::new(SystemClock)).await?;
                if let Some(dir) = &recreated.aside {
                    damaged_json["moved_to"] = json!(display(dir));
                    ctx.out
                        .line(format!("Moved the damaged database files to {} (kept: delete them when no longer needed).", display(dir)))
                        .map_err(io)?;
                }
                held_lock = Some(lock);
                recreated.store
            }
        },
    };
    let target_name = display(target.dir().root());
    let plan = plan_restore(&**target.repo(), Arc::clone(&repo), &id, &opts).await?;
    if held_lock.is_none()
        && let Some(n) = &foreign
    {
        ctx.out.line(n.clone()).map_err(io)?;
    }
    if a.dry_run {
        ctx.out
            .json_value(&json!({ "plan": to_value(&plan), "backup_store": backup_store, "damaged": null, "dry_run": true }))
            .map_err(io)?;
        print_plan(ctx, &plan, "Restore plan for backup", &target_name)?;
        ctx.out.line("Dry run: nothing was changed.").map_err(io)?;
        return Ok(());
    }
    if held_lock.is_none() {
        print_plan(ctx, &plan, "Restore plan for backup", &target_name)?;
    }
    let deletes: u64 = plan.collections.iter().map(|c| c.delete + c.update).sum();
    // Only a restore that overwrites or deletes something (documents or settings) asks; adding never does.
    if !a.yes && (deletes > 0 || plan.collections.iter().any(|c| c.settings_change)) {
        confirm(&format!("Restore backup {id} into {target_name}, overwriting or deleting {deletes} document(s)?"))?;
    }
    let _lock = match held_lock {
        Some(l) => l,
        None => ctx.exclusive_lock(&target, "restore").await?,
    };
    // The index is opened first so the restore can bring it in line afterwards; a store whose index or embedder
    // cannot be opened is still restored.
    let ports = Ctx::sync_ports(&target).await;
    let progress = SafetyProgress::new(ctx);
    let on_event = |e| progress.on_event(e);
    let net = target.safety_net(&on_event);
    let into = RestoreTarget {
        repo: &**target.repo(),
        ledger: &*target.sync_store(),
        index: ports.as_ref().ok(),
        safety: if a.no_backup { None } else { Some(&net) },
    };
    let total: u64 = plan.collections.iter().map(|c| c.add + c.update + c.unchanged + c.kept_newer).sum();
    let bar = std::sync::OnceLock::new();
    let on_kept = |copy: &SafetyCopy| {
        progress.finish();
        announce_safety(ctx, copy);
    };
    let started = Instant::now();
    let outcome = run_restore(&into, Arc::clone(&repo), &id, &opts, &plan, &on_kept, &|done, _| {
        bar.get_or_init(|| crate::progress::bar(total, false, ctx.hide_progress, "restoring")).set_position(done);
    })
    .await;
    progress.finish();
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    let outcome = outcome?;
    let report = &outcome.report;
    if let Err(e) = &ports {
        eprintln!("warning: the vector index could not be opened ({}); run `col verify --index --repair` later", e.message);
    }
    for f in &outcome.index_failures {
        eprintln!("warning: {}: the vector index could not be brought in line; run `col verify --index --repair`: {}", f.collection, f.error);
    }
    let safety = outcome.safety.as_ref().map(safety_label);
    ctx.out
        .json_value(&json!({
            "restore": to_value(report),
            "safety_backup": safety,
            "index": to_value(&outcome.index),
            "backup_store": backup_store,
            "damaged": damaged_json,
            "dry_run": false
        }))
        .map_err(io)?;
    ctx.out
        .line(format!(
            "Restored backup {id}: {} documents written, {} deleted, {} vectors and {} ledger rows put back; {} documents verified ({:.1}s).",
            report.documents_written,
            report.documents_deleted,
            report.vectors,
            report.ledger_rows,
            report.verified,
            started.elapsed().as_secs_f64()
        ))
        .map_err(io)?;
    if let Some(dir) = damaged_json["moved_to"].as_str() {
        ctx.out.line(format!("The damaged database files are kept in {dir}.")).map_err(io)?;
    }
    Ok(())
}
