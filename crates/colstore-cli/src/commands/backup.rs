//! `col backup …`, `col restore`, `col clear`.

use std::sync::Arc;
use std::time::Instant;

use colstore_app::backup::{
    BackupEvent, BackupFailure, BackupOptions, BackupReport, KeepPolicy, LockOwner, RestoreMode, RestoreOptions, RestorePlan,
    create_backup, delete_backup, latest_backup, list_backups, plan_restore, plan_restore_into_empty, prune_backups, restore_backup,
    show_backup, verify_backup,
};
use colstore_domain::ports::{BackupId, BackupStore, SafetyCopy, SafetyError, SafetyNet};
use colstore_domain::{CollectionName, StoreId, Tag, Timestamp};
use colstore_wiring::{
    RepoAccess, StorageMode, Store, StoreBackups, StoreDir, StoreLock, SystemClock, WiringError, lock_holder, lock_holder_is_dead,
    process_env,
};
use serde_json::json;

use super::collection::confirm;
use super::{Ctx, collection_name, display, io};
use crate::cli::{BackupArgs, BackupCommand, BackupCreateArgs, ClearArgs, RestoreArgs, RestoreModeArg};
use crate::error::{CliError, CliResult, exit};
use crate::output::{human_bytes, human_time, table, to_value};

impl From<BackupFailure> for CliError {
    fn from(e: BackupFailure) -> Self {
        match e {
            BackupFailure::Repo(r) => r.into(),
            BackupFailure::NotFound(_) => CliError::new(e.to_string()).hint("list the backups with `col backup list`"),
            BackupFailure::NoLatest(_) => CliError::new(e.to_string()).hint(
                "take a backup of this store with `col backup`; to restore another store's backup, name it by its id \
                 (`col backup list` shows every backup and its store)",
            ),
            BackupFailure::Locked { .. } => CliError::new(e.to_string()).hint(
                "wait for the other backup or prune to finish; a lock of a process that died on this host is ignored, others expire after 10 minutes",
            ),
            BackupFailure::NoSuchCollection(_, "backup") => {
                CliError::new(e.to_string()).hint("`col backup show ID` lists the collections a backup holds")
            }
            BackupFailure::NoSuchCollection(..) => CliError::new(e.to_string()).hint("see `col collection list`"),
            BackupFailure::Corrupt { .. } | BackupFailure::Missing { .. } | BackupFailure::Unverified { .. } => CliError::new(e.to_string())
                .hint("run `col backup verify ID --read-data` to see every damaged object; restore from another backup")
                .code(exit::VERIFY),
            BackupFailure::Store(_) => CliError::new(e.to_string()).hint(
                "check the repository URL (--to/--repo, [backup] repository, COLSTORE_BACKUP_REPOSITORY); for s3:// also \
                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL",
            ),
            BackupFailure::StoreCorrupt { .. } => CliError::new(e.to_string()).code(exit::VERIFY),
            BackupFailure::Format(_) => CliError::new(e.to_string()).code(exit::VERIFY),
            other => CliError::new(other.to_string()),
        }
    }
}

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

fn backup_id(s: &str) -> CliResult<BackupId> {
    Ok(BackupId::parse(s)?)
}

/// `latest` (this store's newest backup, see [`latest_backup`]) or an id.
async fn resolve_id(repo: &dyn BackupStore, s: &str, this: Option<StoreId>) -> CliResult<BackupId> {
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

/// Takes a backup of `store` with a progress bar; used by `col backup` and as the safety backup of destructive commands.
async fn run_backup(ctx: &Ctx, store: &Store, repo: Arc<dyn BackupStore>, opts: &BackupOptions, what: &str) -> CliResult<BackupReport> {
    let bar = crate::progress::bar(0, true, ctx.hide_progress, what);
    let on_event = |e: BackupEvent| match e {
        BackupEvent::Started { bytes, .. } => bar.set_length(bytes),
        BackupEvent::Document { bytes } => bar.inc(bytes),
        BackupEvent::ObjectWritten { .. } => {}
    };
    let result = create_backup(&**store.repo(), repo, &**store.clock(), &owner(), opts, &on_event).await;
    bar.finish_and_clear();
    Ok(result?)
}

/// The progress bar of a safety backup, drawn once a backup starts (a sqlite-mode copy of the database draws none).
pub(crate) struct SafetyProgress {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    hidden: bool,
}

impl SafetyProgress {
    pub(crate) fn new(ctx: &Ctx) -> Self {
        Self { bar: std::sync::Mutex::new(None), hidden: ctx.hide_progress }
    }

    /// Follows a safety backup's events.
    pub(crate) fn on_event(&self, e: BackupEvent) {
        let mut bar = self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match e {
            BackupEvent::Started { bytes, .. } => *bar = Some(crate::progress::bar(bytes, true, self.hidden, "safety backup")),
            BackupEvent::Document { bytes } => {
                if let Some(b) = bar.as_ref() {
                    b.inc(bytes);
                }
            }
            BackupEvent::ObjectWritten { .. } => {}
        }
    }

    /// Clears the bar, if one was drawn.
    pub(crate) fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            b.finish_and_clear();
        }
    }
}

