//! `col demo`: the main job on a throw-away store, with the same code paths as the real commands.

use std::path::PathBuf;

use super::{Ctx, display, io};
use crate::cli::{
    AddArgs, BackupArgs, BackupCommand, BackupCreateArgs, ClearArgs, CollectionCommand, InitArgs, LsArgs, ModeArg, RestoreArgs,
    RestoreModeArg, SearchArgs, SearchModeArg, SortArg, StatsArgs, SyncArgs, VerifyArgs,
};
use crate::error::{CliError, CliResult};
use crate::output::Out;

/// Sample documents (one is a duplicate, to show content dedup).
const SAMPLES: [(&str, &str); 6] = [
    ("storage/wal.md", include_str!("../../samples/wal.md")),
    ("search/hnsw.md", include_str!("../../samples/hnsw.md")),
    ("ops/backups.md", include_str!("../../samples/backups.md")),
    ("ops/backups-copy.md", include_str!("../../samples/backups-copy.md")),
    ("search/chunking.md", include_str!("../../samples/chunking.md")),
    ("search/rag.md", include_str!("../../samples/rag.md")),
];

pub async fn run(ctx: &Ctx, args: crate::cli::DemoArgs) -> CliResult {
    let kept = args.keep.is_some();
    let temp;
    let base: PathBuf = match args.keep {
        Some(dir) => dir,
        None => {
            temp = tempfile::Builder::new().prefix("colstore-demo-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let store_dir = base.join("store");
    let docs_dir = base.join("docs");
    for (key, text) in SAMPLES {
        let path = docs_dir.join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CliError::new(format!("cannot write {}: {e}", display(parent))))?;
        }
        std::fs::write(&path, text).map_err(|e| CliError::new(format!("cannot write {}: {e}", display(&path))))?;
    }
    let inner = Ctx::new(Some(store_dir.clone()), Out::new(ctx.out.json, ctx.out.quiet), ctx.hide_progress);
    let step = |title: &str| ctx.out.line(format!("\n== {title}")).map_err(io);

    step(&format!("col init {}", display(&store_dir)))?;
    super::init::run(&inner, InitArgs { dir: Some(store_dir.clone()), mode: Some(ModeArg::Sqlite), docs_dir: None, vectors: None }).await?;
    inner.close_opened().await;
    step("col collection create demo")?;
    super::collection::run(
        &inner,
        CollectionCommand::Create {
            name: "demo".into(),
            settings: crate::cli::SettingsArgs { chunk_size: None, chunk_overlap: None, distance: None },
            vectors: None,
        },
    )
    .await?;
    inner.close_opened().await;
    step(&format!("col add demo {}", display(&docs_dir)))?;
    super::add::run(
        &inner,
        AddArgs {
            collection: "demo".into(),
            paths: vec![docs_dir.clone()],
            include: vec![],
            exclude: vec![],
            prefix: None,
            meta: Some(r#"{"source":"demo"}"#.into()),
            tags: vec!["sample".into()],
            no_front_matter: false,
            create: false,
            dry_run: false,
        },
    )
    .await?;
    inner.close_opened().await;
    step("col ls demo")?;
    super::docs::ls(
        &inner,
        LsArgs {
            collection: "demo".into(),
            tags: vec![],
            filters: vec![],
            prefix: None,
            since: None,
            until: None,
            sort: SortArg::Key,
            desc: false,
            limit: None,
            offset: 0,
            after: None,
        },
    )
    .await?;
    inner.close_opened().await;
    step("col stats")?;
    super::maintenance::stats(&inner, StatsArgs { collection: None }).await?;
    inner.close_opened().await;
    step("col verify")?;
    super::maintenance::verify(&inner, VerifyArgs { collection: None, index: false, repair: false }).await?;
    inner.close_opened().await;
    step("col sync")?;
    super::sync::sync(&inner, SyncArgs { collection: None, skip_failed: false }).await?;
    inner.close_opened().await;
    step("col search demo \"how do backups stay trustworthy\" -k 3")?;
    super::search::search(
        &inner,
        SearchArgs { collection: "demo".into(), query: "how do backups stay trustworthy".into(), k: 3, filters: vec![], mode: SearchModeArg::Hybrid },
    )
    .await?;
    inner.close_opened().await;
    step("col verify --index")?;
    super::maintenance::verify(&inner, VerifyArgs { collection: None, index: true, repair: false }).await?;
    inner.close_opened().await;
    step("col backup --tag demo")?;
    super::backup::backup(
        &inner,
        BackupArgs {
            command: None,
            create: BackupCreateArgs { collections: vec![], schema_only: false, dry_run: false, to: None, tags: vec!["demo".into()] },
        },
    )
    .await?;
    inner.close_opened().await;
    step("col backup verify latest --read-data")?;
    super::backup::backup(
        &inner,
        BackupArgs { command: Some(BackupCommand::Verify { id: None, read_data: true, repo: None }), create: no_create() },
    )
    .await?;
    inner.close_opened().await;
    step("col clear demo --yes   (a safety backup is taken first)")?;
    super::clear::clear(
        &inner,
        ClearArgs { collection: Some("demo".into()), all: false, drop: false, dry_run: false, yes: true, no_backup: false },
    )
    .await?;
    inner.close_opened().await;
    step("col restore latest --yes")?;
    super::restore::restore(
        &inner,
        RestoreArgs {
            id: "latest".into(),
            collections: vec![],
            mode: RestoreModeArg::Replace,
            dry_run: false,
            yes: true,
            to_store: None,
            repo: None,
            no_backup: false,
        },
    )
    .await?;
    inner.close_opened().await;
    step("col search demo \"how do backups stay trustworthy\" -k 3   (again, after the restore)")?;
    super::search::search(
        &inner,
        SearchArgs { collection: "demo".into(), query: "how do backups stay trustworthy".into(), k: 3, filters: vec![], mode: SearchModeArg::Hybrid },
    )
    .await?;
    inner.close_opened().await;
    step("col verify --index")?;
    super::maintenance::verify(&inner, VerifyArgs { collection: None, index: true, repair: false }).await?;
    inner.close_opened().await;
    ctx.out.line("\nThe demo worked.").map_err(io)?;
    ctx.out
        .line(if kept {
            format!("The demo store is kept in {}; try `col --store {} ls demo`.", display(&store_dir), display(&store_dir))
        } else {
            "The demo store was temporary and is gone; `col demo --keep DIR` keeps one.".to_owned()
        })
        .map_err(io)?;
    Ok(())
}

fn no_create() -> BackupCreateArgs {
    BackupCreateArgs { collections: vec![], schema_only: false, dry_run: false, to: None, tags: vec![] }
}
