//! `col backup …`: create, list, show, verify, prune and delete backups.

use std::sync::Arc;
use std::time::Instant;

use colstore_app::backup::{
    BackupEvent, BackupFailure, BackupOptions, KeepPolicy, LockOwner, backup_and_rotate,
    delete_backup, latest_backup, list_backups, prune_backups,
    show_backup, verify_backup,
};
use colstore_domain::ports::{BackupId, BackupStore};
use colstore_domain::{CollectionName, StoreId, Tag, Timestamp};
use colstore_wiring::{RepoAccess, Store, StoreBackups, SystemClock, WiringError, lock_holder, lock_holder_is_dead, process_env};
use serde_json::json;

use super::{Ctx, collection_name, display, io};
use crate::cli::{BackupArgs, BackupCommand, BackupCreateArgs};
use crate::error::{CliError, CliResult, exit};
use crate::output::{human_bytes, human_time, table, to_value};

fn owner() -> LockOwner {
    LockOwner { holder: lock_holder(), is_dead: Arc::new(lock_holder_is_dead) }
}

fn age(now: Timestamp, then: Timestamp) -> String {
    let s = (now.as_millis() - then.as_millis()).max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

pub(super) fn backup_id(s: &str) -> CliResult<BackupId> {
    Ok(BackupId::parse(s)?)
}

/// `latest` (this store's newest backup, see [`latest_backup`]) or an id.
pub(super) async fn resolve_id(repo: &dyn BackupStore, s: &str, this: Option<StoreId>) -> CliResult<BackupId> {
    if s == "latest" {
        let all = list_backups(repo).await?;
        return backup_id(&latest_backup(&all, this)?.id);
    }
    backup_id(s)
}

/// How a backup's store is shown: `this store`, the other store's path (or its short id), or `unknown`.
fn store_label(id: Option<StoreId>, path: Option<&str>, this: Option<StoreId>) -> String {
    match id {
        None => "unknown".to_owned(),
        Some(id) if Some(id) == this => "this store".to_owned(),
        Some(id) => path.map_or_else(|| format!("store {}", id.short()), str::to_owned),
    }
}

fn options(
    store: &Store,
    collections: Vec<CollectionName>,
    tags: Vec<String>,
    schema_only: bool,
    dry_run: bool,
    schema: i64,
) -> BackupOptions {
    BackupOptions {
        collections,
        schema_only,
        tags,
        dry_run,
        store_id: store.identity().id,
        store_path: Some(display(&store.identity().path)),
        schema_version: schema,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

pub async fn backup(ctx: &Ctx, a: BackupArgs) -> CliResult {
    match a.command {
        None => create(ctx, a.create).await,
        Some(cmd) => maintain(ctx, cmd).await,
    }
}

async fn create(ctx: &Ctx, a: BackupCreateArgs) -> CliResult {
    let collections = a.collections.iter().map(|c| collection_name(c)).collect::<CliResult<Vec<_>>>()?;
    let tags = a.tags.iter().map(|t| Tag::parse(t).map(|t| t.as_str().to_owned())).collect::<Result<Vec<_>, _>>()?;
    let store = ctx.open().await?;
    let _lock = ctx.shared_lock(&store).await?;
    let repo = store.backup_store(a.to.as_deref())?;
    let schema = store.schema_version().await;
    let opts = options(&store, collections, tags, a.schema_only, a.dry_run, schema);
    let started = Instant::now();
    let keep = store.config().backup.keep_last;
    let bar = crate::progress::bar(0, true, ctx.hide_progress, "backing up");
    let on_event = |e: BackupEvent| match e {
        BackupEvent::Started { bytes, .. } => bar.set_length(bytes),
        BackupEvent::Document { bytes } => bar.inc(bytes),
        BackupEvent::ObjectWritten { .. } => {}
    };
    let done = backup_and_rotate(&**store.repo(), repo, &**store.clock(), &owner(), &opts, keep, &on_event).await;
    bar.finish_and_clear();
    let done = done?;
    let report = done.report;
    let s = &report.stats;
    let rotation = match done.rotation {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            eprintln!("warning: the backup is complete, but rotation (keep the last {keep}) failed: {e}");
            None
        }
        None => None,
    };
    ctx.out
        .json_value(&json!({ "backup": to_value(&report), "dry_run": a.dry_run, "rotation": rotation.as_ref().map(to_value) }))
        .map_err(io)?;
    let scope =
        if opts.collections.is_empty() { "all collections".to_owned() } else { format!("{} collection(s)", opts.collections.len()) };
    match &report.id {
        None => ctx.out.line(format!(
            "Dry run: a backup of {scope} ({} documents, {}) would store {} new blobs ({}) in {} objects and reuse {} blobs. Nothing was written.",
            s.documents,
            human_bytes(s.logical_bytes),
            s.new_blobs,
            human_bytes(s.new_blob_bytes),
            s.new_objects,
            s.blobs - s.new_blobs
        )),
        Some(id) => ctx.out.line(format!(
            "Backup {id}: {} documents ({}) of {scope}; stored {} new in {} objects, reused {} blobs; every new object read back and verified ({:.1}s).",
            s.documents,
            human_bytes(s.logical_bytes),
            human_bytes(s.new_object_bytes),
            s.new_objects,
            s.blobs - s.new_blobs,
            started.elapsed().as_secs_f64()
        )),
    }
    .map_err(io)?;
    if let Some(r) = rotation.filter(|r| !r.removed.is_empty()) {
        ctx.out
            .line(format!(
                "Rotation removed {} old backup(s) and {} unreferenced objects ({}).",
                r.removed.len(),
                r.objects_removed,
                human_bytes(r.bytes_removed)
            ))
            .map_err(io)?;
    }
    Ok(())
}

/// The store here (from its `config.toml` alone: the database is never opened, so a damaged one does not matter) and
/// the repository to read: `url`, or the store's configured one. Reading never creates the repository. Outside a
/// store, `url` is needed (a relative `file://` URL is then relative to the working directory).
pub(super) async fn open_repo(ctx: &Ctx, url: Option<&str>) -> CliResult<(Option<StoreBackups>, Arc<dyn BackupStore>)> {
    let (here, repo) = find_repo(ctx, url)?;
    Ok((here, repo?))
}

/// [`open_repo`], keeping apart the failure to open the repository (so `list` can tell a store that has no backups yet).
type Found = (Option<StoreBackups>, Result<Arc<dyn BackupStore>, WiringError>);

fn find_repo(ctx: &Ctx, url: Option<&str>) -> CliResult<Found> {
    let here = ctx.store_dir().and_then(|dir| Ok(StoreBackups::find(dir, &process_env)?));
    match (here, url) {
        (Ok(here), url) => {
            let repo = here.repository(url, RepoAccess::Read);
            Ok((Some(here), repo))
        }
        (Err(_), Some(url)) => {
            let cwd = std::env::current_dir().map_err(|e| CliError::new(format!("cannot read the working directory: {e}")))?;
            Ok((None, colstore_wiring::open_repository(&cwd, url, RepoAccess::Read)))
        }
        (Err(e), None) => Err(e),
    }
}

async fn maintain(ctx: &Ctx, cmd: BackupCommand) -> CliResult {
    let clock = SystemClock;
    match cmd {
        BackupCommand::List { repo: url } => {
            let (here, repo) = find_repo(ctx, url.as_deref())?;
            let repo = match repo {
                Ok(r) => r,
                // The store's own repository before its first backup: no backups, and nothing is created.
                Err(WiringError::BackupRepositoryMissing { path, .. }) if url.is_none() => {
                    ctx.out.json_value(&json!({ "backups": [], "repository_exists": false })).map_err(io)?;
                    ctx.out
                        .line(format!(
                            "No backups yet: the backup repository {} does not exist yet. Take a backup with `col backup` (it creates it).",
                            display(&path)
                        ))
                        .map_err(io)?;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            let this = here.as_ref().map(|h| h.identity.id);
            let list = list_backups(&*repo).await?;
            let mut values = to_value(&list);
            for (v, b) in values.as_array_mut().into_iter().flatten().zip(&list) {
                v["this_store"] = json!(this.is_some() && b.store_id == this);
            }
            ctx.out.json_value(&json!({ "backups": values })).map_err(io)?;
            if list.is_empty() {
                ctx.out.line("No backups yet. Take one with `col backup`.").map_err(io)?;
                return Ok(());
            }
            let now = colstore_domain::ports::Clock::now(&clock);
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|b| {
                    let names = b.collections.iter().map(CollectionName::as_str).collect::<Vec<_>>().join(",");
                    let scope = match (&b.error, b.schema_only) {
                        (Some(e), _) => format!("UNREADABLE: {e}"),
                        (None, true) => format!("schema only: {names}"),
                        (None, false) => names,
                    };
                    vec![
                        b.id.clone(),
                        human_time(b.created_at),
                        age(now, b.created_at),
                        b.documents.to_string(),
                        human_bytes(b.bytes),
                        human_bytes(b.new_bytes),
                        b.tags.join(","),
                        if b.error.is_some() { "?".to_owned() } else { store_label(b.store_id, b.store_path.as_deref(), this) },
                        scope,
                    ]
                })
                .collect();
            ctx.out.data(table(&["ID", "TIME (UTC)", "AGE", "DOCS", "SIZE", "NEW", "TAGS", "STORE", "COLLECTIONS"], &rows)).map_err(io)?;
        }
        BackupCommand::Show { id, repo } => {
            if id != "latest" {
                backup_id(&id)?;
            }
            let (here, repo) = open_repo(ctx, repo.as_deref()).await?;
            let this = here.as_ref().map(|h| h.identity.id);
            let id = resolve_id(&*repo, &id, this).await?;
            let m = show_backup(&*repo, &id).await?;
            let mut value = to_value(&m);
            value["this_store"] = json!(this.is_some() && m.store_id == this);
            ctx.out.json_value(&value).map_err(io)?;
            let store = match (m.store_id, &m.store_path) {
                (None, _) => "unknown (the backup does not name its store)".to_owned(),
                (Some(s), _) if Some(s) == this => format!("{s} (this store)"),
                (Some(s), Some(p)) => format!("{s} ({p})"),
                (Some(s), None) => s.to_string(),
            };
            let mut out = format!(
                "backup:     {}\ntime:       {}\ntags:       {}\nstore:      {}\ncolstore:   {} (format {}, schema {})\ndocuments:  {} ({})\nnew bytes:  {} in {} objects\nobjects:    {} packs, {} indexes\n",
                m.id,
                human_time(m.created_at),
                m.tags.join(", "),
                store,
                m.tool_version,
                m.version,
                m.schema_version,
                m.stats.documents,
                human_bytes(m.stats.logical_bytes),
                human_bytes(m.stats.new_object_bytes),
                m.stats.new_objects,
                m.packs.len(),
                m.indexes.len()
            );
            let rows: Vec<Vec<String>> = m
                .collections
                .iter()
                .map(|c| {
                    vec![
                        c.name.to_string(),
                        c.documents.to_string(),
                        human_bytes(c.bytes),
                        c.vectors.to_string(),
                        c.ledger_rows.to_string(),
                        c.settings.vectors.as_ref().map_or("-".to_owned(), |v| format!("{} {}", v.embedder, v.distance)),
                    ]
                })
                .collect();
            out.push('\n');
            out.push_str(&table(&["COLLECTION", "DOCS", "SIZE", "VECTORS", "LEDGER", "EMBEDDER"], &rows));
            ctx.out.data(out).map_err(io)?;
        }
        BackupCommand::Verify { id, read_data, repo } => {
            let (here, repo) = open_repo(ctx, repo.as_deref()).await?;
            let id = resolve_id(&*repo, id.as_deref().unwrap_or("latest"), here.map(|h| h.identity.id)).await?;
            let bar = crate::progress::bar(0, true, ctx.hide_progress || !read_data, "reading objects");
            let started = Instant::now();
            let report = verify_backup(Arc::clone(&repo), &id, read_data, &|_, n| bar.inc(n)).await?;
            bar.finish_and_clear();
            ctx.out.json_value(&to_value(&report)).map_err(io)?;
            for p in &report.problems {
                eprintln!("DAMAGED {}: {}", p.object, p.problem);
            }
            let what = if read_data { format!(", read and re-hashed {}", human_bytes(report.bytes_read)) } else { String::new() };
            if report.problems.is_empty() {
                ctx.out
                    .line(format!(
                        "Backup {id} is intact: {} objects, {} blobs, {} documents checked{what} ({:.1}s).",
                        report.objects,
                        report.blobs,
                        report.documents,
                        started.elapsed().as_secs_f64()
                    ))
                    .map_err(io)?;
                if !read_data {
                    ctx.out.line("Add --read-data to read every object and re-hash every blob.").map_err(io)?;
                }
            } else {
                return Err(CliError::new(format!("backup {id} is damaged: {} problem(s)", report.problems.len()))
                    .hint("restore from another backup (`col backup list`); take a new backup with `col backup`")
                    .code(exit::VERIFY));
            }
        }
        BackupCommand::Prune { keep_last, keep_daily, keep_weekly, keep_monthly, dry_run, repo } => {
            let (here, repo) = open_repo(ctx, repo.as_deref()).await?;
            // Inside a store only its own backups are pruned; outside one (--repo) the policy applies to each store's.
            let only = here.map(|h| h.identity.id);
            let policy = KeepPolicy { last: keep_last, daily: keep_daily, weekly: keep_weekly, monthly: keep_monthly };
            if keep_last == Some(0) {
                return Err(CliError::new("--keep-last 0 would remove every backup").hint("keep at least 1, or use `col backup delete ID`"));
            }
            let r = prune_backups(&*repo, &clock, &owner(), policy, only, dry_run).await.map_err(|e| match e {
                BackupFailure::Invalid(m) => CliError::new(m).hint("example: col backup prune --keep-last 5 --keep-daily 7"),
                other => other.into(),
            })?;
            ctx.out.json_value(&to_value(&r)).map_err(io)?;
            let verb = if dry_run { "Would remove" } else { "Removed" };
            for id in &r.removed {
                ctx.out.line(format!("{verb} backup {id}")).map_err(io)?;
            }
            ctx.out
                .line(format!(
                    "{verb} {} backup(s) and {} unreferenced objects ({}); kept {}.{}",
                    r.removed.len(),
                    r.objects_removed,
                    human_bytes(r.bytes_removed),
                    r.kept.len(),
                    if dry_run { " Nothing was changed." } else { "" }
                ))
                .map_err(io)?;
        }
        BackupCommand::Delete { id, dry_run, repo } => {
            let (_, repo) = open_repo(ctx, repo.as_deref()).await?;
            let id = backup_id(&id)?;
            let r = delete_backup(&*repo, &clock, &owner(), &id, dry_run).await?;
            ctx.out.json_value(&to_value(&r)).map_err(io)?;
            let verb = if dry_run { "Would delete" } else { "Deleted" };
            ctx.out
                .line(format!(
                    "{verb} backup {id} and {} objects no other backup needs ({}).{}",
                    r.objects_removed,
                    human_bytes(r.bytes_removed),
                    if dry_run { " Nothing was changed." } else { "" }
                ))
                .map_err(io)?;
        }
    }
    Ok(())
}