/// Says that a safety backup was taken and how to undo with it (a copy of the database is reported by the command).
pub(crate) fn announce_safety(ctx: &Ctx, copy: &SafetyCopy) {
    if let SafetyCopy::Backup(id) = copy {
        // A closed stdout is noticed by the command's next line.
        let _ = ctx.out.line(format!("Took safety backup {id} (restore it with `col restore {id}`)."));
    }
}

/// The JSON fields of a safety copy: `safety_copy` (a copy of the database: its path) and `safety_backup` (its id).
pub(crate) fn safety_fields(copy: Option<&SafetyCopy>) -> (Option<&str>, Option<&str>) {
    match copy {
        Some(SafetyCopy::Database(path)) => (Some(path), None),
        Some(SafetyCopy::Backup(id)) => (None, Some(id)),
        None => (None, None),
    }
}

/// A safety backup of `collections` before `operation` (`clear`, `import`, `restore`, `migrate`), into the store's
/// configured repository, through the store's safety net; returns the backup's id.
pub(crate) async fn safety_backup(ctx: &Ctx, store: &Store, collections: Vec<CollectionName>, operation: &str) -> CliResult<String> {
    let progress = SafetyProgress::new(ctx);
    let on_event = |e: BackupEvent| progress.on_event(e);
    let copy = store.safety_net(&on_event).backup(&collections, operation).await;
    progress.finish();
    let copy = copy.map_err(CliError::from)?;
    announce_safety(ctx, &copy);
    match copy {
        SafetyCopy::Backup(id) => Ok(id),
        SafetyCopy::Database(path) => Ok(path),
    }
}

impl From<SafetyError> for CliError {
    fn from(e: SafetyError) -> Self {
        let source = e.0;
        let source = match source.downcast::<WiringError>() {
            Ok(w) => return (*w).into(),
            Err(other) => other,
        };
        let source = match source.downcast::<BackupFailure>() {
            Ok(b) => return (*b).into(),
            Err(other) => other,
        };
        CliError::new(format!("the safety copy failed: {source}"))
    }
}

