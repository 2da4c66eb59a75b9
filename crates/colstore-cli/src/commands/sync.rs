//! `col sync` and `col status`.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use colstore_app::{
    CollectionOutcome, CollectionRun, ReconcileSyncError, StopReason, SyncOptions, SyncProgress, SyncReport, SyncRunEvent, SyncRunOptions,
};
use colstore_domain::ports::{JobId, WorkerId};
use colstore_domain::CollectionName;
use serde_json::json;

use super::{Ctx, collection_name, io};
use crate::cli::{StatusArgs, SyncArgs};
use crate::error::{CliError, CliResult};
use crate::output::{count, human_time, table, to_value};

fn worker_id() -> WorkerId {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into());
    WorkerId(format!("{host}:{}:{:08x}", std::process::id(), rand_u64() as u32))
}

/// A random u64 for jitter and worker ids, without a random-number crate.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

fn progress_line(p: &SyncProgress, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = p.documents as f64 / secs;
    let eta = if rate > 0.0 && p.pending > p.documents {
        format!(", ETA {:.0}s", (p.pending - p.documents) as f64 / rate)
    } else {
        String::new()
    };
    format!(
        "{}, {}, {}, {rate:.0} docs/s{eta}",
        count(p.chunks, "chunk", "chunks"),
        count(p.cache_hits, "cache hit", "cache hits"),
        count(p.embed_calls, "embed call", "embed calls")
    )
}

/// The message of a collection whose sync stopped before it was done.
fn stopped_message(c: &CollectionName, job: JobId, reason: StopReason, r: &SyncReport) -> String {
    let (done, total) = (r.progress.documents, r.progress.pending.max(r.progress.documents));
    match reason {
        StopReason::Cancelled => {
            format!("{c}: cancelled by `col jobs cancel {job}` after {done} of {total} documents; run `col sync {c}` to continue")
        }
        StopReason::LeaseLost => format!(
            "{c}: stopped after {done} of {total} documents because another worker took over job {job}; `col jobs show {job}` shows it"
        ),
    }
}

/// What the event handler of a sync run keeps between events.
#[derive(Default)]
struct SyncView {
    bar: Option<(indicatif::ProgressBar, Instant)>,
    /// The first failure to write output; the run goes on, and the command returns it at the end.
    write_error: Option<CliError>,
}

impl SyncView {
    fn finished(&mut self, ctx: &Ctx, run: &CollectionRun, several: bool) -> CliResult {
        let started = match self.bar.take() {
            Some((bar, started)) => {
                bar.finish_and_clear();
                started
            }
            None => Instant::now(),
        };
        let c = &run.collection;
        match &run.outcome {
            CollectionOutcome::Synced(r) => {
                let p = &r.progress;
                let duplicates = if p.duplicates > 0 {
                    format!(", {} identical to another chunk and embedded once with it", p.duplicates)
                } else {
                    String::new()
                };
                ctx.out
                    .line(format!(
                        "{c}: {} synced, {}, {} failed; {} ({} from cache, {} embedded in {}{duplicates}); {} written, {} retired ({:.1}s)",
                        r.synced,
                        count(r.deleted, "deletion", "deletions"),
                        r.failed.len(),
                        count(p.chunks, "chunk", "chunks"),
                        p.cache_hits,
                        p.embedded,
                        count(p.embed_calls, "call", "calls"),
                        count(r.points_upserted, "point", "points"),
                        r.points_retired,
                        started.elapsed().as_secs_f64()
                    ))
                    .map_err(io)?;
                if r.reprojected {
                    ctx.out.line(format!("{c}: the embedder changed, so the whole collection was re-projected")).map_err(io)?;
                }
            }
            CollectionOutcome::Stopped { job, reason, report } if several => {
                eprintln!("error: {}", stopped_message(c, *job, *reason, report))
            }
            CollectionOutcome::Failed(e) if several => eprintln!("error: {c}: {e}"),
            _ => {}
        }
        Ok(())
    }
}

