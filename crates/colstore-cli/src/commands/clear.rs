//! `col clear`: empty or drop collections after a safety backup.

use colstore_domain::ports::SafetyNet;
use colstore_domain::CollectionName;
use serde_json::json;

use super::collection::confirm;
use super::safety::{SafetyProgress, announce_safety, safety_fields};
use super::{Ctx, collection_name, io};
use crate::cli::ClearArgs;
use crate::error::CliResult;
use crate::output::human_bytes;

pub async fn clear(ctx: &Ctx, a: ClearArgs) -> CliResult {
    let store = ctx.open().await?;
    let only = a.collection.as_deref().map(collection_name).transpose()?;
    let targets = colstore_app::plan_clear(&**store.repo(), only.as_ref()).await?;
    let names: Vec<CollectionName> = targets.iter().map(|t| t.collection.clone()).collect();
    let total: u64 = targets.iter().map(|t| t.documents).sum();
    let rows: Vec<serde_json::Value> =
        targets.iter().map(|t| json!({ "collection": t.collection, "documents": t.documents, "bytes": t.bytes })).collect();
    let what = if a.drop { "drop" } else { "clear" };
    if a.dry_run {
        ctx.out.json_value(&json!({ "collections": rows, "drop": a.drop, "dry_run": true })).map_err(io)?;
        for r in &rows {
            ctx.out
                .line(format!(
                    "Would {what} {}: {} documents ({}){}",
                    r["collection"].as_str().unwrap_or_default(),
                    r["documents"],
                    human_bytes(r["bytes"].as_u64().unwrap_or(0)),
                    if a.drop { ", and the collection itself" } else { "" }
                ))
                .map_err(io)?;
        }
        ctx.out.line("Dry run: nothing was changed.").map_err(io)?;
        return Ok(());
    }
    if names.is_empty() {
        ctx.out.line("No collections to clear.").map_err(io)?;
        return Ok(());
    }
    if !a.yes {
        confirm(&format!("{} {} collection(s) holding {total} document(s)?", if a.drop { "Drop" } else { "Clear" }, names.len()))?;
    }
    let _lock = ctx.exclusive_lock(&store, "clear").await?;
    let indexes = store.indexes();
    let ports = if a.drop { Err(String::new()) } else { Ctx::sync_ports(&store).await.map_err(|e| e.message) };
    let projection = match &ports {
        _ if a.drop => colstore_app::ClearProjection::Drop(Some(&*indexes), store.store_id()),
        ports => colstore_app::ClearProjection::Retire(ports.as_ref().map_err(Clone::clone)),
    };
    let progress = SafetyProgress::new(ctx);
    let on_event = |e| progress.on_event(e);
    let net = store.safety_net(&on_event);
    // One bar per collection, replaced when the next one starts.
    let bar: std::sync::Mutex<Option<(CollectionName, indicatif::ProgressBar)>> = std::sync::Mutex::new(None);
    let on_progress = |n: &CollectionName, done: u64| {
        let mut bar = bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if bar.as_ref().is_none_or(|(current, _)| current != n) {
            progress.finish();
            if let Some((_, old)) = bar.take() {
                old.finish_and_clear();
            }
            *bar = Some((n.clone(), crate::progress::bar(0, false, ctx.hide_progress, &format!("clearing {n}"))));
        }
        if let Some((_, b)) = bar.as_ref() {
            b.set_position(done);
        }
    };
    let report = colstore_app::clear_collections(
        &**store.repo(),
        projection,
        (!a.no_backup).then_some(&net as &dyn SafetyNet),
        &names,
        a.drop,
        &|copy| announce_safety(ctx, copy),
        &on_progress,
    )
    .await;
    progress.finish();
    if let Some((_, b)) = bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        b.finish_and_clear();
    }
    let report = report?;
    for (n, e) in &report.unretired {
        eprintln!("warning: {n}: the cleared documents' points could not be removed from the vector index yet ({e}); `col sync` removes them");
    }
    let (deleted, points_retired, unretired) = (report.documents_deleted, report.points_retired, !report.unretired.is_empty());
    let safety = safety_fields(report.safety.as_ref()).1;
    ctx.out
        .json_value(
            &json!({ "collections": rows, "documents_deleted": deleted, "points_retired": points_retired, "drop": a.drop, "safety_backup": safety, "dry_run": false }),
        )
        .map_err(io)?;
    ctx.out
        .line(format!("{} {} collection(s): {deleted} documents deleted.", if a.drop { "Dropped" } else { "Cleared" }, names.len()))
        .map_err(io)?;
    if unretired {
        ctx.out.line("Run `col sync` to remove their points from the vector index.").map_err(io)?;
    }
    if let Some(s) = safety {
        ctx.out.line(format!("Undo with `col restore {s}`.")).map_err(io)?;
    }
    Ok(())
}
