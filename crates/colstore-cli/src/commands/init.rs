//! `col init`.

use std::sync::Arc;

use colstore_wiring::{StorageMode, StoreConfig, SystemClock, VectorBackend, VectorsConfig, init, process_env};
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
        Some(ModeArg::Sqlite) => StorageMode::Sqlite,
        Some(ModeArg::Filesystem) => StorageMode::Filesystem,
        None => mode_from_env()?,
    };
    if args.docs_dir.is_some() && mode != StorageMode::Filesystem {
        return Err(CliError::new("--docs-dir only applies to the filesystem storage mode")
            .hint("add `--mode filesystem`, or drop --docs-dir (see `col init --help`)")
            .code(2));
    }
    let vectors = args
        .vectors
        .as_deref()
        .map(VectorsConfig::from_target)
        .transpose()
        .map_err(|e| CliError::new(format!("--vectors: {e}")).hint("see `col init --help`").code(2))?;
    let store = init(&dir, mode, args.docs_dir.as_deref(), vectors, &process_env, Arc::new(SystemClock)).await?;
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_owned());
    let config = StoreConfig::load(&store.config_path())?;
    let docs = store.filesystem_path(&config);
    let docs = std::fs::canonicalize(&docs).unwrap_or(docs);
    let mut value = json!({
        "store": display(&root),
        "store_id": config.store_id,
        "mode": mode.as_str(),
        "vectors": config.vectors.target(),
    });
    if mode == StorageMode::Filesystem {
        value["docs_dir"] = json!(display(&docs));
    }
    ctx.out.json_value(&value).map_err(io)?;
    ctx.out.line(format!("Initialised an empty colstore store in {} ({} mode)", display(&root), mode.as_str())).map_err(io)?;
    if config.vectors.backend != VectorBackend::Embedded {
        ctx.out
            .line(format!(
                "Vectors go to {} (collections cs_{}_<name>; API key from ${})",
                config.vectors.target(),
                config.store_id.short(),
                config.vectors.key_env().unwrap_or("-")
            ))
            .map_err(io)?;
    }
    if mode == StorageMode::Filesystem {
        ctx.out.line(format!("Documents live as files in {}/<collection>/", display(&docs))).map_err(io)?;
        ctx.out.line("Next: `col collection create NAME`, put files in its folder, then `col reconcile` and `col sync`").map_err(io)?;
    } else {
        ctx.out.line("Next: `col collection create NAME`, then `col add NAME PATH…`").map_err(io)?;
    }
    Ok(())
}

/// The mode `COLSTORE_STORAGE_MODE` (or the seed's `COLLECTION_STORAGE_MODE`) asks for, else sqlite.
fn mode_from_env() -> CliResult<StorageMode> {
    for var in ["COLSTORE_STORAGE_MODE", "COLLECTION_STORAGE_MODE"] {
        if let Some(v) = process_env(var) {
            return v.parse::<StorageMode>().map_err(|e| {
                CliError::new(format!("{var}={v:?} is not a storage mode: {e}"))
                    .hint(format!("set {var} to sqlite or filesystem, or unset it"))
            });
        }
    }
    Ok(StorageMode::Sqlite)
}
