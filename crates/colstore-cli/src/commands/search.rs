//! `col search`: the nearest chunks of a query, with their documents' current text.

use serde_json::json;

use super::{Ctx, collection_name, io, where_filter};
use crate::cli::SearchArgs;
use crate::error::{CliError, CliResult};
use crate::output::to_value;

pub async fn search(ctx: &Ctx, a: SearchArgs) -> CliResult {
    let collection = collection_name(&a.collection)?;
    if a.query.trim().is_empty() {
        return Err(CliError::new("the search query is empty").code(2).hint(format!(
            "say what to look for, e.g. `col search {collection} \"how do backups work\"`; to list documents use `col ls {collection}`"
        )));
    }
    let filter = where_filter(&a.filters)?;
    let store = ctx.open().await?;
    let ports = Ctx::sync_ports(&store).await?;
    let found = colstore_app::search(&ports, &collection, &a.query, usize::from(a.k), (!filter.is_everything()).then_some(&filter)).await?;
    let hits = &found.hits;
    ctx.out.json_value(&json!({ "collection": collection, "query": a.query, "results": to_value(hits) })).map_err(io)?;
    if hits.is_empty() {
        ctx.out.line("No results: no synced chunk shares anything with the query.").map_err(io)?;
    } else {
        let lexical = if found.embedder_kind == "hash" {
            "\nThe built-in hash embedder compares words, so even good matches score low: compare scores with each other."
        } else {
            ""
        };
        ctx.out.line(format!("{}{lexical}", score_legend(found.distance))).map_err(io)?;
    }
    for (i, h) in hits.iter().enumerate() {
        let stale = if h.stale { "  [changed since synced]" } else { "" };
        ctx.out.data(format!("{:>2}. {:.3}  {}#{}{stale}\n    {}", i + 1, h.score, h.key, h.chunk, h.snippet)).map_err(io)?;
    }
    let stale = hits.iter().filter(|h| h.stale).count();
    if stale > 0 {
        ctx.out
            .line(format!(
                "note: {stale} hit(s) come from documents changed since they were synced; run `col sync {collection}` to update the index"
            ))
            .map_err(io)?;
    }
    if found.not_synced > 0 {
        ctx.out.line(format!("note: {} documents are not synced yet; run `col sync {collection}`", found.not_synced)).map_err(io)?;
    }
    Ok(())
}

/// What the score column of `col search` means for a collection's distance.
fn score_legend(distance: colstore_domain::Distance) -> &'static str {
    match distance {
        colstore_domain::Distance::Cosine => "Score: cosine similarity of the chunk to the query, from 0 (nothing in common) to 1 (the same).",
        colstore_domain::Distance::Dot => "Score: dot product of the chunk's and the query's vectors; higher is closer.",
        colstore_domain::Distance::Euclid => "Score: minus the Euclidean distance between the chunk and the query; closer to 0 is closer.",
    }
}
