//! `col reindex` (rebuild in place, or move to another index with `--to`) and `col verify --index`.

use std::time::Instant;

use colstore_app::{SyncOptions, SyncProgress};
use colstore_domain::CollectionName;
use serde_json::json;

use super::{Ctx, collection_name, io};
use crate::cli::ReindexArgs;
use crate::error::{CliError, CliResult, exit};
use crate::output::{count, to_value};

pub async fn reindex(ctx: &Ctx, a: ReindexArgs) -> CliResult {
    let collection = collection_name(&a.collection)?;
    let store = ctx.open().await?;
    if let Some(to) = &a.to {
        let indexes = store.indexes();
        let to = super::collection::canonical_target(&store, "reindex", "--to", to)?;
        let current = store.repo().collection(&collection).await?.settings.index.unwrap_or_else(|| indexes.default_target());
        // `--to` where the collection already is: rebuild it there, as without `--to`.
        if to != current {
            return move_index(ctx, &store, &collection, &to, a.keep_old).await;
        }
    }
    let _lock = ctx.shared_lock(&store).await?;
    let ports = Ctx::sync_ports(&store).await?;
    let started = Instant::now();
    let bar = crate::progress::bar(0, false, ctx.hide_progress, "reindexing");
    let r = colstore_app::reindex(&ports, &collection, &SyncOptions::default(), &|p: SyncProgress| {
        bar.set_length(p.pending.max(p.documents));
        bar.set_position(p.documents);
    })
    .await;
    bar.finish_and_clear();
    let r = r?;
    ctx.out.json_value(&to_value(&r)).map_err(io)?;
    ctx.out
        .line(format!(
            "Reindexed {collection}: {}, {}, {} from cache, {} embedded ({:.1}s)",
            count(r.synced, "document", "documents"),
            count(r.points_upserted, "point", "points"),
            count(r.progress.cache_hits, "chunk", "chunks"),
            r.progress.embedded,
            started.elapsed().as_secs_f64()
        ))
        .map_err(io)?;
    Ok(())
}

/// `col reindex COLLECTION --to TARGET`.
pub(super) async fn move_index(ctx: &Ctx, store: &colstore_wiring::Store, collection: &CollectionName, to: &str, keep_old: bool) -> CliResult {
    // Writers wait (a sync meanwhile would project into the old index only); searches go on reading the old index.
    let _lock = ctx.exclusive_lock(store, "reindex").await?;
    let ports = Ctx::sync_ports(store).await?;
    let started = Instant::now();
    let bar = crate::progress::bar(0, false, ctx.hide_progress, &format!("moving {collection}"));
    let r = colstore_app::move_index(&ports, collection, to, keep_old, &|n| bar.set_position(n)).await;
    bar.finish_and_clear();
    let r = r.map_err(|e| match e {
        colstore_app::MoveError::Sync(e) => CliError::from(e),
        e @ colstore_app::MoveError::AlreadyThere { .. } => CliError::new(e.to_string()).hint(format!("`col reindex {collection}` rebuilds it there")).code(2),
        e @ colstore_app::MoveError::Unverified { .. } => {
            CliError::new(e.to_string()).hint("run `col verify --index` and `col sync`, then try again")
        }
    })?;
    ctx.out.json_value(&to_value(&r)).map_err(io)?;
    ctx.out
        .line(format!(
            "Moved {collection} from {} to {}: {} written from the cache and verified, no embedder calls ({:.1}s)",
            r.from,
            r.to,
            count(r.points_written, "point", "points"),
            started.elapsed().as_secs_f64()
        ))
        .map_err(io)?;
    if !r.left_for_sync.is_empty() {
        ctx.out
            .line(format!(
                "{} had no vectors in the cache; run `col sync {collection}` to project them into {}",
                count(r.left_for_sync.len() as u64, "document", "documents"),
                r.to
            ))
            .map_err(io)?;
    }
    match (&r.old_drop_problem, r.old_dropped) {
        (Some(why), _) => eprintln!("warning: the old projection in {} could not be dropped: {why}", r.from),
        (None, true) => ctx.out.line(format!("Dropped the old projection in {}.", r.from)).map_err(io)?,
        (None, false) => ctx.out.line(format!("Kept the old projection in {} (--keep-old).", r.from)).map_err(io)?,
    }
    Ok(())
}

pub async fn verify_index(ctx: &Ctx, only: Option<CollectionName>, repair: bool) -> CliResult {
    let store = ctx.open().await?;
    let _lock = if repair { Some(ctx.shared_lock(&store).await?) } else { None };
    let ports = Ctx::sync_ports(&store).await?;
    let collections: Vec<CollectionName> = match &only {
        Some(c) => vec![store.repo().collection(c).await?.name],
        None => store.repo().list_collections().await?.into_iter().map(|c| c.name).collect(),
    };
    let reports = colstore_app::verify_indexes(&ports, &collections, repair).await?;
    let drift: usize = reports.iter().map(|r| r.drift.len()).sum();
    ctx.out.json_value(&json!({ "ok": drift == 0, "repaired": repair, "collections": to_value(&reports) })).map_err(io)?;
    for r in &reports {
        if r.drift.is_empty() {
            ctx.out
                .line(format!("{}: OK, the index holds exactly the {} points the ledger expects", r.collection, r.expected_points))
                .map_err(io)?;
            continue;
        }
        for d in &r.drift {
            eprintln!("{}: {} point {}#{} ({})", r.collection, d.kind, d.key, d.chunk, d.id);
        }
        if repair {
            ctx.out
                .line(format!(
                    "{}: repaired {} points from the cache{}",
                    r.collection,
                    r.repaired,
                    if r.marked_pending.is_empty() {
                        String::new()
                    } else {
                        format!("; {} documents left for `col sync`", r.marked_pending.len())
                    }
                ))
                .map_err(io)?;
        }
    }
    if drift > 0 && !repair {
        return Err(CliError::new(format!("index drift: {drift} points differ from the ledger"))
            .hint("run `col verify --index --repair` to fix them from the local cache (no embedder calls)")
            .code(exit::VERIFY));
    }
    Ok(())
}
