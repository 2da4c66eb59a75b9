//! `col stats`, `col verify`, `col gc`.

use colstore_domain::CollectionName;
use colstore_domain::ports::StorageStats;
use serde_json::json;

use super::{Ctx, collection_name, io};
use crate::cli::{FlushArgs, GcArgs, StatsArgs, VerifyArgs};
use crate::error::{CliError, CliResult, exit};
use crate::output::{human_bytes, to_value};
use crate::progress;

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

pub fn stats_json(scope: &str, s: &StorageStats) -> serde_json::Value {
    json!({
        "scope": scope,
        "collections": s.collections,
        "documents": s.documents,
        "logical_bytes": s.logical_bytes,
        "distinct_contents": s.distinct_contents,
        "unique_bytes": s.unique_bytes,
        "stored_bytes": s.stored_bytes,
        "garbage_contents": s.garbage_contents,
        "dedup_ratio": ratio(s.logical_bytes, s.unique_bytes),
        "compression_ratio": ratio(s.unique_bytes, s.stored_bytes),
        "stored_to_logical": ratio(s.stored_bytes, s.logical_bytes),
    })
}

pub fn stats_text(scope: &str, s: &StorageStats) -> String {
    let mut t = format!(
        "scope:             {scope}\ncollections:       {}\ndocuments:         {}\nlogical size:      {} ({} bytes)\ndistinct contents: {}\nafter dedup:       {} (dedup ratio {:.2}×)\nstored:            {} (compression ratio {:.2}×; {:.1}% of logical)",
        s.collections,
        s.documents,
        human_bytes(s.logical_bytes),
        s.logical_bytes,
        s.distinct_contents,
        human_bytes(s.unique_bytes),
        ratio(s.logical_bytes, s.unique_bytes),
        human_bytes(s.stored_bytes),
        ratio(s.unique_bytes, s.stored_bytes),
        100.0 * ratio(s.stored_bytes, s.logical_bytes),
    );
    if s.garbage_contents > 0 {
        t.push_str(&format!("\ngarbage:           {} unreferenced contents (remove with `col gc`)", s.garbage_contents));
    }
    t
}

pub async fn stats(ctx: &Ctx, a: StatsArgs) -> CliResult {
    let collection = a.collection.as_deref().map(collection_name).transpose()?;
    let store = ctx.open().await?;
    let s = store.repo().stats(collection.clone()).await?;
    let scope = collection.as_ref().map_or("store".to_owned(), |c| format!("collection {c}"));
    ctx.out.json_value(&stats_json(&scope, &s)).map_err(io)?;
    ctx.out.data(stats_text(&scope, &s)).map_err(io)?;
    Ok(())
}

pub async fn verify(ctx: &Ctx, a: VerifyArgs) -> CliResult {
    let collection = a.collection.as_deref().map(collection_name).transpose()?;
    if a.index {
        return super::index::verify_index(ctx, collection, a.repair).await;
    }
    let store = ctx.open().await?;
    let total = store.repo().stats(collection.clone()).await?;
    let bar = progress::bar(total.unique_bytes, true, ctx.hide_progress, "verifying");
    let report = colstore_app::verify(store.repo(), collection.clone(), &|_, bytes| bar.set_position(bytes)).await;
    bar.finish_and_clear();
    let report = report?;
    let collections: Vec<CollectionName> = match &collection {
        Some(c) => vec![c.clone()],
        None => store.repo().list_collections().await?.into_iter().map(|c| c.name).collect(),
    };
    let text = colstore_app::verify_text(&*store.text(), &collections, a.repair).await?;
    let text_ok = text.iter().all(|t| t.check.is_clean());
    let scope = collection.as_ref().map_or("store".to_owned(), |c| format!("collection {c}"));
    if report.external_edits {
        // Filesystem mode: a file that no longer matches its record is work for `col reconcile`, not corruption.
        let changed = &report.unreconciled;
        ctx.out
            .json_value(&json!({ "scope": scope, "ok": text_ok, "documents_ok": report.documents_ok, "bytes_checked": report.bytes_checked, "corrupt": [], "unreconciled": to_value(changed), "text": to_value(&text) }))
            .map_err(io)?;
        ctx.out
            .line(format!(
                "OK: {} documents match their files, {} re-hashed ({scope})",
                report.documents_ok,
                human_bytes(report.bytes_checked)
            ))
            .map_err(io)?;
        for c in changed {
            ctx.out.line(format!("unreconciled: {}/{}: {}", c.collection, c.key, c.problem)).map_err(io)?;
        }
        if !changed.is_empty() {
            ctx.out
                .line(format!("{} file(s) changed outside colstore since the last reconcile; run `col reconcile`.", changed.len()))
                .map_err(io)?;
        }
        return text_verdict(ctx, &text);
    }
    ctx.out.json_value(&json!({ "scope": scope, "ok": report.is_clean() && text_ok, "documents_ok": report.documents_ok, "bytes_checked": report.bytes_checked, "corrupt": to_value(&report.corrupt), "text": to_value(&text) })).map_err(io)?;
    if report.is_clean() {
        ctx.out
            .line(format!(
                "OK: {} documents, {} re-hashed, no corruption ({scope})",
                report.documents_ok,
                human_bytes(report.bytes_checked)
            ))
            .map_err(io)?;
        return text_verdict(ctx, &text);
    }
    text_verdict(ctx, &text).ok();
    for c in &report.corrupt {
        eprintln!("corrupt: {}/{}: {} (expected sha256 {})", c.collection, c.key, c.problem, c.expected);
    }
    Err(CliError::new(format!("verification failed: {} corrupt documents ({} others are fine)", report.corrupt.len(), report.documents_ok))
        .hint("restore the damaged documents from a backup, or re-add them from their source with `col put`")
        .code(exit::VERIFY))
}

