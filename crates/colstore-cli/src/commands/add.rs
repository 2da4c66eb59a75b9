//! `col add PATH…`.

use colstore_app::{AddEvent, AddOptions, add_paths};
use colstore_domain::ports::RepoError;
use colstore_domain::{CollectionSettings, CollectionSpec, Tags};
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
        ..AddOptions::default()
    };
    let store = ctx.open().await?;
    let lock = if a.dry_run { None } else { Some(ctx.shared_lock(&store).await?) };
    if a.create && !a.dry_run {
        match store.repo().create_collection(CollectionSpec { name: collection.clone(), settings: CollectionSettings::default() }).await {
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
    let result = add_paths(store.repo(), &collection, &a.paths, &opts, &on_event).await;
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
    for s in &report.skipped {
        if s.error {
            eprintln!("warning: skipped {}: {}", display(&s.path), s.reason);
        } else {
            tracing::info!(path = %s.path.display(), reason = %s.reason, "skipped");
        }
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