impl From<colstore_app::RemoveError> for CliError {
    fn from(e: colstore_app::RemoveError) -> Self {
        match e {
            colstore_app::RemoveError::Repo(r) => r.into(),
            colstore_app::RemoveError::Safety(s) => s.into(),
        }
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
    let report = run_backup(ctx, &store, Arc::clone(&repo), &opts, "backing up").await?;
    let s = &report.stats;
    let mut rotation = None;
    if !a.dry_run {
        let keep = store.config().backup.keep_last;
        let policy = KeepPolicy { last: Some(keep), ..KeepPolicy::default() };
        // The rotation is this store's policy: it never removes another store's backups.
        match prune_backups(&*repo, &**store.clock(), &owner(), policy, Some(store.identity().id), false).await {
            Ok(r) => rotation = Some(r),
            Err(e) => eprintln!("warning: the backup is complete, but rotation (keep the last {keep}) failed: {e}"),
        }
    }
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
async fn open_repo(ctx: &Ctx, url: Option<&str>) -> CliResult<(Option<StoreBackups>, Arc<dyn BackupStore>)> {
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
                    let scope = match (&b.error, b.schema_only) {
                        (Some(e), _) => format!("UNREADABLE: {e}"),
                        (None, true) => format!("schema only: {}", b.collections.join(",")),
                        (None, false) => b.collections.join(","),
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

fn print_plan(ctx: &Ctx, plan: &RestorePlan, what: &str, target: &str) -> CliResult {
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
        .map_err(io)
}

/// The store a restore writes to: `--to-store DIR` (created when it holds none) or the current one.
async fn restore_target(ctx: &Ctx, to: Option<&std::path::Path>) -> CliResult<Store> {
    let Some(dir) = to else { return ctx.open().await };
    let dir_store = match StoreDir::at(dir) {
        Some(d) => d,
        None => {
            std::fs::create_dir_all(dir).map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
            colstore_wiring::init(dir, StorageMode::Sqlite, None, &|_| None, Arc::new(SystemClock)).await?
        }
    };
    Ok(Store::open(dir_store, &process_env).await?)
}

/// Takes the store lock of `dir` exclusively for `command` (for a store whose database cannot be opened).
async fn exclusive_lock_dir(dir: &StoreDir, command: &'static str) -> CliResult<StoreLock> {
    let dir = dir.clone();
    let lock = tokio::task::spawn_blocking(move || StoreLock::exclusive(&dir, command, super::EXCLUSIVE_WAIT))
        .await
        .map_err(|e| CliError::new(format!("lock task failed: {e}")))??;
    Ok(lock)
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
        (Some(to), _) => restore_target(ctx, Some(to)).await?,
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
                let lock = exclusive_lock_dir(&here.dir, "restore").await?;
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
    let existing: Vec<CollectionName> = plan
        .collections
        .iter()
        .filter(|c| c.exists && (c.delete + c.update) > 0)
        .map(|c| c.name.clone())
        .collect();
    let safety = if mode == RestoreMode::Replace && !a.no_backup && !existing.is_empty() {
        Some(safety_backup(ctx, &target, existing, "restore").await?)
    } else {
        None
    };
    let total: u64 = plan.collections.iter().map(|c| c.add + c.update + c.unchanged + c.kept_newer).sum();
    let bar = crate::progress::bar(total, false, ctx.hide_progress, "restoring");
    let started = Instant::now();
    let report =
        restore_backup(&**target.repo(), &*target.sync_store(), Arc::clone(&repo), &id, &opts, &|done, _| bar.set_position(done)).await;
    bar.finish_and_clear();
    let report = report.map_err(|e| {
        let err: CliError = e.into();
        match &safety {
            Some(s) => CliError {
                hint: Some(format!("{} The store before the restore is in safety backup {s}.", err.hint.clone().unwrap_or_default())),
                ..err
            },
            None => err,
        }
    })?;
    // The vector index follows the restored ledger, from the restored cache (no embedder calls).
    let mut reprojected = Vec::new();
    match Ctx::sync_ports(&target).await {
        Ok(ports) => {
            for c in &report.plan.collections {
                let name = &c.name;
                if target.repo().collection(name).await.is_ok_and(|c| c.settings.vectors.is_some()) {
                    match colstore_app::verify_index(&ports, name, true).await {
                        Ok(r) => reprojected.push(json!({ "collection": c.name, "repaired": r.drift.len() })),
                        Err(e) => eprintln!(
                            "warning: {}: the vector index could not be brought in line; run `col verify --index --repair`: {e}",
                            c.name
                        ),
                    }
                }
            }
        }
        Err(e) => eprintln!("warning: the vector index could not be opened ({}); run `col verify --index --repair` later", e.message),
    }
    ctx.out
        .json_value(&json!({
            "restore": to_value(&report),
            "safety_backup": safety,
            "index": reprojected,
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

pub async fn clear(ctx: &Ctx, a: ClearArgs) -> CliResult {
    let store = ctx.open().await?;
    let names: Vec<CollectionName> = match &a.collection {
        Some(c) => vec![store.repo().collection(&collection_name(c)?).await?.name],
        None => store.repo().list_collections().await?.into_iter().map(|c| c.name).collect(),
    };
    let mut total = 0;
    let mut rows = Vec::new();
    for n in &names {
        let c = store.repo().collection(n).await?;
        total += c.document_count;
        rows.push(json!({ "collection": n, "documents": c.document_count, "bytes": c.logical_bytes }));
    }
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
    let (index, ports) = if a.drop {
        (store.index().await.ok(), Err(String::new()))
    } else {
        (None, Ctx::sync_ports(&store).await.map_err(|e| e.message))
    };
    let projection = match (&index, &ports) {
        (index, _) if a.drop => colstore_app::ClearProjection::Drop(index.as_deref(), store.store_id()),
        (_, ports) => colstore_app::ClearProjection::Retire(ports.as_ref().map_err(Clone::clone)),
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

impl From<colstore_app::ExportError> for CliError {
    fn from(e: colstore_app::ExportError) -> Self {
        use colstore_app::ExportError as E;
        match e {
            E::Repo(r) => r.into(),
            E::Ledger(l) => l.into(),
            E::Malformed { .. } => CliError::new(format!("the import file is not usable: {e}"))
                .hint("nothing was imported; check that the file was written by `col export` and copied whole"),
            E::LineTooLong { what: Some(_), .. } => CliError::new(format!("cannot export: {e}")).hint(format!(
                "nothing was written; one line holds one document with its vectors, so documents up to about {} MiB can be \
                 exported: leave this collection out (--collection) and move it with `col backup` and `col restore`",
                colstore_app::MAX_LINE_BYTES / (1024 * 1024) * 3 / 4
            )),
            E::LineTooLong { what: None, .. } => CliError::new(format!("the import file is not usable: {e}")).hint(
                "nothing was imported; `col export` never writes a line this long, so the file is damaged or not a colstore \
                 export (a few KB of zstd can expand to gigabytes: the line is refused before it is held in memory)",
            ),
            E::TooNew(_) => CliError::new(e.to_string()).hint("nothing was imported; upgrade colstore to read this file"),
            E::NoSuchCollection(..) => CliError::new(e.to_string()).hint("see `col collection list`"),
            E::Io(_) => CliError::new(e.to_string()),
        }
    }
}

pub async fn export(ctx: &Ctx, a: crate::cli::ExportArgs) -> CliResult {
    let collections = a.collections.iter().map(|c| collection_name(c)).collect::<CliResult<Vec<_>>>()?;
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
    let mut encoder =
        zstd::Encoder::new(std::io::BufWriter::new(out), 3).map_err(|e| CliError::new(format!("cannot start compression: {e}")))?;
    let bar = crate::progress::bar(0, false, ctx.hide_progress, "exporting");
    let now = colstore_domain::ports::Clock::now(&SystemClock);
    let result =
        colstore_app::export(&**store.repo(), &collections, store.store_id(), env!("CARGO_PKG_VERSION"), now, &mut encoder, &|n| {
            bar.set_position(n)
        })
        .await;
    bar.finish_and_clear();
    let report = result?;
    let writer = encoder.finish().map_err(|e| CliError::new(format!("cannot write {}: {e}", display(&target))))?;
    let out = writer.into_inner().map_err(|e| CliError::new(format!("cannot write {}: {}", display(&target), e.error())))?;
    let shown = out.shown().to_owned();
    let size = out.commit()?;
    let doc = json!({ "file": shown, "export": to_value(&report), "file_bytes": size });
    let line = format!(
        "Exported {} collection(s), {} documents ({}) and {} vectors to {}{}.",
        report.collections,
        report.documents,
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
        let decoder = zstd::Decoder::new(file).map_err(|e| CliError::new(format!("cannot read {}: {e}", self.shown())))?;
        Ok(std::io::BufReader::new(decoder))
    }
}

pub async fn import(ctx: &Ctx, a: crate::cli::ImportArgs) -> CliResult {
    let mode = match a.mode {
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
    let touched: Vec<CollectionName> = plan
        .collections
        .iter()
        .filter(|c| c.exists && (c.delete + c.update) > 0)
        .map(|c| c.name.clone())
        .collect();
    let safety = if !a.no_backup && !touched.is_empty() { Some(safety_backup(ctx, &store, touched, "import").await?) } else { None };
    let bar = crate::progress::bar(plan.documents, false, ctx.hide_progress, "importing");
    let started = Instant::now();
    let written = colstore_app::import(&**store.repo(), &*store.sync_store(), source.reader()?, mode, &|n| bar.set_position(n)).await;
    bar.finish_and_clear();
    let written = written.map_err(|e| import_error(&source.shown(), e))?;
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
