//! One module per command. Each parses its arguments into domain types, calls a use case or port, and renders.

mod add;
mod adopt;
pub(crate) mod backup;
mod clear;
mod collection;
mod demo;
mod docs;
mod export;
mod index;
pub(crate) mod files;
mod init;
mod jobs;
mod maintenance;
mod restore;
pub(crate) mod safety;
mod search;
mod sync;

use std::path::{Path, PathBuf};
use std::time::Duration;

use colstore_domain::{CollectionName, DocKey};
use colstore_wiring::{Store, StoreDir, StoreLock, discover, process_env};

use crate::cli::{Cli, Command};
use crate::error::{CliError, CliResult};
use crate::output::Out;

/// How long an exclusive command waits for other commands to finish.
const EXCLUSIVE_WAIT: Duration = Duration::from_secs(10);

/// What every command gets: global flags and the output.
pub struct Ctx {
    pub store_flag: Option<PathBuf>,
    pub out: Out,
    pub hide_progress: bool,
    /// Every store the command opened, closed by [`Ctx::close_opened`] when the command is done.
    opened: std::sync::Mutex<Vec<Store>>,
}

impl Ctx {
    fn cwd() -> CliResult<PathBuf> {
        std::env::current_dir().map_err(|e| CliError::new(format!("cannot read the working directory: {e}")))
    }

    /// The context of one command.
    pub fn new(store_flag: Option<PathBuf>, out: Out, hide_progress: bool) -> Self {
        Self { store_flag, out, hide_progress, opened: std::sync::Mutex::default() }
    }

    /// Closes every store opened through this context (write-ahead logs checkpointed; see [`Store::close`]): a store
    /// left with a non-empty log cannot be opened by a reader that may not write, and sqlx closes dropped connections
    /// on threads the process may not wait for.
    pub async fn close_opened(&self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for store in opened {
            store.close().await;
        }
    }

    /// Finds the store (`--store`, `COLSTORE_DIR`, upward search).
    pub fn store_dir(&self) -> CliResult<StoreDir> {
        Ok(discover(self.store_flag.as_deref(), &Self::cwd()?, &process_env)?)
    }

    /// Finds and opens the store.
    pub async fn open(&self) -> CliResult<Store> {
        let dir = self.store_dir()?;
        let store = Store::open(dir, &process_env).await?;
        self.opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(store.clone());
        Ok(store)
    }

    /// Everything a sync-related use case needs: the store's bundle of ports (`Store::sync_ports`), with this
    /// process's environment.
    pub async fn sync_ports(store: &Store) -> CliResult<colstore_app::SyncPorts> {
        Ok(store.sync_ports(&process_env).await?)
    }

    /// Takes the store lock shared (for writers), waiting briefly for an exclusive holder.
    pub async fn shared_lock(&self, store: &Store) -> CliResult<StoreLock> {
        lock_dir(store.dir(), None).await
    }

    /// Takes the store lock exclusively for `command`.
    pub async fn exclusive_lock(&self, store: &Store, command: &'static str) -> CliResult<StoreLock> {
        lock_dir(store.dir(), Some(command)).await
    }
}

/// Takes the lock of the store in `dir`: exclusively for `command`, or shared. When another command holds it, says on
/// stderr that it waits, for whom and how long (as apt and git do), then waits. StoreLock itself warns when it
/// recovers a stale lock left by a dead process.
pub(crate) async fn lock_dir(dir: &StoreDir, exclusive: Option<&'static str>) -> CliResult<StoreLock> {
    let dir = dir.clone();
    let wait = if exclusive.is_some() { EXCLUSIVE_WAIT } else { colstore_wiring::DEFAULT_SHARED_WAIT };
    let notice = move |holder: Option<String>| {
        let holder = holder.unwrap_or_else(|| "another colstore command".to_owned());
        eprintln!("waiting for the store lock: {holder} holds it (giving up after {} s)", wait.as_secs());
    };
    let lock = tokio::task::spawn_blocking(move || match exclusive {
        Some(command) => StoreLock::exclusive_with_notice(&dir, command, wait, &notice),
        None => StoreLock::shared_with_notice(&dir, wait, &notice),
    })
    .await
    .map_err(|e| CliError::new(format!("lock task failed: {e}")))??;
    Ok(lock)
}

pub fn collection_name(s: &str) -> CliResult<CollectionName> {
    Ok(CollectionName::parse(s)?)
}

pub fn doc_key(s: &str) -> CliResult<DocKey> {
    Ok(DocKey::parse(s)?)
}

/// The `--where` expressions of a command, joined with `and`; ages (`7d`) count back from now.
pub fn where_filter(exprs: &[String]) -> CliResult<colstore_domain::DocFilter> {
    use colstore_domain::ports::Clock;
    Ok(colstore_domain::DocFilter::parse_all(exprs, colstore_wiring::SystemClock.now())?)
}

/// Now, for times the user gives as ages (`--since 7d`).
pub fn now() -> colstore_domain::Timestamp {
    use colstore_domain::ports::Clock;
    colstore_wiring::SystemClock.now()
}

/// Turns an output error into a CLI error; a closed pipe is not an error.
pub fn io(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe { CliError::closed_output() } else { CliError::new(format!("cannot write output: {e}")) }
}

pub fn display(p: &Path) -> String {
    p.display().to_string()
}

pub async fn run(cli: Cli) -> CliResult {
    let ctx = Ctx::new(cli.store, Out::new(cli.json, cli.quiet), cli.quiet || cli.json);
    let result = match cli.command {
        Command::Init(a) => init::run(&ctx, a).await,
        Command::Collection(c) => collection::run(&ctx, c).await,
        Command::Put(a) => docs::put(&ctx, a).await,
        Command::Get(a) => docs::get(&ctx, a).await,
        Command::Rm(a) => docs::rm(&ctx, a).await,
        Command::Ls(a) => docs::ls(&ctx, a).await,
        Command::Add(a) => add::run(&ctx, a).await,
        Command::Stats(a) => maintenance::stats(&ctx, a).await,
        Command::Verify(a) => maintenance::verify(&ctx, a).await,
        Command::Gc(a) => maintenance::gc(&ctx, a).await,
        Command::Flush(a) => maintenance::flush(&ctx, a).await,
        Command::Sync(a) => sync::sync(&ctx, a).await,
        Command::Status(a) => sync::status(&ctx, a).await,
        Command::Search(a) => search::search(&ctx, a).await,
        Command::Reindex(a) => index::reindex(&ctx, a).await,
        Command::Jobs(a) => jobs::jobs(&ctx, a.command.unwrap_or(crate::cli::JobsCommand::List { state: None, limit: 50 })).await,
        Command::Backup(a) => backup::backup(&ctx, a).await,
        Command::Restore(a) => restore::restore(&ctx, a).await,
        Command::Clear(a) => clear::clear(&ctx, a).await,
        Command::Export(a) => export::export(&ctx, a).await,
        Command::Import(a) => export::import(&ctx, a).await,
        Command::Reconcile(a) => files::reconcile(&ctx, a).await,
        Command::Watch(a) => files::watch(&ctx, a).await,
        Command::Migrate(a) => files::migrate(&ctx, a).await,
        Command::Demo(a) => demo::run(&ctx, a).await,
    };
    ctx.close_opened().await;
    ctx.out.flush().map_err(io)?;
    result
}
