//! `col init`.

use std::sync::Arc;

use colstore_wiring::{StorageMode, StoreConfig, SystemClock, init};
use serde_json::json;

use super::{Ctx, display, io};
use crate::cli::{InitArgs, ModeArg};
use crate::error::{CliError, CliResult};

pub async fn run(ctx: &Ctx, args: InitArgs) -> CliResult {
    let dir = match args.dir.or_else(|| ctx.store_flag.clone()) {
        Some(d) => d,
        None => std::env::current_dir().map_err(|e| CliError::new(format!("cannot read the working directory: {e}")))?,
    };
    let mode = match args.mode {
        ModeArg::Sqlite => StorageMode::Sqlite,
        ModeArg::Filesystem => StorageMode::Filesystem,
    };
    let store = init(&dir, mode, Arc::new(SystemClock)).await?;
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_owned());
    let config = StoreConfig::load(&store.config_path())?;
    ctx.out.json_value(&json!({ "store": display(&root), "store_id": config.store_id, "mode": "sqlite" })).map_err(io)?;
    ctx.out.line(format!("Initialised an empty colstore store in {}", display(&root))).map_err(io)?;
    ctx.out.line("Next: `col collection create NAME`, then `col add NAME PATH…`").map_err(io)?;
    Ok(())
}