/// The full-text part of `col verify`: one line when all is well, what a repair did, or every problem and the error.
fn text_verdict(ctx: &Ctx, text: &[colstore_app::TextVerify]) -> CliResult {
    let indexed: u64 = text.iter().map(|t| t.check.indexed).sum();
    let pending: u64 = text.iter().map(|t| t.check.pending).sum();
    for t in text {
        if let Some(before) = &t.before_repair {
            ctx.out
                .line(format!(
                    "repaired: full-text index of {}: {} drifted document(s), {} orphan row(s){}; {} document(s) re-indexed from their content",
                    t.collection,
                    before.drift.len(),
                    before.orphans,
                    before.damaged.as_ref().map_or(String::new(), |d| format!(", damaged ({d})")),
                    t.repaired
                ))
                .map_err(io)?;
        }
    }
    let bad: Vec<&colstore_app::TextVerify> = text.iter().filter(|t| !t.check.is_clean()).collect();
    if bad.is_empty() {
        let waiting = if pending > 0 { format!(", {pending} waiting to be indexed by the next search or sync") } else { String::new() };
        ctx.out.line(format!("OK: full-text index matches the documents ({indexed} indexed{waiting})")).map_err(io)?;
        return Ok(());
    }
    for t in &bad {
        for k in &t.check.drift {
            eprintln!("full-text drift: {}/{k}: its index rows are missing or made from other content", t.collection);
        }
        if let Some(d) = &t.check.damaged {
            eprintln!("full-text index damaged: {d}");
        }
    }
    let orphans = bad.iter().map(|t| t.check.orphans).max().unwrap_or(0);
    if orphans > 0 {
        eprintln!("full-text index: {orphans} row(s) of documents that no longer exist");
    }
    Err(CliError::new(format!("verification failed: the full-text index of {} collection(s) does not match the documents", bad.len()))
        .hint("run `col verify --repair` to re-index them from the documents (the documents themselves are not touched)")
        .code(exit::VERIFY))
}

pub async fn flush(ctx: &Ctx, a: FlushArgs) -> CliResult {
    let collections = a.collections.iter().map(|c| collection_name(c)).collect::<CliResult<Vec<_>>>()?;
    let store = ctx.open().await?;
    let ports = Ctx::sync_ports(&store).await?;
    let steps = colstore_app::flush(&ports, &collections).await?;
    ctx.out.json_value(&json!({ "steps": to_value(&steps) })).map_err(io)?;
    for s in &steps {
        ctx.out.line(format!("{}: {}", s.target, s.step)).map_err(io)?;
    }
    ctx.out.line("Flushed: the store's files are complete on disk.").map_err(io)?;
    Ok(())
}

pub async fn gc(ctx: &Ctx, a: GcArgs) -> CliResult {
    let store = ctx.open().await?;
    let _lock = if a.dry_run { None } else { Some(ctx.exclusive_lock(&store, "gc").await?) };
    let r = colstore_app::collect_garbage(&**store.repo(), a.dry_run).await?;
    store.close().await;
    ctx.out
        .json_value(&json!({ "dry_run": a.dry_run, "contents_removed": r.contents_removed, "bytes_freed": r.bytes_freed }))
        .map_err(io)?;
    if a.dry_run {
        ctx.out
            .line(format!(
                "Would remove {} unreferenced contents ({}). Nothing was changed.",
                r.contents_removed,
                human_bytes(r.bytes_freed)
            ))
            .map_err(io)?;
    } else {
        ctx.out.line(format!("Removed {} unreferenced contents ({}).", r.contents_removed, human_bytes(r.bytes_freed))).map_err(io)?;
    }
    Ok(())
}