pub async fn sync(ctx: &Ctx, a: SyncArgs) -> CliResult {
    let only = a.collection.as_deref().map(collection_name).transpose()?;
    let store = ctx.open().await?;
    let _lock = ctx.shared_lock(&store).await?;
    let ports = Ctx::sync_ports(&store).await?;
    let queue = store.queue();
    let collections: Vec<CollectionName> = match &only {
        Some(c) => vec![store.repo().collection(c).await?.name],
        None => store.repo().list_collections().await?.into_iter().map(|c| c.name).collect(),
    };
    let opts = SyncRunOptions { sync: SyncOptions { include_failed: !a.skip_failed, ..SyncOptions::default() }, ..run_options() };
    let several = collections.len() > 1;
    let view = Mutex::new(SyncView::default());
    let on_event = |e: SyncRunEvent<'_>| {
        let mut v = view.lock().unwrap_or_else(PoisonError::into_inner);
        match e {
            SyncRunEvent::Started { collection } => {
                v.bar = Some((crate::progress::bar(0, false, ctx.hide_progress, &format!("syncing {collection}")), Instant::now()));
            }
            SyncRunEvent::Progress { collection, progress } => {
                if let Some((bar, started)) = &v.bar {
                    bar.set_length(progress.pending.max(progress.documents));
                    bar.set_position(progress.documents);
                    bar.set_message(format!("syncing {collection}: {}", progress_line(&progress, *started)));
                }
            }
            SyncRunEvent::Finished(run) => {
                if v.write_error.is_none()
                    && let Err(e) = v.finished(ctx, run, several)
                {
                    v.write_error = Some(e);
                }
            }
        }
    };
    // Filesystem mode: what changed in the folders is recorded first, so the sync projects the files as they are.
    let printed = Mutex::new(Ok(()));
    let on_reconciled = |reports: &[colstore_app::ReconcileReport]| {
        *printed.lock().unwrap_or_else(PoisonError::into_inner) = super::files::print_changed(ctx, reports);
    };
    let reconcile = super::files::options(&store, false, false, None);
    let run = colstore_app::reconcile_and_sync(
        store.file_ports().as_ref(),
        &ports,
        &*queue,
        &**store.clock(),
        &collections,
        reconcile,
        &opts,
        &on_reconciled,
        &on_event,
    )
    .await
    .map_err(reconcile_sync_error)?;
    printed.into_inner().unwrap_or_else(PoisonError::into_inner)?;
    if let Some(e) = view.into_inner().unwrap_or_else(PoisonError::into_inner).write_error {
        return Err(e);
    }
    if collections.is_empty() {
        ctx.out.line("No collections to sync. Create one with `col collection create NAME`.").map_err(io)?;
    }
    let mut doc = json!({
        "collections": run.collections.iter().filter_map(|c| match &c.outcome {
            CollectionOutcome::Synced(r) => Some(to_value(r)),
            _ => None,
        }).collect::<Vec<_>>(),
        "ok": run.is_ok(),
    });
    let stopped: Vec<serde_json::Value> = run
        .collections
        .iter()
        .filter_map(|c| match &c.outcome {
            CollectionOutcome::Stopped { job, reason, report } => {
                Some(json!({ "collection": c.collection, "job": job.0, "reason": reason, "report": to_value(report) }))
            }
            _ => None,
        })
        .collect();
    if !stopped.is_empty() {
        doc["stopped"] = stopped.into();
    }
    ctx.out.json_value(&doc).map_err(io)?;
    let first_problem = run.collections.into_iter().find_map(|c| match c.outcome {
        CollectionOutcome::Synced(_) => None,
        CollectionOutcome::Stopped { job, reason, report } => Some(CliError::new(stopped_message(&c.collection, job, reason, &report))),
        CollectionOutcome::Failed(e) => Some(CliError::from(e)),
    });
    match first_problem {
        Some(e) if several => Err(CliError { message: format!("sync stopped: {}", e.message), ..e }),
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The options of a sync run by this process: its own worker id and jitter seed, the default batches.
pub(crate) fn run_options() -> SyncRunOptions {
    SyncRunOptions { jitter_seed: rand_u64(), ..SyncRunOptions::new(worker_id()) }
}

/// The error of a reconcile-then-sync: the reconcile's (with how to proceed), or the queue's.
pub(crate) fn reconcile_sync_error(e: ReconcileSyncError) -> CliError {
    match e {
        ReconcileSyncError::Reconcile(e) => super::files::reconcile_all_error(e),
        ReconcileSyncError::Queue(e) => CliError::new(e.to_string()),
    }
}

pub async fn status(ctx: &Ctx, a: StatusArgs) -> CliResult {
    let only = a.collection.as_deref().map(collection_name).transpose()?;
    let store = ctx.open().await?;
    let ports = Ctx::sync_ports(&store).await?;
    let full = colstore_app::store_status(&ports, store.file_ports().as_ref(), &*store.queue(), only.as_ref()).await.map_err(|e| match e {
        colstore_app::StatusError::Sync(e) => CliError::from(e),
        colstore_app::StatusError::Reconcile(e) => super::files::reconcile_all_error(e),
    })?;
    let (st, unreconciled) = (&full.status, &full.unreconciled);
    let cfg = store.config();
    let mode = cfg.storage.mode.to_string();
    let backend = cfg.vectors.target();
    let embedder = ports.embedder.identity().to_string();
    let jobs = full.jobs.unwrap_or_default();
    let (pending_jobs, dead_jobs) = (jobs.pending_or_running, jobs.dead);
    ctx.out
        .json_value(&json!({
            "storage_mode": mode,
            "index": st.index,
            "index_latency_ms": st.index_latency_ms,
            "other_indexes": to_value(&st.other_indexes),
            "vectors": cfg.vectors.target(),
            "embedder": embedder,
            "jobs": { "pending_or_running": pending_jobs, "dead": dead_jobs },
            "collections": to_value(&st.collections),
            "unreconciled": unreconciled.iter().map(|(c, n)| (c.to_string(), to_value(n))).collect::<serde_json::Map<_, _>>(),
        }))
        .map_err(io)?;
    let health = |h: &colstore_domain::ports::IndexHealth, ms: u64| {
        let version = h.version.as_deref().map(|v| format!("version {v}, ")).unwrap_or_default();
        if h.ok { format!("{version}ok, answered in {ms} ms") } else { format!("UNHEALTHY: {}", h.detail.clone().unwrap_or_default()) }
    };
    let mut indexes = format!("vector index:  {backend} ({})", health(&st.index, st.index_latency_ms));
    for other in &st.other_indexes {
        indexes.push_str(&format!("\n               {} ({}; a collection's own)", other.target, health(&other.index, other.latency_ms)));
    }
    ctx.out
        .data(format!(
            "storage mode:  {mode}\n{indexes}\nembedder:      {embedder}\njobs:          {pending_jobs} queued or running, {dead_jobs} dead"
        ))
        .map_err(io)?;
    if st.collections.is_empty() {
        ctx.out.line("No collections yet.").map_err(io)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = st
        .collections
        .iter()
        .map(|c| {
            vec![
                c.collection.to_string(),
                c.documents.to_string(),
                c.counts.synced.to_string(),
                c.counts.pending.to_string(),
                c.counts.failed.to_string(),
            ]
        })
        .collect();
    ctx.out.data(format!("\n{}", table(&["COLLECTION", "DOCUMENTS", "SYNCED", "PENDING", "FAILED"], &rows))).map_err(io)?;
    for c in &st.collections {
        for e in &c.errors {
            ctx.out
                .data(format!("failed: {}/{} ({}): {}", c.collection, e.key, human_time(e.updated_at), e.error.clone().unwrap_or_default()))
                .map_err(io)?;
        }
    }
    for (c, n) in unreconciled {
        ctx.out
            .data(format!(
                "unreconciled: {c}: {} file(s) changed outside colstore ({} added, {} modified, {} deleted, {} renamed); `col sync` reconciles first, or run `col reconcile {c}`",
                n.effective(),
                n.added,
                n.modified,
                n.deleted,
                n.renamed
            ))
            .map_err(io)?;
    }
    if st.collections.iter().any(|c| c.counts.pending + c.counts.failed > 0) {
        ctx.out.line("Run `col sync` to project pending and failed documents.").map_err(io)?;
    }
    Ok(())
}
